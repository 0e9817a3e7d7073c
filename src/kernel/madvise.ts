/**
 * madvise (mm/madvise.c) for MADV_DONTNEED, MADV_FREE, MADV_COLD and MADV_PAGEOUT on
 * anonymous memory: the argument checks in Linux's order, then per VMA.
 *
 * MADV_FREE (madvise_free_pte_range) makes each anonymous page clean and old (its PTE cleared,
 * rewritten with D and A off, and flushed) and lazyfree (folio_mark_lazyfree: no longer
 * swap-backed): reclaim may then drop the page unless a write sets D again. That makes D the
 * only record that the program stored into the page, which is why losing a D bit loses data
 * (seed 003). A swap entry in the range is freed instead (the next access gets a zeroed page).
 *
 * MADV_COLD and MADV_PAGEOUT (madvise_cold_or_pageout_pte_range) look at each present PTE
 * whose folio is on the LRU and mapped only here: COLD clears the PTE's accessed bit and
 * deactivates the folio; PAGEOUT isolates it and, once the PTE table's lock is dropped,
 * reclaims it (vmscan.ts reclaim_pages).
 *
 * XXX: other advice values are -EINVAL; MADV_COLD and MADV_PAGEOUT leave shmem pages alone
 * (the model has no shmem swap-out); the LRU lists are flags (PG_lru, PG_active), not lists.
 */
import type { Kernel, PerCpu } from './kernel.js';
import { spin_lock_ptl, spin_unlock_ptl } from './memory.js';
import { tlb_adjust_range, tlb_finish_mmu, tlb_gather_mmu, unmap_page_range, type mmu_gather } from './zap.js';
import { mmap_read_lock, mmap_read_unlock } from './mmap.js';
import { PG_active, PG_anon, PG_dirty, PG_locked, PG_lru, PG_referenced, PG_swapbacked, PG_swapcache, PG_workingset } from './page.js';
import { __pte, pgtableIndex, pmd_addr_end, pte_dirty, pte_mkclean, pte_mkold, pte_none, pte_pfn, pte_present, swp_offset, _PAGE_SPECIAL } from './pgtable.js';
import { PTE_A } from '../hw/pte.js';
import { STEP_ATOMIC, STEP_READ, STEP_WRITE, type KPath, type KSteps } from './steps.js';
import { folio_free_swap, free_swap_and_cache } from './swap.js';
import type { Task } from './task.js';
import { flush_tlb_mm_range } from './tlbflush.js';
import { EINVAL, ENOMEM, MADV_COLD, MADV_DONTNEED, MADV_FREE, MADV_PAGEOUT } from './uapi.js';
import { VM_LOCKED, type Vma } from './vma.js';
import { folio_isolate_lru, folio_list, reclaim_pages } from './vmscan.js';

/** madvise_behavior_valid, for the advice the model has. */
function madvise_behavior_valid(behavior: number): boolean {
  return behavior === MADV_DONTNEED || behavior === MADV_FREE || behavior === MADV_COLD || behavior === MADV_PAGEOUT;
}

/**
 * madvise(start, len_in, behavior): -EINVAL for advice the model lacks, a misaligned start,
 * a length that overflows when page-aligned, or an end below start; 0 for an empty range.
 * Then, under mmap_lock for reading, each VMA in the range (madvise_walk_vmas); a hole gives
 * -ENOMEM after the mapped parts are done. MADV_DONTNEED, MADV_COLD and MADV_PAGEOUT refuse a
 * VM_LOCKED VMA (-EINVAL); MADV_FREE also a shmem one.
 */
