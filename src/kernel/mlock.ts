/**
 * Locking memory (mm/mlock.c mlock, mlock2, munlock, mlockall, munlockall; mm/gup.c
 * __mm_populate, populate_vma_page_range): VM_LOCKED and VM_LOCKONFAULT set and cleared on
 * VMAs (split and merged as mlock_fixup does through vma_modify_flags), mm->locked_vm counted
 * against RLIMIT_MEMLOCK unless the caller has CAP_IPC_LOCK, mm->def_flags for MCL_FUTURE, and
 * the range populated after mmap_lock is dropped (get_user_pages faulting each page in).
 *
 * A locked folio is PG_mlocked (mlock_folio, munlock_folio): reclaim leaves it alone
 * (folio_evictable), and a folio reclaim isolated before it was locked is found in its VM_LOCKED
 * VMA by the rmap walk, which mlocks it and gives up (rmap.ts try_to_unmap_one).
 *
 * XXX: no mlock_count: munlock makes a folio evictable even if another VM_LOCKED VMA maps it
 * (the rmap walk mlocks it again, as Linux relies on for the counts it loses). A folio faulted
 * into a VM_LOCKED VMA is not mlocked at once (mlock_new_folio) but only when the rmap walk
 * meets it: never reclaimed either way. Unmapping a page of a VM_LOCKED VMA (munmap,
 * MADV_DONTNEED_LOCKED, exit) does not munlock it (__folio_remove_rmap → munlock_vma_folio), so
 * a folio still mapped elsewhere (a fork child's copy-on-write sharer) stays unevictable. The
 * per-CPU mlock folio batches are not modelled (each change is made at once).
 */
import { capable } from './capability.js';
import { __get_user_page_locked, FOLL_FORCE, FOLL_TOUCH, FOLL_WRITE } from './gup.js';
import type { Kernel, PerCpu } from './kernel.js';
import { spin_lock_ptl, spin_unlock_ptl } from './memory.js';
import type { MmStruct } from './mm.js';
import { mmap_read_lock, mmap_read_unlock, mmap_write_lock, mmap_write_unlock, vma_modify_flags } from './mmap.js';
import { PG_mlocked } from './page.js';
import { pgtableIndex, pmd_addr_end, pte_pfn, pte_present, _PAGE_SPECIAL } from './pgtable.js';
import { rlimit_num, rlimit_pages } from './resource.js';
import { cond_resched } from './sched.js';
import { STEP_READ, type KPath, type KSteps } from './steps.js';
import type { Task } from './task.js';
import { CAP_IPC_LOCK, EAGAIN, EFAULT, EINVAL, ENOMEM, EPERM, MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT, MLOCK_ONFAULT, RLIMIT_MEMLOCK } from './uapi.js';
import {
  VM_ACCESS_FLAGS, VM_IO, VM_LOCKED, VM_LOCKED_MASK, VM_LOCKONFAULT, VM_PFNMAP, VM_SHARED, VM_SPECIAL, VM_WRITE, type Vma,
} from './vma.js';

const PAGE_SIZE = 4096;
/** ~PAGE_MASK over 64 bits. */
const PAGE_MASK64 = 0xfffffffffffff000n;
const U64 = 0xffffffffffffffffn;

/** can_do_mlock: a non-zero RLIMIT_MEMLOCK, or CAP_IPC_LOCK. */
export function can_do_mlock(t: Task): boolean {
  if (rlimit_num(t, RLIMIT_MEMLOCK) !== 0) return true;
  return capable(t, CAP_IPC_LOCK);
}

/** vma_supports_mlock (mm/internal.h): not VM_SPECIAL (the model has no hugetlb, DAX, droppable or gate VMAs). */
export function vma_supports_mlock(vma: Vma): boolean {
  return (vma.vm_flags & VM_SPECIAL) === 0;
}

/** mlock_folio / munlock_folio, at once: the folio becomes (un)evictable. */
function mlock_folio(k: Kernel, pfn: number, lock: boolean): void {
  if (lock) k.pages.flags[pfn] |= PG_mlocked;
  else k.pages.flags[pfn] &= ~PG_mlocked;
}

