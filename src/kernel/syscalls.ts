/**
 * The syscall table (arch/x86/entry/syscalls/syscall_64.tbl): number, name and handler. A
 * handler gets the six argument registers as unsigned 64-bit values and returns either the
 * result (a number: the value or -errno) or a kernel path that produces it step by step.
 * Protection keys, shadow stacks, process_vm_readv, locking memory, the break, resource limits,
 * the file syscalls, pipes and userfaultfd have their own files (pkeys.ts, shstk.ts, gup.ts,
 * mlock.ts, brk.ts, mremap.ts, resource.ts, open.ts, read_write.ts, file.ts, fcntl.ts, stat.ts,
 * pipe.ts, splice.ts, ioctl.ts, userfaultfd.ts, futex.ts, ptrace.ts).
 * The clock's syscalls (gettimeofday, time, clock_gettime, getcpu) are in time.ts.
 * Also the small syscalls: getpid, gettid, set_tid_address, sched_yield, rt_sigaction, rt_sigprocmask, kill,
 * tgkill (sigaltstack is in sigaltstack.ts).
 */
import { ArgumentError } from '../errors.js';
import { sys_close, sys_dup, sys_dup2, sys_dup3 } from './file.js';
import { sys_fcntl } from './fcntl.js';
import { sys_memfd_create } from './memfd.js';
import { sys_ftruncate, sys_open, sys_openat } from './open.js';
import { sys_lseek, sys_pread64, sys_pwrite64, sys_read, sys_write } from './read_write.js';
import { sys_fstat } from './stat.js';
import { sys_pipe, sys_pipe2 } from './pipe.js';
import { sys_splice, sys_tee, sys_vmsplice } from './splice.js';
import { sys_ioctl } from './ioctl.js';
import { sys_userfaultfd } from './userfaultfd.js';
import { sys_execve } from './exec.js';
import { sys_exit, sys_exit_group, sys_wait4, sys_waitid } from './exit.js';
import { sys_clone, sys_fork, sys_vfork } from './fork.js';
import { sys_futex } from './futex.js';
import type { Kernel, PerCpu } from './kernel.js';
import { sys_process_vm_readv, sys_process_vm_writev } from './process_vm_access.js';
import { sys_capget, sys_capset } from './capability.js';
import { sys_modify_ldt } from './ldt.js';
import { sys_madvise } from './madvise.js';
import { sys_sched_getaffinity, sys_sched_setaffinity } from './sched.js';
import { sys_brk } from './brk.js';
import { sys_mincore } from './mincore.js';
import { sys_msync } from './msync.js';
import { sys_mremap } from './mremap.js';
import { sys_mlock, sys_mlock2, sys_mlockall, sys_munlock, sys_munlockall } from './mlock.js';
import { sys_getrlimit, sys_prlimit64, sys_setrlimit } from './resource.js';
import { sys_mmap, sys_mprotect, sys_munmap, sys_pkey_mprotect } from './mmap.js';
import { sys_pkey_alloc, sys_pkey_free } from './pkeys.js';
import { sys_map_shadow_stack } from './shstk.js';
import { sys_arch_prctl } from './process_64.js';
import { sys_ptrace } from './ptrace.js';
import { sys_sigaltstack } from './sigaltstack.js';
import { sys_clock_gettime, sys_getcpu, sys_gettimeofday, sys_time } from './time.js';
import { send_signal, sig_kernel_ignore, sigmask, SIG_KERNEL_ONLY_MASK, sys_rt_sigreturn, valid_signal } from './signal.js';
import type { KPath } from './steps.js';
import type { SigInfo, Task } from './task.js';
import { copy_from_user, copy_to_user, getU64, putU64 } from './uaccess.js';
import {
  EFAULT, EINVAL, ESRCH, SA_EXPOSE_TAGBITS, SA_NOCLDSTOP, SA_NOCLDWAIT, SA_NODEFER, SA_ONSTACK, SA_RESETHAND, SA_RESTART, SA_RESTORER, SA_SIGINFO,
  SI_TKILL, SI_USER, SIG_BLOCK, SIG_IGN, SIG_SETMASK, SIG_UNBLOCK, SIGKILL, SIGSTOP,
} from './uapi.js';
import { STEP_SLEEP } from './steps.js';

export type SyscallHandler = (k: Kernel, pc: PerCpu, t: Task, args: readonly bigint[]) => number | KPath;

