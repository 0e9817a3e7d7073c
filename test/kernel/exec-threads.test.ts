/**
 * execve in a multi-threaded process (fs/exec.c begin_new_exec -> de_thread). Expected values
 * from Linux, not from the model: man 2 execve "All threads other than the calling thread are
 * destroyed during an execve() ... the PID of the calling process is unchanged"; de_thread
 * kills the other threads (zap_other_threads), waits until they are gone, and a non-leader
 * caller takes the leader's pid (exchange_tids) and its place among the parent's children, so
 * the parent's wait4 reports the process with the new image's exit status.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { IsolabEvent, System } from '../../src/system.js';
import type { Task } from '../../src/kernel/task.js';
import type { Op } from '../../src/user/program.js';
import { boot, sc } from './helpers.js';

const CLONE_VM = 0x100, CLONE_SIGHAND = 0x800, CLONE_THREAD = 0x10000;
const THREAD_FLAGS = CLONE_VM | CLONE_SIGHAND | CLONE_THREAD;

type Caller = 'leader' | 'thread';
/** What the other thread does when the exec starts, on the other CPU: user code, or asleep in wait4. */
type Other = 'user' | 'syscall';

interface Outcome {
  sys: System;
  oldpid: number;
  /** The other thread's state when the caller entered execve: its CPU, user mode or not, its state. */
  otherAtExec: { cpu: number; user: boolean; state: string } | null;
}

/**
 * init forks a child (CPU 0) that clones a thread (CPU 1); `caller` execs 'next' (getpid,
 * gettid, exit_group(7)) while the other thread does `other`; init waits for the child.
 */
function runExec(caller: Caller, other: Other, config: Parameters<typeof boot>[0] = {}): Outcome {
  const sys = boot({ cpus: 2, ...config });
  sys.addImage('next', { main: [sc('pid', 'getpid'), sc('tid', 'gettid'), sc('eg', 'exit_group', 7)] });
  // A few yields first, so that the other thread is in its loop or its wait4 when the exec starts.
  const exec: Op[] = [...Array.from({ length: 20 }, (): Op => sc('y', 'sched_yield')), sc('ex', 'execve', '&next', 0, 0)];
  // user: loads for far longer than the exec takes; syscall: wait4 for a grandchild that outlives the exec.
  const busy: Op[] = other === 'user'
    ? Array.from({ length: 4000 }, (): Op => ({ op: 'load', addr: '$stk', into: 'v' }))
    : [sc('w', 'wait4', -1, 0, 0, 0), { op: 'load', addr: '$stk', into: 'after' }];
  const child: Op[] = [
    { op: 'syscall', name: 'mmap', args: [0, 16384, 3, 0x22, -1, 0], into: 'stk' },
    sc('oldpid', 'getpid'),
    ...(other === 'syscall' ? [{ op: 'syscall', name: 'fork', into: 'gc', cpu: 1, child: Array.from({ length: 300 }, (): Op => sc('gy', 'sched_yield')) } as Op] : []),
    { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, '$stk+0x3ff0', 0, 0, 0], into: 'thr', cpu: 1, child: caller === 'thread' ? exec : busy },
    ...(caller === 'leader' ? exec : busy),
  ];
  const out: Outcome = { sys, oldpid: 0, otherAtExec: null };
  sys.events.subscribe((e: IsolabEvent) => {
    if (e.type !== 'syscall_enter' || e.name !== 'execve') return;
    const t = sys.task(e.tid!)!;
    const o = t.group.threads.find((x: Task) => x !== t && x.state !== 'dead');
    if (o) out.otherAtExec = { cpu: o.cpu, user: o.kpath === null, state: o.state };
  });
  sys.spawn({
    main: [
      { op: 'syscall', name: 'fork', into: 'c', cpu: 0, child },
      { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'st' },
      sc('w', 'wait4', -1, '$st', 0, 0),
      { op: 'load', addr: '$st', into: 'status', size: 4 },
    ],
    strings: { next: 'next' },
  }, { cpu: 0 });
  const r = sys.run({ maxSteps: 1_000_000 });
  assert.ok(r.finished, `tasks still alive: ${r.alive.join(', ')}`);
  const rec = sys.log.find((x) => x.fn === 'main.0.child' && x.index === 1);
  assert.ok(rec && rec.value !== undefined, 'the child read its pid');
  out.oldpid = Number(rec.value);
  return out;
}

/** The Linux outcome: the caller runs 'next' as the same process, the rest of the group is gone, init reaps it with status 7. */
function assertLinuxOutcome(o: Outcome): void {
  const { sys, oldpid } = o;
  const next = sys.log.filter((x) => x.image === 'next');
  assert.deepEqual(next.map((x) => [x.index, x.value]), [[0, BigInt(oldpid)], [1, BigInt(oldpid)]],
    'man 2 execve: the new image runs; getpid is the old pid, and the caller is now the only thread (tid = pid)');
  // The other thread never runs another instruction once the new image has started.
  const first = sys.log.findIndex((x) => x.image === 'next');
  const late = sys.log.slice(first).filter((x) => x.image === 'init' && x.pid === oldpid);
  assert.deepEqual(late, [], 'no operation of the old image completes after the exec');
  // wait4 in init sees the process (not the killed threads), exited with exit_group(7): status 7 << 8.
  const init = sys.log.filter((x) => x.image === 'init' && x.pid === 1 && x.fn === 'main');
  assert.equal(init.find((x) => x.index === 2)!.value, BigInt(oldpid));
  assert.equal(init.find((x) => x.index === 3)!.value, 0x700n);
  assert.equal(sys.exitStatus(oldpid), 0x700);
  assert.deepEqual(sys.debugReports, []);
}

