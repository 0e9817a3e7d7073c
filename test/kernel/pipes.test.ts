/**
 * Pipes, vmsplice, splice and the page references they hold, against Linux 6.12's code:
 * fs/pipe.c (do_pipe2, pipe_read, pipe_write, pipe_release, pipe_fcntl, round_pipe_size),
 * fs/splice.c (vmsplice, iter_to_pipe, vmsplice_to_user, do_splice, splice_pipe_to_pipe,
 * iter_file_splice_write), mm/shmem.c (shmem_file_splice_read), drivers/char/mem.c
 * (copy_splice_read for /dev/zero, splice_write_null, /dev/null without splice_read),
 * lib/iov_iter.c (import_iovec), mm/gup.c (gup_must_unshare, try_grab_folio) and mm/memory.c
 * (do_wp_page's reuse test, copy_present_page for pinned pages). Every expected value below
 * was also observed natively on this project's 6.18 host with a C program making the same
 * calls (the pagemap frame numbers included), which agreed with the source.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { PG_anon_exclusive } from '../../src/kernel/page.js';
import { mmapAnon, records, ret, runProgram, runWithEvents } from './helpers.js';
import { readPte, ptePfn, pteWritable } from './lockstep.js';

const EBADF = 9, EAGAIN = 11, EFAULT = 14, EBUSY = 16, EINVAL = 22, ENOTTY = 25, ESPIPE = 29, EPIPE = 32;
const FIONREAD = 0x541b, FIONBIO = 0x5421, TCGETS = 0x5401;
const O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_CREAT = 0o100, O_APPEND = 0o2000, O_NONBLOCK = 0o4000, O_DIRECT = 0o40000;
const F_GETFL = 3, F_SETFL = 4, F_SETPIPE_SZ = 1031, F_GETPIPE_SZ = 1032;
const SPLICE_F_NONBLOCK = 2;
const SIGPIPE = 13, SIG_IGN = 1;
const sc = (name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args });
const errno = (e: number): bigint => BigInt(-e);
const AAAA = 0x41414141n, BBBB = 0x42424242n, CCCC = 0x43434343n, DDDD = 0x44444444n;
/** "hello" and "J", little-endian. */
const HELLO = 0x6f6c6c6568n, J = 0x4an;

test('pipe2: unknown flags, then a fildes that faults (both descriptors given back), then the read and write ends in order', () => {
  const { sys } = runProgram({
    main: [
      mmapAnon('buf', 4096), // 0
      sc('pipe2', '$buf', 0o100), // 1: O_CREAT is not a pipe2 flag
      sc('pipe2', 8, 0), // 2: fildes faults after the files and descriptors were made
      sc('open', '&null', O_RDONLY, 0), // 3: the lowest free descriptor is 3 again
      sc('pipe2', '$buf', O_NONBLOCK | O_DIRECT), // 4
      { op: 'load', addr: '$buf', size: 4, into: 'r' }, // 5
      { op: 'load', addr: '$buf+4', size: 4, into: 'w' }, // 6
      sc('fcntl', 4, F_GETFL), // 7: the read end: O_RDONLY | O_NONBLOCK, no O_DIRECT
      sc('fcntl', 5, F_GETFL), // 8: the write end: O_WRONLY | O_NONBLOCK | O_DIRECT
      sc('fstat', 4, '$buf+64'), // 9
      { op: 'load', addr: '$buf+88', size: 4, into: 'mode' }, // 10: st_mode
      { op: 'load', addr: '$buf+112', into: 'size' }, // 11: st_size
      sc('pipe', '$buf+1024'), // 12
    ],
    strings: { null: '/dev/null' },
  });
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12].map((i) => ret(sys, i)), [
    errno(EINVAL), errno(EFAULT), 3n, 0n, 4n, 5n, BigInt(O_RDONLY | O_NONBLOCK), BigInt(O_WRONLY | O_NONBLOCK | O_DIRECT), 0n, 0o10600n, 0n, 0n,
  ]);
});

