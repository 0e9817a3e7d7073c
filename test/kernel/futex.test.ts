/**
 * set_tid_address, clone's CLONE_PARENT_SETTID / CLONE_CHILD_SETTID / CLONE_CHILD_CLEARTID,
 * mm_release's clear and wake of clear_child_tid, and futex FUTEX_WAIT / FUTEX_WAKE (futex.ts).
 * Expected values from Linux 6.12 (kernel/fork.c, kernel/futex/) and, where marked,
 * host-checked on Linux 6.18 x86-64 with a C program calling syscall(SYS_futex, ...).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { mmapAnon, ret, runProgram } from './helpers.js';

const CLONE_VM = 0x100, CLONE_FS = 0x200, CLONE_FILES = 0x400, CLONE_SIGHAND = 0x800, CLONE_THREAD = 0x10000;
const CLONE_PARENT_SETTID = 0x00100000, CLONE_CHILD_CLEARTID = 0x00200000, CLONE_CHILD_SETTID = 0x01000000;
const THREAD_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
const SIGCHLD = 17, SIGUSR1 = 10, SA_RESTART = 0x10000000, SA_RESTORER = 0x04000000;
const FUTEX_WAIT = 0, FUTEX_WAKE = 1, FUTEX_WAIT_BITSET = 9, FUTEX_WAKE_BITSET = 10, FUTEX_PRIVATE_FLAG = 128, FUTEX_CLOCK_REALTIME = 256;
const EINTR = 4n, EAGAIN = 11n, EFAULT = 14n, EINVAL = 22n, ENOSYS = 38n, ETIMEDOUT = 110n;
const UNMAPPED = 0x10000000;

const sc = (name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args });
const futex = (uaddr: number | string, op: number, val: number | string, utime: number | string = 0, val3 = 0): Op => sc('futex', uaddr, op, val, utime, 0, val3);
/** The tid a clone's record returned in `fn`[index]. */
const tidOf = (sys: Parameters<typeof ret>[0], index: number, fn = 'main'): bigint => ret(sys, index, fn);

test('set_tid_address returns the caller\'s tid (host-checked: == gettid)', () => {
  const { sys } = runProgram([mmapAnon('buf', 4096), sc('gettid'), sc('set_tid_address', '$buf')]);
  assert.equal(ret(sys, 2), ret(sys, 1));
});

test('CLONE_PARENT_SETTID puts the child\'s tid in the parent\'s memory; CLONE_CHILD_SETTID in the child\'s (schedule_tail, in its own mm after fork)', () => {
  const { sys } = runProgram([
    mmapAnon('buf', 4096), // 0
    {
      op: 'syscall', name: 'clone', args: [CLONE_PARENT_SETTID | CLONE_CHILD_SETTID | SIGCHLD, 0, '$buf', '$buf+4', 0], into: 'c',
      child: [{ op: 'load', addr: '$buf+4', size: 4 }, sc('gettid'), { op: 'load', addr: '$buf', size: 4 }, sc('exit', 0)],
    }, // 1
    sc('wait4', -1, 0, 0, 0), // 2
    { op: 'load', addr: '$buf', size: 4 }, // 3
    { op: 'load', addr: '$buf+4', size: 4 }, // 4
  ]);
  const child = tidOf(sys, 1);
  assert.ok(child > 0n);
  assert.equal(ret(sys, 3), child, 'parent_tid in the parent holds the child\'s tid');
  assert.equal(ret(sys, 4), 0n, 'the child\'s set_child_tid write went to its own copy of the page, not the parent\'s');
  assert.equal(ret(sys, 0, 'main.1.child'), child, 'the child finds its tid at child_tid when it first runs');
  assert.equal(ret(sys, 1, 'main.1.child'), child);
  assert.equal(ret(sys, 2, 'main.1.child'), 0n, 'parent_tid was written after copy_process copied the mm: the child\'s copy lacks it');
});

test('CLONE_CHILD_CLEARTID: a thread\'s exit zeroes its tid word and wakes the joiner waiting on it', () => {
  const { sys } = runProgram([
    mmapAnon('buf', 4096), // 0
    {
      op: 'syscall', name: 'clone', args: [THREAD_FLAGS | CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID, 0, 0, '$buf+8', 0], into: 'tid', cpu: 1,
      child: [{ op: 'load', addr: '$buf+8', size: 4 }, { op: 'work', count: 50 }, sc('exit', 0)],
    }, // 1
    futex('$buf+8', FUTEX_WAIT, '$tid'), // 2: 0 if it slept, -EAGAIN if the tid was already 0, or not yet set
    { op: 'load', addr: '$buf+8', size: 4 }, // 3
    futex('$buf+8', FUTEX_WAIT, '$tid'), // 4
  ], { cpus: 2 });
  const tid = tidOf(sys, 1);
  assert.equal(ret(sys, 0, 'main.1.child'), tid, 'CLONE_CHILD_SETTID wrote the tid before the thread ran');
  assert.ok([0n, -EAGAIN].includes(ret(sys, 2)), `the first FUTEX_WAIT returned ${ret(sys, 2)}`);
  // The thread may not have run schedule_tail when the first wait read the word (0 then: -EAGAIN);
  // the second wait, after the word read 0 or the wake, must find 0.
  const w = ret(sys, 3);
  if (w !== 0n) assert.equal(ret(sys, 4), 0n);
  else assert.equal(ret(sys, 4), -EAGAIN, 'after mm_release the word is 0: a wait for the tid is -EAGAIN');
});

