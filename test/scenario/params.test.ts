/**
 * Scenario params (`params:`, `--param`), a repeat's `index`, a repeat count given as an
 * expression, and the `work` operation: what sweeps are written with (docs/measure.md, Sweep;
 * docs/scenario-format.md).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ArgumentError, ScenarioError } from '../../src/errors.js';
import { compileScenarioText } from '../../src/scenario/index.js';
import { runScenario } from '../../src/scenario/run.js';

const TEXT = `params:
  pages: 3
  base: 7
processes:
  - name: p
    setup:
      - mmap: { len: pages * PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }
        as: buf
    ops:
      - repeat: { count: pages, index: i, ops: [ { store: { addr: $buf + i * PAGE_SIZE, value: base + i } } ] }
      - work: 1000 * pages
      - repeat: { count: pages, index: j, ops: [ { load: $buf + j * PAGE_SIZE, expect: base + j } ] }
`;

test('params are constants in values, their defaults overridden by --param', () => {
  const c = compileScenarioText(TEXT, 'p.yaml');
  assert.deepEqual(c.params, { pages: 3, base: 7 });
  const r = runScenario(c);
  assert.equal(r.passed, true, JSON.stringify(r.verdicts));
  const d = compileScenarioText(TEXT, 'p.yaml', { pages: 5, base: 100 });
  assert.deepEqual(d.params, { pages: 5, base: 100 });
  const run = runScenario(d, { record: true });
  assert.equal(run.passed, true);
  // Five stores and five loads, each its own operation once the repeats are unrolled; one work operation of 5,000 instructions.
  const ops = run.trace!.filter((x) => x.event.type === 'op').map((x) => (x.event as { record: { op: string; value?: bigint } }).record);
  assert.equal(ops.filter((o) => o.op === 'store').length, 5);
  assert.equal(ops.filter((o) => o.op === 'load').length, 5);
  assert.deepEqual(ops.filter((o) => o.op === 'work').map((o) => o.value), [5000n]);
});

test('a param the scenario lacks, a param that shadows a constant, an index that shadows a param: refused', () => {
  assert.throws(() => compileScenarioText(TEXT, 'p.yaml', { page: 2 }), (e: unknown) => e instanceof ArgumentError && /no param page; its params: pages, base; did you mean pages\?/.test(e.message));
  assert.throws(() => compileScenarioText('processes: [ { name: p, ops: [ getpid ] } ]\n', 'q.yaml', { n: 1 }), (e: unknown) => e instanceof ArgumentError && /has no params/.test(e.message));
  assert.throws(() => compileScenarioText(TEXT.replace('  base: 7', '  PAGE_SIZE: 7'), 'p.yaml'), (e: unknown) => e instanceof ScenarioError && /p\.yaml:3:3: PAGE_SIZE is a constant/.test(e.message));
  assert.throws(() => compileScenarioText(TEXT.replace('index: j', 'index: base'), 'p.yaml'), (e: unknown) => e instanceof ScenarioError && /base is already a param/.test(e.message));
});

test('a repeat count or work beyond its range, or known only at run time: refused at its position', () => {
  assert.throws(() => compileScenarioText(TEXT, 'p.yaml', { pages: 200000 }), (e: unknown) => e instanceof ScenarioError && /a repeat count is from 0 to 100000/.test(e.message));
  assert.throws(() => compileScenarioText(TEXT.replace('work: 1000 * pages', 'work: $buf'), 'p.yaml'), (e: unknown) => e instanceof ScenarioError && /p\.yaml:11:\d+: a number of instructions must be known when the file is loaded/.test(e.message));
  assert.throws(() => compileScenarioText(TEXT.replace('work: 1000 * pages', 'work: 0 - 1'), 'p.yaml'), (e: unknown) => e instanceof ScenarioError && /a number of instructions is from 0/.test(e.message));
  assert.throws(() => compileScenarioText(TEXT.replace('value: base + i', 'value: base + k'), 'p.yaml'), (e: unknown) => e instanceof ScenarioError && /unknown constant k/.test(e.message));
});
