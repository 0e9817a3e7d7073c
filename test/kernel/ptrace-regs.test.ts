/**
 * The general registers (rax rbx rcx rdx rsi rdi rbp r8..r15): a thread variable of one of
 * those names is the register. The signal frame carries them (arch/x86/kernel/signal_64.c
 * __unsafe_setup_sigcontext; uapi/asm/sigcontext.h struct sigcontext_64: r8..r15 at
 * uc_mcontext + 0..56, rdi 64, rsi 72, rbp 80, rbx 88, rdx 96, rax 104, rcx 112; uc_mcontext
 * is 40 bytes into the ucontext, which is 8 bytes into the frame), x64_setup_rt_frame starts
 * the handler with rdi = signal, rsi = &frame->info (frame + 312), rdx = &frame->uc (frame + 8)
 * and rax = 0, and rt_sigreturn (restore_sigcontext) takes every one back from the frame, so a
 * handler's edit of the saved rbx is what the interrupted code sees.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileScenarioText } from '../../src/scenario/index.js';
import { runScenario } from '../../src/scenario/run.js';
import type { System } from '../../src/system.js';
import type { Op } from '../../src/user/program.js';
import { boot, records, store } from './helpers.js';

function run(text: string, expectations: number): void {
  const r = runScenario(compileScenarioText(text, 'ptrace-regs.yaml'));
  assert.equal(r.verdicts.length, expectations, 'every expectation was judged');
  const failed = r.verdicts.filter((v) => v.status !== 'held');
  assert.deepEqual(failed, [], 'every expectation holds');
  assert.ok(r.passed);
}

test('the frame holds the interrupted general registers, the handler starts with rdi, rsi, rdx and rax set, and rt_sigreturn restores an edited rbx', () => {
  run(`name: frame-gprs
kernel: { debug_vm: true }
processes:
  - name: p
    handlers:
      SIGUSR1: { handler: usr }
    functions:
      usr:
        - load: $rsp + 48 + 88
          as: f
        - store: { addr: $buf, value: $f }
        - load: $rsp + 48 + 32
          as: f
        - store: { addr: $buf + 8, value: $f }
        - load: $rsp + 48 + 64
          as: f
        - store: { addr: $buf + 16, value: $f }
        - load: $rsp + 48 + 104
          as: f
        - store: { addr: $buf + 24, value: $f }  # kill's result, 0: it reached rax before the frame
        - load: $rsp + 48 + 112
          as: f
        - store: { addr: $buf + 32, value: $f }
        - store: { addr: $buf + 40, value: $rdi }
        - store: { addr: $buf + 48, value: $rsi - $rsp }
        - store: { addr: $buf + 56, value: $rdx - $rsp }
        - store: { addr: $buf + 64, value: $rax }
        - store: { addr: $rdx + 40 + 88, value: 0x4444 }
        - set: { rdi: 0x77, r12: 0x99 }
        - return
    ops:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS }
        as: buf
      - set: { rbx: 0x1111, r12: 0x2222, rdi: 0x3333, rcx: 0, rax: 0x5555 }
      - kill: { pid: 0, sig: SIGUSR1 }
        as: rax
      - load: $buf
        expect: 0x1111
      - load: $buf + 8
        expect: 0x2222
      - load: $buf + 16
        expect: 0x3333
      - load: $buf + 24
        expect: 0
      - load: $buf + 32
        expect: 0
      - load: $buf + 40
        expect: SIGUSR1
      - load: $buf + 48
        expect: 312
      - load: $buf + 56
        expect: 8
      - load: $buf + 64
        expect: 0
      - store: { addr: $buf + 72, value: $rbx }
      - load: $buf + 72
        expect: 0x4444
      - store: { addr: $buf + 80, value: $rdi }
      - load: $buf + 80
        expect: 0x3333
      - store: { addr: $buf + 88, value: $r12 }
      - load: $buf + 88
        expect: 0x2222
expect:
  exit: { p: 0 }
`, 13);
});

// ---- Register sets and PTRACE_ARCH_PRCTL (arch/x86/kernel/ptrace.c, fpu/regset.c, shstk.c; 6.12) ----

const PTRACE_PEEKDATA = 2, PTRACE_CONT = 7, PTRACE_KILL = 8, PTRACE_ATTACH = 16, PTRACE_ARCH_PRCTL = 30, PTRACE_GETREGSET = 0x4204, PTRACE_SETREGSET = 0x4205;
const NT_PRSTATUS = 1, NT_PRFPREG = 2, NT_X86_XSTATE = 0x202, NT_X86_SHSTK = 0x204;
const ARCH_GET_FS = 0x1003, ARCH_SHSTK_ENABLE = 0x5001, ARCH_SHSTK_DISABLE = 0x5002, ARCH_SHSTK_LOCK = 0x5003, ARCH_SHSTK_UNLOCK = 0x5004, ARCH_SHSTK_STATUS = 0x5005, ARCH_SHSTK_SHSTK = 1;
const ENODEV = 19, EINVAL = 22, EFAULT = 14;
/** fpu_user_cfg.max_size with x87, SSE and PKRU: PKRU's 8 bytes at 2688 end it. */
const XSTATE_SIZE = 2696;

