/**
 * arch_prctl (arch/x86/kernel/process_64.c do_arch_prctl_64, process.c do_arch_prctl_common,
 * 6.12) and the FS and GS bases of a thread: ARCH_SET_FS, ARCH_SET_GS (the selector zeroed,
 * the base written; -EPERM at or above TASK_SIZE_MAX), ARCH_GET_FS, ARCH_GET_GS (put_user of
 * the base: -EFAULT), the shadow-stack options (shstk.ts), ARCH_GET_CPUID and ARCH_SET_CPUID
 * with CPUID faulting (TIF_NOCPUID; -ENODEV on a CPU without `cpuid_faulting`), the XSAVE
 * permission questions ARCH_*_XCOMP_* (fpu_xstate_prctl), and everything else -EINVAL. Also
 * set_new_tls for CLONE_SETTLS.
 *
 * XXX: ARCH_MAP_VDSO_X32, _32 and _64 give -EINVAL: the model has no vDSO, where 6.12 with
 * CONFIG_CHECKPOINT_RESTORE maps one (its size) or says -EEXIST. The LAM options
 * (ARCH_GET_UNTAG_MASK, ARCH_ENABLE_TAGGED_ADDR, ARCH_GET_MAX_TAG_BITS, ARCH_FORCE_TAGGED_SVA)
 * are -EINVAL as in a 6.12 built without CONFIG_ADDRESS_MASKING (its default while
 * CPU_MITIGATIONS is on, Debian's; host-checked for ARCH_GET_UNTAG_MASK).
 */
import {
  MISC_FEATURES_CPUID_FAULT, MSR_FS_BASE, MSR_KERNEL_GS_BASE, MSR_MISC_FEATURES_ENABLES, XFEATURE_MASK_PKRU, XFEATURE_MASK_SSE, XFEATURE_MASK_X87,
} from '../hw/regs.js';
import { SREG_FS, SREG_GS } from '../hw/segment.js';
import type { Kernel, PerCpu } from './kernel.js';
import { arch_get_nopti, arch_set_nopti } from './nopti.js';
import { shstk_prctl } from './shstk.js';
import type { KPath } from './steps.js';
import type { Task } from './task.js';
import { put_user_u64 } from './uaccess.js';
import {
  ARCH_GET_CPUID, ARCH_GET_FS, ARCH_GET_GS, ARCH_GET_NOPTI, ARCH_GET_XCOMP_GUEST_PERM, ARCH_GET_XCOMP_PERM, ARCH_GET_XCOMP_SUPP, ARCH_REQ_XCOMP_GUEST_PERM,
  ARCH_REQ_XCOMP_PERM, ARCH_SET_CPUID, ARCH_SET_FS, ARCH_SET_GS, ARCH_SET_NOPTI, ARCH_SHSTK_DISABLE, ARCH_SHSTK_ENABLE,
  ARCH_SHSTK_LOCK, ARCH_SHSTK_STATUS, ARCH_SHSTK_UNLOCK, EINVAL, ENODEV, EOPNOTSUPP, EPERM,
} from './uapi.js';

/** TASK_SIZE_MAX: (1 << __VIRTUAL_MASK_SHIFT) - PAGE_SIZE, 47 bits or 56 with 5-level paging. */
export function task_size_max(k: Kernel): bigint {
  return (1n << (k.levels === 5 ? 56n : 47n)) - 4096n;
}

/** x86_fsbase_read_task / x86_gsbase_read_task for the current task: the CPU's base (RDFSBASE, or the MSR). */
function base_read_cpu(pc: PerCpu, sreg: number): bigint {
  return pc.cpu.seg[sreg].base;
}

/**
 * ARCH_SET_FS / ARCH_SET_GS on `task`: -EPERM at or above TASK_SIZE_MAX; for the current task
 * loadseg(FS or GS, 0) and the base MSR written (x86_fsbase_write_cpu,
 * x86_gsbase_write_cpu_inactive), else (a new thread: set_new_tls; a tracee: PTRACE_ARCH_PRCTL)
 * the index zeroed and the thread's base set.
 */
