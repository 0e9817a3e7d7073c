/**
 * A fuzzing worker thread: runs cases start, start + stride, start + 2 stride, ... of one
 * fuzzer until its deadline, telling the main thread before each case (`begin`) and during a
 * minimisation (`tick`), so a case that never returns is noticed there and the worker
 * replaced. Each new finding is minimised here and sent whole.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { judgeCase, makeCase, minimiseCase, type FuzzerName } from './cases.js';
import { loadCorpus } from './corpus.js';
import { signature } from './verdict.js';

export interface WorkerConfig {
  fuzzer: FuzzerName;
  seed: number;
  start: number;
  stride: number;
  /** Date.now() after which no case is started. */
  deadline: number;
  budgetMs: number;
  minimiseMs: number;
  /** Signatures already found (not minimised again). */
  known: string[];
}

export type WorkerMessage =
  | { type: 'begin'; index: number }
  | { type: 'tick' }
  | { type: 'done'; index: number; status: string }
  | { type: 'finding'; index: number; signature: string; kind: string; message: string; minimised: string; known: boolean };

const config = workerData as WorkerConfig;
const port = parentPort!;
const known = new Set(config.known);
port.on('message', (m: { known?: string }) => {
  if (m.known) known.add(m.known);
});
const corpus = loadCorpus();
const post = (m: WorkerMessage): void => port.postMessage(m);

/** Lets the main thread's messages (new known signatures) in between cases. */
const pause = (): Promise<void> => new Promise((r) => setImmediate(r));

for (let index = config.start; Date.now() < config.deadline; index += config.stride) {
  post({ type: 'begin', index });
  const c = makeCase(config.fuzzer, config.seed, index, corpus);
  const o = judgeCase(c, config.budgetMs);
  post({ type: 'done', index, status: o.status });
  if (o.status === 'finding') {
    const sig = signature(o);
    const seen = known.has(sig);
    const minimised = seen ? c.text : minimiseCase(c, o, config.minimiseMs, () => post({ type: 'tick' }));
    known.add(sig);
    post({ type: 'finding', index, signature: sig, kind: o.kind!, message: o.message, minimised, known: seen });
  }
  await pause();
}
port.close();