export interface SyscallEntry {
  nr: number;
  name: string;
  /** The parameter names of its SYSCALL_DEFINEn, in order (scenario files name arguments by them). */
  args: readonly string[];
  handler: SyscallHandler;
  /** The syscall does not return to its caller (exit, exit_group): its path ends the task. */
  noreturn?: boolean;
}

/** UAPI_SA_FLAGS: the sa_flags rt_sigaction keeps; others are cleared silently. */
const UAPI_SA_FLAGS = SA_NOCLDSTOP | SA_NOCLDWAIT | SA_SIGINFO | SA_ONSTACK | SA_RESTART | SA_NODEFER | SA_RESETHAND | SA_EXPOSE_TAGBITS | SA_RESTORER;

/** getpid: the thread group id. */
function sys_getpid(_k: Kernel, _pc: PerCpu, t: Task): number {
  return t.tgid;
}

/** gettid: the thread id. */
function sys_gettid(_k: Kernel, _pc: PerCpu, t: Task): number {
  return t.tid;
}

/** set_tid_address(tidptr) (kernel/fork.c): current->clear_child_tid = tidptr; the caller's tid. */
function sys_set_tid_address(_k: Kernel, _pc: PerCpu, t: Task, a: readonly bigint[]): number {
  t.clear_child_tid = a[0];
  return t.tid;
}

/** sched_yield: the task goes to the back of its CPU's runqueue if another task is waiting for the CPU (always 0). */
function* sys_sched_yield(_k: Kernel, pc: PerCpu): KPath {
  if (pc.runqueue.length > 0) yield STEP_SLEEP;
  return 0;
}

/**
 * rt_sigaction(sig, act, oact, sigsetsize): sigsetsize first, then reading act, then the
 * signal number (SIGKILL and SIGSTOP only without act); the new action is installed before
 * oact is written, so a bad oact gives -EFAULT with the action changed. An action that
 * ignores the signal discards it from every pending set.
 */
function sys_rt_sigaction(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): number | KPath {
  const sig = Number(BigInt.asIntN(32, a[0]));
  const act = a[1];
  const oact = a[2];
  if (a[3] !== 8n) return -EINVAL;
  return (function* (): KPath {
    let nsa: { handler: bigint; flags: number; restorer: bigint; mask: bigint } | null = null;
    if (act !== 0n) {
      const b = yield* copy_from_user(k, pc, t, act, 32);
      if (!b) return -EFAULT;
      nsa = { handler: getU64(b, 0), flags: Number(getU64(b, 8) & 0xffffffffn) & UAPI_SA_FLAGS, restorer: getU64(b, 16), mask: getU64(b, 24) & ~SIG_KERNEL_ONLY_MASK };
    }
    if (!valid_signal(sig) || sig < 1 || (nsa && (sig === SIGKILL || sig === SIGSTOP))) return -EINVAL;
    const ka = t.sighand.action[sig];
    const old = { ...ka };
    if (nsa) {
      Object.assign(ka, nsa);
      if (ka.handler === SIG_IGN || (ka.handler === 0n && sig_kernel_ignore(sig))) {
        const m = ~sigmask(sig);
        for (const th of t.group.threads) {
          th.pending.signal &= m;
          removeQueued(th.pending.list, sig);
        }
        t.group.shared_pending.signal &= m;
        removeQueued(t.group.shared_pending.list, sig);
      }
    }
    if (oact !== 0n) {
      const b = new Uint8Array(32);
      putU64(b, 0, old.handler);
      putU64(b, 8, BigInt(old.flags >>> 0));
      putU64(b, 16, old.restorer);
      putU64(b, 24, old.mask);
      if (!(yield* copy_to_user(k, pc, t, oact, b))) return -EFAULT;
    }
    return 0;
  })();
}

function removeQueued(list: SigInfo[], sig: number): void {
  for (let i = list.length - 1; i >= 0; i--) if (list[i].signo === sig) list.splice(i, 1);
}

/**
 * rt_sigprocmask(how, set, oset, sigsetsize): sigsetsize, then reading set, then `how` (only
 * checked with a set); SIGKILL and SIGSTOP cannot be blocked; oset gets the old mask after
 * the change.
 */
