/**
 * struct page, reduced to what isolation needs: a reference count, a map count and a few
 * flags per physical frame, plus the buddy allocator's job of handing out free frames
 * (mm/page_alloc.c, include/linux/page-flags.h, include/linux/mm.h).
 *
 * Frames are handed out lowest-first from a bump pointer and reused newest-freed-first, so a
 * run is deterministic (DESIGN.md rule 3). Does not zero or touch frame contents except where
 * a function says so.
 */
import { ModelError } from '../errors.js';
import type { PhysMem } from '../hw/physmem.js';
import { track } from '../track.js';

/** The page is anonymous memory (PageAnon). */
export const PG_anon = 1 << 0;
/** The anonymous page is mapped by exactly one process and may be written without a copy (PageAnonExclusive). */
export const PG_anon_exclusive = 1 << 1;
/** The page holds a page table (PageTable). */
export const PG_table = 1 << 2;
/** The page belongs to the kernel image or another boot-time allocation that is never freed (PageReserved). */
export const PG_reserved = 1 << 3;
/** The page belongs to a shared-memory (shmem) object: MAP_SHARED anonymous memory. */
export const PG_shmem = 1 << 4;

/** The page's data is newer than its backing store (PG_dirty: folio_mark_dirty, folio_clear_dirty). */
export const PG_dirty = 1 << 5;
/**
 * PG_swapbacked: an anonymous (or shmem) folio whose data must go to swap before it can be
 * freed. Set on every new anonymous folio (folio_add_new_anon_rmap); MADV_FREE clears it
 * (folio_mark_lazyfree: the folio may be discarded while clean) and reclaim sets it again on a
 * lazyfree folio that was written since.
 */
export const PG_swapbacked = 1 << 6;
/** PG_swapcache: the folio is in the swap cache; `PageAllocator.swap` holds its slot (folio->swap). */
export const PG_swapcache = 1 << 7;
/** PG_lru: the folio is on an LRU list (folio_isolate_lru takes it off for reclaim). */
export const PG_lru = 1 << 8;
/** PG_active: on the active LRU list (set by reclaim's activate_locked; MADV_COLD's folio_deactivate clears it). */
export const PG_active = 1 << 9;
/** PG_referenced: a second-chance mark for the LRU (folio_clear_referenced). */
export const PG_referenced = 1 << 10;
/** PG_locked: the folio lock (folio_lock, folio_trylock, folio_unlock). */
export const PG_locked = 1 << 11;
/** PG_workingset: the folio was active when deactivated (MADV_COLD, MADV_PAGEOUT). */
export const PG_workingset = 1 << 12;
/** PG_mlocked: the folio is mapped by a VM_LOCKED VMA (mlock_folio): not evictable, reclaim leaves it alone. */
export const PG_mlocked = 1 << 13;

/** The flags of a new anonymous folio once mapped: anonymous, exclusive, swap-backed, on the (inactive) LRU. */
export const PG_NEW_ANON = PG_anon | PG_anon_exclusive | PG_swapbacked | PG_lru;

/** GUP_PIN_COUNTING_BIAS (include/linux/mm.h): what one FOLL_PIN adds to a small folio's reference count; a count at or above it means "maybe pinned" (folio_maybe_dma_pinned). */
export const GUP_PIN_COUNTING_BIAS = 1024;

/**
 * Page references a kernel path holds between its steps outside any page table or object
 * (folio_get across a dropped lock, a new page not yet mapped, pages an mmu_gather frees after
 * its flush). The path adds itself to `PageAllocator.held` while it holds any, so the debug
 * checks count them instead of reporting a leak in the middle of another CPU's path.
 */
export interface PageRefs {
  readonly refs: readonly number[];
  /**
   * Mappings the path is retiring: frames whose PTE it cleared and whose rmap (a map count and
   * the mapping's reference) it removes in a later step (wp_page_copy between ptep_clear_flush
   * and folio_remove_rmap_pte, with the flush's IPIs in between).
   */
  readonly unmapping?: readonly number[];
  /** Frames it holds a FOLL_PIN pin on (GUP_PIN_COUNTING_BIAS references each). */
  readonly pins?: readonly number[];
}

/** What an allocation is for, as allocation-failure injection counts them (kernel option `fail_alloc`). */
export type AllocKind = 'pgd' | 'pgtable' | 'ldt' | 'page';

export class PageAllocator {
  readonly mem: PhysMem;
  /** page_ref_count, by frame. A free frame has 0. */
  readonly refcount: Int32Array;
  /** page_mapcount: how many PTEs map the frame. */
  readonly mapcount: Int32Array;
  /** PG_* flags, by frame. */
  readonly flags: Uint16Array;
  /** folio->swap: the swap slot (offset in the model's one swap area) of a PG_swapcache folio. */
  readonly swap: Int32Array;
  /** folio->index for an anonymous folio: the user page number (address / 4096) it was first mapped at, for the rmap walk. */
  readonly index: Float64Array;
  private nextFresh: number;
  private readonly freed: number[] = [];
  /** Freed 8 KiB-aligned frame pairs, reused before fresh ones (order-1 allocations). */
  private readonly freedPairs: number[] = [];
  /** Allocation-failure injection: the kind that fails, the failing ordinal, and the counts so far. */
  failKind: AllocKind | 'none' = 'none';
  failNth = 0;
  readonly allocCount: Record<AllocKind, number> = { pgd: 0, pgtable: 0, ldt: 0, page: 0 };
  /** Frames currently allocated (refcount > 0), reserved ones included. */
  inUse = 0;
  /** Kernel paths holding page references between steps (see PageRefs). */
  readonly held = new Set<PageRefs>();

