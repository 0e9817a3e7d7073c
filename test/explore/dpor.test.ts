/**
 * DporSearch against brute force. The brute force here tries every enabled item at every state
 * (replaying the prefix on a fresh Execution, there being no state cloning), and for each
 * complete interleaving computes its Mazurkiewicz trace itself: happens-before is program order
 * (two steps of one item) plus `dependent` between steps of different items in the order they
 * ran, closed transitively with bitsets. Expected counts come from that enumeration, not from
 * the search.
 *
 * Two CPUs both running user code overlap for tens of steps (a thread's whole life, about 18
 * steps on its CPU, against about 14 of the creator's), C(32, 14) ≈ 5·10^8 interleavings: no
 * brute force finishes. The scenarios are built so that the other CPU does little while the
 * first runs: a vfork child on CPU 1 runs while its parent sleeps, then CPU 1 stays lazily in
 * the parent's mm and receives the parent's shootdown IPI (a cross-CPU race of two kernel
 * steps); TLB evictions (one-step items) add the interleavings that commute.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { DporSearch, hash64 } from '../../src/explore/dpor.js';
import { dependent, Execution, type Step } from '../../src/explore/execution.js';
import { compileScenarioText, type CompiledScenario } from '../../src/scenario/index.js';
import { peekPhys } from '../../src/scenario/peek.js';

// ---------------------------------------------------------------------------------------------
// Trace fingerprints, computed from the recorded steps alone.

/** One complete interleaving's trace: its canonical form, and the same relation in DporSearch's string encoding (hashed as it hashes it). */
interface TraceKey {
  /** Sorted rows `item#index<{predecessors as item#index}`: equal exactly for equal labelled partial orders. */
  canon: string;
  /** hash64 of rows `item#index<x:n,...` (n: how many steps of item x precede), as DporSearch encodes a trace. */
  dpor: string;
}

/** The Mazurkiewicz trace of a sequence of steps. */
export function traceOf(steps: Step[]): TraceKey {
  const n = steps.length;
  const words = Math.ceil(n / 32) || 1;
  const pred: Uint32Array[] = [];
  const index: number[] = [];
  const seen = new Map<number, number>();
  for (let j = 0; j < n; j++) {
    const s = steps[j];
    const k = (seen.get(s.item) ?? 0) + 1;
    seen.set(s.item, k);
    index.push(k);
    const p = new Uint32Array(words);
    for (let i = 0; i < j; i++) {
      if (steps[i].item !== s.item && !dependent(steps[i], s)) continue;
      p[i >>> 5] |= 1 << (i & 31);
      const q = pred[i];
      for (let w = 0; w < words; w++) p[w] |= q[w];
    }
    pred.push(p);
  }
  const canon: string[] = [];
  const dpor: string[] = [];
  for (let j = 0; j < n; j++) {
    const before: string[] = [];
    const most = new Map<number, number>();
    for (let i = 0; i < j; i++) {
      if (!(pred[j][i >>> 5] & (1 << (i & 31)))) continue;
      before.push(`${steps[i].item}#${index[i]}`);
      if (steps[i].item !== steps[j].item) most.set(steps[i].item, Math.max(most.get(steps[i].item) ?? 0, index[i]));
    }
    canon.push(`${steps[j].item}#${index[j]}<${before.sort().join(',')}`);
    dpor.push(`${steps[j].item}#${index[j]}<${[...most].map(([x, m]) => `${x}:${m}`).sort().join(',')}`);
  }
  return { canon: canon.sort().join(' '), dpor: hash64(dpor.sort().join(' ')) };
}

// ---------------------------------------------------------------------------------------------
// One execution with what it leaves behind observed.

/** The variables whose addresses are watched: the frames they map are part of the outcome. */
const WATCH = ['buf', 'buf2'];

