/**
 * Scale-out keeps the search: for several scenarios, with and without counterexamples, the
 * union of `--shard i/n` results (mergeResults, what `isolab merge` does) is the search in one
 * process, and `--workers N` (exploreInWorkers) is the search with one worker: the same
 * executions, the same complete executions (by trace fingerprint, each in one shard), the same
 * counterexamples with the same schedules. test/cli/shard.test.ts checks the same through the
 * CLI.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FULL_LEVELS } from '../../src/explore/dpor.js';
import { ALL_INVARIANTS, explore, mergeResults, withKernelOptions, type ExploreOptions, type ExploreResult } from '../../src/explore/explore.js';
import { exploreInWorkers } from '../../src/explore/parallel.js';
import { compileScenarioFile } from '../../src/scenario/index.js';

interface Case {
  name: string;
  kernel: string[];
  invariants: string[];
  /** Whether the search finds a counterexample (checked, so that the case tests what it says). */
  violates: boolean;
  /** The preemption bound (default 1). */
  preemptions?: number;
  /** Shard counts to merge. */
  shards: number[];
  /** Worker counts to compare with one worker. */
  workers: number[];
}

// Small searches (one preemption unless said, up to the end of the operations): a few seconds each here.
const CASES: Case[] = [
  // Per-process PTI (fork, exec, a thread) with every invariant: nothing broken.
  { name: 'pti-per-process', kernel: [], invariants: ALL_INVARIANTS, violates: false, shards: [2, 3], workers: [2, 3] },
  // wp_page_copy without its flush (the scenario's own kernel option): a stale TLB entry.
  { name: 'cow-stale-tlb', kernel: [], invariants: ['stale_tlb', 'lost_dirty', 'debug_checks'], violates: true, shards: [2, 3], workers: [2] },
  // The same with ptep_clear_flush, as upstream: no stale entry.
  { name: 'cow-stale-tlb', kernel: ['wp_copy_flush=ptep_clear_flush'], invariants: ['stale_tlb', 'lost_dirty', 'debug_checks'], violates: false, shards: [3], workers: [] },
  // Upstream's cmpxchg write-protect: the child's copy of a PTE read before the writer set D is clean.
  { name: 'fork-dirty-race', kernel: [], invariants: ['lost_dirty', 'rw0_dirty'], violates: true, shards: [2], workers: [2] },
];

function file(name: string): string {
  return fileURLToPath(new URL(`../../../scenarios/${name}.yaml`, import.meta.url));
}

function options(invariants: string[], preemptions = 1): ExploreOptions {
  return {
    mode: 'dpor', invariants, evictions: 0, preemptions, maxDepth: Infinity, executions: Infinity,
    seed: 1, pctDepth: 2, until: 'ops', stopAtFirst: false, fingerprints: true, minimise: true,
  };
}

/** Each counterexample as the search found it and as it reports it. */
function counterexamples(r: ExploreResult): string[] {
  return r.violations.map((v) => `${v.invariant} found ${v.found.join(',')} -> ${v.text}: ${v.message}`).sort();
}

/** What the search explored and found: the parts that scale-out must not change. */
function assertSameSearch(got: ExploreResult, whole: ExploreResult, what: string): void {
  assert.equal(got.executions, whole.executions, `${what}: executions`);
  assert.equal(got.complete, whole.complete, `${what}: complete executions`);
  assert.equal(got.sleepBlocked, whole.sleepBlocked, `${what}: sleep-set blocked executions`);
  assert.deepEqual([...got.traces!].sort(), [...whole.traces!].sort(), `${what}: the same complete executions`);
  assert.equal(got.exhaustive, whole.exhaustive, `${what}: exhaustive`);
  assert.deepEqual([...got.boundedBy].sort(), [...whole.boundedBy].sort(), `${what}: bounded by`);
  assert.deepEqual(counterexamples(got), counterexamples(whole), `${what}: the same counterexamples, schedules and messages`);
  // Every shard walks the first path, so the union takes at least the steps of the search.
  assert.ok(got.steps >= whole.steps, `${what}: ${got.steps} steps, the search alone ${whole.steps}`);
}

for (const k of CASES) {
  const label = `${k.name}${k.kernel.length ? ` --kernel ${k.kernel.join(' ')}` : ''} (${k.invariants.length === ALL_INVARIANTS.length ? 'all invariants' : k.invariants.join(',')})`;
  const c = withKernelOptions(compileScenarioFile(file(k.name)), k.kernel);
  let wholeResult: ExploreResult | undefined;
  const whole = (): ExploreResult => (wholeResult ??= explore(c, options(k.invariants, k.preemptions)));

  test(`shard union: ${label}: the search is what the case says`, () => {
    const w = whole();
    assert.ok(w.complete >= 5, `${w.complete} complete executions: a search worth splitting`);
    assert.equal(new Set(w.traces).size, w.complete, 'one fingerprint per complete execution');
    assert.equal(w.violations.length > 0, k.violates, counterexamples(w).join('\n'));
  });

  for (const count of k.shards) {
    test(`shard union: ${label}: ${count} shards merged are the search in one process`, () => {
      const w = whole();
      const parts = Array.from({ length: count }, (_, index) => explore(c, { ...options(k.invariants, k.preemptions), shard: { index, count, splitDepth: FULL_LEVELS } }));
      const owner = new Map<string, number>();
      for (const [i, p] of parts.entries()) {
        assert.deepEqual(p.shard, { index: i, count, splitDepth: FULL_LEVELS });
        for (const t of p.traces!) {
          assert.ok(!owner.has(t), `a complete execution runs in shards ${owner.get(t)} and ${i}`);
          owner.set(t, i);
        }
      }
      assertSameSearch(mergeResults(parts), w, `${count} shards`);
      // The merge is the union whatever order the shards come in.
      assertSameSearch(mergeResults([...parts].reverse()), w, `${count} shards, reversed`);
    });
  }

  for (const workers of k.workers) {
    test(`shard union: ${label}: --workers ${workers} is the search with one worker`, async () => {
      const w = whole();
      const r = await exploreInWorkers(file(k.name), k.kernel, options(k.invariants, k.preemptions), workers, FULL_LEVELS);
      assertSameSearch(r, w, `${workers} workers`);
    });
  }
}
