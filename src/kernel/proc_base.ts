/**
 * procfs (fs/proc/root.c, base.c, array.c): /proc with a directory per live task, looked up
 * by its number, and `self`, each holding mem, maps, smaps, pagemap, status, clear_refs and
 * task/, where each thread of the group has a directory with the same files (tid_base_stuff),
 * showing that thread.
 *
 * - mem (proc_mem_operations): the mm is taken when the file is opened (proc_mem_open: none
 *   for a task without one, -ESRCH); reads and writes go through access_remote_vm, a page at
 *   a time, with FOLL_FORCE (CONFIG_PROC_MEM_ALWAYS_FORCE, the default) and FOLL_REMOTE: a
 *   write to a read-only private mapping breaks COW into a page that stays read-only for the
 *   program, protection keys do not apply, an address below a grows-down VMA grows it
 *   (expand_stack), and an address no VMA holds ends the transfer (-EIO when nothing moved).
 *   Positions are unsigned (FOP_UNSIGNED_OFFSET; mem_lseek).
 * - maps, smaps (task_mmu.ts): seq_file text made at each read from the VMAs and page tables,
 *   under mmap_lock; a read at a position continues the text.
 * - pagemap (task_mmu.ts): 8 bytes per virtual page, position and count 8-byte aligned
 *   (-EINVAL); frames shown only to an opener with CAP_SYS_ADMIN (file_ns_capable at read,
 *   of the opener's credentials); its ioctl is -EINVAL (do_pagemap_cmd without PAGEMAP_SCAN).
 * - status (proc_pid_status): the lines of what the model has, in Linux's order and format.
 * - clear_refs (clear_refs_write): 1, 2 or 3 clear the accessed bits of all, anonymous or
 *   file pages; 4 clears the soft-dirty state (task_mmu.ts); 5 resets the RSS high-water mark.
 *
 * XXX: Linux's `self` is a symlink to the caller's tgid; the model has no symlinks, so the
 * lookup in /proc resolves `self` itself. No readdir of /proc, /proc/PID or task/ (the
 * model has no getdents64), no ptrace access checks (every task is root: PTRACE_MODE_ATTACH and
 * PTRACE_MODE_READ always pass). procfs's device number is the host's (0:21); its inode numbers are the
 * model's own count.
 */
import { opaque, track } from '../track.js';
import { capable } from './capability.js';
import { expand_stack } from './fault.js';
import { mmdrop, mmget_not_zero, mmput } from './mmput.js';
import type { File, FileOperations } from './file.js';
import { __get_user_page_locked, FOLL_FORCE, FOLL_GET, FOLL_REMOTE, FOLL_WRITE, GupHold, gup_put_page } from './gup.js';
import type { Kernel, PerCpu } from './kernel.js';
import type { MmStruct } from './mm.js';
import { mmap_read_lock, mmap_read_unlock, mmap_write_lock, mmap_write_unlock } from './mmap.js';
import { PG_anon, PG_dirty } from './page.js';
import { pte_none, pte_pfn, pte_present, _PAGE_SPECIAL } from './pgtable.js';
import { STEP_COPY, type KSteps } from './steps.js';
import { CAP_FULL_SET, type SigPending, type Task, type ThreadGroup } from './task.js';
import { copy_from_user, copy_to_user, copy_to_user_partial } from './uaccess.js';
import { EFAULT, EINVAL, EIO, ERANGE, ESRCH, RLIMIT_SIGPENDING, S_IFDIR, S_IFREG, SEEK_CUR, SEEK_SET, SIG_DFL, SIG_IGN, SIGKILL } from './uapi.js';
import { Inode } from './vfs.js';
import { CLEAR_REFS_ALL, CLEAR_REFS_LAST, CLEAR_REFS_MM_HIWATER_RSS, clear_refs_mm, pagemap_walk, PM_ENTRY_BYTES, show_maps, show_smaps } from './task_mmu.js';
import { VM_EXEC, VM_GROWSDOWN, VM_LOCKED, VM_SHARED, VM_WRITE } from './vma.js';

/** procfs's st_dev: an anonymous device, 0:21 as on the host. */
export const PROC_DEV = 0x15;
/** PROC_ROOT_INO. */
const PROC_ROOT_INO = 1;
/** CAP_SYS_ADMIN. */
const CAP_SYS_ADMIN = 21;
/** NR_OPEN_DEFAULT (BITS_PER_LONG): a descriptor table's first size. */
const NR_OPEN_DEFAULT = 64;
/** MAX_NUMNODES with Debian's NODES_SHIFT 10: the bits Mems_allowed shows. */
const MAX_NUMNODES = 1024;

/** What the /proc root keeps: the kernel, its last inode number, and each pid's directory once looked up. */
class ProcRoot {
  lastIno = PROC_ROOT_INO;
  readonly dirs = new Map<number, Inode>();

