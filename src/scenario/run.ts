/**
 * Running a compiled scenario: boots the System, starts the processes with their handlers,
 * steps the seeded schedule, and reads the one event stream (DESIGN.md rule 7) to build the
 * timeline, the counts and a verdict for every expectation. Expectations on operations are
 * checked the moment the operation completes, against the thread's registers at that moment;
 * memory and register expectations when the thread has finished its operations; exit
 * statuses and invariants at the end.
 */
import { ModelError } from '../errors.js';
import { SA_RESTORER } from '../kernel/uapi.js';
import type { OpRecord, Task } from '../kernel/task.js';
import { System, type IsolabEvent, type Pte } from '../system.js';
import type { ProgramImage } from '../user/program.js';
import { compileRtExpr, DIVIDE_ERROR, parseRtExpr, type RtEval } from '../user/rtexpr.js';
import type { Folded } from './expr.js';
import { formatHex, formatOpValue, formatReturn, formatValue, formatWaitStatus, pfAccess, pfBits, signalName, siCodeName } from './format.js';
import { eventCpu, eventTid } from './events.js';
import { INVARIANTS } from './invariants.js';
import { issueAt, pathString, type Path } from './load.js';
import { pteFields } from './peek.js';
import { describePte } from '../hw/pte.js';
import { CR4_PCIDE } from '../hw/regs.js';
import type { ReachRecord } from '../kernel/kernel.js';
import { type CompiledScenario, type EventExpectation, type OpExpectation, type OpInfo } from './compile.js';

export interface RunOptions {
  /** Overrides the scenario's seed (and makes the schedule random). */
  seed?: number;
  /** Overrides the scenario's step limit. */
  maxSteps?: number;
  /** Keep every event with its step (for `isolab trace`). */
  record?: boolean;
  /** Record each process's Meltdown reach as its address space ends (for `isolab reach`). */
  reach?: boolean;
  /** Called every `progressEvery` steps with the steps so far. */
  onProgress?: (steps: number, maxSteps: number) => void;
  progressEvery?: number;
  /** A schedule to replay (as `schedule.steps`, replacing the scenario's): one item per step, then the policy. */
  schedule?: number[];
  /** One kernel-path step per CPU step throughout (the explorer's granularity). */
  stepwise?: boolean;
}

export type VerdictStatus = 'held' | 'failed' | 'not_reached';

export interface Verdict {
  kind: 'op' | 'exit' | 'memory' | 'pte' | 'registers' | 'invariant' | 'events';
  /** file:line:col, or the path when the scenario did not come from a file. */
  where: string;
  path: string;
  /** What was expected. */
  expected: string;
  status: VerdictStatus;
  /** What happened (the first mismatch for an operation that ran several times). */
  actual: string;
  /** How many times the operation ran (op verdicts), or the events counted (events verdicts). */
  count?: number;
}

export interface TimelineEntry {
  step: number;
  cpu: number;
  tid: number;
  task: string;
  kind: 'syscall' | 'op' | 'fault' | 'signal' | 'cr3' | 'flush' | 'ipi' | 'fork' | 'exec' | 'exit' | 'switch' | 'debug';
  text: string;
}

export interface Counts {
  steps: number;
  syscalls: number;
  page_faults: number;
  signals: number;
  cr3_writes: number;
  tlb_flushes: number;
  ipis: number;
  tlb_misses: number;
  walks: number;
  page_copies: number;
  context_switches: number;
  /** Copies the entry code made between stacks (pt_regs by sync_regs, return frames to the entry stack). */
  stack_copies: number;
}

export interface TaskSummary {
  tid: number;
  pid: number;
  name: string;
  /** "exit 0", "killed by SIGSEGV", or null while it is alive. */
  exit: string | null;
  /** Present (true) for a task left stopped by a stop signal (TASK_STOPPED) when the run ended: it waits for a SIGCONT that never came. */
  stopped?: true;
}

export interface RunReport {
  scenario: string;
  file?: string;
  question?: string;
  answer?: string;
  policy: 'random' | 'round-robin';
  seed: number;
  /** True when every task exited before the step limit. */
  finished: boolean;
  /** True when every expectation held. */
  passed: boolean;
  verdicts: Verdict[];
  tasks: TaskSummary[];
  counts: Counts;
  timeline: TimelineEntry[];
  /** Every event with its step, with `record`. */
  trace?: { step: number; event: IsolabEvent }[];
  /** Each process's Meltdown reach as its address space ended, with `reach`. */
  reach?: ReachRecord[];
}

