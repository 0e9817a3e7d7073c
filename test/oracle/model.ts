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
import { ProgramImage, type Op, type Program, type Value } from '../../src/user/program.js';
import type { OpRecord } from '../../src/kernel/task.js';
import { ARENA, ARENA_SIZE, HOST_CPUID_FAULT, HOST_FSGSBASE, SAFE_LEN, SAFE_OFF, SAFE_PATTERN, type Addr, type SeqOp, type PtrOp, type SigHandler, type SigOp } from './sequence.js';

/** What a call's loads after the syscall read back, in order: a cell, the two halves of a pair, an `m:` argument's words (masked), a `t:` argument's text. */
type Extra = { kind: 'cell' } | { kind: 'pair' } | { kind: 'words'; mask: bigint[] } | { kind: 'text'; len: number };

interface Slot {
  line: number;
  kind: 'mmap' | 'ret0' | 'load' | 'store' | 'getpid' | 'fork' | 'wait' | 'waitstatus' | 'execve' | 'call' | 'brk0' | 'sig' | 'hpart' | 'ptr' | 'i80';
  handle?: number;
  extras?: Extra[];
  /** call: brk, whose result is printed as an address. */
  brk?: boolean;
  /** The address handles the operation names: `skip` if one of them was bound by an mmap that failed (as the oracle prints). */
  refs?: number[];
  /** sig: the operation; sig and hpart: which of its records (SIG_MARK: the operation finished). */
  sig?: SigOp;
  part?: number;
  /** hpart: the handler. */
  handler?: SigHandler;
  /** i80: a user_desc was given (its words are printed after the call). */
  desc?: boolean;
  /** ptr: the label of the value this record is (PTR_END: the story finished). */
  label?: string;
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
    case 'sig':
      if (o.s.what === 'load' || o.s.what === 'store') addr(o.s.addr);
      else if (o.s.what === 'altstack' && o.s.sp) addr(o.s.sp);
      else if (o.s.what === 'prctl') addr(o.s.arg);
      else if (o.s.what === 'wrbase') addr(o.s.value);
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
    cpu: { pku: HOST.pku, shstk: HOST.shstk, fsgsbase: HOST_FSGSBASE, cpuid_faulting: HOST_CPUID_FAULT, dirty_on_readonly: HOST.shstk ? 'strict' : 'legacy' },
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
          case 'sig':
            compileSig(o.s, out, (part) => slots.set(`${name}|${fn}|${out.length}`, { line, kind: 'sig', sig: o.s, part }));
            line++;
            break;
          case 'i80': {
            // native/oracle.c do_i80: the user_desc in a page below 4 GiB for the call, the pid for `P` operands.
            if (o.desc) {
              out.push({ op: 'syscall', name: 'mmap', args: [I80_LOW, 4096, 3, 0x32, -1, 0] });
              const [e, b, l, f] = o.desc.map(BigInt);
              out.push({ op: 'store', addr: I80_LOW, value: e | (b << 32n) }, { op: 'store', addr: I80_LOW + 8n, value: l | (f << 32n) });
            }
            out.push({ op: 'syscall', name: 'getpid', into: 'i80pid' });
            const args = o.args.map((a): Value => (a.kind === 'D' ? I80_LOW : a.kind === 'P' ? `$i80pid + ${a.hi << 32n}` : a.value));
            here('i80');
            slots.get(`${name}|${fn}|${out.length}`)!.desc = o.desc !== undefined;
            out.push({ op: 'int80', name: Number(o.nr), args });
            if (o.desc) out.push({ op: 'load', addr: I80_LOW }, { op: 'load', addr: I80_LOW + 8n }, { op: 'syscall', name: 'munmap', args: [I80_LOW, 4096] });
            line++;
            break;
          }
          case 'ptr':
            compilePtr(o.p, out, (label) => slots.set(`${name}|${fn}|${out.length}`, { line, kind: 'ptr', label }));
            line++;
            break;
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
    const functions: Record<string, Op[]> = { onfault: [{ op: 'longjmp' }] };
    if (list.some((o) => o.op === 'ptr')) functions.h_ptr = [{ op: 'store', addr: PTR_S, value: '$signo' }];
    if (usesSig(list)) {
      for (const [fname, { ops, parts }] of Object.entries(sigHandlerFunctions())) {
        functions[fname] = ops;
        for (const [index, part] of parts) slots.set(`${name}|${fname}|${index}`, { line: -1, kind: 'hpart', part, handler: fname.slice(2) as SigHandler });
      }
    }
    return { name, program: { main, functions, strings } };
  };

  const first = compileImage(ops);
  // The signal family's handlers by address, for rt_sigaction's old handler (no execve in that family).
  const image = new ProgramImage(first.name, first.program);
  const handlerAt = (addr: bigint): string => {
    if (addr === 0n) return 'dfl';
    if (addr === 1n) return 'ign';
    for (const h of SIG_HANDLERS) if (BigInt(image.byName.get(`h_${h}`)?.base ?? -1) === addr) return h;
    return 'other';
  };
  const sigOpen = new Map<number, SigLine>();
  const ptrOpen = new Map<number, { line: number; values: string[]; pid: bigint }>();
  const who = new Map<number, string>();
  const unsub = sys.events.subscribe((e) => {
    if (e.type === 'fork') who.set(e.child, (who.get(e.parent) ?? '?') + 'c');
  });
  const pid = sys.spawn(first.program, { name: first.name });
  who.set(pid, 'p');
  sys.run({ maxSteps: 2_000_000 });
  unsub();

  const lines: (string | null)[] = [];
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
    if (slot.kind === 'sig') {
      let l = sigOpen.get(r.tid);
      if (!l || l.line !== slot.line) {
        l = { line: slot.line, s: slot.sig!, parts: new Map(), handlers: [], at: lines.length, jumped: false };
        sigOpen.set(r.tid, l);
        lines.push(null);
      }
      if (slot.part === SIG_MARK) {
        lines[l.at] = `${who.get(r.tid) ?? '?'} ${l.line} ${formatSig(l, brkBase.get(r.image) ?? 0n, handlerAt)}`;
        sigOpen.delete(r.tid);
      } else if (!r.signal) l.parts.set(slot.part!, r); // a signal's record: the handlers say what came of it
      continue;
    }
    if (slot.kind === 'ptr') {
      if (r.signal) continue;
      let l = ptrOpen.get(r.tid);
      if (!l || l.line !== slot.line) {
        l = { line: slot.line, values: [], pid: 0n };
        ptrOpen.set(r.tid, l);
      }
      if (slot.label === PTR_END) {
        lines.push(`${who.get(r.tid) ?? '?'} ${l.line} ptr${l.values.join('')}`);
        ptrOpen.delete(r.tid);
      } else if (slot.label === '_pid') l.pid = r.value ?? 0n;
      else l.values.push(` ${slot.label}=${ptrValue(slot.label!, r.value ?? 0n, l.pid)}`);
      continue;
    }
    if (slot.kind === 'hpart') {
      // A handler's record: the first starts a run, on the line of the operation it interrupted.
      const l = sigOpen.get(r.tid);
      if (!l) continue;
      if (slot.part === H_JUMP) {
        l.jumped = true;
        continue;
      }
      if (slot.part === H_SIGNO) l.handlers.push({ handler: slot.handler!, recs: new Map() });
      l.handlers[l.handlers.length - 1]?.recs.set(slot.part!, r);
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
  return { lines: lines.filter((x): x is string => x !== null), sys };
}

