#!/usr/bin/env node
/**
 * A plausible made-up recording (src/see/types.ts) to develop the page against before the Node
 * side records real runs: 2 CPUs, 4-level paging with PTI, a process that forks, TLB fills and
 * evictions, page faults that change PTEs, and one violation (a stale writable TLB entry).
 *
 *   node web/dev/fixture.mjs [--steps N] [--events N] [--keyframe N] [--pages N] [--tlb N] [--compare] > fixture.json
 *
 * --pages: the user pages mapped (at most 512; default 8); --tlb: the TLB slots used per CPU (default 48).
 * --compare writes a Comparison of two such runs (PTI on / off) with their operations aligned.
 */
import { parseArgs } from 'node:util';

const { values: opts } = parseArgs({
  options: {
    steps: { type: 'string', default: '3000' },
    events: { type: 'string', default: '7500' },
    keyframe: { type: 'string', default: '200' },
    pages: { type: 'string', default: '8' },
    tlb: { type: 'string', default: '48' },
    compare: { type: 'boolean', default: false },
  },
});

/** A small deterministic PRNG (mulberry32). */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const hex16 = (v) => BigInt.asUintN(64, BigInt(v)).toString(16).padStart(16, '0');
const P = 1n, RW = 2n, US = 4n, A = 32n, D = 64n, PS = 128n, G = 256n, XD = 1n << 63n;
/** A paging-structure entry pointing at frame `pfn` with flag bits `flags`. */
const pte = (pfn, flags) => hex16((BigInt(pfn) << 12n) | flags);

const BITS = [
  { bit: 0, width: 1, name: 'P', doc: 'present', where: 'any' },
  { bit: 1, width: 1, name: 'RW', doc: 'writable', where: 'any' },
  { bit: 2, width: 1, name: 'US', doc: 'user-accessible', where: 'any' },
  { bit: 3, width: 1, name: 'PWT', doc: 'write-through', where: 'any' },
  { bit: 4, width: 1, name: 'PCD', doc: 'cache disable', where: 'any' },
  { bit: 5, width: 1, name: 'A', doc: 'accessed', where: 'any' },
  { bit: 6, width: 1, name: 'D', doc: 'dirty', where: 'leaf' },
  { bit: 7, width: 1, name: 'PS', doc: 'page size; PAT in a PTE', where: 'any' },
  { bit: 8, width: 1, name: 'G', doc: 'global', where: 'leaf' },
  { bit: 9, width: 1, name: 'SPECIAL', doc: 'Linux _PAGE_SPECIAL', where: 'leaf' },
  { bit: 11, width: 1, name: 'SOFT_DIRTY', doc: 'Linux _PAGE_SOFT_DIRTY', where: 'leaf' },
  { bit: 58, width: 1, name: 'SAVED_DIRTY', doc: 'Linux _PAGE_SAVED_DIRTY', where: 'any' },
  { bit: 59, width: 4, name: 'PK', doc: 'protection key', where: 'leaf' },
  { bit: 63, width: 1, name: 'XD', doc: 'execute-disable', where: 'any' },
];

