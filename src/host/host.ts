/**
 * `isolab host`: a scenario run on this machine's kernel beside isolab's run of it. Decides
 * what the host can run (support.ts), runs the scenario in isolab with the kernel log on
 * (plan.ts), generates a C program reproducing the runnable operations in isolab's order
 * (cgen.ts), builds it with the host's C compiler, runs it, and compares every record and
 * exit status (compare.ts).
 */
import { compileGenerated, findHostCompiler, removeGenerated, runGenerated } from '../../native/build.js';
import { ConfigError } from '../errors.js';
import type { CompiledScenario } from '../scenario/compile.js';
import { generateC } from './cgen.js';
import { compareRuns, parseHostOutput, type Comparison } from './compare.js';
import { hostFacts, type HostFacts } from './facts.js';
import { planFromModel } from './plan.js';
import { hostSupport, type HostItem } from './support.js';

/** How long the generated program may run. */
const RUN_TIMEOUT_MS = 60_000;

export interface HostReport {
  scenario: string;
  file?: string;
  /** False when the scenario's configuration keeps it from running on the host (`blocking`). */
  ran: boolean;
  blocking: HostItem[];
  notes: HostItem[];
  comparison?: Comparison;
  /** The generated program's trouble, if it had any (a timeout, a crash of the supervisor). */
  trouble?: string;
  /** True when everything compared agreed (schedule-dependent differences do not count). */
  agreed: boolean;
}

export interface HostOptions {
  /** The C compiler (default: $CC, then cc, gcc, clang on PATH). */
  cc?: string;
  /** Called with the generated C before it is built. */
  onSource?: (source: string) => void;
  /** The host's facts (default: read from /proc and /sys). */
  facts?: HostFacts;
}

/** Why `isolab host` cannot run here at all, or null. */
export function hostUnavailableReason(cc?: string): string | null {
  if (process.platform !== 'linux' || process.arch !== 'x64') return `the host is ${process.platform}/${process.arch}, not Linux x86-64`;
  if (findHostCompiler(cc) === null) return cc !== undefined ? `no C compiler at ${cc}` : 'no C compiler (cc, gcc or clang) on PATH';
  return null;
}

/** Runs compiled scenario `c` on the host and compares it with isolab's run. Throws ConfigError when there is no compiler or the host is not Linux x86-64. */
export async function runOnHost(c: CompiledScenario, opts: HostOptions = {}): Promise<HostReport> {
  const unavailable = hostUnavailableReason(opts.cc);
  if (unavailable !== null) throw new ConfigError(opts.cc !== undefined ? '--cc' : 'host', unavailable);
  const compiler = findHostCompiler(opts.cc)!;
  const facts = opts.facts ?? hostFacts();
  const support = hostSupport(c, facts);
  const base = { scenario: c.name, file: c.locator?.file, blocking: support.blocking, notes: support.notes };
  if (support.blocking.length > 0) return { ...base, ran: false, agreed: false };
  const plan = planFromModel(c, support);
  const source = generateC(c, support, plan);
  opts.onSource?.(source);
  const build = await compileGenerated(source, compiler);
  if ('error' in build) {
    const messages = build.error.split('\n').slice(0, 20).join('\n');
    // With the compiler the user named, the compiler may be at fault; with the host's own, the generator is (an internal error).
    if (opts.cc !== undefined) throw new ConfigError('--cc', `${compiler} could not build the generated program:\n${messages}`);
    throw new Error(`${compiler} could not build the program isolab host generated (a bug in isolab):\n${messages}`);
  }
  let run;
  try {
    run = await runGenerated(build.binary, RUN_TIMEOUT_MS);
  } finally {
    await removeGenerated(build.binary);
  }
  const output = parseHostOutput(run.stdout);
  const comparison = compareRuns(c, support, plan, output);
  const trouble = run.timedOut
    ? `the host program ran out of time (${RUN_TIMEOUT_MS / 1000} s) and was killed`
    : run.code !== 0
      ? `the host program ended with ${run.signal ?? `status ${String(run.code)}`}${run.stderr ? `: ${run.stderr.trim().split('\n')[0]}` : ''}`
      : undefined;
  return { ...base, ran: true, comparison, ...(trouble ? { trouble } : {}), agreed: comparison.divergences.length === 0 && trouble === undefined };
}
