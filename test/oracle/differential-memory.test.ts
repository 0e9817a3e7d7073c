/** The differential test (differential.ts) for mlock, madvise, mincore, msync and mremap mixed with memory operations and fork. */
import { test } from 'node:test';
import { differential, runsFrom, SEED } from './differential.js';
import { memorySequenceArb } from './sequence.js';

const RUNS = runsFrom('ISOLAB_ORACLE_MEMORY_RUNS');

test(`isolab and the host kernel agree on ${RUNS} generated sequences of mlock, madvise, mincore, msync and mremap`, (t) => differential(t, memorySequenceArb, RUNS, SEED + 2));
