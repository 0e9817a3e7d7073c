/**
 * `isolab explore FILE`, `isolab replay FILE --schedule S` and `isolab merge FILES...`: the
 * explorer's commands. Exit 0 when no invariant broke, 1 when one did, 2 on bad input, 130 or
 * 143 when SIGINT or SIGTERM ends a search (nothing written then).
 */
import { readFileSync } from 'node:fs';
import cliProgress from 'cli-progress';
import { ArgumentError } from '../errors.js';
import { compileScenarioFile } from '../scenario/index.js';
import type { TimelineEntry } from '../scenario/run.js';
import type { SearchStats } from '../explore/dpor.js';
import { FULL_LEVELS } from '../explore/dpor.js';
import { ALL_INVARIANTS, WITNESS, checkInvariants, exploreInSlices, mergeResults, replay, shortestPassingPrefix, withKernelOptions, type ExploreOptions, type ExploreResult } from '../explore/explore.js';
import { searchIdentity } from '../explore/identity.js';
import type { CompiledScenario } from '../scenario/compile.js';
import { exploreInWorkers } from '../explore/parallel.js';
import { formatSchedule, parseSchedule } from '../explore/schedule.js';
import { checkOutputPath, writeOutput } from './output.js';
import { reportReplay, type ReplayReportOptions } from './replay.js';
import { parseShard } from './shard.js';
import { explainStartFailure } from './start.js';

export interface ExploreCommandOptions {
  mode: 'dpor' | 'uniform' | 'pct';
  executions?: number;
  depth?: number;
  preemptions?: number;
  evict?: number;
  preemptChoices?: number;
  reclaims?: number;
  seed?: number;
  pctDepth?: number;
  invariants?: string;
  kernel?: string[];
  until?: 'end' | 'ops';
  first?: boolean;
  shard?: string;
  splitDepth?: number;
  workers?: number;
  json?: boolean;
  output?: string;
  minimise?: boolean;
  witness?: boolean;
  checkFootprints?: boolean;
}

/** The invariants to check: the list given, or every one; with `witness`, the list given (or none) and the witness goal. */
export function invariantList(text: string | undefined, witness = false): string[] {
  const given = text?.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (witness) return checkInvariants([...(given ?? []), WITNESS]);
  return checkInvariants(given ?? ALL_INVARIANTS);
}

/** A schedule's text as YAML items for `schedule.steps`: `'0*136', '1*25', 0`. */
function scheduleSteps(text: string): string {
  if (text === '') return '';
  return text.split(',').map((item) => (/^\d+$/.test(item) ? item : `'${item}'`)).join(', ');
}

/** A schedule's text as one shell word: quoted when it has a preemption's `>`. */
function shellWord(text: string): string {
  return text.includes('>') ? `'${text}'` : text;
}

/** The split depth for a sharded search: the one given (1..FULL_LEVELS) or FULL_LEVELS. */
function splitDepth(given: number | undefined): number {
  if (given === undefined) return FULL_LEVELS;
  if (given < 1 || given > FULL_LEVELS) throw new ArgumentError('split-depth', `${given}: the split depth counts branch-offs from the search's first path, from 1 to ${FULL_LEVELS}`);
  return given;
}

