/**
 * Cost accounting (src/cost/account.ts, measure.ts): each event charged once, with the figure
 * the profile gives it; every breakdown adds up to the total; a null syscall costs what the
 * table's figures say Linux's entry code does; the paging-structure-cache approximation follows
 * SDM §4.10.3–4.10.4.
 *
 * The hand-computed syscall figures follow arch/x86/entry/entry_64.S (entry_SYSCALL_64 and
 * the SYSRET exit): SWAPGS, the user RSP saved (8 bytes), SWITCH_TO_KERNEL_CR3, the switch to
 * the task stack, PUSH_AND_CLEAR_REGS (pt_regs, 168 bytes); on the way out POP_REGS (all but
 * one word: 160 bytes), the switch to the entry stack, the SYSRET frame (RSP and RDI, 16 bytes),
 * SWITCH_TO_USER_CR3, SWAPGS, SYSRET. Under PTI with PCIDs both CR3 writes carry NOFLUSH when
 * no user flush is pending (user_pcid_flush_mask clear).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { breakdown, CostAccountant } from '../../src/cost/account.js';
import { COST_NAMES } from '../../src/cost/keys.js';
import { measureScenario, type MeasureReport } from '../../src/cost/measure.js';
import { builtinCostTable, profileOf, type Profile } from '../../src/cost/table.js';
import { compileScenarioFile, compileScenarioText } from '../../src/scenario/index.js';
import { runScenario } from '../../src/scenario/run.js';
import { System, type IsolabEvent } from '../../src/system.js';

const table = builtinCostTable();
const skylake = profileOf(table, 'skylake');
const nopcid = profileOf(table, 'skylake-nopcid');

/** A process making `n` getpid calls, on a Meltdown CPU with PTI `pti`. */
const getpids = (n: number, pti: 'on' | 'off'): string => `name: getpids
machine:
  cpus: 1
  cpu: { meltdown: true }
kernel:
  pti: ${pti}
processes:
  - name: p
    ops:
      - repeat: { count: ${n}, ops: [ getpid ] }
`;

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
const near = (a: number, b: number, what: string): void => assert.ok(Math.abs(a - b) < 1e-6 * Math.max(1, Math.abs(b)), `${what}: ${a} != ${b}`);

/** Every breakdown of `r` adds up to its total, and every item is its count times its figure. */
function checkSums(r: MeasureReport, p: Profile): void {
  const t = r.total.cycles;
  near(sum(r.total.items.map((i) => i.cycles)), t, 'items');
  near(sum(Object.values(r.total.byCategory)), t, 'categories');
  near(sum(r.cpus.map((c) => c.cycles)), t, 'CPUs');
  near(sum(r.tasks.map((x) => x.cycles)), t, 'tasks');
  near(r.total.ns, t / p.clockGhz, 'time');
  for (const i of r.total.items) near(i.cycles, i.count * p.costs[i.name].cycles, i.name);
  // Operations and syscalls are parts of the tasks' time: never more than it.
  assert.ok(sum(r.ops.map((o) => o.cycles)) <= t + 1e-6);
  assert.ok(sum(r.syscalls.map((s) => s.cycles)) <= t + 1e-6);
  for (const s of r.syscalls) near(s.cyclesPerCall * s.calls, s.cycles, `${s.name} per call`);
}

test('a null syscall without PTI costs the table\'s null round trip, 250 cycles', () => {
  const r = measureScenario(compileScenarioText(getpids(10, 'off'), 'g.yaml'), table, skylake);
  const g = r.syscalls.find((s) => s.name === 'getpid')!;
  assert.equal(g.calls, 10);
  near(g.cyclesPerCall, 250, 'getpid cycles');
  checkSums(r, skylake);
});

