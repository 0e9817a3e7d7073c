/**
 * What the trace writers read: the event stream (DESIGN.md rule 7) as recorded, each event
 * with the System's step counter at the moment it was emitted, plus what the stream itself
 * does not say (how many CPUs, what to call each task).
 */
import { ArgumentError } from '../errors.js';
import type { IsolabEvent } from '../system.js';

/** One recorded event. `step` is `System.now` when the event was emitted; it never decreases. */
export interface TraceRecord {
  step: number;
  event: IsolabEvent;
}

/** What a trace says about the run besides its events. */
export interface TraceMeta {
  /** CPUs of the machine (the Perfetto writer makes one track for each). */
  cpus: number;
  /** Display names by tid, e.g. 1 -> "parent". Tasks not named here are shown by tid. */
  tasks: Map<number, string>;
  /** The scenario the trace came from, if any (a file name or a title). */
  scenario?: string;
  /** The schedule the run replayed first (`isolab trace --schedule`), as the explorer writes it. */
  schedule?: string;
}

/**
 * Checks that `meta` and `records` can be written: a positive integer CPU count, steps that are
 * non-negative integers and never decrease, events that name a CPU the machine has (or -1).
 * Throws ArgumentError naming the first problem. Does not look at the events' other fields.
 */
export function checkTrace(records: readonly TraceRecord[], meta: TraceMeta): void {
  if (meta === null || typeof meta !== 'object') throw new ArgumentError('meta', 'expected { cpus, tasks, scenario? }');
  if (!Number.isSafeInteger(meta.cpus) || meta.cpus < 1) throw new ArgumentError('meta.cpus', `expected a positive integer, got ${JSON.stringify(meta.cpus)}`);
  if (!(meta.tasks instanceof Map)) throw new ArgumentError('meta.tasks', 'expected a Map from tid to name');
  if (!Array.isArray(records)) throw new ArgumentError('records', 'expected an array of { step, event }');
  let last = 0;
  records.forEach((r, i) => {
    if (!Number.isSafeInteger(r.step) || r.step < 0) throw new ArgumentError(`records[${i}].step`, `expected a non-negative integer, got ${JSON.stringify(r.step)}`);
    if (r.step < last) throw new ArgumentError(`records[${i}].step`, `steps must not decrease (${r.step} after ${last})`);
    last = r.step;
    const c = cpuOf(r.event);
    if (!Number.isInteger(c) || c < -1 || c >= meta.cpus) {
      throw new ArgumentError(`records[${i}].event`, `${r.event.type} names CPU ${c}, but the machine has CPUs 0 to ${meta.cpus - 1}`);
    }
  });
}

/** The CPU an event happened on: the sender for an IPI, -1 for machine-wide debug findings. */
export function cpuOf(e: IsolabEvent): number {
  return e.type === 'ipi' ? e.from : e.cpu;
}

/** A bigint as `0x` and lower-case hex digits (`-0x...` if negative); no padding. */
export function hexBig(x: bigint): string {
  return x < 0n ? '-0x' + (-x).toString(16) : '0x' + x.toString(16);
}

/** The task's display name: its name from `meta.tasks`, else "tid N"; tid 0 is the idle task. */
export function taskName(meta: TraceMeta, tid: number): string {
  if (tid === 0) return 'idle';
  return meta.tasks.get(tid) ?? `tid ${tid}`;
}
