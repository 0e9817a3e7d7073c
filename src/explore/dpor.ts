/**
 * Systematic search: stateless, by replay, reduced by source-set DPOR with sleep sets (Abdulla,
 * Aronis, Jonsson, Sagonas, "Optimal dynamic partial order reduction", POPL 2014, Algorithm 1).
 *
 * The threads are the CPUs (and, with evictions, each "drop TLB slot s of CPU c"; with
 * preemption choices, each "preempt CPU c's task, to CPU d"); a step is
 * one Execution.step. Every execution runs from boot: to try an alternative at depth i the
 * search replays the first i steps and takes the alternative. Happens-before is kept with
 * vector clocks; when a step races with an earlier one (they are dependent, on different
 * threads, and nothing between orders them), the initials of the reversed order are looked up
 * and one is added to the backtrack set of the state before the earlier step, unless one is
 * there already. Sleep sets keep equivalent executions from being completed twice: the number
 * of complete executions is the number of Mazurkiewicz traces (sleep-set-blocked ones are
 * counted apart).
 *
 * Bounds (each makes the search incomplete, and the result says so): a preemption bound (a
 * switch away from a CPU that could have gone on), a depth bound, an execution budget. Eviction
 * and preemption choices are explored at every state where one is possible (each is a thread
 * of its own, not counted against the preemption bound); sleep sets prune them after steps
 * that commute with them.
 *
 * The search's first path (each state's first alternative: the CPU that ran last, if it can go
 * on) is its spine: every state on it tries every awake thread, the first alternative first, so
 * what is explored along it does not depend on what races the subtrees below find. A step that
 * is not its state's first alternative is a branch-off; FULL_LEVELS says how many branch-offs a
 * path may have taken and its states still try every thread. The search is the same with or
 * without shards.
 *
 * Sharding: with `shard`, the subtrees rooted where a path branches off for the `splitDepth`-th
 * time (1 <= splitDepth <= FULL_LEVELS) are numbered in the order the search reaches them, and
 * so is every execution that ends above them; shard i of n takes those whose number is i modulo
 * n. Every shard explores the states above alike (they try every thread), and a subtree's
 * search depends only on the state at its root (the races it finds add alternatives inside it,
 * or above it where they are all tried anyway), so the shards together run exactly the
 * executions of the search without shards, each in one shard. (Not with `stopAtFirst` or an
 * execution budget: those stop each shard on its own.)
 */
import { ArgumentError } from '../errors.js';
import type { CompiledScenario } from '../scenario/compile.js';
import { dependent, Execution, type Step } from './execution.js';
import { drain } from './slices.js';

/**
 * Branch-offs a path may have taken and its states still try every thread (see above): the
 * deepest split depth, and the default one. 1: the first path's states try every thread. (2,
 * every state of the first path of each subtree too, ran 55% more executions on
 * fork-dirty-race with two preemptions, in every shard; one level gave 93 subtrees and ends.)
 */
export const FULL_LEVELS = 1;

export interface SearchOptions {
  invariants: string[];
  /** TLB evictions per execution (0: none). */
  evictions: number;
  /** Preemption choices (System.preempt, with or without a move) per execution (default 0: none). */
  preemptChoices?: number;
  /** Reclaim passes (System.reclaim) per execution (default 0: none). */
  reclaims?: number;
  /** Preemptions per execution (Infinity: no bound). */
  preemptions: number;
  /** Steps per execution (Infinity: no bound). */
  maxDepth: number;
  /** Executions to run at most (Infinity: no budget). */
  maxExecutions: number;
  /** Stop at the first violation. */
  stopAtFirst: boolean;
  /** Where the explored part of each execution ends (execution.ts). Default 'end'. */
  until?: 'end' | 'ops';
  /** Check every recorded step's footprint against the state (fpcheck.ts). */
  checkFootprints?: boolean;
  /** Collect each complete execution's trace fingerprint. */
  fingerprints: boolean;
  /** Search shard `index` of `count`, split where paths branch off for the `splitDepth`-th time (1..FULL_LEVELS). */
  shard?: { index: number; count: number; splitDepth: number };
  /** Called after each execution. */
  onExecution?: (stats: SearchStats) => void;
}

/** A violating schedule. */
export interface Counterexample {
  invariant: string;
  message: string;
  /** The items up to and including the step after which the violation was seen. */
  schedule: number[];
}

export interface SearchStats {
  /** Executions run (complete, sleep-set blocked, stopped by a violation or a bound). */
  executions: number;
  /** Executions that ran until no thread could go on. */
  complete: number;
  sleepBlocked: number;
  /** Steps taken, replays included. */
  steps: number;
  /** Of them, steps re-run from boot to reach a branch point (systematic search only). */
  replayed?: number;
}

