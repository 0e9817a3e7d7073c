/**
 * Virtual memory areas (include/linux/mm_types.h struct vm_area_struct, mm/vma.c, mm/mmap.c):
 * an mm's sorted, non-overlapping list of [vm_start, vm_end) ranges with their flags, and the
 * find / split / merge operations on it. Linux keeps them in a maple tree; a sorted array
 * with binary search gives the same answers.
 *
 * vm_flags bits above 31 (the protection key, VM_SHADOW_STACK) are kept in their own fields,
 * `vm_pkey` and `shadowStack`, so the flags stay a 32-bit integer. VM_SOFTDIRTY is kept in
 * `softdirty`: merging ignores it (is_mergeable_vma), so it is no part of the flags compared.
 */
import type { Inode } from './vfs.js';
import type { UserfaultfdCtx } from './userfaultfd.js';
import { track } from '../track.js';

export const VM_READ = 0x00000001;
export const VM_WRITE = 0x00000002;
export const VM_EXEC = 0x00000004;
export const VM_SHARED = 0x00000008;
export const VM_MAYREAD = 0x00000010;
export const VM_MAYWRITE = 0x00000020;
export const VM_MAYEXEC = 0x00000040;
export const VM_MAYSHARE = 0x00000080;
export const VM_GROWSDOWN = 0x00000100;
/** VM_UFFD_MISSING: userfaultfd delivers missing-page faults of this VMA. */
export const VM_UFFD_MISSING = 0x00000200;
export const VM_PFNMAP = 0x00000400;
/** VM_UFFD_WP: userfaultfd delivers writes to uffd-wp entries of this VMA. */
export const VM_UFFD_WP = 0x00001000;
/**
 * VM_UFFD_MINOR (bit 38, CONFIG_HAVE_ARCH_USERFAULTFD_MINOR): userfaultfd delivers faults on
 * pages the shmem object has but this VMA does not map. Above bit 31, so never in `vm_flags`
 * (a 32-bit integer here): a VMA's is `Vma.uffdMinor`; this value is only handle_userfault's
 * `reason`, compared whole.
 */
export const VM_UFFD_MINOR = 2 ** 38;
export const VM_LOCKED = 0x00002000;
export const VM_IO = 0x00004000;
/** MADV_SEQUENTIAL and MADV_RANDOM's read-ahead hints. */
export const VM_SEQ_READ = 0x00008000;
export const VM_RAND_READ = 0x00010000;
export const VM_DONTCOPY = 0x00020000;
export const VM_DONTEXPAND = 0x00040000;
/** Lock the pages as they are faulted in (mlock2 MLOCK_ONFAULT, mlockall MCL_ONFAULT). */
export const VM_LOCKONFAULT = 0x00080000;
export const VM_ACCOUNT = 0x00100000;
export const VM_NORESERVE = 0x00200000;
export const VM_WIPEONFORK = 0x02000000;
/** MADV_DONTDUMP: not in a core dump. */
export const VM_DONTDUMP = 0x04000000;
export const VM_MIXEDMAP = 0x10000000;
/** MADV_HUGEPAGE marked this VMA (smaps "hg"). */
export const VM_HUGEPAGE = 0x20000000;
/** MADV_NOHUGEPAGE marked this VMA (smaps "nh"). */
export const VM_NOHUGEPAGE = 0x40000000;
/** VM_MERGEABLE, BIT(31): KSM may merge identical pages (smaps "mg"). Bit 31 of the 32-bit flags, so negative as a JavaScript int32: test it with `&`, never compare it with `>`. */
export const VM_MERGEABLE = 1 << 31;
/** VM_LOCKED | VM_LOCKONFAULT: what mlock and munlock set and clear. */
export const VM_LOCKED_MASK = VM_LOCKED | VM_LOCKONFAULT;
/** VM_SPECIAL: mappings mlock, mremap's expansion and merging leave alone. */
export const VM_SPECIAL = VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP;
/** VM_STACK on x86: VM_GROWSDOWN. */
export const VM_STACK = 0x00000100;
/** VM_READ | VM_WRITE | VM_EXEC. */
export const VM_ACCESS_FLAGS = VM_READ | VM_WRITE | VM_EXEC;

