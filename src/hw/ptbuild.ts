/**
 * Builds 4- and 5-level page tables in simulated physical memory, as any operating system
 * would: for tests, examples and the tour. This is not Linux's page-table code (the kernel
 * model has its own, with Linux's names and rules); it just writes entries where the SDM says
 * the processor will look for them.
 */
import { ArgumentError, IsolabError } from '../errors.js';
import { hi32, isCanonical, lo32, u64Bigint, type U64 } from './addr.js';
import { tableIndex } from './mmu.js';
import type { PhysMem } from './physmem.js';
import {
  PAGE_SIZE, PTE_A, PTE_D, PTE_G, PTE_P, PTE_PCD, PTE_PS, PTE_PWT, PTE_RW, PTE_US, PTEH_PK_SHIFT, PTEH_SAVED_DIRTY, PTEH_XD, pteFrame,
} from './pte.js';
import { checkPcid } from './tlb.js';

/** Flags of an entry, by their SDM names (plus Linux's saved-dirty bit). Absent means 0. */
export interface EntryFlags {
  rw?: boolean;
  us?: boolean;
  pwt?: boolean;
  pcd?: boolean;
  a?: boolean;
  d?: boolean;
  g?: boolean;
  xd?: boolean;
  /** Protection key, 0..15 (leaf only). */
  pk?: number;
  /** Bit 58, Linux's _PAGE_SAVED_DIRTY (leaf only). */
  savedDirty?: boolean;
}

export const SIZE_4K = 4096;
export const SIZE_2M = 2 * 1024 * 1024;
export const SIZE_1G = 1024 * 1024 * 1024;

export interface MapOptions {
  /** Page size: 4 KiB (default), 2 MiB or 1 GiB. */
  size?: number;
  /** Flags of the leaf entry. P is always set. */
  leaf?: EntryFlags;
  /** Flags of page tables this call creates (default: RW, US and A, as Linux's _PAGE_TABLE). */
  table?: EntryFlags;
}

/** Hands out frames from a range, lowest first, never reusing one. */
export class FrameAllocator {
  private next: number;
  constructor(private readonly mem: PhysMem, first = 1) {
    this.next = first;
  }
  /** A fresh, zeroed frame number; throws when installed memory is used up. */
  alloc(): number {
    if (this.next >= this.mem.frameCount) throw new IsolabError('ENOMEM', `out of simulated physical memory (${this.mem.frameCount} frames)`);
    const pfn = this.next++;
    this.mem.zeroFrame(pfn);
    return pfn;
  }
}

/** The 64-bit entry value (lo, hi) for `flags` and a frame number, P set. */
export function entryValue(pfn: number, flags: EntryFlags, large = false): { lo: number; hi: number } {
  if (flags.pk !== undefined && (!Number.isInteger(flags.pk) || flags.pk < 0 || flags.pk > 15)) {
    throw new ArgumentError('pk', `${flags.pk} is not a protection key (0..15)`);
  }
  let lo = PTE_P | ((pfn % 1048576) << 12);
  if (flags.rw) lo |= PTE_RW;
  if (flags.us) lo |= PTE_US;
  if (flags.pwt) lo |= PTE_PWT;
  if (flags.pcd) lo |= PTE_PCD;
  if (flags.a) lo |= PTE_A;
  if (flags.d) lo |= PTE_D;
  if (large) lo |= PTE_PS;
  if (flags.g) lo |= PTE_G;
  let hi = Math.floor(pfn / 1048576);
  if (flags.pk) hi |= flags.pk << PTEH_PK_SHIFT;
  if (flags.savedDirty) hi |= PTEH_SAVED_DIRTY;
  if (flags.xd) hi |= PTEH_XD;
  return { lo: lo >>> 0, hi: hi >>> 0 };
}

/** A CR3 value: the root's physical address, PCID (0..4095) and, optionally, NOFLUSH (bit 63). */
export function makeCr3(rootPa: number, pcid = 0, noflush = false): bigint {
  if (!Number.isSafeInteger(rootPa) || rootPa < 0 || rootPa % PAGE_SIZE !== 0) {
    throw new ArgumentError('rootPa', `${rootPa} is not a 4 KiB-aligned physical address`);
  }
  checkPcid(pcid);
  return BigInt(rootPa) | BigInt(pcid) | (noflush ? 1n << 63n : 0n);
}

export class PageTableBuilder {
  readonly levels: 4 | 5;
  readonly rootPfn: number;
  readonly allocator: FrameAllocator;

