/**
 * Runs an oracle sequence on isolab and prints the lines native/oracle.c prints for it, so the
 * two can be compared. Each process's ops become a program: a prologue (a scratch page, and
 * SIGSEGV and SIGBUS handlers that longjmp past the faulting op, as the oracle's do), then one
 * or two model operations per sequence op. The run uses one CPU and no timer preemption, so a
 * parent runs until it waits, which is the order the oracle enforces with its pipes.
 */
import { readFileSync } from 'node:fs';
import { System } from '../../src/system.js';
import type { Op, Program } from '../../src/user/program.js';
import type { OpRecord } from '../../src/kernel/task.js';
import { ARENA, ARENA_SIZE, type Addr, type SeqOp } from './sequence.js';

interface Slot {
  line: number;
  kind: 'mmap' | 'ret0' | 'load' | 'store' | 'getpid' | 'fork' | 'wait' | 'waitstatus' | 'execve';
  handle?: number;
}

const SA_SIGINFO_RESTORER = 0x04000004;

/** The model value of an address expression. */
function addrValue(a: Addr): string | bigint {
  switch (a.kind) {
    case 'A':
      return ARENA + a.off;
    case 'H':
      return `$h${a.handle}+${a.off}`;
    case 'X':
      return a.addr;
    case 'null':
      return 0n;
  }
}

/**
 * The host kernel's protection-key and shadow-stack features, from /proc/cpuinfo's flags
 * (`ospke` when the kernel enabled PKU, `user_shstk` when it runs user shadow stacks): the model
 * gets the same, since mprotect(PROT_EXEC) makes execute-only memory only with keys.
 */
function hostFeatures(): { pku: boolean; shstk: boolean } {
  let flags: string[] = [];
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags'));
    flags = line ? line.split(':')[1].trim().split(/\s+/) : [];
  } catch {
    flags = [];
  }
  return { pku: flags.includes('ospke'), shstk: flags.includes('user_shstk') };
}
const HOST = hostFeatures();

