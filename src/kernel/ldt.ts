/**
 * The LDT (arch/x86/kernel/ldt.c, arch/x86/include/uapi/asm/ldt.h, asm/desc.h): modify_ldt's
 * read and write functions with Linux 6.12's checks in its order, the per-mm ldt_struct that
 * only grows, its read-only remap into one of two slots of the mm's page tables under PTI
 * (alternating on each write so other CPUs keep using the old one until the IPI), install_ldt
 * with its IPIs, ldt_dup_context at fork and the teardown at exit and mmdrop.
 *
 * The entries live in real frames (one zeroed page up to 4 KiB, separate pages as vmalloc
 * gives above), so the remap, a transient read and the processor's descriptor reads (MOV Sreg,
 * LAR, LSL, VERR, VERW through LDTR) see the bytes fill_ldt wrote.
 */
import { set_ldt } from './desc.js';
import type { Kernel, PerCpu } from './kernel.js';
import { __PAGE_KERNEL_RO, kindex, LDT_SLOT_STRIDE } from './layout.js';
import type { MmStruct } from './mm.js';
import { ldtSemId } from './mmput.js';
import { boot_pgd_entry, clear_kernel_page_in_mm, map_kernel_page_in_mm, propagate_kernel_slot_to_user } from './pti.js';
import { STEP_IPI, STEP_LOCK, STEP_UNLOCK, STEP_WAIT, type KPath } from './steps.js';
import type { Task } from './task.js';
import { flush_tlb_mm_range, TLB_FLUSH_ALL, type FlushTlbInfo } from './tlbflush.js';
import { copy_from_user, copy_to_user } from './uaccess.js';
import { EFAULT, EINVAL, ENOMEM, ENOSYS } from './uapi.js';
import { track } from '../track.js';

/** LDT_ENTRIES, LDT_ENTRY_SIZE: at most 8192 descriptors of 8 bytes (64 KiB). */
export const LDT_ENTRIES = 8192;
export const LDT_ENTRY_SIZE = 8;
/** sizeof(struct user_desc). */
export const USER_DESC_SIZE = 16;
/** MODIFY_LDT_CONTENTS_*: the `contents` field. */
export const MODIFY_LDT_CONTENTS_DATA = 0;
export const MODIFY_LDT_CONTENTS_STACK = 1;
export const MODIFY_LDT_CONTENTS_CODE = 2;

/** struct ldt_struct: the entries' frames, their count, and the PTI slot they are mapped at (-1: none). */
export interface LdtStruct {
  pfns: number[];
  nr_entries: number;
  slot: number;
}

/** struct user_desc, decoded. */
export interface UserDesc {
  entry_number: number;
  base_addr: number;
  limit: number;
  seg_32bit: number;
  contents: number;
  read_exec_only: number;
  limit_in_pages: number;
  seg_not_present: number;
  useable: number;
  lm: number;
}

/** Decodes the 16 bytes of a struct user_desc (three u32, then the bitfields from bit 0 up). */
export function parse_user_desc(b: Uint8Array): UserDesc {
  const dv = new DataView(b.buffer, b.byteOffset, USER_DESC_SIZE);
  const f = dv.getUint32(12, true);
  return {
    entry_number: dv.getUint32(0, true),
    base_addr: dv.getUint32(4, true),
    limit: dv.getUint32(8, true),
    seg_32bit: f & 1,
    contents: (f >>> 1) & 3,
    read_exec_only: (f >>> 3) & 1,
    limit_in_pages: (f >>> 4) & 1,
    seg_not_present: (f >>> 5) & 1,
    useable: (f >>> 6) & 1,
    lm: (f >>> 7) & 1,
  };
}

/**
 * LDT_empty (asm/desc.h): the user_desc that asks for an entry to be cleared. It ignores lm
 * ("since 32-bit apps don't have that field"), as 6.12 does (host-checked on 6.18: a 0x11 write
 * of it with lm set clears the entry).
 */
