/**
 * procfs against Linux 6.12's code: /proc/PID/mem (fs/proc/base.c proc_mem_open, mem_open,
 * mem_rw, mem_lseek; mm/memory.c __access_remote_vm; mm/gup.c check_vma_flags and
 * can_follow_write_pte under FOLL_FORCE; fs/read_write.c rw_verify_area with
 * FOP_UNSIGNED_OFFSET), maps and smaps (fs/proc/task_mmu.c show_vma_header_prefix,
 * show_map_vma, show_smap, __show_smap, smaps_account, show_smap_vma_flags), pagemap
 * (pagemap_read, pte_to_pagemap_entry, pagemap_pte_hole) and status (fs/proc/array.c
 * proc_pid_status, task_state, task_sig, task_cap; fs/proc/task_mmu.c task_mem). Each
 * expectation was also run natively (a C program on the host's 6.18 kernel): the return
 * values, errnos and formats agreed, except for what the host's configuration leaves out
 * (CONFIG_MEM_SOFT_DIRTY is off there, so it shows no `sd` and no soft-dirty bit 55; Debian's
 * 6.12 has it, as the model does).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { fileText, records, ret, runProgram } from './helpers.js';

const ENOENT = 2, ESRCH = 3, EIO = 5, EFAULT = 14, EINVAL = 22, ENODEV = 19, EOVERFLOW = 75;
const O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_CREAT = 0o100, O_TRUNC = 0o1000;
const SEEK_SET = 0, SEEK_END = 2;
const PROT_NONE = 0, PROT_READ = 1, PROT_WRITE = 2, PROT_EXEC = 4;
const MAP_SHARED = 1, MAP_PRIVATE = 2, MAP_ANONYMOUS = 0x20;
const SIGSEGV = 11, SEGV_ACCERR = 2;
const sc = (name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args });
const sci = (into: string, name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args, into });
const mmap = (into: string, len: number, prot: number, flags: number, fd = -1): Op => sci(into, 'mmap', 0, len, prot, flags, fd, 0);
const errno = (e: number): bigint => BigInt(-e);
const STRINGS = { mem: '/proc/self/mem', maps: '/proc/self/maps', smaps: '/proc/self/smaps', pagemap: '/proc/self/pagemap', status: '/proc/self/status', out: '/tmp/out', f: '/tmp/f' };

/** Ops that read descriptor `fd` into `$buf` (up to `len` bytes) and leave what was read in /tmp/out (descriptor `outFd` once opened). */
function dump(fd: number, outFd: number, len = 16384): Op[] {
  return [sci('n', 'read', fd, '$buf', len), sc('open', '&out', O_CREAT | O_RDWR | O_TRUNC, 0o644), sc('write', outFd, '$buf', '$n')];
}

/** The 64-bit little-endian words of a string's bytes. */
function words(s: string): bigint[] {
  const b = Buffer.from(s, 'latin1');
  const out: bigint[] = [];
  for (let i = 0; i + 8 <= b.length; i += 8) out.push(b.readBigUInt64LE(i));
  return out;
}

// ---- mem -------------------------------------------------------------------------------------

test('/proc/self/mem writes to read-only memory: COW broken, the copy stays read-only for the program (a store is SIGSEGV)', () => {
  const main: Op[] = [
    mmap('buf', 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS), // 0
    mmap('ro', 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS), // 1: never touched
    mmap('rz', 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS), // 2: the zero page mapped first
    { op: 'load', addr: '$rz', into: 'z' }, // 3
    { op: 'store', addr: '$buf', value: 0x1122334455667788n }, // 4
    sc('open', '&mem', O_RDWR, 0), // 5: 3
    sc('pwrite64', 3, '$buf', 8, '$ro'), // 6: do_anonymous_page for a write without VM_WRITE
    sc('pwrite64', 3, '$buf', 8, '$rz+8'), // 7: wp_page_copy of the zero page, maybe_mkwrite leaves it read-only
    { op: 'load', addr: '$ro', into: 'a' }, // 8
    { op: 'load', addr: '$rz+8', into: 'b' }, // 9
    { op: 'load', addr: '$rz', into: 'c' }, // 10
    { op: 'store', addr: '$ro', value: 1 }, // 11: still read-only
  ];
  const { sys } = runProgram({ main, strings: STRINGS });
  const r = records(sys);
  assert.equal(ret(sys, 6), 8n);
  assert.equal(ret(sys, 7), 8n);
  assert.equal(r.get(8)!.value, 0x1122334455667788n);
  assert.equal(r.get(9)!.value, 0x1122334455667788n);
  assert.equal(r.get(10)!.value, 0n);
  const sig = r.get(11)!.signal;
  assert.ok(sig, 'the store through the read-only mapping faults');
  assert.equal(sig.signo, SIGSEGV);
  assert.equal(sig.code, SEGV_ACCERR);
});

