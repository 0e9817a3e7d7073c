/**
 * fcntl (fs/fcntl.c do_fcntl, mm/memfd.c memfd_fcntl): duplicating a descriptor (F_DUPFD,
 * F_DUPFD_CLOEXEC), its close-on-exec bit (F_GETFD, F_SETFD), the file's flags (F_GETFL,
 * F_SETFL) and a tmpfs file's seals (F_ADD_SEALS, F_GET_SEALS). Other commands are -EINVAL.
 */
import type { Kernel, PerCpu } from './kernel.js';
import type { Task } from './task.js';
import { VM_MAYWRITE, VM_SHARED, type ShmemObject } from './vma.js';
import { alloc_fd, fd_install, fdArg, files_lookup_fd, FMODE_PATH, FMODE_WRITE, get_file, type File } from './file.js';
import { rlimit_num } from './resource.js';
import {
  EBADF, EBUSY, EINVAL, EPERM, F_ADD_SEALS, F_DUPFD, F_DUPFD_CLOEXEC, F_GET_SEALS, F_GETFD, F_GETFL, F_SEAL_EXEC, F_SEAL_FUTURE_WRITE, F_SEAL_GROW, F_SEAL_SEAL,
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
 * (-EINVAL), a tmpfs file (-EINVAL), not sealed against sealing (-EPERM), and for F_SEAL_WRITE
 * no shared mapping that may write (-EBUSY). XXX: pinned pages are not waited for.
 */
function memfd_add_seals(k: Kernel, file: File, seals: number): number {
  if (!(file.f_mode & FMODE_WRITE)) return -EPERM;
  if (seals & ~F_ALL_SEALS) return -EINVAL;
  if (!file.inode.isReg) return -EINVAL;
  if (file.inode.seals & F_SEAL_SEAL) return -EPERM;
  // mapping_deny_writable: F_SEAL_WRITE waits for no shared mapping that may write.
  if (seals & F_SEAL_WRITE && !(file.inode.seals & F_SEAL_WRITE) && shared_maywrite(k, file.inode.mapping!)) return -EBUSY;
  file.inode.seals |= seals;
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

/** fcntl(fd, cmd, arg): fdget_raw (-EBADF; an O_PATH descriptor answers the descriptor commands only), then the command. */
export function sys_fcntl(k: Kernel, _pc: PerCpu, t: Task, a: readonly bigint[]): number {
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
      file.f_flags = (argi & SETFL_MASK) | (file.f_flags & ~SETFL_MASK);
      return 0;
    case F_ADD_SEALS:
      return memfd_add_seals(k, file, argi);
    case F_GET_SEALS:
      return file.inode.isReg ? file.inode.seals : -EINVAL;
    default:
      return -EINVAL;
  }
}
