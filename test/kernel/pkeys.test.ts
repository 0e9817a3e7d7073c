/**
 * Protection keys (PKU): pkey_alloc, pkey_free, pkey_mprotect and mprotect's key choice, the
 * execute-only key, WRPKRU/RDPKRU, SEGV_PKUERR (software and hardware checks), kernel and GUP
 * accesses under PKRU, PKRU across fork/vfork/clone/execve, and PKRU at signal delivery under
 * each `pkru_on_signal` choice.
 *
 * Every expected value comes from ../shared/spec/linux-x86-isolation.md §1 ("spec §1.x") or
 * ../shared/spec/x86-access-rules.md ("rules §x"); the alternatives to upstream signal
 * delivery come from the `pkru_on_signal` option's definition (src/kernel/options.ts, seed
 * 002). Frame offsets are the Linux uapi layout (struct rt_sigframe, ucontext, sigcontext,
 * siginfo: arch/x86/include/uapi/asm/sigcontext.h, include/uapi/asm-generic/siginfo.h).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { STACK_SIZE, STACK_TOP } from '../../src/kernel/exec.js';
import { pte_pfn } from '../../src/kernel/pgtable.js';
import type { SigInfo } from '../../src/kernel/task.js';
import type { IsolabEvent, System, SystemConfig } from '../../src/system.js';
import type { Op, Program } from '../../src/user/program.js';
import { boot, mmapAnon, records, ret, sc } from './helpers.js';

// Errno values (spec §0).
const ENOMEM = 12, EFAULT = 14, EINVAL = 22, ENOSPC = 28;
// uapi constants (spec §1.1) and mmap/signal constants.
const PKEY_DISABLE_ACCESS = 0x1, PKEY_DISABLE_WRITE = 0x2;
const PROT_NONE = 0, PROT_READ = 1, PROT_RW = 3, PROT_EXEC = 4;
const SIGILL = 4, SIGSEGV = 11, SIGUSR1 = 10, SIGUSR2 = 12;
const SEGV_ACCERR = 2, SEGV_PKUERR = 4;
const SA_SIGINFO = 0x4, SA_RESTORER = 0x04000000;
// init_pkru_value (spec §1.1): AD for keys 1-15, key 0 open.
const INIT_PKRU = 0x55555554n;
// #PF error-code bits (rules §7).
const PF_P = 0x1, PF_W = 0x2, PF_U = 0x4, PF_PK = 0x20;
// clone flags.
const CLONE_VM = 0x100, CLONE_SIGHAND = 0x800, CLONE_THREAD = 0x10000;
const THREAD_FLAGS = CLONE_VM | CLONE_SIGHAND | CLONE_THREAD;

// struct rt_sigframe on x86-64: pretcode (8), struct ucontext (uc_flags 8, uc_link 8,
// uc_stack 24, uc_mcontext = struct sigcontext 256, uc_sigmask 8), struct siginfo.
const UC_MCONTEXT = 8 + 40;
/** sigcontext.fpstate: after r8..r15, di, si, bp, bx, dx, ax, cx, sp, ip, flags, cs/gs/fs/ss, err, trapno, oldmask, cr2 (23 u64s). */
const SC_FPSTATE = UC_MCONTEXT + 23 * 8;
const SIGINFO = 8 + 304;
const SI_CODE = SIGINFO + 8;
const SI_ADDR = SIGINFO + 16;
/** si_pkey: after si_addr and an 8-byte pad (__ADDR_BND_PKEY_PAD). */
const SI_PKEY = SIGINFO + 32;
/** PKRU in the standard-format XSAVE area (XFEATURE_PKRU, component 9); given by the brief. */
const XSAVE_PKRU = 2688;
/** struct _fpx_sw_bytes.magic1 in the FXSAVE area's software bytes, and the XSAVE header's XSTATE_BV. */
const SW_MAGIC1 = 464, FP_XSTATE_MAGIC1 = 0x46505853, XSTATE_BV = 512, XFEATURE_MASK_PKRU = 0x200n;

type PageFault = Extract<IsolabEvent, { type: 'page_fault' }>;

// ---- Program helpers ---------------------------------------------------------------------------

const rdpkru = (into: string): Op => ({ op: 'rdpkru', into });
const wrpkru = (value: number | bigint): Op => ({ op: 'wrpkru', value });
const load = (into: string, addr: string): Op => ({ op: 'load', addr, into });
const store = (addr: string, value: number | bigint | string, size?: 1 | 2 | 4 | 8): Op => (size ? { op: 'store', addr, value, size } : { op: 'store', addr, value });
const fetch = (addr: string): Op => ({ op: 'fetch', addr });

/** Index of the op in `ops` whose result goes to `into`. */
function at(ops: Op[], into: string): number {
  const i = ops.findIndex((o) => 'into' in o && o.into === into);
  assert.ok(i >= 0, `no op into ${into}`);
  return i;
}
/** The (signed) result of the op of `ops` (function `fn`) whose result goes to `into`. */
function val(sys: System, ops: Op[], into: string, fn = 'main'): bigint {
  return ret(sys, at(ops, into), fn);
}
/** The signal that interrupted that op, if any. */
function sigAt(sys: System, ops: Op[], into: string, fn = 'main'): SigInfo | undefined {
  return records(sys, fn).get(at(ops, into))?.signal;
}

/** Ops that install `handler` for `sig` with SA_RESTORER|SA_SIGINFO (a struct sigaction in a new mapping `act`). */
function sigaction(sig: number, handler: string, act = `act${sig}`): Op[] {
  return [
    mmapAnon(act, 4096),
    store(`$${act}`, handler),
    store(`$${act}+8`, SA_RESTORER | SA_SIGINFO),
    store(`$${act}+16`, '@__restore_rt'),
    store(`$${act}+24`, 0),
    sc(`sa${sig}`, 'rt_sigaction', sig, `$${act}`, 0, 8),
  ];
}
/** Ops that send `sig` to the process itself. */
const raise = (sig: number, into = `kill${sig}`): Op[] => [sc('pid', 'getpid'), sc(into, 'kill', '$pid', sig)];

/** Boots, runs `program` as the only process to completion, and returns the user page faults seen. */
function run(program: Program | Op[], config: SystemConfig = {}): { sys: System; pid: number; faults: PageFault[]; events: IsolabEvent[] } {
  const sys = boot(config);
  const events: IsolabEvent[] = [];
  sys.events.subscribe((e) => events.push(e));
  const pid = sys.spawn(Array.isArray(program) ? { main: program } : program);
  const r = sys.run({ maxSteps: 1_000_000 });
  assert.ok(r.finished, `tasks still alive: ${r.alive.join(', ')}`);
  assert.deepEqual(sys.debugReports, []);
  const faults = events.filter((e): e is PageFault => e.type === 'page_fault' && e.user);
  return { sys, pid, faults, events };
}

/** Reads `len` bytes (within one page) of a task's user memory through its page tables. */
function readUser(sys: System, tid: number, va: number, len: number): Uint8Array {
  const mm = sys.task(tid)!.mm!;
  const table = mm.pgtables.pteTable(va, false);
  assert.ok(table >= 0, `no page table for ${va.toString(16)}`);
  const i = Math.floor(va / 4096) % 512;
  const mem = sys.machine.mem;
  return mem.readBytes(pte_pfn(mem.readLo(table, i), mem.readHi(table, i)) * 4096 + (va % 4096), len);
}
const u32 = (b: Uint8Array): number => new DataView(b.buffer, b.byteOffset).getUint32(0, true);
const u64 = (b: Uint8Array): bigint => new DataView(b.buffer, b.byteOffset).getBigUint64(0, true);

