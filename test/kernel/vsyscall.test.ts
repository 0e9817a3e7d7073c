/**
 * The vsyscall page in each `vsyscall=` mode (arch/x86/entry/vsyscall/vsyscall_64.c, 6.12:
 * map_vsyscall, emulate_vsyscall, gate_vma; arch/x86/mm/fault.c do_user_addr_fault and
 * fault_in_kernel_space; arch/x86/mm/pti.c pti_setup_vsyscall).
 *
 * Host-checked (/tmp/vsc/v.c on the host's 6.18 x86-64, booted with the default vsyscall=xonly:
 * /proc/self/maps shows `ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]`):
 * a read of 0xffffffffff600000 and a write there are SIGSEGV SEGV_MAPERR with si_addr the
 * address; calls to +0, +0x400, +0x800 return 0, the time (also stored through tloc) and 0
 * (cpu and node stored); calls to +0x100 and +0xc00 are SIGSEGV SI_KERNEL with rip the
 * address called; gettimeofday with tv 8 (access_ok, then a faulting copy) is SIGSEGV
 * SI_KERNEL with rip +0, with tv 0xffff800000000000 (refused by access_ok) SIGSEGV
 * SEGV_MAPERR with si_addr tv; getcpu with nodep 8 SIGSEGV SI_KERNEL. The stub bytes
 * (`mov $96,%rax; syscall; ret; int3` = 48 c7 c0 60 00 00 00 0f 05 c3 cc) were assembled with
 * the host's `as`.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { show_maps, show_smaps } from '../../src/kernel/task_mmu.js';
import { VSYSCALL_ADDR } from '../../src/kernel/vsyscall.js';
import { kindex } from '../../src/kernel/layout.js';
import { PTE_P, PTE_US, PTEH_XD } from '../../src/hw/pte.js';
import type { IsolabEvent, SystemConfig } from '../../src/system.js';
import { boot, records, ret, runWithEvents } from './helpers.js';

const V = 0xffffffffff600000n;
const SIGSEGV = 11, SEGV_MAPERR = 1, SI_KERNEL = 0x80;
const mmapBuf: Op = { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'buf' };
const set = (v: string, value: number | bigint | string): Op => ({ op: 'set', var: v, value });
const call = (addr: bigint): Op => ({ op: 'call', addr });
const load = (addr: number | bigint | string, into: string, size: 1 | 2 | 4 | 8 = 8): Op => ({ op: 'load', addr, into, size });

/** The model's clock (time.ts): after n retired operations, realtime = 2025-01-01T00:00:00Z + n µs. */
const EPOCH = 1735689600n;

/** The SIGSEGVs the run delivered or killed with: [code, addr]. */
function segvs(events: IsolabEvent[]): [number, bigint][] {
  const out: [number, bigint][] = [];
  for (const e of events) if (e.type === 'signal' && e.signo === SIGSEGV) out.push([e.code, e.addr]);
  return out;
}

function run(main: Op[], vsyscall: 'xonly' | 'emulate' | 'none', extra: SystemConfig = {}) {
  return runWithEvents(main, { ...extra, kernel: { vsyscall, ...(extra.kernel ?? {}) } });
}

/** Calls each entry point with good pointers: results in rax, the stores, the return to the caller. */
function callsProgram(): Op[] {
  return [
    mmapBuf, // 0
    set('rdi', '$buf'), // 1
    set('rsi', '$buf+16'), // 2
    call(V), // 3: gettimeofday(buf, buf+16) after 4 retired operations
    load('$buf', 'sec'), // 4
    load('$buf+8', 'usec'), // 5
    set('rdi', 0), // 6
    call(V + 0x400n), // 7: time(NULL)
    set('rdi', '$buf+32'), // 8
    set('rsi', '$buf+36'), // 9
    call(V + 0x800n), // 10: getcpu
    load('$buf+32', 'cpu', 4), // 11
    load('$buf+36', 'node', 4), // 12
  ];
}

