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
 *  - every field of the kernel's JavaScript objects the step reads or writes: the execution
 *    boots and steps with a tracking context current (src/track.ts), so the kernel's shared
 *    objects are Proxies that report each access as a key of its own.
 * Every step of a CPU writes that CPU (its registers and TLB). A queued IPI, a pending signal
 * or a runqueue is a field like any other, read by the steps that look at it. Nothing rests on
 * the kernel's locking: two
 * kernel steps on two CPUs commute unless they touch a common field or word. With
 * `checkFootprints` each step's writes are checked against the whole state (fpcheck.ts).
 *
 * A CPU whose kernel path yielded a failed wait is blocked: running it again would change
 * nothing until another step writes something the failed attempt read, so it is not offered
 * until then.
 */
import { FIELD_SPAN, FP_EVICT, FP_FRAME, FP_OBJ, FP_TOKEN, fp_cpu, fp_overlap, type FootprintSink } from '../hw/footprint.js';
import { STEP_ATOMIC, STEP_COPY, STEP_LOCK, STEP_READ, STEP_UNLOCK, STEP_WAIT, STEP_WRITE, type KPath } from '../kernel/steps.js';
import type { Kernel } from '../kernel/kernel.js';
import type { Task } from '../kernel/task.js';
import { R_GLOBAL } from '../hw/rights.js';
import type { CompiledScenario } from '../scenario/compile.js';
import { Runner, type RunReport } from '../scenario/run.js';
import { evictionOf, evictionStep, hasWork, isPreemption, isReclaim, preemptionOf, preemptionStep, reclaimOf, reclaimStep, TASK_SIZE, type System } from '../system.js';
import { TAIL_ITEM, TrackContext, tracked } from '../track.js';
import { Checker, type Violation } from './checks.js';
import { changedKeys, checkWrites, stateParts } from './fpcheck.js';

/** One executed step: who took it and what it touched. */
export interface Step {
  /** The schedule item: a CPU number, or a negative eviction, preemption or reclaim item (system.ts evictionStep, preemptionStep, reclaimStep). */
  item: number;
  reads: number[];
  writes: number[];
  /**
   * With until 'ops': after this step no CPU could run and the threads held at the end of their
   * operations were released (part of the step: its footprint has what the release touched).
   */
  released?: true;
}

/** Whether two steps of different threads do not commute: one writes what the other reads or writes. */
export function dependent(a: Step, b: Step): boolean {
  return overlapAny(a.writes, b.writes) || overlapAny(a.writes, b.reads) || overlapAny(a.reads, b.writes);
}

/** Past this many pairs of keys, overlapAny looks the keys up in an index of the longer list instead of comparing every pair. */
const PAIRS_SCAN = 64;

/** A key list's index: its keys, and the frame or whole object of each word or field key (what else overlaps them, fp_overlap). */
interface KeyIndex {
  exact: Set<number>;
  coarse: Set<number>;
}

const indexes = new WeakMap<number[], KeyIndex>();

/** The frame of a word or frame key, the whole-object key of an object's field or whole; -1 for tokens and locks. */
function coarseOf(key: number): number {
  if (key < 0) return -1;
  if (key < FP_FRAME) return FP_FRAME + Math.floor(key / 512);
  if (key < FP_TOKEN) return key;
  if (key >= FP_OBJ) return key - ((key - FP_OBJ) % FIELD_SPAN);
  return -1;
}

function indexOf(keys: number[]): KeyIndex {
  let ix = indexes.get(keys);
  if (!ix) {
    ix = { exact: new Set(keys), coarse: new Set() };
    for (const k of keys) {
      const c = coarseOf(k);
      if (c >= 0 && c !== k) ix.coarse.add(c);
    }
    indexes.set(keys, ix);
  }
  return ix;
}

