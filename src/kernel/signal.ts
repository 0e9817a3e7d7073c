/**
 * Signals (kernel/signal.c, arch/x86/kernel/signal.c and signal_64.c): sending and queueing,
 * forced fault signals, the choice of the next signal to deliver, default actions, the
 * x86-64 rt_sigframe written on the user stack, and rt_sigreturn.
 *
 * XXX: stop signals (SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU) and SIGCONT are queued and reported,
 * but stopping and continuing are not modelled; sigaltstack and core dumps are not modelled
 * (RLIMIT_CORE is 0, so a core signal's wait status has no 0x80).
 */
import type { Kernel, PerCpu } from './kernel.js';
import { wake_up_process } from './sched.js';
import type { KPath, KSteps } from './steps.js';
import type { KSigaction, SigInfo, SigPending, Task } from './task.js';
import {
  NSIG, SA_NODEFER, SA_RESETHAND, SA_RESTART, SA_RESTORER, SI_KERNEL, SIG_DFL, SIG_IGN, SIGBUS, SIGCHLD, SIGCONT, SIGFPE, SIGILL, SIGKILL,
  SEGV_PKUERR, SIGQUIT, SIGSEGV, SIGSTOP, SIGSYS, SIGTRAP, SIGTSTP, SIGTTIN, SIGTTOU, SIGURG, SIGWINCH, SIGABRT, SIGXCPU, SIGXFSZ, EINTR,
} from './uapi.js';
import { copy_from_user, copy_to_user, getU64, putU16, putU32, putU64 } from './uaccess.js';
import { OP_BYTES } from '../user/program.js';
import { restore_signal_shadow_stack, setup_signal_shadow_stack } from './shstk.js';

/** -ERESTARTSYS: a sleeping syscall was interrupted; restarted unless a handler without SA_RESTART runs. */
export const ERESTARTSYS = 512;

export function sigmask(sig: number): bigint {
  return 1n << BigInt(sig - 1);
}
/** SIGKILL and SIGSTOP can be neither blocked nor caught. */
export const SIG_KERNEL_ONLY_MASK = sigmask(SIGKILL) | sigmask(SIGSTOP);
const SIG_KERNEL_IGNORE_MASK = sigmask(SIGCONT) | sigmask(SIGCHLD) | sigmask(SIGWINCH) | sigmask(SIGURG);
const SIG_KERNEL_STOP_MASK = sigmask(SIGSTOP) | sigmask(SIGTSTP) | sigmask(SIGTTIN) | sigmask(SIGTTOU);
const SIG_KERNEL_COREDUMP_MASK =
  sigmask(SIGQUIT) | sigmask(SIGILL) | sigmask(SIGTRAP) | sigmask(SIGABRT) | sigmask(SIGFPE) | sigmask(SIGSEGV) | sigmask(SIGBUS) | sigmask(SIGSYS) | sigmask(SIGXCPU) | sigmask(SIGXFSZ);
/** SYNCHRONOUS_MASK: fault signals, delivered before any other. */
const SYNCHRONOUS_MASK = sigmask(SIGSEGV) | sigmask(SIGBUS) | sigmask(SIGILL) | sigmask(SIGTRAP) | sigmask(SIGFPE) | sigmask(SIGSYS);
const SIGRTMIN = 32;

export function valid_signal(sig: number): boolean {
  return sig >= 0 && sig <= NSIG;
}
function inMask(sig: number, mask: bigint): boolean {
  return sig >= 1 && sig <= NSIG && (mask & sigmask(sig)) !== 0n;
}
export function sig_kernel_ignore(sig: number): boolean {
  return inMask(sig, SIG_KERNEL_IGNORE_MASK);
}

