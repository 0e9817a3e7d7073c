/**
 * Page-table isolation: boot control, the 8 KiB PGD pair and its mirroring with the NX trick,
 * what the user copy's kernel half maps, global kernel pages, the CR3 values the entry code
 * writes (PCIDs, NOFLUSH, the deferred user-PCID flush, INVPCID), Meltdown reach with and
 * without PTI, the per-process PTI switch (arch_prctl ARCH_GET_NOPTI / ARCH_SET_NOPTI), and the
 * entry paths and stacks under each `entry_stack` choice.
 *
 * Every expected value comes from ../shared/spec/linux-x86-isolation.md §3 and §5 ("spec
 * §x.y"); the per-process PTI codes, refusal order and errnos, which the spec leaves open
 * (§3.7, §8.1), come from the header of src/kernel/nopti.ts and the `pti_per_process` and
 * `entry_stack` option definitions (src/kernel/options.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Kernel } from '../../src/kernel/kernel.js';
import {
  CPU_ENTRY_AREA_BASE, ESPFIX_BASE_ADDR, KERNEL_TEXT, LINUX_BANNER, LINUX_BANNER_TEXT,
} from '../../src/kernel/layout.js';

/** 4-level paging (Documentation/arch/x86/x86_64/mm.rst): the direct map's base and the LDT remap's (LDT_PGD_ENTRY -240). */
const PAGE_OFFSET = 0xffff888000000000n;
const LDT_BASE_ADDR = 0xffff880000000000n;
import type { MmStruct } from '../../src/kernel/mm.js';
import { pti_allowed_ranges, walkKernelHalf, type KernelLeaf } from '../../src/kernel/pti.js';
import type { IsolabEvent, System, SystemConfig } from '../../src/system.js';
import type { Op } from '../../src/user/program.js';
import { boot, mmapAnon, records, runWithEvents as run, sc } from './helpers.js';

type Ev<T extends IsolabEvent['type']> = Extract<IsolabEvent, { type: T }>;

// Errno values (spec §0; ENODEV 19, EBUSY 16 as nopti.ts names them).
const EPERM = 1, EBUSY = 16, ENODEV = 19, EINVAL = 22;
// Per-process PTI (nopti.ts, options.ts pti_per_process).
const ARCH_GET_NOPTI = 0x6001, ARCH_SET_NOPTI = 0x6002, NOPTI_NOW = 1, NOPTI_NEXT = 2;
// clone flags.
const CLONE_VM = 0x100, CLONE_SIGHAND = 0x800, CLONE_THREAD = 0x10000;
const THREAD_FLAGS = CLONE_VM | CLONE_SIGHAND | CLONE_THREAD;
// Capabilities (capability.ts: capset with version 3 headers).
const _LINUX_CAPABILITY_VERSION_3 = 0x20080522, CAP_SYS_ADMIN = 21;

// Page-table entry bits (x86): P, U/S, PS, G in the low word; XD (bit 63) is bit 31 of the high word.
const P = 1 << 0, US = 1 << 2, PS = 1 << 7, G = 1 << 8;
const XD_HI = 0x80000000;
// CR3 bits (spec §3.5).
const PCID_MASK = 0xfff, PTI_USER_PCID_BIT = 1 << 11, PTI_USER_PGD_BIT = 1 << 12;
// Sizes (spec §3.3, §5.1).
const P4D_SIZE = 1n << 39n, PMD_SIZE = 1n << 21n;

/** The first 8 bytes of linux_banner, read little-endian as a transient 8-byte load returns them. */
const BANNER8 = (() => {
  const b = new TextEncoder().encode(LINUX_BANNER_TEXT);
  let v = 0n;
  for (let i = 0; i < 8; i++) v |= BigInt(b[i]) << BigInt(8 * i);
  return v;
})();
const NOTHING = 0xffffffffffffffffn; // -1 as the unsigned 64-bit value a transient load gives when nothing was read

// ---- Program helpers ---------------------------------------------------------------------------

const probe = (into: string, addr: bigint | string): Op => ({ op: 'transient_load', addr, into });
const store = (addr: string, value: number | bigint, size: 1 | 2 | 4 | 8 = 8): Op => ({ op: 'store', addr, value, size });
const load = (into: string, addr: string): Op => ({ op: 'load', addr, into });
const getNopti = (into: string): Op => sc(into, 'arch_prctl', ARCH_GET_NOPTI, 0);
const setNopti = (into: string, flags: number): Op => sc(into, 'arch_prctl', ARCH_SET_NOPTI, flags);
const getpids = (n: number, tag = 'g'): Op[] => Array.from({ length: n }, (_, i) => sc(`${tag}${i}`, 'getpid'));

/** Ops that drop CAP_SYS_ADMIN (only) from the effective and permitted sets with capget/capset v3. */
function dropSysAdmin(): Op[] {
  return [
    mmapAnon('cap', 4096),
    store('$cap', _LINUX_CAPABILITY_VERSION_3, 4),
    store('$cap+4', 0, 4),
    sc('cg', 'capget', '$cap', '$cap+16'),
    // data[0].effective and data[0].permitted: every bit of the low word but CAP_SYS_ADMIN's.
    store('$cap+16', (0xffffffff & ~(1 << CAP_SYS_ADMIN)) >>> 0, 4),
    store('$cap+20', (0xffffffff & ~(1 << CAP_SYS_ADMIN)) >>> 0, 4),
    sc('cs', 'capset', '$cap', '$cap+16'),
  ];
}

/** Index of the op in `ops` whose result goes to `into`. */
function at(ops: Op[], into: string): number {
  const i = ops.findIndex((o) => 'into' in o && o.into === into);
  assert.ok(i >= 0, `no op into ${into}`);
  return i;
}
/** The unsigned 64-bit result of `into` in function `fn` of image `image` (tid optional). */
function uv(sys: System, ops: Op[], into: string, opts: { image?: string; fn?: string; tid?: number } = {}): bigint {
  const idx = at(ops, into);
  const fn = opts.fn ?? 'main';
  const r = sys.log.find((x) => x.fn === fn && x.index === idx && (opts.image === undefined || x.image === opts.image) && (opts.tid === undefined || x.tid === opts.tid));
  assert.ok(r, `no record for ${fn}[${idx}] (${into})`);
  assert.ok(r.value !== undefined, `${into} has no value`);
  return BigInt.asUintN(64, r.value);
}
/** The signed result. */
function sv(sys: System, ops: Op[], into: string, opts: { image?: string; fn?: string; tid?: number } = {}): bigint {
  return BigInt.asIntN(64, uv(sys, ops, into, opts));
}


/** Runs `ops` and calls `inspect` while the task executes the op whose result goes to `into` (in user mode). */
function runAndInspect(ops: Op[], into: string, config: SystemConfig, inspect: (sys: System, mm: MmStruct) => void): System {
  const idx = at(ops, into);
  let seen = 0;
  const { sys } = run(ops, config, (e, s) => {
    if (e.type === 'op' && e.record.fn === 'main' && e.record.index === idx) {
      seen++;
      inspect(s, s.task(e.record.tid)!.mm!);
    }
  });
  assert.equal(seen, 1, `inspected at ${into}`);
  return sys;
}

/** Every present leaf of the kernel half of top-level table `root`. */
function leaves(k: Kernel, root: number): KernelLeaf[] {
  const out: KernelLeaf[] = [];
  walkKernelHalf(k, root, (l) => out.push(l));
  return out;
}
/** Whether some leaf maps virtual address `va`. */
function maps(ls: KernelLeaf[], va: bigint): boolean {
  return ls.some((l) => va >= l.va && va < l.va + BigInt(l.bytes));
}
/** The leaf mapping `va`. */
function leafAt(ls: KernelLeaf[], va: bigint): KernelLeaf | undefined {
  return ls.find((l) => va >= l.va && va < l.va + BigInt(l.bytes));
}

/**
 * The kernel ranges spec §3.3 (and §4.3, §5.4) lets a user copy map: the cpu_entry_area and
 * ESPFIX P4Ds, the PMD of the entry text, each CPU's cpu_tss_rw page, the two LDT remap slots,
 * and `extra` (PTI stacks).
 */
function specAllowed(k: Kernel, extra: { start: bigint; end: bigint }[] = []): { start: bigint; end: bigint; what: string }[] {
  const r = [
    { start: CPU_ENTRY_AREA_BASE, end: CPU_ENTRY_AREA_BASE + P4D_SIZE, what: 'cpu_entry_area' },
    { start: ESPFIX_BASE_ADDR, end: ESPFIX_BASE_ADDR + P4D_SIZE, what: 'espfix' },
    { start: KERNEL_TEXT & ~(PMD_SIZE - 1n), end: (KERNEL_TEXT & ~(PMD_SIZE - 1n)) + PMD_SIZE, what: 'entry text' },
    { start: LDT_BASE_ADDR, end: LDT_BASE_ADDR + 2n * 0x10000n, what: 'ldt' },
  ];
  for (const pc of k.percpu) r.push({ start: pc.cea!.tssRw, end: pc.cea!.tssRw + 0x1000n, what: `cpu_tss_rw ${pc.id}` });
  for (const e of extra) r.push({ ...e, what: 'extra' });
  return r;
}

/** Checks that the user copy `userPgd` maps only allowed kernel pages, none user-accessible; returns its leaves. */
function checkUserCopy(k: Kernel, userPgd: number, extra: { start: bigint; end: bigint }[] = []): KernelLeaf[] {
  const ls = leaves(k, userPgd);
  const spec = specAllowed(k, extra);
  const model = pti_allowed_ranges(k);
  for (const l of ls) {
    const end = l.va + BigInt(l.bytes);
    const where = `leaf 0x${l.va.toString(16)} (${l.bytes} bytes)`;
    assert.ok(spec.some((r) => l.va >= r.start && end <= r.end), `spec §3.3: ${where} is outside the PTI-shared set`);
    assert.ok(model.some((r) => l.va >= r.start && end <= r.end), `${where} is outside pti_allowed_ranges`);
    assert.equal(l.lo & US, 0, `${where}: a kernel page in the user copy is supervisor-only`);
  }
  return ls;
}

