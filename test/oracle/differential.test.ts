/**
 * The differential test: generated operation sequences (mmap, munmap, mprotect with good and
 * bad arguments, loads and stores, fork with writes on both sides, wait, execve; and, in the
 * second set, files, pipes, splice and vmsplice mixed with them; in the third, the memory
 * syscalls; in the fourth, brk, the resource limits, /proc/self's mem, pagemap, clear_refs and
 * maps, and userfaultfd without a handler) run on the machine's real
 * Linux kernel through native/oracle.c and on isolab; the result lines must be identical, and
 * isolab's debug checks (page counts, leaks) must stay silent.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { buildOracle, oracleUnavailableReason, runOracle } from '../../native/build.js';
import { runOnModel } from './model.js';
import { fileSequenceArb, memorySequenceArb, procSequenceArb, sequenceArb, serialize, type SeqOp } from './sequence.js';

const RUNS = Number(process.env.ISOLAB_ORACLE_RUNS ?? 1000);
const FILE_RUNS = Number(process.env.ISOLAB_ORACLE_FILE_RUNS ?? 1000);
const MEMORY_RUNS = Number(process.env.ISOLAB_ORACLE_MEMORY_RUNS ?? 1000);
const PROC_RUNS = Number(process.env.ISOLAB_ORACLE_PROC_RUNS ?? 1000);
const SEED = Number(process.env.ISOLAB_ORACLE_SEED ?? 20261122);

/** Runs `runs` sequences from `arb` on the host and the model and compares them. */
async function differential(t: { skip(m: string): void; diagnostic(m: string): void }, arb: fc.Arbitrary<SeqOp[]>, runs: number, seed: number): Promise<void> {
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

test(`isolab and the host kernel agree on ${RUNS} generated sequences`, (t) => differential(t, sequenceArb, RUNS, SEED));

test(`isolab and the host kernel agree on ${FILE_RUNS} generated sequences of files, pipes and splices`, (t) => differential(t, fileSequenceArb, FILE_RUNS, SEED + 1));

test(`isolab and the host kernel agree on ${MEMORY_RUNS} generated sequences of mlock, madvise, mincore, msync and mremap`, (t) => differential(t, memorySequenceArb, MEMORY_RUNS, SEED + 2));

test(`isolab and the host kernel agree on ${PROC_RUNS} generated sequences of brk, resource limits, /proc/self and userfaultfd`, (t) => differential(t, procSequenceArb, PROC_RUNS, SEED + 3));

test('the oracle and the model print the same lines for a hand-written COW sequence', async (t) => {
  const reason = oracleUnavailableReason();
  if (reason) {
    t.skip(`host-kernel oracle unavailable: ${reason}`);
    return;
  }
  const oracle = await buildOracle();
  const seq = [
    { op: 'mmap' as const, handle: 0, addr: { kind: 'A' as const, off: 0n }, len: 0x2000n, prot: 3, flags: 0x32 },
    { op: 'store' as const, addr: { kind: 'H' as const, handle: 0, off: 0n }, size: 8 as const, value: 0x1111n },
    { op: 'fork' as const, child: [
      { op: 'load' as const, addr: { kind: 'H' as const, handle: 0, off: 0n }, size: 8 as const },
      { op: 'store' as const, addr: { kind: 'H' as const, handle: 0, off: 0n }, size: 8 as const, value: 0x2222n },
      { op: 'exit' as const, code: 3 },
    ] },
    { op: 'store' as const, addr: { kind: 'H' as const, handle: 0, off: 0n }, size: 8 as const, value: 0x3333n },
    { op: 'wait' as const },
    { op: 'load' as const, addr: { kind: 'H' as const, handle: 0, off: 0n }, size: 8 as const },
  ];
  const host = await runOracle(oracle!, serialize(seq));
  // Expected from fork(2)'s contract: the child sees the value before the fork, each side keeps its own write.
  assert.deepEqual(host, ['p 0 ok A+0', 'p 1 ok 0', 'p 2 ok child', 'p 7 ok 0', 'pc 3 ok 1111', 'pc 4 ok 0', 'p 8 ok exited 3', 'p 9 ok 3333']);
  assert.deepEqual(runOnModel(seq).lines, host);
});
