/**
 * The file paths in lockstep (lockstep.ts): two threads of one process, on two CPUs, race
 * through read, write, pwrite64, ftruncate and loads through a mapping of one file, under every interleaving with at most
 * PREEMPTIONS preemptions, and every interleaving is judged by what the threads read and by the
 * page counts (the page cache's frames included).
 *
 * What Linux promises here (fs/read_write.c, fs/file.c file_needs_f_pos_lock, mm/shmem.c):
 *  - two reads of one shared descriptor never read the same bytes: each holds f_pos_lock from
 *    reading the position to storing the new one, so the two 4-byte reads of an 8-byte file
 *    get its two halves, in either order;
 *  - a read racing a write of the same bytes of one page sees them all before or all after:
 *    the write copies the user's bytes into the page in one step and the read copies the page
 *    out in one (copy_page_to_iter of a page the writer holds locked), so no read sees half a
 *    write of 8 aligned bytes;
 *  - two appends through two struct files of one inode land one after the other, none
 *    overwriting the other: each takes inode_lock before it reads i_size;
 *  - a load through a shared mapping racing ftruncate of its page reads the page or takes
 *    SIGBUS.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { describeFindings, lockstep, type LockstepCase, type Run } from './lockstep.js';

const CLONE_VM = 0x100, CLONE_FS = 0x200, CLONE_FILES = 0x400, CLONE_SIGHAND = 0x800, CLONE_THREAD = 0x10000;
const THREAD_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
const O_CREAT = 0o100, O_RDWR = 2, O_APPEND = 0o2000;
const PREEMPTIONS = 2;
const T = 'main.6.child';
const ABCD = 0x44434241n, EFGH = 0x48474645n;

const sc = (name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args });
const linger: Op[] = Array.from({ length: 3 }, (): Op => ({ op: 'syscall', name: 'getpid' }));

/** main: a page; "ABCDEFGH" in it; the file /tmp/f (descriptor 3) holding it, its position `at`; the file opened again (descriptor 4); a thread on CPU 1 running `b`; then `a`. */
function sharedFile(name: string, flags: number, at: number, a: Op[], b: Op[], check: (r: Run) => string | null): LockstepCase {
  return {
    name,
    processes: [{
      cpu: 0,
      program: {
        main: [
          { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'buf' }, // 0
          { op: 'store', addr: '$buf', value: (EFGH << 32n) | ABCD }, // 1
          sc('open', '&f', flags, 0o644), // 2
          sc('write', 3, '$buf', 8), // 3
          sc('lseek', 3, at, 0), // 4
          sc('open', '&f', flags & ~O_CREAT, 0), // 5: descriptor 4, a second struct file
          { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], into: 'tid', child: b, cpu: 1 }, // 6
          ...a, // 7..
          ...linger,
        ],
        strings: { f: '/tmp/f' },
      },
    }],
    racers: [{ cpu: 0, fn: 'main', from: 7, to: 6 + a.length }, { cpu: 1, fn: T, from: 0, to: b.length - 1 }],
    watch: ['buf'],
    preemptions: PREEMPTIONS,
    check,
  };
}

/** The value operation `index` of `fn` produced (a load's value or a syscall's result), or a message. */
function value(r: Run, fn: string, index: number): bigint | string {
  const rec = r.k.log.find((x) => x.fn === fn && x.index === index);
  if (!rec) return `${fn}[${index}] never ran`;
  if (rec.value === undefined) return `${fn}[${index}] gave no value`;
  return BigInt.asIntN(64, rec.value);
}

