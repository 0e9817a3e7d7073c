/**
 * Linux's page-table helpers for x86-64 (arch/x86/include/asm/pgtable.h, pgtable_types.h,
 * pgalloc.h; mm/pgtable-generic.c): building PTE values from VMA flags, finding and allocating
 * the tables that cover an address, and the PTE transformations fork, faults and mprotect use.
 *
 * A PTE value is two uint32 halves, `lo` (bits 31:0) and `hi` (bits 63:32), as the hardware
 * layer keeps them. Tests of a value (pte_present, pte_write, pte_pfn ...) take the halves;
 * the functions that build or change a value (mk_pte, pte_wrprotect, pte_mkdirty ...) change
 * a `pte_t` record in place and return it, so a path chains them as Linux does
 * (`pte_mkwrite(pte_mkdirty(entry))`) and allocates nothing: the record belongs to the
 * path's own context (its vm_fault, its copy context), never to the module.
 */
import type { PhysMem } from '../hw/physmem.js';
import {
  PTE_A, PTE_D, PTE_G, PTE_P, PTE_PCD, PTE_PS, PTE_PWT, PTE_RW, PTE_SOFTW1, PTE_SOFTW2, PTE_SOFTW3, PTE_US,
  PTEH_ADDR, PTEH_NOPTISHADOW, PTEH_PK, PTEH_PK_SHIFT, PTEH_SAVED_DIRTY, PTEH_SOFTW4, PTEH_XD, PTE_PROTNONE,
} from '../hw/pte.js';
import { PG_table, type PageAllocator } from './page.js';
import { VM_EXEC, VM_READ, VM_SHARED, VM_WRITE } from './vma.js';
import { track } from '../track.js';

/** _PAGE_SPECIAL (bit 9): a PTE with no struct page behind it, such as the zero page. */
export const _PAGE_SPECIAL = PTE_SOFTW1;
/** _PAGE_TABLE: how a user page table is linked into its parent (P RW US A D). */
export const _PAGE_TABLE = PTE_P | PTE_RW | PTE_US | PTE_A | PTE_D;
/** _KERNPG_TABLE: the same for kernel tables (no US). */
export const _KERNPG_TABLE = PTE_P | PTE_RW | PTE_A | PTE_D;

/** pte_t: a page-table entry's value, as its two 32-bit halves. */
export interface pte_t {
  lo: number;
  hi: number;
}

/** pgprot_t: the protection bits of an entry, in the same two halves (frame bits clear). */
export type pgprot_t = pte_t;

/** A new pte_t (or pgprot_t) record holding (`lo`, `hi`). */
export function __pte(lo = 0, hi = 0): pte_t {
  return { lo, hi };
}

/** Sets `p` to (`lo`, `hi`) and returns it. */
export function pte_set(p: pte_t, lo: number, hi: number): pte_t {
  p.lo = lo;
  p.hi = hi;
  return p;
}

/** pte_same: the two values are equal in all 64 bits (A and D included), whether a half is held signed or unsigned. */
export function pte_same(a: pte_t, b: pte_t): boolean {
  return ((a.lo ^ b.lo) | (a.hi ^ b.hi)) === 0;
}

/** pte_none: the entry is all zero. */
export function pte_none(lo: number, hi: number): boolean {
  return lo === 0 && hi === 0;
}

/** Number of entries per table and the index of `va` at `level` (1 = PTE ... 5 = PML5). */
export function pgtableIndex(va: number, level: number): number {
  return Math.floor(va / 2 ** (3 + 9 * level)) % 512;
}

/** pmd_addr_end: the end of the 2 MiB span (one PTE table's) holding `addr`, or `end` if that comes first. */
export function pmd_addr_end(addr: number, end: number): number {
  return Math.min(end, (Math.floor(addr / 2 ** 21) + 1) * 2 ** 21);
}

/** Bytes one entry at `level` covers: 4 KiB, 2 MiB, 1 GiB, 512 GiB, 256 TiB. */
export function levelSize(level: number): number {
  return 2 ** (3 + 9 * level);
}

