/**
 * Leaving (kernel/exit.c): exit, exit_group, do_exit with exit_mm and exit_notify, and
 * wait4. A thread that is not the last of its group goes away silently; the group's leader
 * becomes a zombie when the whole group is gone, its parent gets SIGCHLD (its exit_signal) and
 * is woken, and wait4 reaps it. A process without a parent is reaped at once (as init would).
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
import { send_signal, signal_pending, sigmask, signal_wake_up, ERESTARTSYS } from './signal.js';
import { STEP_SLEEP, type KPath } from './steps.js';
import { shstk_free } from './shstk.js';
import type { Task } from './task.js';
import { copy_to_user, putU32 } from './uaccess.js';
import { enter_lazy_tlb } from './tlbflush.js';
import { checkMmAfterExit } from './debug.js';
import {
  CLD_EXITED, CLD_KILLED, ECHILD, EFAULT, EINVAL, ESRCH, SA_NOCLDWAIT, SIG_IGN, SIGCHLD, SIGKILL, WCONTINUED, WNOHANG, WUNTRACED, __WALL, __WCLONE, __WNOTHREAD,
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
    g.groupExit = true;
    g.group_exit_code = Number(a[0] & 0xffn) << 8;
    for (const th of g.threads) {
      if (th === t || th.state === 'zombie' || th.state === 'dead') continue;
      th.pending.signal |= sigmask(SIGKILL);
      signal_wake_up(k, th, true);
    }
  }
  return do_exit(k, pc, t, g.group_exit_code);
}

/**
 * do_exit: drops the mm (exit_mm: vfork release, lazy TLB, mmput with its flushes), then
 * exit_notify. `code` is the wait status this thread reports if it is the last.
 */
export function* do_exit(k: Kernel, pc: PerCpu, t: Task, code: number): KPath {
  const g = t.group;
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
    mm_release(k, t);
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

/** mm_release: a vfork child lets its parent go. */
export function mm_release(k: Kernel, t: Task): void {
  const p = t.vforkParent;
  if (!p) return;
  t.vforkParent = null;
  p.vforkWaiting = false;
  wake_up_process(k, p);
}

/**
 * exit_notify: the task becomes a zombie. Its children are handed to no one (reaped when they
 * die). When its group is gone the leader is reported to the parent, or reaped at once if
 * nobody waits (no parent, SIGCHLD ignored or SA_NOCLDWAIT); non-leader threads reap themselves.
 */
function exit_notify(k: Kernel, t: Task, group_dead: boolean): void {
  for (const c of t.group.children) if (group_dead) c.parent = null;
  t.state = 'zombie';
  if (!t.isLeader) {
    release_task(k, t);
    if (group_dead) notify_leader(k, t.group.threads[0]);
    return;
  }
  if (group_dead) notify_leader(k, t);
}

/** Reports a dead group's leader to its parent, or reaps it if nobody will wait. */
function notify_leader(k: Kernel, leader: Task): void {
  if (leader.state !== 'zombie') return;
  const parent = leader.parent;
  if (!parent || parent.state === 'dead' || parent.state === 'zombie' && parent.group.live === 0) {
    release_task(k, leader);
    return;
  }
  const status = leader.group.groupExit ? leader.group.group_exit_code : leader.exit_code;
  let sig = leader.exit_signal;
  const ka = parent.sighand.action[SIGCHLD];
  let autoreap = false;
  if (sig === SIGCHLD && (ka.handler === SIG_IGN || ka.flags & SA_NOCLDWAIT)) {
    autoreap = true;
    sig = 0;
  }
  if (sig > 0 && sig <= 64) {
    const killed = (status & 0x7f) !== 0;
    send_signal(k, parent, { signo: sig, code: killed ? CLD_KILLED : CLD_EXITED, addr: 0n, pid: leader.tgid, pkey: 0 }, true);
  }
  for (const th of parent.group.threads) if (th.waitingChild) wake_up_process(k, th);
  if (autoreap) release_task(k, leader);
}

/** release_task: the task is gone for good. */
export function release_task(k: Kernel, t: Task): void {
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
 * sys_wait4(pid, status, options, rusage): reaps a zombie child matching `pid` (-1 any, > 0
 * that process, 0 or < -1 a process group: the model has one group, so any) and stores its
 * status; 0 with WNOHANG when children live but none is dead; -ECHILD with no matching child;
 * a signal interrupts the sleep (-ERESTARTSYS). The child is reaped before a bad status
 * pointer is found (-EFAULT).
 */
export function sys_wait4(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): number | KPath {
  const pid = Number(BigInt.asIntN(32, a[0]));
  const statusPtr = a[1];
  const options = Number(a[2] & 0xffffffffn);
  if ((options & ~(WNOHANG | WUNTRACED | WCONTINUED | __WNOTHREAD | __WCLONE | __WALL)) !== 0) return -EINVAL;
  if (pid === -2147483648) return -ESRCH;
  return (function* (): KPath {
    for (;;) {
      // XXX: __WNOTHREAD is accepted but children are the whole group's.
      let eligible = 0;
      let zombie: Task | null = null;
      for (const c of t.group.children) {
        if (pid > 0 && c.tgid !== pid) continue;
        if (!(options & __WALL) && (c.exit_signal !== SIGCHLD) !== ((options & __WCLONE) !== 0)) continue;
        eligible++;
        if (!zombie && c.state === 'zombie' && c.group.live === 0) zombie = c;
      }
      if (zombie) {
        const status = zombie.group.groupExit ? zombie.group.group_exit_code : zombie.exit_code;
        const tgid = zombie.tgid;
        release_task(k, zombie);
        if (statusPtr !== 0n) {
          const b = new Uint8Array(4);
          putU32(b, 0, status);
          if (!(yield* copy_to_user(k, pc, t, statusPtr, b))) return -EFAULT;
        }
        return tgid;
      }
      if (eligible === 0) return -ECHILD;
      if (options & WNOHANG) return 0;
      if (signal_pending(t)) return -ERESTARTSYS;
      t.waitingChild = true;
      t.state = 'sleeping';
      yield STEP_SLEEP;
      t.waitingChild = false;
      if (signal_pending(t)) return -ERESTARTSYS;
    }
  })();
}
