/**
 * User shadow stacks (CET SHSTK): arch_prctl's ARCH_SHSTK_* calls, map_shadow_stack, the
 * shadow-stack PTE encoding and SavedDirty, CALL/RET/WRSS/RDSSP, #CP, fork/vfork/threads/exec,
 * signals and the VMA rules. Every expected value comes from the spec
 * (/work/shared/spec/linux-x86-isolation.md §2, "spec §2.x" below, and x86-access-rules.md,
 * "access rules §x"), never from running the model.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PTE_A, PTE_D, PTE_P, PTE_RW, PTE_SOFTW3, PTE_US, PTEH_SAVED_DIRTY, PTEH_XD } from '../../src/hw/pte.js';
import {
  __pte, pte_dirty, pte_mkclean, pte_mkdirty, pte_mkwrite, pte_modify, pte_write, pte_wrprotect, type pte_t,
} from '../../src/kernel/pgtable.js';
import type { SigInfo, Task } from '../../src/kernel/task.js';
import { VM_READ, VM_WRITE } from '../../src/kernel/vma.js';
import type { System, SystemConfig } from '../../src/system.js';
import type { Op, Program } from '../../src/user/program.js';
import { boot, mmapAnon, records, ret, runProgram } from './helpers.js';

// spec §0 error values.
const EPERM = 1, ENOMEM = 12, EFAULT = 14, EEXIST = 17, EINVAL = 22, ENOSPC = 28, ERANGE = 34, EOVERFLOW = 75, EOPNOTSUPP = 95;
// spec §2.1 constants.
const ENABLE = 0x5001, DISABLE = 0x5002, LOCK = 0x5003, UNLOCK = 0x5004, STATUS = 0x5005;
const SHSTK = 1, WRSS = 2;
const SET_TOKEN = 1, SET_MARKER = 2;
const SEGV_CPERR = 10;
const CP_NEAR_RET = 1;
const FOUR_GIB = 2 ** 32;
/** spec §2.1: default size min(RLIMIT_STACK, 4 GiB), RLIMIT_STACK being 8 MiB (brief). */
const DEFAULT_SHSTK_SIZE = 8 * 2 ** 20;
// Signals and si_codes (uapi asm-generic/siginfo.h).
const SIGILL = 4, SIGSEGV = 11, SIGUSR1 = 10;
const SEGV_MAPERR = 1, SEGV_ACCERR = 2, ILL_ILLOPN = 2;
const PROT_READ = 1, PROT_WRITE = 2;
const MAP_FIXED_NOREPLACE = 0x100000;
const SA_RESTORER = 0x04000000;
const CLONE_THREAD_FLAGS = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x40000; // VM FS FILES SIGHAND THREAD SYSVSEM
/** A fixed address well above 4 GiB and away from the top-down mmap area. */
const H = 0x300000000000n;
const NO_SHSTK_CPU: SystemConfig = { cpu: { shstk: false } };
const NOUSERSHSTK: SystemConfig = { kernel: { nousershstk: true } };

const sc = (name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args });
const prctl = (option: number, arg2: number | bigint | string): Op => sc('arch_prctl', option, arg2);
/** ARCH_SHSTK_STATUS into $st, then the features loaded into `into` (two ops). */
const status = (into: string): Op[] => [prctl(STATUS, '$st'), { op: 'load', addr: '$st', into }];
const stbuf = mmapAnon('st', 4096);
/** map_shadow_stack(addr, size, flags). */
const mss = (addr: number | bigint | string, size: number | bigint, flags: number, into?: string): Op => ({ op: 'syscall', name: 'map_shadow_stack', args: [addr, size, flags], into });

/** The results of ops `indexes` of main. */
const rets = (sys: System, indexes: number[], fn = 'main'): bigint[] => indexes.map((i) => ret(sys, i, fn));
const E = (...errs: number[]): bigint[] => errs.map((e) => BigInt(e));

/** The PTE mapping `va` in `t`'s page tables (its table must exist). */
function pteOf(sys: System, t: Task, va: number | bigint): { lo: number; hi: number } {
  const a = Number(va);
  const table = t.mm!.pgtables.pteTable(a, false);
  assert.ok(table >= 0, `no PTE table for 0x${a.toString(16)}`);
  const i = Math.floor(a / 4096) % 512;
  return { lo: sys.kernel.machine.mem.readLo(table, i), hi: sys.kernel.machine.mem.readHi(table, i) };
}

/** (R/W, D, SD) of an entry. */
function rwdsd(p: { lo: number; hi: number }): [number, number, number] {
  return [p.lo & PTE_RW ? 1 : 0, p.lo & PTE_D ? 1 : 0, p.hi & PTEH_SAVED_DIRTY ? 1 : 0];
}

/** Steps until `cond` holds (fails if the system runs dry or too long first). */
function stepUntil(sys: System, cond: () => boolean, what: string): void {
  for (let i = 0; i < 200_000 && !cond(); i++) if (!sys.step()) break;
  assert.ok(cond(), `never reached: ${what}`);
}

/** Op `index` of `fn` has completed (and been logged), by task `tid` if given. */
const did = (sys: System, fn: string, index: number, tid?: number) => (): boolean =>
  sys.log.some((r) => r.fn === fn && r.index === index && (tid === undefined || r.tid === tid));

/** Boots, spawns `program`, runs it to the end; returns the system, the pid and the first synchronous signal logged. */
function crash(program: Program, config: SystemConfig = {}): { sys: System; pid: number; sig: SigInfo | undefined } {
  const sys = boot(config);
  const pid = sys.spawn(program);
  sys.run({ maxSteps: 1_000_000 });
  assert.deepEqual(sys.debugReports, []);
  return { sys, pid, sig: sys.log.find((r) => r.signal)?.signal };
}

/** The text address of op `index` of function `fn` of the first spawned image, 'init' (16 bytes an op). */
function opAddr(sys: System, fn: string, index: number): bigint {
  const f = sys.kernel.images.get('init')!.byName.get(fn)!;
  return BigInt(f.base + index * 16);
}

// ---- §2.2 arch_prctl, row by row ------------------------------------------------------------

test('§2.2 row 1: ARCH_SHSTK_STATUS writes thread.features, -EFAULT for a bad pointer', () => {
  const { sys } = runProgram([
    stbuf,
    ...status('f0'), // 1, 2
    prctl(ENABLE, SHSTK), // 3
    ...status('f1'), // 4, 5
    prctl(ENABLE, WRSS), // 6
    ...status('f2'), // 7, 8
    prctl(STATUS, 0x10000000), // 9: unmapped
    prctl(STATUS, 0), // 10: NULL
  ]);
  const r = records(sys);
  // spec §2.2 row 1: put_user(features): nothing, then SHSTK (bit 0), then SHSTK|WRSS (bit 1).
  assert.equal(r.get(2)!.value, 0n);
  assert.equal(r.get(5)!.value, BigInt(SHSTK));
  assert.equal(r.get(8)!.value, BigInt(SHSTK | WRSS));
  assert.deepEqual(rets(sys, [1, 4, 7]), E(0, 0, 0));
  // spec §2.2 row 1: put_user fails -> -EFAULT.
  assert.deepEqual(rets(sys, [9, 10]), E(-EFAULT, -EFAULT));
});

test('§2.2 row 1: ARCH_SHSTK_STATUS works without CPU support and with nousershstk', () => {
  for (const config of [NO_SHSTK_CPU, NOUSERSHSTK]) {
    const { sys } = runProgram([stbuf, ...status('f'), prctl(STATUS, 0x10000000)], config);
    // spec §2.2 row 1: "Works even without CPU support": 0, features 0; a bad pointer still -EFAULT.
    assert.equal(ret(sys, 1), 0n);
    assert.equal(records(sys).get(2)!.value, 0n);
    assert.equal(ret(sys, 3), BigInt(-EFAULT));
  }
});

test('§2.2 row 2: ARCH_SHSTK_LOCK takes any bits unvalidated, even without CPU support', () => {
  const { sys } = runProgram([
    stbuf,
    prctl(LOCK, 0xfff0n), // 1: bits that are no feature
    prctl(LOCK, 1n << 63n), // 2
    prctl(LOCK, 0), // 3
    prctl(ENABLE, SHSTK), // 4: SHSTK itself is not locked
    ...status('f'), // 5, 6
  ]);
  // spec §2.2 row 2: features_locked |= arg2, unvalidated -> 0.
  assert.deepEqual(rets(sys, [1, 2, 3, 4]), E(0, 0, 0, 0));
  assert.equal(records(sys).get(6)!.value, BigInt(SHSTK));
  for (const config of [NO_SHSTK_CPU, NOUSERSHSTK]) {
    const { sys: s2 } = runProgram([prctl(LOCK, SHSTK | WRSS), prctl(LOCK, 0x1234)], config);
    // spec §2.2 row 2: "Works even without CPU support".
    assert.deepEqual(rets(s2, [0, 1]), E(0, 0));
  }
});

// spec §2.2 row 3 (target != current, the ptrace path) is not reachable: the model has no ptrace.

