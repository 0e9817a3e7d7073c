/**
 * `measure`: one run of a scenario on the CPU a profile describes, with every event charged
 * (account.ts), reported per CPU, task, syscall and operation with the counts behind each
 * figure. The profile's CPU features (PCID, INVPCID) replace the scenario's, so the kernel
 * takes the paths it would on that CPU.
 */
import type { CompiledScenario } from '../scenario/compile.js';
import { Runner, type Counts, type RunReport } from '../scenario/run.js';
import { breakdown, CostAccountant, type CostBreakdown } from './account.js';
import type { CostTable, Profile } from './table.js';

export interface MeasureOptions {
  seed?: number;
  maxSteps?: number;
  schedule?: number[];
}

/** The report of one measured run (`isolab measure --json`). */
export interface MeasureReport {
  scenario: string;
  /** The cost table's file. */
  costTable: string;
  profile: { name: string; description: string; clockGhz: number; features: { pcid: boolean; invpcid: boolean } };
  steps: number;
  finished: boolean;
  /** Whether the scenario's expectations held in this run (they may depend on the CPU the profile gives). */
  passed: boolean;
  /** The run's event counts, as `isolab run` reports them. */
  counts: Counts;
  /** The whole run: every CPU's cycles summed (CPU time, not wall time). */
  total: CostBreakdown;
  cpus: (CostBreakdown & { cpu: number })[];
  /** Per task; tid 0 is what ran with no task (an idle CPU taking an IPI). */
  tasks: (CostBreakdown & { tid: number; name: string })[];
  /** Per syscall name, from entry to the return to user mode. */
  syscalls: (CostBreakdown & { name: string; calls: number; cyclesPerCall: number })[];
  /** Per user operation (`process: fn[index] op`), its kernel work included, in the order they first ran. */
  ops: (CostBreakdown & { op: string; runs: number })[];
}

/** The scenario with the profile's CPU features (PCID, INVPCID) in place of its own. */
export function onProfile(c: CompiledScenario, profile: Profile): CompiledScenario {
  return { ...c, system: { ...c.system, cpu: { ...(c.system.cpu ?? {}), pcid: profile.features.pcid, invpcid: profile.features.invpcid } } };
}

/** Runs `c` on `profile`'s CPU and charges every event with `profile`'s figures. */
export function measureScenario(c: CompiledScenario, table: CostTable, profile: Profile, opts: MeasureOptions = {}): MeasureReport {
  const runner = new Runner(onProfile(c, profile), { seed: opts.seed, maxSteps: opts.maxSteps, schedule: opts.schedule });
  const acct = new CostAccountant(runner.sys, profile);
  const stop = acct.attach();
  let run: RunReport;
  try {
    run = runner.run();
  } finally {
    stop();
  }
  return report(c, table, profile, acct, run);
}

/** The accountant's buckets as a report. */
function report(c: CompiledScenario, table: CostTable, profile: Profile, acct: CostAccountant, run: RunReport): MeasureReport {
  const ghz = profile.clockGhz;
  const names = new Map(run.tasks.map((t) => [t.tid, t.name]));
  const tasks: MeasureReport['tasks'] = [];
  acct.tasks.forEach((b, tid) => {
    if (b) tasks.push({ tid, name: tid === 0 ? '(no task)' : names.get(tid) ?? `task ${tid}`, ...breakdown(b, profile) });
  });
  const syscalls = [...acct.syscalls.entries()]
    .map(([name, b]) => {
      const calls = acct.syscallCalls.get(name) ?? 0;
      const d = breakdown(b, profile);
      return { name, calls, cyclesPerCall: calls > 0 ? d.cycles / calls : 0, ...d };
    })
    .sort((a, b) => b.cycles - a.cycles || a.name.localeCompare(b.name));
  const ops = Array.from({ length: acct.ops.size }, (_, id) => ({ op: acct.ops.key(id), runs: acct.ops.runs[id], ...breakdown(acct.ops.bucket(id), profile) }));
  return {
    scenario: c.name,
    costTable: table.file,
    profile: { name: profile.name, description: profile.description, clockGhz: ghz, features: { ...profile.features } },
    steps: run.counts.steps,
    finished: run.finished,
    passed: run.passed,
    counts: run.counts,
    total: breakdown(acct.total, profile),
    cpus: acct.cpus.map((b, cpu) => ({ cpu, ...breakdown(b, profile) })),
    tasks,
    syscalls,
    ops,
  };
}
