/**
 * Job control (kernel/signal.c prepare_signal, do_signal_stop, do_notify_parent_cldstop,
 * get_signal; kernel/exit.c wait_task_stopped, wait_task_continued; 6.12): SIGSTOP stops every
 * thread of a group and SIGCONT continues them; the parent hears CLD_STOPPED once the last
 * thread stops and CLD_CONTINUED from the first thread back, and wait4 reports each state once.
 *
 * Host-checked (x86-64, 6.18, the same code), a child stopped and continued by its parent with
 * SIGCHLD blocked: wait4(WUNTRACED) 0x137f, again with WNOHANG 0; SIGCHLD si_code 5
 * (CLD_STOPPED) si_status 19 si_pid the child; wait4(WCONTINUED) 0xffff, again 0; si_code 6
 * (CLD_CONTINUED) si_status 18; SIGKILL of the stopped child: status 0x9. wait4 with WNOWAIT
 * -EINVAL (22), with none of its own children -ECHILD (10) even with WNOHANG, pid INT_MIN with a
 * bad option -EINVAL, with good ones -ESRCH (3).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { compileScenarioText } from '../../src/scenario/index.js';
import { runScenario } from '../../src/scenario/run.js';
import type { IsolabEvent, System } from '../../src/system.js';
import type { SigInfo } from '../../src/kernel/task.js';
import type { Op } from '../../src/user/program.js';
import { boot, records } from './helpers.js';

const CLONE_VM = 0x100, CLONE_FS = 0x200, CLONE_FILES = 0x400, CLONE_SIGHAND = 0x800, CLONE_THREAD = 0x10000;
const THREAD_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
const SIGKILL = 9, SIGCHLD = 17, SIGCONT = 18, SIGSTOP = 19, SIGTSTP = 20, SIGTTIN = 21;
const WNOHANG = 1, WUNTRACED = 2, WSTOPPED = WUNTRACED, WCONTINUED = 8, WNOWAIT = 0x01000000;
const CLD_EXITED = 1, CLD_STOPPED = 5, CLD_CONTINUED = 6;
const SA_NOCLDSTOP = 1;
const SIG_BLOCK = 0, SIG_UNBLOCK = 1;
const bit = (sig: number): bigint => 1n << BigInt(sig - 1);

const sc = (name: string, args: (number | bigint | string)[], into?: string): Op => ({ op: 'syscall', name, args, ...(into ? { into } : {}) });
const getpids = (n: number): Op[] => Array.from({ length: n }, (): Op => sc('getpid', []));

/** The parent's start: a page at $buf, pipes A (3 read, 4 write) and B (5, 6), SIGCHLD in the word at $buf+64 and blocked. */
const PARENT_START: Op[] = [
  { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'buf' },
  sc('pipe', ['$buf']),
  sc('pipe', ['$buf+8']),
  { op: 'store', addr: '$buf+64', value: bit(SIGCHLD) },
  sc('rt_sigprocmask', [SIG_BLOCK, '$buf+64', 0, 8]),
];

/**
 * A child of two threads: a thread on CPU 1 asleep in a read of pipe A, which then writes to
 * pipe B; and main on CPU 0, busy with `busy` getpids, then reading pipe B (so that it exits
 * after the thread).
 */
function twoThreadChild(busy: number): Op[] {
  return [
    {
      op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], into: 'thr', cpu: 1,
      child: [sc('read', [3, '$buf+256', 4]), sc('write', [6, '$buf+256', 4])],
    },
    ...getpids(busy),
    sc('read', [5, '$buf+512', 4]),
  ];
}

interface Watched {
  sys: System;
  events: IsolabEvent[];
  /** Every SIGCHLD siginfo seen queued for the parent, in order. */
  sigchld: SigInfo[];
  parent: number;
}