test('pipe sizes: 16 pages; F_SETPIPE_SZ rounds to a power-of-two number of pages, refuses past 2^31 and below what is in the pipe', () => {
  const { sys } = runProgram({
    main: [
      mmapAnon('buf', 8192), // 0
      sc('pipe', '$buf'), // 1: 3, 4
      sc('fcntl', 3, F_GETPIPE_SZ), // 2
      sc('fcntl', 4, F_SETPIPE_SZ, 0), // 3: at least a page
      sc('fcntl', 4, F_SETPIPE_SZ, 5000), // 4: two pages
      sc('fcntl', 4, F_SETPIPE_SZ, 0x80000001), // 5: round_pipe_size gives 0
      sc('write', 4, '$buf', 10), // 6: one buffer
      sc('write', 4, '$buf', 4096), // 7: a second (10 + 4096 does not fit the first page)
      sc('fcntl', 4, F_SETPIPE_SZ, 4096), // 8: two buffers in use
      sc('fcntl', 3, F_SETPIPE_SZ, 8192), // 9: no change
      sc('fcntl', 0, F_GETPIPE_SZ), // 10: not a pipe
    ],
  });
  assert.deepEqual([2, 3, 4, 5, 6, 7, 8, 9, 10].map((i) => ret(sys, i)), [65536n, 4096n, 8192n, errno(EINVAL), 10n, 4096n, errno(EBUSY), 8192n, errno(EBADF)]);
});

test('pipe read and write: small writes merge into one buffer, no seeking, O_NONBLOCK -EAGAIN, a one-page pipe takes one page', () => {
  const { sys } = runProgram({
    main: [
      mmapAnon('buf', 3 * 4096), // 0
      sc('pipe', '$buf'), // 1: 3, 4
      { op: 'store', addr: '$buf+100', value: 0x3736353433323130n }, // 2: "01234567"
      sc('write', 4, '$buf+100', 8), // 3
      sc('write', 4, '$buf+100', 3), // 4: merged into the same buffer
      sc('read', 3, '$buf+4096', 100), // 5: both writes in one read
      { op: 'load', addr: '$buf+4104', size: 4, into: 'tail' }, // 6: "012" after the first 8
      sc('lseek', 3, 0, 0), // 7
      sc('pread64', 3, '$buf', 1, 0), // 8
      sc('fcntl', 3, F_SETFL, O_NONBLOCK), // 9
      sc('read', 3, '$buf', 100), // 10: empty, writers left
      sc('fcntl', 4, F_SETPIPE_SZ, 4096), // 11
      sc('fcntl', 4, F_SETFL, O_NONBLOCK), // 12
      sc('write', 4, '$buf', 8192), // 13: one slot: one page of it
      sc('write', 4, '$buf', 1), // 14: full
    ],
  });
  assert.deepEqual([3, 4, 5, 6, 7, 8, 10, 11, 13, 14].map((i) => ret(sys, i)), [8n, 3n, 11n, 0x323130n, errno(ESPIPE), errno(ESPIPE), errno(EAGAIN), 4096n, 4096n, errno(EAGAIN)]);
});

test('a packet pipe (O_DIRECT): each write its own buffer, a read takes at most one and drops the rest of it', () => {
  const { sys } = runProgram({
    main: [
      mmapAnon('buf', 4096), // 0
      sc('pipe2', '$buf', O_DIRECT), // 1
      sc('write', 4, '$buf+64', 10), // 2
      sc('write', 4, '$buf+64', 20), // 3
      sc('read', 3, '$buf+256', 100), // 4: the first packet only
      sc('read', 3, '$buf+256', 5), // 5: 5 of the second; its other 15 are gone
      sc('write', 4, '$buf+64', 3), // 6
      sc('read', 3, '$buf+256', 2), // 7: the third packet, truncated
      sc('fcntl', 3, F_SETFL, O_NONBLOCK), // 8
      sc('read', 3, '$buf+256', 100), // 9: nothing left
    ],
  });
  assert.deepEqual([4, 5, 7, 9].map((i) => ret(sys, i)), [10n, 5n, 2n, errno(EAGAIN)]);
});