test('§2.2 row 4: a locked bit gives -EPERM, before the one-bit check and before CPU support is asked', () => {
  const { sys } = runProgram([
    prctl(LOCK, SHSTK), // 0
    prctl(ENABLE, SHSTK), // 1
    prctl(DISABLE, SHSTK), // 2
    prctl(ENABLE, SHSTK | WRSS), // 3: two bits, one locked: row 4 comes before row 5
    prctl(UNLOCK, SHSTK), // 4: UNLOCK from the thread itself does not unlock
    prctl(ENABLE, SHSTK), // 5: still locked
    prctl(ENABLE, WRSS), // 6: not locked: row 10, SHSTK not enabled
  ]);
  // spec §2.2 row 4: arg2 & features_locked -> -EPERM.
  assert.deepEqual(rets(sys, [0, 1, 2, 3, 4, 5]), E(0, -EPERM, -EPERM, -EPERM, -EPERM, -EPERM));
  // spec §2.2 row 10: ENABLE WRSS with SHSTK not enabled -> -EPERM.
  assert.equal(ret(sys, 6), BigInt(-EPERM));
  // On a CPU without shadow stacks the lock still wins over row 9's -EOPNOTSUPP.
  const { sys: s2 } = runProgram([prctl(LOCK, SHSTK), prctl(ENABLE, SHSTK), prctl(DISABLE, SHSTK)], NO_SHSTK_CPU);
  assert.deepEqual(rets(s2, [1, 2]), E(-EPERM, -EPERM));
});

test('§2.2 row 4: locking after enabling keeps the feature and refuses to disable it', () => {
  const { sys } = runProgram([
    stbuf,
    prctl(ENABLE, SHSTK), // 1
    prctl(LOCK, SHSTK), // 2
    prctl(DISABLE, SHSTK), // 3
    ...status('f'), // 4, 5
    prctl(ENABLE, WRSS), // 6: WRSS is not locked
    prctl(DISABLE, WRSS), // 7
  ]);
  assert.deepEqual(rets(sys, [1, 2]), E(0, 0));
  // spec §2.2 row 4: -EPERM; the shadow stack stays on (STATUS = SHSTK).
  assert.equal(ret(sys, 3), BigInt(-EPERM));
  assert.equal(records(sys).get(5)!.value, BigInt(SHSTK));
  // spec §2.2 rows 10 and 6: WRSS can still be switched.
  assert.deepEqual(rets(sys, [6, 7]), E(0, 0));
});

test('§2.2 row 5: more than one bit gives -EINVAL, before CPU support is asked', () => {
  const { sys } = runProgram([
    prctl(ENABLE, SHSTK | WRSS),
    prctl(DISABLE, SHSTK | WRSS),
    prctl(ENABLE, SHSTK | 4),
    prctl(UNLOCK, SHSTK | WRSS),
  ]);
  // spec §2.2 row 5: hweight(arg2) > 1 -> -EINVAL.
  assert.deepEqual(rets(sys, [0, 1, 2, 3]), E(-EINVAL, -EINVAL, -EINVAL, -EINVAL));
  const { sys: s2 } = runProgram([prctl(ENABLE, SHSTK | WRSS), prctl(DISABLE, SHSTK | WRSS)], NO_SHSTK_CPU);
  // Row 5 precedes rows 6-10 and their -EOPNOTSUPP.
  assert.deepEqual(rets(s2, [0, 1]), E(-EINVAL, -EINVAL));
});

test('§2.2 row 6: DISABLE WRSS: -EOPNOTSUPP without support, -EPERM with the shadow stack off, else clears WRSS', () => {
  const { sys } = runProgram([
    stbuf,
    prctl(DISABLE, WRSS), // 1: shstk not enabled
    prctl(ENABLE, SHSTK), // 2
    prctl(DISABLE, WRSS), // 3: WRSS already off: 0
    prctl(ENABLE, WRSS), // 4
    prctl(DISABLE, WRSS), // 5
    ...status('f'), // 6, 7
  ]);
  // spec §2.2 row 6: shstk not enabled -> -EPERM; otherwise clear WRSS -> 0.
  assert.equal(ret(sys, 1), BigInt(-EPERM));
  assert.deepEqual(rets(sys, [2, 3, 4, 5]), E(0, 0, 0, 0));
  assert.equal(records(sys).get(7)!.value, BigInt(SHSTK));
  for (const config of [NO_SHSTK_CPU, NOUSERSHSTK]) {
    const { sys: s2 } = runProgram([prctl(DISABLE, WRSS)], config);
    // spec §2.2 row 6: no USER_SHSTK -> -EOPNOTSUPP.
    assert.equal(ret(s2, 0), BigInt(-EOPNOTSUPP));
  }
});

test('§2.2 row 7: DISABLE SHSTK when off is 0; without support -EOPNOTSUPP', () => {
  const { sys } = runProgram([prctl(DISABLE, SHSTK), prctl(DISABLE, SHSTK)]);
  // spec §2.2 row 7: not enabled -> 0 (no-op).
  assert.deepEqual(rets(sys, [0, 1]), E(0, 0));
  for (const config of [NO_SHSTK_CPU, NOUSERSHSTK]) {
    const { sys: s2 } = runProgram([prctl(DISABLE, SHSTK)], config);
    // spec §2.2 row 7: no USER_SHSTK -> -EOPNOTSUPP (checked before "not enabled").
    assert.equal(ret(s2, 0), BigInt(-EOPNOTSUPP));
  }
});

test('§2.2 row 7: DISABLE SHSTK clears SHSTK and WRSS, turns RDSSP into a no-op and unmaps the stack', () => {
  const { sys, sig } = crash({ main: [
    stbuf,
    prctl(ENABLE, SHSTK), // 1
    prctl(ENABLE, WRSS), // 2
    { op: 'rdssp', into: 'ssp' }, // 3
    prctl(DISABLE, SHSTK), // 4
    ...status('f'), // 5, 6
    { op: 'rdssp', into: 'after' }, // 7
    { op: 'load', addr: '$ssp-8' }, // 8: the old stack's top entry
  ] });
  const r = records(sys);
  assert.deepEqual(rets(sys, [1, 2, 4]), E(0, 0, 0));
  // spec §2.2 row 7: SHSTK and WRSS cleared.
  assert.equal(r.get(6)!.value, 0n);
  // spec §2.2 row 7: U_CET = 0: RDSSP is a no-op (no value).
  assert.equal(r.get(7)!.value, undefined);
  // spec §2.2 row 7: shstk_free unmapped the stack: a load there has no VMA (SEGV_MAPERR).
  assert.equal(sig?.signo, SIGSEGV);
  assert.equal(sig?.code, SEGV_MAPERR);
  assert.equal(sig?.addr, r.get(3)!.value! - 8n);
});

test('§2.2 row 7: DISABLE SHSTK with only WRSS locked still clears both', () => {
  const { sys } = runProgram([
    stbuf,
    prctl(ENABLE, SHSTK), // 1
    prctl(ENABLE, WRSS), // 2
    prctl(LOCK, WRSS), // 3
    prctl(DISABLE, WRSS), // 4: locked
    prctl(DISABLE, SHSTK), // 5: SHSTK is not locked
    ...status('f'), // 6, 7
  ]);
  // spec §2.2 row 4 for WRSS; row 7 "clear SHSTK and WRSS" for SHSTK (only arg2's bits are checked against the lock).
  assert.equal(ret(sys, 4), BigInt(-EPERM));
  assert.equal(ret(sys, 5), 0n);
  assert.equal(records(sys).get(7)!.value, 0n);
});

test('§2.2 row 8: DISABLE with a zero or unknown bit is -EINVAL', () => {
  const { sys } = runProgram([prctl(DISABLE, 0), prctl(DISABLE, 4), prctl(DISABLE, 1n << 63n)]);
  // spec §2.2 row 8.
  assert.deepEqual(rets(sys, [0, 1, 2]), E(-EINVAL, -EINVAL, -EINVAL));
});

test('§2.2 row 9: ENABLE SHSTK: -EOPNOTSUPP on a CPU without shadow stacks and with nousershstk', () => {
  for (const config of [NO_SHSTK_CPU, NOUSERSHSTK]) {
    const { sys } = runProgram([stbuf, prctl(ENABLE, SHSTK), ...status('f')], config);
    // spec §2.2 row 9: no USER_SHSTK -> -EOPNOTSUPP; nothing enabled.
    assert.equal(ret(sys, 1), BigInt(-EOPNOTSUPP));
    assert.equal(records(sys).get(3)!.value, 0n);
  }
});

