/**
 * Leaving (kernel/exit.c): exit, exit_group, do_exit with exit_mm and exit_notify, and
 * wait4 and waitid. A thread that is not the last of its group goes away silently; the group's leader
 * becomes a zombie when the whole group is gone, its parent gets SIGCHLD (its exit_signal) and
 * is woken, and wait4 reaps it. A process without a parent is reaped at once (as init would).
 * A traced task reports to its tracer first (ptrace.ts): its wait sees ptrace stops and reaps a
 * traced zombie, which then goes to the real parent.
 */
import { exit_files } from './file.js';
import type { Kernel, PerCpu } from './kernel.js';
import type { MmStruct } from './mm.js';
import type { PageRefs } from './page.js';
import { mmput } from './mmput.js';
import { pti_stack_unmap } from './pti.js';
import { process_reach } from './reach.js';
import { flush_tlb_kernel_range } from './tlbflush.js';
import { wake_up_process } from './sched.js';
import {
  __wake_up_parent, do_notify_parent_cldstop, ptrace_reparented, send_signal, signal_pending, task_participate_group_stop, zap_other_threads, ERESTARTSYS, JOBCTL_LISTENING,
  JOBCTL_STOP_PENDING, SIGNAL_STOP_CONTINUED, SIGNAL_STOP_STOPPED,
} from './signal.js';
import { __ptrace_unlink, exit_ptrace, task_is_traced } from './ptrace.js';
import { STEP_SLEEP, type KPath, type KSteps } from './steps.js';
import { FLAGS_SHARED, futex_wake } from './futex.js';
import { shstk_free } from './shstk.js';
import type { Task } from './task.js';
import { copy_to_user, putU32 } from './uaccess.js';
import { enter_lazy_tlb } from './tlbflush.js';
import { checkMmAfterExit } from './debug.js';
import {
  FUTEX_BITSET_MATCH_ANY, CLD_CONTINUED, CLD_DUMPED, CLD_EXITED, CLD_KILLED, CLD_STOPPED, CLD_TRAPPED, ECHILD, EFAULT, EINVAL, ESRCH, P_ALL, P_PGID, P_PID, SA_NOCLDWAIT, SIG_IGN, SIGCHLD, SIGCONT,
  WCONTINUED, WEXITED, WNOHANG, WNOWAIT, WSTOPPED, WUNTRACED, __WALL, __WCLONE, __WNOTHREAD,
} from './uapi.js';
import { track } from '../track.js';

/** sys_exit(code): ends the calling thread only. */
export function sys_exit(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  return do_exit(k, pc, t, Number(a[0] & 0xffn) << 8);
}

/**
 * sys_exit_group(code): do_group_exit: every thread of the group gets SIGKILL, then this one
 * exits. While another thread execs (signal->group_exec_task) only this one exits, with code 0.
 */
export function sys_exit_group(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  const g = t.group;
  if (!g.groupExit && g.group_exec_task) return do_exit(k, pc, t, 0);
  if (!g.groupExit) {
    // signal->flags = SIGNAL_GROUP_EXIT: a group stop in progress or done is over.
    g.groupExit = true;
    g.flags = 0;
    g.group_exit_code = Number(a[0] & 0xffn) << 8;
    zap_other_threads(k, t);
  }
  return do_exit(k, pc, t, g.group_exit_code);
}

/**
 * do_exit: drops the mm (exit_mm: vfork release, lazy TLB, mmput with its flushes), then
 * exit_notify. `code` is the wait status this thread reports if it is the last.
 */
