/**
 * The explorer's built-in invariants, checked on every execution it runs:
 *
 *  - `stale_tlb`: no CPU keeps a translation more permissive than the page tables once the
 *    kernel is done with the change (checked whenever every CPU has left the kernel and no
 *    flush IPI is pending: each flush the kernel started has then returned). An entry counts
 *    only where the CPU would use it without flushing first: the mm is loaded and not lazy, or
 *    its ASID's tlb_gen is current. More permissive: the PTE is gone, maps another frame, or
 *    lacks R/W, U/S or lacks XD where the entry has it.
 *  - `lost_dirty`: an anonymous page a user write reached has D or SavedDirty in some PTE that
 *    maps it (reclaim's rmap walk collects dirtiness from every mapping), or is itself marked
 *    dirty (PG_dirty), until the kernel cleans it on purpose (MADV_FREE's pte_mkclean). fork's child copy is made from the value
 *    read before the write-protect, so it may be clean while the parent's PTE holds the bit.
 *  - `rw0_dirty`: on a CPU with `dirty_on_readonly: strict`, no user PTE outside a
 *    shadow-stack VMA is R/W=0 with D=1 (the encoding such a CPU reads as a shadow-stack page).
 *  - `pti_user_pgd`: under PTI no user page table maps a kernel page outside the shared set.
 *  - `debug_checks`: the kernel's own debug checks found nothing (with kernel.debug_vm).
 *  - `read_stability`: a value a task read from private anonymous memory does not change
 *    without a store by a task of its address space or something that may discard it
 *    (scenario/read_stability.ts): a write lost to reclaim, whatever the kernel's bookkeeping.
 *
 * XXX: leaf entries only (TLB rights of upper levels are not compared); 4 KiB user pages only.
 */
import { R_WRITE } from '../hw/rights.js';
import { ReadStability } from '../scenario/read_stability.js';
import { type IsolabEvent, type MmInfo, type System } from '../system.js';

/** The built-in invariants, by name, with what each means. */
export const EXPLORE_INVARIANTS: Record<string, string> = {
  stale_tlb: 'No CPU keeps a translation more permissive than the page tables once the kernel has finished the change (its flush has returned).',
  lost_dirty: 'An anonymous page written by a user access has D or SavedDirty set in some PTE mapping it, or PG_dirty on the folio (where reclaim would look), until the kernel cleans it on purpose.',
  rw0_dirty: 'On a strict CPU no user PTE outside a shadow-stack VMA is R/W=0 with D=1.',
  pti_user_pgd: 'Under PTI no user page table maps a kernel page outside the PTI-shared set.',
  debug_checks: "The kernel's debug checks (kernel.debug_vm) found nothing.",
  read_stability: 'A value a task read from private anonymous memory does not change without a store by a task of its address space, or something that may discard it.',
};

/** A broken invariant. */
export interface Violation {
  invariant: string;
  message: string;
}

/** Every live address space, by id. */
function liveMms(sys: System): Map<number, MmInfo> {
  const mms = new Map<number, MmInfo>();
  for (const mm of sys.mms()) mms.set(mm.id, mm);
  return mms;
}

export class Checker {
  private readonly sys: System;
  private readonly enabled: Set<string>;
  /** Anonymous frames user writes reached and the kernel has not cleaned since. */
  private readonly written = new Set<number>();
  private wasQuiet = true;
  private debugSeen = 0;
  private readonly reads: ReadStability | null;
  /** The invariants broken so far in this execution (each reported once). */
  private readonly reported = new Set<string>();

  constructor(sys: System, invariants: string[]) {
    this.sys = sys;
    this.enabled = new Set(invariants);
    this.reads = this.enabled.has('read_stability') ? new ReadStability(sys) : null;
  }

  /** Follows the events the checks need (pte_mkclean; every operation and syscall for read_stability). */
  onEvent(e: IsolabEvent): void {
    if (e.type === 'pte_mkclean') this.written.delete(e.pfn);
    if (this.reads) this.reads.onEvent(e);
  }

  /** A user step wrote physical word keys `words` (pa / 8). */
  userWrote(words: number[]): void {
    for (const w of words) {
      const pfn = Math.floor(w / 512);
      if (this.sys.page(pfn).anon) this.written.add(pfn);
    }
  }

  /**
   * After each step: the checks that run when the system has just become quiet, and the debug
   * reports. Returns what broke at this step, each invariant once per execution (one already
   * reported is not checked again).
   */
  afterStep(): Violation[] {
    const out: Violation[] = [];
    if (this.reads?.violation && this.live('read_stability')) this.report(out, { invariant: 'read_stability', message: this.reads.violation });
    const reports = this.sys.debugReports;
    if (reports.length > this.debugSeen) {
      const r = reports[this.debugSeen];
      this.debugSeen = reports.length;
      if (this.live('debug_checks')) this.report(out, { invariant: 'debug_checks', message: r });
    }
    const quiet = this.quiet();
    const became = quiet && !this.wasQuiet;
    this.wasQuiet = quiet;
    if (became) this.quietChecks(out);
    return out;
  }

  /**
   * After steps that ran unchecked (Execution.step with a known footprint: a replay of steps
   * checked when first taken): the checks go on from the state reached, as if they had run on
   * each of those steps, without reporting what was reported then.
   */
  resync(): void {
    this.wasQuiet = this.quiet();
    this.debugSeen = this.sys.debugReports.length;
    if (this.reads?.violation) this.reported.add('read_stability');
  }

