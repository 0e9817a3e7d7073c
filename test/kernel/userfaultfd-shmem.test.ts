/**
 * userfaultfd on shmem and the fork event, against Linux 6.12's code: registration of shmem
 * VMAs (include/linux/userfaultfd_k.h vma_can_userfault; fs/userfaultfd.c userfaultfd_register
 * and its ioctls mask), shmem's missing and minor faults (mm/shmem.c shmem_get_folio_gfp calling
 * handle_userfault), UFFDIO_COPY and ZEROPAGE into shmem (mm/shmem.c shmem_mfill_atomic_pte;
 * mm/userfaultfd.c mfill_atomic_pte, mfill_atomic_install_pte, mfill_file_over_size),
 * UFFDIO_CONTINUE (fs/userfaultfd.c userfaultfd_continue; mm/userfaultfd.c
 * mfill_atomic_pte_continue), and UFFD_FEATURE_EVENT_FORK (fs/userfaultfd.c dup_userfaultfd,
 * dup_userfaultfd_complete, userfaultfd_event_wait_completion, userfaultfd_ctx_read,
 * resolve_userfault_fork; kernel/fork.c dup_mmap).
 *
 * Every value below was also produced natively, as root, by small C programs on the host (Linux
 * 6.18, memfd_create): the same results, masks and messages, but for one configuration
 * difference: the host has CONFIG_PTE_MARKER_UFFD_WP and registers shmem for WP (ioctls 0x17c),
 * where the model answers as a 6.12 kernel without it (-EINVAL; see src/kernel/userfaultfd.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import type { System } from '../../src/system.js';
import { mmapAnon, ret, runProgram, runWithEvents } from './helpers.js';

const ENOENT = 2, EAGAIN = 11, EFAULT = 14, EEXIST = 17, EINVAL = 22;
const O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000;
const UFFDIO_API = 0xc018aa3f, UFFDIO_REGISTER = 0xc020aa00, UFFDIO_UNREGISTER = 0x8010aa01;
const UFFDIO_COPY = 0xc028aa03, UFFDIO_ZEROPAGE = 0xc020aa04, UFFDIO_CONTINUE = 0xc020aa07;
const MODE_MISSING = 1, MODE_WP = 2, MODE_MINOR = 4;
const CONTINUE_MODE_DONTWAKE = 1, CONTINUE_MODE_WP = 2, COPY_MODE_WP = 2;
const F_EVENT_FORK = 1 << 1;
const UFFD_EVENT_PAGEFAULT = 0x12, UFFD_EVENT_FORK = 0x13, FLAG_WRITE = 1, FLAG_MINOR = 4;
const CLONE_VM = 0x100, CLONE_FS = 0x200, CLONE_FILES = 0x400, CLONE_SIGHAND = 0x800, CLONE_THREAD = 0x10000;
const THREAD = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
const MAP_SHARED = 0x01, MAP_PRIVATE = 0x02, MAP_ANONYMOUS = 0x20;
const P = 4096;
/** 6.12's UFFD_API_RANGE_IOCTLS has MOVE (bit 5) and POISON (bit 8), which the model does not: the host's masks less them. */
const NOT_MODELLED = (1n << 5n) | (1n << 8n);

const sc = (name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args });
const st = (addr: string, value: number | bigint | string): Op => ({ op: 'store', addr, value });
const ld = (addr: string, into: string, size?: 1 | 2 | 4 | 8): Op => ({ op: 'load', addr, into, ...(size ? { size } : {}) });
const errno = (e: number): bigint => BigInt(-e);
const val = (sys: System, index: number, fn = 'main'): bigint => ret(sys, index, fn);

