/**
 * Segment registers, 64-bit mode (SDM Vol. 2 MOV, LAR, LSL, VERR, VERW; Vol. 3A §3.4-3.5,
 * §5.5-5.8), over the GDT Linux 6.12 builds (arch/x86/kernel/cpu/common.c gdt_page with 6.8's
 * accessed bits, setup_getcpu's CPUNODE entry, the TSS and LDT descriptors: asm/segment.h,
 * desc_defs.h) and LDT entries modify_ldt writes (fill_ldt), and Linux's signals for the
 * faults (arch/x86/kernel/traps.c: #GP -> SIGSEGV SI_KERNEL through exc_general_protection;
 * #NP, #SS -> SIGBUS SI_KERNEL through do_error_trap with si_code 0; trapno and err from
 * thread.trap_nr and .error_code).
 *
 * Host-checked: every expected value below is what /tmp/segchk/chk.c printed on the host
 * (x86-64, Linux 6.18, CPU 0: the same GDT layout and code paths as 6.12) for the same
 * selectors and the same eight LDT entries. Its LDT (modify_ldt 0x11, useable=1, seg_32bit=1
 * unless said): 0 data RW base 0x1000 limit 0xfff (0x07); 1 code RX limit 0xfffff in pages
 * (0x0f); 2 data RW not present (0x17); 3 code X only (0x1f); 4 data RO (0x27); 5 data RW
 * expand-down (0x2f); 6 conforming code, not present (0x37); 7 data RW, seg_32bit=0 (0x3f).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { descLimit, larResult, lslResult, movSregCheck, SREG_DS, SREG_SS, verrResult, verwResult } from '../../src/hw/segment.js';
import { X86_TRAP_GP, X86_TRAP_NP, X86_TRAP_SS } from '../../src/hw/regs.js';
import { runHolding, SAVE_FAULT_FRAME } from './helpers.js';

/** The eight struct user_desc of the host program: [entry, base, limit, flags word (seg_32bit | contents<<1 | read_exec_only<<3 | limit_in_pages<<4 | seg_not_present<<5 | useable<<6)]. */
const LDT_ENTRIES: [number, number, number, number][] = [
  [0, 0x1000, 0xfff, 0x41],
  [1, 0, 0xfffff, 0x55],
  [2, 0, 0xfff, 0x61],
  [3, 0, 0xfff, 0x4d],
  [4, 0, 0xfff, 0x49],
  [5, 0, 0xfff, 0x43],
  [6, 0, 0xfff, 0x67],
  [7, 0, 0xfff, 0x40],
];

/** Operations writing each user_desc at $buf and calling modify_ldt(0x11, $buf, 16). */
const SETUP_LDT = LDT_ENTRIES.map(([n, base, limit, flags]) => `
      - store: { addr: $buf, value: ${n + base * 2 ** 32} }
      - store: { addr: $buf + 8, value: ${limit + flags * 2 ** 32} }
      - modify_ldt: { func: 0x11, ptr: $buf, bytecount: 16 }
        expect: 0`).join('');

/** Host: LAR (access rights or -1), LSL (limit or -1), VERR, VERW of each selector at CPL 3. */
const QUERIES: [number, number, number, number, number][] = [
  [0x0000, -1, -1, 0, 0],
  [0x0003, -1, -1, 0, 0],
  [0x0004, 0x0050f300, 0xfff, 1, 1], // TI=1 index 0: LDT entry 0, not a null selector
  [0x0007, 0x0050f300, 0xfff, 1, 1],
  [0x000f, 0x00dffb00, 0xffffffff, 1, 0],
  [0x0017, 0x00507300, 0xfff, 1, 1], // not present: none of the four checks P
  [0x001f, 0x0050f900, 0xfff, 0, 0], // execute-only code: not readable
  [0x0027, 0x0050f100, 0xfff, 1, 0],
  [0x002f, 0x0050f700, 0xfff, 1, 1],
  [0x0037, 0x00507f00, 0xfff, 1, 0],
  [0x003f, 0x0010f300, 0xfff, 1, 1],
  [0x0047, -1, -1, 0, 0], // LDT entry 8: past the LDT's limit (8 entries)
  [0x1007, -1, -1, 0, 0],
  [0x0005, 0x0050f300, 0xfff, 1, 1], // RPL 1 <= DPL 3
  [0x0008, -1, -1, 0, 0], // __KERNEL32_CS: DPL 0
  [0x0010, -1, -1, 0, 0], // __KERNEL_CS
  [0x0018, -1, -1, 0, 0], // __KERNEL_DS
  [0x0023, 0x00cffb00, 0xffffffff, 1, 0], // __USER32_CS
  [0x0020, 0x00cffb00, 0xffffffff, 1, 0],
  [0x002b, 0x00cff300, 0xffffffff, 1, 1], // __USER_DS
  [0x0028, 0x00cff300, 0xffffffff, 1, 1],
  [0x0033, 0x00affb00, 0xffffffff, 1, 0], // __USER_CS (L=1)
  [0x003b, -1, -1, 0, 0], // entry 7: empty
  [0x0040, -1, -1, 0, 0], // TSS: DPL 0
  [0x0048, -1, -1, 0, 0],
  [0x0050, -1, -1, 0, 0], // LDT descriptor: DPL 0
  [0x0058, -1, -1, 0, 0],
  [0x0063, -1, -1, 0, 0], // TLS entries: empty
  [0x006b, -1, -1, 0, 0],
  [0x0073, -1, -1, 0, 0],
  [0x007b, 0x0040f500, 0, 1, 0], // CPUNODE on CPU 0: limit = cpu | node << 12
  [0x0078, 0x0040f500, 0, 1, 0],
  [0x0080, -1, -1, 0, 0], // entry 16: past the GDT's limit (127)
  [0x0083, -1, -1, 0, 0],
  [0xfffb, -1, -1, 0, 0],
];

