/** The debug checks fire on the faults they exist for: a wrong map count, a leaked frame, per-CPU use while preemptible. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { check_page_counts, smp_processor_id } from '../../src/kernel/debug.js';
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
