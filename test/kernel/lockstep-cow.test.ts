/**
 * Kernel paths in lockstep (lockstep-cases.ts): a COW page written by two threads after fork,
 * where one fault must back out in some interleaving, and munmap against a fault.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { COW_TWO_WRITERS, UNMAP_CASES, backout, lockstepTests, outcomeList, searched } from './lockstep-cases.js';

lockstepTests([COW_TWO_WRITERS, ...UNMAP_CASES]);

// Fails while the COW path holds the PTL from its read of the PTE to the new PTE: no backout exists then.
test('racing faults on one page: one backs out after pte_same fails, as in 6.12', (t) => {
  const r = searched(COW_TWO_WRITERS);
  t.diagnostic(`${r.interleavings} interleavings; fault outcomes (main | thread): ${outcomeList(r)}`);
  assert.ok(backout, `no interleaving had one fault copy and the other back out of its copy after pte_same failed (among those the checks passed); outcomes seen (main | thread): ${outcomeList(r)}`);
  t.diagnostic(backout);
});

