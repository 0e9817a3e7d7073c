/**
 * Open files and the descriptor table (fs/file.c, fs/file_table.c, include/linux/fs.h): a
 * struct file (position, flags, mode, reference count) and a task's files_struct (the fd
 * array, its open and close-on-exec bits, next_fd), shared by CLONE_FILES and copied
 * otherwise (dup_fd), unshared and purged of close-on-exec descriptors by execve, released at
 * exit; close, dup, dup2 and dup3.
 */
import { track } from '../track.js';
import type { Kernel, PerCpu } from './kernel.js';
import type { KSteps } from './steps.js';
import type { PipeInodeInfo } from './pipe.js';
import type { Task } from './task.js';
import type { Inode } from './vfs.js';
import { EBADF, EBUSY, EINVAL, EMFILE, O_CLOEXEC, O_LARGEFILE, O_RDWR } from './uapi.js';

/** RLIMIT_NOFILE's soft limit (INR_OPEN_CUR): descriptors are below it. XXX: no setrlimit yet. */
export const RLIMIT_NOFILE_CUR = 1024;

// f_mode bits (include/linux/fs.h).
export const FMODE_READ = 0x1;
export const FMODE_WRITE = 0x2;
export const FMODE_LSEEK = 0x4;
export const FMODE_PREAD = 0x8;
export const FMODE_PWRITE = 0x10;
/** The file's position is updated under f_pos_lock when the file is shared (regular files and directories). */
export const FMODE_ATOMIC_POS = 0x8000;
export const FMODE_CAN_READ = 0x20000;
/** An O_PATH descriptor: it names a file without opening it for I/O (fdget does not see it; fdget_raw does). */
export const FMODE_PATH = 0x4000;
export const FMODE_CAN_WRITE = 0x40000;
/** The file takes O_DIRECT (a tmpfs file opened by open: shmem_file_open sets it). */
export const FMODE_CAN_ODIRECT = 0x400000;

/**
 * struct file_operations: what an open file can do. A missing operation is what Linux's NULL
 * gives: no read makes read -EINVAL (FMODE_CAN_READ is not set), no write likewise, no llseek
 * is no_llseek (-ESPIPE).
 */
export interface FileOperations {
  /** read_iter: up to `count` bytes from `pos` into the user's `buf`; the bytes moved or -errno, and the position after. */
  read?(k: Kernel, pc: PerCpu, t: Task, f: File, buf: bigint, count: number, pos: number): KSteps<[number, number]>;
  /** write_iter: up to `count` bytes from the user's `buf` at `pos`; the bytes moved or -errno, and the position after. */
  write?(k: Kernel, pc: PerCpu, t: Task, f: File, buf: bigint, count: number, pos: number): KSteps<[number, number]>;
  /** llseek: the new position (also stored in f_pos) or -errno; whence is at most SEEK_HOLE. */
  llseek?(f: File, offset: bigint, whence: number): number;
  /** release: the file's last reference went (__fput); what it needs of the kernel its inode holds. */
  release?(f: File): void;
  /** splice_read: up to `len` bytes from `ppos.pos` into `pipe`, whose mutex the caller holds; the bytes spliced or -errno, `ppos` moved past them. */
  splice_read?(k: Kernel, pc: PerCpu, t: Task, f: File, ppos: { pos: number }, pipe: PipeInodeInfo, len: number, flags: number): KSteps<number>;
  /** splice_write: up to `len` bytes out of `pipe` (the mutex not held) into the file at `ppos.pos`; the bytes spliced or -errno. */
  splice_write?(k: Kernel, pc: PerCpu, t: Task, pipe: PipeInodeInfo, f: File, ppos: { pos: number }, len: number, flags: number): KSteps<number>;
}

/** A struct file: an open instance of an inode. */
export class File {
  /** f_pos. */
  f_pos = 0;
  /** f_count: descriptors and kernel paths holding it. */
  f_count = 1;
  /** f_pos_lock's holder (a tid), or 0. */
  posLockOwner = 0;
  /** f_op: the inode's operations, taken at open (do_dentry_open). */
  readonly f_op: FileOperations;

  constructor(
    readonly inode: Inode,
    /** f_flags: the open flags that stay (fcntl F_GETFL reads them; F_SETFL changes some). */
    public f_flags: number,
    readonly f_mode: number,
  ) {
    this.f_op = inode.i_fop;
    inode.openFiles++;
    return track(this);
  }
}

/** A files_struct: the descriptor table. */
export class FilesStruct {
  /** Tasks sharing it (CLONE_FILES). */
  count = 1;
  /** fdt->fd: the file at each descriptor (null: none, or reserved and not yet installed). */
  readonly fd: (File | null)[] = [];
  /** open_fds: reserved or installed. */
  readonly open: boolean[] = [];
  /** close_on_exec. */
  readonly cloexec: boolean[] = [];
  /** next_fd: no descriptor below it is free. */
  next_fd = 0;

