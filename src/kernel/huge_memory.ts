/**
 * Whether a VMA may have transparent huge pages (mm/huge_memory.c __thp_vma_allowable_orders,
 * include/linux/huge_mm.h thp_vma_allowable_orders, mm/shmem.c shmem_allowable_huge_orders),
 * for the PMD order only, with Debian's 6.12 settings: CONFIG_TRANSPARENT_HUGEPAGE_MADVISE
 * (transparent_hugepage/enabled is "madvise"), hugepages-2048kB/enabled "inherit" and the
 * other anonymous sizes "never" (huge_anon_orders_inherit = BIT(PMD_ORDER)), shmem_enabled
 * "never" and tmpfs mounted without huge=.
 *
 * XXX: the model has no huge pages: a fault in an eligible VMA maps small pages, as Linux does
 * when the huge page cannot be allocated (do_huge_pmd_anonymous_page's VM_FAULT_FALLBACK). No
 * sysfs knobs, no prctl PR_SET_THP_DISABLE (MMF_DISABLE_THP), no hugetlb or DAX.
 */
import { VM_HUGEPAGE, VM_NOHUGEPAGE, VM_SPECIAL, type Vma } from './vma.js';

/** HPAGE_PMD_SIZE. */
export const HPAGE_PMD_SIZE = 2 ** 21;
/** HPAGE_PMD_NR. */
export const HPAGE_PMD_NR = 512;

/** vma_is_anonymous: no object behind the VMA (a private /dev/zero mapping is anonymous too: mmap_zero's vma_set_anonymous). */
export function vma_is_anonymous(vma: Vma): boolean {
  return !vma.shmem;
}

/**
 * thp_vma_suitable_order for the PMD order: the huge page holding `addr` lies within the VMA
 * and, for a file, the VMA's start and offset agree modulo the huge page.
 */
export function thp_vma_suitable_pmd(vma: Vma, addr: number): boolean {
  if (!vma_is_anonymous(vma) && ((vma.vm_start / 4096 - vma.vm_pgoff) % HPAGE_PMD_NR + HPAGE_PMD_NR) % HPAGE_PMD_NR !== 0) return false;
  const haddr = Math.floor(addr / HPAGE_PMD_SIZE) * HPAGE_PMD_SIZE;
  return haddr >= vma.vm_start && haddr + HPAGE_PMD_SIZE <= vma.vm_end;
}

/**
 * thp_vma_allowable_order(vma, vm_flags, tva_flags, PMD_ORDER), with TVA_SMAPS as `smaps` and
 * TVA_ENFORCE_SYSFS as `enforce_sysfs` (never TVA_IN_PF). In its order: with the sysfs settings
 * enforced, an anonymous VMA needs VM_HUGEPAGE (enabled=madvise); VM_NOHUGEPAGE refuses;
 * outside smaps a VM_SPECIAL VMA refuses (VM_NO_KHUGEPAGED); the VMA must hold an aligned huge
 * page (thp_vma_suitable_order at vm_end - HPAGE_PMD_SIZE); a shmem or tmpfs VMA is then
 * allowed only when the sysfs settings are not enforced (shmem_allowable_huge_orders with
 * shmem_huge_force: MADV_COLLAPSE); an anonymous VMA without an anon_vma only for smaps.
 */
export function thp_vma_allowable_pmd(vma: Vma, vm_flags: number, smaps: boolean, enforce_sysfs: boolean): boolean {
  if (enforce_sysfs && vma_is_anonymous(vma) && !(vm_flags & VM_HUGEPAGE)) return false;
  // vma_thp_disabled (MMF_DISABLE_THP has no prctl to set it in the model).
  if (vm_flags & VM_NOHUGEPAGE) return false;
  if (!smaps && vm_flags & VM_SPECIAL) return false;
  if (!thp_vma_suitable_pmd(vma, vma.vm_end - HPAGE_PMD_SIZE)) return false;
  // shmem_file(vma->vm_file): shmem_huge_global_enabled is true only when forced (shmem_huge
  // SHMEM_HUGE_NEVER, no huge= mount option), and then the PMD order is allowed for tmpfs
  // files and anonymous shared memory (huge_shmem_orders_inherit) alike.
  if (!vma_is_anonymous(vma)) return !enforce_sysfs;
  // vma_is_temporary_stack: only during execve's stack setup, never seen here.
  if (!vma.anon_vma) return smaps;
  return true;
}
