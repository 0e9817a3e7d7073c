/**
 * The layers are kept apart (DESIGN.md rule 1), checked on the sources:
 *  - hw/ (the processor) imports nothing of Linux, of the user programs or of the simulator;
 *  - kernel/ (Linux) holds no user-instruction interpreter: it imports nothing from the
 *    interpreter (user/interp.ts) or the driver (sim/), takes only the image layout from
 *    user/program.ts, touches user memory through the processor only in uaccess.ts, and keeps no
 *    per-CPU state of a user operation in progress;
 *  - the tools above the System (scenario/, explore/, cli/, trace/, tour/, cost/, see/) read the kernel's
 *    state through the System's introspection (introspect.ts): no page-table walks of their
 *    own, no page-allocator counters, no per-CPU data, and from kernel/ they import only types
 *    and the tables that describe the kernel's interface (below). explore/execution.ts and
 *    explore/fpcheck.ts alone keep the Kernel itself: stepping kernel paths one step at a time,
 *    reading what each step announces or touches (its footprint), and checking it against the
 *    whole state are the explorer's own machinery.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SRC = join(ROOT, 'src');

/**
 * What the tools may import from kernel/ as values (type-only imports are always allowed):
 * the interface a user of the kernel sees, never its workings.
 */
const KERNEL_VALUE_IMPORTS: Record<string, string> = {
  'kernel/uapi.ts': 'the user ABI: errno, signal and si_code numbers, flag constants (include/uapi)',
  'kernel/options.ts': 'the table of kernel options (boot parameters and sysctls), with their docs and defaults',
  'kernel/syscalls.ts': 'the syscall table: names, numbers and argument names',
  'kernel/syscall_32.ts': "the ia32 syscall table (INT 0x80's): names, numbers and argument names",
  'kernel/events.ts': "the event stream's vocabulary (e.g. the page-fault outcomes an expectation may name)",
};
/** Value imports allowed in one directory only, with why. */
const KERNEL_VALUE_IMPORTS_IN: Record<string, Record<string, string>> = {
  explore: { 'kernel/steps.ts': "the kinds of step a kernel path announces before it yields: the explorer's footprint protocol" },
};

const TOOLS = ['scenario', 'explore', 'cli', 'trace', 'tour', 'cost', 'see', 'host'];

/** The explorer's footprint machinery, which keeps the Kernel itself: stepping it (execution.ts) and checking each step's footprint against its whole state (fpcheck.ts). */
const FOOTPRINT_MACHINERY = ['explore/execution.ts', 'explore/fpcheck.ts'];

/** Every .ts file under src/`dir`, as paths relative to src/. */
function sources(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.ts')) out.push(relative(SRC, p));
    }
  };
  walk(join(SRC, dir));
  return out.sort();
}

interface Import {
  /** The imported module, relative to src/ with a .ts ending (e.g. 'kernel/uapi.ts'). */
  module: string;
  /** Names imported as values (empty for a type-only import). */
  values: string[];
}

/** The import and re-export statements of src/`file`. */
function importsOf(file: string): Import[] {
  const text = readFileSync(join(SRC, file), 'utf8');
  const out: Import[] = [];
  for (const m of text.matchAll(/^(?:import|export)\s+(type\s+)?([\s\S]*?)\s*from\s+'([^']+)';/gm)) {
    const [, typeOnly, clause, spec] = m;
    if (!spec.startsWith('.')) continue;
    const module = normalize(join(dirname(file), spec)).replace(/\.js$/, '.ts');
    let values: string[] = [];
    if (!typeOnly) {
      const braces = /\{([\s\S]*)\}/.exec(clause);
      const named = braces ? braces[1].split(',').map((s) => s.trim()).filter((s) => s !== '' && !s.startsWith('type ')) : [];
      const outside = (braces ? clause.replace(braces[0], '') : clause).split(',').map((s) => s.trim()).filter((s) => s !== '');
      values = [...named, ...outside];
    }
    out.push({ module, values });
  }
  return out;
}

