/**
 * The explorer's benchmark (a child process of `npm run bench`, or `node dist/bench/explore.js`):
 * the seed 003 fork-against-write scenario (2 CPUs, the buffer page and the stack page written)
 * searched with DPOR, preemption bound 2, until every task has run its operations, and the
 * stale-TLB scenario searched the same way, each with fork_wrprotect / wp_copy_flush upstream
 * (so no counterexample stops the search). Prints one JSON line: executions, steps, seconds,
 * executions/s and steps/s for each.
 */
import { fileURLToPath } from 'node:url';
import { compileScenarioFile } from '../src/scenario/index.js';
import { explore, withKernelOptions } from '../src/explore/explore.js';

function measure(name: string, kernel: string[]): Record<string, number> {
  const file = fileURLToPath(new URL(`../../scenarios/${name}.yaml`, import.meta.url));
  const c = withKernelOptions(compileScenarioFile(file), kernel);
  const r = explore(c, {
    mode: 'dpor', invariants: ['stale_tlb', 'lost_dirty', 'rw0_dirty', 'debug_checks'], evictions: 0, preemptions: 2, maxDepth: Infinity,
    executions: Infinity, seed: 1, pctDepth: 2, until: 'ops', stopAtFirst: false, fingerprints: false,
  });
  const s = r.elapsedMs / 1000;
  return { executions: r.executions, complete: r.complete, steps: r.steps, seconds: Number(s.toFixed(2)), executionsPerSecond: Math.round(r.executions / s), stepsPerSecond: Math.round(r.steps / s) };
}

const out = {
  forkDirtyRace: measure('fork-dirty-race', ['fork_wrprotect=cmpxchg']),
  cowStaleTlb: measure('cow-stale-tlb', ['wp_copy_flush=ptep_clear_flush']),
};
console.log(JSON.stringify(out));
