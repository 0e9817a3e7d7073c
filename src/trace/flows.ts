/**
 * IPI arrows for the Perfetto writer: from the `ipi` event on the sender to where the
 * receiver handled it.
 *
 * The stream has no "IPI handled" event. The receiver takes a queued flush IPI at its next
 * instruction boundary (sim/step.ts cpu_step: sysvec_call_function, not while a user access's
 * page walk is pending), runs flush_tlb_func, which emits `flush_tlb_func` only when it flushed (after the
 * CR3 write or INVLPGs it did), or `switch_mm` when a lazy CPU left the mm, and nothing at all
 * when there was nothing to do. So the arrow ends on the first such event on the receiver
 * after the IPI that no earlier IPI claimed, looking past the events of the instruction in
 * flight (TLB probes, walks, A/D updates, its #PF or completion) but not past anything else
 * (which means the IPI was already handled, silently); otherwise it ends at the IPI's own step.
 * XXX: a heuristic. An IPI handled silently, followed by user instructions and a second IPI
 * that does flush, gives the first IPI's arrow the second one's handler.
 */
import type { IsolabEvent } from '../system.js';
import { cpuOf, type TraceRecord } from './record.js';

/** One IPI arrow. */
export interface IpiFlow {
  /** Flow id, from 1, in the order the IPIs were sent. */
  id: number;
  from: number;
  to: number;
  /** Index and step of the `ipi` record. */
  sendSeq: number;
  sendStep: number;
  /** Index of the receiver's record the arrow ends on, or -1 if none was found. */
  recvSeq: number;
  /** Step the arrow ends at: that record's, or the IPI's own. */
  recvStep: number;
}

/** Events the IPI handler emits on its way to the event that shows it ran. */
const HANDLER_STEPS: ReadonlySet<IsolabEvent['type']> = new Set(['cr_write', 'tlb_flush', 'debug']);
/** Events that show the handler ran. */
const HANDLER_DONE: ReadonlySet<IsolabEvent['type']> = new Set(['flush_tlb_func', 'switch_mm']);
/** Events of a user instruction still in flight when the IPI arrived (the handler waits for its boundary). */
const IN_FLIGHT: ReadonlySet<IsolabEvent['type']> = new Set(['tlb_hit', 'tlb_miss', 'walk', 'tlb_fill', 'ad_set', 'transient_read']);
/** Events that end an instruction: the boundary where the IPI is taken. */
const BOUNDARY: ReadonlySet<IsolabEvent['type']> = new Set(['op', 'fault']);

/** One arrow per `ipi` record, in order (see the file comment for where each ends). Does not check the events' other fields. */
export function ipiFlows(records: readonly TraceRecord[]): IpiFlow[] {
  const byCpu = indexByCpu(records);
  const claimed = new Set<number>();
  const flows: IpiFlow[] = [];
  records.forEach((r, i) => {
    const e = r.event;
    if (e.type !== 'ipi') return;
    const j = handlerRecord(records, byCpu.get(e.to) ?? [], i, claimed);
    if (j >= 0) claimed.add(j);
    flows.push({ id: flows.length + 1, from: e.from, to: e.to, sendSeq: i, sendStep: r.step, recvSeq: j, recvStep: j >= 0 ? records[j].step : r.step });
  });
  return flows;
}

/** Record indices by CPU, ascending. */
function indexByCpu(records: readonly TraceRecord[]): Map<number, number[]> {
  const m = new Map<number, number[]>();
  records.forEach((r, i) => {
    const c = cpuOf(r.event);
    let list = m.get(c);
    if (!list) m.set(c, (list = []));
    list.push(i);
  });
  return m;
}

/** The receiver's record (index into `records`) that shows the IPI sent at `ipiSeq` was handled, or -1. */
function handlerRecord(records: readonly TraceRecord[], onReceiver: readonly number[], ipiSeq: number, claimed: ReadonlySet<number>): number {
  let atBoundary = false;
  for (let k = firstAfter(onReceiver, ipiSeq); k < onReceiver.length; k++) {
    const j = onReceiver[k];
    const type = records[j].event.type;
    if (HANDLER_DONE.has(type)) {
      if (!claimed.has(j)) return j;
      atBoundary = true;
    } else if (BOUNDARY.has(type) && !atBoundary) {
      atBoundary = true;
    } else if (!HANDLER_STEPS.has(type) && !(IN_FLIGHT.has(type) && !atBoundary)) {
      return -1;
    }
  }
  return -1;
}

/** The position of the first element of the ascending `list` greater than `x`. */
function firstAfter(list: readonly number[], x: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
