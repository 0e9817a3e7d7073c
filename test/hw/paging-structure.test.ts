/**
 * Paging-structure shape rules: reserved bits (spec §7 RSVD row, research/sdm-facts.md §8),
 * large-page offsets, canonical addresses for 4- and 5-level paging (sdm-facts §9), a 5-level
 * walk, and walks through table frames beyond installed memory. Expected values come from
 * those documents, not from the model.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Machine, PageTableBuilder, hi32, lo32, SIZE_2M, SIZE_1G, CR4_PKE, CR4_SMEP, EFER_NXE, MSR_EFER, type CpuModel,
} from '../../src/index.js';

// Access kinds as the Cpu API numbers them.
const READ = 0;
const WRITE = 1;
const FETCH = 2;
const KINDS = [0, 1, 2, 3, 4, 5, 6, 7];

// #PF error-code bits, spec §7.
const EC_P = 1;
const EC_W = 2;
const EC_U = 4;
const EC_RSVD = 8;
const EC_I = 0x10;
const EC_SS = 0x40;
const PF = 14;
const GP = 13;

const PS = 1n << 7n;
const bit = (n: number): bigint => 1n << BigInt(n);

interface Rig {
  m: Machine;
  cpu: Machine['cpus'][number];
  pt: PageTableBuilder;
}

function rig(cpu: Partial<CpuModel> = {}, memory?: number): Rig {
  const m = new Machine(memory === undefined ? { cpus: 1, cpu: { pks: false, ...cpu } } : { cpus: 1, memory, cpu: { pks: false, ...cpu } });
  const pt = new PageTableBuilder(m.mem, { levels: cpu.la57 ? 5 : 4 });
  const c = m.cpus[0];
  c.cpl = 0;
  assert.ok(c.setCr3(pt.cr3()));
  return { m, cpu: c, pt };
}

/** Translates addr as kind: the physical address, or -1 with the fault left in the CPU. */
function tr(cpu: Rig['cpu'], addr: bigint, kind: number): number {
  cpu.clearFault();
  return cpu.translate(hi32(addr), lo32(addr), kind);
}

function expectPa(cpu: Rig['cpu'], addr: bigint, kind: number, pa: number, what = ''): void {
  const r = tr(cpu, addr, kind);
  assert.equal(r, pa, `${what} ${addr.toString(16)}: expected pa 0x${pa.toString(16)}, got ${r} (vector ${cpu.faultVector}, ec 0x${cpu.faultErrorCode.toString(16)})`);
}

function expectPF(cpu: Rig['cpu'], addr: bigint, kind: number, ec: number, what = ''): void {
  const r = tr(cpu, addr, kind);
  assert.equal(r, -1, `${what} ${addr.toString(16)}: expected #PF 0x${ec.toString(16)}, got pa 0x${r.toString(16)}`);
  assert.equal(cpu.faultVector, PF, `${what}: vector`);
  assert.equal(cpu.faultErrorCode, ec, `${what}: error code 0x${cpu.faultErrorCode.toString(16)}, expected 0x${ec.toString(16)}`);
  assert.equal(cpu.cr2Hi, hi32(addr), `${what}: CR2 high`);
  assert.equal(cpu.cr2Lo, lo32(addr), `${what}: CR2 low`);
}

/** Sets `bits` in the level-`level` entry of `la` and flushes the TLB; returns the old value. */
function setBits(r: Rig, la: bigint, level: number, bits: bigint): bigint {
  const old = r.pt.readEntry(la, level)!;
  r.pt.writeEntry(la, level, old | bits);
  r.cpu.tlb.flushAll();
  return old;
}

function restore(r: Rig, la: bigint, level: number, value: bigint): void {
  r.pt.writeEntry(la, level, value);
  r.cpu.tlb.flushAll();
}

const UVA = 0x0000_1234_5678_9000n;
const PA = 0x0abc_d000;

// ---- Reserved bits ------------------------------------------------------------------------------

