/**
 * Runs an oracle sequence on isolab and prints the lines native/oracle.c prints for it, so the
 * two can be compared. Each process's ops become a program: a prologue (a scratch page, and
 * SIGSEGV and SIGBUS handlers that longjmp past the faulting op, as the oracle's do, SIGPIPE
 * ignored), then one or a few model operations per sequence op. A `call`'s pointer arguments
 * (the pipe's int[2], splice's offsets, vmsplice's iovecs) are in the scratch page, where the
 * oracle has them in its own memory; its relative paths are under /tmp, the model's tmpfs
 * directory, as the oracle's are under its fresh working directory. The process starts with
 * descriptors 0, 1 and 2 on /dev/null, as the oracle arranges for itself. The run uses one CPU and no timer preemption, so a
 * parent runs until it waits, which is the order the oracle enforces with its pipes.
 */
import { readFileSync } from 'node:fs';
import { System } from '../../src/system.js';
import type { Op, Program, Value } from '../../src/user/program.js';
import type { OpRecord } from '../../src/kernel/task.js';
import { ARENA, ARENA_SIZE, SAFE_LEN, SAFE_OFF, SAFE_PATTERN, type Addr, type SeqOp } from './sequence.js';

interface Slot {
  line: number;
  kind: 'mmap' | 'ret0' | 'load' | 'store' | 'getpid' | 'fork' | 'wait' | 'waitstatus' | 'execve' | 'call';
  handle?: number;
  /** call: what the loads after the syscall read back, in order (a cell, or the two halves of a pair). */
  extras?: ('cell' | 'pair')[];
}

