/**
 * The report of `isolab replay FILE --schedule S`: the per-CPU timeline and the violation as
 * text, or with `--json` (and `-o FILE`) one JSON object, a ReplayJson. The replay itself is
 * explore.ts's `replay`; this file only says what it found.
 */
import type { ReplayResult } from '../explore/explore.js';
import { formatSchedule } from '../explore/schedule.js';
import type { CompiledScenario } from '../scenario/compile.js';
import { runResultSchema } from '../scenario/result-schema.js';
import type { RunReport } from '../scenario/run.js';
import { formatTimeline } from './explore.js';
import { writeOutput } from './output.js';

/**
 * `isolab replay --json`: what one schedule did, with the run's report where the replay stopped
 * (`finished` ... `timeline`) as `isolab run --json` gives it.
 */
export interface ReplayJson extends Pick<RunReport, 'finished' | 'passed' | 'verdicts' | 'tasks' | 'counts' | 'timeline'> {
  /** The scenario's name. */
  scenario: string;
  /** The file it came from. */
  file?: string;
  /** The invariants checked after each step. */
  invariants: string[];
  /** The schedule: its text as the explorer prints it, and one item per step (as `violations[].schedule` of `isolab explore --json`). */
  schedule: { text: string; items: number[] };
  /** The first item that named something not enabled there (1-based step, the item as text), or null when every item ran. */
  stuckAt: { step: number; item: string } | null;
  /** The first invariant broken, with the step after which it showed, or null. */
  violation: { invariant: string; message: string; step: number } | null;
  /** Every invariant broken, in the order they broke, each once. */
  violations: { invariant: string; message: string; step: number }[];
}

/** The JSON object for a replay of `schedule` that gave `r`. */
export function replayJson(c: CompiledScenario, schedule: number[], invariants: string[], r: ReplayResult): ReplayJson {
  const { report } = r;
  return {
    scenario: c.name,
    ...(report.file !== undefined ? { file: report.file } : {}),
    invariants,
    schedule: { text: formatSchedule(schedule), items: schedule },
    stuckAt: r.stuckAt ? { step: r.stuckAt, item: formatSchedule([schedule[r.stuckAt - 1]]) } : null,
    violation: r.violation ? { invariant: r.violation.invariant, message: r.violation.message, step: r.violation.step } : null,
    violations: r.violations.map((v) => ({ invariant: v.invariant, message: v.message, step: v.step })),
    finished: report.finished,
    passed: report.passed,
    verdicts: report.verdicts,
    tasks: report.tasks,
    counts: report.counts,
    timeline: report.timeline,
  };
}

/**
 * The JSON Schema of `isolab replay --json` output: the replay's own fields, and `finished`,
 * `passed`, `verdicts`, `tasks`, `counts` and `timeline` exactly as in runResultSchema.
 */
export function replayResultSchema(): Record<string, unknown> {
  const run = runResultSchema() as { properties: Record<string, unknown> };
  const step = { type: 'integer', minimum: 1 };
  const { finished, passed, verdicts, tasks, counts, timeline } = run.properties;
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: 'https://isolab.invalid/schema/replay-result.schema.json',
    title: 'isolab replay --json',
    type: 'object',
    additionalProperties: false,
    required: ['scenario', 'invariants', 'schedule', 'stuckAt', 'violation', 'violations', 'finished', 'passed', 'verdicts', 'tasks', 'counts', 'timeline'],
    properties: {
      scenario: { type: 'string', description: 'The scenario name.' },
      file: { type: 'string', description: 'The file it came from.' },
      invariants: { type: 'array', items: { type: 'string' }, description: 'The invariants checked after each step.' },
      schedule: {
        type: 'object',
        additionalProperties: false,
        required: ['text', 'items'],
        properties: {
          text: { type: 'string', description: 'As isolab explore prints it: 0*97,p0>1.' },
          items: { type: 'array', items: { type: 'integer' }, description: 'One item per step: a CPU number, or a negative number for an eviction, preemption or reclaim (as violations[].schedule of isolab explore --json).' },
        },
      },
      stuckAt: {
        oneOf: [
          { type: 'null' },
          { type: 'object', additionalProperties: false, required: ['step', 'item'], properties: { step, item: { type: 'string', description: 'The item as text (1, p0>1).' } } },
        ],
        description: 'The first item that had nothing to do at its step, or null when every item ran.',
      },
      violation: {
        oneOf: [
          { type: 'null' },
          { type: 'object', additionalProperties: false, required: ['invariant', 'message', 'step'], properties: { invariant: { type: 'string' }, message: { type: 'string' }, step: { ...step, description: 'The step after which it showed.' } } },
        ],
        description: 'The first invariant broken, or null.',
      },
      violations: {
        type: 'array',
        items: { type: 'object', additionalProperties: false, required: ['invariant', 'message', 'step'], properties: { invariant: { type: 'string' }, message: { type: 'string' }, step: { ...step, description: 'The step after which it showed.' } } },
        description: 'Every invariant broken, in the order they broke, each once (the replay goes on past a violation, but not past a debug check\'s report).',
      },
      finished,
      passed,
      verdicts,
      tasks,
      counts,
      timeline,
    },
  };
}

export interface ReplayReportOptions {
  json?: boolean;
  output?: string;
}

/**
 * Prints the replay's report (text, or JSON with `json`), writes the JSON to `output` when given
 * (only the file with `json`; `-` is standard output), and returns the exit status: 1 when an
 * invariant broke, 2 when the schedule got stuck, else 0.
 */
export function reportReplay(c: CompiledScenario, schedule: number[], invariants: string[], r: ReplayResult, opts: ReplayReportOptions): number {
  const json = JSON.stringify(replayJson(c, schedule, invariants, r), null, 2) + '\n';
  let text = json;
  if (!opts.json) {
    const out: string[] = [`${c.name}: replay of ${schedule.length} steps`, formatTimeline(r.report.timeline, c.system.cpus ?? 1)];
    if (r.stuckAt) out.push(`the schedule stops at step ${r.stuckAt}: item ${formatSchedule([schedule[r.stuckAt - 1]])} had nothing to do there`);
    if (r.violations.length === 0) out.push('no invariant broken');
    for (const v of r.violations) out.push(`✗ ${v.invariant} after step ${v.step}: ${v.message}`);
    text = out.join('\n') + '\n';
  }
  if (opts.output) writeOutput(opts.output, json);
  if ((!opts.output || !opts.json) && opts.output !== '-') process.stdout.write(text);
  return r.violation ? 1 : r.stuckAt ? 2 : 0;
}
