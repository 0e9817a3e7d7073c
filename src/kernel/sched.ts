/**
 * Scheduling (kernel/sched/core.c): runqueues per CPU, placing new tasks, waking and putting to
 * sleep, and context_switch with its mm switch (switch_mm_irqs_off or lazy TLB) and PKRU
 * switch (arch/x86/kernel/process_64.c x86_pkru_load).
 *
 * Preemption (kernel option `preempt`, the preempt= modes of PREEMPT_DYNAMIC): TIF_NEED_RESCHED
 * is set by the tick when a task has used its timeslice and another waits (or by the explorer);
 * `none` reschedules only on the way to user mode and at cond_resched(), `voluntary` also at
 * might_sleep() points, `full` at any step where preempt_count is 0 and interrupts are on.
 * Migration: sched_setaffinity moves a task off a CPU it may no longer use, and
 * migrate_task moves a task that is not running (what the load balancer does; the explorer
 * chooses when).
 *
 * XXX: placement is deterministic (the CPU with the fewest tasks the task may use, lowest
 * number first); there is no load balancer of its own, only the moves above.
 */
import { set_cpuid_faulting } from './process_64.js';
import { load_segments, save_segments } from './desc.js';
import { load_TLS } from './tls.js';
import type { Kernel, PerCpu } from './kernel.js';
import type { Task, TaskState } from './task.js';
import { check_entry_stack_switch, return_to_user } from './entry_64.js';
import { enter_lazy_tlb, switch_mm_irqs_off } from './tlbflush.js';
import { STEP_RESCHED, STEP_SLEEP, STEP_WAIT, type KPath, type KSteps } from './steps.js';
import { copy_from_user, copy_to_user, putU32 } from './uaccess.js';
import { EFAULT, EINVAL, ESRCH } from './uapi.js';
import { this_cpu } from './this_cpu.js';

/** cpumask_size(): the bytes of a struct cpumask (NR_CPUS 64: one unsigned long). */
export const CPUMASK_SIZE = 8;

/** Whether `t` may run on CPU `cpu` (cpumask_test_cpu(cpu, t->cpus_ptr)). */
export function cpu_allowed(t: Task, cpu: number): boolean {
  return ((t.cpus_mask >> BigInt(cpu)) & 1n) !== 0n;
}

/** select_task_rq for a task placed or woken: the least loaded CPU it may use, lowest number first. */
function select_task_rq(k: Kernel, t: Task): number {
  let best = -1;
  let load = Infinity;
  for (const pc of k.percpu) {
    if (!cpu_allowed(t, pc.id)) continue;
    const l = pc.runqueue.length + (pc.current ? 1 : 0);
    if (l < load) {
      load = l;
      best = pc.id;
    }
  }
  return best;
}

/** wake_up_new_task: puts a new task on a runqueue (`cpu` if given, else the least loaded CPU it may use). */
export function wake_up_new_task(k: Kernel, t: Task, cpu?: number): void {
  const best = cpu ?? select_task_rq(k, t);
  t.cpu = best;
  t.state = 'runnable';
  k.percpu[best].runqueue.push(t);
}

/** wake_up_process: a sleeping task becomes runnable on its CPU (another it may use if its affinity changed). No effect on other states. */
export function wake_up_process(k: Kernel, t: Task): void {
  wake_up_state(k, t, 'sleeping');
}

/**
 * wake_up_state (try_to_wake_up with a state mask): `t` becomes runnable as wake_up_process
 * makes it, if its state is `state` ('stopped' for SIGCONT's __TASK_STOPPED and SIGKILL's
 * TASK_WAKEKILL). No effect on a task in another state.
 */
export function wake_up_state(k: Kernel, t: Task, state: TaskState): void {
  if (t.state !== state) return;
  if (!cpu_allowed(t, t.cpu)) t.cpu = select_task_rq(k, t);
  t.state = 'runnable';
  k.percpu[t.cpu].runqueue.push(t);
}