  constructor(readonly k: Kernel) {
    return track(this);
  }
}

/** A /proc/PID directory's and file's i_private: the pid (struct pid), whose task is looked up at each use. */
interface ProcPid {
  pid: number;
}

/** What an open mem, maps, smaps or pagemap file keeps (file->private_data): the mm grabbed at open, or null, and for pagemap whether the opener may see frames. */
interface ProcMm {
  k: Kernel;
  mm: MmStruct | null;
  show_pfn: boolean;
}

/** proc_root_init: /proc in the root directory (a mount over it: the root's size and link count stay as they were). */
export function proc_root_init(k: Kernel): void {
  const state = new ProcRoot(k);
  const root = new Inode(PROC_ROOT_INO, S_IFDIR | 0o555, 'dir', PROC_DEV, 0, 0);
  root.vfs = k.vfs;
  root.size = 0;
  root.i_private = state;
  root.parent = k.vfs.root;
  root.lookup = (name, t) => proc_root_lookup(state, root, name, t);
  k.vfs.root.entries!.set('proc', root);
}

/** A procfs inode with the next number (proc_pid_make_inode). */
function proc_inode(state: ProcRoot, mode: number, pid: number): Inode {
  const i = new Inode(++state.lastIno, mode, (mode & S_IFDIR) === S_IFDIR ? 'dir' : 'proc', PROC_DEV, 0, 0);
  i.vfs = state.k.vfs;
  i.size = 0;
  i.i_private = { pid } satisfies ProcPid;
  return i;
}

/** name_to_int: a decimal number without leading zeros, or -1. */
function name_to_int(name: string): number {
  if (!/^(0|[1-9][0-9]{0,9})$/.test(name)) return -1;
  const n = Number(name);
  return n <= 0xffffffff ? n : -1;
}

/**
 * proc_root_lookup: `self` is the walking task's tgid (proc_self_get_link), a number is the
 * task with that id (proc_pid_lookup: any thread's, as Linux finds it); a task that is gone,
 * or any other name, is not there.
 */
function proc_root_lookup(state: ProcRoot, root: Inode, name: string, t: Task | null): Inode | null {
  const pid = name === 'self' ? (t ? t.tgid : -1) : name_to_int(name);
  if (pid < 0 || !get_pid_task(state.k, pid)) return null;
  let dir = state.dirs.get(pid);
  if (!dir) {
    dir = proc_pid_dir(state, root, pid);
    const task = proc_inode(state, S_IFDIR | 0o555, pid);
    task.parent = dir;
    task.name = 'task';
    const threads = new Map<number, Inode>();
    task.lookup = (tname) => proc_task_lookup(state, task, threads, tname);
    dir.entries!.set('task', task);
    state.dirs.set(pid, dir);
  }
  return dir;
}

/**
 * The files tgid_base_stuff and tid_base_stuff both have, of the model's: mem, maps, smaps,
 * pagemap, status and clear_refs, each with its mode and operations.
 */
function pid_files(): [string, number, Readonly<FileOperations>][] {
  return [
    ['mem', 0o600, proc_mem_operations], ['maps', 0o444, proc_pid_maps_operations], ['smaps', 0o444, proc_pid_smaps_operations],
    ['pagemap', 0o400, proc_pagemap_operations], ['status', 0o444, proc_pid_status_operations], ['clear_refs', 0o200, proc_clear_refs_operations],
  ];
}

/** A directory for task `pid` under `parent` holding pid_files() (proc_pid_instantiate, proc_task_instantiate). */
function proc_pid_dir(state: ProcRoot, parent: Inode, pid: number): Inode {
  const dir = proc_inode(state, S_IFDIR | 0o555, pid);
  dir.parent = parent;
  const entries = dir.entries!;
  dir.lookup = (fname) => entries.get(fname) ?? null;
  for (const [fname, mode, fops] of pid_files()) {
    const f = proc_inode(state, S_IFREG | mode, pid);
    f.i_fop = opaque(fops);
    f.name = fname;
    entries.set(fname, f);
  }
  return dir;
}

/**
 * proc_task_lookup: in /proc/PID/task, a number is a thread of PID's thread group
 * (same_thread_group), while PID's task and the thread are both there; anything else is not.
 * The thread's directory has tid_base_stuff's files, which show that thread (its status: its
 * State, Pid, pending and blocked signals; the files of its mm: the group's). Each directory is
 * made once per task/ directory (`threads`).
 */
