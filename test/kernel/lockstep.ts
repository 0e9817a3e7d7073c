/**
 * Lockstep runs: two racers, each a task on its own CPU about to run a stretch of its program,
 * driven through every interleaving of their steps within a preemption bound, and every
 * interleaving judged by what happened in memory.
 *
 * How it runs. A case boots a System in stepwise mode through the explorer's Execution, which
 * steps one CPU at a time with `System.stepCpu` and holds back a CPU whose lock wait failed
 * until a step writes what it waits on. Each racer is brought, one CPU at a time, to the first
 * operation of its stretch (the prefix, always the same). From there a depth-first search takes
 * every CPU that may run at each state (within the bound below); the first choice goes on with
 * the same boot, every other one replays the prefix and the path from a fresh boot (the model
 * has no snapshots). A racer whose stretch is over waits (its CPU runs again only to take an
 * IPI) until the other's is over too; then every CPU runs round-robin, one step at a time, to
 * the end, and the debug_vm page counts are checked.
 *
 * Which interleavings. Every interleaving, not one per Mazurkiewicz trace: the search does not
 * use the explorer's footprints, so what it checks does not lean on them. Two kernel paths have
 * tens of thousands of interleavings (51,564 for two read faults on one page when this was
 * written, more than 90,000 for two forks), at a few milliseconds each. So a case bounds the preemptions (switches away
 * from a CPU that could go on) and the search runs every interleaving with at most that many,
 * each taken just before a scheduling point: any step but one of the entry code, which touches
 * only its own CPU (preempting before it is the same as preempting after it, but for the last
 * one, which goes on into the handler). Switching when the running CPU waits, or has finished
 * its stretch, is free. TLB evictions are not among the choices.
 *
 * What is checked, in every complete interleaving:
 *  - every watched PTE (the pages named by `watch`, in every live mm) is read after every step,
 *    and each change is put down to the CPU and task whose step made it (a hardware A/D update
 *    during a walk on CPU c is CPU c's too);
 *  - each page_fault event at a watched address is held against the changes its task made to
 *    that PTE from the step it entered the kernel (the access that faulted), or from the step
 *    after its previous fault in the same kernel entry (a syscall's user access that faults
 *    twice), to the step that reported it. Meanings, from mm/memory.c (6.12): `zero-page` (do_anonymous_page, read):
 *    from none to a present, read-only, special entry for the zero page; `mapped`
 *    (do_anonymous_page, write): from none to a frame no other watched PTE maps, zero-filled
 *    when mapped, writable for a write; `copied` (wp_page_copy): from a read-only frame X to a
 *    writable frame Y != X, fresh, holding X's bytes when mapped, with a page_copy event X -> Y
 *    by the same task; `reused` (wp_page_reuse): from read-only to writable on the same frame;
 *    `spurious`, `backout` (the fault found the PTE changed and left it) and `signal`: no change
 *    beyond A and D, and a `backout` leaves no copy it made allocated;
 *  - each fork event's `ptes` is the number of present PTEs in the child's user page tables
 *    when fork's step ends (0 for a CLONE_VM child, which gets no page tables of its own);
 *  - the case's own checks (values loaded, signals) and the debug_vm reports (none).
 */
import { Execution, type Step } from '../../src/explore/execution.js';
import { formatSchedule } from '../../src/explore/schedule.js';
import { PTE_A, PTE_D, PTE_G, PTE_P, PTE_RW, PTE_SOFTW1 } from '../../src/hw/pte.js';
import type { Kernel } from '../../src/kernel/kernel.js';
import type { MmStruct } from '../../src/kernel/mm.js';
import type { KernelOptions } from '../../src/kernel/options.js';
import type { CpuModel } from '../../src/hw/features.js';
import type { Task } from '../../src/kernel/task.js';
import { OpTable, type CompiledScenario } from '../../src/scenario/compile.js';
import { hasWork, type IsolabEvent, type System } from '../../src/system.js';
import { OP_BYTES, type Program } from '../../src/user/program.js';
import { STEP_ENTRY } from '../../src/kernel/steps.js';
import { takes_ipi } from '../../src/sim/step.js';

