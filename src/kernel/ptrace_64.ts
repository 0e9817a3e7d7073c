/**
 * ptrace's x86-64 part (arch/x86/kernel/ptrace.c, 6.12): the tracee's registers as struct
 * user_regs_struct (getreg, putreg: PTRACE_GETREGS, PTRACE_SETREGS and the words of
 * PTRACE_PEEKUSER and PTRACE_POKEUSER), the debug registers at struct user's u_debugreg, and
 * PTRACE_ARCH_PRCTL. The general registers are the tracee's variables of their names (0 when
 * unset); rip and rsp its ip and stack pointer; cs and ss the pt_regs selectors; ds, es, fs
 * and gs the selectors thread_struct keeps while the tracee is switched out (it is, in a ptrace
 * stop); fs_base and gs_base thread.fsbase and thread.gsbase.
 *
 * XXX: RFLAGS is not modelled: eflags reads 0x202 (IF and the fixed bit; a real tracee's
 * arithmetic flags vary) and writes to it are accepted and dropped; orig_rax reads the syscall
 * the tracee stopped in (-1 after an exception or interrupt) and writes to it are dropped (no
 * syscall restart through it); fs_base of a tracee with a non-zero FS selector on a CPU without
 * FSGSBASE is thread.fsbase, where 6.12 reads the base of the descriptor; DR7 writes that would
 * enable a breakpoint are -EIO (no hardware breakpoints; a disabling write is kept).
 */
import type { Kernel, PerCpu } from './kernel.js';
import { task_size_max } from './process_64.js';
import { ptrace_request } from './ptrace.js';
import type { KPath } from './steps.js';
import type { Task } from './task.js';
import { copy_from_user, copy_to_user, getU64, putU64 } from './uaccess.js';
import { EFAULT, EINVAL, EIO, PTRACE_GETREGS, PTRACE_PEEKUSR, PTRACE_POKEUSR, PTRACE_SETREGS } from './uapi.js';

/** struct user_regs_struct (arch/x86/include/asm/user_64.h), one name per 8-byte word. */
export const USER_REGS: readonly string[] = Object.freeze([
  'r15', 'r14', 'r13', 'r12', 'rbp', 'rbx', 'r11', 'r10', 'r9', 'r8', 'rax', 'rcx', 'rdx', 'rsi', 'rdi', 'orig_rax',
  'rip', 'cs', 'eflags', 'rsp', 'ss', 'fs_base', 'gs_base', 'ds', 'es', 'fs', 'gs',
]);
/** sizeof(struct user_regs_struct). */
export const USER_REGS_SIZE = USER_REGS.length * 8;
/** offsetof(struct user, u_debugreg) and sizeof(struct user) (asm/user_64.h: error_code and fault_address follow u_debugreg). */
const U_DEBUGREG = 848;
const SIZEOF_USER = 928;
/** What the model's user RFLAGS hold (signal.ts USER_EFLAGS). */
const USER_EFLAGS = 0x202n;
/** DR6's reserved bits: thread.virtual_dr6 keeps them flipped (positive polarity). */
const DR6_RESERVED = 0xffff0ff0n;
/** SEGMENT_RPL_MASK and USER_RPL. */
const SEGMENT_RPL_MASK = 3;
const USER_RPL = 3;

/** getreg: the word at `offset` of the tracee's user_regs_struct. */
export function getreg(child: Task, offset: number): bigint {
  const name = USER_REGS[offset >> 3];
  switch (name) {
    case 'cs':
      return BigInt(child.cs);
    case 'ss':
      return BigInt(child.ss);
    case 'ds':
      return BigInt(child.ds);
    case 'es':
      return BigInt(child.es);
    case 'fs':
      return BigInt(child.fsindex);
    case 'gs':
      return BigInt(child.gsindex);
    case 'eflags':
      return USER_EFLAGS;
    case 'fs_base':
      return child.fsbase;
    case 'gs_base':
      return child.gsbase;
    case 'orig_rax':
      return child.enteredBySyscall ? BigInt.asUintN(64, BigInt(child.curNr)) : 0xffffffffffffffffn;
    case 'rip':
      return BigInt(child.pc);
    case 'rsp':
      return BigInt(child.sp);
    default:
      return child.vars.get(name) ?? 0n;
  }
}

/** invalid_selector: a non-null selector whose RPL is not 3. */
function invalid_selector(value: number): boolean {
  return value !== 0 && (value & SEGMENT_RPL_MASK) !== USER_RPL;
}

/**
 * putreg: writes the word at `offset`. Segment selectors (truncated to 16 bits,
 * set_segment_reg): an invalid selector is -EIO, a null cs or ss too; fs_base and gs_base at
 * or above TASK_SIZE_MAX are -EIO; the rest is stored.
 */
