/**
 * ptrace (kernel/ptrace.c, 6.12): a tracer attaches to a thread (PTRACE_ATTACH, which stops it
 * with SIGSTOP; PTRACE_SEIZE, which does not; PTRACE_TRACEME, which makes the real parent the
 * tracer), and while the tracee sits in a ptrace stop (signal.ts ptrace_stop: signal-delivery,
 * group-stop and PTRACE_EVENT stops) reads and writes its memory (PEEK/POKE through
 * access_remote_vm with FOLL_FORCE: protection keys do not apply, a read-only private page is
 * copied on write), its registers (ptrace_64.ts) and its siginfo, and resumes it (PTRACE_CONT
 * with a signal to deliver, PTRACE_DETACH, PTRACE_KILL). PTRACE_INTERRUPT and PTRACE_LISTEN work
 * on seized tracees. The tracer's wait reports ptrace stops without WUNTRACED (exit.ts); a
 * tracer's exit detaches its tracees (exit_ptrace).
 *
 * XXX: every task is root with the same ids and dumpable, so __ptrace_may_access always allows
 * (no Yama, no LSM); ptrace_attach does not wait for a stopped tracee's STOPPED -> TRACED move
 * (JOBCTL_TRAPPING: only a WNOHANG wait right after the attach can tell); PTRACE_SYSCALL,
 * PTRACE_SINGLESTEP, PTRACE_PEEKSIGINFO, PTRACE_GETSIGMASK and the other requests the model
 * lacks are -EIO; the
 * event options other than PTRACE_O_TRACEEXEC and PTRACE_O_EXITKILL are kept but raise no event
 * (fork, clone and vfork children are not traced: no PTRACE_O_TRACEFORK, no CLONE_PTRACE).
 */
import { release_task, do_notify_parent } from './exit.js';
import type { Kernel, PerCpu } from './kernel.js';
import { mmget_not_zero, mmput } from './mmput.js';
import { FOLL_FORCE, FOLL_WRITE } from './gup.js';
import { access_remote_vm } from './proc_base.js';
import { arch_ptrace } from './ptrace_64.js';
import {
  __fatal_signal_pending, __wake_up_parent, JOBCTL_LISTENING, JOBCTL_PTRACE_FROZEN, JOBCTL_STOP_PENDING, JOBCTL_STOP_SIGMASK, JOBCTL_TRACED, JOBCTL_TRAP_MASK, JOBCTL_TRAP_NOTIFY,
  JOBCTL_TRAP_STOP, JOBCTL_STOPPED, ptrace_signal_wake_up, send_signal, SIGNAL_STOP_STOPPED, task_clear_jobctl_pending, task_set_jobctl_pending,
} from './signal.js';
import { wake_up_state } from './sched.js';
import type { KPath, KSteps } from './steps.js';
import type { Task } from './task.js';
import type { SigInfo } from './task.js';
import { copy_from_user, copy_to_user, put_user_u64, putU32, putU64 } from './uaccess.js';
import { capable } from './capability.js';
import {
  CAP_SYS_ADMIN, EFAULT, EINVAL, EIO, EPERM, ESRCH, PTRACE_ATTACH, PTRACE_CONT, PTRACE_DETACH, PTRACE_GETEVENTMSG, PTRACE_GETSIGINFO, PTRACE_INTERRUPT, PTRACE_KILL, PTRACE_LISTEN,
  PTRACE_EVENT_STOP, PTRACE_O_EXITKILL, PTRACE_O_MASK, PTRACE_O_SUSPEND_SECCOMP, PTRACE_PEEKDATA, PTRACE_PEEKTEXT, PTRACE_POKEDATA, PTRACE_POKETEXT, PTRACE_SEIZE,
  PTRACE_SETOPTIONS, PTRACE_SETSIGINFO, PTRACE_TRACEME, SA_NOCLDWAIT, SI_KERNEL, SIG_IGN, SIGCHLD, SIGKILL, SIGSTOP, SIGTRAP,
} from './uapi.js';

// task->ptrace (include/linux/ptrace.h).
export const PT_PTRACED = 0x00000001;
export const PT_SEIZED = 0x00010000;
/** The PTRACE_O_* options sit above PT_OPT_FLAG_SHIFT: PT_EVENT_FLAG(event) is option bit `event`. */
const PT_OPT_FLAG_SHIFT = 3;
export function PT_EVENT_FLAG(event: number): number {
  return 1 << (PT_OPT_FLAG_SHIFT + event);
}
const PT_EXITKILL = PTRACE_O_EXITKILL << PT_OPT_FLAG_SHIFT;

