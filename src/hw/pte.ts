/**
 * The paging-structure entry format of 4- and 5-level paging (SDM Vol. 3A §4.5, Tables 4-14
 * to 4-20), with the bits Linux keeps for itself (arch/x86/include/asm/pgtable_types.h).
 *
 * An entry is a 64-bit word in physical memory, handled as two uint32 halves (see addr.ts):
 * `PTE_*` masks apply to the low word (bits 31:0), `PTEH_*` masks to the high word (bits 63:32,
 * so PTE bit n is bit n-32 there). Each bit is defined once, here.
 */

// ---- Low word: bits 31:0 -------------------------------------------------------------------
/** Bit 0, P: present; every other bit is ignored when 0 (Linux reuses them for swap entries). */
export const PTE_P = 1 << 0;
/** Bit 1, R/W: 0 makes the region read-only (for supervisor writes only when CR0.WP=1). */
export const PTE_RW = 1 << 1;
/** Bit 2, U/S: 1 lets user-mode accesses through; an address is user-mode only if every entry has it. */
export const PTE_US = 1 << 2;
/** Bit 3, PWT: page-level write-through. Kept and cached, not otherwise modelled. */
export const PTE_PWT = 1 << 3;
/** Bit 4, PCD: page-level cache disable. Kept and cached, not otherwise modelled. */
export const PTE_PCD = 1 << 4;
/** Bit 5, A: accessed; set by the processor in every entry a translation uses. */
export const PTE_A = 1 << 5;
/** Bit 6, D: dirty; set by the processor in the leaf on a write. Ignored in non-leaf entries. */
export const PTE_D = 1 << 6;
/** Bit 7 in a PDPTE or PDE, PS: the entry maps a 1 GiB or 2 MiB page. Reserved in a PML4E/PML5E. */
export const PTE_PS = 1 << 7;
/** Bit 7 in a 4 KiB PTE, PAT: memory-type index bit 2 (same position as PS). */
export const PTE_PAT = 1 << 7;
/** Bit 8 in a leaf, G: global; survives CR3 writes when CR4.PGE=1. Ignored in non-leaf entries. */
export const PTE_G = 1 << 8;
/** Bit 9, ignored by the CPU; Linux _PAGE_BIT_SOFTW1 = _PAGE_SPECIAL. */
export const PTE_SOFTW1 = 1 << 9;
/** Bit 10, ignored by the CPU; Linux _PAGE_BIT_SOFTW2 = _PAGE_UFFD_WP (userfaultfd write-protect). */
export const PTE_SOFTW2 = 1 << 10;
/** Bit 11, ignored by the CPU; Linux _PAGE_BIT_SOFTW3 = _PAGE_SOFT_DIRTY. */
export const PTE_SOFTW3 = 1 << 11;
/** Bit 12 in a 2 MiB or 1 GiB leaf, PAT; the address field of a large page starts above it. */
export const PTE_PAT_LARGE = 1 << 12;
/** Linux _PAGE_PROTNONE: bit 8 (G) of a *non-present* PTE marks a PROT_NONE page (pgtable_types.h). */
export const PTE_PROTNONE = PTE_G;

// ---- High word: bits 63:32 -----------------------------------------------------------------
/** Bits 51:32 of the address field (the part above bit 31). Bits at or above MAXPHYADDR are reserved. */
export const PTEH_ADDR = 0x000fffff;
/** Bit 57, ignored by the CPU; Linux _PAGE_BIT_SOFTW4 = _PAGE_DEVMAP. */
export const PTEH_SOFTW4 = 1 << 25;
/**
 * Bit 58, ignored by the CPU; Linux _PAGE_BIT_SOFTW5. In a leaf it is _PAGE_SAVED_DIRTY (the
 * dirty state of a read-only page, kept out of D so the page does not look like shadow stack);
 * in a root PGD entry it is _PAGE_NOPTISHADOW.
 */
