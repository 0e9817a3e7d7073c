/**
 * The differential test's driver: generated operation sequences run on the machine's real Linux
 * kernel through native/oracle.c and on isolab; the result lines must be identical, and isolab's
 * debug checks (page counts, leaks) must stay silent. Each family of sequences has its own test
 * file, so that each stays well inside the test runner's per-file time limit:
 *  - differential.test.ts: mmap, munmap, mprotect with good and bad arguments, loads and stores,
 *    fork with writes on both sides, wait, execve;
 *  - differential-files.test.ts: files, pipes, splice and vmsplice mixed with them;
 *  - differential-memory.test.ts: the memory syscalls;
 *  - differential-proc.test.ts: brk, the resource limits, /proc/self's mem, pagemap, clear_refs
 *    and maps, and userfaultfd without a handler;
 *  - differential-signals.test.ts: rt_sigaction with handlers that record what they see, jump
 *    or fix the mapping, kill, tgkill, sigprocmask, faults, sigaltstack, modify_ldt, MOV Sreg,
 *    LAR/LSL/VERR/VERW, arch_prctl, WRFSBASE/WRGSBASE;
 *  - differential-ptrace.test.ts: a parent tracing a child it forks (TRACEME, ATTACH, SEIZE and
 *    INTERRUPT, wait4, PEEKUSER/POKEUSER, GETREGS/SETREGS, GETSIGINFO, PEEKDATA/POKEDATA, CONT
 *    and DETACH with a signal, KILL, the requests' errors), and INT 0x80 (getpid, kill, an unknown
 *    number, set_thread_area, get_thread_area, modify_ldt) with the TLS selectors' LAR/LSL and
 *    loads.
 * ISOLAB_ORACLE_RUNS, _FILE_RUNS, _MEMORY_RUNS, _PROC_RUNS, _SIGNAL_RUNS and _PTRACE_RUNS set each family's
 * count (1,000 by default); ISOLAB_ORACLE_SEED the base seed (family n uses seed + n).
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { buildOracle, oracleUnavailableReason, runOracle } from '../../native/build.js';
import { runOnModel } from './model.js';
import { serialize, type SeqOp } from './sequence.js';

export const SEED = Number(process.env.ISOLAB_ORACLE_SEED ?? 20261122);

/** A family's count of sequences: the environment variable `name`, else 1,000. */
export function runsFrom(name: string): number {
  return Number(process.env[name] ?? 1000);
}

/** Runs `runs` sequences from `arb` on the host and the model and compares them. */
export async function differential(t: { skip(m: string): void; diagnostic(m: string): void }, arb: fc.Arbitrary<SeqOp[]>, runs: number, seed: number): Promise<void> {
  const reason = oracleUnavailableReason();
  if (reason) {
    t.skip(`host-kernel oracle unavailable: ${reason}`);
    return;
  }
  const oracle = await buildOracle();
  assert.ok(oracle, 'the oracle must build when a C compiler is present');
  let compared = 0;
  let lines = 0;
  await fc.assert(
    fc.asyncProperty(arb, async (seq) => {
      const text = serialize(seq);
      const host = await runOracle(oracle, text);
      const { lines: model, sys } = runOnModel(seq);
      assert.deepEqual(model, host, `sequence:\n${text}`);
      assert.deepEqual(sys.debugReports, [], 'debug checks');
      compared++;
      lines += host.length;
    }),
    { numRuns: runs, seed, endOnFailure: true },
  );
  assert.equal(compared, runs);
  t.diagnostic(`${compared} sequences, ${lines} result lines, identical`);
}