/**
 * vm_get_page_prot (arch/x86/mm/pgprot.c, protection_map in arch/x86/mm/mem_encrypt... and
 * pgtable_types.h): the low word of the PTE protection for `vm_flags`. Private writable
 * mappings get no RW (PAGE_COPY: the first write takes a fault that does copy-on-write);
 * PROT_NONE gives _PAGE_PROTNONE|_PAGE_ACCESSED with P clear; write-only maps readable (x86
 * cannot express it). The high word gets XD (when `nx`) and the protection key. Written to
 * `prot`, which is returned.
 */
export function vm_get_page_prot(prot: pgprot_t, vmFlags: number, pkey: number, nx: boolean): pgprot_t {
  const access = vmFlags & (VM_READ | VM_WRITE | VM_EXEC);
  let lo: number;
  if (access === 0) lo = PTE_PROTNONE | PTE_A;
  else {
    lo = PTE_P | PTE_US | PTE_A;
    if (vmFlags & VM_SHARED && vmFlags & VM_WRITE) lo |= PTE_RW;
  }
  prot.lo = lo;
  prot.hi = (nx && !(vmFlags & VM_EXEC) && access !== 0 ? PTEH_XD : 0) | ((pkey & 0xf) << PTEH_PK_SHIFT);
  return prot;
}

/** pte_present: P, or a PROT_NONE entry (which the hardware sees as not present). */
export function pte_present(lo: number): boolean {
  return (lo & (PTE_P | PTE_PROTNONE)) !== 0;
}

/** pte_protnone: a PROT_NONE entry (PROTNONE set, P clear). */
export function pte_protnone(lo: number): boolean {
  return (lo & (PTE_P | PTE_PROTNONE)) === PTE_PROTNONE;
}

/** pte_write: RW set, or a shadow-stack PTE (RW=0, D=1; pte_shstk is true only where the kernel runs user shadow stacks). */
export function pte_write(lo: number, userShstk: boolean): boolean {
  return (lo & PTE_RW) !== 0 || pte_shstk(lo, userShstk);
}

/** pte_dirty: D or SavedDirty. */
export function pte_dirty(lo: number, hi: number): boolean {
  return (lo & PTE_D) !== 0 || (hi & PTEH_SAVED_DIRTY) !== 0;
}

/** PFN mask of the high word: address bits 51:32. Bits above MAXPHYADDR are masked by the hardware check. */
export const PFN_HI = PTEH_ADDR;

/**
 * The frame a present or PROT_NONE entry maps. A PROT_NONE entry holds its frame number
 * inverted (the L1TF mitigation, arch/x86/include/asm/pgtable-invert.h), so a speculative walk
 * that ignores P points at memory that does not exist.
 */
export function pte_pfn(lo: number, hi: number): number {
  if (pte_protnone(lo)) {
    lo = ~lo;
    hi = ~hi;
  }
  return (hi & PFN_HI) * 1048576 + (lo >>> 12);
}

/**
 * mk_pte / pfn_pte: sets `p` to an entry for frame `pfn` with protection (`protLo`,
 * `protHi`), inverting the frame for a PROT_NONE protection as pfn_pte does. Returns `p`.
 */
export function mk_pte(p: pte_t, pfn: number, protLo: number, protHi: number): pte_t {
  let frameLo = (pfn % 1048576) * 4096;
  let frameHi = Math.floor(pfn / 1048576) & PFN_HI;
  if ((protLo & (PTE_P | PTE_PROTNONE)) === PTE_PROTNONE) {
    frameLo = ~frameLo & 0xfffff000;
    frameHi = ~frameHi & PFN_HI;
  }
  p.hi = (protHi & ~PFN_HI) | frameHi;
  p.lo = ((protLo & 0xfff) | frameLo) | 0;
  return p;
}