test('mm_release leaves the word alone when the mm has no other user (a process\'s last thread)', () => {
  const { sys } = runProgram([
    mmapAnon('sh', 4096, 3, 0x21), // 0: MAP_SHARED|MAP_ANONYMOUS: the parent sees the child's stores
    { op: 'store', addr: '$sh', value: 77, size: 4 }, // 1
    { op: 'syscall', name: 'fork', args: [], into: 'c', child: [sc('set_tid_address', '$sh'), { op: 'store', addr: '$sh+4', value: 1, size: 4 }, sc('exit', 0)] }, // 2
    sc('wait4', -1, 0, 0, 0), // 3
    { op: 'load', addr: '$sh', size: 4 }, // 4
    { op: 'load', addr: '$sh+4', size: 4 }, // 5
  ]);
  assert.equal(ret(sys, 5), 1n, 'the child ran');
  assert.equal(ret(sys, 4), 77n, 'mm_users was 1: no put_user(0, clear_child_tid)');
});

test('FUTEX_WAIT and FUTEX_WAKE refusals (host-checked on 6.18)', () => {
  const { sys } = runProgram([
    mmapAnon('buf', 4096), // 0
    { op: 'store', addr: '$buf', value: 5, size: 4 }, // 1
    futex('$buf', FUTEX_WAIT, 6), // 2: -EAGAIN
    futex(UNMAPPED, FUTEX_WAIT | FUTEX_PRIVATE_FLAG, 0), // 3: -EFAULT
    futex(UNMAPPED, FUTEX_WAIT, 0), // 4: -EFAULT
    futex(UNMAPPED, FUTEX_WAKE, 1), // 5: -EFAULT (the shared key needs the page)
    futex(UNMAPPED, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1), // 6: 0 (a private key needs no page; no waiter)
    futex('$buf+2', FUTEX_WAIT, 5), // 7: -EINVAL
    futex('$buf', 99, 5), // 8: -ENOSYS
    futex('$buf', FUTEX_WAIT | FUTEX_CLOCK_REALTIME, 5), // 9: -ENOSYS
    futex('$buf', FUTEX_WAIT_BITSET, 5, 0, 0), // 10: -EINVAL
    futex('$buf', FUTEX_WAKE_BITSET, 1, 0, 0), // 11: -EINVAL
    futex('$buf', FUTEX_WAKE, 1), // 12: 0
    // struct timespec at buf+64 = { 0, 0 }, at buf+80 = { 0, 1000000000 }
    { op: 'store', addr: '$buf+88', value: 1000000000 }, // 13
    futex('$buf', FUTEX_WAIT, 5, '$buf+64'), // 14: -ETIMEDOUT
    futex('$buf', FUTEX_WAIT, 5, '$buf+80'), // 15: -EINVAL
    futex('$buf', FUTEX_WAIT, 5, UNMAPPED), // 16: -EFAULT
    futex('$buf', FUTEX_WAIT, 6, '$buf+80'), // 17: -EINVAL (the timeout is checked first)
  ]);
  const got = [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 15, 16, 17].map((i) => ret(sys, i));
  assert.deepEqual(got, [-EAGAIN, -EFAULT, -EFAULT, -EFAULT, 0n, -EINVAL, -ENOSYS, -ENOSYS, -EINVAL, -EINVAL, 0n, -ETIMEDOUT, -EINVAL, -EFAULT, -EINVAL]);
});

/** clone of a thread running `child` that glibc could join: CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID on the word at `ctid`, its tid into `into`. */
const thread = (ctid: string, into: string, child: Op[]): Op => ({ op: 'syscall', name: 'clone', args: [THREAD_FLAGS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID, 0, ctid, ctid, 0], into, child });
/** pthread_join's wait, once: 0 if it slept until mm_release's wake, -EAGAIN if the word was already 0. */
const join = (ctid: string, tid: string): Op => futex(ctid, FUTEX_WAIT, tid);
const yields = (n: number): Op[] => Array.from({ length: n }, (): Op => sc('sched_yield'));

