/**
 * One CPU's TLB (SDM Vol. 3A §4.10.2): set-associative arrays of 4 KiB, 2 MiB and 1 GiB
 * translations, tagged by PCID, with global entries, round-robin replacement within a set, and
 * hit/miss counters built into the probe.
 *
 * An entry caches what the walk found, as hardware does (§4.10.2.2): the physical frame, the
 * combined rights of every level (R/W and U/S and'ed, XD or'ed), the leaf's D and G and its
 * protection key. The rights are *not* re-read from memory on a hit, so a stale entry keeps
 * stale rights until it is invalidated. PKRU/PKRS and the control registers are *not* cached:
 * the caller checks them on every access.
 *
 * Flushes by PCID and whole-TLB flushes cost O(1): each entry records the clock value at its
 * fill, and a flush records the clock; an entry is live only if filled after every flush that
 * covers it. Single-address invalidations clear the matching entries directly.
 *
 * Replacement is round-robin (FIFO) within a set: deterministic and cheap. Real parts use
 * pseudo-LRU; no Linux behaviour modelled here depends on which entry a fill evicts, and the
 * explorer can evict any entry it likes through `invalidateSlot`.
 *
 * Models one unified TLB per page size: no separate instruction and data TLBs, no second-level
 * TLB and no paging-structure caches (XXX: §4.10.3 caches are not modelled, so a flush never
 * has to drop cached upper-level entries).
 */
import { ArgumentError } from '../errors.js';
import { R_GLOBAL } from './rights.js';

/** Number of entries and ways of each page-size array. Entries / ways must be a power of two. */
export interface TlbGeometry {
  entries4k: number;
  ways4k: number;
  entries2m: number;
  ways2m: number;
  entries1g: number;
  ways1g: number;
}

/** 1024 4 KiB entries, 4-way (between an L1 DTLB's 64 and a Skylake STLB's 1536), 32 × 2 MiB, 16 × 1 GiB. */
export const DEFAULT_TLB_GEOMETRY: Readonly<TlbGeometry> = {
  entries4k: 1024,
  ways4k: 4,
  entries2m: 32,
  ways2m: 4,
  entries1g: 16,
  ways1g: 4,
};

/** What a TLB entry holds, for views and invariants (not used on hot paths). */
export interface TlbEntry {
  slot: number;
  /** PCID the entry was filled under (0 when CR4.PCIDE=0). Meaningless for a global entry. */
  pcid: number;
  global: boolean;
  /** 12, 21 or 30. */
  pageShift: number;
  /** Linear address of the page, bits 63:32 and 31:0 (canonical form). */
  laHi: number;
  laLo: number;
  /** Physical frame number of the page's first 4 KiB. */
  pfn: number;
  /** R_* bits (hw/rights.ts). */
  rights: number;
  pkey: number;
}

const SHIFTS = [12, 21, 30] as const;
const MAX_PCID = 4095;
/** Largest array the model accepts (no real TLB comes near it). */
const MAX_ENTRIES = 1 << 16;
/** Most ways a set may have: the round-robin pointer of a set is one byte (`nextWay`). */
const MAX_WAYS = 128;

