/**
 * mremap (mm/mremap.c), with 6.12's order of checks: shrinking in place (do_vmi_munmap of the
 * tail), growing in place when the VMA can be extended (vma_expandable), and moving
 * (MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP: move_vma → copy_vma, move_page_tables).
 *
 * Moving the page tables is the concurrency-sensitive part (move_ptes): under the page-table
 * lock, each entry of the old range is taken with a locked exchange (ptep_get_and_clear: a D or
 * A bit the hardware set up to then goes with it) and written at the new address (set_pte_at);
 * once a present entry was moved, the old range is flushed on every CPU of the mm
 * (flush_tlb_range) before the lock is dropped, so no CPU can reach the page through its old
 * address once the new one can be used. A CPU still holding an old TLB entry meanwhile reads and
 * writes the same frame, which now lives at the new address; one whose entry lacks D must set D
 * in the (now empty) old entry, which the processor cannot do: it faults, waits for mmap_lock,
 * and finds the old range unmapped.
 *
 * Accounting: the moved VMA keeps VM_ACCOUNT and its charge (the old range is unmapped without
 * giving it back, the parts of the old VMA left keep theirs), the growth is charged; total_vm
 * and the kinds (vm_stat_account), locked_vm and RLIMIT_AS, RLIMIT_DATA and RLIMIT_MEMLOCK are
 * kept as mremap keeps them; a locked VMA's growth is populated once mmap_lock is dropped.
 *
 * XXX: no hugetlb, mseal (can_modify_vma), userfaultfd events, special mappings' may_split or
 * mremap hooks, soft-dirty, or the PMD/PUD-level moves (move_pgt_entry: the model has no huge
 * pages and moves PTE by PTE, which Linux also does for a range that is not PMD-aligned).
 */
import type { Kernel, PerCpu } from './kernel.js';
import { spin_lock_ptl, spin_unlock_ptl } from './memory.js';
import { __mm_populate } from './mlock.js';
import type { MmStruct } from './mm.js';
import { DEFAULT_MAX_MAP_COUNT, do_vmi_munmap, get_unmapped_area, mmap_write_lock, mmap_write_unlock } from './mmap.js';
import { pgtableIndex, pmd_addr_end, pte_clear_uffd_wp, pte_none, pte_present, pte_swp_clear_uffd_wp, __pte } from './pgtable.js';
import { cond_resched } from './sched.js';
import { STEP_ATOMIC, STEP_WRITE, type KPath, type KSteps } from './steps.js';
import type { Task } from './task.js';
import { flush_tlb_mm_range } from './tlbflush.js';
import { EAGAIN, EFAULT, EINVAL, ENOMEM, EPERM, MREMAP_DONTUNMAP, MREMAP_FIXED, MREMAP_MAYMOVE } from './uapi.js';
import { mremap_userfaultfd_prep, vma_has_uffd_without_event_remap } from './userfaultfd.js';
import { may_expand_vm, mlock_future_ok, vm_stat_account } from './vm_account.js';
import { Vma, VM_ACCOUNT, VM_DONTEXPAND, VM_LOCKED, VM_LOCKED_MASK, VM_MAYSHARE, VM_PFNMAP, VM_SHARED } from './vma.js';

const PAGE_SIZE = 4096;
const PAGE_MASK64 = 0xfffffffffffff000n;

/** The state of one mremap call (its locals that live across steps). */
interface Mremap {
  k: Kernel;
  pc: PerCpu;
  t: Task;
  mm: MmStruct;
  flags: number;
  /** `locked` of sys_mremap: the VMA is VM_LOCKED, so the growth is populated after the unlock. */
  locked: boolean;
  /** Where the growth to populate starts: new_addr of sys_mremap. */
  new_addr: number;
}

/**
 * mremap(addr, old_len, new_len, flags, new_addr), in sys_mremap's order: unknown flags,
 * MREMAP_FIXED without MREMAP_MAYMOVE, MREMAP_DONTUNMAP without MREMAP_MAYMOVE or with a
 * change of size, a misaligned addr, a new_len that is 0 once page-aligned (-EINVAL); then
 * under mmap_lock for writing: no VMA at addr (-EFAULT); MREMAP_FIXED or MREMAP_DONTUNMAP
 * (mremap_to); shrinking or same size in place; growing (vma_to_resize's checks) in place if
 * the range ends the VMA and the VMA can grow, else moved with MREMAP_MAYMOVE (-ENOMEM without).
 */
