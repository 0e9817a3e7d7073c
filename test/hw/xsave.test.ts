/**
 * XSAVE, XSAVEC, XRSTOR and the scenario operations cpuid and xgetbv, run by user programs on
 * the booted model (scenario text: compileScenarioText + runScenario). Expected values are the
 * SDM's: Vol. 1 §13.4 (the area: legacy region, header at 512, PKRU at 2688 in the standard
 * form, 576 onward in the compacted form), §13.7 XSAVE (XSTATE_BV read-modify-written, XCOMP_BV
 * and bytes 464..511 untouched), §13.10 XSAVEC (XSTATE_BV = RFBM AND XINUSE, XCOMP_BV = RFBM |
 * bit 63), §13.8 XRSTOR (init when XSTATE_BV[i] = 0; #GP rules from Vol. 2's "XRSTOR"
 * exceptions list), and the signals Linux 6.12 sends: #UD → SIGILL ILL_ILLOPN
 * (do_error_trap), #GP → SIGSEGV SI_KERNEL with si_addr 0 (exc_general_protection), #PF on a
 * key's page → SIGSEGV SEGV_PKUERR with si_pkey. Host-checked (x86-64, 6.18): XSAVE writes FCW
 * 037FH, MXCSR 1F80H and MXCSR_MASK 0000FFFFH for the init state, leaves XCOMP_BV and the bits of
 * XSTATE_BV outside RFBM as they were; XSAVEC of x87|SSE writes XCOMP_BV 8000000000000003H.
 */
import { test } from 'node:test';
import { runHolding } from '../kernel/helpers.js';

/** A process with a 2-page buffer $buf (and $end = $buf + PAGE_SIZE), SIGSEGV and SIGILL handlers that longjmp past the faulting operation, then `ops`. */
function scenario(ops: string, config = ''): string {
  return `name: xsave
${config}processes:
  - name: p
    handlers:
      SIGSEGV: { handler: skip }
      SIGILL: { handler: skip }
    functions:
      skip:
        - longjmp
    ops:
      - mmap: { len: 2 * PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS }
        as: buf
${ops}`;
}

function run(text: string, expectations: number): void {
  runHolding(text, 'xsave.yaml', expectations);
}

/** `store -1` at each offset of $buf. */
const fill = (...offsets: number[]): string => offsets.map((o) => `      - store: { addr: $buf + ${o}, value: -1 }\n`).join('');
const expectAt = (offset: number, value: string, size = 8): string => `      - load: { addr: $buf + ${offset}, size: ${size} }\n        expect: ${value}\n`;

test('XSAVE (standard form): the init x87/SSE image, PKRU at 2688, XSTATE_BV read-modify-written, XCOMP_BV and bytes 464..511 untouched', () => {
  run(scenario(`${fill(0, 464, 504, 512, 520, 528)}      - wrpkru: 0x55555554
      - xsave: { addr: $buf }
        expect: { success: true }
${expectAt(0, '0x037f', 2)}${expectAt(2, '0', 2)}${expectAt(4, '0', 1)}${expectAt(24, '0x1f80', 4)}${expectAt(28, '0xffff', 4)}${expectAt(464, '-1')}${expectAt(504, '-1')}${expectAt(512, '0xfffffffffffffffc')}${expectAt(520, '-1')}${expectAt(528, '-1')}${expectAt(2688, '0x55555554')}      - wrpkru: 0
      - xsave: { addr: $buf, mask: 0x200 }
${expectAt(512, '0xfffffffffffffdfc')}${expectAt(2688, '0')}      - store: { addr: $buf + 512, value: 0 }
      - wrpkru: 4
      - xsave: { addr: $buf, mask: 0x3 }
${expectAt(512, '0')}${expectAt(2688, '0')}`), 16);
  // XSTATE_BV: (-1 AND NOT 0x203) OR (XINUSE AND RFBM) = ...fdfc | 0x200 (PKRU in use); then
  // with PKRU 0 (init) and RFBM = 0x200 the bit is cleared; with RFBM = 0x3 PKRU is not saved.
});