// ==== pkey_alloc (spec §1.3, §1.4) ================================================================

test('pkey_alloc: keys 1..15 in order, then ENOSPC; flags and init_val are checked before the map', () => {
  const ops: Op[] = [
    ...Array.from({ length: 15 }, (_, i) => sc(`k${i + 1}`, 'pkey_alloc', 0, 0)),
    sc('full', 'pkey_alloc', 0, 0),
    sc('flags', 'pkey_alloc', 1, 0),
    sc('init', 'pkey_alloc', 0, 4),
  ];
  const { sys } = run(ops);
  // spec §1.3 mm_pkey_alloc: lowest clear bit; key 0 allocated at mm creation. §1.4: 15 user keys.
  for (let k = 1; k <= 15; k++) assert.equal(val(sys, ops, `k${k}`), BigInt(k), `allocation ${k}`);
  // spec §1.4 check 3: no free key -> -ENOSPC.
  assert.equal(val(sys, ops, 'full'), BigInt(-ENOSPC));
  // spec §1.4 checks 1 and 2 come before check 3: -EINVAL, not -ENOSPC, with the map full.
  assert.equal(val(sys, ops, 'flags'), BigInt(-EINVAL));
  assert.equal(val(sys, ops, 'init'), BigInt(-EINVAL));
});

test('pkey_alloc: any flags bit or init_val bit outside PKEY_ACCESS_MASK is EINVAL, in all 64 bits', () => {
  const ops: Op[] = [
    sc('f1', 'pkey_alloc', 1, 0),
    sc('f2', 'pkey_alloc', 0x80000000, 0),
    sc('f3', 'pkey_alloc', 0x100000000n, 0), // flags is unsigned long: a high bit counts
    sc('i4', 'pkey_alloc', 0, 4),
    sc('i8', 'pkey_alloc', 0, 0x8),
    sc('i33', 'pkey_alloc', 0, 0x100000000n), // init_val is unsigned long too
    sc('ok', 'pkey_alloc', 0, 3),
  ];
  const { sys } = run(ops);
  // spec §1.4 checks 1 (flags != 0) and 2 (init_val & ~0x3); SYSCALL_DEFINE2(pkey_alloc, unsigned long, unsigned long).
  for (const n of ['f1', 'f2', 'f3', 'i4', 'i8', 'i33']) assert.equal(val(sys, ops, n), BigInt(-EINVAL), n);
  // No failed call consumed a key: the first good one gets key 1 (spec §1.3).
  assert.equal(val(sys, ops, 'ok'), 1n);
});

test('pkey_alloc sets only the new key\'s two PKRU bits of the caller, from init_val', () => {
  const ops: Op[] = [
    rdpkru('p0'),
    sc('k1', 'pkey_alloc', 0, 0),
    rdpkru('p1'),
    wrpkru(0),
    sc('k2', 'pkey_alloc', 0, 0),
    rdpkru('p2'),
    sc('k3', 'pkey_alloc', 0, PKEY_DISABLE_WRITE),
    rdpkru('p3'),
    sc('k4', 'pkey_alloc', 0, PKEY_DISABLE_ACCESS | PKEY_DISABLE_WRITE),
    rdpkru('p4'),
    sc('k5', 'pkey_alloc', 0, PKEY_DISABLE_ACCESS),
    rdpkru('p5'),
  ];
  const { sys } = run(ops);
  // spec §1.1 / §1.8 (execve): a new image starts with init_pkru_value.
  assert.equal(val(sys, ops, 'p0'), INIT_PKRU);
  // spec §1.4: key k's field replaced (AD bit 2k, WD bit 2k+1, spec §1.1); other keys untouched.
  assert.equal(val(sys, ops, 'k1'), 1n);
  assert.equal(val(sys, ops, 'p1'), 0x55555550n, 'key 1 opened, the rest still init');
  assert.equal(val(sys, ops, 'k2'), 2n);
  assert.equal(val(sys, ops, 'p2'), 0n, 'init_val 0: key 2 open');
  assert.equal(val(sys, ops, 'p3'), 0x80n, 'PKEY_DISABLE_WRITE: WD3 = bit 7');
  assert.equal(val(sys, ops, 'p4'), 0x80n | 0x300n, 'AD|WD for key 4 = bits 8, 9');
  assert.equal(val(sys, ops, 'p5'), 0x80n | 0x300n | 0x400n, 'PKEY_DISABLE_ACCESS: AD5 = bit 10');
});

test('pkey_alloc leaves other threads\' PKRU alone', () => {
  const thread: Op[] = [rdpkru('t')];
  const ops: Op[] = [
    mmapAnon('stk', 16384),
    { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, '$stk+0x3ff0', 0, 0, 0], into: 'tid', child: thread },
    sc('k', 'pkey_alloc', 0, 0),
    rdpkru('mine'),
    sc('y1', 'sched_yield'),
    sc('y2', 'sched_yield'),
    sc('y3', 'sched_yield'),
  ];
  const { sys } = run(ops, { cpus: 1 });
  const log = sys.log.map((r) => `${r.fn}:${r.index}`);
  assert.ok(log.indexOf('main.1.child:0') > log.indexOf(`main:${at(ops, 'k')}`), 'the thread read its PKRU after the allocation');
  // spec §1.4: the caller's field for key 1 is replaced ...
  assert.equal(val(sys, ops, 'k'), 1n);
  assert.equal(val(sys, ops, 'mine'), 0x55555550n);
  // ... other threads keep what they had (AD for key 1, from init_pkru_value, spec §1.4 / §1.8).
  assert.equal(ret(sys, 0, 'main.1.child'), INIT_PKRU);
});

test('pkey_alloc without PKU: the first call is EINVAL, every later one ENOSPC (a CPU without pku, and the nopku boot parameter)', () => {
  // spec §1.11 (corrected reading) from arch/x86/include/asm/pkeys.h, mmu_context.h and
  // kernel/fpu/xstate.c: without OSPKE init_new_context leaves the allocation map 0 and
  // execute_only_pkey 0; mm_pkey_alloc (no OSPKE check; arch_max_pkey() 1, mask 1) hands out key
  // 0; arch_set_user_pkey_access refuses it (-EINVAL); mm_pkey_free(mm, 0) cannot undo the
  // allocation, as mm_pkey_is_allocated sees key 0 == execute_only_pkey as not allocated; so the
  // map stays 1 == the mask and every later call is -ENOSPC. pkey_free(0) stays -EINVAL.
  for (const config of [{ cpu: { pku: false } }, { kernel: { nopku: true } }] as SystemConfig[]) {
    const ops: Op[] = [sc('a', 'pkey_alloc', 0, 0), sc('b', 'pkey_alloc', 0, 0), sc('c', 'pkey_alloc', 0, 1), sc('f', 'pkey_free', 0)];
    const { sys } = run(ops, config);
    assert.equal(val(sys, ops, 'a'), BigInt(-EINVAL), JSON.stringify(config));
    assert.equal(val(sys, ops, 'b'), BigInt(-ENOSPC), JSON.stringify(config));
    assert.equal(val(sys, ops, 'c'), BigInt(-ENOSPC), JSON.stringify(config));
    assert.equal(val(sys, ops, 'f'), BigInt(-EINVAL), JSON.stringify(config));
  }
});

