/**
 * The isolab command, run as a user runs it: exit statuses, the text and JSON forms of `run`
 * (the JSON validated against its published schema), `check`, `trace` in both formats, output
 * that is never left half-written, and the published schema files kept current.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { runResultSchema } from '../../src/scenario/result-schema.js';
import { replayResultSchema } from '../../src/cli/replay.js';
import { scenarioSchema } from '../../src/scenario/schema.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const cli = join(root, 'dist/src/cli/main.js');
const tmp = mkdtempSync(join(tmpdir(), 'isolab-cli-'));

function isolab(...args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A scenario whose one expectation is false: a fresh anonymous page reads as 0, not 1. */
const FAILING = `processes:
  - name: p
    ops:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }
        as: buf
      - load: $buf
        expect: 1
`;

test('cli: run prints the timeline and the verdicts, exit 0 when all hold', () => {
  const r = isolab('run', 'scenarios/fork-cow.yaml');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /Q: After fork/);
  assert.match(r.stdout, /step\s+cpu\s+task\s+event/);
  assert.match(r.stdout, /#PF write 0x[0-9a-f]+ \(P W U\) → copied/, 'the child’s COW fault is on the timeline');
  assert.match(r.stdout, /✓ scenarios\/fork-cow\.yaml:\d+:\d+/);
  assert.doesNotMatch(r.stdout, /✗/);
});

test('cli: run exits 1 when an expectation fails and says what happened', () => {
  const file = join(tmp, 'failing.yaml');
  writeFileSync(file, FAILING);
  const r = isolab('run', file, '--no-timeline');
  assert.equal(r.status, 1);
  assert.match(r.stdout, new RegExp(`✗ ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:7:17 .*got value 0`));
});

test('cli: run --json validates against the published result schema', () => {
  const validate = new Ajv({ allErrors: true, allowUnionTypes: true }).compile(runResultSchema());
  for (const f of ['scenarios/tlb-shootdown.yaml', 'scenarios/segv-codes.yaml']) {
    const r = isolab('run', f, '--json');
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { passed: boolean; seed: number; policy: string; verdicts: { status: string }[] };
    assert.ok(validate(out as object), JSON.stringify(validate.errors));
    assert.equal(out.passed, true);
  }
  const file = join(tmp, 'failing-json.yaml');
  writeFileSync(file, FAILING);
  const r = isolab('run', file, '--json');
  assert.equal(r.status, 1);
  const out = JSON.parse(r.stdout) as { passed: boolean; seed: number; policy: string; verdicts: { status: string }[] };
  assert.ok(validate(out as object), JSON.stringify(validate.errors));
  assert.equal(out.passed, false);
  assert.equal(out.verdicts[0].status, 'failed');
});

test('cli: --seed makes the schedule random and is reported', () => {
  const r = isolab('run', 'scenarios/fork-cow.yaml', '--seed', '7', '--json');
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { passed: boolean; seed: number; policy: string; verdicts: { status: string }[] };
  assert.equal(out.seed, 7);
  assert.equal(out.policy, 'random');
  const bad = isolab('run', 'scenarios/fork-cow.yaml', '--seed', 'x');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--seed must be a non-negative integer/);
});

test('cli: a malformed file is reported as file:line:col, exit 2 for run, 1 for check', () => {
  const file = join(tmp, 'bad.yaml');
  writeFileSync(file, 'machine:\n  cpus: 2\nprocesses:\n  - name: p\n    cpu: 3\n    ops: [ getpid ]\n');
  const run = isolab('run', file);
  assert.equal(run.status, 2);
  assert.equal(run.stderr.trim(), `${file}:5:10: CPU 3 does not exist: the machine has 2 CPUs (0 to 1); raise machine.cpus or pick another CPU`);
  assert.equal(run.stdout, '', 'nothing ran');
  const check = isolab('check', file, 'scenarios/fork-cow.yaml');
  assert.equal(check.status, 1);
  assert.match(check.stdout, /ok {2}scenarios\/fork-cow\.yaml/);
  assert.match(check.stdout, /1 of 2 files are valid/);
});

test('cli: check accepts every built-in scenario', () => {
  const r = isolab('check', '--quiet', 'scenarios/efault.yaml', 'scenarios/execve-fresh.yaml', 'scenarios/fork-cow.yaml');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, '');
});

test('cli: trace writes JSONL and Perfetto files; a failed trace leaves no file', () => {
  const jsonl = join(tmp, 't.jsonl');
  let r = isolab('trace', 'scenarios/fork-cow.yaml', '--format', 'jsonl', '-o', jsonl);
  assert.equal(r.status, 0, r.stderr);
  const lines = readFileSync(jsonl, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines[0].type, 'trace_header');
  assert.ok(lines.some((e) => e.type === 'fork'));
  assert.ok(lines.some((e) => e.type === 'page_fault' && e.outcome === 'copied'));
  const perfetto = join(tmp, 't.json');
  r = isolab('trace', 'scenarios/fork-cow.yaml', '--format', 'perfetto', '-o', perfetto);
  assert.equal(r.status, 0, r.stderr);
  const trace = JSON.parse(readFileSync(perfetto, 'utf8'));
  const tracks = trace.traceEvents.filter((e: { ph: string; name: string }) => e.ph === 'M' && e.name === 'thread_name').map((e: { args: { name: string } }) => e.args.name);
  assert.ok(tracks.includes('CPU 0') && tracks.includes('CPU 1'), `one track per CPU: ${tracks.join(', ')}`);
  const missing = join(tmp, 'no-such-dir', 'x.json');
  r = isolab('trace', 'scenarios/fork-cow.yaml', '--format', 'perfetto', '-o', missing);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /cannot write/);
  assert.equal(existsSync(missing), false);
  r = isolab('trace', 'scenarios/fork-cow.yaml', '--format', 'svg');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /Allowed choices are jsonl, perfetto/);
});