test('FUTEX_WAKE wakes at most val waiters (at least one for val 0) and returns how many; joins by CLONE_CHILD_CLEARTID', () => {
  const waiter = (): Op[] => [futex('$buf', FUTEX_WAIT | FUTEX_PRIVATE_FLAG, 0)];
  // One CPU: each sched_yield lets the threads run until they sleep.
  const { sys } = runProgram([
    mmapAnon('buf', 4096), // 0
    thread('$buf+64', 't1', waiter()), // 1
    thread('$buf+68', 't2', waiter()), // 2
    thread('$buf+72', 't3', waiter()), // 3
    ...yields(3), // 4..6
    futex('$buf', FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 0), // 7: 1
    futex('$buf', FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 5), // 8: 2
    futex('$buf', FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 5), // 9: 0
    join('$buf+64', '$t1'), // 10
    join('$buf+68', '$t2'), // 11
    join('$buf+72', '$t3'), // 12
    { op: 'load', addr: '$buf+64', size: 4 }, // 13
    { op: 'load', addr: '$buf+68', size: 4 }, // 14
    { op: 'load', addr: '$buf+72', size: 4 }, // 15
  ]);
  assert.deepEqual([7, 8, 9].map((i) => ret(sys, i)), [1n, 2n, 0n]);
  for (const i of [1, 2, 3]) assert.equal(ret(sys, 0, `main.${i}.child`), 0n, `waiter ${i} was woken (0)`);
  for (const i of [10, 11, 12]) assert.ok([0n, -EAGAIN].includes(ret(sys, i)), `join ${i} returned ${ret(sys, i)}`);
  assert.deepEqual([13, 14, 15].map((i) => ret(sys, i)), [0n, 0n, 0n], 'each thread\'s exit zeroed its tid word');
});

test('a shared futex on a MAP_SHARED page meets across fork; a private one does not', () => {
  const { sys } = runProgram([
    mmapAnon('sh', 4096, 3, 0x21), // 0
    { op: 'syscall', name: 'fork', args: [], into: 'c', child: [futex('$sh', FUTEX_WAIT, 0), sc('exit', 0)] }, // 1
    sc('sched_yield'), // 2: one CPU: the child runs until it sleeps
    futex('$sh', FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1), // 3: 0, another mm's key
    { op: 'store', addr: '$sh', value: 1, size: 4 }, // 4
    futex('$sh', FUTEX_WAKE, 1), // 5: 1
    sc('wait4', -1, 0, 0, 0), // 6
  ]);
  assert.equal(ret(sys, 3), 0n);
  assert.equal(ret(sys, 5), 1n);
  assert.equal(ret(sys, 0, 'main.1.child'), 0n);
});

/** A thread waiting on buf (word 0) gets SIGUSR1 with a handler (flags `saFlags`), then a FUTEX_WAKE; one CPU, sched_yield lets it run. */
function interrupted(saFlags: number): ReturnType<typeof runProgram>['sys'] {
  return runProgram({
    main: [
      mmapAnon('buf', 4096), // 0
      { op: 'store', addr: '$buf+256', value: '@on_usr1' }, // 1: struct sigaction { handler, flags, restorer, mask }
      { op: 'store', addr: '$buf+264', value: saFlags | SA_RESTORER }, // 2
      { op: 'store', addr: '$buf+272', value: '@__restore_rt' }, // 3
      sc('rt_sigaction', SIGUSR1, '$buf+256', 0, 8), // 4
      { op: 'syscall', name: 'getpid', into: 'pid' }, // 5
      thread('$buf+64', 'tid', [futex('$buf', FUTEX_WAIT | FUTEX_PRIVATE_FLAG, 0), { op: 'load', addr: '$buf+8', size: 4 }]), // 6
      sc('sched_yield'), // 7: the thread sleeps in FUTEX_WAIT
      sc('tgkill', '$pid', '$tid', SIGUSR1), // 8
      sc('sched_yield'), // 9: the handler runs; the wait restarts and sleeps again, or returns -EINTR
      futex('$buf', FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1), // 10
      join('$buf+64', '$tid'), // 11
    ],
    functions: { on_usr1: [{ op: 'store', addr: '$buf+8', value: 1, size: 4 }, { op: 'return' }] },
  }).sys;
}

test('a signal with a handler ends FUTEX_WAIT with -ERESTARTSYS: restarted with SA_RESTART (then woken: 0), -EINTR without', () => {
  const r = interrupted(SA_RESTART);
  assert.equal(ret(r, 1, 'main.6.child'), 1n, 'the handler ran');
  assert.equal(ret(r, 0, 'main.6.child'), 0n, 'the restarted wait was woken');
  assert.equal(ret(r, 10), 1n);
  const n = interrupted(0);
  assert.equal(ret(n, 1, 'main.6.child'), 1n, 'the handler ran');
  assert.equal(ret(n, 0, 'main.6.child'), -EINTR);
  assert.equal(ret(n, 10), 0n, 'nobody was waiting any more');
});
