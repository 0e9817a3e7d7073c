/**
 * /proc/PID/task/TID against Linux 6.12's fs/proc/base.c (proc_task_lookup: a number naming a
 * thread of the directory's thread group; tid_base_stuff's mem, maps, smaps, pagemap, status
 * and clear_refs; proc_single_show's -ESRCH once the task is gone), and the status lines added
 * with it (fs/proc/array.c task_sig's SigQ, task_context_switch_counts; kernel/sched/core.c
 * __schedule's switch_count). The SigQ steps were run natively on the host (6.18): each queued
 * real-time signal adds one, a standard signal already pending none.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import type { System } from '../../src/system.js';
import { boot, fileText, records, ret } from './helpers.js';

const ENOENT = 2, ESRCH = 3;
const O_RDONLY = 0, O_RDWR = 2, O_CREAT = 0o100, O_TRUNC = 0o1000;
const CLONE_VM = 0x100, CLONE_FS = 0x200, CLONE_FILES = 0x400, CLONE_SIGHAND = 0x800, CLONE_THREAD = 0x10000;
const THREAD_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
const RLIMIT_SIGPENDING = 11, SIGUSR1 = 10, SIGRTMIN = 32;
const sc = (name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args });
const sci = (into: string, name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args, into });
const errno = (e: number): bigint => BigInt(-e);

/** Ops that read descriptor `$fd` into `$buf+off` and leave the bytes in the file `&name`. */
function dumpTo(fd: string, name: string, off: number): Op[] {
  return [sci('n', 'read', fd, `$buf+${off}`, 8192), sci('o', 'open', `&${name}`, O_CREAT | O_RDWR | O_TRUNC, 0o644), sc('write', '$o', `$buf+${off}`, '$n'), sc('close', '$o')];
}

/** A status file's `name:` value. */
function field(text: string, name: string): string {
  const l = text.split('\n').find((x) => x.startsWith(`${name}:`));
  assert.ok(l, `${name} missing:\n${text}`);
  return l.slice(name.length + 2);
}

/** Steps `sys` until op `index` of `fn` has a record. */
function until(sys: System, index: number, fn = 'main'): void {
  for (let n = 0; n < 1_000_000 && !records(sys, fn).has(index); n++) if (!sys.step()) break;
  assert.ok(records(sys, fn).has(index), `${fn}[${index}] never completed`);
  assert.deepEqual(sys.debugReports, []);
}

test('/proc/self/task/TID: a directory per thread of the group with its own status; the group\'s maps; other ids are not there; gone threads -ENOENT, open files -ESRCH', () => {
  // One CPU and no timeslice: the thread (tid 2) and the forked child (pid 3) run only when main
  // yields, and then block reading an empty pipe until main writes to it.
  const sys = boot({ cpus: 1 });
  const pid = sys.spawn({
    main: [
      sci('buf', 'mmap', 0, 65536, 3, 0x22, -1, 0), // 0
      sc('pipe', '$buf+65528'), // 1
      { op: 'load', addr: '$buf+65528', size: 4, into: 'r' }, // 2
      { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], into: 'tid', child: [sc('read', '$r', '$buf+65000', 1), sc('exit', 0)] }, // 3
      { op: 'syscall', name: 'fork', into: 'other', child: [sc('read', '$r', '$buf+65008', 1)] }, // 4: another process, blocked
      { op: 'load', addr: '$buf+65532', size: 4, into: 'w' }, // 5
      sc('sched_yield'), // 6: the thread and the child run and block
      sci('ts', 'open', '&tstatus', O_RDONLY, 0), // 7: /proc/self/task/2/status
      ...dumpTo('$ts', 'out1', 0), // 8..11
      sci('ms', 'open', '&mstatus', O_RDONLY, 0), // 12: /proc/1/task/1/status
      ...dumpTo('$ms', 'out2', 8192), // 13..16
      sci('tm', 'open', '&tmaps', O_RDONLY, 0), // 17: /proc/2/task/2/maps (a thread's own directory)
      ...dumpTo('$tm', 'out3', 16384), // 18..21
      sci('pm', 'open', '&maps', O_RDONLY, 0), // 22: /proc/self/maps
      ...dumpTo('$pm', 'out4', 24576), // 23..26
      sc('open', '&via', O_RDONLY, 0), // 27: /proc/2/task/1/status: the leader, under a thread's task/
      sc('open', '&otherproc', O_RDONLY, 0), // 28: /proc/self/task/3/status: another process (-ENOENT)
      sc('open', '&none', O_RDONLY, 0), // 29: /proc/self/task/99/status (-ENOENT)
      sc('open', '&word', O_RDONLY, 0), // 30: /proc/self/task/01/status: not a canonical number (-ENOENT)
      sc('write', '$w', '$buf', 2), // 31: both readers go
      sc('wait4', -1, 0, 0, 0), // 32: the child
      sc('sched_yield'), // 33: the thread has exited (and, detached, been released)
      sc('open', '&tstatus', O_RDONLY, 0), // 34: -ENOENT
      sc('read', '$ts', '$buf', 100, 0), // 35: -ESRCH (status was opened while the thread lived)
    ],
    strings: {
      tstatus: '/proc/self/task/2/status', mstatus: '/proc/1/task/1/status', tmaps: '/proc/2/task/2/maps', maps: '/proc/self/maps', via: '/proc/2/task/1/status',
      otherproc: '/proc/self/task/3/status', none: '/proc/self/task/99/status', word: '/proc/self/task/01/status',
      out1: '/tmp/out1', out2: '/tmp/out2', out3: '/tmp/out3', out4: '/tmp/out4',
    },
  });
  until(sys, 35);
  assert.equal(pid, 1);
  assert.equal(ret(sys, 3), 2n);
  assert.equal(ret(sys, 4), 3n);
  const t = fileText(sys, '/tmp/out1');
  const m = fileText(sys, '/tmp/out2');
  // task_state of the thread: its own Pid and state, the group's Tgid and Threads.
  assert.deepEqual(['Tgid', 'Pid', 'State', 'Threads'].map((f) => field(t, f)), ['1', '2', 'S (sleeping)', '2']);
  assert.deepEqual(['Tgid', 'Pid', 'State', 'Threads'].map((f) => field(m, f)), ['1', '1', 'R (running)', '2']);
  assert.equal(fileText(sys, '/tmp/out3'), fileText(sys, '/tmp/out4'), 'the thread\'s maps are the group\'s');
  assert.ok(ret(sys, 27) >= 0n);
  assert.deepEqual([28, 29, 30, 34, 35].map((i) => ret(sys, i)), [errno(ENOENT), errno(ENOENT), errno(ENOENT), errno(ENOENT), errno(ESRCH)]);
});

