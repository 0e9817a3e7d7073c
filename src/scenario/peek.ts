/**
 * Reading a process's memory from outside, for end-of-run expectations: a software walk of
 * the mm's page tables in physical memory. It changes nothing: no A/D bits, no TLB fills, no
 * faults, and it ignores protection keys and R/W. It reports only what is mapped now: an
 * address never faulted in, or PROT_NONE, reads as unmapped.
 */
import { PTE_A, PTE_D, PTE_P, PTE_RW, PTEH_SAVED_DIRTY, ptePkey } from '../hw/pte.js';
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

/** The PTE (lo, hi) that maps `va` in `mm`, or null when no PTE table covers it (an empty entry is [0, 0]). */
export function peekPte(k: Kernel, mm: MmStruct, va: number): [number, number] | null {
  if (!Number.isSafeInteger(va) || va < 0 || va >= 2 ** 47) return null;
  const table = mm.pgtables.pteTable(va, false);
  if (table < 0) return null;
  const i = Math.floor(va / 4096) % 512;
  return [k.machine.mem.readLo(table, i), k.machine.mem.readHi(table, i)];
}

/** The fields a `ptes` expectation names, read from a PTE (all 0 when there is none). */
export function pteFields(pte: [number, number] | null): Record<'present' | 'rw' | 'accessed' | 'dirty' | 'saved_dirty' | 'pkey', number> {
  const [lo, hi] = pte ?? [0, 0];
  return {
    present: lo & PTE_P ? 1 : 0,
    rw: lo & PTE_RW ? 1 : 0,
    accessed: lo & PTE_A ? 1 : 0,
    dirty: lo & PTE_D ? 1 : 0,
    saved_dirty: hi & PTEH_SAVED_DIRTY ? 1 : 0,
    pkey: ptePkey(hi),
  };
}
