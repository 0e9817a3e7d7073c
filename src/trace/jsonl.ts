/**
 * The JSONL trace: one JSON object per line, for grep, jq and scripts.
 *
 * Line 1 is a header:
 *   {"type":"trace_header","format":"isolab-trace","version":1,"cpus":N,
 *    "tasks":{"1":"parent",...},"scenario":"..."|null}
 * followed by "schedule":"0*97,p0>1" when the run replayed a schedule first.
 * Every other line is one event, in emission order: {"step":S, ...the event's fields}. Every
 * event of a System has `tid` (system.ts IsolabEvent): the task it names, or else the task
 * current on its CPU as it was emitted, 0 for the idle task.
 *
 * Value encoding (the event's own fields are kept as they are, except):
 * - a bigint (syscall arguments, si_addr, a page fault's address, an op's value) becomes the
 *   string "0x..." in lower-case hex, unpadded ("-0x..." if negative); JSON numbers cannot
 *   hold 64-bit values exactly.
 * - an event with `hi` and `lo` (uint32 halves of a linear address, CR2, or for `cr_write` the
 *   register's value) keeps them and also gets `"addr":"0x" + 16 hex digits`; likewise
 *   `entryHi`/`entryLo` (an `ad_set`'s paging-structure entry) also give `"entry"`. (No event
 *   has both `hi`/`lo` and a field of its own called `addr`; if one ever does, its own wins.)
 */
import { hex64 } from '../hw/addr.js';
import type { IsolabEvent } from '../system.js';
import { checkTrace, hexBig, type TraceMeta, type TraceRecord } from './record.js';

/** The trace format's name and version, shared by the JSONL header and Perfetto's otherData. */
export const TRACE_FORMAT = 'isolab-trace';
export const TRACE_VERSION = 1;

/**
 * Writes `records` as JSONL: the header line, then one line per record, each ending in "\n".
 * Throws ArgumentError if `meta` or the steps are malformed (see checkTrace). Does not filter,
 * reorder or summarise events: every record becomes exactly one line.
 */
export function toJsonl(records: readonly TraceRecord[], meta: TraceMeta): string {
  checkTrace(records, meta);
  const lines = [JSON.stringify(headerObject(meta))];
  for (const r of records) lines.push(JSON.stringify(eventObject(r), bigintToHex));
  return lines.join('\n') + '\n';
}

/** The header object (also what Perfetto's `otherData` carries). */
export function headerObject(meta: TraceMeta): Record<string, unknown> {
  const tasks: Record<string, string> = {};
  for (const [tid, name] of [...meta.tasks].sort((a, b) => a[0] - b[0])) tasks[String(tid)] = name;
  return { type: 'trace_header', format: TRACE_FORMAT, version: TRACE_VERSION, cpus: meta.cpus, tasks, scenario: meta.scenario ?? null, ...(meta.schedule !== undefined ? { schedule: meta.schedule } : {}) };
}

/** One record as a plain object: step first, then the event's fields, then the joined 64-bit values. Bigints are left for the replacer. */
function eventObject(r: TraceRecord): Record<string, unknown> {
  const o: Record<string, unknown> = { step: r.step, ...r.event };
  const e = r.event as IsolabEvent & { hi?: number; lo?: number; entryHi?: number; entryLo?: number };
  if (typeof e.hi === 'number' && typeof e.lo === 'number' && !('addr' in o)) o.addr = hex64(e.hi, e.lo);
  if (typeof e.entryHi === 'number' && typeof e.entryLo === 'number' && !('entry' in o)) o.entry = hex64(e.entryHi, e.entryLo);
  return o;
}

/** JSON.stringify replacer: bigints (at any depth) as hex strings. */
function bigintToHex(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? hexBig(value) : value;
}
