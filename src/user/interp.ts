/**
 * The processor executing a task's user code: the operations of its program (program.ts),
 * each an instruction the CPU fetches at the task's ip and then carries out, one step at a
 * time. A fetch and each data access is a translation through the CPU (hw/cpu.ts accessStart),
 * which may need page-walk steps; the operation finishes in the step whose translations are
 * all done, so one whose translations hit the TLB takes one step.
 *
 * This is not Linux. It enters the kernel only the ways a user program does: the SYSCALL
 * instruction (kernel/entry.ts do_syscall_64), an exception the CPU raised (idtentry), an
 * ip with no operation (exc_invalid_opcode), and, at each instruction boundary, the
 * reschedule IPI a pending signal sends (sysvec_reschedule_ipi).
 *
 * The task's user registers live in its Task, as Linux keeps them in pt_regs and
 * thread_struct: the ip (`pc`), `sp`, the shadow-stack pointer `ssp`, IA32_U_CET (`ucet`),
 * and the program's variables as its general registers.
 */
import { Access } from '../hw/rights.js';
import { ZF_CLEAR } from '../hw/cpu.js';
import { FAULT, PENDING } from '../hw/mmu.js';
import { SREG_CS, SREG_FS, SREG_GS, SREG_NAMES, SREG_SS } from '../hw/segment.js';
import { CET_SH_STK_EN, CET_WR_SHSTK_EN, CR4_CET, X86_TRAP_CP, X86_TRAP_DE, X86_TRAP_GP, X86_TRAP_UD } from '../hw/regs.js';
import { cpuid } from '../hw/cpuid.js';
import type { PhysMem } from '../hw/physmem.js';
import { rfbmOf, xrstor, xsave, xsave_check, xsave_ranges, xsavec, type XsaveArea, type XsaveInsn } from '../hw/xsave.js';
import { do_int80_emulation, do_syscall_64, exc_invalid_opcode, idtentry, sysvec_reschedule_ipi } from '../kernel/entry.js';
import { ia32SyscallByName } from '../kernel/syscall_32.js';
import type { Kernel, PerCpu } from '../kernel/kernel.js';
import { RT_SIGFRAME_SIZE, SC_RIP, SC_RSP, siglongjmp_sigprocmask, UC_SIGMASK } from '../kernel/signal.js';
import { syscallByName } from '../kernel/syscalls.js';
import type { Task } from '../kernel/task.js';
import { ip_of } from '../hw/addr.js';
import { hold_at_end } from '../sim/hold.js';
import { FnEnd, OP_BYTES, type CFunction, type CValue } from './program.js';
import { DIVIDE_ERROR } from './rtexpr.js';

/** The #CP error code of a RET whose return address differs from the shadow stack's (CP_RET, arch/x86/kernel/cet.c). */
const CP_RET = 1;
/** The #CP error code of RSTORSSP refusing a token (CP_RSTRORSSP, arch/x86/kernel/cet.c; SDM Vol. 1 Table 17-7). */
const CP_RSTORSSP = 4;

/** The instruction raises exception `vector` (with `errorCode`) and the CPU enters the kernel through its IDT entry; false, for a caller that reports whether it completed. */
function trap(k: Kernel, pc: PerCpu, t: Task, vector: number, errorCode = 0): false {
  pc.cpu.raiseException(vector, errorCode);
  idtentry(k, pc, t);
  return false;
}

/**
 * What one CPU keeps, between steps, of the user operation it is executing: which translation
 * comes next (0 the fetch, 1 and 2 the data pages or the two stack slots) and the physical
 * addresses the finished ones gave. Whether a page walk of it is under way is the processor's
 * own state (Cpu.accessPending). One per CPU, made once: a step allocates nothing here.
 */
export class UserCpu {
  /** The next translation of the current operation. */
  stage = 0;
  /** Physical addresses of translations 1 and 2. */
  readonly pa = [0, 0];
  /** A load's or store's bytes, little-endian, and a view of them as one 64-bit value. */
  readonly bytes = new Uint8Array(8);
  readonly view = new DataView(this.bytes.buffer);
}

/** The six argument registers of a syscall whose compiled arguments are `cargs` (registers the program did not set read as 0). */
function syscallArgs(t: Task, cargs: CValue[]): bigint[] {
  const args: bigint[] = [0n, 0n, 0n, 0n, 0n, 0n];
  for (let i = 0; i < cargs.length; i++) args[i] = BigInt.asUintN(64, valueOf(t, cargs[i]));
  return args;
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
  if (v.kind === 5) return v.ev!(t.vars, t.sp);
  return BigInt(t.image!.byName.get(v.name)!.base) + v.add;
}