/** Host: MOV to DS, then SS, of each selector: 0 (no signal) or [signal, trapno, err]; si_code is SI_KERNEL for every signal. */
const LOADS: [number, [string, number, number] | 0, [string, number, number] | 0][] = [
  [0x0007, 0, 0],
  [0x0004, 0, ['SIGSEGV', 13, 0x4]], // SS: RPL 0 != CPL 3
  [0x000f, 0, ['SIGSEGV', 13, 0xc]], // SS: code
  [0x0017, ['SIGBUS', 11, 0x14], ['SIGBUS', 12, 0x14]], // not present: #NP, #SS
  [0x001f, ['SIGSEGV', 13, 0x1c], ['SIGSEGV', 13, 0x1c]], // execute-only code
  [0x0027, 0, ['SIGSEGV', 13, 0x24]], // read-only data: DS yes, SS no
  [0x0037, ['SIGBUS', 11, 0x34], ['SIGSEGV', 13, 0x34]], // conforming code, not present
  [0x0047, ['SIGSEGV', 13, 0x44], ['SIGSEGV', 13, 0x44]], // past the LDT's limit
  [0x1007, ['SIGSEGV', 13, 0x1004], ['SIGSEGV', 13, 0x1004]],
  [0x0010, ['SIGSEGV', 13, 0x10], ['SIGSEGV', 13, 0x10]], // DPL 0
  [0x0018, ['SIGSEGV', 13, 0x18], ['SIGSEGV', 13, 0x18]],
  [0x002b, 0, 0],
  [0x0028, 0, ['SIGSEGV', 13, 0x28]], // SS: RPL 0 != CPL 3
  [0x0033, 0, ['SIGSEGV', 13, 0x30]],
  [0x0040, ['SIGSEGV', 13, 0x40], ['SIGSEGV', 13, 0x40]], // system descriptors
  [0x0050, ['SIGSEGV', 13, 0x50], ['SIGSEGV', 13, 0x50]],
  [0x0063, ['SIGSEGV', 13, 0x60], ['SIGSEGV', 13, 0x60]], // empty TLS entry
  [0x007b, 0, ['SIGSEGV', 13, 0x78]], // read-only expand-down: DS yes
  [0x0080, ['SIGSEGV', 13, 0x80], ['SIGSEGV', 13, 0x80]], // past the GDT
  [0x0003, 0, ['SIGSEGV', 13, 0]], // null: DS yes, SS #GP(0) at CPL 3
  [0x0000, 0, ['SIGSEGV', 13, 0]],
  [0x002f, 0, 0], // expand-down writable data: fine for SS
  [0x003f, 0, 0],
];

function run(text: string): void {
  runHolding(text, 'segments.yaml');
}

/** A process with the host's LDT, a SIGSEGV and SIGBUS handler saving trapno and err at $buf+16/+24, and `ops` after the setup. */
function scenario(ops: string, kernel = '{}'): string {
  return `name: segments
kernel: ${kernel}
processes:
  - name: p
    handlers:
      SIGSEGV: { handler: fault }
      SIGBUS: { handler: fault }
    functions:
${SAVE_FAULT_FRAME}    ops:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS }
        as: buf
      - set: { f: 0 }${SETUP_LDT}${ops}
`;
}

