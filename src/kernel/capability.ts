/**
 * Capabilities (kernel/capability.c, security/commoncap.c), reduced to what the model's
 * privileged calls need: each task's effective and permitted sets (copied by fork and kept by
 * execve, as for root), capable(), and capget/capset with version 3 headers so a scenario can
 * drop a privilege. XXX: no uids, no inheritable or bounding sets, no file capabilities.
 */
import type { Kernel, PerCpu } from './kernel.js';
import type { KPath, KSteps } from './steps.js';
import type { Task } from './task.js';
import { copy_from_user, copy_to_user, putU32 } from './uaccess.js';
import { _LINUX_CAPABILITY_U32S_3, _LINUX_CAPABILITY_VERSION_3, EFAULT, EINVAL, EPERM, ESRCH } from './uapi.js';

/** capable(cap): whether `t` has capability `cap` in effect. */
export function capable(t: Task, cap: number): boolean {
  return (t.capEffective & (1n << BigInt(cap))) !== 0n;
}

/**
 * cap_validate_magic: version 3 headers pass; any other version is answered with -EINVAL
 * after the preferred version is written back into the header (XXX: versions 1 and 2 are
 * refused too, though Linux still accepts them).
 */
function* cap_validate_magic(k: Kernel, pc: PerCpu, t: Task, header: bigint): KSteps<number> {
  const h = yield* copy_from_user(k, pc, t, header, 8);
  if (!h) return -EFAULT;
  const version = new DataView(h.buffer, h.byteOffset, 8).getUint32(0, true);
  if (version !== _LINUX_CAPABILITY_VERSION_3) {
    const v = new Uint8Array(4);
    putU32(v, 0, _LINUX_CAPABILITY_VERSION_3);
    if (!(yield* copy_to_user(k, pc, t, header, v))) return -EFAULT;
    return -EINVAL;
  }
  return new DataView(h.buffer, h.byteOffset, 8).getInt32(4, true);
}

/** capget(header, dataptr): the effective and permitted sets of pid (0: the caller), inheritable 0. */
export function* sys_capget(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  const pid = yield* cap_validate_magic(k, pc, t, a[0]);
  if (pid === -EFAULT || pid === -EINVAL) return pid;
  if (pid < 0) return -EINVAL;
  const target = pid === 0 ? t : k.find_task_by_vpid(pid);
  if (!target || target.state === 'dead') return -ESRCH;
  if (a[1] === 0n) return 0;
  const out = new Uint8Array(12 * _LINUX_CAPABILITY_U32S_3);
  for (let i = 0; i < _LINUX_CAPABILITY_U32S_3; i++) {
    putU32(out, 12 * i, Number((target.capEffective >> BigInt(32 * i)) & 0xffffffffn));
    putU32(out, 12 * i + 4, Number((target.capPermitted >> BigInt(32 * i)) & 0xffffffffn));
  }
  return (yield* copy_to_user(k, pc, t, a[1], out)) ? 0 : -EFAULT;
}

/**
 * capset(header, data): sets the caller's sets. pid must be 0 or the caller (-EPERM); the new
 * permitted set may only shrink and the effective set must lie within it (cap_capset, -EPERM).
 */
export function* sys_capset(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): KPath {
  const pid = yield* cap_validate_magic(k, pc, t, a[0]);
  if (pid === -EFAULT || pid === -EINVAL) return pid;
  if (pid !== 0 && pid !== t.tid) return -EPERM;
  const d = yield* copy_from_user(k, pc, t, a[1], 12 * _LINUX_CAPABILITY_U32S_3);
  if (!d) return -EFAULT;
  const dv = new DataView(d.buffer, d.byteOffset, d.length);
  let effective = 0n;
  let permitted = 0n;
  for (let i = 0; i < _LINUX_CAPABILITY_U32S_3; i++) {
    effective |= BigInt(dv.getUint32(12 * i, true)) << BigInt(32 * i);
    permitted |= BigInt(dv.getUint32(12 * i + 4, true)) << BigInt(32 * i);
  }
  if ((permitted & ~t.capPermitted) !== 0n) return -EPERM;
  if ((effective & ~permitted) !== 0n) return -EPERM;
  t.capEffective = effective;
  t.capPermitted = permitted;
  return 0;
}
