/**
 * Unmapping user pages (mm/memory.c unmap_page_range → zap_pte_range, and the mmu_gather of
 * include/asm-generic/tlb.h and mm/mmu_gather.c): each PTE of a range is cleared under the
 * page-table lock, the page loses the mapping at once, and its reference is dropped only
 * after the TLB flush (tlb_finish_mmu), so no CPU can still reach a page that is handed out
 * again. The caller holds mmap_lock.
 */
import { ModelError } from '../errors.js';
import type { Kernel, PerCpu } from './kernel.js';
import { spin_lock_ptl, spin_unlock_ptl } from './memory.js';
import { cond_resched } from './sched.js';
import type { MmStruct } from './mm.js';
import { anon_folio_keep_dirty, PG_anon, PG_dirty, PG_swapcache, type PageRefs } from './page.js';
import { _PAGE_SPECIAL, pgtableIndex, pmd_addr_end, pte_dirty, pte_none, pte_pfn, pte_present, swp_offset, swp_type } from './pgtable.js';
import { free_swap_and_cache, free_swap_cache } from './swap.js';
import { STEP_ATOMIC, type KPath } from './steps.js';
import { flush_tlb_mm_range, TLB_FLUSH_ALL } from './tlbflush.js';
import { track } from '../track.js';

/**
 * struct mmu_gather, reduced: the span of entries cleared (`start`, `end`; -1 when none),
 * whether page tables were freed, and the pages whose reference goes after the flush.
 * `fullmm`: the whole address space is going (exit_mmap), and no CPU runs it any more.
 */
export class mmu_gather implements PageRefs {
  readonly mm: MmStruct;
  readonly fullmm: boolean;
  start = -1;
  end = -1;
  freed_tables = false;
  readonly refs: number[] = [];

  constructor(mm: MmStruct, fullmm: boolean) {
    this.mm = mm;
    this.fullmm = fullmm;
    return track(this);
  }
}

/** tlb_gather_mmu: a gather for part of `mm`. */
export function tlb_gather_mmu(mm: MmStruct): mmu_gather {
  return new mmu_gather(mm, false);
}

/** tlb_gather_mmu_fullmm: a gather for all of `mm` (exit_mmap). */
export function tlb_gather_mmu_fullmm(mm: MmStruct): mmu_gather {
  return new mmu_gather(mm, true);
}

/** tlb_flush_pte_range / __tlb_adjust_range: the flush must cover [start, end). */
export function tlb_adjust_range(tlb: mmu_gather, start: number, end: number): void {
  if (tlb.start < 0 || start < tlb.start) tlb.start = start;
  if (end > tlb.end) tlb.end = end;
}

/**
 * zap_pte_range's work on entries [from, to) of PTE table `table` (the first at user address
 * `va`), with the lock held; no step of its own. Each entry is taken with
 * ptep_get_and_clear_full. The zero page (a special entry) has no page to put. A shmem page
 * (not anonymous: zap_present_folio_ptes' file branch) is marked dirty when the entry was
 * dirty; for an anonymous page the A and D bits do not matter. The page's map count drops now
 * (folio_remove_rmap_ptes, with print_bad_pte's check), its reference joins the gather.
 * Returns the number of entries cleared.
 */
export function zap_pte_range(k: Kernel, tlb: mmu_gather, table: number, from: number, to: number, va: number): number {
  const mem = k.machine.mem;
  const pages = k.pages;
  const mm = tlb.mm;
  let cleared = 0;
  for (let i = from; i < to; i++) {
    const lo = mem.readLo(table, i);
    const hi = mem.readHi(table, i);
    if (pte_none(lo, hi)) continue;
    const addr = va + (i - from) * 4096;
    if (!pte_present(lo)) {
      // zap_nonpresent_ptes: a swap entry (the model makes no migration or device entries) is
      // cleared and its slot's reference dropped (free_swap_and_cache); nothing to flush.
      if (swp_type(lo, hi) !== 0 || swp_offset(lo, hi) >= k.swap.max) throw new ModelError('zap_nonpresent_ptes', `mm ${mm.ctx_id}: PTE at 0x${addr.toString(16)} is neither empty, present nor a swap entry`);
      mem.write64(table, i, 0, 0);
      cleared++;
      mm.swapents--;
      free_swap_and_cache(k, swp_offset(lo, hi));
      continue;
    }
    mem.write64(table, i, 0, 0);
    cleared++;
    tlb_adjust_range(tlb, addr, addr + 4096);
    // vm_normal_page: a special entry has no page behind it.
    if (lo & _PAGE_SPECIAL) continue;
    const pfn = pte_pfn(lo, hi);
    if (!(pages.flags[pfn] & PG_anon) && pte_dirty(lo, hi)) pages.flags[pfn] |= PG_dirty;
    else if (pte_dirty(lo, hi) && k.options.anon_dirty_drop === 'folio_mark_dirty') anon_folio_keep_dirty(pages, pfn);
    mm.rss--;
    if (--pages.mapcount[pfn] < 0) throw new ModelError('print_bad_pte', `mm ${mm.ctx_id}: BUG: Bad page map at 0x${addr.toString(16)}: frame 0x${pfn.toString(16)} mapcount ${pages.mapcount[pfn]}`);
    tlb.refs.push(pfn);
  }
  if (tlb.refs.length > 0) pages.held.add(tlb);
  return cleared;
}

