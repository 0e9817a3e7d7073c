/**
 * ioctl (fs/ioctl.c): the descriptor's file (-EBADF), the commands every file takes
 * (do_vfs_ioctl), then the file's own (vfs_ioctl: f_op->unlocked_ioctl, or -ENOTTY when it has
 * none).
 *
 * XXX: of do_vfs_ioctl's commands only FIOCLEX and FIONCLEX; FIONBIO, FIOASYNC, FIOQSIZE,
 * FIFREEZE, FITHAW, FS_IOC_FIEMAP, FIGETBSZ, FICLONE and the others reach the file's ioctl.
 */
import { fdArg, fdget, fput, get_file } from './file.js';
import type { Kernel, PerCpu } from './kernel.js';
import type { KPath } from './steps.js';
import type { Task } from './task.js';
import { EBADF, ENOTTY, FIOCLEX, FIONCLEX } from './uapi.js';

/**
 * ioctl(fd, cmd, arg): fdget (an O_PATH descriptor is -EBADF), then FIOCLEX and FIONCLEX set
 * and clear the close-on-exec bit, then vfs_ioctl. `cmd` is an unsigned int.
 */
export function* sys_ioctl(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  const fd = fdArg(a[0]);
  const f = fdget(t, fd);
  if (!f) return -EBADF;
  const cmd = Number(a[1] & 0xffffffffn);
  // do_vfs_ioctl
  if (cmd === FIOCLEX || cmd === FIONCLEX) {
    t.files!.cloexec[fd] = cmd === FIOCLEX;
    return 0;
  }
  // vfs_ioctl: the file is held while its operation runs (a shared table may lose the descriptor meanwhile).
  const ioctl = f.f_op.ioctl;
  if (!ioctl) return -ENOTTY;
  get_file(f);
  const r = yield* ioctl(k, pc, t, f, cmd, a[2]);
  fput(f);
  return r;
}