/** recalc_sigpending for `t`: whether an unblocked signal is pending (TIF_SIGPENDING), or the group is exiting. */
export function signal_pending(t: Task): boolean {
  if (t.group.groupExit) return true;
  const pending = t.pending.signal;
  const shared = t.group.shared_pending.signal;
  // Nothing queued (the common case, every return to user mode): no mask arithmetic.
  if (pending === 0n && shared === 0n) return false;
  return ((pending | shared) & ~t.blocked) !== 0n;
}

const SIGKILL_MASK = sigmask(SIGKILL);

/** __fatal_signal_pending: SIGKILL is in the task's own pending set. */
export function __fatal_signal_pending(t: Task): boolean {
  const pending = t.pending.signal;
  return pending !== 0n && (pending & SIGKILL_MASK) !== 0n;
}

/**
 * set_current_blocked (kernel/signal.c): `t`'s signal mask becomes `mask` without SIGKILL and
 * SIGSTOP, which cannot be blocked. Does not deliver anything that became unblocked: that
 * happens at the next exit to user mode or instruction boundary.
 */
export function set_current_blocked(t: Task, mask: bigint): void {
  t.blocked = mask & ~SIG_KERNEL_ONLY_MASK;
}

/** sig_handler_ignored: the disposition ignores the signal (SIG_IGN, or SIG_DFL whose default is to ignore). */
function sig_handler_ignored(ka: KSigaction, sig: number): boolean {
  return ka.handler === SIG_IGN || (ka.handler === SIG_DFL && sig_kernel_ignore(sig));
}

/** sig_fatal: the default action kills and the handler is SIG_DFL. */
function sig_fatal(t: Task, sig: number): boolean {
  return !inMask(sig, SIG_KERNEL_IGNORE_MASK | SIG_KERNEL_STOP_MASK) && t.sighand.action[sig].handler === SIG_DFL;
}

/**
 * send_signal_locked: queues `info` for `t` (its own pending set, or its thread group's when
 * `group`). An ignored, unblocked signal is dropped (prepare_signal); a standard signal
 * already pending is not queued twice (legacy_queue). complete_signal then picks a thread
 * that does not block it: a fatal, non-core signal starts a group exit at once (every thread
 * gets SIGKILL); otherwise the chosen thread is woken if it sleeps.
 */
export function send_signal(k: Kernel, t: Task, info: SigInfo, group: boolean): void {
  const sig = info.signo;
  if (t.group.groupExit && sig !== SIGKILL) return;
  if (t.state === 'zombie' || t.state === 'dead') return;
  const blocked = (t.blocked & sigmask(sig)) !== 0n;
  if (!blocked && sig !== SIGKILL && sig_handler_ignored(t.sighand.action[sig], sig)) return;
  const pending: SigPending = group ? t.group.shared_pending : t.pending;
  if (sig < SIGRTMIN && (pending.signal & sigmask(sig)) !== 0n) return;
  pending.signal |= sigmask(sig);
  pending.list.push(info);
  complete_signal(k, t, sig, group);
}

function complete_signal(k: Kernel, p: Task, sig: number, group: boolean): void {
  let target: Task | null = null;
  const wants = (t: Task): boolean => (t.blocked & sigmask(sig)) === 0n && t.state !== 'zombie' && t.state !== 'dead';
  if (wants(p)) target = p;
  else if (group) target = p.group.threads.find(wants) ?? null;
  if (!target) return;
  if (sig_fatal(target, sig) && !target.group.groupExit && !inMask(sig, SIG_KERNEL_COREDUMP_MASK)) {
    const g = target.group;
    g.groupExit = true;
    g.group_exit_code = sig;
    for (const th of g.threads) {
      th.pending.signal |= sigmask(SIGKILL);
      signal_wake_up(k, th, true);
    }
    return;
  }
  signal_wake_up(k, target, sig === SIGKILL);
}

/** signal_wake_up: a sleeping task wakes to handle its signal (interruptible sleeps; killable ones only for a fatal signal). */
export function signal_wake_up(k: Kernel, t: Task, fatal: boolean): void {
  if (t.state !== 'sleeping') return;
  if (t.sleepKillableOnly && !fatal) return;
  wake_up_process(k, t);
}

