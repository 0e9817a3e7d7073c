/**
 * Records one run of a scenario for `isolab see`: after every step, the state the page shows
 * (CPUs' registers, TLB entries, tasks, address spaces, the page-table entries reachable from
 * each live mm's roots), kept as keyframes and per-step deltas (types.ts), and every event of
 * the step in words (words.ts).
 *
 * The run is the one `isolab run` makes (the scenario's policy, after `--schedule`'s items), or
 * with `invariants` the one `isolab replay` makes (explore.ts's `replay`: the schedule's items
 * one by one, the invariants checked after each step, the first broken one reported with its
 * step). Everything is read through the System's introspection; nothing here changes the model.
 *
 * Cost: page-table frames are compared whole with the copy taken at the last step (a memcmp of
 * 4 KiB) and decoded again only when they differ; TLB entries are read again only on a CPU whose
 * TLB an event of the step touched, or when page tables, CR3 or the set of mms changed (an
 * entry's staleness depends on them).
 */
import { nextTableFrame } from '../hw/pte.js';
import { R_DIRTY, R_USER, R_WRITE, R_XD } from '../hw/rights.js';
import { replay } from '../explore/explore.js';
import { formatSchedule } from '../explore/schedule.js';
import type { Execution } from '../explore/execution.js';
import type { CompiledScenario } from '../scenario/compile.js';
import { Runner, type RunReport, type TimelineEntry } from '../scenario/run.js';
import type { IsolabEvent, MmInfo, System } from '../system.js';
import { cpuOf } from '../trace/record.js';
import { PTE_BITS } from './bits.js';
import { describe, hex } from './words.js';
import { RECORDING_FORMAT, type CpuView, type Delta, type MmView, type Recording, type SeeEvent, type State, type StateValue, type StepView, type TaskView, type TlbView } from './types.js';

export interface RecordOptions {
  /** Items to take first (explorer notation, parsed), then the scenario's policy (or, with `invariants`, nothing more unless `complete`). */
  schedule?: number[];
  /** The seed of the scenario's random policy. */
  seed?: number;
  /** At most this many steps (default: the scenario's maxSteps). */
  maxSteps?: number;
  /** Replay `schedule` as `isolab replay` does, checking these invariants after each step. */
  invariants?: string[];
  /** With `invariants`: after the schedule, run on (lowest CPU first) until nothing can. */
  complete?: boolean;
  /** With `invariants`: as the search that found the schedule (`isolab explore --until`). */
  until?: 'end' | 'ops';
  /** A keyframe every this many steps (default 1000). */
  keyframeEvery?: number;
}

/** The cached copy of a page-table frame: its words at the last step, its level, and the frames its entries point at. */
interface FrameCopy {
  words: Uint32Array;
  bytes: Buffer;
  level: number;
  children: number[];
  seen: number;
}

const ZERO_FRAME = new Uint32Array(1024);

/** Builds the recording while the run goes; `capture` after each step. */
class Recorder {
  /** The state now, and each value's JSON (to tell a change). */
  private readonly state = new Map<string, StateValue>();
  private readonly json = new Map<string, string>();
  readonly keyframes: State[] = [];
  readonly deltas: Delta[][] = [];
  readonly stepViews: StepView[] = [];
  readonly events: SeeEvent[] = [];
  /** Each user operation that completed, in order: `task: fn[index] op` (with ` #n` from its second run on), and its step. */
  readonly ops: { key: string; step: number }[] = [];
  private readonly opRuns = new Map<string, number>();
  /** Each task's last syscall_enter: the name of a syscall operation. */
  private readonly lastSyscall = new Map<number, string>();
  private readonly frames = new Map<number, FrameCopy>();
  private visit = 0;
  /** What the step's events touched: the TLBs of these CPUs, or every CPU's (page tables, CR3 or the mms changed). */
  private readonly tlbTouched = new Set<number>();
  private allTlbs = true;
  private stepFirst = 0;
  private timelineSeen = 0;
  private readonly levels: number;
  /** Whether some mm had PTI's user copy at some step. */
  private ptiSeen = false;

  constructor(
    private readonly sys: System,
    private readonly runner: Runner,
    private readonly keyframeEvery: number,
  ) {
    this.levels = sys.machine.cpus[0].pagingLevels;
  }

  /** The machine and kernel the run booted. */
  machine(): Recording['machine'] {
    const kernel: Record<string, string | number | boolean> = {};
    for (const [k, v] of Object.entries(this.sys.kernelOptions)) if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') kernel[k] = v;
    return { cpus: this.sys.machine.cpus.length, levels: this.levels, pcid: this.sys.cpuInfo(0).pcid, pti: this.ptiSeen, kernel };
  }

