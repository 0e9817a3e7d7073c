/**
 * userfaultfd (fs/userfaultfd.c): a descriptor through which a thread handles the page faults
 * of registered ranges of its address space. The userfaultfd syscall makes the context and its
 * anonymous-inode file; UFFDIO_API agrees the features; UFFDIO_REGISTER marks VMAs
 * (VM_UFFD_MISSING, VM_UFFD_WP, VM_UFFD_MINOR) as the context's; a fault there
 * (handle_userfault, called from do_anonymous_page and do_wp_page for anonymous memory, and
 * from shmem_get_folio_gfp for shmem: a page the object lacks in a MISSING VMA, a page it has
 * but the VMA does not map in a MINOR one) queues a struct uffd_msg, drops mmap_lock and
 * sleeps until UFFDIO_COPY, ZEROPAGE, CONTINUE, WRITEPROTECT or WAKE (mfill.ts) wakes it, and
 * then is retried; read() hands the queued messages to the handler, oldest first, faults before
 * events. Closing the last descriptor wakes every waiter and unregisters every VMA.
 *
 * Anonymous private VMAs and shmem VMAs (memfd, tmpfs files, MAP_SHARED|MAP_ANONYMOUS; shared
 * or private) can be registered (vma_can_userfault). UFFD_FEATURE_EVENT_FORK: fork gives the
 * child's registered VMAs a new context (dup_userfaultfd), and the forking thread waits, with
 * the parent context's mmap_changing raised, until the handler reads the UFFD_EVENT_FORK
 * message, whose reading installs a descriptor for the new context (resolve_userfault_fork).
 * Without it the child's VMAs lose their registration.
 *
 * The features the model honours (UFFD_API_FEATURES here): PAGEFAULT_FLAG_WP, EVENT_FORK,
 * MISSING_SHMEM, SIGBUS, THREAD_ID, MINOR_SHMEM, EXACT_ADDRESS; asking UFFDIO_API for another
 * is -EINVAL, as for a feature the kernel lacks. Of 6.12's others on x86-64:
 * XXX: WP_HUGETLBFS_SHMEM, WP_UNPOPULATED and WP_ASYNC need PTE markers (a uffd-wp bit kept in
 * an empty entry, CONFIG_PTE_MARKER_UFFD_WP), which the model lacks; it answers as a kernel
 * built without them does (userfaultfd_api clears the three; vma_can_userfault refuses WP on
 * a VMA that is not anonymous, so registering shmem for WP is -EINVAL, and UFFDIO_COPY_MODE_WP
 * or UFFDIO_CONTINUE_MODE_WP into shmem -EINVAL). The host (6.18, markers built in) registers
 * shmem for WP. XXX: EVENT_REMAP, EVENT_REMOVE and EVENT_UNMAP are not offered: mremap,
 * MADV_DONTNEED/MADV_REMOVE and munmap of a registered range queue nothing, and only a fork
 * raises mmap_changing; a VMA mremap moves loses its registration and its entries their
 * uffd-wp bits (mremap_userfaultfd_prep, move_ptes), as without EVENT_REMAP. XXX: MISSING_HUGETLBFS, MINOR_HUGETLBFS (no hugetlbfs), POISON and
 * MOVE (the UFFDIO_POISON and UFFDIO_MOVE ioctls are -EINVAL, as unknown commands are). No
 * poll, no /dev/userfaultfd, no fdinfo. The model's tasks are root, so
 * vm.unprivileged_userfaultfd never refuses.
 * A get_user_pages fault waits for the handler only with FOLL_UNLOCKABLE (gup.ts: vmsplice,
 * process_vm_readv/writev); without it (FAULT_FLAG_ALLOW_RETRY unset) a userfault is
 * VM_FAULT_SIGBUS, as in Linux. Linux's flush of a deferred uffd-wp TLB flush in do_wp_page
 * (mm_tlb_flush_pending) is not needed: the model's WRITEPROTECT flushes before it drops
 * mmap_lock.
 * XXX: one lock stands for fault_pending_wqh.lock, event_wqh.lock and fd_wqh.lock (Linux takes
 * them nested or one after the other); it serialises more than Linux, never less.
 */
import { ModelError } from '../errors.js';
import { opaque, track } from '../track.js';
import { capable } from './capability.js';
import { File, type FileOperations, fd_install, FMODE_CAN_READ, FMODE_READ, get_unused_fd_flags, put_unused_fd } from './file.js';
import type { Kernel, PerCpu } from './kernel.js';
import { FAULT_FLAG_ALLOW_RETRY, FAULT_FLAG_USER, FAULT_FLAG_WRITE, VM_FAULT_RETRY, VM_FAULT_SIGBUS, type vm_fault } from './memory.js';
import { mfill_atomic, mwriteprotect_range, userfaultfd_clear_vma, userfaultfd_clear_vma_now, userfaultfd_register_range, userfaultfd_reset_ctx } from './mfill.js';
import type { MmStruct } from './mm.js';
import { mmap_read_unlock, mmap_write_lock, mmap_write_unlock } from './mmap.js';
import { mmapLockId, mmdrop } from './mmput.js';
import { pte_none, pte_uffd_wp, pte_write } from './pgtable.js';
import { wake_up_process } from './sched.js';
import { ERESTARTSYS, __fatal_signal_pending, signal_pending } from './signal.js';
import { STEP_LOCK, STEP_READ, STEP_SLEEP, STEP_UNLOCK, STEP_WAIT, type KPath, type KSteps } from './steps.js';
import type { Task } from './task.js';
import { copy_from_user, copy_to_user, getU64, putU32, putU64 } from './uaccess.js';
import {
  EAGAIN, EBUSY, EFAULT, EINVAL, ENOMEM, EPERM, ESRCH, O_ACCMODE, O_CLOEXEC, O_NONBLOCK, O_RDONLY, UFFD_API, UFFD_EVENT_FORK, UFFD_EVENT_PAGEFAULT,
  UFFD_FEATURE_EVENT_FORK, UFFD_FEATURE_EVENT_REMAP, UFFD_FEATURE_EXACT_ADDRESS, UFFD_FEATURE_MINOR_SHMEM, UFFD_FEATURE_MISSING_SHMEM, UFFD_FEATURE_PAGEFAULT_FLAG_WP, UFFD_FEATURE_SIGBUS,
  UFFD_FEATURE_THREAD_ID, UFFD_FEATURE_WP_ASYNC, UFFD_FEATURE_WP_UNPOPULATED, UFFD_PAGEFAULT_FLAG_MINOR, UFFD_PAGEFAULT_FLAG_WP, UFFD_PAGEFAULT_FLAG_WRITE,
  UFFD_USER_MODE_ONLY, UFFDIO_API, UFFDIO_CONTINUE, UFFDIO_CONTINUE_MODE_DONTWAKE, UFFDIO_CONTINUE_MODE_WP, UFFDIO_COPY, UFFDIO_COPY_MODE_DONTWAKE,
  UFFDIO_COPY_MODE_WP, UFFDIO_REGISTER, UFFDIO_REGISTER_MODE_MINOR, UFFDIO_REGISTER_MODE_MISSING, UFFDIO_REGISTER_MODE_WP, UFFDIO_UNREGISTER, UFFDIO_WAKE,
  UFFDIO_WRITEPROTECT, UFFDIO_WRITEPROTECT_MODE_DONTWAKE, UFFDIO_WRITEPROTECT_MODE_WP, UFFDIO_ZEROPAGE, UFFDIO_ZEROPAGE_MODE_DONTWAKE,
  _UFFDIO_API, _UFFDIO_CONTINUE, _UFFDIO_COPY, _UFFDIO_REGISTER, _UFFDIO_UNREGISTER, _UFFDIO_WAKE, _UFFDIO_WRITEPROTECT, _UFFDIO_ZEROPAGE,
} from './uapi.js';
import { ANON_INODE_DEV } from './vfs.js';
import { VM_MAYWRITE, VM_UFFD_MINOR, VM_UFFD_MISSING, VM_UFFD_WP, type Vma } from './vma.js';

