/**
 * One logical processor: its registers, its TLB, its page walker, and the instructions that
 * touch paging (MOV to CR0/CR3/CR4, WRMSR of the paging MSRs, INVLPG, INVPCID, WRPKRU, RDPKRU,
 * STAC, CLAC), XGETBV and XSETBV (XCR0; the XSAVE instructions are in xsave.ts, CPUID in
 * cpuid.ts), plus linear-address translation and data accesses through it.
 *
 * Simulated code never crashes the simulator: an instruction that faults returns false (or
 * FAULT) and leaves the exception in `faultVector`, `faultErrorCode` and, for #PF, CR2, as the
 * processor would deliver it. Only a caller's misuse of the API (an unknown access kind, a
 * length that is not a length) throws, as ArgumentError.
 *
 * The processor starts in IA-32e mode with paging on, as Linux's head_64.S leaves it: CR0 has
 * PE, PG and WP; CR4 has PAE (and LA57 when the model has 5-level paging); EFER has LME, LMA
 * and NXE (when the model has NX); CPL 0; PKRU 0, its XSAVE init value; XCR0 1 (x87 only, its
 * reset value). Everything else the
 * kernel switches on itself, through the instructions here.
 */
import { hex64, hi32, isCanonical, lo32, u64Bigint, type U64 } from './addr.js';
import type { HwEvent, FlushCause } from './events.js';
import type { CpuModel } from './features.js';
import { FAULT, PageWalker, PENDING, WalkMode } from './mmu.js';
import type { PhysMem } from './physmem.js';
import { PTEH_ADDR, PTEH_XD, pteFrame } from './pte.js';
import {
  CET_SH_STK_EN, CET_WR_SHSTK_EN, CR0_AM, CR0_CD, CR0_EM, CR0_ET, CR0_MP, CR0_NE, CR0_NW, CR0_PE, CR0_PG, CR0_TS, CR0_WP, CR3_HI_NOFLUSH, CR3_PCID_MASK,
  CR4_CET, CR4_FSGSBASE, CR4_LA57, CR4_OSFXSR, CR4_OSXMMEXCPT, CR4_OSXSAVE, CR4_PAE, CR4_PCIDE, CR4_PGE, CR4_PKE, CR4_PKS,
  CR4_PSE, CR4_SMAP, CR4_SMEP, CR4_UMIP, EFER_LMA, EFER_LME, EFER_NXE, EFER_SCE, MSR_EFER, MSR_FS_BASE, MSR_IA32_PKRS, MSR_KERNEL_GS_BASE, MSR_IA32_PL0_SSP,
  MSR_IA32_PL3_SSP, MSR_IA32_S_CET, MSR_IA32_U_CET, MSR_IA32_XSS, MSR_MISC_FEATURES_ENABLES, MSR_PLATFORM_INFO, MISC_FEATURES_CPUID_FAULT, PLATFORM_INFO_CPUID_FAULTING, RFLAGS_AC, X86_TRAP_GP, X86_TRAP_NP, X86_TRAP_PF, X86_TRAP_UD,
  XFEATURE_MASK_AVX, XFEATURE_MASK_CET_S, XFEATURE_MASK_CET_U, XFEATURE_MASK_PKRU, XFEATURE_MASK_SSE, XFEATURE_MASK_X87,
} from './regs.js';
import { Access, ACCESS_NAMES, accessFault, accessKind, isWriteAccess, PF_P, PF_RSVD, R_DIRTY, R_USER, type AccessKind, type AccessName, type AccessRegs } from './rights.js';
import { descAttributes, descBase, descLimit, DESC_L, DESC_P, DESC_S, DESC_TYPE_ACCESSED, DESC_TYPE_SHIFT, descType, farCodeCheck, farRetCheck, intGateCheck, iretCheck, larResult, lslResult, movSregCheck, SEL_TI, selectorErrorCode, selectorIsNull, SREG_CS, SREG_FS, SREG_GS, SREG_SS, SYS_TYPE_LDT, verrResult, verwResult, type SegmentRegister } from './segment.js';
import { Tlb } from './tlb.js';
import type { EventBus } from '../events.js';
import { ArgumentError, IsolabError } from '../errors.js';

/** The exception an instruction or access raised. */
export interface Fault {
  vector: number;
  errorCode: number;
  /** CR2 at delivery (the faulting linear address for #PF). */
  cr2: bigint;
}

/** What a side-effect-free probe of the page tables found. */
export interface Probe {
  /** False for a non-canonical address: nothing was walked. */
  canonical: boolean;
  /** Whether the walk reached a present leaf without a reserved bit. */
  found: boolean;
  /** When not found: 0 for a non-present entry, P|RSVD for a reserved bit (the #PF base code). */
  errorCode: number;
  /** Entries read, top level first: physical address of the entry and its value. */
  entries: { level: number; pa: number; value: bigint }[];
  /** For a found leaf: page shift, frame of its first 4 KiB, rights (R_* bits), key. */
  pageShift: number;
  pfn: number;
  rights: number;
  pkey: number;
}

const CR4_KNOWN = CR4_PSE | CR4_PAE | CR4_PGE | CR4_OSFXSR | CR4_OSXMMEXCPT | CR4_UMIP | CR4_LA57 | CR4_FSGSBASE | CR4_PCIDE | CR4_OSXSAVE | CR4_SMEP | CR4_SMAP | CR4_PKE | CR4_CET | CR4_PKS;
const CR0_KNOWN = CR0_PE | CR0_MP | CR0_EM | CR0_TS | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_NW | CR0_CD | CR0_PG;

/** The XCR0 bits a CPU model supports (CPUID.(EAX=0DH,ECX=0):EAX): x87 and SSE, and PKRU with PKU; none without XSAVE. */
export function xcr0Supported(m: CpuModel): number {
  return m.xsave ? XFEATURE_MASK_X87 | XFEATURE_MASK_SSE | (m.pku ? XFEATURE_MASK_PKRU : 0) : 0;
}

/** The IA32_XSS bits a CPU model supports (CPUID.(EAX=0DH,ECX=1):ECX): CET_U and CET_S with shadow stacks. */
export function xssSupported(m: CpuModel): number {
  return m.xsave && m.shstk ? XFEATURE_MASK_CET_U | XFEATURE_MASK_CET_S : 0;
}

/**
 * A segment register (or LDTR) takes selector `sel` with the hidden part of the descriptor
 * whose words are `lo` and `hi` (base 31:0, limit scaled by G, attributes), or, for a null
 * selector (`hi` null), an unusable one with base 0.
 */
function loadHidden(reg: SegmentRegister, sel: number, lo: number, hi: number | null): void {
  reg.sel = sel;
  reg.base = hi === null ? 0n : BigInt(descBase(lo, hi));
  reg.limit = hi === null ? 0 : descLimit(lo, hi);
  reg.attr = hi === null ? 0 : descAttributes(hi);
}

/** What LAR and LSL return for ZF=0 (the destination unchanged): not FAULT, not a value. */
export const ZF_CLEAR = -2;

/** log2 of the host-side fast path's entries per access kind. */
const FAST_BITS = 8;
const FAST_MASK = (1 << FAST_BITS) - 1;

export class Cpu implements AccessRegs {
  readonly id: number;
  readonly model: CpuModel;
  readonly mem: PhysMem;
  readonly events: EventBus<HwEvent>;
  readonly tlb: Tlb;
  readonly walker: PageWalker;
  private readonly prober: PageWalker;

