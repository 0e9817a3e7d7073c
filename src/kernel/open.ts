/**
 * open, openat and ftruncate (fs/open.c, fs/namei.c do_open, mm/shmem.c): the name copied in
 * (getname), a descriptor reserved, the path walked and the last component created or
 * checked, the file set up with its mode, O_TRUNC applied; and truncation of a tmpfs file,
 * which unmaps and frees the pages past the new end and zeroes the tail of the last one.
 *
 * XXX: the walk, the creation and the descriptor's installation are one step (Linux holds the
 * parent directory's lock across a creation). No O_TMPFILE (-EOPNOTSUPP); every task is root,
 * so no permission refuses.
 */
import type { Kernel, PerCpu } from './kernel.js';
import type { KPath } from './steps.js';
import type { Task } from './task.js';
import { tlb_finish_mmu, tlb_gather_mmu, unmap_page_range } from './zap.js';
import type { ShmemObject } from './vma.js';
import { strncpy_from_user } from './uaccess.js';
import {
  fd_install, fdArg, fdget, files_lookup_fd, File, fput, FMODE_ATOMIC_POS, FMODE_CAN_ODIRECT, FMODE_CAN_READ, FMODE_CAN_WRITE, FMODE_LSEEK, FMODE_PATH, FMODE_PREAD, FMODE_PWRITE, FMODE_READ, FMODE_WRITE,
  get_unused_fd_flags, put_unused_fd,
} from './file.js';
import { PATH_MAX, path_walk, vfs_create, type Inode } from './vfs.js';
import {
  AT_FDCWD, EBADF, EEXIST, EINVAL, EISDIR, ENOENT, ENOTDIR, EOPNOTSUPP, EPERM, F_SEAL_GROW, F_SEAL_SHRINK, O_ACCMODE, O_CLOEXEC, O_CREAT, O_DIRECTORY,
  O_EXCL, O_NOFOLLOW, O_LARGEFILE, O_NOCTTY, O_PATH, O_TRUNC, O_WRONLY, O_RDWR, __O_TMPFILE, O_APPEND, O_NONBLOCK, O_DSYNC, FASYNC, O_DIRECT,
  O_NOATIME, __O_SYNC,
} from './uapi.js';

/** O_PATH_FLAGS: what an O_PATH open keeps. */
const O_PATH_FLAGS = O_DIRECTORY | O_NOFOLLOW | O_PATH | O_CLOEXEC;
/** VALID_OPEN_FLAGS (include/linux/fcntl.h): the flags open keeps; others are ignored. */
const VALID_OPEN_FLAGS =
  O_ACCMODE | O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_APPEND | O_NONBLOCK | O_DSYNC | FASYNC | O_DIRECT | O_LARGEFILE | O_DIRECTORY | O_NOFOLLOW |
  O_NOATIME | O_CLOEXEC | __O_SYNC | O_PATH | __O_TMPFILE;

/**
 * do_sys_openat2 for open and openat: getname (-EFAULT, -ENAMETOOLONG, -ENOENT for ""), then
 * a descriptor (-EMFILE), then the walk and do_open; a failure after the descriptor was
 * reserved gives it back.
 */
function* do_sys_open(k: Kernel, pc: PerCpu, t: Task, dfd: number, filename: bigint, rawFlags: number, mode: number): KPath {
  // build_open_how: unknown flags are dropped; O_PATH keeps only O_PATH_FLAGS.
  let flags = rawFlags & VALID_OPEN_FLAGS;
  if (flags & O_PATH) flags &= O_PATH_FLAGS;
  // build_open_flags: a directory cannot be created by open.
  if ((flags & (O_DIRECTORY | O_CREAT)) === (O_DIRECTORY | O_CREAT)) return -EINVAL;
  const name = yield* strncpy_from_user(k, pc, t, filename, PATH_MAX);
  if (typeof name === 'number') return name;
  if (name === '') return -ENOENT;
  if (flags & __O_TMPFILE) return -EOPNOTSUPP;
  const files = t.files!;
  const fd = get_unused_fd_flags(t, flags);
  if (fd < 0) return fd;
  // path_init: a relative path starts at dfd's directory; AT_FDCWD is the root, the model's only working directory.
  let start = k.vfs.root;
  if (!name.startsWith('/') && dfd !== AT_FDCWD) {
    const dir = files_lookup_fd(files, fdArg(BigInt(dfd)));
    const err = !dir ? -EBADF : !dir.inode.isDir ? -ENOTDIR : 0;
    if (err < 0) {
      put_unused_fd(files, fd);
      return err;
    }
    start = dir!.inode;
  }
  const r = do_filp_open(k, t, start, name, flags, mode);
  if (typeof r === 'number') {
    put_unused_fd(files, fd);
    return r;
  }
  if (r.truncate) {
    const err = yield* do_truncate(k, pc, r.file.inode, 0);
    if (err < 0) {
      put_unused_fd(files, fd);
      return err;
    }
  }
  fd_install(files, fd, r.file);
  return fd;
}

