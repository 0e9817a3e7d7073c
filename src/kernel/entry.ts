/**
 * What a CPU does in one step (arch/x86/entry, kernel/entry/common.c): run one user
 * operation of its current task (fetching it from the task's text, then its data accesses,
 * each a translation that may need page-walk steps), enter the kernel for a syscall or an
 * exception, advance the task's kernel path by one step, and on the way back to user mode
 * deliver signals (exit_to_user_mode_loop) or finish an exiting task.
 */
import { Access } from '../hw/rights.js';
import { FAULT, PENDING } from '../hw/mmu.js';
import { X86_TRAP_PF } from '../hw/regs.js';
import { FnEnd, OP_BYTES, type CFunction, type CValue } from '../user/program.js';
import { do_exit } from './exit.js';
import { exc_page_fault } from './fault.js';
import type { Kernel, PerCpu } from './kernel.js';
import { schedule } from './sched.js';
import { force_sig, force_sig_fault, get_signal, signal_pending, sigmask, SIG_KERNEL_ONLY_MASK } from './signal.js';
import { STEP_IPI, STEP_SLEEP, STEP_WAIT } from './steps.js';

/** Kernel-path steps the plain runner takes on a CPU before giving the next CPU its turn. */
export const KERNEL_QUANTUM = 64;
import { syscallByName, SYSCALLS } from './syscalls.js';
import type { Task } from './task.js';
import { ENOSYS, SIGILL, SIGKILL, SIGSEGV } from './uapi.js';
import { handle_flush_ipi } from './tlbflush.js';
import { RT_SIGFRAME_SIZE, SC_RIP, SC_RSP, UC_SIGMASK } from './signal.js';

/** ILL_ILLOPC: illegal opcode (si_code for SIGILL). */
const ILL_ILLOPC = 1;

/** Runs one step on CPU `pc`; returns false if it had nothing to do (idle, nothing runnable, no IPI). */
export function cpu_step(k: Kernel, pc: PerCpu): boolean {
  pc.steps++;
  // An interrupt is taken at an instruction boundary (not in the middle of a user access's
  // page walk), enters the kernel at CPL 0 and returns to the CPL it interrupted.
  if (pc.ipis.length > 0 && !pc.walkPending) {
    const cpl = pc.cpu.cpl;
    if (cpl !== 0) pc.cpu.setCpl(0);
    handle_flush_ipi(k, pc);
    if (cpl !== 0) pc.cpu.setCpl(cpl as 0 | 3);
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
    kernel_step(k, pc, t);
    return true;
  }
  const slice = k.options.timeslice;
  if (slice > 0 && t.slice >= slice && pc.runqueue.length > 0 && !pc.walkPending) {
    schedule(k, pc);
    return true;
  }
  user_step(k, pc, t);
  return true;
}

/**
 * Advances the task's kernel path by up to KERNEL_QUANTUM steps (fewer if it waits, sleeps or
 * ends: another CPU may then need to run); when it ends, finishes what it was and returns
 * towards user mode. The explorer steps paths one step at a time; the plain runner's quantum is
 * just a coarser, still deterministic, schedule.
 */
function kernel_step(k: Kernel, pc: PerCpu, t: Task): void {
  const path = t.kpath!;
  let r = path.next();
  for (let n = 1; !r.done && n < KERNEL_QUANTUM && r.value !== STEP_WAIT && r.value !== STEP_SLEEP && r.value !== STEP_IPI; n++) r = path.next();
  if (!r.done) {
    if (r.value === STEP_SLEEP) schedule(k, pc);
    return;
  }
  t.kpath = null;
  const kind = t.kpathKind;
  if (kind === 'exit') {
    schedule(k, pc);
    return;
  }
  if (kind === 'syscall') {
    if (t.skipResult) t.skipResult = false;
    else k.completeSyscallResult(t, r.value);
  }
  exit_to_user_mode(k, pc, t);
}

/**
 * exit_to_user_mode_loop: before user mode resumes, a dying task exits, pending signals are
 * delivered one by one (each a kernel path), and a syscall left at -ERESTARTSYS restarts.
 */
export function exit_to_user_mode(k: Kernel, pc: PerCpu, t: Task): void {
  if (t.group.groupExit || (t.pending.signal & sigmask(SIGKILL)) !== 0n) {
    t.kpath = do_exit(k, pc, t, t.group.groupExit ? t.group.group_exit_code : SIGKILL);
    t.kpathKind = 'exit';
    return;
  }
  if (signal_pending(t)) {
    t.kpath = get_signal(k, pc, t);
    t.kpathKind = 'signal';
    return;
  }
  if (t.restartPending) {
    t.restartPending = false;
    t.pc -= OP_BYTES;
  }
  pc.cpu.setCpl(3);
}

