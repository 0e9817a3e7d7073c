/**
 * The alternate signal stack (kernel/signal.c do_sigaltstack, sys_sigaltstack,
 * restore_altstack; include/linux/sched/signal.h on_sig_stack, sas_ss_flags, sas_ss_reset;
 * arch/x86/kernel/signal.c sigaltstack_size_valid; Linux 6.12): the thread's sas_ss_sp,
 * sas_ss_size and sas_ss_flags (task.ts), which get_sigframe (signal.ts) switches to for a
 * handler with SA_ONSTACK.
 *
 * The fields are the thread's own: only the thread itself changes them (sigaltstack, signal
 * delivery's SS_AUTODISARM, rt_sigreturn, execve), and a new task gets them from its creator
 * (fork.ts), so no step here needs a lock. The model's stack pointers are below 2^53, but a
 * user's ss_sp and ss_size are any 64-bit value: the fields are bigints and the sums wrap at
 * 2^64 as unsigned long does.
 */
import type { Kernel, PerCpu } from './kernel.js';
import type { KPath, KSteps } from './steps.js';
import type { Task } from './task.js';
import { copy_from_user, copy_to_user, getU64, putU32, putU64 } from './uaccess.js';
import { EFAULT, EINVAL, ENOMEM, EPERM, MINSIGSTKSZ, SS_AUTODISARM, SS_DISABLE, SS_FLAG_BITS, SS_ONSTACK } from './uapi.js';

/** stack_t on x86-64 (include/uapi/asm-generic/signal.h): ss_sp 0, ss_flags 8 (int), ss_size 16. */
export const STACK_T_SIZE = 24;

/** A stack_t's fields: ss_flags as the unsigned int the kernel keeps. */
export interface StackT {
  ss_sp: bigint;
  ss_flags: number;
  ss_size: bigint;
}

/** The stack_t in `b` at `off` (a user copy). */
export function stack_t_from(b: Uint8Array, off = 0): StackT {
  return { ss_sp: getU64(b, off), ss_flags: Number(getU64(b, off + 8) & 0xffffffffn), ss_size: getU64(b, off + 16) };
}

/** The bytes of `ss` as user space reads a stack_t (the padding after ss_flags zero, as do_sigaltstack's memset leaves it). */
export function stack_t_bytes(ss: StackT): Uint8Array {
  const b = new Uint8Array(STACK_T_SIZE);
  putU64(b, 0, ss.ss_sp);
  putU32(b, 8, ss.ss_flags);
  putU64(b, 16, ss.ss_size);
  return b;
}

/** __on_sig_stack: `sp` lies in (sas_ss_sp, sas_ss_sp + sas_ss_size], the stack growing down. */
export function __on_sig_stack(t: Task, sp: bigint): boolean {
  return sp > t.sas_ss_sp && sp - t.sas_ss_sp <= t.sas_ss_size;
}

/**
 * on_sig_stack: the thread runs on its alternate stack. Never with SS_AUTODISARM: a stack
 * armed that way cannot be the one in use (unless user code armed it while on it), and a
 * corrupt sp near its top then still gets its signal handled.
 */
export function on_sig_stack(t: Task, sp: bigint): boolean {
  if (t.sas_ss_flags & SS_AUTODISARM) return false;
  return __on_sig_stack(t, sp);
}

/** sas_ss_flags: SS_DISABLE without an alternate stack (size 0), else SS_ONSTACK when on it, else 0. */
export function sas_ss_flags(t: Task, sp: bigint): number {
  if (t.sas_ss_size === 0n) return SS_DISABLE;
  return on_sig_stack(t, sp) ? SS_ONSTACK : 0;
}

/** sas_ss_reset: no alternate stack, flags SS_DISABLE (a CLONE_VM child, a delivery with SS_AUTODISARM). */
export function sas_ss_reset(t: Task): void {
  t.sas_ss_sp = 0n;
  t.sas_ss_size = 0n;
  t.sas_ss_flags = SS_DISABLE;
}

/**
 * sigaltstack_size_valid (arch/x86/kernel/signal.c, CONFIG_DYNAMIC_SIGFRAME): true whenever the
 * FPU state has no dynamically enabled features (AMX's XFD state, which the model's CPUs lack)
 * and the strict_sas_size boot parameter is off, its default: then only MINSIGSTKSZ bounds
 * ss_size, even though a frame with an XSAVE image needs more (get_sigframe's overflow check
 * catches that at delivery).
 */
