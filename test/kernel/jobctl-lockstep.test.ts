/**
 * Job control in lockstep (lockstep.ts): a parent on CPU 1 sends stop and continue signals to
 * a child of two threads, whose main thread runs on CPU 0 and whose other thread waits on CPU 2
 * (it runs only after the window, so a group stop cannot end inside it). Every interleaving
 * with at most PREEMPTIONS preemptions, each judged by what wait4 reported, the notifications
 * do_notify_parent_cldstop made, and the threads' states.
 *
 * What Linux promises (kernel/signal.c, kernel/exit.c, 6.12):
 *  - SIGSTOP stops the whole group wherever the main thread is when it comes: each thread
 *    stops in do_signal_stop (the main thread at its next return to user mode, the other when
 *    it first runs), the last one to stop sets SIGNAL_STOP_STOPPED and tells the parent
 *    CLD_STOPPED exactly once, wait4(WUNTRACED) reports (SIGSTOP << 8) | 0x7f once, and no
 *    operation of a thread completes while it is stopped;
 *  - SIGCONT racing the stop: sent before the main thread dequeued SIGSTOP, it flushes it (no
 *    stop, nothing to report); sent once the group stop began (group_stop_count > 0), it ends
 *    the stop and the parent hears CLD_STOPPED as though the stop had ended (prepare_signal's
 *    SIGNAL_CLD_STOPPED), never CLD_CONTINUED, and wait4(WCONTINUED) reports 0xffff; either way
 *    no thread stays stopped and the child exits normally.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { describeFindings, lockstep, type LockstepCase, type Run } from './lockstep.js';

const CLONE_VM = 0x100, CLONE_FS = 0x200, CLONE_FILES = 0x400, CLONE_SIGHAND = 0x800, CLONE_THREAD = 0x10000;
const THREAD_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
const SIGCONT = 18, SIGSTOP = 19;
const WNOHANG = 1, WUNTRACED = 2, WCONTINUED = 8;
const CLD_STOPPED = 5, CLD_CONTINUED = 6;
const PREEMPTIONS = 1;
const C = 'main.2.child';

const sc = (name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args });

/** The value operation `index` of `fn` produced, or a message. */
function value(r: Run, fn: string, index: number): bigint | string {
  const rec = r.k.log.find((x) => x.fn === fn && x.index === index);
  if (!rec) return `${fn}[${index}] never ran`;
  if (rec.value === undefined) return `${fn}[${index}] gave no value`;
  return BigInt.asIntN(64, rec.value);
}

/** The notifications of the parent, as codes. */
function notified(r: Run): number[] {
  return r.events.flatMap((x) => (x.e.type === 'jobctl' && x.e.what === 'notify' ? [x.e.code] : []));
}

/**
 * The parent: a page, pipe A (3, 4), the child C on CPU 0 (0: a thread on CPU 2 that writes to
 * A; 1-2: getpids, the main thread's stretch; 3: a read of A, so that C ends after its thread),
 * then `rest` from op 3 on.
 */
function jobCase(name: string, rest: Op[], stretch: number, check: (r: Run) => string | null): LockstepCase {
  return {
    name,
    processes: [{
      cpu: 1,
      program: {
        main: [
          { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'buf' }, // 0
          sc('pipe', '$buf'), // 1
          {
            op: 'syscall', name: 'fork', args: [], into: 'c', cpu: 0,
            child: [
              { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], cpu: 2, child: [sc('write', 4, '$buf', 4)] },
              sc('getpid'),
              sc('getpid'),
              sc('read', 3, '$buf+256', 4),
            ],
          }, // 2
          ...rest,
        ],
      },
    }],
    racers: [{ cpu: 1, fn: 'main', from: 3, to: 3 + stretch - 1 }, { cpu: 0, fn: C, from: 1, to: 2 }],
    watch: [],
    cpus: 3,
    preemptions: PREEMPTIONS,
    check,
  };
}

