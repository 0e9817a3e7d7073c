/**
 * Hostile values for syscall arguments and addresses: the edges a kernel must refuse or handle
 * (0, -1, the ends of the 64-bit range, TASK_SIZE and its neighbours, kernel and non-canonical
 * addresses, unaligned and page-crossing offsets, unknown flag bits). Every value is written as
 * a scenario value (docs/scenario-format.md section 4): a decimal or hexadecimal string, or a
 * `$name`/`@name` term with a constant added, so a generated case is a scenario file as is.
 */
import fc from 'fast-check';
import { TASK_SIZE } from '../src/kernel/layout.js';

/** A constant as a scenario value: hexadecimal for addresses and bit patterns, decimal when small. */
export function lit(v: bigint): string {
  const u = BigInt.asUintN(64, v);
  if (v < 0n && v >= -0x10000n) return String(v);
  return u < 0x10000n ? String(u) : `0x${u.toString(16)}`;
}

/** `$name+off` / `$name-off` (off may be 0). */
export function offset(term: string, off: bigint): string {
  if (off === 0n) return term;
  return off > 0n ? `${term}+0x${off.toString(16)}` : `${term}-0x${(-off).toString(16)}`;
}

const PAGE = 0x1000n;
const TS = BigInt(TASK_SIZE);

/** Integers no syscall argument is ready for. */
export const EDGE_INTEGERS: readonly bigint[] = [
  0n, 1n, -1n, 2n, 7n, 8n, 0x7fn, 0x80n, 0xffn, 0x100n, 0xfffn, PAGE, PAGE + 1n, 0xffffn, 0x10000n,
  0x7fffffffn, 0x80000000n, 0xffffffffn, 0x100000000n, 0x7fffffffffffffffn, -0x8000000000000000n, 0xfffffffffffff000n, -2n, -4095n, -4096n,
];

/** Addresses outside the user half or at its edges: kernel text, the direct map, the cpu_entry_area, vsyscall, non-canonical, TASK_SIZE and neighbours, LA57's user top. */
export const EDGE_ADDRESSES: readonly bigint[] = [
  0n, 1n, 0xfffn, PAGE, 0xffffn, 0x10000n, 0x400000n, 0x400001n, 0x3ffff8n, 0x200000n, 0x40000000n,
  TS - PAGE, TS - 8n, TS - 1n, TS, TS + PAGE, 0x7fffffffe000n, 0x7ffff7ffe000n, 0x00ff800000000000n, 0x00fffffffffff000n,
  0x8000000000000000n, 0xff00000000000000n, 0xff11000000000000n, 0xffff800000000000n, 0xffff888000000000n, 0xffff888000100000n,
  0xfffffe0000000000n, 0xfffffe0000001000n, 0xfffffe8000000000n, 0xffffff0000000000n, 0xffffffff81000000n, 0xffffffff81201000n,
  0xffffffff82000000n, 0xffffffffff600000n, 0xfffffffffffff000n, 0xfffffffffffffff8n, 0xffffffffffffffffn,
];

/** Offsets from the start of a mapped region: inside, at its last byte, unaligned across a page, just past one and two pages, just before it. */
export const REGION_OFFSETS: readonly bigint[] = [0n, 8n, 0x7n, 0xffdn, 0xff8n, 0xfffn, PAGE, PAGE + 8n, 2n * PAGE, 2n * PAGE - 1n, 3n * PAGE, 16n * PAGE, -1n, -8n, -PAGE, 0x200000n];

/** Lengths: zero, a byte, page multiples around the flush ceiling, odd byte counts, and sizes no address space holds. */
export const EDGE_LENGTHS: readonly bigint[] = [
  0n, 1n, 8n, 0xfffn, PAGE, PAGE + 1n, 2n * PAGE, 3n * PAGE - 1n, 16n * PAGE, 33n * PAGE, 34n * PAGE, 0x200000n, 0x1000000n,
  TS, TS - PAGE, 0x7fffffffffffffffn, 0xfffffffffffff000n, 0xffffffffffffffffn, -PAGE,
];

/** A uniformly random 64-bit pattern, or one with a single high bit (unknown flag bits). */
export const randomBits: fc.Arbitrary<bigint> = fc.oneof(
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  fc.integer({ min: 0, max: 63 }).map((b) => 1n << BigInt(b)),
  fc.integer({ min: 0, max: 0xffffffff }).map(BigInt),
);

/** A hostile integer: an edge, a small one, or random bits. */
export const hostileInteger: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...EDGE_INTEGERS).map(lit) },
  { weight: 2, arbitrary: fc.integer({ min: -16, max: 70 }).map((n) => lit(BigInt(n))) },
  { weight: 2, arbitrary: randomBits.map(lit) },
);

/** An OR of some of `bits` (constant names or numbers), perhaps with unknown bits added. */
export function flagsOf(bits: readonly (string | number)[], unknown = 0.2): fc.Arbitrary<string> {
  return fc.tuple(fc.subarray([...bits]), fc.double({ min: 0, max: 1, noNaN: true }), randomBits).map(([set, p, extra]) => {
    const parts = set.map(String);
    if (p < unknown) parts.push(lit(extra));
    return parts.length === 0 ? '0' : parts.join('|');
  });
}
