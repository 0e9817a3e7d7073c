/**
 * Page faults on user memory (mm/memory.c): handle_mm_fault → handle_pte_fault, which sends
 * an empty PTE to do_pte_missing (do_anonymous_page: the zero page for a read, a zeroed page
 * for a write; do_fault for shmem), a write to a read-only PTE to do_wp_page (wp_page_reuse of
 * an exclusive anonymous page, or wp_page_copy), and anything else to the spurious-fault
 * path that only sets A (and D for a write).
 *
 * Everything a fault needs after a step lives in its `vm_fault`, as in Linux; nothing is kept
 * in the module. The order of steps is 6.12's: the PTE is first read without the lock
 * (ptep_get_lockless), the page-table lock is taken only to change it, and each change is
 * made only if the PTE still holds what was read (pte_same, vmf_pte_changed); otherwise the
 * fault backs out and the access is retried. wp_page_copy drops the lock for the allocation
 * and the copy, and re-takes it before installing the copy, so two faults on one page race as
 * they do in Linux: one installs its copy and the other throws its copy away.
 *
 * The caller holds mmap_lock for reading. XXX: Linux has split page-table locks (one per PTE
 * table); the model has one per mm, which serialises more than Linux does, never less.
 */
import { ModelError } from '../errors.js';
import type { PageFaultOutcome } from './events.js';
import type { Kernel, PerCpu } from './kernel.js';
import type { MmStruct } from './mm.js';
import { ptlId } from './mmput.js';
import { anon_folio_keep_dirty, folio_lock_id, PG_anon, PG_anon_exclusive, PG_locked, PG_lru, PG_NEW_ANON, PG_shmem, PG_swapbacked, PG_swapcache, type PageRefs } from './page.js';
import { folio_free_swap, read_swap_cache_async, swap_cache_get_folio, swap_free, vm_swap_full } from './swap.js';
import {
  pte_dirty,
  __pte, _PAGE_SPECIAL, mk_pte, pte_mkdirty, pte_mksoft_dirty, pte_swp_soft_dirty, pte_mkuffd_wp, pte_swp_uffd_wp, pte_mkwrite, pte_mkyoung, pte_none, pte_pfn, pte_present, pte_protnone, pte_same, pte_set, pte_swp_exclusive, pte_write, swp_offset, swp_type, vm_get_page_prot,
  type pte_t,
} from './pgtable.js';
import { STEP_ATOMIC, STEP_COPY, STEP_LOCK, STEP_READ, STEP_UNLOCK, STEP_WAIT, STEP_WRITE, type KPath, type KSteps } from './steps.js';
import type { Task } from './task.js';
import { flush_tlb_mm_range } from './tlbflush.js';
import { handle_userfault, userfaultfd_minor, userfaultfd_missing, userfaultfd_pte_wp } from './userfaultfd.js';
import { VM_ACCESS_FLAGS, VM_LOCKED, VM_MAYSHARE, VM_SHARED, VM_UFFD_MINOR, VM_UFFD_MISSING, VM_UFFD_WP, VM_WRITE, type Vma } from './vma.js';
import { track } from '../track.js';

/** vm_fault_t results (include/linux/mm_types.h). */
export const VM_FAULT_OOM = 0x000001;
export const VM_FAULT_SIGBUS = 0x000002;
export const VM_FAULT_SIGSEGV = 0x000040;
export const VM_FAULT_NOPAGE = 0x000100;
/** VM_FAULT_RETRY: the handler dropped mmap_lock (handle_userfault) and the fault is to be retried. */
export const VM_FAULT_RETRY = 0x000400;

/** FAULT_FLAG_* the model passes. */
export const FAULT_FLAG_WRITE = 1;
export const FAULT_FLAG_INSTRUCTION = 2;
/** FAULT_FLAG_ALLOW_RETRY, FAULT_FLAG_KILLABLE, FAULT_FLAG_TRIED, FAULT_FLAG_USER, FAULT_FLAG_INTERRUPTIBLE (include/linux/mm_types.h). */
export const FAULT_FLAG_ALLOW_RETRY = 0x4;
export const FAULT_FLAG_KILLABLE = 0x10;
export const FAULT_FLAG_TRIED = 0x20;
export const FAULT_FLAG_USER = 0x40;
export const FAULT_FLAG_INTERRUPTIBLE = 0x200;
/** FAULT_FLAG_DEFAULT: what the arch fault handler starts with. */
export const FAULT_FLAG_DEFAULT = FAULT_FLAG_ALLOW_RETRY | FAULT_FLAG_KILLABLE | FAULT_FLAG_INTERRUPTIBLE;
/** FAULT_FLAG_ORIG_PTE_VALID: vmf->orig_pte holds what the PTE was read as. */
export const FAULT_FLAG_ORIG_PTE_VALID = 0x800;
/** FAULT_FLAG_UNSHARE: not a write, but GUP wants to pin a shared anonymous page read-only: make it exclusive (reuse it or copy it), leaving the entry read-only. */
export const FAULT_FLAG_UNSHARE = 0x400;

