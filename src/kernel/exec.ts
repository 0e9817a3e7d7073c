/**
 * execve (fs/exec.c begin_new_exec, exec_mmap, de_thread, flush_signal_handlers; the ELF
 * loader's layout): replaces the calling process's image with a program the kernel knows by
 * name. The new mm has the text (read and execute, from TEXT_BASE), the read-only strings, and
 * a grows-down stack ending at STACK_TOP (132 KiB with the default 8 MiB RLIMIT_STACK), its
 * mmap_base below the stack by RLIMIT_STACK (the resource limits themselves are kept); other threads are killed first (a caller
 * that is not the leader takes over the leader's pid); the vfork parent is released; handlers
 * other than SIG_IGN return to SIG_DFL; the signal mask and pending signals are kept; PKRU
 * returns to its init value; the shadow stack is freed and the new image starts with it off
 * and unlocked.
 */
import { enable_cpuid } from './process_64.js';
import { start_thread_segments } from './desc.js';
import { flush_thread_tls } from './tls.js';
import { do_close_on_exec, unshare_files } from './file.js';
import { ProgramImage } from '../user/program.js';
import type { Kernel, PerCpu } from './kernel.js';
import { PT_EVENT_FLAG, PT_PTRACED, PT_SEIZED } from './ptrace.js';
import type { MmStruct } from './mm.js';
import { mm_alloc } from './fork.js';
import { mm_release, record_reach, release_task } from './exit.js';
import { mmdrop, mmput } from './mmput.js';
import { zap_unused_mm } from './zap.js';
import { __pte, mk_pte, vm_get_page_prot } from './pgtable.js';
import { PG_anon, PG_anon_exclusive } from './page.js';
import { __fatal_signal_pending, ptrace_notify, send_signal, sigmask, signal_wake_up } from './signal.js';
import { STEP_SLEEP, type KPath } from './steps.js';
import { reset_thread_features, shstk_free } from './shstk.js';
import { SigHand, type Task } from './task.js';
import { flush_tlb_mm_range, switch_mm_irqs_off, TLB_FLUSH_ALL } from './tlbflush.js';
import { pti_stack_map, pti_stack_unmap } from './pti.js';
import { copy_from_user } from './uaccess.js';
import { EAGAIN, EFAULT, ENAMETOOLONG, ENOMEM, ENOENT, PTRACE_EVENT_EXEC, RLIMIT_STACK, SI_USER, SIG_DFL, SIG_IGN, SIGCHLD, SIGKILL, SIGTRAP } from './uapi.js';
import { Vma, VM_ACCOUNT, VM_EXEC, VM_GROWSDOWN, VM_MAYEXEC, VM_MAYREAD, VM_MAYWRITE, VM_READ, VM_WRITE } from './vma.js';
import { TASK_SIZE } from './kernel.js';
import { STACK_GUARD_GAP } from './fault.js';
import { _STK_LIM, rlimit } from './resource.js';
import { vm_stat_account } from './vm_account.js';

/** STACK_TOP without randomisation: TASK_SIZE_LOW. */
export const STACK_TOP = TASK_SIZE;
/** The initial stack VMA with the default 8 MiB RLIMIT_STACK: 132 KiB, as setup_arg_pages leaves it with ASLR off. */
export const STACK_SIZE = 132 * 1024;
/** mmap_base without randomisation and an 8 MiB stack limit: TASK_SIZE - 128 MiB. */
export const MMAP_BASE = TASK_SIZE - 128 * 2 ** 20;
/** The pages the arguments take at the top of the stack (bprm's one page: the model passes no strings). */
const ARG_PAGES_SIZE = 4096;

/**
 * mmap_base (arch/x86/mm/mmap.c) without randomisation: below the stack, a gap of RLIMIT_STACK
 * plus stack_guard_gap (left as it is if the sum overflows), at least 128 MiB and at most 5/6 of
 * the task size.
 */
export function mmap_base(task_size: number, rlim_stack: bigint): number {
  let gap = rlim_stack;
  const pad = BigInt(STACK_GUARD_GAP);
  if (BigInt.asUintN(64, gap + pad) > gap) gap += pad;
  const gap_min = 128n * 2n ** 20n;
  const gap_max = BigInt(Math.floor(task_size / 6) * 5);
  if (gap < gap_min) gap = gap_min;
  else if (gap > gap_max) gap = gap_max;
  return Math.ceil((task_size - Number(gap)) / 4096) * 4096;
}

