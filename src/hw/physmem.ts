/**
 * Physical memory: 4 KiB frames, sparse, each allocated the first time it is written.
 *
 * A frame that was never written reads as zeros. Addresses past the installed memory (but
 * below 2^MAXPHYADDR) read as all ones and drop writes, as a PC's unclaimed bus cycles do.
 * A page-table entry read there is all ones: present, and with MAXPHYADDR below 52 it has
 * reserved bits set, so a walk through it ends in a reserved-bit fault; with MAXPHYADDR 52
 * it is a valid leaf whose frame is past RAM again. Either way the simulator does not crash.
 *
 * Page-table entries are read and written as 64-bit words, two little-endian uint32 halves:
 * entry i of a table lives at words 2i (bits 31:0) and 2i+1 (bits 63:32) of its frame.
 * Does not know what a frame holds, who owns it, or whether it is free: that is the kernel's.
 */
import { ArgumentError } from '../errors.js';
import { FP_FRAME, fp_read_range, fp_write_range, type FootprintHost, type FootprintSink } from './footprint.js';
import { PAGE_SIZE } from './pte.js';

const WORDS_PER_FRAME = PAGE_SIZE / 4;
/** Frames per chunk of the frame tables (2 MiB of memory). */
const CHUNK_SHIFT = 9;
const FRAMES_PER_CHUNK = 1 << CHUNK_SHIFT;
const CHUNK_MASK = FRAMES_PER_CHUNK - 1;

export class PhysMem implements FootprintHost {
  /** Installed frames; frame numbers below this are RAM. */
  readonly frameCount: number;
  /**
   * Frame storage as 32-bit words, in chunks of FRAMES_PER_CHUNK frames by frame number (`frame`),
   * each chunk made when a frame of it is first written; a frame is undefined until then.
   * Frames at or past `frameCount` are not RAM: they read as all ones, writes vanish.
   */
  private readonly words: (Uint32Array | undefined)[][];
  /** The same storage as bytes, for data accesses. */
  private readonly bytes: (Uint8Array | undefined)[][];
  /** How many frames have been materialised (written at least once). */
  framesMaterialised = 0;
  /** The explorer's footprint sink while it runs a step, else null (hw/footprint.ts). */
  fp: FootprintSink | null = null;