/**
 * What the handler did, for the fault's `page_fault` event (not a Linux value): `mapped` (a new
 * page or a shmem page installed), `zero-page`, `reused` (COW without a copy), `copied` (COW),
 * `spurious` (the PTE already allowed the access; A or D set at most), `backout` (the PTE
 * changed under the fault, which changed nothing and lets the access retry), `swapin`
 * (do_swap_page mapped the page from the swap cache, copying it if a write needed that),
 * `userfault` (handle_userfault queued the fault for a userfaultfd handler and waited; the
 * fault is retried); '' until then.
 */
export type FaultOutcome = '' | Extract<PageFaultOutcome, 'mapped' | 'zero-page' | 'reused' | 'copied' | 'spurious' | 'backout' | 'swapin' | 'userfault'>;

/**
 * struct vm_fault (include/linux/mm.h), with what the model needs besides: the kernel, the CPU
 * and the task the fault runs for. `vmf->pte` is the pair (`table`, `index`); `table` is -1
 * while no PTE table covers the address (pmd_none). `page` is vmf->page as a frame number, -1
 * for none. The page references a fault holds between steps are in `refs`, so the debug
 * checks can count them.
 */
export class vm_fault implements PageRefs {
  readonly k: Kernel;
  readonly pc: PerCpu;
  readonly t: Task;
  readonly vma: Vma;
  readonly mm: MmStruct;
  /** The faulting address, page-aligned (vmf->address). */
  readonly address: number;
  /** The faulting address as the access made it (vmf->real_address). */
  readonly real_address: number;
  flags: number;
  table = -1;
  index = 0;
  readonly orig_pte: pte_t = __pte();
  page = -1;
  /** What the outcome was (for the event). */
  outcome: FaultOutcome = '';
  /** Page references this fault holds outside any page table (folio_get, a new folio not yet mapped). */
  readonly refs: number[] = [];
  /** The old page of a COW break between ptep_clear_flush and folio_remove_rmap_pte (see PageRefs). */
  readonly unmapping: number[] = [];

  constructor(k: Kernel, pc: PerCpu, t: Task, vma: Vma, mm: MmStruct, address: number, flags: number) {
    this.k = k;
    this.pc = pc;
    this.t = t;
    this.vma = vma;
    this.mm = mm;
    this.address = Math.floor(address / 4096) * 4096;
    this.real_address = address;
    this.flags = flags;
    return track(this);
  }

  /** The physical address of vmf->pte. */
  get ptePa(): number {
    return this.table * 4096 + this.index * 8;
  }
}

/** Releases the mm's page_table_lock (one step), then preempt_enable: the next step boundary may preempt. */
export function* spin_unlock_ptl(pc: PerCpu, mm: MmStruct): KSteps<void> {
  pc.touch = ptlId(mm);
  yield STEP_UNLOCK;
  mm.page_table_lock.owner = 0;
  pc.preempt_count--;
}

/**
 * Takes the mm's page_table_lock, waiting (one step per try) while another task holds it.
 * spin_lock disables preemption first, so the task keeps its CPU while it spins and holds it.
 */
export function* spin_lock_ptl(pc: PerCpu, mm: MmStruct, t: Task): KSteps<void> {
  pc.preempt_count++;
  pc.touch = ptlId(mm);
  // The attempt and each retry test and take the lock in one step (a test-and-set).
  yield STEP_LOCK;
  while (mm.page_table_lock.owner !== 0) yield STEP_WAIT;
  mm.page_table_lock.owner = t.tid;
}

/**
 * handle_mm_fault for the address and access in `vmf` (the access already passed
 * access_error), on `vmf.mm`: the faulting task's, or another process's for a remote access
 * (get_user_pages_remote). Returns 0 or VM_FAULT_* bits; `vmf.outcome` says what was done.
 * Does not take or drop mmap_lock.
 */
export function handle_mm_fault(vmf: vm_fault): KPath {
  // __handle_mm_fault: the upper tables are allocated as the PTE table is (pte_alloc in
  // do_anonymous_page and finish_fault); here, only whether one is there (pmd_none).
  vmf.table = vmf.mm.pgtables.pteTable(vmf.address, false);
  vmf.index = Math.floor(vmf.address / 4096) % 512;
  return handle_pte_fault(vmf);
}

/**
 * handle_pte_fault: reads the PTE without the lock; an empty one goes to do_pte_missing.
 * Otherwise, under the lock and only if the PTE is unchanged, a write to a read-only entry
 * goes to do_wp_page (which releases the lock), and any other fault is spurious: A is set,
 * and D for a write, with ptep_set_access_flags (which writes only for a write fault).
 */
