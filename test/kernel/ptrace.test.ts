/**
 * ptrace (kernel/ptrace.c, kernel/signal.c ptrace_stop/ptrace_signal/do_jobctl_trap,
 * kernel/exit.c wait_task_stopped, arch/x86/kernel/ptrace.c; 6.12).
 *
 * Host-checked (x86-64, 6.18, the same code; /tmp C programs calling syscall(SYS_ptrace) so
 * that PEEK* store their word at `data` as the syscall does): PEEKUSER of a task not traced
 * -ESRCH (3); ATTACH 0, again -EPERM (1); wait4 status 0x137f; GETSIGINFO si_signo 19, si_code
 * 0x80 (SI_KERNEL: SEND_SIG_PRIV), si_pid 0; PEEKUSER of an unaligned offset -EIO (5), of
 * u_debugreg[6] 0xffff0ff0 (virtual_dr6 0 in the architecture's polarity), u_debugreg[7] 0;
 * POKEUSER cs 0, ds 0x10 (RPL 0), fs_base 0x7ffffffff000 (TASK_SIZE_MAX) -EIO, fs_base
 * 0x7fffffffe000 0, DR4 -EIO, DR0 at a kernel address -EINVAL (22); SETOPTIONS with an unknown
 * bit -EINVAL; INTERRUPT and LISTEN of an ATTACHed tracee -EIO; CONT with signal 65 -EIO; an
 * unknown request -EIO; after CONT, GETREGS -ESRCH. SEIZE with addr 1 or an unknown option -EIO;
 * after SEIZE wait4(WNOHANG) 0; INTERRUPT 0 and wait4 status 0x80057f ((SIGTRAP |
 * PTRACE_EVENT_STOP << 8) << 8 | 0x7f); PTRACE_KILL then status 0x9. A TRACEME child raising
 * SIGUSR1: status 0xa7f, orig_rax the syscall; CONT with SIGTERM: status 0xf.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { System } from '../../src/system.js';
import type { Op } from '../../src/user/program.js';
import { boot, fileText, records } from './helpers.js';

const PTRACE_TRACEME = 0, PTRACE_PEEKDATA = 2, PTRACE_PEEKUSR = 3, PTRACE_POKEDATA = 5, PTRACE_POKEUSR = 6, PTRACE_CONT = 7, PTRACE_KILL = 8;
const PTRACE_GETREGS = 12, PTRACE_SETREGS = 13, PTRACE_ATTACH = 16, PTRACE_DETACH = 17;
const PTRACE_SETOPTIONS = 0x4200, PTRACE_GETEVENTMSG = 0x4201, PTRACE_GETSIGINFO = 0x4202, PTRACE_SETSIGINFO = 0x4203, PTRACE_SEIZE = 0x4206, PTRACE_INTERRUPT = 0x4207, PTRACE_LISTEN = 0x4208;
const EPERM = 1, ESRCH = 3, EIO = 5, EINVAL = 22;
const SIGKILL = 9, SIGUSR1 = 10, SIGTERM = 15, SIGSTOP = 19;
const WNOHANG = 1;
/** struct user_regs_struct word offsets (asm/user_64.h). */
const R = { rbp: 32, rbx: 40, r12: 24, r13: 16, rax: 80, orig_rax: 120, rip: 128, cs: 136, eflags: 144, rsp: 152, ss: 160, fs_base: 168, ds: 184 };
const U_DEBUGREG = 848;

const sc = (name: string, args: (number | bigint | string)[], into?: string): Op => ({ op: 'syscall', name, args, ...(into ? { into } : {}) });
const pt = (req: number, pid: string | number, addr: number | bigint | string, data: number | bigint | string): Op => sc('ptrace', [req, pid, addr, data]);
const load = (addr: string, size: 1 | 2 | 4 | 8 = 8): Op => ({ op: 'load', addr, size });

