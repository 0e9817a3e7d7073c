/**
 * The Perfetto trace: Chrome's Trace Event Format (the JSON object form), which opens in
 * ui.perfetto.dev and chrome://tracing.
 *
 * Layout: one process (pid 1, "isolab machine"; pid 0 is the kernel's swapper to Perfetto) with one thread track per CPU (tid = CPU
 * number, "CPU n") and, only if some event names CPU -1, a "kernel" track (tid = cpus).
 * Time: `ts` is in microseconds and one model step is one microsecond (ts = step).
 *
 * - Syscalls: complete slices ("X", dur >= 1) on the CPU they were entered on, one per
 *   `syscall_enter`; slices.ts says where each ends.
 * - Page faults, signals, switch_mm, control-register writes, TLB flushes, flush_tlb_func,
 *   flush_tlb_mm_range, fork, exec, exit, context switches, page copies and debug findings:
 *   thread-scoped instants ("i", s "t") on their CPU's track, fields in `args` (with the
 *   event's task, `tid` and `task`, for all but fork, context_switch and debug, which name
 *   theirs); so is any event type this file does not know yet, under its type name.
 * - IPIs: an instant on the sender plus a flow arrow ("s" there, "f" with bp "e" on the
 *   receiver); flows.ts says where the arrow lands.
 * - The per-access hardware events (TLB hits, misses and fills, walks, A/D updates, user ops,
 *   WRPKRU, exceptions, transient reads, user_end): no instants, but cumulative counters ("C"),
 *   one track per CPU and kind, named "CPU n <kind>", with at most one sample per CPU and kind
 *   per step, so the file grows with steps, not with accesses.
 */
import { hex64 } from '../hw/addr.js';
import { PF_BIT_NAMES, PF_I, PF_SS, PF_W, pfErrorBitNames } from '../hw/rights.js';
import { ERRNO_NAMES, SIGNAL_NAMES } from '../kernel/uapi.js';
import type { IsolabEvent } from '../system.js';
import { ipiFlows, type IpiFlow } from './flows.js';
import { headerObject } from './jsonl.js';
import { checkTrace, cpuOf, hexBig, taskName, type TraceMeta, type TraceRecord } from './record.js';
import { syscallSlices, type SyscallSlice } from './slices.js';

/** The one process every track belongs to. */
export const PERFETTO_PID = 1;
export const PERFETTO_PROCESS_NAME = 'isolab machine';

/** One Trace Event Format event. Every one has name, ph, ts, pid and tid. */
export interface TraceEvent {
  name: string;
  ph: 'M' | 'X' | 'i' | 's' | 'f' | 'C';
  ts: number;
  pid: number;
  tid: number;
  cat?: string;
  dur?: number;
  /** Instant scope: "t" (thread). */
  s?: 't';
  /** Flow id ("s"/"f"). */
  id?: number;
  /** Flow binding point: "e" binds the end to the enclosing slice. */
  bp?: 'e';
  args?: Record<string, unknown>;
}

/** The JSON object form of the Trace Event Format. */
export interface PerfettoTrace {
  traceEvents: TraceEvent[];
  displayTimeUnit: 'ns';
  otherData: Record<string, unknown>;
}

/** The hardware events counted rather than drawn, and the name of each counter. */
const COUNTERS: Partial<Record<IsolabEvent['type'], string>> = {
  tlb_hit: 'TLB hits',
  tlb_miss: 'TLB misses',
  walk: 'walks',
  tlb_fill: 'TLB fills',
  ad_set: 'A/D sets',
  op: 'user ops',
  pkru_write: 'PKRU writes',
  fault: 'exceptions',
  transient_read: 'transient reads',
  user_end: 'user ends',
};