export function putreg(k: Kernel, child: Task, offset: number, value: bigint): number {
  const name = USER_REGS[offset >> 3];
  switch (name) {
    case 'cs':
    case 'ss':
    case 'ds':
    case 'es':
    case 'fs':
    case 'gs': {
      const sel = Number(value & 0xffffn);
      if (invalid_selector(sel)) return -EIO;
      if (name === 'fs') child.fsindex = sel;
      else if (name === 'gs') child.gsindex = sel;
      else if (name === 'ds') child.ds = sel;
      else if (name === 'es') child.es = sel;
      else {
        // "Can't actually change these in 64-bit mode."
        if (sel === 0) return -EIO;
        if (name === 'cs') child.cs = sel;
        else child.ss = sel;
      }
      return 0;
    }
    case 'eflags':
    case 'orig_rax':
      return 0;
    case 'fs_base':
    case 'gs_base':
      if (value >= task_size_max(k)) return -EIO;
      if (name === 'fs_base') child.fsbase = value;
      else child.gsbase = value;
      return 0;
    case 'rip':
      child.pc = Number(value);
      return 0;
    case 'rsp':
      child.sp = Number(value);
      return 0;
    default:
      child.vars.set(name, value);
      return 0;
  }
}

/** genregs_get: the whole user_regs_struct. */
export function genregs_get(child: Task): Uint8Array {
  const b = new Uint8Array(USER_REGS_SIZE);
  for (let i = 0; i < USER_REGS.length; i++) putU64(b, i * 8, getreg(child, i * 8));
  return b;
}

/** genregs_set: `count` bytes of words from `b`, in order, each through putreg; the first error ends it (earlier words stay written). */
export function genregs_set(k: Kernel, child: Task, b: Uint8Array, pos: number, count: number): number {
  for (let off = 0; off + 8 <= count; off += 8) {
    const r = putreg(k, child, pos + off, getU64(b, off));
    if (r) return r;
  }
  return 0;
}

/** ptrace_get_debugreg: DR0..DR3 the breakpoint addresses, DR6 in the architecture's polarity, DR7; DR4 and DR5 read 0. */
function ptrace_get_debugreg(child: Task, n: number): bigint {
  if (n < 4) return child.ptrace_dr[n];
  if (n === 6) return child.ptrace_dr[6] ^ DR6_RESERVED;
  if (n === 7) return child.ptrace_dr[7];
  return 0n;
}

/**
 * ptrace_set_debugreg: DR0..DR3 take a user address (a breakpoint's, registered disabled: a
 * kernel address is -EINVAL, as hw_breakpoint_parse refuses kernel space to ptrace's
 * exclude_kernel breakpoints); DR6 is kept; DR7 only when it enables nothing (XXX: else -EIO);
 * DR4 and DR5 are -EIO.
 */
function ptrace_set_debugreg(k: Kernel, child: Task, n: number, val: bigint): number {
  if (n < 4) {
    if (val >= task_size_max(k)) return -EINVAL;
    child.ptrace_dr[n] = val;
    return 0;
  }
  if (n === 6) {
    child.ptrace_dr[6] = val ^ DR6_RESERVED;
    return 0;
  }
  if (n === 7) {
    if (val & 0xffn) return -EIO;
    child.ptrace_dr[7] = val;
    return 0;
  }
  return -EIO;
}

/**
 * arch_ptrace (arch/x86/kernel/ptrace.c): PEEKUSR and POKEUSR take a word-aligned offset below
 * sizeof(struct user) (-EIO otherwise): a register of user_regs_struct, or a debug register at
 * u_debugreg; PEEKUSR reads 0 elsewhere and stores the word at `data` (-EFAULT), POKEUSR is -EIO
 * elsewhere. GETREGS stores the user_regs_struct at `data`, SETREGS reads it from there
 * (-EFAULT) and puts each word. Everything else is ptrace_request's.
 */
export function arch_ptrace(k: Kernel, pc: PerCpu, t: Task, child: Task, request: number, addr: bigint, data: bigint): number | KPath {
  switch (request) {
    case PTRACE_PEEKUSR: {
      if (addr & 7n || addr >= BigInt(SIZEOF_USER)) return -EIO;
      const off = Number(addr);
      let tmp = 0n;
      if (off < USER_REGS_SIZE) tmp = getreg(child, off);
      else if (off >= U_DEBUGREG && off <= U_DEBUGREG + 56) tmp = ptrace_get_debugreg(child, (off - U_DEBUGREG) / 8);
      return put_word(k, pc, t, data, tmp);
    }
    case PTRACE_POKEUSR: {
      if (addr & 7n || addr >= BigInt(SIZEOF_USER)) return -EIO;
      const off = Number(addr);
      if (off < USER_REGS_SIZE) return putreg(k, child, off, data);
      if (off >= U_DEBUGREG && off <= U_DEBUGREG + 56) return ptrace_set_debugreg(k, child, (off - U_DEBUGREG) / 8, data);
      return -EIO;
    }
    case PTRACE_GETREGS:
      return (function* (): KPath {
        return (yield* copy_to_user(k, pc, t, data, genregs_get(child))) ? 0 : -EFAULT;
      })();
    case PTRACE_SETREGS:
      return (function* (): KPath {
        const b = yield* copy_from_user(k, pc, t, data, USER_REGS_SIZE);
        if (!b) return -EFAULT;
        return genregs_set(k, child, b, 0, USER_REGS_SIZE);
      })();
    default:
      return ptrace_request(k, pc, t, child, request, addr, data);
  }
}

/** put_user of a word at `to` (-EFAULT). */
function* put_word(k: Kernel, pc: PerCpu, t: Task, to: bigint, v: bigint): KPath {
  const b = new Uint8Array(8);
  putU64(b, 0, v);
  return (yield* copy_to_user(k, pc, t, to, b)) ? 0 : -EFAULT;
}