/** _PAGE_SPECIAL is _PAGE_BIT_SOFTW1 (arch/x86/include/asm/pgtable_types.h): the zero page's entries carry it. */
const PAGE_SPECIAL = PTE_SOFTW1;
/** In a user PTE, G without P is _PAGE_PROTNONE: still pte_present. */
const PAGE_PROTNONE = PTE_G;
/** Error-code bit W of a page fault. */
const PF_W = 1 << 1;
const CLONE_VM = 0x100;

// ---------------------------------------------------------------------------------------------
// Cases.

/** A task, on a CPU, about to run a stretch of its program. */
export interface Racer {
  cpu: number;
  /** The function (`main`, `main.1.child` for the child of op 1, ...) and the index of the stretch's first operation. */
  fn: string;
  from: number;
  /** The stretch ends when this operation (default `from`) has completed, or the task is gone or stopped. */
  to?: number;
}

export interface LockstepCase {
  name: string;
  /** Started in order, each on its CPU. */
  processes: { program: Program; cpu: number }[];
  /** Brought to their start in this order (the later may need the earlier's prefix, e.g. a clone). */
  racers: Racer[];
  /** Variables of the racers whose pages are watched (each racer's value, in every live mm). */
  watch: string[];
  kernel?: Partial<KernelOptions>;
  /** CPU features and bugs, if not the default model's. */
  cpu?: Partial<CpuModel>;
  /** CPUs to boot, if more than the processes and racers use (a CPU no racer uses runs only after the window). */
  cpus?: number;
  /** At most this many preemptions per interleaving (switches away from a CPU that could go on), each before a scheduling point. */
  preemptions: number;
  /** The case's own check of one complete interleaving: a message, or null. */
  check?: (r: Run) => string | null;
}

// ---------------------------------------------------------------------------------------------
// PTEs as the hardware holds them.

export interface Pte {
  lo: number;
  hi: number;
}

export const pteNone = (p: Pte): boolean => p.lo === 0 && p.hi === 0;
export const ptePresent = (p: Pte): boolean => (p.lo & (PTE_P | PAGE_PROTNONE)) !== 0;
export const pteWritable = (p: Pte): boolean => (p.lo & PTE_RW) !== 0;
export const pteSpecial = (p: Pte): boolean => (p.lo & PAGE_SPECIAL) !== 0;
/** The frame of a present (not PROT_NONE) 4 KiB entry: bits 51:12. */
export const ptePfn = (p: Pte): number => (p.hi & 0xfffff) * 2 ** 20 + (p.lo >>> 12);
/** Only A and D differ, and only set: what a page walk may do to an entry. */
const adOnly = (a: Pte, b: Pte): boolean => a.hi === b.hi && ((a.lo ^ b.lo) & ~(PTE_A | PTE_D)) === 0 && (a.lo & ~b.lo) === 0;

export function describePte(p: Pte): string {
  if (pteNone(p)) return 'none';
  if (!ptePresent(p)) return `not present (${p.hi.toString(16)}:${(p.lo >>> 0).toString(16)})`;
  return `frame ${ptePfn(p)} ${pteWritable(p) ? 'RW' : 'RO'}${pteSpecial(p) ? ' special' : ''}${p.lo & PTE_A ? ' A' : ''}${p.lo & PTE_D ? ' D' : ''}`;
}

/** The leaf entry for user address `va` in `mm`, walking its page tables in physical memory (none where a table is missing). */
export function readPte(k: Kernel, mm: MmStruct, va: number): Pte {
  const mem = k.machine.mem;
  let table = mm.pgd;
  for (let level = k.levels; level > 1; level--) {
    const i = Math.floor(va / 2 ** (12 + 9 * (level - 1))) % 512;
    const lo = mem.readLo(table, i);
    if (!(lo & PTE_P)) return { lo: 0, hi: 0 };
    table = (mem.readHi(table, i) & 0xfffff) * 2 ** 20 + (lo >>> 12);
  }
  const i = Math.floor(va / 4096) % 512;
  return { lo: mem.readLo(table, i), hi: mem.readHi(table, i) };
}

