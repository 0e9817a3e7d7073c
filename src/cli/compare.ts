/**
 * `isolab compare FILE [--side NAME:key=value,...]... [--profile P] [--cost F] [--json]`: runs
 * the sides of a debate (the scenario's `sides:`, or those given) and sets their counts and
 * costs side by side, with each side's ratio to the first (src/cost/compare.ts).
 */
import { compareSides, parseSide, type CompareReport } from '../cost/compare.js';
import { CATEGORIES, COST_KEYS, COST_NAMES } from '../cost/keys.js';
import { withKernelOptions } from '../explore/explore.js';
import { compileScenarioFile } from '../scenario/index.js';
import { costOptions, formatNs } from './measure.js';
import { checkOutputPath, writeOutput } from './output.js';
import { parseParams } from './params.js';
import { explainStartFailure } from './start.js';

export interface CompareCommandOptions {
  side?: string[];
  profile?: string;
  cost?: string;
  kernel?: string[];
  param?: string[];
  seed?: number;
  maxSteps?: number;
  json?: boolean;
  output?: string;
}

export function compareCommand(file: string, opts: CompareCommandOptions): number {
  if (opts.output !== undefined) checkOutputPath(opts.output);
  const { table, profile } = costOptions(opts);
  const sides = (opts.side ?? []).map(parseSide);
  const compiled = withKernelOptions(compileScenarioFile(file, parseParams(opts.param ?? [])), opts.kernel ?? []);
  let report: CompareReport;
  try {
    report = compareSides(compiled, table, profile, sides, { seed: opts.seed, maxSteps: opts.maxSteps });
  } catch (e) {
    throw explainStartFailure(compiled, e, opts.kernel ?? []);
  }
  writeOutput(opts.output, opts.json ? JSON.stringify(report, null, 2) + '\n' : formatCompare(report));
  return 0;
}

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const num = (n: number): string => (Number.isInteger(n) ? n.toLocaleString('en-US') : n.toFixed(2));
/** b / a, or a dash when a is 0 (and b is not). */
const ratio = (b: number, a: number): string => (a === 0 ? (b === 0 ? '1.00' : '—') : (b / a).toFixed(2));

/** Right-aligned columns after a left-aligned first one. */
function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => '  ' + r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd()).join('\n') + '\n';
}

/** The comparison as text. */
export function formatCompare(r: CompareReport): string {
  const sides = r.sides;
  const first = sides[0];
  const setting = (s: CompareReport['sides'][number]): string => {
    const kv = Object.entries(s.kernel).map(([k, v]) => `${k}=${String(v)}`);
    return `${kv.length > 0 ? kv.join(', ') : 'the scenario as written'}; on ${s.profile} (${s.report.profile.clockGhz} GHz, PCID ${s.report.profile.features.pcid ? 'on' : 'off'})`;
  };
  let s = `${r.scenario}: ${sides.length} sides, costs from ${r.costTable}\n`;
  for (const side of sides) s += `  ${side.name}: ${setting(side)}${side.description ? `\n    ${side.description}` : ''}\n`;
  const head = ['', ...sides.map((x) => x.name), ...sides.slice(1).map((x) => `${x.name}/${first.name}`)];
  const row = (label: string, values: number[], fmt: (n: number) => string = int): string[] => [label, ...values.map(fmt), ...values.slice(1).map((v) => ratio(v, values[0]))];

  const main: string[][] = [head];
  main.push(['expectations', ...sides.map((x) => (x.report.passed ? 'held' : 'did not hold')), ...sides.slice(1).map(() => '')]);
  main.push(row('cycles', sides.map((x) => x.report.total.cycles)));
  main.push(['time', ...sides.map((x) => formatNs(x.report.total.ns)), ...sides.slice(1).map((x) => ratio(x.report.total.ns, first.report.total.ns))]);
  for (const c of CATEGORIES) {
    const v = sides.map((x) => x.report.total.byCategory[c] ?? 0);
    if (v.some((x) => x !== 0)) main.push(row(`  ${c}`, v));
  }
  s += '\n' + table(main);

  const counts: string[][] = [head];
  for (const k of Object.keys(first.report.counts) as (keyof typeof first.report.counts)[]) counts.push(row(k, sides.map((x) => x.report.counts[k]), num));
  s += '\nthe runs\' counts\n' + table(counts);

  const costs: string[][] = [head];
  for (const name of COST_NAMES) {
    const items = sides.map((x) => x.report.total.items.find((i) => i.name === name));
    if (items.every((i) => i === undefined)) continue;
    costs.push([`${name} (${COST_KEYS[name].category})`, ...items.map((i) => (i ? `${num(i.count)}: ${int(i.cycles)}` : '0')), ...items.slice(1).map((i) => ratio(i?.cycles ?? 0, items[0]?.cycles ?? 0))]);
  }
  s += '\ncosts (count: cycles)\n' + table(costs);

  const names = [...new Set(sides.flatMap((x) => x.report.syscalls.map((c) => c.name)))].sort();
  if (names.length > 0) {
    const sys: string[][] = [head];
    for (const n of names) {
      const per = sides.map((x) => x.report.syscalls.find((c) => c.name === n)?.cyclesPerCall ?? 0);
      sys.push(row(n, per));
    }
    s += '\ncycles per call, by syscall\n' + table(sys);
  }
  return s;
}
