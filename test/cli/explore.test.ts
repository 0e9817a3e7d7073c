/**
 * `isolab explore` and `isolab merge` as a user meets them: `--split-depth` changes nothing
 * without shards; shards written with `--shard i/n --json -o` merge into the search without
 * shards, and results of different searches are refused, naming what differs, with nothing
 * written; SIGINT or SIGTERM during a search on the main thread prints the progress so far,
 * writes nothing and exits 130 or 143.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { searching } from './searching.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const cli = join(root, 'dist/src/cli/main.js');
const tmp = mkdtempSync(join(tmpdir(), 'isolab-cli-explore-'));

function isolab(...args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A fresh directory for one test. */
function dir(name: string): string {
  const d = join(tmp, name);
  mkdirSync(d);
  return d;
}

interface Result {
  executions: number;
  complete: number;
  sleepBlocked: number;
  steps: number;
  violations: { invariant: string; text: string }[];
  traces?: string[];
}

/** What a search explored and found (not how long it took). */
function outcome(r: Result): unknown {
  return { executions: r.executions, complete: r.complete, sleepBlocked: r.sleepBlocked, steps: r.steps, violations: r.violations.map((v) => [v.invariant, v.text]) };
}

// fork's plain read-modify-write loses a D (seed 003): a violation to find in a short search.
const SEARCH = ['--until', 'ops', '--preemptions', '1', '--kernel', 'fork_wrprotect=read_modify_write', '--invariants', 'lost_dirty,rw0_dirty'];
const FILE = 'scenarios/fork-dirty-race.yaml';

/** The search without shards. */
const whole = isolab('explore', FILE, ...SEARCH, '--json');

test('cli explore: --split-depth without --shard or --workers changes nothing', () => {
  assert.equal(whole.status, 1, `a lost D is found: ${whole.stderr}`);
  const split = isolab('explore', FILE, ...SEARCH, '--json', '--split-depth', '200');
  assert.equal(split.status, whole.status, split.stderr);
  assert.deepEqual(outcome(JSON.parse(split.stdout) as Result), outcome(JSON.parse(whole.stdout) as Result));
  const bad = isolab('explore', FILE, ...SEARCH, '--shard', '0/2', '--split-depth', '200');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^isolab: split-depth: 200: .*from 1 to \d+/);
});