/**
 * path_openat + do_open: the walk; O_CREAT creates a missing last component (-EEXIST with
 * O_EXCL when it exists, -EISDIR on a directory); without it a missing one is -ENOENT;
 * O_DIRECTORY asks for a directory (-ENOTDIR), and a directory opens only for reading
 * (-EISDIR); O_DIRECT needs a tmpfs file (-EINVAL); O_TRUNC empties an existing regular
 * file. Returns the file or -errno.
 */
function do_filp_open(k: Kernel, t: Task, start: Inode, name: string, flags: number, mode: number): { file: File; truncate: boolean } | number {
  const vfs = k.vfs;
  const l = path_walk(vfs, start, name, t);
  if (typeof l === 'number') return l;
  let inode: Inode;
  let created = false;
  if (flags & O_CREAT) {
    // lookup_fast_for_open: a trailing slash cannot name a file to create.
    if (l.trailingSlash) return -EISDIR;
    if (l.inode) {
      if (flags & O_EXCL) return -EEXIST;
      if (l.inode.isDir) return -EISDIR;
      inode = l.inode;
    } else {
      // procfs's lookups answer a missing name with -ENOENT (proc_pident_lookup, proc_lookup_de), before O_CREAT is looked at.
      if (l.dir.lookup) return -ENOENT;
      inode = vfs_create(vfs, l.dir, l.name, mode);
      created = true;
    }
  } else {
    if (!l.inode) return -ENOENT;
    if (l.trailingSlash && !l.inode.isDir) return -ENOTDIR;
    inode = l.inode;
  }
  // LOOKUP_DIRECTORY: O_DIRECTORY asks for a directory, O_PATH's walk too (path_lookupat for do_o_path).
  if (flags & O_DIRECTORY && !inode.isDir) return -ENOTDIR;
  if (flags & O_PATH) return { file: new File(inode, open_f_flags(flags), FMODE_PATH), truncate: false };
  const acc = flags & O_ACCMODE;
  // may_open: a directory is never opened for writing (O_TRUNC counts as writing, and so does
  // access mode 3, whose ACC_MODE is MAY_READ | MAY_WRITE).
  if (inode.isDir && (acc !== 0 || flags & O_TRUNC)) return -EISDIR;
  const file = new File(inode, open_f_flags(flags), open_f_mode(inode, acc));
  // do_dentry_open: the file's own open, whose failure undoes the file without a release.
  const err = inode.i_fop.open ? inode.i_fop.open(k, t, file) : 0;
  if (err < 0) {
    inode.openFiles--;
    return err;
  }
  // do_dentry_open: O_DIRECT on a file that cannot take it is -EINVAL (a file it created stays);
  // the file is opened by then, so its release runs.
  if (flags & O_DIRECT && !(file.f_mode & FMODE_CAN_ODIRECT)) {
    fput(file);
    return -EINVAL;
  }
  // handle_truncate, after the open: O_TRUNC empties an existing tmpfs file (XXX: and leaves a procfs file as it is).
  return { file, truncate: !created && (flags & O_TRUNC) !== 0 && inode.mapping !== null };
}

/** f_flags as do_dentry_open leaves them: O_CLOEXEC lives in the descriptor table, and O_CREAT, O_EXCL, O_NOCTTY and O_TRUNC are spent. */
function open_f_flags(flags: number): number {
  return flags & ~(O_CLOEXEC | O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC);
}