/** task_is_traced: `t` is in a ptrace stop (JOBCTL_TRACED). */
export function task_is_traced(t: Task): boolean {
  return (t.jobctl & JOBCTL_TRACED) !== 0;
}

/** ptrace_link: `child` is traced by `tracer` (its ->parent while traced; on tracer->ptraced). */
function ptrace_link(child: Task, tracer: Task): void {
  tracer.ptraced.push(child);
  child.ptracer = tracer;
}

/**
 * __ptrace_unlink: `child` is no longer traced. Its pending traps go; if a group stop is in
 * effect and it is not exiting it is to stop again (JOBCTL_STOP_PENDING, SIGSTOP if it had no
 * stop signal); a ptrace stop ends (ptrace_signal_wake_up with resume).
 */
export function __ptrace_unlink(k: Kernel, child: Task): void {
  const tracer = child.ptracer;
  if (tracer) {
    const i = tracer.ptraced.indexOf(child);
    if (i >= 0) tracer.ptraced.splice(i, 1);
  }
  child.ptracer = null;
  child.ptrace = 0;
  task_clear_jobctl_pending(child, JOBCTL_TRAP_MASK);
  const g = child.group;
  if (!child.exiting && (g.flags & SIGNAL_STOP_STOPPED || g.group_stop_count)) {
    child.jobctl |= JOBCTL_STOP_PENDING;
    if (!(child.jobctl & JOBCTL_STOP_SIGMASK)) child.jobctl |= SIGSTOP;
  }
  if (child.jobctl & JOBCTL_STOP_PENDING || task_is_traced(child)) ptrace_signal_wake_up(k, child, true);
}

/** ptrace_freeze_traced: a traced, not LISTENING tracee without SIGKILL pending is held (JOBCTL_PTRACE_FROZEN) for the request; false otherwise. */
function ptrace_freeze_traced(task: Task): boolean {
  if (task.jobctl & JOBCTL_LISTENING) return false;
  if (task_is_traced(task) && !__fatal_signal_pending(task)) {
    task.jobctl |= JOBCTL_PTRACE_FROZEN;
    return true;
  }
  return false;
}

/** ptrace_unfreeze_traced: the request is over; a SIGKILL that came meanwhile now ends the stop. */
function ptrace_unfreeze_traced(k: Kernel, task: Task): void {
  task.jobctl &= ~JOBCTL_PTRACE_FROZEN;
  if (__fatal_signal_pending(task)) {
    task.jobctl &= ~JOBCTL_TRACED;
    wake_up_state(k, task, 'traced');
  }
}

/**
 * ptrace_check_attach: 0 if `child` is traced by the caller `t` (that thread: ->parent ==
 * current) and, unless `ignore_state` (PTRACE_KILL, PTRACE_INTERRUPT), sits in a ptrace stop,
 * which is then frozen; -ESRCH otherwise.
 */
function ptrace_check_attach(t: Task, child: Task, ignore_state: boolean): number {
  if (child.ptrace && child.ptracer === t && (ignore_state || ptrace_freeze_traced(child))) return 0;
  return -ESRCH;
}

/**
 * check_ptrace_options: options outside PTRACE_O_MASK are -EINVAL; PTRACE_O_SUSPEND_SECCOMP
 * needs CAP_SYS_ADMIN (-EPERM; the model has no seccomp, so the caller's mode is always off).
 */
function check_ptrace_options(t: Task, data: bigint): number {
  if (data & ~BigInt(PTRACE_O_MASK)) return -EINVAL;
  if (data & BigInt(PTRACE_O_SUSPEND_SECCOMP) && !capable(t, CAP_SYS_ADMIN)) return -EPERM;
  return 0;
}

/**
 * ptrace_attach (PTRACE_ATTACH, PTRACE_SEIZE), in 6.12's order: for SEIZE, addr must be 0 and
 * the options within PTRACE_O_MASK (both -EIO), then check_ptrace_options; a kernel thread or
 * a thread of the caller's own group is -EPERM; __ptrace_may_access (always allowed here);
 * an exiting (zombie) task or one already traced is -EPERM. Then the task is traced by `t`,
 * ATTACH queues SIGSTOP for it (SEND_SIG_PRIV: si_code SI_KERNEL, to the thread), and a task
 * already in a group stop is woken to move to a STOP trap (ptrace_set_stopped).
 */
