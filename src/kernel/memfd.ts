/**
 * memfd_create (mm/memfd.c): an anonymous tmpfs file, in no directory, open for reading and
 * writing, with the seals its flags allow, and the sealing rules that touch its mappings
 * (memfd_add_seals refusing F_SEAL_WRITE while a shared mapping may write).
 *
 * XXX: no MFD_HUGETLB (-EINVAL, as without huge pages); vm.memfd_noexec is 0, so a memfd made
 * without MFD_EXEC or MFD_NOEXEC_SEAL is executable (Linux also warns once); F_SEAL_WRITE does
 * not wait for pinned pages (memfd_wait_for_pins: the model has no long-term pins yet).
 */
import type { Kernel, PerCpu } from './kernel.js';
import type { KPath } from './steps.js';
import type { Task } from './task.js';
import { strncpy_from_user } from './uaccess.js';
import { fd_install, File, FMODE_ATOMIC_POS, FMODE_CAN_READ, FMODE_CAN_WRITE, FMODE_LSEEK, FMODE_PREAD, FMODE_PWRITE, FMODE_READ, FMODE_WRITE, get_unused_fd_flags, put_unused_fd } from './file.js';
import { TMPFS_DEV } from './vfs.js';
import {
  EFAULT, EINVAL, ENAMETOOLONG, F_SEAL_EXEC, F_SEAL_SEAL, MFD_ALLOW_SEALING, MFD_CLOEXEC, MFD_EXEC, MFD_HUGETLB, MFD_NOEXEC_SEAL, O_CLOEXEC, O_LARGEFILE, O_RDWR, S_IFREG,
} from './uapi.js';

const MFD_ALL_FLAGS = MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | MFD_NOEXEC_SEAL | MFD_EXEC;
/** MFD_NAME_MAX_LEN: NAME_MAX less the "memfd:" prefix. */
const MFD_NAME_MAX_LEN = 255 - 6;

/**
 * memfd_create(uname, flags), in mm/memfd.c's order: unknown flags and both of MFD_EXEC and
 * MFD_NOEXEC_SEAL (-EINVAL); the name (-EFAULT, -EINVAL past 249 bytes); a descriptor
 * (-EMFILE, O_CLOEXEC with MFD_CLOEXEC); MFD_HUGETLB (-EINVAL here); then the file: mode 0777 (0666 with
 * MFD_NOEXEC_SEAL, which also seals F_SEAL_EXEC and allows sealing), sealed against sealing
 * unless MFD_ALLOW_SEALING.
 */
export function* sys_memfd_create(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  const flags = Number(a[1] & 0xffffffffn);
  // sanitize_flags
  if (flags & ~MFD_ALL_FLAGS) return -EINVAL;
  if (flags & MFD_EXEC && flags & MFD_NOEXEC_SEAL) return -EINVAL;
  // alloc_name: strnlen_user of at most MFD_NAME_MAX_LEN + 1 bytes.
  const name = yield* strncpy_from_user(k, pc, t, a[0], MFD_NAME_MAX_LEN + 1);
  if (name === -ENAMETOOLONG) return -EINVAL;
  if (typeof name === 'number') return -EFAULT;
  const fd = get_unused_fd_flags(t, flags & MFD_CLOEXEC ? O_CLOEXEC : 0);
  if (fd < 0) return fd;
  // alloc_file: the model has no hugetlbfs.
  if (flags & MFD_HUGETLB) {
    put_unused_fd(t.files!, fd);
    return -EINVAL;
  }
  const noexec = (flags & MFD_NOEXEC_SEAL) !== 0;
  const inode = k.vfs.newInode(S_IFREG | (noexec ? 0o666 : 0o777), 'reg', TMPFS_DEV, 0);
  inode.nlink = 0;
  if (noexec) inode.seals = F_SEAL_EXEC;
  else if (flags & MFD_ALLOW_SEALING) inode.seals &= ~F_SEAL_SEAL;
  inode.name = `memfd:${name}`;
  k.vfs.orphans.add(inode);
  const mode = FMODE_READ | FMODE_WRITE | FMODE_LSEEK | FMODE_PREAD | FMODE_PWRITE | FMODE_CAN_READ | FMODE_CAN_WRITE | FMODE_ATOMIC_POS;
  fd_install(t.files!, fd, new File(inode, O_RDWR | O_LARGEFILE, mode));
  return fd;
}