function proc_task_lookup(state: ProcRoot, dir: Inode, threads: Map<number, Inode>, name: string): Inode | null {
  const leader = get_proc_task(state.k, dir);
  if (!leader) return null;
  const tid = name_to_int(name);
  if (tid < 0) return null;
  const task = get_pid_task(state.k, tid);
  if (!task || task.group !== leader.group) return null;
  let tdir = threads.get(tid);
  if (!tdir) {
    tdir = proc_pid_dir(state, dir, tid);
    threads.set(tid, tdir);
  }
  return tdir;
}

/** get_pid_task: the task with id `pid`, while it has not been released (a zombie still has one). */
function get_pid_task(k: Kernel, pid: number): Task | null {
  const t = k.find_task_by_vpid(pid);
  return t && t.state !== 'dead' ? t : null;
}

/** get_proc_task: the task a procfs inode belongs to, or null. */
function get_proc_task(k: Kernel, inode: Inode): Task | null {
  return get_pid_task(k, (inode.i_private as ProcPid).pid);
}

/** get_task_mm: the task's mm, if it has one and is not a kernel thread. */
function get_task_mm(t: Task): MmStruct | null {
  return t.kthread || !t.mm || t.mm.mm_users === 0 ? null : t.mm;
}

/**
 * proc_mem_open: the task (-ESRCH when gone) and its mm (null for a kernel thread or an
 * exiting task; XXX: mm_access's ptrace check always passes); the mm's struct is grabbed
 * (mmgrab) for the file's life, its memory not pinned.
 */
function proc_mem_open(k: Kernel, inode: Inode): MmStruct | null | number {
  const task = get_proc_task(k, inode);
  if (!task) return -ESRCH;
  const mm = get_task_mm(task);
  if (mm) mm.mm_count++;
  return mm;
}

/** __mem_open (mem and pagemap): no mm is -ESRCH. */
function mem_open(k: Kernel, t: Task, f: File): number {
  const mm = proc_mem_open(k, f.inode);
  if (typeof mm === 'number') return mm;
  if (!mm) return -ESRCH;
  f.private_data = { k, mm, show_pfn: capable(t, CAP_SYS_ADMIN) } satisfies ProcMm;
  return 0;
}

/** proc_maps_open: the mm may be null (the file then reads empty). */
function maps_open(k: Kernel, _t: Task, f: File): number {
  const mm = proc_mem_open(k, f.inode);
  if (typeof mm === 'number') return mm;
  f.private_data = { k, mm, show_pfn: false } satisfies ProcMm;
  return 0;
}

/** mem_release / proc_map_release: mmdrop of the mm grabbed at open. */
function mm_release(f: File): void {
  const p = f.private_data as ProcMm | null;
  if (p?.mm) mmdrop(p.k, p.mm);
}


// ---- mem ---------------------------------------------------------------------------------------

/**
 * __access_remote_vm: up to `len` bytes of `mm` at `addr` into (or, for a write, from) `data`,
 * under mmap_lock for reading, a page at a time through get_user_page (FOLL_GET | FOLL_REMOTE
 * and the caller's flags); each page's bytes are copied in one step, a write marking the page
 * dirty (set_page_dirty_lock), and the reference is dropped. An address no VMA holds first has
 * the stack grown down to it (expand_stack: a grows-down VMA above it, within the limits), at
 * the start and where a page cannot be had (mmap_lock is dropped when that fails); otherwise
 * the first page that cannot be had ends the transfer. Returns the bytes moved.
 */
export function* access_remote_vm(k: Kernel, pc: PerCpu, t: Task, mm: MmStruct, addr: number, data: Uint8Array, gup_flags: number): KSteps<number> {
  const write = (gup_flags & FOLL_WRITE) !== 0;
  yield* mmap_read_lock(k, pc, mm);
  // "Avoid triggering the temporary warning in __get_user_pages"
  if (!mm.vmas.vma_lookup(addr) && !(yield* expand_stack(k, pc, t, mm, addr))) return 0;
  let done = 0;
  // The page reference is held across the copy step: the page-count check counts it meanwhile.
  const hold = new GupHold();
  while (done < data.length) {
    const pa = addr < mm.task_size ? yield* __get_user_page_locked(k, pc, t, mm, addr, gup_flags | FOLL_GET | FOLL_REMOTE, hold) : -EFAULT;
    if (pa < 0) {
      // "We might need to expand the stack to access it": mmap_lock was dropped if that failed.
      if (!mm.vmas.vma_lookup(addr)) {
        if (!(yield* expand_stack(k, pc, t, mm, addr))) return done;
        continue;
      }
      // XXX: no VMA of the model has vm_ops->access (VM_IO | VM_PFNMAP).
      break;
    }
    const n = Math.min(data.length - done, 4096 - (addr % 4096));
    const pfn = Math.floor(pa / 4096);
    pc.touch = pa;
    yield STEP_COPY;
    if (write) {
      k.machine.mem.writeBytes(pa, data.subarray(done, done + n));
      k.pages.flags[pfn] |= PG_dirty;
    } else data.set(k.machine.mem.readBytes(pa, n), done);
    gup_put_page(k, pfn, hold);
    done += n;
    addr += n;
  }
  yield* mmap_read_unlock(pc, mm);
  return done;
}

