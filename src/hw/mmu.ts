/**
 * The page walk of 4- and 5-level paging (SDM Vol. 3A §4.5), the A/D updates of §4.8 and the
 * TLB fill, as a resumable state machine: each call of `step()` is one atomic step that touches
 * shared memory, either the read of one paging-structure entry or one locked A/D update
 * (DESIGN.md rule 2). The plain translator runs the steps to completion; the explorer can stop
 * between them and ask `footprint()` which physical word the next step touches.
 *
 * One walk loop serves every level and both paging modes, parameterised by the level (as in
 * TinyEMU's walker). An A/D update is a LOCK CMPXCHG against the value the walk read; if the
 * entry changed meanwhile the walk starts again from CR3, as a processor re-walks when its
 * locked update finds the entry no longer the one it used.
 *
 * Does not check canonicality or consult the TLB: the CPU does that before starting a walk.
 */
import { accessErrorCode, isWriteAccess, PF_P, PF_RSVD, R_DIRTY, R_GLOBAL, R_SHSTK, R_USER, R_WRITE, R_XD, ACCESS_NAMES } from './rights.js';
import { PTE_A, PTE_ADDR_1G, PTE_ADDR_2M, PTE_D, PTE_G, PTE_P, PTE_PS, PTE_RW, PTE_US, PTEH_ADDR, PTEH_XD, pteFrame, ptePkey } from './pte.js';
import { CR4_PGE, EFER_NXE } from './regs.js';
import type { Cpu } from './cpu.js';

/** Result codes of a step or an access: a physical address is >= 0. */
export const FAULT = -1;
export const PENDING = -2;

/** Why the walk runs. */
export const WalkMode = {
  /** An architectural access: check rights, set A/D, fill the TLB or raise #PF. */
  Access: 0,
  /**
   * `dirty_on_readonly: legacy`: a write hit a clean cached writable entry. Find the leaf and
   * set D *without* re-checking R/W, then finish the write with the cached translation.
   */
  DirtyAssist: 1,
  /** A side-effect-free look (views, invariants, transient loads): no A/D, no fill, no fault. */
  Probe: 2,
} as const;

const PHASE_IDLE = 0;
const PHASE_READ = 1;
const PHASE_AD = 2;

/** Reserved low-word bits of a 1 GiB leaf (address bits 29:13) and of a 2 MiB leaf (20:13). */
const RSVD_1G_LO = 0x3fffe000;
const RSVD_2M_LO = 0x001fe000;

/** Index into the paging structure of `level` (5 = PML5 ... 1 = PT) for linear address hi:lo. */
export function tableIndex(level: number, hi: number, lo: number): number {
  switch (level) {
    case 1:
      return (lo >>> 12) & 511;
    case 2:
      return (lo >>> 21) & 511;
    case 3:
      return ((hi & 0x7f) << 2) | (lo >>> 30);
    case 4:
      return (hi >>> 7) & 511;
    default:
      return (hi >>> 16) & 511;
  }
}

export class PageWalker {
  // The request.
  private hi = 0;
  private lo = 0;
  private kind = 0;
  private mode = 0;
  private dirtySlot = -1; // DirtyAssist: the TLB entry being completed
  private dirtyPa = 0;
  // Progress.
  private phase = PHASE_IDLE;
  private level = 0;
  private topLevel = 4;
  private tablePfn = 0;
  /** Entries read in the current pass. */
  depth = 0;
  /** Entry d of the pass, top level first: the frame of its table, its index, and its value as read (and as updated). */
  readonly entPfn = new Float64Array(5);
  readonly entIdx = new Int32Array(5);
  readonly entLo = new Int32Array(5);
  readonly entHi = new Int32Array(5);
  private adNext = -1;
  /** Bit d set: entry d of this pass was read with A=0. */
  private needA = 0;
  // What the walk has combined so far.
  private user = true;
  private writableAbove = true;
  private xd = false;
  // Outcome.
  /** Leaf page shift (12, 21, 30), frame of its first 4 KiB, cached rights (R_*), key. */
  leafShift = 0;
  leafPfn = 0;
  rights = 0;
  pkey = 0;
  /** Error code of a failed walk (FAULT), for probes. */
  errorCode = 0;
  reads = 0;
  restarts = 0;