/** The parent's start: a page at $buf and a pipe (3 read, 4 write). */
const START: Op[] = [{ op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'buf' }, sc('pipe', ['$buf'])];

/** Runs `main` as the parent on CPU 1 (its fork child on CPU 0) to the end. */
function runParent(main: Op[], cpus = 2): System {
  const sys = boot({ cpus });
  sys.spawn({ main }, { cpu: 1 });
  const r = sys.run({ maxSteps: 2_000_000 });
  assert.ok(r.finished, `tasks still alive: ${r.alive.join(', ')}`);
  assert.deepEqual(sys.debugReports, []);
  return sys;
}

/** The signed result of op `index` of `fn`. */
function val(sys: System, index: number, fn = 'main'): bigint {
  const r = records(sys, fn).get(index);
  assert.ok(r && r.value !== undefined, `${fn}[${index}] has no result`);
  return BigInt.asIntN(64, r.value);
}

test('PTRACE_ATTACH stops the tracee with SIGSTOP, wait4 reports it without WUNTRACED, the requests check their arguments, and PTRACE_CONT lets it go', () => {
  const main: Op[] = [
    ...START, // 0-1
    { op: 'syscall', name: 'fork', args: [], into: 'c', cpu: 0, child: [sc('read', [3, '$buf+256', 4])] }, // 2
    pt(PTRACE_PEEKUSR, '$c', 0, '$buf+64'), // 3: not traced
    pt(PTRACE_ATTACH, '$c', 0, 0), // 4
    pt(PTRACE_ATTACH, '$c', 0, 0), // 5: already traced
    sc('wait4', ['$c', '$buf+128', 0, 0]), // 6
    load('$buf+128', 4), // 7
    pt(PTRACE_GETSIGINFO, '$c', 0, '$buf+1024'), // 8
    load('$buf+1024', 4), // 9: si_signo
    load('$buf+1032', 4), // 10: si_code
    load('$buf+1040', 4), // 11: si_pid
    pt(PTRACE_PEEKUSR, '$c', 3, '$buf+64'), // 12: unaligned
    pt(PTRACE_PEEKUSR, '$c', 928, '$buf+64'), // 13: sizeof(struct user)
    pt(PTRACE_PEEKUSR, '$c', 920, '$buf+64'), // 14: fault_address: reads 0
    load('$buf+64'), // 15
    pt(PTRACE_PEEKUSR, '$c', U_DEBUGREG + 48, '$buf+64'), // 16: DR6
    load('$buf+64'), // 17
    pt(PTRACE_POKEUSR, '$c', R.cs, 0), // 18
    pt(PTRACE_POKEUSR, '$c', R.ds, 0x10), // 19
    pt(PTRACE_POKEUSR, '$c', R.fs_base, 0x7ffffffff000n), // 20
    pt(PTRACE_POKEUSR, '$c', R.fs_base, 0x7fffffffe000n), // 21
    pt(PTRACE_PEEKUSR, '$c', R.fs_base, '$buf+64'), // 22
    load('$buf+64'), // 23
    pt(PTRACE_POKEUSR, '$c', U_DEBUGREG + 32, 0), // 24: DR4
    pt(PTRACE_POKEUSR, '$c', U_DEBUGREG, 0xffffffff81000000n), // 25: DR0 in kernel space
    pt(PTRACE_SETOPTIONS, '$c', 0, 1 << 9), // 26
    pt(PTRACE_INTERRUPT, '$c', 0, 0), // 27: not seized
    pt(PTRACE_LISTEN, '$c', 0, 0), // 28
    pt(PTRACE_CONT, '$c', 0, 65), // 29
    pt(0x1234, '$c', 0, 0), // 30
    pt(PTRACE_CONT, '$c', 0, 0), // 31
    pt(PTRACE_GETREGS, '$c', 0, '$buf+512'), // 32: running again
    sc('write', [4, '$buf', 4]), // 33
    sc('wait4', ['$c', '$buf+136', 0, 0]), // 34
    load('$buf+136', 4), // 35
  ];
  const sys = runParent(main);
  const c = val(sys, 2);
  assert.equal(val(sys, 3), BigInt(-ESRCH), 'a task not traced: ptrace_check_attach');
  assert.equal(val(sys, 4), 0n);
  assert.equal(val(sys, 5), BigInt(-EPERM), 'already traced');
  assert.equal(val(sys, 6), c);
  assert.equal(val(sys, 7), 0x137fn, '(SIGSTOP << 8) | 0x7f, without WUNTRACED');
  assert.equal(val(sys, 8), 0n);
  assert.equal(val(sys, 9), BigInt(SIGSTOP));
  assert.equal(val(sys, 10), 0x80n, 'SI_KERNEL');
  assert.equal(val(sys, 11), 0n);
  assert.equal(val(sys, 12), BigInt(-EIO));
  assert.equal(val(sys, 13), BigInt(-EIO));
  assert.equal(val(sys, 14), 0n);
  assert.equal(val(sys, 15), 0n);
  assert.equal(val(sys, 17), 0xffff0ff0n, 'DR6 of a thread that never trapped');
  assert.equal(val(sys, 18), BigInt(-EIO), 'a null cs');
  assert.equal(val(sys, 19), BigInt(-EIO), 'a selector with RPL 0');
  assert.equal(val(sys, 20), BigInt(-EIO), 'fs_base at TASK_SIZE_MAX');
  assert.equal(val(sys, 21), 0n);
  assert.equal(val(sys, 23), 0x7fffffffe000n);
  assert.equal(val(sys, 24), BigInt(-EIO), 'there is no DR4');
  assert.equal(val(sys, 25), BigInt(-EINVAL), 'a breakpoint in kernel space');
  assert.equal(val(sys, 26), BigInt(-EINVAL));
  assert.equal(val(sys, 27), BigInt(-EIO));
  assert.equal(val(sys, 28), BigInt(-EIO));
  assert.equal(val(sys, 29), BigInt(-EIO));
  assert.equal(val(sys, 30), BigInt(-EIO));
  assert.equal(val(sys, 31), 0n);
  assert.equal(val(sys, 32), BigInt(-ESRCH), 'not in a ptrace stop any more');
  assert.equal(val(sys, 34), c);
  assert.equal(val(sys, 35), 0n, 'the tracee exited normally: its read restarted after the stop');
});