/** Present leaf entries in the user half (PGD entries 0..255) of `mm`'s page tables. */
export function countPresentPtes(k: Kernel, mm: MmStruct): number {
  const mem = k.machine.mem;
  const walk = (table: number, level: number, last: number): number => {
    let n = 0;
    for (let i = 0; i < last; i++) {
      const lo = mem.readLo(table, i);
      const hi = mem.readHi(table, i);
      if (level === 1) {
        if (ptePresent({ lo, hi })) n++;
        continue;
      }
      if (lo & PTE_P) n += walk((hi & 0xfffff) * 2 ** 20 + (lo >>> 12), level - 1, 512);
    }
    return n;
  };
  return walk(mm.pgd, k.levels, 256);
}

function frameEquals(k: Kernel, a: number, b: number): boolean {
  const wa = k.machine.mem.frame(a);
  const wb = k.machine.mem.frame(b);
  if (!wa || !wb) return (!wa || wa.every((x) => x === 0)) && (!wb || wb.every((x) => x === 0));
  for (let i = 0; i < wa.length; i++) if (wa[i] !== wb[i]) return false;
  return true;
}

function frameZero(k: Kernel, pfn: number): boolean {
  const w = k.machine.mem.frame(pfn);
  return !w || w.every((x) => x === 0);
}

// ---------------------------------------------------------------------------------------------
// One run.

/** One step taken: by which CPU, for which task, and whether that task entered the kernel in it. */
export interface StepRecord {
  cpu: number;
  tid: number;
  entered: boolean;
}

/** A watched PTE changed in step `step`. */
export interface Change {
  step: number;
  ctx: number;
  va: number;
  old: Pte;
  now: Pte;
  /** The new entry maps a frame, not the zero page, that no other watched entry maps. */
  fresh: boolean;
  /** The new entry's frame was all zeroes when it appeared. */
  zeroed: boolean;
  /** The new entry's frame held the same bytes as the last frame this entry mapped before (through an empty entry, if so). */
  sameBytes: boolean;
}

export interface EventRecord {
  step: number;
  e: IsolabEvent;
  /** For a page_fault: the ctx_id of the faulting task's mm. */
  ctx?: number;
}

/** A page_fault event with what its task did to the PTE while handling it. */
export interface FaultRecord {
  step: number;
  event: Extract<IsolabEvent, { type: 'page_fault' }>;
  ctx: number;
  /** The step the task entered the kernel for this fault. */
  start: number;
  /** Its task's changes to the faulting address's PTE over [start, step]. */
  changes: Change[];
  /** page_copy events of its task over [start, step], with each destination's reference count when the fault was reported. */
  copies: { src: number; dst: number; refcount: number }[];
}

export class Run {
  readonly exec: Execution;
  readonly sys: System;
  readonly k: Kernel;
  readonly steps: StepRecord[] = [];
  readonly events: EventRecord[] = [];
  readonly changes: Change[] = [];
  readonly faults: FaultRecord[] = [];
  /** Each fork or clone: the PTEs its event reported copied, and the present PTEs counted in the child's own page tables when fork's step ended (0 for CLONE_VM). */
  readonly forks: { step: number; child: number; reported: number; counted: number; clone: boolean }[] = [];
  /** The racers' tids, in the case's order. */
  readonly tids: number[] = [];
  /** The step at which the interleaved part began and ended. */
  windowStart = -1;
  windowEnd = -1;
  /** Every watched PTE (by `ctx:va`) and every frame's reference count when the window ended. */
  endPtes = new Map<string, Pte>();
  endRefcounts: ArrayLike<number> = [];
  /** Watched addresses, from the racers' variables at the window's start. */
  vas: number[] = [];
  private readonly last = new Map<string, Pte>();
  /** The last frame each watched entry mapped. */
  private readonly lastFrame = new Map<string, number>();
  private readonly pendingForks: { child: number; reported: number; clone: boolean }[] = [];
  private readonly pendingFaults: EventRecord[] = [];
  private readonly stretchDone = new Set<number>();
  private readonly enteredAt = new Map<number, number>();
  /** The step each task's last page_fault was reported in: a later fault in the same kernel entry begins after it. */
  private readonly faultedAt = new Map<number, number>();

  constructor(readonly spec: LockstepCase, scenario: CompiledScenario) {
    this.exec = new Execution(scenario, { invariants: [], evictions: 0 });
    this.sys = this.exec.sys;
    this.k = this.sys.kernel;
    this.sys.events.subscribe((e) => this.onEvent(e));
  }

