/**
 * process_vm_readv and process_vm_writev (mm/process_vm_access.c, 6.12): the checks in
 * process_vm_rw's order, the partial results of process_vm_rw_single_vec and
 * process_vm_rw_pages, COW broken in the target by a write, and the dirtying of a written
 * page (FOLL_TOUCH and unpin_user_pages_dirty_lock) that keeps a MADV_FREE'd page from being
 * discarded. Every expected value is what the host kernel gave to the same calls
 * (x86-64, 6.18; mm/process_vm_access.c is the same there as in 6.12).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { mmapAnon, ret, runProgram } from './helpers.js';

const EINVAL = 22, EFAULT = 14, ESRCH = 3;
const PROT_NONE = 0, PROT_READ = 1;
const MADV_FREE = 8, MADV_PAGEOUT = 21;
const sc = (name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args });
const errno = (e: number): bigint => BigInt(-e);
/** A struct iovec { base, len } stored at `v`+`off`. */
const iov = (v: string, off: number, base: string, len: number | bigint): Op[] => [
  { op: 'store', addr: `${v}+${off}`, value: base },
  { op: 'store', addr: `${v}+${off + 8}`, value: len },
];
const ABCDEFGH = 0x4847464544434241n;

test('process_vm_readv: flags, the local iovecs (count, fault, negative length), nothing to move, the remote ones, no remote page, the target', () => {
  const { sys } = runProgram({
    main: [
      mmapAnon('m', 4 * 4096), // 0
      sc('mprotect', '$m+12288', 4096, PROT_NONE), // 1
      sc('getpid'), // 2
      { op: 'store', addr: '$m', value: ABCDEFGH }, // 3
      ...iov('$m', 256, '$m+4096', 8), // 4, 5: l
      ...iov('$m', 272, '$m', 8), // 6, 7: r
      ...iov('$m', 288, '$m+4096', 0xffffffffffffffffn), // 8, 9: a negative local length
      ...iov('$m', 304, '$m', 0xffffffffffffffffn), // 10, 11: a negative remote length
      ...iov('$m', 320, '$m', 0), // 12, 13: an empty remote iovec
      { op: 'syscall', name: 'getpid', into: 'me' }, // 14
      sc('process_vm_readv', '$me', 1, 1, 1, 1, 1), // 15: flags first
      sc('process_vm_readv', '$me', '$m+256', 1025, '$m+272', 1, 0), // 16
      sc('process_vm_readv', '$me', 1, 1, '$m+272', 1, 0), // 17
      sc('process_vm_readv', '$me', '$m+288', 1, '$m+272', 1, 0), // 18
      sc('process_vm_readv', 99999, '$m+256', 0, 1, 1025, 0), // 19: nothing to move: 0 before the remote iovecs
      sc('process_vm_readv', 99999, '$m+256', 1, '$m+272', 1025, 0), // 20
      sc('process_vm_readv', 99999, '$m+256', 1, 1, 1, 0), // 21
      sc('process_vm_readv', 99999, '$m+256', 1, '$m+304', 1, 0), // 22
      sc('process_vm_readv', 99999, '$m+256', 1, '$m+320', 1, 0), // 23: no remote page: 0 before the target
      sc('process_vm_readv', 99999, '$m+256', 1, '$m+272', 1, 0), // 24
      sc('process_vm_readv', '$me', '$m+256', 1, '$m+272', 1, 0), // 25
      { op: 'load', addr: '$m+4096', into: 'got' }, // 26
      sc('process_vm_readv', '$me', '$m+256', 0x100000001n, '$m+272', 1, 0), // 27: liovcnt is an unsigned int for import_iovec
    ],
  });
  assert.deepEqual([15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27].map((i) => ret(sys, i)), [
    errno(EINVAL), errno(EINVAL), errno(EFAULT), errno(EINVAL), 0n, errno(EINVAL), errno(EFAULT), errno(EINVAL), 0n, errno(ESRCH), 8n, ABCDEFGH, 8n,
  ]);
});