export interface SearchResult extends SearchStats {
  /** True when the search covered every trace (no bound cut anything). */
  exhaustive: boolean;
  /** What cut the search short. */
  boundedBy: string[];
  /** The shortest counterexample found for each invariant. */
  violations: Counterexample[];
  /** Trace fingerprints of complete executions (with `fingerprints`). */
  traces?: string[];
  elapsedMs: number;
  /** With `--first` (explore.ts deepening): the preemption bound the deepening reached. */
  preemptionBound?: number;
}

interface Node {
  enabled: number[];
  /** Alternatives to try here; an item stays in once added (done ones included). */
  backtrack: Set<number>;
  done: Set<number>;
  /** The first step of each alternative explored from here. */
  explored: Map<number, Step>;
  sleep: Map<number, Step>;
  preemptions: number;
  /** The item of the step that led here (-Infinity at the root). */
  last: number;
  depth: number;
  /** Steps on the path here that were not their state's first alternative (branch-offs). */
  level: number;
  /** The first alternative tried here. */
  first: number | undefined;
  /** Whether this shard searches the subtree this state is in; undefined above the split. */
  owned: boolean | undefined;
}

interface Ev extends Step {
  /** Dense index of the thread. */
  thread: number;
  /** 1-based position among its thread's steps. */
  tix: number;
  /** Vector clock by dense thread index: how many of each thread's steps happen before (or are) this one. */
  clock: number[];
}

export class DporSearch {
  private readonly nodes: Node[] = [];
  private readonly events: Ev[] = [];
  private readonly dense = new Map<number, number>();
  private readonly items: number[] = [];
  private readonly stats: SearchStats = { executions: 0, complete: 0, sleepBlocked: 0, steps: 0, replayed: 0 };
  private readonly bounded = new Set<string>();
  private readonly violations = new Map<string, Counterexample>();
  private readonly traces = new Set<string>();
  private stop = false;
  /** Subtrees at the split, and executions ended above it, numbered so far. */
  private claimed = 0;

  constructor(private readonly c: CompiledScenario, private readonly o: SearchOptions) {
    const s = o.shard;
    if (s && !(Number.isInteger(s.splitDepth) && s.splitDepth >= 1 && s.splitDepth <= FULL_LEVELS)) throw new ArgumentError('splitDepth', `${s.splitDepth}: the split depth counts branch-offs from the search's first path, from 1 to ${FULL_LEVELS}`);
    if (s && !(Number.isInteger(s.count) && s.count >= 1 && Number.isInteger(s.index) && s.index >= 0 && s.index < s.count)) throw new ArgumentError('shard', `${s.index}/${s.count}: expected i/n with 0 <= i < n`);
  }

  /** Runs the search to the end (or a bound) and reports. */
  run(): SearchResult {
    return drain(this.search());
  }

  /** The search, one execution at a time: yields after each, returns the report. */
  *search(): Generator<void, SearchResult> {
    const t0 = performance.now();
    let exec = this.fresh();
    this.nodes.push(this.makeNode(exec, new Map(), 0, -Infinity, 0, 0, this.o.shard ? undefined : true));
    this.extend(exec);
    yield;
    while (!this.stop) {
      let i = this.nodes.length - 1;
      let pick: number | undefined;
      for (; i >= 0; i--) {
        pick = this.nextAlternative(this.nodes[i]);
        if (pick !== undefined) break;
      }
      if (i < 0 || pick === undefined) break;
      if (this.stats.executions >= this.o.maxExecutions) {
        this.bounded.add('executions');
        break;
      }
      this.nodes.length = i + 1;
      this.events.length = i;
      const owned = this.ownerOf(this.nodes[i], pick);
      if (owned === false && this.passOver(this.nodes[i], pick)) continue;
      exec = this.fresh();
      // The path to the branch point again, each step as it ran the first time (unrecorded, unchecked).
      for (let j = 0; j < i; j++) {
        exec.step(this.events[j].item, this.events[j]);
        this.stats.steps++;
        this.stats.replayed!++;
      }
      exec.resync();
      this.take(exec, i, pick, owned);
      this.extend(exec);
      yield;
    }
    const result: SearchResult = {
      ...this.stats,
      exhaustive: this.bounded.size === 0,
      boundedBy: [...this.bounded],
      violations: [...this.violations.values()],
      elapsedMs: performance.now() - t0,
    };
    if (this.o.fingerprints) result.traces = [...this.traces];
    return result;
  }

