/**
 * mlock, mlock2, munlock, mlockall, munlockall, MAP_LOCKED and MAP_POPULATE against Linux
 * 6.12's code (mm/mlock.c do_mlock, apply_vma_lock_flags, mlock_fixup, apply_mlockall_flags,
 * sys_mlockall; mm/gup.c __mm_populate, populate_vma_page_range; mm/mmap.c do_mmap,
 * mlock_future_ok, mmap_region; kernel/fork.c dup_mmap; mm/vmscan.c folio_evictable; mm/rmap.c
 * try_to_unmap_one), each syscall's checks in its order. The errno cases of mlock, mlock2,
 * munlock and mlockall and the residency after MAP_POPULATE and MLOCK_ONFAULT were also run
 * natively on a 6.18 kernel, which agreed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MmStruct } from '../../src/kernel/mm.js';
import { is_data_mapping, is_exec_mapping, is_stack_mapping } from '../../src/kernel/vm_account.js';
import type { System } from '../../src/system.js';
import type { Op } from '../../src/user/program.js';
import { boot, mmapAnon, records, ret } from './helpers.js';

const EPERM = 1, EAGAIN = 11, ENOMEM = 12, EINVAL = 22;
const PAGE = 4096;
const PROT_NONE = 0, PROT_READ = 1, PROT_RW = 3;
const MAP_PRIVATE_ANON = 0x22, MAP_LOCKED = 0x2000, MAP_POPULATE = 0x8000, MAP_NONBLOCK = 0x10000;
const MLOCK_ONFAULT = 1, MCL_CURRENT = 1, MCL_FUTURE = 2, MCL_ONFAULT = 4;
const RLIMIT_MEMLOCK = 8;
const VM_LOCKED = 0x2000, VM_LOCKONFAULT = 0x80000;
const _LINUX_CAPABILITY_VERSION_3 = 0x20080522, CAP_IPC_LOCK = 14;

const sc = (name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args });
const sci = (into: string, name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args, into });
const errno = (e: number): bigint => BigInt(-e);
const store = (addr: string, value: number | bigint, size: 4 | 8 = 8): Op => ({ op: 'store', addr, value, size });
/** setrlimit(RLIMIT_MEMLOCK, {cur, max}) through a buffer at $lim. */
const memlock = (cur: number, max: number): Op[] => [store('$lim', BigInt(cur)), store('$lim+8', BigInt(max)), sc('setrlimit', RLIMIT_MEMLOCK, '$lim')];

/** Ops that drop CAP_IPC_LOCK from the effective and permitted sets (capget/capset v3). */
function dropIpcLock(): Op[] {
  return [
    mmapAnon('cap', 4096),
    store('$cap', _LINUX_CAPABILITY_VERSION_3, 4),
    store('$cap+4', 0, 4),
    sc('capget', '$cap', '$cap+16'),
    store('$cap+16', (0xffffffff & ~(1 << CAP_IPC_LOCK)) >>> 0, 4),
    store('$cap+20', (0xffffffff & ~(1 << CAP_IPC_LOCK)) >>> 0, 4),
    sc('capset', '$cap', '$cap+16'),
  ];
}

/** Runs `main` (one process, System `sys` or a new one) until its last operation has completed, the process still alive. */
function runProgram(main: Op[], sys: System = boot()): { sys: System; pid: number } {
  const pid = sys.spawn({ main });
  const last = main.length - 1;
  for (let n = 0; n < 1_000_000 && !records(sys).has(last); n++) if (!sys.step()) break;
  assert.ok(records(sys).has(last), `main[${last}] did not complete`);
  assert.deepEqual(sys.debugReports, []);
  return { sys, pid };
}