/**
 * unmap_page_range over [start, end) of one VMA: for each PTE table with entries in the range,
 * takes the lock (a step), clears the table's part of the range (one step), and releases the
 * lock (a step). Clearing a whole table part in one step gives the same outcomes as one step
 * per entry: the lock keeps every other kernel path out, and a hardware A/D update touches one
 * entry, so it commutes with the clearing of every other. Does not flush.
 */
export function* unmap_page_range(k: Kernel, pc: PerCpu, tlb: mmu_gather, start: number, end: number): KPath {
  const mm = tlb.mm;
  // Each table is looked up again after the previous one's steps: a fault may have made one.
  for (let va = mm.pgtables.nextPteTable(start, end); va >= 0; va = mm.pgtables.nextPteTable(pmd_addr_end(va, end), end)) {
    yield* spin_lock_ptl(pc, mm, pc.current!);
    const table = mm.pgtables.pteTable(va, false);
    const to = pmd_addr_end(va, end);
    pc.touch = table * 4096 + pgtableIndex(va, 1) * 8;
    yield STEP_ATOMIC;
    zap_pte_range(k, tlb, table, pgtableIndex(va, 1), pgtableIndex(to - 1, 1) + 1, va);
    yield* spin_unlock_ptl(pc, mm);
    // zap_pmd_range: cond_resched() after each PMD's table.
    yield* cond_resched(k, pc, pc.current!);
  }
  return 0;
}

/** tlb_finish_mmu: flushes what the gather cleared (the whole mm for fullmm) on every CPU that may cache it, then frees the gathered pages. */
export function* tlb_finish_mmu(k: Kernel, pc: PerCpu, tlb: mmu_gather): KPath {
  if (tlb.fullmm) yield* flush_tlb_mm_range(k, pc, tlb.mm, 0, TLB_FLUSH_ALL, 12, true);
  else if (tlb.start >= 0) yield* flush_tlb_mm_range(k, pc, tlb.mm, tlb.start, tlb.end, 12, tlb.freed_tables);
  tlb_free_pages(k, tlb);
  return 0;
}

/**
 * The gather's page references dropped (tlb_batch_pages_flush → free_pages_and_swap_cache: a
 * folio no PTE maps any more first leaves the swap cache, free_swap_cache): call only once no
 * TLB can hold the entries.
 */
export function tlb_free_pages(k: Kernel, tlb: mmu_gather): void {
  for (const pfn of tlb.refs) {
    if (k.pages.flags[pfn] & PG_swapcache) free_swap_cache(k, pfn);
    k.pages.put_page(pfn);
  }
  tlb.refs.length = 0;
  k.pages.held.delete(tlb);
}

/**
 * exit_mmap's unmapping for an mm that never ran (a failed program load): every VMA's entries
 * cleared and their pages freed at once, with no lock and no flush, since no CPU has loaded it.
 */
export function zap_unused_mm(k: Kernel, mm: MmStruct): void {
  const tlb = tlb_gather_mmu_fullmm(mm);
  for (const vma of mm.vmas.list) {
    mm.pgtables.forEachPteTable(vma.vm_start, vma.vm_end, (table, from, to, va) => {
      zap_pte_range(k, tlb, table, from, to, va);
    });
  }
  tlb_free_pages(k, tlb);
}