export function* do_exit(k: Kernel, pc: PerCpu, t: Task, code: number): KPath {
  const g = t.group;
  exit_signals(k, pc, t);
  g.live--;
  const group_dead = g.live === 0;
  if (group_dead && !g.groupExit) {
    g.groupExit = true;
    g.group_exit_code = code;
  }
  t.exit_code = code;
  // exit_mm
  const mm = t.mm;
  if (mm) {
    // mm_release -> deactivate_mm: the thread's own shadow stack is unmapped first.
    yield* shstk_free(k, pc, t);
    yield* mm_release(k, pc, t, mm);
    yield* pti_stack_free(k, pc, t);
    t.mm = null;
    enter_lazy_tlb(k, pc);
    const last = mm.mm_users === 1;
    if (last) record_reach(k, t, mm);
    yield* mmput(k, pc, mm);
    if (last && k.options.debug_vm) checkMmAfterExit(k, pc, mm);
  }
  exit_files(t);
  if (t.sighand.count > 1) t.sighand.count--;
  exit_notify(k, t, group_dead);
  // The thread execing in de_thread, if any, waits for this one (notify_count).
  if (g.group_exec_task) wake_up_process(k, g.group_exec_task);
  if (k.events.on) k.emit({ type: 'exit', cpu: pc.id, tid: t.tid, status: group_dead ? g.group_exit_code : code });
  return 0;
}

/**
 * exit_signals (kernel/signal.c): the thread is exiting (PF_EXITING). If other threads live and
 * no group exit is under way, a group stop that waits for this thread counts it as stopped
 * (task_participate_group_stop), and if it was the last the parent hears CLD_STOPPED.
 * XXX: retarget_shared_pending (waking another thread for a group signal this one would
 * have taken) is not modelled.
 */
function exit_signals(k: Kernel, pc: PerCpu, t: Task): void {
  const g = t.group;
  const alone = g.live <= 1;
  t.exiting = true;
  if (alone || g.groupExit) return;
  if (t.jobctl & JOBCTL_STOP_PENDING && task_participate_group_stop(t)) do_notify_parent_cldstop(k, pc, t, CLD_STOPPED);
}

/** Records the process's Meltdown reach before its last user drops `mm` (when the kernel keeps a reach log). */
export function record_reach(k: Kernel, t: Task, mm: MmStruct): void {
  if (k.reachLog) k.reachLog.push({ pid: t.tgid, image: t.image ? t.image.name : '', reach: process_reach(k, mm) });
}

/**
 * Frees the task's PTI stack (entry_stack per_task): the top of the task's vmalloc'd stack, so
 * free_thread_stack -> vfree: its PTEs are cleared (in the mm's tables, which the user copy
 * shares), flush_tlb_kernel_range drops the range on every CPU (flush_tlb_one_kernel per page,
 * which under PTI also marks the CPU's other ASIDs with invalidate_other), then the frames
 * are freed. XXX: stricter than 6.12, which frees a dead task's stack later and flushes later
 * still: put_task_stack after the task's last switch (finish_task_switch), free_thread_stack
 * keeping up to two stacks per CPU mapped for reuse and otherwise vfree from an RCU callback;
 * vfree clears the PTEs and frees the pages at once, and the vmap area's TLB flush comes with
 * the lazy purge (__purge_vmap_area_lazy), one flush_tlb_kernel_range over every lazily freed
 * area, usually above the ceiling (do_flush_tlb_all). The model unmaps, flushes and frees
 * synchronously from do_exit.
 */
export function* pti_stack_free(k: Kernel, pc: PerCpu, t: Task): KPath {
  const s = t.ptiStack;
  if (!s || !t.mm) return 0;
  t.ptiStack = null;
  // The frames are the path's own until freed: held, so a debug check on another CPU during
  // the flush (another thread exiting, an execve in the group) counts them.
  const held: PageRefs = track({ refs: s.pfns });
  k.pages.held.add(held);
  pti_stack_unmap(k, t.mm, s);
  yield* flush_tlb_kernel_range(k, pc, Number(s.va), Number(s.va) + s.pfns.length * 4096);
  for (const pfn of s.pfns) k.pages.put_page(pfn);
  k.pages.held.delete(held);
  return 0;
}

/**
 * mm_release (kernel/fork.c, from exit_mm_release and exec_mm_release), after deactivate_mm:
 * with clear_child_tid set and other users of `mm`, put_user(0, clear_child_tid) (a fault
 * ignored) and a shared FUTEX_WAKE of one waiter there; clear_child_tid is then cleared. A vfork
 * child lets its parent go.
 */
