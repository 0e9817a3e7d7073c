/**
 * Reclaim as the explorer's choice (`--reclaims`, `r<cpu>`): kswapd woken on a CPU at any step
 * makes a pass over the anonymous LRU (vmscan.ts kswapd_reclaim), its steps interleaved with the
 * others'. The rules come from mm/vmscan.c: a clean lazyfree folio nothing else holds is
 * discarded, a lazyfree folio written since MADV_FREE is made swap-backed again, a swap-backed
 * folio is taken only while swap has a free slot (get_scan_count's can_reclaim_anon_pages), and
 * the thread wakes with a resched of the CPU's current task (wakeup preemption). Seed 003's lost
 * write is found without the child's MADV_PAGEOUT: the pressure is kswapd's.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dependent, Execution } from '../../src/explore/execution.js';
import { explore, replay, withKernelOptions, type ExploreOptions } from '../../src/explore/explore.js';
import { searchIdentity } from '../../src/explore/identity.js';
import { formatSchedule, parseSchedule } from '../../src/explore/schedule.js';
import { KSWAPD_TID } from '../../src/kernel/vmscan.js';
import { PG_swapbacked } from '../../src/kernel/page.js';
import { compileScenarioText } from '../../src/scenario/index.js';
import { reclaimStep, type IsolabEvent, type System } from '../../src/system.js';
import type { Op } from '../../src/user/program.js';
import { boot, mmapAnon, records } from '../kernel/helpers.js';

const PAGE = 4096;
const MADV_FREE = 8;

const base: ExploreOptions = {
  mode: 'uniform', invariants: ['read_stability'], evictions: 0, preemptions: Infinity, maxDepth: Infinity, executions: 400,
  seed: 1, pctDepth: 2, until: 'end', stopAtFirst: true, fingerprints: false, minimise: true,
};

/**
 * fork-madvfree-lost without the child's MADV_PAGEOUT: the child reads, runs a few syscalls and
 * reads again. Only a reclaim from outside can discard the folio between its two reads.
 */
const text = `
name: madvfree-kswapd
machine:
  cpus: 2
kernel:
  debug_vm: true
processes:
  - name: p
    cpu: 0
    setup:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }
        as: buf
      - store: { addr: $buf, value: 1 }
      - madvise: { start: $buf, len_in: PAGE_SIZE, behavior: MADV_FREE }
    threads:
      - name: writer
        cpu: 1
        ops:
          - store: { addr: $buf, value: 2 }
    ops:
      - fork:
          name: child
          cpu: 1
          ops:
            - load: $buf
              as: seen
            - repeat: { count: 4, ops: [getpid] }
            - load: $buf
              as: after
      - store: { addr: $buf, value: 3 }
      - wait4: { upid: -1 }
`;
const upstream = compileScenarioText(text, 'madvfree-kswapd.yaml');

test('reclaim choice: the lost write is found with --reclaims 1 (kswapd discards the folio under the child), not with 0', () => {
  const found = explore(upstream, { ...base, reclaims: 1 });
  assert.equal(found.violations.length, 1);
  const v = found.violations[0];
  assert.equal(v.invariant, 'read_stability');
  assert.match(v.text, /(^|,)r[01](,|$)/, 'the schedule wakes kswapd');
  const none = explore(upstream, { ...base, reclaims: 0, stopAtFirst: false, executions: 100 });
  assert.deepEqual(none.violations, [], 'no reclaim, nothing discards the page');
});

test('reclaim choice: the counterexample replays, and kswapd discarded the clean lazyfree folio', () => {
  const v = explore(upstream, { ...base, reclaims: 1 }).violations[0];
  const schedule = parseSchedule(v.text, 2);
  const again = replay(upstream, schedule, { invariants: ['read_stability'], record: true });
  assert.equal(again.stuckAt, 0);
  assert.equal(again.violation?.invariant, 'read_stability');
  assert.match(again.violation!.message, /read 0x0 at .* read 0x2 at step/);
  const exec = new Execution(upstream, { invariants: ['read_stability'], evictions: 0, reclaims: 1 });
  const events: IsolabEvent[] = [];
  exec.sys.events.subscribe((e) => events.push(e));
  for (const item of schedule) exec.step(item);
  const discards = events.filter((e) => e.type === 'reclaim' && e.outcome === 'discarded');
  assert.equal(discards.length, 1);
  assert.equal(discards[0].tid, KSWAPD_TID, 'by kswapd, not by a task of the scenario');
  assert.equal(exec.violation?.message, again.violation!.message);
});

