/**
 * `--until ops` (docs/explore.md): the explored window ends when every live thread has run its
 * operations, and the exits run after it, unexplored. So a thread that finishes first does not
 * exit while the others still run theirs: it is held at its end (sim/hold.ts), asleep, its CPU
 * free for other tasks, and released when the window is over, or earlier when nothing else can
 * run (a vfork parent waits for its child's exit). What the expected orders rest on: exit_group
 * kills the other threads of the group (do_group_exit, zap_other_threads), and a vfork parent
 * sleeps until its child exits or execs (wait_for_vfork_done).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Execution, type Step } from '../../src/explore/execution.js';
import { compileScenarioText } from '../../src/scenario/index.js';
import type { IsolabEvent } from '../../src/system.js';

/** The main thread stores once and ends (exit_group); a thread on CPU 1 makes four syscalls. */
const EARLY_END = `
machine: { cpus: 2 }
processes:
  - name: p
    cpu: 0
    setup:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }
        as: buf
    threads:
      - name: t
        cpu: 1
        ops:
          - repeat: { count: 4, ops: [ getpid ] }
    ops:
      - store: { addr: $buf, value: 1 }
`;

/** A vfork child on CPU 1 makes a syscall and ends; its parent, asleep in vfork until then, makes one after. */
const VFORK = `
machine: { cpus: 2 }
processes:
  - name: p
    cpu: 0
    ops:
      - vfork:
          name: c
          cpu: 1
          ops:
            - getpid
      - getpid
`;

interface Seen {
  exec: Execution;
  events: IsolabEvent[];
  /** Indexes into `events` where each step ended. */
  stepEnds: number[];
  released: number;
  steps: Step[];
}

/** Runs the scenario as the explorer would, always taking `prefer` when it can run (else the first item enabled), then finishes it. */
function run(text: string, until: 'ops' | 'end', prefer: number): Seen {
  const exec = new Execution(compileScenarioText(text, 'until.yaml'), { invariants: [], evictions: 0, until });
  const events: IsolabEvent[] = [];
  exec.sys.events.subscribe((e) => events.push(e));
  const seen: Seen = { exec, events, stepEnds: [], released: 0, steps: [] };
  for (let n = 0; n < 10_000; n++) {
    const en = exec.enabled();
    if (en.length === 0) break;
    const s = exec.step(en.includes(prefer) ? prefer : en[0]);
    seen.steps.push(s);
    if (s.released) seen.released++;
    seen.stepEnds.push(events.length);
  }
  exec.finish();
  return seen;
}

const at = (events: IsolabEvent[], type: string, tid: number): number => events.findIndex((e) => e.type === type && 'tid' in e && e.tid === tid);

test('until ops: a thread that has run its operations exits only after the others have run theirs', () => {
  // Tids: the main thread 1, the thread 2. CPU 0 first whenever it can run.
  const { events, stepEnds, released } = run(EARLY_END, 'ops', 0);
  const mainEnd = at(events, 'user_end', 1);
  const threadEnd = at(events, 'user_end', 2);
  assert.ok(mainEnd >= 0 && threadEnd >= 0, 'both threads ran their operations');
  assert.ok(mainEnd < threadEnd, 'the main thread, first on CPU 0, ended first');
  const mainExit = at(events, 'exit', 1);
  assert.ok(mainExit > threadEnd, `the main thread's exit (event ${mainExit}) after the thread's last operation (event ${threadEnd})`);
  assert.ok(mainExit >= stepEnds[stepEnds.length - 1], 'and after the explored window: in the unexplored tail');
  assert.equal(released, 0, "nothing waited for the held thread: released only at the window's end");
  // The held thread sleeps: CPU 0 had nothing to run, so the thread's getpid syscalls all ran on CPU 1 in the window.
  const getpids = events.filter((e, i) => e.type === 'syscall_enter' && e.tid === 2 && i < stepEnds[stepEnds.length - 1]).length;
  assert.equal(getpids, 4);
});

test('until end: the same schedule policy lets the main thread exit first, and its exit_group kills the thread', () => {
  // The contrast that makes the test above able to fail: without the hold, exit_group runs in the window.
  const { events } = run(EARLY_END, 'end', 0);
  const mainExit = at(events, 'exit', 1);
  assert.ok(mainExit >= 0);
  assert.equal(at(events, 'user_end', 2), -1, 'the thread never finished its operations: SIGKILL from exit_group');
});

test('until ops: a held thread is released when nothing else can run, and the window goes on', () => {
  // Tids: the parent 1, the vfork child 2. The parent sleeps in vfork until the child exits.
  const { events, stepEnds, released } = run(VFORK, 'ops', 1);
  assert.equal(released, 1, 'one step released the held child');
  const childEnd = at(events, 'user_end', 2);
  const childExit = at(events, 'exit', 2);
  const parentEnd = at(events, 'user_end', 1);
  assert.ok(childEnd >= 0 && childEnd < childExit, 'the child ended its operations, then exited');
  assert.ok(childExit < parentEnd, "the child's exit woke the parent, which then ran its operations");
  assert.ok(parentEnd < stepEnds[stepEnds.length - 1], "the parent's operations ran in the explored window");
  const parentSyscalls = events.filter((e) => e.type === 'syscall_enter' && e.tid === 1).map((e) => (e as { name: string }).name);
  assert.deepEqual(parentSyscalls.slice(0, 2), ['vfork', 'getpid'], 'vfork, then the getpid after it');
});

test('until ops: a schedule is replayed step for step, the release included', () => {
  const first = run(VFORK, 'ops', 1);
  const again = new Execution(compileScenarioText(VFORK, 'until.yaml'), { invariants: [], evictions: 0, until: 'ops' });
  const steps: number[] = first.exec.schedule.slice();
  let released = 0;
  for (const item of steps) {
    assert.ok(again.enabled().includes(item), `item ${item} enabled at step ${again.schedule.length}`);
    if (again.step(item).released) released++;
  }
  assert.deepEqual(again.enabled(), [], 'the window ends where it ended');
  assert.equal(released, first.released);
  // Taken again with the footprints the first run recorded (DPOR's replay to a branch point): the release happens too.
  const known = new Execution(compileScenarioText(VFORK, 'until.yaml'), { invariants: [], evictions: 0, until: 'ops' });
  const ends: string[] = [];
  known.sys.events.subscribe((e) => {
    if (e.type === 'user_end') ends.push(`${e.tid}`);
  });
  for (const s of first.steps) known.step(s.item, s);
  known.resync();
  assert.deepEqual(known.enabled(), [], 'the window ends where it ended');
  assert.deepEqual(ends, ['2', '1'], 'the child ended, was released, and the parent ran its operations to the end');
});
