/**
 * The TLB rules of SDM Vol. 3A §4.10: PCID tagging, MOV to CR3 with and without NOFLUSH,
 * global entries, INVLPG, the four INVPCID types, the CR4 writes that flush, invalidation by
 * #PF, stale rights surviving until invalidation, both dirty_on_readonly modes, and LRU
 * replacement. Each test observes the TLB architecturally: it changes a PTE in memory without
 * invalidating, so a translation that still gives the old frame came from the TLB.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Access, CR0_WP, CR4_CET, CR4_LA57, CR4_PCIDE, CR4_PGE, CR4_PKE, CR4_SMEP, PF_P, PF_U, PF_W, X86_TRAP_GP, X86_TRAP_UD,
  PTE_D, PTE_RW, Machine, PageTableBuilder, makeCr3,
} from '../../src/index.js';
import { pa, PCID_PGE, rig, tr } from './helpers.js';

const VA = 0x400000n;
const VB = 0x401000n;
const KVA = 0xffffffff81000000n; // a kernel-half address

/** Re-points the leaf of `va` at frame `pfn` (a plain store, no invalidation). */
function repoint(pt: PageTableBuilder, va: bigint, pfn: number, flags = 0x27n): void {
  pt.writeEntry(va, 1, (BigInt(pfn) << 12n) | flags);
}

test('MOV to CR3 without PCIDs drops every non-global entry', () => {
  const { pt, cpu } = rig();
  pt.map(VA, pa(100), { leaf: { rw: true } });
  assert.equal(tr(cpu, VA, Access.Read), pa(100));
  repoint(pt, VA, 101);
  assert.equal(tr(cpu, VA, Access.Read), pa(100), 'the stale entry is still used');
  assert.ok(cpu.setCr3(pt.cr3()));
  assert.equal(tr(cpu, VA, Access.Read), pa(101), 'reloading CR3 flushed it');
});

test('PCIDs keep address spaces apart, and NOFLUSH keeps a PCID\'s entries', () => {
  const { m, pt: a, cpu } = rig({}, CR4_PCIDE);
  const b = new PageTableBuilder(m.mem, { allocator: a.allocator });
  a.map(VA, pa(200), { leaf: { rw: true } });
  b.map(VA, pa(300), { leaf: { rw: true } });
  assert.ok(cpu.setCr3(a.cr3(1)));
  assert.equal(tr(cpu, VA, Access.Read), pa(200));
  assert.ok(cpu.setCr3(b.cr3(2)));
  assert.equal(tr(cpu, VA, Access.Read), pa(300), 'PCID 2 does not see PCID 1\'s entry');
  // Change A's PTE behind the TLB, then come back to PCID 1 with NOFLUSH: the old entry is kept.
  repoint(a, VA, 201);
  assert.ok(cpu.setCr3(a.cr3(1, true)));
  assert.equal(tr(cpu, VA, Access.Read), pa(200), 'NOFLUSH kept PCID 1\'s entry');
  assert.equal(cpu.cr3 >> 63n, 0n, 'bit 63 is not stored in CR3');
  // Without NOFLUSH the new PCID's entries go.
  assert.ok(cpu.setCr3(a.cr3(1)));
  assert.equal(tr(cpu, VA, Access.Read), pa(201));
  // ... but only that PCID's: PCID 2 still has its entry.
  repoint(b, VA, 301);
  assert.ok(cpu.setCr3(b.cr3(2, true)));
  assert.equal(tr(cpu, VA, Access.Read), pa(300), 'flushing PCID 1 left PCID 2 alone');
});

test('CR3 bit 63 is reserved when PCIDs are off, and so are bits at or above MAXPHYADDR', () => {
  const { pt, cpu } = rig({ cpu: { maxphyaddr: 46 } });
  assert.equal(cpu.setCr3(pt.cr3(0, true)), false);
  assert.equal(cpu.faultVector, X86_TRAP_GP);
  cpu.clearFault();
  assert.equal(cpu.setCr3(BigInt(pt.rootPa) | (1n << 46n)), false, 'bit 46 with MAXPHYADDR 46');
  assert.equal(cpu.faultVector, X86_TRAP_GP);
  assert.equal(cpu.setCr3(BigInt(pt.rootPa) | (1n << 45n)), true, 'bit 45 is an address bit');
});

