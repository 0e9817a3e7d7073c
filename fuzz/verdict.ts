/**
 * Running one fuzz case as `isolab run` would, and saying whether isolab misbehaved. A case is
 * scenario text; it is compiled (compileScenarioText, the check), run (runScenario, with the
 * start failures turned into located errors by explainStartFailure, as src/cli/run.ts does),
 * and the outcome classified as src/cli/main.ts maps errors to exit statuses:
 * - a ScenarioError is a user error (exit 2), a finding only when one of its issues has no
 *   line and column;
 * - any other IsolabError except ModelError is a user error too (exit 2), but one that escaped
 *   the checks: it names no place in the file, so it is a finding (`unlocated`);
 * - a ModelError (a broken model invariant) and any other exception are internal errors
 *   (exit 70): findings (`model`, `internal`);
 * - a run that completes is judged by what the model itself reports: a debug-check finding
 *   (a `debug` timeline entry, or a failed debug_checks or pti_user_pgd invariant) is a finding
 *   unless a kernel option that deliberately breaks the kernel explains it; with
 *   `strictEnd`, also tasks left alive (`stuck` at the step limit, `deadlock` before it) and
 *   frames leaked once every task exited (`leak`).
 * Each outcome carries a digest of the whole run (verdicts, timeline, counts and every event),
 * so running a case twice tells whether the model is deterministic.
 */
import { createHash } from 'node:crypto';
import { explainStartFailure } from '../src/cli/start.js';
import { IsolabError, ModelError, ScenarioError } from '../src/errors.js';
import { compileScenarioText, runScenario, type CompiledScenario, type RunReport } from '../src/scenario/index.js';

export type FindingKind = 'internal' | 'model' | 'unlocated' | 'debug' | 'stuck' | 'deadlock' | 'leak' | 'nondeterminism' | 'hang';

/** What one run of a case gave. */
export interface Outcome {
  /** `ok`: ran; `rejected`: a located user error (exit 2); `finding`: isolab misbehaved. */
  status: 'ok' | 'rejected' | 'finding';
  kind?: FindingKind;
  /** The error or the finding, in a few lines. */
  message: string;
  /** A hash of everything the run produced (or of the error), for the determinism check. */
  digest: string;
  steps: number;
}

export interface CaseOptions {
  /** Overrides the scenario's step limit (as `isolab run --max-steps`). */
  maxSteps?: number;
  /** Judge tasks left alive and leaks too (for generated scenarios, which always end). */
  strictEnd?: boolean;
  /** Hash every event of the run into the digest (slower; the timeline and counts are always hashed). */
  events?: boolean;
}

/** JSON with 64-bit values (bigint) as hex strings. */
function json(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `0x${x.toString(16)}` : x));
}

function sha(text: string): string {
  return createHash('sha1').update(text).digest('hex');
}

/** Classifies an exception as the CLI would (see the header). */
export function classifyError(e: unknown): Outcome {
  if (e instanceof ScenarioError) {
    const unlocated = e.issues.filter((i) => i.line === undefined);
    if (unlocated.length > 0) return { status: 'finding', kind: 'unlocated', message: `ScenarioError without file:line:col: ${unlocated.map((i) => `${i.path || '(top)'}: ${i.message}`).join('; ')}`, digest: sha(e.message), steps: 0 };
    return { status: 'rejected', message: e.message, digest: sha(e.message), steps: 0 };
  }
  if (e instanceof ModelError) return { status: 'finding', kind: 'model', message: `ModelError (exit 70): ${e.message}`, digest: sha(e.message), steps: 0 };
  if (e instanceof IsolabError) return { status: 'finding', kind: 'unlocated', message: `${e.name} (exit 2, but no file:line:col): ${e.message}`, digest: sha(e.message), steps: 0 };
  const err = e instanceof Error ? e : new Error(String(e));
  const where = (err.stack ?? '').split('\n').slice(1, 4).map((l) => l.trim()).join(' < ');
  return { status: 'finding', kind: 'internal', message: `internal error (exit 70): ${err.name}: ${err.message}${where ? `\n  ${where}` : ''}`, digest: sha(err.message), steps: 0 };
}

/**
 * Debug-check findings a deliberate kernel bug explains: entry_stack under per_cpu_c, anything
 * under wp_copy_flush=none, and DEBUG_PREEMPT in clear_asid_other when it runs preemptible
 * (clear_asid_other=preemptible, seed 001's other side).
 */
function explained(c: CompiledScenario, finding: string): boolean {
  const k = c.system.kernel ?? {};
  if (k.wp_copy_flush === 'none') return true;
  if (k.clear_asid_other === 'preemptible' && /^debug_preempt: .* in preemptible code: clear_asid_other\b/.test(finding)) return true;
  return k.entry_stack === 'per_cpu_c' && /^entry_stack\b/.test(finding);
}

