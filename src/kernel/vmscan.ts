/**
 * Reclaim of isolated folios (mm/vmscan.c reclaim_pages → reclaim_folio_list →
 * shrink_folio_list), as MADV_PAGEOUT drives it, for the anonymous folios the model has.
 *
 * For each folio, under its lock (folio_trylock; a folio locked elsewhere is kept): a
 * swap-backed anonymous folio not yet in the swap cache gets a slot (add_to_swap; with no free
 * slot it is kept and activated); its mappings are removed (try_to_unmap, rmap.ts; a folio
 * still mapped afterwards is kept and activated); a dirty folio is written to its slot
 * (pageout → swap_writepage) if nothing else holds it (is_page_cache_freeable); then a lazyfree
 * folio is freed if its isolation is its only reference (folio_ref_freeze), and a swap-cache
 * folio if the isolation and the swap cache are its only references and it is clean
 * (__remove_mapping, which frees the slot's cache reference). Freed folios go back to the page
 * allocator only at the end, after try_to_unmap_flush, so no CPU can reach a frame handed out
 * again; the others go back on the LRU (folio_putback_lru).
 *
 * Reclaim ignores references here (reclaim_folio_list passes ignore_references), as
 * MADV_PAGEOUT does.
 */
import type { Kernel, PerCpu } from './kernel.js';
import { kthread_create, PID_MAX_LIMIT } from './kthread.js';
import { folio_lock_id, PG_active, PG_anon, PG_dirty, PG_locked, PG_lru, PG_mlocked, PG_swapbacked, PG_swapcache, type PageRefs } from './page.js';
import { try_to_unmap } from './rmap.js';
import { wake_up_process } from './sched.js';
import { STEP_ATOMIC, STEP_COPY, STEP_LOCK, STEP_UNLOCK, type KSteps } from './steps.js';
import { __delete_from_swap_cache, add_to_swap, folio_free_swap, put_swap_folio, swap_write_folio, vm_swap_full } from './swap.js';
import type { Task } from './task.js';
import { this_cpu } from './this_cpu.js';
import { track } from '../track.js';

/**
 * The folios a reclaim holds between its steps: `refs` the isolated ones (folio_list, one
 * reference each from folio_isolate_lru) and those waiting to be freed after the flush
 * (free_folios). The path adds itself to `PageAllocator.held` while it holds any.
 */
export class folio_list implements PageRefs {
  readonly refs: number[] = [];
  /** How many folios shrink_folio_list freed (nr_reclaimed). */
  nr_reclaimed = 0;

  constructor() {
    return track(this);
  }
}

/** folio_isolate_lru: takes an LRU folio off its list for reclaim, with a reference; false if it is not on one. */
export function folio_isolate_lru(k: Kernel, list: folio_list, pfn: number): boolean {
  const pages = k.pages;
  if (!(pages.flags[pfn] & PG_lru)) return false;
  pages.flags[pfn] &= ~PG_lru;
  pages.get_page(pfn);
  list.refs.push(pfn);
  pages.held.add(list);
  return true;
}

/** folio_putback_lru: back on the LRU, the isolation's reference put (which frees a folio nothing else holds). */
function folio_putback_lru(k: Kernel, list: folio_list, pfn: number): void {
  const pages = k.pages;
  if (pages.refcount[pfn] > 1) pages.flags[pfn] |= PG_lru;
  drop(list, pfn);
  pages.put_page(pfn);
}

/** Removes one of `pfn`'s references from the list's record. */
function drop(list: folio_list, pfn: number): void {
  const i = list.refs.indexOf(pfn);
  if (i >= 0) list.refs.splice(i, 1);
}

/**
 * reclaim_pages for the folios isolated in `list`: shrink_folio_list over them, then each one
 * not freed goes back on the LRU. Returns the number freed.
 */
export function* reclaim_pages(k: Kernel, pc: PerCpu, t: Task, list: folio_list): KSteps<number> {
  const isolated = list.refs.slice();
  const freed = yield* shrink_folio_list(k, pc, t, list, isolated);
  for (const pfn of list.refs.slice()) folio_putback_lru(k, list, pfn);
  if (list.refs.length === 0) k.pages.held.delete(list);
  return freed;
}

/**
 * shrink_folio_list over `folios` (isolated, each holding one reference in `list`), with
 * ignore_references. Returns how many were freed; the rest stay in `list` for the caller to
 * put back.
 */
