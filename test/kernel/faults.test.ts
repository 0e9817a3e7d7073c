/**
 * Page faults and copy-on-write: demand-zero pages and the zero page, SIGSEGV's si_code for
 * each kind of bad access (arch/x86/mm/fault.c), COW after fork (mm/memory.c do_wp_page), and
 * the PTE bits fork leaves (copy_present_pte: parent write-protected in place, child
 * write-protected and old).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PTE_A, PTE_D, PTE_RW } from '../../src/hw/pte.js';
import { boot, mmapAnon, records, ret, runProgram } from './helpers.js';

const SEGV_MAPERR = 1;
const SEGV_ACCERR = 2;
const SI_KERNEL = 0x80;

test('a read of untouched anonymous memory maps the zero page; the first write gives a private zeroed page', () => {
  const { sys } = runProgram([
    mmapAnon('buf', 4096),
    { op: 'load', addr: '$buf', into: 'a' },
    { op: 'store', addr: '$buf+8', value: 0x1234 },
    { op: 'load', addr: '$buf+8', into: 'b' },
    { op: 'load', addr: '$buf', into: 'c' },
  ]);
  const r = records(sys);
  assert.equal(r.get(1)!.value, 0n);
  assert.equal(r.get(3)!.value, 0x1234n);
  assert.equal(r.get(4)!.value, 0n);
});

test('SIGSEGV si_code: MAPERR unmapped, ACCERR read-only write and PROT_NONE, MAPERR kernel half, SI_KERNEL non-canonical', () => {
  const cases: { name: string; ops: object[]; code: number; addr: (buf: bigint) => bigint }[] = [
    { name: 'unmapped', ops: [{ op: 'load', addr: 0x10000000 }], code: SEGV_MAPERR, addr: () => 0x10000000n },
    { name: 'write to PROT_READ', ops: [mmapAnon('buf', 4096, 1), { op: 'store', addr: '$buf+16', value: 1 }], code: SEGV_ACCERR, addr: (b) => b + 16n },
    { name: 'read of PROT_NONE', ops: [mmapAnon('buf', 4096, 0), { op: 'load', addr: '$buf' }], code: SEGV_ACCERR, addr: (b) => b },
    { name: 'kernel text', ops: [{ op: 'load', addr: 0xffffffff81000000n }], code: SEGV_MAPERR, addr: () => 0xffffffff81000000n },
    { name: 'non-canonical', ops: [{ op: 'load', addr: 0x800000000000n }], code: SI_KERNEL, addr: () => 0n },
  ];
  for (const c of cases) {
    const sys = boot();
    const pid = sys.spawn({ main: c.ops as never });
    sys.run();
    // No handler: SIGSEGV's default action kills the process; wait status = signal number (no core dump).
    assert.equal(sys.exitStatus(pid), 11, c.name);
    const sig = sys.log.find((r) => r.signal)!.signal!;
    const buf = sys.log.find((r) => r.op === 'syscall')?.value ?? 0n;
    assert.equal(sig.signo, 11, c.name);
    assert.equal(sig.code, c.code, c.name);
    assert.equal(sig.addr, c.addr(buf), c.name);
    assert.deepEqual(sys.debugReports, [], c.name);
  }
});

test('fork write-protects the parent PTE in place and gives the child a write-protected, old copy', () => {
  const sys = boot();
  const pid = sys.spawn({
    main: [
      mmapAnon('buf', 4096),
      { op: 'store', addr: '$buf', value: 7 },
      { op: 'syscall', name: 'fork', into: 'child', child: [{ op: 'syscall', name: 'sched_yield' }, { op: 'syscall', name: 'sched_yield' }] },
      { op: 'syscall', name: 'sched_yield' },
      { op: 'syscall', name: 'wait4', args: [-1, 0, 0, 0] },
    ],
  });
  const k = sys.kernel;
  const parent = sys.task(pid)!;
  // Run until the fork has returned in the parent.
  while (!(parent.opIndex >= 3 && !parent.kpath)) sys.step();
  const buf = Number(parent.vars.get('buf'));
  const childTid = Number(parent.vars.get('child'));
  const child = sys.task(childTid)!;
  const pte = (mm: typeof parent.mm): { lo: number; pfn: number } => {
    const table = mm!.pgtables.pteTable(buf, false);
    const lo = k.machine.mem.readLo(table, (buf / 4096) % 512);
    return { lo, pfn: lo >>> 12 };
  };
  const p = pte(parent.mm);
  const c = pte(child.mm);
  assert.equal(p.lo & PTE_RW, 0, 'parent PTE write-protected');
  assert.equal(c.lo & PTE_RW, 0, 'child PTE write-protected');
  assert.equal(c.lo & PTE_A, 0, 'child PTE old');
  assert.ok(p.lo & PTE_A, 'parent PTE keeps A');
  // The CPU model has shadow stacks, so the dirty state moves to SavedDirty (D cleared) in both (§7.3, §2.4).
  assert.equal(p.lo & PTE_D, 0);
  assert.equal(p.pfn, c.pfn, 'both map the same frame');
  assert.equal(k.pages.mapcount[p.pfn], 2);
  assert.equal(k.pages.refcount[p.pfn], 2);
  sys.run();
  assert.deepEqual(sys.debugReports, []);
});

test('COW: the child writes a copy, the parent then reuses its now exclusive page without copying', () => {
  const sys = boot();
  const outcomes: string[] = [];
  sys.events.subscribe((e) => {
    if (e.type === 'page_fault' && e.user) outcomes.push(e.outcome);
  });
  sys.spawn({
    main: [
      mmapAnon('buf', 4096),
      { op: 'store', addr: '$buf', value: 1 },
      { op: 'syscall', name: 'fork', child: [{ op: 'store', addr: '$buf', value: 2 }, { op: 'load', addr: '$buf', into: 'x' }] },
      { op: 'syscall', name: 'wait4', args: [-1, 0, 0, 0] },
      { op: 'load', addr: '$buf', into: 'y' },
      { op: 'store', addr: '$buf', value: 3 },
      { op: 'load', addr: '$buf', into: 'z' },
    ],
  });
  sys.run();
  assert.equal(records(sys, 'main.2.child').get(1)!.value, 2n);
  const m = records(sys);
  assert.equal(m.get(4)!.value, 1n);
  assert.equal(m.get(6)!.value, 3n);
  // Child's write: wp_page_copy. Parent's later write: wp_can_reuse_anon_folio (one reference left).
  assert.ok(outcomes.includes('copied'));
  assert.ok(outcomes.includes('reused'));
  assert.deepEqual(sys.debugReports, []);
});

test('a kernel access to bad user memory returns -EFAULT: rt_sigaction with an unmapped act', () => {
  const { sys } = runProgram([{ op: 'syscall', name: 'rt_sigaction', args: [10, 0x10000000, 0, 8] }]);
  assert.equal(ret(sys, 0), -14n);
});

test('a kernel write to a never-touched user page faults it in (copy_to_user demand paging)', () => {
  const { sys } = runProgram([
    mmapAnon('buf', 4096),
    { op: 'syscall', name: 'rt_sigprocmask', args: [0, 0, '$buf', 8] },
    { op: 'load', addr: '$buf', into: 'old' },
  ]);
  assert.equal(ret(sys, 1), 0n);
  assert.equal(records(sys).get(2)!.value, 0n);
});

test('a MAP_GROWSDOWN mapping grows down on an access just below it (expand_stack)', () => {
  const { sys } = runProgram([
    mmapAnon('s', 8192, 3, 0x122), // MAP_GROWSDOWN
    { op: 'store', addr: '$s-0x1000', value: 5 },
    { op: 'load', addr: '$s-0x1000', into: 'v' },
  ]);
  assert.equal(records(sys).get(2)!.value, 5n);
});
