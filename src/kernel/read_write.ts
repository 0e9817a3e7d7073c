/**
 * read, write, pread64, pwrite64 and lseek (fs/read_write.c), which call the file's operations
 * (f_op), and the operations of the tmpfs and memory-device files: a tmpfs file's page cache (shmem_file_read_iter, generic_perform_write under inode_lock), a
 * directory (generic_read_dir), and /dev/null and /dev/zero (drivers/char/mem.c). The user
 * buffer is copied a page at a time through the processor (uaccess.ts), so a buffer that
 * faults beyond repair ends the transfer: the bytes already moved are the result, or -EFAULT
 * when there are none; protection keys, SMAP and demand faults apply as to any kernel access.
 *
 * A shared file's position is read and written under f_pos_lock (fdget_pos, for regular files
 * and directories), so two threads reading one descriptor never read the same bytes.
 *
 * XXX: no RLIMIT_FSIZE (SIGXFSZ) and no signal checks in the /dev/zero loop.
 */
import type { Kernel, PerCpu } from './kernel.js';
import { STEP_COPY, STEP_LOCK, STEP_UNLOCK, STEP_WAIT, type KPath, type KSteps } from './steps.js';
import type { Task } from './task.js';
import { access_ok, copy_from_user_partial, copy_to_user_partial } from './uaccess.js';
import { fdArg, fdget, fput, get_file, FMODE_ATOMIC_POS, FMODE_CAN_READ, FMODE_CAN_WRITE, FMODE_PREAD, FMODE_PWRITE, FMODE_READ, FMODE_WRITE, type File } from './file.js';
import { PG_shmem } from './page.js';
import type { Inode } from './vfs.js';
import { EBADF, EFAULT, EINVAL, ENOMEM, ENXIO, EOVERFLOW, EPERM, ESPIPE, F_SEAL_FUTURE_WRITE, F_SEAL_GROW, F_SEAL_WRITE, O_APPEND, SEEK_CUR, SEEK_DATA, SEEK_END, SEEK_HOLE, SEEK_SET } from './uapi.js';

/** MAX_RW_COUNT: INT_MAX rounded down to a page; longer transfers are clamped to it. */
export const MAX_RW_COUNT = 0x7ffff000;
/** MAX_LFS_FILESIZE: the largest position (LLONG_MAX). */
const MAX_LFS_FILESIZE = 2n ** 63n - 1n;

/** The lock id a step on a file's f_pos_lock or an inode's i_rwsem announces (steps.ts): negative, apart from the folio and per-mm ids. */
function fileLockId(kind: 'pos' | 'inode', id: number): number {
  return -(2 ** 41 + (kind === 'pos' ? 0 : 2 ** 32) + id);
}

/** What fdget_pos holds: the file, whether it took a reference (a shared table) and whether it holds f_pos_lock. */
interface FdPos {
  file: File;
  ref: boolean;
  locked: boolean;
}

/**
 * fdget_pos: the descriptor's file (an O_PATH one is -EBADF), a reference taken only when the
 * table is shared (__fget_light borrows the table's otherwise), and f_pos_lock taken when the
 * file's position is atomic and someone else may hold the file (file_needs_f_pos_lock: its
 * count above 1), so two threads, or parent and child after fork, never read the same bytes.
 */
function* fdget_pos(pc: PerCpu, t: Task, fd: number): KSteps<FdPos | null> {
  const file = fdget(t, fd);
  if (!file) return null;
  const ref = t.files!.count > 1;
  if (ref) get_file(file);
  if (!(file.f_mode & FMODE_ATOMIC_POS) || file.f_count <= 1) return { file, ref, locked: false };
  pc.touch = fileLockId('pos', file.inode.ino);
  yield STEP_LOCK;
  while (file.posLockOwner !== 0) yield STEP_WAIT;
  file.posLockOwner = t.tid;
  return { file, ref, locked: true };
}

/** fdput_pos. */
function* fdput_pos(pc: PerCpu, h: FdPos): KSteps<void> {
  if (h.locked) {
    pc.touch = fileLockId('pos', h.file.inode.ino);
    yield STEP_UNLOCK;
    h.file.posLockOwner = 0;
  }
  if (h.ref) fput(h.file);
}