/**
 * setup_arg_pages's stack: the arguments' page expanded down by min(RLIMIT_STACK & PAGE_MASK,
 * its size + 128 KiB), never below that page (expand_stack_locked does not shrink). XXX: the
 * expansion's limit checks (acct_stack_growth) are not made: exec's stack always fits.
 */
function initial_stack_size(rlim_stack: bigint): number {
  const rlim = Number((rlim_stack > 2n ** 40n ? 2n ** 40n : rlim_stack) & ~0xfffn);
  return Math.max(ARG_PAGES_SIZE, Math.min(rlim, ARG_PAGES_SIZE + 131072));
}

/**
 * Builds the mm for `image` (the binfmt loader's part of execve): VMAs for text, read-only
 * data (its pages filled now) and the stack. Text is demand-faulted (the model never reads
 * instruction bytes). Returns null if memory ran out.
 */
export function load_image(k: Kernel, image: ProgramImage, nopti = false, rlim_stack: bigint = _STK_LIM): MmStruct | null {
  const mm = mm_alloc(k, mmap_base(k.init_mm.task_size, rlim_stack), nopti);
  if (!mm) return null;
  const built = build_image_mm(k, mm, image, initial_stack_size(rlim_stack));
  if (!built) {
    // The half-built mm was never used: take down what was mapped and free it.
    zap_unused_mm(k, mm);
    mm.pgtables.freeUserTables();
    mm.dead = true;
    mmdrop(k, mm);
    return null;
  }
  return mm;
}

/** The VMAs and the read-only data of `image` in the empty `mm`, each counted (vm_stat_account); false if memory ran out. */
function build_image_mm(k: Kernel, mm: MmStruct, image: ProgramImage, stackSize: number): boolean {
  const may = VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC;
  // set_mm_exe_file: the program's path, resolved from the root directory.
  mm.exe_path = image.name.startsWith('/') ? image.name : `/${image.name}`;
  const text = new Vma(0x400000, image.textEnd, VM_READ | VM_EXEC | may, 0x400000 / 4096);
  text.name = '[text]';
  mm.vmas.insert(text);
  vm_stat_account(mm, text.vm_flags, (text.vm_end - text.vm_start) / 4096);
  if (image.rodata.length > 0) {
    const end = image.textEnd + Math.ceil(image.rodata.length / 4096) * 4096;
    const ro = new Vma(image.textEnd, end, VM_READ | may, image.textEnd / 4096);
    ro.name = '[rodata]';
    ro.anon_vma = { id: k.nextObjectId(), forked: false };
    mm.vmas.insert(ro);
    vm_stat_account(mm, ro.vm_flags, (end - image.textEnd) / 4096);
    for (let off = 0; off < image.rodata.length; off += 4096) {
      const pfn = k.pages.alloc_page(PG_anon | PG_anon_exclusive, true);
      if (pfn < 0) return false;
      k.machine.mem.writeBytes(pfn * 4096, image.rodata.subarray(off, off + 4096));
      const table = mm.pgtables.pteTable(image.textEnd + off, true);
      if (table < 0) {
        k.pages.put_page(pfn);
        return false;
      }
      const prot = vm_get_page_prot(__pte(), ro.vm_flags, 0, k.nx);
      const e = mk_pte(__pte(), pfn, prot.lo, prot.hi);
      k.machine.mem.write64(table, ((image.textEnd + off) / 4096) % 512, e.lo, e.hi);
      k.pages.mapcount[pfn] = 1;
      mm.rss++;
    }
  }
  // binfmt_elf: start_data and end_data span the last segment's file bytes (the read-only data,
  // or the text without it); the break starts at the page after the last segment (no randomisation).
  const dataStart = image.rodata.length > 0 ? image.textEnd : 0x400000;
  mm.start_data = dataStart;
  mm.end_data = image.rodata.length > 0 ? image.textEnd + image.rodata.length : image.textEnd;
  mm.start_brk = mm.brk = Math.ceil(mm.end_data / 4096) * 4096;
  const stack = new Vma(STACK_TOP - stackSize, STACK_TOP, VM_READ | VM_WRITE | may | VM_GROWSDOWN | VM_ACCOUNT, (STACK_TOP - stackSize) / 4096);
  stack.name = '[stack]';
  mm.vmas.insert(stack);
  vm_stat_account(mm, stack.vm_flags, stackSize / 4096);
  mm.committed = stackSize / 4096;
  return true;
}

