/**
 * What identifies a search, recorded in every `isolab explore` result (`search`), so that
 * `isolab merge` combines only shards of one search: the same scenario file (its text, by
 * digest), the same kernel options, mode, invariants and bounds, the same shard count and split
 * depth. Options that cannot change what a search explores (`--seed` and `--pct-depth` in dpor
 * mode, `--no-minimise`, the output options) are not part of it; the shard index is the one
 * thing shards differ in.
 */
import { ArgumentError } from '../errors.js';
import { hash64 } from './dpor.js';
import type { ExploreOptions } from './explore.js';

export interface SearchIdentity {
  /** The scenario's name, and a digest of its file's text (dpor.ts hash64). */
  scenario: string;
  digest: string;
  /** `--kernel` settings, in the order given. */
  kernel: string[];
  mode: ExploreOptions['mode'];
  invariants: string[];
  evictions: number;
  /** `--preempt-choices`: preemptions (and moves) the search may insert per execution. */
  preemptChoices: number;
  /** `--reclaims`: reclaim passes the search may insert per execution. */
  reclaims: number;
  /** Bounds; null for none. */
  preemptions: number | null;
  depth: number | null;
  executions: number | null;
  until: ExploreOptions['until'];
  /** Whether each search stops at its first violation (`--first`, `--witness`). */
  first: boolean;
  /** Random modes only (null in dpor mode): the seed, and PCT's depth. */
  seed: number | null;
  pctDepth: number | null;
  /** How many shards, and (dpor with more than one) the split depth. */
  shards: number;
  splitDepth: number | null;
}

/** How each field is named to a user: the option that sets it. */
export const IDENTITY_FIELDS: Record<keyof SearchIdentity, string> = {
  scenario: 'the scenario',
  digest: 'the scenario file (its text)',
  kernel: '--kernel',
  mode: '--mode',
  invariants: '--invariants',
  evictions: '--evict',
  preemptChoices: '--preempt-choices',
  reclaims: '--reclaims',
  preemptions: '--preemptions',
  depth: '--depth',
  executions: '--executions',
  until: '--until',
  first: '--first or --witness',
  seed: '--seed',
  pctDepth: '--pct-depth',
  shards: 'the shard count',
  splitDepth: '--split-depth',
};

/** The identity of the search `o` makes of the scenario file with text `text`, with the `kernel` settings, in `shards` shards. */
export function searchIdentity(scenario: string, text: string, kernel: string[], o: ExploreOptions, shards: number): SearchIdentity {
  const bound = (n: number): number | null => (Number.isFinite(n) ? n : null);
  return {
    scenario,
    digest: hash64(text),
    kernel: [...kernel],
    mode: o.mode,
    invariants: [...o.invariants].sort(),
    evictions: o.evictions,
    preemptChoices: o.preemptChoices ?? 0,
    reclaims: o.reclaims ?? 0,
    preemptions: bound(o.preemptions),
    depth: bound(o.maxDepth),
    executions: bound(o.executions),
    until: o.until,
    first: o.stopAtFirst,
    seed: o.mode === 'dpor' ? null : o.seed,
    pctDepth: o.mode === 'pct' ? o.pctDepth : null,
    shards,
    splitDepth: o.mode === 'dpor' && shards > 1 ? o.shard?.splitDepth ?? null : null,
  };
}

/** A result as far as its identity goes. */
interface Identified {
  scenario: string;
  shard?: { count: number };
  search?: SearchIdentity;
}

/**
 * The first field in which two results' searches differ, named as a user knows it, with each
 * side's value as text; null when they are shards of one search. A result that does not say
 * what search it is (written before results did) matches only another that does not either,
 * of the same scenario and shard count.
 */
export function identityDifference(a: Identified, b: Identified): { field: string; first: string; other: string } | null {
  const text = (v: unknown): string => (v === null ? 'none' : Array.isArray(v) ? (v.length ? v.join(',') : 'none') : String(v));
  if (!a.search || !b.search) {
    if (a.search || b.search) return { field: 'the search identity', first: a.search ? 'recorded' : 'not recorded', other: b.search ? 'recorded' : 'not recorded' };
    if (a.scenario !== b.scenario) return { field: IDENTITY_FIELDS.scenario, first: a.scenario, other: b.scenario };
    if ((a.shard?.count ?? 1) !== (b.shard?.count ?? 1)) return { field: IDENTITY_FIELDS.shards, first: text(a.shard?.count ?? 1), other: text(b.shard?.count ?? 1) };
    return null;
  }
  for (const key of Object.keys(IDENTITY_FIELDS) as (keyof SearchIdentity)[]) {
    if (JSON.stringify(a.search[key]) !== JSON.stringify(b.search[key])) return { field: IDENTITY_FIELDS[key], first: text(a.search[key]), other: text(b.search[key]) };
  }
  return null;
}

/** Two results to merge are not shards of one search; `field` names what differs. */
export class SearchMismatchError extends ArgumentError {
  readonly field: string;
  constructor(field: string, firstName: string, otherName: string, first: string, other: string) {
    super('merge', `${otherName} and ${firstName} are not shards of one search: ${field} differs (${other} in ${otherName}, ${first} in ${firstName})`);
    this.field = field;
  }
}
