/**
 * rt_sigreturn's CS and SS (arch/x86/kernel/signal_64.c restore_sigcontext, 6.12): the frame's
 * cs and ss come back with RPL 3 (`| 3`); without UC_STRICT_RESTORE_SS in uc_flags a bad SS
 * becomes __USER_DS (force_valid_ss); the return is by IRET (not SYSRET: pt_regs' cs or ss
 * differ), whose checks (SDM Vol. 2 IRET) fail into the bad-IRET fixup (entry_64.S
 * error_entry, traps.c fixup_bad_iret): the fault is taken as if from user mode, with the bad
 * cs and ss in the new signal's frame. #GP is SIGSEGV with SI_KERNEL, #NP SIGBUS with
 * SI_KERNEL; an SS from the LDT returns through ESPFIX64, where the fault becomes a double
 * fault that exc_double_fault turns into #GP(0) (the error code lost).
 *
 * Host-checked: /tmp/segchk/sr.c on x86-64 Linux 6.18 (an Intel CPU), a SIGUSR1 handler
 * editing its frame's cs or ss (and uc_flags), then the SIGSEGV/SIGBUS handler's si_code,
 * trapno, err and frame cs/ss, or the SS after the return. LDT: 0 data RW (0x07), 2 data RW
 * not present (0x17), 4 data RO (0x27), 6 conforming code not present (0x37). The IRET
 * returns to the load after the kill; the signal comes first, and the handler (which saves
 * the signal number and si_code too) longjmps past that load.
 */
import { test } from 'node:test';
import { runHolding } from './helpers.js';

/** [entry, flags word] of the host's LDT entries (limit 0xfffff in pages, useable, 32-bit). */
const LDT: [number, number][] = [[0, 0x51], [2, 0x71], [4, 0x59], [6, 0x77]];
const SETUP = LDT.map(([n, flags]) => `
      - store: { addr: $buf, value: ${n} }
      - store: { addr: $buf + 8, value: ${0xfffff + flags * 2 ** 32} }
      - modify_ldt: { func: 0x11, ptr: $buf, bytecount: 16 }
        expect: 0`).join('');

/** The frame offsets at the SIGUSR1 handler's $rsp: uc_flags 8, cs 192, ss 198. */
function scenario(edit: string, after: string): string {
  return `name: sigreturn-segments
processes:
  - name: p
    handlers:
      SIGUSR1: { handler: usr }
      SIGSEGV: { handler: fault }
      SIGBUS: { handler: fault }
    functions:
      usr:${edit}
        - return
      fault:
        - load: $rsp + 208
          as: f
        - store: { addr: $buf + 16, value: $f }
        - load: $rsp + 200
          as: f
        - store: { addr: $buf + 24, value: $f }
        - load: { addr: $rsp + 192, size: 2 }
          as: f
        - store: { addr: $buf + 32, value: $f }
        - load: { addr: $rsp + 198, size: 2 }
          as: f
        - store: { addr: $buf + 40, value: $f }
        - store: { addr: $buf + 48, value: $signo }
        - store: { addr: $buf + 56, value: $si_code }
        - longjmp
    ops:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS }
        as: buf
      - set: { f: 0 }${SETUP}${after}
`;
}

function run(text: string): void {
  runHolding(text, 'sigreturn-segments.yaml');
}

const setSs = (ss: number, strict = true): string => `
        - store: { addr: $rsp + 198, value: ${ss}, size: 2 }${strict ? '' : `
        - store: { addr: $rsp + 8, value: 3 }`}`;
const setCs = (cs: number): string => `
        - store: { addr: $rsp + 192, value: ${cs}, size: 2 }`;

