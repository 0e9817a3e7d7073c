/**
 * splice and vmsplice (fs/splice.c), and the splice operations of the model's files
 * (shmem_file_splice_read in mm/shmem.c, copy_splice_read, iter_file_splice_write,
 * splice_write_null in drivers/char/mem.c).
 *
 * vmsplice to a pipe puts the caller's own pages into it by reference (iov_iter_get_pages2:
 * get_user_pages_fast, FOLL_GET, with the caller's protection keys checked), so the reader
 * later gets whatever the pages hold then: the process's later stores show, unless a COW
 * fault has moved the process to a copy. That fault is the point of the 6.12 rules: after
 * fork the page is no longer PageAnonExclusive, and the pipe's reference makes its count
 * above one, so a write copies and the pipe keeps the old bytes (the fix for CVE-2020-29374,
 * where a child could read what its parent wrote later). vmsplice from a pipe copies to the
 * user like a read.
 *
 * splice moves data between a pipe and a file, or two pipes, without a user buffer: from a
 * tmpfs file the pipe gets references to its page cache (holes as the zero page), from
 * /dev/zero new zeroed pages; into a tmpfs file the pipe's pages are copied (the file's write
 * path under inode_lock), into /dev/null and /dev/zero they are dropped; between pipes whole
 * buffers move, and part of one is shared by reference.
 *
 * tee duplicates what one pipe holds into another by reference (link_pipe), leaving the input
 * pipe as it was: the two readers then read the same pages.
 *
 * XXX: no SPLICE_F_MOVE page stealing (a gift is accepted and never stolen), and no
 * splice between two non-pipes (the kernel's own splice_direct_to_actor, for sendfile).
 */
import type { File } from './file.js';
import { fdArg, fdget, FMODE_PREAD, FMODE_PWRITE, FMODE_READ, FMODE_WRITE } from './file.js';
import { FOLL_GET, get_user_page, GupHold, gup_put_page, gup_unhold } from './gup.js';
import type { Kernel, PerCpu } from './kernel.js';
import {
  get_pipe_info, pipe_buf, pipe_buf_get, pipe_buf_release, pipe_empty, pipe_full, pipe_lock, pipe_occupancy, pipe_unlock, pipe_writable, send_sigpipe,
  PIPE_BUF_FLAG_CAN_MERGE, PIPE_BUF_FLAG_GIFT, PipeBuffer, type PipeBufOps, type PipeInodeInfo,
} from './pipe.js';
import { MAX_RW_COUNT, shmem_file_write_iter } from './read_write.js';
import { ERESTARTSYS, signal_pending } from './signal.js';
import { STEP_COPY, type KPath, type KSteps } from './steps.js';
import type { Task } from './task.js';
import { access_ok, copy_from_user, copy_from_user_partial, copy_to_user, copy_to_user_partial, getU64, putU64 } from './uaccess.js';
import { EAGAIN, EBADF, EFAULT, EINVAL, ENOMEM, EPIPE, ESPIPE, O_APPEND, O_DIRECT, O_NONBLOCK, SPLICE_F_GIFT, SPLICE_F_MORE, SPLICE_F_MOVE, SPLICE_F_NONBLOCK } from './uapi.js';
import { wait_event_interruptible, wake_up } from './wait.js';

const PAGE_SIZE = 4096;
/** SPLICE_F_ALL: the flags splice and vmsplice know. */
const SPLICE_F_ALL = SPLICE_F_MOVE | SPLICE_F_NONBLOCK | SPLICE_F_MORE | SPLICE_F_GIFT;
/** UIO_MAXIOV: the most iovecs one call may pass. */
const UIO_MAXIOV = 1024;

/** An imported iovec array: each segment's base and length, and their total (at most MAX_RW_COUNT). */
export interface Iovec {
  segs: [bigint, number][];
  total: number;
}

/**
 * iovec_from_user: `nr_segs` struct iovec at `uvec` as they are (no access_ok of the bases, no
 * MAX_RW_COUNT cut): none is an empty list; more than UIO_MAXIOV is -EINVAL; each is read in
 * turn (copy_iovec_from_user), its length first, so a length negative as ssize_t is -EINVAL
 * unless an earlier iovec was unreadable (-EFAULT).
 */
export function* iovec_from_user(k: Kernel, pc: PerCpu, t: Task, uvec: bigint, nr_segs: bigint): KSteps<[bigint, bigint][] | number> {
  if (nr_segs === 0n) return [];
  if (nr_segs > BigInt(UIO_MAXIOV)) return -EINVAL;
  const n = Number(nr_segs);
  const b = yield* copy_from_user_partial(k, pc, t, uvec, 16 * n);
  const segs: [bigint, bigint][] = [];
  for (let i = 0; i < n; i++) {
    if (b.length < 16 * i + 16) return -EFAULT;
    const len = BigInt.asIntN(64, getU64(b, 16 * i + 8));
    if (len < 0n) return -EINVAL;
    segs.push([getU64(b, 16 * i), len]);
  }
  return segs;
}

/**
 * import_iovec: iovec_from_user, then each segment in user space (access_ok, -EFAULT), the
 * lengths cut so that the total is at most MAX_RW_COUNT. One segment is import_ubuf's case,
 * with no UIO_MAXIOV question.
 */