export class Tlb {
  /** Total entries over the three arrays. */
  readonly size: number;
  // Entry fields, by slot.
  private readonly tagLo: Int32Array; // bits 31+shift:shift of the linear address
  private readonly tagHi: Int32Array; // bits 63:32+shift
  private readonly tagPcid: Uint16Array;
  readonly rights: Uint8Array; // R_* bits
  readonly pkey: Uint8Array;
  readonly pfn: Float64Array;
  private readonly gen: Float64Array; // clock at fill; 0 = empty
  private readonly nextWay: Uint8Array; // by set: the way the next fill replaces
  private readonly offsetMask: Int32Array; // page-offset bits of the slot's page size
  // Array layout, by size class 0 (4K), 1 (2M), 2 (1G).
  private readonly base: Int32Array;
  private readonly ways: Int32Array;
  private readonly setMask: Int32Array;
  private readonly ways4k: number;
  private readonly setMask4k: number;
  // Flush bookkeeping.
  private clock = 0;
  private readonly pcidFlushedAt = new Float64Array(MAX_PCID + 1);
  private nonGlobalFlushedAt = 0;
  private globalFlushedAt = 0;
  /** Bit c set: size class c (0 = 4K, 1 = 2M, 2 = 1G) was filled since the last full flush. */
  private classesUsed = 0;
  /** Probe counters. */
  hits = 0;
  misses = 0;
  /**
   * Bumped by every invalidation that does not clear slots one by one (the O(1) flushes) and by
   * `setRights`: the CPU's host-side cache of recent hits (cpu.ts, fast path) is stale when it
   * moves. Slot-by-slot invalidations and fills change the slot's `genOf` instead.
   */
  epoch = 0;

  constructor(geometry: TlbGeometry = DEFAULT_TLB_GEOMETRY) {
    const entries = [geometry.entries4k, geometry.entries2m, geometry.entries1g];
    const ways = [geometry.ways4k, geometry.ways2m, geometry.ways1g];
    const names = ['4k', '2m', '1g'];
    this.base = new Int32Array(3);
    this.ways = new Int32Array(3);
    this.setMask = new Int32Array(3);
    let total = 0;
    for (let c = 0; c < 3; c++) {
      const n = entries[c];
      const w = ways[c];
      if (!isPow2(n) || !isPow2(w) || w > n || n > MAX_ENTRIES || w > MAX_WAYS) {
        throw new ArgumentError(`tlb.entries${names[c]}`, `${n} entries in ${w} ways: both must be powers of two, ways <= entries, at most ${MAX_ENTRIES} entries and ${MAX_WAYS} ways`);
      }
      this.base[c] = total;
      this.ways[c] = w;
      this.setMask[c] = n / w - 1;
      total += n;
    }
    this.size = total;
    this.ways4k = this.ways[0];
    this.setMask4k = this.setMask[0];
    this.tagLo = new Int32Array(total);
    this.tagHi = new Int32Array(total);
    this.tagPcid = new Uint16Array(total);
    this.rights = new Uint8Array(total);
    this.pkey = new Uint8Array(total);
    this.pfn = new Float64Array(total);
    this.gen = new Float64Array(total);
    this.nextWay = new Uint8Array(total);
    this.offsetMask = new Int32Array(total);
    for (let c = 0; c < 3; c++) this.offsetMask.fill((1 << SHIFTS[c]) - 1, this.base[c], this.base[c] + entries[c]);
  }

  /**
   * The slot of a live entry translating (hi, lo) for `pcid` (or global), or -1. Looks in the
   * 4 KiB array first, then 2 MiB, then 1 GiB. Counts a hit or a miss.
   */
  lookup(hi: number, lo: number, pcid: number): number {
    const slot = this.find(hi, lo, pcid);
    if (slot >= 0) this.hits++;
    else this.misses++;
    return slot;
  }

  /** `lookup` without counting: for transient loads, which are not architectural accesses. */
  find(hi: number, lo: number, pcid: number): number {
    // The 4 KiB array, with its constants folded: the hot path.
    const vlo = (lo >>> 12) | (hi << 20);
    const vhi = (hi >>> 12) | 0;
    const w = this.ways4k;
    const first = (vlo & this.setMask4k) * w;
    for (let i = first; i < first + w; i++) {
      if (this.tagLo[i] === vlo && this.tagHi[i] === vhi && this.liveFor(i, pcid)) return i;
    }
    if (this.classesUsed > 1) {
      for (let c = 1; c < 3; c++) {
        if ((this.classesUsed & (1 << c)) === 0) continue;
        const i = this.probeLarge(c, hi, lo, pcid);
        if (i >= 0) return i;
      }
    }
    return -1;
  }

