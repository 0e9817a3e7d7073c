/**
 * Random search, for scenarios too big to exhaust: executions from a seeded stream, each step
 * chosen either uniformly among what may run, or by PCT (probabilistic concurrency testing,
 * Burckhardt, Kothari, Musuvathi, Nagarakatte, ASPLOS 2010).
 *
 * PCT gives each CPU a distinct random priority (d, d+1, ..., d+n-1 shuffled), picks d-1 change
 * points among the first k steps, and always runs the enabled CPU of highest priority; at the
 * i-th change point the running CPU's priority drops to i. For a bug of depth d (d ordering
 * constraints between steps) in a program of n threads and at most k steps, one execution finds
 * it with probability at least 1 / (n k^(d-1)); `pctBound` reports that and what N executions
 * give: 1 - (1 - p)^N.
 */
import type { CompiledScenario } from '../scenario/compile.js';
import { shorterSchedule, type Counterexample, type SearchResult, type SearchStats } from './dpor.js';
import { Execution } from './execution.js';
import { drain } from './slices.js';

export interface RandomOptions {
  invariants: string[];
  evictions: number;
  /** Preemption choices per execution (default 0). */
  preemptChoices?: number;
  /** Reclaim passes per execution (default 0). */
  reclaims?: number;
  /** 'uniform' or 'pct'. */
  strategy: 'uniform' | 'pct';
  executions: number;
  seed: number;
  maxDepth: number;
  /** PCT's bug depth d (>= 1). */
  pctDepth: number;
  until?: 'end' | 'ops';
  /** Check every step's footprint against the state (fpcheck.ts). */
  checkFootprints?: boolean;
  stopAtFirst: boolean;
  onExecution?: (stats: SearchStats) => void;
}

/** PCT's guarantee for `n` threads, `k` steps, depth `d`, after `runs` executions. */
export interface PctBound {
  n: number;
  k: number;
  d: number;
  /** Lower bound on the chance one execution finds a given depth-d bug. */
  perExecution: number;
  /** Lower bound after every execution run. */
  overall: number;
}

export function pctBound(n: number, k: number, d: number, runs: number): PctBound {
  const p = 1 / (n * Math.pow(Math.max(k, 1), d - 1));
  return { n, k, d, perExecution: p, overall: 1 - Math.pow(1 - p, runs) };
}

/** mulberry32: a seeded stream of 32-bit numbers (the same generator as System's random schedule). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** Runs the random search to the end and reports. */
export function randomSearch(c: CompiledScenario, o: RandomOptions): SearchResult & { pct?: PctBound } {
  return drain(randomExecutions(c, o));
}

/** The random search, one execution at a time: yields after each, returns the report. */
export function* randomExecutions(c: CompiledScenario, o: RandomOptions): Generator<void, SearchResult & { pct?: PctBound }> {
  const t0 = performance.now();
  const next = rng(o.seed);
  const stats: SearchStats = { executions: 0, complete: 0, sleepBlocked: 0, steps: 0 };
  const violations = new Map<string, Counterexample>();
  const cpus = c.system.cpus ?? 1;
  // k: the longest execution seen; the first PCT execution uses maxDepth or a guess.
  let k = Number.isFinite(o.maxDepth) ? o.maxDepth : 0;
  let bounded = false;
  for (let run = 0; run < o.executions; run++) {
    const exec = new Execution(c, { invariants: o.invariants, evictions: o.evictions, preemptChoices: o.preemptChoices, reclaims: o.reclaims, until: o.until, stopAtFirst: o.stopAtFirst, checkFootprints: o.checkFootprints });
    const prio: number[] = [];
    const change: number[] = [];
    if (o.strategy === 'pct') {
      const order = Array.from({ length: cpus }, (_, i) => i);
      for (let i = order.length - 1; i > 0; i--) {
        const j = next() % (i + 1);
        [order[i], order[j]] = [order[j], order[i]];
      }
      order.forEach((cpu, i) => (prio[cpu] = o.pctDepth + i));
      const span = Math.max(k, 1);
      for (let i = 1; i < o.pctDepth; i++) change.push(1 + (next() % span));
    }
    let steps = 0;
    let ended = false;
    for (;;) {
      if (exec.stopped) break;
      // PCT schedules CPUs only: the choices (evictions, preemptions, reclaims) are uniform's.
      const en = o.strategy === 'uniform' ? exec.enabled() : exec.enabled().filter((q) => q >= 0);
      if (en.length === 0) {
        ended = true;
        break;
      }
      if (steps >= o.maxDepth) {
        bounded = true;
        break;
      }
      let item: number;
      if (o.strategy === 'uniform') item = en[next() % en.length];
      else item = en.reduce((a, b) => (prio[b] > prio[a] ? b : a));
      exec.step(item);
      steps++;
      stats.steps++;
      if (o.strategy === 'pct') {
        const i = change.indexOf(steps);
        if (i >= 0) prio[item] = i + 1;
      }
    }
    if (!exec.stopped && ended) {
      exec.finish();
      stats.complete++;
    }
    k = Math.max(k, steps);
    stats.executions++;
    for (const v of exec.violations) {
      const schedule = exec.schedule.slice(0, v.step);
      const old = violations.get(v.invariant);
      if (!old || shorterSchedule(schedule, old.schedule)) violations.set(v.invariant, { invariant: v.invariant, message: v.message, schedule });
    }
    o.onExecution?.(stats);
    if (exec.violations.length > 0 && o.stopAtFirst) break;
    yield;
  }
  const result: SearchResult & { pct?: PctBound } = {
    ...stats,
    exhaustive: false,
    boundedBy: ['random', ...(bounded ? ['depth'] : [])],
    violations: [...violations.values()],
    elapsedMs: performance.now() - t0,
  };
  if (o.strategy === 'pct') result.pct = pctBound(cpus, k, o.pctDepth, stats.executions);
  return result;
}
