/**
 * The kernel's virtual layout on x86-64 with 4-level and 5-level paging (Documentation/arch/x86/x86_64/mm.rst,
 * arch/x86/include/asm/pgtable_64_types.h, cpu_entry_area.h, pgtable_areas.h) and the boot-time
 * builder that maps the kernel image, the direct map, the cpu_entry_area, the per-CPU pages
 * entry needs, and ESPFIX into the boot PGD (arch/x86/kernel/head64.c, arch/x86/mm/init_64.c,
 * arch/x86/mm/cpu_entry_area.c, arch/x86/kernel/espfix_64.c).
 *
 * XXX: no KASLR and no RANDOMIZE_MEMORY: the regions sit at their documented bases and
 * cea_offset(cpu) is the CPU number. The TSS takes TSS_PAGES pages (spec open question 6).
 */
import type { PhysMem } from '../hw/physmem.js';
import { PTE_A, PTE_D, PTE_G, PTE_P, PTE_PS, PTE_RW, PTEH_XD } from '../hw/pte.js';
import { __pte, _KERNPG_TABLE, mk_pte, pgtableIndex } from './pgtable.js';

/** __START_KERNEL_map + the text offset: where the kernel image's text is mapped. */
export const KERNEL_TEXT = 0xffffffff81000000n;
/** The kernel's data, in the next 2 MiB (the image's text and data do not share a large page). */
export const KERNEL_DATA = KERNEL_TEXT + 0x200000n;
/** __entry_text_start .. __entry_text_end: the first text page. */
export const ENTRY_TEXT_START = KERNEL_TEXT;
export const ENTRY_TEXT_END = KERNEL_TEXT + 0x1000n;
/** linux_banner (init/version.c): the second data page holds it, a known kernel string to probe for. */
export const LINUX_BANNER = KERNEL_DATA + 0x1000n;
export const LINUX_BANNER_TEXT = 'Linux version 6.12.0-isolab (isolab) #1 SMP PREEMPT_DYNAMIC\n';
/** __PAGE_OFFSET_BASE_L4 and _L5 (asm/page_64_types.h): the direct map of all RAM, without KASLR. */
export const __PAGE_OFFSET_BASE_L4 = 0xffff888000000000n;
export const __PAGE_OFFSET_BASE_L5 = 0xff11000000000000n;
/** __VMALLOC_BASE_L4 and _L5 (pgtable_64_types.h): where task stacks (and, with entry_stack per_task, PTI stacks) live. */
export const __VMALLOC_BASE_L4 = 0xffffc90000000000n;
export const __VMALLOC_BASE_L5 = 0xffa0000000000000n;
/** VMALLOC_SIZE_TB_L4 and _L5: the vmalloc area's size in TiB. */
const VMALLOC_SIZE_TB_L4 = 32n;
const VMALLOC_SIZE_TB_L5 = 12800n;
/** The direct map's reach (MAXMEM: 1 << MAX_PHYSMEM_BITS, 46 or 52 bits; mm.rst gives 64 TB and 32 PB of address space). */
const DIRECT_MAP_SIZE_L4 = 64n << 40n;
const DIRECT_MAP_SIZE_L5 = 32n << 50n;
/**
 * LDT_PGD_ENTRY (pgtable_64_types.h): -240 with either paging mode, so LDT_BASE_ADDR =
 * LDT_PGD_ENTRY << PGDIR_SHIFT is 0xffff880000000000 (PGD index 272) on 4-level and
 * 0xff10000000000000 (PGD index 272 of the 5-level PGD) with LA57.
 */
export const LDT_PGD_ENTRY = -240n;
/** The two LDT remap slots, LDT_SLOT_STRIDE apart (ldt_slot_va). */
export const LDT_SLOT_STRIDE = 0x10000n;
/** CPU_ENTRY_AREA_BASE: the cpu_entry_area P4D; page 0 is the read-only IDT. */
export const CPU_ENTRY_AREA_BASE = 0xfffffe0000000000n;
/** ESPFIX_BASE_ADDR: the ESPFIX64 stacks' P4D. */
export const ESPFIX_BASE_ADDR = 0xffffff0000000000n;
/** VSYSCALL_ADDR (uapi asm/vsyscall.h): -10UL << 20, the fixmap slot VSYSCALL_PAGE (vsyscall.ts). */
export const VSYSCALL_ADDR = 0xffffffffff600000n;
/** TASK_SIZE with 4-level paging: the end of user space. */
export const TASK_SIZE = 0x7ffffffff000;
/** Physical address the kernel image is loaded at (frame 256, just above the first MiB). */
export const KERNEL_PHYS = 0x100000;
/** Kernel image size: 4 pages of text, 4 of data (data page 0 holds idt_table). */
export const KERNEL_TEXT_PAGES = 4;
export const KERNEL_DATA_PAGES = 4;