export function sys_mremap(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): number | KPath {
  const [addr64, oldLenArg, newLenArg, flagsArg, newAddr64] = a;
  if (flagsArg & ~BigInt(MREMAP_FIXED | MREMAP_MAYMOVE | MREMAP_DONTUNMAP)) return -EINVAL;
  const flags = Number(flagsArg);
  if (flags & MREMAP_FIXED && !(flags & MREMAP_MAYMOVE)) return -EINVAL;
  if (flags & MREMAP_DONTUNMAP && (!(flags & MREMAP_MAYMOVE) || oldLenArg !== newLenArg)) return -EINVAL;
  if (addr64 & 0xfffn) return -EINVAL;
  const old_len64 = BigInt.asUintN(64, oldLenArg + 0xfffn) & PAGE_MASK64;
  const new_len64 = BigInt.asUintN(64, newLenArg + 0xfffn) & PAGE_MASK64;
  if (!new_len64) return -EINVAL;
  const mm = t.mm!;
  return (function* (): KPath {
    yield* mmap_write_lock(k, pc, mm, t);
    const m: Mremap = { k, pc, t, mm, flags, locked: false, new_addr: 0 };
    const ret = yield* mremap_locked(m, addr64, old_len64, new_len64, newAddr64);
    // out: an error is never page-aligned.
    if (ret < 0) m.locked = false;
    yield* mmap_write_unlock(pc, mm);
    if (m.locked && new_len64 > old_len64) yield* __mm_populate(k, pc, t, m.new_addr + Number(old_len64), Number(new_len64 - old_len64), true);
    return ret;
  })();
}

/** The body of sys_mremap under mmap_lock: the new address or -errno. */
function* mremap_locked(m: Mremap, addr64: bigint, old_len64: bigint, new_len64: bigint, newAddr64: bigint): KSteps<number> {
  const { k, mm } = m;
  const vma0 = addr64 < BigInt(mm.task_size) ? mm.vmas.vma_lookup(Number(addr64)) : null;
  if (!vma0) return -EFAULT;
  const addr = Number(addr64);
  if (m.flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) return yield* mremap_to(m, addr, old_len64, newAddr64, new_len64);
  if (old_len64 >= new_len64) {
    if (old_len64 === new_len64) return addr;
    // do_vmi_munmap of the tail.
    const r = yield* munmap_range(m, BigInt(addr) + new_len64, old_len64 - new_len64);
    if (r) return r;
    return addr;
  }
  const old_len = Number(old_len64);
  const vma = vma_to_resize(m, addr, old_len64, new_len64);
  if (typeof vma === 'number') return vma;
  const new_len = Number(new_len64);
  if (old_len === vma.vm_end - addr) {
    const delta = new_len - old_len;
    if (vma_expandable(k, mm, vma, delta)) {
      const pages = delta / PAGE_SIZE;
      if (vma.vm_flags & VM_ACCOUNT) {
        if (pages > k.totalram_pages) return -ENOMEM;
        mm.committed += pages;
      }
      // vma_merge_extend: the VMA grows over the free range (and merges with a VMA beyond, if one fits).
      vma.vm_end += delta;
      mm.vmas.mergeAround(vma);
      vm_stat_account(mm, vma.vm_flags, pages, vma.shadowStack);
      if (vma.vm_flags & VM_LOCKED) {
        mm.locked_vm += pages;
        m.locked = true;
        m.new_addr = addr;
      }
      return addr;
    }
  }
  if (!(m.flags & MREMAP_MAYMOVE)) return -ENOMEM;
  const new_addr = get_unmapped_area(k, mm, 0, new_len, false, false, vma.shadowStack);
  if (new_addr < 0) return new_addr;
  return yield* move_vma(m, vma, addr, old_len, new_len, new_addr);
}

/** do_vmi_munmap(start, len)'s own checks (-EINVAL past TASK_SIZE), then the unmap. */
function* munmap_range(m: Mremap, start: bigint, len: bigint): KSteps<number> {
  const taskSize = BigInt(m.mm.task_size);
  if (start > taskSize || len > taskSize - start) return -EINVAL;
  if (len === 0n) return 0;
  return yield* do_vmi_munmap(m.k, m.pc, m.mm, Number(start), Number(start + len));
}

