/**
 * Every built-in scenario on the host kernel: either the host cannot run it and says why (a
 * configuration that differs by design, each item with its place), or everything compared
 * agrees with isolab's run: no divergence, no trouble. Schedule-dependent differences (a race
 * scenario's schedule, which the host does not reproduce) are allowed and listed.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runOnHost } from '../../src/host/host.js';
import { compileScenarioFile } from '../../src/scenario/index.js';
import { hostTestSkipReason } from './helpers.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SKIP = hostTestSkipReason();
const FILES = readdirSync(join(ROOT, 'scenarios')).filter((f) => f.endsWith('.yaml')).sort();

for (const f of FILES) {
  test(`built-in scenario ${f} agrees on the host or is named not runnable`, SKIP ? { skip: `isolab host cannot run here: ${SKIP}` } : {}, async () => {
    const r = await runOnHost(compileScenarioFile(join('scenarios', f)));
    if (!r.ran) {
      assert.ok(r.blocking.length > 0);
      for (const b of r.blocking) assert.match(b.where, /^scenarios\/[\w-]+\.yaml:\d+:\d+$/, `${b.what} is named with its place`);
      return;
    }
    assert.equal(r.trouble, undefined);
    assert.deepEqual(r.comparison!.divergences, []);
    assert.ok(r.comparison!.agreed > 0, 'something was compared');
    assert.ok(r.agreed);
  });
}
