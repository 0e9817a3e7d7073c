/**
 * The GDT and segment selectors as Linux 6.12 x86-64 sets them up (arch/x86/include/asm/
 * segment.h, desc.h, desc_defs.h; arch/x86/kernel/cpu/common.c gdt_page, load_fixmap_gdt,
 * setup_getcpu; set_tss_desc, set_ldt): one GDT per CPU in its gdt_page frame, written by the
 * kernel through the direct map and loaded (LGDT) at its read-only alias in the CPU's
 * cpu_entry_area; LLDT through GDT entry 10; loadsegment with its exception fixup; the user
 * segment registers across context switch, fork and execve; and the IRET to user mode's CS
 * and SS checks with the bad-IRET fixup.
 */
import { SEL_TI, DESC_DB, DESC_G, DESC_L, DESC_P, DESC_S, DESC_TYPE_ACCESSED, DESC_TYPE_CODE, DESC_TYPE_WRITABLE, SREG_DS, SREG_ES, SREG_FS, SREG_GS, SYS_TYPE_LDT, SYS_TYPE_TSS_BUSY } from '../hw/segment.js';
import { MSR_FS_BASE, MSR_KERNEL_GS_BASE, X86_TRAP_GP } from '../hw/regs.js';
import { force_sig } from './signal.js';
import { SIGBUS, SIGSEGV } from './uapi.js';
import type { Kernel, PerCpu } from './kernel.js';
import type { Task } from './task.js';

/** GDT entries (asm/segment.h, CONFIG_X86_64). */
export const GDT_ENTRY_KERNEL32_CS = 1;
export const GDT_ENTRY_KERNEL_CS = 2;
export const GDT_ENTRY_KERNEL_DS = 3;
export const GDT_ENTRY_DEFAULT_USER32_CS = 4;
export const GDT_ENTRY_DEFAULT_USER_DS = 5;
export const GDT_ENTRY_DEFAULT_USER_CS = 6;
/** Needs two entries. */
export const GDT_ENTRY_TSS = 8;
/** Needs two entries. */
export const GDT_ENTRY_LDT = 10;
export const GDT_ENTRY_TLS_MIN = 12;
export const GDT_ENTRY_TLS_MAX = 14;
export const GDT_ENTRY_CPUNODE = 15;
export const GDT_ENTRIES = 16;
/** GDT_SIZE - 1: GDTR's limit. */
export const GDT_LIMIT = GDT_ENTRIES * 8 - 1;

/** The selectors (index * 8, RPL 3 for user ones). */
export const __KERNEL32_CS = GDT_ENTRY_KERNEL32_CS * 8;
export const __KERNEL_CS = GDT_ENTRY_KERNEL_CS * 8;
export const __KERNEL_DS = GDT_ENTRY_KERNEL_DS * 8;
export const __USER32_CS = GDT_ENTRY_DEFAULT_USER32_CS * 8 + 3;
export const __USER_DS = GDT_ENTRY_DEFAULT_USER_DS * 8 + 3;
export const __USER_CS = GDT_ENTRY_DEFAULT_USER_CS * 8 + 3;
export const __CPUNODE_SEG = GDT_ENTRY_CPUNODE * 8 + 3;

/** VDSO_CPUNODE_BITS (asm/segment.h): the CPUNODE limit is cpu | node << 12. */
export const VDSO_CPUNODE_BITS = 12;

/**
 * __KERNEL_TSS_LIMIT (asm/processor.h): IO_BITMAP_OFFSET_VALID_ALL + IO_BITMAP_BYTES +
 * sizeof(unsigned long) - 1 = (104 + 16) + 8192 + 8 - 1: the x86_hw_tss (104 bytes), then
 * x86_io_bitmap's prev_sequence and prev_max (16), its bitmap and the trailing long.
 */
export const __KERNEL_TSS_LIMIT = 0x207f;

/**
 * The descriptor flags of desc_defs.h, as GDT_ENTRY_INIT takes them (type|S<<4|DPL<<5|P<<7
 * in the low byte, AVL, L, D, G in bits 12..15). 6.8 added _DESC_ACCESSED to _DESC_DATA and
 * _DESC_CODE ("x86: always set A (accessed) flag in GDT descriptors"): the CPU never writes
 * the read-only GDT alias.
 */
const _DESC_DATA = 0x10 | 0x80 | DESC_TYPE_ACCESSED | DESC_TYPE_WRITABLE;
const _DESC_CODE = 0x10 | 0x80 | DESC_TYPE_ACCESSED | DESC_TYPE_WRITABLE | DESC_TYPE_CODE;
const DESC_CODE32 = _DESC_CODE | 0x8000 | 0x4000;
const DESC_DATA64 = _DESC_DATA | 0x8000 | 0x4000;
const DESC_CODE64 = _DESC_CODE | 0x8000 | 0x2000;
const DESC_USER = 3 << 5;

