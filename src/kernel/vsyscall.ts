/**
 * The vsyscall page (arch/x86/entry/vsyscall/vsyscall_64.c and vsyscall_emu_64.S, 6.12): the
 * legacy fixed-address entry points at VSYSCALL_ADDR, 0xffffffffff600000, for gettimeofday
 * (+0), time (+0x400) and getcpu (+0x800), in the mode the `vsyscall=` boot parameter (kernel
 * option `vsyscall`) chose:
 *  - emulate: map_vsyscall maps __vsyscall_page there, present, user, read-only and NX
 *    (PAGE_KERNEL_VVAR), with _PAGE_USER on the tables above it, and with PTI
 *    pti_setup_vsyscall puts the same PTE in the user copy; reads see its bytes, and an
 *    instruction fetch faults (NX) into emulate_vsyscall;
 *  - xonly (upstream's and Debian's default, CONFIG_LEGACY_VSYSCALL_XONLY): no PTE at all; a
 *    fetch faults (not present) into emulate_vsyscall, a read is SIGSEGV (SEGV_MAPERR), and the
 *    gate VMA shown in /proc/PID/maps is execute-only;
 *  - none: no PTE and no gate VMA; everything there is SIGSEGV.
 *
 * XXX: seccomp is not modelled (secure_computing always allows); warn_bad_vsyscall's log lines
 * are not kept; emulate_vsyscall does not pop the shadow stack (6.12's does not either), so a
 * thread with a user shadow stack that returns through one later gets #CP.
 */
import { PTE_A, PTE_P, PTE_US } from '../hw/pte.js';
import { PF_I, PF_U, PF_W } from '../hw/rights.js';
import { X86_TRAP_PF } from '../hw/regs.js';
import type { Kernel, PerCpu } from './kernel.js';
import { kindex, type KernelMapper, VSYSCALL_ADDR } from './layout.js';
import { force_sig, force_sig_fault, sigmask } from './signal.js';
import type { KPath, KSteps } from './steps.js';
import type { Task } from './task.js';
import { ip_of } from '../hw/addr.js';
import { sys_getcpu, sys_gettimeofday, sys_time } from './time.js';
import { access_ok, copy_from_user, getU64 } from './uaccess.js';
import { EFAULT, SEGV_MAPERR, SIGSEGV } from './uapi.js';
import { VM_EXEC, VM_READ } from './vma.js';

export { VSYSCALL_ADDR };

/** __NR_gettimeofday, __NR_time and __NR_getcpu (syscall_64.tbl): the stubs' rax. */
const VSYSCALL_NRS = Object.freeze([96, 201, 309]);

/** is_vsyscall_vaddr (asm/vsyscall.h): `addr` (64-bit) lies in the vsyscall page. */
export function is_vsyscall_vaddr(addr: bigint): boolean {
  return (BigInt.asUintN(64, addr) & ~0xfffn) === VSYSCALL_ADDR;
}

/**
 * __vsyscall_page (vsyscall_emu_64.S): at 0, 0x400 and 0x800 `mov $nr, %rax` (48 c7 c0 imm32),
 * `syscall` (0f 05), `ret` (c3), `int3` (cc); every other byte int3 (.balign with 0xcc).
 */
export function vsyscall_page_bytes(): Uint8Array {
  const b = new Uint8Array(4096).fill(0xcc);
  VSYSCALL_NRS.forEach((nr, i) => {
    b.set([0x48, 0xc7, 0xc0, nr & 0xff, nr >> 8, 0, 0, 0x0f, 0x05, 0xc3, 0xcc], i * 0x400);
  });
  return b;
}

/**
 * set_vsyscall_pgtable_user_bits: _PAGE_USER on the PGD (and with 5 levels P4D), PUD and PMD
 * entries above VSYSCALL_ADDR in the tables under `root`.
 */
function set_vsyscall_pgtable_user_bits(k: Kernel, m: KernelMapper, root: number): void {
  for (let level = k.levels; level >= 2; level--) m.setFlags(m.descend(root, VSYSCALL_ADDR, level), kindex(VSYSCALL_ADDR, level), PTE_US);
}

/**
 * map_vsyscall (at boot, before pti_init): with vsyscall=emulate, __set_fixmap(VSYSCALL_PAGE,
 * frame `pfn`, PAGE_KERNEL_VVAR): __PAGE_KERNEL_RO | _PAGE_USER, NX, and G as other kernel
 * mappings (`g`: none under PTI), then the user bits above it; the frame gets the page's bytes.
 * xonly and none map nothing (xonly only makes the gate VMA VM_EXEC: gate_vma_flags).
 */
export function map_vsyscall(k: Kernel, m: KernelMapper, pgd: number, pfn: number, g: number): void {
  if (k.options.vsyscall !== 'emulate') return;
  k.machine.mem.writeBytes(pfn * 4096, vsyscall_page_bytes());
  m.map4k(pgd, VSYSCALL_ADDR, pfn, PTE_P | PTE_US | PTE_A | g, k.nx);
  set_vsyscall_pgtable_user_bits(k, m, pgd);
}

/**
 * pti_setup_vsyscall (arch/x86/mm/pti.c): when the kernel copy maps the vsyscall page
 * (emulate), the user copy gets the same PTE (pti_user_pagetable_walk_pte makes its tables)
 * and the user bits above it.
 */