/**
 * force_sig_info_to_task: a signal the task cannot refuse (a fault). If it is blocked or
 * ignored, it is unblocked and its handler reset to SIG_DFL, so it kills the process.
 */
export function force_sig_info(k: Kernel, t: Task, info: SigInfo): void {
  const sig = info.signo;
  const ka = t.sighand.action[sig];
  const blocked = (t.blocked & sigmask(sig)) !== 0n;
  if (blocked || ka.handler === SIG_IGN) {
    ka.handler = SIG_DFL;
    if (blocked) t.blocked &= ~sigmask(sig);
  }
  send_signal(k, t, info, false);
}

/** force_sig_fault: a fault signal with si_code and si_addr (recorded as the interrupted operation's result). */
export function force_sig_fault(k: Kernel, t: Task, sig: number, code: number, addr: bigint, pkey = 0): void {
  const info: SigInfo = { signo: sig, code, addr, pid: 0, pkey };
  k.recordOp(t, undefined, info);
  force_sig_info(k, t, info);
}

/** force_sig: a forced signal with si_code SI_KERNEL (e.g. #GP, a bad signal frame). */
export function force_sig(k: Kernel, t: Task, sig: number): void {
  const info: SigInfo = { signo: sig, code: SI_KERNEL, addr: 0n, pid: 0, pkey: 0 };
  if (sig !== SIGKILL) k.recordOp(t, undefined, info);
  force_sig_info(k, t, info);
}

/** dequeue_signal: the next signal to deliver (synchronous ones first, then the lowest number; the thread's own before the group's), removed from its queue. */
function dequeue_signal(t: Task): SigInfo | null {
  const take = (p: SigPending): SigInfo | null => {
    let x = p.signal & ~t.blocked;
    if (x === 0n) return null;
    if (x & SYNCHRONOUS_MASK) x &= SYNCHRONOUS_MASK;
    let sig = 1;
    while (!(x & sigmask(sig))) sig++;
    const i = p.list.findIndex((s) => s.signo === sig);
    const info = i >= 0 ? p.list.splice(i, 1)[0] : { signo: sig, code: SI_KERNEL, addr: 0n, pid: 0, pkey: 0 };
    if (!p.list.some((s) => s.signo === sig)) p.signal &= ~sigmask(sig);
    return info;
  };
  return take(t.pending) ?? take(t.group.shared_pending);
}

/** The ucontext's uc_flags and uc_stack (stack_t: ss_sp, ss_flags, ss_size), after pretcode. */
const UC_FLAGS = 8;
const UC_STACK_SS_SP = 24;
const UC_STACK_SS_FLAGS = 32;
const UC_STACK_SS_SIZE = 40;
/** uc_flags (arch/x86/include/uapi/asm/ucontext.h): the frame has an XSAVE image; sc.ss is meaningful; rt_sigreturn restores ss as saved. */
const UC_FP_XSTATE = 0x1;
const UC_SIGCONTEXT_SS = 0x2;
const UC_STRICT_RESTORE_SS = 0x4;
/** __USER_CS and __USER_DS (arch/x86/include/asm/segment.h): GDT entries 6 and 5, RPL 3. */
const USER_CS = 0x33;
const USER_DS = 0x2b;
/** X86_EFLAGS_IF | X86_EFLAGS_FIXED: what the model's user RFLAGS hold (no arithmetic flags are modelled). */
const USER_EFLAGS = 0x202;

/**
 * force_valid_ss (signal_64.c): keeps regs->ss only if LAR says it is a present DPL-3
 * read-write data segment, expand-down or not (VERW would not check P); else __USER_DS.
 * LAR runs in the kernel, at CPL 0.
 */