test('nopku: pkey_free and pkey_mprotect with any key but -1 are EINVAL; mprotect(PROT_EXEC) has no execute-only key', () => {
  const ops: Op[] = [
    mmapAnon('buf', 4096),
    sc('free0', 'pkey_free', 0),
    sc('free1', 'pkey_free', 1),
    sc('mp0', 'pkey_mprotect', '$buf', 4096, PROT_RW, 0),
    sc('mpm1', 'pkey_mprotect', '$buf', 4096, PROT_RW, -1),
    sc('mx', 'mprotect', '$buf', 4096, PROT_EXEC),
    load('v', '$buf'),
  ];
  const { sys, pid } = run(ops, { kernel: { nopku: true } });
  // spec §1.11, §1.5 (pkey >= 1 without PKU), §1.6 check 8 (any key other than -1 when there is no PKU).
  assert.equal(val(sys, ops, 'free0'), BigInt(-EINVAL));
  assert.equal(val(sys, ops, 'free1'), BigInt(-EINVAL));
  assert.equal(val(sys, ops, 'mp0'), BigInt(-EINVAL));
  assert.equal(val(sys, ops, 'mpm1'), 0n, 'pkey -1 is plain mprotect');
  // spec §1.6 "No OSPKE -> key 0": the PROT_EXEC mapping keeps key 0 and an x86 exec mapping reads.
  assert.equal(val(sys, ops, 'mx'), 0n);
  assert.equal(val(sys, ops, 'v'), 0n);
  assert.equal(sys.exitStatus(pid), 0);
});

test('nopku: WRPKRU raises #UD (CR4.PKE is off), so SIGILL', () => {
  // rules §5: WRPKRU with CR4.PKE = 0 raises #UD; rules §9: Linux sets CR4.PKE only with PKU (nopku: no OSPKE, spec §1.11).
  const ops: Op[] = [wrpkru(0), sc('after', 'getpid')];
  const { sys, pid } = run(ops, { kernel: { nopku: true } });
  assert.equal(records(sys).get(0)?.signal?.signo, SIGILL);
  assert.equal(sys.exitStatus(pid), SIGILL);
});

test('init_pkru= sets the PKRU a new image starts with', () => {
  // spec §1.11: init_pkru=<u32> sets init_pkru_value; §1.8: execve resets PKRU to it.
  const ops: Op[] = [rdpkru('p')];
  const { sys } = run(ops, { kernel: { init_pkru: 0x5555555c } });
  assert.equal(val(sys, ops, 'p'), 0x5555555cn);
});

// ==== pkey_free (spec §1.5) ====================================================================

test('pkey_free: EINVAL for unallocated, out-of-range and negative keys; 0 for an allocated one', () => {
  const ops: Op[] = [
    sc('k', 'pkey_alloc', 0, 0),
    sc('unalloc', 'pkey_free', 5),
    sc('range16', 'pkey_free', 16),
    sc('neg', 'pkey_free', -1),
    sc('big', 'pkey_free', 0x7fffffff),
    sc('ok', 'pkey_free', '$k'),
    sc('twice', 'pkey_free', '$k'),
  ];
  const { sys } = run(ops);
  // spec §1.5: !mm_pkey_is_allocated -> -EINVAL (pkey < 0, pkey >= 16, bit not set).
  for (const n of ['unalloc', 'range16', 'neg', 'big']) assert.equal(val(sys, ops, n), BigInt(-EINVAL), n);
  assert.equal(val(sys, ops, 'ok'), 0n);
  assert.equal(val(sys, ops, 'twice'), BigInt(-EINVAL), 'freed keys are unallocated');
});

test('pkey_free(0) succeeds (quirk), and pkey_alloc can then return 0', () => {
  const ops: Op[] = [sc('f0', 'pkey_free', 0), sc('a', 'pkey_alloc', 0, 0), sc('b', 'pkey_alloc', 0, 0)];
  const { sys } = run(ops);
  // spec §1.5 quirk: key 0 is in the map, so freeing it succeeds; §1.3: the lowest clear bit is then 0.
  assert.equal(val(sys, ops, 'f0'), 0n);
  assert.equal(val(sys, ops, 'a'), 0n);
  assert.equal(val(sys, ops, 'b'), 1n);
});

test('pkey_alloc hands out the lowest free key: a freed key comes back', () => {
  const ops: Op[] = [
    sc('a', 'pkey_alloc', 0, 0),
    sc('b', 'pkey_alloc', 0, 0),
    sc('c', 'pkey_alloc', 0, 0),
    sc('fb', 'pkey_free', 2),
    sc('d', 'pkey_alloc', 0, 0),
    sc('e', 'pkey_alloc', 0, 0),
  ];
  const { sys } = run(ops);
  // spec §1.3 (ffz) and §1.5 (a later pkey_alloc can hand out the same number).
  assert.deepEqual(['a', 'b', 'c', 'fb', 'd', 'e'].map((n) => val(sys, ops, n)), [1n, 2n, 3n, 0n, 2n, 4n]);
});

test('pkey_free changes neither PKRU nor the VMAs; re-allocating the number rewrites PKRU and so access to the old memory', () => {
  const ops: Op[] = [
    mmapAnon('buf', 4096),
    sc('k', 'pkey_alloc', 0, 0),
    sc('mp', 'pkey_mprotect', '$buf', 4096, PROT_RW, '$k'),
    store('$buf', 7),
    sc('free', 'pkey_free', '$k'),
    rdpkru('afterFree'),
    load('v1', '$buf'),
    sc('again', 'pkey_alloc', 0, PKEY_DISABLE_ACCESS),
    rdpkru('afterAlloc'),
    load('v2', '$buf'),
  ];
  const { sys, pid } = run(ops);
  assert.equal(val(sys, ops, 'free'), 0n);
  // spec §1.5: PKRU is not changed by pkey_free; the VMA keeps key 1 and is still readable.
  assert.equal(val(sys, ops, 'afterFree'), 0x55555550n);
  assert.equal(val(sys, ops, 'v1'), 7n);
  // spec §1.5: the same number comes back and the caller's field is rewritten (AD).
  assert.equal(val(sys, ops, 'again'), 1n);
  assert.equal(val(sys, ops, 'afterAlloc'), INIT_PKRU);
  // spec §1.10: the old memory is now refused: SEGV_PKUERR with si_pkey 1.
  const s = sigAt(sys, ops, 'v2')!;
  assert.equal(s.signo, SIGSEGV);
  assert.equal(s.code, SEGV_PKUERR);
  assert.equal(s.pkey, 1);
  assert.equal(sys.exitStatus(pid), SIGSEGV);
});

// ==== pkey_mprotect and mprotect (spec §1.6) =================================================

test('pkey_mprotect checks in do_mprotect_pkey order: alignment, len 0, wrap, prot, key, VMA', () => {
  const ops: Op[] = [
    mmapAnon('buf', 4096),
    sc('k', 'pkey_alloc', 0, 0),
    sc('unaligned', 'pkey_mprotect', '$buf+1', 4096, PROT_RW, 99),
    sc('len0', 'pkey_mprotect', '$buf', 0, PROT_RW, 99),
    sc('len0neg', 'pkey_mprotect', '$buf', 0, PROT_RW, -7),
    sc('wrap', 'pkey_mprotect', '$buf', -4096n & 0xffffffffffffffffn, PROT_RW, 99),
    sc('badprot', 'pkey_mprotect', '$buf', 4096, 0x10, 1),
    sc('badkey', 'pkey_mprotect', '$buf', 4096, PROT_RW, 99),
    sc('unallocated', 'pkey_mprotect', '$buf', 4096, PROT_RW, 2),
    sc('key16', 'pkey_mprotect', '$buf', 4096, PROT_RW, 16),
    sc('badkeyNoVma', 'pkey_mprotect', 0x10000000, 4096, PROT_RW, 99),
    sc('noVma', 'pkey_mprotect', 0x10000000, 4096, PROT_RW, '$k'),
    sc('good', 'pkey_mprotect', '$buf', 4096, PROT_RW, '$k'),
    sc('key0', 'pkey_mprotect', '$buf', 4096, PROT_RW, 0),
    sc('minus1', 'pkey_mprotect', '$buf', 4096, PROT_RW, -1),
  ];
  const { sys } = run(ops);
  const want: [string, number][] = [
    ['unaligned', -EINVAL], // check 3
    ['len0', 0], // check 4: len 0 returns 0, the key is not validated
    ['len0neg', 0],
    ['wrap', -ENOMEM], // check 5 comes before the key check (8)
    ['badprot', -EINVAL], // check 6
    ['badkey', -EINVAL], // check 8
    ['unallocated', -EINVAL], // check 8: an unallocated key
    ['key16', -EINVAL], // check 8: out of range
    ['badkeyNoVma', -EINVAL], // check 8 comes before check 9
    ['noVma', -ENOMEM], // check 9: no VMA intersects
    ['good', 0],
    ['key0', 0], // key 0 is allocated (spec §1.3)
    ['minus1', 0], // -1: plain mprotect
  ];
  for (const [n, e] of want) assert.equal(val(sys, ops, n), BigInt(e), n);
});

