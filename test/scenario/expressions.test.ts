/**
 * Values with several run-time terms: C's operators and precedence on uint64_t, evaluated when
 * the operation runs, and folded when the file is loaded where every term is constant; both
 * give what C gives. The expected values were host-checked: a C program computing the same
 * expressions on uint64_t variables (x86-64, cc -O0) printed them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ArgumentError } from '../../src/errors.js';
import { foldExpr } from '../../src/scenario/expr.js';
import { compileScenarioText } from '../../src/scenario/index.js';
import { runScenario } from '../../src/scenario/run.js';
import { ProgramImage } from '../../src/user/program.js';
import { issueAt } from './issue-at.js';

/** The operands: a=1, b=2, k=3, pkru=0x55555554, x=0x7f0000001000, m7=(uint64_t)-7, big=0xfffffffffffffff0. */
const VARS: [string, bigint][] = [['a', 1n], ['b', 2n], ['k', 3n], ['pkru', 0x55555554n], ['x', 0x7f0000001000n], ['m7', -7n], ['big', 0xfffffffffffffff0n]];

/** Each expression and what C printed for it (host-checked). */
const CASES: [string, bigint][] = [
  ['$pkru | 3 << 2*$k', 0x555555d4n],
  ['$a - $b', 0xffffffffffffffffn],
  ['($x & 0xfff) == 0', 1n],
  ['$x & 0xfff == 0', 0n], // C's precedence: == binds tighter than &
  ['$m7 / 2', 0x7ffffffffffffffcn],
  ['$m7 % 10', 9n],
  ['$m7 > $a', 1n], // unsigned: (uint64_t)-7 is large
  ['$big * 3', 0xffffffffffffffd0n],
  ['!$x + ~$a', 0xfffffffffffffffen],
  ['$a < $b && $b <= 2 || 0', 1n],
  ['$big >> 4 ^ $k << 62', 0xcfffffffffffffffn],
  ['1 | 2 == 2', 1n],
  ['-$k', 0xfffffffffffffffdn],
];

test('constant folding gives what C gives on uint64_t', () => {
  const names = new Map(VARS);
  for (const [text, want] of CASES) {
    const folded = foldExpr(text.replace(/\$/g, ''), names);
    assert.equal(folded.ref, undefined, text);
    assert.equal(BigInt.asUintN(64, folded.constant), want, text);
  }
});

test('run-time expressions in a program give what C gives on uint64_t', () => {
  const lit = (v: bigint): string => (v < 0n ? String(v) : `'0x${v.toString(16)}'`);
  const sets = VARS.map(([n, v]) => `      - set: { ${n}: ${lit(v)} }`).join('\n');
  const exprs = CASES.map(([text], i) => `      - set: { r${i}: '${text}' }`).join('\n');
  const want = CASES.map(([, v], i) => `r${i}: ${lit(v)}`).join(', ');
  const text = `processes:
  - name: p
    ops:
${sets}
${exprs}
expect:
  registers:
    - { thread: p, vars: { ${want} } }
`;
  const r = runScenario(compileScenarioText(text, 'expr.yaml'));
  assert.deepEqual(r.verdicts.filter((v) => v.status !== 'held'), []);
  assert.equal(r.verdicts.length, 1);
});

test('a wrong expected value fails the verdict', () => {
  const text = `processes:
  - name: p
    ops:
      - set: { a: 5, b: 7 }
      - set: { c: $a * $b + 1 }
      - getpid: {}
        expect: { value: $c - 35 }
expect:
  registers:
    - { thread: p, vars: { c: 35 } }
`;
  const r = runScenario(compileScenarioText(text, 'expr.yaml'));
  const byKind = Object.fromEntries(r.verdicts.map((v) => [v.kind, v.status]));
  assert.equal(byKind.registers, 'failed'); // c is 36
  assert.equal(byKind.op, 'held'); // getpid of the first process is 1 = 36 - 35
});

test('an expression operand that divides by 0 raises #DE: SIGFPE with FPE_INTDIV (exc_divide_error)', () => {
  const text = `processes:
  - name: p
    ops:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }
        as: buf
      - set: { z: 0 }
      - store: { addr: $buf, value: 100 / $z }
        expect: { signal: SIGFPE, si_code: FPE_INTDIV }
expect:
  exit: { p: SIGFPE }
`;
  const r = runScenario(compileScenarioText(text, 'div.yaml'));
  assert.deepEqual(r.verdicts.filter((v) => v.status !== 'held'), []);
  assert.equal(r.verdicts.length, 2);
});

test('a bad expression is an error at its column', () => {
  const pre = `processes:
  - name: p
    ops:
      - set: { a: 5 }
`;
  issueAt(`${pre}      - set: { b: $a +* 2 }\n`, '* 2', 'unexpected "*"');
  issueAt(`${pre}      - set: { b: $a / (2 - 2) }\n`, '(2 - 2)', 'division by zero');
  issueAt(`${pre}      - set: { b: $a << 64 }\n`, '64', 'shift count 64');
  issueAt(`${pre}      - set: { b: ($a + 1 }\n`, '1 }', 'expected )', 1); // just after the value
  issueAt(`${pre}      - set: { b: $a * $nope }\n`, '$nope', '$nope is not defined');
});

test('the TypeScript API takes expression strings, and refuses a bad one with ArgumentError', () => {
  const img = new ProgramImage('p', { main: [{ op: 'set', var: 'b', value: '$a * 2 + @h' }], functions: { h: [] } });
  assert.equal(img.byName.get('main')!.values[0]!.kind, 5);
  const constant = new ProgramImage('p', { main: [{ op: 'set', var: 'b', value: '(1 << 4) | 1' }] });
  assert.deepEqual([constant.byName.get('main')!.values[0]!.kind, constant.byName.get('main')!.values[0]!.constant], [0, 17n]);
  assert.throws(() => new ProgramImage('p', { main: [{ op: 'set', var: 'b', value: '$a + + ' }] }), ArgumentError);
  assert.throws(() => new ProgramImage('p', { main: [{ op: 'set', var: 'b', value: '$a + @nofn' }] }), /no function named nofn/);
});