/** An output event with its sort key, compared in field order. */
interface Keyed {
  ts: number;
  /** 0 metadata, 1 slices, 2 the rest. */
  rank: number;
  /** Record order (for a slice: minus its duration, so that of two equal starts the longer comes first). */
  seq: number;
  /** Among events made from one record: the instant, then its flow start or end, then a counter sample (for a slice: record order). */
  sub: number;
  ev: TraceEvent;
}

/**
 * Builds the Trace Event Format object for `records` (see the file comment for the layout).
 * Events come out sorted by ts: metadata, then at each ts the slices starting there (longer
 * first, so equal starts nest), then instants, flow ends and counter samples in record order,
 * each flow end just after the instant it binds to. Bigints become "0x..." strings, so the
 * result holds none. Throws ArgumentError if `meta` or the steps are malformed, or an event
 * names a CPU the machine does not have. Does not serialise (JSON.stringify the result).
 */
export function toPerfetto(records: readonly TraceRecord[], meta: TraceMeta): PerfettoTrace {
  checkTrace(records, meta);
  const out: Keyed[] = [];
  const kernelTrack = records.some((r) => cpuOf(r.event) === -1);
  for (const ev of trackMetadata(meta.cpus, kernelTrack)) out.push({ ts: 0, rank: 0, seq: out.length, sub: 0, ev });
  for (const s of syscallSlices(records)) out.push({ ts: s.start, rank: 1, seq: s.start - s.end, sub: s.seq, ev: sliceEvent(s, meta) });
  records.forEach((r, i) => {
    const ev = instantEvent(r, meta);
    if (ev) out.push({ ts: r.step, rank: 2, seq: i, sub: 0, ev });
  });
  for (const f of ipiFlows(records)) out.push(...flowEvents(f, meta.cpus));
  out.push(...counterEvents(records, meta.cpus));
  out.sort((a, b) => a.ts - b.ts || a.rank - b.rank || a.seq - b.seq || a.sub - b.sub);
  return {
    traceEvents: out.map((k) => k.ev),
    displayTimeUnit: 'ns',
    otherData: otherData(meta),
  };
}

/** The JSONL header's facts (format, version, cpus, tasks, scenario) and the time base. */
function otherData(meta: TraceMeta): Record<string, unknown> {
  const { type: _type, ...facts } = headerObject(meta);
  return { ...facts, time: 'ts = model step (1 step = 1 us)' };
}

/** The track (tid) of events on `cpu`: the CPU number, or `cpus` (the kernel track) for -1. */
export function trackOf(cpu: number, cpus: number): number {
  return cpu >= 0 ? cpu : cpus;
}

/** process_name, and thread_name and thread_sort_index for each CPU track (and the kernel track if used). */
function trackMetadata(cpus: number, kernelTrack: boolean): TraceEvent[] {
  const m = (name: string, tid: number, args: Record<string, unknown>): TraceEvent => ({ name, ph: 'M', ts: 0, pid: PERFETTO_PID, tid, args });
  const evs = [m('process_name', 0, { name: PERFETTO_PROCESS_NAME })];
  const tracks: [number, string][] = Array.from({ length: cpus }, (_, c) => [c, `CPU ${c}`]);
  if (kernelTrack) tracks.push([cpus, 'kernel']);
  for (const [tid, name] of tracks) evs.push(m('thread_name', tid, { name }), m('thread_sort_index', tid, { sort_index: tid }));
  return evs;
}

/** A syscall as an "X" slice named after the syscall; args hex, ret decimal with its errno name. */
function sliceEvent(s: SyscallSlice, meta: TraceMeta): TraceEvent {
  const args: Record<string, unknown> = { tid: s.tid, task: taskName(meta, s.tid), nr: s.nr, args: s.args.map(hexBig), ended: s.ended, end_step: s.endStep };
  if (s.ret !== undefined) {
    args.ret = s.ret;
    if (s.ret < 0) args.errno = ERRNO_NAMES[-s.ret] ?? `errno ${-s.ret}`;
  }
  if (s.leftCpu !== undefined) args.left_cpu_at = s.leftCpu;
  return { name: s.name, cat: 'syscall', ph: 'X', ts: s.start, dur: s.end - s.start, pid: PERFETTO_PID, tid: trackOf(s.cpu, meta.cpus), args };
}

