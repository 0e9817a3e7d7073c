/**
 * mmap, munmap and mprotect (arch/x86/kernel/sys_x86_64.c, mm/mmap.c, mm/vma.c, mm/util.c,
 * mm/mprotect.c), with Linux 6.12's order of argument checks: anonymous memory, tmpfs files
 * (shared or private; their pages are the file's page cache) and /dev/zero. Arguments arrive
 * as 64-bit values (bigint) and are checked exactly before any becomes a number.
 *
 * The address space's size is accounted (vm_stat_account) and held to RLIMIT_AS and RLIMIT_DATA
 * (may_expand_vm); VM_LOCKED mappings (MAP_LOCKED, or any after mlockall(MCL_FUTURE)) to
 * RLIMIT_MEMLOCK (mlock_future_ok) in mm->locked_vm; MAP_POPULATE and locked mappings are
 * faulted in after mmap_lock is dropped (mm_populate, mlock.ts).
 *
 * XXX: no hugetlb (MAP_HUGETLB is ENOMEM, as with no huge pages reserved), no transparent huge pages
 * (so no 2 MiB alignment of hint-less 2 MiB-multiple mappings), and the caller has no CAP_SYS_RAWIO.
 */
import type { Kernel, PerCpu } from './kernel.js';
import { TASK_SIZE } from './kernel.js';
import { change_protection } from './mprotect.js';
import { tlb_adjust_range, tlb_finish_mmu, tlb_gather_mmu, unmap_page_range } from './zap.js';
import type { MmStruct } from './mm.js';
import { mmapLockId, release_shmem } from './mmput.js';
import { cond_resched } from './sched.js';
import { STEP_LOCK, STEP_UNLOCK, STEP_WAIT, type KPath, type KSteps } from './steps.js';
import type { Task } from './task.js';
import { fdArg, fdget, FMODE_READ, FMODE_WRITE, type File } from './file.js';
import { flush_tlb_mm_range } from './tlbflush.js';
import {
  EACCES, EAGAIN, EBADF, EEXIST, EINVAL, ENODEV, ENOMEM, EOPNOTSUPP, EOVERFLOW, EPERM, F_SEAL_FUTURE_WRITE, F_SEAL_WRITE, MAP_ANONYMOUS, MAP_SHARED_VALIDATE, MAP_DROPPABLE, MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_GROWSDOWN, MAP_HUGETLB,
  MAP_32BIT, MAP_DENYWRITE, MAP_EXECUTABLE, MAP_LOCKED, MAP_NONBLOCK, MAP_NORESERVE, MAP_POPULATE, MAP_PRIVATE, MAP_STACK, MAP_UNINITIALIZED, MAP_SHARED, MAP_TYPE, PROT_EXEC, PROT_GROWSDOWN, PROT_GROWSUP, PROT_READ, PROT_SEM, PROT_WRITE,
} from './uapi.js';
import {
  ShmemObject, Vma, VM_ACCESS_FLAGS, VM_ACCOUNT, VM_EXEC, VM_GROWSDOWN, VM_LOCKED, VM_LOCKED_MASK, VM_MAYEXEC, VM_MAYREAD, VM_MAYSHARE, VM_MAYWRITE, VM_NORESERVE,
  VM_READ, VM_SHARED, VM_WIPEONFORK, VM_WRITE,
} from './vma.js';
import { STACK_GUARD_GAP } from './fault.js';
import { arch_override_mprotect_pkey, execute_only_pkey, mm_pkey_is_allocated } from './pkeys.js';
import { __mm_populate, can_do_mlock, populate_vma_page_range, vma_supports_mlock } from './mlock.js';
import { may_expand_vm, mlock_future_ok, vm_stat_account } from './vm_account.js';

/** sysctl vm.max_map_count default. */
export const DEFAULT_MAX_MAP_COUNT = 65530;
/** mmap_legacy_base without randomisation: PAGE_ALIGN(TASK_SIZE / 3), where the bottom-up fallback search starts. */
const MMAP_LEGACY_BASE = Math.ceil(TASK_SIZE / 3 / 4096) * 4096;
const PAGE_MASK = ~0xfffn;

