/**
 * Event expectations in the explorer: with the `scenario` invariant an upper bound (exactly,
 * at_most) is broken at the step that passes it, a lower bound only when the execution ends;
 * and `witness` finds a schedule under which every expectation holds, which is how a race
 * scenario's schedule is found. The counts come from the sources: a first store to a fresh
 * private anonymous page takes one page fault, which do_anonymous_page (mm/memory.c) resolves by
 * mapping a new page; fork's try_cmpxchg fails once when the writer sets D between fork's read
 * and its cmpxchg (copy_present_pte, ptep_set_wrprotect).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { compileScenarioFile, compileScenarioText, runScenario } from '../../src/scenario/index.js';
import { explore, shortestPassingPrefix, WITNESS, type ExploreOptions } from '../../src/explore/explore.js';

const base: ExploreOptions = {
  mode: 'dpor', invariants: ['scenario'], evictions: 0, preemptions: Infinity, maxDepth: Infinity, executions: Infinity, seed: 1, pctDepth: 2,
  until: 'end', stopAtFirst: false, fingerprints: false, minimise: false,
};

const oneStore = (events: string): string => `
processes:
  - name: p
    ops:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }
        as: buf
      - store: { addr: $buf, value: 1 }
      - repeat: { count: 5, ops: [ getpid ] }
expect:
  events:
    - ${events}
`;

test('explorer: an exceeded at_most breaks the scenario invariant at the step that exceeds it', () => {
  const whole = explore(compileScenarioText(oneStore('{ type: page_fault, thread: p, outcome: mapped, exactly: 1 }'), 'one.yaml'), base);
  assert.deepEqual(whole.violations, [], 'exactly one fault: nothing broken');
  assert.equal(whole.executions, 1, 'one CPU: one execution');
  const r = explore(compileScenarioText(oneStore('{ type: page_fault, thread: p, outcome: mapped, at_most: 0 }'), 'one.yaml'), base);
  assert.equal(r.violations.length, 1);
  const v = r.violations[0];
  assert.equal(v.invariant, 'scenario');
  assert.match(v.message, /one\.yaml:\d+:\d+: expected page_fault events \(thread p, outcome mapped\): at most 0, counted 1 so far/);
  assert.ok(v.schedule.length < whole.steps, `found at step ${v.schedule.length}, before the end (${whole.steps})`);
});

test('explorer: an unmet at_least is judged when the execution ends', () => {
  const whole = explore(compileScenarioText(oneStore('{ type: page_fault, thread: p, at_least: 1 }'), 'one.yaml'), base);
  assert.deepEqual(whole.violations, []);
  const r = explore(compileScenarioText(oneStore('{ type: page_fault, thread: p, outcome: mapped, at_least: 2 }'), 'one.yaml'), base);
  assert.equal(r.violations.length, 1);
  assert.match(r.violations[0].message, /expected page_fault events \(thread p, outcome mapped\): at least 2, got 1 event$/);
  assert.equal(r.violations[0].schedule.length, whole.steps, 'at the end of the execution');
});

test('explorer: witness finds the schedule that makes fork-dirty-race race, without its script', () => {
  const c = compileScenarioFile(fileURLToPath(new URL('../../../scenarios/fork-dirty-race.yaml', import.meta.url)));
  const bare = { ...c, system: { ...c.system, script: undefined } };
  assert.equal(runScenario(bare).passed, false, 'the policy alone does not make the race');
  const r = explore(bare, { ...base, invariants: [WITNESS], until: 'ops', preemptions: 2, stopAtFirst: true, minimise: true });
  const w = r.violations.find((v) => v.invariant === WITNESS);
  assert.ok(w, 'a witness is found');
  const prefix = shortestPassingPrefix(bare, w.schedule);
  assert.ok(prefix, 'a start of the witness makes every expectation hold');
  const run = runScenario(bare, { schedule: prefix, record: true });
  assert.ok(run.passed);
  assert.equal(run.trace!.filter((x) => x.event.type === 'pte_retry').length, 1, "fork's cmpxchg failed once");
});
