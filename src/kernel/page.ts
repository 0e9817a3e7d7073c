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

export class PageAllocator {
  readonly mem: PhysMem;
  /** page_ref_count, by frame. A free frame has 0. */
  readonly refcount: Int32Array;
  /** page_mapcount: how many PTEs map the frame. */
  readonly mapcount: Int32Array;
  /** PG_* flags, by frame. */
  readonly flags: Uint8Array;
  private nextFresh: number;
  private readonly freed: number[] = [];
  /** Frames currently allocated (refcount > 0), reserved ones included. */
  inUse = 0;

  /** Manages every frame from `firstFree` up; the frames below are reserved for boot. */
  constructor(mem: PhysMem, firstFree: number) {
    this.mem = mem;
    this.refcount = new Int32Array(mem.frameCount);
    this.mapcount = new Int32Array(mem.frameCount);
    this.flags = new Uint8Array(mem.frameCount);
    for (let pfn = 0; pfn < firstFree; pfn++) {
      this.refcount[pfn] = 1;
      this.flags[pfn] = PG_reserved;
    }
    this.nextFresh = firstFree;
    this.inUse = firstFree;
  }

  /** Frames never allocated plus frames freed: what alloc_page can still hand out. */
  get freeFrames(): number {
    return this.mem.frameCount - this.nextFresh + this.freed.length;
  }

  /**
   * alloc_page: a frame with refcount 1, no map count and `flags`; zeroed when `zero`
   * (__GFP_ZERO). Returns -1 when memory is exhausted (the caller reports ENOMEM or OOM).
   */
  alloc_page(flags: number, zero: boolean): number {
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