/** f_mode: FMODE_READ and FMODE_WRITE from the access mode (3 means neither), the seek and positioned-I/O bits, and what the file's operations can do (O_DIRECT too). */
function open_f_mode(inode: Inode, acc: number): number {
  let m = FMODE_LSEEK | FMODE_PREAD | FMODE_PWRITE;
  if (acc === 0 || acc === O_RDWR) m |= FMODE_READ;
  if (acc === O_WRONLY || acc === O_RDWR) m |= FMODE_WRITE;
  // do_dentry_open: FMODE_CAN_READ and FMODE_CAN_WRITE when the file has the operation (a directory has no write).
  if (m & FMODE_READ && inode.i_fop.read) m |= FMODE_CAN_READ;
  if (m & FMODE_WRITE && inode.i_fop.write) m |= FMODE_CAN_WRITE;
  if (inode.isReg || inode.isDir) m |= FMODE_ATOMIC_POS;
  // shmem_file_open: a tmpfs file takes O_DIRECT (no other file here, procfs's included, has a_ops->direct_IO).
  if (inode.kind === 'reg') m |= FMODE_CAN_ODIRECT;
  return m;
}

/** open(filename, flags, mode): O_LARGEFILE is forced on x86-64 (force_o_largefile). */
export function sys_open(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  return do_sys_open(k, pc, t, AT_FDCWD, a[0], Number(a[1] & 0xffffffffn) | O_LARGEFILE, Number(a[2] & 0xffffn));
}

/** openat(dfd, filename, flags, mode). */
export function sys_openat(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  return do_sys_open(k, pc, t, Number(BigInt.asIntN(32, a[0])), a[1], Number(a[2] & 0xffffffffn) | O_LARGEFILE, Number(a[3] & 0xffffn));
}

/**
 * do_truncate on a tmpfs inode (shmem_setattr): a memfd's seals refuse shrinking or growing
 * (-EPERM); the size changes; shrinking unmaps the pages past the new end from every mapping
 * of the file, private copies included (unmap_mapping_range with even_cows), so that touching
 * them is SIGBUS, then frees them and zeroes the rest of the last page (shmem_truncate_range).
 */
export function* do_truncate(k: Kernel, pc: PerCpu, inode: Inode, length: number): KPath {
  if ((length < inode.size && inode.seals & F_SEAL_SHRINK) || (length > inode.size && inode.seals & F_SEAL_GROW)) return -EPERM;
  const mapping = inode.mapping!;
  const shrink = length < inode.size;
  inode.size = length;
  if (!shrink) return 0;
  const keep = Math.ceil(length / 4096);
  yield* unmap_mapping_range(k, pc, mapping, keep);
  for (const [index, pfn] of [...mapping.pages]) {
    if (index < keep) continue;
    mapping.pages.delete(index);
    k.pages.put_page(pfn);
  }
  const tail = length % 4096;
  const last = mapping.pages.get(Math.floor(length / 4096));
  if (tail !== 0 && last !== undefined) k.machine.mem.writeBytes(last * 4096 + tail, new Uint8Array(4096 - tail));
  return 0;
}

/** unmap_mapping_range(mapping, from, 0, 1): zaps, in every mm, each mapping's PTEs for the file's pages from page `from` on, with the TLB flush each zap needs. */
function* unmap_mapping_range(k: Kernel, pc: PerCpu, mapping: ShmemObject, from: number): KPath {
  for (const mm of [...k.mms]) {
    if (mm.dead) continue;
    for (const v of [...mm.vmas.list]) {
      if (v.shmem !== mapping) continue;
      const start = v.vm_start + Math.max(0, from - v.vm_pgoff) * 4096;
      if (start >= v.vm_end) continue;
      const tlb = tlb_gather_mmu(mm);
      yield* unmap_page_range(k, pc, tlb, start, v.vm_end);
      yield* tlb_finish_mmu(k, pc, tlb);
    }
  }
  return 0;
}

/**
 * ftruncate(fd, length), in do_sys_ftruncate's order: a negative length (-EINVAL), then the
 * descriptor (-EBADF), then a file that is not regular or not open for writing (-EINVAL).
 */
export function sys_ftruncate(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): number | KPath {
  const length = BigInt.asIntN(64, a[1]);
  if (length < 0n) return -EINVAL;
  const f = fdget(t, fdArg(a[0]));
  if (!f) return -EBADF;
  if (!f.inode.isReg || !(f.f_mode & FMODE_WRITE)) return -EINVAL;
  // XXX: a procfs file's size is not kept (proc_setattr), so truncating one changes nothing.
  if (!f.inode.mapping) return 0;
  return do_truncate(k, pc, f.inode, Number(length));
}
