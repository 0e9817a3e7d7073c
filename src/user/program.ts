/**
 * User programs: what a simulated thread executes. A program is a `main` list of operations
 * plus named functions (signal handlers, thread bodies). Operations are the model's
 * instructions: a load, a store, an instruction fetch, a syscall, setting a variable, and the
 * two ways out of a signal handler (returning, or longjmp past the interrupted operation).
 *
 * `ProgramImage` lays a program out as the text of an executable: every operation takes
 * OP_BYTES bytes at an address in the text segment, so executing it is an instruction fetch
 * there, with the access rights, TLB and faults that implies. Variables are the thread's
 * registers: copied by fork and clone, reset by execve.
 */
import { ArgumentError } from '../errors.js';
import { opaqueTree } from '../track.js';
import { compileRtExpr, DIVIDE_ERROR, parseRtExpr, rtRefs, RtExprError, type RtEval } from './rtexpr.js';

/**
 * A value: a number, a bigint, a variable (`'$buf'`), a function's address (`'@handler'`), either
 * plus an offset (`'$buf+0x10'`), or an expression over several of them in C's operators,
 * evaluated on uint64_t when the operation runs (`'$pkru | 3 << 2*$k'`; see rtexpr.ts).
 */
export type Value = number | bigint | string;
// Strings: `'&name'` is the address of the program's string `name` (see Program.strings).

