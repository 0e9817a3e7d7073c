/**
 * Kernel access to user memory (arch/x86/include/asm/uaccess.h, lib/usercopy): access_ok,
 * then the copy with SMAP opened (STAC ... CLAC). A #PF during the copy runs the fault handler
 * in kernel mode: a fault it can fix (demand paging, COW) is retried; one it cannot is caught
 * by the exception fixup and the copy fails, so the syscall returns -EFAULT.
 */
import { Access } from '../hw/rights.js';
import { FAULT, PENDING } from '../hw/mmu.js';
import { X86_TRAP_PF } from '../hw/regs.js';
import { do_user_addr_fault, FAULT_EFAULT } from './fault.js';
import type { Kernel, PerCpu } from './kernel.js';
import { STEP_UACCESS, type KSteps } from './steps.js';
import type { Task } from './task.js';
import { EFAULT, ENAMETOOLONG } from './uapi.js';

/** __access_ok: the range [addr, addr + size) lies in user space (below TASK_SIZE_MAX). */
export function access_ok(t: Task, addr: bigint, size: number): boolean {
  const limit = BigInt(t.mm ? t.mm.task_size : 0);
  return addr >= 0n && addr <= limit && BigInt(size) <= limit - addr;
}

/**
 * Translates each page of [addr, addr + size) for `kind` at CPL 0 with EFLAGS.AC set,
 * faulting pages in as needed; returns the physical pieces [pa, len, ...], or null for -EFAULT.
 */
function* user_pieces(k: Kernel, pc: PerCpu, t: Task, addr: bigint, size: number, kind: number, nofault = false): KSteps<number[] | null> {
  if (!access_ok(t, addr, size)) return null;
  const cpu = pc.cpu;
  const pieces: number[] = [];
  let a = Number(addr);
  for (let left = size; left > 0; ) {
    const n = Math.min(left, 4096 - (a % 4096));
    for (;;) {
      pc.touch = a;
      yield STEP_UACCESS;
      cpu.stac();
      const hi = Math.floor(a / 2 ** 32);
      let pa = cpu.accessStart(hi, a >>> 0, kind);
      while (pa === PENDING) pa = cpu.accessStep();
      cpu.clac();
      if (pa !== FAULT) {
        pieces.push(pa, n);
        break;
      }
      if (cpu.faultVector !== X86_TRAP_PF) return null;
      const code = cpu.faultErrorCode;
      cpu.clearFault();
      // pagefault_disable(): the fault handler goes straight to the exception fixup.
      if (nofault) return null;
      const r = yield* do_user_addr_fault(k, pc, t, a, code, true);
      if (r === FAULT_EFAULT) return null;
    }
    a += n;
    left -= n;
  }
  return pieces;
}

/** copy_to_user: writes `data` at user address `addr`; false means -EFAULT (nothing is promised about a partial write). */
export function* copy_to_user(k: Kernel, pc: PerCpu, t: Task, addr: bigint, data: Uint8Array): KSteps<boolean> {
  const pieces = yield* user_pieces(k, pc, t, addr, data.length, Access.Write);
  if (!pieces) return false;
  for (let i = 0, at = 0; i < pieces.length; i += 2) {
    k.machine.mem.writeBytes(pieces[i], data.subarray(at, at + pieces[i + 1]));
    at += pieces[i + 1];
  }
  return true;
}

/** put_user of a u64 at `addr` (little-endian, as the processor stores it): 0, or -EFAULT. */
export function* put_user_u64(k: Kernel, pc: PerCpu, t: Task, addr: bigint, v: bigint): KSteps<number> {
  const b = new Uint8Array(8);
  putU64(b, 0, v);
  return (yield* copy_to_user(k, pc, t, addr, b)) ? 0 : -EFAULT;
}

/**
 * write_user_shstk_64: WRUSS, an 8-byte shadow-stack write to user address `addr` made from
 * the kernel (it counts as a user access, so only a shadow-stack page takes it); a fault that
 * cannot be fixed gives false (-EFAULT) through the exception fixup.
 */
export function* write_user_shstk_64(k: Kernel, pc: PerCpu, t: Task, addr: bigint, value: bigint): KSteps<boolean> {
  const pieces = yield* user_pieces(k, pc, t, addr, 8, Access.Wruss);
  if (!pieces || pieces.length !== 2) return false;
  const b = new Uint8Array(8);
  putU64(b, 0, value);
  k.machine.mem.writeBytes(pieces[0], b);
  return true;
}

/** copy_from_user: reads `size` bytes at user address `addr`, or null for -EFAULT. */
export function* copy_from_user(k: Kernel, pc: PerCpu, t: Task, addr: bigint, size: number): KSteps<Uint8Array | null> {
  const pieces = yield* user_pieces(k, pc, t, addr, size, Access.Read);
  if (!pieces) return null;
  const out = new Uint8Array(size);
  for (let i = 0, at = 0; i < pieces.length; i += 2) {
    out.set(k.machine.mem.readBytes(pieces[i], pieces[i + 1]), at);
    at += pieces[i + 1];
  }
  return out;
}

