/**
 * Page faults and the PTE-level work on user memory (mm/memory.c, mm/mprotect.c): demand-zero
 * anonymous pages and the zero page, shared anonymous (shmem) pages, copy-on-write
 * (do_wp_page: reuse an exclusive page, or copy), unmapping (zap_pte_range) and changing
 * protections (change_pte_range). Each is a generator: a PTE read, a PTE write, a locked
 * update, a page copy or a TLB flush is one step.
 *
 * The caller holds mmap_lock; these take the mm's page_table_lock themselves.
 * XXX: Linux has split page-table locks (one per PTE table); the model has one per mm.
 */
import { PTE_A, PTE_D, PTE_RW } from '../hw/pte.js';
import type { Kernel, PerCpu } from './kernel.js';
import type { MmStruct } from './mm.js';
import { ptlId } from './mmput.js';
import { PG_anon, PG_anon_exclusive, PG_shmem } from './page.js';
import {
  _PAGE_SPECIAL, mk_pte, pte_mkdirty, pte_mkwrite, pte_modify, pte_needs_flush, pte_pfn, pte_present, pte_protnone, pte_write, pteHi, vm_get_page_prot,
} from './pgtable.js';
import { STEP_ATOMIC, STEP_COPY, STEP_LOCK, STEP_READ, STEP_UNLOCK, STEP_WAIT, STEP_WRITE, type KPath } from './steps.js';
import type { Task } from './task.js';
import { flush_tlb_mm_range } from './tlbflush.js';
import { VM_SHARED, VM_WRITE, type Vma } from './vma.js';

/** vm_fault_t results (include/linux/mm_types.h). */
export const VM_FAULT_OOM = 0x000001;
export const VM_FAULT_SIGSEGV = 0x000040;
/** handle_mm_fault's `outcome` for events and tests. */
export let faultOutcome = '';

/** FAULT_FLAG_* the model passes. */
export const FAULT_FLAG_WRITE = 1;
export const FAULT_FLAG_INSTRUCTION = 2;

/** Releases the mm's page_table_lock (one step). */
export function* spin_unlock_ptl(pc: PerCpu, mm: MmStruct): Generator<number, void, undefined> {
  pc.touch = ptlId(mm);
  yield STEP_UNLOCK;
  mm.page_table_lock.owner = 0;
}

/** Takes the mm's page_table_lock, waiting (one step per try) while another task holds it. */
export function* spin_lock_ptl(pc: PerCpu, mm: MmStruct, t: Task): Generator<number, void, undefined> {
  pc.touch = ptlId(mm);
  // The attempt and each retry test and take the lock in one step (a test-and-set).
  yield STEP_LOCK;
  while (mm.page_table_lock.owner !== 0) yield STEP_WAIT;
  mm.page_table_lock.owner = t.tid;
}

/**
 * handle_mm_fault for a user address in `vma` (the access already passed access_error):
 * fills a missing PTE (do_anonymous_page, do_shared_fault), breaks COW on a write to a
 * read-only PTE of a writable private VMA (do_wp_page), or just marks the entry young (and
 * dirty for a write) when the fault was spurious. `mm` is the faulting task's, or another
 * process's for a remote access (get_user_pages_remote). Returns 0 or a VM_FAULT_* code.
 */
