/**
 * madvise (mm/madvise.c), with 6.12's order of argument checks, then per VMA
 * (madvise_walk_vmas → madvise_vma_behavior), for every advice that touches what the model has:
 *
 * - flags on the VMAs, split and merged as madvise_update_vma does, under mmap_lock for
 *   writing: MADV_NORMAL, MADV_SEQUENTIAL, MADV_RANDOM (VM_SEQ_READ, VM_RAND_READ: read-ahead
 *   hints the model has no use for), MADV_DONTFORK and MADV_DOFORK (VM_DONTCOPY: fork leaves
 *   the VMA out), MADV_WIPEONFORK and MADV_KEEPONFORK (VM_WIPEONFORK: the child gets the VMA
 *   empty; private anonymous memory only), MADV_DONTDUMP and MADV_DODUMP (VM_DONTDUMP);
 * - pages, under mmap_lock for reading: MADV_DONTNEED (and MADV_DONTNEED_LOCKED, which also
 *   takes VM_LOCKED VMAs) zaps the range; MADV_FREE, MADV_COLD and MADV_PAGEOUT as below;
 *   MADV_WILLNEED reads swapped-out pages into the swap cache; MADV_POPULATE_READ and
 *   MADV_POPULATE_WRITE fault the range in; MADV_REMOVE punches a hole in a shared mapping's shmem object.
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
 * KSM, transparent huge pages and memory failure are configured in, as in Debian's 6.12
 * (CONFIG_KSM, CONFIG_TRANSPARENT_HUGEPAGE with the madvise default, CONFIG_MEMORY_FAILURE), but
 * the model has no ksmd, no huge pages and no poisoned pages (ksm.ts, khugepaged.ts):
 * MADV_MERGEABLE and MADV_UNMERGEABLE set and clear VM_MERGEABLE (ksm_madvise), MADV_HUGEPAGE
 * and MADV_NOHUGEPAGE VM_HUGEPAGE and VM_NOHUGEPAGE (hugepage_madvise), both as flags on the
 * VMAs; MADV_COLLAPSE scans the range as madvise_collapse does and fails where it would
 * allocate a huge page; MADV_HWPOISON and MADV_SOFT_OFFLINE check the caller and look each page
 * up (madvise_inject_error) but poison nothing.
 *
 * XXX: no mseal (can_modify_vma_madv
 * always allows); no VM_DROPPABLE flag (MADV_KEEPONFORK and MADV_DODUMP accept a MAP_DROPPABLE
 * mapping, which Linux refuses); a private /dev/zero mapping counts as having no file
 * (MADV_WIPEONFORK takes it); MADV_COLD and MADV_PAGEOUT leave
 * shmem pages alone (the model has no shmem swap-out); the LRU lists are flags (PG_lru,
 * PG_active), not lists.
 */