test('/proc/self/status SigQ: the queued signals and RLIMIT_SIGPENDING; the context-switch counts', () => {
  const sys = boot({ cpus: 1 });
  sys.spawn({
    main: [
      sci('buf', 'mmap', 0, 65536, 3, 0x22, -1, 0), // 0
      { op: 'store', addr: '$buf', value: 100 }, // 1: rlim_cur
      { op: 'store', addr: '$buf+8', value: 100 }, // 2: rlim_max
      sc('setrlimit', RLIMIT_SIGPENDING, '$buf'), // 3
      { op: 'store', addr: '$buf', value: (1n << BigInt(SIGRTMIN + 2 - 1)) | (1n << BigInt(SIGUSR1 - 1)) }, // 4: SIGRTMIN (34) and SIGUSR1
      sc('rt_sigprocmask', 0, '$buf', 0, 8), // 5: SIG_BLOCK
      sci('me', 'getpid'), // 6
      sc('kill', '$me', SIGRTMIN + 2), sc('kill', '$me', SIGRTMIN + 2), sc('kill', '$me', SIGUSR1), sc('kill', '$me', SIGUSR1), // 7..10
      sc('pipe', '$buf+65528'), // 11
      { op: 'load', addr: '$buf+65528', size: 4, into: 'r' }, // 12
      { op: 'load', addr: '$buf+65532', size: 4, into: 'w' }, // 13
      { op: 'syscall', name: 'fork', child: [sc('write', '$w', '$buf', 1)] }, // 14
      sc('read', '$r', '$buf+64', 1), // 15: sleeps until the child writes (one CPU, no timeslice)
      sci('st', 'open', '&status', O_RDONLY, 0), // 16
      ...dumpTo('$st', 'out', 4096), // 17..20
    ],
    strings: { status: '/proc/self/status', out: '/tmp/out' },
  });
  until(sys, 20);
  const s = fileText(sys, '/tmp/out');
  // Two real-time signals queued, SIGUSR1 once (legacy_queue), of the 100 the limit allows.
  assert.equal(field(s, 'SigQ'), '3/100');
  assert.equal(field(s, 'ShdPnd'), '0000000200000200');
  // One sleep in read, another task running meanwhile: one voluntary switch; no preemption.
  assert.equal(field(s, 'voluntary_ctxt_switches'), '1');
  assert.equal(field(s, 'nonvoluntary_ctxt_switches'), '0');
});
