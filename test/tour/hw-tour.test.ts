/**
 * The tour's machine-layer stops show what the SDM says they show. Expected error codes come
 * from SDM Vol. 3A §4.6/§4.7 (see ../shared/spec/x86-access-rules.md), not from a run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hwTour } from '../../src/tour/hw.js';

const stops = Object.fromEntries(hwTour().map((s) => [s.id, s]));

test('U/S: a CPL 3 read of a present supervisor page is #PF with P and U (0x5)', () => {
  assert.match(stops['us-bit'].evidence[0], /#PF, error code 0x5 \(P U\)$/);
});

test('SMAP: explicit supervisor read faults with AC=0 (0x1), passes with AC=1, implicit faults', () => {
  const [noAc, ac, implicit] = stops['smap'].evidence;
  assert.match(noAc, /error code 0x1 \(P\)$/);
  assert.match(ac, /pa 0x100000$/);
  assert.match(implicit, /error code 0x1 \(P\)$/);
});

test('stale TLB: the write passes before INVLPG and faults with P W U (0x7) after', () => {
  const [ptel, before, after] = stops['stale-tlb'].evidence;
  assert.doesNotMatch(ptel, /\bRW\b/, 'the PTE is read-only');
  assert.match(before, /pa 0x100000$/);
  assert.match(after, /error code 0x7/);
});

test('PCID: each address space sees its own frame; NOFLUSH return needs no walk', () => {
  const [a, b, again] = stops['pcid'].evidence;
  assert.match(a, /0x100000/);
  assert.match(b, /0x300000/);
  assert.match(again, /0x100000, 0 TLB misses/);
});

test('PKU: after WRPKRU sets WD0, a user write faults with P W U PK (0x27) from the cached entry', () => {
  const [, after] = stops['pkru'].evidence;
  assert.match(after, /error code 0x27 \(P W U PK\), decided on a TLB hit: yes/);
});

test('seed 003: strict faults and leaves D clear; legacy writes and leaves R/W=0 with D=1', () => {
  const [strict, legacy] = stops['dirty-on-readonly'].evidence;
  assert.match(strict, /#PF, error code 0x7/);
  assert.doesNotMatch(strict, /\bD\b/);
  assert.match(legacy, /write pa 0x100000; PTE P US A D /);
  assert.doesNotMatch(legacy, /\bRW\b/);
});

test('Meltdown: the transient load returns the kernel bytes only on a meltdown CPU', () => {
  const [ok, bug] = stops['meltdown'].evidence;
  assert.match(ok, /^meltdown=false: nothing/);
  assert.match(bug, /^meltdown=true: "kernel secret"/);
});