for (const pti of ['off', 'on']) {
  test(`LAR, LSL, VERR and VERW of GDT and LDT selectors at CPL 3 give the host's values (pti ${pti})`, () => {
    const ops = QUERIES.map(([sel, ar, lim, r, w]) => `
      - lar: ${sel}
        expect: ${ar}
      - lsl: ${sel}
        expect: ${lim}
      - verr: ${sel}
        expect: ${r}
      - verw: ${sel}
        expect: ${w}`).join('');
    run(scenario(ops, `{ pti: ${pti} }`));
  });

  test(`MOV to DS and to SS: the host's loads, #GP, #NP and #SS, with their signals, trapno and err (pti ${pti})`, () => {
    const one = (sreg: string, sel: number, out: [string, number, number] | 0): string => (out === 0
      ? `
      - mov_sreg: { sreg: ${sreg}, value: ${sel} }
        expect: { success: true }
      - read_sreg: ${sreg}
        expect: ${sel}`
      : `
      - mov_sreg: { sreg: ${sreg}, value: ${sel} }
        expect: { signal: ${out[0]}, si_code: SI_KERNEL }
      - load: $buf + 16
        expect: ${out[1]}
      - load: $buf + 24
        expect: ${out[2]}`);
    const ops = LOADS.map(([sel, ds, ss]) => one('ds', sel, ds) + one('ss', sel, ss)).join('');
    run(scenario(ops, `{ pti: ${pti} }`));
  });
}

test('ES, FS and GS refuse a not-present entry with #NP like DS; a refused load leaves the register as it was (host)', () => {
  const ops = ['es', 'fs', 'gs'].map((r) => `
      - mov_sreg: { sreg: ${r}, value: 0x07 }
        expect: { success: true }
      - mov_sreg: { sreg: ${r}, value: 0x17 }
        expect: { signal: SIGBUS, si_code: SI_KERNEL }
      - load: $buf + 16
        expect: 11
      - load: $buf + 24
        expect: 0x14
      - read_sreg: ${r}
        expect: 0x07`).join('');
  run(scenario(ops));
});

test('a fresh process holds CS 0x33, SS 0x2b and null DS, ES, FS, GS (host: start_thread); a syscall leaves SS 0x2b again (SYSRET)', () => {
  run(scenario(`
      - read_sreg: cs
        expect: 0x33
      - read_sreg: ss
        expect: 0x2b
      - read_sreg: ds
        expect: 0
      - read_sreg: fs
        expect: 0
      - mov_sreg: { sreg: ss, value: 0x07 }
        expect: { success: true }
      - read_sreg: ss
        expect: 0x07
      - getpid: {}
      - read_sreg: ss
        expect: 0x2b`));
});

test('DS and FS selectors survive fork (copy_thread) and are null after execve (start_thread_common)', () => {
  // copy_thread (savesegment of DS, ES; FS and GS indexes), start_thread_common (all 0).
  run(`name: segments-fork
programs:
  /bin/next:
    ops:
      - read_sreg: ds
        expect: 0
      - read_sreg: fs
        expect: 0
processes:
  - name: p
    ops:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS }
        as: buf
      - store: { addr: $buf, value: 0 }
      - store: { addr: $buf + 8, value: ${0xfff + 0x41 * 2 ** 32} }
      - modify_ldt: { func: 0x11, ptr: $buf, bytecount: 16 }
        expect: 0
      - mov_sreg: { sreg: ds, value: 0x07 }
      - mov_sreg: { sreg: fs, value: 0x07 }
      - fork:
          ops:
            - read_sreg: ds
              expect: 7
            - read_sreg: fs
              expect: 7
            - execve: { filename: /bin/next }
        as: child
      - wait4: { upid: $child }
      - read_sreg: ds
        expect: 7
`);
});

