/**
 * The page-table side of userfaultfd (mm/userfaultfd.c): filling missing pages
 * (mfill_atomic: UFFDIO_COPY's copied page, UFFDIO_ZEROPAGE's zero page), setting and clearing
 * the uffd-wp bit (mwriteprotect_range), and marking VMAs registered or not
 * (userfaultfd_register_range, userfaultfd_clear_vma).
 *
 * XXX: Linux 6.12 (CONFIG_PER_VMA_LOCK) fills under the VMA's own lock when it can; the model
 * has no per-VMA locks and takes mmap_lock for reading, as the fallback does. No hugetlbfs, no
 * shmem (shmem_mfill_atomic_pte, mfill_atomic_pte_continue), no poison, no MOVE.
 */
import { track } from '../track.js';
import type { Kernel, PerCpu } from './kernel.js';
import { spin_lock_ptl, spin_unlock_ptl } from './memory.js';
import type { MmStruct } from './mm.js';
import { mmap_read_lock, mmap_read_unlock } from './mmap.js';
import { change_protection, MM_CP_TRY_CHANGE_WRITABLE, MM_CP_UFFD_WP, MM_CP_UFFD_WP_RESOLVE } from './mprotect.js';
import { PG_NEW_ANON, type PageRefs } from './page.js';
import { __pte, _PAGE_SPECIAL, mk_pte, pte_clear_uffd_wp, pte_mkdirty, pte_mkuffd_wp, pte_mkwrite, pte_none, pte_present, pte_swp_clear_uffd_wp, pte_uffd_wp, pte_swp_uffd_wp, vm_get_page_prot } from './pgtable.js';
import { __fatal_signal_pending } from './signal.js';
import { cond_resched } from './sched.js';
import { STEP_COPY, STEP_READ, STEP_WRITE, type KSteps } from './steps.js';
import type { Task } from './task.js';
import { flush_tlb_mm_range } from './tlbflush.js';
import { copy_from_user, copy_from_user_nofault } from './uaccess.js';
import { EAGAIN, EEXIST, EFAULT, EINTR, EINVAL, ENOENT, ENOMEM } from './uapi.js';
import { userfaultfd_wp, type UserfaultfdCtx } from './userfaultfd.js';
import { VM_SHARED, VM_UFFD_MISSING, VM_UFFD_WP, VM_WRITE, type Vma } from './vma.js';

/** What mfill_atomic fills with: UFFDIO_COPY's page (MFILL_ATOMIC_COPY) or the zero page (MFILL_ATOMIC_ZEROPAGE). */
export type MfillMode = 'copy' | 'zeropage';

/**
 * mfill_atomic's frame: the page it allocated and holds between steps (`foliop`, carried across
 * a retry that copies the source outside the lock), listed for the debug checks.
 */
class MfillState implements PageRefs {
  readonly refs: number[] = [];
  constructor() {
    return track(this);
  }
}

/**
 * mfill_atomic(ctx, dst_start, src_start, len, mode): under mmap_lock for reading, the VMA at
 * dst_start (-ENOENT: none, not registered, or the range not inside it; -ENOMEM: no anon_vma),
 * mmap_changing (-EAGAIN), a WP fill into a VMA not registered for WP (-EINVAL), a VMA neither
 * anonymous nor shmem (-EINVAL); then page by page: the PTE table (-ENOMEM), the fill
 * (mfill_atomic_pte_copy or _zeropage: -EEXIST where a PTE is already there); a source page not
 * readable without a fault ends the lock: the source is copied with faults allowed (-EFAULT)
 * and the fill retried from the VMA lookup. A fatal signal after a page is -EINTR. Returns the
 * bytes filled if any, else -errno.
 */
