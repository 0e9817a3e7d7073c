/**
 * The built-in scenarios that tell a race story pin the race down with a scripted schedule and
 * expect the events that make it a race (DESIGN.md, "Concurrency in the model"), so a schedule
 * that stops racing fails its run. Each one runs as written, then with its schedule removed or
 * shifted so that the race cannot happen, and the expectation that guards the race must fail.
 *
 * Why each guard is the one that fails, from the sources:
 *  - fork-dirty-race: mm/memory.c copy_present_pte reads the PTE (ptep_get) and
 *    ptep_set_wrprotect (arch/x86/include/asm/pgtable.h) try_cmpxchg's pte_wrprotect of what it
 *    read; the cmpxchg fails, once, only when the hardware set A/D in between. A D set before
 *    fork's read ends in SavedDirty just the same, so the final PTE cannot tell the race from
 *    no race: `pte_retry` (expect.events[1]) can.
 *  - fork-dirty-lost: read_modify_write stores the value computed from the read; a D set before
 *    the read would have gone to SavedDirty, one set after the store needs a write fault (R/W=0)
 *    and then the kernel makes the PTE dirty itself. So either the PTE (no D, no SavedDirty) or
 *    the writer's own A/D update in a writable PTE (expect.events[0]) fails.
 *  - fork-dirty-legacy: the SDM's "Accessed and Dirty Flags" note: only a write through a TLB
 *    entry cached before the write-protect sets D in an R/W=0 entry (expect.events[0]).
 *  - cow-stale-tlb: the reader reads 0 after seeing the flag only through a translation cached
 *    before wp_page_copy changed the PTE (the reader's op expectations).
 *  - tlb-shootdown: arch/x86/mm/tlb.c flush_tlb_mm_range sends the IPI only to CPUs in
 *    mm_cpumask: a reader that never ran the mm gets no flush_tlb_func (expect.events[0]).
 *  - percpu-migrate: the preemptible clear_asid_other makes 13 per-CPU accesses (the read of
 *    invalidate_other, TLB_NR_DYN_ASIDS = 6 reads of loaded_mm_asid, 5 ctx_id writes, the
 *    invalidate_other write; arch/x86/mm/tlb.c), each checked by __this_cpu_*'s
 *    check_preemption_disabled on the CPU it runs on. Only a migration right after the first
 *    leaves exactly one report on CPU 0 (expect.events[1]) and twelve on CPU 1
 *    (expect.events[2]); no migration at all fails expect.events[0].
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { compileScenarioFile, runScenario } from '../../src/scenario/index.js';
import type { CompiledScenario } from '../../src/scenario/compile.js';
import { Runner } from '../../src/scenario/run.js';
import type { KernelOptions } from '../../src/kernel/options.js';
import type { IsolabEvent } from '../../src/system.js';

const dir = fileURLToPath(new URL('../../../scenarios/', import.meta.url));

/** The scenario's script with its first context switch moved `k` steps later (or earlier when negative). */
function shifted(script: number[], k: number): number[] {
  const first = script.findIndex((x) => x !== script[0]);
  assert.ok(first > 0, 'the script switches CPUs');
  const s = [...script];
  if (k > 0) s.splice(first, 0, ...Array<number>(k).fill(script[0]));
  else s.splice(first + k, -k);
  return s;
}

/** The script with its last item (a preemption) moved `k` steps of the CPU before it later (or earlier when negative). */
function movedPreemption(script: number[], k: number): number[] {
  const body = script.slice(0, -1);
  const p = script[script.length - 1];
  assert.ok(p < 0 && body[body.length - 1] >= 0, 'the script ends with a preemption after a CPU step');
  if (k > 0) return [...body, ...Array<number>(k).fill(body[body.length - 1]), p];
  return [...body.slice(0, k), p];
}

interface Race {
  file: string;
  /** Verdict paths of which at least one must fail when the race does not happen. */
  guards: string[];
  /** Schedules under which it cannot happen. */
  broken: (c: CompiledScenario) => Record<string, number[]>;
}

/** CPU 0 alone for as long as the scenario can run: every other CPU's thread starts only once CPU 0 is done. */
const cpu0Alone = (): number[] => Array<number>(5000).fill(0);

