/**
 * Bad input: an API caller gets a typed error naming the argument or option; simulated code
 * gets the architectural fault and never crashes the simulator. Physical memory semantics.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ArgumentError, ConfigError, Machine, PageTableBuilder, PhysMem, accessKind, X86_TRAP_GP, X86_TRAP_PF, X86_TRAP_UD, CR4_PKE } from '../../src/index.js';
import { rig } from './helpers.js';

/** Asserts `fn` throws `type` whose `argument` (or `option`) is `name`. */
function throwsNaming(fn: () => unknown, type: typeof ArgumentError | typeof ConfigError, name: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof type, `expected ${type.name}, got ${String(e)}`);
    const named = e instanceof ArgumentError ? e.argument : (e as ConfigError).option;
    assert.equal(named, name);
    assert.match((e as Error).message, new RegExp(`^${name.replace('.', '\\.')}: `));
    return true;
  });
}

test('API arguments: unknown access kind, unaligned frame, PCID over 4095, bad addresses', () => {
  const { pt, cpu } = rig();
  throwsNaming(() => accessKind('execute'), ArgumentError, 'kind');
  throwsNaming(() => cpu.translateAddress(0x1000n, 'wrte' as 'write'), ArgumentError, 'kind');
  throwsNaming(() => cpu.translate(0, 0x1000, 8), ArgumentError, 'kind');
  throwsNaming(() => pt.map(0x400000n, 0x1234, {}), ArgumentError, 'pa');
  throwsNaming(() => pt.map(0x400000n, 0x201000, { size: 2 * 1024 * 1024 }), ArgumentError, 'pa');
  throwsNaming(() => pt.map(0x400800n, 0x1000, {}), ArgumentError, 'la');
  throwsNaming(() => pt.map(0x0000800000000000n, 0x1000, {}), ArgumentError, 'la');
  throwsNaming(() => pt.map(0x400000n, 0x1000, { size: 8192 }), ArgumentError, 'size');
  throwsNaming(() => pt.map(0x400000n, 0x1000, { leaf: { pk: 16 } }), ArgumentError, 'pk');
  throwsNaming(() => pt.cr3(4096), ArgumentError, 'pcid');
  throwsNaming(() => cpu.tlb.invalidatePcidAddress(0, 0, 5000), ArgumentError, 'pcid');
  throwsNaming(() => cpu.translateAddress(-1), ArgumentError, 'address');
  throwsNaming(() => cpu.translateAddress(1n << 64n), ArgumentError, 'address');
  throwsNaming(() => cpu.read(0x1000n, 0), ArgumentError, 'length');
  throwsNaming(() => cpu.setCpl(1 as 0), ArgumentError, 'cpl');
  throwsNaming(() => new PhysMem(4095), ArgumentError, 'sizeBytes');
  throwsNaming(() => new PageTableBuilder(new PhysMem(1 << 20), { levels: 3 as 4 }), ArgumentError, 'levels');
});

test('machine configuration: unknown options and CPUs that cannot exist are refused by name', () => {
  throwsNaming(() => new Machine({ cpus: 0 }), ConfigError, 'cpus');
  throwsNaming(() => new Machine({ cpus: 65 }), ConfigError, 'cpus');
  throwsNaming(() => new Machine({ memory: 12345 }), ConfigError, 'memory');
  throwsNaming(() => new Machine({ memory: 2 ** 40, cpu: { maxphyaddr: 39 } }), ConfigError, 'memory');
  throwsNaming(() => new Machine({ cpu: { meltdwn: true } as object }), ConfigError, 'cpu.meltdwn');
  throwsNaming(() => new Machine({ cpu: { pcid: 'yes' as unknown as boolean } }), ConfigError, 'cpu.pcid');
  throwsNaming(() => new Machine({ cpu: { maxphyaddr: 64 } }), ConfigError, 'cpu.maxphyaddr');
  throwsNaming(() => new Machine({ cpu: { dirty_on_readonly: 'lazy' as 'strict' } }), ConfigError, 'cpu.dirty_on_readonly');
  throwsNaming(() => new Machine({ cpu: { shstk: true, dirty_on_readonly: 'legacy' } }), ConfigError, 'cpu.dirty_on_readonly');
  throwsNaming(() => new Machine({ cpu: { pcid: false } }), ConfigError, 'cpu.invpcid');
  throwsNaming(() => new Machine({ cpu: { pks: true, pku: false } }), ConfigError, 'cpu.pks');
  throwsNaming(() => new Machine({ cpu: { tlb: { entries4k: 100, ways4k: 4, entries2m: 4, ways2m: 4, entries1g: 4, ways1g: 4 } } }), ConfigError, 'cpu.tlb.entries4k');
  throwsNaming(() => new Machine({ cpuz: 2 } as object), ConfigError, 'cpuz');
  assert.doesNotThrow(() => new Machine({ cpus: 4, cpu: { shstk: false, dirty_on_readonly: 'legacy', meltdown: true, la57: true } }));
});

