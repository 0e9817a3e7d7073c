/**
 * procfs in lockstep (lockstep.ts): a /proc/self/mem write racing the process's own store on a
 * second CPU, and a pagemap read racing the fault that fills the page it reads, under every
 * interleaving with at most PREEMPTIONS preemptions; and clear_refs 4 racing a store.
 *
 * What Linux promises (mm/gup.c __get_user_pages and follow_page_pte under the page-table
 * lock; mm/memory.c wp_page_copy re-checking pte_same before installing its copy;
 * fs/proc/task_mmu.c pagemap_pmd_range reading the PTE table under its lock):
 *  - the forced write and the store both break COW of the same zero-page PTE; whichever copy
 *    is installed, GUP writes into the page the PTE maps once it has followed it (holding a
 *    reference), so neither write is lost: the page ends holding both;
 *  - pagemap sees the PTE before the fault (PM_SOFT_DIRTY alone: an empty entry of a
 *    VM_SOFTDIRTY VMA) or after it (present, exclusive, soft-dirty), never a torn entry.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { pte_pfn } from '../../src/kernel/pgtable.js';
import { describeFindings, lockstep, type LockstepCase, type Run } from './lockstep.js';

const CLONE_VM = 0x100, CLONE_FS = 0x200, CLONE_FILES = 0x400, CLONE_SIGHAND = 0x800, CLONE_THREAD = 0x10000;
const THREAD_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
const O_RDWR = 2;
const PREEMPTIONS = 2;
const sc = (name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args });
const linger: Op[] = Array.from({ length: 3 }, (): Op => ({ op: 'syscall', name: 'getpid' }));

/**
 * The 8 bytes at `va` of the page the racers' PTE mapped when the window ended (Run.endPtes),
 * or a message. The process has exited by the time a check runs: its frames are free but
 * nothing allocates after the window, and only an allocation zeroes a frame.
 */
function word(r: Run, va: number): bigint | string {
  const page = Math.floor(va / 4096) * 4096;
  const e = [...r.endPtes].find(([key]) => key.endsWith(`:${page}`));
  if (!e) return `no watched PTE for 0x${page.toString(16)}`;
  const pfn = pte_pfn(e[1].lo, e[1].hi);
  return Buffer.from(r.k.machine.mem.readBytes(pfn * 4096 + (va % 4096), 8)).readBigUInt64LE(0);
}

/** The value a racer's operation produced, or a message. */
function value(r: Run, fn: string, index: number): bigint | string {
  const rec = r.k.log.find((x) => x.fn === fn && x.index === index);
  if (!rec) return `${fn}[${index}] never ran`;
  if (rec.value === undefined) return `${fn}[${index}] gave no value`;
  return BigInt.asIntN(64, rec.value);
}

const MEM_WRITE: LockstepCase = {
  name: '/proc/self/mem write against the process\'s own store to the same zero-page-mapped page',
  processes: [{
    cpu: 0,
    program: {
      main: [
        { op: 'syscall', name: 'mmap', args: [0, 8192, 3, 0x22, -1, 0], into: 'buf' }, // 0
        { op: 'load', addr: '$buf', into: 'z' }, // 1: the zero page mapped
        { op: 'store', addr: '$buf+4096', value: 0x2222222222222222n }, // 2: the bytes to write
        sc('open', '&mem', O_RDWR, 0), // 3: 3
        { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], into: 'tid', child: [{ op: 'store', addr: '$buf', value: 0x1111111111111111n }], cpu: 1 }, // 4
        sc('pwrite64', 3, '$buf+4096', 8, '$buf+8'), // 5
        ...linger,
      ],
      strings: { mem: '/proc/self/mem' },
    },
  }],
  racers: [{ cpu: 0, fn: 'main', from: 5 }, { cpu: 1, fn: 'main.4.child', from: 0 }],
  watch: ['buf'],
  preemptions: PREEMPTIONS,
  check: (r) => {
    const w = value(r, 'main', 5);
    if (w !== 8n) return `the write returned ${String(w)}`;
    const buf = Number(value(r, 'main', 0));
    const a = word(r, buf);
    const b = word(r, buf + 8);
    if (typeof a === 'string') return a;
    if (typeof b === 'string') return b;
    if (a !== 0x1111111111111111n) return `the store was lost: 0x${a.toString(16)}`;
    if (b !== 0x2222222222222222n) return `the /proc/self/mem write was lost: 0x${b.toString(16)}`;
    return null;
  },
};

const PM = 1n << 63n, EXCL = 1n << 56n, SD = 1n << 55n, PFN = (1n << 55n) - 1n;