  // ---- Registers ----------------------------------------------------------------------------
  // The seven the access check reads are accessors: a write that changes one bumps `regsGen`,
  // which keys the memo of access-check results (see `permission`) and the fast path.
  private rCpl = 0;
  private rCr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_PG;
  private rCr4 = 0;
  private rEfer = 0;
  private rRflags = 0x2;
  private rPkru = 0;
  private rPkrs = 0;
  /** Current privilege level: 0 (kernel) or 3 (user). */
  get cpl(): number { return this.rCpl; }
  set cpl(v: number) { if (this.rCpl !== v) { this.rCpl = v; this.regsChanged(); } }
  get cr0(): number { return this.rCr0; }
  set cr0(v: number) { if (this.rCr0 !== v) { this.rCr0 = v; this.regsChanged(); } }
  get cr4(): number { return this.rCr4; }
  set cr4(v: number) { if (this.rCr4 !== v) { this.rCr4 = v; this.regsChanged(); } }
  /** IA32_EFER. */
  get efer(): number { return this.rEfer; }
  set efer(v: number) { if (this.rEfer !== v) { this.rEfer = v; this.regsChanged(); } }
  /** RFLAGS; the model uses AC (bit 18). */
  get rflags(): number { return this.rRflags; }
  set rflags(v: number) { if (this.rRflags !== v) { this.rRflags = v; this.regsChanged(); } }
  /** PKRU (user protection keys). 0 is its XSAVE init value: every key allowed. */
  get pkru(): number { return this.rPkru; }
  set pkru(v: number) { if (this.rPkru !== v) { this.rPkru = v; this.regsChanged(); } }
  /** IA32_PKRS (supervisor protection keys). */
  get pkrs(): number { return this.rPkrs; }
  set pkrs(v: number) { if (this.rPkrs !== v) { this.rPkrs = v; this.regsChanged(); } }
  /** CR2, the last #PF linear address, as halves. */
  cr2Hi = 0;
  cr2Lo = 0;
  /** CR3 as stored (bit 63 of a MOV source is never stored), as halves. */
  cr3Hi = 0;
  cr3Lo = 0;
  /** IA32_U_CET and IA32_S_CET (low bits: SH_STK_EN, WR_SHSTK_EN, ENDBR_EN). */
  uCet = 0;
  sCet = 0;
  /** SSP, the current shadow-stack pointer, and the saved user/kernel SSPs. */
  ssp = 0n;
  pl3Ssp = 0n;
  pl0Ssp = 0n;
  /** XCR0, the user state components XSAVE manages (XSETBV at CPL 0; 1 at reset). */
  xcr0 = XFEATURE_MASK_X87;
  /** IA32_XSS, the supervisor state components only XSAVES manages. */
  xss = 0;
  /** MSR_MISC_FEATURES_ENABLES: bit 0, CPUID faulting on (CPUs with `cpuid_faulting`). */
  miscFeaturesEnables = 0;

  /**
   * The segment registers by Sreg number (ES, CS, SS, DS, FS, GS): selector and hidden part.
   * At reset of the model, null selectors with flat unusable hidden parts; the OS loads them.
   */
  readonly seg: SegmentRegister[] = [0, 1, 2, 3, 4, 5].map(() => ({ sel: 0, base: 0n, limit: 0, attr: 0 }));
  /** GDTR: the GDT's linear address and limit (bytes - 1). */
  gdtrBase = 0n;
  gdtrLimit = 0;
  /** IDTR: the IDT's linear address and limit (bytes - 1). */
  idtrBase = 0n;
  idtrLimit = 0;
  /** LDTR: selector and hidden part (base, limit); a null LDTR makes every LDT selector out of limits. */
  readonly ldtr: SegmentRegister = { sel: 0, base: 0n, limit: 0, attr: 0 };

  // ---- Derived state, kept in step with the registers ----------------------------------------
  /** PCID the TLB tags new entries with and matches against: CR3[11:0] when CR4.PCIDE=1, else 0. */
  pcid = 0;
  /** Frame of the top paging structure, from CR3[51:12]. */
  rootPfn = 0;
  /** 4, or 5 with CR4.LA57. */
  pagingLevels: number;
  /** High-word bits of a present entry that are reserved: address bits >= MAXPHYADDR, XD without NXE. */
  reservedHi = 0;

  // ---- Memo of access-check results, as KVM's update_permission_bitmask keeps one -----------
  /** Bumped whenever CPL, CR0, CR4, EFER, RFLAGS, PKRU or PKRS is written. */
  private regsGen = 1;
  /** By (kind << 10 | rights << 4 | pkey): the #PF error code `accessFault` gave... */
  private readonly permCode = new Int32Array(8 << 10);
  /** ... valid while this equals `regsGen`. */
  private readonly permGen = new Int32Array(8 << 10);

  // ---- The host-side fast path of TLB hits (the simulator's, not the SDM's) -------------------
  // QEMU's softmmu keeps one: a direct-mapped table, by access kind and the low bits of the
  // page number, of hits that passed the access check, each with its page's physical base. A
  // probe that finds its page there skips the set-associative search and the access check; it
  // still counts as a TLB hit. An entry is valid while the TLB slot it came from holds the same
  // fill (`Tlb.genOf`), no O(1) flush or rights update happened (`Tlb.epoch`), and the PCID and
  // the registers the access check reads (`regsGen`) are the same: the epoch below moves when
  // any of these three does. Never used while events are listened to (each probe is an event)
  // or when `fastPath` is off (tests compare both ways).
  /** Whether accesses may use the host-side cache (on by default; it changes no result). */
  fastPath = true;
  private fastEpoch = 1;
  private fastSeenTlb = -1;
  private fastSeenRegs = -1;
  private fastSeenPcid = -1;
  private readonly fastStamp = new Float64Array(8 << FAST_BITS);
  private readonly fastVlo = new Int32Array(8 << FAST_BITS);
  private readonly fastVhi = new Int32Array(8 << FAST_BITS);
  private readonly fastSlot = new Int32Array(8 << FAST_BITS);
  private readonly fastGen = new Float64Array(8 << FAST_BITS);
  private readonly fastBase = new Float64Array(8 << FAST_BITS);

  // ---- The last exception ---------------------------------------------------------------------
  faultVector = -1;
  faultErrorCode = 0;

  constructor(id: number, model: CpuModel, mem: PhysMem, events: EventBus<HwEvent>) {
    this.id = id;
    this.model = model;
    this.mem = mem;
    this.events = events;
    this.tlb = new Tlb(model.tlb);
    this.walker = new PageWalker(this);
    this.prober = new PageWalker(this);
    this.rCr4 = CR4_PAE | (model.la57 ? CR4_LA57 : 0);
    this.rEfer = EFER_SCE | EFER_LME | EFER_LMA | (model.nx ? EFER_NXE : 0);
    this.pagingLevels = model.la57 ? 5 : 4;
    this.updateReservedBits();
  }

  // ==== Translation and data accesses ==========================================================

  /**
   * Translates linear address hi:lo for an access of `kind` and returns the physical address,
   * or FAULT (-1) with the exception recorded (#GP for a non-canonical address, #PF with its
   * error code and CR2 otherwise). Runs every step of a walk to completion.
   */
  translate(hi: number, lo: number, kind: number): number {
    const r = this.accessStart(hi, lo, kind);
    return r === PENDING ? this.walker.run() : r;
  }

  /**
   * Translates a linear address for an access named or numbered `kind` (convenience around
   * `translate`). Returns the physical address, or null with `lastFault()` telling why.
   */
  translateAddress(addr: U64, kind: AccessKind | AccessName = Access.Read): number | null {
    const pa = this.translate(hi32(addr), lo32(addr), accessKind(kind));
    return pa < 0 ? null : pa;
  }

