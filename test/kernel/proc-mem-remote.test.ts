/**
 * What the host differential (test/oracle, the proc family) found in /proc/PID/mem and pagemap,
 * against Linux 6.12's code:
 * - mm/memory.c __access_remote_vm grows the stack (expand_stack, mm/mmap.c) when no VMA holds
 *   the address, before the transfer and again where a page cannot be had; a grows-down VMA above
 *   the address is extended down to it, so a /proc/self/mem write below it lands;
 * - mm/gup.c can_follow_write_pte under FOLL_FORCE refuses to write through a read-only entry
 *   that still needs a write fault: a uffd-wp entry of a VMA registered for write-protect faults
 *   (userfaultfd_pte_wp: the fault goes to handle_userfault, and with UFFD_FEATURE_SIGBUS the
 *   write is -EIO), or an entry not soft-dirty in a VMA clear_refs made soft-dirty clean
 *   (pte_needs_soft_dirty_wp: the write fault sets the soft-dirty bit pagemap then shows);
 * - fs/proc/task_mmu.c do_pagemap_cmd, pagemap's unlocked_ioctl: -EINVAL for a command other
 *   than PAGEMAP_SCAN (fs/ioctl.c vfs_ioctl's -ENOTTY is for files without an ioctl).
 * The first two and the third were also run natively as root on the host's 6.18 kernel, which
 * agreed (the soft-dirty case cannot be: the host is built without CONFIG_MEM_SOFT_DIRTY).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { records, ret, runProgram } from './helpers.js';

const EIO = 5, EINVAL = 22, ENOTTY = 25;
const O_RDONLY = 0, O_RDWR = 2, O_WRONLY = 1;
const PROT_READ = 1, PROT_WRITE = 2;
const MAP_PRIVATE = 2, MAP_FIXED = 0x10, MAP_ANONYMOUS = 0x20, MAP_GROWSDOWN = 0x100;
const UFFDIO_API = 0xc018aa3f, UFFDIO_REGISTER = 0xc020aa00, UFFDIO_WRITEPROTECT = 0xc018aa06;
const UFFD_FEATURE_SIGBUS = 1 << 7, UFFDIO_REGISTER_MODE_WP = 2, UFFDIO_WRITEPROTECT_MODE_WP = 1;
/** pagemap bits (fs/proc/task_mmu.c): PM_SOFT_DIRTY, PM_UFFD_WP, PM_PRESENT. */
const PM_SOFT_DIRTY = 1n << 55n, PM_UFFD_WP = 1n << 57n, PM_PRESENT = 1n << 63n;
/** Where the tests map: a fixed place, so pagemap's position is known. */
const AT = 0x300000000000n;
const sc = (name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args });
const sci = (into: string, name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args, into });
const st = (addr: string | bigint, value: number | bigint | string): Op => ({ op: 'store', addr, value });
const errno = (e: number): bigint => BigInt(-e);
const STRINGS = { mem: '/proc/self/mem', pagemap: '/proc/self/pagemap', clear_refs: '/proc/self/clear_refs', four: '4' };

test('/proc/self/mem: a write below a grows-down VMA grows it down to the address (expand_stack in __access_remote_vm), then lands', () => {
  const { sys } = runProgram({
    main: [
      sci('buf', 'mmap', 0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), // 0
      st('$buf', 0x1122334455667788n), // 1
      sc('mmap', AT + 0x10000n, 0x4000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_GROWSDOWN, -1, 0), // 2
      sc('open', '&mem', O_RDWR, 0), // 3: 3
      sc('pwrite64', 3, '$buf', 8, AT + 0x8000n), // 4: 32 KiB below the VMA
      { op: 'load', addr: AT + 0x8000n, into: 'v' }, // 5: in the grown VMA
      sc('pread64', 3, '$buf+8', 8, AT), // 6: a read grows it too, a further 32 KiB
      sc('pwrite64', 3, '$buf', 8, 0x7ffffffff000n + 0x10000n), // 7: above every VMA: nothing to grow (-EIO)
    ],
    strings: STRINGS,
  });
  const main = records(sys);
  assert.equal(ret(sys, 4), 8n);
  assert.equal(main.get(5)?.value, 0x1122334455667788n);
  // The VMA now starts at AT (the read at AT grew it further), the whole range one grows-down VMA.
  assert.equal(ret(sys, 6), 8n);
  assert.equal(ret(sys, 7), errno(EIO));
});

