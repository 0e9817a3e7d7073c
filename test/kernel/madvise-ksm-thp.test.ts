/**
 * madvise's KSM, THP and memory-failure advice against Linux 6.12's code: mm/madvise.c
 * (madvise_behavior_valid with CONFIG_KSM, CONFIG_TRANSPARENT_HUGEPAGE and CONFIG_MEMORY_FAILURE,
 * do_madvise, madvise_vma_behavior, madvise_inject_error), mm/ksm.c (ksm_madvise,
 * vma_ksm_compatible), mm/khugepaged.c (hugepage_madvise, madvise_collapse,
 * hpage_collapse_scan_pmd, find_pmd_or_thp_or_none, madvise_collapse_errno), mm/huge_memory.c
 * and include/linux/huge_mm.h (thp_vma_allowable_orders, thp_vma_suitable_order) and
 * fs/proc/task_mmu.c (show_smap's THPeligible, show_smap_vma_flags).
 *
 * Host-checked (a C program on the host's 6.18 kernel, Debian's THP setting "madvise"): the
 * results of MERGEABLE, UNMERGEABLE, HUGEPAGE and NOHUGEPAGE, the VmFlags and THPeligible lines
 * they give (less `sd`: the host has no CONFIG_MEM_SOFT_DIRTY, Debian's 6.12 has), and
 * MADV_COLLAPSE's -EINVAL cases, -EBUSY in a userfaultfd-registered range and -EAGAIN for a page
 * with a reference beyond its mapping. Not on the host: a PMD of zero-page entries is -EINVAL
 * in 6.12 (SCAN_PAGE_RO) where 6.18 collapses it; a collapse that would succeed is -ENOMEM in
 * the model, which has no huge page to allocate (khugepaged.ts); the host has no
 * CONFIG_MEMORY_FAILURE (MADV_HWPOISON and MADV_SOFT_OFFLINE are -EINVAL there), so their
 * expectations come from madvise_inject_error alone.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import type { System } from '../../src/system.js';
import { boot, fileText, records, ret, runProgram } from './helpers.js';

const EPERM = 1, ENOMEM = 12, EFAULT = 14, EBUSY = 16, EAGAIN = 11, EINVAL = 22;
const PAGE = 4096, PMD = 2 ** 21;
const PROT_NONE = 0, PROT_RW = 3;
const MAP_FIXED_ANON = 0x32, MAP_PRIVATE_ANON = 0x22, MAP_SHARED_ANON = 0x21;
const O_RDONLY = 0, O_RDWR = 2, O_CREAT = 0o100, O_TRUNC = 0o1000;
const MADV_MERGEABLE = 12, MADV_UNMERGEABLE = 13, MADV_HUGEPAGE = 14, MADV_NOHUGEPAGE = 15, MADV_COLLAPSE = 25, MADV_HWPOISON = 100, MADV_SOFT_OFFLINE = 101;
const VM_HUGEPAGE = 0x20000000, VM_NOHUGEPAGE = 0x40000000, VM_MERGEABLE = 1 << 31;
const sc = (name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args });
const sci = (into: string, name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args, into });
const madvise = (addr: string | number, len: number | bigint, advice: number): Op => sc('madvise', addr, len, advice);
const fixed = (addr: number, len: number): Op => sc('mmap', addr, len, PROT_RW, MAP_FIXED_ANON, -1, 0);
const errno = (e: number): bigint => BigInt(-e);

/** Ops that read /proc/self/smaps (`&smaps`) into `$buf` and leave it in /tmp/out. */
const dumpSmaps: Op[] = [
  sci('sfd', 'open', '&smaps', O_RDONLY, 0),
  sci('n', 'read', '$sfd', '$buf', 65536),
  sci('ofd', 'open', '&out', O_CREAT | O_RDWR | O_TRUNC, 0o644),
  sc('write', '$ofd', '$buf', '$n'),
];