for (const caller of ['leader', 'thread'] as const) {
  test(`execve by the ${caller === 'leader' ? 'group leader' : 'non-leader thread'} while the other thread runs user code on the other CPU`, () => {
    const o = runExec(caller, 'user');
    assert.ok(o.otherAtExec, 'the other thread was alive when the exec began');
    assert.equal(o.otherAtExec.cpu, caller === 'leader' ? 1 : 0, 'on the other CPU');
    assert.equal(o.otherAtExec.user, true, 'in user mode');
    assert.equal(o.otherAtExec.state, 'running');
    assertLinuxOutcome(o);
  });

  test(`execve by the ${caller === 'leader' ? 'group leader' : 'non-leader thread'} while the other thread sleeps in wait4 on the other CPU`, () => {
    const o = runExec(caller, 'syscall');
    assert.ok(o.otherAtExec, 'the other thread was alive when the exec began');
    assert.equal(o.otherAtExec.cpu, caller === 'leader' ? 1 : 0, 'on the other CPU');
    assert.equal(o.otherAtExec.user, false, 'inside a syscall');
    assertLinuxOutcome(o);
    // The other thread's wait4 never returned to user mode: its next load never ran.
    assert.equal(o.sys.log.some((x) => x.op === 'load' && x.pid === o.oldpid), false);
  });
}

test('the page-count debug check stays clean at every step while a multi-threaded process is inside execve', () => {
  for (const caller of ['leader', 'thread'] as const) {
    for (const kernel of [{ pti: 'off' as const }, { pti: 'on' as const }, { pti: 'on' as const, entry_stack: 'per_task' as const }]) {
      // One kernel step at a time, so the check also sees the states between the steps of execve.
      const sys = boot({ cpus: 2, stepwise: true, kernel });
      let inExec = 0;
      let checked = 0;
      sys.events.subscribe((e: IsolabEvent) => {
        if (e.type === 'syscall_enter' && e.name === 'execve') inExec++;
        if (e.type === 'exec' || (e.type === 'syscall' && e.name === 'execve')) inExec = 0;
      });
      sys.addImage('next', { main: [sc('pid', 'getpid'), sc('eg', 'exit_group', 0)] });
      const exec: Op[] = [sc('y1', 'sched_yield'), sc('ex', 'execve', '&next', 0, 0)];
      const busy: Op[] = Array.from({ length: 400 }, (_, i): Op => (i % 8 === 0 ? sc('y', 'sched_yield') : { op: 'store', addr: '$stk', value: i }));
      sys.spawn({
        main: [
          { op: 'syscall', name: 'mmap', args: [0, 16384, 3, 0x22, -1, 0], into: 'stk' },
          { op: 'store', addr: '$stk', value: 1 },
          { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, '$stk+0x3ff0', 0, 0, 0], into: 'thr', cpu: 1, child: caller === 'thread' ? exec : busy },
          ...(caller === 'leader' ? exec : busy),
        ],
        strings: { next: 'next' },
      }, { cpu: 0 });
      for (let i = 0; i < 200_000 && sys.step(); i++) {
        if (inExec > 0) {
          assert.deepEqual(sys.checkPageCounts(), [], `${caller} ${JSON.stringify(kernel)}: step ${sys.now}`);
          checked++;
        }
      }
      assert.ok(checked > 10, 'the check ran inside execve');
      assert.equal(sys.log.filter((x) => x.image === 'next').length, 1, 'the new image ran');
      assert.deepEqual(sys.debugReports, [], `${caller} ${JSON.stringify(kernel)}`);
    }
  }
});

test('execve by a thread after the leader called exit (a zombie leader): it takes the pid and the parent reaps the new image', () => {
  // The leader is a zombie (exit of one thread, as pthread_exit in main); de_thread counts it,
  // waits for nothing more, and the caller takes its pid and its place in the parent's children.
  const sys = boot({ cpus: 2 });
  sys.addImage('next', { main: [sc('pid', 'getpid'), sc('tid', 'gettid'), sc('eg', 'exit_group', 7)] });
  const thread: Op[] = [...Array.from({ length: 20 }, (): Op => sc('y', 'sched_yield')), sc('ex', 'execve', '&next', 0, 0)];
  sys.spawn({
    main: [
      { op: 'syscall', name: 'fork', into: 'c', cpu: 0, child: [
        { op: 'syscall', name: 'mmap', args: [0, 16384, 3, 0x22, -1, 0], into: 'stk' },
        { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, '$stk+0x3ff0', 0, 0, 0], into: 'thr', cpu: 1, child: thread },
        sc('e', 'exit', 0),
      ] },
      { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'st' },
      sc('w', 'wait4', -1, '$st', 0, 0),
      { op: 'load', addr: '$st', into: 'status', size: 4 },
    ],
    strings: { next: 'next' },
  }, { cpu: 0 });
  const r = sys.run({ maxSteps: 1_000_000 });
  assert.ok(r.finished, `tasks still alive: ${r.alive.join(', ')}`);
  const pid = Number(sys.log.find((x) => x.fn === 'main' && x.index === 0 && x.pid === 1)!.value);
  assert.deepEqual(sys.log.filter((x) => x.image === 'next').map((x) => x.value), [BigInt(pid), BigInt(pid)]);
  const init = sys.log.filter((x) => x.image === 'init' && x.pid === 1 && x.fn === 'main');
  assert.equal(init.find((x) => x.index === 2)!.value, BigInt(pid));
  assert.equal(init.find((x) => x.index === 3)!.value, 0x700n);
  assert.deepEqual(sys.debugReports, []);
});