/** Runs `ops` on a fresh one-CPU System with the host's key and shadow-stack features; returns the result lines in the oracle's format. */
export function runOnModel(ops: SeqOp[], options: { debug?: boolean } = {}): { lines: string[]; sys: System } {
  const sys = new System({
    cpus: 1,
    memory: 256 * 2 ** 20,
    cpu: { pku: HOST.pku, shstk: HOST.shstk, dirty_on_readonly: HOST.shstk ? 'strict' : 'legacy' },
    kernel: { timeslice: 0, debug_vm: options.debug ?? true },
  });
  const slots = new Map<string, Slot>();
  let images = 0;
  let line = 0;

  /** Compiles one image's ops (the first image, or what follows an execve). */
  const compileImage = (list: SeqOp[]): { name: string; program: Program } => {
    const name = `img${images++}`;
    const strings: Record<string, string> = {};
    const prologue: Op[] = [
      { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'scratch' },
      { op: 'store', addr: '$scratch', value: '@onfault' },
      { op: 'store', addr: '$scratch+8', value: SA_SIGINFO_RESTORER },
      { op: 'store', addr: '$scratch+16', value: '@__restore_rt' },
      { op: 'store', addr: '$scratch+24', value: 0 },
      { op: 'syscall', name: 'rt_sigaction', args: [11, '$scratch', 0, 8] },
      { op: 'syscall', name: 'rt_sigaction', args: [7, '$scratch', 0, 8] },
    ];
    const body = (fn: string, ops: SeqOp[], out: Op[]): void => {
      for (const o of ops) {
        const here = (kind: Slot['kind'], handle?: number): void => {
          slots.set(`${name}|${fn}|${out.length}`, { line, kind, handle });
        };
        switch (o.op) {
          case 'mmap':
            here('mmap', o.handle);
            out.push({ op: 'syscall', name: 'mmap', args: [addrValue(o.addr), o.len, o.prot, o.flags, -1, 0], into: o.handle === 255 ? undefined : `h${o.handle}` });
            line++;
            break;
          case 'munmap':
            here('ret0');
            out.push({ op: 'syscall', name: 'munmap', args: [addrValue(o.addr), o.len] });
            line++;
            break;
          case 'mprotect':
            here('ret0');
            out.push({ op: 'syscall', name: 'mprotect', args: [addrValue(o.addr), o.len, o.prot] });
            line++;
            break;
          case 'load':
            here('load');
            out.push({ op: 'load', addr: addrValue(o.addr), size: o.size });
            line++;
            break;
          case 'store':
            here('store');
            out.push({ op: 'store', addr: addrValue(o.addr), size: o.size, value: o.value });
            line++;
            break;
          case 'getpid':
            here('getpid');
            out.push({ op: 'syscall', name: 'getpid' });
            line++;
            break;
          case 'wait':
            here('wait');
            out.push({ op: 'syscall', name: 'wait4', args: [-1, '$scratch+64', 0, 0] });
            slots.set(`${name}|${fn}|${out.length}`, { line, kind: 'waitstatus' });
            out.push({ op: 'load', addr: '$scratch+64', size: 4 });
            line++;
            break;
          case 'exit':
            out.push({ op: 'syscall', name: 'exit_group', args: [o.code] });
            line++;
            break;
          case 'fork': {
            here('fork');
            const child: Op[] = [];
            const childFn = `${fn}.${out.length}.child`;
            out.push({ op: 'syscall', name: 'fork', child });
            line++;
            body(childFn, o.child, child);
            line++; // 'end'
            break;
          }
          case 'execve': {
            here('execve');
            line++;
            const next = compileImage(o.rest);
            strings.next = next.name;
            sys.addImage(next.name, next.program);
            out.push({ op: 'syscall', name: 'execve', args: ['&next', 0, 0] });
            break;
          }
        }
      }
    };
    const main: Op[] = [...prologue];
    body('main', list, main);
    return { name, program: { main, functions: { onfault: [{ op: 'longjmp' }] }, strings } };
  };

  const first = compileImage(ops);
  const who = new Map<number, string>();
  const unsub = sys.events.subscribe((e) => {
    if (e.type === 'fork') who.set(e.child, (who.get(e.parent) ?? '?') + 'c');
  });
  const pid = sys.spawn(first.program, { name: first.name });
  who.set(pid, 'p');
  sys.run({ maxSteps: 2_000_000 });
  unsub();

  const lines: string[] = [];
  const log = sys.log;
  for (let i = 0; i < log.length; i++) {
    const r = log[i];
    const slot = slots.get(`${r.image}|${r.fn}|${r.index}`);
    if (!slot) continue;
    const text = format(slot, r, log[i + 1]);
    if (text !== null) lines.push(`${who.get(r.tid) ?? '?'} ${slot.line} ${text}`);
  }
  return { lines, sys };
}

function where(addr: bigint, opAddr: bigint | undefined): string {
  if (opAddr !== undefined && addr === opAddr) return '=';
  if (addr >= ARENA && addr < ARENA + ARENA_SIZE) return `A+${(addr - ARENA).toString(16)}`;
  return `X${addr.toString(16)}`;
}

/** One result line's text for a log record, in the oracle's words. */
function format(slot: Slot, r: OpRecord, next: OpRecord | undefined): string | null {
  if (r.signal) return `sig ${r.signal.signo} ${r.signal.code} ${where(r.signal.addr, r.addr)}`;
  const v = r.value !== undefined ? BigInt.asIntN(64, r.value) : 0n;
  switch (slot.kind) {
    case 'mmap':
      if (v < 0n) return `err ${-v}`;
      return v >= ARENA && v < ARENA + ARENA_SIZE ? `ok A+${(v - ARENA).toString(16)}` : 'ok other';
    case 'ret0':
      return v < 0n ? `err ${-v}` : `ok ${v}`;
    case 'load':
      return `ok ${(r.value ?? 0n).toString(16)}`;
    case 'store':
      return 'ok 0';
    case 'getpid':
      return v === BigInt(r.pid) ? 'ok same' : 'ok changed';
    case 'fork':
      return v < 0n ? `err ${-v}` : 'ok child';
    case 'wait': {
      if (v < 0n) return `err ${-v}`;
      const status = Number(next?.value ?? 0n);
      return (status & 0x7f) === 0 ? `ok exited ${(status >> 8) & 0xff}` : `ok signaled ${status & 0x7f}`;
    }
    case 'waitstatus':
      return null;
    case 'execve':
      return v < 0n ? `err ${-v}` : null;
  }
}
