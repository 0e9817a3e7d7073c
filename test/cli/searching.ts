/**
 * For tests that signal a running isolab: when a child process is past starting up. A fixed
 * sleep is not enough on a loaded machine, where loading and compiling can take seconds.
 */
import { readFileSync } from 'node:fs';

/**
 * Waits until process `pid` has used three seconds of CPU time (Linux /proc): well past
 * loading and compiling (a few tenths of a second), so it is searching; at most 30 s.
 */
export async function searching(pid: number): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
    // utime and stime, fields 14 and 15 of stat (11 and 12 after the command name), in 1/100 s.
    if (Number(fields[11]) + Number(fields[12]) >= 300 || Date.now() - t0 > 30_000) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}