test('/proc/self/mem: a forced write to a private read-only file mapping copies the page (the file keeps its bytes); a shared read-only one is -EIO; PROT_NONE is read and written', () => {
  const main: Op[] = [
    mmap('buf', 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS), // 0
    { op: 'store', addr: '$buf', value: 0x4847464544434241n }, // 1
    sc('open', '&f', O_CREAT | O_RDWR, 0o644), // 2: 3
    sc('write', 3, '$buf', 8), // 3
    { op: 'store', addr: '$buf', value: 0x5a5a5a5a5a5a5a5an }, // 4
    mmap('fp', 4096, PROT_READ, MAP_PRIVATE, 3), // 5
    mmap('fs', 4096, PROT_READ, MAP_SHARED, 3), // 6
    mmap('pn', 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS), // 7
    sc('open', '&mem', O_RDWR, 0), // 8: 4
    sc('pwrite64', 4, '$buf', 8, '$fp'), // 9: do_cow_fault
    { op: 'load', addr: '$fp', into: 'a' }, // 10
    { op: 'load', addr: '$fs', into: 'b' }, // 11: the file's page
    sc('pwrite64', 4, '$buf', 8, '$fs'), // 12: not a COW mapping: check_vma_flags -EFAULT, mem_rw -EIO
    sc('pwrite64', 4, '$buf', 8, '$pn'), // 13: FOLL_FORCE with VM_MAYWRITE
    sc('pread64', 4, '$buf+8', 8, '$pn'), // 14: FOLL_FORCE with VM_MAYREAD
    { op: 'load', addr: '$buf+8', into: 'c' }, // 15
    { op: 'store', addr: '$fp', value: 1 }, // 16: the copy is read-only
  ];
  const { sys } = runProgram({ main, strings: STRINGS });
  const r = records(sys);
  assert.equal(ret(sys, 9), 8n);
  assert.equal(r.get(10)!.value, 0x5a5a5a5a5a5a5a5an);
  assert.equal(r.get(11)!.value, 0x4847464544434241n, 'the file was not written');
  assert.equal(ret(sys, 12), errno(EIO));
  assert.equal(ret(sys, 13), 8n);
  assert.equal(ret(sys, 14), 8n);
  assert.equal(r.get(15)!.value, 0x5a5a5a5a5a5a5a5an);
  assert.equal(r.get(16)!.signal?.signo, SIGSEGV);
});

test('/proc/self/mem: checks in Linux order (rw_verify_area with unsigned positions, mem_lseek, -EIO where no VMA is, -EFAULT from the user buffer)', () => {
  const main: Op[] = [
    mmap('buf', 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS), // 0
    sc('open', '&mem', O_RDWR, 0), // 1: 3
    sc('pread64', 3, '$buf', 8, 0x1000), // 2: no VMA: access_remote_vm moves nothing, -EIO
    sc('pread64', 3, '$buf', 8, -8), // 3: ksys_pread64: a negative position first, -EINVAL
    sc('lseek', 3, -4096, SEEK_SET), // 4: mem_lseek takes any position
    sc('read', 3, '$buf', 8), // 5: 2^64 - 4096 is in no VMA: -EIO
    sc('read', 3, '$buf', 4096), // 6: count >= -pos: rw_verify_area -EOVERFLOW
    sc('lseek', 3, 0, SEEK_END), // 7: mem_lseek: -EINVAL
    sc('pread64', 3, 0x10, 8, '$buf'), // 8: the page is read, then copy_to_user faults: -EFAULT
    sc('pwrite64', 3, 0x10, 8, '$buf'), // 9: copy_from_user faults first: -EFAULT
    sc('pread64', 3, '$buf+4096', 16, '$buf+4088'), // 10: across two pages
    sc('lseek', 3, '$buf+8184', SEEK_SET), // 11
    sc('read', 3, '$buf', 16), // 12: the 8 bytes before the end of the VMA, then none: 8
    sc('lseek', 3, 0, 1), // 13: the position moved past what was read
    sc('open', '&nope', O_CREAT | O_RDWR, 0o644), // 14: procfs's lookup answers -ENOENT
    sc('open', '&maps', O_RDONLY, 0), // 15: 4
    sc('mmap', 0, 4096, PROT_READ, MAP_PRIVATE, 4, 0), // 16: no mmap operation: -ENODEV
    sc('open', '&zero', O_RDONLY, 0), // 17: no task 0
    sc('open', '&lead', O_RDONLY, 0), // 18: name_to_int refuses a leading zero
  ];
  const { sys } = runProgram({ main, strings: { ...STRINGS, nope: '/proc/self/new', zero: '/proc/0/maps', lead: '/proc/01/maps' } });
  const buf = ret(sys, 0);
  assert.deepEqual(
    [2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 16, 17, 18].map((i) => ret(sys, i)),
    [errno(EIO), errno(EINVAL), -4096n, errno(EIO), errno(EOVERFLOW), errno(EINVAL), errno(EFAULT), errno(EFAULT), 16n, 8n, buf + 8192n, errno(ENOENT), errno(ENODEV), errno(ENOENT), errno(ENOENT)],
  );
});

