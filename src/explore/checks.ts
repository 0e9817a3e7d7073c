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
 *    maps it (reclaim's rmap walk collects dirtiness from every mapping), until the kernel
 *    cleans it on purpose (MADV_FREE's pte_mkclean). fork's child copy is made from the value
 *    read before the write-protect, so it may be clean while the parent's PTE holds the bit.
 *  - `rw0_dirty`: on a CPU with `dirty_on_readonly: strict`, no user PTE outside a
 *    shadow-stack VMA is R/W=0 with D=1 (the encoding such a CPU reads as a shadow-stack page).
 *  - `pti_user_pgd`: under PTI no user page table maps a kernel page outside the shared set.
 *  - `debug_checks`: the kernel's own debug checks found nothing (with kernel.debug_vm).
 *
 * XXX: leaf entries only (TLB rights of upper levels are not compared); 4 KiB user pages only.
 */
import { PTE_D, PTE_P, PTE_RW, PTE_US, PTEH_XD } from '../hw/pte.js';
import { R_GLOBAL, R_USER, R_WRITE, R_XD } from '../hw/rights.js';
import type { IsolabEvent } from '../system.js';
import type { Kernel } from '../kernel/kernel.js';
import type { MmStruct } from '../kernel/mm.js';
import { PG_anon } from '../kernel/page.js';
import { pte_dirty, pte_pfn } from '../kernel/pgtable.js';
import { check_pti_user_pgd } from '../kernel/pti.js';
import { TASK_SIZE } from '../kernel/layout.js';
import { check_page_counts } from '../kernel/debug.js';

/** The built-in invariants, by name, with what each means. */
export const EXPLORE_INVARIANTS: Record<string, string> = {
  stale_tlb: 'No CPU keeps a translation more permissive than the page tables once the kernel has finished the change (its flush has returned).',
  lost_dirty: 'An anonymous page written by a user access has D or SavedDirty set in some PTE mapping it (where reclaim would look), until the kernel cleans it on purpose.',
  rw0_dirty: 'On a strict CPU no user PTE outside a shadow-stack VMA is R/W=0 with D=1.',
  pti_user_pgd: 'Under PTI no user page table maps a kernel page outside the PTI-shared set.',
  debug_checks: "The kernel's debug checks (kernel.debug_vm) found nothing.",
};

/** A broken invariant. */
export interface Violation {
  invariant: string;
  message: string;
}

/** Every live mm, by ctx_id. */
function liveMms(k: Kernel): Map<number, MmStruct> {
  const mms = new Map<number, MmStruct>();
  for (const t of k.tasks.values()) if (t.mm && t.state !== 'dead' && t.state !== 'zombie') mms.set(t.mm.ctx_id, t.mm);
  return mms;
}

/** The leaf PTE (lo, hi) mapping user address `va` in `mm`, or null when no PTE table covers it. */
function leafPte(k: Kernel, mm: MmStruct, va: number): [number, number] | null {
  const table = mm.pgtables.pteTable(va, false);
  if (table < 0) return null;
  const w = k.machine.mem.words[table];
  const i = Math.floor(va / 4096) % 512;
  return w ? [w[2 * i] | 0, w[2 * i + 1] | 0] : [0, 0];
}

export class Checker {
  private readonly k: Kernel;
  private readonly enabled: Set<string>;
  /** Anonymous frames user writes reached and the kernel has not cleaned since. */
  private readonly written = new Set<number>();
  private wasQuiet = true;
  private debugSeen = 0;

  constructor(k: Kernel, invariants: string[]) {
    this.k = k;
    this.enabled = new Set(invariants);
  }

  /** Follows the events the checks need (pte_mkclean). */
  onEvent(e: IsolabEvent): void {
    if (e.type === 'pte_mkclean') this.written.delete(e.pfn);
  }

  /** A user step wrote physical word keys `words` (pa / 8). */
  userWrote(words: number[]): void {
    const flags = this.k.pages.flags;
    for (const w of words) {
      const pfn = Math.floor(w / 512);
      if (flags[pfn] & PG_anon) this.written.add(pfn);
    }
  }

  /** After each step: the checks that run when the system has just become quiet, and the debug reports. */
  afterStep(): Violation | null {
    const k = this.k;
    if (this.enabled.has('debug_checks') && k.debugReports.length > this.debugSeen) {
      const r = k.debugReports[this.debugSeen];
      this.debugSeen = k.debugReports.length;
      return { invariant: 'debug_checks', message: r };
    }
    const quiet = this.quiet();
    const became = quiet && !this.wasQuiet;
    this.wasQuiet = quiet;
    return became ? this.quietChecks() : null;
  }

  /** At the end of an execution: every check once more, and the page counts. */
  atEnd(): Violation | null {
    const v = this.quietChecks();
    if (v) return v;
    if (this.enabled.has('debug_checks')) {
      const before = this.k.debugReports.length;
      check_page_counts(this.k, null);
      if (this.k.debugReports.length > before) return { invariant: 'debug_checks', message: this.k.debugReports[before] };
    }
    return null;
  }

  /** No running task is inside the kernel and no IPI waits: every flush started has returned. */
  private quiet(): boolean {
    for (const pc of this.k.percpu) {
      if (pc.ipis.length > 0) return false;
      const t = pc.current;
      if (t && t.kpath && t.kpathKind !== 'return') return false;
    }
    return true;
  }

  private quietChecks(): Violation | null {
    const e = this.enabled;
    return (
      (e.has('stale_tlb') ? this.staleTlb() : null) ??
      (e.has('lost_dirty') ? this.lostDirty() : null) ??
      (e.has('rw0_dirty') ? this.rw0Dirty() : null) ??
      (e.has('pti_user_pgd') ? this.ptiUserPgd() : null)
    );
  }

  private staleTlb(): Violation | null {
    const k = this.k;
    const mms = liveMms(k);
    for (const pc of k.percpu) {
      for (const en of pc.cpu.tlb.entries()) {
        if (en.rights & R_GLOBAL || en.pageShift !== 12 || en.laHi >= 0x8000) continue;
        const va = en.laHi * 2 ** 32 + en.laLo;
        if (va >= TASK_SIZE) continue;
        let mm: MmStruct | undefined;
        if (k.pcid) {
          const asid = (en.pcid & 0x7ff) - 1;
          if (asid < 0 || asid >= pc.ctx_id.length) continue;
          mm = mms.get(pc.ctx_id[asid]);
          if (!mm) continue;
          const loaded = pc.loaded_mm === mm && !pc.is_lazy;
          if (!loaded && pc.ctx_tlb_gen[asid] !== mm.tlb_gen) continue;
        } else {
          mm = pc.loaded_mm;
          if (pc.is_lazy || !mms.has(mm.ctx_id)) continue;
        }
        const pte = leafPte(k, mm, va);
        const why = this.morePermissive(en.rights, en.pfn, pte);
        if (why) return { invariant: 'stale_tlb', message: `CPU ${pc.id} keeps a TLB entry for ${hex(va)} (mm ${mm.ctx_id}, frame ${en.pfn}${en.rights & R_WRITE ? ', writable' : ''}) after the kernel finished changing it: ${why}` };
      }
    }
    return null;
  }

  private morePermissive(rights: number, pfn: number, pte: [number, number] | null): string | null {
    if (!pte || !(pte[0] & PTE_P)) return 'the PTE is not present';
    const ppfn = pte_pfn(pte[0], pte[1]);
    if (ppfn !== pfn) return `the PTE maps frame ${ppfn}`;
    if (rights & R_WRITE && !(pte[0] & PTE_RW)) return 'the PTE is read-only';
    if (rights & R_USER && !(pte[0] & PTE_US)) return 'the PTE is supervisor-only';
    if (!(rights & R_XD) && pte[1] & PTEH_XD) return 'the PTE is not executable';
    return null;
  }

  private lostDirty(): Violation | null {
    if (this.written.size === 0) return null;
    const k = this.k;
    // Each written frame: mapped by a dirty PTE somewhere (rmap would find it), or where it is mapped clean.
    const dirty = new Set<number>();
    const clean = new Map<number, string>();
    for (const mm of liveMms(k).values()) {
      for (const vma of mm.vmas.list) {
        for (let va = vma.vm_start; va < vma.vm_end; va += 4096) {
          const pte = leafPte(k, mm, va);
          if (!pte || !(pte[0] & PTE_P)) continue;
          const pfn = pte_pfn(pte[0], pte[1]);
          if (!this.written.has(pfn)) continue;
          if (pte_dirty(pte[0], pte[1])) dirty.add(pfn);
          else if (!clean.has(pfn)) clean.set(pfn, `mm ${mm.ctx_id}'s PTE for ${hex(va)}`);
        }
      }
    }
    for (const pfn of this.written) if (k.pages.refcount[pfn] === 0) this.written.delete(pfn);
    for (const [pfn, where] of clean) {
      if (!dirty.has(pfn)) return { invariant: 'lost_dirty', message: `frame ${pfn} was changed by a user write, but no PTE mapping it has D or SavedDirty (${where} is clean): the write is lost to reclaim` };
    }
    return null;
  }

  private rw0Dirty(): Violation | null {
    const k = this.k;
    if (k.machine.model.dirty_on_readonly !== 'strict') return null;
    for (const mm of liveMms(k).values()) {
      for (const vma of mm.vmas.list) {
        if (vma.shadowStack) continue;
        for (let va = vma.vm_start; va < vma.vm_end; va += 4096) {
          const pte = leafPte(k, mm, va);
          if (pte && pte[0] & PTE_P && !(pte[0] & PTE_RW) && pte[0] & PTE_D) {
            return { invariant: 'rw0_dirty', message: `mm ${mm.ctx_id}'s PTE for ${hex(va)} is R/W=0, D=1 outside a shadow-stack VMA: a strict CPU reads it as shadow-stack memory` };
          }
        }
      }
    }
    return null;
  }

  private ptiUserPgd(): Violation | null {
    const k = this.k;
    if (!k.pti) return null;
    const before = k.debugReports.length;
    for (const mm of liveMms(k).values()) check_pti_user_pgd(k, null, mm);
    if (k.debugReports.length === before) return null;
    const r = k.debugReports[before];
    k.debugReports.length = before;
    return { invariant: 'pti_user_pgd', message: r };
  }
}

function hex(v: number): string {
  return `0x${v.toString(16)}`;
}
