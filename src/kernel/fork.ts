/**
 * fork, vfork and clone (kernel/fork.c kernel_clone, copy_process, dup_mmap; mm/memory.c
 * copy_page_range, copy_present_ptes): Linux 6.12's flag checks, the new task's identity and
 * shared or copied state, and the copy of the address space in which every writable private
 * page becomes copy-on-write on both sides.
 *
 * XXX: a signal pending in the parent does not restart the fork (-ERESTARTNOINTR); there are
 * no PID namespaces or credentials: every task is root, so RLIMIT_NPROC never refuses a fork.
 */
import { copy_thread_segments } from './desc.js';
import { set_new_tls } from './process_64.js';
import { copy_files, exit_files, initial_files } from './file.js';
import type { PhysMem } from '../hw/physmem.js';
import { ModelError } from '../errors.js';
import { PTE_RW } from '../hw/pte.js';
import type { Kernel, PerCpu } from './kernel.js';
import { MmStruct } from './mm.js';
import { threadsMax } from './options.js';
import { spin_lock_ptl, spin_unlock_ptl } from './memory.js';
import { mmap_write_lock, mmap_write_unlock } from './mmap.js';
import { GUP_PIN_COUNTING_BIAS, PG_anon, PG_anon_exclusive, PG_NEW_ANON, type PageRefs } from './page.js';
import { track } from '../track.js';
import { __pte, pmd_addr_end, pte_clear_uffd_wp, pte_swp_clear_exclusive, pte_swp_clear_uffd_wp, pte_swp_exclusive, swp_offset, swp_type, pte_mkclean, pte_mkold, pte_none, pte_pfn, pte_present, pte_set, pte_write, pte_wrprotect, _PAGE_SPECIAL, PageTables, type pte_t, mk_pte, pte_mkdirty, pte_mkwrite, pte_mkuffd_wp, pte_uffd_wp, vm_get_page_prot } from './pgtable.js';
import { ldt_dup_context } from './ldt.js';
import { mmput } from './mmput.js';
import { arch_dup_pkeys, init_new_context_pkeys } from './pkeys.js';
import { pgd_ctor, pti_stack_alloc } from './pti.js';
import { pti_stack_free } from './exit.js';
import { cond_resched, wake_up_new_task } from './sched.js';
import { copy_rlimits, init_rlimits } from './resource.js';
import { raw_cpu } from './this_cpu.js';
import { shstk_alloc_thread_stack, shstk_free } from './shstk.js';
import { sas_ss_reset } from './sigaltstack.js';
import { sigmask } from './signal.js';
import { swap_duplicate } from './swap.js';
import { kcall, STEP_ATOMIC, STEP_COPY, STEP_READ, STEP_SLEEP, STEP_WRITE, type KPath, type KSteps } from './steps.js';
import { SigHand, Task, ThreadGroup } from './task.js';
import { dup_userfaultfd, dup_userfaultfd_complete, dup_userfaultfd_fail, userfaultfd_wp, type UserfaultfdForkCtx } from './userfaultfd.js';
import { flush_tlb_mm_range, TLB_FLUSH_ALL } from './tlbflush.js';
import {
  CLONE_CHILD_CLEARTID, CLONE_CHILD_SETTID, CLONE_DETACHED, CLONE_FILES, CLONE_FS, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUSER, CLONE_PARENT, CLONE_PARENT_SETTID, CLONE_PIDFD, CLONE_SIGHAND, CLONE_THREAD,
  CLONE_SETTLS, CLONE_VFORK, CLONE_VM, CSIGNAL, EAGAIN, EINVAL, ENOMEM, SIGCHLD, SIGKILL,
} from './uapi.js';
import { copy_to_user, putU32 } from './uaccess.js';
import { vm_stat_account } from './vm_account.js';
import { VM_DONTCOPY, VM_LOCKED_MASK, VM_MAYWRITE, VM_SHARED, VM_WIPEONFORK, VM_WRITE, type Vma } from './vma.js';

/** sys_fork: kernel_clone with exit_signal SIGCHLD. */
export function sys_fork(k: Kernel, pc: PerCpu, t: Task): KPath {
  return kernel_clone(k, pc, t, 0, SIGCHLD, 0n);
}

/** sys_vfork: CLONE_VFORK | CLONE_VM, exit_signal SIGCHLD. */
export function sys_vfork(k: Kernel, pc: PerCpu, t: Task): KPath {
  return kernel_clone(k, pc, t, CLONE_VFORK | CLONE_VM, SIGCHLD, 0n);
}

