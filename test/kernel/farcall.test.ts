/**
 * Far CALL, JMP and RET in IA-32e mode (SDM Vol. 2A CALL, JMP, RET, far, protected mode and
 * IA-32e mode) over Linux 6.12's GDT and an LDT from modify_ldt, and compatibility mode after
 * a far transfer to a 32-bit code segment (__USER32_CS 0x23): 32-bit effective addresses,
 * 4-byte near CALL/RET slots at ESP, SYSCALL #UD (Intel), INT 0x80 working, CS 0x23 kept
 * across the IRET back. Linux's signals: #GP -> SIGSEGV SI_KERNEL, #NP -> SIGBUS SI_KERNEL
 * (traps.c), trapno and err in the frame.
 *
 * Host-checked (/tmp/int80c/f.c, non-PIE so the code is below 4 GiB; x86-64 GenuineIntel,
 * Linux 6.18): REX.W LCALL through each selector below, with the same four LDT entries
 * (0: 32-bit code; 1: code, not present; 2: conforming code, not present; 3: 32-bit code,
 * limit 0x100); LCALL m16:32 from 64-bit code to 0x23 running INT 0x80 getpid and reading CS
 * (0x23), and SYSCALL there (SIGILL, ILL_ILLOPN, trapno 6).
 */
import { test } from 'node:test';
import { runHolding, SAVE_FAULT_FRAME } from './helpers.js';

function run(text: string): void {
  runHolding(text, 'farcall.yaml');
}

/** user_desc words for LDT entry n: [entry | base << 32, limit | flags << 32]. flags: seg_32bit 1 | contents << 1 | limit_in_pages << 4 | seg_not_present << 5 | useable << 6. */
const LDT: [number, number, number][] = [
  [0, 0xfffff, 0x1 | (2 << 1) | 0x10 | 0x40],
  [1, 0xfffff, 0x1 | (2 << 1) | 0x10 | 0x20 | 0x40],
  [2, 0xfffff, 0x1 | (3 << 1) | 0x10 | 0x20 | 0x40],
  [3, 0x100, 0x1 | (2 << 1) | 0x40],
];
const SETUP_LDT = LDT.map(([n, limit, flags]) => `
      - store: { addr: $buf, value: ${n} }
      - store: { addr: $buf + 8, value: ${limit + flags * 2 ** 32} }
      - modify_ldt: { func: 0x11, ptr: $buf, bytecount: 16 }
        expect: 0`).join('');

/** Host: REX.W LCALL to @target64 (which does RETFQ) through each selector: 0 (returned) or [signal, trapno, err]. */
const CALLS: [number, [string, number, number] | 0][] = [
  [0x33, 0],
  [0x30, 0], // RPL 0 <= CPL, DPL 3 = CPL: CS is loaded with RPL 3
  [0x00, ['SIGSEGV', 13, 0]],
  [0x03, ['SIGSEGV', 13, 0]],
  [0x2b, ['SIGSEGV', 13, 0x28]], // data
  [0x10, ['SIGSEGV', 13, 0x10]], // __KERNEL_CS: DPL 0
  [0x08, ['SIGSEGV', 13, 0x08]],
  [0x80, ['SIGSEGV', 13, 0x80]], // past the GDT
  [0x7b, ['SIGSEGV', 13, 0x78]], // CPUNODE: data
  [0x40, ['SIGSEGV', 13, 0x40]], // TSS: a system descriptor
  [0x63, ['SIGSEGV', 13, 0x60]], // empty TLS entry
  [0x0f, ['SIGBUS', 11, 0x0c]], // LDT code, not present
  [0x0c, ['SIGBUS', 11, 0x0c]],
  [0x17, ['SIGBUS', 11, 0x14]], // conforming, not present
  [0x27, ['SIGSEGV', 13, 0x24]], // past the LDT
];

