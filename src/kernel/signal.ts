/**
 * Signals (kernel/signal.c, arch/x86/kernel/signal.c and signal_64.c): sending and queueing,
 * forced fault signals, the choice of the next signal to deliver, default actions, the
 * x86-64 rt_sigframe written on the user stack, and rt_sigreturn.
 *
 * The alternate signal stack's fields and syscall are in sigaltstack.ts; get_sigframe here
 * switches to it.
 *
 * Job control (kernel/signal.c, 6.12): a stop signal's default action stops the whole thread
 * group (do_signal_stop: JOBCTL_STOP_PENDING on every thread, group_stop_count counting those
 * still to stop, the last to stop setting SIGNAL_STOP_STOPPED and telling the parent), and
 * SIGCONT, when it is sent (prepare_signal), flushes the stop signals and wakes the stopped
 * threads; the first of them back in get_signal tells the parent CLD_CONTINUED. SIGKILL wakes a
 * stopped thread. The jobctl bits are Linux's; ptrace's stops (ptrace_stop: signal-delivery,
 * the STOP trap a group stop becomes for a traced thread, PTRACE_EVENT stops) are built on them
 * (ptrace.ts has the requests).
 *
 * XXX: the model has one session holding one process group, which has no member whose parent
 * is in another group of the session: it is orphaned (is_current_pgrp_orphaned), so SIGTSTP,
 * SIGTTIN and SIGTTOU with their default action are discarded, as Linux discards them in an
 * orphaned group; only SIGSTOP stops. No SIGNAL_UNKILLABLE init. Core dumps are not modelled (RLIMIT_CORE is 0, so a
 * core signal's wait status has no 0x80).
 */
import type { Kernel, PerCpu } from './kernel.js';
import { wake_up_process, wake_up_state } from './sched.js';
import { STEP_SLEEP, STEP_UNLOCK, type KPath, type KSteps } from './steps.js';
import type { KSigaction, SigInfo, SigPending, Task } from './task.js';
import {
  CLD_CONTINUED, CLD_STOPPED, CLD_TRAPPED, NSIG, PTRACE_EVENT_STOP, SI_USER, SA_NOCLDSTOP, SA_NODEFER, SA_ONSTACK, SA_SIGINFO, SA_RESETHAND, SA_RESTART, SA_RESTORER, SS_AUTODISARM, SI_KERNEL, SIG_DFL, SIG_IGN, SIGBUS, SIGCHLD, SIGCONT, SIGFPE, SIGILL, SIGKILL,
  SEGV_PKUERR, SIGQUIT, SIGSEGV, SIGSTOP, SIGSYS, SIGTRAP, SIGTSTP, SIGTTIN, SIGTTOU, SIGURG, SIGWINCH, SIGABRT, SIGXCPU, SIGXFSZ, EINTR,
} from './uapi.js';
import { copy_from_user, copy_to_user, getU64, putU16, putU32, putU64 } from './uaccess.js';
import { OP_BYTES } from '../user/program.js';
import { restore_signal_shadow_stack, setup_signal_shadow_stack } from './shstk.js';
import { __on_sig_stack, on_sig_stack, restore_altstack, sas_ss_flags, sas_ss_reset } from './sigaltstack.js';
import { bufferArea, fxsave, xsave, xstateSizeStandard } from '../hw/xsave.js';
import type { Cpu } from '../hw/cpu.js';
import { DESC_DPL_SHIFT, DESC_P, DESC_S, DESC_TYPE_EXPAND_DOWN, DESC_TYPE_SHIFT, DESC_TYPE_WRITABLE } from '../hw/segment.js';
import { RFLAGS_RF } from '../hw/regs.js';
import { __USER_CS, __USER_DS, load_user_segments } from './desc.js';
import { PT_SEIZED } from './ptrace.js';

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

/** task->jobctl (include/linux/sched/jobctl.h): the stop signal in the low 16 bits, then the flags. */
export const JOBCTL_STOP_SIGMASK = 0xffff;
/** A stop signal was dequeued (SIGCONT or SIGKILL clears it, cancelling the stop it would start). */
export const JOBCTL_STOP_DEQUEUED = 1 << 16;
/** The thread is to stop for the group stop in progress. */
export const JOBCTL_STOP_PENDING = 1 << 17;
/** Its stop counts in group_stop_count. */
export const JOBCTL_STOP_CONSUME = 1 << 18;
/** ptrace's traps: a PTRACE_EVENT_STOP (or, not seized, a group-stop trap) is due; a seized tracee is to re-trap to report a change. */
export const JOBCTL_TRAP_STOP = 1 << 19;
export const JOBCTL_TRAP_NOTIFY = 1 << 20;
/** PTRACE_LISTEN: the tracee stays in its STOP trap but is not reported as traced. */
export const JOBCTL_LISTENING = 1 << 22;
/** A ptrace request is working on the traced tracee: even SIGKILL does not wake it until the request ends. */
export const JOBCTL_PTRACE_FROZEN = 1 << 24;
/** The thread is stopped in do_signal_stop (TASK_STOPPED); cleared by SIGCONT and SIGKILL. */
export const JOBCTL_STOPPED = 1 << 26;
/** The thread is in a ptrace stop (TASK_TRACED); cleared by the tracer's resume and by SIGKILL. */
export const JOBCTL_TRACED = 1 << 27;
export const JOBCTL_TRAP_MASK = JOBCTL_TRAP_STOP | JOBCTL_TRAP_NOTIFY;
const JOBCTL_PENDING_MASK = JOBCTL_STOP_PENDING | JOBCTL_TRAP_MASK;

/** signal->flags (include/linux/sched/signal.h): the group is stopped; it was continued (for WCONTINUED); the parent is yet to be told. */
export const SIGNAL_STOP_STOPPED = 0x1;
export const SIGNAL_STOP_CONTINUED = 0x2;
export const SIGNAL_CLD_STOPPED = 0x10;
export const SIGNAL_CLD_CONTINUED = 0x20;
const SIGNAL_CLD_MASK = SIGNAL_CLD_STOPPED | SIGNAL_CLD_CONTINUED;
const SIGNAL_STOP_MASK = SIGNAL_CLD_MASK | SIGNAL_STOP_STOPPED | SIGNAL_STOP_CONTINUED;

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
  // recalc_sigpending keeps TIF_SIGPENDING for a thread a group stop waits for (JOBCTL_PENDING_MASK).
  if (t.group.groupExit || (t.jobctl & JOBCTL_PENDING_MASK) !== 0) return true;
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

/**
 * What the C library's mask-restoring siglongjmp does in the kernel: rt_sigprocmask's
 * SIG_SETMASK of the mask saved at sigsetjmp (here the interrupted frame's), then SYSRET back,
 * which leaves __USER_CS and __USER_DS in CS and SS whatever a handler loaded. The handler
 * names of the context the frame at `frame` interrupted come back with it.
 */