export function* import_iovec(k: Kernel, pc: PerCpu, t: Task, uvec: bigint, nr_segs: number): KSteps<Iovec | number> {
  const iov = yield* iovec_from_user(k, pc, t, uvec, BigInt(nr_segs));
  if (typeof iov === 'number') return iov;
  const segs: [bigint, number][] = [];
  let total = 0;
  for (const [base, len] of iov) {
    let n = len > BigInt(MAX_RW_COUNT) ? MAX_RW_COUNT : Number(len);
    if (!access_ok(t, base, n)) return -EFAULT;
    if (n > MAX_RW_COUNT - total) n = MAX_RW_COUNT - total;
    segs.push([base, n]);
    total += n;
  }
  return { segs, total };
}

/** wakeup_pipe_readers. */
function wakeup_pipe_readers(k: Kernel, pipe: PipeInodeInfo): void {
  wake_up(k, pipe.rd_wait);
}

/** wakeup_pipe_writers. */
function wakeup_pipe_writers(k: Kernel, pipe: PipeInodeInfo): void {
  wake_up(k, pipe.wr_wait);
}

/** pipe_wait_readable: the mutex dropped for a sleep until there is data or no writer (interruptible). */
function* pipe_wait_readable(pc: PerCpu, t: Task, pipe: PipeInodeInfo): KSteps<void> {
  yield* pipe_unlock(pc, pipe);
  yield* wait_event_interruptible(t, pipe.rd_wait, () => !pipe_empty(pipe.head, pipe.tail) || pipe.writers === 0);
  yield* pipe_lock(pc, t, pipe);
}

/** pipe_wait_writable: the mutex dropped for a sleep until there is room or no reader (interruptible). */
function* pipe_wait_writable(pc: PerCpu, t: Task, pipe: PipeInodeInfo): KSteps<void> {
  yield* pipe_unlock(pc, pipe);
  yield* wait_event_interruptible(t, pipe.wr_wait, () => pipe_writable(pipe));
  yield* pipe_lock(pc, t, pipe);
}

/** wait_for_space, under the mutex: no reader is SIGPIPE and -EPIPE; room is 0; else -EAGAIN (SPLICE_F_NONBLOCK), -ERESTARTSYS, or a sleep. */
function* wait_for_space(k: Kernel, pc: PerCpu, t: Task, pipe: PipeInodeInfo, flags: number): KSteps<number> {
  for (;;) {
    if (!pipe.readers) {
      send_sigpipe(k, t);
      return -EPIPE;
    }
    if (!pipe_full(pipe.head, pipe.tail, pipe.max_usage)) return 0;
    if (flags & SPLICE_F_NONBLOCK) return -EAGAIN;
    if (signal_pending(t)) return -ERESTARTSYS;
    yield* pipe_wait_writable(pc, t, pipe);
  }
}

/** add_to_pipe, under the mutex: no reader is SIGPIPE and -EPIPE, a full pipe -EAGAIN (the buffer is released either way); else the buffer goes in at the head. */
function add_to_pipe(k: Kernel, t: Task, pipe: PipeInodeInfo, buf: PipeBuffer): number {
  let ret: number;
  if (!pipe.readers) {
    send_sigpipe(k, t);
    ret = -EPIPE;
  } else if (pipe_full(pipe.head, pipe.tail, pipe.max_usage)) {
    ret = -EAGAIN;
  } else {
    pipe_buf(pipe, pipe.head).assign(buf);
    pipe.head++;
    return buf.len;
  }
  pipe_buf_release(pipe, buf);
  return ret;
}

/** A struct pipe_buffer on the stack, not in any ring: filled in, then copied into one. */
function stack_buf(page: number, offset: number, len: number, ops: PipeBufOps, flags: number): PipeBuffer {
  const b = new PipeBuffer();
  b.page = page;
  b.offset = offset;
  b.len = len;
  b.ops = ops;
  b.flags = flags;
  return b;
}

/**
 * iter_to_pipe: the user's pages, up to 16 at a time as iov_iter_get_pages2 takes them
 * (get_user_pages_fast: FOLL_GET, the caller's protection keys checked), each added to the
 * pipe as a user-page buffer; a page GUP cannot give ends the splice, later segments
 * untried (-EFAULT if it is the first), and so does a full pipe (the pages taken and not added are put back).
 */
function* iter_to_pipe(k: Kernel, pc: PerCpu, t: Task, iov: Iovec, pipe: PipeInodeInfo, buf_flags: number): KSteps<number> {
  let total = 0;
  let ret = 0;
  const hold = new GupHold();
  outer: for (const [base, len] of iov.segs) {
    let off = 0;
    while (off < len) {
      // iov_iter_get_pages2: up to 16 pages of this segment from base + off (get_user_pages_fast).
      const addr = base + BigInt(off);
      const start = Number(addr % BigInt(PAGE_SIZE));
      const npages = Math.min(16, Math.ceil((start + len - off) / PAGE_SIZE));
      const pfns: number[] = [];
      let err = -EFAULT;
      for (let i = 0; i < npages; i++) {
        const va = addr - BigInt(start) + BigInt(i * PAGE_SIZE);
        const pa = va < BigInt(t.mm!.task_size) ? yield* get_user_page(k, pc, t, t.mm!, Number(va), FOLL_GET, hold) : -EFAULT;
        if (pa < 0) {
          err = pa;
          break;
        }
        pfns.push(Math.floor(pa / PAGE_SIZE));
      }
      if (pfns.length === 0) {
        // iov_iter_get_pages2 gave nothing: the whole splice ends here, later segments untried.
        ret = err;
        break outer;
      }
      let left = Math.min(len - off, pfns.length * PAGE_SIZE - start);
      let offset = start;
      for (let i = 0; i < pfns.length; i++) {
        const size = Math.min(left, PAGE_SIZE - offset);
        gup_unhold(k, hold, pfns[i], false);
        const r = add_to_pipe(k, t, pipe, stack_buf(pfns[i], offset, size, 'user_page', buf_flags));
        if (r < 0) {
          ret = r;
          // The pages taken and not added are put back.
          for (const p of pfns.slice(i + 1)) gup_put_page(k, p, hold);
          break outer;
        }
        total += r;
        left -= size;
        off += size;
        offset = 0;
      }
    }
  }
  return total ? total : ret;
}

