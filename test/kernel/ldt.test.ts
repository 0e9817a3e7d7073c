/**
 * The LDT: modify_ldt (syscall 154) read, write and default-LDT functions with Linux 6.12's
 * checks in order, fill_ldt's descriptor encoding and the clear-entry rules, the LDT's growth,
 * its read-only remap into two alternating slots under PTI (seen with Meltdown transient loads
 * and in the mm's page tables), LDTR, fork/vfork/exec, and allocation-failure injection.
 *
 * Every expected value comes from ../shared/spec/linux-x86-isolation.md §4 ("spec §4.x") and
 * §3.3, with the encoding of an x86 segment descriptor (limit 15:0, base 23:0, access byte,
 * limit 19:16 + AVL/L/D/G, base 31:24) and, where the spec is silent, the 6.12 source it
 * cites (arch/x86/kernel/ldt.c, asm/desc.h, arch/x86/mm/tlb.c), named where used.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError } from '../../src/errors.js';
import { LINUX_BANNER } from '../../src/kernel/layout.js';
import type { IsolabEvent, System, SystemConfig } from '../../src/system.js';
import type { Op } from '../../src/user/program.js';
import { boot, mmapAnon, records, ret, runWithEvents as run, sc } from './helpers.js';

// Errno values (spec §0).
const ENOMEM = 12, EFAULT = 14, EINVAL = 22, ENOSYS = 38, ECHILD = 10;
/** spec §4.2: the int result is returned zero-extended, so -errno reads as 2^32 - errno in RAX. */
const u32err = (e: number): bigint => BigInt(2 ** 32 - e);

// spec §4.1.
const LDT_ENTRIES = 8192;
const LDT_BASE_ADDR = 0xffff880000000000n;
const SLOT_STRIDE = 0x10000n;
const slotVa = (slot: number): bigint => LDT_BASE_ADDR + BigInt(slot) * SLOT_STRIDE;
const PGD_LDT_INDEX = 272; // spec §4.1: LDT_BASE_ADDR is PGD index 272 on 4-level

// modify_ldt funcs (spec §4.2).
const READ = 0, WRITE_OLD = 1, READ_DEFAULT = 2, WRITE = 0x11;
// clone flags and mmap constants.
const THREAD_FLAGS = 0x100 | 0x800 | 0x10000; // CLONE_VM | CLONE_SIGHAND | CLONE_THREAD
const PROT_READ = 1;

/** PTI + Meltdown: the remap slots are readable with transient loads (spec §4.3, §3.3). */
const PTI_MELTDOWN: SystemConfig = { cpu: { meltdown: true }, kernel: { pti: 'on' } };

// ---- struct user_desc and the descriptor it should give ----------------------------------------

/** struct user_desc (spec §4.1); omitted fields are 0. */
interface UserDesc {
  entry: number;
  base?: number;
  limit?: number;
  seg_32bit?: number;
  contents?: number;
  read_exec_only?: number;
  limit_in_pages?: number;
  seg_not_present?: number;
  useable?: number;
  lm?: number;
}

/** The bitfield word at offset 12: seg_32bit, contents(2), read_exec_only, limit_in_pages, seg_not_present, useable, lm from bit 0. */
function flagWord(d: UserDesc): number {
  return (d.seg_32bit ?? 0) | ((d.contents ?? 0) << 1) | ((d.read_exec_only ?? 0) << 3) | ((d.limit_in_pages ?? 0) << 4)
    | ((d.seg_not_present ?? 0) << 5) | ((d.useable ?? 0) << 6) | ((d.lm ?? 0) << 7);
}

/** The descriptor spec §4.2 steps 5 and 7 give for `d` written with `func`. */
function descriptor(d: UserDesc, func: number): bigint {
  const base = d.base ?? 0, limit = d.limit ?? 0;
  const empty = base === 0 && limit === 0 && (d.contents ?? 0) === 0 && d.read_exec_only === 1 && (d.seg_32bit ?? 0) === 0
    && (d.limit_in_pages ?? 0) === 0 && d.seg_not_present === 1 && (d.useable ?? 0) === 0; // LDT_empty ignores lm
  if ((func === WRITE_OLD && base === 0 && limit === 0) || empty) return 0n;
  const type = (((d.read_exec_only ?? 0) ^ 1) << 1) | ((d.contents ?? 0) << 2) | 1;
  const access = type | (1 << 4) | (3 << 5) | (((d.seg_not_present ?? 0) ^ 1) << 7); // S=1, DPL=3, P
  const avl = func === WRITE_OLD ? 0 : d.useable ?? 0;
  const nibble = avl | (0 << 1) | ((d.seg_32bit ?? 0) << 2) | ((d.limit_in_pages ?? 0) << 3); // AVL, L=0, D, G
  return BigInt(limit & 0xffff) | (BigInt(base & 0xffffff) << 16n) | (BigInt(access) << 40n)
    | (BigInt((limit >>> 16) & 0xf) << 48n) | (BigInt(nibble) << 52n) | (BigInt(base >>> 24) << 56n);
}

/** The flat 32-bit user data segment; its descriptor is Linux's __USER_DS, 0x00cff3000000ffff. */
const FLAT_DATA: UserDesc = { entry: 0, base: 0, limit: 0xfffff, seg_32bit: 1, limit_in_pages: 1 };
const USER_DS = 0x00cff3000000ffffn;

// ---- Program helpers ---------------------------------------------------------------------------

/** The address `$v+off` of variable `v`. */
const at8 = (v: string, off: number): string => (off === 0 ? `$${v}` : `$${v}+${off}`);
const store = (addr: string, value: number | bigint, size: 1 | 2 | 4 | 8 = 8): Op => ({ op: 'store', addr, value, size });
const load = (into: string, addr: string): Op => ({ op: 'load', addr, into });
const probe = (into: string, addr: bigint): Op => ({ op: 'transient_load', addr, into });

/** Stores struct user_desc `d` at `$v+off`. */
function putDesc(v: string, d: UserDesc, off = 0): Op[] {
  return [
    store(at8(v, off), d.entry, 4),
    store(at8(v, off + 4), d.base ?? 0, 4),
    store(at8(v, off + 8), d.limit ?? 0, 4),
    store(at8(v, off + 12), flagWord(d), 4),
  ];
}
/** Writes `d` with `func` from a user_desc at `$v+off` (bytecount 16); the result goes to `into`. */
function writeDesc(into: string, d: UserDesc, func = WRITE, v = 'ud', off = 0): Op[] {
  return [...putDesc(v, d, off), sc(into, 'modify_ldt', func, at8(v, off), 16)];
}
/** Fills `n` bytes (a multiple of 8) at `$v+off` with the pattern 0xa5a5... */
const PATTERN = 0xa5a5a5a5a5a5a5a5n;
function fill(v: string, n: number, off = 0): Op[] {
  return Array.from({ length: n / 8 }, (_, i) => store(at8(v, off + i * 8), PATTERN));
}

/** Index of the op in `ops` whose result goes to `into`. */
function at(ops: Op[], into: string): number {
  const i = ops.findIndex((o) => 'into' in o && o.into === into);
  assert.ok(i >= 0, `no op into ${into}`);
  return i;
}
/** The signed 64-bit result of the op of `ops` (function `fn`) whose result goes to `into`. */
function val(sys: System, ops: Op[], into: string, fn = 'main'): bigint {
  return ret(sys, at(ops, into), fn);
}
/** The same, as the unsigned 64-bit value (descriptors and loaded bytes). */
function uval(sys: System, ops: Op[], into: string, fn = 'main'): bigint {
  return BigInt.asUintN(64, val(sys, ops, into, fn));
}


/** Reads the PTE mapping kernel address `va` in `mm`'s kernel copy: [lo, hi], or null when no PTE table covers it. */
function kernelPte(sys: System, tid: number, va: bigint): [number, number] | null {
  const mm = sys.task(tid)!.mm!;
  const table = mm.pgtables.kernelPteTable(va, false);
  if (table < 0) return null;
  const i = Number((va >> 12n) & 511n);
  return [sys.machine.mem.readLo(table, i) >>> 0, sys.machine.mem.readHi(table, i) >>> 0];
}

