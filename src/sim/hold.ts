/**
 * The explorer's hold at the end of a thread's operations (`isolab explore --until ops`): not
 * Linux, the simulator's. A thread that has run its last operation, instead of calling exit or
 * exit_group at once, is held there: it leaves its CPU as a task preempted in user mode does
 * (the timer interrupt's entry, then schedule) but sleeps, so the CPU goes on with its other
 * tasks. Its exit then runs after the explored window, unexplored, instead of interleaving with
 * the operations still running elsewhere. A held thread is released by the explorer (when
 * nothing else can run, or at the end of the window) or woken by a signal, as a sleeping task
 * is; it then returns to user mode at its end and exits as it would have.
 */
import { irq_from_user } from '../kernel/entry_64.js';
import type { Kernel, PerCpu } from '../kernel/kernel.js';
import { schedule, wake_up_process } from '../kernel/sched.js';
import type { Task } from '../kernel/task.js';

/**
 * Holds task `t`, running in user mode on `pc` at the end of its operations (the caller has
 * emitted `user_end`): into the kernel as the timer interrupt enters it, asleep, and the CPU to
 * its next task. Held once: after its release it ends normally.
 */
export function hold_at_end(k: Kernel, pc: PerCpu, t: Task): void {
  t.endHold = 1;
  irq_from_user(k, pc, t, () => {}, false);
  t.enteredBySyscall = false;
  t.entryRF = false;
  // Not Linux's sleep: pt_regs the entry left on the per-CPU entry stack (entry_stack per_cpu_c)
  // are not reported at the switch, as those of an exiting task are not.
  if (pc.entryStackOwner === t.tid) pc.entryStackOwner = 0;
  t.state = 'sleeping';
  schedule(k, pc);
}

/** Wakes every task still held at its end, lowest tid first. Returns how many it woke. */
export function release_held(k: Kernel): number {
  let n = 0;
  for (const t of k.tasks.values()) {
    if (t.endHold !== 1) continue;
    t.endHold = 2;
    if (t.state !== 'sleeping') continue;
    wake_up_process(k, t);
    n++;
  }
  return n;
}

/** Whether some task is held at its end and asleep there. */
export function any_held(k: Kernel): boolean {
  for (const t of k.tasks.values()) if (t.endHold === 1 && t.state === 'sleeping') return true;
  return false;
}
