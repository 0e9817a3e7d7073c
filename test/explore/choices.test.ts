/**
 * Scheduler choices in the search (`--preempt-choices`): the explorer may preempt a CPU's task
 * where the kernel could (a user instruction boundary, or with preempt=full a kernel step where
 * preemption is on) and move it to another CPU (System.preempt). A property that holds only
 * while no kernel path changes CPU is broken with one such choice and not without; the
 * schedule it prints (`p0>1`) replays to the same result through the Execution API, `replay`
 * and `isolab run --schedule`; and a search without the option is the one it was before.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dependent, Execution } from '../../src/explore/execution.js';
import { explore, replay, type ExploreOptions } from '../../src/explore/explore.js';
import { searchIdentity } from '../../src/explore/identity.js';
import { formatSchedule, parseSchedule } from '../../src/explore/schedule.js';
import { compileScenarioFile, compileScenarioText } from '../../src/scenario/index.js';
import { runScenario } from '../../src/scenario/run.js';
import { preemptionStep } from '../../src/system.js';
import { STEP_RESCHED } from '../../src/kernel/steps.js';

const base: ExploreOptions = {
  mode: 'dpor', invariants: ['scenario'], evictions: 0, preemptions: Infinity, maxDepth: Infinity, executions: Infinity,
  seed: 1, pctDepth: 2, until: 'end', stopAtFirst: false, fingerprints: false, minimise: true,
};

/**
 * One task on CPU 0 of two, nothing else runnable: the scheduler never preempts it on its own,
 * so no kernel path of it gives its CPU up unless the explorer moves it.
 */
const text = (preempt: string): string => `
name: path-moves
machine:
  cpus: 2
kernel:
  preempt: ${preempt}
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
`;
const full = compileScenarioText(text('full'), 'path-moves.yaml');
const none = compileScenarioText(text('none'), 'path-moves.yaml');

test('choices: a kernel path moved to another CPU is found with --preempt-choices 1, not with 0', () => {
  const without = explore(full, base);
  assert.equal(without.violations.length, 0);
  assert.equal(without.complete, 1, 'one task alone: one trace');
  const found = explore(full, { ...base, preemptChoices: 1, stopAtFirst: true });
  assert.equal(found.violations.length, 1);
  const v = found.violations[0];
  assert.equal(v.invariant, 'scenario');
  assert.match(v.text, /p0>1/, 'the schedule preempts the task on CPU 0 and moves it to CPU 1');
  assert.deepEqual(parseSchedule(v.text, 2), v.schedule, 'the text is the schedule');
});

test('choices: with preempt=none a kernel path is offered a move only at a cond_resched() point (zap_pmd_range after the PTE table)', () => {
  const r = explore(none, { ...base, preemptChoices: 1 });
  assert.ok(r.exhaustive);
  assert.equal(r.violations.length, 0, 'cond_resched() is not preempt_schedule_irq: no preempt event');
  assert.ok(r.complete > 1, `moves make more traces (${r.complete})`);
  // Stepping CPU 0 alone: every point where the task can be moved from inside a kernel path is a
  // cond_resched() step with preempt_count 0; munmap's unmap_page_range has one.
  const exec = new Execution(none, { invariants: [], evictions: 0, preemptChoices: 1 });
  let points = 0;
  let moved = false;
  const syscalls: { name: string; cpu: number }[] = [];
  exec.sys.events.subscribe((e) => void (e.type === 'syscall' && syscalls.push({ name: e.name, cpu: e.cpu })));
  for (let n = 0; n < 10_000 && exec.enabled().length > 0; n++) {
    const t = exec.sys.task(1);
    if (!moved && t?.kpath && exec.sys.canPreempt(0, 1)) {
      points++;
      assert.equal(t.nextStep, STEP_RESCHED, 'at a cond_resched() step');
      assert.equal(exec.sys.kernel.percpu[0].preempt_count, 0);
      exec.step(preemptionStep(0, 1));
      moved = true;
      continue;
    }
    exec.step(exec.enabled().filter((x) => x >= 0)[0]);
  }
  assert.equal(points, 1, 'one cond_resched() point: munmap\'s single PTE table');
  assert.deepEqual(syscalls.find((x) => x.name === 'munmap'), { name: 'munmap', cpu: 1 }, 'munmap returned on CPU 1');
});