/** uffdio_register (or a uffdio_range) at $buf+64: start, len, mode; then the ioctl `cmd` on `uffd`. */
const range = (cmd: number, start: string | number, len: number, mode = 0, uffd = '$uffd'): Op[] => [st('$buf+64', start), st('$buf+72', len), st('$buf+80', mode), sc('ioctl', uffd, cmd, '$buf+64')];
/** uffdio_continue at $buf+256: start, len, mode; `mapped` comes back at $buf+280 (0x5a5a before). */
const cont = (start: string | number, len: number, mode = 0): Op[] => [st('$buf+256', start), st('$buf+264', len), st('$buf+272', mode), st('$buf+280', 0x5a5a), sc('ioctl', '$uffd', UFFDIO_CONTINUE, '$buf+256')];
/** uffdio_copy at $buf+192: dst, src, len, mode; `copy` comes back at $buf+224. */
const copy = (dst: string | number, src: string | number, len: number, mode = 0, uffd = '$uffd'): Op[] => [st('$buf+192', dst), st('$buf+200', src), st('$buf+208', len), st('$buf+216', mode), st('$buf+224', 0x5a5a), sc('ioctl', uffd, UFFDIO_COPY, '$buf+192')];
/** uffdio_zeropage at $buf+320: start, len, mode; `zeropage` at $buf+344. */
const zeropage = (start: string, len: number): Op[] => [st('$buf+320', start), st('$buf+328', len), st('$buf+336', 0), st('$buf+344', 0x5a5a), sc('ioctl', '$uffd', UFFDIO_ZEROPAGE, '$buf+320')];

/**
 * Ops 0..9: $buf (3 pages of scratch), a memfd of 4 pages ($fd), mapped shared twice ($a, the
 * one registered, and $b, the other view, as QEMU's postcopy maps guest memory), $uffd with
 * `flags`, UFFDIO_API asking for `features`.
 */
const prologue = (flags = O_NONBLOCK, features = 0): Op[] => [
  mmapAnon('buf', 3 * P), // 0
  { op: 'syscall', name: 'memfd_create', args: ['&m', 0], into: 'fd' }, // 1
  sc('ftruncate', '$fd', 4 * P), // 2
  { op: 'syscall', name: 'mmap', args: [0, 4 * P, 3, MAP_SHARED, '$fd', 0], into: 'a' }, // 3
  { op: 'syscall', name: 'mmap', args: [0, 4 * P, 3, MAP_SHARED, '$fd', 0], into: 'b' }, // 4
  { op: 'syscall', name: 'userfaultfd', args: [flags], into: 'uffd' }, // 5
  st('$buf', 0xaa), st('$buf+8', features), sc('ioctl', '$uffd', UFFDIO_API, '$buf'), // 6..8
  st('$buf+4096', 0x0909090909090909n), // 9: a source page
];
const strings = { m: 'm' };

test('UFFDIO_REGISTER on shmem: MISSING and MINOR on memfd, private tmpfs and shared anonymous mappings, the ioctls; WP and MINOR on anonymous memory refused', () => {
  const main: Op[] = [
    ...prologue(), // 0..9
    { op: 'syscall', name: 'mmap', args: [0, 4 * P, 3, MAP_PRIVATE, '$fd', 0], into: 'pv' }, // 10
    { op: 'syscall', name: 'mmap', args: [0, 4 * P, 3, MAP_SHARED | MAP_ANONYMOUS, -1, 0], into: 'sa' }, // 11
    mmapAnon('an', 4 * P), // 12
    ...range(UFFDIO_REGISTER, '$a', 4 * P, MODE_MISSING), ld('$buf+88', 'i1'), // 13..17
    ...range(UFFDIO_REGISTER, '$a', 4 * P, MODE_MINOR), ld('$buf+88', 'i2'), // 18..22: the same context: the modes replaced
    ...range(UFFDIO_REGISTER, '$a', 4 * P, MODE_MINOR | MODE_MISSING), ld('$buf+88', 'i3'), // 23..27
    st('$buf+88', 0x77), ...range(UFFDIO_REGISTER, '$a', 4 * P, MODE_WP), ld('$buf+88', 'i4'), // 28..33: WP on shmem
    ...range(UFFDIO_REGISTER, '$pv', 4 * P, MODE_MINOR), ld('$buf+88', 'i5'), // 34..38: a tmpfs file mapped private is shmem too
    ...range(UFFDIO_REGISTER, '$sa', 4 * P, MODE_MINOR | MODE_MISSING), ld('$buf+88', 'i6'), // 39..43
    ...range(UFFDIO_REGISTER, '$an', 4 * P, MODE_MINOR), // 44..47
    ...range(UFFDIO_UNREGISTER, '$a', 4 * P), // 48..51
  ];
  const { sys } = runProgram({ main, strings });
  assert.deepEqual([16, 21, 26, 37, 42].map((i) => val(sys, i)), [0n, 0n, 0n, 0n, 0n]);
  // 6.12's masks (and the host's): 0x13c without MINOR (no WRITEPROTECT, no CONTINUE), 0x1bc with it (CONTINUE, bit 7).
  assert.equal(val(sys, 17), 0x13cn & ~NOT_MODELLED);
  assert.deepEqual([22, 27, 38, 43].map((i) => val(sys, i)), Array(4).fill(0x1bcn & ~NOT_MODELLED));
  // vma_can_userfault without CONFIG_PTE_MARKER_UFFD_WP: WP only on anonymous memory (the host,
  // with the markers, says 0 and 0x17c); the mask is not written.
  assert.deepEqual([val(sys, 32), val(sys, 33)], [errno(EINVAL), 0x77n]);
  assert.equal(val(sys, 47), errno(EINVAL), 'MINOR needs shmem (or hugetlbfs)');
  assert.equal(val(sys, 51), 0n);
});

