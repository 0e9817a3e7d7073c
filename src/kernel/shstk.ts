/**
 * User shadow stacks (arch/x86/kernel/shstk.c, process.c, process_64.c): arch_prctl's
 * ARCH_SHSTK_* calls, map_shadow_stack, the shadow stack a new thread gets and the one a
 * thread frees, and the entries signal delivery pushes and rt_sigreturn pops.
 *
 * A thread's CET user state (XFEATURE_CET_USER: IA32_U_CET and IA32_PL3_SSP) is kept in the
 * task, as its other user registers are (`ucet`, `ssp`); the user operations CALL, RET, WRSS
 * and RDSSP read it (user/interp.ts). The stacks themselves are ordinary memory in
 * VM_SHADOW_STACK VMAs, whose PTEs carry the shadow-stack encoding R/W=0, D=1.
 */
import { CET_SH_STK_EN, CET_WR_SHSTK_EN } from '../hw/regs.js';
import type { Kernel, PerCpu } from './kernel.js';
import { rlimit } from './resource.js';
import { do_mmap_locked, do_vmi_munmap, mmap_write_lock, mmap_write_unlock } from './mmap.js';
import type { KPath, KSteps } from './steps.js';
import type { Task } from './task.js';
import { copy_from_user, copy_to_user, getU64, putU64, write_user_shstk_64 } from './uaccess.js';
import {
  ARCH_SHSTK_DISABLE, ARCH_SHSTK_LOCK, ARCH_SHSTK_SHSTK, ARCH_SHSTK_STATUS, ARCH_SHSTK_WRSS, CLONE_VFORK, CLONE_VM,
  EFAULT, EINVAL, ENOMEM, ENOSPC, EOPNOTSUPP, EOVERFLOW, EPERM, ERANGE, MAP_ABOVE4G, MAP_ANONYMOUS, MAP_FIXED_NOREPLACE, MAP_PRIVATE, PROT_READ, RLIMIT_STACK, SHADOW_STACK_SET_TOKEN,
} from './uapi.js';
import { VM_WRITE } from './vma.js';

/** SS_FRAME_SIZE: one shadow-stack entry. */
export const SS_FRAME_SIZE = 8;
/** SHSTK_DATA_BIT: bit 63, set in a signal token so it can never be a return address. */
export const SHSTK_DATA_BIT = 1n << 63n;
/** TASK_SIZE_MAX with 4-level paging: where user space ends (less the guard page). */
const TASK_SIZE_MAX = 0x7ffffffff000n;

/** The user shadow stack is on for `t` (features has ARCH_SHSTK_SHSTK). */
export function shstk_enabled(t: Task): boolean {
  return (t.shstkFeatures & ARCH_SHSTK_SHSTK) !== 0;
}

/** adjust_shstk_size: a requested size page-aligned, or the default min(RLIMIT_STACK of `t`, 4 GiB). */
export function adjust_shstk_size(t: Task, size: number): number {
  if (size) return Math.ceil(size / 4096) * 4096;
  const rlim = rlimit(t, RLIMIT_STACK);
  return Math.ceil(Number(rlim < 2n ** 32n ? rlim : 2n ** 32n) / 4096) * 4096;
}

/**
 * alloc_shstk: under mmap_lock, a PROT_READ private anonymous mapping above 4 GiB with
 * VM_SHADOW_STACK | VM_WRITE (MAP_FIXED_NOREPLACE at `addr` when given). With `set_res_tok`,
 * a restore token for SSP base+token_offset is written below it with WRUSS; failing that, the
 * mapping is removed and -EINVAL returned. Returns the address or -errno.
 */
export function* alloc_shstk(k: Kernel, pc: PerCpu, t: Task, addr: number, size: number, token_offset: number, set_res_tok: boolean): KPath {
  let flags = MAP_ANONYMOUS | MAP_PRIVATE | MAP_ABOVE4G;
  if (addr) flags |= MAP_FIXED_NOREPLACE;
  const mm = t.mm!;
  yield* mmap_write_lock(k, pc, mm, t);
  const mapped = yield* do_mmap_locked(k, pc, mm, BigInt(addr), BigInt(size), PROT_READ, flags, 0n, VM_WRITE, true);
  yield* mmap_write_unlock(pc, mm);
  if (!set_res_tok || mapped < 0) return mapped;
  if ((yield* create_rstor_token(k, pc, t, mapped + token_offset)) < 0) {
    yield* vm_munmap(k, pc, t, mapped, size);
    return -EINVAL;
  }
  return mapped;
}

/** create_rstor_token: a restore token for `ssp` (8-aligned), value ssp | 1 (64-bit mode), at ssp - 8. */
function* create_rstor_token(k: Kernel, pc: PerCpu, t: Task, ssp: number): KPath {
  if (ssp % 8 !== 0) return -EINVAL;
  const ok = yield* write_user_shstk_64(k, pc, t, BigInt(ssp - SS_FRAME_SIZE), BigInt(ssp) | 1n);
  return ok ? 0 : -EFAULT;
}