  /**
   * Begins an access: checks canonicality, probes the TLB and checks the cached rights. Returns
   * the physical address, FAULT, or PENDING when a walk must run; then call `accessStep()` until
   * it returns something else. `accessFootprint()` tells what the next step touches.
   */
  accessStart(hi: number, lo: number, kind: number): number {
    if (kind >>> 0 !== kind || kind > 7 || this.walker.busy) this.refuseAccessStart(kind);
    const tlb = this.tlb;
    let fast = -1;
    // The page number's 52 bits as the TLB tags them (low 32 here, the rest `hi >>> 12`); a non-canonical address is never cached.
    const vlo = (lo >>> 12) | (hi << 20);
    if (this.fastPath) {
      if (tlb.epoch !== this.fastSeenTlb || this.regsGen !== this.fastSeenRegs || this.pcid !== this.fastSeenPcid) this.fastForget();
      fast = (kind << FAST_BITS) | (vlo & FAST_MASK);
      if (
        !this.events.on &&
        this.fastStamp[fast] === this.fastEpoch &&
        this.fastVlo[fast] === vlo &&
        this.fastVhi[fast] === hi >>> 12 &&
        tlb.genOf(this.fastSlot[fast]) === this.fastGen[fast]
      ) {
        tlb.hits++;
        return this.fastBase[fast] + (lo & 0xfff);
      }
    }
    if (!isCanonical(hi, this.pagingLevels === 5)) return this.raise(X86_TRAP_GP, 0);
    const slot = tlb.lookup(hi, lo, this.pcid);
    if (slot < 0) {
      if (this.events.on) this.emitProbe(hi, lo, kind, -1);
      return this.walker.begin(hi, lo, kind, WalkMode.Access);
    }
    if (this.events.on) this.emitProbe(hi, lo, kind, slot);
    const rights = tlb.rights[slot];
    const ec = this.permission(kind, rights, tlb.pkey[slot]);
    if (ec !== 0) {
      this.raisePageFault(hi, lo, ec);
      return FAULT;
    }
    if ((rights & R_DIRTY) === 0 && isWriteAccess(kind)) return this.dirtyAssist(hi, lo, kind, slot);
    const pa = tlb.physical(slot, lo);
    if (fast >= 0) this.fastRemember(fast, vlo, hi >>> 12, slot, pa - (lo & 0xfff));
    return pa;
  }

  /** The fast path's entries all become invalid: the TLB's epoch, the access-check registers or the PCID moved. */
  private fastForget(): void {
    this.fastEpoch++;
    this.fastSeenTlb = this.tlb.epoch;
    this.fastSeenRegs = this.regsGen;
    this.fastSeenPcid = this.pcid;
  }

  /** Records in fast-path entry `fast` a hit on TLB `slot` that passed the access check: the page's tag (`vlo`, `vhi`) and its physical base. */
  private fastRemember(fast: number, vlo: number, vhi: number, slot: number, base: number): void {
    this.fastStamp[fast] = this.fastEpoch;
    this.fastVlo[fast] = vlo;
    this.fastVhi[fast] = vhi;
    this.fastSlot[fast] = slot;
    this.fastGen[fast] = this.tlb.genOf(slot);
    this.fastBase[fast] = base;
  }

  /** Throws the error `accessStart` owes a caller for an unknown `kind` or an access already under way. */
  private refuseAccessStart(kind: number): never {
    if (this.walker.busy) throw new IsolabError('EBUSY', `cpu ${this.id}: an access is still in progress; finish it with accessStep()`);
    throw new ArgumentError('kind', `unknown access kind ${kind}; expected 0..7 (Access)`);
  }

  /**
   * A write hit a clean cached entry: the processor must set D in the PTE first. A `strict` CPU
   * drops the entry and walks again, re-checking R/W; a `legacy` one sets D without re-checking.
   */
  private dirtyAssist(hi: number, lo: number, kind: number, slot: number): number {
    if (this.model.dirty_on_readonly === 'strict') {
      this.tlb.invalidateSlot(slot);
      if (this.events.on) this.emit({ type: 'tlb_flush', cpu: this.id, cause: 'dirty_assist', pcid: this.pcid, global: false, hi: hi >>> 0, lo: lo >>> 0 });
      return this.walker.begin(hi, lo, kind, WalkMode.Access);
    }
    return this.walker.beginDirtyAssist(hi, lo, kind, slot, this.tlb.physical(slot, lo));
  }

  /** Emits the TLB probe's outcome: a hit on `slot`, or a miss when slot < 0. */
  private emitProbe(hi: number, lo: number, kind: number, slot: number): void {
    if (slot < 0) this.emit({ type: 'tlb_miss', cpu: this.id, hi: hi >>> 0, lo: lo >>> 0, access: ACCESS_NAMES[kind] });
    else this.emit({ type: 'tlb_hit', cpu: this.id, hi: hi >>> 0, lo: lo >>> 0, access: ACCESS_NAMES[kind], pageShift: this.tlb.pageShift(slot) });
  }

  /**
   * An access begun by `accessStart` still has page-walk steps to run: the CPU is inside an
   * instruction, not at an instruction boundary, where alone it takes interrupts (SDM Vol. 3A
   * §6.6). `translate`, `read` and `write` never leave one pending.
   */
  get accessPending(): boolean {
    return this.walker.busy;
  }

  /** Runs the next step of the access begun by `accessStart`; throws if none is in progress. */
  accessStep(): number {
    if (!this.walker.busy) throw new IsolabError('EIDLE', `cpu ${this.id}: no access in progress; begin one with accessStart()`);
    return this.walker.step();
  }

  /** The physical word the next step of the access in progress touches, or null. */
  accessFootprint(): { pa: number; locked: boolean } | null {
    return this.walker.footprint();
  }

  /**
   * Reads `length` bytes at linear address `addr` as access `kind` (default: a data read at the
   * current CPL). Translates every page the range covers before reading any. Returns the bytes,
   * or null with the exception recorded.
   */
  read(addr: U64, length: number, kind: AccessKind | AccessName = Access.Read): Uint8Array | null {
    const pieces = this.translateRange(addr, length, accessKind(kind));
    if (!pieces) return null;
    const out = new Uint8Array(length);
    for (let i = 0, at = 0; i < pieces.length; i += 2) {
      out.set(this.mem.readBytes(pieces[i], pieces[i + 1]), at);
      at += pieces[i + 1];
    }
    return out;
  }

  /** Writes `data` at linear address `addr` as access `kind` (default: a data write). Returns false on an exception. */
  write(addr: U64, data: Uint8Array, kind: AccessKind | AccessName = Access.Write): boolean {
    if (!(data instanceof Uint8Array)) throw new ArgumentError('data', 'expected a Uint8Array of the bytes to write');
    const pieces = this.translateRange(addr, data.length, accessKind(kind));
    if (!pieces) return false;
    for (let i = 0, at = 0; i < pieces.length; i += 2) {
      this.mem.writeBytes(pieces[i], data.subarray(at, at + pieces[i + 1]));
      at += pieces[i + 1];
    }
    return true;
  }

  /** Reads a little-endian 64-bit value, or null on an exception. */
  readU64(addr: U64, kind: AccessKind | AccessName = Access.Read): bigint | null {
    const b = this.read(addr, 8, kind);
    return b ? new DataView(b.buffer).getBigUint64(0, true) : null;
  }