export function pti_setup_vsyscall(k: Kernel, m: KernelMapper, pgd: number, userPgd: number): void {
  const mem = k.machine.mem;
  const pte = m.descend(pgd, VSYSCALL_ADDR, 1);
  const i = kindex(VSYSCALL_ADDR, 1);
  if (!(mem.readLo(pte, i) & PTE_P)) return;
  m.copyEntry(pte, m.descend(userPgd, VSYSCALL_ADDR, 1), i);
  set_vsyscall_pgtable_user_bits(k, m, userPgd);
}

/**
 * get_gate_vma's vm_flags: VM_READ | VM_EXEC (emulate), VM_EXEC (xonly: map_vsyscall), or null
 * with vsyscall=none (no gate VMA).
 */
export function gate_vma_flags(k: Kernel): number | null {
  const mode = k.options.vsyscall;
  return mode === 'none' ? null : mode === 'xonly' ? VM_EXEC : VM_READ | VM_EXEC;
}

/** addr_to_vsyscall_nr: 0, 1 or 2 for the three entry points, -1 (-EINVAL) for any other address. */
function addr_to_vsyscall_nr(addr: bigint): number {
  if ((addr & ~0xc00n) !== VSYSCALL_ADDR) return -1;
  const nr = Number((addr & 0xc00n) >> 10n);
  return nr >= 3 ? -1 : nr;
}

/**
 * write_ok_or_segv: access_ok of [ptr, ptr + size); if not, the thread's trap state says a
 * user write #PF at ptr and SIGSEGV (SEGV_MAPERR, si_addr ptr) is forced. NULL passes.
 */
function write_ok_or_segv(k: Kernel, t: Task, ptr: bigint, size: number): boolean {
  if (access_ok(t, ptr, size)) return true;
  t.error_code = PF_U | PF_W;
  t.cr2 = ptr;
  t.trap_nr = X86_TRAP_PF;
  force_sig_fault(k, t, SIGSEGV, SEGV_MAPERR, ptr);
  return false;
}

/**
 * emulate_vsyscall (6.12), called by do_user_addr_fault for a #PF at an address in the
 * vsyscall page before any VMA is looked for. False (the fault goes on to find no VMA:
 * SIGSEGV SEGV_MAPERR) for a write or a kernel-mode fault, for a fault that is not an
 * instruction fetch (6.12.0 tests X86_PF_INSTR; the later stable kernels test address !=
 * regs->ip instead), and with vsyscall=none. Otherwise true, having, in order: forced SIGSEGV
 * (SI_KERNEL) for an address that is not an entry point, or when get_user of the return
 * address at regs->sp faults; checked the output pointers with access_ok (write_ok_or_segv:
 * SEGV_MAPERR at the bad pointer; the -EFAULT that follows forces SIGSEGV again, which the one
 * pending absorbs); run gettimeofday(rdi, rsi), time(rdi) or getcpu(rdi, rsi, 0) with their
 * copy_to_user, an -EFAULT from which forces SIGSEGV (SI_KERNEL: "vsyscall fault (exploit
 * attempt?)") and leaves ip in the page; otherwise emulated RET: rax the result, ip the return
 * address, sp + 8. The program's variables rdi, rsi and rax are those registers.
 */
export function* emulate_vsyscall(k: Kernel, pc: PerCpu, t: Task, errorCode: number, address: bigint): KSteps<boolean> {
  if ((errorCode & (PF_W | PF_U)) !== PF_U) return false;
  if (!(errorCode & PF_I)) return false;
  // WARN_ON_ONCE(address != regs->ip): the model's `fetch` operation faults with ip at itself.
  if (k.options.vsyscall === 'none') return false;
  const vsyscall_nr = addr_to_vsyscall_nr(address);
  if (vsyscall_nr < 0) {
    force_sig(k, t, SIGSEGV);
    return true;
  }
  const b = yield* copy_from_user(k, pc, t, BigInt(t.sp), 8);
  if (!b) {
    force_sig(k, t, SIGSEGV);
    return true;
  }
  const caller = getU64(b, 0);
  const di = BigInt.asUintN(64, t.vars.get('rdi') ?? 0n);
  const si = BigInt.asUintN(64, t.vars.get('rsi') ?? 0n);
  let ret: number;
  let ok: boolean;
  switch (vsyscall_nr) {
    case 0:
      ok = write_ok_or_segv(k, t, di, 16) && write_ok_or_segv(k, t, si, 8);
      break;
    case 1:
      ok = write_ok_or_segv(k, t, di, 8);
      break;
    default:
      ok = write_ok_or_segv(k, t, di, 4) && write_ok_or_segv(k, t, si, 4);
  }
  if (!ok) ret = -EFAULT;
  else {
    const args = [di, si, 0n, 0n, 0n, 0n];
    const call: KPath = vsyscall_nr === 0 ? sys_gettimeofday(k, pc, t, args) : vsyscall_nr === 1 ? sys_time(k, pc, t, args) : sys_getcpu(k, pc, t, args);
    ret = yield* call;
  }
  if (ret === -EFAULT) {
    // force_sig(SIGSEGV); after write_ok_or_segv's, legacy_queue drops it (the state is the same).
    if (!(t.pending.signal & sigmask(SIGSEGV))) force_sig(k, t, SIGSEGV);
    return true;
  }
  t.vars.set('rax', BigInt(ret));
  k.recordOp(t, BigInt(ret), undefined);
  t.pc = ip_of(caller);
  t.sp += 8;
  return true;
}