/**
 * rw_verify_area's position checks: a negative position is -EINVAL unless the file's positions
 * are unsigned (FOP_UNSIGNED_OFFSET, /proc/PID/mem), where a count reaching past 2^64 is
 * -EOVERFLOW instead.
 */
function rw_verify_area(f: File, pos: number, count: number): number {
  if (pos >= 0) return 0;
  if (!f.f_op.unsigned_offset) return -EINVAL;
  return count >= -pos ? -EOVERFLOW : 0;
}

/**
 * vfs_read: the file open for reading (-EBADF) with a read operation (-EINVAL), the buffer in
 * user space (-EFAULT), the position not negative (rw_verify_area, -EINVAL), the count clamped
 * to MAX_RW_COUNT; then the file's read. Returns bytes read or -errno, and the new position.
 */
function* vfs_read(k: Kernel, pc: PerCpu, t: Task, f: File, buf: bigint, count: number, pos: number): KSteps<[number, number]> {
  if (!(f.f_mode & FMODE_READ)) return [-EBADF, pos];
  if (!(f.f_mode & FMODE_CAN_READ)) return [-EINVAL, pos];
  if (!access_ok(t, buf, count)) return [-EFAULT, pos];
  const err = rw_verify_area(f, pos, count);
  if (err) return [err, pos];
  return yield* f.f_op.read!(k, pc, t, f, buf, Math.min(count, MAX_RW_COUNT), pos);
}

/**
 * shmem_file_read_iter: page by page from `pos` to the end of the file (i_size is read again
 * for each page, as a truncation may race), a hole reading as zeroes; each page's bytes are
 * copied out in one step. A fault ends the read.
 */
export function* shmem_file_read(k: Kernel, pc: PerCpu, t: Task, f: File, buf: bigint, count: number, pos: number): KSteps<[number, number]> {
  const inode = f.inode;
  const mem = k.machine.mem;
  let done = 0;
  while (done < count) {
    const size = inode.size;
    if (pos >= size) break;
    const index = Math.floor(pos / 4096);
    const off = pos % 4096;
    const nr = Math.min(4096 - off, size - pos, count - done);
    const pfn = inode.mapping!.pages.get(index);
    const bytes = pfn === undefined ? new Uint8Array(nr) : mem.readBytes(pfn * 4096 + off, nr);
    const left = yield* copy_to_user_partial(k, pc, t, buf + BigInt(done), bytes);
    done += nr - left;
    pos += nr - left;
    if (left > 0) {
      if (done === 0) return [-EFAULT, pos];
      break;
    }
  }
  return [done, pos];
}

/**
 * vfs_write: the file open for writing (-EBADF) with a write operation (-EINVAL), the buffer
 * in user space (-EFAULT), the position not negative (-EINVAL), the count clamped; then the
 * file's write. /dev/null and /dev/zero take every byte without reading it.
 */
function* vfs_write(k: Kernel, pc: PerCpu, t: Task, f: File, buf: bigint, count: number, pos: number): KSteps<[number, number]> {
  if (!(f.f_mode & FMODE_WRITE)) return [-EBADF, pos];
  if (!(f.f_mode & FMODE_CAN_WRITE)) return [-EINVAL, pos];
  if (!access_ok(t, buf, count)) return [-EFAULT, pos];
  const err = rw_verify_area(f, pos, count);
  if (err) return [err, pos];
  return yield* f.f_op.write!(k, pc, t, f, buf, Math.min(count, MAX_RW_COUNT), pos);
}

/**
 * shmem_file_write_iter under inode_lock: O_APPEND writes at the end; a memfd's write seals
 * refuse (-EPERM), and F_SEAL_GROW refuses a write past the end; then generic_perform_write,
 * page by page: the page found or allocated zeroed (shmem_write_begin; -ENOMEM when memory ran
 * out and nothing was written), the user's bytes copied in, i_size moved past them. A fault
 * ends the write.
 */
export function shmem_file_write(k: Kernel, pc: PerCpu, t: Task, f: File, buf: bigint, count: number, pos: number): KSteps<[number, number]> {
  return shmem_file_write_iter(k, pc, t, f, (done, n) => copy_from_user_partial(k, pc, t, buf + BigInt(done), n), count, pos);
}

