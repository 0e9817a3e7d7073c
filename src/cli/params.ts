/** `--param name=value` (run, measure, compare) and `--set name=value` (sweep): a scenario's params set from the command line. */
import { ArgumentError } from '../errors.js';

/** Parses `name=value` items (integers); the scenario's compiler checks that each names a param it declares. */
export function parseParams(items: string[], option = '--param'): Record<string, number> {
  const out: Record<string, number> = {};
  for (const item of items) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(-?[\d_]+)$/.exec(item.trim());
    if (!m) throw new ArgumentError(option, `"${item}": expected name=integer`);
    const v = Number(m[2].replace(/_/g, ''));
    if (!Number.isSafeInteger(v)) throw new ArgumentError(option, `"${item}": ${m[2]} is not an integer a double holds exactly`);
    if (m[1] in out) throw new ArgumentError(option, `${m[1]} is set twice`);
    out[m[1]] = v;
  }
  return out;
}