export type Op =
  /** Loads `size` bytes (default 8) little-endian from `addr`; the value goes to `into`. */
  | { op: 'load'; addr: Value; size?: 1 | 2 | 4 | 8; into?: string }
  /** Stores the low `size` bytes (default 8) of `value` at `addr`. */
  | { op: 'store'; addr: Value; value: Value; size?: 1 | 2 | 4 | 8 }
  /** Calls the code at `addr` and returns at once: an instruction fetch there. */
  | { op: 'fetch'; addr: Value }
  /**
   * Makes a syscall by name or number with up to six arguments; the return value (or -errno)
   * goes to `into`. For fork, vfork and clone, `child` is what the child runs: it ends with
   * exit_group(0) (exit(0) for a thread that does not lead its group) when it falls off the end. `cpu` places
   * the child on that CPU (as the scheduler might, or affinity would) instead of the least
   * loaded one.
   */
  | { op: 'syscall'; name: string | number; args?: Value[]; into?: string; child?: Op[]; cpu?: number }
  /**
   * INT 0x80: a 32-bit syscall by ia32 name or number (EAX; a number is truncated to 32 bits)
   * with up to six arguments (EBX, ECX, EDX, ESI, EDI, EBP: each truncated to 32 bits); the
   * return value (or -errno, sign-extended) goes to `into`.
   */
  | { op: 'int80'; name: string | number; args?: Value[]; into?: string }
  /** Sets a variable. */
  | { op: 'set'; var: string; value: Value }
  /** In a signal handler: siglongjmp to just after the interrupted operation, restoring the signal mask saved in the frame. */
  | { op: 'longjmp' }
  /** Returns from a function (RET): in a signal handler, to the frame's return address (sa_restorer). */
  | { op: 'return' }
  /** CALL: pushes the return address (and, with the shadow stack on, pushes it there too) and runs the function at `addr`. */
  | { op: 'call'; addr: Value }
  /**
   * `count` instructions of user work that touch no memory but their own text (register
   * arithmetic), executed as one operation: what a workload does between its syscalls and
   * accesses. Its record's value is `count`.
   */
  | { op: 'work'; count: number }
  /** WRPKRU: PKRU = `value`. No syscall, no flush: the next access obeys it. */
  | { op: 'wrpkru'; value: Value }
  /** RDPKRU: PKRU goes to `into`. */
  | { op: 'rdpkru'; into?: string }
  /** WRSSQ: an 8-byte shadow-stack write of `value` at `addr` (needs ARCH_SHSTK_WRSS). */
  | { op: 'wrss'; addr: Value; value: Value }
  /** RDSSPQ: the shadow-stack pointer goes to `into`; a no-op with the shadow stack off. */
  | { op: 'rdssp'; into?: string }
  /** INCSSPQ: pops `count` & 0xff 8-byte entries off the shadow stack, reading the first and the last. */
  | { op: 'incssp'; count: Value }
  /** RSTORSSP: switches SSP to `addr`, which must hold a restore token for it; the token becomes a previous-ssp token. */
  | { op: 'rstorssp'; addr: Value }
  /** SAVEPREVSSP: pops the previous-ssp token at SSP and pushes a restore token for that SSP on the previous shadow stack. */
  | { op: 'saveprevssp' }
  /** CPUID with EAX = `leaf` and ECX = `subleaf` (default 0): EAX, EBX, ECX, EDX go to `into`_eax, `into`_ebx, `into`_ecx, `into`_edx. */
  | { op: 'cpuid'; leaf: Value; subleaf?: Value; into?: string }
  /** XGETBV with ECX = `xcr`: EDX:EAX, as one 64-bit value, goes to `into`. */
  | { op: 'xgetbv'; xcr: Value; into?: string }
  /** XSAVE, XSAVEC or XRSTOR of the area at `addr` (64-byte aligned) for the components in `mask` (EDX:EAX) AND XCR0. */
  | { op: 'xsave' | 'xsavec' | 'xrstor'; addr: Value; mask: Value }
  /**
   * A Meltdown probe: a transient 8-byte load at `addr` whose fault is suppressed (as in a
   * TSX transaction). `into` gets the bytes the load returned transiently, or -1 when the
   * translation gave nothing (not mapped, or no meltdown bug). No exception, no TLB fill.
   */
  | { op: 'transient_load'; addr: Value; into?: string }
  /**
   * The head of a bounded loop (`until` inverts the condition): while `cond` is not 0 and fewer
   * than `max` iterations ran, counts one more in variable `counter` and goes on to the next
   * operation; else records the number of iterations that ran (`max + 1` when the condition
   * still held: the loop gave up) and jumps to operation `end`. `counter` is set to 0 before.
   */
  | { op: 'while'; cond: Value; until?: boolean; counter: string; max: number; end: number }
  /** JMP: goes on at operation `to` of the same function. */
  | { op: 'jump'; to: number }
  /**
   * Far JMP or CALL (`ljmp`, `lcall`) through code-segment selector `sel` to `addr`, with the
   * operand size of the current mode (64-bit: RIP and CS pushed in 8 bytes each; compatibility
   * mode: 4) or `size` (4 in 64-bit mode: the m16:32 form, offset truncated); a CS with L=0 (0x23, a 32-bit LDT code segment) runs what follows in
   * compatibility mode.
   */
  | { op: 'ljmp' | 'lcall'; sel: Value; addr: Value; size?: 4 | 8 }
  /** Far RET: pops the ip and CS (8 bytes each in 64-bit mode, 4 in compatibility mode, or `size`). */
  | { op: 'lret'; size?: 4 | 8 }
  /** MOV Sreg, r16: loads selector `value` into DS, ES, FS, GS or SS, with the processor's checks (#GP, #NP, #SS). */
  | { op: 'mov_sreg'; sreg: 'ds' | 'es' | 'fs' | 'gs' | 'ss'; value: Value }
  /** MOV r16, Sreg: the selector of CS, SS, DS, ES, FS or GS goes to `into`. */
  | { op: 'read_sreg'; sreg: 'cs' | 'ss' | 'ds' | 'es' | 'fs' | 'gs'; into?: string }
  /**
   * LAR, LSL, VERR, VERW of selector `value`: LAR's access rights or LSL's limit when ZF=1 and
   * -1 when ZF=0 (the destination unchanged); VERR's and VERW's ZF (1 or 0). To `into`.
   */
  | { op: 'lar' | 'lsl' | 'verr' | 'verw'; value: Value; into?: string }
  /** RDFSBASE, RDGSBASE: the FS or GS base goes to `into` (#UD without CR4.FSGSBASE). */
  | { op: 'rdfsbase' | 'rdgsbase'; into?: string }
  /** WRFSBASE, WRGSBASE: the FS or GS base = `value` (#UD without CR4.FSGSBASE, #GP if not canonical). */
  | { op: 'wrfsbase' | 'wrgsbase'; value: Value };