export function* mfill_atomic(k: Kernel, pc: PerCpu, t: Task, ctx: UserfaultfdCtx, dst_start: number, src_start: number, len: number, mode: MfillMode, wp: boolean): KSteps<number> {
  const mm = ctx.mm;
  const st = new MfillState();
  let src_addr = src_start;
  let dst_addr = dst_start;
  let copied = 0;
  let err = 0;
  let folio = -1;
  retry: for (;;) {
    // uffd_mfill_lock: find_vma_and_prepare_anon, then validate_dst_vma.
    yield* mmap_read_lock(k, pc, mm);
    const dst_vma = mm.vmas.vma_lookup(dst_start);
    if (!dst_vma) err = -ENOENT;
    else {
      if (!(dst_vma.vm_flags & VM_SHARED) && !dst_vma.anon_vma) dst_vma.anon_vma = { id: k.nextObjectId(), forked: false };
      if (dst_start + len > dst_vma.vm_end || !dst_vma.vm_userfaultfd_ctx) err = -ENOENT;
    }
    if (!err && ctx.mmap_changing) err = -EAGAIN;
    // A WP copy only into a VMA registered for WP; only anonymous (and shmem) VMAs.
    if (!err && wp && !(dst_vma!.vm_flags & VM_UFFD_WP)) err = -EINVAL;
    if (!err && dst_vma!.shmem) err = -EINVAL; // XXX: shmem_mfill_atomic_pte (no shmem VMA is ever registered in the model)
    while (!err && src_addr < src_start + len) {
      const table = mm.pgtables.pteTable(dst_addr, true);
      if (table < 0) {
        err = -ENOMEM;
        break;
      }
      if (mode === 'copy') {
        const r = yield* mfill_atomic_pte_copy(k, pc, t, st, mm, dst_vma!, table, dst_addr, src_addr, wp, folio);
        err = r.err;
        folio = r.folio;
      } else err = yield* mfill_atomic_pte_zeropage(k, pc, t, mm, dst_vma!, table, dst_addr);
      yield* cond_resched(k, pc, t);
      if (err === -ENOENT) {
        // The source page faulted: copy it with faults allowed, outside mmap_lock, and retry.
        yield* mmap_read_unlock(pc, mm);
        const bytes = yield* copy_from_user(k, pc, t, BigInt(src_addr), 4096);
        if (!bytes) {
          err = -EFAULT;
          break retry;
        }
        pc.touch = folio * 4096;
        yield STEP_COPY;
        k.machine.mem.writeBytes(folio * 4096, bytes);
        err = 0;
        continue retry;
      }
      if (!err) {
        dst_addr += 4096;
        src_addr += 4096;
        copied += 4096;
        if (__fatal_signal_pending(t)) err = -EINTR;
      }
    }
    yield* mmap_read_unlock(pc, mm);
    break;
  }
  if (folio >= 0) put(k, st, folio);
  return copied ? copied : err;
}

/** The fill holds a reference to `pfn` (listed for the debug checks). */
function hold(k: Kernel, st: MfillState, pfn: number): void {
  st.refs.push(pfn);
  k.pages.held.add(st);
}

/** The held reference to `pfn` passes to a PTE. */
function pass(k: Kernel, st: MfillState, pfn: number): void {
  const i = st.refs.indexOf(pfn);
  if (i >= 0) st.refs.splice(i, 1);
  if (st.refs.length === 0) k.pages.held.delete(st);
}

/** folio_put of a held reference. */
function put(k: Kernel, st: MfillState, pfn: number): void {
  pass(k, st, pfn);
  k.pages.put_page(pfn);
}

/**
 * mfill_atomic_pte_copy: a new anonymous page (-ENOMEM) filled from the source page with faults
 * disabled (a step); if the source would fault, -ENOENT with the page kept in `folio` for the
 * caller to fill; otherwise mfill_atomic_install_pte, the page freed if that fails. A `folio`
 * already filled is used as it is.
 */
function* mfill_atomic_pte_copy(k: Kernel, pc: PerCpu, t: Task, st: MfillState, mm: MmStruct, vma: Vma, table: number, dst_addr: number, src_addr: number, wp: boolean, folio: number): KSteps<{ err: number; folio: number }> {
  let page = folio;
  if (page < 0) {
    page = k.pages.alloc_page(PG_NEW_ANON, false);
    if (page < 0) return { err: -ENOMEM, folio: -1 };
    hold(k, st, page);
    const bytes = yield* copy_from_user_nofault(k, pc, t, BigInt(src_addr), 4096);
    if (!bytes) return { err: -ENOENT, folio: page };
    pc.touch = page * 4096;
    yield STEP_COPY;
    k.machine.mem.writeBytes(page * 4096, bytes);
    if (k.events.on) k.emit({ type: 'page_copy', cpu: pc.id, tid: t.tid, src: -1, dst: page });
  }
  const err = yield* mfill_atomic_install_pte(k, pc, t, mm, vma, table, dst_addr, page, wp);
  if (err) put(k, st, page);
  else pass(k, st, page);
  return { err, folio: -1 };
}

/**
 * mfill_atomic_install_pte for a new anonymous page: the entry from the VMA's protection, dirty,
 * writable in a VM_WRITE VMA, and uffd-wp (so read-only) with `wp`; under the page-table lock,
 * -EEXIST if the PTE is not empty; else the entry is set (no flush: it was not present) with
 * folio_add_new_anon_rmap and MM_ANONPAGES in the same step.
 */
