/**
 * `npm run bench`: isolab's benchmarks.
 *
 * Each task runs in a fresh Node process, RUNS times, so that one task's type feedback and JIT
 * decisions cannot change another's figure; a run reports tinybench's median time per batch,
 * divided by the batch size, and the figure kept is the median of the runs. Prints one row
 * per task (median ns per operation, operations per second, the spread of the runs, the target
 * where one is set) and, with `--json FILE`, writes the same rows as JSON. The explorer against
 * SPIN (bench/spin.ts) runs each exhaustive search for at most 300 s, or `--spin-limit S`.
 * Last, the kernel benchmarks run against the baseline commit of bench/baseline.json,
 * alternating, and print the ratios (bench/compare.ts).
 * Figures belong in BENCHMARKS.md with the command, machine and date.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Bench } from 'tinybench';
import { compareWithBaseline, printComparison } from './compare.js';
import type { IsolabRun, PanRun, Progress } from './spin.js';
import { BATCH, translateTasks } from './translate.js';

const RUNS = 5;
/** Alternating pairs of the simulated getpid (PTI, PCID) and the native raw getpid loop. */
const GETPID_PAIRS = 3;

/** Targets from the issue tracker, median ns per operation. */
const TARGETS: Record<string, number> = {
  'translate, TLB hit': 10,
  'translate, TLB miss: 4-level walk + fill': 30,
};

interface Sample {
  medianNs: number;
  tlbHitRate: number;
}

