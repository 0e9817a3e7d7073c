/**
 * CPUID (SDM Vol. 2A "CPUID"): what the processor says about itself, leaf (EAX) and subleaf
 * (ECX) in, EAX, EBX, ECX and EDX out. The model's CPU reports its options (features.ts) at
 * the SDM's places, and the OS-enabled bits (OSXSAVE, OSPKE) from CR4 as the hardware does:
 *
 *   leaf          register  bits
 *   0             EAX       the highest basic leaf, 0DH; EBX, EDX, ECX "GenuineIntel"
 *   1             EAX       family 6, model 8FH, stepping 8 (a Sapphire Rapids signature)
 *                 EBX       [15:8] CLFLUSH line 8 (64 bytes), [31:24] initial APIC ID = CPU number
 *                 ECX       17 PCID, 26 XSAVE, 27 OSXSAVE (= CR4.OSXSAVE)
 *                 EDX       0 FPU, 3 PSE, 5 MSR, 6 PAE, 8 CX8, 9 APIC, 13 PGE, 15 CMOV, 24 FXSR,
 *                           25 SSE, 26 SSE2 (the x86-64 kernel's REQUIRED_MASK0, plus the APIC)
 *   7, ECX=0      EAX       0, the highest subleaf
 *                 EBX       7 SMEP, 10 INVPCID, 20 SMAP (0 FSGSBASE: no CPU option has it)
 *                 ECX       3 PKU, 4 OSPKE (= CR4.PKE), 7 CET_SS, 16 LA57, 31 PKS
 *                 EDX       20 CET_IBT: 0, the model has no indirect-branch tracking
 *   0DH, ECX=0    EAX       the XCR0 bits supported (x87, SSE, PKRU); EDX their high half, 0
 *                 EBX       the standard-form size for the current XCR0; ECX for all supported
 *   0DH, ECX=1    EAX       0 XSAVEOPT, 1 XSAVEC, 2 XGETBV with ECX=1, 3 XSAVES/IA32_XSS
 *                 EBX       the compacted size for XCR0 | IA32_XSS; ECX the IA32_XSS bits supported
 *   0DH, ECX=i    EAX size, EBX standard offset (0 for supervisor state), ECX[0] supervisor,
 *                 ECX[1] 64-byte aligned when compacted: PKRU (9) 8 at 2688; CET_U (11) 16;
 *                 CET_S (12) 24
 *   80000000H     EAX       the highest extended leaf, 80000008H
 *   80000001H     EDX       11 SYSCALL, 20 NX, 26 Page1GB, 29 LM
 *   80000008H     EAX       [7:0] MAXPHYADDR, [15:8] linear-address bits (48, or 57 with LA57)
 *
 * A leaf at or below the highest of its range that the model does not have returns zeros, as
 * does a subleaf past a leaf's last; a leaf above both ranges' highest returns the highest
 * basic leaf's data (the SDM's rule for Intel processors), for the same ECX. Without the
 * XSAVE feature leaf 0DH is all zeros. CPUID faulting (Cpu.cpuidFaults: #GP(0) at CPL 3 with
 * MSR_MISC_FEATURES_ENABLES bit 0) is the caller's to check before calling this.
 */
import type { Cpu } from './cpu.js';
import { xcr0Supported, xssSupported } from './cpu.js';
import { CR4_OSXSAVE, CR4_PKE } from './regs.js';
import { XCOMPONENTS, xstateSizeCompacted, xstateSizeStandard } from './xsave.js';

/** The highest basic and extended leaves. */
export const CPUID_MAX_BASIC = 0xd;
export const CPUID_MAX_EXTENDED = 0x80000008;

/** "GenuineIntel" as leaf 0 returns it: EBX "Genu", EDX "ineI", ECX "ntel". */
export const CPUID_VENDOR_EBX = 0x756e6547;
export const CPUID_VENDOR_EDX = 0x49656e69;
export const CPUID_VENDOR_ECX = 0x6c65746e;
/** Leaf 1's EAX: extended model 8, family 6, model 0FH, stepping 8 (display model 8FH). */
export const CPUID_SIGNATURE = 0x000806f8;

/** CPUID result registers in the order EAX, EBX, ECX, EDX. */
export type CpuidRegs = [number, number, number, number];

const bit = (on: boolean, n: number): number => (on ? 2 ** n : 0);

/** CPUID with EAX = leaf and ECX = subleaf on `cpu`; each register is an unsigned 32-bit number. Any CPL. */
export function cpuid(cpu: Cpu, leaf: number, subleaf: number): CpuidRegs {
  leaf >>>= 0;
  subleaf >>>= 0;
  if ((leaf > CPUID_MAX_BASIC && leaf < 0x80000000) || leaf > CPUID_MAX_EXTENDED) leaf = CPUID_MAX_BASIC;
  const m = cpu.model;
  const r = (a: number, b: number, c: number, d: number): CpuidRegs => [a >>> 0, b >>> 0, c >>> 0, d >>> 0];
  switch (leaf) {
    case 0:
      return r(CPUID_MAX_BASIC, CPUID_VENDOR_EBX, CPUID_VENDOR_ECX, CPUID_VENDOR_EDX);
    case 1: {
      const ebx = (cpu.id & 0xff) * 2 ** 24 + (8 << 8);
      const ecx = bit(m.pcid, 17) + bit(m.xsave, 26) + bit((cpu.cr4 & CR4_OSXSAVE) !== 0, 27);
      // FPU, PSE, MSR, PAE, CX8, APIC, CMOV, FXSR, SSE, SSE2, and PGE as the model says.
      const edx = 0x1 + 0x8 + 0x20 + 0x40 + 0x100 + 0x200 + bit(m.pge, 13) + 0x8000 + bit(true, 24) + bit(true, 25) + bit(true, 26);
      return r(CPUID_SIGNATURE, ebx, ecx, edx);
    }
    case 7:
      if (subleaf !== 0) return r(0, 0, 0, 0);
      return r(0, bit(m.smep, 7) + bit(m.invpcid, 10) + bit(m.smap, 20), bit(m.pku, 3) + bit((cpu.cr4 & CR4_PKE) !== 0, 4) + bit(m.shstk, 7) + bit(m.la57, 16) + bit(m.pks, 31), 0);
    case 0xd: {
      if (!m.xsave) return r(0, 0, 0, 0);
      const user = xcr0Supported(m);
      const sup = xssSupported(m);
      if (subleaf === 0) return r(user, xstateSizeStandard(cpu.xcr0), xstateSizeStandard(user), 0);
      if (subleaf === 1) return r(0xf, xstateSizeCompacted(cpu.xcr0 | cpu.xss), sup, 0);
      const c = XCOMPONENTS[subleaf];
      if (subleaf > 31 || !c || ((user | sup) & (1 << subleaf)) === 0) return r(0, 0, 0, 0);
      return r(c.size, c.offset, (c.supervisor ? 1 : 0) | (c.align64 ? 2 : 0), 0);
    }
    case 0x80000000:
      return r(CPUID_MAX_EXTENDED, 0, 0, 0);
    case 0x80000001:
      return r(0, 0, 0, bit(true, 11) + bit(m.nx, 20) + bit(m.pdpe1gb, 26) + bit(true, 29));
    case 0x80000008:
      return r(m.maxphyaddr | ((m.la57 ? 57 : 48) << 8), 0, 0, 0);
    default:
      return r(0, 0, 0, 0);
  }
}