/** calc_vm_prot_bits: PROT_* to VM_READ/WRITE/EXEC. */
export function calc_vm_prot_bits(prot: number): number {
  return (prot & PROT_READ ? VM_READ : 0) | (prot & PROT_WRITE ? VM_WRITE : 0) | (prot & PROT_EXEC ? VM_EXEC : 0);
}

/**
 * Takes mmap_lock for writing (mmap_write_lock), one wait step per try while it is held. down_write
 * begins with might_sleep(): with preempt=voluntary a preemption point (cond_resched).
 */
export function* mmap_write_lock(k: Kernel, pc: PerCpu, mm: MmStruct, t: Task): KSteps<void> {
  yield* cond_resched(k, pc, t, true);
  pc.touch = mmapLockId(mm);
  // The attempt and each retry test and take the lock in one step (a test-and-set).
  yield STEP_LOCK;
  while (mm.mmap_lock.writer !== 0 || mm.mmap_lock.readers !== 0) yield STEP_WAIT;
  mm.mmap_lock.writer = t.tid;
}

/**
 * Takes mmap_lock for reading (mmap_read_lock), one wait step per try while a writer holds it.
 * down_read begins with might_sleep(): with preempt=voluntary a preemption point (cond_resched).
 */
export function* mmap_read_lock(k: Kernel, pc: PerCpu, mm: MmStruct): KSteps<void> {
  yield* cond_resched(k, pc, pc.current!, true);
  pc.touch = mmapLockId(mm);
  // The attempt and each retry test and take the lock in one step (a test-and-set).
  yield STEP_LOCK;
  while (mm.mmap_lock.writer !== 0) yield STEP_WAIT;
  mm.mmap_lock.readers++;
}

/** mmap_read_unlock. */
export function* mmap_read_unlock(pc: PerCpu, mm: MmStruct): KSteps<void> {
  pc.touch = mmapLockId(mm);
  yield STEP_UNLOCK;
  mm.mmap_lock.readers--;
}

/** mmap_write_unlock. */
export function* mmap_write_unlock(pc: PerCpu, mm: MmStruct): KSteps<void> {
  pc.touch = mmapLockId(mm);
  yield STEP_UNLOCK;
  mm.mmap_lock.writer = 0;
}

/** Runs `body` holding mmap_lock for writing: the shape of every mmap-family syscall. */
function* with_mmap_write_lock(k: Kernel, pc: PerCpu, mm: MmStruct, t: Task, body: KPath): KPath {
  yield* mmap_write_lock(k, pc, mm, t);
  const r = yield* body;
  yield* mmap_write_unlock(pc, mm);
  return r;
}

/** SHSTK guard: a shadow stack keeps one page free below it (stack_guard_start_gap, arch/x86/kernel/shstk.c). */
export const SHSTK_GUARD_GAP = 4096;

/** vm_start_gap: a grows-down stack keeps stack_guard_gap free below it, a shadow stack one page. */
export function vm_start_gap(v: Vma): number {
  if (v.vm_flags & VM_GROWSDOWN) return Math.max(0, v.vm_start - STACK_GUARD_GAP);
  if (v.shadowStack) return Math.max(0, v.vm_start - SHSTK_GUARD_GAP);
  return v.vm_start;
}

/**
 * vm_unmapped_area, top-down: the highest `len`-byte range below `high` and at or above
 * `low` that overlaps no VMA (nor a stack's guard gap). -1 if none.
 */
function unmapped_area_topdown(mm: MmStruct, len: number, low: number, high: number, startGap: number): number {
  const list = mm.vmas.list;
  for (let i = list.length - 1; i >= -1; i--) {
    const gapStart = Math.max(low, i >= 0 ? list[i].vm_end : 0);
    const gapEnd = Math.min(high, i + 1 < list.length ? vm_start_gap(list[i + 1]) : high);
    if (gapEnd - gapStart >= len + startGap) return gapEnd - len;
  }
  return -1;
}

/** The bottom-up search (arch_get_unmapped_area): the lowest free range at or above `low`. -1 if none. */
function unmapped_area(mm: MmStruct, len: number, low: number, high: number, startGap = 0): number {
  let addr = low;
  let prevEnd = 0;
  for (const v of mm.vmas.list) {
    if (v.vm_end <= addr) {
      prevEnd = v.vm_end;
      continue;
    }
    if (startGap > 0 && addr - prevEnd < startGap) addr = prevEnd + startGap;
    if (vm_start_gap(v) >= addr + len) break;
    addr = Math.max(addr, v.vm_end);
    prevEnd = v.vm_end;
  }
  if (startGap > 0 && addr - prevEnd < startGap) addr = prevEnd + startGap;
  return addr + len <= high ? addr : -1;
}

