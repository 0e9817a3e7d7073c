/**
 * The expectation forms beyond an exact value: `not`, `min` and `max` (unsigned 64-bit), and
 * `faulted` + `then`, an operation that takes a signal whose handler removes the cause (here
 * mprotect, as the mm selftests' handlers do) and then, re-executed when the handler returns
 * (rt_sigreturn restores the interrupted rip: the faulting instruction runs again), completes.
 * Expected outcomes: getpid of the first process is 1; a fresh anonymous page reads 0; an
 * access to a PROT_NONE page is SIGSEGV with SEGV_ACCERR at the address (mm/fault.c's
 * access_error, arch/x86/mm/fault.c bad_area_access_error).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileScenarioText } from '../../src/scenario/index.js';
import { runScenario, type Verdict } from '../../src/scenario/run.js';
import { issueAt } from './issue-at.js';

function verdicts(text: string): Verdict[] {
  return runScenario(compileScenarioText(text, 'x.yaml')).verdicts;
}

const MMAP = (name: string, prot: string): string => `      - mmap: { len: PAGE_SIZE, prot: ${prot}, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }
        as: ${name}
`;

test('not, min and max hold and fail on the value, unsigned', () => {
  const v = verdicts(`processes:
  - name: p
    ops:
${MMAP('buf', 'PROT_READ|PROT_WRITE')}        expect: { min: 0x10000, max: 0x7ffffffff000 }
      - getpid: {}
        expect: { not: 0 }
      - getpid: {}
        expect: { min: 1, max: 1 }
      - getpid: {}
        expect: { not: 1 }
      - getpid: {}
        expect: { min: 2 }
      - munmap: { addr: 1, len: PAGE_SIZE }
        expect: { max: 100 }
      - load: $buf
        expect: { max: 0 }
`);
  assert.deepEqual(v.map((x) => x.status), ['held', 'held', 'held', 'failed', 'failed', 'failed', 'held']);
  assert.match(v[3].actual, /returned 1 \(expected a value other than 1\)/);
  assert.match(v[4].actual, /expected at least 2/);
  assert.match(v[5].actual, /-EINVAL/); // -22 is 0xffffffffffffffea unsigned: above 100
});

const FAULTING = (handler: string, expect: string, extra = ''): string => `processes:
  - name: p
    handlers:
      SIGSEGV: { handler: fix }
    functions:
      fix:
${handler}
    ops:
${MMAP('p', 'PROT_NONE')}      - load: $p + 8
        expect: ${expect}
${extra}`;

const MPROTECT = `        - mprotect: { start: $si_addr & ~(PAGE_SIZE - 1), len: PAGE_SIZE, prot: PROT_READ }
        - return`;

test('faulted, then: the fault and the completion after the handler both recorded and judged', () => {
  const ok = verdicts(FAULTING(MPROTECT, '{ faulted: { signal: SIGSEGV, si_code: SEGV_ACCERR, si_addr: $p + 8 }, then: 0 }'));
  assert.equal(ok.length, 1);
  assert.equal(ok[0].status, 'held', ok[0].actual);
  assert.equal(ok[0].expected, 'load [$p + 8]: faulted: { signal: SIGSEGV, si_code: SEGV_ACCERR, si_addr: $p + 8 }, then: 0');
  assert.match(ok[0].actual, /^SIGSEGV with si_code SEGV_ACCERR, si_addr 0x[0-9a-f]+008, then value 0$/);

  const wrongValue = verdicts(FAULTING(MPROTECT, '{ faulted: { signal: SIGSEGV }, then: 42 }'));
  assert.equal(wrongValue[0].status, 'failed');
  assert.match(wrongValue[0].actual, /^SIGSEGV .*, then value 0$/);

  const wrongCode = verdicts(FAULTING(MPROTECT, '{ faulted: { signal: SIGSEGV, si_code: SEGV_MAPERR }, then: 0 }'));
  assert.equal(wrongCode[0].status, 'failed');
  assert.match(wrongCode[0].actual, /expected si_code SEGV_MAPERR/);
});

test('faulted, then fails when the operation never faulted, or never ran again', () => {
  const noFault = verdicts(`processes:
  - name: p
    ops:
${MMAP('p', 'PROT_READ')}      - load: $p
        expect: { faulted: { signal: SIGSEGV }, then: 0 }
`);
  assert.equal(noFault[0].status, 'failed');
  assert.equal(noFault[0].actual, 'value 0 without faulting first');

  const longjmp = verdicts(FAULTING('        - longjmp', '{ faulted: { signal: SIGSEGV }, then: 0 }'));
  assert.equal(longjmp[0].status, 'failed');
  assert.match(longjmp[0].actual, /never ran again to completion$/);

  const killed = verdicts(`processes:
  - name: p
    ops:
${MMAP('p', 'PROT_NONE')}      - store: { addr: $p, value: 1 }
        expect: { faulted: { signal: SIGSEGV }, then: { success: true } }
`);
  assert.equal(killed[0].status, 'failed');
});

test('expectation forms that cannot hold are errors at their key', () => {
  const op = (expect: string, what = 'getpid: {}'): string => `processes:\n  - name: p\n    ops:\n      - ${what}\n        expect: ${expect}\n`;
  issueAt(op('{ min: -10, max: 10 }'), 'max', 'leave no value');
  issueAt(op('{ value: 1, not: 2 }'), 'not', 'cannot go with value');
  issueAt(op('{ not: 1 }', 'store: { addr: 0x1000, value: 1 }'), 'not', 'gives no value');
  issueAt(op('{ then: 1 }'), 'then', 'then follows faulted');
  issueAt(op('{ faulted: { signal: SIGSEGV } }', 'load: 0x1000'), 'faulted', 'faulted needs then');
  issueAt(op('{ faulted: { signal: SIGSEGV }, then: 1 }'), 'faulted', 'a syscall does not fault');
  issueAt(op('{ faulted: { signal: SIGSEGV }, then: 1, not: 2 }', 'load: 0x1000'), 'not', 'move not into then');
  issueAt(op('{ faulted: { signal: SIGSEGV }, then: { signal: SIGBUS } }', 'load: 0x1000'), 'then', 'cannot expect a signal');
});
