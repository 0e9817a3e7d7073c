/**
 * Scheduling (kernel/sched/core.c): runqueues per CPU, placing new tasks, waking and putting to
 * sleep, and context_switch with its mm switch (switch_mm_irqs_off or lazy TLB) and PKRU
 * switch (arch/x86/kernel/process_64.c x86_pkru_load).
 *
 * XXX: placement is deterministic (the CPU with the fewest tasks, lowest number first) and
 * there is no load balancing or migration; a task stays on the CPU it was placed on.
 */
import { fp_runq_write } from '../hw/footprint.js';
import type { Kernel, PerCpu } from './kernel.js';
import type { Task } from './task.js';
import { check_entry_stack_switch, return_to_user } from './entry_64.js';
import { enter_lazy_tlb, switch_mm_irqs_off } from './tlbflush.js';

/** wake_up_new_task: puts a new task on a runqueue (`cpu` if given, else the least loaded CPU). */
export function wake_up_new_task(k: Kernel, t: Task, cpu?: number): void {
  let best = cpu ?? 0;
  if (cpu === undefined) {
    let load = Infinity;
    for (const pc of k.percpu) {
      const l = pc.runqueue.length + (pc.current ? 1 : 0);
      if (l < load) {
        load = l;
        best = pc.id;
      }
    }
  }
  t.cpu = best;
  t.state = 'runnable';
  fp_runq_write(k.machine.mem, best);
  k.percpu[best].runqueue.push(t);
}

/** wake_up_process: a sleeping task becomes runnable on its CPU. No effect on other states. */
export function wake_up_process(k: Kernel, t: Task): void {
  if (t.state !== 'sleeping') return;
  t.state = 'runnable';
  fp_runq_write(k.machine.mem, t.cpu);
  k.percpu[t.cpu].runqueue.push(t);
}

/**
 * schedule: the CPU's current task gives the CPU up (it stays runnable if it was running, and
 * goes to the back of the queue); the next runnable task, or the idle task, runs.
 */
export function schedule(k: Kernel, pc: PerCpu): void {
  fp_runq_write(k.machine.mem, pc.id);
  const prev = pc.current;
  if (prev && prev.state === 'running') {
    prev.state = 'runnable';
    pc.runqueue.push(prev);
  }
  const next = pc.runqueue.length > 0 ? pc.runqueue.shift()! : null;
  context_switch(k, pc, prev, next);
}

/**
 * context_switch: from `prev` to `next` (null: the idle task). A user task's mm is switched in
 * with switch_mm_irqs_off; the idle task keeps the previous mm loaded in lazy TLB mode. The
 * outgoing task's PKRU is saved and the incoming one's written if it differs; LDTR follows the
 * mm (switch_ldt). The CPU stays in the kernel: a task with no kernel path under way gets the
 * exit path to user mode.
 */
export function context_switch(k: Kernel, pc: PerCpu, prev: Task | null, next: Task | null): void {
  const cpu = pc.cpu;
  // The switch runs in the kernel, whether it came from a syscall or a timer tick in user mode.
  cpu.setCpl(0);
  check_entry_stack_switch(k, pc, prev);
  if (prev && prev.mm) prev.pkru = cpu.pkru;
  pc.current = next;
  if (k.events.on) k.emit({ type: 'context_switch', cpu: pc.id, from: prev ? prev.tid : 0, to: next ? next.tid : 0 });
  if (!next) {
    enter_lazy_tlb(k, pc);
    return;
  }
  next.state = 'running';
  next.slice = 0;
  if (next.mm) {
    switch_mm_irqs_off(k, pc, next.mm);
    if (cpu.pkru !== next.pkru) cpu.pkru = next.pkru;
  }
  // A task switched in outside a kernel path (new, or preempted in user mode) returns to user
  // mode through the IRET exit (ret_from_fork, or the interrupt it was preempted by).
  if (!next.kpath) {
    next.kpath = return_to_user(k, pc, next, false);
    next.kpathKind = 'return';
  }
}
