/**
 * Segmentation in 64-bit mode (SDM Vol. 3A §3.4 selectors and descriptors, §3.5 system
 * descriptor types, §5.5-5.8 privilege checks; Vol. 2 MOV, POP, LAR, LSL, VERR, VERW): the
 * selector and descriptor formats, the segment registers' visible and hidden parts, and the
 * checks each instruction makes, as pure functions of a selector, CPL and the descriptor the
 * processor read. Reading the descriptor (through the GDT or the LDT, by linear address,
 * through the page tables) is the processor's: hw/cpu.ts.
 *
 * A descriptor is two little-endian u32 words, `lo` (limit 15:0, base 15:0) and `hi` (base
 * 23:16, type, S, DPL, P, limit 19:16, AVL, L, D/B, G, base 31:24). A 64-bit system
 * descriptor (LDT, TSS) adds a third word, base 63:32.
 *
 * Far CALL, JMP and RET load CS (farCodeCheck, farRetCheck); a CS whose descriptor has L=0
 * puts the processor in compatibility mode (hw/cpu.ts compatMode).
 *
 * XXX: base and limit of DS, ES and SS are loaded but never applied to an access, in
 * compatibility mode too (Linux's flat segments make that exact; an LDT data segment with a
 * base is not). INT n checks its IDT gate (intGateCheck) but not the gate's target code
 * segment.
 */
import { X86_TRAP_GP, X86_TRAP_NP, X86_TRAP_SS } from './regs.js';

/** Segment registers, numbered as the SDM's Sreg field encodes them (MOV Sreg: ES 0, CS 1, SS 2, DS 3, FS 4, GS 5). */
export const SREG_ES = 0;
export const SREG_CS = 1;
export const SREG_SS = 2;
export const SREG_DS = 3;
export const SREG_FS = 4;
export const SREG_GS = 5;
export const SREG_NAMES = Object.freeze(['es', 'cs', 'ss', 'ds', 'fs', 'gs'] as const);
export type SregName = (typeof SREG_NAMES)[number];

// ---- Selectors (§3.4.2) ---------------------------------------------------------------------
export const SEL_RPL = 0x3; // requested privilege level
export const SEL_TI = 0x4; // table indicator: 0 GDT, 1 LDT

/** A null selector: index 0 in the GDT, any RPL (selectors 0 to 3). */
export function selectorIsNull(sel: number): boolean {
  return (sel & 0xfffc) === 0;
}

/**
 * The error code of a #GP, #NP, #SS or #TS an instruction raises for `sel` (§6.13): the
 * selector's index and TI, with EXT (bit 0) and IDT (bit 1) clear for a software cause.
 */
export function selectorErrorCode(sel: number): number {
  return sel & 0xfffc;
}

// ---- Descriptor fields, in the high word ----------------------------------------------------
export const DESC_TYPE_SHIFT = 8; // type, bits 11:8
export const DESC_TYPE_ACCESSED = 0x1; // code and data types: A
export const DESC_TYPE_WRITABLE = 0x2; // data: W; code: R (readable)
export const DESC_TYPE_EXPAND_DOWN = 0x4; // data: E; code: C (conforming)
export const DESC_TYPE_CODE = 0x8; // 1: code, 0: data
export const DESC_S = 1 << 12; // 1: code or data, 0: system
export const DESC_DPL_SHIFT = 13;
export const DESC_P = 1 << 15; // present
export const DESC_AVL = 1 << 20;
export const DESC_L = 1 << 21; // 64-bit code
export const DESC_DB = 1 << 22;
export const DESC_G = 1 << 23; // limit in 4 KiB units

/** System descriptor types in IA-32e mode (§3.5, Table 3-2). */
export const SYS_TYPE_LDT = 0x2;
export const SYS_TYPE_TSS_AVAIL = 0x9;
export const SYS_TYPE_TSS_BUSY = 0xb;
export const SYS_TYPE_CALL_GATE = 0xc;
export const SYS_TYPE_INT_GATE = 0xe;
export const SYS_TYPE_TRAP_GATE = 0xf;

export function descType(hi: number): number {
  return (hi >>> DESC_TYPE_SHIFT) & 0xf;
}

export function descDpl(hi: number): number {
  return (hi >>> DESC_DPL_SHIFT) & 3;
}

/** Base 31:0 of a descriptor. */
export function descBase(lo: number, hi: number): number {
  return ((lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000)) >>> 0;
}

