/**
 * The end of an address space (kernel/fork.c mmput and mmdrop, mm/mmap.c exit_mmap):
 * mmput drops a user; the last one tears down the mappings and page tables and flushes the
 * TLBs that might still hold them; mmdrop drops a reference to the struct, and the last one
 * frees the PGD. CPUs that have the mm loaded (lazily, after the last thread left) hold a
 * reference, so the PGD outlives every CR3 that points at it.
 */
import type { ShmemObject } from './vma.js';
import type { Kernel, PerCpu } from './kernel.js';
import type { MmStruct } from './mm.js';
import { destroy_context_ldt, free_ldt_pgtables } from './ldt.js';
import { kindex } from './layout.js';
import { boot_pgd_entry } from './pti.js';
import type { KPath } from './steps.js';
import { tlb_finish_mmu, tlb_gather_mmu_fullmm, unmap_page_range } from './zap.js';

/** Lock ids for `touch`: negative, four per mm (mmap_lock, page_table_lock, ldt_usr_sem, context.lock). */
export function mmapLockId(mm: MmStruct): number {
  return -(mm.ctx_id * 4 + 1);
}
export function ptlId(mm: MmStruct): number {
  return -(mm.ctx_id * 4 + 2);
}
export function ldtSemId(mm: MmStruct): number {
  return -(mm.ctx_id * 4 + 3);
}

/** mmget_not_zero: one more user of `mm` while it still has one (false once its last user is gone). */
export function mmget_not_zero(mm: MmStruct): boolean {
  if (mm.mm_users === 0) return false;
  mm.mm_users++;
  return true;
}

/** mmput: one user fewer; the last runs exit_mmap and drops the users' reference. */
export function* mmput(k: Kernel, pc: PerCpu, mm: MmStruct): KPath {
  if (--mm.mm_users > 0) return 0;
  yield* exit_mmap(k, pc, mm);
  mmdrop(k, mm);
  return 0;
}

/**
 * exit_mmap: unmaps every VMA (unmap_vmas with a full-mm gather), frees the user page tables,
 * flushes the whole mm on every CPU in its cpumask (lazy ones included: tables were freed),
 * then frees the gathered pages (tlb_finish_mmu) and forgets the VMAs.
 */
export function* exit_mmap(k: Kernel, pc: PerCpu, mm: MmStruct): KPath {
  // No task uses the mm any more; only CPUs in lazy TLB mode may still have it loaded.
  const tlb = tlb_gather_mmu_fullmm(mm);
  for (const vma of mm.vmas.list) yield* unmap_page_range(k, pc, tlb, vma.vm_start, vma.vm_end);
  for (const vma of mm.vmas.list) if (vma.shmem) release_shmem(k, vma.shmem);
  mm.pgtables.freeUserTables();
  // arch_exit_mmap -> ldt_arch_exit_mmap: the LDT remap's page tables (the ldt_struct stays until mmdrop).
  free_ldt_pgtables(k, mm);
  // The page tables of the PTI stacks' slot (entry_stack per_task), emptied as each task left.
  if (k.pti) {
    const i = kindex(k.layout.vmalloc_base, k.levels);
    mm.pgtables.freeKernelSlot(i, boot_pgd_entry(k, i));
  }
  tlb.freed_tables = true;
  yield* tlb_finish_mmu(k, pc, tlb);
  mm.vmas.list.length = 0;
  mm.committed = 0;
  mm.dead = true;
  return 0;
}

/** Drops one mapping's hold on a shmem object; the last frees its pages. */
export function release_shmem(k: Kernel, obj: ShmemObject): void {
  if (--obj.users > 0) {
    // A file's page cache: an unlinked file nobody has open goes with its last mapping.
    if (obj.file) obj.file.vfs.evictIfUnused(obj.file);
    return;
  }
  for (const pfn of obj.pages.values()) k.pages.put_page(pfn);
  obj.pages.clear();
}

/** mmdrop: one reference to the struct fewer; the last frees the PGD (__mmdrop, pgd_free). */
export function mmdrop(k: Kernel, mm: MmStruct): void {
  if (--mm.mm_count > 0) return;
  k.mms.delete(mm);
  destroy_context_ldt(k, mm);
  if (mm.pgtables.userPgd >= 0) k.pages.free_pages_order1(mm.pgd);
  else k.pages.put_page(mm.pgd);
}
