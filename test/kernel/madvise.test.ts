/**
 * madvise against Linux 6.12's code (mm/madvise.c do_madvise, madvise_walk_vmas,
 * madvise_vma_behavior, madvise_update_vma, madvise_dontneed_free_valid_vma, madvise_remove,
 * madvise_willneed, madvise_populate; mm/gup.c __get_user_pages with FOLL_MADV_POPULATE;
 * kernel/fork.c dup_mmap for VM_DONTCOPY and VM_WIPEONFORK), each advice's checks in its order.
 * The errno cases (the argument checks, MADV_POPULATE_* on read-only, PROT_NONE, a hole, no VMA
 * and past the end of a file, MADV_WIPEONFORK on shared and file mappings, MADV_REMOVE's checks
 * and its hole in a shmem object (a memfd sealed against writing refusing), MADV_DONTNEED and
 * MADV_DONTNEED_LOCKED on a locked VMA) were also run natively on a 6.18 kernel, which agreed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MmStruct } from '../../src/kernel/mm.js';
import type { System } from '../../src/system.js';
import type { Op } from '../../src/user/program.js';
import { boot, mmapAnon, records } from './helpers.js';

const EACCES = 13, EFAULT = 14, ENOMEM = 12, EINVAL = 22;
const PAGE = 4096;
const PROT_NONE = 0, PROT_READ = 1, PROT_RW = 3;
const MAP_SHARED = 0x01, MAP_PRIVATE = 0x02, MAP_PRIVATE_ANON = 0x22, MAP_SHARED_ANON = 0x21, MAP_LOCKED = 0x2000;
const MADV_NORMAL = 0, MADV_RANDOM = 1, MADV_SEQUENTIAL = 2, MADV_WILLNEED = 3, MADV_DONTNEED = 4, MADV_REMOVE = 9, MADV_DONTFORK = 10, MADV_DOFORK = 11;
const MADV_DONTDUMP = 16, MADV_DODUMP = 17, MADV_WIPEONFORK = 18, MADV_KEEPONFORK = 19, MADV_PAGEOUT = 21, MADV_POPULATE_READ = 22, MADV_POPULATE_WRITE = 23, MADV_DONTNEED_LOCKED = 24;
const VM_SEQ_READ = 0x8000, VM_RAND_READ = 0x10000, VM_DONTCOPY = 0x20000, VM_WIPEONFORK = 0x02000000, VM_DONTDUMP = 0x04000000;
const SIGSEGV = 11;

const sc = (name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args });
const sci = (into: string, name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args, into });
const madvise = (addr: string | number, len: number | bigint, advice: number): Op => sc('madvise', addr, len, advice);
const errno = (e: number): bigint => BigInt(-e);

/** Runs `main` (one process) until its last operation has completed, the process still alive. */
function run(main: Op[], sys: System = boot(), strings: Record<string, string> = {}): { sys: System; pid: number } {
  const pid = sys.spawn({ main, strings });
  const last = main.length - 1;
  for (let n = 0; n < 1_000_000 && !records(sys).has(last); n++) if (!sys.step()) break;
  assert.ok(records(sys).has(last), `main[${last}] did not complete`);
  assert.deepEqual(sys.debugReports, []);
  return { sys, pid };
}
const r = (sys: System, i: number, fn = 'main'): bigint => BigInt.asIntN(64, records(sys, fn).get(i)!.value!);
const mmOf = (sys: System, pid: number): MmStruct => sys.kernel.tasks.get(pid)!.mm!;
/** The VMAs of `mm` meeting [addr, addr + len), as "first-last page: flags of `mask`". */
function vmas(mm: MmStruct, addr: bigint, len: number, mask: number): string[] {
  const a = Number(addr);
  return mm.vmas.list.filter((v) => v.vm_end > a && v.vm_start < a + len).map((v) => `${(v.vm_start - a) / PAGE}-${(v.vm_end - a) / PAGE}:${(v.vm_flags & mask).toString(16)}`);
}

