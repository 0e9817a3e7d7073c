/**
 * mremap against Linux 6.12's code (mm/mremap.c sys_mremap, mremap_to, vma_to_resize,
 * vma_expandable, move_vma, move_page_tables, move_ptes), each check in its order; the errno
 * cases, shrinking, growing in place, moving with the data and MREMAP_FIXED/DONTUNMAP were also
 * run natively on a 6.18 kernel, which agreed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MmStruct } from '../../src/kernel/mm.js';
import { is_data_mapping, is_exec_mapping, is_stack_mapping } from '../../src/kernel/vm_account.js';
import type { System } from '../../src/system.js';
import type { Op } from '../../src/user/program.js';
import { boot, records } from './helpers.js';

const EAGAIN = 11, ENOMEM = 12, EFAULT = 14, EINVAL = 22;
const PAGE = 4096;
const PROT_RW = 3, MAP_PRIVATE_ANON = 0x22, MAP_SHARED_ANON = 0x21, MAP_LOCKED = 0x2000;
const MREMAP_MAYMOVE = 1, MREMAP_FIXED = 2, MREMAP_DONTUNMAP = 4;
const RLIMIT_AS = 9, RLIMIT_MEMLOCK = 8;
const VM_LOCKED = 0x2000, VM_ACCOUNT = 0x100000;
const _LINUX_CAPABILITY_VERSION_3 = 0x20080522, CAP_IPC_LOCK = 14;
const INF = 0xffffffffffffffffn;

const sc = (name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args });
const sci = (into: string, name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args, into });
const mremap = (into: string, addr: string | number, oldLen: number, newLen: number, flags: number, newAddr: string | number = 0): Op => sci(into, 'mremap', addr, oldLen, newLen, flags, newAddr);
const store = (addr: string, value: number | bigint, size: 4 | 8 = 8): Op => ({ op: 'store', addr, value, size });
const errno = (e: number): bigint => BigInt(-e);

function run(main: Op[], sys: System = boot()): { sys: System; pid: number } {
  const pid = sys.spawn({ main });
  const last = main.length - 1;
  for (let n = 0; n < 1_000_000 && !records(sys).has(last); n++) if (!sys.step()) break;
  assert.ok(records(sys).has(last), `main[${last}] did not complete`);
  assert.deepEqual(sys.debugReports, []);
  return { sys, pid };
}
const r = (sys: System, i: number): bigint => BigInt.asIntN(64, records(sys).get(i)!.value!);
const mmOf = (sys: System, pid: number): MmStruct => sys.kernel.tasks.get(pid)!.mm!;
/** vm_stat_account's counters and the commit charge recomputed from the VMAs: they must equal the mm's. */
function checkCounters(mm: MmStruct): void {
  let total = 0, data = 0, exec = 0, stack = 0, locked = 0, committed = 0;
  for (const v of mm.vmas.list) {
    const n = (v.vm_end - v.vm_start) / PAGE;
    total += n;
    if (is_exec_mapping(v.vm_flags)) exec += n;
    else if (is_stack_mapping(v.vm_flags, v.shadowStack)) stack += n;
    else if (is_data_mapping(v.vm_flags)) data += n;
    if (v.vm_flags & VM_LOCKED) locked += n;
    if (v.vm_flags & VM_ACCOUNT) committed += n;
  }
  assert.deepEqual([mm.total_vm, mm.data_vm, mm.exec_vm, mm.stack_vm, mm.locked_vm, mm.committed], [total, data, exec, stack, locked, committed]);
}