  /** The live slot of size class `c` (1 = 2 MiB, 2 = 1 GiB) translating hi:lo for `pcid`, or -1. */
  private probeLarge(c: number, hi: number, lo: number, pcid: number): number {
    const shift = SHIFTS[c];
    const vlo = (lo >>> shift) | (hi << (32 - shift));
    const vhi = (hi >>> shift) | 0;
    const w = this.ways[c];
    const first = this.base[c] + (vlo & this.setMask[c]) * w;
    for (let i = first; i < first + w; i++) {
      if (this.tagLo[i] === vlo && this.tagHi[i] === vhi && this.liveFor(i, pcid)) return i;
    }
    return -1;
  }

  /** Physical address that live slot `slot` gives for a linear address whose bits 31:0 are `lo`. */
  physical(slot: number, lo: number): number {
    return this.pfn[slot] * 4096 + (lo & this.offsetMask[slot]);
  }

  /** The fill stamp of `slot` (0: empty); it changes whenever the slot is refilled or cleared. */
  genOf(slot: number): number {
    return this.gen[slot];
  }

  /** Page shift (12, 21, 30) of the array `slot` belongs to. */
  pageShift(slot: number): number {
    return slot < this.base[1] ? 12 : slot < this.base[2] ? 21 : 30;
  }

  /**
   * Caches a translation of the page of `pageShift` containing (hi, lo), for `pcid`, in the
   * way of its set that the set's round-robin pointer names. Returns the slot.
   * `pfn` is the frame number of the page's first 4 KiB.
   */
  fill(hi: number, lo: number, pcid: number, pageShift: number, pfn: number, rights: number, pkey: number): number {
    let c = 0;
    let vlo: number;
    let first: number;
    let w: number;
    if (pageShift === 12) {
      vlo = (lo >>> 12) | (hi << 20);
      w = this.ways4k;
      first = (vlo & this.setMask4k) * w;
    } else {
      c = pageShift === 21 ? 1 : 2;
      vlo = (lo >>> pageShift) | (hi << (32 - pageShift));
      w = this.ways[c];
      first = this.base[c] + (vlo & this.setMask[c]) * w;
    }
    const way = this.nextWay[first];
    this.nextWay[first] = (way + 1) & (w - 1);
    const victim = first + way;
    this.tagLo[victim] = vlo;
    this.tagHi[victim] = hi >>> pageShift;
    this.tagPcid[victim] = pcid;
    this.rights[victim] = rights;
    this.pkey[victim] = pkey;
    this.pfn[victim] = pfn;
    this.gen[victim] = ++this.clock;
    this.classesUsed |= 1 << c;
    return victim;
  }

  /** Drops one entry (a dirty assist re-walking it, or an eviction the explorer chooses). */
  invalidateSlot(slot: number): void {
    this.gen[slot] = 0;
  }

  /**
   * INVLPG semantics: drops every entry of any page size that covers (hi, lo) and either is
   * tagged `pcid` or is global. Returns how many entries it dropped.
   */
  invalidatePage(hi: number, lo: number, pcid: number): number {
    return this.dropAddress(hi, lo, pcid, true);
  }

  /** INVPCID type 0 semantics: drops the non-global entries covering (hi, lo) tagged `pcid`. */
  invalidatePcidAddress(hi: number, lo: number, pcid: number): number {
    checkPcid(pcid);
    return this.dropAddress(hi, lo, pcid, false);
  }

  /** Drops every non-global entry tagged `pcid` (MOV to CR3, INVPCID type 1). O(1). */
  flushPcid(pcid: number): void {
    checkPcid(pcid);
    this.pcidFlushedAt[pcid] = ++this.clock;
    this.epoch++;
  }

