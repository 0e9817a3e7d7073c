/**
 * What a CPU does in one step (arch/x86/entry, kernel/entry/common.c): run one user
 * operation of its current task (fetching it from the task's text, then its data accesses,
 * each a translation that may need page-walk steps), enter the kernel for a syscall or an
 * exception, advance the task's kernel path by one step, and on the way back to user mode
 * deliver signals (exit_to_user_mode_loop) or finish an exiting task.
 */
import { Access } from '../hw/rights.js';
import { FAULT, PENDING } from '../hw/mmu.js';
import { CET_SH_STK_EN, CET_WR_SHSTK_EN, CR4_CET, X86_TRAP_CP, X86_TRAP_GP, X86_TRAP_PF, X86_TRAP_UD } from '../hw/regs.js';
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
import { ENOSYS, ILL_ILLOPN, SEGV_CPERR, SIGILL, SIGKILL, SIGSEGV } from './uapi.js';
import { handle_flush_ipi } from './tlbflush.js';
import { entry_SYSCALL_64, idtentry_user, irq_from_user, return_to_user } from './entry_64.js';
import { RT_SIGFRAME_SIZE, SC_RIP, SC_RSP, UC_SIGMASK } from './signal.js';

/** ILL_ILLOPC: illegal opcode (si_code for SIGILL). */
const ILL_ILLOPC = 1;
/** The #CP error code of a RET whose return address differs from the shadow stack's (CP_RET, arch/x86/kernel/cet.c). */
const CP_RET = 1;

/** Runs one step on CPU `pc`; returns false if it had nothing to do (idle, nothing runnable, no IPI). */
export function cpu_step(k: Kernel, pc: PerCpu): boolean {
  pc.steps++;
  // An interrupt is taken at an instruction boundary (not in the middle of a user access's
  // page walk), enters the kernel at CPL 0 and returns to the CPL it interrupted.
  if (pc.ipis.length > 0 && !pc.walkPending && !pc.irqs_disabled) {
    const cur = pc.current;
    if (pc.cpu.cpl === 3 && cur) irq_from_user(k, pc, cur, () => handle_flush_ipi(k, pc), true);
    else handle_flush_ipi(k, pc);
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
    // The timer tick preempts the task in user mode; it resumes through the IRET exit.
    irq_from_user(k, pc, t, () => {}, false);
    t.enteredBySyscall = false;
    schedule(k, pc);
    return true;
  }
  user_step(k, pc, t);
  return true;
}

/**
 * Advances the task's kernel path by up to `k.quantum` steps (KERNEL_QUANTUM, or 1 while a
 * scripted schedule runs) (fewer if it waits, sleeps or
 * ends: another CPU may then need to run); when it ends, finishes what it was and returns
 * towards user mode. The explorer steps paths one step at a time; the plain runner's quantum is
 * just a coarser, still deterministic, schedule.
 */
function kernel_step(k: Kernel, pc: PerCpu, t: Task): void {
  const path = t.kpath!;
  let r = path.next();
  for (let n = 1; !r.done && n < k.quantum && r.value !== STEP_WAIT && r.value !== STEP_SLEEP && r.value !== STEP_IPI; n++) r = path.next();
  if (!r.done) {
    t.nextStep = r.value;
    t.nextStepPath = path;
    if (r.value === STEP_SLEEP) schedule(k, pc);
    return;
  }
  t.kpath = null;
  const kind = t.kpathKind;
  if (kind === 'return') return;
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
  // do_syscall_64 allows SYSRET after a syscall (the model's user state always qualifies);
  // everything else, and a restarted syscall, leaves by IRET.
  t.kpath = return_to_user(k, pc, t, t.enteredBySyscall);
  t.kpathKind = 'return';
}

