/**
 * ptrace in lockstep (lockstep.ts): every interleaving with at most PREEMPTIONS preemptions.
 *
 *  - PTRACE_POKEDATA from the tracer on CPU 1 into a private page of the tracee's process, COW
 *    shared with the tracer since the fork, against another thread of that process storing to
 *    the same page on CPU 2. The tracee's thread was seized and interrupted (PTRACE_EVENT_STOP
 *    stops that thread only), so its sibling runs. Linux (mm/gup.c, mm/memory.c, kernel/ptrace.c
 *    6.12): both writes land in the process's one private copy (whichever breaks COW first, the
 *    other finds the page exclusive and writable, or breaks it again from the same copy under
 *    the PTE lock), and the tracer's own page keeps what it had.
 *  - PTRACE_ATTACH from the parent against the child's exit_group: ptrace_attach refuses a zombie
 *    (-EPERM); an attach that wins stops the child with SIGSTOP if the child returns to user mode
 *    first (wait4 reports 0x137f and PTRACE_CONT lets it exit), or the child exits with the
 *    SIGSTOP still queued (wait4 reports 0x700 at once); either way the parent reaps it once.
 *  - SIGKILL from another thread of the tracer on CPU 0 against the tracer's PTRACE_PEEKDATA on
 *    CPU 1: a SIGKILL that comes first makes ptrace_check_attach fail (-ESRCH: ptrace_freeze_traced
 *    refuses a tracee with a fatal signal pending); one that comes later leaves the request to
 *    finish on the frozen tracee (JOBCTL_PTRACE_FROZEN: it is woken by ptrace_unfreeze_traced; the
 *    tracee shares CPU 1 with the tracer here, so when it wakes is not observable); either way the
 *    tracee dies of SIGKILL and runs nothing more, and wait4 reports status 9 once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { describeFindings, lockstep, type LockstepCase, type Run } from './lockstep.js';

const CLONE_VM = 0x100, CLONE_FS = 0x200, CLONE_FILES = 0x400, CLONE_SIGHAND = 0x800, CLONE_THREAD = 0x10000;
const THREAD_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
const PTRACE_PEEKDATA = 2, PTRACE_POKEDATA = 5, PTRACE_CONT = 7, PTRACE_ATTACH = 16, PTRACE_SEIZE = 0x4206, PTRACE_INTERRUPT = 0x4207;
const EPERM = 1, ESRCH = 3, ECHILD = 10;
const PREEMPTIONS = 1;
const C = 'main.5.child';

const sc = (name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args });

/** The value operation `index` of `fn` produced, or a message. */
function value(r: Run, fn: string, index: number): bigint | string {
  const rec = r.k.log.find((x) => x.fn === fn && x.index === index);
  if (!rec) return `${fn}[${index}] never ran`;
  if (rec.value === undefined) return `${fn}[${index}] gave no value`;
  return BigInt.asIntN(64, rec.value);
}

