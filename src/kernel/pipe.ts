/**
 * Pipes (fs/pipe.c): pipe and pipe2, a pipe's read, write and release, and F_GETPIPE_SZ /
 * F_SETPIPE_SZ. A pipe is a ring of buffers (PIPE_DEF_BUFFERS, 16, at first), each a
 * reference to a page with an offset and a length. write copies the user's bytes into pages
 * of its own (anonymous pipe buffers, merged into the last one while it has room); vmsplice
 * and splice (splice.ts) put other pages in: the user's own pages, or a file's page cache,
 * by reference, so what the pipe later gives a reader is whatever those pages hold then.
 *
 * pipe->mutex serialises readers, writers and splicers; each drops it before it sleeps on the
 * pipe's wait queues (rd_wait for data, wr_wait for room). A full pipe blocks a writer, an
 * empty one a reader, unless O_NONBLOCK (-EAGAIN); a writer with no reader left gets SIGPIPE
 * and -EPIPE; a reader with no writer left reads the end (0). O_DIRECT makes a packet pipe:
 * each write is a buffer of its own and a read takes at most one.
 *
 * A file's last reference runs pipe_release, which takes the mutex: the model's fput cannot
 * wait, so a release that finds the mutex held is done by the holder when it unlocks (Linux
 * runs it from task work at the closer's return to user mode, where it waits for the mutex).
 *
 * XXX: no poll, FIONREAD or fasync; no named pipes (mkfifo); a notification pipe
 * (O_NOTIFICATION_PIPE) is made and refuses what Linux's refuses, but no notification ever
 * reaches it (the model has no keyrings or watches); pipe buffers are charged to one user.
 */
import { track } from '../track.js';
import { fd_install, File, FMODE_CAN_READ, FMODE_CAN_WRITE, FMODE_READ, FMODE_WRITE, fput, get_unused_fd_flags, put_unused_fd, type FileOperations } from './file.js';
import type { Kernel, PerCpu } from './kernel.js';
import type { PageRefs } from './page.js';
import { capable } from './capability.js';
import { send_signal, signal_pending, ERESTARTSYS } from './signal.js';
import { STEP_LOCK, STEP_UNLOCK, STEP_WAIT, type KPath, type KSteps } from './steps.js';
import type { Task } from './task.js';
import { copy_from_user_partial, copy_to_user, copy_to_user_partial, putU32 } from './uaccess.js';
import {
  CAP_SYS_ADMIN, CAP_SYS_RESOURCE, EAGAIN, EBADF, EBUSY, EFAULT, EINVAL, ENOMEM, ENOTTY, EPERM, EPIPE, EXDEV, F_GETPIPE_SZ, F_SETPIPE_SZ, FIONREAD,
  O_CLOEXEC, O_DIRECT, O_NONBLOCK, O_NOTIFICATION_PIPE, O_RDONLY, O_WRONLY, S_IFIFO, SI_USER, SIGPIPE,
} from './uapi.js';
import type { Inode } from './vfs.js';
import { wait_event_interruptible, wake_up, wake_up_all, WaitQueueHead } from './wait.js';

const PAGE_SIZE = 4096;
/** PIPE_DEF_BUFFERS: a new pipe's ring size. */
export const PIPE_DEF_BUFFERS = 16;
/** PIPE_MIN_DEF_BUFFERS: what a new pipe gets once an unprivileged user is past the soft limit. */
const PIPE_MIN_DEF_BUFFERS = 2;
/** fs.pipe-max-size: the largest size an unprivileged F_SETPIPE_SZ may ask for. */
export const PIPE_MAX_SIZE = 1048576;
/** fs.pipe-user-pages-soft: buffers one user's pipes may hold before new pipes shrink (hard: 0, no limit). */
const PIPE_USER_PAGES_SOFT = PIPE_DEF_BUFFERS * 1024;
/** pipefs's st_dev: its anonymous block device (0:15 on the 6.18 host the model was checked against; boot order decides it). */
export const PIPEFS_DEV = 0xf;