/** sys_clone(flags, newsp, parent_tidptr, child_tidptr, tls) (x86-64's argument order): the low byte of flags is the exit signal. */
export function sys_clone(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  const raw = Number(a[0] & 0xffffffffn);
  return kernel_clone(k, pc, t, (raw & ~CSIGNAL) >>> 0, raw & CSIGNAL, a[1], a[2], a[3], a[4]);
}

/**
 * kernel_clone + copy_process: checks the flags in Linux's order, creates the task, shares
 * or copies the address space (dup_mmap, with its steps), the signal handlers and the thread
 * group, wakes the child, and for CLONE_VFORK sleeps until the child execs or exits.
 * copy_process records set_child_tid (CLONE_CHILD_SETTID, written by the child in
 * schedule_tail) and clear_child_tid (CLONE_CHILD_CLEARTID); with CLONE_PARENT_SETTID the
 * child's tid is put at `parent_tid` before the child is woken, a fault ignored.
 * Returns the child's tid.
 */
export function* kernel_clone(k: Kernel, pc: PerCpu, t: Task, flags: number, exit_signal: number, newsp: bigint, parent_tid = 0n, child_tid = 0n, tls = 0n): KPath {
  if (flags & CLONE_PIDFD && flags & CLONE_PARENT_SETTID) return -EINVAL;
  if ((flags & (CLONE_NEWNS | CLONE_FS)) === (CLONE_NEWNS | CLONE_FS)) return -EINVAL;
  if ((flags & (CLONE_NEWUSER | CLONE_FS)) === (CLONE_NEWUSER | CLONE_FS)) return -EINVAL;
  if (flags & CLONE_THREAD && !(flags & CLONE_SIGHAND)) return -EINVAL;
  if (flags & CLONE_SIGHAND && !(flags & CLONE_VM)) return -EINVAL;
  if (flags & CLONE_THREAD && flags & (CLONE_NEWUSER | CLONE_NEWPID)) return -EINVAL;
  if (flags & CLONE_PIDFD && flags & CLONE_DETACHED) return -EINVAL;
  // copy_process: `if (is_rlimit_overlimit(task_ucounts(p), UCOUNT_RLIMIT_NPROC, rlimit(RLIMIT_NPROC)))
  // { if (p->real_cred->user != INIT_USER && !capable(CAP_SYS_RESOURCE) && !capable(CAP_SYS_ADMIN))
  // goto bad_fork_cleanup_count; }`: every task of the model is root, whose user_struct is
  // INIT_USER, so RLIMIT_NPROC never refuses its forks, whatever its capabilities.
  // copy_process: `retval = -EAGAIN; if (data_race(nr_threads >= max_threads)) goto bad_fork_cleanup_count;` (kernel/fork.c).
  if (k.tasks.size >= threadsMax(k.options, k.machine.mem.sizeBytes)) return -EAGAIN;

  // copy_mm
  const stats: CopyStats = { ptes: 0, wrprotected: 0 };
  let mm: MmStruct;
  if (flags & CLONE_VM) {
    mm = t.mm!;
    mm.mm_users++;
  } else {
    // dup_mm: a new mm with its own PGD, then a copy of the parent's VMAs and page tables.
    const made = mm_alloc(k, t.mm!.mmap_base, t.mm!.nopti);
    if (!made) return -ENOMEM;
    mm = made;
    const r = yield* dup_mmap(k, pc, t, t.mm!, mm, stats);
    if (r < 0) {
      // dup_mm's failure path: mmput tears down what was copied.
      yield* mmput(k, pc, mm);
      return r;
    }
  }
  // alloc_thread_stack_node: with entry_stack per_task the PTI stack, mapped in the child's mm.
  const ptiStack = pti_stack_alloc(k, mm);
  if (ptiStack === null) {
    yield* mmput(k, pc, mm);
    return -ENOMEM;
  }
  const tid = k.alloc_pid();
  const group = flags & CLONE_THREAD ? t.group : new ThreadGroup(tid);
  // copy_signal: a new thread group starts with the parent's resource limits.
  if (!(flags & CLONE_THREAD)) copy_rlimits(t.group, group);
  // copy_files: CLONE_FILES shares the table, anything else copies it.
  const files = copy_files(t, (flags & CLONE_FILES) !== 0);
  const sighand = flags & CLONE_SIGHAND ? t.sighand : t.sighand.clone();
  if (flags & CLONE_SIGHAND) sighand.count++;
  const parent = flags & (CLONE_PARENT | CLONE_THREAD) ? t.parent : t.group.threads[0] ?? t;
  const child = new Task(tid, group, parent, mm, sighand, t.image);
  if (ptiStack !== 'none') child.ptiStack = ptiStack;
  child.files = files;
  child.exit_signal = flags & CLONE_THREAD ? -1 : flags & CLONE_PARENT ? t.group.threads[0].exit_signal : exit_signal;
  child.blocked = t.blocked;
  // dup_task_struct: the affinity is inherited.
  child.cpus_mask = t.cpus_mask;
  child.pkru = pc.cpu.pkru;
  // copy_thread: the parent's pt_regs (cs, ss), its FS and GS selectors (current_save_fsgs) and savesegment of ES and DS.
  copy_thread_segments(k, pc, t, child);
  // copy_creds and the task's NEXT per-process PTI flag.
  child.capEffective = t.capEffective;
  child.capPermitted = t.capPermitted;
  child.noptiNext = t.noptiNext;
  // dup_task_struct copies the alternate signal stack; copy_process clears it for a child
  // sharing the mm that is not a vfork child (its stack would be the parent's).
  child.sas_ss_sp = t.sas_ss_sp;
  child.sas_ss_size = t.sas_ss_size;
  child.sas_ss_flags = t.sas_ss_flags;
  if ((flags & (CLONE_VM | CLONE_VFORK)) === CLONE_VM) sas_ss_reset(child);
  // copy_thread: the shadow stack (a new one for a CLONE_VM thread; its failure fails the clone).
  let sr = yield* shstk_alloc_thread_stack(k, pc, t, child, flags);
  // copy_thread, last: CLONE_SETTLS is ARCH_SET_FS on the child (set_new_tls): -EPERM at or
  // above TASK_SIZE_MAX fails the clone, and exit_thread frees the new thread's shadow stack.
  if (sr >= 0 && flags & CLONE_SETTLS) {
    sr = set_new_tls(k, child, tls);
    if (sr < 0 && flags & CLONE_VM) yield* shstk_free(k, pc, child);
  }
  if (sr < 0) {
    if (flags & CLONE_SIGHAND) sighand.count--;
    exit_files(child);
    // bad_fork_cleanup_mm: mmput (and the stack goes with the task).
    yield* pti_stack_free(k, pc, child);
    yield* mmput(k, pc, mm);
    return sr;
  }
  // copy_process: p->set_child_tid and p->clear_child_tid from the flags.
  if (flags & CLONE_CHILD_SETTID) child.set_child_tid = child_tid;
  if (flags & CLONE_CHILD_CLEARTID) child.clear_child_tid = child_tid;
  child.ret_from_fork = child.set_child_tid !== 0n;
  child.vars = new Map(t.vars);
  for (const [frame, names] of t.interruptedNames) child.interruptedNames.set(frame, names.slice());
  child.nr_ops = t.nr_ops;
  // dup_task_struct copies the thread_info flags, TIF_NOCPUID among them.
  child.tif_nocpuid = t.tif_nocpuid;
  child.sp = newsp !== 0n ? Number(newsp) : t.sp;
  const branch = t.image!.byName.get(`${t.opFn}.${t.opIndex}.child`);
  child.pc = branch ? branch.base : t.pc;
  if (t.intoVar) child.vars.set(t.intoVar, 0n);
  group.threads.push(child);
  group.live++;
  if (!(flags & CLONE_THREAD) && parent) parent.group.children.push(child);
  k.tasks.set(tid, child);
  if (k.events.on) k.emit({ type: 'fork', cpu: pc.id, parent: t.tid, child: tid, flags, ptes: stats.ptes, wrprotected: stats.wrprotected });
  if (flags & CLONE_VFORK) {
    child.vforkParent = t;
    t.vforkWaiting = true;
  }
  // kernel_clone: `if (clone_flags & CLONE_PARENT_SETTID) put_user(nr, args->parent_tid);`, its result ignored.
  if (flags & CLONE_PARENT_SETTID) {
    const nr = new Uint8Array(4);
    putU32(nr, 0, tid);
    yield* copy_to_user(k, pc, t, parent_tid, nr);
  }
  const op = t.image!.byName.get(t.opFn)?.ops[t.opIndex];
  wake_up_new_task(k, child, op && op.op === 'syscall' ? op.cpu : undefined);
  if (flags & CLONE_VFORK) {
    // wait_for_vfork_done: a killable sleep until the child releases the mm.
    while (t.vforkWaiting && !(t.pending.signal & sigmask(SIGKILL)) && !t.group.groupExit) {
      t.state = 'sleeping';
      t.sleepKillableOnly = true;
      yield STEP_SLEEP;
    }
    t.sleepKillableOnly = false;
    if (t.vforkWaiting) {
      t.vforkWaiting = false;
      child.vforkParent = null;
    }
  }
  return tid;
}

