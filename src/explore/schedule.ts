/**
 * Schedules as text: the items of an execution, one per step, run-length encoded the way a
 * scenario's `schedule.steps` is written: `0*120,1*17,0`. A TLB eviction is `e<cpu>.<slot>`;
 * preempting the task on a CPU is `p<cpu>`, and preempting it and moving it to CPU d `p<cpu>>d`;
 * waking kswapd on a CPU for a reclaim pass is `r<cpu>`.
 * `isolab explore` prints counterexamples in this form; `isolab replay --schedule` and
 * `isolab run --schedule` read it.
 */
import { ArgumentError } from '../errors.js';
import { evictionOf, evictionStep, isPreemption, isReclaim, preemptionOf, preemptionStep, reclaimOf, reclaimStep } from '../system.js';

/** The items as text. */
export function formatSchedule(items: number[]): string {
  const out: string[] = [];
  for (let i = 0; i < items.length; ) {
    let n = 1;
    while (i + n < items.length && items[i + n] === items[i]) n++;
    const it = items[i];
    const name = it >= 0 ? String(it) : isReclaim(it) ? `r${reclaimOf(it).cpu}` : isPreemption(it) ? preemptionName(it) : `e${evictionOf(it).cpu}.${evictionOf(it).slot}`;
    out.push(n > 1 ? `${name}*${n}` : name);
    i += n;
  }
  return out.join(',');
}

/** A preemption item as text: `p0` (preempted in place) or `p0>1` (moved to CPU 1). */
function preemptionName(item: number): string {
  const { cpu, to } = preemptionOf(item);
  return to === cpu ? `p${cpu}` : `p${cpu}>${to}`;
}

/** Parses a schedule for a machine with `cpus` CPUs; throws ArgumentError naming the bad item. */
export function parseSchedule(text: string, cpus: number): number[] {
  const items: number[] = [];
  const trimmed = text.trim();
  if (trimmed === '') return items;
  for (const [i, raw] of trimmed.split(',').entries()) {
    const part = raw.trim();
    const m = /^(?:(\d+)|e(\d+)\.(\d+)|p(\d+)(?:>(\d+))?|r(\d+))(?:\*(\d+))?$/.exec(part);
    if (!m) throw new ArgumentError('schedule', `item ${i + 1} ("${part}"): expected a CPU number, e<cpu>.<slot>, p<cpu>, p<cpu>><cpu> or r<cpu>, followed or not by *<count>`);
    const cpu = Number(m[1] ?? m[2] ?? m[4] ?? m[6]);
    const to = m[5] !== undefined ? Number(m[5]) : cpu;
    // Slots above this would alias other kinds of item (system.ts evictionStep); no TLB has that many.
    if (m[3] !== undefined && Number(m[3]) >= 65536) throw new ArgumentError('schedule', `item ${i + 1} ("${part}"): a TLB slot is below 65536`);
    if (cpu >= cpus || to >= cpus) throw new ArgumentError('schedule', `item ${i + 1} ("${part}"): the machine has CPUs 0 to ${cpus - 1}`);
    const item = m[1] !== undefined ? cpu : m[2] !== undefined ? evictionStep(cpu, Number(m[3])) : m[6] !== undefined ? reclaimStep(cpu) : preemptionStep(cpu, to);
    const count = m[7] !== undefined ? Number(m[7]) : 1;
    if (count < 1 || count > 10_000_000) throw new ArgumentError('schedule', `item ${i + 1} ("${part}"): the count must be from 1 to 10000000`);
    for (let n = 0; n < count; n++) items.push(item);
  }
  return items;
}
