/**
 * Fast user-space mutexes (kernel/futex/syscalls.c, core.c, waitwake.c): FUTEX_WAIT and
 * FUTEX_WAKE (and their _BITSET forms). A waiter is queued on its key's hash bucket under the
 * bucket's lock, and the futex word is read under that same lock, so a waker that changed the
 * word and then takes the lock either finds the waiter queued or was seen by the waiter's read:
 * no wake-up is lost. Keys (get_futex_key): a private futex, or a shared one in anonymous
 * private memory, is (mm, address); a shared one in a MAP_SHARED shmem or tmpfs page is
 * (object, page offset, offset in the page), which two processes mapping the page share.
 *
 * XXX: a timeout does not read the model's clock (time.ts, each thread's own). A wait with a
 * timeout behaves as if the time ran out just as it would have slept (-ETIMEDOUT unless a wake
 * came first), one of the outcomes Linux allows for any timeout. Linux hashes keys into 256 x CPUs buckets that distinct keys may share; the
 * model gives each key its own bucket. get_futex_key's get_user_pages_fast does not fault the
 * page in: the word's read does. A MAP_PRIVATE file page not yet copied is keyed (mm, address)
 * where Linux keys it by the file. No PI, requeue or robust lists.
 */
import type { Kernel, PerCpu } from './kernel.js';
import { wake_up_process } from './sched.js';
import { ERESTARTSYS, signal_pending } from './signal.js';
import { STEP_LOCK, STEP_READ, STEP_SLEEP, STEP_UNLOCK, STEP_WAIT, type KPath, type KSteps } from './steps.js';
import type { Task } from './task.js';
import { track } from '../track.js';
import { access_ok, copy_from_user, copy_from_user_nofault } from './uaccess.js';
import {
  EAGAIN, EFAULT, EINVAL, ENOSYS, ETIMEDOUT, FUTEX_BITSET_MATCH_ANY, FUTEX_CLOCK_REALTIME, FUTEX_CMD_MASK, FUTEX_PRIVATE_FLAG, FUTEX_WAIT, FUTEX_WAIT_BITSET, FUTEX_WAKE,
  FUTEX_WAKE_BITSET,
} from './uapi.js';
import { VM_READ, VM_SHARED } from './vma.js';

/** FLAGS_SHARED (kernel/futex/futex.h): the futex may be shared between processes (no FUTEX_PRIVATE_FLAG). */
export const FLAGS_SHARED = 0x10;
/** FLAGS_CLOCKRT: FUTEX_CLOCK_REALTIME was given. */
const FLAGS_CLOCKRT = 0x20;

/** A futex_q: one waiter, queued on its bucket until a wake takes it off (lock_ptr cleared). */
export class FutexQ {
  /** On the bucket's chain (plist_node_empty false, lock_ptr set). */
  queued = false;

  constructor(
    readonly task: Task,
    readonly key: string,
    readonly bitset: number,
  ) {
    return track(this);
  }
}

/** A futex_hash_bucket: its waiter count (futex_hb_waiters_*), its spinlock's owner (a tid, 0 when free) and chain. */
export class FutexHashBucket {
  waiters = 0;
  owner = 0;
  readonly chain: FutexQ[] = [];

  constructor(readonly id: number) {
    return track(this);
  }
}

/** The lock id a bucket's spinlock steps announce (steps.ts): negative, apart from the file, pipe and per-mm ids. */
function futexLockId(hb: FutexHashBucket): number {
  return -(2 ** 41 + 2 ** 34 + hb.id);
}

/** futex_hash: the key's bucket (made the first time the key is used). */
function futex_hash(k: Kernel, key: string): FutexHashBucket {
  let hb = k.futex_queues.get(key);
  if (!hb) {
    hb = new FutexHashBucket(k.nextObjectId());
    k.futex_queues.set(key, hb);
  }
  return hb;
}

/**
 * spin_lock(&hb->lock): a test-and-set step, retried while another task holds it (preemption
 * off while held). As futex_q_lock (`waiter`), the bucket first counts one more waiter
 * (futex_hb_waiters_inc, a full barrier), in the lock's first step, which announces the bucket
 * as futex_wake's look at the count does.
 */
function* hb_lock(pc: PerCpu, t: Task, hb: FutexHashBucket, waiter = false): KSteps<void> {
  pc.preempt_count++;
  pc.touch = futexLockId(hb);
  yield STEP_LOCK;
  if (waiter) hb.waiters++;
  while (hb.owner !== 0) yield STEP_WAIT;
  hb.owner = t.tid;
}

/** spin_unlock(&hb->lock). */
function* hb_unlock(pc: PerCpu, hb: FutexHashBucket): KSteps<void> {
  pc.touch = futexLockId(hb);
  yield STEP_UNLOCK;
  hb.owner = 0;
  pc.preempt_count--;
}

