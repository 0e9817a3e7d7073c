/**
 * msync (mm/msync.c): the argument checks in 6.12's order, then a walk of the VMAs of the
 * range under mmap_lock for reading. A hole makes the call fail with -ENOMEM: at once for a
 * plain MS_ASYNC, after the mapped parts otherwise; MS_INVALIDATE refuses a locked VMA
 * (-EBUSY). MS_SYNC on a shared mapping of a file (or of shared anonymous memory, whose
 * backing is a shmem file) drops mmap_lock to fsync the file's range, which for tmpfs is
 * noop_fsync: the page cache is the file, so there is nothing to write back.
 */
import type { Kernel, PerCpu } from './kernel.js';
import { mmap_read_lock, mmap_read_unlock } from './mmap.js';
import type { KPath } from './steps.js';
import type { Task } from './task.js';
import { EBUSY, EINVAL, ENOMEM, MS_ASYNC, MS_INVALIDATE, MS_SYNC } from './uapi.js';
import { VM_LOCKED, VM_SHARED } from './vma.js';

/**
 * msync(start, len, flags): unknown flags, a start not page-aligned, or MS_ASYNC with MS_SYNC
 * are -EINVAL; a length that wraps when page-aligned is -ENOMEM; an empty range is 0.
 */
export function sys_msync(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): number | KPath {
  const flags = Number(BigInt.asIntN(32, a[2]));
  let start = a[0];
  if (flags & ~(MS_ASYNC | MS_INVALIDATE | MS_SYNC)) return -EINVAL;
  if (start & 0xfffn) return -EINVAL;
  if (flags & MS_ASYNC && flags & MS_SYNC) return -EINVAL;
  const len = BigInt.asUintN(64, (a[1] + 0xfffn) & ~0xfffn);
  const end = start + len;
  if (end > 0xffffffffffffffffn) return -ENOMEM;
  if (end === start) return 0;
  const mm = t.mm!;
  return (function* (): KPath {
    let unmapped_error = 0;
    let error: number;
    yield* mmap_read_lock(k, pc, mm);
    // Addresses past 2^53 are past every VMA: find_vma finds none.
    let vma = start < 2n ** 53n ? mm.vmas.find_vma(Number(start)) : null;
    for (;;) {
      error = -ENOMEM;
      if (!vma) break;
      if (start < BigInt(vma.vm_start)) {
        if (flags === MS_ASYNC) break;
        start = BigInt(vma.vm_start);
        if (start >= end) break;
        unmapped_error = -ENOMEM;
      }
      if (flags & MS_INVALIDATE && vma.vm_flags & VM_LOCKED) {
        error = -EBUSY;
        break;
      }
      const file = vma.shmem !== null;
      start = BigInt(vma.vm_end);
      if (flags & MS_SYNC && file && vma.vm_flags & VM_SHARED) {
        // vfs_fsync_range with mmap_lock dropped: tmpfs's noop_fsync.
        yield* mmap_read_unlock(pc, mm);
        if (start >= end) return unmapped_error;
        yield* mmap_read_lock(k, pc, mm);
        vma = mm.vmas.find_vma(Number(start));
      } else {
        if (start >= end) {
          error = 0;
          break;
        }
        vma = mm.vmas.find_vma(vma.vm_end);
      }
    }
    yield* mmap_read_unlock(pc, mm);
    return error || unmapped_error;
  })();
}
