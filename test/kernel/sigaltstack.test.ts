/**
 * The alternate signal stack (Linux 6.12): sigaltstack's checks in order (kernel/signal.c
 * sys_sigaltstack, do_sigaltstack), delivery onto it (arch/x86/kernel/signal.c get_sigframe,
 * signal_64.c x64_setup_rt_frame's unsafe_save_altstack, kernel/signal.c signal_delivered's
 * SS_AUTODISARM), rt_sigreturn's restore_altstack (before restore_sigcontext since the 6.12
 * pkeys series, so at the handler's stack pointer), and inheritance (kernel/fork.c
 * copy_process's sas_ss_reset for CLONE_VM without CLONE_VFORK; fs/exec.c begin_new_exec, which
 * clears sp and size but keeps the flags).
 *
 * Host-checked on x86-64 Linux 6.18 (the same code as 6.12 here) with small C programs calling
 * sigaltstack(2) directly: every errno below and its order, SS_ONSTACK in a handler on the
 * stack and -EPERM there (also for an unchanged stack), SS_DISABLE with sp and size 0 in a
 * handler whose SS_AUTODISARM stack was disarmed and the frame's uc_stack.ss_flags
 * SS_AUTODISARM, the stack back armed after such a handler returns, the stack a handler set
 * around its own stack pointer kept, fork and CLONE_VM|CLONE_VFORK keeping the stack and
 * CLONE_VM clearing it (SS_DISABLE), execve leaving SS_DISABLE|SS_AUTODISARM, and a
 * MINSIGSTKSZ stack too small for a frame (SIGSEGV).
 *
 * Frame addresses come from get_sigframe's arithmetic with the model's XSAVE image of 2700
 * bytes (xstate_sigframe_size with PKRU: 2688 + 8 + FP_XSTATE_MAGIC2's 4) and the 440-byte
 * rt_sigframe: from the top T of the stack, the image at round_down(T - 2700, 64) and the frame
 * at round_down(image - 440, 16) - 8. For a SIGSTKSZ (8192) stack at a page boundary A: the
 * image at A + 5440, the frame at A + 4984; a second frame on the same stack (T = A + 4984 -
 * 128, the red zone) at A + 1656, and a third would start below A.
 */
import { test } from 'node:test';
import { runHolding } from './helpers.js';

function run(text: string, expectations: number): void {
  runHolding(text, 'sigaltstack.yaml', expectations);
}

/** Ops writing the stack_t {sp, flags, size} at $ss. */
const ss = (sp: string, flags: string, size: string): string => `
      - store: { addr: $ss, value: ${sp} }
      - store: { addr: $ss + 8, value: ${flags} }
      - store: { addr: $ss + 16, value: ${size} }`;
/** Ops querying the stack into $q (sigaltstack(NULL, $q)) and checking its sp, flags and size. */
const query = (sp: string, flags: string, size: string, indent = '      '): string => `
${indent}- sigaltstack: { uss: 0, uoss: $q }
${indent}  expect: 0
${indent}- load: $q
${indent}  expect: ${sp}
${indent}- load: { addr: $q + 8, size: 4 }
${indent}  expect: ${flags}
${indent}- load: $q + 16
${indent}  expect: ${size}`;
/** The stack_t buffers $ss and $q, and an 8 KiB stack $alt. */
const SETUP = `
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS }
        as: ss
      - set: { q: $ss + 64, buf: $ss + 128 }
      - mmap: { len: SIGSTKSZ, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS }
        as: alt
      - getpid:
        as: me`;

test('sigaltstack: -EFAULT, -EINVAL, -ENOMEM in 6.12 order (-EPERM: on the stack, below); SS_DISABLE clears; uoss after the change, its -EFAULT leaving the change made', () => {
  run(`name: sigaltstack-errors
processes:
  - name: p
    ops:${SETUP}${query('0', 'SS_DISABLE', '0')}
      - sigaltstack: { uss: 0x1000, uoss: $q }
        expect: { errno: EFAULT }
      - sigaltstack: { uss: 0x1000, uoss: 0x1000 }
        expect: { errno: EFAULT }${ss('$alt', '4', '2047')}
      - sigaltstack: { uss: $ss, uoss: 0x1000 }
        expect: { errno: EINVAL }${ss('$alt', 'SS_ONSTACK|SS_DISABLE', '2047')}
      - sigaltstack: { uss: $ss, uoss: 0 }
        expect: { errno: EINVAL }${ss('$alt', 'SS_ONSTACK|SS_AUTODISARM', 'MINSIGSTKSZ-1')}
      - sigaltstack: { uss: $ss, uoss: 0 }
        expect: { errno: ENOMEM }${ss('$alt', 'SS_DISABLE', '2047')}
      - sigaltstack: { uss: $ss, uoss: 0 }
        expect: 0${query('0', 'SS_DISABLE', '0')}${ss('$alt', '0', 'MINSIGSTKSZ')}
      - sigaltstack: { uss: $ss, uoss: $q }
        expect: 0
      - load: { addr: $q + 8, size: 4 }
        expect: SS_DISABLE${ss('$alt', 'SS_ONSTACK', 'SIGSTKSZ')}
      - sigaltstack: { uss: $ss, uoss: 0x1000 }
        expect: { errno: EFAULT }${query('$alt', '0', 'SIGSTKSZ')}
expect:
  exit: { p: 0 }
`, 22);
});