/**
 * arch_get_unmapped_area_topdown (x86): MAP_FIXED takes `addr` as it is; a hint is used if
 * the range fits below TASK_SIZE and is free; otherwise the top-down search below mmap_base,
 * then the bottom-up one from mmap_legacy_base. Returns an address or -ENOMEM.
 */
export function get_unmapped_area(k: Kernel, mm: MmStruct, addr: number, len: number, fixed: boolean, map32bit: boolean, shadowStack: boolean): number {
  // stack_guard_placement: a new shadow stack also needs its guard page free below it; MAP_ABOVE4G.
  const startGap = shadowStack ? SHSTK_GUARD_GAP : 0;
  if (len > mm.task_size) return -ENOMEM;
  if (fixed) return addr;
  if (map32bit) {
    // arch_get_unmapped_area, bottom-up in [1 GiB, 2 GiB) (find_start_end for MAP_32BIT).
    const begin = 0x40000000;
    const end = 0x80000000;
    if (addr !== 0) {
      addr = Math.floor(addr / 4096) * 4096;
      const v = mm.vmas.find_vma(addr);
      if (end - len >= addr && (!v || addr + len <= vm_start_gap(v))) return addr;
    }
    const a = unmapped_area(mm, len, begin, end);
    return a < 0 ? -ENOMEM : a;
  }
  if (addr !== 0) {
    addr = Math.floor(addr / 4096) * 4096;
    if (mm.task_size - len >= addr) {
      const v = mm.vmas.find_vma(addr);
      if (!v || addr + len <= vm_start_gap(v)) return addr;
    }
  }
  const low = Math.max(4096, k.options.mmap_min_addr, shadowStack ? 2 ** 32 : 0);
  let a = unmapped_area_topdown(mm, len, low, mm.mmap_base, startGap);
  if (a < 0) a = unmapped_area(mm, len, Math.max(low, MMAP_LEGACY_BASE), mm.task_size, startGap);
  return a < 0 ? -ENOMEM : a;
}

/**
 * sys_mmap: the offset and fd checks (ksys_mmap_pgoff), then do_mmap under mmap_lock.
 * Returns the mapping's address or -errno.
 */
export function sys_mmap(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): number | KPath {
  const [addr, len, prot, flags, fd, off] = a;
  if (off & 0xfffn) return -EINVAL;
  const f = Number(flags & 0xffffffffn);
  // ksys_mmap_pgoff: a file mapping names its file (fget: an O_PATH descriptor is -EBADF too).
  let file: File | null = null;
  if (!(f & MAP_ANONYMOUS)) {
    file = fdget(t, fdArg(fd));
    if (!file) return -EBADF;
  } else if (f & MAP_HUGETLB) return -ENOMEM;
  // vm_mmap_pgoff: do_mmap under mmap_lock, then, the lock dropped, mm_populate of what do_mmap asks.
  return (function* (): KPath {
    const populate: MmapPopulate = { len: 0 };
    const ret = yield* with_mmap_write_lock(k, pc, t.mm!, t, do_mmap_locked(k, pc, t.mm!, addr, len, Number(prot & 0xffffffffn), f, off >> 12n, 0, false, file, populate));
    if (ret >= 0 && populate.len > 0) yield* __mm_populate(k, pc, t, ret, populate.len, true);
    return ret;
  })();
}

/** do_mmap's `populate` out-parameter: the bytes vm_mmap_pgoff is to fault in once mmap_lock is dropped. */
export interface MmapPopulate {
  len: number;
}

/**
 * do_mmap + mmap_region (mm/mmap.c), in Linux's order of checks; the caller holds mmap_lock.
 * `extraVmFlags` are do_mmap's vm_flags argument; `shadowStack` makes a VM_SHADOW_STACK VMA
 * (alloc_shstk passes VM_WRITE with it and PROT_READ as prot).
 */
