/**
 * The IDT as Linux 6.12 x86-64 sets it up (arch/x86/kernel/idt.c, asm/desc_defs.h,
 * asm/irq_vectors.h), as far as the processor reads it in the model: the gate of vector 0x80
 * (IA32_SYSCALL_VECTOR), which INT 0x80 from user mode goes through. idt_setup_traps installs
 * ia32_idt's SYSG(IA32_SYSCALL_VECTOR, asm_int80_emulation), a DPL 3 interrupt gate, only
 * when ia32_enabled() (the `ia32_emulation=` boot parameter); otherwise vector 0x80 is a
 * clear bit of system_vectors, which idt_setup_apic_and_irq_gates fills with an external
 * interrupt's gate (set_intr_gate: DPL 0), so INT 0x80 from CPL 3 is #GP(0x80 * 8 + 2).
 * The table is idt_table, the first kernel data page, loaded (load_idt) at its read-only
 * alias CPU_ENTRY_AREA_RO_IDT. XXX: the other gates are not written: the model delivers
 * exceptions and interrupts to their handlers without reading the IDT.
 */
import { SYS_TYPE_INT_GATE } from '../hw/segment.js';
import { __KERNEL_CS } from './desc.js';
import type { Kernel, PerCpu } from './kernel.js';
import { CPU_ENTRY_AREA_BASE, KERNEL_PHYS, KERNEL_TEXT_PAGES } from './layout.js';

/** IA32_SYSCALL_VECTOR (asm/irq_vectors.h). */
export const IA32_SYSCALL_VECTOR = 0x80;
/** IDT_ENTRIES (asm/desc_defs.h): 256 gates of 16 bytes; the IDTR limit is their size - 1. */
export const IDT_ENTRIES = 256;
const IDT_LIMIT = IDT_ENTRIES * 16 - 1;

/** The physical address of idt_table: the first data page after the kernel text. */
const IDT_TABLE_PHYS = KERNEL_PHYS + KERNEL_TEXT_PAGES * 4096;

/**
 * idt_init_desc (idt.c): gate `vector`'s 16 bytes, for a handler the model places nowhere
 * (offset 0): selector __KERNEL_CS, IST 0, `type`, `dpl`, present.
 */
function write_idt_gate(k: Kernel, vector: number, type: number, dpl: number): void {
  const lo = (__KERNEL_CS << 16) >>> 0;
  const hi = ((type << 8) | (dpl << 13) | (1 << 15)) >>> 0;
  const b = new Uint8Array(16);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, lo, true);
  dv.setUint32(4, hi, true);
  k.machine.mem.writeBytes(IDT_TABLE_PHYS + vector * 16, b);
}

/**
 * idt_setup_traps's ia32_idt (with ia32_enabled()) or idt_setup_apic_and_irq_gates's external
 * interrupt gate for vector 0x80: written once, at boot, into idt_table.
 */
export function idt_setup_ia32(k: Kernel): void {
  if (k.options.ia32_emulation) write_idt_gate(k, IA32_SYSCALL_VECTOR, SYS_TYPE_INT_GATE, 3);
  else write_idt_gate(k, IA32_SYSCALL_VECTOR, SYS_TYPE_INT_GATE, 0);
}

/** load_idt: this CPU's IDTR = the read-only alias of idt_table in the cpu_entry_area. */
export function load_idt(pc: PerCpu): void {
  pc.cpu.lidt(CPU_ENTRY_AREA_BASE, IDT_LIMIT);
}