/**
 * mlock_vma_pages_range: gives the VMA `newflags`, then walks [start, end) (walk_page_range with
 * mlock_pte_range): each PTE table under its lock, read in one step, every present entry of a
 * normal folio mlocked or munlocked as the VMA now is; a missing table is skipped.
 */
function* mlock_vma_pages_range(k: Kernel, pc: PerCpu, t: Task, mm: MmStruct, vma: Vma, start: number, end: number, newflags: number): KSteps<void> {
  vma.vm_flags = newflags;
  const lock = (newflags & VM_LOCKED) !== 0;
  const mem = k.machine.mem;
  for (let va = start; va < end; va = pmd_addr_end(va, end)) {
    const to = pmd_addr_end(va, end);
    if (mm.pgtables.pteTable(va, false) < 0) continue;
    yield* spin_lock_ptl(pc, mm, t);
    const table = mm.pgtables.pteTable(va, false);
    pc.touch = table * 4096 + pgtableIndex(va, 1) * 8;
    yield STEP_READ;
    for (let i = pgtableIndex(va, 1), n = (to - va) / PAGE_SIZE; n > 0; i++, n--) {
      const lo = mem.readLo(table, i);
      // vm_normal_folio: none behind a special entry (the zero page).
      if (!pte_present(lo) || lo & _PAGE_SPECIAL) continue;
      mlock_folio(k, pte_pfn(lo, mem.readHi(table, i)), lock);
    }
    yield* spin_unlock_ptl(pc, mm);
    yield* cond_resched(k, pc, t);
  }
}

/**
 * mlock_fixup: gives [start, end) of `vma` the flags `newflags` (nothing for a VMA that already
 * has them or does not support mlock), splitting at the edges (-ENOMEM at sysctl_max_map_count)
 * and merging with the neighbours (vma_modify_flags); locked_vm grows or shrinks by the range
 * unless it was and stays locked; a change of VM_LOCKED also mlocks or munlocks the present
 * pages. Returns an error, or the VMA now covering `start`.
 */
function* mlock_fixup(k: Kernel, pc: PerCpu, t: Task, mm: MmStruct, vma: Vma, start: number, end: number, newflags: number): KSteps<number | Vma> {
  const oldflags = vma.vm_flags;
  if (newflags === oldflags || !vma_supports_mlock(vma)) return vma;
  const modified = vma_modify_flags(mm, vma, start, end, newflags);
  if (typeof modified === 'number') return modified;
  vma = modified;
  let nr_pages = (end - start) / PAGE_SIZE;
  if (!(newflags & VM_LOCKED)) nr_pages = -nr_pages;
  else if (oldflags & VM_LOCKED) nr_pages = 0;
  mm.locked_vm += nr_pages;
  if (!(newflags & VM_LOCKED && oldflags & VM_LOCKED)) yield* mlock_vma_pages_range(k, pc, t, mm, vma, start, end, newflags);
  return vma;
}

/**
 * apply_vma_lock_flags: sets `flags` (VM_LOCKED, VM_LOCKONFAULT or neither) on every VMA in
 * [start, start + len), in order: an end that wraps is -EINVAL, an empty range 0, no VMA holding
 * `start` or a hole -ENOMEM (the VMAs before it keep their change); a failed fixup ends it.
 */