/** What a thread looked like when it finished its operations. */
/** What the runs of one compiled expectation gave so far. */
interface OpSlot {
  count: number;
  failure?: string;
  last?: string;
  /** For faulted/then: per thread, the fault seen and not yet followed by a completing run. */
  pending?: Map<number, string>;
}

interface Snapshot {
  image: ProgramImage | null;
  vars: Map<string, bigint>;
  pkru: number;
  memory: (bigint | null)[];
  /** The PTE of each `ptes` expectation of the thread, or null when no table holds one. */
  ptes: (Pte | null)[];
}

/** Runs a compiled scenario to completion (or the step limit) and judges it. */
export function runScenario(c: CompiledScenario, opts: RunOptions = {}): RunReport {
  return new Runner(c, opts).run();
}

/**
 * One run of a compiled scenario: `run` steps the scenario's own schedule; the explorer drives
 * `begin`, `stepCpu` and `finish` with its choices instead.
 */
export class Runner {
  readonly sys: System;
  private unsubscribe: () => void = () => {};
  private reachLog: ReachRecord[] | undefined;
  private readonly names = new Map<number, string>();
  private readonly timeline: TimelineEntry[] = [];
  private readonly trace: { step: number; event: IsolabEvent }[] | undefined;
  private readonly counts: Counts = { steps: 0, syscalls: 0, page_faults: 0, signals: 0, cr3_writes: 0, tlb_flushes: 0, ipis: 0, tlb_misses: 0, walks: 0, page_copies: 0, context_switches: 0, stack_copies: 0 };
  private readonly opResults = new Map<OpExpectation, OpSlot>();
  /** Expectations' expressions, compiled on first use. */
  private readonly exprs = new Map<Folded, RtEval>();
  /** The `expect.events` items, and the events each has counted so far. */
  private readonly eventExpects: EventExpectation[];
  private readonly eventCounts: number[];
  private readonly snapshots = new Map<string, Snapshot>();
  private readonly bootFrames: number;
  /** The watchers of the invariants judged on the whole run, by name. */
  private readonly watchers = new Map<string, { onEvent: (e: IsolabEvent) => void; result: () => string | null }>();
  private readonly seed: number;
  private readonly policy: 'random' | 'round-robin';

  constructor(private readonly c: CompiledScenario, private readonly opts: RunOptions) {
    this.seed = opts.seed ?? c.seed;
    this.policy = opts.seed !== undefined ? 'random' : c.policy;
    const script = opts.schedule ?? c.system.script;
    this.sys = new System({ ...c.system, schedule: this.policy, seed: this.seed, ...(script ? { script } : {}), ...(opts.stepwise ? { stepwise: true } : {}) });
    this.bootFrames = this.sys.framesInUse;
    this.trace = opts.record ? [] : undefined;
    this.eventExpects = c.end.events ?? [];
    this.eventCounts = this.eventExpects.map(() => 0);
    for (const img of c.images) this.sys.addImage(img.path, img.program);
    for (const x of c.end.invariants) {
      const watch = INVARIANTS[x.name].watch;
      if (watch && !this.watchers.has(x.name)) this.watchers.set(x.name, watch(this.sys));
    }
  }

  run(): RunReport {
    const { sys } = this;
    this.begin();
    try {
      const max = this.opts.maxSteps ?? this.c.maxSteps;
      const every = this.opts.progressEvery ?? 10_000;
      let n = 0;
      while (n < max && sys.step()) {
        n++;
        if (this.opts.onProgress && n % every === 0) this.opts.onProgress(n, max);
      }
    } catch (e) {
      this.unsubscribe();
      if (e instanceof ModelError) throw this.withContext(e);
      throw e;
    }
    return this.finish();
  }

  /** Starts the scenario's processes, listening to the event stream. */
  begin(): void {
    const { sys, c } = this;
    this.unsubscribe = sys.events.subscribe((e) => this.onEvent(e));
    this.reachLog = this.opts.reach ? sys.recordReach() : undefined;
    try {
      for (const p of c.processes) {
        const pid = sys.spawn(p.program, { name: p.name, cpu: p.cpu });
        this.names.set(pid, p.name);
        this.installHandlers(sys.task(pid)!, p.handlers);
      }
    } catch (e) {
      this.unsubscribe();
      if (e instanceof ModelError) throw this.withContext(e);
      throw e;
    }
  }

  /** One step chosen by the caller (System.stepCpu); a model error carries the step and the trace's tail. */
  stepCpu(item: number): boolean {
    try {
      return this.sys.stepCpu(item);
    } catch (e) {
      this.unsubscribe();
      if (e instanceof ModelError) throw this.withContext(e);
      throw e;
    }
  }

