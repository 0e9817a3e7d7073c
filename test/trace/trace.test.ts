/**
 * The trace writers (src/trace/): JSONL and Chrome Trace Event Format for Perfetto, on event
 * streams recorded from real runs of the model. Expected values come from the programs below
 * (how many syscalls they make, which CPU each task was put on), not from the writers' output.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ArgumentError } from '../../src/errors.js';
import { hex64 } from '../../src/hw/addr.js';
import { System } from '../../src/system.js';
import type { IsolabEvent } from '../../src/system.js';
import { toJsonl, toPerfetto, type TraceEvent, type TraceMeta, type TraceRecord } from '../../src/trace/index.js';
import { PERFETTO_PID } from '../../src/trace/perfetto.js';
import type { Op, Program } from '../../src/user/program.js';

type Ev<T extends IsolabEvent['type']> = Extract<IsolabEvent, { type: T }>;

const CLONE_THREAD_FLAGS = 0x100 | 0x800 | 0x10000; // CLONE_VM | CLONE_SIGHAND | CLONE_THREAD
const yieldOp: Op = { op: 'syscall', name: 'sched_yield' };

/**
 * The parent (CPU 0) maps a page and writes it; forks a child onto CPU 1 that writes the page
 * (a COW copy) and reads it; waits for it; then starts a thread on CPU 1 that reads the page
 * and yields, yields itself, unmaps the page (a shootdown IPI to CPU 1), and yields more than
 * the thread so that both end on their own.
 */
const PROGRAM: Program = {
  main: [
    { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'buf' }, // PROT_READ|WRITE, MAP_PRIVATE|ANONYMOUS
    { op: 'store', addr: '$buf', value: 1 },
    { op: 'syscall', name: 'fork', into: 'pid', cpu: 1, child: [
      { op: 'store', addr: '$buf', value: 2 },
      { op: 'load', addr: '$buf', into: 'mine' },
    ] },
    { op: 'syscall', name: 'wait4', args: [-1, 0, 0, 0] },
    { op: 'syscall', name: 'mmap', args: [0, 16384, 3, 0x22, -1, 0], into: 'stk' },
    { op: 'syscall', name: 'clone', args: [CLONE_THREAD_FLAGS, '$stk+0x3ff0', 0, 0, 0], into: 'thr', cpu: 1, child: [
      { op: 'load', addr: '$buf', into: 'seen' },
      yieldOp, yieldOp, yieldOp, yieldOp,
    ] },
    yieldOp, yieldOp, yieldOp, yieldOp,
    { op: 'syscall', name: 'munmap', args: ['$buf', 4096] },
    yieldOp, yieldOp, yieldOp, yieldOp, yieldOp, yieldOp,
  ],
};
const FORK_INDEX = 2;
const CLONE_INDEX = 5;

/** Syscall ops in `ops` and in the children of its fork/clone ops, plus one exit or exit_group per function (each falls off its end). */
function syscallsOf(ops: Op[]): number {
  let n = 1;
  for (const op of ops) {
    if (op.op !== 'syscall') continue;
    n++;
    if (op.child) n += syscallsOf(op.child);
  }
  return n;
}

interface Run {
  records: TraceRecord[];
  meta: TraceMeta;
  parent: number;
  child: number;
  thread: number;
}

/** Runs PROGRAM on a 2-CPU System and records every event with the step it came at. */
function recordRun(): Run {
  const sys = new System({ cpus: 2, kernel: { debug_vm: true } });
  const records: TraceRecord[] = [];
  sys.events.subscribe((e) => records.push({ step: sys.now, event: e }));
  const parent = sys.spawn(PROGRAM, { cpu: 0 });
  const r = sys.run({ maxSteps: 100_000 });
  assert.ok(r.finished, `tasks still alive: ${r.alive.join(', ')}`);
  assert.deepEqual(sys.debugReports, []);
  assert.equal(sys.exitStatus(parent), 0, 'nothing was killed');
  const main = sys.log.filter((x) => x.fn === 'main' && x.tid === parent);
  const child = Number(main.find((x) => x.index === FORK_INDEX)!.value);
  const thread = Number(main.find((x) => x.index === CLONE_INDEX)!.value);
  const meta: TraceMeta = { cpus: 2, tasks: new Map([[parent, 'parent'], [child, 'child'], [thread, 'thread']]), scenario: 'fork-cow-shootdown' };
  return { records, meta, parent, child, thread };
}

const run = recordRun();

