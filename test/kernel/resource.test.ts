/**
 * Resource limits against Linux 6.12's code: getrlimit, setrlimit and prlimit64 (kernel/sys.c
 * do_prlimit and the syscalls, in their order of checks), init's limits
 * (include/asm-generic/resource.h INIT_RLIMITS, kernel/fork.c fork_init), their inheritance
 * (kernel/fork.c copy_signal: a new thread group copies them, a thread shares them; fs/exec.c
 * keeps them), and where they are enforced: RLIMIT_NOFILE (fs/file.c alloc_fd, ksys_dup3;
 * fs/fcntl.c f_dupfd), RLIMIT_AS and RLIMIT_DATA (mm/mmap.c may_expand_vm from mmap_region,
 * mm/mprotect.c mprotect_fixup, acct_stack_growth), RLIMIT_STACK (acct_stack_growth,
 * arch/x86/mm/mmap.c mmap_base, fs/exec.c setup_arg_pages) and RLIMIT_NPROC (copy_process:
 * root's forks are never refused). The orders of checks of the three syscalls were also run
 * natively on a 6.18 kernel (as root without CAP_SYS_RESOURCE), which agreed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { boot, mmapAnon, records, ret, runProgram } from './helpers.js';

const EPERM = 1, ESRCH = 3, EBADF = 9, ENOMEM = 12, EFAULT = 14, EINVAL = 22, EMFILE = 24;
const RLIMIT_CPU = 0, RLIMIT_DATA = 2, RLIMIT_STACK = 3, RLIMIT_CORE = 4, RLIMIT_NPROC = 6, RLIMIT_NOFILE = 7, RLIMIT_MEMLOCK = 8, RLIMIT_AS = 9;
const RLIMIT_SIGPENDING = 11, RLIMIT_MSGQUEUE = 12, RLIMIT_RTTIME = 15;
const INF = 0xffffffffffffffffn;
const MiB = 1n << 20n;
const F_DUPFD = 0, O_RDONLY = 0;
const PROT_READ = 1, PROT_RW = 3, MAP_SHARED_ANON = 0x21, MAP_PRIVATE_ANON = 0x22, MAP_FIXED = 0x10;
const CLONE_VM = 0x100, CLONE_SIGHAND = 0x800, CLONE_THREAD = 0x10000;
const _LINUX_CAPABILITY_VERSION_3 = 0x20080522, CAP_SYS_RESOURCE = 24;
/** TASK_SIZE (x86-64, 4-level): 0x7ffffffff000; stack_guard_gap: 256 pages. */
const TASK_SIZE = 0x7ffffffff000;
const STACK_GUARD_GAP = 256 * 4096;

const sc = (name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args });
const sci = (into: string, name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args, into });
const errno = (e: number): bigint => BigInt(-e);
const store = (addr: string, value: number | bigint, size: 4 | 8 = 8): Op => ({ op: 'store', addr, value, size });
const load = (addr: string): Op => ({ op: 'load', addr });
/** Stores struct rlimit {cur, max} at `addr`. */
const rl = (addr: string, cur: bigint, max: bigint): Op[] => {
  const [base, off] = addr.split('+');
  return [store(addr, cur), store(`${base}+${Number(off ?? 0) + 8}`, max)];
};

/** Ops that drop CAP_SYS_RESOURCE from the effective and permitted sets (capget/capset v3). */
function dropSysResource(): Op[] {
  return [
    mmapAnon('cap', 4096),
    store('$cap', _LINUX_CAPABILITY_VERSION_3, 4),
    store('$cap+4', 0, 4),
    sc('capget', '$cap', '$cap+16'),
    store('$cap+16', (0xffffffff & ~(1 << CAP_SYS_RESOURCE)) >>> 0, 4),
    store('$cap+20', (0xffffffff & ~(1 << CAP_SYS_RESOURCE)) >>> 0, 4),
    sc('capset', '$cap', '$cap+16'),
  ];
}

