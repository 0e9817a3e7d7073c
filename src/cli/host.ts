/**
 * `isolab host FILE`: runs a scenario on this machine's kernel as a generated C program and
 * compares every record and exit status with isolab's run of it (src/host/). Exit 0 when
 * everything compared agrees, 1 for a divergence or a scenario the host cannot run; a missing
 * file or compiler is a typed error (status 2).
 *
 * `isolab host FILE --stress`: repeats the race of isolab's run under a schedule on the host
 * (src/host/stress.ts). Exit 0 when no round violated the property, 1 when one did or the
 * scenario cannot run here.
 */
import { join } from 'node:path';
import { statSync } from 'node:fs';
import { compileScenarioFile } from '../scenario/index.js';
import { runOnHost, type HostReport } from '../host/host.js';
import { MIN_SERIAL, runStress, type CopyOutcome, type StressOutcome, type StressReport } from '../host/stress.js';
import { ArgumentError } from '../errors.js';
import { OutputError, writeOutput } from './output.js';

export interface HostCommandOptions {
  keep?: string;
  json?: boolean;
  cc?: string;
  stress?: boolean;
  schedule?: string;
  from?: string;
  violation?: number;
  race?: number;
  seconds?: number;
  rounds?: number;
  pages?: number;
}

/** A count with thousands separated. */
function count(n: number): string {
  return n.toLocaleString('en-US');
}

/** An outcome's line: how often, by the class of its rounds, and what it is. */
function outcomeLine(o: StressOutcome | CopyOutcome, n: number, unit: string): string {
  const kind = o.counterexample ? "isolab's outcome under the schedule" : o.serial ? 'an order of the two gives it' : 'only when they overlapped';
  return `  #${o.id + 1}: ${count(n)} ${unit} (overlapping ${count(o.overlapped)}, first before second ${count(o.firstFirst)}, second before first ${count(o.secondFirst)}${o.unknown ? `, unknown ${count(o.unknown)}` : ''}); ${kind}${o.counterexample && o.serial ? ', and an order of the two gives it' : ''}`;
}