/** CAP_SYS_PTRACE: UFFD_FEATURE_EVENT_FORK needs it. */
const CAP_SYS_PTRACE = 19;
/** sizeof(struct uffd_msg). */
export const UFFD_MSG_SIZE = 32;
/** UFFD_FEATURE_INITIALIZED: UFFDIO_API has been done (a bit no feature uses). */
const UFFD_FEATURE_INITIALIZED = 2 ** 31;
/** UFFD_SHARED_FCNTL_FLAGS. */
const UFFD_SHARED_FCNTL_FLAGS = O_CLOEXEC | O_NONBLOCK;
/** The features UFFDIO_API offers: the ones the model honours (see the header). */
export const UFFD_API_FEATURES =
  UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_SIGBUS | UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_MINOR_SHMEM | UFFD_FEATURE_EXACT_ADDRESS;
/** UFFD_API_IOCTLS: what UFFDIO_API says the descriptor takes. */
export const UFFD_API_IOCTLS = (1n << BigInt(_UFFDIO_REGISTER)) | (1n << BigInt(_UFFDIO_UNREGISTER)) | (1n << BigInt(_UFFDIO_API));
/**
 * UFFD_API_RANGE_IOCTLS as the model has them: WAKE, COPY, ZEROPAGE, WRITEPROTECT, CONTINUE
 * (XXX: MOVE and POISON are not implemented). No hugetlbfs, so never UFFD_API_RANGE_IOCTLS_BASIC.
 */
export const UFFD_API_RANGE_IOCTLS = (1 << _UFFDIO_WAKE) | (1 << _UFFDIO_COPY) | (1 << _UFFDIO_ZEROPAGE) | (1 << _UFFDIO_WRITEPROTECT) | (1 << _UFFDIO_CONTINUE);
/** UFFD_API_REGISTER_MODES. */
const UFFD_API_REGISTER_MODES = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP | UFFDIO_REGISTER_MODE_MINOR;

/** A userfault waiting for its resolution (struct userfaultfd_wait_queue): its message, its task, and whether a wake reached it. */
export class UserfaultWait {
  waken = false;
  constructor(
    readonly task: Task,
    /** msg.arg.pagefault.flags, .address (page-aligned unless UFFD_FEATURE_EXACT_ADDRESS) and .feat.ptid. */
    readonly flags: number,
    readonly address: number,
    readonly ptid: number,
  ) {
    return track(this);
  }
}

/**
 * A non-cooperative event waiting for the handler (the struct userfaultfd_wait_queue on the
 * stack of the thread that raised it): UFFD_EVENT_FORK with the child's new context. `event`
 * becomes 0 when the handler has read it (userfaultfd_event_complete).
 */
export class UserfaultEvent {
  event: number;
  /** The raising thread stopped waiting (released context, fatal signal) and took the event off whatever list held it. */
  aborted = false;
  constructor(
    readonly task: Task,
    event: number,
    /** msg.arg.reserved.reserved1 of a fork event: the child's context, until the read gives it a descriptor. */
    readonly newCtx: UserfaultfdCtx,
  ) {
    this.event = event;
    return track(this);
  }
}

/** struct userfaultfd_ctx. */
export class UserfaultfdCtx {
  /** refcount: the file, each fault waiting on it, each fork event in flight (and a reader resolving one). */
  refcount = 1;
  /** features: 0 until UFFDIO_API, then the features asked for with UFFD_FEATURE_INITIALIZED. */
  features = 0;
  /** released: the file went; faults no longer wait. */
  released = false;
  /** mmap_changing: non-cooperative events in flight (fork events: raised by dup_userfaultfd, lowered once the event is read). */
  mmap_changing = 0;
  /** fault_pending_wqh: faults not yet read, oldest first; fault_wqh: faults read and not yet woken. */
  readonly fault_pending_wqh: UserfaultWait[] = [];
  readonly fault_wqh: UserfaultWait[] = [];
  /** event_wqh: events not yet read, oldest first. */
  readonly event_wqh: UserfaultEvent[] = [];
  /** fd_wqh: readers waiting for a fault. */
  readonly fd_wqh: Task[] = [];
  /** fault_pending_wqh.lock's holder (a tid), or 0. */
  lockOwner = 0;

  constructor(
    readonly k: Kernel,
    readonly id: number,
    /** ctx->flags: UFFD_USER_MODE_ONLY, O_CLOEXEC, O_NONBLOCK as given to the syscall. */
    readonly flags: number,
    readonly mm: MmStruct,
  ) {
    return track(this);
  }
}

/** The lock id a step on a context's fault_pending_wqh.lock announces (steps.ts): negative, apart from the file and per-mm ids. */
function uffdLockId(ctx: UserfaultfdCtx): number {
  return -(2 ** 43 + ctx.id);
}

/** spin_lock_irq(&ctx->fault_pending_wqh.lock): one step per try; preemption off while held. */
function* uffd_lock(pc: PerCpu, ctx: UserfaultfdCtx, t: Task): KSteps<void> {
  pc.preempt_count++;
  pc.touch = uffdLockId(ctx);
  yield STEP_LOCK;
  while (ctx.lockOwner !== 0) yield STEP_WAIT;
  ctx.lockOwner = t.tid;
}

/** spin_unlock_irq. */
function* uffd_unlock(pc: PerCpu, ctx: UserfaultfdCtx): KSteps<void> {
  pc.touch = uffdLockId(ctx);
  yield STEP_UNLOCK;
  ctx.lockOwner = 0;
  pc.preempt_count--;
}

/** userfaultfd_ctx_put: one reference fewer; the last lets go of the mm (mmdrop). */
function userfaultfd_ctx_put(ctx: UserfaultfdCtx): void {
  if (--ctx.refcount > 0) return;
  if (ctx.fault_pending_wqh.length || ctx.fault_wqh.length || ctx.event_wqh.length || ctx.fd_wqh.length) throw new ModelError('userfaultfd_ctx_put', 'VM_BUG_ON(waitqueue_active(...)): the last reference went with waiters queued');
  mmdrop(ctx.k, ctx.mm);
}

/** userfaultfd_is_initialized: UFFDIO_API was done. */
function userfaultfd_is_initialized(ctx: UserfaultfdCtx): boolean {
  return (ctx.features & UFFD_FEATURE_INITIALIZED) !== 0;
}

/** userfaultfd_missing / userfaultfd_wp / userfaultfd_minor (include/linux/userfaultfd_k.h). */
export function userfaultfd_missing(vma: Vma): boolean {
  return (vma.vm_flags & VM_UFFD_MISSING) !== 0;
}
export function userfaultfd_wp(vma: Vma): boolean {
  return (vma.vm_flags & VM_UFFD_WP) !== 0;
}
export function userfaultfd_minor(vma: Vma): boolean {
  return vma.uffdMinor;
}

/** userfaultfd_armed: a VMA with any of __VM_UFFD_FLAGS. */
export function userfaultfd_armed(vma: Vma): boolean {
  return (vma.vm_flags & (VM_UFFD_MISSING | VM_UFFD_WP)) !== 0 || vma.uffdMinor;
}

/** userfaultfd_pte_wp: a uffd-wp VMA and a uffd-wp entry. */
export function userfaultfd_pte_wp(vma: Vma, lo: number): boolean {
  return userfaultfd_wp(vma) && pte_uffd_wp(lo);
}

