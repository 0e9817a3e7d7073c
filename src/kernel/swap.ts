/**
 * The swap area and the swap cache (mm/swapfile.c, mm/swap_state.c, include/linux/swap.h):
 * one swap device of `swap_pages` slots (kernel option; 0: no swap), its swap_map of use counts
 * (one per swap PTE, plus SWAP_HAS_CACHE while a folio for the slot is in the swap cache), the
 * swap cache itself (a folio by slot, holding one reference to it), and the device's contents.
 *
 * None of these functions is a step: the callers (vmscan.ts, rmap.ts, memory.ts, zap.ts,
 * fork.ts) call them inside the step whose PTE change they go with, so the counts always match
 * the page tables at a step boundary (debug.ts checks it).
 *
 * XXX: one swap device of type 0, slots handed out lowest-first (no clusters, no per-CPU slot
 * caches); its writes and reads complete at once (no PG_writeback, no readahead: the folio is
 * read by the fault that needs it); no swap-count continuation beyond SWAP_MAP_MAX (a
 * ModelError); the device is not SWP_SYNCHRONOUS_IO, so swap-in always goes through the swap
 * cache (swapin_readahead) as on a disk.
 */
import { ModelError } from '../errors.js';
import type { Kernel } from './kernel.js';
import { PG_dirty, PG_locked, PG_lru, PG_swapbacked, PG_swapcache } from './page.js';
import { track } from '../track.js';

/** SWAP_HAS_CACHE: the slot has a folio in the swap cache (include/linux/swap.h). */
export const SWAP_HAS_CACHE = 0x40;
/** SWAP_MAP_MAX: the most references a slot's byte counts without a continuation page. */
export const SWAP_MAP_MAX = 0x3e;

/** struct swap_info_struct, reduced to what the model uses. */
export class swap_info_struct {
  /** si->max: slots on the device. */
  readonly max: number;
  /** si->swap_map: per slot, the number of swap PTEs (and swap-cache-less references) | SWAP_HAS_CACHE. */
  readonly swap_map: Uint8Array;
  /** si->inuse_pages: slots with a non-zero swap_map. */
  inuse_pages = 0;
  /** The swap cache (swapper_spaces): the folio (frame) caching each slot. */
  readonly cache = new Map<number, number>();
  /** The device's contents by slot (null or missing: all zeros). */
  readonly data: (Uint32Array | null)[] = [];

  constructor(pages: number) {
    this.max = pages;
    this.swap_map = new Uint8Array(pages);
    return track(this);
  }
}

/** __swap_count: the slot's references, SWAP_HAS_CACHE aside. */
export function __swap_count(si: swap_info_struct, offset: number): number {
  return si.swap_map[offset] & ~SWAP_HAS_CACHE;
}

/** vm_swap_full (mm/swap.h): less than half of the swap space is free. */
export function vm_swap_full(si: swap_info_struct): boolean {
  return (si.max - si.inuse_pages) * 2 < si.max;
}

/** The slot is no longer used at all: swap_entry_range_free (the device's copy is dropped). */
function swap_entry_free(si: swap_info_struct, offset: number): void {
  si.inuse_pages--;
  si.data[offset] = null;
}

/**
 * folio_alloc_swap → get_swap_pages: a free slot, marked SWAP_HAS_CACHE (the caller puts the
 * folio in the swap cache at once), or -1 when the device is full or absent.
 */
export function folio_alloc_swap(si: swap_info_struct): number {
  if (si.inuse_pages >= si.max) return -1;
  for (let offset = 0; offset < si.max; offset++) {
    if (si.swap_map[offset] !== 0) continue;
    si.swap_map[offset] = SWAP_HAS_CACHE;
    si.inuse_pages++;
    return offset;
  }
  return -1;
}

/** add_to_swap_cache: the folio caches `offset`; the swap cache takes a reference (folio_ref_add). */
export function add_to_swap_cache(k: Kernel, pfn: number, offset: number): void {
  const pages = k.pages;
  k.swap.cache.set(offset, pfn);
  pages.flags[pfn] |= PG_swapcache;
  pages.swap[pfn] = offset;
  pages.get_page(pfn);
}

/**
 * add_to_swap (mm/swap_state.c): a slot for a locked anonymous folio, the folio added to the
 * swap cache and marked dirty (always: a MADV_FREE'd folio's PTEs may be clean while it is
 * swap-backed again, and it must still be written). False when no slot is free.
 */
export function add_to_swap(k: Kernel, pfn: number): boolean {
  const offset = folio_alloc_swap(k.swap);
  if (offset < 0) return false;
  add_to_swap_cache(k, pfn, offset);
  k.pages.flags[pfn] |= PG_dirty;
  return true;
}

/** __delete_from_swap_cache: the folio leaves the swap cache; the caller drops SWAP_HAS_CACHE and the cache's reference. */
export function __delete_from_swap_cache(k: Kernel, pfn: number): number {
  const offset = k.pages.swap[pfn];
  k.swap.cache.delete(offset);
  k.pages.flags[pfn] &= ~PG_swapcache;
  return offset;
}

/** put_swap_folio: SWAP_HAS_CACHE dropped from the slot, which is freed if nothing else uses it. */
export function put_swap_folio(si: swap_info_struct, offset: number): void {
  if (!(si.swap_map[offset] & SWAP_HAS_CACHE)) throw new ModelError('put_swap_folio', `swap slot ${offset}: SWAP_HAS_CACHE not set (map 0x${si.swap_map[offset].toString(16)})`);
  si.swap_map[offset] &= ~SWAP_HAS_CACHE;
  if (si.swap_map[offset] === 0) swap_entry_free(si, offset);
}

