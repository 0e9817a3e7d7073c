/**
 * Property-based tests of TLB coherence (SDM Vol. 3A §4.10.4).
 *
 * 1. After the invalidation the SDM requires, no TLB entry grants more than a fresh walk of the
 *    page tables would. A change that removes rights or moves a page is followed by INVLPG, as
 *    §4.10.4.2 requires; a change that only adds rights (R/W 0 -> 1, XD 1 -> 0, P 0 -> 1) is
 *    not, as §4.10.4.3 allows. Checked after every command.
 * 2. While software does not change the tables, the TLB is invisible: a CPU with a 4-entry TLB
 *    and one with the default TLB give the same results and leave the same A/D bits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  accessFault, CR4_PCIDE, CR4_PKE, CR4_SMAP, CR4_SMEP, Machine, PageTableBuilder, entryValue, PTE_P, R_DIRTY, R_GLOBAL,
  type AccessRegs, type Cpu,
} from '../../src/index.js';

const PAGES = 6;
const va = (i: number): bigint => 0x10000000n + BigInt(i) * 0x1000n + (i >= 3 ? 0x200000n : 0n); // two page tables
const LEAF_FLAGS = fc.record({ rw: fc.boolean(), us: fc.boolean(), xd: fc.boolean(), g: fc.boolean(), pk: fc.integer({ min: 0, max: 3 }), d: fc.boolean() });
type Leaf = { rw: boolean; us: boolean; xd: boolean; g: boolean; pk: number; d: boolean };

type Cmd =
  | { op: 'access'; page: number; kind: number; cpl: 0 | 3 }
  | { op: 'restrict'; page: number; frame: number; leaf: Leaf } // any change, then INVLPG
  | { op: 'unmap'; page: number } // clear, then INVLPG
  | { op: 'relax'; page: number; what: 'rw' | 'xd' | 'present' } // more rights, no invalidation
  | { op: 'cr3' }
  | { op: 'pkru'; value: number };

const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('access' as const), page: fc.nat(PAGES - 1), kind: fc.nat(7), cpl: fc.constantFrom(0 as const, 3 as const) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('restrict' as const), page: fc.nat(PAGES - 1), frame: fc.integer({ min: 100, max: 107 }), leaf: LEAF_FLAGS }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('unmap' as const), page: fc.nat(PAGES - 1) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('relax' as const), page: fc.nat(PAGES - 1), what: fc.constantFrom('rw' as const, 'xd' as const, 'present' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('cr3' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('pkru' as const), value: fc.nat(0xff) }) },
);

function world(tlbEntries = 1024) {
  const ways = Math.min(4, tlbEntries);
  const m = new Machine({ cpu: { tlb: { entries4k: tlbEntries, ways4k: ways, entries2m: 4, ways2m: 4, entries1g: 4, ways1g: 4 } } });
  const pt = new PageTableBuilder(m.mem);
  for (let i = 0; i < PAGES; i++) pt.map(va(i), (100 + i) * 4096, { leaf: { rw: true, us: true } });
  const cpu = m.cpus[0];
  cpu.setCr3(pt.cr3());
  cpu.movToCr4(cpu.cr4 | CR4_SMEP | CR4_SMAP | CR4_PKE);
  return { m, pt, cpu };
}

function run(pt: PageTableBuilder, cpu: Cpu, c: Cmd): number {
  const addr = 'page' in c ? va(c.page) : 0n;
  const hi = Number(addr >> 32n);
  const lo = Number(addr & 0xffffffffn);
  switch (c.op) {
    case 'access':
      cpu.setCpl(c.cpl);
      return cpu.translate(hi, lo, c.kind) >= 0 ? 0 : cpu.faultErrorCode | 0x10000;
    case 'restrict': {
      const v = entryValue(c.frame, { ...c.leaf, a: true });
      pt.writeEntry(addr, 1, (BigInt(v.hi) << 32n) | BigInt(v.lo));
      cpu.setCpl(0);
      cpu.invlpg(hi, lo);
      return 0;
    }
    case 'unmap':
      pt.writeEntry(addr, 1, 0n);
      cpu.setCpl(0);
      cpu.invlpg(hi, lo);
      return 0;
    case 'relax': {
      const e = pt.readEntry(addr, 1)!;
      const bit = c.what === 'rw' ? 0x2n : c.what === 'xd' ? 1n << 63n : BigInt(PTE_P);
      // Setting P is a relaxation only if the entry already points somewhere sensible.
      if (c.what === 'present' && (e & ~0xfffn) === 0n) return 0;
      pt.writeEntry(addr, 1, c.what === 'xd' ? e & ~bit : e | bit);
      return 0;
    }
    case 'cr3':
      cpu.setCpl(0);
      cpu.setCr3(pt.cr3());
      return 0;
    case 'pkru':
      cpu.pkru = c.value;
      return 0;
  }
}

/** Every live entry of the current PCID grants no access a fresh walk would refuse. */
function checkNoEntryGrantsMore(cpu: Cpu): void {
  for (const e of cpu.tlb.entries()) {
    const addr = (BigInt(e.laHi) << 32n) | BigInt(e.laLo);
    const fresh = cpu.probe(addr);
    assert.ok(fresh.found, `TLB entry for ${addr.toString(16)} but the page tables map nothing there`);
    assert.equal(e.pfn, fresh.pfn, `TLB entry for ${addr.toString(16)} points at a stale frame`);
    assert.equal(e.pkey, fresh.pkey, 'stale protection key');
    if (e.rights & R_DIRTY) assert.ok(fresh.rights & R_DIRTY, 'the TLB says dirty, the PTE does not');
    for (const cpl of [0, 3]) {
      const regs: AccessRegs = { cpl, cr0: cpu.cr0, cr4: cpu.cr4, efer: cpu.efer, rflags: cpu.rflags, pkru: cpu.pkru, pkrs: 0 };
      for (let kind = 0; kind < 8; kind++) {
        const byEntry = accessFault(regs, kind, e.rights & ~R_GLOBAL, e.pkey) === 0;
        const byWalk = accessFault(regs, kind, fresh.rights & ~R_GLOBAL, fresh.pkey) === 0;
        assert.ok(!byEntry || byWalk, `entry for ${addr.toString(16)} allows access kind ${kind} at CPL ${cpl}; the page tables do not`);
      }
    }
  }
}