/** Pages of struct tss_struct (the hardware TSS and the I/O bitmap). */
export const TSS_PAGES = 3;
/** EXCEPTION_STKSZ without KASAN: 8 KiB per IST stack. */
export const EXCEPTION_STACK_PAGES = 2;
/** The IST stacks in struct cea_exception_stacks, in order (the VC stacks exist only with SEV-ES). */
export const IST_STACKS = ['DF', 'NMI', 'DB', 'MCE'] as const;
/** Pages of one CPU's struct cpu_entry_area: GDT, entry stack, TSS, guard+stack per IST stack and a top guard. */
export const CEA_PAGES = 1 + 1 + TSS_PAGES + IST_STACKS.length * (1 + EXCEPTION_STACK_PAGES) + 1;
/** THREAD_SIZE without KASAN: 16 KiB; with entry_stack per_task the PTI stack doubles it. */
export const THREAD_SIZE = 0x4000;
/**
 * The kernel's layout for its paging mode, fixed at boot (x86_64_start_kernel and
 * kernel_randomize_memory set page_offset_base and vmalloc_base; without KASLR they are the
 * _L4 or _L5 bases). The cpu_entry_area, ESPFIX and the kernel image sit at the same
 * addresses in both modes, in the last PGD entry (the last P4D entries with LA57).
 */
export interface KernelLayout {
  /** PGDIR_SHIFT: 39 on 4-level, 48 with 5-level paging. */
  readonly pgdir_shift: number;
  /** PGDIR_SIZE: one PGD entry's reach. */
  readonly pgdir_size: bigint;
  /** page_offset_base (PAGE_OFFSET): the direct map's base. */
  readonly page_offset_base: bigint;
  /** The direct map's reach. */
  readonly direct_map_size: bigint;
  /** vmalloc_base (VMALLOC_START). */
  readonly vmalloc_base: bigint;
  /** VMALLOC_SIZE_TB in bytes. */
  readonly vmalloc_size: bigint;
  /** LDT_BASE_ADDR: the first LDT remap slot. */
  readonly ldt_base_addr: bigint;
  /** The end of the two remap slots (Linux's LDT_END_ADDR is the end of the PGD slot; the model uses two slots of it). */
  readonly ldt_slots_end: bigint;
}

/** The kernel layout of a 4-level (`levels` 4) or 5-level (LA57) kernel. */
export function kernel_layout(levels: number): KernelLayout {
  const l5 = levels === 5;
  const pgdir_shift = l5 ? 48 : 39;
  // LDT_PGD_ENTRY << PGDIR_SHIFT in unsigned long arithmetic.
  const ldt = BigInt.asUintN(64, LDT_PGD_ENTRY << BigInt(pgdir_shift));
  return {
    pgdir_shift,
    pgdir_size: 1n << BigInt(pgdir_shift),
    page_offset_base: l5 ? __PAGE_OFFSET_BASE_L5 : __PAGE_OFFSET_BASE_L4,
    direct_map_size: l5 ? DIRECT_MAP_SIZE_L5 : DIRECT_MAP_SIZE_L4,
    vmalloc_base: l5 ? __VMALLOC_BASE_L5 : __VMALLOC_BASE_L4,
    vmalloc_size: (l5 ? VMALLOC_SIZE_TB_L5 : VMALLOC_SIZE_TB_L4) << 40n,
    ldt_base_addr: ldt,
    ldt_slots_end: ldt + 2n * LDT_SLOT_STRIDE,
  };
}

/** Where task stack `n` lives in vmalloc space: 2 * THREAD_SIZE apart (PTI_STACK_ORDER 1), the PTI stack the top half. */
export function task_stack_va(layout: KernelLayout, n: number): bigint {
  return layout.vmalloc_base + BigInt(n) * BigInt(2 * THREAD_SIZE);
}