/** Sets a task's user registers for the start of `image`: pc at main, sp just below STACK_TOP (where argv and auxv would be). */
export function start_thread(k: Kernel, t: Task, image: ProgramImage): void {
  t.image = image;
  t.pc = image.byName.get('main')!.base;
  t.sp = STACK_TOP - 4096 + 8;
  t.vars = new Map();
  t.interruptedNames.clear();
  // flush_thread -> pkru_write_default: init_pkru_value (0 without OSPKE, PKRU's init state).
  t.pkru = k.ospke ? k.options.init_pkru >>> 0 : 0;
  reset_thread_features(t);
}

/**
 * de_thread (fs/exec.c): makes `t` the only thread of its group. With signal->group_exec_task
 * set to `t`, zap_other_threads gives every other live thread SIGKILL and wakes it (they exit
 * with code 0 and start no group exit: get_signal, do_group_exit); `t` sleeps killably until
 * they are gone (notify_count) and, if it is not the leader, until the leader is a zombie.
 * A non-leader then takes the leader's place: exchange_tids (it gets the tgid), the leader's
 * entry among the parent's children, exit_signal SIGCHLD; the old leader is released with no
 * report to the parent. Returns -EAGAIN, with a fatal signal pending, if a group exit or
 * another exec is under way, or a fatal signal comes while it waits. Does not touch the mm.
 */
function* de_thread(k: Kernel, t: Task): KPath {
  const g = t.group;
  const others = (): boolean => g.threads.some((th) => th !== t && th.state !== 'dead');
  if (!others()) return 0;
  // Under siglock: another group action in progress wins.
  if (g.groupExit || g.group_exec_task) return -EAGAIN;
  g.group_exec_task = t;
  // zap_other_threads: a zombie (only the leader can be one) is counted but not signalled.
  for (const th of g.threads) {
    if (th === t || th.state === 'zombie' || th.state === 'dead') continue;
    th.pending.signal |= sigmask(SIGKILL);
    signal_wake_up(k, th, true);
  }
  // Wait for notify_count (the others released; __exit_signal wakes us) and, for a non-leader,
  // for the leader's exit_state (exit_notify wakes us). The model's threads self-reap in
  // exit_notify, so both are: every other thread dead, the leader at least a zombie.
  while (g.threads.some((th) => th !== t && th.state !== 'dead' && !(th.isLeader && th.state === 'zombie'))) {
    t.state = 'sleeping';
    t.sleepKillableOnly = true;
    yield STEP_SLEEP;
    t.sleepKillableOnly = false;
    if (__fatal_signal_pending(t)) {
      g.group_exec_task = null;
      return -EAGAIN;
    }
  }
  if (!t.isLeader) {
    const leader = g.threads[0];
    // exchange_tids: t becomes the tgid, the old leader takes t's tid and is released.
    const tid = t.tid;
    k.tasks.delete(tid);
    t.tid = leader.tid;
    leader.tid = tid;
    k.tasks.set(t.tid, t);
    k.tasks.set(leader.tid, leader);
    // list_replace_init(&leader->sibling, &tsk->sibling): the parent now waits for t.
    t.parent = leader.parent;
    const siblings = t.parent ? t.parent.group.children : null;
    const i = siblings ? siblings.indexOf(leader) : -1;
    if (siblings && i >= 0) siblings[i] = t;
    // The model keeps children per process, with the leader as parent; Linux reparents a dead
    // thread's children to a live thread of its group (forget_original_parent).
    for (const c of g.children) if (c.parent === leader) c.parent = t;
    leader.exit_signal = -1;
    release_task(k, leader);
  }
  g.threads.splice(0, g.threads.length, t);
  g.group_exec_task = null;
  return 0;
}