/**
 * A SIGUSR1 handler with SA_ONSTACK copying $rsp and the frame's uc_stack to $buf, querying the
 * stack into $q+32 and trying to set it (its result to $buf+32), then returning.
 */
const ONSTACK_HANDLER = `
      on_usr1:
        - set: { at: $rsp }
        - store: { addr: $buf, value: $at }
        - load: $rsp + 24
          as: f
        - store: { addr: $buf + 8, value: $f }
        - load: { addr: $rsp + 32, size: 4 }
          as: f
        - store: { addr: $buf + 16, value: $f }
        - load: $rsp + 40
          as: f
        - store: { addr: $buf + 24, value: $f }
        - sigaltstack: { uss: 0, uoss: $q + 32 }
        - sigaltstack: { uss: $ss, uoss: 0 }
          as: r
        - store: { addr: $buf + 32, value: $r }
        - return`;

test('SA_ONSTACK: the frame at the top of the alternate stack, uc_stack the thread\'s fields, SS_ONSTACK inside the handler, -EPERM even for the same stack; none of it without SA_ONSTACK', () => {
  run(`name: sigaltstack-delivery
processes:
  - name: p
    handlers:
      SIGUSR1: { handler: on_usr1, flags: SA_ONSTACK }
      SIGUSR2: { handler: on_usr2 }
    functions:${ONSTACK_HANDLER}
      on_usr2:
        - sigaltstack: { uss: 0, uoss: $q + 32 }
        - return
    ops:${SETUP}${ss('$alt', '0', 'SIGSTKSZ')}
      - sigaltstack: { uss: $ss, uoss: 0 }
        expect: 0
      - kill: { pid: $me, sig: SIGUSR1 }
        expect: 0
      - load: $buf
        expect: $alt + 4984
      - load: $buf + 8
        expect: $alt
      - load: $buf + 16
        expect: 0
      - load: $buf + 24
        expect: SIGSTKSZ
      - load: { addr: $q + 40, size: 4 }
        expect: SS_ONSTACK
      - load: $buf + 32
        expect: -EPERM${query('$alt', '0', 'SIGSTKSZ')}
      - kill: { pid: $me, sig: SIGUSR2 }
      - load: { addr: $q + 40, size: 4 }
        expect: 0
expect:
  exit: { p: 0 }
`, 14);
});

test('SS_AUTODISARM: the handler runs with no alternate stack (SS_DISABLE) and may set one; rt_sigreturn arms the old one again, unless the handler set one around its own stack pointer', () => {
  run(`name: sigaltstack-autodisarm
processes:
  - name: p
    handlers:
      SIGUSR1: { handler: on_usr1, flags: SA_ONSTACK }
    functions:${ONSTACK_HANDLER}
    ops:${SETUP}
      - mmap: { len: SIGSTKSZ, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS }
        as: alt2${ss('$alt', 'SS_AUTODISARM', 'SIGSTKSZ')}
      - sigaltstack: { uss: $ss, uoss: 0 }
        expect: 0${ss('$alt2', '0', 'SIGSTKSZ')}
      - kill: { pid: $me, sig: SIGUSR1 }
      - load: $buf
        expect: $alt + 4984
      - load: $buf + 16
        expect: SS_AUTODISARM
      - load: $q + 32
        expect: 0
      - load: { addr: $q + 40, size: 4 }
        expect: SS_DISABLE
      - load: $q + 48
        expect: 0
      - load: $buf + 32
        expect: 0${query('$alt', 'SS_AUTODISARM', 'SIGSTKSZ')}${ss('$alt', '0', 'SIGSTKSZ')}
      - kill: { pid: $me, sig: SIGUSR1 }
      - load: $buf
        expect: $alt + 4984
      - load: $buf + 32
        expect: 0${query('$alt', '0', 'SIGSTKSZ')}
expect:
  exit: { p: 0 }
`, 18);
});