test('UFFDIO_CONTINUE: its checks in order, the page cache page mapped (writable in a shared VMA, read-only in a private one), -EEXIST, past the end -EINVAL', () => {
  const main: Op[] = [
    ...prologue(), // 0..9
    ...range(UFFDIO_REGISTER, '$a', 4 * P, MODE_MINOR | MODE_MISSING), // 10..13
    st('$b+4096', 7), // 14: page 1 in the page cache, mapped only in $b
    sc('ioctl', '$uffd', UFFDIO_CONTINUE, 0x10), // 15: -EFAULT
    ...cont('$a+1', P), // 16..20: validate_range
    ...cont('$a+4096', P, 4), // 21..25: an unknown mode: -EINVAL, `mapped` not written
    ld('$buf+280', 'm1'), // 26
    ...cont('$a+4096', P, CONTINUE_MODE_WP), // 27..31: WP into a VMA not registered for WP
    ld('$buf+280', 'm2'), // 32
    ...cont('$buf', P), // 33..37: not registered: -ENOENT
    ...cont('$a', P), // 38..42: no page in the page cache: -EFAULT
    ld('$buf+280', 'm3'), // 43
    ...cont('$a+4096', P, CONTINUE_MODE_DONTWAKE), // 44..48
    ld('$buf+280', 'm4'), // 49
    ld('$a+4096', 'v'), // 50: the page cache's page, no fault
    st('$a+4096', 8), ld('$b+4096', 'vb'), // 51..52: shared: the same page, writable
    ...cont('$a+4096', 2 * P), // 53..57: the first PTE is there: -EEXIST, nothing mapped
    ld('$buf+280', 'm5'), // 58
    { op: 'syscall', name: 'mmap', args: [0, 4 * P, 3, MAP_PRIVATE, '$fd', 0], into: 'pv' }, // 59
    ...range(UFFDIO_REGISTER, '$pv', 4 * P, MODE_MINOR), // 60..63
    ...cont('$pv+4096', P), // 64..68
    ld('$pv+4096', 'p1'), // 69
    st('$pv+4096', 9), ld('$b+4096', 'vb2'), ld('$pv+4096', 'p2'), // 70..72: read-only: the write copies
    st('$b+12288', 5), sc('ftruncate', '$fd', 3 * P), // 73..74
    ...cont('$a+12288', P), // 75..79: past i_size: shmem_get_folio's -EINVAL
  ];
  const { sys } = runProgram({ main, strings });
  assert.deepEqual([15, 20, 25, 26, 31, 32, 37, 42, 43].map((i) => val(sys, i)), [
    errno(EFAULT), errno(EINVAL), errno(EINVAL), 0x5a5an, errno(EINVAL), errno(EINVAL), errno(ENOENT), errno(EFAULT), errno(EFAULT),
  ]);
  assert.deepEqual([48, 49, 50, 52].map((i) => val(sys, i)), [0n, 4096n, 7n, 8n]);
  assert.deepEqual([57, 58].map((i) => val(sys, i)), [errno(EEXIST), errno(EEXIST)]);
  assert.deepEqual([68, 69, 71, 72].map((i) => val(sys, i)), [0n, 8n, 8n, 9n], 'mfill_atomic_install_pte: a page-cache page in a private VMA is mapped read-only, so the write makes a private copy');
  assert.equal(val(sys, 79), errno(EINVAL));
});

