/**
 * Reading a process's memory from outside, for end-of-run expectations: a software walk of
 * the mm's page tables in physical memory. It changes nothing: no A/D bits, no TLB fills, no
 * faults, and it ignores protection keys and R/W. It reports only what is mapped now: an
 * address never faulted in, or PROT_NONE, reads as unmapped.
 */
import { PTE_P } from '../hw/pte.js';
import type { Kernel } from '../kernel/kernel.js';
import type { MmStruct } from '../kernel/mm.js';
import { pte_pfn } from '../kernel/pgtable.js';

/** The physical address `va` maps to in `mm`, or null when no present PTE maps it. */
export function peekPhys(k: Kernel, mm: MmStruct, va: number): number | null {
  if (!Number.isSafeInteger(va) || va < 0 || va >= 2 ** 47) return null;
  const table = mm.pgtables.pteTable(va, false);
  if (table < 0) return null;
  const i = Math.floor(va / 4096) % 512;
  const lo = k.machine.mem.readLo(table, i);
  if (!(lo & PTE_P)) return null;
  return pte_pfn(lo, k.machine.mem.readHi(table, i)) * 4096 + (va % 4096);
}

/** `size` bytes little-endian at `va` in `mm`, or null if any byte is unmapped. */
export function peekUser(k: Kernel, mm: MmStruct, va: bigint, size: number): bigint | null {
  let v = 0n;
  for (let i = 0; i < size; i++) {
    const pa = peekPhys(k, mm, Number(va) + i);
    if (pa === null) return null;
    v |= BigInt(k.machine.mem.readBytes(pa, 1)[0]) << BigInt(8 * i);
  }
  return v;
}