// ==== Descriptor encoding (spec §4.2 step 7) ====================================================

test('0x11 write of a flat 32-bit data segment reads back as __USER_DS 0x00cff3000000ffff', () => {
  const ops: Op[] = [
    mmapAnon('ud', 4096),
    ...writeDesc('w', FLAT_DATA),
    sc('r', 'modify_ldt', READ, '$ud+64', 8),
    load('d', '$ud+64'),
  ];
  const { sys } = run(ops);
  assert.equal(uval(sys, ops, 'w'), 0n, 'spec §4.2 step 12: success returns 0');
  assert.equal(uval(sys, ops, 'r'), 8n);
  // The encoder below is checked against the well-known value first.
  assert.equal(descriptor(FLAT_DATA, WRITE), USER_DS);
  assert.equal(uval(sys, ops, 'd'), USER_DS);
});

test('fill_ldt: a code segment with base, limit and AVL; func 1 forces AVL to 0', () => {
  const code: UserDesc = { entry: 0, base: 0x12345678, limit: 0xabcde, seg_32bit: 1, contents: 2, useable: 1 };
  const ops: Op[] = [
    mmapAnon('ud', 4096),
    ...writeDesc('w0', code, WRITE),
    ...writeDesc('w1', { ...code, entry: 1 }, WRITE_OLD),
    sc('r', 'modify_ldt', READ, '$ud+64', 16),
    load('d0', '$ud+64'),
    load('d1', '$ud+72'),
  ];
  const { sys } = run(ops);
  assert.equal(uval(sys, ops, 'w0'), 0n);
  assert.equal(uval(sys, ops, 'w1'), 0n);
  // type = (1<<1)|(2<<2)|1 = 0xb -> access 0xfb; flags AVL=1, D=1 -> 0x5; limit 19:16 = 0xa.
  assert.equal(uval(sys, ops, 'd0'), 0x125afb345678bcden);
  assert.equal(descriptor(code, WRITE), 0x125afb345678bcden);
  // spec §4.2 step 7: AVL forced to 0 for func 1.
  assert.equal(uval(sys, ops, 'd1'), 0x124afb345678bcden);
});

test('fill_ldt: read_exec_only, expand-down not-present stack, conforming not-present code, 16-bit, high base bit', () => {
  const cases: UserDesc[] = [
    { entry: 0, base: 0x1000, limit: 0x2fff, seg_32bit: 1, read_exec_only: 1 },
    { entry: 1, base: 0xdead0000, limit: 0xffff, seg_32bit: 1, contents: 1, seg_not_present: 1, limit_in_pages: 1 },
    { entry: 2, base: 0x400000, limit: 0x100, seg_32bit: 1, contents: 3, seg_not_present: 1 },
    { entry: 3, base: 0x8000, limit: 0xffff }, // a 16-bit data segment (CONFIG_X86_16BIT, spec §4.2 step 6)
    { entry: 4, base: 0x80000001, limit: 0x1, seg_32bit: 1, contents: 2, read_exec_only: 1 },
  ];
  const ops: Op[] = [mmapAnon('ud', 4096)];
  cases.forEach((c, i) => ops.push(...writeDesc(`w${i}`, c, WRITE, 'ud', 32 * i)));
  ops.push(sc('r', 'modify_ldt', READ, '$ud+2048', 8 * cases.length));
  cases.forEach((_, i) => ops.push(load(`d${i}`, `$ud+${2048 + 8 * i}`)));
  const { sys } = run(ops);
  cases.forEach((c, i) => {
    assert.equal(uval(sys, ops, `w${i}`), 0n, `write ${i}`);
    assert.equal(uval(sys, ops, `d${i}`), descriptor(c, WRITE), `entry ${i}`);
  });
  // Hand-checked: read-only data: type 1 -> access 0xf1.
  assert.equal(uval(sys, ops, 'd0'), 0x0040f10010002fffn);
  // Expand-down (contents 1) read/write: type 7, P=0 -> access 0x77; G and D set.
  assert.equal(uval(sys, ops, 'd1'), 0xdec077ad0000ffffn);
  // Conforming code not present: type 0xf, P=0 -> access 0x7f.
  assert.equal(uval(sys, ops, 'd2'), 0x00407f4000000100n);
  // 16-bit: D=0.
  assert.equal(uval(sys, ops, 'd3'), 0x0000f3008000ffffn);
});

test('fill_ldt: the L bit is never set, whatever lm says', () => {
  const ops: Op[] = [
    mmapAnon('ud', 4096),
    ...writeDesc('w', { ...FLAT_DATA, lm: 1 }),
    ...writeDesc('wc', { entry: 1, base: 0, limit: 0xfffff, seg_32bit: 0, contents: 2, limit_in_pages: 1, lm: 1 }, WRITE, 'ud', 32),
    sc('r', 'modify_ldt', READ, '$ud+64', 16),
    load('d', '$ud+64'),
    load('dc', '$ud+72'),
  ];
  const { sys } = run(ops);
  assert.equal(uval(sys, ops, 'w'), 0n);
  // spec §4.2 step 7: L = 0 always; lm is ignored (spec §4.1).
  assert.equal(uval(sys, ops, 'd'), USER_DS);
  assert.equal(uval(sys, ops, 'dc') & (1n << 53n), 0n, 'L (bit 53) clear for a would-be 64-bit code segment');
  assert.equal(uval(sys, ops, 'dc'), 0x008ffb000000ffffn);
});

// ==== Return value and write validation (spec §4.2) =============================================

test('errors come back zero-extended: -EINVAL reads as 0xffffffea, not -22', () => {
  const ops: Op[] = [mmapAnon('ud', 4096), ...putDesc('ud', FLAT_DATA), sc('e', 'modify_ldt', WRITE, '$ud', 15)];
  const { sys } = run(ops);
  assert.equal(val(sys, ops, 'e'), 4294967274n);
  assert.equal(val(sys, ops, 'e'), u32err(EINVAL));
  assert.notEqual(val(sys, ops, 'e'), BigInt(-EINVAL));
});

test('write check 1: bytecount other than 16 is EINVAL, before the user_desc is read', () => {
  const ops: Op[] = [
    mmapAnon('ud', 4096),
    ...putDesc('ud', FLAT_DATA),
    sc('b0', 'modify_ldt', WRITE, '$ud', 0),
    sc('b8', 'modify_ldt', WRITE, '$ud', 8),
    sc('b17', 'modify_ldt', WRITE_OLD, '$ud', 17),
    sc('b32', 'modify_ldt', WRITE, '$ud', 32),
    sc('bhi', 'modify_ldt', WRITE, '$ud', 0x100000010n), // bytecount is unsigned long: 2^32 + 16 is not 16
    sc('bnull', 'modify_ldt', WRITE, 0, 15), // a bad pointer too: EINVAL comes first
  ];
  const { sys } = run(ops);
  for (const n of ['b0', 'b8', 'b17', 'b32', 'bhi', 'bnull']) assert.equal(val(sys, ops, n), u32err(EINVAL), n);
});

test('write check 2: an unreadable user_desc is EFAULT, ahead of the entry and contents checks', () => {
  const ops: Op[] = [
    mmapAnon('ud', 8192),
    sc('um', 'munmap', '$ud+4096', 4096),
    // A user_desc whose entry_number (8192) and contents (3, func 1) are both bad, but whose
    // last 8 bytes lie in the unmapped page.
    store('$ud+4088', 8192, 4),
    sc('f0', 'modify_ldt', WRITE, 0, 16),
    sc('f1', 'modify_ldt', WRITE_OLD, '$ud+4088', 16),
    sc('f2', 'modify_ldt', WRITE, '$ud+4096', 16),
    sc('f3', 'modify_ldt', WRITE, 0xffff880000000000n, 16), // the LDT remap base itself is no user memory
  ];
  const { sys } = run(ops);
  for (const n of ['f0', 'f1', 'f2', 'f3']) assert.equal(val(sys, ops, n), u32err(EFAULT), n);
});