/** The unsigned values of the loads at `indices` of main. */
function loads(sys: ReturnType<typeof runProgram>['sys'], indices: number[], fn = 'main'): bigint[] {
  return indices.map((i) => records(sys, fn).get(i)!.value!);
}

test("getrlimit: init's limits (INIT_RLIMITS, with fork_init's RLIMIT_NPROC and RLIMIT_SIGPENDING of max_threads / 2)", () => {
  const res = [RLIMIT_CPU, RLIMIT_DATA, RLIMIT_STACK, RLIMIT_CORE, RLIMIT_NPROC, RLIMIT_NOFILE, RLIMIT_MEMLOCK, RLIMIT_AS, RLIMIT_SIGPENDING, RLIMIT_MSGQUEUE, RLIMIT_RTTIME];
  const main: Op[] = [mmapAnon('b', 4096)];
  for (const r of res) main.push(sc('getrlimit', r, '$b'), load('$b'), load('$b+8'));
  const { sys } = runProgram(main);
  const got = loads(sys, res.flatMap((_, i) => [2 + 3 * i, 3 + 3 * i]));
  // max_threads = 64 MiB / (8 * THREAD_SIZE of 16 KiB) = 512 on the 64 MiB test machine (set_max_threads).
  assert.deepEqual(got, [
    INF, INF, // CPU
    INF, INF, // DATA
    8n * MiB, INF, // STACK: _STK_LIM
    0n, INF, // CORE
    256n, 256n, // NPROC: max_threads / 2
    1024n, 4096n, // NOFILE: INR_OPEN_CUR, INR_OPEN_MAX
    8n * MiB, 8n * MiB, // MEMLOCK: MLOCK_LIMIT
    INF, INF, // AS
    256n, 256n, // SIGPENDING: max_threads / 2
    819200n, 819200n, // MSGQUEUE: MQ_BYTES_MAX
    INF, INF, // RTTIME
  ]);
});

test('getrlimit, setrlimit, prlimit64: the checks in do_prlimit\'s and the syscalls\' order', () => {
  const main: Op[] = [
    mmapAnon('b', 4096), // 0
    sc('getrlimit', 16, 8), // 1: the resource before the copy out
    sc('getrlimit', RLIMIT_STACK, 8), // 2
    sc('setrlimit', 16, 8), // 3: the copy in before the resource
    ...rl('$b', 1n, 0n), // 4, 5
    sc('setrlimit', 16, '$b'), // 6
    sc('setrlimit', RLIMIT_STACK, '$b'), // 7: cur > max
    sc('prlimit64', 0, 16, 8, 0), // 8: the copy in first
    sc('prlimit64', 99999, 16, 0, 0), // 9: then the task
    sc('prlimit64', 99999, RLIMIT_STACK, '$b', 0), // 10
    sc('prlimit64', 0, 16, '$b', 0), // 11: then the resource
    ...rl('$b', 10n, (1n << 20n) + 1n), // 12, 13
    sc('prlimit64', 0, RLIMIT_NOFILE, '$b', 0), // 14: above sysctl_nr_open
    ...rl('$b', 10n, 1n << 20n), // 15, 16
    sc('prlimit64', 0, RLIMIT_NOFILE, '$b', '$b+16'), // 17: root raises its hard limit to nr_open
    load('$b+16'), load('$b+24'), // 18, 19: the old limits
    sc('prlimit64', 0, RLIMIT_NOFILE, 0, '$b+32'), // 20
    load('$b+32'), load('$b+40'), // 21, 22
    ...rl('$b', 100n, 2000n), // 23, 24
    sc('prlimit64', 0, RLIMIT_NOFILE, '$b', 8), // 25: a bad old_rlim: -EFAULT after the change
    sc('getrlimit', RLIMIT_NOFILE, '$b+48'), // 26
    load('$b+48'), load('$b+56'), // 27, 28
    sc('prlimit64', 0, RLIMIT_NOFILE, 0, 0), // 29: nothing asked: 0
  ];
  const { sys } = runProgram(main);
  const r = [1, 2, 3, 6, 7, 8, 9, 10, 11, 14, 17, 20, 25, 26, 29].map((i) => ret(sys, i));
  assert.deepEqual(r, [
    errno(EINVAL), errno(EFAULT), errno(EFAULT), errno(EINVAL), errno(EINVAL), errno(EFAULT), errno(ESRCH), errno(ESRCH), errno(EINVAL), errno(EPERM), 0n, 0n,
    errno(EFAULT), 0n, 0n,
  ]);
  assert.deepEqual(loads(sys, [18, 19, 21, 22, 27, 28]), [1024n, 4096n, 10n, 1n << 20n, 100n, 2000n]);
});