function* apply_vma_lock_flags(k: Kernel, pc: PerCpu, t: Task, start64: bigint, len64: bigint, flags: number): KSteps<number> {
  const mm = t.mm!;
  const end64 = start64 + len64;
  if (end64 > U64) return -EINVAL;
  if (end64 === start64) return 0;
  if (start64 >= BigInt(mm.task_size)) return -ENOMEM;
  const start = Number(start64);
  // A range past the top of user space ends in a hole.
  const end = end64 > BigInt(mm.task_size) ? mm.task_size + PAGE_SIZE : Number(end64);
  let vma = mm.vmas.vma_lookup(start);
  if (!vma) return -ENOMEM;
  let nstart = start;
  let tmp = vma.vm_start;
  while (vma && vma.vm_start < end) {
    if (vma.vm_start !== tmp) return -ENOMEM;
    const newflags = (vma.vm_flags & ~VM_LOCKED_MASK) | flags;
    tmp = Math.min(vma.vm_end, end);
    const r = yield* mlock_fixup(k, pc, t, mm, vma, nstart, tmp, newflags);
    if (typeof r === 'number') return r;
    // vma_iter_end: the end of the VMA now covering the range.
    tmp = r.vm_end;
    nstart = tmp;
    vma = mm.vmas.find_vma(tmp);
  }
  if (tmp < end) return -ENOMEM;
  return 0;
}

/** count_mm_mlocked_page_nr: pages of [start, start + len) already in VM_LOCKED VMAs. */
function count_mm_mlocked_page_nr(mm: MmStruct, start: number, end: number): number {
  let count = 0;
  for (const vma of mm.vmas.list) {
    if (vma.vm_end <= start) continue;
    if (vma.vm_start >= end) break;
    if (vma.vm_flags & VM_LOCKED) {
      if (start > vma.vm_start) count -= start - vma.vm_start;
      if (end < vma.vm_end) {
        count += end - vma.vm_start;
        break;
      }
      count += vma.vm_end - vma.vm_start;
    }
  }
  return count / PAGE_SIZE;
}

/**
 * __get_user_pages without pages: faults in `nr_pages` pages from `start` with `gup_flags`;
 * the number done, or the first page's error.
 */
function* __get_user_pages(k: Kernel, pc: PerCpu, t: Task, mm: MmStruct, start: number, nr_pages: number, gup_flags: number): KSteps<number> {
  for (let i = 0; i < nr_pages; i++) {
    const r = yield* __get_user_page_locked(k, pc, t, mm, start + i * PAGE_SIZE, gup_flags);
    if (r < 0) return i > 0 ? i : r;
  }
  return nr_pages;
}

/**
 * populate_vma_page_range over [start, end) of `vma`, mmap_lock held for reading: nothing for a
 * VM_LOCKONFAULT VMA (all its pages count as done); -EFAULT for an inaccessible (PROT_NONE)
 * one; otherwise get_user_pages with FOLL_TOUCH, and FOLL_WRITE for a private writable VMA
 * (breaking COW now) or else FOLL_FORCE. Returns the pages done or an error.
 */
export function* populate_vma_page_range(k: Kernel, pc: PerCpu, t: Task, vma: Vma, start: number, end: number): KSteps<number> {
  const nr_pages = (end - start) / PAGE_SIZE;
  if (vma.vm_flags & VM_LOCKONFAULT) return nr_pages;
  if (!(vma.vm_flags & VM_ACCESS_FLAGS)) return -EFAULT;
  let gup_flags = FOLL_TOUCH;
  if ((vma.vm_flags & (VM_WRITE | VM_SHARED)) === VM_WRITE) gup_flags |= FOLL_WRITE;
  else gup_flags |= FOLL_FORCE;
  return yield* __get_user_pages(k, pc, t, t.mm!, start, nr_pages, gup_flags);
}

/**
 * __mm_populate(start, len, ignore_errors): under mmap_lock for reading, each VMA meeting the
 * range is populated (populate_vma_page_range), VM_IO and VM_PFNMAP ones skipped. An error
 * ends it unless `ignore_errors` (mm_populate), which goes on with the next VMA. The VMAs are
 * looked up again under the lock, so a range unmapped meanwhile is simply not there.
 */
