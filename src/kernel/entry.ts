/**
 * The kernel's side of a CPU's step (arch/x86/entry, kernel/entry/common.c): the ways into the
 * kernel from user mode (SYSCALL, an exception through the IDT, an interrupt), advancing the
 * current task's kernel path by one step, and on the way back to user mode delivering signals
 * (exit_to_user_mode_loop) or finishing an exiting task.
 *
 * Executing user code is not here: the processor running the task's operations is
 * user/interp.ts, and which of the two a CPU does in a step is decided by sim/step.ts. The
 * interpreter comes in only through do_syscall_64 (the SYSCALL instruction), idtentry (an
 * exception the CPU raised), exc_invalid_opcode and sysvec_reschedule_ipi.
 */
import { X86_TRAP_CP, X86_TRAP_DE, X86_TRAP_NP, X86_TRAP_PF, X86_TRAP_SS, X86_TRAP_UD } from '../hw/regs.js';
import { __USER_CS, __USER_DS } from './desc.js';
import { OP_BYTES } from '../user/program.js';
import { do_exit } from './exit.js';
import { exc_page_fault } from './fault.js';
import type { Kernel, PerCpu } from './kernel.js';
import { cpu_allowed, sched_tick, schedule } from './sched.js';
import { force_sig, force_sig_fault, get_signal, signal_pending, __fatal_signal_pending } from './signal.js';
import { STEP_IPI, STEP_RESCHED, STEP_SLEEP, STEP_WAIT, type KPath } from './steps.js';
import { SYSCALLS, type SyscallEntry } from './syscalls.js';
import type { Task } from './task.js';
import { FPE_INTDIV, ILL_ILLOPN, SEGV_CPERR, SIGBUS, SIGFPE, SIGILL, SIGKILL, SIGSEGV } from './uapi.js';
import { handle_flush_ipi } from './tlbflush.js';
import { entry_INT80_compat, entry_SYSCALL_64, idtentry_user, irq_from_user, return_to_user } from './entry_64.js';
import { IA32_SYSCALLS } from './syscall_32.js';
import { SREG_CS, SREG_SS } from '../hw/segment.js';
import { this_cpu } from './this_cpu.js';

/** Kernel-path steps the plain runner takes on a CPU before giving the next CPU its turn. */
export const KERNEL_QUANTUM = 64;

/** ILL_ILLOPC: illegal opcode (si_code for SIGILL). */
const ILL_ILLOPC = 1;

/**
 * The call-function IPI (sysvec_call_function, flush_smp_call_function_queue): runs the flush
 * requests queued for this CPU (handle_flush_ipi). Taken from user mode it goes through the
 * IDT entry and returns by IRET, all in this one step; in the kernel it runs at once. The
 * caller takes it only at an instruction boundary with interrupts enabled.
 */
export function sysvec_call_function(k: Kernel, pc: PerCpu): void {
  const cur = pc.current;
  if (pc.cpu.cpl === 3 && cur) irq_from_user(k, pc, cur, () => handle_flush_ipi(k, pc), true);
  else handle_flush_ipi(k, pc);
}

/**
 * The timer tick in user mode (sysvec_apic_timer_interrupt, scheduler_tick): when `t` has run
 * its `timeslice` operations, or TIF_NEED_RESCHED is set, and another task waits on this CPU
 * (or `t` is to move to another), the tick preempts it (it resumes later through the IRET
 * exit) and returns true. Otherwise the tick changes nothing and returns false. The caller
 * asks only at an instruction boundary.
 */
export function sysvec_apic_timer_interrupt(k: Kernel, pc: PerCpu, t: Task): boolean {
  const slice = k.options.timeslice;
  if (!(((slice > 0 && t.slice >= slice) || t.need_resched) && (pc.runqueue.length > 0 || t.migrate_to >= 0 || !cpu_allowed(t, pc.id)))) return false;
  irq_from_user(k, pc, t, () => {}, false);
  t.enteredBySyscall = false;
  t.entryRF = false;
  schedule(k, pc);
  return true;
}

