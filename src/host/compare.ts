/**
 * Comparing the host's run of a scenario with isolab's: every record isolab's run made (a
 * value, an errno, a signal with its si_code and si_addr, a store done) against the line the
 * host program wrote for it, and every task's exit status. Pids and tids are compared through
 * the tasks they name (the host's task k against isolab's task k). What cannot be compared is
 * said, with the reason; nothing is counted as agreeing that was not compared.
 */
import type { CompiledScenario } from '../scenario/compile.js';
import { formatReturn, formatValue, formatWaitStatus, signalName, siCodeName } from '../scenario/format.js';
import { issueAt } from '../scenario/load.js';
import type { Plan, PlanRecord } from './plan.js';
import { opKey, syscallName, type HostItem, type Support } from './support.js';

/** A record or status on which the host and isolab differ. */
export interface Divergence {
  where: string;
  /** The operation's label (or `exit of NAME`). */
  what: string;
  thread: string;
  isolab: string;
  host: string;
}

export interface Comparison {
  agreed: number;
  divergences: Divergence[];
  /** Differences in a scenario whose schedule races inside the kernel: not failures. */
  scheduleDependent: Divergence[];
  notComparable: HostItem[];
  skipped: (HostItem & { count: number })[];
}

/** One line of the host program's report, parsed. */
type HostRecord = { kind: 'V'; value: bigint } | { kind: 'N' } | { kind: 'P' } | { kind: 'S'; signo: number; code: number; addr: bigint; known: number } | { kind: 'K' } | { kind: 'X'; why: number; value: bigint };

/** What the host program reported. */
export interface HostOutput {
  tids: Map<number, number>;
  records: Map<number, HostRecord>;
  /** The first task that left isolab's order: task, function index, operation index. */
  diverged?: { task: number; fn: number; index: number; image?: number };
  exits: Map<number, string>;
  /** End expectations' values by id (null: the address was not mapped). */
  ends: Map<number, bigint | null>;
}

/** Parses the host program's report lines (cgen.ts describes them); unknown lines are ignored. */
export function parseHostOutput(text: string): HostOutput {
  const out: HostOutput = { tids: new Map(), records: new Map(), exits: new Map(), ends: new Map() };
  for (const line of text.split('\n')) {
    const w = line.trim().split(/\s+/);
    const n = (i: number): number => Number(w[i]);
    const h = (i: number): bigint => BigInt(`0x${w[i] ?? '0'}`);
    switch (w[0]) {
      case 'T':
        out.tids.set(n(1), n(2));
        break;
      case 'R':
        if (w[2] === 'V') out.records.set(n(1), { kind: 'V', value: h(3) });
        else if (w[2] === 'N') out.records.set(n(1), { kind: 'N' });
        else if (w[2] === 'S') out.records.set(n(1), { kind: 'S', signo: n(3), code: n(4), addr: h(5), known: w[6] === undefined ? 3 : n(6) });
        else if (w[2] === 'K') out.records.set(n(1), { kind: 'K' });
        else if (w[2] === 'P') out.records.set(n(1), { kind: 'P' });
        else if (w[2] === 'X') out.records.set(n(1), { kind: 'X', why: n(3), value: h(4) });
        break;
      case 'D':
        out.diverged ??= { task: n(1), fn: n(2), index: n(3), ...(w[4] !== undefined ? { image: n(4) } : {}) };
        break;
      case 'E':
      case 'e': // a thread's exit (not a group leader's)
        if (!out.exits.has(n(1))) out.exits.set(n(1), `exit ${n(2) & 0xff}`);
        break;
      case 'K':
        out.exits.set(n(1), `killed by ${signalName(n(2))}`);
        break;
      case 'M':
        out.ends.set(n(1), w[2] === 'V' ? h(3) : null);
        break;
      case 'W':
        out.exits.set(n(1), formatWaitStatus(n(2) & ~0x80));
        break;
    }
  }
  return out;
}

