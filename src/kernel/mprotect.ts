/**
 * The PTE level of mprotect (mm/mprotect.c change_pmd_range → change_pte_range): every present
 * entry of a range rewritten with the VMA's new protection, one PTE table at a time.
 */
import type { Kernel, PerCpu } from './kernel.js';
import { spin_lock_ptl, spin_unlock_ptl } from './memory.js';
import { PG_anon_exclusive } from './page.js';
import {
  __pte, _PAGE_SPECIAL, pmd_addr_end, pte_clear_uffd_wp, pte_mkuffd_wp, pte_mkwrite, pte_modify, pte_needs_flush, pte_none, pte_pfn, pte_present, pte_protnone, pte_swp_clear_uffd_wp,
  pte_swp_mkuffd_wp, pte_uffd_wp, pte_write, vm_get_page_prot,
} from './pgtable.js';
import { cond_resched } from './sched.js';
import { STEP_ATOMIC, STEP_WRITE, type KSteps } from './steps.js';
import type { Task } from './task.js';
import { VM_SHARED, VM_UFFD_WP, VM_WRITE, type Vma } from './vma.js';

/** change_protection's cp_flags (include/linux/mm.h): upgrade to writable where safe; set or clear the uffd-wp bit. */
export const MM_CP_TRY_CHANGE_WRITABLE = 1 << 0;
export const MM_CP_UFFD_WP = 1 << 2;
export const MM_CP_UFFD_WP_RESOLVE = 1 << 3;

/**
 * change_pmd_range over [start, end) of `vma` in `mm`, whose flags are already the new ones: for each
 * PTE table (an empty PMD skipped), change_pte_range under the page-table lock, then
 * cond_resched(). It rewrites each present PTE with pte_modify, with MM_CP_UFFD_WP setting the
 * uffd-wp bit (and write-protecting) and MM_CP_UFFD_WP_RESOLVE clearing it, and makes exclusive
 * anonymous pages writable at once when the VMA is private and writable with
 * MM_CP_TRY_CHANGE_WRITABLE (can_change_pte_writable: not a uffd-wp entry of a uffd-wp VMA).
 * A swap entry only gains or loses its uffd-wp mark, with a plain store. Each rewrite is a locked update, retried with the value found when
 * the hardware changed the entry meanwhile. Returns the range of PTEs whose change needs a TLB
 * flush (pte_needs_flush) as [first, last + 4096), or null; the caller flushes.
 */
export function* change_protection(k: Kernel, pc: PerCpu, t: Task, vma: Vma, start: number, end: number, cp_flags = MM_CP_TRY_CHANGE_WRITABLE, mm = t.mm!): KSteps<number[] | null> {
  const mem = k.machine.mem;
  const prot = vm_get_page_prot(__pte(), vma.vm_flags, vma.vm_pkey, k.nx);
  const tryWritable = (cp_flags & MM_CP_TRY_CHANGE_WRITABLE) !== 0 && (vma.vm_flags & (VM_WRITE | VM_SHARED)) === VM_WRITE;
  const uffd_wp = (cp_flags & MM_CP_UFFD_WP) !== 0;
  const uffd_wp_resolve = (cp_flags & MM_CP_UFFD_WP_RESOLVE) !== 0;
  const ptent = __pte();
  let first = -1;
  let last = -1;
  for (let va = start; va < end; ) {
    const next = pmd_addr_end(va, end);
    // change_pmd_range: an empty PMD is skipped; each PTE table under its lock, then cond_resched().
    if (mm.pgtables.pteTable(va, false) >= 0) {
      yield* spin_lock_ptl(pc, mm, t);
      // Looked up again under the lock (pte_offset_map_lock).
      const table = mm.pgtables.pteTable(va, false);
      for (let a = va; table >= 0 && a < next; a += 4096) {
        const i = Math.floor(a / 4096) % 512;
        let lo = mem.readLo(table, i);
        let hi = mem.readHi(table, i);
        if (!pte_present(lo)) {
          // A swap entry keeps or loses its uffd-wp mark (pte_swp_mkuffd_wp / pte_swp_clear_uffd_wp).
          if (pte_none(lo, hi) || !(uffd_wp || uffd_wp_resolve)) continue;
          ptent.lo = lo;
          ptent.hi = hi;
          if (uffd_wp) pte_swp_mkuffd_wp(ptent);
          else pte_swp_clear_uffd_wp(ptent);
          if (ptent.lo === lo) continue;
          pc.touch = table * 4096 + i * 8;
          yield STEP_WRITE;
          mem.write64(table, i, ptent.lo, ptent.hi);
          continue;
        }
        for (;;) {
          ptent.lo = lo;
          ptent.hi = hi;
          pte_modify(ptent, prot);
          if (uffd_wp) pte_mkuffd_wp(ptent);
          else if (uffd_wp_resolve) pte_clear_uffd_wp(ptent);
          // can_change_pte_writable: never a uffd-wp entry of a uffd-wp VMA.
          if (tryWritable && !pte_write(ptent.lo, k.userShstk) && !pte_protnone(ptent.lo) && !(ptent.lo & _PAGE_SPECIAL) && !(vma.vm_flags & VM_UFFD_WP && pte_uffd_wp(ptent.lo))) {
            if (k.pages.flags[pte_pfn(ptent.lo, ptent.hi)] & PG_anon_exclusive) pte_mkwrite(ptent, vma.shadowStack);
          }
          if (ptent.lo === lo && ptent.hi === hi) break;
          pc.touch = table * 4096 + i * 8;
          yield STEP_ATOMIC;
          if (!mem.cmpxchg64(table, i, lo, hi, ptent.lo, ptent.hi)) {
            lo = mem.readLo(table, i);
            hi = mem.readHi(table, i);
            continue;
          }
          if (pte_needs_flush(lo, hi, ptent.lo, ptent.hi)) {
            if (first < 0) first = a;
            last = a;
          }
          break;
        }
      }
      yield* spin_unlock_ptl(pc, mm);
    }
    yield* cond_resched(k, pc, t);
    va = next;
  }
  return first < 0 ? null : [first, last + 4096];
}
