/**
 * Equality of plain records, for the row components' memo comparisons.
 */

/** Whether `a` and `b` have the same own keys with identical (===) values. */
export function sameFields<T extends object>(a: T, b: T): boolean {
  if (a === b) return true;
  const keys = Object.keys(a) as (keyof T)[];
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((k) => a[k] === b[k]);
}
