/**
 * mremap moving a page while another thread stores to it, in lockstep (lockstep.ts). Thread B, on
 * CPU 1, has loaded from the page (so its TLB may hold the entry) and stores 2 to its old address
 * while thread A, on CPU 0, moves it with mremap(MREMAP_MAYMOVE | MREMAP_FIXED) to a reserved
 * address. move_ptes (mm/mremap.c, 6.12) takes each old entry with ptep_get_and_clear and flushes
 * the old range before it drops the page-table lock, so in every interleaving:
 *  - B's store either lands in the page (before the move, or through a TLB entry still holding
 *    it: the same frame, now at the new address) and A reads 2 there afterwards, with D set in
 *    the moved entry (a store through an entry without D must set D in the page table: before the
 *    exchange D goes with the entry, after it the processor finds no entry and faults);
 *  - or B faults, finds the old range unmapped once mmap_lock is free, and gets SIGSEGV
 *    (SEGV_MAPERR at the old address), which kills the process.
 * A then maps a fresh page at the old address; a store that completes after that must land in
 * the fresh page (the old range was flushed before mremap returned, so no stale TLB entry can
 * send it to the moved page). A 1 never survives at the new address after B's store completed
 * before. Two cases: the entry B's
 * TLB caches has D, or lacks it (MADV_FREE made the entry clean before B's load).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PTE_D } from '../../src/hw/pte.js';
import { describeFindings, lockstep, ptePresent, type LockstepCase, type Run } from './lockstep.js';

const CLONE_VM = 0x100, CLONE_FS = 0x200, CLONE_FILES = 0x400, CLONE_SIGHAND = 0x800, CLONE_THREAD = 0x10000;
const THREAD_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
const MREMAP_MAYMOVE = 1, MREMAP_FIXED = 2;
const SIGSEGV = 11, SEGV_MAPERR = 1;
const PREEMPTIONS = 2;
const B = 'main.4.child';
const MADV_NORMAL = 0, MADV_FREE = 8;

function moveAgainstStore(name: string, advice: number, seen: Set<string>): LockstepCase {
  return {
    name,
    processes: [{
      cpu: 0,
      program: {
        main: [
          { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'buf' }, // 0
          { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'dst' }, // 1
          { op: 'store', addr: '$buf', value: 1 }, // 2: the entry dirty
          { op: 'syscall', name: 'madvise', args: ['$buf', 4096, advice] }, // 3: MADV_FREE makes it clean (and flushes it)
          // 4: B loads from the page on CPU 1 (its TLB entry: D as the entry has it), then races with its store.
          { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], into: 'tid', child: [{ op: 'load', addr: '$buf' }, { op: 'store', addr: '$buf', value: 2 }], cpu: 1 },
          { op: 'syscall', name: 'mremap', args: ['$buf', 4096, 4096, MREMAP_MAYMOVE | MREMAP_FIXED, '$dst'], into: 'm' }, // 5
          { op: 'syscall', name: 'mmap', args: ['$buf', 4096, 3, 0x32, -1, 0], into: 'nb' }, // 6: a new page at the old address (MAP_FIXED)
          { op: 'load', addr: '$dst', into: 'v' }, // 7
          { op: 'load', addr: '$buf', into: 'w' }, // 8
          { op: 'syscall', name: 'getpid' }, { op: 'syscall', name: 'getpid' }, { op: 'syscall', name: 'getpid' },
        ],
      },
    }],
    racers: [{ cpu: 0, fn: 'main', from: 5, to: 6 }, { cpu: 1, fn: B, from: 1 }],
    watch: ['buf', 'dst'],
    preemptions: PREEMPTIONS,
    check: (r: Run) => {
      const rec = (fn: string, i: number) => r.k.log.find((x) => x.fn === fn && x.index === i);
      const buf = BigInt(r.vas[0]);
      const dst = r.vas[1];
      const m = rec('main', 5);
      if (!m || m.value !== BigInt(dst)) return `mremap gave ${m?.value}`;
      const st = rec(B, 1);
      if (!st) return 'the store never completed';
      if (st.signal) {
        if (st.signal.signo !== SIGSEGV || st.signal.code !== SEGV_MAPERR || st.signal.addr !== buf) return `the store got signal ${st.signal.signo} code ${st.signal.code} at 0x${st.signal.addr.toString(16)}`;
        if (r.sys.exitStatus(r.tids[0]) !== SIGSEGV) return `the process ended with ${r.sys.exitStatus(r.tids[0])}, expected death by SIGSEGV`;
        seen.add('SIGSEGV');
        return null;
      }
      // The store completed: its 2 is in the page at the new address, and the moved entry is dirty.
      const moved = [...r.endPtes].filter(([key, p]) => key.endsWith(`:${dst}`) && ptePresent(p));
      if (moved.length !== 1) return `after the move ${moved.length} present entries map the new address`;
      const v = rec('main', 7);
      const w = rec('main', 8);
      if (!v || !w || v.value === undefined || w.value === undefined) return 'the loads after the race did not complete';
      // A store that completed after the old address was mapped afresh must land in the new page:
      // by then the old range was flushed, so no TLB entry can still send it to the moved page.
      const log = r.k.log;
      const after = log.indexOf(st) > log.indexOf(rec('main', 6)!);
      if (after) {
        if (w.value !== 2n || v.value !== 1n) return `the store completed after the old address was mapped again, but the moved page read ${v.value} and the new one ${w.value}: a stale TLB entry sent it to the moved page`;
        seen.add('stored in the new page');
        return null;
      }
      if (v.value !== 2n || w.value !== 0n) return `the new address read ${v.value} and the old one ${w.value}, expected the store's 2 in the moved page`;
      if (!(moved[0][1].lo & PTE_D)) return 'the store completed but the moved entry is clean: its D bit was lost';
      seen.add('stored');
      return null;
    },
  };
}

const cases: [string, number][] = [
  ['mremap moving a page against a store through a dirty TLB entry', MADV_NORMAL],
  ['mremap moving a page against a store through a clean TLB entry (MADV_FREE before: D set by the walk, or a fault)', MADV_FREE],
];
for (const [name, advice] of cases) {
  test(`lockstep, every interleaving: ${name}`, (t) => {
    const seen = new Set<string>();
    const c = moveAgainstStore(name, advice, seen);
    const r = lockstep(c);
    t.diagnostic(`${r.interleavings} interleavings (every one with at most ${c.preemptions} preemptions), window up to ${r.longest} steps, ${r.ms.toFixed(0)} ms`);
    assert.ok(r.failed === 0, describeFindings(c, r));
    assert.ok(r.interleavings >= 2, `${r.interleavings} interleaving(s): the racers never raced`);
    assert.ok(seen.has('SIGSEGV') && seen.has('stored'), `the outcomes came up: ${[...seen].join(', ')}`);
  });
}
