/**
 * get_user_pages (mm/gup.c): the kernel's way into another process's memory, or into its own
 * by a path other than the processor's (process_vm_access.ts, /proc/PID/mem, vmsplice,
 * madvise's populate, mlock). GUP walks the target mm's page tables in software
 * (follow_page_pte), faulting pages in with handle_mm_fault; the VMA checks are
 * check_vma_flags', including the protection-key check, which FOLL_REMOTE skips. FOLL_TOUCH
 * with FOLL_WRITE makes the page dirty when its entry is clean, as the write about to go
 * through the kernel's mapping will not set the entry's D bit.
 *
 * XXX: FOLL_TOUCH's mark_page_accessed is left out (the model's reclaim reads the entries'
 * accessed bits, not PG_referenced from GUP).
 */
import type { Kernel, PerCpu } from './kernel.js';
import { FAULT_FLAG_ALLOW_RETRY, FAULT_FLAG_KILLABLE, FAULT_FLAG_TRIED, FAULT_FLAG_UNSHARE, FAULT_FLAG_WRITE, handle_mm_fault, spin_lock_ptl, spin_unlock_ptl, vm_fault, VM_FAULT_OOM, VM_FAULT_RETRY, VM_FAULT_SIGBUS, VM_FAULT_SIGSEGV } from './memory.js';
import { GUP_PIN_COUNTING_BIAS, PG_anon, PG_anon_exclusive, PG_dirty, type PageRefs } from './page.js';
import { track } from '../track.js';
import type { MmStruct } from './mm.js';
import { mmap_read_lock, mmap_read_unlock } from './mmap.js';
import { pte_dirty, pte_pfn, pte_present, pte_soft_dirty, pte_write } from './pgtable.js';
import { arch_vma_access_permitted } from './pkeys.js';
import { STEP_READ, type KPath } from './steps.js';
import type { Task } from './task.js';
import { userfaultfd_pte_wp } from './userfaultfd.js';
import { EBUSY, EFAULT, EINTR, ENOMEM } from './uapi.js';
import { __fatal_signal_pending } from './signal.js';
import { VM_MAYREAD, VM_MAYSHARE, VM_MAYWRITE, VM_READ, VM_SHARED, VM_WRITE, type Vma } from './vma.js';

// gup_flags (include/linux/mm_types.h); FOLL_PIN and FOLL_REMOTE are internal (mm/internal.h, the latter set by the _remote calls).
/** Check the VMA and PTE for writing. */
export const FOLL_WRITE = 1 << 0;
/** Take a reference (get_page) on the page. */
export const FOLL_GET = 1 << 1;
/** Access a VMA the program may not (a read of a PROT_NONE one with VM_MAYREAD, a write of a private read-only one, breaking COW): ptrace and /proc/PID/mem. */
export const FOLL_FORCE = 1 << 3;
/** Only anonymous VMAs. */
export const FOLL_ANON = 1 << 7;
/** The pin will be held indefinitely. */
export const FOLL_LONGTERM = 1 << 8;
/** Mark the page accessed (and the PTE young). */
export const FOLL_TOUCH = 1 << 16;
/** A retry of a page whose fault dropped mmap_lock (the fault gets FAULT_FLAG_TRIED). */
export const FOLL_TRIED = 1 << 17;
/** The access is on behalf of another mm or a debugger: protection keys do not apply. */
export const FOLL_REMOTE = 1 << 18;
/** Take a pin (GUP_PIN_COUNTING_BIAS references) rather than a reference. */
export const FOLL_PIN = 1 << 19;
/** The caller lets a fault drop mmap_lock and wait (FAULT_FLAG_ALLOW_RETRY): a userfault then waits for its handler. */
export const FOLL_UNLOCKABLE = 1 << 21;

/** What __get_user_page_locked returns when the fault dropped mmap_lock (faultin_page's -EBUSY with *locked = 0): retry the page. */
export const GUP_UNLOCKED = -EBUSY;