/** Runs `main` as the parent on CPU 2 (its fork child on CPU 0), watching the parent's queued SIGCHLDs. */
function runParent(main: Op[], maxSteps = 2_000_000): Watched {
  const sys = boot({ cpus: 3 });
  const events: IsolabEvent[] = [];
  const seen = new Set<SigInfo>();
  const sigchld: SigInfo[] = [];
  let parent = 0;
  sys.events.subscribe((e) => {
    events.push(e);
    const p = parent ? sys.task(parent) : undefined;
    if (!p) return;
    for (const info of p.group.shared_pending.list) {
      if (info.signo === SIGCHLD && !seen.has(info)) {
        seen.add(info);
        sigchld.push(info);
      }
    }
  });
  parent = sys.spawn({ main }, { cpu: 2 });
  sys.run({ maxSteps });
  return { sys, events, sigchld, parent };
}

/** The result of op `index` of `fn` by task `tid` (any task if not given). */
function val(sys: System, index: number, fn = 'main', tid?: number): bigint {
  const r = records(sys, fn, tid).get(index);
  assert.ok(r && r.value !== undefined, `${fn}[${index}] has no result`);
  return BigInt.asIntN(64, r.value);
}

function jobctl(events: IsolabEvent[], what: string): Extract<IsolabEvent, { type: 'jobctl' }>[] {
  return events.filter((e): e is Extract<IsolabEvent, { type: 'jobctl' }> => e.type === 'jobctl' && e.what === what);
}

test('SIGSTOP stops both threads of a process, none runs until SIGCONT, and wait4 and SIGCHLD report each change once', () => {
  const main: Op[] = [
    ...PARENT_START, // 0-4
    { op: 'syscall', name: 'fork', args: [], into: 'c', cpu: 0, child: twoThreadChild(200) }, // 5
    ...getpids(30), // 6-35: the child's main is busy meanwhile
    sc('kill', ['$c', SIGSTOP]), // 36
    sc('wait4', ['$c', '$buf+128', WUNTRACED, 0]), // 37
    { op: 'load', addr: '$buf+128', size: 4 }, // 38
    sc('wait4', ['$c', '$buf+128', WUNTRACED | WNOHANG, 0]), // 39: reported once
    sc('rt_sigprocmask', [SIG_UNBLOCK, '$buf+64', 0, 8]), // 40: the CLD_STOPPED SIGCHLD is taken (SIG_DFL: ignored)
    sc('rt_sigprocmask', [SIG_BLOCK, '$buf+64', 0, 8]), // 41
    sc('kill', ['$c', SIGCONT]), // 42
    sc('wait4', ['$c', '$buf+136', WCONTINUED, 0]), // 43
    { op: 'load', addr: '$buf+136', size: 4 }, // 44
    sc('wait4', ['$c', '$buf+136', WCONTINUED | WNOHANG, 0]), // 45: reported once
    sc('write', [4, '$buf+64', 4]), // 46: for the thread's read
    sc('wait4', ['$c', '$buf+144', 0, 0]), // 47
    { op: 'load', addr: '$buf+144', size: 4 }, // 48
  ];
  const { sys, events, sigchld, parent } = runParent(main);
  assert.ok(sys.tasks().every((t) => t.state === 'dead' || t.state === 'zombie'), 'every task ended');
  assert.deepEqual(sys.debugReports, []);
  const c = val(sys, 5);
  assert.ok(c > 0n);
  assert.equal(val(sys, 37), c);
  assert.equal(val(sys, 38), 0x137fn, 'stopped by SIGSTOP: (19 << 8) | 0x7f');
  assert.equal(val(sys, 39), 0n, 'the stop is reported once');
  assert.equal(val(sys, 43), c);
  assert.equal(val(sys, 44), 0xffffn, 'continued');
  assert.equal(val(sys, 45), 0n, 'the continue is reported once');
  assert.equal(val(sys, 47), c);
  assert.equal(val(sys, 48), 0n, 'exited with 0');

  // Both threads stopped and both came back; the parent was told once of each change.
  const child = Number(c);
  const stops = jobctl(events, 'stop');
  const resumes = jobctl(events, 'resume');
  const tids = [...new Set(stops.map((e) => e.tid))].sort();
  assert.equal(tids.length, 2, 'both threads stopped');
  assert.equal(stops.length, 2);
  assert.deepEqual([...new Set(resumes.map((e) => e.tid))].sort(), tids);
  assert.deepEqual(jobctl(events, 'notify').map((e) => [e.tid, e.code]), [[child, CLD_STOPPED], [child, CLD_CONTINUED]]);
  // The last thread to stop tells the parent: after the first one stopped.
  const firstStop = events.findIndex((e) => e.type === 'jobctl' && e.what === 'stop');
  const told = events.findIndex((e) => e.type === 'jobctl' && e.what === 'notify');
  assert.ok(told > firstStop, 'CLD_STOPPED came before the group had stopped');
  // No operation of a stopped thread completes while it is stopped.
  for (const tid of tids) {
    const from = events.findIndex((e) => e.type === 'jobctl' && e.what === 'stop' && e.tid === tid);
    const to = events.findIndex((e) => e.type === 'jobctl' && e.what === 'resume' && e.tid === tid);
    assert.ok(from >= 0 && to > from);
    assert.ok(!events.slice(from, to).some((e) => e.type === 'op' && e.record.tid === tid), `thread ${tid} ran while stopped`);
  }
  // The thread asleep in read was stopped there and its read restarted after SIGCONT (-ERESTARTSYS).
  assert.equal(val(sys, 0, 'main.5.child.0.child'), 4n);
  assert.equal(val(sys, 201, 'main.5.child'), 4n);
  // The busy thread was stopped in the middle of its getpids.
  const mainStop = events.findIndex((e) => e.type === 'jobctl' && e.what === 'stop' && e.tid === child);
  const before = events.slice(0, mainStop).filter((e) => e.type === 'op' && e.record.tid === child && e.record.op === 'syscall').length;
  assert.ok(before > 1 && before < 201, `main was stopped after ${before} operations`);

  // SIGCHLD: CLD_STOPPED with the stop signal, then CLD_CONTINUED with SIGCONT; the exit's
  // SIGCHLD finds that one still pending (blocked) and is not queued (legacy_queue).
  assert.deepEqual(sigchld.map((i) => [i.code, i.status, i.pid]), [[CLD_STOPPED, SIGSTOP, child], [CLD_CONTINUED, SIGCONT, child]]);
  assert.ok(parent > 0);
});

