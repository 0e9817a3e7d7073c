/**
 * docs/see.md's tables come from the code: the keys from web/src/keys.ts (its KEYS table, read
 * by bundling the file with esbuild), the event kinds from src/see/words.ts (the page's own
 * list, web/src/kinds.ts, has the same kinds), the bits from src/see/bits.ts.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';
import { PTE_BITS } from '../../src/see/bits.js';
import { EVENT_KINDS } from '../../src/see/words.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DOC = readFileSync(`${ROOT}docs/see.md`, 'utf8');

/** The text between `<!-- name: ... -->` and `<!-- /name -->`. */
function section(name: string): string {
  const m = new RegExp(`<!-- ${name}:[^>]*-->\\n([\\s\\S]*?)<!-- /${name} -->`).exec(DOC);
  assert.ok(m, `docs/see.md has a ${name} section`);
  return m[1];
}

/** A web/src module's exports (bundled for Node; preact is a dependency). */
async function webModule(file: string): Promise<Record<string, unknown>> {
  const out = buildSync({ entryPoints: [`${ROOT}web/src/${file}`], bundle: true, format: 'esm', platform: 'node', write: false, jsx: 'automatic', jsxImportSource: 'preact', nodePaths: [`${ROOT}node_modules`] });
  return (await import(`data:text/javascript;base64,${Buffer.from(out.outputFiles[0].text).toString('base64')}`)) as Record<string, unknown>;
}

test('docs/see.md: the keys are the page\'s', async () => {
  const { KEYS } = (await webModule('keys.ts')) as { KEYS: { key: string; doc: string }[] };
  const want = ['| key | moves to |', '|---|---|', ...KEYS.map((k) => `| ${k.key} | ${k.doc} |`)].join('\n') + '\n';
  assert.equal(section('keys'), want);
});

test('docs/see.md: the event kinds are the recorder\'s and the page\'s', async () => {
  assert.equal(section('kinds'), `Event kinds on the timeline: ${EVENT_KINDS.join(', ')}.\n`);
  const { KINDS } = (await webModule('kinds.ts')) as { KINDS: string[] };
  assert.deepEqual([...KINDS].sort(), [...EVENT_KINDS].sort());
});

test('docs/see.md: the named bits are bits.ts\'s', () => {
  const bits = PTE_BITS.map((b) => `| ${b.width > 1 ? `${b.bit + b.width - 1}:${b.bit}` : b.bit} | ${b.name} | ${b.where} | ${b.doc} |`);
  assert.equal(section('bits'), ['| bit | name | where | meaning |', '|---|---|---|---|', ...bits].join('\n') + '\n');
});
