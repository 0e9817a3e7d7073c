/**
 * Tasks and thread groups (include/linux/sched.h task_struct, sched/signal.h signal_struct and
 * sighand_struct): the identity, address space, user registers and signal state of a thread,
 * and what its thread group shares.
 */
import type { FilesStruct } from './file.js';
import type { KPath } from './steps.js';
import type { ProgramImage } from '../user/program.js';
import type { MmStruct } from './mm.js';
import type { ThisCpu } from './this_cpu.js';
import { track } from '../track.js';

/** A queued signal's siginfo (the fields the model reports). */
export interface SigInfo {
  signo: number;
  code: number;
  /** si_addr for faults (bigint: it may be any 64-bit value). */
  addr: bigint;
  /** si_pid of the sender for kill/tgkill. */
  pid: number;
  /** si_pkey for SEGV_PKUERR. */
  pkey: number;
  /** si_status for SIGCHLD: the exit code, or the signal that killed, stopped (CLD_STOPPED) or continued (CLD_CONTINUED) the child. */
  status?: number;
}

/** A signal's disposition (struct k_sigaction). */
export interface KSigaction {
  handler: bigint;
  flags: number;
  restorer: bigint;
  mask: bigint;
}

/** struct sighand_struct: the handlers, shared by CLONE_SIGHAND. */
export class SigHand {
  readonly action: KSigaction[] = [];
  count = 1;
  constructor() {
    for (let i = 0; i <= 64; i++) this.action.push({ handler: 0n, flags: 0, restorer: 0n, mask: 0n });
    return track(this);
  }
  /** A copy for fork without CLONE_SIGHAND. */
  clone(): SigHand {
    const s = new SigHand();
    for (let i = 0; i <= 64; i++) s.action[i] = { ...this.action[i] };
    return s;
  }
}

/** struct sigpending: a set of pending signals and their siginfo. */
export class SigPending {
  /** Bit (sig-1) per pending signal. */
  signal = 0n;
  readonly list: SigInfo[] = [];

  constructor() {
    return track(this);
  }
}

/** The thread group (struct signal_struct and what the model keeps per process). */
export class ThreadGroup {
  readonly tgid: number;
  readonly threads: Task[] = [];
  readonly shared_pending = new SigPending();
  /** Children (thread-group leaders) this process forked. */
  readonly children: Task[] = [];
  /** SIGNAL_GROUP_EXIT: set by exit_group or a fatal signal, with the exit status. */
  groupExit = false;
  group_exit_code = 0;
  /** signal->group_exec_task: the thread in de_thread, killing the others so it can exec; null otherwise. */
  group_exec_task: Task | null = null;
  /**
   * signal->flags' job-control bits (SIGNAL_STOP_STOPPED, SIGNAL_STOP_CONTINUED, SIGNAL_CLD_STOPPED,
   * SIGNAL_CLD_CONTINUED: signal.ts); SIGNAL_GROUP_EXIT is `groupExit`. While the group is
   * stopped, group_exit_code holds the stop signal, as in Linux.
   */
  flags = 0;
  /** signal->group_stop_count: threads still to stop for the group stop in progress. */
  group_stop_count = 0;
  /** Live threads (nr_threads). */
  live = 0;
  /** signal->rlim: each resource's soft (rlim_cur) and hard (rlim_max) limit, by RLIMIT_* number (resource.ts). */
  readonly rlim_cur = new BigUint64Array(16);
  readonly rlim_max = new BigUint64Array(16);
  constructor(tgid: number) {
    this.tgid = tgid;
    return track(this);
  }
}

/** CAP_FULL_SET: every capability up to CAP_LAST_CAP (40, CAP_CHECKPOINT_RESTORE). */
export const CAP_FULL_SET = (1n << 41n) - 1n;

/**
 * 'stopped' is TASK_STOPPED (a group stop): only SIGCONT (wake_up_state __TASK_STOPPED) or SIGKILL (TASK_WAKEKILL) wakes it.
 * 'traced' is TASK_TRACED (a ptrace stop, ptrace.ts): only the tracer's resume (__TASK_TRACED) or SIGKILL wakes it.
 */