/**
 * vmsplice_to_pipe: under the mutex, wait_for_space (a file's O_NONBLOCK does not count, only
 * SPLICE_F_NONBLOCK), then iter_to_pipe; readers are woken if anything went in. SPLICE_F_GIFT
 * marks the buffers as gifts.
 */
function* vmsplice_to_pipe(k: Kernel, pc: PerCpu, t: Task, file: File, iov: Iovec, flags: number): KSteps<number> {
  const buf_flag = flags & SPLICE_F_GIFT ? PIPE_BUF_FLAG_GIFT : 0;
  const pipe = get_pipe_info(file, true);
  if (!pipe) return -EBADF;
  yield* pipe_lock(pc, t, pipe);
  let ret = yield* wait_for_space(k, pc, t, pipe, flags);
  if (!ret) ret = yield* iter_to_pipe(k, pc, t, iov, pipe, buf_flag);
  yield* pipe_unlock(pc, pipe);
  if (ret > 0) wakeup_pipe_readers(k, pipe);
  return ret;
}

/** What splice_from_pipe's actor does with `len` bytes of a buffer: the bytes used or -errno. */
type SpliceActor = (buf: PipeBuffer, len: number, sd: SpliceDesc) => KSteps<number>;

/** struct splice_desc: what is left to splice, what was, the position, and whether writers need waking. */
interface SpliceDesc {
  total_len: number;
  num_spliced: number;
  pos: number;
  flags: number;
  need_wakeup: boolean;
}

/**
 * splice_from_pipe_next, under the mutex: 1 once a buffer with data is there; 0 with no
 * writer left or once something was spliced; -EAGAIN (SPLICE_F_NONBLOCK) or -ERESTARTSYS
 * (a signal, checked first too); else writers are woken if owed and the task sleeps.
 */
function* splice_from_pipe_next(k: Kernel, pc: PerCpu, t: Task, pipe: PipeInodeInfo, sd: SpliceDesc): KSteps<number> {
  if (signal_pending(t)) return -ERESTARTSYS;
  for (;;) {
    while (pipe_empty(pipe.head, pipe.tail)) {
      if (!pipe.writers) return 0;
      if (sd.num_spliced) return 0;
      if (sd.flags & SPLICE_F_NONBLOCK) return -EAGAIN;
      if (signal_pending(t)) return -ERESTARTSYS;
      if (sd.need_wakeup) {
        wakeup_pipe_writers(k, pipe);
        sd.need_wakeup = false;
      }
      yield* pipe_wait_readable(pc, t, pipe);
    }
    // eat_empty_buffer
    const b = pipe_buf(pipe, pipe.tail);
    if (b.len === 0) {
      pipe_buf_release(pipe, b);
      pipe.tail++;
      continue;
    }
    return 1;
  }
}

/** splice_from_pipe_feed: buffers from the tail through the actor until `total_len` is spent (0) or the pipe is empty (1); an actor's error ends it. */
function* splice_from_pipe_feed(pipe: PipeInodeInfo, sd: SpliceDesc, actor: SpliceActor): KSteps<number> {
  while (!pipe_empty(pipe.head, pipe.tail)) {
    const b = pipe_buf(pipe, pipe.tail);
    const len = Math.min(b.len, sd.total_len);
    const ret = yield* actor(b, len, sd);
    if (ret <= 0) return ret;
    b.offset += ret;
    b.len -= ret;
    sd.num_spliced += ret;
    sd.pos += ret;
    sd.total_len -= ret;
    if (!b.len) {
      pipe_buf_release(pipe, b);
      pipe.tail++;
      if (pipe.files) sd.need_wakeup = true;
    }
    if (!sd.total_len) return 0;
  }
  return 1;
}

/** __splice_from_pipe, under the mutex: next and feed until done; writers woken if buffers were freed. The bytes spliced, or the error. */
function* __splice_from_pipe(k: Kernel, pc: PerCpu, t: Task, pipe: PipeInodeInfo, sd: SpliceDesc, actor: SpliceActor): KSteps<number> {
  let ret: number;
  do {
    ret = yield* splice_from_pipe_next(k, pc, t, pipe, sd);
    if (ret > 0) ret = yield* splice_from_pipe_feed(pipe, sd, actor);
  } while (ret > 0);
  if (sd.need_wakeup) wakeup_pipe_writers(k, pipe);
  return sd.num_spliced ? sd.num_spliced : ret;
}

/**
 * vmsplice_to_user: the pipe's bytes copied to the user's segments under the mutex
 * (__splice_from_pipe with pipe_to_user: a short copy is -EFAULT).
 */