function* mfill_atomic_install_pte(k: Kernel, pc: PerCpu, t: Task, mm: MmStruct, vma: Vma, table: number, dst_addr: number, page: number, wp: boolean): KSteps<number> {
  const mem = k.machine.mem;
  const prot = vm_get_page_prot(__pte(), vma.vm_flags, vma.vm_pkey, k.nx);
  const entry = pte_mkdirty(mk_pte(__pte(), page, prot.lo, prot.hi));
  if (vma.vm_flags & VM_WRITE) pte_mkwrite(entry, vma.shadowStack);
  if (wp) pte_mkuffd_wp(entry);
  const index = Math.floor(dst_addr / 4096) % 512;
  yield* spin_lock_ptl(pc, mm, t);
  pc.touch = table * 4096 + index * 8;
  yield STEP_READ;
  let ret = -EEXIST;
  if (pte_none(mem.readLo(table, index), mem.readHi(table, index))) {
    pc.touch = table * 4096 + index * 8;
    yield STEP_WRITE;
    mem.write64(table, index, entry.lo, entry.hi);
    k.pages.mapcount[page] = 1;
    k.pages.index[page] = dst_addr / 4096;
    mm.rss++;
    ret = 0;
  }
  yield* spin_unlock_ptl(pc, mm);
  return ret;
}

/**
 * mfill_atomic_pte_zeropage: the zero page (special, read-only, the VMA's protection) mapped
 * under the page-table lock if the PTE is empty, else -EEXIST.
 */
function* mfill_atomic_pte_zeropage(k: Kernel, pc: PerCpu, t: Task, mm: MmStruct, vma: Vma, table: number, dst_addr: number): KSteps<number> {
  const mem = k.machine.mem;
  const prot = vm_get_page_prot(__pte(), vma.vm_flags, vma.vm_pkey, k.nx);
  const entry = mk_pte(__pte(), k.zero_pfn, prot.lo, prot.hi);
  entry.lo |= _PAGE_SPECIAL;
  const index = Math.floor(dst_addr / 4096) % 512;
  yield* spin_lock_ptl(pc, mm, t);
  pc.touch = table * 4096 + index * 8;
  yield STEP_READ;
  let ret = -EEXIST;
  if (pte_none(mem.readLo(table, index), mem.readHi(table, index))) {
    pc.touch = table * 4096 + index * 8;
    yield STEP_WRITE;
    mem.write64(table, index, entry.lo, entry.hi);
    ret = 0;
  }
  yield* spin_unlock_ptl(pc, mm);
  return ret;
}

/**
 * uffd_wp_range: change_protection of [start, start + len) of `vma` setting the uffd-wp bit
 * (MM_CP_UFFD_WP) or clearing it (MM_CP_UFFD_WP_RESOLVE, with MM_CP_TRY_CHANGE_WRITABLE in a
 * writable VMA, so an exclusive anonymous page becomes writable at once), then the TLB flush of
 * what changed (tlb_finish_mmu).
 */
export function* uffd_wp_range(k: Kernel, pc: PerCpu, t: Task, mm: MmStruct, vma: Vma, start: number, len: number, enable_wp: boolean): KSteps<void> {
  let cp_flags = enable_wp ? MM_CP_UFFD_WP : MM_CP_UFFD_WP_RESOLVE;
  // vma_wants_manual_pte_write_upgrade: a private writable VMA (the model registers no shared one).
  if (!enable_wp && vma.vm_flags & VM_WRITE) cp_flags |= MM_CP_TRY_CHANGE_WRITABLE;
  const flush = yield* change_protection(k, pc, t, vma, start, start + len, cp_flags, mm);
  if (flush) yield* flush_tlb_mm_range(k, pc, mm, flush[0], flush[1], 12, false);
}

/**
 * mwriteprotect_range: under mmap_lock for reading, mmap_changing (-EAGAIN); every VMA in
 * [start, start + len) must be registered for WP (-ENOENT, also when there is none; the VMAs
 * before it are already changed); each part in the range gets uffd_wp_range.
 */