const RACES: Race[] = [
  {
    file: 'fork-dirty-race',
    guards: ['expect.events[1]'],
    broken: (c) => ({ 'no script': [], 'the writer 40 steps later': shifted(c.system.script!, 40), 'the writer 40 steps earlier': shifted(c.system.script!, -40), 'CPU 0 alone': cpu0Alone() }),
  },
  {
    file: 'fork-dirty-lost',
    guards: ['expect.ptes[0]', 'expect.events[0]'],
    broken: (c) => ({ 'no script': [], 'the writer 40 steps later': shifted(c.system.script!, 40), 'the writer 40 steps earlier': shifted(c.system.script!, -40), 'CPU 0 alone': cpu0Alone() }),
  },
  {
    file: 'fork-dirty-legacy',
    guards: ['expect.events[0]'],
    broken: (c) => ({ 'no script': [], 'the writer 40 steps later': shifted(c.system.script!, 40), 'the writer 40 steps earlier': shifted(c.system.script!, -40), 'CPU 0 alone': cpu0Alone() }),
  },
  {
    file: 'cow-stale-tlb',
    guards: ['processes[0].threads[0].ops[0].expect', 'processes[0].threads[0].ops[1].expect', 'processes[0].threads[0].ops[2].expect'],
    broken: (c) => ({ 'no script': [], 'the writer 40 steps later': shifted(c.system.script!, 40), 'the writer 40 steps earlier': shifted(c.system.script!, -40), 'CPU 0 alone': cpu0Alone() }),
  },
  {
    // Without the race fork's read sees D, the child's PTE carries it (as SavedDirty), reclaim's
    // try_to_unmap_one moves it to the folio (folio_mark_dirty), and the lazyfree folio is made
    // swap-backed again and kept (mm/rmap.c): the child reads 2 (its final load's expectation)
    // and no cmpxchg retries (expect.events[1]).
    file: 'fork-madvfree-lost',
    guards: ['processes[0].ops[0].fork.ops[3].expect', 'expect.events[1]'],
    broken: (c) => ({ 'no script': [], 'the writer 40 steps later': shifted(c.system.script!, 40), 'the writer 40 steps earlier': shifted(c.system.script!, -40), 'CPU 0 alone': cpu0Alone() }),
  },
  {
    file: 'percpu-migrate',
    guards: ['expect.events[0]', 'expect.events[1]', 'expect.events[2]'],
    broken: (c) => ({ 'no script': [], 'the migration one step earlier': movedPreemption(c.system.script!, -1), 'the migration one step later': movedPreemption(c.system.script!, 1), 'CPU 0 alone': cpu0Alone() }),
  },
  {
    file: 'tlb-shootdown',
    guards: ['expect.events[0]'],
    broken: () => ({ 'CPU 0 alone': cpu0Alone() }),
  },
];

test('races: every built-in scenario with a scripted schedule pins a race, expects its events and is tested here', () => {
  const scripted = readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => f.replace(/\.yaml$/, ''))
    .filter((f) => compileScenarioFile(`${dir}${f}.yaml`).system.script !== undefined);
  assert.ok(scripted.length >= 4);
  for (const f of scripted) assert.ok(RACES.some((r) => r.file === f), `${f} has a script but no race test`);
});

for (const race of RACES) {
  test(`race ${race.file}: its schedule makes the race happen, and schedules that do not fail its guard`, () => {
    const c = compileScenarioFile(`${dir}${race.file}.yaml`);
    assert.ok((c.end.events ?? []).length > 0, 'a race scenario expects events');
    const asWritten = runScenario(c);
    assert.deepEqual(asWritten.verdicts.filter((v) => v.status !== 'held'), [], 'as written');
    for (const path of race.guards) assert.ok(asWritten.verdicts.some((v) => v.path === path), `${path} is a verdict`);
    for (const [name, schedule] of Object.entries(race.broken(c))) {
      const r = runScenario(c, { schedule });
      assert.equal(r.passed, false, `${name}: the run fails`);
      const failed = r.verdicts.filter((v) => v.status !== 'held').map((v) => v.path);
      assert.ok(race.guards.some((g) => failed.includes(g)), `${name}: a guard fails (failed: ${failed.join(', ')})`);
    }
  });
}

test('race fork-madvfree-lost: each proposed fix keeps the data (the folio is redirtied and kept, the child reads 2)', () => {
  for (const fix of [{ fork_child_pte: 'installed' }, { anon_dirty_drop: 'folio_mark_dirty' }] as const) {
    const c = compileScenarioFile(`${dir}fork-madvfree-lost.yaml`);
    c.system.kernel = { ...c.system.kernel, ...fix };
    const r = runScenario(c);
    const status = (path: string): string | undefined => r.verdicts.find((v) => v.path === path)?.status;
    const name = JSON.stringify(fix);
    // The race itself still happens: the writer's D and the cmpxchg's retry.
    assert.equal(status('expect.events[0]'), 'held', name);
    assert.equal(status('expect.events[1]'), 'held', name);
    // The loss does not: the child's last load (expecting the upstream 0) fails, and reclaim does not discard.
    assert.equal(status('processes[0].ops[0].fork.ops[0].expect'), 'held', `${name}: the child read 2 first`);
    const last = r.verdicts.find((v) => v.path === 'processes[0].ops[0].fork.ops[3].expect')!;
    assert.equal(last.status, 'failed', name);
    assert.match(last.actual, /value 2\b/, `${name}: the child still reads the writer's value`);
    assert.equal(status('expect.events[3]'), 'failed', `${name}: no discard`);
    assert.equal(status('expect.invariants[0]'), 'held', `${name}: debug checks`);
  }
});