test('PS in a PML4E is reserved: P|RSVD, with the access bits and never PK (sdm-facts §8, spec §7)', () => {
  const r = rig();
  r.pt.map(UVA, PA, { leaf: { us: true, rw: true, pk: 3 } });
  expectPa(r.cpu, UVA + 0x10n, READ, PA + 0x10, 'control');
  setBits(r, UVA, 4, PS);
  expectPF(r.cpu, UVA, READ, EC_P | EC_RSVD, 'CPL0 read');
  r.cpu.cpl = 3;
  expectPF(r.cpu, UVA, WRITE, EC_P | EC_W | EC_U | EC_RSVD, 'CPL3 write');
  expectPF(r.cpu, UVA, FETCH, EC_P | EC_U | EC_RSVD | EC_I, 'CPL3 fetch (NXE=1 so I/D)');
  expectPF(r.cpu, UVA, 3, EC_P | EC_U | EC_RSVD | EC_SS, 'CPL3 shadow-stack read');
  // A key that denies everything does not add PK to a reserved-bit fault.
  r.cpu.cr4 |= CR4_PKE;
  r.cpu.pkru = 0xffffffff;
  expectPF(r.cpu, UVA, READ, EC_P | EC_U | EC_RSVD, 'CPL3 read, key denied');
});

test('bits 51:MAXPHYADDR are reserved at every level (MAXPHYADDR 46); bits 58:52 are ignored', () => {
  const r = rig();
  assert.equal(r.m.model.maxphyaddr, 46);
  r.pt.map(UVA, PA, { leaf: { us: true, rw: true } });
  for (let level = 4; level >= 1; level--) {
    for (const n of [46, 47, 50, 51]) {
      const old = setBits(r, UVA, level, bit(n));
      r.cpu.cpl = 0;
      expectPF(r.cpu, UVA, READ, EC_P | EC_RSVD, `level ${level} bit ${n}`);
      r.cpu.cpl = 3;
      expectPF(r.cpu, UVA, WRITE, EC_P | EC_W | EC_U | EC_RSVD, `level ${level} bit ${n} user write`);
      restore(r, UVA, level, old);
    }
    for (const n of [52, 55, 58]) {
      const old = setBits(r, UVA, level, bit(n));
      r.cpu.cpl = 3;
      expectPa(r.cpu, UVA + 0x7n, WRITE, PA + 7, `level ${level} ignored bit ${n}`);
      restore(r, UVA, level, old);
    }
  }
  // Bit 45 of a leaf is an address bit below MAXPHYADDR: it translates.
  setBits(r, UVA, 1, bit(45));
  r.cpu.cpl = 0;
  expectPa(r.cpu, UVA + 0x123n, READ, 2 ** 45 + PA + 0x123, 'leaf bit 45');
});

test('bits 51:MAXPHYADDR with MAXPHYADDR 39, for 4 KiB, 2 MiB and 1 GiB leaves and tables', () => {
  const r = rig({ maxphyaddr: 39 });
  assert.equal(r.m.model.maxphyaddr, 39);
  const LA2M = 0x0000_0040_0060_0000n;
  const LA1G = 0x0000_0080_4000_0000n;
  r.pt.map(UVA, PA, { leaf: { rw: true } });
  r.pt.map(LA2M, 0x0120_0000, { size: SIZE_2M, leaf: { rw: true } });
  r.pt.map(LA1G, 0x4000_0000, { size: SIZE_1G, leaf: { rw: true } });
  for (const [la, leafLevel] of [[UVA, 1], [LA2M, 2], [LA1G, 3]] as const) {
    for (let level = 4; level >= leafLevel; level--) {
      for (const n of [39, 40, 45, 46, 51]) {
        const old = setBits(r, la, level, bit(n));
        expectPF(r.cpu, la, READ, EC_P | EC_RSVD, `leaf level ${leafLevel}, entry level ${level}, bit ${n}`);
        restore(r, la, level, old);
      }
    }
  }
  // Bit 38 of each leaf is the top address bit: it translates.
  setBits(r, UVA, 1, bit(38));
  expectPa(r.cpu, UVA + 0xabcn, READ, 2 ** 38 + PA + 0xabc, '4 KiB leaf bit 38');
  setBits(r, LA2M, 2, bit(38));
  expectPa(r.cpu, LA2M + 0x1_2345n, READ, 2 ** 38 + 0x0120_0000 + 0x1_2345, '2 MiB leaf bit 38');
  setBits(r, LA1G, 3, bit(38));
  expectPa(r.cpu, LA1G + 0x2345_6789n, READ, 2 ** 38 + 0x4000_0000 + 0x2345_6789, '1 GiB leaf bit 38');
});