  /** Starts listening to the events (after the runner, whose timeline gives an operation's words). */
  listen(): () => void {
    return this.sys.events.subscribe((e) => this.onEvent(e));
  }

  private onEvent(e: IsolabEvent): void {
    const step = this.deltas.length + 1;
    const tl = this.runner.timelineSoFar;
    let fresh: TimelineEntry | null = null;
    if (tl.length > this.timelineSeen) {
      fresh = tl[tl.length - 1];
      this.timelineSeen = tl.length;
    }
    switch (e.type) {
      case 'tlb_fill':
      case 'tlb_flush':
      case 'ad_set':
        this.tlbTouched.add(e.cpu);
        break;
      // What a TLB entry's judgement depends on besides the page tables: the ASIDs' owners and
      // generations, the loaded mm and lazy mode, the set of live mms.
      case 'switch_mm':
      case 'context_switch':
      case 'tlb_shootdown':
      case 'flush_tlb_func':
      case 'fork':
      case 'exec':
      case 'exit':
        this.allTlbs = true;
        break;
    }
    const cpu = cpuOf(e);
    if (e.type === 'syscall_enter') this.lastSyscall.set(e.tid, e.name);
    if (e.type === 'op') {
      const r = e.record;
      // A syscall operation by the syscall it made (the last one its task entered).
      const op = r.op === 'syscall' ? this.lastSyscall.get(r.tid) ?? r.op : r.op;
      const base = `${this.runner.nameOf(r.tid)}: ${r.fn}[${r.index}] ${op}`;
      const n = (this.opRuns.get(base) ?? 0) + 1;
      this.opRuns.set(base, n);
      this.ops.push({ key: n === 1 ? base : `${base} #${n}`, step });
    }
    if (e.type === 'op' && fresh) {
      this.events.push({ step, cpu, tid: fresh.tid, type: e.type, kind: fresh.kind, text: `${fresh.task ? `${fresh.task}: ` : ''}${fresh.text}` });
      return;
    }
    const d = describe(e, (tid) => (tid === 0 ? 'idle' : this.runner.nameOf(tid)));
    if (d) this.events.push({ step, cpu, tid: e.tid, type: e.type, kind: d.kind, text: d.text });
  }

  /** The state after the step just taken (or at the start, before any step), and the step's view. */
  capture(stepCpu: number, what: string): void {
    const delta: Delta[] = [];
    const mms = this.sys.mms();
    const ptChanged = this.pageTables(delta, mms);
    if (ptChanged) this.allTlbs = true;
    const sets = this.keySets;
    const now = new Map<string, StateValue>();
    this.cpus(now, mms);
    this.tasks(now);
    this.mms(now, mms);
    this.merge(delta, now, sets.other);
    const cpus = this.sys.machine.cpus.length;
    for (let cpu = 0; cpu < cpus; cpu++) {
      if (!this.allTlbs && !this.tlbTouched.has(cpu)) continue;
      const tlb = new Map<string, StateValue>();
      this.tlb(cpu, tlb);
      this.merge(delta, tlb, (sets.tlb[cpu] ??= new Set()));
    }
    const step = this.keyframes.length === 0 ? 0 : this.deltas.length + 1;
    if (step > 0) {
      this.deltas.push(delta);
      let cpu = stepCpu;
      if (cpu < 0) {
        // A policy step: the CPU its events name, or -1 for a round of every CPU.
        for (let i = this.stepFirst; i < this.events.length; i++) {
          const c = this.events[i].cpu;
          if (cpu < 0) cpu = c;
          else if (c !== cpu) {
            cpu = -1;
            break;
          }
        }
      }
      this.stepViews.push({ cpu, tid: this.events[this.stepFirst]?.tid ?? 0, first: this.stepFirst, count: this.events.length - this.stepFirst, what });
    } else {
      // Events before the first step (the processes' start) belong to step 0: none are kept.
      this.events.length = 0;
    }
    this.stepFirst = this.events.length;
    if (step % this.keyframeEvery === 0) this.keyframes.push(Object.fromEntries(this.state));
    this.tlbTouched.clear();
    this.allTlbs = false;
  }

  /** The keys of each group of values read again whole at a step: CPUs, tasks and mms; each CPU's TLB. */
  private readonly keySets = { other: new Set<string>(), tlb: [] as Set<string>[] };

  /** Puts the values of a group read again (`now`) into the state and `delta`; a key of the group's last reading missing from `now` is removed. */
  private merge(delta: Delta[], now: Map<string, StateValue>, keys: Set<string>): void {
    for (const [key, value] of now) {
      const j = typeof value === 'string' ? value : JSON.stringify(value);
      if (this.json.get(key) === j) continue;
      this.json.set(key, j);
      this.state.set(key, value);
      delta.push([key, value]);
    }
    for (const key of keys) {
      if (now.has(key)) continue;
      keys.delete(key);
      this.state.delete(key);
      this.json.delete(key);
      delta.push([key, null]);
    }
    for (const key of now.keys()) keys.add(key);
  }

