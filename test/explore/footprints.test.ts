/**
 * The footprints the explorer records (explore/execution.ts, src/track.ts, hw/footprint.ts)
 * against what the steps do.
 *  - Writes: every built-in scenario runs under a seeded random schedule (a TLB eviction, a
 *    preemption and a reclaim pass offered; `isolab explore --check-footprints` runs the check
 *    over whole searches) with the footprint check on (fpcheck.ts): each
 *    change of the state, taken apart by key (object fields, physical words, CPUs), is covered
 *    by a key the step recorded as written.
 *  - Reads, by their effect: two adjacent steps of different threads that the footprints call
 *    independent are swapped and the rest of the schedule replayed; both orders must be
 *    possible and end in the same state, objects, memory and CPUs alike. A read the footprint
 *    missed that mattered would show as a different end.
 *  - The checks can fail: a write behind the tracking's back is reported with its field or
 *    word, and swapping two steps that conflict does change the end state.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { builtinScenarios } from '../../src/cli/tour.js';
import { dependent, Execution, type ExecutionOptions, type Step } from '../../src/explore/execution.js';
import { stateParts } from '../../src/explore/fpcheck.js';
import { rawOf } from '../../src/track.js';
import { ModelError } from '../../src/errors.js';
import { compileScenarioText, type CompiledScenario } from '../../src/scenario/index.js';

const ROOT = new URL('../../../', import.meta.url);

function scenario(file: string): CompiledScenario {
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
function randomRun(c: CompiledScenario, seed: number, max: number, extra: Partial<ExecutionOptions> = {}): { exec: Execution; schedule: number[]; steps: Step[] } {
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
function endState(c: CompiledScenario, schedule: number[]): string | null {
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

for (const file of builtinScenarios()) {
  test(`footprints: every change a step makes is in what it recorded as written: ${file}`, () => {
    const c = scenario(file);
    const { exec, steps } = randomRun(c, 1, 1000, { checkFootprints: true });
    assert.ok(steps.length > 0);
    exec.finish();
  });
}

for (const file of builtinScenarios()) {
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

/**
 * Runs fork-cow with the footprint check on, and `sabotage` inside the first step that emits a
 * syscall event; returns what the run threw.
 */
function checkedRunWith(sabotage: (exec: Execution) => void): unknown {
  const exec = new Execution(scenario('scenarios/fork-cow.yaml'), { invariants: [], evictions: 0, checkFootprints: true });
  let armed = true;
  exec.sys.events.subscribe((e) => {
    if (armed && e.type === 'syscall') {
      armed = false;
      sabotage(exec);
    }
  });
  try {
    for (let n = 0; n < 5000 && exec.enabled().length > 0; n++) exec.step(exec.enabled()[0]);
  } catch (err) {
    return err;
  }
  return null;
}

test('footprints: the check reports a kernel field written behind the tracking', () => {
  // A write through the raw object, which no Proxy sees.
  const err = checkedRunWith((exec) => (rawOf(exec.k).quantum += 1));
  assert.ok(err instanceof ModelError && /did not record as written: object \d+ field quantum/.test(err.message), String(err));
});

test('footprints: the check reports a physical word written without the sink', () => {
  // The zero page's second 8-byte word, through the frame's raw words (PhysMem's hooks not called).
  const err = checkedRunWith((exec) => (exec.sys.machine.mem.frameWords(rawOf(exec.k).zero_pfn)[2] ^= 1));
  assert.ok(err instanceof ModelError && /physical word 0x[0-9a-f]+8\b/.test(err.message), String(err));
});

test('footprints: swapping two steps that conflict can change the end state (the comparison sees a difference)', () => {
  const c = scenario('scenarios/fork-dirty-race.yaml');
  const { schedule, steps } = randomRun(c, 3, 1500);
  const base = endState(c, schedule);
  let differs = 0;
  for (let i = 0; i + 1 < steps.length && differs === 0; i++) {
    if (steps[i].item === steps[i + 1].item || steps[i].item < 0 || steps[i + 1].item < 0 || !dependent(steps[i], steps[i + 1])) continue;
    const swapped = schedule.slice();
    [swapped[i], swapped[i + 1]] = [swapped[i + 1], swapped[i]];
    const end = endState(c, swapped);
    if (end !== null && end !== base) differs++;
  }
  assert.ok(differs > 0, 'no swap of two dependent steps changed the end state');
});
