/**
 * userfaultfd in lockstep (lockstep.ts): a faulting thread on CPU 0 and the handler thread on
 * CPU 1, under every interleaving with at most PREEMPTIONS preemptions, each judged by what the
 * faulting thread read or wrote and by the handler's result.
 *
 * What Linux promises here (fs/userfaultfd.c handle_userfault, userfaultfd_must_wait,
 * wake_userfault, userfaultfd_release; mm/userfaultfd.c mfill_atomic, mwriteprotect_range):
 *  - a fault queued after the resolution, or whose wake comes before it sleeps, is never lost:
 *    handle_userfault re-reads the PTE after queueing (userfaultfd_must_wait), and a wake
 *    between the queueing and schedule() leaves the task running; so the faulting thread always
 *    finishes, and its access sees what UFFDIO_COPY installed (COPY returns 0: the fault itself
 *    never fills the page);
 *  - a write to a uffd-wp page racing UFFDIO_WRITEPROTECT's removal of the bit lands (the
 *    write is retried after the wake) and the ioctl returns 0;
 *  - a fault racing the close of the last descriptor is woken or never waits, and its retry
 *    finds the VMA unregistered: the load reads the zero page's 0, never SIGBUS;
 *  - a minor fault on shmem (mm/shmem.c shmem_get_folio_gfp: the page cache has the page, the
 *    VMA is VM_UFFD_MINOR) racing UFFDIO_CONTINUE (mfill_atomic_pte_continue) of its page is
 *    never lost either, and the load sees the page cache's page: CONTINUE returns 0, as only it
 *    maps the page (the fault never does in a MINOR VMA);
 *  - fork with UFFD_FEATURE_EVENT_FORK (kernel/fork.c dup_mmap, fs/userfaultfd.c
 *    userfaultfd_event_wait_completion) racing the handler's blocking read of the parent's
 *    descriptor (userfaultfd_ctx_read): the event is never lost, so the read returns it and the
 *    fork, which waits for that read, completes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { describeFindings, lockstep, type LockstepCase, type Run } from './lockstep.js';

const CLONE_VM = 0x100, CLONE_FS = 0x200, CLONE_FILES = 0x400, CLONE_SIGHAND = 0x800, CLONE_THREAD = 0x10000;
const THREAD_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
const UFFDIO_API = 0xc018aa3f, UFFDIO_REGISTER = 0xc020aa00, UFFDIO_COPY = 0xc028aa03, UFFDIO_WRITEPROTECT = 0xc018aa06, UFFDIO_CONTINUE = 0xc020aa07;
const MODE_MISSING = 1, MODE_WP = 2, MODE_MINOR = 4, WP_MODE_WP = 1, F_EVENT_FORK = 1 << 1;
const PREEMPTIONS = 2;
const VALUE = 0x1122334455667788n;

const sc = (name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args });
const st = (addr: string, value: number | bigint | string): Op => ({ op: 'store', addr, value });
const linger: Op[] = Array.from({ length: 3 }, (): Op => sc('getpid'));

/** Ops 0..9: $buf (2 pages), $area (1 page), $uffd, UFFDIO_API, UFFDIO_REGISTER of $area with `mode`. */
const setup = (mode: number): Op[] => [
  { op: 'syscall', name: 'mmap', args: [0, 8192, 3, 0x22, -1, 0], into: 'buf' },
  { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'area' },
  { op: 'syscall', name: 'userfaultfd', args: [0], into: 'uffd' },
  st('$buf', 0xaa), st('$buf+8', 0), sc('ioctl', '$uffd', UFFDIO_API, '$buf'),
  st('$buf+64', '$area'), st('$buf+72', 4096), st('$buf+80', mode), sc('ioctl', '$uffd', UFFDIO_REGISTER, '$buf+64'),
];

/** The value operation `index` of `fn` produced, or a message. */
function value(r: Run, fn: string, index: number): bigint | string {
  const rec = r.k.log.find((x) => x.fn === fn && x.index === index);
  if (!rec) return `${fn}[${index}] never ran`;
  if (rec.signal) return `${fn}[${index}] took signal ${rec.signal.signo}`;
  if (rec.value === undefined) return `${fn}[${index}] gave no value`;
  return BigInt.asIntN(64, rec.value);
}

/**
 * Ops 0..13: $buf (2 pages), a memfd of one page mapped shared twice ($area, registered with
 * `mode`, and $view), $uffd, UFFDIO_API, UFFDIO_REGISTER; then $view's page is put into the page
 * cache with VALUE in it, so $area's first access is a minor fault.
 */
const setupShmem = (mode: number): Op[] => [
  { op: 'syscall', name: 'mmap', args: [0, 8192, 3, 0x22, -1, 0], into: 'buf' },
  { op: 'syscall', name: 'memfd_create', args: ['&m', 0], into: 'fd' },
  sc('ftruncate', '$fd', 4096),
  { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x01, '$fd', 0], into: 'area' },
  { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x01, '$fd', 0], into: 'view' },
  { op: 'syscall', name: 'userfaultfd', args: [0], into: 'uffd' },
  st('$buf', 0xaa), st('$buf+8', 0), sc('ioctl', '$uffd', UFFDIO_API, '$buf'),
  st('$buf+64', '$area'), st('$buf+72', 4096), st('$buf+80', mode), sc('ioctl', '$uffd', UFFDIO_REGISTER, '$buf+64'),
  st('$view', VALUE),
];

