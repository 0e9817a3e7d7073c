/**
 * Kernel work that interrupts user mode: the timer tick's context switch and a flush IPI run at
 * CPL 0 and return to user mode. Regression tests: both once ran at CPL 3, where MOV to CR3
 * and INVLPG raise #GP (SDM Vol. 2: both need CPL 0), so a preempted process's successor ran
 * on the old page tables and a remote flush was lost.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { boot, mmapAnon, records } from './helpers.js';

const SIGSEGV = 11;
const SEGV_MAPERR = 1;

test('timer preemption switches CR3 at CPL 0: each process reads its own page', () => {
  const sys = boot({ cpus: 1, kernel: { timeslice: 2 } });
  const gp: number[] = [];
  sys.events.subscribe((e) => {
    if (e.type === 'fault' && e.vector === 13) gp.push(e.cpu);
  });
  const body = (value: number): Op[] => [mmapAnon('buf', 4096), { op: 'store', addr: '$buf', value }, ...Array.from({ length: 8 }, (): Op => ({ op: 'load', addr: '$buf' }))];
  const a = sys.spawn({ main: body(0xaa) }, { cpu: 0 });
  const b = sys.spawn({ main: body(0xbb) }, { cpu: 0 });
  const r = sys.run({ maxSteps: 100_000 });
  assert.ok(r.finished);
  assert.deepEqual(gp, [], 'no #GP: CR3 was written in the kernel');
  for (const [pid, want] of [[a, 0xaan], [b, 0xbbn]] as const) {
    const loads = [...sys.log].filter((x) => x.tid === pid && x.op === 'load');
    assert.equal(loads.length, 8);
    for (const l of loads) assert.equal(l.value, want, `process ${pid} reads its own value`);
  }
  assert.deepEqual(sys.debugReports, []);
});

test('a flush IPI that interrupts user code flushes: the reader faults after munmap returns', () => {
  const sys = boot({ cpus: 2, schedule: 'round-robin' });
  const gp: number[] = [];
  sys.events.subscribe((e) => {
    if (e.type === 'fault' && e.vector === 13) gp.push(e.cpu);
  });
  const getpids = (n: number): Op[] => Array.from({ length: n }, (): Op => ({ op: 'syscall', name: 'getpid' }));
  // CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM
  const flags = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x40000;
  const reader: Op[] = [{ op: 'load', addr: '$buf' }, ...getpids(40), { op: 'load', addr: '$buf' }];
  const main: Op[] = [
    mmapAnon('buf', 4096),
    { op: 'store', addr: '$buf', value: 42 },
    mmapAnon('stack', 0x10000),
    { op: 'syscall', name: 'clone', args: [flags, '$stack+65536'], child: reader, cpu: 1 },
    ...getpids(15),
    { op: 'syscall', name: 'munmap', args: ['$buf', 4096] },
    ...getpids(60),
  ];
  sys.spawn({ main }, { cpu: 0 });
  sys.run({ maxSteps: 100_000 });
  assert.deepEqual(gp, [], 'no #GP: INVLPG ran in the kernel');
  const child = records(sys, 'main.3.child');
  assert.equal(child.get(0)?.value, 42n, 'the first load sees the page');
  const munmapAt = sys.log.findIndex((x) => x.fn === 'main' && x.index === 19);
  const lastLoadAt = sys.log.findIndex((x) => x.fn === 'main.3.child' && x.index === 41);
  assert.ok(munmapAt >= 0 && lastLoadAt > munmapAt, 'the second load completes after munmap returned');
  const last = child.get(41)!;
  assert.equal(last.signal?.signo, SIGSEGV);
  assert.equal(last.signal?.code, SEGV_MAPERR);
});

test('exit_group stops a thread running user code on another CPU (kick_process)', () => {
  const sys = boot({ cpus: 2, schedule: 'round-robin' });
  const flags = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x40000;
  const loads: Op[] = Array.from({ length: 200 }, (): Op => ({ op: 'load', addr: '$stack' }));
  const main: Op[] = [
    mmapAnon('stack', 0x10000),
    { op: 'syscall', name: 'clone', args: [flags, '$stack+65536'], child: loads, cpu: 1 },
    ...Array.from({ length: 10 }, (): Op => ({ op: 'syscall', name: 'getpid' })),
    { op: 'syscall', name: 'exit_group', args: [3] },
  ];
  const pid = sys.spawn({ main }, { cpu: 0 });
  let leaderGone = false;
  let afterExit = 0;
  let threadOps = 0;
  sys.events.subscribe((e) => {
    if (e.type === 'exit' && e.tid === pid) leaderGone = true;
    if (e.type === 'op' && e.record.tid !== pid) {
      threadOps++;
      if (leaderGone) afterExit++;
    }
  });
  const r = sys.run({ maxSteps: 100_000 });
  assert.ok(r.finished);
  assert.ok(threadOps > 0 && threadOps < 200, `the thread ran ${threadOps} of its 200 loads`);
  assert.ok(afterExit <= 1, `${afterExit} operations completed after the leader exited: at most the one in flight may`);
  assert.equal(sys.exitStatus(pid), 3 << 8);
});

test('a random schedule gives each seed its own interleaving, seed 0 included', () => {
  const order = (seed: number): string => {
    const sys = boot({ cpus: 2, schedule: 'random', seed });
    const cpus: number[] = [];
    sys.events.subscribe((e) => {
      if (e.type === 'op') cpus.push(e.cpu);
    });
    const body: Op[] = Array.from({ length: 30 }, (): Op => ({ op: 'syscall', name: 'getpid' }));
    sys.spawn({ main: body }, { cpu: 0 });
    sys.spawn({ main: body }, { cpu: 1 });
    sys.run({ maxSteps: 100_000 });
    return cpus.join('');
  };
  assert.notEqual(order(0), order(1));
  assert.equal(order(0), order(0), 'and the same seed the same one');
});