test('after the required invalidation, no TLB entry grants more than a fresh walk', () => {
  fc.assert(
    fc.property(fc.array(cmd, { minLength: 1, maxLength: 60 }), (cmds) => {
      const { pt, cpu } = world();
      for (const c of cmds) {
        run(pt, cpu, c);
        checkNoEntryGrantsMore(cpu);
      }
    }),
    { numRuns: 300, seed: 20261122 },
  );
});

test('skipping the invalidation is caught: the property is not vacuous', () => {
  // The same check must fail when a rights-removing change is not followed by INVLPG.
  const { pt, cpu } = world();
  cpu.setCpl(3);
  assert.ok(cpu.translateAddress(va(0), 'write') !== null);
  pt.writeEntry(va(0), 1, pt.readEntry(va(0), 1)! & ~0x2n); // R/W cleared, no INVLPG
  assert.throws(() => checkNoEntryGrantsMore(cpu), /allows access kind 1/);
});

test('with unchanging page tables, TLB size never changes results or A/D bits', () => {
  const access = fc.record({ page: fc.nat(PAGES - 1), kind: fc.nat(7), cpl: fc.constantFrom(0 as const, 3 as const) });
  fc.assert(
    fc.property(fc.array(LEAF_FLAGS, { minLength: PAGES, maxLength: PAGES }), fc.array(access, { minLength: 1, maxLength: 80 }), (leaves, accesses) => {
      const small = world(4);
      const big = world(1024);
      for (const w of [small, big]) {
        leaves.forEach((leaf, i) => run(w.pt, w.cpu, { op: 'restrict', page: i, frame: 100 + i, leaf }));
      }
      for (const a of accesses) {
        const c: Cmd = { op: 'access', ...a };
        assert.equal(run(small.pt, small.cpu, c), run(big.pt, big.cpu, c));
      }
      for (let i = 0; i < PAGES; i++) assert.equal(small.pt.readEntry(va(i), 1), big.pt.readEntry(va(i), 1));
    }),
    { numRuns: 200, seed: 7 },
  );
});

test('the host-side fast path of TLB hits changes nothing: the same results, hits, misses, entries and A/D bits with it on and off', () => {
  fc.assert(
    fc.property(fc.array(cmd, { minLength: 1, maxLength: 80 }), (cmds) => {
      const on = world();
      const off = world();
      off.cpu.fastPath = false;
      // Each command twice in a row, so that accesses repeat and the fast path has hits to serve.
      for (const c of cmds.flatMap((x) => [x, x])) {
        assert.equal(run(on.pt, on.cpu, c), run(off.pt, off.cpu, c), JSON.stringify(c));
        assert.equal(on.cpu.tlb.hits, off.cpu.tlb.hits);
        assert.equal(on.cpu.tlb.misses, off.cpu.tlb.misses);
      }
      assert.deepEqual(on.cpu.tlb.entries(), off.cpu.tlb.entries());
      for (let i = 0; i < PAGES; i++) assert.equal(on.pt.readEntry(va(i), 1), off.pt.readEntry(va(i), 1));
    }),
    { numRuns: 300, seed: 20261203 },
  );
});