function ofType<T extends IsolabEvent['type']>(records: TraceRecord[], type: T): { step: number; event: Ev<T> }[] {
  return records.filter((r) => r.event.type === type) as { step: number; event: Ev<T> }[];
}

test('the recorded run is what the program says: every function ended on its own', () => {
  const ends = ofType(run.records, 'user_end').map((r) => r.event.tid).sort((a, b) => a - b);
  assert.deepEqual(ends, [run.parent, run.child, run.thread].sort((a, b) => a - b));
  assert.equal(ofType(run.records, 'syscall_enter').length, syscallsOf(PROGRAM.main));
  assert.ok(ofType(run.records, 'ipi').some((r) => r.event.from === 0 && r.event.to === 1), 'munmap sent a shootdown IPI to CPU 1');
});

// ---- JSONL --------------------------------------------------------------------------------

test('JSONL: a header line first, then one parseable line per event, ending in a newline', () => {
  const text = toJsonl(run.records, run.meta);
  assert.ok(text.endsWith('\n'));
  const lines = text.slice(0, -1).split('\n');
  assert.equal(lines.length, run.records.length + 1);
  const objs = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(objs[0], {
    type: 'trace_header', format: 'isolab-trace', version: 1, cpus: 2,
    tasks: { [run.parent]: 'parent', [run.child]: 'child', [run.thread]: 'thread' }, scenario: 'fork-cow-shootdown',
  });
  objs.slice(1).forEach((o, i) => {
    assert.equal(o.step, run.records[i].step);
    assert.equal(o.type, run.records[i].event.type);
  });
  const noScenario = JSON.parse(toJsonl([], { cpus: 1, tasks: new Map() }).split('\n')[0]);
  assert.equal(noScenario.scenario, null);
});

test('JSONL: bigints become 0x hex strings, hi/lo pairs also give a 16-digit addr', () => {
  const objs = toJsonl(run.records, run.meta).trim().split('\n').slice(1).map((l) => JSON.parse(l) as Record<string, unknown>);
  const hex = /^0x[0-9a-f]+$/;
  let enters = 0;
  let pairs = 0;
  objs.forEach((o, i) => {
    const e = run.records[i].event;
    if (e.type === 'syscall_enter') {
      enters++;
      assert.deepEqual(o.args, e.args.map((a) => '0x' + a.toString(16)));
    }
    if (e.type === 'page_fault') assert.match(o.addr as string, hex);
    if (e.type === 'op' && e.record.value !== undefined) assert.match((o.record as { value: string }).value, hex);
    if ('hi' in e && 'lo' in e && e.hi !== undefined && e.lo !== undefined) {
      pairs++;
      assert.equal(o.hi, e.hi);
      assert.equal(o.lo, e.lo);
      assert.equal(o.addr, hex64(e.hi, e.lo));
      assert.match(o.addr as string, /^0x[0-9a-f]{16}$/);
    }
  });
  assert.equal(enters, syscallsOf(PROGRAM.main));
  assert.ok(pairs > 0);
  // mmap's fd argument -1 is the 64-bit all-ones value.
  const mmap = objs.find((o) => o.type === 'syscall_enter' && o.name === 'mmap')!;
  assert.equal((mmap.args as string[])[4], '0xffffffffffffffff');
});

// ---- Perfetto -----------------------------------------------------------------------------

const trace = toPerfetto(run.records, run.meta);
const events = trace.traceEvents;
const byPh = (ph: TraceEvent['ph']) => events.filter((e) => e.ph === ph);

test('Perfetto: a well-formed Trace Event Format object, sorted by ts, JSON-serialisable', () => {
  assert.equal(trace.displayTimeUnit, 'ns');
  assert.equal(trace.otherData.cpus, 2);
  const text = JSON.stringify(trace);
  assert.deepEqual(JSON.parse(text), trace);
  let last = 0;
  for (const e of events) {
    for (const k of ['ph', 'ts', 'pid', 'tid', 'name'] as const) assert.ok(e[k] !== undefined, `${JSON.stringify(e)} lacks ${k}`);
    assert.ok(Number.isInteger(e.ts) && e.ts >= 0, `ts ${e.ts}`);
    assert.ok(e.ts >= last, 'sorted by ts');
    last = e.ts;
    assert.equal(e.pid, PERFETTO_PID, "every event belongs to the one machine process");
    assert.ok(e.tid === 0 || e.tid === 1, `only the CPU tracks are used here, got tid ${e.tid}`);
  }
});

