/**
 * The madvise side of khugepaged (mm/khugepaged.c): MADV_HUGEPAGE and MADV_NOHUGEPAGE
 * (hugepage_madvise) and MADV_COLLAPSE (madvise_collapse), with 6.12's checks and results.
 *
 * MADV_COLLAPSE scans each aligned huge page of the range as madvise_collapse does
 * (hpage_collapse_scan_pmd for anonymous memory, under mmap_lock for reading, the PTE table read
 * under its lock in one step; hpage_collapse_scan_file for shmem, with mmap_lock dropped), and
 * answers each refusal as Linux does (-EINVAL, -EAGAIN, -EBUSY). XXX: the model has no huge
 * pages, so where Linux would collapse (collapse_huge_page, collapse_file) the huge page's
 * allocation fails (alloc_charge_folio's SCAN_ALLOC_HUGE_PAGE_FAIL): -ENOMEM, with mmap_lock
 * dropped and taken again, where Linux usually succeeds. khugepaged itself (khugepaged_enter_vma,
 * the background scan) is not modelled: MADV_HUGEPAGE only sets the flag.
 */
import type { Kernel, PerCpu } from './kernel.js';
import { spin_lock_ptl, spin_unlock_ptl } from './memory.js';
import type { MmStruct } from './mm.js';
import { mmap_read_lock, mmap_read_unlock } from './mmap.js';
import { PG_anon, PG_locked, PG_lru, PG_swapcache } from './page.js';
import { pgtableIndex, pte_none, pte_pfn, pte_present, pte_swp_uffd_wp, pte_uffd_wp, pte_write, _PAGE_SPECIAL } from './pgtable.js';
import { STEP_READ, type KSteps } from './steps.js';
import type { Task } from './task.js';
import { EAGAIN, EBUSY, EINVAL, ENOMEM, MADV_HUGEPAGE } from './uapi.js';
import { HPAGE_PMD_NR, HPAGE_PMD_SIZE, thp_vma_allowable_pmd, thp_vma_suitable_pmd, vma_is_anonymous } from './huge_memory.js';
import { VM_HUGEPAGE, VM_NOHUGEPAGE, VM_UFFD_MISSING, VM_UFFD_WP, type Vma } from './vma.js';

/**
 * hugepage_madvise: MADV_HUGEPAGE sets VM_HUGEPAGE and clears VM_NOHUGEPAGE, MADV_NOHUGEPAGE
 * the reverse. Returns the new flags (never an error on x86). XXX: khugepaged_enter_vma
 * (registering the mm with khugepaged) is not modelled.
 */
export function hugepage_madvise(advice: number, vm_flags: number): number {
  if (advice === MADV_HUGEPAGE) return (vm_flags & ~VM_NOHUGEPAGE) | VM_HUGEPAGE;
  return (vm_flags & ~VM_HUGEPAGE) | VM_NOHUGEPAGE;
}

/** enum scan_result, the values madvise_collapse looks at. */
const enum Scan {
  FAIL,
  SUCCEED,
  PMD_NULL,
  PMD_NONE,
  EXCEED_NONE_PTE,
  PTE_UFFD_WP,
  PAGE_RO,
  PAGE_NULL,
  PAGE_COUNT,
  PAGE_LRU,
  PAGE_LOCK,
  PAGE_ANON,
  VMA_NULL,
  VMA_CHECK,
  ADDRESS_RANGE,
  ALLOC_HUGE_PAGE_FAIL,
}

/** madvise_collapse_errno: what a failed collapse tells the caller. */
function madvise_collapse_errno(r: Scan): number {
  switch (r) {
    case Scan.ALLOC_HUGE_PAGE_FAIL:
      return -ENOMEM;
    case Scan.EXCEED_NONE_PTE:
      return -EBUSY;
    case Scan.PAGE_COUNT:
    case Scan.PAGE_LOCK:
    case Scan.PAGE_LRU:
      return -EAGAIN;
    default:
      return -EINVAL;
  }
}

/** userfaultfd_armed: the VMA is registered with a userfaultfd. */
function userfaultfd_armed(vma: Vma): boolean {
  return (vma.vm_flags & (VM_UFFD_MISSING | VM_UFFD_WP)) !== 0;
}

/** The result and whether mmap_lock is still held, of one huge page's scan. */
interface ScanOut {
  result: Scan;
  mmap_locked: boolean;
}