function sys_rt_sigprocmask(k: Kernel, pc: PerCpu, t: Task, a: readonly bigint[]): number | KPath {
  const how = Number(BigInt.asIntN(32, a[0]));
  if (a[3] !== 8n) return -EINVAL;
  return (function* (): KPath {
    const old = t.blocked;
    if (a[1] !== 0n) {
      const b = yield* copy_from_user(k, pc, t, a[1], 8);
      if (!b) return -EFAULT;
      const set = getU64(b, 0) & ~SIG_KERNEL_ONLY_MASK;
      if (how === SIG_BLOCK) t.blocked |= set;
      else if (how === SIG_UNBLOCK) t.blocked &= ~set;
      else if (how === SIG_SETMASK) t.blocked = set;
      else return -EINVAL;
    }
    if (a[2] !== 0n) {
      const b = new Uint8Array(8);
      putU64(b, 0, old);
      if (!(yield* copy_to_user(k, pc, t, a[2], b))) return -EFAULT;
    }
    return 0;
  })();
}

/** The live or zombie thread-group leaders, for kill's group forms. */
function processes(k: Kernel): Task[] {
  return [...k.tasks.values()].filter((p) => p.isLeader && p.state !== 'dead');
}

/**
 * kill(pid, sig): pid > 0 the process containing that thread (looked up before the signal
 * is checked); 0 and < -1 a process group (the model has one, holding every process); -1
 * every process but the caller's and pid 1. si_code SI_USER. Signal 0 only checks.
 */
function sys_kill(k: Kernel, _pc: PerCpu, t: Task, a: readonly bigint[]): number {
  const pid = Number(BigInt.asIntN(32, a[0]));
  const sig = Number(BigInt.asIntN(32, a[1]));
  const info = (): SigInfo => ({ signo: sig, code: SI_USER, addr: 0n, pid: t.tgid, pkey: 0 });
  const deliver = (p: Task): number => {
    if (!valid_signal(sig)) return -EINVAL;
    if (sig !== 0) send_signal(k, p, info(), true);
    return 0;
  };
  if (pid > 0) {
    const p = k.find_task_by_vpid(pid);
    if (!p || p.state === 'dead') return -ESRCH;
    return deliver(p.group.threads[0] ?? p);
  }
  if (pid === -2147483648) return -ESRCH;
  let targets = processes(k);
  if (pid === -1) targets = targets.filter((p) => p.tgid > 1 && p.group !== t.group);
  if (targets.length === 0) return -ESRCH;
  let ret = 0;
  for (const p of targets) {
    const r = deliver(p);
    if (r !== 0) ret = r;
  }
  return ret;
}

/** tgkill(tgid, tid, sig): ids must be positive; the thread must exist in that group; si_code SI_TKILL; to the thread's own queue. */
function sys_tgkill(k: Kernel, _pc: PerCpu, t: Task, a: readonly bigint[]): number {
  const tgid = Number(BigInt.asIntN(32, a[0]));
  const tid = Number(BigInt.asIntN(32, a[1]));
  const sig = Number(BigInt.asIntN(32, a[2]));
  if (tid <= 0 || tgid <= 0) return -EINVAL;
  const p = k.find_task_by_vpid(tid);
  if (!p || p.state === 'dead' || p.tgid !== tgid) return -ESRCH;
  if (!valid_signal(sig)) return -EINVAL;
  if (sig !== 0) send_signal(k, p, { signo: sig, code: SI_TKILL, addr: 0n, pid: t.tgid, pkey: 0 }, false);
  return 0;
}