/**
 * vma_to_resize, in its order: no VMA at addr (-EFAULT); old_len 0 of a private mapping
 * (-EINVAL: only shared ones can be duplicated); MREMAP_DONTUNMAP of a VM_DONTEXPAND or
 * VM_PFNMAP VMA (-EINVAL); the old range past the VMA (-EFAULT); then, for growth, an offset
 * that overflows (-EINVAL), a VMA that may not grow (-EFAULT), RLIMIT_MEMLOCK for a locked one
 * (-EAGAIN), the address space limits (-ENOMEM).
 */
function vma_to_resize(m: Mremap, addr: number, old_len64: bigint, new_len64: bigint): Vma | number {
  const { t, mm } = m;
  const vma = mm.vmas.vma_lookup(addr);
  if (!vma) return -EFAULT;
  if (!old_len64 && !(vma.vm_flags & (VM_SHARED | VM_MAYSHARE))) return -EINVAL;
  if (m.flags & MREMAP_DONTUNMAP && vma.vm_flags & (VM_DONTEXPAND | VM_PFNMAP)) return -EINVAL;
  if (old_len64 > BigInt(vma.vm_end - addr)) return -EFAULT;
  if (new_len64 === old_len64) return vma;
  const pgoff = BigInt((addr - vma.vm_start) / PAGE_SIZE + vma.vm_pgoff);
  if (BigInt.asUintN(64, pgoff + (new_len64 >> 12n)) < pgoff) return -EINVAL;
  if (vma.vm_flags & (VM_DONTEXPAND | VM_PFNMAP)) return -EFAULT;
  const grow = new_len64 - old_len64;
  // Number(grow) may round above 2^53; mlock_future_ok only compares it with the limit.
  if (!mlock_future_ok(t, mm, vma.vm_flags, Number(grow))) return -EAGAIN;
  if (!may_expand_vm(t, mm, vma.vm_flags, Number(grow >> 12n))) return -ENOMEM;
  return vma;
}

/** vma_expandable: the VMA can grow by `delta` in place: no overflow, nothing in the way, and within user space (get_unmapped_area with MAP_FIXED). */
function vma_expandable(k: Kernel, mm: MmStruct, vma: Vma, delta: number): boolean {
  const end = vma.vm_end + delta;
  if (end > mm.task_size) return false;
  if (mm.vmas.find_vma_intersection(vma.vm_end, end)) return false;
  return get_unmapped_area(k, mm, vma.vm_start, end - vma.vm_start, true, false, false) >= 0;
}

/**
 * mremap_to (MREMAP_FIXED or MREMAP_DONTUNMAP), in its order: a misaligned new_addr, a new range
 * past TASK_SIZE or overlapping the old one (-EINVAL); too many VMAs (-ENOMEM); MREMAP_FIXED
 * unmaps the new range; a shrink unmaps the old tail first; vma_to_resize; MREMAP_DONTUNMAP's
 * address space check (the old VMA stays: -ENOMEM); the new address (get_unmapped_area, fixed
 * for MREMAP_FIXED, else new_addr as a hint); then move_vma.
 */
function* mremap_to(m: Mremap, addr: number, old_len64: bigint, newAddr64: bigint, new_len64: bigint): KSteps<number> {
  const { k, mm } = m;
  if (newAddr64 & 0xfffn) return -EINVAL;
  const taskSize = BigInt(mm.task_size);
  if (new_len64 > taskSize || newAddr64 > taskSize - new_len64) return -EINVAL;
  if (BigInt(addr) + old_len64 > newAddr64 && newAddr64 + new_len64 > BigInt(addr)) return -EINVAL;
  if (mm.vmas.length + 2 >= DEFAULT_MAX_MAP_COUNT - 3) return -ENOMEM;
  let new_addr = Number(newAddr64);
  const new_len = Number(new_len64);
  if (m.flags & MREMAP_FIXED) {
    const r = yield* do_vmi_munmap(k, m.pc, mm, new_addr, new_addr + new_len);
    if (r) return r;
  }
  if (old_len64 > new_len64) {
    const r = yield* munmap_range(m, BigInt(addr) + new_len64, old_len64 - new_len64);
    if (r) return r;
    old_len64 = new_len64;
  }
  const vma = vma_to_resize(m, addr, old_len64, new_len64);
  if (typeof vma === 'number') return vma;
  const old_len = Number(old_len64);
  if (m.flags & MREMAP_DONTUNMAP && !may_expand_vm(m.t, mm, vma.vm_flags, old_len / PAGE_SIZE)) return -ENOMEM;
  const ret = get_unmapped_area(k, mm, new_addr, new_len, (m.flags & MREMAP_FIXED) !== 0, false, vma.shadowStack);
  if (ret < 0) return ret;
  // __get_unmapped_area: security_mmap_addr (no CAP_SYS_RAWIO below mmap_min_addr).
  if (ret < k.options.mmap_min_addr) return -EPERM;
  if (!(m.flags & MREMAP_FIXED)) new_addr = ret;
  return yield* move_vma(m, vma, addr, old_len, new_len, new_addr);
}