export type TaskState = 'running' | 'runnable' | 'sleeping' | 'stopped' | 'traced' | 'zombie' | 'dead';

/** A user-visible result of one operation, when the kernel keeps a log. */
export interface OpRecord {
  /** The program image the operation belongs to. */
  image: string;
  tid: number;
  pid: number;
  fn: string;
  index: number;
  op: string;
  /** For a load, store or fetch: the address accessed. */
  addr?: bigint;
  /** The value loaded or returned (bigint), absent for stores that completed. */
  value?: bigint;
  /** When the operation was interrupted by a synchronous signal. */
  signal?: SigInfo;
}

export class Task {
  /** pid in the kernel's sense: the thread id. */
  tid: number;
  group: ThreadGroup;
  /** The parent process's leader (real_parent), or null for the first process. */
  parent: Task | null;
  /** Signal sent to the parent at exit: SIGCHLD for fork, clone's CSIGNAL bits, -1 for threads. */
  exit_signal: number;
  mm: MmStruct | null;
  /** The mm whose page tables are loaded while this task runs (differs from mm only for kernel threads). */
  active_mm: MmStruct | null;
  sighand: SigHand;
  state: TaskState = 'runnable';
  /** CPU whose runqueue holds the task. */
  cpu = 0;
  /** cpus_mask: the CPUs the task may run on (sched_setaffinity), bit n for CPU n. */
  cpus_mask = 0xffffffffffffffffn;
  /** TIF_NEED_RESCHED: the scheduler wants the CPU back at the next preemption point. */
  need_resched = false;
  /** nvcsw and nivcsw: switches away from the task while it slept (voluntary) and while it could run (involuntary). */
  nvcsw = 0;
  nivcsw = 0;
  /** A CPU the task is to be moved to when it next gives its CPU up (the explorer's migration), or -1. */
  migrate_to = -1;
  /** The view of the task's CPU its kernel paths use (this_cpu.ts), made on first use. */
  thisCpu: ThisCpu | null = null;
  /** The simulator's, not Linux's: entry and exit path objects kept for reuse in a plain run (entry_64.ts entryPath). */
  readonly entryPaths: object[] = [];
  /** exit_code: the wait status a zombie reports. */
  exit_code = 0;
  /** Set when the task has been reaped or was a thread that self-reaped. */
  reaped = false;
  /** PF_KTHREAD: a kernel thread (no mm, no user mode; it sleeps when its path ends). */
  kthread = false;

  /** The descriptor table (files_struct), shared by CLONE_FILES; null once the task has exited. */
  files: FilesStruct | null = null;

  // ---- User context ----------------------------------------------------------------------
  image: ProgramImage | null;
  /**
   * Instruction pointer (address in the image's text; hw/addr.ts ip_of gives an address in the
   * top half, such as the vsyscall page's, as its negative two's-complement value) and stack
   * pointer.
   */
  pc = 0;
  sp = 0;
  /** The thread's variables (its registers). */
  vars: Map<string, bigint>;
  /** PKRU while switched out (thread.pkru). */
  pkru = 0;
  /**
   * The user segment selectors: cs and ss as pt_regs holds them (set by the entry, restored
   * by IRET; SYSCALL's entry writes __USER_CS and __USER_DS), and ds, es, fsindex, gsindex as
   * thread_struct keeps them while the task is switched out (live in the CPU while it runs).
   */
  cs = 0x33; // __USER_CS (desc.ts)
  ss = 0x2b; // __USER_DS
  ds = 0;
  es = 0;
  fsindex = 0;
  gsindex = 0;
  /** thread.fsbase and thread.gsbase (the user GS base) while switched out. */
  fsbase = 0n;
  gsbase = 0n;
  /** thread.tls_array: the three TLS descriptors (GDT entries 12..14) as words lo, hi (tls.ts). */
  tls_array: number[] = [0, 0, 0, 0, 0, 0];
  /** The CET user state: IA32_U_CET (SH_STK_EN, WR_SHSTK_EN) and the shadow-stack pointer (IA32_PL3_SSP). */
  ucet = 0;
  ssp = 0;
  /** thread.features and thread.features_locked (ARCH_SHSTK_SHSTK, ARCH_SHSTK_WRSS). */
  shstkFeatures = 0;
  shstkLocked = 0n;
  /** thread.shstk: the shadow stack this thread owns and frees (0 when it has none or borrows one, as a vfork child). */
  shstkBase = 0;
  shstkSize = 0;

