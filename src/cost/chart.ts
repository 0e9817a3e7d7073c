/**
 * Charts of a sweep, drawn by Vega-Lite (compiled to Vega and rendered headless to SVG) and
 * rasterised to PNG by resvg: one line per side (and per value of the other swept params)
 * against the first swept param, of a metric of the rows, or of each side's excess over a
 * baseline side in per cent.
 */
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import * as vl from 'vega-lite';
import { ArgumentError } from '../errors.js';
import { CATEGORIES, COST_NAMES } from './keys.js';
import type { ParamAxis, SweepRow } from './sweep.js';

/** The metrics a chart can plot, for messages. */
export function metricNames(rows: SweepRow[]): string[] {
  return ['cycles', 'ns', ...CATEGORIES.map((c) => `cycles_${c}`), ...COST_NAMES.map((n) => `count_${n}`), ...(rows.length > 0 ? Object.keys(rows[0].counts).map((n) => `events_${n}`) : [])];
}

/** The value of `metric` in `row`. Throws ArgumentError for an unknown metric. */
export function metricOf(row: SweepRow, metric: string): number {
  if (metric === 'cycles') return row.cycles;
  if (metric === 'ns') return row.ns;
  if (metric.startsWith('cycles_') && (CATEGORIES as readonly string[]).includes(metric.slice(7))) return row.byCategory[metric.slice(7) as (typeof CATEGORIES)[number]] ?? 0;
  if (metric.startsWith('count_') && (COST_NAMES as string[]).includes(metric.slice(6))) return row.costs[metric.slice(6) as (typeof COST_NAMES)[number]] ?? 0;
  if (metric.startsWith('events_') && metric.slice(7) in row.counts) return row.counts[metric.slice(7)];
  throw new ArgumentError('--metric', `unknown metric ${metric}; the metrics: ${metricNames([row]).join(', ')}`);
}

export interface ChartOptions {
  metric: string;
  /** Plot each other side's excess over this side, in per cent of it. */
  relativeTo?: string;
  title: string;
}

/** The points a chart plots: x, y and the series, from the rows. */
export function chartPoints(rows: SweepRow[], axes: ParamAxis[], o: ChartOptions): { x: number; y: number; series: string }[] {
  const x = axes[0].name;
  const others = axes.slice(1).map((a) => a.name);
  const key = (r: SweepRow): string => others.map((n) => `${n}=${r.params[n]}`).join(' ');
  const seriesOf = (r: SweepRow): string => [r.side, key(r)].filter((s) => s !== '').join(' ');
  if (o.relativeTo === undefined) return rows.map((r) => ({ x: r.params[x], y: metricOf(r, o.metric), series: seriesOf(r) }));
  if (!rows.some((r) => r.side === o.relativeTo)) throw new ArgumentError('--relative-to', `no side ${o.relativeTo}; the sides: ${[...new Set(rows.map((r) => r.side))].join(', ')}`);
  const at = (r: SweepRow): string => axes.map((a) => r.params[a.name]).join(',');
  const base = new Map(rows.filter((r) => r.side === o.relativeTo).map((r) => [at(r), metricOf(r, o.metric)]));
  return rows
    .filter((r) => r.side !== o.relativeTo)
    .map((r) => {
      const b = base.get(at(r))!;
      return { x: r.params[x], y: b === 0 ? 0 : ((metricOf(r, o.metric) - b) / b) * 100, series: seriesOf(r) };
    });
}

/** The Vega-Lite specification of the chart. */
export function chartSpec(points: { x: number; y: number; series: string }[], axes: ParamAxis[], o: ChartOptions): vl.TopLevelSpec {
  const yTitle = o.relativeTo !== undefined ? `${o.metric} over ${o.relativeTo} (%)` : o.metric;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: o.title,
    width: 560,
    height: 320,
    background: 'white',
    data: { values: points },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: axes[0].name, scale: axes[0].log ? { type: 'log' } : { zero: false } },
      y: { field: 'y', type: 'quantitative', title: yTitle },
      color: { field: 'series', type: 'nominal', title: null },
    },
  } as vl.TopLevelSpec;
}

/** The chart as SVG text and PNG bytes. */
export async function renderChart(spec: vl.TopLevelSpec): Promise<{ svg: string; png: Uint8Array }> {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  const png = new Resvg(svg, { background: 'white', fitTo: { mode: 'zoom', value: 2 } }).render().asPng();
  return { svg, png };
}