function* vmsplice_to_user(k: Kernel, pc: PerCpu, t: Task, file: File, iov: Iovec, flags: number): KSteps<number> {
  const pipe = get_pipe_info(file, true);
  if (!pipe) return -EBADF;
  const sd: SpliceDesc = { total_len: iov.total, num_spliced: 0, pos: 0, flags, need_wakeup: false };
  if (!sd.total_len) return 0;
  // The iov_iter: where the next byte goes.
  let seg = 0;
  let segOff = 0;
  const pipe_to_user: SpliceActor = function* (b, len) {
    const bytes = k.machine.mem.readBytes(b.page * PAGE_SIZE + b.offset, len);
    let done = 0;
    while (done < len) {
      while (iov.segs[seg][1] - segOff === 0) {
        seg++;
        segOff = 0;
      }
      const n = Math.min(len - done, iov.segs[seg][1] - segOff);
      const left = yield* copy_to_user_partial(k, pc, t, iov.segs[seg][0] + BigInt(segOff), bytes.subarray(done, done + n));
      done += n - left;
      segOff += n - left;
      if (left) break;
    }
    return done === len ? len : -EFAULT;
  };
  yield* pipe_lock(pc, t, pipe);
  const ret = yield* __splice_from_pipe(k, pc, t, pipe, sd, pipe_to_user);
  yield* pipe_unlock(pc, pipe);
  return ret;
}

/**
 * vmsplice(fd, uiov, nr_segs, flags): unknown flags -EINVAL; the descriptor (-EBADF) open for
 * writing (to the pipe) or else reading (from it), neither -EBADF; the iovecs (import_iovec);
 * nothing to move is 0; a file that is not a pipe -EBADF.
 */
export function* sys_vmsplice(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  const flags = Number(a[3] & 0xffffffffn);
  if (flags & ~SPLICE_F_ALL) return -EINVAL;
  const f = fdget(t, fdArg(a[0]));
  if (!f) return -EBADF;
  const toPipe = (f.f_mode & FMODE_WRITE) !== 0;
  if (!toPipe && !(f.f_mode & FMODE_READ)) return -EBADF;
  // import_iovec takes nr_segs as an unsigned int.
  const iov = yield* import_iovec(k, pc, t, a[1], Number(a[2] & 0xffffffffn));
  if (typeof iov === 'number') return iov;
  if (!iov.total) return 0;
  return toPipe ? yield* vmsplice_to_pipe(k, pc, t, f, iov, flags) : yield* vmsplice_to_user(k, pc, t, f, iov, flags);
}

/**
 * ipipe_prep: 0 once the input pipe has data (or has no writer), -ERESTARTSYS or -EAGAIN
 * (SPLICE_F_NONBLOCK) otherwise, sleeping for data meanwhile.
 */
function* ipipe_prep(pc: PerCpu, t: Task, pipe: PipeInodeInfo, flags: number): KSteps<number> {
  if (!pipe_empty(pipe.head, pipe.tail)) return 0;
  let ret = 0;
  yield* pipe_lock(pc, t, pipe);
  while (pipe_empty(pipe.head, pipe.tail)) {
    if (signal_pending(t)) {
      ret = -ERESTARTSYS;
      break;
    }
    if (!pipe.writers) break;
    if (flags & SPLICE_F_NONBLOCK) {
      ret = -EAGAIN;
      break;
    }
    yield* pipe_wait_readable(pc, t, pipe);
  }
  yield* pipe_unlock(pc, pipe);
  return ret;
}

/** opipe_prep: 0 once the output pipe has room; no reader is SIGPIPE and -EPIPE; -EAGAIN or -ERESTARTSYS otherwise, sleeping for room meanwhile. */
function* opipe_prep(k: Kernel, pc: PerCpu, t: Task, pipe: PipeInodeInfo, flags: number): KSteps<number> {
  if (!pipe_full(pipe.head, pipe.tail, pipe.max_usage)) return 0;
  let ret = 0;
  yield* pipe_lock(pc, t, pipe);
  while (pipe_full(pipe.head, pipe.tail, pipe.max_usage)) {
    if (!pipe.readers) {
      send_sigpipe(k, t);
      ret = -EPIPE;
      break;
    }
    if (flags & SPLICE_F_NONBLOCK) {
      ret = -EAGAIN;
      break;
    }
    if (signal_pending(t)) {
      ret = -ERESTARTSYS;
      break;
    }
    yield* pipe_wait_writable(pc, t, pipe);
  }
  yield* pipe_unlock(pc, pipe);
  return ret;
}

/** pipe_double_lock: both mutexes, the lower-numbered pipe's first (the kernel orders by address). */
function* pipe_double_lock(pc: PerCpu, t: Task, a: PipeInodeInfo, b: PipeInodeInfo): KSteps<void> {
  const [first, second] = a.inode.ino < b.inode.ino ? [a, b] : [b, a];
  yield* pipe_lock(pc, t, first);
  yield* pipe_lock(pc, t, second);
}

/**
 * splice_pipe_to_pipe: waits for input and room (ipipe_prep, opipe_prep), then under both
 * mutexes moves whole buffers from the input's tail to the output's head, and for the last,
 * partial one gives the output a reference to part of the page (no gift, no merging). No
 * reader of the output: SIGPIPE and -EPIPE (or the bytes so far); an empty input with no
 * writer ends it; no progress at all retries from the waits (or -EAGAIN).
 */
