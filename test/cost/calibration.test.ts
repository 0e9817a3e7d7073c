/**
 * The cost model's calibration (src/cost/calibration.ts, calibration/*.yaml), each target held
 * to the tolerance the project set for it, written here, against the published figures:
 *
 * - V1, Brendan Gregg, "KPTI/KAISER Meltdown Initial Performance Regressions" (2018-02-09):
 *   about 2 % at 50,000 syscalls a second per CPU and under 0.5 % at 10,000 (PCID, a small
 *   working set; 0.4 % on the straight line through the origin); at 5,000 a second with a
 *   large working set, 2.1 % without PCID and about 0.5 % with it. Within ±30 % relative, or
 *   ±0.5 percentage points for figures below 2 %.
 * - V2, Andy Lutomirski, commit 10af6235e0d3 (Linux 4.14): an eventfd ping-pong between two
 *   processes on one CPU, 1.22 µs with PCID against 1.33 µs without; each side touching 512
 *   pages an iteration, 1.8 µs against 6.2 µs. Within ±15 %.
 *
 * Also: docs/measure.md's calibration table is the model's, as `npm run docs:calibration` makes it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { calibrateV1, calibrateV2, type CalibrationPoint } from '../../src/cost/calibration.js';
import { CAL_BEGIN, CAL_END, calibrationMarkdown } from '../../src/cost/doc.js';

const v1 = calibrateV1();
const v2 = calibrateV2();
const at = (points: CalibrationPoint[], label: string): number => {
  const p = points.find((x) => x.label === label);
  assert.ok(p, label);
  return p.model;
};
const relative = (model: number, published: number, tol: number, what: string): void =>
  assert.ok(Math.abs(model - published) <= tol * published, `${what}: ${model.toFixed(3)} against ${published}, beyond ±${tol * 100} %`);
const points = (model: number, published: number, pp: number, what: string): void =>
  assert.ok(Math.abs(model - published) <= pp, `${what}: ${model.toFixed(3)} % against ${published} %, beyond ±${pp} points`);

test('V1: PTI with PCID and a small working set costs about 2 % at 50,000 syscalls a second (±30 %)', () => {
  relative(at(v1, 'PCID, 4 pages, 50k syscalls/s'), 2.0, 0.3, 'PCID at 50k/s');
});

test('V1: under 0.5 % at 10,000 syscalls a second (0.4 % ± 0.5 points), and the overhead grows with the rate', () => {
  const m = at(v1, 'PCID, 4 pages, 10k syscalls/s');
  points(m, 0.4, 0.5, 'PCID at 10k/s');
  assert.ok(m < 0.5 && m < at(v1, 'PCID, 4 pages, 50k syscalls/s'));
});

test('V1: at 5,000 syscalls a second with a large working set, 2.1 % without PCID (±30 %) and about 0.5 % with it (±0.5 points)', () => {
  relative(at(v1, 'no PCID, large working set, 5k syscalls/s'), 2.1, 0.3, 'no PCID, large');
  points(at(v1, 'PCID, large working set, 5k syscalls/s'), 0.5, 0.5, 'PCID, large');
});

test('V2: the ping-pong round trips with and without PCID, touching nothing and 512 pages (±15 %)', () => {
  relative(at(v2, 'pcid, no touch'), 1.22, 0.15, 'PCID, no touch');
  relative(at(v2, 'nopcid, no touch'), 1.33, 0.15, 'no PCID, no touch');
  relative(at(v2, 'pcid, 512 pages'), 1.8, 0.15, 'PCID, 512 pages');
  relative(at(v2, 'nopcid, 512 pages'), 6.2, 0.15, 'no PCID, 512 pages');
  // PCID is the faster side in both.
  assert.ok(at(v2, 'pcid, no touch') < at(v2, 'nopcid, no touch'));
  assert.ok(at(v2, 'pcid, 512 pages') * 2.6 < at(v2, 'nopcid, 512 pages'));
});

test('docs/measure.md: its calibration table is the model\'s (npm run docs:calibration)', () => {
  const doc = readFileSync(new URL('../../../docs/measure.md', import.meta.url), 'utf8');
  const b = doc.indexOf(CAL_BEGIN);
  const e = doc.indexOf(CAL_END);
  assert.ok(b >= 0 && e > b);
  assert.equal(doc.slice(b + CAL_BEGIN.length, e).trim(), calibrationMarkdown([...v1, ...v2]).trim());
});