test('write check 3: entry_number 8192 and above is EINVAL; 8191 is the last entry', () => {
  const ops: Op[] = [
    mmapAnon('ud', 4096 * 17),
    ...writeDesc('e8192', { ...FLAT_DATA, entry: LDT_ENTRIES }),
    ...writeDesc('emax', { ...FLAT_DATA, entry: 0xffffffff }),
    sc('none', 'modify_ldt', READ, '$ud+4096', 8),
    ...writeDesc('e8191', { ...FLAT_DATA, entry: LDT_ENTRIES - 1 }),
    sc('r', 'modify_ldt', READ, '$ud+4096', 65536),
    load('last', `$ud+${4096 + 65528}`),
    load('first', '$ud+4096'),
  ];
  const { sys } = run(ops);
  assert.equal(val(sys, ops, 'e8192'), u32err(EINVAL));
  assert.equal(val(sys, ops, 'emax'), u32err(EINVAL));
  assert.equal(val(sys, ops, 'none'), 0n, 'the failed writes made no LDT');
  assert.equal(val(sys, ops, 'e8191'), 0n);
  assert.equal(val(sys, ops, 'r'), 65536n);
  assert.equal(uval(sys, ops, 'last'), USER_DS);
  assert.equal(uval(sys, ops, 'first'), 0n, 'entries below the one written are empty');
});

test('write check 4: contents 3 is EINVAL for func 1 always, and for 0x11 unless seg_not_present', () => {
  const conforming: UserDesc = { entry: 0, base: 0x10000, limit: 0xff, seg_32bit: 1, contents: 3 };
  const ops: Op[] = [
    mmapAnon('ud', 4096),
    ...writeDesc('oldPresent', conforming, WRITE_OLD),
    ...writeDesc('oldAbsent', { ...conforming, seg_not_present: 1 }, WRITE_OLD),
    ...writeDesc('newPresent', conforming, WRITE),
    // func 1 with base 0 and limit 0 would be a clear, but check 4 comes first.
    ...writeDesc('oldClear', { entry: 0, contents: 3, seg_not_present: 1 }, WRITE_OLD),
    sc('none', 'modify_ldt', READ, '$ud+64', 8),
    ...writeDesc('newAbsent', { ...conforming, seg_not_present: 1 }, WRITE),
    sc('r', 'modify_ldt', READ, '$ud+64', 8),
    load('d', '$ud+64'),
  ];
  const { sys } = run(ops);
  for (const n of ['oldPresent', 'oldAbsent', 'newPresent', 'oldClear']) assert.equal(val(sys, ops, n), u32err(EINVAL), n);
  assert.equal(val(sys, ops, 'none'), 0n, 'no LDT yet');
  assert.equal(val(sys, ops, 'newAbsent'), 0n);
  assert.equal(uval(sys, ops, 'd'), descriptor({ ...conforming, seg_not_present: 1 }, WRITE));
  assert.equal(uval(sys, ops, 'd'), 0x00407f0100000000n | 0xffn);
});

test('failed writes of every kind leave the process with no LDT and the buffer untouched', () => {
  const ops: Op[] = [
    mmapAnon('ud', 4096),
    ...putDesc('ud', FLAT_DATA),
    sc('b', 'modify_ldt', WRITE, '$ud', 12),
    sc('c', 'modify_ldt', WRITE, 0, 16),
    ...writeDesc('d', { ...FLAT_DATA, entry: 9000 }, WRITE, 'ud', 64),
    ...writeDesc('e', { entry: 1, contents: 3, limit: 1, seg_not_present: 1 }, WRITE_OLD, 'ud', 64),
    ...writeDesc('f', { entry: 1, contents: 3, limit: 1, seg_32bit: 1 }, WRITE, 'ud', 64),
    ...fill('ud', 16, 256),
    sc('r', 'modify_ldt', READ, '$ud+256', 16),
    load('p', '$ud+256'),
  ];
  const { sys } = run(ops);
  assert.equal(val(sys, ops, 'b'), u32err(EINVAL));
  assert.equal(val(sys, ops, 'c'), u32err(EFAULT));
  for (const n of ['d', 'e', 'f']) assert.equal(val(sys, ops, n), u32err(EINVAL), n);
  // spec §4.2 func 0: no LDT -> 0, and nothing is copied.
  assert.equal(val(sys, ops, 'r'), 0n);
  assert.equal(uval(sys, ops, 'p'), PATTERN);
});

// ==== Clearing entries (spec §4.2 step 5) ========================================================

test('func 1 with base 0 and limit 0 clears an entry, whatever its other fields', () => {
  const ops: Op[] = [
    mmapAnon('ud', 4096),
    ...writeDesc('w0', FLAT_DATA),
    ...writeDesc('w1', { ...FLAT_DATA, entry: 1 }),
    ...writeDesc('c0', { entry: 0, seg_32bit: 1, contents: 2, limit_in_pages: 1, useable: 1 }, WRITE_OLD),
    sc('r', 'modify_ldt', READ, '$ud+64', 16),
    load('d0', '$ud+64'),
    load('d1', '$ud+72'),
  ];
  const { sys } = run(ops);
  assert.equal(val(sys, ops, 'c0'), 0n);
  assert.equal(uval(sys, ops, 'd0'), 0n, 'entry 0 cleared');
  assert.equal(uval(sys, ops, 'd1'), USER_DS, 'entry 1 kept');
});

test('0x11 with base 0 and limit 0 is not a clear unless the user_desc is LDT_empty', () => {
  const notEmpty: UserDesc = { entry: 0, seg_32bit: 1 };
  const empty: UserDesc = { entry: 1, read_exec_only: 1, seg_not_present: 1 };
  const withUseable: UserDesc = { ...empty, entry: 2, useable: 1 };
  // asm/desc.h: "This intentionally ignores lm, since 32-bit apps don't have that field" (spec
  // §4.2's LDT_empty has no lm either; host-checked on Linux 6.18: the entry reads back as 0).
  const withLm: UserDesc = { ...empty, entry: 3, lm: 1 };
  const ops: Op[] = [
    mmapAnon('ud', 4096),
    ...[1, 2, 3].flatMap((e) => writeDesc(`pre${e}`, { ...FLAT_DATA, entry: e })),
    ...writeDesc('w0', notEmpty),
    ...writeDesc('w1', empty),
    ...writeDesc('w2', withUseable),
    ...writeDesc('w3', withLm),
    sc('r', 'modify_ldt', READ, '$ud+64', 32),
    load('d0', '$ud+64'),
    load('d1', '$ud+72'),
    load('d2', '$ud+80'),
    load('d3', '$ud+88'),
  ];
  const { sys } = run(ops);
  for (const n of ['w0', 'w1', 'w2', 'w3']) assert.equal(val(sys, ops, n), 0n, n);
  // Not a clear: type 3, D=1, base and limit 0.
  assert.equal(uval(sys, ops, 'd0'), 0x0040f30000000000n);
  // LDT_empty: all zeros, replacing __USER_DS; with lm set too.
  assert.equal(uval(sys, ops, 'd1'), 0n);
  assert.equal(uval(sys, ops, 'd3'), 0n);
  // One field off LDT_empty: fill_ldt (read-only data, type 1, not present: access 0x71).
  assert.equal(uval(sys, ops, 'd2'), 0x0010710000000000n);
  assert.equal(uval(sys, ops, 'd2'), descriptor(withUseable, WRITE));
  assert.equal(uval(sys, ops, 'd3'), descriptor(withLm, WRITE));
});

// ==== Reading (spec §4.2 funcs 0 and 2) =========================================================

test('func 0 with no LDT returns 0 and writes nothing, whatever the bytecount or pointer', () => {
  const ops: Op[] = [
    mmapAnon('ud', 4096),
    ...fill('ud', 32),
    sc('r', 'modify_ldt', READ, '$ud', 32),
    sc('rbad', 'modify_ldt', READ, 0, 32),
    sc('rhuge', 'modify_ldt', READ, '$ud', 0xffffffffffffffffn),
    load('p0', '$ud'),
    load('p3', '$ud+24'),
  ];
  const { sys } = run(ops);
  assert.equal(val(sys, ops, 'r'), 0n);
  assert.equal(val(sys, ops, 'rbad'), 0n, 'no copy is attempted, so no EFAULT');
  assert.equal(val(sys, ops, 'rhuge'), 0n);
  assert.equal(uval(sys, ops, 'p0'), PATTERN);
  assert.equal(uval(sys, ops, 'p3'), PATTERN);
});