function* splice_pipe_to_pipe(k: Kernel, pc: PerCpu, t: Task, ipipe: PipeInodeInfo, opipe: PipeInodeInfo, len: number, flags: number): KSteps<number> {
  let ret = 0;
  let input_wakeup = false;
  for (;;) {
    ret = yield* ipipe_prep(pc, t, ipipe, flags);
    if (ret) return ret;
    ret = yield* opipe_prep(k, pc, t, opipe, flags);
    if (ret) return ret;
    yield* pipe_double_lock(pc, t, ipipe, opipe);
    let i_tail = ipipe.tail;
    let o_head = opipe.head;
    let retry = false;
    do {
      if (!opipe.readers) {
        send_sigpipe(k, t);
        if (!ret) ret = -EPIPE;
        break;
      }
      const i_head = ipipe.head;
      const o_tail = opipe.tail;
      if (pipe_empty(i_head, i_tail) && !ipipe.writers) break;
      if (pipe_empty(i_head, i_tail) || pipe_full(o_head, o_tail, opipe.max_usage)) {
        if (ret) break;
        if (flags & SPLICE_F_NONBLOCK) {
          ret = -EAGAIN;
          break;
        }
        retry = true;
        break;
      }
      const ibuf = pipe_buf(ipipe, i_tail);
      const obuf = pipe_buf(opipe, o_head);
      let o_len: number;
      if (len >= ibuf.len) {
        obuf.assign(ibuf);
        ibuf.ops = null;
        i_tail++;
        ipipe.tail = i_tail;
        input_wakeup = true;
        o_len = obuf.len;
        o_head++;
        opipe.head = o_head;
      } else {
        pipe_buf_get(ipipe, ibuf);
        obuf.assign(ibuf);
        obuf.flags &= ~(PIPE_BUF_FLAG_GIFT | PIPE_BUF_FLAG_CAN_MERGE);
        obuf.len = len;
        ibuf.offset += len;
        ibuf.len -= len;
        o_len = len;
        o_head++;
        opipe.head = o_head;
      }
      ret += o_len;
      len -= o_len;
    } while (len);
    yield* pipe_unlock(pc, ipipe);
    yield* pipe_unlock(pc, opipe);
    if (!retry) break;
  }
  if (ret > 0) wakeup_pipe_readers(k, opipe);
  if (input_wakeup) wakeup_pipe_writers(k, ipipe);
  return ret;
}

/**
 * link_pipe (tee's body), under both mutexes: from the input's tail, each buffer is duplicated
 * into the output by one more reference to its page, without its gift and merge flags and cut
 * to what is left of `len`; the input's tail stays where it was. Stops at the input's end, a
 * full output, or `len`; no reader of the output: SIGPIPE and -EPIPE (or the bytes so far). No
 * retry: a race that empties the input or fills the output after the waits gives 0.
 */
function* link_pipe(k: Kernel, pc: PerCpu, t: Task, ipipe: PipeInodeInfo, opipe: PipeInodeInfo, len: number): KSteps<number> {
  let ret = 0;
  yield* pipe_double_lock(pc, t, ipipe, opipe);
  let i_tail = ipipe.tail;
  let o_head = opipe.head;
  do {
    if (!opipe.readers) {
      send_sigpipe(k, t);
      if (!ret) ret = -EPIPE;
      break;
    }
    if (pipe_empty(ipipe.head, i_tail) || pipe_full(o_head, opipe.tail, opipe.max_usage)) break;
    const ibuf = pipe_buf(ipipe, i_tail);
    const obuf = pipe_buf(opipe, o_head);
    pipe_buf_get(ipipe, ibuf);
    obuf.assign(ibuf);
    obuf.flags &= ~(PIPE_BUF_FLAG_GIFT | PIPE_BUF_FLAG_CAN_MERGE);
    if (obuf.len > len) obuf.len = len;
    ret += obuf.len;
    len -= obuf.len;
    o_head++;
    opipe.head = o_head;
    i_tail++;
  } while (len);
  yield* pipe_unlock(pc, ipipe);
  yield* pipe_unlock(pc, opipe);
  if (ret > 0) wakeup_pipe_readers(k, opipe);
  return ret;
}

/**
 * do_tee: the input open for reading and the output for writing (-EBADF); two different pipes
 * (-EINVAL otherwise); O_NONBLOCK on either makes it SPLICE_F_NONBLOCK; then the waits for
 * input and room (ipipe_prep, opipe_prep) and link_pipe.
 */
function* do_tee(k: Kernel, pc: PerCpu, t: Task, fin: File, fout: File, len: number, flags: number): KSteps<number> {
  const ipipe = get_pipe_info(fin, true);
  const opipe = get_pipe_info(fout, true);
  if (!(fin.f_mode & FMODE_READ) || !(fout.f_mode & FMODE_WRITE)) return -EBADF;
  if (!ipipe || !opipe || ipipe === opipe) return -EINVAL;
  if ((fin.f_flags | fout.f_flags) & O_NONBLOCK) flags |= SPLICE_F_NONBLOCK;
  let ret = yield* ipipe_prep(pc, t, ipipe, flags);
  if (ret) return ret;
  ret = yield* opipe_prep(k, pc, t, opipe, flags);
  if (ret) return ret;
  return yield* link_pipe(k, pc, t, ipipe, opipe, len);
}