/**
 * The references and pins one GUP caller holds between its steps: the debug checks count them
 * while any is held (PageAllocator.held), as they count a fault's.
 */
export class GupHold implements PageRefs {
  readonly refs: number[] = [];
  readonly pins: number[] = [];

  constructor() {
    return track(this);
  }
}

/** Records in `hold` a reference (or pin) just taken on `pfn`. */
function gup_hold(k: Kernel, hold: GupHold | undefined, pfn: number, pin: boolean): void {
  if (!hold) return;
  (pin ? hold.pins : hold.refs).push(pfn);
  k.pages.held.add(hold);
}

/** Forgets one reference (or pin) on `pfn` from `hold`, which leaves the held set once empty; the reference itself is not put. */
export function gup_unhold(k: Kernel, hold: GupHold | undefined, pfn: number, pin: boolean): void {
  if (!hold) return;
  const l = pin ? hold.pins : hold.refs;
  const i = l.lastIndexOf(pfn);
  if (i >= 0) l.splice(i, 1);
  if (hold.refs.length === 0 && hold.pins.length === 0) k.pages.held.delete(hold);
}

/** is_cow_mapping: private and may be written. */
function is_cow_mapping(vm_flags: number): boolean {
  return (vm_flags & (VM_SHARED | VM_MAYWRITE)) === VM_MAYWRITE;
}

/**
 * check_vma_flags: whether GUP may touch `vma` with `gup_flags` (-EFAULT if not). A write
 * needs VM_WRITE (and no shadow stack) unless FOLL_FORCE, which works only on a COW mapping;
 * a read needs VM_READ unless FOLL_FORCE and VM_MAYREAD; FOLL_ANON refuses file memory. The
 * protection-key check is skipped for FOLL_REMOTE (arch_vma_access_permitted's `foreign`).
 */
export function check_vma_flags(k: Kernel, pc: PerCpu, vma: Vma, gup_flags: number): number {
  const vm_flags = vma.vm_flags;
  const write = (gup_flags & FOLL_WRITE) !== 0;
  if (gup_flags & FOLL_ANON && !vma_is_anonymous(vma)) return -EFAULT;
  if (write) {
    if (!(vm_flags & VM_WRITE) || vma.shadowStack) {
      if (!(gup_flags & FOLL_FORCE)) return -EFAULT;
      if (!is_cow_mapping(vm_flags)) return -EFAULT;
    }
  } else if (!(vm_flags & VM_READ)) {
    if (!(gup_flags & FOLL_FORCE)) return -EFAULT;
    if (!(vm_flags & VM_MAYREAD)) return -EFAULT;
  }
  if (!arch_vma_access_permitted(k, pc, vma, write, false, (gup_flags & FOLL_REMOTE) !== 0)) return -EFAULT;
  return 0;
}

/** vma_is_anonymous: no file or shmem object behind it. */
function vma_is_anonymous(vma: Vma): boolean {
  return vma.shmem === null;
}

/**
 * can_follow_write_pte: a present entry may be written through if it is writable; with
 * FOLL_FORCE in a private VMA without VM_WRITE, also if it maps an exclusive anonymous page
 * (the COW the forced write fault broke), so the write lands in the process's own copy, unless
 * a write fault is needed for another reason: the soft-dirty bit to set (pte_needs_soft_dirty_wp:
 * a VMA that clear_refs made soft-dirty clean, an entry not soft-dirty) or a uffd-wp entry of a
 * VMA registered for write-protect faults (userfaultfd_pte_wp), whose fault the handler must see.
 */