  /** Manages every frame from `firstFree` up; the frames below are reserved for boot. */
  constructor(mem: PhysMem, firstFree: number) {
    this.mem = mem;
    this.refcount = new Int32Array(mem.frameCount);
    this.mapcount = new Int32Array(mem.frameCount);
    this.flags = new Uint16Array(mem.frameCount);
    this.swap = new Int32Array(mem.frameCount);
    this.index = new Float64Array(mem.frameCount);
    for (let pfn = 0; pfn < firstFree; pfn++) {
      this.refcount[pfn] = 1;
      this.flags[pfn] = PG_reserved;
    }
    this.nextFresh = firstFree;
    this.inUse = firstFree;
    return track(this);
  }

  /** Frames never allocated plus frames freed: what alloc_page can still hand out. */
  get freeFrames(): number {
    return this.mem.frameCount - this.nextFresh + this.freed.length + 2 * this.freedPairs.length;
  }

  /**
   * alloc_page: a frame with refcount 1, no map count and `flags`; zeroed when `zero`
   * (__GFP_ZERO). Returns -1 when memory is exhausted (the caller reports ENOMEM or OOM).
   */
  alloc_page(flags: number, zero: boolean, kind: AllocKind = flags & PG_table ? 'pgtable' : 'page'): number {
    if (this.should_fail_alloc(kind)) return -1;
    let pfn: number;
    if (this.freed.length > 0) pfn = this.freed.pop()!;
    else if (this.nextFresh < this.mem.frameCount) pfn = this.nextFresh++;
    else return -1;
    this.refcount[pfn] = 1;
    this.mapcount[pfn] = 0;
    this.flags[pfn] = flags;
    this.inUse++;
    if (zero) this.mem.zeroFrame(pfn);
    return pfn;
  }

  /**
   * should_fail_alloc (the fail_page_alloc fault-injection point): counts an allocation of
   * `kind` and says whether the injected failure is this one.
   */
  should_fail_alloc(kind: AllocKind): boolean {
    const n = ++this.allocCount[kind];
    return kind === this.failKind && n === this.failNth;
  }

  /**
   * alloc_pages(order 1): two zeroed contiguous frames, the first 8 KiB-aligned, each with
   * refcount 1 and `flags` (the PTI PGD pair). Returns the first frame, or -1.
   */
  alloc_pages_order1(flags: number, kind: AllocKind): number {
    if (this.should_fail_alloc(kind)) return -1;
    let pfn: number;
    if (this.freedPairs.length > 0) pfn = this.freedPairs.pop()!;
    else {
      if (this.nextFresh % 2 === 1 && this.nextFresh < this.mem.frameCount) {
        // The odd frame before the pair goes to the single-frame free list.
        this.refcount[this.nextFresh] = 0;
        this.freed.push(this.nextFresh++);
      }
      if (this.nextFresh + 2 > this.mem.frameCount) return -1;
      pfn = this.nextFresh;
      this.nextFresh += 2;
    }
    for (const f of [pfn, pfn + 1]) {
      this.refcount[f] = 1;
      this.mapcount[f] = 0;
      this.flags[f] = flags;
      this.mem.zeroFrame(f);
    }
    this.inUse += 2;
    return pfn;
  }

  /** __free_pages(order 1): frees a pair from alloc_pages_order1 (each frame must hold its last reference). */
  free_pages_order1(pfn: number): void {
    for (const f of [pfn, pfn + 1]) {
      if (this.refcount[f] !== 1) throw new ModelError('free_pages', `frame 0x${f.toString(16)} of an order-1 block has refcount ${this.refcount[f]}`);
      this.refcount[f] = 0;
      this.flags[f] = 0;
    }
    this.freedPairs.push(pfn);
    this.inUse -= 2;
  }

  /** get_page: one more reference. */
  get_page(pfn: number): void {
    this.refcount[pfn]++;
  }

  /** put_page: one reference fewer; frees the frame when none is left. Reserved frames are never freed. */
  put_page(pfn: number): void {
    const r = --this.refcount[pfn];
    if (r > 0 || this.flags[pfn] & PG_reserved) return;
    if (r < 0) throw new ModelError('put_page', `frame 0x${pfn.toString(16)} has refcount ${r}`);
    this.flags[pfn] = 0;
    this.mapcount[pfn] = 0;
    this.freed.push(pfn);
    this.inUse--;
  }
}

/** The lock id a step on a folio's lock announces (steps.ts): negative, apart from the per-mm ids (mmput.ts). */
export function folio_lock_id(pfn: number): number {
  return -(2 ** 39 + pfn);
}

/**
 * folio_mark_dirty for an anonymous folio losing a dirty mapping (D or SavedDirty), when kernel
 * option anon_dirty_drop is folio_mark_dirty (a proposed fix, docs/findings.md): only a folio
 * reclaim would otherwise discard or drop without writing, a lazyfree one (MADV_FREE cleared
 * PG_swapbacked) or one in the swap cache. Upstream forgets the dirtiness of every anonymous
 * folio's mapping.
 */
export function anon_folio_keep_dirty(pages: PageAllocator, pfn: number): void {
  const f = pages.flags[pfn];
  if (f & PG_anon && (!(f & PG_swapbacked) || f & PG_swapcache)) pages.flags[pfn] |= PG_dirty;
}