/** tee(fdin, fdout, len, flags): unknown flags -EINVAL; len 0 is 0; each descriptor (-EBADF); do_tee. */
export function* sys_tee(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  const flags = Number(a[3] & 0xffffffffn);
  if (flags & ~SPLICE_F_ALL) return -EINVAL;
  if (!a[2]) return 0;
  const fin = fdget(t, fdArg(a[0]));
  if (!fin) return -EBADF;
  const fout = fdget(t, fdArg(a[1]));
  if (!fout) return -EBADF;
  // A size_t: past 2^53 it is more than any pipe holds.
  return yield* do_tee(k, pc, t, fin, fout, a[2] > 2n ** 53n ? 2 ** 53 : Number(a[2]), flags);
}

/**
 * do_splice_read, under the output pipe's mutex: the file open for reading (-EBADF); no more
 * than the pipe has room for, nor MAX_RW_COUNT; a file with no splice_read is -EINVAL; an
 * O_DIRECT file is read through new pages (copy_splice_read).
 */
function* do_splice_read(k: Kernel, pc: PerCpu, t: Task, f: File, ppos: { pos: number }, pipe: PipeInodeInfo, len: number, flags: number): KSteps<number> {
  if (!(f.f_mode & FMODE_READ)) return -EBADF;
  if (!len) return 0;
  const p_space = pipe.max_usage - pipe_occupancy(pipe.head, pipe.tail);
  len = Math.min(len, p_space * PAGE_SIZE, MAX_RW_COUNT);
  const splice_read = f.f_op.splice_read;
  if (!splice_read) return -EINVAL;
  if (f.f_flags & O_DIRECT) return yield* copy_splice_read(k, pc, t, f, ppos, pipe, len, flags);
  return yield* splice_read(k, pc, t, f, ppos, pipe, len, flags);
}

/**
 * copy_splice_read: new pages for what the pipe has room for, filled by the file's read_iter
 * (/dev/zero's read_iter_zero: zeroes, the position left where it was; an O_DIRECT tmpfs
 * file's shmem_file_read_iter: its bytes up to its end, holes as zeroes, the position moved
 * past them), pushed as buffers of their own; pages not filled are freed. -ENOMEM if no page
 * could be had.
 */
export function* copy_splice_read(k: Kernel, pc: PerCpu, _t: Task, f: File, ppos: { pos: number }, pipe: PipeInodeInfo, len: number, _flags: number): KSteps<number> {
  const npagesRoom = Math.max(pipe.max_usage - pipe_occupancy(pipe.head, pipe.tail), 0);
  len = Math.min(len, npagesRoom * PAGE_SIZE);
  const pages: number[] = [];
  for (let i = 0; i < Math.ceil(len / PAGE_SIZE); i++) {
    const pfn = k.pages.alloc_page(0, false);
    if (pfn < 0) break;
    pages.push(pfn);
  }
  if (pages.length === 0) return -ENOMEM;
  len = Math.min(len, pages.length * PAGE_SIZE);
  // The read_iter: a tmpfs file gives what it has from the position; /dev/zero gives all zeroes.
  const inode = f.inode;
  const ret = inode.isReg ? Math.max(0, Math.min(len, inode.size - ppos.pos)) : len;
  const keep = Math.ceil(ret / PAGE_SIZE);
  let remain = ret;
  for (let i = 0; i < pages.length; i++) {
    const pfn = pages[i];
    if (i >= keep) {
      k.pages.put_page(pfn);
      continue;
    }
    pc.touch = pfn * PAGE_SIZE;
    yield STEP_COPY;
    const chunk = Math.min(PAGE_SIZE, remain);
    const bytes = new Uint8Array(chunk);
    if (inode.isReg) {
      const pos = ppos.pos + i * PAGE_SIZE;
      // Page by page of the file (the position may be unaligned: two file pages per buffer page).
      for (let done = 0; done < chunk; ) {
        const at = pos + done;
        const n = Math.min(chunk - done, PAGE_SIZE - (at % PAGE_SIZE));
        const src = inode.mapping!.pages.get(Math.floor(at / PAGE_SIZE));
        if (src !== undefined) bytes.set(k.machine.mem.readBytes(src * PAGE_SIZE + (at % PAGE_SIZE), n), done);
        done += n;
      }
    }
    k.machine.mem.writeBytes(pfn * PAGE_SIZE, bytes);
    const b = pipe_buf(pipe, pipe.head);
    b.assign(stack_buf(pfn, 0, chunk, 'default', 0));
    pipe.head++;
    remain -= chunk;
  }
  // *ppos = kiocb.ki_pos after a read: read_iter_zero leaves it.
  if (ret > 0 && inode.isReg) ppos.pos += ret;
  return ret;
}

/**
 * shmem_file_splice_read: up to what the pipe has room for, from `ppos.pos` to the end of the
 * file (i_size read again for each page): each page the file has goes in by reference
 * (page_cache buffers, folio_get), a hole as the zero page; the pipe filling up ends it.
 */