  private fresh(): Execution {
    return new Execution(this.c, { invariants: this.o.invariants, evictions: this.o.evictions, preemptChoices: this.o.preemptChoices, reclaims: this.o.reclaims, until: this.o.until, stopAtFirst: this.o.stopAtFirst, checkFootprints: this.o.checkFootprints });
  }

  private denseOf(item: number): number {
    let d = this.dense.get(item);
    if (d === undefined) {
      d = this.items.length;
      this.dense.set(item, d);
      this.items.push(item);
    }
    return d;
  }

  /**
   * A state: what may run, and the first alternatives: the CPU that ran last if it can go on
   * (else the lowest awake one) and every eviction; on a path of fewer than FULL_LEVELS
   * branch-offs, every awake thread after it.
   */
  private makeNode(exec: Execution, sleep: Map<number, Step>, preemptions: number, last: number, depth: number, level: number, owned: boolean | undefined): Node {
    const enabled = exec.enabled();
    const awake = enabled.filter((q) => !sleep.has(q));
    const first = awake.includes(last) ? last : awake.find((q) => q >= 0) ?? awake[0];
    const node: Node = { enabled, backtrack: new Set(), done: new Set(), explored: new Map(), sleep, preemptions, last, depth, level, first, owned };
    if (first !== undefined) node.backtrack.add(first);
    for (const q of awake) if (q < 0 || level < FULL_LEVELS) node.backtrack.add(q);
    return node;
  }

  /**
   * Takes the next number for a subtree at the split, or for an execution that ends above it,
   * and says whether this shard owns it: the number modulo the shard count is the shard's index.
   * Every shard numbers them alike, as every shard explores the levels above the split alike.
   */
  private claim(): boolean {
    const s = this.o.shard!;
    return this.claimed++ % s.count === s.index;
  }

  /** Whether this shard searches below `node`'s step `item`; undefined while above the split. Claims a subtree at the split. */
  private ownerOf(node: Node, item: number): boolean | undefined {
    if (node.owned !== undefined) return node.owned;
    return node.level + (item === node.first ? 0 : 1) === this.o.shard!.splitDepth ? this.claim() : undefined;
  }

  /** Whether this shard records the execution that ends at `node` (above the split: claims it). */
  private records(node: Node): boolean {
    return node.owned ?? this.claim();
  }

  /**
   * Whether `node`'s alternative `item`, which enters a subtree of another shard, can be passed
   * over without running it (then marks it done): nothing tried at `node` after it needs its
   * first step (for a sleep set), and nothing it finds could change the states above (they try
   * every thread).
   */
  private passOver(node: Node, item: number): boolean {
    for (const q of node.backtrack) if (q !== item && !node.done.has(q) && !node.sleep.has(q) && node.enabled.includes(q)) return false;
    node.done.add(item);
    return true;
  }

  /** The next alternative to try at `node`, within the preemption bound. */
  private nextAlternative(node: Node): number | undefined {
    for (const q of node.backtrack) {
      if (node.done.has(q) || node.sleep.has(q)) continue;
      if (!node.enabled.includes(q)) {
        node.done.add(q);
        continue;
      }
      if (this.preempts(node, q) && node.preemptions >= this.o.preemptions) {
        this.bounded.add('preemptions');
        node.done.add(q);
        continue;
      }
      return q;
    }
    return undefined;
  }

  private preempts(node: Node, q: number): boolean {
    return q >= 0 && node.last >= 0 && q !== node.last && node.enabled.includes(node.last);
  }

  /** Takes `item` at state `i`: runs it, finds its races, and makes the next state (`owned` as ownerOf says). */
  private take(exec: Execution, i: number, item: number, owned: boolean | undefined): void {
    const node = this.nodes[i];
    node.done.add(item);
    const step = exec.step(item);
    this.stats.steps++;
    node.explored.set(item, step);
    const d = this.denseOf(item);
    let prev: Ev | undefined;
    for (let j = i - 1; j >= 0; j--) {
      if (this.events[j].thread === d) {
        prev = this.events[j];
        break;
      }
    }
    const clock = prev ? prev.clock.slice() : [];
    while (clock.length <= d) clock.push(0);
    const ev: Ev = { ...step, thread: d, tix: (prev ? prev.tix : 0) + 1, clock };
    clock[d] = ev.tix;
    for (let j = i - 1; j >= 0; j--) {
      const e = this.events[j];
      if (e.thread === d || (clock[e.thread] ?? 0) >= e.tix || !dependent(e, ev)) continue;
      this.race(j, i, ev);
      for (let x = 0; x < e.clock.length; x++) {
        if (x >= clock.length) clock.push(0);
        if (e.clock[x] > clock[x]) clock[x] = e.clock[x];
      }
    }
    this.events[i] = ev;
    const sleep = new Map<number, Step>();
    for (const src of [node.sleep, node.explored]) {
      for (const [q, s] of src) if (q !== item && !dependent(s, step)) sleep.set(q, s);
    }
    this.nodes.push(this.makeNode(exec, sleep, node.preemptions + (this.preempts(node, item) ? 1 : 0), item, i + 1, node.level + (item === node.first ? 0 : 1), owned));
  }