test('no reader: write is SIGPIPE and -EPIPE (SIG_IGN shows the -EPIPE, the default kills); no writer: read is 0', () => {
  const { sys } = runProgram({
    main: [
      mmapAnon('buf', 4096), // 0
      { op: 'store', addr: '$buf+128', value: BigInt(SIG_IGN) }, // 1: struct sigaction { SIG_IGN }
      sc('rt_sigaction', SIGPIPE, '$buf+128', 0, 8), // 2
      sc('pipe', '$buf'), // 3: 3, 4
      sc('close', 3), // 4
      sc('write', 4, '$buf', 1), // 5
      sc('pipe', '$buf'), // 6: 3, 5
      sc('close', 5), // 7
      sc('read', 3, '$buf', 1), // 8
      { op: 'syscall', name: 'fork', args: [], into: 'c', child: [sc('write', 4, '$buf', 1)] }, // 9: the child resets nothing: SIG_IGN is inherited
      sc('wait4', -1, '$buf+512', 0, 0), // 10
      { op: 'load', addr: '$buf+512', size: 4, into: 'st' }, // 11
      { op: 'store', addr: '$buf+128', value: 0n }, // 12: SIG_DFL
      sc('rt_sigaction', SIGPIPE, '$buf+128', 0, 8), // 13
      { op: 'syscall', name: 'fork', args: [], into: 'c2', child: [sc('write', 4, '$buf', 1), sc('exit', 0)] }, // 14
      sc('wait4', -1, '$buf+512', 0, 0), // 15
      { op: 'load', addr: '$buf+512', size: 4, into: 'st2' }, // 16: killed by SIGPIPE
    ],
  });
  assert.equal(ret(sys, 5), errno(EPIPE));
  assert.equal(ret(sys, 8), 0n);
  assert.equal(ret(sys, 0, 'main.9.child'), errno(EPIPE));
  assert.equal(ret(sys, 11), 0n);
  assert.equal(ret(sys, 16) & 0x7fn, BigInt(SIGPIPE), 'the wait status of a process SIGPIPE killed');
});

test('vmsplice puts the page itself in the pipe: a later store shows; after fork the store copies and the pipe keeps the old bytes', () => {
  let own = false;
  const { sys } = runWithEvents({
    main: [
      mmapAnon('m', 4096), // 0
      mmapAnon('buf', 4096), // 1
      sc('pipe', '$buf'), // 2: 3, 4
      { op: 'store', addr: '$m', value: AAAA, size: 4 }, // 3
      { op: 'store', addr: '$buf+64', value: '$m' }, // 4: struct iovec { m, 4 }
      { op: 'store', addr: '$buf+72', value: 4 }, // 5
      sc('vmsplice', 4, '$buf+64', 1, 0), // 6
      { op: 'store', addr: '$m', value: BBBB, size: 4 }, // 7: the page is exclusive: written in place
      sc('read', 3, '$buf+128', 4), // 8
      { op: 'load', addr: '$buf+128', size: 4, into: 'r1' }, // 9: BBBB
      { op: 'store', addr: '$m', value: CCCC, size: 4 }, // 10
      sc('vmsplice', 4, '$buf+64', 1, 0), // 11
      { op: 'syscall', name: 'fork', args: [], into: 'c', child: [sc('exit', 0)] }, // 12
      sc('wait4', -1, 0, 0, 0), // 13
      { op: 'store', addr: '$m', value: DDDD, size: 4 }, // 14: not exclusive, the pipe holds a reference: copied
      sc('read', 3, '$buf+128', 4), // 15
      { op: 'load', addr: '$buf+128', size: 4, into: 'r2' }, // 16: CCCC
      { op: 'load', addr: '$m', size: 4, into: 'm2' }, // 17: DDDD
    ],
  }, {}, (e, s) => {
    if (e.type !== 'op' || e.record.fn !== 'main' || e.record.index !== 17) return;
    const k = s.kernel;
    const pte = readPte(k, k.tasks.get(e.record.tid)!.mm!, Number(records(s).get(0)!.value));
    own = pteWritable(pte) && (k.pages.flags[ptePfn(pte)] & PG_anon_exclusive) !== 0;
  });
  assert.deepEqual([6, 8, 9, 11, 15, 16, 17].map((i) => ret(sys, i)), [4n, 4n, BBBB, 4n, 4n, CCCC, DDDD]);
  assert.ok(own, 'the store after fork left the process its own exclusive, writable copy');
});

