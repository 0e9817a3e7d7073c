/**
 * The program break (mm/mmap.c sys_brk, do_brk_flags, check_brk_limits; include/linux/mm.h
 * check_data_rlimit): the heap, a private writable VMA named [heap], from mm->start_brk (the
 * page after the image's data, as binfmt_elf sets it without randomisation) to
 * PAGE_ALIGN(mm->brk). brk(addr) moves the break: below start_brk, or refused by a check,
 * it stays where it was and brk returns it; shrinking unmaps the pages past the new break
 * (do_vmi_align_munmap); growing extends the brk VMA or makes one (do_brk_flags), accounted
 * like any mapping (RLIMIT_AS, RLIMIT_DATA, the commit limit, locked_vm after
 * mlockall(MCL_FUTURE), which also populates the new pages once mmap_lock is dropped).
 *
 * XXX: no CONFIG_COMPAT_BRK (Debian's 6.12 has it off: min_brk is start_brk); no
 * VM_SOFTDIRTY; no userfaultfd unmap events.
 */
import type { Kernel, PerCpu } from './kernel.js';
import { STACK_GUARD_GAP } from './fault.js';
import { __mm_populate } from './mlock.js';
import type { MmStruct } from './mm.js';
import { DEFAULT_MAX_MAP_COUNT, do_vmi_munmap, mmap_write_lock, mmap_write_unlock, vm_start_gap } from './mmap.js';
import { rlimit } from './resource.js';
import type { KPath } from './steps.js';
import type { Task } from './task.js';
import { EAGAIN, ENOMEM, RLIM_INFINITY, RLIMIT_DATA } from './uapi.js';
import { may_expand_vm, mlock_future_ok } from './vm_account.js';
import { Vma, VM_ACCOUNT, VM_LOCKED, VM_MAYEXEC, VM_MAYREAD, VM_MAYWRITE, VM_READ, VM_WRITE } from './vma.js';

const PAGE_SIZE = 4096;
/** VM_DATA_DEFAULT_FLAGS on x86-64 (VM_DATA_FLAGS_TSK_EXEC without READ_IMPLIES_EXEC). */
const VM_DATA_DEFAULT_FLAGS = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC;

/** check_data_rlimit: with a finite RLIMIT_DATA, the heap plus the image's data must fit in it (-ENOSPC, which brk only reports by not moving). */
function check_data_rlimit(rlim: bigint, brk: bigint, start: number, end_data: number, start_data: number): boolean {
  if (rlim < RLIM_INFINITY) return (brk - BigInt(start)) + BigInt(end_data - start_data) > rlim;
  return false;
}

/**
 * check_brk_limits(addr, len): get_unmapped_area with MAP_FIXED (the range within user space,
 * -ENOMEM), then mlock_future_ok for def_flags (-EAGAIN).
 */
function check_brk_limits(t: Task, mm: MmStruct, addr: number, len: bigint): number {
  if (len > BigInt(mm.task_size) || BigInt(addr) > BigInt(mm.task_size) - len) return -ENOMEM;
  return mlock_future_ok(t, mm, mm.def_flags, Number(len)) ? 0 : -EAGAIN;
}

/**
 * do_brk_flags: [addr, addr + len) as heap, flags VM_DATA_DEFAULT_FLAGS | VM_ACCOUNT |
 * def_flags: refused (-ENOMEM) by may_expand_vm, the map count or the commit limit; the brk VMA
 * `vma` is extended when it ends at `addr` with the same flags, or a new [heap] VMA is made.
 * total_vm and data_vm (and locked_vm for VM_LOCKED) grow.
 */