test('madvise: the argument checks in do_madvise\'s order, then each VMA; a hole is -ENOMEM after the rest is done', () => {
  const main: Op[] = [
    sci('w', 'mmap', 0, 4 * PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0), // 0
    sc('munmap', '$w+4096', PAGE), // 1
    madvise('$w+1', PAGE, 99), // 2: the advice first
    madvise('$w+1', PAGE, MADV_DONTFORK), // 3: then the alignment
    madvise('$w', -1n & 0xffffffffffffffffn, MADV_DONTFORK), // 4: PAGE_ALIGN(len_in) is 0
    madvise('$w', -8192n & 0xffffffffffffffffn, MADV_DONTFORK), // 5: the end wraps
    madvise(0x10000, 0, MADV_DONTFORK), // 6: an empty range, unmapped: 0
    madvise(0x10000, PAGE, MADV_DONTFORK), // 7: nothing there
    madvise('$w', 4 * PAGE, MADV_DONTFORK), // 8: a hole: -ENOMEM, the pages around it done
    madvise('$w', 3 * PAGE, MADV_DOFORK), // 9: the last page keeps VM_DONTCOPY
  ];
  const { sys, pid } = run(main);
  assert.deepEqual([2, 3, 4, 5, 6, 7, 8, 9].map((i) => r(sys, i)), [errno(EINVAL), errno(EINVAL), errno(EINVAL), errno(EINVAL), 0n, errno(ENOMEM), errno(ENOMEM), errno(ENOMEM)]);
  assert.deepEqual(vmas(mmOf(sys, pid), sys.vars(pid).get('w')!, 4 * PAGE, VM_DONTCOPY), ['0-1:0', '2-3:0', '3-4:20000']);
});

test('madvise flags: split and merged VMAs (madvise_update_vma) for the read-ahead, fork and dump advice', () => {
  const steps: [Op, string[]][] = [
    [madvise('$a+4096', PAGE, MADV_SEQUENTIAL), ['0-1:0', '1-2:8000', '2-3:0']],
    [madvise('$a', 3 * PAGE, MADV_RANDOM), ['0-3:10000']],
    [madvise('$a', PAGE, MADV_NORMAL), ['0-1:0', '1-3:10000']],
    [madvise('$a+4096', 2 * PAGE, MADV_NORMAL), ['0-3:0']],
    [madvise('$a+8192', PAGE, MADV_DONTFORK), ['0-2:0', '2-3:20000']],
    [madvise('$a', 3 * PAGE, MADV_WIPEONFORK), ['0-2:2000000', '2-3:2020000']],
    [madvise('$a', 3 * PAGE, MADV_KEEPONFORK), ['0-2:0', '2-3:20000']],
    [madvise('$a', 3 * PAGE, MADV_DOFORK), ['0-3:0']],
    [madvise('$a+4096', PAGE, MADV_DONTDUMP), ['0-1:0', '1-2:4000000', '2-3:0']],
    [madvise('$a+4096', PAGE, MADV_DODUMP), ['0-3:0']],
  ];
  const mask = VM_SEQ_READ | VM_RAND_READ | VM_DONTCOPY | VM_WIPEONFORK | VM_DONTDUMP;
  const main: Op[] = [sci('a', 'mmap', 0, 3 * PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0), ...steps.flatMap(([op]) => [op, sc('getpid')])];
  const sys = boot();
  const pid = sys.spawn({ main: [...main, sc('getpid')] });
  const seen: string[][] = [];
  for (let n = 0; n < 1_000_000 && seen.length < steps.length; n++) {
    const i = 2 + 2 * seen.length;
    if (records(sys).has(i)) {
      assert.equal(r(sys, i - 1), 0n, `step ${seen.length}`);
      seen.push(vmas(mmOf(sys, pid), sys.vars(pid).get('a')!, 3 * PAGE, mask));
      continue;
    }
    if (!sys.step()) break;
  }
  assert.deepEqual(seen, steps.map(([, want]) => want));
});