test('reclaim choice: under either fix the bounded search finds no lost write', () => {
  for (const fix of ['fork_child_pte=installed', 'anon_dirty_drop=folio_mark_dirty']) {
    const c = withKernelOptions(compileScenarioText(text, 'madvfree-kswapd.yaml'), [fix]);
    const r = explore(c, { ...base, reclaims: 1, stopAtFirst: false, executions: 300 });
    assert.deepEqual(r.violations.map((x) => x.message), [], fix);
  }
});

/** One process on CPU 0: a page written, MADV_FREE'd, then (optionally) written again, then getpid in a loop. */
function lazyfree(rewrite: boolean, swap_pages = 0): { sys: System; pid: number; pfn: number } {
  const main: Op[] = [
    mmapAnon('buf', PAGE),
    { op: 'store', addr: '$buf', value: 7 },
    { op: 'syscall', name: 'madvise', args: ['$buf', PAGE, MADV_FREE], into: 'r' },
    ...(rewrite ? [{ op: 'store', addr: '$buf', value: 9 } as Op] : [{ op: 'syscall', name: 'getpid' } as Op]),
    ...Array.from({ length: 40 }, () => ({ op: 'syscall' as const, name: 'getpid' })),
    { op: 'load', addr: '$buf', into: 'x' },
  ];
  const sys = boot({ cpus: 2, kernel: { log: true, swap_pages, debug_vm: true } });
  const pid = sys.spawn({ main }, { cpu: 0 });
  for (let n = 0; n < 1_000_000 && !records(sys).has(3); n++) if (!sys.step()) break;
  assert.ok(records(sys).has(3));
  return { sys, pid, pfn: sys.pte(pid, sys.vars(pid).get('buf')!)!.pfn };
}

/** The value main's last operation (the load) read. */
function loaded(sys: System): bigint | undefined {
  const recs = records(sys);
  return recs.get(Math.max(...recs.keys()))?.value;
}

/** Runs until kswapd has gone back to sleep; returns its reclaim events. */
function untilKswapdSleeps(sys: System): IsolabEvent[] {
  const out: IsolabEvent[] = [];
  const sub = (e: IsolabEvent): void => void (e.type === 'reclaim' && out.push(e));
  sys.events.subscribe(sub);
  for (let n = 0; n < 100_000; n++) {
    sys.step();
    if (sys.kernel.kswapd!.state === 'sleeping') break;
  }
  assert.equal(sys.kernel.kswapd!.state, 'sleeping');
  return out;
}

test('kswapd: a clean lazyfree folio is discarded; the task reads 0 (shrink_folio_list: !folio_test_swapbacked, refcount frozen)', () => {
  const { sys, pid } = lazyfree(false);
  assert.ok(sys.canReclaim(1));
  assert.ok(sys.reclaim(1));
  assert.ok(!sys.canReclaim(0), 'one kswapd: not woken twice');
  const ev = untilKswapdSleeps(sys);
  assert.deepEqual(ev.map((e) => e.type === 'reclaim' && e.outcome), ['discarded']);
  assert.equal(sys.pte(pid, sys.vars(pid).get('buf')!)!.present, false);
  sys.run();
  assert.equal(loaded(sys), 0n);
  assert.deepEqual(sys.debugReports, []);
});

