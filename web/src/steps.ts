/**
 * A recording's events by step, indexed once at load: the events of a step, the step in words,
 * each event's kind as a number, and the steps worth jumping to with `n` / `p`.
 */
import type { Recording, SeeEvent } from '../../src/see/types.js';
import { KINDS, kindIndex, NOTABLE } from './kinds.js';

/** The events of a recording, by step. */
export class StepIndex {
  /** Per event, its kind as an index into KINDS. */
  readonly kinds: Uint8Array;
  /** The kinds present, in KINDS order. */
  readonly present: (typeof KINDS)[number][];
  /** The steps with an event of a NOTABLE kind, ascending; found at the first `n` or `p`. */
  private notable: Int32Array | null = null;

  constructor(private readonly rec: Recording) {
    const n = rec.events.length;
    this.kinds = new Uint8Array(n);
    let seen = 0;
    for (let i = 0; i < n; i++) {
      this.kinds[i] = kindIndex(rec.events[i].kind);
      seen |= 1 << this.kinds[i];
    }
    this.present = KINDS.filter((_, k) => seen & (1 << k));
  }

  /** The events of step `step` are `events[first .. end)`; step 0's are the ones before step 1's. */
  range(step: number): [first: number, end: number] {
    const views = this.rec.stepViews;
    if (step === 0) return [0, views.length > 0 ? views[0].first : this.rec.events.length];
    const v = views[step - 1];
    return [v.first, v.first + v.count];
  }

  /** The events of step `step`. */
  events(step: number): SeeEvent[] {
    const [first, end] = this.range(step);
    return this.rec.events.slice(first, end);
  }

  /** The events of step `step` in words, joined by "; ", or "no event". */
  text(step: number): string {
    const events = this.events(step);
    return events.length > 0 ? events.map((e) => e.text).join('; ') : 'no event';
  }

  /** The first notable step after `step`, or `step` when there is none. */
  nextNotable(step: number): number {
    const notable = this.notableSteps();
    const i = firstAbove(notable, step);
    return i < notable.length ? notable[i] : step;
  }

  /** The last notable step before `step`, or `step` when there is none. */
  prevNotable(step: number): number {
    const notable = this.notableSteps();
    const i = firstAbove(notable, step - 1) - 1;
    return i >= 0 ? notable[i] : step;
  }

  /** The steps with a notable event. */
  private notableSteps(): Int32Array {
    if (this.notable) return this.notable;
    const mask = NOTABLE.reduce((m, k) => m | (1 << kindIndex(k)), 0);
    const steps: number[] = [];
    for (let s = 0; s <= this.rec.steps; s++) {
      const [first, end] = this.range(s);
      let i = first;
      while (i < end && !(mask & (1 << this.kinds[i]))) i++;
      if (i < end) steps.push(s);
    }
    return (this.notable = Int32Array.from(steps));
  }
}

/** The index of the first element of ascending `xs` greater than `x`. */
function firstAbove(xs: Int32Array, x: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
