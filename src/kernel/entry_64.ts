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
import { __USER_CS, __USER_DS, iret_segments, load_user_segments } from './desc.js';
import { exit_to_user_mode } from './entry.js';
import type { Kernel, PerCpu } from './kernel.js';
import { SWITCH_TO_KERNEL_CR3, SWITCH_TO_USER_CR3 } from './pti.js';
import { raw_cpu } from './this_cpu.js';
import { rawOf } from '../track.js';
import { STEP_ENTRY, type KPath } from './steps.js';
import { SYSCALLS } from './syscalls.js';
import { IA32_SYSCALLS } from './syscall_32.js';
import { ENOSYS } from './uapi.js';
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
 * One instruction group of the entry or exit code: one step (STEP_ENTRY), touching only this
 * CPU and the task. The paths below are lists of these, as the assembly is a list of
 * instructions: a path object steps through its list, and the explorer sees each as a step.
 */
type EntryStep = (k: Kernel, pc: PerCpu, t: Task) => void;

const swapgs_user: EntryStep = (k, pc, t) => ev(k, pc, t, 'swapgs', 'user');
/** movq %rsp, PER_CPU_VAR(cpu_tss_rw + TSS_sp2): the user stack pointer saved. */
const save_user_sp: EntryStep = (k, pc, t) => ev(k, pc, t, 'sp2', 'user', 8);
const switch_to_kernel_cr3: EntryStep = (k, pc) => SWITCH_TO_KERNEL_CR3(k, pc);
const switch_to_user_cr3: EntryStep = (k, pc) => SWITCH_TO_USER_CR3(k, pc);
const to_task_stack: EntryStep = (k, pc, t) => ev(k, pc, t, 'stack_switch', 'task');
const push_regs_task: EntryStep = (k, pc, t) => ev(k, pc, t, 'regs_push', 'task', PT_REGS_SIZE);
const to_entry_stack: EntryStep = (k, pc, t) => ev(k, pc, t, 'stack_switch', entryStackName(k));
const push_regs_entry: EntryStep = (k, pc, t) => {
  const stack = entryStackName(k);
  if (stack === 'entry') claimEntryStack(k, pc, t);
  ev(k, pc, t, 'regs_push', stack, PT_REGS_SIZE);
};
const hw_frame: EntryStep = (k, pc, t) => ev(k, pc, t, 'hw_frame', entryStackName(k), IRET_FRAME_SIZE);
const push_rest_of_regs: EntryStep = (k, pc, t) => ev(k, pc, t, 'regs_push', entryStackName(k), PT_REGS_SIZE - IRET_FRAME_SIZE);
/** SWAPGS on the stack pt_regs (or the return frame) is on: the entry stack, or the PTI stack (per_task). */
const swapgs_entry: EntryStep = (k, pc, t) => ev(k, pc, t, 'swapgs', entryStackName(k));
/** sync_regs: pt_regs copied from the entry stack to the task stack, which leaves the entry stack free. */
const sync_regs: EntryStep = (k, pc, t) => {
  ev(k, pc, t, 'regs_copy', 'task', PT_REGS_SIZE);
  releaseEntryStack(pc, t);
};
const pop_regs_task: EntryStep = (k, pc, t) => ev(k, pc, t, 'regs_pop', 'task', PT_REGS_SIZE - 8);
const to_entry_stack_exit: EntryStep = (k, pc, t) => ev(k, pc, t, 'stack_switch', 'entry');
const sysret_frame: EntryStep = (k, pc, t) => {
  claimEntryStack(k, pc, t);
  ev(k, pc, t, 'regs_copy', 'entry', 16);
};
const iret_frame: EntryStep = (k, pc, t) => {
  claimEntryStack(k, pc, t);
  ev(k, pc, t, 'regs_copy', 'entry', IRET_FRAME_SIZE + 8);
};
const pop_regs_entry_sysret: EntryStep = (k, pc, t) => ev(k, pc, t, 'regs_pop', entryStackName(k), PT_REGS_SIZE);
const pop_regs_entry_iret: EntryStep = (k, pc, t) => ev(k, pc, t, 'regs_pop', entryStackName(k), PT_REGS_SIZE - IRET_FRAME_SIZE);
/** SYSRET or IRET: the task's pt_regs leave the entry stack, interrupts come back on with RFLAGS, CPL 3. */
const sysret: EntryStep = (k, pc, t) => {
  releaseEntryStack(pc, t);
  ev(k, pc, t, 'sysret', 'user');
  pc.irqs_disabled = false;
  load_user_segments(pc, __USER_CS, __USER_DS);
  pc.cpu.setCpl(3);
};
const iret: EntryStep = (k, pc, t) => {
  releaseEntryStack(pc, t);
  ev(k, pc, t, 'iret', 'user');
  pc.irqs_disabled = false;
  if (!iret_segments(k, pc, t)) {
    // error_entry's bad-IRET path (SWAPGS, SWITCH_TO_KERNEL_CR3, fixup_bad_iret): the signal
    // is delivered on the way out again (exit_to_user_mode).
    ev(k, pc, t, 'swapgs', 'user');
    SWITCH_TO_KERNEL_CR3(k, pc);
    t.kpathKind = 'fault';
    return;
  }
  pc.cpu.setCpl(3);
};