/** The CR3 writes in `events`. */
const cr3Writes = (events: IsolabEvent[]): Ev<'cr_write'>[] => events.filter((e): e is Ev<'cr_write'> => e.type === 'cr_write' && e.reg === 'cr3');
/** Whether a CR3 write selects the user copy (bit 12). */
const isUser = (w: Ev<'cr_write'>): boolean => (w.lo & PTI_USER_PGD_BIT) !== 0;

// ==== Boot control (spec §3.1) =====================================================================

test('spec §3.1: pti=auto follows the CPU\'s meltdown bug, pti=on forces PTI, pti=off never has it', () => {
  const cases: [SystemConfig, boolean][] = [
    [{ cpu: { meltdown: true } }, true],
    [{ cpu: { meltdown: false } }, false],
    [{ cpu: { meltdown: true }, kernel: { pti: 'auto' } }, true],
    [{ cpu: { meltdown: false }, kernel: { pti: 'on' } }, true],
    [{ cpu: { meltdown: true }, kernel: { pti: 'on' } }, true],
    [{ cpu: { meltdown: true }, kernel: { pti: 'off' } }, false],
    [{ cpu: { meltdown: false }, kernel: { pti: 'off' } }, false],
  ];
  for (const [config, pti] of cases) {
    const sys = boot(config);
    assert.equal(sys.kernel.pti, pti, JSON.stringify(config));
    // The boot PGD is a pair exactly when PTI is on (spec §3.2).
    assert.equal(sys.kernel.init_mm.pgtables.userPgd >= 0, pti, `boot PGD pair: ${JSON.stringify(config)}`);
  }
});

// ==== The PGD pair (spec §3.2) ====================================================================

test('spec §3.2: with PTI each mm\'s PGD is an 8 KiB-aligned pair, kernel copy first, user copy = kernel + 4 KiB', () => {
  const sys = boot({ kernel: { pti: 'on' } });
  const pids = [sys.spawn({ main: getpids(1) }), sys.spawn({ main: getpids(1) }), sys.spawn({ main: getpids(1) })];
  const k = sys.kernel;
  for (const mm of [k.init_mm, ...pids.map((p) => sys.task(p)!.mm!)]) {
    assert.equal(mm.pgtables.pgd % 2, 0, 'order-1 allocation: the kernel copy is an even frame (8 KiB aligned)');
    assert.equal(mm.pgtables.userPgd, mm.pgtables.pgd + 1, 'kernel_to_user_pgdp = p | (1<<12)');
  }
  const noPti = boot({ kernel: { pti: 'off' } });
  const pid = noPti.spawn({ main: getpids(1) });
  assert.equal(noPti.task(pid)!.mm!.pgtables.userPgd, -1, 'no user copy without PTI');
});

test('spec §3.2 pgd_ctor: a new mm\'s kernel halves are the boot PGD\'s kernel and user copies', () => {
  const sys = boot({ cpus: 2, kernel: { pti: 'on' } });
  const pid = sys.spawn({ main: getpids(1) });
  const k = sys.kernel;
  const mem = sys.machine.mem;
  const mm = sys.task(pid)!.mm!;
  const boot_ = k.init_mm.pgtables;
  for (let i = 256; i < 512; i++) {
    assert.equal(mem.readLo(mm.pgtables.pgd, i), mem.readLo(boot_.pgd, i), `kernel copy entry ${i}`);
    assert.equal(mem.readHi(mm.pgtables.pgd, i), mem.readHi(boot_.pgd, i), `kernel copy entry ${i}`);
    assert.equal(mem.readLo(mm.pgtables.userPgd, i), mem.readLo(boot_.userPgd, i), `user copy entry ${i}`);
    assert.equal(mem.readHi(mm.pgtables.userPgd, i), mem.readHi(boot_.userPgd, i), `user copy entry ${i}`);
  }
});

test('spec §3.2/§3.4: user-half PGD entries are mirrored verbatim; the kernel copy adds NX to Present+User ones', () => {
  const ops: Op[] = [mmapAnon('a', 4096), store('$a', 1), load('x', '$a')];
  let checked = 0;
  runAndInspect(ops, 'x', { kernel: { pti: 'on' } }, (sys, mm) => {
    const mem = sys.machine.mem;
    for (let i = 0; i < 256; i++) {
      const klo = mem.readLo(mm.pgtables.pgd, i), khi = mem.readHi(mm.pgtables.pgd, i) >>> 0;
      const ulo = mem.readLo(mm.pgtables.userPgd, i), uhi = mem.readHi(mm.pgtables.userPgd, i) >>> 0;
      assert.equal(klo, ulo, `entry ${i}: same low word in both copies`);
      if (!(ulo & P)) continue;
      checked++;
      assert.equal(uhi & XD_HI, 0, `entry ${i}: the user copy keeps the real value (no NX)`);
      if ((ulo & (P | US)) === (P | US)) assert.equal(khi, (uhi | XD_HI) >>> 0, `entry ${i}: kernel copy = user value | NX`);
      else assert.equal(khi, uhi, `entry ${i}: not Present+User, no NX added`);
    }
  });
  assert.ok(checked >= 1, 'the program has present user PGD entries');
});

test('spec §3.6: user PTEs are never global, with or without PTI', () => {
  for (const pti of ['on', 'off'] as const) {
    const ops: Op[] = [mmapAnon('a', 2 * 4096), store('$a', 1), store('$a+4096', 2), load('x', '$a')];
    let n = 0;
    runAndInspect(ops, 'x', { kernel: { pti } }, (sys, mm) => {
      const t = [...sys.kernel.tasks.values()].find((x) => x.mm === mm)!;
      const a = Number(t.vars.get('a')!);
      const mem = sys.machine.mem;
      for (const va of [a, a + 4096, 0x400000]) {
        const table = mm.pgtables.pteTable(va, false);
        assert.ok(table >= 0);
        const lo = mem.readLo(table, Math.floor(va / 4096) % 512);
        assert.ok(lo & P, `0x${va.toString(16)} present`);
        assert.equal(lo & G, 0, `pti ${pti}: user PTE 0x${va.toString(16)} not global`);
        n++;
      }
    });
    assert.equal(n, 3);
  }
});

test('spec §3.4: without NX support the kernel copy\'s user-half entries are identical to the user copy\'s', () => {
  const ops: Op[] = [mmapAnon('a', 4096), store('$a', 1), load('x', '$a')];
  let checked = 0;
  runAndInspect(ops, 'x', { cpu: { nx: false }, kernel: { pti: 'on' } }, (sys, mm) => {
    const mem = sys.machine.mem;
    for (let i = 0; i < 256; i++) {
      if (!(mem.readLo(mm.pgtables.userPgd, i) & P)) continue;
      checked++;
      assert.equal(mem.readLo(mm.pgtables.pgd, i), mem.readLo(mm.pgtables.userPgd, i));
      assert.equal(mem.readHi(mm.pgtables.pgd, i), mem.readHi(mm.pgtables.userPgd, i));
    }
  });
  assert.ok(checked >= 1);
});

// ==== The user copy's kernel half (spec §3.3, §5.1) ===============================================

test('spec §3.3: the user copy maps the cpu_entry_area, ESPFIX, the entry text and each cpu_tss_rw, and nothing else', () => {
  const sys = boot({ cpus: 2, kernel: { pti: 'on' } });
  const k = sys.kernel;
  const pid = sys.spawn({ main: getpids(1) });
  for (const pgd of [k.init_mm.pgtables.userPgd, sys.task(pid)!.mm!.pgtables.userPgd]) {
    const ls = checkUserCopy(k, pgd);
    // What must be there: the RO IDT at the base, each CPU's GDT, entry stack and TSS (spec §5.1),
    // its cpu_tss_rw page (SYSCALL's tss.sp2 store, spec §5.2 step 2), ESPFIX, the entry text.
    assert.ok(maps(ls, CPU_ENTRY_AREA_BASE), 'cpu_entry_area page 0 (RO IDT)');
    for (const pc of k.percpu) {
      const cea = pc.cea!;
      assert.ok(maps(ls, cea.gdt), `cpu ${pc.id} GDT`);
      assert.ok(maps(ls, cea.entryStack), `cpu ${pc.id} entry stack`);
      assert.ok(maps(ls, cea.tss), `cpu ${pc.id} TSS`);
      assert.ok(maps(ls, cea.tssRw), `cpu ${pc.id} cpu_tss_rw`);
      // The cpu_tss_rw page is RW (PAGE_KERNEL), the GDT and TSS aliases read-only.
      assert.ok(leafAt(ls, cea.tssRw)!.lo & 2, 'cpu_tss_rw is writable');
      assert.equal(leafAt(ls, cea.gdt)!.lo & 2, 0, 'GDT is read-only');
      assert.equal(leafAt(ls, cea.tss)!.lo & 2, 0, 'TSS alias is read-only');
      assert.ok(leafAt(ls, cea.entryStack)!.lo & 2, 'entry stack is writable');
    }
    assert.ok(maps(ls, ESPFIX_BASE_ADDR), 'ESPFIX');
    assert.ok(maps(ls, KERNEL_TEXT), 'entry text');
    // Nothing else: no direct map (beyond the cpu_tss_rw pages), no kernel data, no banner.
    assert.equal(maps(ls, LINUX_BANNER), false, 'linux_banner (kernel data) is not in the user copy');
    assert.equal(maps(ls, PAGE_OFFSET), false, 'the direct map is not in the user copy');
    const directPages = ls.filter((l) => l.va >= PAGE_OFFSET && l.va < PAGE_OFFSET + (64n << 40n));
    assert.equal(directPages.length, k.percpu.length, 'only one direct-map page per CPU: its cpu_tss_rw');
    for (const l of directPages) assert.equal(l.bytes, 4096);
  }
});