/** smaps's THPeligible and VmFlags lines of the VMA starting at `start`. */
function smapsOf(text: string, start: number): { thp: string; flags: string } {
  const lines = text.split('\n');
  const i = lines.findIndex((l) => l.startsWith(`${start.toString(16).padStart(8, '0')}-`));
  assert.ok(i >= 0, `no VMA at ${start.toString(16)} in\n${text}`);
  const rest = lines.slice(i + 1);
  const thp = rest.find((l) => l.startsWith('THPeligible:'))!;
  const flags = rest.find((l) => l.startsWith('VmFlags:'))!;
  return { thp: thp.replace(/ +/g, ' '), flags };
}

test('MADV_MERGEABLE, MADV_UNMERGEABLE, MADV_HUGEPAGE, MADV_NOHUGEPAGE: the flags smaps shows, and THPeligible', () => {
  const A = 0x40000000, B = 0x50000000, C = 0x60000000, D = 0x70000000;
  const main: Op[] = [
    sci('buf', 'mmap', 0, 65536, PROT_RW, MAP_PRIVATE_ANON, -1, 0), // 0
    fixed(A, 4 * PMD), madvise(A, 4 * PMD, MADV_MERGEABLE), // 1, 2
    fixed(B, 4 * PMD), madvise(B, 4 * PMD, MADV_MERGEABLE), madvise(B, 4 * PMD, MADV_UNMERGEABLE), madvise(B, 4 * PMD, MADV_UNMERGEABLE), // 3..6: the second is ignored
    fixed(C, 4 * PMD), madvise(C, 4 * PMD, MADV_NOHUGEPAGE), // 7, 8
    fixed(D, 4 * PMD), madvise(D, 4 * PMD, MADV_NOHUGEPAGE), madvise(D, 4 * PMD, MADV_HUGEPAGE), // 9..11
    sci('sh', 'mmap', 0, PAGE, PROT_RW, MAP_SHARED_ANON, -1, 0), madvise('$sh', PAGE, MADV_MERGEABLE), madvise('$sh', PAGE, MADV_HUGEPAGE), // 12..14
    sci('sm', 'mmap', 0, 2 * PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0), madvise('$sm', 2 * PAGE, MADV_HUGEPAGE), // 15, 16
    ...dumpSmaps, // 17..20
  ];
  const { sys } = runProgram({ main, strings: { smaps: '/proc/self/smaps', out: '/tmp/out' } });
  for (const i of [2, 4, 5, 6, 8, 10, 11, 13, 14, 16]) assert.equal(ret(sys, i), 0n, `main[${i}]`);
  const text = fileText(sys, '/tmp/out');
  // The host's lines, with `sd` (VM_SOFTDIRTY, bit 27) where Debian's soft-dirty puts it.
  assert.deepEqual(smapsOf(text, A), { thp: 'THPeligible: 0', flags: 'VmFlags: rd wr mr mw me ac sd mg ' });
  assert.deepEqual(smapsOf(text, B), { thp: 'THPeligible: 0', flags: 'VmFlags: rd wr mr mw me ac sd ' });
  assert.deepEqual(smapsOf(text, C), { thp: 'THPeligible: 0', flags: 'VmFlags: rd wr mr mw me ac sd nh ' });
  // thp_vma_allowable_orders with TVA_SMAPS: VM_HUGEPAGE under enabled=madvise, an aligned 2 MiB inside, no anon_vma needed.
  assert.deepEqual(smapsOf(text, D), { thp: 'THPeligible: 1', flags: 'VmFlags: rd wr mr mw me ac sd hg ' });
  // vma_ksm_compatible refuses VM_SHARED quietly; a shmem VMA is not THP-eligible without huge= or shmem_enabled.
  assert.deepEqual(smapsOf(text, Number(ret(sys, 12))), { thp: 'THPeligible: 0', flags: 'VmFlags: rd wr sh mr mw me ms sd hg ' });
  // Too small to hold an aligned huge page.
  assert.deepEqual(smapsOf(text, Number(ret(sys, 15))), { thp: 'THPeligible: 0', flags: 'VmFlags: rd wr mr mw me ac sd hg ' });
});