test('func 0 copies nr_entries*8 bytes, zero-fills up to bytecount and returns bytecount', () => {
  const ops: Op[] = [
    mmapAnon('ud', 4096),
    ...writeDesc('w', { ...FLAT_DATA, entry: 1 }), // nr_entries = 2
    ...fill('ud', 64, 64),
    sc('r', 'modify_ldt', READ, '$ud+64', 44),
    ...[0, 8, 16, 24, 32, 40, 48].map((o) => load(`b${o}`, `$ud+${64 + o}`)),
  ];
  const { sys } = run(ops);
  assert.equal(val(sys, ops, 'r'), 44n);
  assert.equal(uval(sys, ops, 'b0'), 0n, 'entry 0: empty');
  assert.equal(uval(sys, ops, 'b8'), USER_DS, 'entry 1');
  for (const o of [16, 24, 32]) assert.equal(uval(sys, ops, `b${o}`), 0n, `zero-fill at ${o}`);
  // Bytes 40..43 zero-filled, 44..47 untouched.
  assert.equal(uval(sys, ops, 'b40'), PATTERN & 0xffffffff00000000n);
  assert.equal(uval(sys, ops, 'b48'), PATTERN);
});

test('func 0 with a bytecount below the LDT size copies just that many bytes', () => {
  const ops: Op[] = [
    mmapAnon('ud', 4096),
    ...writeDesc('w', FLAT_DATA),
    ...writeDesc('w1', { ...FLAT_DATA, entry: 1 }),
    ...fill('ud', 16, 64),
    sc('r4', 'modify_ldt', READ, '$ud+64', 4),
    load('b0', '$ud+64'),
    load('b8', '$ud+72'),
    sc('r0', 'modify_ldt', READ, '$ud+72', 0),
    load('b8again', '$ud+72'),
  ];
  const { sys } = run(ops);
  assert.equal(val(sys, ops, 'r4'), 4n);
  // Low 4 bytes of __USER_DS (0x0000ffff), the rest untouched.
  assert.equal(uval(sys, ops, 'b0'), (PATTERN & 0xffffffff00000000n) | 0x0000ffffn);
  assert.equal(uval(sys, ops, 'b8'), PATTERN);
  assert.equal(val(sys, ops, 'r0'), 0n);
  assert.equal(uval(sys, ops, 'b8again'), PATTERN);
});

test('func 0 caps bytecount at 65536 (the largest LDT), zero-filling and returning exactly that', () => {
  const ops: Op[] = [
    mmapAnon('ud', 4096 * 18),
    ...writeDesc('w', FLAT_DATA),
    store('$ud+65536', PATTERN),
    store('$ud+65528', PATTERN),
    sc('r', 'modify_ldt', READ, '$ud', 65536 + 8),
    load('d0', '$ud'),
    load('tail', '$ud+65528'),
    load('past', '$ud+65536'),
    sc('rhuge', 'modify_ldt', READ, '$ud', 0xffffffffffffffffn),
  ];
  const { sys } = run(ops);
  assert.equal(val(sys, ops, 'r'), 65536n);
  assert.equal(uval(sys, ops, 'd0'), USER_DS, 'entry 0 copied over the user_desc');
  assert.equal(uval(sys, ops, 'tail'), 0n, 'zero-filled to 64 KiB');
  assert.equal(uval(sys, ops, 'past'), PATTERN, 'nothing written past 64 KiB');
  assert.equal(val(sys, ops, 'rhuge'), 65536n);
});

test('func 0 into an unwritable buffer is EFAULT when there is an LDT', () => {
  const ops: Op[] = [
    mmapAnon('ud', 4096),
    mmapAnon('ro', 4096, PROT_READ),
    ...writeDesc('w', FLAT_DATA),
    sc('rnull', 'modify_ldt', READ, 0, 8),
    sc('rro', 'modify_ldt', READ, '$ro', 8),
    sc('rfill', 'modify_ldt', READ, '$ro', 0), // nothing to copy
  ];
  const { sys } = run(ops);
  assert.equal(val(sys, ops, 'rnull'), u32err(EFAULT));
  assert.equal(val(sys, ops, 'rro'), u32err(EFAULT));
  assert.equal(val(sys, ops, 'rfill'), 0n);
});

test('func 2 zero-fills min(bytecount, 128) bytes and returns that count, with or without an LDT', () => {
  const ops: Op[] = [
    mmapAnon('ud', 4096),
    mmapAnon('ro', 4096, PROT_READ),
    ...fill('ud', 256),
    sc('d200', 'modify_ldt', READ_DEFAULT, '$ud', 200),
    load('b0', '$ud'),
    load('b120', '$ud+120'),
    load('b128', '$ud+128'),
    sc('d5', 'modify_ldt', READ_DEFAULT, '$ud+192', 5),
    load('b192', '$ud+192'),
    sc('d0', 'modify_ldt', READ_DEFAULT, 0, 0),
    sc('dbad', 'modify_ldt', READ_DEFAULT, '$ro', 16),
    sc('none', 'modify_ldt', READ, '$ud+1024', 8), // func 2 made no LDT
    ...writeDesc('w', FLAT_DATA, WRITE, 'ud', 2048),
    sc('d64', 'modify_ldt', READ_DEFAULT, '$ud+2048', 64), // the default LDT is not the process's
    load('b2048', '$ud+2048'),
  ];
  const { sys } = run(ops);
  assert.equal(val(sys, ops, 'd200'), 128n);
  assert.equal(uval(sys, ops, 'b0'), 0n);
  assert.equal(uval(sys, ops, 'b120'), 0n);
  assert.equal(uval(sys, ops, 'b128'), PATTERN);
  assert.equal(val(sys, ops, 'd5'), 5n);
  assert.equal(uval(sys, ops, 'b192'), PATTERN & 0xffffff0000000000n);
  assert.equal(val(sys, ops, 'd0'), 0n);
  assert.equal(val(sys, ops, 'dbad'), u32err(EFAULT));
  assert.equal(val(sys, ops, 'none'), 0n);
  assert.equal(val(sys, ops, 'w'), 0n);
  assert.equal(val(sys, ops, 'd64'), 64n);
  assert.equal(uval(sys, ops, 'b2048'), 0n);
});

test('funcs other than 0, 1, 2 and 0x11 are ENOSYS; func is an int, so high bits are dropped', () => {
  const ops: Op[] = [
    mmapAnon('ud', 4096),
    ...putDesc('ud', FLAT_DATA),
    ...[3, 4, 0x10, 0x12, 0x21, 0x111, -1].map((f, i) => sc(`f${i}`, 'modify_ldt', f, '$ud', 16)),
    // SYSCALL_DEFINE3(modify_ldt, int, func, ...): 2^32 + 0x11 is func 0x11, 2^32 is func 0.
    sc('hi11', 'modify_ldt', 0x100000011n, '$ud', 16),
    sc('hi0', 'modify_ldt', 0x100000000n, '$ud+64', 8),
    load('d', '$ud+64'),
  ];
  const { sys } = run(ops);
  for (let i = 0; i < 7; i++) assert.equal(val(sys, ops, `f${i}`), u32err(ENOSYS), `f${i}`);
  assert.equal(val(sys, ops, `f0`), 4294967258n);
  assert.equal(val(sys, ops, 'hi11'), 0n);
  assert.equal(val(sys, ops, 'hi0'), 8n);
  assert.equal(uval(sys, ops, 'd'), USER_DS);
});

// ==== PTI remap (spec §4.2 steps 9-12, §4.3, §3.3) ==============================================

