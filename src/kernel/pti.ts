/**
 * Page-table isolation (arch/x86/mm/pti.c, arch/x86/entry/calling.h, asm/tlbflush.h): what the
 * user copy of the PGD maps, the CR3 switches the entry code makes, and the set of kernel
 * addresses the user copy may map at all (the `pti_user_pgd` check and `isolab reach` read it).
 *
 * With PTI each mm's PGD is an 8 KiB pair: the kernel copy, then the user copy. Their user
 * halves point at the same tables (set_pgd mirrors them, pgtable.ts); the user copy's kernel
 * half comes from the boot PGD's user copy, which pti_init fills with the cpu_entry_area,
 * ESPFIX, the entry text and each CPU's cpu_tss_rw page, and nothing else.
 *
 * Per-process PTI (seed 000, kernel option `pti_per_process`, not upstream): an mm whose
 * `nopti` is set keeps user mode on the kernel copy. SWITCH_TO_USER_CR3 leaves CR3 alone for
 * it, SWITCH_TO_KERNEL_CR3 skips a write that would change nothing, and the kernel copy's user
 * PGD entries lose the NX trick so user code can run there.
 */
import { PTE_P, PTE_US, PTEH_XD } from '../hw/pte.js';
import { CR3_HI_NOFLUSH } from '../hw/regs.js';
import { ModelError } from '../errors.js';
import type { Kernel, PerCpu } from './kernel.js';
import {
  __PAGE_KERNEL, CPU_ENTRY_AREA_BASE, task_stack_va, THREAD_SIZE, type CpuEntryArea, ENTRY_TEXT_START, ESPFIX_BASE_ADDR, kindex, type KernelMapper,
} from './layout.js';
import type { MmStruct } from './mm.js';
import { __pte, mk_pte, PFN_HI } from './pgtable.js';
import { this_cpu_ptr } from './debug.js';
import { is_vsyscall_vaddr, pti_setup_vsyscall, VSYSCALL_ADDR } from './vsyscall.js';

/** X86_CR3_PTI_PCID_USER_BIT: the user PCID is the kernel PCID with bit 11 set. */
export const X86_CR3_PTI_PCID_USER_BIT = 11;
/** PTI_USER_PGTABLE_BIT (= PAGE_SHIFT): CR3 bit 12 selects the user copy of the PGD pair. */
export const PTI_USER_PGTABLE_BIT = 12;
const PTI_SWITCH_MASK = (1 << X86_CR3_PTI_PCID_USER_BIT) | (1 << PTI_USER_PGTABLE_BIT);

/** 512 GiB: one PGD entry's reach with 4-level paging (a P4D). */
const P4D_SIZE = 1n << 39n;
/** 2 MiB: one PMD entry's reach. */
const PMD_SIZE = 1n << 21n;

/**
 * pti_init + pti_finalize, for the boot PGD pair: clones into the user copy the P4D of the
 * cpu_entry_area and of ESPFIX (pti_clone_p4d), the entry text at PMD level
 * (pti_clone_entry_text; it stays global), maps each CPU's cpu_tss_rw page
 * (pti_clone_user_shared: SYSCALL spills the user RSP in tss.sp2 before switching CR3), and
 * with vsyscall=emulate the vsyscall page (pti_setup_vsyscall).
 */
export function pti_init(k: Kernel, m: KernelMapper, pgd: number, userPgd: number, ceas: CpuEntryArea[]): void {
  const clone = (va: bigint, level: number): void => {
    m.copyEntry(m.descend(pgd, va, level), m.descend(userPgd, va, level), kindex(va, level));
  };
  clone(CPU_ENTRY_AREA_BASE, 4);
  clone(ESPFIX_BASE_ADDR, 4);
  clone(ENTRY_TEXT_START, 2);
  for (const cea of ceas) m.map4k(userPgd, cea.tssRw, cea.tssPfn, __PAGE_KERNEL, k.nx);
  pti_setup_vsyscall(k, m, pgd, userPgd);
}