test('/proc/PID: a zombie has no mm (mem and pagemap -ESRCH, maps empty, status Z); mem and pagemap opened before its exit read 0; a reaped one is gone', () => {
  // Child 2 exits while the parent waits for child 3, and stays a zombie until the last wait4.
  const main: Op[] = [
    mmap('buf', 16384, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS), // 0
    { op: 'store', addr: '$buf', value: 0x77n }, // 1
    { op: 'syscall', name: 'fork', child: [sc('getpid'), sc('exit', 0)] }, // 2: 2
    sc('open', '&cmem', O_RDONLY, 0), // 3: 3, child 2's mm grabbed
    sc('open', '&cpm', O_RDONLY, 0), // 4: 4
    sc('pread64', 3, '$buf+8', 8, '$buf'), // 5: its copy of the page
    { op: 'load', addr: '$buf+8', into: 'v' }, // 6
    { op: 'syscall', name: 'fork', child: [sc('exit', 0)] }, // 7: 3
    sc('wait4', 3, 0, 0, 0), // 8: child 2 runs to its exit meanwhile
    sc('pread64', 3, '$buf+8', 8, '$buf'), // 9: mmget_not_zero fails: 0
    sc('pread64', 4, '$buf+8', 8, 0), // 10: likewise 0
    sc('open', '&cmem', O_RDONLY, 0), // 11: proc_mem_open finds no mm: -ESRCH
    sc('open', '&cpm', O_RDONLY, 0), // 12: -ESRCH
    sc('open', '&cmaps', O_RDONLY, 0), // 13: 5 (a NULL mm is fine for maps)
    sc('read', 5, '$buf', 4096), // 14: m_start: no mm, nothing
    sc('open', '&cstatus', O_RDONLY, 0), // 15: 6
    ...dump(6, 7), // 16..18
    sc('wait4', 2, 0, 0, 0), // 19: reaped
    sc('read', 6, '$buf', 4096), // 20: proc_single_show: get_pid_task fails, -ESRCH
    sc('open', '&cstatus', O_RDONLY, 0), // 21: -ENOENT
  ];
  const { sys } = runProgram({ main, strings: { out: '/tmp/out', cmem: '/proc/2/mem', cpm: '/proc/2/pagemap', cmaps: '/proc/2/maps', cstatus: '/proc/2/status' } });
  const r = records(sys);
  assert.equal(ret(sys, 2), 2n);
  assert.equal(ret(sys, 5), 8n);
  assert.equal(r.get(6)!.value, 0x77n);
  assert.deepEqual([9, 10, 11, 12, 13, 14, 19, 20, 21].map((i) => ret(sys, i)), [0n, 0n, errno(ESRCH), errno(ESRCH), 5n, 0n, 2n, errno(ESRCH), errno(ENOENT)]);
  const status = fileText(sys, '/tmp/out');
  // task_state: no Umask once exit_fs ran; no task_mem without an mm.
  assert.ok(status.startsWith('Name:\tinit\nState:\tZ (zombie)\nTgid:\t2\nNgid:\t0\nPid:\t2\nPPid:\t1\nTracerPid:\t0\n'), status);
  assert.ok(!status.includes('VmSize'), 'no task_mem for a task without an mm');
});

// ---- maps and smaps ------------------------------------------------------------------------

/**
 * Each line as show_map_vma prints it: start-end (at least 8 hex digits), rwx and p/s, the
 * offset (8 hex digits), major:minor (2 each), the inode, a space, and when there is a name
 * spaces up to column 73 (seq_setwidth 25 + 6 * 8 - 1, seq_pad) and the name. The lines below
 * were written out by hand from those rules; the host prints its own mappings the same way.
 */