test('instructions give the architectural exception, never a crash', () => {
  const { cpu } = rig({ cpu: { pku: true } });
  assert.equal(cpu.wrpkru(0), false, 'WRPKRU with CR4.PKE=0');
  assert.equal(cpu.faultVector, X86_TRAP_UD);
  assert.ok(cpu.movToCr4(cpu.cr4 | CR4_PKE));
  assert.equal(cpu.wrpkru(0x55555554, 1), false, 'WRPKRU with ECX != 0');
  assert.equal(cpu.faultVector, X86_TRAP_GP);
  cpu.setCpl(3);
  assert.equal(cpu.wrpkru(0x55555554), true, 'WRPKRU works at CPL 3');
  assert.equal(cpu.rdpkru(), 0x55555554);
  assert.equal(cpu.rdpkru(1), -1, 'RDPKRU with ECX != 0');
  assert.equal(cpu.stac(), false, 'STAC at CPL 3');
  assert.equal(cpu.faultVector, X86_TRAP_UD);
  assert.equal(cpu.wrmsr(0x10, 0n), false, 'WRMSR at CPL 3');
  cpu.setCpl(0);
  assert.equal(cpu.wrmsr(0x12345, 0n), false, 'an MSR the model does not implement');
  assert.equal(cpu.faultVector, X86_TRAP_GP);
});

test('walking arbitrary memory as page tables never throws', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat(511), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })), { minLength: 1, maxLength: 40 }),
      fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
      fc.nat(7),
      fc.constantFrom(0 as const, 3 as const),
      (words, addr, kind, cpl) => {
        const m = new Machine({ memory: 1 << 21 });
        // Frames 1..4 hold random words; CR3 points at frame 1.
        for (const [i, w] of words) m.mem.write64(1 + (i % 4), i, Number(w & 0xffffffffn), Number(w >> 32n));
        const cpu = m.cpus[0];
        cpu.setCr3(0x1000n);
        cpu.setCpl(cpl);
        const r = cpu.translate(Number(addr >> 32n), Number(addr & 0xffffffffn), kind);
        assert.ok(r >= 0 || cpu.faultVector === X86_TRAP_PF || cpu.faultVector === X86_TRAP_GP);
      },
    ),
    { numRuns: 500, seed: 42 },
  );
});

test('physical memory: sparse, zero until written, all ones past RAM, 64-bit entries', () => {
  const mem = new PhysMem(1 << 20);
  assert.equal(mem.framesMaterialised, 0);
  assert.equal(mem.readLo(5, 3), 0);
  assert.equal(mem.framesMaterialised, 0, 'reads do not allocate');
  mem.write64(5, 3, 0xdeadbeef, 0x80000001);
  assert.equal(mem.framesMaterialised, 1);
  assert.equal(mem.read64(5, 3), 0x80000001deadbeefn);
  assert.deepEqual([...mem.readBytes(5 * 4096 + 24, 8)], [0xef, 0xbe, 0xad, 0xde, 0x01, 0x00, 0x00, 0x80], 'little-endian');
  assert.equal(mem.readLo(256, 0), 0xffffffff, 'past installed memory');
  mem.write64(256, 0, 1, 1);
  assert.equal(mem.readHi(256, 0), 0xffffffff, 'writes past RAM are dropped');
  assert.equal(mem.cmpxchg64(5, 3, 0xdeadbeef, 0x80000001, 1, 2), true);
  assert.equal(mem.cmpxchg64(5, 3, 0xdeadbeef, 0x80000001, 3, 4), false, 'expected value no longer there');
  assert.equal(mem.read64(5, 3), 0x0000000200000001n);
  mem.writeBytes(4096 - 2, new Uint8Array([1, 2, 3, 4])); // crosses frames 0 and 1
  assert.deepEqual([...mem.readBytes(4096 - 2, 4)], [1, 2, 3, 4]);
  throwsNaming(() => mem.zeroFrame(256), ArgumentError, 'pfn');
});