test('UFFDIO_COPY and ZEROPAGE into shmem: the page goes into the page cache (the other view sees it), -EEXIST for a cached page, -EFAULT past the end; a private VMA gets an anonymous page', () => {
  const main: Op[] = [
    ...prologue(), // 0..9
    ...range(UFFDIO_REGISTER, '$a', 4 * P, MODE_MISSING), // 10..13
    ...copy('$a+8192', '$buf+4096', P), // 14..19
    ld('$buf+224', 'c1'), ld('$a+8192', 'a2'), ld('$b+8192', 'b2'), // 20..22
    st('$b+12288', 1), // 23: page 3 cached, not mapped in $a
    ...copy('$a+12288', '$buf+4096', P), // 24..29: shmem_add_to_page_cache: -EEXIST
    ld('$buf+224', 'c2'), // 30
    ...copy('$a+8192', '$buf+4096', P), // 31..36: mapped already: -EEXIST
    ...copy('$a', '$buf+4096', P, COPY_MODE_WP), // 37..42: WP into a VMA not registered for WP
    ...zeropage('$a', P), // 43..47: a zeroed page of the cache, not the zero page
    ld('$buf+344', 'z'), // 48
    st('$a', 0x31), ld('$b', 'b0'), // 49..50: shared and writable
    sc('ftruncate', '$fd', 3 * P), // 51
    ...copy('$a+12288', '$buf+4096', P), // 52..57: past i_size: -EFAULT
    ...zeropage('$a+12288', P), // 58..62
    { op: 'syscall', name: 'mmap', args: [0, 3 * P, 3, MAP_PRIVATE, '$fd', 0], into: 'pv' }, // 63
    ...range(UFFDIO_REGISTER, '$pv', 3 * P, MODE_MISSING), // 64..67
    ...copy('$pv+4096', '$buf+4096', P), // 68..73: a private VMA: an anonymous page, the file's hole left alone
    ld('$pv+4096', 'p1'), ld('$b+4096', 'b1'), // 74..75
  ];
  const { sys } = runProgram({ main, strings });
  assert.deepEqual([19, 20, 21, 22].map((i) => val(sys, i)), [0n, 4096n, 0x0909090909090909n, 0x0909090909090909n]);
  assert.deepEqual([29, 30, 36, 42].map((i) => val(sys, i)), [errno(EEXIST), errno(EEXIST), errno(EEXIST), errno(EINVAL)]);
  assert.deepEqual([47, 48, 50].map((i) => val(sys, i)), [0n, 4096n, 0x31n]);
  assert.deepEqual([57, 62].map((i) => val(sys, i)), [errno(EFAULT), errno(EFAULT)], 'shmem_mfill_atomic_pte and mfill_atomic_pte_zeropage: past i_size');
  assert.deepEqual([73, 74, 75].map((i) => val(sys, i)), [0n, 0x0909090909090909n, 0n]);
});

/** A thread (on CPU 1) that reads one message into $buf+128 and answers with `answer`. Loads: 1 event, 2 flags, 3 address. */
function handler(answer: Op[]): Op[] {
  return [sc('read', '$uffd', '$buf+128', 32), ld('$buf+128', 'ev', 1), ld('$buf+136', 'fl'), ld('$buf+144', 'ad'), ...answer];
}

