/**
 * The footprint checks can fail: a write behind the tracking's back is reported with its field
 * or word, and swapping two steps that conflict does change the end state. The checks
 * themselves run over every built-in scenario in footprints-0.test.ts to footprints-3.test.ts
 * (footprint-runs.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dependent, Execution } from '../../src/explore/execution.js';
import { rawOf } from '../../src/track.js';
import { ModelError } from '../../src/errors.js';
import { endState, randomRun, scenario } from './footprint-runs.js';

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
