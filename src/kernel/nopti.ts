/**
 * Per-process PTI (seed 000; the January 2018 RFC "x86/arch_prctl: add ARCH_GET_NOPTI and
 * ARCH_SET_NOPTI", never merged; spec §3.7). On only with the kernel option `pti_per_process`.
 *
 * The mode belongs to the mm (`mm.nopti`): threads share it, fork copies it, execve gives the
 * new mm the caller's NEXT flag. arch_prctl(ARCH_GET_NOPTI) returns NOPTI_NOW | NOPTI_NEXT as
 * they stand; arch_prctl(ARCH_SET_NOPTI, flags) sets both to `flags`. Refusals, in order:
 * - the option is off: -EINVAL (arch_prctl's answer to an unknown code);
 * - a flag other than NOW and NEXT: -EINVAL;
 * - PTI is not on at boot: -ENODEV (there is nothing to switch off);
 * - turning PTI off (NOW or NEXT newly set) without CAP_SYS_ADMIN: -EPERM;
 * - changing NOW while the mm has more than one user (a thread, a vfork child or its parent
 *   share it): -EBUSY. NEXT alone can always change, so "vfork, set NEXT, execve" works.
 * The codes and errnos are isolab's: the RFC's are not known (spec §8.1).
 */
import { capable } from './capability.js';
import type { Kernel, PerCpu } from './kernel.js';
import type { MmStruct } from './mm.js';
import type { KPath } from './steps.js';
import type { Task } from './task.js';
import { flush_tlb_mm_range, TLB_FLUSH_ALL } from './tlbflush.js';
import { CAP_SYS_ADMIN, EBUSY, EINVAL, ENODEV, EPERM, NOPTI_NEXT, NOPTI_NOW } from './uapi.js';

/** ARCH_GET_NOPTI: the current NOW (the mm's mode) and NEXT (the task's) flags. */
export function arch_get_nopti(k: Kernel, t: Task): number {
  if (!k.options.pti_per_process) return -EINVAL;
  return (t.mm!.nopti ? NOPTI_NOW : 0) | (t.noptiNext ? NOPTI_NEXT : 0);
}

/** ARCH_SET_NOPTI: checks in the order above, then applies NEXT and, if it changes, NOW. */
export function* arch_set_nopti(k: Kernel, pc: PerCpu, t: Task, arg: bigint): KPath {
  if (!k.options.pti_per_process) return -EINVAL;
  if (arg & ~BigInt(NOPTI_NOW | NOPTI_NEXT)) return -EINVAL;
  if (!k.pti) return -ENODEV;
  const mm = t.mm!;
  const now = (arg & BigInt(NOPTI_NOW)) !== 0n;
  const next = (arg & BigInt(NOPTI_NEXT)) !== 0n;
  const disabling = (now && !mm.nopti) || (next && !t.noptiNext);
  if (disabling && !capable(t, CAP_SYS_ADMIN)) return -EPERM;
  if (now !== mm.nopti && mm.mm_users !== 1) return -EBUSY;
  t.noptiNext = next;
  if (now !== mm.nopti) {
    set_mm_nopti(k, mm, now);
    if (k.events.on) k.emit({ type: 'pti_mode', cpu: pc.id, tid: t.tid, mm: mm.ctx_id, nopti: now, how: 'now' });
    // The kernel copy's user PGD entries gained or lost NX: drop what the TLBs cached of them.
    yield* flush_tlb_mm_range(k, pc, mm, 0, TLB_FLUSH_ALL, 12, false);
  }
  return 0;
}

/**
 * Sets `mm`'s per-process PTI mode: off means no NX trick on the user PGD entries of its
 * kernel copy (user mode runs there) and no CR3 switch on entry and exit (pti.ts).
 */
export function set_mm_nopti(k: Kernel, mm: MmStruct, nopti: boolean): void {
  mm.nopti = nopti;
  mm.pgtables.nxTrick = k.pti && k.nx && !nopti;
  mm.pgtables.resyncUserHalf();
}
