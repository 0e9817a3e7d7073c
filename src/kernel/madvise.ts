/**
 * madvise (mm/madvise.c) for MADV_DONTNEED and MADV_FREE on anonymous memory: the argument
 * checks in Linux's order, then per VMA. MADV_FREE (madvise_free_pte_range) makes each
 * exclusive anonymous page clean and old (its PTE cleared, rewritten with D and A off, and
 * flushed): the kernel may later drop the page unless a write sets D again. That makes D the
 * only record that the program stored into the page, which is why losing a D bit loses data
 * (seed 003).
 *
 * XXX: the other advice values are -EINVAL; the lazy-free list and reclaim (which would drop
 * a clean lazy-free page) are not modelled.
 */
import { PTE_P } from '../hw/pte.js';
import type { Kernel, PerCpu } from './kernel.js';
import { spin_lock_ptl, spin_unlock_ptl } from './memory.js';
import { tlb_finish_mmu, tlb_gather_mmu, unmap_page_range } from './zap.js';
import { mmap_read_lock, mmap_read_unlock } from './mmap.js';
import { PG_anon, PG_anon_exclusive } from './page.js';
import { __pte, pte_mkclean, pte_mkold, pte_pfn, _PAGE_SPECIAL } from './pgtable.js';
import { STEP_ATOMIC, STEP_WRITE, type KPath, type KSteps } from './steps.js';
import type { Task } from './task.js';
import { flush_tlb_mm_range } from './tlbflush.js';
import { EINVAL, ENOMEM, MADV_DONTNEED, MADV_FREE } from './uapi.js';
import { VM_LOCKED } from './vma.js';


/**
 * madvise(start, len_in, behavior): -EINVAL for advice the model lacks, a misaligned start,
 * a length that overflows when page-aligned, or an end below start; 0 for an empty range.
 * Then, under mmap_lock for reading, each VMA in the range; a hole gives -ENOMEM after the
 * mapped parts are done. MADV_FREE needs private anonymous, unlocked VMAs (-EINVAL).
 */
export function sys_madvise(k: Kernel, pc: PerCpu, t: Task, a: bigint[]): number | KPath {
  const [start, lenIn] = a;
  const behavior = Number(BigInt.asIntN(32, a[2]));
  if (behavior !== MADV_DONTNEED && behavior !== MADV_FREE) return -EINVAL;
  if (start & 0xfffn) return -EINVAL;
  const len = BigInt.asUintN(64, (lenIn + 0xfffn) & ~0xfffn);
  if (lenIn && !len) return -EINVAL;
  const end = start + len;
  if (end > 0xffffffffffffffffn) return -EINVAL;
  if (end === start) return 0;
  const mm = t.mm!;
  return (function* (): KPath {
    yield* mmap_read_lock(pc, mm);
    let err = 0;
    let unmapped = false;
    const s = Number(start);
    const e = end > BigInt(mm.task_size) ? mm.task_size : Number(end);
    let at = s;
    for (const vma of mm.vmas.list.filter((v) => v.vm_end > s && v.vm_start < e)) {
      if (vma.vm_start > at) unmapped = true;
      const from = Math.max(s, vma.vm_start);
      const to = Math.min(e, vma.vm_end);
      at = to;
      if (behavior === MADV_DONTNEED) {
        if (vma.vm_flags & VM_LOCKED) {
          err = -EINVAL;
          break;
        }
        // madvise_dontneed_single_vma: zap_page_range_single.
        const tlb = tlb_gather_mmu(mm);
        yield* unmap_page_range(k, pc, tlb, from, to);
        yield* tlb_finish_mmu(k, pc, tlb);
        continue;
      }
      if (vma.shmem || vma.vm_flags & VM_LOCKED) {
        err = -EINVAL;
        break;
      }
      yield* madvise_free_pte_range(k, pc, t, from, to);
    }
    if (!err && (at < e || unmapped)) err = -ENOMEM;
    yield* mmap_read_unlock(pc, mm);
    return err;
  })();
}

/**
 * madvise_free_pte_range over [start, end) of one VMA: each present PTE of an anonymous page
 * mapped only here (exclusive) that is young or dirty is cleared (ptep_get_and_clear_full, a
 * locked exchange), made old and clean, and set again; then the range is flushed. Pages shared
 * with another mm (after fork) are left alone.
 */
function* madvise_free_pte_range(k: Kernel, pc: PerCpu, t: Task, start: number, end: number): KSteps<void> {
  const mm = t.mm!;
  const mem = k.machine.mem;
  yield* spin_lock_ptl(pc, mm, t);
  let first = -1;
  let last = -1;
  for (let va = start; va < end; va += 4096) {
    const table = mm.pgtables.pteTable(va, false);
    if (table < 0) continue;
    const i = Math.floor(va / 4096) % 512;
    const lo = mem.readLo(table, i);
    const hi = mem.readHi(table, i);
    if (!(lo & PTE_P) || lo & _PAGE_SPECIAL) continue;
    const pfn = pte_pfn(lo, hi);
    if (!(k.pages.flags[pfn] & PG_anon) || !(k.pages.flags[pfn] & PG_anon_exclusive) || k.pages.mapcount[pfn] !== 1) continue;
    pc.touch = table * 4096 + i * 8;
    yield STEP_ATOMIC;
    // ptep_get_and_clear_full: whatever the hardware set up to now is in the value taken.
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
  yield* spin_unlock_ptl(pc, mm);
  if (first >= 0) yield* flush_tlb_mm_range(k, pc, mm, first, last + 4096, 12, false);
}
