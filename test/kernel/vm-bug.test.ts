/**
 * Where Linux 6.12 has a VM_BUG_ON, WARN_ON or print_bad_pte on an invariant of the page
 * tables, the model checks it too and stops with a ModelError that names the check and carries
 * the step and the CPU. Each case breaks one invariant by hand between two steps of an
 * otherwise valid program (as a memory corruption would) and expects the check Linux has at
 * the place the model next meets it (mm/memory.c):
 *  - a non-present, non-empty PTE met by a fault: handle_pte_fault → do_swap_page, which the
 *    model (no swap) refuses;
 *  - the same met by munmap: zap_pte_range → zap_nonpresent_ptes;
 *  - a map count one too low met by munmap: zap_present_folio_ptes → folio_remove_rmap_ptes
 *    drives it below zero, and print_bad_pte fires ("BUG: Bad page map").
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ModelError } from '../../src/errors.js';
import type { System } from '../../src/system.js';
import type { Op } from '../../src/user/program.js';
import { boot, mmapAnon, records } from './helpers.js';

/** Runs `main` until op `index` of main has completed; returns the system and the pid. */
function runTo(main: Op[], index: number): { sys: System; pid: number } {
  const sys = boot({ kernel: { log: true } });
  const pid = sys.spawn({ main });
  for (let n = 0; n < 1_000_000 && !records(sys).has(index); n++) if (!sys.step()) break;
  assert.ok(records(sys).has(index), `main[${index}] did not complete`);
  return { sys, pid };
}

/** The physical table frame and index of the PTE for `va` in process `pid` (a test may read the kernel's structures). */
function ptePlace(sys: System, pid: number, va: number): { table: number; index: number } {
  const table = sys.kernel.tasks.get(pid)!.mm!.pgtables.pteTable(va, false);
  assert.ok(table >= 0, 'a PTE table covers the address');
  return { table, index: Math.floor(va / 4096) % 512 };
}

/** Runs to the end, expecting a ModelError from `check`; returns it. */
function expectModelError(sys: System, check: string): ModelError {
  let err: unknown = null;
  try {
    sys.run({ maxSteps: 1_000_000 });
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof ModelError, `expected a ModelError from ${check}, got ${String(err)}`);
  assert.equal(err.check, check);
  assert.ok(err.step > 0, 'the error carries the step');
  assert.equal(err.cpu, 0, 'and the CPU');
  assert.match(err.message, /at step \d+, CPU 0/);
  return err;
}

// A swap-like entry: P and PROTNONE (bit 8) clear, other bits set (a swap type and offset would sit here).
const NOT_PRESENT = 0x12240;

test('a fault on a non-present, non-empty PTE naming no swap slot stops at do_swap_page (no swap area: non_swap_entry)', () => {
  // buf+4096 is written first so the PTE table exists; buf itself is never touched before.
  const main: Op[] = [mmapAnon('buf', 2 * 4096), { op: 'store', addr: '$buf+4096', value: 1 }, { op: 'syscall', name: 'getpid' }, { op: 'store', addr: '$buf', value: 2 }];
  const { sys, pid } = runTo(main, 2);
  const buf = Number(sys.vars(pid).get('buf')!);
  const { table, index } = ptePlace(sys, pid, buf);
  sys.machine.mem.write64(table, index, NOT_PRESENT, 0);
  const e = expectModelError(sys, 'do_swap_page');
  assert.match(e.message, /neither empty, present nor a swap entry/);
});

test('munmap of a non-present, non-empty PTE stops at zap_nonpresent_ptes', () => {
  const main: Op[] = [
    mmapAnon('buf', 2 * 4096),
    { op: 'store', addr: '$buf+4096', value: 1 },
    { op: 'syscall', name: 'getpid' },
    { op: 'syscall', name: 'munmap', args: ['$buf', 2 * 4096] },
  ];
  const { sys, pid } = runTo(main, 2);
  const buf = Number(sys.vars(pid).get('buf')!);
  const { table, index } = ptePlace(sys, pid, buf);
  sys.machine.mem.write64(table, index, NOT_PRESENT, 0);
  expectModelError(sys, 'zap_nonpresent_ptes');
});

test('munmap of a page whose map count is one too low stops at print_bad_pte', () => {
  const main: Op[] = [mmapAnon('buf', 4096), { op: 'store', addr: '$buf', value: 1 }, { op: 'syscall', name: 'getpid' }, { op: 'syscall', name: 'munmap', args: ['$buf', 4096] }];
  const { sys, pid } = runTo(main, 2);
  const buf = Number(sys.vars(pid).get('buf')!);
  const pfn = sys.pte(pid, buf)!.pfn;
  assert.equal(sys.kernel.pages.mapcount[pfn], 1, 'one PTE maps the page');
  sys.kernel.pages.mapcount[pfn] = 0;
  const e = expectModelError(sys, 'print_bad_pte');
  assert.match(e.message, /Bad page map/);
});
