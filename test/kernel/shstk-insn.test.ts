/**
 * The shadow-stack instructions user code runs around isolation: INCSSPQ and RSTORSSP (SDM
 * Vol. 2A "INCSSPD/INCSSPQ", Vol. 2B "RSTORSSP", Vol. 1 §17.2 "Shadow Stacks": restore and
 * previous-ssp tokens), on shadow stacks Linux 6.12 makes (arch/x86/kernel/shstk.c:
 * shstk_setup for ARCH_SHSTK_ENABLE; map_shadow_stack with SHADOW_STACK_SET_TOKEN writes the
 * restore token (base + size) | 1 at base + size - 8, create_rstor_token), in the way
 * tools/testing/selftests/x86/test_shadow_stack.c pivots (test_shstk_pivot: RSTORSSP to the
 * new stack's token, whose place then holds the previous-ssp token old SSP | 3). Signals as
 * Linux sends them: #UD → SIGILL ILL_ILLOPN; #GP → SIGSEGV SI_KERNEL; #CP → SIGSEGV SEGV_CPERR
 * with si_addr 0 (do_user_cp_fault); a shadow-stack access to an ordinary page or past the
 * stack → #PF → SIGSEGV.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileScenarioText } from '../../src/scenario/index.js';
import { runScenario } from '../../src/scenario/run.js';

function run(ops: string, expectations: number): void {
  const text = `name: shstk-insn
processes:
  - name: p
    handlers:
      SIGSEGV: { handler: skip }
      SIGILL: { handler: skip }
    functions:
      skip:
        - longjmp
    ops:
${ops}`;
  const r = runScenario(compileScenarioText(text, 'shstk-insn.yaml'));
  const failed = r.verdicts.filter((v) => v.status !== 'held');
  assert.deepEqual(failed, [], 'every expectation holds');
  assert.equal(r.verdicts.length, expectations, 'every expectation was judged');
}

const ENABLE = `      - arch_prctl: { option: ARCH_SHSTK_ENABLE, arg2: ARCH_SHSTK_SHSTK }
        expect: 0
`;

test('without shadow stacks on, INCSSPQ and RSTORSSP are #UD: SIGILL, ILL_ILLOPN', () => {
  run(`      - incssp: 1
        expect: { signal: SIGILL, si_code: ILL_ILLOPN }
      - map_shadow_stack: { addr: 0, size: PAGE_SIZE, flags: SHADOW_STACK_SET_TOKEN }
        as: ss
      - rstorssp: $ss + PAGE_SIZE - 8
        expect: { signal: SIGILL, si_code: ILL_ILLOPN }
`, 2);
});

test('RSTORSSP pivots to a mapped shadow stack: SSP moves to the token, which becomes the previous-ssp token (old SSP | 3); INCSSPQ pops it', () => {
  run(`${ENABLE}      - map_shadow_stack: { addr: 0, size: PAGE_SIZE, flags: SHADOW_STACK_SET_TOKEN }
        as: ss
      - load: $ss + PAGE_SIZE - 8
        expect: $ss + PAGE_SIZE + 1
      - rdssp:
        as: old
      - rstorssp: $ss + PAGE_SIZE - 8
        expect: { success: true }
      - rdssp:
        expect: $ss + PAGE_SIZE - 8
      - load: $ss + PAGE_SIZE - 8
        expect: $old + 3
      - incssp: 1
        expect: { success: true }
      - rdssp:
        expect: $ss + PAGE_SIZE
`, 7);
  // The restore token is (base + size) | 1: the SSP it restores, with L (bit 0) for 64-bit mode.
});

test('RSTORSSP refuses a bad token with #CP (SIGSEGV, SEGV_CPERR, si_addr 0), writing it back unchanged; misaligned is #GP; an ordinary page #PF', () => {
  run(`${ENABLE}      - map_shadow_stack: { addr: 0, size: PAGE_SIZE, flags: SHADOW_STACK_SET_TOKEN }
        as: ss
      - rdssp:
        as: old
      - rstorssp: $ss + PAGE_SIZE - 8
      - rstorssp: $ss + PAGE_SIZE - 8
        expect: { signal: SIGSEGV, si_code: SEGV_CPERR, si_addr: 0 }
      - load: $ss + PAGE_SIZE - 8
        expect: $old + 3
      - rstorssp: $ss + PAGE_SIZE - 16
        expect: { signal: SIGSEGV, si_code: SEGV_CPERR, si_addr: 0 }
      - rstorssp: $ss + PAGE_SIZE - 12
        expect: { signal: SIGSEGV, si_code: SI_KERNEL, si_addr: 0 }
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS }
        as: buf
      - store: { addr: $buf, value: $buf + 9 }
      - rstorssp: $buf
        expect: { signal: SIGSEGV, si_code: SEGV_ACCERR, si_addr: $buf }
`, 6);
  // In order: the second RSTORSSP finds the previous-ssp token (bits 1:0 = 3, not 1); the
  // entry below it, the signal token the first #CP's delivery pushed, has L clear; an address 4 bytes off is #GP(0); the ordinary
  // page holds a well-formed token for itself, but a shadow-stack access to a page that is not
  // a shadow-stack page faults (SDM Vol. 3A §4.6.1).
});

test('INCSSPQ reads the first and the last entry it pops: past the top of a shadow stack it faults; a count uses bits 7:0 only', () => {
  run(`${ENABLE}      - map_shadow_stack: { addr: 0, size: PAGE_SIZE, flags: SHADOW_STACK_SET_TOKEN }
        as: ss
      - rstorssp: $ss + PAGE_SIZE - 8
      - incssp: 0x100
        expect: { success: true }
      - rdssp:
        expect: $ss + PAGE_SIZE - 8
      - incssp: 0
        expect: { success: true }
      - rdssp:
        expect: $ss + PAGE_SIZE - 8
      - incssp: 2
        expect: { signal: SIGSEGV, si_code: SEGV_MAPERR, si_addr: $ss + PAGE_SIZE }
`, 6);
  // incssp 0x100: bits 7:0 are 0, so SSP does not move (it still reads the entry at SSP).
  // incssp 2 reads SSP (the token) and SSP + 8, on the page above the stack: #PF there.
});

test('the #CP of RSTORSSP reaches the handler with error code 4 (CP_RSTRORSSP) and trapno 21 in the signal frame', () => {
  // arch/x86/kernel/cet.c do_user_cp_fault records the error code and X86_TRAP_CP; the frame's
  // err is at $rsp + 200, trapno at $rsp + 208 (sigframe.test.ts).
  const text = `name: shstk-cp-code
processes:
  - name: p
    handlers:
      SIGSEGV: { handler: cp }
    functions:
      cp:
        - load: $rsp + 200
          as: f
        - store: { addr: $buf, value: $f }
        - load: $rsp + 208
          as: f
        - store: { addr: $buf + 8, value: $f }
        - longjmp
    ops:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS }
        as: buf
      - set: { f: 0 }
${ENABLE}      - map_shadow_stack: { addr: 0, size: PAGE_SIZE, flags: SHADOW_STACK_SET_TOKEN }
        as: ss
      - rstorssp: $ss + PAGE_SIZE - 8
      - rstorssp: $ss + PAGE_SIZE - 8
        expect: { signal: SIGSEGV, si_code: SEGV_CPERR }
      - load: $buf
        expect: 4
      - load: $buf + 8
        expect: 21
`;
  const r = runScenario(compileScenarioText(text, 'shstk-cp-code.yaml'));
  assert.deepEqual(r.verdicts.filter((v) => v.status !== 'held'), []);
  assert.equal(r.verdicts.length, 4);
});

test('SAVEPREVSSP after RSTORSSP leaves a restore token on the old shadow stack, so RSTORSSP can pivot back (test_shstk_pivot\'s round trip)', () => {
  run(`      - saveprevssp:
        expect: { signal: SIGILL, si_code: ILL_ILLOPN }
${ENABLE}      - map_shadow_stack: { addr: 0, size: PAGE_SIZE, flags: SHADOW_STACK_SET_TOKEN }
        as: ss
      - rdssp:
        as: old
      - rstorssp: $ss + PAGE_SIZE - 8
      - saveprevssp:
        expect: { success: true }
      - rdssp:
        expect: $ss + PAGE_SIZE
      - load: $old - 8
        expect: $old + 1
      - rstorssp: $old - 8
        expect: { success: true }
      - load: $old - 8
        expect: $ss + PAGE_SIZE + 3
      - incssp: 1
      - rdssp:
        expect: $old
`, 8);
  // SAVEPREVSSP pops the previous-ssp token (old | 3) and writes the restore token old | 1 at
  // old - 8; RSTORSSP there turns it into the previous-ssp token of the mapped stack's SSP.
});

test('SAVEPREVSSP without a previous-ssp token on top (bit 1 clear: a return address) is #GP: SIGSEGV, SI_KERNEL', () => {
  const text = `name: saveprevssp-gp
processes:
  - name: p
    functions:
      f:
        - saveprevssp:
          expect: { signal: SIGSEGV, si_code: SI_KERNEL, si_addr: 0 }
    ops:
${ENABLE}      - call: '@f'
expect:
  exit: { p: SIGSEGV }
`;
  const r = runScenario(compileScenarioText(text, 'saveprevssp-gp.yaml'));
  assert.deepEqual(r.verdicts.filter((v) => v.status !== 'held'), []);
  assert.equal(r.verdicts.length, 3);
});
