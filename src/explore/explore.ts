/**
 * The explorer's entry points: `explore` (systematic or random search of a compiled scenario),
 * `replay` (one schedule, with the invariants checked after every step), `minimise` (fewer
 * context switches in a counterexample, the same violation) and `mergeResults` (shards).
 * `explore` runs the search at once; `exploreInSlices` gives the event loop a turn now and then
 * (slices.ts), for a command that must answer a signal while it searches.
 */
import { ArgumentError } from '../errors.js';
import { resolveKernelOptions, type KernelOptions } from '../kernel/options.js';
import type { CompiledScenario } from '../scenario/compile.js';
import { runScenario, type RunReport } from '../scenario/run.js';
import { EXPLORE_INVARIANTS, type Violation } from './checks.js';
import { DporSearch, shorterSchedule, type Counterexample, type SearchOptions, type SearchResult, type SearchStats } from './dpor.js';
import { Execution } from './execution.js';
import { identityDifference, SearchMismatchError, type SearchIdentity } from './identity.js';
import { randomExecutions, type PctBound } from './random.js';
import { formatSchedule } from './schedule.js';
import { isEviction, isPreemption, isReclaim } from '../system.js';
import { drain, drainInSlices } from './slices.js';

/** Every invariant `--invariants` may name: the built-in ones, 'deadlock' and 'scenario' (the scenario's own expectations). */
export const ALL_INVARIANTS = [...Object.keys(EXPLORE_INVARIANTS), 'deadlock', 'scenario'];

/**
 * Not an invariant but a goal, never on by default: an execution "breaks" `witness` when it ends
 * with every expectation of the scenario held. Its counterexample is a schedule that makes a
 * race scenario's race happen (`isolab explore --witness`).
 */
export const WITNESS = 'witness';

export interface ExploreOptions {
  mode: 'dpor' | 'uniform' | 'pct';
  invariants: string[];
  evictions: number;
  /** Preemption choices the search may insert per execution (`--preempt-choices`; default 0). */
  preemptChoices?: number;
  /** Reclaim passes (kswapd woken on a CPU) the search may insert per execution (`--reclaims`; default 0). */
  reclaims?: number;
  preemptions: number;
  maxDepth: number;
  executions: number;
  seed: number;
  pctDepth: number;
  until: 'end' | 'ops';
  stopAtFirst: boolean;
  fingerprints: boolean;
  shard?: { index: number; count: number; splitDepth: number };
  /** Minimise each counterexample (fewer context switches). Default true. */
  minimise?: boolean;
  /** Check every recorded step's footprint against the state (`--check-footprints`, fpcheck.ts; slow). Default false. */
  checkFootprints?: boolean;
  onExecution?: (stats: SearchStats) => void;
}

export interface ExploreCounterexample extends Counterexample {
  /** The schedule as the search found it, before minimising (what decides which one a merge keeps). */
  found: number[];
  /** The schedule as text (schedule.ts). */
  text: string;
  /** Context switches in the schedule as found, and after minimising. */
  switchesFound: number;
  switches: number;
}

export interface ExploreResult extends Omit<SearchResult, 'violations'> {
  scenario: string;
  mode: ExploreOptions['mode'];
  shard?: { index: number; count: number; splitDepth: number };
  violations: ExploreCounterexample[];
  executionsPerSecond: number;
  stepsPerSecond: number;
  pct?: PctBound;
  /** What search this is (identity.ts): `isolab merge` combines only shards that agree on all of it. */
  search?: SearchIdentity;
}

/** Checks an invariant list against ALL_INVARIANTS; throws ArgumentError naming the unknown one. */
export function checkInvariants(names: string[]): string[] {
  for (const n of names) if (!ALL_INVARIANTS.includes(n) && n !== WITNESS) throw new ArgumentError('invariants', `unknown invariant "${n}"; known: ${ALL_INVARIANTS.join(', ')}`);
  return names;
}

/** Searches the scenario's schedules and reports. */
export function explore(c: CompiledScenario, o: ExploreOptions): ExploreResult {
  return drain(exploreSteps(c, o));
}

/** The same search, giving the event loop a turn about every `sliceMs` milliseconds. */
export function exploreInSlices(c: CompiledScenario, o: ExploreOptions, sliceMs?: number): Promise<ExploreResult> {
  return drainInSlices(exploreSteps(c, o), sliceMs);
}

