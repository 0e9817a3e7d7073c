/**
 * Test helpers for recordings: the state at a step (keyframe plus deltas, as the page
 * computes it) and a PTE found by walking the recorded page-table entries.
 */
import type { MmView, Recording, State, StateValue } from '../../src/see/types.js';

/** The state after step `s`: the keyframe at or before it, then each delta up to it. */
export function stateAt(r: Recording, s: number): State {
  const k = Math.floor(s / r.keyframeEvery);
  const st: Record<string, StateValue> = { ...r.keyframes[k] };
  for (let i = k * r.keyframeEvery + 1; i <= s; i++) {
    for (const [key, value] of r.deltas[i - 1]) {
      if (value === null) delete st[key];
      else st[key] = value;
    }
  }
  return st;
}

/** The 64-bit entry (as a bigint) that maps `va` below root frame `pgd`, walking the recorded `pt:` keys; null when a level is missing. */
export function recordedPte(st: State, pgd: number, va: number, levels = 4): bigint | null {
  let table = pgd;
  for (let level = levels; level >= 1; level--) {
    const index = Math.floor(va / 2 ** (12 + 9 * (level - 1))) % 512;
    const v = st[`pt:${table}:${index}`];
    if (typeof v !== 'string') return null;
    const e = BigInt('0x' + v);
    if (level === 1) return e;
    if (!(e & 1n)) return null;
    table = Number((e >> 12n) & 0xffffffffffn);
  }
  return null;
}

/** The mm views of a state. */
export function mmsOf(st: State): MmView[] {
  return Object.entries(st).filter(([k]) => k.startsWith('mm:')).map(([, v]) => v as MmView);
}

/** The first step (1-based) with an event of `type` on `cpu` (any CPU when omitted). */
export function stepOf(r: Recording, type: string, cpu?: number): number {
  const e = r.events.find((x) => x.type === type && (cpu === undefined || x.cpu === cpu));
  if (!e) throw new Error(`no ${type} event`);
  return e.step;
}