function* handle_pte_fault(vmf: vm_fault): KPath {
  const { k, pc, mm } = vmf;
  const mem = k.machine.mem;
  let none = true;
  if (vmf.table >= 0) {
    pc.touch = vmf.ptePa;
    yield STEP_READ;
    // ptep_get_lockless
    pte_set(vmf.orig_pte, mem.readLo(vmf.table, vmf.index), mem.readHi(vmf.table, vmf.index));
    vmf.flags |= FAULT_FLAG_ORIG_PTE_VALID;
    none = pte_none(vmf.orig_pte.lo, vmf.orig_pte.hi);
  }
  if (none) return yield* do_pte_missing(vmf);
  if (!pte_present(vmf.orig_pte.lo)) return yield* do_swap_page(vmf);
  if (pte_protnone(vmf.orig_pte.lo) && vmf.vma.vm_flags & VM_ACCESS_FLAGS) {
    // do_numa_page: only NUMA balancing makes PROT_NONE entries in an accessible VMA.
    throw new ModelError('do_numa_page', `cpu ${pc.id}, tid ${vmf.t.tid}: a PROT_NONE PTE at 0x${vmf.address.toString(16)} in an accessible VMA, and the model has no NUMA balancing`);
  }
  yield* spin_lock_ptl(pc, mm, vmf.t);
  pc.touch = vmf.ptePa;
  yield STEP_READ;
  const entry = __pte(mem.readLo(vmf.table, vmf.index), mem.readHi(vmf.table, vmf.index));
  if (!pte_same(entry, vmf.orig_pte)) {
    // Another CPU changed the entry since it was read: update_mmu_tlb (nothing on x86), retry.
    vmf.outcome = 'backout';
    yield* spin_unlock_ptl(pc, mm);
    return 0;
  }
  const write = (vmf.flags & FAULT_FLAG_WRITE) !== 0;
  if (write || vmf.flags & FAULT_FLAG_UNSHARE) {
    // pte_write counts R/W=0, D=1 as writable only in a shadow-stack VMA here: 6.12 never makes
    // that encoding elsewhere, but fork_wrprotect atomic_clear (up to 6.5) does, and a write to
    // it must still break COW rather than retry forever.
    if (!pte_write(entry.lo, k.userShstk && vmf.vma.shadowStack)) return yield* do_wp_page(vmf);
    if (write) pte_mkdirty(entry);
  }
  pte_mkyoung(entry);
  vmf.outcome = 'spurious';
  if (write && !pte_same(entry, vmf.orig_pte)) {
    // ptep_set_access_flags (arch/x86/mm/pgtable.c): a plain store, and only for a write
    // fault; the hardware sets A itself. flush_tlb_fix_spurious_fault is empty on x86.
    pc.touch = vmf.ptePa;
    yield STEP_WRITE;
    mem.write64(vmf.table, vmf.index, entry.lo, entry.hi);
  }
  yield* spin_unlock_ptl(pc, mm);
  return 0;
}

/**
 * do_swap_page for a swap PTE (vmf.orig_pte, read without the lock): the slot's folio is
 * looked up in the swap cache (a step) or, if absent, allocated, added to the swap cache and
 * read from the device (swapin_readahead, a copy step); a reference is held. The folio is
 * locked (folio_lock: a lock step, waiting while reclaim holds it), checked to be still the
 * slot's swap-cache folio, and the PTE re-read under the page-table lock; if either changed
 * the fault backs out. Otherwise, in the step that writes the PTE: swap_free of the slot; the
 * swap cache given up (folio_free_swap) when should_try_to_free_swap says so (swap more than
 * half full, a VM_LOCKED VMA, or a write fault where the swap cache and this fault hold the
 * only references); the page mapped with the VMA's protection, and, when the swap entry was
 * exclusive or the fault now holds the only reference, made writable in a VM_WRITE VMA (dirty
 * only for a write fault: a read fault maps it writable but clean) and PageAnonExclusive.
 * The folio is unlocked; a write fault that did not get a writable entry goes on to do_wp_page
 * with the lock held. The outcome is `swapin`.
 */