export function* do_mmap_locked(k: Kernel, pc: PerCpu, mm: MmStruct, addrArg: bigint, lenArg: bigint, prot: number, flags: number, pgoffArg: bigint, extraVmFlags = 0, shadowStack = false, file: File | null = null, populate: MmapPopulate | null = null): KPath {
  const t = pc.current!;
  if (lenArg === 0n) return -EINVAL;
  if (flags & MAP_FIXED_NOREPLACE) flags |= MAP_FIXED;
  let addr64 = addrArg;
  if (!(flags & MAP_FIXED)) {
    // round_hint_to_min
    addr64 &= BigInt.asUintN(64, PAGE_MASK);
    const min = BigInt(k.options.mmap_min_addr);
    if (addr64 !== 0n && addr64 < min) addr64 = (min + 0xfffn) & PAGE_MASK;
  }
  const len64 = BigInt.asUintN(64, (lenArg + 0xfffn) & PAGE_MASK);
  if (len64 === 0n) return -ENOMEM;
  if (BigInt.asUintN(64, pgoffArg + (len64 >> 12n)) < pgoffArg) return -EOVERFLOW;
  if (mm.vmas.length > DEFAULT_MAX_MAP_COUNT) return -ENOMEM;
  // __get_unmapped_area
  const taskSize = BigInt(mm.task_size);
  if (len64 > taskSize) return -ENOMEM;
  const len = Number(len64);
  let addr: number;
  if (flags & MAP_FIXED) {
    if (addr64 > taskSize - len64) return -ENOMEM;
    addr = Number(addr64);
  } else {
    const hint = addr64 > taskSize ? 0 : Number(addr64);
    addr = get_unmapped_area(k, mm, hint, len, false, (flags & MAP_32BIT) !== 0, shadowStack);
    if (addr < 0) return addr;
  }
  if (addr % 4096 !== 0) return -EINVAL;
  if (addr < k.options.mmap_min_addr) return -EPERM_MMAP;
  if (flags & MAP_FIXED_NOREPLACE && mm.vmas.find_vma_intersection(addr, addr + len)) return -EEXIST;
  // An execute-only mapping gets the mm's execute-only key, or key 0 when none can be had.
  let pkey = 0;
  if (prot === PROT_EXEC) {
    pkey = execute_only_pkey(k, pc, mm);
    if (pkey < 0) pkey = 0;
  }
  let vmFlags = calc_vm_prot_bits(prot) | mm.def_flags | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC | extraVmFlags;
  if (flags & MAP_GROWSDOWN) vmFlags |= VM_GROWSDOWN;
  if (flags & MAP_LOCKED) vmFlags |= VM_LOCKED;
  if (flags & MAP_LOCKED && !can_do_mlock(t)) return -EPERM;
  if (!mlock_future_ok(t, mm, vmFlags, len)) return -EAGAIN;
  let pgoff: number;
  // The file's checks (do_mmap's `if (file)`): a shared writable mapping needs a file open for
  // writing and one open read-only maps shared without VM_SHARED; any mapping needs it open for
  // reading; a file without an mmap operation is -ENODEV. /dev/zero maps anonymous memory.
  let object: ShmemObject | null = null;
  let anonymous = !file;
  // A shared mapping of /dev/zero keeps its file offset as vm_pgoff (anonymous MAP_SHARED has 0).
  let zeroPgoff = 0;
  if (file) {
    const type = flags & MAP_TYPE;
    if (type !== MAP_SHARED && type !== MAP_SHARED_VALIDATE && type !== MAP_PRIVATE) return -EINVAL;
    if (type === MAP_SHARED_VALIDATE && flags & ~LEGACY_MAP_MASK) return -EOPNOTSUPP;
    if (type !== MAP_PRIVATE) {
      if (prot & PROT_WRITE && !(file.f_mode & FMODE_WRITE)) return -EACCES;
      vmFlags |= VM_SHARED | VM_MAYSHARE;
      if (!(file.f_mode & FMODE_WRITE)) vmFlags &= ~(VM_MAYWRITE | VM_SHARED);
    }
    if (!(file.f_mode & FMODE_READ)) return -EACCES;
    const inode = file.inode;
    // No mmap in simple_dir_operations, null_fops, pipefifo_fops, procfs's or userfaultfd's operations.
    if (inode.kind === 'dir' || inode.kind === 'null' || inode.kind === 'fifo' || inode.kind === 'proc' || inode.kind === 'anon') return -ENODEV;
    if (vmFlags & VM_GROWSDOWN) return -EINVAL;
    if (inode.kind === 'zero') {
      // mmap_zero: a VM_SHARED mapping is shmem_zero_setup's fresh object, anything else anonymous memory.
      anonymous = true;
      zeroPgoff = Number(pgoffArg);
      flags = (flags & ~MAP_TYPE) | (vmFlags & VM_SHARED ? MAP_SHARED : MAP_PRIVATE);
      vmFlags &= ~(VM_SHARED | VM_MAYSHARE);
    } else {
      // shmem_mmap -> seal_check_write: a memfd sealed against writing maps shared only read-only.
      if (inode.seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE) && vmFlags & VM_SHARED) {
        if (vmFlags & VM_WRITE) return -EPERM;
        vmFlags &= ~VM_MAYWRITE;
      }
      object = inode.mapping;
    }
  }
  if (!anonymous) pgoff = Number(pgoffArg);
  else switch (flags & MAP_TYPE) {
    case MAP_SHARED:
      if (vmFlags & VM_GROWSDOWN) return -EINVAL;
      pgoff = zeroPgoff;
      vmFlags |= VM_SHARED | VM_MAYSHARE;
      break;
    case MAP_DROPPABLE:
      if (flags & (MAP_LOCKED | MAP_HUGETLB) || vmFlags & VM_GROWSDOWN) return -EINVAL;
      vmFlags |= VM_WIPEONFORK | VM_NORESERVE;
      pgoff = addr / 4096;
      break;
    case MAP_PRIVATE:
      pgoff = addr / 4096;
      break;
    default:
      return -EINVAL;
  }
  // MAP_NORESERVE: VM_NORESERVE unless overcommit_memory is OVERCOMMIT_NEVER (the model's is 0, the heuristic).
  if (flags & MAP_NORESERVE) vmFlags |= VM_NORESERVE;
  // mmap_region: the address space limits, counting the pages of the mappings replaced as freed.
  if (!may_expand_vm(t, mm, vmFlags, len / 4096 - mapped_pages(mm, addr, addr + len))) return -ENOMEM;
  // Charge a private writable mapping before touching the old ones.
  let charged = 0;
  if ((vmFlags & (VM_WRITE | VM_SHARED | VM_NORESERVE)) === VM_WRITE) {
    charged = len / 4096;
    if (!vm_enough_memory(k, charged)) return -ENOMEM;
    vmFlags |= VM_ACCOUNT;
  }
  if (mm.vmas.find_vma_intersection(addr, addr + len)) yield* do_vmi_munmap(k, pc, mm, addr, addr + len);
  const vma = new Vma(addr, addr + len, vmFlags, pgoff);
  vma.vm_pkey = pkey;
  vma.shadowStack = shadowStack;
  if (object) {
    vma.shmem = object;
    object.users++;
  } else if (vmFlags & VM_SHARED) {
    // shmem_zero_setup: a file the mapping's length, so with a /dev/zero offset the pages from
    // the length on (in file pages) are past its end.
    vma.shmem = new ShmemObject(k.nextObjectId());
    vma.shmem.users = 1;
    vma.shmem.size = len;
  }
  mm.committed += charged;
  mm.vmas.insert(vma);
  vm_stat_account(mm, vmFlags, len / 4096, shadowStack);
  if (vmFlags & VM_LOCKED) {
    if (!vma_supports_mlock(vma)) vma.vm_flags &= ~VM_LOCKED_MASK;
    else mm.locked_vm += len / 4096;
  }
  // "New (or expanded) vma always get soft dirty status" (__mmap_region: VM_SOFTDIRTY on the merged VMA too).
  if (!vma.shmem) mm.vmas.mergeAround(vma).softdirty = true;
  // do_mmap: a locked mapping, or MAP_POPULATE without MAP_NONBLOCK, is populated by the caller.
  if (populate && (vmFlags & VM_LOCKED || (flags & (MAP_POPULATE | MAP_NONBLOCK)) === MAP_POPULATE)) populate.len = len;
  return addr;
}