// struct pipe_buffer's flags (include/linux/pipe_fs_i.h).
export const PIPE_BUF_FLAG_LRU = 0x01;
export const PIPE_BUF_FLAG_GIFT = 0x04;
/** A buffer of a packet pipe (O_DIRECT): a read takes it whole or in part, never beyond it. */
export const PIPE_BUF_FLAG_PACKET = 0x08;
/** An anonymous buffer later writes may append to. */
export const PIPE_BUF_FLAG_CAN_MERGE = 0x10;

/**
 * A buffer's pipe_buf_operations, by what it holds: `anon` a page write allocated (kept as the
 * pipe's spare page on release if nothing else holds it), `user_page` a vmspliced page of a
 * process, `page_cache` a file's page, `default` a page a copying splice_read filled, `zero`
 * the zero page (no reference). All but `zero` hold one page reference.
 */
export type PipeBufOps = 'anon' | 'user_page' | 'page_cache' | 'default' | 'zero';

/** A struct pipe_buffer. A slot whose `ops` is null holds nothing. */
export class PipeBuffer {
  page = -1;
  offset = 0;
  len = 0;
  ops: PipeBufOps | null = null;
  flags = 0;

  constructor() {
    return track(this);
  }

  /** `*this = *src`. */
  assign(src: PipeBuffer): void {
    this.page = src.page;
    this.offset = src.offset;
    this.len = src.len;
    this.ops = src.ops;
    this.flags = src.flags;
  }
}

/**
 * A struct pipe_inode_info. It is one of the page-reference holders the debug checks count
 * (PageAllocator.held) for as long as it lives: its buffers' pages and its spare page.
 */
export class PipeInodeInfo implements PageRefs {
  /** Buffers written (head) and read (tail): free-running counters, occupancy head - tail. */
  head = 0;
  tail = 0;
  /** Buffers the ring may hold, and its size (a power of two). */
  max_usage: number;
  ring_size: number;
  /** Buffers charged to the user. */
  nr_accounted: number;
  readers = 0;
  writers = 0;
  /** Files open on it: the pipe goes with the last. */
  files = 0;
  /** tmp_page: a one-page cache of a released anonymous buffer's page, or -1. */
  tmp_page = -1;
  bufs: PipeBuffer[] = [];
  /** pipe->mutex: the tid of its holder, or 0. */
  mutexOwner = 0;
  readonly rd_wait = new WaitQueueHead();
  readonly wr_wait = new WaitQueueHead();
  /** A notification pipe (O_NOTIFICATION_PIPE): writes, splices and resizing are refused. */
  watch_queue = false;
  /** pipe_release's f_modes waiting for the mutex: done by its holder at unlock. */
  readonly pendingRelease: number[] = [];

  constructor(
    readonly k: Kernel,
    readonly inode: Inode,
    nbufs: number,
  ) {
    this.max_usage = this.ring_size = this.nr_accounted = nbufs;
    for (let i = 0; i < nbufs; i++) this.bufs.push(new PipeBuffer());
    return track(this);
  }

  /** The page references it holds: each buffer's but the zero page's, and the spare page. */
  get refs(): number[] {
    const r: number[] = [];
    for (const b of this.bufs) if (b.ops !== null && b.ops !== 'zero') r.push(b.page);
    if (this.tmp_page >= 0) r.push(this.tmp_page);
    return r;
  }
}

/** pipe_occupancy. */
export function pipe_occupancy(head: number, tail: number): number {
  return head - tail;
}

/** pipe_empty. */
export function pipe_empty(head: number, tail: number): boolean {
  return head === tail;
}

/** pipe_full: at least `limit` buffers in use. */
export function pipe_full(head: number, tail: number, limit: number): boolean {
  return pipe_occupancy(head, tail) >= limit;
}

/** The buffer slot for counter `n`. */
export function pipe_buf(pipe: PipeInodeInfo, n: number): PipeBuffer {
  return pipe.bufs[n & (pipe.ring_size - 1)];
}

/** The lock id pipe->mutex's steps announce (steps.ts): negative, apart from the file locks (read_write.ts) and the per-mm ids. */
function pipeLockId(pipe: PipeInodeInfo): number {
  return -(2 ** 41 + 2 ** 33 + pipe.inode.ino);
}