test('1 GiB leaf: bits 29:13 reserved, bit 12 (PAT) is not; offsets use bits 29:0', () => {
  const r = rig();
  const LA = 0x0000_0040_4000_0000n; // 257 GiB, PML4 index 0, PDPT index 257 % 512
  const PAGE = 0x0100_4000_0000; // 1 TiB + 1 GiB: physical addresses above 2^32
  r.pt.map(LA, PAGE, { size: SIZE_1G, leaf: { us: true, rw: true } });
  for (const off of [0, 0x5a8, 0x1234_5678, 0x3fff_ffff]) expectPa(r.cpu, LA + BigInt(off), READ, PAGE + off, `offset ${off.toString(16)}`);
  for (let n = 13; n <= 29; n++) {
    const old = setBits(r, LA, 3, bit(n));
    expectPF(r.cpu, LA + 0x1000n, READ, EC_P | EC_RSVD, `PDPTE bit ${n}`);
    r.cpu.cpl = 3;
    expectPF(r.cpu, LA + 0x1000n, WRITE, EC_P | EC_W | EC_U | EC_RSVD, `PDPTE bit ${n}, user write`);
    r.cpu.cpl = 0;
    restore(r, LA, 3, old);
  }
  setBits(r, LA, 3, bit(12));
  expectPa(r.cpu, LA + 0x3456_789an, READ, PAGE + 0x3456_789a, 'PAT bit 12 set');
});

test('2 MiB leaf: bits 20:13 reserved, bit 12 (PAT) is not; offsets use bits 20:0', () => {
  const r = rig();
  const LA = 0x0000_7f00_0020_0000n;
  const PAGE = 0x2_0060_0000; // above 4 GiB, 2 MiB aligned
  r.pt.map(LA, PAGE, { size: SIZE_2M, leaf: { us: true, rw: true } });
  for (const off of [0, 0xfff, 0x1000, 0x1_2345, 0x1f_ffff]) expectPa(r.cpu, LA + BigInt(off), READ, PAGE + off, `offset ${off.toString(16)}`);
  for (let n = 13; n <= 20; n++) {
    const old = setBits(r, LA, 2, bit(n));
    expectPF(r.cpu, LA + 0x3000n, READ, EC_P | EC_RSVD, `PDE bit ${n}`);
    restore(r, LA, 2, old);
  }
  setBits(r, LA, 2, bit(12));
  expectPa(r.cpu, LA + 0x1f_fffen, READ, PAGE + 0x1f_fffe, 'PAT bit 12 set');
  // The next 2 MiB page is a separate mapping: not present.
  expectPF(r.cpu, LA + 0x20_0000n, READ, 0, 'next 2 MiB');
});

test('PS in a PDPTE without 1 GiB page support is reserved (sdm-facts §8)', () => {
  const r = rig({ pdpe1gb: false });
  const LA = 0x0000_0040_4000_0000n;
  const LA2M = 0x0000_0000_0040_0000n;
  r.pt.map(LA, 0x4000_0000, { size: SIZE_1G, leaf: { us: true, rw: true } });
  r.pt.map(LA2M, 0x0060_0000, { size: SIZE_2M, leaf: { us: true, rw: true } });
  expectPF(r.cpu, LA + 0x10n, READ, EC_P | EC_RSVD, 'CPL0 read');
  r.cpu.cpl = 3;
  expectPF(r.cpu, LA + 0x10n, WRITE, EC_P | EC_W | EC_U | EC_RSVD, 'CPL3 write');
  expectPa(r.cpu, LA2M + 0x10n, READ, 0x0060_0010, '2 MiB pages still work');
});

