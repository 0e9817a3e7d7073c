/**
 * `isolab tour`: runs every built-in scenario in scenarios/ and prints the question each asks
 * with the answer the model found, then the processor-level stops. Exit 1 if a scenario's
 * expectations did not hold.
 */
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pc from 'picocolors';
import { compileScenarioFile } from '../scenario/index.js';
import { runScenario, type RunReport } from '../scenario/run.js';
import { hwTour } from '../tour/hw.js';
import { countsLine, formatVerdict, verdictSummary } from './report.js';

/** The directory of built-in scenarios (the package's scenarios/). */
export const SCENARIO_DIR = fileURLToPath(new URL('../../../scenarios/', import.meta.url));

/** The tour's order: from what a process sees of its own memory to what the kernel does across CPUs. Scenarios not listed follow in name order. */
const TOUR_ORDER = ['fork-cow', 'vfork-shares', 'execve-fresh', 'vmsplice-cow', 'segv-codes', 'efault', 'tlb-shootdown', 'pcid-switch', 'percpu-migrate',
  'pkey-thread-lockout', 'pkey-signal-handler', 'pkey-signal-lockdown', 'pkey-sigaltstack', 'pkey-exec-only', 'pkey-read-into-buffer', 'proc-mem-cow', 'userfaultfd-handler', 'userfaultfd-minor', 'shstk-rop',
  'fork-wrprotect-atomic-clear', 'fork-dirty-lost', 'fork-dirty-race', 'fork-madvfree-lost', 'fork-dirty-legacy',
  'pti-per-process', 'ldt-pti', 'ldt-fork-enomem', 'entry-stack-per-task',
  'ptrace-pkey'];

/** The built-in scenario files, in tour order. */
export function builtinScenarios(): string[] {
  const rank = (f: string): number => {
    const i = TOUR_ORDER.indexOf(f.replace(/\.yaml$/, ''));
    return i < 0 ? TOUR_ORDER.length : i;
  };
  return readdirSync(SCENARIO_DIR)
    .filter((f) => f.endsWith('.yaml'))
    .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))
    .map((f) => `scenarios/${f}`);
}

function runBuiltin(file: string): RunReport {
  return runScenario(compileScenarioFile(fileURLToPath(new URL(`../../../${file}`, import.meta.url))));
}

export function tourCommand(opts: { json?: boolean }): number {
  const reports = builtinScenarios().map((f) => ({ file: f, report: runBuiltin(f) }));
  const stops = hwTour();
  const passed = reports.every((r) => r.report.passed);
  if (opts.json) {
    const scenarios = reports.map(({ file, report: r }) => ({
      file,
      name: r.scenario,
      question: r.question ?? null,
      answer: r.answer ?? null,
      passed: r.passed,
      verdicts: r.verdicts.map((v) => ({ status: v.status, expected: v.expected, actual: v.actual })),
      counts: r.counts,
    }));
    process.stdout.write(JSON.stringify({ scenarios, machine: stops }, null, 2) + '\n');
    return passed ? 0 : 1;
  }
  const out: string[] = [pc.bold('isolab tour: how x86-64 Linux keeps address spaces apart, asked of the model'), ''];
  let n = 0;
  for (const { file, report: r } of reports) {
    out.push(`${pc.bold(`${++n}. ${r.question ?? r.scenario}`)}  ${pc.dim(file)}`);
    if (r.answer) out.push(...wrap(r.answer, 3));
    // What makes a race story true in this run: its event expectations, with what was counted.
    for (const v of r.verdicts.filter((x) => x.kind === 'events' && x.status === 'held')) {
      const [what, note] = v.expected.split('  # ');
      out.push(pc.dim(`   ✓ ${what} (${v.actual})${note ? ` — ${note}` : ''}`));
    }
    out.push(`   ${verdictSummary(r)}${pc.dim(` · ${countsLine(r)}`)}`);
    if (!r.passed) for (const v of r.verdicts.filter((x) => x.status !== 'held')) out.push(formatVerdict(v));
    out.push('');
  }
  out.push(pc.bold('Underneath: the processor'), '');
  for (const s of stops) {
    out.push(pc.bold(`${++n}. ${s.question}`));
    out.push(`   ${s.answer}`);
    for (const line of s.evidence) out.push(`     ${pc.dim(line)}`);
    out.push('');
  }
  out.push(pc.dim(`Run one scenario with its timeline: isolab run ${builtinScenarios()[0] ?? 'FILE'}`));
  process.stdout.write(out.join('\n') + '\n');
  return passed ? 0 : 1;
}

/** Wraps prose at 96 columns with an indent. */
function wrap(text: string, indent: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + word.length + 1 > 96 - indent) {
      lines.push(' '.repeat(indent) + line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(' '.repeat(indent) + line);
  return lines;
}
