/**
 * The page-fault handler (arch/x86/mm/fault.c): exc_page_fault -> do_user_addr_fault or
 * do_kern_addr_fault. Finds the VMA (growing a stack VMA downwards when the access is just
 * below it), checks the access against the VMA (access_error), calls handle_mm_fault, and
 * turns failures into SIGSEGV with SEGV_MAPERR or SEGV_ACCERR for user mode, or into the
 * exception fixup (-EFAULT) for a kernel access to user memory.
 */
import { PF_I, PF_P, PF_PK, PF_SS, PF_U, PF_W } from '../hw/rights.js';
import { X86_TRAP_PF } from '../hw/regs.js';
import { ModelError } from '../errors.js';
import type { PageFaultOutcome } from './events.js';
import type { Kernel, PerCpu } from './kernel.js';
import { FAULT_FLAG_DEFAULT, FAULT_FLAG_INSTRUCTION, FAULT_FLAG_TRIED, FAULT_FLAG_USER, FAULT_FLAG_WRITE, handle_mm_fault, vm_fault, VM_FAULT_OOM, VM_FAULT_RETRY, VM_FAULT_SIGBUS } from './memory.js';
import { mmapLockId } from './mmput.js';
import { force_sig_fault, force_sig, __fatal_signal_pending, signal_pending } from './signal.js';
import { arch_vma_access_permitted } from './pkeys.js';
import { kcall, STEP_LOCK, STEP_UNLOCK, STEP_WAIT, type KPath, type KSteps } from './steps.js';
import type { Task } from './task.js';
import { BUS_ADRERR, ENOMEM, EPERM, RLIMIT_STACK, SEGV_ACCERR, SEGV_MAPERR, SEGV_PKUERR, SIGBUS, SIGKILL, SIGSEGV } from './uapi.js';
import { VM_ACCESS_FLAGS, VM_GROWSDOWN, VM_LOCKED, VM_WRITE, type Vma } from './vma.js';
import type { MmStruct } from './mm.js';
import { rlimit_num } from './resource.js';
import { emulate_vsyscall, is_vsyscall_vaddr } from './vsyscall.js';
import { may_expand_vm, mlock_future_ok, vm_stat_account } from './vm_account.js';

/** stack_guard_gap: 256 pages between a growing stack and the mapping below it. */
export const STACK_GUARD_GAP = 256 * 4096;

/** Fault results for a kernel-mode access (the uaccess fixup). */
export const FAULT_FIXED = 0;
export const FAULT_EFAULT = 1;

/**
 * access_error: whether the fault's kind is not allowed by the VMA at all (so no page-table
 * change could fix it), in Linux's order: a hardware protection-key fault; the VMA's key
 * refused by the current thread's PKRU (the software check, for a page not yet present); a
 * shadow-stack access to a VMA that is not shadow stack or not writable; a write to a VMA
 * without VM_WRITE (or to shadow stack by a normal write); a protection fault on a present
 * page for a read; any access to a PROT_NONE VMA.
 */