test('§2.2 row 9: ENABLE SHSTK maps a default-size stack at/above 4 GiB with SSP at its top and no token', () => {
  const sys = boot();
  const pid = sys.spawn({ main: [
    stbuf,
    prctl(ENABLE, SHSTK), // 1
    { op: 'rdssp', into: 'ssp' }, // 2
    { op: 'load', addr: '$ssp-8', into: 'top' }, // 3
    prctl(ENABLE, SHSTK), // 4: already enabled
    ...status('f'), // 5, 6
    sc('getpid'), // 7: checkpoint
  ] });
  stepUntil(sys, did(sys, 'main', 6), 'STATUS loaded');
  const t = sys.task(pid)!;
  const r = records(sys);
  assert.equal(ret(sys, 1), 0n);
  const ssp = Number(r.get(2)!.value!);
  const stacks = t.mm!.vmas.list.filter((v) => v.shadowStack);
  // spec §2.2 row 9: already enabled -> 0 without a second stack.
  assert.equal(ret(sys, 4), 0n);
  assert.equal(stacks.length, 1);
  const v = stacks[0];
  // spec §2.1 default size min(RLIMIT_STACK, 4 GiB); §2.3 step 6 / §2.1 MAP_ABOVE4G.
  assert.equal(v.vm_end - v.vm_start, DEFAULT_SHSTK_SIZE);
  assert.ok(v.vm_start >= FOUR_GIB);
  // spec §2.2 row 9: PL3_SSP = base + size, no token written (the top entry reads 0).
  assert.equal(ssp, v.vm_end);
  assert.equal(r.get(3)!.value, 0n);
  assert.equal(r.get(6)!.value, BigInt(SHSTK));
  sys.run();
  assert.deepEqual(sys.debugReports, []);
});

test('§2.2 row 10: ENABLE WRSS: -EOPNOTSUPP without support, -EPERM before SHSTK, then 0', () => {
  const { sys } = runProgram([
    stbuf,
    prctl(ENABLE, WRSS), // 1
    prctl(ENABLE, SHSTK), // 2
    prctl(ENABLE, WRSS), // 3
    prctl(ENABLE, WRSS), // 4: already on
    ...status('f'), // 5, 6
  ]);
  // spec §2.2 row 10: SHSTK not enabled -> -EPERM; otherwise WRSS_EN set -> 0.
  assert.equal(ret(sys, 1), BigInt(-EPERM));
  assert.deepEqual(rets(sys, [2, 3, 4]), E(0, 0, 0));
  assert.equal(records(sys).get(6)!.value, BigInt(SHSTK | WRSS));
  for (const config of [NO_SHSTK_CPU, NOUSERSHSTK]) {
    const { sys: s2 } = runProgram([prctl(ENABLE, WRSS)], config);
    // spec §2.2 row 10: no USER_SHSTK -> -EOPNOTSUPP.
    assert.equal(ret(s2, 0), BigInt(-EOPNOTSUPP));
  }
});

test('§2.2 row 11: ENABLE or UNLOCK with a zero or unknown bit is -EINVAL', () => {
  const { sys } = runProgram([prctl(ENABLE, 0), prctl(ENABLE, 4), prctl(ENABLE, 1n << 63n), prctl(UNLOCK, 0), prctl(UNLOCK, 8)]);
  // spec §2.2 row 11.
  assert.deepEqual(rets(sys, [0, 1, 2, 3, 4]), E(-EINVAL, -EINVAL, -EINVAL, -EINVAL, -EINVAL));
});

test('§2.2 quirk: UNLOCK(SHSTK) or UNLOCK(WRSS) from the thread itself behaves as ENABLE', () => {
  const { sys } = runProgram([
    stbuf,
    prctl(UNLOCK, WRSS), // 1: as ENABLE WRSS before SHSTK: -EPERM
    prctl(UNLOCK, SHSTK), // 2: as ENABLE SHSTK
    ...status('f1'), // 3, 4
    { op: 'rdssp', into: 'ssp' }, // 5
    prctl(UNLOCK, WRSS), // 6: as ENABLE WRSS
    ...status('f2'), // 7, 8
  ]);
  // spec §2.2 quirk: falls through to the enable logic (rows 9 and 10).
  assert.equal(ret(sys, 1), BigInt(-EPERM));
  assert.equal(ret(sys, 2), 0n);
  const r = records(sys);
  assert.equal(r.get(4)!.value, BigInt(SHSTK));
  assert.ok(r.get(5)!.value! >= BigInt(FOUR_GIB), 'a shadow stack is in use');
  assert.equal(ret(sys, 6), 0n);
  assert.equal(r.get(8)!.value, BigInt(SHSTK | WRSS));
  const { sys: s2 } = runProgram([prctl(UNLOCK, SHSTK)], NO_SHSTK_CPU);
  // As ENABLE: row 9's -EOPNOTSUPP without support.
  assert.equal(ret(s2, 0), BigInt(-EOPNOTSUPP));
});

// ---- §2.3 map_shadow_stack -------------------------------------------------------------------

test('§2.3 #1: map_shadow_stack is -EOPNOTSUPP without USER_SHSTK, before the flags check', () => {
  for (const config of [NO_SHSTK_CPU, NOUSERSHSTK]) {
    const { sys } = runProgram([mss(0, 4096, 0), mss(0, 4096, SET_MARKER), mss(0x1000, 4, SET_TOKEN)], config);
    // spec §2.3 #1.
    assert.deepEqual(rets(sys, [0, 1, 2]), E(-EOPNOTSUPP, -EOPNOTSUPP, -EOPNOTSUPP));
  }
});

test('§2.3 #2: flags other than SET_TOKEN are -EINVAL (SET_MARKER included), before the size check', () => {
  const { sys } = runProgram([
    mss(0, 4096, SET_MARKER),
    mss(0, 4096, SET_TOKEN | SET_MARKER),
    mss(0, 4096, 4),
    mss(0x1000, 4, SET_TOKEN | SET_MARKER), // would be ENOSPC and ERANGE later
  ]);
  // spec §2.3 #2 and §2.1 (SET_MARKER not accepted on x86).
  assert.deepEqual(rets(sys, [0, 1, 2, 3]), E(-EINVAL, -EINVAL, -EINVAL, -EINVAL));
});

test('§2.3 #2: flags is an unsigned int: bits above 31 are not seen', () => {
  const { sys } = runProgram([
    mss(0, 0x1000, 2 ** 32, 'a'), // 0: flags 0
    mss(0, 0x1000, 2 ** 32 + SET_TOKEN, 'b'), // 1: flags SET_TOKEN
    { op: 'load', addr: '$b+0xff8', into: 't' }, // 2
    mss(0, 0x1000, 2 ** 32 + SET_MARKER), // 3: still SET_MARKER
  ]);
  // SYSCALL_DEFINE3(map_shadow_stack, unsigned long addr, unsigned long size, unsigned int flags)
  // (include/linux/syscalls.h); then spec §2.3 #2 and #7 on the low 32 bits.
  assert.ok(ret(sys, 0) >= BigInt(FOUR_GIB));
  const b = ret(sys, 1);
  assert.equal(records(sys).get(2)!.value, (b + 0x1000n) | 1n);
  assert.equal(ret(sys, 3), BigInt(-EINVAL));
});

test('§2.3 #3: SET_TOKEN with size < 8 is -ENOSPC, before the address and size checks', () => {
  const { sys } = runProgram([mss(0, 4, SET_TOKEN), mss(0, 0, SET_TOKEN), mss(0x1000, 7, SET_TOKEN), mss(0, 7, 0)]);
  // spec §2.3 #3 (#3 precedes #4 ERANGE and #6 size-0 EINVAL).
  assert.deepEqual(rets(sys, [0, 1, 2]), E(-ENOSPC, -ENOSPC, -ENOSPC));
  // Without SET_TOKEN a small size is fine (it maps a page): at or above 4 GiB.
  assert.ok(ret(sys, 3) >= BigInt(FOUR_GIB));
});

test('§2.3 #4: an address below 4 GiB is -ERANGE; exactly 4 GiB is taken as given', () => {
  const { sys } = runProgram([
    mss(0x10000000, 4096, 0),
    mss(FOUR_GIB - 4096, 4096, 0),
    mss(0x1000, 0, 0), // ERANGE before the size-0 EINVAL
    mss(FOUR_GIB, 4096, 0),
  ]);
  // spec §2.3 #4.
  assert.deepEqual(rets(sys, [0, 1, 2]), E(-ERANGE, -ERANGE, -ERANGE));
  // spec §2.3 #6/#8: MAP_FIXED_NOREPLACE at addr; returns the base.
  assert.equal(ret(sys, 3), BigInt(FOUR_GIB));
});

test('§2.3 #5: a size whose PAGE_ALIGN overflows is -EOVERFLOW', () => {
  const { sys } = runProgram([mss(0, 0xffffffffffffffffn, 0), mss(0, 0xfffffffffffff001n, SET_TOKEN)]);
  // spec §2.3 #5.
  assert.deepEqual(rets(sys, [0, 1]), E(-EOVERFLOW, -EOVERFLOW));
});