test('process_vm_readv: the bytes before a remote page GUP refuses, none when it is the first, and a failed remote iovec ending the call', () => {
  const { sys } = runProgram({
    main: [
      mmapAnon('m', 4 * 4096), // 0
      sc('mprotect', '$m+12288', 4096, PROT_NONE), // 1: GUP cannot read it (check_vma_flags)
      { op: 'syscall', name: 'getpid', into: 'me' }, // 2
      ...iov('$m', 256, '$m+4096', 8), // 3, 4: l
      ...iov('$m', 272, '$m+12284', 100), // 5, 6: 4 bytes, then the PROT_NONE page
      ...iov('$m', 288, '$m+12288', 8), // 7, 8: the PROT_NONE page
      ...iov('$m', 304, '$m+12288', 8), // 9, 10: two remote iovecs, the first refused
      ...iov('$m', 320, '$m', 8), // 11, 12
      sc('process_vm_readv', '$me', '$m+256', 1, '$m+272', 1, 0), // 13: 4
      sc('process_vm_readv', '$me', '$m+256', 1, '$m+288', 1, 0), // 14: -EFAULT
      sc('process_vm_readv', '$me', '$m+256', 1, '$m+304', 2, 0), // 15: -EFAULT, the second never tried
    ],
  });
  assert.deepEqual([13, 14, 15].map((i) => ret(sys, i)), [4n, errno(EFAULT), errno(EFAULT)]);
});

test('process_vm_readv: a local iovec running into a page it cannot write gets the bytes before it (copy_page_to_iter is partial)', () => {
  const { sys } = runProgram({
    main: [
      mmapAnon('m', 2 * 4096), // 0
      sc('mprotect', '$m+4096', 4096, PROT_READ), // 1: the local copy's second page is read-only
      { op: 'syscall', name: 'getpid', into: 'me' }, // 2
      ...iov('$m', 256, '$m+4093', 8), // 3, 4: 3 writable bytes, then the read-only page
      ...iov('$m', 272, '$m', 8), // 5, 6
      sc('process_vm_readv', '$me', '$m+256', 1, '$m+272', 1, 0), // 7: 3
    ],
  });
  assert.equal(ret(sys, 7), 3n);
});

test('process_vm_writev: a read-only remote mapping is -EFAULT (no FOLL_FORCE); a write into a child breaks COW there, the parent keeps its page', () => {
  const { sys } = runProgram({
    main: [
      mmapAnon('m', 3 * 4096), // 0
      mmapAnon('ro', 4096, PROT_READ), // 1
      { op: 'syscall', name: 'getpid', into: 'me' }, // 2
      sc('pipe', '$m+512'), // 3: 3, 4
      { op: 'store', addr: '$m+8192', value: 0x2121746e65726170n }, // 4: "parent!!"
      { op: 'store', addr: '$m+4096', value: 0x216e657474697277n }, // 5: "written!"
      ...iov('$m', 256, '$m+4096', 8), // 6, 7
      ...iov('$m', 272, '$ro', 8), // 8, 9
      ...iov('$m', 288, '$m+8192', 8), // 10, 11
      sc('process_vm_writev', '$me', '$m+256', 1, '$m+272', 1, 0), // 12: -EFAULT
      sc('process_vm_readv', '$me', '$m+256', 1, '$m+272', 1, 0), // 13: reading it is fine
      {
        op: 'syscall', name: 'fork', into: 'c',
        child: [sc('read', 3, '$m+600', 1), { op: 'load', addr: '$m+8192', into: 'cv' }, sc('exit', 0)],
      }, // 14
      { op: 'store', addr: '$m+4096', value: 0x216e657474697277n }, // 15: the local buffer again (13 read zeros into it)
      sc('process_vm_writev', '$c', '$m+256', 1, '$m+288', 1, 0), // 16: into the child
      sc('write', 4, '$m', 1), // 17
      sc('wait4', -1, 0, 0, 0), // 18
      { op: 'load', addr: '$m+8192', into: 'pv' }, // 19
    ],
  });
  assert.deepEqual([12, 13, 16, 19].map((i) => ret(sys, i)), [errno(EFAULT), 8n, 8n, 0x2121746e65726170n]);
  assert.equal(ret(sys, 1, 'main.14.child'), 0x216e657474697277n, 'the child reads what was written into it');
});

