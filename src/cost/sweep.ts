/**
 * `sweep`: a parameterised scenario (its `params:`) run over a grid of parameter values, each
 * point on each side of its debate (`sides:` or given ones; the scenario as written when there
 * are none), measured (measure.ts). The rows are what `isolab sweep` writes as CSV and charts.
 */
import { ArgumentError } from '../errors.js';
import type { CompiledScenario } from '../scenario/compile.js';
import { CATEGORIES, COST_NAMES, type Category } from './keys.js';
import { compareSides, type Side } from './compare.js';
import { measureScenario } from './measure.js';
import type { CostTable, Profile } from './table.js';

/** One swept parameter and its values, in order. */
export interface ParamAxis {
  name: string;
  values: number[];
  /** Spaced geometrically (`:log`): the chart's axis is logarithmic. */
  log: boolean;
}

/** At most this many points on one axis. */
export const MAX_AXIS_POINTS = 1000;

/**
 * Parses `name=from..to[:steps[:log]]` or `name=a,b,c`. `from..to` alone is every integer in
 * between; with `steps`, that many points spaced evenly (or geometrically with `:log`),
 * rounded to integers, repeats dropped. Throws ArgumentError naming what is wrong.
 */
export function parseAxis(text: string): ParamAxis {
  const eq = text.indexOf('=');
  const name = eq > 0 ? text.slice(0, eq).trim() : '';
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new ArgumentError('--param', `"${text}": expected name=from..to[:steps[:log]] or name=a,b,c`);
  const spec = text.slice(eq + 1).trim();
  const int = (s: string): number => {
    const n = Number(s.trim().replace(/_/g, ''));
    if (!Number.isSafeInteger(n)) throw new ArgumentError('--param', `"${text}": ${JSON.stringify(s.trim())} is not an integer`);
    return n;
  };
  const range = /^(-?[\d_]+)\s*\.\.\s*(-?[\d_]+)(?::(\d+)(?::(log))?)?$/.exec(spec);
  let values: number[];
  let log = false;
  if (range) {
    const from = int(range[1]);
    const to = int(range[2]);
    if (to < from) throw new ArgumentError('--param', `"${text}": the range ends (${to}) below where it starts (${from})`);
    if (range[3] === undefined) {
      if (to - from + 1 > MAX_AXIS_POINTS) throw new ArgumentError('--param', `"${text}": ${to - from + 1} points; at most ${MAX_AXIS_POINTS} (give :steps)`);
      values = Array.from({ length: to - from + 1 }, (_, i) => from + i);
    } else {
      const steps = int(range[3]);
      if (steps < 1 || steps > MAX_AXIS_POINTS) throw new ArgumentError('--param', `"${text}": steps must be from 1 to ${MAX_AXIS_POINTS}`);
      log = range[4] === 'log';
      if (log && from <= 0) throw new ArgumentError('--param', `"${text}": a :log range starts above 0`);
      values = Array.from({ length: steps }, (_, i) => {
        const t = steps === 1 ? 0 : i / (steps - 1);
        return Math.round(log ? from * (to / from) ** t : from + (to - from) * t);
      });
    }
  } else {
    values = spec.split(',').map(int);
    if (values.length > MAX_AXIS_POINTS) throw new ArgumentError('--param', `"${text}": at most ${MAX_AXIS_POINTS} values`);
  }
  return { name, values: [...new Set(values)], log };
}

/** One point of the grid on one side. */
export interface SweepRow {
  /** The swept params' values at this point. */
  params: Record<string, number>;
  side: string;
  profile: string;
  passed: boolean;
  cycles: number;
  ns: number;
  byCategory: Partial<Record<Category, number>>;
  /** Each cost's count. */
  costs: Partial<Record<(typeof COST_NAMES)[number], number>>;
  /** The run's event counts. */
  counts: Record<string, number>;
}

/**
 * Runs the grid: every combination of the axes' values (the first axis varying slowest), the
 * scenario compiled anew at each (`compile(params)`), on each side. `onPoint` hears each row.
 */
export function sweep(
  compile: (params: Record<string, number>) => CompiledScenario,
  axes: ParamAxis[],
  table: CostTable,
  profile: Profile,
  sides: Side[] | undefined,
  onPoint?: (row: SweepRow, done: number, total: number) => void,
): SweepRow[] {
  if (axes.length === 0) throw new ArgumentError('--param', 'give at least one --param name=from..to[:steps] to sweep');
  const names = new Set<string>();
  for (const a of axes) {
    if (names.has(a.name)) throw new ArgumentError('--param', `${a.name} is swept twice`);
    names.add(a.name);
  }
  const points: Record<string, number>[] = [{}];
  for (const a of axes) {
    const next: Record<string, number>[] = [];
    for (const p of points) for (const v of a.values) next.push({ ...p, [a.name]: v });
    points.splice(0, points.length, ...next);
  }
  const rows: SweepRow[] = [];
  let perPoint = 0;
  for (const params of points) {
    const c = compile(params);
    const declared = sides && sides.length > 0 ? sides : c.sides;
    const runs =
      declared.length >= 2
        ? compareSides(c, table, profile, sides).sides.map((s) => ({ side: s.name, profile: s.profile, report: s.report }))
        : [{ side: declared[0]?.name ?? c.name, profile: profile.name, report: measureScenario(c, table, profile) }];
    perPoint = runs.length;
    for (const r of runs) {
      const row: SweepRow = {
        params,
        side: r.side,
        profile: r.profile,
        passed: r.report.passed,
        cycles: r.report.total.cycles,
        ns: r.report.total.ns,
        byCategory: r.report.total.byCategory,
        costs: Object.fromEntries(r.report.total.items.map((i) => [i.name, i.count])),
        counts: { ...r.report.counts },
      };
      rows.push(row);
      onPoint?.(row, rows.length, points.length * perPoint);
    }
  }
  return rows;
}

/** A CSV field: quoted when it holds a comma, a quote or a line break. */
const field = (v: string | number | boolean): string => {
  const s = String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

/** The rows as CSV: the params, side, profile, passed, cycles, ns, each category, each cost's count, each run count. */
export function sweepCsv(rows: SweepRow[], axes: ParamAxis[]): string {
  const countNames = rows.length > 0 ? Object.keys(rows[0].counts) : [];
  const head = [...axes.map((a) => a.name), 'side', 'profile', 'passed', 'cycles', 'ns', ...CATEGORIES.map((c) => `cycles_${c}`), ...COST_NAMES.map((n) => `count_${n}`), ...countNames.map((n) => `events_${n}`)];
  const lines = [head.join(',')];
  for (const r of rows) {
    lines.push(
      [
        ...axes.map((a) => r.params[a.name]),
        r.side,
        r.profile,
        r.passed,
        r.cycles,
        r.ns,
        ...CATEGORIES.map((c) => r.byCategory[c] ?? 0),
        ...COST_NAMES.map((n) => r.costs[n] ?? 0),
        ...countNames.map((n) => r.counts[n]),
      ]
        .map(field)
        .join(','),
    );
  }
  return lines.join('\n') + '\n';
}
