/**
 * get_user_pages for the kernel's reads of another process's memory (mm/gup.c), and
 * process_vm_readv (mm/process_vm_access.c), the debugger-style way to use them. GUP walks the
 * target mm's page tables in software (follow_page_pte), faulting pages in with
 * handle_mm_fault; the VMA checks are check_vma_flags', including the protection-key check,
 * which a foreign mm skips.
 *
 * XXX: no ptrace access check beyond the target existing (every process may read every
 * other's memory), no FOLL_FORCE, and only reads (process_vm_writev is not modelled).
 */
import type { Kernel, PerCpu } from './kernel.js';
import { FAULT_FLAG_WRITE, handle_mm_fault, vm_fault, VM_FAULT_OOM } from './memory.js';
import type { MmStruct } from './mm.js';
import { mmap_read_lock, mmap_read_unlock } from './mmap.js';
import { pte_pfn, pte_present, pte_protnone, pte_write } from './pgtable.js';
import { arch_vma_access_permitted } from './pkeys.js';
import { STEP_READ, type KPath, type KSteps } from './steps.js';
import type { Task } from './task.js';
import { copy_from_user, copy_to_user, getU64 } from './uaccess.js';
import { EFAULT, EINVAL, ENOMEM, ESRCH } from './uapi.js';
import { VM_READ, VM_WRITE, type Vma } from './vma.js';

/** UIO_MAXIOV: the most iovecs one call may pass. */
const UIO_MAXIOV = 1024;

/** check_vma_flags: whether GUP may touch `vma` for a read or write; the key check applies only to the caller's own mm. */
function check_vma_flags(k: Kernel, pc: PerCpu, vma: Vma, write: boolean, foreign: boolean): boolean {
  if (write && (!(vma.vm_flags & VM_WRITE) || vma.shadowStack)) return false;
  if (!write && !(vma.vm_flags & VM_READ)) return false;
  return arch_vma_access_permitted(k, pc, vma, write, false, foreign);
}

/**
 * One page of `mm` at `addr` for the caller `t`, as get_user_pages_remote gives it: the
 * physical address of `addr`, or -EFAULT. Holds `mm`'s mmap_lock for reading meanwhile.
 */
export function* get_user_page(k: Kernel, pc: PerCpu, t: Task, mm: MmStruct, addr: number, write: boolean): KPath {
  const foreign = mm !== t.mm;
  yield* mmap_read_lock(k, pc, mm);
  let ret = -EFAULT;
  const vma = mm.vmas.vma_lookup(addr);
  if (vma && check_vma_flags(k, pc, vma, write, foreign)) {
    for (let tries = 0; tries < 3; tries++) {
      // follow_page_pte
      const table = mm.pgtables.pteTable(addr, false);
      if (table >= 0) {
        const i = Math.floor(addr / 4096) % 512;
        pc.touch = table * 4096 + i * 8;
        yield STEP_READ;
        const lo = k.machine.mem.readLo(table, i);
        const hi = k.machine.mem.readHi(table, i);
        if (pte_present(lo) && !pte_protnone(lo) && (!write || pte_write(lo, k.userShstk))) {
          ret = pte_pfn(lo, hi) * 4096 + (addr % 4096);
          break;
        }
      }
      const r = yield* handle_mm_fault(new vm_fault(k, pc, t, vma, mm, addr, write ? FAULT_FLAG_WRITE : 0));
      if (r & VM_FAULT_OOM) {
        ret = -ENOMEM;
        break;
      }
    }
  }
  yield* mmap_read_unlock(pc, mm);
  return ret;
}

/** Reads `count` struct iovec {base, len} at `addr`, or null for -EFAULT. */
function* import_iovec(k: Kernel, pc: PerCpu, t: Task, addr: bigint, count: number): KSteps<bigint[][] | null> {
  if (count === 0) return [];
  const b = yield* copy_from_user(k, pc, t, addr, 16 * count);
  if (!b) return null;
  const v: bigint[][] = [];
  for (let i = 0; i < count; i++) v.push([getU64(b, 16 * i), getU64(b, 16 * i + 8)]);
  return v;
}

/**
 * process_vm_readv(pid, lvec, liovcnt, rvec, riovcnt, flags): copies from the target's
 * remote ranges into the caller's local ones, in order. flags must be 0 and the counts at
 * most UIO_MAXIOV (-EINVAL); the iovecs must be readable (-EFAULT); the target must exist
 * (-ESRCH). Returns the bytes copied, or -EFAULT if the first page could not be read. A
 * foreign target's protection keys are not checked; the caller's own are.
 */
export function sys_process_vm_readv(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): number | KPath {
  const [pidArg, lvec, liovcnt, rvec, riovcnt, flags] = a;
  if (flags !== 0n) return -EINVAL;
  if (liovcnt > BigInt(UIO_MAXIOV) || riovcnt > BigInt(UIO_MAXIOV)) return -EINVAL;
  return (function* (): KPath {
    const local = yield* import_iovec(k, pc, t, lvec, Number(liovcnt));
    if (!local) return -EFAULT;
    const remote = yield* import_iovec(k, pc, t, rvec, Number(riovcnt));
    if (!remote) return -EFAULT;
    const target = k.find_task_by_vpid(Number(BigInt.asIntN(32, pidArg)));
    if (!target || !target.mm || target.state === 'dead' || target.state === 'zombie') return -ESRCH;
    const mm = target.mm;
    let copied = 0;
    let li = 0;
    let loff = 0n;
    for (const [base, len] of remote) {
      for (let off = 0n; off < len; ) {
        while (li < local.length && loff >= local[li][1]) {
          li++;
          loff = 0n;
        }
        if (li >= local.length) return copied;
        const src = base + off;
        const n = Number([len - off, local[li][1] - loff, 4096n - (src % 4096n)].reduce((x, y) => (x < y ? x : y)));
        const pa = src < BigInt(mm.task_size) ? yield* get_user_page(k, pc, t, mm, Number(src), false) : -EFAULT;
        if (pa < 0) return copied > 0 ? copied : pa;
        const data = k.machine.mem.readBytes(pa, n);
        if (!(yield* copy_to_user(k, pc, t, local[li][0] + loff, data))) return copied > 0 ? copied : -EFAULT;
        copied += n;
        off += BigInt(n);
        loff += BigInt(n);
      }
    }
    return copied;
  })();
}
