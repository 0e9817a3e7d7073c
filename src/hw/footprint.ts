/**
 * Footprint recording: while the explorer runs a step it installs a sink on the machine's
 * physical memory (`PhysMem.fp`), and physical memory and the page walker report what the step
 * read and wrote; the kernel's objects report their fields through the same kind of sink
 * (src/track.ts). With no sink installed (every plain run) each hook is one test of that
 * field.
 *
 * Keys are numbers:
 *  - a physical 8-byte word: pa / 8 (>= 0, below FP_FRAME);
 *  - a whole frame (clear_page, copy_page, long copies): FP_FRAME + pfn; it overlaps every word
 *    of the frame;
 *  - the explorer's tokens (fp_cpu, FP_EVICT) at FP_TOKEN and above, and lock ids
 *    (negative, kernel/mmput.ts);
 *  - a field of a tracked kernel object (src/track.ts): FP_OBJ + id * FIELD_SPAN + field, field
 *    0 standing for the whole object and overlapping each of its fields.
 */

/** Where a step's accesses go. `read` and `write` take a key. */
export interface FootprintSink {
  read(key: number): void;
  write(key: number): void;
}

/** Frame keys start here (2^40: past any word key of a 2^43-byte memory). */
export const FP_FRAME = 2 ** 40;
/** Token keys start here. */
export const FP_TOKEN = 2 ** 41;
/** Tracked objects' field keys start here (src/track.ts). */
export const FP_OBJ = 2 ** 42;
/** Keys per tracked object: ids up to 2^29 fit below 2^53. */
export const FIELD_SPAN = 2 ** 24;
/** Field numbers from here on are array indices (FIELD_INDEX + i); below, named properties. */
export const FIELD_INDEX = 4096;
/** The explorer's eviction budget (an eviction anywhere uses it up for every CPU). */
export const FP_EVICT = FP_TOKEN + 2;
/** CPU c's TLB and registers (touched by its own steps and by evictions of its entries). */
export const fp_cpu = (c: number): number => FP_TOKEN + 0x300 + c;

/** Where the sink is installed: the machine's physical memory (`PhysMem.fp`), which every CPU and the kernel reach. */
export interface FootprintHost {
  fp: FootprintSink | null;
}

/** Records a read of bytes [pa, pa + length): words for short accesses, frames for long ones. */
export function fp_read_range(s: FootprintSink, pa: number, length: number): void {
  fp_range(s, pa, length, false);
}

/** Records a write of bytes [pa, pa + length). */
export function fp_write_range(s: FootprintSink, pa: number, length: number): void {
  fp_range(s, pa, length, true);
}

function fp_range(s: FootprintSink, pa: number, length: number, write: boolean): void {
  if (length <= 0) return;
  if (length > 64) {
    for (let f = Math.floor(pa / 4096); f <= Math.floor((pa + length - 1) / 4096); f++) (write ? s.write(FP_FRAME + f) : s.read(FP_FRAME + f));
    return;
  }
  for (let w = Math.floor(pa / 8); w <= Math.floor((pa + length - 1) / 8); w++) (write ? s.write(w) : s.read(w));
}

/** Whether two keys overlap: equal, a frame and one of its words, or a tracked object and one of its fields. */
export function fp_overlap(a: number, b: number): boolean {
  if (a === b) return true;
  if (a >= FP_OBJ) return b >= FP_OBJ && Math.floor((a - FP_OBJ) / FIELD_SPAN) === Math.floor((b - FP_OBJ) / FIELD_SPAN) && ((a - FP_OBJ) % FIELD_SPAN === 0 || (b - FP_OBJ) % FIELD_SPAN === 0);
  if (b >= FP_OBJ) return false;
  if (a >= FP_FRAME && a < FP_TOKEN) return b >= 0 && b < FP_FRAME && Math.floor(b / 512) === a - FP_FRAME;
  if (b >= FP_FRAME && b < FP_TOKEN) return a >= 0 && a < FP_FRAME && Math.floor(a / 512) === b - FP_FRAME;
  return false;
}
