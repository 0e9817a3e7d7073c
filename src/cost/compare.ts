/**
 * `compare`: the sides of a debate run side by side, each a set of kernel options over the
 * scenario's and a cost profile (the scenario's `sides:` block, or sides given on the command
 * line), each measured (measure.ts), with the ratios of every count and cost to the first side.
 */
import { ArgumentError, ScenarioError } from '../errors.js';
import { KERNEL_OPTION_SPECS, resolveKernelOptions, type KernelOptions } from '../kernel/options.js';
import type { CompiledScenario, CompiledSide } from '../scenario/compile.js';
import { issueAt } from '../scenario/load.js';
import { suggest } from '../scenario/expr.js';
import { measureScenario, type MeasureOptions, type MeasureReport } from './measure.js';
import { profileOf, type CostTable, type Profile } from './table.js';

/** One side as compare runs it. */
export interface Side {
  name: string;
  description?: string;
  kernel: Partial<KernelOptions>;
  profile?: string;
}

export interface CompareReport {
  scenario: string;
  costTable: string;
  /** Each side with what it set and its measurement, in order; ratios are to the first. */
  sides: { name: string; description?: string; kernel: Partial<KernelOptions>; profile: string; report: MeasureReport }[];
}

/**
 * A side from the command line: `NAME:key=value,key=value`, each key a kernel option or
 * `profile`. Throws ArgumentError naming what is wrong.
 */
export function parseSide(text: string): Side {
  const colon = text.indexOf(':');
  const name = (colon < 0 ? text : text.slice(0, colon)).trim();
  if (!/^[A-Za-z][A-Za-z0-9_.-]*$/.test(name)) throw new ArgumentError('--side', `"${text}": expected NAME:key=value,... (a name of letters, digits, _ . -, then kernel options or profile=P)`);
  const side: Side = { name, kernel: {} };
  const rest = colon < 0 ? '' : text.slice(colon + 1).trim();
  for (const item of rest === '' ? [] : rest.split(',')) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new ArgumentError('--side', `"${text}": "${item.trim()}" is not key=value`);
    const key = item.slice(0, eq).trim();
    const raw = item.slice(eq + 1).trim();
    if (key === 'profile') {
      side.profile = raw;
      continue;
    }
    if (!(key in KERNEL_OPTION_SPECS)) throw new ArgumentError('--side', `"${text}": ${key} is neither a kernel option nor profile${suggest(key, [...Object.keys(KERNEL_OPTION_SPECS), 'profile'])}`);
    (side.kernel as Record<string, unknown>)[key] = /^\d+$/.test(raw) ? Number(raw) : raw === 'true' ? true : raw === 'false' ? false : raw;
  }
  resolveKernelOptions(side.kernel);
  return side;
}

/** The scenario with a side's kernel options over its own. */
export function withSide(c: CompiledScenario, side: Pick<Side, 'kernel'>): CompiledScenario {
  return { ...c, system: { ...c.system, kernel: { ...(c.system.kernel ?? {}), ...side.kernel } } };
}

/**
 * Runs every side of `c` (`sides`, or the scenario's own) and measures it on its profile (the
 * side's, else `defaultProfile`). Throws ArgumentError when there are fewer than two sides, and
 * a located ScenarioError when a scenario's side names a profile the table lacks.
 */
export function compareSides(c: CompiledScenario, table: CostTable, defaultProfile: Profile, sides?: Side[], opts: MeasureOptions = {}): CompareReport {
  const list: (Side & { path?: CompiledSide['path'] })[] = sides && sides.length > 0 ? sides : c.sides;
  if (list.length < 2) {
    throw new ArgumentError('--side', `${c.name} declares ${list.length === 0 ? 'no sides' : 'one side'}; give at least two, in the scenario's sides: block or as --side NAME:key=value,... (docs/measure.md)`);
  }
  const names = new Set<string>();
  for (const s of list) {
    if (names.has(s.name)) throw new ArgumentError('--side', `two sides are named ${s.name}`);
    names.add(s.name);
  }
  const out: CompareReport['sides'] = [];
  for (const side of list) {
    let profile = defaultProfile;
    if (side.profile !== undefined) {
      if (!table.profiles.has(side.profile) && side.path) {
        throw new ScenarioError([issueAt(c.locator, [...side.path, 'profile'], `no profile ${JSON.stringify(side.profile)} in ${table.file}; the profiles: ${[...table.profiles.keys()].join(', ')}${suggest(side.profile, table.profiles.keys())}`)]);
      }
      profile = profileOf(table, side.profile);
    }
    const report = measureScenario(withSide(c, side), table, profile, opts);
    out.push({ name: side.name, description: side.description, kernel: side.kernel, profile: profile.name, report });
  }
  return { scenario: c.name, costTable: table.file, sides: out };
}
