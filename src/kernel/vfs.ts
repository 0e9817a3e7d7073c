/**
 * The file namespace (fs/namei.c, fs/dcache.c) over one in-memory filesystem: a tmpfs root
 * (mm/shmem.c) holding /tmp and a devtmpfs-like /dev with the memory devices
 * null and zero (drivers/char/mem.c). A regular file's data is its page cache: a shmem object
 * whose pages are frames of physical memory, allocated on first write and freed by truncation,
 * as tmpfs keeps them, so that a file's pages can be mapped and pinned like any folio.
 *
 * XXX: one mount, no symlinks, hard links, rename or unlink; every task runs as root with full
 * capabilities, so permission bits are kept and reported but never refuse anything; no
 * timestamps (they read 0).
 */
import { opaqueCode, track } from '../track.js';
import { ENAMETOOLONG, ENOENT, ENOTDIR, S_IFCHR, S_IFDIR, S_IFIFO, S_IFMT, S_IFREG } from './uapi.js';
import type { PageAllocator } from './page.js';
import type { FileOperations } from './file.js';
import type { Task } from './task.js';
import { null_fops, shmem_file_operations, simple_dir_operations, zero_fops } from './fops.js';
import { pipefifo_fops, type PipeInodeInfo } from './pipe.js';
import { ShmemObject } from './vma.js';

/** NAME_MAX: a path component's longest name. */
export const NAME_MAX = 255;
/** PATH_MAX: the longest path getname takes, its NUL included. */
export const PATH_MAX = 4096;
/** BOGO_DIRENT_SIZE (mm/shmem.c): what each entry adds to a tmpfs directory's size. */
export const BOGO_DIRENT_SIZE = 20;

/** The device numbers st_dev reports: the tmpfs root and the devtmpfs /dev (anonymous block devices 0:N, as get_anon_bdev hands them out). */
export const TMPFS_DEV = 0x1a;
export const DEVTMPFS_DEV = 0x5;
/** The anon_inodefs device (XXX: its minor is whatever get_anon_bdev gave at boot; 0:14 here). */
export const ANON_INODE_DEV = 0xe;

/** What an inode's file operations are: a tmpfs file or directory, one of the memory devices, a pipe, a procfs file (proc_base.ts sets its operations), or an anonymous inode (whose creator gives them). */
export type InodeKind = 'reg' | 'dir' | 'null' | 'zero' | 'fifo' | 'proc' | 'anon';

/** A procfs or anonymous inode's operations until its maker gives it its own. */
const NO_FOPS = Object.freeze<FileOperations>({});

/** Each kind's operations: shmem_get_inode's for tmpfs files and directories, the memory devices' (memory_fops' open picks them by minor). */
function kind_fops(kind: InodeKind): FileOperations {
  return { reg: shmem_file_operations, dir: simple_dir_operations, null: null_fops, zero: zero_fops, fifo: pipefifo_fops, proc: NO_FOPS, anon: NO_FOPS }[kind];
}

/** An inode: its mode, size and, for a regular file, its page cache; for a directory, its entries. */
export class Inode {
  /** st_nlink. */
  nlink: number;
  /** i_size in bytes. */
  size = 0;
  /** A regular file's pages by index (the page cache, mapping->i_pages); a page not there is a hole. */
  readonly mapping: ShmemObject | null;
  /** A directory's entries by name, and its parent (null for the root). */
  readonly entries: Map<string, Inode> | null;
  parent: Inode | null = null;
  /** The memfd seals (shmem_inode_info.seals): a tmpfs file not made by memfd_create is born sealed against sealing. */
  seals = 0;
  /** The name it was created under (a memfd's is `memfd:NAME`), for listings. */
  name = '';
  /** i_rwsem held for writing (inode_lock): the tid of its holder, or 0. */
  lockOwner = 0;
  /** Open files of it (struct files not yet released). */
  openFiles = 0;
  /** The filesystem it belongs to (set by Vfs.newInode). */
  vfs!: Vfs;
  /** i_fop: the operations a file opened on it gets. */
  i_fop: FileOperations;
  /** i_pipe: a pipe inode's pipe, until its last file goes. */
  i_pipe: PipeInodeInfo | null = null;
  /** i_private: what a procfs inode belongs to (its thread group), or null. */
  i_private: unknown = null;
  /**
   * i_op->lookup for a directory whose entries are made when looked up (procfs): the inode of
   * `name` for the task `t` walking, or null; null for a directory whose entries are all in `entries`.
   */
  lookup: ((name: string, t: Task | null) => Inode | null) | null = null;