test('/proc/self/maps: show_map_vma for anonymous, shared anonymous (/dev/zero (deleted)), tmpfs file, memfd, stack and the gate VMA', () => {
  const main: Op[] = [
    mmap('buf', 16384, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS), // 0: 0x7ffff7ffb000, below mmap_base 0x7ffff7fff000
    mmap('sh', 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS), // 1: 0x7ffff7ffa000
    sc('open', '&f', O_CREAT | O_RDWR, 0o644), // 2: 3
    sc('ftruncate', 3, 8192), // 3
    sci('fm', 'mmap', 0, 4096, PROT_READ, MAP_SHARED, 3, 4096), // 4: 0x7ffff7ff9000, offset 0x1000
    sc('memfd_create', '&mname', 0), // 5: 4
    sc('ftruncate', 4, 4096), // 6
    sci('mm', 'mmap', 0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, 4, 0), // 7: 0x7ffff7ff8000
    sc('open', '&maps', O_RDONLY, 0), // 8: 5
    ...dump(5, 6), // 9..11
  ];
  const { sys } = runProgram({ main, strings: { ...STRINGS, mname: 'hello' } });
  assert.equal(ret(sys, 0), 0x7ffff7ffb000n);
  const inoF = sys.kernel.vfs.root.entries!.get('tmp')!.entries!.get('f')!.ino;
  const pad = (s: string): string => s.padEnd(73, ' ');
  const expected = [
    // The program (spawned as 'init') has no file: its path, the segments' file offsets, no device or inode (task_mmu.ts vma_name).
    pad('00400000-00401000 r-xp 00000000 00:00 0 ') + '/init',
    pad('00401000-00402000 r--p 00001000 00:00 0 ') + '/init',
    pad(`7ffff7ff8000-7ffff7ff9000 rw-p 00000000 00:1a ${inoF + 1} `) + '/memfd:hello (deleted)',
    pad(`7ffff7ff9000-7ffff7ffa000 r--s 00001000 00:1a ${inoF} `) + '/tmp/f',
    `7ffff7ffa000-7ffff7ffb000 rw-s 00000000 00:01 `,
    '7ffff7ffb000-7ffff7fff000 rw-p 00000000 00:00 0 ',
  ];
  // (no name: the line ends after the inode's space, unpadded)
  const text = fileText(sys, '/tmp/out');
  const lines = text.split('\n');
  assert.equal(lines.length, 9, text);
  assert.deepEqual(lines.slice(0, 4), expected.slice(0, 4));
  assert.ok(lines[4].startsWith(expected[4]) && lines[4].length === 73 + '/dev/zero (deleted)'.length && lines[4].endsWith(' /dev/zero (deleted)'), lines[4]);
  assert.equal(lines[5], expected[5]);
  assert.equal(lines[6], pad('7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0 ') + '[stack]');
  assert.equal(lines[7], pad('ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 ') + '[vsyscall]');
  assert.equal(lines[8], '');
});

test('/proc/self/smaps: show_smap of a read-only private page written through /proc/self/mem (the host prints the same block, less `sd`)', () => {
  const main: Op[] = [
    mmap('buf', 16384, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS), // 0: 0x7ffff7ffb000
    mmap('ro', 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS), // 1: 0x7ffff7ffa000
    sc('open', '&mem', O_RDWR, 0), // 2: 3
    sc('pwrite64', 3, '$buf', 8, '$ro'), // 3
    sc('open', '&smaps', O_RDONLY, 0), // 4: 4
    ...dump(4, 5), // 5..7
  ];
  const { sys } = runProgram({ main, strings: STRINGS });
  assert.equal(ret(sys, 1), 0x7ffff7ffa000n);
  const text = fileText(sys, '/tmp/out');
  const at = text.indexOf('7ffff7ffa000-7ffff7ffb000');
  assert.ok(at >= 0, text);
  const block = text.slice(at).split('\n').slice(0, 26).join('\n');
  // smaps_account: one anonymous page, referenced (young PTE), dirty (pte_mkdirty), refcount 1: all private.
  const kb = (name: string, v: number): string => `${name.padEnd(16, ' ')}${String(v).padStart(8, ' ')} kB`;
  const expected = [
    '7ffff7ffa000-7ffff7ffb000 r--p 00000000 00:00 0 ',
    kb('Size:', 4), kb('KernelPageSize:', 4), kb('MMUPageSize:', 4), kb('Rss:', 4), kb('Pss:', 4), kb('Pss_Dirty:', 4),
    kb('Shared_Clean:', 0), kb('Shared_Dirty:', 0), kb('Private_Clean:', 0), kb('Private_Dirty:', 4), kb('Referenced:', 4), kb('Anonymous:', 4),
    kb('KSM:', 0), kb('LazyFree:', 0), kb('AnonHugePages:', 0), kb('ShmemPmdMapped:', 0), kb('FilePmdMapped:', 0), kb('Shared_Hugetlb:', 0),
    'Private_Hugetlb:       0 kB', kb('Swap:', 0), kb('SwapPss:', 0), kb('Locked:', 0), 'THPeligible:           0',
  ];
  // ProtectionKey appears with OSPKE only.
  const lines = block.split('\n');
  assert.deepEqual(lines.slice(0, 24), expected);
  const rest = text.slice(at).split('\n');
  const flagsLine = rest.find((l) => l.startsWith('VmFlags:'))!;
  assert.equal(flagsLine, 'VmFlags: rd mr mw me sd ');
  assert.ok(text.endsWith('VmFlags: ex \n'), 'the gate VMA ends the file');
});