export function arch_set_base(k: Kernel, pc: PerCpu | null, task: Task, sreg: number, arg2: bigint): number {
  if (arg2 >= task_size_max(k)) return -EPERM;
  if (pc) {
    pc.cpu.movToSreg(sreg, 0);
    pc.cpu.wrmsr(sreg === SREG_FS ? MSR_FS_BASE : MSR_KERNEL_GS_BASE, arg2);
    if (sreg === SREG_FS) task.fsbase = arg2;
    else task.gsbase = arg2;
  } else if (sreg === SREG_FS) {
    task.fsindex = 0;
    task.fsbase = arg2;
  } else {
    task.gsindex = 0;
    task.gsbase = arg2;
  }
  return 0;
}

/** set_new_tls (copy_thread with CLONE_SETTLS, 64-bit): ARCH_SET_FS on the new thread. 0 or -EPERM. */
export function set_new_tls(k: Kernel, p: Task, tls: bigint): number {
  return arch_set_base(k, null, p, SREG_FS, tls);
}

/** do_arch_prctl_64 for the current task `t`. */
function* do_arch_prctl_64(k: Kernel, pc: PerCpu, t: Task, option: number, arg2: bigint): KPath {
  switch (option) {
    case ARCH_SET_GS:
      return arch_set_base(k, pc, t, SREG_GS, arg2);
    case ARCH_SET_FS:
      return arch_set_base(k, pc, t, SREG_FS, arg2);
    case ARCH_GET_FS:
    case ARCH_GET_GS:
      return yield* put_user_u64(k, pc, t, arg2, base_read_cpu(pc, option === ARCH_GET_FS ? SREG_FS : SREG_GS));
    case ARCH_SHSTK_ENABLE:
    case ARCH_SHSTK_DISABLE:
    case ARCH_SHSTK_LOCK:
    case ARCH_SHSTK_UNLOCK:
    case ARCH_SHSTK_STATUS: {
      const r = shstk_prctl(k, pc, t, option, arg2);
      return typeof r === 'number' ? r : yield* r;
    }
    case ARCH_GET_NOPTI:
      return arch_get_nopti(k, t);
    case ARCH_SET_NOPTI: {
      const r = arch_set_nopti(k, pc, t, arg2);
      return typeof r === 'number' ? r : yield* r;
    }
    default:
      return -EINVAL;
  }
}

/**
 * set_cpuid_faulting (process.c): this CPU's MSR_MISC_FEATURES_ENABLES, through its shadow,
 * with CPUID_FAULT set or cleared.
 */
export function set_cpuid_faulting(pc: PerCpu, on: boolean): void {
  let msrval = pc.msr_misc_features_shadow & ~MISC_FEATURES_CPUID_FAULT;
  if (on) msrval |= MISC_FEATURES_CPUID_FAULT;
  pc.msr_misc_features_shadow = msrval;
  pc.cpu.wrmsr(MSR_MISC_FEATURES_ENABLES, BigInt(msrval));
}

/** disable_cpuid: sets TIF_NOCPUID and turns faulting on, if the flag was clear. */
function disable_cpuid(pc: PerCpu, t: Task): void {
  if (t.tif_nocpuid) return;
  t.tif_nocpuid = true;
  set_cpuid_faulting(pc, true);
}

/** enable_cpuid (also arch_setup_new_exec's): clears TIF_NOCPUID and turns faulting off, if the flag was set. */
export function enable_cpuid(pc: PerCpu, t: Task): void {
  if (!t.tif_nocpuid) return;
  t.tif_nocpuid = false;
  set_cpuid_faulting(pc, false);
}

/**
 * do_arch_prctl_common (process.c): ARCH_GET_CPUID (get_cpuid_mode: 0 while TIF_NOCPUID, else
 * 1), ARCH_SET_CPUID (set_cpuid_mode: -ENODEV without X86_FEATURE_CPUID_FAULT, else
 * enable_cpuid for a non-zero arg2, disable_cpuid for 0), the XCOMP options (fpu_xstate_prctl),
 * else -EINVAL.
 */
