/**
 * A counterexample of `isolab explore`, followed with the other commands: `isolab trace
 * --schedule` writes the run of that schedule, whose events show what the violation says
 * happened (the preemption and migration the schedule makes, the dirty bit set between fork's
 * read and its store); `isolab replay --json` reports the violation the explorer reported, at
 * the step it reported, in a result that matches its schema; a bad schedule is a one-line error
 * naming the item, exit 2, nothing written.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { replayResultSchema, type ReplayJson } from '../../src/cli/replay.js';
import { formatSchedule, parseSchedule } from '../../src/explore/schedule.js';
import type { RunReport } from '../../src/scenario/run.js';
import { isPreemption, preemptionOf } from '../../src/system.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const cli = join(root, 'dist/src/cli/main.js');
const tmp = mkdtempSync(join(tmpdir(), 'isolab-cli-replay-'));

function isolab(...args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

interface Found {
  invariant: string;
  message: string;
  schedule: number[];
  text: string;
}

/** The first counterexample `isolab explore FILE ARGS --first --json` reports. */
function counterexample(file: string, ...args: string[]): Found {
  const r = isolab('explore', file, ...args, '--first', '--json');
  assert.equal(r.status, 1, `a violation is found: ${r.stderr}`);
  const found = (JSON.parse(r.stdout) as { violations: Found[] }).violations;
  assert.equal(found.length, 1);
  return found[0];
}

interface TraceLine {
  type: string;
  step: number;
  cpu?: number;
  [field: string]: unknown;
}

/** A JSONL trace: its header and its events. */
function readJsonl(file: string): { header: Record<string, unknown>; events: TraceLine[] } {
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as TraceLine);
  return { header: lines[0], events: lines.slice(1) };
}

const validate = new Ajv({ allErrors: true, allowUnionTypes: true }).compile(replayResultSchema());

/** A replay --json result, checked against its schema. */
function replayJson(text: string): ReplayJson {
  const data = JSON.parse(text) as unknown;
  assert.ok(validate(data), JSON.stringify(validate.errors));
  return data as ReplayJson;
}

/**
 * One task alone on CPU 0 of two, with preempt=full: only an explorer preemption choice can
 * move it, and the scenario's own expectation (no preempt event) breaks when one does.
 */
const MOVES = join(tmp, 'path-moves.yaml');
writeFileSync(MOVES, `name: path-moves
machine:
  cpus: 2
kernel:
  preempt: full
processes:
  - name: p
    cpu: 0
    ops:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }
        as: buf
      - store: { addr: $buf, value: 1 }
      - munmap: { addr: $buf, len: PAGE_SIZE }
        expect: 0
expect:
  events:
    - { type: preempt, exactly: 0, note: "no kernel path gave its CPU up" }
`);

test('trace --schedule: the preemption the counterexample makes is in the trace at its step, as in run --schedule', () => {
  const v = counterexample(MOVES, '--preempt-choices', '1');
  assert.equal(v.invariant, 'scenario');
  const at = v.schedule.findIndex(isPreemption);
  assert.ok(at >= 0, `the schedule ${v.text} has a preemption`);
  assert.equal(v.schedule.filter(isPreemption).length, 1);
  const { cpu, to } = preemptionOf(v.schedule[at]);
  assert.notEqual(cpu, to, 'the task is moved');
  const step = at + 1;

  const out = join(tmp, 'moves.jsonl');
  const r = isolab('trace', MOVES, '--schedule', v.text, '-o', out);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, '');
  const { header, events } = readJsonl(out);
  assert.equal(header.schedule, v.text, 'the header says which schedule the run replayed');
  const preempts = events.filter((e) => e.type === 'preempt');
  assert.deepEqual(preempts.map((e) => [e.step, e.cpu]), [[step, cpu]], 'one preemption: the schedule’s, on its CPU, at its step');
  const migrations = events.filter((e) => e.type === 'migrate');
  assert.deepEqual(migrations.map((e) => [e.step, e.from, e.to]), [[step, cpu, to]]);
  const switched = events.filter((e) => e.type === 'context_switch' && e.step === step && e.cpu === to);
  assert.equal(switched.length, 1, 'the destination CPU switches to the task');

  // The same schedule under run --schedule: its timeline shows the task running on the destination at that step.
  const run = isolab('run', MOVES, '--schedule', v.text, '--json');
  const report = JSON.parse(run.stdout) as RunReport;
  assert.ok(report.timeline.some((e) => e.step === step && e.cpu === to && e.kind === 'switch'), JSON.stringify(report.timeline));
  assert.equal(report.counts.context_switches, events.filter((e) => e.type === 'context_switch').length, 'run and trace saw the same run');

  // Perfetto: the same facts in otherData, and the preemption as an instant at the same time.
  const pf = isolab('trace', MOVES, '--schedule', v.text, '-f', 'perfetto');
  assert.equal(pf.status, 0, pf.stderr);
  const chrome = JSON.parse(pf.stdout) as { otherData: Record<string, unknown>; traceEvents: { name: string; ts: number; args?: Record<string, unknown> }[] };
  assert.equal(chrome.otherData.schedule, v.text);
  assert.deepEqual(chrome.traceEvents.filter((e) => e.name === 'preempt').map((e) => e.ts), [step]);
});