  constructor() {
    return track(this);
  }
}

/** get_file. */
export function get_file(f: File): File {
  f.f_count++;
  return f;
}

/** fput: one reference fewer; the last one releases the file (__fput: f_op->release), and an unlinked inode nothing else uses goes with it. */
export function fput(f: File): void {
  if (--f.f_count > 0) return;
  f.f_op.release?.(f);
  f.inode.openFiles--;
  f.inode.vfs.evictIfUnused(f.inode);
}

/** expand_files: the table's arrays reach descriptor `fd` (grown by push, so that the growth is a write of their length). */
function expand_files(files: FilesStruct, fd: number): void {
  while (files.fd.length <= fd) {
    files.fd.push(null);
    files.open.push(false);
    files.cloexec.push(false);
  }
}

/**
 * alloc_fd(start, end, flags): the lowest free descriptor at or above `start` and next_fd,
 * below `end`, reserved (open, no file yet) with its close-on-exec bit from O_CLOEXEC; -EMFILE
 * when there is none.
 */
export function alloc_fd(files: FilesStruct, start: number, end: number, flags: number): number {
  let fd = Math.max(start, files.next_fd);
  while (fd < end && files.open[fd]) fd++;
  if (fd >= end) return -EMFILE;
  expand_files(files, fd);
  if (start <= files.next_fd) files.next_fd = fd + 1;
  files.open[fd] = true;
  files.fd[fd] = null;
  files.cloexec[fd] = (flags & O_CLOEXEC) !== 0;
  return fd;
}

/** get_unused_fd_flags: alloc_fd(0, RLIMIT_NOFILE, flags). */
export function get_unused_fd_flags(files: FilesStruct, flags: number): number {
  return alloc_fd(files, 0, RLIMIT_NOFILE_CUR, flags);
}

/** put_unused_fd: gives back a reserved descriptor. */
export function put_unused_fd(files: FilesStruct, fd: number): void {
  files.open[fd] = false;
  files.cloexec[fd] = false;
  if (fd < files.next_fd) files.next_fd = fd;
}

/** fd_install: the reserved descriptor `fd` now holds `file` (its reference passes to the table). */
export function fd_install(files: FilesStruct, fd: number, file: File): void {
  files.fd[fd] = file;
}

/** The file at descriptor `fd` (an unsigned int, as the syscalls read it), or null. */
export function files_lookup_fd(files: FilesStruct | null, fd: number): File | null {
  if (!files || fd < 0 || fd >= files.fd.length) return null;
  return files.fd[fd] ?? null;
}

/** fget_raw: the file at `fd` with a reference taken, O_PATH descriptors included, or null. */
export function fget_raw(t: Task, fd: number): File | null {
  const f = files_lookup_fd(t.files, fd);
  return f ? get_file(f) : null;
}

/** fdget's file: the one at `fd` unless it is an O_PATH descriptor (I/O calls give -EBADF for those), without a reference. */
export function fdget(t: Task, fd: number): File | null {
  const f = files_lookup_fd(t.files, fd);
  return f && !(f.f_mode & FMODE_PATH) ? f : null;
}

/** file_close_fd + filp_close: empties descriptor `fd`; -EBADF when it holds no file. */
export function close_fd(files: FilesStruct, fd: number): number {
  const f = files_lookup_fd(files, fd);
  if (!f) return -EBADF;
  files.fd[fd] = null;
  put_unused_fd(files, fd);
  fput(f);
  return 0;
}

/** dup_fd: a copy of `old` for a new task: the same files (each one more reference), the same close-on-exec bits. A descriptor reserved and not yet installed is free in the copy. */
export function dup_fd(old: FilesStruct): FilesStruct {
  const n = new FilesStruct();
  expand_files(n, old.fd.length - 1);
  for (let fd = 0; fd < old.fd.length; fd++) {
    const f = old.fd[fd];
    if (!f) continue;
    n.fd[fd] = get_file(f);
    n.open[fd] = true;
    n.cloexec[fd] = old.cloexec[fd] === true;
  }
  return n;
}

/** copy_files: shares the parent's table with CLONE_FILES, else copies it. */
export function copy_files(t: Task, share: boolean): FilesStruct | null {
  const files = t.files;
  if (!files) return null;
  if (share) {
    files.count++;
    return files;
  }
  return dup_fd(files);
}