test('setrlimit: raising a hard limit needs CAP_SYS_RESOURCE (the caller\'s); lowering it, and raising the soft limit up to it, do not', () => {
  const main: Op[] = [
    ...dropSysResource(), // 0..6
    mmapAnon('b', 4096), // 7
    ...rl('$b', 8n * MiB, 16n * MiB), // 8, 9
    sc('setrlimit', RLIMIT_MEMLOCK, '$b'), // 10: above MLOCK_LIMIT
    ...rl('$b', 4n * MiB, 4n * MiB), // 11, 12
    sc('setrlimit', RLIMIT_MEMLOCK, '$b'), // 13: lowered
    ...rl('$b', 4n * MiB, 8n * MiB), // 14, 15
    sc('setrlimit', RLIMIT_MEMLOCK, '$b'), // 16: back up to the old hard limit: refused
    ...rl('$b', 1n * MiB, 4n * MiB), // 17, 18
    sc('setrlimit', RLIMIT_MEMLOCK, '$b'), // 19: the soft limit down
    ...rl('$b', 4n * MiB, 4n * MiB), // 20, 21
    sc('setrlimit', RLIMIT_MEMLOCK, '$b'), // 22: and up again to the hard limit
    ...rl('$b', 10n, 1n << 20n), // 23, 24
    sc('prlimit64', 0, RLIMIT_NOFILE, '$b', 0), // 25: nr_open itself, but above INR_OPEN_MAX: refused
  ];
  const { sys } = runProgram(main);
  assert.deepEqual([6, 10, 13, 16, 19, 22, 25].map((i) => ret(sys, i)), [0n, errno(EPERM), 0n, errno(EPERM), 0n, 0n, errno(EPERM)]);
});

test('RLIMIT_NOFILE: open is -EMFILE at the soft limit, dup2 -EBADF and F_DUPFD -EINVAL for a descriptor at or above it', () => {
  const main: Op[] = [
    mmapAnon('b', 4096), // 0
    ...rl('$b', 5n, 4096n), // 1, 2
    sc('setrlimit', RLIMIT_NOFILE, '$b'), // 3
    sc('open', '&null', O_RDONLY, 0), // 4: 3
    sc('open', '&null', O_RDONLY, 0), // 5: 4
    sc('open', '&null', O_RDONLY, 0), // 6: none below 5
    sc('dup2', 0, 5), // 7
    sc('dup3', 0, 7, 0), // 8
    sc('fcntl', 0, F_DUPFD, 5), // 9
    sc('close', 4), // 10
    sc('fcntl', 0, F_DUPFD, 1), // 11: 4
    sc('dup2', 0, 99999), // 12
  ];
  const { sys } = runProgram({ main, strings: { null: '/dev/null' } });
  assert.deepEqual([4, 5, 6, 7, 8, 9, 11, 12].map((i) => ret(sys, i)), [3n, 4n, errno(EMFILE), errno(EBADF), errno(EBADF), errno(EINVAL), 4n, errno(EBADF)]);
});