test('XD with NXE = 0 is reserved in every present entry, including non-leaf ones (sdm-facts §8)', () => {
  const r = rig();
  r.pt.map(UVA, PA, { leaf: { us: true, rw: true } });
  assert.ok(r.cpu.wrmsr(MSR_EFER, BigInt(r.cpu.efer & ~EFER_NXE)));
  for (let level = 4; level >= 1; level--) {
    const old = setBits(r, UVA, level, bit(63));
    r.cpu.cpl = 0;
    expectPF(r.cpu, UVA, READ, EC_P | EC_RSVD, `level ${level}`);
    expectPF(r.cpu, UVA, FETCH, EC_P | EC_RSVD, `level ${level} fetch, NXE=0 SMEP=0: no I/D`);
    r.cpu.cr4 |= CR4_SMEP;
    expectPF(r.cpu, UVA, FETCH, EC_P | EC_RSVD | EC_I, `level ${level} fetch with SMEP: I/D`);
    r.cpu.cr4 &= ~CR4_SMEP;
    restore(r, UVA, level, old);
  }
  expectPa(r.cpu, UVA, FETCH, PA, 'no XD anywhere');
});

test('reserved bits are not checked in non-present entries: P=0 faults (spec §7 RSVD row)', () => {
  const r = rig({ maxphyaddr: 39 });
  r.pt.map(UVA, PA, { leaf: { us: true, rw: true } });
  assert.ok(r.cpu.wrmsr(MSR_EFER, BigInt(r.cpu.efer & ~EFER_NXE)));
  // P = 0, but PS, bits 20:13, 51:39 and XD (reserved with NXE = 0) all set.
  const junk = bit(63) | bit(51) | bit(45) | bit(39) | 0x1fe000n | PS | 0x6n;
  for (let level = 4; level >= 1; level--) {
    const old = r.pt.readEntry(UVA, level)!;
    restore(r, UVA, level, junk);
    r.cpu.cpl = 0;
    expectPF(r.cpu, UVA, READ, 0, `level ${level} CPL0 read`);
    r.cpu.cpl = 3;
    expectPF(r.cpu, UVA, WRITE, EC_W | EC_U, `level ${level} CPL3 write`);
    expectPF(r.cpu, UVA, 4, EC_W | EC_U | EC_SS, `level ${level} CPL3 shadow-stack write`);
    restore(r, UVA, level, old);
  }
  // The walk ends at the first problem: a reserved bit above a non-present PTE is P|RSVD ...
  const pte = r.pt.readEntry(UVA, 1)!;
  r.pt.writeEntry(UVA, 1, 0n);
  const pml4e = setBits(r, UVA, 4, bit(45));
  r.cpu.cpl = 0;
  expectPF(r.cpu, UVA, READ, EC_P | EC_RSVD, 'reserved PML4E over a missing PTE');
  // ... and a missing entry above a reserved one is P=0.
  restore(r, UVA, 4, pml4e);
  r.pt.writeEntry(UVA, 1, pte | bit(45));
  const pde = r.pt.readEntry(UVA, 2)!;
  restore(r, UVA, 2, pde & ~1n);
  expectPF(r.cpu, UVA, READ, 0, 'missing PDE over a reserved PTE');
});

// ---- Canonical addresses -----------------------------------------------------------------------

/** Leaves a #PF at `known` in CR2, then checks that each address gives #GP(0) for every kind and CPL with CR2 unchanged. */
function checkNonCanonical(r: Rig, known: bigint, addrs: bigint[]): void {
  r.cpu.cpl = 0;
  expectPF(r.cpu, known, READ, 0, 'set-up fault');
  for (const addr of addrs) {
    for (const cpl of [0, 3]) {
      for (const kind of KINDS) {
        r.cpu.cpl = cpl;
        const res = tr(r.cpu, addr, kind);
        const what = `0x${addr.toString(16)} CPL${cpl} kind ${kind}`;
        assert.equal(res, -1, `${what}: translated`);
        assert.equal(r.cpu.faultVector, GP, `${what}: vector ${r.cpu.faultVector}`);
        assert.equal(r.cpu.faultErrorCode, 0, `${what}: error code`);
        assert.equal(r.cpu.cr2Hi, hi32(known), `${what}: CR2 changed`);
        assert.equal(r.cpu.cr2Lo, lo32(known), `${what}: CR2 changed`);
      }
    }
  }
}