/** pgd_ctor: a new mm's kernel halves, from the boot PGD's kernel copy and (with PTI) its user copy. */
export function pgd_ctor(k: Kernel, pgd: number, userPgd: number): void {
  const mem = k.machine.mem;
  const src = k.init_mm.pgtables;
  for (let i = 256; i < 512; i++) mem.write64(pgd, i, mem.readLo(src.pgd, i), mem.readHi(src.pgd, i));
  if (userPgd >= 0) for (let i = 256; i < 512; i++) mem.write64(userPgd, i, mem.readLo(src.userPgd, i), mem.readHi(src.userPgd, i));
}

/** Whether user mode of `mm` runs on the user copy (PTI on, and the mm's per-process PTI not off). */
export function pti_user_copy(k: Kernel, mm: MmStruct): boolean {
  return k.pti && !mm.nopti;
}

/**
 * SWITCH_TO_KERNEL_CR3 (entry/calling.h): clears the user-PGD bit and the user-PCID bit and
 * writes CR3, with NOFLUSH when PCIDs are on (entry never flushes). Without PTI it is patched
 * out. For an mm with per-process PTI off, CR3 already holds the kernel copy and is not written.
 */
export function SWITCH_TO_KERNEL_CR3(k: Kernel, pc: PerCpu): void {
  if (!k.pti) return;
  const cpu = pc.cpu;
  if (!(cpu.cr3Lo & (1 << PTI_USER_PGTABLE_BIT)) && pc.loaded_mm.nopti) return;
  const lo = (cpu.cr3Lo & ~PTI_SWITCH_MASK) >>> 0;
  cpu.movToCr3(k.pcid ? (cpu.cr3Hi | CR3_HI_NOFLUSH) >>> 0 : cpu.cr3Hi, lo);
}

/**
 * SWITCH_TO_USER_CR3 (entry/calling.h): with PCIDs, the deferred flush: if the kernel PCID's
 * bit is set in user_pcid_flush_mask, clear it and write without NOFLUSH (the user PCID's
 * non-global entries go), else with NOFLUSH; then the user-PCID bit (PCID only) and the
 * user-PGD bit. Without PCIDs the write flushes every non-global entry. Not written for an
 * mm whose per-process PTI is off.
 */
export function SWITCH_TO_USER_CR3(k: Kernel, pc: PerCpu): void {
  if (!k.pti || pc.loaded_mm.nopti) return;
  const cpu = pc.cpu;
  let lo = cpu.cr3Lo;
  let hi = cpu.cr3Hi;
  if (k.pcid) {
    const bit = 1 << (lo & 0x7ff);
    if (pc.user_pcid_flush_mask & bit) pc.user_pcid_flush_mask &= ~bit;
    else hi = (hi | CR3_HI_NOFLUSH) >>> 0;
    lo |= 1 << X86_CR3_PTI_PCID_USER_BIT;
  }
  lo |= 1 << PTI_USER_PGTABLE_BIT;
  cpu.movToCr3(hi, lo >>> 0);
}

/** user_pcid: the PCID user mode of ASID `asid` runs with under PTI (kern_pcid | bit 11). */
export function user_pcid(asid: number): number {
  return (asid + 1) | (1 << X86_CR3_PTI_PCID_USER_BIT);
}

/**
 * invalidate_user_asid: with PTI and PCIDs, flush this ASID's user PCID at the next
 * SWITCH_TO_USER_CR3. The bit is set through this_cpu_ptr(&cpu_tlbstate.user_pcid_flush_mask),
 * which DEBUG_PREEMPT checks (seed 001: "the this_cpu_ptr() dereference in one of the invoked
 * functions will" yell).
 */
export function invalidate_user_asid(k: Kernel, pc: PerCpu, asid: number): void {
  if (!k.pcid || !k.pti) return;
  this_cpu_ptr(k, pc, 'invalidate_user_asid').user_pcid_flush_mask |= 1 << (asid + 1);
}

/** A kernel range the user copy may map, and why. */
export interface PtiRange {
  start: bigint;
  end: bigint;
  what: string;
}

/**
 * The kernel ranges a user copy may map (pti.c and the LDT remap): the cpu_entry_area and
 * ESPFIX P4Ds, the 2 MiB around the entry text, each CPU's cpu_tss_rw page, the vsyscall page
 * with vsyscall=emulate, the two LDT slots, and with entry_stack per_task the PTI stacks' area.
 */
