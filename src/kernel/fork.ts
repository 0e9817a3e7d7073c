/**
 * fork, vfork and clone (kernel/fork.c kernel_clone, copy_process, dup_mmap; mm/memory.c
 * copy_page_range, copy_present_ptes): Linux 6.12's flag checks, the new task's identity and
 * shared or copied state, and the copy of the address space in which every writable private
 * page becomes copy-on-write on both sides.
 *
 * XXX: a signal pending in the parent does not restart the fork (-ERESTARTNOINTR); there are
 * no PID namespaces, credentials or rlimits on the number of processes.
 */
import { PTE_A, PTE_RW } from '../hw/pte.js';
import type { Kernel, PerCpu } from './kernel.js';
import { MmStruct } from './mm.js';
import { mmap_write_lock, mmap_write_unlock } from './mmap.js';
import { PG_anon, PG_anon_exclusive } from './page.js';
import { pte_mkclean, pte_pfn, pte_present, pte_write, pte_wrprotect, pteHi, _PAGE_SPECIAL, PageTables } from './pgtable.js';
import { ldt_dup_context } from './ldt.js';
import { mmput } from './mmput.js';
import { arch_dup_pkeys, init_new_context_pkeys } from './pkeys.js';
import { pgd_ctor, pti_stack_alloc } from './pti.js';
import { pti_stack_free } from './exit.js';
import { wake_up_new_task } from './sched.js';
import { shstk_alloc_thread_stack } from './shstk.js';
import { sigmask } from './signal.js';
import { STEP_ATOMIC, STEP_READ, STEP_SLEEP, STEP_WRITE, type KPath } from './steps.js';
import { SigHand, Task, ThreadGroup } from './task.js';
import { flush_tlb_mm_range, TLB_FLUSH_ALL } from './tlbflush.js';
import {
  CLONE_DETACHED, CLONE_FS, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUSER, CLONE_PARENT, CLONE_PARENT_SETTID, CLONE_PIDFD, CLONE_SIGHAND, CLONE_THREAD,
  CLONE_VFORK, CLONE_VM, CSIGNAL, EINVAL, ENOMEM, SIGCHLD, SIGKILL,
} from './uapi.js';
import { VM_DONTCOPY, VM_LOCKED, VM_MAYWRITE, VM_SHARED, VM_WIPEONFORK } from './vma.js';

/** sys_fork: kernel_clone with exit_signal SIGCHLD. */
export function sys_fork(k: Kernel, pc: PerCpu, t: Task): KPath {
  return kernel_clone(k, pc, t, 0, SIGCHLD, 0n);
}

/** sys_vfork: CLONE_VFORK | CLONE_VM, exit_signal SIGCHLD. */
export function sys_vfork(k: Kernel, pc: PerCpu, t: Task): KPath {
  return kernel_clone(k, pc, t, CLONE_VFORK | CLONE_VM, SIGCHLD, 0n);
}

/** sys_clone(flags, newsp, parent_tidptr, child_tidptr, tls): the low byte of flags is the exit signal. */
export function sys_clone(k: Kernel, pc: PerCpu, t: Task, a: bigint[]): KPath {
  const raw = Number(a[0] & 0xffffffffn);
  return kernel_clone(k, pc, t, (raw & ~CSIGNAL) >>> 0, raw & CSIGNAL, a[1]);
}

/**
 * kernel_clone + copy_process: checks the flags in Linux's order, creates the task, shares
 * or copies the address space (dup_mmap, with its steps), the signal handlers and the thread
 * group, wakes the child, and for CLONE_VFORK sleeps until the child execs or exits.
 * Returns the child's tid.
 */
