/**
 * fstat (fs/stat.c vfs_fstat, cp_new_stat): an inode's attributes in x86-64's struct stat
 * (arch/x86/include/uapi/asm/stat.h, 144 bytes), copied out whole.
 *
 * XXX: no clock, so every timestamp is 0; uid and gid are root's.
 */
import type { Kernel, PerCpu } from './kernel.js';
import type { KPath } from './steps.js';
import type { Task } from './task.js';
import { copy_to_user, putU32, putU64 } from './uaccess.js';
import { fdArg, files_lookup_fd } from './file.js';
import type { Inode } from './vfs.js';
import { EBADF, EFAULT } from './uapi.js';

/** sizeof(struct stat) on x86-64. */
export const STAT_SIZE = 144;

/** struct stat's fields by offset, as cp_new_stat fills them. */
export function cp_new_stat(inode: Inode): Uint8Array {
  const b = new Uint8Array(STAT_SIZE);
  putU64(b, 0, BigInt(inode.dev)); // st_dev
  putU64(b, 8, BigInt(inode.ino)); // st_ino
  putU64(b, 16, BigInt(inode.nlink)); // st_nlink
  putU32(b, 24, inode.mode); // st_mode
  putU32(b, 28, 0); // st_uid
  putU32(b, 32, 0); // st_gid
  putU64(b, 40, BigInt(inode.rdev)); // st_rdev
  putU64(b, 48, BigInt(inode.kind === 'reg' || inode.kind === 'dir' ? inode.size : 0)); // st_size
  putU64(b, 56, 4096n); // st_blksize: tmpfs's PAGE_SIZE, a device's too
  putU64(b, 64, BigInt(inode.mapping ? inode.mapping.pages.size * 8 : 0)); // st_blocks: 512-byte units of the pages a tmpfs file has
  return b;
}

/** fstat(fd, statbuf): fdget_raw (-EBADF; an O_PATH descriptor is fine), then the copy (-EFAULT). */
export function* sys_fstat(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  const f = files_lookup_fd(t.files, fdArg(a[0]));
  if (!f) return -EBADF;
  const ok = yield* copy_to_user(k, pc, t, a[1], cp_new_stat(f.inode));
  return ok ? 0 : -EFAULT;
}