test('the pure checks: movSregCheck order and codes, LSL scaling, conforming code and the DPL rules (SDM Vol. 2)', () => {
  const dataRw3 = 0x00cff300; // __USER_DS's high word
  assert.equal(movSregCheck(SREG_DS, 0x2b, 3, dataRw3), null);
  // SS: RPL must equal CPL even when DPL allows it; DS only needs RPL <= DPL.
  assert.deepEqual(movSregCheck(SREG_SS, 0x29, 3, dataRw3), { vector: X86_TRAP_GP, errorCode: 0x28 });
  assert.equal(movSregCheck(SREG_DS, 0x29, 3, dataRw3), null);
  // Past the limit wins over everything: no descriptor was read.
  assert.deepEqual(movSregCheck(SREG_DS, 0x4f, 3, null), { vector: X86_TRAP_GP, errorCode: 0x4c });
  // Not present comes last: a not-present DPL 0 segment is #GP, not #NP.
  assert.deepEqual(movSregCheck(SREG_DS, 0x18, 3, 0x00cf1300), { vector: X86_TRAP_GP, errorCode: 0x18 });
  assert.deepEqual(movSregCheck(SREG_DS, 0x1b, 3, 0x00cf7300), { vector: X86_TRAP_NP, errorCode: 0x18 });
  assert.deepEqual(movSregCheck(SREG_SS, 0x1b, 3, 0x00cf7300), { vector: X86_TRAP_SS, errorCode: 0x18 });
  // At CPL 0, a null SS with RPL 0 is allowed (64-bit mode), with RPL 3 it is not.
  assert.equal(movSregCheck(SREG_SS, 0, 0, null), null);
  assert.deepEqual(movSregCheck(SREG_SS, 3, 0, null), { vector: X86_TRAP_GP, errorCode: 0 });
  // Conforming readable code of DPL 0 loads into DS at CPL 3 (no DPL check), and LAR sees it.
  const confDpl0 = 0x00cf9f00;
  assert.equal(movSregCheck(SREG_DS, 0x13, 3, confDpl0), null);
  assert.equal(larResult(0x13, 3, confDpl0), 0x00cf9f00);
  assert.equal(verrResult(0x13, 3, confDpl0), true);
  assert.equal(verwResult(0x13, 3, confDpl0), false);
  // LSL: G scales to 4 KiB units with the low 12 bits set; a 64-bit call gate is LAR's, not LSL's.
  assert.equal(descLimit(0x0000ffff, 0x008f0000 | 0x9300), 0xffffffff);
  assert.equal(descLimit(0x00000001, 0x00809300), 0x1fff);
  const callGate3 = 0x0000ec00;
  assert.equal(larResult(0x13, 3, callGate3), 0x0000ec00);
  assert.equal(lslResult(0x13, 3, 0, callGate3), -1);
  // Interrupt and trap gates: neither.
  assert.equal(larResult(0x13, 3, 0x0000ee00), -1);
  assert.equal(lslResult(0x13, 3, 0, 0x0000ef00), -1);
  // An LDT descriptor (type 2) of DPL 3 is visible to both.
  assert.equal(larResult(0x13, 3, 0x0000e200), 0x0000e200);
  assert.equal(lslResult(0x13, 3, 0x7, 0x0000e200), 7);
});

test('a fault with SS = 0x07: the frame holds ss 0x07 and cs 0x33, the handler runs on SS 0x07 (force_valid_ss keeps a valid SS), and longjmp leaves SS 0x2b (host)', () => {
  // host (/tmp/segchk/ss.c): MOV SS of an LDT data entry, then a write to address 0: the frame's
  // ss 0x7, the handler's SS 0x7 and CS 0x33, uc_flags 7. host (/tmp/lj/ss.c): after the
  // handler's siglongjmp to a sigsetjmp(env, 1), SS reads 0x2b: glibc restores the mask with
  // rt_sigprocmask, whose SYSRET loads __USER_DS (with sigsetjmp(env, 0), no syscall, SS stays
  // 0x7; the model's longjmp is the mask-restoring kind).
  run(`name: segments-frame
processes:
  - name: p
    handlers:
      SIGSEGV: { handler: fault }
    functions:
      fault:
        - load: { addr: $rsp + 198, size: 2 }
          as: f
        - store: { addr: $buf + 16, value: $f }
        - load: { addr: $rsp + 192, size: 2 }
          as: f
        - store: { addr: $buf + 24, value: $f }
        - read_sreg: ss
          as: f
        - store: { addr: $buf + 32, value: $f }
        - longjmp
    ops:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS }
        as: buf
      - set: { f: 0 }
      - store: { addr: $buf, value: 0 }
      - store: { addr: $buf + 8, value: ${0xfffff + 0x51 * 2 ** 32} }
      - modify_ldt: { func: 0x11, ptr: $buf, bytecount: 16 }
        expect: 0
      - mov_sreg: { sreg: ss, value: 0x07 }
      - store: { addr: 0, value: 0, size: 4 }
        expect: { signal: SIGSEGV }
      - load: $buf + 16
        expect: 7
      - load: $buf + 24
        expect: 0x33
      - load: $buf + 32
        expect: 7
      - read_sreg: ss
        expect: 0x2b
      - read_sreg: cs
        expect: 0x33
`);
});