function ptrace_attach(k: Kernel, t: Task, task: Task, request: number, addr: bigint, data: bigint): number {
  const seize = request === PTRACE_SEIZE;
  let flags: number;
  if (seize) {
    if (addr !== 0n) return -EIO;
    if (data & ~BigInt(PTRACE_O_MASK)) return -EIO;
    const r = check_ptrace_options(t, data);
    if (r) return r;
    flags = PT_PTRACED | PT_SEIZED | (Number(data) << PT_OPT_FLAG_SHIFT);
  } else flags = PT_PTRACED;
  if (task.kthread) return -EPERM;
  if (task.group === t.group) return -EPERM;
  if (task.state === 'zombie' || task.state === 'dead') return -EPERM;
  if (task.ptrace) return -EPERM;
  task.ptrace = flags;
  ptrace_link(task, t);
  // ptrace_set_stopped
  if (!seize) send_signal(k, task, { signo: SIGSTOP, code: SI_KERNEL, addr: 0n, pid: 0, pkey: 0 }, false);
  if (task.state === 'stopped' && task_set_jobctl_pending(task, JOBCTL_TRAP_STOP)) {
    task.jobctl &= ~JOBCTL_STOPPED;
    wake_up_state(k, task, 'stopped');
  }
  return 0;
}

/**
 * ptrace_traceme: -EPERM if already traced; else, unless the real parent is exiting (then 0
 * and nothing: it untraces at once), the real parent (the model's: its group's leader) traces
 * the caller. The first process, which has no parent, is not traced.
 */
function ptrace_traceme(t: Task): number {
  if (t.ptrace) return -EPERM;
  const real = t.parent;
  if (real && !real.exiting && real.state !== 'zombie' && real.state !== 'dead') {
    t.ptrace = PT_PTRACED;
    ptrace_link(t, real);
  }
  return 0;
}

/** ignoring_children: the tracer's group ignores SIGCHLD or set SA_NOCLDWAIT (its children reap themselves). */
function ignoring_children(tracer: Task): boolean {
  const ka = tracer.sighand.action[SIGCHLD];
  return ka.handler === SIG_IGN || (ka.flags & SA_NOCLDWAIT) !== 0;
}

/**
 * __ptrace_detach: untraces `p`; a zombie leader whose group is gone is then reported to its
 * real parent if that is another process (do_notify_parent, which may reap it), or reaped if
 * the tracer is its real parent and ignores its children. True if `p` is to be released.
 */
function __ptrace_detach(k: Kernel, tracer: Task, p: Task): boolean {
  __ptrace_unlink(k, p);
  if (p.state !== 'zombie') return false;
  let dead = !p.isLeader;
  if (!dead && p.group.live === 0) {
    if (!p.parent || p.parent.group !== tracer.group) dead = do_notify_parent(k, p, p.exit_signal);
    else if (ignoring_children(tracer)) {
      __wake_up_parent(k, tracer);
      dead = true;
    }
  }
  return dead;
}

/** ptrace_detach (PTRACE_DETACH): `data` must be a valid signal (-EIO); it is what the tracee resumes with. */
function ptrace_detach(k: Kernel, t: Task, child: Task, data: bigint): number {
  if (data > 64n) return -EIO;
  child.exit_code = Number(data);
  __ptrace_detach(k, t, child);
  return 0;
}

/**
 * exit_ptrace (from exit_notify's forget_original_parent): the exiting `tracer` detaches every
 * tracee, killing those seized with PTRACE_O_EXITKILL first; a dead zombie tracee is released.
 */
export function exit_ptrace(k: Kernel, tracer: Task): void {
  for (const p of [...tracer.ptraced]) {
    if (p.ptrace & PT_EXITKILL) send_signal(k, p, { signo: SIGKILL, code: SI_KERNEL, addr: 0n, pid: 0, pkey: 0 }, false);
    if (__ptrace_detach(k, tracer, p)) release_task(k, p);
  }
}

/**
 * ptrace_resume (PTRACE_CONT): `data` must be a valid signal (-EIO); it becomes the tracee's
 * exit_code, which its ptrace_stop returns (the signal to deliver, 0 for none), and the stop ends.
 */
function ptrace_resume(k: Kernel, child: Task, data: bigint): number {
  if (data > 64n) return -EIO;
  child.exit_code = Number(data);
  child.jobctl &= ~JOBCTL_TRACED;
  wake_up_state(k, child, 'traced');
  return 0;
}