/**
 * mm_alloc + pgd_alloc: an empty mm whose PGD shares the kernel half (entries 256..511) with
 * init_mm (pgd_ctor). With PTI the PGD is an order-1 pair (kernel copy, user copy). `nopti`:
 * the mm's per-process PTI is off (no NX trick on its user PGD entries).
 */
export function mm_alloc(k: Kernel, mmapBase: number, nopti = false): MmStruct | null {
  const pgd = k.pti ? k.pages.alloc_pages_order1(0, 'pgd') : k.pages.alloc_page(0, true, 'pgd');
  if (pgd < 0) return null;
  const userPgd = k.pti ? pgd + 1 : -1;
  pgd_ctor(k, pgd, userPgd);
  const pt = new PageTables(k.machine.mem, k.pages, k.levels, pgd, userPgd, k.pti && k.nx && !nopti);
  const mm = new MmStruct(k.nextCtxId(), pt, k.percpu.length, k.init_mm.task_size, mmapBase);
  mm.nopti = nopti;
  init_new_context_pkeys(k, mm);
  k.mms.add(mm);
  return mm;
}

/** What a fork's page-table copy counts, in kernel_clone's frame (for the `fork` event). */
export interface CopyStats {
  /** Entries copied into the child's tables. */
  ptes: number;
  /** Parent entries write-protected (ptep_set_wrprotect, one per writable entry of a COW mapping). */
  wrprotected: number;
}