  private onEvent(e: IsolabEvent): void {
    const step = this.steps.length;
    if (e.type === 'page_fault') {
      const r: EventRecord = { step, e, ctx: this.k.tasks.get(e.tid)?.mm?.ctx_id };
      this.events.push(r);
      this.pendingFaults.push(r);
      return;
    }
    if (e.type === 'fork') this.pendingForks.push({ child: e.child, reported: e.ptes, clone: (e.flags & CLONE_VM) !== 0 });
    if (e.type === 'op' || e.type === 'fork' || e.type === 'page_copy' || e.type === 'signal' || e.type === 'jobctl' || e.type === 'syscall' || e.type === 'syscall_enter' || e.type === 'debug' || e.type === 'user_end' || e.type === 'reclaim') {
      this.events.push({ step, e });
    }
    if (e.type === 'op') {
      const i = this.spec.racers.findIndex((x, j) => this.tids[j] === e.record.tid && x.fn === e.record.fn && (x.to ?? x.from) === e.record.index);
      if (i >= 0) this.stretchDone.add(i);
    }
  }

  /**
   * Runs `item` (a CPU), records who took the step and what it changed. Its footprint is
   * recorded only inside the window (`footprint`), where the search needs it.
   */
  step(item: number, footprint = true): Step | null {
    const pc = this.k.percpu[item];
    const t = pc.current;
    const wasInKernel = t !== null && t.kpath !== null;
    let s: Step | null = null;
    if (footprint) s = this.exec.step(item);
    else this.exec.runner.stepCpu(item);
    const entered = t !== null && !wasInKernel && t.kpath !== null;
    const index = this.steps.length;
    this.steps.push({ cpu: item, tid: t ? t.tid : 0, entered });
    if (t && entered) this.enteredAt.set(t.tid, index);
    if (this.windowStart >= 0) this.observe(index);
    for (const f of this.pendingForks.splice(0)) {
      const child = this.k.tasks.get(f.child);
      const counted = f.clone || !child || !child.mm ? 0 : countPresentPtes(this.k, child.mm);
      this.forks.push({ step: index, child: f.child, reported: f.reported, counted, clone: f.clone });
    }
    for (const r of this.pendingFaults.splice(0)) this.noteFault(r);
    return s;
  }

  /** Reads every watched PTE of every live mm; records the changes the last step made. */
  private observe(step: number): void {
    const k = this.k;
    const now = new Map<string, { ctx: number; va: number; pte: Pte }>();
    for (const [ctx, mm] of this.liveMms()) for (const va of this.vas) now.set(`${ctx}:${va}`, { ctx, va, pte: readPte(k, mm, va) });
    for (const [key, { ctx, va, pte }] of now) {
      const old = this.last.get(key);
      this.last.set(key, pte);
      const pfn = ptePresent(pte) ? ptePfn(pte) : -1;
      const before = this.lastFrame.get(key);
      if (pfn >= 0) this.lastFrame.set(key, pfn);
      if (old === undefined || (old.lo === pte.lo && old.hi === pte.hi)) continue;
      let shared = false;
      for (const [other, x] of now) if (other !== key && ptePresent(x.pte) && ptePfn(x.pte) === pfn) shared = true;
      this.changes.push({
        step,
        ctx,
        va,
        old,
        now: pte,
        fresh: pfn >= 0 && pfn !== k.zero_pfn && !shared,
        zeroed: pfn >= 0 && frameZero(k, pfn),
        sameBytes: pfn >= 0 && before !== undefined && frameEquals(k, pfn, before),
      });
    }
  }

  /** The mms of live tasks, by ctx_id. */
  private liveMms(): Map<number, MmStruct> {
    const mms = new Map<number, MmStruct>();
    for (const t of this.k.tasks.values()) if (t.mm && !t.mm.dead && t.state !== 'dead' && t.state !== 'zombie') mms.set(t.mm.ctx_id, t.mm);
    return mms;
  }