/**
 * schedule: the CPU's current task gives the CPU up (it stays runnable if it was running, and
 * goes to the back of the queue); the next runnable task, or the idle task, runs.
 */
export function schedule(k: Kernel, pc: PerCpu): void {
  const prev = pc.current;
  // __schedule_bug: a task may not give the CPU up inside a spinlock or a get_cpu() region.
  if (pc.preempt_count > 0 && prev) k.report(pc, 'schedule', `BUG: scheduling while atomic: task ${prev.tid}, preempt_count ${pc.preempt_count}`);
  if (prev) prev.need_resched = false;
  // __schedule's switch_count: nvcsw for a task that is not TASK_RUNNING, nivcsw for one that is (preempted, or sched_yield); counted below when another task runs.
  const voluntary = prev !== null && prev.state !== 'running';
  if (prev && prev.state === 'running') {
    prev.state = 'runnable';
    // migration_cpu_stop: a task whose affinity no longer holds this CPU is moved as it leaves
    // it, and so is one the explorer sends elsewhere (a load balancer's pull).
    const to = prev.migrate_to;
    prev.migrate_to = -1;
    if (!cpu_allowed(prev, pc.id) || (to >= 0 && to !== pc.id && cpu_allowed(prev, to))) {
      attach_task(k, prev, pc.id, cpu_allowed(prev, pc.id) ? to : select_task_rq(k, prev));
    } else pc.runqueue.push(prev);
  }
  const next = pc.runqueue.length > 0 ? pc.runqueue.shift()! : null;
  if (prev && next !== prev) {
    if (voluntary) prev.nvcsw++;
    else prev.nivcsw++;
  }
  context_switch(k, pc, prev, next);
}

/**
 * context_switch: from `prev` to `next` (null: the idle task). A user task's mm is switched in
 * with switch_mm_irqs_off; the idle task keeps the previous mm loaded in lazy TLB mode. The
 * outgoing task's PKRU is saved and the incoming one's written if it differs; LDTR follows the
 * mm (switch_ldt); CPUID faulting follows TIF_NOCPUID (__switch_to_xtra). The CPU stays in the kernel: a task with no kernel path under way gets the
 * exit path to user mode.
 */
export function context_switch(k: Kernel, pc: PerCpu, prev: Task | null, next: Task | null): void {
  const cpu = pc.cpu;
  // The switch runs in the kernel, whether it came from a syscall or a timer tick in user mode.
  cpu.setCpl(0);
  check_entry_stack_switch(k, pc, prev);
  if (prev && prev.mm) {
    prev.pkru = cpu.pkru;
    save_segments(k, pc, prev);
  }
  // __switch_to_xtra: TIF_NOCPUID differing between prev and next (the idle task and kernel threads have it clear).
  const nocpuid = next !== null && next.tif_nocpuid;
  if ((prev !== null && prev.tif_nocpuid) !== nocpuid) set_cpuid_faulting(pc, nocpuid);
  pc.current = next;
  if (k.events.on) k.emit({ type: 'context_switch', cpu: pc.id, from: prev ? prev.tid : 0, to: next ? next.tid : 0 });
  if (!next) {
    enter_lazy_tlb(k, pc);
    return;
  }
  next.state = 'running';
  next.slice = 0;
  if (next.kthread) {
    // A kernel thread borrows the loaded mm (context_switch's lazy-TLB case) and goes on with the path it was woken with.
    enter_lazy_tlb(k, pc);
    return;
  }
  if (next.mm) {
    // __schedule runs with interrupts off (rq lock with local_irq_disable) until finish_task_switch.
    const irqs = pc.irqs_disabled;
    pc.irqs_disabled = true;
    switch_mm_irqs_off(k, pc, next.mm);
    pc.irqs_disabled = irqs;
    if (cpu.pkru !== next.pkru) cpu.pkru = next.pkru;
    // __switch_to: load_TLS, then the ES, DS, FS and GS loads (which may use the new entries).
    load_TLS(k, pc, next);
    load_segments(k, pc, next);
  }
  // A task switched in outside a kernel path (new, or preempted in user mode) returns to user
  // mode through the IRET exit (ret_from_fork, or the interrupt it was preempted by).
  if (!next.kpath) {
    next.kpath = next.ret_from_fork ? ret_from_fork(k, this_cpu(k, next), next) : return_to_user(k, this_cpu(k, next), next, false);
    next.ret_from_fork = false;
    next.kpathKind = 'return';
  }
}