export const PTEH_SAVED_DIRTY = 1 << 26;
/** Linux _PAGE_NOPTISHADOW: the same bit 58, as used in root PGD entries. */
export const PTEH_NOPTISHADOW = PTEH_SAVED_DIRTY;
/** Bits 62:59 of a leaf, PK: the protection key (bit 59 is the least significant). */
export const PTEH_PK_SHIFT = 27;
/** Mask of the protection-key field in the high word. */
export const PTEH_PK = 0xf << PTEH_PK_SHIFT;
/** Bit 63, XD: execute-disable when IA32_EFER.NXE=1; a reserved bit when NXE=0. */
export const PTEH_XD = 1 << 31;

/** Low-word address field of a 4 KiB page or a table: bits 31:12. */
export const PTE_ADDR_4K = 0xfffff000 | 0;
/** Low-word address field of a 2 MiB page: bits 31:21. */
export const PTE_ADDR_2M = 0xffe00000 | 0;
/** Low-word address field of a 1 GiB page: bits 31:30. */
export const PTE_ADDR_1G = 0xc0000000 | 0;

/** Entries per paging structure, and bytes per entry. */
export const PTRS_PER_TABLE = 512;
export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 4096;

/** Page sizes a leaf can map, by the shift of their size. */
export const PAGE_SHIFT_4K = 12;
export const PAGE_SHIFT_2M = 21;
export const PAGE_SHIFT_1G = 30;

/** The frame number (physical address >> 12) an entry's address field holds, for a table or 4 KiB page. */
export function pteFrame(lo: number, hi: number): number {
  return (hi & PTEH_ADDR) * 1048576 + (lo >>> 12);
}

/**
 * The frame of the next paging structure that an entry of a level-`level` table points at (5 =
 * PML5 ... 2 = PD), or -1 when the entry is not present or maps a page itself (a PTE, or PS=1
 * in a PDPTE or PDE: SDM §4.5.4). Ignores reserved bits: a walk would fault on them, a view
 * shows them.
 */
export function nextTableFrame(lo: number, hi: number, level: number): number {
  if (!(lo & PTE_P) || level === 1) return -1;
  if ((level === 2 || level === 3) && lo & PTE_PS) return -1;
  return pteFrame(lo, hi);
}

/** The protection key in a leaf's high word. */
export function ptePkey(hi: number): number {
  return (hi >>> PTEH_PK_SHIFT) & 0xf;
}

/** A readable summary of an entry, SDM flag names first: `P RW US A D G XD pk=3 pfn=0x1234`. */
export function describePte(lo: number, hi: number, level = 1): string {
  if (!(lo & PTE_P)) return lo === 0 && hi === 0 ? 'none' : `not-present(${(hi >>> 0).toString(16)}:${(lo >>> 0).toString(16)})`;
  const leafLarge = level > 1 && (lo & PTE_PS) !== 0;
  const leaf = level === 1 || leafLarge;
  const parts = ['P'];
  if (lo & PTE_RW) parts.push('RW');
  if (lo & PTE_US) parts.push('US');
  if (lo & PTE_PWT) parts.push('PWT');
  if (lo & PTE_PCD) parts.push('PCD');
  if (lo & PTE_A) parts.push('A');
  if (leaf && lo & PTE_D) parts.push('D');
  if (leafLarge) parts.push('PS');
  if (leaf && lo & PTE_G) parts.push('G');
  if (hi & PTEH_SAVED_DIRTY) parts.push(leaf ? 'SD' : 'SOFTW5');
  if (hi & PTEH_XD) parts.push('XD');
  if (leaf && ptePkey(hi) !== 0) parts.push(`pk=${ptePkey(hi)}`);
  const frame = leafLarge ? pteFrame(lo & ~PTE_PAT_LARGE, hi) : pteFrame(lo, hi);
  parts.push(`pfn=0x${frame.toString(16)}`);
  return parts.join(' ');
}