test('SA_NOCLDSTOP: no SIGCHLD for a stop or a continue, but wait4 is still woken and reports both', () => {
  const main: Op[] = [
    ...PARENT_START, // 0-4
    { op: 'store', addr: '$buf+192', value: 0 }, // 5: sa_handler SIG_DFL
    { op: 'store', addr: '$buf+200', value: SA_NOCLDSTOP }, // 6: sa_flags
    sc('rt_sigaction', [SIGCHLD, '$buf+192', 0, 8]), // 7
    { op: 'syscall', name: 'fork', args: [], into: 'c', cpu: 0, child: [sc('write', [6, '$buf', 1]), sc('read', [3, '$buf+256', 4])] }, // 8
    sc('read', [5, '$buf+320', 1]), // 9: the child is about to read
    sc('kill', ['$c', SIGSTOP]), // 10
    sc('wait4', ['$c', '$buf+128', WUNTRACED, 0]), // 11
    { op: 'load', addr: '$buf+128', size: 4 }, // 12
    sc('kill', ['$c', SIGCONT]), // 13
    sc('wait4', ['$c', '$buf+136', WCONTINUED, 0]), // 14
    { op: 'load', addr: '$buf+136', size: 4 }, // 15
    sc('write', [4, '$buf+64', 4]), // 16
    sc('wait4', ['$c', 0, 0, 0]), // 17
  ];
  const { sys, events, sigchld } = runParent(main);
  const c = val(sys, 8);
  assert.equal(val(sys, 11), c);
  assert.equal(val(sys, 12), 0x137fn);
  assert.equal(val(sys, 14), c);
  assert.equal(val(sys, 15), 0xffffn);
  assert.equal(val(sys, 17), c);
  assert.equal(val(sys, 1, 'main.8.child'), 4n, "the child's read restarted after the stop");
  assert.deepEqual(jobctl(events, 'notify').map((e) => e.code), [CLD_STOPPED, CLD_CONTINUED], 'do_notify_parent_cldstop ran for both');
  assert.deepEqual(sigchld.map((i) => i.code), [CLD_EXITED], 'only the exit sent SIGCHLD');
});