/**
 * One user-mode step of task `t` on CPU `pc`: continues the page walk under way
 * (Cpu.accessPending), or starts the next operation at the task's ip. Does not take interrupts other than the signal kick: the
 * caller (sim/step.ts) handles IPIs and the timer before calling it.
 */
export function user_step(k: Kernel, pc: PerCpu, u: UserCpu, t: Task): void {
  try {
    user_insn(k, pc, u, t);
  } catch (e) {
    // An expression operand divided by 0 (rtexpr.ts): the instruction raises #DE before it changes anything.
    if (e !== DIVIDE_ERROR) throw e;
    trap(k, pc, t, X86_TRAP_DE);
  }
}

/** user_step's work: one step of the operation at the task's ip. */
function user_insn(k: Kernel, pc: PerCpu, u: UserCpu, t: Task): void {
  const cpu = pc.cpu;
  let r: number;
  if (cpu.accessPending) {
    r = cpu.accessStep();
    if (r === PENDING) return;
    if (r === FAULT) return idtentry(k, pc, t);
    if (u.stage === 0) u.stage = 1;
    else u.pa[u.stage++ - 1] = r;
  } else {
    u.stage = 0;
    if (sysvec_reschedule_ipi(k, pc, t)) return;
  }
  // Fetch the operation.
  if (u.stage === 0) {
    const p = t.pc;
    r = cpu.accessStart(Math.floor(p / 2 ** 32) >>> 0, p >>> 0, Access.Fetch);
    if (r === PENDING) return;
    if (r === FAULT) return idtentry(k, pc, t);
    u.stage = 1;
  }
  const fn = t.image!.functionAt(t.pc);
  const idx = fn ? (t.pc - fn.base) / OP_BYTES : -1;
  if (!fn || !Number.isInteger(idx)) return exc_invalid_opcode(k, pc, t);
  t.opFn = fn.name;
  t.opIndex = idx;
  t.opIp = t.pc;
  t.opAddr = undefined;
  if (idx === fn.ops.length) return function_end(k, pc, u, t, fn);
  const op = fn.ops[idx];
  t.opName = op.op;
  switch (op.op) {
    case 'load':
    case 'store':
    case 'fetch': {
      const size = op.op === 'fetch' ? 1 : op.size ?? 8;
      const addr = effective(cpu, valueOf(t, fn.addrs[idx]!));
      t.opAddr = addr;
      const hi = Number(addr >> 32n);
      const lo = Number(addr & 0xffffffffn);
      const kind = op.op === 'load' ? Access.Read : op.op === 'store' ? Access.Write : Access.Fetch;
      // Data translations: one per page the access touches (stage 1: first page, stage 2: second).
      const firstLen = Math.min(size, 4096 - (lo & 0xfff));
      while (u.stage <= (firstLen < size ? 2 : 1)) {
        const second = u.stage === 2;
        const alo = second ? (lo + firstLen) >>> 0 : lo;
        const ahi = second && alo < lo ? (hi + 1) >>> 0 : hi;
        r = cpu.accessStart(ahi, alo, kind);
        if (r === PENDING) return;
        if (r === FAULT) return idtentry(k, pc, t);
        u.pa[u.stage++ - 1] = r;
      }
      const mem = cpu.mem;
      if (op.op === 'load') {
        // Little-endian, through the CPU's 8-byte scratch: one bigint per load.
        const bytes = u.bytes;
        bytes.fill(0);
        bytes.set(mem.readBytes(u.pa[0], firstLen), 0);
        if (firstLen < size) bytes.set(mem.readBytes(u.pa[1], size - firstLen), firstLen);
        const v = u.view.getBigUint64(0, true);
        if (op.into) t.vars.set(op.into, v);
        k.recordOp(t, v, undefined);
      } else if (op.op === 'store') {
        const bytes = u.bytes;
        u.view.setBigUint64(0, BigInt.asUintN(64, valueOf(t, fn.values[idx]!)), true);
        mem.writeBytes(u.pa[0], bytes.subarray(0, firstLen));
        if (firstLen < size) mem.writeBytes(u.pa[1], bytes.subarray(firstLen, size));
        k.recordOp(t, undefined, undefined);
      } else {
        k.recordOp(t, undefined, undefined);
      }
      break;
    }
    case 'set':
      // MOV RSP: the stack pointer is a register, not a variable.
      if (op.var === 'rsp') t.sp = Number(BigInt.asUintN(64, valueOf(t, fn.values[idx]!)) & 0xffffffffffffn);
      else t.vars.set(op.var, valueOf(t, fn.values[idx]!));
      break;
    case 'work':
      k.recordOp(t, BigInt(op.count), undefined);
      break;
    case 'syscall':
      return syscall_insn(k, pc, t, fn, idx);
    case 'int80':
      return int80_insn(k, pc, t, fn, idx);
    case 'longjmp':
      return siglongjmp(k, pc, t);
    case 'return':
      return function_end(k, pc, u, t, fn);
    case 'call':
      return near_call(k, pc, u, t, ip_of(effective(cpu, valueOf(t, fn.addrs[idx]!))));
    case 'ljmp':
    case 'lcall':
      return far_jmp_call(k, pc, u, t, Number(BigInt.asUintN(16, valueOf(t, fn.values[idx]!))), valueOf(t, fn.addrs[idx]!), op.op === 'lcall', op.size);
    case 'lret':
      return far_ret(k, pc, u, t, op.size);
    case 'wrpkru':
      if (!cpu.wrpkru(Number(BigInt.asUintN(32, valueOf(t, fn.values[idx]!))))) return idtentry(k, pc, t);
      k.recordOp(t, undefined, undefined);
      break;
    case 'rdpkru': {
      const v = cpu.rdpkru();
      if (v === FAULT) return idtentry(k, pc, t);
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
    case 'while': {
      // A compare and a conditional jump, and the iteration count kept in a register.
      const n = t.vars.get(op.counter) ?? 0n;
      const holds = BigInt.asUintN(64, valueOf(t, fn.values[idx]!)) !== 0n;
      if (holds !== (op.until === true) && n < BigInt(op.max)) {
        t.vars.set(op.counter, n + 1n);
        break;
      }
      k.recordOp(t, holds !== (op.until === true) ? BigInt(op.max) + 1n : n, undefined);
      t.pc = fn.base + op.end * OP_BYTES;
      t.slice++;
      t.nr_ops++;
      return;
    }
    case 'jump':
      t.pc = fn.base + op.to * OP_BYTES;
      t.slice++;
      t.nr_ops++;
      return;
    case 'mov_sreg': {
      const sreg = SREG_NAMES.indexOf(op.sreg);
      const sel = Number(BigInt.asUintN(16, valueOf(t, fn.values[idx]!)));
      if (!cpu.movToSreg(sreg, sel)) return idtentry(k, pc, t);
      // The stack segment's selector is what the next entry from user mode saves as pt_regs->ss.
      if (sreg === SREG_SS) t.ss = sel;
      k.recordOp(t, undefined, undefined);
      break;
    }
    case 'read_sreg': {
      const v = BigInt(cpu.movFromSreg(SREG_NAMES.indexOf(op.sreg)));
      if (op.into) t.vars.set(op.into, v);
      k.recordOp(t, v, undefined);
      break;
    }
    case 'lar':
    case 'lsl':
    case 'verr':
    case 'verw': {
      const sel = Number(BigInt.asUintN(16, valueOf(t, fn.values[idx]!)));
      const r = op.op === 'lar' ? cpu.lar(sel) : op.op === 'lsl' ? cpu.lsl(sel) : op.op === 'verr' ? cpu.verr(sel) : cpu.verw(sel);
      if (r === FAULT) return idtentry(k, pc, t);
      const v = r === ZF_CLEAR ? -1n : BigInt(r);
      if (op.into) t.vars.set(op.into, v);
      k.recordOp(t, v, undefined);
      break;
    }
    case 'rdfsbase':
    case 'rdgsbase': {
      const v = cpu.rdFsGsBase(op.op === 'rdfsbase' ? SREG_FS : SREG_GS);
      if (v === null) return idtentry(k, pc, t);
      if (op.into) t.vars.set(op.into, v);
      k.recordOp(t, v, undefined);
      break;
    }
    case 'wrfsbase':
    case 'wrgsbase':
      if (!cpu.wrFsGsBase(op.op === 'wrfsbase' ? SREG_FS : SREG_GS, valueOf(t, fn.values[idx]!))) return idtentry(k, pc, t);
      k.recordOp(t, undefined, undefined);
      break;
    case 'rdssp':
      // RDSSPQ is a NOP unless shadow stacks are on at CPL 3.
      if (shstk_active(pc, t)) {
        if (op.into) t.vars.set(op.into, BigInt(t.ssp));
        k.recordOp(t, BigInt(t.ssp), undefined);
      } else k.recordOp(t, undefined, undefined);
      break;
    case 'incssp':
      if (!incssp(k, pc, u, t, Number(BigInt.asUintN(64, valueOf(t, fn.values[idx]!)) & 0xffn))) return;
      break;
    case 'rstorssp':
      if (!rstorssp(k, pc, u, t, BigInt.asUintN(64, valueOf(t, fn.addrs[idx]!)))) return;
      break;
    case 'saveprevssp':
      if (!saveprevssp(k, pc, u, t)) return;
      break;
    case 'cpuid': {
      if (cpu.cpuidFaults()) {
        trap(k, pc, t, X86_TRAP_GP);
        return;
      }
      const leaf = Number(BigInt.asUintN(32, valueOf(t, fn.values[idx]!)));
      const regs = cpuid(cpu, leaf, Number(BigInt.asUintN(32, valueOf(t, fn.args[idx][0]))));
      if (op.into) CPUID_REGS.forEach((reg, i) => t.vars.set(`${op.into}_${reg}`, BigInt(regs[i])));
      k.recordOp(t, undefined, undefined);
      break;
    }
    case 'xgetbv': {
      const v = cpu.xgetbv(Number(BigInt.asUintN(32, valueOf(t, fn.values[idx]!))));
      if (v === null) return idtentry(k, pc, t);
      if (op.into) t.vars.set(op.into, v);
      k.recordOp(t, v, undefined);
      break;
    }
    case 'xsave':
    case 'xsavec':
    case 'xrstor':
      if (!xsave_insn(k, pc, u, t, fn, idx, op.op)) return;
      break;
    case 'wrss': {
      if (!shstk_active(pc, t) || !(t.ucet & CET_WR_SHSTK_EN)) {
        trap(k, pc, t, X86_TRAP_UD);
        return;
      }
      const addr = BigInt.asUintN(64, valueOf(t, fn.addrs[idx]!));
      t.opAddr = addr;
      if (addr % 8n !== 0n) {
        trap(k, pc, t, X86_TRAP_GP);
        return;
      }
      if (!stack_access(k, pc, u, t, 1, addr, Access.ShadowStackWrite)) return;
      write_u64(pc, u.pa[0], BigInt.asUintN(64, valueOf(t, fn.values[idx]!)));
      k.recordOp(t, undefined, undefined);
      break;
    }
  }
  t.pc += OP_BYTES;
  t.slice++;
  t.nr_ops++;
}

/**
 * INCSSPQ (SDM Vol. 2A "INCSSPD/INCSSPQ"): #UD unless shadow stacks are on at CPL 3; reads the
 * entry at SSP and, for a count n > 0, the one at SSP + 8(n - 1) (shadow-stack reads, so a
 * guard page or an ordinary page faults), then SSP += 8n. True when done.
 */
function incssp(k: Kernel, pc: PerCpu, u: UserCpu, t: Task, n: number): boolean {
  if (!shstk_active(pc, t)) return trap(k, pc, t, X86_TRAP_UD);
  const ssp = BigInt(t.ssp);
  t.opAddr = ssp;
  if (!stack_access(k, pc, u, t, 1, ssp, Access.ShadowStackRead)) return false;
  if (n > 0 && !stack_access(k, pc, u, t, 2, ssp + 8n * BigInt(n - 1), Access.ShadowStackRead)) return false;
  t.ssp += 8 * n;
  k.recordOp(t, undefined, undefined);
  return true;
}

/**
 * RSTORSSP m64 in 64-bit mode (SDM Vol. 2B "RSTORSSP"): #UD unless shadow stacks are on at
 * CPL 3; #GP(0) for an address not 8-aligned; then one locked shadow-stack read-modify-write
 * of the token at the address: it must have bit 0 (L, 64-bit mode) set and bit 1 clear, and
 * name the top of stack just above it ((token AND NOT 1) - 8, aligned down to 8, equals the
 * address). A good token is replaced by the previous-ssp token SSP | 2 | 1 and SSP becomes
 * the address; a bad one is written back as it was and RSTORSSP raises #CP with error code
 * RSTORSSP (4). XXX: RFLAGS.CF (the token's bit 2, an alignment hole) is not modelled.
 */
function rstorssp(k: Kernel, pc: PerCpu, u: UserCpu, t: Task, addr: bigint): boolean {
  t.opAddr = addr;
  if (!shstk_active(pc, t)) return trap(k, pc, t, X86_TRAP_UD);
  if (addr % 8n !== 0n) return trap(k, pc, t, X86_TRAP_GP);
  if (!stack_access(k, pc, u, t, 1, addr, Access.ShadowStackWrite)) return false;
  const token = read_u64(pc, u.pa[0]);
  const bad = (token & 3n) !== 1n || BigInt.asUintN(64, ((token & ~1n) - 8n) & ~7n) !== addr;
  write_u64(pc, u.pa[0], bad ? token : BigInt(t.ssp) | 3n);
  if (bad) return trap(k, pc, t, X86_TRAP_CP, CP_RSTORSSP);
  t.ssp = Number(addr);
  k.recordOp(t, undefined, undefined);
  return true;
}

/**
 * SAVEPREVSSP in 64-bit mode (SDM Vol. 2B "SAVEPREVSSP"): #UD unless shadow stacks are on at
 * CPL 3; #GP(0) for an SSP not 8-aligned; pops the previous-ssp token at SSP (a shadow-stack
 * read), #GP(0) unless its bit 1 is set; then writes the restore token old SSP | 1 (L) at
 * old SSP - 8 on the previous stack (the SDM's 4-byte zero store at old SSP - 4 falls inside
 * it in 64-bit mode) and SSP += 8. The token is read once: it waits in the CPU's scratch
 * while the second page is walked. XXX: with RFLAGS.CF (not modelled) clear.
 */
function saveprevssp(k: Kernel, pc: PerCpu, u: UserCpu, t: Task): boolean {
  if (!shstk_active(pc, t)) return trap(k, pc, t, X86_TRAP_UD);
  if (t.ssp % 8 !== 0) return trap(k, pc, t, X86_TRAP_GP);
  const ssp = BigInt(t.ssp);
  t.opAddr = ssp;
  if (!stack_access(k, pc, u, t, 1, ssp, Access.ShadowStackRead)) return false;
  if (u.stage === 2) u.view.setBigUint64(0, read_u64(pc, u.pa[0]), true);
  const token = u.view.getBigUint64(0, true);
  if ((token & 2n) === 0n) return trap(k, pc, t, X86_TRAP_GP);
  const old = token & ~3n;
  if (!stack_access(k, pc, u, t, 2, (old & ~7n) - 8n, Access.ShadowStackWrite)) return false;
  write_u64(pc, u.pa[1], old | 1n);
  t.ssp += 8;
  k.recordOp(t, undefined, undefined);
  return true;
}

/** CPUID's output registers, in its order, as the suffixes of the variables it sets. */
const CPUID_REGS = Object.freeze(['eax', 'ebx', 'ecx', 'edx'] as const);

/**
 * XSAVE, XSAVEC or XRSTOR (hw/xsave.ts) at the operation's address with EDX:EAX = its mask:
 * the #UD and alignment checks, then a translation of each page holding bytes the instruction
 * touches (xsave_ranges; under 4 KiB from the base, so at most two pages: stages 1 and 2, the
 * second at the first byte touched there), as writes (XSAVE, XSAVEC) or reads (XRSTOR) with
 * the access rights and protection keys of any user access, then the instruction on those
 * pages. True when done; false when a walk is under way or it faulted.
 * XXX: the processor may write part of an area before a page fault on a later part; the model
 * translates every page first, so a faulting XSAVE writes nothing.
 */
function xsave_insn(k: Kernel, pc: PerCpu, u: UserCpu, t: Task, fn: CFunction, idx: number, insn: XsaveInsn): boolean {
  const cpu = pc.cpu;
  const addr = BigInt.asUintN(64, valueOf(t, fn.addrs[idx]!));
  t.opAddr = addr;
  const hi = Number(addr >> 32n);
  const lo = Number(addr & 0xffffffffn);
  if (!xsave_check(cpu, lo)) {
    idtentry(k, pc, t);
    return false;
  }
  const rfbm = rfbmOf(cpu, valueOf(t, fn.values[idx]!));
  // The first page's share of the area, and the offset of the first byte touched past it (or -1).
  const firstLen = 4096 - (lo & 0xfff);
  let second = -1;
  for (const [from, to] of xsave_ranges(cpu, insn, rfbm)) {
    if (to > firstLen) {
      second = Math.max(from, firstLen);
      break;
    }
  }
  const kind = insn === 'xrstor' ? Access.Read : Access.Write;
  while (u.stage <= (second >= 0 ? 2 : 1)) {
    const at = u.stage === 2 ? second : 0;
    const alo = (lo + at) >>> 0;
    const ahi = alo < lo ? (hi + 1) >>> 0 : hi;
    const r = cpu.accessStart(ahi, alo, kind);
    if (r === PENDING) return false;
    if (r === FAULT) {
      idtentry(k, pc, t);
      return false;
    }
    u.pa[u.stage++ - 1] = r;
  }
  const area = pagesArea(cpu.mem, u.pa[0], u.pa[1] - second, firstLen);
  if (insn === 'xsave') xsave(cpu, area, rfbm);
  else if (insn === 'xsavec') xsavec(cpu, area, rfbm);
  else if (!xrstor(cpu, area, rfbm)) {
    idtentry(k, pc, t);
    return false;
  }
  k.recordOp(t, undefined, undefined);
  return true;
}

/** An XSAVE area whose byte at offset o is at physical `pa0` + o below `firstLen`, and at `pa1` + o from there (pa1 already less the offset). */
function pagesArea(mem: PhysMem, pa0: number, pa1: number, firstLen: number): XsaveArea {
  return {
    read(offset, length) {
      const out = new Uint8Array(length);
      for (let i = 0; i < length; ) {
        const o = offset + i;
        const n = o < firstLen ? Math.min(length - i, firstLen - o) : length - i;
        out.set(mem.readBytes((o < firstLen ? pa0 : pa1) + o, n), i);
        i += n;
      }
      return out;
    },
    write(offset, bytes) {
      for (let i = 0; i < bytes.length; ) {
        const o = offset + i;
        const n = o < firstLen ? Math.min(bytes.length - i, firstLen - o) : bytes.length - i;
        mem.writeBytes((o < firstLen ? pa0 : pa1) + o, bytes.subarray(i, i + n));
        i += n;
      }
    },
  };
}

/** Shadow stacks are on for the task in user mode: CR4.CET and IA32_U_CET.SH_STK_EN. */
function shstk_active(pc: PerCpu, t: Task): boolean {
  return (pc.cpu.cr4 & CR4_CET) !== 0 && (t.ucet & CET_SH_STK_EN) !== 0;
}

/**
 * Translation `stage` (1 or 2) of the current operation: an 8-byte access at `addr`. True when
 * it is done (the physical address is in u.pa[stage - 1]); false when a page walk is under
 * way (the step ends) or the access faulted (the exception is being handled).
 */
function stack_access(k: Kernel, pc: PerCpu, u: UserCpu, t: Task, stage: number, addr: bigint, kind: number): boolean {
  if (u.stage > stage) return true;
  const r = pc.cpu.accessStart(Number(addr >> 32n) >>> 0, Number(addr & 0xffffffffn), kind);
  if (r === PENDING) return false;
  if (r === FAULT) {
    idtentry(k, pc, t);
    return false;
  }
  u.pa[stage - 1] = r;
  u.stage = stage + 1;
  return true;
}

/** The 8 bytes at physical address `pa`, little-endian. */
function read_u64(pc: PerCpu, pa: number): bigint {
  const b = pc.cpu.mem.readBytes(pa, 8);
  return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
}

/** The `n` (4 or 8) bytes at physical address `pa`, little-endian. */
function read_le(pc: PerCpu, pa: number, n: number): bigint {
  return n === 8 ? read_u64(pc, pa) : BigInt(new DataView(pc.cpu.mem.readBytes(pa, 4).slice().buffer).getUint32(0, true));
}

/** Writes the low `n` (4 or 8) bytes of `v` little-endian at physical address `pa`. */
function write_le(pc: PerCpu, pa: number, v: bigint, n: number): void {
  if (n === 8) return write_u64(pc, pa, v);
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, Number(v & 0xffffffffn), true);
  pc.cpu.mem.writeBytes(pa, b);
}

