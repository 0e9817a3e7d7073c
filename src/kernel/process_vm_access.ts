/**
 * process_vm_readv and process_vm_writev (mm/process_vm_access.c): copies between the caller's
 * local iovecs and another process's remote ones, the remote pages pinned with
 * pin_user_pages_remote (FOLL_PIN | FOLL_TOUCH | FOLL_REMOTE, and FOLL_WRITE to write), so
 * neither the target's protection keys nor the caller's apply to the remote side, and a write
 * breaks COW in the target as its own store would (it needs VM_WRITE: no FOLL_FORCE). The
 * local side is an ordinary user copy under the caller's PKRU, SMAP and faults. A written page
 * is made dirty twice over, as Linux does: follow_page_pte's FOLL_TOUCH (set_page_dirty when
 * the entry is clean) and unpin_user_pages_dirty_lock, so a MADV_FREE'd page written this way
 * is kept by reclaim although its entry stays clean.
 *
 * A remote page in a userfaultfd range waits for the target's handler (FOLL_UNLOCKABLE: the
 * fault drops mmap_lock, and the page is tried again).
 *
 * XXX: no ptrace access check (mm_access's PTRACE_MODE_ATTACH_REALCREDS): the model's tasks
 * are root.
 */
import { FOLL_PIN, FOLL_REMOTE, FOLL_TOUCH, FOLL_TRIED, FOLL_UNLOCKABLE, FOLL_WRITE, GUP_UNLOCKED, GupHold, __get_user_page_locked, unpin_user_page } from './gup.js';
import type { Kernel, PerCpu } from './kernel.js';
import type { MmStruct } from './mm.js';
import { mmap_read_lock, mmap_read_unlock } from './mmap.js';
import { mmget_not_zero, mmput } from './mmput.js';
import { PG_dirty } from './page.js';
import { import_iovec, iovec_from_user, type Iovec } from './splice.js';
import { STEP_COPY, type KPath, type KSteps } from './steps.js';
import type { Task } from './task.js';
import { copy_from_user_partial, copy_to_user_partial } from './uaccess.js';
import { __fatal_signal_pending } from './signal.js';
import { EFAULT, EINTR, EINVAL, ESRCH } from './uapi.js';

const PAGE_SIZE = 4096;
/** PVM_MAX_USER_PAGES: the most pages pinned at a time (two pages of struct page pointers). */
const PVM_MAX_USER_PAGES = (2 * PAGE_SIZE) / 8;

/** An iov_iter over the local iovecs: the segment and offset reached, and the bytes left. */
interface IovIter {
  iov: Iovec;
  seg: number;
  off: number;
  count: number;
}

/** iov_iter_advance by `n` bytes. */
function iov_iter_advance(i: IovIter, n: number): void {
  i.count -= n;
  while (n > 0) {
    const left = i.iov.segs[i.seg][1] - i.off;
    if (n < left) {
      i.off += n;
      return;
    }
    n -= left;
    i.seg++;
    i.off = 0;
  }
  while (i.seg < i.iov.segs.length && i.iov.segs[i.seg][1] === 0) i.seg++;
}

/**
 * copy_page_to_iter / copy_page_from_iter: up to `len` bytes between the physical address `pa`
 * and the local segments from where the iterator stands, segment by segment, each a user copy
 * that stops at the first fault. Returns the bytes copied; the iterator moves past them.
 */
function* copy_page_iter(k: Kernel, pc: PerCpu, t: Task, pa: number, len: number, i: IovIter, vm_write: boolean): KSteps<number> {
  let done = 0;
  while (done < len && i.count > 0) {
    const [base, seglen] = i.iov.segs[i.seg];
    const n = Math.min(len - done, seglen - i.off);
    const uaddr = base + BigInt(i.off);
    let got: number;
    if (vm_write) {
      const data = yield* copy_from_user_partial(k, pc, t, uaddr, n);
      pc.touch = pa + done;
      yield STEP_COPY;
      k.machine.mem.writeBytes(pa + done, data);
      got = data.length;
    } else {
      pc.touch = pa + done;
      yield STEP_COPY;
      got = n - (yield* copy_to_user_partial(k, pc, t, uaddr, k.machine.mem.readBytes(pa + done, n)));
    }
    iov_iter_advance(i, got);
    done += got;
    if (got < n) break;
  }
  return done;
}