/** The mm of process `pid`. */
const mmOf = (sys: System, pid: number): MmStruct => sys.kernel.tasks.get(pid)!.mm!;
/** Whether each page of [addr, addr + n pages) has a present PTE. */
function resident(sys: System, pid: number, addr: bigint, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += sys.pte(pid, Number(addr) + i * PAGE)?.present ? '1' : '0';
  return s;
}
/** The VMAs of `mm` meeting [addr, addr + len) as "start-end flags" with the lock bits. */
function lockVmas(mm: MmStruct, addr: bigint, len: number): string[] {
  const a = Number(addr);
  return mm.vmas.list.filter((v) => v.vm_end > a && v.vm_start < a + len).map((v) => `${(v.vm_start - a) / PAGE}-${(v.vm_end - a) / PAGE}${v.vm_flags & VM_LOCKED ? ' L' : ''}${v.vm_flags & VM_LOCKONFAULT ? ' F' : ''}`);
}
/** vm_stat_account's counters recomputed from the VMAs: they must equal the mm's. */
function checkCounters(mm: MmStruct, what: string): void {
  let total = 0, data = 0, exec = 0, stack = 0, locked = 0;
  for (const v of mm.vmas.list) {
    const n = (v.vm_end - v.vm_start) / PAGE;
    total += n;
    if (is_exec_mapping(v.vm_flags)) exec += n;
    else if (is_stack_mapping(v.vm_flags, v.shadowStack)) stack += n;
    else if (is_data_mapping(v.vm_flags)) data += n;
    if (v.vm_flags & VM_LOCKED) locked += n;
  }
  assert.deepEqual([mm.total_vm, mm.data_vm, mm.exec_vm, mm.stack_vm, mm.locked_vm], [total, data, exec, stack, locked], what);
}

test('mlock: the checks in do_mlock\'s order (can_do_mlock, RLIMIT_MEMLOCK, apply_vma_lock_flags, the populate\'s POSIX errors)', () => {
  const main: Op[] = [
    mmapAnon('lim', PAGE), // 0
    sci('a', 'mmap', 0, 4 * PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0), // 1
    sc('munmap', '$a+4096', PAGE), // 2: a hole at page 1
    sc('mlock', '$a', 3 * PAGE), // 3: the hole: -ENOMEM, page 0 locked
    sc('mlock', 0x1000, -0x1000n & 0xffffffffffffffffn), // 4: the end wraps: -EINVAL
    sc('mlock', 0x1000, PAGE), // 5: no VMA at start
    sci('n', 'mmap', 0, PAGE, PROT_NONE, MAP_PRIVATE_ANON, -1, 0), // 6
    sc('mlock', '$n', PAGE), // 7: populate_vma_page_range's -EFAULT is -ENOMEM
    sc('mlock', 0, 0), // 8: an empty range
    sc('mlock2', '$a', PAGE, 2), // 9: flags first
    sc('munlock', 0x1000, PAGE), // 10
    sc('mlock', '$a+2049', 1), // 11: len and start widened to page 2
    ...dropIpcLock(), // 12..18
    ...memlock(4 * PAGE, 4 * PAGE), // 19..21: locked so far: pages 0, 2 of $a and $n (VM_LOCKED stays on a PROT_NONE VMA)
    sc('mlock', '$a+12288', PAGE), // 22: 4 pages: fits
    sc('mlock', '$a', 4 * PAGE), // 23: 4 + 4 pages, less the 3 of the range locked already (count_mm_mlocked_page_nr): 5, over the limit
    sci('b', 'mmap', 0, PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0), // 24
    sc('mlock', '$b', PAGE), // 25: a fifth page: over RLIMIT_MEMLOCK
    sc('munlock', '$n', PAGE), // 26
    sc('mlock', '$b', PAGE), // 27: fits now
    ...memlock(0, 4 * PAGE), // 28..30
    sc('mlock', '$b', PAGE), // 31: RLIMIT_MEMLOCK 0 without CAP_IPC_LOCK: -EPERM before anything
    sc('mlock2', '$b', PAGE, 2), // 32: flags still first
    sc('munlock', '$b', PAGE), // 33: munlock needs no right
  ];
  const { sys, pid } = runProgram(main);
  assert.deepEqual([3, 4, 5, 7, 8, 9, 10, 11].map((i) => ret(sys, i)), [errno(ENOMEM), errno(EINVAL), errno(ENOMEM), errno(ENOMEM), 0n, errno(EINVAL), errno(ENOMEM), 0n]);
  assert.deepEqual([18, 21, 22, 23, 25, 26, 27, 30, 31, 32, 33].map((i) => ret(sys, i)), [0n, 0n, 0n, errno(ENOMEM), errno(ENOMEM), 0n, 0n, 0n, errno(EPERM), errno(EINVAL), 0n]);
  checkCounters(mmOf(sys, pid), 'counters');
});

