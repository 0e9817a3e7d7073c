/**
 * Unmapping a folio from every page table that maps it, for reclaim (mm/rmap.c try_to_unmap →
 * rmap_walk_anon → try_to_unmap_one). Each mapping's PTE is taken under that mm's page-table
 * lock and cleared and flushed (ptep_clear_flush), unless its VMA is VM_LOCKED: then the folio
 * is mlocked (mlock_vma_folio) and the walk gives up; its dirty bit goes to the folio. A lazyfree
 * folio (MADV_FREE: not swap-backed) is then discarded if it is clean and nothing but the
 * mappings and the caller's isolation holds it, or else the PTE is put back and the folio made
 * swap-backed again; a swap-backed one (in the swap cache after add_to_swap) gets a swap PTE
 * for its slot in each mapping (swap_duplicate).
 *
 * XXX: the anon_vma tree is not modelled. The walk visits, in every live mm, the VMAs with an
 * anon_vma that may hold the folio's index (anon_addresses: an mremap-moved VMA keeps its
 * vm_pgoff) and acts where the PTE maps the folio (page_vma_mapped_walk's check), the same
 * mappings rmap_walk_anon finds.
 * XXX: TTU_BATCH_FLUSH is not modelled: each PTE is flushed at once (ptep_clear_flush) rather
 * than batched until try_to_unmap_flush; more flushes, never a later one.
 */
import { ModelError } from '../errors.js';
import type { Kernel, PerCpu } from './kernel.js';
import { spin_lock_ptl, spin_unlock_ptl } from './memory.js';
import type { MmStruct } from './mm.js';
import { PG_anon, PG_anon_exclusive, PG_dirty, PG_mlocked, PG_swapbacked, PG_swapcache } from './page.js';
import { __pte, pte_dirty, pte_pfn, pte_present, pte_soft_dirty, pte_swp_mkexclusive, pte_swp_mksoft_dirty, pte_swp_mkuffd_wp, pte_uffd_wp, swp_entry_to_pte } from './pgtable.js';
import { STEP_ATOMIC, STEP_READ, STEP_WRITE, type KSteps } from './steps.js';
import { swap_duplicate } from './swap.js';
import type { Task } from './task.js';
import { VM_LOCKED, type Vma } from './vma.js';
import { flush_tlb_mm_range } from './tlbflush.js';

/**
 * try_to_unmap: runs try_to_unmap_one on each mapping of the locked, isolated folio `pfn`
 * until one fails. The caller tests folio_mapped afterwards.
 */
export function* try_to_unmap(k: Kernel, pc: PerCpu, t: Task, pfn: number): KSteps<void> {
  const index = k.pages.index[pfn];
  // rmap_walk_anon: the mms are visited in the order they were made (Kernel.mms).
  for (const mm of [...k.mms]) {
    if (mm.dead || k.pages.mapcount[pfn] === 0) continue;
    for (const [vma, va] of anon_addresses(mm, index)) {
      if (!(yield* try_to_unmap_one(k, pc, t, mm, vma, pfn, va))) return;
    }
  }
}

/**
 * Where an anonymous folio of `index` may be mapped in `mm`: in each VMA with an anon_vma, its
 * linear address (vma_address: vm_start plus index - vm_pgoff, which mremap keeps when it moves
 * a VMA) and the address index * 4096 (the fault path records the address it faulted at as the
 * index). try_to_unmap_one acts only where the PTE maps the folio, so a candidate too many costs
 * a look and nothing else.
 */
function anon_addresses(mm: MmStruct, index: number): [Vma, number][] {
  const out: [Vma, number][] = [];
  for (const v of mm.vmas.list) {
    if (!v.anon_vma) continue;
    const lin = v.vm_start + (index - v.vm_pgoff) * 4096;
    if (lin >= v.vm_start && lin < v.vm_end) out.push([v, lin]);
    const raw = index * 4096;
    if (raw !== lin && raw >= v.vm_start && raw < v.vm_end) out.push([v, raw]);
  }
  return out;
}

/**
 * try_to_unmap_one for the mapping of folio `pfn` at `va` in `mm`: under the lock, the PTE is
 * read (page_vma_mapped_walk: nothing to do unless it maps the folio), cleared and flushed
 * (ptep_clear_flush), and its D (or SavedDirty) moves to the folio (folio_mark_dirty). Then the
 * anonymous branch: a lazyfree folio is discarded (refcount = 1 + mapcount and clean) or its
 * PTE restored and the folio made swap-backed (false: the walk stops); a swap-backed one gets a
 * swap PTE (exclusive if the page was) and a swap reference (swap_duplicate). Returns false
 * when the walk must stop.
 */
