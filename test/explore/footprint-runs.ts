/**
 * The footprint checks over the built-in scenarios, split into parts so that each test file
 * stays well inside the test runner's per-file time limit (footprints-N.test.ts each run one
 * part; footprints.test.ts shows the checks can fail).
 *  - Writes: every built-in scenario runs under a seeded random schedule (a TLB eviction, a
 *    preemption and a reclaim pass offered; `isolab explore --check-footprints` runs the check
 *    over whole searches) with the footprint check on (fpcheck.ts): each
 *    change of the state, taken apart by key (object fields, physical words, CPUs), is covered
 *    by a key the step recorded as written.
 *  - Reads, by their effect: two adjacent steps of different threads that the footprints call
 *    independent are swapped and the rest of the schedule replayed; both orders must be
 *    possible and end in the same state, objects, memory and CPUs alike. A read the footprint
 *    missed that mattered would show as a different end.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { builtinScenarios } from '../../src/cli/tour.js';
import { dependent, Execution, type ExecutionOptions, type Step } from '../../src/explore/execution.js';
import { stateParts } from '../../src/explore/fpcheck.js';
import { compileScenarioText, type CompiledScenario } from '../../src/scenario/index.js';

const ROOT = new URL('../../../', import.meta.url);

export function scenario(file: string): CompiledScenario {
  return compileScenarioText(readFileSync(new URL(file, ROOT), 'utf8'), file);
}

/** A small deterministic generator (xorshift32). */
function random(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

const CHOICES: Pick<ExecutionOptions, 'evictions' | 'preemptChoices' | 'reclaims'> = { evictions: 1, preemptChoices: 1, reclaims: 1 };

/** One execution on a random schedule (at most `max` steps): its items and footprints. */
export function randomRun(c: CompiledScenario, seed: number, max: number, extra: Partial<ExecutionOptions> = {}): { exec: Execution; schedule: number[]; steps: Step[] } {
  const exec = new Execution(c, { invariants: [], ...CHOICES, ...extra });
  const next = random(seed);
  const steps: Step[] = [];
  for (let n = 0; n < max; n++) {
    const enabled = exec.enabled();
    if (enabled.length === 0) break;
    steps.push(exec.step(enabled[Math.floor(next() * enabled.length)]));
  }
  return { exec, schedule: steps.map((s) => s.item), steps };
}

/** The end state of an execution run on `schedule` and finished, as text (references by id: comparable across executions); null if the schedule cannot be run. */
export function endState(c: CompiledScenario, schedule: number[]): string | null {
  const exec = new Execution(c, { invariants: [], ...CHOICES });
  for (const item of schedule) {
    if (!exec.enabled().includes(item)) return null;
    exec.step(item);
  }
  exec.finish();
  const s = stateParts(exec.sys, exec.track, false);
  const parts = [...s.parts].sort((a, b) => a[0] - b[0]).map(([k, v]) => `${k}=${v}`);
  const frames = [...s.frames].sort((a, b) => a[0] - b[0]).map(([pfn, w]) => `${pfn}:${Buffer.from(w.buffer, w.byteOffset, w.byteLength).toString('base64')}`);
  return `${parts.join('\n')}\n${frames.join('\n')}`;
}

/**
 * Registers both checks for part `part` of `parts` of the built-in scenarios (those whose tour
 * index is `part` modulo `parts`, so neighbours in the tour land in different parts).
 */
export function footprintCases(part: number, parts: number): void {
  const files = builtinScenarios().filter((_, i) => i % parts === part);
  assert.ok(files.length > 0, `part ${part} of ${parts} has scenarios`);
  for (const file of files) {
    test(`footprints: every change a step makes is in what it recorded as written: ${file}`, () => {
      const c = scenario(file);
      const { exec, steps } = randomRun(c, 1, 1000, { checkFootprints: true });
      assert.ok(steps.length > 0);
      exec.finish();
    });
  }

  for (const file of files) {
    test(`footprints: two steps recorded as independent end alike in either order: ${file}`, () => {
      const c = scenario(file);
      const { schedule, steps } = randomRun(c, 7, 1500);
      const pairs: number[] = [];
      for (let i = 0; i + 1 < steps.length; i++) if (steps[i].item !== steps[i + 1].item && !dependent(steps[i], steps[i + 1])) pairs.push(i);
      const base = endState(c, schedule);
      assert.ok(base !== null);
      // At most three pairs, spread over the execution.
      const chosen = pairs.length <= 3 ? pairs : [0, 1, 2].map((j) => pairs[Math.floor((j * pairs.length) / 3)]);
      for (const i of chosen) {
        const swapped = schedule.slice();
        [swapped[i], swapped[i + 1]] = [swapped[i + 1], swapped[i]];
        const end = endState(c, swapped);
        assert.notEqual(end, null, `steps ${i} and ${i + 1} (items ${schedule[i]}, ${schedule[i + 1]}) swapped: the rest of the schedule cannot run`);
        assert.ok(end === base, `steps ${i} and ${i + 1} (items ${schedule[i]}, ${schedule[i + 1]}) swapped: the execution ends in another state`);
      }
    });
  }
}