test('CVE-2020-29374: a child vmsplices its parent\'s page and unmaps it; the parent\'s later store copies, so the child never reads it', () => {
  const { sys } = runProgram({
    main: [
      mmapAnon('m', 4096), // 0
      mmapAnon('buf', 4096), // 1
      sc('pipe', '$buf'), // 2: 3, 4
      { op: 'store', addr: '$m', value: AAAA, size: 4 }, // 3: the parent's old secret
      { op: 'store', addr: '$buf+64', value: '$m' }, // 4
      { op: 'store', addr: '$buf+72', value: 4 }, // 5
      {
        op: 'syscall', name: 'fork', args: [], into: 'c',
        child: [sc('vmsplice', 4, '$buf+64', 1, 0), sc('munmap', '$m', 4096), sc('exit', 0)],
      }, // 6
      sc('wait4', -1, 0, 0, 0), // 7: the child's page reference lives on in the pipe
      { op: 'store', addr: '$m', value: BBBB, size: 4 }, // 8: the new secret
      sc('read', 3, '$buf+128', 4), // 9
      { op: 'load', addr: '$buf+128', size: 4, into: 'got' }, // 10
    ],
  });
  assert.equal(ret(sys, 0, 'main.6.child'), 4n);
  assert.equal(ret(sys, 10), AAAA, 'the pipe must give the page as it was, not the parent\'s later store');
});

test('vmsplice checks: flags, descriptor, a file that is not a pipe, iovec errors, and the caller\'s protection key (AD refuses, WD does not)', () => {
  const { sys } = runProgram({
    main: [
      mmapAnon('m', 4096), // 0
      mmapAnon('buf', 4096), // 1
      sc('pipe', '$buf'), // 2: 3, 4
      { op: 'store', addr: '$buf+64', value: '$m' }, // 3
      { op: 'store', addr: '$buf+72', value: 4 }, // 4
      sc('vmsplice', 4, '$buf+64', 1, 0x10), // 5: unknown flag
      sc('vmsplice', 9, '$buf+64', 1, 0), // 6
      sc('open', '&f', O_CREAT | O_RDWR, 0o644), // 7: 5
      sc('vmsplice', 5, '$buf+64', 1, 0), // 8: a tmpfs file
      sc('vmsplice', 4, '$buf+64', 1025, 0), // 9: more than UIO_MAXIOV
      sc('vmsplice', 4, 16, 1, 0), // 10: the iovec faults
      { op: 'store', addr: '$buf+88', value: -1n }, // 11: a second iovec of length -1
      sc('vmsplice', 4, '$buf+64', 2, 0), // 12
      sc('vmsplice', 4, '$buf+64', 0, 0), // 13: nothing to move
      sc('pkey_alloc', 0, 0), // 14: key 1
      sc('pkey_mprotect', '$m', 4096, 3, 1), // 15
      { op: 'wrpkru', value: 0x4 }, // 16: AD for key 1
      sc('vmsplice', 4, '$buf+64', 1, 0), // 17
      { op: 'wrpkru', value: 0x8 }, // 18: WD for key 1: vmsplice reads
      sc('vmsplice', 4, '$buf+64', 1, 0), // 19
      { op: 'wrpkru', value: 0 }, // 20
      sc('vmsplice', 3, '$buf+64', 1, 0), // 21: from the read end: to the user, copying
    ],
    strings: { f: '/tmp/f' },
  });
  assert.deepEqual([5, 6, 8, 9, 10, 12, 13, 17, 19, 21].map((i) => ret(sys, i)), [
    errno(EINVAL), errno(EBADF), errno(EBADF), errno(EINVAL), errno(EFAULT), errno(EINVAL), 0n, errno(EFAULT), 4n, 4n,
  ]);
});

test('vmsplice: a segment GUP cannot give ends the splice, later segments untried (iter_to_pipe breaks out of its loop)', () => {
  const { sys } = runProgram({
    main: [
      mmapAnon('m', 4096), // 0
      mmapAnon('buf', 4096), // 1
      sc('pipe2', '$buf', O_NONBLOCK), // 2: 3, 4
      mmapAnon('gone', 4096), // 3
      sc('munmap', '$gone', 4096), // 4
      { op: 'store', addr: '$buf+64', value: '$gone' }, // 5: an unmapped segment first
      { op: 'store', addr: '$buf+72', value: 8 }, // 6
      { op: 'store', addr: '$buf+80', value: '$m' }, // 7: then a good one
      { op: 'store', addr: '$buf+88', value: 8 }, // 8
      sc('vmsplice', 4, '$buf+64', 2, SPLICE_F_NONBLOCK), // 9: nothing went in
      sc('vmsplice', 4, '$buf+80', 2, SPLICE_F_NONBLOCK), // 10: good first, then a segment past it ($buf+96: zero length), 8
      { op: 'store', addr: '$buf+96', value: '$gone' }, // 11
      { op: 'store', addr: '$buf+104', value: 8 }, // 12
      sc('vmsplice', 4, '$buf+80', 2, SPLICE_F_NONBLOCK), // 13: the good one, then the unmapped one: 8
      sc('read', 3, '$buf+512', 64), // 14: the pipe holds 16 bytes
    ],
  });
  // Expected from 6.12 fs/splice.c iter_to_pipe (`if (left <= 0) { ret = left; break; }`, returning total ?: ret); same on the host.
  assert.deepEqual([9, 10, 13, 14].map((i) => ret(sys, i)), [errno(EFAULT), 8n, 8n, 16n]);
});