test('MADV_DONTFORK leaves the VMA out of the child; MADV_WIPEONFORK gives it empty; neither for shared or file mappings', () => {
  const sys = boot();
  const pid = sys.spawn({
    main: [
      sci('a', 'mmap', 0, PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0), // 0
      sci('b', 'mmap', 0, PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0), // 1
      { op: 'store', addr: '$a', value: 7 }, // 2
      { op: 'store', addr: '$b', value: 9 }, // 3
      madvise('$b', PAGE, MADV_WIPEONFORK), // 4
      sci('s', 'mmap', 0, PAGE, PROT_RW, MAP_SHARED_ANON, -1, 0), // 5
      madvise('$s', PAGE, MADV_WIPEONFORK), // 6
      sci('fd', 'memfd_create', '&m', 0), // 7
      sc('ftruncate', '$fd', PAGE), // 8
      sci('fp', 'mmap', 0, PAGE, PROT_RW, MAP_PRIVATE, '$fd', 0), // 9
      madvise('$fp', PAGE, MADV_WIPEONFORK), // 10: a private file mapping has a file
      { op: 'syscall', name: 'fork', child: [{ op: 'load', addr: '$b', into: 'wb' }, { op: 'load', addr: '$a', into: 'wa' }, sc('exit_group', 0)] }, // 11
      sc('wait4', -1, '$a+64', 0, 0), // 12
      madvise('$a', PAGE, MADV_DONTFORK), // 13
      { op: 'syscall', name: 'fork', child: [{ op: 'load', addr: '$a', into: 'da' }, sc('exit_group', 0)] }, // 14
      sc('wait4', -1, '$b+64', 0, 0), // 15
      { op: 'load', addr: '$b+64', size: 4, into: 'status' }, // 16
      { op: 'load', addr: '$b', into: 'pb' }, // 17: the parent's page is untouched
    ],
    strings: { m: 'm' },
  });
  sys.run({ maxSteps: 1_000_000 });
  assert.equal(sys.exitStatus(pid), 0);
  assert.deepEqual([4, 6, 10].map((i) => r(sys, i)), [0n, errno(EINVAL), errno(EINVAL)]);
  assert.equal(records(sys, 'main.11.child').get(0)!.value, 0n, 'wiped in the child');
  assert.equal(records(sys, 'main.11.child').get(1)!.value, 7n, 'copied in the child');
  const da = records(sys, 'main.14.child').get(0)!;
  assert.equal(da.signal?.signo, SIGSEGV, 'the VM_DONTCOPY VMA is not in the child');
  assert.equal(records(sys).get(16)!.value, BigInt(SIGSEGV), 'the child died of SIGSEGV');
  assert.equal(records(sys).get(17)!.value, 9n);
  assert.deepEqual(sys.debugReports, []);
});

test('MADV_DONTNEED refuses a VM_LOCKED VMA, MADV_DONTNEED_LOCKED zaps it; MADV_REMOVE\'s checks', () => {
  const main: Op[] = [
    sci('l', 'mmap', 0, PAGE, PROT_RW, MAP_PRIVATE_ANON | MAP_LOCKED, -1, 0), // 0
    { op: 'store', addr: '$l', value: 5 }, // 1
    madvise('$l', PAGE, MADV_DONTNEED), // 2
    madvise('$l', PAGE, MADV_REMOVE), // 3: VM_LOCKED first
    madvise('$l', PAGE, MADV_DONTNEED_LOCKED), // 4
    { op: 'load', addr: '$l', into: 'x' }, // 5: a fresh zero page
    sci('p', 'mmap', 0, PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0), // 6
    madvise('$p', PAGE, MADV_REMOVE), // 7: no file
    sci('fd', 'memfd_create', '&m', 0), // 8
    sc('ftruncate', '$fd', PAGE), // 9
    sci('fp', 'mmap', 0, PAGE, PROT_RW, MAP_PRIVATE, '$fd', 0), // 10
    madvise('$fp', PAGE, MADV_REMOVE), // 11: not shared
    sci('fs', 'mmap', 0, PAGE, PROT_READ, MAP_SHARED, '$fd', 0), // 12: shared, VM_MAYWRITE (opened read-write)
    madvise('$fs', PAGE, MADV_REMOVE), // 13
    sci('s', 'mmap', 0, PAGE, PROT_RW, MAP_SHARED_ANON, -1, 0), // 14
    madvise('$s', PAGE, MADV_REMOVE), // 15
  ];
  const { sys } = run(main, boot(), { m: 'm' });
  assert.deepEqual([2, 3, 4, 5, 7, 11, 13, 15].map((i) => r(sys, i)), [errno(EINVAL), errno(EINVAL), 0n, 0n, errno(EINVAL), errno(EACCES), 0n, 0n]);
});