/**
 * vma_can_userfault (include/linux/userfaultfd_k.h): whether `vma` may be registered for the
 * modes `vm_flags` (VM_UFFD_MISSING, VM_UFFD_WP) and `minor` (VM_UFFD_MINOR). MINOR needs
 * shmem (there is no hugetlbfs); WP needs anonymous memory, as without
 * CONFIG_PTE_MARKER_UFFD_WP (see the header; no WP_ASYNC either); otherwise any anonymous or
 * shmem VMA. (6.12's VM_DROPPABLE test looks at the masked flags and never refuses.)
 */
export function vma_can_userfault(vma: Vma, vm_flags: number, minor: boolean): boolean {
  vm_flags &= VM_UFFD_MISSING | VM_UFFD_WP;
  if (minor && !vma_is_shmem(vma)) return false;
  if (vm_flags & VM_UFFD_WP && !vma_is_anonymous(vma)) return false;
  return vma_is_anonymous(vma) || vma_is_shmem(vma);
}

/** vma_is_anonymous: no object behind the VMA. vma_is_shmem: a shmem object (a tmpfs file's page cache or shared anonymous memory). */
function vma_is_anonymous(vma: Vma): boolean {
  return vma.shmem === null;
}
export function vma_is_shmem(vma: Vma): boolean {
  return vma.shmem !== null;
}

// ---------------------------------------------------------------------------------------------
// The syscall and the file.

/**
 * userfaultfd(flags): userfaultfd_syscall_allowed (root has CAP_SYS_PTRACE), then
 * new_userfaultfd: flags other than O_CLOEXEC, O_NONBLOCK and UFFD_USER_MODE_ONLY (-EINVAL),
 * a descriptor (-EMFILE), and the file: an anonymous inode "[userfaultfd]" opened read-only
 * with the O_NONBLOCK given. The context holds the caller's mm (mmgrab).
 */
export function sys_userfaultfd(k: Kernel, _pc: PerCpu, t: Task, a: readonly bigint[]): number {
  const flags = Number(BigInt.asIntN(32, a[0]));
  if (!(flags & UFFD_USER_MODE_ONLY) && !capable(t, CAP_SYS_PTRACE)) return -EPERM;
  if (flags & ~(UFFD_SHARED_FCNTL_FLAGS | UFFD_USER_MODE_ONLY)) return -EINVAL;
  const mm = t.mm!;
  const ctx = new UserfaultfdCtx(k, k.nextObjectId(), flags, mm);
  const fd = get_unused_fd_flags(t, flags & UFFD_SHARED_FCNTL_FLAGS);
  if (fd < 0) return fd;
  const file = anon_inode_create_getfile(k, userfaultfd_fops, ctx, O_RDONLY | (flags & UFFD_SHARED_FCNTL_FLAGS));
  if (!file) {
    put_unused_fd(t.files!, fd);
    return -ENOMEM;
  }
  mm.mm_count++;
  fd_install(t.files!, fd, file);
  return fd;
}

/**
 * anon_inode_create_getfile (fs/anon_inodes.c): a file on a new inode of anon_inodefs (mode
 * 0600, no type bits, as alloc_anon_inode makes it) with operations `fops` and `priv` as its
 * private data, its f_flags the access mode and O_NONBLOCK of `flags`. Opened read-only here, so
 * FMODE_READ, and FMODE_CAN_READ since the operations read.
 */
function anon_inode_create_getfile(k: Kernel, fops: FileOperations, priv: unknown, flags: number): File | null {
  const inode = k.vfs.newInode(0o600, 'anon', ANON_INODE_DEV, 0);
  inode.i_fop = opaque(fops);
  inode.name = '[userfaultfd]';
  // __anon_inode_getfile: alloc_file_pseudo keeps only the access mode and O_NONBLOCK.
  const file = new File(inode, flags & (O_ACCMODE | O_NONBLOCK), FMODE_READ | (fops.read ? FMODE_CAN_READ : 0));
  file.private_data = priv;
  return file;
}

/** The context behind a userfaultfd file. */
function ctxOf(f: File): UserfaultfdCtx {
  return f.private_data as UserfaultfdCtx;
}

/**
 * userfaultfd_read_iter: -EINVAL before UFFDIO_API; then whole messages while the buffer holds
 * one (a count below 32 is -EINVAL), blocking only for the first (not with O_NONBLOCK: -EAGAIN);
 * a signal while blocked is -ERESTARTSYS. A message that cannot be copied out is -EFAULT unless
 * one was read. Returns the bytes read; the position does not move.
 */
function* userfaultfd_read(k: Kernel, pc: PerCpu, t: Task, f: File, buf: bigint, count: number, pos: number): KSteps<[number, number]> {
  const ctx = ctxOf(f);
  if (!userfaultfd_is_initialized(ctx)) return [-EINVAL, pos];
  let no_wait = (f.f_flags & O_NONBLOCK) !== 0;
  let ret = 0;
  for (;;) {
    if (count - ret < UFFD_MSG_SIZE) return [ret ? ret : -EINVAL, pos];
    const msg = yield* userfaultfd_ctx_read(k, pc, t, ctx, no_wait);
    if (typeof msg === 'number') return [ret ? ret : msg, pos];
    if (!(yield* copy_to_user(k, pc, t, buf + BigInt(ret), msg))) return [ret ? ret : -EFAULT, pos];
    ret += UFFD_MSG_SIZE;
    no_wait = true;
  }
}

/**
 * userfaultfd_ctx_read: under the lock, the oldest unread fault is moved to fault_wqh (read,
 * still waiting) and its message returned; with none, the oldest event: a fork event is taken
 * off the queue while resolve_userfault_fork installs a descriptor for the child's context
 * (the lock dropped), then put back and completed (its thread woken) if that worked, or left
 * queued if it failed (the error is the read's); if the forking thread gave up meanwhile, the
 * descriptor stays and the context with it. With nothing queued, a pending signal is
 * -ERESTARTSYS, then no_wait is -EAGAIN, else the reader sleeps on fd_wqh until something is
 * queued. The test and the sleep are the unlock's step: a fault queued after it wakes the reader.
 */
function* userfaultfd_ctx_read(k: Kernel, pc: PerCpu, t: Task, ctx: UserfaultfdCtx, no_wait: boolean): KSteps<Uint8Array | number> {
  for (;;) {
    yield* uffd_lock(pc, ctx, t);
    const uwq = ctx.fault_pending_wqh.length > 0 ? ctx.fault_pending_wqh.shift()! : null;
    if (uwq) {
      ctx.fault_wqh.push(uwq);
      const msg = userfault_msg(uwq);
      yield* uffd_unlock(pc, ctx);
      return msg;
    }
    const ewq = ctx.event_wqh.length > 0 ? ctx.event_wqh[0] : null;
    if (ewq) {
      // The only event the model raises is UFFD_EVENT_FORK: list_move to the reader's fork_event.
      ctx.event_wqh.shift();
      const fork_nctx = ewq.newCtx;
      fork_nctx.refcount++;
      yield* uffd_unlock(pc, ctx);
      return yield* resolve_fork_event(k, pc, t, ctx, ewq, fork_nctx);
    }
    const ret = signal_pending(t) ? -ERESTARTSYS : no_wait ? -EAGAIN : 0;
    yield* uffd_unlock(pc, ctx);
    if (ret) return ret;
    // set_current_state(TASK_INTERRUPTIBLE) was before the test: nothing queued since, so sleep.
    ctx.fd_wqh.push(t);
    t.state = 'sleeping';
    yield STEP_SLEEP;
    const i = ctx.fd_wqh.indexOf(t);
    if (i >= 0) ctx.fd_wqh.splice(i, 1);
  }
}

