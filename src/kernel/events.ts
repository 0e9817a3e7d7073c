/**
 * The events the kernel model emits, on the same bus as the processor's (DESIGN.md rule 7).
 * Addresses a program can choose (si_addr, syscall arguments) travel as bigint; addresses the
 * kernel chose (user space below 2^57) as numbers. An event with a `tid` field names its task;
 * on a System every other one gets `tid` too, the task current on its CPU as it is emitted
 * (the sender's for `ipi`, the one switched to for `context_switch`; system.ts IsolabEvent).
 */
import type { OpRecord } from './task.js';

/**
 * What the kernel did with a page fault (the `page_fault` event's `outcome`): the handler's
 * results (kernel/memory.ts: mapped, zero-page, reused, copied, spurious, backout, swapin,
 * userfault: queued for a userfaultfd handler, waited, then retried) and the
 * fault's end otherwise (kernel/fault.ts: signal for user mode, efault for a kernel access
 * fixed up, oom; vsyscall: a fetch in the vsyscall page that emulate_vsyscall handled).
 */
/** What reclaim did with a folio (the `reclaim` event). */
export const RECLAIM_OUTCOMES = ['discarded', 'swapped', 'redirtied', 'activated', 'kept'] as const;
export type ReclaimOutcome = (typeof RECLAIM_OUTCOMES)[number];

/**
 * The kernel's debug checks (the `debug` event's `check`): DEBUG_PREEMPT (debug_preempt), the
 * scheduler's atomic check (schedule), the page-count and page-table checks of debug.ts and
 * exit (page_ref_count, leak, page_mapcount, rss, swap_map, exit_mmap, free_pgtables,
 * page_alloc), PTI's user page tables (pti_user_pgd) and the entry stack (entry_stack).
 */
export const DEBUG_CHECKS = ['debug_preempt', 'schedule', 'page_ref_count', 'leak', 'page_mapcount', 'rss', 'swap_map', 'exit_mmap', 'free_pgtables', 'page_alloc', 'pti_user_pgd', 'entry_stack'] as const;
export type DebugCheck = (typeof DEBUG_CHECKS)[number];

export const PAGE_FAULT_OUTCOMES = ['mapped', 'zero-page', 'reused', 'copied', 'spurious', 'backout', 'swapin', 'userfault', 'signal', 'efault', 'oom', 'vsyscall'] as const;
export type PageFaultOutcome = (typeof PAGE_FAULT_OUTCOMES)[number];

export const JOBCTL_WHATS = ['stop', 'resume', 'notify', 'trace'] as const;
export type JobctlWhat = (typeof JOBCTL_WHATS)[number];