test('PTI: the first LDT is mapped at slot 0, each later write moves it to the other slot and unmaps the old', () => {
  const ops: Op[] = [
    mmapAnon('ud', 4096),
    probe('before', slotVa(0)),
    ...writeDesc('w1', FLAT_DATA),
    probe('s0a', slotVa(0)),
    probe('s1a', slotVa(1)),
    ...writeDesc('w2', { entry: 1, base: 0x12345678, limit: 0xabcde, seg_32bit: 1, contents: 2 }),
    probe('s0b', slotVa(0)),
    probe('s1b', slotVa(1)),
    probe('s1b1', slotVa(1) + 8n),
    ...writeDesc('w3', { entry: 0, read_exec_only: 1, seg_not_present: 1 }), // clear entry 0
    probe('s0c', slotVa(0)),
    probe('s0c1', slotVa(0) + 8n),
    probe('s1c', slotVa(1)),
  ];
  const { sys } = run(ops, PTI_MELTDOWN);
  assert.equal(val(sys, ops, 'before'), -1n, 'no LDT, nothing mapped');
  assert.equal(uval(sys, ops, 's0a'), USER_DS);
  assert.equal(val(sys, ops, 's1a'), -1n);
  assert.equal(val(sys, ops, 's0b'), -1n, 'old slot unmapped');
  assert.equal(uval(sys, ops, 's1b'), USER_DS, 'old entries copied into the new LDT');
  assert.equal(uval(sys, ops, 's1b1'), 0x124afb345678bcden);
  assert.equal(uval(sys, ops, 's0c'), 0n, 'back in slot 0 (1 - 1), entry 0 cleared');
  assert.equal(uval(sys, ops, 's0c1'), 0x124afb345678bcden);
  assert.equal(val(sys, ops, 's1c'), -1n);
});

test('PTI: the remap PTEs are present, read-only, supervisor, NX and not global; the user copy shares the PGD entry', () => {
  const seen: { pte0: [number, number] | null; pte1: [number, number] | null; kpgd: [number, number]; upgd: [number, number]; tables: number }[] = [];
  const ops: Op[] = [mmapAnon('ud', 4096), ...writeDesc('w1', FLAT_DATA), ...writeDesc('w2', { ...FLAT_DATA, entry: 1 })];
  const { sys } = run(ops, { kernel: { pti: 'on' } }, (e, s) => {
    if (e.type !== 'syscall' || e.name !== 'modify_ldt') return;
    const mm = s.task(e.tid)!.mm!;
    const mem = s.machine.mem;
    seen.push({
      pte0: kernelPte(s, e.tid, slotVa(0)),
      pte1: kernelPte(s, e.tid, slotVa(1)),
      kpgd: [mem.readLo(mm.pgtables.pgd, PGD_LDT_INDEX) >>> 0, mem.readHi(mm.pgtables.pgd, PGD_LDT_INDEX) >>> 0],
      upgd: [mem.readLo(mm.pgtables.userPgd, PGD_LDT_INDEX) >>> 0, mem.readHi(mm.pgtables.userPgd, PGD_LDT_INDEX) >>> 0],
      tables: mm.pgtables.tables,
    });
  });
  assert.equal(val(sys, ops, 'w1'), 0n);
  assert.equal(val(sys, ops, 'w2'), 0n);
  assert.equal(seen.length, 2);
  const [first, second] = seen;
  // spec §4.3: __PAGE_KERNEL_RO & ~_PAGE_GLOBAL: P, not RW, not U/S, not G, NX (bit 63).
  const P = 0x1, RW = 0x2, US = 0x4, G = 0x100, NX = 0x80000000;
  assert.ok(first.pte0, 'slot 0 has a PTE table');
  const [lo, hi] = first.pte0!;
  assert.equal(lo & P, P, 'present');
  assert.equal(lo & RW, 0, 'read-only');
  assert.equal(lo & US, 0, 'supervisor');
  assert.equal(lo & G, 0, 'not global');
  assert.equal((hi & NX) >>> 0, NX, "NX");
  assert.equal(first.pte1 === null || (first.pte1[0] & P) === 0, true, 'slot 1 empty after the first write');
  // spec §3.3 / §4.3 map_ldt_struct_to_user: the user copy's PGD entry is the kernel copy's.
  assert.equal(first.kpgd[0] & P, P);
  assert.deepEqual(first.upgd, first.kpgd);
  // Second write: slot 1 mapped the same way, slot 0's PTE cleared, the tables kept (spec §4.4).
  assert.ok(second.pte1 && (second.pte1[0] & P) === P && (second.pte1[0] & (RW | US | G)) === 0 && ((second.pte1[1] & NX) >>> 0) === NX);
  assert.ok(second.pte0, 'the PTE table stays');
  assert.deepEqual(second.pte0, [0, 0], 'slot 0 PTE cleared');
  assert.equal(second.tables, first.tables, 'no page-table pages freed or added by the move');
  assert.deepEqual(second.upgd, second.kpgd);
});

test('PTI without the Meltdown bug: the remap is supervisor-only, a transient load reads nothing', () => {
  const ops: Op[] = [mmapAnon('ud', 4096), ...writeDesc('w', FLAT_DATA), probe('t', slotVa(0))];
  const { sys } = run(ops, { cpu: { meltdown: false }, kernel: { pti: 'on' } });
  assert.equal(val(sys, ops, 'w'), 0n);
  assert.equal(val(sys, ops, 't'), -1n);
});

test('no PTI: nothing is mapped at either slot, yet modify_ldt works as usual', () => {
  const ops: Op[] = [
    mmapAnon('ud', 4096),
    ...writeDesc('w1', FLAT_DATA),
    probe('s0', slotVa(0)),
    ...writeDesc('w2', { ...FLAT_DATA, entry: 1 }),
    probe('s1', slotVa(1)),
    probe('s0b', slotVa(0)),
    sc('r', 'modify_ldt', READ, '$ud+64', 16),
    load('d1', '$ud+72'),
  ];
  const { sys } = run(ops, { cpu: { meltdown: true }, kernel: { pti: 'off' } });
  assert.equal(val(sys, ops, 'w1'), 0n);
  assert.equal(val(sys, ops, 'w2'), 0n);
  for (const n of ['s0', 's1', 's0b']) assert.equal(val(sys, ops, n), -1n, n);
  assert.equal(val(sys, ops, 'r'), 16n);
  assert.equal(uval(sys, ops, 'd1'), USER_DS);
});

test('PTI: a full 8192-entry LDT fills 16 pages of its slot, and the next write maps all of them in the other', () => {
  const ops: Op[] = [
    mmapAnon('ud', 4096),
    ...writeDesc('w1', { ...FLAT_DATA, entry: LDT_ENTRIES - 1 }),
    probe('s0first', slotVa(0)),
    probe('s0p8', slotVa(0) + 8n * 4096n),
    probe('s0last', slotVa(0) + 65528n),
    ...writeDesc('w2', { ...FLAT_DATA, entry: 0 }),
    probe('s1first', slotVa(1)),
    probe('s1last', slotVa(1) + 65528n),
    probe('s0lastAfter', slotVa(0) + 65528n),
    probe('s0p8After', slotVa(0) + 8n * 4096n),
    probe('beyond', slotVa(2)),
  ];
  const { sys } = run(ops, PTI_MELTDOWN);
  assert.equal(val(sys, ops, 'w1'), 0n);
  assert.equal(uval(sys, ops, 's0first'), 0n, 'entry 0 empty but mapped');
  assert.equal(uval(sys, ops, 's0p8'), 0n, 'page 8 mapped');
  assert.equal(uval(sys, ops, 's0last'), USER_DS, 'entry 8191 at 64 KiB - 8');
  assert.equal(val(sys, ops, 'w2'), 0n);
  assert.equal(uval(sys, ops, 's1first'), USER_DS);
  assert.equal(uval(sys, ops, 's1last'), USER_DS);
  assert.equal(val(sys, ops, 's0lastAfter'), -1n, 'every page of the old slot unmapped');
  assert.equal(val(sys, ops, 's0p8After'), -1n);
  assert.equal(val(sys, ops, 'beyond'), -1n, 'nothing past the two slots');
});