function* shrink_folio_list(k: Kernel, pc: PerCpu, t: Task, list: folio_list, folios: number[]): KSteps<number> {
  const pages = k.pages;
  const free_folios: number[] = [];
  for (const pfn of folios) {
    // folio_trylock: a folio locked by someone else (a swap-in) is kept.
    pc.touch = folio_lock_id(pfn);
    yield STEP_LOCK;
    if (pages.flags[pfn] & PG_locked) continue;
    pages.flags[pfn] |= PG_locked;
    const swapbacked = (pages.flags[pfn] & PG_swapbacked) !== 0;
    const verdict = yield* shrink_folio(k, pc, t, pfn);
    if (k.events.on) {
      // A lazyfree folio try_to_unmap_one made swap-backed again (nr_lazyfree_fail) is 'redirtied', though it is then activated.
      const how = verdict === 'free' ? (swapbacked ? 'swapped' : 'discarded') : (pages.flags[pfn] & PG_swapbacked) && !swapbacked ? 'redirtied' : verdict === 'activate' ? 'activated' : 'kept';
      k.emit({ type: 'reclaim', cpu: pc.id, tid: t.tid, pfn, outcome: how });
    }
    if (verdict === 'activate') {
      // activate_locked: not a candidate for swapping, so reclaim swap space if swap is full.
      if (pages.flags[pfn] & PG_swapcache && vm_swap_full(k.swap)) folio_free_swap(k, pfn);
      pages.flags[pfn] |= PG_active;
    }
    // folio_unlock (keep_locked, or before free_it).
    pc.touch = folio_lock_id(pfn);
    yield STEP_UNLOCK;
    pages.flags[pfn] &= ~PG_locked;
    if (verdict === 'free') free_folios.push(pfn);
  }
  // try_to_unmap_flush: every PTE was flushed as it was cleared (rmap.ts), so the frames can go.
  for (const pfn of free_folios) {
    drop(list, pfn);
    pages.put_page(pfn);
    list.nr_reclaimed++;
  }
  return free_folios.length;
}

/**
 * The body of shrink_folio_list's loop for one locked folio: 'free' (its last reference is the
 * isolation's, to be put after the flush), 'activate' (activate_locked) or 'keep'
 * (keep_locked).
 */
function* shrink_folio(k: Kernel, pc: PerCpu, t: Task, pfn: number): KSteps<'free' | 'activate' | 'keep'> {
  const pages = k.pages;
  // folio_evictable: an mlocked folio goes back (to the unevictable list).
  if (pages.flags[pfn] & PG_mlocked) return 'activate';
  if (!(pages.flags[pfn] & PG_anon)) return 'keep';
  if (pages.flags[pfn] & PG_swapbacked && !(pages.flags[pfn] & PG_swapcache)) {
    // add_to_swap: a slot, the swap cache, and the folio marked dirty.
    pc.touch = -1;
    yield STEP_ATOMIC;
    if (!add_to_swap(k, pfn)) return 'activate';
  }
  if (pages.mapcount[pfn] > 0) {
    yield* try_to_unmap(k, pc, t, pfn);
    if (pages.mapcount[pfn] > 0) return 'activate';
  }
  if (pages.flags[pfn] & PG_dirty) {
    const r = yield* pageout(k, pc, pfn);
    if (r === 'keep') return 'keep';
    // PAGE_SUCCESS of a synchronous write: a folio dirtied again is kept.
    if (pages.flags[pfn] & PG_dirty) return 'keep';
  }
  // folio_ref_freeze for a lazyfree folio; __remove_mapping for a swap-cache one.
  pc.touch = -1;
  yield STEP_ATOMIC;
  if (!(pages.flags[pfn] & PG_swapbacked)) return pages.refcount[pfn] === 1 ? 'free' : 'keep';
  return __remove_mapping(k, pfn) ? 'free' : 'keep';
}

/**
 * pageout for a dirty folio: kept if anything but the isolation and the swap cache holds it
 * (is_page_cache_freeable) or it has no swap cache (no mapping); otherwise
 * folio_clear_dirty_for_io and swap_writepage, which first frees the slot of a folio no swap
 * PTE refers to any more (folio_free_swap, leaving it dirty) and otherwise writes the folio to
 * its slot (a copy step). 'success' (PAGE_SUCCESS) or 'keep' (PAGE_KEEP).
 */