test('nested signals on the alternate stack: the second frame below the first, a third that would not fit is SIGSEGV; a MINSIGSTKSZ stack cannot take one frame', () => {
  run(`name: sigaltstack-nested
processes:
  - name: p
    handlers:
      SIGUSR1: { handler: on_usr1, flags: SA_ONSTACK }
      SIGUSR2: { handler: on_usr2, flags: SA_ONSTACK }
      SIGHUP: { handler: on_hup, flags: SA_ONSTACK }
    functions:
      on_usr1:
        - set: { at: $rsp }
        - store: { addr: $out, value: $at }
        - kill: { pid: $me, sig: SIGUSR2 }
        - return
      on_usr2:
        - set: { at: $rsp }
        - store: { addr: $out + 8, value: $at }
        - kill: { pid: $me, sig: SIGHUP }
        - return
      on_hup:
        - store: { addr: $out + 16, value: 1 }
        - return
    ops:${SETUP}
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_SHARED|MAP_ANONYMOUS }
        as: out${ss('$alt', '0', 'SIGSTKSZ')}
      - sigaltstack: { uss: $ss, uoss: 0 }
        expect: 0
      - fork:
          name: nest
          ops:
            - getpid:
              as: me
            - kill: { pid: $me, sig: SIGUSR1 }
            - store: { addr: $out + 24, value: 1 }
        as: pid
      - wait4: { upid: $pid }
        expect: $pid
      - load: $out
        expect: $alt + 4984
      - load: $out + 8
        expect: $alt + 1656
      - load: $out + 16
        expect: 0
      - load: $out + 24
        expect: 0${ss('$alt', '0', 'MINSIGSTKSZ')}
      - sigaltstack: { uss: $ss, uoss: 0 }
        expect: 0
      - fork:
          name: small
          ops:
            - getpid:
              as: me
            - kill: { pid: $me, sig: SIGHUP }
            - store: { addr: $out + 32, value: 1 }
        as: pid
      - wait4: { upid: $pid }
        expect: $pid
      - load: $out + 32
        expect: 0
expect:
  exit: { p: 0, nest: SIGSEGV, small: SIGSEGV }
  events:
    - { type: signal, thread: nest, signo: SIGSEGV, action: core, exactly: 1 }
    - { type: signal, thread: nest, signo: SIGHUP, exactly: 0 }
    - { type: signal, thread: small, signo: SIGHUP, exactly: 0 }
`, 15);
});

test('inheritance: fork and vfork keep the alternate stack, clone(CLONE_VM) clears it (SS_DISABLE, also in its frames\' uc_stack), execve clears sp and size but keeps SS_AUTODISARM', () => {
  const child = (name: string): string => `
          name: ${name}
          ops:${query('$alt', 'SS_AUTODISARM', 'SIGSTKSZ', '            ')}`;
  run(`name: sigaltstack-inherit
processes:
  - name: p
    handlers:
      SIGUSR1: { handler: on_usr1 }
    functions:
      on_usr1:
        - load: { addr: $rsp + 32, size: 4 }
          as: f
        - store: { addr: $buf, value: $f }
        - return
    ops:${SETUP}${ss('$alt', 'SS_AUTODISARM', 'SIGSTKSZ')}
      - sigaltstack: { uss: $ss, uoss: 0 }
        expect: 0
      - fork:${child('forked')}
        as: pid
      - wait4: { upid: $pid }
        expect: $pid
      - vfork:${child('vforked')}
        as: pid
      - wait4: { upid: $pid }
        expect: $pid
      - clone:
          clone_flags: CLONE_VM|SIGCHLD
          name: vmchild
          ops:${query('0', 'SS_DISABLE', '0', '            ')}
            - gettid:
              as: tid
            - tgkill: { tgid: $tid, pid: $tid, sig: SIGUSR1 }
            - load: $buf
              expect: SS_DISABLE
        as: pid
      - wait4: { upid: $pid }
        expect: $pid
      - fork:
          name: execer
          ops:
            - execve: { filename: /bin/probe }
        as: pid
      - wait4: { upid: $pid }
        expect: $pid${query('$alt', 'SS_AUTODISARM', 'SIGSTKSZ')}
programs:
  /bin/probe:
    ops:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS }
        as: q
      - sigaltstack: { uss: 0, uoss: $q }
        expect: 0
      - load: $q
        expect: 0
      - load: { addr: $q + 8, size: 4 }
        expect: SS_DISABLE|SS_AUTODISARM
      - load: $q + 16
        expect: 0
expect:
  exit: { p: 0, forked: 0, vforked: 0, vmchild: 0, execer: 0 }
`, 31);
});

/**
 * An alternate stack under key 1, which the interrupted code has write-disabled (PKRU
 * 0x55555558), and a handler with SA_ONSTACK that records its PKRU, opens key 1 (WRPKRU
 * 0x55555550) and returns. Upstream (6.12) get_sigframe writes the XSAVE image and the frame
 * with PKRU 0 (write_permissive_pkey_val), the handler starts at init_pkru 0x55555554 and
 * rt_sigreturn reads the frame under the PKRU the handler left, then restores 0x55555558 from
 * the image. The other `pkru_on_signal` choices write the frame with the interrupted PKRU, as
 * before 6.12: the first write, the XSAVE image, faults on key 1, delivery fails and
 * force_sigsegv kills with SIGSEGV (no handler runs).
 */
