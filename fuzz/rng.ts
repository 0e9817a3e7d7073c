/**
 * A seeded random stream for the fuzzers (DESIGN.md rule 3 holds for them too: no Math.random,
 * so a seed and a case number give the same case on every machine).
 */

/** mulberry32, as System's random schedule: a 32-bit state, every seed its own stream. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** The next 32-bit number. */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** An integer from 0 to n - 1 (n >= 1). */
  below(n: number): number {
    return this.next() % n;
  }

  /** One item of a non-empty list. */
  pick<T>(xs: readonly T[]): T {
    return xs[this.below(xs.length)];
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() / 0x100000000 < p;
  }
}

/** The seed of case `index` of a run seeded `seed`: cases are independent, so any one replays alone. */
export function caseSeed(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}