test('/proc/self/pagemap: pagemap_read checks (8-byte position and count, 0 bytes, past TASK_SIZE) and pte_to_pagemap_entry bits', () => {
  const main: Op[] = [
    mmap('buf', 16384, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS), // 0: 0x7ffff7ffb000
    mmap('sh', 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS), // 1: 0x7ffff7ffa000
    { op: 'store', addr: '$buf', value: 1 }, // 2: page 0 written
    { op: 'load', addr: '$buf+4096', into: 'z' }, // 3: page 1 the zero page
    { op: 'store', addr: '$sh', value: 1 }, // 4
    sc('open', '&pagemap', O_RDONLY, 0), // 5: 3
    sc('pread64', 3, '$buf', 8, 4), // 6: -EINVAL
    sc('pread64', 3, '$buf', 4, 0), // 7: -EINVAL
    sc('pread64', 3, '$buf', 0, 0), // 8: 0
    sc('pread64', 3, '$buf', 8, 0xfffffffff * 8), // 9: the page at TASK_SIZE (0x7ffffffff000): 0
    // Entries for 0x7ffff7ff9000 (no VMA) .. 0x7ffff7fff000: hole, sh, buf 0..3.
    sc('pread64', 3, '$buf+8192', 48, 0x7ffff7ff9 * 8), // 10: 48
    sc('open', '&out', O_CREAT | O_RDWR | O_TRUNC, 0o644), // 11: 4
    sc('write', 4, '$buf+8192', 48), // 12
    sc('lseek', 3, 0, SEEK_END), // 13: mem_lseek: -EINVAL
  ];
  const { sys } = runProgram({ main, strings: STRINGS });
  assert.equal(ret(sys, 1), 0x7ffff7ffa000n);
  assert.deepEqual([6, 7, 8, 9, 10, 13].map((i) => ret(sys, i)), [errno(EINVAL), errno(EINVAL), 0n, 0n, 48n, errno(EINVAL)]);
  const e = words(fileText(sys, '/tmp/out'));
  const PRESENT = 1n << 63n, FILE = 1n << 61n, EXCL = 1n << 56n, SD = 1n << 55n, PFN = (1n << 55n) - 1n;
  assert.equal(e[0], 0n, 'no VMA: pagemap_pte_hole gives 0');
  assert.equal(e[1] & ~PFN, PRESENT | FILE | EXCL | SD, 'a shared anonymous page is shmem: PM_FILE, mapped once');
  assert.equal(e[2] & ~PFN, PRESENT | EXCL | SD, 'a written anonymous page');
  assert.equal(e[3], PRESENT | SD | BigInt(sys.kernel.zero_pfn), 'the zero page: its frame, no struct page (vm_normal_page is NULL): neither exclusive nor file');
  assert.equal(e[4], SD, 'an empty PTE of a VM_SOFTDIRTY VMA');
  assert.equal(e[5], SD);
  assert.ok((e[1] & PFN) !== 0n && (e[2] & PFN) !== 0n, 'root with CAP_SYS_ADMIN sees frames');
});

test('/proc/self/pagemap: frames only for an opener with CAP_SYS_ADMIN (file_ns_capable of the credentials at open)', () => {
  // capset(v3 header, data): keep everything but CAP_SYS_ADMIN (bit 21).
  const main: Op[] = [
    mmap('buf', 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS), // 0: 0x7ffff7ffe000
    { op: 'store', addr: '$buf+64', value: 1 }, // 1
    sc('open', '&pagemap', O_RDONLY, 0), // 2: 3, with the capability
    { op: 'store', addr: '$buf', value: 0x20080522n }, // 3: _LINUX_CAPABILITY_VERSION_3, pid 0
    { op: 'store', addr: '$buf+8', value: 0xffdfffffn | (0xffdfffffn << 32n) }, // 4: effective, permitted
    { op: 'store', addr: '$buf+16', value: 0n }, // 5: inheritable 0, second word's effective
    { op: 'store', addr: '$buf+24', value: 0x1ffn << 32n }, // 6
    { op: 'store', addr: '$buf+32', value: 0n }, // 7
    sc('capset', '$buf', '$buf+8'), // 8
    sc('open', '&pagemap', O_RDONLY, 0), // 9: 4, without
    sc('pread64', 3, '$buf+128', 8, 0x7ffff7ffe * 8), // 10
    sc('pread64', 4, '$buf+136', 8, 0x7ffff7ffe * 8), // 11
    { op: 'load', addr: '$buf+128', into: 'a' }, // 12
    { op: 'load', addr: '$buf+136', into: 'b' }, // 13
  ];
  const { sys } = runProgram({ main, strings: STRINGS });
  const r = records(sys);
  assert.equal(ret(sys, 8), 0n);
  const a = r.get(12)!.value!;
  const b = r.get(13)!.value!;
  assert.ok((a & ((1n << 55n) - 1n)) !== 0n, 'opened with CAP_SYS_ADMIN: the frame');
  assert.equal(b, a & ~((1n << 55n) - 1n), 'opened without: the same flags, frame 0');
});