import type { Kernel, PerCpu } from './kernel.js';
import { spin_lock_ptl, spin_unlock_ptl } from './memory.js';
import { tlb_adjust_range, tlb_finish_mmu, tlb_gather_mmu, unmap_page_range, type mmu_gather } from './zap.js';
import { mmap_read_lock, mmap_read_unlock, mmap_write_lock, mmap_write_unlock, vma_modify_flags } from './mmap.js';
import { PG_active, PG_anon, PG_dirty, PG_locked, PG_lru, PG_referenced, PG_swapbacked, PG_swapcache, PG_workingset } from './page.js';
import { __pte, pgtableIndex, pmd_addr_end, pte_dirty, pte_mkclean, pte_mkold, pte_none, pte_pfn, pte_present, swp_offset, _PAGE_SPECIAL } from './pgtable.js';
import { PTE_A } from '../hw/pte.js';
import { STEP_ATOMIC, STEP_READ, STEP_WRITE, type KPath, type KSteps } from './steps.js';
import { folio_free_swap, free_swap_and_cache } from './swap.js';
import type { Task } from './task.js';
import { flush_tlb_mm_range } from './tlbflush.js';
import {
  CAP_SYS_ADMIN, EACCES, EAGAIN, EFAULT, EINVAL, ENOMEM, EPERM, F_SEAL_FUTURE_WRITE, F_SEAL_WRITE, MADV_COLD, MADV_COLLAPSE, MADV_DODUMP, MADV_DOFORK, MADV_DONTDUMP, MADV_DONTFORK, MADV_DONTNEED,
  MADV_DONTNEED_LOCKED, MADV_FREE, MADV_HUGEPAGE, MADV_HWPOISON, MADV_KEEPONFORK, MADV_MERGEABLE, MADV_NOHUGEPAGE, MADV_NORMAL, MADV_PAGEOUT, MADV_POPULATE_READ, MADV_POPULATE_WRITE,
  MADV_RANDOM, MADV_REMOVE, MADV_SEQUENTIAL, MADV_SOFT_OFFLINE, MADV_UNMERGEABLE, MADV_WILLNEED, MADV_WIPEONFORK,
} from './uapi.js';
import { capable } from './capability.js';
import { ksm_madvise } from './ksm.js';
import { hugepage_madvise, madvise_collapse } from './khugepaged.js';
import {
  VM_DONTCOPY, VM_DONTDUMP, VM_IO, VM_LOCKED, VM_MAYWRITE, VM_PFNMAP, VM_RAND_READ, VM_SEQ_READ, VM_SHARED, VM_SPECIAL, VM_WIPEONFORK, type Vma,
} from './vma.js';
import { check_vma_flags, get_user_page, __get_user_page_locked, FOLL_GET, FOLL_TOUCH, FOLL_WRITE, GupHold, gup_put_page } from './gup.js';
import type { MmStruct } from './mm.js';
import { cond_resched } from './sched.js';
import { read_swap_cache_async } from './swap.js';
import { folio_isolate_lru, folio_list, reclaim_pages } from './vmscan.js';

/** madvise_behavior_valid, with CONFIG_KSM, CONFIG_TRANSPARENT_HUGEPAGE and CONFIG_MEMORY_FAILURE. */
function madvise_behavior_valid(behavior: number): boolean {
  switch (behavior) {
    case MADV_DOFORK:
    case MADV_DONTFORK:
    case MADV_NORMAL:
    case MADV_SEQUENTIAL:
    case MADV_RANDOM:
    case MADV_REMOVE:
    case MADV_WILLNEED:
    case MADV_DONTNEED:
    case MADV_DONTNEED_LOCKED:
    case MADV_FREE:
    case MADV_COLD:
    case MADV_PAGEOUT:
    case MADV_POPULATE_READ:
    case MADV_POPULATE_WRITE:
    case MADV_MERGEABLE:
    case MADV_UNMERGEABLE:
    case MADV_HUGEPAGE:
    case MADV_NOHUGEPAGE:
    case MADV_COLLAPSE:
    case MADV_DONTDUMP:
    case MADV_DODUMP:
    case MADV_WIPEONFORK:
    case MADV_KEEPONFORK:
    case MADV_SOFT_OFFLINE:
    case MADV_HWPOISON:
      return true;
    default:
      return false;
  }
}

/** madvise_need_mmap_write: the advice that changes VMAs takes mmap_lock for writing, the rest for reading. */
function madvise_need_mmap_write(behavior: number): boolean {
  switch (behavior) {
    case MADV_REMOVE:
    case MADV_WILLNEED:
    case MADV_DONTNEED:
    case MADV_DONTNEED_LOCKED:
    case MADV_COLD:
    case MADV_PAGEOUT:
    case MADV_FREE:
    case MADV_POPULATE_READ:
    case MADV_POPULATE_WRITE:
    case MADV_COLLAPSE:
      return false;
    default:
      return true;
  }
}