export function* mwriteprotect_range(k: Kernel, pc: PerCpu, t: Task, ctx: UserfaultfdCtx, start: number, len: number, enable_wp: boolean): KSteps<number> {
  const mm = ctx.mm;
  const end = start + len;
  yield* mmap_read_lock(k, pc, mm);
  let err = ctx.mmap_changing ? -EAGAIN : -ENOENT;
  if (!ctx.mmap_changing) {
    for (let vma = mm.vmas.find_vma_intersection(start, end); vma; vma = mm.vmas.find_vma_intersection(vma.vm_end, end)) {
      if (!userfaultfd_wp(vma)) {
        err = -ENOENT;
        break;
      }
      const _start = Math.max(vma.vm_start, start);
      const _end = Math.min(vma.vm_end, end);
      yield* uffd_wp_range(k, pc, t, mm, vma, _start, _end - _start, enable_wp);
      err = 0;
      if (vma.vm_end >= end) break;
    }
  }
  yield* mmap_read_unlock(pc, mm);
  return err;
}

/**
 * vma_modify_flags_uffd: [start, end) of `vma` (split off as needed) gets `flags` and `ctx`,
 * then merges with its neighbours if they now match. Returns the VMA covering the range.
 * Does not touch page tables.
 */
function vma_modify_flags_uffd(mm: MmStruct, vma: Vma, start: number, end: number, flags: number, ctx: UserfaultfdCtx | null): Vma {
  if (start > vma.vm_start) vma = mm.vmas.split(vma, start);
  if (end < vma.vm_end) mm.vmas.split(vma, end);
  vma.vm_flags = flags;
  vma.vm_userfaultfd_ctx = ctx;
  return mm.vmas.mergeAround(vma);
}

/**
 * userfaultfd_register_range, under mmap_lock for writing (the caller checked every VMA): each
 * VMA in [start, end) not already this context's with these modes gets the modes (in place of
 * any it had) and the context, split at the range's ends and merged where it can be.
 * XXX: the split does not check the map count (-ENOMEM in Linux past vm.max_map_count).
 */
export function userfaultfd_register_range(mm: MmStruct, ctx: UserfaultfdCtx, vm_flags: number, start: number, end: number): number {
  for (let vma = mm.vmas.find_vma_intersection(start, end); vma; vma = mm.vmas.find_vma_intersection(start, end)) {
    if (!(vma.vm_userfaultfd_ctx === ctx && (vma.vm_flags & vm_flags) === vm_flags)) {
      if (vma.vm_start > start) start = vma.vm_start;
      const vma_end = Math.min(end, vma.vm_end);
      const new_flags = (vma.vm_flags & ~(VM_UFFD_MISSING | VM_UFFD_WP)) | vm_flags;
      vma = vma_modify_flags_uffd(mm, vma, start, vma_end, new_flags, ctx);
    }
    start = vma.vm_end;
    if (start >= end) break;
  }
  return 0;
}

/**
 * userfaultfd_clear_vma for UFFDIO_UNREGISTER (under mmap_lock for writing): a uffd-wp VMA's
 * entries in [start, end) lose the uffd-wp bit (uffd_wp_range, made writable where they can
 * be, flushed), then the range loses the VM_UFFD_* flags and the context. Returns the VMA
 * covering the range.
 */
export function* userfaultfd_clear_vma(k: Kernel, pc: PerCpu, t: Task, mm: MmStruct, vma: Vma, start: number, end: number): KSteps<Vma> {
  if (userfaultfd_wp(vma)) yield* uffd_wp_range(k, pc, t, mm, vma, start, end - start, false);
  return vma_modify_flags_uffd(mm, vma, start, end, vma.vm_flags & ~(VM_UFFD_MISSING | VM_UFFD_WP), null);
}

/**
 * userfaultfd_clear_vma as the release of the last descriptor does it in the model (see
 * userfaultfd_release): the uffd-wp bits of the VMA's present and swap entries cleared in
 * place (clearing a software bit needs no flush), then the flags and context reset.
 */
export function userfaultfd_clear_vma_now(k: Kernel, mm: MmStruct, vma: Vma): void {
  if (userfaultfd_wp(vma)) {
    const mem = k.machine.mem;
    const p = __pte();
    mm.pgtables.forEachPteTable(vma.vm_start, vma.vm_end, (table, from, to) => {
      for (let i = from; i < to; i++) {
        p.lo = mem.readLo(table, i);
        p.hi = mem.readHi(table, i);
        if (pte_none(p.lo, p.hi)) continue;
        if (pte_present(p.lo) ? !pte_uffd_wp(p.lo) : !pte_swp_uffd_wp(p.lo)) continue;
        if (pte_present(p.lo)) pte_clear_uffd_wp(p);
        else pte_swp_clear_uffd_wp(p);
        mem.write64(table, i, p.lo, p.hi);
      }
    });
  }
  vma_modify_flags_uffd(mm, vma, vma.vm_start, vma.vm_end, vma.vm_flags & ~(VM_UFFD_MISSING | VM_UFFD_WP), null);
}
