/**
 * The System's introspection (src/introspect.ts): tasks, PTEs, user memory, mappings, frames,
 * CPUs, and the `tid` every event carries. Expected values come from what Linux 6.12 and the
 * SDM say the state must be at that point (cited at each check), not from the model's output:
 *  - a write through a private anonymous mapping faults in a page mapped present, writable,
 *    user, NX (the mapping is not PROT_EXEC) and, after the write, accessed and dirty (SDM
 *    §4.8: the processor sets A on every access, D on a write);
 *  - a read of an untouched private anonymous page maps the shared zero page read-only
 *    (do_anonymous_page without FAULT_FLAG_WRITE);
 *  - fork write-protects the parent's writable private PTE with ptep_set_wrprotect, whose
 *    pte_wrprotect (6.6+) moves D to SavedDirty, and gives the child the same value made old
 *    (copy_present_pte: pte_wrprotect, then pte_mkold);
 *  - mprotect(PROT_NONE) of a writable dirty page: pte_modify keeps A and moves D to SavedDirty
 *    (the old entry was writable), clears P, sets _PAGE_PROTNONE (bit 8) and inverts the frame
 *    number, which pte_pfn undoes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ArgumentError } from '../src/errors.js';
import { System, type IsolabEvent, type OpCursor, type Pte, type SystemConfig } from '../src/system.js';
import type { Op, Program } from '../src/user/program.js';

const PROT_NONE = 0;
const PAGE = 4096;
const CLONE_THREAD_FLAGS = 0x100 | 0x800 | 0x10000; // CLONE_VM | CLONE_SIGHAND | CLONE_THREAD
const mmap = (into: string, len = PAGE): Op => ({ op: 'syscall', name: 'mmap', args: [0, len, 3, 0x22, -1, 0], into }); // RW, MAP_PRIVATE|MAP_ANONYMOUS
const marker: Op = { op: 'syscall', name: 'getpid' };
const yields = (n: number): Op[] => Array.from({ length: n }, (): Op => ({ op: 'syscall', name: 'sched_yield' }));

function boot(config: SystemConfig = {}): System {
  return new System({ memory: 64 * 2 ** 20, ...config, kernel: { debug_vm: true, timeslice: 0, ...(config.kernel ?? {}) } });
}

/**
 * Runs `program` to the end; `at(sys, n, tid)` is called as a task enters the n-th getpid
 * of the run (0-based), the task's operations before it all done; `onEvent` sees every event.
 */
function runWithMarkers(program: Program, at: (sys: System, n: number, tid: number) => void, config: SystemConfig = {}, onEvent?: (sys: System, e: IsolabEvent) => void): { sys: System; pid: number; events: IsolabEvent[] } {
  const sys = boot(config);
  const events: IsolabEvent[] = [];
  let n = 0;
  sys.events.subscribe((e) => {
    events.push(e);
    onEvent?.(sys, e);
    if (e.type === 'syscall_enter' && e.name === 'getpid') at(sys, n++, e.tid);
  });
  const pid = sys.spawn(program);
  const r = sys.run({ maxSteps: 1_000_000 });
  assert.ok(r.finished, `tasks still alive: ${r.alive.join(', ')}`);
  assert.deepEqual(sys.debugReports, []);
  return { sys, pid, events };
}

const va = (sys: System, tid: number, name: string): bigint => {
  const v = sys.vars(tid).get(name);
  assert.ok(v !== undefined, `$${name} is set`);
  return v;
};

/** The fields a test compares, without the raw halves. */
function flags(p: Pte | null): Record<string, boolean | number> | null {
  if (!p) return null;
  return { present: p.present, rw: p.rw, user: p.user, accessed: p.accessed, dirty: p.dirty, saved_dirty: p.saved_dirty, nx: p.nx, pkey: p.pkey };
}

