/** The differential test (differential.ts) for brk, the resource limits, /proc/self and userfaultfd without a handler. */
import { test } from 'node:test';
import { differential, runsFrom, SEED } from './differential.js';
import { procSequenceArb } from './sequence.js';

const RUNS = runsFrom('ISOLAB_ORACLE_PROC_RUNS');

test(`isolab and the host kernel agree on ${RUNS} generated sequences of brk, resource limits, /proc/self and userfaultfd`, (t) => differential(t, procSequenceArb, RUNS, SEED + 3));