/** The segment registers MOV Sreg may load (MOV to CS is #UD; the model has no far jumps). */
export const MOV_SREGS = Object.freeze(['ds', 'es', 'fs', 'gs', 'ss'] as const);
/** The segment registers MOV r16, Sreg may read. */
export const SREG_NAMES = Object.freeze(['cs', 'ss', 'ds', 'es', 'fs', 'gs'] as const);

/** Register names a value can read as `$name`: `$rsp`, the stack pointer. */
export const REGISTER_NAMES: readonly string[] = ['rsp'];

/**
 * Variables the kernel sets when it starts a signal handler (kernel/signal.ts setup_rt_frame,
 * after x64_setup_rt_frame): `frame` the struct rt_sigframe at the handler's entry rsp,
 * `siginfo` (RSI, &frame->info) and `ucontext` (RDX, &frame->uc), and the siginfo's fields
 * `signo` (RDI), `si_code`, `si_addr` and `si_pkey` (0 unless SEGV_PKUERR).
 */
export const HANDLER_NAMES: readonly string[] = Object.freeze(['signo', 'si_code', 'si_addr', 'si_pkey', 'frame', 'siginfo', 'ucontext']);

/**
 * A thread variable named after a 64-bit general register (rax rbx rcx rdx rsi rdi rbp r8..r15)
 * is that register, as the signal frame's sigcontext (kernel/signal.ts SC_GPRS) and ptrace's
 * user_regs_struct (kernel/ptrace_64.ts USER_REGS) hold it. A signal handler starts with rdi
 * (the signal), rsi (&frame->info), rdx (&frame->uc) and rax (0) set, so it may read these
 * without defining them.
 */
export const HANDLER_REGISTERS: readonly string[] = Object.freeze(['rdi', 'rsi', 'rdx', 'rax']);

export interface Program {
  main: Op[];
  /** Named functions: signal handlers and thread bodies. Each returns through its stack. */
  functions?: Record<string, Op[]>;
  /** NUL-terminated strings in the image's read-only data, addressed as `'&name'` (e.g. an execve path). */
  strings?: Record<string, string>;
}

/** Bytes each operation occupies in the text segment. */
export const OP_BYTES = 16;
/** Where text starts (the classic non-PIE ELF base). */
export const TEXT_BASE = 0x400000;

/** How a function's end behaves. */
export const enum FnEnd {
  /**
   * main and fork/vfork/clone children: the task exits, with exit_group(0) if it leads its
   * thread group and exit(0) if it is a thread (the kernel decides, by the task).
   */
  Exit,
  /** A named function: return through the address at the stack pointer. */
  Return,
}

/** A compiled value: constant, variable or function address, plus an offset; or an expression. */
export interface CValue {
  /** 0 constant, 1 variable, 2 function address, 3 string address, 4 a register ($rsp), 5 an expression (`ev`). */
  kind: 0 | 1 | 2 | 3 | 4 | 5;
  constant: bigint;
  name: string;
  add: bigint;
  /** Kind 5: the expression, compiled. */
  ev?: RtEval;
}

export interface CFunction {
  name: string;
  base: number;
  ops: Op[];
  args: CValue[][];
  addrs: (CValue | null)[];
  values: (CValue | null)[];
  end: FnEnd;
  /**
   * A syscall operation's six argument registers when every argument is a constant, computed
   * once here (frozen; part of the read-only program), else null: the interpreter then
   * evaluates them at each execution.
   */
  constArgs: (readonly bigint[] | null)[];
}