  /** At the end of an execution: every check once more, and the page counts. */
  atEnd(): Violation[] {
    const out: Violation[] = [];
    this.quietChecks(out);
    if (this.live('debug_checks')) {
      const found = this.sys.checkPageCounts();
      if (found.length > 0) this.report(out, { invariant: 'debug_checks', message: found[0] });
    }
    return out;
  }

  /** Whether invariant `name` is checked and has not broken yet in this execution. */
  private live(name: string): boolean {
    return this.enabled.has(name) && !this.reported.has(name);
  }

  private report(out: Violation[], v: Violation): void {
    this.reported.add(v.invariant);
    out.push(v);
  }

  /** No running task is inside the kernel and no IPI waits: every flush started has returned. */
  private quiet(): boolean {
    const sys = this.sys;
    for (let cpu = 0; cpu < sys.machine.cpus.length; cpu++) {
      const c = sys.cpuInfo(cpu);
      if (c.ipis > 0) return false;
      if (c.kernel !== null && c.kernel !== 'return') return false;
    }
    return true;
  }

  /** The checks of a quiet system, by invariant, in the order they run. */
  private static readonly QUIET_CHECKS: readonly [string, (c: Checker) => Violation | null][] = [
    ['stale_tlb', (c) => c.staleTlb()],
    ['lost_dirty', (c) => c.lostDirty()],
    ['rw0_dirty', (c) => c.rw0Dirty()],
    ['pti_user_pgd', (c) => c.ptiUserPgd()],
  ];

  /** The checks of a quiet system, each still live, into `out`. */
  private quietChecks(out: Violation[]): void {
    for (const [name, check] of Checker.QUIET_CHECKS) {
      if (!this.live(name)) continue;
      const v = check(this);
      if (v) this.report(out, v);
    }
  }

  private staleTlb(): Violation | null {
    const sys = this.sys;
    for (let cpu = 0; cpu < sys.machine.cpus.length; cpu++) {
      const judge = sys.tlbJudge(cpu);
      for (const en of sys.machine.cpus[cpu].tlb.entries()) {
        const j = judge(en);
        // An ASID behind its mm's tlb_gen is flushed before it runs again: not stale yet.
        if (!j || !j.why || j.pending) continue;
        const va = en.laHi * 2 ** 32 + en.laLo;
        return { invariant: 'stale_tlb', message: `CPU ${cpu} keeps a TLB entry for ${hex(va)} (mm ${j.mm}, frame ${en.pfn}${en.rights & R_WRITE ? ', writable' : ''}) after the kernel finished changing it: ${j.why}` };
      }
    }
    return null;
  }

  private lostDirty(): Violation | null {
    if (this.written.size === 0) return null;
    const sys = this.sys;
    // Each written frame: mapped by a dirty PTE somewhere (rmap would find it), or where it is mapped clean.
    const dirty = new Set<number>();
    const clean = new Map<number, string>();
    for (const mm of liveMms(sys).values()) {
      const tid = mm.tids[0];
      for (const vma of sys.maps(tid)) {
        for (let va = vma.start; va < vma.end; va += 4096) {
          const pte = sys.pte(tid, va);
          if (!pte || !pte.present) continue;
          if (!this.written.has(pte.pfn)) continue;
          if (pte.dirty || pte.saved_dirty) dirty.add(pte.pfn);
          else if (!clean.has(pte.pfn)) clean.set(pte.pfn, `mm ${mm.id}'s PTE for ${hex(va)}`);
        }
      }
    }
    for (const pfn of this.written) if (sys.page(pfn).refcount === 0) this.written.delete(pfn);
    for (const [pfn, where] of clean) {
      // The folio's own PG_dirty keeps the write too: shrink_folio_list writes a dirty folio back
      // (pageout) and try_to_unmap_one does not discard a dirty lazyfree one.
      if (!dirty.has(pfn) && !sys.page(pfn).dirty) return { invariant: 'lost_dirty', message: `frame ${pfn} was changed by a user write, but no PTE mapping it has D or SavedDirty (${where} is clean) and the folio is not PG_dirty: the write is lost to reclaim` };
    }
    return null;
  }

  private rw0Dirty(): Violation | null {
    const sys = this.sys;
    if (sys.machine.model.dirty_on_readonly !== 'strict') return null;
    for (const mm of liveMms(sys).values()) {
      const tid = mm.tids[0];
      for (const vma of sys.maps(tid)) {
        if (vma.shadowStack) continue;
        for (let va = vma.start; va < vma.end; va += 4096) {
          const pte = sys.pte(tid, va);
          if (pte && pte.present && !pte.rw && pte.dirty) {
            return { invariant: 'rw0_dirty', message: `mm ${mm.id}'s PTE for ${hex(va)} is R/W=0, D=1 outside a shadow-stack VMA: a strict CPU reads it as shadow-stack memory` };
          }
        }
      }
    }
    return null;
  }

  private ptiUserPgd(): Violation | null {
    const found = this.sys.checkPtiUserPgd(false);
    return found.length === 0 ? null : { invariant: 'pti_user_pgd', message: found[0] };
  }
}

function hex(v: number): string {
  return `0x${v.toString(16)}`;
}