function do_brk_flags(k: Kernel, t: Task, mm: MmStruct, vma: Vma | null, addr: number, len: number): number {
  const flags = VM_DATA_DEFAULT_FLAGS | VM_ACCOUNT | mm.def_flags;
  const pages = len / PAGE_SIZE;
  if (!may_expand_vm(t, mm, flags, pages)) return -ENOMEM;
  if (mm.vmas.length > DEFAULT_MAX_MAP_COUNT) return -ENOMEM;
  // security_vm_enough_memory_mm: the overcommit heuristic, charged.
  if (pages > k.totalram_pages) return -ENOMEM;
  mm.committed += pages;
  // vma_merge_new_range with VMG_FLAG_JUST_EXPAND: the previous VMA grows if it could take the range.
  if (vma && vma.vm_end === addr && vma.vm_flags === flags && !vma.shmem && !vma.shadowStack && vma.vm_pkey === 0 && vma.vm_pgoff + (vma.vm_end - vma.vm_start) / PAGE_SIZE === addr / PAGE_SIZE) {
    vma.vm_end = addr + len;
    vma.name = '[heap]';
  } else {
    const v = new Vma(addr, addr + len, flags, addr / PAGE_SIZE);
    v.name = '[heap]';
    mm.vmas.insert(v);
  }
  mm.total_vm += pages;
  mm.data_vm += pages;
  if (flags & VM_LOCKED) mm.locked_vm += pages;
  return 0;
}

/**
 * brk(brk), in sys_brk's order under mmap_lock for writing: below start_brk, or the heap and the
 * image's data over RLIMIT_DATA (check_data_rlimit), the break stays. The same page: only
 * mm->brk moves. Lower: the brk VMA must reach into [newbrk, oldbrk) (else it stays), and the
 * pages from PAGE_ALIGN(brk) on are unmapped. Higher: check_brk_limits, then no VMA within a
 * page (and a stack's guard gap) above the new end, then do_brk_flags; with MCL_FUTURE in
 * def_flags the new pages are populated after mmap_lock is dropped. Returns the new break, or
 * the old one when it did not move.
 */
export function* sys_brk(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  const brk = a[0];
  const mm = t.mm!;
  yield* mmap_write_lock(k, pc, mm, t);
  const origbrk = mm.brk;
  const min_brk = mm.start_brk;
  const out = function* (): KPath {
    mm.brk = origbrk;
    yield* mmap_write_unlock(pc, mm);
    return origbrk;
  };
  if (brk < BigInt(min_brk)) return yield* out();
  if (check_data_rlimit(rlimit(t, RLIMIT_DATA), brk, mm.start_brk, mm.end_data, mm.start_data)) return yield* out();
  // PAGE_ALIGN in unsigned long arithmetic: a break in the last page wraps to 0.
  const newbrk64 = BigInt.asUintN(64, brk + 0xfffn) & ~0xfffn;
  const oldbrk = Math.ceil(mm.brk / PAGE_SIZE) * PAGE_SIZE;
  if (newbrk64 === BigInt(oldbrk)) {
    mm.brk = Number(brk);
    yield* mmap_write_unlock(pc, mm);
    return mm.brk;
  }
  if (brk <= BigInt(mm.brk)) {
    const newbrk = Number(newbrk64);
    // vma_find(&vmi, oldbrk) from newbrk: the first VMA meeting [newbrk, oldbrk).
    const brkvma = mm.vmas.find_vma(newbrk);
    if (!brkvma || brkvma.vm_start >= oldbrk) return yield* out();
    mm.brk = Number(brk);
    const r = yield* do_vmi_munmap(k, pc, mm, newbrk, oldbrk);
    if (r < 0) return yield* out();
    yield* mmap_write_unlock(pc, mm);
    return Number(brk);
  }
  if (check_brk_limits(t, mm, oldbrk, BigInt.asUintN(64, newbrk64 - BigInt(oldbrk)))) return yield* out();
  const newbrk = Number(newbrk64);
  // The gap above the heap: no VMA may start (its guard gap included) within a page of the new end.
  const next = mm.vmas.find_vma(oldbrk);
  if (next && next.vm_start < newbrk + PAGE_SIZE + STACK_GUARD_GAP && newbrk + PAGE_SIZE > vm_start_gap(next)) return yield* out();
  // vma_prev_limit(&vmi, start_brk): the VMA ending at or below oldbrk, if it starts at or above start_brk.
  const prev = mm.vmas.prevOf(oldbrk);
  const brkvma = prev && prev.vm_end > mm.start_brk ? prev : null;
  if (do_brk_flags(k, t, mm, brkvma, oldbrk, newbrk - oldbrk) < 0) return yield* out();
  mm.brk = Number(brk);
  const populate = (mm.def_flags & VM_LOCKED) !== 0;
  yield* mmap_write_unlock(pc, mm);
  if (populate) yield* __mm_populate(k, pc, t, oldbrk, newbrk - oldbrk, true);
  return Number(brk);
}
