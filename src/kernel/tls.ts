/**
 * Thread-local storage descriptors (arch/x86/kernel/tls.c, asm/desc.h load_TLS, 6.12): the
 * three GDT entries GDT_ENTRY_TLS_MIN..MAX (selectors 0x63, 0x6b, 0x73) each thread owns in
 * thread.tls_array, set and read by set_thread_area and get_thread_area (32-bit syscalls:
 * the 64-bit table has no entry for them, so only INT 0x80 reaches them), copied into this
 * CPU's GDT by load_TLS (at a context switch and when the current thread changes one),
 * inherited by fork (the task struct is copied) and cleared by execve (flush_thread, which
 * leaves the CPU's GDT as it was until the next context switch). A segment load of a TLS
 * selector then goes through the processor's usual checks against what load_TLS wrote.
 */
import { SREG_DS, SREG_ES, SREG_FS, SREG_GS } from '../hw/segment.js';
import { GDT_ENTRY_TLS_MAX, GDT_ENTRY_TLS_MIN, loadsegment, write_gdt_entry } from './desc.js';
import type { Kernel, PerCpu } from './kernel.js';
import { fill_ldt, LDT_empty, LDT_zero, parse_user_desc, USER_DESC_SIZE, type UserDesc } from './ldt.js';
import type { KPath } from './steps.js';
import type { Task } from './task.js';
import { copy_from_user, copy_to_user } from './uaccess.js';
import { EFAULT, EINVAL, ESRCH } from './uapi.js';

/** GDT_ENTRY_TLS_ENTRIES (asm/segment.h): three TLS descriptors per thread, GDT_ENTRY_TLS_MIN..MAX. */
export const GDT_ENTRY_TLS_ENTRIES = 3;

/** desc_empty: both words of TLS entry `i` (0-based) of `t` are zero. */
function desc_empty(t: Task, i: number): boolean {
  return t.tls_array[2 * i] === 0 && t.tls_array[2 * i + 1] === 0;
}

/** get_free_idx: the GDT index of the first empty TLS entry of `t`, or -ESRCH. */
function get_free_idx(t: Task): number {
  for (let idx = 0; idx < GDT_ENTRY_TLS_ENTRIES; idx++) if (desc_empty(t, idx)) return idx + GDT_ENTRY_TLS_MIN;
  return -ESRCH;
}

/**
 * tls_desc_okay: an empty or all-zero user_desc (a request to clear the entry), else a
 * 32-bit (seg_32bit), data (contents 0 or 1), present segment.
 */
function tls_desc_okay(info: UserDesc): boolean {
  if (LDT_empty(info) || LDT_zero(info)) return true;
  if (!info.seg_32bit) return false;
  if (info.contents > 1) return false;
  if (info.seg_not_present) return false;
  return true;
}

/** native_load_tls: the three TLS entries of `t` into this CPU's GDT (through its writable mapping). */
export function load_TLS(k: Kernel, pc: PerCpu, t: Task): void {
  for (let i = 0; i < GDT_ENTRY_TLS_ENTRIES; i++) write_gdt_entry(k, pc.id, GDT_ENTRY_TLS_MIN + i, t.tls_array[2 * i], t.tls_array[2 * i + 1]);
}

/**
 * set_tls_desc for one entry: cleared for an empty or all-zero user_desc, else fill_ldt's
 * descriptor; then, `t` being current, load_TLS on its CPU (with preemption off: one step).
 */
function set_tls_desc(k: Kernel, pc: PerCpu, t: Task, idx: number, info: UserDesc): void {
  const i = idx - GDT_ENTRY_TLS_MIN;
  const [lo, hi] = LDT_empty(info) || LDT_zero(info) ? [0, 0] : fill_ldt(info);
  t.tls_array[2 * i] = lo;
  t.tls_array[2 * i + 1] = hi;
  load_TLS(k, pc, t);
}

