/**
 * Memory protection keys (arch/x86/mm/pkeys.c, arch/x86/include/asm/pkeys.h, mmu_context.h,
 * mm/mprotect.c): the per-mm allocation map, pkey_alloc and pkey_free, the key mprotect and
 * mmap choose for a VMA (including the execute-only key), and the software check of a VMA's
 * key against the current thread's PKRU that the fault path and GUP make.
 *
 * PKRU itself is per thread and lives in the CPU while the thread runs (hw/cpu.ts); the kernel
 * reads and writes it the way Linux does, with RDPKRU and WRPKRU on the current CPU.
 */
import type { Kernel, PerCpu } from './kernel.js';
import type { MmStruct } from './mm.js';
import { mmap_write_lock, mmap_write_unlock } from './mmap.js';
import type { KPath } from './steps.js';
import type { Task } from './task.js';
import { EINVAL, ENOSPC, PKEY_DISABLE_ACCESS, PKEY_DISABLE_WRITE, PROT_EXEC } from './uapi.js';
import { VM_ACCESS_FLAGS, VM_EXEC, type Vma } from './vma.js';

/** ARCH_DEFAULT_PKEY: the key every mapping has unless told otherwise. */
export const ARCH_DEFAULT_PKEY = 0;
/** PKRU_AD_BIT and PKRU_WD_BIT (arch/x86/include/asm/pkru.h): two bits per key, AD at 2k. */
export const PKRU_AD_BIT = 0x1;
export const PKRU_WD_BIT = 0x2;
export const PKRU_BITS_PER_PKEY = 2;
/** PKEY_ACCESS_MASK (uapi mman-common.h): the rights pkey_alloc's init_val may hold. */
export const PKEY_ACCESS_MASK = PKEY_DISABLE_ACCESS | PKEY_DISABLE_WRITE;

/** arch_max_pkey: 16 keys with OSPKE, else 1. */
export function arch_max_pkey(k: Kernel): number {
  return k.ospke ? 16 : 1;
}

/** init_new_context's pkey part: key 0 allocated and no execute-only key yet (with OSPKE), else both 0. */
export function init_new_context_pkeys(k: Kernel, mm: MmStruct): void {
  mm.pkey_allocation_map = k.ospke ? 1 << ARCH_DEFAULT_PKEY : 0;
  mm.execute_only_pkey = k.ospke ? -1 : 0;
}

/** arch_dup_pkeys (fork's arch_dup_mmap): the child's mm gets the parent's map and execute-only key. */
export function arch_dup_pkeys(oldmm: MmStruct, mm: MmStruct): void {
  mm.pkey_allocation_map = oldmm.pkey_allocation_map;
  mm.execute_only_pkey = oldmm.execute_only_pkey;
}

/** mm_pkey_is_allocated: a key in range, not the execute-only key, with its bit set. */
export function mm_pkey_is_allocated(k: Kernel, mm: MmStruct, pkey: number): boolean {
  if (pkey < 0 || pkey >= arch_max_pkey(k)) return false;
  if (pkey === mm.execute_only_pkey) return false;
  return (mm.pkey_allocation_map & (1 << pkey)) !== 0;
}

/**
 * mm_pkey_alloc: the lowest clear bit of the map (ffz), set; -1 when all arch_max_pkey() keys
 * are taken. No OSPKE check here, as in x86's: without OSPKE the map starts at 0 and the only
 * key is 0, so the first call hands out key 0 (which arch_set_user_pkey_access then refuses).
 */
export function mm_pkey_alloc(k: Kernel, mm: MmStruct): number {
  const all = (1 << arch_max_pkey(k)) - 1;
  if (mm.pkey_allocation_map === all) return -1;
  let ret = 0;
  while (mm.pkey_allocation_map & (1 << ret)) ret++;
  mm.pkey_allocation_map |= 1 << ret;
  return ret;
}

/** mm_pkey_free: -EINVAL unless allocated; clears the bit. VMAs, PTEs and PKRU keep the key. */
export function mm_pkey_free(k: Kernel, mm: MmStruct, pkey: number): number {
  if (!mm_pkey_is_allocated(k, mm, pkey)) return -EINVAL;
  mm.pkey_allocation_map &= ~(1 << pkey);
  return 0;
}

/**
 * arch_set_user_pkey_access for the current thread: replaces key `pkey`'s two PKRU bits with
 * AD and WD from `init_val`, in the CPU's register (write_pkru), leaving the other keys.
 * -EINVAL without OSPKE or for a key out of range.
 */
export function arch_set_user_pkey_access(k: Kernel, pc: PerCpu, pkey: number, init_val: number): number {
  if (!k.ospke) return -EINVAL;
  if (pkey >= arch_max_pkey(k)) return -EINVAL;
  let bits = 0;
  if (init_val & PKEY_DISABLE_ACCESS) bits |= PKRU_AD_BIT;
  if (init_val & PKEY_DISABLE_WRITE) bits |= PKRU_WD_BIT;
  const shift = pkey * PKRU_BITS_PER_PKEY;
  const pkru = ((pc.cpu.pkru & ~(0x3 << shift)) | (bits << shift)) >>> 0;
  pc.cpu.wrpkru(pkru);
  return 0;
}