/** An Execution and the record the test keeps of it (steps, each task's last variables, the frames watched). */
class Run {
  readonly exec: Execution;
  readonly steps: Step[] = [];
  private readonly vars = new Map<number, string>();
  private readonly frames = new Set<number>();

  constructor(c: CompiledScenario, evictions: number, prefix: number[] = []) {
    this.exec = new Execution(c, { invariants: [], evictions });
    this.observe();
    for (const item of prefix) this.step(item);
  }

  step(item: number): Step {
    const s = this.exec.step(item);
    this.steps.push(s);
    this.observe();
    return s;
  }

  /** Between steps (no footprint sink installed): each live task's variables, and the frames the watched addresses map to. */
  private observe(): void {
    const k = this.exec.k;
    for (const [tid, t] of k.tasks) {
      this.vars.set(tid, [...t.vars].map(([name, v]) => `${name}=${v.toString(16)}`).sort().join(' '));
      if (!t.mm) continue;
      for (const name of WATCH) {
        const va = t.vars.get(name);
        if (va === undefined) continue;
        const pa = peekPhys(k, t.mm, Number(va));
        if (pa !== null) this.frames.add(Math.floor(pa / 4096));
      }
    }
  }

  /** Ends the execution and describes its final state; equivalent interleavings must describe it alike. */
  outcome(): { text: string; frameWords: Map<number, string> } {
    const report = this.exec.finish();
    const k = this.exec.k;
    const mem = k.machine.mem;
    const frameWords = new Map<number, string>();
    for (const pfn of [...this.frames].sort((a, b) => a - b)) {
      const w = mem.words[pfn];
      frameWords.set(pfn, w ? `${w[1].toString(16)}:${w[0].toString(16)}` : 'zero');
    }
    const h = createHash('sha256');
    for (let pfn = 0; pfn < mem.words.length; pfn++) {
      const w = mem.words[pfn];
      if (!w || w.every((x) => x === 0)) continue;
      h.update(`${pfn}:`);
      h.update(new Uint8Array(w.buffer, w.byteOffset, w.byteLength));
    }
    const logs = new Map<number, string[]>();
    for (const r of k.log) {
      const line = `${r.image}.${r.fn}[${r.index}] ${r.op} ${r.addr?.toString(16) ?? ''} ${r.value?.toString(16) ?? ''} ${r.signal ? `sig${r.signal.signo}/${r.signal.code}` : ''}`;
      logs.set(r.tid, [...(logs.get(r.tid) ?? []), line]);
    }
    const tlbs = k.percpu.map((pc) =>
      pc.cpu.tlb
        .entries()
        .map((e) => `${e.slot}:${e.pcid}:${e.global ? 'g' : ''}${e.laHi.toString(16)}.${e.laLo.toString(16)}>${e.pfn}`)
        .join(' '),
    );
    const text = JSON.stringify({
      exits: [...k.exited].sort((a, b) => a[0] - b[0]),
      alive: [...k.tasks].map(([tid, t]) => `${tid}:${t.state}`).sort(),
      vars: [...this.vars].sort((a, b) => a[0] - b[0]),
      logs: [...logs].sort((a, b) => a[0] - b[0]),
      frames: [...frameWords],
      memory: h.digest('hex'),
      tlbs,
      tasks: report.tasks,
      verdicts: report.verdicts.map((v) => `${v.status} ${v.actual}`),
      violation: this.exec.violation?.invariant ?? null,
    });
    return { text, frameWords };
  }
}

// ---------------------------------------------------------------------------------------------
// Brute force.

interface TraceClass {
  /** Interleavings in the class. */
  count: number;
  dpor: string;
  /** The first interleaving's schedule, outcome and per-event footprints. */
  schedule: number[];
  outcome: string;
  footprints: string;
  /** Interleavings whose outcome or footprints differ from the first one's. */
  mismatches: { schedule: number[]; what: string }[];
}

interface BruteForce {
  interleavings: number;
  classes: Map<string, TraceClass>;
  steps: number;
  longest: number;
  ms: number;
}