export function* shmem_file_splice_read(k: Kernel, _pc: PerCpu, _t: Task, f: File, ppos: { pos: number }, pipe: PipeInodeInfo, len: number): KSteps<number> {
  const inode = f.inode;
  const npages = Math.max(pipe.max_usage - pipe_occupancy(pipe.head, pipe.tail), 0);
  len = Math.min(len, npages * PAGE_SIZE);
  let total = 0;
  while (len > 0) {
    if (ppos.pos >= inode.size) break;
    const pfn = inode.mapping!.pages.get(Math.floor(ppos.pos / PAGE_SIZE));
    const part = Math.min(inode.size - ppos.pos, len);
    const offset = ppos.pos % PAGE_SIZE;
    const n = Math.min(part, PAGE_SIZE - offset);
    if (!pipe_full(pipe.head, pipe.tail, pipe.max_usage)) {
      const b = pipe_buf(pipe, pipe.head);
      if (pfn !== undefined) {
        // splice_folio_into_pipe
        k.pages.get_page(pfn);
        b.assign(stack_buf(pfn, offset, n, 'page_cache', 0));
      } else {
        // splice_zeropage_into_pipe
        b.assign(stack_buf(k.zero_pfn, offset, n, 'zero', 0));
      }
      pipe.head++;
    } else if (pfn !== undefined) break;
    len -= n;
    total += n;
    ppos.pos += n;
    if (pipe_full(pipe.head, pipe.tail, pipe.max_usage)) break;
  }
  return total;
}

/**
 * iter_file_splice_write into a tmpfs file: under the pipe's mutex, waits for data
 * (splice_from_pipe_next), then writes the data of the buffers from the tail (up to `len`)
 * through the file's write path (shmem_file_write_iter, under inode_lock, the seals
 * applying), consumes what was written, and goes on until `len` is spent.
 */
export function* iter_file_splice_write(k: Kernel, pc: PerCpu, t: Task, pipe: PipeInodeInfo, out: File, ppos: { pos: number }, len: number, flags: number): KSteps<number> {
  const sd: SpliceDesc = { total_len: len, num_spliced: 0, pos: ppos.pos, flags, need_wakeup: false };
  let ret = 0;
  yield* pipe_lock(pc, t, pipe);
  while (sd.total_len) {
    ret = yield* splice_from_pipe_next(k, pc, t, pipe, sd);
    if (ret <= 0) break;
    // The bio_vec array: each buffer's page, offset and length, up to what is left.
    const slices: [number, number, number][] = [];
    let left = sd.total_len;
    for (let tail = pipe.tail; !pipe_empty(pipe.head, tail) && left && slices.length < pipe.max_usage; tail++) {
      const b = pipe_buf(pipe, tail);
      if (!b.len) continue;
      const n = Math.min(b.len, left);
      slices.push([b.page, b.offset, n]);
      left -= n;
    }
    const src = function* (done: number, n: number): KSteps<Uint8Array> {
      // copy_page_from_iter from the pages: the bytes at `done` of the slices.
      const out = new Uint8Array(n);
      let got = 0;
      let skip = done;
      for (const [page, off, l] of slices) {
        if (skip >= l) {
          skip -= l;
          continue;
        }
        const m = Math.min(l - skip, n - got);
        out.set(k.machine.mem.readBytes(page * PAGE_SIZE + off + skip, m), got);
        got += m;
        skip = 0;
        if (got === n) break;
      }
      return out.subarray(0, got);
    };
    const [r, pos] = yield* shmem_file_write_iter(k, pc, t, out, src, sd.total_len - left, sd.pos);
    ret = r;
    if (ret <= 0) break;
    sd.pos = pos;
    sd.num_spliced += ret;
    sd.total_len -= ret;
    ppos.pos = sd.pos;
    // Dismiss the buffers written whole, trim the one written in part.
    while (ret) {
      const b = pipe_buf(pipe, pipe.tail);
      if (ret >= b.len) {
        ret -= b.len;
        b.len = 0;
        pipe_buf_release(pipe, b);
        pipe.tail++;
        if (pipe.files) sd.need_wakeup = true;
      } else {
        b.offset += ret;
        b.len -= ret;
        ret = 0;
      }
    }
  }
  if (sd.need_wakeup) wakeup_pipe_writers(k, pipe);
  yield* pipe_unlock(pc, pipe);
  return sd.num_spliced ? sd.num_spliced : ret;
}

/** splice_write_null (/dev/null and /dev/zero): the pipe's bytes consumed and dropped (splice_from_pipe with pipe_to_null). */
export function* splice_write_null(k: Kernel, pc: PerCpu, t: Task, pipe: PipeInodeInfo, _out: File, ppos: { pos: number }, len: number, flags: number): KSteps<number> {
  const sd: SpliceDesc = { total_len: len, num_spliced: 0, pos: ppos.pos, flags, need_wakeup: false };
  yield* pipe_lock(pc, t, pipe);
  const ret = yield* __splice_from_pipe(k, pc, t, pipe, sd, function* (_b, n) {
    return n;
  });
  yield* pipe_unlock(pc, pipe);
  return ret;
}

/** splice_file_to_pipe: under the pipe's mutex, wait_for_space then do_splice_read; readers woken if anything went in. */
function* splice_file_to_pipe(k: Kernel, pc: PerCpu, t: Task, f: File, opipe: PipeInodeInfo, ppos: { pos: number }, len: number, flags: number): KSteps<number> {
  yield* pipe_lock(pc, t, opipe);
  let ret = yield* wait_for_space(k, pc, t, opipe, flags);
  if (!ret) ret = yield* do_splice_read(k, pc, t, f, ppos, opipe, len, flags);
  yield* pipe_unlock(pc, opipe);
  if (ret > 0) wakeup_pipe_readers(k, opipe);
  return ret;
}