  constructor(private readonly cpu: Cpu) {}

  /** Whether a walk is in progress. */
  get busy(): boolean {
    return this.phase !== PHASE_IDLE;
  }

  /** Starts a walk of hi:lo for access `kind` in `mode`. Returns PENDING: every walk has steps. */
  begin(hi: number, lo: number, kind: number, mode: number): number {
    this.hi = hi;
    this.lo = lo;
    this.kind = kind;
    this.mode = mode;
    this.reads = 0;
    this.restarts = 0;
    this.restart();
    return PENDING;
  }

  /** Starts a DirtyAssist walk completing a write through TLB slot `slot` at physical `pa`. */
  beginDirtyAssist(hi: number, lo: number, kind: number, slot: number, pa: number): number {
    this.dirtySlot = slot;
    this.dirtyPa = pa;
    return this.begin(hi, lo, kind, WalkMode.DirtyAssist);
  }

  /**
   * Performs the next atomic step. Returns PENDING while steps remain, else the physical
   * address (>= 0) or FAULT (the CPU's fault state says which; a probe leaves it untouched).
   */
  step(): number {
    return this.phase === PHASE_READ ? this.readEntries(true) : this.updateAccessedDirty();
  }

  /** Performs every remaining step; returns the physical address or FAULT. */
  run(): number {
    for (;;) {
      const r = this.phase === PHASE_READ ? this.readEntries(false) : this.updateAccessedDirty();
      if (r !== PENDING) return r;
    }
  }

  /** Physical address of the word the next step touches, and whether it is a locked RMW. */
  footprint(): { pa: number; locked: boolean } | null {
    if (this.phase === PHASE_READ) {
      return { pa: this.tablePfn * 4096 + tableIndex(this.level, this.hi, this.lo) * 8, locked: false };
    }
    if (this.phase === PHASE_AD) return { pa: this.entPfn[this.adNext] * 4096 + this.entIdx[this.adNext] * 8, locked: true };
    return null;
  }

  private restart(): void {
    const cpu = this.cpu;
    this.topLevel = cpu.pagingLevels;
    this.level = this.topLevel;
    this.tablePfn = Math.min(cpu.rootPfn, cpu.mem.frameCount) | 0;
    this.depth = 0;
    this.needA = 0;
    this.user = true;
    this.writableAbove = true;
    this.xd = false;
    this.phase = PHASE_READ;
  }