test('spec §3.3: the kernel copy maps the direct map and the banner; without PTI the one PGD maps them', () => {
  for (const pti of ['on', 'off'] as const) {
    const sys = boot({ kernel: { pti } });
    const pid = sys.spawn({ main: getpids(1) });
    const ls = leaves(sys.kernel, sys.task(pid)!.mm!.pgtables.pgd);
    assert.ok(maps(ls, LINUX_BANNER), `${pti}: banner`);
    assert.ok(maps(ls, PAGE_OFFSET), `${pti}: direct map`);
    assert.ok(maps(ls, PAGE_OFFSET + BigInt(sys.machine.mem.frameCount * 4096 - 4096)), `${pti}: all of RAM in the direct map`);
    assert.ok(maps(ls, KERNEL_TEXT) && maps(ls, CPU_ENTRY_AREA_BASE) && maps(ls, ESPFIX_BASE_ADDR), `${pti}: text, cea, espfix`);
  }
});

test('spec §4.3/§3.3: after modify_ldt the user copy also maps the LDT remap slot, and still nothing outside the shared set', () => {
  // struct user_desc for a flat 32-bit data segment, entry 0.
  const ops: Op[] = [
    mmapAnon('ud', 4096),
    store('$ud', 0, 4), store('$ud+4', 0, 4), store('$ud+8', 0xfffff, 4), store('$ud+12', 0x11, 4),
    sc('w', 'modify_ldt', 0x11, '$ud', 16),
    load('x', '$ud'),
  ];
  const sys = runAndInspect(ops, 'x', { cpus: 2, kernel: { pti: 'on' } }, (s, mm) => {
    const ls = checkUserCopy(s.kernel, mm.pgtables.userPgd);
    assert.ok(ls.some((l) => l.va >= LDT_BASE_ADDR && l.va < LDT_BASE_ADDR + 0x20000n), 'an LDT slot is mapped in the user copy');
  });
  assert.equal(sv(sys, ops, 'w'), 0n);
});

test('spec §5.4 (entry_stack per_task): the task\'s PTI stack is mapped in its user copy, the kernel stack area otherwise not', () => {
  const ops: Op[] = [...getpids(2), load('x', '$rsp')];
  runAndInspect(ops, 'x', { kernel: { pti: 'on', entry_stack: 'per_task' } }, (s, mm) => {
    const t = [...s.kernel.tasks.values()].find((x) => x.mm === mm)!;
    assert.ok(t.ptiStack, 'a PTI stack exists');
    const st = t.ptiStack!;
    const extra = [{ start: st.va, end: st.va + BigInt(st.pfns.length * 4096) }];
    const ls = checkUserCopy(s.kernel, mm.pgtables.userPgd, extra);
    for (let i = 0; i < st.pfns.length; i++) {
      const l = leafAt(ls, st.va + BigInt(i * 4096));
      assert.ok(l, `PTI stack page ${i} mapped in the user copy`);
      assert.equal(l!.pfn, st.pfns[i]);
    }
    // The lower half (the kernel-only stack, THREAD_SIZE = 16 KiB below) is not in the user copy.
    assert.equal(maps(ls, st.va - 0x1000n), false, 'the kernel-only half of the task stack is not in the user copy');
  });
});

// ==== Global pages (spec §3.6) =====================================================================

test('spec §3.6: direct-map 2 MiB leaves are global without PTI and not with PTI; only shared mappings keep G under PTI', () => {
  for (const pti of ['off', 'on'] as const) {
    const sys = boot({ cpus: 2, kernel: { pti } });
    const k = sys.kernel;
    const ls = leaves(k, k.init_mm.pgtables.pgd);
    const direct = ls.filter((l) => l.va >= PAGE_OFFSET && l.va < PAGE_OFFSET + (64n << 40n));
    assert.ok(direct.length > 0);
    for (const l of direct) {
      assert.equal(l.bytes, 2 ** 21, 'the direct map uses 2 MiB pages');
      assert.equal(l.lo & PS, PS);
      assert.equal((l.lo & G) !== 0, pti === 'off', `direct map at 0x${l.va.toString(16)}: G ${pti === 'off' ? 'set' : 'clear'} (pti ${pti})`);
    }
    assert.equal((leafAt(ls, LINUX_BANNER)!.lo & G) !== 0, pti === 'off', `kernel data G (pti ${pti})`);
    // cpu_entry_area and the entry text are global in both cases (they are in both copies).
    assert.ok(leafAt(ls, KERNEL_TEXT)!.lo & G, `entry text G (pti ${pti})`);
    for (const pc of k.percpu) assert.ok(leafAt(ls, pc.cea!.gdt)!.lo & G, `cea GDT G (pti ${pti})`);
    if (pti === 'on') {
      const shared = [
        [CPU_ENTRY_AREA_BASE, CPU_ENTRY_AREA_BASE + P4D_SIZE],
        [ESPFIX_BASE_ADDR, ESPFIX_BASE_ADDR + P4D_SIZE],
        [KERNEL_TEXT & ~(PMD_SIZE - 1n), (KERNEL_TEXT & ~(PMD_SIZE - 1n)) + PMD_SIZE],
      ];
      for (const l of ls) {
        if (!(l.lo & G)) continue;
        assert.ok(shared.some(([s, e]) => l.va >= s && l.va < e), `global kernel leaf 0x${l.va.toString(16)} outside cea/espfix/entry text under PTI`);
      }
    }
  }
});

test('spec §3.6: a CPU without PGE gets no global kernel mapping at all', () => {
  for (const pti of ['off', 'on'] as const) {
    const sys = boot({ cpu: { pge: false }, kernel: { pti } });
    const ls = leaves(sys.kernel, sys.kernel.init_mm.pgtables.pgd);
    assert.equal(ls.filter((l) => l.lo & G).length, 0, `pti ${pti}`);
  }
});

// ==== CR3 and PCIDs (spec §3.5) ====================================================================

test('spec §3.5: in user mode under PTI with PCID, CR3 = kernel CR3 | (1<<12) | (1<<11), with kPCID = ASID+1 in 1..6', () => {
  const ops: Op[] = [mmapAnon('a', 4096), store('$a', 7), load('x', '$a'), ...getpids(3), load('y', '$a')];
  const seen: { cpl: number; lo: number; hi: number; asid: number; pgd: number }[] = [];
  const { events } = run(ops, { kernel: { pti: 'on' } }, (e, s) => {
    if (e.type === 'op' && (e.record.op === 'load' || e.record.op === 'store')) {
      const pc = s.kernel.percpu[e.cpu];
      seen.push({ cpl: pc.cpu.cpl, lo: pc.cpu.cr3Lo, hi: pc.cpu.cr3Hi, asid: pc.loaded_mm_asid, pgd: s.task(e.record.tid)!.mm!.pgtables.pgd });
    }
  });
  assert.ok(seen.length >= 3);
  for (const s of seen) {
    assert.equal(s.cpl, 3, 'the op ran in user mode');
    const kpcid = s.asid + 1;
    assert.ok(kpcid >= 1 && kpcid <= 6, `kPCID ${kpcid}`);
    const kernelLo = (s.pgd * 4096 + kpcid) >>> 0;
    assert.equal(s.lo >>> 0, (kernelLo | PTI_USER_PGD_BIT | PTI_USER_PCID_BIT) >>> 0, 'user CR3 = kernel CR3 | bit 12 | bit 11');
    assert.equal(s.lo & PCID_MASK, kpcid | PTI_USER_PCID_BIT, 'uPCID = kPCID | 2048 (2049..2054)');
    assert.equal(s.hi, 0);
  }
  // Every CR3 write that selects the user copy also carries the user PCID bit, and vice versa.
  const w = cr3Writes(events);
  assert.ok(w.some(isUser));
  for (const x of w) assert.equal((x.lo & PTI_USER_PCID_BIT) !== 0, isUser(x), `CR3 write 0x${x.lo.toString(16)}`);
});

test('spec §3.5: SWITCH_TO_KERNEL_CR3 clears bits 11 and 12 and always sets NOFLUSH with PCID', () => {
  const ops: Op[] = [...getpids(4)];
  const { events } = run(ops, { kernel: { pti: 'on' } });
  // An entry write is a CR3 write that directly follows a user-copy write (or the first write after one).
  const w = cr3Writes(events);
  let entries = 0;
  for (let i = 1; i < w.length; i++) {
    if (!isUser(w[i - 1]) || isUser(w[i])) continue;
    entries++;
    assert.equal(w[i].noflush, true, 'entry never flushes');
    assert.equal(w[i].lo >>> 0, (w[i - 1].lo & ~(PTI_USER_PGD_BIT | PTI_USER_PCID_BIT)) >>> 0, 'the same PGD pair and kPCID, bits 11 and 12 cleared');
  }
  assert.ok(entries >= 4, `one entry write per syscall (${entries})`);
});

test('spec §3.5: each syscall under PTI writes CR3 twice (entry and exit); without PTI never', () => {
  const count = (pti: 'on' | 'off', n: number): number => cr3Writes(run(getpids(n), { kernel: { pti } }).events).length;
  assert.equal(count('on', 15) - count('on', 5), 20, 'PTI: 2 CR3 writes per syscall');
  assert.equal(count('off', 15) - count('off', 5), 0, 'no PTI: the CR3 macros are patched out');
});

test('spec §3.5: without PCID (nopcid, or a CPU without it) every CR3 write flushes and carries PCID 0', () => {
  for (const config of [{ kernel: { pti: 'on' as const, nopcid: true } }, { cpu: { pcid: false, invpcid: false }, kernel: { pti: 'on' as const } }]) {
    const ops: Op[] = [mmapAnon('a', 4096), store('$a', 1), ...getpids(3)];
    const { sys, events } = run(ops, config);
    assert.equal(sys.kernel.pcid, false);
    const w = cr3Writes(events);
    assert.ok(w.filter(isUser).length >= 4, 'the user copy is still switched to');
    for (const x of w) {
      assert.equal(x.noflush, false, 'no NOFLUSH without PCID');
      assert.equal(x.lo & PCID_MASK, 0, 'PCID field 0');
    }
  }
});

