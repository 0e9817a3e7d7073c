/** Helpers for the kernel tests: a System with the debug checks on, and readers of its log. */
import assert from 'node:assert/strict';
import { System, type IsolabEvent, type SystemConfig } from '../../src/system.js';
import type { OpRecord } from '../../src/kernel/task.js';
import { path_walk } from '../../src/kernel/vfs.js';
import type { Op, Program } from '../../src/user/program.js';
import { compileScenarioText } from '../../src/scenario/index.js';
import { runScenario } from '../../src/scenario/run.js';

/** A System with debug_vm on and no timer preemption unless asked. */
export function boot(config: SystemConfig = {}): System {
  return new System({ memory: 64 * 2 ** 20, ...config, kernel: { debug_vm: true, timeslice: 0, ...(config.kernel ?? {}) } });
}

/** Runs `program` as the only process to completion; checks the debug reports stayed empty. */
export function runProgram(program: Program | Op[], config: SystemConfig = {}): { sys: System; pid: number } {
  const sys = boot(config);
  const pid = sys.spawn(Array.isArray(program) ? { main: program } : program);
  const r = sys.run({ maxSteps: 1_000_000 });
  assert.ok(r.finished, `tasks still alive: ${r.alive.join(', ')}`);
  assert.deepEqual(sys.debugReports, []);
  return { sys, pid };
}

/** runProgram, also returning every event the run emitted (`onEvent` sees each as it comes). */
export function runWithEvents(program: Program | Op[], config: SystemConfig = {}, onEvent?: (e: IsolabEvent, sys: System) => void): { sys: System; pid: number; events: IsolabEvent[] } {
  const sys = boot(config);
  const events: IsolabEvent[] = [];
  sys.events.subscribe((e) => {
    events.push(e);
    onEvent?.(e, sys);
  });
  const pid = sys.spawn(Array.isArray(program) ? { main: program } : program);
  const r = sys.run({ maxSteps: 1_000_000 });
  assert.ok(r.finished, `tasks still alive: ${r.alive.join(', ')}`);
  assert.deepEqual(sys.debugReports, []);
  return { sys, pid, events };
}

/** The log records of function `fn` (default main) of the image named `image`, by op index. */
export function records(sys: System, fn = 'main', tid?: number): Map<number, OpRecord> {
  const m = new Map<number, OpRecord>();
  for (const r of sys.log) if (r.fn === fn && (tid === undefined || r.tid === tid)) m.set(r.index, r);
  return m;
}

/** The signed result of op `index` of `fn`. */
export function ret(sys: System, index: number, fn = 'main'): bigint {
  const r = records(sys, fn).get(index);
  assert.ok(r, `no record for ${fn}[${index}]`);
  assert.ok(r.value !== undefined, `${fn}[${index}] has no value (signal: ${JSON.stringify(r.signal, (_k, v) => (typeof v === 'bigint' ? v.toString(16) : v))})`);
  return BigInt.asIntN(64, r.value);
}

/** mmap(0, len, prot, MAP_PRIVATE|MAP_ANONYMOUS) into `into`. */
export function mmapAnon(into: string, len: number, prot = 3, flags = 0x22): Op {
  return { op: 'syscall', name: 'mmap', args: [0, len, prot, flags, -1, 0], into };
}

export const PROT_NONE = 0;
export const PROT_READ = 1;
export const PROT_WRITE = 2;

/** The contents of the tmpfs file `path` after the run (programs leave what they read from /proc there); holes read as NULs. */
export function fileText(sys: System, path: string): string {
  const k = sys.kernel;
  const l = path_walk(k.vfs, k.vfs.root, path);
  assert.ok(typeof l !== 'number' && l.inode, `${path} is missing`);
  const inode = l.inode!;
  let s = '';
  for (let p = 0; p * 4096 < inode.size; p++) {
    const n = Math.min(4096, inode.size - p * 4096);
    const pfn = inode.mapping!.pages.get(p);
    s += pfn === undefined ? '\0'.repeat(n) : Buffer.from(sys.machine.mem.readBytes(pfn * 4096, n)).toString('latin1');
  }
  return s;
}

/**
 * Runs scenario `text` (named `file` in messages) and asserts that every expectation held, that
 * there were some (exactly `expectations`, when given), and that the run passed.
 */
export function runHolding(text: string, file: string, expectations?: number): void {
  const r = runScenario(compileScenarioText(text, file));
  const failed = r.verdicts.filter((v) => v.status !== 'held');
  assert.deepEqual(failed, [], 'every expectation holds');
  if (expectations === undefined) assert.ok(r.verdicts.length > 0);
  else assert.equal(r.verdicts.length, expectations, 'every expectation was judged');
  assert.ok(r.passed);
}

/** A syscall operation whose result goes into variable `into`. */
export const sc = (into: string, name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args, into });
/** A store operation. */
export const store = (addr: string, value: number | bigint | string): Op => ({ op: 'store', addr, value });
/** Three getpid calls: they keep a thread running a little longer, so the other CPU's path can interleave before it ends. */
export const linger: Op[] = Array.from({ length: 3 }, (): Op => sc('g', 'getpid'));

/**
 * A scenario function `fault` (indented as a process's `functions`) for SIGSEGV and kin: it
 * saves the frame's trapno and err (sigcontext at $rsp + 208 and 200) at $buf + 16 and
 * $buf + 24, and longjmps past the faulting operation.
 */
export const SAVE_FAULT_FRAME = `      fault:
        - load: $rsp + 208
          as: f
        - store: { addr: $buf + 16, value: $f }
        - load: $rsp + 200
          as: f
        - store: { addr: $buf + 24, value: $f }
        - longjmp
`;