export function* __mm_populate(k: Kernel, pc: PerCpu, t: Task, start: number, len: number, ignore_errors: boolean): KSteps<number> {
  const mm = t.mm!;
  const end = start + len;
  let vma: Vma | null = null;
  let locked = false;
  let ret = 0;
  let nend = 0;
  for (let nstart = start; nstart < end; nstart = nend) {
    if (!locked) {
      locked = true;
      yield* mmap_read_lock(k, pc, mm);
      vma = mm.vmas.find_vma_intersection(nstart, end);
    } else if (nstart >= vma!.vm_end) vma = mm.vmas.find_vma_intersection(vma!.vm_end, end);
    if (!vma) break;
    nend = Math.min(end, vma.vm_end);
    if (vma.vm_flags & (VM_IO | VM_PFNMAP)) continue;
    if (nstart < vma.vm_start) nstart = vma.vm_start;
    const r = yield* populate_vma_page_range(k, pc, t, vma, nstart, nend);
    if (r < 0) {
      if (ignore_errors) {
        ret = 0;
        continue;
      }
      ret = r;
      break;
    }
    nend = nstart + r * PAGE_SIZE;
    ret = 0;
  }
  if (locked) yield* mmap_read_unlock(pc, mm);
  return ret;
}

/** __mlock_posix_error_return: POSIX's errors for a failed populate (-EFAULT is -ENOMEM, -ENOMEM is -EAGAIN). */
function __mlock_posix_error_return(retval: number): number {
  if (retval === -EFAULT) return -ENOMEM;
  if (retval === -ENOMEM) return -EAGAIN;
  return retval;
}

/**
 * do_mlock(start, len, flags), in Linux's order: can_do_mlock (-EPERM); the range widened to
 * whole pages; under mmap_lock for writing, the pages locked after the call (locked_vm plus the
 * range, less what of it is locked already when over the limit) checked against RLIMIT_MEMLOCK
 * unless CAP_IPC_LOCK (-ENOMEM), then apply_vma_lock_flags; the lock dropped, the range
 * populated (__mm_populate), its errors as POSIX wants them.
 */
function do_mlock(k: Kernel, pc: PerCpu, t: Task, startArg: bigint, lenArg: bigint, flags: number): number | KPath {
  if (!can_do_mlock(t)) return -EPERM;
  // len = PAGE_ALIGN(len + offset_in_page(start)) in unsigned long arithmetic.
  const len64 = BigInt.asUintN(64, lenArg + (startArg & 0xfffn) + 0xfffn) & PAGE_MASK64;
  const start64 = startArg & PAGE_MASK64;
  const lock_limit = rlimit_pages(t, RLIMIT_MEMLOCK);
  const mm = t.mm!;
  return (function* (): KPath {
    yield* mmap_write_lock(k, pc, mm, t);
    let locked = Number(len64 >> 12n) + mm.locked_vm;
    if (locked > lock_limit && !capable(t, CAP_IPC_LOCK)) {
      const s = start64 >= BigInt(mm.task_size) ? mm.task_size : Number(start64);
      const e = start64 + len64 > BigInt(mm.task_size) ? mm.task_size : Number(start64 + len64);
      locked -= count_mm_mlocked_page_nr(mm, s, e);
    }
    let error = -ENOMEM;
    if (locked <= lock_limit || capable(t, CAP_IPC_LOCK)) error = yield* apply_vma_lock_flags(k, pc, t, start64, len64, flags);
    yield* mmap_write_unlock(pc, mm);
    if (error) return error;
    // apply_vma_lock_flags succeeded, so the range lies in user space.
    error = yield* __mm_populate(k, pc, t, Number(start64), Number(len64), false);
    if (error) return __mlock_posix_error_return(error);
    return 0;
  })();
}

/** mlock(start, len): do_mlock with VM_LOCKED. */
export function sys_mlock(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): number | KPath {
  return do_mlock(k, pc, t, a[0], a[1], VM_LOCKED);
}

/** mlock2(start, len, flags): flags other than MLOCK_ONFAULT are -EINVAL; MLOCK_ONFAULT adds VM_LOCKONFAULT. */
export function sys_mlock2(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): number | KPath {
  const flags = Number(a[2] & 0xffffffffn);
  if (flags & ~MLOCK_ONFAULT) return -EINVAL;
  return do_mlock(k, pc, t, a[0], a[1], VM_LOCKED | (flags & MLOCK_ONFAULT ? VM_LOCKONFAULT : 0));
}

