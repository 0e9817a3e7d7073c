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

/** What a call's loads after the syscall read back, in order: a cell, the two halves of a pair, an `m:` argument's words (masked), a `t:` argument's text. */
type Extra = { kind: 'cell' } | { kind: 'pair' } | { kind: 'words'; mask: bigint[] } | { kind: 'text'; len: number };

interface Slot {
  line: number;
  kind: 'mmap' | 'ret0' | 'load' | 'store' | 'getpid' | 'fork' | 'wait' | 'waitstatus' | 'execve' | 'call' | 'brk0';
  handle?: number;
  extras?: Extra[];
  /** call: brk, whose result is printed as an address. */
  brk?: boolean;
  /** The address handles the operation names: `skip` if one of them was bound by an mmap that failed (as the oracle prints). */
  refs?: number[];
}

/** The handles an operation's addresses name. */
function handleRefs(o: SeqOp): number[] {
  const out: number[] = [];
  const addr = (a: Addr): void => {
    if (a.kind === 'H') out.push(a.handle);
  };
  switch (o.op) {
    case 'mmap':
    case 'munmap':
    case 'mprotect':
    case 'load':
    case 'store':
      addr(o.addr);
      break;
    case 'call':
      for (const a of o.args) {
        if (a.kind === 'addr') addr(a.addr);
        else if (a.kind === 'iov') a.segs.forEach((g) => addr(g.addr));
        else if (a.kind === 'words') a.words.forEach((w) => typeof w !== 'bigint' && addr(w));
      }
      break;
    default:
      break;
  }
  return out;
}

/** Where a call's pointer arguments live in the scratch page: the int[2], the cells, the iovec arrays, the words. */
const PAIR_AT = 256;
const CELL_AT = 272;
const IOV_AT = 512;
const WORDS_AT = 1024;
/** The text buffer's size (a separate mapping, made only in an image that reads text). */
const TEXT_MAX = 0x4000;
/** Addresses from BRK_BELOW under an image's first program break to BRK_NEAR above it print relative to it (native/oracle.c). */
const BRK_NEAR = 0x1000000n;
const BRK_BELOW = 0x200000n;

const SA_SIGINFO_RESTORER = 0x04000004;