export function* handle_mm_fault(k: Kernel, pc: PerCpu, t: Task, vma: Vma, addr: number, flags: number, mm: MmStruct = t.mm!): KPath {
  const mem = k.machine.mem;
  const page = Math.floor(addr / 4096) * 4096;
  const write = (flags & FAULT_FLAG_WRITE) !== 0;
  const table = mm.pgtables.pteTable(page, true);
  if (table < 0) return VM_FAULT_OOM;
  const index = Math.floor(page / 4096) % 512;
  const ptePa = table * 4096 + index * 8;

  yield* spin_lock_ptl(pc, mm, t);
  pc.touch = ptePa;
  yield STEP_READ;
  const lo = mem.readLo(table, index);
  const hi = mem.readHi(table, index);
  let result = 0;
  if (!pte_present(lo)) {
    result = yield* do_pte_missing(k, pc, t, mm, vma, page, table, index, write);
  } else if (pte_protnone(lo)) {
    faultOutcome = 'spurious';
  } else if (write && !pte_write(lo, k.userShstk && vma.shadowStack)) {
    // pte_write counts R/W=0, D=1 as writable only in a shadow-stack VMA here: 6.12 never makes
    // that encoding elsewhere, but fork_wrprotect atomic_clear (6.5) does, and a write to it
    // must still break COW rather than retry forever.
    result = yield* do_wp_page(k, pc, t, mm, vma, page, table, index, lo, hi);
  } else {
    // A spurious fault (the TLB was stale, or another CPU fixed the PTE): mark it young, and dirty for a write.
    const nlo = lo | PTE_A | (write ? PTE_D : 0);
    if (nlo !== lo) {
      pc.touch = ptePa;
      yield STEP_ATOMIC;
      mem.cmpxchg64(table, index, lo, hi, nlo, hi);
    }
    faultOutcome = 'spurious';
  }
  pc.touch = ptlId(mm);
  yield STEP_UNLOCK;
  mm.page_table_lock.owner = 0;
  return result;
}

/** do_pte_missing: a fault on an empty PTE. Anonymous private memory gets a zeroed page on a write and the zero page on a read; shmem gets the object's page. */
function* do_pte_missing(k: Kernel, pc: PerCpu, t: Task, mm: MmStruct, vma: Vma, page: number, table: number, index: number, write: boolean): KPath {
  const mem = k.machine.mem;
  const protLo = vm_get_page_prot(vma.vm_flags, vma.vm_pkey, k.nx);
  const protHi = pteHi;
  let lo: number;
  if (vma.shmem) {
    // do_shared_fault / do_read_fault on shmem: the object's page at this offset, allocated zeroed on first use.
    const pgoff = vma.vm_pgoff + (page - vma.vm_start) / 4096;
    let pfn = vma.shmem.pages.get(pgoff);
    if (pfn === undefined) {
      pfn = k.pages.alloc_page(PG_shmem, false);
      if (pfn < 0) return VM_FAULT_OOM;
      pc.touch = pfn * 4096;
      yield STEP_COPY;
      mem.zeroFrame(pfn);
      vma.shmem.pages.set(pgoff, pfn);
    }
    k.pages.get_page(pfn);
    k.pages.mapcount[pfn]++;
    lo = mk_pte(pfn, protLo, protHi);
    // The model's shmem objects are only ever mapped shared (MAP_SHARED anonymous memory).
    if (write) lo |= PTE_D;
    faultOutcome = 'mapped';
  } else if (!write) {
    // The zero page, read-only and special (no refcount), for a read of untouched anonymous memory.
    lo = mk_pte(k.zero_pfn, protLo & ~PTE_RW, protHi) | _PAGE_SPECIAL;
    faultOutcome = 'zero-page';
  } else {
    const pfn = k.pages.alloc_page(PG_anon | PG_anon_exclusive, false);
    if (pfn < 0) return VM_FAULT_OOM;
    pc.touch = pfn * 4096;
    yield STEP_COPY;
    mem.zeroFrame(pfn);
    if (!vma.anon_vma) vma.anon_vma = { id: k.nextObjectId(), forked: false };
    k.pages.mapcount[pfn] = 1;
    lo = mk_pte(pfn, protLo, protHi);
    // pte_mkwrite(pte_mkdirty(entry), vma): in a shadow-stack VMA, R/W=0 and D=1.
    if (vma.vm_flags & VM_WRITE) {
      lo = pte_mkdirty(lo, pteHi);
      lo = pte_mkwrite(lo, pteHi, vma.shadowStack);
    }
    faultOutcome = 'mapped';
    if (k.events.on) k.emit({ type: 'page_copy', cpu: pc.id, tid: t.tid, src: -1, dst: pfn });
  }
  const hi = pteHi;
  if (!(lo & _PAGE_SPECIAL)) mm.rss++;
  pc.touch = table * 4096 + index * 8;
  yield STEP_WRITE;
  mem.write64(table, index, lo, hi);
  return 0;
}

