/**
 * brk against Linux 6.12's code (mm/mmap.c sys_brk, do_brk_flags, check_brk_limits;
 * include/linux/mm.h check_data_rlimit; fs/binfmt_elf.c load_elf_binary's start_brk without
 * randomisation; kernel/fork.c dup_mm), each check in sys_brk's order: a refused move leaves the
 * break where it was and returns it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MmStruct } from '../../src/kernel/mm.js';
import type { System } from '../../src/system.js';
import type { Op } from '../../src/user/program.js';
import { boot, records } from './helpers.js';

const PAGE = 4096;
const PROT_RW = 3, MAP_PRIVATE_ANON = 0x22, MAP_FIXED = 0x10;
const RLIMIT_DATA = 2, RLIMIT_AS = 9, MCL_FUTURE = 2;
const VM_READ = 0x1, VM_WRITE = 0x2, VM_MAYREAD = 0x10, VM_MAYWRITE = 0x20, VM_MAYEXEC = 0x40, VM_LOCKED = 0x2000, VM_ACCOUNT = 0x100000;
const SIGSEGV = 11;
const INF = 0xffffffffffffffffn;

const sc = (name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args });
const sci = (into: string, name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args, into });
const store = (addr: string, value: number | bigint): Op => ({ op: 'store', addr, value });

/** Runs `main` until its last operation has completed, the process still alive. */
function run(main: Op[], strings: Record<string, string> = { s: 'some read-only bytes' }): { sys: System; pid: number } {
  const sys = boot();
  const pid = sys.spawn({ main, strings });
  const last = main.length - 1;
  for (let n = 0; n < 1_000_000 && !records(sys).has(last); n++) if (!sys.step()) break;
  assert.ok(records(sys).has(last), `main[${last}] did not complete`);
  assert.deepEqual(sys.debugReports, []);
  return { sys, pid };
}
const r = (sys: System, i: number): bigint => BigInt.asIntN(64, records(sys).get(i)!.value!);
const mmOf = (sys: System, pid: number): MmStruct => sys.kernel.tasks.get(pid)!.mm!;

test('brk: the break starts after the image (start_brk); it grows into a [heap] VMA and shrinks page by page', () => {
  const main: Op[] = [
    sci('b0', 'brk', 0), // 0: below start_brk: the break, unmoved
    sci('b1', 'brk', '$b0+10000'), // 1: three pages
    store('$b0+8192', 5), // 2
    sci('b2', 'brk', '$b0+10001'), // 3: the same page: only mm->brk moves
    sci('b3', 'brk', '$b0+4096'), // 4: one page left
    sci('b4', 'brk', '$b0+4095'), // 5: below the old break's page... still one page
    sci('b5', 'brk', '$b0'), // 6: empty
    sci('b6', 'brk', '$b0+1'), // 7: one page again
    sc('getpid'), // 8
  ];
  const { sys, pid } = run(main);
  const mm = mmOf(sys, pid);
  const image = sys.kernel.tasks.get(pid)!.image!;
  // binfmt_elf: start_brk = ELF_PAGEALIGN(end of the last segment), here the read-only strings.
  const startBrk = Math.ceil((image.textEnd + image.rodata.length) / PAGE) * PAGE;
  const b0 = r(sys, 0);
  assert.equal(b0, BigInt(startBrk));
  assert.deepEqual([1, 3, 4, 5, 6, 7].map((i) => r(sys, i) - b0), [10000n, 10001n, 4096n, 4095n, 0n, 1n]);
  const heap = mm.vmas.list.filter((v) => v.name === '[heap]');
  assert.deepEqual(heap.map((v) => [v.vm_start - startBrk, v.vm_end - startBrk, v.vm_flags]), [[0, PAGE, VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC | VM_ACCOUNT]]);
  assert.equal(mm.brk, startBrk + 1);
});