function* do_swap_page(vmf: vm_fault): KPath {
  const { k, pc, mm, vma } = vmf;
  const mem = k.machine.mem;
  const pages = k.pages;
  const { lo, hi } = vmf.orig_pte;
  if (swp_type(lo, hi) !== 0 || swp_offset(lo, hi) >= k.swap.max) {
    // non_swap_entry: migration, device and marker entries, which the model never makes.
    throw new ModelError('do_swap_page', `cpu ${pc.id}, tid ${vmf.t.tid}: PTE 0x${(hi >>> 0).toString(16).padStart(8, '0')}${(lo >>> 0).toString(16).padStart(8, '0')} at 0x${vmf.address.toString(16)} is neither empty, present nor a swap entry`);
  }
  const offset = swp_offset(lo, hi);
  // swap_cache_get_folio
  pc.touch = -1;
  yield STEP_READ;
  let folio = swap_cache_get_folio(k, offset);
  if (folio < 0) {
    // swapin_readahead → __read_swap_cache_async → swap_read_folio.
    pc.touch = -1;
    yield STEP_COPY;
    folio = read_swap_cache_async(k, offset);
    if (folio < 0) {
      // Back out if somebody else faulted in this pte while the lock was not held.
      yield* spin_lock_ptl(pc, mm, vmf.t);
      pc.touch = vmf.ptePa;
      yield STEP_READ;
      const same = !vmf_pte_changed(vmf);
      vmf.outcome = 'backout';
      yield* spin_unlock_ptl(pc, mm);
      return same ? VM_FAULT_OOM : 0;
    }
  }
  hold_ref(vmf, folio);
  // folio_lock_or_retry
  pc.touch = folio_lock_id(folio);
  yield STEP_LOCK;
  while (pages.flags[folio] & PG_locked) yield STEP_WAIT;
  pages.flags[folio] |= PG_locked;
  let ret = 0;
  // folio_free_swap() or reclaim may have released the swap cache from under us.
  const cached = (pages.flags[folio] & PG_swapcache) !== 0 && pages.swap[folio] === offset;
  if (cached) yield* spin_lock_ptl(pc, mm, vmf.t);
  if (cached) {
    pc.touch = vmf.ptePa;
    yield STEP_READ;
  }
  if (!cached || vmf_pte_changed(vmf)) {
    // out_nomap / out_page
    vmf.outcome = 'backout';
    if (cached) yield* spin_unlock_ptl(pc, mm);
    yield* folio_unlock(pc, pages, folio);
    put_ref(vmf, folio);
    return 0;
  }
  const exclusive = pte_swp_exclusive(lo);
  const prot = vm_get_page_prot(__pte(), vma.vm_flags, vma.vm_pkey, k.nx);
  const entry = mk_pte(__pte(), folio, prot.lo, prot.hi);
  if (pte_swp_soft_dirty(lo)) pte_mksoft_dirty(entry);
  if (pte_swp_uffd_wp(lo)) pte_mkuffd_wp(entry);
  pc.touch = vmf.ptePa;
  yield STEP_WRITE;
  // Remove the swap entry and conditionally try to free up the swapcache.
  swap_free(k.swap, offset);
  if (should_try_to_free_swap(k, folio, vma, vmf.flags)) folio_free_swap(k, folio);
  mm.rss++;
  mm.swapents--;
  let rmap_exclusive = false;
  if (exclusive || pages.refcount[folio] === 1) {
    if (vma.vm_flags & VM_WRITE && !userfaultfd_pte_wp(vma, entry.lo)) {
      pte_mkwrite(entry, vma.shadowStack);
      if (vmf.flags & FAULT_FLAG_WRITE) {
        pte_mkdirty(entry);
        vmf.flags &= ~FAULT_FLAG_WRITE;
      }
    }
    rmap_exclusive = true;
  }
  if (!(pages.flags[folio] & PG_anon)) {
    // folio_add_new_anon_rmap
    pages.flags[folio] |= PG_anon | PG_swapbacked | PG_lru | (rmap_exclusive ? PG_anon_exclusive : 0);
    pages.mapcount[folio] = 1;
    pages.index[folio] = vmf.address / 4096;
  } else {
    // folio_add_anon_rmap_ptes
    pages.mapcount[folio]++;
    if (rmap_exclusive) pages.flags[folio] |= PG_anon_exclusive;
  }
  if (pte_write(entry.lo, k.userShstk && vma.shadowStack) && !(pages.flags[folio] & PG_anon_exclusive)) {
    throw new ModelError('do_swap_page', `cpu ${pc.id}, tid ${vmf.t.tid}: VM_BUG_ON(pte_write(pte) && !PageAnonExclusive(page)), frame 0x${folio.toString(16)}`);
  }
  mem.write64(vmf.table, vmf.index, entry.lo, entry.hi);
  pass_ref(vmf, folio);
  pte_set(vmf.orig_pte, entry.lo, entry.hi);
  yield* folio_unlock(pc, pages, folio);
  if (vmf.flags & FAULT_FLAG_WRITE) {
    ret = yield* do_wp_page(vmf);
    vmf.outcome = 'swapin';
    return ret;
  }
  vmf.outcome = 'swapin';
  yield* spin_unlock_ptl(pc, mm);
  return ret;
}

/**
 * should_try_to_free_swap: a folio in the swap cache gives it up at swap-in when swap is more
 * than half full (mem_cgroup_swap_full → vm_swap_full), the VMA is VM_LOCKED, or a write fault
 * is likely to be its exclusive user (the swap cache and the fault hold its only references).
 */
function should_try_to_free_swap(k: Kernel, folio: number, vma: Vma, fault_flags: number): boolean {
  if (!(k.pages.flags[folio] & PG_swapcache)) return false;
  if (vm_swap_full(k.swap) || vma.vm_flags & VM_LOCKED) return true;
  return (fault_flags & FAULT_FLAG_WRITE) !== 0 && k.pages.refcount[folio] === 2;
}

/** folio_unlock (a step that wakes the lock's waiters). */
function* folio_unlock(pc: PerCpu, pages: Kernel['pages'], folio: number): KSteps<void> {
  pc.touch = folio_lock_id(folio);
  yield STEP_UNLOCK;
  pages.flags[folio] &= ~PG_locked;
}

/** do_pte_missing: anonymous memory goes to do_anonymous_page, a shmem mapping to do_fault. */
function do_pte_missing(vmf: vm_fault): KPath {
  return vmf.vma.shmem ? do_fault(vmf) : do_anonymous_page(vmf);
}

/**
 * pte_alloc for a fault: the PTE table (and any missing table above it) for the address.
 * False when an allocation failed (the fault returns VM_FAULT_OOM).
 */
function fault_pte_alloc(vmf: vm_fault): boolean {
  if (vmf.table >= 0) return true;
  const table = vmf.mm.pgtables.pteTable(vmf.address, true);
  if (table < 0) return false;
  vmf.table = table;
  return true;
}

/** vmf_pte_changed: the PTE is not what the fault read (or, with nothing read, not empty). Reads the entry: call it in a step. */
function vmf_pte_changed(vmf: vm_fault): boolean {
  const mem = vmf.k.machine.mem;
  const lo = mem.readLo(vmf.table, vmf.index);
  const hi = mem.readHi(vmf.table, vmf.index);
  if (vmf.flags & FAULT_FLAG_ORIG_PTE_VALID) return ((lo ^ vmf.orig_pte.lo) | (hi ^ vmf.orig_pte.hi)) !== 0;
  return !pte_none(lo, hi);
}