/** The search, yielding after each execution and each minimised counterexample; returns the report. */
function* exploreSteps(c: CompiledScenario, o: ExploreOptions): Generator<void, ExploreResult> {
  checkInvariants(o.invariants);
  if (o.mode === 'pct' && (o.evictions > 0 || (o.preemptChoices ?? 0) > 0 || (o.reclaims ?? 0) > 0)) {
    throw new ArgumentError('mode', 'pct schedules CPUs by priority only: --evict, --preempt-choices and --reclaims need --mode uniform or dpor');
  }
  const r: SearchResult & { pct?: PctBound } =
    o.mode === 'dpor'
      ? o.stopAtFirst && o.preemptions > 0
        ? yield* deepening(c, o)
        : yield* new DporSearch(c, dporOptions(o, o.preemptions, o.executions, o.onExecution)).search()
      : yield* randomExecutions(c, { invariants: o.invariants, evictions: o.evictions, preemptChoices: o.preemptChoices, reclaims: o.reclaims, strategy: o.mode, executions: o.executions, seed: o.seed, maxDepth: o.maxDepth, pctDepth: o.pctDepth, until: o.until, stopAtFirst: o.stopAtFirst, checkFootprints: o.checkFootprints, onExecution: o.onExecution });
  const violations: ExploreCounterexample[] = [];
  for (const v of r.violations) {
    const found = switches(v.schedule);
    const schedule = o.minimise === false ? v.schedule : minimise(c, v, o);
    violations.push({ ...v, found: v.schedule, schedule, text: formatSchedule(schedule), switchesFound: found, switches: switches(schedule) });
    yield;
  }
  const secs = r.elapsedMs / 1000;
  return {
    ...r,
    scenario: c.name,
    mode: o.mode,
    ...(o.shard ? { shard: o.shard } : {}),
    violations: violations.sort((a, b) => a.schedule.length - b.schedule.length),
    executionsPerSecond: secs > 0 ? r.executions / secs : 0,
    stepsPerSecond: secs > 0 ? r.steps / secs : 0,
  };
}

/** DporSearch's options for `o` with preemption bound `preemptions` and execution budget `executions`. */
function dporOptions(o: ExploreOptions, preemptions: number, executions: number, onExecution: ExploreOptions['onExecution']): SearchOptions {
  return { invariants: o.invariants, evictions: o.evictions, preemptChoices: o.preemptChoices, reclaims: o.reclaims, preemptions, maxDepth: o.maxDepth, maxExecutions: executions, stopAtFirst: o.stopAtFirst, fingerprints: o.fingerprints, until: o.until, shard: o.shard, checkFootprints: o.checkFootprints, onExecution };
}

/**
 * A systematic search for a first counterexample (`--first`), by iterative deepening of the
 * preemption bound (as CHESS does): bound 0, then 1, 2, ... up to `--preemptions`, each a
 * whole DPOR search, until one finds a violation, or a search is not cut by its bound (it was
 * then the whole search, with nothing found), or the execution budget is spent. Bugs that need
 * few preemptions are found after few executions. The counts add up over the searches; the
 * result says the bound reached (`preemptionBound`).
 */
function* deepening(c: CompiledScenario, o: ExploreOptions): Generator<void, SearchResult> {
  const total: SearchStats = { executions: 0, complete: 0, sleepBlocked: 0, steps: 0, replayed: 0 };
  let elapsedMs = 0;
  for (let bound = 0; ; bound++) {
    const base = { ...total };
    const onExecution = o.onExecution && ((s: SearchStats): void => o.onExecution!({ executions: base.executions + s.executions, complete: base.complete + s.complete, sleepBlocked: base.sleepBlocked + s.sleepBlocked, steps: base.steps + s.steps, replayed: base.replayed! + (s.replayed ?? 0) }));
    const r = yield* new DporSearch(c, dporOptions(o, bound, o.executions - total.executions, onExecution)).search();
    total.executions += r.executions;
    total.complete += r.complete;
    total.sleepBlocked += r.sleepBlocked;
    total.steps += r.steps;
    total.replayed! += r.replayed ?? 0;
    elapsedMs += r.elapsedMs;
    const cut = r.boundedBy.includes('preemptions');
    if (r.violations.length > 0 || !cut || bound >= o.preemptions || r.boundedBy.includes('executions')) {
      return { ...r, ...total, elapsedMs, preemptionBound: bound };
    }
  }
}

/** Context switches in a schedule: places where the next item differs from the one before. */
export function switches(schedule: number[]): number {
  let n = 0;
  for (let i = 1; i < schedule.length; i++) if (schedule[i] !== schedule[i - 1]) n++;
  return n;
}

