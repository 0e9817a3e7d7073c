/**
 * Syscall results and errno order, each expected value from the Linux 6.12 source as cited in
 * docs/kernel.md: mmap/munmap/mprotect argument checks, clone's flag checks, wait4, kill and
 * tgkill, rt_sigaction/rt_sigprocmask, signal delivery and rt_sigreturn, vfork and execve.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { boot, mmapAnon, records, ret, runProgram } from './helpers.js';

const EPERM = 1, ESRCH = 3, ECHILD = 10, ENOMEM = 12, EFAULT = 14, EEXIST = 17, EINVAL = 22, EBADF = 9, ENOENT = 2;
const sc = (name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args });

test('mmap argument checks in do_mmap order', () => {
  const { sys } = runProgram([
    sc('mmap', 0, 4096, 3, 0x22, -1, 1), // offset not page aligned
    sc('mmap', 0, 4096, 3, 0x02, -1, 0), // no MAP_ANONYMOUS, fd -1
    sc('mmap', 0, 0, 3, 0x22, -1, 0), // len 0
    sc('mmap', 0, -1n & 0xffffffffffffffffn, 3, 0x22, -1, 0), // PAGE_ALIGN wraps to 0
    sc('mmap', 0x200000001000n, 4096, 3, 0x32, -1, 0), // MAP_FIXED
    sc('mmap', 0x200000001000n, 4096, 3, 0x100022, -1, 0), // MAP_FIXED_NOREPLACE over it
    sc('mmap', 0x200000001001n, 4096, 3, 0x32, -1, 0), // MAP_FIXED unaligned
    sc('mmap', 0x1000, 4096, 3, 0x32, -1, 0), // below mmap_min_addr
    sc('mmap', 0, 4096, 3, 0x23, -1, 0), // MAP_SHARED_VALIDATE on anonymous memory
    sc('mmap', 0x7ffffffff000n, 0x2000, 3, 0x32, -1, 0), // MAP_FIXED past TASK_SIZE
  ]);
  assert.deepEqual([0, 1, 2, 3, 5, 6, 7, 8, 9].map((i) => ret(sys, i)), [-EINVAL, -EBADF, -EINVAL, -ENOMEM, -EEXIST, -EINVAL, -EPERM, -EINVAL, -ENOMEM].map(BigInt));
  assert.equal(ret(sys, 4), 0x200000001000n);
});

test('mmap without a hint is placed top-down just below mmap_base (0x7ffff7fff000)', () => {
  const { sys } = runProgram([mmapAnon('a', 0x3000), mmapAnon('b', 0x1000)]);
  assert.equal(ret(sys, 0), 0x7ffff7fff000n - 0x3000n);
  assert.equal(ret(sys, 1), 0x7ffff7fff000n - 0x4000n);
});

test('munmap and mprotect checks; mprotect keeps the change made before a hole', () => {
  const { sys } = runProgram([
    sc('munmap', 0x200000000001n, 4096),
    sc('munmap', 0x200000000000n, 0),
    sc('munmap', 0x200000000000n, 4096), // nothing mapped: 0
    sc('mprotect', 0x200000000000n, 0, 0xff), // len 0 wins over bad prot
    sc('mprotect', 0x200000000000n, 4096, 0x10), // bad prot bit
    sc('mprotect', 0x200000000000n, 4096, 0x3000000), // GROWSDOWN|GROWSUP
    sc('mmap', 0x200000000000n, 0x1000, 3, 0x32, -1, 0),
    sc('mprotect', 0x200000000000n, 0x2000, 1), // hole after the first page: ENOMEM, first page changed
    { op: 'store', addr: 0x200000000000n, value: 1 },
  ]);
  assert.deepEqual([0, 1, 2, 3, 4, 5, 7].map((i) => ret(sys, i)), [-EINVAL, -EINVAL, 0, 0, -EINVAL, -EINVAL, -ENOMEM].map(BigInt));
  assert.equal(records(sys).get(8)!.signal?.code, 2, 'the page before the hole became read-only (SEGV_ACCERR)');
});

test('clone rejects what copy_process rejects, in order', () => {
  const { sys } = runProgram([
    sc('clone', 0x10000 | 0x100, 0, 0, 0, 0), // CLONE_THREAD without CLONE_SIGHAND
    sc('clone', 0x800, 0, 0, 0, 0), // CLONE_SIGHAND without CLONE_VM
    sc('clone', 0x20000 | 0x200, 0, 0, 0, 0), // CLONE_NEWNS | CLONE_FS
    sc('clone', 0x1000 | 0x100000, 0, 0, 0, 0), // CLONE_PIDFD | CLONE_PARENT_SETTID
  ]);
  assert.deepEqual([0, 1, 2, 3].map((i) => ret(sys, i)), [-EINVAL, -EINVAL, -EINVAL, -EINVAL].map(BigInt));
});

test('wait4: bad options, no child, WNOHANG with a live child, exit status encoding', () => {
  const sys = boot();
  sys.spawn({ main: [
    sc('wait4', -1, 0, 0x10, 0),
    sc('wait4', -1, 0, 0, 0),
    { op: 'syscall', name: 'fork', child: [sc('sched_yield'), sc('exit_group', 0x1ff)] },
    sc('wait4', -1, 0, 1, 0),
    mmapAnon('st', 4096),
    sc('wait4', -1, '$st', 0, 0),
    { op: 'load', addr: '$st', size: 4, into: 'status' },
    sc('wait4', 12345, 0, 0, 0),
  ] });
  sys.run();
  assert.equal(ret(sys, 0), BigInt(-EINVAL));
  assert.equal(ret(sys, 1), BigInt(-ECHILD));
  assert.equal(ret(sys, 3), 0n);
  assert.ok(ret(sys, 5) > 0n);
  // exit_group(0x1ff): (code & 0xff) << 8.
  assert.equal(records(sys).get(6)!.value, 0xff00n);
  assert.equal(ret(sys, 7), BigInt(-ECHILD));
});

test('kill looks the pid up before checking the signal; tgkill checks ids first', () => {
  const { sys } = runProgram([
    sc('kill', 99999, 1000),
    sc('kill', 1, 1000),
    sc('tgkill', 0, 1, 10),
    sc('tgkill', 1, 99999, 1000),
    sc('tgkill', 1, 1, 1000),
    sc('kill', 1, 0),
  ]);
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((i) => ret(sys, i)), [-ESRCH, -EINVAL, -EINVAL, -ESRCH, -EINVAL, 0].map(BigInt));
});

/** Ops writing a struct sigaction at $act and installing it for `sig`. */
function sigaction(sig: number, handler: string, flags: number, mask = 0): Op[] {
  return [
    { op: 'store', addr: '$act', value: handler },
    { op: 'store', addr: '$act+8', value: flags },
    { op: 'store', addr: '$act+16', value: '@__restore_rt' },
    { op: 'store', addr: '$act+24', value: mask },
    sc('rt_sigaction', sig, '$act', 0, 8),
  ];
}