export function* mm_release(k: Kernel, pc: PerCpu, t: Task, mm: MmStruct): KSteps<void> {
  if (t.clear_child_tid !== 0n) {
    if (mm.mm_users > 1) {
      const zero = new Uint8Array(4);
      yield* copy_to_user(k, pc, t, t.clear_child_tid, zero);
      yield* futex_wake(k, pc, t, t.clear_child_tid, FLAGS_SHARED, 1, FUTEX_BITSET_MATCH_ANY);
    }
    t.clear_child_tid = 0n;
  }
  const p = t.vforkParent;
  if (!p) return;
  t.vforkParent = null;
  p.vforkWaiting = false;
  wake_up_process(k, p);
}

/**
 * exit_notify: the task becomes a zombie. Its tracees are detached (exit_ptrace). Its children
 * are handed to no one (reaped when they die). When its group is gone the leader is reported
 * to its tracer if traced, else to the parent, or reaped at once if nobody waits (no parent,
 * SIGCHLD ignored or SA_NOCLDWAIT); non-leader threads reap themselves (XXX: a traced one too,
 * untraced first: 6.12 leaves it a zombie for its tracer's wait).
 */
function exit_notify(k: Kernel, t: Task, group_dead: boolean): void {
  if (t.ptraced.length) exit_ptrace(k, t);
  for (const c of t.group.children) if (group_dead) c.parent = null;
  t.state = 'zombie';
  if (!t.isLeader) {
    release_task(k, t);
    if (group_dead) notify_leader(k, t.group.threads[0]);
    return;
  }
  if (group_dead) notify_leader(k, t);
}

/**
 * Reports a dead group's leader to its tracer (SIGCHLD unless the tracer is its real parent,
 * then its exit_signal; never reaped here) or its parent, or reaps it if nobody will wait.
 */
function notify_leader(k: Kernel, leader: Task): void {
  if (leader.state !== 'zombie') return;
  if (leader.ptrace) {
    do_notify_parent(k, leader, ptrace_reparented(leader) ? SIGCHLD : leader.exit_signal);
    return;
  }
  const parent = leader.parent;
  if (!parent || parent.state === 'dead' || parent.state === 'zombie' && parent.group.live === 0) {
    release_task(k, leader);
    return;
  }
  if (do_notify_parent(k, leader, leader.exit_signal)) release_task(k, leader);
}

/**
 * do_notify_parent (kernel/signal.c): tells `tsk`'s tracer, or else its real parent, that it
 * died: signal `sig` with CLD_EXITED and the exit code or CLD_KILLED and the signal, and the
 * waiters woken. True (reap it now) if it is not traced and the parent ignores SIGCHLD or set
 * SA_NOCLDWAIT; the signal is still sent for SA_NOCLDWAIT ("implementation-defined: we do"),
 * not when SIGCHLD is SIG_IGN.
 */
export function do_notify_parent(k: Kernel, tsk: Task, sig: number): boolean {
  const parent = tsk.ptrace && tsk.ptracer ? tsk.ptracer : tsk.parent;
  if (!parent) return true;
  const status = tsk.group.groupExit ? tsk.group.group_exit_code : tsk.exit_code;
  const ka = parent.sighand.action[SIGCHLD];
  let autoreap = false;
  if (!tsk.ptrace && sig === SIGCHLD && (ka.handler === SIG_IGN || ka.flags & SA_NOCLDWAIT)) {
    autoreap = true;
    if (ka.handler === SIG_IGN) sig = 0;
  }
  if (sig > 0 && sig <= 64) {
    // si_status the killing signal, or the exit code for CLD_EXITED.
    const killed = (status & 0x7f) !== 0;
    send_signal(k, parent, { signo: sig, code: killed ? CLD_KILLED : CLD_EXITED, addr: 0n, pid: tsk.tgid, pkey: 0, status: killed ? status & 0x7f : (status >> 8) & 0xff }, true);
  }
  __wake_up_parent(k, parent);
  return autoreap;
}

/** release_task: the task is gone for good (untraced first: ptrace_release_task). */
export function release_task(k: Kernel, t: Task): void {
  if (t.ptrace) __ptrace_unlink(k, t);
  t.state = 'dead';
  t.reaped = true;
  k.tasks.delete(t.tid);
  if (t.isLeader && t.parent) {
    const list = t.parent.group.children;
    const i = list.indexOf(t);
    if (i >= 0) list.splice(i, 1);
  }
  k.exited.set(t.tid, t.group.groupExit ? t.group.group_exit_code : t.exit_code);
}

