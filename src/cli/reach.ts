/**
 * `isolab reach FILE`: runs a scenario and lists, for each process as its address space ended
 * (exit or execve), the kernel ranges a transient (Meltdown) load from its user mode could read
 * and how many bytes, with the page table it ran on. Exit 0; 1 if the scenario's own
 * expectations failed.
 */
import pc from 'picocolors';
import type { ReachRecord } from '../kernel/kernel.js';
import { compileScenarioFile } from '../scenario/index.js';
import { runScenario } from '../scenario/run.js';
import { explainStartFailure } from './start.js';

/** Formats a byte count as B, KiB, MiB or GiB. */
function size(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[u]}`;
}

/** The text report for one process. */
export function formatReach(r: ReachRecord, name: string): string {
  const head = `${name} (pid ${r.pid}, ${r.image}): user mode on the ${r.reach.pageTable}; ${r.reach.meltdown ? `${size(r.reach.bytes)} of kernel memory readable` : 'the CPU has no meltdown bug: nothing of the kernel readable'}`;
  const lines = r.reach.ranges.map((x) => `  0x${x.start.toString(16)}-0x${x.end.toString(16)}  ${size(x.bytes).padStart(9)}  ${x.region}`);
  return [head, ...lines].join('\n');
}

export function reachCommand(file: string, opts: { json?: boolean; seed?: number }): number {
  const c = compileScenarioFile(file);
  let report;
  try {
    report = runScenario(c, { reach: true, ...(opts.seed !== undefined ? { seed: opts.seed } : {}) });
  } catch (e) {
    throw explainStartFailure(c, e);
  }
  const names = new Map(report.tasks.map((t) => [t.tid, t.name]));
  const records = report.reach ?? [];
  if (opts.json) {
    const out = records.map((r) => ({
      pid: r.pid, name: names.get(r.pid) ?? null, image: r.image, page_table: r.reach.pageTable, meltdown: r.reach.meltdown, bytes: r.reach.bytes,
      ranges: r.reach.ranges.map((x) => ({ start: `0x${x.start.toString(16)}`, end: `0x${x.end.toString(16)}`, bytes: x.bytes, region: x.region })),
    }));
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  } else {
    process.stdout.write(`${pc.bold(`isolab reach ${file}`)}\n`);
    for (const r of records) process.stdout.write(formatReach(r, names.get(r.pid) ?? `pid ${r.pid}`) + '\n');
    if (records.length === 0) process.stdout.write('no process ended its address space within the step limit\n');
  }
  return report.passed ? 0 : 1;
}