test('spec §3.5: the first return to user after switch_mm takes a fresh ASID flushes the user PCID (no NOFLUSH)', () => {
  const { events } = run(getpids(3), { kernel: { pti: 'on' } });
  const users = cr3Writes(events).filter(isUser);
  assert.ok(users.length >= 4);
  assert.equal(users[0].noflush, false, 'invalidate_user_asid from switch_mm: the first SWITCH_TO_USER_CR3 flushes');
  for (const u of users.slice(1)) assert.equal(u.noflush, true, 'later returns keep the user PCID');
});

/**
 * Runs `mmap n pages, touch each, <flush op>, getpid x3` without INVPCID or with it, and returns
 * the SWITCH_TO_USER_CR3 writes after the flush op's syscall_enter, the user_pcid_flush_mask
 * bits seen just before each, the INVPCID flushes, and the kernel PCID.
 */
function deferredFlushRun(pages: number, invpcid: boolean, flush: 'munmap' | 'mprotect'): { users: Ev<'cr_write'>[]; maskBefore: number[]; invpcids: Ev<'tlb_flush'>[]; kpcid: number } {
  const ops: Op[] = [mmapAnon('a', pages * 4096)];
  for (let i = 0; i < pages; i++) ops.push(store(`$a+${i * 4096}`, i + 1));
  ops.push(flush === 'munmap' ? sc('f', 'munmap', '$a', pages * 4096) : sc('f', 'mprotect', '$a', pages * 4096, 1));
  ops.push(...getpids(3));
  let after = false;
  let kpcid = -1;
  const users: Ev<'cr_write'>[] = [];
  const maskBefore: number[] = [];
  const invpcids: Ev<'tlb_flush'>[] = [];
  const { sys } = run(ops, { cpu: { invpcid }, kernel: { pti: 'on' } }, (e, s) => {
    const pc = s.kernel.percpu[0];
    if (e.type === 'syscall_enter' && (e.name === 'munmap' || e.name === 'mprotect')) {
      after = true;
      kpcid = pc.loaded_mm_asid + 1;
    }
    if (!after) return;
    // Just before SWITCH_TO_USER_CR3 (per_cpu exit: the return frame is copied to the entry stack).
    if (e.type === 'entry' && e.what === 'regs_copy' && e.stack === 'entry') maskBefore.push(pc.user_pcid_flush_mask);
    if (e.type === 'cr_write' && e.reg === 'cr3' && isUser(e)) users.push(e);
    if (e.type === 'tlb_flush' && e.cause === 'invpcid_addr') invpcids.push(e);
  });
  assert.equal(sv(sys, ops, 'f'), 0n);
  assert.equal(sys.kernel.percpu[0].user_pcid_flush_mask, 0, 'every deferred flush was taken');
  return { users, maskBefore, invpcids, kpcid };
}

test('spec §3.5 deferred flush: without INVPCID a one-page flush sets the kPCID bit, the next SWITCH_TO_USER_CR3 flushes once', () => {
  for (const flush of ['munmap', 'mprotect'] as const) {
    const { users, maskBefore, invpcids, kpcid } = deferredFlushRun(1, false, flush);
    assert.ok(kpcid >= 1 && kpcid <= 6);
    assert.equal(users.length, 4, `${flush}: the flush call and three getpids return to user`);
    assert.deepEqual(users.map((u) => u.noflush), [false, true, true, true], `${flush}: exactly one flushing return`);
    assert.equal(maskBefore.length, 4);
    assert.ok(maskBefore[0] & (1 << kpcid), `${flush}: user_pcid_flush_mask bit kPCID set before the return`);
    for (const m of maskBefore.slice(1)) assert.equal(m & (1 << kpcid), 0, `${flush}: and cleared by it`);
    assert.equal(invpcids.length, 0, 'no INVPCID on this CPU');
  }
});

test('spec §3.5/§6.5: with INVPCID a one-page flush invalidates the user PCID at once (type 0, pcid kPCID|2048), no deferred flush', () => {
  const { users, maskBefore, invpcids, kpcid } = deferredFlushRun(1, true, 'munmap');
  assert.ok(invpcids.length >= 1, 'an INVPCID type 0');
  for (const f of invpcids) assert.equal(f.pcid, kpcid | 2048, 'the user PCID');
  assert.deepEqual(users.map((u) => u.noflush), [true, true, true, true], 'every return keeps NOFLUSH');
  for (const m of maskBefore) assert.equal(m & (1 << kpcid), 0);
});

test('spec §3.5/§6.2: a full flush (34 pages > the 33-page ceiling) defers the user-PCID flush even with INVPCID', () => {
  const { users, maskBefore, invpcids, kpcid } = deferredFlushRun(34, true, 'munmap');
  assert.equal(invpcids.length, 0, 'flush_tlb_local, not per-page INVPCID');
  assert.deepEqual(users.map((u) => u.noflush), [false, true, true, true]);
  assert.ok(maskBefore[0] & (1 << kpcid));
});

// ==== Meltdown reach (spec §3.3; reach.ts) =========================================================

test('Meltdown without PTI: a transient load of linux_banner returns its first 8 bytes', () => {
  const ops: Op[] = [probe('b', LINUX_BANNER), probe('d', PAGE_OFFSET + 0x100000n)];
  const { sys } = run(ops, { cpu: { meltdown: true }, kernel: { pti: 'off' } });
  assert.equal(uv(sys, ops, 'b'), BANNER8);
  assert.notEqual(uv(sys, ops, 'd'), NOTHING, 'the direct map is reachable too');
});

test('Meltdown with PTI: the banner and the direct map give nothing; the cpu_entry_area, cpu_tss_rw, ESPFIX and entry text still read', () => {
  const sys0 = boot({ cpu: { meltdown: true } });
  const cea = sys0.kernel.percpu[0].cea!;
  const ops: Op[] = [
    probe('b', LINUX_BANNER),
    probe('d', PAGE_OFFSET + 0x100000n),
    probe('gdt', cea.gdt),
    probe('tss', cea.tssRw),
    probe('esp', ESPFIX_BASE_ADDR),
    probe('txt', KERNEL_TEXT),
  ];
  // pti=auto on a Meltdown CPU turns PTI on (spec §3.1).
  const { sys } = run(ops, { cpu: { meltdown: true } });
  assert.equal(sys.kernel.pti, true);
  assert.equal(uv(sys, ops, 'b'), NOTHING, 'banner: -1');
  assert.equal(uv(sys, ops, 'd'), NOTHING, 'direct map: -1');
  for (const n of ['gdt', 'tss', 'esp', 'txt']) assert.notEqual(uv(sys, ops, n), NOTHING, `${n} is in the user copy and reads`);
});

test('no Meltdown bug: nothing of the kernel reads transiently, with or without PTI', () => {
  for (const pti of ['on', 'off'] as const) {
    const sys0 = boot({});
    const ops: Op[] = [probe('b', LINUX_BANNER), probe('gdt', sys0.kernel.percpu[0].cea!.gdt)];
    const { sys } = run(ops, { cpu: { meltdown: false }, kernel: { pti } });
    assert.equal(uv(sys, ops, 'b'), NOTHING, `pti ${pti}: banner`);
    assert.equal(uv(sys, ops, 'gdt'), NOTHING, `pti ${pti}: cea`);
  }
});

test('sys.reach: user copy vs kernel copy; empty without the bug; under PTI only shared regions', () => {
  const reachOf = (config: SystemConfig) => {
    const sys = boot(config);
    const pid = sys.spawn({ main: getpids(1) });
    return { r: sys.reach(pid), k: sys.kernel };
  };
  const a = reachOf({ cpu: { meltdown: false }, kernel: { pti: 'on' } });
  assert.equal(a.r.pageTable, 'user copy');
  assert.equal(a.r.meltdown, false);
  assert.equal(a.r.bytes, 0);
  assert.deepEqual(a.r.ranges, []);
  const b = reachOf({ cpu: { meltdown: false }, kernel: { pti: 'off' } });
  assert.equal(b.r.pageTable, 'kernel copy');
  assert.equal(b.r.bytes, 0);
  const c = reachOf({ cpu: { meltdown: true }, kernel: { pti: 'on' } });
  assert.equal(c.r.pageTable, 'user copy');
  assert.ok(c.r.bytes > 0);
  const allowed = specAllowed(c.k);
  for (const rg of c.r.ranges) {
    assert.ok(allowed.some((x) => rg.start >= x.start && rg.end <= x.end), `reach range ${rg.region} 0x${rg.start.toString(16)} is PTI-shared`);
  }
  assert.equal(c.r.ranges.reduce((s, x) => s + x.bytes, 0), c.r.bytes);
  const d = reachOf({ cpu: { meltdown: true }, kernel: { pti: 'off' } });
  assert.equal(d.r.pageTable, 'kernel copy');
  assert.ok(d.r.ranges.some((x) => LINUX_BANNER >= x.start && LINUX_BANNER < x.end), 'the banner is reachable without PTI');
  assert.ok(d.r.ranges.some((x) => PAGE_OFFSET >= x.start && PAGE_OFFSET < x.end), 'the direct map is reachable without PTI');
  assert.ok(d.r.bytes >= sys0Ram(d.k), 'at least all of RAM through the direct map');
});
function sys0Ram(k: Kernel): number {
  return k.machine.mem.frameCount * 4096;
}

// ==== Per-process PTI (spec §3.7; nopti.ts) =========================================================

const PER_PROCESS: SystemConfig = { cpu: { meltdown: true }, kernel: { pti: 'on', pti_per_process: true } };