/**
 * An operand's effective address: 64 bits in 64-bit mode, the low 32 in compatibility mode
 * (the address size is 32 bits there). XXX: DS's base and limit are not applied (Linux's
 * user DS is flat).
 */
function effective(cpu: PerCpu['cpu'], v: bigint): bigint {
  return cpu.compatMode() ? BigInt.asUintN(32, v) : BigInt.asUintN(64, v);
}

/**
 * Far JMP or CALL through `sel` to `offset` (SDM Vol. 2A JMP, CALL, far, IA-32e mode), with
 * the operand size of the mode it runs in: 64 bits in 64-bit mode (the REX.W forms, m16:64:
 * a CALL pushes CS zero-extended to 8 bytes, then RIP), 32 in compatibility mode (m16:32: the
 * offset truncated, CS pushed in 4 bytes, then EIP), or `size` (4 in 64-bit mode: the m16:32
 * form, whose pushes are 4 bytes each too). The CS checks (cpu.farCheck) come first;
 * a CALL then translates its two stack slots (each may fault) and, in the step the pushes are
 * made, reads the descriptor again as it loads CS (so the model's far CALL is not one atomic
 * step when its stack needs a page walk). Then CS (RPL = CPL), and the task's pt_regs-to-be cs
 * with it, and the ip. The new CS's L bit decides the mode the next operation runs in.
 * XXX: with shadow stacks on, the SDM's pushes of CS, LIP and SSP to the shadow stack are not made.
 */