  /**
   * A page_fault reported in the step just taken: what its task did to that PTE since it
   * entered the kernel, or since its previous fault ended when one kernel entry took several
   * (a syscall whose user accesses fault more than once).
   */
  private noteFault(r: EventRecord): void {
    const e = r.e as Extract<IsolabEvent, { type: 'page_fault' }>;
    const step = this.steps.length - 1;
    const entered = this.enteredAt.get(e.tid) ?? step;
    const previous = this.faultedAt.get(e.tid);
    const start = previous !== undefined && previous >= entered ? Math.min(previous + 1, step) : entered;
    this.faultedAt.set(e.tid, step);
    const va = Math.floor(Number(e.addr) / 4096) * 4096;
    const mine = (s: number): boolean => this.steps[s].tid === e.tid;
    const changes = this.changes.filter((c) => c.step >= start && c.step <= step && c.ctx === r.ctx && c.va === va && mine(c.step));
    const copies = this.events
      .filter((x) => x.step >= start && x.step <= step && x.e.type === 'page_copy' && x.e.tid === e.tid)
      .map((x) => {
        const pcp = x.e as Extract<IsolabEvent, { type: 'page_copy' }>;
        return { src: pcp.src, dst: pcp.dst, refcount: this.k.pages.refcount[pcp.dst] };
      });
    this.faults.push({ step, event: e, ctx: r.ctx ?? -1, start, changes, copies });
  }

  /** Whether racer `i`'s stretch is over: its last operation completed, or its task is gone or stopped (job control or a ptrace stop: it goes on, if at all, after the window). */
  racerDone(i: number): boolean {
    if (this.stretchDone.has(i)) return true;
    const t = this.k.tasks.get(this.tids[i]);
    return !t || t.state === 'dead' || t.state === 'zombie' || t.state === 'stopped' || t.state === 'traced';
  }

  /** The CPUs that may step now: a racer's CPU while its stretch lasts, any CPU with an IPI to take. */
  enabled(): number[] {
    const live = this.spec.racers.map((_, i) => !this.racerDone(i));
    if (!live.includes(true)) return [];
    return this.exec.enabled().filter((c) => c >= 0 && (this.spec.racers.some((x, i) => x.cpu === c && live[i]) || this.k.percpu[c].ipis.length > 0));
  }

  /** Runs CPU `cpu` until its current task is about to run op `from` of `fn` in user mode. */
  bringTo(r: Racer): void {
    const pc = this.k.percpu[r.cpu];
    for (let n = 0; n < 100_000; n++) {
      const t = pc.current;
      if (t && t.state === 'running' && !t.kpath && !pc.cpu.accessPending && t.image) {
        const f = t.image.byName.get(r.fn);
        if (f && t.pc === f.base + r.from * OP_BYTES) {
          this.tids.push(t.tid);
          return;
        }
      }
      if (!hasWork(pc)) break;
      this.step(r.cpu, false);
    }
    throw new Error(`${this.spec.name}: CPU ${r.cpu} never reached ${r.fn}[${r.from}]`);
  }

  /** Starts watching: the racers' variables name the pages. */
  beginWindow(): void {
    const vas = new Set<number>();
    for (const tid of this.tids) {
      const t = this.k.tasks.get(tid)!;
      for (const name of this.spec.watch) {
        const v = t.vars.get(name);
        if (v !== undefined) vas.add(Math.floor(Number(v) / 4096) * 4096);
      }
    }
    this.vas = [...vas];
    this.windowStart = this.steps.length;
    this.observe(-1);
  }

  /** After the window: every CPU in turn, one step each, until nothing is left; then the page-count check. */
  finish(): void {
    this.windowEnd = this.steps.length;
    for (const [ctx, mm] of this.liveMms()) for (const va of this.vas) this.endPtes.set(`${ctx}:${va}`, readPte(this.k, mm, va));
    this.endRefcounts = this.k.pages.refcount.slice();
    for (let round = 0; round < 200_000; round++) {
      let any = false;
      for (const pc of this.k.percpu) {
        if (!hasWork(pc)) continue;
        this.step(pc.id, false);
        any = true;
      }
      if (!any) break;
    }
    this.sys.run({ maxSteps: 0 });
  }

  /** The window's schedule (the CPUs chosen after the prefix), run-length encoded. */
  get schedule(): string {
    return formatSchedule(this.steps.slice(this.windowStart, this.windowEnd).map((s) => s.cpu));
  }

