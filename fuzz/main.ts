/**
 * `npm run fuzz -- --seconds N [--seed S] [--out DIR] [--only sequences|files] [--workers N]`:
 * the long-running fuzzer. Runs the sequence fuzzer (random scenarios with hostile arguments)
 * and the mutation fuzzer (mutated scenario files) in worker threads until the time is up,
 * prints progress every few seconds (cases per second, findings), and writes each distinct
 * finding's minimised reproducer into DIR (default fuzz-out/; output.ts). A worker that stays
 * inside one case for longer than the wall-clock budget is ended, and the case written as a
 * `hang`. Exit status 1 when anything was found, 0 otherwise, 2 for a bad argument.
 * Case i of a given seed is the same on every run, so `--seed` replays a run, and
 * `--seed S --case sequences:I` runs case I alone and minimises it for up to --seconds.
 */
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { judgeCase, makeCase, minimiseCase, type FuzzCase, type FuzzerName } from './cases.js';
import { loadCorpus } from './corpus.js';
import { writeFinding } from './output.js';
import { signature } from './verdict.js';
import type { WorkerConfig, WorkerMessage } from './worker.js';

const USAGE = 'usage: npm run fuzz -- --seconds N [--seed S] [--out DIR] [--only sequences|files] [--workers N] [--budget-ms MS] [--case sequences|files:INDEX]';

/** A non-negative integer option, or exit 2. */
function intOption(name: string, v: string | undefined, dflt: number, max = Number.MAX_SAFE_INTEGER): number {
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v) || Number(v) > max) {
    process.stderr.write(`fuzz: --${name} must be an integer from 0 to ${max}\n${USAGE}\n`);
    process.exit(2);
  }
  return Number(v);
}

let parsed;
try {
  parsed = parseArgs({
    options: {
      seconds: { type: 'string' }, seed: { type: 'string' }, out: { type: 'string' }, only: { type: 'string' },
      workers: { type: 'string' }, 'budget-ms': { type: 'string' }, case: { type: 'string' }, help: { type: 'boolean' },
    },
  }).values;
} catch (e) {
  process.stderr.write(`fuzz: ${(e as Error).message}\n${USAGE}\n`);
  process.exit(2);
}
if (parsed.help) {
  process.stdout.write(USAGE + '\n');
  process.exit(0);
}
const seconds = intOption('seconds', parsed.seconds, 60);
const seed = intOption('seed', parsed.seed, Date.now() % 0x100000000, 0xffffffff);
const perFuzzer = Math.max(1, intOption('workers', parsed.workers, 1, 64));
const budgetMs = intOption('budget-ms', parsed['budget-ms'], 10_000);
const out = parsed.out ?? 'fuzz-out';
if (parsed.only !== undefined && parsed.only !== 'sequences' && parsed.only !== 'files') {
  process.stderr.write(`fuzz: --only must be sequences or files\n${USAGE}\n`);
  process.exit(2);
}
const fuzzers: FuzzerName[] = parsed.only ? [parsed.only as FuzzerName] : ['sequences', 'files'];
const corpus = loadCorpus();
const startedAt = Date.now();
const deadline = startedAt + seconds * 1000;
const minimiseMs = Math.min(120_000, Math.max(5_000, seconds * 100));

interface Stats {
  cases: number;
  findings: number;
  distinct: number;
}
const stats = new Map<FuzzerName, Stats>(fuzzers.map((f) => [f, { cases: 0, findings: 0, distinct: 0 }]));
const written = new Map<string, string>();
const workers = new Set<{ worker: Worker; fuzzer: FuzzerName; last: number; index: number; stride: number; ended: boolean }>();

/** Records a finding; writes its files the first time its signature is seen. */
function record(c: FuzzCase, m: Extract<WorkerMessage, { type: 'finding' }>): void {
  const s = stats.get(c.fuzzer)!;
  s.findings++;
  if (written.has(m.signature)) return;
  s.distinct++;
  const path = writeFinding(out, { fuzzerCase: c, outcome: { status: 'finding', kind: m.kind as never, message: m.message, digest: '', steps: 0 }, signature: m.signature, minimised: m.minimised });
  written.set(m.signature, path);
  for (const w of workers) w.worker.postMessage({ known: m.signature });
  process.stdout.write(`  new finding (${c.fuzzer}, case ${c.index}): ${m.signature}\n    -> ${path}\n`);
}

