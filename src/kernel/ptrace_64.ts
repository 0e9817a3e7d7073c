/**
 * ptrace's x86-64 part (arch/x86/kernel/ptrace.c, 6.12): the tracee's registers as struct
 * user_regs_struct (getreg, putreg: PTRACE_GETREGS, PTRACE_SETREGS and the words of
 * PTRACE_PEEKUSER and PTRACE_POKEUSER), the debug registers at struct user's u_debugreg, and
 * PTRACE_ARCH_PRCTL. The general registers are the tracee's variables of their names (0 when
 * unset); rip and rsp its ip and stack pointer; cs and ss the pt_regs selectors; ds, es, fs
 * and gs the selectors thread_struct keeps while the tracee is switched out (it is, in a ptrace
 * stop); fs_base and gs_base thread.fsbase and thread.gsbase. PTRACE_GETREGSET and
 * PTRACE_SETREGSET (ptrace_regset, with the x86-64 regset view) take NT_PRSTATUS (the same
 * user_regs_struct), NT_PRFPREG (the 512-byte FXSAVE image), NT_X86_XSTATE (the standard-format
 * XSAVE buffer, PKRU included: setting it sets the tracee's PKRU) and NT_X86_SHSTK (the
 * shadow-stack pointer). PTRACE_ARCH_PRCTL is arch_prctl on the tracee (do_arch_prctl_64 with
 * task != current): there ARCH_SHSTK_UNLOCK unlocks.
 *
 * XXX: RFLAGS is not modelled: eflags reads 0x202 (IF and the fixed bit; a real tracee's
 * arithmetic flags vary) and writes to it are accepted and dropped; orig_rax reads the syscall
 * the tracee stopped in (-1 after an exception or interrupt) and writes to it are dropped (no
 * syscall restart through it), and a write to rax while an interrupted syscall awaits its restart
 * decision (rax -ERESTARTSYS) does not cancel the restart as 6.12's would; fs_base of a tracee with a non-zero FS selector on a CPU without
 * FSGSBASE is thread.fsbase, where 6.12 reads the base of the descriptor; DR7 writes that would
 * enable a breakpoint are -EIO (no hardware breakpoints; a disabling write is kept). The model
 * holds no x87 or SSE registers (hw/xsave.ts): NT_PRFPREG and NT_X86_XSTATE read their init
 * values and a write keeps only its checks and PKRU. NT_386_IOPERM is not in the view (-EINVAL).
 */
import type { Kernel, PerCpu } from './kernel.js';
import { arch_set_base, task_size_max } from './process_64.js';
import { SREG_FS, SREG_GS } from '../hw/segment.js';
import { ptrace_request } from './ptrace.js';
import type { KPath, KSteps } from './steps.js';
import type { Task } from './task.js';
import { copy_from_user, copy_to_user, getU64, put_user_u64, putU64 } from './uaccess.js';
import { user_eflags, user_xfeatures } from './signal.js';
import { FCW_INIT, MXCSR_INIT, MXCSR_MASK_VALUE, XSAVE_PKRU_OFFSET, XSAVE_XCOMP_BV, XSAVE_XSTATE_BV, xstateSizeStandard } from '../hw/xsave.js';
import { XFEATURE_MASK_PKRU, XFEATURE_MASK_SSE } from '../hw/regs.js';
import {
  ARCH_GET_FS, ARCH_GET_GS, ARCH_SET_FS, ARCH_SET_GS, ARCH_SHSTK_DISABLE, ARCH_SHSTK_ENABLE, ARCH_SHSTK_LOCK, ARCH_SHSTK_SHSTK, ARCH_SHSTK_STATUS, ARCH_SHSTK_UNLOCK, EFAULT, EINVAL, EIO,
  ENODEV, NT_PRFPREG, NT_PRSTATUS, NT_X86_SHSTK, NT_X86_XSTATE, PTRACE_ARCH_PRCTL, PTRACE_GETFPREGS, PTRACE_GETREGS, PTRACE_GETREGSET, PTRACE_SETFPREGS, PTRACE_PEEKUSR, PTRACE_POKEUSR, PTRACE_SETREGS,
  PTRACE_SETREGSET,
} from './uapi.js';

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
      return BigInt(user_eflags(child));
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
 * (-EFAULT) and puts each word; GETFPREGS and SETFPREGS do the same with the FXSAVE image (NT_PRFPREG).
 * Everything else is ptrace_request's.
 */