/**
 * mem_rw: nothing without an mm, or once the mm has no users (0); then a page at a time: the
 * user's bytes copied in for a write (-EFAULT), access_remote_vm with FOLL_FORCE (0 bytes ends
 * the loop: -EIO when nothing was moved), the bytes copied out for a read (-EFAULT). The
 * position is the address after the last byte moved, even on an error.
 */
function* mem_rw(k: Kernel, pc: PerCpu, t: Task, f: File, buf: bigint, count: number, pos: number, write: boolean): KSteps<[number, number]> {
  const mm = (f.private_data as ProcMm).mm;
  if (!mm) return [0, pos];
  if (!mmget_not_zero(mm)) return [0, pos];
  const flags = (write ? FOLL_WRITE : 0) | FOLL_FORCE;
  // A negative position is an address above 2^63: never in a VMA.
  let addr = pos;
  let copied = 0;
  while (count > 0) {
    const len = Math.min(count, 4096);
    let page: Uint8Array;
    if (write) {
      const b = yield* copy_from_user(k, pc, t, buf, len);
      if (!b) {
        copied = -EFAULT;
        break;
      }
      page = b;
    } else page = new Uint8Array(len);
    const n = addr < 0 ? 0 : yield* access_remote_vm(k, pc, t, mm, addr, page, flags);
    if (n === 0) {
      if (!copied) copied = -EIO;
      break;
    }
    if (!write && !(yield* copy_to_user(k, pc, t, buf, page.subarray(0, n)))) {
      copied = -EFAULT;
      break;
    }
    buf += BigInt(n);
    addr += n;
    copied += n;
    count -= n;
  }
  yield* mmput(k, pc, mm);
  return [copied, addr];
}

/** mem_lseek: SEEK_SET and SEEK_CUR only (-EINVAL), any position, negative ones included (force_successful_syscall_return). */
function mem_lseek(f: File, offset: bigint, whence: number): number {
  if (whence === SEEK_SET) f.f_pos = Number(offset);
  else if (whence === SEEK_CUR) f.f_pos = Number(BigInt.asIntN(64, BigInt(f.f_pos) + offset));
  else return -EINVAL;
  return f.f_pos;
}

/** proc_mem_operations. */
const proc_mem_operations: Readonly<FileOperations> = {
  open: mem_open,
  read: (k, pc, t, f, buf, count, pos) => mem_rw(k, pc, t, f, buf, count, pos, false),
  write: (k, pc, t, f, buf, count, pos) => mem_rw(k, pc, t, f, buf, count, pos, true),
  llseek: mem_lseek,
  release: mm_release,
  unsigned_offset: true,
};

// ---- seq_file ----------------------------------------------------------------------------------

/** The bytes of a seq_file's text (Latin-1: the model's names are bytes). */
function text_bytes(s: string): Uint8Array {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i) & 0xff;
  return b;
}

/**
 * seq_read over the text `show` makes at read time (or its -errno): the bytes from `pos`, at
 * most `count`, copied out; nothing at or past the end; -EFAULT when none could be copied.
 */
function seq_read(show: (k: Kernel, pc: PerCpu, t: Task, f: File) => KSteps<string | number>): FileOperations['read'] {
  return function* (k, pc, t, f, buf, count, pos) {
    const text = yield* show(k, pc, t, f);
    if (typeof text === 'number') return [text, pos];
    const bytes = text_bytes(text).subarray(Math.min(pos, text.length), Math.min(pos + count, text.length));
    if (bytes.length === 0) return [0, pos];
    const got = bytes.length - (yield* copy_to_user_partial(k, pc, t, buf, bytes));
    return got === 0 ? [-EFAULT, pos] : [got, pos + got];
  };
}

/** seq_lseek: SEEK_SET and SEEK_CUR to a position not negative (-EINVAL); any other whence is -EINVAL. */
function seq_lseek(f: File, offset: bigint, whence: number): number {
  if (whence === SEEK_CUR) offset += BigInt(f.f_pos);
  else if (whence !== SEEK_SET) return -EINVAL;
  if (offset < 0n) return -EINVAL;
  f.f_pos = Number(offset);
  return f.f_pos;
}

/**
 * m_start .. m_stop of maps and smaps: the task (-ESRCH when gone), the mm grabbed at open
 * while it still has users (else the text is empty), under mmap_lock for reading.
 */