function far_jmp_call(k: Kernel, pc: PerCpu, u: UserCpu, t: Task, sel: number, target: bigint, call: boolean, size: 4 | 8 | undefined): void {
  const cpu = pc.cpu;
  const n = size ?? (cpu.compatMode() ? 4 : 8);
  const offset = n === 4 ? BigInt.asUintN(32, target) : BigInt.asUintN(64, target);
  t.opAddr = offset;
  if (u.stage === 1 && !cpu.farCheck(sel, offset, false)) return idtentry(k, pc, t);
  if (call) {
    const sp = cpu.compatMode() ? BigInt((t.sp - 2 * n) >>> 0) : BigInt(t.sp - 2 * n);
    if (!stack_access(k, pc, u, t, 1, sp, Access.Write)) return;
    if (!stack_access(k, pc, u, t, 2, sp + BigInt(n), Access.Write)) return;
    if (!cpu.farCheck(sel, offset, false)) return idtentry(k, pc, t);
    write_le(pc, u.pa[0], BigInt(t.pc + OP_BYTES), n);
    write_le(pc, u.pa[1], BigInt(cpu.seg[SREG_CS].sel), n);
    t.sp = Number(sp);
  }
  cpu.loadFarCs(sel, false);
  t.cs = cpu.seg[SREG_CS].sel;
  t.pc = Number(offset & 0xffffffffffffn);
  t.slice++;
  k.recordOp(t, undefined, undefined);
}

