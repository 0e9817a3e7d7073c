/**
 * emulate_vsyscall's copy_to_user racing another thread's munmap of the destination, in
 * lockstep (lockstep.ts). Thread 1 (CPU 0) calls the vsyscall page's gettimeofday
 * (0xffffffffff600000, vsyscall=xonly) with tv in a page it has written; thread 2 (CPU 1)
 * unmaps that page.
 *
 * do_user_addr_fault hands the fetch fault to emulate_vsyscall before any VMA is looked for;
 * write_ok_or_segv's access_ok passes (the pointer is a user address whatever is mapped);
 * sys_gettimeofday's put_user of tv_sec and of tv_usec are ordinary kernel writes to user
 * memory, each faulting like any (arch/x86/entry/vsyscall/vsyscall_64.c, kernel/time/time.c,
 * 6.12); munmap (mm/mmap.c) takes mmap_lock for writing, zaps the PTEs and flushes every CPU's
 * TLB before it returns. So every interleaving ends one of two ways, and both must come up:
 *  - both stores made before the PTE went (or through CPU 0's TLB entry before the flush reached
 *    it): rax is 0, the emulated RET brings the thread back to the operation after its call;
 *  - a store found no VMA (a kernel-mode fault: the exception fixup, -EFAULT): "vsyscall fault
 *    (exploit attempt?)", SIGSEGV with SI_KERNEL, and the process dies; munmap must have been
 *    entered before the signal.
 * munmap returns 0 either way, and the harness checks the page counts after each interleaving.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { describeFindings, lockstep, type LockstepCase, type Run } from './lockstep.js';
import { sc } from './helpers.js';

const CLONE_VM = 0x100, CLONE_FS = 0x200, CLONE_FILES = 0x400, CLONE_SIGHAND = 0x800, CLONE_THREAD = 0x10000;
const THREAD_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
const SIGSEGV = 11, SI_KERNEL = 0x80;
const PREEMPTIONS = 1;
const T = 'main.3.child';


function gettimeofdayAgainstMunmap(seen: Set<string>): LockstepCase {
  const main: Op[] = [
    sc('buf', 'mmap', 0, 4096, 3, 0x22, -1, 0), // 0
    { op: 'store', addr: '$buf', value: 1 }, // 1
    { op: 'set', var: 'rdi', value: '$buf' }, // 2
    { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], into: 'ctid', child: [sc('mu', 'munmap', '$buf', 4096)], cpu: 1 }, // 3
    { op: 'call', addr: 0xffffffffff600000n }, // 4: gettimeofday(buf, NULL) through the vsyscall page
    sc('g', 'getpid'), // 5
    sc('g', 'getpid'), // 6
  ];
  return {
    name: 'vsyscall gettimeofday against munmap of tv',
    processes: [{ cpu: 0, program: { main } }],
    racers: [{ cpu: 0, fn: 'main', from: 4, to: 5 }, { cpu: 1, fn: T, from: 0 }],
    watch: ['buf'],
    kernel: { vsyscall: 'xonly' },
    preemptions: PREEMPTIONS,
    check: (r: Run) => {
      const recs = (fn: string, i: number) => r.k.log.filter((x) => x.fn === fn && x.index === i);
      if (recs(T, 0)[0]?.value !== 0n) return `munmap gave ${recs(T, 0)[0]?.value}, expected 0`;
      const at = (pred: (e: Run['events'][number]['e']) => boolean): number => r.events.find((x) => pred(x.e))?.step ?? -1;
      const muEnter = at((e) => e.type === 'syscall_enter' && e.name === 'munmap');
      const segv = r.events.find((x) => x.e.type === 'signal' && x.e.signo === SIGSEGV);
      const emulated = recs('main', 4).some((x) => x.value === 0n);
      if (segv) {
        seen.add('SIGSEGV');
        if (segv.e.type !== 'signal' || segv.e.code !== SI_KERNEL) return `SIGSEGV with si_code ${segv.e.type === 'signal' ? segv.e.code : '?'}, expected SI_KERNEL`;
        if (emulated) return 'SIGSEGV, yet the call returned 0';
        if (muEnter < 0 || muEnter > segv.step) return `the copy failed (step ${segv.step}) before munmap was entered (step ${muEnter})`;
        if (recs('main', 5).length > 0) return 'the thread went on after the SIGSEGV';
        return null;
      }
      if (!emulated) return 'neither an emulated return of 0 nor SIGSEGV';
      seen.add('returned');
      if (recs('main', 5).length === 0) return 'the emulated RET did not bring the thread back after its call';
      return null;
    },
  };
}

test('lockstep, every interleaving: vsyscall gettimeofday\'s copy_to_user against munmap of the destination', (t) => {
  const seen = new Set<string>();
  const c = gettimeofdayAgainstMunmap(seen);
  const r = lockstep(c);
  t.diagnostic(`${r.interleavings} interleavings (every one with at most ${c.preemptions} preemptions), window up to ${r.longest} steps, ${r.ms.toFixed(0)} ms`);
  assert.ok(r.failed === 0, describeFindings(c, r));
  assert.ok(r.interleavings >= 2, `${r.interleavings} interleaving(s): the racers never raced`);
  assert.deepEqual([...seen].sort(), ['SIGSEGV', 'returned'], 'both outcomes came up');
});
