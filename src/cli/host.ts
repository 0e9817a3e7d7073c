/**
 * `isolab host FILE`: runs a scenario on this machine's kernel as a generated C program and
 * compares every record and exit status with isolab's run of it (src/host/). Exit 0 when
 * everything compared agrees, 1 for a divergence or a scenario the host cannot run; a missing
 * file or compiler is a typed error (status 2).
 */
import { join } from 'node:path';
import { statSync } from 'node:fs';
import { compileScenarioFile } from '../scenario/index.js';
import { runOnHost, type HostReport } from '../host/host.js';
import { OutputError, writeOutput } from './output.js';

export interface HostCommandOptions {
  keep?: string;
  json?: boolean;
  cc?: string;
}

/** The report as text: agreement, divergences, then what was not compared or not run, each with its place. */
export function formatHostReport(r: HostReport): string {
  const lines: string[] = [`${r.scenario}${r.file ? ` (${r.file})` : ''} on the host kernel`];
  const item = (x: { where: string; what: string; reason: string }): string => `  ${x.where}: ${x.what}: ${x.reason}`;
  if (!r.ran) {
    lines.push('not runnable on this host:', ...r.blocking.map(item));
    return lines.join('\n') + '\n';
  }
  const c = r.comparison!;
  if (r.notes.length > 0) lines.push('notes:', ...r.notes.map(item));
  lines.push(`agreed: ${c.agreed}`);
  if (c.divergences.length > 0) {
    lines.push(`divergences: ${c.divergences.length}`);
    for (const d of c.divergences) lines.push(`  ${d.where}: ${d.thread}: ${d.what}: isolab ${d.isolab}, host ${d.host}`);
  }
  if (c.scheduleDependent.length > 0) {
    lines.push(`schedule-dependent (the scenario's schedule races inside the kernel; the host ran isolab's order): ${c.scheduleDependent.length}`);
    for (const d of c.scheduleDependent) lines.push(`  ${d.where}: ${d.thread}: ${d.what}: isolab ${d.isolab}, host ${d.host}`);
  }
  if (c.notComparable.length > 0) lines.push(`not comparable: ${c.notComparable.length}`, ...c.notComparable.map(item));
  if (c.skipped.length > 0) lines.push('not run on the host:', ...c.skipped.map((s) => `${item(s)}${s.count > 1 ? ` (${s.count} times)` : ''}`));
  if (r.trouble) lines.push(`trouble: ${r.trouble}`);
  lines.push(r.agreed ? 'verdict: the host agrees with isolab on everything compared' : 'verdict: the host differs from isolab');
  return lines.join('\n') + '\n';
}

export async function hostCommand(file: string, opts: HostCommandOptions): Promise<number> {
  const compiled = compileScenarioFile(file);
  if (opts.keep !== undefined) {
    let dir = false;
    try {
      dir = statSync(opts.keep).isDirectory();
    } catch {
      // reported below
    }
    if (!dir) throw new OutputError(`--keep ${opts.keep}: not a directory`);
  }
  const report = await runOnHost(compiled, {
    cc: opts.cc,
    onSource: opts.keep !== undefined ? (source) => writeOutput(join(opts.keep!, `${compiled.name}.c`), source) : undefined,
  });
  if (opts.json) process.stdout.write(JSON.stringify(report, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n');
  else process.stdout.write(formatHostReport(report));
  return report.ran && report.agreed ? 0 : 1;
}