export function pti_allowed_ranges(k: Kernel): PtiRange[] {
  const r: PtiRange[] = [
    { start: CPU_ENTRY_AREA_BASE, end: CPU_ENTRY_AREA_BASE + P4D_SIZE, what: 'cpu_entry_area' },
    { start: ESPFIX_BASE_ADDR, end: ESPFIX_BASE_ADDR + P4D_SIZE, what: 'espfix' },
    { start: ENTRY_TEXT_START & ~(PMD_SIZE - 1n), end: (ENTRY_TEXT_START & ~(PMD_SIZE - 1n)) + PMD_SIZE, what: 'entry text' },
    { start: k.layout.ldt_base_addr, end: k.layout.ldt_slots_end, what: 'ldt remap' },
  ];
  for (const pc of k.percpu) r.push({ start: pc.cea!.tssRw, end: pc.cea!.tssRw + 0x1000n, what: `cpu_tss_rw (cpu ${pc.id})` });
  if (k.options.vsyscall === 'emulate') r.push({ start: VSYSCALL_ADDR, end: VSYSCALL_ADDR + 0x1000n, what: 'vsyscall' });
  // The PTI stacks' PGD slot, which the user copy shares with the kernel copy (pti_stack_map).
  const v = k.layout.vmalloc_base;
  if (k.options.entry_stack === 'per_task') r.push({ start: v, end: v + k.layout.pgdir_size, what: 'pti stacks' });
  return r;
}

/** One mapped kernel page found by walking a PGD's kernel half. */
export interface KernelLeaf {
  va: bigint;
  bytes: number;
  pfn: number;
  lo: number;
  hi: number;
}

/**
 * Calls `fn` for every present leaf in the kernel half (entries 256..511) of the top-level
 * table `root`, in address order, large pages included.
 */
export function walkKernelHalf(k: Kernel, root: number, fn: (leaf: KernelLeaf) => void): void {
  const mem = k.machine.mem;
  const visit = (table: number, level: number, base: bigint, first: number): void => {
    const span = 1n << BigInt(3 + 9 * level);
    for (let i = first; i < 512; i++) {
      const lo = mem.readLo(table, i);
      if (!(lo & PTE_P)) continue;
      const hi = mem.readHi(table, i);
      const pfn = (hi & PFN_HI) * 1048576 + (lo >>> 12);
      let va = base + BigInt(i) * span;
      if (level === k.levels && i >= 256) va |= k.levels === 5 ? 0xfe00000000000000n : 0xffff000000000000n;
      if (level === 1 || (level <= 3 && lo & (1 << 7))) {
        fn({ va, bytes: Number(span), pfn: level === 1 ? pfn : pfn & ~((Number(span) >> 12) - 1), lo, hi });
        continue;
      }
      visit(pfn, level - 1, va, 0);
    }
  };
  visit(root, k.levels, 0n, 256);
}

/**
 * The `pti_user_pgd` check: under PTI, the user copy of every live mm with PTI on maps no
 * kernel page outside pti_allowed_ranges, and no kernel page with U/S set but the vsyscall page. Reports each
 * offending leaf, every time it runs.
 */
export function check_pti_user_pgd(k: Kernel, pc: PerCpu | null, mm: MmStruct): void {
  if (!pti_user_copy(k, mm) || mm.dead || mm.pgtables.userPgd < 0) return;
  const allowed = pti_allowed_ranges(k);
  walkKernelHalf(k, mm.pgtables.userPgd, (leaf) => {
    const end = leaf.va + BigInt(leaf.bytes);
    const ok = allowed.some((r) => leaf.va >= r.start && end <= r.end);
    if (!ok) k.report(pc, 'pti_user_pgd', `mm ${mm.ctx_id}: the user page table maps kernel page 0x${leaf.va.toString(16)} (${leaf.bytes} bytes), outside the PTI-shared set`);
    else if (leaf.lo & PTE_US && !is_vsyscall_vaddr(leaf.va)) k.report(pc, 'pti_user_pgd', `mm ${mm.ctx_id}: kernel page 0x${leaf.va.toString(16)} is user-accessible in the user page table`);
  });
}

/**
 * Maps kernel page `va` to `pfn` (`lo` flags, NX) in `mm`'s kernel copy, allocating the
 * mm's own tables below PGD entry kindex(va, levels) (get_locked_pte: they are accounted to
 * the mm). Returns 0, or -1 when a table allocation failed (tables already made stay).
 */