test('XSAVEC (compacted form): XSTATE_BV = RFBM AND XINUSE, XCOMP_BV = RFBM | bit 63, PKRU at 576 only when in use, the legacy region untouched', () => {
  run(scenario(`${fill(0, 24, 512, 520, 528, 576)}      - wrpkru: 0x55555554
      - xsavec: { addr: $buf }
        expect: { success: true }
${expectAt(512, '0x200')}${expectAt(520, '0x8000000000000203')}${expectAt(576, '0x55555554')}${expectAt(0, '-1')}${expectAt(24, '-1')}${expectAt(528, '-1')}${fill(576)}      - wrpkru: 0
      - xsavec: { addr: $buf }
${expectAt(512, '0')}${expectAt(520, '0x8000000000000203')}${expectAt(576, '-1')}      - xsavec: { addr: $buf, mask: 3 }
${expectAt(520, '0x8000000000000003')}`), 11);
});

test('XRSTOR: PKRU from the area (standard and compacted forms), its init value 0 when XSTATE_BV[9] = 0, untouched when RFBM[9] = 0', () => {
  run(scenario(`      - store: { addr: $buf + 512, value: 0x200 }
      - store: { addr: $buf + 2688, value: 0x0c }
      - xrstor: { addr: $buf }
        expect: { success: true }
      - rdpkru:
        expect: 0x0c
      - store: { addr: $buf + 2688, value: 0x30 }
      - xrstor: { addr: $buf, mask: 3 }
      - rdpkru:
        expect: 0x0c
      - store: { addr: $buf + 512, value: 0 }
      - xrstor: { addr: $buf }
      - rdpkru:
        expect: 0
      - store: { addr: $buf + 512, value: 0x200 }
      - store: { addr: $buf + 520, value: 0x8000000000000200 }
      - store: { addr: $buf + 576, value: 0x14 }
      - xrstor: { addr: $buf, mask: -1 }
        expect: { success: true }
      - rdpkru:
        expect: 0x14
      - store: { addr: $buf + 520, value: 0x8000000000000203 }
      - store: { addr: $buf + 512, value: 0 }
      - xrstor: { addr: $buf }
      - rdpkru:
        expect: 0
`), 7);
});

test('XRSTOR of PKRU is obeyed by the next access, as after WRPKRU: access-disable of the page\'s key gives SEGV_PKUERR', () => {
  run(scenario(`      - pkey_alloc: { flags: 0, init_val: 0 }
        as: key
        expect: 1
      - pkey_mprotect: { start: $buf + PAGE_SIZE, len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, pkey: $key }
        expect: 0
      - store: { addr: $buf + PAGE_SIZE, value: 7 }
      - store: { addr: $buf + 512, value: 0x200 }
      - store: { addr: $buf + 2688, value: 0x4 }
      - xrstor: { addr: $buf }
      - load: $buf + PAGE_SIZE + 8
        expect: { signal: SIGSEGV, si_code: SEGV_PKUERR, si_pkey: $key }
      - store: { addr: $buf + 512, value: 0 }
      - xrstor: { addr: $buf }
      - load: $buf + PAGE_SIZE
        expect: 7
`), 4);
  // Key 1's AD is PKRU bit 2 (SDM Vol. 3A §4.6.2: AD of key i is bit 2i).
});

test('XSAVE to a page whose key is write-disabled faults with PK (SEGV_PKUERR), writing nothing; XRSTOR reads it', () => {
  // The area's second page (PKRU at 2688 is there) has a write-disabled key; the first does not.
  // The fault is at the first byte XSAVE touches there, PKRU's.
  run(scenario(`      - pkey_alloc: { flags: 0, init_val: PKEY_DISABLE_WRITE }
        as: key
      - pkey_mprotect: { start: $buf + PAGE_SIZE, len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, pkey: $key }
        expect: 0
      - set: { area: $buf + PAGE_SIZE - 1024 }
      - store: { addr: $area + 512, value: -1 }
      - xsave: { addr: $area }
        expect: { signal: SIGSEGV, si_code: SEGV_PKUERR, si_pkey: $key, si_addr: $area + 2688 }
      - load: $area + 512
        expect: -1
      - wrpkru: 0x8
      - xsave: { addr: $area, mask: 3 }
        expect: { success: true }
      - store: { addr: $area + 512, value: 0x200 }
      - xrstor: { addr: $area }
        expect: { success: true }
      - rdpkru:
        expect: 0
`), 6);
  // The SIGSEGV handler ran with Linux's init_pkru_value (every key but 0 access-disabled) and
  // siglongjmp does not restore PKRU, so the program writes key 1's WD (bit 3) back itself.
});