/**
 * Far RET (SDM Vol. 2A RET, IA-32e mode, to the same privilege level), with the operand size
 * of the mode it runs in (8: RETFQ in 64-bit mode; 4 in compatibility mode, at ESP) or `size`: pops the
 * ip and then CS (two stack reads, each may fault), checks CS and the ip (cpu.farCheck), then
 * loads them and moves the stack pointer past both.
 */
function far_ret(k: Kernel, pc: PerCpu, u: UserCpu, t: Task, size: 4 | 8 | undefined): void {
  const cpu = pc.cpu;
  const n = size ?? (cpu.compatMode() ? 4 : 8);
  const sp = cpu.compatMode() ? t.sp >>> 0 : t.sp;
  if (!stack_access(k, pc, u, t, 1, BigInt(sp), Access.Read)) return;
  if (!stack_access(k, pc, u, t, 2, BigInt(sp + n), Access.Read)) return;
  const ip = read_le(pc, u.pa[0], n);
  const sel = Number(read_le(pc, u.pa[1], n) & 0xffffn);
  t.opAddr = ip;
  if (!cpu.farCheck(sel, ip, true)) return idtentry(k, pc, t);
  cpu.loadFarCs(sel, true);
  t.cs = sel;
  t.sp = cpu.compatMode() ? (sp + 2 * n) >>> 0 : sp + 2 * n;
  t.pc = Number(ip & 0xffffffffffffn);
  t.slice++;
  k.recordOp(t, undefined, undefined);
}

