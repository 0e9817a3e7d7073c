/**
 * fcntl (fs/fcntl.c do_fcntl, mm/memfd.c memfd_fcntl): duplicating a descriptor (F_DUPFD,
 * F_DUPFD_CLOEXEC), its close-on-exec bit (F_GETFD, F_SETFD), the file's flags (F_GETFL,
 * F_SETFL), a tmpfs file's seals (F_ADD_SEALS, F_GET_SEALS) and a pipe's size
 * (F_SETPIPE_SZ, F_GETPIPE_SZ, pipe.ts). Other commands are -EINVAL.
 */
import type { Kernel, PerCpu } from './kernel.js';
import type { Task } from './task.js';
import type { KPath } from './steps.js';
import { pipe_fcntl } from './pipe.js';
import { inode_lock, inode_unlock } from './read_write.js';
import { STEP_SLEEP, type KSteps } from './steps.js';
import { VM_MAYWRITE, VM_SHARED, type ShmemObject } from './vma.js';
import { alloc_fd, fd_install, fdArg, files_lookup_fd, FMODE_CAN_ODIRECT, FMODE_PATH, FMODE_WRITE, get_file, type File } from './file.js';
import { rlimit_num } from './resource.js';
import {
  EBADF, EBUSY, EINVAL, EPERM, F_ADD_SEALS, F_DUPFD, F_DUPFD_CLOEXEC, F_GET_SEALS, F_GETFD, F_GETFL, F_GETPIPE_SZ, F_SETPIPE_SZ, F_SEAL_EXEC, F_SEAL_FUTURE_WRITE, F_SEAL_GROW, F_SEAL_SEAL,
  F_SEAL_SHRINK, F_SEAL_WRITE, F_SETFD, F_SETFL, FD_CLOEXEC, O_APPEND, O_CLOEXEC, O_DIRECT, O_NOATIME, O_NONBLOCK, RLIMIT_NOFILE,
} from './uapi.js';

/** SETFL_MASK: the flags F_SETFL changes (O_NDELAY is O_NONBLOCK on x86). */
const SETFL_MASK = O_APPEND | O_NONBLOCK | O_DIRECT | O_NOATIME;
/** F_ALL_SEALS. */
const F_ALL_SEALS = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE | F_SEAL_EXEC;

/** f_dupfd: the lowest free descriptor at or above `from` (-EINVAL past RLIMIT_NOFILE, -EMFILE when none is free). */
function f_dupfd(t: Task, from: number, file: File, flags: number): number {
  const nofile = rlimit_num(t, RLIMIT_NOFILE);
  if (from >= nofile) return -EINVAL;
  const fd = alloc_fd(t.files!, from, nofile, flags);
  if (fd >= 0) fd_install(t.files!, fd, get_file(file));
  return fd;
}

/**
 * memfd_add_seals, in its order: the file open for writing (-EPERM), the seals known
 * (-EINVAL); then under inode_lock: a tmpfs file (-EINVAL), not sealed against sealing
 * (-EPERM); F_SEAL_EXEC on an executable file brings the write and size seals with it; for
 * F_SEAL_WRITE, no shared mapping that may write (-EBUSY), and no page with references
 * beyond the page cache's and its mappings' (memfd_wait_for_pins: -EBUSY if some remain).
 */
function* memfd_add_seals(k: Kernel, pc: PerCpu, t: Task, file: File, seals: number): KPath {
  if (!(file.f_mode & FMODE_WRITE)) return -EPERM;
  if (seals & ~F_ALL_SEALS) return -EINVAL;
  const inode = file.inode;
  yield* inode_lock(pc, t, inode);
  let error = 0;
  if (!inode.isReg) error = -EINVAL;
  else if (inode.seals & F_SEAL_SEAL) error = -EPERM;
  else {
    if (seals & F_SEAL_EXEC && inode.mode & 0o111) seals |= F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE;
    // mapping_deny_writable: F_SEAL_WRITE waits for no shared mapping that may write.
    if (seals & F_SEAL_WRITE && !(inode.seals & F_SEAL_WRITE)) {
      if (shared_maywrite(k, inode.mapping!)) error = -EBUSY;
      else error = yield* memfd_wait_for_pins(k, pc, inode.mapping!);
    }
    if (!error) inode.seals |= seals;
  }
  yield* inode_unlock(pc, inode);
  return error;
}