/**
 * hpage_collapse_scan_pmd for the huge page at `address` of anonymous `vma`, mmap_lock held for
 * reading: no PMD table is SCAN_PMD_NULL, an empty PMD entry SCAN_PMD_NONE (the PMD entry read
 * in a step). Then the PTE table under its lock, in one step, each entry in order: a swap entry
 * is skipped unless it carries uffd-wp (SCAN_PTE_UFFD_WP); an empty or zero-page entry is
 * skipped unless the VMA is registered with a userfaultfd (SCAN_EXCEED_NONE_PTE); a uffd-wp
 * entry is SCAN_PTE_UFFD_WP; a special entry SCAN_PAGE_NULL; a page not anonymous
 * SCAN_PAGE_ANON, off the LRU SCAN_PAGE_LRU, locked SCAN_PAGE_LOCK, with references beyond its
 * mappings and the swap cache SCAN_PAGE_COUNT (is_refcount_suitable). With no writable entry,
 * SCAN_PAGE_RO. Otherwise collapse_huge_page drops mmap_lock and fails to allocate.
 */
function* hpage_collapse_scan_pmd(k: Kernel, pc: PerCpu, t: Task, mm: MmStruct, vma: Vma, address: number): KSteps<ScanOut> {
  const mem = k.machine.mem;
  const pages = k.pages;
  // find_pmd_or_thp_or_none: mm_find_pmd, then the PMD entry (pmdp_get_lockless).
  const pmd = mm.pgtables.tableAt(address, 2);
  if (pmd < 0) return { result: Scan.PMD_NULL, mmap_locked: true };
  pc.touch = pmd * 4096 + pgtableIndex(address, 2) * 8;
  yield STEP_READ;
  if (mm.pgtables.pteTable(address, false) < 0) return { result: Scan.PMD_NONE, mmap_locked: true };
  yield* spin_lock_ptl(pc, mm, t);
  const table = mm.pgtables.pteTable(address, false);
  pc.touch = table * 4096;
  yield STEP_READ;
  let result = Scan.FAIL;
  let writable = false;
  let i = 0;
  for (; i < HPAGE_PMD_NR; i++) {
    const lo = mem.readLo(table, i);
    const hi = mem.readHi(table, i);
    if (!pte_none(lo, hi) && !pte_present(lo)) {
      // is_swap_pte (a uffd-wp marker is one too).
      if (pte_swp_uffd_wp(lo)) {
        result = Scan.PTE_UFFD_WP;
        break;
      }
      continue;
    }
    if (pte_none(lo, hi) || pte_pfn(lo, hi) === k.zero_pfn) {
      if (!userfaultfd_armed(vma)) continue;
      result = Scan.EXCEED_NONE_PTE;
      break;
    }
    if (pte_uffd_wp(lo)) {
      result = Scan.PTE_UFFD_WP;
      break;
    }
    if (pte_write(lo, k.userShstk)) writable = true;
    // vm_normal_page
    if (lo & _PAGE_SPECIAL) {
      result = Scan.PAGE_NULL;
      break;
    }
    const pfn = pte_pfn(lo, hi);
    const f = pages.flags[pfn];
    if (!(f & PG_anon)) {
      result = Scan.PAGE_ANON;
      break;
    }
    if (!(f & PG_lru)) {
      result = Scan.PAGE_LRU;
      break;
    }
    if (f & PG_locked) {
      result = Scan.PAGE_LOCK;
      break;
    }
    if (pages.refcount[pfn] !== pages.mapcount[pfn] + (f & PG_swapcache ? 1 : 0)) {
      result = Scan.PAGE_COUNT;
      break;
    }
  }
  if (i === HPAGE_PMD_NR) result = writable ? Scan.SUCCEED : Scan.PAGE_RO;
  yield* spin_unlock_ptl(pc, mm);
  if (result !== Scan.SUCCEED) return { result, mmap_locked: true };
  // collapse_huge_page: mmap_read_unlock, then alloc_charge_folio, which fails in the model.
  yield* mmap_read_unlock(pc, mm);
  return { result: Scan.ALLOC_HUGE_PAGE_FAIL, mmap_locked: false };
}

/**
 * hpage_collapse_scan_file for the huge page at page offset `start` of shmem `vma`'s object,
 * mmap_lock already dropped: each page the object has there (read in one step) must have no
 * reference beyond its mappings and the page cache's (SCAN_PAGE_COUNT); then collapse_file
 * fails to allocate. XXX: the model's shmem pages are not on its LRU flags (Linux's are), so
 * the SCAN_PAGE_LRU check is left out; shmem has no swap in the model.
 */