/** Whether an image's ops (its fork blocks included) have signal-family operations. */
function usesSig(list: SeqOp[]): boolean {
  return list.some((o) => o.op === 'sig' || (o.op === 'fork' && usesSig(o.child)));
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
    case 'i80': {
      const u = BigInt.asUintN(64, r.value ?? 0n);
      let text = u === BigInt(r.pid) ? 'ok self' : `ok ${u.toString(16)}`;
      if (slot.desc) {
        const [a, b] = after(2).map((x) => x.value ?? 0n);
        text += ` d:${[a & 0xffffffffn, a >> 32n, b & 0xffffffffn, b >> 32n].map((w) => w.toString(16)).join(',')}`;
      }
      return text;
    }
    case 'waitstatus':
    case 'sig':
    case 'hpart':
    case 'ptr':
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

// ---- the signal family (sequence.ts SigOp; native/oracle.c do_sig) ----

/** Where the signal family's operations keep their arguments in the scratch page (the handlers' own at SIG_HS). */
const SIG_HS = 0x800;
const SIG_ACT = 0x840;
const SIG_OLDACT = 0x860;
const SIG_SET = 0x880;
const SIG_OLDSET = 0x888;
const SIG_SS = 0x890;
const SIG_OSS = 0x8b0;
const SIG_DESC = 0x8d0;
const SIG_LDTBUF = 0x8e0;
const SIG_CELL = 0x8f0;
const SIG_REF = 0x8f8;
/** The part of a `sig` operation whose record says it finished (the host prints a line only then). */
const SIG_MARK = -1;
/** The records a handler makes: its signo, si_code, si_addr, uc_flags, uc_stack's ss_sp, ss_flags and ss_size, the sigcontext's cs, ss, err, trapno, cr2, and (alt) sigaltstack's result. */
const H_SIGNO = 1;
const H_CODE = 2;
const H_ADDR = 3;
const H_UCFLAGS = 4;
const H_SP = 5;
const H_SSFLAGS = 6;
const H_SIZE = 7;
const H_CS = 8;
const H_SS = 9;
const H_ERR = 10;
const H_TRAPNO = 11;
const H_CR2 = 12;
const H_D = 16;
/** A handler's record made just before it longjmps: the operation prints `jmp`. */
const H_JUMP = 20;
const SIG_HANDLERS: readonly SigHandler[] = ['rec', 'plain', 'alt', 'jmp', 'fix'];
const SA_RESTORER = 0x04000000n;

/** Where the handler's frame has its ucontext and siginfo (signal.ts: struct rt_sigframe at the handler's entry rsp). */
const FRAME_UC = 8;
const FRAME_INFO = 312;
const FRAME_SC_RIP = FRAME_UC + 40 + 128;

/**
 * The handlers as model functions, making the records native/oracle.c's sig_record copies,
 * read from the frame at the stack pointer as the C handler reads them through its arguments
 * (which point there): with SA_SIGINFO the signo from the siginfo (`plain`: RDI, through memory
 * so that its load records it), then the siginfo's and ucontext's fields; `alt` then
 * sigaltstack(SS_DISABLE); `jmp` longjmps (the mask from the frame, as the oracle's), or returns
 * when it interrupted a handler that had not started; `fix` makes the page read-write for
 * SEGV_ACCERR and returns, else does as `jmp`. `parts` maps an
 * operation's index to the record it makes.
 */
function sigHandlerFunctions(): Record<string, { ops: Op[]; parts: Map<number, number> }> {
  const fields: [number, Op][] = [
    [H_CODE, { op: 'load', addr: `$rsp+${FRAME_INFO + 8}`, size: 4, into: 'hcode' }],
    [H_ADDR, { op: 'load', addr: `$rsp+${FRAME_INFO + 16}`, into: 'haddr' }],
    [H_UCFLAGS, { op: 'load', addr: `$rsp+${FRAME_UC}` }],
    [H_SP, { op: 'load', addr: `$rsp+${FRAME_UC + 16}` }],
    [H_SSFLAGS, { op: 'load', addr: `$rsp+${FRAME_UC + 24}`, size: 4 }],
    [H_SIZE, { op: 'load', addr: `$rsp+${FRAME_UC + 32}` }],
    [H_CS, { op: 'load', addr: `$rsp+${FRAME_UC + 184}`, size: 2 }],
    [H_SS, { op: 'load', addr: `$rsp+${FRAME_UC + 190}`, size: 2 }],
    [H_ERR, { op: 'load', addr: `$rsp+${FRAME_UC + 192}` }],
    [H_TRAPNO, { op: 'load', addr: `$rsp+${FRAME_UC + 200}` }],
    [H_CR2, { op: 'load', addr: `$rsp+${FRAME_UC + 216}` }],
  ];
  const make = (info: boolean, tail: [number, Op][]): { ops: Op[]; parts: Map<number, number> } => {
    const list: [number, Op][] = info
      ? [[H_SIGNO, { op: 'load', addr: `$rsp+${FRAME_INFO}`, size: 4, into: 'hsig' }], ...fields, ...tail]
      : [[-1, { op: 'store', addr: `$scratch+${SIG_HS}`, value: '$signo' }], [H_SIGNO, { op: 'load', addr: `$scratch+${SIG_HS}`, size: 4 }], ...fields, ...tail];
    const parts = new Map<number, number>();
    list.forEach(([part], i) => part >= 0 && parts.set(i, part));
    return { ops: list.map(([, op]) => op), parts };
  };
  const ret: [number, Op] = [-1, { op: 'return' }];
  const tailAt = 1 + fields.length; // the index of the first operation after the fields
  // jmp's way out from index `at`: return when the frame's rip is a handler's entry (the signal
  // came while that handler's frame was set up, before it ran: native/oracle.c
  // sig_before_handler), else longjmp.
  const entry = SIG_HANDLERS.map((h) => `$hrip == @h_${h}`).join(' || ');
  const jumpOut = (at: number): [number, Op][] => [
    [-1, { op: 'load', addr: `$rsp+${FRAME_SC_RIP}`, into: 'hrip' }],
    [-1, { op: 'set', var: 'hj', value: 0 }],
    [-1, { op: 'while', cond: entry, counter: 'hj', max: 1, end: at + 4 }],
    ret,
    [H_JUMP, { op: 'work', count: 0 }],
    [-1, { op: 'longjmp' }],
  ];
  return {
    h_rec: make(true, [ret]),
    h_plain: make(false, [ret]),
    h_alt: make(true, [
      [-1, { op: 'store', addr: `$scratch+${SIG_HS + 8}`, value: 0 }],
      [-1, { op: 'store', addr: `$scratch+${SIG_HS + 16}`, value: 2 }], // SS_DISABLE
      [-1, { op: 'store', addr: `$scratch+${SIG_HS + 24}`, value: 0 }],
      [H_D, { op: 'syscall', name: 'sigaltstack', args: [`$scratch+${SIG_HS + 8}`, 0] }],
      ret,
    ]),
    h_jmp: make(true, jumpOut(tailAt)),
    h_fix: make(true, [
      [-1, { op: 'set', var: 'hfix', value: 0 }],
      [-1, { op: 'while', cond: '!($hsig == 11 && $hcode == 2)', counter: 'hfix', max: 1, end: tailAt + 8 }],
      ...jumpOut(tailAt + 2),
      [-1, { op: 'syscall', name: 'mprotect', args: ['$haddr & ~0xfff', 4096, 3] }],
      ret,
    ]),
  };
}

/** A signal-family operation's model operations, appended to `out`; `slot(part)` marks the next one's record as that part of the line. */
function compileSig(s: SigOp, out: Op[], slot: (part: number) => void): void {
  const S = (off: number): string => `$scratch+${off}`;
  const store = (off: number, value: Value, size?: 1 | 2 | 4 | 8): void => {
    out.push({ op: 'store', addr: S(off), value, ...(size ? { size } : {}) });
  };
  const part = (n: number, op: Op): void => {
    slot(n);
    out.push(op);
  };
  // After a syscall that may deliver a signal: the frame's rip is the next operation, which a
  // handler's longjmp skips (it resumes after the interrupted one), so that one does nothing.
  const pad = (): void => {
    out.push({ op: 'work', count: 0 });
  };
  switch (s.what) {
    case 'reset':
      store(SIG_SS, 0);
      store(SIG_SS + 8, 2);
      store(SIG_SS + 16, 0);
      out.push({ op: 'syscall', name: 'sigaltstack', args: [S(SIG_SS), 0] });
      for (let w = 0; w < 4; w++) store(SIG_ACT + 8 * w, 0);
      out.push({ op: 'syscall', name: 'rt_sigaction', args: [11, S(SIG_ACT), 0, 8] });
      part(0, { op: 'syscall', name: 'rt_sigaction', args: [7, S(SIG_ACT), 0, 8] });
      break;
    case 'action':
      store(SIG_ACT, s.handler === 'dfl' ? 0 : s.handler === 'ign' ? 1 : `@h_${s.handler}`);
      store(SIG_ACT + 8, s.flags | SA_RESTORER);
      store(SIG_ACT + 16, '@__restore_rt');
      store(SIG_ACT + 24, s.mask);
      for (let w = 0; w < 4; w++) store(SIG_OLDACT + 8 * w, 0);
      part(0, { op: 'syscall', name: 'rt_sigaction', args: [s.sig, S(SIG_ACT), S(SIG_OLDACT), 8] });
      part(1, { op: 'load', addr: S(SIG_OLDACT) });
      part(2, { op: 'load', addr: S(SIG_OLDACT + 8) });
      part(3, { op: 'load', addr: S(SIG_OLDACT + 24) });
      break;
    case 'kill':
      out.push({ op: 'syscall', name: 'getpid', into: 'sigpid' });
      part(0, { op: 'syscall', name: 'kill', args: ['$sigpid', s.sig] });
      pad();
      break;
    case 'tgkill':
      out.push({ op: 'syscall', name: 'getpid', into: 'sigpid' });
      out.push({ op: 'syscall', name: 'gettid', into: 'sigtid' });
      part(0, { op: 'syscall', name: 'tgkill', args: ['$sigpid', '$sigtid', s.sig] });
      pad();
      break;
    case 'mask':
      store(SIG_SET, s.set);
      part(0, { op: 'syscall', name: 'rt_sigprocmask', args: [s.how, S(SIG_SET), S(SIG_OLDSET), 8] });
      pad();
      part(1, { op: 'load', addr: S(SIG_OLDSET) });
      break;
    case 'load':
      part(0, { op: 'load', addr: addrValue(s.addr) });
      break;
    case 'store':
      part(0, { op: 'store', addr: addrValue(s.addr), value: 0x5a });
      break;
    case 'altstack':
      if (s.sp) {
        store(SIG_SS, addrValue(s.sp));
        store(SIG_SS + 8, s.flags & 0xffffffffn);
        store(SIG_SS + 16, s.size);
      }
      for (let w = 0; w < 3; w++) store(SIG_OSS + 8 * w, 0);
      part(0, { op: 'syscall', name: 'sigaltstack', args: [s.sp ? S(SIG_SS) : 0, S(SIG_OSS)] });
      part(1, { op: 'load', addr: S(SIG_OSS) });
      part(2, { op: 'load', addr: S(SIG_OSS + 8), size: 4 });
      part(3, { op: 'load', addr: S(SIG_OSS + 16) });
      break;
    case 'ldt':
      if (s.func === 0) {
        store(SIG_LDTBUF, 0);
        store(SIG_LDTBUF + 8, 0);
        part(0, { op: 'syscall', name: 'modify_ldt', args: [0, S(SIG_LDTBUF), 16] });
        part(1, { op: 'load', addr: S(SIG_LDTBUF) });
        part(2, { op: 'load', addr: S(SIG_LDTBUF + 8) });
      } else {
        // struct user_desc: entry_number, base_addr, limit, then the flag bits' word.
        store(SIG_DESC, BigInt(s.entry) | (s.base << 32n));
        store(SIG_DESC + 8, s.limit | (BigInt(s.bits) << 32n));
        part(0, { op: 'syscall', name: 'modify_ldt', args: [s.func, S(SIG_DESC), 16] });
      }
      break;
    case 'sreg': {
      const base = (s.sreg === 'fs' || s.sreg === 'gs') && HOST_FSGSBASE;
      const rd = s.sreg === 'fs' ? 'rdfsbase' : 'rdgsbase';
      const wr = s.sreg === 'fs' ? 'wrfsbase' : 'wrgsbase';
      out.push({ op: 'read_sreg', sreg: s.sreg, into: 'sold' });
      if (base) out.push({ op: rd, into: 'bold' });
      part(0, { op: 'mov_sreg', sreg: s.sreg, value: s.sel });
      part(1, { op: 'read_sreg', sreg: s.sreg });
      if (base) part(2, { op: rd });
      out.push({ op: 'mov_sreg', sreg: s.sreg, value: '$sold' });
      if (base) out.push({ op: wr, value: '$bold' });
      break;
    }
    case 'lar':
      part(0, { op: 'lar', value: s.sel });
      part(1, { op: 'lsl', value: s.sel });
      part(2, { op: 'verr', value: s.sel });
      part(3, { op: 'verw', value: s.sel });
      break;
    case 'prctl':
      if (s.code === 0x1001 || s.code === 0x1002) {
        // ARCH_SET_GS, ARCH_SET_FS: the base before, the call, the base after, the old one put back.
        const get = s.code === 0x1002 ? 0x1003 : 0x1004;
        out.push({ op: 'syscall', name: 'arch_prctl', args: [get, S(SIG_REF)] });
        part(1, { op: 'load', addr: S(SIG_REF), into: 'pref' });
        part(0, { op: 'syscall', name: 'arch_prctl', args: [s.code, addrValue(s.arg)] });
        out.push({ op: 'syscall', name: 'arch_prctl', args: [get, S(SIG_CELL)] });
        part(2, { op: 'load', addr: S(SIG_CELL) });
        out.push({ op: 'syscall', name: 'arch_prctl', args: [s.code, '$pref'] });
      } else if (s.code === 0x1003 || s.code === 0x1004) {
        // ARCH_GET_FS, ARCH_GET_GS: the base, then the call; its cell is read only when it is H0's (the others fail).
        out.push({ op: 'syscall', name: 'arch_prctl', args: [s.code, S(SIG_REF)] });
        part(1, { op: 'load', addr: S(SIG_REF) });
        part(0, { op: 'syscall', name: 'arch_prctl', args: [s.code, addrValue(s.arg)] });
        if (s.arg.kind === 'H') part(2, { op: 'load', addr: addrValue(s.arg) });
      } else {
        part(0, { op: 'syscall', name: 'arch_prctl', args: [s.code, addrValue(s.arg)] });
      }
      break;
    case 'wrbase': {
      const rd = s.reg === 'fs' ? 'rdfsbase' : 'rdgsbase';
      const wr = s.reg === 'fs' ? 'wrfsbase' : 'wrgsbase';
      out.push({ op: rd, into: 'bold' });
      part(0, { op: wr, value: addrValue(s.value) });
      part(1, { op: rd });
      out.push({ op: wr, value: '$bold' });
      break;
    }
  }
  part(SIG_MARK, { op: 'work', count: 0 });
}

/** A signal-family line being gathered: its operation's records and its handlers' runs. */
interface SigLine {
  line: number;
  s: SigOp;
  parts: Map<number, OpRecord>;
  handlers: { handler: SigHandler; recs: Map<number, OpRecord> }[];
  /** Its place in the listing (filled when it finishes; a process that dies first prints nothing, as on the host). */
  at: number;
  /** A handler longjmped past the operation. */
  jumped: boolean;
}

const hexOf = (v: bigint): string => BigInt.asUintN(64, v).toString(16);

/** One handler run's record, as native/oracle.c's sig_record prints it. */
function formatHandler(h: SigLine['handlers'][number], brk: bigint): string {
  const g = (n: number): bigint => h.recs.get(n)?.value ?? 0n;
  const code = h.handler === 'plain' ? null : BigInt.asIntN(32, g(H_CODE));
  const fault = code !== null && code > 0n;
  const uc = h.recs.get(H_UCFLAGS)?.addr ?? 0n;
  const alt = BigInt.asUintN(64, uc - g(H_SP)) < g(H_SIZE);
  let out = ` h:${g(H_SIGNO)},${code ?? '-'},${fault ? addrText(g(H_ADDR), brk) : '-'},${hexOf(g(H_UCFLAGS))},${hexOf(g(H_SSFLAGS))},${alt ? 'alt' : 'main'},${hexOf(g(H_CS))},${hexOf(g(H_SS))}`;
  if (fault) out += `,${hexOf(g(H_ERR))},${hexOf(g(H_TRAPNO))},${addrText(g(H_CR2), brk)}`;
  if (h.handler === 'alt') out += `,d${-BigInt.asIntN(64, g(H_D))}`;
  return out;
}

/** A finished signal-family line's result, as native/oracle.c's do_sig prints it; `handlerAt` names a handler address. */
function formatSig(l: SigLine, brk: bigint, handlerAt: (addr: bigint) => string): string {
  const r = (n: number): OpRecord | undefined => l.parts.get(n);
  const u = (n: number): bigint => BigInt.asUintN(64, r(n)?.value ?? 0n);
  const v = BigInt.asIntN(64, r(0)?.value ?? 0n);
  const hs = l.handlers.map((h) => formatHandler(h, brk)).join('');
  if (l.jumped) return `jmp${hs}`;
  const okOrErr = (rest = ''): string => (v < 0n ? `err ${-v}` : `ok ${v}${rest}`);
  const s = l.s;
  let text: string;
  switch (s.what) {
    case 'reset':
      text = 'ok 0';
      break;
    case 'action':
      text = okOrErr(` ${handlerAt(u(1))} ${hexOf(u(2))} ${hexOf(u(3))}`);
      break;
    case 'kill':
    case 'tgkill':
      text = okOrErr();
      break;
    case 'mask':
      text = okOrErr(` ${hexOf(u(1))}`);
      break;
    case 'load':
      text = `ok ${hexOf(u(0))}`;
      break;
    case 'store':
      text = 'ok 0';
      break;
    case 'altstack':
      text = okOrErr(` ${addrText(u(1), brk)} ${hexOf(u(2))} ${hexOf(u(3))}`);
      break;
    case 'ldt':
      text = okOrErr(s.func === 0 ? ` m:${hexOf(u(1))},${hexOf(u(2))}` : '');
      break;
    case 'sreg':
      text = `ok ${hexOf(u(1))}${(s.sreg === 'fs' || s.sreg === 'gs') && HOST_FSGSBASE ? ` ${hexOf(u(2))}` : ''}`;
      break;
    case 'lar':
      text = `ok ${hexOf(u(0))} ${hexOf(u(1))} ${u(2)} ${u(3)}`;
      break;
    case 'prctl': {
      const base = u(2) === u(1) ? 'cur' : addrText(u(2), brk);
      if (s.code === 0x1001 || s.code === 0x1002) text = v < 0n ? `err ${-v} ${base}` : `ok ${v} ${addrText(u(2), brk)}`;
      else if (s.code === 0x1003 || s.code === 0x1004) text = okOrErr(` ${base}`);
      else text = okOrErr();
      break;
    }
    case 'wrbase':
      text = `ok ${addrText(u(1), brk)}`;
      break;
  }
  return text + hs;
}

// ---- the ptrace family ----

/** native/oracle.c I80_LOW: the page below 4 GiB an INT 0x80's struct user_desc is in. */
const I80_LOW = 0x40000000n;

/** The story's pages (native/oracle.c PTR_S, PTR_R, PTR_U): shared with the child, private and read-only, never mapped. */
const PTR_S = ARENA + 0x3100000n;
const PTR_R = ARENA + 0x3110000n;
const PTR_U = ARENA + 0x3120000n;
/** The tracer's buffers in the scratch page: user_regs_struct, siginfo, a word, the two pipes' int[2], wait's status, the sigaction, a byte, FS_BASE saved. */
const PT_REGS = 0xc00;
const PT_SI = 0xd00;
const PT_W = 0xd80;
const PT_SYNC = 0xd88;
const PT_BLK = 0xd90;
const PT_ST = 0xd98;
const PT_SA = 0xda0;
const PT_BYTE = 0xdc8;
const PT_FSB = 0xdd0;
const PTR_END = '$end';
/** ptrace's requests (linux/ptrace.h, asm/ptrace-abi.h). */
const PT = Object.freeze({ TRACEME: 0, PEEKDATA: 2, PEEKUSR: 3, POKEDATA: 5, POKEUSR: 6, CONT: 7, KILL: 8, GETREGS: 12, SETREGS: 13, ATTACH: 16, DETACH: 17, GETSIGINFO: 0x4202, SEIZE: 0x4206, INTERRUPT: 0x4207 });
/** user_regs_struct's offsets (asm/user_64.h) the story reads. */
const UR = Object.freeze({ r13: 16, r12: 24, rbx: 40, rax: 80, orig_rax: 120, cs: 136, ss: 160, fs_base: 168, ds: 184, es: 192, fs: 200, gs: 208 });
const UR_PRINTED = ['r12', 'r13', 'rbx', 'rax', 'orig_rax', 'cs', 'ss', 'ds', 'es', 'fs', 'gs'] as const;
const PTR_SEEN = ['h_signo', 'traceme', 'c_ret', 'c_r12', 'c_r13', 'c_rbx', 'c_ro'];

/** A story's value as native/oracle.c ptr_put prints it: -errno in decimal, else hex; a pid (label wait, si_pid, reaped) that is the child's as `self`. */
function ptrValue(label: string, v: bigint, pid: bigint): string {
  if ((label === 'wait' || label === 'si_pid' || label === 'reaped') && v === pid) return 'self';
  const s = BigInt.asIntN(64, v);
  return s < 0n && s > -4096n ? s.toString() : BigInt.asUintN(64, v).toString(16);
}

/** A ptrace story's model operations (native/oracle.c do_ptr and ptr_child, step for step), appended to `out`; `slot(label)` marks the next one's record as that value of the line. */
function compilePtr(p: PtrOp, out: Op[], slot: (label: string) => void): void {
  const S = (off: number): string => `$scratch+${off}`;
  const sc = (name: string, args: Value[], into?: string): Op => ({ op: 'syscall', name, args, ...(into ? { into } : {}) });
  const pt = (req: number, addr: Value, data: Value): Op => sc('ptrace', [req, '$ptc', addr, data]);
  const part = (label: string, op: Op): void => {
    slot(label);
    out.push(op);
  };
  const zero = (off: number, len: number): void => {
    for (let at = 0; at < len; at += 8) out.push({ op: 'store', addr: S(off + at), value: 0 });
  };
  const traceme = p.mode === 'traceme';
  const child: Op[] = [
    { op: 'store', addr: S(PT_SA), value: '@h_ptr' },
    { op: 'store', addr: S(PT_SA + 8), value: 0x04000000 }, // SA_RESTORER, no SA_RESTART
    { op: 'store', addr: S(PT_SA + 16), value: '@__restore_rt' },
    { op: 'store', addr: S(PT_SA + 24), value: 0 },
    sc('rt_sigaction', [12, S(PT_SA), 0, 8]),
    ...(traceme ? [sc('ptrace', [PT.TRACEME, 0, 0, 0], 'ptt'), { op: 'store', addr: PTR_S + 8n, value: '$ptt' } as Op] : []),
    sc('write', ['$pts_w', S(PT_BYTE), 1]),
    sc('getpid', [], 'ptme'),
    { op: 'set', var: 'r12', value: p.v1 },
    { op: 'set', var: 'r13', value: p.v2 },
    { op: 'set', var: 'rbx', value: p.v1 ^ p.v2 },
    traceme ? sc('kill', ['$ptme', 10], 'ptret') : sc('read', ['$ptb_r', S(PT_BYTE), 1], 'ptret'),
    { op: 'store', addr: PTR_S + 16n, value: '$ptret' },
    { op: 'store', addr: PTR_S + 24n, value: '$r12' },
    { op: 'store', addr: PTR_S + 32n, value: '$r13' },
    { op: 'store', addr: PTR_S + 40n, value: '$rbx' },
    { op: 'load', addr: PTR_R, into: 'ptro' },
    { op: 'store', addr: PTR_S + 48n, value: '$ptro' },
    sc('exit_group', [0]),
  ];
  out.push(
    sc('pipe', [S(PT_SYNC)]),
    sc('pipe', [S(PT_BLK)]),
    { op: 'load', addr: S(PT_SYNC), size: 4, into: 'pts_r' },
    { op: 'load', addr: S(PT_SYNC + 4), size: 4, into: 'pts_w' },
    { op: 'load', addr: S(PT_BLK), size: 4, into: 'ptb_r' },
    { op: 'load', addr: S(PT_BLK + 4), size: 4, into: 'ptb_w' },
    sc('mmap', [PTR_S, 4096, 3, 0x31, -1, 0]),
    sc('mmap', [PTR_R, 4096, 3, 0x32, -1, 0]),
    { op: 'store', addr: PTR_R, value: p.v2 ^ 0xabcdefn },
    sc('mprotect', [PTR_R, 4096, 1]),
  );
  part('_pid', { op: 'syscall', name: 'fork', args: [], into: 'ptc', child });
  out.push(sc('read', ['$pts_r', S(PT_BYTE), 1]));
  if (p.mode === 'attach') part('attach', pt(PT.ATTACH, 0, 0));
  if (p.mode === 'seize') {
    part('seize', pt(PT.SEIZE, 0, 0));
    zero(PT_ST, 8);
    part('nohang', sc('wait4', ['$ptc', S(PT_ST), 1, 0]));
    part('interrupt', pt(PT.INTERRUPT, 0, 0));
  }
  zero(PT_ST, 8);
  part('wait', sc('wait4', ['$ptc', S(PT_ST), 0, 0]));
  part('status', { op: 'load', addr: S(PT_ST), size: 4 });
  part('again', pt(PT.ATTACH, 0, 0));
  for (const r of UR_PRINTED) {
    zero(PT_W, 8);
    out.push(pt(PT.PEEKUSR, UR[r], S(PT_W)));
    part(r, { op: 'load', addr: S(PT_W) });
  }
  zero(PT_W, 8);
  part('peekuser', pt(PT.PEEKUSR, p.off, S(PT_W)));
  part('word', { op: 'load', addr: S(PT_W) });
  zero(PT_SI, 128);
  part('getsiginfo', pt(PT.GETSIGINFO, 0, S(PT_SI)));
  part('si_signo', { op: 'load', addr: S(PT_SI), size: 4 });
  part('si_code', { op: 'load', addr: S(PT_SI + 8), size: 4 });
  part('si_pid', { op: 'load', addr: S(PT_SI + 16), size: 4 });
  zero(PT_W, 8);
  part('peekdata', pt(PT.PEEKDATA, PTR_R, S(PT_W)));
  part('data', { op: 'load', addr: S(PT_W) });
  part('pokedata', pt(PT.POKEDATA, PTR_R, p.pv));
  part('mine', { op: 'load', addr: PTR_R });
  zero(PT_W, 8);
  out.push(pt(PT.PEEKDATA, PTR_R, S(PT_W)));
  part('theirs', { op: 'load', addr: S(PT_W) });
  part('peek_unmapped', pt(PT.PEEKDATA, PTR_U, S(PT_W)));
  part('poke_unmapped', pt(PT.POKEDATA, PTR_U, 1));
  zero(PT_FSB, 8);
  out.push(pt(PT.PEEKUSR, UR.fs_base, S(PT_FSB)));
  part('fs_base_max', pt(PT.POKEUSR, UR.fs_base, 0x7ffffffff000n));
  part('fs_base_set', pt(PT.POKEUSR, UR.fs_base, p.v1 & 0x3ffffffff000n));
  zero(PT_W, 8);
  out.push(pt(PT.PEEKUSR, UR.fs_base, S(PT_W)));
  part('fs_base', { op: 'load', addr: S(PT_W) });
  out.push({ op: 'load', addr: S(PT_FSB), into: 'ptfsb' }, pt(PT.POKEUSR, UR.fs_base, '$ptfsb'));
  part('poke_ds', pt(PT.POKEUSR, UR.ds, p.sel));
  zero(PT_W, 8);
  out.push(pt(PT.PEEKUSR, UR.ds, S(PT_W)));
  part('ds_now', { op: 'load', addr: S(PT_W) });
  out.push(pt(PT.POKEUSR, UR.ds, 0));
  part('poke_cs', pt(PT.POKEUSR, UR.cs, 0));
  part('poke_r13', pt(PT.POKEUSR, UR.r13, p.pv));
  part('poke_odd', pt(PT.POKEUSR, UR.r13 + 1, 0));
  zero(PT_REGS, 216);
  part('getregs', pt(PT.GETREGS, 0, S(PT_REGS)));
  for (const r of UR_PRINTED) part(`g_${r}`, { op: 'load', addr: S(PT_REGS + UR[r]) });
  out.push({ op: 'load', addr: S(PT_REGS + UR.cs), into: 'ptcs' }, { op: 'store', addr: S(PT_REGS + UR.cs), value: 0 });
  part('setregs_cs0', pt(PT.SETREGS, 0, S(PT_REGS)));
  out.push({ op: 'store', addr: S(PT_REGS + UR.cs), value: '$ptcs' }, { op: 'store', addr: S(PT_REGS + UR.r12), value: p.pv ^ 0x5an });
  part('setregs', pt(PT.SETREGS, 0, S(PT_REGS)));
  part('bad_request', pt(0x4299, 0, 0));
  part('cont_65', pt(PT.CONT, 0, 65));
  part(p.fin, p.fin === 'kill' ? pt(PT.KILL, 0, 0) : pt(p.fin === 'cont' ? PT.CONT : PT.DETACH, 0, p.inj));
  part('running', pt(PT.PEEKUSR, 0, S(PT_W)));
  if (!traceme) out.push(sc('write', ['$ptb_w', S(PT_BYTE), 1]));
  zero(PT_ST, 8);
  part('reaped', sc('wait4', ['$ptc', S(PT_ST), 0, 0]));
  part('exit', { op: 'load', addr: S(PT_ST), size: 4 });
  PTR_SEEN.forEach((label, k) => part(label, { op: 'load', addr: PTR_S + BigInt(8 * k) }));
  out.push(sc('munmap', [PTR_S, 4096]), sc('munmap', [PTR_R, 4096]), sc('close', ['$pts_r']), sc('close', ['$pts_w']), sc('close', ['$ptb_r']));
  part(PTR_END, sc('close', ['$ptb_w']));
}