/**
 * do_set_thread_area(current, -1, u_info, can_allocate 1), in 6.12's order: copy_from_user
 * (-EFAULT), tls_desc_okay (-EINVAL), entry_number -1 allocates the first free entry
 * (-ESRCH when none) and writes its number back (put_user, -EFAULT: nothing is set then),
 * an index outside 12..14 -EINVAL; then the entry is set and loaded, and DS, ES, FS or GS
 * holding the modified selector (idx << 3 | 3) is reloaded (loadsegment, load_gs_index), so
 * the register's hidden part follows the new descriptor.
 */
export function* sys_set_thread_area(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  const u_info = a[0];
  const b = yield* copy_from_user(k, pc, t, u_info, USER_DESC_SIZE);
  if (!b) return -EFAULT;
  const info = parse_user_desc(b);
  if (!tls_desc_okay(info)) return -EINVAL;
  let idx = info.entry_number | 0;
  if (idx === -1) {
    idx = get_free_idx(t);
    if (idx < 0) return idx;
    const w = new Uint8Array(4);
    new DataView(w.buffer).setUint32(0, idx, true);
    if (!(yield* copy_to_user(k, pc, t, u_info, w))) return -EFAULT;
  }
  if (idx < GDT_ENTRY_TLS_MIN || idx > GDT_ENTRY_TLS_MAX) return -EINVAL;
  set_tls_desc(k, pc, t, idx, info);
  const modified_sel = (idx << 3) | 3;
  const seg = pc.cpu.seg;
  for (const sreg of [SREG_DS, SREG_ES, SREG_FS, SREG_GS]) if (seg[sreg].sel === modified_sel) loadsegment(pc, sreg, modified_sel);
  return 0;
}

/**
 * fill_user_desc: the user_desc of TLS entry `idx` (its words `lo`, `hi`): base, limit 19:0,
 * D as seg_32bit, type >> 2 as contents, !W as read_exec_only, G, !P, AVL, L.
 */
function fill_user_desc(idx: number, lo: number, hi: number): Uint8Array {
  const b = new Uint8Array(USER_DESC_SIZE);
  const dv = new DataView(b.buffer);
  const type = (hi >>> 8) & 0xf;
  const flags = ((hi >>> 22) & 1) | ((type >>> 2) << 1) | ((((type >>> 1) & 1) ^ 1) << 3) | (((hi >>> 23) & 1) << 4)
    | ((((hi >>> 15) & 1) ^ 1) << 5) | (((hi >>> 20) & 1) << 6) | (((hi >>> 21) & 1) << 7);
  dv.setUint32(0, idx, true);
  dv.setUint32(4, ((lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000)) >>> 0, true);
  dv.setUint32(8, (lo & 0xffff) | (hi & 0xf0000), true);
  dv.setUint32(12, flags, true);
  return b;
}

/**
 * do_get_thread_area(current, -1, u_info): get_user of entry_number (-EFAULT), an index
 * outside 12..14 -EINVAL, then the entry as a user_desc copied out (-EFAULT).
 */
export function* sys_get_thread_area(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  const u_info = a[0];
  const n = yield* copy_from_user(k, pc, t, u_info, 4);
  if (!n) return -EFAULT;
  const idx = new DataView(n.buffer).getInt32(0, true);
  if (idx < GDT_ENTRY_TLS_MIN || idx > GDT_ENTRY_TLS_MAX) return -EINVAL;
  const i = idx - GDT_ENTRY_TLS_MIN;
  if (!(yield* copy_to_user(k, pc, t, u_info, fill_user_desc(idx, t.tls_array[2 * i], t.tls_array[2 * i + 1])))) return -EFAULT;
  return 0;
}

/** flush_thread's TLS part (at execve): the thread's TLS entries cleared; the CPU's GDT keeps its copy until the next load_TLS. */
export function flush_thread_tls(t: Task): void {
  t.tls_array.fill(0);
}