function* hpage_collapse_scan_file(k: Kernel, pc: PerCpu, vma: Vma, start: number): KSteps<Scan> {
  const obj = vma.shmem!;
  pc.touch = -1;
  yield STEP_READ;
  for (let index = start; index < start + HPAGE_PMD_NR; index++) {
    const pfn = obj.pages.get(index);
    if (pfn === undefined) continue;
    if (k.pages.refcount[pfn] !== k.pages.mapcount[pfn] + 1) return Scan.PAGE_COUNT;
  }
  return Scan.ALLOC_HUGE_PAGE_FAIL;
}

/**
 * hugepage_vma_revalidate with mmap_lock taken again (not khugepaged, so the sysfs settings are
 * not enforced): the VMA at `address` (SCAN_VMA_NULL), holding its huge page
 * (SCAN_ADDRESS_RANGE), still allowed huge pages (SCAN_VMA_CHECK).
 */
function hugepage_vma_revalidate(mm: MmStruct, address: number): Vma | Scan {
  const vma = mm.vmas.find_vma(address);
  if (!vma) return Scan.VMA_NULL;
  if (!thp_vma_suitable_pmd(vma, address)) return Scan.ADDRESS_RANGE;
  if (!thp_vma_allowable_pmd(vma, vma.vm_flags, false, false)) return Scan.VMA_CHECK;
  return vma;
}

/**
 * madvise_collapse over [start, end) of `vma`, mmap_lock held for reading: a VMA that may not
 * have huge pages (thp_vma_allowable_order without the sysfs settings) is -EINVAL. Then each
 * aligned huge page inside the range is scanned (for shmem with mmap_lock dropped, and the VMA
 * looked up again before the next); a result that says "this one cannot" goes on to the next,
 * any other stops. Returns 0 when every huge page of the range was collapsed (none needed:
 * the range starts on a huge-page boundary and holds none) or, as unsigned arithmetic has it,
 * an error when the range holds none and does not start on a boundary; otherwise the last
 * failure's errno. Else `*prev`: `vma`, or null when mmap_lock was dropped. mmap_lock is held
 * again on return.
 */
export function* madvise_collapse(k: Kernel, pc: PerCpu, t: Task, mm: MmStruct, vma: Vma, start: number, end: number): KSteps<number | Vma | null> {
  let prev: Vma | null = vma;
  if (!thp_vma_allowable_pmd(vma, vma.vm_flags, false, false)) return -EINVAL;
  // (lru_add_drain_all: the model's LRU is flags.)
  const hstart = Math.ceil(start / HPAGE_PMD_SIZE) * HPAGE_PMD_SIZE;
  let hend = Math.floor(end / HPAGE_PMD_SIZE) * HPAGE_PMD_SIZE;
  let mmap_locked = true;
  let thps = 0;
  let last_fail = Scan.FAIL;
  let nolock = false;
  for (let addr = hstart; addr < hend; addr += HPAGE_PMD_SIZE) {
    let result: Scan;
    if (!mmap_locked) {
      yield* mmap_read_lock(k, pc, mm);
      mmap_locked = true;
      const v = hugepage_vma_revalidate(mm, addr);
      if (typeof v === 'number') {
        last_fail = v;
        nolock = true;
        break;
      }
      vma = v;
      hend = Math.min(hend, Math.floor(vma.vm_end / HPAGE_PMD_SIZE) * HPAGE_PMD_SIZE);
    }
    if (!vma_is_anonymous(vma)) {
      const pgoff = vma.vm_pgoff + (addr - vma.vm_start) / 4096;
      yield* mmap_read_unlock(pc, mm);
      mmap_locked = false;
      result = yield* hpage_collapse_scan_file(k, pc, vma, pgoff);
    } else {
      const r = yield* hpage_collapse_scan_pmd(k, pc, t, mm, vma, addr);
      result = r.result;
      mmap_locked = r.mmap_locked;
    }
    if (!mmap_locked) prev = null;
    if (result === Scan.SUCCEED) thps++;
    else {
      last_fail = result;
      // The results after which the next huge page is tried.
      if (!(result === Scan.PMD_NULL || result === Scan.PTE_UFFD_WP || result === Scan.PAGE_RO || result === Scan.PAGE_NULL || result === Scan.PAGE_COUNT || result === Scan.PAGE_LOCK || result === Scan.PAGE_LRU)) break;
    }
  }
  if (!nolock && !mmap_locked) yield* mmap_read_lock(k, pc, mm);
  // thps == ((hend - hstart) >> HPAGE_PMD_SHIFT), in unsigned long: hend < hstart never matches.
  const want = hend >= hstart ? (hend - hstart) / HPAGE_PMD_SIZE : -1;
  if (thps === want) return prev;
  return madvise_collapse_errno(last_fail);
}