test('pkey_mprotect writes the key into PTE bits 59-62, for present pages and pages faulted in later', () => {
  const ops: Op[] = [
    mmapAnon('buf', 8192),
    store('$buf', 1),
    sc('k1', 'pkey_alloc', 0, 0),
    sc('k2', 'pkey_alloc', 0, 0),
    sc('k3', 'pkey_alloc', 0, 0),
    sc('mp5', 'pkey_mprotect', '$buf', 8192, PROT_RW, 5),
    sc('mp3', 'pkey_mprotect', '$buf', 8192, PROT_RW, '$k3'),
    store('$buf+4096', 2),
    sc('end', 'getpid'),
  ];
  const sys = boot();
  const pid = sys.spawn({ main: ops });
  // Stop once the last store has completed, while the mm is still alive.
  while (!records(sys).has(7)) assert.ok(sys.step(), 'ran out of work');
  const t = sys.task(pid)!;
  const buf = Number(t.vars.get('buf'));
  const mem = sys.machine.mem;
  const key = (va: number): number => {
    const table = t.mm!.pgtables.pteTable(va, false);
    return (mem.readHi(table, Math.floor(va / 4096) % 512) >>> (59 - 32)) & 0xf;
  };
  const keys = [key(buf), key(buf + 4096)];
  sys.run();
  assert.deepEqual(sys.debugReports, []);
  // spec §1.6 check 8: key 5 is not allocated -> EINVAL.
  assert.equal(val(sys, ops, 'mp5'), BigInt(-EINVAL));
  assert.equal(val(sys, ops, 'mp3'), 0n);
  // spec §1.6: vm_get_page_prot copies the VMA key into PTE bits 59-62 (spec §1.1; rules §1).
  assert.deepEqual(keys, [3, 3], 'the page present at pkey_mprotect, and the one faulted in afterwards');
});

test('plain mprotect keeps the key pkey_mprotect set', () => {
  const ops: Op[] = [
    mmapAnon('buf', 4096),
    sc('k', 'pkey_alloc', 0, 0),
    sc('mp', 'pkey_mprotect', '$buf', 4096, PROT_RW, '$k'),
    sc('m', 'mprotect', '$buf', 4096, PROT_READ),
    wrpkru(INIT_PKRU), // key 1 access-disabled again
    load('v', '$buf'),
  ];
  const { sys } = run(ops);
  assert.equal(val(sys, ops, 'm'), 0n);
  // spec §1.6 last rule: a plain mprotect keeps vma_pkey, so key 1 still guards the page (spec §1.10).
  const s = sigAt(sys, ops, 'v')!;
  assert.equal(s.code, SEGV_PKUERR);
  assert.equal(s.pkey, 1);
});

// ==== The execute-only key (spec §1.6, §1.7) ===================================================

test('mprotect(PROT_EXEC) moves the VMA to the execute-only key: fetch works, a read is SEGV_PKUERR with si_pkey, the caller gets AD', () => {
  const ops: Op[] = [
    mmapAnon('x', 4096),
    wrpkru(0),
    sc('mx', 'mprotect', '$x', 4096, PROT_EXEC),
    rdpkru('p'),
    fetch('$x'),
    load('v', '$x'),
  ];
  const { sys, pid, faults } = run(ops);
  assert.equal(val(sys, ops, 'mx'), 0n);
  // spec §1.7: first use allocates the lowest free key (1) and sets AD for it in the caller's PKRU (bit 2).
  assert.equal(val(sys, ops, 'p'), 0x4n);
  // spec §1.7 / rules §4: instruction fetches ignore keys; a not-present fetch is a normal demand fault (rules §9).
  assert.equal(records(sys).get(4)?.signal, undefined, 'the fetch completed');
  // spec §1.7 / §1.10: a data read gives SEGV_PKUERR with si_pkey = the execute-only key.
  const s = sigAt(sys, ops, 'v')!;
  assert.equal(s.signo, SIGSEGV);
  assert.equal(s.code, SEGV_PKUERR);
  assert.equal(s.pkey, 1);
  assert.equal(s.addr, val(sys, ops, 'x'));
  assert.equal(sys.exitStatus(pid), SIGSEGV);
  // The page was present (the fetch mapped it): a hardware key fault, P|U|PK (rules §7).
  assert.equal(faults[faults.length - 1].errorCode, PF_P | PF_U | PF_PK);
});

test('a later mprotect(PROT_EXEC) reuses the execute-only key and sets AD again if the caller had cleared it', () => {
  const ops: Op[] = [
    mmapAnon('x', 4096),
    mmapAnon('y', 4096),
    sc('mx', 'mprotect', '$x', 4096, PROT_EXEC),
    rdpkru('p1'),
    wrpkru(0),
    sc('my', 'mprotect', '$y', 4096, PROT_EXEC),
    rdpkru('p2'),
    load('v', '$y'),
  ];
  const { sys } = run(ops);
  // spec §1.7 first use: key 1; AD was already set by init_pkru_value, so PKRU is unchanged.
  assert.equal(val(sys, ops, 'p1'), INIT_PKRU);
  // spec §1.7 later uses: the thread's PKRU allowed reads of key 1, so AD is set again.
  assert.equal(val(sys, ops, 'p2'), 0x4n);
  assert.equal(sigAt(sys, ops, 'v')?.pkey, 1, 'the same key guards the second mapping');
});

test('the execute-only key is not user-visible: pkey_free and pkey_mprotect refuse it and it uses up a key', () => {
  const ops: Op[] = [
    mmapAnon('x', 4096),
    mmapAnon('y', 4096),
    sc('mx', 'mprotect', '$x', 4096, PROT_EXEC),
    sc('free', 'pkey_free', 1),
    sc('mp', 'pkey_mprotect', '$y', 4096, PROT_RW, 1),
    ...Array.from({ length: 14 }, (_, i) => sc(`k${i}`, 'pkey_alloc', 0, 0)),
    sc('full', 'pkey_alloc', 0, 0),
  ];
  const { sys } = run(ops);
  // spec §1.7: never offered to pkey_free or pkey_mprotect (-EINVAL; §1.5, §1.6 check 8).
  assert.equal(val(sys, ops, 'free'), BigInt(-EINVAL));
  assert.equal(val(sys, ops, 'mp'), BigInt(-EINVAL));
  // spec §1.4 capacity: the execute-only key consumes one of the 15; pkey_alloc gets 2..15, then ENOSPC.
  for (let i = 0; i < 14; i++) assert.equal(val(sys, ops, `k${i}`), BigInt(i + 2));
  assert.equal(val(sys, ops, 'full'), BigInt(-ENOSPC));
});