/**
 * sys_wait4(pid, status, options, rusage) (kernel/exit.c kernel_wait4, do_wait): options other
 * than WNOHANG, WUNTRACED (WSTOPPED), WCONTINUED, __WNOTHREAD, __WCLONE and __WALL are -EINVAL
 * (WNOWAIT too: only waitid takes it), then pid INT_MIN is -ESRCH. The children matching `pid`
 * (-1 any, > 0 that process, 0 or < -1 a process group: the model has one group, so any) are
 * looked at in the order they were forked (wait_consider_task): a dead group's zombie leader
 * is reaped (WEXITED, always on for wait4); with WUNTRACED a stopped group not yet reported
 * gives (signal << 8) | 0x7f and is reported once (group_exit_code cleared); with WCONTINUED a
 * continued one not yet reported gives 0xffff. The status is then stored (-EFAULT, after the
 * child is reaped). No match: -ECHILD; a match with nothing to report: 0 with WNOHANG, else
 * the caller sleeps until a child changes (__wake_up_parent) or a signal comes (-ERESTARTSYS).
 */
export function sys_wait4(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): number | KPath {
  const pid = Number(BigInt.asIntN(32, a[0]));
  const statusPtr = a[1];
  const options = Number(a[2] & 0xffffffffn);
  if ((options & ~(WNOHANG | WUNTRACED | WCONTINUED | __WNOTHREAD | __WCLONE | __WALL)) !== 0) return -EINVAL;
  if (pid === -2147483648) return -ESRCH;
  const wo: WaitOpts = { pid, flags: (options | WEXITED) >>> 0, stat: 0, info: null, notask_error: 0 };
  return (function* (): KPath {
    for (;;) {
      const ret = do_wait_thread(k, t, wo);
      if (ret > 0) {
        if (statusPtr !== 0n) {
          const b = new Uint8Array(4);
          putU32(b, 0, wo.stat);
          if (!(yield* copy_to_user(k, pc, t, statusPtr, b))) return -EFAULT;
        }
        return ret;
      }
      if (ret < 0) return ret;
      if (wo.flags & WNOHANG) return 0;
      if (signal_pending(t)) return -ERESTARTSYS;
      t.waitingChild = true;
      t.state = 'sleeping';
      yield STEP_SLEEP;
      t.waitingChild = false;
      if (signal_pending(t)) return -ERESTARTSYS;
    }
  })();
}

/**
 * struct wait_opts: the pid asked for (-1 any: P_ALL, wait4's -1, 0 and < -1 in the model's one
 * process group), the options (WEXITED added for wait4), the wait status found (wait4), and
 * what waitid reports (struct waitid_info: si_code, si_status, si_pid).
 */
interface WaitOpts {
  pid: number;
  flags: number;
  stat: number;
  info: { cause: number; status: number; pid: number } | null;
  /** -ECHILD until a task that may yet report is seen (0). */
  notask_error: number;
}

/**
 * do_wait (__do_wait): the first task with something to report (its pid, status in `wo.stat`):
 * the caller's group's children (do_wait_thread), then the tasks its threads trace
 * (ptrace_do_wait); 0 if some task matches but has nothing yet, -ECHILD if none matches.
 * XXX: __WNOTHREAD is accepted but children and tracees are the whole group's.
 */
function do_wait_thread(k: Kernel, t: Task, wo: WaitOpts): number {
  wo.notask_error = -ECHILD;
  for (const c of t.group.children) {
    const r = wait_consider_task(k, wo, c, false);
    if (r) return r;
  }
  for (const th of t.group.threads) {
    for (const p of th.ptraced) {
      const r = wait_consider_task(k, wo, p, true);
      if (r) return r;
    }
  }
  return wo.notask_error;
}

/**
 * wait_consider_task: whether `p` (a child, or with `ptrace` a tracee) has something for this
 * wait. eligible_child: the pid asked for, and __WCLONE/__WALL against its exit signal (not for
 * a tracee). A child traced by its own parent's group is looked at as a tracee (so its group
 * stop is not reported twice). A zombie whose group is gone is reaped (wait_task_zombie), but
 * one traced by another process only by its tracer; then a stop (wait_task_stopped) or a
 * continue (wait_task_continued). Clears notask_error for a task that may yet report.
 */