/** A record as the report shows it. */
function show(r: PlanRecord['record'] | HostRecord, syscall: boolean): string {
  if ('kind' in r) {
    if (r.kind === 'N') return 'done';
    if (r.kind === 'S') return `${signalName(r.signo)}${r.known & 1 ? ` ${siCodeName(r.signo, r.code)}` : ''}${r.known & 2 && r.addr ? ` at ${formatValue(r.addr)}` : ''}`;
    if (r.kind === 'V') return syscall ? formatReturn(r.value) : formatValue(r.value);
    return r.kind === 'K' ? 'not run' : r.kind === 'P' ? 'started' : 'refused';
  }
  if (r.signal) return `${signalName(r.signal.signo)} ${siCodeName(r.signal.signo, r.signal.code)}${r.signal.addr ? ` at ${formatValue(r.signal.addr)}` : ''}`;
  if (r.value === undefined) return 'done';
  return syscall ? formatReturn(r.value) : formatValue(r.value);
}

/**
 * Operations whose skipping changes nothing but the variable they set: reads of the CPU's own
 * state, and `int80`, which is skipped only for a number isolab's ia32 table lacks (-ENOSYS
 * there, with no effect).
 */
const PURE_OPS: ReadonlySet<string> = new Set(['rdpkru', 'rdssp', 'cpuid', 'xgetbv', 'read_sreg', 'lar', 'lsl', 'verr', 'verw', 'rdfsbase', 'rdgsbase', 'transient_load', 'int80']);
/** Signals whose si_addr is the address of the instruction that raised them (SIGILL, SIGTRAP, SIGFPE). */
const IP_SIGNALS: ReadonlySet<number> = new Set([4, 5, 8]);
/** Syscalls whose skipping changes nothing but their result. */
const PURE_SYSCALLS: ReadonlySet<string> = new Set(['getpid', 'gettid', 'sched_yield', 'getrlimit', 'capget', 'sched_getaffinity']);

/** Why the host refused an operation (cgen.ts's X codes). */
function refusal(why: number, value: bigint, rec: PlanRecord): string {
  if (why === 1) return `the pid ${BigInt.asIntN(32, value)} is not one of the host program's tasks: not signalled or read on the host`;
  if (why === 2) return "the descriptor is one of the host program's own (its report, or its shared page): not touched on the host";
  return `the host had already mapped ${formatValue(rec.mmap)} (MAP_FIXED_NOREPLACE gave EEXIST): isolab's address is not free on the host`;
}

