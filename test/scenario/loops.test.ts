/**
 * while and until: a loop in the program (a compare and a conditional jump at its head, a jump
 * back at its end), bounded by max iterations: a loop that would run longer gives up, goes on
 * after its end, and fails its own verdict instead of hanging. Expected counts are worked by
 * hand from the conditions.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ScenarioError } from '../../src/errors.js';
import { compileScenarioText } from '../../src/scenario/index.js';
import { runScenario, type Verdict } from '../../src/scenario/run.js';

function verdicts(text: string): Verdict[] {
  return runScenario(compileScenarioText(text, 'loop.yaml')).verdicts;
}

test('while counts to 5, until counts down to 0, and each says how many iterations ran', () => {
  const v = verdicts(`processes:
  - name: p
    ops:
      - set: { i: 0, j: 3 }
      - while:
          cond: $i < 5
          ops:
            - set: { i: $i + 1 }
      - until:
          cond: $j == 0
          ops:
            - set: { j: $j - 1 }
      - while:
          cond: 0
          ops:
            - set: { never: 1 }
expect:
  registers:
    - { thread: p, vars: { i: 5, j: 0 } }
`);
  assert.deepEqual(v.map((x) => [x.status, x.actual]), [
    ['held', 'ended after 5 iterations'],
    ['held', 'ended after 3 iterations'],
    ['held', 'ended after 0 iterations'],
    ['held', '$i = 5, $j = 0'],
  ]);
  assert.equal(v[0].expected, 'while $i < 5: ends within 1000 iterations');
});

test('a loop whose condition never ends gives up after max iterations, with a failed verdict, and the program goes on', () => {
  const v = verdicts(`processes:
  - name: p
    ops:
      - while:
          cond: 1
          max: 10
          ops:
            - getpid: {}
              expect: 1
      - getpid: {}
        as: after
expect:
  registers:
    - { thread: p, vars: { after: 1 } }
`);
  // In file order: the loop's own verdict (at its key), getpid's, the registers.
  assert.deepEqual(v.map((x) => x.status), ['failed', 'held', 'held']);
  assert.equal(v[0].actual, 'the condition still held after 10 iterations: the loop gave up');
  assert.equal(v[1].actual, 'returned 1 (all 10 times)');
});

test('a thread spins until a flag in shared memory is set, one load per iteration; a handler loops too', () => {
  const text = `machine: { cpus: 2 }
processes:
  - name: p
    handlers:
      SIGUSR1: { handler: h }
    functions:
      h:
        - set: { n: 0 }
        - while:
            cond: $n < 3
            ops:
              - store: { addr: $buf + 8, value: $n + 1 }
              - set: { n: $n + 1 }
        - return
    setup:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }
        as: buf
    threads:
      - name: t
        cpu: 1
        ops:
          - set: { v: 0 }
          - until:
              cond: $v == 42
              max: 100000
              ops:
                - load: $buf
                  as: v
    ops:
      - work: 50
      - store: { addr: $buf, value: 42 }
      - kill: { pid: 0, sig: SIGUSR1 }
      - load: $buf + 8
        expect: 3
expect:
  registers:
    - { thread: t, vars: { v: 42 } }
`;
  for (const seed of [1, 2, 3]) {
    const v = verdicts(text.replace('machine:', `schedule: { seed: ${seed} }\nmachine:`));
    assert.deepEqual(v.filter((x) => x.status !== 'held'), [], `seed ${seed}`);
    assert.equal(v.length, 4);
  }
});

test('a loop without its condition, with a max out of range, or with an unknown name is an error at its place', () => {
  const bad = (loop: string): ScenarioError => {
    try {
      compileScenarioText(`processes:\n  - name: p\n    ops:\n      - ${loop}\n`, 'bad.yaml');
    } catch (e) {
      assert.ok(e instanceof ScenarioError);
      return e;
    }
    assert.fail('accepted');
  };
  assert.match(bad('while: { ops: [ getpid ] }').issues[0].message, /cond/);
  const max = bad('while: { cond: 1, max: 0, ops: [ getpid ] }').issues[0];
  assert.equal(max.col, 32); // the 0 of max: 0
  const name = bad('until: { cond: $nope == 1, ops: [ getpid ] }').issues[0];
  assert.deepEqual([name.line, name.col], [4, 24]); // the $ of $nope
  assert.match(name.message, /\$nope is not defined/);
  assert.match(bad('while: { cond: 1, ops: [ getpid ] }\n        expect: 1').issues[0].message, /no result to expect/);
});
