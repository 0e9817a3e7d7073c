/**
 * /proc/PID/status's State line through a group stop and its end (fs/proc/array.c
 * get_task_state: TASK_STOPPED is `T (stopped)`; a task back in an interruptible sleep is
 * `S (sleeping)`), with wait4's status words between them. Host-checked (6.18): a child blocked
 * reading a pipe reads `S (sleeping)`; after SIGSTOP and wait4(WUNTRACED) (status 0x137f)
 * `T (stopped)`; after SIGCONT and wait4(WCONTINUED) (status 0xffff) `S (sleeping)` again.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { boot, fileText, records, ret } from './helpers.js';

const O_RDONLY = 0, O_RDWR = 2, O_CREAT = 0o100, O_TRUNC = 0o1000;
const SIGSTOP = 19, SIGCONT = 18, WUNTRACED = 2, WCONTINUED = 8;
const sc = (name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args });
const sci = (into: string, name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args, into });

/** Ops that copy /proc/2/status into the file `&out`. */
function snapshot(out: string, off: number): Op[] {
  return [
    sci('s', 'open', '&status', O_RDONLY, 0),
    sci('n', 'read', '$s', `$buf+${off}`, 4096),
    sc('close', '$s'),
    sci('o', 'open', `&${out}`, O_CREAT | O_RDWR | O_TRUNC, 0o644),
    sc('write', '$o', `$buf+${off}`, '$n'),
    sc('close', '$o'),
  ];
}

/** The status text's State value. */
function state(text: string): string {
  const l = text.split('\n').find((x) => x.startsWith('State:'));
  assert.ok(l, `no State line:\n${text}`);
  return l.slice('State:\t'.length);
}

test('/proc/PID/status reads S (sleeping), then T (stopped) after SIGSTOP, then S (sleeping) after SIGCONT (host)', () => {
  const sys = boot({ cpus: 1 });
  const main: Op[] = [
    sci('buf', 'mmap', 0, 65536, 3, 0x22, -1, 0), // 0
    sc('pipe', '$buf+65528'), // 1
    { op: 'load', addr: '$buf+65528', size: 4, into: 'r' }, // 2
    { op: 'load', addr: '$buf+65532', size: 4, into: 'w' }, // 3
    { op: 'syscall', name: 'fork', into: 'child', child: [sc('read', '$r', '$buf+60000', 1), sc('exit', 0)] }, // 4: pid 2
    sc('sched_yield'), // 5: the child runs and blocks on the pipe
    ...snapshot('out1', 0), // 6..11
    sc('kill', '$child', SIGSTOP), // 12
    sc('wait4', '$child', '$buf+61000', WUNTRACED, 0), // 13
    { op: 'load', addr: '$buf+61000', size: 4, into: 'st1' }, // 14
    ...snapshot('out2', 4096), // 15..20
    sc('kill', '$child', SIGCONT), // 21
    sc('wait4', '$child', '$buf+61008', WCONTINUED, 0), // 22
    { op: 'load', addr: '$buf+61008', size: 4, into: 'st2' }, // 23
    sc('sched_yield'), // 24: the child goes back to its read
    ...snapshot('out3', 8192), // 25..30
    sc('write', '$w', '$buf', 1), // 31
    sc('wait4', '$child', 0, 0, 0), // 32
  ];
  sys.spawn({ main, strings: { status: '/proc/2/status', out1: '/tmp/out1', out2: '/tmp/out2', out3: '/tmp/out3' } });
  for (let n = 0; n < 1_000_000 && !records(sys, 'main').has(32); n++) if (!sys.step()) break;
  assert.ok(records(sys, 'main').has(32), 'the program ran to its end');
  assert.equal(ret(sys, 4), 2n);
  assert.equal(records(sys, 'main').get(14)?.value, 0x137fn, 'wait4(WUNTRACED): (SIGSTOP << 8) | 0x7f');
  assert.equal(records(sys, 'main').get(23)?.value, 0xffffn, 'wait4(WCONTINUED): 0xffff');
  assert.deepEqual(['/tmp/out1', '/tmp/out2', '/tmp/out3'].map((f) => state(fileText(sys, f))), ['S (sleeping)', 'T (stopped)', 'S (sleeping)']);
  assert.equal(ret(sys, 32), 2n);
  assert.deepEqual(sys.debugReports, []);
});