export function sys_madvise(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): number | KPath {
  const [start, lenIn] = a;
  const behavior = Number(BigInt.asIntN(32, a[2]));
  if (!madvise_behavior_valid(behavior)) return -EINVAL;
  if (start & 0xfffn) return -EINVAL;
  const len = BigInt.asUintN(64, (lenIn + 0xfffn) & ~0xfffn);
  if (lenIn && !len) return -EINVAL;
  const end = start + len;
  if (end > 0xffffffffffffffffn) return -EINVAL;
  if (end === start) return 0;
  const mm = t.mm!;
  return (function* (): KPath {
    yield* mmap_read_lock(k, pc, mm);
    let err = 0;
    let unmapped = false;
    const s = Number(start);
    const e = end > BigInt(mm.task_size) ? mm.task_size : Number(end);
    let at = s;
    for (const vma of mm.vmas.list.filter((v) => v.vm_end > s && v.vm_start < e)) {
      if (vma.vm_start > at) unmapped = true;
      const from = Math.max(s, vma.vm_start);
      const to = Math.min(e, vma.vm_end);
      at = to;
      if (behavior === MADV_COLD || behavior === MADV_PAGEOUT) {
        // madvise_cold / madvise_pageout: can_madv_lru_vma.
        if (vma.vm_flags & VM_LOCKED) {
          err = -EINVAL;
          break;
        }
        const tlb = tlb_gather_mmu(mm);
        for (let va = from; va < to; va = pmd_addr_end(va, to)) {
          yield* madvise_cold_or_pageout_pte_range(k, pc, t, tlb, vma, va, pmd_addr_end(va, to), behavior === MADV_PAGEOUT);
        }
        yield* tlb_finish_mmu(k, pc, tlb);
        continue;
      }
      if (behavior === MADV_DONTNEED) {
        if (vma.vm_flags & VM_LOCKED) {
          err = -EINVAL;
          break;
        }
        // madvise_dontneed_single_vma: zap_page_range_single.
        const tlb = tlb_gather_mmu(mm);
        yield* unmap_page_range(k, pc, tlb, from, to);
        yield* tlb_finish_mmu(k, pc, tlb);
        continue;
      }
      if (vma.shmem || vma.vm_flags & VM_LOCKED) {
        err = -EINVAL;
        break;
      }
      yield* madvise_free_pte_range(k, pc, t, from, to);
    }
    if (!err && (at < e || unmapped)) err = -ENOMEM;
    yield* mmap_read_unlock(pc, mm);
    return err;
  })();
}

/**
 * madvise_cold_or_pageout_pte_range over [start, end), within one PTE table of `vma`: under the
 * lock, each present entry with a normal folio is read (a step); a folio not on the LRU or
 * mapped more than once is left alone. For MADV_COLD a young entry has A cleared
 * (ptep_test_and_clear_young, a locked step; the gather flushes it) and the folio is
 * deactivated (folio_deactivate); for MADV_PAGEOUT the folio is isolated (folio_isolate_lru).
 * Either way its referenced mark is cleared, and an active folio is marked workingset. After
 * the lock is released, MADV_PAGEOUT reclaims what it isolated (reclaim_pages).
 */
function* madvise_cold_or_pageout_pte_range(k: Kernel, pc: PerCpu, t: Task, tlb: mmu_gather, vma: Vma, start: number, end: number, pageout: boolean): KSteps<void> {
  const mm = t.mm!;
  const mem = k.machine.mem;
  const pages = k.pages;
  const list = new folio_list();
  // XXX: shmem folios are not reclaimed (pageout_anon_only_filter's file side is not modelled).
  if (vma.shmem || mm.pgtables.pteTable(start, false) < 0) return;
  yield* spin_lock_ptl(pc, mm, t);
  const table = mm.pgtables.pteTable(start, false);
  const from = pgtableIndex(start, 1);
  const to = from + (end - start) / 4096;
  for (let i = from; i < to; i++) {
    // Empty and swap entries are skipped without a step: under the lock no kernel path changes
    // them, and the hardware never writes a non-present entry.
    if (!pte_present(mem.readLo(table, i)) || mem.readLo(table, i) & _PAGE_SPECIAL) continue;
    const pa = table * 4096 + i * 8;
    pc.touch = pa;
    yield STEP_READ;
    // ptep_get; vm_normal_folio.
    const lo = mem.readLo(table, i);
    const pfn = pte_pfn(lo, mem.readHi(table, i));
    if (!(pages.flags[pfn] & PG_lru) || pages.mapcount[pfn] !== 1) continue;
    if (!pageout && lo & PTE_A) {
      // clear_young_dirty_ptes(CYDP_CLEAR_YOUNG): ptep_test_and_clear_young; tlb_remove_tlb_entries.
      pc.touch = pa;
      yield STEP_ATOMIC;
      mem.write64(table, i, mem.readLo(table, i) & ~PTE_A, mem.readHi(table, i));
      const va = start + (i - from) * 4096;
      tlb_adjust_range(tlb, va, va + 4096);
    }
    // folio_clear_referenced; an active folio is marked workingset.
    pages.flags[pfn] &= ~PG_referenced;
    if (pages.flags[pfn] & PG_active) pages.flags[pfn] |= PG_workingset;
    if (pageout) folio_isolate_lru(k, list, pfn);
    else folio_deactivate(k, pfn);
  }
  yield* spin_unlock_ptl(pc, mm);
  if (pageout && list.refs.length > 0) yield* reclaim_pages(k, pc, t, list);
}