/** sys_execve(filename, argv, envp): the filename names an image registered with the kernel. */
export function sys_execve(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  const old_vpid = t.tid;
  return (function* (): KPath {
    // strncpy_from_user, PATH_MAX bytes at most.
    let name = '';
    for (let at = a[0]; ; at += 1n) {
      const b = yield* copy_from_user(k, pc, t, at, 1);
      if (!b) return -EFAULT;
      if (b[0] === 0) break;
      name += String.fromCharCode(b[0]);
      if (name.length >= 4096) return -ENAMETOOLONG;
    }
    const image = k.images.get(name);
    if (!image) return -ENOENT;
    // The new mm's per-process PTI mode comes from the caller's NEXT flag.
    // The new mm's layout follows the caller's RLIMIT_STACK (bprm->rlim_stack); the limits themselves are kept.
    const mm = load_image(k, image, t.noptiNext, rlimit(t, RLIMIT_STACK));
    if (!mm) return -ENOMEM;
    if (mm.nopti && k.events.on) k.emit({ type: 'pti_mode', cpu: pc.id, tid: t.tid, mm: mm.ctx_id, nopti: true, how: 'exec' });
    // Point of no return (begin_new_exec): every other thread dies first. If that fails the
    // caller has a fatal signal pending and dies on its way out, so user mode never sees a
    // result; the new mm goes (free_bprm).
    const dt = yield* de_thread(k, t);
    if (dt < 0) {
      yield* mmput(k, pc, mm);
      t.skipResult = true;
      return dt;
    }
    // begin_new_exec: the descriptor table is not shared from here on (unshare_files).
    unshare_files(t);
    // exec_mmap; mm_release's deactivate_mm frees this thread's shadow stack from the old mm.
    const old = t.mm!;
    yield* shstk_free(k, pc, t);
    yield* mm_release(k, pc, t, old);
    // The PTI stack (entry_stack per_task) moves to the new mm's page tables.
    const ptiStack = t.ptiStack;
    if (ptiStack) {
      pti_stack_unmap(k, old, ptiStack);
      yield* flush_tlb_mm_range(k, pc, old, 0, TLB_FLUSH_ALL, 12, false);
      // XXX: past the point of no return a failed table allocation would kill the task; the
      // model leaves the stack unmapped in the new mm.
      pti_stack_map(k, mm, ptiStack);
    }
    t.mm = mm;
    t.active_mm = mm;
    // exec_mmap: local_irq_disable(); activate_mm(); local_irq_enable().
    pc.irqs_disabled = true;
    switch_mm_irqs_off(k, pc, mm);
    pc.irqs_disabled = false;
    if (old.mm_users === 1) record_reach(k, t, old);
    yield* mmput(k, pc, old);
    // begin_new_exec: do_close_on_exec, after the table was unshared.
    if (t.files) do_close_on_exec(t.files);
    // begin_new_exec: no alternate signal stack (sas_ss_flags, SS_AUTODISARM included, stays).
    t.sas_ss_sp = 0n;
    t.sas_ss_size = 0n;
    // unshare_sighand + flush_signal_handlers(t, 0)
    if (t.sighand.count > 1) {
      t.sighand.count--;
      t.sighand = t.sighand.clone();
      t.sighand.count = 1;
    }
    const sh: SigHand = t.sighand;
    for (let sig = 1; sig <= 64; sig++) {
      const ka = sh.action[sig];
      if (ka.handler !== SIG_IGN) ka.handler = SIG_DFL;
      ka.flags = 0;
      ka.restorer = 0n;
      ka.mask = 0n;
    }
    t.exit_signal = SIGCHLD;
    // setup_new_exec -> arch_setup_new_exec: CPUID faulting (TIF_NOCPUID) does not survive execve.
    enable_cpuid(pc, t);
    start_thread(k, t, image);
    pc.cpu.pkru = t.pkru;
    flush_thread_tls(t);
    start_thread_segments(pc, t);
    t.skipResult = true;
    if (k.events.on) k.emit({ type: 'exec', cpu: pc.id, tid: t.tid, image: name });
    // exec_binprm's ptrace_event(PTRACE_EVENT_EXEC, old_vpid): a PTRACE_O_TRACEEXEC stop, or,
    // for a tracee attached without PTRACE_SEIZE, the legacy SIGTRAP (send_sig: si_code SI_USER,
    // si_pid its own).
    if (t.ptrace & PT_EVENT_FLAG(PTRACE_EVENT_EXEC)) yield* ptrace_notify(k, pc, t, (PTRACE_EVENT_EXEC << 8) | SIGTRAP, BigInt(old_vpid));
    else if ((t.ptrace & (PT_PTRACED | PT_SEIZED)) === PT_PTRACED) send_signal(k, t, { signo: SIGTRAP, code: SI_USER, addr: 0n, pid: t.tgid, pkey: 0 }, false);
    return 0;
  })();
}
