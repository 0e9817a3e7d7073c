/**
 * ARCH_SET_CPUID(0) on one thread racing CPUID on a sibling thread on another CPU, in lockstep
 * (lockstep.ts), on a CPU with `cpuid_faulting`.
 *
 * set_cpuid_mode -> disable_cpuid (arch/x86/kernel/process.c, 6.12) sets the caller's
 * TIF_NOCPUID and writes its own CPU's MSR_MISC_FEATURES_ENABLES (set_cpuid_faulting, with
 * preemption off); the flag is the thread's and the MSR follows the thread running on each CPU
 * (__switch_to_xtra). So in every interleaving the sibling's CPUID, whenever it runs, completes,
 * and the caller's own CPUID after the arch_prctl is SIGSEGV (SI_KERNEL), which kills the
 * process.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { describeFindings, lockstep, type LockstepCase, type Run } from './lockstep.js';
import { sc } from './helpers.js';

const CLONE_VM = 0x100, CLONE_FS = 0x200, CLONE_FILES = 0x400, CLONE_SIGHAND = 0x800, CLONE_THREAD = 0x10000;
const THREAD_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
const ARCH_SET_CPUID = 0x1012;
const SIGSEGV = 11, SI_KERNEL = 0x80;
const T = 'main.1.child';

const cpuid: Op = { op: 'cpuid', leaf: 0 };

function setCpuidAgainstSibling(): LockstepCase {
  const main: Op[] = [
    sc('tid', 'gettid'), // 0
    { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], into: 'ctid', child: [cpuid, cpuid], cpu: 1 }, // 1
    sc('r', 'arch_prctl', ARCH_SET_CPUID, 0), // 2
    cpuid, // 3
  ];
  return {
    name: 'ARCH_SET_CPUID(0) against CPUID on a sibling thread',
    processes: [{ cpu: 0, program: { main } }],
    racers: [{ cpu: 0, fn: 'main', from: 2, to: 3 }, { cpu: 1, fn: T, from: 0, to: 1 }],
    watch: [],
    cpu: { cpuid_faulting: true },
    cpus: 2,
    preemptions: 2,
    check: (r: Run) => {
      const recs = (fn: string, i: number) => r.k.log.filter((x) => x.fn === fn && x.index === i);
      if (recs('main', 2)[0]?.value !== 0n) return `arch_prctl gave ${recs('main', 2)[0]?.value}, expected 0`;
      for (const i of [0, 1]) {
        const rec = recs(T, i);
        if (rec.length === 0) return `the sibling's CPUID ${i} never ran`;
        if (rec.some((x) => x.signal)) return `the sibling's CPUID ${i} faulted`;
      }
      const tid = Number(recs('main', 0)[0]!.value);
      const segv = r.events.filter((x) => x.e.type === 'signal' && x.e.signo === SIGSEGV);
      if (!segv.some((x) => x.e.type === 'signal' && x.e.tid === tid && x.e.code === SI_KERNEL)) return 'the caller\'s CPUID did not fault with SIGSEGV SI_KERNEL';
      if (segv.some((x) => x.e.type === 'signal' && x.e.tid !== tid)) return 'a SIGSEGV went to another thread';
      return null;
    },
  };
}

test('lockstep, every interleaving: ARCH_SET_CPUID(0) against CPUID on a sibling thread on another CPU', (t) => {
  const c = setCpuidAgainstSibling();
  const r = lockstep(c);
  t.diagnostic(`${r.interleavings} interleavings (every one with at most ${c.preemptions} preemptions), window up to ${r.longest} steps, ${r.ms.toFixed(0)} ms`);
  assert.ok(r.failed === 0, describeFindings(c, r));
  assert.ok(r.interleavings >= 2, `${r.interleavings} interleaving(s): the racers never raced`);
});
