/** Shared set-up for hw tests: a machine with page tables and a running CPU. */
import { Machine, PageTableBuilder, type MachineConfig, CR4_PCIDE, CR4_PGE, hi32, lo32 } from '../../src/index.js';

export interface Rig {
  m: Machine;
  pt: PageTableBuilder;
  cpu: Machine['cpus'][number];
}

/** A machine whose CPU 0 runs on fresh 4-level tables, CPL 0, with the given CR4 extras. */
export function rig(config: MachineConfig = {}, cr4Extra = 0): Rig {
  const m = new Machine(config);
  const pt = new PageTableBuilder(m.mem, { levels: m.model.la57 ? 5 : 4 });
  const cpu = m.cpus[0];
  if (!cpu.setCr3(pt.cr3())) throw new Error('CR3 load failed');
  if (cr4Extra && !cpu.movToCr4(cpu.cr4 | cr4Extra)) throw new Error('CR4 write failed');
  return { m, pt, cpu };
}

/** CR4 bits to turn PCID and global pages on. */
export const PCID_PGE = CR4_PCIDE | CR4_PGE;

/** Translates a bigint/number address; returns the physical address or -1. */
export function tr(cpu: Rig['cpu'], addr: bigint | number, kind: number): number {
  return cpu.translate(hi32(addr), lo32(addr), kind);
}

/** Physical address of frame `pfn`. */
export const pa = (pfn: number): number => pfn * 4096;