/** GDT_ENTRY_INIT(flags, base, limit) as the descriptor's two words. */
export function GDT_ENTRY_INIT(flags: number, base: number, limit: number): [number, number] {
  const lo = ((limit & 0xffff) | ((base & 0xffff) << 16)) >>> 0;
  const hi = (((base >>> 16) & 0xff) | ((flags & 0xff) << 8) | (limit & 0xf0000) | (((flags >>> 12) & 0xf) << 20) | (base & 0xff000000)) >>> 0;
  return [lo, hi];
}

/** Writes descriptor `entry` (two words) of CPU `cpu`'s writable GDT (get_cpu_gdt_rw: gdt_page through the direct map). */
export function write_gdt_entry(k: Kernel, cpu: number, entry: number, lo: number, hi: number): void {
  k.machine.mem.write64(k.percpu[cpu].cea!.gdtPfn, entry, lo >>> 0, hi >>> 0);
}

/**
 * set_tssldt_descriptor: a 16-byte system descriptor of `type` for `base` (64-bit) and
 * `limit`, DPL 0, present, G=0, written at `entry` and `entry + 1`.
 */
function set_tssldt_descriptor(k: Kernel, cpu: number, entry: number, base: bigint, type: number, limit: number): void {
  const b = Number(base & 0xffffffffn) >>> 0;
  const [lo, hi] = GDT_ENTRY_INIT(type | 0x80, b, limit);
  write_gdt_entry(k, cpu, entry, lo, hi);
  write_gdt_entry(k, cpu, entry + 1, Number((base >> 32n) & 0xffffffffn) >>> 0, 0);
}

/**
 * The boot of one CPU's descriptor tables: gdt_page's initial entries (cpu/common.c, 6.12's
 * CONFIG_X86_64 list), setup_getcpu's CPUNODE entry (type 5: read-only expand-down accessed
 * data, DPL 3, D=1, the limit cpu | node << 12; the model has one node), the TSS descriptor
 * (busy after LTR), load_fixmap_gdt's LGDT of the read-only alias, and the user selectors
 * the CPU holds on its way to user mode. TLS entries start empty.
 */
export function setup_cpu_gdt(k: Kernel, pc: PerCpu): void {
  const c = pc.id;
  const put = (entry: number, d: [number, number]): void => write_gdt_entry(k, c, entry, d[0], d[1]);
  put(GDT_ENTRY_KERNEL32_CS, GDT_ENTRY_INIT(DESC_CODE32, 0, 0xfffff));
  put(GDT_ENTRY_KERNEL_CS, GDT_ENTRY_INIT(DESC_CODE64, 0, 0xfffff));
  put(GDT_ENTRY_KERNEL_DS, GDT_ENTRY_INIT(DESC_DATA64, 0, 0xfffff));
  put(GDT_ENTRY_DEFAULT_USER32_CS, GDT_ENTRY_INIT(DESC_CODE32 | DESC_USER, 0, 0xfffff));
  put(GDT_ENTRY_DEFAULT_USER_DS, GDT_ENTRY_INIT(DESC_DATA64 | DESC_USER, 0, 0xfffff));
  put(GDT_ENTRY_DEFAULT_USER_CS, GDT_ENTRY_INIT(DESC_CODE64 | DESC_USER, 0, 0xfffff));
  // setup_getcpu: d.type = 5, dpl 3, s 1, p 1, d 1; cpudata = vdso_encode_cpunode(cpu, 0).
  put(GDT_ENTRY_CPUNODE, GDT_ENTRY_INIT(5 | 0x10 | DESC_USER | 0x80 | 0x4000, 0, c & ((1 << VDSO_CPUNODE_BITS) - 1)));
  // set_tss_desc + load_TR_desc: the TSS at its cea alias; LTR marks it busy.
  set_tssldt_descriptor(k, c, GDT_ENTRY_TSS, pc.cea!.tss, SYS_TYPE_TSS_BUSY, __KERNEL_TSS_LIMIT);
  const cpu = pc.cpu;
  cpu.lgdt(pc.cea!.gdt, GDT_LIMIT);
  load_user_segments(pc, __USER_CS, __USER_DS);
}

