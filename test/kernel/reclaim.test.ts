/**
 * Anonymous reclaim and swap as Linux 6.12 does them (mm/madvise.c, mm/vmscan.c, mm/rmap.c,
 * mm/swap_state.c, mm/swapfile.c, mm/memory.c do_swap_page, mm/mincore.c), one rule a test:
 * MADV_FREE's lazyfree marking, MADV_PAGEOUT's discard of a clean lazyfree page and its refusal
 * of a redirtied one, its swap-out of a dirty page and do_swap_page bringing it back (a read
 * fault on an exclusive entry maps it writable but clean), fork sharing a swap entry, the swap
 * slot freed by munmap and exit, MADV_COLD, mincore, and the errno cases. The expected values
 * come from the 6.12 source named in each test.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PTE_A, PTE_D, PTE_P, PTE_RW } from '../../src/hw/pte.js';
import { PG_active, PG_dirty, PG_swapbacked, PG_swapcache } from '../../src/kernel/page.js';
import { swp_entry_to_pte, swp_offset, swp_type, _PAGE_SWP_EXCLUSIVE } from '../../src/kernel/pgtable.js';
import type { System } from '../../src/system.js';
import type { Op } from '../../src/user/program.js';
import { boot, mmapAnon, records, ret, runProgram, runWithEvents } from './helpers.js';

const PAGE = 4096;
const MADV_FREE = 8, MADV_COLD = 20, MADV_PAGEOUT = 21;
const EINVAL = 22, ENOMEM = 12, EFAULT = 14;

const madvise = (behavior: number, addr = '$buf', len = PAGE, into = 'r'): Op => ({ op: 'syscall', name: 'madvise', args: [addr, len, behavior], into });
const mincore = (addr: string | number = '$buf', len = PAGE, vec: string | number = '$vec', into = 'm'): Op => ({ op: 'syscall', name: 'mincore', args: [addr, len, vec], into });
const load = (into: string, addr = '$buf', size?: 1 | 2 | 4 | 8): Op => (size ? { op: 'load', addr, into, size } : { op: 'load', addr, into });
const store = (value: number, addr = '$buf'): Op => ({ op: 'store', addr, value });

/** Runs `main` (one process) until op `index` of main has completed. */
function runTo(main: Op[], index: number, swap_pages = 0): { sys: System; pid: number } {
  const sys = boot({ kernel: { log: true, swap_pages } });
  const pid = sys.spawn({ main });
  for (let n = 0; n < 1_000_000 && !records(sys).has(index); n++) if (!sys.step()) break;
  assert.ok(records(sys).has(index), `main[${index}] did not complete`);
  assert.deepEqual(sys.debugReports, []);
  return { sys, pid };
}

const bufOf = (sys: System, pid: number): number => Number(sys.vars(pid).get('buf')!);
const pfnOf = (sys: System, pid: number): number => sys.pte(pid, bufOf(sys, pid))!.pfn;
const raw = (sys: System, pid: number): { lo: number; hi: number } => {
  const p = sys.pte(pid, bufOf(sys, pid))!;
  return { lo: p.lo, hi: p.hi };
};

test('the swap PTE is pgtable_64.h\'s: type in bits 63:59, the offset inverted in bits 58:9, exclusive at bit 3', () => {
  const M64 = (1n << 64n) - 1n;
  for (const [type, offset] of [[0, 0], [0, 5], [1, 0x12345], [31, (1 << 22) + 3]]) {
    // __swp_entry(type, offset): (~offset << SWP_OFFSET_SHIFT >> SWP_TYPE_BITS) | (type << (64 - SWP_TYPE_BITS)), SWP_OFFSET_SHIFT = 9 + 5.
    const want = ((((~BigInt(offset) & M64) << 14n) & M64) >> 5n) | (BigInt(type) << 59n);
    const p = swp_entry_to_pte({ lo: 0, hi: 0 }, type, offset);
    const got = (BigInt(p.hi >>> 0) << 32n) | BigInt(p.lo >>> 0);
    assert.equal(got.toString(16), want.toString(16), `type ${type}, offset ${offset}`);
    assert.equal(p.lo & PTE_P, 0, 'not present');
    assert.equal(p.lo & 0x1ff, 0, 'bits 8:0 clear (not PROT_NONE, not PSE)');
    assert.equal(swp_type(p.lo, p.hi), type);
    assert.equal(swp_offset(p.lo | _PAGE_SWP_EXCLUSIVE, p.hi), offset);
  }
  assert.equal(_PAGE_SWP_EXCLUSIVE, 1 << 3, '_PAGE_SWP_EXCLUSIVE is _PAGE_PWT');
});

