/**
 * Sweeps (src/cost/sweep.ts, chart.ts, src/cli/sweep.ts): ranges parsed as documented, the grid
 * run on every side, the CSV and the chart's points from the rows (an overhead is a side's
 * cycles over the baseline side's, less one), and `isolab sweep` writing its three files only
 * when all are ready, refusing outputs it may not replace.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chartPoints } from '../../src/cost/chart.js';
import { parseAxis, sweep, sweepCsv } from '../../src/cost/sweep.js';
import { builtinCostTable, profileOf } from '../../src/cost/table.js';
import { ArgumentError } from '../../src/errors.js';
import { compileScenarioFile } from '../../src/scenario/index.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const V1 = 'calibration/v1-gregg-syscall-rate.yaml';

test('ranges: every integer, evenly spaced, geometric, a list; mistakes named', () => {
  assert.deepEqual(parseAxis('n=2..5'), { name: 'n', values: [2, 3, 4, 5], log: false });
  assert.deepEqual(parseAxis('n=0..100:5'), { name: 'n', values: [0, 25, 50, 75, 100], log: false });
  assert.deepEqual(parseAxis('n=1..1000:4:log'), { name: 'n', values: [1, 10, 100, 1000], log: true });
  assert.deepEqual(parseAxis('n=3,1,3,2'), { name: 'n', values: [3, 1, 2], log: false });
  assert.throws(() => parseAxis('n=5..2'), (e: unknown) => e instanceof ArgumentError && /ends \(2\) below where it starts \(5\)/.test(e.message));
  assert.throws(() => parseAxis('n=0..10:3:log'), /a :log range starts above 0/);
  assert.throws(() => parseAxis('n=1..5000'), /5000 points; at most 1000/);
  assert.throws(() => parseAxis('=1..2'), /expected name=from\.\.to/);
  assert.throws(() => parseAxis('n=a,b'), /"a" is not an integer/);
});

test('a sweep runs every point on every side; the CSV and the overhead points follow from the rows', () => {
  const table = builtinCostTable();
  const axes = [parseAxis('work=0,30000')];
  const rows = sweep((p) => compileScenarioFile(V1, { ...p, iterations: 2, pages: 2 }), axes, table, profileOf(table, 'gregg-ec2'), undefined);
  assert.deepEqual(rows.map((r) => `${r.params.work} ${r.side}`), ['0 off', '0 pcid', '0 nopcid', '30000 off', '30000 pcid', '30000 nopcid']);
  // More work between syscalls: more cycles, on every side.
  for (const side of ['off', 'pcid', 'nopcid']) assert.ok(rows.find((r) => r.side === side && r.params.work === 30000)!.cycles > rows.find((r) => r.side === side && r.params.work === 0)!.cycles + 30000);
  const csv = sweepCsv(rows, axes).trim().split('\n');
  assert.equal(csv.length, 7);
  assert.ok(csv[0].startsWith('work,side,profile,passed,cycles,ns,cycles_user,'));
  assert.ok(csv[1].startsWith('0,off,gregg-ec2,true,'));
  const pts = chartPoints(rows, axes, { metric: 'cycles', relativeTo: 'off', title: 't' });
  assert.equal(pts.length, 4);
  for (const p of pts) {
    const side = p.series;
    const r = rows.find((x) => x.side === side && x.params.work === p.x)!;
    const off = rows.find((x) => x.side === 'off' && x.params.work === p.x)!;
    assert.ok(Math.abs(p.y - ((r.cycles - off.cycles) / off.cycles) * 100) < 1e-9);
    assert.ok(p.y > 0, 'PTI costs something');
  }
  assert.throws(() => chartPoints(rows, axes, { metric: 'cycles', relativeTo: 'nope', title: 't' }), /no side nope; the sides: off, pcid, nopcid/);
  assert.throws(() => chartPoints(rows, axes, { metric: 'cycels', title: 't' }), (e: unknown) => e instanceof ArgumentError && /unknown metric cycels/.test(e.message));
});

test('isolab sweep writes PREFIX.csv, .svg and .png; bad input writes nothing', () => {
  const dir = mkdtempSync(join(tmpdir(), 'isolab-sweep-'));
  const run = (...args: string[]) => spawnSync(process.execPath, [join(root, 'dist/src/cli/main.js'), 'sweep', V1, ...args], { cwd: root, encoding: 'utf8' });
  const out = join(dir, 'v1');
  const r = run('--param', 'work=0,30000', '--set', 'iterations=2', '--set', 'pages=2', '--relative-to', 'off', '--out', out);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^6 runs$/m);
  assert.match(r.stdout, /cycles over off:\n {2}work=0 pcid: \d+\.\d{3} %/);
  assert.equal(readFileSync(`${out}.csv`, 'utf8').trim().split('\n').length, 7);
  assert.match(readFileSync(`${out}.svg`, 'utf8'), /^<svg[^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.deepEqual([...readFileSync(`${out}.png`).subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  // A param the scenario lacks: exit 2, nothing written.
  const bad = run('--param', 'wrok=0,1', '--out', join(dir, 'bad'));
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /no param wrok; its params: iterations, work, pages, touch; did you mean work\?/);
  assert.ok(!existsSync(join(dir, 'bad.csv')) && !existsSync(join(dir, 'bad.svg')) && !existsSync(join(dir, 'bad.png')));
  // An output that is a directory is refused before anything runs.
  mkdirSync(join(dir, 'd.svg'));
  const d = run('--param', 'work=0', '--out', join(dir, 'd'));
  assert.equal(d.status, 2);
  assert.match(d.stderr, /d\.svg: it is a directory/);
  assert.ok(!existsSync(join(dir, 'd.csv')));
});
