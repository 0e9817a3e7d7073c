/**
 * The text form of a run: the per-CPU timeline, a verdict per expectation, the answer and the
 * counts. Colour only on a terminal (picocolors honours NO_COLOR and FORCE_COLOR).
 */
import pc from 'picocolors';
import type { RunReport, TimelineEntry, Verdict } from '../scenario/run.js';

const CPU_COLOURS = [pc.cyan, pc.magenta, pc.yellow, pc.green, pc.blue, pc.red];

/** One line per event: step, CPU, task, what happened. `cpu` keeps one CPU's lane only. */
export function formatTimeline(entries: TimelineEntry[], opts: { cpu?: number } = {}): string[] {
  const shown = opts.cpu === undefined ? entries : entries.filter((e) => e.cpu === opts.cpu);
  const taskWidth = Math.max(4, ...shown.map((e) => e.task.length));
  const out = [pc.dim(`${'step'.padStart(6)}  cpu  ${'task'.padEnd(taskWidth)}  event`)];
  for (const e of shown) {
    const colour = e.cpu >= 0 ? CPU_COLOURS[e.cpu % CPU_COLOURS.length] : pc.red;
    const text = e.kind === 'fault' || e.kind === 'signal' || e.kind === 'debug' ? pc.bold(e.text) : e.kind === 'cr3' || e.kind === 'flush' || e.kind === 'ipi' ? pc.dim(e.text) : e.text;
    out.push(`${String(e.step).padStart(6)}  ${colour(String(e.cpu).padStart(3))}  ${colour(e.task.padEnd(taskWidth))}  ${text}`);
  }
  return out;
}

/** ✓ / ✗ / ? with the expectation and what happened. */
export function formatVerdict(v: Verdict): string {
  const mark = v.status === 'held' ? pc.green('✓') : v.status === 'failed' ? pc.red('✗') : pc.yellow('?');
  const how = v.status === 'held' ? pc.dim(v.actual) : v.status === 'failed' ? `${pc.red('got')} ${v.actual}` : pc.yellow(`not reached: ${v.actual}`);
  return `  ${mark} ${pc.dim(v.where)}  ${v.expected}  ${how}`;
}

/** "11 of 11 expectations held". */
export function verdictSummary(r: RunReport): string {
  const held = r.verdicts.filter((v) => v.status === 'held').length;
  const s = `${held} of ${r.verdicts.length} expectation${r.verdicts.length === 1 ? '' : 's'} held`;
  return r.passed ? pc.green(s) : pc.red(s);
}

/** "1 signal", "3 signals". */
function n(count: number, one: string, many = `${one}s`): string {
  return `${count} ${count === 1 ? one : many}`;
}

/** The counts on one line. */
export function countsLine(r: RunReport): string {
  const c = r.counts;
  return [
    n(c.steps, 'step'),
    n(c.syscalls, 'syscall'),
    n(c.page_faults, 'page fault'),
    n(c.page_copies, 'page copied or zeroed', 'pages copied or zeroed'),
    n(c.signals, 'signal'),
    n(c.cr3_writes, 'CR3 write'),
    n(c.tlb_flushes, 'TLB flush', 'TLB flushes'),
    n(c.ipis, 'IPI'),
  ].join(' · ');
}

/** The whole report of `isolab run`. */
export function formatRun(r: RunReport, opts: { timeline: boolean; cpu?: number }): string {
  const out: string[] = [];
  out.push(pc.bold(`isolab run ${r.file ?? r.scenario}`) + pc.dim(`  (${r.policy === 'random' ? `random schedule, seed ${r.seed}` : 'round-robin schedule'})`));
  if (r.question) out.push(`${pc.bold('Q:')} ${r.question}`);
  out.push('');
  if (opts.timeline) {
    out.push(...formatTimeline(r.timeline, { cpu: opts.cpu }));
    out.push('');
  }
  if (r.verdicts.length > 0) {
    out.push(pc.bold('Expectations'));
    for (const v of r.verdicts) out.push(formatVerdict(v));
    out.push('');
  }
  if (r.answer) out.push(`${pc.bold('A:')} ${r.answer}`, '');
  const stopped = r.tasks.filter((t) => t.stopped);
  const alive = r.tasks.filter((t) => t.exit === null && !t.stopped);
  if (stopped.length > 0) out.push(pc.yellow(`The run ended with tasks stopped by a stop signal (no SIGCONT came): ${stopped.map((t) => t.name).join(', ')}.`));
  if (!r.finished && alive.length > 0) out.push(pc.yellow(`The run stopped at the step limit with tasks alive: ${alive.map((t) => t.name).join(', ')}.`));
  out.push(`${verdictSummary(r)} · ${countsLine(r)}`);
  return out.join('\n') + '\n';
}