/** entry_SYSCALL_64, upstream (entry_stack per_cpu): SWAPGS, save RSP, CR3, the task stack, PUSH_AND_CLEAR_REGS. */
const SYSCALL_ENTRY: readonly EntryStep[] = [swapgs_user, save_user_sp, switch_to_kernel_cr3, to_task_stack, push_regs_task];
/** entry_SYSCALL_64 with the CR3 switch in C (per_task, per_cpu_c): SWAPGS, pt_regs on the PTI or entry stack, then CR3 and the task stack. */
const SYSCALL_ENTRY_CR3_IN_C: readonly EntryStep[] = [swapgs_user, to_entry_stack, push_regs_entry, switch_to_kernel_cr3, to_task_stack];
/** idtentry from user mode, upstream: the CPU's frame, the rest of pt_regs, SWAPGS, CR3, sync_regs. */
const IDT_ENTRY: readonly EntryStep[] = [hw_frame, push_rest_of_regs, swapgs_entry, switch_to_kernel_cr3, sync_regs];
/** idtentry from user mode with the CR3 switch in C: pt_regs stay where they landed. */
const IDT_ENTRY_CR3_IN_C: readonly EntryStep[] = [hw_frame, push_rest_of_regs, swapgs_entry, switch_to_kernel_cr3, to_task_stack];
/** swapgs_restore_regs_and_return_to_usermode / the SYSRET path, upstream. */
const SYSRET_EXIT: readonly EntryStep[] = [pop_regs_task, to_entry_stack_exit, sysret_frame, switch_to_user_cr3, swapgs_entry, sysret];
const IRET_EXIT: readonly EntryStep[] = [pop_regs_task, to_entry_stack_exit, iret_frame, switch_to_user_cr3, swapgs_entry, iret];
/** The exits with the CR3 switch in C: back to pt_regs' stack, CR3, pop. */
const SYSRET_EXIT_CR3_IN_C: readonly EntryStep[] = [to_entry_stack, switch_to_user_cr3, pop_regs_entry_sysret, swapgs_entry, sysret];
const IRET_EXIT_CR3_IN_C: readonly EntryStep[] = [to_entry_stack, switch_to_user_cr3, pop_regs_entry_iret, swapgs_entry, iret];

/** What an entry path does after its last step, in that step: run the handler, or nothing (the exits). */
const enum After {
  /** Interrupts on, then the syscall handler (of `Task.curNr`): its result, or its path run as a sub-path. */
  Syscall,
  /** Interrupts on, then the inner path, if any, as a sub-path. */
  Inner,
  /** int80_emulation: interrupts on, then the ia32 table's handler of `Task.curNr` (-ENOSYS if it has none). */
  Int80,
  /** Nothing: the exit's last step has returned to user mode. */
  None,
}

/**
 * A kernel path made of entry steps: yields STEP_ENTRY before each one, so the explorer sees
 * each as a step and the plain runner runs them back to back, and then does what `after`
 * says. Behaves as the generator `{ pre; for (s of steps) { yield STEP_ENTRY; s(); } after }`
 * would, where `pre` (interrupts off, the touched CPU) runs at the first resume; a handler's
 * or inner path is yielded as a sub-path (kcall), whose result is this path's. Allocates
 * nothing per step: its iterator result is one object it reuses (kernel_step reads it at once).
 */