const table: readonly SyscallEntry[] = [
  { nr: 0, name: 'read', args: ['fd', 'buf', 'count'], handler: sys_read },
  { nr: 1, name: 'write', args: ['fd', 'buf', 'count'], handler: sys_write },
  { nr: 2, name: 'open', args: ['filename', 'flags', 'mode'], handler: sys_open },
  { nr: 3, name: 'close', args: ['fd'], handler: sys_close },
  { nr: 5, name: 'fstat', args: ['fd', 'statbuf'], handler: sys_fstat },
  { nr: 8, name: 'lseek', args: ['fd', 'offset', 'whence'], handler: sys_lseek },
  { nr: 9, name: 'mmap', args: ['addr', 'len', 'prot', 'flags', 'fd', 'off'], handler: sys_mmap },
  { nr: 10, name: 'mprotect', args: ['start', 'len', 'prot'], handler: sys_mprotect },
  { nr: 11, name: 'munmap', args: ['addr', 'len'], handler: sys_munmap },
  { nr: 12, name: 'brk', args: ['brk'], handler: sys_brk },
  { nr: 13, name: 'rt_sigaction', args: ['sig', 'act', 'oact', 'sigsetsize'], handler: sys_rt_sigaction },
  { nr: 14, name: 'rt_sigprocmask', args: ['how', 'nset', 'oset', 'sigsetsize'], handler: sys_rt_sigprocmask },
  { nr: 16, name: 'ioctl', args: ['fd', 'cmd', 'arg'], handler: sys_ioctl },
  { nr: 15, name: 'rt_sigreturn', args: [], handler: (k, pc, t) => sys_rt_sigreturn(k, pc, t) },
  { nr: 17, name: 'pread64', args: ['fd', 'buf', 'count', 'pos'], handler: sys_pread64 },
  { nr: 18, name: 'pwrite64', args: ['fd', 'buf', 'count', 'pos'], handler: sys_pwrite64 },
  { nr: 22, name: 'pipe', args: ['fildes'], handler: sys_pipe },
  { nr: 24, name: 'sched_yield', args: [], handler: sys_sched_yield },
  { nr: 25, name: 'mremap', args: ['addr', 'old_len', 'new_len', 'flags', 'new_addr'], handler: sys_mremap },
  { nr: 26, name: 'msync', args: ['start', 'len', 'flags'], handler: sys_msync },
  { nr: 27, name: 'mincore', args: ['start', 'len', 'vec'], handler: sys_mincore },
  { nr: 28, name: 'madvise', args: ['start', 'len_in', 'behavior'], handler: sys_madvise },
  { nr: 32, name: 'dup', args: ['fildes'], handler: sys_dup },
  { nr: 33, name: 'dup2', args: ['oldfd', 'newfd'], handler: sys_dup2 },
  { nr: 39, name: 'getpid', args: [], handler: sys_getpid },
  { nr: 56, name: 'clone', args: ['clone_flags', 'newsp', 'parent_tidptr', 'child_tidptr', 'tls'], handler: sys_clone },
  { nr: 57, name: 'fork', args: [], handler: (k, pc, t) => sys_fork(k, pc, t) },
  { nr: 58, name: 'vfork', args: [], handler: (k, pc, t) => sys_vfork(k, pc, t) },
  { nr: 59, name: 'execve', args: ['filename', 'argv', 'envp'], handler: sys_execve },
  { nr: 60, name: 'exit', args: ['error_code'], handler: sys_exit, noreturn: true },
  { nr: 61, name: 'wait4', args: ['upid', 'stat_addr', 'options', 'ru'], handler: sys_wait4 },
  { nr: 62, name: 'kill', args: ['pid', 'sig'], handler: sys_kill },
  { nr: 186, name: 'gettid', args: [], handler: sys_gettid },
  { nr: 202, name: 'futex', args: ['uaddr', 'op', 'val', 'utime', 'uaddr2', 'val3'], handler: sys_futex },
  { nr: 218, name: 'set_tid_address', args: ['tidptr'], handler: sys_set_tid_address },
  { nr: 203, name: 'sched_setaffinity', args: ['pid', 'len', 'user_mask_ptr'], handler: sys_sched_setaffinity },
  { nr: 204, name: 'sched_getaffinity', args: ['pid', 'len', 'user_mask_ptr'], handler: sys_sched_getaffinity },
  { nr: 160, name: 'setrlimit', args: ['resource', 'rlim'], handler: sys_setrlimit },
  { nr: 231, name: 'exit_group', args: ['error_code'], handler: sys_exit_group, noreturn: true },
  { nr: 72, name: 'fcntl', args: ['fd', 'cmd', 'arg'], handler: sys_fcntl },
  { nr: 77, name: 'ftruncate', args: ['fd', 'length'], handler: sys_ftruncate },
  { nr: 97, name: 'getrlimit', args: ['resource', 'rlim'], handler: sys_getrlimit },
  { nr: 101, name: 'ptrace', args: ['request', 'pid', 'addr', 'data'], handler: sys_ptrace },
  { nr: 125, name: 'capget', args: ['header', 'dataptr'], handler: sys_capget },
  { nr: 126, name: 'capset', args: ['header', 'data'], handler: sys_capset },
  { nr: 131, name: 'sigaltstack', args: ['uss', 'uoss'], handler: sys_sigaltstack },
  { nr: 149, name: 'mlock', args: ['start', 'len'], handler: sys_mlock },
  { nr: 150, name: 'munlock', args: ['start', 'len'], handler: sys_munlock },
  { nr: 151, name: 'mlockall', args: ['flags'], handler: sys_mlockall },
  { nr: 152, name: 'munlockall', args: [], handler: (k, pc, t) => sys_munlockall(k, pc, t) },
  { nr: 154, name: 'modify_ldt', args: ['func', 'ptr', 'bytecount'], handler: sys_modify_ldt },
  { nr: 158, name: 'arch_prctl', args: ['option', 'arg2'], handler: sys_arch_prctl },
  { nr: 234, name: 'tgkill', args: ['tgid', 'pid', 'sig'], handler: sys_tgkill },
  { nr: 247, name: 'waitid', args: ['which', 'upid', 'infop', 'options', 'ru'], handler: sys_waitid },
  { nr: 257, name: 'openat', args: ['dfd', 'filename', 'flags', 'mode'], handler: sys_openat },
  { nr: 275, name: 'splice', args: ['fd_in', 'off_in', 'fd_out', 'off_out', 'len', 'flags'], handler: sys_splice },
  { nr: 276, name: 'tee', args: ['fdin', 'fdout', 'len', 'flags'], handler: sys_tee },
  { nr: 278, name: 'vmsplice', args: ['fd', 'uiov', 'nr_segs', 'flags'], handler: sys_vmsplice },
  { nr: 292, name: 'dup3', args: ['oldfd', 'newfd', 'flags'], handler: sys_dup3 },
  { nr: 293, name: 'pipe2', args: ['fildes', 'flags'], handler: sys_pipe2 },
  { nr: 302, name: 'prlimit64', args: ['pid', 'resource', 'new_rlim', 'old_rlim'], handler: sys_prlimit64 },
  { nr: 310, name: 'process_vm_readv', args: ['pid', 'lvec', 'liovcnt', 'rvec', 'riovcnt', 'flags'], handler: sys_process_vm_readv },
  { nr: 311, name: 'process_vm_writev', args: ['pid', 'lvec', 'liovcnt', 'rvec', 'riovcnt', 'flags'], handler: sys_process_vm_writev },
  { nr: 319, name: 'memfd_create', args: ['uname', 'flags'], handler: sys_memfd_create },
  { nr: 323, name: 'userfaultfd', args: ['flags'], handler: sys_userfaultfd },
  { nr: 325, name: 'mlock2', args: ['start', 'len', 'flags'], handler: sys_mlock2 },
  { nr: 329, name: 'pkey_mprotect', args: ['start', 'len', 'prot', 'pkey'], handler: sys_pkey_mprotect },
  { nr: 330, name: 'pkey_alloc', args: ['flags', 'init_val'], handler: sys_pkey_alloc },
  { nr: 331, name: 'pkey_free', args: ['pkey'], handler: (k, pc, t, a) => sys_pkey_free(k, pc, t, a) },
  { nr: 453, name: 'map_shadow_stack', args: ['addr', 'size', 'flags'], handler: sys_map_shadow_stack },
  { nr: 96, name: 'gettimeofday', args: ['tv', 'tz'], handler: sys_gettimeofday },
  { nr: 201, name: 'time', args: ['tloc'], handler: sys_time },
  { nr: 228, name: 'clock_gettime', args: ['which_clock', 'tp'], handler: sys_clock_gettime },
  { nr: 309, name: 'getcpu', args: ['cpup', 'nodep', 'unused'], handler: sys_getcpu },
];

/** The table indexed by number (holes are undefined: -ENOSYS). Built once, never changed. */
export const SYSCALLS: readonly (SyscallEntry | undefined)[] = Object.freeze(Array.from({ length: Math.max(...table.map((e) => e.nr)) + 1 }, (_, nr) => table.find((e) => e.nr === nr)));
/** Syscall numbers by name. Built once, never changed. */
const BY_NAME: ReadonlyMap<string, number> = new Map(table.map((e) => [e.name, e.nr]));

/** The number of a syscall the model implements, by name; ArgumentError for an unknown name. */
export function syscallByName(name: string): number {
  const nr = BY_NAME.get(name);
  if (nr === undefined) throw new ArgumentError('syscall', `unknown syscall ${JSON.stringify(name)}; the model implements ${[...BY_NAME.keys()].join(', ')}`);
  return nr;
}

/** The entry of a syscall the model implements, by name, or undefined. */
export function syscallEntry(name: string): SyscallEntry | undefined {
  const nr = BY_NAME.get(name);
  return nr === undefined ? undefined : SYSCALLS[nr];
}

/** Every syscall the model implements, in number order. */
export function syscallEntries(): SyscallEntry[] {
  return SYSCALLS.filter((e): e is SyscallEntry => e !== undefined);
}