test('a minor fault on shmem waits for the handler thread on another CPU, which maps the cached page with UFFDIO_CONTINUE', () => {
  const H = handler([...cont('$a', P), ld('$buf+280', 'mapped')]);
  const main: Op[] = [
    ...prologue(0), // 0..9
    ...range(UFFDIO_REGISTER, '$a', 4 * P, MODE_MINOR), // 10..13
    st('$b', 0x42), // 14: the page is in the page cache, mapped in $b only
    { op: 'syscall', name: 'clone', args: [THREAD, 0, 0, 0, 0], into: 'tid', child: H, cpu: 1 }, // 15
    st('$a+8', 0x43), // 16: a write fault: MINOR|WRITE
    ld('$a', 'v'), ld('$b+8', 'w'), // 17..18
    ld('$a+4096', 'hole'), // 19: no page there and no MISSING registration: shmem allocates it
  ];
  const { sys, events } = runWithEvents({ main, strings }, { cpus: 2 });
  const C = 'main.15.child';
  assert.deepEqual([0, 1, 2].map((i) => val(sys, i, C)), [32n, BigInt(UFFD_EVENT_PAGEFAULT), BigInt(FLAG_MINOR | FLAG_WRITE)], 'userfault_msg: UFFD_PAGEFAULT_FLAG_MINOR for reason VM_UFFD_MINOR');
  assert.equal(val(sys, 3, C), val(sys, 3), 'the page-aligned address');
  assert.deepEqual([val(sys, 8, C), val(sys, 9, C)], [0n, 4096n]);
  assert.deepEqual([17, 18, 19].map((i) => val(sys, i)), [0x42n, 0x43n, 0n]);
  const a = val(sys, 3);
  const outcomes = events.filter((e) => e.type === 'page_fault' && BigInt(e.addr) >= a && BigInt(e.addr) < a + 0x1000n).map((e) => (e as { outcome: string }).outcome);
  assert.deepEqual(outcomes, ['userfault', 'spurious'], 'the fault waited, and its retry found the PTE CONTINUE set');
});

test('a missing fault on shmem waits for the handler, whose UFFDIO_COPY fills the page cache for both views', () => {
  const H = handler([...copy('$a+4096', '$buf+4096', P), ld('$buf+224', 'copied')]);
  const main: Op[] = [
    ...prologue(0), // 0..9
    ...range(UFFDIO_REGISTER, '$a', 4 * P, MODE_MISSING | MODE_MINOR), // 10..13
    { op: 'syscall', name: 'clone', args: [THREAD, 0, 0, 0, 0], into: 'tid', child: H, cpu: 1 }, // 14
    ld('$a+4104', 'v'), // 15: the page is not in the cache: MISSING (bytes 8..15 of the copied page: 0)
    ld('$b+4096', 'w'), // 16
  ];
  const { sys } = runProgram({ main, strings }, { cpus: 2 });
  const C = 'main.14.child';
  assert.deepEqual([0, 1, 2, 3].map((i) => val(sys, i, C)), [32n, BigInt(UFFD_EVENT_PAGEFAULT), 0n, val(sys, 3) + 4096n], 'a read, missing: no flags');
  assert.deepEqual([val(sys, 9, C), val(sys, 10, C)], [0n, 4096n]);
  assert.deepEqual([val(sys, 15), val(sys, 16)], [0n, 0x0909090909090909n]);
});

test('fork without UFFD_FEATURE_EVENT_FORK: the child\'s shmem VMA is not registered, so its minor fault maps the page at once', () => {
  const main: Op[] = [
    ...prologue(), // 0..9
    ...range(UFFDIO_REGISTER, '$a', 4 * P, MODE_MINOR), // 10..13
    st('$b', 0x42), // 14
    { op: 'syscall', name: 'fork', args: [], into: 'child', child: [ld('$a', 'c'), sc('exit', 0)] }, // 15
    sc('wait4', '$child', 0, 0, 0), // 16
    sc('read', '$uffd', '$buf+128', 32), // 17: no message
  ];
  const { sys } = runProgram({ main, strings });
  assert.equal(val(sys, 0, 'main.15.child'), 0x42n);
  assert.equal(val(sys, 17), errno(EAGAIN));
});