/** ret_from_fork (arch/x86/kernel/process.c ret_from_fork): schedule_tail, then the IRET exit to user mode. */
function* ret_from_fork(k: Kernel, pc: PerCpu, t: Task): KPath {
  yield* schedule_tail(k, pc, t);
  return yield* return_to_user(k, pc, t, false);
}

/**
 * schedule_tail (kernel/sched/core.c): a new task's first code, in its own mm: with
 * CLONE_CHILD_SETTID, `put_user(task_pid_vnr(current), current->set_child_tid)`, a fault ignored.
 */
function* schedule_tail(k: Kernel, pc: PerCpu, t: Task): KSteps<void> {
  if (t.set_child_tid === 0n) return;
  const nr = new Uint8Array(4);
  putU32(nr, 0, t.tid);
  yield* copy_to_user(k, pc, t, t.set_child_tid, nr);
}

/** set_task_cpu + attach_task: runnable task `t`, off CPU `from`'s runqueue, goes onto CPU `dest`'s (a `migrate` event). */
function attach_task(k: Kernel, t: Task, from: number, dest: number): void {
  t.cpu = dest;
  k.percpu[dest].runqueue.push(t);
  if (k.events.on) k.emit({ type: 'migrate', cpu: from, tid: t.tid, from, to: dest });
}

/**
 * Moves task `t`, runnable and not running, from its CPU's runqueue to CPU `dest`'s (the load
 * balancer's move: detach_task, set_task_cpu, attach_task). A task preempted inside a kernel
 * path resumes it on `dest`: its paths reach per-CPU state through this_cpu.ts. Returns false
 * (and changes nothing) when `t` is running, asleep, not allowed on `dest`, or already there.
 */
export function migrate_task(k: Kernel, t: Task, dest: number): boolean {
  if (t.state !== 'runnable' || t.cpu === dest || !cpu_allowed(t, dest) || dest < 0 || dest >= k.percpu.length) return false;
  const from = k.percpu[t.cpu];
  const i = from.runqueue.indexOf(t);
  if (i < 0) return false;
  from.runqueue.splice(i, 1);
  attach_task(k, t, from.id, dest);
  return true;
}

/**
 * Whether the kernel may switch away from `t` on `pc` at a step boundary of its kernel path
 * (preempt_schedule_irq on the way out of an interrupt, or preempt_enable): only with
 * `preempt: full`, with TIF_NEED_RESCHED set, preempt_count 0 and interrupts on.
 */
export function preemptible_now(k: Kernel, pc: PerCpu, t: Task): boolean {
  return k.options.preempt === 'full' && t.need_resched && pc.preempt_count === 0 && !pc.irqs_disabled;
}

/**
 * scheduler_tick's resched_curr: sets TIF_NEED_RESCHED on `t` once it has used its timeslice
 * (user operations and, with a preemptible kernel, kernel steps) and another task waits on its
 * CPU.
 */
export function sched_tick(k: Kernel, pc: PerCpu, t: Task): void {
  const slice = k.options.timeslice;
  if (slice > 0 && t.slice >= slice && pc.runqueue.length > 0) t.need_resched = true;
}

/**
 * cond_resched (and might_resched at a might_sleep() point with `voluntary: true`): a
 * preemption point, one step boundary (STEP_RESCHED) at which the CPU's next step gives the
 * CPU up if TIF_NEED_RESCHED is set, the task staying runnable (sim/step.ts cpu_step;
 * __cond_resched → preempt_schedule_common). With `preempt: full` it is compiled out (the
 * kernel is preempted anyway); inside a spinlock or with interrupts off it does nothing.
 */