/** vm_munmap: do_vmi_munmap of [start, start + len) under mmap_lock. */
function* vm_munmap(k: Kernel, pc: PerCpu, t: Task, start: number, len: number): KPath {
  const mm = t.mm!;
  yield* mmap_write_lock(k, pc, mm, t);
  const r = yield* do_vmi_munmap(k, pc, mm, start, start + Math.ceil(len / 4096) * 4096);
  yield* mmap_write_unlock(pc, mm);
  return r;
}

/**
 * map_shadow_stack(addr, size, flags): -EOPNOTSUPP without user shadow stacks; flags other
 * than SHADOW_STACK_SET_TOKEN -EINVAL; a token needs size >= 8 (-ENOSPC); an address below
 * 4 GiB -ERANGE; a size whose page alignment overflows -EOVERFLOW; then alloc_shstk, with the
 * token at base + size - 8 (the unaligned size). The caller need not have shadow stacks on.
 */
export function sys_map_shadow_stack(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): number | KPath {
  const [addr, size] = a;
  // SYSCALL_DEFINE3(map_shadow_stack, unsigned long addr, unsigned long size, unsigned int flags):
  // only the low 32 bits of the flags register count.
  const flags = a[2] & 0xffffffffn;
  const set_tok = (flags & BigInt(SHADOW_STACK_SET_TOKEN)) !== 0n;
  if (!k.userShstk) return -EOPNOTSUPP;
  if (flags & ~BigInt(SHADOW_STACK_SET_TOKEN)) return -EINVAL;
  if (set_tok && size < 8n) return -ENOSPC;
  if (addr && addr < 2n ** 32n) return -ERANGE;
  const aligned = BigInt.asUintN(64, (size + 0xfffn) & ~0xfffn);
  if (aligned < size) return -EOVERFLOW;
  // do_mmap would refuse these with -ENOMEM; refused here before they are narrowed to numbers.
  if (aligned > BigInt(t.mm!.task_size) || addr > BigInt(t.mm!.task_size)) return -ENOMEM;
  return alloc_shstk(k, pc, t, Number(addr), Number(aligned), Number(size), set_tok);
}

/** shstk_setup (ARCH_SHSTK_ENABLE of SHSTK): a default-size stack, SSP at its top (no token), U_CET.SH_STK_EN. */
function* shstk_setup(k: Kernel, pc: PerCpu, t: Task): KPath {
  if (shstk_enabled(t)) return 0;
  if (!k.userShstk) return -EOPNOTSUPP;
  const size = adjust_shstk_size(t, 0);
  const addr = yield* alloc_shstk(k, pc, t, 0, size, 0, false);
  if (addr < 0) return addr;
  t.ssp = addr + size;
  t.ucet = CET_SH_STK_EN;
  t.shstkBase = addr;
  t.shstkSize = size;
  t.shstkFeatures |= ARCH_SHSTK_SHSTK;
  return 0;
}

/** wrss_control: WRSS on or off; needs the shadow stack on (-EPERM). */
function wrss_control(k: Kernel, t: Task, enable: boolean): number {
  if (!k.userShstk) return -EOPNOTSUPP;
  if (!shstk_enabled(t)) return -EPERM;
  if (((t.shstkFeatures & ARCH_SHSTK_WRSS) !== 0) === enable) return 0;
  if (enable) {
    t.ucet |= CET_WR_SHSTK_EN;
    t.shstkFeatures |= ARCH_SHSTK_WRSS;
  } else {
    t.ucet &= ~CET_WR_SHSTK_EN;
    t.shstkFeatures &= ~ARCH_SHSTK_WRSS;
  }
  return 0;
}

/** shstk_disable: U_CET and SSP to 0, this thread's stack unmapped, SHSTK and WRSS cleared. A no-op when off. */
function* shstk_disable(k: Kernel, pc: PerCpu, t: Task): KPath {
  if (!k.userShstk) return -EOPNOTSUPP;
  if (!shstk_enabled(t)) return 0;
  t.ucet = 0;
  t.ssp = 0;
  yield* shstk_free(k, pc, t);
  t.shstkFeatures &= ~(ARCH_SHSTK_SHSTK | ARCH_SHSTK_WRSS);
  return 0;
}

/**
 * shstk_prctl for the calling thread, in Linux 6.12's order: STATUS writes the features to
 * *arg2; LOCK ors arg2 into the locked set unchecked; a locked bit -EPERM; more than one bit
 * -EINVAL; DISABLE of WRSS or SHSTK; anything else (ENABLE, and UNLOCK, which only ptrace may
 * use as such) enables SHSTK or WRSS. A bit that is neither is -EINVAL.
 */