  /** Stops listening and judges every expectation. */
  finish(): RunReport {
    const { sys, c } = this;
    this.unsubscribe();
    const reach = this.reachLog;
    this.counts.steps = sys.now;
    const alive = sys.tasks().filter((t) => t.state !== 'dead' && t.state !== 'zombie');
    const verdicts = [...this.opVerdicts(), ...this.exitVerdicts(), ...this.endVerdicts(), ...this.invariantVerdicts(), ...this.eventVerdicts()];
    const passed = verdicts.every((v) => v.status === 'held');
    return {
      scenario: c.name,
      file: c.locator?.file,
      question: c.question,
      answer: c.answer !== undefined ? this.fillAnswer(c.answer) : undefined,
      policy: this.policy,
      seed: this.seed,
      finished: alive.length === 0,
      passed,
      verdicts,
      tasks: this.taskSummaries(),
      counts: this.counts,
      timeline: this.timeline,
      ...(this.trace ? { trace: this.trace } : {}),
      ...(reach ? { reach } : {}),
    };
  }

  /** A ModelError with the step and the last timeline entries attached. */
  private withContext(e: ModelError): ModelError {
    const tail = this.timeline.slice(-10).map((t) => `  ${t.step} cpu${t.cpu} ${t.task}: ${t.text}`);
    return new ModelError(e.check, `${e.message.slice(e.check.length + 2)}\n  at step ${this.sys.now} of scenario ${this.c.name}; the last events:\n${tail.join('\n')}`);
  }

  /** Installs handlers as the C library's sigaction would (SA_RESTORER with __restore_rt). */
  private installHandlers(t: Task, handlers: CompiledScenario['processes'][number]['handlers']): void {
    const image = t.image!;
    for (const h of handlers) {
      const handler = typeof h.handler === 'bigint' ? h.handler : BigInt(image.byName.get(h.handler)!.base);
      t.sighand.action[h.signo] = { handler, flags: h.flags | SA_RESTORER, restorer: BigInt(image.restorer), mask: h.mask };
    }
  }

  /** The timeline so far (the entries of `finish`'s report, as they are added). */
  get timelineSoFar(): readonly TimelineEntry[] {
    return this.timeline;
  }

  /** Task `tid`'s scenario name (`taskN` for a task the scenario does not name). */
  nameOf(tid: number): string {
    return this.name(tid);
  }

  private name(tid: number): string {
    return this.names.get(tid) ?? `task${tid}`;
  }

  private add(cpu: number, tid: number, kind: TimelineEntry['kind'], text: string): void {
    this.timeline.push({ step: this.sys.now, cpu, tid, task: tid > 0 ? this.name(tid) : '', kind, text });
  }

  private opInfo(t: Task | undefined, fn: string, index: number): OpInfo | undefined {
    return t && t.image ? this.c.ops.get(t.image.name, fn, index) : undefined;
  }