/**
 * dup_mmap: under the parent's mmap_lock for writing, copies each VMA (not VM_DONTCOPY;
 * VM_WIPEONFORK ones empty), giving each anonymous one a child anon_vma, and copies the page
 * tables of each (copy_page_range, then copy_pte_range for each PTE table). Then arch_dup_mmap (protection keys, the LDT), unless the
 * copy failed. Either way the parent's TLBs are flushed (flush_tlb_mm: its PTEs were
 * write-protected, and its other CPUs must stop writing through stale entries). Each copied
 * VMA's userfaultfd registration goes through dup_userfaultfd; once the lock is dropped, the
 * fork events are raised and waited for (dup_userfaultfd_complete), or given up if the copy failed.
 */
function* dup_mmap(k: Kernel, pc: PerCpu, t: Task, oldmm: MmStruct, mm: MmStruct, stats: CopyStats): KPath {
  yield* mmap_write_lock(k, pc, oldmm, t);
  let retval = 0;
  // LIST_HEAD(uf): the userfaultfd contexts made for the child (UFFD_FEATURE_EVENT_FORK).
  const uf: UserfaultfdForkCtx[] = [];
  // The address space's size and kinds are the parent's, less what is not copied; locked_vm
  // and def_flags start at 0 (mm_init: def_flags keeps only VM_NOHUGEPAGE).
  // dup_mm copies the mm_struct: the break and the data's bounds too.
  mm.start_brk = oldmm.start_brk;
  mm.brk = oldmm.brk;
  mm.start_data = oldmm.start_data;
  mm.end_data = oldmm.end_data;
  mm.exe_path = oldmm.exe_path;
  mm.total_vm = oldmm.total_vm;
  mm.data_vm = oldmm.data_vm;
  mm.exec_vm = oldmm.exec_vm;
  mm.stack_vm = oldmm.stack_vm;
  for (const mpnt of oldmm.vmas.list) {
    if (mpnt.vm_flags & VM_DONTCOPY) {
      vm_stat_account(mm, mpnt.vm_flags, -(mpnt.vm_end - mpnt.vm_start) / 4096, mpnt.shadowStack);
      continue;
    }
    const tmp = mpnt.dup();
    tmp.vm_flags &= ~VM_LOCKED_MASK;
    dup_userfaultfd(k, tmp, mm, uf);
    if (mpnt.anon_vma && !(mpnt.vm_flags & VM_WIPEONFORK)) tmp.anon_vma = { id: k.nextObjectId(), forked: true };
    mm.vmas.list.push(tmp);
    if (tmp.vm_flags & VM_WIPEONFORK) continue;
    // copy_page_range → copy_pte_range for each PTE table (a kcall: its steps cost one resume).
    for (const addr of copy_page_range(mpnt, oldmm)) {
      retval = yield* kcall(t, copy_pte_range(k, pc, t, mpnt, tmp, mm, oldmm, addr, pmd_addr_end(addr, mpnt.vm_end), stats, userfaultfd_wp(tmp)));
      if (retval) break;
    }
    if (retval) break;
  }
  if (!retval) {
    mm.committed = oldmm.committed;
    // arch_dup_mmap: protection keys, then the LDT (ldt_dup_context), after the VMAs.
    arch_dup_pkeys(oldmm, mm);
    retval = ldt_dup_context(k, oldmm, mm);
  }
  yield* flush_tlb_mm_range(k, pc, oldmm, 0, TLB_FLUSH_ALL, 12, true);
  yield* mmap_write_unlock(pc, oldmm);
  if (!retval) yield* dup_userfaultfd_complete(k, pc, t, uf);
  else dup_userfaultfd_fail(uf);
  return retval;
}