test('MADV_FREE marks the folio lazyfree (PG_swapbacked cleared) and clean (PG_dirty cleared, PTE D and A cleared)', () => {
  const { sys, pid } = runTo([mmapAnon('buf', PAGE), store(1), madvise(MADV_FREE)], 2);
  assert.equal(ret(sys, 2), 0n);
  const pfn = pfnOf(sys, pid);
  const flags = sys.kernel.pages.flags[pfn];
  assert.equal(flags & PG_swapbacked, 0, 'folio_mark_lazyfree clears PG_swapbacked');
  assert.equal(flags & PG_dirty, 0);
  const p = raw(sys, pid);
  assert.equal(p.lo & (PTE_D | PTE_A), 0, 'clear_young_dirty_ptes(CYDP_CLEAR_YOUNG | CYDP_CLEAR_DIRTY)');
  assert.ok(p.lo & PTE_RW, 'still writable');
});

test('MADV_FREE then MADV_PAGEOUT discards a clean page (no swap needed); mincore says 0 and a read gives 0', () => {
  const main = [mmapAnon('buf', PAGE), mmapAnon('vec', PAGE), store(7), madvise(MADV_FREE), madvise(MADV_PAGEOUT), mincore(), load('v0', '$vec', 1), load('x'), mincore(), load('v1', '$vec', 1)];
  const { sys } = runProgram(main, { kernel: { swap_pages: 0 } });
  assert.equal(ret(sys, 4), 0n);
  assert.equal(ret(sys, 5), 0n);
  assert.equal(ret(sys, 6), 0n, 'the page is gone: an empty PTE in an anonymous VMA is not resident');
  assert.equal(ret(sys, 7), 0n, 'try_to_unmap_one discarded it: a read maps the zero page');
  assert.equal(ret(sys, 9), 1n, 'the zero page is mapped now (pte_present)');
});

test('a page written after MADV_FREE is kept by MADV_PAGEOUT and made swap-backed again (folio_set_swapbacked)', () => {
  const { sys, pid } = runTo([mmapAnon('buf', PAGE), store(7), madvise(MADV_FREE), store(9), madvise(MADV_PAGEOUT), load('x')], 5);
  const pfn = pfnOf(sys, pid);
  assert.ok(sys.pte(pid, bufOf(sys, pid))!.present, 'the PTE was put back (set_pte_at(pteval))');
  assert.ok(sys.kernel.pages.flags[pfn] & PG_swapbacked);
  assert.ok(sys.kernel.pages.flags[pfn] & PG_active, 'try_to_unmap failed: activate_locked');
  assert.equal(ret(sys, 5), 9n);
});

test('a page mapped twice (after fork) is left alone by MADV_PAGEOUT (folio_mapcount != folio_nr_pages)', () => {
  const main: Op[] = [mmapAnon('buf', PAGE), store(5), { op: 'syscall', name: 'fork', into: 'pid', child: [load('c'), { op: 'syscall', name: 'getpid' }] }, madvise(MADV_PAGEOUT), load('x')];
  const { sys, pid } = runTo(main, 3, 16);
  assert.equal(ret(sys, 3), 0n);
  assert.ok(sys.pte(pid, bufOf(sys, pid))!.present);
  assert.equal(sys.kernel.swap.inuse_pages, 0, 'nothing was swapped');
});

test('MADV_PAGEOUT without swap keeps a dirty private page (add_to_swap fails: activate_locked)', () => {
  const { sys, pid } = runTo([mmapAnon('buf', PAGE), store(3), madvise(MADV_PAGEOUT), load('x')], 3, 0);
  assert.ok(sys.pte(pid, bufOf(sys, pid))!.present);
  assert.ok(sys.kernel.pages.flags[pfnOf(sys, pid)] & PG_active);
  assert.equal(ret(sys, 3), 3n);
});