  /** A live or zombie task. */
  task(tid: number): Task | undefined {
    return this.k.tasks.get(tid);
  }
}

// ---------------------------------------------------------------------------------------------
// The judge.

/** A disagreement between what was reported and what happened: `kind` names it without the details that vary between interleavings. */
export interface Finding {
  kind: string;
  message: string;
}

/** Which outcome a fault's net change of its PTE, from `o` to `p`, reads as (for messages). */
function reading(k: Kernel, o: Pte, p: Pte): string {
  if (pteNone(o) && ptePresent(p)) return ptePfn(p) === k.zero_pfn ? 'zero-page' : 'mapped';
  if (ptePresent(o) && !pteWritable(o) && ptePresent(p) && pteWritable(p)) return ptePfn(p) === ptePfn(o) ? 'reused' : 'copied';
  return `${describePte(o)} -> ${describePte(p)}`;
}

/** What fault `f` reported against what its task did; null when they agree. */
export function judgeFault(k: Kernel, f: FaultRecord): Finding | null {
  const e = f.event;
  const what = `tid ${e.tid} on CPU ${e.cpu}: page_fault at 0x${e.addr.toString(16)} (${e.errorCode & PF_W ? 'write' : 'read'}) reported '${e.outcome}'`;
  const kernel = f.changes.filter((c) => !adOnly(c.old, c.now));
  const story = f.changes.length === 0 ? 'it left the PTE alone' : `it changed the PTE ${f.changes.map((c) => `${describePte(c.old)} -> ${describePte(c.now)} (step ${c.step})`).join(', ')}`;
  const first = kernel[0];
  const last = kernel[kernel.length - 1];
  const did = first ? reading(k, first.old, last.now) : 'nothing';
  const bad = (why: string, detail = ''): Finding => ({ kind: `'${e.outcome}' but ${why}`, message: `${what}, but ${why}${detail}; ${story}${did !== e.outcome ? ` (what it did reads as '${did}')` : ''}` });
  switch (e.outcome) {
    case 'zero-page': {
      if (!first) return bad('it did not map anything');
      if (!pteNone(first.old)) return bad('the PTE was not empty when it changed it');
      const p = last.now;
      if (!ptePresent(p) || ptePfn(p) !== k.zero_pfn || pteWritable(p) || !pteSpecial(p)) return bad('it did not leave a read-only special entry for the zero page', ` (frame ${k.zero_pfn})`);
      return null;
    }
    case 'mapped': {
      if (!first) return bad('it did not map anything');
      if (!pteNone(first.old)) return bad('the PTE was not empty when it changed it');
      const p = last.now;
      if (!ptePresent(p) || ptePfn(p) === k.zero_pfn || !last.fresh) return bad('it did not map a fresh frame');
      if (!last.zeroed) return bad('the new frame was not zero-filled when mapped');
      if (e.errorCode & PF_W && !pteWritable(p)) return bad('a write fault left it read-only');
      if (!f.copies.some((c) => c.src === -1 && c.dst === ptePfn(p))) return bad('no page_copy event zero-filled the new frame', ` (${ptePfn(p)})`);
      return null;
    }
    case 'copied': {
      if (!first) return bad('it did not change the PTE');
      const o = first.old;
      const p = last.now;
      if (!ptePresent(o) || pteWritable(o)) return bad('the PTE was not a present read-only entry when it changed it');
      if (!ptePresent(p) || !pteWritable(p) || ptePfn(p) === ptePfn(o) || !last.fresh) return bad('it did not leave a writable entry for a new frame');
      if (!last.sameBytes) return bad("the new frame did not hold the old frame's bytes when mapped", ` (${ptePfn(o)} -> ${ptePfn(p)})`);
      if (!f.copies.some((c) => c.src === ptePfn(o) && c.dst === ptePfn(p))) return bad('no page_copy event from the old frame to the new', ` (${ptePfn(o)} -> ${ptePfn(p)})`);
      return null;
    }
    case 'reused': {
      if (!first) return bad('it did not change the PTE');
      const o = first.old;
      const p = last.now;
      if (!ptePresent(o) || pteWritable(o)) return bad('the PTE was not a present read-only entry when it changed it');
      if (!ptePresent(p) || !pteWritable(p) || ptePfn(p) !== ptePfn(o)) return bad('it did not make the same frame writable');
      return null;
    }
    case 'swapin': {
      // do_swap_page: a swap entry (not empty, not present) became a present entry.
      if (!first) return bad('it did not change the PTE');
      if (pteNone(first.old) || ptePresent(first.old)) return bad('the PTE was not a swap entry when it changed it');
      if (!ptePresent(last.now)) return bad('it did not leave a present entry');
      return null;
    }
    case 'spurious':
    case 'backout':
    case 'signal':
      if (first) return bad('it changed more than the accessed and dirty bits');
      if (e.outcome === 'backout') {
        const kept = f.copies.filter((c) => c.refcount !== 0);
        if (kept.length > 0) return bad('its copy was still allocated', ` (frame ${kept.map((c) => c.dst).join(', ')})`);
      }
      return null;
    default:
      return first ? bad('it changed the PTE') : null;
  }
}

