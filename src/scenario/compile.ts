/**
 * From scenario data to what the System runs: one Program per process and per execve image,
 * the machine and kernel configuration, and for every compiled operation where it came from
 * and what it must give. All the checks the schema cannot make happen here, before anything
 * runs: unknown constants, undefined `$names` and functions, names used twice, CPUs the machine
 * lacks, CPU models that cannot exist, expectations that cannot apply.
 */
import { ArgumentError, ConfigError, ScenarioError, type ScenarioIssue } from '../errors.js';
import { parseSchedule } from '../explore/schedule.js';
import { syscallEntries, syscallEntry } from '../kernel/syscalls.js';
import { ia32SyscallEntries, ia32SyscallEntry } from '../kernel/syscall_32.js';
import {
  CLONE_CHILD_CLEARTID, CLONE_FILES, CLONE_FS, CLONE_PARENT_SETTID, CLONE_SIGHAND, CLONE_SYSVSEM, CLONE_THREAD, CLONE_VM, ERRNO_NAMES, FUTEX_WAIT, MAP_ANONYMOUS, MAP_PRIVATE, MAP_STACK,
  PROT_READ, PROT_WRITE, SIG_DFL, SIG_IGN, SIGKILL, SIGNAL_NAMES, SIGSTOP,
} from '../kernel/uapi.js';
import { System, type IsolabEvent, type SystemConfig } from '../system.js';
import { HANDLER_NAMES, HANDLER_REGISTERS, REGISTER_NAMES, type Op, type Program, type Value } from '../user/program.js';
import { CONSTANTS, ExprError, foldExpr, suggest, toValue, type Folded } from './expr.js';
import { EVENT_KINDS, type EventType, type FieldSpec, type FilterValue } from './events.js';
import { issueAt, pathString, type Locator, type Path } from './load.js';
import { DEFAULT_LOOP, FORKING_SYSCALLS, MAX_LOOP, OP_MODIFIERS, USER_OPS, WORD_OPS } from './schema.js';
import type { KernelOptions } from '../kernel/options.js';
import type { Scenario } from './types.js';
import { sortIssues, validateShape } from './validate.js';

/** Stack each declared thread gets (mmap'd by the main thread before it clones). */

/** An address operand as the timeline shows it: a number in hex, anything else (`$buf + 8`) as written. */
function hexText(v: unknown): string {
  return typeof v === 'number' || typeof v === 'bigint' ? `0x${BigInt.asUintN(64, BigInt(v)).toString(16)}` : String(v);
}

export const THREAD_STACK_SIZE = 0x10000;
/** clone flags for a declared thread: what pthread_create passes, less the TID and TLS pointers. */
export const THREAD_CLONE_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
/**
 * What glibc's pthread_create adds for pthread_join, given to a thread some `join` names:
 * CLONE_PARENT_SETTID puts the thread's tid in its tid word before clone returns,
 * CLONE_CHILD_CLEARTID has the exit zero it and wake a FUTEX_WAIT there. The word is the lowest
 * of the thread's stack mapping (glibc's is in the TCB).
 */
export const THREAD_TID_FLAGS = CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID;
/** The counts an answer may quote as {counts.<name>} (RunReport.counts). */
export const COUNT_NAMES = ['steps', 'syscalls', 'page_faults', 'signals', 'cr3_writes', 'tlb_flushes', 'ipis', 'tlb_misses', 'walks', 'page_copies', 'context_switches', 'stack_copies'];
const DEFAULT_MEMORY = 256 * 2 ** 20;
const DEFAULT_MAX_STEPS = 1_000_000;
/** Steps a scripted schedule may hold once expanded. */
const MAX_SCRIPT_STEPS = 1_000_000;
/**
 * Operations a scenario may hold once repeats are unrolled, over all its threads, children and
 * functions. Counted while unrolling: compilation stops at the operation that crosses it.
 */
export const MAX_OPS = 200_000;
/** The XSAVE instructions' mask (EDX:EAX) when a scenario gives none: every component XCR0 enables. */
const XSAVE_ALL = 0xffffffffffffffffn;

/** What one operation must give, folded. */
export interface OpExpectation {
  path: Path;
  /** The expectation as written, for verdicts. */
  text: string;
  value?: Folded;
  errno?: number;
  signal?: number;
  si_code?: Folded;
  si_addr?: Folded;
  si_pkey?: Folded;
  success?: boolean;
  /** A value the operation must not give, and bounds on its value (unsigned 64-bit). */
  not?: Folded;
  min?: Folded;
  max?: Folded;
  /**
   * The operation faults first (`faulted`, a signal expectation; one or more runs), then, run
   * again after the handler returned, gives `then`.
   */
  faulted?: OpExpectation;
  then?: OpExpectation;
  /** A while or until loop's own expectation: it ended within this many iterations. */
  loop?: number;
}

/** An expectation's text as written, for verdicts (nested forms in braces). */
function expectText(v: unknown): string {
  if (typeof v !== 'object' || v === null) return String(v);
  return Object.entries(v).map(([k, x]) => `${k}: ${typeof x === 'object' && x !== null ? `{ ${expectText(x)} }` : String(x)}`).join(', ');
}

/** What separates an operation's label from its note while it is compiled. */
const NOTE_MARK = '  # ';

/** A compiled operation's origin: for the timeline and the verdicts. */
export interface OpInfo {
  path: Path;
  /** The thread (scenario name) whose code this is. */
  thread: string;
  /** The operation as the timeline shows it, e.g. `store [$buf] = 2`. */
  label: string;
  /** The operation's `note`, shown after its result. */
  note?: string;
  /** True for the operations isolab adds (a declared thread's stack and clone). */
  setup: boolean;
  syscall: boolean;
  expect?: OpExpectation;
}

export interface HandlerInstall {
  signo: number;
  /** A function's name, or SIG_IGN / SIG_DFL. */
  handler: string | bigint;
  flags: number;
  mask: bigint;
}

export interface CompiledProcess {
  name: string;
  cpu?: number;
  program: Program;
  handlers: HandlerInstall[];
}

export interface EndExpectations {
  exit: { path: Path; process: string; code?: number; signal?: number; text: string }[];
  memory: { path: Path; thread: string; addr: Folded; size: 1 | 2 | 4 | 8; value?: Folded; mapped?: boolean; text: string }[];
  registers: { path: Path; thread: string; pkru?: Folded; vars: [string, Folded][]; text: string }[];
  ptes: { path: Path; thread: string; addr: Folded; want: [PteField, number][]; text: string }[];
  invariants: { path: Path; name: string }[];
  /** `expect.events` (absent: none). */
  events?: EventExpectation[];
}

/** One `expect.events` item, folded: which events count, and how many there must be. */
export interface EventExpectation {
  path: Path;
  type: EventType;
  cpu?: number;
  thread?: string;
  /** The kind's own fields, each with the value it must have and how to read it. */
  filters: { name: string; value: FilterValue; read: (e: IsolabEvent) => FilterValue }[];
  min: number;
  /** Infinity when there is no upper bound. */
  max: number;
  /** The expectation as the verdict shows it, e.g. `pte_retry events: at least 1`. */
  text: string;
  note?: string;
}

/** Keys of an `expect.events` item that are not the kind's own fields. */
const EVENT_EXPECT_KEYS = ['type', 'cpu', 'thread', 'at_least', 'exactly', 'at_most', 'note'];

/** The PTE fields a `ptes` expectation may name, in the order they are shown. */
export const PTE_FIELDS = ['present', 'rw', 'accessed', 'dirty', 'saved_dirty', 'pkey'] as const;
export type PteField = (typeof PTE_FIELDS)[number];

/** The syscall arguments a path may be written for (a string starting with `/`, placed in the program's read-only data). */
export const PATH_ARGS: Readonly<Record<string, string>> = { execve: 'filename', open: 'filename', openat: 'filename' };

export interface CompiledScenario {
  name: string;
  question?: string;
  answer?: string;
  description?: string;
  system: SystemConfig;
  policy: 'random' | 'round-robin';
  seed: number;
  maxSteps: number;
  processes: CompiledProcess[];
  images: { path: string; program: Program }[];
  /** Every compiled operation, by image, function and index. */
  ops: OpTable<OpInfo>;
  /** The scenario name of the child each fork, vfork or clone operation creates. */
  children: OpTable<string>;
  /** Thread names, with the kind of task each is. */
  threads: Map<string, 'process' | 'thread' | 'child'>;
  end: EndExpectations;
  /** The sides of its debate (`sides`), in file order; empty when it declares none. */
  sides: CompiledSide[];
  /** Its params as compiled (defaults, then the overrides given). */
  params: Record<string, number>;
  locator?: Locator;
}

/** One side of a debate: kernel options over the scenario's, and a cost profile. */
export interface CompiledSide {
  name: string;
  description?: string;
  kernel: Partial<KernelOptions>;
  profile?: string;
  /** Where it is in the file (for messages about it). */
  path: Path;
}