export function siglongjmp_sigprocmask(pc: PerCpu, t: Task, mask: bigint, frame: number): void {
  set_current_blocked(t, mask);
  restore_handler_names(t, frame);
  t.cs = __USER_CS;
  t.ss = __USER_DS;
  load_user_segments(pc, t.cs, t.ss);
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
 * `group`). prepare_signal first: during a group exit only SIGKILL gets through; a stop
 * signal's and SIGCONT's side effects happen whether or not the signal is then ignored; an
 * ignored, unblocked signal is dropped. A standard signal already pending is not queued twice
 * (legacy_queue). complete_signal then picks a thread that does not block it: a fatal,
 * non-core signal starts a group exit at once (every thread gets SIGKILL); otherwise the
 * chosen thread is woken if it sleeps.
 */
export function send_signal(k: Kernel, t: Task, info: SigInfo, group: boolean): void {
  const sig = info.signo;
  if (t.state === 'zombie' || t.state === 'dead') return;
  if (!prepare_signal(k, t, sig)) return;
  const pending: SigPending = group ? t.group.shared_pending : t.pending;
  if (sig < SIGRTMIN && (pending.signal & sigmask(sig)) !== 0n) return;
  pending.signal |= sigmask(sig);
  pending.list.push(info);
  complete_signal(k, t, sig, group);
}

/**
 * prepare_signal (kernel/signal.c): whether `sig` is to be queued for `p`. During a group exit
 * only SIGKILL (XXX: 6.12 drops it too; it is already pending on every thread, so queueing it
 * again changes nothing). A stop signal removes SIGCONT from the group's and every thread's
 * queue. SIGCONT removes every stop signal the same way, ends the group stop (a thread's
 * JOBCTL_STOP_PENDING, JOBCTL_STOPPED) and wakes the stopped threads (wake_up_state
 * __TASK_STOPPED); if the group was stopped it is now continued (SIGNAL_STOP_CONTINUED, and
 * SIGNAL_CLD_CONTINUED for the parent), if a stop was in progress the parent is to hear
 * CLD_STOPPED as though it had ended, and either way the stop's count and code are dropped.
 * The parent is told later, by the first woken thread (get_signal). Then: false if the
 * signal is ignored (not blocked, SIG_IGN or SIG_DFL whose default is to ignore; SIGKILL never).
 */
function prepare_signal(k: Kernel, p: Task, sig: number): boolean {
  const g = p.group;
  if (g.groupExit) return sig === SIGKILL;
  if (inMask(sig, SIG_KERNEL_STOP_MASK)) {
    const flush = sigmask(SIGCONT);
    flush_sigqueue_mask(flush, g.shared_pending);
    for (const t of g.threads) flush_sigqueue_mask(flush, t.pending);
  } else if (sig === SIGCONT) {
    flush_sigqueue_mask(SIG_KERNEL_STOP_MASK, g.shared_pending);
    for (const t of g.threads) {
      flush_sigqueue_mask(SIG_KERNEL_STOP_MASK, t.pending);
      task_clear_jobctl_pending(t, JOBCTL_STOP_PENDING);
      if (!(t.ptrace & PT_SEIZED)) {
        t.jobctl &= ~JOBCTL_STOPPED;
        wake_up_state(k, t, 'stopped');
      } else ptrace_trap_notify(k, t);
    }
    let why = 0;
    if (g.flags & SIGNAL_STOP_STOPPED) why |= SIGNAL_CLD_CONTINUED;
    else if (g.group_stop_count) why |= SIGNAL_CLD_STOPPED;
    if (why) {
      signal_set_stop_flags(g, why | SIGNAL_STOP_CONTINUED);
      g.group_stop_count = 0;
      g.group_exit_code = 0;
    }
  }
  const blocked = (p.blocked & sigmask(sig)) !== 0n;
  return blocked || sig === SIGKILL || !sig_handler_ignored(p.sighand.action[sig], sig);
}

/** flush_sigqueue_mask: removes the signals in `mask` from `s`, their siginfo included. */
function flush_sigqueue_mask(mask: bigint, s: SigPending): void {
  if ((s.signal & mask) === 0n) return;
  s.signal &= ~mask;
  for (let i = s.list.length - 1; i >= 0; i--) if (mask & sigmask(s.list[i].signo)) s.list.splice(i, 1);
}

/** signal_set_stop_flags: the group's job-control flags become `flags`. */
function signal_set_stop_flags(g: Task['group'], flags: number): void {
  g.flags = (g.flags & ~SIGNAL_STOP_MASK) | flags;
}

/**
 * task_set_jobctl_pending: adds `mask` (a stop signal number and JOBCTL_STOP_* bits) to the
 * thread's jobctl, replacing the signal number; false, changing nothing, if the thread has
 * SIGKILL pending or is exiting.
 */
export function task_set_jobctl_pending(t: Task, mask: number): boolean {
  if (__fatal_signal_pending(t) || t.exiting) return false;
  if (mask & JOBCTL_STOP_SIGMASK) t.jobctl &= ~JOBCTL_STOP_SIGMASK;
  t.jobctl |= mask;
  return true;
}

/** task_clear_jobctl_pending: clears `mask`; clearing JOBCTL_STOP_PENDING clears CONSUME and DEQUEUED too. */
export function task_clear_jobctl_pending(t: Task, mask: number): void {
  if (mask & JOBCTL_STOP_PENDING) mask |= JOBCTL_STOP_CONSUME | JOBCTL_STOP_DEQUEUED;
  t.jobctl &= ~mask;
}

/**
 * task_participate_group_stop: `t` takes its part in the group stop (clears its
 * JOBCTL_STOP_PENDING; with JOBCTL_STOP_CONSUME, counts itself off group_stop_count). True
 * when it was the last and the group was not already stopped: the group is now
 * SIGNAL_STOP_STOPPED and the caller tells the parent CLD_STOPPED.
 */
export function task_participate_group_stop(t: Task): boolean {
  const g = t.group;
  const consume = (t.jobctl & JOBCTL_STOP_CONSUME) !== 0;
  task_clear_jobctl_pending(t, JOBCTL_STOP_PENDING);
  if (!consume) return false;
  if (g.group_stop_count > 0) g.group_stop_count--;
  if (g.group_stop_count === 0 && !(g.flags & SIGNAL_STOP_STOPPED)) {
    signal_set_stop_flags(g, SIGNAL_STOP_STOPPED);
    return true;
  }
  return false;
}

/** wants_signal: `t` may take `sig` now (not blocked, not exiting; SIGKILL even when stopped or traced). */
function wants_signal(sig: number, t: Task): boolean {
  if ((t.blocked & sigmask(sig)) !== 0n || t.exiting || t.state === 'zombie' || t.state === 'dead') return false;
  return sig === SIGKILL || (t.state !== 'stopped' && t.state !== 'traced');
}