test('§2.3 #6: mmap errors pass through: size 0 -EINVAL, misaligned fixed address -EINVAL, taken -EEXIST, no space -ENOMEM', () => {
  const { sys } = runProgram([
    mss(0, 0, 0), // 0
    mss(H + 1n, 4096, 0), // 1
    mss(H, 0x2000, 0), // 2
    mss(H + 0x1000n, 0x1000, 0), // 3: inside the first
    mss(H - 0x1000n, 0x2000, 0), // 4: overlaps its first page
    mss(0, 2n ** 47n, 0), // 5: larger than user space
  ]);
  // spec §2.3 #6.
  assert.deepEqual(rets(sys, [0, 1]), E(-EINVAL, -EINVAL));
  assert.equal(ret(sys, 2), H);
  assert.deepEqual(rets(sys, [3, 4]), E(-EEXIST, -EEXIST));
  assert.equal(ret(sys, 5), BigInt(-ENOMEM));
});

test('§2.3 #7: SET_TOKEN writes (base + size) | 1 at base + size - 8, readable with a load', () => {
  const { sys } = runProgram([
    mss(0, 0x2000, SET_TOKEN, 'a'), // 0
    { op: 'load', addr: '$a+0x1ff8', into: 'ta' }, // 1
    mss(H, 0x1008, SET_TOKEN, 'b'), // 2: unaligned size, 8-aligned
    { op: 'load', addr: '$b+0x1000', into: 'tb' }, // 3
    { op: 'load', addr: '$b+0x1008', into: 'nb' }, // 4: still inside the page-aligned VMA
    mss(0, 0x1000, 0, 'c'), // 5: no token
    { op: 'load', addr: '$c+0xff8', into: 'tc' }, // 6
  ]);
  const r = records(sys);
  const a = ret(sys, 0);
  // spec §2.3 #7: value (base + size) | 1 (bit 0 = 64-bit mode) at base + size - 8.
  assert.equal(r.get(1)!.value, (a + 0x2000n) | 1n);
  // spec §2.3 #7: the *unaligned* size is used; the VMA is page-aligned (#6).
  assert.equal(ret(sys, 2), H);
  assert.equal(r.get(3)!.value, (H + 0x1008n) | 1n);
  assert.equal(r.get(4)!.value, 0n);
  // No token without SET_TOKEN.
  assert.equal(r.get(6)!.value, 0n);
});

test('§2.3 #7: SET_TOKEN with a base + size not 8-aligned is -EINVAL and the mapping is removed', () => {
  const { sys } = runProgram([
    mss(H, 0x1004, SET_TOKEN), // 0
    mss(H, 0x1000, 0), // 1: the range is free again
    { op: 'syscall', name: 'mmap', args: [H + 0x10000n, 0x1000, 3, 0x22 | MAP_FIXED_NOREPLACE, -1, 0] }, // 2
    mss(H + 0x10000n, 0x100c, SET_TOKEN), // 3: the address is taken by an ordinary mapping
  ]);
  // spec §2.3 #7: unmap and -EINVAL.
  assert.equal(ret(sys, 0), BigInt(-EINVAL));
  assert.equal(ret(sys, 1), H);
  assert.equal(ret(sys, 2), H + 0x10000n);
  // spec §2.3 #6 comes before #7: the taken address is -EEXIST, and the ordinary mapping stays.
  assert.equal(ret(sys, 3), BigInt(-EEXIST));
});

test('§2.3: map_shadow_stack does not need the shadow stack enabled; the VMA is VM_SHADOW_STACK|VM_WRITE, PROT_READ, above 4 GiB', () => {
  const sys = boot();
  const pid = sys.spawn({ main: [mss(0, 0x3000, SET_TOKEN, 'a'), sc('getpid')] });
  stepUntil(sys, did(sys, 'main', 0), 'map_shadow_stack returned');
  const t = sys.task(pid)!;
  const a = Number(t.vars.get('a'));
  const v = t.mm!.vmas.vma_lookup(a)!;
  assert.ok(v, 'a VMA at the returned base');
  // spec §2.3 #6: prot PROT_READ, vm_flags VM_SHADOW_STACK | VM_WRITE; MAP_ABOVE4G.
  assert.equal(v.shadowStack, true);
  assert.equal(v.vm_start, a);
  assert.equal(v.vm_end, a + 0x3000);
  assert.ok(a >= FOUR_GIB);
  assert.equal(v.vm_flags & (VM_READ | VM_WRITE), VM_READ | VM_WRITE);
  assert.equal(t.shstkFeatures, 0, 'the caller still has shadow stacks off');
  sys.run();
  assert.deepEqual(sys.debugReports, []);
});

// ---- §2.4 PTE encoding, on real page tables ----------------------------------------------------

test('§2.4: a page faulted in by a shadow-stack write is R/W=0, D=1, SD=1 (pte_mkwrite(pte_mkdirty(PAGE_COPY)))', () => {
  const sys = boot();
  const pid = sys.spawn({ main: [
    mss(0, 0x2000, SET_TOKEN, 'a'), // 0: the token write (WRUSS) faults in the top page
    prctl(ENABLE, SHSTK), // 1
    { op: 'call', addr: '@f' }, // 2: the CALL's push faults in the enabled stack's top page
    sc('getpid'), // 3
  ], functions: { f: [{ op: 'rdssp', into: 'inner' }] } });
  stepUntil(sys, did(sys, 'main', 3), 'after the call');
  const t = sys.task(pid)!;
  const a = Number(t.vars.get('a'));
  const inner = Number(sys.log.find((r) => r.fn === 'f')!.value!);
  for (const va of [a + 0x1ff8, inner]) {
    const p = pteOf(sys, t, va);
    // spec §2.4 example: RW=0, D=1, SD=1; a user page (P, U/S); PAGE_COPY is NX (§2.9).
    assert.deepEqual(rwdsd(p), [0, 1, 1], `0x${va.toString(16)}`);
    assert.equal(p.lo & (PTE_P | PTE_US), PTE_P | PTE_US);
    assert.ok(p.hi & PTEH_XD);
  }
  sys.run();
  assert.deepEqual(sys.debugReports, []);
});

// ---- §2.6 faults on shadow-stack memory ----------------------------------------------------------

test('§2.6: an ordinary store to shadow-stack memory is SIGSEGV SEGV_ACCERR; an ordinary load works', () => {
  const { sys, pid, sig } = crash({ main: [
    mss(0, 0x2000, SET_TOKEN, 'a'), // 0
    { op: 'load', addr: '$a+0x1ff8', into: 't' }, // 1: present page
    { op: 'load', addr: '$a', into: 'z' }, // 2: untouched page
    { op: 'store', addr: '$a+0x1ff8', value: 5 }, // 3
  ] });
  const r = records(sys);
  const a = ret(sys, 0);
  // access rules §6: ordinary reads of a shadow-stack page follow the normal read rules.
  assert.equal(r.get(1)!.value, (a + 0x2000n) | 1n);
  assert.equal(r.get(2)!.value, 0n);
  // spec §2.6: ordinary write to a shadow-stack VMA -> SEGV_ACCERR, at the address.
  assert.equal(sys.exitStatus(pid), SIGSEGV);
  assert.equal(sig?.signo, SIGSEGV);
  assert.equal(sig?.code, SEGV_ACCERR);
  assert.equal(sig?.addr, a + 0x1ff8n);
});

test('§2.6: an ordinary store to an untouched shadow-stack page is SEGV_ACCERR too (access_error)', () => {
  const { sig } = crash({ main: [mss(H, 0x2000, 0), { op: 'store', addr: H + 0x10n, value: 1 }] });
  // spec §2.6: access_error refuses writes to VM_SHADOW_STACK.
  assert.equal(sig?.code, SEGV_ACCERR);
  assert.equal(sig?.addr, H + 0x10n);
});

test('§2.6: a shadow-stack access (WRSS) to ordinary writable memory is SIGSEGV SEGV_ACCERR', () => {
  const { sig } = crash({ main: [
    mmapAnon('buf', 4096),
    { op: 'store', addr: '$buf', value: 1 }, // present and writable
    prctl(ENABLE, SHSTK),
    prctl(ENABLE, WRSS),
    { op: 'wrss', addr: '$buf+8', value: 2 },
  ] });
  // spec §2.6 / access rules §6: a shadow-stack access to ordinary memory fails -> SEGV_ACCERR.
  assert.equal(sig?.signo, SIGSEGV);
  assert.equal(sig?.code, SEGV_ACCERR);
});

test('§2.6: a kernel write (put_user) into shadow-stack memory fails: ARCH_SHSTK_STATUS and rt_sigprocmask give -EFAULT', () => {
  const { sys } = runProgram([
    mss(0, 0x2000, SET_TOKEN, 'a'), // 0: top page present (token), bottom page untouched
    prctl(STATUS, '$a+0x1ff8'), // 1
    prctl(STATUS, '$a'), // 2
    sc('rt_sigprocmask', 0, 0, '$a+0x1ff8', 8), // 3
    { op: 'load', addr: '$a+0x1ff8', into: 't' }, // 4: the token is untouched
  ]);
  // spec §2.2 row 1 (put_user fails -> -EFAULT) with §2.6 (ordinary writes to VM_SHADOW_STACK
  // are refused; the page is R/W=0 and CR0.WP=1, access rules §6).
  assert.deepEqual(rets(sys, [1, 2, 3]), E(-EFAULT, -EFAULT, -EFAULT));
  assert.equal(records(sys).get(4)!.value, (ret(sys, 0) + 0x2000n) | 1n);
});

