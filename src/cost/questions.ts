/**
 * The seeds' cost questions, answered by the model on the default profile from the scenarios in
 * questions/ (docs/measure.md shows the answers, remade by `npm run docs:calibration`; the tests
 * check them). Each answer is read where the model charges it, not from whole-run totals, so
 * that what a scenario does around the question (start-up, exit, the faults of its own
 * unrolled text) stays out:
 *
 * - seed 000: a getpid's cycles with PTI and after ARCH_SET_NOPTI with NOPTI_NOW (the median
 *   over the calls of what each getpid operation was charged), and what the difference saves
 *   per second at 100,000 syscalls a second on one CPU;
 * - seed 003: the fork syscall's cycles at 64 and 128 written pages, per side; the difference
 *   over the 64 extra PTEs is the cost per PTE, times 262,144 per GiB;
 * - seed 004: a getpid's cycles per side (the syscall path), and a first read of a page (the
 *   median load: the fault's entry, handling and exit);
 * - seed 002: the median cycles of a switch pair (open, a read, close) by WRPKRU and by
 *   mprotect (its shootdown's IPI sending and waiting included), alone and with a second thread
 *   on another CPU, whose IPI receipts are shared out over the pairs.
 */
import { fileURLToPath } from 'node:url';
import { compileScenarioFile } from '../scenario/index.js';
import { compareSides } from './compare.js';
import { measureScenario, type MeasureReport } from './measure.js';
import { builtinCostTable, profileOf, type CostTable, type Profile } from './table.js';

/** The questions' scenarios' directory. */
const DIR = fileURLToPath(new URL('../../../questions/', import.meta.url));

export interface Answer {
  seed: string;
  question: string;
  /** Label and value pairs, in order. */
  figures: { label: string; value: number; unit: string }[];
  command: string;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)];
};

/** The median cycles of the operations of `r` whose key ends with ` op` (each copy of an unrolled operation once). */
function medianOp(r: MeasureReport, op: string): number {
  return median(r.ops.filter((o) => o.op.endsWith(` ${op}`) && o.runs > 0).map((o) => o.cycles / o.runs));
}

/**
 * The median cycles of a switch pair of the pkey-switch scenario's main thread in run `r`: each
 * `switch` operation (wrpkru or mprotect), the load after it and the `switch` after that, in
 * program order; plus the IPIs the other CPU took per pair, from the difference between `r` and
 * `fewer`, the same run with fewer pairs (the thread's own start and exit flush too).
 */
function medianPair(r: MeasureReport, fewer: MeasureReport, kind: string): number {
  const main = r.ops.filter((o) => o.op.startsWith('p: main[') && o.runs > 0 && (o.op.endsWith(` ${kind}`) || o.op.endsWith(' load')));
  const first = main.findIndex((o) => o.op.endsWith(` ${kind}`));
  const pairs: number[] = [];
  for (let i = first; i + 2 < main.length; i += 3) pairs.push(main[i].cycles + main[i + 1].cycles + main[i + 2].cycles);
  const received = (m: MeasureReport): number => m.total.items.find((i) => i.name === 'ipi_receive')?.cycles ?? 0;
  const pairsOf = (m: MeasureReport): number => m.ops.filter((o) => o.op.startsWith('p: main[') && o.op.endsWith(` ${kind}`) && o.runs > 0).length / 2;
  return median(pairs) + (received(r) - received(fewer)) / (pairsOf(r) - pairsOf(fewer));
}

/** The answers on `profile` (default: the table's). */
export function answerSeedQuestions(table: CostTable = builtinCostTable(), profile: Profile = profileOf(table)): Answer[] {
  const ns = (cycles: number): number => cycles / profile.clockGhz;
  const answers: Answer[] = [];

  // Seed 000.
  const nopti = (on: number) => measureScenario(compileScenarioFile(`${DIR}nopti-syscalls.yaml`, { nopti: on }), table, profile);
  const withPti = medianOp(nopti(0), 'getpid');
  const without = medianOp(nopti(1), 'getpid');
  answers.push({
    seed: '000',
    question: 'What does ARCH_SET_NOPTI with NOPTI_NOW save?',
    figures: [
      { label: 'getpid under PTI (PCID)', value: withPti, unit: 'cycles' },
      { label: 'getpid after ARCH_SET_NOPTI', value: without, unit: 'cycles' },
      { label: 'saved per syscall', value: ns(withPti - without), unit: 'ns' },
      { label: 'saved at 100,000 syscalls a second on one CPU', value: ((withPti - without) * 100_000) / (profile.clockGhz * 1e9) * 100, unit: '% of the CPU' },
    ],
    command: 'isolab measure questions/nopti-syscalls.yaml --param nopti=0   (and nopti=1)',
  });

  // Seed 003.
  const fork = (pages: number) => compareSides(compileScenarioFile(`${DIR}fork-wrprotect.yaml`, { pages }), table, profile).sides;
  const small = fork(64);
  const large = fork(128);
  const perPte = (i: number): number => {
    const at = (sides: typeof small): number => sides[i].report.syscalls.find((s) => s.name === 'fork')!.cyclesPerCall;
    return (at(large) - at(small)) / 64;
  };
  answers.push({
    seed: '003',
    question: "fork's write-protect: the cmpxchg loop (6.6) against one locked AND (6.5)",
    figures: [
      { label: 'per PTE, cmpxchg', value: perPte(0), unit: 'cycles' },
      { label: 'per PTE, locked AND', value: perPte(1), unit: 'cycles' },
      { label: 'difference per GiB of written memory', value: (((perPte(0) - perPte(1)) * 262_144) / (profile.clockGhz * 1e9)) * 1e6, unit: 'µs' },
    ],
    command: 'isolab compare questions/fork-wrprotect.yaml --param pages=64   (and pages=128)',
  });

  // Seed 004.
  const stacks = compareSides(compileScenarioFile(`${DIR}entry-stacks.yaml`), table, profile).sides;
  answers.push({
    seed: '004',
    question: 'Per-task PTI entry stacks against per-CPU ones',
    figures: stacks.flatMap((s) => [
      { label: `a syscall, ${s.name}`, value: s.report.syscalls.find((c) => c.name === 'getpid')!.cyclesPerCall, unit: 'cycles' },
      { label: `a page fault, ${s.name}`, value: medianOp(s.report, 'load'), unit: 'cycles' },
    ]),
    command: 'isolab compare questions/entry-stacks.yaml',
  });

  // Seed 002.
  const pkey = (mprotect: number, helper: number, switches: number) => measureScenario(compileScenarioFile(`${DIR}pkey-switch.yaml`, { mprotect, helper, switches }), table, profile);
  const pair = (mprotect: number, helper: number): number => medianPair(pkey(mprotect, helper, 40), pkey(mprotect, helper, 20), mprotect ? 'mprotect' : 'wrpkru');
  answers.push({
    seed: '002',
    question: 'A domain switch pair (open, one read, close): WRPKRU against mprotect',
    figures: [
      { label: 'WRPKRU', value: pair(0, 0), unit: 'cycles' },
      { label: 'WRPKRU, a second thread on another CPU', value: pair(0, 1), unit: 'cycles' },
      { label: 'mprotect', value: pair(1, 0), unit: 'cycles' },
      { label: 'mprotect, a second thread on another CPU', value: pair(1, 1), unit: 'cycles' },
    ],
    command: 'isolab measure questions/pkey-switch.yaml --param mprotect=1 --param helper=1   (and the other three)',
  });
  return answers;
}