test('the KSM and THP flags split and merge VMAs (is_mergeable_vma compares them); fork keeps them (dup_mmap)', () => {
  const E = 0x70000000;
  const mask = VM_HUGEPAGE | VM_NOHUGEPAGE | VM_MERGEABLE;
  const layout = (sys: System, pid: number): string[] =>
    sys.kernel.tasks.get(pid)!.mm!.vmas.list.filter((x) => x.vm_start >= E && x.vm_start < E + 3 * PAGE)
      .map((x) => `${(x.vm_start - E) / PAGE}-${(x.vm_end - E) / PAGE}:${((x.vm_flags & mask) >>> 0).toString(16)}`);
  const seen: string[][] = [];
  const main: Op[] = [
    fixed(E, 3 * PAGE), // 0
    madvise(E + PAGE, PAGE, MADV_HUGEPAGE), sc('getpid'), // 1, 2
    madvise(E, 3 * PAGE, MADV_NOHUGEPAGE), sc('getpid'), // 3, 4
    madvise(E, PAGE, MADV_MERGEABLE), sc('getpid'), // 5, 6
    madvise(E, 3 * PAGE, MADV_MERGEABLE), sc('getpid'), // 7, 8
    { op: 'syscall', name: 'fork', into: 'child', child: [{ op: 'load', addr: E, into: 'x' }, sc('getpid'), sc('getpid')] }, // 9
    sc('wait4', -1, 0, 0, 0), // 10
  ];
  const sys = boot();
  const pid = sys.spawn({ main });
  for (const i of [2, 4, 6, 8]) {
    for (let n = 0; n < 1_000_000 && !records(sys).has(i); n++) if (!sys.step()) break;
    seen.push(layout(sys, pid));
  }
  for (let n = 0; n < 1_000_000 && !records(sys, 'main.9.child').has(0); n++) if (!sys.step()) break;
  assert.deepEqual(sys.debugReports, []);
  assert.deepEqual(seen, [
    ['0-1:0', '1-2:20000000', '2-3:0'],
    ['0-3:40000000'],
    ['0-1:c0000000', '1-3:40000000'],
    ['0-3:c0000000'],
  ]);
  const child = records(sys, 'main.9.child').get(0)!.tid;
  assert.deepEqual(layout(sys, child), layout(sys, pid));
  assert.deepEqual(layout(sys, child), ['0-3:c0000000']);
});

