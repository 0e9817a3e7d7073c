/**
 * CPUID, XGETBV and XSETBV against the SDM (Vol. 2A "CPUID" Table 3-8 "Information Returned by
 * CPUID Instruction" and Figures 3-7/3-8 for leaf 1's ECX and EDX; Vol. 1 §13.2 for leaf 0DH;
 * Vol. 2B "XGETBV", "XSETBV"), for the MODEL's CPU options, on the CPUs Linux 6.12 booted
 * (fpu__init_cpu_xstate: CR4.OSXSAVE, XCR0, IA32_XSS). Every expected value is written from
 * the bit positions in the manual, not from a run. Host-checked (x86-64, 6.18): leaf 0's
 * register order (EBX "Genu", ECX "ntel", EDX "ineI"), and that leaf 0DH subleaf 0 EBX is 2688
 * with XCR0 = x87|SSE|AVX|AVX-512, where PKRU's 2688 begins.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cpuid, type CpuidRegs } from '../../src/hw/cpuid.js';
import { CR4_OSXSAVE, MSR_IA32_XSS, X86_TRAP_GP, X86_TRAP_UD } from '../../src/hw/regs.js';
import { ConfigError } from '../../src/errors.js';
import { System, type SystemConfig } from '../../src/system.js';
import { rig } from './helpers.js';

const b = (...bits: number[]): number => bits.reduce((a, n) => a + 2 ** n, 0);
const booted = (config: SystemConfig = {}): System => new System({ memory: 16 * 2 ** 20, ...config });
const regs = (sys: System, leaf: number, sub = 0, cpu = 0): CpuidRegs => cpuid(sys.machine.cpus[cpu], leaf, sub);

test('CPUID on the default CPU after boot: every leaf the model has, bit by bit', () => {
  const sys = booted({ cpus: 2 });
  // Leaf 0: the highest basic leaf, then "GenuineIntel" in EBX, EDX, ECX (Table 3-8).
  assert.deepEqual(regs(sys, 0), [0xd, 0x756e6547, 0x6c65746e, 0x49656e69]);
  // Leaf 1: EBX[15:8] CLFLUSH line size in 8-byte units (8), EBX[31:24] initial APIC ID.
  const [eax1, ebx1, ecx1, edx1] = regs(sys, 1, 0, 1);
  assert.equal(eax1, 0x000806f8, 'family 6, extended model 8, model F, stepping 8');
  assert.equal(ebx1, (1 * 2 ** 24) | (8 << 8), 'CPU 1: APIC ID 1, CLFLUSH 64 bytes');
  assert.equal(regs(sys, 1, 0, 0)[1] >>> 24, 0, 'CPU 0: APIC ID 0');
  // ECX: 17 PCID, 26 XSAVE, 27 OSXSAVE (CR4.OSXSAVE, set by fpu__init_cpu_xstate).
  assert.equal(ecx1, b(17, 26, 27));
  // EDX: 0 FPU, 3 PSE, 5 MSR, 6 PAE, 8 CX8, 9 APIC, 13 PGE, 15 CMOV, 24 FXSR, 25 SSE, 26 SSE2.
  assert.equal(edx1, b(0, 3, 5, 6, 8, 9, 13, 15, 24, 25, 26));
  // Leaf 7 subleaf 0: EAX the highest subleaf (0); EBX 7 SMEP, 10 INVPCID, 20 SMAP (0 FSGSBASE:
  // no option has it); ECX 3 PKU, 4 OSPKE (CR4.PKE), 7 CET_SS; EDX 20 CET_IBT clear.
  assert.deepEqual(regs(sys, 7), [0, b(7, 10, 20), b(3, 4, 7), 0]);
  assert.deepEqual(regs(sys, 7, 1), [0, 0, 0, 0], 'a subleaf past the highest: zeros');
  // Leaf 0DH (§13.2): subleaf 0 EAX the XCR0 bits supported (x87, SSE, PKRU), EBX the size for
  // XCR0 (PKRU ends at 2688 + 8), ECX the size for all, EDX the high half.
  assert.deepEqual(regs(sys, 0xd, 0), [0x203, 2696, 2696, 0]);
  // Subleaf 1: EAX 0 XSAVEOPT, 1 XSAVEC, 2 XGETBV ECX=1, 3 XSAVES; EBX the compacted size of
  // XCR0 | IA32_XSS = 576 + PKRU 8 + CET_U 16; ECX the IA32_XSS bits supported: 11 CET_U, 12 CET_S.
  assert.deepEqual(regs(sys, 0xd, 1), [0xf, 576 + 8 + 16, b(11, 12), 0]);
  // Subleaf i: EAX size, EBX offset (user state), ECX[0] supervisor, ECX[1] aligned (§13.2, §13.5.7, §13.5.8).
  assert.deepEqual(regs(sys, 0xd, 9), [8, 2688, 0, 0], 'PKRU: 8 bytes at 2688, user state');
  assert.deepEqual(regs(sys, 0xd, 11), [16, 0, 1, 0], 'CET_U: 16 bytes, supervisor');
  assert.deepEqual(regs(sys, 0xd, 12), [24, 0, 1, 0], 'CET_S: 24 bytes, supervisor');
  assert.deepEqual(regs(sys, 0xd, 2), [0, 0, 0, 0], 'AVX: not supported, zeros');
  // Extended leaves.
  assert.deepEqual(regs(sys, 0x80000000), [0x80000008, 0, 0, 0]);
  assert.deepEqual(regs(sys, 0x80000001), [0, 0, 0, b(11, 20, 26, 29)], 'EDX: 11 SYSCALL, 20 NX, 26 Page1GB, 29 LM');
  assert.deepEqual(regs(sys, 0x80000008), [46 | (48 << 8), 0, 0, 0], 'MAXPHYADDR 46, 48 linear-address bits');
  // A leaf the model lacks at or below the highest: zeros; above both ranges: the highest basic
  // leaf's data for the same ECX ("If a value entered for CPUID.EAX is higher than the maximum
  // input value ... the data for the highest basic information leaf is returned").
  assert.deepEqual(regs(sys, 2), [0, 0, 0, 0]);
  for (const leaf of [0xe, 0x14, 0x40000000, 0x80000009, 0xffffffff]) {
    assert.deepEqual(regs(sys, leaf, 9), regs(sys, 0xd, 9), `leaf ${leaf.toString(16)} subleaf 9`);
    assert.deepEqual(regs(sys, leaf, 0), regs(sys, 0xd, 0), `leaf ${leaf.toString(16)} subleaf 0`);
  }
});

test('CPUID with a feature off: its bit clear (and XCR0 and the sizes follow)', () => {
  const cases: [string, SystemConfig, number, number, 0 | 1 | 2 | 3, number, boolean][] = [
    // name, config, leaf, subleaf, register, bit, expected
    ['pcid', { cpu: { pcid: false, invpcid: false } }, 1, 0, 2, 17, false],
    ['invpcid', { cpu: { invpcid: false } }, 7, 0, 1, 10, false],
    ['smep', { cpu: { smep: false } }, 7, 0, 1, 7, false],
    ['smap', { cpu: { smap: false } }, 7, 0, 1, 20, false],
    ['pku', { cpu: { pku: false } }, 7, 0, 2, 3, false],
    ['pku: no OSPKE either', { cpu: { pku: false } }, 7, 0, 2, 4, false],
    ['nopku: PKU stays', { kernel: { nopku: true } }, 7, 0, 2, 3, true],
    ['nopku: no OSPKE (CR4.PKE clear)', { kernel: { nopku: true } }, 7, 0, 2, 4, false],
    ['shstk', { cpu: { shstk: false } }, 7, 0, 2, 7, false],
    ['la57 on', { cpu: { la57: true } }, 7, 0, 2, 16, true],
    ['pks on', { cpu: { pks: true } }, 7, 0, 2, 31, true],
    ['pge', { cpu: { pge: false } }, 1, 0, 3, 13, false],
    ['nx', { cpu: { nx: false } }, 0x80000001, 0, 3, 20, false],
    ['pdpe1gb', { cpu: { pdpe1gb: false } }, 0x80000001, 0, 3, 26, false],
    ['xsave', { cpu: { xsave: false, pku: false, shstk: false } }, 1, 0, 2, 26, false],
    ['xsave: no OSXSAVE either', { cpu: { xsave: false, pku: false, shstk: false } }, 1, 0, 2, 27, false],
  ];
  for (const [name, config, leaf, sub, reg, bit, want] of cases) {
    const v = regs(booted(config), leaf, sub)[reg];
    assert.equal(Math.floor(v / 2 ** bit) % 2 === 1, want, name);
  }
  // Leaf 0DH follows: without PKU only x87|SSE (576 bytes); with nopku the CPU supports PKRU
  // (EAX, ECX) but XCR0 lacks it (EBX); without XSAVE, leaf 0DH is all zeros.
  assert.deepEqual(regs(booted({ cpu: { pku: false } }), 0xd, 0), [0x3, 576, 576, 0]);
  assert.deepEqual(regs(booted({ cpu: { pku: false } }), 0xd, 9), [0, 0, 0, 0]);
  assert.deepEqual(regs(booted({ kernel: { nopku: true } }), 0xd, 0), [0x203, 576, 2696, 0]);
  assert.deepEqual(regs(booted({ cpu: { shstk: false } }), 0xd, 1), [0xf, 584, 0, 0]);
  assert.deepEqual(regs(booted({ cpu: { xsave: false, pku: false, shstk: false } }), 0xd, 0), [0, 0, 0, 0]);
  assert.equal(regs(booted({ cpu: { la57: true } }), 0x80000008)[0], 46 | (57 << 8));
  assert.equal(regs(booted({ cpu: { maxphyaddr: 52 } }), 0x80000008)[0] & 0xff, 52);
});

test('CPUID reports OSXSAVE and OSPKE from CR4, as the processor does', () => {
  const { cpu } = rig();
  assert.equal(cpuid(cpu, 1, 0)[2] & b(27), 0, 'before the OS sets CR4.OSXSAVE');
  assert.equal(cpuid(cpu, 7, 0)[2] & b(4), 0, 'before the OS sets CR4.PKE');
  assert.ok(cpu.movToCr4(cpu.cr4 | CR4_OSXSAVE));
  assert.equal(cpuid(cpu, 1, 0)[2] & b(27), b(27));
  assert.equal(cpuid(cpu, 0xd, 0)[1], 576, 'XCR0 at reset is x87 only: the legacy area and header');
});

test('an impossible CPU is a ConfigError naming cpu.xsave (cpuid-deps: PKU needs XSAVE, SHSTK needs XSAVES)', () => {
  assert.throws(() => booted({ cpu: { xsave: false } }), (e: unknown) => e instanceof ConfigError && /cpu\.xsave/.test(String((e as Error).message)) && /PKU/.test(String((e as Error).message)));
  assert.throws(() => booted({ cpu: { xsave: false, pku: false } }), (e: unknown) => e instanceof ConfigError && /shadow stacks/.test(String((e as Error).message)));
  assert.throws(() => booted({ cpu: { xsave: 1 as unknown as boolean } }), ConfigError);
});

test('XGETBV: XCR0 as Linux set it, XINUSE with ECX=1; #UD without CR4.OSXSAVE, #GP for another ECX', () => {
  const sys = booted();
  const cpu = sys.machine.cpus[0];
  // fpu__init_cpu_xstate: x87 | SSE | PKRU (OSPKE); CET_USER goes to IA32_XSS, not XCR0.
  assert.equal(cpu.xgetbv(0), 0x203n);
  assert.equal(cpu.xss, b(11), 'IA32_XSS = CET_USER');
  // XINUSE (§13.6): PKRU is in its initial configuration iff it is 0; x87 and SSE are not modelled (init).
  cpu.pkru = 0;
  assert.equal(cpu.xgetbv(1), 0n);
  cpu.pkru = 0x55555554;
  assert.equal(cpu.xgetbv(1), 0x200n);
  cpu.clearFault();
  assert.equal(cpu.xgetbv(2), null);
  assert.equal(cpu.lastFault()?.vector, X86_TRAP_GP);
  assert.equal(booted({ kernel: { nopku: true } }).machine.cpus[0].xgetbv(0), 0x3n, 'nopku: no PKRU in XCR0');
  assert.equal(booted({ cpu: { shstk: false } }).machine.cpus[0].xss, 0, 'no shadow stacks: IA32_XSS 0');
  const { cpu: bare } = rig();
  assert.equal(bare.xgetbv(0), null);
  assert.equal(bare.lastFault()?.vector, X86_TRAP_UD, 'CR4.OSXSAVE = 0: #UD');
  const off = booted({ cpu: { xsave: false, pku: false, shstk: false } }).machine.cpus[0];
  assert.equal(off.cr4 & CR4_OSXSAVE, 0, 'no XSAVE: Linux leaves CR4.OSXSAVE clear');
  assert.equal(off.xgetbv(0), null);
  assert.equal(off.lastFault()?.vector, X86_TRAP_UD);
  assert.equal(off.movToCr4(off.cr4 | CR4_OSXSAVE), false, 'CR4.OSXSAVE is reserved without XSAVE');
});

test('XSETBV and WRMSR IA32_XSS: #GP at CPL 3, for an unsupported bit, for XCR0[0] clear, for another XCR', () => {
  const { cpu } = rig();
  assert.equal(cpu.xsetbv(0, 0x3n), false);
  assert.equal(cpu.lastFault()?.vector, X86_TRAP_UD, 'CR4.OSXSAVE = 0: #UD');
  assert.ok(cpu.movToCr4(cpu.cr4 | CR4_OSXSAVE));
  const gp = (ecx: number, v: bigint, why: string): void => {
    cpu.clearFault();
    assert.equal(cpu.xsetbv(ecx, v), false, why);
    assert.equal(cpu.lastFault()?.vector, X86_TRAP_GP, why);
  };
  gp(0, 0x2n, 'x87 (bit 0) clear');
  gp(0, 0x7n, 'AVX (bit 2): not supported by the model');
  gp(0, 0x803n, 'CET_U (bit 11): supervisor state, IA32_XSS only');
  gp(0, 1n << 40n, 'a high bit');
  gp(1, 0x3n, 'XCR1 (XINUSE) is not writable');
  assert.ok(cpu.xsetbv(0, 0x203n));
  assert.equal(cpu.xcr0, 0x203);
  cpu.setCpl(3);
  gp(0, 0x3n, 'CPL 3');
  cpu.setCpl(0);
  cpu.clearFault();
  assert.equal(cpu.wrmsr(MSR_IA32_XSS, 0x200n), false, 'PKRU is not supervisor state');
  assert.ok(cpu.wrmsr(MSR_IA32_XSS, BigInt(b(11, 12))));
  const { cpu: nopku } = rig({ cpu: { pku: false } });
  assert.ok(nopku.movToCr4(nopku.cr4 | CR4_OSXSAVE));
  assert.equal(nopku.xsetbv(0, 0x203n), false, 'PKRU without PKU');
});