test('kswapd: a lazyfree folio written again is kept and made swap-backed (the PTE was dirty: folio_set_swapbacked)', () => {
  const { sys, pfn } = lazyfree(true);
  sys.reclaim(1);
  const ev = untilKswapdSleeps(sys);
  assert.deepEqual(ev.map((e) => e.type === 'reclaim' && e.outcome), ['redirtied']);
  assert.ok(sys.kernel.pages.flags[pfn] & PG_swapbacked);
  sys.run();
  assert.equal(loaded(sys), 9n);
});

test('kswapd: without swap a swap-backed folio is not scanned; with a free slot it is swapped out', () => {
  const main: Op[] = [mmapAnon('buf', PAGE), { op: 'store', addr: '$buf', value: 5 }, ...Array.from({ length: 40 }, () => ({ op: 'syscall' as const, name: 'getpid' })), { op: 'load', addr: '$buf', into: 'x' }];
  for (const swap_pages of [0, 4]) {
    const sys = boot({ cpus: 2, kernel: { log: true, swap_pages, debug_vm: true } });
    const pid = sys.spawn({ main }, { cpu: 0 });
    for (let n = 0; n < 1_000_000 && !records(sys).has(1); n++) if (!sys.step()) break;
    sys.reclaim(1);
    const ev = untilKswapdSleeps(sys);
    if (swap_pages === 0) {
      assert.deepEqual(ev, [], 'can_reclaim_anon_pages is false: the anonymous lists are not scanned');
      assert.equal(sys.pte(pid, sys.vars(pid).get('buf')!)!.present, true);
    } else {
      assert.deepEqual(ev.map((e) => e.type === 'reclaim' && e.outcome), ['swapped']);
      assert.equal(sys.pte(pid, sys.vars(pid).get('buf')!)!.present, false);
    }
    sys.run();
    assert.equal(loaded(sys), 5n, 'the data survives: swapped in, or never out');
    assert.deepEqual(sys.debugReports, []);
  }
});

test('kswapd: woken on a busy CPU, it runs once the task there gives the CPU up, and sleeps after its pass', () => {
  const { sys } = lazyfree(false);
  const switches: IsolabEvent[] = [];
  sys.events.subscribe((e) => void (e.type === 'context_switch' && switches.push(e)));
  assert.equal(sys.current(0), 1);
  assert.ok(sys.reclaim(0));
  assert.equal(sys.task(1)!.need_resched, true, 'resched_curr on the task running there');
  untilKswapdSleeps(sys);
  assert.ok(switches.some((e) => e.type === 'context_switch' && e.cpu === 0 && e.from === 1 && e.to === KSWAPD_TID));
  assert.ok(switches.some((e) => e.type === 'context_switch' && e.cpu === 0 && e.from === KSWAPD_TID));
  assert.ok(!sys.tasks().some((t) => t.tid === KSWAPD_TID), 'not one of the scenario\'s tasks');
  assert.ok(sys.canReclaim(0));
});

test('reclaim choice: schedule text round-trips r<cpu>; the step conflicts with the CPU it wakes on; the identity counts --reclaims', () => {
  const items = [0, 0, reclaimStep(1), 1, reclaimStep(0)];
  assert.equal(formatSchedule(items), '0*2,r1,1,r0');
  assert.deepEqual(parseSchedule('0*2,r1,1,r0', 2), items);
  assert.throws(() => parseSchedule('r2', 2), /item 1 \("r2"\): the machine has CPUs 0 to 1/);
  const exec = new Execution(upstream, { invariants: [], evictions: 0, reclaims: 1 });
  const first = exec.step(0);
  assert.ok(exec.enabled().includes(reclaimStep(0)) && exec.enabled().includes(reclaimStep(1)));
  const r = exec.step(reclaimStep(0));
  assert.ok(dependent(first, r));
  assert.ok(!exec.enabled().some((x) => x < 0), 'the bound is spent');
  assert.equal(searchIdentity('x', 't', [], { ...base, reclaims: 1 }, 1).reclaims, 1);
  assert.equal(searchIdentity('x', 't', [], base, 1).reclaims, 0);
  assert.throws(() => explore(upstream, { ...base, mode: 'pct', reclaims: 1 }), /pct schedules CPUs by priority only/);
});