test('the bytes an area\'s instruction touches: [0, 576) and PKRU (at 2688, or 576 compacted when in use); a page fault at the first byte it touches on a missing page', () => {
  // $buf's second page unmapped: an area 576 bytes before its end fits x87|SSE but not PKRU.
  // PKRU starts as Linux's init_pkru_value (in use); XSAVEC skips it once it is 0.
  run(scenario(`      - munmap: { addr: $buf + PAGE_SIZE, len: PAGE_SIZE }
        expect: 0
      - wrpkru: 0
      - xsave: { addr: $buf + PAGE_SIZE - 576, mask: 3 }
        expect: { success: true }
      - xsavec: { addr: $buf + PAGE_SIZE - 576 }
        expect: { success: true }
      - xsave: { addr: $buf + PAGE_SIZE - 576 }
        expect: { signal: SIGSEGV, si_code: SEGV_MAPERR, si_addr: $buf + PAGE_SIZE - 576 + 2688 }
      - wrpkru: 4
      - xsavec: { addr: $buf + PAGE_SIZE - 576 }
        expect: { signal: SIGSEGV, si_code: SEGV_MAPERR, si_addr: $buf + PAGE_SIZE }
`), 5);
  // With nopku XCR0 has no PKRU: the same XSAVE fits.
  run(scenario(`      - munmap: { addr: $buf + PAGE_SIZE, len: PAGE_SIZE }
      - xsave: { addr: $buf + PAGE_SIZE - 576 }
        expect: { success: true }
      - xgetbv: 0
        expect: 3
`, 'kernel: { nopku: true }\n'), 2);
});

test('#GP (SIGSEGV, SI_KERNEL, si_addr 0): a misaligned area; XRSTOR of a bad header', () => {
  const gp = `        expect: { signal: SIGSEGV, si_code: SI_KERNEL, si_addr: 0 }\n`;
  const hdr = (bv: string, comp: string, extra = ''): string => `      - store: { addr: $buf + 512, value: ${bv} }
      - store: { addr: $buf + 520, value: ${comp} }
${extra}`;
  run(scenario(`      - xsave: { addr: $buf + 32 }
${gp}      - xsavec: { addr: $buf + 8 }
${gp}      - xrstor: { addr: $buf + 0x7f0 }
${gp}${hdr('4', '0')}      - xrstor: { addr: $buf }
${gp}${hdr('0', '1')}      - xrstor: { addr: $buf }
${gp}${hdr('0', '0', '      - store: { addr: $buf + 528, value: 1 }\n')}      - xrstor: { addr: $buf }
${gp}${hdr('0x200', '0', '      - store: { addr: $buf + 528, value: 0 }\n      - store: { addr: $buf + 536, value: 1 }\n')}      - xrstor: { addr: $buf }
        expect: { success: true }
${hdr('0x200', '0x8000000000000200')}      - xrstor: { addr: $buf }
${gp}      - store: { addr: $buf + 536, value: 0 }
${hdr('0x200', '0x8000000000000003')}      - xrstor: { addr: $buf }
${gp}${hdr('0', '0x8000000000000004')}      - xrstor: { addr: $buf }
${gp}${hdr('0', '0')}      - store: { addr: $buf + 24, value: 0x10000, size: 4 }
      - xrstor: { addr: $buf }
${gp}      - xrstor: { addr: $buf, mask: 0x200 }
        expect: { success: true }
`), 12);
  // In order: misaligned XSAVE, XSAVEC, XRSTOR; standard form with XSTATE_BV[2] (AVX, not in
  // XCR0); with XCOMP_BV != 0 (bytes 8..23); with bytes 16..23 != 0; bytes 24..63 are not
  // checked in the standard form; the compacted form checks bytes 16..63; an XSTATE_BV bit
  // outside XCOMP_BV; an XCOMP_BV bit outside XCR0; an MXCSR with a reserved bit (bit 16, outside
  // MXCSR_MASK FFFFH) when RFBM[1] = 1; not loaded when RFBM[2:1] = 0.
});

