/**
 * One execution under the explorer's control: the scenario's Runner in stepwise mode (one
 * kernel-path step per CPU step), the explorer choosing every step, each step's footprint
 * recorded, and the invariants checked as it goes.
 *
 * A step's footprint (what it read and wrote) is what decides which steps commute. It comes
 * from three places:
 *  - physical memory and the page walker report every word (or frame) they touch
 *    (hw/footprint.ts), so user accesses, walks, A/D updates and the kernel's PTE accesses
 *    through PhysMem are exact;
 *  - a kernel-path step announces, before its `yield`, the PTE, lock, CPU or page it touches
 *    (`pc.touch`, kernel/steps.ts); the announced key is added (for the PTE loops that read
 *    table words directly; a user copy announces a virtual address and is left to PhysMem);
 *  - everything else the kernel keeps in JavaScript objects is one key, FP_KERNEL, that every
 *    kernel step writes, except an entry-code step that stays in the entry code (it touches
 *    only its CPU). User steps read the signal state and their CPU's
 *    IPI queue and runqueue, which the kernel records when it changes them.
 * So kernel steps on two CPUs always conflict, a kernel step and a user step conflict only
 * through memory, signals, IPIs and runqueues, and two user steps only through memory. This
 * leans on the model's locking discipline: state a kernel step reads without announcing it is
 * protected by a lock whose steps are announced.
 *
 * A CPU whose kernel path yielded a failed wait is blocked: running it again would change
 * nothing until another step writes what it waits on, so it is not offered until then.
 */
import { FP_EVICT, FP_FRAME, FP_KERNEL, FP_SIGNAL, fp_cpu, fp_ipiq, fp_overlap, fp_runq, type FootprintSink } from '../hw/footprint.js';
import { STEP_ATOMIC, STEP_COPY, STEP_ENTRY, STEP_IPI, STEP_LOCK, STEP_READ, STEP_UNLOCK, STEP_WAIT, STEP_WRITE, type KPath } from '../kernel/steps.js';
import type { Kernel } from '../kernel/kernel.js';
import type { Task } from '../kernel/task.js';
import { R_GLOBAL } from '../hw/rights.js';
import type { CompiledScenario } from '../scenario/compile.js';
import { Runner, type RunReport } from '../scenario/run.js';
import { evictionOf, evictionStep, hasWork, isPreemption, isReclaim, preemptionOf, preemptionStep, reclaimOf, reclaimStep, TASK_SIZE, type System } from '../system.js';
import { Checker, type Violation } from './checks.js';

/** One executed step: who took it and what it touched. */
export interface Step {
  /** The schedule item: a CPU number, or a negative eviction, preemption or reclaim item (system.ts evictionStep, preemptionStep, reclaimStep). */
  item: number;
  reads: number[];
  writes: number[];
}

/** Whether two steps of different threads do not commute: one writes what the other reads or writes. */
export function dependent(a: Step, b: Step): boolean {
  return overlapAny(a.writes, b.writes) || overlapAny(a.writes, b.reads) || overlapAny(a.reads, b.writes);
}

function overlapAny(x: number[], y: number[]): boolean {
  for (const a of x) for (const b of y) if (fp_overlap(a, b)) return true;
  return false;
}

/** Past this many keys a Recorder list is de-duplicated through a Set (a page copy reports 512 words). */
const RECORDER_SCAN = 16;

/** Collects one step's keys, each once. */
class Recorder implements FootprintSink {
  reads: number[] = [];
  writes: number[] = [];
  private readSet: Set<number> | null = null;
  private writeSet: Set<number> | null = null;
  read(key: number): void {
    if (this.readSet) {
      if (this.readSet.has(key)) return;
      this.readSet.add(key);
    } else if (this.reads.includes(key)) return;
    else if (this.reads.length >= RECORDER_SCAN) this.readSet = new Set(this.reads).add(key);
    this.reads.push(key);
  }
  write(key: number): void {
    if (this.writeSet) {
      if (this.writeSet.has(key)) return;
      this.writeSet.add(key);
    } else if (this.writes.includes(key)) return;
    else if (this.writes.length >= RECORDER_SCAN) this.writeSet = new Set(this.writes).add(key);
    this.writes.push(key);
  }
}