test('PTRACE_SEIZE does not stop; PTRACE_INTERRUPT gives a PTRACE_EVENT_STOP, LISTEN hides it, PTRACE_KILL kills', () => {
  const main: Op[] = [
    ...START, // 0-1
    { op: 'syscall', name: 'fork', args: [], into: 'c', cpu: 0, child: [sc('read', [3, '$buf+256', 4])] }, // 2
    pt(PTRACE_SEIZE, '$c', 1, 0), // 3
    pt(PTRACE_SEIZE, '$c', 0, 1 << 9), // 4
    pt(PTRACE_SEIZE, '$c', 0, 0), // 5
    sc('wait4', ['$c', '$buf+128', WNOHANG, 0]), // 6
    pt(PTRACE_INTERRUPT, '$c', 0, 0), // 7
    sc('wait4', ['$c', '$buf+128', 0, 0]), // 8
    load('$buf+128', 4), // 9
    pt(PTRACE_GETSIGINFO, '$c', 0, '$buf+1024'), // 10
    load('$buf+1024', 4), // 11
    load('$buf+1032', 4), // 12
    pt(PTRACE_LISTEN, '$c', 0, 0), // 13
    pt(PTRACE_GETREGS, '$c', 0, '$buf+512'), // 14: LISTENING is not traced for requests
    sc('wait4', ['$c', '$buf+136', WNOHANG, 0]), // 15: nor for wait
    pt(PTRACE_KILL, '$c', 0, 0), // 16
    sc('wait4', ['$c', '$buf+144', 0, 0]), // 17
    load('$buf+144', 4), // 18
  ];
  const sys = runParent(main);
  const c = val(sys, 2);
  assert.equal(val(sys, 3), BigInt(-EIO), 'SEIZE with addr != 0');
  assert.equal(val(sys, 4), BigInt(-EIO), 'SEIZE with an unknown option');
  assert.equal(val(sys, 5), 0n);
  assert.equal(val(sys, 6), 0n, 'SEIZE does not stop the tracee');
  assert.equal(val(sys, 7), 0n);
  assert.equal(val(sys, 8), c);
  assert.equal(val(sys, 9), 0x80057fn, '(SIGTRAP | PTRACE_EVENT_STOP << 8) << 8 | 0x7f');
  assert.equal(val(sys, 11), 5n);
  assert.equal(val(sys, 12), 0x8005n, 'si_code SIGTRAP | PTRACE_EVENT_STOP << 8');
  assert.equal(val(sys, 13), 0n);
  assert.equal(val(sys, 14), BigInt(-ESRCH));
  assert.equal(val(sys, 15), 0n);
  assert.equal(val(sys, 16), 0n);
  assert.equal(val(sys, 17), c);
  assert.equal(val(sys, 18), BigInt(SIGKILL), 'killed by SIGKILL');
});