function scenario(ops: string, kernel = '{}'): string {
  return `name: farcall
kernel: ${kernel}
processes:
  - name: p
    handlers:
      SIGSEGV: { handler: fault }
      SIGBUS: { handler: fault }
      SIGILL: { handler: fault }
      SIGUSR1: { handler: usr }
    functions:
      usr:
        - read_sreg: cs
          as: hc
        - store: { addr: $buf + 64, value: $hc }
        - load: { addr: $rsp + 192, size: 2 }
          as: fcs
        - store: { addr: $buf + 72, value: $fcs }
        - return
      sig32:
        - int80: { nr: getpid }
          as: me
        - int80: { nr: kill, args: [$me, SIGUSR1] }
        - read_sreg: cs
          as: c
        - store: { addr: $buf + 80, value: $c }
        - lret: 4
${SAVE_FAULT_FRAME}      target64:
        - store: { addr: $buf + 56, value: 1 }
        - lret
      code32:
        - read_sreg: cs
          as: cs32
        - store: { addr: $buf + 48, value: $cs32, size: 4 }
        - int80: { nr: getpid }
          as: pid32
        - store: { addr: $buf + 32, value: $pid32, size: 4 }
        - store: { addr: $buf + 0x100000040, value: 7, size: 4 }
        - call: '@near32'
        - lret
      near32:
        - store: { addr: $buf + 56, value: 2 }
        - return
      sys32:
        - getpid:
        - lret: 4
      j32:
        - read_sreg: cs
          as: c
        - store: { addr: $buf + 48, value: $c, size: 4 }
        - ljmp: { sel: 0x33, addr: '@j64' }
      j64:
        - read_sreg: cs
          as: c
        - store: { addr: $buf + 56, value: $c }
        - lret: 4
    ops:
      - mmap: { addr: 0x10000, len: 4 * PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED }
        as: buf
      - set: { f: 0 }${SETUP_LDT}${ops}
`;
}

for (const pti of ['off', 'on']) {
  test(`far CALL through GDT and LDT selectors: the host's calls, #GP and #NP with their signals, trapno and err (pti ${pti})`, () => {
    const ops = CALLS.map(([sel, out]) => (out === 0
      ? `
      - store: { addr: $buf + 56, value: 0 }
      - lcall: { sel: ${sel}, addr: '@target64' }
        expect: { success: true }
      - load: $buf + 56
        expect: 1
      - read_sreg: cs
        expect: 0x33`
      : `
      - lcall: { sel: ${sel}, addr: '@target64' }
        expect: { signal: ${out[0]}, si_code: SI_KERNEL }
      - load: $buf + 16
        expect: ${out[1]}
      - load: $buf + 24
        expect: ${out[2]}
      - read_sreg: cs
        expect: 0x33`)).join('');
    run(scenario(ops, `{ pti: ${pti} }`));
  });
}

test('LCALL m16:32 to 0x23 runs 32-bit code: CS 0x23, INT 0x80 works, addresses are 32 bits, near CALL/RET use 4-byte slots at ESP; LRET (4) goes back to 64-bit mode (host)', () => {
  run(scenario(`
      - getpid:
        as: pid
      - set: { rsp: $buf + 4 * PAGE_SIZE }
      - lcall: { sel: 0x23, addr: '@code32', size: 4 }
        expect: { success: true }
      - load: { addr: $buf + 48, size: 4 }
        expect: 0x23
      - load: { addr: $buf + 32, size: 4 }
        expect: $pid
      - load: { addr: $buf + 0x40, size: 4 }
        expect: 7
      - load: $buf + 56
        expect: 2
      - read_sreg: cs
        expect: 0x33
      - load: { addr: $buf + 4 * PAGE_SIZE - 4, size: 4 }
        expect: 0x33
        note: the CS LCALL pushed, 4 bytes, above the return EIP`));
});

test('SYSCALL in compatibility mode is #UD on Intel: SIGILL (the host gave ILL_ILLOPN), trapno 6, err 0 (host)', () => {
  run(scenario(`
      - set: { rsp: $buf + 4 * PAGE_SIZE }
      - lcall: { sel: 0x23, addr: '@sys32', size: 4 }
      - load: $buf + 16
        expect: 6
      - load: $buf + 24
        expect: 0`));
});

test('a far JMP to a 32-bit LDT code segment with the ip past its limit is #GP(0) (host); LJMP 0x33 from compatibility mode goes back to 64-bit mode', () => {
  run(scenario(`
      - ljmp: { sel: 0x1f, addr: 0x101 }
        expect: { signal: SIGSEGV, si_code: SI_KERNEL }
      - load: $buf + 16
        expect: 13
      - load: $buf + 24
        expect: 0
      - set: { rsp: $buf + 4 * PAGE_SIZE }
      - lcall: { sel: 0x0f - 8, addr: '@j32', size: 4 }
        expect: { success: true }
      - load: $buf + 56
        expect: 0x33
      - load: { addr: $buf + 48, size: 4 }
        expect: 0x07`));
});

test('a signal taken in compatibility mode: the handler runs with CS 0x33, the frame holds cs 0x23, and rt_sigreturn\'s IRET goes back to 0x23 (restore_sigcontext)', () => {
  run(scenario(`
      - set: { rsp: $buf + 4 * PAGE_SIZE }
      - lcall: { sel: 0x23, addr: '@sig32', size: 4 }
        expect: { success: true }
      - load: $buf + 64
        expect: 0x33
      - load: $buf + 72
        expect: 0x23
      - load: $buf + 80
        expect: 0x23
      - read_sreg: cs
        expect: 0x33`));
});