/** The fault holds a reference to `pfn` outside any page table (listed for the debug checks). */
function hold_ref(vmf: vm_fault, pfn: number): void {
  vmf.refs.push(pfn);
  vmf.k.pages.held.add(vmf);
}

/** The held reference to `pfn` passes to a PTE the fault just wrote (or is about to be put). */
function pass_ref(vmf: vm_fault, pfn: number): void {
  const i = vmf.refs.lastIndexOf(pfn);
  if (i >= 0) vmf.refs.splice(i, 1);
  if (vmf.refs.length === 0 && vmf.unmapping.length === 0) vmf.k.pages.held.delete(vmf);
}

/** folio_put of a reference the fault held. */
function put_ref(vmf: vm_fault, pfn: number): void {
  pass_ref(vmf, pfn);
  vmf.k.pages.put_page(pfn);
}

/**
 * do_anonymous_page: a read maps the zero page (special, read-only); a write gets a new
 * zeroed exclusive anonymous page, writable and dirty (in a shadow-stack VMA, R/W=0 and D=1).
 * The page is allocated and zeroed before the lock is taken; under the lock, if another
 * fault filled the PTE meanwhile, the new page is released and nothing is mapped.
 */
function* do_anonymous_page(vmf: vm_fault): KPath {
  const { k, pc, mm, vma } = vmf;
  const mem = k.machine.mem;
  if (vma.vm_flags & VM_SHARED) return VM_FAULT_SIGBUS;
  if (!fault_pte_alloc(vmf)) return VM_FAULT_OOM;
  const prot = vm_get_page_prot(__pte(), vma.vm_flags, vma.vm_pkey, k.nx);
  const entry = __pte();
  let pfn = -1;
  if (!(vmf.flags & FAULT_FLAG_WRITE)) {
    // The zero page for reads: pte_mkspecial(pfn_pte(my_zero_pfn, vma->vm_page_prot)).
    mk_pte(entry, k.zero_pfn, prot.lo, prot.hi);
    entry.lo |= _PAGE_SPECIAL;
  } else {
    if (!vma.anon_vma) vma.anon_vma = { id: k.nextObjectId(), forked: false };
    pfn = k.pages.alloc_page(PG_NEW_ANON, false);
    if (pfn < 0) return VM_FAULT_OOM;
    hold_ref(vmf, pfn);
    pc.touch = pfn * 4096;
    yield STEP_COPY;
    mem.zeroFrame(pfn);
    if (k.events.on) k.emit({ type: 'page_copy', cpu: pc.id, tid: vmf.t.tid, src: -1, dst: pfn });
    mk_pte(entry, pfn, prot.lo, prot.hi);
    // pte_sw_mkyoung is empty on x86; pte_mkwrite(pte_mkdirty(entry), vma) for a writable VMA.
    if (vma.vm_flags & VM_WRITE) pte_mkwrite(pte_mkdirty(entry), vma.shadowStack);
  }
  yield* spin_lock_ptl(pc, mm, vmf.t);
  pc.touch = vmf.ptePa;
  yield STEP_READ;
  if (vmf_pte_changed(vmf)) {
    // update_mmu_tlb (nothing on x86); release: folio_put of the unused page.
    vmf.outcome = 'backout';
    if (pfn >= 0) put_ref(vmf, pfn);
  } else if (userfaultfd_missing(vma)) {
    // Deliver the page fault to userland, checked inside the PT lock; the context as the lock saw it.
    const ctx = vma.vm_userfaultfd_ctx;
    yield* spin_unlock_ptl(pc, mm);
    if (pfn >= 0) put_ref(vmf, pfn);
    return yield* handle_userfault(vmf, VM_UFFD_MISSING, ctx);
  } else {
    vmf.outcome = pfn >= 0 ? 'mapped' : 'zero-page';
    // set_ptes: no flush needed, the entry was not present.
    pc.touch = vmf.ptePa;
    yield STEP_WRITE;
    mem.write64(vmf.table, vmf.index, entry.lo, entry.hi);
    if (pfn >= 0) {
      // add_mm_counter(MM_ANONPAGES), folio_add_new_anon_rmap (done in the PTE's own step, so the
      // debug checks never see the count without the entry): the reference passes to the PTE.
      mm.rss++;
      k.pages.mapcount[pfn] = 1;
      k.pages.index[pfn] = vmf.address / 4096;
      pass_ref(vmf, pfn);
    }
  }
  yield* spin_unlock_ptl(pc, mm);
  return 0;
}

/**
 * do_fault for a shmem mapping (MAP_SHARED anonymous memory, or a tmpfs file mapped shared or
 * private): a file's page at or past its end is SIGBUS; __do_fault finds the object's page at
 * this offset (shmem_fault → shmem_get_folio_gfp: a page there in a VM_UFFD_MINOR VMA, or none
 * in a VM_UFFD_MISSING one, goes to handle_userfault instead), allocating it zeroed on first
 * use, and takes a reference; a write
 * to a private mapping goes to do_cow_fault; a read or a shared write (do_read_fault,
 * do_shared_fault):
 * finish_fault maps it under the lock unless the PTE was filled meanwhile
 * (VM_FAULT_NOPAGE: the reference is dropped). A write maps it dirty (set_pte_range).
 */