const PAGEMAP_FAULT: LockstepCase = {
  name: 'a pagemap read against the write fault that fills the page it reads',
  processes: [{
    cpu: 0,
    program: {
      main: [
        { op: 'syscall', name: 'mmap', args: [0, 8192, 3, 0x22, -1, 0], into: 'buf' }, // 0: 0x7ffff7ffd000
        { op: 'store', addr: '$buf+4096', value: 0 }, // 1: the PTE table and the buffer page
        sc('open', '&pagemap', 0, 0), // 2: 3
        { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], into: 'tid', child: [{ op: 'store', addr: '$buf', value: 5 }], cpu: 1 }, // 3
        sc('pread64', 3, '$buf+4096', 8, 0x7ffff7ffd * 8), // 4
        { op: 'load', addr: '$buf+4096', into: 'e' }, // 5
        ...linger,
      ],
      strings: { pagemap: '/proc/self/pagemap' },
    },
  }],
  racers: [{ cpu: 0, fn: 'main', from: 4 }, { cpu: 1, fn: 'main.3.child', from: 0 }],
  watch: ['buf'],
  preemptions: PREEMPTIONS,
  check: (r) => {
    if (value(r, 'main', 0) !== 0x7ffff7ffd000n) return `buf at ${String(value(r, 'main', 0))}`;
    if (value(r, 'main', 4) !== 8n) return `pread64 returned ${String(value(r, 'main', 4))}`;
    const e = value(r, 'main', 5);
    if (typeof e === 'string') return e;
    const u = BigInt.asUintN(64, e);
    if (u === SD) return null;
    if ((u & ~PFN) === (PM | EXCL | SD) && (u & PFN) !== 0n) return null;
    return `pagemap read 0x${u.toString(16)}: neither the empty entry nor the filled one`;
  },
};

/**
 * clear_refs 4 against a store on the other CPU, whose TLB holds the page writable from an
 * earlier store: the store lands before clear_soft_dirty's exchange (then the page is clean and
 * write-protected), or after the flush (then it faults and pte_mkdirty sets soft-dirty again).
 * At the end a writable PTE is always soft-dirty, and the store's value is in the page.
 */
const CLEAR_REFS_STORE: LockstepCase = {
  name: 'clear_refs 4 against a store through a writable TLB entry on the other CPU',
  processes: [{
    cpu: 0,
    program: {
      main: [
        { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'buf' }, // 0
        { op: 'store', addr: '$buf', value: 1 }, // 1
        sc('open', '&clear', O_RDWR, 0), // 2: 3
        { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], into: 'tid', child: [{ op: 'store', addr: '$buf', value: 5 }, { op: 'store', addr: '$buf', value: 7 }], cpu: 1 }, // 3
        sc('write', 3, '&four', 1), // 4
        ...linger,
      ],
      strings: { clear: '/proc/self/clear_refs', four: '4' },
    },
  }],
  racers: [{ cpu: 0, fn: 'main', from: 4 }, { cpu: 1, fn: 'main.3.child', from: 1 }],
  watch: ['buf'],
  preemptions: PREEMPTIONS,
  check: (r) => {
    if (value(r, 'main', 4) !== 1n) return `clear_refs returned ${String(value(r, 'main', 4))}`;
    const buf = Number(value(r, 'main', 0));
    const e = [...r.endPtes].find(([key]) => key.endsWith(`:${buf}`));
    if (!e) return 'no watched PTE';
    const { lo } = e[1];
    if (lo & 2 && !(lo & 0x800)) return `the PTE is writable but not soft-dirty (0x${(lo >>> 0).toString(16)}): a later write would go unseen`;
    const w = word(r, buf);
    if (w !== 7n) return `the page holds ${String(w)}, not the store's 7`;
    // A store that completed after clear_refs returned must have left the page soft-dirty.
    const at = (match: (e: (typeof r.events)[number]['e']) => boolean): number => r.events.find((x) => match(x.e))?.step ?? -1;
    const stored = at((e) => e.type === 'op' && e.record.fn === 'main.3.child' && e.record.index === 1);
    const returned = at((e) => e.type === 'syscall' && e.name === 'write' && e.tid === r.tids[0]);
    if (stored > returned && !(lo & 0x800)) return `the store (step ${stored}) came after clear_refs returned (step ${returned}) but the PTE is not soft-dirty`;
    return null;
  },
};

for (const c of [MEM_WRITE, PAGEMAP_FAULT, CLEAR_REFS_STORE]) {
  test(`lockstep, every interleaving: ${c.name}`, (t) => {
    const r = lockstep(c);
    t.diagnostic(`${r.interleavings} interleavings (every one with at most ${c.preemptions} preemptions), window up to ${r.longest} steps, ${r.ms.toFixed(0)} ms`);
    assert.ok(r.failed === 0, describeFindings(c, r));
    assert.ok(r.interleavings >= 2, `${r.interleavings} interleaving(s): the racers never raced`);
  });
}

test('lockstep: the pagemap read sees both the empty and the filled entry among the interleavings', () => {
  const seen = new Set<string>();
  lockstep(PAGEMAP_FAULT, (r) => {
    const e = value(r, 'main', 5);
    if (typeof e !== 'string') seen.add(BigInt.asUintN(64, e) === SD ? 'empty' : 'filled');
  });
  assert.deepEqual([...seen].sort(), ['empty', 'filled']);
});