test('/proc/self/status: proc_pid_status lines for the model\'s process', () => {
  const main: Op[] = [
    mmap('buf', 16384, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS), // 0
    { op: 'store', addr: '$buf', value: 1n << 9n }, // 1: SIGUSR1 (10) in a set
    sc('rt_sigprocmask', 0, '$buf', 0, 8), // 2: SIG_BLOCK
    { op: 'store', addr: '$buf+64', value: 1n }, // 3: SIG_IGN
    { op: 'store', addr: '$buf+72', value: 0n }, // 4
    sc('rt_sigaction', 13, '$buf+64', 0, 8), // 5: SIGPIPE ignored
    { op: 'store', addr: '$buf+8192', value: 5 }, // 6: a third page resident
    sc('open', '&status', O_RDONLY, 0), // 7: 3
    ...dump(3, 4), // 8..10
  ];
  const { sys } = runProgram({ main, strings: STRINGS });
  const text = fileText(sys, '/tmp/out');
  const field = (name: string): string => {
    const l = text.split('\n').find((x) => x.startsWith(`${name}:`));
    assert.ok(l, `${name} missing:\n${text}`);
    return l.slice(name.length + 1);
  };
  // The order of task_state, task_mem, task_sig, task_cap, task_seccomp, task_cpus_allowed.
  const order = text.split('\n').map((l) => l.split(':')[0]).filter((x) => x);
  assert.deepEqual(order, [
    'Name', 'Umask', 'State', 'Tgid', 'Ngid', 'Pid', 'PPid', 'TracerPid', 'Uid', 'Gid', 'FDSize', 'Groups', 'NStgid', 'NSpid', 'Kthread',
    'VmPeak', 'VmSize', 'VmLck', 'VmPin', 'VmHWM', 'VmRSS', 'RssAnon', 'RssFile', 'RssShmem', 'VmData', 'VmStk', 'VmExe', 'VmLib', 'VmPTE', 'VmSwap', 'HugetlbPages',
    'CoreDumping', 'THP_enabled', 'untag_mask', 'Threads', 'SigQ', 'SigPnd', 'ShdPnd', 'SigBlk', 'SigIgn', 'SigCgt', 'CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb',
    'NoNewPrivs', 'Seccomp', 'Seccomp_filters', 'Cpus_allowed', 'Cpus_allowed_list', 'Mems_allowed', 'Mems_allowed_list',
    'voluntary_ctxt_switches', 'nonvoluntary_ctxt_switches',
  ]);
  assert.equal(field('Umask'), '\t0022');
  assert.equal(field('State'), '\tR (running)');
  assert.equal(field('Uid'), '\t0\t0\t0\t0');
  assert.equal(field('FDSize'), '\t64', 'NR_OPEN_DEFAULT');
  assert.equal(field('Groups'), '\t ', 'no groups, and the trailing space Linux keeps');
  // 16 KiB of buf, 132 KiB of stack, the text page and the rodata page: 16 + 132 + 4 + 4.
  assert.equal(field('VmSize'), '\t     156 kB');
  assert.equal(field('VmData'), '\t      16 kB');
  assert.equal(field('VmStk'), '\t     132 kB');
  assert.equal(field('VmExe'), '\t       4 kB');
  assert.equal(field('SigBlk'), '\t0000000000000200');
  assert.equal(field('SigIgn'), '\t0000000000001000');
  assert.equal(field('CapEff'), '\t000001ffffffffff', 'CAP_FULL_SET: capabilities 0..40');
  assert.equal(field('Threads'), '\t1');
  assert.equal(field('untag_mask'), '\t0xffffffffffffffff');
  assert.equal(field('Cpus_allowed_list'), '\t0');
  assert.equal(field('Mems_allowed'), `\t${Array.from({ length: 31 }, () => '00000000').join(',')},00000001`, 'MAX_NUMNODES 1024 bits');
});

// ---- clear_refs and soft-dirty ---------------------------------------------------------------