export function* cond_resched(k: Kernel, pc: PerCpu, _t: Task, voluntary = false): KSteps<void> {
  const mode = k.options.preempt;
  if (mode === 'full' || (voluntary && mode !== 'voluntary')) return;
  if (pc.preempt_count > 0 || pc.irqs_disabled) return;
  pc.touch = -1;
  yield STEP_RESCHED;
}

/**
 * Whether task `t`, running on `pc` inside a kernel path, stands at a cond_resched() point
 * (its path's last step was STEP_RESCHED) where it may give the CPU up.
 */
export function at_cond_resched(pc: PerCpu, t: Task): boolean {
  return t.nextStep === STEP_RESCHED && t.nextStepPath === t.kpath && pc.preempt_count === 0 && !pc.irqs_disabled;
}

/** The online CPUs as a mask (cpu_active_mask). */
function cpu_active_mask(k: Kernel): bigint {
  return (1n << BigInt(k.percpu.length)) - 1n;
}

/**
 * sched_setaffinity(pid, len, user_mask_ptr) (kernel/sched/core.c): get_user_cpu_mask reads
 * min(len, cpumask_size()) bytes (a shorter mask has its other bits clear; -EFAULT), then the
 * task by pid (0: the caller; -ESRCH), the mask limited to the online CPUs (the cpuset), and
 * -EINVAL if none is left. A task on a CPU it may no longer use is moved: the caller itself
 * before the syscall returns (migration_cpu_stop), a runnable one at once, a running one at its
 * next preemption point while the caller waits (affine_move_task), a sleeping one when it wakes.
 */
export function* sys_sched_setaffinity(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  const pid = Number(BigInt.asIntN(32, a[0]));
  const len = Number(BigInt.asUintN(32, a[1]));
  const n = Math.min(len, CPUMASK_SIZE);
  const bytes = yield* copy_from_user(k, pc, t, a[2], n);
  if (!bytes) return -EFAULT;
  let mask = 0n;
  for (let i = 0; i < n; i++) mask |= BigInt(bytes[i]) << BigInt(8 * i);
  const p = pid === 0 ? t : k.find_task_by_vpid(pid);
  if (!p || p.reaped) return -ESRCH;
  const new_mask = mask & cpu_active_mask(k);
  if (new_mask === 0n) return -EINVAL;
  p.cpus_mask = new_mask;
  if (cpu_allowed(p, p.cpu) || p.state !== 'running' && p.state !== 'runnable') return 0;
  if (p.state === 'runnable') {
    migrate_task(k, p, select_task_rq(k, p));
    return 0;
  }
  // Running: it gives its CPU up at its next preemption point, and schedule() moves it.
  p.need_resched = true;
  if (p === t) yield STEP_SLEEP;
  else while (!cpu_allowed(p, p.cpu) && p.state === 'running') yield STEP_WAIT;
  return 0;
}

/**
 * sched_getaffinity(pid, len, user_mask_ptr): -EINVAL when len * 8 (an unsigned int product)
 * is below the number of CPUs or len is not a multiple of sizeof(long); -ESRCH for no such
 * task; then the task's mask of online CPUs, min(len, cpumask_size()) bytes, copied out
 * (-EFAULT). Returns the bytes written.
 */
export function* sys_sched_getaffinity(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  const pid = Number(BigInt.asIntN(32, a[0]));
  const len = Number(BigInt.asUintN(32, a[1]));
  if (Math.imul(len, 8) >>> 0 < k.percpu.length) return -EINVAL;
  if (len & 7) return -EINVAL;
  const p = pid === 0 ? t : k.find_task_by_vpid(pid);
  if (!p || p.reaped) return -ESRCH;
  const mask = p.cpus_mask & cpu_active_mask(k);
  const retlen = Math.min(len, CPUMASK_SIZE);
  const out = new Uint8Array(retlen);
  for (let i = 0; i < retlen; i++) out[i] = Number((mask >> BigInt(8 * i)) & 0xffn);
  if (!(yield* copy_to_user(k, pc, t, a[2], out))) return -EFAULT;
  return retlen;
}