  /** `sizeBytes`: installed memory, a non-zero multiple of 4 KiB. */
  constructor(sizeBytes: number) {
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % PAGE_SIZE !== 0) {
      throw new ArgumentError('sizeBytes', `${sizeBytes} is not a positive multiple of 4096`);
    }
    this.frameCount = sizeBytes / PAGE_SIZE;
    // Chunks, not one array of every frame: a boot makes one PhysMem, and the explorer one per
    // execution (two arrays of 65,536 entries cost 1 to 2 ms a boot).
    this.words = [];
    this.bytes = [];
  }

  /** Frame `pfn`'s words, or undefined if it was never written (or is not RAM). */
  frame(pfn: number): Uint32Array | undefined {
    const c = this.words[pfn >>> CHUNK_SHIFT];
    return c === undefined ? undefined : c[pfn & CHUNK_MASK];
  }

  /** Installed memory in bytes. */
  get sizeBytes(): number {
    return this.frameCount * PAGE_SIZE;
  }

  /** The frame's word storage, allocating it (zeroed) if absent. Throws for a frame past RAM. */
  frameWords(pfn: number): Uint32Array {
    const f = this.frame(pfn);
    if (f) return f;
    this.checkPfn(pfn, 'pfn');
    return this.materialise(pfn);
  }

  /** Low half (bits 31:0) of 64-bit entry `index` (0..511) of frame `pfn`. */
  readLo(pfn: number, index: number): number {
    if (this.fp) this.fp.read(pfn * 512 + index);
    const f = this.frame(pfn);
    if (f) return f[index << 1];
    return pfn < this.frameCount ? 0 : 0xffffffff;
  }

  /** High half (bits 63:32) of 64-bit entry `index` of frame `pfn`. */
  readHi(pfn: number, index: number): number {
    if (this.fp) this.fp.read(pfn * 512 + index);
    const f = this.frame(pfn);
    if (f) return f[(index << 1) | 1];
    return pfn < this.frameCount ? 0 : 0xffffffff;
  }

  /** Plain (non-atomic) store of a 64-bit entry. Dropped past RAM. */
  write64(pfn: number, index: number, lo: number, hi: number): void {
    if (this.fp) this.fp.write(pfn * 512 + index);
    let f = this.frame(pfn);
    if (!f) {
      if (pfn >= this.frameCount) return;
      f = this.materialise(pfn);
    }
    f[index << 1] = lo;
    f[(index << 1) | 1] = hi;
  }

  /**
   * LOCK CMPXCHG on a 64-bit entry: if it holds (expLo, expHi), store (newLo, newHi) and return
   * true; else return false and change nothing. Atomic by construction: the model runs one step
   * at a time.
   */
  cmpxchg64(pfn: number, index: number, expLo: number, expHi: number, newLo: number, newHi: number): boolean {
    if ((this.readLo(pfn, index) | 0) !== (expLo | 0) || (this.readHi(pfn, index) | 0) !== (expHi | 0)) return false;
    this.write64(pfn, index, newLo, newHi);
    return true;
  }

  /** The 64-bit entry as a bigint (convenience, not for hot paths). */
  read64(pfn: number, index: number): bigint {
    return (BigInt(this.readHi(pfn, index) >>> 0) << 32n) | BigInt(this.readLo(pfn, index) >>> 0);
  }

  /** Reads `length` bytes at physical address `pa` (may cross frames). */
  readBytes(pa: number, length: number): Uint8Array {
    this.checkPa(pa, length);
    if (this.fp) fp_read_range(this.fp, pa, length);
    const out = new Uint8Array(length);
    for (let done = 0; done < length; ) {
      const at = pa + done;
      const pfn = Math.floor(at / PAGE_SIZE);
      const off = at - pfn * PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - off, length - done);
      const f = this.bytesOf(pfn);
      if (f) out.set(f.subarray(off, off + n), done);
      else if (pfn >= this.frameCount) out.fill(0xff, done, done + n);
      done += n;
    }
    return out;
  }

  /** Writes `data` at physical address `pa` (may cross frames). Bytes past RAM are dropped. */
  writeBytes(pa: number, data: Uint8Array): void {
    this.checkPa(pa, data.length);
    if (this.fp) fp_write_range(this.fp, pa, data.length);
    for (let done = 0; done < data.length; ) {
      const at = pa + done;
      const pfn = Math.floor(at / PAGE_SIZE);
      const off = at - pfn * PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - off, data.length - done);
      if (pfn < this.frameCount) {
        if (!this.bytesOf(pfn)) this.materialise(pfn);
        this.bytesOf(pfn)!.set(data.subarray(done, done + n), off);
      }
      done += n;
    }
  }

  /** Fills frame `pfn` with zeros (as clear_page does). Does not free it. */
  zeroFrame(pfn: number): void {
    this.checkPfn(pfn, 'pfn');
    if (this.fp) this.fp.write(FP_FRAME + pfn);
    this.frame(pfn)?.fill(0);
  }

  /** Copies frame `src` to frame `dst` (as copy_page does). */
  copyFrame(dst: number, src: number): void {
    this.checkPfn(dst, 'dst');
    this.checkPfn(src, 'src');
    if (this.fp) {
      this.fp.read(FP_FRAME + src);
      this.fp.write(FP_FRAME + dst);
    }
    const s = this.frame(src);
    if (s) this.frameWords(dst).set(s);
    else this.frame(dst)?.fill(0);
  }

  /** Frame `pfn`'s bytes, or undefined if it was never written. */
  private bytesOf(pfn: number): Uint8Array | undefined {
    const c = this.bytes[pfn >>> CHUNK_SHIFT];
    return c === undefined ? undefined : c[pfn & CHUNK_MASK];
  }

  private materialise(pfn: number): Uint32Array {
    const buf = new ArrayBuffer(PAGE_SIZE);
    const w = new Uint32Array(buf, 0, WORDS_PER_FRAME);
    const c = pfn >>> CHUNK_SHIFT;
    (this.words[c] ??= new Array<Uint32Array | undefined>(FRAMES_PER_CHUNK))[pfn & CHUNK_MASK] = w;
    (this.bytes[c] ??= new Array<Uint8Array | undefined>(FRAMES_PER_CHUNK))[pfn & CHUNK_MASK] = new Uint8Array(buf);
    this.framesMaterialised++;
    return w;
  }

  private checkPfn(pfn: number, name: string): void {
    if (!Number.isInteger(pfn) || pfn < 0 || pfn >= this.frameCount) {
      throw new ArgumentError(name, `frame ${pfn} is not installed memory (0..${this.frameCount - 1})`);
    }
  }

  private checkPa(pa: number, length: number): void {
    if (!Number.isSafeInteger(pa) || pa < 0) throw new ArgumentError('pa', `${pa} is not a physical address`);
    if (!Number.isSafeInteger(length) || length < 0) throw new ArgumentError('length', `${length} is not a length`);
  }
}