export function arch_ptrace(k: Kernel, pc: PerCpu, t: Task, child: Task, request: number, addr: bigint, data: bigint): number | KPath {
  switch (request) {
    case PTRACE_PEEKUSR: {
      if (addr & 7n || addr >= BigInt(SIZEOF_USER)) return -EIO;
      const off = Number(addr);
      let tmp = 0n;
      if (off < USER_REGS_SIZE) tmp = getreg(child, off);
      else if (off >= U_DEBUGREG && off <= U_DEBUGREG + 56) tmp = ptrace_get_debugreg(child, (off - U_DEBUGREG) / 8);
      return put_user_u64(k, pc, t, data, tmp);
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
    case PTRACE_GETFPREGS:
      // copy_regset_to_user(REGSET_FP): the FXSAVE image.
      return (function* (): KPath {
        return (yield* copy_to_user(k, pc, t, data, fpregs_image(k, child, false))) ? 0 : -EFAULT;
      })();
    case PTRACE_SETFPREGS:
      // copy_regset_from_user(REGSET_FP): xfpregs_set of the whole image, MXCSR checked.
      return (function* (): KPath {
        const b = yield* copy_from_user(k, pc, t, data, USER_I387_SIZE);
        if (!b) return -EFAULT;
        return (new DataView(b.buffer, b.byteOffset).getUint32(MXCSR, true) & ~MXCSR_MASK_VALUE) !== 0 ? -EINVAL : 0;
      })();
    case PTRACE_ARCH_PRCTL:
      // "Works just like arch_prctl, except that the arguments are reversed."
      return ptrace_arch_prctl(k, pc, t, child, Number(BigInt.asIntN(32, data)), addr);
    case PTRACE_GETREGSET:
    case PTRACE_SETREGSET:
      return (function* (): KPath {
        const iov = yield* copy_from_user(k, pc, t, data, 16);
        if (!iov) return -EFAULT;
        const r = yield* ptrace_regset(k, pc, t, child, request, Number(addr & 0xffffffffn), getU64(iov, 0), getU64(iov, 8));
        if (r.ret) return r.ret;
        const len = new Uint8Array(8);
        putU64(len, 0, r.len);
        return (yield* copy_to_user(k, pc, t, data + 8n, len)) ? 0 : -EFAULT;
      })();
    default:
      return ptrace_request(k, pc, t, child, request, addr, data);
  }
}

/** A regset of the x86-64 view (user_x86_64_regsets): its note type, word count and size. */
interface Regset {
  type: number;
  n: number;
  size: number;
}

/** sizeof(struct user_i387_struct): the FXSAVE image. */
const USER_I387_SIZE = 512;
/** struct _fpx_sw_bytes in the FXSAVE image's software-reserved bytes (xstate_fx_sw_bytes). */
const SW_MAGIC1 = 464;
const FP_XSTATE_MAGIC1 = 0x46505853;
const FP_XSTATE_MAGIC2_SIZE = 4;
/** The FXSAVE image's MXCSR and MXCSR_MASK; the XSAVE header's reserved bytes. */
const MXCSR = 24;
const MXCSR_MASK = 28;
const XSAVE_HDR_RESERVED = 528;

/** fpu_user_cfg.max_size: the standard-format XSAVE buffer of the user features. */
function xstate_user_size(k: Kernel): number {
  return xstateSizeStandard(Number(user_xfeatures(k)));
}

/** find_regset: the regset of note type `type` (NT_386_IOPERM is left out), or null. */
function find_regset(k: Kernel, type: number): Regset | null {
  switch (type) {
    case NT_PRSTATUS:
      return { type, n: USER_REGS.length, size: 8 };
    case NT_PRFPREG:
      return { type, n: USER_I387_SIZE / 8, size: 8 };
    case NT_X86_XSTATE:
      return { type, n: xstate_user_size(k) / 8, size: 8 };
    case NT_X86_SHSTK:
      return { type, n: 1, size: 8 };
    default:
      return null;
  }
}

/**
 * The FXSAVE image (xfpregs_get, XSTATE_COPY_FX) or, with `xstate`, the standard-format XSAVE
 * buffer (xstateregs_get, XSTATE_COPY_XSAVE: the software bytes xstate_fx_sw_bytes, the header
 * with XSTATE_BV of the components not in their init state, PKRU written from the tracee's
 * thread.pkru whatever XSTATE_BV says). x87 and SSE are in their init state in the model.
 */
function fpregs_image(k: Kernel, child: Task, xstate: boolean): Uint8Array {
  const size = xstate ? xstate_user_size(k) : USER_I387_SIZE;
  const b = new Uint8Array(size);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, FCW_INIT, true);
  dv.setUint32(MXCSR, MXCSR_INIT, true);
  dv.setUint32(MXCSR_MASK, MXCSR_MASK_VALUE, true);
  if (!xstate) return b;
  const xfeatures = user_xfeatures(k);
  dv.setUint32(SW_MAGIC1, FP_XSTATE_MAGIC1, true);
  dv.setUint32(SW_MAGIC1 + 4, size + FP_XSTATE_MAGIC2_SIZE, true);
  dv.setBigUint64(SW_MAGIC1 + 8, xfeatures, true);
  dv.setUint32(SW_MAGIC1 + 16, size, true);
  if (xfeatures & BigInt(XFEATURE_MASK_PKRU)) {
    // XINUSE[PKRU]: PKRU differs from its init value 0.
    if (child.pkru !== 0) dv.setBigUint64(XSAVE_XSTATE_BV, BigInt(XFEATURE_MASK_PKRU), true);
    dv.setUint32(XSAVE_PKRU_OFFSET, child.pkru >>> 0, true);
  }
  return b;
}

