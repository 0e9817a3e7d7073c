/**
 * Resource limits (kernel/sys.c getrlimit, setrlimit, prlimit64, do_prlimit;
 * include/asm-generic/resource.h INIT_RLIMITS; kernel/fork.c fork_init, copy_signal): each
 * thread group's soft and hard limit per resource, in its signal_struct (ThreadGroup.rlim_cur
 * and rlim_max), shared by its threads, copied by fork and kept by execve.
 *
 * Every process the model starts has init's limits (INIT_RLIMITS, with fork_init's RLIMIT_NPROC
 * and RLIMIT_SIGPENDING of max_threads / 2 at boot; a later kernel.threads-max does not change
 * them). Where Linux enforces a limit, so does the model:
 * - RLIMIT_NOFILE: alloc_fd, dup2/dup3 (-EBADF), F_DUPFD (-EINVAL) (file.ts, fcntl.ts);
 * - RLIMIT_AS and RLIMIT_DATA: may_expand_vm, for mmap and stack growth (vm_account.ts);
 * - RLIMIT_STACK: stack growth (fault.ts), the initial stack and mmap_base at execve (exec.ts),
 *   the default shadow-stack size (shstk.ts);
 * - RLIMIT_MEMLOCK: mlock, mlock2, mlockall, MAP_LOCKED, MCL_FUTURE (mlock.ts, vm_account.ts);
 * - RLIMIT_NPROC: copy_process's test, which every task of the model passes: they are all root
 *   (INIT_USER), whose forks the limit never refuses (fork.ts).
 *
 * XXX: RLIMIT_CPU arms no timer (the model has no CPU time), RLIMIT_FSIZE sends no SIGXFSZ, and
 * RLIMIT_CORE, RSS, LOCKS, SIGPENDING, MSGQUEUE, NICE, RTPRIO and RTTIME are stored only. There
 * are no uids, so check_prlimit_permission always passes, and no LSM.
 */
import type { Kernel, PerCpu } from './kernel.js';
import { capable } from './capability.js';
import { threadsMax } from './options.js';
import type { KPath } from './steps.js';
import type { Task, ThreadGroup } from './task.js';
import { copy_from_user, copy_to_user, getU64, putU64 } from './uaccess.js';
import {
  CAP_SYS_RESOURCE, EFAULT, EINVAL, EPERM, ESRCH, RLIM_INFINITY, RLIM_NLIMITS, RLIMIT_AS, RLIMIT_CORE, RLIMIT_CPU, RLIMIT_DATA, RLIMIT_FSIZE, RLIMIT_LOCKS,
  RLIMIT_MEMLOCK, RLIMIT_MSGQUEUE, RLIMIT_NICE, RLIMIT_NOFILE, RLIMIT_NPROC, RLIMIT_RSS, RLIMIT_RTPRIO, RLIMIT_RTTIME, RLIMIT_SIGPENDING, RLIMIT_STACK,
} from './uapi.js';

/** _STK_LIM (include/uapi/linux/resource.h): the default stack limit, 8 MiB. */
export const _STK_LIM = 8n * 1024n * 1024n;
/** MLOCK_LIMIT (include/uapi/linux/resource.h): the default RLIMIT_MEMLOCK, 8 MiB. */
export const MLOCK_LIMIT = 8n * 1024n * 1024n;
/** INR_OPEN_CUR and INR_OPEN_MAX (include/uapi/linux/fs.h): RLIMIT_NOFILE's initial soft and hard limits. */
export const INR_OPEN_CUR = 1024n;
export const INR_OPEN_MAX = 4096n;
/** MQ_BYTES_MAX (include/uapi/linux/mqueue.h): RLIMIT_MSGQUEUE's initial limits. */
const MQ_BYTES_MAX = 819200n;
/** sysctl fs.nr_open's default (fs/file.c): the highest hard RLIMIT_NOFILE setrlimit accepts. */
export const SYSCTL_NR_OPEN = 1024 * 1024;