/** Each step's footprint labelled by (item, index), in a canonical order. */
function footprintsOf(steps: Step[]): string {
  const seen = new Map<number, number>();
  const rows = steps.map((s) => {
    const k = (seen.get(s.item) ?? 0) + 1;
    seen.set(s.item, k);
    return `${s.item}#${k} r${[...s.reads].sort((a, b) => a - b).join(',')} w${[...s.writes].sort((a, b) => a - b).join(',')}`;
  });
  return rows.sort().join('\n');
}

/** Every interleaving: at each state every enabled item, until nothing is enabled. Throws past `cap` interleavings. */
function bruteForce(c: CompiledScenario, evictions: number, cap: number): BruteForce {
  const t0 = performance.now();
  const bf: BruteForce = { interleavings: 0, classes: new Map(), steps: 0, longest: 0, ms: 0 };
  const path: number[] = [];
  const visit = (run: Run): void => {
    const enabled = run.exec.enabled();
    if (enabled.length === 0) {
      bf.interleavings++;
      if (bf.interleavings > cap) throw new Error(`brute force: more than ${cap} interleavings`);
      bf.longest = Math.max(bf.longest, run.steps.length);
      const key = traceOf(run.steps);
      const out = run.outcome().text;
      const fps = footprintsOf(run.steps);
      const cls = bf.classes.get(key.canon);
      if (!cls) bf.classes.set(key.canon, { count: 1, dpor: key.dpor, schedule: path.slice(), outcome: out, footprints: fps, mismatches: [] });
      else {
        cls.count++;
        if (out !== cls.outcome) cls.mismatches.push({ schedule: path.slice(), what: `outcome ${out}\n  vs ${cls.outcome}` });
        else if (fps !== cls.footprints) cls.mismatches.push({ schedule: path.slice(), what: 'footprints differ' });
      }
      return;
    }
    for (let x = 0; x < enabled.length; x++) {
      // The first choice goes on with this run; the others replay the prefix from boot.
      const r = x === 0 ? run : new Run(c, evictions, path);
      if (x > 0) bf.steps += path.length;
      r.step(enabled[x]);
      bf.steps++;
      path.push(enabled[x]);
      visit(r);
      path.pop();
    }
  };
  visit(new Run(c, evictions));
  bf.ms = performance.now() - t0;
  return bf;
}

function dpor(c: CompiledScenario, evictions: number) {
  return new DporSearch(c, { invariants: [], evictions, preemptions: Infinity, maxDepth: Infinity, maxExecutions: Infinity, stopAtFirst: false, fingerprints: true }).run();
}

// ---------------------------------------------------------------------------------------------
// Scenarios small enough to enumerate.

/**
 * A vfork child on CPU 1 stores to the parent's page while the parent sleeps; the parent then
 * loads it and unmaps it. The unmap frees the page table, so CPU 1 (lazily still in the mm) gets
 * the shootdown IPI, and its handling races with the parent's local flush.
 */
const VFORK_IPI = `
machine: { cpus: 2 }
processes:
  - name: p
    cpu: 0
    setup:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }
        as: buf
    ops:
      - vfork:
          name: c
          cpu: 1
          ops:
            - store: { addr: $buf, value: 2 }
        as: pid
      - load: $buf
        as: after
      - munmap: { addr: $buf, len: PAGE_SIZE }
`;

/** One CPU: a store and a load on one page, then a store to a second page; only TLB evictions interleave with it. */
const ONE_CPU = `
machine: { cpus: 1 }
processes:
  - name: p
    setup:
      - mmap: { len: 2*PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }
        as: buf
      - set: { buf2: $buf+PAGE_SIZE }
    ops:
      - store: { addr: $buf, value: 5 }
      - load: $buf
        as: v
      - store: { addr: $buf2, value: 6 }
`;

interface Case {
  name: string;
  text: string;
  evictions: number;
  cap: number;
}