/**
 * copy_page_range's walk for one VMA: nothing unless the VMA has anonymous pages
 * (vma_needs_copy; shmem pages are faulted in again by the child); otherwise the start of each
 * part of the VMA that a PTE table of the parent covers (copy_pmd_range skips empty PMDs), for
 * dup_mmap to hand to copy_pte_range. Reads only the upper levels, which fork's mmap_lock keeps
 * still; no step of its own, so the copy's steps run one generator below dup_mmap.
 */
function copy_page_range(src_vma: Vma, src_mm: MmStruct): number[] {
  const starts: number[] = [];
  if (src_vma.anon_vma) src_mm.pgtables.forEachPteTable(src_vma.vm_start, src_vma.vm_end, (_table, _from, _to, va) => starts.push(va));
  return starts;
}

/**
 * copy_pte_range over [addr, end), within one PTE table: allocates the child's table, takes the
 * parent's page-table lock, and copies each present entry: ptep_get (a step), copy_present_ptes,
 * and in a COW mapping, for a writable entry, ptep_set_wrprotect on the parent (its steps are
 * taken here, one generator deep, its work done by the plain functions below). An empty entry
 * is skipped without a step: fork holds the parent's mmap_lock for writing, so no fault can
 * fill it meanwhile, and the hardware never writes an empty entry. A swap entry goes to
 * copy_nonpresent_pte: an exclusive one is first marked shared in the parent (a write step),
 * and the child gets the same entry with one more reference to its slot. The child's entry
 * loses the uffd-wp bit unless its VMA is registered for WP (`dst_uffd_wp`: only with
 * UFFD_FEATURE_EVENT_FORK does the child's VMA stay registered, dup_userfaultfd). XXX: the child's lock
 * is not taken; only reclaim's rmap walk can reach the new mm yet, and it finds each child
 * entry only once fork has written it.
 *
 * ptep_set_wrprotect (arch/x86/include/asm/pgtable.h), as the fork_wrprotect option chooses;
 * the hardware may set D between any two steps:
 *  - cmpxchg (6.6 and later): READ_ONCE (a step), then try_cmpxchg of pte_wrprotect(old) (a
 *    locked step), retried with the value a failed try_cmpxchg found (`pte_retry`);
 *  - atomic_clear (up to 6.5): clear_bit(_PAGE_BIT_RW), one locked AND; D stays;
 *  - read_modify_write: a plain store of pte_wrprotect of the value ptep_get read; a D set
 *    since is overwritten.
 */