  /**
   * Steps: read the entry of the current level, then descend, one level per step, until the
   * leaf or a fault. With `single`, pause after the first step (the explorer's granularity);
   * without, keep going in this loop (the plain runner's), with the walk state in locals.
   */
  private readEntries(single: boolean): number {
    const cpu = this.cpu;
    const mem = cpu.mem;
    const frameCount = cpu.mem.frameCount;
    const reservedHi = cpu.reservedHi;
    const hi = this.hi;
    const lo = this.lo;
    let level = this.level;
    let pfn = this.tablePfn;
    let d = this.depth;
    let user = this.user;
    let writableAbove = this.writableAbove;
    let xd = this.xd;
    let needA = this.needA;
    let elo: number;
    let ehi: number;
    const entPfn = this.entPfn;
    const entIdx = this.entIdx;
    const entLo = this.entLo;
    const entHi = this.entHi;
    const firstDepth = d;
    const probe = this.mode === WalkMode.Probe;
    const fp = cpu.mem.fp;
    for (;;) {
      const index = tableIndex(level, hi, lo);
      if (fp) fp.read(pfn * 512 + index);
      const frame = mem.frame(pfn);
      if (frame) {
        elo = frame[index << 1] | 0;
        ehi = frame[(index << 1) | 1] | 0;
      } else {
        elo = ehi = pfn < frameCount ? 0 : -1; // never written: zeros; past RAM: all ones
      }
      const large = (elo & PTE_PS) !== 0;
      // Record the entry where a later step or a reader needs it: an A update, the leaf (D,
      // the fault path), a probe. An upper entry with A set is never touched again.
      if ((elo & PTE_A) === 0 || level === 1 || large || probe) {
        entPfn[d] = pfn;
        entIdx[d] = index;
        entLo[d] = elo;
        entHi[d] = ehi;
        if ((elo & PTE_A) === 0) needA |= 1 << d;
      }
      d++;
      const present = (elo & PTE_P) !== 0;
      if (
        !present ||
        (ehi & reservedHi) !== 0 ||
        (large && (level >= 4 || (level === 3 ? !cpu.model.pdpe1gb || (elo & RSVD_1G_LO) !== 0 : level === 2 && (elo & RSVD_2M_LO) !== 0)))
      ) {
        this.reads += d - firstDepth;
        this.depth = d;
        return this.fail(present ? PF_P | PF_RSVD : 0);
      }
      if ((elo & PTE_US) === 0) user = false;
      if (ehi & PTEH_XD) xd = true;
      if (level === 1 || large) break;
      if ((elo & PTE_RW) === 0) writableAbove = false;
      // The next table's frame, kept a small integer: every frame past installed memory reads
      // the same (all ones), so they all become the first one past it.
      pfn = (ehi & PTEH_ADDR) === 0 ? elo >>> 12 : Math.min(pteFrame(elo, ehi), frameCount) | 0;
      level--;
      if (single) {
        this.reads += d - firstDepth;
        this.level = level;
        this.tablePfn = pfn;
        this.depth = d;
        this.user = user;
        this.writableAbove = writableAbove;
        this.xd = xd;
        this.needA = needA;
        return PENDING;
      }
    }
    this.reads += d - firstDepth;
    this.level = level;
    this.depth = d;
    this.needA = needA;

    // The leaf: what a TLB entry for it would hold.
    this.leafShift = level === 1 ? 12 : level === 2 ? 21 : 30;
    this.leafPfn = pteFrame(level === 1 ? elo : level === 2 ? elo & PTE_ADDR_2M : elo & PTE_ADDR_1G, ehi & PTEH_ADDR);
    const leafWritable = (elo & PTE_RW) !== 0;
    const dirty = (elo & PTE_D) !== 0;
    this.rights =
      (user ? R_USER : 0) |
      (writableAbove && leafWritable ? R_WRITE : 0) |
      (xd && (cpu.efer & EFER_NXE) !== 0 ? R_XD : 0) |
      (dirty ? R_DIRTY : 0) |
      (writableAbove && !leafWritable && dirty ? R_SHSTK : 0) |
      ((elo & PTE_G) !== 0 && (cpu.cr4 & CR4_PGE) !== 0 ? R_GLOBAL : 0);
    this.pkey = ptePkey(ehi);

    if (this.mode === WalkMode.Probe) return this.finish(0);
    if (this.mode === WalkMode.Access) {
      const ec = cpu.permission(this.kind, this.rights, this.pkey);
      if (ec !== 0) return this.fail(ec);
    }
    if (this.needA === 0 && (dirty || !this.setsDirty())) return this.complete();
    this.adNext = this.nextUpdate(0);
    this.phase = PHASE_AD;
    return PENDING;
  }

  /** Step: one locked update setting A (and D in the leaf of a write) in entry `adNext`. */
  private updateAccessedDirty(): number {
    const cpu = this.cpu;
    const i = this.adNext;
    const want = this.bitsWanted(i);
    const pfn = this.entPfn[i];
    const index = this.entIdx[i];
    const lo = this.entLo[i];
    const hi = this.entHi[i];
    if (!cpu.mem.cmpxchg64(pfn, index, lo, hi, lo | want, hi)) {
      this.restarts++;
      this.restart();
      return PENDING;
    }
    this.entLo[i] = lo | want;
    this.needA &= ~(1 << i);
    if (cpu.events.on) {
      cpu.events.emit({
        type: 'ad_set', cpu: cpu.id, level: this.topLevel - i, pa: pfn * 4096 + index * 8,
        accessed: (want & PTE_A) !== 0, dirty: (want & PTE_D) !== 0, entryHi: hi >>> 0, entryLo: (lo | want) >>> 0,
      });
    }
    this.adNext = this.nextUpdate(i + 1);
    return this.adNext < 0 ? this.complete() : PENDING;
  }