test('the LDT only grows: writing a lower entry keeps the larger size (PTI: both pages stay mapped)', () => {
  const ops: Op[] = [
    mmapAnon('ud', 4096 * 3),
    ...writeDesc('w1', { ...FLAT_DATA, entry: 600 }), // 601 entries: 4808 bytes, two pages
    ...writeDesc('w2', { ...FLAT_DATA, entry: 0 }),
    probe('s1p0', slotVa(1)),
    probe('s1p1', slotVa(1) + 4096n), // entries 512.. still there
    probe('s1e600', slotVa(1) + 600n * 8n),
    probe('s1p2', slotVa(1) + 8192n),
    sc('r', 'modify_ldt', READ, '$ud+4096', 8192),
    load('e600', `$ud+${4096 + 4800}`),
    load('e601', `$ud+${4096 + 4808}`),
  ];
  const { sys } = run(ops, PTI_MELTDOWN);
  assert.equal(uval(sys, ops, 's1p0'), USER_DS);
  assert.equal(uval(sys, ops, 's1p1'), 0n, 'second page still mapped (nr_entries = max(1, 601))');
  assert.equal(uval(sys, ops, 's1e600'), USER_DS);
  assert.equal(val(sys, ops, 's1p2'), -1n, 'a third page was never needed');
  assert.equal(val(sys, ops, 'r'), 8192n);
  assert.equal(uval(sys, ops, 'e600'), USER_DS);
  assert.equal(uval(sys, ops, 'e601'), 0n);
});

test('PTI: replacing the LDT flushes the old slot from the TLB (flush_tlb_mm_range over its range)', () => {
  const ops: Op[] = [mmapAnon('ud', 4096), ...writeDesc('w1', FLAT_DATA), ...writeDesc('w2', { ...FLAT_DATA, entry: 1 })];
  let inWrite2 = false;
  const window: IsolabEvent[] = [];
  let writes = 0;
  const { sys } = run(ops, { kernel: { pti: 'on' } }, (e) => {
    if (e.type === 'syscall_enter' && e.name === 'modify_ldt' && ++writes === 2) inWrite2 = true;
    else if (e.type === 'syscall' && e.name === 'modify_ldt' && writes === 2) inWrite2 = false;
    else if (inWrite2) window.push(e);
  });
  assert.equal(val(sys, ops, 'w2'), 0n);
  const flushes = window.filter((e): e is Extract<IsolabEvent, { type: 'tlb_flush' }> => e.type === 'tlb_flush');
  // spec §4.2 step 12: the old slot (slot 0, LDT_BASE_ADDR) is flushed: by INVLPG of its page, or a full flush.
  const slot0Hi = Number(LDT_BASE_ADDR >> 32n), slot0Lo = 0;
  const ok = flushes.some((f) => (f.cause === 'invlpg' && f.hi === slot0Hi && f.lo === slot0Lo) || f.cause === 'cr3' || f.cause === 'invpcid_ctx' || f.cause === 'invpcid_all' || f.cause === 'invpcid_nonglobal');
  assert.ok(ok, `no flush of the old slot: ${JSON.stringify(flushes)}`);
  // The kernel's own flush must not fault.
  const gp = window.filter((e) => e.type === 'fault' && e.vector === 13);
  assert.deepEqual(gp, [], 'a #GP inside modify_ldt');
});

test('5-level paging: the LDT remap lives at 0xff10000000000000 and exposes nothing else of the kernel', () => {
  const ops: Op[] = [
    mmapAnon('ud', 4096),
    ...writeDesc('w', FLAT_DATA),
    probe('ldt5', 0xff10000000000000n), // spec §4.1: LDT_BASE_ADDR with 5-level paging
    probe('banner', LINUX_BANNER),
    probe('direct', 0xff11000000000000n + 0x100000n), // mm.rst: the 5-level direct map (page_offset_base)
  ];
  let result: { sys: System } | undefined;
  let thrown: unknown;
  try {
    result = run(ops, { cpu: { meltdown: true, la57: true }, kernel: { pti: 'on' } });
  } catch (e) {
    thrown = e;
  }
  assert.equal(thrown, undefined, `the run failed: ${String(thrown)}`);
  const { sys } = result!;
  assert.equal(val(sys, ops, 'w'), 0n);
  assert.equal(uval(sys, ops, 'ldt5'), USER_DS);
  // spec §3.3: nothing else of the kernel (no kernel data, no direct map) is in the user copy.
  assert.equal(val(sys, ops, 'banner'), -1n);
  assert.equal(val(sys, ops, 'direct'), -1n);
  assert.deepEqual(sys.debugReports, []);
  // free_ldt_pgtables freed the mm's own remap tables and nothing of the kernel's.
  const again = boot({ cpu: { meltdown: true, la57: true }, kernel: { pti: 'on' } });
  const base = again.framesInUse;
  again.spawn({ main: ops });
  assert.ok(again.run({ maxSteps: 1_000_000 }).finished);
  assert.equal(again.framesInUse, base, 'every frame returned');
});

test('exit frees the LDT, its remap tables and the mm: frames in use return to the count after boot', () => {
  for (const pti of ['on', 'off'] as const) {
    const sys = boot({ cpus: 2, kernel: { pti } });
    const base = sys.kernel.pages.inUse;
    sys.spawn({ main: [mmapAnon('ud', 4096), ...writeDesc('w1', { ...FLAT_DATA, entry: LDT_ENTRIES - 1 }), ...writeDesc('w2', FLAT_DATA)] });
    let during = 0;
    sys.events.subscribe((e) => {
      if (e.type === 'syscall' && e.name === 'modify_ldt') during = Math.max(during, sys.kernel.pages.inUse);
    });
    assert.ok(sys.run({ maxSteps: 1_000_000 }).finished);
    assert.deepEqual(sys.debugReports, [], pti);
    // A 64 KiB LDT is 16 frames (spec §4.2 step 9).
    assert.ok(during >= base + 16, `${pti}: the LDT's frames were allocated (${during - base} in use)`);
    assert.equal(sys.kernel.pages.inUse, base, `${pti}: everything freed`);
  }
});

// ==== LDTR (spec §4.2 step 11, §4.3) ============================================================

test('LDTR: under PTI it holds the slot alias and the entry count; without PTI the entries in kernel memory', () => {
  for (const pti of ['on', 'off'] as const) {
    const seen: { base: bigint; n: number; slot: number; desc: bigint }[] = [];
    const ops: Op[] = [mmapAnon('ud', 4096), ...writeDesc('w1', { ...FLAT_DATA, entry: 2 }), ...writeDesc('w2', FLAT_DATA)];
    run(ops, { kernel: { pti } }, (e, s) => {
      if (e.type !== 'syscall' || e.name !== 'modify_ldt') return;
      const pc = s.kernel.percpu[e.cpu];
      const base = pc.ldtBase;
      let desc = -1n;
      if (pti === 'off') {
        // The direct map: physical address = base - PAGE_OFFSET.
        const b = s.machine.mem.readBytes(Number(base - 0xffff888000000000n) + 16, 8);
        desc = new DataView(b.buffer, b.byteOffset).getBigUint64(0, true);
      }
      seen.push({ base, n: pc.ldtEntries, slot: s.task(e.tid)!.mm!.ldt!.slot, desc });
    });
    assert.equal(seen.length, 2, pti);
    for (const s of seen) assert.equal(s.n, 3, `${pti}: nr_entries = max(entry+1, old)`);
    if (pti === 'on') {
      assert.equal(seen[0].base, slotVa(0));
      assert.equal(seen[1].base, slotVa(1));
    } else {
      for (const s of seen) {
        assert.ok(s.base < LDT_BASE_ADDR || s.base >= slotVa(2), 'not a remap slot');
        assert.equal(s.desc, USER_DS, 'entry 2 read through LDTR');
      }
    }
  }
});