const STOP = jobCase(
  'SIGSTOP from CPU 1 against the two-thread child running on CPU 0',
  [
    sc('kill', '$c', SIGSTOP), // 3
    sc('wait4', '$c', '$buf+128', WUNTRACED, 0), // 4
    { op: 'load', addr: '$buf+128', size: 4 }, // 5
    sc('wait4', '$c', '$buf+128', WUNTRACED | WNOHANG, 0), // 6
  ],
  1,
  (r) => {
    const c = value(r, 'main', 2);
    if (value(r, 'main', 4) !== c) return `wait4(WUNTRACED) returned ${value(r, 'main', 4)}, not the child ${c}`;
    if (value(r, 'main', 5) !== 0x137fn) return `wait4(WUNTRACED) status ${value(r, 'main', 5)}, not 0x137f`;
    if (value(r, 'main', 6) !== 0n) return `the stop was reported again: ${value(r, 'main', 6)}`;
    const n = notified(r);
    if (n.length !== 1 || n[0] !== CLD_STOPPED) return `the parent was told [${n.join(', ')}], not CLD_STOPPED once`;
    const child = r.task(Number(c));
    if (!child) return 'the child is gone';
    const threads = child.group.threads.filter((t) => t.state !== 'dead');
    if (threads.length !== 2 || threads.some((t) => t.state !== 'stopped')) return `the child's threads end ${threads.map((t) => `${t.tid} ${t.state}`).join(', ')}, not both stopped`;
    const told = r.events.find((x) => x.e.type === 'jobctl' && x.e.what === 'notify')!;
    for (const t of threads) {
      const stop = r.events.find((x) => x.e.type === 'jobctl' && x.e.what === 'stop' && x.e.tid === t.tid);
      if (!stop) return `thread ${t.tid} stopped without a stop event`;
      // The last thread tells the parent in the step it stops in: no thread stops after that step.
      if (stop.step > told.step) return `the parent was told CLD_STOPPED at step ${told.step}, before thread ${t.tid} stopped (step ${stop.step})`;
      const late = r.events.find((x) => x.step > stop.step && x.e.type === 'op' && x.e.record.tid === t.tid);
      if (late) return `thread ${t.tid} completed ${late.e.type === 'op' ? late.e.record.fn : ''} while stopped`;
    }
    return null;
  },
);

const CONT = jobCase(
  'SIGCONT from CPU 1 racing the group stop its SIGSTOP starts',
  [
    sc('kill', '$c', SIGSTOP), // 3
    sc('kill', '$c', SIGCONT), // 4
    sc('wait4', '$c', '$buf+128', WCONTINUED | WNOHANG, 0), // 5
    { op: 'load', addr: '$buf+128', size: 4 }, // 6
    sc('wait4', '$c', '$buf+136', 0, 0), // 7
    { op: 'load', addr: '$buf+136', size: 4 }, // 8
  ],
  2,
  (r) => {
    const c = value(r, 'main', 2);
    if (value(r, 'main', 7) !== c || value(r, 'main', 8) !== 0n) return `the child did not exit normally: wait4 ${value(r, 'main', 7)}, status ${value(r, 'main', 8)}`;
    const n = notified(r);
    if (n.includes(CLD_CONTINUED)) return 'the parent was told CLD_CONTINUED, but the group never finished stopping';
    const continued = value(r, 'main', 5);
    if (continued === c) {
      if (value(r, 'main', 6) !== 0xffffn) return `wait4(WCONTINUED) status ${value(r, 'main', 6)}, not 0xffff`;
      return n.length === 1 && n[0] === CLD_STOPPED ? null : `the stop was cut short but the parent was told [${n.join(', ')}], not CLD_STOPPED once`;
    }
    if (continued !== 0n) return `wait4(WCONTINUED | WNOHANG) returned ${continued}`;
    return n.length === 0 ? null : `no stop began, but the parent was told [${n.join(', ')}]`;
  },
);

test(`lockstep, every interleaving: ${STOP.name}`, (t) => {
  const r = lockstep(STOP);
  t.diagnostic(`${r.interleavings} interleavings (every one with at most ${STOP.preemptions} preemptions), window up to ${r.longest} steps, ${r.ms.toFixed(0)} ms`);
  assert.ok(r.failed === 0, describeFindings(STOP, r));
  assert.ok(r.interleavings >= 2, `${r.interleavings} interleaving(s): the racers never raced`);
});

test(`lockstep, every interleaving: ${CONT.name}; some flush the SIGSTOP, some cut the stop short`, (t) => {
  let flushed = 0;
  let cut = 0;
  const r = lockstep(CONT, (run) => {
    if (value(run, 'main', 5) === 0n) flushed++;
    else cut++;
  });
  t.diagnostic(`${r.interleavings} interleavings, ${flushed} with SIGCONT flushing the SIGSTOP, ${cut} ending a stop in progress, ${r.ms.toFixed(0)} ms`);
  assert.ok(r.failed === 0, describeFindings(CONT, r));
  assert.ok(flushed > 0, 'SIGCONT never came before the stop began');
  assert.ok(cut > 0, 'SIGCONT never came while the stop was in progress');
});