test('SIGKILL wakes a stopped process and kills it: wait4 gives 9', () => {
  const main: Op[] = [
    ...PARENT_START,
    { op: 'syscall', name: 'fork', args: [], into: 'c', cpu: 0, child: twoThreadChild(100) }, // 5
    ...getpids(20), // 6-25
    sc('kill', ['$c', SIGSTOP]), // 26
    sc('wait4', ['$c', '$buf+128', WUNTRACED, 0]), // 27
    sc('kill', ['$c', SIGKILL]), // 28
    sc('wait4', ['$c', '$buf+128', 0, 0]), // 29
    { op: 'load', addr: '$buf+128', size: 4 }, // 30
  ];
  const { sys, events } = runParent(main);
  const c = val(sys, 5);
  assert.equal(val(sys, 27), c);
  assert.equal(val(sys, 29), c);
  assert.equal(val(sys, 30), 0x9n);
  assert.equal(jobctl(events, 'stop').length, 2);
  assert.equal(jobctl(events, 'resume').length, 2, 'SIGKILL woke both stopped threads');
  assert.ok(sys.tasks().every((t) => t.state === 'dead' || t.state === 'zombie'));
});

test('a stop signal flushes a pending SIGCONT and SIGCONT flushes pending stop signals, blocked or not', () => {
  // The child blocks SIGTSTP, SIGTTIN and SIGCONT and sleeps in read; the parent sends, in turn,
  // SIGTSTP, SIGTTIN, SIGCONT (flushing both), then SIGSTOP (flushing SIGCONT, and stopping).
  const child: Op[] = [
    { op: 'store', addr: '$buf+320', value: bit(SIGTSTP) | bit(SIGTTIN) | bit(SIGCONT) },
    sc('rt_sigprocmask', [SIG_BLOCK, '$buf+320', 0, 8]),
    sc('write', [6, '$buf', 1]),
    sc('read', [3, '$buf+256', 4]),
  ];
  const main: Op[] = [
    ...PARENT_START,
    { op: 'syscall', name: 'fork', args: [], into: 'c', cpu: 0, child }, // 5
    sc('read', [5, '$buf+384', 1]), // 6: the child has blocked its signals
    sc('kill', ['$c', SIGTSTP]), // 7
    sc('kill', ['$c', SIGTTIN]), // 8
    sc('kill', ['$c', SIGCONT]), // 9
    sc('kill', ['$c', SIGSTOP]), // 10
    sc('wait4', ['$c', '$buf+128', WUNTRACED, 0]), // 11
    { op: 'load', addr: '$buf+128', size: 4 }, // 12
    sc('kill', ['$c', SIGKILL]), // 13
    sc('wait4', ['$c', 0, 0, 0]), // 14
  ];
  const sys = boot({ cpus: 2 });
  const pendingAfter = new Map<number, bigint>();
  let parent = 0;
  sys.events.subscribe((e) => {
    if (e.type !== 'syscall' || e.name !== 'kill' || e.tid !== parent) return;
    const c = sys.task(Number(e.args[0]));
    if (c) pendingAfter.set(Number(e.args[1]), c.group.shared_pending.signal);
  });
  parent = sys.spawn({ main }, { cpu: 1 });
  sys.run({ maxSteps: 2_000_000 });
  assert.equal(val(sys, 1, 'main.5.child'), 0n, 'the child blocked its signals');
  assert.equal(pendingAfter.get(SIGTSTP), bit(SIGTSTP));
  assert.equal(pendingAfter.get(SIGTTIN), bit(SIGTSTP) | bit(SIGTTIN));
  assert.equal(pendingAfter.get(SIGCONT), bit(SIGCONT), 'SIGCONT removed the stop signals; it is queued, being blocked');
  assert.equal((pendingAfter.get(SIGSTOP) ?? -1n) & bit(SIGCONT), 0n, 'SIGSTOP removed the pending SIGCONT');
  assert.equal(val(sys, 12), 0x137fn);
  assert.ok(sys.tasks().every((t) => t.state === 'dead' || t.state === 'zombie'));
});