function complete_signal(k: Kernel, p: Task, sig: number, group: boolean): void {
  let target: Task | null = null;
  if (wants_signal(sig, p)) target = p;
  else if (group) target = p.group.threads.find((t) => wants_signal(sig, t)) ?? null;
  if (!target) return;
  // A fatal signal other than SIGKILL sent to a traced thread does not kill here: its tracer sees it first (ptrace_signal).
  if (sig_fatal(target, sig) && !target.group.groupExit && !inMask(sig, SIG_KERNEL_COREDUMP_MASK) && (sig === SIGKILL || !p.ptrace)) {
    // signal->flags = SIGNAL_GROUP_EXIT: the job-control flags go with the rest.
    const g = target.group;
    g.groupExit = true;
    g.flags = 0;
    g.group_exit_code = sig;
    g.group_stop_count = 0;
    for (const th of g.threads) {
      task_clear_jobctl_pending(th, JOBCTL_PENDING_MASK);
      th.pending.signal |= sigmask(SIGKILL);
      signal_wake_up(k, th, true);
    }
    return;
  }
  signal_wake_up(k, target, sig === SIGKILL);
}

/**
 * zap_other_threads: every other live thread of `p`'s group gets SIGKILL and is woken, and any
 * group stop is over (do_group_exit, which also sets SIGNAL_GROUP_EXIT: the caller's part).
 */
export function zap_other_threads(k: Kernel, p: Task): void {
  p.group.group_stop_count = 0;
  for (const th of p.group.threads) {
    if (th === p) continue;
    task_clear_jobctl_pending(th, JOBCTL_PENDING_MASK);
    if (th.state === 'zombie' || th.state === 'dead') continue;
    th.pending.signal |= sigmask(SIGKILL);
    signal_wake_up(k, th, true);
  }
}

/**
 * signal_wake_up: a sleeping task wakes to handle its signal (interruptible sleeps; killable
 * ones only for a fatal signal). A fatal signal also ends a stop or a ptrace stop (clears
 * JOBCTL_STOPPED and JOBCTL_TRACED, wakes TASK_STOPPED and TASK_TRACED: TASK_WAKEKILL), unless a
 * ptrace request holds the tracee frozen (JOBCTL_PTRACE_FROZEN: ptrace_unfreeze_traced wakes it).
 */
export function signal_wake_up(k: Kernel, t: Task, fatal: boolean): void {
  if (fatal && !(t.jobctl & JOBCTL_PTRACE_FROZEN)) {
    t.jobctl &= ~(JOBCTL_STOPPED | JOBCTL_TRACED);
    if (t.state === 'stopped' || t.state === 'traced') {
      wake_up_state(k, t, t.state);
      return;
    }
  }
  if (t.state !== 'sleeping') return;
  if (t.sleepKillableOnly && !fatal) return;
  wake_up_process(k, t);
}

/**
 * ptrace_signal_wake_up (include/linux/ptrace.h): the tracee is to look at its signals and
 * traps; with `resume` a ptrace stop ends too (JOBCTL_TRACED cleared, TASK_TRACED woken).
 */
export function ptrace_signal_wake_up(k: Kernel, t: Task, resume: boolean): void {
  if (resume) {
    t.jobctl &= ~JOBCTL_TRACED;
    if (t.state === 'traced') {
      wake_up_state(k, t, 'traced');
      return;
    }
  }
  if (t.state === 'sleeping' && !t.sleepKillableOnly) wake_up_process(k, t);
}

/** ptrace_trap_notify: a seized tracee is to re-trap (JOBCTL_TRAP_NOTIFY) to report a group-stop change; a LISTENing one is woken for it. */
function ptrace_trap_notify(k: Kernel, t: Task): void {
  task_set_jobctl_pending(t, JOBCTL_TRAP_NOTIFY);
  ptrace_signal_wake_up(k, t, (t.jobctl & JOBCTL_LISTENING) !== 0);
}

/** __wake_up_parent: the threads of `parent`'s group asleep in wait4 wake (wait_chldexit). */
export function __wake_up_parent(k: Kernel, parent: Task): void {
  for (const th of parent.group.threads) if (th.waitingChild) wake_up_process(k, th);
}

/**
 * do_notify_parent_cldstop (kernel/signal.c): tells the real parent of `t`'s group leader (or,
 * `for_ptracer`, `t`'s tracer) that the group stopped (CLD_STOPPED, si_status the stop signal
 * from group_exit_code), continued (CLD_CONTINUED, si_status SIGCONT) or that `t` entered a
 * ptrace stop (CLD_TRAPPED, si_status its exit_code's signal): SIGCHLD with si_pid the child's,
 * unless the parent ignores SIGCHLD or set SA_NOCLDSTOP; its threads in wait4 are woken either
 * way. A group without a parent (the first process) tells no one.
 */
export function do_notify_parent_cldstop(k: Kernel, pc: PerCpu, t: Task, why: number, for_ptracer = false): void {
  const leader = for_ptracer ? t : t.group.threads.find((th) => th.isLeader) ?? t;
  const parent = for_ptracer ? t.ptracer : leader.parent;
  if (!parent || parent.state === 'dead') return;
  if (k.events.on) k.emit({ type: 'jobctl', cpu: pc.id, tid: leader.tid, what: 'notify', code: why });
  const status = why === CLD_CONTINUED ? SIGCONT : why === CLD_TRAPPED ? t.exit_code & 0x7f : t.group.group_exit_code & 0x7f;
  const ka = parent.sighand.action[SIGCHLD];
  if (ka.handler !== SIG_IGN && !(ka.flags & SA_NOCLDSTOP)) {
    send_signal(k, parent, { signo: SIGCHLD, code: why, addr: 0n, pid: for_ptracer ? leader.tid : leader.tgid, pkey: 0, status }, true);
  }
  __wake_up_parent(k, parent);
}

/** ptrace_reparented: `t` is traced by a process other than its real parent. */
export function ptrace_reparented(t: Task): boolean {
  const real = t.parent;
  return t.ptracer !== null && (!real || t.ptracer.group !== real.group);
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
    // A stop signal taken off the queue still counts for SIGCONT and SIGKILL, which clear this.
    if (inMask(sig, SIG_KERNEL_STOP_MASK)) t.jobctl |= JOBCTL_STOP_DEQUEUED;
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
/** X86_EFLAGS_IF | X86_EFLAGS_FIXED: what the model's user RFLAGS hold (no arithmetic flags are modelled). */
const USER_EFLAGS = 0x202;

/** pt_regs->flags of a task in the kernel: USER_EFLAGS, with RF when it entered through a fault-class exception (Task.entryRF). */
export function user_eflags(t: Task): number {
  return t.entryRF ? USER_EFLAGS | RFLAGS_RF : USER_EFLAGS;
}

/** LAR's access-rights bits force_valid_ss looks at (asm/desc_defs.h AR_*): DPL, and the type without A. */
const AR_DPL_MASK = 3 << DESC_DPL_SHIFT;
const AR_TYPE_MASK = 7 << (DESC_TYPE_SHIFT + 1);
const AR_TYPE_RWDATA = DESC_TYPE_WRITABLE << DESC_TYPE_SHIFT;
const AR_TYPE_RWDATA_EXPDOWN = (DESC_TYPE_WRITABLE | DESC_TYPE_EXPAND_DOWN) << DESC_TYPE_SHIFT;

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
  ar &= AR_DPL_MASK | DESC_S | DESC_P | AR_TYPE_MASK;
  const dpl3 = AR_DPL_MASK | DESC_S | DESC_P;
  if (ar !== (dpl3 | AR_TYPE_RWDATA) && ar !== (dpl3 | AR_TYPE_RWDATA_EXPDOWN)) t.ss = __USER_DS;
}

