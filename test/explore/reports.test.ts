/**
 * What a search reports: every invariant an execution breaks, not only the first (an execution
 * goes on past a violation unless `--first`, or a debug check's report, ends it), and `--first`
 * by iterative deepening of the preemption bound (the first counterexample comes from the
 * smallest bound that has one).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Execution } from '../../src/explore/execution.js';
import { explore, replay, withKernelOptions, type ExploreOptions } from '../../src/explore/explore.js';
import { compileScenarioFile } from '../../src/scenario/index.js';

const dir = new URL('../../../scenarios/', import.meta.url).pathname;

const base: ExploreOptions = {
  mode: 'dpor', invariants: [], evictions: 0, preemptions: Infinity, maxDepth: Infinity, executions: Infinity,
  seed: 1, pctDepth: 2, until: 'end', stopAtFirst: false, fingerprints: false, minimise: false,
};

/**
 * fork-madvfree-lost's race, as the explorer printed it for read_stability: the writer's store
 * inside fork's copy (lost_dirty breaks once the parent's COW break drops the dirty PTE), then
 * the child's reads around its MADV_PAGEOUT (read_stability breaks when it reads 0).
 */
const runs = [[0, 137], [1, 19], [0, 5], [1, 5], [0, 30], [1, 41], [0, 26], [1, 227]];
const schedule = runs.flatMap(([cpu, n]) => Array<number>(n).fill(cpu));

test('reports: one execution breaks lost_dirty, then read_stability; both are reported, each once, in order', () => {
  const c = compileScenarioFile(`${dir}fork-madvfree-lost.yaml`);
  const r = replay(c, schedule, { invariants: ['lost_dirty', 'read_stability'] });
  assert.equal(r.stuckAt, 0);
  assert.deepEqual(r.violations.map((v) => v.invariant), ['lost_dirty', 'read_stability']);
  assert.ok(r.violations[0].step < r.violations[1].step);
  assert.equal(r.violation, r.violations[0]);
  // With stopAtFirst the execution ends at the first.
  const exec = new Execution(c, { invariants: ['lost_dirty', 'read_stability'], evictions: 0, stopAtFirst: true });
  for (const item of schedule) {
    if (exec.stopped) break;
    exec.step(item);
  }
  assert.deepEqual(exec.violations.map((v) => v.invariant), ['lost_dirty']);
});

test('reports: a search keeps a counterexample for each invariant, one found past the other', () => {
  const c = compileScenarioFile(`${dir}fork-madvfree-lost.yaml`);
  const o: ExploreOptions = { ...base, mode: 'uniform', invariants: ['lost_dirty', 'read_stability'], executions: 20 };
  const r = explore(c, o);
  const names = r.violations.map((v) => v.invariant).sort();
  assert.deepEqual(names, ['lost_dirty', 'read_stability']);
  // Each counterexample replays to its own invariant at its last step.
  for (const v of r.violations) {
    const again = replay(c, v.schedule, { invariants: ['lost_dirty', 'read_stability'] });
    const hit = again.violations.find((x) => x.invariant === v.invariant);
    assert.ok(hit, v.invariant);
    assert.equal(hit.step, v.schedule.length, `${v.invariant} shows after the counterexample's last step`);
  }
});

test('--first deepens the preemption bound: the counterexample comes from the smallest bound that has one', () => {
  const c = withKernelOptions(compileScenarioFile(`${dir}fork-dirty-race.yaml`), ['fork_wrprotect=cmpxchg']);
  const o: ExploreOptions = { ...base, invariants: ['lost_dirty'], until: 'ops' };
  const first = explore(c, { ...o, stopAtFirst: true });
  assert.equal(first.violations.length, 1);
  const b = first.preemptionBound!;
  assert.ok(Number.isInteger(b) && b >= 0);
  // The bound below has no counterexample (searched whole); the bound found has one.
  if (b > 0) assert.deepEqual(explore(c, { ...o, preemptions: b - 1 }).violations, []);
  assert.equal(explore(c, { ...o, preemptions: b, stopAtFirst: true }).violations.length, 1);
});

test('--first with nothing to find: each bound searched whole up to --preemptions, the counts the sum of the searches', () => {
  const c = compileScenarioFile(`${dir}fork-cow.yaml`);
  const o: ExploreOptions = { ...base, invariants: ['stale_tlb', 'lost_dirty', 'debug_checks'], preemptions: 1 };
  const deep = explore(c, { ...o, stopAtFirst: true });
  assert.deepEqual(deep.violations, []);
  assert.equal(deep.preemptionBound, 1);
  const at0 = explore(c, { ...o, preemptions: 0 });
  const at1 = explore(c, { ...o, preemptions: 1 });
  assert.equal(deep.executions, at0.executions + at1.executions);
  assert.equal(deep.steps, at0.steps + at1.steps);
  assert.equal(deep.exhaustive, at1.exhaustive);
});

test('fork-madvfree-lost, one preemption, whole search: upstream breaks lost_dirty and read_stability; under either fix neither breaks (lost_dirty counts the folio\'s PG_dirty)', () => {
  // anon_dirty_drop=folio_mark_dirty keeps the write in the folio's own PG_dirty (wp_page_copy's
  // folio_mark_dirty), fork_child_pte=installed in the child's PTE; shrink_folio_list then keeps it.
  const o: ExploreOptions = { ...base, invariants: ['lost_dirty', 'read_stability'], preemptions: 1, until: 'ops' };
  const up = explore(compileScenarioFile(`${dir}fork-madvfree-lost.yaml`), o);
  assert.deepEqual(up.violations.map((v) => v.invariant).sort(), ['lost_dirty', 'read_stability']);
  for (const fix of ['anon_dirty_drop=folio_mark_dirty', 'fork_child_pte=installed']) {
    const r = explore(withKernelOptions(compileScenarioFile(`${dir}fork-madvfree-lost.yaml`), [fix]), o);
    assert.deepEqual(r.violations.map((v) => v.message), [], fix);
    assert.equal(r.executions, up.executions, `${fix}: the same search`);
  }
});
