/**
 * A long computation written as a generator that yields between units of work (an execution
 * of a search), run either at once or in slices that give the event loop a turn, so a signal
 * handler or a timer can run while a search is under way on the main thread.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';

/** Runs `g` to its end without giving the event loop a turn; returns what it returns. */
export function drain<T>(g: Generator<void, T>): T {
  for (;;) {
    const r = g.next();
    if (r.done) return r.value;
  }
}

/**
 * Runs `g` to its end in slices of about `sliceMs` milliseconds (a slice ends at the first
 * yield after that long), giving the event loop one turn between slices. Does not stop `g`:
 * whoever handles an event that should end it ends the process or stops calling.
 */
export async function drainInSlices<T>(g: Generator<void, T>, sliceMs = 50): Promise<T> {
  let until = performance.now() + sliceMs;
  for (;;) {
    const r = g.next();
    if (r.done) return r.value;
    const now = performance.now();
    if (now >= until) {
      await nextTurn();
      until = performance.now() + sliceMs;
    }
  }
}