/** Compares the host's report with isolab's run. */
export function compareRuns(c: CompiledScenario, support: Support, plan: Plan, host: HostOutput): Comparison {
  const where = (path: (string | number)[]): string => {
    const i = issueAt(c.locator, path, '');
    return i.line !== undefined ? `${i.file}:${i.line}:${i.col}` : i.path;
  };
  const result: Comparison = { agreed: 0, divergences: [], scheduleDependent: [], notComparable: [], skipped: [] };
  const raced = c.system.script !== undefined;
  // The host's tid of each task, to compare pids by the task they name.
  const modelTidOfHost = new Map<number, number>();
  for (const [idx, tid] of host.tids) if (plan.tasks[idx]) modelTidOfHost.set(tid, plan.tasks[idx].tid);
  const skippedAt = new Map<string, HostItem & { count: number }>();
  let divergedText: string | undefined;
  if (host.diverged) {
    const t = plan.tasks[host.diverged.task];
    const img = t ? support.images[host.diverged.image ?? t.image] : undefined;
    const fn = img?.functions[host.diverged.fn];
    const info = fn ? c.ops.get(img!.name, fn.name, host.diverged.index) : undefined;
    divergedText = info ? `${t!.name} ran ${info.label} (${where(info.path)}) out of isolab's order` : `${t?.name ?? 'a task'} left isolab's order`;
  }
  // The first skipped operation that may change memory, mappings, PKRU or the flow of control: a difference after it may come from it.
  let firstSkip: { pos: number; text: string } | undefined;
  for (const rec of plan.records) {
    if (!rec.skipped) continue;
    const img = support.images[rec.image];
    const op = img.byName.get(rec.fn)?.ops[rec.index];
    if (!op || PURE_OPS.has(op.op) || (op.op === 'syscall' && PURE_SYSCALLS.has(syscallName(op.name) ?? ''))) continue;
    const info = c.ops.get(img.name, rec.fn, rec.index);
    firstSkip = { pos: rec.pos, text: `${info ? `${info.label} (${where(info.path)})` : `${rec.fn}[${rec.index}]`}, which the host did not run` };
    break;
  }
  // The first store of a value read from the stack or the frame: a load after it may read it back.
  let firstStackStore: { pos: number; text: string } | undefined;
  for (const rec of plan.records) {
    const img = support.images[rec.image];
    if (!support.stackStores.has(opKey(img.name, rec.fn, rec.index))) continue;
    const info = c.ops.get(img.name, rec.fn, rec.index);
    firstStackStore = { pos: rec.pos, text: `${info ? `${info.label} (${where(info.path)})` : `${rec.fn}[${rec.index}]`}, a value read from the stack or the signal frame, whose saved registers are the host program's own` };
    break;
  }
  /** Files a difference at position pos: schedule-dependent in a race scenario, not comparable after a skip that may explain it, else a divergence. */
  const differ = (pos: number, d: Divergence): void => {
    if (firstSkip && pos > firstSkip.pos) result.notComparable.push({ where: d.where, what: d.what, reason: `isolab ${d.isolab}, host ${d.host}; it may depend on ${firstSkip.text}` });
    else if (firstStackStore && pos > firstStackStore.pos && d.what.startsWith('load')) result.notComparable.push({ where: d.where, what: d.what, reason: `isolab ${d.isolab}, host ${d.host}; it may read back ${firstStackStore.text}` });
    else (raced ? result.scheduleDependent : result.divergences).push(d);
  };
  if (host.diverged) {
    // Where the task left isolab's order: a difference in itself, at its first record the host did not make.
    const t = plan.tasks[host.diverged.task];
    const missing = t?.records.find((r) => !r.skipped && !host.records.has(r.pos));
    const img = t ? support.images[host.diverged.image ?? t.image] : undefined;
    const fn = img?.functions[host.diverged.fn];
    const ran = fn ? c.ops.get(img!.name, fn.name, host.diverged.index) : undefined;
    const expected = missing ? c.ops.get(img!.name, missing.fn, missing.record.index) : undefined;
    differ(missing?.pos ?? Infinity, {
      where: ran ? where(ran.path) : t?.name ?? '?',
      what: ran?.label ?? (host.diverged.fn < 0 ? 'the end of its operations' : 'an operation'),
      thread: t?.name ?? '?',
      isolab: expected ? `${expected.label} (${where(expected.path)}) next` : 'no further operation',
      host: ran ? `${ran.label} next` : 'another operation, or the wait for its turn timed out',
    });
  }
  for (const rec of plan.records) {
    const t = plan.tasks[rec.task];
    const img = support.images[rec.image];
    const info = c.ops.get(img.name, rec.fn, rec.index);
    const at = info ? where(info.path) : `${rec.fn}[${rec.index}]`;
    const what = info ? info.label : `${rec.fn}[${rec.index}]`;
    const syscall = info?.syscall ?? false;
    if (rec.skipped) {
      const key = opKey(img.name, rec.fn, rec.index);
      const s = skippedAt.get(key);
      if (s) s.count++;
      else skippedAt.set(key, { where: at, what, reason: support.skipped.get(key) ?? 'not run on the host', count: 1 });
      continue;
    }
    const h = host.records.get(rec.pos);
    if (!h) {
      const why = divergedText ? `not reached in isolab's order on the host (${divergedText})` : `the host's ${t.name} did not reach it`;
      if (divergedText) result.notComparable.push({ where: at, what, reason: why });
      else differ(rec.pos, { where: at, what, thread: t.name, isolab: show(rec.record, syscall), host: 'not reached' });
      continue;
    }
    if (h.kind === 'K') {
      result.notComparable.push({ where: at, what, reason: 'the host skipped it with the operation whose signal ran its handler' });
      continue;
    }
    if (h.kind === 'P') {
      result.notComparable.push({ where: at, what, reason: "isolab's task died of a signal on this syscall's way back to user mode; the host task died before it could write the value (its exit status is compared)" });
      continue;
    }
    if (h.kind === 'X') {
      result.notComparable.push({ where: at, what, reason: refusal(h.why, h.value, rec) });
      continue;
    }
    const m = rec.record;
    let same: boolean;
    // SIGFPE, SIGILL and SIGTRAP carry the faulting instruction's address: isolab's text and the host program's differ by nature, so their si_addr is not compared.
    // A handler without SA_SIGINFO gets no siginfo: what the host could not see (known) is not compared.
    if (m.signal) same = h.kind === 'S' && h.signo === m.signal.signo && (!(h.known & 1) || h.code === m.signal.code) && (!(h.known & 2) || IP_SIGNALS.has(h.signo) || h.addr === BigInt.asUintN(64, m.signal.addr));
    else if (m.value === undefined) same = h.kind === 'N';
    else if (h.kind !== 'V') same = false;
    else {
      const mv = BigInt.asUintN(64, m.value);
      same = h.value === mv || (h.value > 0n && h.value < 1n << 31n && modelTidOfHost.get(Number(h.value)) === Number(mv));
    }
    if (same) result.agreed++;
    else if (support.stackDerived.has(opKey(img.name, rec.fn, rec.index))) {
      result.notComparable.push({ where: at, what, reason: `isolab ${show(m, syscall)}, host ${show(h, syscall)}: it reads the stack or the signal frame, whose saved registers and addresses are the host program's own` });
    } else differ(rec.pos, { where: at, what, thread: t.name, isolab: show(m, syscall), host: show(h, syscall) });
  }
  // Operations isolab's run never completed: the host must not have completed them either.
  for (const t of plan.tasks) {
    const last = t.records[t.records.length - 1];
    const h = last?.unfinished ? host.records.get(last.pos) : undefined;
    if (!last || !h) continue;
    const img = support.images[last.image];
    const info = c.ops.get(img.name, last.fn, last.index);
    differ(Infinity, { where: info ? where(info.path) : `${last.fn}[${last.index}]`, what: info?.label ?? `${last.fn}[${last.index}]`, thread: t.name, isolab: 'never completed (the task was killed in it, or still waiting when the run ended)', host: show(h, info?.syscall ?? false) });
  }
  for (const t of plan.tasks) {
    const created = t.creator ? c.ops.get(support.images[t.creator.image].name, t.creator.fn, t.creator.index) : undefined;
    const path = c.end.exit.find((x) => x.process === t.name)?.path ?? (t.top ? ['processes', c.processes.findIndex((p) => p.name === t.name), 'name'] : created?.path);
    const at = path ? where(path) : t.name;
    const hostExit = host.exits.get(t.idx);
    const modelExit = t.exit?.replace(' (core dumped)', '') ?? null;
    if (modelExit === null) continue;
    if (!t.leader && !hostExit) continue;
    if (hostExit === undefined) {
      result.notComparable.push({ where: at, what: `exit of ${t.name}`, reason: divergedText ? `not reached in isolab's order on the host (${divergedText})` : "the host's task ended without a status the host program sees (killed by another task's signal, or its parent reaped it)" });
      continue;
    }
    if (hostExit === modelExit) result.agreed++;
    else differ(Infinity, { where: at, what: `exit of ${t.name}`, thread: t.name, isolab: modelExit, host: hostExit });
  }
  // The memory and register expectations at the end of each thread's operations.
  for (const x of plan.ends) {
    const t = plan.tasks[x.task];
    const at = where(x.path);
    if (!host.ends.has(x.id)) {
      result.notComparable.push({ where: at, what: x.text, reason: divergedText ? `not reached in isolab's order on the host (${divergedText})` : `the host's ${t.name} did not reach the end of its operations` });
      continue;
    }
    const got = host.ends.get(x.id)!;
    const text = (v: bigint | null): string => (v === null ? (x.kind === 'memory' ? 'not mapped' : 'unset') : formatValue(v));
    if (got === x.model || (x.kind === 'register' && x.model === null && got === 0n)) result.agreed++;
    else differ(Infinity, { where: at, what: x.text, thread: t.name, isolab: text(x.model), host: text(got) });
  }
  for (const u of plan.unread) result.notComparable.push({ where: where(u.path), what: u.text, reason: u.reason });
  result.skipped = [...skippedAt.values()];
  return result;
}