/** _PAGE_CHG_MASK, low word: what pte_modify keeps (frame, caching, SPECIAL, UFFD_WP, SOFT_DIRTY, A, D). */
const CHG_MASK_LO = (0xfffff000 | PTE_PCD | PTE_PWT | _PAGE_SPECIAL | PTE_SOFTW2 | PTE_SOFTW3 | PTE_A | PTE_D) | 0;
/** _PAGE_CHG_MASK, high word: frame bits, DEVMAP, SAVED_DIRTY. */
const CHG_MASK_HI = PFN_HI | PTEH_SOFTW4 | PTEH_SAVED_DIRTY;

/**
 * pte_modify (arch/x86/include/asm/pgtable.h): the entry with its protection replaced by
 * (`protLo`, `protHi`), keeping the frame, A, D and the software bits, re-inverting the frame
 * when the entry becomes or stops being PROT_NONE. Then, so that no kernel-made entry is
 * read-only and dirty: if the old entry was writable, a D left on a read-only result moves to
 * SavedDirty (pte_mksaveddirty); otherwise a SavedDirty on a writable result moves back to D
 * (pte_clear_saveddirty). A shadow-stack entry (old R/W=0, D=1) keeps D either way. Linux 6.12
 * does this on every CPU, with or without shadow stacks. Changes `p` and returns it.
 */
export function pte_modify(p: pte_t, prot: pgprot_t): pte_t {
  const { lo, hi } = p;
  const pfn = pte_pfn(lo, hi);
  const keepLo = lo & CHG_MASK_LO & 0xfff;
  const keepHi = hi & CHG_MASK_HI & ~PFN_HI;
  mk_pte(p, pfn, (prot.lo & ~CHG_MASK_LO) | keepLo, (prot.hi & ~CHG_MASK_HI) | keepHi);
  return lo & PTE_RW ? pte_mksaveddirty(p) : pte_clear_saveddirty(p);
}

/** pte_mksaveddirty (mksaveddirty_shift): on a read-only entry, D moves to SavedDirty. Changes `p` and returns it. */
export function pte_mksaveddirty(p: pte_t): pte_t {
  if ((p.lo & (PTE_RW | PTE_D)) === PTE_D) {
    p.hi |= PTEH_SAVED_DIRTY;
    p.lo &= ~PTE_D;
  }
  return p;
}

/** pte_clear_saveddirty (clear_saveddirty_shift): on a writable entry, SavedDirty moves to D. Changes `p` and returns it. */
export function pte_clear_saveddirty(p: pte_t): pte_t {
  if (p.lo & PTE_RW && p.hi & PTEH_SAVED_DIRTY) {
    p.hi &= ~PTEH_SAVED_DIRTY;
    p.lo |= PTE_D;
  }
  return p;
}

/**
 * pte_wrprotect (6.6 and later): clear R/W, then D moves to SavedDirty, unconditionally and on
 * every CPU, so the kernel never makes the shadow-stack encoding (R/W=0, D=1) itself. Changes
 * `p` and returns it.
 */
export function pte_wrprotect(p: pte_t): pte_t {
  p.lo &= ~PTE_RW;
  return pte_mksaveddirty(p);
}

/**
 * pte_mkdirty: set D (and _PAGE_SOFT_DIRTY); on a read-only entry the D goes to SavedDirty
 * instead. Changes `p` and returns it.
 */
export function pte_mkdirty(p: pte_t): pte_t {
  p.lo |= PTE_D | _PAGE_SOFT_DIRTY;
  return pte_mksaveddirty(p);
}

/** _PAGE_SOFT_DIRTY (bit 11, _PAGE_BIT_SOFTW3): the page was written since clear_refs last cleared it. */
export const _PAGE_SOFT_DIRTY = PTE_SOFTW3;

/** pte_soft_dirty. */
export function pte_soft_dirty(lo: number): boolean {
  return (lo & _PAGE_SOFT_DIRTY) !== 0;
}

/** pte_mksoft_dirty. Changes `p` and returns it. */
export function pte_mksoft_dirty(p: pte_t): pte_t {
  p.lo |= _PAGE_SOFT_DIRTY;
  return p;
}

