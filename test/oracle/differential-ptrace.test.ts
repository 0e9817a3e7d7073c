/**
 * The differential test (differential.ts) for ptrace: stories of a parent tracing a child it
 * forks (PTRACE_TRACEME, ATTACH, SEIZE and INTERRUPT, wait4's status words, PEEKUSER and
 * POKEUSER, GETREGS and SETREGS, GETSIGINFO, PEEKDATA and POKEDATA of a read-only private page,
 * CONT and DETACH injecting a signal the child's handler records, KILL, and the requests' errors:
 * sequence.ts ptraceSequenceArb). 1,000 sequences take about 30 s on a shared 2-vCPU machine.
 */
import { test } from 'node:test';
import { differential, runsFrom, SEED } from './differential.js';
import { ptraceSequenceArb } from './sequence.js';

const RUNS = runsFrom('ISOLAB_ORACLE_PTRACE_RUNS');

test(`isolab and the host kernel agree on ${RUNS} generated sequences of ptrace stories`, (t) => differential(t, ptraceSequenceArb, RUNS, SEED + 5));