test('fork copies the limits, a thread shares them, execve keeps them; prlimit64 reaches another process', () => {
  // One CPU: sched_yield lets the new thread run to its end.
  const sys = boot({ cpus: 1 });
  sys.addImage('next', { main: [mmapAnon('b', 4096), sc('getrlimit', RLIMIT_MEMLOCK, '$b'), load('$b')] });
  const pid = sys.spawn({
    main: [
      mmapAnon('b', 4096), // 0
      ...rl('$b', 1n * MiB, 2n * MiB), // 1, 2
      sc('setrlimit', RLIMIT_MEMLOCK, '$b'), // 3
      // 4: a child lowers its own limit, then reads it; the parent's stays.
      { op: 'syscall', name: 'fork', into: 'child', child: [...rl('$b', 4096n, 2n * MiB), sc('setrlimit', RLIMIT_MEMLOCK, '$b'), sc('getrlimit', RLIMIT_MEMLOCK, '$b+16'), load('$b+16'), sc('exit_group', 0)] },
      sc('wait4', -1, 0, 0, 0), // 5
      sc('getrlimit', RLIMIT_MEMLOCK, '$b+32'), // 6
      load('$b+32'), // 7: 1 MiB
      // 8: a thread's change is the process's.
      { op: 'syscall', name: 'clone', args: [CLONE_VM | CLONE_SIGHAND | CLONE_THREAD, 0, 0, 0, 0], child: [...rl('$b+64', 8192n, 2n * MiB), sc('setrlimit', RLIMIT_MEMLOCK, '$b+64'), sc('exit', 0)] },
      sc('sched_yield'), sc('sched_yield'), sc('sched_yield'), sc('sched_yield'), // 9..12
      sc('getrlimit', RLIMIT_MEMLOCK, '$b+96'), // 13
      load('$b+96'), // 14: 8192
      // 15: a child whose limit the parent sets with prlimit64, then reads back.
      { op: 'syscall', name: 'fork', into: 'c2', child: [sc('sched_yield'), sc('sched_yield'), sc('sched_yield'), sc('exit_group', 0)] },
      ...rl('$b+128', 12288n, 2n * MiB), // 16, 17
      sc('prlimit64', '$c2', RLIMIT_MEMLOCK, '$b+128', '$b+144'), // 18
      load('$b+144'), // 19: the child's old soft limit, 8192
      sc('getrlimit', RLIMIT_MEMLOCK, '$b+160'), // 20
      load('$b+160'), // 21: the parent's, 8192
      sc('wait4', -1, 0, 0, 0), // 22
      sc('prlimit64', '$c2', RLIMIT_MEMLOCK, 0, '$b+144'), // 23: reaped: -ESRCH
      sc('execve', '&next', 0, 0), // 24
    ],
    strings: { next: 'next' },
  });
  const r = sys.run({ maxSteps: 1_000_000 });
  assert.ok(r.finished);
  assert.equal(sys.exitStatus(pid), 0);
  const init = (fn: string, i: number): bigint => sys.log.find((x) => x.image === 'init' && x.fn === fn && x.index === i)!.value!;
  assert.equal(init('main.4.child', 4), 4096n);
  assert.equal(init('main', 7), 1n * MiB);
  assert.equal(init('main', 14), 8192n);
  assert.equal(init('main', 18), 0n);
  assert.equal(init('main', 19), 8192n);
  assert.equal(init('main', 21), 8192n);
  assert.equal(BigInt.asIntN(64, init('main', 23)), errno(ESRCH));
  assert.equal(sys.log.find((x) => x.image === 'next' && x.index === 2)!.value, 8192n, 'execve kept the limit');
  assert.deepEqual(sys.debugReports, []);
});