/** The value of a compiled operand for task `t`. */
function valueOf(t: Task, v: CValue): bigint {
  if (v.kind === 0) return v.constant;
  if (v.kind === 1) {
    const x = t.vars.get(v.name);
    return (x ?? 0n) + v.add;
  }
  if (v.kind === 3) return v.constant + v.add;
  return BigInt(t.image!.byName.get(v.name)!.base) + v.add;
}

/**
 * One user-mode step: continues a pending page walk, or starts the next operation at the
 * task's pc. An operation whose translations all hit the TLB completes in one step.
 */
function user_step(k: Kernel, pc: PerCpu, t: Task): void {
  const cpu = pc.cpu;
  let r: number;
  if (pc.walkPending) {
    r = cpu.accessStep();
    if (r === PENDING) return;
    pc.walkPending = false;
    if (r === FAULT) return exception(k, pc, t);
    if (pc.uStage === 0) pc.uStage = 1;
    else pc.uPa[pc.uStage++ - 1] = r;
  } else {
    pc.uStage = 0;
    // kick_process: signal_wake_up interrupts a task running in user mode on its CPU, so a
    // signal sent from elsewhere (SIGKILL from exit_group included) is taken at the next
    // instruction boundary, not only at the task's next kernel exit.
    if ((t.group.groupExit || t.pending.signal !== 0n || t.group.shared_pending.signal !== 0n) && signal_pending(t)) {
      cpu.setCpl(0);
      t.kpath = get_signal(k, pc, t);
      t.kpathKind = 'signal';
      return;
    }
  }
  // Fetch the operation.
  if (pc.uStage === 0) {
    const p = t.pc;
    r = cpu.accessStart(Math.floor(p / 2 ** 32) >>> 0, p >>> 0, Access.Fetch);
    if (r === PENDING) {
      pc.walkPending = true;
      return;
    }
    if (r === FAULT) return exception(k, pc, t);
    pc.uStage = 1;
  }
  const fn = t.image!.functionAt(t.pc);
  const idx = fn ? (t.pc - fn.base) / OP_BYTES : -1;
  if (!fn || !Number.isInteger(idx)) {
    force_sig_fault(k, t, SIGILL, ILL_ILLOPC, BigInt(t.pc));
    return exit_to_user_mode(k, pc, t);
  }
  t.opFn = fn.name;
  t.opIndex = idx;
  t.opAddr = undefined;
  if (idx === fn.ops.length) return function_end(k, pc, t, fn);
  const op = fn.ops[idx];
  t.opName = op.op;
  switch (op.op) {
    case 'load':
    case 'store':
    case 'fetch': {
      const size = op.op === 'fetch' ? 1 : op.size ?? 8;
      const addr = BigInt.asUintN(64, valueOf(t, fn.addrs[idx]!));
      t.opAddr = addr;
      const hi = Number(addr >> 32n);
      const lo = Number(addr & 0xffffffffn);
      const kind = op.op === 'load' ? Access.Read : op.op === 'store' ? Access.Write : Access.Fetch;
      // Data translations: one per page the access touches (stage 1: first page, stage 2: second).
      const firstLen = Math.min(size, 4096 - (lo & 0xfff));
      while (pc.uStage <= (firstLen < size ? 2 : 1)) {
        const second = pc.uStage === 2;
        const alo = second ? (lo + firstLen) >>> 0 : lo;
        const ahi = second && alo < lo ? (hi + 1) >>> 0 : hi;
        r = cpu.accessStart(ahi, alo, kind);
        if (r === PENDING) {
          pc.walkPending = true;
          return;
        }
        if (r === FAULT) return exception(k, pc, t);
        pc.uPa[pc.uStage++ - 1] = r;
      }
      const mem = k.machine.mem;
      if (op.op === 'load') {
        let v = 0n;
        const b = mem.readBytes(pc.uPa[0], firstLen);
        for (let i = 0; i < firstLen; i++) v |= BigInt(b[i]) << BigInt(8 * i);
        if (firstLen < size) {
          const b2 = mem.readBytes(pc.uPa[1], size - firstLen);
          for (let i = 0; i < size - firstLen; i++) v |= BigInt(b2[i]) << BigInt(8 * (i + firstLen));
        }
        if (op.into) t.vars.set(op.into, v);
        k.recordOp(t, v, undefined);
      } else if (op.op === 'store') {
        const v = BigInt.asUintN(64, valueOf(t, fn.values[idx]!));
        const b = new Uint8Array(size);
        for (let i = 0; i < size; i++) b[i] = Number((v >> BigInt(8 * i)) & 0xffn);
        mem.writeBytes(pc.uPa[0], b.subarray(0, firstLen));
        if (firstLen < size) mem.writeBytes(pc.uPa[1], b.subarray(firstLen));
        k.recordOp(t, undefined, undefined);
      } else {
        k.recordOp(t, undefined, undefined);
      }
      break;
    }
    case 'set':
      t.vars.set(op.var, valueOf(t, fn.values[idx]!));
      break;
    case 'syscall':
      return enter_syscall(k, pc, t, fn, idx);
    case 'longjmp':
      return siglongjmp(k, pc, t);
    case 'return':
      return function_end(k, pc, t, fn);
  }
  t.pc += OP_BYTES;
  t.slice++;
}