function can_follow_write_pte(k: Kernel, lo: number, hi: number, vma: Vma, gup_flags: number): boolean {
  if (pte_write(lo, k.userShstk)) return true;
  if (!(gup_flags & FOLL_FORCE)) return false;
  if (vma.vm_flags & (VM_MAYSHARE | VM_SHARED)) return false;
  if (!(vma.vm_flags & VM_MAYWRITE)) return false;
  if (vma.vm_flags & VM_WRITE) return false;
  const pfn = pte_pfn(lo, hi);
  if ((k.pages.flags[pfn] & (PG_anon | PG_anon_exclusive)) !== (PG_anon | PG_anon_exclusive)) return false;
  // pte_needs_soft_dirty_wp: vma_soft_dirty_enabled (VM_SOFTDIRTY clear) and the entry not soft-dirty.
  if (!vma.softdirty && !pte_soft_dirty(lo)) return false;
  return !userfaultfd_pte_wp(vma, lo);
}

/**
 * gup_must_unshare: a read-only pin (FOLL_PIN without FOLL_WRITE) of an anonymous page that
 * is not exclusive must first make it exclusive, or a later COW by the process would leave the
 * pin on a page the process no longer maps. Other pages need nothing (FOLL_LONGTERM on a
 * private file page would, but the model's callers never pass it).
 */
function gup_must_unshare(k: Kernel, gup_flags: number, pfn: number): boolean {
  if ((gup_flags & (FOLL_WRITE | FOLL_PIN)) !== FOLL_PIN) return false;
  const f = k.pages.flags[pfn];
  if (!(f & PG_anon) || pfn === k.zero_pfn) return false;
  return !(f & PG_anon_exclusive);
}

/**
 * One page of `mm` at `addr` for the caller `t`, as get_user_pages_unlocked gives it with
 * `gup_flags` (FOLL_* above) and FOLL_UNLOCKABLE: the physical address of `addr`, or -errno
 * (-EFAULT for no VMA, a VMA check_vma_flags refuses, or a fault that cannot be resolved;
 * -ENOMEM when memory ran out; -EINTR when a fatal signal ends a wait). Takes `mm`'s mmap_lock
 * for reading meanwhile; a fault that dropped it (a userfault that waited for its handler) is
 * retried with FOLL_TRIED after taking it again (__get_user_pages_locked). follow_page_pte reads
 * the entry under the page-table lock and, with FOLL_GET or FOLL_PIN, takes its reference there
 * (try_grab_folio: one, or GUP_PIN_COUNTING_BIAS for a pin, which also sets MMF_HAS_PINNED);
 * the caller then owes put_page or unpin_user_page. Without either, the address is only good
 * while nothing else can free the page.
 */
export function* get_user_page(k: Kernel, pc: PerCpu, t: Task, mm: MmStruct, addr: number, gup_flags: number, hold?: GupHold): KPath {
  let tried = 0;
  for (;;) {
    yield* mmap_read_lock(k, pc, mm);
    const ret = yield* __get_user_page_locked(k, pc, t, mm, addr, gup_flags | FOLL_UNLOCKABLE | tried, hold);
    if (ret !== GUP_UNLOCKED) {
      yield* mmap_read_unlock(pc, mm);
      return ret;
    }
    // gup_signal_pending (no FOLL_INTERRUPTIBLE): only a fatal signal ends the retries.
    if (__fatal_signal_pending(t)) return -EINTR;
    tried = FOLL_TRIED;
  }
}

/**
 * get_user_page with mmap_lock already held for reading. With FOLL_UNLOCKABLE a fault may drop
 * it (VM_FAULT_RETRY): GUP_UNLOCKED then says the caller holds it no more.
 */