const CASES: Case[] = [
  { name: 'vfork child on CPU 1, parent unmaps: the IPI races the local flush', text: VFORK_IPI, evictions: 0, cap: 100 },
  { name: 'the same with one TLB eviction anywhere (CPU 1 evictions commute with CPU 0)', text: VFORK_IPI, evictions: 1, cap: 5000 },
  { name: 'one CPU with one TLB eviction', text: ONE_CPU, evictions: 1, cap: 5000 },
];

const bruteCache = new Map<string, BruteForce>();
function bruteOf(k: Case): BruteForce {
  const key = `${k.name}`;
  let bf = bruteCache.get(key);
  if (!bf) {
    bf = bruteForce(compileScenarioText(k.text, 'dpor-test.yaml'), k.evictions, k.cap);
    bruteCache.set(key, bf);
  }
  return bf;
}

for (const k of CASES) {
  test(`DPOR completes each trace brute force finds, once: ${k.name}`, (t) => {
    const c = compileScenarioText(k.text, 'dpor-test.yaml');
    const bf = bruteOf(k);
    const r = dpor(c, k.evictions);
    t.diagnostic(`brute force: ${bf.interleavings} interleavings (longest ${bf.longest} steps, ${bf.steps} steps run, ${bf.ms.toFixed(0)} ms), ${bf.classes.size} traces`);
    t.diagnostic(`DPOR: ${r.executions} executions, ${r.complete} complete, ${r.sleepBlocked} sleep-blocked, ${r.steps} steps, ${r.elapsedMs.toFixed(0)} ms`);
    assert.equal(r.exhaustive, true, `bounded by ${r.boundedBy.join(', ')}`);
    assert.deepEqual(r.boundedBy, []);
    assert.equal(r.complete, bf.classes.size, 'one complete execution per trace');
    assert.ok(r.traces);
    assert.equal(new Set(r.traces).size, r.complete, 'no trace completed twice');
    // The same traces, not just as many: the brute force's relation in DporSearch's encoding.
    const expected = [...bf.classes.values()].map((x) => x.dpor).sort();
    assert.equal(new Set(expected).size, expected.length, 'distinct traces have distinct DporSearch encodings');
    assert.deepEqual([...r.traces].sort(), expected);
    // Not trivially one trace, and (beyond the two-interleaving case) a real reduction.
    assert.ok(bf.classes.size >= 2, `${bf.classes.size} trace(s)`);
    assert.ok(r.executions <= bf.interleavings);
  });

  test(`equivalent interleavings end alike: ${k.name}`, (t) => {
    const bf = bruteOf(k);
    const sizes = [...bf.classes.values()].map((x) => x.count);
    t.diagnostic(`${bf.classes.size} traces over ${bf.interleavings} interleavings; largest class ${Math.max(...sizes)}`);
    for (const cls of bf.classes.values()) {
      assert.deepEqual(cls.mismatches.slice(0, 1), [], `class of ${cls.schedule.join(',')} (${cls.count} interleavings)`);
    }
  });
}

test('brute force: with evictions CPU 1 eviction steps commute with CPU 0 steps (fewer traces than interleavings)', () => {
  const bf = bruteOf(CASES[1]);
  assert.ok(bf.classes.size < bf.interleavings, `${bf.classes.size} traces, ${bf.interleavings} interleavings`);
  assert.ok([...bf.classes.values()].some((x) => x.count > 1));
});

test('brute force: on one CPU every eviction is ordered with every step, so each interleaving is its own trace', () => {
  const bf = bruteOf(CASES[2]);
  assert.equal(bf.classes.size, bf.interleavings);
});

// ---------------------------------------------------------------------------------------------
// The checks can fail.

