/**
 * Preemption and migration (kernel/sched/core.c, include/linux/preempt.h, the preempt= modes of
 * PREEMPT_DYNAMIC): where a task in the kernel may lose its CPU under each mode, that a
 * spinlock or get_cpu() region is never preempted, that a task moved in the middle of a kernel
 * path finishes it on its new CPU, and sched_setaffinity / sched_getaffinity with their checks
 * in the order core.c makes them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { IsolabEvent } from '../../src/system.js';
import type { Op } from '../../src/user/program.js';
import { boot, mmapAnon, records } from './helpers.js';

const EFAULT = 14;
const EINVAL = 22;
const ESRCH = 3;
const PAGES = 64;

/** A process that maps and touches PAGES pages, then forks (a long copy_pte_range under the PTL). */
function forker(): Op[] {
  const ops: Op[] = [mmapAnon('b', PAGES * 4096)];
  for (let i = 0; i < PAGES; i++) ops.push({ op: 'store', addr: `$b+${i * 4096}`, value: i + 1 });
  ops.push({ op: 'syscall', name: 'fork', into: 'c', child: [{ op: 'load', addr: '$b+4096', into: 'v' }] });
  ops.push({ op: 'syscall', name: 'wait4', args: [-1, 0, 0, 0] });
  return ops;
}

/** getpid calls, to keep a second task runnable on the same CPU. */
const spinner = (n: number): Op[] => Array.from({ length: n }, () => ({ op: 'syscall' as const, name: 'getpid' }));

test('preempt=full: the kernel is preempted only at steps where preempt_count is 0 (never inside the page-table lock)', () => {
  const sys = boot({ cpus: 1, kernel: { preempt: 'full', timeslice: 3, debug_vm: true } });
  const preempts: { tid: number; ptlOwner: number; count: number }[] = [];
  sys.events.subscribe((e: IsolabEvent) => {
    if (e.type !== 'preempt') return;
    const t = sys.task(e.tid)!;
    preempts.push({ tid: e.tid, ptlOwner: t.mm!.page_table_lock.owner, count: sys.kernel.percpu[0].preempt_count });
  });
  const a = sys.spawn({ main: forker() }, { cpu: 0 });
  sys.spawn({ main: spinner(200) }, { cpu: 0 });
  assert.ok(sys.run({ maxSteps: 1_000_000 }).finished);
  assert.deepEqual(sys.debugReports, []);
  assert.ok(preempts.some((p) => p.tid === a), 'the forking task was preempted inside the kernel');
  for (const p of preempts) {
    assert.equal(p.count, 0, 'preempt_count 0 at a preemption');
    assert.notEqual(p.ptlOwner, p.tid, 'not while holding its page-table lock');
  }
  // The child still sees the parent's data through COW.
  const child = [...sys.log].find((r) => r.op === 'load' && r.tid !== a);
  assert.equal(child?.value, 2n);
});

test('preempt=none: no preemption inside the kernel; TIF_NEED_RESCHED is honoured at cond_resched after a PTE table', () => {
  for (const ask of [false, true]) {
    const sys = boot({ cpus: 1, kernel: { preempt: 'none', timeslice: 3 } });
    const a = sys.spawn({ main: forker() }, { cpu: 0 });
    const b = sys.spawn({ main: spinner(50) }, { cpu: 0 });
    let inFork = false;
    let switchedInFork = 0;
    let preempts = 0;
    sys.events.subscribe((e: IsolabEvent) => {
      if (e.type === 'preempt') preempts++;
      if (e.type === 'syscall_enter' && e.tid === a && e.name === 'fork') inFork = true;
      if (e.type === 'syscall' && e.tid === a && e.name === 'fork') inFork = false;
      if (e.type === 'context_switch' && e.from === a && inFork) switchedInFork++;
    });
    let asked = false;
    for (let n = 0; n < 1_000_000 && sys.step(); n++) {
      // Ask once, as the fork starts: the tick's resched_curr.
      if (ask && inFork && !asked) asked = sys.preempt(0);
    }
    assert.equal(preempts, 0, 'never preempted in the kernel');
    assert.ok(sys.task(b) === undefined || sys.task(b)!.state !== 'running');
    if (ask) assert.equal(switchedInFork, 1, 'gave the CPU up once, at cond_resched');
    else assert.equal(switchedInFork, 0, 'kept the CPU through fork');
  }
});