/**
 * The end of userfaultfd_ctx_read for a fork event `ewq` taken off the queue, with a reference
 * to the child's context held: resolve_userfault_fork (a descriptor, -EMFILE or -ENOMEM), then
 * under the lock, if the forking thread still waits (it leaves `ewq.event` set and has not
 * dropped the event): the temporary reference goes, and the event goes back on the queue,
 * completed at once if the descriptor was made; if the thread gave up, the reference is kept
 * by the new descriptor, or dropped if there is none. Returns the message or -errno.
 */
function* resolve_fork_event(k: Kernel, pc: PerCpu, t: Task, ctx: UserfaultfdCtx, ewq: UserfaultEvent, fork_nctx: UserfaultfdCtx): KSteps<Uint8Array | number> {
  const ufd = resolve_userfault_fork(k, t, fork_nctx);
  yield* uffd_lock(pc, ctx, t);
  if (!ewq.aborted) {
    userfaultfd_ctx_put(fork_nctx);
    if (ufd >= 0) userfaultfd_event_complete(k, ewq);
    else ctx.event_wqh.push(ewq);
  } else if (ufd < 0) userfaultfd_ctx_put(fork_nctx);
  yield* uffd_unlock(pc, ctx);
  if (ufd < 0) return ufd;
  // msg.event, then msg.arg.fork.ufd (reserved1 cleared).
  const b = new Uint8Array(UFFD_MSG_SIZE);
  b[0] = UFFD_EVENT_FORK;
  putU32(b, 8, ufd);
  return b;
}

/**
 * resolve_userfault_fork: anon_inode_create_getfd of a "[userfaultfd]" file for `nctx`, read-only
 * with the O_NONBLOCK and O_CLOEXEC of the context's flags, in the reader's table. The file
 * takes the reference the context was made with. Returns the descriptor or -errno.
 */
function resolve_userfault_fork(k: Kernel, t: Task, nctx: UserfaultfdCtx): number {
  const fd = get_unused_fd_flags(t, nctx.flags & UFFD_SHARED_FCNTL_FLAGS);
  if (fd < 0) return fd;
  const file = anon_inode_create_getfile(k, userfaultfd_fops, nctx, O_RDONLY | (nctx.flags & UFFD_SHARED_FCNTL_FLAGS));
  if (!file) {
    put_unused_fd(t.files!, fd);
    return -ENOMEM;
  }
  fd_install(t.files!, fd, file);
  return fd;
}

/** userfaultfd_event_complete (under the lock): the event is done (msg.event 0) and its thread woken. */
function userfaultfd_event_complete(k: Kernel, ewq: UserfaultEvent): void {
  ewq.event = 0;
  wake_up_process(k, ewq.task);
}

/** userfault_msg: the 32-byte struct uffd_msg of a page fault (event, flags, address, ptid; zeroes elsewhere). */
function userfault_msg(uwq: UserfaultWait): Uint8Array {
  const b = new Uint8Array(UFFD_MSG_SIZE);
  b[0] = UFFD_EVENT_PAGEFAULT;
  putU64(b, 8, BigInt(uwq.flags));
  putU64(b, 16, BigInt(uwq.address));
  putU32(b, 24, uwq.ptid);
  return b;
}

/** wake_up_poll(&ctx->fd_wqh): every reader asleep on the context becomes runnable. */
function wake_readers(k: Kernel, ctx: UserfaultfdCtx): void {
  for (const r of ctx.fd_wqh) wake_up_process(k, r);
}

/**
 * userfaultfd_release (the last fput): released is set, every VMA registered with the context
 * is unregistered (userfaultfd_release_all), every waiting fault is woken to retry, and every
 * thread waiting for an event to be read is woken (it gives the event up).
 * XXX: Linux runs this from task_work at the return to user, taking mmap_lock for writing
 * and clearing the uffd-wp bits with change_protection; the model does it in the closing step,
 * clearing the bits in place (no write upgrade: a later write fault reuses the page).
 */
function userfaultfd_release(f: File): void {
  const ctx = ctxOf(f);
  ctx.released = true;
  userfaultfd_release_all(ctx);
  wake_range(ctx.k, ctx, 0, 0);
  // Flush pending events that may still wait on event_wqh.
  for (const ewq of ctx.event_wqh) wake_up_process(ctx.k, ewq.task);
  wake_readers(ctx.k, ctx);
  userfaultfd_ctx_put(ctx);
}

/** userfaultfd_release_all (mm/userfaultfd.c), unless the mm is already gone (mmget_not_zero). */
function userfaultfd_release_all(ctx: UserfaultfdCtx): void {
  const mm = ctx.mm;
  if (mm.mm_users === 0 || mm.dead) return;
  for (const vma of [...mm.vmas.list]) {
    if (vma.vm_userfaultfd_ctx !== ctx) continue;
    userfaultfd_clear_vma_now(ctx.k, mm, vma);
  }
}

/** The userfaultfd file's operations (userfaultfd_fops): read, unlocked_ioctl, release; llseek is noop_llseek. */
export const userfaultfd_fops: Readonly<FileOperations> = {
  read: userfaultfd_read,
  ioctl: userfaultfd_ioctl,
  release: userfaultfd_release,
  llseek: (f: File): number => f.f_pos,
};

// ---------------------------------------------------------------------------------------------
// The faulting side.

/**
 * handle_userfault(vmf, reason), entered with mmap_lock held for reading and the page-table
 * lock dropped (and, from shmem, no page reference held); `reason` is VM_UFFD_MISSING,
 * VM_UFFD_WP or VM_UFFD_MINOR (the message's flags: WP, MINOR, and WRITE for a write); `ctx` is vma->vm_userfaultfd_ctx as the caller read it under the locks (the
 * model's release of the last descriptor does not wait for mmap_lock, see userfaultfd_release,
 * so the context is not read again here: a release meanwhile is seen as ctx->released, as Linux
 * sees a release waiting for the lock). VM_FAULT_SIGBUS when the VMA has no context, the context asked for SIGBUS, the
 * fault came from the kernel on a UFFD_USER_MODE_ONLY context, or the fault may not be retried
 * (no FAULT_FLAG_ALLOW_RETRY: GUP without FOLL_UNLOCKABLE). Otherwise VM_FAULT_RETRY with mmap_lock
 * released: at once if the context is being released; else the fault's message is queued
 * (fault_pending_wqh), the PTE read again (userfaultfd_must_wait: still none, or still
 * read-only for a WP fault), mmap_lock dropped, and the task sleeps unless the PTE was
 * resolved meanwhile, a wake already reached it, or a signal is pending that may interrupt
 * it; readers are woken first. Once woken it leaves the queue it is still on.
 *
 * XXX: a kernel access (copy_to_user) sleeps killable only: Linux sleeps interruptibly and, with
 * a non-fatal signal pending, retries the fault at once over and over until it is resolved; the
 * model waits for the same resolution without spinning.
 */