/** pipe_lock: takes pipe->mutex (a lock step, waiting while another task holds it). */
export function* pipe_lock(pc: PerCpu, t: Task, pipe: PipeInodeInfo): KSteps<void> {
  pc.touch = pipeLockId(pipe);
  yield STEP_LOCK;
  while (pipe.mutexOwner !== 0) yield STEP_WAIT;
  pipe.mutexOwner = t.tid;
}

/** pipe_unlock: releases pipe->mutex; a release that waited for it is done first. */
export function* pipe_unlock(pc: PerCpu, pipe: PipeInodeInfo): KSteps<void> {
  pc.touch = pipeLockId(pipe);
  yield STEP_UNLOCK;
  pipe.mutexOwner = 0;
  while (pipe.pendingRelease.length > 0) __pipe_release(pipe, pipe.pendingRelease.shift()!);
}

/** get_pipe_info: the pipe behind a file, or null for another file (or, for splice, a notification pipe). */
export function get_pipe_info(file: File, for_splice: boolean): PipeInodeInfo | null {
  const pipe = file.f_op === pipefifo_fops ? file.inode.i_pipe : null;
  if (!pipe || (for_splice && pipe.watch_queue)) return null;
  return pipe;
}

/**
 * pipe_buf_release: the buffer gives its page back. An anonymous buffer's page nothing else
 * holds becomes the spare page if there is none (anon_pipe_buf_release); any other page
 * reference is put; the zero page holds none.
 */
export function pipe_buf_release(pipe: PipeInodeInfo, buf: PipeBuffer): void {
  const pages = pipe.k.pages;
  const ops = buf.ops;
  buf.ops = null;
  if (ops === 'zero' || ops === null) return;
  if (ops === 'anon' && pages.refcount[buf.page] === 1 && pipe.tmp_page < 0) pipe.tmp_page = buf.page;
  else pages.put_page(buf.page);
}

/** pipe_buf_get (generic_pipe_buf_get, try_get_page): one more reference to the buffer's page (none for the zero page). */
export function pipe_buf_get(pipe: PipeInodeInfo, buf: PipeBuffer): void {
  if (buf.ops !== 'zero') pipe.k.pages.get_page(buf.page);
}

/** pipe_readable: data, or no writer (the wait's condition, read without the mutex). */
function pipe_readable(pipe: PipeInodeInfo): boolean {
  return !pipe_empty(pipe.head, pipe.tail) || pipe.writers === 0;
}

/** pipe_writable: room, or no reader. */
export function pipe_writable(pipe: PipeInodeInfo): boolean {
  return !pipe_full(pipe.head, pipe.tail, pipe.max_usage) || pipe.readers === 0;
}

/** send_sig(SIGPIPE, current, 0): SIGPIPE to the writing thread, SI_USER from itself. */
export function send_sigpipe(k: Kernel, t: Task): void {
  send_signal(k, t, { signo: SIGPIPE, code: SI_USER, addr: 0n, pid: t.tgid, pkey: 0 }, false);
}

/**
 * pipe_read: under the mutex, buffers from the tail are copied out (copy_page_to_iter, a page
 * at a time) and released once empty; a packet buffer is consumed whole by one read. The read
 * ends when `count` bytes were read, when the pipe is empty and something was read or no
 * writer is left (0), or when a copy faults (the bytes so far, or -EFAULT). An empty pipe
 * with writers: -EAGAIN with O_NONBLOCK, else the mutex is dropped and the reader sleeps until
 * pipe_readable (-ERESTARTSYS for a signal). Writers are woken when a full pipe got room.
 */