test('mprotect back to PROT_READ moves an execute-only VMA to key 0', () => {
  const ops: Op[] = [
    mmapAnon('x', 4096),
    sc('mx', 'mprotect', '$x', 4096, PROT_EXEC),
    sc('mr', 'mprotect', '$x', 4096, PROT_READ),
    rdpkru('p'),
    load('v', '$x'),
  ];
  const { sys, pid } = run(ops);
  // PKRU still denies key 1 (spec §1.7) ...
  assert.equal(val(sys, ops, 'p'), INIT_PKRU);
  // ... but spec §1.6: leaving exec-only moves the VMA to key 0, so the read works.
  assert.equal(val(sys, ops, 'v'), 0n);
  assert.equal(sys.exitStatus(pid), 0);
});

test('mmap(PROT_EXEC) also gets the execute-only key', () => {
  const ops: Op[] = [mmapAnon('x', 4096, PROT_EXEC), fetch('$x'), load('v', '$x')];
  const { sys } = run(ops);
  // spec §1.7: do_mmap with prot == PROT_EXEC uses the execute-only key (1 here).
  assert.equal(records(sys).get(1)?.signal, undefined, 'fetch works');
  const s = sigAt(sys, ops, 'v')!;
  assert.equal(s.code, SEGV_PKUERR);
  assert.equal(s.pkey, 1);
});

test('pkey_mprotect(PROT_EXEC, key) uses the caller\'s key, not the execute-only key', () => {
  const ops: Op[] = [
    mmapAnon('x', 4096),
    sc('mp', 'pkey_mprotect', '$x', 4096, PROT_EXEC, 0),
    load('v', '$x'),
    sc('k', 'pkey_alloc', 0, 0),
  ];
  const { sys } = run(ops);
  // spec §1.6: pkey != -1 -> use the caller's pkey, always: key 0, so the read works ...
  assert.equal(val(sys, ops, 'mp'), 0n);
  assert.equal(val(sys, ops, 'v'), 0n);
  // ... and no execute-only key was allocated: the first pkey_alloc still gets key 1.
  assert.equal(val(sys, ops, 'k'), 1n);
});

// ==== WRPKRU / RDPKRU and the fault (spec §1.2, §1.10; rules §5, §7) ===========================

test('WRPKRU takes effect for the very next access, with no syscall and no TLB flush; RDPKRU reads it back', () => {
  const ops: Op[] = [
    mmapAnon('buf', 4096),
    sc('k', 'pkey_alloc', 0, 0),
    sc('mp', 'pkey_mprotect', '$buf', 4096, PROT_RW, '$k'),
    store('$buf', 5),
    wrpkru(0x55555558), // WD1
    rdpkru('p1'),
    load('a', '$buf'),
    wrpkru(0x55555550),
    store('$buf', 6),
    wrpkru(INIT_PKRU), // AD1
    load('b', '$buf'),
  ];
  const { sys, faults, events } = run(ops);
  assert.equal(val(sys, ops, 'p1'), 0x55555558n);
  // rules §5: WD1 does not stop reads; AD1 stops the next read.
  assert.equal(val(sys, ops, 'a'), 5n);
  const s = sigAt(sys, ops, 'b')!;
  assert.equal(s.code, SEGV_PKUERR);
  assert.equal(s.pkey, 1);
  // Between the last WRPKRU and the #PF: no syscall and no flush; the load used the cached
  // translation (rules §5: the key may be cached, PKRU is evaluated at every access). The only
  // flush is the one the #PF itself makes of the faulting address (cause 'page_fault').
  let from = -1;
  events.forEach((e, i) => {
    if (e.type === 'pkru_write') from = i;
  });
  const to = events.findIndex((e, i) => i > from && e.type === 'fault' && e.vector === 14);
  assert.ok(from >= 0 && to > from);
  const between = events.slice(from, to);
  assert.ok(!between.some((e) => e.type === 'syscall_enter'), 'no syscall');
  assert.ok(!between.some((e) => e.type === 'tlb_flush' && e.cause !== 'page_fault'), 'no TLB flush');
  const buf = val(sys, ops, 'buf');
  assert.ok(between.some((e) => e.type === 'tlb_hit' && BigInt(e.hi) * 2n ** 32n + BigInt(e.lo) === buf), 'the load hit the TLB');
  // The page was present: PK with P (rules §7).
  assert.equal(faults[faults.length - 1].errorCode, PF_P | PF_U | PF_PK);
});

test('SEGV_PKUERR for a key-denied page never faulted in: the software check of the VMA key', () => {
  const ops: Op[] = [
    mmapAnon('buf', 4096),
    sc('k', 'pkey_alloc', 0, PKEY_DISABLE_ACCESS),
    sc('mp', 'pkey_mprotect', '$buf', 4096, PROT_RW, '$k'),
    load('v', '$buf+8'),
  ];
  const { sys, faults } = run(ops);
  const s = sigAt(sys, ops, 'v')!;
  // spec §1.10: access_error's software check refuses the VMA's key: SEGV_PKUERR, si_pkey = the
  // VMA's key, si_addr the faulting address.
  assert.equal(s.signo, SIGSEGV);
  assert.equal(s.code, SEGV_PKUERR);
  assert.equal(s.pkey, 1);
  assert.equal(s.addr, val(sys, ops, 'buf') + 8n);
  // spec §1.2 / rules §7: a non-present PTE gives an ordinary not-present fault, no PK bit.
  assert.equal(faults[faults.length - 1].errorCode, PF_U);
});

test('SEGV_PKUERR for a present page: the hardware PK fault', () => {
  const ops: Op[] = [
    mmapAnon('buf', 4096),
    store('$buf', 1),
    sc('k', 'pkey_alloc', 0, PKEY_DISABLE_ACCESS),
    sc('mp', 'pkey_mprotect', '$buf', 4096, PROT_RW, '$k'),
    store('$buf', 2),
  ];
  const { sys, faults } = run(ops);
  const s = records(sys).get(4)!.signal!;
  assert.equal(s.code, SEGV_PKUERR);
  assert.equal(s.pkey, 1);
  // rules §7: PK with P = 1, W and U describing the access.
  assert.equal(faults[faults.length - 1].errorCode, PF_P | PF_W | PF_U | PF_PK);
});

test('write-disable: reads work, writes are SEGV_PKUERR', () => {
  const ops: Op[] = [
    mmapAnon('buf', 8192),
    store('$buf', 3),
    sc('k', 'pkey_alloc', 0, PKEY_DISABLE_WRITE),
    sc('mp', 'pkey_mprotect', '$buf', 8192, PROT_RW, '$k'),
    rdpkru('p'),
    load('present', '$buf'),
    load('absent', '$buf+4096'),
    store('$buf+4096', 4),
  ];
  const { sys, pid } = run(ops);
  // spec §1.4: PKEY_DISABLE_WRITE sets WD for key 1 (bit 3) and clears its AD.
  assert.equal(val(sys, ops, 'p'), 0x55555558n);
  // spec §1.2: WD[k]=1 -> writes fault; reads are allowed, present page or not.
  assert.equal(val(sys, ops, 'present'), 3n);
  assert.equal(val(sys, ops, 'absent'), 0n);
  const s = records(sys).get(7)!.signal!;
  assert.equal(s.code, SEGV_PKUERR);
  assert.equal(s.pkey, 1);
  assert.equal(sys.exitStatus(pid), SIGSEGV);
});

