/**
 * process_vm_writev in lockstep (lockstep.ts) against reclaim of the page it writes, on a
 * second CPU.
 *
 * What Linux promises (mm/process_vm_access.c, mm/gup.c, mm/rmap.c try_to_unmap_one): a write
 * through process_vm_writev into a MADV_FREE'd page is never lost. Either reclaim discards the
 * clean page first, and the write's GUP faults in a new one; or GUP pins the page first, and
 * reclaim finds it pinned (its count above one plus its mappings) or dirty (FOLL_TOUCH's
 * set_page_dirty, then unpin_user_pages_dirty_lock), puts the entry back and keeps the page.
 * Whatever the order, the process then reads what was written.
 *
 * And process_vm_readv of a userfaultfd range against the handler's UFFDIO_COPY: the remote
 * page is pinned with FOLL_UNLOCKABLE, so a fault before the copy drops mmap_lock and waits
 * (handle_userfault), and the copy's wake sends GUP back to the page with FOLL_TRIED; a fault
 * after it finds the page. Either way the read returns the copied bytes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { describeFindings, lockstep, type LockstepCase, type Run } from './lockstep.js';

const CLONE_VM = 0x100, CLONE_FS = 0x200, CLONE_FILES = 0x400, CLONE_SIGHAND = 0x800, CLONE_THREAD = 0x10000;
const THREAD_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
const MADV_FREE = 8, MADV_PAGEOUT = 21;
const UFFDIO_API = 0xc018aa3f, UFFDIO_REGISTER = 0xc020aa00, UFFDIO_COPY = 0xc028aa03, MODE_MISSING = 1;
const VALUE = 0x1122334455667788n;
const WRITTEN = 0x216e657474697277n; // "written!"

const sc = (name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args });
const st = (addr: string, value: number | bigint | string): Op => ({ op: 'store', addr, value });
const linger: Op[] = Array.from({ length: 3 }, (): Op => ({ op: 'syscall', name: 'getpid' }));

/** The value operation `index` of `fn` produced, or a message. */
function value(r: Run, fn: string, index: number): bigint | string {
  const rec = r.k.log.find((x) => x.fn === fn && x.index === index);
  if (!rec) return `${fn}[${index}] never ran`;
  if (rec.value === undefined) return `${fn}[${index}] gave no value`;
  return BigInt.asIntN(64, rec.value);
}

const WRITEV_PAGEOUT: LockstepCase = {
  name: 'process_vm_writev into a MADV_FREE\'d page against MADV_PAGEOUT of it',
  processes: [{
    cpu: 0,
    program: {
      main: [
        { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'f' }, // 0
        { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'loc' }, // 1
        { op: 'store', addr: '$f', value: 0x61 }, // 2
        sc('madvise', '$f', 4096, MADV_FREE), // 3
        { op: 'syscall', name: 'getpid', into: 'me' }, // 4
        { op: 'store', addr: '$loc', value: WRITTEN }, // 5
        { op: 'store', addr: '$loc+64', value: '$loc' }, // 6: local iovec
        { op: 'store', addr: '$loc+72', value: 8 }, // 7
        { op: 'store', addr: '$loc+80', value: '$f' }, // 8: remote iovec
        { op: 'store', addr: '$loc+88', value: 8 }, // 9
        { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], into: 'tid', cpu: 1, child: [sc('madvise', '$f', 4096, MADV_PAGEOUT)] }, // 10
        sc('process_vm_writev', '$me', '$loc+64', 1, '$loc+80', 1, 0), // 11
        ...linger, // 12, 13, 14: the thread's madvise is done by the end of these
        { op: 'load', addr: '$f', into: 'after' }, // 15
      ],
    },
  }],
  racers: [{ cpu: 0, fn: 'main', from: 11, to: 11 }, { cpu: 1, fn: 'main.10.child', from: 0, to: 0 }],
  watch: ['f'],
  preemptions: 2,
  check: (r) => {
    const n = value(r, 'main', 11);
    if (n !== 8n) return `process_vm_writev returned ${n}, not 8`;
    const after = value(r, 'main', 15);
    return after === WRITTEN ? null : `the page reads ${typeof after === 'string' ? after : `0x${after.toString(16)}`} after reclaim, not what process_vm_writev wrote`;
  },
};