test('data accesses through the CPU read and write real bytes, across a page boundary', () => {
  const { pt, cpu } = rig();
  pt.map(0x400000n, 0x10000, { leaf: { rw: true, us: true } });
  pt.map(0x401000n, 0x30000, { leaf: { rw: true, us: true } });
  cpu.setCpl(3);
  assert.ok(cpu.writeU64(0x400ffcn, 0x1122334455667788n));
  assert.equal(cpu.readU64(0x400ffcn), 0x1122334455667788n);
  assert.equal(cpu.mem.readBytes(0x30000, 1)[0], 0x44, 'the high half landed in the second frame');
  // A write whose second page faults writes nothing (x86 checks both pages first).
  pt.writeEntry(0x401000n, 1, 0n);
  cpu.setCpl(0);
  cpu.invlpg(0, 0x401000);
  cpu.setCpl(3);
  assert.equal(cpu.writeU64(0x400ffcn, 0n), false);
  assert.equal(cpu.lastFault()!.cr2, 0x401000n);
  assert.equal(cpu.readU64(0x400ff8n), 0x5566778800000000n, 'the first page is unchanged');
});

test('more bad input: each public entry point answers with a typed error, not a TypeError', () => {
  const { pt, cpu } = rig();
  throwsNaming(() => cpu.write(0x1000n, 'bytes' as unknown as Uint8Array), ArgumentError, 'data');
  throwsNaming(() => cpu.writeU64(0x1000n, 5 as unknown as bigint), ArgumentError, 'value');
  throwsNaming(() => cpu.wrmsr(0x6a0, 1 as unknown as bigint), ArgumentError, 'value');
  throwsNaming(() => pt.writeEntry(0x400000n, 1, 5 as unknown as bigint), ArgumentError, 'value');
  throwsNaming(() => cpu.translate(0, 0x1000, 1.5), ArgumentError, 'kind');
  throwsNaming(() => cpu.accessStart(0, 0x1000, 99), ArgumentError, 'kind');
  throwsNaming(() => new Machine(null as unknown as object), ConfigError, 'machine');
  throwsNaming(() => new Machine({ cpu: null as unknown as object }), ConfigError, 'cpu');
  throwsNaming(() => new Machine({ cpu: { tlb: { entries4k: 2 ** 32, ways4k: 4, entries2m: 4, ways2m: 4, entries1g: 4, ways1g: 4 } } }), ConfigError, 'cpu.tlb.entries4k');
});

test('stepping an access: no step without an access in progress, no second access during one', () => {
  const { pt, cpu } = rig();
  pt.map(0x400000n, 0x10000, { leaf: { rw: true } });
  assert.throws(() => cpu.accessStep(), /no access in progress/);
  assert.equal(cpu.accessStart(0, 0x400000, 0), -2);
  assert.throws(() => cpu.accessStart(0, 0x400000, 0), /still in progress/);
  let r = -2;
  while (r === -2) r = cpu.accessStep();
  assert.equal(r, 0x10000);
  assert.throws(() => cpu.accessStep(), /no access in progress/);
});

test('probe: found or not, canonical or not, and no side effects', () => {
  const { m, pt, cpu } = rig();
  pt.map(0x400000n, 0x10000, { leaf: { rw: true } });
  const { events, stop } = m.events.record();
  const before = pt.readEntry(0x400000n, 1);
  const hit = cpu.probe(0x400123n);
  assert.deepEqual([hit.canonical, hit.found, hit.pfn, hit.pageShift, hit.entries.length], [true, true, 0x10, 12, 4]);
  const miss = cpu.probe(0x800000n);
  assert.deepEqual([miss.canonical, miss.found, miss.errorCode], [true, false, 0], 'not present: P=0');
  const bad = cpu.probe(0x0000800000000000n);
  assert.deepEqual([bad.canonical, bad.found, bad.entries.length], [false, false, 0]);
  stop();
  assert.equal(events.length, 0, 'a probe emits nothing');
  assert.equal(pt.readEntry(0x400000n, 1), before, 'a probe sets no A bit');
  assert.equal(cpu.tlb.liveCount(), 0, 'a probe fills nothing');
  assert.equal(cpu.lastFault(), null, 'a probe raises nothing');
});