function* copy_pte_range(k: Kernel, here: PerCpu, t: Task, src_vma: Vma, dst_vma: Vma, dst_mm: MmStruct, src_mm: MmStruct, addr: number, end: number, stats: CopyStats, dst_uffd_wp: boolean): KPath {
  const mem = k.machine.mem;
  const dst_table = dst_mm.pgtables.pteTable(addr, true);
  if (dst_table < 0) return -ENOMEM;
  const src_table = src_mm.pgtables.pteTable(addr, false);
  const is_cow = (src_vma.vm_flags & (VM_SHARED | VM_MAYWRITE)) === VM_MAYWRITE;
  const wrprotect = k.options.fork_wrprotect;
  const ptent = __pte();
  const old = __pte();
  const from = Math.floor(addr / 4096) % 512;
  const to = from + (end - addr) / 4096;
  // Both tables as words (entry i: words 2i and 2i + 1); a step's reads of the parent's entry
  // are announced in pc.touch, so they need not go through PhysMem's footprint hook.
  const sw = mem.frameWords(src_table);
  const dw = mem.frameWords(dst_table);
  yield* spin_lock_ptl(here, src_mm, t);
  // Under the lock preemption is off: the task stays on this CPU until the unlock.
  let pc = raw_cpu(here);
  // folio_prealloc's page for a pinned page's copy, held across the dropped lock.
  const prealloc = new Prealloc();
  for (let i = from; i < to; i++) {
    if (pte_none(sw[2 * i], sw[2 * i + 1])) continue;
    const pa = src_table * 4096 + i * 8;
    pc.touch = pa;
    yield STEP_READ;
    // ptep_get
    pte_set(ptent, sw[2 * i] | 0, sw[2 * i + 1] | 0);
    if (!pte_present(ptent.lo)) {
      // copy_nonpresent_pte: a swap entry.
      if (pte_swp_exclusive(ptent.lo)) {
        // Mark the swap entry as shared: set_pte_at of the parent's entry (a step).
        pte_swp_clear_exclusive(ptent);
        pc.touch = pa;
        yield STEP_WRITE;
        mem.write64(src_table, i, ptent.lo, ptent.hi);
      }
      copy_nonpresent_pte(k, pc, t, ptent, dst_mm, addr + (i - from) * 4096);
      if (!dst_uffd_wp) pte_swp_clear_uffd_wp(ptent);
      set_child_pte(mem, dw, dst_table, i, ptent);
      stats.ptes++;
      continue;
    }
    if (folio_needs_cow_for_dma(k, src_mm, ptent)) {
      // folio_try_dup_anon_rmap_pte failed (-EBUSY): an exclusive page that may be pinned is
      // copied for the child now (copy_present_page), so that the pin stays on the page the
      // parent maps; the parent's entry is left as it is.
      if (prealloc.pfn < 0) {
        // -EAGAIN: drop the lock, allocate (folio_prealloc, not zeroed), and start again at this entry.
        yield* spin_unlock_ptl(pc, src_mm);
        const pfn = k.pages.alloc_page(PG_NEW_ANON, false);
        if (pfn < 0) return -ENOMEM;
        prealloc.take(k, pfn);
        yield* spin_lock_ptl(here, src_mm, t);
        pc = raw_cpu(here);
        i--;
        continue;
      }
      yield* copy_present_page(k, pc, t, dst_vma, dst_mm, ptent, prealloc, addr + (i - from) * 4096, dst_uffd_wp);
      set_child_pte(mem, dw, dst_table, i, ptent);
      stats.ptes++;
      continue;
    }
    copy_present_ptes(k, ptent, dst_mm);
    // __copy_present_ptes: in a COW mapping a writable entry is write-protected in both.
    if (is_cow && pte_write(ptent.lo, k.userShstk)) {
      // wrprotect_ptes → ptep_set_wrprotect
      stats.wrprotected++;
      pc.touch = pa;
      if (wrprotect === 'cmpxchg') {
        yield STEP_READ;
        pte_set(old, sw[2 * i] | 0, sw[2 * i + 1] | 0);
        for (;;) {
          pc.touch = pa;
          yield STEP_ATOMIC;
          if (try_cmpxchg_wrprotect(k, src_table, i, old)) break;
          if (k.events.on) k.emit({ type: 'pte_retry', cpu: pc.id, pa });
        }
        // fork_child_pte installed: the child's entry starts from what the parent's now is.
        if (k.options.fork_child_pte === 'installed') pte_set(ptent, old.lo, old.hi);
      } else if (wrprotect === 'atomic_clear') {
        yield STEP_ATOMIC;
        clear_bit_rw(k, src_table, i);
      } else {
        yield STEP_WRITE;
        const want = pte_wrprotect(__pte(ptent.lo, ptent.hi));
        mem.write64(src_table, i, want.lo, want.hi);
      }
      if (!(wrprotect === 'cmpxchg' && k.options.fork_child_pte === 'installed')) fork_pte_wrprotect(k, ptent);
    }
    // A shared mapping's child entry is clean; the child's entry is always old.
    if (src_vma.vm_flags & VM_SHARED) pte_mkclean(ptent);
    pte_mkold(ptent);
    // The child keeps the uffd-wp bit only in a VMA still registered for WP.
    if (!dst_uffd_wp) pte_clear_uffd_wp(ptent);
    // set_ptes: the child's table, which nothing else can see yet.
    set_child_pte(mem, dw, dst_table, i, ptent);
    stats.ptes++;
  }
  yield* spin_unlock_ptl(pc, src_mm);
  // A preallocated page no pinned entry needed any more (the pin went while the lock was dropped).
  if (prealloc.pfn >= 0) prealloc.put(k);
  // The table is done and both locks are dropped: a long fork gives the CPU up here if asked.
  yield* cond_resched(k, here, t);
  return 0;
}