/**
 * xstateregs_set (arch/x86/kernel/fpu/regset.c, copy_uabi_to_xstate): the whole buffer or
 * -EFAULT; validate_user_xstate_header: XSTATE_BV outside the user features, a non-zero
 * XCOMP_BV (the compacted form) or reserved header bytes are -EINVAL; with SSE in XSTATE_BV,
 * MXCSR's reserved bits are -EINVAL. Then the tracee's PKRU is the buffer's if XSTATE_BV has
 * PKRU, else 0 (its init value).
 */
function xstateregs_set(k: Kernel, child: Task, b: Uint8Array): number {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const bv = dv.getBigUint64(XSAVE_XSTATE_BV, true);
  if (bv & ~user_xfeatures(k)) return -EINVAL;
  if (dv.getBigUint64(XSAVE_XCOMP_BV, true) !== 0n) return -EINVAL;
  for (let i = XSAVE_HDR_RESERVED; i < XSAVE_HDR_RESERVED + 48; i++) if (b[i] !== 0) return -EINVAL;
  if (bv & BigInt(XFEATURE_MASK_SSE) && (dv.getUint32(MXCSR, true) & ~MXCSR_MASK_VALUE) !== 0) return -EINVAL;
  child.pkru = bv & BigInt(XFEATURE_MASK_PKRU) ? dv.getUint32(XSAVE_PKRU_OFFSET, true) : 0;
  return 0;
}

/** ssp_active with the CPU's user shadow stacks: the tracee has its shadow stack on (else -ENODEV for ssp_get and ssp_set). */
function ssp_active(k: Kernel, child: Task): boolean {
  return k.userShstk && (child.shstkFeatures & ARCH_SHSTK_SHSTK) !== 0;
}

/**
 * ptrace_regset (kernel/ptrace.c): an unknown note type or a length that is not a multiple of
 * the regset's word is -EINVAL; the length is cut to the regset's size. GETREGSET copies the
 * regset's bytes to `base` (copy_regset_to_user: -EFAULT); SETREGSET reads them from there
 * (copy_regset_from_user: -EFAULT) and sets it: NT_PRSTATUS word by word (putreg), NT_PRFPREG
 * only whole (-EINVAL) with a valid MXCSR, NT_X86_XSTATE only whole (-EFAULT, xstateregs_set),
 * NT_X86_SHSTK (ssp_set) only whole (-EINVAL) with an 8-byte aligned user address (-EINVAL).
 * Returns the result and the length to write back to iov_len.
 */