test('§3.7 NOW: after ARCH_SET_NOPTI NOW the process reads the banner, GET says NOW; a neighbour process still reads nothing', () => {
  const sys = boot({ ...PER_PROCESS, cpus: 2 });
  const a: Op[] = [getNopti('g0'), probe('before', LINUX_BANNER), setNopti('s', NOPTI_NOW), probe('after', LINUX_BANNER), getNopti('g1'), ...getpids(5)];
  const b: Op[] = [...getpids(3), probe('nb', LINUX_BANNER), ...getpids(3), probe('nb2', LINUX_BANNER)];
  const reach = sys.recordReach();
  const pa = sys.spawn({ main: a }, { name: 'a', cpu: 0 });
  const pb = sys.spawn({ main: b }, { name: 'b', cpu: 1 });
  assert.ok(sys.run({ maxSteps: 1_000_000 }).finished);
  assert.deepEqual(sys.debugReports, []);
  assert.equal(uv(sys, a, 'g0', { image: 'a' }), 0n);
  assert.equal(uv(sys, a, 'before', { image: 'a' }), NOTHING);
  assert.equal(uv(sys, a, 's', { image: 'a' }), 0n);
  assert.equal(uv(sys, a, 'after', { image: 'a' }), BANNER8, 'PTI off for this mm: user mode runs on the kernel copy');
  assert.equal(uv(sys, a, 'g1', { image: 'a' }), BigInt(NOPTI_NOW));
  assert.equal(uv(sys, b, 'nb', { image: 'b' }), NOTHING);
  assert.equal(uv(sys, b, 'nb2', { image: 'b' }), NOTHING);
  const ra = reach.find((r) => r.pid === pa)!;
  const rb = reach.find((r) => r.pid === pb)!;
  assert.equal(ra.reach.pageTable, 'kernel copy');
  assert.equal(rb.reach.pageTable, 'user copy');
  assert.ok(ra.reach.ranges.some((x) => LINUX_BANNER >= x.start && LINUX_BANNER < x.end));
  assert.ok(!rb.reach.ranges.some((x) => LINUX_BANNER >= x.start && LINUX_BANNER < x.end));
});

test('§3.7 NOW: no CR3 switch on entry or exit for that mm, user mode on the kernel copy, and no NX trick on its user PGD entries', () => {
  const mk = (n: number): Op[] => [mmapAnon('a', 4096), store('$a', 1), setNopti('s', NOPTI_NOW), ...getpids(n), load('x', '$a')];
  const count = (n: number): number => cr3Writes(run(mk(n), PER_PROCESS).events).length;
  assert.equal(count(15) - count(5), 0, 'SWITCH_TO_USER_CR3 skipped, SWITCH_TO_KERNEL_CR3 does not rewrite');
  const ops = mk(2);
  runAndInspect(ops, 'x', PER_PROCESS, (s, mm) => {
    const cpu = s.kernel.percpu[0].cpu;
    assert.equal(cpu.cpl, 3);
    assert.equal(cpu.cr3Lo & PTI_USER_PGD_BIT, 0, 'CR3 selects the kernel copy in user mode');
    assert.equal(Math.floor(cpu.cr3Lo / 4096) + cpu.cr3Hi * 2 ** 20, mm.pgtables.pgd);
    const mem = s.machine.mem;
    let n = 0;
    for (let i = 0; i < 256; i++) {
      if (!(mem.readLo(mm.pgtables.userPgd, i) & P)) continue;
      n++;
      assert.equal(mem.readHi(mm.pgtables.pgd, i) & XD_HI, 0, `entry ${i}: no NX in the kernel copy (RFC v2 "don't mark the user PGD with _PAGE_NX")`);
    }
    assert.ok(n > 0);
  });
});

test('§3.7: a thread shares the mm, so changing NOW gives EBUSY in the thread and in the leader', () => {
  const sys = boot({ ...PER_PROCESS, cpus: 2 });
  const body: Op[] = [setNopti('t', NOPTI_NOW), getNopti('tg')];
  const main: Op[] = [
    { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], into: 'c', child: body, cpu: 1 },
    setNopti('p', NOPTI_NOW),
    ...getpids(40),
    getNopti('pg'),
  ];
  sys.spawn({ main });
  assert.ok(sys.run({ maxSteps: 1_000_000 }).finished);
  assert.deepEqual(sys.debugReports, []);
  assert.ok(sv(sys, main, 'c') > 0n);
  assert.equal(sv(sys, main, 'p'), -BigInt(EBUSY), 'mm_users == 2');
  const fn = `main.${at(main, 'c')}.child`;
  assert.equal(sv(sys, body, 't', { fn }), -BigInt(EBUSY), 'the thread ran its SET: mm_users == 2');
  assert.equal(uv(sys, body, 'tg', { fn }), 0n);
  assert.equal(uv(sys, main, 'pg'), 0n, 'NOW unchanged');
});

test('§3.7: a vfork child gets EBUSY for NOW but may set NEXT; NEXT is the child\'s, the parent\'s mm and NEXT stay', () => {
  const child: Op[] = [setNopti('cn', NOPTI_NOW), setNopti('cx', NOPTI_NEXT), getNopti('cg')];
  const main: Op[] = [
    { op: 'syscall', name: 'vfork', into: 'v', child },
    getNopti('pg'),
    probe('pb', LINUX_BANNER),
  ];
  const { sys } = run(main, PER_PROCESS);
  const rec = (into: string): bigint => sv(sys, child, into, { fn: 'main.0.child' });
  assert.ok(sv(sys, main, 'v') > 0n);
  assert.equal(rec('cn'), -BigInt(EBUSY), 'the vfork child shares the mm: mm_users >= 2');
  assert.equal(rec('cx'), 0n, 'NEXT alone can always change');
  assert.equal(rec('cg'), BigInt(NOPTI_NEXT), 'GET in the child: NEXT set, NOW not');
  assert.equal(uv(sys, main, 'pg'), 0n, 'the parent: neither NOW nor NEXT');
  assert.equal(uv(sys, main, 'pb'), NOTHING, 'the parent still runs on its user copy');
});

test('§3.7: "vfork, set NEXT, execve" starts the new image with PTI off', () => {
  const next: Op[] = [getNopti('ng'), probe('nb', LINUX_BANNER)];
  const sys = boot(PER_PROCESS);
  sys.addImage('next', { main: next });
  const child: Op[] = [setNopti('cx', NOPTI_NEXT), sc('ex', 'execve', '&next', 0, 0)];
  const main: Op[] = [{ op: 'syscall', name: 'vfork', into: 'v', child }, sc('w', 'wait4', -1, 0, 0, 0), probe('pb', LINUX_BANNER)];
  sys.spawn({ main, strings: { next: 'next' } });
  assert.ok(sys.run({ maxSteps: 1_000_000 }).finished);
  assert.deepEqual(sys.debugReports, []);
  assert.equal(uv(sys, next, 'ng', { image: 'next' }) & BigInt(NOPTI_NOW), BigInt(NOPTI_NOW), 'the new mm has PTI off');
  assert.equal(uv(sys, next, 'nb', { image: 'next' }), BANNER8);
  assert.equal(uv(sys, main, 'pb', { image: 'init' }), NOTHING, 'the parent keeps PTI');
});

test('§3.7: fork copies NOW to the child\'s mm', () => {
  const child: Op[] = [getNopti('cg'), probe('cb', LINUX_BANNER)];
  const main: Op[] = [setNopti('s', NOPTI_NOW), { op: 'syscall', name: 'fork', into: 'f', child }, sc('w', 'wait4', -1, 0, 0, 0)];
  const { sys } = run(main, PER_PROCESS);
  assert.equal(sv(sys, main, 's'), 0n);
  const r = (into: string): bigint => uv(sys, child, into, { fn: `main.${at(main, 'f')}.child` });
  assert.equal(r('cg') & BigInt(NOPTI_NOW), BigInt(NOPTI_NOW));
  assert.equal(r('cb'), BANNER8);
});

test('§3.7: execve applies NEXT (not NOW): NEXT alone leaves the current image isolated; NOW alone does not survive exec', () => {
  // NEXT: the current image keeps PTI, the exec'd one has it off.
  {
    const next: Op[] = [getNopti('ng'), probe('nb', LINUX_BANNER)];
    const sys = boot(PER_PROCESS);
    sys.addImage('next', { main: next });
    const modes: Ev<'pti_mode'>[] = [];
    sys.events.subscribe((e) => {
      if (e.type === 'pti_mode') modes.push(e);
    });
    const main: Op[] = [setNopti('s', NOPTI_NEXT), getNopti('g'), probe('b', LINUX_BANNER), sc('ex', 'execve', '&next', 0, 0)];
    sys.spawn({ main, strings: { next: 'next' } });
    assert.ok(sys.run({ maxSteps: 1_000_000 }).finished);
    assert.deepEqual(sys.debugReports, []);
    assert.equal(uv(sys, main, 's', { image: 'init' }), 0n);
    assert.equal(uv(sys, main, 'g', { image: 'init' }), BigInt(NOPTI_NEXT));
    assert.equal(uv(sys, main, 'b', { image: 'init' }), NOTHING, 'NEXT does not change the running image');
    assert.equal(uv(sys, next, 'ng', { image: 'next' }) & BigInt(NOPTI_NOW), BigInt(NOPTI_NOW));
    assert.equal(uv(sys, next, 'nb', { image: 'next' }), BANNER8);
    assert.ok(modes.some((m) => m.how === 'exec' && m.nopti), 'a pti_mode event for the exec');
  }
  // NOW without NEXT: the new mm comes from NEXT, so PTI is back after execve.
  {
    const next: Op[] = [getNopti('ng'), probe('nb', LINUX_BANNER)];
    const sys = boot(PER_PROCESS);
    sys.addImage('next', { main: next });
    const main: Op[] = [setNopti('s', NOPTI_NOW), probe('b', LINUX_BANNER), sc('ex', 'execve', '&next', 0, 0)];
    sys.spawn({ main, strings: { next: 'next' } });
    assert.ok(sys.run({ maxSteps: 1_000_000 }).finished);
    assert.deepEqual(sys.debugReports, []);
    assert.equal(uv(sys, main, 'b', { image: 'init' }), BANNER8);
    assert.equal(uv(sys, next, 'ng', { image: 'next' }) & BigInt(NOPTI_NOW), 0n);
    assert.equal(uv(sys, next, 'nb', { image: 'next' }), NOTHING);
  }
});