export interface ExecutionOptions {
  /** Built-in invariants to check (checks.ts). */
  invariants: string[];
  /** TLB evictions the explorer may insert into this execution. */
  evictions: number;
  /** Preemptions (with or without a move to another CPU) the explorer may insert (default 0). */
  preemptChoices?: number;
  /** Reclaim passes (kswapd woken on a CPU, System.reclaim) the explorer may insert (default 0). */
  reclaims?: number;
  /** Keep every event (for a counterexample's timeline). */
  record?: boolean;
  /**
   * End the execution at its first violation (`--first`). Otherwise it goes on, each invariant
   * reported the first time it breaks, until it ends or a debug check reports (the kernel's
   * state is then corrupt, as after a BUG).
   */
  stopAtFirst?: boolean;
  /**
   * Where the explored part of an execution ends: 'end' (every task has exited) or 'ops' (every
   * live task has finished its operations; the exits then run on one fixed schedule, unexplored).
   */
  until?: 'end' | 'ops';
}

export class Execution {
  readonly runner: Runner;
  readonly sys: System;
  readonly k: Kernel;
  /** The items taken so far. */
  readonly schedule: number[] = [];
  /** Every invariant broken, in the order they broke, each with the step after which it was seen (once per invariant). */
  readonly violations: (Violation & { step: number })[] = [];
  private readonly checker: Checker;
  /** What each CPU's failed wait reads (NaN: not blocked). */
  private readonly blockedOn: number[];
  private evictionsLeft: number;
  private preemptChoicesLeft: number;
  private reclaimsLeft: number;
  private readonly untilOps: boolean;
  private readonly stopAtFirst: boolean;
  private readonly invariants: Set<string>;
  /** Tasks that have finished their operations. */
  private readonly opsDone = new Set<number>();

  constructor(c: CompiledScenario, opts: ExecutionOptions) {
    // The explorer chooses every step: the scenario's own scripted schedule is not used.
    this.runner = new Runner(c, { stepwise: true, record: opts.record, schedule: [] });
    this.sys = this.runner.sys;
    this.k = this.sys.kernel;
    this.checker = new Checker(this.sys, opts.invariants);
    this.blockedOn = this.k.percpu.map(() => NaN);
    this.evictionsLeft = opts.evictions;
    this.preemptChoicesLeft = opts.preemptChoices ?? 0;
    this.reclaimsLeft = opts.reclaims ?? 0;
    this.untilOps = opts.until === 'ops';
    this.stopAtFirst = opts.stopAtFirst === true;
    this.invariants = new Set(opts.invariants);
    this.sys.events.subscribe((e) => {
      if (e.type === 'user_end') this.opsDone.add(e.tid);
      this.checker.onEvent(e);
    });
    this.runner.begin();
  }

  /** The first invariant broken, or null. */
  get violation(): (Violation & { step: number }) | null {
    return this.violations[0] ?? null;
  }

  /**
   * Whether the execution has ended on a violation: at the first one with `stopAtFirst`, else
   * at a debug check's report.
   */
  get stopped(): boolean {
    const v = this.violations;
    if (v.length === 0) return false;
    return this.stopAtFirst || v.some((x) => x.invariant === 'debug_checks');
  }

  /** Whether invariant `name` has broken in this execution. */
  broke(name: string): boolean {
    return this.violations.some((v) => v.invariant === name);
  }

  /** Records violations seen after the step that ended at `step`. */
  private record(found: Violation[]): void {
    for (const v of found) if (!this.broke(v.invariant)) this.violations.push({ ...v, step: this.schedule.length });
  }