/** The findings of a run that completed. */
function judge(c: CompiledScenario, r: RunReport, maxSteps: number, opts: CaseOptions): { kind: FindingKind; message: string } | undefined {
  const debug = r.timeline.filter((t) => t.kind === 'debug' && !explained(c, t.text.replace(/^debug check /, '')));
  const inv = (name: string) => r.verdicts.find((v) => v.kind === 'invariant' && v.expected === name);
  const failed = (name: string) => inv(name)?.status === 'failed';
  if (debug.length > 0) {
    const checks = [...new Set(debug.map((t) => /^debug check (\w+)/.exec(t.text)?.[1] ?? t.text))].sort();
    return { kind: 'debug', message: `debug checks ${checks.join(', ')}\n${debug.slice(0, 3).map((t) => `  step ${t.step} cpu ${t.cpu}: ${t.text}`).join('\n')}` };
  }
  for (const name of ['debug_checks', 'pti_user_pgd']) {
    const v = inv(name);
    if (failed(name) && v && !explained(c, v.actual.replace(/^.*?: /, ''))) {
      const checks = [...new Set([...v.actual.matchAll(/(?:^|; |: )(\w+): /g)].map((m) => m[1]).filter((x) => !/finding/.test(x)))].sort();
      return { kind: 'debug', message: `invariant ${name} (${checks.join(', ')})\n  ${v.actual}` };
    }
  }
  if (!opts.strictEnd) return undefined;
  const alive = r.tasks.filter((t) => t.exit === null);
  if (alive.length > 0) {
    const who = alive.map((t) => `${t.name} (tid ${t.tid})`).join(', ');
    return r.counts.steps >= maxSteps
      ? { kind: 'stuck', message: `still running at the step limit (${maxSteps}): ${who}` }
      : { kind: 'deadlock', message: `nothing could run after ${r.counts.steps} steps, tasks alive: ${who}` };
  }
  if (failed('no_leaks')) return { kind: 'leak', message: `invariant no_leaks: ${inv('no_leaks')!.actual}` };
  return undefined;
}

/** Compiles and runs `text` (named `file` in messages) once, and classifies the outcome. */
export function runCase(text: string, file: string, opts: CaseOptions = {}): Outcome {
  let c: CompiledScenario;
  try {
    c = compileScenarioText(text, file);
  } catch (e) {
    return classifyError(e);
  }
  const maxSteps = opts.maxSteps ?? c.maxSteps;
  let r: RunReport;
  try {
    r = runScenario(c, { maxSteps, record: opts.events === true });
  } catch (e) {
    return classifyError(explainStartFailure(c, e));
  }
  const hash = createHash('sha1');
  hash.update(json({ v: r.verdicts, t: r.timeline, c: r.counts, k: r.tasks, a: r.answer, f: r.finished }));
  if (r.trace) for (const e of r.trace) hash.update(json(e));
  const digest = hash.digest('hex');
  const bad = judge(c, r, maxSteps, opts);
  if (bad) return { status: 'finding', kind: bad.kind, message: bad.message, digest, steps: r.counts.steps };
  return { status: 'ok', message: r.passed ? 'passed' : 'ran', digest, steps: r.counts.steps };
}

/** The finding for two runs of one case that differ. */
export function nondeterminism(a: Outcome, b: Outcome): Outcome {
  const show = (o: Outcome): string => `${o.status}${o.kind ? ` (${o.kind})` : ''}: ${o.message.split('\n')[0]}`;
  return { status: 'finding', kind: 'nondeterminism', message: `two runs of the same case differ: first ${show(a)}; second ${show(b)}`, digest: a.digest, steps: a.steps };
}

/** Runs a case twice and compares the digests: a difference is a `nondeterminism` finding. Returns the first run's outcome otherwise. */
export function runTwice(text: string, file: string, opts: CaseOptions = {}): Outcome {
  const a = runCase(text, file, opts);
  const b = runCase(text, file, opts);
  return a.digest !== b.digest || a.status !== b.status || a.kind !== b.kind ? nondeterminism(a, b) : a;
}

/**
 * A short signature of a finding, for telling distinct findings apart: its kind and its
 * message with numbers, addresses, names of generated things and positions blotted out.
 */
export function signature(o: Outcome): string {
  const first = o.message.split('\n')[0]
    .replace(/[\w./-]+\.ya?ml:\d+:\d+/g, 'F')
    .replace(/0x[0-9a-f]+/gi, 'N')
    .replace(/\b(p\d+t?\d*|fn\d+|m\d+|pid\d+|r\d+|v\d+|t\d+|ssp\d+|pkru\d+)\b/g, 'X')
    .replace(/\d+/g, 'N');
  return `${o.kind}: ${first.slice(0, 160)}`;
}