test('mlock and munlock split and merge VMAs (mlock_fixup), count locked_vm, and populate; MLOCK_ONFAULT does not', () => {
  const main: Op[] = [
    sci('a', 'mmap', 0, 4 * PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0), // 0
    sc('mlock', '$a+4096', 2 * PAGE), // 1
    sc('getpid'), // 2
    sc('mlock', '$a', 4 * PAGE), // 3: merged into one
    sc('getpid'), // 4
    sc('munlock', '$a+8192', PAGE), // 5
    sc('getpid'), // 6
    sc('munlock', '$a', 4 * PAGE), // 7
    sc('getpid'), // 8
    sci('o', 'mmap', 0, 4 * PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0), // 9
    sc('mlock2', '$o', 4 * PAGE, MLOCK_ONFAULT), // 10
    store('$o+4096', 1), // 11: a fault in a VM_LOCKONFAULT VMA
    sc('getpid'), // 12
    sc('mlock', '$o', 4 * PAGE), // 13: VM_LOCKONFAULT cleared; populated now
    sc('getpid'), // 14
  ];
  const sys = boot();
  const pid = sys.spawn({ main });
  const seen: Record<number, [string[], number, string]> = {};
  for (let n = 0; n < 1_000_000; n++) {
    for (const i of [2, 4, 6, 8, 12, 14]) {
      if (seen[i] || !records(sys).has(i)) continue;
      const mm = mmOf(sys, pid);
      const a = sys.vars(pid).get(i >= 12 ? 'o' : 'a')!;
      seen[i] = [lockVmas(mm, a, 4 * PAGE), mm.locked_vm, resident(sys, pid, a, 4)];
      checkCounters(mm, `after ${i}`);
    }
    if (!sys.step()) break;
  }
  assert.deepEqual(seen[2], [['0-1', '1-3 L', '3-4'], 2, '0110']);
  assert.deepEqual(seen[4], [['0-4 L'], 4, '1111']);
  assert.deepEqual(seen[6], [['0-2 L', '2-3', '3-4 L'], 3, '1111']);
  assert.deepEqual(seen[8], [['0-4'], 0, '1111']);
  assert.deepEqual(seen[12], [['0-4 L F'], 4, '0100']);
  assert.deepEqual(seen[14], [['0-4 L'], 4, '1111']);
  assert.deepEqual(sys.debugReports, []);
});

test('MAP_LOCKED and MAP_POPULATE populate after mmap_lock is dropped; MAP_NONBLOCK does not; MAP_LOCKED checks can_do_mlock (-EPERM) then mlock_future_ok (-EAGAIN)', () => {
  const main: Op[] = [
    mmapAnon('lim', PAGE), // 0
    sci('p', 'mmap', 0, 3 * PAGE, PROT_RW, MAP_PRIVATE_ANON | MAP_POPULATE, -1, 0), // 1
    sci('r', 'mmap', 0, 3 * PAGE, PROT_READ, MAP_PRIVATE_ANON | MAP_POPULATE, -1, 0), // 2: read-only: the zero page
    sci('q', 'mmap', 0, 3 * PAGE, PROT_RW, MAP_PRIVATE_ANON | MAP_POPULATE | MAP_NONBLOCK, -1, 0), // 3
    sci('l', 'mmap', 0, 3 * PAGE, PROT_RW, MAP_PRIVATE_ANON | MAP_LOCKED, -1, 0), // 4
    sci('n', 'mmap', 0, 3 * PAGE, PROT_NONE, MAP_PRIVATE_ANON | MAP_POPULATE, -1, 0), // 5: populate errors ignored
    ...dropIpcLock(), // 6..12
    ...memlock(4 * PAGE, 4 * PAGE), // 13..15
    sc('mmap', 0, 2 * PAGE, PROT_RW, MAP_PRIVATE_ANON | MAP_LOCKED, -1, 0), // 16: 3 + 2 pages > 4
    sci('m', 'mmap', 0, PAGE, PROT_RW, MAP_PRIVATE_ANON | MAP_LOCKED, -1, 0), // 17: 4 pages
    ...memlock(0, 4 * PAGE), // 18..20
    sc('mmap', 0, PAGE, PROT_RW, MAP_PRIVATE_ANON | MAP_LOCKED, -1, 0), // 21
    sc('mmap', 0, PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0), // 22: not locked: no limit
  ];
  const { sys, pid } = runProgram(main);
  const v = sys.vars(pid);
  assert.equal(resident(sys, pid, v.get('p')!, 3), '111');
  assert.equal(resident(sys, pid, v.get('r')!, 3), '111');
  assert.equal(resident(sys, pid, v.get('q')!, 3), '000');
  assert.equal(resident(sys, pid, v.get('l')!, 3), '111');
  assert.equal(resident(sys, pid, v.get('n')!, 3), '000');
  assert.ok(ret(sys, 5) > 0n);
  assert.deepEqual([16, 17, 21].map((i) => ret(sys, i) < 0n ? ret(sys, i) : 0n), [errno(EAGAIN), 0n, errno(EPERM)]);
  assert.ok(ret(sys, 22) > 0n);
  assert.equal(mmOf(sys, pid).locked_vm, 4);
  checkCounters(mmOf(sys, pid), 'counters');
});