test('nopti.ts: without CAP_SYS_ADMIN turning PTI off gives EPERM; setting 0 (PTI stays on) is allowed', () => {
  const main: Op[] = [...dropSysAdmin(), setNopti('now', NOPTI_NOW), setNopti('next', NOPTI_NEXT), setNopti('zero', 0), getNopti('g'), probe('b', LINUX_BANNER)];
  const { sys } = run(main, PER_PROCESS);
  assert.equal(sv(sys, main, 'cg'), 0n);
  assert.equal(sv(sys, main, 'cs'), 0n, 'capset dropped CAP_SYS_ADMIN');
  assert.equal(sv(sys, main, 'now'), -BigInt(EPERM));
  assert.equal(sv(sys, main, 'next'), -BigInt(EPERM));
  assert.equal(sv(sys, main, 'zero'), 0n);
  assert.equal(uv(sys, main, 'g'), 0n);
  assert.equal(uv(sys, main, 'b'), NOTHING);
});

test('nopti.ts refusal order: option off -> EINVAL; unknown flag -> EINVAL; PTI off at boot -> ENODEV', () => {
  // The option off: both codes are unknown arch_prctl options.
  {
    const main: Op[] = [getNopti('g'), setNopti('s', NOPTI_NOW), setNopti('u', 4)];
    const { sys } = run(main, { cpu: { meltdown: true }, kernel: { pti: 'on' } });
    assert.equal(sv(sys, main, 'g'), -BigInt(EINVAL));
    assert.equal(sv(sys, main, 's'), -BigInt(EINVAL));
    assert.equal(sv(sys, main, 'u'), -BigInt(EINVAL));
  }
  // The option on, PTI on: an unknown flag.
  {
    const main: Op[] = [setNopti('u', 4), setNopti('u2', NOPTI_NOW | 8), getNopti('g')];
    const { sys } = run(main, PER_PROCESS);
    assert.equal(sv(sys, main, 'u'), -BigInt(EINVAL));
    assert.equal(sv(sys, main, 'u2'), -BigInt(EINVAL));
    assert.equal(uv(sys, main, 'g'), 0n, 'nothing changed');
  }
  // The option on, PTI off at boot: ENODEV, but an unknown flag is still EINVAL first.
  {
    const main: Op[] = [setNopti('s', NOPTI_NOW), setNopti('x', NOPTI_NEXT), setNopti('u', 4)];
    const { sys } = run(main, { cpu: { meltdown: true }, kernel: { pti: 'off', pti_per_process: true } });
    assert.equal(sv(sys, main, 's'), -BigInt(ENODEV));
    assert.equal(sv(sys, main, 'x'), -BigInt(ENODEV));
    assert.equal(sv(sys, main, 'u'), -BigInt(EINVAL));
  }
  // Option off and PTI off: EINVAL (the option check comes first).
  {
    const main: Op[] = [setNopti('s', NOPTI_NOW)];
    const { sys } = run(main, { kernel: { pti: 'off' } });
    assert.equal(sv(sys, main, 's'), -BigInt(EINVAL));
  }
});

// ==== Entry paths (spec §5.2, §5.3) ================================================================

/** One ordered stream of entry steps and CR3 writes: ['sp2@user', 'cr3:k', 'stack_switch@task', ...]. */
function stream(events: IsolabEvent[]): string[] {
  const out: string[] = [];
  for (const e of events) {
    if (e.type === 'entry') out.push(`${e.what}@${e.stack}${e.bytes ? `:${e.bytes}` : ''}`);
    else if (e.type === 'cr_write' && e.reg === 'cr3') out.push(isUser(e) ? 'cr3:u' : 'cr3:k');
    else if (e.type === 'syscall_enter') out.push(`enter:${e.name}`);
    else if (e.type === 'syscall') out.push(`done:${e.name}`);
    else if (e.type === 'fault') out.push(`fault:${e.vector}`);
    else if (e.type === 'page_fault') out.push('page_fault');
  }
  return out;
}
/** The slice of `s` from the first `from` to the next `to` after it. */
function window(s: string[], from: string, to: string): string[] {
  const i = s.indexOf(from);
  assert.ok(i >= 0, `no ${from}`);
  const j = s.indexOf(to, i + 1);
  assert.ok(j > i, `no ${to} after ${from}`);
  return s.slice(i, j + 1);
}
/** Asserts that `items` appear in `w` in this order. */
function inOrder(w: string[], items: string[], msg: string): void {
  let at_ = -1;
  for (const it of items) {
    const i = w.indexOf(it, at_ + 1);
    assert.ok(i > at_, `${msg}: ${it} after ${items[items.indexOf(it) - 1] ?? 'start'} in ${w.join(' ')}`);
    at_ = i;
  }
}

test('spec §5.2 (per_cpu): SYSCALL saves RSP in sp2, switches CR3, then moves to the task stack and pushes pt_regs there', () => {
  const ops: Op[] = [...getpids(2)];
  const { events } = run(ops, { kernel: { pti: 'on', entry_stack: 'per_cpu' } });
  const s = stream(events);
  const entry = window(s, 'enter:getpid', 'done:getpid');
  inOrder(entry, ['swapgs@user', 'sp2@user:8', 'cr3:k', 'stack_switch@task', 'regs_push@task:168'], 'entry');
  assert.equal(entry.filter((x) => x.startsWith('cr3')).length, 1);
  assert.ok(!entry.some((x) => x.endsWith('@entry') || x.startsWith('regs_push@entry')), 'the entry stack is not used on SYSCALL entry');
  // Exit: the return frame goes to the entry stack before SWITCH_TO_USER_CR3, then SYSRET.
  const exit = window(s, 'done:getpid', 'sysret@user');
  inOrder(exit, ['stack_switch@entry', 'regs_copy@entry:16', 'cr3:u', 'swapgs@entry', 'sysret@user'], 'exit');
});

test('spec §5.3 (per_cpu): a user page fault lands on the entry stack, switches CR3, and sync_regs copies 168 bytes to the task stack', () => {
  const ops: Op[] = [mmapAnon('a', 4096), store('$a', 5)];
  const { events } = run(ops, { kernel: { pti: 'on', entry_stack: 'per_cpu' } });
  const s = stream(events);
  const w = window(s, 'fault:14', 'page_fault');
  inOrder(w, ['hw_frame@entry:40', 'regs_push@entry:128', 'cr3:k', 'regs_copy@task:168'], '#PF entry');
  // The IRET exit: back to the entry stack, then the CR3 switch, then iret.
  const after = s.slice(s.indexOf('page_fault'));
  inOrder(after, ['stack_switch@entry', 'regs_copy@entry:48', 'cr3:u', 'iret@user'], '#PF exit');
});

test('spec §5.4 (per_task): entry lands on the PTI stack and pt_regs stays there: no regs_copy on entry', () => {
  const ops: Op[] = [mmapAnon('a', 4096), store('$a', 5), ...getpids(1)];
  const { events } = run(ops, { kernel: { pti: 'on', entry_stack: 'per_task' } });
  const s = stream(events);
  const pf = window(s, 'fault:14', 'page_fault');
  assert.ok(pf.includes('hw_frame@pti:40'), `hardware frame on the PTI stack: ${pf.join(' ')}`);
  assert.ok(!pf.some((x) => x.startsWith('regs_copy')), 'no sync_regs copy');
  inOrder(pf, ['hw_frame@pti:40', 'cr3:k', 'stack_switch@task'], 'the C handler switches CR3, then moves to the kernel stack');
  const sc_ = window(s, 'enter:getpid', 'done:getpid');
  assert.ok(!sc_.some((x) => x.startsWith('regs_copy')), 'no copy on SYSCALL entry');
  inOrder(sc_, ['regs_push@pti:168', 'cr3:k', 'stack_switch@task'], 'SYSCALL: pt_regs on the PTI stack');
});

test('entry_stack per_cpu_c: a task that sleeps in a syscall leaves its pt_regs on the per-CPU entry stack (reported); per_cpu and per_task do not', () => {
  const programs: Record<string, Op[]> = {
    wait4: [{ op: 'syscall', name: 'fork', into: 'f', child: getpids(3), cpu: 0 }, sc('w', 'wait4', -1, 0, 0, 0)],
    vfork: [{ op: 'syscall', name: 'vfork', into: 'v', child: getpids(3) }, ...getpids(1)],
  };
  for (const [name, main] of Object.entries(programs)) {
    for (const entry_stack of ['per_cpu_c', 'per_task', 'per_cpu'] as const) {
      const sys = boot({ cpus: 1, kernel: { pti: 'on', entry_stack } });
      sys.spawn({ main });
      assert.ok(sys.run({ maxSteps: 1_000_000 }).finished, `${name} ${entry_stack}`);
      const reported = sys.debugReports.filter((r) => r.startsWith('entry_stack'));
      if (entry_stack === 'per_cpu_c') assert.ok(reported.length >= 1, `${name}: per_cpu_c reports the sleeping task's pt_regs`);
      else assert.deepEqual(sys.debugReports, [], `${name}: ${entry_stack} is clean`);
      assert.ok(records(sys).size >= 2);
    }
  }
});

// ==== More per-process PTI (spec §3.7; nopti.ts) ====================================================

