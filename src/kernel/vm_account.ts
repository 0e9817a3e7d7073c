/**
 * An address space's size, by kind, against the caller's resource limits (mm/mmap.c
 * may_expand_vm, vm_stat_account, mlock_future_ok; mm/vma.h is_exec_mapping,
 * is_stack_mapping, is_data_mapping): mm->total_vm against RLIMIT_AS, mm->data_vm (private
 * writable, not stack) against RLIMIT_DATA, mm->locked_vm against RLIMIT_MEMLOCK.
 *
 * The model keeps VM_SHADOW_STACK outside vm_flags (Vma.shadowStack), so the functions that
 * classify a mapping take it beside the flags.
 */
import { capable } from './capability.js';
import type { MmStruct } from './mm.js';
import { rlimit_pages, rlimit_max } from './resource.js';
import type { Task } from './task.js';
import { CAP_IPC_LOCK, RLIMIT_AS, RLIMIT_DATA, RLIMIT_MEMLOCK } from './uapi.js';
import { VM_EXEC, VM_LOCKED, VM_SHARED, VM_STACK, VM_WRITE } from './vma.js';

/** is_exec_mapping: executable, not writable, not stack. */
export function is_exec_mapping(flags: number): boolean {
  return (flags & (VM_EXEC | VM_WRITE | VM_STACK)) === VM_EXEC;
}

/** is_stack_mapping: a grows-down stack or a shadow stack. */
export function is_stack_mapping(flags: number, shadowStack: boolean): boolean {
  return (flags & VM_STACK) === VM_STACK || shadowStack;
}

/** is_data_mapping: private, writable, not stack (a shadow stack, VM_WRITE without VM_STACK, is one). */
export function is_data_mapping(flags: number): boolean {
  return (flags & (VM_WRITE | VM_SHARED | VM_STACK)) === VM_WRITE;
}

/** vm_stat_account: `npages` more (or fewer) pages of a mapping with `flags` in the mm's counters. */
export function vm_stat_account(mm: MmStruct, flags: number, npages: number, shadowStack = false): void {
  mm.total_vm += npages;
  if (is_exec_mapping(flags)) mm.exec_vm += npages;
  else if (is_stack_mapping(flags, shadowStack)) mm.stack_vm += npages;
  else if (is_data_mapping(flags)) mm.data_vm += npages;
}

/**
 * may_expand_vm: whether `npages` more pages of a mapping with `flags` keep `mm` within the
 * caller's RLIMIT_AS and, for a data mapping, RLIMIT_DATA. A soft RLIMIT_DATA of 0 lets the
 * data grow up to the hard limit (the Valgrind workaround); ignore_rlimit_data is off (its
 * default), so the data limit refuses.
 */
export function may_expand_vm(t: Task, mm: MmStruct, flags: number, npages: number): boolean {
  if (mm.total_vm + npages > rlimit_pages(t, RLIMIT_AS)) return false;
  if (is_data_mapping(flags) && mm.data_vm + npages > rlimit_pages(t, RLIMIT_DATA)) {
    if (rlimit_pages(t, RLIMIT_DATA) === 0 && mm.data_vm + npages <= Number(rlimit_max(t, RLIMIT_DATA) >> 12n)) return true;
    return false;
  }
  return true;
}

/**
 * mlock_future_ok: whether `bytes` more of a mapping with `flags` may be locked: always unless
 * it is VM_LOCKED and the caller lacks CAP_IPC_LOCK; otherwise locked_vm plus them within
 * RLIMIT_MEMLOCK's pages.
 */
export function mlock_future_ok(t: Task, mm: MmStruct, flags: number, bytes: number): boolean {
  if (!(flags & VM_LOCKED) || capable(t, CAP_IPC_LOCK)) return true;
  return Math.floor(bytes / 4096) + mm.locked_vm <= rlimit_pages(t, RLIMIT_MEMLOCK);
}