export function* kernel_clone(k: Kernel, pc: PerCpu, t: Task, flags: number, exit_signal: number, newsp: bigint): KPath {
  if (flags & CLONE_PIDFD && flags & CLONE_PARENT_SETTID) return -EINVAL;
  if ((flags & (CLONE_NEWNS | CLONE_FS)) === (CLONE_NEWNS | CLONE_FS)) return -EINVAL;
  if ((flags & (CLONE_NEWUSER | CLONE_FS)) === (CLONE_NEWUSER | CLONE_FS)) return -EINVAL;
  if (flags & CLONE_THREAD && !(flags & CLONE_SIGHAND)) return -EINVAL;
  if (flags & CLONE_SIGHAND && !(flags & CLONE_VM)) return -EINVAL;
  if (flags & CLONE_THREAD && flags & (CLONE_NEWUSER | CLONE_NEWPID)) return -EINVAL;
  if (flags & CLONE_PIDFD && flags & CLONE_DETACHED) return -EINVAL;

  // copy_mm
  let mm: MmStruct;
  if (flags & CLONE_VM) {
    mm = t.mm!;
    mm.mm_users++;
  } else {
    // dup_mm: a new mm with its own PGD, then a copy of the parent's VMAs and page tables.
    const made = mm_alloc(k, t.mm!.mmap_base, t.mm!.nopti);
    if (!made) return -ENOMEM;
    mm = made;
    const r = yield* dup_mmap(k, pc, t, t.mm!, mm);
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
  const sighand = flags & CLONE_SIGHAND ? t.sighand : t.sighand.clone();
  if (flags & CLONE_SIGHAND) sighand.count++;
  const parent = flags & (CLONE_PARENT | CLONE_THREAD) ? t.parent : t.group.threads[0] ?? t;
  const child = new Task(tid, group, parent, mm, sighand, t.image);
  if (ptiStack !== 'none') child.ptiStack = ptiStack;
  child.exit_signal = flags & CLONE_THREAD ? -1 : flags & CLONE_PARENT ? t.group.threads[0].exit_signal : exit_signal;
  child.blocked = t.blocked;
  child.pkru = pc.cpu.pkru;
  // copy_creds and the task's NEXT per-process PTI flag.
  child.capEffective = t.capEffective;
  child.capPermitted = t.capPermitted;
  child.noptiNext = t.noptiNext;
  // copy_thread: the shadow stack (a new one for a CLONE_VM thread; its failure fails the clone).
  const sr = yield* shstk_alloc_thread_stack(k, pc, t, child, flags);
  if (sr < 0) {
    if (flags & CLONE_SIGHAND) sighand.count--;
    // bad_fork_cleanup_mm: mmput (and the stack goes with the task).
    yield* pti_stack_free(k, pc, child);
    yield* mmput(k, pc, mm);
    return sr;
  }
  child.vars = new Map(t.vars);
  child.sp = newsp !== 0n ? Number(newsp) : t.sp;
  const branch = t.image!.byName.get(`${t.opFn}.${t.opIndex}.child`);
  child.pc = branch ? branch.base : t.pc;
  if (t.intoVar) child.vars.set(t.intoVar, 0n);
  group.threads.push(child);
  group.live++;
  if (!(flags & CLONE_THREAD) && parent) parent.group.children.push(child);
  k.tasks.set(tid, child);
  if (k.events.on) k.emit({ type: 'fork', cpu: pc.id, parent: t.tid, child: tid, flags, ptes: lastPtesCopied });
  if (flags & CLONE_VFORK) {
    child.vforkParent = t;
    t.vforkWaiting = true;
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

let lastPtesCopied = 0;

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
  return mm;
}

/**
 * copy_page_range (inside dup_mmap below), for each VMA: each present PTE is copied to the child (__copy_present_ptes).
 * In a COW mapping a writable PTE is write-protected in the parent with a locked
 * compare-and-exchange (ptep_set_wrprotect: the hardware may be setting D on another CPU),
 * and the child gets it write-protected too; a shared mapping's child PTE is made clean; the
 * child's PTE is always old. Both now map the page: its reference and map counts go up and
 * an anonymous page stops being exclusive. One step per parent PTE.
 */
/**
 * dup_mmap: under both mmap_locks, copies each VMA (not VM_DONTCOPY; VM_WIPEONFORK ones
 * empty), giving each anonymous one a child anon_vma, and copies the page tables of those
 * that have anonymous pages (vma_needs_copy). Then flush_tlb_mm(oldmm): the parent's PTEs
 * were write-protected, and its other CPUs must stop writing through stale entries.
 */
function* dup_mmap(k: Kernel, pc: PerCpu, t: Task, oldmm: MmStruct, mm: MmStruct): KPath {
  yield* mmap_write_lock(pc, oldmm, t);
  lastPtesCopied = 0;
  for (const mpnt of oldmm.vmas.list) {
    if (mpnt.vm_flags & VM_DONTCOPY) continue;
    const tmp = mpnt.dup();
    tmp.vm_flags &= ~VM_LOCKED;
    if (mpnt.anon_vma && !(mpnt.vm_flags & VM_WIPEONFORK)) tmp.anon_vma = { id: k.nextObjectId(), forked: true };
    mm.vmas.list.push(tmp);
    if (mpnt.vm_flags & VM_WIPEONFORK || !mpnt.anon_vma) continue;
    // copy_page_range, inline so each PTE's step is one generator deep.
    const vma = mpnt;
    const src = oldmm;
    const dst = mm;
    const mem = k.machine.mem;
    const pages = k.pages;
    const cow = (vma.vm_flags & (VM_SHARED | VM_MAYWRITE)) === VM_MAYWRITE;
    const shared = (vma.vm_flags & VM_SHARED) !== 0;
    const shstk = k.userShstk;
    const wrprotect = k.options.fork_wrprotect;
    const span = 2 ** 21;
    for (let va = vma.vm_start; va < vma.vm_end; ) {
      const next = Math.min(vma.vm_end, (Math.floor(va / span) + 1) * span);
      const stable = src.pgtables.pteTable(va, false);
      if (stable >= 0) {
        // The PTE tables as words: entry i is words 2i (bits 31:0) and 2i+1 (bits 63:32).
        const sw = mem.frameWords(stable);
        let dw: Uint32Array | null = null;
        const from = Math.floor(va / 4096) % 512;
        const to = from + (next - va) / 4096;
        for (let i = from; i < to; i++) {
          let lo = sw[2 * i] | 0;
          let hi = sw[2 * i + 1] | 0;
          if (lo === 0 && hi === 0) continue;
          if (dw === null) {
            const dtable = dst.pgtables.pteTable(va, true);
            if (dtable < 0) {
              yield* flush_tlb_mm_range(k, pc, oldmm, 0, TLB_FLUSH_ALL, 12, true);
              yield* mmap_write_unlock(pc, oldmm);
              return -ENOMEM;
            }
            dw = mem.frameWords(dtable);
          }
          if (!pte_present(lo)) {
            dw[2 * i] = lo;
            dw[2 * i + 1] = hi;
            continue;
          }
          // ptep_get: the value copy_present_pte works from (its own step, so the hardware
          // may set A or D in the PTE between it and the write-protect below).
          const ptePa = stable * 4096 + i * 8;
          pc.touch = ptePa;
          yield STEP_READ;
          lo = sw[2 * i] | 0;
          hi = sw[2 * i + 1] | 0;
          if (cow && pte_write(lo, shstk)) {
            // ptep_set_wrprotect on the parent, as the kernel option chooses; the child's PTE is
            // the value read above, write-protected. pc.touch is still the PTE's address.
            if (wrprotect === 'cmpxchg') {
              // 6.6+: try_cmpxchg of pte_wrprotect(old) (D moves to SavedDirty), retried with the
              // value the failed cmpxchg found.
              let olo = lo;
              let ohi = hi;
              for (;;) {
                const nlo = pte_wrprotect(olo, ohi);
                yield STEP_ATOMIC;
                if (mem.cmpxchg64(stable, i, olo, ohi, nlo, pteHi)) break;
                olo = sw[2 * i] | 0;
                ohi = sw[2 * i + 1] | 0;
                if (k.events.on) k.emit({ type: 'pte_retry', cpu: pc.id, pa: ptePa });
              }
              lo = pte_wrprotect(lo, hi);
              hi = pteHi;
            } else if (wrprotect === 'atomic_clear') {
              // Up to 6.5: clear_bit(_PAGE_BIT_RW), one locked AND; D stays where it is, in
              // both the parent's PTE and the child's (there was no SavedDirty).
              yield STEP_ATOMIC;
              sw[2 * i] &= ~PTE_RW;
              lo &= ~PTE_RW;
            } else {
              // read_modify_write: a plain store of the value computed from the read above; a
              // D the hardware set in between is overwritten.
              const nlo = pte_wrprotect(lo, hi);
              const nhi = pteHi;
              yield STEP_WRITE;
              mem.write64(stable, i, nlo, nhi);
              lo = nlo;
              hi = nhi;
            }
          } else if (shared) {
            lo = pte_mkclean(lo, hi);
            hi = pteHi;
          }
          lo &= ~PTE_A;
          dw[2 * i] = lo;
          dw[2 * i + 1] = hi;
          lastPtesCopied++;
          if (lo & _PAGE_SPECIAL) continue;
          const pfn = pte_pfn(lo, hi);
          pages.refcount[pfn]++;
          pages.mapcount[pfn]++;
          if (pages.flags[pfn] & PG_anon) pages.flags[pfn] &= ~PG_anon_exclusive;
          dst.rss++;
        }
      }
      va = next;
    }
  }
  mm.committed = oldmm.committed;
  // arch_dup_mmap: protection keys, then the LDT (ldt_dup_context), after the VMAs.
  arch_dup_pkeys(oldmm, mm);
  const retval = ldt_dup_context(k, oldmm, mm);
  yield* flush_tlb_mm_range(k, pc, oldmm, 0, TLB_FLUSH_ALL, 12, true);
  yield* mmap_write_unlock(pc, oldmm);
  return retval;
}

/** For the thread group a fresh process starts (execve of the first task, System.spawn). */
export function newProcess(k: Kernel, mm: MmStruct): Task | null {
  const ptiStack = pti_stack_alloc(k, mm);
  if (ptiStack === null) return null;
  const tid = k.alloc_pid();
  const group = new ThreadGroup(tid);
  const task = new Task(tid, group, null, mm, new SigHand(), null);
  if (ptiStack !== 'none') task.ptiStack = ptiStack;
  group.threads.push(task);
  group.live = 1;
  k.tasks.set(tid, task);
  return task;
}
