/**
 * PTE fields as a scenario's `ptes` expectations name them, read through the System's
 * introspection (introspect.ts), which walks the page tables without changing anything.
 */
import type { Pte } from '../introspect.js';

/** The fields a `ptes` expectation names, read from a PTE (all 0 when there is none), each 0 or 1 but `pkey`. */
export function pteFields(pte: Pte | null): Record<'present' | 'rw' | 'accessed' | 'dirty' | 'saved_dirty' | 'pkey', number> {
  if (!pte) return { present: 0, rw: 0, accessed: 0, dirty: 0, saved_dirty: 0, pkey: 0 };
  return {
    present: pte.present ? 1 : 0,
    rw: pte.rw ? 1 : 0,
    accessed: pte.accessed ? 1 : 0,
    dirty: pte.dirty ? 1 : 0,
    saved_dirty: pte.saved_dirty ? 1 : 0,
    pkey: pte.pkey,
  };
}
