/**
 * The named bits of a paging-structure entry as the page shows them, built from hw/pte.ts's
 * masks (each bit is defined there once; this only names where each applies).
 */
import {
  PTE_A, PTE_D, PTE_G, PTE_P, PTE_PCD, PTE_PS, PTE_PWT, PTE_RW, PTE_SOFTW1, PTE_SOFTW2, PTE_SOFTW3, PTE_US, PTEH_PK_SHIFT, PTEH_SAVED_DIRTY, PTEH_XD,
} from '../hw/pte.js';
import type { BitName } from './types.js';

/** The bit number of a one-bit mask of the low (`hi` false) or high word. */
function bitOf(mask: number, hi = false): number {
  return 31 - Math.clz32(mask) + (hi ? 32 : 0);
}

/** Every bit the page names, low to high (SDM Vol. 3A Tables 4-14 to 4-20; Linux pgtable_types.h). */
export const PTE_BITS: readonly BitName[] = [
  { bit: bitOf(PTE_P), width: 1, name: 'P', doc: 'present', where: 'any' },
  { bit: bitOf(PTE_RW), width: 1, name: 'RW', doc: 'writable', where: 'any' },
  { bit: bitOf(PTE_US), width: 1, name: 'US', doc: 'user-accessible', where: 'any' },
  { bit: bitOf(PTE_PWT), width: 1, name: 'PWT', doc: 'write-through', where: 'any' },
  { bit: bitOf(PTE_PCD), width: 1, name: 'PCD', doc: 'cache disable', where: 'any' },
  { bit: bitOf(PTE_A), width: 1, name: 'A', doc: 'accessed', where: 'any' },
  { bit: bitOf(PTE_D), width: 1, name: 'D', doc: 'dirty', where: 'leaf' },
  { bit: bitOf(PTE_PS), width: 1, name: 'PS', doc: 'page size (a 2 MiB or 1 GiB leaf); PAT in a PTE', where: 'any' },
  { bit: bitOf(PTE_G), width: 1, name: 'G', doc: 'global (survives CR3 writes)', where: 'leaf' },
  { bit: bitOf(PTE_SOFTW1), width: 1, name: 'SPECIAL', doc: 'Linux _PAGE_SPECIAL (software bit 9)', where: 'leaf' },
  { bit: bitOf(PTE_SOFTW2), width: 1, name: 'UFFD_WP', doc: 'Linux _PAGE_UFFD_WP (software bit 10)', where: 'leaf' },
  { bit: bitOf(PTE_SOFTW3), width: 1, name: 'SOFT_DIRTY', doc: 'Linux _PAGE_SOFT_DIRTY (software bit 11)', where: 'leaf' },
  { bit: bitOf(PTEH_SAVED_DIRTY, true), width: 1, name: 'SAVED_DIRTY', doc: 'Linux _PAGE_SAVED_DIRTY (software bit 58): the dirty state of a read-only page; _PAGE_NOPTISHADOW in a PGD entry', where: 'any' },
  { bit: PTEH_PK_SHIFT + 32, width: 4, name: 'PK', doc: 'protection key (bits 62:59)', where: 'leaf' },
  { bit: bitOf(PTEH_XD, true), width: 1, name: 'XD', doc: 'execute-disable', where: 'any' },
];