/** Where a call's pointer arguments live in the scratch page: the int[2], the cells, the iovec arrays. */
const PAIR_AT = 256;
const CELL_AT = 272;
const IOV_AT = 512;

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
      { op: 'store', addr: '$scratch+32', value: 1 }, // SIG_IGN
      { op: 'store', addr: '$scratch+40', value: SA_SIGINFO_RESTORER & ~4 },
      { op: 'store', addr: '$scratch+48', value: '@__restore_rt' },
      { op: 'store', addr: '$scratch+56', value: 0 },
      { op: 'syscall', name: 'rt_sigaction', args: [13, '$scratch+32', 0, 8] },
      // The write buffer, as the oracle maps and fills it.
      { op: 'syscall', name: 'mmap', args: [ARENA + SAFE_OFF, SAFE_LEN, 3, 0x32, -1, 0] },
      ...Array.from({ length: SAFE_PATTERN / 8 }, (_, w): Op => {
        let v = 0n;
        for (let b = 7; b >= 0; b--) v = (v << 8n) | BigInt(((w * 8 + b) * 7 + 1) & 0xff);
        return { op: 'store', addr: ARENA + SAFE_OFF + BigInt(w * 8), value: v };
      }),
    ];
    let nstrings = 0;
    const strAddr = (text: string): string => {
      const key = `s${nstrings++}`;
      strings[key] = text;
      return `&${key}`;
    };
    const argValue = (o: Extract<SeqOp, { op: 'call' }>, k: number, pre: Op[]): Value => {
      const a = o.args[k];
      switch (a.kind) {
        case 'fd':
          return `$f${a.handle}`;
        case 'addr':
          return addrValue(a.addr);
        case 'int':
          return a.value;
        case 'str': {
          // A relative path from the working directory is under /tmp (open, and openat with AT_FDCWD).
          const fromCwd = o.name === 'open' || (o.name === 'openat' && k === 1 && o.args[0].kind === 'int' && o.args[0].value === -100n);
          return strAddr(fromCwd && a.text !== '' && !a.text.startsWith('/') ? `/tmp/${a.text}` : a.text);
        }
        case 'cell':
          pre.push({ op: 'store', addr: `$scratch+${CELL_AT + 8 * k}`, value: BigInt.asUintN(64, a.value) });
          return `$scratch+${CELL_AT + 8 * k}`;
        case 'pair':
          pre.push({ op: 'store', addr: `$scratch+${PAIR_AT}`, value: 0xffffffffffffffffn });
          return `$scratch+${PAIR_AT}`;
        case 'iov':
          a.segs.forEach((g, j) => {
            pre.push({ op: 'store', addr: `$scratch+${IOV_AT + 64 * k + 16 * j}`, value: addrValue(g.addr) });
            pre.push({ op: 'store', addr: `$scratch+${IOV_AT + 64 * k + 16 * j + 8}`, value: g.len });
          });
          return `$scratch+${IOV_AT + 64 * k}`;
      }
    };
    const body = (fn: string, ops: SeqOp[], out: Op[]): void => {
      for (const o of ops) {
        const here = (kind: Slot['kind'], handle?: number): void => {
          slots.set(`${name}|${fn}|${out.length}`, { line, kind, handle });
        };
        switch (o.op) {
          case 'mmap':
            here('mmap', o.handle);
            out.push({
              op: 'syscall',
              name: 'mmap',
              args: [addrValue(o.addr), o.len, o.prot, o.flags, o.fd?.kind === 'fd' ? `$f${o.fd.handle}` : o.fd?.kind === 'int' ? o.fd.value : -1, o.off ?? 0n],
              into: o.handle === 255 ? undefined : `h${o.handle}`,
            });
            line++;
            break;
          case 'call': {
            const pre: Op[] = [];
            const args = o.args.map((_, k) => argValue(o, k, pre));
            out.push(...pre);
            const extras: ('cell' | 'pair')[] = [];
            here('call');
            slots.get(`${name}|${fn}|${out.length}`)!.extras = extras;
            const pair = o.args.some((a) => a.kind === 'pair');
            out.push({ op: 'syscall', name: o.name, args, into: !pair && o.bind.length ? `f${o.bind[0]}` : undefined });
            o.args.forEach((a, k) => {
              if (a.kind === 'cell') {
                extras.push('cell');
                out.push({ op: 'load', addr: `$scratch+${CELL_AT + 8 * k}`, size: 8 });
              } else if (a.kind === 'pair') {
                extras.push('pair');
                out.push({ op: 'load', addr: `$scratch+${PAIR_AT}`, size: 4, into: o.bind.length ? `f${o.bind[0]}` : undefined });
                out.push({ op: 'load', addr: `$scratch+${PAIR_AT + 4}`, size: 4, into: o.bind.length > 1 ? `f${o.bind[1]}` : undefined });
              }
            });
            line++;
            break;
          }
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
    // The records after this one of the same task: a wait's status load, a call's loads.
    const after = (n: number): OpRecord[] => {
      const got: OpRecord[] = [];
      for (let j = i + 1; j < log.length && got.length < n; j++) if (log[j].tid === r.tid) got.push(log[j]);
      return got;
    };
    const text = format(slot, r, after);
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
function format(slot: Slot, r: OpRecord, after: (n: number) => OpRecord[]): string | null {
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
      const status = Number(after(1)[0]?.value ?? 0n);
      return (status & 0x7f) === 0 ? `ok exited ${(status >> 8) & 0xff}` : `ok signaled ${status & 0x7f}`;
    }
    case 'waitstatus':
      return null;
    case 'execve':
      return v < 0n ? `err ${-v}` : null;
    case 'call': {
      if (v < 0n) return `err ${-v}`;
      const kinds = slot.extras ?? [];
      const loads = after(kinds.reduce((n, e) => n + (e === 'pair' ? 2 : 1), 0));
      const words: string[] = [v.toString()];
      let at = 0;
      for (const e of kinds) {
        if (e === 'cell') words.push(BigInt.asIntN(64, loads[at++]?.value ?? 0n).toString());
        else for (let h = 0; h < 2; h++) words.push(BigInt.asIntN(32, loads[at++]?.value ?? 0n).toString());
      }
      return `ok ${words.join(' ')}`;
    }
  }
}