/** The instant for a record, or null for events drawn otherwise (syscalls, counted hardware events). */
function instantEvent(r: TraceRecord, meta: TraceMeta): TraceEvent | null {
  const type = r.event.type;
  if (type === 'syscall_enter' || type === 'syscall' || COUNTERS[type] !== undefined) return null;
  const d = describe(r.event, meta);
  return { name: d.name, cat: d.cat, ph: 'i', s: 't', ts: r.step, pid: PERFETTO_PID, tid: trackOf(cpuOf(r.event), meta.cpus), args: d.args };
}

/** Name, category and args of an event drawn as an instant. An event type not listed here is drawn under its type name with its fields. */
function describe(e: IsolabEvent, meta: TraceMeta): { name: string; cat: string; args: Record<string, unknown> } {
  const task = (tid: number) => ({ tid, task: taskName(meta, tid) });
  switch (e.type) {
    case 'page_fault':
      return { name: `#PF ${pfAccess(e.errorCode)}`, cat: 'fault', args: { ...task(e.tid), addr: hexBig(e.addr), errorCode: '0x' + e.errorCode.toString(16), errorBits: pfBits(e.errorCode), user: e.user, outcome: e.outcome } };
    case 'signal':
      return { name: `${SIGNAL_NAMES[e.signo] ?? `signal ${e.signo}`} ${e.action}`, cat: 'signal', args: { ...task(e.tid), signo: e.signo, code: e.code, addr: hexBig(e.addr), action: e.action } };
    case 'switch_mm':
      return { name: 'switch_mm', cat: 'tlb', args: { ...task(e.tid), from: e.from, to: e.to, asid: e.asid, flush: e.flush, how: e.how } };
    case 'cr_write': {
      const args: Record<string, unknown> = { ...task(e.tid), reg: e.reg, value: hex64(e.hi, e.lo) };
      if (e.noflush !== undefined) args.noflush = e.noflush;
      if (e.reg === 'cr3') args.pcid = e.lo & 0xfff;
      return { name: `${e.reg.toUpperCase()} write`, cat: 'cpu', args };
    }
    case 'tlb_flush': {
      const args: Record<string, unknown> = { ...task(e.tid), cause: e.cause, pcid: e.pcid, global: e.global };
      if (e.hi !== undefined && e.lo !== undefined) args.addr = hex64(e.hi, e.lo);
      return { name: `TLB flush (${e.cause})`, cat: 'tlb', args };
    }
    case 'flush_tlb_func':
      return { name: 'flush_tlb_func', cat: 'tlb', args: { ...task(e.tid), mm: e.mm, pages: e.pages < 0 ? 'full' : e.pages } };
    case 'tlb_shootdown':
      return { name: 'flush_tlb_mm_range', cat: 'tlb', args: { ...task(e.tid), mm: e.mm, start: '0x' + e.start.toString(16), end: e.end === -1 ? 'TLB_FLUSH_ALL' : '0x' + e.end.toString(16), freedTables: e.freedTables, gen: e.gen } };
    case 'ipi':
      return { name: `IPI to CPU ${e.to}`, cat: 'ipi', args: { ...task(e.tid), from: e.from, to: e.to } };
    case 'fork':
      return { name: 'fork', cat: 'task', args: { parent: e.parent, parent_task: taskName(meta, e.parent), child: e.child, child_task: taskName(meta, e.child), flags: '0x' + e.flags.toString(16), ptes: e.ptes, wrprotected: e.wrprotected } };
    case 'exec':
      return { name: `exec ${e.image}`, cat: 'task', args: { ...task(e.tid), image: e.image } };
    case 'exit':
      return { name: 'exit', cat: 'task', args: { ...task(e.tid), status: e.status } };
    case 'context_switch':
      return { name: 'context_switch', cat: 'sched', args: { from: e.from, from_task: taskName(meta, e.from), to: e.to, to_task: taskName(meta, e.to) } };
    case 'page_copy':
      return { name: e.src < 0 ? 'page zero-fill' : 'page copy', cat: 'fault', args: { ...task(e.tid), src: e.src, dst: e.dst } };
    case 'debug':
      return { name: `debug: ${e.check}`, cat: 'debug', args: { check: e.check, message: e.message } };
    default:
      return { name: (e as IsolabEvent).type, cat: 'other', args: plainFields(e as IsolabEvent) };
  }
}