/**
 * move_vma: too many VMAs (-ENOMEM); the charge of a VM_ACCOUNT VMA's growth (all of new_len
 * with MREMAP_DONTUNMAP; -ENOMEM); a new VMA at new_addr (copy_vma: the same flags, key, object,
 * anon_vma and page offset); the page tables moved (move_page_tables; a failure moves them back
 * and gives -ENOMEM with the new VMA unmapped). Then the old range: with MREMAP_DONTUNMAP it
 * stays mapped, empty, unlocked (and without its anon_vma if the whole VMA moved); otherwise it
 * is unmapped, its VM_ACCOUNT charge kept for the new VMA. locked_vm gains new_len for a locked
 * VMA, whose growth the caller populates.
 */
function* move_vma(m: Mremap, vma: Vma, old_addr: number, old_len: number, new_len: number, new_addr: number): KSteps<number> {
  const { k, mm } = m;
  if (mm.vmas.length >= DEFAULT_MAX_MAP_COUNT - 3) return -ENOMEM;
  const dontunmap = (m.flags & MREMAP_DONTUNMAP) !== 0;
  const to_account = (dontunmap ? new_len : new_len - old_len) / PAGE_SIZE;
  const vm_flags = vma.vm_flags;
  if (vm_flags & VM_ACCOUNT) {
    if (to_account > k.totalram_pages) return -ENOMEM;
    mm.committed += to_account;
  }
  // copy_vma
  const new_pgoff = vma.vm_pgoff + (old_addr - vma.vm_start) / PAGE_SIZE;
  const new_vma = vma.dup();
  new_vma.vm_start = new_addr;
  new_vma.vm_end = new_addr + new_len;
  new_vma.vm_pgoff = new_pgoff;
  new_vma.anon_vma = vma.anon_vma;
  mm.vmas.insert(new_vma);
  const moved = yield* move_page_tables(m, vma, old_addr, new_addr, old_len);
  let err = 0;
  let vmaAfter = vma;
  if (moved < old_len) {
    // The tables moved so far go back; the new VMA is the one unmapped below.
    err = -ENOMEM;
    yield* move_page_tables(m, new_vma, new_addr, old_addr, moved);
    vmaAfter = new_vma;
    old_addr = new_addr;
    old_len = new_len;
  } else mremap_userfaultfd_prep(new_vma);
  // The charge stays with the new VMA: the old range is unmapped without giving it back.
  let account_start = false;
  let account_end = false;
  if (vm_flags & VM_ACCOUNT && !dontunmap) {
    vmaAfter.vm_flags &= ~VM_ACCOUNT;
    if (vmaAfter.vm_start < old_addr) account_start = true;
    if (vmaAfter.vm_end > old_addr + old_len) account_end = true;
  }
  vm_stat_account(mm, vmaAfter.vm_flags, new_len / PAGE_SIZE, vmaAfter.shadowStack);
  if (!err && dontunmap) {
    vma.vm_flags &= ~VM_LOCKED_MASK;
    // unlink_anon_vmas: the old VMA, wholly moved, gets a new anon_vma at its next fault.
    if (vma.vm_start === old_addr && vma.vm_end === old_addr + old_len) vma.anon_vma = null;
    return new_addr;
  }
  const r = yield* do_vmi_munmap(k, m.pc, mm, old_addr, old_addr + old_len);
  if (r < 0) {
    if (vm_flags & VM_ACCOUNT && !dontunmap) mm.committed += old_len / PAGE_SIZE;
    account_start = account_end = false;
  }
  if (vm_flags & VM_LOCKED) {
    mm.locked_vm += new_len / PAGE_SIZE;
    m.locked = true;
    m.new_addr = new_addr;
  }
  // The parts of the old VMA that stay keep their charge.
  if (account_start) {
    const p = mm.vmas.prevOf(old_addr);
    if (p && p.vm_end === old_addr) p.vm_flags |= VM_ACCOUNT;
  }
  if (account_end) {
    const n = mm.vmas.find_vma(old_addr + old_len);
    if (n && n.vm_start === old_addr + old_len) n.vm_flags |= VM_ACCOUNT;
  }
  if (!err && vmaAfter === vma) {
    // copy_vma's merge: the new VMA joins a neighbour it can.
    if (!new_vma.shmem && mm.vmas.list.includes(new_vma)) mm.vmas.mergeAround(new_vma);
  }
  return err || new_addr;
}