test('replay --json: the explorer’s violation, at the step it reported, with the scenario’s verdicts', () => {
  const v = counterexample(MOVES, '--preempt-choices', '1');
  const r = isolab('replay', MOVES, '--schedule', v.text, '--json');
  assert.equal(r.status, 1, r.stderr);
  const out = replayJson(r.stdout);
  assert.equal(out.scenario, 'path-moves');
  assert.deepEqual(out.schedule, { text: v.text, items: v.schedule });
  assert.equal(out.stuckAt, null);
  assert.deepEqual(out.violation, { invariant: v.invariant, message: v.message, step: v.schedule.length });
  // The scenario invariant is the scenario's own verdict failing: the events expectation.
  const failed = out.verdicts.filter((x) => x.status === 'failed');
  assert.deepEqual(failed.map((x) => x.kind), ['events']);
  assert.ok(v.message.startsWith(failed[0].where), `${v.message} names ${failed[0].where}`);
  assert.equal(out.passed, false);
  assert.equal(out.counts.steps, v.schedule.length, 'the replay stopped at the violation');

  // -o: the JSON in the file, the text on stdout; with --json, the file only.
  const file = join(tmp, 'replay.json');
  const text = isolab('replay', MOVES, '--schedule', v.text, '-o', file);
  assert.equal(text.status, 1);
  assert.match(text.stdout, new RegExp(`✗ scenario after step ${v.schedule.length}: `));
  assert.deepEqual(replayJson(readFileSync(file, 'utf8')), out);
  const quiet = isolab('replay', MOVES, '--schedule', v.text, '--json', '-o', file);
  assert.equal(quiet.status, 1);
  assert.equal(quiet.stdout, '');
  assert.deepEqual(replayJson(readFileSync(file, 'utf8')), out);
});

test('replay --json and trace --schedule of a lost dirty bit (seed 003, read_modify_write)', () => {
  const FILE = 'scenarios/fork-dirty-lost.yaml';
  const v = counterexample(FILE, '--until', 'ops', '--preemptions', '1', '--invariants', 'lost_dirty');
  assert.equal(v.invariant, 'lost_dirty');
  assert.deepEqual(parseSchedule(v.text, 2), v.schedule);
  const r = isolab('replay', FILE, '--schedule', v.text, '--invariants', 'lost_dirty', '--json');
  assert.equal(r.status, 1, r.stderr);
  const out = replayJson(r.stdout);
  assert.deepEqual(out.invariants, ['lost_dirty']);
  assert.deepEqual(out.violation, { invariant: v.invariant, message: v.message, step: v.schedule.length });

  // The trace shows the race the message describes: CPU 1's write set D in the PTE of the frame
  // it names, during one of CPU 1's items, while fork was running on CPU 0.
  const frame = Number(/frame (\d+)/.exec(v.message)![1]);
  const trace = join(tmp, 'lost.jsonl');
  const t = isolab('trace', FILE, '--schedule', v.text, '-o', trace);
  assert.equal(t.status, 0, t.stderr);
  // The run goes on after the schedule (the scenario's policy): look at the schedule's steps.
  const events = readJsonl(trace).events.filter((e) => e.step <= v.schedule.length);
  const dirty = events.filter((e) => e.type === 'ad_set' && e.dirty === true && e.level === 1 && Number(BigInt(e.entry as string) >> 12n & 0xfffffffffn) === frame);
  assert.equal(dirty.length, 1, 'one D set on the frame’s PTE');
  assert.equal(dirty[0].cpu, 1);
  assert.equal(v.schedule[dirty[0].step - 1], 1, 'set during a CPU 1 item of the schedule');
  const entered = events.filter((e) => e.type === 'syscall_enter' && e.name === 'fork');
  const forked = events.filter((e) => e.type === 'fork' && e.flags === 0);
  assert.equal(entered.length, 1);
  assert.equal(forked.length, 1);
  assert.ok(entered[0].step < dirty[0].step && dirty[0].step < forked[0].step, `fork entered at step ${entered[0].step}, D set at ${dirty[0].step}, fork done at ${forked[0].step}`);
  assert.equal(formatSchedule(v.schedule), v.text);
});

test('trace and replay: a bad schedule is a one-line error naming the item, exit 2, nothing written', () => {
  const dir = mkdtempSync(join(tmp, 'bad-'));
  const cases: [string, RegExp][] = [
    ['0*3,x1', /^isolab: schedule: item 2 \("x1"\): expected a CPU number/],
    ['0,p0>5', /^isolab: schedule: item 2 \("p0>5"\): the machine has CPUs 0 to 1\n$/],
    ['e0.70000', /^isolab: schedule: item 1 \("e0\.70000"\): a TLB slot is below 65536\n$/],
  ];
  for (const [schedule, message] of cases) {
    for (const args of [['trace', MOVES, '-o', join(dir, 'out.jsonl')], ['trace', MOVES, '-f', 'perfetto', '-o', join(dir, 'out.json')], ['replay', MOVES, '--json', '-o', join(dir, 'out.json')], ['replay', MOVES, '-o', join(dir, 'out.json')]]) {
      const r = isolab(...args, '--schedule', schedule);
      assert.equal(r.status, 2, `${args.join(' ')} --schedule ${schedule}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.split('\n').length, 2, 'one line, no stack trace');
      assert.equal(r.stdout, '');
      assert.deepEqual(readdirSync(dir), [], 'no output file, no temporary file');
    }
  }
  // A schedule that names a CPU with nothing to do is not an error of the input: replay says where, exit 2.
  const stuck = isolab('replay', MOVES, '--schedule', '0*3,1,0', '--json', '-o', join(dir, 'stuck.json'));
  assert.equal(stuck.status, 2, stuck.stderr);
  const out = replayJson(readFileSync(join(dir, 'stuck.json'), 'utf8'));
  assert.deepEqual(out.stuckAt, { step: 4, item: '1' });
  assert.equal(out.violation, null);
  assert.equal(out.counts.steps, 3, 'the replay stopped before the item that could not run');
  assert.ok(existsSync(join(dir, 'stuck.json')));
});