test('brk: a store past the shrunk break is SIGSEGV; fork keeps the break, the child\'s own', () => {
  const sys = boot();
  const pid = sys.spawn({ main: [
    sci('b0', 'brk', 0), // 0
    sci('b1', 'brk', '$b0+8192'), // 1
    store('$b0+4096', 3), // 2
    { op: 'syscall', name: 'fork', child: [sci('c0', 'brk', 0), sci('c1', 'brk', '$b0+12288'), { op: 'load', addr: '$b0+4096', into: 'cv' }, sc('exit_group', 0)] }, // 3
    sc('wait4', -1, 0, 0, 0), // 4
    sci('p', 'brk', 0), // 5: the parent's break did not follow the child's
    sci('b2', 'brk', '$b0+4096'), // 6
    store('$b0+4096', 4), // 7: SIGSEGV
  ] });
  sys.run({ maxSteps: 1_000_000 });
  const b0 = records(sys).get(0)!.value!;
  const child = records(sys, 'main.3.child');
  assert.equal(child.get(0)!.value! - b0, 8192n);
  assert.equal(child.get(1)!.value! - b0, 12288n);
  assert.equal(child.get(2)!.value, 3n);
  assert.equal(records(sys).get(5)!.value! - b0, 8192n);
  assert.equal(records(sys).get(6)!.value! - b0, 4096n);
  assert.equal(sys.exitStatus(pid), SIGSEGV);
});

test('brk: RLIMIT_DATA (check_data_rlimit, then may_expand_vm), RLIMIT_AS, a mapping in the way, and mlockall(MCL_FUTURE)', () => {
  const lim = (res: number, cur: bigint): Op[] => [store('$buf', cur), store('$buf+8', INF), sc('setrlimit', res, '$buf')];
  const main: Op[] = [
    sci('buf', 'mmap', 0, PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0), // 0: one data page
    sci('b0', 'brk', 0), // 1
    ...lim(RLIMIT_DATA, 16n * BigInt(PAGE)), // 2..4
    sci('x1', 'brk', '$b0+65536'), // 5: 16 pages of heap plus the image's data bytes: over (check_data_rlimit)
    sci('x2', 'brk', '$b0+61440'), // 6: 15 pages + the data bytes fit, and data_vm 1 + 15 pages too
    sci('x3', 'brk', '$b0'), // 7
    sci('m', 'mmap', 0, 8 * PAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0), // 8: data_vm 9 pages
    sci('x4', 'brk', '$b0+32768'), // 9: 8 pages: check_data_rlimit passes, may_expand_vm (9 + 8 > 16) refuses
    sci('x5', 'brk', '$b0+28672'), // 10: 7 pages: 16
    sci('x6', 'brk', '$b0'), // 11
    ...lim(RLIMIT_DATA, INF), // 12..14
    sci('g', 'mmap', '$b0+40960', PAGE, PROT_RW, MAP_PRIVATE_ANON | MAP_FIXED, -1, 0), // 15: a mapping 10 pages up
    sci('x7', 'brk', '$b0+36865'), // 16: 10 pages, touching it: refused (newbrk + PAGE_SIZE > its start)
    sci('x8', 'brk', '$b0+36864'), // 17: 9 pages, a page below it: fits
    sci('x9', 'brk', '$b0'), // 18
    sc('mlockall', MCL_FUTURE), // 19
    sci('y1', 'brk', '$b0+8192'), // 20: locked and populated
    ...lim(RLIMIT_AS, 0n), // 21..23
    sci('y2', 'brk', '$b0+16384'), // 24: no address space left
  ];
  const { sys, pid } = run(main);
  const b0 = r(sys, 1);
  assert.deepEqual([5, 6, 7, 9, 10, 11, 16, 17, 18, 20, 24].map((i) => r(sys, i) - b0), [0n, 61440n, 0n, 0n, 28672n, 0n, 0n, 36864n, 0n, 8192n, 8192n]);
  assert.equal(mmOf(sys, pid).locked_vm, 2, 'the heap\'s two pages');
  const mm = mmOf(sys, pid);
  const heap = mm.vmas.list.find((v) => v.name === '[heap]')!;
  assert.equal(heap.vm_end - heap.vm_start, 2 * PAGE);
  assert.ok(heap.vm_flags & VM_LOCKED, 'made under MCL_FUTURE');
  for (const off of [0, PAGE]) assert.ok(sys.pte(pid, heap.vm_start + off)?.present, 'populated');
});