function sigaltstack_size_valid(_ss_size: bigint): boolean {
  return true;
}

/**
 * do_sigaltstack (kernel/signal.c): fills `oss` (when given) with the stack as it is, its
 * flags sas_ss_flags(sp) plus the SS_AUTODISARM kept; then, with `ss`, in this order: -EPERM
 * while on the alternate stack, -EINVAL for a mode other than 0, SS_ONSTACK and SS_DISABLE
 * (SS_AUTODISARM aside), 0 at once when nothing changes, SS_DISABLE clears sp and size, else
 * -ENOMEM for a size below `min_ss_size` or one sigaltstack_size_valid refuses; on success the
 * three fields take the new values, ss_flags as given (SS_ONSTACK and SS_AUTODISARM included).
 * Does not touch user memory.
 */
export function do_sigaltstack(t: Task, ss: StackT | null, oss: StackT | null, sp: bigint, min_ss_size: number): number {
  if (oss) {
    oss.ss_sp = t.sas_ss_sp;
    oss.ss_size = t.sas_ss_size;
    oss.ss_flags = (sas_ss_flags(t, sp) | (t.sas_ss_flags & SS_FLAG_BITS)) >>> 0;
  }
  if (!ss) return 0;
  let ss_sp = ss.ss_sp;
  let ss_size = ss.ss_size;
  const ss_flags = ss.ss_flags >>> 0;
  if (on_sig_stack(t, sp)) return -EPERM;
  const ss_mode = (ss_flags & ~SS_FLAG_BITS) >>> 0;
  if (ss_mode !== SS_DISABLE && ss_mode !== SS_ONSTACK && ss_mode !== 0) return -EINVAL;
  // Return before taking any locks if no actual sigaltstack change was requested.
  if (t.sas_ss_sp === ss_sp && t.sas_ss_size === ss_size && t.sas_ss_flags === ss_flags) return 0;
  let ret = 0;
  if (ss_mode === SS_DISABLE) {
    ss_size = 0n;
    ss_sp = 0n;
  } else {
    if (ss_size < BigInt(min_ss_size)) ret = -ENOMEM;
    if (!sigaltstack_size_valid(ss_size)) ret = -ENOMEM;
  }
  if (ret === 0) {
    t.sas_ss_sp = ss_sp;
    t.sas_ss_size = ss_size;
    t.sas_ss_flags = ss_flags;
  }
  return ret;
}

/**
 * sigaltstack(uss, uoss): -EFAULT when uss cannot be read (nothing changed); do_sigaltstack at
 * the caller's stack pointer with MINSIGSTKSZ; then, if that succeeded, the old stack to uoss,
 * -EFAULT when it cannot be written (the new stack stays set).
 */
export function* sys_sigaltstack(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  const uss = a[0];
  const uoss = a[1];
  let ss: StackT | null = null;
  if (uss !== 0n) {
    const b = yield* copy_from_user(k, pc, t, uss, STACK_T_SIZE);
    if (!b) return -EFAULT;
    ss = stack_t_from(b);
  }
  const old: StackT = { ss_sp: 0n, ss_flags: 0, ss_size: 0n };
  const err = do_sigaltstack(t, ss, uoss !== 0n ? old : null, BigInt(t.sp), MINSIGSTKSZ);
  if (err === 0 && uoss !== 0n && !(yield* copy_to_user(k, pc, t, uoss, stack_t_bytes(old)))) return -EFAULT;
  return err;
}

/**
 * restore_altstack (kernel/signal.c), from rt_sigreturn: reads the frame's uc_stack at `uss`
 * and gives it to do_sigaltstack at `sp`, the stack pointer rt_sigreturn was entered with (6.12
 * calls it before restore_sigcontext). Only the read can fail (false: a bad frame);
 * do_sigaltstack's errors are squashed: a handler returning on an alternate stack that is not
 * disarmed gets -EPERM and changes nothing, one whose stack SS_AUTODISARM disarmed has it put
 * back (host-checked on 6.18: a stack the handler set around its own stack pointer stays).
 */
export function* restore_altstack(k: Kernel, pc: PerCpu, t: Task, uss: bigint, sp: bigint): KSteps<boolean> {
  const b = yield* copy_from_user(k, pc, t, uss, STACK_T_SIZE);
  if (!b) return false;
  do_sigaltstack(t, stack_t_from(b), null, sp, MINSIGSTKSZ);
  return true;
}