function wait_consider_task(k: Kernel, wo: WaitOpts, p: Task, ptrace: boolean): number {
  if (wo.pid > 0 && p.tid !== wo.pid) return 0;
  if (!ptrace && !(wo.flags & __WALL) && (p.exit_signal !== SIGCHLD) !== ((wo.flags & __WCLONE) !== 0)) return 0;
  if (p.state === 'dead') return 0;
  if (!ptrace && p.ptrace && !ptrace_reparented(p)) ptrace = true;
  if (p.state === 'zombie') {
    // delay_group_leader: a zombie leader with live threads falls through to stopped and continued.
    if (p.group.live === 0 && (ptrace || !p.ptrace)) return wait_task_zombie(k, wo, p);
    if (!ptrace || wo.flags & (WCONTINUED | WEXITED)) wo.notask_error = 0;
  } else wo.notask_error = 0;
  const stopped = wait_task_stopped(wo, ptrace, p);
  if (stopped) return stopped;
  return wait_task_continued(wo, p);
}

/**
 * wait_task_zombie: only with WEXITED (else 0). Reports the group's exit status; unless
 * WNOWAIT, the zombie is reaped, or, when its tracer reaps a leader whose real parent is
 * another process, untraced and reported to that parent (do_notify_parent), which reaps it later
 * unless it ignores its children.
 */
function wait_task_zombie(k: Kernel, wo: WaitOpts, p: Task): number {
  if (!(wo.flags & WEXITED)) return 0;
  const status = p.group.groupExit ? p.group.group_exit_code : p.exit_code;
  const tgid = p.tgid;
  if (!(wo.flags & WNOWAIT)) {
    if (p.ptrace && ptrace_reparented(p) && p.isLeader) {
      // EXIT_TRACE
      __ptrace_unlink(k, p);
      if (do_notify_parent(k, p, p.exit_signal)) release_task(k, p);
    } else release_task(k, p);
  }
  wo.stat = status;
  if (wo.info) {
    const exited = (status & 0x7f) === 0;
    wo.info.cause = exited ? CLD_EXITED : status & 0x80 ? CLD_DUMPED : CLD_KILLED;
    wo.info.status = exited ? status >> 8 : status & 0x7f;
    wo.info.pid = tgid;
  }
  return tgid;
}

/**
 * wait_task_stopped: a stop not yet reported. For a tracee (`ptrace`, no WUNTRACED needed) one
 * in a ptrace stop and not LISTENING, its exit_code; else, with WUNTRACED, a child whose group
 * is stopped (SIGNAL_STOP_STOPPED), the group's stop code. The code is consumed (unless
 * WNOWAIT) and the status is (code << 8) | 0x7f; waitid hears CLD_TRAPPED or CLD_STOPPED.
 * Returns the task's pid, or 0.
 */
function wait_task_stopped(wo: WaitOpts, ptrace: boolean, p: Task): number {
  if (!ptrace && !(wo.flags & WUNTRACED)) return 0;
  const g = p.group;
  let exit_code: number;
  if (ptrace) {
    if (!task_is_traced(p) || p.jobctl & JOBCTL_LISTENING) return 0;
    exit_code = p.exit_code;
  } else {
    if (!(g.flags & SIGNAL_STOP_STOPPED)) return 0;
    exit_code = g.group_exit_code;
  }
  if (!exit_code) return 0;
  if (!(wo.flags & WNOWAIT)) {
    if (ptrace) p.exit_code = 0;
    else g.group_exit_code = 0;
  }
  wo.stat = (exit_code << 8) | 0x7f;
  if (wo.info) wo.info = { cause: ptrace ? CLD_TRAPPED : CLD_STOPPED, status: exit_code, pid: p.tid };
  return p.tid;
}