/**
 * do_wp_page: a write to a present, read-only PTE in a writable VMA. An anonymous page only
 * this mm maps is reused (made writable and dirty, no flush needed: permissions only grow);
 * otherwise (shared after fork, or the zero page) the data is copied to a new exclusive page,
 * the old PTE is cleared and flushed on every CPU (ptep_clear_flush), and the new one set.
 */
function* do_wp_page(k: Kernel, pc: PerCpu, t: Task, mm: MmStruct, vma: Vma, page: number, table: number, index: number, lo: number, hi: number): KPath {
  const mem = k.machine.mem;
  const pages = k.pages;
  const oldPfn = pte_pfn(lo, hi);
  const special = (lo & _PAGE_SPECIAL) !== 0;
  if (!special && pages.flags[oldPfn] & PG_anon) {
    // wp_can_reuse_anon_folio: exclusive, or the only reference left.
    if (pages.flags[oldPfn] & PG_anon_exclusive || pages.refcount[oldPfn] === 1) {
      pages.flags[oldPfn] |= PG_anon_exclusive;
      // wp_page_reuse: maybe_mkwrite(pte_mkdirty(pte_mkyoung(orig)), vma).
      let nlo = pte_mkdirty(lo | PTE_A, hi);
      nlo = pte_mkwrite(nlo, pteHi, vma.shadowStack);
      const nhi = pteHi;
      pc.touch = table * 4096 + index * 8;
      yield STEP_ATOMIC;
      mem.cmpxchg64(table, index, lo, hi, nlo, nhi);
      faultOutcome = 'reused';
      return 0;
    }
  }
  // wp_page_copy
  const newPfn = pages.alloc_page(PG_anon | PG_anon_exclusive, false);
  if (newPfn < 0) return VM_FAULT_OOM;
  pc.touch = newPfn * 4096;
  yield STEP_COPY;
  if (special && oldPfn === k.zero_pfn) mem.zeroFrame(newPfn);
  else mem.copyFrame(newPfn, oldPfn);
  if (!vma.anon_vma) vma.anon_vma = { id: k.nextObjectId(), forked: false };
  if (k.events.on) k.emit({ type: 'page_copy', cpu: pc.id, tid: t.tid, src: oldPfn, dst: newPfn });
  // ptep_clear_flush: clear, then flush this page on every CPU that may cache it (unless the
  // wp_copy_flush option leaves the flush out, a deliberate stale-TLB bug).
  if (k.options.wp_copy_flush === 'ptep_clear_flush') {
    pc.touch = table * 4096 + index * 8;
    yield STEP_ATOMIC;
    mem.write64(table, index, 0, 0);
    yield* flush_tlb_mm_range(k, pc, mm, page, page + 4096, 12, false);
  }
  const protLo = vm_get_page_prot(vma.vm_flags, vma.vm_pkey, k.nx);
  let nlo = mk_pte(newPfn, protLo, pteHi);
  nlo = pte_mkdirty(nlo | PTE_A, pteHi);
  nlo = pte_mkwrite(nlo, pteHi, vma.shadowStack);
  const nhi = pteHi;
  pages.mapcount[newPfn] = 1;
  pc.touch = table * 4096 + index * 8;
  yield STEP_WRITE;
  mem.write64(table, index, nlo, nhi);
  if (!special) {
    pages.mapcount[oldPfn]--;
    pages.put_page(oldPfn);
  } else {
    mm.rss++;
  }
  faultOutcome = 'copied';
  return 0;
}

/** The first and last addresses zap_range cleared (for the mmu_gather's flush range); -1 if none. */
export let zapFirst = -1;
export let zapLast = -1;