test('RLIMIT_AS: mmap counts the pages it replaces as freed; munmap gives them back', () => {
  const G = 1n << 30n, HALF = 1n << 29n;
  const main: Op[] = [
    mmapAnon('b', 4096), // 0
    ...rl('$b', G, INF), // 1, 2
    sc('setrlimit', RLIMIT_AS, '$b'), // 3
    sci('x', 'mmap', 0, G, PROT_READ, MAP_PRIVATE_ANON, -1, 0), // 4: the rest of the space is already mapped
    sci('a', 'mmap', 0, HALF, PROT_READ, MAP_PRIVATE_ANON, -1, 0), // 5
    sci('y', 'mmap', 0, HALF, PROT_READ, MAP_PRIVATE_ANON, -1, 0), // 6: over
    sci('z', 'mmap', '$a', HALF, PROT_READ, MAP_PRIVATE_ANON | MAP_FIXED, -1, 0), // 7: replaces $a: no growth
    sc('munmap', '$a', HALF), // 8
    sci('w', 'mmap', 0, HALF, PROT_READ, MAP_PRIVATE_ANON, -1, 0), // 9
  ];
  const { sys } = runProgram(main);
  assert.equal(ret(sys, 4), errno(ENOMEM));
  assert.ok(ret(sys, 5) > 0n);
  assert.equal(ret(sys, 6), errno(ENOMEM));
  assert.equal(ret(sys, 7), ret(sys, 5));
  assert.equal(ret(sys, 8), 0n);
  assert.ok(ret(sys, 9) > 0n);
});

test('RLIMIT_DATA: private writable mappings only; mprotect making data; a soft limit of 0 lets data grow to the hard limit', () => {
  const M2 = 2n * MiB;
  const main: Op[] = [
    mmapAnon('b', 4096), // 0: 1 data page
    ...rl('$b', 1n * MiB, 4n * MiB), // 1, 2
    sc('setrlimit', RLIMIT_DATA, '$b'), // 3
    sc('mmap', 0, M2, PROT_RW, MAP_PRIVATE_ANON, -1, 0), // 4: data over the limit
    sci('r', 'mmap', 0, M2, PROT_READ, MAP_PRIVATE_ANON, -1, 0), // 5: read-only: not data
    sc('mmap', 0, M2, PROT_RW, MAP_SHARED_ANON, -1, 0), // 6: shared: not data
    sc('mprotect', '$r', M2, PROT_RW), // 7: turns into data
    sc('mprotect', '$r', 4096, PROT_RW), // 8: one page fits
    ...rl('$b', 0n, 4n * MiB), // 9, 10
    sc('setrlimit', RLIMIT_DATA, '$b'), // 11
    sc('mmap', 0, M2, PROT_RW, MAP_PRIVATE_ANON, -1, 0), // 12: within the hard limit
    sc('mmap', 0, M2, PROT_RW, MAP_PRIVATE_ANON, -1, 0), // 13: past it
  ];
  const { sys } = runProgram(main);
  assert.equal(ret(sys, 4), errno(ENOMEM));
  assert.ok(ret(sys, 5) > 0n);
  assert.ok(ret(sys, 6) > 0n);
  assert.equal(ret(sys, 7), errno(ENOMEM));
  assert.equal(ret(sys, 8), 0n);
  assert.ok(ret(sys, 12) > 0n);
  assert.equal(ret(sys, 13), errno(ENOMEM));
});

test('RLIMIT_STACK and RLIMIT_AS bound stack growth (acct_stack_growth): SIGSEGV with SEGV_MAPERR', () => {
  // The initial stack is 132 KiB below TASK_SIZE; a store just below it grows it by a page.
  const below = TASK_SIZE - 132 * 1024 - 8;
  const grow = (lim: Op[]): Op[] => [mmapAnon('b', 4096), ...lim, { op: 'store', addr: below, value: 1 }, sc('getpid')];
  const cases: [string, Op[], boolean][] = [
    ['default 8 MiB', [], true],
    ['RLIMIT_STACK 132 KiB', [...rl('$b', 132n * 1024n, INF), sc('setrlimit', RLIMIT_STACK, '$b')], false],
    ['RLIMIT_STACK 136 KiB', [...rl('$b', 136n * 1024n, INF), sc('setrlimit', RLIMIT_STACK, '$b')], true],
    ['RLIMIT_AS 0', [...rl('$b', 0n, INF), sc('setrlimit', RLIMIT_AS, '$b')], false],
  ];
  for (const [name, lim, ok] of cases) {
    const sys = boot();
    const pid = sys.spawn({ main: grow(lim) });
    sys.run();
    assert.equal(sys.exitStatus(pid), ok ? 0 : 11, name);
    if (!ok) assert.equal(sys.log.find((r) => r.signal)!.signal!.code, 1, `${name}: SEGV_MAPERR`);
  }
});