test('MADV_COLLAPSE: madvise_collapse\'s checks and results (host-checked where 6.12 and 6.18 agree)', () => {
  const A = 0x40000000, S = 0x50000000, U = 0x60000000, P = 0x68000000;
  const main: Op[] = [
    fixed(A, 4 * PMD), // 0
    madvise(A, 4 * PMD, MADV_COLLAPSE), // 1: no anon_vma yet: thp_vma_allowable_order refuses (-EINVAL)
    madvise(A, 4 * PMD, MADV_NOHUGEPAGE), // 2
    { op: 'store', addr: A, value: 1 }, // 3
    madvise(A, 4 * PMD, MADV_COLLAPSE), // 4: VM_NOHUGEPAGE (-EINVAL)
    madvise(A, 4 * PMD, MADV_HUGEPAGE), // 5
    madvise(A + PAGE, 2 * PAGE, MADV_COLLAPSE), // 6: no huge page inside, not starting on one: hend < hstart (-EINVAL)
    madvise(A + PMD, 2 * PAGE, MADV_COLLAPSE), // 7: none inside, starting on one: 0 of 0 (0)
    madvise(A + PAGE, PMD - PAGE, MADV_COLLAPSE), // 8: ends on one: 0 of 0 (0)
    madvise(A + PMD, PMD, MADV_COLLAPSE), // 9: an empty PMD entry: SCAN_PMD_NONE (-EINVAL)
    { op: 'load', addr: A + 2 * PMD, into: 'z' }, // 10: the zero page only
    madvise(A + 2 * PMD, PMD, MADV_COLLAPSE), // 11: no writable entry: SCAN_PAGE_RO (-EINVAL; 6.18 collapses)
    madvise(A, PMD, MADV_COLLAPSE), // 12: would collapse: the huge page cannot be had (-ENOMEM)
    madvise(A + 2 * PMD, 2 * PMD, MADV_COLLAPSE), // 13: SCAN_PAGE_RO goes on to the next; the last failure, SCAN_PMD_NONE, stops it (-EINVAL)
    sci('sh', 'mmap', 0, PAGE, PROT_RW, MAP_SHARED_ANON, -1, 0), // 14
    madvise('$sh', PAGE, MADV_COLLAPSE), // 15: too small (-EINVAL)
    sci('sm', 'mmap', 0, 2 * PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0), // 16
    { op: 'store', addr: '$sm', value: 1 }, // 17
    madvise('$sm', 2 * PAGE, MADV_COLLAPSE), // 18: too small (-EINVAL)
    sc('getpid'), // 19
    sc('mmap', S, 2 * PMD, PROT_RW, 0x31, -1, 0), // 20: MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED
    madvise(S, PMD, MADV_COLLAPSE), // 21: shmem, forced (shmem_huge_force): the allocation fails (-ENOMEM)
    fixed(U, 2 * PMD), // 22
    { op: 'store', addr: U, value: 1 }, // 23
    sci('uffd', 'userfaultfd', 0), // 24
    { op: 'store', addr: '$buf', value: 0xaa }, // 25: struct uffdio_api { UFFD_API, features 0 }
    { op: 'store', addr: '$buf+8', value: 0 }, // 26
    sc('ioctl', '$uffd', 0xc018aa3fn, '$buf'), // 27: UFFDIO_API
    { op: 'store', addr: '$buf', value: U }, // 28: struct uffdio_register { range, mode MISSING }
    { op: 'store', addr: '$buf+8', value: 2 * PMD }, // 29
    { op: 'store', addr: '$buf+16', value: 1 }, // 30
    sc('ioctl', '$uffd', 0xc020aa00n, '$buf'), // 31: UFFDIO_REGISTER
    madvise(U, PMD, MADV_COLLAPSE), // 32: an empty entry in a registered VMA: SCAN_EXCEED_NONE_PTE (-EBUSY)
    fixed(P, 2 * PMD), // 33
    { op: 'store', addr: P, value: 1 }, // 34
    sci('pipe', 'pipe', '$buf+64'), // 35
    { op: 'load', addr: '$buf+68', size: 4, into: 'wfd' }, // 36
    { op: 'store', addr: '$buf+128', value: P }, // 37: struct iovec
    { op: 'store', addr: '$buf+136', value: PAGE }, // 38
    sc('vmsplice', '$wfd', '$buf+128', 1, 0), // 39: the pipe holds a reference
    madvise(P, PMD, MADV_COLLAPSE), // 40: is_refcount_suitable fails: SCAN_PAGE_COUNT (-EAGAIN)
    { op: 'load', addr: A, into: 'a' }, // 41: the bytes are still there
  ];
  // A buffer first: main[i] is the program's op i + 1.
  const { sys } = runProgram([sci('buf', 'mmap', 0, PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0), ...main]);
  const at = (i: number): bigint => ret(sys, i + 1);
  assert.deepEqual(
    [1, 4, 6, 7, 8, 9, 11, 12, 13, 15, 18, 21, 27, 31, 32, 39, 40].map((i) => [i, at(i)]),
    [
      [1, errno(EINVAL)], [4, errno(EINVAL)], [6, errno(EINVAL)], [7, 0n], [8, 0n], [9, errno(EINVAL)], [11, errno(EINVAL)], [12, errno(ENOMEM)], [13, errno(EINVAL)],
      [15, errno(EINVAL)], [18, errno(EINVAL)], [21, errno(ENOMEM)], [27, 0n], [31, 0n], [32, errno(EBUSY)], [39, BigInt(PAGE)], [40, errno(EAGAIN)],
    ],
  );
  assert.equal(records(sys).get(42)!.value, 1n);
});