test('copy_splice_read: /dev/zero leaves the offset where it was (read_iter_zero moves no ki_pos); an O_DIRECT tmpfs file gives its bytes and moves it', () => {
  const { sys } = runProgram({
    main: [
      mmapAnon('buf', 4096), // 0
      sc('pipe2', '$buf', O_NONBLOCK), // 1: 3, 4
      sc('open', '&zero', O_RDWR, 0), // 2: 5
      { op: 'store', addr: '$buf+64', value: 0 }, // 3: off_in 0
      sc('splice', 5, '$buf+64', 4, 0, 100, 0), // 4: 100
      { op: 'load', addr: '$buf+64' }, // 5: still 0
      sc('read', 3, '$buf+256', 256), // 6: 100
      sc('open', '&f', O_CREAT | O_RDWR | O_DIRECT, 0o644), // 7: 6
      { op: 'store', addr: '$buf+128', value: HELLO }, // 8
      sc('write', 6, '$buf+128', 5), // 9: "hello"
      { op: 'store', addr: '$buf+64', value: 1 }, // 10: off_in 1
      sc('splice', 6, '$buf+64', 4, 0, 100, 0), // 11: "ello", 4
      { op: 'load', addr: '$buf+64' }, // 12: 5
      sc('read', 3, '$buf+256', 256), // 13: 4
      { op: 'load', addr: '$buf+256', size: 4 }, // 14: "ello"
      sc('splice', 6, '$buf+64', 4, 0, 100, 0), // 15: at the end: 0
    ],
    strings: { zero: '/dev/zero', f: '/tmp/f' },
  });
  // Expected from 6.12 fs/splice.c copy_splice_read (`*ppos = kiocb.ki_pos` after the file's read_iter; do_splice_read
  // takes it for O_DIRECT files), drivers/char/mem.c read_iter_zero, mm/shmem.c shmem_file_read_iter. Same on the host.
  assert.deepEqual([4, 5, 6, 11, 12, 13, 14, 15].map((i) => ret(sys, i)), [100n, 0n, 100n, 4n, 5n, 4n, 0x6f6c6c65n, 0n]);
});