/**
 * The reschedule IPI that signal_wake_up sends a task running in user mode (kick_process), so
 * that a signal sent from elsewhere (SIGKILL from exit_group included) is taken at the next
 * instruction boundary and not only at the task's next kernel exit. If `t` has a signal to
 * take, enters the kernel (the signal is delivered on the way back) and returns true;
 * otherwise returns false and changes nothing.
 */
export function sysvec_reschedule_ipi(k: Kernel, pc: PerCpu, t: Task): boolean {
  if (!((t.group.groupExit || t.jobctl !== 0 || t.pending.signal !== 0n || t.group.shared_pending.signal !== 0n) && signal_pending(t))) return false;
  pc.cpu.setCpl(0);
  t.enteredBySyscall = false;
  t.entryRF = false;
  const here = this_cpu(k, t);
  t.kpath = idtentry_user(k, here, t, get_signal(k, here, t));
  t.kpathKind = 'signal';
  return true;
}

/**
 * Advances the task's kernel path by up to `k.quantum` steps (KERNEL_QUANTUM, or 1 while a
 * scripted schedule runs) (fewer if it waits, sleeps or
 * ends: another CPU may then need to run); when it ends, finishes what it was and returns
 * towards user mode. The explorer steps paths one step at a time; the plain runner's quantum is
 * just a coarser, still deterministic, schedule.
 */
export function kernel_step(k: Kernel, pc: PerCpu, t: Task): void {
  const path = t.kpath!;
  // The sub-paths kcall started, above `path` (left from another path: dropped).
  const stack = t.kstack;
  if (stack.length > 0 && t.kstackRoot !== path) stack.length = 0;
  let top: KPath = stack.length > 0 ? stack[stack.length - 1] : path;
  // Up to k.quantum steps. A sub-path a kcall yields is pushed and an ended one popped (its
  // result in t.kret) within the step that reached it, as yield* would.
  let result = 0;
  for (let n = 0; ; ) {
    const r = top.next();
    if (r.done) {
      if (stack.length > 0) {
        stack.pop();
        t.kret = r.value;
        top = stack.length > 0 ? stack[stack.length - 1] : path;
        continue;
      }
      result = r.value;
      break;
    }
    const v = r.value;
    if (typeof v !== 'number') {
      t.kstackRoot = path;
      stack.push(v);
      top = v;
      continue;
    }
    if (++n < k.quantum && v !== STEP_WAIT && v !== STEP_SLEEP && v !== STEP_IPI && !(v === STEP_RESCHED && t.need_resched)) continue;
    if (k.options.preempt !== 'none') {
      t.slice += n;
      sched_tick(k, pc, t);
    }
    t.nextStep = v;
    t.nextStepPath = path;
    if (v === STEP_SLEEP) schedule(k, pc);
    return;
  }
  t.kpath = null;
  const kind = t.kpathKind;
  if (kind === 'return') return;
  if (kind === 'exit') {
    schedule(k, pc);
    return;
  }
  if (kind === 'kthread') {
    // The kernel thread's work is done: it sleeps until woken again.
    t.state = 'sleeping';
    schedule(k, pc);
    return;
  }
  if (kind === 'syscall') {
    if (t.skipResult) t.skipResult = false;
    else k.completeSyscallResult(t, result);
  }
  exit_to_user_mode(k, t);
}

/**
 * exit_to_user_mode_loop: before user mode resumes, a dying task exits, pending signals are
 * delivered one by one (each a kernel path), and a syscall left at -ERESTARTSYS restarts.
 */