test('SMP: when modify_ldt returns, every CPU running the mm has LDTR on the new LDT', () => {
  const thread: Op[] = Array.from({ length: 120 }, (_, i) => probe(`t${i}`, 0x400000n));
  const ops: Op[] = [
    mmapAnon('ud', 4096),
    mmapAnon('stk', 16384),
    { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, '$stk+0x3ff0', 0, 0, 0], into: 'tid', child: thread, cpu: 1 },
    probe('spin0', 0x400000n),
    probe('spin1', 0x400000n),
    probe('spin2', 0x400000n),
    ...[0, 1, 2, 3, 4].flatMap((i) => writeDesc(`w${i}`, { ...FLAT_DATA, entry: i })),
    sc('r', 'modify_ldt', READ, '$ud+64', 8),
  ];
  const checks: { slot: number; otherCpuRunsMm: boolean; bad: string[] }[] = [];
  const { sys } = run(ops, { cpus: 2, kernel: { pti: 'on' } }, (e, s) => {
    if (e.type !== 'syscall' || e.name !== 'modify_ldt' || e.ret !== 0 || e.args[0] !== BigInt(WRITE)) return;
    const mm = s.task(e.tid)!.mm!;
    const bad: string[] = [];
    let other = false;
    for (const pc of s.kernel.percpu) {
      if (pc.loaded_mm !== mm) continue;
      if (pc.id !== e.cpu) other = true;
      if (pc.ldtBase !== slotVa(mm.ldt!.slot) || pc.ldtEntries !== mm.ldt!.nr_entries) bad.push(`cpu ${pc.id}: LDTR ${pc.ldtBase.toString(16)}/${pc.ldtEntries}`);
    }
    checks.push({ slot: mm.ldt!.slot, otherCpuRunsMm: other, bad });
  });
  assert.equal(checks.length, 5);
  // spec §4.2 step 10: slot 0 first, then alternating.
  assert.deepEqual(checks.map((c) => c.slot), [0, 1, 0, 1, 0]);
  assert.ok(checks.some((c) => c.otherCpuRunsMm), 'the thread was running on the other CPU during some write');
  for (const c of checks) assert.deepEqual(c.bad, []);
  assert.equal(val(sys, ops, 'r'), 8n);
});

// ==== fork, vfork, exec (spec §4.4) =============================================================

test('fork copies the LDT into the child, mapped at slot 0 whatever the parent\'s slot', () => {
  const child: Op[] = [
    sc('cr', 'modify_ldt', READ, '$ud+256', 24),
    load('c0', '$ud+256'),
    load('c1', '$ud+264'),
    load('c2', '$ud+272'),
    probe('cs0', slotVa(0)),
    probe('cs0e1', slotVa(0) + 8n),
    probe('cs1', slotVa(1)),
  ];
  const ops: Op[] = [
    mmapAnon('ud', 4096),
    ...writeDesc('w1', FLAT_DATA),
    ...writeDesc('w2', { entry: 1, base: 0x1000, limit: 0xff, seg_32bit: 1, contents: 2 }), // parent now at slot 1
    { op: 'syscall', name: 'fork', into: 'child', child },
    sc('wt', 'wait4', -1, 0, 0, 0),
    probe('ps0', slotVa(0)),
    probe('ps1', slotVa(1)),
  ];
  const { sys } = run(ops, PTI_MELTDOWN);
  const fn = `main.${at(ops, 'child')}.child`;
  const code = descriptor({ entry: 1, base: 0x1000, limit: 0xff, seg_32bit: 1, contents: 2 }, WRITE);
  assert.ok(val(sys, ops, 'child') > 0n);
  assert.equal(val(sys, child, 'cr', fn), 24n);
  assert.equal(uval(sys, child, 'c0', fn), USER_DS);
  assert.equal(uval(sys, child, 'c1', fn), code);
  assert.equal(uval(sys, child, 'c2', fn), 0n, 'zero-fill past the 2 entries');
  assert.equal(uval(sys, child, 'cs0', fn), USER_DS, 'child: slot 0');
  assert.equal(uval(sys, child, 'cs0e1', fn), code);
  assert.equal(val(sys, child, 'cs1', fn), -1n, 'child: slot 1 never mapped');
  assert.equal(uval(sys, ops, 'ps1'), USER_DS, 'parent: still slot 1');
  assert.equal(val(sys, ops, 'ps0'), -1n);
});

test('fork: the child\'s LDT is its own copy; its write moves it to slot 1 and leaves the parent\'s alone', () => {
  const child: Op[] = [
    ...writeDesc('cw', { entry: 0, base: 0x5000, limit: 0x10, seg_32bit: 1 }, WRITE, 'ud', 512),
    sc('cr', 'modify_ldt', READ, '$ud+256', 8),
    load('c0', '$ud+256'),
    probe('cs0', slotVa(0)),
    probe('cs1', slotVa(1)),
  ];
  const ops: Op[] = [
    mmapAnon('ud', 4096),
    ...writeDesc('w1', FLAT_DATA),
    { op: 'syscall', name: 'fork', into: 'child', child },
    sc('wt', 'wait4', -1, 0, 0, 0),
    sc('pr', 'modify_ldt', READ, '$ud+128', 8),
    load('p0', '$ud+128'),
    probe('ps0', slotVa(0)),
  ];
  const { sys } = run(ops, PTI_MELTDOWN);
  const fn = `main.${at(ops, 'child')}.child`;
  const mine = descriptor({ entry: 0, base: 0x5000, limit: 0x10, seg_32bit: 1 }, WRITE);
  assert.equal(val(sys, child, 'cw', fn), 0n);
  assert.equal(uval(sys, child, 'c0', fn), mine);
  assert.equal(val(sys, child, 'cs0', fn), -1n);
  assert.equal(uval(sys, child, 'cs1', fn), mine);
  assert.equal(val(sys, ops, 'pr'), 8n);
  assert.equal(uval(sys, ops, 'p0'), USER_DS);
  assert.equal(uval(sys, ops, 'ps0'), USER_DS);
});

test('fork of a process with no LDT gives a child with none', () => {
  const child: Op[] = [...fill('ud', 8, 64), sc('cr', 'modify_ldt', READ, '$ud+64', 8), load('c', '$ud+64'), probe('cs0', slotVa(0))];
  const ops: Op[] = [mmapAnon('ud', 4096), { op: 'syscall', name: 'fork', into: 'child', child }, sc('wt', 'wait4', -1, 0, 0, 0)];
  const { sys } = run(ops, PTI_MELTDOWN);
  const fn = `main.${at(ops, 'child')}.child`;
  assert.equal(val(sys, child, 'cr', fn), 0n);
  assert.equal(uval(sys, child, 'c', fn), PATTERN);
  assert.equal(val(sys, child, 'cs0', fn), -1n);
});

test('vfork: the child shares the mm, so its LDT write is the parent\'s LDT', () => {
  const child: Op[] = [...writeDesc('cw', { ...FLAT_DATA, entry: 1 })];
  const ops: Op[] = [
    mmapAnon('ud', 4096),
    { op: 'syscall', name: 'vfork', into: 'child', child },
    sc('r', 'modify_ldt', READ, '$ud+64', 16),
    load('d1', '$ud+72'),
    probe('s0', slotVa(0)),
    probe('s0e1', slotVa(0) + 8n),
  ];
  const { sys } = run(ops, PTI_MELTDOWN);
  assert.equal(val(sys, child, 'cw', `main.${at(ops, 'child')}.child`), 0n);
  assert.equal(val(sys, ops, 'r'), 16n);
  assert.equal(uval(sys, ops, 'd1'), USER_DS);
  assert.equal(uval(sys, ops, 's0'), 0n);
  assert.equal(uval(sys, ops, 's0e1'), USER_DS);
});

test('exec: the new image has no LDT and nothing at the remap slots', () => {
  const next: Op[] = [
    mmapAnon('b', 4096),
    ...fill('b', 8),
    sc('r', 'modify_ldt', READ, '$b', 8),
    load('d', '$b'),
    probe('s0', slotVa(0)),
    probe('s1', slotVa(1)),
  ];
  const sys = boot(PTI_MELTDOWN);
  sys.addImage('next', { main: next });
  const pid = sys.spawn({
    main: [mmapAnon('ud', 4096), ...writeDesc('w1', FLAT_DATA), ...writeDesc('w2', { ...FLAT_DATA, entry: 1 }), sc('ex', 'execve', '&next', 0, 0)],
    strings: { next: 'next' },
  });
  const r = sys.run({ maxSteps: 1_000_000 });
  assert.ok(r.finished);
  assert.deepEqual(sys.debugReports, []);
  const got = new Map(sys.log.filter((x) => x.image === 'next').map((x) => [x.index, x.value]));
  assert.equal(got.get(at(next, 'r')), 0n, 'spec §4.4: init_new_context_ldt -> no LDT');
  assert.equal(got.get(at(next, 'd')), PATTERN);
  assert.equal(BigInt.asIntN(64, got.get(at(next, 's0'))!), -1n);
  assert.equal(BigInt.asIntN(64, got.get(at(next, 's1'))!), -1n);
  assert.equal(sys.exitStatus(pid), 0);
});