test('/proc/self/clear_refs 4: VM_SOFTDIRTY and the PTE soft-dirty bits cleared, every PTE write-protected; the next write faults and sets the bit again; a new VMA is soft-dirty', () => {
  const main: Op[] = [
    mmap('buf', 16384, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS), // 0: 0x7ffff7ffb000
    { op: 'store', addr: '$buf', value: 1 }, // 1: page 0
    { op: 'store', addr: '$buf+4096', value: 1 }, // 2: page 1
    sc('open', '&clear', O_RDWR, 0), // 3: 3
    sc('write', 3, '&four', 2), // 4: "4\n": 2
    { op: 'store', addr: '$buf+4096', value: 2 }, // 5: page 1 again: a write fault (wp_page_reuse: pte_mkdirty)
    // A VMA mapped after clear_refs, read-only so that it does not merge with buf (a merge would
    // give the expanded buf VM_SOFTDIRTY again: "New (or expanded) vma always get soft dirty status").
    mmap('late', 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS), // 6: 0x7ffff7ffa000
    sc('open', '&pagemap', O_RDONLY, 0), // 7: 4
    sc('pread64', 4, '$buf+12288', 40, 0x7ffff7ffa * 8), // 8: late, buf 0..3: 40
    sc('open', '&out', O_CREAT | O_RDWR | O_TRUNC, 0o644), // 9: 5
    sc('write', 5, '$buf+12288', 40), // 10
  ];
  const { sys } = runProgram({ main, strings: { ...STRINGS, clear: '/proc/self/clear_refs', four: '4\n' } });
  assert.equal(ret(sys, 0), 0x7ffff7ffb000n);
  assert.equal(ret(sys, 4), 2n, 'clear_refs_write returns the count');
  assert.equal(ret(sys, 8), 40n);
  const e = words(fileText(sys, '/tmp/out'));
  const PRESENT = 1n << 63n, EXCL = 1n << 56n, SD = 1n << 55n, PFN = (1n << 55n) - 1n;
  assert.equal(e[0], SD, 'a VMA mapped after clear_refs has VM_SOFTDIRTY (__mmap_region)');
  assert.equal(e[1] & ~PFN, PRESENT | EXCL, 'written before clear_refs, not since');
  assert.equal(e[2] & ~PFN, PRESENT | EXCL | SD, 'written after clear_refs: soft-dirty again');
  assert.equal(e[3], 0n, 'never written, VM_SOFTDIRTY cleared');
  assert.equal(e[4], 0n);
});

test('/proc/self/clear_refs: checks in clear_refs_write\'s order (at most 12 bytes, kstrtoint of the stripped text, the type), the count returned, no read, noop_llseek', () => {
  const main: Op[] = [
    sc('open', '&clear', O_RDWR, 0), // 0: 3
    sc('write', 3, 0x10, 2), // 1: copy_from_user: -EFAULT
    sc('write', 3, '&nine', 1), // 2: type 9: -EINVAL
    sc('write', 3, '&x', 1), // 3: not a number: -EINVAL
    sc('write', 3, '&big', 11), // 4: past INT_MAX: -ERANGE
    sc('write', 3, '&one', 0), // 5: nothing: kstrtoint("") is -EINVAL
    sc('write', 3, '&zero', 1), // 6: type 0: -EINVAL
    sc('write', 3, '&one', 4), // 7: " 1 \n": 4
    sc('write', 3, '&five', 20), // 8: clamped to 12, "5" and spaces: 12
    sc('write', 3, '&neg', 2), // 9: -4: -EINVAL
    sc('read', 3, 0x10, 8), // 10: no read operation: -EINVAL
    sc('lseek', 3, 5, SEEK_SET), // 11: noop_llseek: the position, 0
    sc('write', 3, '&plus', 2), // 12: "+2": 2
  ];
  const { sys } = runProgram({
    main,
    strings: { clear: '/proc/self/clear_refs', nine: '9', x: 'x', big: '99999999999', zero: '0', one: ' 1 \n', five: '5           trailing bytes', neg: '-4', plus: '+2' },
  });
  const ERANGE = 34;
  assert.deepEqual(
    Array.from({ length: 13 }, (_, i) => ret(sys, i)),
    [3n, errno(EFAULT), errno(EINVAL), errno(EINVAL), errno(ERANGE), errno(EINVAL), errno(EINVAL), 4n, 12n, errno(EINVAL), errno(EINVAL), 0n, 2n],
  );
});

test('/proc/self/clear_refs 1 clears the accessed bits: smaps Referenced drops to 0 while Rss stays', () => {
  const main: Op[] = [
    mmap('buf', 16384, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS), // 0
    { op: 'store', addr: '$buf', value: 1 }, // 1
    { op: 'store', addr: '$buf+4096', value: 1 }, // 2
    sc('open', '&clear', O_WRONLY, 0), // 3: 3
    sc('write', 3, '&one', 1), // 4
    sc('open', '&smaps', O_RDONLY, 0), // 5: 4
    ...dump(4, 5), // 6..8
  ];
  const { sys } = runProgram({ main, strings: { ...STRINGS, clear: '/proc/self/clear_refs', one: '1' } });
  assert.equal(ret(sys, 4), 1n);
  const text = fileText(sys, '/tmp/out');
  const block = text.slice(text.indexOf('7ffff7ffb000-7ffff7fff000')).split('\n');
  const field = (name: string): string => block.find((l) => l.startsWith(`${name}:`))!;
  assert.equal(field('Rss'), 'Rss:                   8 kB');
  // The dump's read of smaps touched nothing of buf's first two pages after the clear.
  assert.equal(field('Referenced'), 'Referenced:            0 kB');
  assert.ok(field('VmFlags').includes(' sd '), 'clear_refs 1 leaves VM_SOFTDIRTY');
});

