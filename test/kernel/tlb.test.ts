/**
 * TLB management (arch/x86/mm/tlb.c): ASID choice in switch_mm_irqs_off (6 dynamic ASIDs,
 * PCID = ASID + 1, NOFLUSH when the slot is current), lazy TLB, flush_tlb_mm_range's
 * 33-page ceiling, and shootdown IPIs that leave no stale entry on another CPU.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { IsolabEvent } from '../../src/system.js';
import { boot, mmapAnon } from './helpers.js';

type Ev<T extends IsolabEvent['type']> = Extract<IsolabEvent, { type: T }>;

test('seven processes on one CPU take ASIDs round-robin; a returning process whose slot survived reloads with NOFLUSH', () => {
  const sys = boot({ cpus: 1, kernel: { timeslice: 1 } });
  const switches: Ev<'switch_mm'>[] = [];
  const cr3: Ev<'cr_write'>[] = [];
  sys.events.subscribe((e) => {
    if (e.type === 'switch_mm' && e.how === 'switch' && e.to !== 0) switches.push(e);
    if (e.type === 'cr_write' && e.reg === 'cr3') cr3.push(e);
  });
  const prog = { main: [{ op: 'syscall' as const, name: 'getpid' }, { op: 'syscall' as const, name: 'sched_yield' }, { op: 'syscall' as const, name: 'getpid' }] };
  for (let i = 0; i < 2; i++) sys.spawn(prog);
  sys.run();
  // Two processes alternating: first use of each ASID flushes; coming back finds the slot (ctx_id, tlb_gen current) and does not.
  const first = switches.slice(0, 2);
  assert.deepEqual(first.map((s) => [s.asid, s.flush]), [[1, true], [2, true]]);
  const back = switches.slice(2).filter((s) => s.to === first[0].to);
  assert.ok(back.length > 0);
  assert.equal(back[0].asid, 1);
  assert.equal(back[0].flush, false);
  const noflush = cr3.filter((c) => c.noflush);
  assert.ok(noflush.length > 0, 'a NOFLUSH CR3 write happened');
  // CR3's PCID field is ASID + 1 (kern_pcid).
  for (const s of switches) {
    const w = cr3.find((c) => c.lo & 0xfff && (c.lo & 0xfff) === s.asid + 1);
    assert.ok(w, `a CR3 write with PCID ${s.asid + 1}`);
  }

  const sys7 = boot({ cpus: 1, kernel: { timeslice: 1 } });
  const asids: number[] = [];
  sys7.events.subscribe((e) => {
    if (e.type === 'switch_mm' && e.how === 'switch' && e.to !== 0) asids.push(e.asid);
  });
  for (let i = 0; i < 7; i++) sys7.spawn({ main: [{ op: 'syscall', name: 'getpid' }] });
  sys7.run();
  // next_asid starts at 1 (slot 0 holds init_mm), wraps to 0 after 5 (TLB_NR_DYN_ASIDS = 6).
  assert.deepEqual(asids.slice(0, 7), [1, 2, 3, 4, 5, 0, 1]);
});

test('flush_tlb_mm_range: 33 pages are flushed one by one, 34 become a full flush', () => {
  for (const [pages, expectInvlpg] of [[33, 33], [34, 0]] as const) {
    const sys = boot();
    let invlpg = 0;
    let full = 0;
    sys.events.subscribe((e) => {
      if (e.type === 'flush_tlb_func') {
        if (e.pages < 0) full++;
        else invlpg += e.pages;
      }
    });
    const main = [mmapAnon('buf', pages * 4096)];
    for (let i = 0; i < pages; i++) main.push({ op: 'store', addr: `$buf+${i * 4096}`, value: 1 } as never);
    main.push({ op: 'syscall', name: 'munmap', args: ['$buf', pages * 4096] } as never);
    sys.spawn({ main });
    sys.run();
    assert.equal(invlpg, expectInvlpg, `${pages} pages`);
    assert.equal(full, pages === 33 ? 0 : 1, `${pages} pages`);
  }
});

test('munmap by one thread shoots down the other CPU: an IPI is sent and no stale translation survives', () => {
  const sys = boot({ cpus: 2 });
  const ipis: Ev<'ipi'>[] = [];
  sys.events.subscribe((e) => {
    if (e.type === 'ipi') ipis.push(e);
  });
  const CLONE_THREAD_FLAGS = 0x100 | 0x800 | 0x10000; // CLONE_VM | CLONE_SIGHAND | CLONE_THREAD
  const pid = sys.spawn({
    main: [
      mmapAnon('buf', 4096),
      { op: 'store', addr: '$buf', value: 9 },
      mmapAnon('stk', 16384),
      { op: 'syscall', name: 'clone', args: [CLONE_THREAD_FLAGS, '$stk+0x3ff0', 0, 0, 0], child: [
        { op: 'load', addr: '$buf', into: 'seen' },
        { op: 'syscall', name: 'sched_yield' },
        { op: 'syscall', name: 'sched_yield' },
        { op: 'syscall', name: 'sched_yield' },
        { op: 'syscall', name: 'sched_yield' },
      ] },
      { op: 'syscall', name: 'sched_yield' },
      { op: 'syscall', name: 'sched_yield' },
      { op: 'syscall', name: 'munmap', args: ['$buf', 4096] },
      { op: 'syscall', name: 'sched_yield' },
    ],
  }, { cpu: 0 });
  const leader = sys.task(pid)!;
  while (!(leader.opIndex === 7 && !leader.kpath && leader.opName === 'syscall')) if (!sys.step()) break;
  const buf = leader.vars.get('buf')!;
  // Whatever CPU 1 cached of the page is gone.
  const cpu1 = sys.machine.cpus[1];
  const hit = cpu1.tlb.find(Number(buf >> 32n), Number(buf & 0xffffffffn), cpu1.pcid);
  assert.equal(hit, -1, 'no TLB entry for the unmapped page on the other CPU');
  sys.run();
  assert.ok(ipis.some((i) => i.from === 0 && i.to === 1), 'an IPI went from CPU 0 to CPU 1');
  assert.deepEqual(sys.debugReports, []);
});

test('an idle CPU keeps the last mm loaded in lazy TLB mode and leaves it when page tables are freed', () => {
  const sys = boot({ cpus: 2 });
  const events: IsolabEvent[] = [];
  sys.events.subscribe((e) => {
    if (e.type === 'switch_mm' || e.type === 'ipi') events.push(e);
  });
  // A process runs briefly on CPU 1 and exits; CPU 1 goes idle (lazy) with the exiting mm; exit_mmap frees tables.
  sys.spawn({ main: [mmapAnon('b', 4096), { op: 'store', addr: '$b', value: 1 }] }, { cpu: 1 });
  sys.run();
  const pc1 = sys.kernel.percpu[1];
  assert.equal(pc1.loaded_mm, sys.kernel.init_mm, 'CPU 1 switched to init_mm once the tables were freed');
  assert.deepEqual(sys.debugReports, []);
});
