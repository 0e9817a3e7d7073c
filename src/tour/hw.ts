/**
 * The machine-layer stops of the tour: each asks one question about the processor model and
 * answers it by running the model, with the evidence (error codes, PTE bits, translations).
 * The scenario files of later releases join these; `isolab tour` prints them all.
 */
import { hi32, lo32 } from '../hw/addr.js';
import type { Cpu } from '../hw/cpu.js';
import { Machine, type MachineConfig } from '../hw/machine.js';
import { PageTableBuilder } from '../hw/ptbuild.js';
import { describePte } from '../hw/pte.js';
import { CR4_PCIDE, CR4_PKE, CR4_SMAP } from '../hw/regs.js';
import { pfErrorBitNames } from '../hw/rights.js';

/** One stop: the question, the answer the model gives, and the lines that show it. */
export interface TourStop {
  id: string;
  question: string;
  answer: string;
  evidence: string[];
}

const USER = 0x7f0000001000n;
const KERNEL = 0xffff888000001000n;

/** A machine with one CPU on fresh tables mapping a user page and a kernel page. */
function setup(config: MachineConfig = {}) {
  const m = new Machine(config);
  const pt = new PageTableBuilder(m.mem);
  pt.map(USER, 0x100000, { leaf: { rw: true, us: true } });
  pt.map(KERNEL, 0x200000, { leaf: { rw: true } });
  m.mem.writeBytes(0x200000, new TextEncoder().encode('kernel secret'));
  const cpu = m.cpus[0];
  cpu.setCr3(pt.cr3());
  return { m, pt, cpu };
}

/** "#PF, error code 0x7 (P W U)" or "pa 0x100000". */
export function outcome(cpu: Cpu, pa: number | null): string {
  if (pa !== null) return `pa 0x${pa.toString(16)}`;
  const f = cpu.lastFault()!;
  if (f.vector !== 14) return `#${f.vector === 13 ? 'GP' : f.vector === 6 ? 'UD' : f.vector}(${f.errorCode})`;
  return `#PF, error code 0x${f.errorCode.toString(16)} (${errorCodeNames(f.errorCode)})`;
}

/** The set bits of a #PF error code by their SDM names. */
export function errorCodeNames(ec: number): string {
  const set = pfErrorBitNames(ec);
  return set.length ? set.join(' ') : 'not present, read, supervisor';
}

function pte(pt: PageTableBuilder, la: bigint): string {
  const v = pt.readEntry(la, 1)!;
  return describePte(Number(v & 0xffffffffn), Number(v >> 32n));
}

/** U/S: a user read of a supervisor page faults; the walk found it present. */
function userReadsKernel(): TourStop {
  const { cpu } = setup();
  cpu.setCpl(3);
  const r = cpu.translateAddress(KERNEL, 'read');
  return {
    id: 'us-bit',
    question: 'Can user mode read a page whose PTE has U/S=0?',
    answer: r === null ? 'No: #PF with P=1, the page is present but supervisor-only.' : 'Yes (unexpected).',
    evidence: [`CPL 3 read of ${KERNEL.toString(16)}: ${outcome(cpu, r)}`],
  };
}

/** SMAP: an explicit supervisor read of a user page faults unless RFLAGS.AC is set (STAC). */
function smap(): TourStop {
  const { cpu } = setup();
  cpu.movToCr4(cpu.cr4 | CR4_SMAP);
  const without = outcome(cpu, cpu.translateAddress(USER, 'read'));
  cpu.stac();
  const withAc = outcome(cpu, cpu.translateAddress(USER, 'read'));
  cpu.clac();
  const implicit = outcome(cpu, (cpu.stac(), cpu.translateAddress(USER, 'implicit_read')));
  return {
    id: 'smap',
    question: 'With SMAP on, can the kernel read user memory?',
    answer: 'Only inside STAC/CLAC (RFLAGS.AC=1), and never by an implicit access.',
    evidence: [`CPL 0 read, AC=0: ${without}`, `CPL 0 read, AC=1: ${withAc}`, `implicit supervisor read, AC=1: ${implicit}`],
  };
}

/** Stale rights: a write-protected PTE is not enough until INVLPG. */
function staleTlb(): TourStop {
  const { pt, cpu } = setup();
  cpu.setCpl(3);
  cpu.translateAddress(USER, 'write');
  pt.writeEntry(USER, 1, pt.readEntry(USER, 1)! & ~0x2n);
  const stale = outcome(cpu, cpu.translateAddress(USER, 'write'));
  cpu.setCpl(0);
  cpu.invlpg(hi32(USER), lo32(USER));
  cpu.setCpl(3);
  const fresh = outcome(cpu, cpu.translateAddress(USER, 'write'));
  return {
    id: 'stale-tlb',
    question: 'After the kernel clears R/W in a PTE, can user mode still write the page?',
    answer: 'Yes, through the stale TLB entry, until the kernel flushes it (INVLPG); then #PF.',
    evidence: [`PTE now: ${pte(pt, USER)}`, `write before INVLPG: ${stale}`, `write after INVLPG:  ${fresh}`],
  };
}