function* do_fault(vmf: vm_fault): KPath {
  const { k, pc, mm, vma } = vmf;
  const mem = k.machine.mem;
  const shmem = vma.shmem!;
  const pgoff = vma.vm_pgoff + (vmf.address - vma.vm_start) / 4096;
  // shmem_get_folio_gfp: a file's page at or past i_size is not there to map (anonymous shared memory's too).
  if (pgoff >= Math.ceil((shmem.file ? shmem.file.size : shmem.size) / 4096)) return VM_FAULT_SIGBUS;
  // filemap_get_entry: a page the object has, in a VMA registered for minor faults, goes to the
  // handler (its reference dropped at once); a page it lacks, in one registered for missing
  // faults, too, before anything is allocated.
  const ctx = vma.vm_userfaultfd_ctx;
  if (shmem.pages.has(pgoff)) {
    if (userfaultfd_minor(vma)) return yield* handle_userfault(vmf, VM_UFFD_MINOR, ctx);
  } else if (userfaultfd_missing(vma)) return yield* handle_userfault(vmf, VM_UFFD_MISSING, ctx);
  if (!shmem.pages.has(pgoff)) {
    // shmem_get_folio: a new folio is zeroed while locked and only then found by others, so the
    // allocation, the zeroing and the insertion are one step (the lookup is repeated in it).
    pc.touch = -1;
    yield STEP_COPY;
    if (!shmem.pages.has(pgoff)) {
      const fresh = k.pages.alloc_page(PG_shmem, false);
      if (fresh < 0) return VM_FAULT_OOM;
      mem.zeroFrame(fresh);
      shmem.pages.set(pgoff, fresh);
    }
  }
  const pfn = shmem.pages.get(pgoff)!;
  k.pages.get_page(pfn);
  hold_ref(vmf, pfn);
  // do_cow_fault: a write to a private mapping of a file maps a copy of the file's page.
  if (vmf.flags & FAULT_FLAG_WRITE && !(vma.vm_flags & VM_SHARED)) return yield* do_cow_fault(vmf, pfn);
  // finish_fault
  if (!fault_pte_alloc(vmf)) {
    put_ref(vmf, pfn);
    return VM_FAULT_OOM;
  }
  yield* spin_lock_ptl(pc, mm, vmf.t);
  pc.touch = vmf.ptePa;
  yield STEP_READ;
  let ret = 0;
  if (vmf_pte_changed(vmf)) {
    vmf.outcome = 'backout';
    ret = VM_FAULT_NOPAGE;
    put_ref(vmf, pfn);
  } else {
    // set_pte_range: mk_pte, and pte_mkdirty for a write (the VMA's protection is already
    // writable for a shared writable mapping); folio_add_file_rmap_ptes.
    const prot = vm_get_page_prot(__pte(), vma.vm_flags, vma.vm_pkey, k.nx);
    const entry = mk_pte(__pte(), pfn, prot.lo, prot.hi);
    if (vmf.flags & FAULT_FLAG_WRITE) pte_mkdirty(entry);
    vmf.outcome = 'mapped';
    pc.touch = vmf.ptePa;
    yield STEP_WRITE;
    mem.write64(vmf.table, vmf.index, entry.lo, entry.hi);
    k.pages.mapcount[pfn]++;
    mm.rss++;
    pass_ref(vmf, pfn);
  }
  yield* spin_unlock_ptl(pc, mm);
  return ret;
}

/**
 * do_cow_fault: the file's page (`cache`, referenced) is copied into a new anonymous page,
 * which is mapped dirty (and writable in a VM_WRITE VMA) under the lock unless the PTE was filled meanwhile; the
 * file's page itself is never mapped.
 */
function* do_cow_fault(vmf: vm_fault, cache: number): KPath {
  const { k, pc, mm, vma } = vmf;
  const mem = k.machine.mem;
  const pages = k.pages;
  // vmf_anon_prepare, then the new page (alloc_anon_folio).
  if (!vma.anon_vma) vma.anon_vma = { id: k.nextObjectId(), forked: false };
  const fresh = pages.alloc_page(PG_NEW_ANON, false);
  if (fresh < 0) {
    put_ref(vmf, cache);
    return VM_FAULT_OOM;
  }
  hold_ref(vmf, fresh);
  pc.touch = fresh * 4096;
  yield STEP_COPY;
  mem.copyFrame(fresh, cache);
  if (k.events.on) k.emit({ type: 'page_copy', cpu: pc.id, tid: vmf.t.tid, src: cache, dst: fresh });
  // __do_fault's reference to the file's page goes once it is copied.
  put_ref(vmf, cache);
  if (!fault_pte_alloc(vmf)) {
    put_ref(vmf, fresh);
    return VM_FAULT_OOM;
  }
  yield* spin_lock_ptl(pc, mm, vmf.t);
  pc.touch = vmf.ptePa;
  yield STEP_READ;
  if (vmf_pte_changed(vmf)) {
    vmf.outcome = 'backout';
    put_ref(vmf, fresh);
  } else {
    const prot = vm_get_page_prot(__pte(), vma.vm_flags, vma.vm_pkey, k.nx);
    // set_pte_range: maybe_mkwrite(pte_mkdirty(entry)): a forced write (FOLL_FORCE) to a read-only private mapping gets its copy read-only.
    const entry = pte_mkdirty(mk_pte(__pte(), fresh, prot.lo, prot.hi));
    if (vma.vm_flags & VM_WRITE) pte_mkwrite(entry, vma.shadowStack);
    pc.touch = vmf.ptePa;
    yield STEP_WRITE;
    mem.write64(vmf.table, vmf.index, entry.lo, entry.hi);
    // folio_add_new_anon_rmap: the new page's reference passes to the PTE.
    pages.mapcount[fresh] = 1;
    pages.index[fresh] = vmf.address / 4096;
    mm.rss++;
    pass_ref(vmf, fresh);
    vmf.outcome = 'copied';
  }
  yield* spin_unlock_ptl(pc, mm);
  return 0;
}