test('Perfetto: one named, sorted track per CPU in one named process', () => {
  const meta = byPh('M');
  assert.deepEqual(meta.filter((e) => e.name === 'process_name').map((e) => e.args), [{ name: 'isolab machine' }]);
  for (const cpu of [0, 1]) {
    assert.deepEqual(meta.filter((e) => e.name === 'thread_name' && e.tid === cpu).map((e) => e.args), [{ name: `CPU ${cpu}` }]);
    assert.deepEqual(meta.filter((e) => e.name === 'thread_sort_index' && e.tid === cpu).map((e) => e.args), [{ sort_index: cpu }]);
  }
  assert.equal(meta.filter((e) => e.name === 'thread_name').length, 2, 'no kernel track when no event needs it');
});

test('Perfetto: one complete slice per syscall, on the CPU it was entered on, never overlapping', () => {
  const slices = byPh('X');
  assert.equal(slices.length, syscallsOf(PROGRAM.main));
  const unmatched = [...slices];
  for (const { step, event } of ofType(run.records, 'syscall_enter')) {
    const k = unmatched.findIndex((s) => s.ts === step && s.name === event.name && (s.args as { tid: number }).tid === event.tid);
    assert.ok(k >= 0, `a slice for ${event.name} of tid ${event.tid} at ${step}`);
    assert.equal(unmatched[k].tid, event.cpu);
    unmatched.splice(k, 1);
  }
  for (const s of slices) assert.ok(Number.isInteger(s.dur) && s.dur! >= 1, `${s.name} dur ${s.dur}`);
  for (const cpu of [0, 1]) {
    const on = slices.filter((s) => s.tid === cpu).sort((a, b) => a.ts - b.ts);
    for (let i = 1; i < on.length; i++) assert.ok(on[i - 1].ts + on[i - 1].dur! <= on[i].ts, `${on[i - 1].name} ends before ${on[i].name} starts on CPU ${cpu}`);
  }
  // The parent's wait4 returns the child's pid; each task's last syscall ends in its exit.
  const wait4 = slices.find((s) => s.name === 'wait4')!;
  assert.equal(wait4.tid, 0);
  assert.deepEqual([(wait4.args as { ret: number }).ret, (wait4.args as { ended: string }).ended], [run.child, 'returned']);
  const exits = slices.filter((s) => s.name === 'exit' || s.name === 'exit_group');
  const byTid = (a: unknown[], b: unknown[]) => (a[1] as number) - (b[1] as number);
  assert.deepEqual(exits.map((s) => [s.name, (s.args as { tid: number }).tid, s.tid, (s.args as { ended: string }).ended]).sort(byTid),
    [['exit_group', run.parent, 0, 'exit'], ['exit_group', run.child, 1, 'exit'], ['exit', run.thread, 1, 'exit']].sort(byTid));
  for (const s of slices) assert.ok((s.args as { args: string[] }).args.every((a) => /^0x[0-9a-f]+$/.test(a)));
});

test('Perfetto: fork and page-fault instants sit on the right CPU with the right tasks', () => {
  const instants = byPh('i');
  for (const i of instants) assert.equal(i.s, 't');
  const forks = instants.filter((i) => i.name === 'fork');
  // fork and clone, both called by the parent on CPU 0.
  assert.deepEqual(forks.map((f) => [f.tid, (f.args as { parent: number }).parent, (f.args as { child: number }).child]), [[0, run.parent, run.child], [0, run.parent, run.thread]]);
  // The parent's first write to the fresh page (CPU 0) maps it; the child's write (CPU 1) copies it.
  const writes = instants.filter((i) => i.name === '#PF write').map((i) => ({ cpu: i.tid, ...(i.args as { tid: number; outcome: string; errorBits: string }) }));
  assert.ok(writes.some((w) => w.cpu === 0 && w.tid === run.parent && w.outcome === 'mapped' && w.errorBits === 'W|U'), JSON.stringify(writes));
  assert.ok(writes.some((w) => w.cpu === 1 && w.tid === run.child && w.outcome === 'copied' && w.errorBits === 'P|W|U'), JSON.stringify(writes));
  assert.equal(instants.filter((i) => i.name.startsWith('#PF')).length, ofType(run.records, 'page_fault').length);
});