function force_valid_ss(pc: PerCpu, t: Task): void {
  let ar = pc.cpu.lar(t.ss);
  if (ar < 0) {
    pc.cpu.clearFault();
    ar = 0;
  }
  // AR_DPL_MASK | AR_S | AR_P | AR_TYPE_MASK; AR_DPL3 | AR_S | AR_P with AR_TYPE_RWDATA or AR_TYPE_RWDATA_EXPDOWN.
  ar &= (3 << 13) | (1 << 12) | (1 << 15) | (7 << 9);
  const ok = (3 << 13) | (1 << 12) | (1 << 15);
  if (ar !== (ok | (1 << 9)) && ar !== (ok | (3 << 9))) t.ss = USER_DS;
}

/** sizeof(struct rt_sigframe) on x86-64: pretcode 8 + ucontext 304 + siginfo 128. */
export const RT_SIGFRAME_SIZE = 440;
/** Offsets in the frame (arch/x86/include/asm/sigframe.h, uapi/asm/sigcontext.h). */
export const UC_MCONTEXT = 48;
const SC_RAX = UC_MCONTEXT + 13 * 8;
export const SC_RSP = UC_MCONTEXT + 15 * 8;
export const SC_RIP = UC_MCONTEXT + 16 * 8;
const SC_EFLAGS = UC_MCONTEXT + 17 * 8;
/** cs, gs, fs and ss: four u16 in one word. */
const SC_CS = UC_MCONTEXT + 18 * 8;
const SC_SS = SC_CS + 6;
const SC_ERR = UC_MCONTEXT + 19 * 8;
const SC_TRAPNO = UC_MCONTEXT + 20 * 8;
const SC_OLDMASK = UC_MCONTEXT + 21 * 8;
const SC_CR2 = UC_MCONTEXT + 22 * 8;
const SC_FPSTATE = UC_MCONTEXT + 23 * 8;
export const UC_SIGMASK = 304;
const SIGINFO = 312;
/** Offset of PKRU in the standard-format XSAVE area (XFEATURE_PKRU, component 9). */
export const XSAVE_PKRU = 2688;
/** struct _fpx_sw_bytes in the FXSAVE area's software-reserved bytes (uapi/asm/sigcontext.h). */
const SW_MAGIC1 = 464;
const SW_EXTENDED_SIZE = 468;
const SW_XFEATURES = 472;
const SW_XSTATE_SIZE = 480;
/** The XSAVE header's XSTATE_BV. */
const XSAVE_XSTATE_BV = 512;
const FP_XSTATE_MAGIC1 = 0x46505853;
const FP_XSTATE_MAGIC2 = 0x46505845;
/** XFEATURE_MASK_FP | XFEATURE_MASK_SSE, and XFEATURE_MASK_PKRU. */
const XFEATURE_MASK_FPSSE = 0x3n;
const XFEATURE_MASK_PKRU = 0x200n;

/** fpu_user_cfg.max_size + FP_XSTATE_MAGIC2_SIZE: the XSAVE image the frame carries. */
function xstate_sigframe_size(k: Kernel): number {
  return (k.ospke ? XSAVE_PKRU + 8 : 832) + 4;
}

/**
 * The XSAVE image copy_fpstate_to_sigframe writes: the software bytes that mark an xstate
 * frame, and with OSPKE the PKRU component holding `pkru` with XSTATE_BV[PKRU] forced to 1
 * (update_pkru_in_sigframe). The FP and SSE registers are not modelled (zero).
 */
function xsave_sigframe(k: Kernel, pkru: number): Uint8Array {
  const size = xstate_sigframe_size(k);
  const fp = new Uint8Array(size);
  const dv = new DataView(fp.buffer);
  const xfeatures = XFEATURE_MASK_FPSSE | (k.ospke ? XFEATURE_MASK_PKRU : 0n);
  dv.setUint32(SW_MAGIC1, FP_XSTATE_MAGIC1, true);
  dv.setUint32(SW_EXTENDED_SIZE, size, true);
  dv.setBigUint64(SW_XFEATURES, xfeatures, true);
  dv.setUint32(SW_XSTATE_SIZE, size - 4, true);
  dv.setUint32(size - 4, FP_XSTATE_MAGIC2, true);
  if (k.ospke) {
    dv.setBigUint64(XSAVE_XSTATE_BV, XFEATURE_MASK_PKRU, true);
    dv.setUint32(XSAVE_PKRU, pkru >>> 0, true);
  }
  return fp;
}