/** munlock(start, len): the range widened to whole pages, apply_vma_lock_flags with no flags under mmap_lock. */
export function* sys_munlock(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  const len64 = BigInt.asUintN(64, a[1] + (a[0] & 0xfffn) + 0xfffn) & PAGE_MASK64;
  const start64 = a[0] & PAGE_MASK64;
  const mm = t.mm!;
  yield* mmap_write_lock(k, pc, mm, t);
  const ret = yield* apply_vma_lock_flags(k, pc, t, start64, len64, 0);
  yield* mmap_write_unlock(pc, mm);
  return ret;
}

/**
 * apply_mlockall_flags: def_flags loses its lock bits and, for MCL_FUTURE, gets VM_LOCKED (and
 * VM_LOCKONFAULT with MCL_ONFAULT); with MCL_CURRENT every VMA gets them too (mlock_fixup, its
 * errors ignored), without it every VMA loses them (munlockall: flags 0) unless only
 * MCL_FUTURE was asked, which leaves the VMAs alone.
 */
function* apply_mlockall_flags(k: Kernel, pc: PerCpu, t: Task, flags: number): KSteps<number> {
  const mm = t.mm!;
  mm.def_flags &= ~VM_LOCKED_MASK;
  if (flags & MCL_FUTURE) {
    mm.def_flags |= VM_LOCKED;
    if (flags & MCL_ONFAULT) mm.def_flags |= VM_LOCKONFAULT;
    if (!(flags & MCL_CURRENT)) return 0;
  }
  let to_add = 0;
  if (flags & MCL_CURRENT) {
    to_add |= VM_LOCKED;
    if (flags & MCL_ONFAULT) to_add |= VM_LOCKONFAULT;
  }
  for (let vma = mm.vmas.find_vma(0); vma; ) {
    const newflags = (vma.vm_flags & ~VM_LOCKED_MASK) | to_add;
    const r = yield* mlock_fixup(k, pc, t, mm, vma, vma.vm_start, vma.vm_end, newflags);
    const end = typeof r === 'number' ? vma.vm_end : r.vm_end;
    yield* cond_resched(k, pc, t);
    vma = mm.vmas.find_vma(end);
  }
  return 0;
}

/**
 * mlockall(flags), in Linux's order: no flags, an unknown flag, or MCL_ONFAULT alone (-EINVAL);
 * can_do_mlock (-EPERM); under mmap_lock for writing, MCL_CURRENT needs the whole address space
 * (total_vm) within RLIMIT_MEMLOCK unless CAP_IPC_LOCK (-ENOMEM); then, the lock dropped,
 * MCL_CURRENT populates all of user space, its errors ignored (mm_populate).
 */
export function sys_mlockall(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): number | KPath {
  const flags = Number(BigInt.asIntN(32, a[0]));
  if (!flags || flags & ~(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) || flags === MCL_ONFAULT) return -EINVAL;
  if (!can_do_mlock(t)) return -EPERM;
  const lock_limit = rlimit_pages(t, RLIMIT_MEMLOCK);
  const mm = t.mm!;
  return (function* (): KPath {
    yield* mmap_write_lock(k, pc, mm, t);
    let ret = -ENOMEM;
    if (!(flags & MCL_CURRENT) || mm.total_vm <= lock_limit || capable(t, CAP_IPC_LOCK)) ret = yield* apply_mlockall_flags(k, pc, t, flags);
    yield* mmap_write_unlock(pc, mm);
    if (!ret && flags & MCL_CURRENT) yield* __mm_populate(k, pc, t, 0, mm.task_size, true);
    return ret;
  })();
}

/** munlockall(): apply_mlockall_flags(0) under mmap_lock: every VMA and def_flags lose their lock bits. */
export function* sys_munlockall(k: Kernel, pc: PerCpu, t: Task): KPath {
  const mm = t.mm!;
  yield* mmap_write_lock(k, pc, mm, t);
  const ret = yield* apply_mlockall_flags(k, pc, t, 0);
  yield* mmap_write_unlock(pc, mm);
  return ret;
}
