/**
 * The clock and the syscalls that read it (kernel/time/time.c gettimeofday and time,
 * kernel/time/posix-timers.c clock_gettime, kernel/sys.c getcpu; 6.12).
 *
 * The model's clock is deterministic (DESIGN.md rule 3) and each thread's own: a thread's
 * CLOCK_MONOTONIC reads MONOTONIC_BASE_NS plus NSEC_PER_OP for every user operation it has
 * retired (Task.nr_ops; a thread created by fork or clone starts from its creator's count,
 * execve keeps it). CLOCK_BOOTTIME is CLOCK_MONOTONIC (the model never suspends);
 * CLOCK_REALTIME and CLOCK_TAI are REALTIME_EPOCH_S seconds later (no settimeofday, TAI offset 0).
 * A reading depends only on the reading thread's own history, so it is the same in every
 * interleaving that runs that thread the same way, and the explorer's reductions stay sound.
 *
 * XXX: not one system-wide timeline: two threads' readings are not ordered by what happened
 * between them (a thread woken by another may read an earlier time than its waker did). The
 * coarse and raw clocks read the same as their fine, adjusted counterparts. The CPU-time clocks
 * (CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID and the negative per-pid and per-fd ids) and
 * the alarm clocks are not modelled: -EINVAL (Linux answers the CPU-time ones; the alarm clocks
 * give -EINVAL without an RTC, which the model lacks). A futex timeout does not read this clock.
 */
import type { Kernel, PerCpu } from './kernel.js';
import type { KPath } from './steps.js';
import type { Task } from './task.js';
import { copy_to_user, put_user_u64, putU32, putU64 } from './uaccess.js';
import {
  CLOCK_BOOTTIME, CLOCK_MONOTONIC, CLOCK_MONOTONIC_COARSE, CLOCK_MONOTONIC_RAW, CLOCK_REALTIME, CLOCK_REALTIME_COARSE, CLOCK_TAI, EFAULT, EINVAL,
} from './uapi.js';

/** Nanoseconds one retired user operation moves its thread's clock: 1 µs. */
export const NSEC_PER_OP = 1000n;
/** CLOCK_MONOTONIC of a thread that has retired no operation: one second after boot. */
export const MONOTONIC_BASE_NS = 1_000_000_000n;
/** CLOCK_REALTIME minus CLOCK_MONOTONIC, in seconds: boot at 2025-01-01 00:00:00 UTC, less the base. */
export const REALTIME_EPOCH_S = 1735689600n - 1n;
export const NSEC_PER_SEC = 1_000_000_000n;

/** ktime_get for thread `t`: its CLOCK_MONOTONIC in nanoseconds. */
export function ktime_get(t: Task): bigint {
  return MONOTONIC_BASE_NS + BigInt(t.nr_ops) * NSEC_PER_OP;
}

/** ktime_get_real for thread `t`: its CLOCK_REALTIME in nanoseconds. */
export function ktime_get_real(t: Task): bigint {
  return REALTIME_EPOCH_S * NSEC_PER_SEC + ktime_get(t);
}

/**
 * The clock_get_timespec of posix_clocks[id] (clockid_to_kclock): the time in nanoseconds,
 * or null where clockid_to_kclock finds no clock (or the model does not have it: see above).
 */
function clock_get_ns(t: Task, id: number): bigint | null {
  switch (id) {
    case CLOCK_REALTIME:
    case CLOCK_REALTIME_COARSE:
    case CLOCK_TAI:
      return ktime_get_real(t);
    case CLOCK_MONOTONIC:
    case CLOCK_MONOTONIC_RAW:
    case CLOCK_MONOTONIC_COARSE:
    case CLOCK_BOOTTIME:
      return ktime_get(t);
    default:
      return null;
  }
}

/** A struct __kernel_timespec / __kernel_old_timeval's 16 bytes: seconds, then nanoseconds or microseconds. */
function timespec(ns: bigint, perUnit: bigint): Uint8Array {
  const b = new Uint8Array(16);
  putU64(b, 0, ns / NSEC_PER_SEC);
  putU64(b, 8, (ns % NSEC_PER_SEC) / perUnit);
  return b;
}

/**
 * gettimeofday(tv, tz): with tv, put_user of tv_sec then of tv_usec (either faulting:
 * -EFAULT); with tz, copy_to_user of sys_tz (zero: no timezone was ever set). 0.
 */
export function* sys_gettimeofday(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  const tv = a[0];
  const tz = a[1];
  if (tv !== 0n) {
    const b = timespec(ktime_get_real(t), 1000n);
    if (!(yield* copy_to_user(k, pc, t, tv, b.subarray(0, 8)))) return -EFAULT;
    if (!(yield* copy_to_user(k, pc, t, tv + 8n, b.subarray(8, 16)))) return -EFAULT;
  }
  if (tz !== 0n && !(yield* copy_to_user(k, pc, t, tz, new Uint8Array(8)))) return -EFAULT;
  return 0;
}

/** time(tloc): the realtime seconds, also put_user'd to tloc when it is not NULL (-EFAULT). */
export function* sys_time(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  const i = ktime_get_real(t) / NSEC_PER_SEC;
  if (a[0] !== 0n) {
    if ((yield* put_user_u64(k, pc, t, a[0], i)) < 0) return -EFAULT;
  }
  return Number(i);
}

/** clock_gettime(which_clock, tp): -EINVAL for an unknown clock, then put_timespec64 (-EFAULT, NULL included). */
export function* sys_clock_gettime(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  const ns = clock_get_ns(t, Number(BigInt.asIntN(32, a[0])));
  if (ns === null) return -EINVAL;
  if (!(yield* copy_to_user(k, pc, t, a[1], timespec(ns, 1n)))) return -EFAULT;
  return 0;
}

/**
 * getcpu(cpup, nodep, unused): raw_smp_processor_id put_user'd to cpup and cpu_to_node (0: the
 * model has one node) to nodep, each only when not NULL, both tried; -EFAULT if either faulted.
 */
export function* sys_getcpu(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  const cpu = pc.id;
  let err = false;
  const b = new Uint8Array(4);
  if (a[0] !== 0n) {
    putU32(b, 0, cpu);
    if (!(yield* copy_to_user(k, pc, t, a[0], b))) err = true;
  }
  if (a[1] !== 0n) {
    putU32(b, 0, 0);
    if (!(yield* copy_to_user(k, pc, t, a[1], b))) err = true;
  }
  return err ? -EFAULT : 0;
}