for (const mode of ['xonly', 'emulate'] as const) {
  test(`vsyscall=${mode}: calls to gettimeofday, time and getcpu are emulated and return to the caller`, () => {
    const { sys, events } = run(callsProgram(), mode);
    assert.equal(ret(sys, 3), 0n, 'gettimeofday returns 0 in rax');
    // 4 operations retired (mmap, two sets, the call): 4 µs after the epoch.
    assert.equal(ret(sys, 4), EPOCH);
    assert.equal(ret(sys, 5), 4n);
    assert.equal(ret(sys, 7), EPOCH, 'time(NULL) returns the seconds');
    assert.equal(ret(sys, 10), 0n);
    assert.equal(ret(sys, 11), 0n, 'CPU 0');
    assert.equal(ret(sys, 12), 0n, 'node 0');
    assert.deepEqual(segvs(events), []);
    const vs = events.filter((e) => e.type === 'page_fault' && (e as { outcome: string }).outcome === 'vsyscall') as unknown as { errorCode: number; addr: bigint }[];
    assert.deepEqual(vs.map((e) => e.addr), [V, V + 0x400n, V + 0x800n]);
    // An instruction fetch from user mode: U and I, and P only where the page is mapped (emulate: NX).
    for (const e of vs) assert.equal(e.errorCode, mode === 'emulate' ? 0x15 : 0x14);
  });
}

test('vsyscall=none: a call to the page is SIGSEGV SEGV_MAPERR at the address', () => {
  const { sys, events } = run([mmapBuf, set('rdi', '$buf'), call(V), load('$buf', 'x')], 'none');
  assert.deepEqual(segvs(events), [[SEGV_MAPERR, V]]);
  assert.equal(records(sys).get(3), undefined, 'the caller never resumed');
});

test('a read of the page: SIGSEGV SEGV_MAPERR with xonly and none, the stub bytes with emulate', () => {
  for (const mode of ['xonly', 'none'] as const) {
    const { events } = run([load(V, 'x')], mode);
    assert.deepEqual(segvs(events), [[SEGV_MAPERR, V]], mode);
  }
  const { sys, events } = run([load(V, 'a'), load(V + 8n, 'b'), load(V + 0x400n, 'c'), load(V + 0x800n, 'd'), load(V + 0x10n, 'e'), load(V + 0xffcn, 'f', 4)], 'emulate');
  assert.deepEqual(segvs(events), []);
  assert.equal(BigInt.asUintN(64, ret(sys, 0)), 0x0f00000060c0c748n, 'mov $96,%rax; syscall');
  assert.equal(BigInt.asUintN(64, ret(sys, 1)), 0xccccccccccccc305n, 'syscall (second byte); ret; int3; 0xcc fill');
  assert.equal(BigInt.asUintN(64, ret(sys, 2)), 0x0f000000c9c0c748n, 'mov $201,%rax; syscall');
  assert.equal(BigInt.asUintN(64, ret(sys, 3)), 0x0f00000135c0c748n, 'mov $309,%rax; syscall');
  assert.equal(BigInt.asUintN(64, ret(sys, 4)), 0xccccccccccccccccn);
  assert.equal(BigInt.asUintN(64, ret(sys, 5)), 0xccccccccn);
});

test('a write to the page is SIGSEGV SEGV_MAPERR in every mode (emulate_vsyscall refuses writes; no VMA)', () => {
  for (const mode of ['xonly', 'emulate', 'none'] as const) {
    const { events } = run([{ op: 'store', addr: V, value: 1 }], mode);
    assert.deepEqual(segvs(events), [[SEGV_MAPERR, V]], mode);
  }
});

test('emulate_vsyscall: an address other than the three entry points is SIGSEGV SI_KERNEL (host)', () => {
  for (const off of [0x100n, 0xc00n, 0x401n]) {
    const { events } = run([mmapBuf, call(V + off)], 'xonly');
    assert.deepEqual(segvs(events), [[SI_KERNEL, 0n]], off.toString(16));
  }
});

test('emulate_vsyscall: a pointer access_ok refuses is SEGV_MAPERR at it; one that faults in the copy is SI_KERNEL (host)', () => {
  // access_ok refuses tv: write_ok_or_segv's SEGV_MAPERR (the -EFAULT's SIGSEGV after it is absorbed).
  let r = run([mmapBuf, set('rdi', 0xffff800000000000n), call(V)], 'xonly');
  assert.deepEqual(segvs(r.events), [[SEGV_MAPERR, 0xffff800000000000n]]);
  // tz refused after a good tv.
  r = run([mmapBuf, set('rdi', '$buf'), set('rsi', 0x800000000000n), call(V)], 'xonly');
  assert.deepEqual(segvs(r.events), [[SEGV_MAPERR, 0x800000000000n]]);
  // tv at 8: access_ok passes, copy_to_user faults: "vsyscall fault (exploit attempt?)", SI_KERNEL.
  r = run([mmapBuf, set('rdi', 8), call(V)], 'emulate');
  assert.deepEqual(segvs(r.events), [[SI_KERNEL, 0n]]);
  // time's tloc at 8.
  r = run([mmapBuf, set('rdi', 8), call(V + 0x400n)], 'xonly');
  assert.deepEqual(segvs(r.events), [[SI_KERNEL, 0n]]);
  // getcpu's nodep at 8: cpup is written first, then the fault.
  r = run([mmapBuf, set('rdi', '$buf'), set('rsi', 8), { op: 'store', addr: '$buf', value: 7 }, call(V + 0x800n)], 'xonly');
  assert.deepEqual(segvs(r.events), [[SI_KERNEL, 0n]]);
});