function maps_show(text: (k: Kernel, pc: PerCpu, t: Task, mm: MmStruct) => KSteps<string>) {
  return function* (k: Kernel, pc: PerCpu, t: Task, f: File): KSteps<string | number> {
    if (!get_proc_task(k, f.inode)) return -ESRCH;
    const mm = (f.private_data as ProcMm).mm;
    if (!mm || !mmget_not_zero(mm)) return '';
    yield* mmap_read_lock(k, pc, mm);
    const s = yield* text(k, pc, t, mm);
    yield* mmap_read_unlock(pc, mm);
    yield* mmput(k, pc, mm);
    return s;
  };
}

/** proc_pid_maps_operations. */
const proc_pid_maps_operations: Readonly<FileOperations> = {
  open: maps_open,
  // eslint-disable-next-line require-yield
  read: seq_read(maps_show(function* (k, _pc, _t, mm) {
    return show_maps(k, mm);
  })),
  llseek: seq_lseek,
  release: mm_release,
};

/** proc_pid_smaps_operations. */
const proc_pid_smaps_operations: Readonly<FileOperations> = {
  open: maps_open,
  read: seq_read(maps_show(show_smaps)),
  llseek: seq_lseek,
  release: mm_release,
};

// ---- pagemap -----------------------------------------------------------------------------------

/** PAGEMAP_WALK_SIZE: one PMD's span is walked per mmap_lock hold. */
const PAGEMAP_WALK_SIZE = 2 ** 21;

/**
 * pagemap_read: nothing without an mm or once it has no users (0); a position or count not a
 * multiple of 8 is -EINVAL, a count of 0 reads 0. The entries from page pos/8 up to TASK_SIZE
 * are walked a PMD's span at a time under mmap_lock and copied out after it is dropped
 * (-EFAULT, and the position stays). Returns the bytes read.
 */
function* pagemap_read(k: Kernel, pc: PerCpu, t: Task, f: File, buf: bigint, count: number, pos: number): KSteps<[number, number]> {
  const priv = f.private_data as ProcMm;
  const mm = priv.mm;
  if (!mm || !mmget_not_zero(mm)) return [0, pos];
  let ret = 0;
  if (pos % PM_ENTRY_BYTES || count % PM_ENTRY_BYTES) ret = -EINVAL;
  else if (count > 0) {
    const svpfn = Math.floor(pos / PM_ENTRY_BYTES);
    let end_vaddr = mm.task_size;
    // (untagged_addr_remote under mmap_lock: nothing to untag without LAM.)
    let start_vaddr = svpfn * 4096;
    const end = start_vaddr + (count / PM_ENTRY_BYTES) * 4096;
    if (end >= start_vaddr && end < mm.task_size) end_vaddr = end;
    if (start_vaddr > mm.task_size) start_vaddr = end_vaddr;
    let copied = 0;
    while (count > 0 && start_vaddr < end_vaddr) {
      let stop = (Math.floor(start_vaddr / PAGEMAP_WALK_SIZE) + 1) * PAGEMAP_WALK_SIZE;
      if (stop > end_vaddr) stop = end_vaddr;
      yield* mmap_read_lock(k, pc, mm);
      const entries = yield* pagemap_walk(k, pc, t, mm, start_vaddr, stop, priv.show_pfn);
      yield* mmap_read_unlock(pc, mm);
      start_vaddr = stop;
      const len = Math.min(count, PM_ENTRY_BYTES * entries.length);
      const out = new Uint8Array(len);
      const view = new DataView(out.buffer);
      for (let i = 0; i < len / PM_ENTRY_BYTES; i++) view.setBigUint64(i * PM_ENTRY_BYTES, entries[i], true);
      if (!(yield* copy_to_user(k, pc, t, buf, out))) {
        copied = -1;
        break;
      }
      copied += len;
      buf += BigInt(len);
      count -= len;
    }
    if (copied < 0) ret = -EFAULT;
    else {
      pos += copied;
      ret = copied;
    }
  }
  yield* mmput(k, pc, mm);
  return [ret, pos];
}

/**
 * do_pagemap_cmd (fs/proc/task_mmu.c): pagemap's unlocked_ioctl, -EINVAL for every command
 * but PAGEMAP_SCAN. XXX: PAGEMAP_SCAN (do_pagemap_scan) is not modelled and is answered -EINVAL
 * too, as the commands Linux does not know.
 */
function* do_pagemap_cmd(): KSteps<number> {
  return -EINVAL;
}

/** proc_pagemap_operations: opened as mem is (PTRACE_MODE_READ), positioned by mem_lseek, with do_pagemap_cmd as its ioctl. */
const proc_pagemap_operations: Readonly<FileOperations> = {
  open: mem_open,
  read: pagemap_read,
  llseek: mem_lseek,
  ioctl: do_pagemap_cmd,
  release: mm_release,
};

