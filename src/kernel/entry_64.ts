/**
 * The assembly entry and exit paths (arch/x86/entry/entry_64.S, calling.h; spec §5), as
 * steps: SYSCALL entry and the SYSRET exit, entry from user mode through the IDT (exceptions
 * and interrupts) and the IRET exit. Each CR3 write (SWITCH_TO_KERNEL_CR3 /
 * SWITCH_TO_USER_CR3, pti.ts), stack switch and register copy is a step and an `entry` event.
 * Interrupts stay disabled on these paths (pc.irqs_disabled), so no IPI is taken in between.
 *
 * Kernel option `entry_stack` (seed 004):
 * - per_cpu (upstream): SYSCALL switches CR3 first, then builds pt_regs on the task stack; an
 *   exception lands on the per-CPU entry stack, switches CR3 and copies pt_regs to the task
 *   stack (sync_regs); the exit builds the return frame on the entry stack, then switches CR3.
 * - per_task (the 2020 RFC): entry lands on the task's PTI stack (mapped in the user copy) and
 *   pt_regs stays there; the C handler switches CR3 and moves to the kernel stack, no copies.
 * - per_cpu_c (the RFC's "first step"): the same with the per-CPU entry stack, so pt_regs sits
 *   on a per-CPU stack while the handler runs; the `entry_stack` check reports a task that
 *   sleeps there, and an entry that overwrites another task's pt_regs.
 *
 * XXX: register values are not written to the stacks; the events carry what moves where.
 */
import type { Kernel, PerCpu } from './kernel.js';
import { SWITCH_TO_KERNEL_CR3, SWITCH_TO_USER_CR3 } from './pti.js';
import { STEP_ENTRY, type KPath, type KSteps } from './steps.js';
import type { Task } from './task.js';

/** sizeof(struct pt_regs) on x86-64: 21 words. */
export const PT_REGS_SIZE = 168;
/** The hardware IRET frame: SS, RSP, RFLAGS, CS, RIP (plus an error code for some vectors). */
export const IRET_FRAME_SIZE = 40;

/** The stack entry from user mode uses for pt_regs under the kernel options. */
function entryStackName(k: Kernel): 'entry' | 'pti' {
  return k.options.entry_stack === 'per_task' ? 'pti' : 'entry';
}

/** Whether the CR3 switch is made by the C handler (per_task, per_cpu_c) rather than the assembly. */
function cr3InC(k: Kernel): boolean {
  return k.options.entry_stack !== 'per_cpu';
}

/** Emits one entry-code step. */
function ev(k: Kernel, pc: PerCpu, t: Task, what: string, stack: string, bytes = 0): void {
  if (k.events.on) k.emit({ type: 'entry', cpu: pc.id, tid: t.tid, what, stack, bytes });
}

/**
 * Puts `t`'s pt_regs on this CPU's per-CPU entry stack. Another task's pt_regs already there
 * are overwritten: the `entry_stack` check reports it.
 */
function claimEntryStack(k: Kernel, pc: PerCpu, t: Task): void {
  if (pc.entryStackOwner !== 0 && pc.entryStackOwner !== t.tid) {
    k.report(pc, 'entry_stack', `task ${t.tid} entered on CPU ${pc.id}'s entry stack while task ${pc.entryStackOwner}'s pt_regs were still on it`);
  }
  pc.entryStackOwner = t.tid;
}

/** The task's pt_regs leave the per-CPU entry stack. */
function releaseEntryStack(pc: PerCpu, t: Task): void {
  if (pc.entryStackOwner === t.tid) pc.entryStackOwner = 0;
}

/**
 * entry_SYSCALL_64 up to do_syscall_64, then the handler: `run` returns its result or its
 * kernel path. The CPU's SYSCALL has already set CPL 0 and masked IF.
 */
export function* entry_SYSCALL_64(k: Kernel, pc: PerCpu, t: Task, run: () => number | KPath): KPath {
  pc.irqs_disabled = true;
  pc.touch = pc.id;
  yield STEP_ENTRY;
  ev(k, pc, t, 'swapgs', 'user');
  if (!cr3InC(k)) {
    yield STEP_ENTRY;
    ev(k, pc, t, 'sp2', 'user', 8);
    yield STEP_ENTRY;
    SWITCH_TO_KERNEL_CR3(k, pc);
    yield STEP_ENTRY;
    ev(k, pc, t, 'stack_switch', 'task');
    yield STEP_ENTRY;
    ev(k, pc, t, 'regs_push', 'task', PT_REGS_SIZE);
  } else {
    const stack = entryStackName(k);
    yield STEP_ENTRY;
    ev(k, pc, t, 'stack_switch', stack);
    yield STEP_ENTRY;
    if (stack === 'entry') claimEntryStack(k, pc, t);
    ev(k, pc, t, 'regs_push', stack, PT_REGS_SIZE);
    yield STEP_ENTRY;
    SWITCH_TO_KERNEL_CR3(k, pc);
    yield STEP_ENTRY;
    ev(k, pc, t, 'stack_switch', 'task');
  }
  // syscall_enter_from_user_mode: interrupts on.
  pc.irqs_disabled = false;
  const r = run();
  if (typeof r === 'number') return r;
  return yield* r;
}