function do_arch_prctl_common(k: Kernel, pc: PerCpu, t: Task, option: number, arg2: bigint): number | KPath {
  switch (option) {
    case ARCH_GET_CPUID:
      return t.tif_nocpuid ? 0 : 1;
    case ARCH_SET_CPUID:
      if (!k.cpuid_fault) return -ENODEV;
      if (arg2 !== 0n) enable_cpuid(pc, t);
      else disable_cpuid(pc, t);
      return 0;
    case ARCH_GET_XCOMP_SUPP:
    case ARCH_GET_XCOMP_PERM:
    case ARCH_REQ_XCOMP_PERM:
    case ARCH_GET_XCOMP_GUEST_PERM:
    case ARCH_REQ_XCOMP_GUEST_PERM:
      return fpu_xstate_prctl(k, pc, t, option, arg2);
    default:
      return -EINVAL;
  }
}

/** XFEATURE_MAX (asm/fpu/types.h, 6.12): XTILE_DATA (18) is the last component. */
const XFEATURE_MAX = 19;
/** XFEATURE_MASK_USER_SUPPORTED: FP, SSE, YMM, OPMASK, ZMM_Hi256, Hi16_ZMM, PKRU, BNDREGS, BNDCSR, XTILE_CFG, XTILE_DATA. */
const XFEATURE_MASK_USER_SUPPORTED = 0x602ffn;

/**
 * fpu_xstate_prctl (arch/x86/kernel/fpu/xstate.c, 6.12). ARCH_GET_XCOMP_SUPP: put_user of
 * fpu_user_cfg.max_features | legacy_features: XCR0's user components (x87, SSE, PKRU with
 * OSPKE), or x87 and SSE (FXSR's legacy features) without XSAVE. ARCH_GET_XCOMP_PERM and
 * _GUEST_PERM: the group's permissions, which start as fpu_kernel_cfg.default_features (the
 * same components, none without XSAVE; the model has no dynamic one, so they never grow),
 * masked with XFEATURE_MASK_USER_SUPPORTED. ARCH_REQ_XCOMP_PERM and _GUEST_PERM (xstate_request_perm):
 * -EINVAL for a component number >= XFEATURE_MAX, else -EOPNOTSUPP, as xstate_prctl_req names
 * only XTILE_DATA and the model's CPUs have no AMX.
 */
function fpu_xstate_prctl(k: Kernel, pc: PerCpu, t: Task, option: number, arg2: bigint): number | KPath {
  // fpu_user_cfg.max_features, and fpu_kernel_cfg.default_features (the permissions' start):
  // XCR0's user components with XSAVE; 0 without (only the legacy FXSR size is set up).
  const features = k.machine.model.xsave ? BigInt(xcr0_user(k)) : 0n;
  switch (option) {
    case ARCH_GET_XCOMP_SUPP:
      return put_user_u64(k, pc, t, arg2, features | BigInt(XFEATURE_MASK_X87 | XFEATURE_MASK_SSE));
    case ARCH_GET_XCOMP_PERM:
    case ARCH_GET_XCOMP_GUEST_PERM:
      return put_user_u64(k, pc, t, arg2, features & XFEATURE_MASK_USER_SUPPORTED);
    default:
      return arg2 >= BigInt(XFEATURE_MAX) ? -EINVAL : -EOPNOTSUPP;
  }
}

/** The user components the kernel put in XCR0 (fpu__init_cpu_xstate): x87, SSE, and PKRU with OSPKE. */
function xcr0_user(k: Kernel): number {
  return XFEATURE_MASK_X87 | XFEATURE_MASK_SSE | (k.ospke ? XFEATURE_MASK_PKRU : 0);
}

/**
 * arch_prctl(option, arg2): do_arch_prctl_64, and when that says -EINVAL,
 * do_arch_prctl_common. The per-process PTI options (kernel option `pti_per_process`,
 * nopti.ts) are isolab's, not upstream's.
 */
export function* sys_arch_prctl(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  const option = Number(BigInt.asIntN(32, a[0]));
  let ret = yield* do_arch_prctl_64(k, pc, t, option, a[1]);
  if (ret === -EINVAL) {
    const r = do_arch_prctl_common(k, pc, t, option, a[1]);
    ret = typeof r === 'number' ? r : yield* r;
  }
  return ret;
}
