/**
 * XSAVE, XSAVEC and XRSTOR (SDM Vol. 1 ch. 13 "Managing State Using the XSAVE Feature Set",
 * Vol. 2 the instructions' pages) on an XSAVE area the caller has already translated, and the
 * area's layout (§13.4): the 512-byte legacy region (x87 and SSE, as FXSAVE writes it), the
 * 64-byte XSAVE header at 512 (XSTATE_BV at 512, XCOMP_BV at 520, 48 reserved bytes), then the
 * extended region, in the standard form (component i at CPUID.(EAX=0DH,ECX=i):EBX) or the
 * compacted one (the components XCOMP_BV names, in order, from 576).
 *
 * The model's components: x87 (0) and SSE (1), PKRU (9, the CPU's PKRU), and the supervisor
 * components CET_U (11) and CET_S (12) that only XSAVES (not modelled) touches.
 *
 * XXX: the model holds no x87 or SSE registers. They are always in their initial
 * configuration (XINUSE[1:0] = 0): XSAVE writes their init values (FCW 037FH, MXCSR 1F80H,
 * MXCSR_MASK FFFFH, the rest 0), XSAVEC writes only MXCSR and MXCSR_MASK, and XRSTOR checks
 * MXCSR's reserved bits and otherwise drops what it would load. No observable isolation
 * property depends on those registers.
 */
import type { Cpu } from './cpu.js';
import { CR4_OSXSAVE, X86_TRAP_GP, X86_TRAP_UD, XFEATURE_MASK_PKRU, XFEATURE_MASK_SSE, XFEATURE_MASK_X87 } from './regs.js';

/** Bytes of the legacy region and of the header; the extended region starts at their sum. */
export const XSAVE_LEGACY_SIZE = 512;
export const XSAVE_HDR_SIZE = 64;
export const XSAVE_HDR_OFFSET = 512;
/** The header's fields. */
export const XSAVE_XSTATE_BV = 512;
export const XSAVE_XCOMP_BV = 520;
/** XCOMP_BV[63]: the area is in the compacted form. */
export const XCOMP_BV_COMPACTED = 1n << 63n;

/** Legacy-region fields the model writes (FXSAVE layout, SDM Vol. 1 Table 10-2). */
const FCW = 0;
const MXCSR = 24;
const MXCSR_MASK = 28;
/** Init values: FCW 037FH (§13.6), MXCSR 1F80H; MXCSR_MASK FFFFH (host-checked: XSAVE on this host writes 0000FFFFH). */
export const FCW_INIT = 0x037f;
export const MXCSR_INIT = 0x1f80;
export const MXCSR_MASK_VALUE = 0xffff;

/**
 * An extended component: its size (CPUID.(EAX=0DH,ECX=i):EAX), standard offset (EBX; 0 for a
 * supervisor component), whether it is a supervisor (IA32_XSS) component (ECX[0]) and whether
 * it is 64-byte aligned in the compacted form (ECX[1]).
 */
export interface XComponent {
  readonly size: number;
  readonly offset: number;
  readonly supervisor: boolean;
  readonly align64: boolean;
}

/** The extended components the model has, by number (SDM Vol. 1 §13.5.7 PKRU, §13.5.8 CET). */
export const XCOMPONENTS: Readonly<Record<number, XComponent>> = Object.freeze({
  9: Object.freeze({ size: 8, offset: 2688, supervisor: false, align64: false }),
  11: Object.freeze({ size: 16, offset: 0, supervisor: true, align64: false }),
  12: Object.freeze({ size: 24, offset: 0, supervisor: true, align64: false }),
});

/** The offset of PKRU in the standard form. */
export const XSAVE_PKRU_OFFSET = XCOMPONENTS[9].offset;

/**
 * The bytes of an XSAVE area as the instruction sees them, by offset from its base: the
 * caller maps them onto the physical pages it translated (or onto a buffer).
 */
export interface XsaveArea {
  read(offset: number, length: number): Uint8Array;
  write(offset: number, bytes: Uint8Array): void;
}

/** An XsaveArea over a plain buffer (the kernel's image of a signal frame's area). */
export function bufferArea(buf: Uint8Array): XsaveArea {
  return {
    read: (offset, length) => buf.slice(offset, offset + length),
    write: (offset, bytes) => buf.set(bytes, offset),
  };
}

/**
 * The standard-form size of an area holding the user components of `mask`: 576 plus, for
 * each extended one, up to its end (CPUID.(EAX=0DH,ECX=0):EBX for mask = XCR0).
 */
export function xstateSizeStandard(mask: number): number {
  let end = XSAVE_LEGACY_SIZE + XSAVE_HDR_SIZE;
  for (const [i, c] of Object.entries(XCOMPONENTS)) {
    if (!c.supervisor && mask & (1 << Number(i))) end = Math.max(end, c.offset + c.size);
  }
  return end;
}

/**
 * The offset of component i (>= 2) in a compacted area whose XCOMP_BV[62:0] is `mask`
 * (§13.4.3), and the area's size when i is past the last component.
 */