test('cli: help for the command and each subcommand', () => {
  const top = isolab('--help');
  assert.equal(top.status, 0);
  for (const c of ['run', 'check', 'trace', 'tour', 'schema']) assert.match(top.stdout, new RegExp(`\\b${c}\\b`));
  const run = isolab('run', '--help');
  assert.equal(run.status, 0);
  assert.match(run.stdout, /--seed <n>/);
  const unknown = isolab('frobnicate');
  assert.equal(unknown.status, 2);
});

test('cli: the published schema files are current', () => {
  assert.deepEqual(JSON.parse(readFileSync(join(root, 'schema/scenario.schema.json'), 'utf8')), JSON.parse(JSON.stringify(scenarioSchema())), 'run npm run schema');
  assert.deepEqual(JSON.parse(readFileSync(join(root, 'schema/run-result.schema.json'), 'utf8')), JSON.parse(JSON.stringify(runResultSchema())), 'run npm run schema');
  assert.deepEqual(JSON.parse(readFileSync(join(root, 'schema/replay-result.schema.json'), 'utf8')), JSON.parse(JSON.stringify(replayResultSchema())), 'run npm run schema');
  const both = isolab('schema', '--result', '--replay');
  assert.equal(both.status, 2);
  assert.match(both.stderr, /give one/);
});

test('cli: the tour runs every built-in scenario and prints its question and answer', () => {
  const r = isolab('tour');
  assert.equal(r.status, 0, r.stderr);
  const json = isolab('tour', '--json');
  assert.equal(json.status, 0);
  const out = JSON.parse(json.stdout) as { scenarios: { file: string; question: string; answer: string; passed: boolean }[]; machine: unknown[] };
  assert.ok(out.scenarios.length >= 7);
  for (const s of out.scenarios) {
    assert.ok(s.passed, s.file);
    assert.ok(r.stdout.includes(s.question), `the text tour asks ${s.question}`);
    assert.ok(r.stdout.includes(s.file));
  }
  assert.ok(out.machine.length >= 7, 'the processor stops follow');
});

test('cli: explore --witness prints a schedule that makes the race scenario pass, and run replays it', () => {
  const found = isolab('explore', 'scenarios/fork-dirty-race.yaml', '--witness', '--until', 'ops', '--preemptions', '2');
  assert.equal(found.status, 0, found.stderr);
  assert.match(found.stdout, /✓ witness: every expectation of the scenario held/);
  assert.match(found.stdout, /as schedule\.steps: \['0\*\d+', '1\*\d+'.*\]/);
  const schedule = /run: isolab run \S+ --schedule (\S+)/.exec(found.stdout)?.[1];
  assert.ok(schedule, found.stdout);
  const run = isolab('run', 'scenarios/fork-dirty-race.yaml', '--schedule', schedule, '--no-timeline');
  assert.equal(run.status, 0, run.stdout);
  assert.match(run.stdout, /pte_retry events: exactly 1/);
  const none = isolab('explore', 'scenarios/fork-dirty-race.yaml', '--witness', '--until', 'ops', '--preemptions', '0');
  assert.equal(none.status, 1, 'without a preemption the writer cannot come between fork\'s read and its cmpxchg');
  assert.match(none.stdout, /no schedule found under which every expectation holds/);
});

test('cli: run and trace take --kernel over the scenario\'s options, as explore does (fork-madvfree-lost under a fix keeps the data)', () => {
  // Upstream: every expectation holds (the child reads 0 after reclaim). With
  // anon_dirty_drop=folio_mark_dirty the COW break marks the lazyfree folio dirty, reclaim keeps
  // it (redirtied), and the child's last load reads the writer's 2: its expectation of 0 fails.
  const up = isolab('run', 'scenarios/fork-madvfree-lost.yaml', '--json');
  assert.equal(up.status, 0, up.stderr);
  const fixed = isolab('run', 'scenarios/fork-madvfree-lost.yaml', '--json', '--kernel', 'anon_dirty_drop=folio_mark_dirty');
  assert.equal(fixed.status, 1, fixed.stderr);
  const verdicts = JSON.parse(fixed.stdout).verdicts as { path: string; status: string; actual?: string }[];
  const last = verdicts.find((v) => v.path === 'processes[0].ops[0].fork.ops[3].expect')!;
  assert.equal(last.status, 'failed');
  assert.match(last.actual!, /value 2\b/);
  const out = join(tmp, 'fixed.jsonl');
  const tr = isolab('trace', 'scenarios/fork-madvfree-lost.yaml', '-o', out, '--kernel', 'anon_dirty_drop=folio_mark_dirty');
  assert.equal(tr.status, 0, tr.stderr);
  const outcomes = readFileSync(out, 'utf8').split('\n').filter((l) => l.includes('"reclaim"')).map((l) => JSON.parse(l).outcome);
  assert.deepEqual(outcomes, ['redirtied']);
  const bad = isolab('run', 'scenarios/fork-cow.yaml', '--kernel', 'anon_dirty_drop=sometimes');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /anon_dirty_drop/);
  assert.doesNotMatch(bad.stderr, /    at /, 'no stack trace');
});