  /**
   * The entries of every page-table frame reachable from a live mm's roots, into `delta`
   * directly: a frame equal to its copy of the last step adds nothing; a changed one adds its
   * changed entries; a frame no longer reachable removes its entries. Whether any changed.
   */
  private pageTables(delta: Delta[], mms: readonly MmInfo[]): boolean {
    const seen = ++this.visit;
    let changed = false;
    const walk = (pfn: number, level: number): void => {
      const f = this.frames.get(pfn);
      if (f && f.seen === seen) return;
      const words = this.sys.frameWords(pfn) ?? ZERO_FRAME;
      const bytes = Buffer.from(words.buffer, words.byteOffset, 4096);
      if (f && f.level === level && bytes.equals(f.bytes)) {
        f.seen = seen;
        for (const child of f.children) walk(child, level - 1);
        return;
      }
      changed = true;
      const old = f ? f.words : ZERO_FRAME;
      const copy = new Uint32Array(words);
      const g: FrameCopy = { words: copy, bytes: Buffer.from(copy.buffer), level, children: [], seen };
      for (let i = 0; i < 512; i++) {
        const lo = copy[2 * i];
        const hi = copy[2 * i + 1];
        if (lo !== old[2 * i] || hi !== old[2 * i + 1]) this.set(delta, `pt:${pfn}:${i}`, lo === 0 && hi === 0 ? null : word64(lo, hi));
        if (lo === 0 && hi === 0) continue;
        const next = nextTableFrame(lo, hi, level);
        if (next >= 0) g.children.push(next);
      }
      this.frames.set(pfn, g);
      for (const child of g.children) walk(child, level - 1);
    };
    for (const mm of mms) {
      walk(mm.pgd, this.levels);
      if (mm.userPgd >= 0) walk(mm.userPgd, this.levels);
    }
    for (const [pfn, f] of this.frames) {
      if (f.seen === seen) continue;
      this.frames.delete(pfn);
      changed = true;
      for (let i = 0; i < 512; i++) if (f.words[2 * i] !== 0 || f.words[2 * i + 1] !== 0) this.set(delta, `pt:${pfn}:${i}`, null);
    }
    return changed;
  }

  /** Records a change of `key` in the state and in the step's delta. */
  private set(delta: Delta[], key: string, value: string | null): void {
    if (value === null) {
      if (!this.state.delete(key)) return;
      this.json.delete(key);
    } else {
      this.state.set(key, value);
      this.json.set(key, value);
    }
    delta.push([key, value]);
  }

  private cpus(now: Map<string, StateValue>, mms: readonly MmInfo[]): void {
    const sys = this.sys;
    const roots = new Map<number, { mm: number; copy: 'kernel' | 'user' }>();
    for (const mm of mms) {
      roots.set(mm.pgd, { mm: mm.id, copy: 'kernel' });
      if (mm.userPgd >= 0) roots.set(mm.userPgd, { mm: mm.id, copy: 'user' });
    }
    sys.machine.cpus.forEach((c, cpu) => {
      const info = sys.cpuInfo(cpu);
      const pgd = (c.cr3Hi & 0xfffff) * 1048576 + (c.cr3Lo >>> 12);
      const root = roots.get(pgd);
      const v: CpuView = {
        cpu,
        cpl: c.cpl,
        cr3: word64(c.cr3Lo, c.cr3Hi),
        pgd,
        pcid: c.pcid,
        copy: root ? root.copy : null,
        mm: root ? root.mm : null,
        pkru: (c.pkru >>> 0).toString(16).padStart(8, '0'),
        current: info.current,
        mode: info.current === 0 ? 'idle' : info.kernel ?? (c.cpl === 3 ? 'user' : 'kernel'),
        ipis: info.ipis,
        lazy: info.lazy,
      };
      now.set(`cpu:${cpu}`, v);
    });
  }

  private tasks(now: Map<string, StateValue>): void {
    for (const t of this.sys.tasks()) {
      if (t.state === 'dead') continue;
      const v: TaskView = { tid: t.tid, pid: t.pid, name: this.runner.nameOf(t.tid), state: t.state, cpu: t.cpu, mm: t.mm, image: t.image, kernel: t.kernel };
      now.set(`task:${t.tid}`, v);
    }
  }

