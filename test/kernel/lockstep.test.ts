/**
 * Kernel paths in lockstep (lockstep.ts): two CPUs race through small programs, fault against
 * fault, fork against fault, fork against fork, munmap against fault, under every interleaving
 * of their steps with at most PREEMPTIONS preemptions, and each fault's reported outcome, each
 * fork's count of copied PTEs, the values the threads read and the page counts are checked
 * against what happened in memory.
 *
 * The cases are in lockstep-cases.ts; this file runs fault against fault and shows the judge
 * can fail. Every case is a row: the programs, the racers (a CPU, and the stretch of its program that
 * races), the pages watched, and what the program itself says about the values it reads. The
 * expected outcomes are not listed per interleaving: the judge derives them from the PTE
 * changes each CPU made (mm/memory.c's meanings), so an interleaving the kernel handles in a
 * new way (a fault that backs out, say) is judged the same way.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { judgeFault } from './lockstep.js';
import { FAULT_CASES, lockstepTests } from './lockstep-cases.js';

lockstepTests(FAULT_CASES);

// ---------------------------------------------------------------------------------------------
// The judge can fail.

test('the judge refuses outcomes that do not match the PTE changes', () => {
  const none = { lo: 0, hi: 0 };
  const k = { zero_pfn: 7 } as never;
  const zero = { lo: (7 << 12) | 0x1 | 0x4 | 0x200 | 0x20, hi: 0 };
  const mine = (lo: number): { lo: number; hi: number } => ({ lo: (40 << 12) | lo, hi: 0 });
  const change = (old: { lo: number; hi: number }, now: { lo: number; hi: number }, extra = {}) => ({ step: 5, ctx: 1, va: 0x1000, old, now, fresh: true, zeroed: true, sameBytes: true, ...extra });
  const fault = (outcome: string, errorCode: number, changes: ReturnType<typeof change>[], copies: { src: number; dst: number; refcount: number }[] = []) => ({
    step: 6,
    ctx: 1,
    start: 1,
    changes,
    copies,
    event: { type: 'page_fault' as const, cpu: 0, tid: 1, addr: 0x1000n, errorCode, user: true, outcome },
  });
  const rw = mine(0x1 | 0x2 | 0x4 | 0x20 | 0x40);
  const ro = { lo: (41 << 12) | 0x1 | 0x4 | 0x20, hi: 0 };
  const rows: [string, ReturnType<typeof fault>, boolean][] = [
    ['zero page installed, reported zero-page', fault('zero-page', 4, [change(none, zero)]), true],
    ['zero page installed, reported mapped', fault('mapped', 4, [change(none, zero, { fresh: false })]), false],
    ['zero page installed without the special bit', fault('zero-page', 4, [change(none, { lo: zero.lo & ~0x200, hi: 0 })]), false],
    ['zero page installed over a present entry', fault('zero-page', 4, [change(mine(0x5), zero)]), false],
    ['fresh page mapped, reported mapped', fault('mapped', 6, [change(none, rw)], [{ src: -1, dst: 40, refcount: 1 }]), true],
    ['fresh page mapped without its page_copy event', fault('mapped', 6, [change(none, rw)]), false],
    ['a page another entry maps, reported mapped', fault('mapped', 6, [change(none, rw, { fresh: false })], [{ src: -1, dst: 40, refcount: 1 }]), false],
    ['a page not zero-filled, reported mapped', fault('mapped', 6, [change(none, rw, { zeroed: false })], [{ src: -1, dst: 40, refcount: 1 }]), false],
    ['a read-only page for a write, reported mapped', fault('mapped', 6, [change(none, mine(0x5))], [{ src: -1, dst: 40, refcount: 1 }]), false],
    ['nothing done, reported mapped', fault('mapped', 6, []), false],
    ['nothing done, reported spurious', fault('spurious', 6, []), true],
    ['only A and D set, reported spurious', fault('spurious', 6, [change(mine(0x5), mine(0x65))]), true],
    ['a page mapped, reported spurious', fault('spurious', 6, [change(none, rw)]), false],
    ['copied through an empty entry', fault('copied', 7, [change(ro, none), change(none, rw)], [{ src: 41, dst: 40, refcount: 1 }]), true],
    ['copied, the copy not holding the old bytes', fault('copied', 7, [change(ro, none), change(none, rw, { sameBytes: false })], [{ src: 41, dst: 40, refcount: 1 }]), false],
    ['made writable in place, reported copied', fault('copied', 7, [change(mine(0x5), mine(0x7))]), false],
    ['made writable in place, reported reused', fault('reused', 7, [change(mine(0x5), mine(0x7))]), true],
    ['a new frame, reported reused', fault('reused', 7, [change(ro, rw)]), false],
    ['copied without its page_copy event', fault('copied', 7, [change(ro, none), change(none, rw)]), false],
    ['backed out, copy freed', fault('backout', 7, [], [{ src: 41, dst: 40, refcount: 0 }]), true],
    ['backed out, but mapped its copy', fault('backout', 7, [change(ro, rw)], [{ src: 41, dst: 40, refcount: 1 }]), false],
    ['SIGSEGV, nothing changed', fault('signal', 6, []), true],
    ['SIGSEGV, but a page mapped', fault('signal', 6, [change(none, rw)]), false],
    ['backed out, copy still allocated', fault('backout', 7, [], [{ src: 41, dst: 40, refcount: 1 }]), false],
  ];
  for (const [name, f, ok] of rows) {
    const verdict = judgeFault(k, f as never);
    assert.equal(verdict === null, ok, `${name}: ${verdict?.message}`);
  }
});