const CASES: LockstepCase[] = [
  sharedFile(
    'read against read of one shared descriptor',
    O_CREAT | O_RDWR,
    0,
    [sc('read', 3, '$buf+128', 4), { op: 'load', addr: '$buf+128', size: 4, into: 'm' }],
    [sc('read', 3, '$buf+256', 4), { op: 'load', addr: '$buf+256', size: 4, into: 't' }],
    (r) => {
      const m = value(r, 'main', 8);
      const t = value(r, T, 1);
      if (typeof m === 'string') return m;
      if (typeof t === 'string') return t;
      const ok = (m === ABCD && t === EFGH) || (m === EFGH && t === ABCD);
      return ok ? null : `the reads got 0x${m.toString(16)} and 0x${t.toString(16)}; one should get ABCD and the other EFGH`;
    },
  ),
  sharedFile(
    'read against a pwrite64 of the same 8 bytes',
    O_CREAT | O_RDWR,
    0,
    [{ op: 'store', addr: '$buf+512', value: 0x5a5a5a5a5a5a5a5an }, sc('pwrite64', 3, '$buf+512', 8, 0)],
    [sc('pread64', 3, '$buf+256', 8, 0), { op: 'load', addr: '$buf+256', into: 't' }],
    (r) => {
      const t = value(r, T, 1);
      if (typeof t === 'string') return t;
      const ok = t === ((EFGH << 32n) | ABCD) || t === 0x5a5a5a5a5a5a5a5an;
      return ok ? null : `the read saw 0x${BigInt.asUintN(64, t).toString(16)}: half of the write`;
    },
  ),
  sharedFile(
    'append against append through two struct files (only inode_lock orders them)',
    O_CREAT | O_RDWR | O_APPEND,
    0,
    [sc('write', 3, '$buf', 4)],
    [sc('write', 4, '$buf+4', 4)],
    (r) => {
      const size = r.k.vfs.root.entries!.get('tmp')!.entries!.get('f')!.size;
      return size === 16 ? null : `after two 4-byte appends to 8 bytes the file holds ${size}`;
    },
  ),
];

/**
 * ftruncate against a load through a shared mapping of the page it cuts off: the load reads
 * the page's 7 (it came before the truncation's zap and flush) or takes SIGBUS (after: the
 * PTE is gone and the fault finds the page past i_size); never a freed or another page. Both
 * happen among the interleavings. SIGBUS's default action then ends the process.
 */
const TRUNCATE: LockstepCase = {
  name: 'ftruncate against a load through a shared mapping of the page it cuts off',
  processes: [{
    cpu: 0,
    program: {
      main: [
        sc('open', '&f', O_CREAT | O_RDWR, 0o644), // 0: 3
        sc('ftruncate', 3, 4096), // 1
        { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x01, 3, 0], into: 'm' }, // 2: MAP_SHARED
        { op: 'store', addr: '$m', value: 7 }, // 3
        { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], into: 'tid', child: [{ op: 'load', addr: '$m', into: 't' }], cpu: 1 }, // 4
        sc('ftruncate', 3, 0), // 5
        ...linger,
      ],
      strings: { f: '/tmp/f' },
    },
  }],
  racers: [{ cpu: 0, fn: 'main', from: 5 }, { cpu: 1, fn: 'main.4.child', from: 0 }],
  watch: ['m'],
  preemptions: PREEMPTIONS,
  check: (r) => {
    const rec = r.k.log.find((x) => x.fn === 'main.4.child' && x.index === 0);
    if (!rec) return 'the load left no record';
    if (rec.signal) return rec.signal.signo === 7 ? null : `the load took signal ${rec.signal.signo}, not SIGBUS`;
    return rec.value === 7n ? null : `the load read ${rec.value}, not 7`;
  },
};
CASES.push(TRUNCATE);

for (const c of CASES) {
  test(`lockstep, every interleaving: ${c.name}`, (t) => {
    const r = lockstep(c);
    t.diagnostic(`${r.interleavings} interleavings (every one with at most ${c.preemptions} preemptions), window up to ${r.longest} steps, ${r.ms.toFixed(0)} ms`);
    assert.ok(r.failed === 0, describeFindings(c, r));
    assert.ok(r.interleavings >= 2, `${r.interleavings} interleaving(s): the racers never raced`);
  });
}