/** In a child process: runs one task and prints its Sample as JSON. */
async function runOne(name: string): Promise<void> {
  const task = translateTasks().find((t) => t.name === name);
  if (!task) throw new Error(`no benchmark task named ${JSON.stringify(name)}`);
  const bench = new Bench({ time: 1500, warmupTime: 300 });
  let sink = 0;
  bench.add(name, () => {
    sink += task.run();
  });
  await bench.run();
  const result = bench.getTask(name)!.result;
  if (result.state !== 'completed') throw new Error(`benchmark task ${name} did not complete: ${result.state}`);
  const sample: Sample = { medianNs: (result.latency.p50 * 1e6) / BATCH, tlbHitRate: task.hitRate() };
  process.stdout.write(JSON.stringify({ sample, sink: sink === 0.5 ? sink : 0 }) + '\n');
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const round1 = (x: number): number => Math.round(x * 10) / 10;

/** What bench/spin.ts prints. */
interface SpinBench {
  limitSeconds: number;
  spin: { available: boolean; reason?: string; version?: string; runs: PanRun[] };
  isolab: { cpus2: IsolabRun; cpus3: IsolabRun };
  comparison: {
    spinSeconds: number | null;
    ratio: number | null;
    ratioIsLowerBound: boolean;
    ratioSearchOnly: number | null;
    meets1x: boolean | null;
    meetsStretch: boolean | null;
    newStepsPerSecond: number | null;
    meetsNewSteps: boolean | null;
    threeCpuFinishes: boolean;
    spin3x2Finishes: boolean | null;
  };
}

type Row = { task: string; figure: string; runs: string; target: string };
const met = (ok: boolean | null): string => (ok === null ? 'n/a' : ok ? 'met' : 'MISSED');
const int = (n: number | null): string => (n === null ? '?' : n.toLocaleString('en-US'));

/** Adds the explorer-against-SPIN rows; returns a few memory points of each isolab run. */
function spinRows(b: SpinBench, rows: Row[]): Record<string, string | number>[] {
  const L = b.limitSeconds;
  if (!b.spin.available) rows.push({ task: 'SPIN (spin-dirtybit.pml)', figure: 'unavailable', runs: b.spin.reason ?? '', target: '' });
  for (const r of b.spin.runs) {
    const search = r.searchSeconds === null ? '?' : `${r.searchSeconds} s`;
    rows.push({
      task: `SPIN ${r.ncpu}×${r.npages}, exhaustive (pan -DSAFETY)`,
      figure: r.finished ? `${(r.compileSeconds + (r.searchSeconds ?? 0)).toFixed(2)} s` : `not finished: ${r.stoppedBy}`,
      runs: `compile ${r.compileSeconds} s (spin ${r.spinSeconds} + gcc ${r.gccSeconds}), search ${search}; ${int(r.statesStored)} states, ${int(r.transitions)} transitions, depth ${int(r.depthReached)}, ${r.memoryMB ?? '?'} MB, errors ${r.errors ?? '?'}${r.notes.length ? '; ' + r.notes.join('; ') : ''}`,
      target: '',
    });
  }
  const c = b.comparison;
  for (const [key, run] of Object.entries(b.isolab) as [keyof SpinBench['isolab'], IsolabRun][]) {
    const ratio = key === 'cpus2' && c.ratio !== null ? `ratio ${c.ratioIsLowerBound ? '> ' : ''}${c.ratio} vs SPIN 2×2 (<= 1.0 ${met(c.meets1x)}; stretch <= 0.25 ${met(c.meetsStretch)})` : '';
    const three = key === 'cpus3' ? `finishes: ${met(c.threeCpuFinishes)}; SPIN 3×2 ${c.spin3x2Finishes === null ? 'n/a' : c.spin3x2Finishes ? 'finished' : `did not finish in ${L} s`}` : '';
    rows.push({
      task: `explore ${run.scenario}, ${key === 'cpus2' ? 2 : 3} CPUs, cmpxchg, no bound (DPOR)`,
      figure: run.finished ? `${run.seconds} s` : `not finished in ${run.seconds} s (${run.stoppedBy})`,
      runs: `${int(run.executions)} executions, ${int(run.steps)} steps (${int(run.newSteps)} new), ${Math.round(run.stepsPerSecond / 1000)} k steps/s, peak RSS ${run.peakRssMB ?? '?'} MB`,
      target: ratio || three,
    });
    rows.push({
      task: `  new (not replayed) steps/s, ${key === 'cpus2' ? 2 : 3} CPUs`,
      figure: run.newStepsPerSecond === null ? 'unavailable' : `${(run.newStepsPerSecond / 1000).toFixed(1)} k/s`,
      runs: '',
      target: `>= 100 k/s ${met(run.newStepsPerSecond === null ? null : run.newStepsPerSecond >= 100_000)}`,
    });
  }
  // About six points per run, evenly spread over its samples, the last one included.
  const points: Record<string, string | number>[] = [];
  for (const [key, run] of Object.entries(b.isolab)) {
    const s: Progress[] = run.samples;
    const pick = new Set<number>();
    for (let i = 1; i <= 6; i++) pick.add(Math.max(0, Math.round((i * s.length) / 6) - 1));
    for (const i of [...pick].sort((a, z) => a - z)) {
      const p = s[i];
      points.push({ run: key === 'cpus2' ? '2 CPUs' : '3 CPUs', s: p.seconds, executions: p.executions, steps: p.steps, 'new steps': p.newSteps ?? '?', depth: p.depth ?? '?', 'max depth': p.maxDepth ?? '?', 'RSS MB': p.rssMB, 'heap MB': p.heapMB });
    }
  }
  return points;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const one = args.indexOf('--task');
  if (one >= 0) return runOne(args[one + 1]);
  const jsonAt = args.indexOf('--json');
  const jsonFile = jsonAt >= 0 ? args[jsonAt + 1] : undefined;
  if (jsonAt >= 0 && !jsonFile) throw new Error('--json needs a file name');

  const self = fileURLToPath(import.meta.url);
  const rows = translateTasks().map((t) => {
    const samples: Sample[] = [];
    for (let i = 0; i < RUNS; i++) {
      const out = execFileSync(process.execPath, [self, '--task', t.name], { encoding: 'utf8' });
      samples.push((JSON.parse(out.trim().split('\n').pop()!) as { sample: Sample }).sample);
    }
    const ns = samples.map((s) => s.medianNs);
    const medianNs = median(ns);
    const target = TARGETS[t.name] ?? null;
    return {
      task: t.name,
      medianNs: round1(medianNs),
      perSecond: Math.round(1e9 / medianNs),
      runsNs: ns.map(round1),
      targetNs: target,
      meetsTarget: target === null ? null : medianNs <= target,
      tlbHitRate: Math.round(median(samples.map((s) => s.tlbHitRate)) * 1000) / 1000,
    };
  });
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  console.log(`isolab benchmarks — node ${process.version}, ${cpus().length} × ${cpu}, ${new Date().toISOString().slice(0, 10)}, median of ${RUNS} processes`);
  console.table(rows.map((r) => ({
    task: r.task,
    'median ns/op': r.medianNs,
    'ops/s': r.perSecond.toLocaleString('en-US'),
    'runs (ns/op)': r.runsNs.join(' / '),
    target: r.targetNs === null ? '' : `<= ${r.targetNs} ns ${r.meetsTarget ? 'met' : 'MISSED'}`,
    'TLB hit rate': r.tlbHitRate,
  })));
  // The kernel benchmarks, each in a fresh process; the two fork figures in the same run.
  const kernelScript = fileURLToPath(new URL('./kernel.js', import.meta.url));
  const runKernel = (flag: string): unknown => JSON.parse(execFileSync(process.execPath, ['--max-old-space-size=8192', kernelScript, flag], { encoding: 'utf8' }).trim().split('\n').pop()!);
  const getpid = runKernel('--getpid') as { perSecond: number; runs: number[] };
  // The simulated getpid under PTI with PCIDs against the host's raw getpid loop: alternating
  // processes, GETPID_PAIRS pairs, the median of the per-pair ratios.
  type Rate = { perSecond: number; runs: number[] };
  const getpidPairs: { sim: Rate; native: Rate | { unavailable: string } }[] = [];
  for (let i = 0; i < GETPID_PAIRS; i++) {
    const nativeRate = runKernel('--getpid-native') as Rate | { unavailable: string };
    getpidPairs.push({ sim: runKernel('--getpid-pti') as Rate, native: nativeRate });
  }
  const getpidRatios = getpidPairs.flatMap((p) => ('perSecond' in p.native ? [p.sim.perSecond / p.native.perSecond] : []));
  const getpidRatio = getpidRatios.length > 0 ? median(getpidRatios) : null;
  const sim = runKernel('--fork-sim') as { medianNs: number; forksNs: number[] };
  const native = runKernel('--fork-native') as { medianNs: number; forksNs: number[] } | { unavailable: string };
  const ratio = 'medianNs' in native ? sim.medianNs / native.medianNs : null;
  const kernelRows = [
    { task: 'getpid (null syscall)', figure: `${(getpid.perSecond / 1e6).toFixed(2)} M/s`, runs: getpid.runs.map((r) => (r / 1e6).toFixed(2)).join(' / '), target: `>= 2 M/s ${getpid.perSecond >= 2e6 ? 'met' : 'MISSED'}` },
    {
      task: 'getpid, PTI with PCID: isolab',
      figure: `${(median(getpidPairs.map((p) => p.sim.perSecond)) / 1e6).toFixed(2)} M/s`,
      runs: getpidPairs.map((p) => (p.sim.perSecond / 1e6).toFixed(2)).join(' / '),
      target: getpidRatio === null ? '' : `ratio to native ${getpidRatio.toFixed(2)} (pairs ${getpidRatios.map((r) => r.toFixed(2)).join(' / ')}; >= 1.0 ${getpidRatio >= 1 ? 'met' : 'MISSED'})`,
    },
    {
      task: 'getpid: native raw syscall loop',
      figure: getpidRatio === null ? `unavailable: ${(getpidPairs[0].native as { unavailable: string }).unavailable}` : `${(median(getpidPairs.map((p) => (p.native as Rate).perSecond)) / 1e6).toFixed(2)} M/s`,
      runs: getpidRatio === null ? '' : getpidPairs.map((p) => ((p.native as Rate).perSecond / 1e6).toFixed(2)).join(' / '),
      target: '',
    },
    { task: 'fork, 1 GiB touched: isolab', figure: `${(sim.medianNs / 1e6).toFixed(1)} ms`, runs: sim.forksNs.map((n) => (n / 1e6).toFixed(1)).join(' / '), target: '' },
    {
      task: 'fork, 1 GiB touched: native',
      figure: 'medianNs' in native ? `${(native.medianNs / 1e6).toFixed(1)} ms` : `unavailable: ${native.unavailable}`,
      runs: 'medianNs' in native ? native.forksNs.map((n) => (n / 1e6).toFixed(1)).join(' / ') : '',
      target: ratio === null ? '' : `ratio ${ratio.toFixed(2)} (<= 1.0 ${ratio <= 1 ? 'met' : 'MISSED'})`,
    },
  ];
  const faults = runKernel('--faults') as Record<string, { perSecond: number; runs: number[] }>;
  const faultNames: Record<string, string> = { zeroPageRead: 'read fault, zero page mapped', zeroPageCow: 'write fault on the zero page (wp_page_copy)', anonWrite: 'write fault, new anonymous page' };
  for (const [name, f] of Object.entries(faults)) {
    kernelRows.push({ task: faultNames[name], figure: `${(f.perSecond / 1e6).toFixed(2)} M/s`, runs: f.runs.map((r) => (r / 1e6).toFixed(2)).join(' / '), target: '' });
  }
  const pk = runKernel('--pkey-switch') as Record<'wrpkru' | 'mprotect', { perSecond: number; runs: number[]; syscallsPerSwitch: number; flushesPerSwitch: number }>;
  for (const name of ['wrpkru', 'mprotect'] as const) {
    const p = pk[name];
    kernelRows.push({
      task: `access switch by ${name}`,
      figure: `${(p.perSecond / 1e6).toFixed(2)} M/s`,
      runs: p.runs.map((r) => (r / 1e6).toFixed(2)).join(' / '),
      target: `${p.syscallsPerSwitch.toFixed(2)} syscalls, ${p.flushesPerSwitch.toFixed(2)} TLB flushes per switch`,
    });
  }
  const pti = runKernel('--pti-syscall') as Record<string, { perSecond: number; runs: number[]; cr3PerSyscall: number; tlbMissesPerSyscall: number }>;
  const ptiNames: Record<string, string> = { 'pti-off': 'PTI off', 'pti-pcid': 'PTI with PCID', 'pti-nopcid': 'PTI without PCID' };
  for (const [name, p] of Object.entries(pti)) {
    kernelRows.push({
      task: `null syscall, ${ptiNames[name]}`,
      figure: `${(p.perSecond / 1e6).toFixed(2)} M/s`,
      runs: p.runs.map((r) => (r / 1e6).toFixed(2)).join(' / '),
      target: `${p.cr3PerSyscall.toFixed(2)} CR3 writes, ${p.tlbMissesPerSyscall.toFixed(2)} TLB misses per syscall`,
    });
  }
  // Cost accounting on against off (bench/measure.ts), in its own process with --expose-gc.
  const measureScript = fileURLToPath(new URL('./measure.js', import.meta.url));
  const mo = JSON.parse(execFileSync(process.execPath, ['--expose-gc', measureScript], { encoding: 'utf8' }).trim().split('\n').pop()!) as { pairs: number; ratios: number[]; medianRatio: number; medianControl: number };
  kernelRows.push({
    task: 'cost accounting: measure against run',
    figure: `${mo.medianRatio.toFixed(2)}x`,
    runs: `${mo.pairs} pairs, median; control (run against run) ${mo.medianControl.toFixed(2)}x`,
    target: '<= 1.10x',
  });
  // isolab see in Chromium (bench/see.ts): a page of about 100,000 events opened and stepped.
  const seeScript = fileURLToPath(new URL('./see.js', import.meta.url));
  const sb = JSON.parse(execFileSync(process.execPath, [seeScript], { encoding: 'utf8' }).trim().split('\n').pop()!) as Record<string, number>;
  kernelRows.push({
    task: `see: open a page of ${Math.round(sb.events / 1000)}k events (${Math.round(sb.steps / 1000)}k steps)`,
    figure: `${(sb.openMs / 1000).toFixed(2)} s`,
    runs: `recorded in ${sb.recordSeconds.toFixed(1)} s, ${sb.pageMegabytes.toFixed(1)} MB`,
    target: '< 2 s',
  });
  kernelRows.push({
    task: 'see: one step (forward / back / jump to the end)',
    figure: `${sb.stepForwardMs} ms`,
    runs: `${sb.stepForwardMs} / ${sb.stepBackMs} / ${sb.jumpToEndMs} ms, medians of 15`,
    target: '< 50 ms',
  });
  // The explorer: DPOR on the seed 003 fork-against-write scenario and the stale-TLB one.
  const exploreScript = fileURLToPath(new URL('./explore.js', import.meta.url));
  const ex = JSON.parse(execFileSync(process.execPath, [exploreScript], { encoding: 'utf8' }).trim().split('\n').pop()!) as Record<string, { executions: number; steps: number; seconds: number; stepsPerSecond: number; executionsPerSecond: number }>;
  for (const [name, e] of Object.entries(ex)) {
    kernelRows.push({
      task: `explore ${name === 'forkDirtyRace' ? 'fork-dirty-race' : 'cow-stale-tlb'} (DPOR, 2 preemptions)`,
      figure: `${Math.round(e.stepsPerSecond / 1000)} k steps/s`,
      runs: `${e.executions} executions, ${e.steps} steps, ${e.seconds} s`,
      target: '100 k explored steps/s per core',
    });
  }
  // The explorer against SPIN on seed 003's race, exhaustive, in the same run (bench/spin.ts).
  const spinScript = fileURLToPath(new URL('./spin.js', import.meta.url));
  const limitAt = args.indexOf('--spin-limit');
  const spinArgs = limitAt >= 0 ? ['--limit', args[limitAt + 1]] : [];
  let vsSpin: SpinBench | { failed: string };
  try {
    vsSpin = JSON.parse(execFileSync(process.execPath, [spinScript, ...spinArgs], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 }).trim().split('\n').pop()!) as SpinBench;
  } catch (e) {
    vsSpin = { failed: e instanceof Error ? e.message.split('\n')[0] : String(e) };
  }
  const memoryRows = 'failed' in vsSpin ? [] : spinRows(vsSpin, kernelRows);
  if ('failed' in vsSpin) kernelRows.push({ task: 'explorer against SPIN', figure: `failed: ${vsSpin.failed}`, runs: '', target: '' });
  console.table(kernelRows);
  if (memoryRows.length > 0) {
    console.log('explorer memory against depth and executions (no preemption bound):');
    console.table(memoryRows);
  }
  // This tree against the baseline commit (bench/baseline.json), alternating, as ratios (bench/compare.ts).
  const baselineRef = (JSON.parse(readFileSync(fileURLToPath(new URL('../../bench/baseline.json', import.meta.url)), 'utf8')) as { ref: string }).ref;
  const baseline = compareWithBaseline(baselineRef, 3);
  printComparison(baseline);
  if (jsonFile) {
    const tmp = `${jsonFile}.tmp`;
    writeFileSync(tmp, JSON.stringify({ node: process.version, cpu, date: new Date().toISOString(), runs: RUNS, rows, kernel: { getpid, getpidPti: getpidPairs, getpidPtiRatio: getpidRatio, forkSimulated: sim, forkNative: native, forkRatio: ratio, faults, pkeySwitch: pk, ptiSyscall: pti, explore: ex, exploreVsSpin: vsSpin }, baseline }, null, 2) + '\n');
    renameSync(tmp, jsonFile);
  }
}

main().catch((e) => {
  console.error(`isolab bench: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