/**
 * madvise(start, len_in, behavior) (do_madvise), in Linux's order: advice the model lacks, a
 * misaligned start, a length that overflows when page-aligned, or an end that wraps (-EINVAL);
 * 0 for an empty range; MADV_HWPOISON and MADV_SOFT_OFFLINE go to madvise_inject_error over
 * [start, start + len_in) without mmap_lock. Then under mmap_lock (for writing for the advice that changes VMAs):
 * MADV_POPULATE_READ and MADV_POPULATE_WRITE fault the range in (madvise_populate); any other
 * advice visits each VMA of the range (madvise_walk_vmas), a hole giving -ENOMEM once the rest
 * is done, the first VMA's error ending it.
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
  if (behavior === MADV_HWPOISON || behavior === MADV_SOFT_OFFLINE) return madvise_inject_error(k, pc, t, start, start + lenIn);
  const mm = t.mm!;
  const write = madvise_need_mmap_write(behavior);
  return (function* (): KPath {
    if (write) yield* mmap_write_lock(k, pc, mm, t);
    else yield* mmap_read_lock(k, pc, mm);
    // Past the top of user space there is no VMA: a hole.
    const s = start >= BigInt(mm.task_size) ? mm.task_size : Number(start);
    const e = end > BigInt(mm.task_size) ? mm.task_size + 4096 : Number(end);
    let error: number;
    if (behavior === MADV_POPULATE_READ || behavior === MADV_POPULATE_WRITE) error = yield* madvise_populate(k, pc, t, mm, s, e, behavior);
    else error = yield* madvise_walk_vmas(k, pc, t, mm, s, e, behavior);
    if (write) yield* mmap_write_unlock(pc, mm);
    else yield* mmap_read_unlock(pc, mm);
    return error;
  })();
}

/**
 * madvise_inject_error for MADV_HWPOISON and MADV_SOFT_OFFLINE over [start, end), `end` being
 * start + len_in, not page-aligned: without CAP_SYS_ADMIN -EPERM; then each page in turn is
 * looked up as get_user_pages_fast(start, 1, 0) does (reading, faulting it in; an address no
 * VMA holds, past TASK_SIZE_MAX or that cannot be faulted in is its error, -EFAULT or -ENOMEM)
 * and its reference handed to memory_failure or soft_offline_page, here put at once. Returns 0.
 *
 * XXX: neither memory_failure nor soft_offline_page is modelled, so the pages stay as they were.
 * For MADV_HWPOISON that is the answer of a page hwpoison_filter lets alone (-EOPNOTSUPP, made 0);
 * on Linux the page is unmapped from every process, its entries become hwpoison entries (a later
 * access is SIGBUS with BUS_MCEERR_AR) and a dirty page kills the caller at once with SIGBUS
 * BUS_MCEERR_AR. For MADV_SOFT_OFFLINE Linux moves the contents to another frame (pagemap shows
 * a new frame number) and takes the old one out of use; the program sees the same bytes.
 */
function madvise_inject_error(k: Kernel, pc: PerCpu, t: Task, start: bigint, end: bigint): number | KPath {
  if (!capable(t, CAP_SYS_ADMIN)) return -EPERM;
  const mm = t.mm!;
  return (function* (): KPath {
    for (; start < end; start += 4096n) {
      // gup_fast_fallback: a page past TASK_SIZE_MAX is -EFAULT.
      if (start + 4096n > BigInt(mm.task_size)) return -EFAULT;
      const hold = new GupHold();
      const pa = yield* get_user_page(k, pc, t, mm, Number(start), FOLL_GET | FOLL_TOUCH, hold);
      if (pa < 0) return pa;
      gup_put_page(k, Math.floor(pa / 4096), hold);
    }
    return 0;
  })();
}

/**
 * madvise_walk_vmas: madvise_vma_behavior on each VMA's part of [start, end), in order; a VMA's
 * error ends the walk; a hole (or nothing at all) makes the result -ENOMEM once the VMAs after
 * it are done. The next VMA is looked up after the previous one's visit, which may have split or
 * merged it.
 */
