/**
 * Minimising a failing file: delta debugging by deletion, first of whole lines, then of byte
 * runs, keeping every deletion after which the file still fails the same way (`fails`). Bounded
 * by a number of tries and a deadline, so a slow case cannot stall the fuzzer; the result is
 * the smallest text found by then, never one that does not fail.
 */

export interface MinimiseLimits {
  /** At most this many calls of `fails`. */
  tries: number;
  /** Stop at this Date.now(). */
  deadline: number;
}

/** Deletes chunks of `parts` (halving the chunk size down to 1) while `fails` holds for the joined rest. */
function ddmin(parts: string[], join: (p: string[]) => string, fails: (text: string) => boolean, budget: { left: number; deadline: number }): string[] {
  let chunk = Math.max(1, Math.floor(parts.length / 2));
  while (chunk >= 1) {
    let removed = false;
    for (let at = 0; at < parts.length; ) {
      if (budget.left <= 0 || Date.now() > budget.deadline) return parts;
      const next = [...parts.slice(0, at), ...parts.slice(at + chunk)];
      budget.left--;
      if (next.length < parts.length && fails(join(next))) {
        parts = next;
        removed = true;
      } else {
        at += chunk;
      }
    }
    if (!removed) chunk = Math.floor(chunk / 2);
  }
  return parts;
}

/** The smallest variant of `text` found for which `fails` still holds (`text` itself if none). */
export function minimiseText(text: string, fails: (text: string) => boolean, limits: MinimiseLimits): string {
  const budget = { left: limits.tries, deadline: limits.deadline };
  const byLine = ddmin(text.split('\n'), (p) => p.join('\n'), fails, budget).join('\n');
  if (byLine.length > 4000) return byLine;
  return ddmin([...byLine], (p) => p.join(''), fails, budget).join('');
}