/** An event's fields except `type`, bigints as hex strings (for types without their own description). */
function plainFields(e: IsolabEvent): Record<string, unknown> {
  const args: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(e)) if (k !== 'type') args[k] = typeof v === 'bigint' ? hexBig(v) : v;
  return args;
}

/** What a #PF error code says was accessed: a shadow-stack access, a fetch, a write or a read. */
function pfAccess(ec: number): string {
  if (ec & PF_SS) return 'shadow-stack';
  if (ec & PF_I) return 'fetch';
  return ec & PF_W ? 'write' : 'read';
}

/** The error code's bits by SDM name joined with "|" ("P|W|U"); "none" for 0; other bits as hex. */
export function pfBits(ec: number): string {
  const names = pfErrorBitNames(ec);
  const rest = PF_BIT_NAMES.reduce((x, [bit]) => x & ~bit, ec);
  if (rest) names.push('0x' + rest.toString(16));
  return names.length > 0 ? names.join('|') : 'none';
}

/** The IPI's flow: "s" just after the sender's instant, "f" (bp "e") just after the receiver's handler event, or at the IPI's step. */
function flowEvents(f: IpiFlow, cpus: number): Keyed[] {
  const common = { name: 'IPI', cat: 'ipi', pid: PERFETTO_PID, id: f.id };
  const start: TraceEvent = { ...common, ph: 's', ts: f.sendStep, tid: trackOf(f.from, cpus) };
  const finish: TraceEvent = { ...common, ph: 'f', bp: 'e', ts: f.recvStep, tid: trackOf(f.to, cpus) };
  const recvSeq = f.recvSeq >= 0 ? f.recvSeq : f.sendSeq;
  return [
    { ts: f.sendStep, rank: 2, seq: f.sendSeq, sub: 1, ev: start },
    { ts: f.recvStep, rank: 2, seq: recvSeq, sub: 2, ev: finish },
  ];
}

/**
 * Cumulative per-CPU counts of the counted hardware events: after each step in which a CPU's
 * count of a kind changed, one "C" sample with the running total.
 */
function counterEvents(records: readonly TraceRecord[], cpus: number): Keyed[] {
  const out: Keyed[] = [];
  const totals = new Map<string, number>();
  let dirty = new Map<string, { cpu: number; label: string; seq: number }>();
  let step = -1;
  const flush = (): void => {
    for (const [key, d] of dirty) {
      const tid = trackOf(d.cpu, cpus);
      const name = `${d.cpu >= 0 ? `CPU ${d.cpu}` : 'kernel'} ${d.label}`;
      out.push({ ts: step, rank: 2, seq: d.seq, sub: 3, ev: { name, cat: 'hw', ph: 'C', ts: step, pid: PERFETTO_PID, tid, args: { count: totals.get(key)! } } });
    }
    dirty = new Map();
  };
  records.forEach((r, i) => {
    const label = COUNTERS[r.event.type];
    if (!label) return;
    if (r.step !== step) {
      flush();
      step = r.step;
    }
    const cpu = cpuOf(r.event);
    const key = `${cpu} ${label}`;
    totals.set(key, (totals.get(key) ?? 0) + 1);
    dirty.set(key, { cpu, label, seq: i });
  });
  flush();
  return out;
}
