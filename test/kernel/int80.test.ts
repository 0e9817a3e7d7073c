/**
 * INT 0x80 from 64-bit code (arch/x86/kernel/idt.c ia32_idt, arch/x86/entry/common.c
 * int80_emulation, arch/x86/entry/syscalls/syscall_32.tbl; 6.12): the DPL 3 gate of vector
 * 0x80, the ia32 table with EAX and the six argument registers truncated to 32 bits, the
 * result sign-extended into RAX, the exit by IRET; with ia32_emulation=0 the gate is an
 * external interrupt's (DPL 0) and INT 0x80 is #GP(0x80 * 8 + 2) -> SIGSEGV.
 *
 * Host-checked (/tmp/int80c/t.c, l.c: x86-64, Linux 6.18 with CONFIG_IA32_EMULATION=y, the same
 * int80_emulation as 6.12): getpid through INT 0x80 is the pid; EAX 9999 and EAX 0xffffffff
 * give -ENOSYS (0xffffffffffffffda); EAX 0x100000014 is getpid (only EAX counts); kill with
 * EBX's register holding 1 << 32 | pid signals pid (0); write from a buffer above 4 GiB is
 * -EFAULT; modify_ldt(5) (-ENOSYS) gives 0xffffffda in RAX (its `(unsigned int)ret`, not sign-extended).
 * The ia32_emulation=0 case is from the source (the host has it on).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { IsolabEvent } from '../../src/system.js';
import { runHolding, runWithEvents, SAVE_FAULT_FRAME } from './helpers.js';

function run(text: string): void {
  runHolding(text, 'int80.yaml');
}

/** A process with a SIGSEGV handler saving trapno and err at $buf+16/+24 (from the frame), then `ops`. */
function scenario(ops: string, kernel = '{}'): string {
  return `name: int80
kernel: ${kernel}
processes:
  - name: p
    handlers:
      SIGSEGV: { handler: fault }
    functions:
${SAVE_FAULT_FRAME}    ops:
      - mmap: { addr: 0x10000, len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED }
        as: buf
      - set: { f: 0 }${ops}
`;
}

for (const pti of ['off', 'on']) {
  test(`INT 0x80 makes 32-bit syscalls: the ia32 numbers, EAX and the arguments truncated to 32 bits, -ENOSYS sign-extended (host, pti ${pti})`, () => {
    run(scenario(`
      - getpid:
        as: pid
      - int80: { nr: getpid }
        expect: $pid
      - int80: { nr: 20 }
        expect: $pid
      - int80: { nr: 0x100000014 }
        expect: $pid
      - int80: { nr: 9999 }
        expect: -38
      - int80: { nr: 0xffffffff }
        expect: { errno: ENOSYS }
      - int80: { nr: 224 }
        expect: $pid
      - int80: { nr: kill, args: [0x100000000 + $pid, 0] }
        expect: 0
      - int80: { nr: modify_ldt, args: [5, 0, 0] }
        expect: 0xffffffda
      - pipe: { fildes: $buf + 32 }
        expect: 0
      - load: { addr: $buf + 36, size: 4 }
        as: wfd
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS }
        as: high
      - int80: { nr: write, args: [$wfd, $high, 3] }
        expect: { errno: EFAULT }
      - int80: { nr: write, args: [$wfd, $buf, 3] }
        expect: 3
      - read_sreg: cs
        expect: 0x33
      - read_sreg: ss
        expect: 0x2b`, `{ pti: ${pti} }`));
  });
}

test('with ia32_emulation false, INT 0x80 from user mode is #GP(0x402): SIGSEGV with SI_KERNEL, trapno 13 (idt.c: vector 0x80 gets a DPL 0 interrupt gate)', () => {
  run(scenario(`
      - int80: { nr: getpid }
        expect: { signal: SIGSEGV, si_code: SI_KERNEL }
      - load: $buf + 16
        expect: 13
      - load: $buf + 24
        expect: 0x402`, '{ ia32_emulation: false }'));
});

test('set_thread_area and get_thread_area are not 64-bit syscalls (syscall_64.tbl 205 and 211 have no entry): -ENOSYS', () => {
  run(scenario(`
      - syscall: { nr: 205, args: [$buf] }
        expect: { errno: ENOSYS }
      - syscall: { nr: 211, args: [$buf] }
        expect: { errno: ENOSYS }`));
});

test('INT 0x80 enters through the IDT and leaves by IRET, where SYSCALL leaves by SYSRET (one more iret, one fewer sysret)', () => {
  const count = (events: IsolabEvent[], what: string): number => events.filter((e) => e.type === 'entry' && (e as { what: string }).what === what).length;
  const a = runWithEvents([{ op: 'syscall', name: 'getpid', into: 'x' }]).events;
  const b = runWithEvents([{ op: 'int80', name: 'getpid', into: 'x' }]).events;
  assert.equal(count(b, 'iret'), count(a, 'iret') + 1);
  assert.equal(count(b, 'sysret'), count(a, 'sysret') - 1);
  assert.ok(b.some((e) => e.type === 'syscall_enter' && (e as { name: string }).name === 'getpid'));
});
