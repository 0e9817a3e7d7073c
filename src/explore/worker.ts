/**
 * A worker thread of `isolab explore --workers N`: compiles the scenario, searches shard
 * `index` of `count`, posts progress ({ kind: 'progress', stats }) and the result
 * ({ kind: 'result', result }) or the error ({ kind: 'error', message }).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { compileScenarioFile } from '../scenario/index.js';
import { explore, withKernelOptions, type ExploreOptions } from './explore.js';

export interface WorkerInput {
  file: string;
  kernel: string[];
  options: Omit<ExploreOptions, 'onExecution'>;
}

const input = workerData as WorkerInput;
try {
  const c = withKernelOptions(compileScenarioFile(input.file), input.kernel);
  let last = 0;
  const result = explore(c, {
    ...input.options,
    onExecution: (stats) => {
      const now = Date.now();
      if (now - last < 200) return;
      last = now;
      parentPort!.postMessage({ kind: 'progress', stats: { ...stats } });
    },
  });
  parentPort!.postMessage({ kind: 'result', result });
} catch (e) {
  parentPort!.postMessage({ kind: 'error', message: e instanceof Error ? e.message : String(e) });
}