const POKE: LockstepCase = {
  name: 'PTRACE_POKEDATA on CPU 1 against a store by another thread of the tracee to the same COW page on CPU 2',
  processes: [{
    cpu: 1,
    program: {
      main: [
        { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'buf' }, // 0
        sc('pipe', '$buf'), // 1: A (3, 4)
        sc('pipe', '$buf+8'), // 2: B (5, 6)
        { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'p' }, // 3
        { op: 'store', addr: '$p', value: 0x5555 }, // 4
        {
          // The child runs on CPU 1 too, so that it stops before the window; its thread waits on CPU 2.
          op: 'syscall', name: 'fork', args: [], into: 'c', cpu: 1,
          child: [
            { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], cpu: 2, child: [{ op: 'store', addr: '$p', value: 0x2222 }] }, // 0
            sc('write', 6, '$buf', 1), // 1: the thread exists
            sc('read', 3, '$buf+256', 4), // 2: interrupted by the tracer
            { op: 'load', addr: '$p' }, // 3
            { op: 'load', addr: '$p+8' }, // 4
          ],
        }, // 5
        sc('read', 5, '$buf+16', 1), // 6
        { op: 'syscall', name: 'ptrace', args: [PTRACE_SEIZE, '$c', 0, 0] }, // 7
        { op: 'syscall', name: 'ptrace', args: [PTRACE_INTERRUPT, '$c', 0, 0] }, // 8
        sc('wait4', '$c', '$buf+128', 0, 0), // 9
        { op: 'syscall', name: 'ptrace', args: [PTRACE_POKEDATA, '$c', '$p+8', 0x1111] }, // 10
        { op: 'syscall', name: 'ptrace', args: [PTRACE_CONT, '$c', 0, 0] }, // 11
        sc('write', 4, '$buf', 4), // 12
        sc('wait4', '$c', '$buf+136', 0, 0), // 13
        { op: 'load', addr: '$p' }, // 14
        { op: 'load', addr: '$p+8' }, // 15
      ],
    },
  }],
  racers: [{ cpu: 1, fn: 'main', from: 10 }, { cpu: 2, fn: `${C}.0.child`, from: 0 }],
  watch: ['p'],
  cpus: 3,
  preemptions: PREEMPTIONS,
  check: (r) => {
    if (value(r, 'main', 9) !== value(r, 'main', 5)) return `wait4 returned ${value(r, 'main', 9)} before the poke`;
    if (value(r, 'main', 10) !== 0n) return `POKEDATA returned ${value(r, 'main', 10)}`;
    if (value(r, C, 3) !== 0x2222n) return `the tracee's process reads ${value(r, C, 3)} where its thread stored 0x2222`;
    if (value(r, C, 4) !== 0x1111n) return `the tracee's process reads ${value(r, C, 4)} where the tracer poked 0x1111`;
    if (value(r, 'main', 14) !== 0x5555n || value(r, 'main', 15) !== 0n) return `the tracer's own page changed: ${value(r, 'main', 14)}, ${value(r, 'main', 15)}`;
    if (value(r, 'main', 13) !== value(r, 'main', 5)) return `the tracee was not reaped: wait4 ${value(r, 'main', 13)}`;
    return null;
  },
};

const ATTACH: LockstepCase = {
  name: 'PTRACE_ATTACH on CPU 1 against the child\'s exit_group on CPU 0',
  processes: [{
    cpu: 1,
    program: {
      main: [
        { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'buf' }, // 0
        { op: 'syscall', name: 'fork', args: [], into: 'c', cpu: 0, child: [sc('getpid'), sc('exit_group', 7)] }, // 1
        { op: 'syscall', name: 'ptrace', args: [PTRACE_ATTACH, '$c', 0, 0] }, // 2
        sc('wait4', '$c', '$buf+128', 0, 0), // 3
        { op: 'load', addr: '$buf+128', size: 4 }, // 4
        { op: 'syscall', name: 'ptrace', args: [PTRACE_CONT, '$c', 0, 0] }, // 5
        sc('wait4', '$c', '$buf+136', 0, 0), // 6
        { op: 'load', addr: '$buf+136', size: 4 }, // 7
      ],
    },
  }],
  racers: [{ cpu: 1, fn: 'main', from: 2 }, { cpu: 0, fn: 'main.1.child', from: 0, to: 1 }],
  watch: [],
  cpus: 2,
  preemptions: PREEMPTIONS,
  check: (r) => {
    const c = value(r, 'main', 1);
    const attach = value(r, 'main', 2);
    if (value(r, 'main', 3) !== c) return `the first wait4 returned ${value(r, 'main', 3)}`;
    const first = value(r, 'main', 4);
    if (attach === BigInt(-EPERM) || first === 0x700n) {
      if (first !== 0x700n) return `attach ${attach}, then wait4 status ${first}, not the exit 0x700`;
      if (value(r, 'main', 5) !== BigInt(-ESRCH)) return `PTRACE_CONT of a reaped child returned ${value(r, 'main', 5)}`;
      if (value(r, 'main', 6) !== BigInt(-ECHILD)) return `the child was reported twice: ${value(r, 'main', 6)}`;
      return null;
    }
    if (attach !== 0n) return `PTRACE_ATTACH returned ${attach}`;
    if (first !== 0x137fn) return `wait4 status ${first}, neither the attach stop 0x137f nor the exit 0x700`;
    if (value(r, 'main', 5) !== 0n) return `PTRACE_CONT returned ${value(r, 'main', 5)}`;
    if (value(r, 'main', 6) !== c || value(r, 'main', 7) !== 0x700n) return `after the stop: wait4 ${value(r, 'main', 6)}, status ${value(r, 'main', 7)}`;
    return null;
  },
};

