/**
 * A paging-structure entry as the page shows it: decoded from the recording's 16 hex digits with
 * the masks of hw/pte.ts, and its named bits (recording.bits) read out.
 */
import { PTE_P, PTE_PAT_LARGE, PTE_PS, pteFrame } from '../../src/hw/pte.js';
import type { BitName } from '../../src/see/types.js';

/** The 16 hex digits of an absent entry. */
export const ZERO_ENTRY = '0000000000000000';

export interface Entry {
  /** Bits 31:0 and 63:32. */
  lo: number;
  hi: number;
  present: boolean;
  /** It maps a page: level 1, or level 2 or 3 with PS set. */
  leaf: boolean;
  /** The frame it points to (a table, or the page), or null when not present. */
  frame: number | null;
}

/** Decodes an entry of a level-`level` table (1 = PTE) from its 16 hex digits. */
export function decodeEntry(hex: string, level: number): Entry {
  const digits = hex.padStart(16, '0');
  const hi = parseInt(digits.slice(0, 8), 16) | 0;
  const lo = parseInt(digits.slice(8), 16) | 0;
  const present = (lo & PTE_P) !== 0;
  const large = (level === 2 || level === 3) && (lo & PTE_PS) !== 0;
  const leaf = level === 1 || large;
  // A large page's address field starts above its PAT bit (bit 12).
  const frame = !present ? null : large ? pteFrame(lo & ~PTE_PAT_LARGE, hi) : pteFrame(lo, hi);
  return { lo, hi, present, leaf, frame };
}

/** The value of bit field `bit` in entry `e`. */
export function bitValue(e: Entry, bit: BitName): number {
  const word = bit.bit < 32 ? e.lo : e.hi;
  const mask = bit.width >= 32 ? -1 : (1 << bit.width) - 1;
  return (word >>> bit.bit % 32) & mask;
}

/** The named bits that apply to `e` (where: any, leaf or table). */
export function bitsOf(bits: readonly BitName[], e: Entry): BitName[] {
  return bits.filter((b) => b.where === 'any' || (b.where === 'leaf') === e.leaf);
}
