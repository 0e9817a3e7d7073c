/**
 * `isolab measure FILE [--profile P] [--cost F] [--json]`: runs a scenario on a profile's CPU
 * and prints what it cost (src/cost/): cycles and time per CPU, task, syscall and operation,
 * by category, with the counts behind each figure.
 */
import { parseSchedule } from '../explore/schedule.js';
import { withKernelOptions } from '../explore/explore.js';
import { CATEGORIES } from '../cost/keys.js';
import type { CostBreakdown } from '../cost/account.js';
import { measureScenario, type MeasureReport } from '../cost/measure.js';
import { builtinCostTable, costTableFile, profileOf, type CostTable, type Profile } from '../cost/table.js';
import { compileScenarioFile } from '../scenario/index.js';
import { checkOutputPath, writeOutput } from './output.js';
import { parseParams } from './params.js';
import { explainStartFailure } from './start.js';

export interface MeasureCommandOptions {
  profile?: string;
  cost?: string;
  json?: boolean;
  output?: string;
  seed?: number;
  maxSteps?: number;
  schedule?: string;
  kernel?: string[];
  param?: string[];
}

/** The cost table `--cost` names (the built-in one without it) and its profile `--profile` (its default without it). */
export function costOptions(opts: { cost?: string; profile?: string }): { table: CostTable; profile: Profile } {
  const table = opts.cost !== undefined ? costTableFile(opts.cost) : builtinCostTable();
  return { table, profile: profileOf(table, opts.profile) };
}

export function measureCommand(file: string, opts: MeasureCommandOptions): number {
  if (opts.output !== undefined) checkOutputPath(opts.output);
  const { table, profile } = costOptions(opts);
  const compiled = withKernelOptions(compileScenarioFile(file, parseParams(opts.param ?? [])), opts.kernel ?? []);
  const schedule = opts.schedule !== undefined ? parseSchedule(opts.schedule, compiled.system.cpus ?? 1) : undefined;
  let report: MeasureReport;
  try {
    report = measureScenario(compiled, table, profile, { seed: opts.seed, maxSteps: opts.maxSteps, schedule });
  } catch (e) {
    throw explainStartFailure(compiled, e, opts.kernel ?? []);
  }
  writeOutput(opts.output, opts.json ? JSON.stringify(report, null, 2) + '\n' : formatMeasure(report));
  return 0;
}

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const count = (n: number): string => (Number.isInteger(n) ? n.toLocaleString('en-US') : n.toFixed(2));

/** A duration in ns as ns, µs or ms. */
export function formatNs(ns: number): string {
  if (ns < 1000) return `${ns.toFixed(1)} ns`;
  if (ns < 1e6) return `${(ns / 1000).toFixed(2)} µs`;
  return `${(ns / 1e6).toFixed(2)} ms`;
}

/** Categories of a breakdown as `syscall 40 %, cr3 30 %` (largest first, those of 1 % or more). */
function shares(b: CostBreakdown): string {
  if (b.cycles === 0) return '';
  const parts = CATEGORIES.filter((c) => (b.byCategory[c] ?? 0) > 0)
    .map((c) => [c, b.byCategory[c]!] as const)
    .sort((x, y) => y[1] - x[1])
    .filter(([, v]) => v / b.cycles >= 0.01)
    .map(([c, v]) => `${c} ${Math.round((v / b.cycles) * 100)} %`);
  return parts.join(', ');
}

/** Pads rows of cells into columns: the first and a `where` column left-aligned, numbers right-aligned. */
function columns(rows: string[][], textLast = false, indent = '  '): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const left = (i: number): boolean => i === 0 || (textLast && i === rows[0].length - 1);
  return rows.map((r) => indent + r.map((c, i) => (left(i) ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd()).join('\n') + '\n';
}

/** The report as text. */
export function formatMeasure(r: MeasureReport): string {
  const p = r.profile;
  let s = `${r.scenario} on ${p.name}: ${p.description}\n`;
  s += `${p.clockGhz} GHz, PCID ${p.features.pcid ? 'on' : 'off'}, INVPCID ${p.features.invpcid ? 'on' : 'off'}; costs from ${r.costTable}\n`;
  s += `${int(r.steps)} steps, ${r.finished ? 'every task finished' : 'stopped at the step limit'}; the scenario's expectations ${r.passed ? 'held' : 'did not all hold'} on this CPU\n\n`;
  s += `total: ${int(r.total.cycles)} cycles, ${formatNs(r.total.ns)} of CPU time\n`;
  const byCat = CATEGORIES.filter((c) => r.total.byCategory[c] !== undefined).map((c) => [c, int(r.total.byCategory[c]!), `${((r.total.byCategory[c]! / Math.max(r.total.cycles, 1)) * 100).toFixed(1)} %`]);
  if (byCat.length > 0) s += columns([['category', 'cycles', 'share'], ...byCat]);
  s += '\n';
  if (r.total.items.length > 0) s += columns([['cost', 'count', 'cycles'], ...r.total.items.map((i) => [`${i.name} (${i.category})`, count(i.count), int(i.cycles)])]) + '\n';
  s += 'per CPU\n' + columns(r.cpus.map((c) => [`cpu ${c.cpu}`, `${int(c.cycles)} cycles`, formatNs(c.ns), shares(c)]), true) + '\n';
  if (r.tasks.length > 0) s += 'per task\n' + columns(r.tasks.map((t) => [`${t.tid} ${t.name}`, `${int(t.cycles)} cycles`, formatNs(t.ns), shares(t)]), true) + '\n';
  if (r.syscalls.length > 0) {
    s += 'per syscall (entry to the return to user mode)\n';
    s += columns([['syscall', 'calls', 'cycles/call', 'cycles', 'where'], ...r.syscalls.map((c) => [c.name, int(c.calls), int(c.cyclesPerCall), int(c.cycles), shares(c)])], true) + '\n';
  }
  const top = [...r.ops].sort((a, b) => b.cycles - a.cycles).slice(0, 15);
  if (top.length > 0) {
    s += `per operation (${top.length < r.ops.length ? `the ${top.length} costliest of ${r.ops.length}` : 'all'}, kernel work on its behalf included)\n`;
    s += columns([['operation', 'runs', 'cycles', 'where'], ...top.map((o) => [o.op, int(o.runs), int(o.cycles), shares(o)])], true);
  }
  return s;
}