/** folio_deactivate (lru_deactivate_fn): an active LRU folio moves to the inactive list. */
function folio_deactivate(k: Kernel, pfn: number): void {
  const flags = k.pages.flags[pfn];
  if (flags & PG_lru && flags & PG_active) k.pages.flags[pfn] = flags & ~(PG_active | PG_referenced);
}

/**
 * folio_mark_lazyfree (lru_lazyfree_fn): a swap-backed anonymous folio not in the swap cache
 * goes to the inactive file list as a lazyfree folio: PG_active, PG_referenced and
 * PG_swapbacked cleared.
 */
function folio_mark_lazyfree(k: Kernel, pfn: number): void {
  const flags = k.pages.flags[pfn];
  if (flags & PG_anon && flags & PG_swapbacked && !(flags & PG_swapcache)) k.pages.flags[pfn] = flags & ~(PG_active | PG_referenced | PG_swapbacked);
}

/**
 * madvise_free_pte_range over [start, end) of one VMA, under the lock. A swap entry is freed
 * and cleared (free_swap_and_cache, a locked step). For a present entry of an anonymous folio:
 * if the folio is in the swap cache or PG_dirty, it must be unlocked (folio_trylock) and mapped
 * only here, its swap slot is given up (folio_free_swap, which must succeed) and PG_dirty is
 * cleared (folio_clear_dirty); otherwise the entry is left alone. A young or dirty entry is
 * cleared (ptep_get_and_clear, a locked exchange) and set again old and clean; the folio is
 * marked lazyfree. Then the range is flushed.
 */
function* madvise_free_pte_range(k: Kernel, pc: PerCpu, t: Task, start: number, end: number): KSteps<void> {
  const mm = t.mm!;
  const mem = k.machine.mem;
  const pages = k.pages;
  yield* spin_lock_ptl(pc, mm, t);
  let first = -1;
  let last = -1;
  for (let va = start; va < end; va += 4096) {
    const table = mm.pgtables.pteTable(va, false);
    if (table < 0) continue;
    const i = Math.floor(va / 4096) % 512;
    const lo = mem.readLo(table, i);
    const hi = mem.readHi(table, i);
    if (pte_none(lo, hi)) continue;
    if (!pte_present(lo)) {
      // A swap entry: clear the page table rather than swap in (free_swap_and_cache_nr, clear_not_present_full_ptes).
      pc.touch = table * 4096 + i * 8;
      yield STEP_ATOMIC;
      free_swap_and_cache(k, swp_offset(lo, hi));
      mem.write64(table, i, 0, 0);
      mm.swapents--;
      continue;
    }
    if (lo & _PAGE_SPECIAL) continue;
    const pfn = pte_pfn(lo, hi);
    if (!(pages.flags[pfn] & PG_anon)) continue;
    if (pages.flags[pfn] & (PG_swapcache | PG_dirty)) {
      if (pages.flags[pfn] & PG_locked || pages.mapcount[pfn] !== 1) continue;
      if (pages.flags[pfn] & PG_swapcache && !folio_free_swap(k, pfn)) continue;
      // folio_clear_dirty
      pages.flags[pfn] &= ~PG_dirty;
    }
    if (lo & PTE_A || pte_dirty(lo, hi)) {
      pc.touch = table * 4096 + i * 8;
      yield STEP_ATOMIC;
      // clear_young_dirty_ptes(CYDP_CLEAR_YOUNG | CYDP_CLEAR_DIRTY): ptep_get_and_clear, with
      // whatever the hardware set up to now in the value taken, then set_pte_at old and clean.
      const ptent = __pte(mem.readLo(table, i), mem.readHi(table, i));
      mem.write64(table, i, 0, 0);
      pte_mkold(pte_mkclean(ptent));
      pc.touch = table * 4096 + i * 8;
      yield STEP_WRITE;
      mem.write64(table, i, ptent.lo, ptent.hi);
      if (k.events.on) k.emit({ type: 'pte_mkclean', cpu: pc.id, pa: table * 4096 + i * 8, pfn });
      if (first < 0) first = va;
      last = va;
    }
    folio_mark_lazyfree(k, pfn);
  }
  yield* spin_unlock_ptl(pc, mm);
  if (first >= 0) yield* flush_tlb_mm_range(k, pc, mm, first, last + 4096, 12, false);
}