test('signal-delivery-stop: a TRACEME child stops with its SIGUSR1, the tracer reads orig_rax and replaces the signal with SIGTERM', () => {
  const child: Op[] = [pt(PTRACE_TRACEME, 0, 0, 0), sc('getpid', [], 'me'), sc('kill', ['$me', SIGUSR1], 'rax'), sc('exit', [3])];
  const main: Op[] = [
    ...START, // 0-1
    { op: 'syscall', name: 'fork', args: [], into: 'c', cpu: 0, child }, // 2
    sc('wait4', ['$c', '$buf+128', 0, 0]), // 3
    load('$buf+128', 4), // 4
    pt(PTRACE_GETSIGINFO, '$c', 0, '$buf+1024'), // 5
    load('$buf+1032', 4), // 6: si_code SI_USER
    load('$buf+1040', 4), // 7: si_pid, the child's own
    pt(PTRACE_PEEKUSR, '$c', R.orig_rax, '$buf+64'), // 8
    load('$buf+64'), // 9
    pt(PTRACE_PEEKUSR, '$c', R.rax, '$buf+64'), // 10
    load('$buf+64'), // 11
    pt(PTRACE_CONT, '$c', 0, SIGTERM), // 12
    sc('wait4', ['$c', '$buf+136', 0, 0]), // 13
    load('$buf+136', 4), // 14
  ];
  const sys = runParent(main);
  const c = val(sys, 2);
  assert.equal(val(sys, 3), c);
  assert.equal(val(sys, 4), 0xa7fn, '(SIGUSR1 << 8) | 0x7f');
  assert.equal(val(sys, 6), 0n);
  assert.equal(val(sys, 7), c);
  assert.equal(val(sys, 8), 0n);
  assert.equal(val(sys, 9), 62n, 'orig_rax: kill, the syscall the tracee stopped after');
  assert.equal(val(sys, 11), 0n, "rax: kill's result");
  assert.equal(val(sys, 13), c);
  assert.equal(val(sys, 14), BigInt(SIGTERM), 'the tracer replaced the signal: SIGTERM killed it');
});