test('MADV_POPULATE_READ and MADV_POPULATE_WRITE: faulted in; their errors as madvise_populate maps them', () => {
  const main: Op[] = [
    sci('p', 'mmap', 0, 2 * PAGE, PROT_READ, MAP_PRIVATE_ANON, -1, 0), // 0
    sci('n', 'mmap', 0, PAGE, PROT_NONE, MAP_PRIVATE_ANON, -1, 0), // 1
    sci('w', 'mmap', 0, 4 * PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0), // 2
    sc('munmap', '$w+4096', PAGE), // 3
    sci('fd', 'memfd_create', '&m', 0), // 4
    sc('ftruncate', '$fd', PAGE), // 5
    sci('f', 'mmap', 0, 2 * PAGE, PROT_RW, MAP_SHARED, '$fd', 0), // 6
    madvise('$p', 2 * PAGE, MADV_POPULATE_WRITE), // 7: read-only: check_vma_flags refuses
    madvise('$n', PAGE, MADV_POPULATE_READ), // 8: PROT_NONE
    madvise('$f', 2 * PAGE, MADV_POPULATE_READ), // 9: the second page past the file's end: SIGBUS
    madvise('$w', 3 * PAGE, MADV_POPULATE_WRITE), // 10: the hole
    madvise(0x10000, PAGE, MADV_POPULATE_READ), // 11: no VMA
    madvise('$p', 2 * PAGE, MADV_POPULATE_READ), // 12
    madvise('$w+8192', 2 * PAGE, MADV_POPULATE_WRITE), // 13
  ];
  const { sys, pid } = run(main, boot(), { m: 'm' });
  assert.deepEqual([7, 8, 9, 10, 11, 12, 13].map((i) => r(sys, i)), [errno(EINVAL), errno(EINVAL), errno(EFAULT), errno(ENOMEM), errno(ENOMEM), 0n, 0n]);
  const v = sys.vars(pid);
  const pte = (va: bigint, off: number) => sys.pte(pid, Number(va) + off);
  assert.ok(pte(v.get('p')!, 0)?.present && pte(v.get('p')!, PAGE)?.present, 'read-populated');
  assert.ok(pte(v.get('w')!, 0)?.rw, 'the page before the hole was write-populated before the hole was met');
  for (const off of [2 * PAGE, 3 * PAGE]) assert.ok(pte(v.get('w')!, off)?.rw, `write-populated at +${off}`);
  assert.ok(pte(v.get('f')!, 0)?.present, 'the file page before its end');
});

test('MADV_POPULATE_WRITE breaks COW after fork: the parent gets its own writable copy at once', () => {
  const sys = boot();
  const pid = sys.spawn({ main: [
    sci('a', 'mmap', 0, PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0),
    { op: 'store', addr: '$a', value: 3 },
    { op: 'syscall', name: 'fork', child: [sc('getpid'), sc('getpid'), sc('getpid'), sc('getpid')] },
    madvise('$a', PAGE, MADV_POPULATE_WRITE),
    sc('getpid'),
  ] });
  for (let n = 0; n < 1_000_000 && !records(sys).has(4); n++) if (!sys.step()) break;
  const a = sys.vars(pid).get('a')!;
  const child = Number(r(sys, 2));
  const mine = sys.pte(pid, a)!;
  const theirs = sys.pte(child, a)!;
  assert.equal(r(sys, 3), 0n);
  assert.ok(mine.rw, 'the parent\'s entry is writable');
  assert.notEqual(mine.pfn, theirs.pfn, 'on its own copy');
  assert.equal(sys.readUser(pid, a, 8), 3n);
});

