/**
 * `npm run bench`: isolab's benchmarks.
 *
 * Each task runs in a fresh Node process, RUNS times, so that one task's type feedback and JIT
 * decisions cannot change another's figure; a run reports tinybench's median time per batch,
 * divided by the batch size, and the figure kept is the median of the runs. Prints one row
 * per task (median ns per operation, operations per second, the spread of the runs, the target
 * where one is set) and, with `--json FILE`, writes the same rows as JSON.
 * Figures belong in BENCHMARKS.md with the command, machine and date.
 */
import { execFileSync } from 'node:child_process';
import { renameSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Bench } from 'tinybench';
import { BATCH, translateTasks } from './translate.js';

const RUNS = 5;

/** Targets from the issue tracker, median ns per operation. */
const TARGETS: Record<string, number> = {
  'translate, TLB hit': 20,
  'translate, TLB miss: 4-level walk + fill': 60,
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
  const sim = runKernel('--fork-sim') as { medianNs: number; forksNs: number[] };
  const native = runKernel('--fork-native') as { medianNs: number; forksNs: number[] } | { unavailable: string };
  const ratio = 'medianNs' in native ? sim.medianNs / native.medianNs : null;
  const kernelRows = [
    { task: 'getpid (null syscall)', figure: `${(getpid.perSecond / 1e6).toFixed(2)} M/s`, runs: getpid.runs.map((r) => (r / 1e6).toFixed(2)).join(' / '), target: `>= 2 M/s ${getpid.perSecond >= 2e6 ? 'met' : 'MISSED'}` },
    { task: 'fork, 1 GiB touched: isolab', figure: `${(sim.medianNs / 1e6).toFixed(1)} ms`, runs: sim.forksNs.map((n) => (n / 1e6).toFixed(1)).join(' / '), target: '' },
    {
      task: 'fork, 1 GiB touched: native',
      figure: 'medianNs' in native ? `${(native.medianNs / 1e6).toFixed(1)} ms` : `unavailable: ${native.unavailable}`,
      runs: 'medianNs' in native ? native.forksNs.map((n) => (n / 1e6).toFixed(1)).join(' / ') : '',
      target: ratio === null ? '' : `ratio ${ratio.toFixed(2)} (<= 3 ${ratio <= 3 ? 'met' : 'MISSED'})`,
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
  console.table(kernelRows);
  if (jsonFile) {
    const tmp = `${jsonFile}.tmp`;
    writeFileSync(tmp, JSON.stringify({ node: process.version, cpu, date: new Date().toISOString(), runs: RUNS, rows, kernel: { getpid, forkSimulated: sim, forkNative: native, forkRatio: ratio, faults, pkeySwitch: pk, ptiSyscall: pti, explore: ex } }, null, 2) + '\n');
    renameSync(tmp, jsonFile);
  }
}

main().catch((e) => {
  console.error(`isolab bench: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
