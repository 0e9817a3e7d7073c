/**
 * Per-CPU accesses and preemption (seed 001): flush_tlb_one_kernel under PTI sets
 * cpu_tlbstate.invalidate_other, clear_asid_other forgets the other ASIDs. Upstream
 * (clear_asid_other: irqs_off) runs the clearing inside switch_mm_irqs_off, interrupts off;
 * the other side of the debate (preemptible) runs it from the flushing task's path with
 * preemption on, where a migration between a this_cpu_read and a this_cpu_write sends the
 * rest of the accesses to the new CPU. DEBUG_PREEMPT checks this_cpu_ptr (invalidate_user_asid)
 * and __this_cpu_read / __this_cpu_write, never this_cpu_read / this_cpu_write
 * (include/linux/percpu-defs.h, lib/smp_processor_id.c).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { IsolabEvent, System } from '../../src/system.js';
import type { Op } from '../../src/user/program.js';
import type { KernelOptions } from '../../src/kernel/options.js';
import { TLB_NR_DYN_ASIDS } from '../../src/kernel/tlbflush.js';
import { invalidate_user_asid } from '../../src/kernel/pti.js';
import { boot, mmapAnon } from './helpers.js';

const CLONE_VM = 0x100, CLONE_SIGHAND = 0x800, CLONE_THREAD = 0x10000;
const THREAD_FLAGS = CLONE_VM | CLONE_SIGHAND | CLONE_THREAD;

/** One CPU's cpu_tlbstate fields the clearing touches. */
interface TlbState {
  ctx: number[];
  loaded: number;
  inv: boolean;
}

function tlbstate(sys: System, cpu: number): TlbState {
  const pc = sys.kernel.percpu[cpu];
  return { ctx: [...pc.ctx_id], loaded: pc.loaded_mm_asid, inv: pc.invalidate_other };
}

/** The exiting thread's tid: the second clone of the first process. */
const QUITTER = 3;

/**
 * A process whose thread on CPU 1 keeps running (getpid), while its leader and then a thread
 * on CPU 0 exit: its PTI stack is freed (entry_stack per_task), so flush_tlb_kernel_range runs on CPU 0
 * and sends do_kernel_range_flush to CPU 1.
 */
function program(): Op[] {
  return [
    mmapAnon('stk', 0x8000),
    { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, '$stk+0x3ff0', 0, 0, 0], into: 'busy', cpu: 1, child: Array.from({ length: 400 }, () => ({ op: 'syscall' as const, name: 'getpid' })) },
    { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, '$stk+0x7ff0', 0, 0, 0], into: 'quit', cpu: 0, child: [{ op: 'syscall', name: 'exit', args: [0] }] },
    { op: 'syscall', name: 'exit', args: [0] },
  ];
}

function bootIt(opts: Partial<KernelOptions>): System {
  const sys = boot({ cpus: 2, cpu: { meltdown: true }, stepwise: true, kernel: { pti: 'on', entry_stack: 'per_task', preempt: 'full', debug_vm: true, ...opts } });
  sys.spawn({ main: program() }, { cpu: 0 });
  return sys;
}

/**
 * Steps round-robin until the exiting thread has sent its kernel-range IPI and is back at a
 * step boundary of its path on CPU 0 with preemption on: the first step of the preemptible
 * clear_asid_other. Returns its tid.
 */
function runToClear(sys: System): number {
  let quitter = -1;
  sys.events.subscribe((e: IsolabEvent) => {
    if (e.type === 'ipi' && e.tid === QUITTER && e.from === 0) quitter = e.tid;
  });
  const pc0 = sys.kernel.percpu[0];
  for (let n = 0; n < 200_000; n++) {
    if (quitter > 0 && pc0.current?.tid === quitter && pc0.preempt_count === 0 && sys.task(quitter)!.kpath) return quitter;
    // CPU 0 steps alone once the flush is under way; CPU 1 steps until it has taken the IPI.
    if (quitter > 0) {
      if (sys.kernel.percpu[1].ipis.length > 0) sys.stepCpu(1);
      else sys.stepCpu(0);
    } else sys.step();
  }
  throw new Error('the exiting thread never reached clear_asid_other');
}

