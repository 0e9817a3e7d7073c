/**
 * MADV_COLLAPSE racing MADV_DONTNEED on another CPU, in lockstep (lockstep.ts). Both take
 * mmap_lock for reading (mm/madvise.c madvise_need_mmap_write); madvise_collapse's
 * hpage_collapse_scan_pmd (mm/khugepaged.c) reads the PTE table under its lock, and
 * zap_pte_range clears it under the same lock. So the scan sees the written page (SCAN_SUCCEED,
 * then collapse_huge_page, whose huge page the model cannot allocate: -ENOMEM) or an empty
 * table (no writable entry: SCAN_PAGE_RO, -EINVAL), never half of each; the zap gives 0 and the
 * page reads 0 after it either way. Both outcomes must come up among the interleavings.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { describeFindings, lockstep, type LockstepCase, type Run } from './lockstep.js';

const CLONE_VM = 0x100, CLONE_FS = 0x200, CLONE_FILES = 0x400, CLONE_SIGHAND = 0x800, CLONE_THREAD = 0x10000;
const THREAD_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
const MADV_DONTNEED = 4, MADV_COLLAPSE = 25;
const ENOMEM = 12, EINVAL = 22;
const A = 0x40000000, PMD = 2 ** 21;
const PREEMPTIONS = 2;
const THREAD = 'main.2.child';

const linger: Op[] = Array.from({ length: 3 }, (): Op => ({ op: 'syscall', name: 'getpid' }));

test('lockstep, every interleaving: MADV_COLLAPSE against MADV_DONTNEED of its only page', (t) => {
  const seen = new Set<string>();
  const c: LockstepCase = {
    name: 'MADV_COLLAPSE against MADV_DONTNEED',
    processes: [{
      cpu: 0,
      program: {
        main: [
          { op: 'syscall', name: 'mmap', args: [A, PMD, 3, 0x32, -1, 0], into: 'buf' }, // 0: MAP_FIXED, one aligned huge page's span
          { op: 'store', addr: '$buf', value: 7 }, // 1
          { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], into: 'tid', child: [{ op: 'syscall', name: 'madvise', args: ['$buf', PMD, MADV_COLLAPSE], into: 'm' }], cpu: 1 }, // 2
          { op: 'syscall', name: 'madvise', args: ['$buf', 4096, MADV_DONTNEED], into: 'd' }, // 3
          { op: 'load', addr: '$buf', into: 'p' }, // 4
          ...linger,
        ],
      },
    }],
    racers: [{ cpu: 0, fn: 'main', from: 3 }, { cpu: 1, fn: THREAD, from: 0 }],
    watch: ['buf'],
    preemptions: PREEMPTIONS,
    check: (r: Run) => {
      const rec = (fn: string, i: number) => r.k.log.find((x) => x.fn === fn && x.index === i);
      if (rec('main', 3)?.value !== 0n) return `MADV_DONTNEED gave ${rec('main', 3)?.value}`;
      const p = rec('main', 4);
      if (p && p.value !== 0n) return `the page read ${p.value} after MADV_DONTNEED`;
      const m = rec(THREAD, 0);
      if (!m) return 'MADV_COLLAPSE never returned';
      const v = BigInt.asIntN(64, m.value!);
      if (v !== BigInt(-ENOMEM) && v !== BigInt(-EINVAL)) return `MADV_COLLAPSE gave ${v}`;
      seen.add(v === BigInt(-ENOMEM) ? 'page seen' : 'table empty');
      return null;
    },
  };
  const r = lockstep(c);
  t.diagnostic(`${r.interleavings} interleavings (every one with at most ${c.preemptions} preemptions), window up to ${r.longest} steps, ${r.ms.toFixed(0)} ms`);
  assert.ok(r.failed === 0, describeFindings(c, r));
  assert.ok(r.interleavings >= 2, `${r.interleavings} interleaving(s): the racers never raced`);
  assert.deepEqual([...seen].sort(), ['page seen', 'table empty']);
});