/** INIT_RLIMITS (include/asm-generic/resource.h): init_task's [cur, max] per resource, RLIMIT_NPROC and RLIMIT_SIGPENDING before fork_init. */
const INIT_RLIMITS: readonly (readonly [bigint, bigint])[] = (() => {
  const r: [bigint, bigint][] = [];
  for (let i = 0; i < RLIM_NLIMITS; i++) r.push([RLIM_INFINITY, RLIM_INFINITY]);
  r[RLIMIT_CPU] = [RLIM_INFINITY, RLIM_INFINITY];
  r[RLIMIT_FSIZE] = [RLIM_INFINITY, RLIM_INFINITY];
  r[RLIMIT_DATA] = [RLIM_INFINITY, RLIM_INFINITY];
  r[RLIMIT_STACK] = [_STK_LIM, RLIM_INFINITY];
  r[RLIMIT_CORE] = [0n, RLIM_INFINITY];
  r[RLIMIT_RSS] = [RLIM_INFINITY, RLIM_INFINITY];
  r[RLIMIT_NPROC] = [0n, 0n];
  r[RLIMIT_NOFILE] = [INR_OPEN_CUR, INR_OPEN_MAX];
  r[RLIMIT_MEMLOCK] = [MLOCK_LIMIT, MLOCK_LIMIT];
  r[RLIMIT_AS] = [RLIM_INFINITY, RLIM_INFINITY];
  r[RLIMIT_LOCKS] = [RLIM_INFINITY, RLIM_INFINITY];
  r[RLIMIT_SIGPENDING] = [0n, 0n];
  r[RLIMIT_MSGQUEUE] = [MQ_BYTES_MAX, MQ_BYTES_MAX];
  r[RLIMIT_NICE] = [0n, 0n];
  r[RLIMIT_RTPRIO] = [0n, 0n];
  r[RLIMIT_RTTIME] = [RLIM_INFINITY, RLIM_INFINITY];
  return r;
})();

/**
 * init's limits for a new thread group the System starts: INIT_RLIMITS with fork_init's
 * RLIMIT_NPROC and RLIMIT_SIGPENDING of max_threads / 2, max_threads being Linux's boot value
 * (set_max_threads from the memory size; the kernel.threads-max option is a later sysctl).
 */
export function init_rlimits(k: Kernel, g: ThreadGroup): void {
  for (let i = 0; i < RLIM_NLIMITS; i++) {
    g.rlim_cur[i] = INIT_RLIMITS[i][0];
    g.rlim_max[i] = INIT_RLIMITS[i][1];
  }
  const half = BigInt(Math.floor(threadsMax({ ...k.options, threads_max: 0 }, k.machine.mem.sizeBytes) / 2));
  g.rlim_cur[RLIMIT_NPROC] = g.rlim_max[RLIMIT_NPROC] = half;
  g.rlim_cur[RLIMIT_SIGPENDING] = g.rlim_max[RLIMIT_SIGPENDING] = half;
}

/** copy_signal's memcpy of the rlimits: a forked process starts with its parent's. */
export function copy_rlimits(from: ThreadGroup, to: ThreadGroup): void {
  to.rlim_cur.set(from.rlim_cur);
  to.rlim_max.set(from.rlim_max);
}

/** rlimit(resource): the soft limit of `t`'s thread group (task_rlimit). */
export function rlimit(t: Task, resource: number): bigint {
  return t.group.rlim_cur[resource];
}

/** rlimit_max(resource): the hard limit of `t`'s thread group. */
export function rlimit_max(t: Task, resource: number): bigint {
  return t.group.rlim_max[resource];
}

/** rlimit(resource) >> PAGE_SHIFT, as a number (exact: at most 2^52 - 1). */
export function rlimit_pages(t: Task, resource: number): number {
  return Number(t.group.rlim_cur[resource] >> 12n);
}

/** rlimit(resource) as a number of descriptors or bytes, for comparison with a number below 2^53 (RLIM_INFINITY compares above every one). */
export function rlimit_num(t: Task, resource: number): number {
  return Number(t.group.rlim_cur[resource]);
}