/** Every check of one complete interleaving. */
function judge(r: Run): Finding[] {
  const out: Finding[] = [];
  for (const f of r.faults) {
    if (f.step < r.windowStart) continue;
    if (!r.vas.includes(Math.floor(Number(f.event.addr) / 4096) * 4096)) continue;
    const bad = judgeFault(r.k, f);
    if (bad) out.push(bad);
  }
  for (const f of r.forks) {
    if (f.reported === f.counted) continue;
    if (f.clone) {
      out.push({ kind: 'clone(CLONE_VM) reported PTEs copied', message: `clone(CLONE_VM) of tid ${f.child} at step ${f.step} reported ${f.reported} PTEs copied; a CLONE_VM child shares its parent's page tables, none is copied` });
    } else {
      out.push({ kind: "fork's count of copied PTEs differs from the child's page tables", message: `fork of tid ${f.child} at step ${f.step} reported ${f.reported} PTEs copied; the child's page tables hold ${f.counted} present PTEs` });
    }
  }
  if (r.sys.debugReports.length > 0) out.push({ kind: 'debug_vm', message: `debug_vm: ${r.sys.debugReports.join('; ')}` });
  const own = r.spec.check ? r.spec.check(r) : null;
  if (own) out.push({ kind: 'program', message: own });
  return out;
}

// ---------------------------------------------------------------------------------------------
// The search.

/**
 * Whether CPU `cpu`'s next step is a scheduling point: anything but a step of the entry or exit
 * code, which touches only its CPU (kernel/steps.ts STEP_ENTRY) save the last, which goes on
 * into the handler up to its first step. Preempting before such a step is, but for that last
 * one, the same as preempting after it.
 */
function schedulingPoint(r: Run, cpu: number): boolean {
  const pc = r.k.percpu[cpu];
  const t = pc.current;
  if (takes_ipi(pc)) return true;
  if (!t || t.state !== 'running' || !t.kpath) return true;
  return !(t.nextStepPath === t.kpath && t.nextStep === STEP_ENTRY);
}

export interface LockstepResult {
  /** Complete interleavings. */
  interleavings: number;
  /** Preemptions not taken: past the bound, or before a step that is not a scheduling point. */
  cut: number;
  /** Steps run, replays included. */
  steps: number;
  /** The longest window, in steps. */
  longest: number;
  ms: number;
  /** Interleavings with at least one finding. */
  failed: number;
  /** Each kind of finding: how many interleavings had it, and the first, with its window schedule. */
  findings: Map<string, { count: number; first: string }>;
  /** How often each combination of the racers' fault outcomes came up. */
  outcomes: Map<string, number>;
}

function scenarioOf(c: LockstepCase): CompiledScenario {
  const cpus = Math.max(...c.processes.map((p) => p.cpu), ...c.racers.map((r) => r.cpu), (c.cpus ?? 0) - 1) + 1;
  return {
    name: c.name,
    system: { cpus, memory: 16 * 2 ** 20, cpu: c.cpu, kernel: { debug_vm: true, timeslice: 0, ...(c.kernel ?? {}) } },
    policy: 'round-robin',
    seed: 1,
    maxSteps: 1_000_000,
    processes: c.processes.map((p, i) => ({ name: `p${i}`, cpu: p.cpu, program: p.program, handlers: [] })),
    images: [],
    ops: new OpTable(),
    children: new OpTable(),
    threads: new Map(),
    end: { exit: [], memory: [], registers: [], ptes: [], invariants: [] },
    sides: [],
    params: {},
  };
}