test('soft-dirty across swap: try_to_unmap_one keeps it in the swap PTE (_PAGE_SWP_SOFT_DIRTY), do_swap_page puts it back; pagemap shows the swap type and offset', () => {
  const MADV_PAGEOUT = 21;
  const main: Op[] = [
    mmap('buf', 16384, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS), // 0: 0x7ffff7ffb000
    { op: 'store', addr: '$buf', value: 1 }, // 1: page 0
    { op: 'store', addr: '$buf+4096', value: 1 }, // 2: page 1
    sc('open', '&clear', O_WRONLY, 0), // 3: 3
    sc('write', 3, '&four', 1), // 4
    { op: 'store', addr: '$buf+4096', value: 2 }, // 5: page 1 soft-dirty again
    sc('madvise', '$buf', 8192, MADV_PAGEOUT), // 6: both swapped out
    sc('open', '&pagemap', O_RDONLY, 0), // 7: 4
    sc('pread64', 4, '$buf+8192', 16, 0x7ffff7ffb * 8), // 8
    { op: 'load', addr: '$buf', into: 'a' }, // 9: swapped back in
    { op: 'load', addr: '$buf+4096', into: 'b' }, // 10
    sc('pread64', 4, '$buf+8208', 16, 0x7ffff7ffb * 8), // 11
    sc('open', '&out', O_CREAT | O_RDWR | O_TRUNC, 0o644), // 12: 5
    sc('write', 5, '$buf+8192', 32), // 13
  ];
  const { sys } = runProgram({ main, strings: { ...STRINGS, clear: '/proc/self/clear_refs', four: '4' } }, { kernel: { swap_pages: 16 } });
  assert.equal(ret(sys, 6), 0n);
  const r = records(sys);
  assert.equal(r.get(9)!.value, 1n);
  assert.equal(r.get(10)!.value, 2n);
  const e = words(fileText(sys, '/tmp/out'));
  const PRESENT = 1n << 63n, SWAP = 1n << 62n, SD = 1n << 55n, PFN = (1n << 55n) - 1n;
  // Swap entries: type 0 in bits 0..4, the offset above (frame = type | offset << MAX_SWAPFILES_SHIFT).
  assert.equal(e[0] & ~PFN, SWAP, 'clean since clear_refs: no soft-dirty in its swap PTE');
  assert.equal(e[1] & ~PFN, SWAP | SD, 'written since: _PAGE_SWP_SOFT_DIRTY');
  assert.equal(e[0] & 0x1fn, 0n, 'swap type 0');
  assert.notEqual(e[0] >> 5n, e[1] >> 5n, 'two slots');
  assert.equal(e[2] & SD, 0n, 'swapped in clean');
  assert.equal(e[3] & ~PFN & ~(1n << 56n), PRESENT | SD, 'swapped in soft-dirty (pte_mksoft_dirty)');
});

test('soft-dirty and merging: mprotect that merges a clean VMA into a soft-dirty neighbour leaves the result clean (vm_flags_reset with the changed VMA\'s flags)', () => {
  const main: Op[] = [
    mmap('ob', 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS), // 0: 0x7ffff7ffe000, the output buffer (merges with nothing)
    mmap('buf', 16384, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS), // 1: 0x7ffff7ffa000
    sc('open', '&clear', O_WRONLY, 0), // 2: 3
    sc('write', 3, '&four', 1), // 3
    mmap('late', 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS), // 4: 0x7ffff7ff9000, VM_SOFTDIRTY, not merged (VM_EXEC)
    sc('open', '&pagemap', O_RDONLY, 0), // 5: 4
    sc('pread64', 4, '$ob', 16, 0x7ffff7ff9 * 8), // 6: late soft-dirty, buf clean
    sc('mprotect', '$buf', 16384, PROT_READ | PROT_WRITE | PROT_EXEC), // 7: the same flags as late (VM_ACCOUNT included): buf merges into it
    sc('pread64', 4, '$ob+16', 16, 0x7ffff7ff9 * 8), // 8
    sc('open', '&out', O_CREAT | O_RDWR | O_TRUNC, 0o644), // 9: 5
    sc('write', 5, '$ob', 32), // 10
  ];
  const { sys } = runProgram({ main, strings: { ...STRINGS, clear: '/proc/self/clear_refs', four: '4' } });
  assert.deepEqual([1, 4, 6, 7, 8].map((i) => ret(sys, i)), [0x7ffff7ffa000n, 0x7ffff7ff9000n, 16n, 0n, 16n]);
  const e = words(fileText(sys, '/tmp/out'));
  const SD = 1n << 55n;
  assert.deepEqual(e, [SD, 0n, 0n, 0n], 'mprotect_fixup: vma_modify_flags merges buf into late, then vm_flags_reset(vma, newflags) without VM_SOFTDIRTY');
});