export function LDT_empty(i: UserDesc): boolean {
  return i.base_addr === 0 && i.limit === 0 && i.contents === 0 && i.read_exec_only === 1 && i.seg_32bit === 0
    && i.limit_in_pages === 0 && i.seg_not_present === 1 && i.useable === 0;
}

/**
 * LDT_zero (asm/desc.h): every field zero but entry_number (lm is not looked at), which
 * set_thread_area also takes as a request to clear the entry (host-checked: lm 1 is accepted).
 */
export function LDT_zero(i: UserDesc): boolean {
  return i.base_addr === 0 && i.limit === 0 && i.contents === 0 && i.read_exec_only === 0 && i.seg_32bit === 0
    && i.limit_in_pages === 0 && i.seg_not_present === 0 && i.useable === 0;
}

/**
 * fill_ldt (asm/desc.h): the 8-byte descriptor as two little-endian u32 words. The accessed
 * bit of `type` is always set (so the LDT can be mapped read-only); S=1, DPL=3, L=0.
 */
export function fill_ldt(i: UserDesc): [number, number] {
  const type = ((i.read_exec_only ^ 1) << 1) | (i.contents << 2) | 1;
  const lo = ((i.limit & 0xffff) | ((i.base_addr & 0xffff) << 16)) >>> 0;
  const hi = (((i.base_addr >>> 16) & 0xff) | (type << 8) | (1 << 12) | (3 << 13) | ((i.seg_not_present ^ 1) << 15)
    | (((i.limit >>> 16) & 0xf) << 16) | (i.useable << 20) | (i.seg_32bit << 22) | (i.limit_in_pages << 23)
    | (((i.base_addr >>> 24) & 0xff) << 24)) >>> 0;
  return [lo, hi];
}

/** ldt_slot_va: the address of PTI remap slot `slot`. */
export function ldt_slot_va(k: Kernel, slot: number): bigint {
  return k.layout.ldt_base_addr + BigInt(slot) * LDT_SLOT_STRIDE;
}

/**
 * alloc_ldt_struct: an ldt_struct of `num_entries` zeroed entries (failure injection kind
 * `ldt` counts the struct and each entries page). Returns null on failure, with nothing held.
 */
export function alloc_ldt_struct(k: Kernel, num_entries: number): LdtStruct | null {
  if (num_entries > LDT_ENTRIES) return null;
  if (k.pages.should_fail_alloc('ldt')) return null;
  const pages = Math.ceil((num_entries * LDT_ENTRY_SIZE) / 4096);
  const pfns: number[] = [];
  for (let i = 0; i < pages; i++) {
    const pfn = k.pages.alloc_page(0, true, 'ldt');
    if (pfn < 0) {
      for (const p of pfns) k.pages.put_page(p);
      return null;
    }
    pfns.push(pfn);
  }
  return { pfns, nr_entries: num_entries, slot: -1 };
}

/** free_ldt_struct: frees the entries' frames. */
export function free_ldt_struct(k: Kernel, ldt: LdtStruct | null): void {
  if (!ldt) return;
  for (const p of ldt.pfns) k.pages.put_page(p);
  ldt.pfns.length = 0;
}

/**
 * Reads descriptor `n` of `ldt` (its low and high words) from its frames, through the recorded
 * accessors so that the explorer sees the read in the step's footprint.
 */
function ldt_entry(k: Kernel, ldt: LdtStruct, n: number): [number, number] {
  const pfn = ldt.pfns[Math.floor((n * LDT_ENTRY_SIZE) / 4096)];
  const i = n % (4096 / LDT_ENTRY_SIZE);
  return [k.machine.mem.readLo(pfn, i) >>> 0, k.machine.mem.readHi(pfn, i) >>> 0];
}

/** Writes descriptor `n` of `ldt`, a recorded store (the step's footprint has it). */
function set_ldt_entry(k: Kernel, ldt: LdtStruct, n: number, lo: number, hi: number): void {
  const pfn = ldt.pfns[Math.floor((n * LDT_ENTRY_SIZE) / 4096)];
  k.machine.mem.write64(pfn, n % (4096 / LDT_ENTRY_SIZE), lo, hi);
}

