/**
 * The x86-64 signal frame's fields beyond the registers (arch/x86/kernel/signal_64.c,
 * x64_setup_rt_frame and __unsafe_setup_sigcontext, 6.12): uc_flags from frame_uc_flags
 * (UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS for 64-bit code on an XSAVE CPU),
 * uc_stack as the thread's sas_ss_* fields (0 without sigaltstack, not SS_DISABLE:
 * unsafe_save_altstack), cs and ss (__USER_CS 0x33, __USER_DS 0x2b), and trapno, err and cr2
 * from the thread (thread.trap_nr, .error_code, .cr2), which the exception that sent the signal
 * set (arch/x86/mm/fault.c set_signal_archinfo with sanitize_error_code; arch/x86/kernel/traps.c
 * do_trap and exc_general_protection) and which a signal no exception sent finds as the last
 * one left them. The same handlers on the host (x86-64, 6.18, the same code) read the same
 * values: the table at each scenario's head.
 *
 * The frame at the handler's $rsp: pretcode 0, uc_flags 8, uc_stack.ss_sp 24, .ss_flags 32,
 * .ss_size 40, uc_mcontext 48 (struct sigcontext_64: eflags 48+136, cs 48+144, ss 48+150,
 * err 48+152, trapno 48+160, cr2 48+176).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileScenarioText } from '../../src/scenario/index.js';
import { runScenario } from '../../src/scenario/run.js';

/**
 * A handler's operations copying the frame's fields to $buf: uc_flags 0, uc_stack.ss_flags 8,
 * eflags 16, cs 24, ss 32, err 40, trapno 48, cr2 56.
 */
/** The fields copied: offset from $rsp and size; each goes to the next word at $buf. */
const FRAME_FIELDS: [number, number][] = [[8, 8], [32, 4], [184, 8], [192, 2], [198, 2], [200, 8], [208, 8], [224, 8]];
const COPY_FRAME = FRAME_FIELDS.map(([off, size], i) => `
        - load: { addr: $rsp + ${off}, size: ${size} }
          as: f
        - store: { addr: $buf + ${8 * i}, value: $f }`).join('');

function run(text: string, expectations: number): void {
  const r = runScenario(compileScenarioText(text, 'sigframe.yaml'));
  assert.equal(r.verdicts.length, expectations, 'every expectation was judged');
  const failed = r.verdicts.filter((v) => v.status !== 'held');
  assert.deepEqual(failed, [], 'every expectation holds');
  assert.ok(r.passed);
}