  /**
   * Drops every entry tagged `pcid`, global ones filled under it included (setting CR4.SMEP).
   * O(size) for the globals; rare.
   */
  flushPcidWithGlobals(pcid: number): void {
    this.flushPcid(pcid);
    for (let i = 0; i < this.size; i++) {
      if (this.rights[i] & R_GLOBAL && this.tagPcid[i] === pcid) this.gen[i] = 0;
    }
  }

  /** Drops every non-global entry of every PCID (INVPCID type 3). O(1). */
  flushNonGlobal(): void {
    this.nonGlobalFlushedAt = ++this.clock;
    this.epoch++;
  }

  /** Drops every entry, global ones included (INVPCID type 2, CR4.PGE toggles). O(1). */
  flushAll(): void {
    this.globalFlushedAt = this.nonGlobalFlushedAt = ++this.clock;
    this.classesUsed = 0;
    this.epoch++;
  }

  /** Whether `slot` holds a live entry. */
  live(slot: number): boolean {
    const g = this.gen[slot];
    if (g === 0) return false;
    if (this.rights[slot] & R_GLOBAL) return g > this.globalFlushedAt;
    return g > this.nonGlobalFlushedAt && g > this.pcidFlushedAt[this.tagPcid[slot]];
  }

  /** Every live entry, in slot order. */
  entries(): TlbEntry[] {
    const out: TlbEntry[] = [];
    for (let i = 0; i < this.size; i++) {
      if (!this.live(i)) continue;
      const shift = this.pageShift(i);
      const vlo = this.tagLo[i];
      const vhi = this.tagHi[i];
      out.push({
        slot: i,
        pcid: this.tagPcid[i],
        global: (this.rights[i] & R_GLOBAL) !== 0,
        pageShift: shift,
        laHi: ((vhi << shift) | (vlo >>> (32 - shift))) >>> 0,
        laLo: (vlo << shift) >>> 0,
        pfn: this.pfn[i],
        rights: this.rights[i],
        pkey: this.pkey[i],
      });
    }
    return out;
  }

  /** Number of live entries (O(size); for views and tests). */
  liveCount(): number {
    let n = 0;
    for (let i = 0; i < this.size; i++) if (this.live(i)) n++;
    return n;
  }

  /** Updates the cached rights of a live slot (the D bit after a dirty-bit assist). Moves the epoch: conservative, as D only adds rights. */
  setRights(slot: number, rights: number): void {
    this.rights[slot] = rights;
    this.epoch++;
  }

  private liveFor(i: number, pcid: number): boolean {
    const g = this.gen[i];
    if (this.rights[i] & R_GLOBAL) return g > this.globalFlushedAt;
    return this.tagPcid[i] === pcid && g > this.nonGlobalFlushedAt && g > this.pcidFlushedAt[pcid];
  }

  private dropAddress(hi: number, lo: number, pcid: number, alsoGlobal: boolean): number {
    let dropped = 0;
    for (let c = 0; c < 3; c++) {
      const shift = SHIFTS[c];
      const vlo = (lo >>> shift) | (hi << (32 - shift));
      const vhi = (hi >>> shift) | 0;
      const w = this.ways[c];
      const first = this.base[c] + (vlo & this.setMask[c]) * w;
      for (let i = first; i < first + w; i++) {
        if (this.tagLo[i] !== vlo || this.tagHi[i] !== vhi || !this.live(i)) continue;
        const global = (this.rights[i] & R_GLOBAL) !== 0;
        if (global ? alsoGlobal : this.tagPcid[i] === pcid) {
          this.gen[i] = 0;
          dropped++;
        }
      }
    }
    return dropped;
  }
}

function isPow2(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/** Throws ArgumentError('pcid') unless 0 <= pcid <= 4095. */
export function checkPcid(pcid: number): void {
  if (!Number.isInteger(pcid) || pcid < 0 || pcid > MAX_PCID) {
    throw new ArgumentError('pcid', `${pcid} is not a PCID (0..4095)`);
  }
}
