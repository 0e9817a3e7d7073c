/**
 * join: pthread_join's wait on a declared thread's tid word (CLONE_PARENT_SETTID puts the tid
 * there before clone returns, CLONE_CHILD_CLEARTID has mm_release zero it and FUTEX_WAKE it).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ScenarioError } from '../../src/errors.js';
import { compileScenarioText } from '../../src/scenario/index.js';
import { runScenario } from '../../src/scenario/run.js';

const run = (text: string) => runScenario(compileScenarioText(text, 'join.yaml'));

test('a join waits for the thread\'s last store; the loaded value is the one the thread stored last', () => {
  const r = run(`machine: { cpus: 2 }
processes:
  - name: p
    setup:
      - mmap: { len: 4096, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS }
        as: buf
    threads:
      - name: worker
        cpu: 1
        ops:
          - work: 500
          - store: { addr: $buf, value: 1 }
          - work: 500
          - store: { addr: $buf, value: 2 }
    ops:
      - join: worker
      - load: $buf
        expect: 2
`);
  const v = r.verdicts;
  assert.deepEqual(v.map((x) => x.status), ['held', 'held'], JSON.stringify(v));
  assert.equal(v[0].expected, 'join worker: ends within 1000 iterations');
});

test('joining a thread that already exited returns at once (the tid word is already 0: no futex wait)', () => {
  const r = run(`processes:
  - name: p
    threads:
      - name: quick
        ops:
          - getpid
    ops:
      - sched_yield
      - join: quick
`);
  assert.deepEqual(r.verdicts.map((x) => [x.status, x.actual]), [['held', 'ended after 0 iterations']]);
});

test('join of an unknown name, or of itself, is a compile error with its place', () => {
  assert.throws(() => compileScenarioText(`processes:
  - name: p
    ops:
      - join: nobody
`, 'bad.yaml'), (e: unknown) => e instanceof ScenarioError && /bad\.yaml:4:\d+.*join needs the name of a thread/s.test(e.message));
  assert.throws(() => compileScenarioText(`processes:
  - name: p
    threads:
      - name: t
        ops:
          - join: t
    ops:
      - getpid
`, 'bad.yaml'), (e: unknown) => e instanceof ScenarioError && /cannot be joined here/.test(e.message));
});