test('process_vm_writev into a MADV_FREE\'d page dirties it, so MADV_PAGEOUT keeps it; the clean pages around it are discarded', () => {
  const { sys } = runProgram({
    main: [
      mmapAnon('m', 4096), // 0
      mmapAnon('f', 3 * 4096), // 1
      { op: 'syscall', name: 'getpid', into: 'me' }, // 2
      { op: 'store', addr: '$f', value: 0x61 }, // 3
      { op: 'store', addr: '$f+4096', value: 0x61 }, // 4
      { op: 'store', addr: '$f+8192', value: 0x61 }, // 5
      sc('madvise', '$f', 3 * 4096, MADV_FREE), // 6
      { op: 'store', addr: '$m', value: 0x216e657474697277n }, // 7
      ...iov('$m', 256, '$m', 8), // 8, 9
      ...iov('$m', 272, '$f+4096', 8), // 10, 11
      ...iov('$m', 288, '$m+512', 8), // 12, 13
      ...iov('$m', 304, '$f+8192', 8), // 14, 15
      sc('process_vm_writev', '$me', '$m+256', 1, '$m+272', 1, 0), // 16: the entry stays clean, the page does not
      sc('process_vm_readv', '$me', '$m+288', 1, '$m+304', 1, 0), // 17: a read dirties nothing
      sc('madvise', '$f', 3 * 4096, MADV_PAGEOUT), // 18
      { op: 'load', addr: '$f', into: 'p0' }, // 19: 0, discarded
      { op: 'load', addr: '$f+4096', into: 'p1' }, // 20: kept
      { op: 'load', addr: '$f+8192', into: 'p2' }, // 21: 0, discarded
    ],
  });
  assert.deepEqual([16, 17, 18, 19, 20, 21].map((i) => ret(sys, i)), [8n, 8n, 0n, 0n, 0x216e657474697277n, 0n]);
});

test('import_iovec reads the iovecs one by one: a negative length before an unreadable iovec is -EINVAL, a good one -EFAULT (process_vm_readv, vmsplice)', () => {
  const { sys } = runProgram({
    main: [
      mmapAnon('m', 2 * 4096), // 0
      sc('mprotect', '$m+4096', 4096, PROT_NONE), // 1: the second iovec runs into it
      { op: 'syscall', name: 'getpid', into: 'me' }, // 2
      ...iov('$m', 4072, '$m', 0xffffffffffffffffn), // 3, 4: the first iovec, 24 bytes before the page's end
      ...iov('$m', 256, '$m', 8), // 5, 6: the remote one
      sc('process_vm_readv', '$me', '$m+4072', 2, '$m+256', 1, 0), // 7: -EINVAL
      sc('pipe', '$m+512'), // 8: 3, 4
      sc('vmsplice', 4, '$m+4072', 2, 0), // 9: -EINVAL
      { op: 'store', addr: '$m+4080', value: 8 }, // 10: the first length good
      sc('process_vm_readv', '$me', '$m+4072', 2, '$m+256', 1, 0), // 11: -EFAULT
    ],
  });
  assert.deepEqual([7, 9, 11].map((i) => ret(sys, i)), [errno(EINVAL), errno(EINVAL), errno(EFAULT)]);
});

// userfaultfd: a remote page in a registered range waits for the handler (pin_user_pages_remote
// and get_user_pages_unlocked pass FOLL_UNLOCKABLE, so handle_userfault may drop mmap_lock and
// sleep; __get_user_pages_locked then retries the page with FOLL_TRIED). On the host the same
// process_vm_readv and vmsplice block until UFFDIO_COPY and then return the copied bytes.
const UFFDIO_API = 0xc018aa3f, UFFDIO_REGISTER = 0xc020aa00, UFFDIO_COPY = 0xc028aa03, MODE_MISSING = 1;
const THREAD = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000;
const st = (addr: string, value: number | bigint | string): Op => ({ op: 'store', addr, value });

