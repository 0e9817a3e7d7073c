/**
 * Sharding a systematic search (src/explore/dpor.ts): the shards together run exactly the
 * search without shards (each complete execution in one shard, the same counterexamples), each
 * shard does a real share of the work, and how a search is split never changes what a search
 * without shards explores.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FULL_LEVELS } from '../../src/explore/dpor.js';
import { explore, mergeResults, withKernelOptions, type ExploreOptions, type ExploreResult } from '../../src/explore/explore.js';
import { compileScenarioFile } from '../../src/scenario/index.js';

const base: ExploreOptions = {
  mode: 'dpor', invariants: ['lost_dirty', 'rw0_dirty', 'stale_tlb', 'debug_checks'], evictions: 0, preemptions: 1, maxDepth: Infinity, executions: Infinity,
  seed: 1, pctDepth: 2, until: 'ops', stopAtFirst: false, fingerprints: true, minimise: true,
};

function scenario(name: string, kernel: string[] = []) {
  return withKernelOptions(compileScenarioFile(new URL(`../../../scenarios/${name}.yaml`, import.meta.url).pathname), kernel);
}

/** The counterexamples as the search found them and as it reports them. */
function counterexamples(r: ExploreResult): string[] {
  return r.violations.map((v) => `${v.invariant} ${v.found.join(',')} -> ${v.text}: ${v.message}`).sort();
}

// A lost D under fork's plain read-modify-write (seed 003): a violation to find, and a search of a few seconds.
const c = scenario('fork-dirty-race', ['fork_wrprotect=read_modify_write']);
const whole = explore(c, base);

for (const count of [2, 3]) {
  test(`shards: ${count} shards of fork-dirty-race (1 preemption) run exactly the search without shards, each a share`, () => {
    assert.ok(whole.complete > 10 && whole.violations.length > 0, 'a search worth splitting, with a counterexample');
    const parts = Array.from({ length: count }, (_, index) => explore(c, { ...base, shard: { index, count, splitDepth: FULL_LEVELS } }));
    const seen = new Set<string>();
    for (const p of parts) {
      for (const t of p.traces!) {
        assert.ok(!seen.has(t), 'no complete execution runs in two shards');
        seen.add(t);
      }
    }
    assert.deepEqual([...seen].sort(), [...whole.traces!].sort(), 'the shards complete the executions the whole search does');
    assert.equal(parts.reduce((a, p) => a + p.complete, 0), whole.complete);
    assert.equal(parts.reduce((a, p) => a + p.executions, 0), whole.executions, 'every execution, complete or not, runs in one shard');
    const merged = mergeResults(parts);
    assert.equal(merged.complete, whole.complete);
    assert.equal(merged.exhaustive, whole.exhaustive);
    assert.deepEqual(merged.boundedBy.sort(), whole.boundedBy.sort());
    assert.deepEqual(counterexamples(merged), counterexamples(whole), 'the same counterexample for each invariant');
    for (const [i, p] of parts.entries()) {
      // An even share would be 1/count; the shards also replay the first path, so allow some.
      assert.ok(p.executions >= whole.executions / count / 2, `shard ${i} runs ${p.executions} of ${whole.executions} executions`);
      assert.ok(p.steps <= whole.steps * (1 / count + 0.3), `shard ${i} takes ${p.steps} of the whole search's ${whole.steps} steps`);
    }
  });
}

test('shards: a search split in one shard, at any split depth, is the search without shards', () => {
  for (let splitDepth = 1; splitDepth <= FULL_LEVELS; splitDepth++) {
    const r = explore(c, { ...base, shard: { index: 0, count: 1, splitDepth } });
    assert.equal(r.executions, whole.executions);
    assert.equal(r.steps, whole.steps);
    assert.deepEqual([...r.traces!].sort(), [...whole.traces!].sort());
    assert.deepEqual(counterexamples(r), counterexamples(whole));
  }
});

test('shards: a split depth out of range is refused, naming it', () => {
  for (const splitDepth of [0, FULL_LEVELS + 1]) {
    assert.throws(() => explore(c, { ...base, shard: { index: 0, count: 2, splitDepth } }), /splitDepth: .*from 1 to/);
  }
});
