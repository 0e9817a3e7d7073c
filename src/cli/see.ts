/**
 * `isolab see FILE`: records a run of a scenario step by step (src/see/record.ts) and shows it
 * in a browser: served on 127.0.0.1 (a free port unless `--port`; the URL is printed) until
 * interrupted, or with `--out FILE` written as one self-contained HTML file (no server, no
 * network access when opened). `--schedule` runs those items first as `isolab run` does;
 * `--replay` (or `--invariants`) replays the schedule as `isolab replay` does, checking the
 * invariants after each step, and the page opens at the first violation. `--compare` records
 * the scenario's sides (or the `--side`s given) and shows them side by side, aligned on their
 * operations.
 */
import { ArgumentError } from '../errors.js';
import { parseSide, withSide } from '../cost/compare.js';
import { onProfile } from '../cost/measure.js';
import { builtinCostTable, profileOf } from '../cost/table.js';
import { withKernelOptions } from '../explore/explore.js';
import { parseSchedule } from '../explore/schedule.js';
import type { CompiledScenario } from '../scenario/compile.js';
import { compileScenarioFile } from '../scenario/index.js';
import { recordComparison, type SeeSide } from '../see/compare.js';
import { renderPage, seeAssets } from '../see/html.js';
import { recordScenario, type RecordOptions } from '../see/record.js';
import { serveFiles, type ServedFile } from '../see/server.js';
import { toWire } from '../see/wire.js';
import { COMPARISON_FORMAT, type Comparison, type Recording } from '../see/types.js';
import { invariantList } from './explore.js';
import { checkOutputPath, writeOutput } from './output.js';
import { parseParams } from './params.js';
import { explainStartFailure } from './start.js';

export interface SeeCommandOptions {
  schedule?: string;
  replay?: boolean;
  invariants?: string;
  complete?: boolean;
  until?: 'end' | 'ops';
  kernel?: string[];
  param?: string[];
  seed?: number;
  maxSteps?: number;
  compare?: boolean;
  side?: string[];
  port?: number;
  out?: string;
}

/** The sides to compare: those given, or the scenario's; each with its profile's CPU features when it names one. */
function sidesOf(c: CompiledScenario, given: string[]): SeeSide[] {
  const sides = given.length > 0 ? given.map(parseSide) : c.sides.map((s) => ({ name: s.name, kernel: s.kernel, profile: s.profile }));
  if (sides.length < 2) throw new ArgumentError('--compare', `${c.name} declares ${sides.length === 0 ? 'no sides' : 'one side'}: give two or more with --side NAME:key=value,...`);
  return sides.map((s) => {
    const compiled = withSide(c, s);
    return { name: s.name, compiled: s.profile ? onProfile(compiled, profileOf(builtinCostTable(), s.profile)) : compiled };
  });
}

/** The recording (or comparison) the options ask for. */
export function seeData(file: string, opts: SeeCommandOptions): Recording | Comparison {
  const c = withKernelOptions(compileScenarioFile(file, parseParams(opts.param ?? [])), opts.kernel ?? []);
  const replaying = opts.replay === true || opts.invariants !== undefined;
  if (replaying && opts.schedule === undefined) throw new ArgumentError('--replay', 'give the schedule to replay with --schedule (as isolab explore prints it)');
  if ((opts.complete || opts.until) && !replaying) throw new ArgumentError('--complete', '--complete and --until go with --replay');
  const o: RecordOptions = {
    schedule: opts.schedule !== undefined ? parseSchedule(opts.schedule, c.system.cpus ?? 1) : undefined,
    seed: opts.seed,
    maxSteps: opts.maxSteps,
    ...(replaying ? { invariants: invariantList(opts.invariants), complete: opts.complete, until: opts.until ?? 'end' } : {}),
  };
  try {
    if (opts.compare || (opts.side ?? []).length > 0) return recordComparison(sidesOf(c, opts.side ?? []), o);
    return recordScenario(c, o);
  } catch (e) {
    throw explainStartFailure(c, e, opts.kernel ?? []);
  }
}

/** The files the server holds for `data`: the page, which fetches the recording beside it. */
export function seeFiles(data: Recording | Comparison): Map<string, ServedFile> {
  const page = renderPage(data, seeAssets(), 'recording.json');
  const html = { body: page, type: 'text/html; charset=utf-8' };
  return new Map<string, ServedFile>([
    ['/', html],
    ['/index.html', html],
    ['/recording.json', { body: JSON.stringify(toWire(data)), type: 'application/json' }],
  ]);
}

export async function seeCommand(file: string, opts: SeeCommandOptions): Promise<number> {
  if (opts.out !== undefined) {
    if (opts.port !== undefined) throw new ArgumentError('--port', '--out writes a file and serves nothing: give one of --out and --port');
    checkOutputPath(opts.out);
  }
  const assets = seeAssets();
  const data = seeData(file, opts);
  if (opts.out !== undefined) {
    writeOutput(opts.out, renderPage(data, assets));
    process.stdout.write(`wrote ${opts.out}: ${summary(data)}\n`);
    return 0;
  }
  let server;
  try {
    server = await serveFiles(seeFiles(data), opts.port ?? 0);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ArgumentError('--port', `cannot listen on 127.0.0.1:${opts.port ?? 0}: ${err.code === 'EADDRINUSE' ? 'the port is in use' : err.code === 'EACCES' ? 'permission denied' : err.message}`);
  }
  process.stdout.write(`${summary(data)}\nisolab see: ${server.url}  (127.0.0.1 only; Ctrl-C stops)\n`);
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await server.close();
  return 0;
}

/** One line on what was recorded. */
function summary(data: Recording | Comparison): string {
  const one = (r: Recording): string => `${r.steps} steps, ${r.events.length} events${r.violation ? `, ${r.violation.invariant} broken at step ${r.violation.step}` : ''}`;
  return data.format === COMPARISON_FORMAT ? `${data.sides.map((s) => `${s.name}: ${one(s.recording)}`).join('; ')}; ${data.rows.length} operations aligned` : `${data.scenario.name}: ${one(data)}`;
}