/**
 * Entry from user mode through the IDT (an exception, or an interrupt that then runs
 * `inner`): the CPU pushes the IRET frame at RSP0, the entry code pushes the rest of pt_regs,
 * SWAPGS, switches CR3 and (upstream) copies pt_regs to the task stack (sync_regs).
 */
export function* idtentry_user(k: Kernel, pc: PerCpu, t: Task, inner: KPath | null): KPath {
  pc.irqs_disabled = true;
  pc.touch = pc.id;
  yield* idt_entry_steps(k, pc, t);
  pc.irqs_disabled = false;
  if (inner) return yield* inner;
  return 0;
}

/** The steps of idtentry_user before the handler (shared with the synchronous interrupt path). */
function* idt_entry_steps(k: Kernel, pc: PerCpu, t: Task): KSteps<void> {
  const stack = entryStackName(k);
  if (stack === 'entry') claimEntryStack(k, pc, t);
  yield STEP_ENTRY;
  ev(k, pc, t, 'hw_frame', stack, IRET_FRAME_SIZE);
  yield STEP_ENTRY;
  ev(k, pc, t, 'regs_push', stack, PT_REGS_SIZE - IRET_FRAME_SIZE);
  yield STEP_ENTRY;
  ev(k, pc, t, 'swapgs', stack);
  yield STEP_ENTRY;
  SWITCH_TO_KERNEL_CR3(k, pc);
  if (!cr3InC(k)) {
    yield STEP_ENTRY;
    ev(k, pc, t, 'regs_copy', 'task', PT_REGS_SIZE);
    releaseEntryStack(pc, t);
  } else {
    yield STEP_ENTRY;
    ev(k, pc, t, 'stack_switch', 'task');
  }
}

/**
 * The exit to user mode, after exit_to_user_mode_loop: SYSRET (`sysret`) or IRET. Upstream:
 * pop the registers, move to the entry stack, build the return frame there (RSP and RDI, or
 * the IRET frame and RDI), SWITCH_TO_USER_CR3 with its deferred flush, SWAPGS, return. With
 * the CR3 switch in C, the handler goes back to the stack pt_regs is on, switches CR3, pops.
 */
export function* return_to_user(k: Kernel, pc: PerCpu, t: Task, sysret: boolean): KPath {
  pc.irqs_disabled = true;
  pc.touch = pc.id;
  if (!cr3InC(k)) {
    yield STEP_ENTRY;
    ev(k, pc, t, 'regs_pop', 'task', PT_REGS_SIZE - 8);
    yield STEP_ENTRY;
    ev(k, pc, t, 'stack_switch', 'entry');
    yield STEP_ENTRY;
    claimEntryStack(k, pc, t);
    ev(k, pc, t, 'regs_copy', 'entry', sysret ? 16 : IRET_FRAME_SIZE + 8);
    yield STEP_ENTRY;
    SWITCH_TO_USER_CR3(k, pc);
  } else {
    const stack = entryStackName(k);
    yield STEP_ENTRY;
    ev(k, pc, t, 'stack_switch', stack);
    yield STEP_ENTRY;
    SWITCH_TO_USER_CR3(k, pc);
    yield STEP_ENTRY;
    ev(k, pc, t, 'regs_pop', stack, PT_REGS_SIZE - (sysret ? 0 : IRET_FRAME_SIZE));
  }
  yield STEP_ENTRY;
  ev(k, pc, t, 'swapgs', entryStackName(k));
  yield STEP_ENTRY;
  releaseEntryStack(pc, t);
  ev(k, pc, t, sysret ? 'sysret' : 'iret', 'user');
  pc.irqs_disabled = false;
  pc.cpu.setCpl(3);
  return 0;
}

/**
 * An interrupt taken in user mode and handled at once (a call-function IPI, the timer tick
 * that preempts): the entry steps, `handler`, and for `resume` the exit steps, all in the one
 * step the interrupt takes (its handler cannot sleep). Without `resume` the task stays in the
 * kernel (it is being switched out).
 */
export function irq_from_user(k: Kernel, pc: PerCpu, t: Task, handler: () => void, resume: boolean): void {
  pc.cpu.setCpl(0);
  const entry = idt_entry_steps(k, pc, t);
  while (!entry.next().done);
  handler();
  if (!resume) return;
  const exit = return_to_user(k, pc, t, false);
  while (!exit.next().done);
}

/**
 * The entry_stack check at a context switch: a task switched out (sleeping or preempted in
 * the kernel) while its pt_regs are on this CPU's per-CPU entry stack.
 */
export function check_entry_stack_switch(k: Kernel, pc: PerCpu, prev: Task | null): void {
  if (!prev || pc.entryStackOwner !== prev.tid) return;
  if (prev.state === 'zombie' || prev.state === 'dead') {
    // An exiting task never returns: what it left on the stack is abandoned, not lost.
    pc.entryStackOwner = 0;
    return;
  }
  k.report(pc, 'entry_stack', `task ${prev.tid} was switched out (${prev.state}) on CPU ${pc.id} with its pt_regs on the per-CPU entry stack`);
}