/**
 * ptrace_access_vm: up to `buf.length` bytes of `tsk`'s memory at `addr` through
 * access_remote_vm (FOLL_REMOTE: no protection-key check), only for its tracer; 0 when `tsk`
 * has no mm or the caller does not trace it. Returns the bytes moved.
 */
function* ptrace_access_vm(k: Kernel, pc: PerCpu, t: Task, tsk: Task, addr: bigint, buf: Uint8Array, gup_flags: number): KSteps<number> {
  const mm = tsk.kthread ? null : tsk.mm;
  if (!mm || !mmget_not_zero(mm)) return 0;
  let ret = 0;
  if (tsk.ptrace && tsk.ptracer === t) ret = yield* access_remote_vm(k, pc, t, mm, Number(addr), buf, gup_flags);
  yield* mmput(k, pc, mm);
  return ret;
}

/**
 * copy_siginfo_to_user: the 128-byte siginfo_t at `to` (-EFAULT): si_signo, si_errno 0, si_code,
 * then the union as the sender filled it, laid out as the signal frame's (signal.ts): a child's
 * si_pid and si_status, a fault's si_addr (and si_pkey), a sender's si_pid (si_uid 0: root).
 */
function* copy_siginfo_to_user(k: Kernel, pc: PerCpu, t: Task, to: bigint, info: SigInfo): KPath {
  const b = new Uint8Array(128);
  putU32(b, 0, info.signo);
  putU32(b, 8, info.code);
  if (info.status !== undefined) {
    putU32(b, 16, info.pid);
    putU32(b, 24, info.status);
  } else if (info.code === SI_KERNEL || (info.code > 0 && info.code < 0x80 && info.signo !== SIGTRAP)) putU64(b, 16, info.addr);
  else putU32(b, 16, info.pid);
  if (info.pkey) putU32(b, 32, info.pkey);
  return (yield* copy_to_user(k, pc, t, to, b)) ? 0 : -EFAULT;
}

/**
 * The fields of a user siginfo_t the model keeps, into `info` (laid out as copy_siginfo_to_user
 * writes them): si_signo, si_code, and si_pid and si_status, si_addr (and si_pkey) or si_pid.
 */
function copy_siginfo_from_user(info: SigInfo, b: Uint8Array): void {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  info.signo = dv.getInt32(0, true);
  info.code = dv.getInt32(8, true);
  if (info.status !== undefined) {
    info.pid = dv.getInt32(16, true);
    info.status = dv.getInt32(24, true);
  } else if (info.code === SI_KERNEL || (info.code > 0 && info.code < 0x80 && info.signo !== SIGTRAP)) {
    info.addr = dv.getBigUint64(16, true);
    info.pkey = dv.getUint32(32, true);
  } else info.pid = dv.getInt32(16, true);
}

/**
 * ptrace_request (kernel/ptrace.c): the requests common to every architecture. PEEKTEXT and
 * PEEKDATA read a word with FOLL_FORCE (-EIO if not all of it) and store it at `data` (the
 * syscall's ABI: the C library's wrapper returns it instead; -EFAULT); POKETEXT and POKEDATA
 * write `data` with FOLL_FORCE | FOLL_WRITE (-EIO). SETOPTIONS replaces the options
 * (check_ptrace_options). GETEVENTMSG stores the stop's message; GETSIGINFO its siginfo (-EINVAL
 * for a stop without one), SETSIGINFO replaces it (what a signal-delivery-stop then delivers). INTERRUPT (seized only, else -EIO) schedules a STOP trap; LISTEN
 * (seized, in a PTRACE_EVENT_STOP, else -EIO) lets the tracee wait in it untraced. CONT and
 * DETACH resume with a signal; KILL sends SIGKILL. Anything else is -EIO.
 */