function* madvise_walk_vmas(k: Kernel, pc: PerCpu, t: Task, mm: MmStruct, start: number, end: number, behavior: number): KSteps<number> {
  let vma = mm.vmas.find_vma(start);
  let unmapped_error = 0;
  for (;;) {
    if (!vma) return -ENOMEM;
    if (start < vma.vm_start) {
      unmapped_error = -ENOMEM;
      start = vma.vm_start;
      if (start >= end) break;
    }
    const tmp = Math.min(vma.vm_end, end);
    const r = yield* madvise_vma_behavior(k, pc, t, mm, vma, start, tmp, behavior);
    if (typeof r === 'number') return r;
    // *prev: the VMA now covering the visited part (null when mmap_lock was dropped).
    start = r ? Math.max(tmp, r.vm_end) : tmp;
    if (start >= end) break;
    vma = mm.vmas.find_vma(r ? r.vm_end : start);
  }
  return unmapped_error;
}

/**
 * madvise_vma_behavior for [start, end) of `vma`: the advice that acts on pages runs here
 * (MADV_REMOVE, MADV_WILLNEED, MADV_COLD, MADV_PAGEOUT, MADV_FREE, MADV_DONTNEED,
 * MADV_DONTNEED_LOCKED, MADV_COLLAPSE); the rest computes the VMA's new flags, refusing
 * MADV_DOFORK on VM_IO, MADV_WIPEONFORK on a file or shared mapping and MADV_DODUMP on a
 * VM_SPECIAL one (-EINVAL), MADV_MERGEABLE and MADV_UNMERGEABLE through ksm_madvise,
 * MADV_HUGEPAGE and MADV_NOHUGEPAGE through hugepage_madvise, and applies them
 * (madvise_update_vma), its -ENOMEM made -EAGAIN. Returns an error, the VMA now covering
 * `start` (`*prev`), or null when mmap_lock was dropped meanwhile.
 */
function* madvise_vma_behavior(k: Kernel, pc: PerCpu, t: Task, mm: MmStruct, vma: Vma, start: number, end: number, behavior: number): KSteps<number | Vma | null> {
  let new_flags = vma.vm_flags;
  let r = 0;
  switch (behavior) {
    case MADV_REMOVE:
      r = yield* madvise_remove(k, pc, mm, vma, start, end);
      // *prev = NULL: mmap_lock was dropped; the walk looks the next VMA up again.
      return r || null;
    case MADV_WILLNEED:
      yield* madvise_willneed(k, pc, t, mm, vma, start, end);
      return vma;
    case MADV_COLD:
    case MADV_PAGEOUT: {
      // madvise_cold / madvise_pageout: can_madv_lru_vma.
      if (vma.vm_flags & (VM_LOCKED | VM_PFNMAP)) return -EINVAL;
      const tlb = tlb_gather_mmu(mm);
      for (let va = start; va < end; va = pmd_addr_end(va, end)) {
        yield* madvise_cold_or_pageout_pte_range(k, pc, t, tlb, vma, va, pmd_addr_end(va, end), behavior === MADV_PAGEOUT);
      }
      yield* tlb_finish_mmu(k, pc, tlb);
      return vma;
    }
    case MADV_FREE:
    case MADV_DONTNEED:
    case MADV_DONTNEED_LOCKED: {
      // madvise_dontneed_free: madvise_dontneed_free_valid_vma.
      if (vma.vm_flags & (VM_PFNMAP | (behavior === MADV_DONTNEED_LOCKED ? 0 : VM_LOCKED))) return -EINVAL;
      if (behavior === MADV_FREE) {
        // madvise_free_single_vma: anonymous memory only.
        if (vma.shmem) return -EINVAL;
        yield* madvise_free_pte_range(k, pc, t, start, end);
        return vma;
      }
      // madvise_dontneed_single_vma: zap_page_range_single.
      const tlb = tlb_gather_mmu(mm);
      yield* unmap_page_range(k, pc, tlb, start, end);
      yield* tlb_finish_mmu(k, pc, tlb);
      return vma;
    }
    case MADV_NORMAL:
      new_flags &= ~(VM_RAND_READ | VM_SEQ_READ);
      break;
    case MADV_SEQUENTIAL:
      new_flags = (new_flags & ~VM_RAND_READ) | VM_SEQ_READ;
      break;
    case MADV_RANDOM:
      new_flags = (new_flags & ~VM_SEQ_READ) | VM_RAND_READ;
      break;
    case MADV_DONTFORK:
      new_flags |= VM_DONTCOPY;
      break;
    case MADV_DOFORK:
      if (vma.vm_flags & VM_IO) return -EINVAL;
      new_flags &= ~VM_DONTCOPY;
      break;
    case MADV_WIPEONFORK:
      // vma->vm_file: a file or shared anonymous (shmem) mapping has an object.
      if (vma.shmem || vma.vm_flags & VM_SHARED) return -EINVAL;
      new_flags |= VM_WIPEONFORK;
      break;
    case MADV_KEEPONFORK:
      new_flags &= ~VM_WIPEONFORK;
      break;
    case MADV_DONTDUMP:
      new_flags |= VM_DONTDUMP;
      break;
    case MADV_DODUMP:
      if (new_flags & VM_SPECIAL) return -EINVAL;
      new_flags &= ~VM_DONTDUMP;
      break;
    case MADV_MERGEABLE:
    case MADV_UNMERGEABLE:
      // ksm_madvise never fails in the model (no __ksm_enter allocation, nothing to unmerge).
      new_flags = ksm_madvise(vma, behavior, new_flags);
      break;
    case MADV_HUGEPAGE:
    case MADV_NOHUGEPAGE:
      new_flags = hugepage_madvise(behavior, new_flags);
      break;
    case MADV_COLLAPSE:
      return yield* madvise_collapse(k, pc, t, mm, vma, start, end);
  }
  const u = madvise_update_vma(mm, vma, start, end, new_flags);
  return u === -ENOMEM ? -EAGAIN : u;
}