test('MADV_WILLNEED reads a swapped-out page back into the swap cache, the entry still a swap entry', () => {
  const main: Op[] = [
    mmapAnon('vec', PAGE), // 0
    sci('a', 'mmap', 0, PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0), // 1
    { op: 'store', addr: '$a', value: 11 }, // 2
    madvise('$a', PAGE, MADV_PAGEOUT), // 3
    sc('mincore', '$a', PAGE, '$vec'), // 4
    { op: 'load', addr: '$vec', size: 1, into: 'before' }, // 5: out of the swap cache: 0
    madvise('$a', PAGE, MADV_WILLNEED), // 6
    sc('mincore', '$a', PAGE, '$vec'), // 7
    { op: 'load', addr: '$vec', size: 1, into: 'after' }, // 8: in the swap cache: 1 (mincore_page on the swap address space)
  ];
  const { sys, pid } = run(main, boot({ kernel: { swap_pages: 16 } }));
  assert.deepEqual([3, 4, 6, 7].map((i) => r(sys, i)), [0n, 0n, 0n, 0n]);
  assert.equal(records(sys).get(5)!.value, 0n);
  assert.equal(records(sys).get(8)!.value, 1n);
  assert.equal(sys.pte(pid, sys.vars(pid).get('a')!)?.present, false, 'still a swap entry');
  assert.equal(sys.readUser(pid, sys.vars(pid).get('a')!, 8), null);
});

test('MADV_REMOVE punches a hole in the shmem object (shmem_fallocate): the pages read 0 again, the size stays; a memfd sealed against writing refuses', () => {
  const EPERM = 1, MFD_ALLOW_SEALING = 2, F_ADD_SEALS = 1033, F_SEAL_FUTURE_WRITE = 0x10;
  const main: Op[] = [
    sci('s', 'mmap', 0, PAGE, PROT_RW, MAP_SHARED_ANON, -1, 0), // 0
    { op: 'store', addr: '$s', value: 5 }, // 1
    madvise('$s', PAGE, MADV_REMOVE), // 2
    { op: 'load', addr: '$s', into: 'v' }, // 3: 0
    sci('fd', 'memfd_create', '&m', MFD_ALLOW_SEALING), // 4
    sc('ftruncate', '$fd', 2 * PAGE), // 5
    sci('f', 'mmap', 0, 2 * PAGE, PROT_RW, MAP_SHARED, '$fd', 0), // 6
    { op: 'store', addr: '$f', value: 7 }, // 7
    { op: 'store', addr: '$f+4096', value: 8 }, // 8
    madvise('$f', PAGE, MADV_REMOVE), // 9
    sc('pread64', '$fd', '$s+64', 8, 0), // 10
    { op: 'load', addr: '$s+64', into: 'p0' }, // 11: 0
    sc('pread64', '$fd', '$s+64', 8, PAGE), // 12
    { op: 'load', addr: '$s+64', into: 'p1' }, // 13: 8
    sc('lseek', '$fd', 0, 2), // 14: the size: 8192
    sc('fcntl', '$fd', F_ADD_SEALS, F_SEAL_FUTURE_WRITE), // 15
    madvise('$f+4096', PAGE, MADV_REMOVE), // 16
    { op: 'load', addr: '$f+4096', into: 'p2' }, // 17: still 8
  ];
  const { sys } = run(main, boot(), { m: 'm' });
  assert.deepEqual([2, 3, 9, 11, 13, 14, 15, 16, 17].map((i) => r(sys, i)), [0n, 0n, 0n, 0n, 8n, BigInt(2 * PAGE), 0n, errno(EPERM), 8n]);
});