test('Perfetto: each IPI is an instant on the sender and a flow whose start and finish pair up', () => {
  const ipis = ofType(run.records, 'ipi');
  const starts = byPh('s');
  const finishes = byPh('f');
  assert.equal(starts.length, ipis.length);
  assert.equal(finishes.length, ipis.length);
  assert.equal(new Set(starts.map((s) => s.id)).size, starts.length, 'ids are unique');
  ipis.forEach(({ step, event }, k) => {
    const s = starts[k];
    const f = finishes.find((x) => x.id === s.id);
    assert.ok(f, `a finish for flow ${s.id}`);
    assert.deepEqual([s.tid, s.ts, f.tid, f.bp, f.name, f.cat], [event.from, step, event.to, 'e', s.name, s.cat]);
    assert.ok(f.ts >= s.ts);
    assert.ok(events.some((e) => e.ph === 'i' && e.cat === 'ipi' && e.tid === event.from && e.ts === step));
  });
});

test('Perfetto: per-access hardware events are cumulative per-CPU counters, one sample per CPU, kind and step', () => {
  const counters = byPh('C');
  assert.ok(!events.some((e) => e.ph === 'i' && ['walk', 'tlb_hit', 'tlb_miss'].includes(e.name)));
  const seen = new Set<string>();
  const lastCount = new Map<string, number>();
  for (const c of counters) {
    const key = `${c.name}@${c.ts}`;
    assert.ok(!seen.has(key), `one sample of ${c.name} at ${c.ts}`);
    seen.add(key);
    const n = (c.args as { count: number }).count;
    assert.ok(n > (lastCount.get(c.name) ?? 0), `${c.name} grows`);
    lastCount.set(c.name, n);
    assert.equal(c.tid, Number(/^CPU (\d+) /.exec(c.name)![1]));
  }
  for (const cpu of [0, 1]) {
    const misses = ofType(run.records, 'tlb_miss').filter((r) => r.event.cpu === cpu).length;
    assert.equal(lastCount.get(`CPU ${cpu} TLB misses`) ?? 0, misses, `CPU ${cpu} TLB misses`);
  }
  const steps = new Set(run.records.map((r) => r.step)).size;
  assert.ok(counters.length <= steps * 2 * 10, 'bounded by steps x CPUs x kinds');
});

// ---- Syscalls that end without a `syscall` event ----------------------------------------

test('Perfetto: a trace cut inside a syscall closes the slice at the end of the trace', () => {
  const waitStep = ofType(run.records, 'syscall_enter').find((r) => r.event.name === 'wait4')!.step;
  const cut = run.records.filter((r) => r.step <= waitStep + 3);
  const slices = toPerfetto(cut, run.meta).traceEvents.filter((e) => e.ph === 'X');
  assert.equal(slices.length, cut.filter((r) => r.event.type === 'syscall_enter').length);
  const wait4 = slices.find((s) => s.name === 'wait4')!;
  assert.equal((wait4.args as { ended: string }).ended, 'trace end');
  assert.equal(wait4.ts + wait4.dur!, cut[cut.length - 1].step);
});

test('Perfetto: rt_sigreturn, a failed and a successful execve, and exit_group each get one slice', () => {
  const sys = new System({ cpus: 1, kernel: { debug_vm: true } });
  const records: TraceRecord[] = [];
  sys.events.subscribe((e) => records.push({ step: sys.now, event: e }));
  sys.addImage('next', { main: [{ op: 'syscall', name: 'getpid' }] });
  const pid = sys.spawn({
    main: [
      { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'act' },
      { op: 'store', addr: '$act', value: '@h' }, // struct sigaction: handler, flags (SA_RESTORER), restorer
      { op: 'store', addr: '$act+8', value: 0x04000000 },
      { op: 'store', addr: '$act+16', value: '@__restore_rt' },
      { op: 'syscall', name: 'rt_sigaction', args: [10, '$act', 0, 8] },
      { op: 'syscall', name: 'kill', args: [1, 10] }, // SIGUSR1 to itself: h runs, then rt_sigreturn
      { op: 'store', addr: '$act+64', value: 1 },
      { op: 'syscall', name: 'execve', args: ['&nope', 0, 0] }, // ENOENT
      { op: 'syscall', name: 'execve', args: ['&next', 0, 0] },
    ],
    functions: { h: [] },
    strings: { nope: 'nope', next: 'next' },
  });
  assert.equal(pid, 1, 'kill(1, ...) signals itself');
  assert.ok(sys.run().finished);
  assert.equal(sys.exitStatus(pid), 0);
  const slices = toPerfetto(records, { cpus: 1, tasks: new Map([[pid, 'main']]) }).traceEvents.filter((e) => e.ph === 'X');
  const summary = slices.map((s) => {
    const a = s.args as { ended: string; ret?: number; errno?: string };
    return [s.name, a.ended, a.errno ?? null];
  });
  assert.deepEqual(summary, [
    ['mmap', 'returned', null],
    ['rt_sigaction', 'returned', null],
    ['kill', 'returned', null],
    ['rt_sigreturn', 'user mode', null],
    ['execve', 'returned', 'ENOENT'],
    ['execve', 'exec', null],
    ['getpid', 'returned', null],
    ['exit_group', 'exit', null],
  ]);
  assert.equal((slices[4].args as { ret: number }).ret, -2);
  assert.ok(slices.every((s) => s.tid === 0 && s.dur! >= 1));
});