/**
 * copy_from_user under pagefault_disable() (mfill_atomic_pte_copy): reads `size` bytes at user
 * address `addr` without handling any fault, or null when a page is not mapped for reading.
 */
export function* copy_from_user_nofault(k: Kernel, pc: PerCpu, t: Task, addr: bigint, size: number): KSteps<Uint8Array | null> {
  const pieces = yield* user_pieces(k, pc, t, addr, size, Access.Read, true);
  if (!pieces) return null;
  const out = new Uint8Array(size);
  for (let i = 0, at = 0; i < pieces.length; i += 2) {
    out.set(k.machine.mem.readBytes(pieces[i], pieces[i + 1]), at);
    at += pieces[i + 1];
  }
  return out;
}

/**
 * _copy_to_user as the file paths use it (copy_page_to_iter): writes `data` at `addr` a page
 * at a time, each page translated and written in its own step, and stops at the first page
 * that faults beyond repair. Returns the bytes not copied (0: all; data.length for a range
 * access_ok refuses).
 */
export function* copy_to_user_partial(k: Kernel, pc: PerCpu, t: Task, addr: bigint, data: Uint8Array): KSteps<number> {
  if (!access_ok(t, addr, data.length)) return data.length;
  let done = 0;
  while (done < data.length) {
    const a = addr + BigInt(done);
    const n = Math.min(data.length - done, 4096 - Number(a % 4096n));
    const pieces = yield* user_pieces(k, pc, t, a, n, Access.Write);
    if (!pieces) break;
    k.machine.mem.writeBytes(pieces[0], data.subarray(done, done + n));
    done += n;
  }
  return data.length - done;
}

/**
 * _copy_from_user as the file paths use it (copy_page_from_iter): reads `size` bytes at
 * `addr` a page at a time, stopping at the first page that faults beyond repair. Returns what
 * was read (shorter than `size` after a fault; empty for a range access_ok refuses).
 */
export function* copy_from_user_partial(k: Kernel, pc: PerCpu, t: Task, addr: bigint, size: number): KSteps<Uint8Array> {
  if (!access_ok(t, addr, size)) return new Uint8Array(0);
  const out = new Uint8Array(size);
  let done = 0;
  while (done < size) {
    const a = addr + BigInt(done);
    const n = Math.min(size - done, 4096 - Number(a % 4096n));
    const pieces = yield* user_pieces(k, pc, t, a, n, Access.Read);
    if (!pieces) break;
    out.set(k.machine.mem.readBytes(pieces[0], n), done);
    done += n;
  }
  return out.subarray(0, done);
}

/**
 * strncpy_from_user (getname): the NUL-terminated string at `addr`, read a page at a time,
 * at most `max` bytes with its NUL; -EFAULT for an address that faults before the NUL,
 * -ENAMETOOLONG when no NUL comes within `max` bytes.
 */
export function* strncpy_from_user(k: Kernel, pc: PerCpu, t: Task, addr: bigint, max: number): KSteps<string | number> {
  let s = '';
  let a = addr;
  for (;;) {
    const n = Math.min(max - s.length, 4096 - Number(((a % 4096n) + 4096n) % 4096n));
    if (n <= 0) return -ENAMETOOLONG;
    if (!access_ok(t, a, n)) return -EFAULT;
    const pieces = yield* user_pieces(k, pc, t, a, n, Access.Read);
    if (!pieces) return -EFAULT;
    const bytes = k.machine.mem.readBytes(pieces[0], n);
    const nul = bytes.indexOf(0);
    const end = nul < 0 ? n : nul;
    for (let i = 0; i < end; i++) s += String.fromCharCode(bytes[i]);
    if (nul >= 0) return s;
    if (s.length >= max) return -ENAMETOOLONG;
    a += BigInt(n);
  }
}

/** Little-endian helpers for building and parsing user structures. */
export function putU64(b: Uint8Array, off: number, v: bigint): void {
  new DataView(b.buffer, b.byteOffset).setBigUint64(off, BigInt.asUintN(64, v), true);
}
export function getU64(b: Uint8Array, off: number): bigint {
  return new DataView(b.buffer, b.byteOffset).getBigUint64(off, true);
}
export function putU16(b: Uint8Array, off: number, v: number): void {
  new DataView(b.buffer, b.byteOffset).setUint16(off, v & 0xffff, true);
}
export function putU32(b: Uint8Array, off: number, v: number): void {
  new DataView(b.buffer, b.byteOffset).setUint32(off, v >>> 0, true);
}