  /** Events j and i race: make sure the state before j tries an initial of notdep(j).i. */
  private race(j: number, i: number, ev: Ev): void {
    const e = this.events[j];
    const v: Ev[] = [];
    for (let k = j + 1; k < i; k++) {
      const x = this.events[k];
      if ((x.clock[e.thread] ?? 0) < e.tix) v.push(x);
    }
    v.push(ev);
    const initials: number[] = [];
    for (let a = 0; a < v.length; a++) {
      const x = v[a];
      let first = true;
      for (let b = 0; b < a && first; b++) if ((x.clock[v[b].thread] ?? 0) >= v[b].tix) first = false;
      if (first) initials.push(this.items[x.thread]);
    }
    const bt = this.nodes[j].backtrack;
    if (initials.some((q) => bt.has(q))) return;
    bt.add(initials.includes(ev.item) ? ev.item : initials[0]);
  }

  /**
   * Runs the execution on from the last state until it ends, is blocked by sleep sets, breaks an
   * invariant or hits a bound; in a subtree another shard takes, stops at once (its root).
   */
  private extend(exec: Execution): void {
    for (;;) {
      const i = this.nodes.length - 1;
      const node = this.nodes[i];
      if (node.owned === false) {
        node.backtrack.clear();
        return;
      }
      if (exec.stopped) {
        if (this.records(node)) this.endExecution(exec, 'violation');
        return;
      }
      if (node.enabled.length === 0) {
        if (!this.records(node)) return;
        exec.finish();
        this.endExecution(exec, 'complete');
        return;
      }
      if (i >= this.o.maxDepth) {
        this.bounded.add('depth');
        if (this.records(node)) this.endExecution(exec, 'bounded');
        return;
      }
      const q = this.nextAlternative(node);
      if (q === undefined) {
        if (!this.records(node)) return;
        if (node.enabled.every((x) => node.sleep.has(x))) {
          this.stats.sleepBlocked++;
          this.stats.executions++;
          this.o.onExecution?.(this.stats);
        } else this.endExecution(exec, 'bounded');
        return;
      }
      this.take(exec, i, q, this.ownerOf(node, q));
    }
  }

  private endExecution(exec: Execution, how: 'complete' | 'violation' | 'bounded'): void {
    this.stats.executions++;
    if (how === 'complete') {
      this.stats.complete++;
      if (this.o.fingerprints) this.traces.add(hash64(this.fingerprint()));
    }
    for (const v of exec.violations) {
      const schedule = exec.schedule.slice(0, v.step);
      const old = this.violations.get(v.invariant);
      if (!old || shorterSchedule(schedule, old.schedule)) this.violations.set(v.invariant, { invariant: v.invariant, message: v.message, schedule });
    }
    if (exec.violations.length > 0 && this.o.stopAtFirst) this.stop = true;
    this.o.onExecution?.(this.stats);
  }

  /**
   * The execution's Mazurkiewicz trace as a string: every step as (thread, position) with the
   * steps of other threads that happen before it. Equal for equivalent executions.
   */
  private fingerprint(): string {
    const rows: string[] = [];
    for (const e of this.events) {
      const deps: string[] = [];
      e.clock.forEach((n, x) => {
        if (n > 0 && x !== e.thread) deps.push(`${this.items[x]}:${n}`);
      });
      rows.push(`${e.item}#${e.tix}<${deps.sort().join(',')}`);
    }
    return rows.sort().join(' ');
  }
}

/**
 * Whether schedule `a` comes before `b`: shorter, or as long and smaller at the first item where
 * they differ. The counterexample kept for an invariant is the first in this order, so it does
 * not depend on the order the executions ran in (or on how the search was sharded).
 */
export function shorterSchedule(a: number[], b: number[]): boolean {
  if (a.length !== b.length) return a.length < b.length;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] < b[i];
  return false;
}

/** FNV-1a over the string's UTF-16 units from offset basis `basis`, as an unsigned 32-bit number. */
export function hashString(s: string, basis = 0x811c9dc5): number {
  let h = basis;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Two FNV-1a hashes with different bases, as 16 hex digits (collisions negligible for millions of traces). */
export function hash64(s: string): string {
  return hashString(s).toString(16).padStart(8, '0') + hashString(s, 0x050c5d1f).toString(16).padStart(8, '0');
}
