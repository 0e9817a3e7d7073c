/**
 * What cost accounting adds to a run: a scenario run as `isolab run` runs it (the runner
 * listening to the event stream for its counts and timeline) against the same run with the cost
 * accountant listening too (`isolab measure`), alternating in one process after a warm-up pair.
 * Prints JSON: the ratio per pair (measure / run; the target is at most 1.10) and a control of
 * run against run.
 *
 * The workload is event-heavy on purpose: under PTI with PCIDs on two CPUs, each thread makes
 * getpid calls and touches a working set of pages between them, so every step produces entry
 * events, CR3 writes, TLB hits and misses, and the walks after each exit's deferred flush.
 */
import { builtinCostTable, profileOf } from '../src/cost/table.js';
import { CostAccountant } from '../src/cost/account.js';
import { compileScenarioText } from '../src/scenario/index.js';
import { Runner } from '../src/scenario/run.js';

const PAIRS = 15;
const ROUNDS = 3000;

export const WORKLOAD = `name: measure-overhead
machine:
  cpus: 2
  cpu: { meltdown: true }
kernel:
  pti: on
  log: false
processes:
  - name: p
    setup:
      - mmap: { len: 8 * PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }
        as: buf
    ops:
      - repeat: { count: ${ROUNDS}, ops: [ getpid, { store: { addr: $buf, value: 1 } }, { load: $buf + 4096 }, { load: $buf + 8192 } ] }
    threads:
      - name: t
        cpu: 1
        ops:
          - repeat: { count: ${ROUNDS}, ops: [ getpid, { load: $buf + 12288 }, { store: { addr: $buf + 16384, value: 2 } } ] }
`;

const compiled = compileScenarioText(WORKLOAD, 'measure-overhead.yaml');
/** Collects garbage when Node runs with --expose-gc (bench/main.ts runs this file so), so that one run's garbage is not collected in the next. */
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});

/** One run of the workload, with or without the accountant; milliseconds. */
function once(account: boolean): number {
  const c = compiled;
  gc();
  const runner = new Runner(c, {});
  const stop = account ? new CostAccountant(runner.sys, profileOf(builtinCostTable())).attach() : () => {};
  const t0 = performance.now();
  const r = runner.run();
  const ms = performance.now() - t0;
  stop();
  if (!r.finished) throw new Error('the workload did not finish');
  return ms;
}

/**
 * PAIRS pairs of (run, measure), the order swapped every other pair (ABBA), and as a control as
 * many pairs of (run, run): the control's spread is this machine's noise, against which the
 * accounting's ratio is read.
 */
export function benchMeasureOverhead(): { pairs: number; ratios: number[]; medianRatio: number; control: number[]; medianControl: number } {
  once(false);
  once(true);
  const ratios: number[] = [];
  const control: number[] = [];
  for (let i = 0; i < PAIRS; i++) {
    if (i % 2 === 0) {
      const a = once(false);
      ratios.push(once(true) / a);
    } else {
      const b = once(true);
      ratios.push(b / once(false));
    }
    const c1 = once(false);
    control.push(once(false) / c1);
  }
  const r3 = (x: number): number => Math.round(x * 1000) / 1000;
  const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  return { pairs: PAIRS, ratios: ratios.map(r3), medianRatio: r3(med(ratios)), control: control.map(r3), medianControl: r3(med(control)) };
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  console.log(JSON.stringify(benchMeasureOverhead()));
}
