/**
 * The explorer's invariants on the seed scenarios. Expected outcomes come from the sources:
 * seed 003 (fork's write-protect against a concurrent write): 6.12's cmpxchg keeps D in
 * SavedDirty for the parent (arch/x86/include/asm/pgtable.h ptep_set_wrprotect), up to 6.5's
 * atomic clear leaves R/W=0, D=1 (which a strict CET CPU reads as shadow stack), and a plain
 * read-modify-write store can lose D; and mm/memory.c wp_page_copy's ptep_clear_flush, whose
 * absence leaves another CPU a stale translation.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileScenarioFile } from '../../src/scenario/index.js';
import { explore, replay, withKernelOptions, type ExploreOptions } from '../../src/explore/explore.js';
import { formatSchedule, parseSchedule } from '../../src/explore/schedule.js';

const base: ExploreOptions = {
  mode: 'dpor', invariants: [], evictions: 0, preemptions: 2, maxDepth: Infinity, executions: Infinity, seed: 1, pctDepth: 2,
  until: 'ops', stopAtFirst: false, fingerprints: false, minimise: true,
};

function scenario(name: string, kernel: string[]) {
  return withKernelOptions(compileScenarioFile(new URL(`../../../scenarios/${name}.yaml`, import.meta.url).pathname), kernel);
}

test('seed 003, read_modify_write: a lost dirty bit is found, and its schedule replays to the same violation', () => {
  const c = scenario('fork-dirty-race', ['fork_wrprotect=read_modify_write']);
  const r = explore(c, { ...base, invariants: ['lost_dirty', 'rw0_dirty'], stopAtFirst: true });
  const v = r.violations.find((x) => x.invariant === 'lost_dirty');
  assert.ok(v, 'lost_dirty found');
  const again = replay(c, parseSchedule(v.text, 2), { invariants: ['lost_dirty', 'rw0_dirty'] });
  assert.equal(again.violation?.invariant, 'lost_dirty');
  assert.equal(again.stuckAt, 0);
});

test('seed 003, atomic_clear (up to 6.5) on a strict CPU: the R/W=0, D=1 parent PTE is found', () => {
  const c = scenario('fork-dirty-race', ['fork_wrprotect=atomic_clear']);
  const r = explore(c, { ...base, invariants: ['rw0_dirty'], stopAtFirst: true });
  assert.deepEqual(r.violations.map((x) => x.invariant), ['rw0_dirty']);
});

test('seed 003, cmpxchg (6.6+): no R/W=0, D=1 PTE in any schedule within two preemptions', () => {
  const c = scenario('fork-dirty-race', ['fork_wrprotect=cmpxchg']);
  const r = explore(c, { ...base, invariants: ['rw0_dirty'] });
  assert.deepEqual(r.violations, []);
  assert.deepEqual(r.boundedBy, ['preemptions']);
  assert.ok(r.complete > 100, `${r.complete} complete executions`);
});

test('wp_copy_flush none: the stale TLB entry is found; the counterexample replays; upstream has none', () => {
  const bug = scenario('cow-stale-tlb', ['wp_copy_flush=none']);
  const r = explore(bug, { ...base, invariants: ['stale_tlb'], stopAtFirst: true });
  assert.equal(r.violations.length, 1);
  const v = r.violations[0];
  assert.equal(v.invariant, 'stale_tlb');
  assert.match(v.message, /CPU 1 keeps a TLB entry/);
  assert.ok(v.switches <= v.switchesFound);
  const again = replay(bug, v.schedule, { invariants: ['stale_tlb'] });
  assert.equal(again.violation?.invariant, 'stale_tlb');
  assert.equal(formatSchedule(parseSchedule(v.text, 2)), v.text);
  const upstream = scenario('cow-stale-tlb', ['wp_copy_flush=ptep_clear_flush']);
  const fixed = explore(upstream, { ...base, invariants: ['stale_tlb'] });
  assert.deepEqual(fixed.violations, []);
  assert.ok(fixed.complete > 1, `${fixed.complete} complete executions`);
  // The schedule that broke it, on upstream: the entry is flushed.
  const same = replay(upstream, v.schedule, { invariants: ['stale_tlb'], complete: true });
  assert.equal(same.stuckAt, 0, 'the schedule runs on upstream too');
  assert.equal(same.violation, null);
});

test('random search: PCT reports its probability bound; uniform finds the stale entry with a seed', () => {
  const bug = scenario('cow-stale-tlb', ['wp_copy_flush=none']);
  const pct = explore(bug, { ...base, mode: 'pct', executions: 20, invariants: ['stale_tlb'] });
  assert.ok(pct.pct);
  assert.equal(pct.pct.n, 2);
  assert.ok(pct.pct.perExecution > 0 && pct.pct.perExecution <= 1 / 2);
  const u = explore(bug, { ...base, mode: 'uniform', executions: 50, invariants: ['stale_tlb'], stopAtFirst: true });
  assert.equal(u.violations[0]?.invariant, 'stale_tlb');
});

test('schedules: text round trip and clear errors', () => {
  assert.deepEqual(parseSchedule('0*3,1,e1.5', 2), [0, 0, 0, 1, -1 - (5 * 256 + 1)]);
  assert.equal(formatSchedule(parseSchedule('0*3,1,e1.5', 2)), '0*3,1,e1.5');
  assert.throws(() => parseSchedule('0,2', 2), /item 2 \("2"\): the machine has CPUs 0 to 1/);
  assert.throws(() => parseSchedule('0,x', 2), /item 2/);
});

test('cow-stale-tlb without the flush: the search with no bound ends, and finds the stale entry (docs/findings.md)', () => {
  const bug = scenario('cow-stale-tlb', ['wp_copy_flush=none']);
  const r = explore(bug, { ...base, preemptions: Infinity, until: 'ops', invariants: ['stale_tlb', 'lost_dirty', 'rw0_dirty', 'debug_checks'] });
  assert.equal(r.exhaustive, true, `bounded by ${r.boundedBy.join(', ')}`);
  assert.deepEqual(r.violations.map((v) => v.invariant), ['stale_tlb']);
});