/** One CPU's cpu_tlbstate fields clear_asid_other touches. */
interface TlbState {
  inv: boolean;
  loaded: number;
  ctx: number[];
}

/**
 * percpu-migrate with kernel options replaced: its verdicts, the quitter's migrate events, the
 * debug_preempt reports, and both CPUs' cpu_tlbstate as the quitter exits (after its
 * kernel-range flush and, when there is one, its clearing).
 */
function percpuRun(opts: Partial<KernelOptions>): { status: (path: string) => string | undefined; migrations: IsolabEvent[]; reports: string[]; atExit: TlbState[] } {
  const c = compileScenarioFile(`${dir}percpu-migrate.yaml`);
  c.system.kernel = { ...c.system.kernel, ...opts };
  const runner = new Runner(c, {});
  const sys = runner.sys;
  const migrations: IsolabEvent[] = [];
  let atExit: TlbState[] = [];
  let quitter = -1;
  sys.events.subscribe((e: IsolabEvent) => {
    // The quitter is the task that sends the first IPI from CPU 0: its kernel-range flush.
    if (e.type === 'ipi' && quitter < 0 && e.from === 0) quitter = e.tid;
    if (e.type === 'migrate') migrations.push(e);
    if (e.type === 'exit' && e.tid === quitter) {
      atExit = sys.kernel.percpu.map((pc) => ({ inv: pc.invalidate_other, loaded: pc.loaded_mm_asid, ctx: [...pc.ctx_id] }));
    }
  });
  const r = runner.run();
  assert.ok(quitter > 0 && atExit.length === 2, 'the quitter flushed and exited');
  return { status: (path) => r.verdicts.find((v) => v.path === path)?.status, migrations, reports: sys.debugReports.filter((m) => m.startsWith('debug_preempt')), atExit };
}

test('race percpu-migrate: the tail of the clearing lands on CPU 1; CPU 0 keeps invalidate_other, CPU 1 forgets its other ASIDs', () => {
  for (const opts of [{}, { percpu_ops: 'this_cpu' }] as const) {
    const name = JSON.stringify(opts);
    const { status, migrations, reports, atExit } = percpuRun(opts);
    assert.equal(status('expect.events[0]'), 'held', `${name}: migrated inside the clearing`);
    assert.equal(migrations.length, 1, name);
    // flush_tlb_one_kernel set invalidate_other on both CPUs (CPU 1 by the IPI). The read of it
    // ran on CPU 0, every write on CPU 1: CPU 0's flag is still set, CPU 1's is cleared and
    // every ASID of CPU 1 but its loaded one is forgotten (ctx_id 0), the loaded one kept.
    assert.equal(atExit[0].inv, true, `${name}: CPU 0's invalidate_other stays set`);
    assert.equal(atExit[1].inv, false, `${name}: CPU 1's invalidate_other cleared`);
    atExit[1].ctx.forEach((id, asid) => {
      if (asid === atExit[1].loaded) assert.notEqual(id, 0, `${name}: CPU 1's loaded ASID kept`);
      else assert.equal(id, 0, `${name}: CPU 1 ASID ${asid} forgotten`);
    });
    assert.notEqual(atExit[0].ctx[atExit[0].loaded], 0, `${name}: CPU 0's loaded ASID untouched`);
    if (opts.percpu_ops === 'this_cpu') {
      // tglx: this_cpu_read / this_cpu_write are not checked by DEBUG_PREEMPT.
      assert.deepEqual(reports, [], `${name}: no report`);
      assert.equal(status('expect.events[1]'), 'failed', name);
      assert.equal(status('expect.events[2]'), 'failed', name);
    } else {
      // __this_cpu_read at the first access, on CPU 0; the rest on CPU 1.
      assert.ok(reports.some((m) => m.includes('BUG: using __this_cpu_read() in preemptible code: clear_asid_other')), name);
      assert.equal(status('expect.events[1]'), 'held', name);
      assert.equal(status('expect.events[2]'), 'held', name);
    }
  }
});

test('race percpu-migrate: upstream (clear_asid_other irqs_off) has no clearing to preempt: no migration, no report, both CPUs still marked', () => {
  const { status, migrations, reports, atExit } = percpuRun({ clear_asid_other: 'irqs_off' });
  // The flusher's path only sets the flags; choose_new_asid clears them inside
  // switch_mm_irqs_off, with interrupts off, at a later switch to another mm.
  assert.deepEqual(migrations, [], 'the quitter exits before p0>1: nothing to preempt');
  assert.deepEqual(reports, []);
  assert.equal(status('expect.events[0]'), 'failed');
  assert.equal(status('expect.events[3]'), 'held', 'the kernel-range flush still sends its IPI');
  assert.deepEqual(atExit.map((s) => s.inv), [true, true]);
});