/**
 * What Linux's clear_asid_other does when the first `cut` of its per-CPU accesses run on CPU 0
 * and the rest on CPU 1: this_cpu_read(invalidate_other), then per ASID
 * this_cpu_read(loaded_mm_asid) and, for another ASID, this_cpu_write(ctxs[asid].ctx_id, 0),
 * then this_cpu_write(invalidate_other, false). Returns the expected states and the accesses.
 */
function expected(before: TlbState[], cut: number): { after: TlbState[]; accesses: number } {
  const s = before.map((x) => ({ ctx: [...x.ctx], loaded: x.loaded, inv: x.inv }));
  let n = 0;
  const cpu = (): number => (n++ < cut ? 0 : 1);
  if (!s[cpu()].inv) return { after: s, accesses: n };
  for (let asid = 0; asid < TLB_NR_DYN_ASIDS; asid++) {
    if (asid === s[cpu()].loaded) continue;
    s[cpu()].ctx[asid] = 0;
  }
  s[cpu()].inv = false;
  return { after: s, accesses: n };
}

test('flush_tlb_kernel_range under PTI: flush_tlb_one_kernel sets invalidate_other on every CPU; upstream clears it only inside switch_mm_irqs_off', () => {
  const sys = bootIt({});
  let exited = false;
  sys.events.subscribe((e: IsolabEvent) => {
    if (e.type === 'exit' && e.tid === QUITTER) exited = true;
  });
  for (let n = 0; n < 200_000 && !exited; n++) sys.step();
  assert.ok(exited);
  // Upstream: the flusher's path goes on without touching the ASIDs; both CPUs are marked, and
  // neither has switched to another mm since (CPU 0 went idle, CPU 1 kept the same mm).
  assert.equal(sys.kernel.percpu[0].invalidate_other, true);
  assert.equal(sys.kernel.percpu[1].invalidate_other, true);
  // Between steps, a CPU is never seen with invalidate_other cleared but an ASID other than
  // the loaded one still holding an mm: the clearing is one step with interrupts off.
  // (The ASID loaded before the switch is spared by clear_asid_other, the new one is filled.)
  const was = [tlbstate(sys, 0), tlbstate(sys, 1)];
  let flips = 0;
  for (let n = 0; n < 200_000 && sys.step(); n++) {
    for (let c = 0; c < 2; c++) {
      const s = tlbstate(sys, c);
      if (was[c].inv && !s.inv) {
        flips++;
        s.ctx.forEach((id, asid) => {
          if (asid !== s.loaded && asid !== was[c].loaded) assert.equal(id, 0, `CPU ${c} ASID ${asid} forgotten with invalidate_other`);
        });
      }
      was[c] = s;
    }
  }
  assert.ok(flips >= 1, 'a later switch_mm_irqs_off cleared it');
  assert.deepEqual(sys.debugReports, []);
});

test('clear_asid_other: irqs_off is never preempted: preemption asked at every step never lands between its accesses', () => {
  const sys = bootIt({});
  let preemptsInClear = 0;
  sys.events.subscribe((e: IsolabEvent) => {
    if (e.type === 'preempt') {
      const s = tlbstate(sys, e.cpu);
      // A half-cleared CPU: invalidate_other still set and some other ASID already forgotten, which a preemption inside the loop would leave.
      if (s.inv && s.ctx.some((id, asid) => asid !== s.loaded && id === 0) && s.ctx.some((id, asid) => asid !== s.loaded && id !== 0)) preemptsInClear++;
    }
  });
  for (let n = 0; n < 200_000; n++) {
    sys.preempt(0, 1);
    sys.preempt(1, 0);
    if (!sys.step()) break;
  }
  assert.equal(preemptsInClear, 0);
  assert.deepEqual(sys.debugReports, []);
});