test('execve: mmap_base and the initial stack follow RLIMIT_STACK (mmap_base, setup_arg_pages)', () => {
  const mmapBase = (rlim: bigint): number => {
    let gap = rlim;
    if (BigInt.asUintN(64, gap + BigInt(STACK_GUARD_GAP)) > gap) gap += BigInt(STACK_GUARD_GAP);
    const min = 128n * MiB, max = BigInt(Math.floor(TASK_SIZE / 6) * 5);
    gap = gap < min ? min : gap > max ? max : gap;
    // PAGE_ALIGN(task_size - gap)
    return Math.ceil((TASK_SIZE - Number(gap)) / 4096) * 4096;
  };
  const cases: [bigint, number][] = [
    [8n * MiB, TASK_SIZE - 128 * 2 ** 20], // 9 MiB is below the 128 MiB minimum
    [1n << 30n, TASK_SIZE - 2 ** 30 - STACK_GUARD_GAP],
    [INF, Math.ceil((TASK_SIZE - Math.floor(TASK_SIZE / 6) * 5) / 4096) * 4096], // the sum overflows: gap_max
  ];
  for (const [rlim, base] of cases) {
    assert.equal(mmapBase(rlim), base);
    const sys = boot();
    // In the new image: the first mapping ends at mmap_base; a store 64 KiB + 8 below the top needs the stack grown unless it is 132 KiB.
    sys.addImage('next', { main: [sci('m', 'mmap', 0, 4096, PROT_RW, MAP_PRIVATE_ANON, -1, 0)] });
    sys.spawn({ main: [mmapAnon('b', 4096), ...rl('$b', rlim, INF), sc('setrlimit', RLIMIT_STACK, '$b'), sc('execve', '&next', 0, 0)], strings: { next: 'next' } });
    sys.run();
    assert.equal(Number(sys.log.find((x) => x.image === 'next' && x.index === 0)!.value!), base - 4096, `RLIMIT_STACK ${rlim}`);
  }
  // A 64 KiB RLIMIT_STACK: setup_arg_pages makes a 64 KiB stack, and growing it is refused.
  const sys = boot();
  sys.addImage('next', { main: [{ op: 'store', addr: TASK_SIZE - 64 * 1024 + 8, value: 1 }, { op: 'store', addr: TASK_SIZE - 64 * 1024 - 8, value: 1 }] });
  const pid = sys.spawn({ main: [mmapAnon('b', 4096), ...rl('$b', 64n * 1024n, INF), sc('setrlimit', RLIMIT_STACK, '$b'), sc('execve', '&next', 0, 0)], strings: { next: 'next' } });
  sys.run();
  assert.equal(sys.exitStatus(pid), 11);
  const sig = sys.log.find((x) => x.image === 'next' && x.signal)!;
  assert.equal(sig.index, 1, 'the first store is inside the 64 KiB stack, the second below it');
});

test('RLIMIT_NPROC: root (INIT_USER) forks past it, with or without CAP_SYS_RESOURCE (copy_process)', () => {
  const main: Op[] = [
    ...dropSysResource(), // 0..6
    mmapAnon('b', 4096), // 7
    ...rl('$b', 0n, 0n), // 8, 9
    sc('setrlimit', RLIMIT_NPROC, '$b'), // 10
    { op: 'syscall', name: 'fork', child: [sc('exit_group', 3)] }, // 11
    sc('wait4', -1, 0, 0, 0), // 12
  ];
  const { sys } = runProgram(main);
  assert.equal(ret(sys, 10), 0n);
  assert.ok(ret(sys, 11) > 0n);
  assert.ok(ret(sys, 12) > 0n);
});
