/**
 * The README's example is examples/translate.ts, verbatim, and prints what the SDM says:
 * a user read of a present user page translates; a user write to a read-only page is #PF with
 * P|W|U (7) and CR2 = the address; a supervisor read of a user page under SMAP is #PF with P (1)
 * unless RFLAGS.AC is set.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

test('the README shows examples/translate.ts verbatim', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const example = readFileSync(join(root, 'examples', 'translate.ts'), 'utf8');
  const block = readme.match(/```ts example=examples\/translate\.ts\n([\s\S]*?)```/);
  assert.ok(block, 'README has a ```ts example=examples/translate.ts block');
  assert.equal(block[1], example.replace("from '../src/index.js'", "from 'isolab'"));
});

test('the example prints the SDM\'s answers', () => {
  const out = execFileSync(process.execPath, [join(root, 'dist', 'examples', 'translate.js')], { encoding: 'utf8' }).trim().split('\n');
  assert.equal(out[0], String(0x100234));
  assert.equal(out[1], 'null');
  assert.equal(out[2], `{ vector: 14, errorCode: 7, cr2: ${0x7f0000001234n}n }`);
  assert.equal(out[3], 'null');
  assert.equal(out[4], String(0x100234));
  assert.match(out[5], /^\[ '[0-9a-f]+27', '[0-9a-f]+27', '[0-9a-f]+27', '100025' \]$/, 'tables: P RW US A; leaf: P US A, frame 0x100');
});

test('the README shows examples/fork-cow.ts verbatim, and it prints what fork(2) promises', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const example = readFileSync(join(root, 'examples', 'fork-cow.ts'), 'utf8');
  const block = readme.match(/```ts example=examples\/fork-cow\.ts\n([\s\S]*?)```/);
  assert.ok(block, 'README has a ```ts example=examples/fork-cow.ts block');
  assert.equal(block[1], example.replace("from '../src/index.js'", "from 'isolab'"));
  const out = execFileSync(process.execPath, [join(root, 'dist', 'examples', 'fork-cow.js')], { encoding: 'utf8' }).trim().split('\n');
  // The child sees its own write; the parent keeps the value from before the fork; only the child's write copies.
  assert.deepEqual(out, ['tid 2 read 2', 'tid 1 read 1', 'tid 2 copied the page', 'page counts consistent']);
});

test('the README shows scenarios/fork-cow.yaml verbatim, and what isolab run prints for it', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const file = readme.match(/```yaml file=scenarios\/fork-cow\.yaml\n([\s\S]*?)```/);
  assert.ok(file, 'README has a ```yaml file=scenarios/fork-cow.yaml block');
  assert.equal(file[1], readFileSync(join(root, 'scenarios', 'fork-cow.yaml'), 'utf8'));
  const shown = readme.match(/```text run=scenarios\/fork-cow\.yaml\n([\s\S]*?)```/);
  assert.ok(shown, 'README has a ```text run=scenarios/fork-cow.yaml block');
  const out = execFileSync(process.execPath, [join(root, 'dist', 'src', 'cli', 'main.js'), 'run', 'scenarios/fork-cow.yaml'], { cwd: root, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  assert.equal(shown[1], out, 'the README shows the current output');
  assert.match(out, /#PF write 0x[0-9a-f]+ \(P W U\) → copied/, "the child's store is a write-protect fault that copies");
  assert.match(out, /11 of 11 expectations held/);
});
