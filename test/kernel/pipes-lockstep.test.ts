/**
 * Pipes and page pins in lockstep (lockstep.ts): two tasks on two CPUs, every interleaving with
 * at most PREEMPTIONS preemptions, each judged by what the tasks got and by the page counts
 * (the pipe's buffers and a pin in flight included).
 *
 * What Linux promises here (fs/pipe.c, mm/memory.c, mm/gup.c):
 *  - a read of an empty pipe sleeps until a write (pipe_read waits on rd_wait with the mutex
 *    dropped; pipe_write wakes it when the pipe was empty), and gets the bytes written;
 *  - closing the last write end wakes a sleeping reader, which reads the end (0) once the
 *    data is gone (pipe_release: readers without writers wake both queues);
 *  - a reader finding a full pipe's data makes room a sleeping writer is woken for;
 *  - fork while a page is pinned (here by process_vm_readv, which holds its pin across the
 *    copy with mmap_lock dropped) copies that page for the child at once (copy_present_page,
 *    as folio_try_dup_anon_rmap_pte refuses a maybe-pinned exclusive page), so the child sees
 *    the page as it was at fork, the pin stays on the parent's own page and the parent's entry
 *    stays writable; without a pin in flight fork shares the page as usual. Either way the
 *    child never sees the parent's store after fork;
 *  - tee duplicates the input's buffers by reference without consuming them (link_pipe), so
 *    a reader of the input racing it always gets the bytes, and the output holds them exactly
 *    when tee says so; a read that empties the input first leaves tee nothing (-EAGAIN from
 *    ipipe_prep under SPLICE_F_NONBLOCK, or 0 when link_pipe finds the input empty).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { describeFindings, lockstep, type LockstepCase, type Run } from './lockstep.js';

const CLONE_VM = 0x100, CLONE_FS = 0x200, CLONE_FILES = 0x400, CLONE_SIGHAND = 0x800, CLONE_THREAD = 0x10000;
const THREAD_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
const PREEMPTIONS = 2;
const AAAA = 0x41414141n, BBBB = 0x42424242n;

const sc = (name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args });
const linger: Op[] = Array.from({ length: 3 }, (): Op => ({ op: 'syscall', name: 'getpid' }));

/** The value operation `index` of `fn` produced (a load's value or a syscall's result), or a message. */
function value(r: Run, fn: string, index: number): bigint | string {
  const rec = r.k.log.find((x) => x.fn === fn && x.index === index);
  if (!rec) return `${fn}[${index}] never ran`;
  if (rec.value === undefined) return `${fn}[${index}] gave no value`;
  return BigInt.asIntN(64, rec.value);
}

/** main: three pages at `buf`, the first holding "AAAA", a pipe (3 read, 4 write), `pre`, a thread on CPU 1 running `b`, then `a`. */
function pipeCase(name: string, pre: Op[], a: Op[], b: Op[], check: (r: Run, T: string) => string | null): LockstepCase {
  const clone = 3 + pre.length;
  const T = `main.${clone}.child`;
  return {
    name,
    processes: [{
      cpu: 0,
      program: {
        main: [
          { op: 'syscall', name: 'mmap', args: [0, 3 * 4096, 3, 0x22, -1, 0], into: 'buf' }, // 0
          { op: 'store', addr: '$buf', value: AAAA, size: 4 }, // 1
          sc('pipe', '$buf+8'), // 2: 3, 4
          ...pre,
          { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], into: 'tid', child: b, cpu: 1 },
          ...a,
          ...linger,
        ],
      },
    }],
    racers: [{ cpu: 0, fn: 'main', from: clone + 1, to: clone + a.length }, { cpu: 1, fn: T, from: 0, to: b.length - 1 }],
    watch: ['buf'],
    preemptions: PREEMPTIONS,
    check: (r) => check(r, T),
  };
}