  private onEvent(e: IsolabEvent): void {
    if (this.trace) this.trace.push({ step: this.sys.now, event: e });
    for (const w of this.watchers.values()) w.onEvent(e);
    if (this.eventCounts.length > 0) this.countEvent(e);
    const cnt = this.counts;
    switch (e.type) {
      case 'tlb_miss':
        cnt.tlb_misses++;
        return;
      case 'walk':
        cnt.walks++;
        return;
      case 'tlb_flush':
        if (e.cause !== 'page_fault' && e.cause !== 'dirty_assist' && e.cause !== 'evict') cnt.tlb_flushes++;
        return;
      case 'cr_write':
        if (e.reg === 'cr3') cnt.cr3_writes++;
        return;
      case 'syscall_enter':
        cnt.syscalls++;
        return;
      case 'op':
        this.onOp(e.cpu, e.record);
        return;
      case 'user_end':
        this.onUserEnd(e.tid);
        return;
      case 'page_fault':
        cnt.page_faults++;
        this.add(e.cpu, e.tid, 'fault', `#PF ${pfAccess(e.errorCode)} ${hex(e.addr)} (${pfBits(e.errorCode)})${e.user ? '' : ' in the kernel'} → ${e.outcome}`);
        return;
      case 'signal':
        cnt.signals++;
        this.add(e.cpu, e.tid, 'signal', `${signalName(e.signo)} (${siCodeName(e.signo, e.code)}${e.addr ? `, si_addr ${hex(e.addr)}` : ''}) → ${e.action}`);
        return;
      case 'switch_mm':
        this.add(e.cpu, e.tid, 'cr3', `CR3 ← mm ${e.to}${e.to === 0 ? ' (init_mm)' : ''}, ASID ${e.asid}${this.sys.machine.cpus[e.cpu].cr4 & CR4_PCIDE ? ` (PCID ${e.asid + 1})` : ''}, ${e.flush ? 'flush' : 'no flush'}${e.how === 'unlazy' ? ', leaving lazy mode' : ''}`);
        return;
      case 'tlb_shootdown':
        this.add(e.cpu, e.tid, 'flush', `flush_tlb_mm_range(mm ${e.mm}, ${e.end === -1 ? 'all' : `${hex(BigInt(e.start))}-${hex(BigInt(e.end))}`})${e.freedTables ? ', tables freed' : ''}`);
        return;
      case 'flush_tlb_func':
        this.add(e.cpu, e.tid, 'flush', `flush_tlb_func(mm ${e.mm}): ${e.pages < 0 ? 'full flush' : `${e.pages} INVLPG`}`);
        return;
      case 'ipi':
        cnt.ipis++;
        this.add(e.from, e.tid, 'ipi', `IPI → CPU ${e.to}`);
        return;
      case 'page_copy':
        cnt.page_copies++;
        return;
      case 'pte_retry':
        this.add(e.cpu, eventTid(e), 'fork', `ptep_set_wrprotect: try_cmpxchg found the PTE at pa ${hex(BigInt(e.pa))} changed since it was read; retried with the new value`);
        return;
      case 'entry':
        if (e.what === 'regs_copy') cnt.stack_copies++;
        return;
      case 'context_switch':
        cnt.context_switches++;
        if (e.to !== 0) this.add(e.cpu, e.to, 'switch', `runs ${this.name(e.to)}${e.from ? ` (after ${this.name(e.from)})` : ''}`);
        return;
      case 'fork': {
        const parent = this.sys.task(e.parent);
        const child = parent?.image ? this.c.children.get(parent.image.name, parent.opFn, parent.opIndex) : undefined;
        this.names.set(e.child, child ?? `task${e.child}`);
        this.add(e.cpu, e.parent, 'fork', `${this.name(e.child)} created: tid ${e.child}${e.ptes ? `, ${e.ptes} PTEs copied` : ''}`);
        return;
      }
      case 'exec':
        this.add(e.cpu, e.tid, 'exec', `execve → ${e.image}`);
        return;
      case 'exit':
        this.add(e.cpu, e.tid, 'exit', formatWaitStatus(e.status));
        return;
      case 'debug':
        this.add(e.cpu, 0, 'debug', `debug check ${e.check}: ${e.message}`);
        return;
    }
  }