test('clear_asid_other: preemptible, migrated from CPU 0 to CPU 1 at each step boundary: each this_cpu access lands on the CPU the task is on', () => {
  let cuts = 1;
  for (let cut = 0; cut < cuts; cut++) {
    const sys = bootIt({ clear_asid_other: 'preemptible' });
    const quitter = runToClear(sys);
    const before = [tlbstate(sys, 0), tlbstate(sys, 1)];
    // Every boundary before an access: after the last one the path leaves the clear.
    cuts = expected(before, Infinity).accesses;
    assert.equal(before[0].inv, true, 'CPU 0 marked by its own flush_tlb_one_kernel');
    assert.equal(before[1].inv, true, 'CPU 1 marked by do_kernel_range_flush from the IPI');
    const want = expected(before, cut);
    for (let i = 0; i < cut; i++) sys.stepCpu(0);
    assert.ok(sys.preempt(0, 1));
    assert.ok(sys.preempt(1), 'the thread on CPU 1 gives its CPU up');
    let migrated = false;
    let done = false;
    sys.events.subscribe((e: IsolabEvent) => {
      if (e.type === 'migrate' && e.tid === quitter && e.to === 1) migrated = true;
      if (e.type === 'exit' && e.tid === quitter) done = true;
    });
    const got: TlbState[] = [];
    for (let n = 0; n < 200_000 && !done; n++) {
      if (!sys.step()) break;
      if (done) got.push(tlbstate(sys, 0), tlbstate(sys, 1));
    }
    assert.ok(migrated, `cut ${cut}: migrated to CPU 1`);
    assert.ok(done, `cut ${cut}: the thread exited`);
    assert.equal(sys.task(quitter)?.cpu ?? 1, 1);
    assert.deepEqual(got, want.after, `cut ${cut}`);
    // Plain this_cpu_read / this_cpu_write are not checked: no DEBUG_PREEMPT finding.
    assert.deepEqual(sys.debugReports.filter((r) => r.startsWith('debug_preempt')), [], `cut ${cut}`);
  }
});

test('clear_asid_other: preemptible, migrated before the final write: CPU 1\'s invalidate_other is cleared while its other ASIDs still name their mms', () => {
  const sys = bootIt({ clear_asid_other: 'preemptible' });
  runToClear(sys);
  const before = tlbstate(sys, 1);
  // Every access but the last on CPU 0.
  const cut = expected([tlbstate(sys, 0), before], Infinity).accesses - 1;
  for (let i = 0; i < cut; i++) sys.stepCpu(0);
  assert.ok(sys.preempt(0, 1));
  assert.ok(sys.preempt(1));
  for (let n = 0; n < 20_000 && sys.kernel.percpu[1].invalidate_other; n++) sys.step();
  const after = tlbstate(sys, 1);
  assert.equal(after.inv, false);
  assert.equal(sys.kernel.percpu[0].invalidate_other, true, 'CPU 0 still marked: its own write went to CPU 1');
  assert.deepEqual(after.ctx, before.ctx, 'no ASID of CPU 1 forgotten');
});

test('percpu_ops: __this_cpu reports the first preemptible access, as tglx proposed; upstream\'s this_cpu_* never does', () => {
  const sys = bootIt({ clear_asid_other: 'preemptible', percpu_ops: '__this_cpu' });
  const quitter = runToClear(sys);
  const before = [tlbstate(sys, 0), tlbstate(sys, 0)];
  const { accesses } = expected(before, Infinity);
  for (let i = 0; i < accesses; i++) sys.stepCpu(0);
  const reports = sys.debugReports.filter((r) => r.startsWith('debug_preempt') && r.endsWith(`(task ${quitter})`));
  assert.equal(reports[0], `debug_preempt: BUG: using __this_cpu_read() in preemptible code: clear_asid_other (task ${quitter})`);
  assert.equal(reports.length, accesses, 'one finding per access: each __this_cpu_* is checked');
  assert.equal(reports.filter((r) => r.includes('__this_cpu_write')).length, accesses - 1 - TLB_NR_DYN_ASIDS);
  // Inside switch_mm_irqs_off (interrupts off) the same accessors are fine.
  const up = bootIt({ percpu_ops: '__this_cpu' });
  up.run({ maxSteps: 200_000 });
  assert.deepEqual(up.debugReports, []);
});