/** Attributes (segment.ts descAttributes) of __USER_CS and __USER_DS, as SYSRET loads them. */
const USER_CS_ATTR = (DESC_TYPE_CODE | DESC_TYPE_WRITABLE | DESC_TYPE_ACCESSED) | (DESC_S >>> 8) | (3 << 5) | (DESC_P >>> 8) | (DESC_L >>> 8) | (DESC_G >>> 8);
const USER_DS_ATTR = (DESC_TYPE_WRITABLE | DESC_TYPE_ACCESSED) | (DESC_S >>> 8) | (3 << 5) | (DESC_P >>> 8) | (DESC_DB >>> 8) | (DESC_G >>> 8);

/**
 * What SYSRET or IRET leaves in CS and SS on the way to user mode: SYSRET's fixed __USER_CS
 * and __USER_DS (IA32_STAR[63:48] + 16 and + 8, RPL 3, flat), IRET the frame's cs and ss.
 * (IRET's checks are iret_segments'.)
 */
export function load_user_segments(pc: PerCpu, cs: number, ss: number): void {
  pc.cpu.loadSegmentFlat(1, cs, cs === __USER_CS ? USER_CS_ATTR : pc.cpu.seg[1].attr);
  pc.cpu.loadSegmentFlat(2, ss, ss === __USER_DS ? USER_DS_ATTR : pc.cpu.seg[2].attr);
}

/**
 * The IRET to user mode's segment part: CS and SS from pt_regs through the processor's checks
 * (cpu.iretSegments). __USER_CS with __USER_DS, whose GDT entries never change, load as SYSRET
 * would without reading the GDT (the same result, no descriptor reads on every return). When
 * the checks fail, IRET faults in the kernel at native_irq_return_iret: error_entry's
 * fixup_bad_iret moves the user's IRET frame into pt_regs, so the exception is handled as
 * one from user mode: #GP as exc_general_protection (SIGSEGV, SI_KERNEL), #NP and #SS as
 * do_error_trap (SIGBUS, SI_KERNEL), with trapno and err; the task stays in the kernel with
 * the signal pending (false). The signal's frame then holds the bad cs and ss (host-checked).
 */
export function iret_segments(k: Kernel, pc: PerCpu, t: Task): boolean {
  if (t.cs === __USER_CS && t.ss === __USER_DS) {
    load_user_segments(pc, t.cs, t.ss);
    return true;
  }
  const cpu = pc.cpu;
  if (cpu.iretSegments(t.cs, t.ss)) return true;
  let vector = cpu.faultVector;
  let code = cpu.faultErrorCode;
  cpu.clearFault();
  // An SS from the LDT returns through ESPFIX64 (native_irq_return_ldt): IRET's fault there
  // is promoted to a double fault, which exc_double_fault turns into a #GP(0) from user mode
  // ("Missing (lost) #GP error code"). XXX: the espfix stack itself is not modelled.
  if (t.ss & SEL_TI) {
    vector = X86_TRAP_GP;
    code = 0;
  }
  t.trap_nr = vector;
  t.error_code = code;
  force_sig(k, t, vector === X86_TRAP_GP ? SIGSEGV : SIGBUS);
  return false;
}

/**
 * set_ldt (asm/desc.h native_set_ldt): with entries, writes an LDT descriptor (type 2, DPL 0,
 * limit entries * 8 - 1) for `base` into GDT_ENTRY_LDT of this CPU's GDT and loads LDTR with
 * its selector; with none, LLDT of the null selector.
 */
export function set_ldt(k: Kernel, pc: PerCpu, base: bigint, entries: number): void {
  if (entries === 0) {
    pc.cpu.lldt(0);
    return;
  }
  set_tssldt_descriptor(k, pc.id, GDT_ENTRY_LDT, base, SYS_TYPE_LDT, entries * 8 - 1);
  pc.cpu.lldt(GDT_ENTRY_LDT * 8);
}

/**
 * copy_thread's segment part: the child's pt_regs cs and ss, current_save_fsgs's FS and GS
 * selectors and bases (the parent's live ones), savesegment of ES and DS, and the parent's
 * TLS descriptors.
 */
export function copy_thread_segments(k: Kernel, pc: PerCpu, parent: Task, child: Task): void {
  const seg = pc.cpu.seg;
  save_segments(k, pc, parent);
  child.fsbase = parent.fsbase;
  child.gsbase = parent.gsbase;
  // arch_dup_task_struct copies thread_struct, the TLS descriptors with it.
  child.tls_array = parent.tls_array.slice();
  child.cs = parent.cs;
  child.ss = parent.ss;
  child.es = seg[SREG_ES].sel;
  child.ds = seg[SREG_DS].sel;
  child.fsindex = seg[SREG_FS].sel;
  child.gsindex = seg[SREG_GS].sel;
}

/**
 * start_thread_common (process_64.c) at execve: loadsegment(fs, 0), ES and DS 0, load_gs_index(0);
 * regs->cs = __USER_CS, regs->ss = __USER_DS.
 */