/** The bytes of the first `n` bytes of `ldt`'s entries. */
function ldt_bytes(k: Kernel, ldt: LdtStruct, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let off = 0; off < n; off += 4096) out.set(k.machine.mem.readBytes(ldt.pfns[off / 4096] * 4096, Math.min(4096, n - off)), off);
  return out;
}

/**
 * map_ldt_struct: under PTI, maps the entries read-only, NX and not global at slot `slot` of
 * the mm's kernel copy (tables accounted to the mm), then (map_ldt_struct_to_user) makes the
 * user copy share the slot's PGD entry. -ENOMEM when a table allocation fails.
 */
export function map_ldt_struct(k: Kernel, mm: MmStruct, ldt: LdtStruct, slot: number): number {
  if (!k.pti) return 0;
  const base = ldt_slot_va(k, slot);
  for (let i = 0; i < ldt.pfns.length; i++) {
    if (map_kernel_page_in_mm(k, mm, base + BigInt(i * 4096), ldt.pfns[i], __PAGE_KERNEL_RO) < 0) return -ENOMEM;
  }
  if (!mm.ldt) propagate_kernel_slot_to_user(k, mm, k.layout.ldt_base_addr);
  ldt.slot = slot;
  if (k.events.on) k.emit({ type: 'ldt_map', cpu: -1, mm: mm.ctx_id, slot, va: base, pages: ldt.pfns.length });
  return 0;
}

/** unmap_ldt_struct: clears a replaced LDT's remap PTEs and flushes them from every CPU of the mm. */
export function* unmap_ldt_struct(k: Kernel, pc: PerCpu, mm: MmStruct, ldt: LdtStruct | null): KPath {
  if (!k.pti || !ldt || ldt.slot < 0) return 0;
  const base = ldt_slot_va(k, ldt.slot);
  for (let i = 0; i < ldt.pfns.length; i++) clear_kernel_page_in_mm(k, mm, base + BigInt(i * 4096));
  // The slot's kernel addresses do not fit flush_tlb_mm_range's number range: flush the whole mm.
  yield* flush_tlb_mm_range(k, pc, mm, 0, TLB_FLUSH_ALL, 12, false);
  return 0;
}

/**
 * free_ldt_pgtables: under PTI, frees the page tables of the LDT remap area (free_pgd_range
 * over [LDT_BASE_ADDR, LDT_END_ADDR)). Harmless when there are none.
 * XXX: Linux leaves the user copy's PGD entry as it was; the model clears it too.
 */
export function free_ldt_pgtables(k: Kernel, mm: MmStruct): void {
  if (!k.pti) return;
  const i = kindex(k.layout.ldt_base_addr, k.levels);
  mm.pgtables.freeKernelSlot(i, boot_pgd_entry(k, i));
}

/** destroy_context_ldt (at the last mmdrop): frees the ldt_struct. */
export function destroy_context_ldt(k: Kernel, mm: MmStruct): void {
  free_ldt_struct(k, mm.ldt);
  mm.ldt = null;
}

/**
 * load_mm_ldt + set_ldt: loads LDTR from `mm`'s LDT (the remap slot under PTI, the entries'
 * direct-map address otherwise) through GDT_ENTRY_LDT, or clears it.
 */
export function load_mm_ldt(k: Kernel, pc: PerCpu, mm: MmStruct): void {
  const ldt = mm.ldt;
  if (ldt) {
    pc.ldtBase = k.pti ? ldt_slot_va(k, ldt.slot) : k.layout.page_offset_base + BigInt(ldt.pfns[0] * 4096);
    pc.ldtEntries = ldt.nr_entries;
  } else {
    pc.ldtBase = 0n;
    pc.ldtEntries = 0;
  }
  set_ldt(k, pc, pc.ldtBase, pc.ldtEntries);
  if (k.events.on) k.emit({ type: 'ldt_load', cpu: pc.id, mm: mm.ctx_id, base: pc.ldtBase, entries: pc.ldtEntries });
}