export function map_kernel_page_in_mm(k: Kernel, mm: MmStruct, va: bigint, pfn: number, lo: number): number {
  // The slot must be the mm's own: below a boot PGD entry the tables are every mm's.
  const slot = kindex(va, k.levels);
  if (boot_pgd_entry(k, slot).lo & PTE_P) throw new ModelError('map_kernel_page_in_mm', `0x${va.toString(16)} is in PGD slot ${slot}, which the boot page table shares with every mm`);
  const table = mm.pgtables.kernelPteTable(va, true);
  if (table < 0) return -1;
  const e = mk_pte(__pte(), pfn, lo, k.nx ? PTEH_XD : 0);
  k.machine.mem.write64(table, kindex(va, 1), e.lo, e.hi);
  return 0;
}

/**
 * map_ldt_struct_to_user: makes the user copy's PGD entry for `va` the kernel copy's, so both
 * share the mm's tables below it (set once, the first time the slot is mapped).
 */
export function propagate_kernel_slot_to_user(k: Kernel, mm: MmStruct, va: bigint): void {
  const pt = mm.pgtables;
  if (pt.userPgd < 0) return;
  const i = kindex(va, k.levels);
  const mem = k.machine.mem;
  mem.write64(pt.userPgd, i, mem.readLo(pt.pgd, i), mem.readHi(pt.pgd, i));
}

/** Clears kernel page `va` in `mm`'s kernel copy (and so in the user copy, which shares the table). The caller flushes. */
export function clear_kernel_page_in_mm(k: Kernel, mm: MmStruct, va: bigint): void {
  const table = mm.pgtables.kernelPteTable(va, false);
  if (table >= 0) k.machine.mem.write64(table, kindex(va, 1), 0, 0);
}

/** A per-task PTI stack: its address and frames (entry_stack per_task). */
export interface PtiStack {
  va: bigint;
  pfns: number[];
}

/**
 * alloc_thread_stack_node with PTI_STACK_ORDER 1 (entry_stack per_task, the 2020 RFC): the
 * PTI stack, the top THREAD_SIZE of a doubled task stack, mapped RW in `mm`'s kernel copy
 * and shared with its user copy. null (nothing held) when an allocation fails; with upstream
 * entry it is not needed and `none` is returned.
 */
export function pti_stack_alloc(k: Kernel, mm: MmStruct): PtiStack | null | 'none' {
  if (!k.pti || k.options.entry_stack !== 'per_task') return 'none';
  const pfns: number[] = [];
  for (let i = 0; i < THREAD_SIZE / 4096; i++) {
    const pfn = k.pages.alloc_page(0, true, 'page');
    if (pfn < 0) {
      for (const p of pfns) k.pages.put_page(p);
      return null;
    }
    pfns.push(pfn);
  }
  const stack = { va: task_stack_va(k.layout, k.nextStackSlot++) + BigInt(THREAD_SIZE), pfns };
  if (pti_stack_map(k, mm, stack) < 0) {
    for (const p of pfns) k.pages.put_page(p);
    return null;
  }
  return stack;
}

/** Maps a PTI stack into `mm` (both copies). -1 when a page-table allocation failed. */
export function pti_stack_map(k: Kernel, mm: MmStruct, s: PtiStack): number {
  for (let i = 0; i < s.pfns.length; i++) {
    if (map_kernel_page_in_mm(k, mm, s.va + BigInt(i * 4096), s.pfns[i], __PAGE_KERNEL) < 0) return -1;
  }
  propagate_kernel_slot_to_user(k, mm, s.va);
  return 0;
}

/** Clears a PTI stack's PTEs in `mm`; the caller flushes `mm` before the frames are reused. */
export function pti_stack_unmap(k: Kernel, mm: MmStruct, s: PtiStack): void {
  for (let i = 0; i < s.pfns.length; i++) clear_kernel_page_in_mm(k, mm, s.va + BigInt(i * 4096));
}

/** Entry `i` of the boot PGD's kernel copy: what pgd_ctor gave every mm (shared, never freed by one mm). */
export function boot_pgd_entry(k: Kernel, i: number): { lo: number; hi: number } {
  const mem = k.machine.mem;
  return { lo: mem.readLo(k.init_mm.pgd, i), hi: mem.readHi(k.init_mm.pgd, i) };
}
