/**
 * mincore(2) (mm/mincore.c): which pages of a range are resident, one byte per page written
 * to the user's vector (bit 0: resident).
 *
 * The checks in Linux's order: a start not page-aligned is -EINVAL; a range that is not user
 * space (access_ok) is -ENOMEM; a vector that is not user space is -EFAULT. Then, up to a
 * page's worth of entries at a time, under mmap_lock for reading (do_mincore): no VMA at the
 * current address is -ENOMEM (after the earlier parts were copied out); otherwise the part of
 * the range in that VMA is walked under the page-table lock (mincore_pte_range): a present
 * entry is 1; a swap entry is 1 only if its slot's folio is in the swap cache (mincore_page on
 * the swap address space); an empty entry, or no PTE table, is 0 for anonymous memory and, for
 * shmem, 1 if the object has the page (mincore_page on its mapping). The bytes go out with
 * copy_to_user after mmap_lock is dropped; a fault there is -EFAULT.
 */
import type { Kernel, PerCpu } from './kernel.js';
import { spin_lock_ptl, spin_unlock_ptl } from './memory.js';
import { mmap_read_lock, mmap_read_unlock } from './mmap.js';
import { pgtableIndex, pmd_addr_end, pte_none, pte_present, swp_offset } from './pgtable.js';
import { STEP_READ, type KPath, type KSteps } from './steps.js';
import type { Task } from './task.js';
import { access_ok, copy_to_user } from './uaccess.js';
import { EFAULT, EINVAL, ENOMEM } from './uapi.js';
import type { Vma } from './vma.js';

const PAGE_SIZE = 4096;

/** sys_mincore(start, len, vec). */
export function sys_mincore(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): number | KPath {
  const [start, len, vec] = a;
  if (start & 0xfffn) return -EINVAL;
  if (!access_ok_big(t, start, len)) return -ENOMEM;
  // pages = len >> PAGE_SHIFT, plus one for a partial page: this also avoids overflows.
  const pages = Number(len >> 12n) + (len & 0xfffn ? 1 : 0);
  if (!access_ok_big(t, vec, BigInt(pages))) return -EFAULT;
  return (function* (): KPath {
    let left = pages;
    let at = Number(start);
    let out = vec;
    while (left > 0) {
      yield* mmap_read_lock(k, pc, t.mm!);
      const tmp = yield* do_mincore(k, pc, t, at, Math.min(left, PAGE_SIZE));
      yield* mmap_read_unlock(pc, t.mm!);
      if (typeof tmp === 'number') return tmp;
      if (!(yield* copy_to_user(k, pc, t, out, tmp))) return -EFAULT;
      left -= tmp.length;
      out += BigInt(tmp.length);
      at += tmp.length * PAGE_SIZE;
    }
    return 0;
  })();
}

/** access_ok for a 64-bit size: [addr, addr + size) lies below TASK_SIZE_MAX. */
function access_ok_big(t: Task, addr: bigint, size: bigint): boolean {
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) return false;
  return access_ok(t, addr, Number(size));
}

/**
 * do_mincore: the residency of up to `pages` pages from `addr`, as far as the VMA holding
 * `addr` goes; -ENOMEM when no VMA holds it.
 */
function* do_mincore(k: Kernel, pc: PerCpu, t: Task, addr: number, pages: number): KSteps<Uint8Array | number> {
  const mm = t.mm!;
  const vma = mm.vmas.vma_lookup(addr);
  if (!vma) return -ENOMEM;
  const end = Math.min(vma.vm_end, addr + pages * PAGE_SIZE);
  const vec = new Uint8Array((end - addr) / PAGE_SIZE);
  // walk_page_range with mincore_walk_ops: each PTE table under its lock; a missing one is a hole.
  for (let va = addr; va < end; va = pmd_addr_end(va, end)) {
    const to = pmd_addr_end(va, end);
    if (mm.pgtables.pteTable(va, false) < 0) {
      for (let p = va; p < to; p += PAGE_SIZE) vec[(p - addr) / PAGE_SIZE] = mincore_unmapped(vma, p);
      continue;
    }
    yield* spin_lock_ptl(pc, mm, t);
    const table = mm.pgtables.pteTable(va, false);
    pc.touch = table * 4096 + pgtableIndex(va, 1) * 8;
    yield STEP_READ;
    mincore_pte_range(k, vma, table, va, to, vec, (va - addr) / PAGE_SIZE);
    yield* spin_unlock_ptl(pc, mm);
  }
  return vec;
}

/**
 * mincore_pte_range's reading of the entries of PTE table `table` for [start, end), into
 * `vec` from `at`; no step of its own (the caller holds the lock and takes one read step, as
 * zap takes one for a table's entries).
 */
function mincore_pte_range(k: Kernel, vma: Vma, table: number, start: number, end: number, vec: Uint8Array, at: number): void {
  const mem = k.machine.mem;
  for (let va = start, i = pgtableIndex(start, 1); va < end; va += PAGE_SIZE, i++, at++) {
    const lo = mem.readLo(table, i);
    const hi = mem.readHi(table, i);
    if (pte_none(lo, hi)) vec[at] = mincore_unmapped(vma, va);
    else if (pte_present(lo)) vec[at] = 1;
    // A swap entry: mincore_page on the swap cache.
    else vec[at] = k.swap.cache.has(swp_offset(lo, hi)) ? 1 : 0;
  }
}

/** __mincore_unmapped_range for one page: anonymous memory is not resident; a shmem page is if its object has it. */
function mincore_unmapped(vma: Vma, va: number): number {
  if (!vma.shmem) return 0;
  return vma.shmem.pages.has(vma.vm_pgoff + (va - vma.vm_start) / PAGE_SIZE) ? 1 : 0;
}