const KILL: LockstepCase = {
  name: 'SIGKILL on CPU 0 against PTRACE_PEEKDATA on CPU 1 of the frozen tracee',
  processes: [{
    cpu: 1,
    program: {
      main: [
        { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'buf' }, // 0
        sc('pipe', '$buf'), // 1: A (3, 4)
        { op: 'store', addr: '$buf+64', value: 0x7777 }, // 2
        { op: 'syscall', name: 'fork', args: [], into: 'c', cpu: 1, child: [sc('read', 3, '$buf+256', 4), { op: 'load', addr: '$buf+64' }] }, // 3
        { op: 'syscall', name: 'ptrace', args: [PTRACE_ATTACH, '$c', 0, 0] }, // 4
        sc('wait4', '$c', '$buf+128', 0, 0), // 5
        { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], cpu: 0, child: [sc('kill', '$c', 9)] }, // 6
        { op: 'syscall', name: 'ptrace', args: [PTRACE_PEEKDATA, '$c', '$buf+64', '$buf+72'] }, // 7
        sc('wait4', '$c', '$buf+136', 0, 0), // 8
        { op: 'load', addr: '$buf+136', size: 4 }, // 9
        { op: 'load', addr: '$buf+72' }, // 10
      ],
    },
  }],
  racers: [{ cpu: 1, fn: 'main', from: 7 }, { cpu: 0, fn: 'main.6.child', from: 0 }],
  watch: [],
  cpus: 2,
  preemptions: PREEMPTIONS,
  check: (r) => {
    const c = value(r, 'main', 3);
    const peek = value(r, 'main', 7);
    if (peek === 0n) {
      if (value(r, 'main', 10) !== 0x7777n) return `PEEKDATA succeeded but stored ${value(r, 'main', 10)}`;
    } else if (peek !== BigInt(-ESRCH)) return `PEEKDATA returned ${peek}`;
    if (value(r, 'main', 8) !== c || value(r, 'main', 9) !== 9n) return `wait4 ${value(r, 'main', 8)}, status ${value(r, 'main', 9)}: not killed by SIGKILL`;
    if (r.k.log.some((x) => x.fn === 'main.3.child' && x.index === 1)) return 'the tracee ran its load after the SIGKILL';
    return null;
  },
};

test(`lockstep, every interleaving: ${POKE.name}`, (t) => {
  const r = lockstep(POKE);
  t.diagnostic(`${r.interleavings} interleavings (every one with at most ${POKE.preemptions} preemptions), window up to ${r.longest} steps, ${r.ms.toFixed(0)} ms`);
  assert.ok(r.failed === 0, describeFindings(POKE, r));
  assert.ok(r.interleavings >= 2, `${r.interleavings} interleaving(s): the racers never raced`);
});

test(`lockstep, every interleaving: ${ATTACH.name}; some attach and stop it, some find a zombie`, (t) => {
  let stopped = 0;
  let exited = 0;
  const r = lockstep(ATTACH, (run) => {
    if (value(run, 'main', 4) === 0x137fn) stopped++;
    else exited++;
  });
  t.diagnostic(`${r.interleavings} interleavings, ${stopped} stopping the child, ${exited} finding it exited, ${r.ms.toFixed(0)} ms`);
  assert.ok(r.failed === 0, describeFindings(ATTACH, r));
  assert.ok(stopped > 0, 'the attach never stopped the child');
  assert.ok(exited > 0, 'the child never exited first');
});

test(`lockstep, every interleaving: ${KILL.name}; some refuse the request, some hold the kill until it ends`, (t) => {
  let refused = 0;
  let held = 0;
  const r = lockstep(KILL, (run) => {
    if (value(run, 'main', 7) === 0n) held++;
    else refused++;
  });
  t.diagnostic(`${r.interleavings} interleavings, ${refused} with -ESRCH, ${held} with the PEEKDATA done, ${r.ms.toFixed(0)} ms`);
  assert.ok(r.failed === 0, describeFindings(KILL, r));
  assert.ok(refused > 0, 'SIGKILL never came before the request');
  assert.ok(held > 0, 'the request never ran before the SIGKILL');
});