test('global entries survive MOV to CR3 when CR4.PGE=1, and are ordinary when PGE=0', () => {
  for (const pge of [true, false]) {
    const { pt, cpu } = rig({}, pge ? PCID_PGE : CR4_PCIDE);
    pt.map(KVA, pa(400), { leaf: { rw: true, g: true } });
    pt.map(VA, pa(500), { leaf: { rw: true, us: true } });
    assert.ok(cpu.setCr3(pt.cr3(3)));
    assert.equal(tr(cpu, KVA, Access.Read), pa(400));
    assert.equal(tr(cpu, VA, Access.Read), pa(500));
    repoint(pt, KVA, 401, 0x123n);
    repoint(pt, VA, 501);
    assert.ok(cpu.setCr3(pt.cr3(3)));
    assert.equal(tr(cpu, KVA, Access.Read), pge ? pa(400) : pa(401), `global entry with PGE=${pge}`);
    assert.equal(tr(cpu, VA, Access.Read), pa(501), 'the non-global entry was flushed');
    // A global entry matches under every PCID.
    if (pge) {
      assert.ok(cpu.setCr3(pt.cr3(4)));
      assert.equal(tr(cpu, KVA, Access.Read), pa(400), 'global entry used under another PCID');
    }
  }
});

test('toggling CR4.PGE drops global entries; PCIDE going 1 -> 0 drops everything', () => {
  const { pt, cpu } = rig({}, PCID_PGE);
  pt.map(KVA, pa(400), { leaf: { rw: true, g: true } });
  assert.ok(cpu.setCr3(pt.cr3(0)));
  assert.equal(tr(cpu, KVA, Access.Read), pa(400));
  repoint(pt, KVA, 401, 0x123n);
  assert.ok(cpu.movToCr4(cpu.cr4 & ~CR4_PGE));
  assert.ok(cpu.movToCr4(cpu.cr4 | CR4_PGE));
  assert.equal(tr(cpu, KVA, Access.Read), pa(401), 'PGE toggle flushed the global entry');
  repoint(pt, KVA, 402, 0x123n);
  assert.ok(cpu.movToCr4(cpu.cr4 & ~CR4_PCIDE));
  assert.equal(tr(cpu, KVA, Access.Read), pa(402), 'PCIDE 1 -> 0 flushed globals too');
});

test('CR4.SMEP going 0 -> 1 drops the current PCID\'s entries; setting PKE does not flush', () => {
  const { pt, cpu } = rig({}, CR4_PCIDE);
  pt.map(VA, pa(600), { leaf: { rw: true, us: true } });
  assert.ok(cpu.setCr3(pt.cr3(5)));
  assert.equal(tr(cpu, VA, Access.Read), pa(600));
  repoint(pt, VA, 601);
  assert.ok(cpu.movToCr4(cpu.cr4 | CR4_PKE));
  assert.equal(tr(cpu, VA, Access.Read), pa(600), 'PKE change kept the entry');
  assert.ok(cpu.movToCr4(cpu.cr4 | CR4_SMEP));
  assert.equal(tr(cpu, VA, Access.Read), pa(601), 'SMEP 0 -> 1 flushed it');
});

test('MOV to CR4 and CR0 refuse what the SDM refuses, with #GP', () => {
  const { pt, cpu } = rig();
  // PCIDE may be set only while CR3[11:0] = 0.
  assert.ok(cpu.setCr3(pt.cr3() | 0x8n)); // PWT
  assert.equal(cpu.movToCr4(cpu.cr4 | CR4_PCIDE), false);
  assert.equal(cpu.faultVector, X86_TRAP_GP);
  // CET needs CR0.WP; WP cannot be cleared under CET.
  assert.ok(cpu.movToCr0(cpu.cr0 & ~CR0_WP));
  assert.equal(cpu.movToCr4(cpu.cr4 | CR4_CET), false);
  assert.ok(cpu.movToCr0(cpu.cr0 | CR0_WP));
  assert.ok(cpu.movToCr4(cpu.cr4 | CR4_CET));
  assert.equal(cpu.movToCr0(cpu.cr0 & ~CR0_WP), false);
  // LA57 cannot change in IA-32e mode; a feature the CPU lacks cannot be enabled.
  assert.equal(cpu.movToCr4(cpu.cr4 | CR4_LA57), false);
  const noPku = rig({ cpu: { pku: false } }).cpu;
  assert.equal(noPku.movToCr4(noPku.cr4 | CR4_PKE), false);
  // Only CPL 0 may write control registers.
  cpu.setCpl(3);
  assert.equal(cpu.setCr3(pt.cr3()), false);
  assert.equal(cpu.movToCr4(cpu.cr4), false);
});