// ---- Cases the runs above do not reach (hand-built streams) -------------------------------

function rec(step: number, event: IsolabEvent): TraceRecord {
  return { step, event };
}
const enter = (cpu: number, tid: number, name: string): IsolabEvent => ({ type: 'syscall_enter', cpu, tid, nr: 0, name, args: [] });
const ret = (cpu: number, tid: number, name: string, r: number): IsolabEvent => ({ type: 'syscall', cpu, tid, nr: 0, name, args: [], ret: r });

test('slices: a syscall interrupted for a handler and restarted gives two slices; one left for another task is cut', () => {
  const recs = [
    rec(1, enter(0, 1, 'wait4')),
    rec(5, { type: 'signal', cpu: 0, tid: 1, signo: 10, code: 0, addr: 0n, action: 'handler' }),
    rec(8, enter(0, 1, 'wait4')),
    rec(9, { type: 'context_switch', cpu: 0, tid: 0, from: 1, to: 0 }),
    rec(11, { type: 'context_switch', cpu: 0, tid: 2, from: 0, to: 2 }),
    rec(12, enter(0, 2, 'getpid')),
    rec(12, ret(0, 2, 'getpid', 2)),
    rec(13, { type: 'context_switch', cpu: 0, tid: 1, from: 2, to: 1 }),
    rec(14, ret(0, 1, 'wait4', -10)),
  ];
  const slices = toPerfetto(recs, { cpus: 1, tasks: new Map() }).traceEvents.filter((e) => e.ph === 'X');
  const got = slices.map((s) => [s.name, s.ts, s.dur, (s.args as { ended: string }).ended]);
  assert.deepEqual(got, [['wait4', 1, 4, 'signal'], ['wait4', 8, 1, 'returned'], ['getpid', 12, 1, 'returned']]);
  assert.deepEqual([(slices[1].args as { left_cpu_at: number }).left_cpu_at, (slices[1].args as { errno: string }).errno], [9, 'ECHILD']);
});

test('slices: an execve by a non-leader thread ends at the exec event that names the leader', () => {
  const recs = [rec(2, enter(1, 5, 'execve')), rec(6, { type: 'exec', cpu: 1, tid: 4, image: 'next' })];
  const [s] = toPerfetto(recs, { cpus: 2, tasks: new Map() }).traceEvents.filter((e) => e.ph === 'X');
  assert.deepEqual([s.tid, s.ts, s.dur, (s.args as { ended: string }).ended], [1, 2, 4, 'exec']);
});

test('a machine-wide debug finding (CPU -1) goes on a kernel track after the CPU tracks', () => {
  const t = toPerfetto([rec(3, { type: 'debug', cpu: -1, tid: 0, check: 'leak', message: 'frame 0x10' })], { cpus: 2, tasks: new Map() });
  assert.deepEqual(t.traceEvents.filter((e) => e.name === 'thread_name').map((e) => [e.tid, (e.args as { name: string }).name]), [[0, 'CPU 0'], [1, 'CPU 1'], [2, 'kernel']]);
  const d = t.traceEvents.find((e) => e.ph === 'i')!;
  assert.deepEqual([d.tid, d.name, d.ts], [2, 'debug: leak', 3]);
});

test('bad input is an ArgumentError naming what is wrong', () => {
  const one = [rec(1, enter(0, 1, 'getpid'))];
  for (const write of [toJsonl, toPerfetto] as ((r: TraceRecord[], m: TraceMeta) => unknown)[]) {
    assert.throws(() => write(one, { cpus: 0, tasks: new Map() }), (e: unknown) => e instanceof ArgumentError && e.argument === 'meta.cpus');
    assert.throws(() => write([rec(2, enter(0, 1, 'a')), rec(1, enter(0, 1, 'b'))], { cpus: 1, tasks: new Map() }), (e: unknown) => e instanceof ArgumentError && e.argument === 'records[1].step');
    assert.throws(() => write([rec(0, enter(3, 1, 'a'))], { cpus: 2, tasks: new Map() }), /names CPU 3, but the machine has CPUs 0 to 1/);
  }
});
