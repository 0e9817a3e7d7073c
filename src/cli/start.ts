/**
 * A scenario whose processes cannot even start: the System refuses with "not enough simulated
 * memory" (a ConfigError on `memory`), which on its own names neither the cause nor the place.
 * startFailure replays the start (boot, then each process in order), finds the process that
 * cannot be started, and says why: the kernel option fail_alloc that fails one of its
 * allocations, or a machine whose memory is too small; located at the process in the file.
 */
import { ConfigError, ModelError, ScenarioError, type ScenarioIssue } from '../errors.js';
import { System } from '../system.js';
import type { CompiledScenario } from '../scenario/compile.js';
import { pathString, type Path } from '../scenario/load.js';

/** Whether `e` is the System's refusal to start a process for want of memory (also as a worker reports it). */
export function isStartFailure(e: unknown): boolean {
  if (e instanceof ConfigError) return e.option === 'memory';
  return e instanceof ModelError && /memory: not enough simulated memory/.test(e.message);
}

/** The index of the first process of `c` that cannot be started under `kernel`, or -1 when all start. */
function failingProcess(c: CompiledScenario, kernel: CompiledScenario['system']['kernel']): number {
  const { script: _script, ...config } = c.system;
  let sys: System;
  try {
    sys = new System({ ...config, kernel });
  } catch {
    return -1;
  }
  for (const [i, p] of c.processes.entries()) {
    try {
      sys.spawn(p.program, { name: p.name, cpu: p.cpu });
    } catch (e) {
      if (isStartFailure(e)) return i;
      return -1;
    }
  }
  return -1;
}

function located(c: CompiledScenario, path: Path, message: string): ScenarioIssue {
  const pos = c.locator?.locate(path);
  return { file: c.locator?.file, line: pos?.line, col: pos?.col, path: pathString(path), message };
}

function ordinal(n: number): string {
  const s = n % 100 >= 11 && n % 100 <= 13 ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th');
  return `${n}${s}`;
}

/**
 * The error to report for `e`, a start failure of scenario `c`: a ScenarioError at the process
 * that cannot start, naming the cause. `fromCommandLine` lists the kernel options set with
 * --kernel (they have no place in the file). Returns `e` unchanged when it is not a start failure.
 */
export function explainStartFailure(c: CompiledScenario, e: unknown, fromCommandLine: string[] = []): unknown {
  if (!isStartFailure(e)) return e;
  const kernel = c.system.kernel ?? {};
  const i = failingProcess(c, kernel);
  const where: Path = i >= 0 ? ['processes', i] : ['processes'];
  const who = i >= 0 ? `process ${c.processes[i].name}` : 'a process';
  const kind = kernel.fail_alloc;
  if (kind !== undefined && kind !== 'none' && failingProcess(c, { ...kernel, fail_alloc: 'none' }) < 0) {
    const nth = kernel.fail_alloc_nth ?? 1;
    const set = fromCommandLine.some((s) => s.startsWith('fail_alloc=') || s.startsWith('fail_alloc_nth='));
    const pos = c.locator?.locate(['kernel', 'fail_alloc']);
    const at = set ? ' (set by --kernel)' : pos && c.locator?.file ? ` (${c.locator.file}:${pos.line}:${pos.col})` : '';
    return new ScenarioError([
      located(c, where, `${who} cannot start: the kernel option fail_alloc=${kind}:${nth}${at} fails the ${ordinal(nth)} ${kind} allocation, which starting it needs; raise fail_alloc_nth past the start or pick another kind`),
    ]);
  }
  const mem = c.system.memory;
  return new ScenarioError([
    located(c, where, `${who} cannot start: not enough simulated memory${mem !== undefined ? ` (machine.memory is ${mem} bytes)` : ''}; give the machine more memory`),
  ]);
}
