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