/** Writes `v` little-endian at physical address `pa`. */
function write_u64(pc: PerCpu, pa: number, v: bigint): void {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v, true);
  pc.cpu.mem.writeBytes(pa, b);
}

/**
 * CALL near: pushes the return address on the stack and, with shadow stacks on, on the shadow
 * stack (a shadow-stack write), then jumps. Either push may fault first; nothing changes then.
 */
function near_call(k: Kernel, pc: PerCpu, u: UserCpu, t: Task, target: number): void {
  const ss = shstk_active(pc, t);
  // In compatibility mode the return address is an EIP pushed at ESP - 4 (SS is 32-bit).
  const n = pc.cpu.compatMode() ? 4 : 8;
  const sp = n === 4 ? BigInt((t.sp - 4) >>> 0) : BigInt(t.sp - 8);
  const ssp = BigInt(t.ssp - 8);
  t.opAddr = BigInt.asUintN(64, BigInt(target));
  if (!stack_access(k, pc, u, t, 1, sp, Access.Write)) return;
  if (ss && !stack_access(k, pc, u, t, 2, ssp, Access.ShadowStackWrite)) return;
  const ret = BigInt(t.pc + OP_BYTES);
  write_le(pc, u.pa[0], ret, n);
  if (ss) {
    write_u64(pc, u.pa[1], ret);
    t.ssp -= 8;
  }
  t.sp = Number(sp);
  t.pc = target;
  t.slice++;
  t.nr_ops++;
  k.recordOp(t, undefined, undefined);
}