/**
 * The end of a function: a thread group's leader (main, a forked child) calls exit_group(0),
 * a thread exit(0); a named function returns to the address at the top of its stack.
 */
function function_end(k: Kernel, pc: PerCpu, t: Task, fn: CFunction): void {
  if (fn.end === FnEnd.Return) {
    const ret = pc.cpu.read(BigInt(t.sp), 8, Access.Read);
    if (!ret) return exception(k, pc, t);
    t.pc = Number(new DataView(ret.buffer).getBigUint64(0, true));
    t.sp += 8;
    return;
  }
  // A thread (not its group's leader) returning from its start routine calls exit(0); the
  // leader, or a forked child, exit_group(0).
  const nr = t.isLeader ? 231 : 60;
  if (k.events.on) k.emit({ type: 'user_end', cpu: pc.id, tid: t.tid, fn: fn.name });
  t.opName = 'return';
  start_syscall(k, pc, t, nr, [0n], undefined);
}

/** siglongjmp out of a handler: restores the mask saved in the frame and resumes after the interrupted operation. */
function siglongjmp(k: Kernel, pc: PerCpu, t: Task): void {
  const frame = t.sp;
  const f = pc.cpu.read(BigInt(frame), RT_SIGFRAME_SIZE, Access.Read);
  if (!f) return exception(k, pc, t);
  const dv = new DataView(f.buffer);
  t.blocked = dv.getBigUint64(UC_SIGMASK, true) & ~SIG_KERNEL_ONLY_MASK;
  t.pc = Number(dv.getBigUint64(SC_RIP, true)) + OP_BYTES;
  t.sp = Number(dv.getBigUint64(SC_RSP, true));
  t.slice++;
}

/** The SYSCALL instruction: into the kernel, pc past the instruction, then the table's handler. */
function enter_syscall(k: Kernel, pc: PerCpu, t: Task, fn: CFunction, idx: number): void {
  const op = fn.ops[idx] as { op: 'syscall'; name: string | number; into?: string };
  const nr = typeof op.name === 'number' ? op.name : syscallByName(op.name);
  const cargs = fn.args[idx];
  // Registers the program did not set read as 0: handlers always get six arguments.
  const args: bigint[] = [0n, 0n, 0n, 0n, 0n, 0n];
  for (let i = 0; i < cargs.length; i++) args[i] = BigInt.asUintN(64, valueOf(t, cargs[i]));
  t.pc += OP_BYTES;
  t.slice++;
  start_syscall(k, pc, t, nr, args, op.into);
}

/** do_syscall_64: runs syscall `nr`; a handler that returns a number finishes now, one that returns a path runs it step by step. */
function start_syscall(k: Kernel, pc: PerCpu, t: Task, nr: number, args: bigint[], into: string | undefined): void {
  pc.cpu.setCpl(0);
  t.intoVar = into;
  t.curNr = nr;
  t.curArgs = args;
  const entry = nr >= 0 && nr < SYSCALLS.length ? SYSCALLS[nr] : undefined;
  t.curName = entry ? entry.name : `syscall_${nr}`;
  if (k.events.on) k.emit({ type: 'syscall_enter', cpu: pc.id, tid: t.tid, nr, name: t.curName, args });
  if (!entry) {
    k.completeSyscallResult(t, -ENOSYS);
    return exit_to_user_mode(k, pc, t);
  }
  const r = entry.handler(k, pc, t, args);
  if (typeof r === 'number') {
    k.completeSyscallResult(t, r);
    return exit_to_user_mode(k, pc, t);
  }
  t.kpath = r;
  t.kpathKind = entry.noreturn ? 'exit' : 'syscall';
}

/** An exception from user mode: #PF runs the fault handler; #GP (a non-canonical address) is SIGSEGV with SI_KERNEL. */
function exception(k: Kernel, pc: PerCpu, t: Task): void {
  const cpu = pc.cpu;
  const vector = cpu.faultVector;
  const code = cpu.faultErrorCode;
  cpu.clearFault();
  cpu.setCpl(0);
  if (vector === X86_TRAP_PF) {
    t.kpath = exc_page_fault(k, pc, t, cpu.cr2Hi, cpu.cr2Lo, code);
    t.kpathKind = 'fault';
    return;
  }
  force_sig(k, t, SIGSEGV);
  exit_to_user_mode(k, pc, t);
}