function* ptrace_regset(k: Kernel, pc: PerCpu, t: Task, child: Task, request: number, type: number, base: bigint, iov_len: bigint): KSteps<{ ret: number; len: bigint }> {
  const rs = find_regset(k, type);
  if (!rs || iov_len % BigInt(rs.size) !== 0n) return { ret: -EINVAL, len: iov_len };
  const full = rs.n * rs.size;
  const len = iov_len < BigInt(full) ? Number(iov_len) : full;
  if (request === PTRACE_GETREGSET) {
    let image: Uint8Array;
    if (type === NT_PRSTATUS) image = genregs_get(child);
    else if (type === NT_PRFPREG || type === NT_X86_XSTATE) image = fpregs_image(k, child, type === NT_X86_XSTATE);
    else {
      if (!ssp_active(k, child)) return { ret: -ENODEV, len: BigInt(len) };
      image = new Uint8Array(8);
      putU64(image, 0, BigInt(child.ssp));
    }
    const ok = yield* copy_to_user(k, pc, t, base, image.subarray(0, len));
    return { ret: ok ? 0 : -EFAULT, len: BigInt(len) };
  }
  // copy_regset_from_user: access_ok of the whole range, then the regset's set.
  if (type === NT_X86_SHSTK && !ssp_active(k, child)) return { ret: -ENODEV, len: BigInt(len) };
  if ((type === NT_PRFPREG || type === NT_X86_SHSTK) && len !== full) return { ret: -EINVAL, len: BigInt(len) };
  if (type === NT_X86_XSTATE && len !== full) return { ret: -EFAULT, len: BigInt(len) };
  const b = yield* copy_from_user(k, pc, t, base, len);
  if (!b) return { ret: -EFAULT, len: BigInt(len) };
  let ret: number;
  if (type === NT_PRSTATUS) ret = genregs_set(k, child, b, 0, len);
  else if (type === NT_PRFPREG) ret = (new DataView(b.buffer, b.byteOffset).getUint32(MXCSR, true) & ~MXCSR_MASK_VALUE) !== 0 ? -EINVAL : 0;
  else if (type === NT_X86_XSTATE) ret = xstateregs_set(k, child, b);
  else {
    // ssp_set: "Some kernel instructions (IRET, etc) can cause exceptions in the case of disallowed CET register values."
    const ssp = getU64(b, 0);
    if (ssp >= task_size_max(k) || ssp % 8n !== 0n) ret = -EINVAL;
    else {
      child.ssp = Number(ssp);
      ret = 0;
    }
  }
  return { ret, len: BigInt(len) };
}

/**
 * PTRACE_ARCH_PRCTL: do_arch_prctl_64 (arch/x86/kernel/process_64.c) and shstk_prctl
 * (arch/x86/kernel/shstk.c) for a task that is not current, in 6.12's order: ARCH_SET_FS and
 * ARCH_SET_GS (-EPERM at or above TASK_SIZE_MAX) zero the selector and set the thread's base;
 * ARCH_GET_FS and ARCH_GET_GS store the base at `arg2` in the tracer (-EFAULT); ARCH_SHSTK_STATUS
 * stores the features there; ARCH_SHSTK_LOCK adds to the locked features; ARCH_SHSTK_UNLOCK
 * removes from them ("Only allow via ptrace", CONFIG_CHECKPOINT_RESTORE); the other shadow-stack
 * options and everything else are -EINVAL (do_arch_prctl_common is not consulted).
 */
function ptrace_arch_prctl(k: Kernel, pc: PerCpu, t: Task, child: Task, option: number, arg2: bigint): number | KPath {
  switch (option) {
    case ARCH_SET_FS:
    case ARCH_SET_GS:
      return arch_set_base(k, null, child, option === ARCH_SET_FS ? SREG_FS : SREG_GS, arg2);
    case ARCH_GET_FS:
    case ARCH_GET_GS:
      return put_user_u64(k, pc, t, arg2, option === ARCH_GET_FS ? child.fsbase : child.gsbase);
    case ARCH_SHSTK_STATUS:
      return put_user_u64(k, pc, t, arg2, BigInt(child.shstkFeatures));
    case ARCH_SHSTK_LOCK:
      child.shstkLocked |= arg2;
      return 0;
    case ARCH_SHSTK_UNLOCK:
      child.shstkLocked &= ~arg2;
      return 0;
    case ARCH_SHSTK_ENABLE:
    case ARCH_SHSTK_DISABLE:
      return -EINVAL;
    default:
      return -EINVAL;
  }
}