export function start_thread_segments(pc: PerCpu, t: Task): void {
  for (const sreg of [SREG_FS, SREG_ES, SREG_DS, SREG_GS]) loadsegment(pc, sreg, 0);
  t.es = t.ds = t.fsindex = t.gsindex = 0;
  t.fsbase = t.gsbase = 0n;
  t.cs = __USER_CS;
  t.ss = __USER_DS;
}

/**
 * __switch_to's save half (save_fsgs, savesegment of ES and DS) for the outgoing task: the
 * selectors, and the FS and GS bases: with FSGSBASE read from the CPU (RDFSBASE, and the
 * inactive GS base); without it (save_base_legacy) kept as saved for a null selector, 0 for
 * a selector of 1..3 or a real segment (whose base the descriptor gives back).
 */
export function save_segments(k: Kernel, pc: PerCpu, prev: Task): void {
  const seg = pc.cpu.seg;
  prev.es = seg[SREG_ES].sel;
  prev.ds = seg[SREG_DS].sel;
  prev.fsindex = seg[SREG_FS].sel;
  prev.gsindex = seg[SREG_GS].sel;
  if (k.machine.model.fsgsbase) {
    prev.fsbase = seg[SREG_FS].base;
    prev.gsbase = seg[SREG_GS].base;
    return;
  }
  if (prev.fsindex !== 0) prev.fsbase = 0n;
  if (prev.gsindex !== 0) prev.gsbase = 0n;
}

/**
 * __switch_to's load half for the incoming task: ES and DS reloaded when either task's is
 * non-zero (`if (unlikely(next->es | prev->es)) loadsegment(es, next->es)`), then
 * x86_fsgsbase_load. With FSGSBASE: FS and GS reloaded when either selector is non-zero, then
 * both bases written (WRFSBASE, __wrgsbase_inactive). Without (load_seg_legacy, an Intel-style
 * CPU): a real segment (index > 3) is loaded; a null one with base 0 is loaded when either
 * task's index or the old base is non-zero; a null one with a base is loaded if the index
 * changes and the base written to the MSR. Every load re-reads the descriptor (a rewritten
 * LDT entry is seen), and one that faults leaves 0 (loadsegment's fixup). "prev" is what the
 * CPU holds: the last user task's registers (the idle task loads none).
 */
export function load_segments(k: Kernel, pc: PerCpu, next: Task): void {
  const cpu = pc.cpu;
  const seg = cpu.seg;
  if (seg[SREG_ES].sel | next.es) next.es = loadsegment(pc, SREG_ES, next.es);
  if (seg[SREG_DS].sel | next.ds) next.ds = loadsegment(pc, SREG_DS, next.ds);
  if (k.machine.model.fsgsbase) {
    if (seg[SREG_FS].sel | next.fsindex) next.fsindex = loadsegment(pc, SREG_FS, next.fsindex);
    if (seg[SREG_GS].sel | next.gsindex) next.gsindex = loadsegment(pc, SREG_GS, next.gsindex);
    cpu.wrmsr(MSR_FS_BASE, next.fsbase);
    cpu.wrmsr(MSR_KERNEL_GS_BASE, next.gsbase);
    return;
  }
  for (const sreg of [SREG_FS, SREG_GS]) {
    const prevIndex = seg[sreg].sel;
    const prevBase = seg[sreg].base;
    const nextIndex = sreg === SREG_FS ? next.fsindex : next.gsindex;
    const nextBase = sreg === SREG_FS ? next.fsbase : next.gsbase;
    let loaded = nextIndex;
    if (nextIndex <= 3) {
      if (nextBase === 0n) {
        if (prevIndex | nextIndex || prevBase !== 0n) loaded = loadsegment(pc, sreg, nextIndex);
      } else {
        if (prevIndex !== nextIndex) loaded = loadsegment(pc, sreg, nextIndex);
        cpu.wrmsr(sreg === SREG_FS ? MSR_FS_BASE : MSR_KERNEL_GS_BASE, nextBase);
      }
    } else loaded = loadsegment(pc, sreg, nextIndex);
    if (sreg === SREG_FS) next.fsindex = loaded;
    else next.gsindex = loaded;
  }
}

/**
 * loadsegment (asm/segment.h): MOV to a data segment register at CPL 0, with its exception
 * table entry (EX_TYPE_ZERO_REG): a faulting load is retried with the null selector. Returns
 * the selector the register holds.
 */
export function loadsegment(pc: PerCpu, sreg: number, sel: number): number {
  const cpu = pc.cpu;
  if (cpu.movToSreg(sreg, sel)) return sel;
  cpu.clearFault();
  cpu.movToSreg(sreg, 0);
  return 0;
}