/** vms_gather_munmap_vmas's nr_pages: the pages of [start, end) that VMAs map. */
function mapped_pages(mm: MmStruct, start: number, end: number): number {
  let n = 0;
  for (let v = mm.vmas.find_vma_intersection(start, end); v && v.vm_start < end; v = mm.vmas.find_vma(v.vm_end)) {
    n += (Math.min(end, v.vm_end) - Math.max(start, v.vm_start)) / 4096;
  }
  return n;
}
/** LEGACY_MAP_MASK (include/linux/mman.h): the flags MAP_SHARED_VALIDATE accepts. */
const LEGACY_MAP_MASK =
  MAP_SHARED | MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS | MAP_DENYWRITE | MAP_EXECUTABLE | MAP_UNINITIALIZED | MAP_GROWSDOWN | MAP_LOCKED | MAP_NORESERVE |
  MAP_POPULATE | MAP_NONBLOCK | MAP_STACK | MAP_HUGETLB;
/** -EPERM for an address below mmap_min_addr (security_mmap_addr without CAP_SYS_RAWIO). */
const EPERM_MMAP = 1;

/**
 * __vm_enough_memory with overcommit_memory = 0 (the heuristic): a request fails only if it
 * is more pages than the machine's RAM (there is no swap).
 */
function vm_enough_memory(k: Kernel, pages: number): boolean {
  return pages <= k.totalram_pages;
}