test('a null syscall under PTI with PCIDs: two NOFLUSH CR3 writes more, 450 cycles', () => {
  const r = measureScenario(compileScenarioText(getpids(10, 'on'), 'g.yaml'), table, skylake);
  const g = r.syscalls.find((s) => s.name === 'getpid')!;
  // 195 (syscall) + 2 × 10 (SWAPGS) + 2 × 1 (stack switches) + (8 + 168 + 160 + 16) / 8 × 0.75 + 2 × 100 (CR3, NOFLUSH).
  near(195 + 20 + 2 + (352 / 8) * 0.75 + 200, 450, 'the hand sum');
  near(g.cyclesPerCall, 450, 'getpid cycles');
  const cr3 = g.items.filter((i) => i.category === 'cr3');
  assert.deepEqual(cr3.map((i) => [i.name, i.count]), [['cr3_write_noflush', 20]]);
  checkSums(r, skylake);
});

test('a null syscall under PTI without PCIDs: both CR3 writes flush, and the TLB is refilled after', () => {
  const r = measureScenario(compileScenarioText(getpids(10, 'on'), 'g.yaml'), table, nopcid);
  const g = r.syscalls.find((s) => s.name === 'getpid')!;
  near(g.cyclesPerCall, 195 + 20 + 2 + 33 + 2 * 150, 'getpid cycles');
  // Each return to user mode flushed the user's translations: the next fetch walks again.
  const walks = r.total.items.find((i) => i.name === 'walk_leaf')!.count;
  assert.ok(walks >= 10, `walks ${walks}`);
  const withPcid = measureScenario(compileScenarioText(getpids(10, 'on'), 'g.yaml'), table, skylake);
  assert.ok(withPcid.total.items.find((i) => i.name === 'walk_leaf')!.count < walks / 2, 'PCIDs keep the user entries');
  checkSums(r, nopcid);
});

/** Counts of the events of a run that each cost is charged on, from the trace. */
function expectedCounts(trace: IsolabEvent[], fork_wrprotect: string): Map<string, number> {
  const m = new Map<string, number>();
  const add = (k: string, n = 1): void => void m.set(k, (m.get(k) ?? 0) + n);
  let shootdowns = new Set<number>();
  for (const e of trace) {
    if (e.type === 'syscall_enter') add('syscall');
    else if (e.type === 'op' && e.record.op !== 'syscall' && !e.record.signal) add('user_op');
    else if (e.type === 'entry') {
      if (e.what === 'swapgs') add('swapgs');
      if (e.what === 'stack_switch') add('stack_switch');
      if (e.what === 'iret') add('iret');
      add('stack_copy_8', e.bytes / 8);
    } else if (e.type === 'page_fault') {
      add('exception');
      add('page_fault');
      if (e.outcome === 'mapped') add('page_zero');
    } else if (e.type === 'page_copy') add('page_copy');
    else if (e.type === 'cr_write') add(e.reg === 'cr3' ? (e.noflush ? 'cr3_write_noflush' : 'cr3_write_flush') : 'cr_write');
    else if (e.type === 'walk') {
      add('walk_leaf');
      add('walk_restart', e.restarts);
    } else if (e.type === 'ad_set') add('ad_update');
    else if (e.type === 'tlb_flush' && e.cause === 'invlpg') add('invlpg');
    else if (e.type === 'tlb_shootdown') shootdowns.add(e.cpu);
    else if (e.type === 'ipi') {
      add('ipi_send');
      add('ipi_receive');
      if (shootdowns.has(e.from)) add('ipi_wait');
      shootdowns.delete(e.from);
    } else if (e.type === 'fork') {
      add('fork');
      add('fork_pte', e.ptes);
      add(fork_wrprotect === 'cmpxchg' ? 'cmpxchg' : fork_wrprotect === 'atomic_clear' ? 'lock_rmw' : 'pte_store', e.wrprotected);
    } else if (e.type === 'pte_retry') add('cmpxchg_retry');
    else if (e.type === 'context_switch') add('context_switch');
    else if (e.type === 'switch_mm') add('switch_mm');
    else if (e.type === 'pkru_write') add('wrpkru');
    else if (e.type === 'signal' && e.action === 'handler') add('signal_deliver');
  }
  shootdowns = new Set();
  for (const [k, v] of m) if (v === 0) m.delete(k);
  return m;
}

