/**
 * Two or more runs of one scenario side by side (`isolab see --compare`): each side a set of
 * kernel options over the scenario's (the scenario's `sides:` or `--side`), recorded alone
 * (record.ts), and one list of rows that aligns them on their user operations: a row is one
 * operation of one task (`task: fn[index] op`, its n-th run), with the step it completed at
 * on each side.
 */
import type { CompiledScenario } from '../scenario/compile.js';
import { recordRun, type RecordOptions } from './record.js';
import { COMPARISON_FORMAT, type Comparison } from './types.js';

/** One side: its name and the scenario as it runs there (its kernel options, and CPU features, set). */
export interface SeeSide {
  name: string;
  compiled: CompiledScenario;
}

/**
 * Rows aligning the sides' operations: the first side's in its order, each with every side's
 * step for the same operation (null where it did not complete there); then the operations only
 * later sides completed, in their order.
 */
export function alignOps(sides: { key: string; step: number }[][]): Comparison['rows'] {
  const steps = sides.map((ops) => new Map(ops.map((o) => [o.key, o.step])));
  const rows: Comparison['rows'] = [];
  const done = new Set<string>();
  for (const ops of sides) {
    for (const o of ops) {
      if (done.has(o.key)) continue;
      done.add(o.key);
      rows.push({ op: o.key, steps: steps.map((m) => m.get(o.key) ?? null) });
    }
  }
  return rows;
}

/** Records each side with `o` and aligns them. */
export function recordComparison(sides: SeeSide[], o: RecordOptions = {}): Comparison {
  const runs = sides.map((side) => ({ side, run: recordRun(side.compiled, o) }));
  return {
    format: COMPARISON_FORMAT,
    sides: runs.map(({ side, run }) => ({ name: side.name, recording: run.recording })),
    rows: alignOps(runs.map(({ run }) => run.ops)),
  };
}