test('a key-denied PROT_NONE or read-only VMA reports SEGV_PKUERR, not SEGV_ACCERR', () => {
  for (const [prot, access] of [[PROT_NONE, load('v', '$buf')], [PROT_READ, store('$buf', 1)]] as [number, Op][]) {
    const ops: Op[] = [
      mmapAnon('buf', 4096, prot),
      sc('k', 'pkey_alloc', 0, PKEY_DISABLE_ACCESS),
      sc('mp', 'pkey_mprotect', '$buf', 4096, prot, '$k'),
      access,
    ];
    const { sys } = run(ops);
    // spec §1.10 consequences: the pkey check comes first.
    const s = records(sys).get(3)!.signal!;
    assert.equal(s.code, SEGV_PKUERR, `prot ${prot}`);
    assert.equal(s.pkey, 1);
  }
  // Control: the same VMAs with key 0 give SEGV_ACCERR (spec §1.10 table).
  const { sys } = run([mmapAnon('buf', 4096, PROT_NONE), load('v', '$buf')]);
  assert.equal(records(sys).get(1)!.signal!.code, SEGV_ACCERR);
});

test('a SIGSEGV handler sees si_code SEGV_PKUERR, si_addr and si_pkey in its siginfo', () => {
  const handler: Op[] = [
    load('code', `$rsp+${SI_CODE}`),
    load('addr', `$rsp+${SI_ADDR}`),
    load('pkey', `$rsp+${SI_PKEY}`),
    rdpkru('hp'),
    { op: 'longjmp' },
  ];
  const ops: Op[] = [
    ...sigaction(SIGSEGV, '@h'),
    mmapAnon('buf', 4096),
    sc('k1', 'pkey_alloc', 0, 0),
    sc('k2', 'pkey_alloc', 0, PKEY_DISABLE_ACCESS),
    sc('mp', 'pkey_mprotect', '$buf', 4096, PROT_RW, '$k2'),
    load('v', '$buf+0x10'),
    sc('after', 'getpid'),
  ];
  const { sys, pid } = run({ main: ops, functions: { h: handler } });
  const h = (n: string): bigint => val(sys, handler, n, 'h');
  // spec §1.1 / §1.10: SEGV_PKUERR = 4, si_pkey = the VMA's key (2), si_addr the faulting address.
  assert.equal(h('code') & 0xffffffffn, BigInt(SEGV_PKUERR));
  assert.equal(h('addr'), val(sys, ops, 'buf') + 0x10n);
  assert.equal(h('pkey') & 0xffffffffn, 2n);
  // spec §1.9: the handler starts with init_pkru_value.
  assert.equal(h('hp'), INIT_PKRU);
  assert.ok(val(sys, ops, 'after') > 0n, 'longjmp resumed after the faulting load');
  assert.equal(sys.exitStatus(pid), 0);
});

// ==== Kernel and GUP accesses (spec §1.10; rules §3, §9) ======================================

test('a syscall writing into a key-denied buffer returns -EFAULT with no signal (present or not)', () => {
  const ops: Op[] = [
    mmapAnon('buf', 8192),
    store('$buf', 1), // first page present, second never touched
    sc('k', 'pkey_alloc', 0, PKEY_DISABLE_ACCESS),
    sc('mp', 'pkey_mprotect', '$buf', 8192, PROT_RW, '$k'),
    sc('oset', 'rt_sigprocmask', 0, 0, '$buf', 8),
    sc('osetAbsent', 'rt_sigprocmask', 0, 0, '$buf+4096', 8),
    sc('oact', 'rt_sigaction', SIGUSR1, 0, '$buf', 8),
    sc('act', 'rt_sigaction', SIGUSR1, '$buf+4096', 0, 8),
    sc('still', 'getpid'),
  ];
  const { sys, pid } = run(ops);
  // spec §1.10: copy_to_user/copy_from_user fault in kernel mode -> exception fixup -> -EFAULT, no signal.
  for (const n of ['oset', 'osetAbsent', 'oact', 'act']) {
    assert.equal(val(sys, ops, n), BigInt(-EFAULT), n);
    assert.equal(sigAt(sys, ops, n), undefined, `${n}: no signal`);
  }
  assert.ok(sys.log.every((r) => !r.signal), 'no signal at all');
  assert.equal(sys.exitStatus(pid), 0);
});

test('write-disable stops the kernel\'s writes to user memory (CR0.WP=1) but not its reads', () => {
  const ops: Op[] = [
    mmapAnon('buf', 4096),
    store('$buf', 0), // struct sigaction {SIG_DFL, 0, 0, 0}
    sc('k', 'pkey_alloc', 0, PKEY_DISABLE_WRITE),
    sc('mp', 'pkey_mprotect', '$buf', 4096, PROT_RW, '$k'),
    sc('oset', 'rt_sigprocmask', 0, 0, '$buf', 8),
    sc('act', 'rt_sigaction', SIGUSR1, '$buf', 0, 8),
  ];
  const { sys, pid } = run(ops);
  // spec §1.2 / rules §3: WD blocks supervisor writes when CR0.WP = 1 (Linux always sets it).
  assert.equal(val(sys, ops, 'oset'), BigInt(-EFAULT));
  // rules §2: reads need only AD = 0.
  assert.equal(val(sys, ops, 'act'), 0n);
  assert.equal(sys.exitStatus(pid), 0);
});

/** Ops setting up: $iov (local iovec at +0, remote at +16), $lbuf (key 0), $buf = 0x77 guarded by key 1 with AD. */
function vmReadSetup(): Op[] {
  return [
    mmapAnon('iov', 4096),
    mmapAnon('lbuf', 4096),
    mmapAnon('buf', 4096),
    store('$buf', 0x77),
    sc('k', 'pkey_alloc', 0, PKEY_DISABLE_ACCESS),
    sc('mp', 'pkey_mprotect', '$buf', 4096, PROT_RW, '$k'),
    store('$iov', '$lbuf'),
    store('$iov+8', 8),
    store('$iov+16', '$buf'),
    store('$iov+24', 8),
    sc('me', 'getpid'),
  ];
}

test('process_vm_readv of your own key-denied memory succeeds: the remote side is pinned with FOLL_REMOTE, which skips the key check', () => {
  const ops: Op[] = [
    ...vmReadSetup(),
    sc('r1', 'process_vm_readv', '$me', '$iov', 1, '$iov+16', 1, 0),
    load('got', '$lbuf'),
  ];
  const { sys, pid } = run(ops);
  // mm/process_vm_access.c pins with pin_user_pages_remote, which adds FOLL_REMOTE (mm/gup.c
  // is_valid_gup_args); check_vma_flags passes it as arch_vma_access_permitted's `foreign`,
  // which allows any key. On the host (6.18, PKU): process_vm_readv(getpid()) of a page whose
  // key PKRU denies returns the 8 bytes.
  assert.equal(val(sys, ops, 'r1'), 8n);
  assert.equal(val(sys, ops, 'got'), 0x77n);
  assert.equal(sys.exitStatus(pid), 0);
});

test('process_vm_readv of another process\'s key-protected memory ignores the key', () => {
  const child: Op[] = [
    rdpkru('cp'),
    sc('r', 'process_vm_readv', '$me', '$iov', 1, '$iov+16', 1, 0),
    load('got', '$lbuf'),
  ];
  const ops: Op[] = [
    ...vmReadSetup(),
    { op: 'syscall', name: 'fork', into: 'child', child },
    sc('w', 'wait4', -1, 0, 0, 0),
  ];
  const { sys } = run(ops);
  const fn = `main.${at(ops, 'child')}.child`;
  // The child's own PKRU denies key 1 (spec §1.8: copied from the parent) ...
  assert.equal(val(sys, child, 'cp', fn), INIT_PKRU);
  // ... but spec §1.10: process_vm_* to another mm is foreign and skips the key check.
  assert.equal(val(sys, child, 'r', fn), 8n);
  assert.equal(val(sys, child, 'got', fn), 0x77n);
});