function* pipe_read(k: Kernel, pc: PerCpu, t: Task, f: File, buf: bigint, count: number, pos: number): KSteps<[number, number]> {
  const pipe = f.inode.i_pipe!;
  let total_len = count;
  if (total_len === 0) return [0, pos];
  let ret = 0;
  yield* pipe_lock(pc, t, pipe);
  let was_full = pipe_full(pipe.head, pipe.tail, pipe.max_usage);
  let wake_next_reader = false;
  for (;;) {
    const head = pipe.head;
    let tail = pipe.tail;
    if (!pipe_empty(head, tail)) {
      const b = pipe_buf(pipe, tail);
      const chars = Math.min(b.len, total_len);
      const bytes = k.machine.mem.readBytes(b.page * PAGE_SIZE + b.offset, chars);
      const left = yield* copy_to_user_partial(k, pc, t, buf + BigInt(ret), bytes);
      if (left > 0) {
        if (!ret) ret = -EFAULT;
        break;
      }
      ret += chars;
      b.offset += chars;
      b.len -= chars;
      if (b.flags & PIPE_BUF_FLAG_PACKET) {
        total_len = chars;
        b.len = 0;
      }
      if (!b.len) {
        // pipe_update_tail
        pipe_buf_release(pipe, b);
        pipe.tail = ++tail;
      }
      total_len -= chars;
      if (!total_len) break;
      if (!pipe_empty(head, tail)) continue;
    }
    if (!pipe.writers) break;
    if (ret) break;
    if (f.f_flags & O_NONBLOCK) {
      ret = -EAGAIN;
      break;
    }
    yield* pipe_unlock(pc, pipe);
    if (was_full) wake_up(k, pipe.wr_wait);
    if ((yield* wait_event_interruptible(t, pipe.rd_wait, () => pipe_readable(pipe), true)) < 0) return [-ERESTARTSYS, pos];
    yield* pipe_lock(pc, t, pipe);
    was_full = pipe_full(pipe.head, pipe.tail, pipe.max_usage);
    wake_next_reader = true;
  }
  if (pipe_empty(pipe.head, pipe.tail)) wake_next_reader = false;
  yield* pipe_unlock(pc, pipe);
  if (was_full) wake_up(k, pipe.wr_wait);
  if (wake_next_reader) wake_up(k, pipe.rd_wait);
  return [ret, pos];
}

/**
 * pipe_write: a notification pipe refuses writes (-EXDEV); then under the mutex: no reader is
 * SIGPIPE and -EPIPE. A write that is not a whole number of pages first tops up the last
 * buffer if it may merge and has room (a fault there is -EFAULT). Then, while bytes are left,
 * each free slot gets a page (the spare page, or a new one: -ENOMEM when none and nothing was
 * written) taking up to a page of the user's bytes; a fault ends the write (the bytes so far,
 * or -EFAULT). A full pipe: -EAGAIN with O_NONBLOCK (or the bytes so far), -ERESTARTSYS for a
 * pending signal, else the mutex is dropped, readers woken, and the writer sleeps until
 * pipe_writable. The readers are woken if the pipe was empty.
 */