/** The --stress report as text: the race, the rounds, each outcome with its verdict, then the verdict. */
export function formatStressReport(r: StressReport): string {
  const lines: string[] = [`${r.scenario}${r.file ? ` (${r.file})` : ''}: its race, repeated on the host kernel`];
  const item = (x: { where: string; what: string; reason: string }): string => `  ${x.where}: ${x.what}: ${x.reason}`;
  if (!r.ran) {
    lines.push('not runnable on this host:', ...r.blocking.map(item));
    return lines.join('\n') + '\n';
  }
  lines.push(`schedule: ${r.schedule}`);
  if (r.property) lines.push(`property: ${r.property.invariant}${r.property.message ? ` (isolab: ${r.property.message})` : ''}`);
  lines.push('racing:');
  r.racing.forEach((op, k) => lines.push(`  ${k === 0 ? 'first' : 'second'}: ${op.where}: ${op.thread}: ${op.what} (isolab CPU ${op.cpu}, host CPU ${op.hostCpu < 0 ? 'not pinned' : op.hostCpu})`));
  if ('where' in r.widened) lines.push(`widened: ${r.widened.copies} copies of ${r.widened.where}, ${r.widened.bytes} bytes each; the racing access sweeps them from the top while the kernel walks them from the bottom`);
  else lines.push(`not widened (${r.widened.why}): the race runs on the scenario's pages alone`);
  if (r.otherRaces.length > 0) lines.push("other races of isolab's run (run in isolab's order):", ...r.otherRaces.map((o) => `  ${o}`));
  if (r.notes.length > 0) lines.push('notes:', ...r.notes.map(item));
  lines.push(`rounds: ${count(r.rounds)} in ${r.seconds.toFixed(1)} s; the racing operations overlapped in ${count(r.overlaps)}; the first ran wholly before the second in ${count(r.serialRounds[0])}, the second before the first in ${count(r.serialRounds[1])}; delay ${r.delay.min} to ${r.delay.max} spins, ${r.delay.final} at the end`);
  if (r.dropped > 0) lines.push(`not judged: ${count(r.dropped)} rounds or copies whose outcome came after the program's table of 512 was full`);
  if (r.timeouts > 0 || r.barrierTimeouts > 0) lines.push(`rounds killed after 20 s: ${r.timeouts}; racing operations that did not meet: ${r.barrierTimeouts}`);
  lines.push(`outcomes: ${r.outcomes.length}`);
  for (const o of r.outcomes) {
    lines.push(outcomeLine(o, o.rounds, 'rounds'));
    for (const v of o.values) lines.push(`      ${v}`);
    if (!o.counterexample) for (const d of o.differences.slice(0, 4)) lines.push(`      differs: ${d.where}: ${d.thread}: ${d.what}: isolab ${d.isolab}, host ${d.host}`);
    if (o.differences.length > 4) lines.push(`      and ${o.differences.length - 4} more`);
  }
  if (r.copyOutcomes.length > 0) {
    lines.push(`copy outcomes (each copy's loads; ${count(r.copyOutcomes.reduce((s, o) => s + o.copies, 0))} copies): ${r.copyOutcomes.length}`);
    for (const o of r.copyOutcomes) {
      lines.push(outcomeLine(o, o.copies, 'copies'));
      for (const v of o.values) lines.push(`      ${v}`);
    }
  }
  if (r.trouble) lines.push(`trouble: ${r.trouble}`);
  const ce = r.outcomes.find((o) => o.counterexample);
  const found = r.copyViolations + r.violations;
  if (!r.conclusive) {
    lines.push(`verdict: inconclusive: only ${count(r.serialRounds[0])} and ${count(r.serialRounds[1])} rounds ran each order whole (${MIN_SERIAL} of each are needed to know what each order gives)${found > 0 ? `; isolab's outcome came in ${count(r.copyViolations > 0 ? r.copyViolations : r.violations)} ${r.copyViolations > 0 ? 'copies' : 'rounds'} where they overlapped` : ''}`);
  } else if (r.copyViolations > 0) lines.push(`verdict: violated in ${count(r.copyViolations)} copies${r.violations > 0 ? ` and ${count(r.violations)} whole rounds` : ''}: the host gave isolab's outcome under the schedule, which no round of either order gave`);
  else if (r.violations > 0) lines.push(`verdict: violated in ${count(r.violations)} of ${count(r.rounds)} rounds: the host gave isolab's outcome under the schedule, which no round of either order gave`);
  else if (!ce) lines.push("verdict: no round gave isolab's outcome under the schedule");
  else lines.push("verdict: isolab's outcome under the schedule is also what an order of the two gives by itself: the race's effect is not visible in what the host program reports");
  return lines.join('\n') + '\n';
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
  if (!opts.stress) {
    for (const [name, v] of [['--schedule', opts.schedule], ['--from', opts.from], ['--violation', opts.violation], ['--race', opts.race], ['--seconds', opts.seconds], ['--rounds', opts.rounds], ['--pages', opts.pages]] as const) {
      if (v !== undefined) throw new ArgumentError(name, 'only with --stress');
    }
  }
  if (opts.violation !== undefined && opts.from === undefined) throw new ArgumentError('--violation', 'only with --from');
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
  const onSource = opts.keep !== undefined ? (source: string) => writeOutput(join(opts.keep!, `${compiled.name}${opts.stress ? '-stress' : ''}.c`), source) : undefined;
  if (opts.stress) {
    const r = await runStress(compiled, {
      cc: opts.cc,
      onSource,
      schedule: opts.schedule,
      from: opts.from !== undefined ? { file: opts.from, violation: opts.violation ?? 1 } : undefined,
      race: opts.race,
      seconds: opts.seconds,
      rounds: opts.rounds,
      pages: opts.pages,
    });
    if (opts.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
    else process.stdout.write(formatStressReport(r));
    // An inconclusive run with isolab's outcome where the two overlapped is 1 too: it may be a violation.
    return r.ran && r.violations === 0 && r.copyViolations === 0 && r.trouble === undefined ? 0 : 1;
  }
  const report = await runOnHost(compiled, { cc: opts.cc, onSource });
  if (opts.json) process.stdout.write(JSON.stringify(report, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n');
  else process.stdout.write(formatHostReport(report));
  return report.ran && report.agreed ? 0 : 1;
}