test('mremap: the checks in sys_mremap\'s, mremap_to\'s and vma_to_resize\'s order', () => {
  const main: Op[] = [
    sci('a', 'mmap', 0, 4 * PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0), // 0
    sci('b', 'mmap', 0, PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0), // 1
    mremap('x', '$a', PAGE, PAGE, 8), // 2: an unknown flag
    mremap('x', '$a', PAGE, PAGE, MREMAP_FIXED, '$b'), // 3: FIXED without MAYMOVE
    mremap('x', '$a', PAGE, 2 * PAGE, MREMAP_DONTUNMAP | MREMAP_MAYMOVE), // 4: DONTUNMAP changing the size
    mremap('x', '$a', PAGE, PAGE, MREMAP_DONTUNMAP), // 5: DONTUNMAP without MAYMOVE
    mremap('x', '$a+1', PAGE, PAGE, 0), // 6
    mremap('x', '$a', PAGE, 0, 0), // 7: new_len 0
    mremap('x', 0x10000, PAGE, PAGE, 0), // 8: no VMA: -EFAULT
    mremap('x', '$a', PAGE, PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, '$b+1'), // 9: a misaligned new_addr
    mremap('x', '$a', 2 * PAGE, PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, '$a+4096'), // 10: overlapping ranges
    mremap('x', '$a', 0, PAGE, MREMAP_MAYMOVE), // 11: duplicating a private mapping
    mremap('x', '$a', 8 * PAGE, 9 * PAGE, MREMAP_MAYMOVE), // 12: the old range past the VMA
    mremap('x', '$a', 4 * PAGE, 4 * PAGE, 0), // 13: the same size: addr
    mremap('x', '$a', 4 * PAGE, 2 * PAGE, 0), // 14: shrunk in place
    mremap('x', '$a', 2 * PAGE, 3 * PAGE, 0), // 15: grown in place
  ];
  const { sys, pid } = run(main);
  const a = r(sys, 0);
  assert.deepEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12].map((i) => r(sys, i)), [errno(EINVAL), errno(EINVAL), errno(EINVAL), errno(EINVAL), errno(EINVAL), errno(EINVAL), errno(EFAULT), errno(EINVAL), errno(EINVAL), errno(EINVAL), errno(EFAULT)]);
  assert.deepEqual([13, 14, 15].map((i) => r(sys, i)), [a, a, a]);
  checkCounters(mmOf(sys, pid));
});

test('mremap moves the pages with their data (move_ptes), the old range unmapped; MREMAP_FIXED replaces what is there; MREMAP_DONTUNMAP leaves the old range empty', () => {
  const main: Op[] = [
    sci('a', 'mmap', 0, 2 * PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0), // 0
    sci('g', 'mmap', '$a+8192', PAGE, PROT_RW, MAP_PRIVATE_ANON | 0x10, -1, 0), // 1: a mapping right above: no growth in place
    store('$a', 42), // 2
    store('$a+4096', 43), // 3
    mremap('c', '$a', 2 * PAGE, 4 * PAGE, 0), // 4: cannot grow in place, may not move
    mremap('c', '$a', 2 * PAGE, 4 * PAGE, MREMAP_MAYMOVE), // 5: moved
    { op: 'load', addr: '$c', into: 'v0' }, // 6
    { op: 'load', addr: '$c+4096', into: 'v1' }, // 7
    { op: 'load', addr: '$c+8192', into: 'v2' }, // 8: the growth: zero
    sci('d', 'mmap', 0, PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0), // 9
    store('$d', 7), // 10
    mremap('f', '$c', PAGE, PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, '$d'), // 11: onto $d, whose page goes
    { op: 'load', addr: '$d', into: 'v3' }, // 12: 42
    mremap('u', '$d', PAGE, PAGE, MREMAP_MAYMOVE | MREMAP_DONTUNMAP), // 13
    { op: 'load', addr: '$u', into: 'v4' }, // 14: 42 at the new address
    { op: 'load', addr: '$d', into: 'v5' }, // 15: the old range is still mapped, empty
    { op: 'load', addr: '$c+4096', into: 'v6' }, // 16: the rest of the moved VMA
  ];
  const { sys, pid } = run(main);
  const a = r(sys, 0), c = r(sys, 5), d = r(sys, 9);
  assert.equal(r(sys, 4), errno(ENOMEM));
  assert.notEqual(c, a);
  assert.deepEqual([6, 7, 8, 12, 14, 15, 16].map((i) => r(sys, i)), [42n, 43n, 0n, 42n, 42n, 0n, 43n]);
  assert.equal(r(sys, 11), d);
  // The old range was unmapped by the move: only a later mapping (the top-down search hands it out again) is there.
  const u = r(sys, 13);
  if (d !== a && u !== a) assert.equal(mmOf(sys, pid).vmas.vma_lookup(Number(a)), null, 'the old range is unmapped');
  checkCounters(mmOf(sys, pid));
});