function overlapAny(x: number[], y: number[]): boolean {
  if (x.length * y.length <= PAIRS_SCAN) {
    for (const a of x) for (const b of y) if (fp_overlap(a, b)) return true;
    return false;
  }
  // fp_overlap through an index of the longer list: equal keys, a word or field in the frame
  // or whole object the other names, a frame or whole object holding a word or field of it.
  const [short, long] = x.length <= y.length ? [x, y] : [y, x];
  const ix = indexOf(long);
  for (const a of short) {
    if (ix.exact.has(a)) return true;
    const c = coarseOf(a);
    if (c >= 0 && (c === a ? ix.coarse.has(a) : ix.exact.has(c))) return true;
  }
  return false;
}

/** Past this many keys a Recorder list is de-duplicated through a Set (a page copy reports 512 words). */
const RECORDER_SCAN = 16;

/** Collects one step's keys, each once. */
class Recorder implements FootprintSink {
  reads: number[] = [];
  writes: number[] = [];
  /** Goes on recording into copies of the lists: those handed out so far (and any index built of them) stay as they are. */
  detach(): void {
    this.reads = this.reads.slice();
    this.writes = this.writes.slice();
  }
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
   * Check each recorded step's footprint against the whole state before and after it
   * (fpcheck.ts): a change outside the keys it recorded as written throws a ModelError. Slow:
   * for tests and `--check-footprints`.
   */
  checkFootprints?: boolean;
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
  /** The tracking of the kernel's objects (src/track.ts): every boot and step runs with it current. */
  readonly track = new TrackContext();
  /** What each CPU's failed wait read (null: not blocked): a write to any of it may free the wait. */
  private readonly blockedOn: (readonly number[] | null)[];
  private evictionsLeft: number;
  private preemptChoicesLeft: number;
  private reclaimsLeft: number;
  private readonly untilOps: boolean;
  private readonly stopAtFirst: boolean;
  private readonly checkFootprints: boolean;
  private readonly invariants: Set<string>;
  /** Tasks that have finished their operations. */
  private readonly opsDone = new Set<number>();