test('pte: a written private anonymous page is present, RW, user, accessed, dirty and NX; a read one maps the zero page read-only', () => {
  let checked = false;
  let faults = 0;
  const inFault = (sys: System, e: IsolabEvent): void => {
    if (e.type !== 'page_fault') return;
    faults++;
    assert.equal(sys.taskInfo(e.tid)?.kernel, 'fault', 'the faulting task is on its fault path');
    assert.equal(sys.cpuInfo(e.cpu).kernel, 'fault');
    assert.equal(sys.current(e.cpu), e.tid);
  };
  runWithMarkers({ main: [mmap('buf', 2 * PAGE), { op: 'store', addr: '$buf', value: 0x1122334455667788n }, { op: 'load', addr: '$buf+4096' }, marker] }, (sys, n, tid) => {
    const buf = va(sys, tid, 'buf');
    const w = sys.pte(tid, buf);
    assert.deepEqual(flags(w), { present: true, rw: true, user: true, accessed: true, dirty: true, saved_dirty: false, nx: true, pkey: 0 });
    // The record agrees with the 64-bit value: P (bit 0), RW (1), US (2), A (5), D (6), XD (63), frame in bits 51:12.
    assert.equal(w!.lo & 0x67, 0x67);
    assert.equal(w!.hi >>> 31, 1);
    assert.equal(w!.pfn, (w!.hi & 0xfffff) * 2 ** 20 + (w!.lo >>> 12));
    const page = sys.page(w!.pfn);
    assert.deepEqual(page, { anon: true, refcount: 1, mapcount: 1, dirty: false }, 'one anonymous page, mapped once; its dirtiness is in the PTE (do_anonymous_page sets no PG_dirty)');
    assert.equal(sys.readUser(tid, buf, 8), 0x1122334455667788n);
    assert.equal(sys.readUser(tid, buf + 1n, 2), 0x6677n, 'little-endian, from any offset');
    // The read of the second page: the zero page, read-only (Linux never dirties it), not anonymous.
    const r = sys.pte(tid, buf + 4096n);
    assert.deepEqual(flags(r), { present: true, rw: false, user: true, accessed: true, dirty: false, saved_dirty: false, nx: true, pkey: 0 });
    assert.notEqual(r!.pfn, w!.pfn);
    assert.equal(sys.page(r!.pfn).anon, false);
    assert.equal(sys.readUser(tid, buf + 4096n, 8), 0n);
    checked = n === 0;
  }, {}, inFault);
  assert.ok(checked);
  assert.ok(faults >= 2, 'the write and the read faulted');
});

test('pte: no PTE table gives null, an empty slot in a table an all-zero record, an unknown task an ArgumentError', () => {
  let checked = false;
  runWithMarkers({ main: [mmap('buf'), { op: 'store', addr: '$buf', value: 1 }, marker] }, (sys, _n, tid) => {
    const buf = Number(va(sys, tid, 'buf'));
    // A page in the same 2 MiB region (so the same PTE table) that nothing mapped.
    const other = buf % 0x200000 === 0x1ff000 ? buf - PAGE : buf + PAGE;
    const empty = sys.pte(tid, other);
    assert.deepEqual(empty, { lo: 0, hi: 0, present: false, rw: false, user: false, accessed: false, dirty: false, saved_dirty: false, nx: false, pkey: 0, pfn: 0 });
    assert.equal(sys.readUser(tid, other, 1), null);
    // 1 GiB away from anything the program touched: no PTE table covers it.
    assert.equal(sys.pte(tid, 0x100000000000), null);
    assert.equal(sys.pte(tid, 0x7ffffffff000n + 0x1000n), null, 'past TASK_SIZE');
    assert.equal(sys.pte(tid, -4096), null);
    assert.throws(() => sys.pte(999, buf), ArgumentError);
    assert.throws(() => sys.readUser(tid, buf, 9), ArgumentError);
    checked = true;
  });
  assert.ok(checked);
});