test('a handler runs on a frame, rt_sigreturn resumes after the interrupted op with the mask restored', () => {
  const SA_RESTORER = 0x04000000;
  const { sys } = runProgram({
    main: [
      mmapAnon('act', 4096),
      ...sigaction(10, '@h', SA_RESTORER),
      sc('getpid'),
      { op: 'set', var: 'pid', value: 0 },
      sc('gettid'),
      { op: 'syscall', name: 'kill', args: [1, 10] },
      { op: 'set', var: 'after', value: 1 },
      sc('rt_sigprocmask', 0, 0, '$act+64', 8),
      { op: 'load', addr: '$act+64', into: 'mask' },
    ],
    functions: { h: [{ op: 'set', var: 'handled', value: '$signo' }, { op: 'syscall', name: 'rt_sigprocmask', args: [0, 0, '$act+128', 8] }, { op: 'load', addr: '$act+128', into: 'inmask' }] },
  });
  const h = records(sys, 'h');
  // During the handler the signal itself is blocked (no SA_NODEFER): bit 9 for SIGUSR1.
  assert.equal(h.get(2)!.value, 1n << 9n);
  assert.equal(records(sys).get(12)!.value, 0n, 'mask restored after rt_sigreturn');
});

test('a blocked or ignored SIGSEGV from a fault still kills the process (force_sig_info_to_task)', () => {
  for (const setup of [[sc('rt_sigprocmask', 0, '$act', 0, 8)], sigaction(11, 'x', 0x04000000)] as Op[][]) {
    const sys = boot();
    const fix = setup.map((o) => (o.op === 'store' && o.value === 'x' ? { ...o, value: 1 } : o));
    const pid = sys.spawn({ main: [mmapAnon('act', 4096), { op: 'store', addr: '$act', value: 1n << 10n }, ...fix, { op: 'load', addr: 16 }] as Op[] });
    sys.run();
    assert.equal(sys.exitStatus(pid), 11);
  }
});

test('vfork: the parent sleeps until the child exits', () => {
  const sys = boot({ cpus: 2 });
  sys.spawn({ main: [
    { op: 'syscall', name: 'vfork', child: [sc('sched_yield'), sc('sched_yield'), sc('exit_group', 4)] },
    sc('getpid'),
  ] });
  sys.run();
  const order = sys.log.map((r) => `${r.fn}:${r.index}`);
  assert.ok(order.indexOf('main.0.child:1') < order.indexOf('main:1'), order.join(' '));
});

test('execve: unknown image is ENOENT, a bad path EFAULT; a good one resets handlers and keeps SIG_IGN', () => {
  const sys = boot();
  sys.addImage('next', { main: [
    mmapAnon('buf', 4096),
    sc('rt_sigaction', 12, 0, '$buf', 8),
    { op: 'load', addr: '$buf', into: 'usr2' },
    sc('rt_sigaction', 10, 0, '$buf+32', 8),
    { op: 'load', addr: '$buf+32', into: 'usr1' },
  ] });
  const pid = sys.spawn({
    main: [
      sc('execve', '&nope', 0, 0),
      sc('execve', 0x10, 0, 0),
      mmapAnon('act', 4096),
      ...sigaction(12, '@h', 0x04000000),
      { op: 'store', addr: '$act', value: 1 },
      sc('rt_sigaction', 10, '$act', 0, 8),
      sc('execve', '&next', 0, 0),
    ],
    functions: { h: [] },
    strings: { nope: 'nope', next: 'next' },
  });
  sys.run();
  const init = sys.log.filter((r) => r.image === 'init');
  assert.equal(init.find((r) => r.index === 0)!.value, BigInt(-ENOENT));
  assert.equal(init.find((r) => r.index === 1)!.value, BigInt(-EFAULT));
  const next = sys.log.filter((r) => r.image === 'next');
  // flush_signal_handlers(t, 0): a handler becomes SIG_DFL (0); SIG_IGN (1) stays.
  assert.equal(next.find((r) => r.index === 2)!.value, 0n);
  assert.equal(next.find((r) => r.index === 4)!.value, 1n);
  assert.equal(sys.exitStatus(pid), 0);
  assert.deepEqual(sys.debugReports, []);
});