/** One run: a Recording of `steps` steps with about `events` events. */
function makeRecording({ steps, events: eventTarget, keyframeEvery, pages, tlbSlots, pti, seed }) {
  const rand = rng(seed);
  const pick = (xs) => xs[Math.floor(rand() * xs.length)];
  const state = {};
  let touched = new Map();
  const set = (key, value) => {
    if (!touched.has(key)) touched.set(key, true);
    if (value === null) delete state[key];
    else state[key] = value;
  };

  // Kernel tables shared by every mm: PGD[256] → PUD 10 → PMD 12 (2 MiB direct map);
  // PGD[511] → PUD 11 → PMD 13 → PT 14 (kernel text, global); the PTI user copy gets PGD[510] → PUD 15 → PMD 16 → PT 17 (entry trampoline).
  set('pt:10:0', pte(12, P | RW | A));
  for (let i = 0; i < 512; i += 4) set(`pt:12:${i}`, pte(i * 512, P | RW | A | D | PS | G | XD));
  set('pt:11:510', pte(13, P | RW | A));
  set('pt:13:0', pte(14, P | RW | A));
  for (let i = 0; i < 24; i++) set(`pt:14:${i}`, pte(2000 + i, P | A | G));
  set('pt:15:0', pte(16, P | RW | A));
  set('pt:16:0', pte(17, P | RW | A));
  set('pt:17:0', pte(3000, P | A | G));

  /** An mm's user tables: PGD[0] → PUD → PMD → PT for text/heap; PGD[255] → ... for the stack. */
  const mms = new Map();
  let nextFrame = 100;
  function makeMm(id, tids, from) {
    const f = () => nextFrame++;
    const mm = { id, pgd: f(), userPgd: pti ? f() : null, pud: f(), pmd: f(), pt: f(), spud: f(), spmd: f(), spt: f(), pages: new Map() };
    const roots = [mm.pgd, ...(mm.userPgd ? [mm.userPgd] : [])];
    for (const root of roots) {
      set(`pt:${root}:0`, pte(mm.pud, P | RW | US | A));
      set(`pt:${root}:255`, pte(mm.spud, P | RW | US | A));
    }
    set(`pt:${mm.pgd}:256`, pte(10, P | RW | A));
    set(`pt:${mm.pgd}:511`, pte(11, P | RW | A));
    if (mm.userPgd) set(`pt:${mm.userPgd}:510`, pte(15, P | RW | A));
    set(`pt:${mm.pud}:0`, pte(mm.pmd, P | RW | US | A));
    set(`pt:${mm.pmd}:0`, pte(mm.pt, P | RW | US | A));
    set(`pt:${mm.spud}:511`, pte(mm.spmd, P | RW | US | A));
    set(`pt:${mm.spmd}:511`, pte(mm.spt, P | RW | US | A));
    for (let i = 16; i < 16 + pages; i++) {
      const flags = from ? (from.pages.get(i) & ~RW) : (i < 20 ? P | US | A : P | RW | US | A | XD);
      mm.pages.set(i, flags);
      set(`pt:${mm.pt}:${i}`, pte(from ? 500 + i : 500 + i + id * 50, flags));
    }
    if (from) for (const i of from.pages.keys()) if (i >= 20) {
      from.pages.set(i, from.pages.get(i) & ~RW);
      set(`pt:${from.pt}:${i}`, pte(500 + i + from.id * 50, from.pages.get(i)));
    }
    set(`pt:${mm.spt}:511`, pte(900 + id, P | RW | US | A | D | XD));
    mms.set(id, mm);
    publishMm(mm, tids);
    return mm;
  }
  function publishMm(mm, tids) {
    set(`mm:${mm.id}`, {
      id: mm.id, tids, tlbGen: mm.tlbGen ?? 1, pgd: mm.pgd, userPgd: mm.userPgd,
      vmas: [
        { start: '0x10000', end: '0x14000', perms: 'r-x', pkey: 0, name: '/bin/demo', shadowStack: false },
        { start: '0x14000', end: '0x18000', perms: 'rw-', pkey: 0, name: '[heap]', shadowStack: false },
        { start: '0x7ffffffff000', end: '0x800000000000', perms: 'rw-', pkey: 0, name: '[stack]', shadowStack: false },
      ],
    });
  }

  const cpus = [0, 1].map((n) => ({
    cpu: n, cpl: 0, cr3: hex16(3 << 12), pgd: 3, pcid: 0, copy: null, mm: null, pkru: '55555554', current: 0, mode: 'idle', ipis: 0, lazy: false,
  }));
  const tasks = new Map();
  const putTask = (t) => { tasks.set(t.tid, t); set(`task:${t.tid}`, { ...t }); };
  const putCpu = (c) => set(`cpu:${c.cpu}`, { ...c });
  const tlb = [new Map(), new Map()];
  const putTlb = (cpu, slot, e) => { if (e) tlb[cpu].set(slot, e); else tlb[cpu].delete(slot); set(`tlb:${cpu}:${slot}`, e ? { ...e } : null); };

  const mm1 = makeMm(1, [1]);
  putTask({ tid: 1, pid: 1, name: 'parent', state: 'running', cpu: 0, mm: 1, image: '/bin/demo', kernel: null });
  Object.assign(cpus[0], { current: 1, mm: 1, pgd: mm1.pgd, cr3: hex16((mm1.pgd << 12) | 1), pcid: 1, copy: 'kernel', mode: 'user', cpl: 3 });
  cpus.forEach(putCpu);

  const keyframes = [];
  const deltas = [];
  const stepViews = [];
  const events = [];
  const snapshot = () => ({ ...state });
  keyframes.push(snapshot());
  touched = new Map();

  const eventsPerStep = eventTarget / steps;
  const forkAt = Math.floor(steps * 0.05);
  const violationStep = Math.floor(steps * 0.8);
  let violation = null;

  for (let s = 1; s <= steps; s++) {
    const cpuN = tasks.has(2) && rand() < 0.5 ? 1 : 0;
    const cpu = cpus[cpuN];
    const tid = cpuN === 1 && tasks.has(2) ? 2 : 1;
    const task = tasks.get(tid);
    const mm = mms.get(task.mm);
    const first = events.length;
    const emit = (kind, type, text, on = cpuN) => events.push({ step: s, cpu: on, tid, type, kind, text });
    let what = 'user op';

    if (s === forkAt) {
      emit('syscall', 'syscall', 'fork()');
      const child = makeMm(2, [2], mm1);
      emit('fork', 'fork', `fork: task 2 in mm ${child.id}, parent's writable PTEs write-protected`);
      putTask({ tid: 2, pid: 2, name: 'child', state: 'runnable', cpu: 1, mm: 2, image: '/bin/demo', kernel: null });
      emit('flush', 'flush', 'flush_tlb_mm_range: the parent\'s PTEs went read-only');
      emit('ipi', 'ipi', 'TLB shootdown IPI to cpu 1', 1);
      what = 'kernel path';
    } else if (s === violationStep) {
      // A stale writable entry: the PTE went read-only, the flush IPI was lost.
      const page = 20;
      mm1.pages.set(page, mm1.pages.get(page) & ~RW);
      set(`pt:${mm1.pt}:${page}`, pte(500 + page + 50, mm1.pages.get(page)));
      putTlb(1, 7, {
        cpu: 1, slot: 7, va: `0x${(page * 4096).toString(16)}`, pageShift: 12, pfn: 570, pcid: 1, global: false,
        write: true, user: true, nx: true, dirty: true, pkey: 0, stale: 'the PTE is read-only',
      });
      emit('syscall', 'syscall', 'mprotect(0x14000, 0x1000, PROT_READ)');
      emit('flush', 'flush', 'flush_tlb_mm_range: cpu 1 skipped (lazy)');
      violation = { invariant: 'tlb-coherence', message: `cpu 1's TLB entry for 0x14000 grants W but the PTE is read-only`, step: s };
      what = 'kernel path';
    } else {
      let n = Math.max(0, Math.round(eventsPerStep + (rand() - 0.5) * 2 * Math.min(eventsPerStep, 2)));
      for (; n > 0; n--) {
        const r = rand();
        if (r < 0.3) emit('op', 'op', `op ${pick(['read', 'write'])} 0x${(0x10000 + Math.floor(rand() * pages) * 0x1000).toString(16)}`);
        else if (r < 0.45) {
          const slot = Math.floor(rand() * tlbSlots);
          const page = 16 + Math.floor(rand() * pages);
          const flags = mm.pages.get(page);
          putTlb(cpuN, slot, {
            cpu: cpuN, slot, va: `0x${(page * 4096).toString(16)}`, pageShift: 12, pfn: 500 + page + mm.id * 50, pcid: mm.id, global: false,
            write: (flags & RW) !== 0n, user: true, nx: (flags & XD) !== 0n, dirty: rand() < 0.3, pkey: 0, stale: null,
          });
          emit('tlb', 'tlb_fill', `TLB fill 0x${(page * 4096).toString(16)} → pfn ${500 + page + mm.id * 50} (slot ${slot})`);
        } else if (r < 0.55) {
          const page = 16 + Math.floor(rand() * pages);
          mm.pages.set(page, mm.pages.get(page) | A | (rand() < 0.5 ? D : 0n));
          set(`pt:${mm.pt}:${page}`, pte(500 + page + mm.id * 50, mm.pages.get(page)));
          emit('fault', 'page_fault', `#PF W U at 0x${(page * 4096).toString(16)}: wp_page_reuse made the PTE writable`);
        } else if (r < 0.7) {
          emit('syscall', 'syscall', `${pick(['getpid', 'write', 'read', 'mmap', 'munmap'])}()`);
          Object.assign(cpu, { cpl: 0, mode: 'syscall', copy: 'kernel' });
          putCpu(cpu);
        } else if (r < 0.78) {
          emit('cr3', 'cr3_write', `MOV to CR3: PGD frame ${mm.pgd}, PCID ${mm.id}`);
          Object.assign(cpu, { cpl: 3, mode: 'user', copy: pti ? 'user' : 'kernel', mm: mm.id, current: tid, pgd: pti ? mm.userPgd : mm.pgd, cr3: hex16(((pti ? mm.userPgd : mm.pgd) << 12) | mm.id | (pti ? 0x800 : 0)), pcid: mm.id | (pti ? 0x800 : 0) });
          putCpu(cpu);
        } else if (r < 0.84) {
          const slots = [...tlb[cpuN].keys()];
          if (slots.length) {
            const slot = pick(slots);
            emit('flush', 'tlb_flush', `INVLPG ${tlb[cpuN].get(slot).va}`);
            putTlb(cpuN, slot, null);
          }
        } else if (r < 0.88) emit('ipi', 'ipi', `flush IPI to cpu ${1 - cpuN}`, 1 - cpuN);
        else if (r < 0.92) emit('switch', 'switch', `context switch to task ${tid}`);
        else if (r < 0.95) emit('entry', 'entry', 'entry_SYSCALL_64');
        else if (r < 0.97) emit('signal', 'signal', 'SIGSEGV to task 2');
        else emit('other', 'other', 'timer tick');
      }
    }
    stepViews.push({ cpu: cpuN, tid, first, count: events.length - first, what });
    deltas.push([...touched.keys()].map((k) => [k, state[k] ?? null]));
    touched = new Map();
    if (s % keyframeEvery === 0) keyframes.push(snapshot());
  }

  return {
    format: 'isolab-see/1',
    scenario: { name: 'cow-lazy-tlb', file: 'scenarios/cow-lazy-tlb.yaml', question: 'Can a lazy-TLB CPU keep writing a page after fork write-protects it?' },
    machine: { cpus: 2, levels: 4, pcid: true, pti, kernel: { pti, pcid: true, lazy_tlb: true } },
    schedule: { text: Array.from({ length: Math.min(steps, 400) }, (_, i) => `${i % 2}:${i % 3 ? 'u' : 'k'}`).join(' '), policy: 'random', seed },
    steps,
    stepViews,
    events,
    keyframeEvery,
    keyframes,
    deltas,
    invariants: ['tlb-coherence', 'pti-isolation'],
    violation,
    passed: violation === null,
    finished: true,
    bits: BITS,
  };
}

const steps = Number(opts.steps);
const base = { steps, events: Number(opts.events), keyframeEvery: Number(opts.keyframe), pages: Math.min(496, Number(opts.pages)), tlbSlots: Number(opts.tlb) };
let out;
if (opts.compare) {
  const sides = [
    { name: 'pti', recording: makeRecording({ ...base, pti: true, seed: 1 }) },
    { name: 'nopti', recording: makeRecording({ ...base, pti: false, seed: 2 }) },
  ];
  // Align every 10th step of one side with a nearby step of the other; some ops ran on one side only.
  const rows = [];
  for (let k = 1; k * 10 <= steps; k++) rows.push({ op: `task 1 op ${k}`, steps: [k * 10, k % 7 === 0 ? null : Math.min(steps, k * 10 + (k % 3))] });
  out = { format: 'isolab-see-compare/1', sides, rows };
} else {
  out = makeRecording({ ...base, pti: true, seed: 1 });
}
process.stdout.write(JSON.stringify(out));