test('/proc/PID/maps and smaps: the gate VMA is --xp with xonly, r-xp with emulate, absent with none (host: xonly)', () => {
  const line = (perms: string): string => `ffffffffff600000-ffffffffff601000 ${perms} 00000000 00:00 0 `.padEnd(73, ' ') + '[vsyscall]\n';
  const expect = { xonly: line('--xp'), emulate: line('r-xp'), none: '' };
  for (const mode of ['xonly', 'emulate', 'none'] as const) {
    const sys = boot({ kernel: { vsyscall: mode } });
    assert.equal(show_maps(sys.kernel, sys.kernel.init_mm), expect[mode], mode);
    const smaps = show_smaps(sys.kernel, sys.kernel.percpu[0], null as never, sys.kernel.init_mm);
    let r = smaps.next();
    while (!r.done) r = smaps.next();
    const flags = mode === 'none' ? null : r.value.match(/VmFlags: (.*)\n/)?.[1];
    assert.equal(flags, mode === 'xonly' ? 'ex ' : mode === 'emulate' ? 'rd ex ' : null, mode);
  }
});

test('map_vsyscall and pti_setup_vsyscall: the PTE (present, user, NX, read-only) and the user bits above it, in both PTI copies with emulate only', () => {
  for (const mode of ['xonly', 'emulate'] as const) {
    for (const pti of ['off', 'on'] as const) {
      const sys = boot({ kernel: { vsyscall: mode, pti } });
      const k = sys.kernel;
      const mem = k.machine.mem;
      const roots = pti === 'on' ? [k.init_mm.pgtables.pgd, k.init_mm.pgtables.userPgd] : [k.init_mm.pgtables.pgd];
      for (const root of roots) {
        let table = root;
        let level = k.levels;
        for (; level >= 1; level--) {
          const i = kindex(VSYSCALL_ADDR, level);
          const lo = mem.readLo(table, i);
          if (!(lo & PTE_P)) break;
          if (mode === 'emulate') assert.ok(lo & PTE_US, `U/S at level ${level} (${pti})`);
          if (level === 1) {
            assert.equal(mode, 'emulate', 'xonly maps no PTE');
            assert.equal(lo & 2, 0, 'read-only');
            assert.ok(mem.readHi(table, i) & PTEH_XD, 'NX');
          }
          table = (mem.readHi(table, i) & 0xfffff) * 1048576 + (lo >>> 12);
        }
        assert.equal(level === 0, mode === 'emulate', `${mode} ${pti}: a PTE iff emulate`);
      }
    }
  }
});

test('vsyscall=emulate under PTI: user mode reads the page through the user copy and calls are emulated; the pti_user_pgd check stays quiet', () => {
  const { sys, events } = run([...callsProgram(), load(V, 'a')], 'emulate', { cpu: { meltdown: true } });
  assert.ok(sys.kernel.pti);
  assert.equal(ret(sys, 3), 0n);
  assert.equal(BigInt.asUintN(64, ret(sys, 13)), 0x0f00000060c0c748n);
  assert.deepEqual(segvs(events), []);
});

test('getcpu through the vsyscall page on CPU 1 stores 1', () => {
  const sys = boot({ cpus: 2, kernel: { vsyscall: 'xonly' } });
  sys.spawn({ main: [mmapBuf, set('rdi', '$buf'), set('rsi', 0), call(V + 0x800n), load('$buf', 'cpu', 4)] }, { cpu: 1 });
  const r = sys.run({ maxSteps: 1_000_000 });
  assert.ok(r.finished);
  assert.equal(ret(sys, 3), 0n);
  assert.equal(ret(sys, 4), 1n);
});