/**
 * move_page_tables over [old_addr, old_addr + len): for each PTE table of the old range
 * (get_old_pmd: none, nothing to move), the new range's table is allocated (a failure ends the
 * move: the bytes moved so far are returned) and move_ptes moves the entries. Returns the bytes
 * covered.
 */
function* move_page_tables(m: Mremap, vma: Vma, old_addr: number, new_addr: number, len: number): KSteps<number> {
  const { mm } = m;
  const old_end = old_addr + len;
  let done = 0;
  for (let extent = 0; old_addr < old_end; old_addr += extent, new_addr += extent, done += extent) {
    yield* cond_resched(m.k, m.pc, m.t);
    // get_extent: up to the end of the old PMD and of the new one.
    extent = Math.min(pmd_addr_end(old_addr, old_end), old_addr + (pmd_addr_end(new_addr, new_addr + (old_end - old_addr)) - new_addr)) - old_addr;
    if (mm.pgtables.pteTable(old_addr, false) < 0) continue;
    if (mm.pgtables.pteTable(new_addr, true) < 0) break;
    yield* move_ptes(m, vma, old_addr, old_addr + extent, new_addr);
  }
  return Math.min(done, len);
}

/**
 * move_ptes over [old_addr, old_end) (one PTE table) of `vma` to new_addr (one PTE table): under
 * the page-table lock, each non-empty old entry is taken by a locked exchange
 * (ptep_get_and_clear, a step) and written into the new table (set_pte_at, a step), without its
 * uffd-wp bit if the VMA is registered with a userfaultfd lacking UFFD_FEATURE_EVENT_REMAP
 * (vma_has_uffd_without_event_remap; swap entries' too; there are no PTE markers); if a present entry moved, the
 * old range is flushed on every CPU of the mm before the lock is dropped (force_flush →
 * flush_tlb_range). An empty entry is skipped without a step (under the lock nothing fills it,
 * and the hardware never writes an empty entry).
 */
function* move_ptes(m: Mremap, vma: Vma, old_addr: number, old_end: number, new_addr: number): KSteps<void> {
  const { k, pc, t, mm } = m;
  const mem = k.machine.mem;
  const need_clear_uffd_wp = vma_has_uffd_without_event_remap(vma);
  const p = __pte();
  yield* spin_lock_ptl(pc, mm, t);
  const old_table = mm.pgtables.pteTable(old_addr, false);
  const new_table = mm.pgtables.pteTable(new_addr, false);
  let force_flush = false;
  for (let va = old_addr, nva = new_addr; va < old_end; va += PAGE_SIZE, nva += PAGE_SIZE) {
    const i = pgtableIndex(va, 1);
    const j = pgtableIndex(nva, 1);
    if (pte_none(mem.readLo(old_table, i), mem.readHi(old_table, i))) continue;
    pc.touch = old_table * 4096 + i * 8;
    yield STEP_ATOMIC;
    // ptep_get_and_clear: whatever the hardware set up to now goes with the entry.
    p.lo = mem.readLo(old_table, i);
    p.hi = mem.readHi(old_table, i);
    mem.write64(old_table, i, 0, 0);
    if (pte_present(p.lo)) force_flush = true;
    // A registration without UFFD_FEATURE_EVENT_REMAP does not follow the move: neither do the uffd-wp bits.
    if (need_clear_uffd_wp) {
      if (pte_present(p.lo)) pte_clear_uffd_wp(p);
      else pte_swp_clear_uffd_wp(p);
    }
    pc.touch = new_table * 4096 + j * 8;
    yield STEP_WRITE;
    mem.write64(new_table, j, p.lo, p.hi);
  }
  if (force_flush) yield* flush_tlb_mm_range(k, pc, mm, old_addr, old_end, 12, false);
  yield* spin_unlock_ptl(pc, mm);
}