test('splice from a tmpfs file puts its page cache in the pipe: a later pwrite shows; the offsets, the checks and /dev/zero, /dev/null', () => {
  const { sys } = runProgram({
    main: [
      mmapAnon('buf', 4 * 4096), // 0
      sc('open', '&f', O_CREAT | O_RDWR, 0o644), // 1: 3
      { op: 'store', addr: '$buf+64', value: HELLO }, // 2
      sc('write', 3, '$buf+64', 5), // 3
      sc('lseek', 3, 0, 0), // 4
      sc('pipe', '$buf'), // 5: 4, 5
      sc('splice', 3, 0, 5, 0, 5, 0), // 6
      sc('lseek', 3, 0, 1), // 7: moved by 5
      { op: 'store', addr: '$buf+96', value: J }, // 8
      sc('pwrite64', 3, '$buf+96', 1, 0), // 9: into the page the pipe refers to
      sc('read', 4, '$buf+128', 5), // 10
      { op: 'load', addr: '$buf+128', into: 'got' }, // 11: "Jello" (the buffer's other bytes are zero)
      { op: 'store', addr: '$buf+192', value: 1 }, // 12: loff_t 1
      sc('splice', 3, '$buf+192', 5, 0, 100, 0), // 13: from offset 1 to the end
      { op: 'load', addr: '$buf+192', into: 'off' }, // 14: 5
      sc('splice', 4, 0, 5, 0, 1, 0), // 15: the same pipe
      sc('splice', 3, 0, 3, 0, 1, 0), // 16: two files
      sc('splice', 4, '$buf+192', 3, 0, 1, 0), // 17: an offset for a pipe
      sc('splice', 4, 0, 3, 0, 0, 0), // 18: len 0
      sc('splice', 4, 0, 3, 0, 1, 0x10), // 19: unknown flag
      sc('open', '&f', O_WRONLY | O_APPEND, 0), // 20: 6
      sc('splice', 4, 0, 6, 0, 1, 0), // 21: O_APPEND output
      sc('splice', 4, 0, 3, 0, 2, 0), // 22: pipe to file at its position 5
      sc('lseek', 3, 0, 1), // 23: 7
      sc('open', '&zero', O_RDONLY, 0), // 24: 7
      sc('splice', 7, 0, 5, 0, 10000, 0), // 25
      sc('open', '&null', O_WRONLY, 0), // 26: 8
      sc('splice', 4, 0, 8, 0, 100000, SPLICE_F_NONBLOCK), // 27: 2 left + 10000
      sc('open', '&null', O_RDONLY, 0), // 28: 9
      sc('splice', 9, 0, 5, 0, 10, 0), // 29: /dev/null has no splice_read
      sc('pread64', 3, '$buf+256', 7, 0), // 30
      { op: 'load', addr: '$buf+256', into: 'file' }, // 31: "Jelloel"
    ],
    strings: { f: '/tmp/f', zero: '/dev/zero', null: '/dev/null' },
  });
  assert.deepEqual([6, 7, 10, 11, 13, 14, 15, 16, 17, 18, 19, 21, 22, 23, 25, 27, 29, 30, 31].map((i) => ret(sys, i)), [
    5n, 5n, 5n, (HELLO & ~0xffn) | J, 4n, 5n, errno(EINVAL), errno(EINVAL), errno(ESPIPE), 0n, errno(EINVAL), errno(EINVAL), 2n, 7n, 10000n, 10002n, errno(EINVAL), 7n,
    ((HELLO & ~0xffn) | J) | (0x6c65n << 40n),
  ]);
});

// tee's checks in sys_tee/do_tee's order (fs/splice.c): flags, then len 0, then each descriptor,
// then FMODE_READ/FMODE_WRITE before "both pipes, and different", then ipipe_prep/opipe_prep and
// link_pipe. The values are what the host kernel gives to the same calls.
test('tee: its checks in order; it duplicates a vmspliced page by reference (a later store shows in both pipes), leaving the input as it was', () => {
  const { sys } = runProgram({
    main: [
      mmapAnon('m', 4096), // 0
      mmapAnon('buf', 4096), // 1
      { op: 'store', addr: '$buf+128', value: BigInt(SIG_IGN) }, // 2
      sc('rt_sigaction', SIGPIPE, '$buf+128', 0, 8), // 3
      sc('pipe', '$buf'), // 4: a = 3, 4
      sc('pipe', '$buf'), // 5: b = 5, 6
      sc('tee', 3, 6, 0, 0x10), // 6: unknown flag before len 0
      sc('tee', 99, 98, 0, 0), // 7: len 0 before the descriptors
      sc('tee', 99, 6, 1, 0), // 8
      sc('tee', 3, 99, 1, 0), // 9
      sc('tee', 4, 6, 1, 0), // 10: the input not open for reading
      sc('tee', 3, 5, 1, 0), // 11: the output not open for writing
      sc('tee', 3, 4, 1, 0), // 12: one pipe
      sc('open', '&f', O_CREAT | O_RDWR, 0o644), // 13: 7
      sc('tee', 7, 6, 1, 0), // 14: a file
      sc('tee', 3, 6, 1, SPLICE_F_NONBLOCK), // 15: empty, with a writer
      { op: 'store', addr: '$m', value: 0x3736353433323130n }, // 16: "01234567"
      { op: 'store', addr: '$buf+64', value: '$m' }, // 17: struct iovec { m, 8 }
      { op: 'store', addr: '$buf+72', value: 8 }, // 18
      sc('vmsplice', 4, '$buf+64', 1, 0), // 19
      sc('tee', 3, 6, 3, 0), // 20: cut to 3
      sc('tee', 3, 6, 100, 0), // 21: the whole buffer again: the input's tail did not move
      sc('ioctl', 3, FIONREAD, '$buf+256'), // 22
      { op: 'load', addr: '$buf+256', size: 4, into: 'na' }, // 23: 8
      sc('ioctl', 5, FIONREAD, '$buf+256'), // 24
      { op: 'load', addr: '$buf+256', size: 4, into: 'nb' }, // 25: 11
      { op: 'store', addr: '$m', value: 0x58, size: 1 }, // 26: 'X' into the page both pipes refer to
      sc('read', 5, '$buf+512', 64), // 27: "X12X1234567"
      { op: 'load', addr: '$buf+512', into: 'b0' }, // 28
      { op: 'load', addr: '$buf+520', size: 4, into: 'b1' }, // 29
      sc('read', 3, '$buf+768', 64), // 30: "X1234567"
      { op: 'load', addr: '$buf+768', into: 'a0' }, // 31
      sc('close', 4), // 32
      sc('tee', 3, 6, 1, 0), // 33: empty, no writer
      sc('close', 5), // 34
      sc('pipe', '$buf+1024'), // 35: c = 4, 5
      sc('write', 5, '$m', 1), // 36
      sc('tee', 4, 6, 1, 0), // 37: no reader of the output
    ],
    strings: { f: '/tmp/f' },
  });
  assert.deepEqual([6, 7, 8, 9, 10, 11, 12, 14, 15].map((i) => ret(sys, i)), [
    errno(EINVAL), 0n, errno(EBADF), errno(EBADF), errno(EBADF), errno(EBADF), errno(EINVAL), errno(EINVAL), errno(EAGAIN),
  ]);
  assert.deepEqual([19, 20, 21, 22, 23, 24, 25].map((i) => ret(sys, i)), [8n, 3n, 8n, 0n, 8n, 0n, 11n]);
  assert.deepEqual([27, 28, 29, 30, 31].map((i) => ret(sys, i)), [11n, 0x3433323158323158n, 0x00373635n, 8n, 0x3736353433323158n]);
  assert.deepEqual([33, 36, 37].map((i) => ret(sys, i)), [0n, 1n, errno(EPIPE)]);
});