/**
 * zap_pte_range over [start, end): clears each PTE (ptep_get_and_clear, an atomic exchange
 * since the hardware may be setting A or D on another CPU), drops the page's map count and
 * reference. Returns the number of entries cleared and leaves their span in zapFirst/zapLast;
 * the caller flushes the TLB (tlb_finish_mmu). XXX: runs as one step; Linux holds the PTE
 * table's lock throughout, so only hardware A/D updates could interleave, and they are lost
 * with the entry either way for anonymous memory.
 */
export function zap_range(k: Kernel, mm: MmStruct, start: number, end: number): number {
  const mem = k.machine.mem;
  const pages = k.pages;
  let cleared = 0;
  zapFirst = -1;
  zapLast = -1;
  mm.pgtables.forEachPteTable(start, end, (table, from, to, va) => {
    const base = Math.floor(va / 2 ** 21) * 2 ** 21;
    for (let i = from; i < to; i++) {
      const lo = mem.readLo(table, i);
      const hi = mem.readHi(table, i);
      if (lo === 0 && hi === 0) continue;
      mem.write64(table, i, 0, 0);
      cleared++;
      const a = base + i * 4096;
      if (zapFirst < 0) zapFirst = a;
      zapLast = a;
      if (!pte_present(lo)) continue;
      if (lo & _PAGE_SPECIAL) continue;
      const pfn = pte_pfn(lo, hi);
      pages.mapcount[pfn]--;
      pages.put_page(pfn);
      mm.rss--;
    }
  });
  return cleared;
}

/**
 * change_pte_range (mm/mprotect.c) over [start, end) of `vma`, whose flags are already the new
 * ones: rewrites each present PTE with pte_modify, making exclusive anonymous pages writable
 * at once when the VMA is private and writable (MM_CP_TRY_CHANGE_WRITABLE,
 * can_change_pte_writable). Each rewrite is a locked update. Returns the range of PTEs whose
 * change needs a TLB flush (pte_needs_flush) as [first, last + 4096), or null.
 */
export function* change_protection(k: Kernel, pc: PerCpu, t: Task, vma: Vma, start: number, end: number): Generator<number, number[] | null, undefined> {
  const mm = t.mm!;
  const mem = k.machine.mem;
  const protLo = vm_get_page_prot(vma.vm_flags, vma.vm_pkey, k.nx);
  const protHi = pteHi;
  const tryWritable = (vma.vm_flags & (VM_WRITE | VM_SHARED)) === VM_WRITE;
  let first = -1;
  let last = -1;
  yield* spin_lock_ptl(pc, mm, t);
  for (let va = start; va < end; ) {
    const span = 2 ** 21;
    const next = Math.min(end, (Math.floor(va / span) + 1) * span);
    const table = mm.pgtables.pteTable(va, false);
    if (table >= 0) {
      for (let a = va; a < next; a += 4096) {
        const i = Math.floor(a / 4096) % 512;
        let lo = mem.readLo(table, i);
        let hi = mem.readHi(table, i);
        if (!pte_present(lo)) continue;
        for (;;) {
          let nlo = pte_modify(lo, hi, protLo, protHi);
          let nhi = pteHi;
          if (tryWritable && !pte_write(nlo, k.userShstk) && !pte_protnone(nlo) && !(nlo & _PAGE_SPECIAL)) {
            const pfn = pte_pfn(nlo, nhi);
            if (k.pages.flags[pfn] & PG_anon_exclusive) {
              nlo = pte_mkwrite(nlo, nhi, vma.shadowStack);
              nhi = pteHi;
            }
          }
          if (nlo === lo && nhi === hi) break;
          pc.touch = table * 4096 + i * 8;
          yield STEP_ATOMIC;
          if (!mem.cmpxchg64(table, i, lo, hi, nlo, nhi)) {
            lo = mem.readLo(table, i);
            hi = mem.readHi(table, i);
            continue;
          }
          if (pte_needs_flush(lo, hi, nlo, nhi)) {
            if (first < 0) first = a;
            last = a;
          }
          break;
        }
      }
    }
    va = next;
  }
  pc.touch = ptlId(mm);
  yield STEP_UNLOCK;
  mm.page_table_lock.owner = 0;
  return first < 0 ? null : [first, last + 4096];
}
