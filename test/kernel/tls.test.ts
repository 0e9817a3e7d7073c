/**
 * set_thread_area and get_thread_area through INT 0x80 (arch/x86/kernel/tls.c, asm/desc.h
 * fill_ldt, LDT_empty, LDT_zero, load_TLS; 6.12): entry -1 takes the first empty TLS entry
 * (12, 13, 14, then -ESRCH), tls_desc_okay refuses 16-bit, code and not-present segments,
 * indexes outside 12..14 are -EINVAL, the user_desc is read (-EFAULT) before anything else
 * and the allocated number written back (-EFAULT sets nothing); get_thread_area gives the
 * entry back as a user_desc. The entries are the thread's: load_TLS puts them into the GDT
 * of the CPU the thread runs on, at each context switch; fork copies them.
 *
 * Host-checked (/tmp/int80c/t.c, z.c, l.c: x86-64, Linux 6.18, whose tls.c is 6.12's): every
 * return value, every user_desc word get_thread_area gave and every LAR below. Not on the
 * host: the context-switch and fork cases, which follow __switch_to's load_TLS and
 * arch_dup_task_struct.
 */
import { test } from 'node:test';
import { runHolding } from './helpers.js';

function run(text: string): void {
  runHolding(text, 'tls.yaml');
}

/** Stores a struct user_desc at $buf + `at`: entry_number, base_addr, limit, the flags word (seg_32bit | contents << 1 | read_exec_only << 3 | limit_in_pages << 4 | seg_not_present << 5 | useable << 6 | lm << 7). */
const desc = (entry: number, base: number, limit: number, flags: number, at = 0): string => `
      - store: { addr: $buf + ${at}, value: ${(BigInt(base) << 32n) | BigInt(entry >>> 0)} }
      - store: { addr: $buf + ${at + 8}, value: ${(BigInt(flags) << 32n) | BigInt(limit)} }`;

/** A process with two pages at 0x10000 (32-bit pointers), then `ops`. */
function scenario(ops: string, kernel = '{}', extra = ''): string {
  return `name: tls
kernel: ${kernel}
processes:
  - name: p
    ops:
      - mmap: { addr: 0x10000, len: 2 * PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED }
        as: buf${ops}${extra}
`;
}

for (const pti of ['off', 'on']) {
  test(`set_thread_area allocates 12, 13, 14, then ESRCH; refuses bad entries and descriptors; get_thread_area reads one back (host, pti ${pti})`, () => {
    const D = [0x1000, 0xfffff, 0x51] as const; // base 0x1000, 4 GiB in pages, seg_32bit | limit_in_pages | useable
    run(scenario(`${[12, 13, 14].map((n) => `${desc(-1, ...D)}
      - int80: { nr: set_thread_area, args: [$buf] }
        expect: 0
      - load: { addr: $buf, size: 4 }
        expect: ${n}`).join('')}${desc(-1, ...D)}
      - int80: { nr: set_thread_area, args: [$buf] }
        expect: { errno: ESRCH }
      - load: { addr: $buf, size: 4 }
        expect: 0xffffffff${desc(11, ...D)}
      - int80: { nr: set_thread_area, args: [$buf] }
        expect: { errno: EINVAL }${desc(12, 0x1000, 0xfffff, 0x50)}
      - int80: { nr: set_thread_area, args: [$buf] }
        expect: { errno: EINVAL }${desc(12, 0x1000, 0xfffff, 0x55)}
      - int80: { nr: set_thread_area, args: [$buf] }
        expect: { errno: EINVAL }${desc(12, 0x1000, 0xfffff, 0x71)}
      - int80: { nr: set_thread_area, args: [$buf] }
        expect: { errno: EINVAL }
      - int80: { nr: set_thread_area, args: [0x1000] }
        expect: { errno: EFAULT }
      - store: { addr: $buf, value: 0 }
      - store: { addr: $buf + 8, value: 0 }
      - store: { addr: $buf, value: 13, size: 4 }
      - int80: { nr: get_thread_area, args: [$buf] }
        expect: 0
      - load: { addr: $buf + 4, size: 4 }
        expect: 0x1000
      - load: { addr: $buf + 8, size: 4 }
        expect: 0xfffff
      - load: { addr: $buf + 12, size: 4 }
        expect: 0x51
      - lar: 0x6b
        expect: 0xdff300
      - store: { addr: $buf, value: 15, size: 4 }
      - int80: { nr: get_thread_area, args: [$buf] }
        expect: { errno: EINVAL }
      - mov_sreg: { sreg: gs, value: 0x6b }
        expect: { success: true }
      - read_sreg: gs
        expect: 0x6b`, `{ pti: ${pti} }`));
  });
}

test('LDT_zero clears an entry whatever lm says; lm of a real descriptor is dropped (fill_ldt: L=0); an empty entry reads back as read_exec_only | seg_not_present (host)', () => {
  run(scenario(`${desc(12, 0, 0, 0x80)}
      - int80: { nr: set_thread_area, args: [$buf] }
        expect: 0${desc(12, 0x2000, 0xfffff, 0x99)}
      - int80: { nr: set_thread_area, args: [$buf] }
        expect: 0
      - store: { addr: $buf + 12, value: 0, size: 4 }
      - int80: { nr: get_thread_area, args: [$buf] }
        expect: 0
      - load: { addr: $buf + 12, size: 4 }
        expect: 0x19
      - load: { addr: $buf + 4, size: 4 }
        expect: 0x2000
      - lar: 0x63
        expect: 0xcff100
      - store: { addr: $buf, value: 13, size: 4 }
      - int80: { nr: get_thread_area, args: [$buf] }
        expect: 0
      - load: { addr: $buf + 12, size: 4 }
        expect: 0x28
      - lar: 0x6b
        expect: -1`));
});

test('an allocation whose number cannot be written back (read-only user_desc) is -EFAULT and sets nothing (host)', () => {
  run(scenario(`${desc(-1, 0x3000, 1, 0x1, 4096)}
      - mprotect: { start: $buf + PAGE_SIZE, len: PAGE_SIZE, prot: PROT_READ }
        expect: 0
      - int80: { nr: set_thread_area, args: [$buf + PAGE_SIZE] }
        expect: { errno: EFAULT }
      - lar: 0x63
        expect: -1`));
});

test('clearing the entry GS holds reloads GS: the load of the now empty entry fails and leaves the null selector (host)', () => {
  run(scenario(`${desc(12, 0, 0xfffff, 0x11)}
      - int80: { nr: set_thread_area, args: [$buf] }
        expect: 0
      - mov_sreg: { sreg: gs, value: 0x63 }
        expect: { success: true }${desc(12, 0, 0, 0)}
      - int80: { nr: set_thread_area, args: [$buf] }
        expect: 0
      - read_sreg: gs
        expect: 0`));
});

test('the TLS entries are the thread\'s: a forked child inherits them, and its change stays its own: once it has exited, its parent on the same CPU finds its own entry again (load_TLS at the switch)', () => {
  run(scenario(`${desc(12, 0, 0xfffff, 0x11)}
      - int80: { nr: set_thread_area, args: [$buf] }
        expect: 0
      - fork:
          name: child
          cpu: 0
          ops:
            - lar: 0x63
              expect: 0xcff300
            - store: { addr: $buf + 16, value: 12 }
            - int80: { nr: set_thread_area, args: [$buf + 16] }
              expect: 0
            - lar: 0x63
              expect: -1
      - wait4: { upid: -1 }
      - lar: 0x63
        expect: 0xcff300`));
});