test('pte after fork: the parent RW=0 with D moved to SavedDirty, the child the same value made old; a write after the child has gone reuses the page', () => {
  const seen: string[] = [];
  let frame = -1;
  runWithMarkers(
    {
      main: [
        mmap('buf'),
        { op: 'store', addr: '$buf', value: 1 },
        { op: 'syscall', name: 'fork', into: 'child', child: [{ op: 'syscall', name: 'sched_yield' }, { op: 'store', addr: '$buf', value: 2 }] },
        marker,
        { op: 'syscall', name: 'wait4', args: [-1, 0, 0, 0] },
        { op: 'store', addr: '$buf', value: 3 },
        marker,
      ],
    },
    (sys, n, tid) => {
      const buf = va(sys, tid, 'buf');
      if (n === 0) {
        // Right after fork returned in the parent; on one CPU the child has not run yet.
        const child = Number(va(sys, tid, 'child'));
        const p = sys.pte(tid, buf);
        const c = sys.pte(child, buf);
        assert.deepEqual(flags(p), { present: true, rw: false, user: true, accessed: true, dirty: false, saved_dirty: true, nx: true, pkey: 0 });
        assert.deepEqual(flags(c), { present: true, rw: false, user: true, accessed: false, dirty: false, saved_dirty: true, nx: true, pkey: 0 });
        assert.equal(c!.pfn, p!.pfn, 'both map the one page until a write');
        assert.deepEqual(sys.page(p!.pfn), { anon: true, refcount: 2, mapcount: 2, dirty: false });
        frame = p!.pfn;
        const [parentInfo, childInfo] = [sys.taskInfo(tid)!, sys.taskInfo(child)!];
        assert.equal(childInfo.pid, child, 'a forked child leads its own thread group');
        assert.notEqual(childInfo.mm, parentInfo.mm, 'and has its own address space');
        assert.equal(childInfo.image, parentInfo.image);
        assert.equal(childInfo.state, 'runnable');
        seen.push('fork');
      } else {
        // wp_page_reuse: the child copied its page and is gone, so the parent's page has one user again.
        const p = sys.pte(tid, buf);
        assert.deepEqual(flags(p), { present: true, rw: true, user: true, accessed: true, dirty: true, saved_dirty: false, nx: true, pkey: 0 });
        assert.equal(p!.pfn, frame);
        assert.deepEqual(sys.page(frame), { anon: true, refcount: 1, mapcount: 1, dirty: false });
        assert.equal(sys.readUser(tid, buf, 8), 3n);
        seen.push('reuse');
      }
    },
    { cpus: 1 },
  );
  assert.deepEqual(seen, ['fork', 'reuse']);
});

test('pte after mprotect(PROT_NONE): P clear, PROTNONE set, D moved to SavedDirty, and the frame still found', () => {
  let frame = -1;
  let checked = false;
  runWithMarkers(
    { main: [mmap('buf'), { op: 'store', addr: '$buf', value: 7 }, marker, { op: 'syscall', name: 'mprotect', args: ['$buf', PAGE, PROT_NONE] }, marker] },
    (sys, n, tid) => {
      const buf = va(sys, tid, 'buf');
      const p = sys.pte(tid, buf)!;
      if (n === 0) {
        frame = p.pfn;
        return;
      }
      // PAGE_NONE is ___A|___G only (no _USR, no __NX); pte_modify keeps A and the frame.
      assert.deepEqual(flags(p), { present: false, rw: false, user: false, accessed: true, dirty: false, saved_dirty: true, nx: false, pkey: 0 });
      assert.equal(p.lo & 0x100, 0x100, '_PAGE_PROTNONE is bit 8 of a non-present entry');
      assert.notEqual((p.lo >>> 12) + (p.hi & 0xfffff) * 2 ** 20, frame, 'the frame bits are stored inverted');
      assert.equal(p.pfn, frame, 'pte_pfn undoes the inversion');
      assert.equal(sys.readUser(tid, buf, 1), null, 'nothing is mapped present');
      checked = true;
    },
  );
  assert.ok(checked);
});

test('tasks, maps and mms: a thread shares its leader pid and mm; a zombie keeps its record without an mm', () => {
  let checked = false;
  runWithMarkers(
    {
      main: [
        mmap('buf', 2 * PAGE),
        mmap('stk', 4 * PAGE),
        { op: 'syscall', name: 'fork', into: 'child', child: [] },
        { op: 'syscall', name: 'sched_yield' },
        { op: 'syscall', name: 'clone', args: [CLONE_THREAD_FLAGS, '$stk+0x3ff0', 0, 0, 0], into: 'thr', child: [{ op: 'syscall', name: 'sched_yield' }] },
        marker,
        { op: 'syscall', name: 'wait4', args: [-1, 0, 0, 0] },
      ],
    },
    (sys, _n, tid) => {
      const child = Number(va(sys, tid, 'child'));
      const thr = Number(va(sys, tid, 'thr'));
      const all = sys.tasks();
      assert.deepEqual(all.map((t) => t.tid), [tid, child, thr], 'in creation order');
      const [leader, zombie, thread] = all;
      const { kernel: _, ...rest } = leader;
      assert.deepEqual({ ...rest, mm: leader.mm !== null }, { tid, pid: tid, state: 'running', cpu: 0, image: 'init', mm: true });
      assert.deepEqual({ tid: zombie.tid, pid: zombie.pid, state: zombie.state, mm: zombie.mm }, { tid: child, pid: child, state: 'zombie', mm: null }, 'exited, not yet reaped: exit_mm dropped its mm');
      assert.deepEqual({ pid: thread.pid, mm: thread.mm }, { pid: tid, mm: leader.mm }, 'CLONE_THREAD: same thread group; CLONE_VM: same mm');
      assert.equal(sys.pte(child, 0x400000), null, 'a task without an mm has no PTEs');
      assert.deepEqual(sys.mms().map((m) => ({ id: m.id, tids: m.tids })), [{ id: leader.mm, tids: [tid, thr] }]);
      const buf = Number(va(sys, tid, 'buf'));
      const vma = sys.maps(tid).find((v) => v.start <= buf && buf + 2 * PAGE <= v.end);
      assert.ok(vma, 'a mapping covers the mmap');
      assert.equal(vma.perms, 'rw-p');
      assert.deepEqual(sys.maps(thr), sys.maps(tid));
      assert.deepEqual(sys.maps(child), []);
      assert.equal(sys.current(0), tid);
      assert.equal(sys.cpuInfo(0).current, tid);
      checked = true;
    },
    { cpus: 1 },
  );
  assert.ok(checked);
});