export function* handle_userfault(vmf: vm_fault, reason: number, ctx: UserfaultfdCtx | null): KPath {
  const { k, pc, t, mm } = vmf;
  // PF_EXITING|PF_DUMPCORE: the model's faults never come from an exiting task or a core dump.
  if (!ctx) return VM_FAULT_SIGBUS;
  if (ctx.mm !== mm) throw new ModelError('handle_userfault', `cpu ${pc.id}, tid ${t.tid}: BUG_ON(ctx->mm != mm)`);
  if (ctx.features & UFFD_FEATURE_SIGBUS) return VM_FAULT_SIGBUS;
  const user = (vmf.flags & FAULT_FLAG_USER) !== 0;
  if (!user && ctx.flags & UFFD_USER_MODE_ONLY) return VM_FAULT_SIGBUS;
  if (!(vmf.flags & FAULT_FLAG_ALLOW_RETRY)) return VM_FAULT_SIGBUS;
  vmf.outcome = 'userfault';
  if (ctx.released) {
    // release_fault_lock
    yield* mmap_read_unlock(pc, mm);
    return VM_FAULT_RETRY;
  }
  ctx.refcount++;
  let flags = 0;
  if (vmf.flags & FAULT_FLAG_WRITE) flags |= UFFD_PAGEFAULT_FLAG_WRITE;
  if (reason & VM_UFFD_WP) flags |= UFFD_PAGEFAULT_FLAG_WP;
  if (reason === VM_UFFD_MINOR) flags |= UFFD_PAGEFAULT_FLAG_MINOR;
  const address = ctx.features & UFFD_FEATURE_EXACT_ADDRESS ? vmf.real_address : vmf.address;
  const uwq = new UserfaultWait(t, flags, address, ctx.features & UFFD_FEATURE_THREAD_ID ? t.tid : 0);
  yield* uffd_lock(pc, ctx, t);
  ctx.fault_pending_wqh.push(uwq);
  yield* uffd_unlock(pc, ctx);
  // userfaultfd_must_wait: a lockless look at the PTE.
  const must_wait = yield* userfaultfd_must_wait(vmf, reason);
  // release_fault_lock
  pc.touch = mmapLockId(mm);
  yield STEP_UNLOCK;
  mm.mmap_lock.readers--;
  // schedule() in the blocking state set when the fault was queued: it returns at once if a wake
  // came since (waken), or a signal that may interrupt it is pending.
  const interrupted = user ? signal_pending(t) : __fatal_signal_pending(t);
  if (must_wait && !ctx.released && !uwq.waken && !interrupted) {
    wake_readers(k, ctx);
    t.sleepKillableOnly = !user;
    t.state = 'sleeping';
    yield STEP_SLEEP;
    t.sleepKillableOnly = false;
  }
  // list_empty_careful: a wake took it off its queue; otherwise take it off under the lock.
  if (ctx.fault_pending_wqh.includes(uwq) || ctx.fault_wqh.includes(uwq)) {
    yield* uffd_lock(pc, ctx, t);
    remove(ctx.fault_pending_wqh, uwq);
    remove(ctx.fault_wqh, uwq);
    yield* uffd_unlock(pc, ctx);
  }
  userfaultfd_ctx_put(ctx);
  return VM_FAULT_RETRY;
}

/**
 * userfaultfd_must_wait: after the fault is queued, whether the PTE still needs the handler:
 * no PTE table, an empty entry, or (for a WP fault) a read-only one. One read step.
 */
function* userfaultfd_must_wait(vmf: vm_fault, reason: number): KSteps<boolean> {
  const { k, pc, mm } = vmf;
  const table = mm.pgtables.pteTable(vmf.address, false);
  if (table < 0) return true;
  const index = Math.floor(vmf.address / 4096) % 512;
  pc.touch = table * 4096 + index * 8;
  yield STEP_READ;
  const lo = k.machine.mem.readLo(table, index);
  const hi = k.machine.mem.readHi(table, index);
  if (pte_none(lo, hi)) return true;
  return !pte_write(lo, k.userShstk && vmf.vma.shadowStack) && (reason & VM_UFFD_WP) !== 0;
}

function remove<T>(list: T[], x: T): void {
  const i = list.indexOf(x);
  if (i >= 0) list.splice(i, 1);
}

/**
 * The wake of every fault waiting on the context in [start, start + len) (len 0: all), in one
 * step under the lock (__wake_userfault with userfaultfd_wake_function): each is marked waken,
 * taken off its queue and made runnable.
 */
function wake_range(k: Kernel, ctx: UserfaultfdCtx, start: number, len: number): void {
  for (const q of [ctx.fault_pending_wqh, ctx.fault_wqh]) {
    for (const uwq of [...q]) {
      if (len && (start > uwq.address || start + len <= uwq.address)) continue;
      uwq.waken = true;
      remove(q, uwq);
      wake_up_process(k, uwq.task);
    }
  }
}

/** wake_userfault: wakes the range's waiters, taking the lock only if any fault waits (waitqueue_active). */
export function* wake_userfault(k: Kernel, pc: PerCpu, t: Task, ctx: UserfaultfdCtx, start: number, len: number): KSteps<void> {
  if (ctx.fault_pending_wqh.length === 0 && ctx.fault_wqh.length === 0) return;
  yield* uffd_lock(pc, ctx, t);
  wake_range(k, ctx, start, len);
  yield* uffd_unlock(pc, ctx);
}

// ---------------------------------------------------------------------------------------------
// The ioctls.

/** userfaultfd_ioctl: every command but UFFDIO_API needs UFFDIO_API done first (-EINVAL); an unknown command is -EINVAL. */
function* userfaultfd_ioctl(k: Kernel, pc: PerCpu, t: Task, f: File, cmd: number, arg: bigint): KSteps<number> {
  const ctx = ctxOf(f);
  if (cmd !== UFFDIO_API && !userfaultfd_is_initialized(ctx)) return -EINVAL;
  switch (cmd) {
    case UFFDIO_API:
      return yield* userfaultfd_api(k, pc, t, ctx, arg);
    case UFFDIO_REGISTER:
      return yield* userfaultfd_register(k, pc, t, ctx, arg);
    case UFFDIO_UNREGISTER:
      return yield* userfaultfd_unregister(k, pc, t, ctx, arg);
    case UFFDIO_WAKE:
      return yield* userfaultfd_wake(k, pc, t, ctx, arg);
    case UFFDIO_COPY:
      return yield* userfaultfd_copy(k, pc, t, ctx, arg);
    case UFFDIO_ZEROPAGE:
      return yield* userfaultfd_zeropage(k, pc, t, ctx, arg);
    case UFFDIO_WRITEPROTECT:
      return yield* userfaultfd_writeprotect(k, pc, t, ctx, arg);
    case UFFDIO_CONTINUE:
      return yield* userfaultfd_continue(k, pc, t, ctx, arg);
  }
  return -EINVAL;
}

/**
 * userfaultfd_api: reads struct uffdio_api (-EFAULT); api other than UFFD_API (-EINVAL), then
 * EVENT_FORK without CAP_SYS_PTRACE (-EPERM); WP_ASYNC brings WP_UNPOPULATED; a feature not
 * offered (-EINVAL); writes back the features offered and UFFD_API_IOCTLS (-EFAULT); then the
 * handshake, once only (-EINVAL the second time). On -EINVAL and -EPERM the structure is
 * zeroed in user memory (-EFAULT if that fails).
 */
function* userfaultfd_api(k: Kernel, pc: PerCpu, t: Task, ctx: UserfaultfdCtx, arg: bigint): KSteps<number> {
  const b = yield* copy_from_user(k, pc, t, arg, 24);
  if (!b) return -EFAULT;
  let features = getU64(b, 8);
  let ret = 0;
  if (getU64(b, 0) !== BigInt(UFFD_API)) ret = -EINVAL;
  else if (features & BigInt(UFFD_FEATURE_EVENT_FORK) && !capable(t, CAP_SYS_PTRACE)) ret = -EPERM;
  else {
    if (features & BigInt(UFFD_FEATURE_WP_ASYNC)) features |= BigInt(UFFD_FEATURE_WP_UNPOPULATED);
    if (features & ~BigInt(UFFD_API_FEATURES)) ret = -EINVAL;
    else {
      putU64(b, 8, BigInt(UFFD_API_FEATURES));
      putU64(b, 16, UFFD_API_IOCTLS);
      if (!(yield* copy_to_user(k, pc, t, arg, b))) return -EFAULT;
      // cmpxchg(&ctx->features, 0, ...): under the context's lock in the model.
      yield* uffd_lock(pc, ctx, t);
      const first = ctx.features === 0;
      if (first) ctx.features = Number(features) | UFFD_FEATURE_INITIALIZED;
      yield* uffd_unlock(pc, ctx);
      if (first) return 0;
      ret = -EINVAL;
    }
  }
  // err_out
  if (!(yield* copy_to_user(k, pc, t, arg, new Uint8Array(24)))) return -EFAULT;
  return ret;
}