test('without the XSAVE feature, XSAVE, XRSTOR and XGETBV are #UD: SIGILL with ILL_ILLOPN', () => {
  const ud = `        expect: { signal: SIGILL, si_code: ILL_ILLOPN }\n`;
  run(scenario(`      - xsave: { addr: $buf }
${ud}      - xsavec: { addr: $buf }
${ud}      - xrstor: { addr: $buf }
${ud}      - xgetbv: 0
${ud}      - cpuid: 1
        as: c
      - store: { addr: $buf, value: $c_ecx }
${expectAt(0, String(1 << 17), 4)}`, 'machine: { cpu: { xsave: false, pku: false, shstk: false } }\n'), 5);
  // Leaf 1 ECX: PCID (17) alone, no XSAVE (26) or OSXSAVE (27).
});

test('cpuid and xgetbv as operations: the four registers as $NAME_eax.. $NAME_edx, XCR0 and XINUSE', () => {
  // PKRU starts as init_pkru_value (0x55555554, in use: XINUSE[9] = 1) until the program writes 0.
  run(scenario(`      - cpuid: { leaf: 7, subleaf: 0 }
        as: c
      - store: { addr: $buf, value: $c_ecx }
${expectAt(0, String((1 << 3) | (1 << 4) | (1 << 7)))}      - cpuid: 0
        as: v
      - store: { addr: $buf, value: $v_ebx }
${expectAt(0, '0x756e6547')}      - cpuid: { leaf: 0xd, subleaf: 9 }
        as: p
      - store: { addr: $buf, value: $p_ebx }
${expectAt(0, '2688')}      - xgetbv: 0
        as: xcr0
        expect: 0x203
      - xgetbv: 1
        expect: 0x200
      - wrpkru: 0
      - xgetbv: 1
        expect: 0
      - xgetbv: 2
        expect: { signal: SIGSEGV, si_code: SI_KERNEL }
`), 7);
});

test('the signal frame\'s XSAVE image is what XSAVE writes: FCW and MXCSR init values, XSTATE_BV with PKRU forced, the interrupted PKRU at 2688', () => {
  // arch/x86/kernel/fpu/signal.c (6.12): xsave_to_user_sigframe clears the header and XSAVEs the
  // user features; update_pkru_in_sigframe writes the interrupted PKRU and sets XSTATE_BV[PKRU].
  // The handler copies fpstate (at $rsp + 232) fields to $buf: FCW, MXCSR, XSTATE_BV, PKRU.
  run(`name: sigframe-xsave
processes:
  - name: p
    handlers:
      SIGUSR1: { handler: usr }
    functions:
      usr:
        - load: $rsp + 232
          as: fp
        - load: { addr: $fp, size: 2 }
          as: f
        - store: { addr: $buf, value: $f }
        - load: { addr: $fp + 24, size: 4 }
          as: f
        - store: { addr: $buf + 8, value: $f }
        - load: $fp + 512
          as: f
        - store: { addr: $buf + 16, value: $f }
        - load: { addr: $fp + 2688, size: 4 }
          as: f
        - store: { addr: $buf + 24, value: $f }
        - return
    ops:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS }
        as: buf
      - wrpkru: 0x55555550
      - kill: { pid: 0, sig: SIGUSR1 }
${expectAt(0, '0x037f')}${expectAt(8, '0x1f80')}${expectAt(16, '0x200')}${expectAt(24, '0x55555550')}`, 4);
});