test('exec: the CPU\'s LDTR no longer points at the old mm\'s LDT once the new image runs', () => {
  const seen: { base: bigint; n: number }[] = [];
  const sys = boot({ kernel: { pti: 'off' } });
  sys.addImage('next', { main: [sc('g', 'getpid')] });
  sys.events.subscribe((e) => {
    if (e.type === 'op' && e.record.image === 'next' && e.record.index === 0) {
      const pc = sys.kernel.percpu[e.cpu];
      seen.push({ base: pc.ldtBase, n: pc.ldtEntries });
    }
  });
  sys.spawn({
    main: [mmapAnon('ud', 4096), ...writeDesc('w', { ...FLAT_DATA, entry: 3 }), sc('ex', 'execve', '&next', 0, 0)],
    strings: { next: 'next' },
  });
  assert.ok(sys.run({ maxSteps: 1_000_000 }).finished);
  assert.deepEqual(sys.debugReports, []);
  assert.equal(seen.length, 1);
  // spec §4.4: the new mm has no LDT; §4.2: LDTR follows the mm (switch_ldt): cleared.
  assert.deepEqual(seen[0], { base: 0n, n: 0 });
});

// ==== Allocation-failure injection (spec §4.2 steps 9-10, §4.4) ==================================

/** The injection program: write entry 0, then entry 600 (a 2-page LDT in the other slot), fork a child that reads, wait. */
const childRead: Op[] = [sc('cr', 'modify_ldt', READ, '$ud+256', 16), load('c0', '$ud+256')];
const injectOps: Op[] = [
  mmapAnon('ud', 4096),
  ...writeDesc('w1', FLAT_DATA),
  ...writeDesc('w2', { ...FLAT_DATA, entry: 600 }),
  { op: 'syscall', name: 'fork', into: 'f', child: childRead },
  sc('wt', 'wait4', -1, 0, 0, 0),
];

/**
 * Runs the injection program failing the n-th allocation of `kind` for every n a clean run
 * makes. Checks each run ends, leaks nothing and gives results spec §4.2/§4.4 allow. Returns
 * how many runs saw an ENOMEM from modify_ldt or fork, and how many could not start.
 */
function inject(kind: 'ldt' | 'pgtable' | 'pgd' | 'page', pti: 'on' | 'off'): { runs: number; enomem: number; unstartable: number; killed: number } {
  const config = (extra: object): SystemConfig => ({ cpus: 2, cpu: { meltdown: true }, kernel: { pti, ...extra } });
  const clean = boot(config({}));
  const cleanBase = clean.kernel.pages.inUse;
  clean.spawn({ main: injectOps });
  assert.ok(clean.run({ maxSteps: 1_000_000 }).finished);
  assert.deepEqual(clean.debugReports, []);
  assert.equal(clean.kernel.pages.inUse, cleanBase, 'the clean run leaks nothing');
  const total = clean.kernel.pages.allocCount[kind];
  assert.ok(total > 0, `the clean run makes ${kind} allocations`);
  let enomem = 0, unstartable = 0, killed = 0;
  const fnChild = `main.${at(injectOps, 'f')}.child`;
  for (let n = 1; n <= total; n++) {
    const where = `${kind} #${n} (pti ${pti})`;
    const sys = boot(config({ fail_alloc: kind, fail_alloc_nth: n }));
    const base = sys.kernel.pages.inUse;
    let pid: number;
    try {
      pid = sys.spawn({ main: injectOps });
    } catch (e) {
      assert.ok(e instanceof ConfigError, `${where}: spawn threw ${String(e)}`);
      unstartable++;
      assert.equal(sys.kernel.pages.inUse, base, `${where}: a failed spawn leaks`);
      assert.deepEqual(sys.debugReports, [], where);
      continue;
    }
    const r = sys.run({ maxSteps: 1_000_000 });
    assert.ok(r.finished, `${where}: tasks still alive: ${r.alive.join(', ')}`);
    assert.deepEqual(sys.debugReports, [], where);
    assert.equal(sys.kernel.pages.inUse, base, `${where}: frames leaked`);
    if (sys.exitStatus(pid) !== 0) killed++;
    const main = records(sys, 'main');
    const res = (into: string): bigint | undefined => {
      const v = main.get(at(injectOps, into))?.value;
      return v === undefined ? undefined : BigInt.asIntN(64, v);
    };
    const w1 = res('w1'), w2 = res('w2'), f = res('f'), wt = res('wt');
    // spec §4.2: a write succeeds or fails with ENOMEM (steps 9, 10), nothing else.
    for (const [name, w] of [['w1', w1], ['w2', w2]] as const) {
      if (w !== undefined) assert.ok(w === 0n || w === u32err(ENOMEM), `${where}: ${name} = ${w}`);
    }
    if (f !== undefined) assert.ok(f > 0n || f === BigInt(-ENOMEM), `${where}: fork = ${f}`);
    if (f === BigInt(-ENOMEM) && wt !== undefined) assert.equal(wt, BigInt(-ECHILD), `${where}: no child to wait for`);
    if (w1 === u32err(ENOMEM) || w2 === u32err(ENOMEM) || f === BigInt(-ENOMEM)) enomem++;
    // A child that ran sees the parent's LDT as it was at fork (spec §4.4).
    const cr = records(sys, fnChild).get(at(childRead, 'cr'))?.value;
    const c0 = records(sys, fnChild).get(at(childRead, 'c0'))?.value;
    // A failed user-page allocation under copy_to_user is a copy fault: -EFAULT (spec §4.2 func 0).
    const copyFault = kind === 'page' && cr === u32err(EFAULT);
    if (f !== undefined && f > 0n && cr !== undefined && w1 !== undefined && w2 !== undefined && !copyFault) {
      const hasLdt = w1 === 0n || w2 === 0n;
      assert.equal(cr, hasLdt ? 16n : 0n, `${where}: child read`);
      if (c0 !== undefined) assert.equal(c0, w1 === 0n ? USER_DS : 0n, `${where}: child entry 0`);
    }
  }
  return { runs: total, enomem, unstartable, killed };
}

test('failure injection, kind ldt: every failing alloc_ldt_struct gives ENOMEM and leaks nothing (PTI and not)', () => {
  const on = inject('ldt', 'on');
  assert.ok(on.enomem > 0, 'some ldt failure made modify_ldt or fork return ENOMEM');
  // Every ldt allocation belongs to modify_ldt or ldt_dup_context: each failure is an ENOMEM.
  assert.equal(on.enomem + on.unstartable, on.runs);
  const off = inject('ldt', 'off');
  assert.equal(off.enomem + off.unstartable, off.runs);
});

test('failure injection, kind pgtable under PTI: the LDT remap\'s tables can fail with ENOMEM, with no leak', () => {
  const r = inject('pgtable', 'on');
  assert.ok(r.enomem > 0, 'some page-table failure made modify_ldt or fork return ENOMEM');
});

test('failure injection, kind pgd: no leak whichever PGD allocation fails', () => {
  const r = inject('pgd', 'on');
  assert.ok(r.unstartable >= 1, 'the first PGD is the spawned process\'s');
  assert.ok(r.enomem >= 1, 'the fork\'s PGD fails with ENOMEM');
});

test('failure injection, kind page: no leak whichever user page allocation fails', () => {
  const r = inject('page', 'on');
  assert.ok(r.runs > 0);
  // No LDT allocation is a user page: modify_ldt and ldt_dup_context never fail here.
  assert.equal(r.enomem, 0);
});