// ---- status ------------------------------------------------------------------------------------

/** get_task_state: the letter and word of the task's state (TASK_KILLABLE sleeps, vfork's, are D). */
function get_task_state(t: Task): string {
  switch (t.state) {
    case 'running':
    case 'runnable':
      return 'R (running)';
    case 'sleeping':
      return t.sleepKillableOnly ? 'D (disk sleep)' : 'S (sleeping)';
    case 'stopped':
      return 'T (stopped)';
    case 'traced':
      return 't (tracing stop)';
    case 'zombie':
      return 'Z (zombie)';
    default:
      return 'X (dead)';
  }
}

/** files_fdtable(files)->max_fds: 64 at first, then (expand_fdtable's alloc_fdtable) a power of two times 128 above the highest descriptor used. */
function max_fds(t: Task): number {
  const n = t.files ? t.files.fd.length : 0;
  if (!t.files) return 0;
  if (n <= NR_OPEN_DEFAULT) return NR_OPEN_DEFAULT;
  let nr = Math.floor((n - 1) / 128) + 1;
  let p = 1;
  while (p < nr) p *= 2;
  nr = p;
  return nr * 128;
}

/** seq_put_decimal_ull_width(m, str, pages << (PAGE_SHIFT - 10), 8): pages as `%8lu` kB. */
function kb8(pages: number): string {
  return String(pages * 4).padStart(8, ' ');
}

/** A 64-bit set as render_sigset_t and render_cap_t print it: 16 hex digits. */
function hex16(v: bigint): string {
  return BigInt.asUintN(64, v).toString(16).padStart(16, '0');
}

/** `%*pb`: a bitmap of `nbits` bits in 32-bit hex chunks, most significant first, comma-separated; the first chunk only as wide as its bits need. */
function bitmap_string(bits: (i: number) => boolean, nbits: number): string {
  const chunks: string[] = [];
  for (let top = Math.ceil(nbits / 32) - 1; top >= 0; top--) {
    let v = 0;
    for (let b = 0; b < 32 && top * 32 + b < nbits; b++) if (bits(top * 32 + b)) v += 2 ** b;
    const width = top === Math.ceil(nbits / 32) - 1 ? Math.ceil((nbits - top * 32) / 4) : 8;
    chunks.push(v.toString(16).padStart(width, '0'));
  }
  return chunks.join(',');
}

/** `%*pbl`: the set bits as ranges, "0-1,3". */
function bitmap_list(bits: (i: number) => boolean, nbits: number): string {
  const out: string[] = [];
  for (let i = 0; i < nbits; i++) {
    if (!bits(i)) continue;
    let j = i;
    while (j + 1 < nbits && bits(j + 1)) j++;
    out.push(i === j ? `${i}` : `${i}-${j}`);
    i = j;
  }
  return out.join(',');
}

/**
 * task_mem: the mm's sizes in kB. total_vm, locked_vm, data_vm, stack_vm and exec_vm are what
 * vm_stat_account keeps: the VMAs' pages, all, VM_LOCKED, private writable not stack, stack
 * (VM_GROWSDOWN) and executable not writable not stack; VmExe is the text (start_code to
 * end_code) within exec_vm, VmLib the rest; VmPTE the page tables below the PGD; VmSwap
 * MM_SWAPENTS. XXX: the model has no hiwater marks (VmPeak and VmHWM repeat VmSize and VmRSS)
 * and keeps MM_ANONPAGES and MM_SHMEMPAGES as one count, so the split is counted from the page
 * tables (a tmpfs page is MM_SHMEMPAGES, as in Linux; MM_FILEPAGES is always 0).
 */