export type KernelEvent =
  /** A task entered the kernel through SYSCALL (the matching `syscall` event comes when it returns). */
  | { type: 'syscall_enter'; cpu: number; tid: number; nr: number; name: string; args: readonly bigint[] }
  /** A thread finished its operations (main, a fork child or a thread body) and is about to exit: its state is still intact. */
  | { type: 'user_end'; cpu: number; tid: number; fn: string }
  /** A syscall returned (or, for exit and execve, ended). */
  | { type: 'syscall'; cpu: number; tid: number; nr: number; name: string; args: readonly bigint[]; ret: number }
  /** The kernel handled a page fault. `outcome`: mapped, zero-page, copied (COW), reused (COW without a copy), spurious, backout (the PTE changed under the fault, which changed nothing; the access is retried), swapin (do_swap_page), userfault (handled by a userfaultfd handler, then retried), signal, efault, oom, vsyscall (a call into the vsyscall page, emulated). */
  | { type: 'page_fault'; cpu: number; tid: number; addr: bigint; errorCode: number; user: boolean; outcome: PageFaultOutcome }
  /** A signal was delivered (`action` handler, terminate, core, ignore, or stop: the group stop it starts or joins). */
  | { type: 'signal'; cpu: number; tid: number; signo: number; code: number; addr: bigint; action: string }
  /**
   * Job control (kernel/signal.c): `stop`, a thread entered TASK_STOPPED in do_signal_stop;
   * `resume`, it runs again (SIGCONT or SIGKILL woke it); `notify`, do_notify_parent_cldstop
   * reported the group (`tid`: its leader) to the parent with `code` CLD_STOPPED or CLD_CONTINUED.
   */
  | { type: 'jobctl'; cpu: number; tid: number; what: JobctlWhat; code: number }
  /** switch_mm_irqs_off: loaded `to` (ctx ids; 0 is init_mm) in ASID `asid`, flushing or not. */
  | { type: 'switch_mm'; cpu: number; from: number; to: number; asid: number; flush: boolean; how: 'switch' | 'unlazy' }
  /** A context switch between tasks (0: the idle task). */
  | { type: 'context_switch'; cpu: number; from: number; to: number }
  /** A task was preempted inside the kernel (preempt=full), at a step where preempt_count was 0. */
  | { type: 'preempt'; cpu: number; tid: number }
  /**
   * shrink_folio_list's verdict on one folio: discarded (a clean lazyfree folio freed without a
   * write), swapped (written to its swap slot and freed), redirtied (a lazyfree folio found
   * dirty or referenced, made swap-backed again and kept), activated or kept.
   */
  | { type: 'reclaim'; cpu: number; tid: number; pfn: number; outcome: ReclaimOutcome }
  /** A task moved from one CPU's runqueue to another's (the scheduler's migration). */
  | { type: 'migrate'; cpu: number; tid: number; from: number; to: number }
  /** flush_tlb_mm_range was called. `end` -1 means a full flush. */
  | { type: 'tlb_shootdown'; cpu: number; mm: number; start: number; end: number; freedTables: boolean; gen: number }
  /** A flush IPI was sent. */
  | { type: 'ipi'; from: number; to: number }
  /** flush_tlb_func ran: `pages` INVLPGs, or -1 for a full flush. */
  | { type: 'flush_tlb_func'; cpu: number; mm: number; pages: number }
  /** A page was copied (COW) or zero-filled. */
  | { type: 'page_copy'; cpu: number; tid: number; src: number; dst: number }
  /** fork's try_cmpxchg of a PTE failed (the hardware changed it since it was read) and is retried. */
  | { type: 'pte_retry'; cpu: number; pa: number }
  /** The kernel cleaned a PTE on purpose (MADV_FREE's pte_mkclean): the page's data may be discarded. */
  | { type: 'pte_mkclean'; cpu: number; pa: number; pfn: number }
  /** A control-protection exception (#CP) from user mode: `code` 1 near RET ... (arch/x86/kernel/cet.c). */
  | { type: 'control_protection'; cpu: number; tid: number; code: number; ip: number }
  /** fork/clone created a task: `ptes` entries copied to the child, `wrprotected` of the parent's write-protected (ptep_set_wrprotect). */
  | { type: 'fork'; cpu: number; parent: number; child: number; flags: number; ptes: number; wrprotected: number }
  /** execve replaced a task's image. */
  | { type: 'exec'; cpu: number; tid: number; image: string }
  /** A task exited; `status` is its wait status. */
  | { type: 'exit'; cpu: number; tid: number; status: number }
  /** A user operation finished (when the kernel keeps a log). */
  | { type: 'op'; cpu: number; record: OpRecord }
  /**
   * One step of the entry or exit code (arch/x86/entry/entry_64.S): `what` is swapgs, sp2 (the
   * user RSP spilled in tss.sp2), hw_frame (the CPU pushed the IRET frame), regs_push, regs_pop,
   * regs_copy (pt_regs or the IRET frame copied between stacks), stack_switch, sysret or iret.
   * `stack` is where RSP points afterwards (entry, task, pti, user); `bytes` what was copied.
   */
  | { type: 'entry'; cpu: number; tid: number; what: string; stack: string; bytes: number }
  /** modify_ldt or fork mapped an LDT at a PTI remap slot. */
  | { type: 'ldt_map'; cpu: number; mm: number; slot: number; va: bigint; pages: number }
  /** LDTR was loaded (`entries` 0: cleared). */
  | { type: 'ldt_load'; cpu: number; mm: number; base: bigint; entries: number }
  /** Per-process PTI changed for an mm (arch_prctl ARCH_SET_NOPTI NOW, or execve applying NEXT). */
  | { type: 'pti_mode'; cpu: number; tid: number; mm: number; nopti: boolean; how: 'now' | 'exec' }
  /** A debug check (CONFIG_DEBUG_VM / DEBUG_PREEMPT style) found a problem. */
  | { type: 'debug'; cpu: number; check: DebugCheck; message: string };
