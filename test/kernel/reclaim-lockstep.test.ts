/**
 * MADV_PAGEOUT in lockstep (lockstep.ts) with a write on another CPU: a thread on CPU 1 pages
 * out the page a thread on CPU 0 writes, in every interleaving with at most PREEMPTIONS
 * preemptions. Whatever the order, the write is not lost (the writer reads back its value,
 * from the page or from swap through do_swap_page), every fault's outcome matches what it did
 * to the PTE (a `swapin` turned a swap entry into a present one), and the debug_vm checks (page
 * counts, swap counts, leaks at exit) find nothing.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { describeFindings, lockstep, type LockstepCase, type Run } from './lockstep.js';

const CLONE_VM = 0x100, CLONE_SIGHAND = 0x800, CLONE_THREAD = 0x10000;
const PAGE = 4096;
const MADV_PAGEOUT = 21;
const PREEMPTIONS = process.env.ISOLAB_LOCKSTEP_PREEMPTIONS === 'all' ? Infinity : Number(process.env.ISOLAB_LOCKSTEP_PREEMPTIONS || 2);

const T = 'main.2.child';
const linger: Op[] = Array.from({ length: 3 }, (): Op => ({ op: 'syscall', name: 'getpid' }));

function value(r: Run, fn: string, index: number): bigint | string {
  const rec = r.k.log.find((x) => x.fn === fn && x.index === index);
  if (!rec) return `${fn}[${index}] never ran`;
  return rec.value ?? `${fn}[${index}] got no value`;
}

function pageoutAgainst(name: string, swap_pages: number): LockstepCase {
  return {
    name,
    processes: [{
      cpu: 0,
      program: {
        main: [
          { op: 'syscall', name: 'mmap', args: [0, PAGE, 3, 0x22, -1, 0], into: 'buf' },
          { op: 'store', addr: '$buf', value: 1 },
          { op: 'syscall', name: 'clone', args: [CLONE_VM | CLONE_SIGHAND | CLONE_THREAD, 0, 0, 0, 0], into: 'tid', cpu: 1, child: [{ op: 'syscall', name: 'madvise', args: ['$buf', PAGE, MADV_PAGEOUT], into: 'r' }, { op: 'load', addr: '$buf', into: 't' }] },
          { op: 'store', addr: '$buf', value: 2 },
          { op: 'load', addr: '$buf', into: 'm' },
          ...linger,
        ],
      },
    }],
    racers: [{ cpu: 0, fn: 'main', from: 3 }, { cpu: 1, fn: T, from: 0 }],
    watch: ['buf'],
    kernel: { swap_pages },
    preemptions: PREEMPTIONS,
    check: (r) => {
      const m = value(r, 'main', 4);
      if (m !== 2n) return typeof m === 'string' ? m : `the writer read back ${m}, not its 2`;
      const a = value(r, T, 0);
      if (a !== 0n) return `madvise returned ${a}`;
      const t = value(r, T, 1);
      const storeAt = r.k.log.findIndex((x) => x.fn === 'main' && x.index === 3);
      const loadAt = r.k.log.findIndex((x) => x.fn === T && x.index === 1);
      const want = loadAt > storeAt ? 2n : 1n;
      return t === want ? null : `the thread read ${t}; it completed ${want === 2n ? 'after' : 'before'} the store of 2`;
    },
  };
}

for (const c of [pageoutAgainst('MADV_PAGEOUT (swap) against a write fault', 16), pageoutAgainst('MADV_PAGEOUT (no swap) against a write', 0)]) {
  test(`lockstep, every interleaving: ${c.name}`, (t) => {
    const r = lockstep(c);
    t.diagnostic(`${r.interleavings} interleavings (at most ${c.preemptions} preemptions), ${r.ms.toFixed(0)} ms; outcomes: ${[...r.outcomes].map(([k, n]) => `${k} ×${n}`).join('; ')}`);
    assert.ok(r.failed === 0, describeFindings(c, r));
    assert.ok(r.interleavings >= 2);
  });
}