test('the fast path serves repeated hits: with it on, a repeated access skips the set search (the comparison above is not vacuous)', () => {
  const { cpu } = world();
  cpu.setCpl(3);
  const hi = Number(va(0) >> 32n);
  const lo = Number(va(0) & 0xffffffffn);
  const first = cpu.translate(hi, lo, 0); // a miss: the walk fills the TLB
  assert.equal(cpu.translate(hi, lo, 0), first); // a hit found by the set search, then cached
  const searched = (): number => {
    let n = 0;
    const lookup = cpu.tlb.lookup.bind(cpu.tlb);
    cpu.tlb.lookup = (h, l, p) => (n++, lookup(h, l, p));
    assert.equal(cpu.translate(hi, lo, 0), first);
    return n;
  };
  assert.equal(searched(), 0);
  cpu.pkru = 4; // the access check's registers changed: the next probe searches the TLB again
  assert.equal(searched(), 1);
});

test('the fast path forgets a page at every invalidation: CR3 write, INVLPG, each INVPCID type, an eviction, a dirty-bit assist', () => {
  // A supervisor page, accessed at CPL 0 throughout: no register the access check reads
  // changes, so only the invalidation itself can make the fast path forget the page.
  const kernelWorld = (fastPath: boolean) => {
    const m = new Machine({});
    const pt = new PageTableBuilder(m.mem);
    pt.map(va(1), 101 * 4096, { leaf: { rw: true, us: false } });
    const cpu = m.cpus[0];
    cpu.setCr3(pt.cr3());
    cpu.movToCr4(cpu.cr4 | CR4_PCIDE); // INVPCID needs it; the current PCID is 0
    cpu.setCpl(0);
    cpu.fastPath = fastPath;
    return { pt, cpu };
  };
  const pageHi = Number(va(1) >> 32n);
  const pageLo = Number(va(1) & 0xffffffffn);
  const invalidations: Record<string, (cpu: Cpu) => void> = {
    'MOV to CR3 without NOFLUSH': (cpu) => cpu.movToCr3(cpu.cr3Hi, cpu.cr3Lo),
    INVLPG: (cpu) => cpu.invlpg(pageHi, pageLo),
    'INVPCID type 0': (cpu) => cpu.invpcid(0, 0, pageHi, pageLo),
    'INVPCID type 1': (cpu) => cpu.invpcid(1, 0),
    'INVPCID type 2': (cpu) => cpu.invpcid(2, 0),
    'INVPCID type 3': (cpu) => cpu.invpcid(3, 0),
    'an eviction of every slot': (cpu) => {
      for (const e of cpu.tlb.entries()) cpu.evictTlbEntry(e.slot);
    },
  };
  for (const [name, invalidate] of Object.entries(invalidations)) {
    const walkedAgain: boolean[] = [];
    const hits: number[] = [];
    for (const fastPath of [true, false]) {
      const { cpu } = kernelWorld(fastPath);
      const pa = cpu.translate(pageHi, pageLo, 0);
      assert.ok(pa >= 0, `${name}: the page is readable at CPL 0`);
      for (let i = 0; i < 2; i++) assert.equal(cpu.translate(pageHi, pageLo, 0), pa);
      invalidate(cpu);
      const misses = cpu.tlb.misses;
      assert.equal(cpu.translate(pageHi, pageLo, 0), pa);
      walkedAgain.push(cpu.tlb.misses > misses);
      hits.push(cpu.tlb.hits);
    }
    // The reference (fast path off) walks again after the invalidation: so must the fast one.
    assert.deepEqual(walkedAgain, [true, true], name);
    assert.equal(hits[0], hits[1], name);
  }
  // A write to a clean page after cached reads: the write must still take the dirty-bit assist.
  const ptes: bigint[] = [];
  for (const fastPath of [true, false]) {
    const { pt, cpu } = kernelWorld(fastPath);
    for (let i = 0; i < 3; i++) cpu.translate(pageHi, pageLo, 0);
    assert.ok(cpu.translate(pageHi, pageLo, 1) >= 0);
    ptes.push(pt.readEntry(va(1), 1)!);
  }
  assert.equal(ptes[0], ptes[1]);
  assert.ok((ptes[1] & 0x40n) !== 0n, 'the write set D');
});
