/**
 * What a process can reach with Meltdown (CVE-2017-5754): the kernel virtual ranges a
 * transient load from its user mode can read, and how many bytes. A transient user load reads
 * a kernel page when the page table user mode runs on maps it present and the CPU has the
 * `meltdown` bug (hw/cpu.ts transientRead: only U/S forbids the read, and the check comes too
 * late). Without the bug nothing of the kernel is reachable. Under PTI user mode runs on the
 * user copy, which maps only the PTI-shared set (pti.ts); with per-process PTI off it runs on
 * the kernel copy, which maps everything.
 *
 * XXX: only the page tables are read: a translation a CPU still caches (a global kernel entry
 * filled in kernel mode) is not counted, nor is Meltdown-PK or L1TF.
 */
import type { Kernel } from './kernel.js';
import { is_vsyscall_vaddr } from './vsyscall.js';
import {
  CPU_ENTRY_AREA_BASE, ENTRY_TEXT_START, ESPFIX_BASE_ADDR, KERNEL_DATA, KERNEL_TEXT, type KernelLayout,
} from './layout.js';
import type { MmStruct } from './mm.js';
import { pti_allowed_ranges, pti_user_copy, walkKernelHalf } from './pti.js';

/** One reachable range: [start, end) of kernel virtual addresses, its mapped bytes and region. */
export interface ReachRange {
  start: bigint;
  end: bigint;
  bytes: number;
  region: string;
}

/** A process's Meltdown reach. */
export interface Reach {
  /** The mm's ctx_id. */
  mm: number;
  /** Which PGD user mode runs on: `user copy` (PTI), `kernel copy` (no PTI, or per-process PTI off). */
  pageTable: 'user copy' | 'kernel copy';
  /** Whether the CPU has the meltdown bug: without it `ranges` is empty. */
  meltdown: boolean;
  ranges: ReachRange[];
  /** Total bytes over all ranges. */
  bytes: number;
}

const P4D = 1n << 39n;

/** The name of the kernel region `va` lies in, in layout `l` (Documentation/arch/x86/x86_64/mm.rst). */
export function kernel_region(l: KernelLayout, va: bigint): string {
  if (va >= l.ldt_base_addr && va < l.ldt_slots_end) return 'ldt remap';
  if (is_vsyscall_vaddr(va)) return 'vsyscall';
  if (va >= l.page_offset_base && va < l.page_offset_base + l.direct_map_size) return 'direct map';
  if (va >= l.vmalloc_base && va < l.vmalloc_base + l.vmalloc_size) return 'vmalloc';
  if (va >= CPU_ENTRY_AREA_BASE && va < CPU_ENTRY_AREA_BASE + P4D) return 'cpu_entry_area';
  if (va >= ESPFIX_BASE_ADDR && va < ESPFIX_BASE_ADDR + P4D) return 'espfix';
  if (va >= ENTRY_TEXT_START && va < KERNEL_DATA) return va < ENTRY_TEXT_START + 0x1000n ? 'entry text' : 'kernel text';
  if (va >= KERNEL_DATA && va < KERNEL_TEXT + 0x40000000n) return 'kernel data';
  return 'kernel';
}

/**
 * The kernel ranges a transient load from `mm`'s user mode can read: each present kernel-half
 * leaf of the page table it runs on, merged with its neighbours in the same region.
 */
export function process_reach(k: Kernel, mm: MmStruct): Reach {
  const user = pti_user_copy(k, mm);
  const meltdown = k.machine.model.meltdown;
  const ranges: ReachRange[] = [];
  if (meltdown && !mm.dead) {
    const tss = pti_allowed_ranges(k).filter((r) => r.what.startsWith('cpu_tss_rw'));
    walkKernelHalf(k, user ? mm.pgtables.userPgd : mm.pgd, (leaf) => {
      const region = tss.find((r) => leaf.va >= r.start && leaf.va < r.end)?.what ?? kernel_region(k.layout, leaf.va);
      const last = ranges[ranges.length - 1];
      if (last && last.end === leaf.va && last.region === region) {
        last.end += BigInt(leaf.bytes);
        last.bytes += leaf.bytes;
      } else ranges.push({ start: leaf.va, end: leaf.va + BigInt(leaf.bytes), bytes: leaf.bytes, region });
    });
  }
  return { mm: mm.ctx_id, pageTable: user ? 'user copy' : 'kernel copy', meltdown, ranges, bytes: ranges.reduce((s, r) => s + r.bytes, 0) };
}