test('framesInUse: up by the pages a process touched while it runs, back to the boot figure when everything has exited', () => {
  const sys = boot();
  const boot0 = sys.framesInUse;
  let during = -1;
  sys.events.subscribe((e) => {
    if (e.type === 'syscall_enter' && e.name === 'getpid') during = sys.framesInUse;
  });
  sys.spawn({ main: [mmap('buf', 4 * PAGE), ...[0, 1, 2, 3].map((i): Op => ({ op: 'store', addr: `$buf+${i * PAGE}`, value: 1 })), marker] });
  assert.ok(sys.run().finished);
  assert.ok(during >= boot0 + 4, `four written anonymous pages at least (${during - boot0} frames)`);
  assert.equal(sys.framesInUse, boot0);
  assert.deepEqual(sys.tasks(), []);
  assert.equal(sys.current(0), 0, 'the idle task');
  assert.throws(() => sys.current(2), ArgumentError);
  assert.throws(() => sys.page(-1), ArgumentError);
});

test('events: every event carries a tid; the processor events of a user access name the task, an IPI its sender, a context switch the next task', () => {
  let parent = 0;
  let thread = 0;
  const { events } = runWithMarkers(
    {
      main: [
        mmap('buf'),
        mmap('stk', 4 * PAGE),
        { op: 'store', addr: '$buf', value: 1 },
        { op: 'syscall', name: 'clone', args: [CLONE_THREAD_FLAGS, '$stk+0x3ff0', 0, 0, 0], into: 'thr', cpu: 1, child: [{ op: 'load', addr: '$buf' }, marker, ...yields(4)] },
        ...yields(4),
        { op: 'syscall', name: 'munmap', args: ['$buf', PAGE] },
        ...yields(6), // outlive the thread: the leader's exit_group would kill it
      ],
    },
    (sys, _n, tid) => {
      thread = tid;
      parent = sys.taskInfo(tid)!.pid;
    },
    { cpus: 2 },
  );
  assert.ok(parent > 0 && thread !== parent);
  for (const e of events) assert.ok(Number.isInteger(e.tid) && e.tid >= 0, `${e.type} has a tid`);
  const fills = events.filter((e) => e.type === 'tlb_fill' && e.cpu === 1 && e.tid !== 0);
  assert.ok(fills.length > 0 && fills.every((e) => e.tid === thread), 'CPU 1 fills its TLB for the thread');
  const walks = events.filter((e) => e.type === 'walk' && e.cpu === 0 && e.tid !== 0);
  assert.ok(walks.length > 0 && walks.every((e) => e.tid === parent));
  const ipis = events.filter((e): e is Extract<IsolabEvent, { type: 'ipi' }> => e.type === 'ipi');
  assert.ok(ipis.some((e) => e.from === 0 && e.to === 1 && e.tid === parent), 'munmap by the parent sends CPU 1 a shootdown IPI');
  for (const e of events) if (e.type === 'context_switch') assert.equal(e.tid, e.to);
  for (const e of events) if (e.type === 'syscall_enter') assert.equal(e.cpu, e.tid === thread ? 1 : 0);
});