  /**
   * A and D bits entry `i` still needs: A everywhere; D in the leaf of a write. Every permitted
   * write sets D, whatever the leaf's R/W (a supervisor write with CR0.WP=0 to an R/W=0 page
   * sets it: SDM §4.8, as kvm-unit-tests' x86/access.c expects). The update is a locked
   * compare-and-exchange of the entry as read: if it changed meanwhile the walk starts again and
   * re-checks the rights, so no walk sets D in an entry that no longer permits the write. (What
   * tells `strict` from `legacy` is the write through a clean cached entry: Cpu.dirtyAssist.)
   */
  private bitsWanted(i: number): number {
    let want = (this.needA >>> i) & 1 ? PTE_A : 0; // only entries read with A=0 are recorded as needing it
    if (i === this.depth - 1) {
      const lo = this.entLo[i];
      if ((lo & PTE_D) === 0 && this.setsDirty()) want |= PTE_D;
    }
    return want;
  }

  /** Whether this walk's access sets D in a leaf (any write it permits). */
  private setsDirty(): boolean {
    return isWriteAccess(this.kind);
  }

  private nextUpdate(from: number): number {
    for (let i = from; i < this.depth; i++) if (this.bitsWanted(i) !== 0) return i;
    return -1;
  }

  /** The walk succeeded and its updates are done: fill the TLB (or finish the dirty assist). */
  private complete(): number {
    const cpu = this.cpu;
    if (this.entLo[this.depth - 1] & PTE_D) this.rights |= R_DIRTY;
    if (this.mode === WalkMode.DirtyAssist) {
      const slot = this.dirtySlot;
      if (cpu.tlb.live(slot)) cpu.tlb.setRights(slot, cpu.tlb.rights[slot] | R_DIRTY);
      this.finish(0);
      return this.dirtyPa;
    }
    const pcid = cpu.pcid;
    cpu.tlb.fill(this.hi, this.lo, pcid, this.leafShift, this.leafPfn, this.rights, this.pkey);
    if (cpu.events.on) {
      cpu.events.emit({ type: 'tlb_fill', cpu: cpu.id, hi: this.hi >>> 0, lo: this.lo >>> 0, pcid, pageShift: this.leafShift, pfn: this.leafPfn, rights: this.rights, pkey: this.pkey });
    }
    this.finish(0);
    const offset = this.leafShift === 30 ? this.lo & 0x3fffffff : this.lo & ((1 << this.leafShift) - 1);
    return this.leafPfn * 4096 + offset;
  }

  /** The walk cannot complete: `base` is 0 (not present), P|RSVD, or a full rights error code. */
  private fail(base: number): number {
    const cpu = this.cpu;
    const ec = base === 0 || base === (PF_P | PF_RSVD) ? accessErrorCode(cpu, this.kind, base) : base;
    this.errorCode = ec;
    this.finish(ec);
    if (this.mode !== WalkMode.Probe) cpu.raisePageFault(this.hi, this.lo, ec);
    return FAULT;
  }

  private finish(errorCode: number): number {
    this.phase = PHASE_IDLE;
    this.dirtySlot = -1;
    const cpu = this.cpu;
    if (cpu.events.on && this.mode !== WalkMode.Probe) {
      cpu.events.emit({
        type: 'walk', cpu: cpu.id, hi: this.hi >>> 0, lo: this.lo >>> 0, access: ACCESS_NAMES[this.kind], levels: this.topLevel,
        reads: this.reads, restarts: this.restarts, outcome: errorCode === 0 ? 'ok' : 'fault', errorCode,
      });
    }
    return errorCode;
  }
}