/** put_files_struct: one user fewer; the last closes every descriptor. */
export function put_files_struct(files: FilesStruct): void {
  if (--files.count > 0) return;
  for (let fd = 0; fd < files.fd.length; fd++) {
    const f = files.fd[fd];
    if (!f) continue;
    files.fd[fd] = null;
    files.open[fd] = false;
    fput(f);
  }
}

/** exit_files: the task lets go of its table. */
export function exit_files(t: Task): void {
  const files = t.files;
  if (!files) return;
  t.files = null;
  put_files_struct(files);
}

/** unshare_files (execve): a table shared with other tasks is replaced by a copy of its own. */
export function unshare_files(t: Task): void {
  const files = t.files;
  if (!files || files.count === 1) return;
  t.files = dup_fd(files);
  put_files_struct(files);
}

/** do_close_on_exec: closes every descriptor whose close-on-exec bit is set. */
export function do_close_on_exec(files: FilesStruct): void {
  for (let fd = 0; fd < files.fd.length; fd++) if (files.cloexec[fd] && files.fd[fd]) close_fd(files, fd);
}

/**
 * The table a process the System spawns starts with: descriptors 0, 1 and 2 open on /dev/null
 * for reading and writing, as a daemon's are, so that the first file it opens is 3.
 */
export function initial_files(k: Kernel): FilesStruct {
  const files = new FilesStruct();
  const devnull = k.vfs.root.entries!.get('dev')!.entries!.get('null')!;
  const file = new File(devnull, O_RDWR | O_LARGEFILE, FMODE_READ | FMODE_WRITE | FMODE_LSEEK | FMODE_PREAD | FMODE_PWRITE | FMODE_CAN_READ | FMODE_CAN_WRITE);
  for (let fd = 0; fd < 3; fd++) {
    alloc_fd(files, fd, RLIMIT_NOFILE_CUR, 0);
    fd_install(files, fd, fd === 0 ? file : get_file(file));
  }
  return files;
}

/** A syscall's descriptor argument: an unsigned int (a negative one is a large number no table reaches). */
export function fdArg(a: bigint): number {
  return Number(a & 0xffffffffn);
}

/** close(fd). */
export function sys_close(_k: Kernel, _pc: PerCpu, t: Task, a: readonly bigint[]): number {
  if (!t.files) return -EBADF;
  return close_fd(t.files, fdArg(a[0]));
}

/** dup(fildes): the lowest free descriptor for the same file; -EBADF, then -EMFILE. */
export function sys_dup(_k: Kernel, _pc: PerCpu, t: Task, a: readonly bigint[]): number {
  const file = fget_raw(t, fdArg(a[0]));
  if (!file) return -EBADF;
  const fd = get_unused_fd_flags(t.files!, 0);
  if (fd < 0) {
    fput(file);
    return fd;
  }
  fd_install(t.files!, fd, file);
  return fd;
}

/**
 * ksys_dup3(oldfd, newfd, flags), in Linux's order: flags other than O_CLOEXEC, then the same
 * descriptor twice (-EINVAL); newfd at or above RLIMIT_NOFILE, then an oldfd with no file
 * (-EBADF); a newfd reserved by an open in progress (-EBUSY). A file at newfd is closed.
 */
export function ksys_dup3(t: Task, oldfd: number, newfd: number, flags: number): number {
  if ((flags & ~O_CLOEXEC) !== 0) return -EINVAL;
  if (oldfd === newfd) return -EINVAL;
  if (newfd >= RLIMIT_NOFILE_CUR) return -EBADF;
  const files = t.files;
  const file = files_lookup_fd(files, oldfd);
  if (!files || !file) return -EBADF;
  expand_files(files, newfd);
  // do_dup2
  const tofree = files.fd[newfd] ?? null;
  if (!tofree && files.open[newfd]) return -EBUSY;
  files.fd[newfd] = get_file(file);
  files.open[newfd] = true;
  files.cloexec[newfd] = (flags & O_CLOEXEC) !== 0;
  if (tofree) fput(tofree);
  return newfd;
}

/** dup3(oldfd, newfd, flags). */
export function sys_dup3(_k: Kernel, _pc: PerCpu, t: Task, a: readonly bigint[]): number {
  return ksys_dup3(t, fdArg(a[0]), fdArg(a[1]), Number(a[2] & 0xffffffffn));
}

/** dup2(oldfd, newfd): the same descriptor twice is oldfd if it is open, else -EBADF; otherwise dup3 without flags. */
export function sys_dup2(_k: Kernel, _pc: PerCpu, t: Task, a: readonly bigint[]): number {
  const oldfd = fdArg(a[0]);
  const newfd = fdArg(a[1]);
  if (oldfd === newfd) return files_lookup_fd(t.files, oldfd) ? oldfd : -EBADF;
  return ksys_dup3(t, oldfd, newfd, 0);
}