test('PEEKDATA and POKEDATA go through a protection key the tracer denies itself, and break COW of a read-only private page, the tracer keeping its own copy', () => {
  // Before the fork: page A (key k, written 0x1111) and page B (written 0x2222); the child makes
  // B read-only. The tracer then denies itself key k (PKRU.AD) and pokes both pages of the child.
  const child: Op[] = [
    sc('mprotect', ['$b', 4096, 1]), // 0
    sc('read', [3, '$buf+256', 4]), // 1: stopped here by the attach
    load('$a'), // 2
    load('$b'), // 3
  ];
  const main: Op[] = [
    ...START, // 0-1
    { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'a' }, // 2
    { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'b' }, // 3
    { op: 'store', addr: '$a', value: 0x1111 }, // 4
    { op: 'store', addr: '$b', value: 0x2222 }, // 5
    sc('pkey_alloc', [0, 0], 'k'), // 6
    sc('pkey_mprotect', ['$a', 4096, 3, '$k']), // 7
    { op: 'syscall', name: 'fork', args: [], into: 'c', cpu: 0, child }, // 8
    pt(PTRACE_ATTACH, '$c', 0, 0), // 9
    sc('wait4', ['$c', '$buf+128', 0, 0]), // 10
    { op: 'wrpkru', value: '1 << 2*$k' }, // 11: access-disable key k for the tracer
    pt(PTRACE_PEEKDATA, '$c', '$a', '$buf+64'), // 12
    load('$buf+64'), // 13
    pt(PTRACE_POKEDATA, '$c', '$a', 0x4444), // 14
    pt(PTRACE_POKEDATA, '$c', '$b', 0x3333), // 15
    pt(PTRACE_PEEKDATA, '$c', '$b', '$buf+72'), // 16
    load('$buf+72'), // 17
    pt(PTRACE_PEEKDATA, '$c', 0x1000, '$buf+72'), // 18: nothing mapped
    { op: 'wrpkru', value: 0 }, // 19
    load('$a'), // 20: the tracer's own pages are untouched
    load('$b'), // 21
    pt(PTRACE_DETACH, '$c', 0, 0), // 22
    sc('write', [4, '$buf', 4]), // 23
    sc('wait4', ['$c', '$buf+136', 0, 0]), // 24
  ];
  const sys = runParent(main);
  assert.equal(val(sys, 12), 0n, 'PEEKDATA through a key the tracer denies: FOLL_REMOTE');
  assert.equal(val(sys, 13), 0x1111n);
  assert.equal(val(sys, 14), 0n);
  assert.equal(val(sys, 15), 0n, 'POKEDATA to a read-only private page: FOLL_FORCE');
  assert.equal(val(sys, 17), 0x3333n);
  assert.equal(val(sys, 18), BigInt(-EIO));
  assert.equal(val(sys, 20), 0x1111n);
  assert.equal(val(sys, 21), 0x2222n, 'the forced write broke COW: the tracer keeps its copy');
  assert.equal(val(sys, 22), 0n);
  assert.equal(val(sys, 2, 'main.8.child'), 0x4444n, 'the tracee sees the pokes');
  assert.equal(val(sys, 3, 'main.8.child'), 0x3333n);
});