test('INVLPG drops the current PCID\'s entry and global entries for the page, whatever their size', () => {
  const { pt, cpu } = rig({}, PCID_PGE);
  pt.map(VA, pa(700), { leaf: { rw: true } });
  pt.map(VB, pa(710), { leaf: { rw: true } });
  pt.map(0x40000000n, pa(0x40000), { size: 2 * 1024 * 1024, leaf: { rw: true, g: true } });
  assert.ok(cpu.setCr3(pt.cr3(1)));
  assert.equal(tr(cpu, VA, Access.Read), pa(700));
  assert.equal(tr(cpu, VB, Access.Read), pa(710));
  assert.equal(tr(cpu, 0x40012345n, Access.Read), pa(0x40000) + 0x12345);
  repoint(pt, VA, 701);
  repoint(pt, VB, 711);
  pt.writeEntry(0x40000000n, 2, (BigInt(pa(0x40200)) | 0x1a3n));
  assert.ok(cpu.invlpg(0, 0x400000));
  assert.ok(cpu.invlpg(0, 0x401fff00 >>> 0)); // anywhere inside the 2 MiB page
  assert.equal(tr(cpu, VA, Access.Read), pa(701), 'INVLPG dropped VA');
  assert.equal(tr(cpu, VB, Access.Read), pa(710), 'VB untouched');
  assert.equal(tr(cpu, 0x40000000n, Access.Read), pa(0x40200), 'the global 2 MiB entry went too');
  // A non-canonical INVLPG is a no-op; at CPL 3 it is #GP.
  assert.ok(cpu.invlpg(0x00008000, 0));
  cpu.setCpl(3);
  assert.equal(cpu.invlpg(0, 0x400000), false);
  assert.equal(cpu.faultVector, X86_TRAP_GP);
});

/** Fills entries for VA and VB under PCIDs 1 and 2 plus a global KVA, then repoints every leaf. */
function invpcidRig() {
  const r = rig({}, PCID_PGE);
  const { m, pt: a, cpu } = r;
  const b = new PageTableBuilder(m.mem, { allocator: a.allocator });
  for (const [t, base] of [[a, 800], [b, 900]] as const) {
    t.map(VA, pa(base), { leaf: { rw: true } });
    t.map(VB, pa(base + 10), { leaf: { rw: true } });
    t.map(KVA, pa(1000), { leaf: { rw: true, g: true } });
  }
  cpu.setCr3(b.cr3(2));
  tr(cpu, VA, Access.Read);
  tr(cpu, VB, Access.Read);
  cpu.setCr3(a.cr3(1));
  tr(cpu, VA, Access.Read);
  tr(cpu, VB, Access.Read);
  tr(cpu, KVA, Access.Read);
  for (const [t, base] of [[a, 800], [b, 900]] as const) {
    repoint(t, VA, base + 1);
    repoint(t, VB, base + 11);
    repoint(t, KVA, 1001, 0x123n);
  }
  /** What PCID `p` (1 = a, 2 = b) translates VA, VB, KVA to now, as frame numbers. */
  const look = (p: 1 | 2): number[] => {
    cpu.setCr3((p === 1 ? a : b).cr3(p, true));
    return [VA, VB, KVA].map((v) => tr(cpu, v, Access.Read) / 4096);
  };
  return { ...r, a, b, look };
}

test('INVPCID type 0 drops one address of one PCID, never a global entry', () => {
  const { cpu, look } = invpcidRig();
  assert.ok(cpu.invpcid(0, 1, 0, 0x400000));
  assert.ok(cpu.invpcid(0, 1, 0xffffffff, 0x81000000 >>> 0)); // the global KVA: not dropped by type 0
  assert.deepEqual(look(1), [801, 810, 1000]);
  assert.deepEqual(look(2), [900, 910, 1000]);
});

test('INVPCID type 1 drops one PCID\'s non-global entries', () => {
  const { cpu, look } = invpcidRig();
  assert.ok(cpu.invpcid(1, 1));
  assert.deepEqual(look(1), [801, 811, 1000]);
  assert.deepEqual(look(2), [900, 910, 1000]);
});

test('INVPCID type 2 drops everything, globals included', () => {
  const { cpu, look } = invpcidRig();
  assert.ok(cpu.invpcid(2, 0));
  assert.deepEqual(look(2), [901, 911, 1001]);
  assert.deepEqual(look(1), [801, 811, 1001]);
});

