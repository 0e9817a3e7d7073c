/**
 * ioctl (fs/ioctl.c): the descriptor's file (-EBADF), the commands every file takes
 * (do_vfs_ioctl), then the file's own (vfs_ioctl: f_op->unlocked_ioctl, or -ENOTTY when it has
 * none).
 *
 * XXX: of do_vfs_ioctl's commands only FIOCLEX, FIONCLEX, FIONBIO and FIONREAD; FIOASYNC (no
 * SIGIO), FIOQSIZE, FIFREEZE, FITHAW, FS_IOC_FIEMAP, FIGETBSZ, FICLONE and the others reach the
 * file's ioctl.
 */
import { fdArg, fdget, fput, get_file } from './file.js';
import type { Kernel, PerCpu } from './kernel.js';
import type { KPath } from './steps.js';
import type { Task } from './task.js';
import { copy_from_user, copy_to_user, putU32 } from './uaccess.js';
import { EBADF, EFAULT, ENOTTY, FIOCLEX, FIONBIO, FIONCLEX, FIONREAD, O_NONBLOCK } from './uapi.js';

/**
 * ioctl(fd, cmd, arg): fdget (an O_PATH descriptor is -EBADF), then do_vfs_ioctl's commands:
 * FIOCLEX and FIONCLEX set and clear the close-on-exec bit; FIONBIO reads an int (-EFAULT) and
 * sets or clears O_NONBLOCK (ioctl_fionbio); FIONREAD of a regular file stores its size less
 * the position as an int (-EFAULT), of anything else goes to the file; then vfs_ioctl. `cmd`
 * is an unsigned int.
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
  if (cmd === FIONBIO) {
    const b = yield* copy_from_user(k, pc, t, a[2], 4);
    if (!b) return -EFAULT;
    if (b.some((x) => x !== 0)) f.f_flags |= O_NONBLOCK;
    else f.f_flags &= ~O_NONBLOCK;
    return 0;
  }
  if (cmd === FIONREAD && f.inode.isReg) {
    // put_user(i_size_read(inode) - filp->f_pos, (int __user *)argp): the loff_t difference truncated to an int.
    const b = new Uint8Array(4);
    putU32(b, 0, Number(BigInt.asUintN(32, BigInt(f.inode.size - f.f_pos))));
    return (yield* copy_to_user(k, pc, t, a[2], b)) ? 0 : -EFAULT;
  }
  // vfs_ioctl: the file is held while its operation runs (a shared table may lose the descriptor meanwhile).
  const ioctl = f.f_op.ioctl;
  if (!ioctl) return -ENOTTY;
  get_file(f);
  const r = yield* ioctl(k, pc, t, f, cmd, a[2]);
  fput(f);
  return r;
}