/** The value of a compiled operand for task `t`. */
function valueOf(t: Task, v: CValue): bigint {
  if (v.kind === 0) return v.constant;
  if (v.kind === 1) {
    const x = t.vars.get(v.name);
    return (x ?? 0n) + v.add;
  }
  if (v.kind === 3) return v.constant + v.add;
  if (v.kind === 4) return BigInt(t.sp) + v.add;
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
      // The reschedule IPI enters the kernel; the signal is delivered on the way back.
      cpu.setCpl(0);
      t.enteredBySyscall = false;
      t.kpath = idtentry_user(k, pc, t, get_signal(k, pc, t));
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
    cpu.setCpl(0);
    t.enteredBySyscall = false;
    t.kpath = idtentry_user(k, pc, t, null);
    t.kpathKind = 'fault';
    return;
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
    case 'call':
      return near_call(k, pc, t, Number(BigInt.asUintN(64, valueOf(t, fn.addrs[idx]!)) & 0xffffffffffffn));
    case 'wrpkru':
      if (!cpu.wrpkru(Number(BigInt.asUintN(32, valueOf(t, fn.values[idx]!))))) return exception(k, pc, t);
      k.recordOp(t, undefined, undefined);
      break;
    case 'rdpkru': {
      const v = cpu.rdpkru();
      if (v === FAULT) return exception(k, pc, t);
      if (op.into) t.vars.set(op.into, BigInt(v));
      k.recordOp(t, BigInt(v), undefined);
      break;
    }
    case 'transient_load': {
      const addr = BigInt.asUintN(64, valueOf(t, fn.addrs[idx]!));
      t.opAddr = addr;
      const len = Math.min(8, 4096 - Number(addr & 0xfffn));
      const b = cpu.transientRead(addr, len);
      let v = -1n;
      if (b) {
        v = 0n;
        for (let i = 0; i < b.length; i++) v |= BigInt(b[i]) << BigInt(8 * i);
      }
      if (op.into) t.vars.set(op.into, v);
      k.recordOp(t, v, undefined);
      break;
    }
    case 'rdssp':
      // RDSSPQ is a NOP unless shadow stacks are on at CPL 3.
      if (shstk_active(pc, t)) {
        if (op.into) t.vars.set(op.into, BigInt(t.ssp));
        k.recordOp(t, BigInt(t.ssp), undefined);
      } else k.recordOp(t, undefined, undefined);
      break;
    case 'wrss': {
      if (!shstk_active(pc, t) || !(t.ucet & CET_WR_SHSTK_EN)) {
        cpu.raiseException(X86_TRAP_UD);
        return exception(k, pc, t);
      }
      const addr = BigInt.asUintN(64, valueOf(t, fn.addrs[idx]!));
      t.opAddr = addr;
      if (addr % 8n !== 0n) {
        cpu.raiseException(X86_TRAP_GP);
        return exception(k, pc, t);
      }
      if (!stack_access(k, pc, t, 1, addr, Access.ShadowStackWrite)) return;
      write_u64(k, pc.uPa[0], BigInt.asUintN(64, valueOf(t, fn.values[idx]!)));
      k.recordOp(t, undefined, undefined);
      break;
    }
  }
  t.pc += OP_BYTES;
  t.slice++;
}

/** Shadow stacks are on for the task in user mode: CR4.CET and IA32_U_CET.SH_STK_EN. */
function shstk_active(pc: PerCpu, t: Task): boolean {
  return (pc.cpu.cr4 & CR4_CET) !== 0 && (t.ucet & CET_SH_STK_EN) !== 0;
}

/**
 * Translation `stage` (1 or 2) of the current operation: an 8-byte access at `addr`. True when
 * it is done (the physical address is in pc.uPa[stage - 1]); false when a page walk is under
 * way (the step ends) or the access faulted (the exception is being handled).
 */
function stack_access(k: Kernel, pc: PerCpu, t: Task, stage: number, addr: bigint, kind: number): boolean {
  if (pc.uStage > stage) return true;
  const r = pc.cpu.accessStart(Number(addr >> 32n) >>> 0, Number(addr & 0xffffffffn), kind);
  if (r === PENDING) {
    pc.walkPending = true;
    return false;
  }
  if (r === FAULT) {
    exception(k, pc, t);
    return false;
  }
  pc.uPa[stage - 1] = r;
  pc.uStage = stage + 1;
  return true;
}

function read_u64(k: Kernel, pa: number): bigint {
  const b = k.machine.mem.readBytes(pa, 8);
  return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
}

function write_u64(k: Kernel, pa: number, v: bigint): void {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v, true);
  k.machine.mem.writeBytes(pa, b);
}

/**
 * CALL near: pushes the return address on the stack and, with shadow stacks on, on the shadow
 * stack (a shadow-stack write), then jumps. Either push may fault first; nothing changes then.
 */
