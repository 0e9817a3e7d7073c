/**
 * XRSTOR in lockstep (lockstep.ts) against pkey_mprotect of its XSAVE area by another thread of
 * the same process on a second CPU.
 *
 * The thread on CPU 0 has PKRU access-disabling key K (pkey_alloc(PKEY_DISABLE_ACCESS) writes
 * it, arch/x86/kernel/fpu/xstate.c arch_set_user_pkey_access) and runs XRSTOR of an area whose
 * image holds PKRU 0 (XSTATE_BV[9] = 1). The thread on CPU 1 moves the area's page to key K
 * (mm/mprotect.c do_mprotect_pkey: the PTEs get the key, then flush_tlb_range; the syscall
 * returns 0 after the flush). XRSTOR reads the area through the TLB or a walk, with the PKRU
 * of the moment (SDM Vol. 3A §4.6.2: a data read of a user page is refused when PKRU.AD[key]).
 * Every interleaving with at most PREEMPTIONS preemptions ends one of two ways:
 *  - XRSTOR completed: it read the page as key 0 (before the PTE changed, or through CPU 0's
 *    TLB entry before the flush reached it), and PKRU is then 0, so the area reads back;
 *  - XRSTOR faulted: SIGSEGV with SEGV_PKUERR and si_pkey K (the walk, or a refill after the
 *    flush, found key K while PKRU still had AD[K]); the process dies, having no handler.
 * pkey_mprotect returns 0 whenever it finished. Both ends must come up.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { describeFindings, lockstep, type LockstepCase, type Run } from './lockstep.js';
import { linger, sc } from './helpers.js';

const CLONE_VM = 0x100, CLONE_FS = 0x200, CLONE_FILES = 0x400, CLONE_SIGHAND = 0x800, CLONE_THREAD = 0x10000;
const THREAD_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
const PAGE = 4096;
const PKEY_DISABLE_ACCESS = 1;
const SIGSEGV = 11, SEGV_PKUERR = 4;
const PREEMPTIONS = 2;
const T = 'main.4.child';


const main: Op[] = [
  sc('buf', 'mmap', 0, PAGE, 3, 0x22, -1, 0), // 0
  sc('key', 'pkey_alloc', 0, PKEY_DISABLE_ACCESS), // 1
  { op: 'store', addr: '$buf+512', value: 0x200 }, // 2: XSTATE_BV = PKRU
  { op: 'store', addr: '$buf+2688', value: 0 }, // 3: the PKRU image: 0, every key open
  { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], into: 'tid', child: [sc('pm', 'pkey_mprotect', '$buf', PAGE, 3, '$key'), ...linger], cpu: 1 }, // 4
  { op: 'xrstor', addr: '$buf', mask: -1n }, // 5
  { op: 'rdpkru', into: 'p' }, // 6
  { op: 'load', addr: '$buf+512', into: 'bv' }, // 7
  ...linger,
];

const seen = new Set<string>();

const CASE: LockstepCase = {
  name: 'XRSTOR loading PKRU against pkey_mprotect of its area by another thread',
  processes: [{ cpu: 0, program: { main } }],
  racers: [{ cpu: 0, fn: 'main', from: 5, to: 5 }, { cpu: 1, fn: T, from: 0, to: 0 }],
  watch: ['buf'],
  preemptions: PREEMPTIONS,
  check: (r: Run) => {
    const rec = (fn: string, i: number) => r.k.log.find((x) => x.fn === fn && x.index === i);
    const key = rec('main', 1)?.value;
    if (key !== 1n) return `pkey_alloc gave ${key}, expected key 1`;
    const pm = rec(T, 0);
    if (pm && (pm.signal || pm.value !== 0n)) return `pkey_mprotect gave ${pm.value}${pm.signal ? ` (signal ${pm.signal.signo})` : ''}`;
    const x = rec('main', 5);
    if (!x) return 'XRSTOR never ran';
    if (x.signal) {
      if (x.signal.signo !== SIGSEGV || x.signal.code !== SEGV_PKUERR || x.signal.pkey !== 1) return `XRSTOR: signal ${x.signal.signo} code ${x.signal.code} pkey ${x.signal.pkey}, expected SIGSEGV SEGV_PKUERR key 1`;
      if (rec('main', 6)) return 'the thread went on after XRSTOR faulted';
      seen.add('faulted');
      return null;
    }
    const p = rec('main', 6)?.value;
    if (p !== 0n) return `XRSTOR completed but PKRU is ${p}, expected the image's 0`;
    const bv = rec('main', 7);
    if (bv?.value !== 0x200n) return `the area read back ${bv?.value}${bv?.signal ? ` (signal ${bv.signal.signo})` : ''} with PKRU 0, expected 0x200`;
    seen.add('completed');
    return null;
  },
};

test(`lockstep, every interleaving: ${CASE.name}`, (t) => {
  const r = lockstep(CASE);
  t.diagnostic(`${r.interleavings} interleavings (every one with at most ${CASE.preemptions} preemptions), window up to ${r.longest} steps, ${r.ms.toFixed(0)} ms`);
  assert.ok(r.failed === 0, describeFindings(CASE, r));
  assert.ok(r.interleavings >= 2, `${r.interleavings} interleaving(s): the racers never raced`);
  for (const o of ['completed', 'faulted']) assert.ok(seen.has(o), `no interleaving ended with XRSTOR ${o} (saw ${[...seen].join(', ')})`);
});