  /**
   * The items that may run next: CPUs with work that are not blocked, the evictions still
   * allowed, the preemptions still allowed (System.canPreempt: each CPU whose task can be
   * preempted now, in place and to each other CPU it may use), and while reclaims are allowed
   * and kswapd sleeps, a reclaim pass woken on each CPU.
   */
  enabled(): number[] {
    const out: number[] = [];
    if (this.untilOps && this.windowOver()) return out;
    for (const pc of this.k.percpu) {
      if (!hasWork(pc)) continue;
      if (!Number.isNaN(this.blockedOn[pc.id]) && !this.sys.takesIpi(pc.id)) continue;
      out.push(pc.id);
    }
    if (this.evictionsLeft > 0) {
      for (const pc of this.k.percpu) {
        const tlb = pc.cpu.tlb;
        for (const en of tlb.entries()) {
          if (en.rights & R_GLOBAL || en.laHi >= 0x8000 || en.laHi * 2 ** 32 + en.laLo >= TASK_SIZE) continue;
          out.push(evictionStep(pc.id, en.slot));
        }
      }
    }
    if (this.preemptChoicesLeft > 0) {
      const cpus = this.k.percpu.length;
      for (let c = 0; c < cpus; c++) for (let d = 0; d < cpus; d++) if (this.sys.canPreempt(c, d)) out.push(preemptionStep(c, d));
    }
    if (this.reclaimsLeft > 0) {
      for (let c = 0; c < this.k.percpu.length; c++) if (this.sys.canReclaim(c)) out.push(reclaimStep(c));
    }
    return out;
  }

  /**
   * Runs `item` and returns its footprint; checks the invariants after it. With `known`, the
   * footprint the same step had when the search first took it from the same state (DPOR's
   * replay to a branch point, dpor.ts): the step runs unrecorded and unchecked (it was checked
   * then), changing the state as it did; call `resync` after the last such step.
   */
  step(item: number, known?: Step): Step {
    if (known) return this.rerun(item, known);
    const rec = new Recorder();
    this.schedule.push(item);
    if (isPreemption(item)) return this.preemptStep(item, rec);
    if (isReclaim(item)) return this.reclaimStep(item, rec);
    if (item < 0) {
      const { cpu } = evictionOf(item);
      rec.write(fp_cpu(cpu));
      rec.write(FP_EVICT);
      this.evictionsLeft--;
      this.runner.stepCpu(item);
      this.after(-1, rec);
      return { item, reads: rec.reads, writes: rec.writes };
    }
    const pc = this.k.percpu[item];
    const t = pc.current;
    rec.read(fp_ipiq(item));
    rec.read(fp_runq(item));
    rec.write(fp_cpu(item));
    const kind = this.kindOf(item);
    const path = t ? t.kpath : null;
    const pathKind = t ? t.kpathKind : 'syscall';
    let entry = false;
    if (kind === 'irq') {
      rec.write(FP_KERNEL);
      rec.write(fp_ipiq(item));
    } else if (kind === 'sched') rec.write(FP_KERNEL);
    else if (kind === 'kernel') {
      const next = t!.nextStepPath === path ? t!.nextStep : 0;
      if (next === STEP_WAIT) {
        // A retry: it reads what it waits on and, when that is free, takes it and goes on.
        rec.write(FP_KERNEL);
        if (pc.touch < -1) rec.write(pc.touch);
      } else if (next === STEP_ENTRY) entry = true;
      else {
        rec.write(FP_KERNEL);
        announced(rec, next, pc.touch);
      }
    }
    this.stepRecorded(item, rec);
    if (kind === 'kernel') {
      const same = t!.kpath === path;
      if (entry && !(same && t!.nextStep === STEP_ENTRY) && !(!same && pathKind === 'return')) rec.write(FP_KERNEL);
    } else if (kind === 'user') {
      rec.read(FP_SIGNAL);
      if (pc.current !== t || t!.kpath) rec.write(FP_KERNEL);
    }
    const waits = this.settle(item, kind, t, path, rec.writes);
    this.after(waits ? item : -1, rec);
    return { item, reads: rec.reads, writes: rec.writes };
  }

  /** What CPU `item`'s next step is: an IPI taken, a switch of task, a kernel-path step or a user step. */
  private kindOf(item: number): 'irq' | 'sched' | 'kernel' | 'user' {
    const t = this.k.percpu[item].current;
    if (this.sys.takesIpi(item)) return 'irq';
    if (!t || t.state !== 'running') return 'sched';
    return t.kpath ? 'kernel' : 'user';
  }