/**
 * Where a write's bytes come from (an iov_iter): given the bytes already taken and how many
 * are wanted next (at most a page's worth), the bytes it could give, fewer after a fault.
 */
export type WriteSource = (done: number, n: number) => KSteps<Uint8Array>;

/** shmem_file_write_iter from any source: the user's buffer (write, pwrite64) or pipe buffers' pages (splice). */
export function* shmem_file_write_iter(k: Kernel, pc: PerCpu, t: Task, f: File, src: WriteSource, count: number, pos: number): KSteps<[number, number]> {
  const inode = f.inode;
  yield* inode_lock(pc, t, inode);
  const r = yield* perform_write(k, pc, f, inode, src, count, pos);
  yield* inode_unlock(pc, inode);
  return r;
}

/** inode_lock: i_rwsem for writing (a lock step, waiting while another task holds it). */
export function* inode_lock(pc: PerCpu, t: Task, inode: Inode): KSteps<void> {
  pc.touch = fileLockId('inode', inode.ino);
  yield STEP_LOCK;
  while (inode.lockOwner !== 0) yield STEP_WAIT;
  inode.lockOwner = t.tid;
}

/** inode_unlock. */
export function* inode_unlock(pc: PerCpu, inode: Inode): KSteps<void> {
  pc.touch = fileLockId('inode', inode.ino);
  yield STEP_UNLOCK;
  inode.lockOwner = 0;
}

function* perform_write(k: Kernel, pc: PerCpu, f: File, inode: Inode, src: WriteSource, count: number, pos: number): KSteps<[number, number]> {
  // generic_write_checks: O_APPEND (IOCB_APPEND) writes at i_size, pwrite included.
  if (f.f_flags & O_APPEND) pos = inode.size;
  if (count === 0) return [0, pos];
  // shmem_file_write_iter -> file_write_checks: the seals.
  if (inode.seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) return [-EPERM, pos];
  if (inode.seals & F_SEAL_GROW && pos + count > inode.size) {
    if (pos >= inode.size) return [-EPERM, pos];
    count = inode.size - pos;
  }
  if (BigInt(pos) + BigInt(count) > MAX_LFS_FILESIZE) return [-EINVAL, pos];
  const mem = k.machine.mem;
  const mapping = inode.mapping!;
  let done = 0;
  while (done < count) {
    const index = Math.floor(pos / 4096);
    const off = pos % 4096;
    const nr = Math.min(4096 - off, count - done);
    const bytes = yield* src(done, nr);
    if (bytes.length === 0) break;
    // shmem_write_begin: the page, allocated zeroed on first use (a step of its own).
    let pfn = mapping.pages.get(index);
    if (pfn === undefined) {
      pc.touch = -1;
      yield STEP_COPY;
      pfn = mapping.pages.get(index);
      if (pfn === undefined) {
        pfn = k.pages.alloc_page(PG_shmem, true);
        if (pfn < 0) {
          if (done === 0) return [-ENOMEM, pos];
          break;
        }
        mapping.pages.set(index, pfn);
      }
    }
    mem.writeBytes(pfn * 4096 + off, bytes);
    done += bytes.length;
    pos += bytes.length;
    if (pos > inode.size) inode.size = pos;
    if (bytes.length < nr) break;
  }
  if (done === 0) return [-EFAULT, pos];
  return [done, pos];
}

/** The transfer vfs_read or vfs_write makes. */
type Transfer = typeof vfs_read;

/** ksys_read and ksys_write: under fdget_pos, from and to the file's position, which moves by what was transferred. */
function* ksys_rw(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[], io: Transfer): KPath {
  const h = yield* fdget_pos(pc, t, fdArg(a[0]));
  if (!h) return -EBADF;
  const [ret, pos] = yield* io(k, pc, t, h.file, a[1], clamp53(a[2]), h.file.f_pos);
  if (ret >= 0) h.file.f_pos = pos;
  yield* fdput_pos(pc, h);
  return ret;
}

/**
 * ksys_pread64 and ksys_pwrite64: a negative position first (-EINVAL), then the descriptor
 * (-EBADF), then a file that cannot take positioned I/O (-ESPIPE); the file's position stays.
 */
