/**
 * The state of a recording at one step, rebuilt from its keyframes and deltas (types.ts). One
 * walker per recording holds the current state and moves it: forward by applying deltas in
 * place, backward (or far forward) by going back to the nearest keyframe. The views read its
 * maps, which change in place; `tablesVersion` says when the page tables changed.
 */
import type { CpuView, MmView, Recording, StateValue, TaskView, TlbView } from '../../src/see/types.js';

/** A recording's state at a movable step (see the file comment). */
export class StateWalker {
  /** The step the state is at (-1 before the first seek). */
  step = -1;
  /** Every key's value. */
  readonly values = new Map<string, StateValue>();
  /** The same values, by kind: `cpu:N`, `tlb:N:SLOT` (per CPU, by slot), `task:TID`, `mm:ID`. */
  readonly cpus = new Map<number, CpuView>();
  readonly tlbs = new Map<number, Map<number, TlbView>>();
  readonly tasks = new Map<number, TaskView>();
  readonly mms = new Map<number, MmView>();
  /** `pt:PFN:INDEX`: page-table frame to (entry index to 16 hex digits). */
  readonly tables = new Map<number, Map<number, string>>();
  /** Bumped at every change of `tables`, so views built from them know when to rebuild. */
  tablesVersion = 0;
  /** The keys the current step changed, each with its value before the step (undefined: absent). */
  changed = new Map<string, StateValue | undefined>();

  constructor(private readonly rec: Recording) {}

  /** Moves the state to `step` (0 .. rec.steps), keeping the changes step `step` made in `changed`. */
  seek(step: number): void {
    if (step === this.step) return;
    const every = this.rec.keyframeEvery;
    // The state after step - 1 is needed to know what step `step` changed.
    const base = step === 0 ? 0 : Math.min(Math.floor((step - 1) / every), this.rec.keyframes.length - 1) * every;
    if (!(this.step >= base && this.step < step)) this.load(base / every);
    this.changed = new Map();
    while (this.step < step) this.apply(this.step + 1);
  }

  /**
   * Loads keyframe `k`, the state after step k * keyframeEvery, by changing only the keys whose
   * values differ from it, so what did not change keeps its identity (and its views theirs).
   */
  private load(k: number): void {
    const frame = this.rec.keyframes[k];
    for (const key of this.values.keys()) if (!Object.hasOwn(frame, key)) this.put(key, null);
    for (const key in frame) this.put(key, frame[key]);
    this.step = k * this.rec.keyframeEvery;
  }

  /** Applies the deltas of step `step` (this.step + 1), recording them in `changed`. */
  private apply(step: number): void {
    const changed = new Map<string, StateValue | undefined>();
    for (const [key, value] of this.rec.deltas[step - 1]) {
      if (!changed.has(key)) changed.set(key, this.values.get(key));
      this.put(key, value);
    }
    this.changed = changed;
    this.step = step;
  }

  /** Sets key `key` to `value` (null: removes it) in `values` and its kind's map. */
  private put(key: string, value: StateValue | null): void {
    if ((this.values.get(key) ?? null) === value) return;
    if (value === null) this.values.delete(key);
    else this.values.set(key, value);
    const [kind, id, b] = parseKey(key);
    switch (kind) {
      case 'cpu':
        setOrDelete(this.cpus, id, value as CpuView | null);
        break;
      case 'tlb':
        setOrDelete(inner(this.tlbs, id), b, value as TlbView | null);
        break;
      case 'task':
        setOrDelete(this.tasks, id, value as TaskView | null);
        break;
      case 'mm':
        setOrDelete(this.mms, id, value as MmView | null);
        break;
      case 'pt':
        setOrDelete(inner(this.tables, id), b, value as string | null);
        this.tablesVersion++;
        break;
    }
  }
}

/** Keys parsed so far: a run has a few thousand distinct keys and sets them over and over. */
const parsed = new Map<string, [kind: string, a: number, b: number]>();

/** A key's kind and numbers: `tlb:1:7` is ['tlb', 1, 7]. */
function parseKey(key: string): [kind: string, a: number, b: number] {
  let p = parsed.get(key);
  if (!p) {
    const [kind, a, b] = key.split(':');
    parsed.set(key, (p = [kind, Number(a), Number(b)]));
  }
  return p;
}

/** The inner map of `outer` at `id`, made empty when missing. */
function inner<V>(outer: Map<number, Map<number, V>>, id: number): Map<number, V> {
  let m = outer.get(id);
  if (!m) outer.set(id, (m = new Map()));
  return m;
}

/** Sets `map[id]` to `value`, or deletes it when `value` is null. */
function setOrDelete<V>(map: Map<number, V>, id: number, value: V | null): void {
  if (value === null) map.delete(id);
  else map.set(id, value);
}