test('the frame of a #PF SIGSEGV (write to a read-only page, read of an unmapped one and of a kernel address) and of a later kill', () => {
  // host: write to an untouched PROT_READ page: err 6 (W|U), trapno 14, cr2 the address; read of
  // 0x1000: err 4 (U); read of 0xffffffff81000000: err 5 (U, and P from sanitize_error_code);
  // SIGUSR1 from kill afterwards: trapno 14, err 5 and cr2 of the last fault. uc_flags 7, ss_flags
  // 0, cs 0x33, ss 0x2b; eflags IF and the fixed bit, and RF in a fault's frame (the processor
  // sets RF in the RFLAGS image a fault-class exception pushes, SDM Vol. 3A 18.3.1.1; host:
  // 0x10202 or 0x10206, the arithmetic flags, which the model does not keep, varying), not in
  // the frame of a signal sent by kill (a syscall's entry: host 0x202 or 0x246).
  run(`name: sigframe-pf
kernel: { debug_vm: true }
processes:
  - name: p
    handlers:
      SIGSEGV: { handler: seg }
      SIGUSR1: { handler: usr }
    functions:
      seg:${COPY_FRAME}
        - longjmp
      usr:${COPY_FRAME}
        - return
    ops:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS }
        as: buf
      - set: { f: 0 }
      - mmap: { len: PAGE_SIZE, prot: PROT_READ, flags: MAP_PRIVATE|MAP_ANONYMOUS }
        as: ro
      - kill: { pid: 0, sig: SIGUSR1 }
      - load: $buf + 48
        expect: 0
      - load: $buf + 40
        expect: 0
      - store: { addr: $ro, value: 1 }
        expect: { signal: SIGSEGV, si_code: SEGV_ACCERR }
      - load: $buf + 0
        expect: 7
      - load: $buf + 8
        expect: 0
      - load: $buf + 24
        expect: 0x33
      - load: $buf + 32
        expect: 0x2b
      - load: $buf + 16
        expect: 0x10202
      - load: $buf + 40
        expect: 6
      - load: $buf + 48
        expect: 14
      - load: $buf + 56
        expect: $ro
      - load: 0x1000
        expect: { signal: SIGSEGV, si_code: SEGV_MAPERR }
      - load: $buf + 40
        expect: 4
      - load: 0xffffffff81000000
        expect: { signal: SIGSEGV, si_code: SEGV_MAPERR }
      - load: $buf + 40
        expect: 5
      - load: $buf + 56
        expect: 0xffffffff81000000
      - store: { addr: $buf + 40, value: 0 }
      - store: { addr: $buf + 48, value: 0 }
      - store: { addr: $buf + 56, value: 0 }
      - kill: { pid: 0, sig: SIGUSR1 }
      - load: $buf + 48
        expect: 14
      - load: $buf + 40
        expect: 5
      - load: $buf + 56
        expect: 0xffffffff81000000
      - load: $buf + 16
        expect: 0x202
expect:
  exit: { p: 0 }
`, 21);
});

test('the frame of a #UD SIGILL (WRPKRU without protection keys) and of a #GP SIGSEGV (a non-canonical address): trapno 6 and 13, err 0, cr2 left as it was', () => {
  // host: ud2 gives SIGILL with trapno 6, err 0; a load at 0x8000000000000000 gives SIGSEGV
  // (SI_KERNEL) with trapno 13, err 0; neither touches cr2 (do_trap, exc_general_protection).
  run(`name: sigframe-traps
machine: { cpu: { pku: false } }
kernel: { debug_vm: true }
processes:
  - name: p
    handlers:
      SIGSEGV: { handler: seg }
      SIGILL: { handler: seg }
    functions:
      seg:${COPY_FRAME}
        - longjmp
    ops:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS }
        as: buf
      - set: { f: 0 }
      - load: 0x1000
        expect: { signal: SIGSEGV, si_code: SEGV_MAPERR }
      - wrpkru: 0
        expect: { signal: SIGILL }
      - load: $buf + 48
        expect: 6
      - load: $buf + 40
        expect: 0
      - load: $buf + 56
        expect: 0x1000
      - load: 0x8000000000000000
        expect: { signal: SIGSEGV, si_code: SI_KERNEL }
      - load: $buf + 48
        expect: 13
      - load: $buf + 40
        expect: 0
      - load: $buf + 56
        expect: 0x1000
      - load: $buf + 0
        expect: 7
expect:
  exit: { p: 0 }
`, 11);
});