/** Lines of src/`file` (comments dropped) matching `re`, as "file:line: text". */
function linesMatching(file: string, re: RegExp): string[] {
  const out: string[] = [];
  readFileSync(join(SRC, file), 'utf8').split('\n').forEach((line, i) => {
    const code = line.replace(/\/\/.*$/, '').replace(/^\s*\*.*$/, '').replace(/\/\*\*.*$/, '');
    if (re.test(code)) out.push(`${file}:${i + 1}: ${line.trim()}`);
  });
  return out;
}

test('layers: hw/ imports nothing but itself, the errors and the event bus', () => {
  const bad = sources('hw').flatMap((f) => importsOf(f).filter((i) => !i.module.startsWith('hw/') && i.module !== 'errors.ts' && i.module !== 'events.ts').map((i) => `${f} imports ${i.module}`));
  assert.deepEqual(bad, []);
});

test('layers: the tools import from kernel/ only types and the interface tables', () => {
  const bad: string[] = [];
  for (const dir of TOOLS) {
    const allowed = { ...KERNEL_VALUE_IMPORTS, ...(KERNEL_VALUE_IMPORTS_IN[dir] ?? {}) };
    for (const f of sources(dir)) {
      for (const i of importsOf(f)) {
        if (!i.module.startsWith('kernel/') || i.values.length === 0 || i.module in allowed) continue;
        bad.push(`${f} imports ${i.values.join(', ')} from ${i.module}`);
      }
    }
  }
  assert.deepEqual(bad, [], 'read the kernel through the System (introspect.ts) instead');
});

test('layers: the tools walk no page tables and read no kernel counters or per-CPU data of their own', () => {
  const bad: string[] = [];
  for (const dir of TOOLS) {
    for (const f of sources(dir)) {
      bad.push(...linesMatching(f, /\bpgtables\b|\bpteTable\b|\bpages\.inUse\b|\bdebugReports\.length\s*=[^=]/));
      if (FOOTPRINT_MACHINERY.includes(f)) continue;
      bad.push(...linesMatching(f, /\.kernel\.|\bsys\.kernel\b|\.percpu\b/));
    }
  }
  assert.deepEqual(bad, [], 'use System.pte / readUser / maps / mms / tasks / cpuInfo / framesInUse');
});

test('layers: kernel/ holds no user-instruction interpreter', () => {
  const bad: string[] = [];
  for (const f of sources('kernel')) {
    for (const i of importsOf(f)) {
      if (i.module.startsWith('sim/') || i.module === 'user/interp.ts' || i.module === 'system.ts' || i.module === 'introspect.ts' || TOOLS.some((d) => i.module.startsWith(`${d}/`))) {
        bad.push(`${f} imports ${i.module}`);
      }
      // From the user programs, only the image's layout: what execve loads and how long an instruction is.
      if (i.module === 'user/program.ts') for (const v of i.values) if (v !== 'OP_BYTES' && v !== 'ProgramImage') bad.push(`${f} imports ${v} from user/program.ts`);
    }
    // The kernel reaches user memory through the processor only in uaccess.ts (copy_from_user and kin), never by stepping an access.
    if (f !== 'kernel/uaccess.ts') bad.push(...linesMatching(f, /\baccessStart\(|\baccessStep\(/));
    bad.push(...linesMatching(f, /\buser_step\b|\buStage\b|\buPa\b|\bwalkPending\s*=[^=]|\bvalueOf\(/));
  }
  assert.deepEqual(bad, []);
});

test('layers: the interpreter enters the kernel only through the entry points', () => {
  const fromKernel = importsOf('user/interp.ts').filter((i) => i.module.startsWith('kernel/') && i.values.length > 0);
  const entry = fromKernel.find((i) => i.module === 'kernel/entry.ts');
  assert.ok(entry, 'user/interp.ts calls kernel/entry.ts');
  assert.deepEqual([...entry.values].sort(), ['do_int80_emulation', 'do_syscall_64', 'exc_invalid_opcode', 'idtentry', 'sysvec_reschedule_ipi']);
  // Besides the entry points: the signal frame's layout and set_current_blocked (siglongjmp), the syscall tables (names to numbers).
  assert.deepEqual(fromKernel.filter((i) => i !== entry).map((i) => i.module).sort(), ['kernel/signal.ts', 'kernel/syscall_32.ts', 'kernel/syscalls.ts']);
});
