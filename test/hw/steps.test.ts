/**
 * The walk as atomic steps (DESIGN.md rule 2): one step per paging-structure read and one per
 * locked A/D update, each announcing the physical word it touches, so another CPU's store can
 * land between two steps. A locked update that finds its entry changed restarts the walk.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Access, FAULT, PENDING, PTE_A, PTE_D, PTE_P, PF_U, PF_W, hi32, lo32 } from '../../src/index.js';
import { pa, rig } from './helpers.js';

const VA = 0x7f0000001000n;

test('a 4-level miss takes one step per entry read, then one per A/D update, top level first', () => {
  const { pt, cpu } = rig();
  pt.map(VA, pa(50), { leaf: { rw: true, us: true } }); // tables have A set; the leaf has neither A nor D
  cpu.setCpl(3);
  assert.equal(cpu.accessStart(hi32(VA), lo32(VA), Access.Write), PENDING);
  const seen: { pa: number; locked: boolean }[] = [];
  let r = PENDING;
  while (r === PENDING) {
    seen.push(cpu.accessFootprint()!);
    r = cpu.accessStep();
  }
  assert.equal(r, pa(50) + (Number(VA) & 0xfff));
  const leaf = pt.entry(VA, 1)!;
  const pml4 = pt.entry(VA, 4)!;
  assert.equal(seen.length, 5, '4 reads and the locked update of the leaf');
  assert.deepEqual(seen[0], { pa: pml4.pfn * 4096 + pml4.index * 8, locked: false });
  assert.deepEqual(seen[3], { pa: leaf.pfn * 4096 + leaf.index * 8, locked: false });
  assert.deepEqual(seen[4], { pa: leaf.pfn * 4096 + leaf.index * 8, locked: true });
  const pte = Number(pt.readEntry(VA, 1)! & 0xfffn);
  assert.equal(pte & (PTE_A | PTE_D), PTE_A | PTE_D, 'A and D set by the one locked update');
  assert.equal(cpu.accessFootprint(), null, 'nothing pending afterwards');
});

test('a store between the leaf read and the locked A/D update makes the walk start again', () => {
  const { pt, cpu } = rig();
  pt.map(VA, pa(60), { leaf: { rw: true, us: true } });
  cpu.setCpl(3);
  let r = cpu.accessStart(hi32(VA), lo32(VA), Access.Write);
  while (!cpu.accessFootprint()!.locked) r = cpu.accessStep();
  assert.equal(r, PENDING);
  // Another CPU write-protects the PTE (R/W cleared) before this CPU's locked update.
  pt.writeEntry(VA, 1, (BigInt(pa(60)) | BigInt(PTE_P | 4)));
  while (r === PENDING) r = cpu.accessStep();
  assert.equal(r, FAULT, 'the re-walk saw R/W=0');
  assert.equal(cpu.faultErrorCode, 1 | PF_W | PF_U);
  assert.equal(cpu.walker.restarts, 1);
  assert.equal(Number(pt.readEntry(VA, 1)! & BigInt(PTE_D)), 0, 'D was never set on the read-only PTE');
});

test('a PTE cleared between two reads of a walk gives a not-present fault', () => {
  const { pt, cpu } = rig();
  pt.map(VA, pa(70), { leaf: { rw: true, us: true, a: true } });
  cpu.setCpl(3);
  let r = cpu.accessStart(hi32(VA), lo32(VA), Access.Read);
  r = cpu.accessStep(); // PML4E
  r = cpu.accessStep(); // PDPTE
  pt.writeEntry(VA, 1, 0n); // zap_pte on another CPU
  while (r === PENDING) r = cpu.accessStep();
  assert.equal(r, FAULT);
  assert.equal(cpu.faultErrorCode, PF_U, 'P=0, read, user');
});

test('events: every walk, fill, hit, miss, A/D update, flush and control-register write is reported', () => {
  const { m, pt, cpu } = rig();
  pt.map(VA, pa(80), { leaf: { rw: true, us: true } });
  assert.equal(m.events.on, false, 'nobody listens yet');
  const { events, stop } = m.events.record();
  assert.equal(m.events.on, true);
  cpu.setCr3(pt.cr3());
  cpu.setCpl(3);
  cpu.translateAddress(VA, 'write');
  cpu.translateAddress(VA, 'read');
  cpu.translateAddress(0x1000n, 'read'); // unmapped
  cpu.setCpl(0);
  cpu.invlpg(hi32(VA), lo32(VA));
  stop();
  assert.equal(m.events.on, false);
  assert.deepEqual(events.map((e) => e.type), [
    'cr_write', 'tlb_flush', // MOV to CR3 flushes PCID 0
    'tlb_miss', 'ad_set', 'tlb_fill', 'walk', // the write
    'tlb_hit', // the read
    'tlb_miss', 'walk', 'tlb_flush', 'fault', // the walk ends; #PF delivery drops the page's entries
    'tlb_flush', // INVLPG
  ]);
  const walk = events.find((e) => e.type === 'walk')!;
  assert.deepEqual({ ...walk }, { type: 'walk', cpu: 0, hi: 0x7f00, lo: 0x1000, access: 'write', levels: 4, reads: 4, restarts: 0, outcome: 'ok', errorCode: 0 });
  const fault = events.find((e) => e.type === 'fault')!;
  assert.deepEqual({ ...fault }, { type: 'fault', cpu: 0, vector: 14, errorCode: PF_U, hi: 0, lo: 0x1000 });
});

test('an A/D update touches only entries this walk read with A=0 (no stale record from an earlier walk)', () => {
  const { pt, cpu } = rig();
  // X's tables are built without A; Y sits under a different PML4 entry whose tables have A.
  const X = 0x0000_0040_0000_0000n;
  const Y = 0x0000_1234_5678_9000n;
  pt.map(X, pa(90), { leaf: { rw: true, us: true }, table: { rw: true, us: true } });
  pt.map(Y, pa(91), { leaf: { rw: true, us: true }, table: { rw: true, us: true, a: true } });
  cpu.setCpl(3);
  assert.equal(cpu.translateAddress(X, 'write'), pa(90));
  let r = cpu.accessStart(hi32(Y), lo32(Y), Access.Write);
  let steps = 0;
  while (r === PENDING) {
    steps++;
    r = cpu.accessStep();
    assert.ok(steps < 10, 'the walk must end');
  }
  assert.equal(r, pa(91));
  assert.equal(steps, 5, '4 reads and one locked update of the leaf');
  assert.equal(cpu.walker.restarts, 0);
});