/** The segment limit in bytes: limit 19:0, scaled to 4 KiB units (low 12 bits set) with G. */
export function descLimit(lo: number, hi: number): number {
  const raw = (lo & 0xffff) | (hi & 0xf0000);
  return (hi & DESC_G ? raw * 4096 + 0xfff : raw) >>> 0;
}

/** The hidden attributes as VMX's access-rights format keeps them: high word bits 23:8 shifted down 8 (type, S, DPL, P, AVL, L, D/B, G). */
export function descAttributes(hi: number): number {
  return (hi >>> 8) & 0xf0ff;
}

/** A code or data descriptor that is data, or readable code (what DS, ES, FS, GS may hold; what VERR accepts). */
function readable(hi: number): boolean {
  const type = descType(hi);
  return (hi & DESC_S) !== 0 && ((type & DESC_TYPE_CODE) === 0 || (type & DESC_TYPE_WRITABLE) !== 0);
}

/** Writable data (what SS must hold; what VERW accepts). */
function writableData(hi: number): boolean {
  const type = descType(hi);
  return (hi & DESC_S) !== 0 && (type & DESC_TYPE_CODE) === 0 && (type & DESC_TYPE_WRITABLE) !== 0;
}

/** Conforming code (exempt from the DPL check of LAR, LSL and VERR). */
function conformingCode(hi: number): boolean {
  const type = descType(hi);
  return (hi & DESC_S) !== 0 && (type & (DESC_TYPE_CODE | DESC_TYPE_EXPAND_DOWN)) === (DESC_TYPE_CODE | DESC_TYPE_EXPAND_DOWN);
}

/** The visible selector and the hidden part (descriptor cache) of one segment register. */
export interface SegmentRegister {
  sel: number;
  /** Base (64 bits for FS and GS: their MSRs and WRFSBASE/WRGSBASE write the upper half). */
  base: bigint;
  /** Limit in bytes (scaled). */
  limit: number;
  /** Attributes (descAttributes); 0 for a null selector's unusable segment. */
  attr: number;
}

/** What a check found wrong: the exception vector and its error code. */
export interface SegmentFault {
  vector: number;
  errorCode: number;
}

const fault = (vector: number, sel: number): SegmentFault => ({ vector, errorCode: selectorErrorCode(sel) });

/**
 * MOV Sreg / POP Sreg in 64-bit mode (SDM Vol. 2 MOV, "64-Bit Mode Exceptions"), for a
 * non-null selector or SS: `hi` is the descriptor's high word, or null when the selector's
 * index is past the table's limit (an LDT selector with LDTR null included). Returns null when
 * the load may go ahead (the caller loads the hidden part and sets A), else the fault:
 *   SS: null at CPL 3 or with RPL != CPL -> #GP(0); past the limit, RPL != CPL, not writable
 *       data, DPL != CPL -> #GP(sel); not present -> #SS(sel).
 *   DS, ES, FS, GS: past the limit, not data or readable code, data or non-conforming code
 *       with RPL > DPL or CPL > DPL -> #GP(sel); not present -> #NP(sel). (Null: no checks.)
 * Does not look at the register being CS (MOV to CS is #UD: the caller's).
 */
export function movSregCheck(sreg: number, sel: number, cpl: number, hi: number | null): SegmentFault | null {
  const rpl = sel & SEL_RPL;
  if (sreg === SREG_SS) {
    if (selectorIsNull(sel)) return cpl === 3 || rpl !== cpl ? { vector: X86_TRAP_GP, errorCode: 0 } : null;
    if (hi === null || rpl !== cpl || !writableData(hi) || descDpl(hi) !== cpl) return fault(X86_TRAP_GP, sel);
    return hi & DESC_P ? null : fault(X86_TRAP_SS, sel);
  }
  if (selectorIsNull(sel)) return null;
  if (hi === null || !readable(hi)) return fault(X86_TRAP_GP, sel);
  const dpl = descDpl(hi);
  if (!conformingCode(hi) && (rpl > dpl || cpl > dpl)) return fault(X86_TRAP_GP, sel);
  return hi & DESC_P ? null : fault(X86_TRAP_NP, sel);
}

