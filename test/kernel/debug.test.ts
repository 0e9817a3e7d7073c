/** The debug checks fire on the faults they exist for: a wrong map count, a leaked frame, per-CPU use while preemptible. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { check_page_counts, smp_processor_id } from '../../src/kernel/debug.js';
import type { Op } from '../../src/user/program.js';
import { boot, mmapAnon } from './helpers.js';

test('check_page_counts reports a map count that disagrees with the page tables, and a leaked frame', () => {
  const sys = boot();
  const pid = sys.spawn({ main: [mmapAnon('b', 4096), { op: 'store', addr: '$b', value: 1 }, { op: 'syscall', name: 'sched_yield' }] });
  const t = sys.task(pid)!;
  while (!sys.log.some((r) => r.op === 'store')) assert.ok(sys.step(), 'the store runs');
  const k = sys.kernel;
  const b = Number(t.vars.get('b'));
  const table = t.mm!.pgtables.pteTable(b, false);
  const pfn = k.machine.mem.readLo(table, (b / 4096) % 512) >>> 12;
  check_page_counts(k, null);
  assert.deepEqual(k.debugReports, []);
  k.pages.mapcount[pfn]++;
  check_page_counts(k, null);
  assert.match(k.debugReports.join('\n'), /page_mapcount: frame 0x[0-9a-f]+: mapcount 2, but 1 PTEs map it/);
  k.pages.mapcount[pfn]--;
  k.debugReports.length = 0;
  const leaked = k.pages.alloc_page(0, true);
  check_page_counts(k, null);
  assert.match(k.debugReports.join('\n'), new RegExp(`leak: frame 0x${leaked.toString(16)}: refcount 1, but 0 references`));
});

test('smp_processor_id in preemptible kernel code is reported (DEBUG_PREEMPT), not with preemption off', () => {
  const sys = boot();
  sys.spawn({ main: [{ op: 'syscall', name: 'getpid' }] });
  sys.step();
  const pc = sys.kernel.percpu[0];
  pc.preempt_count = 1;
  smp_processor_id(sys.kernel, pc, 'test');
  assert.deepEqual(sys.kernel.debugReports, []);
  pc.preempt_count = 0;
  smp_processor_id(sys.kernel, pc, 'ldt_dup_context');
  assert.match(sys.kernel.debugReports[0], /debug_preempt: BUG: using smp_processor_id\(\) in preemptible code: ldt_dup_context/);
});

test('check_page_counts between wp_page_copy\'s ptep_clear_flush and folio_remove_rmap_pte: the mapping being retired still counts', () => {
  // The parent breaks COW on a page its child shares while a thread of the parent runs on CPU 1,
  // so the flush waits for CPU 1's IPI with the old PTE already clear (mm/memory.c wp_page_copy:
  // ptep_clear_flush, set_pte_at, then folio_remove_rmap_pte). The counts are checked after
  // every step of the run.
  const sys = boot({ cpus: 2 });
  const k = sys.kernel;
  const spin: Op[] = Array.from({ length: 40 }, () => ({ op: 'syscall' as const, name: 'getpid' }));
  sys.spawn({
    main: [
      mmapAnon('b', 4096), { op: 'store', addr: '$b', value: 1 },
      { op: 'syscall', name: 'fork', into: 'c', child: [{ op: 'syscall', name: 'sched_yield' }, ...spin] },
      { op: 'syscall', name: 'mmap', args: [0, 0x10000, 3, 0x20022, -1, 0], into: 'stk' },
      { op: 'syscall', name: 'clone', args: [0x50f00, '$stk+0x10000'], cpu: 1, child: spin },
      { op: 'store', addr: '$b', value: 2 },
    ],
  });
  let windows = 0;
  let steps = 0;
  while (sys.step() && steps++ < 100_000) {
    for (const h of k.pages.held) if ((h.unmapping ?? []).length > 0) windows++;
    check_page_counts(k, null);
    assert.deepEqual(k.debugReports, [], `step ${sys.now}`);
  }
  assert.ok(windows > 0, 'the run passed through the window');
});
