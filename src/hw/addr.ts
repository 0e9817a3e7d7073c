/**
 * 64-bit values as two uint32 halves.
 *
 * Linear addresses, CR3 and page-table entries are 64-bit. A JS number is exact only to 2^53,
 * which loses the low bits of kernel-half addresses (0xffff888000000123) and of every LA57
 * kernel address, and BigInt is too slow for hot paths (DESIGN.md "Speed"). So the hot paths
 * take a 64-bit value as `hi` (bits 63:32) and `lo` (bits 31:0), each a uint32 or int32; the
 * convenience API takes `bigint | number` and splits it here.
 */
import { ArgumentError } from '../errors.js';

/** A 64-bit value as the convenience API accepts it: a bigint, or a safe non-negative integer. */
export type U64 = bigint | number;

const TWO32 = 4294967296;
const MASK64 = (1n << 64n) - 1n;

/** Bits 63:32 of `x` as a uint32. Throws ArgumentError(`name`) if `x` is not a 64-bit value. */
export function hi32(x: U64, name = 'address'): number {
  if (typeof x === 'bigint') {
    if (x < -(1n << 63n) || x > MASK64) throw new ArgumentError(name, `${x} does not fit in 64 bits`);
    return Number((x & MASK64) >> 32n);
  }
  checkNumber(x, name);
  return Math.floor(x / TWO32) >>> 0;
}

/** Bits 31:0 of `x` as a uint32. Throws ArgumentError(`name`) if `x` is not a 64-bit value. */
export function lo32(x: U64, name = 'address'): number {
  if (typeof x === 'bigint') {
    if (x < -(1n << 63n) || x > MASK64) throw new ArgumentError(name, `${x} does not fit in 64 bits`);
    return Number(x & 0xffffffffn);
  }
  checkNumber(x, name);
  return x >>> 0;
}

function checkNumber(x: number, name: string): void {
  if (!Number.isSafeInteger(x) || x < 0) {
    throw new ArgumentError(name, `${x} is not a non-negative safe integer; pass a bigint for 64-bit values`);
  }
}

/** `x` if it is a bigint holding an unsigned 64-bit value; else throws ArgumentError(`name`). */
export function u64Bigint(x: unknown, name: string): bigint {
  if (typeof x !== 'bigint' || x < 0n || x > MASK64) throw new ArgumentError(name, `${String(x)} is not an unsigned 64-bit value (a bigint)`);
  return x;
}

/** Joins two halves into the unsigned 64-bit bigint. */
export function join64(hi: number, lo: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/** Joins two halves into a number; exact only when the value is below 2^53 (physical addresses). */
export function joinNumber(hi: number, lo: number): number {
  return (hi >>> 0) * TWO32 + (lo >>> 0);
}

/** `0x` and 16 hex digits, the way the SDM and Linux print 64-bit values. */
export function hex64(hi: number, lo: number): string {
  return '0x' + (hi >>> 0).toString(16).padStart(8, '0') + (lo >>> 0).toString(16).padStart(8, '0');
}

/**
 * Whether a linear address is canonical: bits 63:47 all equal with 4-level paging, bits 63:56
 * with 5-level paging (CR4.LA57). SDM Vol. 3A §3.3.7.1, §4.5.
 */
export function isCanonical(hi: number, la57: boolean): boolean {
  const top = la57 ? hi >> 24 : hi >> 15;
  return top === 0 || top === -1;
}

/** The lowest top-half address a number holds exactly as its negative two's-complement value (-2^53). */
const IP_TOP_HALF_MIN = (1n << 64n) - (1n << 53n);

/**
 * The number that stands for 64-bit instruction address `addr` (the model's `Task.pc`): a
 * top-half address from 0xffe0000000000000 up (the vsyscall page's among them) as its negative
 * two's-complement value, which a number holds exactly and whose low and high 32 bits
 * (`>>> 0`, floor division by 2^32) are the address's; any other address as its low 48 bits.
 */
export function ip_of(addr: bigint): number {
  const a = BigInt.asUintN(64, addr);
  return a >= IP_TOP_HALF_MIN ? Number(BigInt.asIntN(64, a)) : Number(a & 0xffffffffffffn);
}