// A malformed program is refused when it is started, by an ArgumentError naming the operation
// and the operand: function, index, field (and argument number).
test('a bad operand is named by function, operation index and field', () => {
  const sys = boot();
  const refused = (program: Program, says: string): void => {
    assert.throws(() => sys.spawn(program, { name: 'bad' }), (e: unknown) => e instanceof ArgumentError && e.message.includes(says));
  };
  refused({ main: [marker, { op: 'syscall', name: 'write', args: [1, 'buf', 3] }] }, 'bad: main[1].args[1]: "buf" is not a value');
  refused({ main: [{ op: 'load', addr: '@nowhere' }] }, 'bad: main[0].addr: no function named nowhere');
  refused({ main: [marker], functions: { f: [marker, marker, { op: 'store', addr: 0x1000, value: 1.5 }] } }, 'bad: f[2].value: 1.5 is not an integer');
  refused({ main: [{ op: 'syscall', name: 'fork', child: [{ op: 'set', var: 'x', value: '&missing' }] }] }, 'bad: main.0.child[0].value: no string named missing');
  refused({ main: [{ op: 'load', addr: 0x1000, size: 3 as 8 }] }, 'bad: main[0].size: expected 1, 2, 4 or 8, got 3');
});

// Where a task is in its program (System.position, System.opAddress): the operation at its ip,
// and the one it fetched last, which a syscall in progress belongs to (SYSCALL has moved the ip
// past it). The image lays operations out OP_BYTES (16) apart from TEXT_BASE (0x400000).
test('position: the operation at the ip, and the one fetched last during its syscall', () => {
  const sys = boot();
  const tid = sys.spawn({ main: [{ op: 'set', var: 'x', value: 1 }, { op: 'syscall', name: 'sched_yield' }, marker] });
  const pos = { image: '', fn: '', index: -1, op: '', fetchedFn: '', fetchedIndex: -1, fetchedOp: '' };
  assert.equal(sys.position(tid, pos), true);
  assert.deepEqual([pos.image, pos.fn, pos.index, pos.op], ['init', 'main', 0, 'set']);
  assert.equal(sys.opAddress(tid), 0x400000);
  // Run until the task is in its sched_yield: the ip is past it, the fetched operation is it.
  while (sys.taskInfo(tid)?.kernel !== 'syscall') assert.ok(sys.step());
  sys.position(tid, pos);
  assert.deepEqual([pos.index, pos.op, pos.fetchedIndex, pos.fetchedOp], [2, 'getpid', 1, 'sched_yield']);
  assert.equal(sys.opAddress(tid), 0x400000 + 2 * 16);
  assert.equal(sys.opAddress(tid, true), 0x400000 + 16);
  assert.equal(sys.position(99999, pos), false);
  assert.equal(sys.opAddress(99999), -1);
});

// The same by address (System.opCursor, System.operationAt): one look-up gives the image and
// both addresses, and the image's handle names an address after the task has exited.
test('opCursor and operationAt: addresses now, names later, after the task exited', () => {
  const sys = boot();
  const tid = sys.spawn({ main: [{ op: 'set', var: 'x', value: 1 }, { op: 'syscall', name: 'sched_yield' }, marker] });
  const cur: OpCursor = { image: null, here: -1, fetched: -1 };
  assert.equal(sys.opCursor(tid, cur), true);
  assert.equal(cur.here, 0x400000);
  while (sys.taskInfo(tid)?.kernel !== 'syscall') assert.ok(sys.step());
  assert.equal(sys.opCursor(tid, cur), true);
  assert.deepEqual([cur.here, cur.fetched], [0x400000 + 2 * 16, 0x400000 + 16]);
  const image = cur.image!;
  assert.equal(image.name, 'init');
  while (sys.taskInfo(tid) !== undefined && sys.step());
  assert.equal(sys.opCursor(tid, cur), false, 'the task is gone');
  const pos = { image: '', fn: '', index: -1, op: '', fetchedFn: '', fetchedIndex: -1, fetchedOp: '' };
  assert.equal(sys.operationAt(image, 0x400000 + 16, pos), true);
  assert.deepEqual([pos.image, pos.fn, pos.index, pos.op], ['init', 'main', 1, 'sched_yield']);
  assert.equal(sys.operationAt(image, 0x10000000, pos), false, 'an address in no function');
  assert.equal(sys.operationAt({ name: 'init' }, 0x400000, pos), false, 'a handle opCursor did not give');
});