test('SIGTSTP with its default action does nothing in the orphaned process group; SIGSTOP stops a process with no parent for good', () => {
  const sys = boot({ cpus: 1 });
  const events: IsolabEvent[] = [];
  sys.events.subscribe((e) => events.push(e));
  const pid = sys.spawn({ main: [sc('getpid', [], 'me'), sc('kill', ['$me', SIGTSTP]), sc('getpid', []), sc('kill', ['$me', SIGSTOP]), sc('getpid', [])] });
  const r = sys.run({ maxSteps: 100_000 });
  assert.equal(val(sys, 2), BigInt(pid), 'SIGTSTP did not stop it');
  assert.equal(records(sys).get(4), undefined, 'SIGSTOP did');
  assert.ok(!r.finished);
  assert.deepEqual(r.alive, [pid]);
  assert.equal(sys.task(pid)!.state, 'stopped');
  assert.deepEqual(events.filter((e) => e.type === 'signal').map((e) => [(e as { signo: number }).signo, (e as { action: string }).action]), [[SIGSTOP, 'stop']]);
  assert.equal(jobctl(events, 'notify').length, 0, 'no parent to tell');
});

test("wait4's checks in Linux's order: bad options (WNOWAIT included) -EINVAL, pid INT_MIN -ESRCH, no child -ECHILD; WNOHANG 0 for a running child", () => {
  const main: Op[] = [
    sc('wait4', [-1, 0, WNOWAIT, 0]), // 0
    sc('wait4', [-2147483648, 0, 0x100, 0]), // 1
    sc('wait4', [-2147483648, 0, 0, 0]), // 2
    sc('wait4', [-1, 0, WUNTRACED, 0]), // 3
    sc('wait4', [-1, 0, WNOHANG, 0]), // 4
    { op: 'syscall', name: 'fork', args: [], into: 'c', cpu: 0, child: getpids(20) }, // 5
    sc('wait4', ['$c', 0, WNOHANG | WUNTRACED | WCONTINUED, 0]), // 6
    sc('wait4', ['$c+1', 0, WNOHANG, 0]), // 7: not a child
    sc('wait4', ['$c', 0, 0, 0]), // 8
  ];
  const sys = boot({ cpus: 2 });
  sys.spawn({ main }, { cpu: 1 });
  sys.run({ maxSteps: 1_000_000 });
  assert.equal(val(sys, 0), -22n);
  assert.equal(val(sys, 1), -22n);
  assert.equal(val(sys, 2), -3n);
  assert.equal(val(sys, 3), -10n);
  assert.equal(val(sys, 4), -10n);
  assert.equal(val(sys, 6), 0n);
  assert.equal(val(sys, 7), -10n);
  assert.equal(val(sys, 8), val(sys, 5));
});

test("docs/scenario-format.md's job-control example runs and its expectations hold", () => {
  const doc = readFileSync(new URL('../../../docs/scenario-format.md', import.meta.url), 'utf8');
  const m = /```yaml\n(name: stop-continue\n[\s\S]*?)```/.exec(doc);
  assert.ok(m, 'the example is in the docs');
  const r = runScenario(compileScenarioText(m[1], 'stop-continue.yaml'));
  assert.deepEqual(r.verdicts.filter((v) => v.status !== 'held'), []);
  assert.ok(r.verdicts.length >= 10, `${r.verdicts.length} expectations judged`);
  assert.ok(r.passed && r.finished);
});

test('a process left stopped ends the run cleanly: reported stopped, its later operations not reached', () => {
  const r = runScenario(compileScenarioText(`name: left-stopped
processes:
  - name: p
    ops:
      - getpid: {}
        as: me
      - kill: { pid: $me, sig: SIGSTOP }
      - getpid: {}
        expect: $me
`, 'left-stopped.yaml'));
  assert.equal(r.finished, false);
  assert.deepEqual(r.tasks.map((t) => [t.name, t.exit, t.stopped]), [['p', null, true]]);
  const v = r.verdicts.find((x) => x.status !== 'held');
  assert.ok(v && /stopped/.test(JSON.stringify(v)), JSON.stringify(r.verdicts));
});

