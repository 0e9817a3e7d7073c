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

/** A value: a number, a bigint, a variable (`'$buf'`), a function's address (`'@handler'`), either plus an offset (`'$buf+0x10'`). */
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
  /**
   * A Meltdown probe: a transient 8-byte load at `addr` whose fault is suppressed (as in a
   * TSX transaction). `into` gets the bytes the load returned transiently, or -1 when the
   * translation gave nothing (not mapped, or no meltdown bug). No exception, no TLB fill.
   */
  | { op: 'transient_load'; addr: Value; into?: string }
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

/** A compiled value: constant, variable or function address, plus an offset. */
export interface CValue {
  /** 0 constant, 1 variable, 2 function address, 3 string address, 4 a register ($rsp). */
  kind: 0 | 1 | 2 | 3 | 4;
  constant: bigint;
  name: string;
  add: bigint;
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
        case 'longjmp':
        case 'return':
        case 'rdpkru':
        case 'rdssp':
        case 'rdfsbase':
        case 'rdgsbase':
          f.addrs[i] = null;
          f.values[i] = null;
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
        default:
          throw new ArgumentError('program', `${this.where(f, i)}: unknown operation ${JSON.stringify((op as { op: unknown }).op)}; expected load, store, fetch, syscall, set, work, longjmp, return, call, wrpkru, rdpkru, wrss, rdssp, transient_load, mov_sreg, read_sreg, lar, lsl, verr, verw, rdfsbase, rdgsbase, wrfsbase or wrgsbase`);
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
      if (!m) throw new ArgumentError('program', `${this.where(f, i, field, j)}: ${JSON.stringify(v)} is not a value; expected a number, '$var', '@function', '&string' or one of them with '+offset'`);
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
}
