/**
 * The names a signal handler reads: `$signo`, `$si_code`, `$si_addr`, `$si_pkey` (the siginfo
 * the kernel delivers), `$frame` (the struct rt_sigframe at the handler's entry rsp),
 * `$siginfo` and `$ucontext` (RSI = &frame->info and RDX = &frame->uc, x64_setup_rt_frame,
 * arch/x86/kernel/signal_64.c). Expected offsets come from arch/x86/include/asm/sigframe.h and
 * uapi/asm/sigcontext.h: struct rt_sigframe { pretcode 8; struct ucontext uc (304); struct
 * siginfo info }, so uc at 8 and info at 312; uc_mcontext at uc+40, rip its 17th word (uc+168,
 * frame+176); siginfo's si_signo at +0, si_code at +8, si_addr at +16. Using the names outside a
 * function, or naming a result after them, is an error at file:line:col.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileScenarioText } from '../../src/scenario/index.js';
import { runScenario } from '../../src/scenario/run.js';
import { issueAt } from './issue-at.js';
import { SIGNAL_HANDLER_NAMES } from '../../src/kernel/signal.js';
import { HANDLER_NAMES } from '../../src/user/program.js';

function held(text: string, count: number): void {
  const r = runScenario(compileScenarioText(text, 'names.yaml'));
  assert.deepEqual(r.verdicts.filter((v) => v.status !== 'held'), [], 'every expectation holds');
  assert.equal(r.verdicts.length, count, 'every expectation was judged');
}

test('a SIGSEGV handler reads the siginfo through its names and through $siginfo, $ucontext and $frame', () => {
  held(`name: names
processes:
  - name: p
    handlers:
      SIGSEGV: { handler: seg, flags: SA_SIGINFO }
    functions:
      seg:
        - load: { addr: $siginfo, size: 4 }
          expect: SIGSEGV
        - load: { addr: $siginfo + 8, size: 4 }
          expect: SEGV_ACCERR
        - load: $siginfo + 16
          expect: $none + 8
        - load: $frame + 176
          as: rip
        - load: $ucontext + 168
          expect: $rip
        - load: $frame
          as: pretcode
        - load: $rsp
          expect: $pretcode
        - store: { addr: $buf, value: $signo }
        - store: { addr: $buf + 8, value: $si_code }
        - store: { addr: $buf + 16, value: $si_addr }
        - store: { addr: $buf + 24, value: $si_pkey }
        - store: { addr: $buf + 32, value: $siginfo - $frame }
        - store: { addr: $buf + 40, value: $ucontext - $frame }
        - longjmp
    ops:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }
        as: buf
      - mmap: { len: PAGE_SIZE, prot: PROT_NONE, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }
        as: none
      - load: $none + 8
        expect: { signal: SIGSEGV, si_code: SEGV_ACCERR, si_addr: $none + 8 }
expect:
  memory:
    - { thread: p, addr: $buf, value: 11 }
    - { thread: p, addr: $buf + 8, value: 2 }
    - { thread: p, addr: $buf + 16, value: $none + 8 }
    - { thread: p, addr: $buf + 24, value: 0 }
    - { thread: p, addr: $buf + 32, value: 312 }
    - { thread: p, addr: $buf + 40, value: 8 }
`, 12);
});

test('$si_pkey is the key of a SEGV_PKUERR fault', () => {
  held(`name: pkey
machine: { cpu: { pku: true } }
processes:
  - name: p
    handlers:
      SIGSEGV: { handler: seg, flags: SA_SIGINFO }
    functions:
      seg:
        - load: { addr: $siginfo + 32, size: 4 }
          expect: $key
        - store: { addr: $buf, value: $si_pkey }
        - store: { addr: $buf + 8, value: $si_code }
        - longjmp
    ops:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }
        as: buf
      - pkey_alloc: { flags: 0, init_val: PKEY_DISABLE_ACCESS }
        as: key
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }
        as: locked
      - pkey_mprotect: { start: $locked, len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, pkey: $key }
      - load: $locked
        expect: { signal: SIGSEGV, si_code: SEGV_PKUERR, si_pkey: $key }
expect:
  memory:
    - { thread: p, addr: $buf, value: 1 }
    - { thread: p, addr: $buf + 8, value: SEGV_PKUERR }
`, 4);
});

test('the handler names outside a function, and as result names, are errors at their column', () => {
  const main = `processes:
  - name: p
    ops:
      - set: { x: 1 + $signo }
`;
  issueAt(main, '$signo', 'can be read only in a function');
  const expectation = `processes:
  - name: p
    ops:
      - getpid: {}
        expect: $frame
`;
  issueAt(expectation, '$frame', 'can be read only in a function');
  const named = `processes:
  - name: p
    ops:
      - getpid: {}
        as: siginfo
`;
  issueAt(named, 'siginfo', 'a name the kernel sets for a signal handler');
  const set = `processes:
  - name: p
    ops:
      - set: { ucontext: 1 }
`;
  issueAt(set, 'ucontext', 'a name the kernel sets for a signal handler');
});

test("a nested handler's run leaves the interrupted handler's names as they were, on return (rt_sigreturn) and on longjmp, as a C handler's arguments survive it", () => {
  // A C handler's signo, info and ucontext arguments live in its own registers and stack
  // frame, which a nested handler's run (arch/x86/kernel/signal.c handle_signal: a second
  // rt_sigframe below the first) and its rt_sigreturn or siglongjmp leave alone.
  held(`name: nested-names
processes:
  - name: p
    handlers:
      SIGUSR1: { handler: outer, flags: SA_SIGINFO }
      SIGUSR2: { handler: inner, flags: SA_SIGINFO }
      SIGSEGV: { handler: jumper, flags: SA_SIGINFO }
    functions:
      outer:
        - set: { f0: $frame }
        - kill: { pid: 0, sig: SIGUSR2 }
        - store: { addr: $buf, value: $signo }
        - store: { addr: $buf + 8, value: $si_code }
        - store: { addr: $buf + 16, value: $frame - $f0 }
        - load: $none
          expect: { signal: SIGSEGV }
        - store: { addr: $buf + 24, value: $signo }
        - store: { addr: $buf + 32, value: $frame - $f0 }
        - return
      inner:
        - store: { addr: $buf + 40, value: $signo }
        - return
      jumper:
        - store: { addr: $buf + 48, value: $signo }
        - longjmp
    ops:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }
        as: buf
      - mmap: { len: PAGE_SIZE, prot: PROT_NONE, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }
        as: none
      - set: { f0: 0 }
      - kill: { pid: 0, sig: SIGUSR1 }
expect:
  memory:
    - { thread: p, addr: $buf, value: SIGUSR1 }
    - { thread: p, addr: $buf + 8, value: SI_USER }
    - { thread: p, addr: $buf + 16, value: 0 }
    - { thread: p, addr: $buf + 24, value: SIGUSR1 }
    - { thread: p, addr: $buf + 32, value: 0 }
    - { thread: p, addr: $buf + 40, value: SIGUSR2 }
    - { thread: p, addr: $buf + 48, value: SIGSEGV }
`, 8);
});

test('the names the compiler reserves for handlers are the ones the kernel sets (setup_rt_frame) and gives back (rt_sigreturn, longjmp)', () => {
  assert.deepEqual([...HANDLER_NAMES].sort(), [...SIGNAL_HANDLER_NAMES].sort());
});