test('mlockall: its checks in order; MCL_CURRENT locks and populates every VMA, MCL_FUTURE later mappings (def_flags), munlockall undoes both', () => {
  const main: Op[] = [
    mmapAnon('lim', PAGE), // 0
    sci('a', 'mmap', 0, 2 * PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0), // 1
    sc('mlockall', 0), // 2
    sc('mlockall', MCL_ONFAULT), // 3
    sc('mlockall', 8), // 4
    sc('mlockall', MCL_FUTURE), // 5: the VMAs stay as they are
    sci('f', 'mmap', 0, 2 * PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0), // 6: locked and populated
    sc('mlockall', MCL_FUTURE | MCL_ONFAULT), // 7
    sci('g', 'mmap', 0, 2 * PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0), // 8: locked on fault
    sc('munlockall'), // 9
    sci('h', 'mmap', 0, 2 * PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0), // 10: not locked
    sc('mlockall', MCL_CURRENT), // 11: everything, $a and $h populated
    sc('getpid'), // 12
    sc('munlockall'), // 13
    ...dropIpcLock(), // 14..20
    ...memlock(PAGE, PAGE), // 21..23
    sc('mlockall', MCL_CURRENT), // 24: total_vm over the limit
    sc('mlockall', MCL_FUTURE), // 25: MCL_FUTURE alone is not held to it
    sc('mmap', 0, 2 * PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0), // 26: but the mappings are (mlock_future_ok)
    ...memlock(0, PAGE), // 27..29
    sc('mlockall', 0), // 30: -EINVAL before -EPERM
    sc('mlockall', MCL_CURRENT), // 31
  ];
  const sys = boot();
  const pid = sys.spawn({ main });
  let at12: [string, string, string[]] | null = null;
  let at9: [string, string] | null = null;
  for (let n = 0; n < 1_000_000 && !records(sys).has(main.length - 1); n++) {
    if (!at9 && records(sys).has(9)) at9 = [resident(sys, pid, sys.vars(pid).get('f')!, 2), resident(sys, pid, sys.vars(pid).get('g')!, 2)];
    if (!at12 && records(sys).has(12)) {
      const v = sys.vars(pid);
      const mm = mmOf(sys, pid);
      at12 = [resident(sys, pid, v.get('a')!, 2), resident(sys, pid, v.get('h')!, 2), mm.vmas.list.filter((x) => !(x.vm_flags & VM_LOCKED)).map((x) => x.name)];
      checkCounters(mm, 'after mlockall(MCL_CURRENT)');
    }
    if (!sys.step()) break;
  }
  assert.deepEqual([2, 3, 4, 5, 7, 9, 11, 13].map((i) => ret(sys, i)), [errno(EINVAL), errno(EINVAL), errno(EINVAL), 0n, 0n, 0n, 0n, 0n]);
  assert.deepEqual(at9, ['11', '00'], 'MCL_FUTURE: populated; with MCL_ONFAULT: not');
  assert.deepEqual(at12, ['11', '11', []], 'every VMA locked, the private writable ones populated');
  assert.deepEqual([24, 25, 26, 30, 31].map((i) => ret(sys, i) < 0n ? ret(sys, i) : 0n), [errno(ENOMEM), 0n, errno(EAGAIN), errno(EINVAL), errno(EPERM)]);
  assert.deepEqual(sys.debugReports, []);
});