/**
 * validate_unaligned_range / validate_range: a length that is a non-zero multiple of the page
 * size, a start below TASK_SIZE with the range inside it and not wrapping (-EINVAL); with
 * `aligned`, a page-aligned start first.
 */
function validate_range(mm: MmStruct, start: bigint, len: bigint, aligned = true): number {
  if (aligned && start & 0xfffn) return -EINVAL;
  const task_size = BigInt(mm.task_size);
  if (len & 0xfffn) return -EINVAL;
  if (len === 0n) return -EINVAL;
  if (start >= task_size) return -EINVAL;
  if (len > task_size - start) return -EINVAL;
  return 0;
}

/**
 * userfaultfd_register: reads the range and mode (-EFAULT); mode 0 or unknown bits (-EINVAL);
 * the range (validate_range); then under mmap_lock for writing: no VMA in the range (-EINVAL),
 * and for every VMA in it, in order: vma_can_userfault (-EINVAL), VM_MAYWRITE (-EPERM), and
 * not another context's (-EBUSY). A hole between VMAs is not an error (6.12 checks none). Then
 * userfaultfd_register_range, and the ioctls the range takes are written back (WRITEPROTECT
 * only with MODE_WP, CONTINUE only with MODE_MINOR; -EFAULT if they cannot be).
 */
function* userfaultfd_register(k: Kernel, pc: PerCpu, t: Task, ctx: UserfaultfdCtx, arg: bigint): KSteps<number> {
  const mm = ctx.mm;
  const b = yield* copy_from_user(k, pc, t, arg, 24);
  if (!b) return -EFAULT;
  const mode = getU64(b, 16);
  if (mode === 0n) return -EINVAL;
  if (mode & ~BigInt(UFFD_API_REGISTER_MODES)) return -EINVAL;
  let vm_flags = 0;
  if (mode & BigInt(UFFDIO_REGISTER_MODE_MISSING)) vm_flags |= VM_UFFD_MISSING;
  if (mode & BigInt(UFFDIO_REGISTER_MODE_WP)) vm_flags |= VM_UFFD_WP;
  // VM_UFFD_MINOR (CONFIG_HAVE_ARCH_USERFAULTFD_MINOR on x86-64): Vma.uffdMinor.
  const minor = (mode & BigInt(UFFDIO_REGISTER_MODE_MINOR)) !== 0n;
  let ret = validate_range(mm, getU64(b, 0), getU64(b, 8));
  if (ret) return ret;
  const start = Number(getU64(b, 0));
  const end = start + Number(getU64(b, 8));
  // mmget_not_zero
  if (mm.mm_users === 0 || mm.dead) return -ENOMEM;
  yield* mmap_write_lock(k, pc, mm, t);
  ret = -EINVAL;
  const vma = mm.vmas.find_vma_intersection(start, end);
  if (vma) {
    ret = 0;
    for (const cur of mm.vmas.list) {
      if (cur.vm_end <= start || cur.vm_start >= end) continue;
      if (!!cur.vm_userfaultfd_ctx !== userfaultfd_armed(cur)) throw new ModelError('userfaultfd_register', 'BUG_ON(!!ctx ^ !!(vm_flags & __VM_UFFD_FLAGS))');
      if (!vma_can_userfault(cur, vm_flags, minor)) {
        ret = -EINVAL;
        break;
      }
      if (!(cur.vm_flags & VM_MAYWRITE)) {
        ret = -EPERM;
        break;
      }
      if (cur.vm_userfaultfd_ctx && cur.vm_userfaultfd_ctx !== ctx) {
        ret = -EBUSY;
        break;
      }
    }
    if (!ret) ret = userfaultfd_register_range(mm, ctx, vm_flags, minor, start, end);
  }
  yield* mmap_write_unlock(pc, mm);
  if (!ret) {
    let ioctls_out = UFFD_API_RANGE_IOCTLS;
    if (!(mode & BigInt(UFFDIO_REGISTER_MODE_WP))) ioctls_out &= ~(1 << _UFFDIO_WRITEPROTECT);
    // CONTINUE ioctl is only supported for MINOR ranges.
    if (!minor) ioctls_out &= ~(1 << _UFFDIO_CONTINUE);
    const out = new Uint8Array(8);
    putU64(out, 0, BigInt(ioctls_out));
    if (!(yield* copy_to_user(k, pc, t, arg + 24n, out))) ret = -EFAULT;
  }
  return ret;
}

/**
 * userfaultfd_unregister: reads the range (-EFAULT), validate_range, then under mmap_lock for
 * writing: no VMA in the range (-EINVAL), a VMA that could not be registered with the modes it
 * has (vma_can_userfault with its own flags: -EINVAL); then each
 * registered VMA in the range: a MISSING one's waiters in the range are woken, and the part in
 * the range loses its registration (userfaultfd_clear_vma: uffd-wp bits cleared, flags and
 * context reset, split and merged as needed).
 */
function* userfaultfd_unregister(k: Kernel, pc: PerCpu, t: Task, ctx: UserfaultfdCtx, arg: bigint): KSteps<number> {
  const mm = ctx.mm;
  const b = yield* copy_from_user(k, pc, t, arg, 16);
  if (!b) return -EFAULT;
  let ret = validate_range(mm, getU64(b, 0), getU64(b, 8));
  if (ret) return ret;
  let start = Number(getU64(b, 0));
  const end = start + Number(getU64(b, 8));
  if (mm.mm_users === 0 || mm.dead) return -ENOMEM;
  yield* mmap_write_lock(k, pc, mm, t);
  ret = -EINVAL;
  if (mm.vmas.find_vma_intersection(start, end)) {
    ret = 0;
    for (const cur of mm.vmas.list) {
      if (cur.vm_end <= start || cur.vm_start >= end) continue;
      if (!!cur.vm_userfaultfd_ctx !== userfaultfd_armed(cur)) throw new ModelError('userfaultfd_unregister', 'BUG_ON(!!ctx ^ !!(vm_flags & __VM_UFFD_FLAGS))');
      if (!vma_can_userfault(cur, cur.vm_flags, cur.uffdMinor)) {
        ret = -EINVAL;
        break;
      }
    }
    if (!ret) {
      for (let vma = mm.vmas.find_vma_intersection(start, end); vma && vma.vm_start < end; vma = mm.vmas.find_vma_intersection(start, end)) {
        if (vma.vm_userfaultfd_ctx) {
          if (vma.vm_start > start) start = vma.vm_start;
          const vma_end = Math.min(end, vma.vm_end);
          if (userfaultfd_missing(vma)) yield* wake_userfault(k, pc, t, vma.vm_userfaultfd_ctx, start, vma_end - start);
          vma = yield* userfaultfd_clear_vma(k, pc, t, mm, vma, start, vma_end);
        }
        start = vma.vm_end;
        if (start >= end) break;
      }
    }
  }
  yield* mmap_write_unlock(pc, mm);
  return ret;
}

/** userfaultfd_wake: reads the range (-EFAULT), validate_range, then wakes the faults waiting in it. */
function* userfaultfd_wake(k: Kernel, pc: PerCpu, t: Task, ctx: UserfaultfdCtx, arg: bigint): KSteps<number> {
  const b = yield* copy_from_user(k, pc, t, arg, 16);
  if (!b) return -EFAULT;
  const ret = validate_range(ctx.mm, getU64(b, 0), getU64(b, 8));
  if (ret) return ret;
  yield* wake_userfault(k, pc, t, ctx, Number(getU64(b, 0)), Number(getU64(b, 8)));
  return 0;
}