const CASES: LockstepCase[] = [
  pipeCase(
    'a read of the empty pipe against the write that fills it',
    [],
    [sc('write', 4, '$buf', 4)],
    [sc('read', 3, '$buf+256', 4), { op: 'load', addr: '$buf+256', size: 4, into: 'got' }],
    (r, T) => {
      const n = value(r, T, 0);
      const got = value(r, T, 1);
      if (n !== 4n) return `the read returned ${n}, not 4`;
      return got === AAAA ? null : `the read got ${typeof got === 'string' ? got : `0x${got.toString(16)}`}, not AAAA`;
    },
  ),
  pipeCase(
    'two reads against a write and the close of the last write end',
    [],
    [sc('write', 4, '$buf', 4), sc('close', 4)],
    [sc('read', 3, '$buf+256', 8), sc('read', 3, '$buf+256', 8)],
    (r, T) => {
      const first = value(r, T, 0);
      const second = value(r, T, 1);
      return first === 4n && second === 0n ? null : `the reads returned ${first} and ${second}, not 4 and then the end (0)`;
    },
  ),
  pipeCase(
    'a write into a full one-page pipe against the read that empties it',
    [sc('fcntl', 4, 1031, 4096), sc('write', 4, '$buf+4096', 4096)],
    [sc('read', 3, '$buf+8192', 4096)],
    [sc('write', 4, '$buf', 4)],
    (r, T) => {
      const read = value(r, 'main', 6);
      const wrote = value(r, T, 0);
      return read === 4096n && wrote === 4n ? null : `the read got ${read} and the write ${wrote}; the writer should wait for the room the read makes`;
    },
  ),
];

/**
 * fork against a pin of the page being copied: a thread reads its own process's page with
 * process_vm_readv (pin, copy, unpin) while the main thread forks and then stores BBBB. The
 * child must see AAAA in every interleaving; the thread sees AAAA or BBBB; and the page
 * counts must balance with the pin in flight.
 */
const PIN_FORK: LockstepCase = {
  name: 'fork against process_vm_readv pinning the page fork copies',
  processes: [{
    cpu: 0,
    program: {
      main: [
        { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'buf' }, // 0
        { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'loc' }, // 1: the iovecs and the local buffer
        { op: 'store', addr: '$buf', value: AAAA, size: 4 }, // 2
        { op: 'syscall', name: 'getpid', args: [], into: 'me' }, // 3
        { op: 'store', addr: '$loc+64', value: '$loc+512' }, // 4: local iovec
        { op: 'store', addr: '$loc+72', value: 4 }, // 5
        { op: 'store', addr: '$loc+80', value: '$buf' }, // 6: remote iovec: the page itself
        { op: 'store', addr: '$loc+88', value: 4 }, // 7
        {
          op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], into: 'tid', cpu: 1,
          child: [sc('process_vm_readv', '$me', '$loc+64', 1, '$loc+80', 1, 0), { op: 'load', addr: '$loc+512', size: 4, into: 'got' }],
        }, // 8
        { op: 'syscall', name: 'fork', args: [], into: 'c', child: [{ op: 'load', addr: '$buf', size: 4, into: 'cv' }, sc('exit', 0)] }, // 9
        { op: 'store', addr: '$buf', value: BBBB, size: 4 }, // 10
        sc('wait4', -1, 0, 0, 0), // 11
        ...linger,
      ],
    },
  }],
  racers: [{ cpu: 0, fn: 'main', from: 9, to: 10 }, { cpu: 1, fn: 'main.8.child', from: 0, to: 1 }],
  watch: ['buf'],
  // One preemption already has fork land inside the pin (two: 5075 interleavings, 36 of them so, in 200 s).
  preemptions: 1,
  check: (r) => {
    const got = value(r, 'main.8.child', 1);
    if (got !== AAAA && got !== BBBB) return `the thread's process_vm_readv got ${got}`;
    const cv = value(r, 'main.9.child', 0);
    return cv === AAAA ? null : `the child read ${typeof cv === 'string' ? cv : `0x${cv.toString(16)}`} at its copy of the page, not AAAA as at fork`;
  },
};

/**
 * tee of pipe a into a non-blocking pipe b against a read of a on the other CPU: the read
 * gets AAAA whatever tee did; b then holds AAAA if tee returned 4 and nothing (-EAGAIN) if it
 * returned -EAGAIN or 0.
 */