/** The operands of an operation that has none (shared: compiled operands are read-only). */
const NO_VALUES: CValue[] = Object.freeze([]) as unknown as CValue[];
/** The six argument registers of a syscall without arguments. */
const ZERO_ARGS: readonly bigint[] = Object.freeze([0n, 0n, 0n, 0n, 0n, 0n]);

/** A program laid out at TEXT_BASE: functions by address, and the runtime stubs. */
export class ProgramImage {
  readonly functions: CFunction[] = [];
  readonly byName = new Map<string, CFunction>();
  /** Address of __restore_rt (rt_sigreturn), the sa_restorer the libc wrapper installs. */
  readonly restorer: number;
  /** End of text (page-aligned): read-only data starts here. */
  readonly textEnd: number;
  /** The read-only data: the strings, NUL-terminated, in order. */
  readonly rodata: Uint8Array;
  /** Address of each string. */
  readonly stringAddr = new Map<string, number>();

  /** Validates and lays out `program`; throws ArgumentError naming the bad operation. */
  constructor(readonly name: string, program: Program) {
    if (!program || !Array.isArray(program.main)) throw new ArgumentError('program', `${name}: expected { main: [operations], functions?: {...} }`);
    let at = TEXT_BASE;
    const add = (fname: string, ops: Op[], end: FnEnd): CFunction => {
      if (!Array.isArray(ops)) throw new ArgumentError('program', `${name}: ${fname} is not a list of operations`);
      const f: CFunction = { name: fname, base: at, ops, args: [], addrs: [], values: [], end, constArgs: [] };
      at += (ops.length + 1) * OP_BYTES;
      this.functions.push(f);
      this.byName.set(fname, f);
      ops.forEach((op, i) => {
        if (op && op.op === 'syscall' && op.child !== undefined) add(`${fname}.${i}.child`, op.child, FnEnd.Exit);
      });
      return f;
    };
    add('main', program.main, FnEnd.Exit);
    for (const [fname, ops] of Object.entries(program.functions ?? {})) add(fname, ops, FnEnd.Return);
    add('__restore_rt', [{ op: 'syscall', name: 'rt_sigreturn' }], FnEnd.Return);
    this.restorer = this.byName.get('__restore_rt')!.base;
    this.textEnd = Math.ceil(at / 4096) * 4096;
    const bytes: number[] = [];
    for (const [sname, text] of Object.entries(program.strings ?? {})) {
      if (typeof text !== 'string') throw new ArgumentError('program', `${name}: strings.${sname} is not a string`);
      this.stringAddr.set(sname, this.textEnd + bytes.length);
      for (const b of Buffer.from(text, 'utf8')) bytes.push(b);
      bytes.push(0);
    }
    this.rodata = Uint8Array.from(bytes);
    for (const f of this.functions) this.compile(f);
    opaqueTree(this);
  }