test('GETREGS reflects the tracee\'s registers, selectors and fs_base; SETREGS and POKEUSER change them', () => {
  const child: Op[] = [
    { op: 'set', var: 'rbx', value: 0x1234 }, // 0
    { op: 'set', var: 'rbp', value: 0xbbbb }, // 1
    sc('arch_prctl', [0x1002, 0x10000]), // 2: ARCH_SET_FS
    sc('write', [6, '$buf', 1]), // 3: tells the parent the registers are set
    sc('read', [3, '$buf+256', 4]), // 4
    { op: 'store', addr: '$buf+2048', value: '$rbx' }, // 5
    load('$buf+2048'), // 6
    { op: 'store', addr: '$buf+2048', value: '$r13' }, // 7
    load('$buf+2048'), // 8
    { op: 'store', addr: '$buf+2048', value: '$rbp' }, // 9
    load('$buf+2048'), // 10
  ];
  const main: Op[] = [
    ...START, // 0-1: pipe A (3, 4)
    sc('pipe', ['$buf+8']), // 2: pipe B (5, 6)
    { op: 'syscall', name: 'fork', args: [], into: 'c', cpu: 0, child }, // 3
    sc('read', [5, '$buf+16', 1]), // 4
    pt(PTRACE_ATTACH, '$c', 0, 0), // 5
    sc('wait4', ['$c', '$buf+128', 0, 0]), // 6
    pt(PTRACE_GETREGS, '$c', 0, '$buf+512'), // 7
    load(`$buf+${512 + R.rbx}`), // 8
    load(`$buf+${512 + R.cs}`), // 9
    load(`$buf+${512 + R.ss}`), // 10
    load(`$buf+${512 + R.fs_base}`), // 11
    load(`$buf+${512 + R.orig_rax}`), // 12
    load(`$buf+${512 + R.eflags}`), // 13
    { op: 'store', addr: `$buf+${512 + R.rbx}`, value: 0x5678 }, // 14
    pt(PTRACE_SETREGS, '$c', 0, '$buf+512'), // 15
    { op: 'store', addr: `$buf+${512 + R.rbp}`, value: 0xcccc }, // 16
    { op: 'store', addr: `$buf+${512 + R.ds}`, value: 0x10 }, // 17: RPL 0: -EIO, after rbp was written
    pt(PTRACE_SETREGS, '$c', 0, '$buf+512'), // 18
    pt(PTRACE_POKEUSR, '$c', R.r13, 0x9999), // 19
    pt(PTRACE_CONT, '$c', 0, 0), // 20
    sc('write', [4, '$buf', 4]), // 21
    sc('wait4', ['$c', '$buf+136', 0, 0]), // 22
  ];
  const sys = runParent(main);
  assert.equal(val(sys, 7), 0n);
  assert.equal(val(sys, 8), 0x1234n);
  assert.equal(val(sys, 9), 0x33n);
  assert.equal(val(sys, 10), 0x2bn);
  assert.equal(val(sys, 11), 0x10000n);
  // The SIGSTOP stops the child on its way out of the write or in the read: orig_rax is the syscall.
  assert.ok([0n, 1n].includes(val(sys, 12)), 'orig_rax: write (1) or read (0)');
  assert.equal(val(sys, 13), 0x202n);
  assert.equal(val(sys, 15), 0n);
  assert.equal(val(sys, 18), BigInt(-EIO), 'genregs_set stops at the bad ds');
  assert.equal(val(sys, 19), 0n);
  const f = 'main.3.child';
  assert.equal(val(sys, 6, f), 0x5678n);
  assert.equal(val(sys, 8, f), 0x9999n);
  assert.equal(val(sys, 10, f), 0xccccn, 'the words before the bad one were written');
});