test('cli merge: shards merge into the search without shards; shards of other searches are refused, naming what differs', () => {
  const d = dir('merge');
  const shard = (name: string, file: string, ...args: string[]): string => {
    const out = join(d, name);
    const r = isolab('explore', file, '--json', '-o', out, ...args);
    assert.ok(r.status === 0 || r.status === 1, `${name}: ${r.stderr}`);
    return out;
  };
  const a = shard('a.json', FILE, ...SEARCH, '--shard', '0/2');
  const b = shard('b.json', FILE, ...SEARCH, '--shard', '1/2');
  const merged = isolab('merge', a, b, '--json');
  assert.equal(merged.status, whole.status, merged.stderr);
  const m = JSON.parse(merged.stdout) as Result;
  const w = JSON.parse(whole.stdout) as Result;
  assert.equal(m.complete, w.complete);
  assert.equal(m.executions, w.executions);
  assert.deepEqual(m.violations.map((v) => [v.invariant, v.text]), w.violations.map((v) => [v.invariant, v.text]));
  for (const part of [a, b]) {
    const p = JSON.parse(readFileSync(part, 'utf8')) as Result;
    assert.ok(p.executions < w.executions * 0.8, `${part}: ${p.executions} of ${w.executions} executions`);
  }

  // Other searches: short ones of fork-cow, each differing from `first` in one thing.
  const QUICK = ['--until', 'ops', '--preemptions', '1', '--invariants', 'lost_dirty,rw0_dirty', '--executions', '4'];
  const COW = 'scenarios/fork-cow.yaml';
  const first = shard('first.json', COW, ...QUICK, '--shard', '0/2');
  const copy = join(d, 'copy.yaml');
  writeFileSync(copy, readFileSync(join(root, COW), 'utf8') + '# the same scenario, another file text\n');
  const withSplit = join(d, 'split.json');
  const edited = JSON.parse(readFileSync(shard('second.json', COW, ...QUICK, '--shard', '1/2'), 'utf8')) as { search: { splitDepth: number } };
  edited.search.splitDepth += 1;
  writeFileSync(withSplit, JSON.stringify(edited));
  const cases: [string, string, string][] = [
    ['preemptions', shard('p.json', COW, ...QUICK.map((x) => (x === '1' ? '0' : x)), '--shard', '1/2'), '--preemptions differs \\(0 in \\S+, 1 in \\S+\\)'],
    ['kernel', shard('k.json', COW, ...QUICK, '--kernel', 'fork_wrprotect=cmpxchg', '--shard', '1/2'), '--kernel differs \\(fork_wrprotect=cmpxchg in \\S+, none in \\S+\\)'],
    ['file', shard('f.json', copy, ...QUICK, '--shard', '1/2'), 'the scenario file \\(its text\\) differs'],
    ['invariants', shard('i.json', COW, ...QUICK.map((x) => (x === 'lost_dirty,rw0_dirty' ? 'lost_dirty' : x)), '--shard', '1/2'), '--invariants differs \\(lost_dirty in \\S+, lost_dirty,rw0_dirty in \\S+\\)'],
    ['shards', shard('n.json', COW, ...QUICK, '--shard', '1/3'), 'the shard count differs \\(3 in \\S+, 2 in \\S+\\)'],
    ['split depth', withSplit, '--split-depth differs'],
  ];
  for (const [what, other, message] of cases) {
    const out = join(d, `merged-${what}.json`);
    const r = isolab('merge', first, other, '-o', out);
    assert.equal(r.status, 2, `${what}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^isolab: merge: \\S+ and \\S+first\\.json are not shards of one search: ${message}[^\\n]*\\n$`), what);
    assert.ok(!existsSync(out), `${what}: nothing written`);
  }
  assert.equal(isolab('merge', first, join(d, 'second.json')).status, 0, 'the two shards of one search merge');
  // Random searches: another seed is another search.
  const u0 = shard('u0.json', 'scenarios/fork-cow.yaml', '--mode', 'uniform', '--executions', '2', '--shard', '0/2');
  const u1 = shard('u1.json', 'scenarios/fork-cow.yaml', '--mode', 'uniform', '--executions', '2', '--shard', '1/2', '--seed', '2');
  const r = isolab('merge', u0, u1);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /--seed differs \(2 in \S+, 1 in \S+\)/);
});

test('cli explore: SIGINT and SIGTERM during a search on the main thread print the progress so far, write nothing, exit 130 and 143', async () => {
  const d = dir('signals');
  for (const [signal, status] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    const out = join(d, `${signal}.json`);
    // An unbounded search of fork-dirty-race takes longer than the test.
    const child = spawn(process.execPath, [cli, 'explore', 'scenarios/fork-dirty-race.yaml', '-o', out], { cwd: root });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, sig) => resolve({ code, signal: sig })));
    await searching(child.pid!);
    const sent = Date.now();
    child.kill(signal);
    const end = await done;
    assert.deepEqual(end, { code: status, signal: null }, stderr);
    assert.ok(Date.now() - sent < 2000, `answered in ${Date.now() - sent} ms`);
    const m = new RegExp(`^isolab: explore interrupted by ${signal} after (\\d+) executions, (\\d+) steps, [\\d.]+ s; no result written`).exec(stderr);
    assert.ok(m, stderr);
    assert.ok(Number(m[2]) > 0, 'the progress so far: some steps were taken');
    assert.doesNotMatch(stderr, /\n\s+at /);
    assert.equal(stdout, '');
  }
  assert.deepEqual(readdirSync(d), []);
});