  private mms(now: Map<string, StateValue>, mms: readonly MmInfo[]): void {
    for (const mm of mms) {
      if (mm.userPgd >= 0) this.ptiSeen = true;
      const v: MmView = {
        id: mm.id,
        tids: [...mm.tids],
        tlbGen: mm.tlbGen,
        pgd: mm.pgd,
        userPgd: mm.userPgd >= 0 ? mm.userPgd : null,
        vmas: this.sys.maps(mm.tids[0]).map((m) => ({ start: hex(m.start), end: hex(m.end), perms: m.perms, pkey: m.pkey, name: m.name, shadowStack: m.shadowStack })),
      };
      now.set(`mm:${mm.id}`, v);
    }
  }

  /** CPU `cpu`'s live TLB entries, each judged against its page tables. */
  private tlb(cpu: number, now: Map<string, StateValue>): void {
    const judge = this.sys.tlbJudge(cpu);
    for (const en of this.sys.machine.cpus[cpu].tlb.entries()) {
      const j = judge(en);
      const v: TlbView = {
        cpu,
        slot: en.slot,
        va: hex(en.laHi * 2 ** 32 + en.laLo),
        pageShift: en.pageShift,
        pfn: en.pfn,
        pcid: en.pcid,
        global: en.global,
        write: (en.rights & R_WRITE) !== 0,
        user: (en.rights & R_USER) !== 0,
        nx: (en.rights & R_XD) !== 0,
        dirty: (en.rights & R_DIRTY) !== 0,
        pkey: en.pkey,
        stale: j && j.why ? (j.pending ? `${j.why} (mm ${j.mm}'s ASID is flushed before it runs here again)` : j.why) : null,
      };
      now.set(`tlb:${cpu}:${en.slot}`, v);
    }
  }
}

/** A 64-bit word as 16 hex digits. */
function word64(lo: number, hi: number): string {
  return (hi >>> 0).toString(16).padStart(8, '0') + (lo >>> 0).toString(16).padStart(8, '0');
}

/** Records a run of `c` (RecordOptions say which). */
export function recordScenario(c: CompiledScenario, o: RecordOptions = {}): Recording {
  return recordRun(c, o).recording;
}

/** Records a run of `c`, with the user operations it completed and their steps (for aligning runs). */
export function recordRun(c: CompiledScenario, o: RecordOptions = {}): { recording: Recording; ops: { key: string; step: number }[] } {
  const every = o.keyframeEvery ?? 1000;
  const max = o.maxSteps ?? c.maxSteps;
  let rec: Recorder | null = null;
  let stop = (): void => {};
  let report: RunReport;
  let violation: Recording['violation'] = null;
  let policy: string = c.policy;
  const seed = o.seed ?? c.seed;
  if (o.invariants) {
    policy = 'replay';
    const r = replay(c, o.schedule ?? [], {
      invariants: o.invariants,
      complete: o.complete,
      until: o.until,
      onStart: (exec: Execution) => {
        rec = new Recorder(exec.sys, exec.runner, every);
        stop = rec.listen();
        rec.capture(-1, 'start');
      },
      onStep: (exec: Execution, item: number) => {
        rec!.capture(item >= 0 ? item : -1, formatSchedule([item]));
        const v = exec.violation;
        if (v && !violation) violation = { invariant: v.invariant, message: v.message, step: rec!.deltas.length };
      },
    });
    stop();
    report = r.report;
  } else {
    const runner = new Runner(c, { seed: o.seed, schedule: o.schedule });
    const sys = runner.sys;
    runner.begin();
    const recorder = new Recorder(sys, runner, every);
    rec = recorder;
    stop = recorder.listen();
    recorder.capture(-1, 'start');
    const scripted = o.schedule?.length ?? 0;
    for (let n = 0; n < max; n++) {
      const item = n < scripted ? o.schedule![n] : -1;
      if (!sys.step()) break;
      recorder.capture(item >= 0 ? item : -1, n < scripted ? formatSchedule([o.schedule![n]]) : policy);
    }
    stop();
    report = runner.finish();
  }
  const r: Recorder = rec!;
  const recording: Recording = {
    format: RECORDING_FORMAT,
    scenario: { name: c.name, ...(c.locator?.file ? { file: c.locator.file } : {}), ...(c.question ? { question: c.question } : {}), ...(c.description ? { description: c.description } : {}) },
    machine: r.machine(),
    schedule: { text: formatSchedule(o.schedule ?? []), policy, seed },
    steps: r.deltas.length,
    stepViews: r.stepViews,
    events: r.events,
    keyframeEvery: every,
    keyframes: r.keyframes,
    deltas: r.deltas,
    invariants: o.invariants ?? [],
    violation,
    passed: report.passed,
    finished: report.finished,
    bits: [...PTE_BITS],
  };
  return { recording, ops: r.ops };
}
