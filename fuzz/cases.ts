/**
 * The two fuzzers as functions of (seed, case number): the sequence fuzzer's generated
 * scenarios and the mutation fuzzer's mutated files. A case is judged by running it twice
 * (verdict.ts); a finding is then minimised, by fast-check's shrinking for a generated
 * scenario followed by line and byte deletion, or by deletion alone for a mutated file, keeping
 * only variants that fail with the same signature.
 */
import fc from 'fast-check';
import type { Seed } from './corpus.js';
import { minimiseText } from './minimise.js';
import { mutate } from './mutate.js';
import { caseSeed, Rng } from './rng.js';
import { scenarioArbitrary, scenarioYaml } from './sequences.js';
import { nondeterminism, runCase, runTwice, signature, type CaseOptions, type Outcome } from './verdict.js';

export type FuzzerName = 'sequences' | 'files';

/** The step limit the mutation fuzzer runs files with (as `isolab run --max-steps`). */
export const FILE_MAX_STEPS = 100_000;

/** One case: the text to run and how to run it. */
export interface FuzzCase {
  fuzzer: FuzzerName;
  seed: number;
  index: number;
  /** What it was made from: `generated`, or a seed file and the mutations applied. */
  origin: string;
  text: string;
  opts: CaseOptions;
}

/** The name a case's text is compiled under (messages carry it). */
export const CASE_FILE = 'case.yaml';

/** Case `index` of the sequence fuzzer seeded `seed`. */
export function sequenceCase(seed: number, index: number): FuzzCase {
  const [s] = fc.sample(scenarioArbitrary, { seed: caseSeed(seed, index), numRuns: 1 });
  return { fuzzer: 'sequences', seed, index, origin: 'generated', text: scenarioYaml(s), opts: { strictEnd: true } };
}

/** Case `index` of the mutation fuzzer seeded `seed`, over `corpus`. */
export function fileCase(seed: number, index: number, corpus: Seed[]): FuzzCase {
  const r = new Rng(caseSeed(seed, index));
  const base = corpus[r.below(corpus.length)];
  const { text, applied } = mutate(base.text, r);
  return { fuzzer: 'files', seed, index, origin: `${base.origin} + ${applied.join(', ')}`, text, opts: { maxSteps: FILE_MAX_STEPS } };
}

/** Case `index` of `fuzzer`. */
export function makeCase(fuzzer: FuzzerName, seed: number, index: number, corpus: Seed[]): FuzzCase {
  return fuzzer === 'sequences' ? sequenceCase(seed, index) : fileCase(seed, index, corpus);
}

/**
 * Runs a case, twice unless `once` (the second run checks determinism), and flags one whose
 * run took longer than `budgetMs`, and again when timed once more, as a hang. A run's time is
 * the smaller of its wall-clock time and the process's CPU time: a machine busy with other
 * work stretches the first, other worker threads of this process the second, and neither
 * makes a quick case look like a hang.
 */
export function judgeCase(c: FuzzCase, budgetMs: number, once = false): Outcome {
  const timed = (): { o: Outcome; ms: number } => {
    const t0 = Date.now();
    const cpu0 = process.cpuUsage();
    const o = runCase(c.text, CASE_FILE, c.opts);
    const cpu = process.cpuUsage(cpu0);
    return { o, ms: Math.min(Date.now() - t0, (cpu.user + cpu.system) / 1000) };
  };
  const first = timed();
  let o = first.o;
  if (!once) {
    const second = runCase(c.text, CASE_FILE, c.opts);
    if (second.digest !== o.digest || second.status !== o.status || second.kind !== o.kind) o = nondeterminism(o, second);
  }
  if (o.status !== 'finding' && first.ms > budgetMs) {
    const again = timed();
    if (again.ms > budgetMs) return { ...o, status: 'finding', kind: 'hang', message: `one run took ${first.ms} ms, then ${again.ms} ms, over the ${budgetMs} ms budget (${o.steps} steps)` };
  }
  return o;
}

/** Whether `text` fails with signature `sig` (run twice only for a nondeterminism finding; a hang is not re-timed: its original text is kept). */
function failsAs(c: FuzzCase, sig: string, kindOf: Outcome['kind']): (text: string) => boolean {
  return (text) => {
    const o = kindOf === 'nondeterminism' ? runTwice(text, CASE_FILE, c.opts) : runCase(text, CASE_FILE, c.opts);
    return o.status === 'finding' && signature(o) === sig;
  };
}

/** The smallest text found that fails like `o`, within `ms` milliseconds. */
export function minimiseCase(c: FuzzCase, o: Outcome, ms: number, onTry: () => void = () => {}): string {
  if (o.kind === 'hang') return c.text;
  const sig = signature(o);
  const deadline = Date.now() + ms;
  const test = failsAs(c, sig, o.kind);
  const fails = (text: string): boolean => {
    onTry();
    return test(text);
  };
  let text = c.text;
  if (c.fuzzer === 'sequences') {
    const shrunk = fc.check(fc.property(scenarioArbitrary, (s) => Date.now() > deadline || !fails(scenarioYaml(s))), { seed: caseSeed(c.seed, c.index), numRuns: 1 });
    if (shrunk.failed && shrunk.counterexample) text = scenarioYaml(shrunk.counterexample[0]);
  }
  return minimiseText(text, fails, { tries: 3000, deadline });
}