function* pageout(k: Kernel, pc: PerCpu, pfn: number): KSteps<'success' | 'keep'> {
  const pages = k.pages;
  if (pages.refcount[pfn] !== 2) return 'keep';
  if (!(pages.flags[pfn] & PG_swapcache)) return 'keep';
  pages.flags[pfn] &= ~PG_dirty;
  if (folio_free_swap(k, pfn)) return 'success';
  pc.touch = pfn * 4096;
  yield STEP_COPY;
  swap_write_folio(k, pfn);
  return 'success';
}

/**
 * __remove_mapping for a swap-cache folio, in one step: only if the isolation and the swap
 * cache hold it (folio_ref_freeze of 2) and it is clean, it leaves the swap cache
 * (__delete_from_swap_cache, put_swap_folio: the slot keeps its swap PTEs' references) and
 * the cache's reference goes. Returns whether it did.
 */
function __remove_mapping(k: Kernel, pfn: number): boolean {
  const pages = k.pages;
  if (pages.refcount[pfn] !== 2 || pages.flags[pfn] & PG_dirty) return false;
  const offset = __delete_from_swap_cache(k, pfn);
  put_swap_folio(k.swap, offset);
  pages.put_page(pfn);
  return true;
}

/** kswapd0's tid: above every pid a process can get (kthread.ts). */
export const KSWAPD_TID = PID_MAX_LIMIT + 1;

/**
 * Whether reclaim may take anonymous folio `pfn` now: on the LRU, and either lazyfree (a clean
 * MADV_FREE'd folio sits on the file LRU and needs no swap) or swap-backed with swap space
 * left (get_scan_count scans the anonymous lists only when can_reclaim_anon_pages).
 */
function reclaimable(k: Kernel, pfn: number): boolean {
  const f = k.pages.flags[pfn];
  if ((f & (PG_lru | PG_anon)) !== (PG_lru | PG_anon)) return false;
  // An mlocked folio is on the unevictable list, which reclaim does not scan.
  if (f & PG_mlocked) return false;
  return !(f & PG_swapbacked) || k.swap.inuse_pages < k.swap.max;
}

/**
 * kswapd's pass over the node (kswapd → balance_pgdat → shrink_node → shrink_lruvec →
 * shrink_inactive_list), as the explorer injects it: in one step under the lruvec's lru_lock
 * (isolate_lru_folios) every reclaimable anonymous folio is isolated, then they are reclaimed
 * as reclaim_pages does, each step interleaving with the other CPUs. Returns how many were
 * freed.
 *
 * XXX: references are ignored (what MADV_PAGEOUT does, and what kswapd does to a folio whose
 * accessed bits have aged: folio_check_references would keep a folio referenced since the
 * last scan); the whole LRU is scanned at once, with no priority or watermark loop.
 */
export function* kswapd_reclaim(k: Kernel, pc: PerCpu, t: Task): KSteps<number> {
  const list = new folio_list();
  pc.touch = -1;
  yield STEP_ATOMIC;
  const pages = k.pages;
  for (let pfn = 0; pfn < pages.flags.length; pfn++) if (reclaimable(k, pfn)) folio_isolate_lru(k, list, pfn);
  if (list.refs.length === 0) return 0;
  return yield* reclaim_pages(k, pc, t, list);
}

/**
 * wakeup_kswapd: memory is short, so kswapd0 runs a reclaim pass (the explorer's reclaim
 * choice, System.reclaim). It is made runnable on CPU `cpu` and the task running there is told
 * to give the CPU up at its next preemption point (check_preempt_wakeup_fair's resched_curr for a
 * thread that slept long). Returns false, changing nothing, while kswapd is already awake.
 */
export function wakeup_kswapd(k: Kernel, cpu: number): boolean {
  const t = (k.kswapd ??= kthread_create(k, KSWAPD_TID));
  if (t.state !== 'sleeping') return false;
  t.cpu = cpu;
  // The pass is the path; when it ends kernel_step puts the thread back to sleep.
  t.kpath = kswapd_reclaim(k, this_cpu(k, t), t);
  t.kpathKind = 'kthread';
  wake_up_process(k, t);
  const cur = k.percpu[t.cpu].current;
  if (cur) cur.need_resched = true;
  return true;
}
