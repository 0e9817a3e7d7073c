/**
 * Every built-in scenario runs with its expectations checked. The expectations are written in
 * the scenario files from the sources each names (Linux's fault, fork, exec and TLB code); a
 * scenario whose schedule is random also runs under other seeds, since its answer must not
 * depend on one interleaving.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { compileScenarioFile, runScenario } from '../../src/scenario/index.js';

const dir = fileURLToPath(new URL('../../../scenarios/', import.meta.url));
const files = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();

test('there is a built-in scenario for each capability of the model', () => {
  assert.ok(files.length >= 7, `only ${files.length} scenarios`);
});

for (const f of files) {
  test(`scenario ${f}: every expectation holds`, () => {
    const c = compileScenarioFile(dir + f);
    assert.ok(c.question, 'a built-in scenario asks a question');
    assert.ok(c.answer, 'and answers it');
    const seeds = c.policy === 'random' ? [undefined, 2, 3, 12345] : [undefined];
    for (const seed of seeds) {
      const r = runScenario(c, { seed });
      assert.ok(r.verdicts.length > 0, 'a scenario checks something');
      const bad = r.verdicts.filter((v) => v.status !== 'held');
      assert.deepEqual(bad, [], `seed ${seed ?? c.seed}`);
      assert.ok(r.finished, 'every task exited');
      assert.ok(!/unknown\)|\(still running\)/.test(r.answer ?? ''), `the answer is filled in: ${r.answer}`);
    }
  });
}