/** Writes entry `i` of the child's table `table` (words `dw`), reporting the write to the explorer's footprint sink. */
function set_child_pte(mem: PhysMem, dw: Uint32Array, table: number, i: number, ptent: pte_t): void {
  if (mem.fp) mem.fp.write(table * 512 + i);
  dw[2 * i] = ptent.lo;
  dw[2 * i + 1] = ptent.hi;
}

/**
 * copy_nonpresent_pte for a swap entry, the work that goes with the child's entry (set by the
 * caller in the same step): swap_duplicate of its slot and the child's MM_SWAPENTS. The model
 * makes no migration or device entries.
 */
function copy_nonpresent_pte(k: Kernel, pc: PerCpu, t: Task, ptent: pte_t, dst_mm: MmStruct, addr: number): void {
  if (swp_type(ptent.lo, ptent.hi) !== 0 || swp_offset(ptent.lo, ptent.hi) >= k.swap.max) {
    throw new ModelError('copy_nonpresent_pte', `cpu ${pc.id}, tid ${t.tid}: PTE at 0x${addr.toString(16)} is neither empty, present nor a swap entry`);
  }
  swap_duplicate(k.swap, swp_offset(ptent.lo, ptent.hi));
  dst_mm.swapents++;
}

/** The page copy_pte_range preallocated for a pinned page's copy: a reference it holds between its steps. */
class Prealloc implements PageRefs {
  readonly refs: number[] = [];

  constructor() {
    return track(this);
  }

  get pfn(): number {
    return this.refs.length > 0 ? this.refs[0] : -1;
  }

  take(k: Kernel, pfn: number): void {
    this.refs.push(pfn);
    k.pages.held.add(this);
  }

  /** The page passes to the child's entry (or is put): no longer held here. */
  give(k: Kernel): number {
    const pfn = this.refs.pop()!;
    k.pages.held.delete(this);
    return pfn;
  }

  put(k: Kernel): void {
    k.pages.put_page(this.give(k));
  }
}

/**
 * folio_needs_cow_for_dma for a present entry's page, as folio_try_dup_anon_rmap_pte asks it:
 * the mm has had a page pinned (MMF_HAS_PINNED), the page is anonymous and exclusive, and its
 * reference count says it may be pinned (folio_maybe_dma_pinned: at least GUP_PIN_COUNTING_BIAS).
 */
function folio_needs_cow_for_dma(k: Kernel, src_mm: MmStruct, ptent: pte_t): boolean {
  if (!src_mm.has_pinned || ptent.lo & _PAGE_SPECIAL) return false;
  const pfn = pte_pfn(ptent.lo, ptent.hi);
  const f = k.pages.flags[pfn];
  return (f & (PG_anon | PG_anon_exclusive)) === (PG_anon | PG_anon_exclusive) && k.pages.refcount[pfn] >= GUP_PIN_COUNTING_BIAS;
}

/**
 * copy_present_page: the preallocated page gets a copy of the parent's page (one copy step)
 * and becomes the child's exclusive anonymous page (folio_add_new_anon_rmap), mapped with the
 * child VMA's protections, dirty, and writable if the VMA is (maybe_mkwrite(pte_mkdirty())),
 * uffd-wp if the parent's entry was and the child's VMA is registered for it; `ptent` becomes
 * that entry.
 */