test('mremap growth: RLIMIT_AS (-ENOMEM), RLIMIT_MEMLOCK for a locked VMA (-EAGAIN), and a locked VMA\'s growth populated', () => {
  const main: Op[] = [
    sci('buf', 'mmap', 0, PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0), // 0
    sci('l', 'mmap', 0, PAGE, PROT_RW, MAP_PRIVATE_ANON | MAP_LOCKED, -1, 0), // 1
    mremap('m', '$l', PAGE, 3 * PAGE, MREMAP_MAYMOVE), // 2: grown (in place or moved), populated
    store('$buf', _LINUX_CAPABILITY_VERSION_3, 4), store('$buf+4', 0, 4), sc('capget', '$buf', '$buf+16'), // 3..5
    store('$buf+16', (0xffffffff & ~(1 << CAP_IPC_LOCK)) >>> 0, 4), store('$buf+20', (0xffffffff & ~(1 << CAP_IPC_LOCK)) >>> 0, 4), sc('capset', '$buf', '$buf+16'), // 6..8
    store('$buf+64', 4 * PAGE), store('$buf+72', 4 * PAGE), sc('setrlimit', RLIMIT_MEMLOCK, '$buf+64'), // 9..11
    mremap('x', '$m', 3 * PAGE, 5 * PAGE, MREMAP_MAYMOVE), // 12: 3 + 2 locked pages > 4
    store('$buf+64', 0), store('$buf+72', INF), sc('setrlimit', RLIMIT_AS, '$buf+64'), // 13..15
    mremap('y', '$buf', PAGE, 2 * PAGE, MREMAP_MAYMOVE), // 16: no address space left
  ];
  const { sys, pid } = run(main);
  const m = r(sys, 2);
  for (let i = 0; i < 3; i++) assert.ok(sys.pte(pid, m + BigInt(i * PAGE))?.present, `locked page ${i} populated`);
  assert.equal(r(sys, 12), errno(EAGAIN));
  assert.equal(r(sys, 16), errno(ENOMEM));
  assert.equal(mmOf(sys, pid).locked_vm, 3);
  checkCounters(mmOf(sys, pid));
});

test('a moved page is still found by reclaim\'s rmap walk: swapped out and back at its new address', () => {
  const sys = boot({ kernel: { swap_pages: 16 } });
  const main: Op[] = [
    sci('a', 'mmap', 0, PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0), // 0
    store('$a', 99), // 1
    sci('blk', 'mmap', '$a+4096', PAGE, PROT_RW, MAP_PRIVATE_ANON | 0x10, -1, 0), // 2
    mremap('c', '$a', PAGE, 2 * PAGE, MREMAP_MAYMOVE), // 3: moved
    sc('madvise', '$c', PAGE, 21), // 4: MADV_PAGEOUT through the rmap walk
    sci('vec', 'mmap', 0, PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0), // 5
    sc('mincore', '$c', PAGE, '$vec'), // 6
    { op: 'load', addr: '$vec', size: 1, into: 'res' }, // 7: 0: swapped out (not even in the swap cache)
    { op: 'load', addr: '$c', into: 'v' }, // 8: swapped back in
  ];
  const { pid } = run(main, sys);
  assert.equal(r(sys, 4), 0n);
  assert.equal(r(sys, 6), 0n);
  assert.equal(r(sys, 7), 0n, 'the moved page was unmapped by the rmap walk and written out');
  assert.equal(r(sys, 8), 99n);
  checkCounters(mmOf(sys, pid));
});

test('mremap of a shared mapping: the pages stay shared after the move; old_len 0 duplicates it', () => {
  const main: Op[] = [
    sci('s', 'mmap', 0, PAGE, PROT_RW, MAP_SHARED_ANON, -1, 0), // 0
    store('$s', 5), // 1
    mremap('dup', '$s', 0, PAGE, MREMAP_MAYMOVE), // 2: a second mapping of the same pages
    store('$dup', 6), // 3
    { op: 'load', addr: '$s', into: 'v' }, // 4: 6
  ];
  const { sys, pid } = run(main);
  assert.notEqual(r(sys, 2), r(sys, 0));
  assert.equal(r(sys, 4), 6n);
  checkCounters(mmOf(sys, pid));
});