class EntryPath implements KPath {
  private i = 0;
  private sub = false;
  private readonly res: IteratorResult<number | KPath, number> = { value: 0, done: false };

  constructor(
    private readonly k: Kernel,
    private pc: PerCpu,
    private readonly t: Task,
    private steps: readonly EntryStep[],
    private after: After,
    private inner: KPath | null,
    /** An entry through the IDT: the CPU's frame claims the entry stack at the first resume (idtClaim). */
    private idt: boolean,
  ) {}

  /** Whether the path has returned (then nothing refers to it as a kernel path any more). */
  get finished(): boolean {
    return this.i > this.steps.length + 1;
  }

  /** Makes a finished path a new one of the same task, as the constructor would. */
  restart(pc: PerCpu, steps: readonly EntryStep[], after: After, inner: KPath | null, idt: boolean): this {
    this.pc = pc;
    this.steps = steps;
    this.after = after;
    this.inner = inner;
    this.idt = idt;
    this.i = 0;
    this.sub = false;
    return this;
  }

  next(): IteratorResult<number | KPath, number> {
    const { k, t, steps, res } = this;
    // The task cannot move between CPUs within one step: the CPU it is on now, looked up once.
    const pc = raw_cpu(this.pc);
    const i = this.i++;
    if (i === 0) {
      pc.irqs_disabled = true;
      pc.touch = pc.id;
      if (this.idt) idtClaim(k, pc, t);
    } else if (i <= steps.length) steps[i - 1](k, pc, t);
    if (i < steps.length) return this.yielded(STEP_ENTRY);
    if (this.sub) return this.done(t.kret);
    if (this.after === After.None) return this.done(0);
    // syscall_enter_from_user_mode / irqentry_enter: interrupts on.
    pc.irqs_disabled = false;
    let r: number | KPath = 0;
    if (this.after === After.Syscall) {
      const nr = t.curNr;
      const entry = nr >= 0 && nr < SYSCALLS.length ? SYSCALLS[nr] : undefined;
      r = entry ? entry.handler(k, this.pc, t, t.curArgs) : -ENOSYS;
    } else if (this.after === After.Int80) {
      // do_syscall_32_irqs_on: `unsigned int unr = nr`, below IA32_NR_syscalls its entry, else
      // sys_ni_syscall (and for nr -1 regs->ax is left at -ENOSYS: the same).
      const nr = t.curNr;
      const entry = nr >= 0 && nr < IA32_SYSCALLS.length ? IA32_SYSCALLS[nr] : undefined;
      r = entry ? entry.handler(k, this.pc, t, t.curArgs) : -ENOSYS;
    } else if (this.inner) r = this.inner;
    if (typeof r === 'number') return this.done(r);
    this.sub = true;
    res.value = r;
    res.done = false;
    return res;
  }

  private yielded(v: number): IteratorResult<number | KPath, number> {
    this.res.value = v;
    this.res.done = false;
    return this.res;
  }

  private done(v: number): IteratorResult<number | KPath, number> {
    this.i = this.steps.length + 2;
    this.res.value = v;
    this.res.done = true;
    return this.res;
  }

  return(value: number): IteratorResult<number | KPath, number> {
    return this.done(value);
  }

  throw(e: unknown): IteratorResult<number | KPath, number> {
    throw e;
  }

  [Symbol.iterator](): KPath {
    return this;
  }

  readonly [Symbol.toStringTag] = 'EntryPath';
}

/**
 * entry_SYSCALL_64 up to do_syscall_64, then the handler of the task's current syscall
 * (`Task.curNr` with `Task.curArgs`; a number the table lacks: -ENOSYS): its result, or its kernel path. The
 * CPU's SYSCALL has already set CPL 0 and masked IF.
 */
export function entry_SYSCALL_64(k: Kernel, pc: PerCpu, t: Task): KPath {
  return entryPath(k, pc, t, cr3InC(k) ? SYSCALL_ENTRY_CR3_IN_C : SYSCALL_ENTRY, After.Syscall, null, false);
}

/**
 * An EntryPath for `t`: in a plain run one of the task's finished ones made new (`Task.entryPaths`
 * keeps two: an entry and an exit are never live at once, but a path may be started before the
 * last one is dropped), so that a syscall allocates nothing; while the explorer tracks the
 * kernel's objects (`t` is a Proxy), always a new one.
 */