export function ptrace_request(k: Kernel, pc: PerCpu, t: Task, child: Task, request: number, addr: bigint, data: bigint): number | KPath {
  const seized = (child.ptrace & PT_SEIZED) !== 0;
  switch (request) {
    case PTRACE_PEEKTEXT:
    case PTRACE_PEEKDATA:
      return (function* (): KPath {
        const buf = new Uint8Array(8);
        const copied = yield* ptrace_access_vm(k, pc, t, child, addr, buf, FOLL_FORCE);
        if (copied !== 8) return -EIO;
        return (yield* copy_to_user(k, pc, t, data, buf)) ? 0 : -EFAULT;
      })();
    case PTRACE_POKETEXT:
    case PTRACE_POKEDATA:
      return (function* (): KPath {
        const buf = new Uint8Array(8);
        putU64(buf, 0, data);
        const copied = yield* ptrace_access_vm(k, pc, t, child, addr, buf, FOLL_FORCE | FOLL_WRITE);
        return copied === 8 ? 0 : -EIO;
      })();
    case PTRACE_SETOPTIONS: {
      const r = check_ptrace_options(t, data);
      if (r) return r;
      child.ptrace = (child.ptrace & ~(PTRACE_O_MASK << PT_OPT_FLAG_SHIFT)) | (Number(data) << PT_OPT_FLAG_SHIFT);
      return 0;
    }
    case PTRACE_GETEVENTMSG:
      return (function* (): KPath {
        return yield* put_user_u64(k, pc, t, data, child.ptrace_message);
      })();
    case PTRACE_GETSIGINFO: {
      const info = child.last_siginfo;
      if (!info) return -EINVAL;
      return copy_siginfo_to_user(k, pc, t, data, info);
    }
    case PTRACE_SETSIGINFO:
      // copy_siginfo_from_user, then ptrace_setsiginfo: the stop's siginfo is replaced (-EINVAL for a stop without one).
      return (function* (): KPath {
        const b = yield* copy_from_user(k, pc, t, data, 128);
        if (!b) return -EFAULT;
        const info = child.last_siginfo;
        if (!info) return -EINVAL;
        copy_siginfo_from_user(info, b);
        return 0;
      })();
    case PTRACE_INTERRUPT:
      if (!seized) return -EIO;
      // INTERRUPT does not disturb a trap in progress, save a LISTEN: that one re-traps.
      if (task_set_jobctl_pending(child, JOBCTL_TRAP_STOP)) ptrace_signal_wake_up(k, child, (child.jobctl & JOBCTL_LISTENING) !== 0);
      return 0;
    case PTRACE_LISTEN: {
      if (!seized) return -EIO;
      const si = child.last_siginfo;
      if (!si || si.code >> 8 !== PTRACE_EVENT_STOP) return -EIO;
      child.jobctl |= JOBCTL_LISTENING;
      // A NOTIFY that came since the trap began re-traps at once.
      if (child.jobctl & JOBCTL_TRAP_NOTIFY) ptrace_signal_wake_up(k, child, true);
      return 0;
    }
    case PTRACE_DETACH:
      return ptrace_detach(k, t, child, data);
    case PTRACE_CONT:
      return ptrace_resume(k, child, data);
    case PTRACE_KILL:
      send_signal(k, child, { signo: SIGKILL, code: 0, addr: 0n, pid: t.tgid, pkey: 0 }, false);
      return 0;
    default:
      return -EIO;
  }
}

/**
 * sys_ptrace(request, pid, addr, data) (SYSCALL_DEFINE4): TRACEME first; else the thread `pid`
 * (-ESRCH if none); ATTACH and SEIZE go to ptrace_attach; every other request needs
 * ptrace_check_attach (-ESRCH unless the caller traces it and, but for KILL and INTERRUPT, it
 * is in a ptrace stop, frozen for the request), then arch_ptrace; the tracee is unfrozen after
 * (unless it was detached).
 */
export function sys_ptrace(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): number | KPath {
  const req = BigInt.asIntN(64, a[0]);
  const request = req >= -0x80000000n && req <= 0x7fffffffn ? Number(req) : -1;
  const addr = a[2];
  const data = a[3];
  if (request === PTRACE_TRACEME) return ptrace_traceme(t);
  const child = k.find_task_by_vpid(Number(BigInt.asIntN(32, a[1])));
  if (!child || child.state === 'dead') return -ESRCH;
  if (request === PTRACE_ATTACH || request === PTRACE_SEIZE) return ptrace_attach(k, t, child, request, addr, data);
  const r = ptrace_check_attach(t, child, request === PTRACE_KILL || request === PTRACE_INTERRUPT);
  if (r < 0) return r;
  const ret = arch_ptrace(k, pc, t, child, request, addr, data);
  if (typeof ret === 'number') {
    if (ret || request !== PTRACE_DETACH) ptrace_unfreeze_traced(k, child);
    return ret;
  }
  return (function* (): KPath {
    const v = yield* ret;
    ptrace_unfreeze_traced(k, child);
    return v;
  })();
}