test('MADV_HWPOISON and MADV_SOFT_OFFLINE: do_madvise\'s checks first, then CAP_SYS_ADMIN, then each page looked up (madvise_inject_error)', () => {
  const main: Op[] = [
    sci('buf', 'mmap', 0, 4 * PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0), // 0
    sci('pn', 'mmap', 0, PAGE, PROT_NONE, MAP_PRIVATE_ANON, -1, 0), // 1
    { op: 'store', addr: '$buf', value: 0x1234 }, // 2
    madvise('$buf', PAGE, MADV_HWPOISON), // 3: root: the page is looked up (0)
    madvise('$buf+4096', PAGE + 1, MADV_SOFT_OFFLINE), // 4: two pages, the untouched ones faulted in for reading (0)
    madvise(0x10000, PAGE, MADV_HWPOISON), // 5: no VMA: get_user_pages_fast's -EFAULT
    madvise('$pn', PAGE, MADV_SOFT_OFFLINE), // 6: PROT_NONE: check_vma_flags refuses (-EFAULT)
    madvise('$buf', 3 * PAGE, MADV_HWPOISON), // 7: 0
    madvise('$buf+12288', 2 * PAGE, MADV_HWPOISON), // 8: the first page done, the second past the VMA (-EFAULT)
    { op: 'store', addr: '$buf+2048', value: 0x20080522n, size: 4 }, // 9: capset v3 header, pid 0
    { op: 'store', addr: '$buf+2052', value: 0, size: 4 }, // 10
    { op: 'store', addr: '$buf+2056', value: 0xffdfffffn, size: 4 }, // 11: effective without CAP_SYS_ADMIN (21)
    { op: 'store', addr: '$buf+2060', value: 0xffffffffn, size: 4 }, // 12: permitted
    { op: 'store', addr: '$buf+2064', value: 0, size: 4 }, // 13: inheritable
    { op: 'store', addr: '$buf+2068', value: 0x1ff, size: 4 }, // 14
    { op: 'store', addr: '$buf+2072', value: 0x1ff, size: 4 }, // 15
    { op: 'store', addr: '$buf+2076', value: 0, size: 4 }, // 16
    sc('capset', '$buf+2048', '$buf+2056'), // 17
    madvise('$buf+1', PAGE, MADV_HWPOISON), // 18: misaligned: -EINVAL before the capability
    madvise(0x10000, 0, MADV_SOFT_OFFLINE), // 19: an empty range: 0 before the capability
    madvise('$buf', PAGE, MADV_HWPOISON), // 20: -EPERM
    madvise(0x10000, PAGE, MADV_SOFT_OFFLINE), // 21: -EPERM before the lookup
    { op: 'load', addr: '$buf', into: 'v' }, // 22
  ];
  const { sys } = runProgram(main);
  const want: [number, bigint][] = [[3, 0n], [4, 0n], [5, errno(EFAULT)], [6, errno(EFAULT)], [7, 0n], [8, errno(EFAULT)], [17, 0n], [18, errno(EINVAL)], [19, 0n], [20, errno(EPERM)], [21, errno(EPERM)]];
  assert.deepEqual(want.map(([i]) => [i, ret(sys, i)]), want);
  // The model poisons nothing (madvise.ts madvise_inject_error's XXX): the bytes stay.
  assert.equal(records(sys).get(22)!.value, 0x1234n);
});
