/**
 * The differential test (differential.ts) for ptrace: stories of a parent tracing a child it
 * forks (PTRACE_TRACEME, ATTACH, SEIZE and INTERRUPT, wait4's status words, PEEKUSER and
 * POKEUSER, GETREGS and SETREGS, GETSIGINFO, PEEKDATA and POKEDATA of a read-only private page,
 * CONT and DETACH injecting a signal the child's handler records, KILL, and the requests' errors)
 * and of INT 0x80 and the thread area (getpid, kill and an unknown number, set_thread_area,
 * get_thread_area and modify_ldt, then LAR/LSL/VERR/VERW and loads of the TLS selector):
 * sequence.ts ptraceSequenceArb. 1,000 sequences take 25 to 30 s on a shared 2-vCPU machine.
 */
import { test } from 'node:test';
import { differential, runsFrom, SEED } from './differential.js';
import { ptraceSequenceArb } from './sequence.js';

const RUNS = runsFrom('ISOLAB_ORACLE_PTRACE_RUNS');

test(`isolab and the host kernel agree on ${RUNS} generated sequences of ptrace, INT 0x80 and thread-area stories`, (t) => differential(t, ptraceSequenceArb, RUNS, SEED + 5));
