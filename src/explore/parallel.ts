/**
 * `--workers N`: the search split into N shards (dpor.ts), one worker thread each, the results
 * merged as `isolab merge` would. Random modes give each worker its own seed (seed + index).
 */
import { Worker } from 'node:worker_threads';
import { ModelError } from '../errors.js';
import type { SearchStats } from './dpor.js';
import { mergeResults, type ExploreOptions, type ExploreResult } from './explore.js';
import type { WorkerInput } from './worker.js';

/** Runs `workers` workers on `file`, the search split at `splitDepth` (dpor.ts), and merges what they find; `onProgress` gets the summed stats. */
export async function exploreInWorkers(file: string, kernel: string[], o: ExploreOptions, workers: number, splitDepth: number, onProgress?: (s: SearchStats) => void): Promise<ExploreResult> {
  const per: SearchStats[] = Array.from({ length: workers }, () => ({ executions: 0, complete: 0, sleepBlocked: 0, steps: 0 }));
  const { onExecution: _ignored, ...plain } = o;
  const runs = per.map((_, index) => {
    const options: WorkerInput['options'] =
      o.mode === 'dpor'
        ? { ...plain, shard: { index, count: workers, splitDepth } }
        : { ...plain, seed: (o.seed + index) >>> 0, executions: Math.ceil(o.executions / workers), shard: { index, count: workers, splitDepth } };
    const input: WorkerInput = { file, kernel, options };
    return new Promise<ExploreResult>((resolve, reject) => {
      const w = new Worker(new URL('./worker.js', import.meta.url), { workerData: input });
      w.on('message', (m: { kind: string; stats?: SearchStats; result?: ExploreResult; message?: string }) => {
        if (m.kind === 'progress' && m.stats) {
          per[index] = m.stats;
          onProgress?.(per.reduce((a, s) => ({ executions: a.executions + s.executions, complete: a.complete + s.complete, sleepBlocked: a.sleepBlocked + s.sleepBlocked, steps: a.steps + s.steps })));
        } else if (m.kind === 'result') resolve(m.result!);
        else if (m.kind === 'error') reject(new ModelError('explore', `worker ${index}: ${m.message}`));
      });
      w.on('error', (e) => reject(new ModelError('explore', `worker ${index}: ${e.message}`)));
    });
  });
  const results = await Promise.all(runs);
  return mergeResults(results);
}