test('this_cpu_ptr in invalidate_user_asid is checked: reported with preemption on, not with preempt_count raised or interrupts off', () => {
  const sys = boot({ cpus: 1, cpu: { meltdown: true }, kernel: { pti: 'on', debug_vm: true } });
  const pid = sys.spawn({ main: [{ op: 'syscall', name: 'getpid' }] });
  sys.step();
  const pc = sys.kernel.percpu[0];
  assert.equal(pc.current?.tid, pid);
  sys.kernel.debugReports.length = 0;
  pc.preempt_count = 1;
  invalidate_user_asid(sys.kernel, pc, 0);
  pc.preempt_count = 0;
  pc.irqs_disabled = true;
  invalidate_user_asid(sys.kernel, pc, 0);
  pc.irqs_disabled = false;
  assert.deepEqual(sys.debugReports, []);
  invalidate_user_asid(sys.kernel, pc, 0);
  assert.deepEqual(sys.debugReports, [`debug_preempt: BUG: using smp_processor_id() in preemptible code: invalidate_user_asid (task ${pid})`]);
  // The bit is set either way (the check reports, it does not stop the access).
  assert.equal(pc.user_pcid_flush_mask & (1 << 1), 2);
});

test('flush_tlb_kernel_range above tlb_single_page_flush_ceiling: do_flush_tlb_all on every CPU (__flush_tlb_all), invalidate_other left alone', () => {
  // The PTI stack is 4 pages; a ceiling of 3 makes its flush a full one (arch/x86/mm/tlb.c:
  // "(end - start) > tlb_single_page_flush_ceiling << PAGE_SHIFT" → on_each_cpu(do_flush_tlb_all)).
  for (const invpcid of [true, false]) {
    const sys = boot({ cpus: 2, cpu: { meltdown: true, invpcid }, stepwise: true, kernel: { pti: 'on', entry_stack: 'per_task', debug_vm: true, tlb_single_page_flush_ceiling: 3 } });
    sys.spawn({ main: program() }, { cpu: 0 });
    const flushes: { cpu: number; cause: string }[] = [];
    let ipiAt = -1;
    let exitAt = -1;
    sys.events.subscribe((e: IsolabEvent) => {
      if (e.type === 'ipi' && e.tid === QUITTER && ipiAt < 0) ipiAt = flushes.length;
      if (e.type === 'exit' && e.tid === QUITTER) exitAt = flushes.length;
      if (e.type === 'tlb_flush' && ipiAt >= 0 && exitAt < 0) flushes.push({ cpu: e.cpu, cause: e.cause });
    });
    for (let n = 0; n < 200_000 && exitAt < 0; n++) sys.step();
    assert.ok(exitAt >= 0);
    // native_flush_tlb_global: INVPCID type 2 (all contexts, globals included) where the CPU has
    // INVPCID, else CR4.PGE toggled; on both CPUs, the flusher's and the IPI's target.
    const want = invpcid ? 'invpcid_all' : 'cr4';
    for (const cpu of [0, 1]) assert.ok(flushes.some((f) => f.cpu === cpu && f.cause === want), `CPU ${cpu}: ${want} (${JSON.stringify(flushes)})`);
    assert.ok(!flushes.some((f) => f.cause === 'invlpg'), 'no page-by-page flush');
    assert.equal(sys.kernel.percpu[1].invalidate_other, false, 'a full flush leaves no other ASID to forget');
    assert.deepEqual(sys.debugReports, []);
  }
});