test('4-level: non-canonical addresses (bits 63:48 != bit 47) give #GP(0) and leave CR2 alone', () => {
  const r = rig();
  const KHIGH = 0xffff_8000_0000_0000n;
  r.pt.map(0x0000_7fff_ffff_f000n, PA, { leaf: { us: true, rw: true } });
  r.pt.map(KHIGH, PA + 0x1000, { leaf: { rw: true } });
  checkNonCanonical(r, 0x0000_0000_dead_b000n, [
    0x0000_8000_0000_0000n, // bit 47 set, 63:48 clear
    0x0000_ffff_ffff_f000n,
    0x0001_0000_0000_0000n, // bit 48 set
    0x8000_0000_0000_0000n, // bit 63 only
    0xffff_7fff_ffff_f000n, // 63:48 set, bit 47 clear
    0x7fff_ffff_ffff_f000n,
    0xfffe_8000_0000_0000n,
  ]);
  // The canonical neighbours translate.
  r.cpu.cpl = 3;
  expectPa(r.cpu, 0x0000_7fff_ffff_fff8n, READ, PA + 0xff8, 'top of the lower half');
  r.cpu.cpl = 0;
  expectPa(r.cpu, KHIGH + 8n, WRITE, PA + 0x1008, 'bottom of the upper half');
  expectPF(r.cpu, 0xffff_ffff_ffff_f000n, READ, 0, 'unmapped canonical upper-half address');
});

test('5-level: non-canonical addresses (bits 63:57 != bit 56) give #GP(0) and leave CR2 alone', () => {
  const r = rig({ la57: true });
  assert.equal(r.cpu.pagingLevels, 5);
  checkNonCanonical(r, 0x00ff_0000_0000_0000n, [
    0x0100_0000_0000_0000n, // bit 56 set, 63:57 clear
    0x0200_0000_0000_0000n, // bit 57 set
    0x8000_0000_0000_0000n,
    0xfe00_0000_0000_0000n, // 63:57 set, bit 56 clear
    0xfeff_ffff_ffff_f000n,
    0x7fff_ffff_ffff_f000n,
  ]);
  // 4-level non-canonical addresses are canonical with LA57: #PF (not mapped), not #GP.
  r.cpu.cpl = 0;
  expectPF(r.cpu, 0x0000_8000_0000_0000n, READ, 0, 'bit 47 set');
  expectPF(r.cpu, 0xffff_7fff_ffff_f000n, READ, 0, 'bit 47 clear in the upper half');
  expectPF(r.cpu, 0x00ff_ffff_ffff_f000n, READ, 0, 'top of the lower half');
  expectPF(r.cpu, 0xff00_0000_0000_0000n, READ, 0, 'bottom of the upper half');
});

// ---- 5-level walks -------------------------------------------------------------------------------