test('§3.7: setting NOW back to 0 restores isolation: the NX trick, the CR3 switches and an unreadable banner', () => {
  const mk = (n: number): Op[] => [
    mmapAnon('a', 4096), store('$a', 1),
    setNopti('off', NOPTI_NOW), probe('b1', LINUX_BANNER),
    setNopti('on', 0), probe('b2', LINUX_BANNER), getNopti('g'),
    ...getpids(n), load('x', '$a'),
  ];
  const ops = mk(2);
  const sys = runAndInspect(ops, 'x', PER_PROCESS, (s, mm) => {
    const mem = s.machine.mem;
    let n = 0;
    for (let i = 0; i < 256; i++) {
      const ulo = mem.readLo(mm.pgtables.userPgd, i);
      if ((ulo & (P | US)) !== (P | US)) continue;
      n++;
      assert.equal(mem.readHi(mm.pgtables.pgd, i) >>> 0, (mem.readHi(mm.pgtables.userPgd, i) | XD_HI) >>> 0, `entry ${i}: NX again in the kernel copy`);
    }
    assert.ok(n > 0);
    assert.ok(s.kernel.percpu[0].cpu.cr3Lo & PTI_USER_PGD_BIT, 'user mode on the user copy again');
  });
  assert.equal(sv(sys, ops, 'off'), 0n);
  assert.equal(uv(sys, ops, 'b1'), BANNER8);
  assert.equal(sv(sys, ops, 'on'), 0n);
  assert.equal(uv(sys, ops, 'b2'), NOTHING);
  assert.equal(uv(sys, ops, 'g'), 0n);
  const count = (n: number): number => cr3Writes(run(mk(n), PER_PROCESS).events).length;
  assert.equal(count(12) - count(2), 20, '2 CR3 writes per syscall again');
});

test('§3.7: once a thread has exited, mm_users is 1 again and the leader may change NOW', () => {
  const sys = boot({ ...PER_PROCESS, cpus: 2 });
  const main: Op[] = [
    { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], into: 'c', child: getpids(1, 't'), cpu: 1 },
    setNopti('busy', NOPTI_NOW),
    ...getpids(200),
    setNopti('s', NOPTI_NOW),
    probe('b', LINUX_BANNER),
  ];
  sys.spawn({ main });
  assert.ok(sys.run({ maxSteps: 1_000_000 }).finished);
  assert.deepEqual(sys.debugReports, []);
  assert.equal(sv(sys, main, 'busy'), -BigInt(EBUSY), 'while the thread lives');
  assert.equal(sv(sys, main, 's'), 0n, 'after it exited');
  assert.equal(uv(sys, main, 'b'), BANNER8);
});

test('nopti.ts order: without CAP_SYS_ADMIN a vfork child changing NOW gets EPERM before EBUSY', () => {
  const child: Op[] = [setNopti('cn', NOPTI_NOW), setNopti('cz', 0)];
  const main: Op[] = [...dropSysAdmin(), { op: 'syscall', name: 'vfork', into: 'v', child }];
  const { sys } = run(main, PER_PROCESS);
  assert.equal(sv(sys, main, 'cs'), 0n);
  const fn = `main.${at(main, 'v')}.child`;
  assert.equal(sv(sys, child, 'cn', { fn }), -BigInt(EPERM));
  assert.equal(sv(sys, child, 'cz', { fn }), 0n, 'NOW unchanged and NEXT stays clear: nothing to refuse');
});

// ==== Remote flushes (spec §3.5, §6.3, §6.5) ========================================================

/**
 * A thread on CPU 1 keeps loading from page 2 of a mapping while the leader on CPU 0 unmaps
 * page 1 (which the thread touched first): the shootdown IPI interrupts CPU 1 in user mode.
 * Returns CPU 1's SWITCH_TO_USER_CR3 writes after the IPI, the INVPCIDs on CPU 1 and its kPCID.
 */
function remoteFlushRun(invpcid: boolean): { users: Ev<'cr_write'>[]; invpcids: Ev<'tlb_flush'>[]; kpcid: number; ipis: number } {
  const body: Op[] = [load('t0', '$a')];
  for (let i = 0; i < 300; i++) body.push(load(`t${i + 1}`, '$a+4096'));
  const main: Op[] = [
    mmapAnon('a', 2 * 4096), store('$a', 1), store('$a+4096', 2),
    { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], into: 'c', child: body, cpu: 1 },
    ...getpids(30),
    sc('u', 'munmap', '$a', 4096),
    ...getpids(5, 'h'),
  ];
  let ipiSeen = false;
  let ipis = 0;
  let kpcid = -1;
  const users: Ev<'cr_write'>[] = [];
  const invpcids: Ev<'tlb_flush'>[] = [];
  const sys = boot({ cpus: 2, cpu: { invpcid }, kernel: { pti: 'on' } });
  sys.events.subscribe((e) => {
    if (e.type === 'ipi' && e.to === 1) {
      ipis++;
      ipiSeen = true;
      kpcid = sys.kernel.percpu[1].loaded_mm_asid + 1;
    }
    if (!ipiSeen) return;
    if (e.type === 'cr_write' && e.reg === 'cr3' && e.cpu === 1 && isUser(e)) users.push(e);
    if (e.type === 'tlb_flush' && e.cpu === 1 && e.cause === 'invpcid_addr') invpcids.push(e);
  });
  sys.spawn({ main });
  assert.ok(sys.run({ maxSteps: 1_000_000 }).finished);
  assert.deepEqual(sys.debugReports, []);
  assert.equal(sv(sys, main, 'u'), 0n);
  const fn = `main.${at(main, 'c')}.child`;
  assert.equal(uv(sys, body, 't0', { fn }), 1n, 'the thread ran');
  return { users, invpcids, kpcid, ipis };
}

test('spec §3.5/§6.3: a shootdown IPI taken in user mode without INVPCID defers the user-PCID flush to the IRET exit on that CPU', () => {
  const { users, invpcids, kpcid, ipis } = remoteFlushRun(false);
  assert.equal(ipis, 1, 'one IPI to CPU 1');
  assert.ok(kpcid >= 1 && kpcid <= 6);
  assert.ok(users.length >= 1, 'CPU 1 returned to user after the IPI');
  assert.equal(users[0].noflush, false, 'the first SWITCH_TO_USER_CR3 after the flush drops the user PCID');
  assert.equal(users[0].lo & PCID_MASK, kpcid | 2048);
  for (const u of users.slice(1)) assert.equal(u.noflush, true);
  assert.equal(invpcids.length, 0);
});

test('spec §3.5/§6.5: with INVPCID the remote CPU invalidates the address in its user PCID at once', () => {
  const { users, invpcids, kpcid, ipis } = remoteFlushRun(true);
  assert.equal(ipis, 1);
  assert.ok(invpcids.length >= 1, 'INVPCID type 0 on CPU 1');
  for (const f of invpcids) assert.equal(f.pcid, kpcid | 2048);
  assert.ok(users.length >= 1);
  for (const u of users) assert.equal(u.noflush, true, 'nothing deferred');
});

// ==== 5-level paging (spec §3.3, §4.1) ============================================================

test('PTI with 5-level paging: a plain process runs and exits, and the kernel\'s shared mappings survive', () => {
  const sys0 = boot({ cpu: { la57: true, meltdown: true }, kernel: { pti: 'on' } });
  const gdt = sys0.kernel.percpu[0].cea!.gdt;
  const ops: Op[] = [probe('b', LINUX_BANNER), probe('g', gdt), ...getpids(1)];
  let thrown: unknown;
  let result: { sys: System } | undefined;
  try {
    result = run(ops, { cpu: { la57: true, meltdown: true }, kernel: { pti: 'on' } });
  } catch (e) {
    thrown = e;
  }
  assert.equal(thrown, undefined, `the run failed: ${String(thrown)}`);
  const { sys } = result!;
  assert.equal(uv(sys, ops, 'b'), NOTHING);
  assert.notEqual(uv(sys, ops, 'g'), NOTHING);
  // The boot PGD still maps the kernel after the process is gone.
  const ls = leaves(sys.kernel, sys.kernel.init_mm.pgtables.pgd);
  // mm.rst, 5-level: the direct map at 0xff11000000000000.
  assert.ok(maps(ls, LINUX_BANNER) && maps(ls, 0xff11000000000000n) && maps(ls, CPU_ENTRY_AREA_BASE));
});

test('PTI with 5-level paging and per-task entry stacks: the PTI stack sits in the 5-level vmalloc area, the user copies map nothing else, every frame comes back', () => {
  // mm.rst, 5-level: vmalloc_base 0xffa0000000000000, the direct map at 0xff11000000000000; the
  // first task's PTI stack is the top THREAD_SIZE of stack slot 1 (2 * 16 KiB per slot).
  const stack5 = 0xffa0000000000000n + 0x8000n + 0x4000n;
  const direct5 = 0xff11000000000000n + 0x100000n;
  const child: Op[] = [probe('cd', direct5), ...getpids(2)];
  const ops: Op[] = [
    probe('s', stack5), probe('d', direct5), probe('b', LINUX_BANNER), ...getpids(1),
    { op: 'syscall', name: 'fork', into: 'f', child }, sc('w', 'wait4', -1, 0, 0, 0),
  ];
  const config = { cpu: { la57: true, meltdown: true }, kernel: { pti: 'on' as const, entry_stack: 'per_task' as const, debug_vm: true } };
  const sys = boot(config);
  const base = sys.framesInUse;
  sys.spawn({ main: ops });
  assert.ok(sys.run({ maxSteps: 1_000_000 }).finished);
  // debug_vm ran the pti_user_pgd and page-table checks at every switch and exit.
  assert.deepEqual(sys.debugReports, []);
  assert.equal(uv(sys, ops, 's'), 0n, 'the parent reads its own PTI stack (zeroed)');
  assert.equal(uv(sys, ops, 'd'), NOTHING, 'the direct map is not in the user copy');
  assert.equal(uv(sys, ops, 'b'), NOTHING, 'kernel data is not in the user copy');
  assert.equal(uv(sys, child, 'cd', { fn: `main.${at(ops, 'f')}.child` }), NOTHING, 'nor in the child\'s');
  assert.equal(sys.framesInUse, base, 'the PTI stacks\' page tables were freed with each mm');
});

