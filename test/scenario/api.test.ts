/**
 * The same scenario as a plain typed object in the TypeScript API: compiled and judged as a
 * file would be, with paths instead of positions.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileScenario, runScenario, type Scenario } from '../../src/index.js';

test('api: a typed scenario object runs and is judged', () => {
  const scenario: Scenario = {
    machine: { cpus: 2 },
    kernel: { debug_vm: true },
    processes: [
      {
        name: 'parent',
        cpu: 0,
        ops: [
          { mmap: { len: 'PAGE_SIZE', prot: 'PROT_READ|PROT_WRITE', flags: 'MAP_PRIVATE|MAP_ANONYMOUS', fd: -1 }, as: 'buf' },
          { store: { addr: '$buf', value: 5 } },
          { fork: { name: 'child', cpu: 1, ops: [{ load: '$buf', expect: 5 }, { store: { addr: '$buf', value: 6 } }] }, as: 'pid' },
          { wait4: { upid: '$pid' }, expect: '$pid' },
          { load: '$buf', expect: 5 },
          { munmap: { addr: '$buf+1', len: 'PAGE_SIZE' }, expect: { errno: 'EINVAL' } },
        ],
      },
    ],
    expect: { exit: { parent: 0, child: 0 }, invariants: ['debug_checks', 'no_leaks'] },
  };
  const report = runScenario(compileScenario(scenario));
  assert.deepEqual(report.verdicts.filter((v) => v.status !== 'held'), []);
  assert.equal(report.verdicts.length, 4 + 2 + 2, 'four operations, two exit statuses, two invariants');
  const munmap = report.verdicts.find((v) => v.path === 'processes[0].ops[5].expect');
  assert.ok(munmap, 'verdicts carry the path');
  assert.equal(munmap.where, 'processes[0].ops[5].expect', 'without a file, where is the path');
  assert.equal(munmap.actual, 'returned -EINVAL');
});

test('api: a thread created by a clone operation ends with exit(0), not exit_group', () => {
  const scenario: Scenario = {
    machine: { cpus: 2 },
    processes: [
      {
        name: 'main',
        cpu: 0,
        ops: [
          { mmap: { len: 0x10000, prot: 'PROT_READ|PROT_WRITE', flags: 'MAP_PRIVATE|MAP_ANONYMOUS', fd: -1 }, as: 'stack' },
          { clone: { clone_flags: 'CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM', newsp: '$stack+0x10000', name: 'worker', cpu: 1, ops: ['getpid'] } },
          { repeat: { count: 50, ops: ['gettid'] } },
          { getpid: null, expect: { success: true } },
        ],
      },
    ],
    expect: { exit: { main: 0 } },
  };
  const report = runScenario(compileScenario(scenario));
  assert.deepEqual(report.verdicts.filter((v) => v.status !== 'held'), [], 'the main thread ran to its end');
});

test('api: success: false holds for an errno or a signal, and fails for a good result', () => {
  const scenario: Scenario = {
    processes: [
      {
        name: 'p',
        handlers: { SIGSEGV: { handler: 'on_segv' } },
        functions: { on_segv: ['longjmp'] },
        ops: [
          { munmap: { addr: 1, len: 1 }, expect: { success: false } },
          { load: 0, expect: { success: false } },
          { getpid: null, expect: { success: false } },
        ],
      },
    ],
  };
  const report = runScenario(compileScenario(scenario));
  assert.deepEqual(report.verdicts.map((v) => v.status), ['held', 'held', 'failed']);
});
