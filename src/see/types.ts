/**
 * The recording `isolab see` shows: one run of a scenario, step by step, as plain JSON that the
 * page (web/) reads. Nothing in it is computed by the page: every value comes from the model's
 * state after a step (record.ts), read through the System's introspection.
 *
 * The state after step s is a set of keyed values. It is stored as keyframes (the whole state
 * every `keyframeEvery` steps) and per-step deltas, so the page reaches any step by taking the
 * keyframe at or before it and applying at most `keyframeEvery` deltas. Step 0 is the state
 * after the scenario's processes were started, before the first step.
 *
 * Keys (`KEY` below) and their values:
 *   cpu:N          CpuView      a CPU's registers as the processor holds them
 *   tlb:N:SLOT     TlbView      a live TLB entry of CPU N (slot numbers are the TLB's own)
 *   task:TID       TaskView     a task not yet reaped
 *   mm:ID          MmView       a live address space: its page-table roots and VMAs
 *   pt:PFN:INDEX   string       a present or non-zero entry of a page-table frame reachable from
 *                               a live mm's roots, as 16 hex digits (the 64-bit word)
 * A key absent from the state has no value (an empty entry, a dead task, an evicted entry).
 */

/** Format tag: a page refuses a recording of another format. */
export const RECORDING_FORMAT = 'isolab-see/1';

/** Format tag of a comparison of recordings. */
export const COMPARISON_FORMAT = 'isolab-see-compare/1';

/** A value of the state. */
export type StateValue = CpuView | TlbView | TaskView | MmView | string;

/** The state after a step: key to value. */
export type State = Record<string, StateValue>;

/** A change from the previous step: the key and its new value, or null when it went away. */
export type Delta = [key: string, value: StateValue | null];

export interface CpuView {
  cpu: number;
  /** Current privilege level: 0 in the kernel, 3 in user mode. */
  cpl: number;
  /** CR3 as 16 hex digits (bit 63, NOFLUSH, is never kept in the register). */
  cr3: string;
  /** The PGD frame CR3 points at. */
  pgd: number;
  /** CR3's PCID field (0 when CR4.PCIDE=0). */
  pcid: number;
  /** Which copy of an mm's page tables CR3 holds: 'kernel', 'user' (PTI's user copy), or null when it is none of a live mm's (init_mm, say). */
  copy: 'kernel' | 'user' | null;
  /** The mm whose tables CR3 holds, or null. */
  mm: number | null;
  /** PKRU as 8 hex digits. */
  pkru: string;
  /** The task current on the CPU (0: idle). */
  current: number;
  /** The kernel path the current task is on (TaskInfo.kernel), 'user' in user mode, 'idle'. */
  mode: string;
  /** TLB flush IPIs queued for it. */
  ipis: number;
  /** Whether the kernel runs in lazy TLB mode there. */
  lazy: boolean;
}

export interface TlbView {
  cpu: number;
  slot: number;
  /** The linear address of the page, as hex. */
  va: string;
  /** 12 (4 KiB), 21 (2 MiB) or 30 (1 GiB). */
  pageShift: number;
  pfn: number;
  pcid: number;
  global: boolean;
  /** The rights the entry grants (combined over the walk's levels). */
  write: boolean;
  user: boolean;
  /** Execute-disable. */
  nx: boolean;
  dirty: boolean;
  pkey: number;
  /**
   * Why the entry grants more than a fresh walk of its page tables would ("the PTE is
   * read-only", ...), or null. Computed for 4 KiB user entries whose address space is known
   * (the mm of their PCID's ASID, or the loaded mm without PCIDs); null for the others.
   */
  stale: string | null;
}

export interface TaskView {
  tid: number;
  pid: number;
  /** Its scenario name, or `task N`. */
  name: string;
  state: string;
  cpu: number;
  mm: number | null;
  image: string | null;
  kernel: string | null;
}

export interface VmaView {
  start: string;
  end: string;
  perms: string;
  pkey: number;
  name: string;
  shadowStack: boolean;
}

export interface MmView {
  id: number;
  tids: number[];
  tlbGen: number;
  /** The PGD frame of the kernel copy. */
  pgd: number;
  /** The PGD frame of PTI's user copy, or null when the mm has none. */
  userPgd: number | null;
  vmas: VmaView[];
}

/** One event of the run, as the page lists it. */
export interface SeeEvent {
  /** The step it happened in (1-based; 0 for the start). */
  step: number;
  cpu: number;
  tid: number;
  /** The event's type in the event stream (system.ts IsolabEvent). */
  type: string;
  /** A timeline category: op, syscall, fault, ipi, cr3, flush, tlb, fork, exec, exit, switch, signal, other. */
  kind: string;
  /** The event in words ("#PF W U at 0x10000: do_wp_page copied the page"). */
  text: string;
}

/**
 * One step: which CPU took it, the task it ran, and its events `events[first .. first + count)`.
 * Step 0 (the start) has no events: the first step's begin at 0.
 */
export interface StepView {
  /** The CPU, or -1 for a round-robin round in which several CPUs stepped. */
  cpu: number;
  /** The task of the step's first event, 0 when it had none or ran on an idle CPU. */
  tid: number;
  first: number;
  count: number;
  /** What the step was (`user op`, `kernel path`, `idle`, `evict`, `preempt`, ...), as the schedule names it. */
  what: string;
}

/** A bit of a paging-structure entry, for the page's named bits (from hw/pte.ts). */
export interface BitName {
  /** Bit number 0..63. */
  bit: number;
  /** Width in bits (4 for the protection key). */
  width: number;
  name: string;
  /** What it means, briefly. */
  doc: string;
  /** Where it applies: every entry, leaves only, or non-leaf entries only. */
  where: 'any' | 'leaf' | 'table';
}

export interface Recording {
  format: typeof RECORDING_FORMAT;
  scenario: { name: string; file?: string; question?: string; description?: string };
  /** The run's machine and kernel, as booted. */
  machine: {
    cpus: number;
    /** Paging levels, 4 or 5. */
    levels: number;
    pcid: boolean;
    pti: boolean;
    /** Every kernel option's value. */
    kernel: Record<string, string | number | boolean>;
  };
  /** How the steps were chosen: the schedule replayed (explorer notation) or the scenario's policy. */
  schedule: { text: string; policy: string; seed: number };
  /** Steps recorded. */
  steps: number;
  /** Per step, `stepViews[s - 1]` for step s. */
  stepViews: StepView[];
  events: SeeEvent[];
  keyframeEvery: number;
  /** The state after step `k * keyframeEvery`, for k = 0, 1, ... */
  keyframes: State[];
  /** `deltas[s - 1]`: the changes step s made. */
  deltas: Delta[][];
  /** The invariants checked after each step, and the first broken (the page opens at its step). */
  invariants: string[];
  violation: { invariant: string; message: string; step: number } | null;
  /** The run's verdict: every expectation held, every task finished. */
  passed: boolean;
  finished: boolean;
  bits: BitName[];
}

/** Two recordings of one scenario, side by side (`isolab see --compare`), with their operations aligned. */
export interface Comparison {
  format: typeof COMPARISON_FORMAT;
  sides: { name: string; recording: Recording }[];
  /**
   * Aligned rows: each row is one user operation (by thread and op index) with, per side, the
   * step at which it completed there, or null when it did not run on that side.
   */
  rows: { op: string; steps: (number | null)[] }[];
}