export function exit_to_user_mode(k: Kernel, t: Task): void {
  if (t.group.groupExit || __fatal_signal_pending(t)) {
    // do_group_exit: the group's code, or 0 for a thread killed by another's exec (de_thread).
    t.kpath = do_exit(k, this_cpu(k, t), t, t.group.groupExit ? t.group.group_exit_code : t.group.group_exec_task ? 0 : SIGKILL);
    t.kpathKind = 'exit';
    return;
  }
  if (signal_pending(t)) {
    t.kpath = get_signal(k, this_cpu(k, t), t);
    t.kpathKind = 'signal';
    return;
  }
  if (t.restartPending) {
    // arch_do_signal_or_restart: no handler ran, so regs->ax = regs->orig_ax and the ip goes back.
    t.restartPending = false;
    t.pc -= OP_BYTES;
    t.vars.set('rax', BigInt.asUintN(64, BigInt(t.curNr)));
  }
  // do_syscall_64 allows SYSRET after a syscall (the model's user state always qualifies);
  // everything else, and a restarted syscall, leaves by IRET.
  // (syscall_return_via_sysret: not when pt_regs' cs or ss differ from __USER_CS, __USER_DS.)
  t.kpath = return_to_user(k, this_cpu(k, t), t, t.enteredBySyscall && t.cs === __USER_CS && t.ss === __USER_DS);
  t.kpathKind = 'return';
}

/**
 * The SYSCALL instruction's way in: CPL 0, then entry_SYSCALL_64 and do_syscall_64's dispatch
 * of syscall `nr` with `args` (always six). A handler that returns a number finishes at once,
 * one that returns a path runs it step by step; the result goes to variable `into`. The caller
 * has moved the task's ip past the instruction. Sets the task's kernel path; runs no step.
 */
export function do_syscall_64(k: Kernel, pc: PerCpu, t: Task, nr: number, args: readonly bigint[], into: string | undefined): void {
  pc.cpu.setCpl(0);
  t.enteredBySyscall = true;
  t.entryRF = false;
  // entry_SYSCALL_64 builds pt_regs with pushq $__USER_DS (ss) and $__USER_CS (cs).
  t.cs = __USER_CS;
  t.ss = __USER_DS;
  const entry = syscall_enter(k, pc, t, SYSCALLS, 'syscall_', nr, args, into);
  t.kpath = entry_SYSCALL_64(k, this_cpu(k, t), t);
  t.kpathKind = entry && entry.noreturn ? 'exit' : 'syscall';
}

/**
 * What both syscall entries record of syscall `nr` of `table` before its path runs: the
 * variable its result goes to, its number, arguments and name (`prefix` and the number for one
 * the table lacks), and the syscall_enter event. Returns its table entry, if any.
 */
function syscall_enter(k: Kernel, pc: PerCpu, t: Task, table: readonly (SyscallEntry | undefined)[], prefix: string, nr: number, args: readonly bigint[], into: string | undefined): SyscallEntry | undefined {
  t.intoVar = into;
  t.curNr = nr;
  t.curArgs = args;
  const entry = nr >= 0 && nr < table.length ? table[nr] : undefined;
  t.curName = entry ? entry.name : `${prefix}${nr}`;
  if (k.events.on) k.emit({ type: 'syscall_enter', cpu: pc.id, tid: t.tid, nr, name: t.curName, args });
  return entry;
}

/**
 * INT 0x80 whose gate delivered (the CPU has checked it: cpu.intn): CPL 0, pt_regs' cs and ss
 * as the CPU pushed them (whatever user mode ran with), then int80_emulation: orig_ax = the
 * low 32 bits of RAX, nr = (int)orig_ax (syscall_32_enter), and the ia32 table's syscall with
 * `args`, the six registers EBX, ECX, EDX, ESI, EDI, EBP zero-extended from 32 bits. RAX gets
 * the handler's long result (a negative errno sign-extended), and the exit is IRET (never
 * SYSRET: do_int80_emulation returns through the idtentry's exit). The caller has moved the
 * task's ip past the instruction. Sets the task's kernel path; runs no step.
 */