/** $buf (3 pages), $area (one page registered for missing faults on $uffd), the source page at $buf+4096 holding ABCDEFGH. Ops 0..11. */
const uffdPrologue: Op[] = [
  mmapAnon('buf', 3 * 4096), // 0
  mmapAnon('area', 4096), // 1
  { op: 'syscall', name: 'userfaultfd', args: [0], into: 'uffd' }, // 2
  st('$buf', 0xaa), st('$buf+8', 0), sc('ioctl', '$uffd', UFFDIO_API, '$buf'), // 3..5
  st('$buf+64', '$area'), st('$buf+72', 4096), st('$buf+80', MODE_MISSING), sc('ioctl', '$uffd', UFFDIO_REGISTER, '$buf+64'), // 6..9
  st('$buf+4096', ABCDEFGH), // 10
  { op: 'syscall', name: 'getpid', into: 'me' }, // 11
];
/** The handler: reads one message, then UFFDIO_COPY of the source page onto $area. */
const uffdHandler: Op[] = [
  sc('read', '$uffd', '$buf+128', 32), // 0
  { op: 'load', addr: '$buf+136', into: 'flags' }, // 1: msg.arg.pagefault.flags
  st('$buf+192', '$area'), st('$buf+200', '$buf+4096'), st('$buf+208', 4096), st('$buf+216', 0), sc('ioctl', '$uffd', UFFDIO_COPY, '$buf+192'), // 2..6
];

test('process_vm_readv and process_vm_writev of a userfaultfd range wait for the handler thread on another CPU (FOLL_UNLOCKABLE), then move the bytes', () => {
  const read = runProgram({
    main: [
      ...uffdPrologue, // 0..11
      ...iov('$buf', 256, '$buf+8192', 8), // 12, 13
      ...iov('$buf', 272, '$area', 8), // 14, 15
      { op: 'syscall', name: 'clone', args: [THREAD, 0, 0, 0, 0], into: 'tid', child: uffdHandler, cpu: 1 }, // 16
      sc('process_vm_readv', '$me', '$buf+256', 1, '$buf+272', 1, 0), // 17
      { op: 'load', addr: '$buf+8192', into: 'got' }, // 18
    ],
  }, { cpus: 2 }).sys;
  assert.deepEqual([17, 18].map((i) => ret(read, i)), [8n, ABCDEFGH]);
  assert.equal(ret(read, 1, 'main.16.child'), 0n, 'a read fault: no UFFD_PAGEFAULT_FLAG_WRITE');
  assert.equal(ret(read, 6, 'main.16.child'), 0n);
  const write = runProgram({
    main: [
      ...uffdPrologue, // 0..11
      st('$buf+8192', 0x216e657474697277n), // 12
      ...iov('$buf', 256, '$buf+8192', 8), // 13, 14
      ...iov('$buf', 272, '$area+8', 8), // 15, 16
      { op: 'syscall', name: 'clone', args: [THREAD, 0, 0, 0, 0], into: 'tid', child: uffdHandler, cpu: 1 }, // 17
      sc('process_vm_writev', '$me', '$buf+256', 1, '$buf+272', 1, 0), // 18
      { op: 'load', addr: '$area', into: 'a0' }, // 19: the copied page's first bytes
      { op: 'load', addr: '$area+8', into: 'a1' }, // 20: then what process_vm_writev wrote
    ],
  }, { cpus: 2 }).sys;
  assert.deepEqual([18, 19, 20].map((i) => ret(write, i)), [8n, ABCDEFGH, 0x216e657474697277n]);
  assert.equal(ret(write, 1, 'main.17.child'), 1n, 'a write fault: UFFD_PAGEFAULT_FLAG_WRITE');
});

test('vmsplice of a userfaultfd range waits for the handler (get_user_pages_unlocked), and the pipe then holds the copied page', () => {
  const { sys } = runProgram({
    main: [
      ...uffdPrologue, // 0..11
      sc('pipe', '$buf+512'), // 12: uffd is 3, so the pipe is 4, 5
      ...iov('$buf', 256, '$area', 8), // 13, 14
      { op: 'syscall', name: 'clone', args: [THREAD, 0, 0, 0, 0], into: 'tid', child: uffdHandler, cpu: 1 }, // 15
      sc('vmsplice', 5, '$buf+256', 1, 0), // 16
      sc('read', 4, '$buf+8192', 8), // 17
      { op: 'load', addr: '$buf+8192', into: 'got' }, // 18
    ],
  }, { cpus: 2 });
  assert.deepEqual([16, 17, 18].map((i) => ret(sys, i)), [8n, 8n, ABCDEFGH]);
});