test('choices: the printed schedule replays to the same violation, and the path ends on CPU 1', () => {
  const v = explore(full, { ...base, preemptChoices: 1, stopAtFirst: true }).violations[0];
  const schedule = parseSchedule(v.text, 2);
  const again = replay(full, schedule, { invariants: ['scenario'], record: true });
  assert.equal(again.violation?.message, v.message);
  assert.equal(again.stuckAt, 0);
  // Step by step: the preemption moves tid 1, inside its kernel path, from CPU 0 to CPU 1.
  const exec = new Execution(full, { invariants: ['scenario'], evictions: 0, preemptChoices: 1 });
  for (const item of schedule.slice(0, -1)) exec.step(item);
  const last = schedule[schedule.length - 1];
  assert.ok(exec.enabled().includes(last));
  assert.ok(exec.sys.taskInfo(1) && exec.sys.current(0) === 1);
  exec.step(last);
  assert.equal(exec.sys.current(0), 0, 'CPU 0 is idle');
  assert.equal(exec.sys.task(1)!.cpu, 1);
  assert.ok(exec.sys.task(1)!.kpath, 'still inside its kernel path');
  assert.equal(exec.violation?.message, v.message);
  // isolab run --schedule: the scenario's policy runs the rest; the same expectation fails.
  const run = runScenario(full, { schedule });
  assert.equal(run.passed, false);
  const bad = run.verdicts.filter((x) => x.status === 'failed');
  assert.equal(bad.length, 1);
  assert.match(bad[0].expected, /preempt events: exactly 0/);
  assert.ok(run.verdicts.some((x) => x.status === 'held' && /munmap/.test(x.where + x.expected)), 'munmap still returns 0 on CPU 1');
});

test('choices: a preemption step conflicts with the steps of both CPUs it changes', () => {
  const exec = new Execution(full, { invariants: [], evictions: 0, preemptChoices: 1 });
  const first = exec.step(0);
  const moved = preemptionStep(0, 1);
  assert.ok(exec.enabled().includes(moved));
  assert.ok(!exec.enabled().includes(preemptionStep(0, 0)), 'in place only when another task waits');
  const p = exec.step(moved);
  assert.ok(dependent(first, p), 'with the step of CPU 0 before it');
  const next = exec.step(1);
  assert.ok(dependent(p, next), 'with the step of CPU 1 after it');
  assert.ok(!exec.enabled().some((x) => x < 0), 'the bound is spent');
});

test('choices: schedule text round-trips p<cpu> and p<cpu>><cpu>; bad ones are refused', () => {
  const items = [0, 0, preemptionStep(0, 1), 1, preemptionStep(1, 1), preemptionStep(1, 1)];
  assert.equal(formatSchedule(items), '0*2,p0>1,1,p1*2');
  assert.deepEqual(parseSchedule('0*2,p0>1,1,p1*2', 2), items);
  assert.throws(() => parseSchedule('p0>2', 2), /item 1 \("p0>2"\): the machine has CPUs 0 to 1/);
  assert.throws(() => parseSchedule('p0>', 2), /item 1/);
  // A slot too large for evictionStep's encoding is refused, not read as a preemption.
  assert.throws(() => parseSchedule('e0.4194304', 2), /a TLB slot is below 65536/);
});

test('choices: the search identity includes --preempt-choices', () => {
  const a = searchIdentity('x', 'text', [], base, 1);
  const b = searchIdentity('x', 'text', [], { ...base, preemptChoices: 1 }, 1);
  assert.equal(a.preemptChoices, 0);
  assert.equal(b.preemptChoices, 1);
});

test('choices: a search without the option is the search with none allowed (fork-cow, one preemption)', () => {
  const c = compileScenarioFile(new URL('../../../scenarios/fork-cow.yaml', import.meta.url).pathname);
  const o: ExploreOptions = { ...base, invariants: ['stale_tlb', 'lost_dirty', 'debug_checks', 'deadlock', 'scenario'], preemptions: 1, fingerprints: true };
  const r = explore(c, o);
  const zero = explore(c, { ...o, preemptChoices: 0 });
  assert.ok(r.complete > 1);
  assert.deepEqual([zero.executions, zero.complete, zero.sleepBlocked, zero.steps], [r.executions, r.complete, r.sleepBlocked, r.steps]);
  assert.deepEqual([...(zero.traces ?? [])].sort(), [...(r.traces ?? [])].sort(), 'the same traces');
});