// ==== Inheritance (spec §1.8) ===================================================================

test('fork: the child gets the parent\'s live PKRU and a copy of the allocation map and execute-only key', () => {
  const child: Op[] = [
    rdpkru('cp'),
    sc('cfree2', 'pkey_free', 2),
    sc('cfreeX', 'pkey_free', 1),
    sc('calloc', 'pkey_alloc', 0, 0),
  ];
  const ops: Op[] = [
    mmapAnon('x', 4096),
    sc('mx', 'mprotect', '$x', 4096, PROT_EXEC), // execute-only key 1
    sc('k2', 'pkey_alloc', 0, 0), // 2
    sc('k3', 'pkey_alloc', 0, 0), // 3
    wrpkru(0x0f0f0f00),
    { op: 'syscall', name: 'fork', into: 'child', child },
    sc('w', 'wait4', -1, 0, 0, 0),
    sc('palloc', 'pkey_alloc', 0, 0),
  ];
  const { sys } = run(ops);
  const fn = `main.${at(ops, 'child')}.child`;
  // spec §1.8: the parent's live PKRU (RDPKRU at copy_thread).
  assert.equal(val(sys, child, 'cp', fn), 0x0f0f0f00n);
  // spec §1.3 / §1.8: map and execute-only key copied: 2 is allocated, 1 is the exec-only key.
  assert.equal(val(sys, child, 'cfree2', fn), 0n);
  assert.equal(val(sys, child, 'cfreeX', fn), BigInt(-EINVAL));
  // The child's copy had 1..3 taken and 2 freed: lowest free is 2.
  assert.equal(val(sys, child, 'calloc', fn), 2n);
  // The parent's map is its own: 1..3 taken, next is 4.
  assert.equal(val(sys, ops, 'palloc'), 4n);
});

test('vfork: the child gets the parent\'s live PKRU and shares the allocation map, not PKRU', () => {
  const child: Op[] = [rdpkru('cp'), sc('ck', 'pkey_alloc', 0, 0), rdpkru('cp2')];
  const ops: Op[] = [
    wrpkru(0x0000000c),
    { op: 'syscall', name: 'vfork', into: 'child', child },
    rdpkru('pp'),
    sc('pk', 'pkey_alloc', 0, 0),
  ];
  const { sys } = run(ops);
  const fn = `main.${at(ops, 'child')}.child`;
  assert.equal(val(sys, child, 'cp', fn), 0x0000000cn, 'spec §1.8: the parent\'s live PKRU');
  assert.equal(val(sys, child, 'ck', fn), 1n);
  assert.equal(val(sys, child, 'cp2', fn), 0n, 'spec §1.4: the child\'s own field for key 1 cleared');
  // spec §1.4: other threads' PKRU untouched; spec §1.8: the map is shared (same mm), so the next key is 2.
  assert.equal(val(sys, ops, 'pp'), 0x0000000cn);
  assert.equal(val(sys, ops, 'pk'), 2n);
});

test('clone(CLONE_VM|CLONE_THREAD): the thread gets the PKRU live at clone time; each thread keeps its own', () => {
  const thread: Op[] = [rdpkru('t0'), wrpkru(0x00000030), sc('ty', 'sched_yield'), rdpkru('t1')];
  const ops: Op[] = [
    mmapAnon('stk', 16384),
    wrpkru(0x0f0f0f00),
    { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, '$stk+0x3ff0', 0, 0, 0], into: 'tid', child: thread },
    wrpkru(0x000000c0),
    sc('y1', 'sched_yield'),
    rdpkru('m1'),
    sc('y2', 'sched_yield'),
    sc('y3', 'sched_yield'),
  ];
  const { sys } = run(ops, { cpus: 1 });
  const fn = `main.${at(ops, 'tid')}.child`;
  const log = sys.log.map((r) => `${r.fn}:${r.index}`);
  assert.ok(log.indexOf(`${fn}:0`) > log.indexOf('main:3'), 'the thread started after the parent changed its PKRU');
  // spec §1.8: the parent's live PKRU at the time of clone, not later changes.
  assert.equal(val(sys, thread, 't0', fn), 0x0f0f0f00n);
  // spec §1.2: PKRU is thread-local, saved and restored across context switches.
  assert.equal(val(sys, thread, 't1', fn), 0x00000030n);
  assert.equal(val(sys, ops, 'm1'), 0x000000c0n);
});

test('execve resets PKRU to init_pkru_value and gives a fresh allocation map', () => {
  const next: Op[] = [rdpkru('p'), sc('free1', 'pkey_free', 1), sc('free2', 'pkey_free', 2), sc('k', 'pkey_alloc', 0, 0)];
  const sys = boot();
  sys.addImage('next', { main: next });
  const pid = sys.spawn({
    main: [
      mmapAnon('x', 4096),
      sc('mx', 'mprotect', '$x', 4096, PROT_EXEC), // execute-only key 1
      sc('k2', 'pkey_alloc', 0, 0), // 2
      wrpkru(0),
      sc('ex', 'execve', '&next', 0, 0),
    ],
    strings: { next: 'next' },
  });
  sys.run();
  assert.deepEqual(sys.debugReports, []);
  const r = new Map(sys.log.filter((x) => x.image === 'next').map((x) => [x.index, x.value]));
  // spec §1.8: flush_thread -> pkru_write_default.
  assert.equal(r.get(0), INIT_PKRU);
  // spec §1.8: fresh mm, map = 0x1, exec-only = -1: key 2 is not allocated (pkey_free EINVAL) ...
  assert.equal(BigInt.asIntN(64, r.get(1)!), BigInt(-EINVAL));
  assert.equal(BigInt.asIntN(64, r.get(2)!), BigInt(-EINVAL));
  // ... and the lowest free key is 1 again.
  assert.equal(r.get(3), 1n);
  assert.equal(sys.exitStatus(pid), 0);
});

// ==== PKRU at signal delivery (spec §1.9; pkru_on_signal) =====================================

const INTERRUPTED = 0x0f0f0f00n; // key 0 open, so the alternatives can write the frame

/** main: set PKRU to INTERRUPTED, raise SIGUSR1 (handler h), read PKRU after sigreturn. */
function signalProgram(h: Op[], extra: Record<string, Op[]> = {}, before: Op[] = []): { main: Op[]; functions: Record<string, Op[]> } {
  return {
    main: [...before, ...sigaction(SIGUSR1, '@h'), wrpkru(INTERRUPTED), ...raise(SIGUSR1), rdpkru('after')],
    functions: { h, ...extra },
  };
}

test('upstream: the handler starts with init_pkru_value; rt_sigreturn restores the interrupted PKRU', () => {
  const h: Op[] = [rdpkru('hp'), wrpkru(0x3c)];
  const p = signalProgram(h);
  const { sys, pid } = run(p);
  // spec §1.9 step 6: fpu__clear_user_states writes init_pkru_value.
  assert.equal(val(sys, h, 'hp', 'h'), INIT_PKRU);
  // spec §1.9 sigreturn: PKRU := the frame's value, the original pre-signal PKRU (the handler's WRPKRU is undone).
  assert.equal(val(sys, p.main, 'after'), INTERRUPTED);
  assert.equal(sys.exitStatus(pid), 0);
});