test("an SA_SIGINFO SIGCHLD handler's siginfo: si_code, si_pid and si_status as do_notify_parent fills them (exit code; killing signal); no SA_SIGINFO, no siginfo written", () => {
  // kernel/signal.c do_notify_parent (6.12): si_pid the child's tgid, si_status the exit code
  // for CLD_EXITED (exit_code >> 8) or the signal for CLD_KILLED (exit_code & 0x7f); siginfo at
  // frame+312: si_code +8, si_pid +16, si_status +24 (struct siginfo's _sigchld).
  // x64_setup_rt_frame copies it (copy_siginfo_to_user) only for an SA_SIGINFO handler: a later
  // frame at the same place for a handler without it finds the old siginfo there.
  run(`name: sigframe-sigchld
kernel: { debug_vm: true }
processes:
  - name: p
    handlers:
      SIGCHLD: { handler: chld, flags: SA_SIGINFO|SA_RESTART }
      SIGUSR1: { handler: usr }
    functions:
      chld:
        - load: { addr: $siginfo + 8, size: 4 }
          as: code
        - store: { addr: $buf + $f, value: $code }
        - load: { addr: $siginfo + 16, size: 4 }
          as: spid
        - store: { addr: $buf + $f + 8, value: $spid }
        - load: { addr: $siginfo + 24, size: 4 }
          as: st
        - store: { addr: $buf + $f + 16, value: $st }
        - set: { f: $f + 24 }
        - return
      usr:
        - load: $siginfo
          as: junk
        - store: { addr: $buf + 64, value: $junk }
        - return
    ops:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS }
        as: buf
      - set: { f: 0 }
      - set: { junk: 0 }
      - set: { code: 0 }
      - set: { spid: 0 }
      - set: { st: 0 }
      - fork:
          ops:
            - exit_group: { error_code: 3 }
        as: one
      - wait4: { upid: $one, stat_addr: 0, options: 0, ru: 0 }
        expect: $one
      - fork:
          ops:
            - getpid:
              as: me
            - kill: { pid: $me, sig: SIGKILL }
        as: two
      - wait4: { upid: $two, stat_addr: 0, options: 0, ru: 0 }
        expect: $two
      - load: $buf + 0
        expect: CLD_EXITED
      - load: $buf + 8
        expect: $one
      - load: $buf + 16
        expect: 3
      - load: $buf + 24
        expect: CLD_KILLED
      - load: $buf + 32
        expect: $two
      - load: $buf + 40
        expect: SIGKILL
      # The SIGUSR1 frame lands where the SIGCHLD frames did (the same $rsp, a syscall's return):
      # without SA_SIGINFO its siginfo slot still holds the last SIGCHLD's si_signo.
      - kill: { pid: 0, sig: SIGUSR1 }
      - load: $buf + 64
        expect: SIGCHLD
expect:
  exit: { p: 0 }
`, 10);
});

test('SA_NOCLDWAIT: the child is reaped at once (wait4 -ECHILD) and SIGCHLD is still sent, with CLD_EXITED and the exit code, once; SIG_IGN reaps at once too (host)', () => {
  // kernel/signal.c do_notify_parent (6.12): autoreap for SIG_IGN or SA_NOCLDWAIT, but the
  // signal is dropped only for SIG_IGN ("Whether we send SIGCHLD or not for SA_NOCLDWAIT is
  // implementation-defined: we do"). Host (/tmp/lj/nocld.c): one handler run, si_code 1,
  // si_status 7, si_pid the child, then wait4 -1 with ECHILD.
  run(`name: sigframe-nocldwait
processes:
  - name: p
    handlers:
      SIGCHLD: { handler: chld, flags: SA_SIGINFO|SA_NOCLDWAIT|SA_RESTART }
    functions:
      chld:
        - load: { addr: $siginfo + 8, size: 4 }
          as: code
        - store: { addr: $buf, value: $code }
        - load: { addr: $siginfo + 24, size: 4 }
          as: st
        - store: { addr: $buf + 8, value: $st }
        - set: { n: $n + 1 }
        - return
    ops:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS }
        as: buf
      - set: { n: 0 }
      - fork:
          ops:
            - exit_group: { error_code: 7 }
        as: child
      - wait4: { upid: -1, stat_addr: 0, options: 0, ru: 0 }
        expect: -ECHILD
      - load: $buf
        expect: CLD_EXITED
      - load: $buf + 8
        expect: 7
      - set: { m: $n }
      - store: { addr: $buf + 16, value: $m }
      - load: $buf + 16
        expect: 1
  - name: q
    handlers:
      SIGCHLD: { handler: SIG_IGN }
    ops:
      - fork:
          ops:
            - exit_group: { error_code: 7 }
      - wait4: { upid: -1, stat_addr: 0, options: 0, ru: 0 }
        expect: -ECHILD
expect:
  exit: { p: 0, q: 0 }
`, 7);
});