/**
 * madvise_update_vma: gives [start, end) of `vma` the flags `new_flags`, splitting at the edges
 * (-ENOMEM at sysctl_max_map_count) and merging with the neighbours (vma_modify_flags_name).
 * Returns an error or the VMA now covering `start`. Changes no page table.
 */
function madvise_update_vma(mm: MmStruct, vma: Vma, start: number, end: number, new_flags: number): number | Vma {
  if (new_flags === vma.vm_flags) return vma;
  return vma_modify_flags(mm, vma, start, end, new_flags);
}

/**
 * madvise_remove, in its order: a VM_LOCKED VMA or one without a file (-EINVAL), a mapping that
 * is not shared and writable (-EACCES). Then, mmap_lock dropped, vfs_fallocate's
 * FALLOC_FL_PUNCH_HOLE on the shmem object (shmem_fallocate): a memfd sealed against writing
 * refuses (-EPERM); otherwise the range's pages are unmapped from every shared mapping of the
 * object (unmap_mapping_range without even_cows) and dropped from it (shmem_truncate_range), so
 * the next access finds a zeroed page; mmap_lock is taken again. XXX: a private mapping of the
 * file keeps mapping a dropped page it had faulted in read-only (Linux zaps the page-cache pages
 * there too, keeping only the copies).
 */
function* madvise_remove(k: Kernel, pc: PerCpu, mm: MmStruct, vma: Vma, start: number, end: number): KSteps<number> {
  if (vma.vm_flags & VM_LOCKED) return -EINVAL;
  const mapping = vma.shmem;
  if (!mapping) return -EINVAL;
  if ((vma.vm_flags & (VM_SHARED | VM_MAYWRITE)) !== (VM_SHARED | VM_MAYWRITE)) return -EACCES;
  const first = vma.vm_pgoff + (start - vma.vm_start) / 4096;
  const last = first + (end - start) / 4096;
  yield* mmap_read_unlock(pc, mm);
  let error = 0;
  if (mapping.file && mapping.file.seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) error = -EPERM;
  else {
    // unmap_mapping_range(mapping, first, last - first, 0): each shared mapping of the pages, in every mm.
    for (const m of [...k.mms]) {
      if (m.dead) continue;
      for (const v of [...m.vmas.list]) {
        if (v.shmem !== mapping || !(v.vm_flags & VM_SHARED)) continue;
        const from = Math.max(v.vm_start, v.vm_start + (first - v.vm_pgoff) * 4096);
        const to = Math.min(v.vm_end, v.vm_start + (last - v.vm_pgoff) * 4096);
        if (from >= to) continue;
        const tlb = tlb_gather_mmu(m);
        yield* unmap_page_range(k, pc, tlb, from, to);
        yield* tlb_finish_mmu(k, pc, tlb);
      }
    }
    // shmem_truncate_range: the object lets go of the pages.
    for (const [index, pfn] of [...mapping.pages]) {
      if (index < first || index >= last) continue;
      mapping.pages.delete(index);
      k.pages.put_page(pfn);
    }
  }
  yield* mmap_read_lock(k, pc, mm);
  return error;
}