export function compactedOffset(mask: number, i: number): number {
  let at = XSAVE_LEGACY_SIZE + XSAVE_HDR_SIZE;
  for (let j = 2; j < i && j < 32; j++) {
    const c = XCOMPONENTS[j];
    if (!c || (mask & (1 << j)) === 0) continue;
    if (c.align64) at = Math.ceil(at / 64) * 64;
    at += c.size;
  }
  const c = XCOMPONENTS[i];
  if (c?.align64) at = Math.ceil(at / 64) * 64;
  return at;
}

/** The compacted-form size of an area holding the components of `mask` (CPUID.(EAX=0DH,ECX=1):EBX for XCR0 | IA32_XSS). */
export function xstateSizeCompacted(mask: number): number {
  return compactedOffset(mask, 32);
}

/** Which instruction. */
export type XsaveInsn = 'xsave' | 'xsavec' | 'xrstor';

/**
 * The checks XSAVE, XSAVEC and XRSTOR make before touching memory, in the SDM's order of
 * exception classes: #UD without the XSAVE feature (and XSAVEC) or with CR4.OSXSAVE=0, then
 * #GP(0) for an area not 64-byte aligned. Returns false with the exception raised.
 * Non-canonical addresses and page faults come from the accesses that follow.
 */
export function xsave_check(cpu: Cpu, addrLo: number): boolean {
  if (!cpu.model.xsave || (cpu.cr4 & CR4_OSXSAVE) === 0) {
    cpu.raiseException(X86_TRAP_UD);
    return false;
  }
  if ((addrLo & 63) !== 0) {
    cpu.raiseException(X86_TRAP_GP);
    return false;
  }
  return true;
}

/** RFBM, the requested-feature bitmap: EDX:EAX AND XCR0. */
export function rfbmOf(cpu: Cpu, mask: bigint): number {
  return Number(BigInt.asUintN(64, mask) & BigInt(cpu.xcr0 >>> 0));
}

/**
 * The bytes of the area an instruction touches, from its base, as [start, end) ranges in
 * order: the legacy region and header [0, 576) (XSAVE reads and writes XSTATE_BV, XRSTOR
 * reads the header), then PKRU's 8 bytes where it goes: at 2688 for XSAVE with RFBM[9], at its
 * compacted place for XSAVEC when it is in use (the init optimization skips it otherwise).
 * XRSTOR: the standard form's PKRU with RFBM[9] (XXX: the header, read in this same step,
 * decides the form; a compacted image's PKRU lies within [0, 584), so the model may translate
 * a page the processor would not read).
 */
export function xsave_ranges(cpu: Cpu, insn: XsaveInsn, rfbm: number): [number, number][] {
  const out: [number, number][] = [[0, XSAVE_LEGACY_SIZE + XSAVE_HDR_SIZE]];
  if (insn === 'xsavec') {
    if (rfbm & cpu.xinuse() & XFEATURE_MASK_PKRU) out[0][1] = compactedOffset(rfbm, 9) + XCOMPONENTS[9].size;
  } else if (rfbm & XFEATURE_MASK_PKRU) out.push([XSAVE_PKRU_OFFSET, XSAVE_PKRU_OFFSET + XCOMPONENTS[9].size]);
  return out;
}

function u16(v: number): Uint8Array {
  return Uint8Array.of(v & 0xff, (v >>> 8) & 0xff);
}
function u32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, true);
  return b;
}
function u64(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, v), true);
  return b;
}
function getU64(b: Uint8Array, at = 0): bigint {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(at, true);
}
function getU32(b: Uint8Array, at = 0): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(at, true);
}

/** The x87 init state as the legacy region's bytes 0..159 hold it: FCW 037FH, the rest 0 (MXCSR's 8 bytes, 24..31, belong to SSE). */
function x87InitImage(): Uint8Array {
  const b = new Uint8Array(160);
  b.set(u16(FCW_INIT), FCW);
  return b;
}

/**
 * XSAVE (Vol. 2 "XSAVE", Vol. 1 §13.7): for RFBM = EDX:EAX AND XCR0, writes each requested
 * component at its standard place (x87 bytes 0..159 less MXCSR; XMM registers 160..415;
 * MXCSR and MXCSR_MASK with RFBM[1] or RFBM[2]; PKRU at 2688), whatever its XINUSE bit, then
 * XSTATE_BV = (XSTATE_BV AND NOT RFBM) OR (XINUSE AND RFBM), a read-modify-write. Writes no
 * other header byte (XCOMP_BV is left alone) and not bytes 464..511, where Linux keeps the
 * signal frame's software bytes. The caller has made the checks and the translations.
 */
export function xsave(cpu: Cpu, area: XsaveArea, rfbm: number): void {
  if (rfbm & XFEATURE_MASK_X87) {
    const x87 = x87InitImage();
    area.write(0, x87.subarray(0, MXCSR));
    area.write(MXCSR + 8, x87.subarray(MXCSR + 8, 160));
  }
  if (rfbm & (XFEATURE_MASK_SSE | 0x4)) {
    area.write(MXCSR, u32(MXCSR_INIT));
    area.write(MXCSR_MASK, u32(MXCSR_MASK_VALUE));
  }
  if (rfbm & XFEATURE_MASK_SSE) area.write(160, new Uint8Array(256));
  if (rfbm & XFEATURE_MASK_PKRU) area.write(XSAVE_PKRU_OFFSET, u64(BigInt(cpu.pkru >>> 0)));
  const old = getU64(area.read(XSAVE_XSTATE_BV, 8));
  const bv = (old & ~BigInt(rfbm)) | BigInt(cpu.xinuse() & rfbm);
  area.write(XSAVE_XSTATE_BV, u64(bv));
}