/**
 * The PKRU a signal handler starts with, by the `pkru_on_signal` option: upstream
 * init_pkru_value (fpu__clear_user_states); clear 0; lockdown every key access- and
 * write-disabled except the mm's execute-only key, which keeps its access-disable; preserve
 * the interrupted value.
 */
function handler_pkru(k: Kernel, t: Task, interrupted: number): number {
  switch (k.options.pkru_on_signal) {
    case 'upstream':
      return k.options.init_pkru >>> 0;
    case 'clear':
      return 0;
    case 'lockdown': {
      const xo = t.mm ? t.mm.execute_only_pkey : -1;
      return xo > 0 ? ((0xffffffff & ~(0x3 << (2 * xo))) | (0x1 << (2 * xo))) >>> 0 : 0xffffffff;
    }
    case 'preserve':
      return interrupted >>> 0;
  }
}

/**
 * get_signal + handle_signal, run on the way back to user mode (a kernel path). Dequeues
 * signals until one needs action: a handler gets an rt_sigframe on the user stack (red zone
 * skipped, XSAVE image 64-byte aligned, frame 16-byte aligned minus 8) and runs next; a fatal
 * default action ends the thread group; ignored ones are dropped. Returns 1 if a handler was
 * set up or the task is exiting, 0 if nothing needed delivery.
 */
export function* get_signal(k: Kernel, pc: PerCpu, t: Task): KPath {
  for (;;) {
    // Already marked for death: a group exit, or another thread's exec (de_thread) killing
    // this one. exit_to_user_mode then exits (do_group_exit, which starts no group exit
    // while group_exec_task is set).
    if (t.group.groupExit || (t.group.group_exec_task && t.group.group_exec_task !== t)) return 1;
    const info = dequeue_signal(t);
    if (!info) return 0;
    const sig = info.signo;
    const ka = t.sighand.action[sig];
    if (ka.handler === SIG_IGN) continue;
    if (ka.handler !== SIG_DFL) {
      const ok = yield* setup_rt_frame(k, pc, t, info, ka);
      if (!ok) {
        // force_sigsegv: a frame that cannot be written kills with SIGSEGV.
        if (sig === SIGSEGV) ka.handler = SIG_DFL;
        force_sig(k, t, SIGSEGV);
        continue;
      }
      // signal_setup_done
      t.blocked |= ka.mask;
      if (!(ka.flags & SA_NODEFER)) t.blocked |= sigmask(sig);
      t.blocked &= ~SIG_KERNEL_ONLY_MASK;
      if (ka.flags & SA_RESETHAND) ka.handler = SIG_DFL;
      k.emitSignal(pc, t, info, 'handler');
      return 1;
    }
    if (sig_kernel_ignore(sig) || inMask(sig, SIG_KERNEL_STOP_MASK)) continue;
    k.emitSignal(pc, t, info, inMask(sig, SIG_KERNEL_COREDUMP_MASK) ? 'core' : 'terminate');
    // do_group_exit(sig): the status is the signal number (no core dump).
    t.group.groupExit = true;
    t.group.group_exit_code = sig;
    for (const th of t.group.threads) {
      if (th !== t) {
        th.pending.signal |= sigmask(SIGKILL);
        signal_wake_up(k, th, true);
      }
    }
    return 1;
  }
}