test('5-level paging translates high user and kernel addresses; PS and XD (NXE=0) in a PML5E are reserved', () => {
  const r = rig({ la57: true });
  const U1 = 0x00ab_cdef_1234_5000n; // above 2^47
  const U2 = 0x00ac_cdef_1234_5000n; // differs only in bit 48 (PML5 index)
  const U3 = 0x0000_8000_0000_0000n; // 2^47
  const K = 0xff11_2233_4455_6000n;
  r.pt.map(U1, PA, { leaf: { us: true, rw: true } });
  r.pt.map(U2, PA + 0x1000, { leaf: { us: true, rw: true } });
  r.pt.map(U3, PA + 0x2000, { leaf: { us: true, rw: false } });
  r.pt.map(K, PA + 0x3000, { leaf: { rw: true } });
  r.cpu.cpl = 3;
  expectPa(r.cpu, U1 + 0x123n, READ, PA + 0x123, 'U1');
  expectPa(r.cpu, U1 + 0x123n, WRITE, PA + 0x123, 'U1 write');
  expectPa(r.cpu, U2 + 0x456n, READ, PA + 0x1456, 'U2 (another PML5 entry)');
  expectPa(r.cpu, U3, READ, PA + 0x2000, '2^47');
  expectPF(r.cpu, U3, WRITE, EC_P | EC_W | EC_U, '2^47 is read-only');
  expectPF(r.cpu, K, READ, EC_P | EC_U, 'kernel page from user mode');
  r.cpu.cpl = 0;
  expectPa(r.cpu, K + 0xff8n, WRITE, PA + 0x3ff8, 'kernel page');
  assert.notEqual(r.pt.readEntry(U1, 5), null);
  assert.equal(r.pt.readEntry(U1, 5)! & 0x20n, 0x20n, 'the walk set A in the PML5E');
  // PS in the PML5E, or in the PML4E, is reserved.
  for (const level of [5, 4]) {
    const old = setBits(r, U1, level, PS);
    expectPF(r.cpu, U1, READ, EC_P | EC_RSVD, `PS at level ${level}`);
    restore(r, U1, level, old);
  }
  // XD in the PML5E with NXE = 0 is reserved; with NXE = 1 it forbids fetches.
  const old5 = setBits(r, U1, 5, bit(63));
  expectPF(r.cpu, U1, FETCH, EC_P | EC_I, 'XD in PML5E, NXE=1');
  expectPa(r.cpu, U1, READ, PA, 'XD does not stop reads');
  assert.ok(r.cpu.wrmsr(MSR_EFER, BigInt(r.cpu.efer & ~EFER_NXE)));
  r.cpu.tlb.flushAll();
  expectPF(r.cpu, U1, READ, EC_P | EC_RSVD, 'XD in PML5E, NXE=0');
  restore(r, U1, 5, old5);
  expectPa(r.cpu, U1, READ, PA, 'restored');
  // Bits 51:46 in the PML5E are reserved.
  setBits(r, U1, 5, bit(46));
  expectPF(r.cpu, U1, READ, EC_P | EC_RSVD, 'PML5E bit 46');
});

// ---- Frames beyond installed memory ---------------------------------------------------------------

test('a walk through a table frame beyond installed memory reads all ones: a reserved-bit fault, no crash', () => {
  const r = rig({}, 1 << 24);
  assert.equal(r.m.mem.frameCount, 4096);
  const LA = 0x0000_0000_0040_0000n;
  r.pt.map(LA, 0x0010_0000, { leaf: { us: true, rw: true } });
  expectPa(r.cpu, LA + 4n, READ, 0x0010_0004, 'control');
  const BEYOND = 0x0010_0000; // frame 1 Mi: 4 GiB, far past the 16 MiB installed, below 2^46
  const tableEntry = (BigInt(BEYOND) << 12n) | 0x7n; // P, R/W, U/S
  // Whatever level points at the missing frame, the next entry read is all ones: present, with
  // bits 51:46 set (and PS=1 at the PDPTE/PDE level, with bits 29:13 / 20:13 set).
  for (let level = 4; level >= 2; level--) {
    const old = r.pt.readEntry(LA, level)!;
    restore(r, LA, level, tableEntry);
    r.cpu.cpl = 0;
    assert.doesNotThrow(() => tr(r.cpu, LA, READ));
    expectPF(r.cpu, LA, READ, EC_P | EC_RSVD, `level ${level} entry points past RAM`);
    r.cpu.cpl = 3;
    expectPF(r.cpu, LA, WRITE, EC_P | EC_W | EC_U | EC_RSVD, `level ${level}, user write`);
    restore(r, LA, level, old);
  }
  // A leaf whose data frame is beyond RAM translates; the data reads as all ones.
  r.pt.writeEntry(LA, 1, (BigInt(BEYOND) << 12n) | 0x7n);
  r.cpu.tlb.flushAll();
  r.cpu.cpl = 3;
  expectPa(r.cpu, LA + 0x10n, READ, BEYOND * 4096 + 0x10, 'leaf past RAM');
  assert.equal(r.cpu.readU64(LA + 0x10n), 0xffff_ffff_ffff_ffffn);
  assert.doesNotThrow(() => r.cpu.writeU64(LA + 0x10n, 1n));
});
