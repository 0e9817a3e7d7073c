/**
 * RAX after a syscall (arch/x86/entry/common.c do_syscall_x64: regs->ax = the result;
 * arch/x86/kernel/signal.c arch_do_signal_or_restart and handle_signal; 6.12): what ptrace and
 * a signal frame see of it while a sleeping syscall is interrupted.
 *
 * Host-checked (x86-64, 6.18, the same code; /tmp C programs): a child asleep in a pipe read,
 * PTRACE_ATTACHed and waited for, has rax -ERESTARTSYS (0xfffffffffffffe00) and orig_rax 0 (read)
 * in PEEKUSER and GETREGS; after PTRACE_CONT the read restarts and returns 1 once a byte comes,
 * and RAX holds that 1. SIGUSR2 sent to a child asleep in a pipe read, its SA_SIGINFO handler
 * reading uc_mcontext.gregs[REG_RAX]: without SA_RESTART the frame's rax is -EINTR (-4) and so
 * is the read's result; with SA_RESTART the frame's rax is 0 (orig_ax: read's number) and the
 * read, restarted, returns 1. (The host differential's ptrace family compares the first case on
 * every attach and seize story.)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { boot, records } from './helpers.js';

const PTRACE_PEEKUSR = 3, PTRACE_CONT = 7, PTRACE_GETREGS = 12, PTRACE_ATTACH = 16;
const SIGUSR2 = 12;
const SA_SIGINFO = 4, SA_RESTORER = 0x04000000, SA_RESTART = 0x10000000;
const RAX = 80, ORIG_RAX = 120;
/** offsetof(struct ucontext, uc_mcontext) + 13 * 8: sigcontext's rax (after r8..r15, rdi, rsi, rbp, rbx, rdx). */
const UC_RAX = 40 + 13 * 8;

const sc = (name: string, args: (number | bigint | string)[], into?: string): Op => ({ op: 'syscall', name, args, ...(into ? { into } : {}) });
const load = (addr: string, size: 1 | 2 | 4 | 8 = 8): Op => ({ op: 'load', addr, size });

/** A private page $buf, a pipe (3 read, 4 write) and a shared page $sh the child reports in. */
const START: Op[] = [
  { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'buf' },
  sc('pipe', ['$buf']),
  { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x21, -1, 0], into: 'sh' },
];
/** The child: reads a byte, then reports the read's result and RAX in $sh and $sh+8. */
const READER: Op[] = [
  sc('read', [3, '$buf+256', 1], 'n'),
  { op: 'store', addr: '$sh', value: '$n' },
  { op: 'store', addr: '$sh+8', value: '$rax' },
];

function run(main: Op[], functions: Record<string, Op[]> = {}): ReturnType<typeof boot> {
  const sys = boot({ cpus: 2 });
  sys.spawn({ main, functions }, { cpu: 1 });
  const r = sys.run({ maxSteps: 2_000_000 });
  assert.ok(r.finished, `tasks still alive: ${r.alive.join(', ')}`);
  assert.deepEqual(sys.debugReports, []);
  return sys;
}

function val(sys: ReturnType<typeof boot>, index: number): bigint {
  const r = records(sys, 'main').get(index);
  assert.ok(r && r.value !== undefined, `main[${index}] has no result`);
  return r.value;
}

test('a tracee stopped in an interrupted read has RAX -ERESTARTSYS and orig_rax read; restarted, RAX is the read\'s result', () => {
  const main: Op[] = [
    ...START, // 0-2
    { op: 'syscall', name: 'fork', args: [], into: 'c', cpu: 0, child: READER }, // 3
    { op: 'work', count: 200 }, // 4: the child sleeps in its read
    sc('ptrace', [PTRACE_ATTACH, '$c', 0, 0]), // 5
    sc('wait4', ['$c', '$buf+128', 0, 0]), // 6
    sc('ptrace', [PTRACE_PEEKUSR, '$c', RAX, '$buf+64']), // 7
    load('$buf+64'), // 8
    sc('ptrace', [PTRACE_PEEKUSR, '$c', ORIG_RAX, '$buf+64']), // 9
    load('$buf+64'), // 10
    sc('ptrace', [PTRACE_GETREGS, '$c', 0, '$buf+1024']), // 11
    load(`$buf+${1024 + RAX}`), // 12
    sc('ptrace', [PTRACE_CONT, '$c', 0, 0]), // 13
    sc('write', [4, '$buf', 1]), // 14
    sc('wait4', ['$c', '$buf+136', 0, 0]), // 15
    load('$sh'), // 16
    load('$sh+8'), // 17
  ];
  const sys = run(main);
  assert.equal(val(sys, 8), 0xfffffffffffffe00n, 'PEEKUSER rax: -ERESTARTSYS');
  assert.equal(val(sys, 10), 0n, 'orig_rax: read');
  assert.equal(val(sys, 12), 0xfffffffffffffe00n, 'GETREGS rax');
  assert.equal(val(sys, 16), 1n, "the restarted read's result");
  assert.equal(val(sys, 17), 1n, 'RAX after it');
});

for (const restart of [false, true]) {
  test(`a handler interrupting a read ${restart ? 'with' : 'without'} SA_RESTART finds ${restart ? "read's number (orig_ax)" : '-EINTR'} as its frame's RAX`, () => {
    const handler: Op[] = [load(`$ucontext+${UC_RAX}`), { op: 'load', addr: `$ucontext+${UC_RAX}`, into: 'fr' }, { op: 'store', addr: '$sh+16', value: '$fr' }];
    const child: Op[] = [
      { op: 'store', addr: '$buf+512', value: '@h' },
      { op: 'store', addr: '$buf+520', value: SA_SIGINFO | SA_RESTORER | (restart ? SA_RESTART : 0) },
      { op: 'store', addr: '$buf+528', value: '@__restore_rt' },
      { op: 'store', addr: '$buf+536', value: 0 },
      sc('rt_sigaction', [SIGUSR2, '$buf+512', 0, 8]),
      sc('write', [6, '$buf', 1]),
      ...READER,
    ];
    const main: Op[] = [
      ...START, // 0-2
      sc('pipe', ['$buf+8']), // 3: 5 read, 6 write: the child's handler is set
      { op: 'syscall', name: 'fork', args: [], into: 'c', cpu: 0, child }, // 4
      sc('read', [5, '$buf+264', 1]), // 5
      { op: 'work', count: 300 }, // 6: the child sleeps in its read
      sc('kill', ['$c', SIGUSR2]), // 7
      { op: 'work', count: 300 }, // 8: the handler has run
      sc('write', [4, '$buf', 1]), // 9
      sc('wait4', ['$c', '$buf+136', 0, 0]), // 10
      load('$buf+136', 4), // 11
      load('$sh'), // 12
      load('$sh+8'), // 13
      load('$sh+16'), // 14
    ];
    const sys = run(main, { h: handler });
    assert.equal(val(sys, 11), 0n, 'the child exited normally');
    assert.equal(val(sys, 14), restart ? 0n : 0xfffffffffffffffcn, "the frame's rax");
    assert.equal(val(sys, 12), restart ? 1n : 0xfffffffffffffffcn, "read's result");
    assert.equal(val(sys, 13), restart ? 1n : 0xfffffffffffffffcn, 'RAX after the read');
  });
}