/**
 * Values per compiled operation, found by image name, function name and index: one array per
 * function, so a scenario of 200,000 operations makes a few hundred keys, not 200,000.
 */
export class OpTable<T> {
  private readonly fns = new Map<string, T[]>();

  get(image: string, fn: string, index: number): T | undefined {
    return this.fns.get(`${image}\u0000${fn}`)?.[index];
  }

  set(image: string, fn: string, index: number, value: T): void {
    const key = `${image}\u0000${fn}`;
    let list = this.fns.get(key);
    if (!list) this.fns.set(key, (list = []));
    list[index] = value;
  }

  /** Every value, function by function, in index order. */
  *values(): IterableIterator<T> {
    for (const list of this.fns.values()) for (const v of list) if (v !== undefined) yield v;
  }
}

/** A schedule.steps item as parseSchedule reads it; spaces around `*` ('0 * 5') are allowed in a scenario file. */
function scheduleText(item: number | string): string {
  return typeof item === 'number' ? String(item) : item.replace(/\s*\*\s*/g, '*');
}

/**
 * A schedule item's ArgumentError as a scenario issue: without the argument name, and without
 * parseSchedule's "item 1" when the item holds one token (its path already says which).
 */
function scheduleMessage(e: ArgumentError, item: number | string): string {
  const message = e.message.startsWith(`${e.argument}: `) ? e.message.slice(e.argument.length + 2) : e.message;
  return typeof item === 'number' || !item.includes(',') ? message.replace(/^item 1 \(("[^"]*")\): /, '$1: ') : message;
}

/** Parses "64 MiB" or a byte count. */
export function parseMemory(v: number | string): number {
  if (typeof v === 'number') return v;
  const m = /^\s*(\d+)\s*(KiB|MiB|GiB)\s*$/.exec(v)!;
  return Number(m[1]) * (m[2] === 'KiB' ? 1024 : m[2] === 'MiB' ? 2 ** 20 : 2 ** 30);
}

const SIGNAL_BY_NAME = new Map(Object.entries(SIGNAL_NAMES).map(([n, name]) => [name, Number(n)]));
const ERRNO_BY_NAME = new Map(Object.entries(ERRNO_NAMES).map(([n, name]) => [name, Number(n)]));

/** Per-function compile state. */
interface FnCtx {
  image: string;
  fn: string;
  thread: string;
  /** Names defined so far on this path (for `$name` checks). */
  defined: Set<string>;
  /** False for functions (handlers): their names are not the thread's own. */
  own?: boolean;
  /** True in a function (a signal handler): HANDLER_NAMES may be read. */
  handler?: boolean;
  proc: ProcCtx;
  out: Op[];
}

/** Per-image compile state. */
interface ProcCtx {
  functions: Set<string>;
  /** The threads the process declares (`join` targets). */
  threads: Set<string>;
  /** The names `join` operations anywhere in the image name: those threads get a tid word. */
  joined: Set<string>;
  /** Every name the image defines anywhere (handlers may use any of them). */
  allNames: Set<string>;
  strings: Record<string, string>;
}

/**
 * Validates and compiles scenario data. `data` is what a YAML file parsed to, or a Scenario
 * object. Throws ScenarioError with every issue found, located through `locator`.
 */
export function compileScenario(data: unknown, locator?: Locator, defaultName = 'scenario', params: Record<string, number> = {}): CompiledScenario {
  const shape = validateShape(data, locator);
  if (shape.length > 0) throw new ScenarioError(shape);
  const declared = (data as Scenario).params ?? {};
  for (const name of Object.keys(params)) {
    if (!(name in declared)) {
      const known = Object.keys(declared);
      throw new ArgumentError('--param', `${name}: the scenario has ${known.length === 0 ? 'no params (declare them in a params: block)' : `no param ${name}; its params: ${known.join(', ')}${suggest(name, known)}`}`);
    }
    if (!Number.isSafeInteger(params[name])) throw new ArgumentError('--param', `${name}: expected an integer, got ${String(params[name])}`);
  }
  return new Compiler(data as Scenario, locator, params).compile(defaultName);
}

class Compiler {
  private readonly issues: ScenarioIssue[] = [];
  private readonly ops = new OpTable<OpInfo>();
  private readonly children = new OpTable<string>();
  private readonly threads = new Map<string, 'process' | 'thread' | 'child'>();
  /** Where each thread name was declared (for duplicate reports). */
  private readonly threadPaths = new Map<string, Path>();
  /** Names each thread defines (for end expectations). */
  private readonly threadNames = new Map<string, Set<string>>();
  private cpus = 1;
  private childCount = 0;
  /** Operations compiled so far (MAX_OPS bounds it); set to Infinity once the limit has been reported. */
  private opCount = 0;
  /** The repeats being unrolled, innermost last: where the operation limit is reported. */
  private readonly repeats: Path[] = [];

  /** The names a value may use besides the constants: the params, and the indices of the repeats being unrolled. */
  private readonly names = new Map<string, bigint>();
  /** The params as this compile sets them (defaults, then the overrides). */
  private readonly params: Record<string, number> = {};

  constructor(private readonly s: Scenario, private readonly loc: Locator | undefined, private readonly overrides: Record<string, number> = {}) {}

  /** Takes in the params: their defaults, then the overrides; a param that shadows a constant is refused. */
  private compileParams(): void {
    for (const [name, v] of Object.entries(this.s.params ?? {})) {
      if (CONSTANTS.has(name)) {
        this.issue(['params', name], `${name} is a constant (docs/scenario-format.md, Constants); give the param another name`, { key: true });
        continue;
      }
      const value = this.overrides[name] ?? v;
      this.params[name] = value;
      this.names.set(name, BigInt(value));
    }
  }

  private issue(path: Path, message: string, opts?: { key?: boolean; offset?: number }): void {
    this.issues.push(issueAt(this.loc, path, message, opts));
  }

  compile(defaultName: string): CompiledScenario {
    const s = this.s;
    this.compileParams();
    this.cpus = s.machine?.cpus ?? 1;
    const system: SystemConfig = {
      cpus: this.cpus,
      memory: s.machine?.memory !== undefined ? parseMemory(s.machine.memory) : DEFAULT_MEMORY,
      cpu: s.machine?.cpu as SystemConfig['cpu'],
      kernel: s.kernel,
    };
    const script = this.script(s.schedule?.steps);
    if (script) system.script = script;
    this.trialBoot(system);

    const processes: CompiledProcess[] = [];
    s.processes.forEach((p, i) => {
      const path: Path = ['processes', i];
      this.declareThread(p.name, [...path, 'name'], 'process');
      for (const [j, t] of (p.threads ?? []).entries()) this.declareThread(t.name, [...path, 'threads', j, 'name'], 'thread');
      processes.push(this.compileProcess(p, path));
    });
    const images = Object.entries(s.programs ?? {}).map(([imgPath, prog]) => {
      const ctx = this.procCtx([prog.ops, ...Object.values(prog.functions ?? {})], prog.functions);
      return { path: imgPath, program: this.compileProgram(imgPath, prog.ops, prog.functions, ['programs', imgPath], '', ctx, [], []) };
    });
    const end = this.compileEnd();
    const sides = this.compileSides(system);
    this.checkAnswer();
    if (this.issues.length > 0) throw new ScenarioError(sortIssues(this.issues));
    return {
      name: s.name ?? defaultName,
      question: s.question,
      answer: s.answer,
      description: s.description,
      system,
      policy: s.schedule?.policy ?? 'random',
      seed: s.schedule?.seed ?? 1,
      maxSteps: s.schedule?.max_steps ?? DEFAULT_MAX_STEPS,
      processes,
      images,
      ops: this.ops,
      children: this.children,
      threads: this.threads,
      end,
      sides,
      params: this.params,
      locator: this.loc,
    };
  }

  /** The sides of the debate, each booted once so that an option a side cannot have is reported at it. */
  private compileSides(system: SystemConfig): CompiledSide[] {
    const sides: CompiledSide[] = [];
    for (const [name, side] of Object.entries(this.s.sides ?? {})) {
      const path: Path = ['sides', name];
      const kernel = { ...(side.kernel ?? {}) };
      try {
        new System({ ...system, script: undefined, kernel: { ...(system.kernel ?? {}), ...kernel } });
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        const opt = e.option.split('.');
        this.issue(opt[0] === 'kernel' ? [...path, ...opt] : path, `side ${name}: ${e.message.slice(e.option.length + 2)}`);
      }
      sides.push({ name, description: side.description, kernel, profile: side.profile, path });
    }
    return sides;
  }

  /** Boots the configured machine once so that a configuration that cannot exist is reported at its option. */
  private trialBoot(system: SystemConfig): void {
    try {
      new System(system);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      if (e.option === 'script') {
        this.scriptIssue(system, e);
        return;
      }
      const opt = e.option.split('.');
      const path: Path = opt[0] === 'kernel' ? opt : ['machine', ...opt];
      this.issue(path, e.message.slice(e.option.length + 2));
    }
  }

  private declareThread(name: string, path: Path, kind: 'process' | 'thread' | 'child'): void {
    if (name === 'counts') {
      this.issue(path, 'the name "counts" is reserved: {counts.<name>} in the answer reads the run\'s counts');
      return;
    }
    const before = this.threadPaths.get(name);
    if (before && pathString(before) === pathString(path)) return; // the same operation, unrolled by a repeat
    if (before) {
      this.issue(path, `the name ${JSON.stringify(name)} is already used by the ${this.threads.get(name)} at ${this.where(before)}; thread and process names must be unique`);
      return;
    }
    this.threads.set(name, kind);
    this.threadPaths.set(name, path);
    this.threadNames.set(name, new Set());
  }

  private where(path: Path): string {
    const pos = this.loc?.locate(path);
    return pos ? `line ${pos.line}` : pathString(path);
  }

  private checkCpu(cpu: number | undefined, path: Path): void {
    if (cpu !== undefined && cpu >= this.cpus) this.issue(path, `CPU ${cpu} does not exist: the machine has ${this.cpus} CPU${this.cpus === 1 ? '' : 's'} (0 to ${this.cpus - 1}); raise machine.cpus or pick another CPU`);
  }

  /** The names an image defines anywhere, and its functions. */
  private procCtx(lists: unknown[][], functions: Record<string, unknown> | undefined): ProcCtx {
    const allNames = new Set<string>();
    const joined = new Set<string>();
    const scan = (list: unknown[]): void => {
      for (const op of list) {
        if (!op || typeof op !== 'object') continue;
        const o = op as Record<string, unknown>;
        if (typeof o.as === 'string') allNames.add(o.as);
        if (typeof o.join === 'string') joined.add(o.join);
        if (o.set && typeof o.set === 'object') for (const k of Object.keys(o.set)) allNames.add(k);
        for (const v of Object.values(o)) {
          if (v && typeof v === 'object' && Array.isArray((v as { ops?: unknown }).ops)) scan((v as { ops: unknown[] }).ops);
        }
      }
    };
    lists.forEach(scan);
    return { functions: new Set(Object.keys(functions ?? {})), threads: new Set(), joined, allNames, strings: {} };
  }

  private compileProcess(p: Scenario['processes'][number], path: Path): CompiledProcess {
    this.checkCpu(p.cpu, [...path, 'cpu']);
    const ctx = this.procCtx([p.ops, p.setup ?? [], ...(p.threads ?? []).map((t) => t.ops), ...Object.values(p.functions ?? {})], p.functions);
    for (const t of p.threads ?? []) ctx.threads.add(t.name);
    // Declared threads: the main thread maps a stack for each and clones it before its own first operation.
    const prologue: { op: Op; info: OpInfo; childOps?: { thread: string; ops: unknown[]; path: Path } }[] = [];
    for (const [j, t] of (p.threads ?? []).entries()) {
      const tpath: Path = [...path, 'threads', j];
      this.checkCpu(t.cpu, [...tpath, 'cpu']);
      const stackVar = `__stack_${t.name}`;
      prologue.push({
        op: { op: 'syscall', name: 'mmap', args: [0, THREAD_STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0], into: stackVar },
        info: { path: tpath, thread: p.name, label: `mmap(len=0x${THREAD_STACK_SIZE.toString(16)}, prot=PROT_READ|PROT_WRITE, flags=MAP_PRIVATE|MAP_ANONYMOUS|MAP_STACK): stack of ${t.name}`, setup: true, syscall: true },
      });
      // A thread some `join` waits for gets glibc's tid word; the others are cloned as before.
      const tidWord = ctx.joined.has(t.name);
      prologue.push({
        op: {
          op: 'syscall', name: 'clone',
          args: tidWord ? [THREAD_CLONE_FLAGS | THREAD_TID_FLAGS, `$${stackVar}+${THREAD_STACK_SIZE}`, `$${stackVar}`, `$${stackVar}`, 0] : [THREAD_CLONE_FLAGS, `$${stackVar}+${THREAD_STACK_SIZE}`],
          ...(t.cpu !== undefined ? { cpu: t.cpu } : {}),
        },
        info: { path: tpath, thread: p.name, label: `clone(CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM${tidWord ? '|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID' : ''}): thread ${t.name}`, setup: true, syscall: true },
        childOps: { thread: t.name, ops: t.ops, path: [...tpath, 'ops'] },
      });
    }
    const program = this.compileProgram(p.name, p.ops, p.functions, path, p.name, ctx, prologue, p.setup ?? []);
    const handlers: HandlerInstall[] = [];
    for (const [sigName, h] of Object.entries(p.handlers ?? {})) {
      const hpath: Path = [...path, 'handlers', sigName];
      const signo = SIGNAL_BY_NAME.get(sigName)!;
      if (signo === SIGKILL || signo === SIGSTOP) this.issue(hpath, `${sigName} cannot be caught or ignored (rt_sigaction gives EINVAL)`, { key: true });
      let handler: string | bigint;
      if (h.handler === 'SIG_IGN') handler = BigInt(SIG_IGN);
      else if (h.handler === 'SIG_DFL') handler = BigInt(SIG_DFL);
      else {
        handler = h.handler;
        if (!ctx.functions.has(h.handler)) this.issue([...hpath, 'handler'], `no function named ${JSON.stringify(h.handler)} in ${p.name}'s functions${this.known(ctx.functions)}; or use SIG_IGN or SIG_DFL`);
      }
      const flags = h.flags === undefined ? 0 : this.constant(h.flags, [...hpath, 'flags']);
      let mask = 0n;
      for (const m of h.mask ?? []) mask |= 1n << BigInt(SIGNAL_BY_NAME.get(m)! - 1);
      handlers.push({ signo, handler, flags: Number(flags), mask });
    }
    return { name: p.name, cpu: p.cpu, program, handlers };
  }

  private known(names: Iterable<string>): string {
    const list = [...names];
    return list.length ? ` (it has ${list.join(', ')})` : ' (it has none)';
  }

  /** Compiles main (`setup`, then `prologue`, then `ops`) and the functions of one image. */
  private compileProgram(
    image: string,
    ops: unknown[],
    functions: Record<string, unknown[]> | undefined,
    path: Path,
    thread: string,
    ctx: ProcCtx,
    prologue: { op: Op; info: OpInfo; childOps?: { thread: string; ops: unknown[]; path: Path } }[],
    setup: unknown[],
  ): Program {
    const mainThread = thread === '' ? image : thread;
    const main: FnCtx = { image, fn: 'main', thread: mainThread, defined: new Set(), proc: ctx, out: [] };
    this.compileList(setup, [...path, 'setup'], main);
    for (const pr of prologue) {
      const index = main.out.length;
      this.ops.set(image, 'main', index, pr.info);
      if (pr.childOps) {
        this.children.set(image, 'main', index, pr.childOps.thread);
        const childFn: FnCtx = { image, fn: `main.${index}.child`, thread: pr.childOps.thread, defined: new Set(main.defined), proc: ctx, out: [] };
        this.compileList(pr.childOps.ops, pr.childOps.path, childFn);
        (pr.op as { child?: Op[] }).child = childFn.out;
      }
      if (pr.op.op === 'syscall' && pr.op.into) main.defined.add(pr.op.into);
      main.out.push(pr.op);
    }
    this.compileList(ops, [...path, 'ops'], main);
    const fns: Record<string, Op[]> = {};
    for (const [name, list] of Object.entries(functions ?? {})) {
      if (name === 'main' || name.startsWith('__')) {
        this.issue([...path, 'functions', name], `${name} is reserved: the program's own operations are main, and names starting with __ are isolab's`, { key: true });
        continue;
      }
      const f: FnCtx = { image, fn: name, thread: mainThread, defined: new Set(ctx.allNames), proc: ctx, out: [], own: false, handler: true };
      this.compileList(list, [...path, 'functions', name], f);
      // A handler runs in the main thread: the names it defines are the main thread's too.
      for (const n of this.procCtx([list], undefined).allNames) this.threadNames.get(mainThread)?.add(n);
      fns[name] = f.out;
    }
    return { main: main.out, functions: fns, strings: ctx.strings };
  }

  private compileList(list: unknown[], path: Path, f: FnCtx): void {
    for (let i = 0; i < list.length && this.opCount <= MAX_OPS; i++) this.compileOp(list[i], [...path, i], f);
    if (f.own !== false) for (const n of f.defined) this.threadNames.get(f.thread)?.add(n);
  }

  /** Counts one more operation; false (after reporting it, once) when it crosses MAX_OPS. */
  private count(path: Path): boolean {
    if (++this.opCount <= MAX_OPS) return true;
    if (this.opCount === MAX_OPS + 1) {
      const at = this.repeats.length > 0 ? this.repeats[this.repeats.length - 1] : path;
      this.issue(at, `${this.repeats.length > 0 ? 'this repeat takes' : 'this operation takes'} the scenario past ${MAX_OPS} operations${this.repeats.length > 0 ? ' once unrolled' : ''} (all threads, children and functions together, repeats unrolled); the limit is ${MAX_OPS}`);
      this.opCount = Infinity;
    }
    return false;
  }

  /**
   * A bounded loop at the end of `f`: its iteration counter (a variable of isolab's own, one per
   * loop of the function) set to 0, the `while` head testing `cond` (inverted for `until`) with
   * the loop's expectation (it ends within `max` iterations), `body`, and the jump back; the
   * head's exit is patched to the operation after the jump.
   */
  private emitLoop(f: FnCtx, path: Path, kpath: Path, label: string, note: string, cond: Value, until: boolean, max: number, body: () => void): void {
    const counter = `__loop_${f.fn}_${f.out.length}`;
    this.emit(f, { op: 'set', var: counter, value: 0 }, { path, label: `${label}: count from 0`, syscall: false });
    const expect: OpExpectation = { path: kpath, text: `ends within ${max} iterations`, loop: max };
    const head = this.emit(f, { op: 'while', cond, ...(until ? { until: true } : {}), counter, max, end: 0 }, { path, label: `${label}${note}`, syscall: false, expect });
    body();
    this.emit(f, { op: 'jump', to: head }, { path, label: `${label}: again`, syscall: false });
    const op = f.out[head];
    if (op && op.op === 'while') op.end = f.out.length;
  }

  private emit(f: FnCtx, op: Op, info: Omit<OpInfo, 'thread' | 'setup'>): number {
    if (!this.count(info.path)) return f.out.length;
    const index = f.out.length;
    f.out.push(op);
    // A label built with its note (`...  # note`) keeps the note apart, for after the result.
    const cut = info.label.indexOf(NOTE_MARK);
    const label = cut < 0 ? info.label : info.label.slice(0, cut);
    const note = cut < 0 ? undefined : info.label.slice(cut + NOTE_MARK.length);
    this.ops.set(f.image, f.fn, index, { path: info.path, thread: f.thread, label, ...(note !== undefined ? { note } : {}), setup: false, syscall: info.syscall, expect: info.expect });
    return index;
  }

  private compileOp(spec: unknown, path: Path, f: FnCtx): void {
    if (typeof spec === 'string') {
      if ((WORD_OPS as readonly string[]).includes(spec)) this.emit(f, { op: spec as (typeof WORD_OPS)[number] }, { path, label: spec, syscall: false });
      else this.compileOp({ [spec]: null }, path, f); // a syscall with no arguments, as a bare word
      return;
    }
    const o = spec as Record<string, unknown>;
    const keys = Object.keys(o).filter((k) => !(OP_MODIFIERS as readonly string[]).includes(k));
    if (keys.length === 0) {
      this.issue(path, 'no operation here, only as/expect/note: add one operation key such as load, store or a syscall name');
      return;
    }
    if (keys.length > 1) {
      this.issue([...path, keys[1]], `one item holds two operations (${keys[0]} and ${keys[1]}): put each in its own list item`, { key: true });
      return;
    }
    const kind = keys[0];
    const arg = o[kind];
    const kpath = [...path, kind];
    const as = o.as as string | undefined;
    const note = typeof o.note === 'string' ? `${NOTE_MARK}${o.note}` : '';
    if (as !== undefined && HANDLER_NAMES.includes(as)) this.issue([...path, 'as'], this.handlerName(as));
    const noResult = (what: string): void => {
      if (as !== undefined) this.issue([...path, 'as'], `${what} has no result to name`, { key: true });
      if (o.expect !== undefined) this.issue([...path, 'expect'], `${what} has no result to expect; expectations go on loads, stores, fetches and syscalls`, { key: true });
    };
    switch (kind) {
      case 'load':
      case 'fetch': {
        const form = typeof arg === 'object' && arg !== null ? (arg as { addr: unknown; size?: 1 | 2 | 4 | 8 }) : { addr: arg };
        const apath = typeof arg === 'object' && arg !== null ? [...kpath, 'addr'] : kpath;
        const addr = this.value(form.addr, apath, f);
        if (kind === 'fetch' && as !== undefined) this.issue([...path, 'as'], 'fetch has no result to name', { key: true });
        const expect = this.expectation(o.expect, [...path, 'expect'], f, false, as, kind === 'fetch');
        const size = form.size ?? 8;
        const op: Op = kind === 'load' ? { op: 'load', addr, size, ...(as ? { into: as } : {}) } : { op: 'fetch', addr };
        this.emit(f, op, { path, label: `${kind}${kind === 'load' && size !== 8 ? ` ${size}` : ''} [${hexText(form.addr)}]${note}`, syscall: false, expect });
        if (kind === 'load' && as) f.defined.add(as);
        break;
      }
      case 'store': {
        const a = arg as { addr: unknown; value: unknown; size?: 1 | 2 | 4 | 8 };
        if (as !== undefined) this.issue([...path, 'as'], 'store has no result to name', { key: true });
        const op: Op = { op: 'store', addr: this.value(a.addr, [...kpath, 'addr'], f), value: this.value(a.value, [...kpath, 'value'], f), size: a.size ?? 8 };
        const expect = this.expectation(o.expect, [...path, 'expect'], f, false, undefined, true);
        this.emit(f, op, { path, label: `store${a.size && a.size !== 8 ? ` ${a.size}` : ''} [${hexText(a.addr)}] = ${String(a.value)}${note}`, syscall: false, expect });
        break;
      }
      case 'set': {
        noResult('set');
        for (const [name, v] of Object.entries(arg as Record<string, unknown>)) {
          if (HANDLER_NAMES.includes(name)) this.issue([...kpath, name], this.handlerName(name), { key: true });
          const value = this.value(v, [...kpath, name], f);
          this.emit(f, { op: 'set', var: name, value }, { path, label: `set ${name} = ${String(v)}${note}`, syscall: false });
          f.defined.add(name);
        }
        break;
      }
      case 'repeat': {
        noResult('repeat');
        const r = arg as { count: number | string; index?: string; ops: unknown[] };
        const count = this.constantOf(r.count, [...kpath, 'count'], 0, 100000, 'a repeat count');
        if (count === null) break;
        if (r.index !== undefined && (this.names.has(r.index) || CONSTANTS.has(r.index))) {
          this.issue([...kpath, 'index'], `${r.index} is already a ${this.names.has(r.index) ? 'param or an outer repeat\'s index' : 'constant'}; give the index another name`);
          break;
        }
        this.repeats.push(path);
        if (count === 0) {
          // Checked all the same; the copy is never part of the program, so its expectations are never reached.
          if (r.index !== undefined) this.names.set(r.index, 0n);
          this.compileList(r.ops, [...kpath, 'ops'], { ...f, fn: `${f.fn}.${f.out.length}.never`, defined: new Set(f.defined), out: [], own: false });
        }
        for (let c = 0; c < count && this.opCount <= MAX_OPS; c++) {
          if (r.index !== undefined) this.names.set(r.index, BigInt(c));
          this.compileList(r.ops, [...kpath, 'ops'], f);
        }
        if (r.index !== undefined) this.names.delete(r.index);
        this.repeats.pop();
        break;
      }
      case 'while':
      case 'until': {
        noResult(kind);
        const w = arg as { cond: unknown; max?: number | string; ops: unknown[] };
        const max = w.max === undefined ? DEFAULT_LOOP : this.constantOf(w.max, [...kpath, 'max'], 1, MAX_LOOP, "a loop's max");
        const cond = this.value(w.cond, [...kpath, 'cond'], f);
        if (max === null) break;
        this.emitLoop(f, path, kpath, `${kind} ${String(w.cond)}`, note, cond, kind === 'until', max, () => this.compileList(w.ops, [...kpath, 'ops'], f));
        break;
      }
      case 'join': {
        // pthread_join's wait: loop { t = the tid word; if t == 0 break; futex(word, FUTEX_WAIT, t) }.
        noResult('join');
        if (typeof arg !== 'string' || !f.proc.threads.has(arg)) {
          this.issue(kpath, `join needs the name of a thread of this process's threads${this.known(f.proc.threads)}`);
          break;
        }
        const word = `__stack_${arg}`;
        if (arg === f.thread || !f.defined.has(word)) {
          this.issue(kpath, `${arg} cannot be joined here: join a thread declared earlier in threads, from the main thread's ops or a later thread (not from itself or a handler)`);
          break;
        }
        const tid = `__join_${f.fn}_${f.out.length}`;
        const load: Op = { op: 'load', addr: `$${word}`, size: 4, into: tid };
        this.emit(f, load, { path, label: `join ${arg}: load the tid word`, syscall: false });
        this.emitLoop(f, path, kpath, `join ${arg}`, note, `$${tid}`, false, DEFAULT_LOOP, () => {
          this.emit(f, { op: 'syscall', name: 'futex', args: [`$${word}`, FUTEX_WAIT, `$${tid}`, 0, 0, 0] }, { path, label: `join ${arg}: futex(FUTEX_WAIT)`, syscall: true });
          this.emit(f, { ...load }, { path, label: `join ${arg}: load the tid word`, syscall: false });
        });
        break;
      }
      case 'work': {
        noResult('work');
        const n = this.constantOf(arg, kpath, 0, 1e12, 'a number of instructions');
        if (n === null) break;
        this.emit(f, { op: 'work', count: n }, { path, label: `work ${n}${note}`, syscall: false });
        break;
      }
      case 'wrfsbase':
      case 'wrgsbase': {
        if (as !== undefined) this.issue([...path, 'as'], `${kind} has no result to name`, { key: true });
        const expect = this.expectation(o.expect, [...path, 'expect'], f, false, undefined, true);
        this.emit(f, { op: kind, value: this.value(arg, kpath, f) }, { path, label: `${kind} ${String(arg)}${note}`, syscall: false, expect });
        break;
      }
      case 'ljmp':
      case 'lcall': {
        if (as !== undefined) this.issue([...path, 'as'], `${kind} has no result to name`, { key: true });
        const a = arg as { sel: unknown; addr: unknown; size?: 4 | 8 };
        const op: Op = { op: kind, sel: this.value(a.sel, [...kpath, 'sel'], f), addr: this.value(a.addr, [...kpath, 'addr'], f), ...(a.size !== undefined ? { size: a.size } : {}) };
        const expect = this.expectation(o.expect, [...path, 'expect'], f, false, undefined, true);
        this.emit(f, op, { path, label: `${kind} ${String(a.sel)}:${hexText(a.addr)}${note}`, syscall: false, expect });
        break;
      }
      case 'lret': {
        if (as !== undefined) this.issue([...path, 'as'], 'lret has no result to name', { key: true });
        const expect = this.expectation(o.expect, [...path, 'expect'], f, false, undefined, true);
        const size = arg === null || arg === undefined ? undefined : (arg as 4 | 8);
        this.emit(f, { op: 'lret', ...(size !== undefined ? { size } : {}) }, { path, label: `lret${size !== undefined ? ` ${size}` : ''}${note}`, syscall: false, expect });
        break;
      }
      case 'call':
      case 'wrpkru': {
        if (as !== undefined) this.issue([...path, 'as'], `${kind} has no result to name`, { key: true });
        const v = this.value(arg, kpath, f);
        const expect = this.expectation(o.expect, [...path, 'expect'], f, false, undefined, true);
        const op: Op = kind === 'call' ? { op: 'call', addr: v } : { op: 'wrpkru', value: v };
        this.emit(f, op, { path, label: `${kind} ${kind === 'call' ? hexText(arg) : String(arg)}${note}`, syscall: false, expect });
        break;
      }
      case 'transient_load': {
        const v = this.value(arg, kpath, f);
        const expect = this.expectation(o.expect, [...path, 'expect'], f, false, as);
        this.emit(f, { op: 'transient_load', addr: v, ...(as ? { into: as } : {}) }, { path, label: `transient_load ${hexText(arg)}${note}`, syscall: false, expect });
        if (as) f.defined.add(as);
        break;
      }
      case 'mov_sreg': {
        const a = arg as { sreg: 'ds' | 'es' | 'fs' | 'gs' | 'ss'; value: unknown };
        if (as !== undefined) this.issue([...path, 'as'], 'mov_sreg has no result to name', { key: true });
        const op: Op = { op: 'mov_sreg', sreg: a.sreg, value: this.value(a.value, [...kpath, 'value'], f) };
        const expect = this.expectation(o.expect, [...path, 'expect'], f, false, undefined, true);
        this.emit(f, op, { path, label: `mov ${a.sreg}, ${String(a.value)}${note}`, syscall: false, expect });
        break;
      }
      case 'read_sreg': {
        const sreg = arg as 'cs' | 'ss' | 'ds' | 'es' | 'fs' | 'gs';
        const expect = this.expectation(o.expect, [...path, 'expect'], f, false, as);
        this.emit(f, { op: 'read_sreg', sreg, ...(as ? { into: as } : {}) }, { path, label: `mov r16, ${sreg}${note}`, syscall: false, expect });
        if (as) f.defined.add(as);
        break;
      }
      case 'lar':
      case 'lsl':
      case 'verr':
      case 'verw': {
        const v = this.value(arg, kpath, f);
        const expect = this.expectation(o.expect, [...path, 'expect'], f, false, as);
        this.emit(f, { op: kind, value: v, ...(as ? { into: as } : {}) }, { path, label: `${kind} ${String(arg)}${note}`, syscall: false, expect });
        if (as) f.defined.add(as);
        break;
      }
      case 'rdpkru':
      case 'rdssp':
      case 'rdfsbase':
      case 'rdgsbase': {
        const expect = this.expectation(o.expect, [...path, 'expect'], f, false, as);
        this.emit(f, { op: kind, ...(as ? { into: as } : {}) }, { path, label: `${kind}${note}`, syscall: false, expect });
        if (as) f.defined.add(as);
        break;
      }
      case 'wrss': {
        const a = arg as { addr: unknown; value: unknown };
        if (as !== undefined) this.issue([...path, 'as'], 'wrss has no result to name', { key: true });
        const op: Op = { op: 'wrss', addr: this.value(a.addr, [...kpath, 'addr'], f), value: this.value(a.value, [...kpath, 'value'], f) };
        const expect = this.expectation(o.expect, [...path, 'expect'], f, false, undefined, true);
        this.emit(f, op, { path, label: `wrss [${hexText(a.addr)}] = ${String(a.value)}${note}`, syscall: false, expect });
        break;
      }
      case 'saveprevssp': {
        if (as !== undefined) this.issue([...path, 'as'], 'saveprevssp has no result to name', { key: true });
        const expect = this.expectation(o.expect, [...path, 'expect'], f, false, undefined, true);
        this.emit(f, { op: 'saveprevssp' }, { path, label: `saveprevssp${note}`, syscall: false, expect });
        break;
      }
      case 'incssp':
      case 'rstorssp': {
        if (as !== undefined) this.issue([...path, 'as'], `${kind} has no result to name`, { key: true });
        const v = this.value(arg, kpath, f);
        const expect = this.expectation(o.expect, [...path, 'expect'], f, false, undefined, true);
        const op: Op = kind === 'incssp' ? { op: 'incssp', count: v } : { op: 'rstorssp', addr: v };
        this.emit(f, op, { path, label: `${kind} ${kind === 'rstorssp' ? hexText(arg) : String(arg)}${note}`, syscall: false, expect });
        break;
      }
      case 'cpuid': {
        const form = typeof arg === 'object' && arg !== null ? (arg as { leaf: unknown; subleaf?: unknown }) : { leaf: arg };
        const cpath = typeof arg === 'object' && arg !== null ? [...kpath, 'leaf'] : kpath;
        const leaf = this.value(form.leaf, cpath, f);
        const subleaf = form.subleaf === undefined ? 0 : this.value(form.subleaf, [...kpath, 'subleaf'], f);
        const expect = this.expectation(o.expect, [...path, 'expect'], f, false, undefined, true);
        this.emit(f, { op: 'cpuid', leaf, subleaf, ...(as ? { into: as } : {}) }, { path, label: `cpuid ${String(form.leaf)}${form.subleaf === undefined ? '' : `, ${String(form.subleaf)}`}${note}`, syscall: false, expect });
        if (as) for (const reg of ['eax', 'ebx', 'ecx', 'edx']) f.defined.add(`${as}_${reg}`);
        break;
      }
      case 'xgetbv': {
        const expect = this.expectation(o.expect, [...path, 'expect'], f, false, as);
        this.emit(f, { op: 'xgetbv', xcr: this.value(arg, kpath, f), ...(as ? { into: as } : {}) }, { path, label: `xgetbv ${String(arg)}${note}`, syscall: false, expect });
        if (as) f.defined.add(as);
        break;
      }
      case 'xsave':
      case 'xsavec':
      case 'xrstor': {
        const a = arg as { addr: unknown; mask?: unknown };
        if (as !== undefined) this.issue([...path, 'as'], `${kind} has no result to name`, { key: true });
        const mask = a.mask === undefined ? XSAVE_ALL : this.value(a.mask, [...kpath, 'mask'], f);
        const op: Op = { op: kind, addr: this.value(a.addr, [...kpath, 'addr'], f), mask };
        const expect = this.expectation(o.expect, [...path, 'expect'], f, false, undefined, true);
        this.emit(f, op, { path, label: `${kind} [${hexText(a.addr)}]${a.mask === undefined ? '' : `, ${String(a.mask)}`}${note}`, syscall: false, expect });
        break;
      }
      case 'int80': {
        const a = arg as { nr: number | string; args?: unknown[] };
        let nr: number | string = a.nr;
        if (typeof nr === 'string') {
          const e = ia32SyscallEntry(nr);
          if (!e) this.issue([...kpath, 'nr'], `unknown 32-bit syscall ${JSON.stringify(nr)}${suggest(nr, ia32SyscallEntries().map((x) => x.name))}; the model's ia32 table has ${ia32SyscallEntries().map((x) => x.name).join(', ')}`);
          else nr = e.nr;
        }
        const args = (a.args ?? []).map((v, j) => this.value(v, [...kpath, 'args', j], f));
        const expect = this.expectation(o.expect, [...path, 'expect'], f, true, as);
        const op: Op = { op: 'int80', name: typeof nr === 'number' ? nr : 0, args, ...(as ? { into: as } : {}) };
        this.emit(f, op, { path, label: `int 0x80: ${typeof a.nr === 'string' ? a.nr : `nr ${a.nr}`}(${(a.args ?? []).map(String).join(', ')})${note}`, syscall: true, expect });
        if (as) f.defined.add(as);
        break;
      }
      case 'syscall': {
        const a = arg as { nr: number | string; args?: unknown[] };
        let nr: number | string = a.nr;
        if (typeof nr === 'string') {
          const e = syscallEntry(nr);
          if (!e) this.issue([...kpath, 'nr'], `unknown syscall ${JSON.stringify(nr)}${this.syscallHint(nr)}`);
          else nr = e.nr;
        }
        const args = (a.args ?? []).map((v, j) => this.value(v, [...kpath, 'args', j], f));
        this.syscallOp(f, path, o, typeof nr === 'number' ? nr : 0, typeof a.nr === 'string' ? a.nr : `syscall ${a.nr}`, args, (a.args ?? []).map(String), undefined, note);
        break;
      }
      default: {
        const e = syscallEntry(kind);
        if (!e) {
          // The schema lists every key an operation may have, so this is unreachable for validated data.
          this.issue(kpath, `unknown operation ${JSON.stringify(kind)}${this.syscallHint(kind)}; operations: ${USER_OPS.join(', ')} or a syscall name`, { key: true });
          return;
        }
        const given = (arg ?? {}) as Record<string, unknown>;
        const args: Value[] = [];
        const shown: string[] = [];
        let last = -1;
        e.args.forEach((name, j) => {
          if (given[name] !== undefined) last = j;
        });
        for (let j = 0; j <= last; j++) {
          const name = e.args[j];
          const v = given[name];
          if (v === undefined) {
            args.push(0);
            continue;
          }
          shown.push(`${name}=${String(v)}`);
          if (PATH_ARGS[kind] === name && typeof v === 'string' && v.startsWith('/')) {
            const sname = `path${Object.keys(f.proc.strings).length}`;
            f.proc.strings[sname] = v;
            args.push(`&${sname}`);
            continue;
          }
          args.push(this.value(v, [...kpath, name], f));
        }
        let child: { name: string; cpu?: number; ops: unknown[]; path: Path } | undefined;
        if (FORKING_SYSCALLS.includes(kind)) {
          const g = given as { name?: string; cpu?: number; ops?: unknown[] };
          this.checkCpu(g.cpu, [...kpath, 'cpu']);
          const isThread = kind === 'clone' && given.clone_flags !== undefined && this.isThreadClone(given.clone_flags);
          const name = g.name ?? `${f.thread}_child${++this.childCount}`;
          if (g.name !== undefined) this.declareThread(g.name, [...kpath, 'name'], isThread ? 'thread' : 'child');
          else {
            this.threads.set(name, isThread ? 'thread' : 'child');
            this.threadNames.set(name, new Set());
          }
          child = { name, cpu: g.cpu, ops: g.ops ?? [], path: [...kpath, 'ops'] };
        }
        this.syscallOp(f, path, o, e.nr, e.name, args, shown, child, note);
      }
    }
  }

  /**
   * schedule.steps expanded: each item is a CPU number (one step) or a string in the explorer's
   * schedule syntax, read by parseSchedule (a CPU number, `e<cpu>.<slot>`, `p<cpu>`,
   * `p<cpu>><cpu>` and whatever other tokens it reads, each optionally `*count`, several
   * separated by commas), so a counterexample printed by `isolab explore` can be pasted in. A
   * bad token, or a CPU the machine lacks, is an issue at its item; items the machine cannot
   * take (a TLB slot past its size) are found by trialBoot. Undefined when there is no script.
   */
  private script(items: (number | string)[] | undefined): number[] | undefined {
    if (items === undefined) return undefined;
    const out: number[] = [];
    for (const [i, item] of items.entries()) {
      const path: Path = ['schedule', 'steps', i];
      let expanded: number[];
      try {
        expanded = parseSchedule(scheduleText(item), this.cpus);
      } catch (e) {
        if (!(e instanceof ArgumentError)) throw e;
        this.issue(path, scheduleMessage(e, item));
        continue;
      }
      if (out.length + expanded.length > MAX_SCRIPT_STEPS) {
        this.issue(path, `the script is longer than ${MAX_SCRIPT_STEPS} steps`);
        break;
      }
      for (const x of expanded) out.push(x);
    }
    return out;
  }

  /**
   * The machine refused the script (an item the parser accepts but this machine lacks, such as a
   * TLB slot past the TLB's size): the issue goes to the first item that fails alone.
   */
  private scriptIssue(system: SystemConfig, e: ConfigError): void {
    const steps = this.s.schedule?.steps ?? [];
    for (const [i, item] of steps.entries()) {
      try {
        new System({ ...system, script: parseSchedule(scheduleText(item), this.cpus) });
      } catch (err) {
        if (!(err instanceof ConfigError) || err.option !== 'script') continue;
        this.issue(['schedule', 'steps', i], `${JSON.stringify(item)} is not a step this machine can take: ${err.message.slice(err.option.length + 2)}`);
        return;
      }
    }
    this.issue(['schedule', 'steps'], e.message.slice(e.option.length + 2));
  }

  private isThreadClone(v: unknown): boolean {
    try {
      const folded = typeof v === 'number' ? { constant: BigInt(v) } : foldExpr(String(v));
      return !folded.ref && (folded.constant & BigInt(CLONE_THREAD)) !== 0n;
    } catch {
      return false;
    }
  }

  /** The issue for a result named as one of the handler's names. */
  private handlerName(name: string): string {
    return `${name} is a name the kernel sets for a signal handler (${HANDLER_NAMES.map((n) => `$${n}`).join(', ')}); give the result another name`;
  }

  private syscallHint(name: string): string {
    return /^[a-z_0-9]+$/.test(name) ? '; the model implements the syscalls listed in docs/scenario-format.md' : '';
  }

  private syscallOp(
    f: FnCtx,
    path: Path,
    o: Record<string, unknown>,
    nr: number,
    name: string,
    args: Value[],
    shown: string[],
    child: { name: string; cpu?: number; ops: unknown[]; path: Path } | undefined,
    note: string,
  ): void {
    const as = o.as as string | undefined;
    if (o.expect !== undefined && (name === 'exit' || name === 'exit_group')) this.issue([...path, 'expect'], `${name} never returns: there is no result to expect; use expect.exit at the end`, { key: true });
    const expect = this.expectation(o.expect, [...path, 'expect'], f, true, as);
    const op: Op = { op: 'syscall', name: nr, args, ...(as ? { into: as } : {}), ...(child?.cpu !== undefined ? { cpu: child.cpu } : {}) };
    const index = f.out.length;
    if (child) {
      const defined = new Set(f.defined);
      if (as) defined.add(as);
      const cf: FnCtx = { image: f.image, fn: `${f.fn}.${index}.child`, thread: child.name, defined, proc: f.proc, out: [] };
      this.children.set(f.image, f.fn, index, child.name);
      this.compileList(child.ops, child.path, cf);
      (op as { child?: Op[] }).child = cf.out;
    }
    this.emit(f, op, { path, label: `${name}(${shown.join(', ')})${note}`, syscall: true, expect });
    if (as) f.defined.add(as);
  }

  /** A value that must be a constant from `min` to `max` (params allowed), or null with the issue reported. */
  private constantOf(v: unknown, path: Path, min: number, max: number, what: string): number | null {
    const folded = this.fold(v, path);
    if (!folded) return null;
    if (folded.ref) {
      this.issue(path, `${what} must be known when the file is loaded: ${folded.ref} is known only when the program runs`);
      return null;
    }
    if (folded.constant < BigInt(min) || folded.constant > BigInt(max)) {
      this.issue(path, `${String(v)} is ${folded.constant}; ${what} is from ${min} to ${max}`);
      return null;
    }
    return Number(folded.constant);
  }

  /** Folds a value and checks its run-time term. */
  private value(v: unknown, path: Path, f: FnCtx | null, allowed?: Set<string>): Value {
    const folded = this.fold(v, path);
    if (!folded) return 0;
    if (folded?.ref) this.checkRefs(folded, path, f, allowed, v);
    return toValue(folded);
  }

  private fold(v: unknown, path: Path): Folded | null {
    if (typeof v === 'number') return { constant: BigInt(v) };
    try {
      const folded = foldExpr(String(v), this.names);
      if (folded.constant >= 1n << 64n || folded.constant < -(1n << 63n)) {
        this.issue(path, `${String(v)} does not fit in 64 bits`);
        return null;
      }
      return folded;
    } catch (e) {
      if (e instanceof ExprError) {
        this.issue(path, e.message, { offset: e.offset });
        return null;
      }
      throw e;
    }
  }

  /** Checks every run-time term of a folded value. */
  private checkRefs(folded: Folded, path: Path, f: FnCtx | null, allowed: Set<string> | undefined, source: unknown): void {
    for (const r of folded.refs ?? [{ ref: folded.ref!, at: typeof source === 'string' ? source.indexOf(folded.ref!) : -1 }]) {
      this.checkRef(r.ref, path, f, allowed, typeof source === 'string' && r.at >= 0 ? r.at : undefined);
    }
  }

  private checkRef(ref: string, path: Path, f: FnCtx | null, allowed: Set<string> | undefined, offset: number | undefined): void {
    const name = ref.slice(1);
    if (ref[0] === '&') {
      this.issue(path, `${ref}: scenarios have no named strings; execve's filename takes a path such as /bin/prog`, { offset });
      return;
    }
    if (ref[0] === '@') {
      const fns = f ? f.proc.functions : new Set<string>();
      if (!fns.has(name)) this.issue(path, `no function named ${name}${this.known(fns)}`, { offset });
      return;
    }
    if (HANDLER_NAMES.includes(name)) {
      if (!f?.handler) this.issue(path, `${ref} is set by the kernel when it starts a signal handler: it can be read only in a function (a handler)`, { offset });
      return;
    }
    const defined = allowed ?? f?.defined ?? new Set<string>();
    if (!defined.has(name) && !REGISTER_NAMES.includes(name) && !(f?.handler && HANDLER_REGISTERS.includes(name))) {
      const where = f && f.fn !== 'main' && !f.fn.includes('.child') ? 'anywhere in this program' : 'by `as` or `set` earlier in this thread (or, in a child, before the fork)';
      this.issue(path, `${ref} is not defined: names are defined ${where}`, { offset });
    }
  }

  private constant(v: unknown, path: Path): bigint {
    const folded = this.fold(v, path);
    if (!folded) return 0n;
    if (folded.ref) {
      this.issue(path, `expected a constant here, not ${folded.ref}`);
      return 0n;
    }
    return folded.constant;
  }

  private expectation(spec: unknown, path: Path, f: FnCtx, syscall: boolean, as: string | undefined, noValue = false): OpExpectation | undefined {
    if (spec === undefined) return undefined;
    const valueKey = typeof spec === 'object' && spec !== null ? ['value', 'not', 'min', 'max'].find((k) => (spec as Record<string, unknown>)[k] !== undefined) : undefined;
    const valueGiven = typeof spec !== 'object' || spec === null ? path : valueKey ? [...path, valueKey] : null;
    if (noValue && valueGiven) this.issue(valueGiven, 'this operation gives no value (stores, fetches, call, wrpkru, wrss, incssp, rstorssp, saveprevssp, cpuid, the XSAVE instructions, mov_sreg and the base writes do not): expect success: true or a signal', { key: valueGiven !== path });
    const defined = new Set(f.defined);
    if (as) defined.add(as);
    const foldRef = (v: unknown, p: Path): Folded | undefined => {
      const folded = this.fold(v, p);
      if (folded?.ref) this.checkRefs(folded, p, f, defined, v);
      return folded ?? undefined;
    };
    if (typeof spec !== 'object' || spec === null) return { path, text: String(spec), value: foldRef(spec, path) };
    const e = spec as { value?: unknown; errno?: string; signal?: string; si_code?: unknown; si_addr?: unknown; si_pkey?: unknown; success?: boolean; not?: unknown; min?: unknown; max?: unknown; faulted?: unknown; then?: unknown };
    const out: OpExpectation = { path, text: expectText(e) };
    if (e.value !== undefined) out.value = foldRef(e.value, [...path, 'value']);
    for (const k of ['not', 'min', 'max'] as const) if (e[k] !== undefined) out[k] = foldRef(e[k], [...path, k]);
    if (out.min && out.max && !out.min.ref && !out.max.ref && BigInt.asUintN(64, out.min.constant) > BigInt.asUintN(64, out.max.constant)) {
      this.issue([...path, 'max'], `min ${String(e.min)} and max ${String(e.max)} leave no value: the bounds are unsigned 64-bit, so a negative bound is a large number`, { key: true });
    }
    if (e.faulted !== undefined || e.then !== undefined) {
      const others = Object.keys(e).filter((k) => k !== 'faulted' && k !== 'then');
      if (e.faulted === undefined) this.issue([...path, 'then'], 'then follows faulted: say the signal the operation takes first (faulted: { signal: SIGSEGV })', { key: true });
      else if (e.then === undefined) this.issue([...path, 'faulted'], 'faulted needs then: what the operation gives when it runs again after the handler (then: VALUE, or then: { success: true })', { key: true });
      else if (others.length > 0) this.issue([...path, others[0]], `with faulted, the expectation of the run after the handler goes in then: move ${others[0]} into then`, { key: true });
      else if (syscall) this.issue([...path, 'faulted'], 'a syscall does not fault (it returns -EFAULT): faulted is for loads, stores, fetches and the other instructions', { key: true });
      else {
        out.faulted = this.expectation(e.faulted, [...path, 'faulted'], f, false, undefined, true);
        const then = e.then as Record<string, unknown>;
        if (typeof then === 'object' && then !== null && (then.faulted !== undefined || then.signal !== undefined)) this.issue([...path, 'then'], 'then is the run that completes: it cannot expect a signal', { key: true });
        out.then = this.expectation(e.then, [...path, 'then'], f, false, as, noValue);
      }
      return out;
    }
    if (e.errno !== undefined) {
      if (!syscall) this.issue([...path, 'errno'], 'only a syscall returns an errno; a load, store or fetch fails with a signal', { key: true });
      out.errno = ERRNO_BY_NAME.get(e.errno);
    }
    if (e.signal !== undefined) out.signal = SIGNAL_BY_NAME.get(e.signal);
    for (const k of ['si_code', 'si_addr', 'si_pkey'] as const) {
      if (e[k] === undefined) continue;
      if (e.signal === undefined) this.issue([...path, k], `${k} describes a signal: add signal (e.g. signal: SIGSEGV)`, { key: true });
      out[k] = foldRef(e[k], [...path, k]);
    }
    if (e.success !== undefined) out.success = e.success;
    const outcomes = ['value', 'errno', 'signal'].filter((k) => (e as Record<string, unknown>)[k] !== undefined);
    const bounds = ['not', 'min', 'max'].filter((k) => (e as Record<string, unknown>)[k] !== undefined);
    if (bounds.length > 0 && outcomes.length > 0) this.issue([...path, bounds[0]], `${bounds[0]} describes the value an operation gives: it cannot go with ${outcomes[0]}${outcomes[0] === 'value' ? ' (value is exact)' : ''}`, { key: true });
    if (outcomes.length > 1) this.issue([...path, outcomes[1]], `an operation gives one outcome: ${outcomes.join(' and ')} cannot both be expected`, { key: true });
    if (e.success === true && outcomes.some((k) => k !== 'value')) this.issue([...path, 'success'], 'success: true contradicts an expected errno or signal', { key: true });
    return out;
  }

  /** Every {thread.var} in the answer names a thread and something it defines (or exit); {counts.x} a count. */
  private checkAnswer(): void {
    const text = this.s.answer;
    if (text === undefined) return;
    for (const m of text.matchAll(/\{([^{}]*)\}/g)) {
      const [thread, field, extra] = m[1].split('.');
      if (field === undefined || extra !== undefined) this.issue(['answer'], `{${m[1]}}: expected {thread.name}, {thread.exit} or {counts.name}`);
      else if (thread === 'counts') {
        if (!COUNT_NAMES.includes(field)) this.issue(['answer'], `{${m[1]}}: no count named ${field}; counts: ${COUNT_NAMES.join(', ')}`);
      } else if (!this.threads.has(thread)) this.issue(['answer'], `{${m[1]}}: no thread named ${thread}${this.known(this.threads.keys())}`);
      else if (field !== 'exit' && !this.threadNames.get(thread)?.has(field)) this.issue(['answer'], `{${m[1]}}: ${thread} never defines ${field}`);
    }
  }

  private compileEnd(): EndExpectations {
    const x = this.s.expect ?? {};
    const end: EndExpectations & { events: EventExpectation[] } = { exit: [], memory: [], registers: [], ptes: [], invariants: [], events: [] };
    const threadRef = (name: string, p: Path): boolean => {
      if (this.threads.has(name)) return true;
      this.issue(p, `no thread or process named ${JSON.stringify(name)}${this.known(this.threads.keys())}`);
      return false;
    };
    for (const [name, v] of Object.entries(x.exit ?? {})) {
      const p: Path = ['expect', 'exit', name];
      if (!this.threads.has(name)) this.issue(p, `no process named ${JSON.stringify(name)}${this.known([...this.threads].filter(([, k]) => k !== 'thread').map(([n]) => n))}`, { key: true });
      else if (this.threads.get(name) === 'thread') this.issue(p, `${name} is a thread: a wait status belongs to a process`, { key: true });
      if (typeof v === 'number') end.exit.push({ path: p, process: name, code: v, text: `exit ${v}` });
      else {
        const signo = SIGNAL_BY_NAME.get(v);
        if (signo === undefined) this.issue(p, `expected an exit code from 0 to 255 or a signal name such as SIGSEGV, got ${JSON.stringify(v)}`);
        end.exit.push({ path: p, process: name, signal: signo, text: `killed by ${v}` });
      }
    }
    (x.memory ?? []).forEach((m, i) => {
      const p: Path = ['expect', 'memory', i];
      if (!threadRef(m.thread, [...p, 'thread'])) return;
      const names = this.threadNames.get(m.thread)!;
      const fold = (v: unknown, q: Path): Folded | undefined => {
        const r = this.fold(v, q);
        if (r?.ref) this.checkRefs(r, q, null, names, v);
        return r ?? undefined;
      };
      const addr = fold(m.addr, [...p, 'addr']);
      const value = m.value !== undefined ? fold(m.value, [...p, 'value']) : undefined;
      if (m.value !== undefined && m.mapped === false) this.issue([...p, 'value'], 'an unmapped address has no value to expect', { key: true });
      if (addr) end.memory.push({ path: p, thread: m.thread, addr, size: m.size ?? 8, value, mapped: m.mapped, text: `${m.thread}: [${String(m.addr)}]${m.mapped === false ? ' unmapped' : m.value !== undefined ? ` = ${String(m.value)}` : ' mapped'}` });
    });
    (x.registers ?? []).forEach((r, i) => {
      const p: Path = ['expect', 'registers', i];
      if (!threadRef(r.thread, [...p, 'thread'])) return;
      const names = this.threadNames.get(r.thread)!;
      const vars: [string, Folded][] = [];
      for (const [n, v] of Object.entries(r.vars ?? {})) {
        if (!names.has(n)) this.issue([...p, 'vars', n], `${r.thread} never defines ${n}`, { key: true });
        const folded = this.fold(v, [...p, 'vars', n]);
        if (folded?.ref) this.checkRefs(folded, [...p, 'vars', n], null, names, v);
        if (folded) vars.push([n, folded]);
      }
      const pkru = r.pkru !== undefined ? this.fold(r.pkru, [...p, 'pkru']) ?? undefined : undefined;
      if (pkru?.ref) this.checkRefs(pkru, [...p, 'pkru'], null, names, r.pkru);
      end.registers.push({ path: p, thread: r.thread, pkru, vars, text: `${r.thread}: ${[...(r.pkru !== undefined ? [`pkru = ${String(r.pkru)}`] : []), ...Object.entries(r.vars ?? {}).map(([n, v]) => `$${n} = ${String(v)}`)].join(', ')}` });
    });
    (x.ptes ?? []).forEach((e, i) => {
      const p: Path = ['expect', 'ptes', i];
      if (!threadRef(e.thread, [...p, 'thread'])) return;
      const names = this.threadNames.get(e.thread)!;
      const addr = this.fold(e.addr, [...p, 'addr']);
      if (addr?.ref) this.checkRefs(addr, [...p, 'addr'], null, names, e.addr);
      const want: [PteField, number][] = [];
      for (const field of PTE_FIELDS) if (e[field] !== undefined) want.push([field, e[field]!]);
      if (want.length === 0) this.issue(p, 'name at least one of present, rw, accessed, dirty, saved_dirty, pkey');
      if (addr) end.ptes.push({ path: p, thread: e.thread, addr, want, text: `${e.thread}: PTE of [${String(e.addr)}] ${want.map(([f, v]) => `${f}=${v}`).join(' ')}` });
    });
    (x.invariants ?? []).forEach((name, i) => end.invariants.push({ path: ['expect', 'invariants', i], name }));
    (x.events ?? []).forEach((e, i) => {
      const ev = this.eventExpectation(e as unknown as Record<string, unknown>, ['expect', 'events', i]);
      if (ev) end.events.push(ev);
    });
    return end;
  }

  /** An `expect.events` item: the filters must belong to its kind and the count must make sense. */
  private eventExpectation(e: Record<string, unknown>, p: Path): EventExpectation | undefined {
    const type = e.type as EventType;
    const spec = EVENT_KINDS[type];
    const fields = spec.fields as Record<string, FieldSpec<IsolabEvent>>;
    const cpu = e.cpu as number | undefined;
    const thread = e.thread as string | undefined;
    this.checkCpu(cpu, [...p, 'cpu']);
    if (thread !== undefined && !this.threads.has(thread)) this.issue([...p, 'thread'], `no thread or process named ${JSON.stringify(thread)}${this.known(this.threads.keys())}`);
    const filters: EventExpectation['filters'] = [];
    const shown: string[] = [];
    if (cpu !== undefined) shown.push(`cpu ${cpu}`);
    if (thread !== undefined) shown.push(`thread ${thread}`);
    for (const [key, v] of Object.entries(e)) {
      if (EVENT_EXPECT_KEYS.includes(key)) continue;
      const f = fields[key];
      if (!f) {
        const names = ['cpu', 'thread', ...Object.keys(fields)];
        this.issue([...p, key], `${type} events have no field ${JSON.stringify(key)}${suggest(key, Object.keys(fields))}; a ${type} expectation filters on ${names.join(', ')}`, { key: true });
        continue;
      }
      const value = this.filterValue(f, v, [...p, key], `${type} ${key}`);
      if (value === undefined) continue;
      filters.push({ name: key, value, read: f.read });
      shown.push(`${key} ${String(v)}`);
    }
    const n = (k: 'at_least' | 'exactly' | 'at_most'): number | undefined => e[k] as number | undefined;
    if (n('at_least') === undefined && n('exactly') === undefined && n('at_most') === undefined) {
      this.issue(p, `say how many ${type} events: at_least, exactly or at_most`);
      return undefined;
    }
    if (n('exactly') !== undefined && (n('at_least') !== undefined || n('at_most') !== undefined)) {
      this.issue([...p, n('at_least') !== undefined ? 'at_least' : 'at_most'], 'exactly is a count of its own: give exactly, or at_least and/or at_most', { key: true });
      return undefined;
    }
    const min = n('exactly') ?? n('at_least') ?? 0;
    const max = n('exactly') ?? n('at_most') ?? Infinity;
    if (min > max) {
      this.issue([...p, 'at_most'], `at_least ${min} and at_most ${max} leave no count`, { key: true });
      return undefined;
    }
    const count = n('exactly') !== undefined ? `exactly ${min}` : max === Infinity ? `at least ${min}` : n('at_least') === undefined ? `at most ${max}` : `${min} to ${max}`;
    const text = `${type} events${shown.length ? ` (${shown.join(', ')})` : ''}: ${count}`;
    return { path: p, type, cpu, thread, filters, min, max, text, ...(typeof e.note === 'string' ? { note: e.note } : {}) };
  }

  /** A filter's value checked against its kind (a signal name becomes its number); undefined after an issue. */
  private filterValue(f: FieldSpec<IsolabEvent>, v: unknown, p: Path, what: string): FilterValue | undefined {
    const k = f.kind;
    const bad = (expected: string, hint = ''): undefined => {
      this.issue(p, `${what}: expected ${expected}, got ${JSON.stringify(v)}${hint}`);
      return undefined;
    };
    const hint = (known: Iterable<string>): string => (typeof v === 'string' ? suggest(v, known) : '');
    if (k === 'boolean') return typeof v === 'boolean' ? v : bad('true or false');
    if (k === 'bit') return v === 0 || v === 1 ? v : bad('0 or 1');
    if (k === 'integer') return typeof v === 'number' && Number.isInteger(v) ? v : bad('an integer');
    if (k === 'string') return typeof v === 'string' ? v : bad('a string');
    if (k === 'signal') {
      if (typeof v === 'number' && Number.isInteger(v)) return v;
      const signo = typeof v === 'string' ? SIGNAL_BY_NAME.get(v) : undefined;
      return signo ?? bad('a signal name such as SIGSEGV', hint(SIGNAL_BY_NAME.keys()));
    }
    if (k === 'syscall') {
      if (typeof v === 'string' && syscallEntry(v)) return v;
      return bad('the name of a syscall the model implements', hint(syscallEntries().map((x) => x.name)));
    }
    if (typeof v === 'string' && k.includes(v)) return v;
    return bad(`one of ${k.join(', ')}`, hint(k));
  }
}