  /** Writes a little-endian 64-bit value; false on an exception. */
  writeU64(addr: U64, value: bigint, kind: AccessKind | AccessName = Access.Write): boolean {
    if (typeof value !== 'bigint') throw new ArgumentError('value', `${String(value)} is not a bigint`);
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, value), true);
    return this.write(addr, b, kind);
  }

  /** Translates each page piece of [addr, addr+length): [pa, len, pa, len, ...], or null on a fault. */
  private translateRange(addr: U64, length: number, kind: number): number[] | null {
    if (!Number.isInteger(length) || length < 1 || length > 1 << 20) throw new ArgumentError('length', `${length} is not a length from 1 to 1 MiB`);
    let hi = hi32(addr);
    let lo = lo32(addr);
    const pieces: number[] = [];
    for (let left = length; left > 0; ) {
      const n = Math.min(left, 4096 - (lo & 0xfff));
      const pa = this.translate(hi, lo, kind);
      if (pa < 0) return null;
      pieces.push(pa, n);
      left -= n;
      lo = (lo + n) >>> 0;
      if (lo < n) hi = (hi + 1) >>> 0; // carry into bits 63:32
    }
    return pieces;
  }

  /**
   * A transient (speculative) user load of `length` bytes at `addr`, as Meltdown uses: no
   * exception, no A/D update, no TLB fill. Finds the translation in the TLB or, failing that, in
   * the page tables of the current CR3. Returns the bytes when the translation is present and
   * either a user read is allowed or the CPU has the `meltdown` bug and only U/S forbids it;
   * else null. XXX: Meltdown-PK (keys ignored transiently) and cache state are not modelled.
   */
  transientRead(addr: U64, length: number): Uint8Array | null {
    const hi = hi32(addr);
    const lo = lo32(addr);
    if (!Number.isInteger(length) || length < 1 || length > 4096 - (lo & 0xfff)) {
      throw new ArgumentError('length', `${length} must be 1..${4096 - (lo & 0xfff)} (one page)`);
    }
    let pa = -1;
    let rights = 0;
    let pkey = 0;
    if (isCanonical(hi, this.pagingLevels === 5)) {
      const slot = this.tlb.find(hi, lo, this.pcid);
      if (slot >= 0) {
        pa = this.tlb.physical(slot, lo);
        rights = this.tlb.rights[slot];
        pkey = this.tlb.pkey[slot];
      } else {
        const w = this.prober;
        w.begin(hi, lo, Access.Read, WalkMode.Probe);
        if (w.run() !== FAULT) {
          pa = w.leafPfn * 4096 + (w.leafShift === 30 ? lo & 0x3fffffff : lo & ((1 << w.leafShift) - 1));
          rights = w.rights;
          pkey = w.pkey;
        }
      }
    }
    let allowed = false;
    let leaked = false;
    if (pa >= 0) {
      const asUser: AccessRegs = { cpl: 3, cr0: this.cr0, cr4: this.cr4, efer: this.efer, rflags: this.rflags, pkru: this.pkru, pkrs: this.pkrs };
      allowed = accessFault(asUser, Access.Read, rights, pkey) === 0;
      // Meltdown: the U/S check comes too late to stop the transient load, so a supervisor page
      // leaks when nothing but U/S forbids the read (were the page a user page, it would pass).
      leaked = !allowed && this.model.meltdown && accessFault(asUser, Access.Read, rights | R_USER, pkey) === 0;
    }
    const returned = allowed || leaked;
    if (this.events.on) this.emit({ type: 'transient_read', cpu: this.id, hi, lo, length, returned, leaked });
    return returned ? this.mem.readBytes(pa, length) : null;
  }

  /**
   * Walks the current page tables for `addr` without side effects (no A/D update, fill, fault,
   * event or counter): what a fresh walk would find, for views, invariants and tests.
   */
  probe(addr: U64): Probe {
    const hi = hi32(addr);
    const lo = lo32(addr);
    const none: Probe = { canonical: false, found: false, errorCode: 0, entries: [], pageShift: 0, pfn: 0, rights: 0, pkey: 0 };
    if (!isCanonical(hi, this.pagingLevels === 5)) return none;
    const w = this.prober;
    w.begin(hi, lo, Access.Read, WalkMode.Probe);
    const found = w.run() !== FAULT;
    const entries = [];
    for (let i = 0; i < w.depth; i++) {
      const value = (BigInt(w.entHi[i] >>> 0) << 32n) | BigInt(w.entLo[i] >>> 0);
      entries.push({ level: this.pagingLevels - i, pa: w.entPfn[i] * 4096 + w.entIdx[i] * 8, value });
    }
    if (!found) return { ...none, canonical: true, errorCode: w.errorCode & (PF_P | PF_RSVD), entries };
    return { canonical: true, found, errorCode: 0, entries, pageShift: w.leafShift, pfn: w.leafPfn, rights: w.rights, pkey: w.pkey };
  }

  /**
   * `accessFault(this, kind, rights, pkey)`, memoised per register state: the error code the
   * access would raise on a translation with these cached rights, or 0 if it is allowed.
   */
  permission(kind: number, rights: number, pkey: number): number {
    const i = (kind << 10) | (rights << 4) | pkey;
    if (this.permGen[i] === this.regsGen) return this.permCode[i];
    const ec = accessFault(this, kind, rights, pkey);
    this.permCode[i] = ec;
    this.permGen[i] = this.regsGen;
    return ec;
  }

  private regsChanged(): void {
    this.regsGen = (this.regsGen + 1) | 0;
    if (this.regsGen === 0) {
      this.permGen.fill(0);
      this.regsGen = 1;
    }
  }

  // ==== Exceptions =============================================================================

  /**
   * Delivers #PF: CR2 = hi:lo, the error code recorded, and the TLB entries for that page
   * dropped. The SDM requires the current PCID's entries to go; it is silent on global ones,
   * which the model drops too (as INVLPG would), so a stale global entry cannot fault forever.
   */
  raisePageFault(hi: number, lo: number, errorCode: number): void {
    this.cr2Hi = hi >>> 0;
    this.cr2Lo = lo >>> 0;
    this.tlb.invalidatePage(hi, lo, this.pcid);
    if (this.events.on) this.emit({ type: 'tlb_flush', cpu: this.id, cause: 'page_fault', pcid: this.pcid, global: true, hi: hi >>> 0, lo: lo >>> 0 });
    this.raise(X86_TRAP_PF, errorCode);
  }

  /**
   * Raises a fault an instruction's own checks found outside the MMU (#UD, #GP, #CP: CALL, RET
   * and WRSS decide these from CR4.CET and IA32_U_CET), for the OS to read with lastFault().
   */
  raiseException(vector: number, errorCode = 0): void {
    this.raise(vector, errorCode);
  }

  /** Records an exception; returns FAULT so callers can `return this.raise(...)`. */
  private raise(vector: number, errorCode: number): number {
    this.faultVector = vector;
    this.faultErrorCode = errorCode;
    if (this.events.on) {
      const pf = vector === X86_TRAP_PF;
      this.emit({ type: 'fault', cpu: this.id, vector, errorCode, hi: pf ? this.cr2Hi : 0, lo: pf ? this.cr2Lo : 0 });
    }
    return FAULT;
  }

  /** The last exception, or null if none was raised since `clearFault()`. */
  lastFault(): Fault | null {
    if (this.faultVector < 0) return null;
    return { vector: this.faultVector, errorCode: this.faultErrorCode, cr2: (BigInt(this.cr2Hi) << 32n) | BigInt(this.cr2Lo) };
  }

  /** Forgets the last exception (as the kernel's handler consumed it). */
  clearFault(): void {
    this.faultVector = -1;
    this.faultErrorCode = 0;
  }

  // ==== Control registers and MSRs =============================================================

  /**
   * MOV to CR0. #GP at CPL>0, for an unknown bit, for clearing PE or PG (the model stays in
   * 64-bit mode), for NW=1 with CD=0, and for clearing WP while CR4.CET=1. Changing WP needs no TLB invalidation
   * (SDM §4.10.4.1): cached rights hold R/W, and WP is applied at each access.
   */
  movToCr0(value: number): boolean {
    value >>>= 0;
    if (this.cpl !== 0 || (value & ~CR0_KNOWN) !== 0 || (value & CR0_PE) === 0 || (value & CR0_PG) === 0) return this.gp();
    if ((value & CR0_NW) !== 0 && (value & CR0_CD) === 0) return this.gp();
    if ((value & CR0_WP) === 0 && (this.cr4 & CR4_CET) !== 0) return this.gp();
    this.cr0 = value | 0;
    if (this.events.on) this.emit({ type: 'cr_write', cpu: this.id, reg: 'cr0', hi: 0, lo: value });
    return true;
  }

  /**
   * MOV to CR3 with the 64-bit source hi:lo. With CR4.PCIDE=1, bit 63 (NOFLUSH) is not stored:
   * when clear, the new PCID's non-global entries are dropped; when set, nothing is. With
   * PCIDE=0, every non-global entry (all tagged PCID 0) is dropped and bit 63 is reserved.
   * #GP at CPL>0 or for a set bit at or above MAXPHYADDR.
   */
  movToCr3(hi: number, lo: number): boolean {
    if (this.cpl !== 0) return this.gp();
    const pcide = (this.cr4 & CR4_PCIDE) !== 0;
    const noflush = pcide && (hi & CR3_HI_NOFLUSH) !== 0;
    const stored = pcide ? hi & ~CR3_HI_NOFLUSH : hi;
    if ((stored & ~this.physAddrHiMask()) !== 0) return this.gp();
    this.cr3Hi = stored >>> 0;
    this.cr3Lo = lo >>> 0;
    this.rootPfn = pteFrame(lo & ~0xfff, stored & PTEH_ADDR);
    this.pcid = pcide ? lo & CR3_PCID_MASK : 0;
    if (this.events.on) this.emit({ type: 'cr_write', cpu: this.id, reg: 'cr3', hi: this.cr3Hi, lo: this.cr3Lo, noflush });
    if (!noflush) {
      this.tlb.flushPcid(this.pcid);
      this.flushEvent('cr3', this.pcid, false);
    }
    return true;
  }

  /** MOV to CR3 from a 64-bit value (convenience). */
  setCr3(value: U64): boolean {
    return this.movToCr3(hi32(value, 'value'), lo32(value, 'value'));
  }

  /** CR3 as a 64-bit value. */
  get cr3(): bigint {
    return (BigInt(this.cr3Hi) << 32n) | BigInt(this.cr3Lo);
  }

  /**
   * MOV to CR4. #GP at CPL>0, for a bit the CPU model lacks or the model does not know, for
   * clearing PAE or changing LA57 in IA-32e mode, for setting PCIDE while CR3[11:0] != 0, and
   * for setting CET while CR0.WP=0. Flushes (SDM §4.10.4.1): a change of PGE, or PCIDE going
   * from 1 to 0, drops every entry including global ones; SMEP going from 0 to 1 drops every
   * entry of the current PCID, global ones filled under it included ("invalidates all TLB
   * entries ... for the current PCID", with no exception for globals, unlike MOV to CR3).
   */
  movToCr4(value: number): boolean {
    value >>>= 0;
    const old = this.cr4;
    if (this.cpl !== 0 || (value & ~this.cr4Supported()) !== 0) return this.gp();
    if ((value & CR4_PAE) === 0 || (value & CR4_LA57) !== (old & CR4_LA57)) return this.gp();
    if ((value & CR4_PCIDE) !== 0 && (old & CR4_PCIDE) === 0 && (this.cr3Lo & CR3_PCID_MASK) !== 0) return this.gp();
    if ((value & CR4_CET) !== 0 && (this.cr0 & CR0_WP) === 0) return this.gp();
    this.cr4 = value | 0;
    this.pcid = value & CR4_PCIDE ? this.cr3Lo & CR3_PCID_MASK : 0;
    if (this.events.on) this.emit({ type: 'cr_write', cpu: this.id, reg: 'cr4', hi: 0, lo: value });
    const changed = old ^ value;
    if ((changed & CR4_PGE) !== 0 || ((old & CR4_PCIDE) !== 0 && (value & CR4_PCIDE) === 0)) {
      this.tlb.flushAll();
      this.flushEvent('cr4', -1, true);
    } else if ((changed & CR4_SMEP) !== 0 && (value & CR4_SMEP) !== 0) {
      this.tlb.flushPcidWithGlobals(this.pcid);
      this.flushEvent('cr4', this.pcid, true);
    }
    return true;
  }

  /** CR4 bits this CPU model can set. */
  private cr4Supported(): number {
    const m = this.model;
    let bits = CR4_KNOWN;
    if (!m.la57) bits &= ~CR4_LA57;
    if (!m.pcid) bits &= ~CR4_PCIDE;
    if (!m.pge) bits &= ~CR4_PGE;
    if (!m.smep) bits &= ~CR4_SMEP;
    if (!m.smap) bits &= ~CR4_SMAP;
    if (!m.pku) bits &= ~CR4_PKE;
    if (!m.pks) bits &= ~CR4_PKS;
    if (!m.shstk) bits &= ~CR4_CET;
    if (!m.xsave) bits &= ~CR4_OSXSAVE;
    if (!m.fsgsbase) bits &= ~CR4_FSGSBASE;
    return bits >>> 0;
  }

  /**
   * WRMSR of an MSR the model implements: IA32_EFER (only NXE may change, and only on an NX
   * CPU), IA32_FS_BASE and IA32_KERNEL_GS_BASE (canonical), IA32_PKRS (PKS CPUs), IA32_U_CET, IA32_S_CET, IA32_PL0_SSP, IA32_PL3_SSP (shadow-stack
   * CPUs), MSR_MISC_FEATURES_ENABLES (bit 0 with CPUID faulting). #GP at CPL>0, for another MSR, or for a value the MSR cannot hold.
   */
  wrmsr(msr: number, value: bigint): boolean {
    u64Bigint(value, 'value');
    if (this.cpl !== 0) return this.gp();
    const lo = Number(value & 0xffffffffn) >>> 0;
    const hi = Number((value >> 32n) & 0xffffffffn) >>> 0;
    const m = this.model;
    switch (msr) {
      case MSR_EFER: {
        const fixed = EFER_LME | EFER_LMA; // the model stays in IA-32e mode
        if (hi !== 0 || (lo & ~(fixed | EFER_SCE | EFER_NXE)) !== 0 || (lo & fixed) !== fixed || (!m.nx && lo & EFER_NXE)) return this.gp();
        this.efer = lo;
        this.updateReservedBits();
        if (this.events.on) this.emit({ type: 'cr_write', cpu: this.id, reg: 'efer', hi: 0, lo });
        return true;
      }
      case MSR_FS_BASE:
      case MSR_KERNEL_GS_BASE:
        // XXX: the model keeps the user GS base in GS's hidden base in the kernel too (SWAPGS
        // does not exchange bases here), so the kernel writes it as MSR_KERNEL_GS_BASE, the
        // MSR that holds it between the entry's SWAPGS and the exit's. A non-canonical base is #GP.
        if (!isCanonical(hi | 0, this.pagingLevels === 5)) return this.gp();
        this.seg[msr === MSR_FS_BASE ? SREG_FS : SREG_GS].base = BigInt.asUintN(64, value);
        return true;
      case MSR_IA32_PKRS:
        if (!m.pks || hi !== 0) return this.gp();
        this.pkrs = lo;
        if (this.events.on) this.emit({ type: 'cr_write', cpu: this.id, reg: 'pkrs', hi: 0, lo });
        return true;
      case MSR_IA32_U_CET:
      case MSR_IA32_S_CET:
        if (!m.shstk || hi !== 0 || (lo & ~(CET_SH_STK_EN | CET_WR_SHSTK_EN)) !== 0) return this.gp();
        if (msr === MSR_IA32_U_CET) this.uCet = lo;
        else this.sCet = lo;
        if (this.events.on) this.emit({ type: 'cr_write', cpu: this.id, reg: msr === MSR_IA32_U_CET ? 'u_cet' : 's_cet', hi: 0, lo });
        return true;
      case MSR_IA32_XSS:
        // Only the supervisor components the CPU has (CPUID.(EAX=0DH,ECX=1):ECX).
        if (!m.xsave || hi !== 0 || (lo & ~xssSupported(m)) !== 0) return this.gp();
        this.xss = lo;
        if (this.events.on) this.emit({ type: 'cr_write', cpu: this.id, reg: 'xss', hi: 0, lo });
        return true;
      case MSR_MISC_FEATURES_ENABLES:
        // Bit 0 only where CPUID faulting is supported (MSR_PLATFORM_INFO bit 31); no other bit is modelled.
        if (hi !== 0 || (lo & ~(m.cpuid_faulting ? MISC_FEATURES_CPUID_FAULT : 0)) !== 0) return this.gp();
        this.miscFeaturesEnables = lo;
        return true;
      case MSR_IA32_PL0_SSP:
      case MSR_IA32_PL3_SSP:
        // SSP MSRs hold canonical, 4-byte-aligned addresses.
        if (!m.shstk || (lo & 3) !== 0 || !isCanonical(hi | 0, this.pagingLevels === 5)) return this.gp();
        if (msr === MSR_IA32_PL3_SSP) this.pl3Ssp = BigInt.asUintN(64, value);
        else this.pl0Ssp = BigInt.asUintN(64, value);
        if (this.events.on) this.emit({ type: 'cr_write', cpu: this.id, reg: msr === MSR_IA32_PL3_SSP ? 'pl3_ssp' : 'pl0_ssp', hi, lo });
        return true;
      default:
        return this.gp();
    }
  }

  /**
   * RDMSR of MSR_PLATFORM_INFO (bit 31: CPUID faulting supported) and MSR_MISC_FEATURES_ENABLES;
   * null with #GP raised at CPL>0 or for an MSR this method does not read.
   */
  rdmsr(msr: number): bigint | null {
    if (this.cpl === 0 && msr === MSR_PLATFORM_INFO) return this.model.cpuid_faulting ? BigInt(PLATFORM_INFO_CPUID_FAULTING) : 0n;
    if (this.cpl === 0 && msr === MSR_MISC_FEATURES_ENABLES) return BigInt(this.miscFeaturesEnables);
    this.gp();
    return null;
  }

  /** Whether CPUID raises #GP(0) here: CPL > 0 with MSR_MISC_FEATURES_ENABLES.CPUID_FAULT set (SDM Vol. 3A "CPUID faulting"). */
  cpuidFaults(): boolean {
    return this.cpl !== 0 && (this.miscFeaturesEnables & MISC_FEATURES_CPUID_FAULT) !== 0;
  }

  /** Sets CPL, as SYSCALL/SYSRET/IRET and exception delivery do (the kernel's entry code calls this). */
  setCpl(cpl: 0 | 3): void {
    if (cpl !== 0 && cpl !== 3) throw new ArgumentError('cpl', `${cpl} is not 0 or 3`);
    this.cpl = cpl;
  }

  // ==== TLB maintenance ========================================================================

  /**
   * INVLPG: drops the entries of any page size covering hi:lo for the current PCID, and global
   * entries for it whatever their PCID. A no-op for a non-canonical address. #GP at CPL>0.
   */
  invlpg(hi: number, lo: number): boolean {
    if (this.cpl !== 0) return this.gp();
    if (!isCanonical(hi, this.pagingLevels === 5)) return true;
    this.tlb.invalidatePage(hi, lo, this.pcid);
    if (this.events.on) this.emit({ type: 'tlb_flush', cpu: this.id, cause: 'invlpg', pcid: this.pcid, global: true, hi: hi >>> 0, lo: lo >>> 0 });
    return true;
  }

  /**
   * INVPCID with `type` and the descriptor {PCID field `pcid` (bits 63:0), linear address
   * addrHi:addrLo}. Type 0: one address's non-global entries for `pcid`; 1: all non-global
   * entries for `pcid`; 2: everything, globals included; 3: every non-global entry.
   * #UD without the INVPCID feature; #GP at CPL>0, for a type above 3, a PCID field above 4095,
   * a non-canonical address with type 0, or a non-zero PCID with type 0/1 while CR4.PCIDE=0.
   */
  invpcid(type: number, pcid: number, addrHi = 0, addrLo = 0): boolean {
    if (!this.model.invpcid) return this.ud();
    if (this.cpl !== 0) return this.gp();
    if (!(type === 0 || type === 1 || type === 2 || type === 3)) return this.gp();
    if (!Number.isInteger(pcid) || pcid < 0 || pcid > 4095) return this.gp();
    if (type <= 1 && pcid !== 0 && (this.cr4 & CR4_PCIDE) === 0) return this.gp();
    const causes: FlushCause[] = ['invpcid_addr', 'invpcid_ctx', 'invpcid_all', 'invpcid_nonglobal'];
    if (type === 0) {
      if (!isCanonical(addrHi, this.pagingLevels === 5)) return this.gp();
      this.tlb.invalidatePcidAddress(addrHi, addrLo, pcid);
      if (this.events.on) this.emit({ type: 'tlb_flush', cpu: this.id, cause: causes[0], pcid, global: false, hi: addrHi >>> 0, lo: addrLo >>> 0 });
      return true;
    }
    if (type === 1) this.tlb.flushPcid(pcid);
    else if (type === 2) this.tlb.flushAll();
    else this.tlb.flushNonGlobal();
    this.flushEvent(causes[type], type === 1 ? pcid : -1, type === 2);
    return true;
  }

  /**
   * Drops TLB slot `slot`, as a processor may at any moment (SDM §4.10.2: "the processor may
   * invalidate any TLB entry at any time"). The explorer's source of hardware nondeterminism.
   */
  evictTlbEntry(slot: number): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.tlb.size) throw new ArgumentError('slot', `${slot} is not a TLB slot (0..${this.tlb.size - 1})`);
    if (!this.tlb.live(slot)) return;
    this.tlb.invalidateSlot(slot);
    if (this.events.on) this.emit({ type: 'tlb_flush', cpu: this.id, cause: 'evict', pcid: this.pcid, global: false });
  }

  // ==== Segmentation ==========================================================================

  /** LGDT: GDTR = base, limit. #GP at CPL>0 or for a non-canonical base. */
  lgdt(base: bigint, limit: number): boolean {
    if (this.cpl !== 0 || !Number.isInteger(limit) || limit < 0 || limit > 0xffff) return this.gp();
    if (!isCanonical(Number((base >> 32n) & 0xffffffffn) | 0, this.pagingLevels === 5)) return this.gp();
    this.gdtrBase = BigInt.asUintN(64, base);
    this.gdtrLimit = limit;
    return true;
  }

  /** LIDT: IDTR = base, limit. #GP at CPL>0 or for a non-canonical base. */
  lidt(base: bigint, limit: number): boolean {
    if (this.cpl !== 0 || !Number.isInteger(limit) || limit < 0 || limit > 0xffff) return this.gp();
    if (!isCanonical(Number((base >> 32n) & 0xffffffffn) | 0, this.pagingLevels === 5)) return this.gp();
    this.idtrBase = BigInt.asUintN(64, base);
    this.idtrLimit = limit;
    return true;
  }

  /**
   * INT n's gate (SDM Vol. 2A INT n, IA-32e mode): reads the first 8 bytes of the 16-byte gate
   * for `vector` (type, DPL, P) from the IDT (an implicit supervisor read through the page
   * tables, at any CPL) and checks it
   * (segment.ts intGateCheck). True when the gate delivers: the caller enters the kernel
   * through it. Otherwise false with the fault recorded (#GP or #NP with the gate's error
   * code, or the #PF of the read); nothing else changes.
   */
  intn(vector: number): boolean {
    if (!Number.isInteger(vector) || vector < 0 || vector > 255) throw new ArgumentError('vector', `${vector} is not an interrupt vector (0..255)`);
    const off = vector * 16;
    let hi: number | null = null;
    if (off + 15 <= this.idtrLimit) {
      const d = this.read(this.idtrBase + BigInt(off), 8, Access.ImplicitRead);
      if (!d) return false;
      hi = (d[4] | (d[5] << 8) | (d[6] << 16) | (d[7] << 24)) >>> 0;
    }
    const f = intGateCheck(vector, this.cpl, hi);
    if (f) {
      this.raise(f.vector, f.errorCode);
      return false;
    }
    return true;
  }

  /**
   * LLDT `sel` (SDM Vol. 2 LLDT, 64-bit mode): a null selector makes LDTR unusable; otherwise
   * the 16-byte system descriptor is read from the GDT: #GP(sel) for TI=1, an index past the
   * GDT limit, or a descriptor that is not an LDT (S=0, type 2); #NP(sel) if not present.
   * #GP(0) at CPL>0. Returns false on a fault.
   */
  lldt(sel: number): boolean {
    if (this.cpl !== 0) return this.gp();
    sel &= 0xffff;
    if (selectorIsNull(sel)) {
      loadHidden(this.ldtr, sel, 0, null);
      return true;
    }
    const off = sel & ~7;
    if (sel & SEL_TI || off + 15 > this.gdtrLimit) return this.raiseSelector(X86_TRAP_GP, sel);
    const d = this.read(this.gdtrBase + BigInt(off), 16, Access.ImplicitRead);
    if (!d) return false;
    const dv = new DataView(d.buffer);
    const lo = dv.getUint32(0, true);
    const hi = dv.getUint32(4, true);
    if (hi & DESC_S || descType(hi) !== SYS_TYPE_LDT) return this.raiseSelector(X86_TRAP_GP, sel);
    if (!(hi & DESC_P)) return this.raiseSelector(X86_TRAP_NP, sel);
    this.ldtr.sel = sel;
    this.ldtr.base = (BigInt(dv.getUint32(8, true)) << 32n) | BigInt(descBase(lo, hi));
    this.ldtr.limit = descLimit(lo, hi);
    this.ldtr.attr = descAttributes(hi);
    return true;
  }

  /**
   * Reads the 8-byte descriptor `sel` selects, from the GDT or (TI=1) the LDT, as an implicit
   * supervisor read through the page tables (one locked 8-byte read: never half of an old and
   * half of a new descriptor). Returns 1 with the words in `descLo`/`descHi`; 0 when the index
   * is past the table's limit (or TI=1 with LDTR null); FAULT when the read faulted. Does not
   * look at a null selector (the caller's).
   */
  readDescriptor(sel: number): number {
    const off = sel & 0xfff8;
    const ldt = (sel & SEL_TI) !== 0;
    if (ldt && selectorIsNull(this.ldtr.sel)) return 0;
    if (off + 7 > (ldt ? this.ldtr.limit : this.gdtrLimit)) return 0;
    const d = this.read((ldt ? this.ldtr.base : this.gdtrBase) + BigInt(off), 8, Access.ImplicitRead);
    if (!d) return FAULT;
    this.descLo = (d[0] | (d[1] << 8) | (d[2] << 16) | (d[3] << 24)) >>> 0;
    this.descHi = (d[4] | (d[5] << 8) | (d[6] << 16) | (d[7] << 24)) >>> 0;
    return 1;
  }
  /** The words the last readDescriptor read. */
  descLo = 0;
  descHi = 0;

  /**
   * MOV Sreg, r16 (and POP Sreg) in 64-bit mode: loads `sel` into segment register `sreg`
   * (SREG_*) with the checks of segment.ts movSregCheck. On success the hidden part is the
   * descriptor's (FS and GS: base 31:0 zero-extended), a null selector leaves an unusable
   * segment with base 0 (as Intel processors do; AMD's keep the old base, Linux's
   * X86_BUG_NULL_SEG), and a code or data descriptor whose A bit is clear gets it set by a
   * locked write of the descriptor, which can #PF like any supervisor write. MOV to CS is #UD.
   * Returns false with the fault recorded.
   */
  movToSreg(sreg: number, sel: number): boolean {
    if (!Number.isInteger(sreg) || sreg < 0 || sreg > 5) throw new ArgumentError('sreg', `${sreg} is not a segment register (0..5)`);
    if (sreg === SREG_CS) return this.ud();
    sel &= 0xffff;
    let hi: number | null = null;
    const nullSel = selectorIsNull(sel);
    if (!nullSel) {
      const r = this.readDescriptor(sel);
      if (r === FAULT) return false;
      if (r === 1) hi = this.descHi;
    }
    const f = movSregCheck(sreg, sel, this.cpl, hi);
    if (f) return this.raiseSelector(f.vector, f.errorCode);
    const reg = this.seg[sreg];
    const lo = this.descLo;
    if (hi !== null && ((hi >>> DESC_TYPE_SHIFT) & DESC_TYPE_ACCESSED) === 0) {
      hi = (hi | (DESC_TYPE_ACCESSED << DESC_TYPE_SHIFT)) >>> 0;
      const b = new Uint8Array([hi & 0xff, (hi >>> 8) & 0xff, (hi >>> 16) & 0xff, hi >>> 24]);
      const table = sel & SEL_TI ? this.ldtr.base : this.gdtrBase;
      if (!this.write(table + BigInt((sel & 0xfff8) + 4), b, Access.ImplicitWrite)) return false;
    }
    loadHidden(reg, sel, lo, hi);
    if (this.events.on) this.emit({ type: 'segment_load', cpu: this.id, sreg, sel, base: reg.base });
    return true;
  }

  /**
   * IRET's segment part, from CPL 0 back to user mode: reads the descriptors of `cs` and `ss`
   * and checks them (segment.ts iretCheck); on success loads both (A set as for MOV Sreg is
   * not needed: Linux's code and data descriptors have it) and returns true; otherwise the
   * fault is recorded, nothing is loaded, and the caller stays at CPL 0 (the IRET faulted in
   * the kernel). Does not change CPL or look at RIP, RSP, RFLAGS.
   */
  iretSegments(cs: number, ss: number): boolean {
    cs &= 0xffff;
    ss &= 0xffff;
    const read = (sel: number): number | null | undefined => {
      if (selectorIsNull(sel)) return null;
      const r = this.readDescriptor(sel);
      return r === FAULT ? undefined : r === 1 ? this.descHi : null;
    };
    const csHi = read(cs);
    if (csHi === undefined) return false;
    const csLo = this.descLo;
    const ssHi = read(ss);
    if (ssHi === undefined) return false;
    const ssLo = this.descLo;
    const f = iretCheck(cs, csHi, ss, ssHi);
    if (f) return this.raiseSelector(f.vector, f.errorCode);
    loadHidden(this.seg[SREG_CS], cs, csLo, csHi);
    loadHidden(this.seg[SREG_SS], ss, ssLo, ssHi);
    return true;
  }

  /**
   * Compatibility mode: IA-32e mode with a CS whose L bit is clear (SDM Vol. 3A §2.2,
   * "IA-32e mode"): 32-bit code, 32-bit effective addresses, SYSCALL #UD (Intel).
   */
  compatMode(): boolean {
    return (this.seg[SREG_CS].attr & (DESC_L >>> 8)) === 0;
  }

  /**
   * The CS part of a far JMP or CALL (`ret` false) or of a far RET (`ret` true) in IA-32e mode
   * (SDM Vol. 2A JMP, CALL, RET): reads the descriptor of `sel` and checks it (segment.ts
   * farCodeCheck, farRetCheck), then the new RIP `offset`: into a compatibility-mode segment
   * it must be within the limit, into a 64-bit one canonical, else #GP(0). True when CS may be
   * loaded (`loadFarCs`, in the same step: the descriptor read is kept in descLo/descHi);
   * otherwise false with the fault recorded and nothing changed. XXX: A is not set in a CS
   * descriptor that lacks it (Linux's GDT and LDT entries all have it).
   */
  farCheck(sel: number, offset: bigint, ret: boolean): boolean {
    sel &= 0xffff;
    let hi: number | null = null;
    if (!selectorIsNull(sel)) {
      const r = this.readDescriptor(sel);
      if (r === FAULT) return false;
      if (r === 1) hi = this.descHi;
    }
    const f = ret ? farRetCheck(sel, this.cpl, hi) : farCodeCheck(sel, this.cpl, hi);
    if (f) return this.raiseSelector(f.vector, f.errorCode);
    const h = hi!;
    if (h & DESC_L) {
      if (!isCanonical(Number((offset >> 32n) & 0xffffffffn) | 0, this.pagingLevels === 5)) return this.gp();
    } else if (offset > BigInt(descLimit(this.descLo, h))) return this.gp();
    return true;
  }

  /** Loads CS after farCheck passed: selector `sel` (a JMP's or CALL's with RPL = CPL, a RET's as popped) and the descriptor farCheck read. */
  loadFarCs(sel: number, ret: boolean): void {
    const cs = ret ? sel & 0xffff : (sel & 0xfffc) | this.cpl;
    loadHidden(this.seg[SREG_CS], cs, this.descLo, this.descHi);
    if (this.events.on) this.emit({ type: 'segment_load', cpu: this.id, sreg: SREG_CS, sel: cs, base: 0n });
  }

  /** MOV r16, Sreg: the selector. Never faults. */
  movFromSreg(sreg: number): number {
    if (!Number.isInteger(sreg) || sreg < 0 || sreg > 5) throw new ArgumentError('sreg', `${sreg} is not a segment register (0..5)`);
    return this.seg[sreg].sel;
  }

  /**
   * Loads a segment register with a selector and a flat hidden part without reading a
   * descriptor: what SYSRET does to CS and SS (fixed values from IA32_STAR), and what the model
   * uses where the OS loads a register with a known-good selector.
   */
  loadSegmentFlat(sreg: number, sel: number, attr: number): void {
    const reg = this.seg[sreg];
    reg.sel = sel & 0xffff;
    if (sreg !== SREG_FS && sreg !== SREG_GS) reg.base = 0n;
    reg.limit = 0xffffffff;
    reg.attr = attr;
  }

  /** The descriptor's high word for LAR/LSL/VERR/VERW: null for a null or out-of-limit selector; FAULT (as a number) if the read faulted. */
  private descriptorForQuery(sel: number): number | null {
    sel &= 0xffff;
    if (selectorIsNull(sel)) return null;
    const r = this.readDescriptor(sel);
    if (r === FAULT) return FAULT;
    return r === 1 ? this.descHi : null;
  }

  /** LAR r32, r16: the access rights (segment.ts larResult), ZF_CLEAR for ZF=0, or FAULT if the descriptor read faulted. */
  lar(sel: number): number {
    const hi = this.descriptorForQuery(sel);
    if (hi === FAULT) return FAULT;
    const v = larResult(sel & 0xffff, this.cpl, hi);
    return v < 0 ? ZF_CLEAR : v;
  }

  /** LSL r32, r16: the scaled limit, ZF_CLEAR for ZF=0, or FAULT. */
  lsl(sel: number): number {
    const hi = this.descriptorForQuery(sel);
    if (hi === FAULT) return FAULT;
    const v = lslResult(sel & 0xffff, this.cpl, this.descLo, hi);
    return v < 0 ? ZF_CLEAR : v;
  }

  /** VERR r16: 1 (ZF=1) or 0, or FAULT. */
  verr(sel: number): number {
    const hi = this.descriptorForQuery(sel);
    if (hi === FAULT) return FAULT;
    return verrResult(sel & 0xffff, this.cpl, hi) ? 1 : 0;
  }

  /** VERW r16: 1 (ZF=1) or 0, or FAULT. */
  verw(sel: number): number {
    const hi = this.descriptorForQuery(sel);
    if (hi === FAULT) return FAULT;
    return verwResult(sel & 0xffff, this.cpl, hi) ? 1 : 0;
  }

  /** RDFSBASE (`sreg` SREG_FS) or RDGSBASE (SREG_GS): the base, or null with #UD when CR4.FSGSBASE=0. Any CPL. */
  rdFsGsBase(sreg: number): bigint | null {
    if ((this.cr4 & CR4_FSGSBASE) === 0) {
      this.ud();
      return null;
    }
    return this.seg[sreg === SREG_GS ? SREG_GS : SREG_FS].base;
  }

  /** WRFSBASE or WRGSBASE: the base = `value`; #UD when CR4.FSGSBASE=0, #GP(0) for a non-canonical value. The selector is unchanged. */
  wrFsGsBase(sreg: number, value: bigint): boolean {
    if ((this.cr4 & CR4_FSGSBASE) === 0) return this.ud();
    value = BigInt.asUintN(64, value);
    if (!isCanonical(Number(value >> 32n) | 0, this.pagingLevels === 5)) return this.gp();
    this.seg[sreg === SREG_GS ? SREG_GS : SREG_FS].base = value;
    return true;
  }

  /** Raises `vector` with error code `errorCode` (a selector error code, segment.ts selectorErrorCode). */
  private raiseSelector(vector: number, sel: number): false {
    this.raise(vector, selectorErrorCode(sel));
    return false;
  }

  // ==== Protection keys and SMAP ==============================================================

  /** WRPKRU: PKRU = eax. #UD unless CR4.PKE=1; #GP unless ecx = edx = 0. Any CPL; no TLB flush. */
  wrpkru(eax: number, ecx = 0, edx = 0): boolean {
    if ((this.cr4 & CR4_PKE) === 0) return this.ud();
    if (ecx !== 0 || edx !== 0) return this.gp();
    this.pkru = eax >>> 0;
    if (this.events.on) this.emit({ type: 'pkru_write', cpu: this.id, value: this.pkru });
    return true;
  }

  /** RDPKRU: returns PKRU (EDX is zeroed), or FAULT: #UD unless CR4.PKE=1, #GP unless ecx = 0. */
  rdpkru(ecx = 0): number {
    if ((this.cr4 & CR4_PKE) === 0) {
      this.ud();
      return FAULT;
    }
    if (ecx !== 0) {
      this.gp();
      return FAULT;
    }
    return this.pkru;
  }

  /**
   * PKRU loaded by XRSTOR (component 9): the same register WRPKRU writes, with the same event,
   * so the next access obeys it. The caller has done XRSTOR's checks.
   */
  xrstorPkru(value: number): void {
    this.pkru = value >>> 0;
    if (this.events.on) this.emit({ type: 'pkru_write', cpu: this.id, value: this.pkru });
  }

  // ==== XCR0 (SDM Vol. 1 §13.3, Vol. 2 XGETBV and XSETBV) =====================================

  /**
   * XINUSE (SDM Vol. 1 §13.6): the components not in their initial configuration. The model
   * does not hold x87 or SSE registers, so those are always in it; PKRU is iff it is 0.
   */
  xinuse(): number {
    return this.pkru !== 0 ? XFEATURE_MASK_PKRU : 0;
  }

  /**
   * XGETBV: ECX=0 gives XCR0; ECX=1 gives XCR0 AND XINUSE (CPUs with XGETBV_ECX1, every XSAVE
   * CPU of the model). Returns null with #UD when CR4.OSXSAVE=0, or #GP for another ECX. Any CPL.
   */
  xgetbv(ecx: number): bigint | null {
    if ((this.cr4 & CR4_OSXSAVE) === 0) {
      this.ud();
      return null;
    }
    if (ecx === 0) return BigInt(this.xcr0 >>> 0);
    if (ecx === 1) return BigInt((this.xcr0 & this.xinuse()) >>> 0);
    this.gp();
    return null;
  }

  /**
   * XSETBV: XCR[ECX] = value. #UD when CR4.OSXSAVE=0; #GP at CPL>0, for ECX other than 0, for
   * a bit the CPU does not support (CPUID.(EAX=0DH,ECX=0):EDX:EAX), for clearing bit 0 (x87),
   * or for AVX without SSE.
   */
  xsetbv(ecx: number, value: bigint): boolean {
    u64Bigint(value, 'value');
    if ((this.cr4 & CR4_OSXSAVE) === 0) return this.ud();
    if (this.cpl !== 0 || ecx !== 0) return this.gp();
    if ((value & ~BigInt(xcr0Supported(this.model))) !== 0n) return this.gp();
    const v = Number(value);
    if ((v & XFEATURE_MASK_X87) === 0 || ((v & XFEATURE_MASK_AVX) !== 0 && (v & XFEATURE_MASK_SSE) === 0)) return this.gp();
    this.xcr0 = v;
    if (this.events.on) this.emit({ type: 'cr_write', cpu: this.id, reg: 'xcr0', hi: 0, lo: v });
    return true;
  }

  /** STAC: sets RFLAGS.AC. #UD without SMAP or at CPL>0. */
  stac(): boolean {
    if (!this.model.smap || this.cpl !== 0) return this.ud();
    this.rflags |= RFLAGS_AC;
    return true;
  }

  /** CLAC: clears RFLAGS.AC. #UD without SMAP or at CPL>0. */
  clac(): boolean {
    if (!this.model.smap || this.cpl !== 0) return this.ud();
    this.rflags &= ~RFLAGS_AC;
    return true;
  }

  // ==== Internals ==============================================================================

  /** Mask of the bits of a 64-bit physical address's high word below MAXPHYADDR. */
  private physAddrHiMask(): number {
    return this.model.maxphyaddr >= 52 ? PTEH_ADDR : (1 << (this.model.maxphyaddr - 32)) - 1;
  }

  private updateReservedBits(): void {
    this.reservedHi = (PTEH_ADDR & ~this.physAddrHiMask()) | ((this.efer & EFER_NXE) === 0 ? PTEH_XD : 0);
  }

  private gp(): false {
    this.raise(X86_TRAP_GP, 0);
    return false;
  }

  private ud(): false {
    this.raise(X86_TRAP_UD, 0);
    return false;
  }

  private flushEvent(cause: FlushCause, pcid: number, global: boolean): void {
    if (this.events.on) this.emit({ type: 'tlb_flush', cpu: this.id, cause, pcid, global });
  }

  private emit(e: HwEvent): void {
    this.events.emit(e);
  }

  /** CR3 as text, for views. */
  describeCr3(): string {
    return hex64(this.cr3Hi, this.cr3Lo);
  }
}