/** pte_clear_soft_dirty. Changes `p` and returns it. */
export function pte_clear_soft_dirty(p: pte_t): pte_t {
  p.lo &= ~_PAGE_SOFT_DIRTY;
  return p;
}

/** pte_mkyoung: set A. Changes `p` and returns it. */
export function pte_mkyoung(p: pte_t): pte_t {
  p.lo |= PTE_A;
  return p;
}

/** pte_mkold: clear A. Changes `p` and returns it. */
export function pte_mkold(p: pte_t): pte_t {
  p.lo &= ~PTE_A;
  return p;
}

/**
 * pte_mkwrite(pte, vma): for a VM_SHADOW_STACK VMA, pte_mkwrite_shstk: R/W=0 and D=1, the
 * shadow-stack encoding (SavedDirty kept). Otherwise pte_mkwrite_novma: set R/W, and a
 * SavedDirty moves back to D. Changes `p` and returns it.
 */
export function pte_mkwrite(p: pte_t, shadowStack = false): pte_t {
  if (shadowStack) {
    p.lo = (p.lo & ~PTE_RW) | PTE_D;
    return p;
  }
  p.lo |= PTE_RW;
  return pte_clear_saveddirty(p);
}

/** pte_mkclean: clear D and SavedDirty. Changes `p` and returns it. */
export function pte_mkclean(p: pte_t): pte_t {
  p.hi &= ~PTEH_SAVED_DIRTY;
  p.lo &= ~PTE_D;
  return p;
}

/** pte_shstk: a shadow-stack entry (R/W=0, D=1) on a kernel that runs user shadow stacks. */
export function pte_shstk(lo: number, userShstk: boolean): boolean {
  return userShstk && (lo & (PTE_RW | PTE_D)) === PTE_D;
}

/**
 * pte_needs_flush (arch/x86/include/asm/tlbflush.h): whether changing a PTE from old to new
 * needs a TLB flush. A non-present old entry never does; a new frame always does; otherwise
 * clearing P, A or D, or changing RW, US, PWT, PCD, PAT, G, PK or NX does (A ignored here, as
 * in change_pte_range).
 */
export function pte_needs_flush(oldLo: number, oldHi: number, newLo: number, newHi: number): boolean {
  if (!(oldLo & PTE_P)) return false;
  if (pte_pfn(oldLo, oldHi) !== pte_pfn(newLo, newHi)) return true;
  const diffLo = (oldLo ^ newLo) & ~PTE_A & 0xfff;
  const diffHi = (oldHi ^ newHi) & ~PFN_HI;
  if (diffLo & oldLo & (PTE_P | PTE_D)) return true;
  if (diffLo & (PTE_RW | PTE_US | PTE_PWT | PTE_PCD | PTE_PS | PTE_G)) return true;
  if (diffHi & (PTEH_PK | PTEH_XD)) return true;
  return false;
}

/**
 * Swap PTEs (arch/x86/include/asm/pgtable_64.h, 6.12): not present (P=0, bit 8 PROTNONE=0,
 * bit 7 0), the swap type in bits 63:59 (SWP_TYPE_BITS 5), the offset inverted in bits 58:9
 * (SWP_OFFSET_FIRST_BIT = _PAGE_BIT_PROTNONE + 1; inverted so that a speculative walk that
 * ignores P points above RAM, the L1TF mitigation), and bit 3 _PAGE_SWP_EXCLUSIVE
 * (PG_anon_exclusive kept across swap-out), bit 1 _PAGE_SWP_SOFT_DIRTY (the soft-dirty bit the
 * present entry had) and bit 2 _PAGE_SWP_UFFD_WP.
 */
export const SWP_TYPE_BITS = 5;
export const SWP_OFFSET_FIRST_BIT = 9;
/** _PAGE_SWP_EXCLUSIVE: _PAGE_PWT, bit 3, in a swap PTE. */
export const _PAGE_SWP_EXCLUSIVE = PTE_PWT;
/** _PAGE_SWP_SOFT_DIRTY: _PAGE_RW, bit 1, in a swap PTE. */
export const _PAGE_SWP_SOFT_DIRTY = PTE_RW;