function task_mem(k: Kernel, t: Task, mm: MmStruct): string {
  let total = 0, locked = 0, data = 0, stack = 0, exec = 0, anon = 0, shmem = 0;
  const mem = k.machine.mem;
  for (const v of mm.vmas.list) {
    const pages = (v.vm_end - v.vm_start) / 4096;
    total += pages;
    if (v.vm_flags & VM_LOCKED) locked += pages;
    if ((v.vm_flags & (VM_WRITE | VM_SHARED | VM_GROWSDOWN)) === VM_WRITE) data += pages;
    else if (v.vm_flags & VM_GROWSDOWN) stack += pages;
    else if ((v.vm_flags & (VM_WRITE | VM_EXEC)) === VM_EXEC) exec += pages;
    mm.pgtables.forEachPteTable(v.vm_start, v.vm_end, (table, from, to) => {
      for (let i = from; i < to; i++) {
        const lo = mem.readLo(table, i);
        const hi = mem.readHi(table, i);
        if (pte_none(lo, hi) || !pte_present(lo) || lo & _PAGE_SPECIAL) continue;
        if (k.pages.flags[pte_pfn(lo, hi)] & PG_anon) anon++;
        else shmem++;
      }
    });
  }
  const image = t.image;
  const text = image ? Math.min(image.textEnd - 0x400000, exec * 4096) / 4096 : 0;
  const rss = anon + shmem;
  return (
    `VmPeak:\t${kb8(total)} kB\nVmSize:\t${kb8(total)} kB\nVmLck:\t${kb8(locked)} kB\nVmPin:\t${kb8(0)} kB\n` +
    `VmHWM:\t${kb8(rss)} kB\nVmRSS:\t${kb8(rss)} kB\nRssAnon:\t${kb8(anon)} kB\nRssFile:\t${kb8(0)} kB\nRssShmem:\t${kb8(shmem)} kB\n` +
    `VmData:\t${kb8(data)} kB\nVmStk:\t${kb8(stack)} kB\nVmExe:\t${kb8(text)} kB\nVmLib:\t${kb8(exec - text)} kB\n` +
    `VmPTE:\t${kb8(mm.pgtables.tables)} kB\nVmSwap:\t${kb8(mm.swapents)} kB\nHugetlbPages:\t${kb8(0)} kB\n`
  );
}

/**
 * task_sig's qsize: the user's UCOUNT_RLIMIT_SIGPENDING, the sigqueue entries allocated for it
 * and not yet freed. Every task is root in the model, so this counts the queued siginfo of
 * every task not yet released (a zombie's stay until release_task flushes them), per thread
 * and per thread group, less SIGKILL, for which __send_signal_locked queues nothing.
 */
function sigqueue_count(k: Kernel): number {
  let n = 0;
  const groups = new Set<ThreadGroup>();
  const count = (p: SigPending): void => {
    for (const info of p.list) if (info.signo !== SIGKILL) n++;
  };
  for (const t of k.tasks.values()) {
    if (t.state === 'dead') continue;
    count(t.pending);
    if (!groups.has(t.group)) {
      groups.add(t.group);
      count(t.group.shared_pending);
    }
  }
  return n;
}

/** proc_task_name: comm, the basename of what was executed, at most 15 bytes, with \, newline and tab escaped. */
function task_name(t: Task): string {
  const name = t.image ? t.image.name.slice(t.image.name.lastIndexOf('/') + 1).slice(0, 15) : '';
  return name.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/\t/g, '\\t');
}

/**
 * proc_pid_status: Name; task_state (Umask while the task has its fs, State, the ids, Uid and
 * Gid (root), FDSize, Groups, NStgid, NSpid, Kthread); task_mem, CoreDumping, THP_enabled and
 * untag_mask when it has an mm; task_sig (Threads, the pending, blocked, ignored and caught
 * sets, SigQ); task_cap; NoNewPrivs and Seccomp; Cpus_allowed and Mems_allowed; the context
 * switch counts. XXX: left out for what the model does not have: NSpgid and NSsid (no process
 * groups or sessions) and the Speculation_* lines (no speculation controls). 6.12 prints no
 * x86_Thread_features lines (arch_proc_pid_thread_features came later).
 */
function proc_pid_status(k: Kernel, t: Task): string {
  const g = t.group;
  let s = `Name:\t${task_name(t)}\n`;
  if (t.state !== 'zombie') s += 'Umask:\t0022\n';
  s += `State:\t${get_task_state(t)}\n`;
  s += `Tgid:\t${t.tgid}\nNgid:\t0\nPid:\t${t.tid}\nPPid:\t${t.parent ? t.parent.tgid : 0}\nTracerPid:\t${t.ptrace && t.ptracer ? t.ptracer.tid : 0}\n`;
  s += 'Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n';
  s += `FDSize:\t${max_fds(t)}\nGroups:\t \nNStgid:\t${t.tgid}\nNSpid:\t${t.tid}\n`;
  s += `Kthread:\t${t.kthread ? 1 : 0}\n`;
  const mm = get_task_mm(t);
  if (mm) {
    s += task_mem(k, t, mm);
    s += 'CoreDumping:\t0\nTHP_enabled:\t1\nuntag_mask:\t0xffffffffffffffff\n';
  }
  let ign = 0n;
  let cgt = 0n;
  for (let sig = 1; sig <= 64; sig++) {
    const h = t.sighand.action[sig].handler;
    if (h === SIG_IGN) ign |= 1n << BigInt(sig - 1);
    else if (h !== SIG_DFL) cgt |= 1n << BigInt(sig - 1);
  }
  s += `Threads:\t${g.live}\n`;
  s += `SigQ:\t${sigqueue_count(k)}/${g.rlim_cur[RLIMIT_SIGPENDING]}\n`;
  s += `SigPnd:\t${hex16(t.pending.signal)}\nShdPnd:\t${hex16(g.shared_pending.signal)}\nSigBlk:\t${hex16(t.blocked)}\nSigIgn:\t${hex16(ign)}\nSigCgt:\t${hex16(cgt)}\n`;
  s += `CapInh:\t${hex16(0n)}\nCapPrm:\t${hex16(t.capPermitted)}\nCapEff:\t${hex16(t.capEffective)}\nCapBnd:\t${hex16(CAP_FULL_SET)}\nCapAmb:\t${hex16(0n)}\n`;
  s += 'NoNewPrivs:\t0\nSeccomp:\t0\nSeccomp_filters:\t0\n';
  const ncpus = k.percpu.length;
  const cpu = (i: number): boolean => ((t.cpus_mask >> BigInt(i)) & 1n) === 1n;
  s += `Cpus_allowed:\t${bitmap_string(cpu, ncpus)}\nCpus_allowed_list:\t${bitmap_list(cpu, ncpus)}\n`;
  const node = (i: number): boolean => i === 0;
  s += `Mems_allowed:\t${bitmap_string(node, MAX_NUMNODES)}\nMems_allowed_list:\t${bitmap_list(node, MAX_NUMNODES)}\n`;
  s += `voluntary_ctxt_switches:\t${t.nvcsw}\nnonvoluntary_ctxt_switches:\t${t.nivcsw}\n`;
  return s;
}