function* pipe_write(k: Kernel, pc: PerCpu, t: Task, f: File, buf: bigint, count: number, pos: number): KSteps<[number, number]> {
  const pipe = f.inode.i_pipe!;
  const mem = k.machine.mem;
  if (pipe.watch_queue) return [-EXDEV, pos];
  if (count === 0) return [0, pos];
  let ret = 0;
  let was_empty = false;
  let wake_next_writer = false;
  yield* pipe_lock(pc, t, pipe);
  out: {
    if (!pipe.readers) {
      send_sigpipe(k, t);
      ret = -EPIPE;
      break out;
    }
    was_empty = pipe_empty(pipe.head, pipe.tail);
    const chars = count & (PAGE_SIZE - 1);
    if (chars && !was_empty) {
      const b = pipe_buf(pipe, pipe.head - 1);
      const offset = b.offset + b.len;
      if (b.flags & PIPE_BUF_FLAG_CAN_MERGE && offset + chars <= PAGE_SIZE) {
        const bytes = yield* copy_from_user_partial(k, pc, t, buf, chars);
        if (bytes.length < chars) {
          // copy_page_from_iter copied what it could before the fault; the write still fails.
          mem.writeBytes(b.page * PAGE_SIZE + offset, bytes);
          ret = -EFAULT;
          break out;
        }
        mem.writeBytes(b.page * PAGE_SIZE + offset, bytes);
        b.len += chars;
        ret = chars;
        if (ret === count) break out;
      }
    }
    for (;;) {
      if (!pipe.readers) {
        send_sigpipe(k, t);
        if (!ret) ret = -EPIPE;
        break;
      }
      const head = pipe.head;
      if (!pipe_full(head, pipe.tail, pipe.max_usage)) {
        let page = pipe.tmp_page;
        if (page < 0) {
          page = k.pages.alloc_page(0, false);
          if (page < 0) {
            if (!ret) ret = -ENOMEM;
            break;
          }
          pipe.tmp_page = page;
        }
        // A slot is taken before the copy; a fault leaves it (empty, or part-filled) for the reader.
        pipe.head = head + 1;
        const b = pipe_buf(pipe, head);
        b.page = page;
        b.ops = 'anon';
        b.offset = 0;
        b.len = 0;
        b.flags = f.f_flags & O_DIRECT ? PIPE_BUF_FLAG_PACKET : PIPE_BUF_FLAG_CAN_MERGE;
        pipe.tmp_page = -1;
        const want = Math.min(PAGE_SIZE, count - ret);
        const bytes = yield* copy_from_user_partial(k, pc, t, buf + BigInt(ret), want);
        mem.writeBytes(page * PAGE_SIZE, bytes);
        if (bytes.length < want) {
          if (!ret) ret = -EFAULT;
          break;
        }
        ret += bytes.length;
        b.len = bytes.length;
        if (ret === count) break;
      }
      if (!pipe_full(pipe.head, pipe.tail, pipe.max_usage)) continue;
      if (f.f_flags & O_NONBLOCK) {
        if (!ret) ret = -EAGAIN;
        break;
      }
      if (signal_pending(t)) {
        if (!ret) ret = -ERESTARTSYS;
        break;
      }
      yield* pipe_unlock(pc, pipe);
      if (was_empty) wake_up(k, pipe.rd_wait);
      // wait_event_interruptible_exclusive: a signal ends the sleep; the loop then sees it.
      yield* wait_event_interruptible(t, pipe.wr_wait, () => pipe_writable(pipe), true);
      yield* pipe_lock(pc, t, pipe);
      was_empty = pipe_empty(pipe.head, pipe.tail);
      wake_next_writer = true;
    }
  }
  if (pipe_full(pipe.head, pipe.tail, pipe.max_usage)) wake_next_writer = false;
  yield* pipe_unlock(pc, pipe);
  if (was_empty) wake_up(k, pipe.rd_wait);
  if (wake_next_writer) wake_up(k, pipe.wr_wait);
  return [ret, pos];
}

/**
 * pipe_release: the file's side of the pipe goes (readers or writers one fewer); if that left
 * one side without the other, both wait queues are woken. The pipe goes with its last file
 * (put_pipe_info, free_pipe_info: every buffer released, the spare page freed).
 */
function pipe_release(f: File): void {
  const pipe = f.inode.i_pipe!;
  if (pipe.mutexOwner !== 0) pipe.pendingRelease.push(f.f_mode);
  else __pipe_release(pipe, f.f_mode);
}

function __pipe_release(pipe: PipeInodeInfo, f_mode: number): void {
  const k = pipe.k;
  if (f_mode & FMODE_READ) pipe.readers--;
  if (f_mode & FMODE_WRITE) pipe.writers--;
  if (!pipe.readers !== !pipe.writers) {
    wake_up_all(k, pipe.rd_wait);
    wake_up_all(k, pipe.wr_wait);
  }
  if (--pipe.files === 0) free_pipe_info(pipe);
}

/** free_pipe_info: the buffers' pages released, the spare page freed, the buffers uncharged. */
function free_pipe_info(pipe: PipeInodeInfo): void {
  const k = pipe.k;
  k.pipe_user_bufs -= pipe.nr_accounted;
  for (const b of pipe.bufs) if (b.ops !== null) pipe_buf_release(pipe, b);
  if (pipe.tmp_page >= 0) k.pages.put_page(pipe.tmp_page);
  pipe.tmp_page = -1;
  k.pages.held.delete(pipe);
  pipe.inode.i_pipe = null;
}

/**
 * pipe_ioctl: FIONREAD sums the lengths of the buffers from tail to head under the mutex and
 * stores the count as an int (-EFAULT); any other command is -ENOTTY (-ENOIOCTLCMD, which
 * vfs_ioctl turns into -ENOTTY). XXX: no watch queues (IOC_WATCH_QUEUE_*).
 */