/** pte_swp_soft_dirty. */
export function pte_swp_soft_dirty(lo: number): boolean {
  return (lo & _PAGE_SWP_SOFT_DIRTY) !== 0;
}

/** pte_swp_mksoft_dirty. Changes `p` and returns it. */
export function pte_swp_mksoft_dirty(p: pte_t): pte_t {
  p.lo |= _PAGE_SWP_SOFT_DIRTY;
  return p;
}

/** pte_swp_clear_soft_dirty. Changes `p` and returns it. */
export function pte_swp_clear_soft_dirty(p: pte_t): pte_t {
  p.lo &= ~_PAGE_SWP_SOFT_DIRTY;
  return p;
}

/** is_swap_pte: neither empty nor present (the model makes no migration or device entries). */
export function is_swap_pte(lo: number, hi: number): boolean {
  return !pte_none(lo, hi) && !pte_present(lo);
}

/** __swp_entry_to_pte(__swp_entry(type, offset)): sets `p` to the swap PTE and returns it (not exclusive). */
export function swp_entry_to_pte(p: pte_t, type: number, offset: number): pte_t {
  // ~offset << SWP_OFFSET_SHIFT >> SWP_TYPE_BITS: bits 0..22 of ~offset in lo 31:9, bits 23..49 in hi 26:0.
  p.lo = ((~offset & 0x7fffff) << SWP_OFFSET_FIRST_BIT) | 0;
  p.hi = ((~Math.floor(offset / 0x800000) & 0x7ffffff) | (type << (32 - SWP_TYPE_BITS))) | 0;
  return p;
}

/** __swp_type of a swap PTE: bits 63:59. */
export function swp_type(_lo: number, hi: number): number {
  return hi >>> (32 - SWP_TYPE_BITS);
}

/** __swp_offset of a swap PTE: ~pte << SWP_TYPE_BITS >> SWP_OFFSET_SHIFT (bits 58:9, inverted). */
export function swp_offset(lo: number, hi: number): number {
  return (~(lo >>> SWP_OFFSET_FIRST_BIT) & 0x7fffff) + (~hi & 0x7ffffff) * 0x800000;
}

/** pte_swp_exclusive: the swapped-out page was PageAnonExclusive. */
export function pte_swp_exclusive(lo: number): boolean {
  return (lo & _PAGE_SWP_EXCLUSIVE) !== 0;
}

/** pte_swp_mkexclusive. Changes `p` and returns it. */
export function pte_swp_mkexclusive(p: pte_t): pte_t {
  p.lo |= _PAGE_SWP_EXCLUSIVE;
  return p;
}

/** pte_swp_clear_exclusive. Changes `p` and returns it. */
export function pte_swp_clear_exclusive(p: pte_t): pte_t {
  p.lo &= ~_PAGE_SWP_EXCLUSIVE;
  return p;
}

/** _PAGE_UFFD_WP (_PAGE_BIT_SOFTW2, bit 10): a present entry userfaultfd write-protected; such an entry is never writable. */
export const _PAGE_UFFD_WP = PTE_SOFTW2;
/** _PAGE_SWP_UFFD_WP (_PAGE_USER, bit 2): the same mark on a swap entry. */
export const _PAGE_SWP_UFFD_WP = PTE_US;

/** pte_uffd_wp: the present entry carries the uffd-wp bit. */
export function pte_uffd_wp(lo: number): boolean {
  return (lo & _PAGE_UFFD_WP) !== 0;
}

/** pte_mkuffd_wp: sets the uffd-wp bit and write-protects (pte_wrprotect(pte_set_flags(pte, _PAGE_UFFD_WP))). Changes `p` and returns it. */
export function pte_mkuffd_wp(p: pte_t): pte_t {
  p.lo |= _PAGE_UFFD_WP;
  return pte_wrprotect(p);
}

/** pte_clear_uffd_wp: clears the uffd-wp bit only (the entry stays read-only). Changes `p` and returns it. */
export function pte_clear_uffd_wp(p: pte_t): pte_t {
  p.lo &= ~_PAGE_UFFD_WP;
  return p;
}