// ==== Invariants across scheduling (spec §3.2, §3.5, §3.7) =========================================

test('spec §3.5: every user operation runs with CR3 on its own mm\'s user copy (or kernel copy with NOW), under preemption, faults, fork and wait4', () => {
  const sys = boot({ cpus: 2, cpu: { meltdown: true }, kernel: { pti: 'on', pti_per_process: true, timeslice: 2 } });
  const work = (tag: string): Op[] => [
    mmapAnon('a', 3 * 4096), store('$a', 1), store('$a+4096', 2), load(`${tag}l`, '$a'),
    sc(`${tag}y`, 'sched_yield'), store('$a+8192', 3), probe(`${tag}p`, LINUX_BANNER),
    sc(`${tag}m`, 'mprotect', '$a', 4096, 1), load(`${tag}l2`, '$a+4096'),
  ];
  const nopti: Op[] = [setNopti('s', NOPTI_NOW), ...work('n'), { op: 'syscall', name: 'fork', into: 'f', child: work('c') }, sc('w', 'wait4', -1, 0, 0, 0), ...work('n2')];
  const plain: Op[] = [...work('p'), { op: 'syscall', name: 'fork', into: 'f', child: work('c') }, sc('w', 'wait4', -1, 0, 0, 0), ...work('p2')];
  let checked = 0;
  sys.events.subscribe((e) => {
    if (e.type !== 'op' || !['load', 'store', 'transient_load'].includes(e.record.op)) return;
    const pc = sys.kernel.percpu[e.cpu];
    const t = sys.task(e.record.tid)!;
    assert.equal(pc.current, t);
    assert.equal(pc.cpu.cpl, 3);
    const frame = Math.floor(pc.cpu.cr3Lo / 4096) + pc.cpu.cr3Hi * 2 ** 20;
    const want = t.mm!.nopti ? t.mm!.pgtables.pgd : t.mm!.pgtables.userPgd;
    assert.equal(frame, want, `tid ${t.tid} ${e.record.op}: CR3 frame`);
    assert.equal((pc.cpu.cr3Lo & PTI_USER_PCID_BIT) !== 0, !t.mm!.nopti, 'user PCID bit with the user copy only');
    checked++;
  });
  const a = sys.spawn({ main: nopti }, { name: 'np' });
  const b = sys.spawn({ main: plain }, { name: 'pl' });
  assert.ok(sys.run({ maxSteps: 1_000_000 }).finished);
  assert.deepEqual(sys.debugReports, []);
  assert.ok(checked > 30, `${checked} user operations checked`);
  assert.ok(a > 0 && b > 0);
  // Meltdown results follow the mode: the nopti process and its fork child read the banner, the others do not.
  const byImage = (image: string, fn: string, into: string, ops: Op[]) => uv(sys, ops, into, { image, fn });
  assert.equal(byImage('np', 'main', 'np', nopti), BANNER8);
  assert.equal(byImage('np', `main.${at(nopti, 'f')}.child`, 'cp', work('c')), BANNER8);
  assert.equal(byImage('pl', 'main', 'pp', plain), NOTHING);
  assert.equal(byImage('pl', `main.${at(plain, 'f')}.child`, 'cp', work('c')), NOTHING);
});

test('pti_user_pgd check: a live user copy that maps the direct map is reported (debug_vm, at the end of a run)', () => {
  const sys = boot({ cpu: { meltdown: true }, kernel: { pti: 'on' } });
  const ops: Op[] = [probe('d', PAGE_OFFSET + 0x100000n), ...getpids(50)];
  const pid = sys.spawn({ main: ops });
  const mm = sys.task(pid)!.mm!;
  const mem = sys.machine.mem;
  // A clean live mm passes the check.
  sys.run({ maxSteps: 5 });
  assert.deepEqual(sys.debugReports, []);
  // Corrupt the user copy: give it the kernel copy's PGD entry for the direct map.
  const i = Number((PAGE_OFFSET >> 39n) & 511n);
  mem.write64(mm.pgtables.userPgd, i, mem.readLo(mm.pgtables.pgd, i), mem.readHi(mm.pgtables.pgd, i));
  while (!sys.log.some((r) => r.index === 0)) sys.run({ maxSteps: 1 });
  assert.ok(sys.task(pid), 'still alive');
  assert.notEqual(uv(sys, ops, 'd'), NOTHING, 'the corrupted user copy leaks the direct map to Meltdown');
  const reports: string[] = [...sys.kernel.debugReports];
  assert.ok(reports.some((r) => r.startsWith('pti_user_pgd') && r.includes('0xffff888000000000')), reports.join('\n'));
});

test('spec §5.2/§5.3 without PTI: the same stacks and copies, only the CR3 switches are patched out', () => {
  const ops: Op[] = [mmapAnon('a', 4096), store('$a', 5), ...getpids(1)];
  const { events } = run(ops, { kernel: { pti: 'off', entry_stack: 'per_cpu' } });
  const s = stream(events);
  const windows = [window(s, 'enter:getpid', 'done:getpid'), window(s, 'fault:14', 'page_fault'), window(s, 'done:getpid', 'sysret@user'), window(s, 'page_fault', 'iret@user')];
  for (const w of windows) assert.ok(!w.some((x) => x.startsWith('cr3')), `no CR3 write on entry or exit: ${w.join(' ')}`);
  inOrder(windows[0], ['swapgs@user', 'sp2@user:8', 'stack_switch@task', 'regs_push@task:168'], 'SYSCALL entry');
  inOrder(windows[1], ['hw_frame@entry:40', 'regs_push@entry:128', 'swapgs@entry', 'regs_copy@task:168'], '#PF entry');
  inOrder(windows[2], ['regs_pop@task:160', 'stack_switch@entry', 'regs_copy@entry:16', 'swapgs@entry', 'sysret@user'], 'SYSRET exit');
  inOrder(windows[3], ['stack_switch@entry', 'regs_copy@entry:48', 'swapgs@entry', 'iret@user'], 'IRET exit');
});

test('§3.7: the mode is per mm: a thread created after NOW shares it; GET reports NOW|NEXT; NEXT "newly set" is what needs the capability', () => {
  const sys = boot({ ...PER_PROCESS, cpus: 2 });
  const body: Op[] = [getNopti('tg'), probe('tb', LINUX_BANNER)];
  const main: Op[] = [
    setNopti('s', NOPTI_NOW | NOPTI_NEXT),
    getNopti('g'),
    { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], into: 'c', child: body, cpu: 1 },
    ...getpids(60),
    ...dropSysAdmin(),
    setNopti('again', NOPTI_NOW | NOPTI_NEXT), // nothing newly turned off: allowed even unprivileged
    setNopti('keepnext', NOPTI_NEXT), // NOW would change (to 0): mm_users decides, not the capability
  ];
  sys.spawn({ main });
  assert.ok(sys.run({ maxSteps: 1_000_000 }).finished);
  assert.deepEqual(sys.debugReports, []);
  assert.equal(sv(sys, main, 's'), 0n);
  assert.equal(uv(sys, main, 'g'), BigInt(NOPTI_NOW | NOPTI_NEXT));
  const fn = `main.${at(main, 'c')}.child`;
  assert.equal(uv(sys, body, 'tg', { fn }) & BigInt(NOPTI_NOW), BigInt(NOPTI_NOW), 'the thread shares the mm\'s NOW');
  assert.equal(uv(sys, body, 'tb', { fn }), BANNER8, 'and runs on the kernel copy');
  assert.equal(sv(sys, main, 'cs'), 0n);
  assert.equal(sv(sys, main, 'again'), 0n);
  assert.equal(sv(sys, main, 'keepnext'), 0n, 'the thread is gone: mm_users == 1, and turning PTI back on needs no privilege');
});

test('spec §5.4 (per_task): after fork each mm\'s user copy maps its own task\'s PTI stack and not the other\'s', () => {
  const child: Op[] = [...getpids(1), load('cx', '$rsp')];
  const main: Op[] = [{ op: 'syscall', name: 'fork', into: 'f', child }, ...getpids(1), load('px', '$rsp'), sc('w', 'wait4', -1, 0, 0, 0)];
  const views: { mine: bigint[]; other: bigint[]; mapped: bigint[] }[] = [];
  const sys = boot({ kernel: { pti: 'on', entry_stack: 'per_task' } });
  const vmalloc = (k: Kernel, pgd: number): bigint[] => leaves(k, pgd).filter((l) => l.va >= 0xffffc90000000000n && l.va < 0xffffc90000000000n + P4D_SIZE).map((l) => l.va);
  sys.events.subscribe((e) => {
    if (e.type !== 'op' || e.record.op !== 'load') return;
    const tasks = [...sys.kernel.tasks.values()].filter((t) => t.ptiStack && t.state !== 'dead' && t.state !== 'zombie');
    const me = sys.task(e.record.tid)!;
    const other = tasks.find((t) => t !== me)!;
    assert.ok(other, 'both tasks live');
    const pages = (t: typeof me): bigint[] => t.ptiStack!.pfns.map((_, i) => t.ptiStack!.va + BigInt(i * 4096));
    views.push({ mine: pages(me), other: pages(other), mapped: vmalloc(sys.kernel, me.mm!.pgtables.userPgd) });
  });
  sys.spawn({ main });
  assert.ok(sys.run({ maxSteps: 1_000_000 }).finished);
  assert.deepEqual(sys.debugReports, []);
  assert.ok(views.length >= 2, `${views.length} views`);
  for (const v of views) {
    assert.deepEqual(v.mapped, v.mine, 'exactly this task\'s PTI stack in its user copy');
    for (const o of v.other) assert.ok(!v.mapped.includes(o), 'not the other task\'s');
  }
});