export function shstk_prctl(k: Kernel, pc: PerCpu, t: Task, option: number, arg2: bigint): number | KPath {
  if (option === ARCH_SHSTK_STATUS) {
    const b = new Uint8Array(8);
    putU64(b, 0, BigInt(t.shstkFeatures));
    return (function* (): KPath {
      return (yield* copy_to_user(k, pc, t, arg2, b)) ? 0 : -EFAULT;
    })();
  }
  const features = arg2;
  if (option === ARCH_SHSTK_LOCK) {
    t.shstkLocked |= features;
    return 0;
  }
  if (features & t.shstkLocked) return -EPERM;
  if ((features & (features - 1n)) !== 0n) return -EINVAL;
  const f = Number(features);
  if (option === ARCH_SHSTK_DISABLE) {
    if (f & ARCH_SHSTK_WRSS) return wrss_control(k, t, false);
    if (f & ARCH_SHSTK_SHSTK) return shstk_disable(k, pc, t);
    return -EINVAL;
  }
  if (f & ARCH_SHSTK_SHSTK) return shstk_setup(k, pc, t);
  if (f & ARCH_SHSTK_WRSS) return wrss_control(k, t, true);
  return -EINVAL;
}

/**
 * shstk_alloc_thread_stack (copy_thread): a vfork child borrows the parent's stack (base and
 * size 0: it never frees it); a fork child keeps the copy-on-write copy at the same address;
 * a CLONE_VM thread gets a new stack of the default size with SSP at its top. Returns 0 or the
 * allocation's -errno. Only when the parent has the shadow stack on.
 */
export function* shstk_alloc_thread_stack(k: Kernel, pc: PerCpu, parent: Task, child: Task, clone_flags: number): KPath {
  child.shstkFeatures = parent.shstkFeatures;
  child.shstkLocked = parent.shstkLocked;
  child.ucet = parent.ucet;
  child.ssp = parent.ssp;
  child.shstkBase = parent.shstkBase;
  child.shstkSize = parent.shstkSize;
  if (!shstk_enabled(parent)) return 0;
  if (clone_flags & CLONE_VFORK) {
    child.shstkBase = 0;
    child.shstkSize = 0;
    return 0;
  }
  if (!(clone_flags & CLONE_VM)) return 0;
  const size = adjust_shstk_size(parent, 0);
  const addr = yield* alloc_shstk(k, pc, parent, 0, size, 0, false);
  if (addr < 0) return addr;
  child.shstkBase = addr;
  child.shstkSize = size;
  child.ssp = addr + size;
  return 0;
}

/**
 * shstk_free (deactivate_mm at exit and exec, and ARCH_SHSTK_DISABLE): unmaps the thread's own
 * shadow stack from its mm. A vfork child (base 0) frees nothing.
 */
export function* shstk_free(k: Kernel, pc: PerCpu, t: Task): KSteps<void> {
  if (!k.userShstk || !t.mm || !shstk_enabled(t) || t.shstkBase === 0) return;
  yield* vm_munmap(k, pc, t, t.shstkBase, t.shstkSize);
  t.shstkBase = 0;
  t.shstkSize = 0;
}

/** reset_thread_features (start_thread at execve): shadow stack off and unlocked, CET state cleared. */
export function reset_thread_features(t: Task): void {
  t.shstkFeatures = 0;
  t.shstkLocked = 0n;
  t.shstkBase = 0;
  t.shstkSize = 0;
  t.ucet = 0;
  t.ssp = 0;
}

/**
 * setup_signal_shadow_stack (after the rt_sigframe is written): with the shadow stack on,
 * pushes a signal token (the old SSP with bit 63 set) and then sa_restorer, so the handler's
 * RET to the restorer matches. False (the frame fails, SIGSEGV) for no restorer, SSP 0 or
 * misaligned, or a write that faults.
 */
export function* setup_signal_shadow_stack(k: Kernel, pc: PerCpu, t: Task, restorer: bigint): KSteps<boolean> {
  if (!k.userShstk || !shstk_enabled(t)) return true;
  if (restorer === 0n) return false;
  const ssp = BigInt(t.ssp);
  if (ssp === 0n || ssp % 8n !== 0n) return false;
  if (!(yield* write_user_shstk_64(k, pc, t, ssp - 8n, ssp | SHSTK_DATA_BIT))) return false;
  if (!(yield* write_user_shstk_64(k, pc, t, ssp - 16n, restorer))) return false;
  t.ssp = Number(ssp - 16n);
  return true;
}

/**
 * restore_signal_shadow_stack (rt_sigreturn): SSP (just past the restorer entry the handler's
 * RET popped) must be 8-aligned and point at a signal token (bit 63) in a VM_SHADOW_STACK VMA;
 * the old SSP it holds must be 8-aligned and in user space. False makes a bad frame (SIGSEGV).
 */
export function* restore_signal_shadow_stack(k: Kernel, pc: PerCpu, t: Task): KSteps<boolean> {
  if (!k.userShstk || !shstk_enabled(t)) return true;
  const ssp = t.ssp;
  if (ssp % 8 !== 0) return false;
  const b = yield* copy_from_user(k, pc, t, BigInt(ssp), 8);
  if (!b) return false;
  const token = getU64(b, 0);
  if (!(token & SHSTK_DATA_BIT)) return false;
  const vma = t.mm!.vmas.vma_lookup(ssp);
  if (!vma || !vma.shadowStack) return false;
  const old = token & ~SHSTK_DATA_BIT;
  if (old % 8n !== 0n || old >= TASK_SIZE_MAX) return false;
  t.ssp = Number(old);
  return true;
}