/** pte_swp_uffd_wp: the swap entry carries the uffd-wp bit. */
export function pte_swp_uffd_wp(lo: number): boolean {
  return (lo & _PAGE_SWP_UFFD_WP) !== 0;
}

/** pte_swp_mkuffd_wp. Changes `p` and returns it. */
export function pte_swp_mkuffd_wp(p: pte_t): pte_t {
  p.lo |= _PAGE_SWP_UFFD_WP;
  return p;
}

/** pte_swp_clear_uffd_wp. Changes `p` and returns it. */
export function pte_swp_clear_uffd_wp(p: pte_t): pte_t {
  p.lo &= ~_PAGE_SWP_UFFD_WP;
  return p;
}

/**
 * The page tables of one address space: the PGD frame and how to find, allocate and free the
 * tables below it. Knows nothing of VMAs. Tables are linked with _PAGE_TABLE; missing tables
 * are allocated zeroed (pte_alloc, pmd_alloc, pud_alloc, p4d_alloc).
 */
export class PageTables {
  /** Frame of the top-level table (PGD: PML4, or PML5 with 5-level paging); with PTI, the kernel copy. */
  readonly pgd: number;
  /** With PTI, the user copy: the second half of the 8 KiB PGD pair (kernel_to_user_pgdp); else -1. */
  readonly userPgd: number;
  readonly levels: number;
  private readonly mem: PhysMem;
  private readonly pages: PageAllocator;
  /** Page-table frames this mm owns below the PGD (for the debug checks and exit). */
  tables = 0;
  /**
   * Whether pti_set_user_pgtbl adds NX to Present+User entries of the kernel copy (PTI with
   * NX, and the mm's per-process PTI not off).
   */
  nxTrick: boolean;

  constructor(mem: PhysMem, pages: PageAllocator, levels: number, pgd: number, userPgd = -1, nxTrick = false) {
    this.mem = mem;
    this.pages = pages;
    this.levels = levels;
    this.pgd = pgd;
    this.userPgd = userPgd;
    this.nxTrick = nxTrick;
    return track(this);
  }

  /**
   * set_pgd (arch/x86/include/asm/pgtable_64.h native_set_p4d on 4-level, pti_set_user_pgtbl):
   * writes PGD entry `i`. With PTI, a user-half entry (i < 256) is copied verbatim into the
   * user copy unless it has _PAGE_NOPTISHADOW, and gets NX in the kernel copy when it is
   * Present+User (the NX trick). Kernel-half entries are never mirrored.
   */
  set_pgd(i: number, lo: number, hi: number): void {
    if (this.userPgd >= 0 && i < 256) {
      if (!(hi & PTEH_NOPTISHADOW)) this.mem.write64(this.userPgd, i, lo, hi);
      if (this.nxTrick && (lo & (PTE_P | PTE_US)) === (PTE_P | PTE_US)) hi = (hi | PTEH_XD) >>> 0;
    }
    this.mem.write64(this.pgd, i, lo, hi);
  }

  /**
   * Re-applies the NX trick to every user-half entry of the kernel copy after `nxTrick`
   * changed (per-process PTI). The caller flushes the TLB.
   */
  resyncUserHalf(): void {
    if (this.userPgd < 0) return;
    for (let i = 0; i < 256; i++) {
      const lo = this.mem.readLo(this.userPgd, i);
      if (lo & PTE_P) this.set_pgd(i, lo, this.mem.readHi(this.userPgd, i));
    }
  }

  /**
   * The frame of the PTE table that covers user address `va`, allocating missing tables when
   * `alloc`. Returns -1 if a table is missing and `alloc` is false, -2 if allocation failed.
   * Does not look at or change any leaf entry.
   */
  pteTable(va: number, alloc: boolean): number {
    let table = this.pgd;
    for (let level = this.levels; level > 1; level--) {
      const i = pgtableIndex(va, level);
      const lo = this.mem.readLo(table, i);
      if (lo & PTE_P) {
        table = (this.mem.readHi(table, i) & PFN_HI) * 1048576 + (lo >>> 12);
        continue;
      }
      if (!alloc) return -1;
      table = this.allocTable(table, i, level, _PAGE_TABLE);
      if (table < 0) return -2;
    }
    return table;
  }