export function* __get_user_page_locked(k: Kernel, pc: PerCpu, t: Task, mm: MmStruct, addr: number, gup_flags: number, hold?: GupHold): KPath {
  const vma = mm.vmas.vma_lookup(addr);
  if (!vma) return -EFAULT;
  const err = check_vma_flags(k, pc, vma, gup_flags);
  if (err) return err;
  const write = (gup_flags & FOLL_WRITE) !== 0;
  for (;;) {
    // follow_page_pte, under the page-table lock.
    const table = mm.pgtables.pteTable(addr, false);
    if (table >= 0) {
      const i = Math.floor(addr / 4096) % 512;
      yield* spin_lock_ptl(pc, mm, t);
      pc.touch = table * 4096 + i * 8;
      yield STEP_READ;
      const lo = k.machine.mem.readLo(table, i);
      const hi = k.machine.mem.readHi(table, i);
      // A PROT_NONE entry is followed (only FOLL_HONOR_NUMA_FAULT, which the model's callers never pass, refuses it).
      let unshare = false;
      if (pte_present(lo) && (!write || can_follow_write_pte(k, lo, hi, vma, gup_flags))) {
        const pfn = pte_pfn(lo, hi);
        unshare = !pte_write(lo, k.userShstk) && gup_must_unshare(k, gup_flags, pfn);
        if (!unshare) {
          // try_grab_folio: the zero page is never pinned (a FOLL_GET reference is taken on it like any page).
          if (gup_flags & FOLL_PIN) {
            if (pfn !== k.zero_pfn) {
              k.pages.refcount[pfn] += GUP_PIN_COUNTING_BIAS;
              mm.has_pinned = true;
              gup_hold(k, hold, pfn, true);
            }
          } else if (gup_flags & FOLL_GET) {
            k.pages.get_page(pfn);
            gup_hold(k, hold, pfn, false);
          }
          // FOLL_TOUCH: a write through a clean entry dirties the page (set_page_dirty: PG_dirty for anonymous and shmem folios alike).
          if (gup_flags & FOLL_TOUCH && write && !pte_dirty(lo, hi) && pfn !== k.zero_pfn) k.pages.flags[pfn] |= PG_dirty;
          yield* spin_unlock_ptl(pc, mm);
          return pfn * 4096 + (addr % 4096);
        }
      }
      yield* spin_unlock_ptl(pc, mm);
      if (unshare) {
        // faultin_page with FAULT_FLAG_UNSHARE (follow_page_pte's -EMLINK).
        const r = yield* handle_mm_fault(new vm_fault(k, pc, t, vma, mm, addr, FAULT_FLAG_UNSHARE));
        if (r & VM_FAULT_OOM) return -ENOMEM;
        if (r & (VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV)) return -EFAULT;
        continue;
      }
    }
    // faultin_page: a forced write to a read-only private VMA breaks COW without making the entry
    // writable; FOLL_UNLOCKABLE lets the fault drop mmap_lock and wait (FAULT_FLAG_ALLOW_RETRY, KILLABLE).
    let fault_flags = write ? FAULT_FLAG_WRITE : 0;
    if (gup_flags & FOLL_UNLOCKABLE) fault_flags |= FAULT_FLAG_ALLOW_RETRY | FAULT_FLAG_KILLABLE;
    if (gup_flags & FOLL_TRIED) fault_flags |= FAULT_FLAG_TRIED;
    const r = yield* handle_mm_fault(new vm_fault(k, pc, t, vma, mm, addr, fault_flags));
    if (r & VM_FAULT_RETRY) return GUP_UNLOCKED;
    if (r & VM_FAULT_OOM) return -ENOMEM;
    if (r & (VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV)) return -EFAULT;
  }
}

/** unpin_user_page: drops a FOLL_PIN pin `hold` recorded (none was taken on the zero page). */
export function unpin_user_page(k: Kernel, pfn: number, hold?: GupHold): void {
  if (pfn === k.zero_pfn) return;
  gup_unhold(k, hold, pfn, true);
  k.pages.refcount[pfn] -= GUP_PIN_COUNTING_BIAS - 1;
  k.pages.put_page(pfn);
}

/** put_page of a FOLL_GET reference `hold` recorded. */
export function gup_put_page(k: Kernel, pfn: number, hold?: GupHold): void {
  gup_unhold(k, hold, pfn, false);
  k.pages.put_page(pfn);
}