const TEE_READ = pipeCase(
  'tee of a pipe against a read of the same pipe',
  [sc('pipe2', '$buf+16', 0o4000), sc('write', 4, '$buf', 4)], // b = 5, 6, non-blocking; a holds AAAA
  [sc('tee', 3, 6, 4, 0), sc('read', 5, '$buf+512', 4), { op: 'load', addr: '$buf+512', size: 4, into: 'dup' }],
  [sc('read', 3, '$buf+256', 4), { op: 'load', addr: '$buf+256', size: 4, into: 'got' }],
  (r, T) => {
    const n = value(r, T, 0);
    const got = value(r, T, 1);
    if (n !== 4n || got !== AAAA) return `the read of a returned ${n} (${typeof got === 'string' ? got : `0x${got.toString(16)}`}), not 4 bytes of AAAA`;
    const teed = value(r, 'main', 6);
    const readB = value(r, 'main', 7);
    const dup = value(r, 'main', 8);
    if (teed === 4n) return readB === 4n && dup === AAAA ? null : `tee returned 4 but b gave ${readB}`;
    if (teed === -11n || teed === 0n) return readB === -11n ? null : `tee returned ${teed} but b gave ${readB}, not -EAGAIN`;
    return `tee returned ${teed}`;
  },
);

for (const c of CASES) {
  test(`lockstep, every interleaving: ${c.name}`, (t) => {
    const r = lockstep(c);
    t.diagnostic(`${r.interleavings} interleavings (every one with at most ${c.preemptions} preemptions), window up to ${r.longest} steps, ${r.ms.toFixed(0)} ms`);
    assert.ok(r.failed === 0, describeFindings(c, r));
    assert.ok(r.interleavings >= 2, `${r.interleavings} interleaving(s): the racers never raced`);
  });
}

test(`lockstep, every interleaving: ${PIN_FORK.name}; some fork copies the pinned page, some shares it`, (t) => {
  let copiedByFork = 0;
  let shared = 0;
  const r = lockstep(PIN_FORK, (run) => {
    // copy_present_page's copy is a page_copy event of the forking task before fork's own event (the clone's comes first).
    const forkStep = run.events.find((x) => x.e.type === 'fork' && !(x.e.flags & CLONE_VM))?.step ?? -1;
    const cloneStep = run.events.find((x) => x.e.type === 'fork' && (x.e.flags & CLONE_VM) !== 0)?.step ?? -1;
    const mainTid = run.tids[0];
    const byFork = run.events.some((x) => x.e.type === 'page_copy' && x.e.tid === mainTid && x.step > cloneStep && x.step <= forkStep);
    if (byFork) copiedByFork++;
    else shared++;
  });
  t.diagnostic(`${r.interleavings} interleavings, ${copiedByFork} with fork copying the pinned page, ${shared} sharing it, ${r.ms.toFixed(0)} ms`);
  assert.ok(r.failed === 0, describeFindings(PIN_FORK, r));
  assert.ok(copiedByFork > 0, 'no interleaving had fork meet the pin: the race was never run');
  assert.ok(shared > 0, 'every interleaving had fork meet the pin');
});

test(`lockstep, every interleaving: ${TEE_READ.name}; tee gets the bytes in some, finds the pipe emptied in others`, (t) => {
  const outcomes = new Map<string, number>();
  const r = lockstep(TEE_READ, (run) => {
    const teed = value(run, 'main', 6);
    const key = String(teed);
    outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
  });
  t.diagnostic(`${r.interleavings} interleavings; tee returned ${[...outcomes].map(([k, n]) => `${k} in ${n}`).join(', ')}; ${r.ms.toFixed(0)} ms`);
  assert.ok(r.failed === 0, describeFindings(TEE_READ, r));
  assert.ok(outcomes.has('4'), 'tee never ran before the read');
  assert.ok(outcomes.has('-11') || outcomes.has('0'), 'the read never emptied the pipe before tee');
});