/** sizeof(struct rt_sigframe) on x86-64: pretcode 8 + ucontext 304 + siginfo 128. */
export const RT_SIGFRAME_SIZE = 440;
/** Offsets in the frame (arch/x86/include/asm/sigframe.h, uapi/asm/sigcontext.h). */
export const UC_MCONTEXT = 48;
/** struct sigcontext_64's general registers, in order from uc_mcontext: each is the thread's variable of that name. */
export const SC_GPRS: readonly string[] = Object.freeze(['r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15', 'rdi', 'rsi', 'rbp', 'rbx', 'rdx', 'rax', 'rcx']);
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

/** fpu_user_cfg.max_features: the user features XCR0 holds (fpu__init_cpu_xstate; no AVX in the model). */
export function user_xfeatures(k: Kernel): bigint {
  return XFEATURE_MASK_FPSSE | (k.ospke ? XFEATURE_MASK_PKRU : 0n);
}

/**
 * fpu__get_fpstate_size: the image the frame carries. With XSAVE, fpu_user_cfg.max_size +
 * FP_XSTATE_MAGIC2_SIZE (580 bytes, or 2700 with PKRU); without, the 512-byte FXSAVE image.
 */
function xstate_sigframe_size(k: Kernel): number {
  return k.machine.model.xsave ? xstateSizeStandard(Number(user_xfeatures(k))) + 4 : FXSAVE_SIZE;
}

/** sizeof(struct fxregs_state). */
const FXSAVE_SIZE = 512;

/**
 * The XSAVE image copy_fpstate_to_sigframe writes: xsave_to_user_sigframe's XSAVE of the user
 * features (hw/xsave.ts, into a cleared header), the software bytes that mark an xstate frame,
 * and with OSPKE update_pkru_in_sigframe's PKRU component holding `pkru` with XSTATE_BV[PKRU]
 * forced to 1. A CPU without XSAVE gets fxsave_sigframe's image instead.
 */
