/**
 * Systematic search: stateless, by replay, reduced by source-set DPOR with sleep sets (Abdulla,
 * Aronis, Jonsson, Sagonas, "Optimal dynamic partial order reduction", POPL 2014, Algorithm 1).
 *
 * The threads are the CPUs (and, with evictions, each "drop TLB slot s of CPU c"); a step is
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
 * choices are explored at every state where one is possible; sleep sets prune them after steps
 * of other CPUs.
 *
 * Sharding: with `shard`, states shallower than `splitDepth` explore every enabled thread (no
 * reduction there), and each state at `splitDepth` belongs to one shard (a hash of the schedule
 * that reaches it); a shard searches only the subtrees it owns. Races found in a subtree only
 * add alternatives inside it or above the split, where every alternative is explored anyway, so
 * the shards together explore what one search with the same split depth would.
 */
import type { CompiledScenario } from '../scenario/compile.js';
import { dependent, Execution, type Step } from './execution.js';
import { formatSchedule } from './schedule.js';

export interface SearchOptions {
  invariants: string[];
  /** TLB evictions per execution (0: none). */
  evictions: number;
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
  /** Collect each complete execution's trace fingerprint. */
  fingerprints: boolean;
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
  private readonly stats: SearchStats = { executions: 0, complete: 0, sleepBlocked: 0, steps: 0 };
  private readonly bounded = new Set<string>();
  private readonly violations = new Map<string, Counterexample>();
  private readonly traces = new Set<string>();
  private stop = false;

  constructor(private readonly c: CompiledScenario, private readonly o: SearchOptions) {}

  /** Runs the search to the end (or a bound) and reports. */
  run(): SearchResult {
    const t0 = performance.now();
    let exec = this.fresh();
    this.nodes.push(this.makeNode(exec, new Map(), 0, -Infinity, 0));
    this.extend(exec);
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
      exec = this.fresh();
      for (let j = 0; j < i; j++) {
        exec.step(this.events[j].item);
        this.stats.steps++;
      }
      this.take(exec, i, pick);
      this.extend(exec);
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
    return new Execution(this.c, { invariants: this.o.invariants, evictions: this.o.evictions, until: this.o.until });
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

  /** A state: what may run, and the first alternative (the CPU that ran last, if it can go on). */
  private makeNode(exec: Execution, sleep: Map<number, Step>, preemptions: number, last: number, depth: number): Node {
    const enabled = exec.enabled();
    const node: Node = { enabled, backtrack: new Set(), done: new Set(), explored: new Map(), sleep, preemptions, last, depth };
    const awake = enabled.filter((q) => !sleep.has(q));
    const full = this.o.shard !== undefined && depth < this.o.shard.splitDepth;
    if (full) for (const q of awake) node.backtrack.add(q);
    else {
      const first = awake.includes(last) ? last : awake.find((q) => q >= 0) ?? awake[0];
      if (first !== undefined) node.backtrack.add(first);
      for (const q of awake) if (q < 0) node.backtrack.add(q);
    }
    return node;
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

  /** Takes `item` at state `i`: runs it, finds its races, and makes the next state. */
  private take(exec: Execution, i: number, item: number): void {
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
    this.nodes.push(this.makeNode(exec, sleep, node.preemptions + (this.preempts(node, item) ? 1 : 0), item, i + 1));
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

  /** Runs the execution on from the last state until it ends, is blocked by sleep sets, breaks an invariant or hits a bound. */
  private extend(exec: Execution): void {
    for (;;) {
      const i = this.nodes.length - 1;
      const node = this.nodes[i];
      if (exec.violation) {
        this.endExecution(exec, 'violation');
        return;
      }
      if (this.o.shard && i === this.o.shard.splitDepth && !this.owned(exec.schedule)) {
        node.backtrack.clear();
        return;
      }
      if (node.enabled.length === 0) {
        exec.finish();
        if (this.o.shard && i < this.o.shard.splitDepth && !this.owned(exec.schedule)) return;
        this.endExecution(exec, 'complete');
        return;
      }
      if (i >= this.o.maxDepth) {
        this.bounded.add('depth');
        this.endExecution(exec, 'bounded');
        return;
      }
      const q = this.nextAlternative(node);
      if (q === undefined) {
        if (node.enabled.every((x) => node.sleep.has(x))) {
          this.stats.sleepBlocked++;
          this.stats.executions++;
          this.o.onExecution?.(this.stats);
        } else this.endExecution(exec, 'bounded');
        return;
      }
      this.take(exec, i, q);
    }
  }

  private endExecution(exec: Execution, how: 'complete' | 'violation' | 'bounded'): void {
    this.stats.executions++;
    if (how === 'complete') {
      this.stats.complete++;
      if (this.o.fingerprints) this.traces.add(hash64(this.fingerprint()));
    }
    const v = exec.violation;
    if (v) {
      const schedule = exec.schedule.slice(0, v.step);
      const old = this.violations.get(v.invariant);
      if (!old || schedule.length < old.schedule.length) this.violations.set(v.invariant, { invariant: v.invariant, message: v.message, schedule });
      if (this.o.stopAtFirst) this.stop = true;
    }
    this.o.onExecution?.(this.stats);
  }

  /** Whether this shard owns the subtree reached by `schedule`. */
  private owned(schedule: number[]): boolean {
    const s = this.o.shard!;
    return hashString(formatSchedule(schedule)) % s.count === s.index;
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