test(`lockstep, every interleaving: ${WRITEV_PAGEOUT.name}; reclaim discards the clean page in some, keeps the written one in others`, (t) => {
  const outcomes = new Map<string, number>();
  const r = lockstep(WRITEV_PAGEOUT, (run) => {
    // What reclaim did with the page: each run's reclaim events (one page: one event).
    for (const x of run.events) {
      if (x.e.type !== 'reclaim') continue;
      outcomes.set(x.e.outcome, (outcomes.get(x.e.outcome) ?? 0) + 1);
    }
  });
  t.diagnostic(`${r.interleavings} interleavings; reclaim's outcomes: ${[...outcomes].map(([k, n]) => `${k} ${n}`).join(', ')}; ${r.ms.toFixed(0)} ms`);
  assert.ok(r.failed === 0, describeFindings(WRITEV_PAGEOUT, r));
  assert.ok(outcomes.has('discarded'), 'reclaim never discarded the page before the write');
  assert.ok([...outcomes.keys()].some((o) => o !== 'discarded'), 'reclaim never met the written or pinned page');
});

const READV_COPY: LockstepCase = {
  name: 'process_vm_readv of a userfaultfd range against UFFDIO_COPY of its page',
  processes: [{
    cpu: 0,
    program: {
      main: [
        { op: 'syscall', name: 'mmap', args: [0, 8192, 3, 0x22, -1, 0], into: 'buf' }, // 0
        { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'area' }, // 1
        { op: 'syscall', name: 'userfaultfd', args: [0], into: 'uffd' }, // 2
        st('$buf', 0xaa), st('$buf+8', 0), sc('ioctl', '$uffd', UFFDIO_API, '$buf'), // 3..5
        st('$buf+64', '$area'), st('$buf+72', 4096), st('$buf+80', MODE_MISSING), sc('ioctl', '$uffd', UFFDIO_REGISTER, '$buf+64'), // 6..9
        st('$buf+4096', VALUE), // 10
        { op: 'syscall', name: 'getpid', into: 'me' }, // 11
        st('$buf+256', '$buf+512'), st('$buf+264', 8), st('$buf+272', '$area'), st('$buf+280', 8), // 12..15: local and remote iovecs
        {
          op: 'syscall', name: 'clone', args: [0x100 | 0x200 | 0x400 | 0x800 | 0x10000, 0, 0, 0, 0], into: 'tid', cpu: 1,
          child: [st('$buf+192', '$area'), st('$buf+200', '$buf+4096'), st('$buf+208', 4096), st('$buf+216', 0), sc('ioctl', '$uffd', UFFDIO_COPY, '$buf+192'), ...linger],
        }, // 16
        sc('process_vm_readv', '$me', '$buf+256', 1, '$buf+272', 1, 0), // 17
        { op: 'load', addr: '$buf+512', into: 'got' }, // 18
        ...linger,
      ],
    },
  }],
  racers: [{ cpu: 0, fn: 'main', from: 17, to: 18 }, { cpu: 1, fn: 'main.16.child', from: 4 }],
  watch: ['area'],
  // One preemption already lands the copy before, during and after the wait.
  preemptions: 1,
  check: (r) => {
    const n = value(r, 'main', 17);
    const got = value(r, 'main', 18);
    const c = value(r, 'main.16.child', 4);
    if (c !== 0n) return `UFFDIO_COPY returned ${c}, not 0`;
    if (n !== 8n) return `process_vm_readv returned ${n}, not 8`;
    return got === VALUE ? null : `process_vm_readv read ${typeof got === 'string' ? got : `0x${got.toString(16)}`}, not the copied page`;
  },
};

test(`lockstep, every interleaving: ${READV_COPY.name}; the copy comes before the read in some, while it waits in others`, (t) => {
  let before = 0;
  let during = 0;
  const r = lockstep(READV_COPY, (run) => {
    const tid = run.tids[0];
    const entered = run.events.find((x) => x.e.type === 'syscall_enter' && x.e.tid === tid && x.e.name === 'process_vm_readv')?.step ?? -1;
    const copied = run.events.find((x) => x.e.type === 'syscall' && x.e.name === 'ioctl' && x.e.tid !== tid)?.step ?? -1;
    if (copied < entered) before++;
    else during++;
  });
  t.diagnostic(`${r.interleavings} interleavings; the copy ended before process_vm_readv began in ${before}, after in ${during}; ${r.ms.toFixed(0)} ms`);
  assert.ok(r.failed === 0, describeFindings(READV_COPY, r));
  assert.ok(before > 0 && during > 0, 'the copy and the read never overlapped both ways');
});