function xsave_sigframe(k: Kernel, cpu: Cpu, pkru: number): Uint8Array {
  if (!cpu.model.xsave) return fxsave_sigframe();
  const size = xstate_sigframe_size(k);
  const fp = new Uint8Array(size);
  const dv = new DataView(fp.buffer);
  const xfeatures = user_xfeatures(k);
  xsave(cpu, bufferArea(fp), Number(xfeatures) & cpu.xcr0);
  dv.setUint32(SW_MAGIC1, FP_XSTATE_MAGIC1, true);
  dv.setUint32(SW_EXTENDED_SIZE, size, true);
  dv.setBigUint64(SW_XFEATURES, xfeatures, true);
  dv.setUint32(SW_XSTATE_SIZE, size - 4, true);
  dv.setUint32(size - 4, FP_XSTATE_MAGIC2, true);
  if (k.ospke) {
    dv.setBigUint64(XSAVE_XSTATE_BV, dv.getBigUint64(XSAVE_XSTATE_BV, true) | XFEATURE_MASK_PKRU, true);
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
 * get_signal + handle_signal, run on the way back to user mode (a kernel path). First, a
 * thread back from a stop tells the parent what prepare_signal left for it (SIGNAL_CLD_MASK),
 * and a thread a group stop waits for stops. Then dequeues signals until one needs action: a
 * handler gets an rt_sigframe on the user stack (red zone skipped, XSAVE image 64-byte aligned,
 * frame 16-byte aligned minus 8) and runs next; a stop signal's default action stops the group
 * (do_signal_stop); a fatal default action ends the thread group; ignored ones are dropped.
 * Returns 1 if a handler was set up or the task is exiting, 0 if nothing needed delivery.
 */
export function* get_signal(k: Kernel, pc: PerCpu, t: Task): KPath {
  const g = t.group;
  relock: for (;;) {
    // Every stopped thread comes here when woken; the first tells the parent.
    if (g.flags & SIGNAL_CLD_MASK) {
      const why = g.flags & SIGNAL_CLD_CONTINUED ? CLD_CONTINUED : CLD_STOPPED;
      g.flags &= ~SIGNAL_CLD_MASK;
      do_notify_parent_cldstop(k, pc, t, why);
      // The tracer of the group leader hears it too, unless it is the real parent.
      const leader = g.threads.find((th) => th.isLeader);
      if (leader && leader.ptrace && ptrace_reparented(leader)) do_notify_parent_cldstop(k, pc, leader, why, true);
      continue relock;
    }
    for (;;) {
      // Already marked for death: a group exit, or another thread's exec (de_thread) killing
      // this one. exit_to_user_mode then exits (do_group_exit, which starts no group exit
      // while group_exec_task is set).
      if (g.groupExit || (g.group_exec_task && g.group_exec_task !== t)) return 1;
      if (t.jobctl & JOBCTL_STOP_PENDING && (yield* do_signal_stop(k, pc, t, 0))) continue relock;
      if (t.jobctl & JOBCTL_TRAP_MASK) {
        yield* do_jobctl_trap(k, pc, t);
        continue relock;
      }
      let info = dequeue_signal(t);
      if (!info) return 0;
      let sig = info.signo;
      // A traced thread stops for its tracer with every signal but SIGKILL (signal-delivery-stop);
      // what the tracer resumes it with is the signal delivered (0: none).
      if (t.ptrace && sig !== SIGKILL) {
        const r = yield* ptrace_signal(k, pc, t, info);
        if (!r) continue;
        info = r;
        sig = r.signo;
      }
      const ka = t.sighand.action[sig];
      if (ka.handler === SIG_IGN) continue;
      if (ka.handler !== SIG_DFL) {
        // Run the handler: ksig->ka = *ka, and SA_ONESHOT (SA_RESETHAND) resets the action now,
        // in get_signal, so also when the frame cannot be written (host-checked on 6.18).
        const act: KSigaction = { ...ka };
        if (ka.flags & SA_RESETHAND) ka.handler = SIG_DFL;
        const ok = yield* setup_rt_frame(k, pc, t, info, act);
        if (!ok) {
          // force_sigsegv: a frame that cannot be written kills with SIGSEGV.
          if (sig === SIGSEGV) ka.handler = SIG_DFL;
          force_sig(k, t, SIGSEGV);
          continue;
        }
        // signal_setup_done
        t.blocked |= act.mask;
        if (!(act.flags & SA_NODEFER)) t.blocked |= sigmask(sig);
        t.blocked &= ~SIG_KERNEL_ONLY_MASK;
        // signal_delivered: an alternate stack armed with SS_AUTODISARM is disarmed while the
        // handler runs (rt_sigreturn puts it back from the frame's uc_stack).
        if (t.sas_ss_flags & SS_AUTODISARM) sas_ss_reset(t);
        k.emitSignal(pc, t, info, 'handler');
        return 1;
      }
      if (sig_kernel_ignore(sig)) continue;
      if (inMask(sig, SIG_KERNEL_STOP_MASK)) {
        // The job-control stops do nothing in an orphaned process group (the signal is gone);
        // SIGSTOP always stops.
        if (sig !== SIGSTOP && is_current_pgrp_orphaned(t)) continue relock;
        k.emitSignal(pc, t, info, 'stop');
        if (yield* do_signal_stop(k, pc, t, sig)) continue relock;
        // A SIGCONT or SIGKILL came first (JOBCTL_STOP_DEQUEUED cleared): no stop.
        continue;
      }
      k.emitSignal(pc, t, info, inMask(sig, SIG_KERNEL_COREDUMP_MASK) ? 'core' : 'terminate');
      // do_group_exit(sig): the status is the signal number (no core dump).
      g.groupExit = true;
      g.flags = 0;
      g.group_exit_code = sig;
      zap_other_threads(k, t);
      return 1;
    }
  }
}

/**
 * is_current_pgrp_orphaned (kernel/exit.c will_become_orphaned_pgrp): whether no process of
 * the caller's group has a parent in another group of the same session. The model has one
 * session and one process group holding every process: always true.
 */
function is_current_pgrp_orphaned(_t: Task): boolean {
  return true;
}

/**
 * do_signal_stop (kernel/signal.c): `t` stops for a group stop, starting one for stop signal
 * `signr` if none is in progress (unless the dequeued stop was cancelled, JOBCTL_STOP_DEQUEUED
 * clear, or the group is exiting or execing: false). Starting one: the stop signal becomes
 * group_exit_code (unless the group is already stopped), and every thread not stopped that
 * can take part gets JOBCTL_STOP_PENDING | JOBCTL_STOP_CONSUME and the signal, counted in
 * group_stop_count, and is woken to stop. Then, in one step under siglock, `t` takes its part
 * (the last tells the parent CLD_STOPPED, after siglock is dropped) and sets JOBCTL_STOPPED;
 * it sleeps in TASK_STOPPED unless SIGCONT or SIGKILL cleared that meanwhile, and returns true
 * once it runs again. A traced thread does not stop here: it gets JOBCTL_TRAP_STOP (false), and
 * get_signal's do_jobctl_trap stops it for its tracer.
 */
function* do_signal_stop(k: Kernel, pc: PerCpu, t: Task, signr: number): KSteps<boolean> {
  const g = t.group;
  if (!(t.jobctl & JOBCTL_STOP_PENDING)) {
    const gstop = JOBCTL_STOP_PENDING | JOBCTL_STOP_CONSUME;
    if (!(t.jobctl & JOBCTL_STOP_DEQUEUED) || g.groupExit || g.group_exec_task) return false;
    if (!(g.flags & SIGNAL_STOP_STOPPED)) g.group_exit_code = signr;
    g.group_stop_count = 0;
    if (task_set_jobctl_pending(t, signr | gstop)) g.group_stop_count++;
    for (const th of g.threads) {
      if (th === t || th.state === 'stopped' || th.state === 'zombie' || th.state === 'dead') continue;
      if (task_set_jobctl_pending(th, signr | gstop)) {
        g.group_stop_count++;
        if (!(th.ptrace & PT_SEIZED)) signal_wake_up(k, th, false);
        else ptrace_trap_notify(k, th);
      }
    }
  }
  // While traced, the group stop is a STOP trap (do_jobctl_trap), for the caller to take.
  if (t.ptrace) {
    task_set_jobctl_pending(t, JOBCTL_TRAP_STOP);
    return false;
  }
  const notify = task_participate_group_stop(t);
  t.jobctl |= JOBCTL_STOPPED;
  // spin_unlock_irq(&siglock): a SIGCONT or SIGKILL may come before the sleep.
  pc.touch = -1;
  yield STEP_UNLOCK;
  if (notify) do_notify_parent_cldstop(k, pc, t, CLD_STOPPED);
  if (t.jobctl & JOBCTL_STOPPED) {
    // set_special_state(TASK_STOPPED) and schedule(): nothing runs this thread until woken.
    t.state = 'stopped';
    if (k.events.on) k.emit({ type: 'jobctl', cpu: pc.id, tid: t.tid, what: 'stop', code: 0 });
    yield STEP_SLEEP;
    if (k.events.on) k.emit({ type: 'jobctl', cpu: pc.id, tid: t.tid, what: 'resume', code: 0 });
  }
  return true;
}

/**
 * ptrace_stop (kernel/signal.c, 6.12): the ptrace stop every traced stop goes through. Nothing
 * if the thread is no longer traced or has SIGKILL pending (the code comes back unchanged).
 * Otherwise, under siglock: the stop's message, siginfo (last_siginfo, for PTRACE_GETSIGINFO)
 * and code (exit_code, what the tracer's wait reports); a CLD_STOPPED stop takes its part in
 * the group stop; the pending STOP trap (and, for a PTRACE_EVENT_STOP, NOTIFY) is cleared.
 * Then, siglock dropped, JOBCTL_TRACED and TASK_TRACED, the tracer is told (CLD_TRAPPED or
 * CLD_STOPPED, for_ptracer) and, if this ended a group stop and the tracer is not the real
 * parent, the real parent too; the thread sleeps until the tracer resumes it (ptrace_resume
 * sets exit_code to the signal to deliver) or SIGKILL or a detach wakes it. Returns exit_code
 * then, clearing it, last_siginfo and the message.
 *
 * XXX: 6.12 enters TASK_TRACED and sets JOBCTL_TRACED before dropping siglock; the model does
 * it with the sleep, one step later, so the tracer never finds the tracee TRACED while it is
 * still on its CPU (the tracer's wait_task_inactive in ptrace_check_attach waits that out).
 */
export function* ptrace_stop(k: Kernel, pc: PerCpu, t: Task, exit_code: number, why: number, message: bigint, info: SigInfo | null): KSteps<number> {
  if (!t.ptrace || __fatal_signal_pending(t)) return exit_code;
  t.ptrace_message = message;
  t.last_siginfo = info;
  t.exit_code = exit_code;
  let gstop_done = false;
  if (why === CLD_STOPPED && t.jobctl & JOBCTL_STOP_PENDING) gstop_done = task_participate_group_stop(t);
  // Any trap clears a pending STOP trap; a STOP trap clears NOTIFY.
  task_clear_jobctl_pending(t, JOBCTL_TRAP_STOP);
  if (info && info.code >> 8 === PTRACE_EVENT_STOP) task_clear_jobctl_pending(t, JOBCTL_TRAP_NOTIFY);
  pc.touch = -1;
  yield STEP_UNLOCK;
  // A detach (exit_ptrace) or SIGKILL in between would have woken the sleep: it does not start.
  const sleep = t.ptrace !== 0 && !__fatal_signal_pending(t);
  if (sleep) {
    t.jobctl |= JOBCTL_TRACED;
    t.state = 'traced';
  }
  if (t.ptrace) do_notify_parent_cldstop(k, pc, t, why, true);
  if (gstop_done && (!t.ptrace || ptrace_reparented(t))) do_notify_parent_cldstop(k, pc, t, why);
  if (sleep) {
    if (k.events.on) k.emit({ type: 'jobctl', cpu: pc.id, tid: t.tid, what: 'trace', code: exit_code });
    yield STEP_SLEEP;
    if (k.events.on) k.emit({ type: 'jobctl', cpu: pc.id, tid: t.tid, what: 'resume', code: t.exit_code });
  }
  const ret = t.exit_code;
  t.last_siginfo = null;
  t.ptrace_message = 0n;
  t.exit_code = 0;
  t.jobctl &= ~(JOBCTL_LISTENING | JOBCTL_PTRACE_FROZEN | JOBCTL_TRACED);
  return ret;
}

/** ptrace_do_notify: a ptrace stop with a SIGTRAP-like siginfo of its own (si_code the stop's code, si_pid the thread's). */
function ptrace_do_notify(k: Kernel, pc: PerCpu, t: Task, signr: number, exit_code: number, why: number, message: bigint): KSteps<number> {
  const info: SigInfo = { signo: signr, code: exit_code, addr: 0n, pid: t.tid, pkey: 0 };
  return ptrace_stop(k, pc, t, exit_code, why, message, info);
}

/** ptrace_notify (kernel/signal.c): a PTRACE_EVENT stop, `exit_code` = SIGTRAP | event << 8, reported as CLD_TRAPPED. */
export function ptrace_notify(k: Kernel, pc: PerCpu, t: Task, exit_code: number, message: bigint): KSteps<number> {
  return ptrace_do_notify(k, pc, t, SIGTRAP, exit_code, CLD_TRAPPED, message);
}

/**
 * do_jobctl_trap (kernel/signal.c): a seized tracee's PTRACE_EVENT_STOP (for a group stop its
 * stop signal, else SIGTRAP, with PTRACE_EVENT_STOP << 8: the wait status's bits 16..23), or a
 * group-stop trap of a tracee attached with PTRACE_ATTACH (the stop signal, no siginfo).
 */
function* do_jobctl_trap(k: Kernel, pc: PerCpu, t: Task): KSteps<void> {
  const g = t.group;
  let signr = t.jobctl & JOBCTL_STOP_SIGMASK;
  if (t.ptrace & PT_SEIZED) {
    if (!g.group_stop_count && !(g.flags & SIGNAL_STOP_STOPPED)) signr = SIGTRAP;
    yield* ptrace_do_notify(k, pc, t, signr, signr | (PTRACE_EVENT_STOP << 8), CLD_STOPPED, 0n);
  } else yield* ptrace_stop(k, pc, t, signr, CLD_STOPPED, 0n, null);
}

/**
 * ptrace_signal (kernel/signal.c): signal-delivery-stop. The signal dequeued for `t` stops it for
 * its tracer (CLD_TRAPPED, the siginfo readable by PTRACE_GETSIGINFO); the tracer's resume
 * decides: 0 drops the signal (null), another number replaces it (si_code SI_USER, si_pid the
 * tracer's). The signal to deliver is put back in the queue instead if `t` blocks it or has
 * SIGKILL pending (null). Returns the siginfo to deliver. XXX: a requeued signal goes to the
 * thread's own queue (6.12 puts it back in the queue it came from).
 */
function* ptrace_signal(k: Kernel, pc: PerCpu, t: Task, info: SigInfo): KSteps<SigInfo | null> {
  // JOBCTL_STOP_DEQUEUED whatever the signal: the tracer may turn it into a stop signal.
  t.jobctl |= JOBCTL_STOP_DEQUEUED;
  const signr = yield* ptrace_stop(k, pc, t, info.signo, CLD_TRAPPED, 0n, info);
  if (signr === 0) return null;
  if (signr !== info.signo) info = { signo: signr, code: SI_USER, addr: 0n, pid: t.ptracer ? t.ptracer.tid : 0, pkey: 0 };
  if ((t.blocked & sigmask(signr)) !== 0n || __fatal_signal_pending(t)) {
    send_signal(k, t, info, false);
    return null;
  }
  return info;
}

/** get_sigframe's `(void __user *)-1L`: a frame address access_ok refuses. */
const BAD_FRAME = 0xffffffffffffffffn;

/**
 * get_sigframe (arch/x86/kernel/signal.c, 6.12): where the frame goes, and the XSAVE image
 * written there. Below the interrupted stack pointer's 128-byte red zone; or, for a handler
 * with SA_ONSTACK when sas_ss_flags of that address is 0 (an alternate stack is set and not in
 * use, or is armed with SS_AUTODISARM), from the top of the alternate stack, with no red zone.
 * The image is 64-byte aligned below that, the frame 16-byte aligned minus 8 below the image.
 * If the thread was on its alternate stack (nested_altstack) or is entering it and the frame
 * would not lie on it (__on_sig_stack), the frame is BAD_FRAME and nothing is written. Then
 * the image, holding the interrupted `pkru`: upstream it is written with PKRU 0
 * (write_permissive_pkey_val), so no key on either stack can stop it, and PKRU is put back
 * only if that write fails; a failed write makes the frame BAD_FRAME too.
 */
function* get_sigframe(k: Kernel, pc: PerCpu, t: Task, ka: KSigaction, pkru: number): KSteps<{ frame: bigint; fp: bigint }> {
  const nested_altstack = on_sig_stack(t, BigInt(t.sp));
  let entering_altstack = false;
  let sp = BigInt.asUintN(64, BigInt(t.sp) - 128n);
  // The X/Open sanctioned signal stack switching.
  if (ka.flags & SA_ONSTACK && sas_ss_flags(t, sp) === 0) {
    sp = BigInt.asUintN(64, t.sas_ss_sp + t.sas_ss_size);
    entering_altstack = true;
  }
  // fpu__alloc_mathframe, then the frame.
  const fp = BigInt.asUintN(64, sp - BigInt(xstate_sigframe_size(k))) & ~63n;
  sp = BigInt.asUintN(64, (BigInt.asUintN(64, fp - BigInt(RT_SIGFRAME_SIZE)) & ~15n) - 8n);
  // On the alternate stack and would overflow it: an always-bogus address, so SIGSEGV follows.
  if ((nested_altstack || entering_altstack) && !__on_sig_stack(t, sp)) return { frame: BAD_FRAME, fp };
  const cpu = pc.cpu;
  const permissive = k.ospke && k.options.pkru_on_signal === 'upstream';
  if (permissive) cpu.wrpkru(0);
  if (!(yield* copy_to_user(k, pc, t, fp, xsave_sigframe(k, cpu, pkru)))) {
    if (permissive) cpu.wrpkru(pkru);
    return { frame: BAD_FRAME, fp };
  }
  return { frame: sp, fp };
}

/**
 * The image copy_fpstate_to_sigframe writes without XSAVE: fxsave_to_user_sigframe's FXSAVE
 * (512 bytes), then save_xstate_epilog's software bytes, which it writes whenever FXSR is in
 * use: FP_XSTATE_MAGIC1, extended_size = fpstate->user_size (512) + FP_XSTATE_MAGIC2_SIZE,
 * xfeatures = fpstate->user_xfeatures (0: fpu_user_cfg.default_features without XSAVE),
 * xstate_size 512; then, as use_xsave() is false, no FP_XSTATE_MAGIC2 and no header.
 */
function fxsave_sigframe(): Uint8Array {
  const fp = new Uint8Array(FXSAVE_SIZE);
  const dv = new DataView(fp.buffer);
  fxsave(bufferArea(fp));
  dv.setUint32(SW_MAGIC1, FP_XSTATE_MAGIC1, true);
  dv.setUint32(SW_EXTENDED_SIZE, FXSAVE_SIZE + 4, true);
  dv.setBigUint64(SW_XFEATURES, 0n, true);
  dv.setUint32(SW_XSTATE_SIZE, FXSAVE_SIZE, true);
  return fp;
}

/**
 * x64_setup_rt_frame + signal_setup_done's FPU part: get_sigframe (the XSAVE image), the
 * shadow-stack entries (pushed even when get_sigframe failed, as in 6.12), then the frame,
 * points the task at the handler, and gives the handler its PKRU. Upstream (6.12) the writes
 * are made with PKRU 0, so a key on the stack or alternate stack cannot stop them; the image
 * holds the interrupted PKRU either way. False if the frame could not be written (or there is
 * no SA_RESTORER): with `upstream`, PKRU is put back only when the XSAVE copy failed, as in
 * 6.12.
 */
function* setup_rt_frame(k: Kernel, pc: PerCpu, t: Task, info: SigInfo, ka: KSigaction): KSteps<boolean> {
  if (!(ka.flags & SA_RESTORER)) return false;
  // A syscall interrupted with -ERESTARTSYS restarts after the handler only with SA_RESTART.
  if (t.restartPending) {
    t.restartPending = false;
    // handle_signal: with SA_RESTART, regs->ax = regs->orig_ax and the ip back at the syscall.
    if (ka.flags & SA_RESTART) {
      t.pc -= OP_BYTES;
      t.vars.set('rax', BigInt.asUintN(64, BigInt(t.curNr)));
    } else k.completeSyscallResult(t, -EINTR);
  }
  const cpu = pc.cpu;
  const pkru = cpu.pkru;
  const { frame, fp } = yield* get_sigframe(k, pc, t, ka, pkru);
  if (!(yield* setup_signal_shadow_stack(k, pc, t, ka.restorer))) return false;
  const f = new Uint8Array(RT_SIGFRAME_SIZE);
  putU64(f, 0, ka.restorer);
  // x64_setup_rt_frame: frame_uc_flags (UC_FP_XSTATE with XSAVE; user code is 64-bit), no
  // uc_link, and unsafe_save_altstack's stack_t: the thread's sas_ss_sp, sas_ss_flags and
  // sas_ss_size as they are (not sas_ss_flags(sp)), so SS_AUTODISARM is kept for rt_sigreturn;
  // all 0 for a thread that never set one.
  putU64(f, UC_FLAGS, BigInt((cpu.model.xsave ? UC_FP_XSTATE : 0) | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS));
  putU64(f, UC_STACK_SS_SP, t.sas_ss_sp);
  putU32(f, UC_STACK_SS_FLAGS, t.sas_ss_flags);
  putU64(f, UC_STACK_SS_SIZE, t.sas_ss_size);
  // __unsafe_setup_sigcontext: r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx from the thread's
  // variables of those names (0 when unset), then rsp and rip.
  const vars = t.vars;
  for (let i = 0; i < SC_GPRS.length; i++) {
    const v = vars.get(SC_GPRS[i]);
    if (v !== undefined) putU64(f, UC_MCONTEXT + 8 * i, v);
  }
  putU64(f, SC_RSP, BigInt(t.sp));
  putU64(f, SC_RIP, BigInt(t.pc));
  putU64(f, SC_EFLAGS, BigInt(user_eflags(t)));
  // regs->cs and regs->ss; the gs and fs words stay 0 in a 64-bit frame.
  putU16(f, SC_CS, t.cs);
  putU16(f, SC_SS, t.ss);
  putU64(f, SC_ERR, BigInt(t.error_code));
  putU64(f, SC_TRAPNO, BigInt(t.trap_nr));
  putU64(f, SC_OLDMASK, t.blocked & 0xffffffffn);
  putU64(f, SC_CR2, t.cr2);
  putU64(f, SC_FPSTATE, fp);
  putU64(f, UC_SIGMASK, t.blocked);
  putU32(f, SIGINFO, info.signo);
  putU32(f, SIGINFO + 8, info.code);
  // The union as the sender filled it (copy_siginfo_to_user copies its bytes): a child's
  // si_pid, si_uid (0: root) and si_status (si_utime and si_stime 0: no clock in the model);
  // a fault's si_addr (0 for SI_KERNEL); a sender's si_pid and si_uid.
  if (info.status !== undefined) {
    putU32(f, SIGINFO + 16, info.pid);
    putU32(f, SIGINFO + 24, info.status);
  } else if (info.code === SI_KERNEL || info.code > 0) putU64(f, SIGINFO + 16, info.addr);
  else putU32(f, SIGINFO + 16, info.pid);
  if (info.code === SEGV_PKUERR && info.signo === SIGSEGV) putU32(f, SIGINFO + 16 + 8 + 8, info.pkey);
  // The frame up to uc_sigmask in one user access; the siginfo only for an SA_SIGINFO handler
  // (copy_siginfo_to_user), else those bytes of the stack keep what they held.
  if (!(yield* copy_to_user(k, pc, t, frame, f.subarray(0, SIGINFO)))) return false;
  if (ka.flags & SA_SIGINFO && !(yield* copy_to_user(k, pc, t, frame + BigInt(SIGINFO), f.subarray(SIGINFO)))) return false;
  t.sp = Number(frame);
  t.pc = Number(ka.handler);
  // x64_setup_rt_frame: regs->di = sig, regs->ax = 0, regs->si = &frame->info, regs->dx =
  // &frame->uc (for every handler, SA_SIGINFO or not); the handler's variables are those
  // registers, the frame's address (its entry rsp) and the siginfo fields it would read through RSI.
  // The interrupted context's handler names, when it is a handler, for the way back.
  if (vars.has('signo')) t.interruptedNames.set(Number(frame), SIGNAL_HANDLER_NAMES.map((n) => vars.get(n)));
  else t.interruptedNames.delete(Number(frame));
  vars.set('rdi', BigInt(info.signo));
  vars.set('rax', 0n);
  vars.set('rsi', frame + BigInt(SIGINFO));
  vars.set('rdx', frame + BigInt(UC_FLAGS));
  t.vars.set('frame', frame);
  t.vars.set('siginfo', frame + BigInt(SIGINFO));
  t.vars.set('ucontext', frame + BigInt(UC_FLAGS));
  // x64_setup_rt_frame: the handler runs in 64-bit mode, on the interrupted SS if it is valid.
  t.cs = __USER_CS;
  if (t.ss !== __USER_DS) force_valid_ss(pc, t);
  t.vars.set('signo', BigInt(info.signo));
  t.vars.set('si_code', BigInt(info.code));
  t.vars.set('si_addr', info.addr);
  t.vars.set('si_pkey', info.code === SEGV_PKUERR && info.signo === SIGSEGV ? BigInt(info.pkey) : 0n);
  if (k.ospke) cpu.wrpkru(handler_pkru(k, t, pkru));
  return true;
}

/**
 * fpu__restore_sig: PKRU from the frame's XSAVE image when it is an xstate frame whose
 * XSTATE_BV has PKRU, else PKRU's init value 0. Without XSAVE the image is the 512-byte
 * FXSAVE one (xstate_sigframe_size), restored by FXRSTOR (__restore_fpregs_from_user's
 * fxrstor_from_user_sigframe), and there is no PKRU. False if the image cannot be read.
 * XXX: the x87 and SSE registers are not modelled, so neither FXRSTOR nor XRSTOR loads
 * anything, and a reserved MXCSR bit in the image is not the #GP (SIGSEGV) it is in Linux.
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
 * rt_sigreturn (arch/x86/kernel/signal_64.c, 6.12): the frame sits just above the stack pointer
 * (the handler's return popped pretcode). In Linux's order: the signal mask (SIGKILL and SIGSTOP
 * stay unblocked), restored even if a later step fails; the frame's uc_stack given back to
 * sigaltstack (restore_altstack) while PKRU and the stack pointer are still the handler's (6.12
 * moved it before restore_sigcontext, "x86/pkeys: Restore altstack access in sigreturn()", so
 * an alternate stack the interrupted PKRU denies can still be read, and its -EPERM check sees
 * the handler's stack pointer); restore_sigcontext: the instruction and stack pointers, CS and
 * SS (RPL 3, force_valid_ss unless UC_STRICT_RESTORE_SS), then PKRU from the XSAVE image (a
 * handler's edit of it takes effect); then the shadow-stack signal token is popped. The general
 * registers (r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx) go back to their variables first. A frame
 * that cannot be read or checked is SIGSEGV (signal_fault), after what was restored before it.
 */
export function* sys_rt_sigreturn(k: Kernel, pc: PerCpu, t: Task): KPath {
  const frame = t.sp - 8;
  const f = yield* copy_from_user(k, pc, t, BigInt(frame), RT_SIGFRAME_SIZE);
  if (!f) return signal_fault(k, t);
  // set_current_blocked first: the mask is back even if what follows fails.
  t.blocked = getU64(f, UC_SIGMASK) & ~SIG_KERNEL_ONLY_MASK;
  if (!(yield* restore_altstack(k, pc, t, BigInt(frame + UC_STACK_SS_SP), BigInt(t.sp)))) return signal_fault(k, t);
  // restore_sigcontext: the registers, then CS and SS forced to RPL 3; SS fixed up
  // (force_valid_ss) unless the frame asks for a strict restore, for 64-bit code
  // (user_64bit_mode: cs == __USER_CS). The IRET back to user mode checks them (desc.ts
  // iret_segments). Then the FPU state (fpu__restore_sig), PKRU with it.
  // The general registers go back to the thread's variables of their names (a register that
  // was never set and comes back 0 stays unset), rax included: it is also the syscall's return.
  for (let i = 0; i < SC_GPRS.length; i++) {
    const v = getU64(f, UC_MCONTEXT + 8 * i);
    if (v !== 0n || t.vars.has(SC_GPRS[i])) t.vars.set(SC_GPRS[i], v);
  }
  restore_handler_names(t, frame);
  t.pc = Number(getU64(f, SC_RIP));
  t.sp = Number(getU64(f, SC_RSP));
  const csss = getU64(f, SC_CS);
  t.cs = Number(csss & 0xffffn) | 3;
  t.ss = Number((csss >> 48n) & 0xffffn) | 3;
  if (!(getU64(f, UC_FLAGS) & BigInt(UC_STRICT_RESTORE_SS)) && t.cs === __USER_CS) force_valid_ss(pc, t);
  if (!(yield* restore_fpstate(k, pc, t, getU64(f, SC_FPSTATE)))) return signal_fault(k, t);
  if (!(yield* restore_signal_shadow_stack(k, pc, t))) return signal_fault(k, t);
  t.skipResult = true;
  return Number(BigInt.asIntN(64, getU64(f, SC_RAX)));
}

/** The variables setup_rt_frame sets for a handler besides its registers (user/program.ts HANDLER_NAMES, which a scenario may not assign). */
export const SIGNAL_HANDLER_NAMES: readonly string[] = Object.freeze(['signo', 'si_code', 'si_addr', 'si_pkey', 'frame', 'siginfo', 'ucontext']);

/**
 * The simulator's: the interrupted handler's names (`$signo`...) come back when the signal
 * frame at `frame` is left (rt_sigreturn, longjmp), as the values a nested handler's run cannot
 * touch; nothing when the frame interrupted no handler.
 */
export function restore_handler_names(t: Task, frame: number): void {
  const saved = t.interruptedNames.get(frame);
  if (!saved) return;
  t.interruptedNames.delete(frame);
  for (let i = 0; i < SIGNAL_HANDLER_NAMES.length; i++) {
    const v = saved[i];
    if (v === undefined) t.vars.delete(SIGNAL_HANDLER_NAMES[i]);
    else t.vars.set(SIGNAL_HANDLER_NAMES[i], v);
  }
}

/** signal_fault (arch/x86/kernel/signal.c): a frame rt_sigreturn cannot use is SIGSEGV; the syscall returns 0. */
function signal_fault(k: Kernel, t: Task): number {
  force_sig(k, t, SIGSEGV);
  return 0;
}
