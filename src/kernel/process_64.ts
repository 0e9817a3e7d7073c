/**
 * arch_prctl (arch/x86/kernel/process_64.c do_arch_prctl_64, process.c do_arch_prctl_common,
 * 6.12) and the FS and GS bases of a thread: ARCH_SET_FS, ARCH_SET_GS (the selector zeroed,
 * the base written; -EPERM at or above TASK_SIZE_MAX), ARCH_GET_FS, ARCH_GET_GS (put_user of
 * the base: -EFAULT), the shadow-stack options (shstk.ts), ARCH_GET_CPUID (1) and
 * ARCH_SET_CPUID (-ENODEV: the model's CPUs have no CPUID faulting), and everything else
 * -EINVAL. Also set_new_tls for CLONE_SETTLS.
 *
 * XXX: ARCH_MAP_VDSO_* (the model has no vDSO) and ARCH_*_XCOMP_* (no XSAVE feature
 * permissions) give -EINVAL, where 6.12 maps a vDSO (or -EEXIST) and answers the xstate
 * questions; the LAM options are -EINVAL as in a 6.12 built without CONFIG_ADDRESS_MASKING
 * (its default while CPU_MITIGATIONS is on).
 */
import { MSR_FS_BASE, MSR_KERNEL_GS_BASE } from '../hw/regs.js';
import { SREG_FS, SREG_GS } from '../hw/segment.js';
import type { Kernel, PerCpu } from './kernel.js';
import { arch_get_nopti, arch_set_nopti } from './nopti.js';
import { shstk_prctl } from './shstk.js';
import type { KPath } from './steps.js';
import type { Task } from './task.js';
import { copy_to_user } from './uaccess.js';
import {
  ARCH_GET_CPUID, ARCH_GET_FS, ARCH_GET_GS, ARCH_GET_NOPTI, ARCH_SET_CPUID, ARCH_SET_FS, ARCH_SET_GS, ARCH_SET_NOPTI, ARCH_SHSTK_DISABLE, ARCH_SHSTK_ENABLE,
  ARCH_SHSTK_LOCK, ARCH_SHSTK_STATUS, ARCH_SHSTK_UNLOCK, EFAULT, EINVAL, ENODEV, EPERM,
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
 * x86_gsbase_write_cpu_inactive), else (a new thread: set_new_tls) the index zeroed and the
 * thread's base set.
 */
function arch_set_base(k: Kernel, pc: PerCpu | null, task: Task, sreg: number, arg2: bigint): number {
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
    case ARCH_GET_GS: {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigUint64(0, base_read_cpu(pc, option === ARCH_GET_FS ? SREG_FS : SREG_GS), true);
      return (yield* copy_to_user(k, pc, t, arg2, b)) ? 0 : -EFAULT;
    }
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

/** do_arch_prctl_common: ARCH_GET_CPUID (get_cpuid_mode: 1, CPUID not faulting), ARCH_SET_CPUID (-ENODEV without X86_FEATURE_CPUID_FAULT). */
function do_arch_prctl_common(option: number): number {
  if (option === ARCH_GET_CPUID) return 1;
  if (option === ARCH_SET_CPUID) return -ENODEV;
  return -EINVAL;
}

/**
 * arch_prctl(option, arg2): do_arch_prctl_64, and when that says -EINVAL,
 * do_arch_prctl_common. The per-process PTI options (kernel option `pti_per_process`,
 * nopti.ts) are isolab's, not upstream's.
 */
export function* sys_arch_prctl(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  const option = Number(BigInt.asIntN(32, a[0]));
  let ret = yield* do_arch_prctl_64(k, pc, t, option, a[1]);
  if (ret === -EINVAL) ret = do_arch_prctl_common(option);
  return ret;
}