/** A shared-memory object: the pages behind a MAP_SHARED anonymous mapping or a tmpfs file's page cache, by page offset (mm/shmem.c). */
export class ShmemObject {
  readonly pages = new Map<number, number>();
  /** Mappings (VMAs) referring to it, and a file's inode; the pages are freed when the last goes. */
  users = 0;
  /** The file whose page cache this is (its i_size bounds a mapping's faults), or null for anonymous shared memory. */
  file: Inode | null = null;
  /** Anonymous shared memory's size in bytes (shmem_zero_setup's file is the mapping's length): a fault at or past it is SIGBUS. */
  size = Infinity;
  constructor(readonly id: number) {
    return track(this);
  }
}

/** An anon_vma: the identity of a private mapping's anonymous pages, shared between the VMAs split from one another. */
export interface AnonVma {
  id: number;
  /** Set when the anon_vma was created by fork for a child VMA (its chain is not singular). */
  forked: boolean;
}

export class Vma {
  vm_start: number;
  vm_end: number;
  vm_flags: number;
  /** The protection key (vm_flags bits 32..35 in Linux). */
  vm_pkey = 0;
  /** VM_SHADOW_STACK (vm_flags bit 37 in Linux). */
  shadowStack = false;
  /**
   * VM_SOFTDIRTY (vm_flags bit 27 in Linux, CONFIG_MEM_SOFT_DIRTY): set on every new or
   * expanded VMA, cleared by writing 4 to /proc/PID/clear_refs; while set, pagemap reports
   * every page of the VMA soft-dirty.
   */
  softdirty = true;
  /** Page offset of vm_start: addr >> 12 for private anonymous mappings, the object offset for shmem. */
  vm_pgoff: number;
  /** The anonymous pages' anon_vma, once the first one is faulted in (anon_vma_prepare). */
  anon_vma: AnonVma | null = null;
  /** The shmem object behind a MAP_SHARED anonymous mapping. */
  shmem: ShmemObject | null = null;
  /** A name for /proc/pid/maps-like listings: '[stack]', '[text]', or ''. */
  name = '';
  /** vm_userfaultfd_ctx: the userfaultfd this VMA is registered with (set exactly when a VM_UFFD_* flag is). */
  vm_userfaultfd_ctx: UserfaultfdCtx | null = null;
  /** VM_UFFD_MINOR (vm_flags bit 38 in Linux): registered for minor faults (a shmem VMA only). */
  uffdMinor = false;

  constructor(start: number, end: number, flags: number, pgoff: number) {
    this.vm_start = start;
    this.vm_end = end;
    this.vm_flags = flags;
    this.vm_pgoff = pgoff;
    return track(this);
  }

  /** vm_area_dup: a copy with the same range, flags, key, offset, object and name; no anon_vma. */
  dup(): Vma {
    const v = new Vma(this.vm_start, this.vm_end, this.vm_flags, this.vm_pgoff);
    v.vm_pkey = this.vm_pkey;
    v.shadowStack = this.shadowStack;
    v.softdirty = this.softdirty;
    v.shmem = this.shmem;
    if (v.shmem) v.shmem.users++;
    v.name = this.name;
    v.vm_userfaultfd_ctx = this.vm_userfaultfd_ctx;
    v.uffdMinor = this.uffdMinor;
    return v;
  }
}

/** The VMAs of one mm, sorted by address. */
export class VmaList {
  readonly list: Vma[] = [];

  get length(): number {
    return this.list.length;
  }