  constructor(c: CompiledScenario, opts: ExecutionOptions) {
    // The explorer chooses every step: the scenario's own scripted schedule is not used.
    this.runner = tracked(this.track, () => new Runner(c, { stepwise: true, record: opts.record, schedule: [] }));
    this.sys = this.runner.sys;
    this.k = this.sys.kernel;
    // With until 'ops', a thread that has run its operations waits for the window's end to exit (sim/hold.ts).
    if (opts.until === 'ops') this.sys.holdAtEnd(true);
    this.checker = new Checker(this.sys, opts.invariants);
    this.blockedOn = this.k.percpu.map(() => null);
    this.evictionsLeft = opts.evictions;
    this.preemptChoicesLeft = opts.preemptChoices ?? 0;
    this.reclaimsLeft = opts.reclaims ?? 0;
    this.untilOps = opts.until === 'ops';
    this.stopAtFirst = opts.stopAtFirst === true;
    this.checkFootprints = opts.checkFootprints === true;
    this.invariants = new Set(opts.invariants);
    this.sys.events.subscribe((e) => {
      if (e.type === 'user_end') this.opsDone.add(e.tid);
      this.checker.onEvent(e);
    });
    // What the stamp and the listeners (the checks, the scenario's expectations) read while a
    // step emits is not the step's: recording pauses during each delivery.
    const mem = this.sys.machine.mem;
    const track = this.track;
    this.sys.events.setGuard((deliver) => {
      const fp = mem.fp;
      const tfp = track.fp;
      mem.fp = null;
      track.fp = null;
      try {
        deliver();
      } finally {
        mem.fp = fp;
        track.fp = tfp;
      }
    });
    tracked(this.track, () => this.runner.begin());
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
      if (this.blockedOn[pc.id] && !this.sys.takesIpi(pc.id)) continue;
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
      this.stepRecorded(item, rec);
      return this.stepOf(item, rec, this.after(-1, rec));
    }
    const pc = this.k.percpu[item];
    const t = pc.current;
    rec.write(fp_cpu(item));
    const kind = this.kindOf(item);
    const path = t ? t.kpath : null;
    if (kind === 'kernel') {
      const next = t!.nextStepPath === path ? t!.nextStep : 0;
      if (next === STEP_WAIT) {
        // A retry: it reads what it waits on and, when that is free, takes it and goes on.
        if (pc.touch < -1) rec.write(pc.touch);
      } else announced(rec, next, pc.touch);
    }
    this.stepRecorded(item, rec);
    const waits = this.settle(item, kind, t, path, { item, reads: rec.reads, writes: rec.writes });
    return this.stepOf(item, rec, this.after(waits ? item : -1, rec));
  }

  /** What CPU `item`'s next step is: an IPI taken, a switch of task, a kernel-path step or a user step. */
  private kindOf(item: number): 'irq' | 'sched' | 'kernel' | 'user' {
    const t = this.k.percpu[item].current;
    if (this.sys.takesIpi(item)) return 'irq';
    if (!t || t.state !== 'running') return 'sched';
    return t.kpath ? 'kernel' : 'user';
  }

  /**
   * After CPU `item`'s step `step` of `kind` (task `t`, on path `path` before it): a kernel path
   * now at a failed wait blocks the CPU until a step writes something the wait read (else the
   * CPU is unblocked), and a user step's word writes go to the checker. Returns whether the CPU
   * waits.
   */
  private settle(item: number, kind: 'irq' | 'sched' | 'kernel' | 'user', t: Task | null, path: KPath | null, step: Step): boolean {
    const pc = this.k.percpu[item];
    if (kind === 'kernel' && t!.kpath === path && t!.nextStep === STEP_WAIT && pc.current === t) {
      this.blockedOn[item] = step.reads.concat(step.writes);
      return true;
    }
    if (kind === 'user') {
      const words = step.writes.filter((w) => w >= 0 && w < FP_FRAME);
      if (words.length > 0) this.checker.userWrote(words);
    }
    this.blockedOn[item] = null;
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
      this.stepUnrecorded(item);
      this.blockedOn[preemptionOf(item).cpu] = null;
    } else if (isReclaim(item)) {
      this.reclaimsLeft--;
      this.stepUnrecorded(item);
    } else if (item < 0) {
      this.evictionsLeft--;
      this.stepUnrecorded(item);
    } else {
      const t = this.k.percpu[item].current;
      const kind = this.kindOf(item);
      const path = t ? t.kpath : null;
      this.stepUnrecorded(item);
      if (this.settle(item, kind, t, path, known)) self = item;
    }
    this.wake(self, known.writes);
    if (known.released) {
      tracked(this.track, () => this.sys.releaseHeld());
      this.wake(self, known.writes);
    }
    return known;
  }

  /** After steps taken with `known` footprints: the checks pick up from the state reached, as if they had run (Checker.resync). */
  resync(): void {
    this.checker.resync();
  }

  /** Runs script item `item` with every physical access and every kernel-object field access it makes recorded in `rec`. */
  private stepRecorded(item: number, rec: Recorder): void {
    const mem = this.sys.machine.mem;
    const before = this.checkFootprints ? stateParts(this.sys, this.track) : null;
    mem.fp = rec;
    this.track.fp = rec;
    this.track.item = item;
    try {
      tracked(this.track, () => this.runner.stepCpu(item));
    } finally {
      mem.fp = null;
      this.track.fp = null;
    }
    if (before) checkWrites(this.schedule.length - 1, item, changedKeys(before, stateParts(this.sys, this.track)), rec.writes);
  }

  /** Runs script item `item` unrecorded (a replayed step, the unexplored tail). */
  private stepUnrecorded(item: number): void {
    this.track.item = item;
    tracked(this.track, () => this.runner.stepCpu(item));
  }

  /**
   * A preemption choice (System.stepCpu): CPU c's task gives the CPU up, onto c's runqueue or
   * CPU d's, and c switches to its next task. Its footprint is that of a scheduling step on
   * both CPUs: it reads c's IPI queue, writes both CPUs (so it conflicts with every step either
   * takes) and both runqueues, and adds the kernel fields and memory the switch touches. CPU
   * c's failed wait, if it had one, belonged to the task that left.
   */
  private preemptStep(item: number, rec: Recorder): Step {
    const { cpu, to } = preemptionOf(item);
    for (const c of cpu === to ? [cpu] : [cpu, to]) rec.write(fp_cpu(c));
    this.preemptChoicesLeft--;
    this.stepRecorded(item, rec);
    this.blockedOn[cpu] = null;
    return this.stepOf(item, rec, this.after(-1, rec));
  }

  /**
   * A reclaim choice (System.reclaim): kswapd goes onto CPU c's runqueue and c's task is told
   * to give the CPU up. It writes c's runqueue and CPU state (so it conflicts with every step c
   * takes) and the fields the wake touches; the pass's own steps are kswapd's kernel steps on
   * whichever CPU runs it.
   */
  private reclaimStep(item: number, rec: Recorder): Step {
    const { cpu } = reclaimOf(item);
    rec.write(fp_cpu(cpu));
    this.reclaimsLeft--;
    this.stepRecorded(item, rec);
    return this.stepOf(item, rec, this.after(-1, rec));
  }

  /** Wakes blocked CPUs (but `self`) whose wait read something a step's `writes` touched. */
  private wake(self: number, writes: number[]): void {
    for (let c = 0; c < this.blockedOn.length; c++) {
      const keys = this.blockedOn[c];
      if (c === self || !keys) continue;
      if (overlapAny(writes, keys as number[])) this.blockedOn[c] = null;
    }
  }

  /** The step recorded in `rec`, marked when it released the held threads. */
  private stepOf(item: number, rec: Recorder, released: boolean): Step {
    return released ? { item, reads: rec.reads, writes: rec.writes, released } : { item, reads: rec.reads, writes: rec.writes };
  }

  /**
   * Wakes blocked CPUs whose wait this step's writes touched; then, with until 'ops', if no CPU
   * can run while the window is not over, releases the threads held at their end as part of the
   * step (recorded in `rec`); runs the checks. Returns whether it released.
   */
  private after(self: number, rec: Recorder): boolean {
    this.wake(self, rec.writes);
    let released = false;
    if (this.mustRelease()) {
      rec.detach();
      const mem = this.sys.machine.mem;
      mem.fp = rec;
      this.track.fp = rec;
      try {
        tracked(this.track, () => this.sys.releaseHeld());
      } finally {
        mem.fp = null;
        this.track.fp = null;
      }
      this.wake(self, rec.writes);
      released = true;
    }
    if (!this.stopped) {
      this.record(this.checker.afterStep());
      this.eventExcess();
    }
    return released;
  }

  /**
   * With until 'ops': whether threads held at their end must be released now, because no CPU
   * can run (each is idle or blocked) while some live thread has not finished its operations
   * (it waits, directly or not, for a held one: a vfork parent for its child, a wait4).
   */
  private mustRelease(): boolean {
    if (!this.untilOps || this.windowOver() || !this.sys.anyHeld()) return false;
    for (const pc of this.k.percpu) {
      if (hasWork(pc) && (!this.blockedOn[pc.id] || this.sys.takesIpi(pc.id))) return false;
    }
    return true;
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
    return this.k.percpu.filter((pc) => hasWork(pc) && this.blockedOn[pc.id]).map((pc) => pc.id);
  }

  /** Ends the execution: the end checks, then the scenario's own verdicts. */
  finish(): RunReport {
    this.track.item = TAIL_ITEM;
    if (this.untilOps && !this.stopped) {
      // The window is over: the threads held at their end go on to exit.
      tracked(this.track, () => this.sys.releaseHeld());
      // The unexplored tail: round-robin, one step per CPU in turn.
      for (let n = 0; n < 1_000_000 && tracked(this.track, () => this.sys.step()); n++) {
        if (!this.stopped) {
          this.record(this.checker.afterStep());
          this.eventExcess();
        }
      }
    }
    if (!this.stopped) this.record(this.checker.atEnd());
    const report = tracked(this.track, () => this.runner.finish());
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
  }
}
