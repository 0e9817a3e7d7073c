/**
 * `isolab host FILE --stress`: a race of isolab's run, repeated on the host kernel until a time
 * budget is spent. isolab runs the scenario under the race's schedule (the scenario's own
 * `schedule.steps`, `--schedule`, or a counterexample of `isolab explore --json`); the first
 * race of that run (race.ts; `race` picks another) is what the host program repeats, every
 * other operation keeping isolab's order as `isolab host` does. Each round runs the scenario
 * afresh with every task pinned to the host CPU of its scenario CPU; the two racing operations
 * meet at a barrier, and an adaptive delay (cgen.ts STRESS_MAIN) moves the one against the
 * other until they cross where the outcome changes.
 *
 * The property is checked on the host: a round's outcome (every value, signal and exit status
 * the host program reports) is compared with isolab's run under the schedule (compare.ts).
 * Rounds whose racing operations did not overlap in time show what each order gives by itself
 * (serial outcomes); the program runs such rounds on purpose every sixteenth round. A violation
 * is an overlapping round with isolab's outcome under the schedule when no round of either
 * order gave that outcome: the kernel produced, on this host, the result isolab's race produces
 * and no order of the two did. With fewer than MIN_SERIAL rounds of each order the verdict is
 * inconclusive. With widening (widen.ts) the same holds copy by copy.
 */
import { compileGenerated, findHostCompiler, removeGenerated, runGenerated } from '../../native/build.js';
import { ArgumentError, ConfigError } from '../errors.js';
import { parseSchedule } from '../explore/schedule.js';
import { withKernelOptions } from '../explore/explore.js';
import type { CompiledScenario } from '../scenario/compile.js';
import { formatValue, signalName, siCodeName } from '../scenario/format.js';
import { issueAt } from '../scenario/load.js';
import { generateC } from './cgen.js';
import { compareRuns, parseHostOutput, type Divergence } from './compare.js';
import { hostFacts, type HostFacts } from './facts.js';
import { hostUnavailableReason } from './host.js';
import { planFromModel, recordOp, type Plan, type PlanRecord } from './plan.js';
import { exploreViolation, racesOf, type Race } from './race.js';
import { hostSupport, type HostItem } from './support.js';
import { widening } from './widen.js';

/** Rounds of each order needed before an outcome is called one that no order gives. */
export const MIN_SERIAL = 8;

/** Copies of the racing mapping by default: as the MADV_FREE reproducer's region. */
const DEFAULT_COPIES = 512;

/** Seconds the program may run beyond its budget (its last round, building the report) before it is killed. */
const GRACE_S = 60;

export interface StressOptions {
  /** Seconds of rounds (default 10). */
  seconds?: number;
  /** At most this many rounds (default: as many as the time allows). */
  rounds?: number;
  /** The race's schedule, as `isolab run --schedule` reads it (default: the scenario's `schedule.steps`). */
  schedule?: string;
  /** A result of `isolab explore --json` and the counterexample in it (1-based) to take the schedule from. */
  from?: { file: string; violation: number };
  /** Which race of the run to repeat, 1-based in the order they began (default 1). */
  race?: number;
  /** Copies of the racing mapping (widen.ts; default 512; 1 races the scenario's pages alone). */
  pages?: number;
  cc?: string;
  facts?: HostFacts;
  onSource?: (source: string) => void;
}

/** One racing operation, as the report names it. */
export interface StressOp {
  thread: string;
  what: string;
  where: string;
  /** isolab's CPU for the task, and the host CPU it was pinned to (-1: none). */
  cpu: number;
  hostCpu: number;
}