function* try_to_unmap_one(k: Kernel, pc: PerCpu, t: Task, mm: MmStruct, vma: Vma, pfn: number, va: number): KSteps<boolean> {
  const mem = k.machine.mem;
  const pages = k.pages;
  yield* spin_lock_ptl(pc, mm, t);
  const table = mm.pgtables.pteTable(va, false);
  const i = Math.floor(va / 4096) % 512;
  if (table < 0) {
    yield* spin_unlock_ptl(pc, mm);
    return true;
  }
  const pa = table * 4096 + i * 8;
  pc.touch = pa;
  yield STEP_READ;
  const lo = mem.readLo(table, i);
  const hi = mem.readHi(table, i);
  if (!pte_present(lo) || pte_pfn(lo, hi) !== pfn) {
    yield* spin_unlock_ptl(pc, mm);
    return true;
  }
  if (vma.vm_flags & VM_LOCKED) {
    // The folio is mapped by a VM_LOCKED VMA: mlock_vma_folio, and the walk gives up.
    pages.flags[pfn] |= PG_mlocked;
    yield* spin_unlock_ptl(pc, mm);
    return false;
  }
  const anon_exclusive = (pages.flags[pfn] & PG_anon_exclusive) !== 0;
  // ptep_clear_flush: the entry taken with a locked exchange, then flushed on every CPU of the mm.
  pc.touch = pa;
  yield STEP_ATOMIC;
  const pteval = __pte(mem.readLo(table, i), mem.readHi(table, i));
  mem.write64(table, i, 0, 0);
  yield* flush_tlb_mm_range(k, pc, mm, va, va + 4096, 12, false);
  // Set the dirty flag on the folio now the pte is gone.
  if (pte_dirty(pteval.lo, pteval.hi)) pages.flags[pfn] |= PG_dirty;
  if (!(pages.flags[pfn] & PG_anon)) throw new ModelError('try_to_unmap_one', `frame 0x${pfn.toString(16)} is not anonymous`);
  const swapbacked = (pages.flags[pfn] & PG_swapbacked) !== 0;
  if (swapbacked !== ((pages.flags[pfn] & PG_swapcache) !== 0)) {
    throw new ModelError('try_to_unmap_one', `WARN_ON_ONCE(folio_test_swapbacked(folio) != folio_test_swapcache(folio)), frame 0x${pfn.toString(16)}`);
  }
  if (!swapbacked) {
    // MADV_FREE page check: the only references are the isolation's and the mappings'.
    if (pages.refcount[pfn] === 1 + pages.mapcount[pfn] && !(pages.flags[pfn] & PG_dirty)) {
      // discard: the PTE stays clear; folio_remove_rmap_pte, folio_put of the mapping's reference.
      mm.rss--;
      pages.mapcount[pfn]--;
      pages.put_page(pfn);
      yield* spin_unlock_ptl(pc, mm);
      return true;
    }
    // The folio was redirtied or is referenced: the PTE goes back, the folio is swap-backed again.
    pc.touch = pa;
    yield STEP_WRITE;
    mem.write64(table, i, pteval.lo, pteval.hi);
    pages.flags[pfn] |= PG_swapbacked;
    yield* spin_unlock_ptl(pc, mm);
    return false;
  }
  // The swap PTE: swap_duplicate, folio_try_share_anon_rmap_pte, MM_ANONPAGES to MM_SWAPENTS,
  // folio_remove_rmap_pte and folio_put, all in the step that writes it.
  const offset = pages.swap[pfn];
  const swp = swp_entry_to_pte(__pte(), 0, offset);
  if (anon_exclusive) pte_swp_mkexclusive(swp);
  if (pte_soft_dirty(pteval.lo)) pte_swp_mksoft_dirty(swp);
  // try_to_unmap_one: a uffd-wp mark moves to the swap entry.
  if (pte_uffd_wp(pteval.lo)) pte_swp_mkuffd_wp(swp);
  pc.touch = pa;
  yield STEP_WRITE;
  swap_duplicate(k.swap, offset);
  mem.write64(table, i, swp.lo, swp.hi);
  pages.flags[pfn] &= ~PG_anon_exclusive;
  mm.rss--;
  mm.swapents++;
  pages.mapcount[pfn]--;
  pages.put_page(pfn);
  yield* spin_unlock_ptl(pc, mm);
  return true;
}