/**
 * IRET from CPL 0 to an outer privilege level in IA-32e mode (SDM Vol. 2 IRET, "RETURN-TO-
 * OUTER-PRIVILEGE-LEVEL"), the checks of the frame's CS then SS: `csHi`/`ssHi` are their
 * descriptors' high words, or null when past the table's limit. CS: null -> #GP(0); past the
 * limit, not code, RPL < CPL (0: never), conforming with DPL > RPL, non-conforming with DPL !=
 * RPL, L and D both set -> #GP(cs); not present -> #NP(cs). SS, for a CS of RPL 3: null ->
 * #GP(0); past the limit, RPL != CS.RPL, not writable data, DPL != CS.RPL -> #GP(ss); not
 * present -> #SS(ss). Null on success.
 */
export function iretCheck(cs: number, csHi: number | null, ss: number, ssHi: number | null): SegmentFault | null {
  if (selectorIsNull(cs)) return { vector: X86_TRAP_GP, errorCode: 0 };
  const rpl = cs & SEL_RPL;
  if (csHi === null || (csHi & DESC_S) === 0 || (descType(csHi) & DESC_TYPE_CODE) === 0) return fault(X86_TRAP_GP, cs);
  const dpl = descDpl(csHi);
  if (conformingCode(csHi) ? dpl > rpl : dpl !== rpl) return fault(X86_TRAP_GP, cs);
  if ((csHi & DESC_P) === 0) return fault(X86_TRAP_NP, cs);
  if (csHi & DESC_L && csHi & DESC_DB) return fault(X86_TRAP_GP, cs);
  if (selectorIsNull(ss)) return rpl === 3 ? { vector: X86_TRAP_GP, errorCode: 0 } : null;
  if (ssHi === null || (ss & SEL_RPL) !== rpl || !writableData(ssHi) || descDpl(ssHi) !== rpl) return fault(X86_TRAP_GP, ss);
  return ssHi & DESC_P ? null : fault(X86_TRAP_SS, ss);
}

/** The checks LAR, LSL and VERR/VERW share: a non-null selector within the table, and (but for conforming code) DPL >= max(CPL, RPL). */
function visible(sel: number, cpl: number, hi: number | null): hi is number {
  if (selectorIsNull(sel) || hi === null) return false;
  const dpl = descDpl(hi);
  return conformingCode(hi) || (cpl <= dpl && (sel & SEL_RPL) <= dpl);
}

/** System types LAR accepts in IA-32e mode: LDT, available and busy 64-bit TSS, 64-bit call gate (SDM Vol. 2 LAR, Table 3-56). */
function larSystemType(type: number): boolean {
  return type === SYS_TYPE_LDT || type === SYS_TYPE_TSS_AVAIL || type === SYS_TYPE_TSS_BUSY || type === SYS_TYPE_CALL_GATE;
}

/** System types LSL accepts in IA-32e mode: LDT, available and busy 64-bit TSS (no gates: they have no limit). */
function lslSystemType(type: number): boolean {
  return type === SYS_TYPE_LDT || type === SYS_TYPE_TSS_AVAIL || type === SYS_TYPE_TSS_BUSY;
}

/**
 * LAR r32: the access rights, the descriptor's high word masked with 00FFFF00H (type, S, DPL,
 * P, limit 19:16, AVL, L, D/B, G: the SDM's "00FxFF00H", whose x the host's CPU fills with
 * limit 19:16), or -1 for ZF=0 (null, past the limit, a system type LAR does not accept, or
 * DPL below CPL or RPL for anything but conforming code). P is not checked.
 */
export function larResult(sel: number, cpl: number, hi: number | null): number {
  if (!visible(sel, cpl, hi)) return -1;
  if ((hi & DESC_S) === 0 && !larSystemType(descType(hi))) return -1;
  return (hi & 0x00ffff00) >>> 0;
}

/** LSL r32: the scaled limit, or -1 for ZF=0 (as LAR, with LSL's system types). P is not checked. */
export function lslResult(sel: number, cpl: number, lo: number, hi: number | null): number {
  if (!visible(sel, cpl, hi)) return -1;
  if ((hi & DESC_S) === 0 && !lslSystemType(descType(hi))) return -1;
  return descLimit(lo, hi);
}

/** VERR: ZF=1 (true) for a visible data or readable code segment. System descriptors never; P not checked. */
export function verrResult(sel: number, cpl: number, hi: number | null): boolean {
  return visible(sel, cpl, hi) && readable(hi);
}

/** VERW: ZF=1 (true) for a visible writable data segment. */
export function verwResult(sel: number, cpl: number, hi: number | null): boolean {
  return visible(sel, cpl, hi) && writableData(hi);
}

