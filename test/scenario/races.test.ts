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
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { compileScenarioFile, runScenario } from '../../src/scenario/index.js';
import type { CompiledScenario } from '../../src/scenario/compile.js';

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
