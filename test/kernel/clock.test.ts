/**
 * The clock syscalls (kernel/time/time.c gettimeofday and time, kernel/time/posix-timers.c
 * clock_gettime, kernel/sys.c getcpu; 6.12) against the model's clock (kernel/time.ts): a
 * thread's CLOCK_MONOTONIC is 1 s plus 1 µs per user operation it has retired (its creator's
 * count carried over at fork and clone), CLOCK_BOOTTIME the same, CLOCK_REALTIME
 * 2025-01-01T00:00:00Z (1735689600) plus that less the second.
 *
 * Host-checked (/tmp/vsc/v.c, 6.18 x86-64): clock_gettime of clock 2 (the process CPU clock)
 * is 0 there, of 12, 16 and -1 -EINVAL (the model gives -EINVAL for 2 too: not modelled);
 * time(NULL) returns the seconds and time(&t) stores the same.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { boot, records, ret, runProgram, sc } from './helpers.js';

const EFAULT = 14, EINVAL = 22;
const EPOCH = 1735689600n;
const load = (addr: string, into: string, size: 4 | 8 = 8): Op => ({ op: 'load', addr, into, size });

test('clock_gettime: REALTIME, MONOTONIC and BOOTTIME from the thread\'s retired operations; each operation is 1 µs', () => {
  const { sys } = runProgram([
    sc('buf', 'mmap', 0, 4096, 3, 0x22, -1, 0), // 0
    sc('r', 'clock_gettime', 1, '$buf'), // 1: after 2 retired operations (the syscall counts once it is executed)
    load('$buf', 's'), // 2
    load('$buf+8', 'ns'), // 3
    sc('r', 'clock_gettime', 7, '$buf'), // 4: 5 operations
    load('$buf', 's'), // 5
    load('$buf+8', 'ns'), // 6
    sc('r', 'clock_gettime', 0, '$buf'), // 7: 8 operations
    load('$buf', 's'), // 8
    load('$buf+8', 'ns'), // 9
  ]);
  assert.equal(ret(sys, 1), 0n);
  assert.equal(ret(sys, 2), 1n);
  assert.equal(ret(sys, 3), 2000n);
  assert.equal(ret(sys, 5), 1n, 'BOOTTIME is MONOTONIC');
  assert.equal(ret(sys, 6), 5000n);
  assert.equal(ret(sys, 8), EPOCH);
  assert.equal(ret(sys, 9), 8000n);
});

test('clock_gettime: -EINVAL for clocks it does not have (before tp is looked at), -EFAULT for a bad tp, NULL included', () => {
  const { sys } = runProgram([
    sc('r', 'clock_gettime', 16, 0), // 0
    sc('r', 'clock_gettime', 12, 8), // 1
    sc('r', 'clock_gettime', -1, 0), // 2
    sc('r', 'clock_gettime', 2, 0), // 3: CPU-time clocks are not modelled
    sc('r', 'clock_gettime', 1, 0), // 4
    sc('r', 'clock_gettime', 0, 0x800000000000n), // 5
  ]);
  for (const i of [0, 1, 2, 3]) assert.equal(ret(sys, i), BigInt(-EINVAL), `op ${i}`);
  assert.equal(ret(sys, 4), BigInt(-EFAULT));
  assert.equal(ret(sys, 5), BigInt(-EFAULT));
});

test('gettimeofday: tv_sec and tv_usec, tz zeroed; -EFAULT for a bad tv or tz, after what was written before it', () => {
  const { sys } = runProgram([
    sc('buf', 'mmap', 0, 4096, 3, 0x22, -1, 0), // 0
    { op: 'store', addr: '$buf+16', value: -1 }, // 1
    sc('r', 'gettimeofday', '$buf', '$buf+16'), // 2: 3 operations
    load('$buf', 's'), // 3
    load('$buf+8', 'us'), // 4
    load('$buf+16', 'tz'), // 5
    sc('r', 'gettimeofday', 0, 0), // 6
    sc('r', 'gettimeofday', 8, 0), // 7
    { op: 'store', addr: '$buf', value: 0 }, // 8
    sc('r', 'gettimeofday', '$buf', 8), // 9: 10 operations: tv written, then tz faults
    load('$buf', 's2'), // 10
    sc('r', 'gettimeofday', '$buf+4088', 0), // 11: tv_sec written, tv_usec on the next (unmapped) page
  ]);
  assert.equal(ret(sys, 2), 0n);
  assert.equal(ret(sys, 3), EPOCH);
  assert.equal(ret(sys, 4), 3n);
  assert.equal(ret(sys, 5), 0n, 'sys_tz is zero');
  assert.equal(ret(sys, 6), 0n);
  assert.equal(ret(sys, 7), BigInt(-EFAULT));
  assert.equal(ret(sys, 9), BigInt(-EFAULT));
  assert.equal(ret(sys, 10), EPOCH);
  assert.equal(ret(sys, 11), BigInt(-EFAULT));
});

test('time: returns the seconds and stores them through tloc; -EFAULT for a bad tloc (host)', () => {
  const { sys } = runProgram([
    sc('buf', 'mmap', 0, 4096, 3, 0x22, -1, 0), // 0
    sc('r', 'time', 0), // 1
    sc('r', 'time', '$buf'), // 2
    load('$buf', 't'), // 3
    sc('r', 'time', 8), // 4
  ]);
  assert.equal(ret(sys, 1), EPOCH);
  assert.equal(ret(sys, 2), EPOCH);
  assert.equal(ret(sys, 3), EPOCH);
  assert.equal(ret(sys, 4), BigInt(-EFAULT));
});

test('getcpu: the CPU the syscall ran on and node 0, each only when asked; both tried, -EFAULT if either faulted', () => {
  const sys = boot({ cpus: 2 });
  sys.spawn({
    main: [
      sc('buf', 'mmap', 0, 4096, 3, 0x22, -1, 0), // 0
      { op: 'store', addr: '$buf+4', value: 0xff }, // 1
      sc('r', 'getcpu', '$buf', '$buf+4', 0), // 2
      load('$buf', 'c', 4), // 3
      load('$buf+4', 'n', 4), // 4
      sc('r', 'getcpu', 0, 0, 0), // 5
      { op: 'store', addr: '$buf', value: 0 }, // 6
      sc('r', 'getcpu', 8, '$buf', 0), // 7: cpup faults, nodep still written
      sc('r', 'getcpu', '$buf', 8, 0), // 8
      load('$buf', 'c2', 4), // 9
    ],
  }, { cpu: 1 });
  assert.ok(sys.run({ maxSteps: 1_000_000 }).finished);
  assert.equal(ret(sys, 2), 0n);
  assert.equal(ret(sys, 3), 1n);
  assert.equal(ret(sys, 4), 0n);
  assert.equal(ret(sys, 5), 0n);
  assert.equal(ret(sys, 7), BigInt(-EFAULT));
  assert.equal(ret(sys, 8), BigInt(-EFAULT));
  assert.equal(ret(sys, 9), 1n, 'cpup written before nodep faulted');
});

test('a forked child\'s clock starts from its parent\'s; a thread\'s clock is its own', () => {
  const child: Op[] = [sc('r', 'clock_gettime', 1, '$buf'), load('$buf+8', 'ns')];
  const { sys } = runProgram([
    sc('buf', 'mmap', 0, 4096, 3, 0x22, -1, 0), // 0
    { op: 'work', count: 1 }, // 1
    { op: 'syscall', name: 'fork', args: [], into: 'pid', child }, // 2: the child has the parent's 3 operations (the fork included)
    sc('r', 'wait4', -1, 0, 0, 0), // 3
  ]);
  const rec = records(sys, 'main.2.child');
  assert.equal(rec.get(0)?.value, 0n);
  // 3 inherited, then its clock_gettime: 4 µs.
  assert.equal(rec.get(1)?.value, 4000n);
});