test('/proc/self/mem: FOLL_FORCE does not write through a uffd-wp entry of a WP-registered read-only VMA (-EIO with UFFD_FEATURE_SIGBUS); through a plain read-only one it does', () => {
  const area = AT;
  const { sys } = runProgram({
    main: [
      sci('buf', 'mmap', 0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), // 0
      sc('mmap', area, 0x2000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), // 1
      st(area, 1), // 2: both pages present, exclusive
      st(area + 0x1000n, 2), // 3
      sci('uffd', 'userfaultfd', 0), // 4
      st('$buf', 0xaa), // 5
      st('$buf+8', UFFD_FEATURE_SIGBUS), // 6
      sc('ioctl', '$uffd', UFFDIO_API, '$buf'), // 7
      st('$buf+64', area), // 8
      st('$buf+72', 0x2000), // 9
      st('$buf+80', UFFDIO_REGISTER_MODE_WP), // 10
      sc('ioctl', '$uffd', UFFDIO_REGISTER, '$buf+64'), // 11
      st('$buf+64', area), // 12
      st('$buf+72', 0x1000), // 13: only the first page
      st('$buf+80', UFFDIO_WRITEPROTECT_MODE_WP), // 14
      sc('ioctl', '$uffd', UFFDIO_WRITEPROTECT, '$buf+64'), // 15
      sc('mprotect', area, 0x2000, PROT_READ), // 16
      sc('open', '&mem', O_RDWR, 0), // 17: 4
      st('$buf+128', 0x77), // 18
      sc('pwrite64', 4, '$buf+128', 8, area), // 19: uffd-wp: the write fault goes to the handler, SIGBUS
      sc('pwrite64', 4, '$buf+128', 8, area + 0x1000n), // 20: no uffd-wp bit: written through
      { op: 'load', addr: area, into: 'a' }, // 21
      { op: 'load', addr: area + 0x1000n, into: 'b' }, // 22
      sc('pwrite64', 4, '$buf+128', 8, area + 0x800n), // 23: the first page again: nothing moved
    ],
    strings: STRINGS,
  });
  const main = records(sys);
  assert.deepEqual([11, 15, 16].map((i) => ret(sys, i)), [0n, 0n, 0n]);
  assert.equal(ret(sys, 19), errno(EIO));
  assert.equal(ret(sys, 20), 8n);
  assert.equal(main.get(21)?.value, 1n);
  assert.equal(main.get(22)?.value, 0x77n);
  assert.equal(ret(sys, 23), errno(EIO));
});

test('/proc/self/mem: after clear_refs 4, a FOLL_FORCE write to a read-only page takes the write fault (pte_needs_soft_dirty_wp), which makes the entry soft-dirty', () => {
  const area = AT;
  const pmPos = (area >> 12n) * 8n;
  const { sys } = runProgram({
    main: [
      sci('buf', 'mmap', 0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), // 0
      sc('mmap', area, 0x2000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), // 1
      st(area, 1), // 2
      st(area + 0x1000n, 2), // 3
      sc('mprotect', area, 0x2000, PROT_READ), // 4
      sc('open', '&clear_refs', O_WRONLY, 0), // 5: 3
      sc('write', 3, '&four', 1), // 6: VM_SOFTDIRTY and the entries' soft-dirty bits cleared
      sc('open', '&mem', O_RDWR, 0), // 7: 4
      sc('open', '&pagemap', O_RDONLY, 0), // 8: 5
      sc('pwrite64', 4, '$buf', 8, area), // 9: forced write to the first page
      sc('pread64', 5, '$buf+64', 16, pmPos), // 10
      { op: 'load', addr: '$buf+64', into: 'p0' }, // 11
      { op: 'load', addr: '$buf+72', into: 'p1' }, // 12
    ],
    strings: STRINGS,
  });
  const main = records(sys);
  assert.deepEqual([6, 9, 10].map((i) => ret(sys, i)), [1n, 8n, 16n]);
  const p0 = BigInt.asUintN(64, main.get(11)!.value!);
  const p1 = BigInt.asUintN(64, main.get(12)!.value!);
  // The written page: present, soft-dirty again (wp_page_reuse's pte_mkdirty); the other: present, still clean.
  assert.equal(p0 & (PM_PRESENT | PM_SOFT_DIRTY | PM_UFFD_WP), PM_PRESENT | PM_SOFT_DIRTY);
  assert.equal(p1 & (PM_PRESENT | PM_SOFT_DIRTY | PM_UFFD_WP), PM_PRESENT);
});

test('pagemap takes ioctl (do_pagemap_cmd): -EINVAL for a command that is not PAGEMAP_SCAN; mem has none (-ENOTTY)', () => {
  const { sys } = runProgram({
    main: [
      sc('open', '&pagemap', O_RDONLY, 0), // 0: 3
      sc('open', '&mem', O_RDONLY, 0), // 1: 4
      sc('ioctl', 3, UFFDIO_REGISTER, 0), // 2
      sc('ioctl', 4, UFFDIO_REGISTER, 0), // 3
    ],
    strings: STRINGS,
  });
  assert.deepEqual([2, 3].map((i) => ret(sys, i)), [errno(EINVAL), errno(ENOTTY)]);
});