/** delete_from_swap_cache: the folio leaves the swap cache, the slot loses SWAP_HAS_CACHE, the cache's reference is put. */
export function delete_from_swap_cache(k: Kernel, pfn: number): void {
  const offset = __delete_from_swap_cache(k, pfn);
  put_swap_folio(k.swap, offset);
  k.pages.put_page(pfn);
}

/** swap_duplicate: one more reference to a used slot (a swap PTE copied by fork, or made by try_to_unmap_one). */
export function swap_duplicate(si: swap_info_struct, offset: number): void {
  if (offset >= si.max || si.swap_map[offset] === 0) throw new ModelError('swap_duplicate', `swap slot ${offset} is not in use`);
  if (__swap_count(si, offset) >= SWAP_MAP_MAX) throw new ModelError('swap_duplicate', `swap slot ${offset}: more than SWAP_MAP_MAX references, and the model has no swap-count continuation`);
  si.swap_map[offset]++;
}

/** swap_free: one reference fewer (the swap PTE is gone); the slot is freed when nothing uses it. */
export function swap_free(si: swap_info_struct, offset: number): void {
  if (__swap_count(si, offset) === 0) throw new ModelError('swap_free', `swap_free: Unused swap offset entry ${offset}`);
  if (--si.swap_map[offset] === 0) swap_entry_free(si, offset);
}

/** folio_swapped: a swap PTE still refers to the folio's slot. */
export function folio_swapped(k: Kernel, pfn: number): boolean {
  return (k.pages.flags[pfn] & PG_swapcache) !== 0 && __swap_count(k.swap, k.pages.swap[pfn]) > 0;
}

/**
 * folio_free_swap (mm/swapfile.c): for a locked folio in the swap cache that no swap PTE
 * refers to any more, the folio leaves the swap cache (its slot is freed) and is marked dirty,
 * its only copy now being in memory. Returns whether it did.
 */
export function folio_free_swap(k: Kernel, pfn: number): boolean {
  if (!(k.pages.flags[pfn] & PG_swapcache)) return false;
  if (folio_swapped(k, pfn)) return false;
  delete_from_swap_cache(k, pfn);
  k.pages.flags[pfn] |= PG_dirty;
  return true;
}

/**
 * free_swap_and_cache (free_swap_and_cache_nr, one entry): a swap PTE is gone. Its reference
 * is dropped; if only the swap cache still holds the slot, the cached folio is freed from it
 * when it is not mapped or swap is full (__try_to_reclaim_swap with TTRS_UNMAPPED | TTRS_FULL),
 * unless its lock is taken (folio_trylock).
 */
export function free_swap_and_cache(k: Kernel, offset: number): void {
  const si = k.swap;
  swap_free(si, offset);
  if (si.swap_map[offset] !== SWAP_HAS_CACHE) return;
  const pfn = si.cache.get(offset);
  if (pfn === undefined) return;
  if (k.pages.flags[pfn] & PG_locked) return;
  if (k.pages.mapcount[pfn] === 0 || vm_swap_full(si)) folio_free_swap(k, pfn);
}

/** free_swap_cache (mm/swap_state.c): a folio whose mapping went away leaves the swap cache if no PTE maps it and its lock is free. */
export function free_swap_cache(k: Kernel, pfn: number): void {
  const flags = k.pages.flags[pfn];
  if (flags & PG_swapcache && k.pages.mapcount[pfn] === 0 && !(flags & PG_locked)) folio_free_swap(k, pfn);
}

/** swap_cache_get_folio: the folio caching `offset` with a reference taken for the caller, or -1. */
export function swap_cache_get_folio(k: Kernel, offset: number): number {
  const pfn = k.swap.cache.get(offset);
  if (pfn === undefined) return -1;
  k.pages.get_page(pfn);
  return pfn;
}

/**
 * __read_swap_cache_async (swapin_readahead without readahead): the folio for `offset` from
 * the swap cache, or a new one allocated, added to the swap cache and read from the device;
 * a reference is taken for the caller either way. -1 when the slot is no longer in use (a
 * racing fault or zap freed it), -2 when no page could be allocated.
 */
export function read_swap_cache_async(k: Kernel, offset: number): number {
  const si = k.swap;
  const found = swap_cache_get_folio(k, offset);
  if (found >= 0) return found;
  // swapcache_prepare: -ENOENT for a slot nobody uses.
  if (__swap_count(si, offset) === 0) return -1;
  const pfn = k.pages.alloc_page(PG_swapbacked | PG_lru, false);
  if (pfn < 0) return -2;
  si.swap_map[offset] |= SWAP_HAS_CACHE;
  add_to_swap_cache(k, pfn, offset);
  swap_read_folio(k, pfn, offset);
  return pfn;
}

/** swap_read_folio: the slot's contents into the frame. */
export function swap_read_folio(k: Kernel, pfn: number, offset: number): void {
  const data = k.swap.data[offset];
  if (data) k.machine.mem.frameWords(pfn).set(data);
  else k.machine.mem.zeroFrame(pfn);
}

/** The device's write of a folio (swap_writepage → __swap_writepage): the frame's contents into its slot. */
export function swap_write_folio(k: Kernel, pfn: number): void {
  const w = k.machine.mem.frame(pfn);
  k.swap.data[k.pages.swap[pfn]] = w ? w.slice() : null;
}
