/** The differential test (differential.ts) for files, pipes, splice and vmsplice mixed with memory operations and fork. */
import { test } from 'node:test';
import { differential, runsFrom, SEED } from './differential.js';
import { fileSequenceArb } from './sequence.js';

const RUNS = runsFrom('ISOLAB_ORACLE_FILE_RUNS');

test(`isolab and the host kernel agree on ${RUNS} generated sequences of files, pipes and splices`, (t) => differential(t, fileSequenceArb, RUNS, SEED + 1));