/**
 * get_futex_key: -EINVAL for a word not 4-byte aligned, -EFAULT outside user space; a private
 * futex is (mm, page address, offset). A shared one needs the page (get_user_pages_fast, which
 * fails with -EFAULT without a readable VMA): in a shmem or tmpfs MAP_SHARED mapping it is the
 * object's page (FUT_OFF_INODE), in anonymous memory (mm, address) again (FUT_OFF_MMSHARED).
 */
function get_futex_key(t: Task, uaddr: bigint, flags: number): string | number {
  const address = Number(uaddr & 0xfffffffffffff000n);
  const offset = Number(uaddr & 0xfffn);
  if (uaddr % 4n !== 0n) return -EINVAL;
  if (!access_ok(t, uaddr, 4)) return -EFAULT;
  const mm = t.mm!;
  if (!(flags & FLAGS_SHARED)) return `mm ${mm.ctx_id} ${address} ${offset}`;
  const vma = mm.vmas.find_vma(address);
  if (!vma || vma.vm_start > address || !(vma.vm_flags & VM_READ)) return -EFAULT;
  if (vma.shmem && vma.vm_flags & VM_SHARED) return `shmem ${vma.shmem.id} ${vma.vm_pgoff + (address - vma.vm_start) / 4096} ${offset}`;
  return `mm ${mm.ctx_id} ${address} ${offset}`;
}

/** The u32 at the start of `b` (little-endian). */
function u32(b: Uint8Array): number {
  return (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) >>> 0;
}

/**
 * sys_futex(uaddr, op, val, utime, uaddr2, val3): with a timeout for a waiting op, the
 * timespec is read (-EFAULT) and checked (futex_init_timeout: -EINVAL); then do_futex.
 */
export function* sys_futex(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  const op = Number(a[1] & 0xffffffffn) | 0;
  const cmd = op & FUTEX_CMD_MASK;
  let timed = false;
  if (a[3] !== 0n && (cmd === FUTEX_WAIT || cmd === FUTEX_WAIT_BITSET)) {
    const ts = yield* copy_from_user(k, pc, t, a[3], 16);
    if (!ts) return -EFAULT;
    const dv = new DataView(ts.buffer, ts.byteOffset, 16);
    const sec = dv.getBigInt64(0, true);
    const nsec = dv.getBigInt64(8, true);
    // timespec64_valid: tv_sec >= 0 and tv_nsec below NSEC_PER_SEC (as an unsigned long).
    if (sec < 0n || BigInt.asUintN(64, nsec) >= 1000000000n) return -EINVAL;
    timed = true;
  }
  return yield* do_futex(k, pc, t, a[0], op, Number(a[2] & 0xffffffffn), timed, Number(a[5] & 0xffffffffn));
}

/**
 * do_futex: the flags (futex_to_flags: shared unless FUTEX_PRIVATE_FLAG), FUTEX_CLOCK_REALTIME
 * only with a bitset wait (-ENOSYS), FUTEX_WAIT and FUTEX_WAKE with FUTEX_BITSET_MATCH_ANY,
 * the _BITSET forms with val3; -ENOSYS for any other command.
 */
function* do_futex(k: Kernel, pc: PerCpu, t: Task, uaddr: bigint, op: number, val: number, timed: boolean, val3: number): KPath {
  let flags = op & FUTEX_PRIVATE_FLAG ? 0 : FLAGS_SHARED;
  if (op & FUTEX_CLOCK_REALTIME) flags |= FLAGS_CLOCKRT;
  const cmd = op & FUTEX_CMD_MASK;
  // FUTEX_WAIT_REQUEUE_PI and FUTEX_LOCK_PI2 (also allowed a realtime clock) are not modelled.
  if (flags & FLAGS_CLOCKRT && cmd !== FUTEX_WAIT_BITSET) return -ENOSYS;
  switch (cmd) {
    case FUTEX_WAIT:
      return yield* futex_wait(k, pc, t, uaddr, flags, val, timed, FUTEX_BITSET_MATCH_ANY);
    case FUTEX_WAIT_BITSET:
      return yield* futex_wait(k, pc, t, uaddr, flags, val, timed, val3);
    case FUTEX_WAKE:
      return yield* futex_wake(k, pc, t, uaddr, flags, val, FUTEX_BITSET_MATCH_ANY);
    case FUTEX_WAKE_BITSET:
      return yield* futex_wake(k, pc, t, uaddr, flags, val, val3);
  }
  return -ENOSYS;
}

/**
 * futex_wait (__futex_wait, futex_wait_setup, futex_wait_queue, futex_unqueue): -EINVAL for an
 * empty bitset; the key; under the bucket lock the word is read with page faults disabled (a
 * fault drops the lock, faults the page in with get_user, -EFAULT if it cannot, and starts
 * again: from the key for a shared futex); a value other than `val` is -EAGAIN; else the task
 * is queued, the lock dropped, and it sleeps interruptibly while still queued. Woken by a wake
 * (no longer queued): 0. Otherwise it unqueues itself; a timed wait is then -ETIMEDOUT, a
 * signal -ERESTARTSYS, and a spurious wake-up waits again.
 */