  /**
   * After CPU `item`'s step of `kind` (task `t`, on path `path` before it), which wrote the keys
   * `writes`: a kernel path now at a failed wait blocks the CPU (else it is unblocked), and a
   * user step's word writes go to the checker. Returns whether the CPU waits.
   */
  private settle(item: number, kind: 'irq' | 'sched' | 'kernel' | 'user', t: Task | null, path: KPath | null, writes: number[]): boolean {
    const pc = this.k.percpu[item];
    if (kind === 'kernel' && t!.kpath === path && t!.nextStep === STEP_WAIT && pc.current === t) {
      this.blockedOn[item] = waitKey(pc.touch);
      return true;
    }
    if (kind === 'user') {
      const words = writes.filter((w) => w >= 0 && w < FP_FRAME);
      if (words.length > 0) this.checker.userWrote(words);
    }
    this.blockedOn[item] = NaN;
    return false;
  }

  /**
   * A step taken again with its footprint `known` (step): the same state change, what the
   * checks follow kept (the user words written, the CPUs blocked and woken), no recording and
   * no checks.
   */
  private rerun(item: number, known: Step): Step {
    this.schedule.push(item);
    let self = -1;
    if (isPreemption(item)) {
      this.preemptChoicesLeft--;
      this.runner.stepCpu(item);
      this.blockedOn[preemptionOf(item).cpu] = NaN;
    } else if (isReclaim(item)) {
      this.reclaimsLeft--;
      this.runner.stepCpu(item);
    } else if (item < 0) {
      this.evictionsLeft--;
      this.runner.stepCpu(item);
    } else {
      const t = this.k.percpu[item].current;
      const kind = this.kindOf(item);
      const path = t ? t.kpath : null;
      this.runner.stepCpu(item);
      if (this.settle(item, kind, t, path, known.writes)) self = item;
    }
    this.wake(self, known.writes);
    return known;
  }

  /** After steps taken with `known` footprints: the checks pick up from the state reached, as if they had run (Checker.resync). */
  resync(): void {
    this.checker.resync();
  }

  /** Runs script item `item` with every physical access it makes recorded in `rec`. */
  private stepRecorded(item: number, rec: Recorder): void {
    const mem = this.sys.machine.mem;
    mem.fp = rec;
    try {
      this.runner.stepCpu(item);
    } finally {
      mem.fp = null;
    }
  }

  /**
   * A preemption choice (System.stepCpu): CPU c's task gives the CPU up, onto c's runqueue or
   * CPU d's, and c switches to its next task. Its footprint is that of a scheduling step on
   * both CPUs: it reads c's IPI queue, writes both CPUs (so it conflicts with every step either
   * takes), both runqueues and every kernel data structure (FP_KERNEL), and whatever memory the
   * switch touches. CPU c's failed wait, if it had one, belonged to the task that left.
   */
  private preemptStep(item: number, rec: Recorder): Step {
    const { cpu, to } = preemptionOf(item);
    rec.read(fp_ipiq(cpu));
    for (const c of cpu === to ? [cpu] : [cpu, to]) {
      rec.write(fp_runq(c));
      rec.write(fp_cpu(c));
    }
    rec.write(FP_KERNEL);
    this.preemptChoicesLeft--;
    this.stepRecorded(item, rec);
    this.blockedOn[cpu] = NaN;
    this.after(-1, rec);
    return { item, reads: rec.reads, writes: rec.writes };
  }

  /**
   * A reclaim choice (System.reclaim): kswapd goes onto CPU c's runqueue and c's task is told
   * to give the CPU up. It writes c's runqueue and CPU state and kswapd's (FP_KERNEL), so it
   * conflicts with every step c takes and every kernel step; the pass's own steps are kswapd's
   * kernel steps on whichever CPU runs it.
   */
  private reclaimStep(item: number, rec: Recorder): Step {
    const { cpu } = reclaimOf(item);
    rec.write(fp_runq(cpu));
    rec.write(fp_cpu(cpu));
    rec.write(FP_KERNEL);
    this.reclaimsLeft--;
    this.stepRecorded(item, rec);
    this.after(-1, rec);
    return { item, reads: rec.reads, writes: rec.writes };
  }