// ---- CALL / RET / #CP / WRSS / RDSSP --------------------------------------------------------------

test('CALL pushes the return address on both stacks and RET pops both (RDSSP before, inside, after)', () => {
  const sys = boot();
  const pid = sys.spawn({
    main: [
      prctl(ENABLE, SHSTK), // 0
      { op: 'rdssp', into: 's0' }, // 1
      { op: 'call', addr: '@f' }, // 2
      { op: 'rdssp', into: 's2' }, // 3
    ],
    functions: { f: [
      { op: 'rdssp', into: 's1' }, // 0
      { op: 'load', addr: '$s1', into: 'shadowRa' }, // 1
      { op: 'load', addr: '$rsp', into: 'ra' }, // 2
    ] },
  });
  sys.run();
  assert.deepEqual(sys.debugReports, []);
  const m = records(sys);
  const f = records(sys, 'f');
  const s0 = m.get(1)!.value!;
  // access rules §1: CALL pushes onto the shadow stack (8-byte frame, spec §2.1): SSP - 8.
  assert.equal(f.get(0)!.value, s0 - 8n);
  // The same return address (the op after the CALL) on both stacks.
  const expected = opAddr(sys, 'main', 3);
  assert.equal(f.get(2)!.value, expected);
  assert.equal(f.get(1)!.value, expected);
  // RET pops it: SSP back where it was.
  assert.equal(m.get(3)!.value, s0);
  assert.equal(sys.exitStatus(pid), 0);
});

test('§2.6: a RET whose return address was overwritten raises #CP: SIGSEGV SEGV_CPERR, si_addr 0, near-ret code 1', () => {
  const sys = boot();
  const cps: number[] = [];
  sys.events.subscribe((e) => {
    if (e.type === 'control_protection') cps.push(e.code);
  });
  const pid = sys.spawn({
    main: [prctl(ENABLE, SHSTK), { op: 'call', addr: '@f' }, sc('getpid')],
    functions: {
      f: [{ op: 'store', addr: '$rsp', value: '@other' }],
      other: [sc('getpid'), sc('exit_group', 7)],
    },
  });
  sys.run();
  assert.deepEqual(sys.debugReports, []);
  const sig = sys.log.find((r) => r.signal)?.signal;
  // spec §2.6 / §2.1: #CP -> SIGSEGV, SEGV_CPERR (10), si_addr NULL; unhandled, it kills.
  assert.equal(sig?.signo, SIGSEGV);
  assert.equal(sig?.code, SEGV_CPERR);
  assert.equal(sig?.addr, 0n);
  assert.equal(sys.exitStatus(pid), SIGSEGV);
  // spec §2.1 / access rules §6: #CP error code 1 for a near RET.
  assert.deepEqual(cps, [CP_NEAR_RET]);
  // The RET did not go to the new address, nor back to main.
  assert.equal(records(sys, 'other').size, 0);
  assert.equal(records(sys).has(2), false);
});

test('with the shadow stack off, the same corrupted return address just returns there', () => {
  const sys = boot();
  const pid = sys.spawn({
    main: [sc('getpid'), { op: 'call', addr: '@f' }, sc('getpid')],
    functions: {
      f: [{ op: 'store', addr: '$rsp', value: '@other' }],
      other: [sc('getpid'), sc('exit_group', 7)],
    },
  });
  sys.run();
  assert.deepEqual(sys.debugReports, []);
  assert.equal(sys.log.some((r) => r.signal), false);
  assert.ok(records(sys, 'other').has(0), 'the RET went to the overwritten address');
  assert.equal(records(sys).has(2), false);
  assert.equal(sys.exitStatus(pid), 7 << 8);
});

test('RDSSP is a no-op with the shadow stack off', () => {
  const { sys } = runProgram([{ op: 'rdssp', into: 'x' }]);
  // SDM RDSSP (the brief's op semantics): a NOP unless shadow stacks are enabled at CPL 3 (spec §2.7
  // execve test relies on the same reading).
  assert.equal(records(sys).get(0)!.value, undefined);
});

test('WRSS without ARCH_SHSTK_WRSS raises #UD: SIGILL ILL_ILLOPN at the instruction', () => {
  const sys = boot();
  const pid = sys.spawn({ main: [
    prctl(ENABLE, SHSTK), // 0
    { op: 'rdssp', into: 's' }, // 1
    { op: 'wrss', addr: '$s-8', value: 0x1234 }, // 2
  ] });
  sys.run();
  assert.deepEqual(sys.debugReports, []);
  const sig = sys.log.find((r) => r.signal)?.signal;
  // access rules §8: WRSS at CPL 3 without WR_SHSTK_EN -> #UD; Linux's #UD: SIGILL, ILL_ILLOPN, si_addr = ip (traps.c handle_invalid_op).
  assert.equal(sig?.signo, SIGILL);
  assert.equal(sig?.code, ILL_ILLOPN);
  assert.equal(sig?.addr, opAddr(sys, 'main', 2));
  assert.equal(sys.exitStatus(pid), SIGILL);
});

test('WRSS with ARCH_SHSTK_WRSS writes the shadow stack; the write lands', () => {
  const { sys } = runProgram([
    prctl(ENABLE, SHSTK), // 0
    prctl(ENABLE, WRSS), // 1
    { op: 'rdssp', into: 's' }, // 2
    { op: 'wrss', addr: '$s-8', value: 0x1234 }, // 3
    { op: 'load', addr: '$s-8', into: 'v' }, // 4
    mss(0, 0x1000, 0, 'm'), // 5: a map_shadow_stack region, untouched
    { op: 'wrss', addr: '$m+0x10', value: 0x5678 }, // 6
    { op: 'load', addr: '$m+0x10', into: 'w' }, // 7
  ]);
  const r = records(sys);
  // access rules §8 / spec §2.2 row 10: WRSS works with WRSS_EN; a shadow-stack write to a
  // shadow-stack page (faulted in as a write, spec §2.6).
  assert.equal(r.get(4)!.value, 0x1234n);
  assert.equal(r.get(7)!.value, 0x5678n);
});

// ---- §2.7 lifecycle ------------------------------------------------------------------------------

test('§2.7 fork: the child keeps the SSP and sees a COW copy; both PTEs become read-only with D moved to SD', () => {
  const sys = boot();
  const pid = sys.spawn({
    main: [
      prctl(ENABLE, SHSTK), // 0
      { op: 'call', addr: '@f' }, // 1
      { op: 'rdssp', into: 'after' }, // 2
      sc('wait4', -1, 0, 0, 0), // 3
    ],
    functions: { f: [
      { op: 'rdssp', into: 'inF' }, // 0
      { op: 'syscall', name: 'fork', into: 'child', child: [
        { op: 'rdssp', into: 'cssp' }, // 0
        { op: 'load', addr: '$cssp', into: 'cra' }, // 1: the parent's return address, in the copy
        { op: 'call', addr: '@g' }, // 2: the child's first shadow-stack access
        sc('getpid'), // 3
      ] }, // 1
      sc('getpid'), // 2
    ], g: [] },
  });
  const t = sys.task(pid)!;
  stepUntil(sys, did(sys, 'f', 1, pid), 'fork returned in the parent');
  const inF = Number(records(sys, 'f').get(0)!.value!);
  const child = sys.task(Number(t.vars.get('child')))!;
  const p = pteOf(sys, t, inF);
  const c = pteOf(sys, child, inF);
  // spec §2.7 fork / §7.3: parent write-protected in place (RW=0, D -> SD), child RW=0, D -> SD, old.
  assert.deepEqual(rwdsd(p), [0, 0, 1], 'parent');
  assert.deepEqual(rwdsd(c), [0, 0, 1], 'child');
  assert.equal(c.lo & PTE_A, 0, 'child old');
  // Same frame (COW), same address (no new stack, spec §2.7).
  assert.equal(p.lo >>> 12, c.lo >>> 12);
  assert.equal(child.mm!.vmas.vma_lookup(inF)?.shadowStack, true);
  // The parent's RET out of f is its first shadow-stack access after fork: an SS fault taken as a
  // write (spec §2.6), after which the entry is a shadow-stack PTE again (spec §2.7).
  stepUntil(sys, did(sys, 'main', 2, pid), 'the parent returned from f');
  assert.deepEqual(rwdsd(pteOf(sys, t, inF)).slice(0, 2), [0, 1], 'parent re-made R/W=0, D=1');
  assert.deepEqual(rwdsd(pteOf(sys, child, inF)), [0, 0, 1], 'child untouched so far');
  // RET popped the entry: SSP back to where it was before the CALL.
  assert.equal(records(sys).get(2)!.value, BigInt(inF) + 8n);
  const childTid = child.tid;
  stepUntil(sys, did(sys, 'f.1.child', 3, childTid), 'the child called g');
  assert.deepEqual(rwdsd(pteOf(sys, child, inF)).slice(0, 2), [0, 1], 'child re-made R/W=0, D=1');
  const cr = records(sys, 'f.1.child', childTid);
  // spec §2.7: SSP copied; the copy holds the parent's return address (the op after main's CALL).
  assert.equal(cr.get(0)!.value, BigInt(inF));
  assert.equal(cr.get(1)!.value, opAddr(sys, 'main', 2));
  sys.run();
  assert.deepEqual(sys.debugReports, []);
  assert.equal(sys.exitStatus(pid), 0);
});

