/**
 * The cost table (costs.yaml, or a user's file of the same shape): CPU profiles, each a clock,
 * the CPU features the machine runs with, and a figure per cost name (keys.ts) with its
 * source and grade. `loadCostTable` checks the whole file and reports every mistake at its
 * line and column before anything runs; `profileOf` picks a profile by name.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ArgumentError, formatIssue, IsolabError, type ScenarioIssue } from '../errors.js';
import { suggest } from '../scenario/expr.js';
import { issueAt, loadScenarioText, type Locator, type Path } from '../scenario/load.js';
import { COST_NAMES, type CostName } from './keys.js';

/** How far a figure can be trusted (costs.yaml's header). */
export const GRADES = ['A', 'B', 'C', 'U', 'L', 'D'] as const;
export type Grade = (typeof GRADES)[number];

export interface CostFigure {
  cycles: number;
  grade: Grade;
  source: string;
}

/** A CPU profile with every figure resolved (inheritance applied). */
export interface Profile {
  name: string;
  description: string;
  clockGhz: number;
  /** The CPU features the simulated machine is given for this profile. */
  features: { pcid: boolean; invpcid: boolean };
  /** State components an XSAVE or XRSTOR moves at a context switch. */
  xstateComponents: number;
  costs: Record<CostName, CostFigure>;
}

export interface CostTable {
  /** Where it came from (the built-in table's path, or the user's file). */
  file: string;
  defaultProfile: string;
  profiles: Map<string, Profile>;
}

/** A cost table with mistakes: every one, at its line and column. Nothing has run. */
export class CostTableError extends IsolabError {
  readonly issues: ScenarioIssue[];
  constructor(issues: ScenarioIssue[]) {
    super('ECOST', issues.map(formatIssue).join('\n'));
    this.issues = issues;
  }
}

const PROFILE_KEYS = ['description', 'inherits', 'clock_ghz', 'features', 'costs', 'xstate_components'];
const FIGURE_KEYS = ['cycles', 'grade', 'source'];

type Raw = Record<string, unknown>;
const isMap = (v: unknown): v is Raw => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * Parses and checks cost-table text (`file` names it in messages): a `profiles` map, each
 * profile with a description, a positive clock, `features` pcid and invpcid (inherited when
 * absent), and every cost name of keys.ts with non-negative finite `cycles`, a grade and a
 * source (a profile that `inherits` gives only the ones it changes), plus a `default` profile.
 * Throws CostTableError listing every mistake.
 */
export function loadCostTable(text: string, file: string): CostTable {
  const loaded = loadScenarioText(text, file);
  if (loaded.issues.length > 0) throw new CostTableError(loaded.issues);
  const loc = loaded.locator;
  const issues: ScenarioIssue[] = [];
  const bad = (path: Path, message: string, key = false): void => void issues.push(issueAt(loc, path, message, { key }));
  const data = loaded.data;
  if (!isMap(data)) throw new CostTableError([issueAt(loc, [], 'expected a mapping with `profiles` (and `default`)')]);
  for (const k of Object.keys(data)) if (k !== 'profiles' && k !== 'default') bad([k], `unknown key ${k}; expected profiles or default${suggest(k, ['profiles', 'default'])}`, true);
  const rawProfiles = data.profiles;
  if (!isMap(rawProfiles) || Object.keys(rawProfiles).length === 0) {
    bad(['profiles'], 'expected a mapping of profile names to profiles');
    throw new CostTableError(issues);
  }
  const names = Object.keys(rawProfiles);
  for (const name of names) checkProfile(rawProfiles, name, bad);
  const def = data.default ?? names[0];
  if (typeof def !== 'string' || !names.includes(def)) bad(['default'], `expected the name of a profile of this table (${names.join(', ')})${typeof def === 'string' ? suggest(def, names) : ''}`);
  if (issues.length > 0) throw new CostTableError(sortByPosition(issues));
  const profiles = new Map<string, Profile>();
  for (const name of names) profiles.set(name, resolve(rawProfiles, name, loc, []));
  return { file, defaultProfile: def as string, profiles };
}