  constructor(
    readonly ino: number,
    /** st_mode: the type (S_IFMT) and the permission bits. */
    readonly mode: number,
    readonly kind: InodeKind,
    /** st_dev: the filesystem's device. */
    readonly dev: number,
    /** st_rdev: a device's number (new_encode_dev), else 0. */
    readonly rdev: number,
    mappingId: number,
  ) {
    this.nlink = kind === 'dir' ? 2 : 1;
    // A tmpfs directory starts with the size of its two entries . and .. (shmem_get_inode).
    if (kind === 'dir') this.size = 2 * BOGO_DIRENT_SIZE;
    this.mapping = kind === 'reg' ? new ShmemObject(mappingId) : null;
    // The inode holds its page cache: its pages outlive every mapping of them.
    if (this.mapping) {
      this.mapping.users = 1;
      this.mapping.file = this;
    }
    this.entries = kind === 'dir' ? new Map() : null;
    // An operations table is code, not state: never tracked, so it keeps its identity (get_pipe_info
    // compares it) even when the inode was made outside a tracking context and reached inside one.
    this.i_fop = opaqueCode(kind_fops(kind));
    return track(this);
  }

  get isDir(): boolean {
    return (this.mode & S_IFMT) === S_IFDIR;
  }

  get isReg(): boolean {
    return (this.mode & S_IFMT) === S_IFREG;
  }

  get isFifo(): boolean {
    return (this.mode & S_IFMT) === S_IFIFO;
  }
}

/** The filesystem: its root, the inodes no directory holds any more that are still in use, and the next inode number. */
export class Vfs {
  root!: Inode;
  /** Unlinked inodes (a memfd) still open or mapped: evicted, their pages freed, when the last use goes (iput_final). */
  readonly orphans = new Set<Inode>();
  private lastIno = 0;

  constructor(private readonly pages: PageAllocator) {
    return track(this);
  }

  /** new_inode + shmem_get_inode: a fresh inode with the next number. */
  newInode(mode: number, kind: InodeKind, dev: number, rdev: number): Inode {
    // The page cache's id is the inode's, negated: apart from the kernel's anon_vma and shmem ids.
    const ino = ++this.lastIno;
    const inode = new Inode(ino, mode, kind, dev, rdev, -ino);
    inode.vfs = this;
    if (kind === 'reg') inode.seals = 0x0001; // F_SEAL_SEAL
    return inode;
  }

  /** Adds `inode` to directory `dir` under `name` (d_add; a directory's link count and size grow). */
  link(dir: Inode, name: string, inode: Inode): void {
    dir.entries!.set(name, inode);
    inode.name = name;
    dir.size += BOGO_DIRENT_SIZE;
    if (inode.isDir) {
      dir.nlink++;
      inode.parent = dir;
    }
  }

