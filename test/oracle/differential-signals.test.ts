/**
 * The differential test (differential.ts) for signals, sigaltstack, segments and arch_prctl:
 * rt_sigaction with recording, jumping and fixing handlers, kill and tgkill, sigprocmask,
 * faults (SIGSEGV, SIGBUS), sigaltstack, modify_ldt, MOV Sreg, LAR/LSL/VERR/VERW, arch_prctl's
 * FS, GS and CPUID codes, WRFSBASE/WRGSBASE (sequence.ts signalSequenceArb). 1,000 sequences
 * take 30 to 45 s on a shared 2-vCPU machine (most of it starting the oracle).
 */
import { test } from 'node:test';
import { differential, runsFrom, SEED } from './differential.js';
import { signalSequenceArb } from './sequence.js';

const RUNS = runsFrom('ISOLAB_ORACLE_SIGNAL_RUNS');

test(`isolab and the host kernel agree on ${RUNS} generated sequences of signals, sigaltstack, segments and arch_prctl`, (t) => differential(t, signalSequenceArb, RUNS, SEED + 4));