function pkeyAltstack(option: string, openKey: boolean): string {
  const killed = option !== 'upstream' || !openKey;
  return `name: sigaltstack-pkey-${option}
kernel: { pkru_on_signal: ${option} }
processes:
  - name: p
    handlers:
      SIGUSR1: { handler: on_usr1, flags: SA_ONSTACK }
    functions:
      on_usr1:
        - rdpkru:
          as: in_handler
        - store: { addr: $buf, value: $in_handler }${openKey ? `
        - wrpkru: 0x55555550` : ''}
        - return
    ops:${SETUP}
      - pkey_alloc: { flags: 0, init_val: PKEY_DISABLE_WRITE }
        expect: 1
      - pkey_mprotect: { start: $alt, len: SIGSTKSZ, prot: PROT_READ|PROT_WRITE, pkey: 1 }
        expect: 0${ss('$alt', '0', 'SIGSTKSZ')}
      - sigaltstack: { uss: $ss, uoss: 0 }
        expect: 0
      - rdpkru:
        expect: 0x55555558
      - kill: { pid: $me, sig: SIGUSR1 }${option !== 'upstream' ? '' : `
        expect: 0`}${killed ? '' : `
      - rdpkru:
        expect: 0x55555558
      - load: $buf
        expect: 0x55555554`}
expect:
  exit: { p: ${killed ? 'SIGSEGV' : 0} }
  events:
    - { type: signal, signo: SIGUSR1, action: handler, exactly: ${option === 'upstream' ? 1 : 0} }
    - { type: signal, signo: SIGSEGV, exactly: ${killed ? 1 : 0} }${option === 'upstream' && !openKey ? `
    - { type: page_fault, outcome: signal, user: true, exactly: 1, note: "the handler's RET read its return address under init_pkru, key 1 access-disabled" }` : ''}
`;
}

test('an alternate stack under a write-disabled key: upstream writes the frame (PKRU 0) and the handler, at init_pkru, must open the key to return; clear, lockdown and preserve write with the interrupted PKRU and fail (SIGSEGV)', () => {
  // Expectations judged: pkey_alloc, pkey_mprotect, sigaltstack, rdpkru and the exit; kill's 0
  // when delivery succeeds (a failed one gives the SIGSEGV it forces to the interrupted
  // operation); the second rdpkru and the load when the process lives; the events.
  run(pkeyAltstack('upstream', true), 10);
  run(pkeyAltstack('upstream', false), 9);
  for (const option of ['clear', 'lockdown', 'preserve']) run(pkeyAltstack(option, true), 7);
});

test('SA_RESETHAND resets the action in get_signal, before the frame: a frame that cannot be written (an unmapped alternate stack) still leaves SIG_DFL, and the SIGSEGV that follows sees it', () => {
  // kernel/signal.c get_signal: `ksig->ka = *ka; if (ka->sa.sa_flags & SA_ONESHOT)
  // ka->sa.sa_handler = SIG_DFL;` comes before handle_signal's setup_rt_frame, whose failure
  // is force_sigsegv (SIGSEGV, si_code SI_KERNEL). Host-checked on Linux 6.18 with a C program:
  // the SIGSEGV handler's sigaction(SIGUSR1) query gives SIG_DFL, and so does one after it.
  run(`name: sigaltstack-resethand
processes:
  - name: p
    handlers:
      SIGUSR1: { handler: on_usr1, flags: SA_ONSTACK|SA_RESETHAND }
      SIGSEGV: { handler: on_segv, flags: SA_SIGINFO }
    functions:
      on_usr1:
        - return
      on_segv:
        - store: { addr: $buf, value: $si_code }
        - rt_sigaction: { sig: SIGUSR1, act: 0, oact: $q, sigsetsize: 8 }
        - return
    ops:${SETUP}${ss('$alt', '0', 'SIGSTKSZ')}
      - sigaltstack: { uss: $ss, uoss: 0 }
        expect: 0
      - munmap: { addr: $alt, len: SIGSTKSZ }
        expect: 0
      - store: { addr: $q, value: 1 }
      - kill: { pid: $me, sig: SIGUSR1 }
      - load: $buf
        expect: SI_KERNEL
      - load: $q
        expect: 0 # SIG_DFL
      - rt_sigaction: { sig: SIGUSR1, act: 0, oact: $q + 32, sigsetsize: 8 }
        expect: 0
      - load: $q + 32
        expect: 0 # SIG_DFL
expect:
  exit: { p: 0 }
`, 7);
});