/**
 * The shape UFFDIO_COPY and UFFDIO_ZEROPAGE share: the result (bytes filled, or -errno) is
 * written back into the structure's last field at `resultAt` (-EFAULT if it cannot be); the
 * filled range's waiters are woken unless DONTWAKE; a partial fill is -EAGAIN.
 */
function* mfill_result(k: Kernel, pc: PerCpu, t: Task, ctx: UserfaultfdCtx, arg: bigint, resultAt: number, ret: number, start: number, len: number, dontwake: boolean): KSteps<number> {
  const out = new Uint8Array(8);
  putU64(out, 0, BigInt(ret));
  if (!(yield* copy_to_user(k, pc, t, arg + BigInt(resultAt), out))) return -EFAULT;
  if (ret < 0) return ret;
  if (!dontwake) yield* wake_userfault(k, pc, t, ctx, start, ret);
  return ret === len ? 0 : -EAGAIN;
}

/**
 * The first check of UFFDIO_COPY, ZEROPAGE and CONTINUE: while mmap_changing is raised (a
 * fork event not yet read) the ioctl is -EAGAIN, also written into the result field at
 * `resultAt` (-EFAULT if that fails). 0 otherwise.
 */
function* mmap_changing_check(k: Kernel, pc: PerCpu, t: Task, ctx: UserfaultfdCtx, arg: bigint, resultAt: number): KSteps<number> {
  if (!ctx.mmap_changing) return 0;
  const out = new Uint8Array(8);
  putU64(out, 0, BigInt(-EAGAIN));
  if (!(yield* copy_to_user(k, pc, t, arg + BigInt(resultAt), out))) return -EFAULT;
  return -EAGAIN;
}

/**
 * userfaultfd_copy: mmap_changing (-EAGAIN, written back); reads dst, src, len, mode
 * (-EFAULT); src range (unaligned allowed), then dst range (validate_range); mode bits other
 * than DONTWAKE and WP (-EINVAL); the mm gone (-ESRCH); then mfill_atomic_copy, its result
 * written to `copy`.
 */
function* userfaultfd_copy(k: Kernel, pc: PerCpu, t: Task, ctx: UserfaultfdCtx, arg: bigint): KSteps<number> {
  const changing = yield* mmap_changing_check(k, pc, t, ctx, arg, 32);
  if (changing) return changing;
  const b = yield* copy_from_user(k, pc, t, arg, 32);
  if (!b) return -EFAULT;
  const dst = getU64(b, 0);
  const src = getU64(b, 8);
  const len = getU64(b, 16);
  const mode = getU64(b, 24);
  let ret = validate_range(ctx.mm, src, len, false);
  if (ret) return ret;
  ret = validate_range(ctx.mm, dst, len);
  if (ret) return ret;
  if (mode & ~BigInt(UFFDIO_COPY_MODE_DONTWAKE | UFFDIO_COPY_MODE_WP)) return -EINVAL;
  if (ctx.mm.mm_users === 0 || ctx.mm.dead) return -ESRCH;
  const r = yield* mfill_atomic(k, pc, t, ctx, Number(dst), Number(src), Number(len), 'copy', (mode & BigInt(UFFDIO_COPY_MODE_WP)) !== 0n);
  return yield* mfill_result(k, pc, t, ctx, arg, 32, r, Number(dst), Number(len), (mode & BigInt(UFFDIO_COPY_MODE_DONTWAKE)) !== 0n);
}

/** userfaultfd_zeropage: as UFFDIO_COPY, with a range and only DONTWAKE; the zero page is mapped (a zeroed page in shared shmem). */
function* userfaultfd_zeropage(k: Kernel, pc: PerCpu, t: Task, ctx: UserfaultfdCtx, arg: bigint): KSteps<number> {
  const changing = yield* mmap_changing_check(k, pc, t, ctx, arg, 24);
  if (changing) return changing;
  const b = yield* copy_from_user(k, pc, t, arg, 24);
  if (!b) return -EFAULT;
  const start = getU64(b, 0);
  const len = getU64(b, 8);
  const mode = getU64(b, 16);
  const ret = validate_range(ctx.mm, start, len);
  if (ret) return ret;
  if (mode & ~BigInt(UFFDIO_ZEROPAGE_MODE_DONTWAKE)) return -EINVAL;
  if (ctx.mm.mm_users === 0 || ctx.mm.dead) return -ESRCH;
  const r = yield* mfill_atomic(k, pc, t, ctx, Number(start), 0, Number(len), 'zeropage', false);
  return yield* mfill_result(k, pc, t, ctx, arg, 24, r, Number(start), Number(len), (mode & BigInt(UFFDIO_ZEROPAGE_MODE_DONTWAKE)) !== 0n);
}

/**
 * userfaultfd_continue: mmap_changing (-EAGAIN, written back); reads the range and mode
 * (-EFAULT); validate_range; mode bits other than DONTWAKE and WP (-EINVAL); the mm gone
 * (-ESRCH); then mfill_atomic_continue (the page cache's pages mapped; MODE_WP asks for them
 * uffd-wp, which needs a VMA registered for WP: -EINVAL on shmem here, see the header), its
 * result written to `mapped` at offset 24, and the range's waiters woken unless DONTWAKE.
 */
function* userfaultfd_continue(k: Kernel, pc: PerCpu, t: Task, ctx: UserfaultfdCtx, arg: bigint): KSteps<number> {
  const changing = yield* mmap_changing_check(k, pc, t, ctx, arg, 24);
  if (changing) return changing;
  const b = yield* copy_from_user(k, pc, t, arg, 24);
  if (!b) return -EFAULT;
  const start = getU64(b, 0);
  const len = getU64(b, 8);
  const mode = getU64(b, 16);
  const ret = validate_range(ctx.mm, start, len);
  if (ret) return ret;
  if (mode & ~BigInt(UFFDIO_CONTINUE_MODE_DONTWAKE | UFFDIO_CONTINUE_MODE_WP)) return -EINVAL;
  if (ctx.mm.mm_users === 0 || ctx.mm.dead) return -ESRCH;
  const r = yield* mfill_atomic(k, pc, t, ctx, Number(start), 0, Number(len), 'continue', (mode & BigInt(UFFDIO_CONTINUE_MODE_WP)) !== 0n);
  return yield* mfill_result(k, pc, t, ctx, arg, 24, r, Number(start), Number(len), (mode & BigInt(UFFDIO_CONTINUE_MODE_DONTWAKE)) !== 0n);
}

/**
 * userfaultfd_writeprotect: mmap_changing (-EAGAIN); reads range and mode (-EFAULT);
 * validate_range; mode bits other than WP and DONTWAKE, then both together (-EINVAL); the mm
 * gone (-ESRCH); mwriteprotect_range; then, when protection was removed and DONTWAKE not
 * given, the range's waiters are woken.
 */
function* userfaultfd_writeprotect(k: Kernel, pc: PerCpu, t: Task, ctx: UserfaultfdCtx, arg: bigint): KSteps<number> {
  if (ctx.mmap_changing) return -EAGAIN;
  const b = yield* copy_from_user(k, pc, t, arg, 24);
  if (!b) return -EFAULT;
  const start = getU64(b, 0);
  const len = getU64(b, 8);
  const mode = getU64(b, 16);
  let ret = validate_range(ctx.mm, start, len);
  if (ret) return ret;
  if (mode & ~BigInt(UFFDIO_WRITEPROTECT_MODE_DONTWAKE | UFFDIO_WRITEPROTECT_MODE_WP)) return -EINVAL;
  const mode_wp = (mode & BigInt(UFFDIO_WRITEPROTECT_MODE_WP)) !== 0n;
  const mode_dontwake = (mode & BigInt(UFFDIO_WRITEPROTECT_MODE_DONTWAKE)) !== 0n;
  if (mode_wp && mode_dontwake) return -EINVAL;
  if (ctx.mm.mm_users === 0 || ctx.mm.dead) return -ESRCH;
  ret = yield* mwriteprotect_range(k, pc, t, ctx, Number(start), Number(len), mode_wp);
  if (ret) return ret;
  if (!mode_wp && !mode_dontwake) yield* wake_userfault(k, pc, t, ctx, Number(start), Number(len));
  return 0;
}

