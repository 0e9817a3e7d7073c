/**
 * The differential test (differential.ts) for the first family: mmap, munmap, mprotect with good
 * and bad arguments, loads and stores, fork with writes on both sides, wait, execve; and a
 * hand-written COW sequence whose host lines are known from fork(2)'s contract.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildOracle, oracleUnavailableReason, runOracle } from '../../native/build.js';
import { differential, runsFrom, SEED } from './differential.js';
import { runOnModel } from './model.js';
import { sequenceArb, serialize } from './sequence.js';

const RUNS = runsFrom('ISOLAB_ORACLE_RUNS');

test(`isolab and the host kernel agree on ${RUNS} generated sequences`, (t) => differential(t, sequenceArb, RUNS, SEED));

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