test('execve of a traced task: the legacy SIGTRAP for TRACEME, a PTRACE_EVENT_EXEC stop for PTRACE_O_TRACEEXEC; SETSIGINFO of the stop', () => {
  // Host-checked: a TRACEME child's execve stops it with status 0x57f (SIGTRAP), orig_rax 59.
  // kernel/ptrace.c ptrace_event: with PTRACE_O_TRACEEXEC the stop's status is
  // (SIGTRAP | PTRACE_EVENT_EXEC << 8) << 8 | 0x7f and the event message the old pid.
  const sys = boot({ cpus: 2 });
  sys.addImage('next', { main: [sc('getpid', []), sc('exit_group', [5])] });
  const traceme: Op[] = [pt(PTRACE_TRACEME, 0, 0, 0), sc('execve', ['&next', 0, 0])];
  const seized: Op[] = [sc('read', [3, '$buf+256', 4]), sc('execve', ['&next', 0, 0])];
  const main: Op[] = [
    ...START, // 0-1
    { op: 'syscall', name: 'fork', args: [], into: 'c', cpu: 0, child: traceme }, // 2
    sc('wait4', ['$c', '$buf+128', 0, 0]), // 3
    load('$buf+128', 4), // 4
    pt(PTRACE_PEEKUSR, '$c', R.orig_rax, '$buf+64'), // 5
    load('$buf+64'), // 6
    pt(PTRACE_GETSIGINFO, '$c', 0, '$buf+1024'), // 7
    load('$buf+1032', 4), // 8: si_code SI_USER (send_sig)
    { op: 'store', addr: '$buf+1024', value: SIGTERM }, // 9: si_signo
    pt(PTRACE_SETSIGINFO, '$c', 0, '$buf+1024'), // 10
    pt(PTRACE_CONT, '$c', 0, SIGTERM), // 11
    sc('wait4', ['$c', '$buf+136', 0, 0]), // 12
    load('$buf+136', 4), // 13
    { op: 'syscall', name: 'fork', args: [], into: 'd', cpu: 0, child: seized }, // 14
    pt(PTRACE_SEIZE, '$d', 0, 1 << 4), // 15: PTRACE_O_TRACEEXEC
    sc('write', [4, '$buf', 4]), // 16
    sc('wait4', ['$d', '$buf+144', 0, 0]), // 17
    load('$buf+144', 4), // 18
    pt(PTRACE_GETEVENTMSG, '$d', 0, '$buf+64'), // 19
    load('$buf+64'), // 20
    pt(PTRACE_CONT, '$d', 0, 0), // 21
    sc('wait4', ['$d', '$buf+152', 0, 0]), // 22
    load('$buf+152', 4), // 23
  ];
  sys.spawn({ main, strings: { next: 'next' } }, { cpu: 1 });
  const r = sys.run({ maxSteps: 2_000_000 });
  assert.ok(r.finished, `tasks still alive: ${r.alive.join(', ')}`);
  assert.deepEqual(sys.debugReports, []);
  assert.equal(val(sys, 4), 0x57fn, 'SIGTRAP after the execve');
  assert.equal(val(sys, 6), 59n, 'orig_rax: execve');
  assert.equal(val(sys, 8), 0n);
  assert.equal(val(sys, 10), 0n);
  assert.equal(val(sys, 13), BigInt(SIGTERM), 'the new image was killed by the SIGTERM the tracer put in');
  const d = val(sys, 14);
  assert.equal(val(sys, 15), 0n);
  assert.equal(val(sys, 18), 0x4057fn, '(SIGTRAP | PTRACE_EVENT_EXEC << 8) << 8 | 0x7f');
  assert.equal(val(sys, 20), d, 'the event message: the pid before the execve');
  assert.equal(val(sys, 23), 0x500n, 'the new image ran: exit_group(5)');
});

test('/proc/PID/status of a tracee in a ptrace stop: State t (tracing stop), TracerPid the tracer', () => {
  // fs/proc/array.c task_state: TracerPid is ptrace_parent()'s pid; "t (tracing stop)" for TASK_TRACED.
  const O_WRONLY = 1, O_CREAT = 0x40;
  const main: Op[] = [
    ...START, // 0-1
    { op: 'syscall', name: 'fork', args: [], into: 'c', cpu: 0, child: [sc('read', [3, '$buf+256', 4])] }, // 2
    pt(PTRACE_ATTACH, '$c', 0, 0), // 3
    sc('wait4', ['$c', '$buf+128', 0, 0]), // 4
    sc('open', ['&status', 0, 0], 'fd'), // 5
    sc('read', ['$fd', '$buf+512', 512], 'n'), // 6
    sc('open', ['&out', O_WRONLY | O_CREAT, 0o644], 'out'), // 7
    sc('write', ['$out', '$buf+512', '$n']), // 8
    pt(PTRACE_DETACH, '$c', 0, 0), // 9
    sc('write', [4, '$buf', 4]), // 10
    sc('wait4', ['$c', '$buf+136', 0, 0]), // 11
  ];
  const sys = boot({ cpus: 2 });
  const parent = sys.spawn({ main, strings: { status: '/proc/2/status', out: '/tmp/out' } }, { cpu: 1 });
  const r = sys.run({ maxSteps: 2_000_000 });
  assert.ok(r.finished);
  assert.equal(val(sys, 2), 2n, 'the child is pid 2, whose status is read');
  const text = fileText(sys, '/tmp/out');
  assert.ok(text.includes('State:\tt (tracing stop)\n'), text);
  assert.ok(text.includes(`PPid:\t${parent}\nTracerPid:\t${parent}\n`), text);
  assert.equal(val(sys, 9), 0n);
  assert.equal(val(sys, 11), 2n);
});