test('waitid: stopped, continued, killed and exited children in its siginfo, WNOWAIT, WNOHANG and the errors (host-checked)', () => {
  const P_ALL = 0, P_PID = 1, P_PGID = 2, WEXITED = 4;
  const PAD = 0x55555555n;
  /** waitid into $buf+512 (filled with 0x55 first), then its si_signo, si_errno, si_code, the padding, si_pid, si_uid, si_status. */
  const waitid = (which: number, pid: number | string, options: number): Op[] => [
    ...[0, 8, 16, 24].map((o): Op => ({ op: 'store', addr: `$buf+${512 + o}`, value: 0x5555555555555555n })),
    sc('waitid', [which, pid, '$buf+512', options, 0]),
    ...[0, 4, 8, 12, 16, 20, 24].map((o): Op => ({ op: 'load', addr: `$buf+${512 + o}`, size: 4 })),
  ];
  const calls: [string, number, number | string, number][] = [
    ['stopped, WNOWAIT', P_PID, '$c', WSTOPPED | WNOWAIT],
    ['stopped, WNOWAIT again', P_PID, '$c', WSTOPPED | WNOWAIT],
    ['stopped', P_PID, '$c', WSTOPPED],
    ['stopped again, WNOHANG', P_PID, '$c', WSTOPPED | WNOHANG],
    ['continued', P_ALL, 0, WCONTINUED],
    ['killed, WNOWAIT', P_PID, '$c', WEXITED | WNOWAIT],
    ['killed', P_PID, '$c', WEXITED],
    ['exited', P_PGID, 0, WEXITED],
    ['no option', P_ALL, 0, 0],
    ['P_PID 0', P_PID, 0, WEXITED],
    ['which 7', 7, 0, WEXITED],
    ['no such pid', P_PID, 99999, WEXITED],
    ['bad option', P_ALL, 0, WEXITED | WUNTRACED | 0x100],
  ];
  const before: Record<string, Op[]> = {
    continued: [sc('kill', ['$c', SIGCONT])],
    'killed, WNOWAIT': [sc('kill', ['$c', SIGKILL])],
    exited: [{ op: 'syscall', name: 'fork', args: [], into: 'd', cpu: 0, child: [sc('exit_group', [3])] }],
  };
  const main: Op[] = [
    ...PARENT_START,
    { op: 'syscall', name: 'fork', args: [], into: 'c', cpu: 0, child: [sc('read', [3, '$buf+256', 4])] }, // 5
    sc('kill', ['$c', SIGSTOP]), // 6
  ];
  const at = new Map<string, number>();
  for (const [name, which, pid, options] of calls) {
    main.push(...(before[name] ?? []));
    at.set(name, main.length + 4);
    main.push(...waitid(which, pid, options));
  }
  const { sys } = runParent(main);
  const c = val(sys, 5);
  const fields = (name: string): bigint[] => {
    const i = at.get(name)!;
    return [0, 1, 2, 3, 4, 5, 6, 7].map((j) => val(sys, i + j));
  };
  const d = records(sys).get(at.get('exited')! - 5)?.value;
  assert.ok(d !== undefined && d > 0n);
  // result, si_signo, si_errno, si_code, padding, si_pid, si_uid, si_status
  const none = [0n, 0n, 0n, PAD, 0n, 0n, 0n];
  const expected: Record<string, bigint[]> = {
    'stopped, WNOWAIT': [0n, 17n, 0n, 5n, PAD, c, 0n, 19n],
    'stopped, WNOWAIT again': [0n, 17n, 0n, 5n, PAD, c, 0n, 19n],
    stopped: [0n, 17n, 0n, 5n, PAD, c, 0n, 19n],
    'stopped again, WNOHANG': [0n, ...none],
    continued: [0n, 17n, 0n, 6n, PAD, c, 0n, 18n],
    'killed, WNOWAIT': [0n, 17n, 0n, 2n, PAD, c, 0n, 9n],
    killed: [0n, 17n, 0n, 2n, PAD, c, 0n, 9n],
    exited: [0n, 17n, 0n, 1n, PAD, d, 0n, 3n],
    'no option': [-22n, ...none],
    'P_PID 0': [-22n, ...none],
    'which 7': [-22n, ...none],
    'no such pid': [-10n, ...none],
    'bad option': [-22n, ...none],
  };
  for (const [name] of calls) assert.deepEqual(fields(name), expected[name], name);
  assert.ok(sys.tasks().every((t) => t.state === 'dead' || t.state === 'zombie'));
});