/**
 * do_prlimit(tsk, resource, new, old): in Linux's order, a resource out of range (-EINVAL);
 * with a new limit, a soft limit above the hard one (-EINVAL) and an RLIMIT_NOFILE hard limit
 * above sysctl_nr_open (-EPERM); then, under task_lock, raising the hard limit without
 * CAP_SYS_RESOURCE (-EPERM, the caller's capability). The old limits are read before the new
 * ones are written. XXX: RLIMIT_CPU's update_rlimit_cpu arms no timer.
 */
export function do_prlimit(t: Task, tsk: Task, resource: number, newLim: readonly [bigint, bigint] | null, old: [bigint, bigint] | null): number {
  if (resource >= RLIM_NLIMITS) return -EINVAL;
  if (newLim) {
    if (newLim[0] > newLim[1]) return -EINVAL;
    if (resource === RLIMIT_NOFILE && newLim[1] > BigInt(SYSCTL_NR_OPEN)) return -EPERM;
  }
  const g = tsk.group;
  if (newLim && newLim[1] > g.rlim_max[resource] && !capable(t, CAP_SYS_RESOURCE)) return -EPERM;
  if (old) {
    old[0] = g.rlim_cur[resource];
    old[1] = g.rlim_max[resource];
  }
  if (newLim) {
    g.rlim_cur[resource] = newLim[0];
    g.rlim_max[resource] = newLim[1];
  }
  return 0;
}

/** struct rlimit / rlimit64 (16 bytes: rlim_cur, rlim_max) as user memory. */
function rlimit_bytes(v: readonly [bigint, bigint]): Uint8Array {
  const b = new Uint8Array(16);
  putU64(b, 0, v[0]);
  putU64(b, 8, v[1]);
  return b;
}

/** getrlimit(resource, rlim): do_prlimit's check of the resource, then the copy out (-EFAULT). */
export function sys_getrlimit(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): number | KPath {
  const resource = Number(a[0] & 0xffffffffn);
  const value: [bigint, bigint] = [0n, 0n];
  const ret = do_prlimit(t, t, resource, null, value);
  if (ret) return ret;
  return (function* (): KPath {
    return (yield* copy_to_user(k, pc, t, a[1], rlimit_bytes(value))) ? 0 : -EFAULT;
  })();
}

/** setrlimit(resource, rlim): the copy in first (-EFAULT), then do_prlimit on the caller. */
export function* sys_setrlimit(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  const b = yield* copy_from_user(k, pc, t, a[1], 16);
  if (!b) return -EFAULT;
  return do_prlimit(t, t, Number(a[0] & 0xffffffffn), [getU64(b, 0), getU64(b, 8)], null);
}

/**
 * prlimit64(pid, resource, new_rlim, old_rlim), in Linux's order: the new limits are read
 * (-EFAULT), the task found (pid 0: the caller; -ESRCH), check_prlimit_permission (always
 * passes: every task is root), a task of another thread group must not be reaped (-ESRCH);
 * then do_prlimit, and the old limits are written out (-EFAULT, the new ones already set).
 */
export function* sys_prlimit64(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  const pid = Number(BigInt.asIntN(32, a[0]));
  const resource = Number(a[1] & 0xffffffffn);
  let newLim: [bigint, bigint] | null = null;
  if (a[2] !== 0n) {
    const b = yield* copy_from_user(k, pc, t, a[2], 16);
    if (!b) return -EFAULT;
    // rlim64_to_rlim: the identity on 64-bit (RLIM64_INFINITY is RLIM_INFINITY).
    newLim = [getU64(b, 0), getU64(b, 8)];
  }
  const tsk = pid ? k.find_task_by_vpid(pid) : t;
  if (!tsk || tsk.state === 'dead') return -ESRCH;
  const old: [bigint, bigint] | null = a[3] !== 0n ? [0n, 0n] : null;
  const ret = do_prlimit(t, tsk, resource, newLim, old);
  if (ret) return ret;
  if (old && !(yield* copy_to_user(k, pc, t, a[3], rlimit_bytes(old)))) return -EFAULT;
  return 0;
}
