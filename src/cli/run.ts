/** `isolab run FILE`: runs a scenario and prints its timeline and verdicts (or JSON). Exit 0 when every expectation held, 1 when one did not. */
import { parseSchedule } from '../explore/schedule.js';
import { compileScenarioFile } from '../scenario/index.js';
import { withKernelOptions } from '../explore/explore.js';
import { runScenario } from '../scenario/run.js';
import { parseParams } from './params.js';
import { progressBar } from './progress.js';
import { formatRun } from './report.js';
import { explainStartFailure } from './start.js';

export interface RunCommandOptions {
  seed?: number;
  maxSteps?: number;
  json?: boolean;
  timeline?: boolean;
  cpu?: number;
  schedule?: string;
  /** `--kernel key=value` settings over the scenario's kernel options. */
  kernel?: string[];
  /** `--param name=value`: the scenario's params. */
  param?: string[];
}

export function runCommand(file: string, opts: RunCommandOptions): number {
  const compiled = withKernelOptions(compileScenarioFile(file, parseParams(opts.param ?? [])), opts.kernel ?? []);
  const schedule = opts.schedule !== undefined ? parseSchedule(opts.schedule, compiled.system.cpus ?? 1) : undefined;
  const progress = opts.json ? undefined : progressBar(compiled.name);
  let report;
  try {
    report = runScenario(compiled, { seed: opts.seed, maxSteps: opts.maxSteps, schedule, onProgress: progress?.onProgress, progressEvery: 50_000 });
  } catch (e) {
    throw explainStartFailure(compiled, e, opts.kernel ?? []);
  } finally {
    progress?.stop();
  }
  if (opts.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  else process.stdout.write(formatRun(report, { timeline: opts.timeline !== false, cpu: opts.cpu }));
  return report.passed ? 0 : 1;
}