  /**
   * thread.trap_nr, thread.error_code and thread.cr2: what the last exception that sent this
   * thread a signal left (set_signal_archinfo, do_trap, exc_general_protection,
   * do_user_cp_fault); the signal frame's trapno, err and cr2 come from here, stale for a
   * signal no exception sent.
   */
  trap_nr = 0;
  error_code = 0;
  cr2 = 0n;

  // ---- Signals -----------------------------------------------------------------------------
  blocked = 0n;
  readonly pending = new SigPending();
  /** A syscall returned -ERESTARTSYS: restart it unless a handler without SA_RESTART runs first. */
  restartPending = false;
  /** The task sleeps killably (vfork): only a fatal signal wakes it. */
  sleepKillableOnly = false;
  /**
   * sas_ss_sp, sas_ss_size and sas_ss_flags: the thread's alternate signal stack as sigaltstack
   * set it (sigaltstack.ts); 0, 0, 0 in a thread that never had one, SS_DISABLE in the flags
   * after sas_ss_reset.
   */
  sas_ss_sp = 0n;
  sas_ss_size = 0n;
  sas_ss_flags = 0;
  /**
   * The simulator's, not Linux's: the handler names (`$signo`, `$siginfo`... signal.ts
   * SIGNAL_HANDLER_NAMES) of the context a signal frame interrupted, by the frame's address, kept
   * while that context is a handler. rt_sigreturn and longjmp from the frame give them back,
   * as a C handler's own arguments survive a nested handler's run.
   */
  readonly interruptedNames = new Map<number, (bigint | undefined)[]>();
  /** task->jobctl: the stop signal (JOBCTL_STOP_SIGMASK) and the JOBCTL_* bits of a group stop (signal.ts). */
  jobctl = 0;
  /** PF_EXITING: the task is in do_exit (a group stop no longer counts on it). */
  exiting = false;

  // ---- ptrace (ptrace.ts) -------------------------------------------------------------------
  /** task->ptrace: PT_PTRACED, PT_SEIZED and the options (PT_EVENT_FLAG); 0 when not traced. */
  ptrace = 0;
  /** task->parent while traced: the tracer (null when not traced; real_parent is `parent`'s). */
  ptracer: Task | null = null;
  /** task->ptraced: the tasks this one traces. */
  readonly ptraced: Task[] = [];
  /** last_siginfo and ptrace_message while in a ptrace stop (PTRACE_GETSIGINFO, PTRACE_GETEVENTMSG). */
  last_siginfo: SigInfo | null = null;
  ptrace_message = 0n;
  /** thread.ptrace_bps' addresses (u_debugreg[0..3]) and thread.virtual_dr6 as a tracer set them. */
  readonly ptrace_dr = new BigUint64Array(8);