export async function exploreCommand(file: string, opts: ExploreCommandOptions): Promise<number> {
  const kernel = opts.kernel ?? [];
  // A destination that cannot be written is refused before the search, not after it.
  if (opts.output !== undefined) checkOutputPath(opts.output);
  const c = withKernelOptions(compileScenarioFile(file), kernel);
  const text = readFileSync(file, 'utf8');
  if (opts.workers !== undefined && opts.shard !== undefined) throw new ArgumentError('workers', '--workers and --shard do not mix: shard across machines, or across threads, not both');
  const parallel = opts.workers !== undefined && opts.workers > 1;
  // The split depth says only where shards split the search: without shards it changes nothing.
  const depth = opts.shard !== undefined || parallel ? splitDepth(opts.splitDepth) : undefined;
  const shard = opts.shard !== undefined ? { ...parseShard(opts.shard), splitDepth: depth! } : undefined;
  const o: ExploreOptions = {
    mode: opts.mode,
    invariants: invariantList(opts.invariants, opts.witness),
    evictions: opts.evict ?? 0,
    preemptChoices: opts.preemptChoices ?? 0,
    reclaims: opts.reclaims ?? 0,
    preemptions: opts.preemptions ?? Infinity,
    maxDepth: opts.depth ?? Infinity,
    executions: opts.executions ?? (opts.mode === 'dpor' ? Infinity : 1000),
    seed: opts.seed ?? 1,
    pctDepth: opts.pctDepth ?? 2,
    until: opts.until ?? 'end',
    stopAtFirst: opts.first === true || opts.witness === true,
    fingerprints: shard !== undefined || parallel,
    minimise: opts.minimise !== false,
    checkFootprints: opts.checkFootprints === true,
    ...(shard ? { shard } : {}),
  };
  const bar = progress(c.name, o.executions);
  let result: ExploreResult;
  const t0 = Date.now();
  let seen: SearchStats = { executions: 0, complete: 0, sleepBlocked: 0, steps: 0 };
  const update = (s: SearchStats): void => {
    seen = { ...s };
    bar.update(s);
  };
  /*
   * SIGINT or SIGTERM while the search runs: the progress so far on stderr, nothing written,
   * exit 130 or 143. A search on this thread runs in slices (explore.ts exploreInSlices) so the
   * handler gets its turn within a few tens of milliseconds.
   */
  const onSignal = (signal: NodeJS.Signals): void => {
    bar.stop();
    process.stderr.write(`isolab: explore interrupted by ${signal} after ${seen.executions} executions, ${seen.steps} steps, ${((Date.now() - t0) / 1000).toFixed(1)} s; no result written (violations are only known when the search ends)\n`);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    result = parallel ? await exploreInWorkers(file, kernel, o, opts.workers!, depth!, update) : await exploreInSlices(c, { ...o, onExecution: update });
  } catch (e) {
    throw explainStartFailure(c, e, kernel);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    bar.stop();
  }
  result.search = searchIdentity(c.name, text, kernel, o, shard?.count ?? 1);
  const out = opts.json ? JSON.stringify(result, null, 2) + '\n' : formatExplore(result, file, opts.witness === true, c);
  if (opts.output) writeOutput(opts.output, opts.json ? out : JSON.stringify(result, null, 2) + '\n');
  if ((!opts.output || !opts.json) && opts.output !== '-') process.stdout.write(out);
  // Only the file: a batch job's log still says which shard this was and where it went.
  else if (opts.output !== '-') process.stderr.write(`isolab: explore ${c.name}${shard ? `, shard ${shard.index}/${shard.count}` : ''}: ${result.executions} executions, ${result.violations.length} violation(s); result in ${opts.output}\n`);
  if (opts.witness) return result.violations.some((v) => v.invariant === WITNESS) ? 0 : 1;
  return result.violations.length > 0 ? 1 : 0;
}

/** A progress bar on a terminal (executions, steps, rate); nothing when stderr is not one. */
function progress(label: string, total: number): { update: (s: SearchStats) => void; stop: () => void } {
  if (!process.stderr.isTTY) return { update: () => {}, stop: () => {} };
  const t0 = Date.now();
  let last = 0;
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format: `${label} {value}${Number.isFinite(total) ? `/${total}` : ''} executions, {steps} steps, {rate} steps/s`, hideCursor: true, clearOnComplete: true },
    cliProgress.Presets.shades_classic,
  );
  bar.start(Number.isFinite(total) ? total : 0, 0, { steps: 0, rate: 0 });
  return {
    update(s) {
      const now = Date.now();
      if (now - last < 100) return;
      last = now;
      bar.update(s.executions, { steps: s.steps, rate: Math.round(s.steps / Math.max((now - t0) / 1000, 0.001)) });
    },
    stop() {
      bar.stop();
    },
  };
}

/** The report: what was searched, how far, and each counterexample with its replay command. */
export function formatExplore(r: ExploreResult, file: string, witness = false, c?: CompiledScenario): string {
  const lines: string[] = [];
  lines.push(`${r.scenario}: ${r.mode === 'dpor' ? 'systematic search (source-set DPOR, sleep sets)' : r.mode === 'pct' ? 'random search (PCT)' : 'random search (uniform)'}${r.shard ? `, shard ${r.shard.index}/${r.shard.count}` : ''}`);
  lines.push(`  executions ${r.executions} (complete ${r.complete}, sleep-set blocked ${r.sleepBlocked}), steps ${r.steps}${r.replayed !== undefined ? ` (${r.replayed} replayed from boot)` : ''}`);
  lines.push(`  ${(r.elapsedMs / 1000).toFixed(2)} s, ${Math.round(r.executionsPerSecond)} executions/s, ${Math.round(r.stepsPerSecond)} steps/s`);
  lines.push(`  search: ${r.exhaustive ? 'complete (every interleaving, up to equivalence)' : `bounded (${r.boundedBy.join(', ')})`}`);
  if (r.preemptionBound !== undefined) lines.push(`  first counterexample by deepening: preemption bound ${r.preemptionBound}${r.violations.length === 0 && r.exhaustive ? ' was the whole search' : ''}`);
  if (r.pct) lines.push(`  PCT: n=${r.pct.n} CPUs, k=${r.pct.k} steps, d=${r.pct.d}: each execution finds a given depth-${r.pct.d} bug with probability >= ${r.pct.perExecution.toExponential(2)}; all of them together >= ${r.pct.overall.toFixed(4)}`);
  const found = r.violations.find((v) => v.invariant === WITNESS);
  const broken = r.violations.filter((v) => v.invariant !== WITNESS);
  if (found) {
    lines.push('');
    lines.push(`✓ witness: ${found.message}`);
    lines.push(`  after ${found.schedule.length} steps, ${found.switches} context switches${found.switchesFound !== found.switches ? ` (minimised from ${found.switchesFound})` : ''}`);
    const prefix = c ? shortestPassingPrefix(c, found.schedule) : null;
    const text = prefix ? formatSchedule(prefix) : found.text;
    if (prefix) lines.push(prefix.length === 0 ? `  the scenario's ${c!.policy} policy alone makes every expectation hold: no script is needed` : `  its first ${prefix.length} steps are enough, the scenario's ${c!.policy} policy running the rest`);
    lines.push(`  as schedule.steps: [${scheduleSteps(text)}]`);
    // A plain run does not hold threads at their end (--until ops): without a prefix it passes, the schedule is the explorer's.
    if (!prefix && r.search?.until === 'ops') lines.push(`  replay: isolab replay ${file}${replayFlags(r)} --schedule ${shellWord(text)}`);
    else lines.push(`  run: isolab run ${file} --schedule ${shellWord(text)}`);
  } else if (witness) lines.push('  no schedule found under which every expectation holds');
  if (broken.length === 0 && !witness) lines.push('  no invariant broken');
  for (const v of broken) {
    lines.push('');
    lines.push(`✗ ${v.invariant}: ${v.message}`);
    lines.push(`  after ${v.schedule.length} steps, ${v.switches} context switches${v.switchesFound !== v.switches ? ` (minimised from ${v.switchesFound})` : ''}`);
    lines.push(`  replay: isolab replay ${file}${replayFlags(r)} --schedule ${shellWord(v.text)}`);
    lines.push(`  see:    isolab see ${file}${replayFlags(r)} --invariants ${v.invariant} --schedule ${shellWord(v.text)}`);
    // On the host kernel, whose options are the upstream defaults: only a search without --kernel settings.
    if (!kernelSettings(r)) lines.push(`  host:   isolab host ${file} --stress --schedule ${shellWord(v.text)}`);
  }
  return lines.join('\n') + '\n';
}