test('fork: the child\'s VMAs are not locked and its locked_vm is 0; its counters are the parent\'s (dup_mmap)', () => {
  const main: Op[] = [
    sci('a', 'mmap', 0, 2 * PAGE, PROT_RW, MAP_PRIVATE_ANON | MAP_LOCKED, -1, 0), // 0
    sc('mlockall', MCL_FUTURE), // 1
    { op: 'syscall', name: 'fork', child: [sci('c', 'mmap', 0, PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0), sc('getpid'), sc('exit_group', 0)] }, // 2
    sc('wait4', -1, 0, 0, 0), // 3
  ];
  const sys = boot();
  const pid = sys.spawn({ main: [...main, sc('getpid')] });
  let child: [number, number, number] | null = null;
  for (let n = 0; n < 1_000_000; n++) {
    const rec = records(sys, 'main.2.child').get(0);
    if (!child && rec) {
      const mm = mmOf(sys, rec.tid);
      child = [mm.locked_vm, mm.vmas.list.filter((x) => x.vm_flags & VM_LOCKED).length, mm.def_flags];
      checkCounters(mm, 'child');
    }
    if (!sys.step() || records(sys).has(4)) break;
  }
  // def_flags is not inherited either (mm_init keeps only VM_NOHUGEPAGE), so the child's mmap is not locked.
  assert.deepEqual(child, [0, 0, 0]);
  assert.equal(mmOf(sys, pid).locked_vm, 2);
  assert.deepEqual(sys.debugReports, []);
});

test('reclaim leaves mlocked pages in place (folio_evictable) and swaps out the others', () => {
  for (const lock of [false, true]) {
    const { sys, pid } = runProgram([
      sci('a', 'mmap', 0, 2 * PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0),
      store('$a', 1), store('$a+4096', 2),
      ...(lock ? [sc('mlock', '$a', 2 * PAGE)] : [sc('getpid')]),
    ], boot({ kernel: { swap_pages: 64 } }));
    assert.ok(sys.reclaim(0));
    for (let n = 0; n < 100_000 && sys.kernel.kswapd!.state !== 'sleeping'; n++) sys.step();
    assert.equal(sys.kernel.kswapd!.state, 'sleeping');
    assert.equal(resident(sys, pid, sys.vars(pid).get('a')!, 2), lock ? '11' : '00', lock ? 'locked' : 'not locked');
    assert.deepEqual(sys.debugReports, []);
  }
});

test('mprotect making a locked private mapping writable breaks COW at once (mprotect_fixup\'s populate)', () => {
  const main: Op[] = [
    sci('a', 'mmap', 0, 2 * PAGE, PROT_READ, MAP_PRIVATE_ANON | MAP_LOCKED, -1, 0), // 0: the zero page mapped
    sc('mprotect', '$a', 2 * PAGE, PROT_RW), // 1
  ];
  const { sys, pid } = runProgram(main);
  const a = Number(sys.vars(pid).get('a')!);
  for (const va of [a, a + PAGE]) {
    const p = sys.pte(pid, va)!;
    assert.ok(p.present && p.rw, `0x${va.toString(16)} writable`);
  }
});

test('execve: the new mm has no lock bits (mm_init keeps only VM_NOHUGEPAGE of def_flags) and locked_vm 0', () => {
  const sys = boot();
  sys.addImage('next', { main: [sci('n', 'mmap', 0, PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0), sc('getpid')] });
  sys.spawn({ main: [sci('a', 'mmap', 0, PAGE, PROT_RW, MAP_PRIVATE_ANON | MAP_LOCKED, -1, 0), sc('mlockall', MCL_CURRENT | MCL_FUTURE), sc('execve', '&next', 0, 0)], strings: { next: 'next' } });
  let seen: [number, number, number] | null = null;
  for (let n = 0; n < 1_000_000 && !seen; n++) {
    const rec = sys.log.find((x) => x.image === 'next' && x.index === 1);
    if (rec) {
      const mm = mmOf(sys, rec.tid);
      seen = [mm.def_flags, mm.locked_vm, mm.vmas.list.filter((v) => v.vm_flags & VM_LOCKED).length];
      checkCounters(mm, 'after execve');
      break;
    }
    if (!sys.step()) break;
  }
  assert.deepEqual(seen, [0, 0, 0]);
  assert.deepEqual(sys.debugReports, []);
});