test('ioctl FIONREAD (a pipe: its buffered bytes; a regular file: size less position, as an int) and FIONBIO (O_NONBLOCK); others -ENOTTY', () => {
  const { sys } = runProgram({
    main: [
      mmapAnon('buf', 4096), // 0
      sc('pipe', '$buf'), // 1: 3, 4
      sc('write', 4, '$buf', 8), // 2
      sc('write', 4, '$buf', 3), // 3
      sc('read', 3, '$buf+64', 5), // 4
      sc('ioctl', 3, FIONREAD, '$buf+256'), // 5
      { op: 'load', addr: '$buf+256', size: 4, into: 'n' }, // 6: 6
      sc('ioctl', 3, FIONREAD, 1), // 7: -EFAULT
      sc('open', '&f', O_CREAT | O_RDWR, 0o644), // 8: 5
      sc('write', 5, '$buf', 5), // 9
      sc('lseek', 5, 2, 0), // 10
      sc('ioctl', 5, FIONREAD, '$buf+256'), // 11
      { op: 'load', addr: '$buf+256', size: 4, into: 'nf' }, // 12: 3
      sc('lseek', 5, 10, 0), // 13
      sc('ioctl', 5, FIONREAD, '$buf+256'), // 14
      { op: 'load', addr: '$buf+256', size: 4, into: 'nf2' }, // 15: -5 as an int
      sc('open', '&zero', O_RDONLY, 0), // 16: 6
      sc('ioctl', 6, FIONREAD, '$buf+256'), // 17: a character device without ioctl
      sc('read', 3, '$buf+64', 100), // 18: empties the pipe
      { op: 'store', addr: '$buf+300', value: 1, size: 4 }, // 19
      sc('ioctl', 3, FIONBIO, '$buf+300'), // 20
      sc('fcntl', 3, F_GETFL), // 21: O_NONBLOCK
      sc('read', 3, '$buf+64', 1), // 22: -EAGAIN
      { op: 'store', addr: '$buf+300', value: 0, size: 4 }, // 23
      sc('ioctl', 3, FIONBIO, '$buf+300'), // 24
      sc('fcntl', 3, F_GETFL), // 25: O_RDONLY
      sc('ioctl', 3, FIONBIO, 1), // 26: -EFAULT
      sc('ioctl', 3, TCGETS, '$buf+256'), // 27: a pipe is not a terminal
    ],
    strings: { f: '/tmp/f', zero: '/dev/zero' },
  });
  assert.deepEqual([5, 6, 7, 11, 12, 14, 15, 17].map((i) => ret(sys, i)), [0n, 6n, errno(EFAULT), 0n, 3n, 0n, 0xfffffffbn, errno(ENOTTY)]);
  assert.deepEqual([20, 21, 22, 24, 25, 26, 27].map((i) => ret(sys, i)), [0n, BigInt(O_NONBLOCK), errno(EAGAIN), 0n, BigInt(O_RDONLY), errno(EFAULT), errno(ENOTTY)]);
});

