/**
 * `isolab trace FILE --format jsonl|perfetto`: runs a scenario and writes every event it
 * produced. With `--schedule S` (a schedule as `isolab explore` prints it) the run replays S
 * first, then the scenario's policy, as `isolab run --schedule` does.
 */
import { formatSchedule, parseSchedule } from '../explore/schedule.js';
import { compileScenarioFile } from '../scenario/index.js';
import { withKernelOptions } from '../explore/explore.js';
import { runScenario } from '../scenario/run.js';
import { toJsonl, toPerfetto } from '../trace/index.js';
import { checkOutputPath, writeOutput } from './output.js';
import { progressBar } from './progress.js';
import { explainStartFailure } from './start.js';

export interface TraceCommandOptions {
  format: 'jsonl' | 'perfetto';
  output?: string;
  seed?: number;
  maxSteps?: number;
  schedule?: string;
  /** `--kernel key=value` settings over the scenario's kernel options. */
  kernel?: string[];
}

export function traceCommand(file: string, opts: TraceCommandOptions): number {
  if (opts.output !== undefined) checkOutputPath(opts.output);
  const compiled = withKernelOptions(compileScenarioFile(file), opts.kernel ?? []);
  const schedule = opts.schedule !== undefined ? parseSchedule(opts.schedule, compiled.system.cpus ?? 1) : undefined;
  const progress = progressBar(compiled.name);
  let report;
  try {
    report = runScenario(compiled, { seed: opts.seed, maxSteps: opts.maxSteps, schedule, record: true, onProgress: progress.onProgress, progressEvery: 50_000 });
  } catch (e) {
    throw explainStartFailure(compiled, e, opts.kernel ?? []);
  } finally {
    progress.stop();
  }
  const meta = { cpus: compiled.system.cpus ?? 1, tasks: new Map(report.tasks.map((t) => [t.tid, t.name])), scenario: compiled.name, ...(schedule ? { schedule: formatSchedule(schedule) } : {}) };
  const records = report.trace ?? [];
  const text = opts.format === 'perfetto' ? JSON.stringify(toPerfetto(records, meta)) + '\n' : toJsonl(records, meta);
  writeOutput(opts.output, text);
  return 0;
}