  private onOp(cpu: number, r: OpRecord): void {
    const t = this.sys.task(r.tid);
    const info = this.opInfo(t, r.fn, r.index);
    const label = info ? info.label : `${r.op} (${r.fn}[${r.index}])`;
    const result = r.signal
      ? `✗ ${signalName(r.signal.signo)} ${siCodeName(r.signal.signo, r.signal.code)}${r.signal.addr ? ` at ${hex(r.signal.addr)}` : ''}`
      : info?.syscall
        ? `= ${formatReturn(r.value ?? 0n)}`
        : r.value !== undefined
          ? `→ ${formatOpValue(r.op, r.value)}`
          : 'done';
    const at = r.addr !== undefined && info && !info.syscall ? ` @${hex(r.addr)}` : '';
    this.add(cpu, r.tid, info?.syscall ? 'syscall' : 'op', `${label}${at} ${result}${info?.note ? `  # ${info.note}` : ''}`);
    if (info?.expect && t) this.judgeOp(info, info.expect, r, t);
  }

  /**
   * A folded value's run-time value: `$name` from `vars`, `@fn` from `image`; undefined when a
   * variable it reads was not set or an expression divides by 0 (`unresolved` says which).
   */
  private resolve(f: Folded, vars: Map<string, bigint>, image: ProgramImage | null): bigint | undefined {
    if (f.expr !== undefined) {
      if (this.unsetRef(f, vars, image)) return undefined;
      let ev = this.exprs.get(f);
      if (!ev) {
        ev = compileRtExpr(parseRtExpr(f.expr), (ref): RtEval => {
          if (ref[0] === '@') {
            const base = BigInt(image?.byName.get(ref.slice(1))?.base ?? 0);
            return () => base;
          }
          return (v) => BigInt.asUintN(64, v.get(ref.slice(1))!);
        });
        this.exprs.set(f, ev);
      }
      try {
        return ev(vars, 0);
      } catch (e) {
        if (e === DIVIDE_ERROR) return undefined;
        throw e;
      }
    }
    if (!f.ref) return f.constant;
    const name = f.ref.slice(1);
    if (f.ref[0] === '@') {
      const fn = image?.byName.get(name);
      return fn ? BigInt(fn.base) + f.constant : undefined;
    }
    const v = vars.get(name);
    return v === undefined ? undefined : v + f.constant;
  }

  /** The first run-time term of `f` that has no value (a variable never set, a function the image lacks), or undefined. */
  private unsetRef(f: Folded, vars: Map<string, bigint>, image: ProgramImage | null): string | undefined {
    for (const r of f.refs ?? (f.ref ? [{ ref: f.ref }] : [])) {
      if (r.ref[0] === '@' ? !image?.byName.has(r.ref.slice(1)) : !vars.has(r.ref.slice(1))) return r.ref;
    }
    return undefined;
  }

  /** Why `resolve` gave undefined, for a verdict. */
  private unresolved(f: Folded, vars: Map<string, bigint>, image: ProgramImage | null): string {
    const ref = this.unsetRef(f, vars, image);
    return ref ? `${ref} was not set` : `${f.expr ?? ''} divides by zero`;
  }

  private judgeOp(info: OpInfo, x: OpExpectation, r: OpRecord, t: Task): void {
    const slot = this.opResults.get(x) ?? { count: 0 };
    this.opResults.set(x, slot);
    if (x.faulted && x.then) return this.judgeFaulted(info, x.faulted, x.then, r, t, slot);
    slot.count++;
    const actual = this.describeOutcome(info, r);
    slot.last = actual;
    const bad = this.mismatch(info, x, r, t);
    if (bad && slot.failure === undefined) slot.failure = `${actual}${bad === true ? '' : ` (${bad})`}${slot.count > 1 ? `, on run ${slot.count}` : ''}`;
  }

  /**
   * `faulted` then `then`: a thread's runs of the operation must be one or more faults that meet
   * `faulted`, then a run without a signal that meets `then` (the run after the handler
   * returned). `slot.pending` holds, per thread, the fault seen and not yet followed by a
   * completion; a fault still pending at the end fails the verdict (opVerdicts). `count` counts
   * the completions.
   */
  private judgeFaulted(info: OpInfo, faulted: OpExpectation, then: OpExpectation, r: OpRecord, t: Task, slot: OpSlot): void {
    const actual = this.describeOutcome(info, r);
    const pending = (slot.pending ??= new Map());
    const fault = pending.get(r.tid);
    if (r.signal) {
      const bad = this.mismatch(info, faulted, r, t);
      if (bad && slot.failure === undefined) slot.failure = `${fault === undefined ? '' : `${fault}, then `}${actual}${bad === true ? '' : ` (${bad})`}`;
      if (fault === undefined) pending.set(r.tid, actual);
      return;
    }
    slot.count++;
    pending.delete(r.tid);
    if (fault === undefined) {
      if (slot.failure === undefined) slot.failure = `${actual} without faulting first`;
      return;
    }
    slot.last = `${fault}, then ${actual}`;
    const bad = this.mismatch(info, then, r, t);
    if (bad && slot.failure === undefined) slot.failure = `${fault}, then ${actual}${bad === true ? '' : ` (${bad})`}`;
  }

  private describeOutcome(info: OpInfo, r: OpRecord): string {
    const loop = info.expect?.loop;
    if (loop !== undefined && r.value !== undefined) return r.value > BigInt(loop) ? `the condition still held after ${loop} iterations: the loop gave up` : `ended after ${r.value} iteration${r.value === 1n ? '' : 's'}`;
    if (r.signal) return `${signalName(r.signal.signo)} with si_code ${siCodeName(r.signal.signo, r.signal.code)}, si_addr ${hex(r.signal.addr)}${r.signal.pkey ? `, si_pkey ${r.signal.pkey}` : ''}`;
    if (info.syscall) return `returned ${formatReturn(r.value ?? 0n)}`;
    return r.value !== undefined ? `value ${formatOpValue(r.op, r.value)}` : 'completed';
  }

  /** False when the record meets the expectation; true or a reason when it does not. */
  private mismatch(info: OpInfo, x: OpExpectation, r: OpRecord, t: Task): string | boolean {
    const u64 = (v: bigint): bigint => BigInt.asUintN(64, v);
    if (x.loop !== undefined) return r.value === undefined || r.value > BigInt(x.loop);
    if (x.success === false && r.signal) return false;
    if (x.signal !== undefined) {
      if (!r.signal) return true;
      if (r.signal.signo !== x.signal) return true;
      for (const [k, got] of [['si_code', BigInt(r.signal.code)], ['si_addr', r.signal.addr], ['si_pkey', BigInt(r.signal.pkey)]] as const) {
        const f = x[k];
        if (!f) continue;
        const want = this.resolve(f, t.vars, t.image);
        if (want === undefined) return this.unresolved(f, t.vars, t.image);
        if (u64(want) !== u64(got)) return `expected ${k} ${k === 'si_code' ? siCodeName(x.signal, Number(want)) : k === 'si_addr' ? formatHex(want) : formatValue(want)}`;
      }
      return false;
    }
    if (r.signal) return true;
    if (x.errno !== undefined) return r.value === undefined || BigInt.asIntN(64, r.value) !== BigInt(-x.errno);
    for (const k of ['not', 'min', 'max'] as const) {
      const f = x[k];
      if (!f) continue;
      const want = this.resolve(f, t.vars, t.image);
      if (want === undefined) return this.unresolved(f, t.vars, t.image);
      const got = r.value === undefined ? undefined : u64(r.value);
      if (got === undefined || (k === 'not' ? got === u64(want) : k === 'min' ? got < u64(want) : got > u64(want))) {
        return `expected ${k === 'not' ? 'a value other than' : k === 'min' ? 'at least' : 'at most'} ${formatValue(want)}`;
      }
    }
    if (x.value) {
      const want = this.resolve(x.value, t.vars, t.image);
      if (want === undefined) return this.unresolved(x.value, t.vars, t.image);
      return r.value === undefined || u64(r.value) !== u64(want);
    }
    const failedSyscall = info.syscall && r.value !== undefined && BigInt.asIntN(64, r.value) < 0n && BigInt.asIntN(64, r.value) >= -4095n;
    if (x.success === true) return failedSyscall;
    if (x.success === false) return !failedSyscall;
    return false;
  }

  private where(path: Path): string {
    const i = issueAt(this.c.locator, path, '');
    return i.line !== undefined ? `${i.file}:${i.line}:${i.col}` : i.path;
  }

  /**
   * One verdict per expectation as written, in the file's order (by line and column when the
   * scenario came from a file): the copies a `repeat` unrolled are judged together.
   */
  private opVerdicts(): Verdict[] {
    const groups = new Map<string, { info: OpInfo; x: OpExpectation; count: number; failure?: string; last?: string }>();
    for (const info of this.c.ops.values()) {
      const x = info.expect;
      if (!x) continue;
      const key = pathString(x.path);
      const g = groups.get(key) ?? { info, x, count: 0 };
      groups.set(key, g);
      const r = this.opResults.get(x);
      if (!r) continue;
      g.count += r.count;
      g.last = r.last ?? g.last;
      if (r.failure !== undefined && g.failure === undefined) g.failure = r.failure;
      if (r.pending && r.pending.size > 0 && g.failure === undefined) g.failure = `${[...r.pending.values()][0]}, and never ran again to completion`;
    }
    const order = (g: { x: OpExpectation }): [number, number] => {
      const pos = this.c.locator?.locate(g.x.path);
      return pos ? [pos.line, pos.col] : [0, 0];
    };
    const sorted = [...groups.values()].map((g) => ({ g, at: order(g) })).sort((p, q) => p.at[0] - q.at[0] || p.at[1] - q.at[1]).map((p) => p.g);
    return sorted.map((g) => {
      const base = { kind: 'op' as const, where: this.where(g.x.path), path: pathString(g.x.path), expected: `${g.info.label}: ${g.x.text}`, count: g.count };
      if (g.count === 0 && g.failure === undefined) return { ...base, status: 'not_reached' as const, actual: 'the operation never completed' };
      return { ...base, status: g.failure ? ('failed' as const) : ('held' as const), actual: g.failure ?? `${g.last ?? ''}${g.count > 1 ? ` (all ${g.count} times)` : ''}` };
    });
  }

  /** Records what a thread looks like as it finishes its operations. */
  private onUserEnd(tid: number): void {
    const t = this.sys.task(tid);
    if (!t) return;
    const name = this.name(tid);
    const wanted = this.c.end.memory.filter((m) => m.thread === name);
    const regs = this.c.end.registers.some((r) => r.thread === name);
    const ptes = this.c.end.ptes.filter((e) => e.thread === name);
    const template = this.c.answer?.includes(`{${name}.`) ?? false;
    if (wanted.length === 0 && !regs && ptes.length === 0 && !template) return;
    const snap: Snapshot = { image: t.image, vars: new Map(t.vars), pkru: this.sys.machine.cpus[t.cpu].pkru, memory: [], ptes: [] };
    for (const m of wanted) {
      const addr = this.resolve(m.addr, t.vars, t.image);
      snap.memory.push(addr === undefined ? null : this.sys.readUser(tid, BigInt.asUintN(64, addr), m.size));
    }
    for (const e of ptes) {
      const addr = this.resolve(e.addr, t.vars, t.image);
      snap.ptes.push(addr === undefined ? null : this.sys.pte(tid, BigInt.asUintN(64, addr)));
    }
    this.snapshots.set(name, snap);
  }

  private notReached(name: string): string {
    const tids = [...this.names].filter(([, n]) => n === name).map(([tid]) => tid);
    if (tids.length === 0) return `${name} never ran`;
    const st = this.statusOf(tids[0]);
    const stopped = this.sys.task(tids[0])?.state === 'stopped';
    return `${name} never finished its operations${st !== null ? ` (${formatWaitStatus(st)})` : stopped ? ' (it is stopped: no SIGCONT came)' : ''}`;
  }

  private endVerdicts(): Verdict[] {
    const out: Verdict[] = [];
    const mems = new Map<string, number>();
    for (const m of this.c.end.memory) {
      const i = mems.get(m.thread) ?? 0;
      mems.set(m.thread, i + 1);
      const base = { kind: 'memory' as const, where: this.where(m.path), path: pathString(m.path), expected: m.text };
      const snap = this.snapshots.get(m.thread);
      if (!snap) {
        out.push({ ...base, status: 'not_reached', actual: this.notReached(m.thread) });
        continue;
      }
      const got = snap.memory[i];
      let ok: boolean;
      if (m.mapped === false) ok = got === null;
      else if (m.value) {
        const want = this.resolve(m.value, snap.vars, snap.image);
        ok = got !== null && want !== undefined && got === BigInt.asUintN(8 * m.size, want);
      } else ok = got !== null;
      out.push({ ...base, status: ok ? 'held' : 'failed', actual: got === null ? 'unmapped' : formatValue(got) });
    }
    const pteIndex = new Map<string, number>();
    for (const e of this.c.end.ptes) {
      const i = pteIndex.get(e.thread) ?? 0;
      pteIndex.set(e.thread, i + 1);
      const base = { kind: 'pte' as const, where: this.where(e.path), path: pathString(e.path), expected: e.text };
      const snap = this.snapshots.get(e.thread);
      if (!snap) {
        out.push({ ...base, status: 'not_reached', actual: this.notReached(e.thread) });
        continue;
      }
      const pte = snap.ptes[i];
      const got = pteFields(pte);
      const ok = e.want.every(([f, v]) => got[f] === v);
      out.push({ ...base, status: ok ? 'held' : 'failed', actual: pte === null ? 'no PTE' : describePte(pte.lo, pte.hi) });
    }
    for (const r of this.c.end.registers) {
      const base = { kind: 'registers' as const, where: this.where(r.path), path: pathString(r.path), expected: r.text };
      const snap = this.snapshots.get(r.thread);
      if (!snap) {
        out.push({ ...base, status: 'not_reached', actual: this.notReached(r.thread) });
        continue;
      }
      const wrong: string[] = [];
      const seen: string[] = [];
      if (r.pkru) {
        seen.push(`pkru = 0x${snap.pkru.toString(16)}`);
        const want = this.resolve(r.pkru, snap.vars, snap.image);
        if (want === undefined || BigInt(snap.pkru) !== BigInt.asUintN(32, want)) wrong.push('pkru');
      }
      for (const [n, f] of r.vars) {
        const got = snap.vars.get(n);
        const want = this.resolve(f, snap.vars, snap.image);
        seen.push(`$${n} = ${got === undefined ? 'unset' : formatValue(got)}`);
        if (got === undefined || want === undefined || BigInt.asUintN(64, got) !== BigInt.asUintN(64, want)) wrong.push(n);
      }
      out.push({ ...base, status: wrong.length ? 'failed' : 'held', actual: seen.join(', ') });
    }
    return out;
  }

  /** The wait status of a task that exited (reaped or zombie), or null. */
  private statusOf(tid: number): number | null {
    const s = this.sys.exitStatus(tid);
    if (s !== undefined) return s;
    const t = this.sys.task(tid);
    return t && (t.state === 'zombie' || t.state === 'dead') ? t.exit_code : null;
  }

  private exitVerdicts(): Verdict[] {
    return this.c.end.exit.map((x) => {
      const base = { kind: 'exit' as const, where: this.where(x.path), path: pathString(x.path), expected: `${x.process}: ${x.text}` };
      const tids = [...this.names].filter(([tid, n]) => n === x.process && this.isLeader(tid)).map(([tid]) => tid);
      if (tids.length === 0) return { ...base, status: 'not_reached' as const, actual: `${x.process} never ran` };
      const got: string[] = [];
      let ok = true;
      for (const tid of tids) {
        const st = this.statusOf(tid);
        if (st === null) {
          got.push('still running');
          ok = false;
          continue;
        }
        got.push(formatWaitStatus(st));
        const match = x.signal !== undefined ? (st & 0x7f) === x.signal : (st & 0x7f) === 0 && ((st >> 8) & 0xff) === x.code;
        if (!match) ok = false;
      }
      return { ...base, status: ok ? ('held' as const) : ('failed' as const), actual: got.join(', ') };
    });
  }

  private isLeader(tid: number): boolean {
    const t = this.sys.task(tid);
    return t ? t.isLeader : this.sys.exitStatus(tid) !== undefined;
  }

  private invariantVerdicts(): Verdict[] {
    return this.c.end.invariants.map((x) => {
      const problem = INVARIANTS[x.name].check({ sys: this.sys, bootFrames: this.bootFrames, watched: this.watchers.get(x.name)?.result() ?? null });
      return { kind: 'invariant' as const, where: this.where(x.path), path: pathString(x.path), expected: x.name, status: problem ? ('failed' as const) : ('held' as const), actual: problem ?? 'holds' };
    });
  }

  /** Counts `e` for every `expect.events` item it matches. */
  private countEvent(e: IsolabEvent): void {
    const xs = this.eventExpects;
    for (let i = 0; i < xs.length; i++) {
      const x = xs[i];
      if (x.type !== e.type) continue;
      if (x.cpu !== undefined && eventCpu(e) !== x.cpu) continue;
      if (x.thread !== undefined && this.names.get(eventTid(e)) !== x.thread) continue;
      if (x.filters.every((f) => f.read(e) === f.value)) this.eventCounts[i]++;
    }
  }

  /**
   * The first `expect.events` item whose upper bound (`exactly`, `at_most`) the run has already
   * passed, as a message; null while none has. A lower bound can only be judged at the end.
   */
  eventExcess(): string | null {
    const xs = this.eventExpects;
    for (let i = 0; i < xs.length; i++) {
      if (this.eventCounts[i] > xs[i].max) return `${this.where(xs[i].path)}: expected ${xs[i].text}, counted ${this.eventCounts[i]} so far`;
    }
    return null;
  }

  /** One verdict per `expect.events` item: the count over the whole run against its bounds. */
  private eventVerdicts(): Verdict[] {
    return this.eventExpects.map((x, i) => {
      const n = this.eventCounts[i];
      const ok = n >= x.min && n <= x.max;
      return { kind: 'events' as const, where: this.where(x.path), path: pathString(x.path), expected: `${x.text}${x.note ? `  # ${x.note}` : ''}`, status: ok ? ('held' as const) : ('failed' as const), actual: `${n} event${n === 1 ? '' : 's'}`, count: n };
    });
  }

  private taskSummaries(): TaskSummary[] {
    return [...this.names].map(([tid, name]) => {
      const t = this.sys.task(tid);
      const st = this.statusOf(tid);
      const summary: TaskSummary = { tid, pid: t ? t.tgid : tid, name, exit: st === null ? null : formatWaitStatus(st) };
      if (t && t.state === 'stopped') summary.stopped = true;
      return summary;
    });
  }

  /** Fills `{thread.var}`, `{thread.exit}` and `{counts.<name>}` in the answer. */
  private fillAnswer(text: string): string {
    return text.replace(/\{([A-Za-z][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)\}/g, (whole, thread: string, field: string) => {
      if (thread === 'counts' && field in this.counts) return String(this.counts[field as keyof Counts]);
      if (field === 'exit') {
        const tid = [...this.names].find(([, n]) => n === thread)?.[0];
        const st = tid === undefined ? null : this.statusOf(tid);
        return st === null ? '(still running)' : formatWaitStatus(st);
      }
      const v = this.snapshots.get(thread)?.vars.get(field);
      return v === undefined ? `(${whole.slice(1, -1)} unknown)` : formatValue(v);
    });
  }
}

const hex = formatHex;