  /** Wakes blocked CPUs (but `self`) whose wait a step's `writes` touched. */
  private wake(self: number, writes: number[]): void {
    for (let c = 0; c < this.blockedOn.length; c++) {
      if (c === self || Number.isNaN(this.blockedOn[c])) continue;
      const key = this.blockedOn[c];
      if (writes.some((w) => fp_overlap(w, key))) this.blockedOn[c] = NaN;
    }
  }

  /** Wakes blocked CPUs whose wait this step's writes touched; runs the checks. */
  private after(self: number, rec: Recorder): void {
    this.wake(self, rec.writes);
    if (!this.stopped) {
      this.record(this.checker.afterStep());
      this.eventExcess();
    }
  }

  /**
   * With the `scenario` invariant: an `expect.events` upper bound (exactly, at_most) the
   * execution has already passed, found at the step that passed it. Lower bounds are judged
   * with the other verdicts when the execution ends (finish).
   */
  private eventExcess(): void {
    if (!this.invariants.has('scenario') || this.broke('scenario')) return;
    const message = this.runner.eventExcess();
    if (message) this.record([{ invariant: 'scenario', message }]);
  }

  /** With until 'ops': every live task has finished its operations. */
  private windowOver(): boolean {
    for (const t of this.sys.tasks()) if (t.state !== 'dead' && t.state !== 'zombie' && !this.opsDone.has(t.tid)) return false;
    return true;
  }

  /** Whether CPUs are left blocked with nothing else enabled (a deadlock). */
  deadlocked(): number[] {
    return this.k.percpu.filter((pc) => hasWork(pc) && !Number.isNaN(this.blockedOn[pc.id])).map((pc) => pc.id);
  }

  /** Ends the execution: the end checks, then the scenario's own verdicts. */
  finish(): RunReport {
    if (this.untilOps && !this.stopped) {
      // The unexplored tail: round-robin, one step per CPU in turn.
      for (let n = 0; n < 1_000_000 && this.sys.step(); n++) {
        if (!this.stopped) {
          this.record(this.checker.afterStep());
          this.eventExcess();
        }
      }
    }
    if (!this.stopped) this.record(this.checker.atEnd());
    const report = this.runner.finish();
    if (this.stopped) return report;
    if (this.invariants.has('deadlock')) {
      const stuck = this.deadlocked();
      if (stuck.length > 0) this.record([{ invariant: 'deadlock', message: `CPU ${stuck.join(', ')} wait(s) forever: nothing else can run` }]);
    }
    if (this.invariants.has('scenario')) {
      const bad = report.verdicts.find((v) => v.status === 'failed');
      if (bad) this.record([{ invariant: 'scenario', message: `${bad.where}: expected ${bad.expected}, got ${bad.actual}` }]);
    }
    if (this.invariants.has('witness') && this.violations.length === 0 && report.verdicts.every((v) => v.status === 'held')) {
      this.record([{ invariant: 'witness', message: `every expectation of the scenario held (${report.verdicts.length})` }]);
    }
    return report;
  }
}

/** The key a failed wait reads: the lock it waits for, or (an acknowledgement count) FP_KERNEL. */
function waitKey(touch: number): number {
  return touch < -1 ? touch : FP_KERNEL;
}

/** Adds what a kernel step announced before its yield. */
function announced(rec: Recorder, kind: number, touch: number): void {
  switch (kind) {
    case STEP_READ:
      if (touch >= 0) rec.read(Math.floor(touch / 8));
      return;
    case STEP_WRITE:
    case STEP_ATOMIC:
      if (touch >= 0) rec.write(Math.floor(touch / 8));
      return;
    case STEP_COPY:
      if (touch >= 0) rec.write(FP_FRAME + Math.floor(touch / 4096));
      return;
    case STEP_LOCK:
    case STEP_UNLOCK:
      if (touch < -1) rec.write(touch);
      return;
    case STEP_IPI:
      if (touch >= 0) rec.write(fp_ipiq(touch));
      return;
  }
}