/**
 * x64_setup_rt_frame + signal_setup_done's FPU part: writes the XSAVE image, the shadow-stack
 * entries and the frame, points the task at the handler, and gives the handler its PKRU.
 * Upstream (6.12) the writes are made with PKRU 0, so a key on the stack cannot stop them; the
 * image holds the interrupted PKRU either way. False if the frame could not be written (or
 * there is no SA_RESTORER): with `upstream`, PKRU is put back only when the XSAVE copy failed,
 * as in 6.12.
 */
function* setup_rt_frame(k: Kernel, pc: PerCpu, t: Task, info: SigInfo, ka: KSigaction): KSteps<boolean> {
  if (!(ka.flags & SA_RESTORER)) return false;
  // A syscall interrupted with -ERESTARTSYS restarts after the handler only with SA_RESTART.
  if (t.restartPending) {
    t.restartPending = false;
    if (ka.flags & SA_RESTART) t.pc -= OP_BYTES;
    else k.completeSyscallResult(t, -EINTR);
  }
  const cpu = pc.cpu;
  const pkru = cpu.pkru;
  const permissive = k.ospke && k.options.pkru_on_signal === 'upstream';
  let sp = t.sp - 128;
  const fpSize = xstate_sigframe_size(k);
  const bufFx = Math.floor((sp - fpSize) / 64) * 64;
  sp = Math.floor((bufFx - RT_SIGFRAME_SIZE) / 16) * 16 - 8;
  // write_permissive_pkey_val: every key open while the kernel writes the frame.
  if (permissive) cpu.wrpkru(0);
  if (!(yield* copy_to_user(k, pc, t, BigInt(bufFx), xsave_sigframe(k, pkru)))) {
    if (permissive) cpu.wrpkru(pkru);
    return false;
  }
  if (!(yield* setup_signal_shadow_stack(k, pc, t, ka.restorer))) return false;
  const f = new Uint8Array(RT_SIGFRAME_SIZE);
  putU64(f, 0, ka.restorer);
  // x64_setup_rt_frame: frame_uc_flags (the model's CPUs have XSAVE; user code is 64-bit), no
  // uc_link, and unsafe_save_altstack's stack_t: the thread's sas_ss_sp, sas_ss_flags and
  // sas_ss_size as they are (not sas_ss_flags(sp)), all 0 for a thread that never set one
  // (XXX: no sigaltstack in the model).
  putU64(f, UC_FLAGS, BigInt(UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS));
  putU64(f, UC_STACK_SS_SP, 0n);
  putU32(f, UC_STACK_SS_FLAGS, 0);
  putU64(f, UC_STACK_SS_SIZE, 0n);
  // __unsafe_setup_sigcontext (XXX: the general registers are not modelled and stay 0).
  putU64(f, SC_RSP, BigInt(t.sp));
  putU64(f, SC_RIP, BigInt(t.pc));
  putU64(f, SC_EFLAGS, BigInt(USER_EFLAGS));
  // regs->cs and regs->ss; the gs and fs words stay 0 in a 64-bit frame.
  putU16(f, SC_CS, t.cs);
  putU16(f, SC_SS, t.ss);
  putU64(f, SC_ERR, BigInt(t.error_code));
  putU64(f, SC_TRAPNO, BigInt(t.trap_nr));
  putU64(f, SC_OLDMASK, t.blocked & 0xffffffffn);
  putU64(f, SC_CR2, t.cr2);
  putU64(f, SC_FPSTATE, BigInt(bufFx));
  putU64(f, UC_SIGMASK, t.blocked);
  putU32(f, SIGINFO, info.signo);
  putU32(f, SIGINFO + 8, info.code);
  if (info.code === SI_KERNEL || info.code > 0) putU64(f, SIGINFO + 16, info.addr);
  else putU32(f, SIGINFO + 16, info.pid);
  if (info.code === SEGV_PKUERR && info.signo === SIGSEGV) putU32(f, SIGINFO + 16 + 8 + 8, info.pkey);
  if (!(yield* copy_to_user(k, pc, t, BigInt(sp), f))) return false;
  t.sp = sp;
  t.pc = Number(ka.handler);
  // x64_setup_rt_frame: the handler runs in 64-bit mode, on the interrupted SS if it is valid.
  t.cs = USER_CS;
  if (t.ss !== USER_DS) force_valid_ss(pc, t);
  t.vars.set('signo', BigInt(info.signo));
  t.vars.set('si_code', BigInt(info.code));
  t.vars.set('si_addr', info.addr);
  if (info.code === SEGV_PKUERR && info.signo === SIGSEGV) t.vars.set('si_pkey', BigInt(info.pkey));
  if (k.ospke) cpu.wrpkru(handler_pkru(k, t, pkru));
  return true;
}

