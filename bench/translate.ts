/**
 * Translation speed: a TLB hit, and a TLB miss with a 4-level (and 5-level) walk and fill.
 * Each task runs BATCH translations so the timer's resolution does not dominate; the figure
 * reported is the median task time divided by BATCH.
 */
import { Access, Machine, PageTableBuilder, type Cpu } from '../src/index.js';

export const BATCH = 4096;

/** A user-mode CPU with `pages` consecutive 4 KiB user pages mapped at 0x10000000, A already set. */
function setup(pages: number, tlb: { entries4k: number; ways4k: number }, la57 = false): Cpu {
  const m = new Machine({ memory: 1 << 28, cpu: { la57, tlb: { ...tlb, entries2m: 32, ways2m: 4, entries1g: 16, ways1g: 4 } } });
  const pt = new PageTableBuilder(m.mem, { levels: la57 ? 5 : 4 });
  for (let i = 0; i < pages; i++) pt.map(0x10000000 + i * 4096, (1024 + i) * 4096, { leaf: { rw: true, us: true, a: true }, table: { rw: true, us: true, a: true } });
  const cpu = m.cpus[0];
  cpu.setCr3(pt.cr3());
  cpu.setCpl(3);
  return cpu;
}

export interface TranslateTask {
  name: string;
  /** Runs BATCH translations; returns a checksum so the work cannot be optimised away. */
  run: () => number;
  /** After the run: the fraction of translations that were TLB hits, to show the task measured what it says. */
  hitRate: () => number;
}

/** The translation tasks. */
export function translateTasks(): TranslateTask[] {
  const hitCpu = setup(64, { entries4k: 1024, ways4k: 4 });
  // 16 entries and a cyclic walk over 2048 pages: round-robin replacement evicts every page before its reuse.
  const missCpu = setup(2048, { entries4k: 16, ways4k: 4 });
  const miss5Cpu = setup(2048, { entries4k: 16, ways4k: 4 }, true);
  let next = 0;
  const loop = (cpu: Cpu, pages: number) => (): number => {
    let sum = 0;
    for (let i = 0; i < BATCH; i++) {
      const page = next++ & (pages - 1);
      sum += cpu.translate(0, 0x10000000 + page * 4096 + 0x10, Access.Read);
    }
    return sum;
  };
  const rate = (cpu: Cpu) => () => cpu.tlb.hits / (cpu.tlb.hits + cpu.tlb.misses);
  for (const cpu of [hitCpu, missCpu, miss5Cpu]) for (let i = 0; i < 2048; i++) cpu.translate(0, 0x10000000 + i * 4096, Access.Read);
  for (const cpu of [hitCpu, missCpu, miss5Cpu]) cpu.tlb.hits = cpu.tlb.misses = 0;
  return [
    { name: 'translate, TLB hit', run: loop(hitCpu, 64), hitRate: rate(hitCpu) },
    { name: 'translate, TLB miss: 4-level walk + fill', run: loop(missCpu, 2048), hitRate: rate(missCpu) },
    { name: 'translate, TLB miss: 5-level walk + fill', run: loop(miss5Cpu, 2048), hitRate: rate(miss5Cpu) },
  ];
}