test('upstream: nested signals also start at init_pkru_value, and each sigreturn restores its own frame\'s PKRU', () => {
  const h: Op[] = [rdpkru('h1a'), wrpkru(0), ...raise(SIGUSR2, 'k2'), rdpkru('h1b')];
  const h2: Op[] = [rdpkru('h2a')];
  const p = signalProgram(h, { h2 }, sigaction(SIGUSR2, '@h2'));
  const { sys, pid } = run(p);
  // spec §1.9: "This holds for nested signals too".
  assert.equal(val(sys, h, 'h1a', 'h'), INIT_PKRU);
  assert.equal(val(sys, h2, 'h2a', 'h2'), INIT_PKRU);
  assert.equal(val(sys, h, 'h1b', 'h'), 0n, 'the inner sigreturn restored the outer handler\'s PKRU');
  assert.equal(val(sys, p.main, 'after'), INTERRUPTED);
  assert.equal(sys.exitStatus(pid), 0);
});

test('upstream: the XSAVE area in the frame holds the interrupted PKRU, and a handler\'s edit of it takes effect at sigreturn', () => {
  const EDITED = 0x00000030n;
  const h: Op[] = [rdpkru('hp'), store('$fp+' + XSAVE_PKRU, EDITED, 4)];
  const sys = boot();
  const pid = sys.spawn(signalProgram(h));
  // Run until the handler has started, then find its XSAVE area from outside (by the
  // software magic, not the sigcontext slot, which the next test covers).
  while (!records(sys, 'h').has(0)) assert.ok(sys.step(), 'the handler never ran');
  const t = sys.task(pid)!;
  const frame = t.sp;
  let fp = -1;
  for (let a = Math.ceil(frame / 64) * 64; a + 4096 <= STACK_TOP; a += 64) {
    if (u32(readUser(sys, pid, a + SW_MAGIC1, 4)) === FP_XSTATE_MAGIC1) {
      fp = a;
      break;
    }
  }
  assert.ok(fp > frame, 'an xstate frame above the rt_sigframe');
  // spec §1.9 step 3: the PKRU slot holds the original PKRU, and XSTATE_BV[PKRU] = 1.
  assert.equal(BigInt(u32(readUser(sys, pid, fp + XSAVE_PKRU, 4))), INTERRUPTED);
  assert.ok(u64(readUser(sys, pid, fp + XSTATE_BV, 8)) & XFEATURE_MASK_PKRU);
  t.vars.set('fp', BigInt(fp));
  sys.run();
  assert.deepEqual(sys.debugReports, []);
  // spec §1.9 sigreturn: "the handler may have edited it".
  assert.equal(val(sys, signalProgram(h).main, 'after'), EDITED);
  assert.equal(sys.exitStatus(pid), 0);
});

test('upstream: a handler finds the XSAVE area through uc_mcontext.fpstate and edits PKRU there',

  () => {
    const EDITED = 0x00000030n;
    const h: Op[] = [load('fp', `$rsp+${SC_FPSTATE}`), store('$fp+' + XSAVE_PKRU, EDITED, 4)];
    const p = signalProgram(h);
    const sys = boot();
    const pid = sys.spawn(p);
    sys.run();
    // spec §1.9 sigreturn: PKRU := the (edited) value in the frame.
    assert.equal(val(sys, p.main, 'after'), EDITED);
    assert.equal(sys.exitStatus(pid), 0);
  });

test('upstream: the kernel writes the frame with PKRU 0, so a key-protected stack still gets it; pre-6.12 (preserve) it fails with SIGSEGV', () => {
  // The whole stack guarded by key 1, which PKRU access-disables.
  const before: Op[] = [
    sc('k', 'pkey_alloc', 0, PKEY_DISABLE_ACCESS),
    sc('mps', 'pkey_mprotect', STACK_TOP - STACK_SIZE, STACK_SIZE, PROT_RW, '$k'),
  ];
  const h: Op[] = [rdpkru('hp'), wrpkru(0x55555550)]; // open key 1 before touching the stack (the return)
  const program = (): Program => ({
    main: [...sigaction(SIGUSR1, '@h'), ...before, ...raise(SIGUSR1), rdpkru('after')],
    functions: { h },
  });
  const up = run(program());
  // spec §1.9 step 2 (6.12): PKRU = 0 while the frame is written; step 6: the handler gets init PKRU.
  assert.equal(val(up.sys, h, 'hp', 'h'), INIT_PKRU);
  assert.equal(val(up.sys, program().main, 'after'), INIT_PKRU, 'sigreturn restored the interrupted PKRU (key 1 AD)');
  assert.equal(up.sys.exitStatus(up.pid), 0);
  // spec §1.9 history: before 6.12 the frame was written with the interrupted PKRU: delivery
  // fails and SIGSEGV is forced (pkru_on_signal alternatives write the frame that way).
  const pre = run(program(), { kernel: { pkru_on_signal: 'preserve' } });
  assert.equal(records(pre.sys, 'h').size, 0, 'the handler never ran');
  assert.equal(pre.sys.exitStatus(pre.pid), SIGSEGV);
});

test('pkru_on_signal=clear: the handler runs with PKRU 0; sigreturn restores the interrupted PKRU', () => {
  const h: Op[] = [rdpkru('hp')];
  const p = signalProgram(h);
  const { sys, pid } = run(p, { kernel: { pkru_on_signal: 'clear' } });
  // options.ts pkru_on_signal "clear: the handler runs with PKRU 0, every key open".
  assert.equal(val(sys, h, 'hp', 'h'), 0n);
  // The frame's XSAVE image holds the interrupted PKRU either way (spec §1.9 sigreturn).
  assert.equal(val(sys, p.main, 'after'), INTERRUPTED);
  assert.equal(sys.exitStatus(pid), 0);
});

test('pkru_on_signal=preserve: the handler keeps the interrupted PKRU; sigreturn restores it after the handler changes it', () => {
  const h: Op[] = [rdpkru('hp'), wrpkru(0x3c)];
  const p = signalProgram(h);
  const { sys, pid } = run(p, { kernel: { pkru_on_signal: 'preserve' } });
  // options.ts pkru_on_signal "preserve: the handler keeps the interrupted PKRU".
  assert.equal(val(sys, h, 'hp', 'h'), INTERRUPTED);
  assert.equal(val(sys, p.main, 'after'), INTERRUPTED);
  assert.equal(sys.exitStatus(pid), 0);
});

test('pkru_on_signal=lockdown: every key denied, so the handler dies at its return through the key-0 stack', () => {
  const h: Op[] = [rdpkru('hp')];
  const p = signalProgram(h);
  const { sys, pid } = run(p, { kernel: { pkru_on_signal: 'lockdown' } });
  // options.ts pkru_on_signal "lockdown: every key access- and write-disabled" (no execute-only key here).
  assert.equal(val(sys, h, 'hp', 'h'), 0xffffffffn);
  // The return reads the stack (key 0, AD): SEGV_PKUERR, si_pkey 0 (spec §1.10), and the process dies.
  const s = sys.log.find((r) => r.fn === 'h' && r.signal)?.signal;
  assert.equal(s?.signo, SIGSEGV);
  assert.equal(s?.code, SEGV_PKUERR);
  assert.equal(s?.pkey, 0);
  assert.equal(records(sys).get(p.main.length - 1), undefined, 'main never resumed');
  assert.equal(sys.exitStatus(pid), SIGSEGV);
});

test('pkru_on_signal=lockdown keeps the execute-only key access-disabled but not write-disabled', () => {
  const h: Op[] = [rdpkru('hp')];
  const p = signalProgram(h, {}, [mmapAnon('x', 4096, PROT_EXEC)]); // execute-only key 1 (spec §1.7)
  const { sys } = run(p, { kernel: { pkru_on_signal: 'lockdown' } });
  // options.ts: "except the execute-only key, which keeps access-disable": key 1 = AD only (bits 3:2 = 01).
  assert.equal(val(sys, h, 'hp', 'h'), 0xfffffff7n);
});
