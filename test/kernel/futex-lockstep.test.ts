/**
 * futex in lockstep (lockstep.ts): two tasks on two CPUs, every interleaving with at most
 * PREEMPTIONS preemptions.
 *
 * What Linux promises (kernel/futex/waitwake.c, kernel/fork.c mm_release):
 *  - FUTEX_WAIT queues the waiter and reads the word under the bucket lock, and FUTEX_WAKE
 *    looks for waiters under that lock after the waker's store: the waiter either reads the
 *    new value (-EAGAIN, and the wake finds nobody: 0) or is queued and woken (0, and the wake
 *    counts it: 1). It never sleeps on through the wake;
 *  - a thread's exit zeroes its clear_child_tid word, then wakes a waiter there: a joiner whose
 *    FUTEX_WAIT for the tid returned (0 or -EAGAIN) reads 0.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { describeFindings, lockstep, type LockstepCase, type Run } from './lockstep.js';

const CLONE_VM = 0x100, CLONE_FS = 0x200, CLONE_FILES = 0x400, CLONE_SIGHAND = 0x800, CLONE_THREAD = 0x10000;
const CLONE_PARENT_SETTID = 0x00100000, CLONE_CHILD_CLEARTID = 0x00200000;
const THREAD_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
const FUTEX_WAIT = 0, FUTEX_WAKE = 1, FUTEX_PRIVATE_FLAG = 128;
const EAGAIN = 11n;
const PREEMPTIONS = 2;

const sc = (name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args });
const linger: Op[] = Array.from({ length: 3 }, (): Op => ({ op: 'syscall', name: 'getpid' }));

/** The value operation `index` of `fn` produced, or a message. */
function value(r: Run, fn: string, index: number): bigint | string {
  const rec = r.k.log.find((x) => x.fn === fn && x.index === index);
  if (!rec) return `${fn}[${index}] never ran`;
  if (rec.value === undefined) return `${fn}[${index}] gave no value`;
  return BigInt.asIntN(64, rec.value);
}

const WAIT_WAKE: LockstepCase = {
  name: 'FUTEX_WAIT for 0 against a store of 1 and FUTEX_WAKE',
  processes: [{
    cpu: 0,
    program: {
      main: [
        { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'buf' }, // 0
        { op: 'store', addr: '$buf+128', value: 0, size: 4 }, // 1: the page faulted in before the race
        {
          op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], into: 'tid', cpu: 1,
          child: [{ op: 'store', addr: '$buf', value: 1, size: 4 }, sc('futex', '$buf', FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1, 0, 0, 0)],
        }, // 2
        sc('futex', '$buf', FUTEX_WAIT | FUTEX_PRIVATE_FLAG, 0, 0, 0, 0), // 3
        ...linger,
      ],
    },
  }],
  racers: [{ cpu: 0, fn: 'main', from: 3 }, { cpu: 1, fn: 'main.2.child', from: 0, to: 1 }],
  watch: ['buf'],
  preemptions: PREEMPTIONS,
  check: (r) => {
    const w = value(r, 'main', 3);
    const n = value(r, 'main.2.child', 1);
    if (w === 0n) return n === 1n ? null : `the waiter was woken (0) but FUTEX_WAKE counted ${n}`;
    if (w === -EAGAIN) return n === 0n ? null : `the waiter saw the store (-EAGAIN) but FUTEX_WAKE counted ${n}`;
    return `FUTEX_WAIT returned ${w}`;
  },
};

const EXIT_JOIN: LockstepCase = {
  name: 'a thread\'s exit (mm_release clearing and waking its tid word) against its joiner\'s FUTEX_WAIT',
  processes: [{
    cpu: 0,
    program: {
      main: [
        { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'buf' }, // 0
        { op: 'store', addr: '$buf+128', value: 0, size: 4 }, // 1
        {
          op: 'syscall', name: 'clone', args: [THREAD_FLAGS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID, 0, '$buf+64', '$buf+64', 0], into: 'tid', cpu: 1,
          child: [sc('exit', 0)],
        }, // 2
        sc('futex', '$buf+64', FUTEX_WAIT, '$tid', 0, 0, 0), // 3
        { op: 'load', addr: '$buf+64', size: 4 }, // 4
        ...linger,
      ],
    },
  }],
  racers: [{ cpu: 0, fn: 'main', from: 3, to: 4 }, { cpu: 1, fn: 'main.2.child', from: 0 }],
  watch: ['buf'],
  preemptions: PREEMPTIONS,
  check: (r) => {
    const w = value(r, 'main', 3);
    if (w !== 0n && w !== -EAGAIN) return `the join's FUTEX_WAIT returned ${w}`;
    const word = value(r, 'main', 4);
    return word === 0n ? null : `after the join the tid word reads ${word}, not 0`;
  },
};

/** WAIT_WAKE on a page neither task has touched: the waiter's read of the word faults in the kernel while the waker's store faults in user mode. */
const WAIT_WAKE_UNTOUCHED: LockstepCase = {
  ...WAIT_WAKE,
  name: 'FUTEX_WAIT for 0 on an untouched page (a kernel read fault) against a store of 1 (a user write fault) and FUTEX_WAKE',
  processes: [{ ...WAIT_WAKE.processes[0], program: { main: WAIT_WAKE.processes[0].program.main.map((op, i) => (i === 1 ? sc('getpid') : op)) } }],
};

for (const c of [WAIT_WAKE, WAIT_WAKE_UNTOUCHED, EXIT_JOIN]) {
  test(`lockstep, every interleaving: ${c.name}`, (t) => {
    let slept = 0;
    let eagain = 0;
    const r = lockstep(c, (run) => {
      if (value(run, 'main', 3) === 0n) slept++;
      else eagain++;
    });
    t.diagnostic(`${r.interleavings} interleavings (every one with at most ${c.preemptions} preemptions), ${slept} woken, ${eagain} -EAGAIN, ${r.ms.toFixed(0)} ms`);
    assert.ok(r.failed === 0, describeFindings(c, r));
    assert.ok(slept > 0 && eagain > 0, 'both outcomes (woken, -EAGAIN) should occur');
  });
}