  /** The boot-time tree: the root, /tmp and /dev with null and zero. */
  populate(): void {
    this.root = this.newInode(S_IFDIR | 0o755, 'dir', TMPFS_DEV, 0);
    const mkdir = (parent: Inode, name: string, mode: number, dev: number): Inode => {
      const d = this.newInode(S_IFDIR | mode, 'dir', dev, 0);
      this.link(parent, name, d);
      return d;
    };
    mkdir(this.root, 'tmp', 0o1777, TMPFS_DEV);
    const dev = mkdir(this.root, 'dev', 0o755, DEVTMPFS_DEV);
    // MEM_MAJOR 1: null is minor 3, zero minor 5 (drivers/char/mem.c devlist).
    this.link(dev, 'null', this.newInode(S_IFCHR | 0o666, 'null', DEVTMPFS_DEV, new_encode_dev(1, 3)));
    this.link(dev, 'zero', this.newInode(S_IFCHR | 0o666, 'zero', DEVTMPFS_DEV, new_encode_dev(1, 5)));
  }

  /**
   * iput_final for an inode no directory holds: once no file is open on it and no mapping
   * maps it (its page cache has only the inode's own user), its pages are freed.
   */
  evictIfUnused(inode: Inode): void {
    if (inode.nlink !== 0 || inode.openFiles > 0 || !this.orphans.has(inode)) return;
    const mapping = inode.mapping!;
    if (mapping.users > 1) return;
    for (const pfn of mapping.pages.values()) this.pages.put_page(pfn);
    mapping.pages.clear();
    this.orphans.delete(inode);
  }

  /** Every inode with a page cache, in the tree or orphaned (for the page-count check). */
  *mappings(): Generator<ShmemObject> {
    for (const i of this.orphans) yield i.mapping!;
    const walk = function* (d: Inode): Generator<ShmemObject> {
      for (const i of d.entries!.values()) {
        if (i.mapping) yield i.mapping;
        if (i.entries) yield* walk(i);
      }
    };
    yield* walk(this.root);
  }
}

/** new_encode_dev (include/linux/kdev_t.h): the 32-bit st_rdev of major:minor. */
export function new_encode_dev(major: number, minor: number): number {
  return (minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12);
}

/** What a path walk found: the parent directory, the last component's name, and its inode (null when there is none). */
export interface Lookup {
  dir: Inode;
  name: string;
  inode: Inode | null;
  /** The path ended with a slash. */
  trailingSlash: boolean;
}

/**
 * link_path_walk + the last component (path_lookupat, path_openat's lookup): walks `path`
 * from `start` (the root for an absolute path), each component in a directory (-ENOTDIR) that
 * holds it (-ENOENT), no component longer than NAME_MAX (-ENAMETOOLONG); `.` and `..` as in
 * Linux (`..` of the root is the root); a procfs directory looks its entries up for the walking
 * task `t`. The last component is returned unresolved (inode null) when it is missing, for O_CREAT; an error as
 * -errno.
 */
export function path_walk(vfs: Vfs, start: Inode, path: string, t: Task | null = null): Lookup | number {
  const parts = path.split('/').filter((p) => p !== '');
  const trailingSlash = path.endsWith('/');
  let dir = path.startsWith('/') ? vfs.root : start;
  if (parts.length === 0) return { dir, name: '.', inode: dir, trailingSlash };
  for (let i = 0; i < parts.length; i++) {
    const name = parts[i];
    if (name.length > NAME_MAX) return -ENAMETOOLONG;
    if (!dir.isDir) return -ENOTDIR;
    const next = name === '.' ? dir : name === '..' ? (dir.parent ?? vfs.root) : dir.lookup ? dir.lookup(name, t) : (dir.entries!.get(name) ?? null);
    if (i === parts.length - 1) return { dir, name, inode: next, trailingSlash };
    if (!next) return -ENOENT;
    dir = next;
  }
  return -ENOENT;
}

/** vfs_create in a tmpfs directory: a new empty regular file `name` with the permission bits of `mode` (after the umask, 022). */
export function vfs_create(vfs: Vfs, dir: Inode, name: string, mode: number): Inode {
  const inode = vfs.newInode(S_IFREG | (mode & 0o7777 & ~0o022), 'reg', dir.dev, 0);
  vfs.link(dir, name, inode);
  return inode;
}