/** Starts a worker on cases start, start + stride, ... of `fuzzer`. */
function spawn(fuzzer: FuzzerName, start: number, stride: number): void {
  const config: WorkerConfig = { fuzzer, seed, start, stride, deadline, budgetMs, minimiseMs, known: [...written.keys()] };
  const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: config });
  const w = { worker, fuzzer, last: Date.now(), index: start, stride, ended: false };
  workers.add(w);
  worker.on('message', (m: WorkerMessage) => {
    w.last = Date.now();
    if (m.type === 'begin') w.index = m.index;
    else if (m.type === 'done') stats.get(fuzzer)!.cases++;
    else if (m.type === 'finding') record(makeCase(fuzzer, seed, m.index, corpus), m);
  });
  worker.on('error', (e) => {
    // A worker that died of its own error (out of memory, a stack overflow outside a case): an internal finding for the case it was in.
    if (w.ended) return;
    w.ended = true;
    workers.delete(w);
    const c = makeCase(fuzzer, seed, w.index, corpus);
    const message = `the fuzzing worker died: ${e instanceof Error ? e.message : String(e)}`;
    record(c, { type: 'finding', index: w.index, signature: `internal: worker died: ${String((e as Error).message).slice(0, 80)}`, kind: 'internal', message, minimised: c.text, known: false });
    if (Date.now() < deadline) spawn(fuzzer, w.index + stride, stride);
  });
  worker.on('exit', () => {
    w.ended = true;
    workers.delete(w);
  });
}

/**
 * How many budgets a worker may stay silent: a case runs up to three times (the run, the
 * determinism run, the re-timing of a slow one), each within the budget when all is well.
 */
const SILENCE = 4;

/** Ends a worker that has been silent past SILENCE budgets, writes its case as a hang, and starts a replacement after it. */
function watchdog(): void {
  for (const w of [...workers]) {
    if (w.ended || Date.now() - w.last <= SILENCE * budgetMs) continue;
    w.ended = true;
    workers.delete(w);
    void w.worker.terminate();
    const c = makeCase(w.fuzzer, seed, w.index, corpus);
    const message = `no answer for ${Date.now() - w.last} ms (${SILENCE} budgets of ${budgetMs} ms): the case (or a run of its minimisation) never returned`;
    record(c, { type: 'finding', index: w.index, signature: `hang: case ${w.fuzzer} ${w.index}`, kind: 'hang', message, minimised: c.text, known: false });
    if (Date.now() < deadline) spawn(w.fuzzer, w.index + w.stride, w.stride);
  }
}

function progress(final = false): void {
  const secs = Math.max(0.001, (Date.now() - startedAt) / 1000);
  const parts = [...stats].map(([f, s]) => `${f}: ${s.cases} cases (${(s.cases / secs).toFixed(1)}/s), ${s.findings} findings (${s.distinct} distinct)`);
  process.stdout.write(`${final ? 'done' : `[${secs.toFixed(0).padStart(5)}s]`} ${parts.join(' | ')}\n`);
}

if (parsed.case !== undefined) replayOne(parsed.case);

/** --case FUZZER:INDEX: runs that one case here, and minimises it for up to --seconds when it is a finding. */
function replayOne(spec: string): never {
  const m = /^(sequences|files):(\d+)$/.exec(spec);
  if (!m) {
    process.stderr.write(`fuzz: --case must be sequences:INDEX or files:INDEX\n${USAGE}\n`);
    process.exit(2);
  }
  const c = makeCase(m[1] as FuzzerName, seed, Number(m[2]), corpus);
  const o = judgeCase(c, budgetMs);
  if (o.status !== 'finding') {
    process.stdout.write(`case ${spec} of seed ${seed}: ${o.status} (${o.message.split('\n')[0]})\n`);
    process.exit(0);
  }
  const sig = signature(o);
  process.stdout.write(`case ${spec} of seed ${seed}: ${sig}\nminimising for up to ${seconds} s ...\n`);
  const path = writeFinding(out, { fuzzerCase: c, outcome: o, signature: sig, minimised: minimiseCase(c, o, seconds * 1000) });
  process.stdout.write(`-> ${path}\n`);
  process.exit(1);
}

process.stdout.write(`fuzz: seed ${seed}, ${seconds} s, ${fuzzers.join(' and ')}, ${perFuzzer} worker(s) each, findings into ${out}/\n`);
for (const f of fuzzers) for (let i = 0; i < perFuzzer; i++) spawn(f, i, perFuzzer);
const timer = setInterval(() => {
  watchdog();
  if (workers.size === 0) {
    clearInterval(timer);
    clearInterval(ticker);
    progress(true);
    const total = [...stats.values()].reduce((a, s) => a + s.findings, 0);
    if (written.size > 0) process.stdout.write(`${written.size} distinct finding(s):\n${[...written].map(([sig, p]) => `  ${p}  ${sig}`).join('\n')}\n`);
    process.exitCode = total > 0 ? 1 : 0;
  }
}, 250);
const ticker = setInterval(() => progress(), 5000);