test('§2.7 fork: features and the lock are copied to the child', () => {
  const sys = boot();
  const pid = sys.spawn({ main: [
    stbuf, // 0
    prctl(ENABLE, SHSTK), // 1
    prctl(LOCK, SHSTK), // 2
    { op: 'syscall', name: 'fork', child: [...status('cf'), prctl(DISABLE, SHSTK), { op: 'rdssp', into: 'cs' }] }, // 3
    sc('wait4', -1, 0, 0, 0), // 4
  ] });
  sys.run();
  assert.deepEqual(sys.debugReports, []);
  const c = records(sys, 'main.3.child');
  // spec §2.7: features and features_locked copied with the task struct.
  assert.equal(c.get(1)!.value, BigInt(SHSTK));
  assert.equal(c.get(2)!.value, BigInt(-EPERM));
  assert.ok(c.get(3)!.value !== undefined, 'the child runs with the shadow stack on');
  assert.equal(sys.exitStatus(pid), 0);
});

test('§2.5/§2.7 fork_wrprotect: cmpxchg and read_modify_write move D to SD; atomic_clear leaves a shadow-stack PTE the child writes through', () => {
  // Only loads and WRSS after the fork: with atomic_clear every dirty private page stays
  // R/W=0, D=1, which pte_write calls writable (pte_shstk), so an ordinary write to one would
  // fault forever; WRSS is a shadow-stack write and needs no fault on such a page.
  const program: Program = {
    main: [
      prctl(ENABLE, SHSTK), // 0
      prctl(ENABLE, WRSS), // 1
      { op: 'call', addr: '@f' }, // 2: leaves main's return address at top - 8
      { op: 'rdssp', into: 's' }, // 3
      { op: 'syscall', name: 'fork', child: [{ op: 'wrss', addr: '$s-8', value: 0x5a5a }] }, // 4
      sc('wait4', -1, 0, 0, 0), // 5
      { op: 'load', addr: '$s-8', into: 'seen' }, // 6
    ],
    functions: { f: [] },
  };
  for (const mode of ['cmpxchg', 'read_modify_write', 'atomic_clear'] as const) {
    const sys = boot({ kernel: { fork_wrprotect: mode } });
    const pid = sys.spawn(program);
    const t = sys.task(pid)!;
    stepUntil(sys, did(sys, 'main', 4, pid), `${mode}: fork returned`);
    const s = Number(records(sys).get(3)!.value!);
    const [rw, d] = rwdsd(pteOf(sys, t, s - 8));
    sys.run({ maxSteps: 100_000 });
    assert.deepEqual(sys.debugReports, [], mode);
    assert.equal(sys.exitStatus(pid), 0, mode);
    const seen = records(sys).get(6)!.value;
    if (mode === 'atomic_clear') {
      // spec §2.5 (up to 6.5): one clear of R/W, D untouched: R/W=0, D=1 is still a shadow-stack
      // page (access rules §6 "hardware trap"), so the child's WRSS writes the shared frame.
      assert.deepEqual([rw, d], [0, 1], mode);
      assert.equal(seen, 0x5a5an, `${mode}: the parent sees the child's write`);
    } else {
      // spec §2.4/§2.5: pte_wrprotect moves D to SD: an ordinary read-only PTE; the child's WRSS
      // takes an SS fault and COW-copies (spec §2.6/§2.7).
      assert.deepEqual([rw, d], [0, 0], mode);
      assert.equal(seen, opAddr(sys, 'main', 3), `${mode}: the parent's page is its own`);
    }
  }
});

test('§2.7 clone(CLONE_VM|CLONE_THREAD): the thread gets its own 8 MiB shadow stack with SSP at its top; exit unmaps it', () => {
  const sys = boot();
  const pid = sys.spawn({ main: [
    prctl(ENABLE, SHSTK), // 0
    { op: 'rdssp', into: 'ps' }, // 1
    mmapAnon('stk', 0x4000), // 2
    mmapAnon('buf', 0x1000), // 3
    { op: 'syscall', name: 'clone', args: [CLONE_THREAD_FLAGS, '$stk+0x3ff0', 0, 0, 0], into: 'thr', child: [
      { op: 'rdssp', into: 'ts' }, // 0
      { op: 'store', addr: '$buf', value: '$ts' }, // 1
      { op: 'call', addr: '@f' }, // 2: its own shadow stack works
      sc('gettid'), // 3
    ] }, // 4
    sc('sched_yield'), // 5
    sc('sched_yield'), // 6
    sc('sched_yield'), // 7
    { op: 'load', addr: '$buf', into: 'ts' }, // 8
    { op: 'rdssp', into: 'ps2' }, // 9
    { op: 'load', addr: '$ts-8' }, // 10: the thread's stack is gone
  ], functions: { f: [] } });
  const t = sys.task(pid)!;
  stepUntil(sys, did(sys, 'main', 4, pid), 'clone returned');
  const tid = Number(t.vars.get('thr'));
  stepUntil(sys, did(sys, 'main.4.child', 3, tid), 'the thread ran');
  const ts = Number(records(sys, 'main.4.child', tid).get(0)!.value!);
  const ps = Number(records(sys).get(1)!.value!);
  const stacks = t.mm!.vmas.list.filter((v) => v.shadowStack);
  assert.equal(stacks.length, 2, 'a second shadow stack in the shared mm');
  const v = t.mm!.vmas.vma_lookup(ts - 8)!;
  // spec §2.7: a new stack of min(RLIMIT_STACK, 4 GiB) (legacy clone passes stack_size 0),
  // above 4 GiB, SSP = base + size (empty, no token).
  assert.ok(v.shadowStack);
  assert.equal(v.vm_end, ts);
  assert.equal(v.vm_end - v.vm_start, DEFAULT_SHSTK_SIZE);
  assert.ok(v.vm_start >= FOUR_GIB);
  assert.notEqual(ts, ps);
  assert.equal(sys.task(tid)!.shstkBase, v.vm_start);
  sys.run();
  assert.deepEqual(sys.debugReports, []);
  const m = records(sys);
  // The parent's SSP is unchanged.
  assert.equal(m.get(9)!.value, BigInt(ps));
  // spec §2.7 thread exit: exit_thread -> shstk_free unmaps the thread's stack.
  const sig = m.get(10)?.signal;
  assert.equal(sig?.signo, SIGSEGV);
  assert.equal(sig?.code, SEGV_MAPERR);
  assert.equal(sig?.addr, BigInt(ts - 8));
});

test('§2.7 vfork: the child shares the parent\'s shadow stack and does not free it', () => {
  const sys = boot();
  const pid = sys.spawn({
    main: [
      prctl(ENABLE, SHSTK), // 0
      { op: 'rdssp', into: 'p' }, // 1
      { op: 'syscall', name: 'vfork', child: [
        { op: 'rdssp', into: 'c' }, // 0
        { op: 'call', addr: '@f' }, // 1: pushes onto the shared shadow stack
        sc('exit_group', 0), // 2
      ] }, // 2
      { op: 'load', addr: '$p-8', into: 'seen' }, // 3
      { op: 'call', addr: '@f' }, // 4: the stack is still mapped
      { op: 'rdssp', into: 'p2' }, // 5
      sc('wait4', -1, 0, 0, 0), // 6
    ],
    functions: { f: [] },
  });
  sys.run();
  assert.deepEqual(sys.debugReports, []);
  const m = records(sys);
  const c = records(sys, 'main.2.child');
  const p = m.get(1)!.value!;
  // spec §2.7 vfork: the child uses the parent's stack (same SSP) ...
  assert.equal(c.get(0)!.value, p);
  // ... and its pushes land in it (shared memory, no COW: same mm).
  assert.equal(m.get(3)!.value, opAddr(sys, 'main.2.child', 2));
  // ... and its exit does not unmap it (base 0): the parent's CALL/RET still work.
  assert.equal(m.get(5)!.value, p);
  assert.equal(sys.exitStatus(pid), 0);
});