const sc = (name: string, args: (number | bigint | string)[], into?: string): Op => ({ op: 'syscall', name, args, ...(into ? { into } : {}) });
const pt = (req: number, pid: string | number, addr: number | bigint | string, data: number | bigint | string): Op => sc('ptrace', [req, pid, addr, data]);
const load = (addr: string, size: 1 | 2 | 4 | 8 = 8): Op => ({ op: 'load', addr, size });
/** An iovec at $buf+96: base, len. */
const iov = (base: string, len: number): Op[] => [store('$buf+96', base), store('$buf+104', len)];

function val(sys: System, index: number, fn = 'main'): bigint {
  const r = records(sys, fn).get(index);
  assert.ok(r && r.value !== undefined, `${fn}[${index}] has no result`);
  return BigInt.asIntN(64, r.value);
}

test('GETREGSET and SETREGSET: NT_PRSTATUS, NT_X86_XSTATE with the tracee\'s PKRU, NT_X86_SHSTK; PTRACE_ARCH_PRCTL unlocks the shadow stack', () => {
  const child: Op[] = [
    sc('arch_prctl', [ARCH_SHSTK_ENABLE, ARCH_SHSTK_SHSTK]), // 0
    sc('arch_prctl', [ARCH_SHSTK_LOCK, ARCH_SHSTK_SHSTK]), // 1
    { op: 'wrpkru', value: 0xc }, // 2
    { op: 'rdssp', into: 'ssp' }, // 3
    store('$buf+2048', '$ssp'), // 4: for the tracer's PEEKDATA
    sc('write', [6, '$buf', 1]), // 5
    sc('read', [3, '$buf+256', 4]), // 6: stopped by the attach
    { op: 'rdpkru', into: 'pk' }, // 7
    store('$buf+2056', '$pk'), // 8
    load('$buf+2056'), // 9
    { op: 'rdssp', into: 'ssp2' }, // 10
    store('$buf+2064', '$ssp2'), // 11
    load('$buf+2064'), // 12
    sc('arch_prctl', [ARCH_SHSTK_DISABLE, ARCH_SHSTK_SHSTK]), // 13: unlocked by the tracer
  ];
  const main: Op[] = [
    { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'buf' }, // 0
    sc('pipe', ['$buf']), // 1: A (3, 4)
    sc('pipe', ['$buf+8']), // 2: B (5, 6)
    { op: 'syscall', name: 'mmap', args: [0, 8192, 3, 0x22, -1, 0], into: 'x' }, // 3
    { op: 'syscall', name: 'fork', args: [], into: 'c', cpu: 0, child }, // 4
    sc('read', [5, '$buf+16', 1]), // 5
    pt(PTRACE_ATTACH, '$c', 0, 0), // 6
    sc('wait4', ['$c', '$buf+128', 0, 0]), // 7
    ...iov('$buf+512', 10), // 8-9
    pt(PTRACE_GETREGSET, '$c', NT_PRSTATUS, '$buf+96'), // 10: not a multiple of 8
    ...iov('$buf+512', 4096), // 11-12
    pt(PTRACE_GETREGSET, '$c', NT_PRSTATUS, '$buf+96'), // 13
    load('$buf+104'), // 14: iov_len cut to 216
    pt(PTRACE_GETREGSET, '$c', 0x999, '$buf+96'), // 15
    ...iov('$x', 8192), // 16-17
    pt(PTRACE_GETREGSET, '$c', NT_X86_XSTATE, '$buf+96'), // 18
    load('$buf+104'), // 19
    load('$x+512'), // 20: XSTATE_BV
    load('$x+2688', 4), // 21: PKRU
    load('$x+24', 4), // 22: MXCSR
    store('$x+2688', 0x55555550), // 23
    store('$x+520', 1), // 24: XCOMP_BV: the compacted form
    pt(PTRACE_SETREGSET, '$c', NT_X86_XSTATE, '$buf+96'), // 25
    store('$x+520', 0), // 26
    ...iov('$x', 512), // 27-28
    pt(PTRACE_SETREGSET, '$c', NT_X86_XSTATE, '$buf+96'), // 29: not the whole buffer
    ...iov('$x', XSTATE_SIZE), // 30-31
    pt(PTRACE_SETREGSET, '$c', NT_X86_XSTATE, '$buf+96'), // 32
    ...iov('$x', 512), // 33-34
    pt(PTRACE_GETREGSET, '$c', NT_PRFPREG, '$buf+96'), // 35
    load('$x', 2), // 36: FCW
    pt(PTRACE_PEEKDATA, '$c', '$buf+2048', '$buf+64'), // 37
    load('$buf+64'), // 38: the tracee's SSP as it read it
    ...iov('$buf+72', 8), // 39-40
    pt(PTRACE_GETREGSET, '$c', NT_X86_SHSTK, '$buf+96'), // 41
    load('$buf+72'), // 42
    store('$buf+80', '$buf+1'), // 43: misaligned
    ...iov('$buf+80', 8), // 44-45
    pt(PTRACE_SETREGSET, '$c', NT_X86_SHSTK, '$buf+96'), // 46
    load('$buf+72'), // 47
    { op: 'load', addr: '$buf+72', into: 'tssp' }, // 48
    store('$buf+80', '$tssp - 8'), // 49
    pt(PTRACE_SETREGSET, '$c', NT_X86_SHSTK, '$buf+96'), // 50: the SSP moves down a word
    pt(PTRACE_ARCH_PRCTL, '$c', '$buf+64', ARCH_SHSTK_STATUS), // 51
    load('$buf+64'), // 52
    pt(PTRACE_ARCH_PRCTL, '$c', ARCH_SHSTK_SHSTK, ARCH_SHSTK_ENABLE), // 53: only LOCK and UNLOCK change anything via ptrace
    pt(PTRACE_ARCH_PRCTL, '$c', ARCH_SHSTK_SHSTK, ARCH_SHSTK_UNLOCK), // 54
    pt(PTRACE_ARCH_PRCTL, '$c', '$buf+64', ARCH_GET_FS), // 55
    pt(PTRACE_CONT, '$c', 0, 0), // 56
    sc('write', [4, '$buf', 4]), // 57
    sc('wait4', ['$c', '$buf+136', 0, 0]), // 58
  ];
  const sys = boot({ cpus: 2 });
  sys.spawn({ main }, { cpu: 1 });
  const r = sys.run({ maxSteps: 2_000_000 });
  assert.ok(r.finished, `tasks still alive: ${r.alive.join(', ')}`);
  assert.deepEqual(sys.debugReports, []);
  assert.equal(val(sys, 10), BigInt(-EINVAL));
  assert.equal(val(sys, 13), 0n);
  assert.equal(val(sys, 14), 216n, 'iov_len: sizeof(struct user_regs_struct)');
  assert.equal(val(sys, 15), BigInt(-EINVAL), 'no such regset');
  assert.equal(val(sys, 18), 0n);
  assert.equal(val(sys, 19), BigInt(XSTATE_SIZE));
  assert.equal(val(sys, 20), 0x200n, 'XSTATE_BV: PKRU is not in its init state; x87 and SSE are');
  assert.equal(val(sys, 21), 0xcn, "the tracee's PKRU");
  assert.equal(val(sys, 22), 0x1f80n);
  assert.equal(val(sys, 25), BigInt(-EINVAL), 'XCOMP_BV set: validate_user_xstate_header');
  assert.equal(val(sys, 29), BigInt(-EFAULT), 'xstateregs_set wants the whole buffer');
  assert.equal(val(sys, 32), 0n);
  assert.equal(val(sys, 35), 0n);
  assert.equal(val(sys, 36), 0x37fn, 'FCW init');
  const ssp = val(sys, 38);
  assert.ok(ssp > 0n, 'the tracee has a shadow stack');
  assert.equal(val(sys, 41), 0n);
  assert.equal(val(sys, 42), ssp, 'NT_X86_SHSTK: the SSP');
  assert.equal(val(sys, 46), BigInt(-EINVAL), 'a misaligned SSP');
  assert.equal(val(sys, 50), 0n, 'SETREGSET NT_X86_SHSTK');
  assert.equal(val(sys, 51), 0n);
  assert.equal(val(sys, 52), BigInt(ARCH_SHSTK_SHSTK), 'ARCH_SHSTK_STATUS through ptrace');
  assert.equal(val(sys, 53), BigInt(-EINVAL));
  assert.equal(val(sys, 54), 0n);
  assert.equal(val(sys, 55), 0n);
  assert.equal(val(sys, 58), val(sys, 4));
  const f = 'main.4.child';
  assert.equal(val(sys, 1, f), 0n);
  assert.equal(val(sys, 9, f), 0x55555550n, 'the tracee runs with the PKRU the tracer set');
  assert.equal(val(sys, 12, f), ssp - 8n, 'and the SSP');
  assert.equal(val(sys, 13, f), 0n, 'ARCH_SHSTK_UNLOCK through ptrace unlocked it (locked, DISABLE is -EPERM)');
});

test('NT_X86_SHSTK of a tracee without a shadow stack is -ENODEV; PTRACE_KILL ends it', () => {
  const main: Op[] = [
    { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'buf' }, // 0
    { op: 'syscall', name: 'fork', args: [], into: 'c', cpu: 0, child: [pt(0, 0, 0, 0), sc('getpid', [], 'me'), sc('kill', ['$me', 19])] }, // 1
    sc('wait4', ['$c', '$buf+128', 0, 0]), // 2
    ...iov('$buf+72', 8), // 3-4
    pt(PTRACE_GETREGSET, '$c', NT_X86_SHSTK, '$buf+96'), // 5
    pt(PTRACE_KILL, '$c', 0, 0), // 6
    sc('wait4', ['$c', '$buf+128', 0, 0]), // 7
  ];
  const sys = boot({ cpus: 2 });
  sys.spawn({ main }, { cpu: 1 });
  const r = sys.run({ maxSteps: 2_000_000 });
  assert.ok(r.finished);
  assert.equal(val(sys, 5), BigInt(-ENODEV));
  assert.equal(val(sys, 7), val(sys, 1));
});
