/**
 * The CPU model: which features and bugs the simulated processors have. Names follow the
 * flags Linux prints in /proc/cpuinfo (arch/x86/include/asm/cpufeatures.h) where one exists.
 */
import { ConfigError } from '../errors.js';
import { DEFAULT_TLB_GEOMETRY, type TlbGeometry } from './tlb.js';

/** How the processor sets the dirty bit (see ../shared/seeds/003_b51dd64d0e38e189.txt). */
export type DirtyOnReadonly = 'strict' | 'legacy';

export interface CpuModel {
  /** 5-level paging (CR4.LA57); Linux uses it when the CPU has it. */
  la57: boolean;
  /** Process-context identifiers (CR4.PCIDE). */
  pcid: boolean;
  /** The INVPCID instruction. */
  invpcid: boolean;
  /** Global pages (CR4.PGE). */
  pge: boolean;
  /** The execute-disable bit (EFER.NXE). */
  nx: boolean;
  /** 1 GiB pages (CPUID "pdpe1gb"); without it PS in a PDPTE is reserved. */
  pdpe1gb: boolean;
  /** Supervisor-mode execution prevention (CR4.SMEP). */
  smep: boolean;
  /** Supervisor-mode access prevention (CR4.SMAP, STAC/CLAC). */
  smap: boolean;
  /** Protection keys for user pages (CR4.PKE, PKRU, WRPKRU/RDPKRU). */
  pku: boolean;
  /** Protection keys for supervisor pages (CR4.PKS, IA32_PKRS). */
  pks: boolean;
  /** CET shadow stacks (CR4.CET, SSP, WRSS/WRUSS). */
  shstk: boolean;
  /**
   * The XSAVE feature set (CR4.OSXSAVE, XCR0, XGETBV/XSETBV, XSAVE/XSAVEC/XRSTOR, XGETBV with
   * ECX=1, XSAVES and IA32_XSS), which holds PKRU (component 9) and the CET state (11, 12).
   */
  xsave: boolean;
  /** RDFSBASE, WRFSBASE, RDGSBASE, WRGSBASE (CR4.FSGSBASE); Linux uses them when the CPU has them. */
  fsgsbase: boolean;
  /**
   * CPUID faulting (Linux "cpuid_fault"): MSR_PLATFORM_INFO bit 31 says so, and bit 0 of
   * MSR_MISC_FEATURES_ENABLES makes CPUID at CPL 3 raise #GP(0) (arch_prctl ARCH_SET_CPUID).
   */
  cpuid_faulting: boolean;
  /** Physical-address width in bits (CPUID.80000008H:EAX[7:0]), 36..52. */
  maxphyaddr: number;
  /** The Meltdown bug (Linux X86_BUG_CPU_MELTDOWN): transient user loads ignore U/S. */
  meltdown: boolean;
  /**
   * `strict`: a write through a clean cached entry re-walks, re-checking the entry in memory
   * during the locked D update, and faults if R/W was cleared (shadow-stack CPUs guarantee
   * this). Either way a write the rules permit sets D, whatever the leaf's R/W (a supervisor
   * write with CR0.WP=0).
   * `legacy`: a write through a clean cached writable entry sets D in the entry even if
   * another CPU has just cleared R/W (the SDM "Accessed and Dirty Flags" note).
   */
  dirty_on_readonly: DirtyOnReadonly;
  /** TLB geometry. */
  tlb: TlbGeometry;
}

/**
 * The default: a recent CPU with every feature the kernel model uses but CPUID faulting, no
 * Meltdown, strict D.
 * 46-bit physical addresses as on Intel servers; no LA57 and no PKS, which most parts lack.
 */
export const DEFAULT_CPU_MODEL: CpuModel = Object.freeze({
  la57: false,
  pcid: true,
  invpcid: true,
  pge: true,
  nx: true,
  pdpe1gb: true,
  smep: true,
  smap: true,
  pku: true,
  pks: false,
  shstk: true,
  xsave: true,
  fsgsbase: true,
  cpuid_faulting: false,
  maxphyaddr: 46,
  meltdown: false,
  dirty_on_readonly: 'strict',
  tlb: DEFAULT_TLB_GEOMETRY,
});

const BOOLEAN_FEATURES = ['la57', 'pcid', 'invpcid', 'pge', 'nx', 'pdpe1gb', 'smep', 'smap', 'pku', 'pks', 'shstk', 'xsave', 'fsgsbase', 'cpuid_faulting', 'meltdown'] as const;

/**
 * Completes a partial CPU model with the defaults and checks that it can exist. Throws
 * ConfigError naming the option (`cpu.<name>`) for an unknown option, a wrong type, or a
 * combination no processor has.
 */
export function resolveCpuModel(partial: Partial<CpuModel> = {}): CpuModel {
  if (partial === null || typeof partial !== 'object') throw new ConfigError('cpu', `expected an object of CPU options, got ${String(partial)}`);
  if (partial.tlb !== undefined && (partial.tlb === null || typeof partial.tlb !== 'object')) {
    throw new ConfigError('cpu.tlb', `expected an object of TLB sizes, got ${String(partial.tlb)}`);
  }
  const known = new Set<string>([...BOOLEAN_FEATURES, 'maxphyaddr', 'dirty_on_readonly', 'tlb']);
  for (const key of Object.keys(partial)) {
    if (!known.has(key)) throw new ConfigError(`cpu.${key}`, `unknown CPU option; expected one of ${[...known].join(', ')}`);
  }
  const m: CpuModel = { ...DEFAULT_CPU_MODEL, ...partial, tlb: { ...DEFAULT_TLB_GEOMETRY, ...(partial.tlb ?? {}) } };
  for (const f of BOOLEAN_FEATURES) {
    if (typeof m[f] !== 'boolean') throw new ConfigError(`cpu.${f}`, `expected true or false, got ${JSON.stringify(m[f])}`);
  }
  if (!Number.isInteger(m.maxphyaddr) || m.maxphyaddr < 36 || m.maxphyaddr > 52) {
    throw new ConfigError('cpu.maxphyaddr', `expected an integer from 36 to 52, got ${JSON.stringify(m.maxphyaddr)}`);
  }
  if (m.dirty_on_readonly !== 'strict' && m.dirty_on_readonly !== 'legacy') {
    throw new ConfigError('cpu.dirty_on_readonly', `expected "strict" or "legacy", got ${JSON.stringify(m.dirty_on_readonly)}`);
  }
  if (m.shstk && m.dirty_on_readonly === 'legacy') {
    throw new ConfigError('cpu.dirty_on_readonly', 'a CPU with shadow stacks (shstk) sets D only on writable entries: it cannot be "legacy"');
  }
  if (m.invpcid && !m.pcid) throw new ConfigError('cpu.invpcid', 'INVPCID without PCID is not a real CPU; set pcid: true or invpcid: false');
  if (m.pks && !m.pku) throw new ConfigError('cpu.pks', 'every CPU with PKS also has PKU; set pku: true');
  // arch/x86/kernel/cpu/cpuid-deps.c: PKU needs XSAVE (PKRU is XSAVE component 9), SHSTK needs XSAVES.
  if (m.pku && !m.xsave) throw new ConfigError('cpu.xsave', 'every CPU with PKU also has XSAVE (PKRU is XSAVE state); set pku: false too');
  if (m.shstk && !m.xsave) throw new ConfigError('cpu.xsave', 'every CPU with shadow stacks also has XSAVES (the CET state is XSAVE state); set shstk: false too');
  return m;
}