test('migration in the middle of a kernel path: the task finishes fork on its new CPU, and its flushes and CR3 writes are that CPU\'s', () => {
  const sys = boot({ cpus: 2, kernel: { preempt: 'full', debug_vm: true } });
  const a = sys.spawn({ main: forker() }, { cpu: 0 });
  const after: IsolabEvent[] = [];
  let moved = false;
  let migrated = false;
  sys.events.subscribe((e: IsolabEvent) => {
    if (e.type === 'migrate' && e.tid === a) migrated = true;
    if (moved && 'tid' in e && e.tid === a) after.push(e);
  });
  let inFork = false;
  sys.events.subscribe((e: IsolabEvent) => {
    if (e.type === 'syscall_enter' && e.tid === a && e.name === 'fork') inFork = true;
  });
  for (let n = 0; n < 1_000_000; n++) {
    // Step CPU 0 alone until its task is inside fork with preemption on, then send it to CPU 1.
    if (!moved && inFork && sys.kernel.percpu[0].preempt_count === 0 && sys.task(a)!.kpath) {
      assert.ok(sys.preempt(0, 1));
      moved = true;
    }
    const busy = moved ? sys.step() : sys.stepCpu(0);
    if (!busy) break;
  }
  assert.ok(migrated, 'a migrate event');
  assert.equal(sys.task(a), undefined, 'the task ran to its end');
  assert.deepEqual(sys.debugReports, []);
  const fork = after.find((e) => e.type === 'syscall' && e.name === 'fork');
  assert.ok(fork && fork.type === 'syscall' && fork.cpu === 1, 'fork returned on CPU 1');
  assert.ok(after.every((e) => e.type !== 'syscall' || e.cpu === 1), 'every later syscall on CPU 1');
});

test('sched_getaffinity: EINVAL for a short or odd length (len * 8 as an unsigned int), ESRCH, EFAULT, then 8 bytes of the online CPUs', () => {
  const sys = boot({ cpus: 3 });
  const main: Op[] = [
    mmapAnon('m', 4096),
    { op: 'syscall', name: 'sched_getaffinity', args: [0, 0, '$m'] },
    { op: 'syscall', name: 'sched_getaffinity', args: [0, 4, '$m'] },
    { op: 'syscall', name: 'sched_getaffinity', args: [0, 0x20000000, '$m'] }, // len * 8 wraps to 0
    { op: 'syscall', name: 'sched_getaffinity', args: [99999, 8, '$m'] },
    { op: 'syscall', name: 'sched_getaffinity', args: [0, 8, 0] },
    { op: 'syscall', name: 'sched_getaffinity', args: [0, 64, '$m'] },
    { op: 'load', addr: '$m', into: 'mask' },
  ];
  const pid = sys.spawn({ main });
  assert.ok(sys.run({ maxSteps: 100_000 }).finished);
  const r = records(sys, 'main', pid);
  assert.deepEqual([1, 2, 3, 4, 5, 6].map((i) => r.get(i)!.value), [BigInt(-EINVAL), BigInt(-EINVAL), BigInt(-EINVAL), BigInt(-ESRCH), BigInt(-EFAULT), 8n]);
  assert.equal(r.get(7)!.value, 0b111n, 'CPUs 0, 1 and 2');
});