/** One outcome the host gave, and how often. */
export interface StressOutcome {
  id: number;
  /** Rounds in which the racing operations overlapped in time; the first ended before the second started; the other way round; unknown. */
  overlapped: number;
  firstFirst: number;
  secondFirst: number;
  unknown: number;
  rounds: number;
  /** The first round that gave it (0-based). */
  firstRound: number;
  /** Some round whose racing operations did not overlap gave it: an order of the two gives it by itself. */
  serial: boolean;
  /** It is the outcome of isolab's run under the schedule: nothing compared differs but exit statuses, which are shown, not judged. */
  counterexample: boolean;
  /** Where it differs from isolab's run under the schedule. */
  differences: Divergence[];
  /** The values of the records that differ between outcomes, as `thread: operation = value`. */
  values: string[];
}

/** One outcome of a copy of the widened mapping: what its loads read, and how often. */
export interface CopyOutcome {
  id: number;
  /** Copies that gave it, in rounds of each class (as StressOutcome). */
  overlapped: number;
  firstFirst: number;
  secondFirst: number;
  unknown: number;
  copies: number;
  serial: boolean;
  /** Every load agrees with isolab's run under the schedule. */
  counterexample: boolean;
  /** Each load as `thread: operation (where) = value`, isolab's value after it when they differ. */
  values: string[];
}

export interface StressReport {
  scenario: string;
  file?: string;
  ran: boolean;
  blocking: HostItem[];
  notes: HostItem[];
  schedule: string;
  /** The invariant the explorer's counterexample broke, with its message, when the schedule came from one. */
  property?: { invariant: string; message: string };
  racing: StressOp[];
  /** The racing mapping widened into copies, or why it was not (then the race runs on the scenario's pages alone). */
  widened: { copies: number; where: string; bytes: number } | { copies: 1; why: string };
  /** Copies (of overlapping rounds) whose loads gave isolab's outcome, which no copy of a round of either order gave (0 without widening). */
  copyViolations: number;
  copyOutcomes: CopyOutcome[];
  /** The other races of isolab's run, which the host runs in isolab's order. */
  otherRaces: string[];
  rounds: number;
  seconds: number;
  /** Rounds in which the racing operations overlapped in time on the host. */
  overlaps: number;
  /** Rounds whose racing operations overlapped and whose outcome is isolab's under the schedule, which no round of either order gave. */
  violations: number;
  /** isolab's outcome under the schedule is also a serial outcome on the host: the race's result is not visible in values. */
  counterexampleSerial: boolean;
  /** Rounds that ran the first racing operation wholly before the second, and the other way round. */
  serialRounds: [number, number];
  /** Each order ran whole in at least MIN_SERIAL rounds: what each gives by itself is known. */
  conclusive: boolean;
  /** Rounds and copies whose outcome was past the program's table (512 outcomes): not judged. */
  dropped: number;
  outcomes: StressOutcome[];
  /** The delay at the end and its range (spins; > 0 holds back the second racing operation). */
  delay: { final: number; min: number; max: number };
  timeouts: number;
  barrierTimeouts: number;
  trouble?: string;
}

/** The scenario with the race's schedule and kernel settings applied; the schedule's text and the property, if any. */
function withSchedule(c: CompiledScenario, opts: StressOptions): { c: CompiledScenario; schedule: string; property?: StressReport['property'] } {
  if (opts.schedule !== undefined && opts.from !== undefined) throw new ArgumentError('--schedule', 'give the schedule or --from, not both');
  if (opts.from !== undefined) {
    if (!c.locator?.file) throw new ArgumentError('--from', 'the scenario must come from a file');
    const v = exploreViolation(opts.from.file, opts.from.violation, c.locator.file, c.name);
    const k = withKernelOptions(c, v.kernel);
    return { c: { ...k, system: { ...k.system, script: parseSchedule(v.schedule, k.system.cpus ?? 1) } }, schedule: v.schedule, property: { invariant: v.invariant, message: v.message } };
  }
  if (opts.schedule !== undefined) return { c: { ...c, system: { ...c.system, script: parseSchedule(opts.schedule, c.system.cpus ?? 1) } }, schedule: opts.schedule };
  if (c.system.script === undefined) throw new ArgumentError('--schedule', `${c.name} has no schedule.steps: give --schedule S or --from RESULT.json`);
  return { c, schedule: 'the scenario\'s schedule.steps' };
}

