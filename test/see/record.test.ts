/**
 * isolab see's recording (src/see/record.ts) against what Linux does and what the model's own
 * introspection says at the same step: copy_present_pte write-protects both PTEs of a private
 * page at fork and wp_page_copy gives the writer a new writable frame; under PTI a CPU in user
 * mode runs on the mm's user copy (SWITCH_TO_USER_CR3 before SYSRET/IRET) with the user PCID
 * bit (PTI_USER_PCID_BIT, 11) set; a replayed counterexample opens at its violation with the
 * stale entry marked; the deltas rebuild every keyframe.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSchedule } from '../../src/explore/schedule.js';
import { compileScenarioFile } from '../../src/scenario/index.js';
import { alignOps } from '../../src/see/compare.js';
import { recordRun, recordScenario } from '../../src/see/record.js';
import type { CpuView, TaskView, TlbView } from '../../src/see/types.js';
import { mmsOf, recordedPte, stateAt, stepOf } from './state.js';

const P = 1n;
const RW = 2n;
const D = 1n << 6n;
const pfnOf = (e: bigint): bigint => (e >> 12n) & 0xffffffffffn;

test('fork-cow: both PTEs read-only on one frame after fork; the child\'s write gives it a new writable, dirty frame; the parent\'s stays', () => {
  const r = recordScenario(compileScenarioFile('scenarios/fork-cow.yaml'));
  assert.equal(r.finished, true);
  assert.equal(r.passed, true);
  const fork = stepOf(r, 'fork');
  const afterFork = stateAt(r, fork);
  const mms = mmsOf(afterFork);
  assert.equal(mms.length, 2, 'parent and child each have an mm');
  // The page the parent mapped: the one anonymous rw-p VMA of one page.
  const buf = mms[0].vmas.find((v) => v.perms === 'rw-p' && v.name === '' && BigInt(v.end) - BigInt(v.start) === 4096n);
  assert.ok(buf, 'the mmap VMA is recorded');
  const va = Number(BigInt(buf.start));
  const [parent, child] = mms;
  const p0 = recordedPte(afterFork, parent.pgd, va)!;
  const c0 = recordedPte(afterFork, child.pgd, va)!;
  assert.ok(p0 & P && c0 & P, 'both present');
  assert.equal(p0 & RW, 0n, "copy_present_pte cleared the parent's R/W");
  assert.equal(c0 & RW, 0n, "the child's PTE is read-only too");
  assert.equal(pfnOf(p0), pfnOf(c0), 'one shared frame');
  // The child's store faults on CPU 1 (a write to a present read-only page: wp_page_copy); after the fault the child has its own frame.
  const fault = r.events.find((e) => e.type === 'page_fault' && e.cpu === 1 && e.text.includes('#PF P W U'))!.step;
  const after = stateAt(r, fault);
  const c1 = recordedPte(after, child.pgd, va)!;
  assert.ok(c1 & RW, 'wp_page_copy mapped the copy writable');
  assert.notEqual(pfnOf(c1), pfnOf(p0), 'on another frame');
  const p1 = recordedPte(after, parent.pgd, va)!;
  assert.equal(p1, p0, "the parent's PTE is untouched");
  // By the end of the child's store the copy is dirty (the processor set D on the write).
  const end = stateAt(r, r.steps);
  const liveChild = mmsOf(stateAt(r, stepOf(r, 'exit', 1) - 1)).find((m) => m.id === child.id)!;
  const c2 = recordedPte(stateAt(r, stepOf(r, 'exit', 1) - 1), liveChild.pgd, va)!;
  assert.ok(c2 & D, "the child's PTE is dirty after its store");
  assert.equal(mmsOf(end).length, 0, 'no mm is live once every task exited');
});

test('the recording says what the model says: CPU registers and tasks at every step of a PTI run', () => {
  const c = compileScenarioFile('scenarios/percpu-migrate.yaml');
  const r = recordScenario(c);
  assert.equal(r.machine.pti, true);
  assert.equal(r.machine.pcid, true);
  let userSteps = 0;
  for (let s = 0; s <= r.steps; s++) {
    const st = stateAt(r, s);
    const mms = new Map(mmsOf(st).map((m) => [m.id, m]));
    for (let cpu = 0; cpu < r.machine.cpus; cpu++) {
      const v = st[`cpu:${cpu}`] as CpuView;
      assert.ok(v, `cpu ${cpu} at step ${s}`);
      if (v.cpl !== 3 || v.current === 0) continue;
      const task = st[`task:${v.current}`] as TaskView;
      const mm = task.mm === null ? undefined : mms.get(task.mm);
      if (!mm || mm.userPgd === null) continue;
      userSteps++;
      assert.equal(v.copy, 'user', `step ${s}: CPU ${cpu} in user mode runs on the user copy`);
      assert.equal(v.pgd, mm.userPgd, `step ${s}: CR3 holds mm ${mm.id}'s user PGD`);
      assert.equal(v.pcid & 0x800, 0x800, `step ${s}: the user PCID has bit 11 set`);
      // kernel_to_user_pgdp: the user copy is the second page of the order-1 PGD allocation.
      assert.equal(mm.userPgd, mm.pgd + 1);
    }
  }
  assert.ok(userSteps > 10, `user-mode steps under PTI were checked (${userSteps})`);
});

test('a replayed counterexample: the violation and its step, and the stale TLB entry marked at that step', () => {
  const c = compileScenarioFile('scenarios/cow-stale-tlb.yaml');
  // What `isolab explore scenarios/cow-stale-tlb.yaml --invariants stale_tlb --until ops --preemptions 2` finds.
  const r = recordScenario(c, { schedule: parseSchedule('0*151,1*21,0*3', 2), invariants: ['stale_tlb'], until: 'ops' });
  assert.ok(r.violation, 'the replay breaks stale_tlb');
  assert.equal(r.violation.invariant, 'stale_tlb');
  const st = stateAt(r, r.violation.step);
  const stale = Object.entries(st).filter(([k, v]) => k.startsWith('tlb:1:') && (v as TlbView).stale !== null).map(([, v]) => v as TlbView);
  assert.equal(stale.length, 1, 'one stale entry on CPU 1');
  assert.ok(r.violation.message.includes(stale[0].va), 'the entry the invariant names');
  assert.match(stale[0].stale!, /the PTE maps frame \d+/);
  // Before the writer's PTE change, no entry was stale.
  assert.ok(Object.entries(stateAt(r, 150)).every(([k, v]) => !k.startsWith('tlb:') || (v as TlbView).stale === null));
  // The upstream kernel flushes: the same schedule leaves nothing stale.
  const fixed = recordScenario({ ...c, system: { ...c.system, kernel: { ...c.system.kernel, wp_copy_flush: 'ptep_clear_flush' } } }, { schedule: parseSchedule('0*151,1*21,0*3', 2), invariants: ['stale_tlb'], until: 'ops' });
  assert.equal(fixed.violation, null);
});

test('keyframes and deltas agree: applying the deltas from one keyframe gives the next', () => {
  const r = recordScenario(compileScenarioFile('scenarios/fork-cow.yaml'), { keyframeEvery: 10 });
  assert.ok(r.keyframes.length >= 3);
  for (let k = 1; k < r.keyframes.length; k++) {
    const st: Record<string, unknown> = { ...r.keyframes[k - 1] };
    for (let s = (k - 1) * 10 + 1; s <= k * 10; s++) for (const [key, v] of r.deltas[s - 1]) if (v === null) delete st[key]; else st[key] = v;
    assert.deepEqual(st, r.keyframes[k], `keyframe ${k}`);
  }
  // Every event sits in the step that says it has it.
  r.stepViews.forEach((v, i) => {
    for (let e = v.first; e < v.first + v.count; e++) assert.equal(r.events[e].step, i + 1);
  });
  assert.equal(r.stepViews.reduce((n, v) => n + v.count, 0), r.events.length);
});

test('compare: the sides aligned on their operations, each operation once per run', () => {
  const c = compileScenarioFile('scenarios/fork-cow.yaml');
  const run = recordRun(c);
  const keys = run.ops.map((o) => o.key);
  assert.equal(new Set(keys).size, keys.length, 'operation keys are unique');
  // fork-cow's parent: mmap, store, fork (syscall 57 on x86-64), wait4, load; each syscall by its name.
  assert.deepEqual(keys.filter((k) => k.startsWith('parent: main[')), ['parent: main[0] mmap', 'parent: main[1] store', 'parent: main[2] fork', 'parent: main[3] wait4', 'parent: main[4] load']);
  const rows = alignOps([run.ops, run.ops.slice(1)]);
  assert.equal(rows.length, run.ops.length);
  assert.deepEqual(rows[0].steps, [run.ops[0].step, null], 'an operation only the first side ran');
  assert.deepEqual(rows[1].steps, [run.ops[1].step, run.ops[1].step]);
});
