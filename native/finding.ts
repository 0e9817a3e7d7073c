/**
 * `npm run finding:madvfree -- [--seconds N] [--mode free|nofree|rewrite] [--parent cow|unmap]
 * [--pages P] [--json]`: runs the MADV_FREE finding's native reproducer (native/madvfree.c) on
 * this machine's kernel and says whether it lost data. Mode `free` is the race; `nofree` (no
 * MADV_FREE) and `rewrite` (the child stores its values back before reclaim) are the controls,
 * which lose nothing on a kernel with the race. docs/findings.md tells the story.
 */
import { Command, InvalidArgumentError } from 'commander';
import { buildMadvfree, oracleUnavailableReason, runMadvfree, type MadvfreeResult } from './build.js';

/** A positive number from the command line. */
function positive(what: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${what} must be a positive number, not '${v}'`);
    return n;
  };
}

/** One of `choices`. */
function oneOf<T extends string>(choices: readonly T[]): (v: string) => T {
  return (v) => {
    if (!(choices as readonly string[]).includes(v)) throw new InvalidArgumentError(`expected one of ${choices.join(', ')}, not '${v}'`);
    return v as T;
  };
}

/** The run's result in words. */
function describeMadvfree(r: MadvfreeResult): string {
  const lines = [
    `mode ${r.mode}, parent ${r.parent === 'cow' ? 'breaks COW' : 'unmaps'}, ${r.pages} pages, ${r.seconds.toFixed(1)} s, CPUs ${r.cpus[0]} and ${r.cpus[1]}`,
    `${r.rounds} forks; the writer crossed fork inside the region in ${r.crossings}`,
    r.smaps ? `${r.windowHits} pages held the writer's value under a clean PTE in the child (window hits, from smaps)` : 'window hits not observed (no /proc/self/smaps)',
    r.lostPages > 0
      ? `LOST: ${r.lostPages} pages the child had read lost the writer's value to MADV_PAGEOUT, in ${r.lostRounds} forks: this kernel has the race`
      : 'nothing lost',
  ];
  if (!r.pageout) lines.push('MADV_PAGEOUT failed (a kernel before 5.4?): the run stopped at the first fork');
  return lines.join('\n');
}

async function main(): Promise<void> {
  const program = new Command('finding:madvfree')
    .description("Runs the MADV_FREE lost-write race natively on this machine's kernel")
    .option('--seconds <n>', 'how long to run', positive('--seconds'), 60)
    .option('--mode <mode>', 'free (the race), nofree or rewrite (the controls)', oneOf(['free', 'nofree', 'rewrite'] as const), 'free')
    .option('--parent <act>', 'what the parent does after the child read: cow (a store to each page) or unmap', oneOf(['cow', 'unmap'] as const), 'cow')
    .option('--pages <n>', 'pages in the region', positive('--pages'), 512)
    .option('--json', 'print the result as JSON')
    .showHelpAfterError();
  program.parse(process.argv);
  const o = program.opts<{ seconds: number; mode: MadvfreeResult['mode']; parent: MadvfreeResult['parent']; pages: number; json?: boolean }>();
  const why = oracleUnavailableReason();
  const binary = why ? null : await buildMadvfree();
  if (!binary) {
    process.stderr.write(`finding:madvfree: cannot run natively here: ${why ?? 'no C compiler'}\n`);
    process.exitCode = 2;
    return;
  }
  const r = await runMadvfree(binary, { seconds: o.seconds, mode: o.mode, parent: o.parent, pages: Math.floor(o.pages) });
  process.stdout.write(o.json ? `${JSON.stringify(r)}\n` : `${describeMadvfree(r)}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`finding:madvfree: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