/**
 * RET near: pops the return address from the stack and, with shadow stacks on, from the
 * shadow stack; if they differ the RET raises #CP (near-ret, error code 1) and nothing moves.
 */
function near_ret(k: Kernel, pc: PerCpu, u: UserCpu, t: Task): void {
  const ss = shstk_active(pc, t);
  // In compatibility mode an EIP is popped at ESP.
  const n = pc.cpu.compatMode() ? 4 : 8;
  const sp = n === 4 ? t.sp >>> 0 : t.sp;
  if (!stack_access(k, pc, u, t, 1, BigInt(sp), Access.Read)) return;
  if (ss && !stack_access(k, pc, u, t, 2, BigInt(t.ssp), Access.ShadowStackRead)) return;
  const ret = read_le(pc, u.pa[0], n);
  if (ss && read_u64(pc, u.pa[1]) !== ret) {
    trap(k, pc, t, X86_TRAP_CP, CP_RET);
    return;
  }
  if (ss) t.ssp += 8;
  t.sp = n === 4 ? (sp + 4) >>> 0 : sp + 8;
  t.pc = Number(ret & 0xffffffffffffn);
}

/**
 * The end of a function: a thread group's leader (main, a forked child) calls exit_group(0),
 * a thread exit(0); a named function returns (RET) to the address at the top of its stack.
 */