/** proc_single_show for status: the task at read time (-ESRCH when gone). No lock: Linux reads these fields as they are. */
// eslint-disable-next-line require-yield
function* status_show(k: Kernel, _pc: PerCpu, _t: Task, f: File): KSteps<string | number> {
  const task = get_proc_task(k, f.inode);
  return task ? proc_pid_status(k, task) : -ESRCH;
}

/** proc_pid_status's file (proc_single_file_operations). */
const proc_pid_status_operations: Readonly<FileOperations> = {
  read: seq_read(status_show),
  llseek: seq_lseek,
};

// ---- clear_refs --------------------------------------------------------------------------------

/** PROC_NUMBUF: clear_refs reads at most PROC_NUMBUF - 1 bytes. */
const PROC_NUMBUF = 13;

/**
 * kstrtoint(strstrip(buffer), 10): the bytes up to the first NUL, white space trimmed at both
 * ends, as an optionally signed decimal int; -EINVAL for anything else (no digits, a stray
 * character), -ERANGE for a value outside int.
 */
function kstrtoint_stripped(b: Uint8Array): number | { err: number } {
  let s = '';
  for (const c of b) {
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  s = s.replace(/^[ \t\n\v\f\r]+|[ \t\n\v\f\r]+$/g, '');
  const m = /^([+-]?)([0-9]+)$/.exec(s);
  if (!m) return { err: -EINVAL };
  const v = (m[1] === '-' ? -1n : 1n) * BigInt(m[2]);
  if (v > 0x7fffffffn || v < -0x80000000n) return { err: -ERANGE };
  return Number(v);
}

/**
 * clear_refs_write, in Linux's order: at most PROC_NUMBUF - 1 bytes copied in (-EFAULT), the
 * number parsed (-EINVAL, -ERANGE), a type outside 1..5 (-EINVAL), the task (-ESRCH); then,
 * if the task has an mm, under mmap_lock for writing: 5 resets the high-water mark (XXX: the
 * model keeps none), the others clear_refs_mm. Returns the count (as clamped); the position
 * stays.
 */
function* clear_refs_write(k: Kernel, pc: PerCpu, t: Task, f: File, buf: bigint, count: number, pos: number): KSteps<[number, number]> {
  if (count > PROC_NUMBUF - 1) count = PROC_NUMBUF - 1;
  const b = yield* copy_from_user(k, pc, t, buf, count);
  if (!b) return [-EFAULT, pos];
  const type = kstrtoint_stripped(b);
  if (typeof type !== 'number') return [type.err, pos];
  if (type < CLEAR_REFS_ALL || type >= CLEAR_REFS_LAST) return [-EINVAL, pos];
  const task = get_proc_task(k, f.inode);
  if (!task) return [-ESRCH, pos];
  const mm = get_task_mm(task);
  if (mm && mmget_not_zero(mm)) {
    yield* mmap_write_lock(k, pc, mm, t);
    if (type !== CLEAR_REFS_MM_HIWATER_RSS) yield* clear_refs_mm(k, pc, t, mm, type);
    yield* mmap_write_unlock(pc, mm);
    yield* mmput(k, pc, mm);
  }
  return [count, pos];
}

/** proc_clear_refs_operations: write only; noop_llseek leaves the position as it is. */
const proc_clear_refs_operations: Readonly<FileOperations> = {
  write: clear_refs_write,
  llseek: (f) => f.f_pos,
};