/** main runs `before`, clones the handler (on CPU 1) running `handler`, then races `access` against the handler's last operation. */
function race(name: string, mode: number, before: Op[], handler: Op[], access: Op[], check: (r: Run, main: number, child: string) => string | null, prefix = setup(mode)): LockstepCase {
  const cloneAt = prefix.length + before.length;
  const child = `main.${cloneAt}.child`;
  return {
    name,
    processes: [{
      cpu: 0,
      program: {
        strings: { m: 'm' },
        main: [
          ...prefix,
          ...before,
          { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], into: 'tid', child: [...handler, ...linger], cpu: 1 },
          ...access,
          ...linger,
        ],
      },
    }],
    racers: [{ cpu: 0, fn: 'main', from: cloneAt + 1, to: cloneAt + access.length }, { cpu: 1, fn: child, from: handler.length - 1 }],
    watch: ['area'],
    preemptions: PREEMPTIONS,
    check: (r) => check(r, cloneAt, child),
  };
}

const CASES: LockstepCase[] = [
  race(
    'a missing fault against UFFDIO_COPY of its page',
    MODE_MISSING,
    [st('$buf+4096', VALUE)],
    [st('$buf+192', '$area'), st('$buf+200', '$buf+4096'), st('$buf+208', 4096), st('$buf+216', 0), sc('ioctl', '$uffd', UFFDIO_COPY, '$buf+192')],
    [{ op: 'load', addr: '$area', into: 'v' }],
    (r, at, child) => {
      const v = value(r, 'main', at + 1);
      const c = value(r, child, 4);
      if (typeof v === 'string') return v;
      if (typeof c === 'string') return c;
      if (c !== 0n) return `UFFDIO_COPY returned ${c}, not 0`;
      return v === VALUE ? null : `the load read 0x${BigInt.asUintN(64, v).toString(16)}, not the copied page`;
    },
  ),
  race(
    'a write to a uffd-wp page against UFFDIO_WRITEPROTECT removing the bit',
    MODE_WP,
    [st('$area', 5), st('$buf+256', '$area'), st('$buf+264', 4096), st('$buf+272', WP_MODE_WP), sc('ioctl', '$uffd', UFFDIO_WRITEPROTECT, '$buf+256')],
    [st('$buf+256', '$area'), st('$buf+264', 4096), st('$buf+272', 0), sc('ioctl', '$uffd', UFFDIO_WRITEPROTECT, '$buf+256')],
    [st('$area', 6), { op: 'load', addr: '$area', into: 'v' }],
    (r, at, child) => {
      const w = value(r, child, 3);
      const v = value(r, 'main', at + 2);
      if (typeof w === 'string') return w;
      if (typeof v === 'string') return v;
      if (w !== 0n) return `UFFDIO_WRITEPROTECT returned ${w}, not 0`;
      return v === 6n ? null : `the write did not land: the page holds ${v}`;
    },
  ),
  race(
    'a missing fault against the close of the last userfaultfd descriptor',
    MODE_MISSING,
    [],
    [sc('close', '$uffd')],
    [{ op: 'load', addr: '$area', into: 'v' }],
    (r, at, child) => {
      const c = value(r, child, 0);
      const v = value(r, 'main', at + 1);
      if (typeof c === 'string') return c;
      if (typeof v === 'string') return v;
      if (c !== 0n) return `close returned ${c}`;
      return v === 0n ? null : `the load read ${v}, not the zero page's 0`;
    },
  ),
  race(
    'a minor fault on a memfd mapped twice against UFFDIO_CONTINUE of its page',
    MODE_MINOR,
    [],
    [st('$buf+256', '$area'), st('$buf+264', 4096), st('$buf+272', 0), sc('ioctl', '$uffd', UFFDIO_CONTINUE, '$buf+256')],
    [{ op: 'load', addr: '$area', into: 'v' }],
    (r, at, child) => {
      const v = value(r, 'main', at + 1);
      const c = value(r, child, 3);
      if (typeof v === 'string') return v;
      if (typeof c === 'string') return c;
      if (c !== 0n) return `UFFDIO_CONTINUE returned ${c}, not 0`;
      return v === VALUE ? null : `the load read 0x${BigInt.asUintN(64, v).toString(16)}, not the page cache's page`;
    },
    setupShmem(MODE_MINOR),
  ),
  race(
    'fork with UFFD_FEATURE_EVENT_FORK against the handler\'s read of the parent\'s descriptor',
    MODE_MISSING,
    [],
    [sc('read', '$uffd', '$buf+128', 32)],
    [{ op: 'syscall', name: 'fork', args: [], into: 'child', child: [sc('exit', 0)] }],
    (r, at, child) => {
      const f = value(r, 'main', at + 1);
      const n = value(r, child, 0);
      if (typeof f === 'string') return f;
      if (typeof n === 'string') return n;
      if (f <= 0n) return `fork returned ${f}`;
      // The only message there can be is the fork event: no fault is ever queued here.
      return n === 32n ? null : `read returned ${n}, not one message`;
    },
    [...setup(MODE_MISSING).slice(0, 4), st('$buf+8', F_EVENT_FORK), ...setup(MODE_MISSING).slice(5)],
  ),
];

for (const c of CASES) {
  test(`lockstep, every interleaving: ${c.name}`, (t) => {
    const r = lockstep(c);
    t.diagnostic(`${r.interleavings} interleavings (every one with at most ${c.preemptions} preemptions), window up to ${r.longest} steps, ${r.ms.toFixed(0)} ms; outcomes ${[...r.outcomes].map(([k, n]) => `${k}: ${n}`).join(', ')}`);
    assert.ok(r.failed === 0, describeFindings(c, r));
    assert.ok(r.interleavings >= 2, `${r.interleavings} interleaving(s): the racers never raced`);
  });
}