function function_end(k: Kernel, pc: PerCpu, u: UserCpu, t: Task, fn: CFunction): void {
  if (fn.end === FnEnd.Return) return near_ret(k, pc, u, t);
  // A thread (not its group's leader) returning from its start routine calls exit(0); the
  // leader, or a forked child, exit_group(0).
  const nr = t.isLeader ? 231 : 60;
  if (t.endHold === 0) {
    if (k.events.on) k.emit({ type: 'user_end', cpu: pc.id, tid: t.tid, fn: fn.name });
    // The explorer's --until ops: the exit waits until the explored window is over (sim/hold.ts).
    if (k.hold_at_end) return hold_at_end(k, pc, t);
  }
  t.opName = 'return';
  do_syscall_64(k, pc, t, nr, [0n], undefined);
}

/**
 * siglongjmp out of a handler: restores the mask saved in the frame (as the C library's
 * rt_sigprocmask would, here without a syscall) and resumes after the interrupted operation.
 * That syscall's SYSRET leaves __USER_CS and __USER_DS in CS and SS whatever the handler
 * loaded (on the host too: an SS loaded in a handler does not survive siglongjmp).
 */
function siglongjmp(k: Kernel, pc: PerCpu, t: Task): void {
  const frame = t.sp;
  const f = pc.cpu.read(BigInt(frame), RT_SIGFRAME_SIZE, Access.Read);
  if (!f) return idtentry(k, pc, t);
  const dv = new DataView(f.buffer);
  siglongjmp_sigprocmask(pc, t, dv.getBigUint64(UC_SIGMASK, true), frame);
  t.pc = Number(dv.getBigUint64(SC_RIP, true)) + OP_BYTES;
  t.sp = Number(dv.getBigUint64(SC_RSP, true));
  t.slice++;
  t.nr_ops++;
}

/** INT 0x80's immediate: the vector whose gate it goes through. */
const INT80_VECTOR = 0x80;

/**
 * INT 0x80 (SDM Vol. 2A INT n): the gate of vector 0x80 is checked (cpu.intn); a gate that
 * refuses (ia32_emulation off: DPL 0) raises #GP(0x402) at the instruction. Otherwise the ip
 * moves past it and the kernel's int80_emulation runs the 32-bit syscall: EAX the number,
 * EBX, ECX, EDX, ESI, EDI, EBP the arguments, each the low 32 bits of its register.
 */
function int80_insn(k: Kernel, pc: PerCpu, t: Task, fn: CFunction, idx: number): void {
  const op = fn.ops[idx] as { op: 'int80'; name: string | number; into?: string };
  if (!pc.cpu.intn(INT80_VECTOR)) return idtentry(k, pc, t);
  const rax = typeof op.name === 'number' ? BigInt(op.name) : BigInt(ia32SyscallByName(op.name));
  const args: bigint[] = [0n, 0n, 0n, 0n, 0n, 0n];
  const cargs = fn.args[idx];
  for (let i = 0; i < cargs.length; i++) args[i] = BigInt.asUintN(32, valueOf(t, cargs[i]));
  t.pc += OP_BYTES;
  t.slice++;
  do_int80_emulation(k, pc, t, rax, args, op.into);
}

/** The SYSCALL instruction: its arguments from the operation's registers, the ip past it, then into the kernel. */
function syscall_insn(k: Kernel, pc: PerCpu, t: Task, fn: CFunction, idx: number): void {
  // SYSCALL is #UD in compatibility mode on Intel processors (SDM Vol. 2B SYSCALL,
  // "Compatibility Mode Exceptions"), the processor the model is.
  if (pc.cpu.compatMode()) {
    trap(k, pc, t, X86_TRAP_UD);
    return;
  }
  const op = fn.ops[idx] as { op: 'syscall'; name: string | number; into?: string };
  const nr = typeof op.name === 'number' ? op.name : syscallByName(op.name);
  const args = fn.constArgs[idx] ?? syscallArgs(t, fn.args[idx]);
  t.pc += OP_BYTES;
  t.slice++;
  t.nr_ops++;
  do_syscall_64(k, pc, t, nr, args, op.into);
}