/** switch_ldt: at a context switch, reloads LDTR if the old or the new mm has an LDT. */
export function switch_ldt(k: Kernel, pc: PerCpu, prev: MmStruct | null, next: MmStruct): void {
  if ((prev && prev.ldt) || next.ldt) load_mm_ldt(k, pc, next);
}

/**
 * install_ldt: publishes the new LDT (smp_store_release) and runs flush_ldt on every CPU in
 * the mm's cpumask (on_each_cpu_mask, waiting): each CPU still running the mm reloads LDTR.
 */
function* install_ldt(k: Kernel, pc: PerCpu, mm: MmStruct, ldt: LdtStruct): KPath {
  mm.ldt = ldt;
  const info: FlushTlbInfo = track({ func: 'flush_ldt', mm, start: 0, end: 0, stride_shift: 0, freed_tables: false, new_tlb_gen: 0, initiating_cpu: pc.id, pending: 0 });
  for (let c = 0; c < k.percpu.length; c++) {
    if (c === pc.id || !mm.cpumask[c]) continue;
    info.pending++;
    pc.touch = c;
    yield STEP_IPI;
    k.percpu[c].ipis.push(info);
    k.emitIpi(pc, c);
  }
  if (pc.loaded_mm === mm) load_mm_ldt(k, pc, mm);
  while (info.pending > 0) {
    pc.touch = -1;
    yield STEP_WAIT;
  }
  return 0;
}

/** flush_ldt, on a CPU an install_ldt IPI reached: reload LDTR if this CPU runs the mm. */
export function flush_ldt(k: Kernel, pc: PerCpu, mm: MmStruct): void {
  if (pc.loaded_mm !== mm) return;
  load_mm_ldt(k, pc, mm);
}

/** read_ldt (func 0): copies min(bytecount, nr_entries*8) bytes, zero-fills up to bytecount (capped at 64 KiB), returns bytecount. */
function* read_ldt(k: Kernel, pc: PerCpu, t: Task, ptr: bigint, bytecount: bigint): KPath {
  const ldt = t.mm!.ldt;
  if (!ldt) return 0;
  const count = Number(bytecount > BigInt(LDT_ENTRY_SIZE * LDT_ENTRIES) ? BigInt(LDT_ENTRY_SIZE * LDT_ENTRIES) : bytecount);
  const size = Math.min(ldt.nr_entries * LDT_ENTRY_SIZE, count);
  if (size > 0 && !(yield* copy_to_user(k, pc, t, ptr, ldt_bytes(k, ldt, size)))) return -EFAULT;
  if (size !== count && !(yield* copy_to_user(k, pc, t, ptr + BigInt(size), new Uint8Array(count - size)))) return -EFAULT;
  return count;
}

/** read_default_ldt (func 2): zero-fills min(bytecount, 128) bytes and returns that count. */
function* read_default_ldt(k: Kernel, pc: PerCpu, t: Task, ptr: bigint, bytecount: bigint): KPath {
  const count = bytecount > 128n ? 128 : Number(bytecount);
  if (count > 0 && !(yield* copy_to_user(k, pc, t, ptr, new Uint8Array(count)))) return -EFAULT;
  return count;
}

/**
 * write_ldt (func 1, `oldmode`, and 0x11): checks the user_desc in 6.12's order, builds the
 * descriptor, then under ldt_usr_sem makes a new ldt_struct with max(entry+1, old count)
 * entries, maps it at the other slot, installs it, unmaps and frees the old one.
 */