test('UFFD_FEATURE_EVENT_FORK: fork waits for the handler to read UFFD_EVENT_FORK (COPY, ZEROPAGE, CONTINUE meanwhile are -EAGAIN), whose descriptor then serves the child\'s faults', () => {
  // One CPU: main forks and waits in dup_userfaultfd_complete; the handler thread runs then.
  const H: Op[] = [
    ...copy('$area', '$buf+4096', P), // 0..5: mmap_changing is raised: -EAGAIN, written back
    ld('$buf+224', 'c0'), // 6
    ...zeropage('$area', P), ld('$buf+344', 'z0'), // 7..12: the same for ZEROPAGE
    ...cont('$area', P), ld('$buf+280', 'm0'), // 13..18: and CONTINUE (-EINVAL on anonymous memory, but mmap_changing comes first)
    sc('read', '$uffd', '$buf+128', 64), // 19: the fork event (one message)
    ld('$buf+128', 'ev', 1), ld('$buf+136', 'ufd', 4), ld('$buf+140', 'rest', 4), ld('$buf+144', 'r2'), // 20..23
    sc('fcntl', '$ufd', 1, 0), sc('fcntl', '$ufd', 3, 0), // 24..25: FD_CLOEXEC and O_NONBLOCK as the parent's
    st('$buf+192', 0xaa), st('$buf+200', 0), sc('ioctl', '$ufd', UFFDIO_API, '$buf+192'), // 26..28: the child's context is initialized already
    { op: 'syscall', name: 'fcntl', args: ['$ufd', 4, 0], into: 'fl' }, // 29: F_SETFL 0: block on the read
    sc('read', '$ufd', '$buf+128', 32), // 30: the child's fault
    ld('$buf+128', 'ev2', 1), ld('$buf+136', 'fl2'), ld('$buf+144', 'ad2'), // 31..33
    ...copy('$area', '$buf+4096', P, 0, '$ufd'), // 34..39: resolved through the child's descriptor
  ];
  const main: Op[] = [
    mmapAnon('buf', 3 * P), // 0
    mmapAnon('area', P), // 1
    { op: 'syscall', name: 'userfaultfd', args: [O_NONBLOCK | O_CLOEXEC], into: 'uffd' }, // 2
    st('$buf', 0xaa), st('$buf+8', F_EVENT_FORK), sc('ioctl', '$uffd', UFFDIO_API, '$buf'), // 3..5
    ...range(UFFDIO_REGISTER, '$area', P, MODE_MISSING), // 6..9
    st('$buf+4096', 0x5151), // 10
    { op: 'syscall', name: 'fcntl', args: ['$uffd', 4, 0], into: 'x' }, // 11: the handler's read of the parent's blocks
    { op: 'syscall', name: 'clone', args: [THREAD, 0, 0, 0, 0], into: 'tid', child: H }, // 12
    { op: 'syscall', name: 'fork', args: [], into: 'child', child: [ld('$area', 'c'), sc('exit', 0)] }, // 13
    sc('wait4', '$child', 0, 0, 0), // 14
  ];
  const { sys } = runProgram(main);
  const C = 'main.12.child';
  assert.deepEqual([val(sys, 5, C), val(sys, 6, C)], [errno(EAGAIN), errno(EAGAIN)], 'userfaultfd_copy: mmap_changing first, -EAGAIN written to copy');
  assert.deepEqual([11, 12, 17, 18].map((i) => val(sys, i, C)), [errno(EAGAIN), errno(EAGAIN), errno(EAGAIN), errno(EAGAIN)], 'userfaultfd_zeropage, userfaultfd_continue: the same');
  assert.equal(val(sys, 19, C), 32n);
  assert.equal(val(sys, 20, C), BigInt(UFFD_EVENT_FORK));
  const ufd = val(sys, 21, C);
  assert.equal(ufd, 4n, 'resolve_userfault_fork: the lowest free descriptor of the reader (0..2 are open, 3 is the parent\'s)');
  assert.deepEqual([val(sys, 22, C), val(sys, 23, C)], [0n, 0n], 'the rest of the message is zero (reserved1 cleared)');
  assert.deepEqual([val(sys, 24, C), val(sys, 25, C)], [1n, BigInt(O_NONBLOCK)], 'O_RDONLY | the context flags\' O_NONBLOCK, and O_CLOEXEC');
  assert.equal(val(sys, 28, C), errno(EINVAL), 'ctx->features copied with UFFD_FEATURE_INITIALIZED: the cmpxchg fails');
  assert.deepEqual([30, 31, 32].map((i) => val(sys, i, C)), [32n, BigInt(UFFD_EVENT_PAGEFAULT), 0n]);
  assert.equal(val(sys, 33, C), val(sys, 1), 'the child\'s fault at the same address');
  assert.equal(val(sys, 39, C), 0n);
  assert.equal(val(sys, 0, 'main.13.child'), 0x5151n, 'the child read what the handler copied into its page');
  assert.ok(val(sys, 13) > 0n);
  assert.equal(val(sys, 14), val(sys, 13));
});