test('MADV_PAGEOUT with swap swaps a dirty private page out: an exclusive swap PTE, one slot reference, the frame freed', () => {
  const { sys, pid } = runTo([mmapAnon('buf', PAGE), store(0x1234), madvise(MADV_PAGEOUT), load('x')], 2, 16);
  const p = raw(sys, pid);
  assert.equal(p.lo & PTE_P, 0);
  assert.ok(p.lo & _PAGE_SWP_EXCLUSIVE, 'pte_swp_mkexclusive: the page was PageAnonExclusive');
  const off = swp_offset(p.lo, p.hi);
  assert.equal(swp_type(p.lo, p.hi), 0);
  assert.equal(sys.kernel.swap.swap_map[off], 1, 'swap_duplicate once; SWAP_HAS_CACHE gone with __remove_mapping');
  assert.equal(sys.kernel.swap.cache.size, 0);
  assert.equal(sys.kernel.tasks.get(pid)!.mm!.rss, 0);
  assert.equal(sys.kernel.tasks.get(pid)!.mm!.swapents, 1);
});

test('a read fault on a swapped-out exclusive page brings the data back, mapped writable but clean, still in the swap cache', () => {
  const main = [mmapAnon('buf', PAGE), mmapAnon('vec', PAGE), store(0x1234), madvise(MADV_PAGEOUT), mincore(), load('v0', '$vec', 1), load('x'), mincore(), load('v1', '$vec', 1)];
  const { sys, pid } = runTo(main, 8, 16);
  assert.equal(ret(sys, 5), 0n, 'swapped out and not in the swap cache: mincore 0');
  assert.equal(ret(sys, 6), 0x1234n, 'do_swap_page read the slot');
  assert.equal(ret(sys, 8), 1n);
  const p = raw(sys, pid);
  // do_swap_page: exclusive && VM_WRITE → pte_mkwrite; pte_mkdirty only for FAULT_FLAG_WRITE.
  assert.ok(p.lo & PTE_RW, 'writable');
  assert.equal(p.lo & PTE_D, 0, 'clean');
  const pfn = pfnOf(sys, pid);
  assert.ok(sys.kernel.pages.flags[pfn] & PG_swapcache, 'a read fault does not free the swap cache (should_try_to_free_swap)');
  assert.equal(sys.kernel.swap.swap_map[sys.kernel.pages.swap[pfn]], 0x40, 'swap_free left SWAP_HAS_CACHE alone');
});

test('a write after a read swap-in needs no fault; a write fault on a swapped-out page frees its slot', () => {
  const main = [mmapAnon('buf', PAGE), store(1), madvise(MADV_PAGEOUT), load('x'), store(2), madvise(MADV_PAGEOUT), store(3), load('y')];
  const { sys, events } = runWithEvents(main, { kernel: { swap_pages: 16 } });
  const faults = events.filter((e) => e.type === 'page_fault' && e.outcome !== 'zero-page');
  assert.deepEqual(faults.map((e) => e.type === 'page_fault' && e.outcome), ['mapped', 'swapin', 'swapin'], 'the store after the read swap-in went through the writable PTE');
  assert.equal(ret(sys, 3), 1n);
  assert.equal(ret(sys, 7), 3n);
  assert.equal(sys.kernel.swap.inuse_pages, 0);
});

test('a write fault on a swapped-out page maps it dirty and gives up the swap slot (should_try_to_free_swap)', () => {
  const { sys, pid } = runTo([mmapAnon('buf', PAGE), store(1), madvise(MADV_PAGEOUT), store(2), load('y')], 4, 16);
  const p = raw(sys, pid);
  assert.ok(p.lo & PTE_RW && p.lo & PTE_D);
  assert.equal(sys.kernel.pages.flags[pfnOf(sys, pid)] & PG_swapcache, 0);
  assert.equal(sys.kernel.swap.inuse_pages, 0);
  assert.equal(ret(sys, 4), 2n);
});

test('fork of a swapped-out page shares the swap entry (count 2, no longer exclusive); each side reads the data', () => {
  const child: Op[] = [load('c'), { op: 'syscall', name: 'getpid' }];
  const main: Op[] = [mmapAnon('buf', PAGE), store(0x55), madvise(MADV_PAGEOUT), { op: 'syscall', name: 'fork', into: 'pid', child }, load('p'), { op: 'syscall', name: 'wait4', args: [-1, 0, 0, 0] }];
  const { sys, pid } = runTo(main, 3, 16);
  const p = raw(sys, pid);
  const off = swp_offset(p.lo, p.hi);
  assert.equal(sys.kernel.swap.swap_map[off], 2, 'copy_nonpresent_pte: swap_duplicate');
  assert.equal(p.lo & _PAGE_SWP_EXCLUSIVE, 0, 'pte_swp_clear_exclusive in the parent');
  const done = runProgram(main, { kernel: { swap_pages: 16 } }).sys;
  assert.equal(ret(done, 4), 0x55n);
  assert.equal(records(done, 'main.3.child').get(0)?.value, 0x55n);
  assert.equal(done.kernel.swap.inuse_pages, 0, 'exit freed the slot');
});