/** The host's outcomes: the frame edit, and then no signal with SS as given, or [signal, trapno, err, frame cs, frame ss]. */
const CASES: [string, string, number | [string, number, number, number, number]][] = [
  ['ss 0x07', setSs(0x07), 0x07],
  ['ss 0x04 (RPL forced to 3)', setSs(0x04), 0x07],
  ['ss 0x17 (not present, LDT: ESPFIX64 #GP(0)), strict', setSs(0x17), ['SIGSEGV', 13, 0, 0x33, 0x17]],
  ['ss 0x17, not strict (force_valid_ss)', setSs(0x17, false), 0x2b],
  ['ss 0x18 (kernel DS, DPL 0)', setSs(0x18), ['SIGSEGV', 13, 0x18, 0x33, 0x1b]],
  ['ss 0x27 (read-only data, LDT), strict', setSs(0x27), ['SIGSEGV', 13, 0, 0x33, 0x27]],
  ['ss 0x27, not strict', setSs(0x27, false), 0x2b],
  ['ss 0x80 (past the GDT)', setSs(0x80), ['SIGSEGV', 13, 0x80, 0x33, 0x83]],
  ['cs 0x2b (data)', setCs(0x2b), ['SIGSEGV', 13, 0x28, 0x2b, 0x2b]],
  ['cs 0x10 (kernel CS, DPL 0)', setCs(0x10), ['SIGSEGV', 13, 0x10, 0x13, 0x2b]],
  ['cs 0x37 (conforming, not present)', setCs(0x37), ['SIGBUS', 11, 0x34, 0x37, 0x2b]],
];

for (const [name, edit, out] of CASES) {
  test(`rt_sigreturn with ${name} (host)`, () => {
    const after = typeof out === 'number'
      ? `
      - kill: { pid: 0, sig: SIGUSR1 }
      - read_sreg: ss
        expect: ${out}`
      : `
      - kill: { pid: 0, sig: SIGUSR1 }
        expect: 0
      - load: $buf
      - load: $buf + 48
        expect: ${out[0]}
      - load: $buf + 56
        expect: SI_KERNEL
      - load: $buf + 16
        expect: ${out[1]}
      - load: $buf + 24
        expect: ${out[2]}
      - load: $buf + 32
        expect: ${out[3]}
      - load: $buf + 40
        expect: ${out[4]}`;
    run(scenario(edit, after));
  });
}

test('rt_sigreturn that fails on the FPU state has already restored the mask and the registers: the SIGSEGV it gets is delivered from the interrupted operation, nothing blocked', () => {
  // signal_64.c rt_sigreturn (6.12): set_current_blocked, restore_altstack, then
  // restore_sigcontext puts ip, sp, cs and ss back before fpu__restore_sig, whose failure
  // (fpstate pointing at an unmapped page) is badframe: signal_fault's force_sig(SIGSEGV) is
  // delivered from the restored registers with the restored mask (SIGUSR1, blocked while its
  // handler ran, no longer is). The SIGSEGV frame's rip (+176) is the kill's, as the SIGUSR1
  // frame had it, and its uc_sigmask (+304) is 0.
  run(`name: sigreturn-badframe
kernel: { debug_vm: true }
processes:
  - name: p
    handlers:
      SIGUSR1: { handler: usr }
      SIGSEGV: { handler: seg }
    functions:
      usr:
        - load: $rsp + 176
          as: f
        - store: { addr: $buf + 16, value: $f }
        - store: { addr: $rsp + 232, value: 0x1000 }
        - return
      seg:
        - load: $rsp + 304
          as: f
        - store: { addr: $buf, value: $f }
        - load: $rsp + 176
          as: f
        - store: { addr: $buf + 8, value: $f }
        - longjmp
    ops:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS }
        as: buf
      - set: { f: 0 }
      - store: { addr: $buf, value: 0xff }
      - getpid:
        as: me
      - kill: { pid: $me, sig: SIGUSR1 }
      - getpid   # the operation both signals interrupt; the SIGSEGV handler's longjmp skips it
      - load: $buf
        expect: 0
      - load: $buf + 16
        as: rip
      - load: $buf + 8
        expect: $rip
expect:
  exit: { p: 0 }
`);
});