test('INVPCID type 3 drops every non-global entry and keeps globals', () => {
  const { cpu, look } = invpcidRig();
  assert.ok(cpu.invpcid(3, 0));
  assert.deepEqual(look(1), [801, 811, 1000]);
  assert.deepEqual(look(2), [901, 911, 1000]);
});

test('INVPCID faults as the SDM lists', () => {
  const { cpu } = rig({}, CR4_PCIDE);
  const gp = (ok: boolean) => {
    assert.equal(ok, false);
    assert.equal(cpu.faultVector, X86_TRAP_GP);
    cpu.clearFault();
  };
  gp(cpu.invpcid(4, 0)); // type > 3
  gp(cpu.invpcid(1, 4096)); // descriptor bits 63:12 set
  gp(cpu.invpcid(0, 1, 0x00008000, 0)); // non-canonical address, type 0
  const off = rig().cpu; // CR4.PCIDE = 0
  assert.equal(off.invpcid(1, 1), false);
  assert.equal(off.faultVector, X86_TRAP_GP);
  assert.equal(off.invpcid(1, 0), true, 'PCID 0 is fine with PCIDE=0');
  cpu.setCpl(3);
  gp(cpu.invpcid(2, 0));
  const noInvpcid = rig({ cpu: { invpcid: false } }).cpu;
  assert.equal(noInvpcid.invpcid(2, 0), false);
  assert.equal(noInvpcid.faultVector, X86_TRAP_UD);
});

test('a stale entry keeps stale rights until INVLPG', () => {
  const { pt, cpu } = rig();
  pt.map(VA, pa(1100), { leaf: { rw: true, us: true } });
  cpu.setCpl(3);
  assert.equal(tr(cpu, VA, Access.Write), pa(1100));
  // The kernel write-protects the PTE but does not flush yet.
  const pte = pt.readEntry(VA, 1)!;
  pt.writeEntry(VA, 1, pte & ~BigInt(PTE_RW));
  assert.equal(tr(cpu, VA, Access.Write), pa(1100), 'the cached writable, dirty entry still allows the write');
  cpu.setCpl(0);
  assert.ok(cpu.invlpg(0, 0x400000));
  cpu.setCpl(3);
  assert.equal(tr(cpu, VA, Access.Write), -1);
  assert.equal(cpu.faultErrorCode, PF_P | PF_W | PF_U);
});

test('a stale read-only entry gives a spurious #PF, which drops it so the retry succeeds', () => {
  const { pt, cpu } = rig();
  pt.map(VA, pa(1200), { leaf: { rw: false, us: true } });
  cpu.setCpl(3);
  assert.equal(tr(cpu, VA, Access.Read), pa(1200));
  const pte = pt.readEntry(VA, 1)!;
  pt.writeEntry(VA, 1, pte | BigInt(PTE_RW)); // made more permissive, no flush (Linux does this)
  assert.equal(tr(cpu, VA, Access.Write), -1, 'the cached read-only rights fault');
  assert.equal(cpu.faultErrorCode, PF_P | PF_W | PF_U);
  assert.equal(cpu.lastFault()!.cr2, VA);
  assert.equal(tr(cpu, VA, Access.Write), pa(1200), 'the fault dropped the entry; the re-walk sees R/W=1');
});

/**
 * Seed 003: CPU 1 cached a writable, clean translation; CPU 0 (fork) clears R/W in the PTE and
 * has not flushed yet; CPU 1 writes.
 */
function dirtyRace(model: { shstk: boolean; dirty_on_readonly: 'strict' | 'legacy' }) {
  const m = new Machine({ cpus: 2, cpu: model });
  const pt = new PageTableBuilder(m.mem);
  pt.map(VA, pa(1300), { leaf: { rw: true, us: true, a: true } });
  const cpu = m.cpus[1];
  cpu.setCr3(pt.cr3());
  cpu.setCpl(3);
  assert.equal(tr(cpu, VA, Access.Read), pa(1300), 'the read caches a writable entry with D=0');
  const pte = pt.readEntry(VA, 1)!;
  pt.writeEntry(VA, 1, pte & ~BigInt(PTE_RW)); // ptep_set_wrprotect on the other CPU
  const result = tr(cpu, VA, Access.Write);
  return { cpu, result, pte: pt.readEntry(VA, 1)! };
}

