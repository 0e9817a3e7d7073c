/**
 * The races of isolab's run of a scenario under a schedule, as `isolab host --stress` repeats
 * them on the host: operations of different tasks that were in flight together. An operation
 * is in flight from the moment its task entered the kernel for it (PlanRecord.gate, counted in
 * completed records) to its completion (its position); one that did not enter the kernel (a
 * load or store with no fault) takes no time. Two operations overlap when one completed while
 * the other was in flight; a race is a set of operations joined by overlaps.
 */
import { readFileSync } from 'node:fs';
import { ArgumentError } from '../errors.js';
import { hash64 } from '../explore/dpor.js';
import type { Plan, PlanRecord } from './plan.js';

/** One race: its records by position, and the first record of each task in it, in the order isolab's tasks started them. */
export interface Race {
  records: PlanRecord[];
  /** The first record of each task, ordered by when it started (gate), then by position. */
  firsts: PlanRecord[];
}

/** The races of the plan's run, in the order they began. */
export function racesOf(plan: Plan): Race[] {
  const recs = plan.records.filter((r) => !r.unfinished);
  // Union-find over records joined by an overlap with another task's record.
  const parent = recs.map((_, i) => i);
  const find = (i: number): number => (parent[i] === i ? i : (parent[i] = find(parent[i])));
  const joined = new Set<number>();
  for (let i = 0; i < recs.length; i++) {
    const r = recs[i];
    if (r.gate >= r.pos) continue;
    // Every record of another task completed while r was in flight.
    for (let j = 0; j < recs.length; j++) {
      const x = recs[j];
      if (x.task === r.task || x.pos < r.gate || x.pos >= r.pos) continue;
      parent[find(j)] = find(i);
      joined.add(i).add(j);
    }
  }
  const groups = new Map<number, PlanRecord[]>();
  for (const i of joined) {
    const root = find(i);
    let g = groups.get(root);
    if (!g) groups.set(root, (g = []));
    g.push(recs[i]);
  }
  const races: Race[] = [];
  for (const g of groups.values()) {
    g.sort((a, b) => a.pos - b.pos);
    const firsts: PlanRecord[] = [];
    for (const r of [...g].sort((a, b) => a.gate - b.gate || a.pos - b.pos)) if (!firsts.some((f) => f.task === r.task)) firsts.push(r);
    races.push({ records: g, firsts });
  }
  return races.sort((a, b) => Math.min(...a.records.map((r) => r.gate)) - Math.min(...b.records.map((r) => r.gate)));
}

/** A counterexample picked from `isolab explore --json`'s result. */
export interface ExploreViolation {
  /** The schedule as text (schedule.ts). */
  schedule: string;
  invariant: string;
  message: string;
  /** The `--kernel` settings of the search, which its schedules need. */
  kernel: string[];
}

/**
 * Counterexample `index` (1-based) of the explore result in `file`, checked to be a result of
 * the scenario file `scenarioFile` as it is now; an ArgumentError names what is wrong.
 */
export function exploreViolation(file: string, index: number, scenarioFile: string, scenarioName: string): ExploreViolation {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ArgumentError('--from', `${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : `not JSON (${(e as Error).message})`}`);
  }
  const r = data as { scenario?: unknown; violations?: unknown; search?: { digest?: unknown; kernel?: unknown } };
  if (!r || typeof r !== 'object' || !Array.isArray(r.violations) || typeof r.scenario !== 'string') throw new ArgumentError('--from', `${file}: not a result of isolab explore --json`);
  if (r.scenario !== scenarioName) throw new ArgumentError('--from', `${file}: a result for scenario "${r.scenario}", not "${scenarioName}"`);
  if (typeof r.search?.digest === 'string' && r.search.digest !== hash64(readFileSync(scenarioFile, 'utf8'))) {
    throw new ArgumentError('--from', `${file}: the search ran on another version of ${scenarioFile}; explore it again`);
  }
  if (r.violations.length === 0) throw new ArgumentError('--from', `${file}: the search found no counterexample`);
  if (!Number.isInteger(index) || index < 1 || index > r.violations.length) throw new ArgumentError('--violation', `${index}: the result has counterexamples 1 to ${r.violations.length}`);
  const v = r.violations[index - 1] as { text?: unknown; invariant?: unknown; message?: unknown };
  if (typeof v.text !== 'string' || typeof v.invariant !== 'string') throw new ArgumentError('--from', `${file}: counterexample ${index} has no schedule`);
  const settings: unknown = r.search?.kernel;
  const kernel = Array.isArray(settings) ? settings.filter((k): k is string => typeof k === 'string') : [];
  return { schedule: v.text, invariant: v.invariant, message: typeof v.message === 'string' ? v.message : '', kernel };
}