/** __pkru_allows_pkey: whether `pkru` lets a read (or, with `write`, a write) through key `pkey`. */
export function pkru_allows_pkey(pkru: number, pkey: number, write: boolean): boolean {
  const bits = (pkru >>> (pkey * PKRU_BITS_PER_PKEY)) & 0x3;
  if (bits & PKRU_AD_BIT) return false;
  return !(write && bits & PKRU_WD_BIT);
}

/**
 * arch_vma_access_permitted: the software key check against the current thread's live PKRU.
 * Instruction fetches and foreign accesses (another mm: ptrace, process_vm_readv) are never
 * checked; without OSPKE every access passes.
 */
export function arch_vma_access_permitted(k: Kernel, pc: PerCpu, vma: Vma, write: boolean, execute: boolean, foreign: boolean): boolean {
  if (!k.ospke) return true;
  if (execute || foreign) return true;
  return pkru_allows_pkey(pc.cpu.pkru, vma.vm_pkey, write);
}

/**
 * __execute_only_pkey: the mm's execute-only key, allocated on first use (the lowest free
 * key; -1 when none is free). Sets AD for it in the calling thread's PKRU unless that
 * already denies reads. Other threads are denied only by their own (init) PKRU.
 */
export function execute_only_pkey(k: Kernel, pc: PerCpu, mm: MmStruct): number {
  if (!k.ospke) return -1;
  let pkey = mm.execute_only_pkey;
  let need_to_set_mm_pkey = false;
  if (pkey === -1) {
    pkey = mm_pkey_alloc(k, mm);
    if (pkey < 0) return -1;
    need_to_set_mm_pkey = true;
  }
  // Already denied reads: nothing to do.
  if (!need_to_set_mm_pkey && !pkru_allows_pkey(pc.cpu.pkru, pkey, false)) return pkey;
  const ret = arch_set_user_pkey_access(k, pc, pkey, PKEY_DISABLE_ACCESS);
  if (ret) {
    mm_pkey_free(k, mm, pkey);
    return -1;
  }
  if (need_to_set_mm_pkey) mm.execute_only_pkey = pkey;
  return pkey;
}

/** vma_is_pkey_exec_only: the VMA is exactly VM_EXEC and carries the mm's execute-only key. */
function vma_is_pkey_exec_only(mm: MmStruct, vma: Vma): boolean {
  if ((vma.vm_flags & VM_ACCESS_FLAGS) !== VM_EXEC) return false;
  return vma.vm_pkey === mm.execute_only_pkey;
}

/**
 * arch_override_mprotect_pkey: the key a VMA gets from mprotect (pkey -1) or pkey_mprotect.
 * pkey_mprotect's key always wins; mprotect(PROT_EXEC) moves the VMA to the execute-only key
 * when one can be had; leaving PROT_EXEC-only moves an execute-only VMA back to key 0;
 * otherwise the VMA keeps its key.
 */
export function arch_override_mprotect_pkey(k: Kernel, pc: PerCpu, mm: MmStruct, vma: Vma, prot: number, pkey: number): number {
  if (!k.ospke) return 0;
  if (pkey !== -1) return pkey;
  if (prot === PROT_EXEC) {
    pkey = execute_only_pkey(k, pc, mm);
    if (pkey > 0) return pkey;
  } else if (vma_is_pkey_exec_only(mm, vma)) {
    return ARCH_DEFAULT_PKEY;
  }
  return vma.vm_pkey;
}

/**
 * pkey_alloc(flags, init_val): flags must be 0 and init_val within PKEY_ACCESS_MASK; then,
 * under mmap_lock, a key from the map (-ENOSPC when none, or without OSPKE) whose access the
 * calling thread's PKRU gets from init_val (-EINVAL, key freed again, if that fails).
 * Returns the key. Other threads' PKRU is not touched.
 */
export function sys_pkey_alloc(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): number | KPath {
  // SYSCALL_DEFINE2(pkey_alloc, unsigned long, flags, unsigned long, init_val): all 64 bits count.
  const flags = a[0];
  const init_val = a[1];
  if (flags !== 0n) return -EINVAL;
  if (init_val & ~BigInt(PKEY_ACCESS_MASK)) return -EINVAL;
  const mm = t.mm!;
  return (function* (): KPath {
    yield* mmap_write_lock(k, pc, mm, t);
    let pkey = mm_pkey_alloc(k, mm);
    let ret = -ENOSPC;
    if (pkey !== -1) {
      ret = arch_set_user_pkey_access(k, pc, pkey, Number(init_val));
      if (ret) mm_pkey_free(k, mm, pkey);
      else ret = pkey;
    }
    pkey = ret;
    yield* mmap_write_unlock(pc, mm);
    return pkey;
  })();
}

/** pkey_free(pkey): under mmap_lock, -EINVAL unless the key is allocated; does not look at the VMAs using it. */
export function sys_pkey_free(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  const pkey = Number(BigInt.asIntN(32, a[0]));
  const mm = t.mm!;
  return (function* (): KPath {
    yield* mmap_write_lock(k, pc, mm, t);
    const ret = mm_pkey_free(k, mm, pkey);
    yield* mmap_write_unlock(pc, mm);
    return ret;
  })();
}
