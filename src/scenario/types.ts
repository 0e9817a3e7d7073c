/**
 * A scenario as a plain typed object: what a YAML scenario file holds once parsed, and what the
 * TypeScript API takes. docs/scenario-format.md describes every field; schema.ts publishes the
 * JSON Schema editors use. Values (`Expr`) are numbers or strings folded by expr.ts.
 */
import type { CpuModel } from '../hw/features.js';
import type { KernelOptions } from '../kernel/options.js';

/** A number, or an expression: `PROT_READ|PROT_WRITE`, `0x1000`, `$buf+8`, `@handler`. */
export type Expr = number | string;

export interface Scenario {
  /** A short identifier (file name without .yaml by default). */
  name?: string;
  /** The question the scenario answers, printed by `isolab tour`. */
  question?: string;
  /** The answer, with `{thread.var}` and `{thread.exit}` filled in from the run. */
  answer?: string;
  /** Longer prose: where the question comes from. */
  description?: string;
  machine?: {
    /** Number of CPUs, 1..64 (default 1). */
    cpus?: number;
    /** Installed memory: bytes, or a string such as "64 MiB" (default 256 MiB). */
    memory?: number | string;
    /** CPU features and bugs (hw/features.ts). */
    cpu?: Partial<Omit<CpuModel, 'tlb'>> & { tlb?: Partial<CpuModel['tlb']> };
  };
  /** Kernel options (kernel/options.ts). */
  kernel?: Partial<KernelOptions>;
  schedule?: {
    /** `random` (seeded, the default) or `round-robin`. */
    policy?: 'random' | 'round-robin';
    /** Seed of the random schedule (default 1); `isolab run --seed` overrides it. */
    seed?: number;
    /** Give up after this many steps (default 1,000,000). */
    max_steps?: number;
    /**
     * A scripted start: which CPU takes each of the first steps, one kernel-path or user step
     * at a time: a CPU number, or a string in the explorer's schedule syntax (explore/schedule.ts:
     * "cpu*count", e<cpu>.<slot>, p<cpu>, p<cpu>><cpu>, r<cpu>, comma-separated). The policy
     * takes over after it.
     */
    steps?: (number | string)[];
  };
  /**
   * Parameters, by name, with their default values: names a value may use like a constant, set
   * by `--param name=value` (run, measure, compare) and swept by `isolab sweep`.
   */
  params?: Record<string, number>;
  /**
   * The sides of the debate the scenario is about, by name (`isolab compare` runs each): kernel
   * options over the scenario's, and the cost profile to measure that side on.
   */
  sides?: Record<string, SideSpec>;
  /** Images execve can load, by path. */
  programs?: Record<string, ProgramSpec>;
  processes: ProcessSpec[];
  expect?: EndExpect;
}

export interface ProgramSpec {
  /** What the main thread runs. */
  ops: OpSpec[];
  /** Functions: signal handlers (named by `handlers`), `@name` addresses. */
  functions?: Record<string, OpSpec[]>;
}

/** One side of a debate (`sides`). */
export interface SideSpec {
  description?: string;
  /** Kernel options over the scenario's. */
  kernel?: Partial<KernelOptions>;
  /** The cost profile this side is measured on (default: the one `isolab compare` is given). */
  profile?: string;
}

export interface ProcessSpec extends ProgramSpec {
  /** The name of the process and of its main thread. */
  name: string;
  /** The CPU the main thread starts on (default: the least loaded). */
  cpu?: number;
  /** What the main thread runs before it creates the threads: names defined here are every thread's. */
  setup?: OpSpec[];
  /** More threads, created with clone(CLONE_VM|CLONE_THREAD|...) after `setup` and before `ops`. */
  threads?: ThreadSpec[];
  /** Signal handlers installed before the first operation, by signal name. */
  handlers?: Record<string, HandlerSpec>;
}

export interface ThreadSpec {
  name: string;
  cpu?: number;
  ops: OpSpec[];
}

export interface HandlerSpec {
  /** The function that handles the signal, or SIG_IGN / SIG_DFL. */
  handler: string;
  /** sa_flags besides SA_RESTORER (which the C library always adds): an expression such as `SA_SIGINFO|SA_NODEFER`. */
  flags?: Expr;
  /** Signals blocked while the handler runs. */
  mask?: string[];
}

/**
 * One operation: an object with one operation key (`load`, `store`, `fetch`, `set`, `repeat`,
 * `syscall`, or a syscall's name) and optionally `as` and `expect`; or the bare words `return`,
 * `longjmp` and `lret`.
 */
export type OpSpec = 'return' | 'longjmp' | 'lret' | OpObject;

export interface OpObject {
  /** Names the result (`$name` later). */
  as?: string;
  /** What the operation must give. */
  expect?: OpExpect;
  /** Free text shown in the timeline. */
  note?: string;
  [op: string]: unknown;
}

/** A value, or one of the object forms. */
export type OpExpect =
  | Expr
  | {
      value?: Expr;
      errno?: string;
      signal?: string;
      si_code?: Expr;
      si_addr?: Expr;
      si_pkey?: Expr;
      /** The operation returned without a signal, and a syscall without an error. */
      success?: boolean;
      /** No signal, and a value other than this. */
      not?: Expr;
      /** No signal, and a value from min to max (unsigned 64-bit; either bound may be left out). */
      min?: Expr;
      max?: Expr;
      /** The operation faulted with this signal first, then ran again after the handler and gave `then`. */
      faulted?: { signal: string; si_code?: Expr; si_addr?: Expr; si_pkey?: Expr };
      then?: OpExpect;
    };

export interface EndExpect {
  /** Wait status by process (or fork-child) name: an exit code, or the signal that killed it. */
  exit?: Record<string, number | string>;
  /** Memory a thread sees when it has finished its operations. */
  memory?: { thread: string; addr: Expr; size?: 1 | 2 | 4 | 8; value?: Expr; mapped?: boolean }[];
  /** The PTE mapping `addr` for a thread when it has finished its operations: each flag given (0 or 1) must match. */
  ptes?: { thread: string; addr: Expr; present?: 0 | 1; rw?: 0 | 1; accessed?: 0 | 1; dirty?: 0 | 1; saved_dirty?: 0 | 1; pkey?: number }[];
  /** A thread's registers when it has finished its operations. */
  registers?: { thread: string; pkru?: Expr; vars?: Record<string, Expr> }[];
  /** Invariants checked at the end of the run (see invariants.ts). */
  invariants?: string[];
  /** Events the run must emit: how many of a kind (events.ts), optionally filtered. */
  events?: EventExpect[];
}

/**
 * A count of one event kind over the whole run: `exactly`, or `at_least` and/or `at_most`.
 * `cpu` and `thread` filter every kind; the other keys are the kind's own fields (events.ts).
 */
export interface EventExpect {
  type: string;
  cpu?: number;
  thread?: string;
  at_least?: number;
  exactly?: number;
  at_most?: number;
  /** Free text shown with the verdict: what the events prove. */
  note?: string;
  [field: string]: unknown;
}