/**
 * FXSAVE (Vol. 2 "FXSAVE", Vol. 1 Table 10-2) of the model's x87 and SSE state, always in its
 * init configuration: the 512-byte legacy region with FCW 037FH, MXCSR 1F80H, MXCSR_MASK FFFFH
 * and zeros through byte 463; bytes 464..511 (available to software) are not written. No XSAVE
 * header: FXSAVE has none. The caller has made the checks and the translations.
 */
export function fxsave(area: XsaveArea): void {
  const b = x87InitImage();
  area.write(0, b);
  area.write(MXCSR, u32(MXCSR_INIT));
  area.write(MXCSR_MASK, u32(MXCSR_MASK_VALUE));
  area.write(160, new Uint8Array(464 - 160));
}

/**
 * XSAVEC (Vol. 2 "XSAVEC", Vol. 1 §13.10): TO_BE_SAVED = RFBM AND XINUSE (SSE too when
 * RFBM[1] and MXCSR is not 1F80H: never in the model); saves those components, the extended
 * ones at their compacted places for XCOMP_BV = RFBM; MXCSR and MXCSR_MASK only with SSE
 * saved; then XSTATE_BV = TO_BE_SAVED and XCOMP_BV = RFBM OR bit 63. Writes no other header
 * byte and not bytes 464..511.
 */
export function xsavec(cpu: Cpu, area: XsaveArea, rfbm: number): void {
  const save = rfbm & cpu.xinuse();
  // x87 and SSE are never in use in the model (see the file's XXX), so the legacy region is untouched.
  if (save & XFEATURE_MASK_PKRU) area.write(compactedOffset(rfbm, 9), u64(BigInt(cpu.pkru >>> 0)));
  area.write(XSAVE_XSTATE_BV, u64(BigInt(save)));
  area.write(XSAVE_XCOMP_BV, u64(BigInt(rfbm) | XCOMP_BV_COMPACTED));
}

/**
 * XRSTOR (Vol. 2 "XRSTOR", Vol. 1 §13.8). Reads the header; #GP(0) (false, nothing loaded)
 * for, in the standard form (XCOMP_BV[63] = 0), an XSTATE_BV bit outside XCR0 or header bytes
 * 8..23 not all zero; in the compacted form, an XCOMP_BV[62:0] bit outside XCR0, an XSTATE_BV
 * bit outside XCOMP_BV, or header bytes 16..63 not all zero; in either, an MXCSR it would load
 * with a bit outside MXCSR_MASK. Then each component of RFBM is loaded when its XSTATE_BV bit
 * is set (in the compacted form, and XCOMP_BV's), else initialized: PKRU from the area or 0,
 * written to the CPU's PKRU exactly as WRPKRU would.
 */
export function xrstor(cpu: Cpu, area: XsaveArea, rfbm: number): boolean {
  const hdr = area.read(XSAVE_HDR_OFFSET, XSAVE_HDR_SIZE);
  const xstateBv = getU64(hdr, 0);
  const xcompBv = getU64(hdr, 8);
  const xcr0 = BigInt(cpu.xcr0 >>> 0);
  const zero = (from: number, to: number): boolean => hdr.subarray(from, to).every((b) => b === 0);
  let restore: number;
  let pkruAt: number;
  let mxcsrLoaded: boolean;
  if ((xcompBv & XCOMP_BV_COMPACTED) === 0n) {
    if ((xstateBv & ~xcr0) !== 0n || !zero(8, 24)) return gp(cpu);
    restore = Number(xstateBv) & rfbm;
    pkruAt = XSAVE_PKRU_OFFSET;
    mxcsrLoaded = (rfbm & (XFEATURE_MASK_SSE | 0x4)) !== 0;
  } else {
    const format = xcompBv & ~XCOMP_BV_COMPACTED;
    if ((format & ~xcr0) !== 0n || (xstateBv & ~format) !== 0n || !zero(16, XSAVE_HDR_SIZE)) return gp(cpu);
    restore = Number(format & xstateBv) & rfbm;
    pkruAt = compactedOffset(Number(format), 9);
    mxcsrLoaded = (restore & XFEATURE_MASK_SSE) !== 0;
  }
  if (mxcsrLoaded && (getU32(area.read(MXCSR, 4)) & ~MXCSR_MASK_VALUE) !== 0) return gp(cpu);
  if (rfbm & XFEATURE_MASK_PKRU) cpu.xrstorPkru(restore & XFEATURE_MASK_PKRU ? getU32(area.read(pkruAt, 4)) : 0);
  return true;
}

function gp(cpu: Cpu): false {
  cpu.raiseException(X86_TRAP_GP);
  return false;
}