test('sched_setaffinity: EFAULT before ESRCH before EINVAL (no online CPU); the caller moves to an allowed CPU before it returns', () => {
  const sys = boot({ cpus: 2 });
  const cpus: number[] = [];
  sys.events.subscribe((e: IsolabEvent) => {
    if (e.type === 'syscall' && e.name === 'getpid') cpus.push(e.cpu);
  });
  const main: Op[] = [
    mmapAnon('m', 4096),
    { op: 'store', addr: '$m', value: 0b100 },
    { op: 'store', addr: '$m+8', value: 0b10 },
    { op: 'syscall', name: 'sched_setaffinity', args: [99999, 8, 0] },
    { op: 'syscall', name: 'sched_setaffinity', args: [99999, 8, '$m'] },
    { op: 'syscall', name: 'sched_setaffinity', args: [0, 8, '$m'] },
    { op: 'syscall', name: 'sched_setaffinity', args: [0, 0, '$m'] },
    { op: 'syscall', name: 'getpid' },
    { op: 'syscall', name: 'sched_setaffinity', args: [0, 8, '$m+8'] },
    { op: 'syscall', name: 'getpid' },
    { op: 'syscall', name: 'sched_getaffinity', args: [0, 8, '$m'] },
    { op: 'load', addr: '$m', into: 'now' },
  ];
  const pid = sys.spawn({ main }, { cpu: 0 });
  assert.ok(sys.run({ maxSteps: 100_000 }).finished);
  const r = records(sys, 'main', pid);
  assert.deepEqual([3, 4, 5, 6, 8].map((i) => r.get(i)!.value), [BigInt(-EFAULT), BigInt(-ESRCH), BigInt(-EINVAL), BigInt(-EINVAL), 0n]);
  assert.deepEqual(cpus, [0, 1], 'getpid on CPU 0, then on CPU 1 after the move');
  assert.equal(r.get(11)!.value, 0b10n);
});

test('a child inherits its parent\'s affinity (dup_task_struct) and is placed on a CPU it may use', () => {
  const sys = boot({ cpus: 4 });
  const main: Op[] = [
    mmapAnon('m', 4096),
    { op: 'store', addr: '$m', value: 0b1000 },
    { op: 'syscall', name: 'sched_setaffinity', args: [0, 8, '$m'] },
    { op: 'syscall', name: 'fork', into: 'c', child: [{ op: 'syscall', name: 'sched_getaffinity', args: [0, 8, '$m'] }, { op: 'load', addr: '$m', into: 'mask' }] },
    { op: 'syscall', name: 'wait4', args: [-1, 0, 0, 0] },
  ];
  const cpus = new Set<number>();
  sys.events.subscribe((e: IsolabEvent) => {
    if (e.type === 'syscall' && e.name === 'sched_getaffinity') cpus.add(e.cpu);
  });
  sys.spawn({ main }, { cpu: 0 });
  assert.ok(sys.run({ maxSteps: 100_000 }).finished);
  const child = [...sys.log].find((x) => x.op === 'load' && x.fn !== 'main');
  assert.equal(child?.value, 0b1000n);
  assert.deepEqual([...cpus], [3]);
});

test('scheduling while atomic is reported: a task may not give its CPU up holding a spinlock', () => {
  const sys = boot({ cpus: 1, kernel: { debug_vm: true } });
  sys.spawn({ main: spinner(3) });
  sys.step();
  const pc = sys.kernel.percpu[0];
  pc.preempt_count = 1;
  sys.kernel.debugReports.length = 0;
  // schedule() from the driver with the count raised, as a path that slept under a lock would.
  pc.current!.state = 'sleeping';
  sys.step();
  assert.match(sys.kernel.debugReports.join('\n'), /scheduling while atomic/);
});

test('preempt=voluntary: might_sleep() in down_write(mmap_lock) is a preemption point; preempt=none runs the syscall through', () => {
  // include/linux/kernel.h: with CONFIG_PREEMPT_VOLUNTARY (preempt=voluntary), might_sleep() calls
  // might_resched() → __cond_resched(); down_write() begins with might_sleep() (kernel/locking/rwsem.c).
  for (const preempt of ['none', 'voluntary'] as const) {
    const sys = boot({ cpus: 1, kernel: { preempt, timeslice: 1000 } });
    const a = sys.spawn({ main: [mmapAnon('b', 4096)] }, { cpu: 0 });
    sys.spawn({ main: spinner(20) }, { cpu: 0 });
    let inMmap = false;
    let switchedInMmap = 0;
    let asked = false;
    sys.events.subscribe((e: IsolabEvent) => {
      if (e.type === 'syscall_enter' && e.tid === a && e.name === 'mmap') inMmap = true;
      if (e.type === 'syscall' && e.tid === a && e.name === 'mmap') inMmap = false;
      if (e.type === 'context_switch' && e.from === a && inMmap) switchedInMmap++;
    });
    for (let n = 0; n < 100_000 && sys.step(); n++) {
      if (inMmap && !asked) asked = sys.preempt(0);
    }
    assert.ok(asked);
    assert.equal(switchedInMmap, preempt === 'voluntary' ? 1 : 0, preempt);
  }
});
