/**
 * get_user_pages for the kernel's reads of another process's memory (mm/gup.c), and
 * process_vm_readv (mm/process_vm_access.c), the debugger-style way to use them. GUP walks the
 * target mm's page tables in software (follow_page_pte), faulting pages in with
 * handle_mm_fault; the VMA checks are check_vma_flags', including the protection-key check,
 * which FOLL_REMOTE skips.
 *
 * process_vm_readv pins each page (pin_user_pages_remote: FOLL_PIN | FOLL_REMOTE), so neither
 * the target's protection keys nor the caller's apply.
 *
 * XXX: no ptrace access check beyond the target existing (every process may read every
 * other's memory), and only reads (process_vm_writev is not modelled).
 */
import type { Kernel, PerCpu } from './kernel.js';
import { FAULT_FLAG_UNSHARE, FAULT_FLAG_WRITE, handle_mm_fault, spin_lock_ptl, spin_unlock_ptl, vm_fault, VM_FAULT_OOM, VM_FAULT_SIGBUS, VM_FAULT_SIGSEGV } from './memory.js';
import { GUP_PIN_COUNTING_BIAS, PG_anon, PG_anon_exclusive, type PageRefs } from './page.js';
import { track } from '../track.js';
import type { MmStruct } from './mm.js';
import { mmap_read_lock, mmap_read_unlock } from './mmap.js';
import { pte_pfn, pte_present, pte_soft_dirty, pte_write } from './pgtable.js';
import { arch_vma_access_permitted } from './pkeys.js';
import { STEP_READ, type KPath, type KSteps } from './steps.js';
import type { Task } from './task.js';
import { userfaultfd_pte_wp } from './userfaultfd.js';
import { copy_from_user, copy_to_user, getU64 } from './uaccess.js';
import { EFAULT, EINVAL, ENOMEM, ESRCH } from './uapi.js';
import { VM_MAYREAD, VM_MAYSHARE, VM_MAYWRITE, VM_READ, VM_SHARED, VM_WRITE, type Vma } from './vma.js';

/** UIO_MAXIOV: the most iovecs one call may pass. */
const UIO_MAXIOV = 1024;

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
/** The access is on behalf of another mm or a debugger: protection keys do not apply. */
export const FOLL_REMOTE = 1 << 20;
/** Take a pin (GUP_PIN_COUNTING_BIAS references) rather than a reference. */
export const FOLL_PIN = 1 << 21;

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
 * One page of `mm` at `addr` for the caller `t`, as __get_user_pages gives it with
 * `gup_flags` (FOLL_* above): the physical address of `addr`, or -errno (-EFAULT for no VMA,
 * a VMA check_vma_flags refuses, or a fault that cannot be resolved; -ENOMEM when memory ran
 * out). Holds `mm`'s mmap_lock for reading meanwhile. follow_page_pte reads the entry under
 * the page-table lock and, with FOLL_GET or FOLL_PIN, takes its reference there
 * (try_grab_folio: one, or GUP_PIN_COUNTING_BIAS for a pin, which also sets MMF_HAS_PINNED);
 * the caller then owes put_page or unpin_user_page. Without either, the address is only good
 * while nothing else can free the page.
 */
export function* get_user_page(k: Kernel, pc: PerCpu, t: Task, mm: MmStruct, addr: number, gup_flags: number, hold?: GupHold): KPath {
  yield* mmap_read_lock(k, pc, mm);
  const ret = yield* __get_user_page_locked(k, pc, t, mm, addr, gup_flags, hold);
  yield* mmap_read_unlock(pc, mm);
  return ret;
}

/** get_user_page with mmap_lock already held for reading. */
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
    // faultin_page: a forced write to a read-only private VMA breaks COW without making the entry writable.
    const r = yield* handle_mm_fault(new vm_fault(k, pc, t, vma, mm, addr, write ? FAULT_FLAG_WRITE : 0));
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

/** Reads `count` struct iovec {base, len} at `addr`, or null for -EFAULT. */
function* import_iovec(k: Kernel, pc: PerCpu, t: Task, addr: bigint, count: number): KSteps<bigint[][] | null> {
  if (count === 0) return [];
  const b = yield* copy_from_user(k, pc, t, addr, 16 * count);
  if (!b) return null;
  const v: bigint[][] = [];
  for (let i = 0; i < count; i++) v.push([getU64(b, 16 * i), getU64(b, 16 * i + 8)]);
  return v;
}

/**
 * process_vm_readv(pid, lvec, liovcnt, rvec, riovcnt, flags): copies from the target's
 * remote ranges into the caller's local ones, in order. flags must be 0 and the counts at
 * most UIO_MAXIOV (-EINVAL); the iovecs must be readable (-EFAULT); the target must exist
 * (-ESRCH). Returns the bytes copied, or -EFAULT if the first page could not be read. No
 * protection key applies to the remote side (FOLL_REMOTE), the caller's own or another's; the
 * local copy is an ordinary copy_to_user, under the caller's PKRU.
 */
export function sys_process_vm_readv(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): number | KPath {
  const [pidArg, lvec, liovcnt, rvec, riovcnt, flags] = a;
  if (flags !== 0n) return -EINVAL;
  if (liovcnt > BigInt(UIO_MAXIOV) || riovcnt > BigInt(UIO_MAXIOV)) return -EINVAL;
  return (function* (): KPath {
    const local = yield* import_iovec(k, pc, t, lvec, Number(liovcnt));
    if (!local) return -EFAULT;
    const remote = yield* import_iovec(k, pc, t, rvec, Number(riovcnt));
    if (!remote) return -EFAULT;
    const target = k.find_task_by_vpid(Number(BigInt.asIntN(32, pidArg)));
    if (!target || !target.mm || target.state === 'dead' || target.state === 'zombie') return -ESRCH;
    const mm = target.mm;
    const hold = new GupHold();
    let copied = 0;
    let li = 0;
    let loff = 0n;
    for (const [base, len] of remote) {
      for (let off = 0n; off < len; ) {
        while (li < local.length && loff >= local[li][1]) {
          li++;
          loff = 0n;
        }
        if (li >= local.length) return copied;
        const src = base + off;
        const n = Number([len - off, local[li][1] - loff, 4096n - (src % 4096n)].reduce((x, y) => (x < y ? x : y)));
        const pa = src < BigInt(mm.task_size) ? yield* get_user_page(k, pc, t, mm, Number(src), FOLL_PIN | FOLL_REMOTE, hold) : -EFAULT;
        if (pa < 0) return copied > 0 ? copied : pa;
        // process_vm_rw_pages: the copy out of the pinned page (mmap_lock already dropped), then unpin_user_pages.
        const data = k.machine.mem.readBytes(pa, n);
        const ok = yield* copy_to_user(k, pc, t, local[li][0] + loff, data);
        unpin_user_page(k, Math.floor(pa / 4096), hold);
        if (!ok) return copied > 0 ? copied : -EFAULT;
        copied += n;
        off += BigInt(n);
        loff += BigInt(n);
      }
    }
    return copied;
  })();
}