/** wait_task_continued: with WCONTINUED, a child continued since it was last reported (SIGNAL_STOP_CONTINUED, cleared): status 0xffff. Its pid, or 0. */
function wait_task_continued(wo: WaitOpts, p: Task): number {
  if (!(wo.flags & WCONTINUED)) return 0;
  const g = p.group;
  if (!(g.flags & SIGNAL_STOP_CONTINUED)) return 0;
  if (!(wo.flags & WNOWAIT)) g.flags &= ~SIGNAL_STOP_CONTINUED;
  if (wo.info) wo.info = { cause: CLD_CONTINUED, status: SIGCONT, pid: p.tgid };
  else wo.stat = 0xffff;
  return p.tgid;
}

/**
 * sys_waitid(which, upid, infop, options, ru) (kernel/exit.c kernel_waitid_prepare, do_wait):
 * options other than WNOHANG, WNOWAIT, WEXITED, WSTOPPED, WCONTINUED, __WNOTHREAD, __WCLONE and
 * __WALL, or none of WEXITED, WSTOPPED and WCONTINUED, are -EINVAL; then `which`: P_ALL, P_PID
 * (upid > 0, else -EINVAL), P_PGID (upid >= 0; the model's one group: any child); others
 * (P_PIDFD included: no pidfds) -EINVAL. A P_PID without such a process is -ECHILD. The
 * children are looked at as wait4 looks at them (WEXITED must be asked for; WNOWAIT reports
 * and leaves the state to be reported again). On a report the result is 0 and the siginfo at
 * `infop` gets si_signo SIGCHLD, si_errno 0, si_code (CLD_EXITED, CLD_KILLED, CLD_DUMPED,
 * CLD_STOPPED, CLD_CONTINUED), si_pid, si_uid 0 and si_status; otherwise (an error, or nothing
 * with WNOHANG) those fields are written 0, as sys_waitid writes them whatever the result. Only
 * those fields: the padding after si_code is left. -EFAULT if `infop` cannot be written.
 */
export function sys_waitid(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  const which = Number(BigInt.asIntN(32, a[0]));
  const upid = Number(BigInt.asIntN(32, a[1]));
  const infop = a[2];
  const options = Number(a[3] & 0xffffffffn);
  const wo: WaitOpts = { pid: -1, flags: options >>> 0, stat: 0, info: { cause: 0, status: 0, pid: 0 }, notask_error: 0 };
  return (function* (): KPath {
    const err = yield* kernel_waitid(k, t, wo, which, upid);
    if (infop === 0n) return err;
    const info = err > 0 ? wo.info! : { cause: 0, status: 0, pid: 0 };
    const head = new Uint8Array(12);
    putU32(head, 0, err > 0 ? SIGCHLD : 0);
    putU32(head, 8, info.cause);
    const tail = new Uint8Array(12);
    putU32(tail, 0, info.pid);
    putU32(tail, 8, info.status);
    if (!(yield* copy_to_user(k, pc, t, infop, head)) || !(yield* copy_to_user(k, pc, t, infop + 16n, tail))) return -EFAULT;
    return err > 0 ? 0 : err;
  })();
}

/** kernel_waitid: the checks, then do_wait: the reported child's pid, 0 (WNOHANG, nothing yet), or -errno. */
function* kernel_waitid(k: Kernel, t: Task, wo: WaitOpts, which: number, upid: number): KPath {
  const options = wo.flags;
  if ((options & ~(WNOHANG | WNOWAIT | WEXITED | WSTOPPED | WCONTINUED | __WNOTHREAD | __WCLONE | __WALL)) !== 0) return -EINVAL;
  if (!(options & (WEXITED | WSTOPPED | WCONTINUED))) return -EINVAL;
  switch (which) {
    case P_ALL:
      break;
    case P_PID:
      if (upid <= 0) return -EINVAL;
      wo.pid = upid;
      if (!k.find_task_by_vpid(upid)) return -ECHILD;
      break;
    case P_PGID:
      if (upid < 0) return -EINVAL;
      break;
    default:
      return -EINVAL;
  }
  for (;;) {
    const ret = do_wait_thread(k, t, wo);
    if (ret !== 0 || wo.flags & WNOHANG) return ret;
    if (signal_pending(t)) return -ERESTARTSYS;
    t.waitingChild = true;
    t.state = 'sleeping';
    yield STEP_SLEEP;
    t.waitingChild = false;
    if (signal_pending(t)) return -ERESTARTSYS;
  }
}
