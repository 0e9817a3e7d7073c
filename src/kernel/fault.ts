/**
 * The page-fault handler (arch/x86/mm/fault.c): exc_page_fault -> do_user_addr_fault or
 * do_kern_addr_fault. Finds the VMA (growing a stack VMA downwards when the access is just
 * below it), checks the access against the VMA (access_error), calls handle_mm_fault, and
 * turns failures into SIGSEGV with SEGV_MAPERR or SEGV_ACCERR for user mode, or into the
 * exception fixup (-EFAULT) for a kernel access to user memory.
 */
import { PF_I, PF_P, PF_PK, PF_SS, PF_U, PF_W } from '../hw/rights.js';
import type { Kernel, PerCpu } from './kernel.js';
import { faultOutcome, FAULT_FLAG_INSTRUCTION, FAULT_FLAG_WRITE, handle_mm_fault, VM_FAULT_OOM } from './memory.js';
import { mmapLockId } from './mmput.js';
import { force_sig_fault, force_sig } from './signal.js';
import { STEP_LOCK, STEP_UNLOCK, STEP_WAIT, type KPath } from './steps.js';
import type { Task } from './task.js';
import { SEGV_ACCERR, SEGV_MAPERR, SEGV_PKUERR, SIGKILL, SIGSEGV } from './uapi.js';
import { VM_ACCESS_FLAGS, VM_GROWSDOWN, VM_WRITE, type Vma } from './vma.js';

/** stack_guard_gap: 256 pages between a growing stack and the mapping below it. */
export const STACK_GUARD_GAP = 256 * 4096;
/** RLIMIT_STACK's default soft limit: 8 MiB. */
export const RLIMIT_STACK = 8 * 2 ** 20;

/** Fault results for a kernel-mode access (the uaccess fixup). */
export const FAULT_FIXED = 0;
export const FAULT_EFAULT = 1;

/**
 * access_error: whether the fault's kind is not allowed by the VMA at all (so no page-table
 * change could fix it): a protection-key fault; a shadow-stack access to a non-shadow-stack
 * VMA; a write to a VMA without VM_WRITE (or to shadow stack by a normal write); a
 * protection fault on a present page for a read; any access to a PROT_NONE VMA.
 */
export function access_error(errorCode: number, vma: Vma): boolean {
  if (errorCode & PF_PK) return true;
  if (errorCode & PF_SS) return !vma.shadowStack || !(vma.vm_flags & VM_WRITE);
  if (errorCode & PF_W) {
    if (vma.shadowStack) return true;
    return !(vma.vm_flags & VM_WRITE);
  }
  if (errorCode & PF_P) return true;
  return (vma.vm_flags & VM_ACCESS_FLAGS) === 0;
}

/**
 * do_user_addr_fault for `addr` (a user-space address, below TASK_SIZE) with the hardware
 * error code. User mode (`errorCode & PF_U`): a bad access gets SIGSEGV (queued with
 * force_sig_fault; the return to user delivers it). Kernel mode: returns FAULT_EFAULT when
 * the access cannot be fixed, for the caller's exception fixup. Out of memory kills the
 * process (XXX: the OOM killer's choice of victim is not modelled).
 */
export function* do_user_addr_fault(k: Kernel, pc: PerCpu, t: Task, addr: number, errorCode: number): KPath {
  const user = (errorCode & PF_U) !== 0;
  const mm = t.mm;
  if (!mm) return bad_area(k, pc, t, addr, errorCode, SEGV_MAPERR);
  // lock_mm_and_find_vma
  pc.touch = mmapLockId(mm);
  while (mm.mmap_lock.writer !== 0) yield STEP_WAIT;
  yield STEP_LOCK;
  mm.mmap_lock.readers++;
  const vma = mm.vmas.find_vma(addr);
  let code = 0;
  if (!vma) code = SEGV_MAPERR;
  else if (vma.vm_start > addr) {
    if (vma.vm_flags & VM_GROWSDOWN && expand_stack(k, mm.vmas.prevOf(addr), vma, addr)) {
      // grown
    } else code = SEGV_MAPERR;
  }
  if (code === 0 && access_error(errorCode, vma!)) code = errorCode & PF_PK ? SEGV_PKUERR : SEGV_ACCERR;
  let result = 0;
  if (code === 0) {
    let flags = 0;
    if (errorCode & PF_W) flags |= FAULT_FLAG_WRITE;
    if (errorCode & PF_I) flags |= FAULT_FLAG_INSTRUCTION;
    result = yield* handle_mm_fault(k, pc, t, vma!, addr, flags);
  }
  pc.touch = mmapLockId(mm);
  yield STEP_UNLOCK;
  mm.mmap_lock.readers--;
  if (code !== 0) return bad_area(k, pc, t, addr, errorCode, code);
  if (result & VM_FAULT_OOM) {
    emitFault(k, pc, t, addr, errorCode, user, 'oom');
    force_sig(k, t, SIGKILL);
    return FAULT_EFAULT;
  }
  emitFault(k, pc, t, addr, errorCode, user, faultOutcome);
  return FAULT_FIXED;
}

/**
 * expand_stack (expand_downwards): grows a VM_GROWSDOWN VMA down to `addr`'s page unless that
 * is below mmap_min_addr, within stack_guard_gap of an accessible, non-stack VMA below, or
 * beyond RLIMIT_STACK.
 */
function expand_stack(k: Kernel, prev: Vma | null, vma: Vma, addr: number): boolean {
  const start = Math.floor(addr / 4096) * 4096;
  if (addr < k.options.mmap_min_addr) return false;
  if (prev && !(prev.vm_flags & VM_GROWSDOWN) && prev.vm_flags & VM_ACCESS_FLAGS && start - prev.vm_end < STACK_GUARD_GAP) return false;
  if (vma.vm_end - start > RLIMIT_STACK) return false;
  vma.vm_pgoff -= (vma.vm_start - start) / 4096;
  vma.vm_start = start;
  return true;
}

/** __bad_area_nosemaphore: SIGSEGV for user mode, the fixup for kernel mode. */
function bad_area(k: Kernel, pc: PerCpu, t: Task, addr: number | bigint, errorCode: number, code: number): number {
  const user = (errorCode & PF_U) !== 0;
  emitFault(k, pc, t, addr, errorCode, user, user ? 'signal' : 'efault');
  if (!user) return FAULT_EFAULT;
  force_sig_fault(k, t, SIGSEGV, code, BigInt(addr));
  return FAULT_FIXED;
}

/**
 * exc_page_fault: the #PF entry. `hi`:`lo` is CR2. An address outside user space goes to
 * do_kern_addr_fault, which for a user-mode access is SEGV_MAPERR (the kernel half is never
 * the user's) and for a kernel access to a bad address the fixup.
 */
export function* exc_page_fault(k: Kernel, pc: PerCpu, t: Task, hi: number, lo: number, errorCode: number): KPath {
  const addr = hi * 2 ** 32 + lo;
  if (hi >= 0x8000 || addr >= t.mm!.task_size) {
    const a = (BigInt(hi) << 32n) | BigInt(lo);
    return bad_area(k, pc, t, a, errorCode, SEGV_MAPERR);
  }
  return yield* do_user_addr_fault(k, pc, t, addr, errorCode);
}

function emitFault(k: Kernel, pc: PerCpu, t: Task, addr: number | bigint, errorCode: number, user: boolean, outcome: string): void {
  if (k.events.on) k.emit({ type: 'page_fault', cpu: pc.id, tid: t.tid, addr: BigInt(addr), errorCode, user, outcome });
}
