/**
 * The page-table side of userfaultfd (mm/userfaultfd.c, mm/shmem.c): filling missing pages
 * (mfill_atomic: UFFDIO_COPY's copied page, UFFDIO_ZEROPAGE's zero page, each put into the
 * page cache first in a shared shmem VMA (shmem_mfill_atomic_pte), and UFFDIO_CONTINUE's
 * mapping of a page the page cache already has), setting and clearing the uffd-wp bit
 * (mwriteprotect_range), and marking VMAs registered or not (userfaultfd_register_range,
 * userfaultfd_clear_vma, userfaultfd_reset_ctx).
 *
 * XXX: Linux 6.12 (CONFIG_PER_VMA_LOCK) fills under the VMA's own lock when it can; the model
 * has no per-VMA locks and takes mmap_lock for reading, as the fallback does. No hugetlbfs, no
 * poison, no MOVE; no shmem block accounting (shmem_inode_acct_blocks) or memcg charge.
 */
import { track } from '../track.js';
import type { Kernel, PerCpu } from './kernel.js';
import { spin_lock_ptl, spin_unlock_ptl } from './memory.js';
import type { MmStruct } from './mm.js';
import { mmap_read_lock, mmap_read_unlock } from './mmap.js';
import { change_protection, MM_CP_TRY_CHANGE_WRITABLE, MM_CP_UFFD_WP, MM_CP_UFFD_WP_RESOLVE } from './mprotect.js';
import { PG_NEW_ANON, PG_shmem, type PageRefs } from './page.js';
import { __pte, _PAGE_SPECIAL, mk_pte, pte_clear_uffd_wp, pte_mkdirty, pte_mkuffd_wp, pte_mkwrite, pte_none, pte_present, pte_swp_clear_uffd_wp, pte_uffd_wp, pte_swp_uffd_wp, vm_get_page_prot } from './pgtable.js';
import { __fatal_signal_pending } from './signal.js';
import { cond_resched } from './sched.js';
import { STEP_COPY, STEP_READ, STEP_WRITE, type KSteps } from './steps.js';
import type { Task } from './task.js';
import { flush_tlb_mm_range } from './tlbflush.js';
import { copy_from_user, copy_from_user_nofault } from './uaccess.js';
import { EAGAIN, EEXIST, EFAULT, EINTR, EINVAL, ENOENT, ENOMEM } from './uapi.js';
import { userfaultfd_wp, vma_is_shmem, type UserfaultfdCtx } from './userfaultfd.js';
import { VM_SHARED, VM_UFFD_MISSING, VM_UFFD_WP, VM_WRITE, type ShmemObject, type Vma } from './vma.js';