for (const [file, kernel] of [
  ['scenarios/tlb-shootdown.yaml', 'cmpxchg'],
  ['scenarios/fork-cow.yaml', 'cmpxchg'],
  ['scenarios/fork-wrprotect-atomic-clear.yaml', 'atomic_clear'],
  ['scenarios/pkey-signal-handler.yaml', 'cmpxchg'],
  ['scenarios/pcid-switch.yaml', 'cmpxchg'],
] as const) {
  test(`${file}: each event is charged once, and every breakdown adds up`, () => {
    const c = compileScenarioFile(file);
    const r = measureScenario(c, table, skylake);
    checkSums(r, skylake);
    // The same run recorded: the trace's events, counted by what they are charged.
    const rec = runScenario({ ...c, system: { ...c.system, cpu: { ...(c.system.cpu ?? {}), pcid: true, invpcid: true } } }, { record: true });
    const want = expectedCounts(rec.trace!.map((x) => x.event), kernel);
    const got = new Map(r.total.items.map((i) => [i.name as string, i.count]));
    for (const [k, v] of want) assert.equal(got.get(k), v, `${k}`);
    assert.ok(want.size >= 8, `the scenario exercises ${want.size} costs`);
  });
}

test('the paging-structure caches: a walk near a cached one reads only its leaf, until INVLPG drops them (SDM §4.10.3, §4.10.4.1)', () => {
  const sys = new System({ cpus: 1 });
  const acct = new CostAccountant(sys, skylake);
  const walk = (hi: number, lo: number): IsolabEvent => ({ type: 'walk', cpu: 0, hi, lo, access: 'read', levels: 4, reads: 4, restarts: 0, outcome: 'ok', errorCode: 0, tid: 0 });
  const levels = (): number => acct.total.counts[COST_NAMES.indexOf('walk_level')];
  acct.onEvent(walk(0x7f, 0x1000_0000));
  assert.equal(levels(), 3, 'a cold walk reads PML4E, PDPTE and PDE');
  acct.onEvent(walk(0x7f, 0x1000_1000));
  assert.equal(levels(), 3, 'the same 2 MiB: the PDE cache holds it');
  acct.onEvent(walk(0x7f, 0x1020_0000));
  assert.equal(levels(), 4, 'another 2 MiB of the same 1 GiB: the PDE only');
  acct.onEvent(walk(0x7e, 0x1000_0000));
  assert.equal(levels(), 6, 'another 1 GiB of the same 512 GiB: the PDPTE and the PDE');
  acct.onEvent({ type: 'tlb_flush', cpu: 0, cause: 'invlpg', pcid: sys.machine.cpus[0].pcid, global: true, hi: 0x7f, lo: 0x1000_0000, tid: 0 });
  acct.onEvent(walk(0x7f, 0x1000_1000));
  assert.equal(levels(), 9, 'INVLPG dropped every cached entry of the PCID');
  assert.equal(breakdown(acct.total, skylake).items.find((i) => i.name === 'walk_leaf')!.count, 5);
});

test('per operation: a syscall operation carries its whole path, exit included; a faulting load its fault', () => {
  const text = `name: ops
machine:
  cpus: 1
  cpu: { meltdown: true }
kernel:
  pti: 'on'
processes:
  - name: p
    ops:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }
        as: buf
      - getpid
      - load: $buf
      - load: $buf
`;
  const r = measureScenario(compileScenarioText(text, 'ops.yaml'), table, skylake);
  const op = (key: string) => r.ops.find((o) => o.op === key)!;
  // The getpid operation: SYSCALL to SYSRET, the 450 cycles of the hand sum above.
  near(op('p: main[1] getpid').cycles, 450, 'getpid operation');
  assert.equal(op('p: main[1] getpid').runs, 1);
  // The first load faults (the zero page is mapped): exception delivery and the handler are its own.
  const first = op('p: main[2] load');
  assert.equal(first.items.find((i) => i.name === 'page_fault')?.count, 1);
  assert.equal(first.items.find((i) => i.name === 'exception')?.count, 1);
  // The second hits the TLB: one instruction.
  near(op('p: main[3] load').cycles, skylake.costs.user_op.cycles, 'second load');
});