/** Checks one raw profile's own fields (not what it inherits), reporting through `bad`. */
function checkProfile(all: Raw, name: string, bad: (path: Path, message: string, key?: boolean) => void): void {
  const p = all[name];
  const at: Path = ['profiles', name];
  if (!isMap(p)) return bad(at, 'expected a profile: description, clock_ghz, features, costs');
  for (const k of Object.keys(p)) if (!PROFILE_KEYS.includes(k)) bad([...at, k], `unknown key ${k}; expected ${PROFILE_KEYS.join(', ')}${suggest(k, PROFILE_KEYS)}`, true);
  const parent = p.inherits;
  if (parent !== undefined && (typeof parent !== 'string' || !(parent in all) || parent === name)) {
    bad([...at, 'inherits'], `expected the name of another profile of this table${typeof parent === 'string' ? suggest(parent, Object.keys(all)) : ''}`);
  }
  if (p.description === undefined) bad(at, 'missing description: the CPU in words', true);
  else if (typeof p.description !== 'string' || p.description === '') bad([...at, 'description'], 'expected a description of the CPU (text)');
  if (p.clock_ghz !== undefined || parent === undefined) {
    if (p.clock_ghz === undefined) bad(at, 'missing clock_ghz: the clock in GHz (or inherits)', true);
    else if (typeof p.clock_ghz !== 'number' || !(p.clock_ghz > 0) || !Number.isFinite(p.clock_ghz)) bad([...at, 'clock_ghz'], 'expected the clock in GHz, a number above 0');
  }
  if (p.xstate_components !== undefined || parent === undefined) {
    if (p.xstate_components === undefined) bad(at, 'missing xstate_components: the XSAVE state components a context switch moves (or inherits)', true);
    else if (!Number.isInteger(p.xstate_components) || (p.xstate_components as number) < 0) bad([...at, 'xstate_components'], 'expected the number of XSAVE state components, an integer of 0 or more');
  }
  const f = p.features;
  if (f !== undefined || parent === undefined) {
    if (f === undefined) bad(at, 'missing features: { pcid: true|false, invpcid: true|false } (or inherits)', true);
    else if (!isMap(f)) bad([...at, 'features'], 'expected { pcid: true|false, invpcid: true|false }');
    else {
      for (const k of Object.keys(f)) if (k !== 'pcid' && k !== 'invpcid') bad([...at, 'features', k], `unknown feature ${k}; expected pcid or invpcid`, true);
      for (const k of ['pcid', 'invpcid']) if (typeof f[k] !== 'boolean' && (parent === undefined || f[k] !== undefined)) bad([...at, 'features', k], 'expected true or false');
    }
  }
  const costs = p.costs;
  if (costs === undefined && parent !== undefined) return;
  if (costs === undefined) return bad(at, 'missing costs: a mapping of cost names to { cycles, grade, source }', true);
  if (!isMap(costs)) return bad([...at, 'costs'], 'expected a mapping of cost names to { cycles, grade, source }');
  for (const [k, v] of Object.entries(costs)) {
    if (!(COST_NAMES as string[]).includes(k)) {
      bad([...at, 'costs', k], `unknown cost ${k}${suggest(k, COST_NAMES)} (the names: docs/measure.md)`, true);
      continue;
    }
    checkFigure(v, [...at, 'costs', k], bad);
  }
  const missing = parent === undefined ? COST_NAMES.filter((k) => !(k in costs)) : [];
  if (missing.length > 0) bad([...at, 'costs'], `missing ${missing.length === 1 ? 'cost' : 'costs'} ${missing.join(', ')}: a profile that inherits none gives every cost`, true);
}

/** Checks one `{ cycles, grade, source }`. */
function checkFigure(v: unknown, at: Path, bad: (path: Path, message: string, key?: boolean) => void): void {
  if (!isMap(v)) return bad(at, 'expected { cycles: N, grade: A|B|C|U|L|D, source: "..." }');
  for (const k of Object.keys(v)) if (!FIGURE_KEYS.includes(k)) bad([...at, k], `unknown key ${k}; expected cycles, grade, source${suggest(k, FIGURE_KEYS)}`, true);
  if (typeof v.cycles !== 'number' || !Number.isFinite(v.cycles) || v.cycles < 0) bad([...at, 'cycles'], 'expected a number of cycles, 0 or more');
  if (typeof v.grade !== 'string' || !(GRADES as readonly string[]).includes(v.grade)) bad([...at, 'grade'], `expected a grade: ${GRADES.join(', ')} (costs.yaml's header says what each means)`);
  if (typeof v.source !== 'string' || v.source.trim() === '') bad([...at, 'source'], 'expected the source of the figure (text)');
}

/** Profile `name` with what it inherits applied; a cycle of `inherits` is reported at the profile that closes it. */
function resolve(all: Raw, name: string, loc: Locator, seen: string[]): Profile {
  if (seen.includes(name)) throw new CostTableError([issueAt(loc, ['profiles', name, 'inherits'], `profiles inherit in a cycle: ${[...seen, name].join(' → ')}`)]);
  const p = all[name] as Raw;
  const base = typeof p.inherits === 'string' ? resolve(all, p.inherits, loc, [...seen, name]) : undefined;
  const f = (p.features ?? {}) as Raw;
  const costs = { ...(base?.costs ?? {}) } as Record<CostName, CostFigure>;
  for (const [k, v] of Object.entries((p.costs ?? {}) as Raw)) {
    const fig = v as Raw;
    costs[k as CostName] = { cycles: fig.cycles as number, grade: fig.grade as Grade, source: fig.source as string };
  }
  return {
    name,
    description: p.description as string,
    clockGhz: (p.clock_ghz as number | undefined) ?? base!.clockGhz,
    features: { pcid: (f.pcid as boolean | undefined) ?? base!.features.pcid, invpcid: (f.invpcid as boolean | undefined) ?? base!.features.invpcid },
    xstateComponents: (p.xstate_components as number | undefined) ?? base!.xstateComponents,
    costs,
  };
}

function sortByPosition(issues: ScenarioIssue[]): ScenarioIssue[] {
  return issues.sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity) || (a.col ?? 0) - (b.col ?? 0));
}

/** The path of the built-in table (shipped beside the sources). */
export const BUILTIN_COST_FILE = fileURLToPath(new URL('../../../src/cost/costs.yaml', import.meta.url));

let builtin: CostTable | undefined;

/** The built-in cost table (src/cost/costs.yaml), read once. */
export function builtinCostTable(): CostTable {
  builtin ??= loadCostTable(readFileSync(BUILTIN_COST_FILE, 'utf8'), 'src/cost/costs.yaml');
  return builtin;
}

/** Reads a cost table from `file`. Throws CostTableError (an unreadable file included). */
export function costTableFile(file: string): CostTable {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CostTableError([{ file, path: '', message: `cannot read the cost table: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : code ?? String(e)}` }]);
  }
  return loadCostTable(text, file);
}

/** Profile `name` of `table` (its default when undefined). Throws ArgumentError naming the profiles there are. */
export function profileOf(table: CostTable, name?: string): Profile {
  const want = name ?? table.defaultProfile;
  const p = table.profiles.get(want);
  if (!p) throw new ArgumentError('--profile', `no profile ${JSON.stringify(want)} in ${table.file}; the profiles: ${[...table.profiles.keys()].join(', ')}${suggest(want, table.profiles.keys())}`);
  return p;
}