  /** The function whose text contains `pc`, or undefined. */
  functionAt(pc: number): CFunction | undefined {
    // Functions are laid out in push order, so their bases ascend: the last one at or below pc.
    const fs = this.functions;
    let lo = 0;
    let hi = fs.length - 1;
    if (hi < 0 || pc < fs[0].base) return undefined;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (fs[mid].base <= pc) lo = mid;
      else hi = mid - 1;
    }
    const f = fs[lo];
    return pc < f.base + (f.ops.length + 1) * OP_BYTES ? f : undefined;
  }

  private compile(f: CFunction): void {
    f.ops.forEach((op, i) => {
      if (!op || typeof op !== 'object') throw new ArgumentError('program', `${this.where(f, i)}: expected an operation object`);
      switch (op.op) {
        case 'load':
        case 'store':
        case 'fetch': {
          f.addrs[i] = this.value(op.addr, f, i, '.addr');
          f.values[i] = op.op === 'store' ? this.value(op.value, f, i, '.value') : null;
          const size = op.op === 'fetch' ? 1 : op.size ?? 8;
          if (![1, 2, 4, 8].includes(size)) throw new ArgumentError('program', `${this.where(f, i)}.size: expected 1, 2, 4 or 8, got ${String(size)}`);
          f.args[i] = NO_VALUES;
          break;
        }
        case 'syscall': {
          const args = op.args ?? [];
          if (!Array.isArray(args) || args.length > 6) throw new ArgumentError('program', `${this.where(f, i)}.args: expected at most six arguments`);
          f.args[i] = args.length === 0 ? NO_VALUES : args.map((a, j) => this.value(a, f, i, '.args', j));
          f.constArgs[i] = args.length === 0 ? ZERO_ARGS : f.args[i].every((v) => v.kind === 0) ? Object.freeze([0, 1, 2, 3, 4, 5].map((j) => (j < args.length ? BigInt.asUintN(64, f.args[i][j].constant) : 0n))) : null;
          if (op.cpu !== undefined && (!Number.isInteger(op.cpu) || op.cpu < 0)) throw new ArgumentError('program', `${this.where(f, i)}.cpu: expected a CPU number, got ${JSON.stringify(op.cpu)}`);
          f.addrs[i] = null;
          f.values[i] = null;
          break;
        }
        case 'int80': {
          const args = op.args ?? [];
          if (!Array.isArray(args) || args.length > 6) throw new ArgumentError('program', `${this.where(f, i)}.args: expected at most six arguments`);
          if (typeof op.name !== 'string' && (!Number.isSafeInteger(op.name) || op.name < 0)) throw new ArgumentError('program', `${this.where(f, i)}.name: expected a 32-bit syscall name or number, got ${JSON.stringify(op.name)}`);
          f.args[i] = args.length === 0 ? NO_VALUES : args.map((a, j) => this.value(a, f, i, '.args', j));
          f.addrs[i] = null;
          f.values[i] = null;
          break;
        }
        case 'set':
          if (typeof op.var !== 'string' || op.var === '') throw new ArgumentError('program', `${this.where(f, i)}.var: expected a variable name`);
          f.values[i] = this.value(op.value, f, i, '.value');
          f.addrs[i] = null;
          f.args[i] = NO_VALUES;
          break;
        case 'work':
          if (!Number.isSafeInteger(op.count) || op.count < 0) throw new ArgumentError('program', `${this.where(f, i)}.count: expected a number of instructions (an integer of 0 or more), got ${String(op.count)}`);
          f.addrs[i] = null;
          f.values[i] = null;
          f.args[i] = NO_VALUES;
          break;
        case 'lret':
          if (op.size !== undefined && op.size !== 4 && op.size !== 8) throw new ArgumentError('program', `${this.where(f, i)}.size: expected 4 or 8, got ${String(op.size)}`);
          f.addrs[i] = null;
          f.values[i] = null;
          f.args[i] = NO_VALUES;
          break;
        case 'longjmp':
        case 'return':
        case 'rdpkru':
        case 'rdssp':
        case 'saveprevssp':
        case 'rdfsbase':
        case 'rdgsbase':
          f.addrs[i] = null;
          f.values[i] = null;
          f.args[i] = NO_VALUES;
          break;
        case 'ljmp':
        case 'lcall':
          if (op.size !== undefined && op.size !== 4 && op.size !== 8) throw new ArgumentError('program', `${this.where(f, i)}.size: expected 4 or 8, got ${String(op.size)}`);
          f.addrs[i] = this.value(op.addr, f, i, '.addr');
          f.values[i] = this.value(op.sel, f, i, '.sel');
          f.args[i] = NO_VALUES;
          break;
        case 'call':
        case 'transient_load':
          f.addrs[i] = this.value(op.addr, f, i, '.addr');
          f.values[i] = null;
          f.args[i] = NO_VALUES;
          break;
        case 'wrpkru':
        case 'wrfsbase':
        case 'wrgsbase':
        case 'lar':
        case 'lsl':
        case 'verr':
        case 'verw':
          f.addrs[i] = null;
          f.values[i] = this.value(op.value, f, i, '.value');
          f.args[i] = NO_VALUES;
          break;
        case 'mov_sreg':
        case 'read_sreg': {
          const allowed = op.op === 'mov_sreg' ? MOV_SREGS : SREG_NAMES;
          if (!(allowed as readonly string[]).includes(op.sreg)) throw new ArgumentError('program', `${this.where(f, i)}.sreg: expected ${allowed.join(', ')}, got ${JSON.stringify(op.sreg)}`);
          f.addrs[i] = null;
          f.values[i] = op.op === 'mov_sreg' ? this.value(op.value, f, i, '.value') : null;
          f.args[i] = NO_VALUES;
          break;
        }
        case 'wrss':
          f.addrs[i] = this.value(op.addr, f, i, '.addr');
          f.values[i] = this.value(op.value, f, i, '.value');
          f.args[i] = NO_VALUES;
          break;
        case 'while':
        case 'jump': {
          const to = op.op === 'while' ? op.end : op.to;
          if (!Number.isInteger(to) || to < 0 || to > f.ops.length) throw new ArgumentError('program', `${this.where(f, i)}.${op.op === 'while' ? 'end' : 'to'}: expected an operation index from 0 to ${f.ops.length}, got ${String(to)}`);
          if (op.op === 'while') {
            if (!Number.isSafeInteger(op.max) || op.max < 0) throw new ArgumentError('program', `${this.where(f, i)}.max: expected a number of iterations, got ${String(op.max)}`);
            if (typeof op.counter !== 'string' || op.counter === '') throw new ArgumentError('program', `${this.where(f, i)}.counter: expected a variable name`);
          }
          f.values[i] = op.op === 'while' ? this.value(op.cond, f, i, '.cond') : null;
          f.addrs[i] = null;
          f.args[i] = NO_VALUES;
          break;
        }
        case 'incssp':
          f.addrs[i] = null;
          f.values[i] = this.value(op.count, f, i, '.count');
          f.args[i] = NO_VALUES;
          break;
        case 'rstorssp':
          f.addrs[i] = this.value(op.addr, f, i, '.addr');
          f.values[i] = null;
          f.args[i] = NO_VALUES;
          break;
        case 'cpuid':
          f.addrs[i] = null;
          f.values[i] = this.value(op.leaf, f, i, '.leaf');
          f.args[i] = [this.value(op.subleaf ?? 0, f, i, '.subleaf')];
          break;
        case 'xgetbv':
          f.addrs[i] = null;
          f.values[i] = this.value(op.xcr, f, i, '.xcr');
          f.args[i] = NO_VALUES;
          break;
        case 'xsave':
        case 'xsavec':
        case 'xrstor':
          f.addrs[i] = this.value(op.addr, f, i, '.addr');
          f.values[i] = this.value(op.mask, f, i, '.mask');
          f.args[i] = NO_VALUES;
          break;
        default:
          throw new ArgumentError('program', `${this.where(f, i)}: unknown operation ${JSON.stringify((op as { op: unknown }).op)}; expected load, store, fetch, syscall, int80, ljmp, lcall, lret, set, work, longjmp, return, call, wrpkru, rdpkru, wrss, rdssp, incssp, rstorssp, saveprevssp, cpuid, xgetbv, xsave, xsavec, xrstor, transient_load, while, jump, mov_sreg, read_sreg, lar, lsl, verr, verw, rdfsbase, rdgsbase, wrfsbase or wrgsbase`);
      }
    });
  }

  /** Where operation `i` of `f` is, for an error message: `name: fn[i]` plus `field` (and `[j]`). */
  private where(f: CFunction, i: number, field = '', j = -1): string {
    return `${this.name}: ${f.name}[${i}]${field}${j >= 0 ? `[${j}]` : ''}`;
  }

  /**
   * Compiles operand `field` (`[j]`) of operation `i` of `f`; function names are checked now,
   * variables when used. The error message is built only when there is an error.
   */
  private value(v: Value, f: CFunction, i: number, field: string, j = -1): CValue {
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v)) throw new ArgumentError('program', `${this.where(f, i, field, j)}: ${v} is not an integer`);
      return { kind: 0, constant: BigInt(v), name: '', add: 0n };
    }
    if (typeof v === 'bigint') return { kind: 0, constant: v, name: '', add: 0n };
    if (typeof v === 'string') {
      const m = /^([$@&])([A-Za-z_][\w.]*)(?:\s*([+-])\s*(0x[0-9a-fA-F]+|\d+))?$/.exec(v);
      if (!m) return this.expression(v, f, i, field, j);
      const add = m[4] ? BigInt(m[4]) * (m[3] === '-' ? -1n : 1n) : 0n;
      if (m[1] === '@' && !this.byName.has(m[2])) throw new ArgumentError('program', `${this.where(f, i, field, j)}: no function named ${m[2]}`);
      if (m[1] === '&') {
        const at = this.stringAddr.get(m[2]);
        if (at === undefined) throw new ArgumentError('program', `${this.where(f, i, field, j)}: no string named ${m[2]}`);
        return { kind: 3, constant: BigInt(at), name: m[2], add };
      }
      if (m[1] === '$' && REGISTER_NAMES.includes(m[2])) return { kind: 4, constant: 0n, name: m[2], add };
      return { kind: m[1] === '$' ? 1 : 2, constant: 0n, name: m[2], add };
    }
    throw new ArgumentError('program', `${this.where(f, i, field, j)}: expected a number, bigint or string, got ${typeof v}`);
  }

  /**
   * A value that is not a single term plus an offset: parsed as an expression (rtexpr.ts) and
   * compiled once into a closure; functions and strings are resolved now, variables read as
   * uint64 when it runs (0 when unset, as a variable operand).
   */
  private expression(v: string, f: CFunction, i: number, field: string, j: number): CValue {
    let tree;
    try {
      tree = parseRtExpr(v);
    } catch (e) {
      if (!(e instanceof RtExprError)) throw e;
      throw new ArgumentError('program', `${this.where(f, i, field, j)}: ${JSON.stringify(v)} is not a value (column ${e.offset + 1}: ${e.message}); expected a number, '$var', '@function', '&string', or an expression of them in C's operators`);
    }
    for (const r of rtRefs(tree)) {
      const name = r.ref.slice(1);
      if (r.ref[0] === '@' && !this.byName.has(name)) throw new ArgumentError('program', `${this.where(f, i, field, j)}: no function named ${name}`);
      if (r.ref[0] === '&' && !this.stringAddr.has(name)) throw new ArgumentError('program', `${this.where(f, i, field, j)}: no string named ${name}`);
    }
    const ev = compileRtExpr(tree, (ref): RtEval => {
      const name = ref.slice(1);
      if (ref[0] === '@' || ref[0] === '&') {
        const c = BigInt(ref[0] === '@' ? this.byName.get(name)!.base : this.stringAddr.get(name)!);
        return () => c;
      }
      if (REGISTER_NAMES.includes(name)) return (_vars, sp) => BigInt(sp);
      return (vars) => BigInt.asUintN(64, vars.get(name) ?? 0n);
    });
    if (rtRefs(tree).length === 0) {
      try {
        return { kind: 0, constant: ev(new Map(), 0), name: '', add: 0n };
      } catch (e) {
        if (e !== DIVIDE_ERROR) throw e; // a constant division by 0 still raises #DE when it runs
      }
    }
    return { kind: 5, constant: 0n, name: v, add: 0n, ev };
  }
}