/**
 * do_vmi_munmap over [start, end): splits the VMAs at the edges, zaps their PTEs, frees the
 * page tables no remaining VMA needs (free_pgtables between the neighbours), flushes what was
 * zapped on every CPU of the mm (tlb_finish_mmu: only if something was), and removes them.
 */
/**
 * vma_modify_flags (mm/vma.c): [start, end) of `vma` gets `new_flags`, split at the edges
 * (split_vma: -ENOMEM at sysctl_max_map_count) and merged with its neighbours. Returns the VMA
 * now covering `start`, or -ENOMEM. Changes no page table.
 */
export function vma_modify_flags(mm: MmStruct, vma: Vma, start: number, end: number, new_flags: number): number | Vma {
  if (start > vma.vm_start) {
    if (mm.vmas.length >= DEFAULT_MAX_MAP_COUNT) return -ENOMEM;
    vma = mm.vmas.split(vma, start);
  }
  if (end < vma.vm_end) {
    if (mm.vmas.length >= DEFAULT_MAX_MAP_COUNT) return -ENOMEM;
    mm.vmas.split(vma, end);
  }
  vma.vm_flags = new_flags;
  return mm.vmas.mergeAround(vma);
}

export function* do_vmi_munmap(k: Kernel, pc: PerCpu, mm: MmStruct, start: number, end: number): KPath {
  // An empty range is -EINVAL (mremap's move of a zero-length range reaches here).
  if (end === start) return -EINVAL;
  const vmas = mm.vmas;
  let first = vmas.find_vma_intersection(start, end);
  if (!first) return 0;
  if (first.vm_start < start) {
    if (first.vm_end > end && vmas.length >= DEFAULT_MAX_MAP_COUNT) return -ENOMEM;
    first = vmas.split(first, start);
  }
  const last = vmas.find_vma_intersection(end - 1, end);
  if (last && last.vm_end > end) vmas.split(last, end);
  const doomed = vmas.list.filter((v) => v.vm_start >= start && v.vm_end <= end);
  // vms_clear_ptes: unmap_vmas, free_pgtables, tlb_finish_mmu.
  const tlb = tlb_gather_mmu(mm);
  for (const v of doomed) yield* unmap_page_range(k, pc, tlb, v.vm_start, v.vm_end);
  const prev = vmas.prevOf(doomed[0].vm_start);
  const next = vmas.find_vma(doomed[doomed.length - 1].vm_end);
  const floor = prev ? prev.vm_end : 0;
  const ceiling = next ? next.vm_start : mm.task_size;
  const freed = mm.pgtables.freePteTables(Math.max(floor, 0), ceiling) > 0;
  for (const v of doomed) {
    vmas.remove(v);
    // vms_complete_munmap_vmas: locked_vm, total_vm and the kinds' counts lose the pages.
    const nrpages = (v.vm_end - v.vm_start) / 4096;
    if (v.vm_flags & VM_LOCKED) mm.locked_vm -= nrpages;
    vm_stat_account(mm, v.vm_flags, -nrpages, v.shadowStack);
    if (v.vm_flags & VM_ACCOUNT) mm.committed -= nrpages;
    if (v.shmem) release_shmem(k, v.shmem);
  }
  if (freed) {
    // pte_free_tlb: freed tables widen the flush to the whole unmapped range.
    tlb.freed_tables = true;
    tlb_adjust_range(tlb, start, end);
  }
  yield* tlb_finish_mmu(k, pc, tlb);
  return 0;
}