function* pipe_ioctl(k: Kernel, pc: PerCpu, t: Task, f: File, cmd: number, arg: bigint): KSteps<number> {
  const pipe = f.inode.i_pipe!;
  if (cmd !== FIONREAD) return -ENOTTY;
  yield* pipe_lock(pc, t, pipe);
  let count = 0;
  for (let tail = pipe.tail; tail !== pipe.head; tail++) count += pipe_buf(pipe, tail).len;
  yield* pipe_unlock(pc, pipe);
  const b = new Uint8Array(4);
  putU32(b, 0, count);
  return (yield* copy_to_user(k, pc, t, arg, b)) ? 0 : -EFAULT;
}

/** pipefifo_fops: read, write and ioctl; no llseek (-ESPIPE) and no positioned I/O (stream_open). */
export const pipefifo_fops = Object.freeze<FileOperations>({ read: pipe_read, write: pipe_write, release: pipe_release, ioctl: pipe_ioctl });

/** pipe_is_unprivileged_user: neither CAP_SYS_RESOURCE nor CAP_SYS_ADMIN. */
function pipe_is_unprivileged_user(t: Task): boolean {
  return !capable(t, CAP_SYS_RESOURCE) && !capable(t, CAP_SYS_ADMIN);
}

/**
 * get_pipe_inode + alloc_pipe_info: a pipefs inode (S_IFIFO, 0600) with a pipe of
 * PIPE_DEF_BUFFERS buffers (fewer past fs.pipe-max-size without CAP_SYS_RESOURCE, and
 * PIPE_MIN_DEF_BUFFERS for an unprivileged user past the soft limit), one reader and one writer.
 */
function get_pipe_inode(k: Kernel, t: Task): Inode {
  const inode = k.vfs.newInode(S_IFIFO | 0o600, 'fifo', PIPEFS_DEV, 0);
  let pipe_bufs = PIPE_DEF_BUFFERS;
  if (pipe_bufs * PAGE_SIZE > PIPE_MAX_SIZE && !capable(t, CAP_SYS_RESOURCE)) pipe_bufs = PIPE_MAX_SIZE / PAGE_SIZE;
  k.pipe_user_bufs += pipe_bufs;
  if (k.pipe_user_bufs > PIPE_USER_PAGES_SOFT && pipe_is_unprivileged_user(t)) {
    k.pipe_user_bufs += PIPE_MIN_DEF_BUFFERS - pipe_bufs;
    pipe_bufs = PIPE_MIN_DEF_BUFFERS;
  }
  const pipe = new PipeInodeInfo(k, inode, pipe_bufs);
  pipe.files = 2;
  pipe.readers = pipe.writers = 1;
  inode.i_pipe = pipe;
  k.pages.held.add(pipe);
  return inode;
}

/**
 * create_pipe_files: the pipe's write end (O_WRONLY with the call's O_NONBLOCK and O_DIRECT)
 * and read end (O_RDONLY with O_NONBLOCK only), both stream files (no seeking, no pread).
 */
function create_pipe_files(k: Kernel, t: Task, flags: number): [File, File] {
  const inode = get_pipe_inode(k, t);
  if (flags & O_NOTIFICATION_PIPE) inode.i_pipe!.watch_queue = true;
  const w = new File(inode, O_WRONLY | (flags & (O_NONBLOCK | O_DIRECT)), FMODE_WRITE | FMODE_CAN_WRITE);
  const r = new File(inode, O_RDONLY | (flags & O_NONBLOCK), FMODE_READ | FMODE_CAN_READ);
  return [r, w];
}

/**
 * do_pipe2(fildes, flags): flags beyond O_CLOEXEC, O_NONBLOCK, O_DIRECT and
 * O_NOTIFICATION_PIPE are -EINVAL; the files, then the read and the write descriptor (the
 * lowest free, -EMFILE); the two descriptors are copied out (-EFAULT: both files and
 * descriptors released) before they are installed.
 */