test('§2.7 execve: the new image starts with the shadow stack disabled and unlocked', () => {
  const sys = boot();
  sys.addImage('next', { main: [
    stbuf, // 0
    ...status('st0'), // 1, 2
    { op: 'rdssp', into: 'x' }, // 3
    { op: 'call', addr: '@f' }, // 4: no shadow stack needed
    prctl(ENABLE, SHSTK), // 5: not locked any more
    ...status('st1'), // 6, 7
  ], functions: { f: [] } });
  const pid = sys.spawn({
    main: [prctl(ENABLE, SHSTK), prctl(ENABLE, WRSS), prctl(LOCK, SHSTK | WRSS), sc('execve', '&next', 0, 0)],
    strings: { next: 'next' },
  });
  sys.run();
  assert.deepEqual(sys.debugReports, []);
  const next = new Map(sys.log.filter((r) => r.image === 'next' && r.fn === 'main').map((r) => [r.index, r]));
  // spec §2.7 execve: features = 0, locked = 0, U_CET = 0, SSP = 0.
  assert.equal(next.get(1)!.value, 0n);
  assert.equal(next.get(2)!.value, 0n);
  assert.equal(next.get(3)!.value, undefined, 'RDSSP is a no-op: shadow stack off');
  assert.equal(next.get(5)!.value, 0n);
  assert.equal(next.get(7)!.value, BigInt(SHSTK));
  assert.equal(sys.exitStatus(pid), 0);
});

// ---- §2.8 signals ----------------------------------------------------------------------------------

/** Ops writing a struct sigaction {handler, SA_RESTORER, __restore_rt, mask 0} at $act and installing it for `sig`. */
function sigaction(sig: number, handler: string): Op[] {
  return [
    { op: 'store', addr: '$act', value: handler },
    { op: 'store', addr: '$act+8', value: SA_RESTORER },
    { op: 'store', addr: '$act+16', value: '@__restore_rt' },
    { op: 'store', addr: '$act+24', value: 0 },
    sc('rt_sigaction', sig, '$act', 0, 8),
  ];
}

test('§2.8: a handler with the shadow stack on gets a token and sa_restorer pushed, returns normally, and sigreturn restores the SSP', () => {
  const sys = boot();
  const pid = sys.spawn({
    main: [
      prctl(ENABLE, SHSTK), // 0
      mmapAnon('act', 4096), // 1
      ...sigaction(SIGUSR1, '@h'), // 2..6
      { op: 'syscall', name: 'getpid', into: 'me' }, // 7
      { op: 'rdssp', into: 'before' }, // 8
      sc('kill', '$me', SIGUSR1), // 9
      { op: 'rdssp', into: 'after' }, // 10
    ],
    functions: { h: [
      { op: 'rdssp', into: 'hs' }, // 0
      { op: 'load', addr: '$hs', into: 'restorer' }, // 1
      { op: 'load', addr: '$hs+8', into: 'token' }, // 2
      { op: 'load', addr: '$rsp', into: 'ra' }, // 3
    ] },
  });
  sys.run();
  assert.deepEqual(sys.debugReports, []);
  const m = records(sys);
  const h = records(sys, 'h');
  const before = m.get(8)!.value!;
  const restorer = opAddr(sys, '__restore_rt', 0);
  // spec §2.8 delivery 3-5: token (old SSP | bit 63), then sa_restorer; SSP at the restorer entry.
  assert.equal(h.get(0)!.value, before - 16n);
  assert.equal(h.get(1)!.value, restorer);
  assert.equal(h.get(2)!.value, before | (1n << 63n));
  // The handler's RET to the restorer matches the normal stack (spec §2.8 delivery 4).
  assert.equal(h.get(3)!.value, restorer);
  // spec §2.8 sigreturn 3: PL3_SSP := the old SSP; the handler returned normally (no signal, exit 0).
  assert.equal(m.get(10)!.value, before);
  assert.equal(sys.log.some((r) => r.signal), false);
  assert.equal(sys.exitStatus(pid), 0);
});

test('§2.8: sigreturn with a token lacking bit 63 is a bad frame: SIGSEGV', () => {
  const sys = boot();
  const pid = sys.spawn({
    main: [
      prctl(ENABLE, SHSTK), // 0
      prctl(ENABLE, WRSS), // 1
      mmapAnon('act', 4096), // 2
      ...sigaction(SIGUSR1, '@h'), // 3..7
      { op: 'syscall', name: 'getpid', into: 'me' }, // 8
      sc('kill', '$me', SIGUSR1), // 9
      sc('getpid'), // 10: not reached
    ],
    functions: { h: [
      { op: 'rdssp', into: 'hs' },
      { op: 'load', addr: '$hs+8', into: 'token' },
      { op: 'wrss', addr: '$hs+8', value: '$token' }, // unchanged: sanity of the WRSS path
      { op: 'set', var: 'bad', value: 0x10000 },
      { op: 'wrss', addr: '$hs+8', value: '$bad' }, // bit 63 clear
    ] },
  });
  sys.run();
  assert.deepEqual(sys.debugReports, []);
  // spec §2.8 sigreturn 2: token bit 63 must be set, else -EINVAL -> bad frame -> SIGSEGV.
  assert.equal(sys.exitStatus(pid), SIGSEGV);
  assert.equal(records(sys).has(10), false);
});

test('§2.8: with the shadow stack on, a NULL sa_restorer fails the frame: SIGSEGV before the handler runs', () => {
  const sys = boot();
  const pid = sys.spawn({
    main: [
      prctl(ENABLE, SHSTK), // 0
      mmapAnon('act', 4096), // 1
      { op: 'store', addr: '$act', value: '@h' }, // 2
      { op: 'store', addr: '$act+8', value: SA_RESTORER }, // 3
      { op: 'store', addr: '$act+16', value: 0 }, // 4: sa_restorer NULL
      sc('rt_sigaction', SIGUSR1, '$act', 0, 8), // 5
      { op: 'syscall', name: 'getpid', into: 'me' }, // 6
      sc('kill', '$me', SIGUSR1), // 7
      sc('getpid'), // 8: not reached
    ],
    functions: { h: [sc('getpid')] },
  });
  sys.run();
  assert.deepEqual(sys.debugReports, []);
  // spec §2.8 delivery 1: sa_restorer must be non-NULL, else -EINVAL -> frame setup fails -> SIGSEGV forced.
  assert.equal(sys.exitStatus(pid), SIGSEGV);
  assert.equal(records(sys, 'h').size, 0);
  assert.equal(records(sys).has(8), false);
});

// ---- §2.9 VMA rules -----------------------------------------------------------------------------------

test('§2.9: mprotect(PROT_READ) keeps VM_SHADOW_STACK and clears VM_WRITE; a shadow-stack access then is SEGV_ACCERR', () => {
  const sys = boot();
  const pid = sys.spawn({ main: [
    prctl(ENABLE, SHSTK), // 0
    prctl(ENABLE, WRSS), // 1
    mss(H, 0x2000, 0), // 2
    sc('mprotect', H, 0x2000, PROT_READ), // 3
    { op: 'load', addr: H + 0x1000n, into: 'v' }, // 4: still readable
    { op: 'wrss', addr: H + 0x1000n, value: 1 }, // 5: a shadow-stack write to an untouched page
  ] });
  const t = sys.task(pid)!;
  stepUntil(sys, did(sys, 'main', 3, pid), 'mprotect returned');
  assert.equal(ret(sys, 3), 0n);
  const v = t.mm!.vmas.vma_lookup(Number(H))!;
  // spec §2.9: VM_SHADOW_STACK is not in VM_ACCESS_FLAGS, so mprotect keeps it; VM_WRITE is cleared.
  assert.equal(v.shadowStack, true);
  assert.equal(v.vm_flags & VM_WRITE, 0);
  sys.run();
  assert.deepEqual(sys.debugReports, []);
  const m = records(sys);
  assert.equal(m.get(4)!.value, 0n);
  // spec §2.9 / §2.6: a shadow-stack access needs VM_SHADOW_STACK and VM_WRITE -> SEGV_ACCERR.
  const sig = m.get(5)?.signal;
  assert.equal(sig?.signo, SIGSEGV);
  assert.equal(sig?.code, SEGV_ACCERR);
  assert.equal(sig?.addr, H + 0x1000n);
});

test('§2.9: a hint inside a shadow stack\'s guard page is not used; a mapping ending at the guard\'s bottom is', () => {
  const { sys } = runProgram([
    mss(H, 0x4000, 0), // 0
    { op: 'syscall', name: 'mmap', args: [H - 0x1000n, 0x1000, PROT_READ | PROT_WRITE, 0x22, -1, 0] }, // 1: would fill the guard page
    { op: 'syscall', name: 'mmap', args: [H - 0x2000n, 0x2000, PROT_READ | PROT_WRITE, 0x22, -1, 0] }, // 2: would reach into it
    { op: 'syscall', name: 'mmap', args: [H - 0x2000n, 0x1000, PROT_READ | PROT_WRITE, 0x22, -1, 0] }, // 3: ends at H - 0x1000
  ]);
  const inGuard = (a: bigint, len: bigint): boolean => a < H && a + len > H - 0x1000n;
  // spec §2.9: one guard page below the VMA; new mappings are kept out of the gap.
  for (const [i, len] of [[1, 0x1000n], [2, 0x2000n]] as const) {
    const a = ret(sys, i);
    assert.ok(a > 0n, `mmap ${i} succeeded`);
    assert.ok(!inGuard(a, len), `mmap ${i} at 0x${a.toString(16)} is not in the guard page`);
    assert.ok(a + len <= H - 0x1000n || a >= H + 0x4000n);
  }
  // The page below the guard is free to take.
  assert.equal(ret(sys, 3), H - 0x2000n);
});

