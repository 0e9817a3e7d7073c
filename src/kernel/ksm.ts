/**
 * Kernel samepage merging's madvise side (mm/ksm.c, CONFIG_KSM as in Debian's 6.12):
 * MADV_MERGEABLE and MADV_UNMERGEABLE set and clear VM_MERGEABLE on the VMAs (ksm_madvise).
 *
 * XXX: the model has no ksmd: VM_MERGEABLE is a flag that smaps shows ("mg") and that keeps
 * VMAs from merging with unmarked neighbours, and nothing ever merges a page. So __ksm_enter
 * (registering the mm with ksmd, MMF_VM_MERGEABLE, which fork's ksm_fork copies to the child)
 * is not modelled (its only failure, -ENOMEM, cannot happen), and MADV_UNMERGEABLE has nothing
 * to unmerge (unmerge_ksm_pages would find no KSM page and return 0). No prctl, so no
 * PR_SET_MEMORY_MERGE (MMF_VM_MERGE_ANY).
 */
import { MADV_MERGEABLE } from './uapi.js';
import { VM_DONTEXPAND, VM_IO, VM_MAYSHARE, VM_MERGEABLE, VM_MIXEDMAP, VM_PFNMAP, VM_SHARED, type Vma } from './vma.js';

/**
 * vma_ksm_compatible: KSM leaves shared, PFN, I/O, non-expandable and mixed mappings alone
 * (VM_HUGETLB, VM_DROPPABLE and DAX, which it also refuses, the model does not have).
 */
export function vma_ksm_compatible(vma: Vma): boolean {
  return !(vma.vm_flags & (VM_SHARED | VM_MAYSHARE | VM_PFNMAP | VM_IO | VM_DONTEXPAND | VM_MIXEDMAP));
}

/**
 * ksm_madvise for `advice` on `vma`: the new flags. MADV_MERGEABLE adds VM_MERGEABLE unless the
 * VMA has it already or is not KSM-compatible (the advice is then ignored: 0, flags unchanged);
 * MADV_UNMERGEABLE clears it (ignored when not set). Never fails in the model (see the header).
 */
export function ksm_madvise(vma: Vma, advice: number, vm_flags: number): number {
  if (advice === MADV_MERGEABLE) {
    if (vma.vm_flags & VM_MERGEABLE) return vm_flags;
    if (!vma_ksm_compatible(vma)) return vm_flags;
    // __ksm_enter(mm) when !MMF_VM_MERGEABLE: not modelled.
    return vm_flags | VM_MERGEABLE;
  }
  if (!(vm_flags & VM_MERGEABLE)) return vm_flags;
  // unmerge_ksm_pages(vma, start, end, true) when vma->anon_vma: no KSM page to break.
  return vm_flags & ~VM_MERGEABLE;
}