function* do_pipe2(k: Kernel, pc: PerCpu, t: Task, fildes: bigint, flags: number): KPath {
  if (flags & ~(O_CLOEXEC | O_NONBLOCK | O_DIRECT | O_NOTIFICATION_PIPE)) return -EINVAL;
  const files = create_pipe_files(k, t, flags);
  const fdr = get_unused_fd_flags(t, flags);
  if (fdr < 0) {
    fput(files[0]);
    fput(files[1]);
    return fdr;
  }
  const fdw = get_unused_fd_flags(t, flags);
  if (fdw < 0) {
    put_unused_fd(t.files!, fdr);
    fput(files[0]);
    fput(files[1]);
    return fdw;
  }
  const b = new Uint8Array(8);
  putU32(b, 0, fdr);
  putU32(b, 4, fdw);
  if (!(yield* copy_to_user(k, pc, t, fildes, b))) {
    fput(files[0]);
    fput(files[1]);
    put_unused_fd(t.files!, fdr);
    put_unused_fd(t.files!, fdw);
    return -EFAULT;
  }
  fd_install(t.files!, fdr, files[0]);
  fd_install(t.files!, fdw, files[1]);
  return 0;
}

/** pipe2(fildes, flags). */
export function sys_pipe2(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  return do_pipe2(k, pc, t, a[0], Number(a[1] & 0xffffffffn));
}

/** pipe(fildes): pipe2 with no flags. */
export function sys_pipe(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  return do_pipe2(k, pc, t, a[0], 0);
}

/** round_pipe_size: a size in bytes up to a power-of-two number of pages (at least one), or 0 past 2^31. */
function round_pipe_size(size: number): number {
  if (size > 2 ** 31) return 0;
  if (size < PAGE_SIZE) return PAGE_SIZE;
  return 2 ** Math.ceil(Math.log2(size));
}

/**
 * pipe_set_size: a notification pipe cannot be resized (-EBUSY); the size rounded to a power
 * of two of pages (-EINVAL past 2^31); growing past fs.pipe-max-size needs CAP_SYS_RESOURCE
 * (-EPERM), and an unprivileged user past the soft limit cannot grow (-EPERM); a ring smaller
 * than its occupancy is -EBUSY (pipe_resize_ring, which keeps the buffers in order from slot
 * 0). Returns the new size in bytes.
 */
function pipe_set_size(k: Kernel, t: Task, pipe: PipeInodeInfo, arg: number): number {
  if (pipe.watch_queue) return -EBUSY;
  const size = round_pipe_size(arg);
  const nr_slots = size / PAGE_SIZE;
  if (!nr_slots) return -EINVAL;
  if (nr_slots > pipe.max_usage && size > PIPE_MAX_SIZE && !capable(t, CAP_SYS_RESOURCE)) return -EPERM;
  const user_bufs = k.pipe_user_bufs - pipe.nr_accounted + nr_slots;
  if (nr_slots > pipe.max_usage && user_bufs > PIPE_USER_PAGES_SOFT && pipe_is_unprivileged_user(t)) return -EPERM;
  // pipe_resize_ring
  const n = pipe_occupancy(pipe.head, pipe.tail);
  if (nr_slots < n) return -EBUSY;
  const bufs: PipeBuffer[] = [];
  for (let i = 0; i < nr_slots; i++) {
    const b = new PipeBuffer();
    if (i < n) b.assign(pipe_buf(pipe, pipe.tail + i));
    bufs.push(b);
  }
  pipe.bufs = bufs;
  pipe.ring_size = nr_slots;
  pipe.tail = 0;
  pipe.head = n;
  pipe.max_usage = nr_slots;
  k.pipe_user_bufs = user_bufs;
  pipe.nr_accounted = nr_slots;
  wake_up(k, pipe.wr_wait);
  return pipe.max_usage * PAGE_SIZE;
}

/** pipe_fcntl(file, cmd, arg): F_SETPIPE_SZ and F_GETPIPE_SZ under the mutex; another file is -EBADF. */
export function* pipe_fcntl(k: Kernel, pc: PerCpu, t: Task, file: File, cmd: number, arg: number): KPath {
  const pipe = get_pipe_info(file, false);
  if (!pipe) return -EBADF;
  yield* pipe_lock(pc, t, pipe);
  const ret = cmd === F_SETPIPE_SZ ? pipe_set_size(k, t, pipe, arg) : cmd === F_GETPIPE_SZ ? pipe.max_usage * PAGE_SIZE : -EINVAL;
  yield* pipe_unlock(pc, pipe);
  return ret;
}