/**
 * The error code of a fault INT n raises for its gate (SDM Vol. 3A §6.13, Figure 6-7): the
 * vector times 8 with IDT (bit 1) set and EXT (bit 0) clear, as for any software interrupt.
 */
export function idtErrorCode(vector: number): number {
  return vector * 8 + 2;
}

/**
 * INT n in IA-32e mode (SDM Vol. 2A INT n, "IA-32e-MODE"), the checks of the gate for
 * `vector`: `hi` is the gate's second word (type, DPL, P), or null when the 16 bytes lie past
 * IDTR's limit. Past the limit, a type other than a 64-bit interrupt or trap gate, or (a
 * software interrupt) DPL below CPL -> #GP(vector*8+2); not present -> #NP(vector*8+2). Null
 * when the gate delivers. XXX: the gate's target CS, IST and stack checks are not made: the
 * kernel's gates point at its own valid code segment.
 */
export function intGateCheck(vector: number, cpl: number, hi: number | null): SegmentFault | null {
  const gp = { vector: X86_TRAP_GP, errorCode: idtErrorCode(vector) };
  if (hi === null) return gp;
  const type = descType(hi);
  if ((hi & DESC_S) !== 0 || (type !== SYS_TYPE_INT_GATE && type !== SYS_TYPE_TRAP_GATE)) return gp;
  if (descDpl(hi) < cpl) return gp;
  return hi & DESC_P ? null : { vector: X86_TRAP_NP, errorCode: idtErrorCode(vector) };
}

/**
 * Far JMP or CALL to a code segment in IA-32e mode (SDM Vol. 2A JMP and CALL, "far jump/call
 * in protected mode or IA-32e mode"), the checks of the new CS before the offset's: `hi` is
 * its descriptor's high word, or null when past the table's limit. Null -> #GP(0); past the
 * limit, or not a code segment (data, or any system descriptor: no call gate is reachable
 * from Linux's user mode, whose GDT has none and whose LDT entries are code or data) ->
 * #GP(sel); L and D both set -> #GP(sel); conforming with DPL > CPL, or non-conforming with
 * RPL > CPL or DPL != CPL -> #GP(sel); not present -> #NP(sel). Null when CS may be loaded
 * (with RPL = CPL). XXX: a 64-bit call gate would be followed; none exists to follow.
 */
export function farCodeCheck(sel: number, cpl: number, hi: number | null): SegmentFault | null {
  if (selectorIsNull(sel)) return { vector: X86_TRAP_GP, errorCode: 0 };
  if (hi === null || (hi & DESC_S) === 0 || (descType(hi) & DESC_TYPE_CODE) === 0) return fault(X86_TRAP_GP, sel);
  if (hi & DESC_L && hi & DESC_DB) return fault(X86_TRAP_GP, sel);
  const dpl = descDpl(hi);
  if (conformingCode(hi) ? dpl > cpl : (sel & SEL_RPL) > cpl || dpl !== cpl) return fault(X86_TRAP_GP, sel);
  return hi & DESC_P ? null : fault(X86_TRAP_NP, sel);
}

/**
 * Far RET in IA-32e mode (SDM Vol. 2A RET, "IA-32E-MODE"), the checks of the CS it popped:
 * null -> #GP(0); past the limit, not code, L and D both set, RPL < CPL, conforming with DPL >
 * RPL, non-conforming with DPL != RPL -> #GP(sel); not present -> #NP(sel). Null when it may
 * be loaded. A return to an outer level (RPL > CPL) is not possible from CPL 3.
 */
export function farRetCheck(sel: number, cpl: number, hi: number | null): SegmentFault | null {
  if (selectorIsNull(sel)) return { vector: X86_TRAP_GP, errorCode: 0 };
  if (hi === null || (hi & DESC_S) === 0 || (descType(hi) & DESC_TYPE_CODE) === 0) return fault(X86_TRAP_GP, sel);
  if (hi & DESC_L && hi & DESC_DB) return fault(X86_TRAP_GP, sel);
  const rpl = sel & SEL_RPL;
  const dpl = descDpl(hi);
  if (rpl < cpl || (conformingCode(hi) ? dpl > rpl : dpl !== rpl)) return fault(X86_TRAP_GP, sel);
  return hi & DESC_P ? null : fault(X86_TRAP_NP, sel);
}