/** The race to repeat; an ArgumentError when the run has none, or it cannot run on the host. */
function pickRace(plan: Plan, index: number, where: (r: PlanRecord) => string): { race: Race; others: Race[] } {
  const races = racesOf(plan);
  if (races.length === 0) throw new ArgumentError('--schedule', "under this schedule no operation of one task completes while another task's is in flight: there is no race to repeat");
  if (!Number.isInteger(index) || index < 1 || index > races.length) throw new ArgumentError('--race', `${index}: the run has races 1 to ${races.length}`);
  const race = races[index - 1];
  const skipped = race.firsts.find((r) => r.skipped);
  if (skipped) throw new ArgumentError('--race', `the racing operation at ${where(skipped)} is not run on the host`);
  return { race, others: races.filter((r) => r !== race) };
}

/** Parses the --stress program's output (cgen.ts STRESS_MAIN). */
function parseStressOutput(text: string): {
  blocks: Map<number, { round: number; cls: number; text: string }>;
  counts: Map<number, number[]>;
  copies: Map<number, { values: Map<number, bigint | 'fault'>; off: boolean }>;
  copyCounts: Map<number, number[]>;
  info: number[] | null;
} {
  const blocks = new Map<number, { round: number; cls: number; text: string }>();
  const counts = new Map<number, number[]>();
  const copies = new Map<number, { values: Map<number, bigint | 'fault'>; off: boolean }>();
  const copyCounts = new Map<number, number[]>();
  let info: number[] | null = null;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const w = lines[i].trim().split(/\s+/);
    if (w[0] === 'O') {
      const body: string[] = [];
      for (i++; i < lines.length && lines[i] !== '.'; i++) body.push(lines[i]);
      blocks.set(Number(w[1]), { round: Number(w[2]), cls: Number(w[3]), text: body.join('\n') });
    } else if (w[0] === 'Q') {
      const values = new Map<number, bigint | 'fault'>();
      for (i++; i < lines.length && lines[i] !== '.'; i++) {
        const q = lines[i].trim().split(/\s+/);
        if (q[0] === 'q') values.set(Number(q[1]), q[2] === 'F' ? 'fault' : BigInt(`0x${q[2]}`));
      }
      // Its round left isolab's order, or was killed: not isolab's outcome, whatever the loads read.
      copies.set(Number(w[1]), { values, off: w[5] === '1' || w[6] === '1' });
    } else if (w[0] === 'C') counts.set(Number(w[1]), w.slice(2, 6).map(Number));
    else if (w[0] === 'U') copyCounts.set(Number(w[1]), w.slice(2, 6).map(Number));
    else if (w[0] === 'I') info = w.slice(1).map(Number);
  }
  return { blocks, counts, copies, copyCounts, info };
}