function near_call(k: Kernel, pc: PerCpu, t: Task, target: number): void {
  const ss = shstk_active(pc, t);
  const sp = BigInt(t.sp - 8);
  const ssp = BigInt(t.ssp - 8);
  t.opAddr = BigInt(target);
  if (!stack_access(k, pc, t, 1, sp, Access.Write)) return;
  if (ss && !stack_access(k, pc, t, 2, ssp, Access.ShadowStackWrite)) return;
  const ret = BigInt(t.pc + OP_BYTES);
  write_u64(k, pc.uPa[0], ret);
  if (ss) {
    write_u64(k, pc.uPa[1], ret);
    t.ssp -= 8;
  }
  t.sp -= 8;
  t.pc = target;
  t.slice++;
  k.recordOp(t, undefined, undefined);
}

/**
 * RET near: pops the return address from the stack and, with shadow stacks on, from the
 * shadow stack; if they differ the RET raises #CP (near-ret, error code 1) and nothing moves.
 */
function near_ret(k: Kernel, pc: PerCpu, t: Task): void {
  const ss = shstk_active(pc, t);
  if (!stack_access(k, pc, t, 1, BigInt(t.sp), Access.Read)) return;
  if (ss && !stack_access(k, pc, t, 2, BigInt(t.ssp), Access.ShadowStackRead)) return;
  const ret = read_u64(k, pc.uPa[0]);
  if (ss && read_u64(k, pc.uPa[1]) !== ret) {
    pc.cpu.raiseException(X86_TRAP_CP, CP_RET);
    return exception(k, pc, t);
  }
  if (ss) t.ssp += 8;
  t.sp += 8;
  t.pc = Number(ret & 0xffffffffffffn);
}

/**
 * The end of a function: a thread group's leader (main, a forked child) calls exit_group(0),
 * a thread exit(0); a named function returns (RET) to the address at the top of its stack.
 */
function function_end(k: Kernel, pc: PerCpu, t: Task, fn: CFunction): void {
  if (fn.end === FnEnd.Return) return near_ret(k, pc, t);
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
  t.enteredBySyscall = true;
  t.intoVar = into;
  t.curNr = nr;
  t.curArgs = args;
  const entry = nr >= 0 && nr < SYSCALLS.length ? SYSCALLS[nr] : undefined;
  t.curName = entry ? entry.name : `syscall_${nr}`;
  if (k.events.on) k.emit({ type: 'syscall_enter', cpu: pc.id, tid: t.tid, nr, name: t.curName, args });
  t.kpath = entry_SYSCALL_64(k, pc, t, entry ? () => entry.handler(k, pc, t, args) : () => -ENOSYS);
  t.kpathKind = entry && entry.noreturn ? 'exit' : 'syscall';
}

/**
 * An exception from user mode: #PF runs the fault handler; #UD is SIGILL with ILL_ILLOPN at the
 * instruction (do_error_trap); #CP is SIGSEGV with SEGV_CPERR and si_addr 0 (do_user_cp_fault);
 * #GP (a non-canonical address, a misaligned WRSS) is SIGSEGV with SI_KERNEL.
 */
function exception(k: Kernel, pc: PerCpu, t: Task): void {
  const cpu = pc.cpu;
  const vector = cpu.faultVector;
  const code = cpu.faultErrorCode;
  cpu.clearFault();
  cpu.setCpl(0);
  t.enteredBySyscall = false;
  t.kpathKind = 'fault';
  if (vector === X86_TRAP_PF) {
    t.kpath = idtentry_user(k, pc, t, exc_page_fault(k, pc, t, cpu.cr2Hi, cpu.cr2Lo, code));
    return;
  }
  if (vector === X86_TRAP_UD) force_sig_fault(k, t, SIGILL, ILL_ILLOPN, BigInt(t.pc));
  else if (vector === X86_TRAP_CP) {
    if (k.events.on) k.emit({ type: 'control_protection', cpu: pc.id, tid: t.tid, code, ip: t.pc });
    force_sig_fault(k, t, SIGSEGV, SEGV_CPERR, 0n);
  } else force_sig(k, t, SIGSEGV);
  t.kpath = idtentry_user(k, pc, t, null);
}