/** What replaying a schedule gave. */
export interface ReplayResult {
  /** The first violation, with the step after which it showed, or null. */
  violation: (Violation & { step: number }) | null;
  /** Every invariant the replay broke, in order, each once with its step. */
  violations: (Violation & { step: number })[];
  /** The step (1-based) at which the schedule named a CPU with nothing to do, or 0. */
  stuckAt: number;
  report: RunReport;
}

/**
 * Runs `schedule` step by step with the invariants checked after each step; with `complete`,
 * goes on after it (the first CPU that can run, in order) until nothing can. A schedule that
 * names a CPU with nothing to do stops there (`stuckAt`). The replay goes on past a violation
 * (each invariant is reported once), except past a debug check's report. `onStart` sees the
 * execution before its first step, `onStep` after each (isolab see records the state there).
 */
export function replay(
  c: CompiledScenario,
  schedule: number[],
  o: { invariants: string[]; record?: boolean; complete?: boolean; until?: 'end' | 'ops'; onStart?: (exec: Execution) => void; onStep?: (exec: Execution, item: number) => void },
): ReplayResult {
  checkInvariants(o.invariants);
  const exec = new Execution(c, { invariants: o.invariants, ...choicesIn(schedule), record: o.record, until: o.until });
  o.onStart?.(exec);
  let stuckAt = 0;
  for (let i = 0; i < schedule.length && !exec.stopped; i++) {
    if (!exec.enabled().includes(schedule[i])) {
      stuckAt = i + 1;
      break;
    }
    exec.step(schedule[i]);
    o.onStep?.(exec, schedule[i]);
  }
  if (o.complete && !stuckAt) {
    for (;;) {
      if (exec.stopped) break;
      const en = exec.enabled().filter((x) => x >= 0);
      if (en.length === 0) break;
      exec.step(en[0]);
      o.onStep?.(exec, en[0]);
    }
  }
  const report = exec.finish();
  return { violation: exec.violation, violations: exec.violations, stuckAt, report };
}

/** The evictions, preemption and reclaim choices a schedule takes: what an Execution replaying it must allow. */
function choicesIn(schedule: number[]): { evictions: number; preemptChoices: number; reclaims: number } {
  return { evictions: schedule.filter(isEviction).length, preemptChoices: schedule.filter(isPreemption).length, reclaims: schedule.filter(isReclaim).length };
}

/**
 * The shortest start of `schedule` that, as the scenario's `schedule.steps` (the scenario's
 * policy running the rest, as `isolab run --schedule` does), makes every expectation hold; or
 * null when not even the whole schedule does. For a witness: what to write in the scenario.
 */
export function shortestPassingPrefix(c: CompiledScenario, schedule: number[]): number[] | null {
  for (let n = 0; n <= schedule.length; n++) {
    const prefix = schedule.slice(0, n);
    if (runScenario(c, { schedule: prefix }).passed) return prefix;
  }
  return null;
}

/** Whether `schedule`, replayed, still breaks `invariant` (within the schedule). */
function stillViolates(c: CompiledScenario, schedule: number[], invariant: string, o: ExploreOptions): boolean {
  const exec = new Execution(c, { invariants: o.invariants, ...choicesIn(schedule), until: o.until });
  for (const item of schedule) {
    if (exec.broke(invariant) || exec.stopped) break;
    if (!exec.enabled().includes(item)) return false;
    exec.step(item);
  }
  if (!exec.broke(invariant) && !exec.stopped && exec.enabled().length === 0) exec.finish();
  return exec.broke(invariant);
}

/**
 * Fewer context switches, the same violation: repeatedly tries to move a block of one CPU's
 * steps to join that CPU's previous block (the steps between run after it), keeping the change
 * when the replay still breaks the invariant, until no move helps or 300 replays are spent.
 * Then cuts the schedule where the violation now shows.
 */
export function minimise(c: CompiledScenario, v: Counterexample, o: ExploreOptions): number[] {
  let best = v.schedule.slice();
  let budget = 300;
  let improved = true;
  while (improved && budget > 0) {
    improved = false;
    const blocks = toBlocks(best);
    for (let b = 2; b < blocks.length && budget > 0; b++) {
      const prev = blocks.slice(0, b - 1).map((x) => x.item).lastIndexOf(blocks[b].item);
      if (prev < 0) continue;
      const moved = [...blocks.slice(0, prev + 1), blocks[b], ...blocks.slice(prev + 1, b), ...blocks.slice(b + 1)];
      const candidate = moved.flatMap((x) => Array<number>(x.count).fill(x.item));
      budget--;
      if (switches(candidate) < switches(best) && stillViolates(c, candidate, v.invariant, o)) {
        best = candidate;
        improved = true;
        break;
      }
    }
  }
  const cut = replay(c, best, { invariants: o.invariants, until: o.until });
  const hit = cut.violations.find((x) => x.invariant === v.invariant);
  return hit ? best.slice(0, hit.step) : best;
}