/** Runs the race of compiled scenario `c` on the host for the budget and checks each outcome. Throws ConfigError without a compiler, ArgumentError for a schedule with no race. */
export async function runStress(c0: CompiledScenario, opts: StressOptions = {}): Promise<StressReport> {
  const unavailable = hostUnavailableReason(opts.cc);
  if (unavailable !== null) throw new ConfigError(opts.cc !== undefined ? '--cc' : 'host', unavailable);
  const seconds = opts.seconds ?? 10;
  if (!(seconds > 0) || seconds > 86_400) throw new ArgumentError('--seconds', `${seconds}: from more than 0 to 86400`);
  if (opts.rounds !== undefined && (!Number.isInteger(opts.rounds) || opts.rounds < 1)) throw new ArgumentError('--rounds', `${opts.rounds}: a whole number of at least 1`);
  const { c, schedule, property } = withSchedule(c0, opts);
  const compiler = findHostCompiler(opts.cc)!;
  const facts = opts.facts ?? hostFacts();
  const support = hostSupport(c, facts);
  // The note on a race schedule is for a single run in isolab's order; here the race is what runs.
  const notes = support.notes.filter((n) => n.what !== 'schedule.steps');
  const base = { scenario: c.name, file: c.locator?.file, blocking: support.blocking, notes, schedule, ...(property ? { property } : {}) };
  const empty = { racing: [], widened: { copies: 1 as const, why: 'not run' }, copyViolations: 0, copyOutcomes: [], otherRaces: [], rounds: 0, seconds: 0, overlaps: 0, violations: 0, counterexampleSerial: false, serialRounds: [0, 0] as [number, number], conclusive: false, dropped: 0, outcomes: [], delay: { final: 0, min: 0, max: 0 }, timeouts: 0, barrierTimeouts: 0 };
  if (support.blocking.length > 0) return { ...base, ran: false, ...empty };
  const plan = planFromModel(c, support);
  const where = (r: PlanRecord): string => {
    const info = c.ops.get(support.images[r.image].name, r.fn, r.index);
    if (!info) return `${r.fn}[${r.index}]`;
    const i = issueAt(c.locator, info.path, '');
    return i.line !== undefined ? `${i.file}:${i.line}:${i.col}` : i.path;
  };
  const label = (r: PlanRecord): string => c.ops.get(support.images[r.image].name, r.fn, r.index)?.label ?? `${r.fn}[${r.index}]`;
  const { race, others } = pickRace(plan, opts.race ?? 1, where);
  const pair = race.firsts.slice(0, 2);
  // Every task on its scenario CPU: the CPU of its racing record, else of its first record.
  const pin = plan.tasks.map((t) => race.firsts.find((r) => r.task === t.idx)?.cpu ?? t.records.find((r) => r.cpu >= 0)?.cpu ?? -1);
  const pages = opts.pages ?? DEFAULT_COPIES;
  if (!Number.isInteger(pages) || pages < 1 || pages > 4096) throw new ArgumentError('--pages', `${pages}: from 1 to 4096`);
  const w = pages > 1 ? widening(c, support, plan, pair, pages) : { why: '--pages 1' };
  const wideMmap = 'wide' in w ? plan.records[w.wide.pos] : undefined;
  const widened: StressReport['widened'] = 'wide' in w ? { copies: pages, where: `${plan.tasks[wideMmap!.task].name}: ${label(wideMmap!)} (${where(wideMmap!)})`, bytes: Number(w.wide.len) } : { copies: 1, why: w.why };
  const source = generateC(c, support, plan, { race: pair.map((r) => r.pos), pin, ...('wide' in w ? { wide: w.wide } : {}) });
  opts.onSource?.(source);
  const build = await compileGenerated(source, compiler);
  if ('error' in build) {
    const messages = build.error.split('\n').slice(0, 20).join('\n');
    if (opts.cc !== undefined) throw new ConfigError('--cc', `${compiler} could not build the generated program:\n${messages}`);
    throw new Error(`${compiler} could not build the program isolab host --stress generated (a bug in isolab):\n${messages}`);
  }
  let run;
  try {
    run = await runGenerated(build.binary, (seconds + GRACE_S) * 1000, [String(seconds), String(opts.rounds ?? 0)]);
  } finally {
    await removeGenerated(build.binary);
  }
  const parsed = parseStressOutput(run.stdout);
  const info = parsed.info;
  const trouble = run.timedOut
    ? `the stress program ran out of time (${seconds + GRACE_S} s) and was killed`
    : run.code !== 0 || info === null
      ? `the stress program ended with ${run.signal ?? `status ${String(run.code)}`}${run.stderr ? `: ${run.stderr.trim().split('\n')[0]}` : ''}`
      : undefined;
  // Each outcome against isolab's run under the schedule.
  const outcomes: StressOutcome[] = [];
  const hostRecords = new Map<number, Map<number, string>>();
  const signatures = new Map<number, string>();
  for (const [id, block] of [...parsed.blocks].sort((a, b) => a[0] - b[0])) {
    const out = parseHostOutput(block.text);
    const cmp = compareRuns(c, support, plan, out);
    const differences = [...cmp.divergences, ...cmp.scheduleDependent];
    const n = parsed.counts.get(id) ?? [0, 0, 0, 0];
    // What the host gave each record, as text, to show the records that differ between outcomes.
    // A tid of one of the round's tasks is shown as that task's: tids differ from round to round.
    const taskOfTid = new Map([...out.tids].map(([idx, tid]) => [BigInt(tid), plan.tasks[idx]?.name ?? `task ${idx}`]));
    const shown = new Map<number, string>();
    for (const [pos, h] of out.records) {
      const task = h.kind === 'V' ? taskOfTid.get(h.value) : undefined;
      shown.set(pos, h.kind === 'V' ? (task !== undefined ? `the tid of ${task}` : formatValue(h.value)) : h.kind === 'S' ? `${signalName(h.signo)} ${siCodeName(h.signo, h.code)}` : h.kind);
    }
    // Rounds whose reports differ only in what is not compared (a thread's exit line written or not before its group's exit) are one outcome.
    const signature = JSON.stringify([[...shown].sort((x, y) => x[0] - y[0]), differences.map((d) => [d.where, d.what, d.host])]);
    const same = outcomes.find((o) => signatures.get(o.id) === signature);
    if (same) {
      same.overlapped += n[0];
      same.firstFirst += n[1];
      same.secondFirst += n[2];
      same.unknown += n[3];
      same.rounds += n[0] + n[1] + n[2] + n[3];
      same.firstRound = Math.min(same.firstRound, block.round);
      same.serial ||= n[1] + n[2] > 0;
      continue;
    }
    signatures.set(id, signature);
    hostRecords.set(id, shown);
    outcomes.push({
      id,
      overlapped: n[0],
      firstFirst: n[1],
      secondFirst: n[2],
      unknown: n[3],
      rounds: n[0] + n[1] + n[2] + n[3],
      firstRound: block.round,
      serial: n[1] + n[2] > 0,
      // Exit statuses are shown, not judged: a thread group's end races inside the kernel (exit_group against a fatal signal) in a way the host does not order as isolab's schedule did.
      counterexample: differences.every((d) => d.what.startsWith('exit of ')) && out.diverged === undefined,
      differences,
      values: [],
    });
  }
  // The records whose value differs between outcomes: what tells them apart.
  const varying = plan.records.filter((r) => new Set([...hostRecords.values()].map((m) => m.get(r.pos) ?? 'none')).size > 1);
  for (const o of outcomes) {
    const m = hostRecords.get(o.id)!;
    o.values = varying.map((r) => `${plan.tasks[r.task].name}: ${label(r)} (${where(r)}) = ${show(m.get(r.pos))}`);
  }
  // isolab's outcome: every outcome with nothing compared differing (several may be, apart in what is not compared).
  const ces = outcomes.filter((o) => o.counterexample);
  const counterexampleSerial = ces.some((o) => o.serial);
  // Each copy outcome: its loads against isolab's run under the schedule. It is isolab's only
  // with every load of the widened mapping isolab's run made, each with isolab's value.
  const wideLoads = 'wide' in w ? plan.records.filter((r) => {
    const op = recordOp(support, r);
    const a = r.record.addr !== undefined ? BigInt.asUintN(64, r.record.addr) : undefined;
    return op?.op === 'load' && !r.record.signal && a !== undefined && a >= w.wide.isolab && a < w.wide.isolab + w.wide.len;
  }) : [];
  const copyOutcomes: CopyOutcome[] = [];
  for (const [id, { values, off }] of parsed.copies) {
    const n = parsed.copyCounts.get(id) ?? [0, 0, 0, 0];
    const same = !off && wideLoads.length > 0 && wideLoads.every((r) => values.get(r.pos) === BigInt.asUintN(64, r.record.value ?? -1n)) && values.size === wideLoads.length;
    const shown: string[] = [];
    for (const [pos, v] of [...values].sort((x, y) => x[0] - y[0])) {
      const r = plan.records[pos];
      const model = r?.record.value !== undefined && !r.record.signal ? BigInt.asUintN(64, r.record.value) : undefined;
      const text = v === 'fault' ? 'a fault' : formatValue(v);
      if (r) shown.push(`${plan.tasks[r.task].name}: ${label(r)} (${where(r)}) = ${text}${model !== v ? ` (isolab ${model === undefined ? 'none' : formatValue(model)})` : ''}`);
    }
    if (off) shown.push("(its round left isolab's order or was killed)");
    copyOutcomes.push({ id, overlapped: n[0], firstFirst: n[1], secondFirst: n[2], unknown: n[3], copies: n[0] + n[1] + n[2] + n[3], serial: n[1] + n[2] > 0, counterexample: same, values: shown });
  }
  const copyCes = copyOutcomes.filter((o) => o.counterexample);
  // Rounds that ran each order whole: what each order gives is known only from enough of them.
  const serialRounds: [number, number] = [info?.[11] ?? 0, info?.[12] ?? 0];
  const conclusive = serialRounds[0] >= MIN_SERIAL && serialRounds[1] >= MIN_SERIAL;
  // A violation: isolab's outcome in a round whose racing operations overlapped, when no round of either order gave it.
  const overlappedIn = (xs: { overlapped: number; serial: boolean }[]): number => (xs.some((o) => o.serial) ? 0 : xs.reduce((s, o) => s + o.overlapped, 0));
  const hostCpu = (k: number): number => (info && info[8 + k] !== undefined ? info[8 + k] : -1);
  if (pair.length === 2 && pair[0].cpu !== pair[1].cpu && hostCpu(0) >= 0 && hostCpu(0) === hostCpu(1)) {
    notes.push({ where: where(pair[1]), what: 'the racing tasks', reason: `isolab runs them on CPUs ${pair[0].cpu} and ${pair[1].cpu}, the host on its one CPU ${hostCpu(0)}: they race only by preemption` });
  }
  return {
    ...base,
    ran: true,
    racing: pair.map((r, k) => ({ thread: plan.tasks[r.task].name, what: label(r), where: where(r), cpu: r.cpu, hostCpu: hostCpu(k) })),
    widened,
    copyViolations: overlappedIn(copyCes),
    copyOutcomes: copyOutcomes.sort((a, b) => b.copies - a.copies).map((o, i) => ({ ...o, id: i })),
    otherRaces: others.map((o) => o.firsts.map((r) => `${plan.tasks[r.task].name}: ${label(r)} (${where(r)})`).join(' against ')),
    rounds: info?.[0] ?? 0,
    seconds: (info?.[1] ?? 0) / 1e9,
    overlaps: outcomes.reduce((s, o) => s + o.overlapped, 0),
    violations: overlappedIn(ces),
    counterexampleSerial,
    serialRounds,
    conclusive,
    dropped: info?.[13] ?? 0,
    outcomes: outcomes.sort((a, b) => b.rounds - a.rounds).map((o, i) => ({ ...o, id: i })),
    delay: { final: info?.[5] ?? 0, min: info?.[6] ?? 0, max: info?.[7] ?? 0 },
    timeouts: info?.[2] ?? 0,
    barrierTimeouts: info?.[3] ?? 0,
    ...(trouble ? { trouble } : {}),
  };
}

/** A host record's value as the outcome table shows it. */
function show(v: string | undefined): string {
  if (v === undefined) return 'not reached';
  if (v === 'N') return 'done';
  if (v === 'K') return 'not run';
  if (v === 'P') return 'started';
  if (v === 'X') return 'refused';
  return v;
}
