/**
 * MADV_WIPEONFORK and MADV_DONTFORK racing fork, in lockstep (lockstep.ts): one thread sets the
 * flag on a page the process wrote 7 into while another thread forks. madvise changes the VMA's
 * flags under mmap_lock for writing (mm/madvise.c madvise_need_mmap_write,
 * madvise_update_vma) and dup_mmap reads them under the same lock (kernel/fork.c), so the child
 * sees the VMA either as it was before the advice (the page copied: it reads 7) or after it
 * (WIPEONFORK: an empty VMA, it reads 0; DONTFORK: no VMA, SIGSEGV) - never a mix, and the
 * parent's page is untouched either way. Both outcomes must come up among the interleavings.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { describeFindings, lockstep, type LockstepCase, type Run } from './lockstep.js';

const CLONE_VM = 0x100, CLONE_FS = 0x200, CLONE_FILES = 0x400, CLONE_SIGHAND = 0x800, CLONE_THREAD = 0x10000;
const THREAD_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
const MADV_DONTFORK = 10, MADV_WIPEONFORK = 18;
const SIGSEGV = 11;
const PREEMPTIONS = 2;
const THREAD = 'main.2.child';
const CHILD = 'main.3.child';

const linger: Op[] = Array.from({ length: 3 }, (): Op => ({ op: 'syscall', name: 'getpid' }));

/** main: a page holding 7; a thread on CPU 1 giving it `advice`; a fork on CPU 0 whose child loads the page; the parent loads it after. */
function adviceAgainstFork(name: string, advice: number, seen: Set<string>): LockstepCase {
  return {
    name,
    processes: [{
      cpu: 0,
      program: {
        main: [
          { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'buf' }, // 0
          { op: 'store', addr: '$buf', value: 7 }, // 1
          { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], into: 'tid', child: [{ op: 'syscall', name: 'madvise', args: ['$buf', 4096, advice], into: 'm' }], cpu: 1 }, // 2
          { op: 'syscall', name: 'fork', into: 'pid', child: [{ op: 'load', addr: '$buf', into: 'c' }], cpu: 0 }, // 3
          { op: 'syscall', name: 'wait4', args: [-1, 0, 0, 0] }, // 4
          { op: 'load', addr: '$buf', into: 'p' }, // 5
          ...linger,
        ],
      },
    }],
    racers: [{ cpu: 0, fn: 'main', from: 3 }, { cpu: 1, fn: THREAD, from: 0 }],
    watch: ['buf'],
    preemptions: PREEMPTIONS,
    check: (r: Run) => {
      const rec = (fn: string, i: number) => r.k.log.find((x) => x.fn === fn && x.index === i);
      if (rec(THREAD, 0)?.value !== 0n) return `madvise gave ${rec(THREAD, 0)?.value}`;
      if (rec('main', 5)?.value !== 7n) return `the parent read ${rec('main', 5)?.value}`;
      const c = rec(CHILD, 0);
      if (!c) return 'the child never loaded';
      const outcome = c.signal ? `signal ${c.signal.signo}` : `read ${c.value}`;
      seen.add(outcome);
      const after = advice === MADV_WIPEONFORK ? 'read 0' : `signal ${SIGSEGV}`;
      if (outcome !== 'read 7' && outcome !== after) return `the child ${outcome}; expected read 7 (fork first) or ${after} (madvise first)`;
      return null;
    },
  };
}

for (const [name, advice, after] of [['MADV_WIPEONFORK against fork', MADV_WIPEONFORK, 'read 0'], ['MADV_DONTFORK against fork', MADV_DONTFORK, `signal ${SIGSEGV}`]] as [string, number, string][]) {
  test(`lockstep, every interleaving: ${name}`, (t) => {
    const seen = new Set<string>();
    const c = adviceAgainstFork(name, advice, seen);
    const r = lockstep(c);
    t.diagnostic(`${r.interleavings} interleavings (every one with at most ${c.preemptions} preemptions), window up to ${r.longest} steps, ${r.ms.toFixed(0)} ms`);
    assert.ok(r.failed === 0, describeFindings(c, r));
    assert.ok(r.interleavings >= 2, `${r.interleavings} interleaving(s): the racers never raced`);
    assert.deepEqual([...seen].sort(), ['read 7', after].sort(), 'both orders came up');
  });
}
