/**
 * The signal frame's FPU image on a CPU without XSAVE (arch/x86/kernel/fpu/signal.c, 6.12:
 * copy_fpstate_to_sigframe -> fxsave_to_user_sigframe and save_xstate_epilog; frame_uc_flags;
 * fpu__alloc_mathframe with fpu__get_fpstate_size; fpu__restore_sig -> __fpu_restore_sig ->
 * fxrstor_from_user_sigframe).
 *
 * Without XSAVE the image is FXSAVE's 512 bytes, 64-byte aligned below the red zone: FCW 037FH,
 * MXCSR 1F80H, MXCSR_MASK FFFFH (the model's x87/SSE state is always the init state); the
 * software bytes at 464 are still written (save_xstate_epilog writes them whenever FXSR is in use,
 * before it looks at use_xsave()): FP_XSTATE_MAGIC1, extended_size 516, xfeatures 0 (the fpstate's
 * user_xfeatures: no default features without XSAVE), xstate_size 512; no FP_XSTATE_MAGIC2 after
 * it; uc_flags without UC_FP_XSTATE (6: UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS). With XSAVE the
 * same fields read MAGIC1, 2700 (the standard-form size with PKRU, 2688 + 8, plus MAGIC2's 4),
 * 0x203, 2696, MAGIC2 at +2696, and uc_flags 7. rt_sigreturn reads the 512-byte image back; an fpstate
 * pointer that does not point at readable memory is SIGSEGV.
 *
 * The frame at the handler's $rsp: uc_flags at 8, sigcontext's fpstate at 48 + 184.
 */
import { test } from 'node:test';
import { runHolding } from './helpers.js';

function run(text: string): void {
  runHolding(text, 'sigframe-fxsave.yaml');
}

/** [offset in the image, size]: FCW, MXCSR, MXCSR_MASK, magic1, extended_size, xfeatures, xstate_size. */
const IMAGE: [number, 2 | 4 | 8][] = [[0, 2], [24, 4], [28, 4], [464, 4], [468, 4], [472, 8], [480, 4]];
const COPY = `
        - load: { addr: $rsp + 8 }
          as: f
        - store: { addr: $buf, value: $f }
        - load: { addr: $rsp + 232 }
          as: fp
        - store: { addr: $buf + 8, value: $fp }` + IMAGE.map(([off, size], i) => `
        - load: { addr: $fp + ${off}, size: ${size} }
          as: f
        - store: { addr: $buf + ${16 + 8 * i}, value: $f }`).join('');

for (const [label, cpu, ucFlags, ext, xfeatures, xsize] of [
  ['without XSAVE: a 512-byte FXSAVE image', '{ xsave: false, pku: false, shstk: false }', 6, 516, 0, 512],
  ['with XSAVE (and PKRU): the XSAVE image', '{}', 7, 2700, 0x203, 2696],
] as const) {
  test(`the frame's FPU image ${label}; rt_sigreturn takes it back`, () => {
    run(`name: fxsave-frame
machine: { cpu: ${cpu} }
processes:
  - name: p
    handlers:
      SIGUSR1: { handler: usr }
    functions:
      usr:${COPY}
        - load: { addr: $fp + ${xsize}, size: 4 }
          as: f
        - store: { addr: $buf + 80, value: $f }
        - return
    ops:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS }
        as: buf
      - set: { f: 0, fp: 0 }
      - kill: { pid: 0, sig: SIGUSR1 }
      - load: $buf
        expect: ${ucFlags}
      - load: $buf + 8
        as: image
      - load: $buf + 16
        expect: 0x37f
      - load: $buf + 24
        expect: 0x1f80
      - load: $buf + 32
        expect: 0xffff
      - load: $buf + 40
        expect: 0x46505853
      - load: $buf + 48
        expect: ${ext}
      - load: $buf + 56
        expect: ${xfeatures}
      - load: $buf + 64
        expect: ${xsize}
      - load: $buf + 80
        expect: ${label.startsWith('without') ? '{ not: 0x46505845 }' : '0x46505845'}
      - gettid
expect:
  exit: { p: 0 }
`);
  });
}

test('without XSAVE, rt_sigreturn with an fpstate pointer at an unmapped address is SIGSEGV', () => {
  run(`name: fxsave-bad-fpstate
machine: { cpu: { xsave: false, pku: false, shstk: false } }
processes:
  - name: p
    handlers:
      SIGUSR1: { handler: usr }
    functions:
      usr:
        - store: { addr: $rsp + 232, value: 0x1000 }
        - return
    ops:
      - kill: { pid: 0, sig: SIGUSR1 }
      - gettid
expect:
  exit: { p: SIGSEGV }
`);
});