function entryPath(k: Kernel, pc: PerCpu, t: Task, steps: readonly EntryStep[], after: After, inner: KPath | null, idt: boolean): KPath {
  if (rawOf(t) !== t) return new EntryPath(k, pc, t, steps, after, inner, idt);
  const pool = t.entryPaths as EntryPath[];
  for (let i = 0; i < pool.length; i++) if (pool[i].finished) return pool[i].restart(pc, steps, after, inner, idt);
  const path = new EntryPath(k, pc, t, steps, after, inner, idt);
  if (pool.length < 2) pool.push(path);
  return path;
}

/**
 * Entry from user mode through the IDT (an exception, or an interrupt that then runs
 * `inner`): the CPU pushes the IRET frame at RSP0, the entry code pushes the rest of pt_regs,
 * SWAPGS, switches CR3 and (upstream) copies pt_regs to the task stack (sync_regs).
 */
export function idtentry_user(k: Kernel, pc: PerCpu, t: Task, inner: KPath | null): KPath {
  return entryPath(k, pc, t, idtEntrySteps(k), After.Inner, inner, true);
}

/**
 * INT 0x80 from user mode (asm_int80_emulation, DEFINE_IDTENTRY_RAW(int80_emulation)): the
 * entry through the IDT as for an exception (the CPU's frame, pt_regs, SWAPGS, CR3), then the
 * 32-bit syscall `Task.curNr` of the ia32 table with `Task.curArgs`. The exit is the IRET one.
 */
export function entry_INT80_compat(k: Kernel, pc: PerCpu, t: Task): KPath {
  return entryPath(k, pc, t, idtEntrySteps(k), After.Int80, null, true);
}

/** The steps of idtentry_user before the handler (the CPU's frame lands on the per-CPU entry stack upstream, claimed before them). */
function idtEntrySteps(k: Kernel): readonly EntryStep[] {
  return cr3InC(k) ? IDT_ENTRY_CR3_IN_C : IDT_ENTRY;
}

/** Where the CPU pushes its frame on an entry through the IDT: upstream the per-CPU entry stack, claimed for `t`. */
function idtClaim(k: Kernel, pc: PerCpu, t: Task): void {
  if (entryStackName(k) === 'entry') claimEntryStack(k, pc, t);
}

/**
 * The exit to user mode, after exit_to_user_mode_loop: SYSRET (`sysret`) or IRET. Upstream:
 * pop the registers, move to the entry stack, build the return frame there (RSP and RDI, or
 * the IRET frame and RDI), SWITCH_TO_USER_CR3 with its deferred flush, SWAPGS, return. With
 * the CR3 switch in C, the handler goes back to the stack pt_regs is on, switches CR3, pops.
 */
export function return_to_user(k: Kernel, pc: PerCpu, t: Task, sysret: boolean): KPath {
  const steps = cr3InC(k) ? (sysret ? SYSRET_EXIT_CR3_IN_C : IRET_EXIT_CR3_IN_C) : sysret ? SYSRET_EXIT : IRET_EXIT;
  return entryPath(k, pc, t, steps, After.None, null, false);
}

/**
 * An interrupt taken in user mode and handled at once (a call-function IPI, the timer tick
 * that preempts): the entry steps, `handler`, and for `resume` the exit steps, all in the one
 * step the interrupt takes (its handler cannot sleep). Without `resume` the task stays in the
 * kernel (it is being switched out).
 */
export function irq_from_user(k: Kernel, pc: PerCpu, t: Task, handler: () => void, resume: boolean): void {
  pc.cpu.setCpl(0);
  idtClaim(k, pc, t);
  for (const step of idtEntrySteps(k)) step(k, pc, t);
  handler();
  if (!resume) return;
  pc.irqs_disabled = true;
  pc.touch = pc.id;
  for (const step of cr3InC(k) ? IRET_EXIT_CR3_IN_C : IRET_EXIT) step(k, pc, t);
  // An IRET whose CS or SS no longer passes (its LDT entry rewritten meanwhile) faulted: the
  // task stays in the kernel to take the signal.
  if (pc.cpu.cpl !== 3) exit_to_user_mode(k, t);
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