test('a tracer that is not the parent: its exit detaches and restarts the tracee; a traced zombie goes to the tracer first, then to the real parent', () => {
  // kernel/ptrace.c exit_ptrace -> __ptrace_detach -> __ptrace_unlink wakes the tracee from its
  // signal-delivery-stop; ptrace_stop returns its exit_code, which the tracer's wait4 consumed
  // (wait_task_stopped: *p_code = 0), so no signal is delivered and it goes on: not stopped for
  // its real parent. kernel/exit.c wait_task_zombie: the tracer reaps the traced zombie
  // (EXIT_TRACE), ptrace_unlink, do_notify_parent: the real parent reaps it after.
  const WUNTRACED = 2;
  const main: Op[] = [
    { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'buf' }, // 0
    sc('pipe', ['$buf']), // 1: A (3, 4)
    sc('pipe', ['$buf+8']), // 2: B (5, 6)
    { op: 'syscall', name: 'fork', args: [], into: 'c', cpu: 0, child: [sc('read', [3, '$buf+256', 4])] }, // 3
    {
      op: 'syscall', name: 'fork', args: [], into: 't', cpu: 2,
      child: [pt(PTRACE_ATTACH, '$c', 0, 0), sc('wait4', ['$c', '$buf+128', 0, 0]), load('$buf+128', 4)],
    }, // 4: exits with the tracee stopped
    sc('wait4', ['$t', 0, 0, 0]), // 5
    sc('wait4', ['$c', '$buf+136', WUNTRACED | WNOHANG, 0]), // 6
    sc('getpid', []), // 7
    sc('getpid', []), // 8
    sc('write', [4, '$buf', 4]), // 9
    sc('wait4', ['$c', '$buf+136', 0, 0]), // 10
    { op: 'syscall', name: 'fork', args: [], into: 'd', cpu: 0, child: [sc('read', [5, '$buf+256', 4]), sc('exit_group', [3])] }, // 11
    {
      op: 'syscall', name: 'fork', args: [], into: 'u', cpu: 2,
      child: [
        pt(PTRACE_ATTACH, '$d', 0, 0), sc('wait4', ['$d', '$buf+128', 0, 0]), pt(PTRACE_CONT, '$d', 0, 0),
        sc('write', [6, '$buf', 4]), sc('wait4', ['$d', '$buf+144', 0, 0]), load('$buf+144', 4),
      ],
    }, // 12
    sc('wait4', ['$u', 0, 0, 0]), // 13
    sc('wait4', ['$d', '$buf+152', 0, 0]), // 14
    load('$buf+152', 4), // 15
  ];
  const sys = runParent(main, 3);
  const c = val(sys, 3);
  const d = val(sys, 11);
  assert.equal(val(sys, 2, 'main.4.child'), 0x137fn, 'the tracer saw the attach stop');
  assert.equal(val(sys, 5), val(sys, 4));
  assert.equal(val(sys, 6), 0n, 'detached by its tracer\'s exit, the tracee is not stopped');
  assert.equal(val(sys, 10), c);
  assert.equal(val(sys, 0, 'main.3.child'), 4n, 'its read went on and completed');
  const u = 'main.12.child';
  assert.equal(val(sys, 4, u), d, 'the tracer reaps the traced zombie');
  assert.equal(val(sys, 5, u), 0x300n);
  assert.equal(val(sys, 14), d, 'then the real parent');
  assert.equal(val(sys, 15), 0x300n);
});