/** PCIDs: two address spaces' entries coexist; NOFLUSH keeps them across CR3 writes. */
function pcid(): TourStop {
  const { m, pt: a, cpu } = setup();
  const b = new PageTableBuilder(m.mem, { allocator: a.allocator });
  b.map(USER, 0x300000, { leaf: { rw: true, us: true } });
  cpu.movToCr4(cpu.cr4 | CR4_PCIDE);
  cpu.setCr3(a.cr3(1));
  const inA = outcome(cpu, cpu.translateAddress(USER));
  cpu.setCr3(b.cr3(2));
  const inB = outcome(cpu, cpu.translateAddress(USER));
  const misses = cpu.tlb.misses;
  cpu.setCr3(a.cr3(1, true));
  const backInA = outcome(cpu, cpu.translateAddress(USER));
  return {
    id: 'pcid',
    question: 'Do two address spaces with different PCIDs see each other\'s TLB entries?',
    answer: 'No; and with NOFLUSH (CR3 bit 63) switching back keeps PCID 1\'s entries: no walk.',
    evidence: [`PCID 1: ${inA}`, `PCID 2: ${inB}`, `PCID 1 again (NOFLUSH): ${backInA}, ${cpu.tlb.misses - misses} TLB misses`],
  };
}

/** Seed 003: a write through a clean cached writable entry while another CPU clears R/W. */
function dirtyOnReadonly(mode: 'strict' | 'legacy'): string[] {
  const { pt, cpu } = setup({ cpus: 2, cpu: mode === 'strict' ? {} : { shstk: false, dirty_on_readonly: 'legacy' } });
  cpu.setCpl(3);
  cpu.translateAddress(USER, 'read');
  pt.writeEntry(USER, 1, pt.readEntry(USER, 1)! & ~0x2n); // fork's wrprotect on another CPU
  const r = outcome(cpu, cpu.translateAddress(USER, 'write'));
  return [`${mode}: write ${r}; PTE ${pte(pt, USER)}`];
}

function seed003(): TourStop {
  return {
    id: 'dirty-on-readonly',
    question: 'CPU A caches a clean writable entry; CPU B clears R/W; A writes. Can the PTE end R/W=0, D=1 (the shadow-stack encoding)?',
    answer: 'On a shadow-stack CPU (strict) no: the D update re-walks and faults. On older CPUs (legacy) yes.',
    evidence: [...dirtyOnReadonly('strict'), ...dirtyOnReadonly('legacy')],
  };
}

/** Meltdown: a transient user load of a present kernel page. */
function meltdown(): TourStop {
  const lines = [false, true].map((bug) => {
    const { cpu } = setup({ cpu: { meltdown: bug } });
    cpu.setCpl(3);
    const data = cpu.transientRead(KERNEL, 13);
    return `meltdown=${bug}: ${data ? JSON.stringify(new TextDecoder().decode(data)) : 'nothing'} (architectural read: ${outcome(cpu, cpu.translateAddress(KERNEL))})`;
  });
  return {
    id: 'meltdown',
    question: 'What does a transient user load of a mapped kernel page return?',
    answer: 'The data on a CPU with the Meltdown bug, nothing on others; the architectural load faults on both. Hence PTI.',
    evidence: lines,
  };
}

/** PKU: WRPKRU takes effect at the next access, with no flush. */
function pkru(): TourStop {
  const { cpu } = setup();
  cpu.movToCr4(cpu.cr4 | CR4_PKE);
  cpu.setCpl(3);
  const before = outcome(cpu, cpu.translateAddress(USER, 'write'));
  cpu.wrpkru(0x2); // WD for key 0
  const hits = cpu.tlb.hits;
  const after = outcome(cpu, cpu.translateAddress(USER, 'write'));
  return {
    id: 'pkru',
    question: 'Does WRPKRU need a TLB flush before the next access obeys it?',
    answer: 'No: PKRU is read at every access; the cached translation keeps only the key.',
    evidence: [
      `write, PKRU=0: ${before}`,
      `write after WRPKRU(WD0), no flush: ${after}, decided on a TLB hit: ${cpu.tlb.hits > hits ? 'yes' : 'no'}`,
    ],
  };
}

/** Every machine-layer stop, in tour order. */
export function hwTour(): TourStop[] {
  return [userReadsKernel(), smap(), staleTlb(), pcid(), pkru(), seed003(), meltdown()];
}