/**
 * Runs case `c` under every interleaving of its racers' stretches within its preemption bound.
 * `onLeaf` sees each complete interleaving with the checks' findings.
 */
export function lockstep(c: LockstepCase, onLeaf?: (r: Run, findings: Finding[]) => void): LockstepResult {
  const t0 = performance.now();
  const scenario = scenarioOf(c);
  const res: LockstepResult = { interleavings: 0, cut: 0, steps: 0, longest: 0, ms: 0, failed: 0, findings: new Map(), outcomes: new Map() };
  const note = (f: Finding, where: string): void => {
    const x = res.findings.get(f.kind);
    if (x) x.count++;
    else res.findings.set(f.kind, { count: 1, first: `${f.message}\n    (${where})` });
  };
  const fresh = (path: number[]): Run => {
    const r = new Run(c, scenario);
    for (const x of c.racers) r.bringTo(x);
    r.beginWindow();
    for (const item of path) r.step(item);
    res.steps += r.steps.length;
    return r;
  };
  const path: number[] = [];
  /** One state: `last` took the step that led here; `used` preemptions so far. */
  const visit = (run: Run, last: number, used: number): void => {
    const enabled = run.enabled();
    if (enabled.length === 0) {
      leaf(run);
      return;
    }
    // The CPU that stepped last goes on first; switching away from it while it can go on is a
    // preemption, allowed (within the bound) only where its next step is a scheduling point.
    const order = enabled.includes(last) ? [last, ...enabled.filter((q) => q !== last)] : enabled;
    let first = true;
    for (const q of order) {
      const preempts = enabled.includes(last) && q !== last;
      if (preempts && (used >= c.preemptions || !schedulingPoint(run, last))) {
        res.cut++;
        continue;
      }
      const r = first ? run : fresh(path);
      first = false;
      r.step(q);
      res.steps++;
      path.push(q);
      visit(r, q, used + (preempts ? 1 : 0));
      path.pop();
    }
  };
  const leaf = (run: Run): void => {
    const stuck = run.spec.racers.map((_, i) => i).filter((i) => !run.racerDone(i));
    run.windowEnd = run.steps.length;
    res.longest = Math.max(res.longest, run.windowEnd - run.windowStart);
    if (stuck.length > 0) {
      res.failed++;
      note({ kind: 'deadlock', message: `racer(s) ${stuck.join(', ')} can never go on` }, `window schedule ${run.schedule}`);
      return;
    }
    res.interleavings++;
    const before = run.steps.length;
    run.finish();
    res.steps += run.steps.length - before;
    const key = run.tids.map((tid) => run.faults.filter((f) => f.event.tid === tid && f.step >= run.windowStart && run.vas.includes(Math.floor(Number(f.event.addr) / 4096) * 4096)).map((f) => f.event.outcome).join('+') || '-').join(' | ');
    res.outcomes.set(key, (res.outcomes.get(key) ?? 0) + 1);
    const bad = judge(run);
    if (bad.length > 0) res.failed++;
    const kinds = new Set<string>();
    for (const f of bad) {
      if (kinds.has(f.kind)) continue;
      kinds.add(f.kind);
      note(f, `interleaving ${res.interleavings}; window schedule after the prefix: ${run.schedule}`);
    }
    onLeaf?.(run, bad);
  };
  visit(fresh([]), -1, 0);
  res.ms = performance.now() - t0;
  return res;
}

/** The findings as a report: each kind, how often, and its first instance. */
export function describeFindings(c: LockstepCase, r: LockstepResult): string {
  const rows = [...r.findings].map(([kind, x]) => `- ${kind}: in ${x.count} of ${r.interleavings} interleavings; first:\n    ${x.first}`);
  return `${c.name}: ${r.failed} of ${r.interleavings} interleavings went wrong\n${rows.join('\n')}`;
}