export function access_error(k: Kernel, pc: PerCpu, errorCode: number, vma: Vma): boolean {
  if (errorCode & PF_PK) return true;
  if (!arch_vma_access_permitted(k, pc, vma, (errorCode & PF_W) !== 0, (errorCode & PF_I) !== 0, false)) return true;
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
 * error code. From user mode a bad access gets SIGSEGV (queued with force_sig_fault; the
 * return to user delivers it): SEGV_PKUERR with the VMA's key when a key refused it
 * (bad_area_access_from_pkeys), else SEGV_ACCERR, or SEGV_MAPERR with no VMA. From the kernel
 * (`fromKernel`: a uaccess, including WRUSS, whose error code has U set) it returns
 * FAULT_EFAULT when the access cannot be fixed, for the caller's exception fixup. A
 * shadow-stack access faults as a write. Out of memory kills the process (XXX: the OOM
 * killer's choice of victim is not modelled). A fault the handler asks to retry (VM_FAULT_RETRY,
 * mmap_lock already dropped: a userfault that waited) is taken again (`tried`), unless a signal
 * ends it.
 */
export function* do_user_addr_fault(k: Kernel, pc: PerCpu, t: Task, addr: number, errorCode: number, fromKernel = false, tried = false): KPath {
  const user = !fromKernel && (errorCode & PF_U) !== 0;
  const mm = t.mm;
  if (!mm) return bad_area(k, pc, t, addr, errorCode, SEGV_MAPERR, user, 0);
  // lock_mm_and_find_vma
  pc.touch = mmapLockId(mm);
  // The attempt and each retry test and take the lock in one step (a test-and-set).
  yield STEP_LOCK;
  while (mm.mmap_lock.writer !== 0) yield STEP_WAIT;
  mm.mmap_lock.readers++;
  const vma = mm.vmas.find_vma(addr);
  let code = 0;
  if (!vma) code = SEGV_MAPERR;
  else if (vma.vm_start > addr) {
    if (vma.vm_flags & VM_GROWSDOWN && expand_downwards(k, t, mm, mm.vmas.prevOf(addr), vma, addr) === 0) {
      // grown
    } else code = SEGV_MAPERR;
  }
  if (code === 0 && access_error(k, pc, errorCode, vma!)) code = bad_area_access_from_pkeys(k, pc, errorCode, vma!) ? SEGV_PKUERR : SEGV_ACCERR;
  let result = 0;
  let vmf: vm_fault | null = null;
  if (code === 0) {
    let flags = FAULT_FLAG_DEFAULT | (tried ? FAULT_FLAG_TRIED : 0);
    if (user) flags |= FAULT_FLAG_USER;
    if (errorCode & (PF_W | PF_SS)) flags |= FAULT_FLAG_WRITE;
    if (errorCode & PF_I) flags |= FAULT_FLAG_INSTRUCTION;
    vmf = new vm_fault(k, pc, t, vma!, mm, addr, flags);
    // A kcall: the fault's steps run without resuming the entry and fault-entry callers each time.
    result = yield* kcall(t, handle_mm_fault(vmf));
  }
  if (result & VM_FAULT_RETRY) {
    // The handler dropped mmap_lock (handle_userfault). fault_signal_pending: a fatal signal, or
    // any signal for a user-mode fault, ends the fault (kernel mode: the exception fixup,
    // kernelmode_fixup_or_oops); a user access is retried after the signal. Otherwise the fault
    // is taken again from the lookup (`goto retry` with FAULT_FLAG_TRIED).
    emitFault(k, pc, t, addr, errorCode, user, 'userfault');
    if (__fatal_signal_pending(t) || (user && signal_pending(t))) return user ? FAULT_FIXED : FAULT_EFAULT;
    return yield* do_user_addr_fault(k, pc, t, addr, errorCode, fromKernel, true);
  }
  pc.touch = mmapLockId(mm);
  yield STEP_UNLOCK;
  mm.mmap_lock.readers--;
  if (code !== 0) return bad_area(k, pc, t, addr, errorCode, code, user, code === SEGV_PKUERR ? vma!.vm_pkey : 0);
  if (result & VM_FAULT_OOM) {
    emitFault(k, pc, t, addr, errorCode, user, 'oom');
    force_sig(k, t, SIGKILL);
    return FAULT_EFAULT;
  }
  if (result & VM_FAULT_SIGBUS) {
    // do_sigbus: SIGBUS with BUS_ADRERR for user mode (a file's page past its end), the fixup for the kernel.
    emitFault(k, pc, t, addr, errorCode, user, user ? 'signal' : 'efault');
    if (!user) return FAULT_EFAULT;
    set_signal_archinfo(k, t, addr, errorCode);
    force_sig_fault(k, t, SIGBUS, BUS_ADRERR, BigInt(addr), 0);
    return FAULT_FIXED;
  }
  if (vmf!.outcome === '') throw new ModelError('handle_mm_fault', `cpu ${pc.id}, tid ${t.tid}: the fault at 0x${addr.toString(16)} returned 0x${result.toString(16)} without an outcome`);
  emitFault(k, pc, t, addr, errorCode, user, vmf!.outcome);
  return FAULT_FIXED;
}

/**
 * expand_stack (mm/mmap.c), for a caller holding mmap_lock for reading (__access_remote_vm):
 * drops it and takes it for writing, then finds `addr`'s VMA, or grows the VM_GROWSDOWN VMA
 * above it down to it (vma_expand_down; x86 has no VM_GROWSUP for vma_expand_up); on success
 * the lock is downgraded to reading and the VMA returned, else it is released and null
 * returned. `t` is the caller, whose limits acct_stack_growth applies (as Linux's `current`).
 * XXX: mmap_write_lock_killable is not interrupted by a fatal signal.
 */
export function* expand_stack(k: Kernel, pc: PerCpu, t: Task, mm: MmStruct, addr: number): KSteps<Vma | null> {
  pc.touch = mmapLockId(mm);
  yield STEP_UNLOCK;
  mm.mmap_lock.readers--;
  pc.touch = mmapLockId(mm);
  yield STEP_LOCK;
  while (mm.mmap_lock.writer !== 0 || mm.mmap_lock.readers !== 0) yield STEP_WAIT;
  mm.mmap_lock.writer = t.tid;
  let vma = mm.vmas.find_vma(addr);
  if (vma && vma.vm_start > addr && !(vma.vm_flags & VM_GROWSDOWN && expand_downwards(k, t, mm, mm.vmas.prevOf(addr), vma, addr) === 0)) vma = null;
  // mmap_write_downgrade on success (one step: no writer can come between), mmap_write_unlock on failure.
  pc.touch = mmapLockId(mm);
  yield STEP_UNLOCK;
  mm.mmap_lock.writer = 0;
  if (vma) mm.mmap_lock.readers++;
  return vma;
}

/**
 * expand_downwards: grows a VM_GROWSDOWN VMA down to `addr`'s page; -EPERM below
 * mmap_min_addr, -ENOMEM within stack_guard_gap of an accessible, non-stack VMA below, or when
 * acct_stack_growth refuses. The growth is counted (locked_vm for a VM_LOCKED stack,
 * vm_stat_account).
 */
function expand_downwards(k: Kernel, t: Task, mm: MmStruct, prev: Vma | null, vma: Vma, addr: number): number {
  const start = Math.floor(addr / 4096) * 4096;
  if (addr < k.options.mmap_min_addr) return -EPERM;
  if (prev && !(prev.vm_flags & VM_GROWSDOWN) && prev.vm_flags & VM_ACCESS_FLAGS && start - prev.vm_end < STACK_GUARD_GAP) return -ENOMEM;
  const size = vma.vm_end - start;
  const grow = (vma.vm_start - start) / 4096;
  if (grow > vma.vm_pgoff) return -ENOMEM;
  const error = acct_stack_growth(k, t, mm, vma, size, grow);
  if (error) return error;
  // security_vm_enough_memory_mm charged the growth (vm_acct_memory).
  mm.committed += grow;
  if (vma.vm_flags & VM_LOCKED) mm.locked_vm += grow;
  vm_stat_account(mm, vma.vm_flags, grow);
  vma.vm_pgoff -= grow;
  vma.vm_start = start;
  return 0;
}

/**
 * acct_stack_growth, in Linux's order: the address space limits (may_expand_vm), RLIMIT_STACK
 * for the stack's new size, RLIMIT_MEMLOCK for a locked stack (mlock_future_ok), and the
 * commit limit (vm_enough_memory's heuristic: the machine's RAM); -ENOMEM for each.
 */
function acct_stack_growth(k: Kernel, t: Task, mm: MmStruct, vma: Vma, size: number, grow: number): number {
  if (!may_expand_vm(t, mm, vma.vm_flags, grow)) return -ENOMEM;
  if (size > rlimit_num(t, RLIMIT_STACK)) return -ENOMEM;
  if (!mlock_future_ok(t, mm, vma.vm_flags, grow * 4096)) return -ENOMEM;
  if (grow > k.totalram_pages) return -ENOMEM;
  return 0;
}

/** bad_area_access_from_pkeys: with OSPKE, the hardware said PK, or the VMA's key is refused by the current PKRU. */
function bad_area_access_from_pkeys(k: Kernel, pc: PerCpu, errorCode: number, vma: Vma): boolean {
  if (!k.ospke) return false;
  if (errorCode & PF_PK) return true;
  return !arch_vma_access_permitted(k, pc, vma, (errorCode & PF_W) !== 0, (errorCode & PF_I) !== 0, false);
}

/**
 * sanitize_error_code and set_signal_archinfo: the thread's trap number becomes #PF, its error
 * code the fault's with U set (and P for an address at or above TASK_SIZE_MAX, so that the
 * signal does not tell a mapped kernel page from an unmapped one), its cr2 the address.
 */
function set_signal_archinfo(k: Kernel, t: Task, addr: number | bigint, errorCode: number): void {
  // TASK_SIZE_MAX: one page short of the canonical user half (__VIRTUAL_MASK_SHIFT 47, or 56 with five levels).
  const task_size_max = (1n << (k.levels === 5 ? 56n : 47n)) - 4096n;
  if (BigInt.asUintN(64, BigInt(addr)) >= task_size_max) errorCode |= PF_P;
  t.trap_nr = X86_TRAP_PF;
  t.error_code = errorCode | PF_U;
  t.cr2 = BigInt(addr);
}

/** __bad_area_nosemaphore: SIGSEGV (with si_pkey for SEGV_PKUERR) for user mode, the fixup for kernel mode. */
function bad_area(k: Kernel, pc: PerCpu, t: Task, addr: number | bigint, errorCode: number, code: number, user: boolean, pkey: number): number {
  emitFault(k, pc, t, addr, errorCode, user, user ? 'signal' : 'efault');
  if (!user) return FAULT_EFAULT;
  set_signal_archinfo(k, t, addr, errorCode);
  force_sig_fault(k, t, SIGSEGV, code, BigInt(addr), pkey);
  return FAULT_FIXED;
}

/**
 * exc_page_fault: the #PF entry. `hi`:`lo` is CR2. An address in the vsyscall page is user
 * space (fault_in_kernel_space); any other address outside user space goes to do_kern_addr_fault, which for a user-mode access is SEGV_MAPERR (the kernel half is never
 * the user's) and for a kernel access to a bad address the fixup.
 */
export function* exc_page_fault(k: Kernel, pc: PerCpu, t: Task, hi: number, lo: number, errorCode: number): KPath {
  const addr = hi * 2 ** 32 + lo;
  const a = (BigInt(hi) << 32n) | BigInt(lo);
  // fault_in_kernel_space: the vsyscall page, above TASK_SIZE_MAX, counts as user space.
  if (is_vsyscall_vaddr(a)) return yield* do_user_vsyscall_fault(k, pc, t, a, errorCode);
  if (hi >= 0x8000 || addr >= t.mm!.task_size) return bad_area(k, pc, t, a, errorCode, SEGV_MAPERR, (errorCode & PF_U) !== 0, 0);
  return yield* do_user_addr_fault(k, pc, t, addr, errorCode);
}

/**
 * do_user_addr_fault for an address in the vsyscall page: emulate_vsyscall first (vsyscall.ts),
 * before any VMA is looked for; when it declines, lock_mm_and_find_vma finds no VMA (they all
 * lie below TASK_SIZE) and the fault is SIGSEGV with SEGV_MAPERR at the address, its error code
 * given P (sanitize_error_code), whether or not the page is mapped.
 */
function* do_user_vsyscall_fault(k: Kernel, pc: PerCpu, t: Task, addr: bigint, errorCode: number): KPath {
  const user = (errorCode & PF_U) !== 0;
  const mm = t.mm;
  if (!mm) return bad_area(k, pc, t, addr, errorCode, SEGV_MAPERR, user, 0);
  if (yield* emulate_vsyscall(k, pc, t, errorCode, addr)) {
    emitFault(k, pc, t, addr, errorCode, user, 'vsyscall');
    return FAULT_FIXED;
  }
  pc.touch = mmapLockId(mm);
  yield STEP_LOCK;
  while (mm.mmap_lock.writer !== 0) yield STEP_WAIT;
  mm.mmap_lock.readers++;
  // find_vma(mm, addr) is null: nothing maps at or above TASK_SIZE.
  pc.touch = mmapLockId(mm);
  yield STEP_UNLOCK;
  mm.mmap_lock.readers--;
  return bad_area(k, pc, t, addr, errorCode, SEGV_MAPERR, user, 0);
}

function emitFault(k: Kernel, pc: PerCpu, t: Task, addr: number | bigint, errorCode: number, user: boolean, outcome: PageFaultOutcome): void {
  if (k.events.on) k.emit({ type: 'page_fault', cpu: pc.id, tid: t.tid, addr: BigInt(addr), errorCode, user, outcome });
}