/** What mfill_atomic fills with: UFFDIO_COPY's page (MFILL_ATOMIC_COPY), the zero page (MFILL_ATOMIC_ZEROPAGE), or the page cache's own page (MFILL_ATOMIC_CONTINUE). */
export type MfillMode = 'copy' | 'zeropage' | 'continue';

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
 * dst_start (-ENOENT: none, not registered, or the range not inside it; a private VMA gets its
 * anon_vma), mmap_changing (-EAGAIN), a WP fill into a VMA not registered for WP (-EINVAL),
 * CONTINUE into a VMA that is not shmem (-EINVAL); then page by page: the PTE table (-ENOMEM),
 * the fill (mfill_atomic_pte: -EEXIST where a PTE or, in shared shmem, a cached page is already
 * there; -EFAULT past a file's end or, for CONTINUE, where the page cache has no page); a
 * source page not readable without a fault ends the lock: the source is copied with faults
 * allowed (-EFAULT) and the fill retried from the VMA lookup. A fatal signal after a page is
 * -EINTR. Returns the bytes filled if any, else -errno.
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
    // A WP fill only into a VMA registered for WP (never shmem here: see userfaultfd.ts).
    if (!err && wp && !(dst_vma!.vm_flags & VM_UFFD_WP)) err = -EINVAL;
    // Every VMA of the model is anonymous or shmem; CONTINUE needs shmem.
    if (!err && !vma_is_shmem(dst_vma!) && mode === 'continue') err = -EINVAL;
    while (!err && src_addr < src_start + len) {
      const table = mm.pgtables.pteTable(dst_addr, true);
      if (table < 0) {
        err = -ENOMEM;
        break;
      }
      const r = yield* mfill_atomic_pte(k, pc, t, st, mm, dst_vma!, table, dst_addr, src_addr, mode, wp, folio);
      err = r.err;
      folio = r.folio;
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

/**
 * mfill_atomic_pte: CONTINUE maps the page cache's page (mfill_atomic_pte_continue); in a
 * private VMA (anonymous, or a tmpfs file mapped private) COPY and ZEROPAGE fill as for
 * anonymous memory, the hole in the file left alone; in a shared one, shmem_mfill_atomic_pte
 * puts the page into the page cache and maps it.
 */
function mfill_atomic_pte(k: Kernel, pc: PerCpu, t: Task, st: MfillState, mm: MmStruct, vma: Vma, table: number, dst_addr: number, src_addr: number, mode: MfillMode, wp: boolean, folio: number): KSteps<{ err: number; folio: number }> {
  if (mode === 'continue') return mfill_atomic_pte_continue(k, pc, t, st, mm, vma, table, dst_addr, wp);
  if (!(vma.vm_flags & VM_SHARED)) {
    if (mode === 'copy') return mfill_atomic_pte_copy(k, pc, t, st, mm, vma, table, dst_addr, src_addr, wp, folio);
    return noFolio(mfill_atomic_pte_zeropage(k, pc, t, mm, vma, table, dst_addr));
  }
  return shmem_mfill_atomic_pte(k, pc, t, st, mm, vma, table, dst_addr, src_addr, mode, wp, folio);
}

/** A fill that never keeps a page for the caller: its error with no folio. */
function* noFolio(fill: KSteps<number>): KSteps<{ err: number; folio: number }> {
  return { err: yield* fill, folio: -1 };
}

/** linear_page_index: the object's page offset of `addr` in `vma`. */
function linear_page_index(vma: Vma, addr: number): number {
  return vma.vm_pgoff + (addr - vma.vm_start) / 4096;
}

/** The size of the file behind a shmem object (i_size): a tmpfs file's, or the mapping's length for shared anonymous memory. */
function shmem_i_size(obj: ShmemObject): number {
  return obj.file ? obj.file.size : obj.size;
}

/** mfill_file_over_size: the VMA has a file (a shmem object here) and `addr` is at or past its last page. */
function mfill_file_over_size(vma: Vma, addr: number): boolean {
  if (!vma.shmem) return false;
  return linear_page_index(vma, addr) >= Math.ceil(shmem_i_size(vma.shmem) / 4096);
}

/**
 * shmem_mfill_atomic_pte for a shared shmem VMA: a new shmem page (-ENOMEM) filled from the
 * source with faults disabled (-ENOENT with the page kept in `folio` if the source would
 * fault; a `folio` already filled is used as it is) or zeroed; past the file's end -EFAULT;
 * then shmem_add_to_page_cache (-EEXIST if the object has a page there) and
 * mfill_atomic_install_pte (-EEXIST if the PTE is not empty: the page leaves the cache again).
 * The page is freed on any error.
 * XXX: Linux adds the page to the cache locked before it takes the page-table lock, and a
 * fault that finds it waits on the folio lock until the fill is done or has taken it out
 * again; the model adds it in the step that writes the PTE, which no reader can tell apart.
 */
function* shmem_mfill_atomic_pte(k: Kernel, pc: PerCpu, t: Task, st: MfillState, mm: MmStruct, vma: Vma, table: number, dst_addr: number, src_addr: number, mode: MfillMode, wp: boolean, folio: number): KSteps<{ err: number; folio: number }> {
  const obj = vma.shmem!;
  const pgoff = linear_page_index(vma, dst_addr);
  let page = folio;
  if (page < 0) {
    page = k.pages.alloc_page(PG_shmem, false);
    if (page < 0) return { err: -ENOMEM, folio: -1 };
    hold(k, st, page);
    if (mode === 'copy') {
      const bytes = yield* copy_from_user_nofault(k, pc, t, BigInt(src_addr), 4096);
      if (!bytes) return { err: -ENOENT, folio: page };
      pc.touch = page * 4096;
      yield STEP_COPY;
      k.machine.mem.writeBytes(page * 4096, bytes);
      if (k.events.on) k.emit({ type: 'page_copy', cpu: pc.id, tid: t.tid, src: -1, dst: page });
    } else {
      // clear_user_highpage
      pc.touch = page * 4096;
      yield STEP_COPY;
      k.machine.mem.zeroFrame(page);
      if (k.events.on) k.emit({ type: 'page_copy', cpu: pc.id, tid: t.tid, src: -1, dst: page });
    }
  }
  let err = -EFAULT;
  if (pgoff < Math.ceil(shmem_i_size(obj) / 4096)) err = yield* mfill_atomic_install_pte(k, pc, t, mm, vma, table, dst_addr, page, wp, { obj, pgoff });
  if (err) put(k, st, page);
  else pass(k, st, page);
  return { err, folio: -1 };
}

/**
 * mfill_atomic_pte_continue: the page the shmem object has at this offset
 * (shmem_get_folio(SGP_NOALLOC): past the file's end -EINVAL, none -EFAULT), with a reference
 * (filemap_get_entry's), mapped by mfill_atomic_install_pte (the reference passes to the PTE;
 * dropped if that fails: -EEXIST for a PTE already there).
 */
function* mfill_atomic_pte_continue(k: Kernel, pc: PerCpu, t: Task, st: MfillState, mm: MmStruct, vma: Vma, table: number, dst_addr: number, wp: boolean): KSteps<{ err: number; folio: number }> {
  const obj = vma.shmem!;
  const pgoff = linear_page_index(vma, dst_addr);
  // shmem_get_folio_gfp: i_size first (sgp <= SGP_CACHE), then the page cache.
  if (pgoff >= Math.ceil(shmem_i_size(obj) / 4096)) return { err: -EINVAL, folio: -1 };
  const page = obj.pages.get(pgoff);
  if (page === undefined) return { err: -EFAULT, folio: -1 };
  k.pages.get_page(page);
  hold(k, st, page);
  const err = yield* mfill_atomic_install_pte(k, pc, t, mm, vma, table, dst_addr, page, wp, null, true);
  if (err) put(k, st, page);
  else pass(k, st, page);
  return { err, folio: -1 };
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
  const err = yield* mfill_atomic_install_pte(k, pc, t, mm, vma, table, dst_addr, page, wp, null);
  if (err) put(k, st, page);
  else pass(k, st, page);
  return { err, folio: -1 };
}

/** Where shmem_mfill_atomic_pte's new page goes into the page cache: the object and the page offset. */
interface CacheSlot {
  obj: ShmemObject;
  pgoff: number;
}

/**
 * mfill_atomic_install_pte: the entry from the VMA's protection, dirty, writable in a VM_WRITE
 * VMA unless the page is the page cache's and the VMA private, and uffd-wp (so read-only) with
 * `wp`. Under the page-table lock: a file's page at or past its end (mfill_file_over_size,
 * -EFAULT), then a PTE not empty (-EEXIST); else the entry is set (no flush: it was not
 * present) with the rmap and counters in the same step: folio_add_new_anon_rmap for a new
 * anonymous page, folio_add_file_rmap_pte for a page-cache page. `slot`: shmem_mfill_atomic_pte's
 * new page, which goes into the page cache in that step (-EEXIST, checked first, if the object
 * has a page there; see shmem_mfill_atomic_pte); `cached`: CONTINUE's page, already there.
 */
function* mfill_atomic_install_pte(k: Kernel, pc: PerCpu, t: Task, mm: MmStruct, vma: Vma, table: number, dst_addr: number, page: number, wp: boolean, slot: CacheSlot | null, cached = false): KSteps<number> {
  const mem = k.machine.mem;
  const page_in_cache = cached || slot !== null;
  const prot = vm_get_page_prot(__pte(), vma.vm_flags, vma.vm_pkey, k.nx);
  const entry = pte_mkdirty(mk_pte(__pte(), page, prot.lo, prot.hi));
  let writable = (vma.vm_flags & VM_WRITE) !== 0;
  if (page_in_cache && !(vma.vm_flags & VM_SHARED)) writable = false;
  if (writable) pte_mkwrite(entry, vma.shadowStack);
  if (wp) pte_mkuffd_wp(entry);
  const index = Math.floor(dst_addr / 4096) % 512;
  // shmem_add_to_page_cache: -EEXIST if the object already has a page at this offset.
  if (slot && slot.obj.pages.has(slot.pgoff)) return -EEXIST;
  yield* spin_lock_ptl(pc, mm, t);
  pc.touch = table * 4096 + index * 8;
  yield STEP_READ;
  let ret = 0;
  if (mfill_file_over_size(vma, dst_addr)) ret = -EFAULT;
  else if (!pte_none(mem.readLo(table, index), mem.readHi(table, index))) ret = -EEXIST;
  else if (slot && slot.obj.pages.has(slot.pgoff)) ret = -EEXIST;
  if (!ret) {
    pc.touch = table * 4096 + index * 8;
    yield STEP_WRITE;
    mem.write64(table, index, entry.lo, entry.hi);
    if (slot) {
      // The page cache's reference (shmem_add_to_page_cache's folio_ref_add).
      slot.obj.pages.set(slot.pgoff, page);
      k.pages.get_page(page);
    }
    if (page_in_cache) k.pages.mapcount[page]++;
    else {
      k.pages.mapcount[page] = 1;
      k.pages.index[page] = dst_addr / 4096;
    }
    mm.rss++;
  }
  yield* spin_unlock_ptl(pc, mm);
  return ret;
}

/**
 * mfill_atomic_pte_zeropage: the zero page (special, read-only, the VMA's protection) mapped
 * under the page-table lock: -EFAULT past a file's end (mfill_file_over_size), -EEXIST if the
 * PTE is not empty.
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
  let ret = 0;
  if (mfill_file_over_size(vma, dst_addr)) ret = -EFAULT;
  else if (!pte_none(mem.readLo(table, index), mem.readHi(table, index))) ret = -EEXIST;
  if (!ret) {
    pc.touch = table * 4096 + index * 8;
    yield STEP_WRITE;
    mem.write64(table, index, entry.lo, entry.hi);
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
 * vma_modify_flags_uffd: [start, end) of `vma` (split off as needed) gets `flags`, `minor`
 * (VM_UFFD_MINOR) and `ctx`, then merges with its neighbours if they now match. Returns the VMA
 * covering the range. Does not touch page tables.
 */
function vma_modify_flags_uffd(mm: MmStruct, vma: Vma, start: number, end: number, flags: number, minor: boolean, ctx: UserfaultfdCtx | null): Vma {
  if (start > vma.vm_start) vma = mm.vmas.split(vma, start);
  if (end < vma.vm_end) mm.vmas.split(vma, end);
  vma.vm_flags = flags;
  vma.uffdMinor = minor;
  vma.vm_userfaultfd_ctx = ctx;
  return mm.vmas.mergeAround(vma);
}

/**
 * userfaultfd_register_range, under mmap_lock for writing (the caller checked every VMA): each
 * VMA in [start, end) not already this context's with these modes gets the modes (in place of
 * any it had) and the context, split at the range's ends and merged where it can be.
 * XXX: the split does not check the map count (-ENOMEM in Linux past vm.max_map_count).
 */
export function userfaultfd_register_range(mm: MmStruct, ctx: UserfaultfdCtx, vm_flags: number, minor: boolean, start: number, end: number): number {
  for (let vma = mm.vmas.find_vma_intersection(start, end); vma; vma = mm.vmas.find_vma_intersection(start, end)) {
    if (!(vma.vm_userfaultfd_ctx === ctx && (vma.vm_flags & vm_flags) === vm_flags && (vma.uffdMinor || !minor))) {
      if (vma.vm_start > start) start = vma.vm_start;
      const vma_end = Math.min(end, vma.vm_end);
      const new_flags = (vma.vm_flags & ~(VM_UFFD_MISSING | VM_UFFD_WP)) | vm_flags;
      vma = vma_modify_flags_uffd(mm, vma, start, vma_end, new_flags, minor, ctx);
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
  return vma_modify_flags_uffd(mm, vma, start, end, vma.vm_flags & ~(VM_UFFD_MISSING | VM_UFFD_WP), false, null);
}

/** userfaultfd_reset_ctx (userfaultfd_set_ctx(vma, NULL, 0)): the VMA loses its context and VM_UFFD_* flags in place (no split, no merge, page tables untouched). */
export function userfaultfd_reset_ctx(vma: Vma): void {
  vma.vm_userfaultfd_ctx = null;
  vma.vm_flags &= ~(VM_UFFD_MISSING | VM_UFFD_WP);
  vma.uffdMinor = false;
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
  vma_modify_flags_uffd(mm, vma, vma.vm_start, vma.vm_end, vma.vm_flags & ~(VM_UFFD_MISSING | VM_UFFD_WP), false, null);
}