/** The model value of an address expression. */
function addrValue(a: Addr): string | bigint {
  switch (a.kind) {
    case 'A':
      return ARENA + a.off;
    case 'B':
      return a.off < 0n ? `$brk0-${-a.off}` : `$brk0+${a.off}`;
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

/**
 * The host's effective and permitted capabilities (/proc/self/status CapEff and CapPrm: the
 * oracle runs with them), or null when they are the model's full set. A container commonly
 * withholds some (CAP_SYS_RESOURCE: raising a hard resource limit is then -EPERM), so the
 * model's process drops the same ones first.
 */
function hostCapabilities(): { effective: bigint; permitted: bigint } | null {
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    const get = (name: string): bigint => BigInt('0x' + (new RegExp(`^${name}:\\s*([0-9a-f]+)$`, 'm').exec(status)?.[1] ?? '0'));
    const effective = get('CapEff');
    const permitted = get('CapPrm');
    const full = (1n << 41n) - 1n; // CAP_FULL_SET up to CAP_CHECKPOINT_RESTORE, as the model's tasks start
    if (effective === full && permitted === full) return null;
    return { effective: effective & full, permitted: permitted & full };
  } catch {
    return null;
  }
}
const HOST_CAPS = hostCapabilities();

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
    if (HOST_CAPS) {
      // capset to the host's sets (version 3 header, pid 0; two {effective, permitted, inheritable} u32 triples).
      const lo = (v: bigint): bigint => v & 0xffffffffn;
      const hi = (v: bigint): bigint => v >> 32n;
      prologue.push(
        { op: 'store', addr: '$scratch+64', value: 0x20080522n },
        { op: 'store', addr: '$scratch+72', value: lo(HOST_CAPS.effective) | (lo(HOST_CAPS.permitted) << 32n) },
        { op: 'store', addr: '$scratch+80', value: hi(HOST_CAPS.effective) << 32n },
        { op: 'store', addr: '$scratch+88', value: hi(HOST_CAPS.permitted) },
        { op: 'syscall', name: 'capset', args: ['$scratch+64', '$scratch+72'] },
      );
    }
    // The program break the image starts with: `B` addresses are relative to it, as the oracle's.
    slots.set(`${name}|main|${prologue.length}`, { line: -1, kind: 'brk0' });
    prologue.push({ op: 'syscall', name: 'brk', args: [0], into: 'brk0' });
    if (usesText(list)) prologue.push({ op: 'syscall', name: 'mmap', args: [0, TEXT_MAX, 3, 0x22, -1, 0], into: 'text' });
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
        case 'words':
          a.words.forEach((w, j) => {
            pre.push({ op: 'store', addr: `$scratch+${WORDS_AT + 64 * k + 8 * j}`, value: typeof w === 'bigint' ? BigInt.asUintN(64, w) : addrValue(w) });
          });
          return `$scratch+${WORDS_AT + 64 * k}`;
        case 'text':
          // The text buffer starts zeroed, as the oracle's: clear what the last read left.
          for (let at = 0; at < Number(a.len); at += 8) pre.push({ op: 'store', addr: `$text+${at}`, value: 0 });
          return '$text';
      }
    };
    const body = (fn: string, ops: SeqOp[], out: Op[]): void => {
      for (const o of ops) {
        const here = (kind: Slot['kind'], handle?: number): void => {
          slots.set(`${name}|${fn}|${out.length}`, { line, kind, handle, refs: handleRefs(o) });
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
            const extras: Extra[] = [];
            here('call');
            slots.get(`${name}|${fn}|${out.length}`)!.extras = extras;
            slots.get(`${name}|${fn}|${out.length}`)!.brk = o.name === 'brk';
            const pair = o.args.some((a) => a.kind === 'pair');
            out.push({ op: 'syscall', name: o.name, args, into: !pair && o.bind.length ? `f${o.bind[0]}` : undefined });
            o.args.forEach((a, k) => {
              if (a.kind === 'cell') {
                extras.push({ kind: 'cell' });
                out.push({ op: 'load', addr: `$scratch+${CELL_AT + 8 * k}`, size: 8 });
              } else if (a.kind === 'words') {
                extras.push({ kind: 'words', mask: a.words.map((_, j) => a.mask?.[j] ?? 0xffffffffffffffffn) });
                a.words.forEach((_, j) => out.push({ op: 'load', addr: `$scratch+${WORDS_AT + 64 * k + 8 * j}`, size: 8 }));
              } else if (a.kind === 'text') {
                extras.push({ kind: 'text', len: Number(a.len) });
                for (let at = 0; at < Number(a.len); at += 8) out.push({ op: 'load', addr: `$text+${at}`, size: 8 });
              } else if (a.kind === 'pair') {
                extras.push({ kind: 'pair' });
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
  // Each image's first program break (every process of an image starts with the same layout).
  const brkBase = new Map<string, bigint>();
  // Per task, the handles whose binding mmap failed (a forked child starts with its parent's):
  // the oracle prints `skip` for an operation naming one, and so does this listing (XXX: the
  // model has run it, with the handle's -errno as the region's base, an address below 16 KiB or
  // in the last page, where nothing is mapped).
  const failed = new Map<number, Set<number>>();
  const failedOf = (tid: number): Set<number> => {
    let f = failed.get(tid);
    if (!f) failed.set(tid, (f = new Set()));
    return f;
  };
  for (let i = 0; i < log.length; i++) {
    const r = log[i];
    const slot = slots.get(`${r.image}|${r.fn}|${r.index}`);
    if (!slot) continue;
    if (slot.kind === 'brk0') {
      brkBase.set(r.image, r.value ?? 0n);
      continue;
    }
    // The records after this one of the same task: a wait's status load, a call's loads.
    const after = (n: number): OpRecord[] => {
      const got: OpRecord[] = [];
      for (let j = i + 1; j < log.length && got.length < n; j++) if (log[j].tid === r.tid) got.push(log[j]);
      return got;
    };
    const skip = slot.refs?.some((h) => failed.get(r.tid)?.has(h)) ?? false;
    const text = skip ? 'skip' : format(slot, r, after, brkBase.get(r.image) ?? 0n);
    if (!skip && slot.kind === 'mmap' && slot.handle !== undefined && slot.handle !== 255) {
      if (r.signal || BigInt.asIntN(64, r.value ?? 0n) < 0n) failedOf(r.tid).add(slot.handle);
      else failedOf(r.tid).delete(slot.handle);
    }
    if (!skip && slot.kind === 'fork' && !r.signal && BigInt.asIntN(64, r.value ?? 0n) > 0n) failed.set(Number(r.value), new Set(failed.get(r.tid)));
    if (text !== null) lines.push(`${who.get(r.tid) ?? '?'} ${slot.line} ${text}`);
  }
  return { lines, sys };
}

/** Whether an image's ops (its fork blocks included, not a later image's) pass a `t:` text buffer. */
function usesText(list: SeqOp[]): boolean {
  return list.some((o) => (o.op === 'call' && o.args.some((a) => a.kind === 'text')) || (o.op === 'fork' && usesText(o.child)));
}

/** An address as native/oracle.c's format_addr prints it: `A+<hex>` in the arena, `B+<hex>` or `B-<hex>` near the image's first program break, else `X<hex>`. */
function addrText(addr: bigint, brk: bigint): string {
  if (addr >= ARENA && addr < ARENA + ARENA_SIZE) return `A+${(addr - ARENA).toString(16)}`;
  if (addr >= brk && addr - brk < BRK_NEAR) return `B+${(addr - brk).toString(16)}`;
  if (addr < brk && brk - addr <= BRK_BELOW) return `B-${(brk - addr).toString(16)}`;
  return `X${addr.toString(16)}`;
}

function where(addr: bigint, opAddr: bigint | undefined, brk: bigint): string {
  if (opAddr !== undefined && addr === opAddr) return '=';
  return addrText(addr, brk);
}

/** The lines of a text that begin with an arena address, rebased, single-spaced, a non-zero inode as `I`, as native/oracle.c's arena_lines joins them. */
function arenaLines(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  const text = new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end));
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+)(.*)$/.exec(line);
    if (!m) continue;
    const start = BigInt('0x' + m[1]);
    if (start < ARENA || start >= ARENA + ARENA_SIZE) continue;
    const f = /^\s*(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*(.*)$/.exec(m[3]);
    if (!f) continue;
    out.push(`A+${(start - ARENA).toString(16)}-A+${(BigInt('0x' + m[2]) - ARENA).toString(16)} ${f[1]} ${f[2]} ${f[3]} ${f[4] === '0' ? '0' : 'I'}${f[5] ? ' ' + f[5] : ''}`);
  }
  return out.length ? ' ' + out.join(';') : '';
}

/** One result line's text for a log record, in the oracle's words; `brk` is the image's first program break. */
function format(slot: Slot, r: OpRecord, after: (n: number) => OpRecord[], brk: bigint): string | null {
  if (r.signal) return `sig ${r.signal.signo} ${r.signal.code} ${where(r.signal.addr, r.addr, brk)}`;
  const v = r.value !== undefined ? BigInt.asIntN(64, r.value) : 0n;
  switch (slot.kind) {
    case 'mmap': {
      if (v < 0n) return `err ${-v}`;
      const at = addrText(BigInt.asUintN(64, v), brk);
      return at.startsWith('X') ? 'ok other' : `ok ${at}`;
    }
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
    case 'brk0':
      return null;
    case 'execve':
      return v < 0n ? `err ${-v}` : null;
    case 'call': {
      const kinds = slot.extras ?? [];
      const count = (e: Extra): number => (e.kind === 'pair' ? 2 : e.kind === 'words' ? e.mask.length : e.kind === 'text' ? e.len / 8 : 1);
      const loads = after(kinds.reduce((n, e) => n + count(e), 0));
      // The `m:` words, printed after ok and err alike.
      let wordText = '';
      let at = 0;
      for (const e of kinds) {
        if (e.kind === 'words') wordText += ' m:' + e.mask.map((m, j) => (BigInt.asUintN(64, loads[at + j]?.value ?? 0n) & m).toString(16)).join(',');
        at += count(e);
      }
      if (v < 0n) return `err ${-v}${wordText}`;
      const words: string[] = [slot.brk ? addrText(BigInt.asUintN(64, v), brk) : v.toString()];
      let textOut: string | null = null;
      at = 0;
      for (const e of kinds) {
        if (e.kind === 'cell') words.push(BigInt.asIntN(64, loads[at]?.value ?? 0n).toString());
        else if (e.kind === 'pair') for (let h = 0; h < 2; h++) words.push(BigInt.asIntN(32, loads[at + h]?.value ?? 0n).toString());
        else if (e.kind === 'text') {
          const bytes = new Uint8Array(e.len);
          for (let j = 0; j < e.len / 8; j++) {
            let w = loads[at + j]?.value ?? 0n;
            for (let b = 0; b < 8; b++, w >>= 8n) bytes[8 * j + b] = Number(w & 0xffn);
          }
          textOut = (textOut ?? '') + arenaLines(bytes);
        }
        at += count(e);
      }
      // A call with a text buffer prints `ok text` and the lines (each side's text has its own length).
      if (textOut !== null) return `ok text${wordText}${textOut}`;
      return `ok ${[words[0] + wordText, ...words.slice(1)].join(' ')}`;
    }
  }
}