/** sys_munmap: __vm_munmap's checks, then do_vmi_munmap under mmap_lock. */
export function sys_munmap(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): number | KPath {
  const [start, lenArg] = a;
  if (start & 0xfffn) return -EINVAL;
  const mm = t.mm!;
  return with_mmap_write_lock(k, pc, mm, t, (function* (): KPath {
    const len = BigInt.asUintN(64, (lenArg + 0xfffn) & PAGE_MASK);
    const taskSize = BigInt(mm.task_size);
    if (start > taskSize || len > taskSize - start || len === 0n) return -EINVAL;
    return yield* do_vmi_munmap(k, pc, mm, Number(start), Number(start + len));
  })());
}

/** sys_mprotect(start, len, prot): do_mprotect_pkey with pkey -1. */
export function sys_mprotect(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): number | KPath {
  return do_mprotect_pkey(k, pc, t, a, -1);
}

/** sys_pkey_mprotect(start, len, prot, pkey): do_mprotect_pkey with the caller's key. */
export function sys_pkey_mprotect(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): number | KPath {
  return do_mprotect_pkey(k, pc, t, a, Number(BigInt.asIntN(32, a[3])));
}

/**
 * do_mprotect_pkey (mm/mprotect.c), Linux's order of checks: flags and alignment, len 0
 * (success, the key unchecked), overflow, prot bits; then under mmap_lock the key (-EINVAL
 * unless -1 or allocated), then the VMAs. Each VMA's key comes from
 * arch_override_mprotect_pkey. The VMAs before a hole or a refused VMA keep their new
 * protection (Linux does not roll back); the PTEs changed in every VMA are flushed once at the
 * end (tlb_finish_mmu).
 */
function do_mprotect_pkey(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[], pkey: number): number | KPath {
  const start64 = a[0];
  const len64 = a[1];
  let prot = Number(a[2] & 0xffffffffn);
  const grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP);
  prot &= ~grows;
  if (grows === (PROT_GROWSDOWN | PROT_GROWSUP)) return -EINVAL;
  if (start64 & 0xfffn) return -EINVAL;
  if (len64 === 0n) return 0;
  const len = BigInt.asUintN(64, (len64 + 0xfffn) & PAGE_MASK);
  const end64 = BigInt.asUintN(64, start64 + len);
  if (end64 <= start64) return -ENOMEM;
  if (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM)) return -EINVAL;
  return with_mmap_write_lock(k, pc, t.mm!, t, mprotect_locked(k, pc, t, t.mm!, start64, end64, prot, grows, pkey));
}