function* ksys_prw(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[], io: Transfer, mode: number): KPath {
  const pos = BigInt.asIntN(64, a[3]);
  if (pos < 0n) return -EINVAL;
  const f = fdget(t, fdArg(a[0]));
  if (!f) return -EBADF;
  if (!(f.f_mode & mode)) return -ESPIPE;
  get_file(f);
  const [ret] = yield* io(k, pc, t, f, a[1], clamp53(a[2]), clamp53(pos));
  fput(f);
  return ret;
}

/** read(fd, buf, count). */
export function sys_read(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  return ksys_rw(k, pc, t, a, vfs_read);
}

/** write(fd, buf, count). */
export function sys_write(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  return ksys_rw(k, pc, t, a, vfs_write);
}

/** pread64(fd, buf, count, pos). */
export function sys_pread64(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  return ksys_prw(k, pc, t, a, vfs_read, FMODE_PREAD);
}

/** pwrite64(fd, buf, count, pos): an O_APPEND file is still written at its end, as Linux does. */
export function sys_pwrite64(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  return ksys_prw(k, pc, t, a, vfs_write, FMODE_PWRITE);
}

/**
 * lseek(fd, offset, whence): the descriptor (-EBADF), then whence beyond SEEK_HOLE (-EINVAL);
 * /dev/null and /dev/zero always seek to 0; a tmpfs file by generic_file_llseek_size with
 * SEEK_DATA and SEEK_HOLE by its pages (shmem_file_llseek: -ENXIO at or past the end); a
 * directory by SEEK_SET and SEEK_CUR only; a negative result is -EINVAL. Returns the new
 * position.
 */
export function* sys_lseek(_k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  const h = yield* fdget_pos(pc, t, fdArg(a[0]));
  if (!h) return -EBADF;
  const whence = Number(a[2] & 0xffffffffn);
  const llseek = h.file.f_op.llseek;
  const ret = whence > SEEK_HOLE ? -EINVAL : llseek ? llseek(h.file, BigInt.asIntN(64, a[1]), whence) : -ESPIPE;
  yield* fdput_pos(pc, h);
  return ret;
}

/** shmem_file_llseek and dcache_dir_lseek: generic_file_llseek_size, with SEEK_DATA and SEEK_HOLE for a file and only SEEK_SET and SEEK_CUR for a directory. */
export function shmem_llseek(f: File, offset: bigint, whence: number): number {
  const inode = f.inode;
  const size = BigInt(inode.size);
  let to: bigint;
  switch (whence) {
    case SEEK_SET:
      to = offset;
      break;
    case SEEK_CUR:
      if (offset === 0n) return f.f_pos;
      to = BigInt(f.f_pos) + offset;
      break;
    case SEEK_END:
      if (inode.isDir) return -EINVAL;
      to = size + offset;
      break;
    default: {
      if (inode.isDir) return -EINVAL;
      // SEEK_DATA / SEEK_HOLE (shmem_file_llseek): -ENXIO at or past the end.
      if (offset < 0n || offset >= size) return -ENXIO;
      to = whence === SEEK_DATA ? seekData(inode, Number(offset)) : seekHole(inode, Number(offset));
      if (to < 0n) return -ENXIO;
    }
  }
  if (to < 0n || to > MAX_LFS_FILESIZE) return -EINVAL;
  f.f_pos = Number(to);
  return f.f_pos;
}

/** The first byte at or after `from` in a page the file has (mapping_seek_hole_data), or -1. */
function seekData(inode: Inode, from: number): bigint {
  for (let pos = from; pos < inode.size; pos = (Math.floor(pos / 4096) + 1) * 4096) if (inode.mapping!.pages.has(Math.floor(pos / 4096))) return BigInt(pos);
  return -1n;
}

/** The first byte at or after `from` in no page of the file, or the end of the file. */
function seekHole(inode: Inode, from: number): bigint {
  for (let pos = from; pos < inode.size; pos = (Math.floor(pos / 4096) + 1) * 4096) if (!inode.mapping!.pages.has(Math.floor(pos / 4096))) return BigInt(pos);
  return BigInt(inode.size);
}

/**
 * A size_t count or a non-negative position as a number: anything past 2^53 reads as 2^53
 * (past MAX_RW_COUNT only access_ok and the clamp look at a count, and the model's files are
 * far smaller than such a position).
 */
function clamp53(a: bigint): number {
  return a > 2n ** 53n ? 2 ** 53 : Number(a);
}