/**
 * fpu__restore_sig: PKRU from the frame's XSAVE image when it is an xstate frame whose
 * XSTATE_BV has PKRU, else PKRU's init value 0. False if the image cannot be read.
 */
function* restore_fpstate(k: Kernel, pc: PerCpu, t: Task, fpstate: bigint): KSteps<boolean> {
  if (fpstate === 0n) return true;
  const size = xstate_sigframe_size(k);
  const fp = yield* copy_from_user(k, pc, t, fpstate, size);
  if (!fp) return false;
  if (!k.ospke) return true;
  const dv = new DataView(fp.buffer);
  const xstate = dv.getUint32(SW_MAGIC1, true) === FP_XSTATE_MAGIC1 && dv.getUint32(size - 4, true) === FP_XSTATE_MAGIC2;
  const bv = dv.getBigUint64(XSAVE_XSTATE_BV, true) & dv.getBigUint64(SW_XFEATURES, true);
  pc.cpu.wrpkru(xstate && bv & XFEATURE_MASK_PKRU ? dv.getUint32(XSAVE_PKRU, true) : 0);
  return true;
}

/**
 * rt_sigreturn: the frame sits just above the stack pointer (the handler's return popped
 * pretcode). Restores PKRU from the XSAVE image (a handler's edit of it takes effect), pops the
 * shadow-stack signal token, then the signal mask (SIGKILL and SIGSTOP stay unblocked), the
 * instruction and stack pointers, CS and SS (RPL 3, force_valid_ss unless
 * UC_STRICT_RESTORE_SS). A frame that cannot be read or checked kills with SIGSEGV.
 */
export function* sys_rt_sigreturn(k: Kernel, pc: PerCpu, t: Task): KPath {
  const frame = t.sp - 8;
  const f = yield* copy_from_user(k, pc, t, BigInt(frame), RT_SIGFRAME_SIZE);
  // restore_sigcontext (with fpu__restore_sig), then restore_signal_shadow_stack.
  if (!f || !(yield* restore_fpstate(k, pc, t, getU64(f, SC_FPSTATE))) || !(yield* restore_signal_shadow_stack(k, pc, t))) {
    force_sig(k, t, SIGSEGV);
    return 0;
  }
  t.blocked = getU64(f, UC_SIGMASK) & ~SIG_KERNEL_ONLY_MASK;
  t.pc = Number(getU64(f, SC_RIP));
  t.sp = Number(getU64(f, SC_RSP));
  // restore_sigcontext: CS and SS forced to RPL 3; SS fixed up (force_valid_ss) unless the
  // frame asks for a strict restore, for 64-bit code (user_64bit_mode: cs == __USER_CS). The
  // IRET back to user mode checks them (desc.ts iret_segments).
  const csss = getU64(f, SC_CS);
  t.cs = Number(csss & 0xffffn) | 3;
  t.ss = Number((csss >> 48n) & 0xffffn) | 3;
  if (!(getU64(f, UC_FLAGS) & BigInt(UC_STRICT_RESTORE_SS)) && t.cs === USER_CS) force_valid_ss(pc, t);
  t.skipResult = true;
  return Number(BigInt.asIntN(64, getU64(f, SC_RAX)));
}