  // ---- Kernel side ---------------------------------------------------------------------------
  /** The kernel path in progress (a syscall, a fault, signal delivery), or null in user mode. */
  kpath: KPath | null = null;
  /** The sub-paths kcall started and kernel_step is stepping, innermost last, above `kstackRoot`. */
  readonly kstack: KPath[] = [];
  /** The kernel path `kstack` belongs to. */
  kstackRoot: KPath | null = null;
  /** The result of the last sub-path that ended (read by its `kcall` in the same step). */
  kret = 0;
  /** What the kernel path is: decides what happens when it ends. */
  kpathKind: 'syscall' | 'fault' | 'signal' | 'exit' | 'return' | 'kthread' = 'syscall';
  /** The kind of step (steps.ts) `nextStepPath` yielded last: what its next step is. Valid while it is `kpath`. */
  nextStep = 0;
  nextStepPath: KPath | null = null;
  /** How the task entered the kernel last: by SYSCALL (it leaves by SYSRET) or through the IDT (IRET). */
  enteredBySyscall = false;
  /**
   * RF in pt_regs->flags: the task entered the kernel last through a fault-class exception,
   * whose RFLAGS image the processor pushes with RF set (SDM Vol. 3A §18.3.1.1, "for any
   * fault-class exception except an instruction breakpoint"); not for SYSCALL, INT n or an
   * interrupt. The signal frame's eflags and ptrace's show it.
   */
  entryRF = false;
  /** The simulator's hold at the end of the task's operations (sim/hold.ts): 0 never held, 1 held, 2 released. */
  endHold = 0;
  /** arch_prctl NOPTI_NEXT: the image the next execve starts runs with per-process PTI off. */
  noptiNext = false;
  /** The capabilities in effect (cap_effective) and permitted (cap_permitted), bit n = capability n. */
  capEffective = CAP_FULL_SET;
  capPermitted = CAP_FULL_SET;
  /** With entry_stack per_task: the PTI stack's base address and frames (null when none). */
  ptiStack: { va: bigint; pfns: number[] } | null = null;
  /** The operation the task was executing when it entered the kernel (for logs and restarts): its function, index and ip. */
  opFn = '';
  opIndex = 0;
  opIp = 0;
  /** The variable the running syscall's result goes to. */
  intoVar: string | undefined = undefined;
  /** Set by a syscall that leaves the user registers as it found them (rt_sigreturn, a successful execve). */
  skipResult = false;
  /** The user operation's name, for the log. */
  opName = '';
  /** The address the current load, store or fetch accesses (for the log). */
  opAddr: bigint | undefined = undefined;
  /** CLONE_VFORK: the parent waiting for this child to exec or exit. */
  vforkParent: Task | null = null;
  /** set_child_tid (CLONE_CHILD_SETTID): where schedule_tail writes the new task's tid, or 0. */
  set_child_tid = 0n;
  /** clear_child_tid (CLONE_CHILD_CLEARTID, set_tid_address): zeroed and woken by mm_release, or 0. */
  clear_child_tid = 0n;
  /** A new task with set_child_tid that has not run yet: its first switch-in runs ret_from_fork's schedule_tail first. */
  ret_from_fork = false;
  /** Set while the task sleeps in wait4. */
  waitingChild = false;
  /** The syscall in progress: number and arguments (for events). */
  curNr = -1;
  /** Its name in the table (`syscall_<nr>` for a number the table lacks). */
  curName = '';
  curArgs: readonly bigint[] = [];
  /** Set on a vfork parent while its child runs. */
  vforkWaiting = false;
  /** Number of operations executed in user mode since the last switch (for timeslices). */
  slice = 0;
  /** User operations this thread has retired, counting from its creator's at fork or clone: its clock (time.ts). */
  nr_ops = 0;
  /** TIF_NOCPUID: CPUID faults in user mode while this thread runs (ARCH_SET_CPUID 0; kept by fork and clone, cleared by execve). */
  tif_nocpuid = false;

  constructor(tid: number, group: ThreadGroup, parent: Task | null, mm: MmStruct | null, sighand: SigHand, image: ProgramImage | null) {
    this.tid = tid;
    this.group = group;
    this.parent = parent;
    this.exit_signal = 17;
    this.mm = mm;
    this.active_mm = mm;
    this.sighand = sighand;
    this.image = image;
    this.vars = new Map();
    return track(this);
  }

  get tgid(): number {
    return this.group.tgid;
  }

  /** Whether this task leads its thread group. */
  get isLeader(): boolean {
    return this.tid === this.group.tgid;
  }
}