test('munmap frees the swap slot of a swapped-out page (zap: free_swap_and_cache)', () => {
  const { sys } = runTo([mmapAnon('buf', PAGE), store(1), madvise(MADV_PAGEOUT), { op: 'syscall', name: 'munmap', args: ['$buf', PAGE], into: 'u' }, { op: 'syscall', name: 'getpid' }], 3, 16);
  assert.equal(ret(sys, 3), 0n);
  assert.equal(sys.kernel.swap.inuse_pages, 0);
  assert.equal(sys.kernel.swap.cache.size, 0);
});

test('exit frees the swap slots and the swap-cache folios', () => {
  const { sys } = runProgram([mmapAnon('buf', 2 * PAGE), store(1), store(2, '$buf+4096'), madvise(MADV_PAGEOUT, '$buf', 2 * PAGE), load('x')], { kernel: { swap_pages: 16 } });
  assert.equal(ret(sys, 4), 1n);
  assert.equal(sys.kernel.swap.inuse_pages, 0);
  assert.equal(sys.kernel.swap.cache.size, 0);
});

test('MADV_FREE of a swapped-out page frees its slot; the next read is a zeroed page', () => {
  const { sys } = runProgram([mmapAnon('buf', PAGE), store(4), madvise(MADV_PAGEOUT), madvise(MADV_FREE), load('x')], { kernel: { swap_pages: 16 } });
  assert.equal(ret(sys, 4), 0n);
  assert.equal(sys.kernel.swap.inuse_pages, 0);
});

test('MADV_COLD clears the accessed bit and deactivates the folio, without reclaiming it', () => {
  const { sys, pid } = runTo([mmapAnon('buf', PAGE), store(3), madvise(MADV_PAGEOUT), madvise(MADV_COLD), load('x')], 3, 0);
  assert.equal(ret(sys, 3), 0n);
  const p = sys.pte(pid, bufOf(sys, pid))!;
  assert.ok(p.present);
  assert.equal(p.accessed, false, 'ptep_test_and_clear_young');
  assert.equal(sys.kernel.pages.flags[pfnOf(sys, pid)] & PG_active, 0, 'folio_deactivate');
});

test('madvise and mincore refuse bad arguments in Linux\'s order', () => {
  const K = 0xffff800000000000n as unknown as number;
  const main: Op[] = [
    mmapAnon('buf', PAGE),
    mmapAnon('vec', PAGE),
    madvise(MADV_PAGEOUT, '$buf+1'),
    madvise(99),
    madvise(MADV_COLD, '$buf+8192'),
    mincore('$buf+1'),
    mincore(K),
    mincore('$buf', PAGE, K),
    mincore('$buf+8192'),
    mincore('$buf', PAGE, 0x10000),
    mincore('$buf', 0),
  ];
  const { sys } = runProgram(main, { kernel: { swap_pages: 16 } });
  assert.equal(ret(sys, 2), BigInt(-EINVAL), 'madvise: misaligned start');
  assert.equal(ret(sys, 3), BigInt(-EINVAL), 'madvise: unknown advice');
  assert.equal(ret(sys, 4), BigInt(-ENOMEM), 'madvise: an unmapped range');
  assert.equal(ret(sys, 5), BigInt(-EINVAL), 'mincore: misaligned start');
  assert.equal(ret(sys, 6), BigInt(-ENOMEM), 'mincore: not user space (access_ok)');
  assert.equal(ret(sys, 7), BigInt(-EFAULT), 'mincore: the vector not in user space');
  assert.equal(ret(sys, 8), BigInt(-ENOMEM), 'mincore: no VMA');
  assert.equal(ret(sys, 9), BigInt(-EFAULT), 'mincore: copy_to_user to an unmapped vector');
  assert.equal(ret(sys, 10), 0n, 'mincore: an empty range');
});
