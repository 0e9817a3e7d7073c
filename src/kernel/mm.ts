/**
 * struct mm_struct (include/linux/mm_types.h): one address space. Its VMAs, its page tables,
 * the users and references that keep it alive, the locks the model needs, and the x86
 * context (arch/x86/include/asm/mmu.h): ctx_id, tlb_gen and the CPUs that may cache it.
 */
import type { LdtStruct } from './ldt.js';
import type { PageTables } from './pgtable.js';
import { VmaList } from './vma.js';
import { track } from '../track.js';

/** A reader-writer semaphore (mmap_lock), as counts; waiting is done by the caller's steps. */
export class RwSem {
  readers = 0;
  writer = 0; // tid of the writer, 0 if none

  constructor() {
    return track(this);
  }
}

/** A spinlock (page_table_lock): the tid holding it, 0 if free. */
export class SpinLock {
  owner = 0;

  constructor() {
    return track(this);
  }
}

export class MmStruct {
  /** mm->context.ctx_id: never reused, so a CPU's ASID slot can tell whether it still holds this mm. */
  readonly ctx_id: number;
  readonly pgtables: PageTables;
  readonly vmas = new VmaList();
  /** mm_users: threads (and vfork-borrowers) using the address space. */
  mm_users = 1;
  /** mm_count: references to the struct itself (lazy-TLB CPUs hold one). */
  mm_count = 1;
  /** mm->context.tlb_gen: bumped by every flush request. */
  tlb_gen = 1;
  /** mm_cpumask: CPUs that may hold TLB entries for this mm, by CPU number. */
  readonly cpumask: Uint8Array;
  readonly mmap_lock = new RwSem();
  readonly page_table_lock = new SpinLock();
  /** mmap_base: where the top-down search for free space starts. */
  mmap_base: number;
  /** TASK_SIZE for this mm: the end of user space. */
  task_size: number;
  /** Pages of private writable mappings charged against the commit limit (VM_ACCOUNT). */
  committed = 0;
  /** total_vm, data_vm, exec_vm, stack_vm: pages mapped, and of them private writable, executable and stack ones (vm_stat_account). */
  total_vm = 0;
  data_vm = 0;
  exec_vm = 0;
  stack_vm = 0;
  /** locked_vm: pages of VM_LOCKED mappings, checked against RLIMIT_MEMLOCK. */
  locked_vm = 0;
  /** start_brk and brk: the heap's start and the program break; start_data and end_data: the image's data (binfmt_elf). */
  start_brk = 0;
  brk = 0;
  start_data = 0;
  end_data = 0;
  /**
   * exe_file's path (/proc/PID/maps names the program's text and read-only data with it): the
   * name the image was executed or spawned by, made absolute from the root ('' before execve).
   */
  exe_path = '';
  /** def_flags: flags every new mapping gets (VM_LOCKED, VM_LOCKONFAULT after mlockall MCL_FUTURE). */
  def_flags = 0;
  /** Resident anonymous and shmem pages mapped (MM_ANONPAGES + MM_SHMEMPAGES). */
  rss = 0;
  /** MM_SWAPENTS: swap PTEs in the page tables. */
  swapents = 0;
  /** Set once exit_mmap has torn the address space down. */
  dead = false;
  /** mm->context.pkey_allocation_map: bit k set when key k is allocated (init_new_context sets key 0 with OSPKE). */
  pkey_allocation_map = 0;
  /** mm->context.execute_only_pkey: the key mprotect(PROT_EXEC) uses, -1 until one is allocated (0 without OSPKE). */
  execute_only_pkey = 0;
  /** Per-process PTI off for this mm (kernel option `pti_per_process`): user mode runs on the kernel copy. */
  nopti = false;
  /** mm->context.ldt: the installed LDT, or null. */
  ldt: LdtStruct | null = null;
  /** mm->context.ldt_usr_sem: serialises modify_ldt writers (a tid, 0 when free). */
  ldt_usr_sem = 0;
  /** MMF_HAS_PINNED: a page of this mm was once pinned (FOLL_PIN); fork then copies pinned anonymous pages at once. */
  has_pinned = false;

  constructor(ctxId: number, pgtables: PageTables, ncpus: number, taskSize: number, mmapBase: number) {
    this.ctx_id = ctxId;
    this.pgtables = pgtables;
    this.cpumask = new Uint8Array(ncpus);
    this.task_size = taskSize;
    this.mmap_base = mmapBase;
    return track(this);
  }

  /** Frame of the PGD. */
  get pgd(): number {
    return this.pgtables.pgd;
  }
}