// ---------------------------------------------------------------------------------------------
// mremap: without UFFD_FEATURE_EVENT_REMAP (which the model does not offer) the registration stays behind.

/** vma_has_uffd_without_event_remap: registered with a context lacking UFFD_FEATURE_EVENT_REMAP (any registered VMA, in the model). */
export function vma_has_uffd_without_event_remap(vma: Vma): boolean {
  const ctx = vma.vm_userfaultfd_ctx;
  return ctx !== null && (ctx.features & UFFD_FEATURE_EVENT_REMAP) === 0;
}

/**
 * mremap_userfaultfd_prep (move_vma, once the page tables moved): without
 * UFFD_FEATURE_EVENT_REMAP the new VMA loses its context and VM_UFFD_* flags
 * (userfaultfd_reset_ctx). XXX: with it, 6.12 raises mmap_changing and queues UFFD_EVENT_REMAP
 * once mmap_lock is dropped (mremap_userfaultfd_complete); the model does not offer the feature.
 */
export function mremap_userfaultfd_prep(vma: Vma): void {
  const ctx = vma.vm_userfaultfd_ctx;
  if (!ctx) return;
  if (ctx.features & UFFD_FEATURE_EVENT_REMAP) throw new ModelError('mremap_userfaultfd_prep', 'UFFD_FEATURE_EVENT_REMAP granted, but the model never offers it');
  // Drop uffd context if remap feature not enabled.
  userfaultfd_reset_ctx(vma);
}

// ---------------------------------------------------------------------------------------------
// Fork: the non-cooperative UFFD_EVENT_FORK.

/** struct userfaultfd_fork_ctx: a parent context and the child's context made for it, on dup_mmap's list `uf`. */
export interface UserfaultfdForkCtx {
  orig: UserfaultfdCtx;
  new: UserfaultfdCtx;
}

/**
 * dup_userfaultfd (dup_mmap, for each copied VMA `vma` of the child `mm`, under both mmap
 * locks): a VMA registered with a context without UFFD_FEATURE_EVENT_FORK loses its context
 * and VM_UFFD_* flags (userfaultfd_reset_ctx). With it, the VMA keeps its flags and gets the
 * child's context for that parent context, made the first time (on `fcs`): the parent's flags
 * and features, the child's mm (mmgrab), one reference (for the descriptor the handler will
 * get); the parent context gets a reference and its mmap_changing raised until the event is
 * read. Returns 0 (XXX: the allocations do not fail in the model, so never -ENOMEM).
 */
export function dup_userfaultfd(k: Kernel, vma: Vma, mm: MmStruct, fcs: UserfaultfdForkCtx[]): number {
  const octx = vma.vm_userfaultfd_ctx;
  if (!octx) return 0;
  if (!(octx.features & UFFD_FEATURE_EVENT_FORK)) {
    userfaultfd_reset_ctx(vma);
    return 0;
  }
  let ctx = fcs.find((f) => f.orig === octx)?.new ?? null;
  if (!ctx) {
    ctx = new UserfaultfdCtx(k, k.nextObjectId(), octx.flags, mm);
    ctx.features = octx.features;
    mm.mm_count++;
    octx.refcount++;
    // down_write(&octx->map_changing_lock); atomic_inc(&octx->mmap_changing)
    octx.mmap_changing++;
    fcs.push({ orig: octx, new: ctx });
  }
  vma.vm_userfaultfd_ctx = ctx;
  return 0;
}

/**
 * dup_userfaultfd_complete (dup_mmap, after both mmap locks are dropped, the child not yet
 * running): for each context on `fcs`, a UFFD_EVENT_FORK carrying the child's context is queued
 * and the forking thread waits for it to be read (userfaultfd_event_wait_completion).
 */
export function* dup_userfaultfd_complete(k: Kernel, pc: PerCpu, t: Task, fcs: UserfaultfdForkCtx[]): KSteps<void> {
  for (const fctx of fcs) {
    // dup_fctx
    const ewq = new UserfaultEvent(t, UFFD_EVENT_FORK, fctx.new);
    yield* userfaultfd_event_wait_completion(k, pc, t, fctx.orig, ewq);
  }
  fcs.length = 0;
}

/**
 * dup_userfaultfd_fail (a failed dup_mmap): each parent context's mmap_changing is lowered and
 * both references dropped; the child's VMAs go with its mm.
 */
export function dup_userfaultfd_fail(fcs: UserfaultfdForkCtx[]): void {
  for (const fctx of fcs) {
    fctx.orig.mmap_changing--;
    if (fctx.orig.mmap_changing < 0) throw new ModelError('dup_userfaultfd_fail', 'VM_BUG_ON(atomic_read(&octx->mmap_changing) < 0)');
    userfaultfd_ctx_put(fctx.orig);
    userfaultfd_ctx_put(fctx.new);
  }
  fcs.length = 0;
}

/**
 * userfaultfd_event_wait_completion: the event is queued on the context's event_wqh; then, in
 * a killable sleep, the thread waits until the handler has read it (msg.event 0), waking the
 * readers before each sleep. A released context or a fatal signal ends the wait: the event is
 * dropped from wherever it is (a reader resolving it finds it gone) and a fork event's child
 * context is released (userfaultfd_release_new) and put. Then mmap_changing is lowered and the
 * event's reference on the context dropped. The test and the sleep are the unlock's step.
 */
function* userfaultfd_event_wait_completion(k: Kernel, pc: PerCpu, t: Task, ctx: UserfaultfdCtx, ewq: UserfaultEvent): KSteps<void> {
  let release_new_ctx: UserfaultfdCtx | null = null;
  yield* uffd_lock(pc, ctx, t);
  ctx.event_wqh.push(ewq);
  for (;;) {
    if (ewq.event === 0) break;
    if (ctx.released || __fatal_signal_pending(t)) {
      remove(ctx.event_wqh, ewq);
      ewq.aborted = true;
      if (ewq.event === UFFD_EVENT_FORK) release_new_ctx = ewq.newCtx;
      break;
    }
    // set_current_state(TASK_KILLABLE) came before the test: the unlock's step goes to sleep.
    yield* uffd_unlock(pc, ctx);
    wake_readers(k, ctx);
    t.sleepKillableOnly = true;
    t.state = 'sleeping';
    yield STEP_SLEEP;
    t.sleepKillableOnly = false;
    yield* uffd_lock(pc, ctx, t);
  }
  yield* uffd_unlock(pc, ctx);
  if (release_new_ctx) {
    yield* userfaultfd_release_new(k, pc, t, release_new_ctx);
    userfaultfd_ctx_put(release_new_ctx);
  }
  ctx.mmap_changing--;
  if (ctx.mmap_changing < 0) throw new ModelError('userfaultfd_event_wait_completion', 'VM_BUG_ON(atomic_read(&ctx->mmap_changing) < 0)');
  userfaultfd_ctx_put(ctx);
}

/** userfaultfd_release_new (mm/userfaultfd.c): under the child mm's mmap_lock for writing, its VMAs registered with `ctx` lose the registration. */
function* userfaultfd_release_new(k: Kernel, pc: PerCpu, t: Task, ctx: UserfaultfdCtx): KSteps<void> {
  const mm = ctx.mm;
  yield* mmap_write_lock(k, pc, mm, t);
  for (const vma of mm.vmas.list) if (vma.vm_userfaultfd_ctx === ctx) userfaultfd_reset_ctx(vma);
  yield* mmap_write_unlock(pc, mm);
}