export function* futex_wait(k: Kernel, pc: PerCpu, t: Task, uaddr: bigint, flags: number, val: number, timed: boolean, bitset: number): KPath {
  if (!bitset) return -EINVAL;
  for (;;) {
    const setup = yield* futex_wait_setup(k, pc, t, uaddr, val, flags);
    if (typeof setup === 'number') return setup;
    const [key, hb] = setup;
    // futex_wait_queue: set_current_state(TASK_INTERRUPTIBLE), futex_queue (queued, then the
    // lock dropped), and schedule() only if no wake took the entry off meanwhile (a pending
    // signal keeps schedule from sleeping, signal_pending_state).
    const q = new FutexQ(t, key, bitset);
    hb.chain.push(q);
    q.queued = true;
    yield* hb_unlock(pc, hb);
    let expired = false;
    if (q.queued) {
      if (timed) expired = true;
      else if (!signal_pending(t)) {
        t.state = 'sleeping';
        yield STEP_SLEEP;
      }
    }
    // futex_unqueue: 0 if a wake already took the entry off.
    if (!(yield* futex_unqueue(pc, t, hb, q))) return 0;
    if (expired) return -ETIMEDOUT;
    if (signal_pending(t)) return -ERESTARTSYS;
  }
}

/**
 * futex_wait_setup: the key and, with the bucket locked, the word, as [key, bucket] (the lock
 * held) or -errno (the lock dropped).
 */
function* futex_wait_setup(k: Kernel, pc: PerCpu, t: Task, uaddr: bigint, val: number, flags: number): KSteps<[string, FutexHashBucket] | number> {
  for (;;) {
    const key = get_futex_key(t, uaddr, flags);
    if (typeof key === 'number') return key;
    const hb = futex_hash(k, key);
    // retry_private:
    for (;;) {
      yield* hb_lock(pc, t, hb, true); // futex_q_lock
      // futex_get_value_locked: get_user under pagefault_disable().
      const got = yield* copy_from_user_nofault(k, pc, t, uaddr, 4);
      if (got) {
        if (u32(got) !== val >>> 0) {
          yield* futex_q_unlock(pc, hb);
          return -EAGAIN;
        }
        return [key, hb];
      }
      yield* futex_q_unlock(pc, hb);
      if (!(yield* copy_from_user(k, pc, t, uaddr, 4))) return -EFAULT;
      if (flags & FLAGS_SHARED) break;
    }
  }
}

/** futex_q_unlock: drops the bucket lock, then one waiter fewer (futex_hb_waiters_dec). */
function* futex_q_unlock(pc: PerCpu, hb: FutexHashBucket): KSteps<void> {
  yield* hb_unlock(pc, hb);
  hb.waiters--;
}

/** futex_unqueue: true (after taking it off under the lock) if `q` was still queued, false if a wake had taken it. */
function* futex_unqueue(pc: PerCpu, t: Task, hb: FutexHashBucket, q: FutexQ): KSteps<boolean> {
  // lock_ptr = READ_ONCE(q->lock_ptr): NULL once woken.
  pc.touch = futexLockId(hb);
  yield STEP_READ;
  if (!q.queued) return false;
  yield* hb_lock(pc, t, hb);
  const ret = q.queued;
  if (q.queued) __futex_unqueue(hb, q);
  yield* hb_unlock(pc, hb);
  return ret;
}

/** __futex_unqueue: off the chain, one waiter fewer. */
function __futex_unqueue(hb: FutexHashBucket, q: FutexQ): void {
  hb.chain.splice(hb.chain.indexOf(q), 1);
  q.queued = false;
  hb.waiters--;
}

/**
 * futex_wake (`nr_wake` is an int: 0 or a negative count still wakes one): -EINVAL for an empty bitset; the key; nothing to do (0) when the bucket has no
 * waiters (futex_hb_waiters_pending); else under the lock each waiter with the key and a
 * common bitset bit is taken off (futex_wake_mark) until `nr_wake` are (at least one: the count
 * is tested after each); they are woken once the lock is dropped (wake_up_q). Returns how many.
 */
export function* futex_wake(k: Kernel, pc: PerCpu, t: Task, uaddr: bigint, flags: number, nr_wake: number, bitset: number): KPath {
  if (!bitset) return -EINVAL;
  const key = get_futex_key(t, uaddr, flags);
  if (typeof key === 'number') return key;
  const hb = futex_hash(k, key);
  pc.touch = futexLockId(hb);
  yield STEP_READ;
  if (hb.waiters === 0) return 0;
  yield* hb_lock(pc, t, hb);
  const wake_q: Task[] = [];
  let ret = 0;
  for (const q of [...hb.chain]) {
    if (q.key !== key || !(q.bitset & bitset)) continue;
    __futex_unqueue(hb, q);
    wake_q.push(q.task);
    if (++ret >= (nr_wake | 0)) break;
  }
  yield* hb_unlock(pc, hb);
  for (const w of wake_q) wake_up_process(k, w);
  return ret;
}