function* mprotect_locked(k: Kernel, pc: PerCpu, t: Task, mm: MmStruct, start64: bigint, end64: bigint, prot: number, grows: number, pkey: number): KPath {
  if (pkey !== -1 && !mm_pkey_is_allocated(k, mm, pkey)) return -EINVAL;
  const taskSize = BigInt(mm.task_size);
  if (start64 >= taskSize) return -ENOMEM;
  let start = Number(start64);
  const end = end64 > taskSize ? mm.task_size + 4096 : Number(end64);
  let vma = mm.vmas.find_vma_intersection(start, end);
  if (!vma) return -ENOMEM;
  if (grows & PROT_GROWSDOWN) {
    if (vma.vm_start >= end) return -ENOMEM;
    start = vma.vm_start;
    if (!(vma.vm_flags & VM_GROWSDOWN)) return -EINVAL;
  } else {
    if (vma.vm_start > start) return -ENOMEM;
    // x86 has no VM_GROWSUP mappings.
    if (grows & PROT_GROWSUP) return -EINVAL;
  }
  let tmp = vma.vm_start;
  let nstart = start;
  let error = 0;
  let fFirst = -1;
  let fLast = -1;
  const newProt = calc_vm_prot_bits(prot);
  while (vma && vma.vm_start < end) {
    if (vma.vm_start !== tmp) {
      error = -ENOMEM;
      break;
    }
    const newPkey = arch_override_mprotect_pkey(k, pc, mm, vma, prot, pkey);
    const newflags = newProt | (vma.vm_flags & ~VM_ACCESS_FLAGS);
    if ((newflags & ~(newflags >> 4)) & VM_ACCESS_FLAGS) {
      error = -EACCES;
      break;
    }
    tmp = Math.min(vma.vm_end, end);
    const r = yield* mprotect_fixup(k, pc, t, mm, vma, nstart, tmp, newflags, newPkey);
    if (r.error) {
      error = r.error;
      break;
    }
    // The VMA now covering nstart may have merged with its neighbours.
    if (r.vma) tmp = Math.min(end, r.vma.vm_end);
    if (r.flush) {
      if (fFirst < 0 || r.flush[0] < fFirst) fFirst = r.flush[0];
      fLast = Math.max(fLast, r.flush[1]);
    }
    nstart = tmp;
    if (tmp >= end) break;
    vma = mm.vmas.find_vma(tmp);
  }
  if (!error && tmp < end) error = -ENOMEM;
  if (fFirst >= 0) yield* flush_tlb_mm_range(k, pc, mm, fFirst, fLast, 12, false);
  return error;
}

/**
 * mprotect_fixup: gives [start, end) of `vma` the flags `newflags` and key `newPkey`, splitting and merging
 * VMAs, charging newly writable private memory, and rewriting the PTEs. Returns an error, or
 * the range whose PTE changes need a flush.
 */
function* mprotect_fixup(k: Kernel, pc: PerCpu, t: Task, mm: MmStruct, vma: Vma, start: number, end: number, newflags: number, newPkey: number): KSteps<{ error: number; flush: number[] | null; vma?: Vma }> {
  if (newflags === vma.vm_flags && newPkey === vma.vm_pkey) return { error: 0, flush: null, vma };
  const oldflags = vma.vm_flags;
  const nrpages = (end - start) / 4096;
  let charged = 0;
  if (newflags & VM_WRITE) {
    // Check space limits when area turns into data.
    if (!may_expand_vm(t, mm, newflags, nrpages) && may_expand_vm(t, mm, oldflags, nrpages)) return { error: -ENOMEM, flush: null };
    if (!(oldflags & (VM_ACCOUNT | VM_WRITE | VM_SHARED | VM_NORESERVE))) {
      charged = nrpages;
      if (!vm_enough_memory(k, charged)) return { error: -ENOMEM, flush: null };
      newflags |= VM_ACCOUNT;
    }
  }
  const splits = (start > vma.vm_start ? 1 : 0) + (end < vma.vm_end ? 1 : 0);
  if (splits > 0 && mm.vmas.length + splits > DEFAULT_MAX_MAP_COUNT) return { error: -ENOMEM, flush: null };
  if (start > vma.vm_start) vma = mm.vmas.split(vma, start);
  if (end < vma.vm_end) mm.vmas.split(vma, end);
  mm.committed += charged;
  vma.vm_flags = newflags;
  vma.vm_pkey = newPkey;
  const flush = yield* change_protection(k, pc, t, vma, start, end);
  // A private VM_LOCKED VMA becoming writable: break COW now rather than at the first write.
  if ((oldflags & (VM_WRITE | VM_SHARED | VM_LOCKED)) === VM_LOCKED && newflags & VM_WRITE) yield* populate_vma_page_range(k, pc, t, vma, start, end);
  vm_stat_account(mm, oldflags, -nrpages, vma.shadowStack);
  vm_stat_account(mm, newflags, nrpages, vma.shadowStack);
  // vma_modify_flags merges, then vm_flags_reset(vma, newflags): the merged VMA takes this one's VM_SOFTDIRTY.
  const softdirty = vma.softdirty;
  const merged = mm.vmas.mergeAround(vma);
  merged.softdirty = softdirty;
  return { error: 0, flush, vma: merged };
}