/** rw_verify_area's checks: a count that is negative as ssize_t, a negative position, or one the count carries past 2^63 - 1, is -EINVAL. */
function rw_verify_area(pos: number, count: bigint): number {
  if (count >= 2n ** 63n) return -EINVAL;
  if (pos < 0) return -EINVAL;
  if (BigInt(pos) + count > 2n ** 63n - 1n) return -EINVAL;
  return 0;
}

/**
 * do_splice, its checks in order: `in` open for reading and `out` for writing (-EBADF). Two
 * pipes: no offsets (-ESPIPE), not the same pipe (-EINVAL), either O_NONBLOCK means
 * SPLICE_F_NONBLOCK. From a pipe: no input offset (-ESPIPE); an output offset needs pwrite
 * (-EINVAL); an O_APPEND output is -EINVAL; the output's splice_write (-EINVAL without one).
 * To a pipe: no output offset (-ESPIPE); an input offset needs pread (-EINVAL); the input's
 * splice_read. Two files: -EINVAL. A file's position moves unless an offset was given (then
 * `off` gets the new one).
 */
function* do_splice(k: Kernel, pc: PerCpu, t: Task, fin: File, off_in: { pos: number } | null, fout: File, off_out: { pos: number } | null, count: bigint, flags: number): KSteps<number> {
  // A size_t: past 2^53 it is more than any pipe or file holds (rw_verify_area sees it whole).
  const len = count > 2n ** 53n ? 2 ** 53 : Number(count);
  if (!(fin.f_mode & FMODE_READ) || !(fout.f_mode & FMODE_WRITE)) return -EBADF;
  const ipipe = get_pipe_info(fin, true);
  const opipe = get_pipe_info(fout, true);
  if (ipipe && opipe) {
    if (off_in || off_out) return -ESPIPE;
    if (ipipe === opipe) return -EINVAL;
    if ((fin.f_flags | fout.f_flags) & O_NONBLOCK) flags |= SPLICE_F_NONBLOCK;
    return yield* splice_pipe_to_pipe(k, pc, t, ipipe, opipe, len, flags);
  }
  if (ipipe) {
    if (off_in) return -ESPIPE;
    if (off_out && !(fout.f_mode & FMODE_PWRITE)) return -EINVAL;
    const ppos = { pos: off_out ? off_out.pos : fout.f_pos };
    if (fout.f_flags & O_APPEND) return -EINVAL;
    const err = rw_verify_area(ppos.pos, count);
    if (err) return err;
    if (fin.f_flags & O_NONBLOCK) flags |= SPLICE_F_NONBLOCK;
    const splice_write = fout.f_op.splice_write;
    const ret = splice_write ? yield* splice_write(k, pc, t, ipipe, fout, ppos, len, flags) : -EINVAL;
    if (!off_out) fout.f_pos = ppos.pos;
    else off_out.pos = ppos.pos;
    return ret;
  }
  if (opipe) {
    if (off_out) return -ESPIPE;
    if (off_in && !(fin.f_mode & FMODE_PREAD)) return -EINVAL;
    const ppos = { pos: off_in ? off_in.pos : fin.f_pos };
    const err = rw_verify_area(ppos.pos, count);
    if (err) return err;
    if (fout.f_flags & O_NONBLOCK) flags |= SPLICE_F_NONBLOCK;
    const ret = yield* splice_file_to_pipe(k, pc, t, fin, opipe, ppos, len, flags);
    if (!off_in) fin.f_pos = ppos.pos;
    else off_in.pos = ppos.pos;
    return ret;
  }
  return -EINVAL;
}

/**
 * splice(fd_in, off_in, fd_out, off_out, len, flags): len 0 is 0; unknown flags -EINVAL; each
 * descriptor (-EBADF); an offset given for a pipe -ESPIPE; the offsets read (off_out first,
 * -EFAULT); do_splice; the offsets written back after a success (-EFAULT).
 */
export function* sys_splice(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  const [, off_in, , off_out, lenArg] = a;
  const flags = Number(a[5] & 0xffffffffn);
  if (!lenArg) return 0;
  if (flags & ~SPLICE_F_ALL) return -EINVAL;
  const fin = fdget(t, fdArg(a[0]));
  if (!fin) return -EBADF;
  const fout = fdget(t, fdArg(a[2]));
  if (!fout) return -EBADF;
  if (get_pipe_info(fin, true) && off_in) return -ESPIPE;
  if (get_pipe_info(fout, true) && off_out) return -ESPIPE;
  let pout: { pos: number } | null = null;
  let pin: { pos: number } | null = null;
  if (off_out) {
    const b = yield* copy_from_user(k, pc, t, off_out, 8);
    if (!b) return -EFAULT;
    pout = { pos: Number(BigInt.asIntN(64, getU64(b, 0))) };
  }
  if (off_in) {
    const b = yield* copy_from_user(k, pc, t, off_in, 8);
    if (!b) return -EFAULT;
    pin = { pos: Number(BigInt.asIntN(64, getU64(b, 0))) };
  }
  const ret = yield* do_splice(k, pc, t, fin, pin, fout, pout, lenArg, flags);
  if (ret < 0) return ret;
  for (const [p, addr] of [[pout, off_out], [pin, off_in]] as const) {
    if (!p) continue;
    const b = new Uint8Array(8);
    putU64(b, 0, BigInt.asUintN(64, BigInt(p.pos)));
    if (!(yield* copy_to_user(k, pc, t, addr, b))) return -EFAULT;
  }
  return ret;
}