  constructor(private readonly mem: PhysMem, options: { levels?: 4 | 5; allocator?: FrameAllocator } = {}) {
    const levels = options.levels ?? 4;
    if (levels !== 4 && levels !== 5) throw new ArgumentError('levels', `${levels} is not 4 or 5`);
    this.levels = levels;
    this.allocator = options.allocator ?? new FrameAllocator(mem);
    this.rootPfn = this.allocator.alloc();
  }

  /** Physical address of the top-level table. */
  get rootPa(): number {
    return this.rootPfn * PAGE_SIZE;
  }

  /** The CR3 value that selects these tables. */
  cr3(pcid = 0, noflush = false): bigint {
    return makeCr3(this.rootPa, pcid, noflush);
  }

  /**
   * Maps the page of `size` at linear address `la` to physical address `pa`, creating the
   * tables on the way. Throws ArgumentError for an unaligned `la` or `pa` (naming it), a
   * non-canonical `la`, or a range a larger page already maps.
   */
  map(la: U64, pa: U64, options: MapOptions = {}): void {
    const size = options.size ?? SIZE_4K;
    const leafLevel = size === SIZE_4K ? 1 : size === SIZE_2M ? 2 : size === SIZE_1G ? 3 : 0;
    if (leafLevel === 0) throw new ArgumentError('size', `${size} is not 4096, 2 MiB or 1 GiB`);
    const hi = hi32(la, 'la');
    const lo = lo32(la, 'la');
    if (!isCanonical(hi, this.levels === 5)) throw new ArgumentError('la', `${la} is not canonical with ${this.levels}-level paging`);
    if ((lo & (size - 1)) !== 0) {
      throw new ArgumentError('la', `${la} is not aligned to the page size ${size}`);
    }
    const paNum = typeof pa === 'bigint' ? Number(pa) : pa;
    if (!Number.isSafeInteger(paNum) || paNum < 0 || paNum % size !== 0) {
      throw new ArgumentError('pa', `${pa} is not a ${size}-byte-aligned physical address (an unaligned frame)`);
    }
    const where = this.tableFor(hi, lo, leafLevel, options.table ?? { rw: true, us: true, a: true }, true)!;
    const v = entryValue(paNum / PAGE_SIZE, options.leaf ?? {}, leafLevel > 1);
    this.mem.write64(where.pfn, where.index, v.lo, v.hi);
  }

  /** Where the entry of `level` for `la` lives, if the tables above it exist. */
  entry(la: U64, level: number): { pfn: number; index: number } | null {
    if (!Number.isInteger(level) || level < 1 || level > this.levels) throw new ArgumentError('level', `${level} is not 1..${this.levels}`);
    return this.tableFor(hi32(la, 'la'), lo32(la, 'la'), level, {}, false);
  }

  /** The entry of `level` for `la` as a 64-bit value, or null if the tables above it are absent. */
  readEntry(la: U64, level: number): bigint | null {
    const e = this.entry(la, level);
    return e ? this.mem.read64(e.pfn, e.index) : null;
  }

  /** Overwrites the entry of `level` for `la` (plain store, as set_pte does). Throws if the tables above it are absent. */
  writeEntry(la: U64, level: number, value: bigint): void {
    u64Bigint(value, 'value');
    const e = this.entry(la, level);
    if (!e) throw new ArgumentError('la', `no page table holds the level-${level} entry of ${la}`);
    this.mem.write64(e.pfn, e.index, Number(value & 0xffffffffn), Number((value >> 32n) & 0xffffffffn));
  }

  /** Walks (and, if `create`, builds) the tables down to the one holding the level-`level` entry. */
  private tableFor(hi: number, lo: number, level: number, tableFlags: EntryFlags, create: boolean): { pfn: number; index: number } | null {
    let pfn = this.rootPfn;
    for (let l: number = this.levels; l > level; l--) {
      const index = tableIndex(l, hi, lo);
      const elo = this.mem.readLo(pfn, index);
      const ehi = this.mem.readHi(pfn, index);
      if ((elo & PTE_P) === 0) {
        if (!create) return null;
        const table = this.allocator.alloc();
        const v = entryValue(table, tableFlags);
        this.mem.write64(pfn, index, v.lo, v.hi);
        pfn = table;
      } else {
        if (l <= 3 && (elo & PTE_PS) !== 0) {
          if (!create) return null;
          throw new ArgumentError('la', `a ${l === 3 ? '1 GiB' : '2 MiB'} page already maps this range`);
        }
        pfn = pteFrame(elo, ehi);
      }
    }
    return { pfn, index: tableIndex(level, hi, lo) };
  }
}
