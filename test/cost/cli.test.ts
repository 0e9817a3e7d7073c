/**
 * `isolab measure` as a user runs it: the text report, the JSON report, a profile without
 * PCIDs changing what the run does, and bad input (an unknown profile, a broken cost table, an
 * output path that is not a regular file) refused with exit 2 and a message that says what to
 * do, nothing written. Also docs/measure.md's cost tables, which must be the model's own.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BEGIN, costTablesMarkdown, END } from '../../src/cost/doc.js';
import { CATEGORIES } from '../../src/cost/keys.js';
import type { MeasureReport } from '../../src/cost/measure.js';
import { builtinCostTable } from '../../src/cost/table.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const cli = join(root, 'dist/src/cli/main.js');
const tmp = mkdtempSync(join(tmpdir(), 'isolab-measure-'));

function isolab(...args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

test('measure: the text report names the profile and breaks the run down', () => {
  const r = isolab('measure', 'scenarios/pcid-switch.yaml');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^pcid-switch on skylake: /);
  assert.match(r.stdout, /3 GHz, PCID on, INVPCID on; costs from src\/cost\/costs\.yaml/);
  assert.match(r.stdout, /^total: [\d,]+ cycles, [\d.]+ .s of CPU time$/m);
  for (const section of ['per CPU', 'per task', 'per syscall', 'per operation']) assert.ok(r.stdout.includes(`\n${section}`), section);
  assert.match(r.stdout, /^ {2}sched_yield +\d+ /m);
  assert.match(r.stdout, /cr3_write_noflush \(cr3\)/);
});

test('measure --json: the report, whose CPU and category figures add up to the total', () => {
  const r = isolab('measure', 'scenarios/pcid-switch.yaml', '--json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as MeasureReport;
  assert.equal(j.profile.name, 'skylake');
  const total = j.total.cycles;
  assert.ok(total > 0);
  assert.ok(Math.abs(j.cpus.reduce((a, c) => a + c.cycles, 0) - total) < 1e-6);
  assert.ok(Math.abs(Object.values(j.total.byCategory).reduce((a, b) => a + b, 0) - total) < 1e-6);
});

test('measure --profile skylake-nopcid: the same scenario on a CPU without PCIDs flushes at every switch', () => {
  const pcid = JSON.parse(isolab('measure', 'scenarios/pcid-switch.yaml', '--json').stdout) as MeasureReport;
  const r = isolab('measure', 'scenarios/pcid-switch.yaml', '--json', '--profile', 'skylake-nopcid');
  assert.equal(r.status, 0, r.stderr);
  const none = JSON.parse(r.stdout) as MeasureReport;
  const count = (m: MeasureReport, name: string): number => m.total.items.find((i) => i.name === name)?.count ?? 0;
  assert.equal(count(none, 'cr3_write_noflush'), 0, 'no NOFLUSH without PCIDs');
  assert.ok(count(pcid, 'cr3_write_noflush') > 0);
  assert.ok(count(none, 'walk_leaf') > count(pcid, 'walk_leaf'), 'the flushed translations are walked again');
  assert.ok(none.total.cycles > pcid.total.cycles);
});

test('measure: an unknown profile, a broken table, a directory as output: exit 2, what to do, nothing written', () => {
  const p = isolab('measure', 'scenarios/pcid-switch.yaml', '--profile', 'skylak');
  assert.equal(p.status, 2);
  const names = [...builtinCostTable().profiles.keys()].join(', ');
  assert.ok(p.stderr.includes(`--profile: no profile "skylak" in src/cost/costs.yaml; the profiles: ${names}; did you mean skylake?`), p.stderr);
  const bad = join(tmp, 'bad.yaml');
  writeFileSync(bad, 'profiles:\n  x:\n    description: d\n    inherits: skylake\n');
  const b = isolab('measure', 'scenarios/pcid-switch.yaml', '--cost', bad);
  assert.equal(b.status, 2);
  // `inherits` names a profile of the same file: the built-in skylake is not one.
  assert.equal(b.stderr.trim(), `${bad}:4:15: expected the name of another profile of this table`);
  assert.equal(b.stdout, '');
  const missing = isolab('measure', 'scenarios/pcid-switch.yaml', '--cost', join(tmp, 'none.yaml'));
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /none\.yaml: cannot read the cost table: no such file/);
  const dir = join(tmp, 'out.d');
  mkdirSync(dir);
  const o = isolab('measure', 'scenarios/pcid-switch.yaml', '-o', dir);
  assert.equal(o.status, 2);
  assert.match(o.stderr, /it is a directory/);
  const out = join(tmp, 'report.txt');
  assert.equal(isolab('measure', 'scenarios/pcid-switch.yaml', '-o', out).status, 0);
  assert.ok(existsSync(out) && readFileSync(out, 'utf8').startsWith('pcid-switch on skylake'));
});

test('docs/measure.md: its cost tables are the model\'s (regenerate with npm run docs:costs)', () => {
  const doc = readFileSync(join(root, 'docs/measure.md'), 'utf8');
  const b = doc.indexOf(BEGIN);
  const e = doc.indexOf(END);
  assert.ok(b >= 0 && e > b, 'the markers are there');
  assert.equal(doc.slice(b + BEGIN.length, e).trim(), costTablesMarkdown().trim());
  // The categories the prose lists are the model's, in its order.
  const listed = [...doc.slice(doc.indexOf('The categories:'), doc.indexOf('Two figures need more')).matchAll(/`(\w+)`/g)].map((m) => m[1]);
  assert.deepEqual(listed, [...CATEGORIES]);
});