/** Whether the search ran with `--kernel` settings. */
function kernelSettings(r: ExploreResult): boolean {
  const settings: readonly string[] = r.search?.kernel ?? [];
  return settings.length > 0;
}

/** The options a replay of one of the search's schedules needs to take the same steps: its `--kernel` settings and `--until ops`. */
function replayFlags(r: ExploreResult): string {
  const search = r.search;
  if (!search) return '';
  const settings: readonly string[] = search.kernel;
  const kernelFlags = settings.map((kv) => ` --kernel ${shellWord(kv)}`).join('');
  return kernelFlags + (search.until === 'ops' ? ' --until ops' : '');
}

export interface ReplayCommandOptions extends ReplayReportOptions {
  schedule: string;
  invariants?: string;
  kernel?: string[];
  complete?: boolean;
  until?: 'end' | 'ops';
}

/** Replays the schedule; replay.ts reportReplay prints (and writes) what it found. */
export function replayCommand(file: string, opts: ReplayCommandOptions): number {
  if (opts.output !== undefined) checkOutputPath(opts.output);
  const c = withKernelOptions(compileScenarioFile(file), opts.kernel ?? []);
  const schedule = parseSchedule(opts.schedule, c.system.cpus ?? 1);
  const invariants = invariantList(opts.invariants);
  let r;
  try {
    r = replay(c, schedule, { invariants, record: false, complete: opts.complete, until: opts.until ?? 'end' });
  } catch (e) {
    throw explainStartFailure(c, e, opts.kernel ?? []);
  }
  return reportReplay(c, schedule, invariants, r, opts);
}

/** A per-CPU timeline: one column per CPU, each entry in its CPU's column at its step. */
export function formatTimeline(entries: TimelineEntry[], cpus: number): string {
  const width = 48;
  const head = ['  step'.padEnd(8), ...Array.from({ length: cpus }, (_, i) => `CPU ${i}`.padEnd(width))].join('');
  const rows = entries.map((e) => {
    const text = `${e.task ? `${e.task}: ` : ''}${e.text}`;
    return `${String(e.step).padStart(6)}  ${' '.repeat(width * e.cpu)}${text}`;
  });
  return [head, ...rows].join('\n');
}

export function mergeCommand(files: string[], opts: { json?: boolean; output?: string }): number {
  if (opts.output !== undefined) checkOutputPath(opts.output);
  const parts = files.map((f) => {
    let data: unknown;
    try {
      data = JSON.parse(readFileSync(f, 'utf8'));
    } catch (e) {
      throw new ArgumentError('file', `${f}: not a result of isolab explore --json (${e instanceof Error ? e.message : String(e)})`);
    }
    if (!data || typeof data !== 'object' || !('executions' in data) || !('violations' in data)) throw new ArgumentError('file', `${f}: not a result of isolab explore --json`);
    return data as ExploreResult;
  });
  const merged = mergeResults(parts, files);
  const text = opts.json ? JSON.stringify(merged, null, 2) + '\n' : formatExplore(merged, '<file>');
  if (opts.output) writeOutput(opts.output, JSON.stringify(merged, null, 2) + '\n');
  if ((!opts.output || !opts.json) && opts.output !== '-') process.stdout.write(text);
  return merged.violations.length > 0 ? 1 : 0;
}