/**
 * do_wp_page, entered with the page-table lock held and the PTE equal to vmf.orig_pte: a write
 * to a read-only present entry of a writable VMA. A shared mapping is made writable in place
 * (wp_page_shared). A private anonymous page that is exclusive, or whose only reference is
 * this mapping (wp_can_reuse_anon_folio), is reused (wp_page_reuse). Otherwise (the page is
 * shared after fork, or it is the zero page) the page is pinned with a reference, the lock
 * dropped, and wp_page_copy runs. An unshare fault (FAULT_FLAG_UNSHARE, from GUP pinning a
 * shared anonymous page) only makes the page exclusive: a reusable one is marked so and the
 * entry left alone; otherwise the copy is mapped read-only.
 */
function* do_wp_page(vmf: vm_fault): KPath {
  const { k, pc, mm, vma } = vmf;
  const pages = k.pages;
  const pfn = pte_pfn(vmf.orig_pte.lo, vmf.orig_pte.hi);
  // vm_normal_page: no struct page behind a special entry (the zero page).
  if (userfaultfd_pte_wp(vma, vmf.orig_pte.lo)) {
    // A write to a uffd-wp entry goes to the handler (XXX: no UFFD_FEATURE_WP_ASYNC).
    const ctx = vma.vm_userfaultfd_ctx;
    yield* spin_unlock_ptl(pc, mm);
    return yield* handle_userfault(vmf, VM_UFFD_WP, ctx);
  }
  vmf.page = vmf.orig_pte.lo & _PAGE_SPECIAL ? -1 : pfn;
  if (vma.vm_flags & (VM_SHARED | VM_MAYSHARE)) return yield* wp_page_reuse(vmf);
  if (vmf.page >= 0 && pages.flags[vmf.page] & PG_anon && (pages.flags[vmf.page] & PG_anon_exclusive || wp_can_reuse_anon_folio(k, vmf.page))) {
    pages.flags[vmf.page] |= PG_anon_exclusive;
    if (vmf.flags & FAULT_FLAG_UNSHARE) {
      vmf.outcome = 'reused';
      yield* spin_unlock_ptl(pc, mm);
      return 0;
    }
    return yield* wp_page_reuse(vmf);
  }
  // folio_get: the old page stays while the lock is dropped.
  if (vmf.page >= 0) {
    pages.get_page(vmf.page);
    hold_ref(vmf, vmf.page);
  }
  yield* spin_unlock_ptl(pc, mm);
  return yield* wp_page_copy(vmf);
}

/**
 * wp_can_reuse_anon_folio: the page's only reference is the mapping that faulted, once a swap
 * cache's is given up: no more than 1 + (in the swap cache) references; then, under the folio
 * lock (folio_trylock, in the caller's step), folio_free_swap and a refcount of exactly 1.
 */
function wp_can_reuse_anon_folio(k: Kernel, pfn: number): boolean {
  const pages = k.pages;
  if (pages.refcount[pfn] > 1 + (pages.flags[pfn] & PG_swapcache ? 1 : 0)) return false;
  if (pages.flags[pfn] & PG_locked) return false;
  if (pages.flags[pfn] & PG_swapcache) folio_free_swap(k, pfn);
  return pages.refcount[pfn] === 1;
}

/**
 * wp_page_reuse, with the lock held: the entry made young, dirty and writable
 * (maybe_mkwrite(pte_mkdirty(pte_mkyoung(orig_pte)))) and stored (ptep_set_access_flags with
 * dirty set: a plain store, the hardware can only add A or D, which the new value has). No
 * flush: rights only grow. Releases the lock.
 */
function* wp_page_reuse(vmf: vm_fault): KPath {
  const { k, pc, mm, vma } = vmf;
  if (!(vmf.flags & FAULT_FLAG_WRITE)) throw new ModelError('wp_page_reuse', `cpu ${pc.id}, tid ${vmf.t.tid}: VM_BUG_ON(!(vmf->flags & FAULT_FLAG_WRITE))`);
  if (pte_pfn(vmf.orig_pte.lo, vmf.orig_pte.hi) === k.zero_pfn) throw new ModelError('wp_page_reuse', `cpu ${pc.id}, tid ${vmf.t.tid}: VM_WARN_ON(is_zero_pfn(pte_pfn(vmf->orig_pte)))`);
  if (vmf.page >= 0 && k.pages.flags[vmf.page] & PG_anon && !(k.pages.flags[vmf.page] & PG_anon_exclusive)) {
    throw new ModelError('wp_page_reuse', `cpu ${pc.id}, tid ${vmf.t.tid}: VM_BUG_ON(folio_test_anon(folio) && !PageAnonExclusive(page)), frame 0x${vmf.page.toString(16)}`);
  }
  const entry = pte_mkdirty(pte_mkyoung(__pte(vmf.orig_pte.lo, vmf.orig_pte.hi)));
  // maybe_mkwrite: only a VM_WRITE VMA gets a writable entry.
  if (vma.vm_flags & VM_WRITE) pte_mkwrite(entry, vma.shadowStack);
  pc.touch = vmf.ptePa;
  yield STEP_WRITE;
  k.machine.mem.write64(vmf.table, vmf.index, entry.lo, entry.hi);
  vmf.outcome = 'reused';
  yield* spin_unlock_ptl(pc, mm);
  return 0;
}

