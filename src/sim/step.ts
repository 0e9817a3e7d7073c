/**
 * The simulator's driver: what one CPU does when the schedule gives it a step. It plays the
 * part of the clock and the interrupt controller, choosing between the kernel (kernel/) and
 * the processor executing user code (user/interp.ts); it is neither Linux nor the SDM.
 *
 * In order: a pending flush IPI is taken at an instruction boundary with interrupts enabled;
 * an idle CPU or one whose task stopped running schedules; a task inside the kernel advances
 * its kernel path, unless the kernel is preemptible there and the task is to give the CPU up
 * (preempt=full); at an instruction boundary the timer tick may preempt the task; otherwise
 * the task's user code takes one step.
 */
import type { Kernel, PerCpu } from '../kernel/kernel.js';
import { kernel_step, sysvec_apic_timer_interrupt, sysvec_call_function } from '../kernel/entry.js';
import { at_cond_resched, preemptible_now, schedule } from '../kernel/sched.js';
import { user_step, type UserCpu } from '../user/interp.js';

/**
 * Runs one step on CPU `pc`, whose user-mode execution state is `u`. Returns false if it had
 * nothing to do (idle, nothing runnable, no IPI), true otherwise.
 */
export function cpu_step(k: Kernel, pc: PerCpu, u: UserCpu): boolean {
  pc.steps++;
  // An interrupt is taken at an instruction boundary (not in the middle of a user access's
  // page walk), enters the kernel at CPL 0 and returns to the CPL it interrupted.
  if (takes_ipi(pc)) {
    sysvec_call_function(k, pc);
    return true;
  }
  const t = pc.current;
  if (!t) {
    if (pc.runqueue.length === 0) return false;
    schedule(k, pc);
    return true;
  }
  if (t.state !== 'running') {
    schedule(k, pc);
    return true;
  }
  if (t.kpath) {
    // preempt_schedule_irq: with preempt=full, a step boundary where preemption is enabled;
    // with none or voluntary, a cond_resched() point.
    if (preemptible_now(k, pc, t)) {
      if (k.events.on) k.emit({ type: 'preempt', cpu: pc.id, tid: t.tid });
      schedule(k, pc);
      return true;
    }
    if (t.need_resched && at_cond_resched(pc, t)) {
      schedule(k, pc);
      return true;
    }
    kernel_step(k, pc, t);
    return true;
  }
  if (!pc.cpu.accessPending && sysvec_apic_timer_interrupt(k, pc, t)) return true;
  user_step(k, pc, u, t);
  return true;
}

/** Whether CPU `pc`'s next step takes a flush IPI: one is queued, interrupts are on, and the CPU is at an instruction boundary. */
export function takes_ipi(pc: PerCpu): boolean {
  // With interrupts off the queue is not looked at: what is queued does not matter to the step.
  return !pc.irqs_disabled && pc.ipis.length > 0 && !pc.cpu.accessPending;
}

/** Whether the CPU has anything to do: an IPI, a runnable task, or a running one. */
export function hasWork(pc: PerCpu): boolean {
  return pc.ipis.length > 0 || pc.runqueue.length > 0 || (pc.current !== null && pc.current.state === 'running');
}