function toBlocks(s: number[]): { item: number; count: number }[] {
  const out: { item: number; count: number }[] = [];
  for (const x of s) {
    const last = out[out.length - 1];
    if (last && last.item === x) last.count++;
    else out.push({ item: x, count: 1 });
  }
  return out;
}

/**
 * Combines shard results: counts add up; the search is exhaustive when every shard of 0..n-1
 * is there and each was; the counterexample kept per invariant is the one a single search
 * would keep (dpor.ts shorterSchedule, on the schedules as found); trace fingerprints are
 * united (complete executions then counts the distinct ones). Throws SearchMismatchError when
 * two results are not shards of one search (identity.ts: they differ in a field, or one says
 * what search it is and another does not), ArgumentError when a shard appears twice. `names`
 * (the files the results came from) are for the messages.
 */
export function mergeResults(parts: ExploreResult[], names: string[] = parts.map((_, i) => `result ${i + 1}`)): ExploreResult {
  if (parts.length === 0) throw new ArgumentError('results', 'nothing to merge');
  const first = parts[0];
  const seen = new Set<number>();
  for (const [k, p] of parts.entries()) {
    const diff = identityDifference(first, p);
    if (diff) throw new SearchMismatchError(diff.field, names[0], names[k], diff.first, diff.other);
  }
  const count = first.shard?.count ?? 1;
  for (const p of parts) {
    const i = p.shard?.index ?? 0;
    if (seen.has(i)) throw new ArgumentError('results', `shard ${i}/${count} appears twice`);
    seen.add(i);
  }
  const missing = Array.from({ length: count }, (_, i) => i).filter((i) => !seen.has(i));
  const byInv = new Map<string, ExploreCounterexample>();
  for (const p of parts) for (const v of p.violations) {
    const old = byInv.get(v.invariant);
    if (!old || shorterSchedule(v.found ?? v.schedule, old.found ?? old.schedule)) byInv.set(v.invariant, v);
  }
  const traces = parts.every((p) => p.traces) ? [...new Set(parts.flatMap((p) => p.traces!))] : undefined;
  const sum = (f: (p: ExploreResult) => number): number => parts.reduce((a, p) => a + f(p), 0);
  const elapsedMs = Math.max(...parts.map((p) => p.elapsedMs));
  const executions = sum((p) => p.executions);
  const steps = sum((p) => p.steps);
  const boundedBy = [...new Set([...parts.flatMap((p) => p.boundedBy), ...(missing.length ? [`missing shards ${missing.join(',')}`] : [])])];
  return {
    scenario: first.scenario,
    mode: first.mode,
    executions,
    complete: traces ? traces.length : sum((p) => p.complete),
    sleepBlocked: sum((p) => p.sleepBlocked),
    ...(parts.every((p) => p.replayed !== undefined) ? { replayed: sum((p) => p.replayed ?? 0) } : {}),
    steps,
    exhaustive: boundedBy.length === 0 && parts.every((p) => p.exhaustive),
    boundedBy,
    violations: [...byInv.values()].sort((a, b) => a.schedule.length - b.schedule.length),
    ...(traces ? { traces } : {}),
    elapsedMs,
    executionsPerSecond: elapsedMs > 0 ? executions / (elapsedMs / 1000) : 0,
    stepsPerSecond: elapsedMs > 0 ? steps / (elapsedMs / 1000) : 0,
    ...(first.search ? { search: first.search } : {}),
  };
}

/**
 * The scenario with kernel options replaced, from `key=value` texts (numbers and true/false
 * converted); throws ConfigError naming a bad key or value.
 */
export function withKernelOptions(c: CompiledScenario, settings: string[]): CompiledScenario {
  if (settings.length === 0) return c;
  const kernel: Record<string, unknown> = { ...(c.system.kernel ?? {}) };
  for (const s of settings) {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new ArgumentError('kernel', `"${s}": expected key=value`);
    const raw = s.slice(eq + 1);
    kernel[s.slice(0, eq)] = /^\d+$/.test(raw) ? Number(raw) : raw === 'true' ? true : raw === 'false' ? false : raw;
  }
  resolveKernelOptions(kernel as Partial<KernelOptions>);
  return { ...c, system: { ...c.system, kernel: kernel as Partial<KernelOptions> } };
}