/**
 * wp_page_copy, entered without the lock and holding a reference to the old page (none for
 * the zero page): allocates the new page and copies (or zeroes) it, then re-takes the lock.
 * If the PTE still equals vmf.orig_pte, it is cleared and flushed on every CPU
 * (ptep_clear_flush; the `wp_copy_flush` option can leave that out, a deliberate stale-TLB
 * bug), the new page mapped writable and dirty, and the old page loses this mapping. If not,
 * another fault got there first: the new page is freed. Either way the reference to the old
 * page is dropped.
 */
function* wp_page_copy(vmf: vm_fault): KPath {
  const { k, pc, mm, vma } = vmf;
  const mem = k.machine.mem;
  const pages = k.pages;
  const old = vmf.page;
  const isZero = pte_pfn(vmf.orig_pte.lo, vmf.orig_pte.hi) === k.zero_pfn;
  // vmf_anon_prepare
  if (!vma.anon_vma) vma.anon_vma = { id: k.nextObjectId(), forked: false };
  // folio_prealloc
  const fresh = pages.alloc_page(PG_NEW_ANON, false);
  if (fresh < 0) {
    if (old >= 0) put_ref(vmf, old);
    return VM_FAULT_OOM;
  }
  hold_ref(vmf, fresh);
  pc.touch = fresh * 4096;
  yield STEP_COPY;
  if (isZero) mem.zeroFrame(fresh);
  else mem.copyFrame(fresh, old);
  if (k.events.on) k.emit({ type: 'page_copy', cpu: pc.id, tid: vmf.t.tid, src: isZero ? k.zero_pfn : old, dst: fresh });
  // Re-check the PTE: the lock was dropped.
  yield* spin_lock_ptl(pc, mm, vmf.t);
  pc.touch = vmf.ptePa;
  yield STEP_READ;
  if (!vmf_pte_changed(vmf)) {
    if (old < 0) mm.rss++;
    const prot = vm_get_page_prot(__pte(), vma.vm_flags, vma.vm_pkey, k.nx);
    const entry = mk_pte(__pte(), fresh, prot.lo, prot.hi);
    // An unshare maps the copy as the old entry was, read-only and clean; a write fault maybe_mkwrite(pte_mkdirty()).
    if (!(vmf.flags & FAULT_FLAG_UNSHARE)) {
      pte_mkdirty(entry);
      if (vma.vm_flags & VM_WRITE) pte_mkwrite(entry, vma.shadowStack);
    }
    if (k.options.wp_copy_flush === 'ptep_clear_flush') {
      // ptep_clear_flush: clear first and flush, so no TLB holds the old entry once the new one is visible.
      pc.touch = vmf.ptePa;
      yield STEP_ATOMIC;
      mem.write64(vmf.table, vmf.index, 0, 0);
      if (old >= 0) {
        vmf.unmapping.push(old);
        pages.held.add(vmf);
      }
      yield* flush_tlb_mm_range(k, pc, mm, vmf.address, vmf.address + 4096, 12, false);
    }
    pc.touch = vmf.ptePa;
    yield STEP_WRITE;
    mem.write64(vmf.table, vmf.index, entry.lo, entry.hi);
    // folio_add_new_anon_rmap (in the PTE's own step): the new page's reference passes to the PTE.
    pages.mapcount[fresh] = 1;
    pages.index[fresh] = vmf.address / 4096;
    pass_ref(vmf, fresh);
    if (old >= 0) {
      // The old entry's dirtiness dies with it (upstream); the proposed fix keeps it on the folio.
      if (k.options.anon_dirty_drop === 'folio_mark_dirty' && pte_dirty(vmf.orig_pte.lo, vmf.orig_pte.hi)) anon_folio_keep_dirty(pages, old);
      // folio_remove_rmap_pte, then (new_folio = old_folio) the mapping's reference is put below.
      if (--pages.mapcount[old] < 0) throw new ModelError('folio_remove_rmap_pte', `cpu ${pc.id}, tid ${vmf.t.tid}: frame 0x${old.toString(16)} mapcount ${pages.mapcount[old]}`);
      pages.put_page(old);
      if (vmf.unmapping.length > 0) {
        vmf.unmapping.length = 0;
        if (vmf.refs.length === 0) pages.held.delete(vmf);
      }
    }
    vmf.outcome = 'copied';
  } else {
    // update_mmu_tlb (nothing on x86); the new page was not used.
    vmf.outcome = 'backout';
    put_ref(vmf, fresh);
  }
  yield* spin_unlock_ptl(pc, mm);
  if (old >= 0) {
    // folio_put of the reference do_wp_page took.
    put_ref(vmf, old);
  }
  return 0;
}
