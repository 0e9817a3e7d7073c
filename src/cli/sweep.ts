/**
 * `isolab sweep FILE --param name=from..to[:steps[:log]] ... [--side ...] [--metric M]
 * [--relative-to SIDE] [--out PREFIX]`: runs a parameterised scenario over a grid (src/cost/
 * sweep.ts) and writes PREFIX.csv (every row), PREFIX.svg and PREFIX.png (the chart,
 * src/cost/chart.ts). Every output path is checked before anything runs, and the files are
 * written only once all three are ready.
 */
import { basename } from 'node:path';
import { chartPoints, chartSpec, metricNames, metricOf, renderChart } from '../cost/chart.js';
import { ArgumentError } from '../errors.js';
import { parseSide } from '../cost/compare.js';
import { parseAxis, sweep, sweepCsv, type SweepRow } from '../cost/sweep.js';
import { withKernelOptions } from '../explore/explore.js';
import { compileScenarioFile } from '../scenario/index.js';
import { costOptions, formatNs } from './measure.js';
import { checkOutputPath, writeOutput } from './output.js';
import { parseParams } from './params.js';
import { progressBar } from './progress.js';

export interface SweepCommandOptions {
  param?: string[];
  set?: string[];
  side?: string[];
  profile?: string;
  cost?: string;
  kernel?: string[];
  metric?: string;
  relativeTo?: string;
  out?: string;
  json?: boolean;
}

export async function sweepCommand(file: string, opts: SweepCommandOptions): Promise<number> {
  const axes = (opts.param ?? []).map(parseAxis);
  const fixed = parseParams(opts.set ?? [], '--set');
  const prefix = opts.out ?? `sweep-${basename(file).replace(/\.ya?ml$/, '')}`;
  const files = { csv: `${prefix}.csv`, svg: `${prefix}.svg`, png: `${prefix}.png` };
  for (const f of Object.values(files)) checkOutputPath(f);
  const { table, profile } = costOptions(opts);
  const sides = (opts.side ?? []).map(parseSide);
  const metric = opts.metric ?? 'cycles';
  // A metric of the cost model is checked now (a run's own counts, events_*, only once there is a run).
  if (!metric.startsWith('events_') && !metricNames([]).includes(metric)) throw new ArgumentError('--metric', `unknown metric ${metric}; the metrics: ${metricNames([]).join(', ')}, events_<count>`);
  // The first point is compiled before the run so that a bad param fails at once.
  const compile = (params: Record<string, number>) => withKernelOptions(compileScenarioFile(file, { ...fixed, ...params }), opts.kernel ?? []);
  const first = compile(Object.fromEntries(axes.map((a) => [a.name, a.values[0]])));
  const progress = progressBar(`${first.name} sweep`);
  let rows: SweepRow[];
  try {
    rows = sweep(compile, axes, table, profile, sides, (_, done, total) => progress.onProgress(done, total));
  } finally {
    progress.stop();
  }
  metricOf(rows[0], metric);
  const title = `${first.name}: ${opts.relativeTo !== undefined ? `${metric} over ${opts.relativeTo}` : metric} on ${profile.name}`;
  const chart = { metric, relativeTo: opts.relativeTo, title };
  const points = chartPoints(rows, axes, chart);
  const { svg, png } = await renderChart(chartSpec(points, axes, chart));
  const csv = sweepCsv(rows, axes);
  writeOutput(files.csv, csv);
  writeOutput(files.svg, svg);
  writeOutput(files.png, png);
  if (opts.json) process.stdout.write(JSON.stringify({ files, rows, points }, null, 2) + '\n');
  else process.stdout.write(formatSweep(rows, axes.map((a) => a.name), points, chart.relativeTo, metric, files));
  return 0;
}

/** A summary: one line per row (params, side, cycles, time), the plotted points, the files written. */
function formatSweep(rows: SweepRow[], names: string[], points: { x: number; y: number; series: string }[], relativeTo: string | undefined, metric: string, files: Record<string, string>): string {
  let s = `${rows.length} runs\n`;
  for (const r of rows) s += `  ${names.map((n) => `${n}=${r.params[n]}`).join(' ')}  ${r.side}: ${Math.round(r.cycles).toLocaleString('en-US')} cycles, ${formatNs(r.ns)}${r.passed ? '' : ' (expectations did not hold)'}\n`;
  if (relativeTo !== undefined) {
    s += `${metric} over ${relativeTo}:\n`;
    for (const p of points) s += `  ${names[0]}=${p.x} ${p.series}: ${p.y.toFixed(3)} %\n`;
  }
  s += `wrote ${files.csv}, ${files.svg}, ${files.png}\n`;
  return s;
}
