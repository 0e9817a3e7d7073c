/**
 * schedule.steps reads the explorer's schedule syntax (src/explore/schedule.ts), so a
 * counterexample printed by `isolab explore` can be pasted into a scenario file: CPU numbers,
 * `e<cpu>.<slot>` evictions, `p<cpu>` and `p<cpu>><cpu>` preemptions, each with `*count`.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileScenarioText, runScenario } from '../../src/scenario/index.js';
import { formatSchedule, parseSchedule } from '../../src/explore/schedule.js';

const PROCESS = 'processes:\n  - name: p\n    cpu: 0\n    ops:\n      - repeat: { count: 40, ops: [getpid] }\n';

const script = (steps: string): number[] | undefined => compileScenarioText(`machine: { cpus: 2 }\nschedule:\n  steps: ${steps}\n${PROCESS}`, 's.yaml').system.script;

test('schedule.steps: the explorer\'s tokens, one per item or comma-separated in one, give the script parseSchedule gives', () => {
  const want = parseSchedule('0*5,1,e1.3,p0,p0>1*2', 2);
  assert.deepEqual(script("['0*5', 1, 'e1.3', 'p0', 'p0>1*2']"), want);
  assert.deepEqual(script("['0*5,1,e1.3,p0,p0>1*2']"), want);
  // What `isolab explore` prints reads back as the same script.
  assert.deepEqual(script(`['${formatSchedule(want)}']`), want);
  // Spaces around * were always allowed in a file.
  assert.deepEqual(script("['0 * 5', '1']"), parseSchedule('0*5,1', 2));
});

test('schedule.steps: p0>1 moves the task running on CPU 0 to CPU 1 (a migrate event), and it goes on there', () => {
  // preempt full: the task can be preempted at any step of its getpid loop, in user mode or in
  // the kernel with preemption on, so the preemption after 40 steps lands.
  const text = `machine: { cpus: 2 }\nkernel: { preempt: full }\nschedule:\n  steps: ['0*40', 'p0>1']\n${PROCESS}`
    + 'expect:\n  exit: { p: 0 }\n  events:\n'
    + '    - { type: migrate, thread: p, cpu: 0, to: 1, exactly: 1 }\n'
    + '    - { type: syscall, thread: p, cpu: 0, name: getpid, at_least: 1 }\n'
    + '    - { type: syscall, thread: p, cpu: 1, name: getpid, at_least: 1 }\n'
    + '    - { type: exit, thread: p, cpu: 1, exactly: 1 }\n';
  const r = runScenario(compileScenarioText(text, 'migrate.yaml'));
  assert.deepEqual(r.verdicts.filter((v) => v.status !== 'held'), []);
  // Without the preemption item the task never leaves CPU 0 (no load balancing).
  const stay = runScenario(compileScenarioText(text.replace(", 'p0>1'", ''), 'stay.yaml'));
  assert.equal(stay.verdicts.find((v) => v.path === 'expect.events[0]')?.status, 'failed');
});