/**
 * madvise_willneed for anonymous memory (swapin_walk_pmd_entry): each swap entry of the range,
 * read under the page-table lock, has its page read into the swap cache with the lock dropped
 * (read_swap_cache_async, a step; the reference it gives is put at once). The PTEs stay swap
 * entries: the next access maps the cached page. XXX: shmem (shmem_swapin_range) has no swap
 * in the model, so a shmem mapping is left alone.
 */
function* madvise_willneed(k: Kernel, pc: PerCpu, t: Task, mm: MmStruct, vma: Vma, start: number, end: number): KSteps<void> {
  if (vma.shmem) return;
  const mem = k.machine.mem;
  for (let va = start; va < end; va = pmd_addr_end(va, end)) {
    const to = pmd_addr_end(va, end);
    if (mm.pgtables.pteTable(va, false) < 0) continue;
    let locked = false;
    for (let addr = va; addr < to; addr += 4096) {
      if (!locked) {
        yield* spin_lock_ptl(pc, mm, t);
        locked = true;
      }
      const table = mm.pgtables.pteTable(addr, false);
      const i = pgtableIndex(addr, 1);
      if (table < 0) break;
      pc.touch = table * 4096 + i * 8;
      yield STEP_READ;
      const lo = mem.readLo(table, i);
      const hi = mem.readHi(table, i);
      if (pte_none(lo, hi) || pte_present(lo)) continue;
      const offset = swp_offset(lo, hi);
      yield* spin_unlock_ptl(pc, mm);
      locked = false;
      pc.touch = -1;
      yield STEP_ATOMIC;
      const folio = read_swap_cache_async(k, offset);
      if (folio >= 0) k.pages.put_page(folio);
    }
    if (locked) yield* spin_unlock_ptl(pc, mm);
    yield* cond_resched(k, pc, t);
  }
}

/**
 * madvise_populate (faultin_page_range with FOLL_MADV_POPULATE, __get_user_pages): each page of
 * [start, end), the VMA looked up for it: no VMA is -ENOMEM, a VMA check_vma_flags refuses
 * (a write to a read-only mapping, any access to PROT_NONE or a key the thread's PKRU denies)
 * -EINVAL; then faulted in, reading or writing (breaking COW): a SIGBUS or SIGSEGV fault is
 * -EFAULT, running out of memory -ENOMEM. XXX: no hardware poison, so never -EHWPOISON.
 */
function* madvise_populate(k: Kernel, pc: PerCpu, t: Task, mm: MmStruct, start: number, end: number, behavior: number): KSteps<number> {
  const gup_flags = FOLL_TOUCH | (behavior === MADV_POPULATE_WRITE ? FOLL_WRITE : 0);
  for (let addr = start; addr < end; addr += 4096) {
    const vma = mm.vmas.vma_lookup(addr);
    if (!vma) return -ENOMEM;
    if (check_vma_flags(k, pc, vma, gup_flags)) return -EINVAL;
    const r = yield* __get_user_page_locked(k, pc, t, mm, addr, gup_flags);
    if (r === -ENOMEM) return -ENOMEM;
    if (r < 0) return -EFAULT;
  }
  return 0;
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
