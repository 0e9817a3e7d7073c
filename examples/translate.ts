import { Machine, PageTableBuilder, CR4_SMAP } from '../src/index.js';

// A machine with two CPUs of the default model (PCID, SMEP, SMAP, PKU, shadow stacks).
const m = new Machine({ cpus: 2 });

// 4-level page tables: a read-only user page and a writable kernel page.
const pt = new PageTableBuilder(m.mem);
pt.map(0x7f0000001000n, 0x100000, { leaf: { us: true, rw: false } });
pt.map(0xffff888000001000n, 0x200000, { leaf: { rw: true, xd: true } });

const cpu = m.cpus[0];
cpu.setCr3(pt.cr3());
cpu.movToCr4(cpu.cr4 | CR4_SMAP);

cpu.setCpl(3);
console.log(cpu.translateAddress(0x7f0000001234n, 'read')); // 1049140 (0x100234)
console.log(cpu.translateAddress(0x7f0000001234n, 'write')); // null: #PF
console.log(cpu.lastFault()); // { vector: 14, errorCode: 7, cr2: 139637976732212n }: P W U, CR2 = the address

cpu.setCpl(0);
console.log(cpu.translateAddress(0x7f0000001234n, 'read')); // null: SMAP, error code 1 (P)
cpu.stac();
console.log(cpu.translateAddress(0x7f0000001234n, 'read')); // 1049140 inside STAC/CLAC
console.log(cpu.probe(0x7f0000001234n).entries.map((e) => e.value.toString(16))); // PML4E, PDPTE, PDE, PTE