function* copy_present_page(k: Kernel, pc: PerCpu, t: Task, dst_vma: Vma, dst_mm: MmStruct, ptent: pte_t, prealloc: Prealloc, addr: number, dst_uffd_wp: boolean): KSteps<void> {
  const mem = k.machine.mem;
  const src = pte_pfn(ptent.lo, ptent.hi);
  const pfn = prealloc.pfn;
  pc.touch = pfn * 4096;
  yield STEP_COPY;
  mem.copyFrame(pfn, src);
  if (k.events.on) k.emit({ type: 'page_copy', cpu: pc.id, tid: t.tid, src, dst: pfn });
  prealloc.give(k);
  k.pages.mapcount[pfn] = 1;
  k.pages.index[pfn] = addr / 4096;
  dst_mm.rss++;
  const prot = vm_get_page_prot(__pte(), dst_vma.vm_flags, dst_vma.vm_pkey, k.nx);
  const entry = pte_mkdirty(mk_pte(__pte(), pfn, prot.lo, prot.hi));
  if (dst_vma.vm_flags & VM_WRITE) pte_mkwrite(entry, dst_vma.shadowStack);
  // userfaultfd_pte_wp(dst_vma, *src_pte): the uffd-wp mark goes to the copy too.
  if (dst_uffd_wp && pte_uffd_wp(ptent.lo)) pte_mkuffd_wp(entry);
  pte_set(ptent, entry.lo, entry.hi);
}

/**
 * copy_present_ptes for one entry, the work before __copy_present_ptes: vm_normal_page (none
 * behind a special entry such as the zero page); folio_get; for an anonymous page
 * folio_try_dup_anon_rmap_pte, which clears PageAnonExclusive (its failure for a page that may
 * be pinned is folio_needs_cow_for_dma, tested first), and the child's MM_ANONPAGES.
 */
function copy_present_ptes(k: Kernel, ptent: pte_t, dst_mm: MmStruct): void {
  if (ptent.lo & _PAGE_SPECIAL) return;
  const pages = k.pages;
  const pfn = pte_pfn(ptent.lo, ptent.hi);
  pages.refcount[pfn]++;
  pages.mapcount[pfn]++;
  if (pages.flags[pfn] & PG_anon) pages.flags[pfn] &= ~PG_anon_exclusive;
  dst_mm.rss++;
}

/**
 * ptep_set_wrprotect's try_cmpxchg (cmpxchg variant): replaces entry `i` of `table` with
 * pte_wrprotect(`old`) if it still equals `old`; otherwise `old` becomes the value found (as
 * try_cmpxchg updates its expected value) and false is returned.
 */
function try_cmpxchg_wrprotect(k: Kernel, table: number, i: number, old: pte_t): boolean {
  const mem = k.machine.mem;
  const lo = old.lo;
  const hi = old.hi;
  pte_wrprotect(old);
  if (mem.cmpxchg64(table, i, lo, hi, old.lo, old.hi)) return true;
  pte_set(old, mem.readLo(table, i), mem.readHi(table, i));
  return false;
}

/** ptep_set_wrprotect up to 6.5 (atomic_clear variant): clear_bit(_PAGE_BIT_RW) on entry `i` of `table`, a locked AND that leaves D alone. */
function clear_bit_rw(k: Kernel, table: number, i: number): void {
  const mem = k.machine.mem;
  mem.write64(table, i, mem.readLo(table, i) & ~PTE_RW, mem.readHi(table, i));
}

/**
 * pte_wrprotect of the child's entry, as the kernel the fork_wrprotect option stands for does
 * it: from 6.6 on (cmpxchg, read_modify_write) R/W clears and D moves to SavedDirty; up to 6.5
 * (atomic_clear) only R/W clears.
 */
function fork_pte_wrprotect(k: Kernel, ptent: pte_t): void {
  if (k.options.fork_wrprotect === 'atomic_clear') ptent.lo &= ~PTE_RW;
  else pte_wrprotect(ptent);
}

/** For the thread group a fresh process starts (execve of the first task, System.spawn). */
export function newProcess(k: Kernel, mm: MmStruct): Task | null {
  const ptiStack = pti_stack_alloc(k, mm);
  if (ptiStack === null) return null;
  const tid = k.alloc_pid();
  const group = new ThreadGroup(tid);
  init_rlimits(k, group);
  const task = new Task(tid, group, null, mm, new SigHand(), null);
  if (ptiStack !== 'none') task.ptiStack = ptiStack;
  task.files = initial_files(k);
  group.threads.push(task);
  group.live = 1;
  k.tasks.set(tid, task);
  return task;
}
