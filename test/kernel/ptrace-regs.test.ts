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