/**
 * pin_user_pages_remote (__get_user_pages_locked with FOLL_UNLOCKABLE): up to `nr_pages` pages
 * of `mm` from `start`, under its mmap_lock for reading, each through __get_user_page_locked
 * with FOLL_PIN | FOLL_TOUCH | FOLL_REMOTE and `gup_flags`. A fault that dropped the lock (a
 * userfault that waited for its handler) is retried on the same page with FOLL_TRIED once the
 * lock is taken again, unless a fatal signal is pending (-EINTR if nothing was pinned). Stops at
 * the first page it cannot have. Returns the pinned pages' physical addresses, or -errno when
 * not even the first could be had; mmap_lock is released either way.
 */
function* pin_user_pages_remote(k: Kernel, pc: PerCpu, t: Task, mm: MmStruct, start: number, nr_pages: number, gup_flags: number, hold: GupHold): KSteps<number[] | number> {
  const pages: number[] = [];
  let locked = false;
  let tried = 0;
  while (pages.length < nr_pages) {
    if (!locked) {
      if (tried && __fatal_signal_pending(t)) return pages.length ? pages : -EINTR;
      yield* mmap_read_lock(k, pc, mm);
      locked = true;
    }
    const addr = start + pages.length * PAGE_SIZE;
    const flags = gup_flags | FOLL_PIN | FOLL_TOUCH | FOLL_REMOTE | FOLL_UNLOCKABLE | tried;
    const pa = addr < mm.task_size ? yield* __get_user_page_locked(k, pc, t, mm, addr, flags, hold) : -EFAULT;
    if (pa === GUP_UNLOCKED) {
      locked = false;
      tried = FOLL_TRIED;
      continue;
    }
    tried = 0;
    if (pa < 0) {
      if (pages.length === 0) {
        yield* mmap_read_unlock(pc, mm);
        return pa;
      }
      break;
    }
    pages.push(pa - (pa % PAGE_SIZE));
  }
  if (locked) yield* mmap_read_unlock(pc, mm);
  return pages;
}

/** unpin_user_pages_dirty_lock: each page made dirty first if asked (set_page_dirty_lock: PG_dirty), then unpinned. */
function unpin_user_pages_dirty_lock(k: Kernel, pages: number[], make_dirty: boolean, hold: GupHold): void {
  for (const pa of pages) {
    const pfn = pa / PAGE_SIZE;
    if (make_dirty) k.pages.flags[pfn] |= PG_dirty;
    unpin_user_page(k, pfn, hold);
  }
}

/**
 * process_vm_rw_single_vec: the remote range [addr, addr+len) a batch of at most
 * PVM_MAX_USER_PAGES pages at a time: pin the batch (none pinned: -EFAULT), copy it page by
 * page (a local fault with bytes still wanted: -EFAULT), unpin it, dirtying it for a write.
 */