/** LAST_SCAN: memfd_wait_for_pins looks again this many times (about 150 ms in all) before it gives up. */
const LAST_SCAN = 4;

/**
 * memfd_wait_for_pins: the pages with references beyond the page cache's and their
 * mappings' (memfd_folio_has_extra_refs: a pin, a GUP reference, a pipe buffer) are tagged;
 * then up to LAST_SCAN times the task gives its CPU up (the kernel sleeps 10 to 80 ms; the
 * model has no clock, so other tasks simply get to run) and looks again at the tagged pages.
 * -EBUSY if one still has extra references at the last look.
 */
function* memfd_wait_for_pins(k: Kernel, pc: PerCpu, mapping: ShmemObject): KSteps<number> {
  const pages = k.pages;
  const extra = (pfn: number): boolean => pages.refcount[pfn] - pages.mapcount[pfn] !== 1;
  let tagged = [...mapping.pages.entries()].filter(([, pfn]) => extra(pfn));
  for (let scan = 0; scan <= LAST_SCAN; scan++) {
    if (tagged.length === 0) return 0;
    if (scan > 0 && pc.runqueue.length > 0) yield STEP_SLEEP;
    const still = tagged.filter(([index, pfn]) => mapping.pages.get(index) === pfn && extra(pfn));
    if (scan === LAST_SCAN && still.length > 0) return -EBUSY;
    tagged = still;
  }
  return 0;
}

/** Whether some mm maps `mapping` shared with VM_MAYWRITE (i_mmap_writable above 0). */
function shared_maywrite(k: Kernel, mapping: ShmemObject): boolean {
  for (const mm of k.mms) {
    if (mm.dead) continue;
    for (const v of mm.vmas.list) if (v.shmem === mapping && v.vm_flags & VM_SHARED && v.vm_flags & VM_MAYWRITE) return true;
  }
  return false;
}

/**
 * setfl: O_DIRECT on a file that cannot take it (not a pipe, no FMODE_CAN_ODIRECT: a memfd,
 * a directory, a memory device) is -EINVAL; then the SETFL_MASK flags change. (The O_APPEND
 * and O_NOATIME checks never refuse here: no append-only inodes, every task is root.)
 */
function setfl(file: File, arg: number): number {
  if (!file.inode.isFifo && arg & O_DIRECT && !(file.f_mode & FMODE_CAN_ODIRECT)) return -EINVAL;
  file.f_flags = (arg & SETFL_MASK) | (file.f_flags & ~SETFL_MASK);
  return 0;
}

/** fcntl(fd, cmd, arg): fdget_raw (-EBADF; an O_PATH descriptor answers the descriptor commands only), then the command. */
export function sys_fcntl(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): number | KPath {
  const fd = fdArg(a[0]);
  const file = files_lookup_fd(t.files, fd);
  if (!file) return -EBADF;
  const cmd = Number(a[1] & 0xffffffffn);
  const argi = Number(a[2] & 0xffffffffn);
  const path = (file.f_mode & FMODE_PATH) !== 0;
  switch (cmd) {
    case F_DUPFD:
      return f_dupfd(t, argi, file, 0);
    case F_DUPFD_CLOEXEC:
      return f_dupfd(t, argi, file, O_CLOEXEC);
    case F_GETFD:
      return t.files!.cloexec[fd] ? FD_CLOEXEC : 0;
    case F_SETFD:
      t.files!.cloexec[fd] = (argi & FD_CLOEXEC) !== 0;
      return 0;
    case F_GETFL:
      return file.f_flags;
  }
  // check_fcntl_cmd: an O_PATH descriptor takes only the commands above.
  if (path) return -EBADF;
  switch (cmd) {
    case F_SETFL:
      return setfl(file, argi);
    case F_ADD_SEALS:
      return memfd_add_seals(k, pc, t, file, argi);
    case F_GET_SEALS:
      return file.inode.isReg ? file.inode.seals : -EINVAL;
    case F_SETPIPE_SZ:
    case F_GETPIPE_SZ:
      return pipe_fcntl(k, pc, t, file, cmd, argi);
    default:
      return -EINVAL;
  }
}