test('§2.9: a top-down mmap after a shadow stack leaves its guard page free', () => {
  const sys = boot();
  const pid = sys.spawn({ main: [mss(0, 0x2000, 0, 's'), mmapAnon('a', 0x1000), sc('getpid')] });
  stepUntil(sys, did(sys, 'main', 1, pid), 'mmap returned');
  const s = ret(sys, 0);
  const a = ret(sys, 1);
  // spec §2.9: vm_start_gap of the shadow stack is one page below it.
  assert.ok(a + 0x1000n <= s - 0x1000n || a >= s + 0x2000n, `mmap at 0x${a.toString(16)}, shadow stack at 0x${s.toString(16)}`);
  assert.equal(sys.task(pid)!.mm!.vmas.vma_lookup(Number(s) - 0x1000), null);
  sys.run();
  assert.deepEqual(sys.debugReports, []);
});

test('§2.9: a new shadow stack is not put in a hole with no room for its guard page', () => {
  const sys = boot();
  const pid = sys.spawn({ main: [
    mmapAnon('a', 0x1000), // 0
    mmapAnon('b', 0x1000), // 1
    mmapAnon('c', 0x1000), // 2
    sc('munmap', '$b', 0x1000), // 3: a one-page hole between a and c
    mss(0, 0x1000, 0, 's'), // 4
    mmapAnon('d', 0x1000), // 5: an ordinary page fits the hole
    sc('getpid'), // 6
  ] });
  stepUntil(sys, did(sys, 'main', 5, pid), 'mmap returned');
  const [a, b, c, s, d] = [0, 1, 2, 4, 5].map((i) => ret(sys, i));
  assert.equal(b, a - 0x1000n);
  assert.equal(c, a - 0x2000n);
  // spec §2.9: the new VMA gets a guard page below it (stack_guard_placement): the hole at b is
  // one page, too small for page + guard, so the stack goes below c, its guard page free.
  assert.notEqual(s, b);
  assert.ok(s + 0x1000n <= c, `shadow stack at 0x${s.toString(16)}`);
  assert.equal(sys.task(pid)!.mm!.vmas.vma_lookup(Number(s) - 0x1000), null);
  assert.equal(d, b);
  sys.run();
  assert.deepEqual(sys.debugReports, []);
});

// ---- §2.4 helper table: unit tests on pgtable.ts ---------------------------------------------------

/** A PTE with R/W, D and SD as given, plus P, U/S and A (and soft-dirty clear). */
function mk(rw: number, d: number, sd: number): pte_t {
  return __pte(PTE_P | PTE_US | PTE_A | (rw ? PTE_RW : 0) | (d ? PTE_D : 0), 0x12 | (sd ? PTEH_SAVED_DIRTY : 0));
}
/** (R/W, D, SD) of a helper's result (the pte_t it changed and returned). */
const res = (p: pte_t): [number, number, number] => rwdsd(p);

test('§2.4 pte_wrprotect: RW := 0, then SD |= D, D := 0', () => {
  assert.deepEqual(res(pte_wrprotect(mk(1, 1, 0))), [0, 0, 1]);
  assert.deepEqual(res(pte_wrprotect(mk(1, 0, 0))), [0, 0, 0]);
  assert.deepEqual(res(pte_wrprotect(mk(1, 0, 1))), [0, 0, 1]);
  // A shadow-stack PTE (RW=0, D=1) becomes an ordinary read-only, saved-dirty one.
  assert.deepEqual(res(pte_wrprotect(mk(0, 1, 0))), [0, 0, 1]);
  assert.deepEqual(res(pte_wrprotect(mk(0, 1, 1))), [0, 0, 1]);
  // Other bits and the frame are kept.
  const p = pte_wrprotect(mk(1, 1, 0));
  assert.equal(p.lo & (PTE_P | PTE_US | PTE_A), PTE_P | PTE_US | PTE_A);
  assert.equal(p.hi & 0xff, 0x12);
});

test('§2.4 pte_mkdirty: D := 1 and SOFT_DIRTY := 1; on a read-only PTE the dirt goes to SD', () => {
  let p = pte_mkdirty(mk(1, 0, 0));
  assert.deepEqual(res(p), [1, 1, 0]);
  assert.ok(p.lo & PTE_SOFTW3, 'soft-dirty');
  p = pte_mkdirty(mk(0, 0, 0));
  assert.deepEqual(res(p), [0, 0, 1]);
  assert.ok(p.lo & PTE_SOFTW3, 'soft-dirty');
  assert.deepEqual(res(pte_mkdirty(mk(1, 0, 1))), [1, 1, 1]);
});

test('§2.4 pte_mkclean: D := 0, SD := 0', () => {
  assert.deepEqual(res(pte_mkclean(mk(1, 1, 0))), [1, 0, 0]);
  assert.deepEqual(res(pte_mkclean(mk(0, 0, 1))), [0, 0, 0]);
  assert.deepEqual(res(pte_mkclean(mk(0, 1, 1))), [0, 0, 0]);
});

test('§2.4 pte_mkwrite without VM_SHADOW_STACK: RW := 1, then D |= SD, SD := 0', () => {
  assert.deepEqual(res(pte_mkwrite(mk(0, 0, 1))), [1, 1, 0]);
  assert.deepEqual(res(pte_mkwrite(mk(0, 0, 0))), [1, 0, 0]);
  assert.deepEqual(res(pte_mkwrite(mk(0, 0, 1), false)), [1, 1, 0]);
  assert.deepEqual(res(pte_mkwrite(mk(1, 1, 0), false)), [1, 1, 0]);
});

test('§2.4 pte_mkwrite with VM_SHADOW_STACK (pte_mkwrite_shstk): RW := 0, D := 1, SD unchanged', () => {
  assert.deepEqual(res(pte_mkwrite(mk(0, 0, 1), true)), [0, 1, 1]);
  assert.deepEqual(res(pte_mkwrite(mk(0, 0, 0), true)), [0, 1, 0]);
  assert.deepEqual(res(pte_mkwrite(mk(1, 0, 0), true)), [0, 1, 0]);
  // spec §2.4 example: pte_mkwrite(pte_mkdirty(PAGE_COPY)) in a shadow-stack VMA: RW=0, D=1, SD=1.
  assert.deepEqual(res(pte_mkwrite(pte_mkdirty(mk(0, 0, 0)), true)), [0, 1, 1]);
});

test('§2.4 pte_modify: D and SD preserved; old RW=1 -> RW=0 moves D to SD; old RW=0 -> RW=1 moves SD to D', () => {
  const ro = __pte(PTE_P | PTE_US | PTE_A, PTEH_XD); // PAGE_READONLY
  const rw = __pte(PTE_P | PTE_US | PTE_A | PTE_RW, PTEH_XD); // PAGE_SHARED
  // Old RW=1, D=1 made read-only: D moves to SD.
  let p = pte_modify(mk(1, 1, 0), ro);
  assert.deepEqual(res(p), [0, 0, 1]);
  assert.ok(p.hi & PTEH_XD, 'new protection applied');
  // Old RW=0, SD=1 made writable: SD moves to D.
  assert.deepEqual(res(pte_modify(mk(0, 0, 1), rw)), [1, 1, 0]);
  // RW=1 to RW=1 and RW=0 to RW=0 keep D and SD as they are.
  assert.deepEqual(res(pte_modify(mk(1, 1, 0), rw)), [1, 1, 0]);
  assert.deepEqual(res(pte_modify(mk(0, 0, 1), ro)), [0, 0, 1]);
  // A shadow-stack PTE (old RW=0, D=1) made read-only keeps D (only an old RW=1 moves D to SD).
  assert.deepEqual(res(pte_modify(mk(0, 1, 1), ro)), [0, 1, 1]);
  // newprot's own D is filtered out by the change mask.
  p = pte_modify(mk(1, 0, 0), __pte(ro.lo | PTE_D, ro.hi | PTEH_SAVED_DIRTY));
  assert.deepEqual(res(p), [0, 0, 0]);
});

test('§2.4 pte_write = RW || pte_shstk; pte_dirty = D | SD', () => {
  const { lo: l1, hi: h1 } = mk(0, 1, 0);
  assert.equal(pte_write(l1, true), true, 'shadow-stack PTE counts as writable');
  assert.equal(pte_write(l1, false), false, 'not without user shadow stacks');
  assert.equal(pte_write(mk(1, 0, 0).lo, false), true);
  assert.equal(pte_write(mk(0, 0, 1).lo, true), false);
  assert.equal(pte_dirty(l1, h1), true);
  assert.equal(pte_dirty(mk(0, 0, 1).lo, mk(0, 0, 1).hi), true);
  assert.equal(pte_dirty(mk(1, 0, 0).lo, mk(1, 0, 0).hi), false);
});