function* process_vm_rw_single_vec(k: Kernel, pc: PerCpu, t: Task, addr: bigint, len: bigint, iter: IovIter, mm: MmStruct, vm_write: boolean): KSteps<number> {
  if (len === 0n) return 0;
  let pa = addr - (addr % BigInt(PAGE_SIZE));
  let start_offset = Number(addr - pa);
  let nr_pages = Number((addr + len - 1n) / BigInt(PAGE_SIZE) - addr / BigInt(PAGE_SIZE) + 1n);
  let rest = len;
  let rc = 0;
  while (!rc && nr_pages && iter.count) {
    const hold = new GupHold();
    const pages = pa < BigInt(mm.task_size) ? yield* pin_user_pages_remote(k, pc, t, mm, Number(pa), Math.min(nr_pages, PVM_MAX_USER_PAGES), vm_write ? FOLL_WRITE : 0, hold) : -EFAULT;
    if (typeof pages === 'number') return -EFAULT;
    let bytes = BigInt(pages.length * PAGE_SIZE - start_offset);
    if (bytes > rest) bytes = rest;
    // process_vm_rw_pages
    let left = Number(bytes);
    let offset = start_offset;
    for (const page of pages) {
      if (!left || !iter.count) break;
      const copy = Math.min(PAGE_SIZE - offset, left);
      const copied = yield* copy_page_iter(k, pc, t, page + offset, copy, iter, vm_write);
      left -= copied;
      if (copied < copy && iter.count) {
        rc = -EFAULT;
        break;
      }
      offset = 0;
    }
    rest -= bytes;
    start_offset = 0;
    nr_pages -= pages.length;
    pa += BigInt(pages.length * PAGE_SIZE);
    unpin_user_pages_dirty_lock(k, pages, vm_write, hold);
  }
  return rc;
}

/**
 * process_vm_rw: flags must be 0 (-EINVAL); the local iovecs imported (import_iovec: -EINVAL,
 * -EFAULT), nothing to move is 0; the remote ones read (iovec_from_user: more than UIO_MAXIOV
 * or a negative length -EINVAL, unreadable -EFAULT); no remote page at all is 0; the target
 * (-ESRCH, also for one without an mm); then each remote iovec in order while local room is
 * left and nothing failed. Returns the bytes moved if any, else the error (or 0).
 */
function* process_vm_rw(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[], vm_write: boolean): KPath {
  const [pidArg, lvec, liovcnt, rvec, riovcnt, flags] = a;
  if (flags !== 0n) return -EINVAL;
  // import_iovec takes an unsigned int count: liovcnt is cut to 32 bits.
  const local = yield* import_iovec(k, pc, t, lvec, Number(liovcnt & 0xffffffffn));
  if (typeof local === 'number') return local;
  if (!local.total) return 0;
  const remote = yield* iovec_from_user(k, pc, t, rvec, riovcnt);
  if (typeof remote === 'number') return remote;
  // The pages the longest remote iovec spans: none at all (every length 0) is 0 before the target is looked up.
  if (!remote.some(([, len]) => len > 0n)) return 0;
  const target = k.find_task_by_vpid(Number(BigInt.asIntN(32, pidArg)));
  if (!target) return -ESRCH;
  // mm_access (get_task_mm): a user of the target's mm, which then outlives the target's exit.
  const mm = target.state === 'zombie' || target.state === 'dead' ? null : target.mm;
  if (!mm || !mmget_not_zero(mm)) return -ESRCH;
  const iter: IovIter = { iov: local, seg: 0, off: 0, count: local.total };
  while (iter.seg < local.segs.length && local.segs[iter.seg][1] === 0) iter.seg++;
  let rc = 0;
  for (let i = 0; i < remote.length && iter.count && !rc; i++) rc = yield* process_vm_rw_single_vec(k, pc, t, remote[i][0], remote[i][1], iter, mm, vm_write);
  const total = local.total - iter.count;
  yield* mmput(k, pc, mm);
  return total ? total : rc;
}

/** process_vm_readv(pid, lvec, liovcnt, rvec, riovcnt, flags): from the target's remote ranges into the caller's local ones. */
export function sys_process_vm_readv(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  return process_vm_rw(k, pc, t, a, false);
}

/** process_vm_writev(pid, lvec, liovcnt, rvec, riovcnt, flags): from the caller's local ranges into the target's remote ones. */
export function sys_process_vm_writev(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  return process_vm_rw(k, pc, t, a, true);
}