  /**
   * pte_alloc and its upper-level kin: a zeroed table owned by this mm, linked at entry `i` of
   * `table` (a `level` table) with `flags`; a PGD entry goes through set_pgd. -1 when the
   * allocation failed.
   */
  private allocTable(table: number, i: number, level: number, flags: number): number {
    const pfn = this.pages.alloc_page(PG_table, true);
    if (pfn < 0) return -1;
    this.tables++;
    const e = mk_pte(__pte(), pfn, flags, 0);
    if (level === this.levels) this.set_pgd(i, e.lo, e.hi);
    else this.mem.write64(table, i, e.lo, e.hi);
    return pfn;
  }

  /**
   * The PTE table covering kernel address `va` (bigint, canonical) in this mm's kernel copy,
   * allocating missing tables (linked with _KERNPG_TABLE, owned by this mm) when `alloc`, as
   * get_locked_pte does for the LDT remap area. -1: missing; -2: allocation failed.
   */
  kernelPteTable(va: bigint, alloc: boolean): number {
    let table = this.pgd;
    for (let level = this.levels; level > 1; level--) {
      const i = Number((va >> BigInt(3 + 9 * level)) & 511n);
      const lo = this.mem.readLo(table, i);
      if (lo & PTE_P) {
        table = (this.mem.readHi(table, i) & PFN_HI) * 1048576 + (lo >>> 12);
        continue;
      }
      if (!alloc) return -1;
      table = this.allocTable(table, i, level, _KERNPG_TABLE);
      if (table < 0) return -2;
    }
    return table;
  }

  /**
   * Frees the tables below kernel-half PGD entry `i` of both copies and clears the entry
   * (free_pgd_range over one PGD slot, as free_ldt_pgtables does). The leaves must be clear.
   */
  freeKernelSlot(i: number, shared: { lo: number; hi: number }): void {
    const lo = this.mem.readLo(this.pgd, i);
    if (!(lo & PTE_P)) return;
    // An entry pgd_ctor copied from the boot PGD points at kernel tables every mm shares.
    if (lo === shared.lo && this.mem.readHi(this.pgd, i) === shared.hi) return;
    const walk = (table: number, level: number): void => {
      for (let j = 0; j < 512; j++) {
        const e = this.mem.readLo(table, j);
        if (!(e & PTE_P)) continue;
        const child = (this.mem.readHi(table, j) & PFN_HI) * 1048576 + (e >>> 12);
        if (level > 2) walk(child, level - 1);
        this.mem.write64(table, j, 0, 0);
        this.pages.put_page(child);
        this.tables--;
      }
    };
    const top = (this.mem.readHi(this.pgd, i) & PFN_HI) * 1048576 + (lo >>> 12);
    walk(top, this.levels - 1);
    this.pages.put_page(top);
    this.tables--;
    this.mem.write64(this.pgd, i, 0, 0);
    if (this.userPgd >= 0) this.mem.write64(this.userPgd, i, 0, 0);
  }

  /**
   * Calls `fn(pteTable, firstIndex, endIndex, vaOfFirst)` for each existing PTE table covering
   * part of [start, end), in address order. Only present entries are descended into, so a huge
   * sparse range costs what is mapped in it. Used by zap, the debug checks and the tests.
   */
  forEachPteTable(start: number, end: number, fn: (table: number, from: number, to: number, va: number) => void): void {
    for (let va = this.nextPteTable(start, end); va >= 0; ) {
      const next = pmd_addr_end(va, end);
      fn(this.pteTable(va, false), pgtableIndex(va, 1), pgtableIndex(next - 1, 1) + 1, va);
      va = this.nextPteTable(next, end);
    }
  }