/** PAGE_KERNEL_RO and PAGE_KERNEL without G, low word (NX goes in the high word). */
export const __PAGE_KERNEL_RO = PTE_P | PTE_A;
export const __PAGE_KERNEL = PTE_P | PTE_RW | PTE_A | PTE_D;

/** Where each CPU's entry-related pages are: frames and virtual addresses. */
export interface CpuEntryArea {
  /** Virtual base of this CPU's struct cpu_entry_area. */
  base: bigint;
  /** cea->gdt, cea->entry_stack_page, cea->tss (the read-only alias of cpu_tss_rw). */
  gdt: bigint;
  entryStack: bigint;
  tss: bigint;
  /** Frames of gdt_page, entry_stack_storage and cpu_tss_rw (TSS_PAGES of them). */
  gdtPfn: number;
  entryStackPfn: number;
  tssPfn: number;
  /** &per_cpu(cpu_tss_rw, cpu): its direct-map address (what SYSCALL's tss.sp2 store uses). */
  tssRw: bigint;
}

/** cea_offset(cpu) without randomisation: the virtual base of CPU `cpu`'s entry area. */
export function get_cpu_entry_area(cpu: number): bigint {
  return CPU_ENTRY_AREA_BASE + 0x1000n + BigInt(cpu * CEA_PAGES) * 0x1000n;
}

/** The index of `va` in the table at `level` (1 = PTE ... 5). */
export function kindex(va: bigint, level: number): number {
  return Number((va >> BigInt(3 + 9 * level)) & 511n);
}

/**
 * Builds kernel mappings in a boot PGD from boot-time frames (never freed). `g` is the G bit
 * for ordinary kernel mappings (__default_kernel_pte_mask: none under PTI); the entry text,
 * the cpu_entry_area and ESPFIX are global whenever the CPU has PGE (`pge`).
 */
export class KernelMapper {
  constructor(
    private readonly mem: PhysMem,
    private readonly levels: number,
    private readonly alloc: () => number,
  ) {}

  /** The table at `toLevel` covering `va` under `root`, allocating missing tables (_KERNPG_TABLE). */
  descend(root: number, va: bigint, toLevel: number): number {
    let t = root;
    for (let level = this.levels; level > toLevel; level--) {
      const i = kindex(va, level);
      const lo = this.mem.readLo(t, i);
      if (lo & PTE_P) {
        t = (this.mem.readHi(t, i) & 0xfffff) * 1048576 + (lo >>> 12);
        continue;
      }
      const n = this.alloc();
      const e = mk_pte(__pte(), n, _KERNPG_TABLE, 0);
      this.mem.write64(t, i, e.lo, e.hi);
      t = n;
    }
    return t;
  }

  /** Maps one 4 KiB page: `va` to frame `pfn` with `lo` flags, NX when `nx`. */
  map4k(root: number, va: bigint, pfn: number, lo: number, nx: boolean): void {
    const pte = this.descend(root, va, 1);
    const e = mk_pte(__pte(), pfn, lo, nx ? PTEH_XD : 0);
    this.mem.write64(pte, kindex(va, 1), e.lo, e.hi);
  }

  /** Maps all `bytes` of RAM at `page_offset` (the direct map) in 2 MiB pages: RW, NX, `g`. */
  mapDirect(root: number, page_offset: bigint, bytes: number, g: number, nx: boolean): void {
    const e = __pte();
    for (let pa = 0; pa < bytes; pa += 2 ** 21) {
      const pd = this.descend(root, page_offset + BigInt(pa), 2);
      mk_pte(e, pa / 4096, PTE_P | PTE_RW | PTE_A | PTE_D | PTE_PS | g, nx ? PTEH_XD : 0);
      this.mem.write64(pd, pgtableIndex(pa, 2), e.lo, e.hi);
    }
  }

  /** Copies entry `index` of table `from` into table `to` (a clone at that level). */
  copyEntry(from: number, to: number, index: number): void {
    this.mem.write64(to, index, this.mem.readLo(from, index), this.mem.readHi(from, index));
  }

  /** Adds `bits` to entry `index` of `table`. */
  setFlags(table: number, index: number, bits: number): void {
    this.mem.write64(table, index, this.mem.readLo(table, index) | bits, this.mem.readHi(table, index));
  }
}

/** The G bit the cpu_entry_area and ESPFIX use (cea_set_pte: global whenever the CPU has PGE). */
export function ceaGlobal(pge: boolean): number {
  return pge ? PTE_G : 0;
}