function* write_ldt(k: Kernel, pc: PerCpu, t: Task, ptr: bigint, bytecount: bigint, oldmode: boolean): KPath {
  const mm = t.mm!;
  if (bytecount !== BigInt(USER_DESC_SIZE)) return -EINVAL;
  const raw = yield* copy_from_user(k, pc, t, ptr, USER_DESC_SIZE);
  if (!raw) return -EFAULT;
  const info = parse_user_desc(raw);
  if (info.entry_number >= LDT_ENTRIES) return -EINVAL;
  if (info.contents === 3 && (oldmode || info.seg_not_present === 0)) return -EINVAL;
  let desc: [number, number];
  if ((oldmode && info.base_addr === 0 && info.limit === 0) || LDT_empty(info)) desc = [0, 0];
  else {
    // allow_16bit_segments(): CONFIG_X86_16BIT is on, and the model is not a Xen PV guest.
    desc = fill_ldt(info);
    if (oldmode) desc[1] &= ~(1 << 20); // ldt.avl = 0
  }
  // down_write_killable(&mm->context.ldt_usr_sem)
  pc.touch = ldtSemId(mm);
  // The attempt and each retry test and take the lock in one step (a test-and-set).
  yield STEP_LOCK;
  while (mm.ldt_usr_sem !== 0) yield STEP_WAIT;
  mm.ldt_usr_sem = t.tid;
  const r = yield* write_ldt_locked(k, pc, mm, info.entry_number, desc);
  pc.touch = ldtSemId(mm);
  yield STEP_UNLOCK;
  mm.ldt_usr_sem = 0;
  return r;
}

/** The part of write_ldt under ldt_usr_sem. */
function* write_ldt_locked(k: Kernel, pc: PerCpu, mm: MmStruct, entry: number, desc: [number, number]): KPath {
  const old_ldt = mm.ldt;
  const old_nr_entries = old_ldt ? old_ldt.nr_entries : 0;
  const new_nr_entries = Math.max(entry + 1, old_nr_entries);
  const new_ldt = alloc_ldt_struct(k, new_nr_entries);
  if (!new_ldt) return -ENOMEM;
  if (old_ldt) for (let n = 0; n < old_nr_entries; n++) set_ldt_entry(k, new_ldt, n, ...ldt_entry(k, old_ldt, n));
  set_ldt_entry(k, new_ldt, entry, desc[0], desc[1]);
  const error = map_ldt_struct(k, mm, new_ldt, old_ldt ? 1 - old_ldt.slot : 0);
  if (error) {
    // Only the first LDT's mapping can fail (later ones find the PTE page populated).
    if (!old_ldt) free_ldt_pgtables(k, mm);
    free_ldt_struct(k, new_ldt);
    return error;
  }
  yield* install_ldt(k, pc, mm, new_ldt);
  yield* unmap_ldt_struct(k, pc, mm, old_ldt);
  free_ldt_struct(k, old_ldt);
  return 0;
}

/**
 * ldt_dup_context (arch_dup_mmap, after the VMAs are copied): the child gets a copy of the
 * parent's LDT mapped at slot 0. On failure nothing of it is left: the new struct is freed,
 * and the page tables a failed mapping made are freed at once.
 */
export function ldt_dup_context(k: Kernel, old_mm: MmStruct, mm: MmStruct): number {
  const old = old_mm.ldt;
  if (!old) return 0;
  const new_ldt = alloc_ldt_struct(k, old.nr_entries);
  if (!new_ldt) return -ENOMEM;
  for (let n = 0; n < old.nr_entries; n++) set_ldt_entry(k, new_ldt, n, ...ldt_entry(k, old, n));
  const r = map_ldt_struct(k, mm, new_ldt, 0);
  if (r) {
    free_ldt_pgtables(k, mm);
    free_ldt_struct(k, new_ldt);
    return r;
  }
  mm.ldt = new_ldt;
  return 0;
}

/**
 * modify_ldt(func, ptr, bytecount): funcs 0, 1, 2 and 0x11; others -ENOSYS. The int result
 * is returned zero-extended ((unsigned int)ret), so an error reads as 0xffffffxx in RAX.
 */
export function* sys_modify_ldt(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  const func = Number(BigInt.asIntN(32, a[0]));
  let ret = -ENOSYS;
  if (func === 0) ret = yield* read_ldt(k, pc, t, a[1], a[2]);
  else if (func === 1) ret = yield* write_ldt(k, pc, t, a[1], a[2], true);
  else if (func === 2) ret = yield* read_default_ldt(k, pc, t, a[1], a[2]);
  else if (func === 0x11) ret = yield* write_ldt(k, pc, t, a[1], a[2], false);
  return ret >>> 0;
}