test('GUP: a read-only pin of a page shared after fork unshares it first (the pinned mm gets its own exclusive copy, still read-only)', () => {
  let pte = { lo: 0, hi: 0 };
  let exclusive = false;
  const { sys, events } = runWithEvents({
    main: [
      mmapAnon('m', 4096), // 0
      mmapAnon('buf', 4096), // 1
      { op: 'store', addr: '$m', value: AAAA, size: 4 }, // 2: exclusive, writable
      { op: 'syscall', name: 'getpid', args: [], into: 'me' }, // 3
      { op: 'store', addr: '$buf', value: '$buf+256' }, // 4: local iovec
      { op: 'store', addr: '$buf+8', value: 4 }, // 5
      { op: 'store', addr: '$buf+16', value: '$m' }, // 6: remote iovec
      { op: 'store', addr: '$buf+24', value: 4 }, // 7
      // The child pins its parent's page (pin_user_pages_remote: FOLL_PIN | FOLL_REMOTE), which fork made shared.
      { op: 'syscall', name: 'fork', args: [], into: 'c', child: [sc('process_vm_readv', '$me', '$buf', 1, '$buf+16', 1, 0), { op: 'load', addr: '$buf+256', size: 4, into: 'got' }, sc('exit', 0)] }, // 8
      sc('wait4', -1, 0, 0, 0), // 9
      { op: 'load', addr: '$m', size: 4, into: 'v' }, // 10
    ],
  }, {}, (e, s) => {
    if (e.type !== 'op' || e.record.fn !== 'main' || e.record.index !== 10) return;
    const k = s.kernel;
    pte = readPte(k, k.tasks.get(e.record.tid)!.mm!, Number(records(s).get(0)!.value));
    exclusive = (k.pages.flags[ptePfn(pte)] & PG_anon_exclusive) !== 0;
  });
  assert.equal(ret(sys, 0, 'main.8.child'), 4n);
  assert.equal(ret(sys, 1, 'main.8.child'), AAAA);
  assert.equal(ret(sys, 10), AAAA);
  // gup_must_unshare -> FAULT_FLAG_UNSHARE -> wp_page_copy maps the copy without write permission.
  assert.ok(!pteWritable(pte), 'an unshare leaves the entry read-only');
  assert.ok(exclusive, 'the parent\'s page is exclusive again (without the unshare, fork cleared it for good)');
  const childTid = Number(ret(sys, 8));
  assert.ok(events.some((e) => e.type === 'page_copy' && e.tid === childTid), 'the copy was made by the pinning call');
});

test('memfd F_SEAL_WRITE waits for pages referenced beyond the page cache (a pipe holds one: -EBUSY), and seals once the pipe is read', () => {
  const F_ADD_SEALS = 1033, F_SEAL_WRITE = 8, MFD_ALLOW_SEALING = 2;
  const { sys } = runProgram({
    main: [
      mmapAnon('buf', 4096), // 0
      { op: 'store', addr: '$buf+64', value: HELLO }, // 1
      { op: 'store', addr: '$buf+128', value: 0x78n }, // 2: the name "x"
      sc('memfd_create', '$buf+128', MFD_ALLOW_SEALING), // 3: 3
      sc('write', 3, '$buf+64', 5), // 4
      sc('lseek', 3, 0, 0), // 5
      sc('pipe', '$buf'), // 6: 4, 5
      sc('splice', 3, 0, 5, 0, 5, 0), // 7: the page cache page is in the pipe
      sc('fcntl', 3, F_ADD_SEALS, F_SEAL_WRITE), // 8: memfd_wait_for_pins gives up
      sc('read', 4, '$buf+256', 5), // 9: the pipe's reference goes
      sc('fcntl', 3, F_ADD_SEALS, F_SEAL_WRITE), // 10
      sc('write', 3, '$buf+64', 1), // 11: sealed
    ],
  });
  const EPERM = 1;
  assert.deepEqual([7, 8, 9, 10, 11].map((i) => ret(sys, i)), [5n, errno(EBUSY), 5n, 0n, errno(EPERM)]);
});