test('dirty_on_readonly=strict: a write through a clean cached entry re-checks the PTE and faults', () => {
  const { cpu, result, pte } = dirtyRace({ shstk: true, dirty_on_readonly: 'strict' });
  assert.equal(result, -1);
  assert.equal(cpu.faultErrorCode, PF_P | PF_W | PF_U);
  assert.equal(pte & BigInt(PTE_RW | PTE_D), 0n, 'R/W=0 and D stays 0: no shadow-stack-looking PTE');
});

test('dirty_on_readonly=legacy: the write goes through and sets D on the now read-only PTE', () => {
  const { result, pte } = dirtyRace({ shstk: false, dirty_on_readonly: 'legacy' });
  assert.equal(result, pa(1300));
  assert.equal(pte & BigInt(PTE_RW), 0n);
  assert.equal(pte & BigInt(PTE_D), BigInt(PTE_D), 'R/W=0, D=1: the shadow-stack encoding, made by hardware');
});

test('a shadow-stack CPU cannot be legacy', () => {
  assert.throws(() => new Machine({ cpu: { shstk: true, dirty_on_readonly: 'legacy' } }), /dirty_on_readonly/);
});

test('replacement is round-robin within a set, and deterministic', () => {
  // 4 sets of 4 ways: pages 0, 4, 8, ... share set 0.
  const geometry = { entries4k: 16, ways4k: 4, entries2m: 4, ways2m: 4, entries1g: 4, ways1g: 4 };
  const { pt, cpu } = rig({ cpu: { tlb: geometry } });
  const page = (i: number) => BigInt(0x400000 + i * 4 * 4096);
  for (let i = 0; i < 6; i++) pt.map(page(i), pa(2000 + i), { leaf: { rw: true } });
  for (let i = 0; i < 4; i++) tr(cpu, page(i), Access.Read);
  tr(cpu, page(0), Access.Read); // a hit does not protect page 0: replacement ignores use
  tr(cpu, page(4), Access.Read); // replaces way 0 (page 0)
  tr(cpu, page(5), Access.Read); // replaces way 1 (page 1)
  const misses = cpu.tlb.misses;
  for (const i of [2, 3, 4, 5]) tr(cpu, page(i), Access.Read);
  assert.equal(cpu.tlb.misses, misses, 'pages 2, 3, 4, 5 still cached');
  tr(cpu, page(0), Access.Read);
  assert.equal(cpu.tlb.misses, misses + 1, 'page 0 was evicted first');
  assert.equal(cpu.tlb.liveCount(), 4, 'a set never holds more than its ways');
});

test('makeCr3 and the TLB API name a bad PCID', () => {
  const { cpu } = rig();
  assert.throws(() => makeCr3(0x1000, 4096), /pcid: 4096 is not a PCID/);
  assert.throws(() => cpu.tlb.flushPcid(-1), (e: Error & { argument?: string }) => e.argument === 'pcid');
  assert.throws(() => makeCr3(0x1001), (e: Error & { argument?: string }) => e.argument === 'rootPa');
});

test('setting CR4.SMEP drops global entries filled under the current PCID too (SDM §4.10.4.1)', () => {
  const { pt, cpu } = rig({}, PCID_PGE);
  pt.map(KVA, pa(420), { leaf: { rw: true, g: true } });
  assert.ok(cpu.setCr3(pt.cr3(0)));
  assert.equal(tr(cpu, KVA, Access.Read), pa(420));
  repoint(pt, KVA, 421, 0x123n);
  assert.ok(cpu.movToCr4(cpu.cr4 | CR4_SMEP));
  assert.equal(tr(cpu, KVA, Access.Read), pa(421), '"all TLB entries for the current PCID": globals are not excepted');
});

test('evicting a slot drops it and reports an evict flush; a transient load does not count as a TLB probe', () => {
  const { m, pt, cpu } = rig();
  pt.map(VA, pa(430), { leaf: { rw: true, us: true } });
  assert.equal(tr(cpu, VA, Access.Read), pa(430));
  const [entry] = cpu.tlb.entries();
  const { events, stop } = m.events.record();
  cpu.evictTlbEntry(entry.slot);
  stop();
  assert.deepEqual(events.map((e) => e.type === 'tlb_flush' && e.cause), ['evict']);
  assert.equal(cpu.tlb.liveCount(), 0);
  const counts = [cpu.tlb.hits, cpu.tlb.misses];
  cpu.setCpl(3);
  assert.ok(cpu.transientRead(VA, 8));
  assert.deepEqual([cpu.tlb.hits, cpu.tlb.misses], counts);
  assert.throws(() => cpu.evictTlbEntry(cpu.tlb.size), /slot/);
});