export function do_int80_emulation(k: Kernel, pc: PerCpu, t: Task, rax: bigint, args: readonly bigint[], into: string | undefined): void {
  const cpu = pc.cpu;
  cpu.setCpl(0);
  t.enteredBySyscall = false;
  t.entryRF = false;
  t.cs = cpu.seg[SREG_CS].sel;
  t.ss = cpu.seg[SREG_SS].sel;
  const nr = Number(BigInt.asIntN(32, rax));
  const entry = syscall_enter(k, pc, t, IA32_SYSCALLS, 'syscall32_', nr, args, into);
  t.kpath = entry_INT80_compat(k, this_cpu(k, t), t);
  t.kpathKind = entry && entry.noreturn ? 'exit' : 'syscall';
}

/**
 * The IDT entry of the exception the CPU raised in user mode (DEFINE_IDTENTRY,
 * arch/x86/kernel/traps.c): #PF runs exc_page_fault; #UD is SIGILL with ILL_ILLOPN at the
 * instruction (exc_invalid_op, do_error_trap); #CP is SIGSEGV with SEGV_CPERR and si_addr 0
 * (exc_control_protection, do_user_cp_fault); #DE is SIGFPE with FPE_INTDIV at the instruction
 * (exc_divide_error, do_error_trap); #GP (a non-canonical address, a misaligned WRSS, a
 * selector MOV Sreg refuses) is SIGSEGV with SI_KERNEL (exc_general_protection); #NP and #SS
 * (a not-present segment) are SIGBUS with SI_KERNEL (exc_segment_not_present and
 * exc_stack_segment: do_error_trap with si_code 0, so force_sig). Clears the CPU's fault and
 * sets the task's kernel path; runs no step.
 */
export function idtentry(k: Kernel, pc: PerCpu, t: Task): void {
  const cpu = pc.cpu;
  const vector = cpu.faultVector;
  const code = cpu.faultErrorCode;
  cpu.clearFault();
  cpu.setCpl(0);
  t.enteredBySyscall = false;
  t.entryRF = true;
  t.kpathKind = 'fault';
  if (vector === X86_TRAP_PF) {
    const here = this_cpu(k, t);
    t.kpath = idtentry_user(k, here, t, exc_page_fault(k, here, t, cpu.cr2Hi, cpu.cr2Lo, code));
    return;
  }
  // do_trap, do_user_cp_fault and exc_general_protection record the trap and its error code
  // in the thread (the frame's trapno and err) before the signal.
  t.trap_nr = vector;
  t.error_code = vector === X86_TRAP_UD ? 0 : code;
  if (vector === X86_TRAP_UD) force_sig_fault(k, t, SIGILL, ILL_ILLOPN, BigInt(t.pc));
  else if (vector === X86_TRAP_DE) force_sig_fault(k, t, SIGFPE, FPE_INTDIV, BigInt(t.pc));
  else if (vector === X86_TRAP_CP) {
    if (k.events.on) k.emit({ type: 'control_protection', cpu: pc.id, tid: t.tid, code, ip: t.pc });
    force_sig_fault(k, t, SIGSEGV, SEGV_CPERR, 0n);
  } else if (vector === X86_TRAP_NP || vector === X86_TRAP_SS) force_sig(k, t, SIGBUS);
  else force_sig(k, t, SIGSEGV);
  t.kpath = idtentry_user(k, this_cpu(k, t), t, null);
}

/**
 * An instruction fetched at an ip where the program has no operation (outside its functions,
 * or between two operations): SIGILL with ILL_ILLOPC at the ip, through the IDT entry. Sets the
 * task's kernel path; runs no step.
 */
export function exc_invalid_opcode(k: Kernel, pc: PerCpu, t: Task): void {
  t.trap_nr = X86_TRAP_UD;
  t.error_code = 0;
  force_sig_fault(k, t, SIGILL, ILL_ILLOPC, BigInt(t.pc));
  pc.cpu.setCpl(0);
  t.enteredBySyscall = false;
  t.entryRF = true;
  t.kpath = idtentry_user(k, this_cpu(k, t), t, null);
  t.kpathKind = 'fault';
}