  /**
   * The first address in [start, end) that a PTE table covers: `start` itself when its table
   * exists, else the start of the first 2 MiB span after it that has one; -1 if none. Only
   * present entries are descended into, as in forEachPteTable.
   */
  nextPteTable(start: number, end: number): number {
    const mem = this.mem;
    const find = (table: number, level: number, base: number): number => {
      const span = levelSize(level);
      const first = Math.max(0, Math.floor((start - base) / span));
      const last = Math.min(level === this.levels ? 256 : 512, Math.ceil((end - base) / span));
      for (let i = first; i < last; i++) {
        const lo = mem.readLo(table, i);
        if (!(lo & PTE_P)) continue;
        const va = base + i * span;
        if (level === 2) return Math.max(start, va);
        const found = find((mem.readHi(table, i) & PFN_HI) * 1048576 + (lo >>> 12), level - 1, va);
        if (found >= 0) return found;
      }
      return -1;
    };
    return end > start ? find(this.pgd, this.levels, 0) : -1;
  }

  /**
   * free_pgd_range, for the PTE level: frees the PTE tables whose whole 2 MiB span lies in
   * [floor, ceiling), clearing their PMD entries. Returns how many were freed. The caller has
   * already zapped every entry in them and flushes the TLB with freed_tables set.
   * XXX: PMD, PUD and P4D tables are freed only at exit (free_pgtables frees them earlier).
   */
  freePteTables(floor: number, ceiling: number): number {
    const mem = this.mem;
    const span = levelSize(2);
    const lo = Math.ceil(floor / span) * span;
    const hi = Math.floor(ceiling / span) * span;
    const doomed: { pmd: number; i: number }[] = [];
    const visit = (table: number, level: number, base: number): void => {
      const size = levelSize(level);
      const first = Math.max(0, Math.floor((lo - base) / size));
      const last = Math.min(level === this.levels ? 256 : 512, Math.ceil((hi - base) / size));
      for (let i = first; i < last; i++) {
        const e = mem.readLo(table, i);
        if (!(e & PTE_P)) continue;
        const child = (mem.readHi(table, i) & PFN_HI) * 1048576 + (e >>> 12);
        if (level === 2) doomed.push({ pmd: table, i });
        else visit(child, level - 1, base + i * size);
      }
    };
    if (hi > lo) visit(this.pgd, this.levels, 0);
    for (const { pmd, i } of doomed) {
      const e = mem.readLo(pmd, i);
      const pte = (mem.readHi(pmd, i) & PFN_HI) * 1048576 + (e >>> 12);
      mem.write64(pmd, i, 0, 0);
      this.pages.put_page(pte);
      this.tables--;
    }
    return doomed.length;
  }

  /** The frame of the table at `level` (2 = PMD table ...) covering `va`, or -1 if missing. */
  tableAt(va: number, level: number): number {
    let table = this.pgd;
    for (let l = this.levels; l > level; l--) {
      const i = pgtableIndex(va, l);
      const lo = this.mem.readLo(table, i);
      if (!(lo & PTE_P)) return -1;
      table = (this.mem.readHi(table, i) & PFN_HI) * 1048576 + (lo >>> 12);
    }
    return table;
  }

  /**
   * free_pgtables at exit: frees every table below the user half of the PGD (entries
   * 0..255), then the caller frees the PGD. The leaf entries must already be zapped.
   */
  freeUserTables(): void {
    const walk = (table: number, level: number, first: number, last: number): void => {
      for (let i = first; i < last; i++) {
        const lo = this.mem.readLo(table, i);
        if (!(lo & PTE_P)) continue;
        const child = (this.mem.readHi(table, i) & PFN_HI) * 1048576 + (lo >>> 12);
        if (level > 2) walk(child, level - 1, 0, 512);
        if (level === this.levels) this.set_pgd(i, 0, 0);
        else this.mem.write64(table, i, 0, 0);
        this.pages.put_page(child);
        this.tables--;
      }
    };
    walk(this.pgd, this.levels, 0, 256);
  }
}