test('traceOf tells apart the orders of two conflicting steps and identifies those of two independent ones', () => {
  const a = (w: number): Step => ({ item: 0, reads: [], writes: [w] });
  const b = (w: number): Step => ({ item: 1, reads: [], writes: [w] });
  const r = (x: number): Step => ({ item: 1, reads: [x], writes: [] });
  assert.notEqual(traceOf([a(8), b(8)]).canon, traceOf([b(8), a(8)]).canon);
  assert.equal(traceOf([a(8), b(9)]).canon, traceOf([b(9), a(8)]).canon);
  assert.notEqual(traceOf([a(8), r(8)]).canon, traceOf([r(8), a(8)]).canon);
  assert.equal(traceOf([r(8), { item: 0, reads: [8], writes: [] }]).canon, traceOf([{ item: 0, reads: [8], writes: [] }, r(8)]).canon);
  // Transitivity: a(8) -> b(8) then b's next step (program order) is after a even though independent of it.
  assert.notEqual(traceOf([a(8), b(8), b(9)]).canon, traceOf([b(8), b(9), a(8)]).canon);
  assert.equal(traceOf([a(8), b(8), b(9)]).dpor, traceOf([a(8), b(8), b(9)]).dpor);
});

/**
 * Two threads of one process on two CPUs store to the same word. Brute force is out of reach
 * (see the top), so two schedules chosen by hand: the main thread's store first, or the
 * thread's. They must be different traces, with different final contents of the page.
 */
test('two stores to one address on two CPUs, in both orders: two traces, two outcomes', () => {
  const c = compileScenarioText(
    `
machine: { cpus: 2 }
processes:
  - name: p
    cpu: 0
    setup:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }
        as: buf
    threads:
      - name: t
        cpu: 1
        ops:
          - store: { addr: $buf, value: 2 }
    ops:
      - store: { addr: $buf, value: 1 }
      - repeat: { count: 3, ops: [ getpid ] }
`,
    'two-stores.yaml',
  );
  /** Runs `first` (a CPU) until its store is logged, then the other CPU while it can, then whatever is enabled (lowest first). */
  const runOrder = (first: number): { run: Run; out: ReturnType<Run['outcome']> } => {
    const run = new Run(c, 0);
    const logged = (cpu: number) => run.exec.k.log.some((x) => x.op === 'store' && x.tid === (cpu === 0 ? 1 : 2));
    for (let guard = 0; guard < 10_000; guard++) {
      const en = run.exec.enabled();
      if (en.length === 0) break;
      const other = 1 - first;
      const want = !logged(first) ? first : !logged(other) ? other : en[0];
      run.step(en.includes(want) ? want : en[0]);
    }
    assert.ok(logged(0) && logged(1), `both stores ran (first ${first}): ${run.exec.k.log.map((x) => `${x.tid}:${x.op}`).join(' ')}`);
    return { run, out: run.outcome() };
  };
  const a = runOrder(0);
  const b = runOrder(1);
  const ta = traceOf(a.run.steps);
  const tb = traceOf(b.run.steps);
  assert.notEqual(ta.canon, tb.canon);
  assert.notEqual(ta.dpor, tb.dpor);
  const last = (o: ReturnType<Run['outcome']>) => [...o.frameWords.values()];
  assert.deepEqual(last(a.out), ['0:2'], 'main stored first, the thread last: the page ends holding 2');
  assert.deepEqual(last(b.out), ['0:1'], 'the thread stored first: the page ends holding 1');
  assert.notEqual(a.out.text, b.out.text);
  // The two store steps themselves are dependent: each writes the word the other writes.
  const storeStep = (run: Run, cpu: number): Step => {
    const pfn = [...a.out.frameWords.keys()][0];
    assert.equal(a.out.frameWords.size, 1);
    const s = run.steps.find((x) => x.item === cpu && x.writes.some((w) => w >= pfn * 512 && w < pfn * 512 + 512));
    assert.ok(s, `a step of CPU ${cpu} writes frame ${pfn}`);
    return s;
  };
  assert.ok(dependent(storeStep(a.run, 0), storeStep(a.run, 1)));
});