  /** Index of the first VMA with vm_end > addr (list.length if none). */
  indexAfter(addr: number): number {
    const l = this.list;
    let lo = 0;
    let hi = l.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (l[mid].vm_end > addr) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** find_vma: the first VMA ending above `addr` (it may start above `addr` too), or null. */
  find_vma(addr: number): Vma | null {
    const i = this.indexAfter(addr);
    return i < this.list.length ? this.list[i] : null;
  }

  /** vma_lookup: the VMA containing `addr`, or null. */
  vma_lookup(addr: number): Vma | null {
    const v = this.find_vma(addr);
    return v && v.vm_start <= addr ? v : null;
  }

  /** find_vma_intersection: the first VMA overlapping [start, end), or null. */
  find_vma_intersection(start: number, end: number): Vma | null {
    const v = this.find_vma(start);
    return v && v.vm_start < end ? v : null;
  }

  /** find_vma_prev's `prev`: the last VMA ending at or below `addr`, or null. */
  prevOf(addr: number): Vma | null {
    const i = this.indexAfter(addr);
    return i > 0 ? this.list[i - 1] : null;
  }

  /** Inserts a VMA that overlaps none (vma_link). */
  insert(v: Vma): void {
    this.list.splice(this.indexAfter(v.vm_start), 0, v);
  }

  /** Removes a VMA by identity. */
  remove(v: Vma): void {
    const i = this.list.indexOf(v);
    if (i >= 0) this.list.splice(i, 1);
  }

  /**
   * split_vma (mm/vma.c): cuts `v` at `addr` (strictly inside it) into two VMAs sharing the
   * anon_vma and object; returns the upper part. Does not touch page tables.
   */
  split(v: Vma, addr: number): Vma {
    const upper = v.dup();
    upper.anon_vma = v.anon_vma;
    upper.vm_start = addr;
    upper.vm_pgoff = v.vm_pgoff + (addr - v.vm_start) / 4096;
    v.vm_end = addr;
    this.list.splice(this.list.indexOf(v) + 1, 0, upper);
    return upper;
  }

  /**
   * vma_merge around `v` (mm/vma.c vma_merge_new_range / vma_modify): joins `v` with the
   * neighbour below and above when each touches it with equal flags, key and object, a
   * continuing page offset and compatible anon_vmas (is_mergeable_anon_vma: equal, or one
   * absent and the other not made by fork). Returns the VMA that now covers `v`'s range.
   */
  mergeAround(v: Vma): Vma {
    let i = this.list.indexOf(v);
    const next = this.list[i + 1];
    if (next && mergeable(v, next)) {
      v.vm_end = next.vm_end;
      v.anon_vma = v.anon_vma ?? next.anon_vma;
      if (next.shmem) next.shmem.users--;
      this.list.splice(i + 1, 1);
    }
    const prev = i > 0 ? this.list[i - 1] : undefined;
    if (prev && mergeable(prev, v)) {
      prev.vm_end = v.vm_end;
      prev.anon_vma = prev.anon_vma ?? v.anon_vma;
      if (v.shmem) v.shmem.users--;
      this.list.splice(i, 1);
      i--;
      return prev;
    }
    return v;
  }

  constructor() {
    return track(this);
  }
}

/** Whether `a` (below) and `b` (above) can be one VMA. */
function mergeable(a: Vma, b: Vma): boolean {
  if (a.vm_end !== b.vm_start || a.vm_flags !== b.vm_flags || a.vm_pkey !== b.vm_pkey || a.shadowStack !== b.shadowStack) return false;
  if (a.shmem !== b.shmem || a.name !== b.name || a.vm_userfaultfd_ctx !== b.vm_userfaultfd_ctx || a.uffdMinor !== b.uffdMinor) return false;
  if (a.vm_pgoff + (a.vm_end - a.vm_start) / 4096 !== b.vm_pgoff) return false;
  const x = a.anon_vma;
  const y = b.anon_vma;
  return x === y || (x === null && !y!.forked) || (y === null && !x!.forked);
}
