/**
 * docs/explore.md says how a search is split and what `isolab merge` checks; its table of the
 * fields merge compares is the code's own (identity.ts IDENTITY_FIELDS), row for row, and the
 * split depths it names are dpor.ts's.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { FULL_LEVELS } from '../../src/explore/dpor.js';
import { IDENTITY_FIELDS } from '../../src/explore/identity.js';

const doc = readFileSync(new URL('../../../docs/explore.md', import.meta.url), 'utf8');

test('docs/explore.md lists every field merge compares, as the error names it, in the order it compares them', () => {
  const start = doc.indexOf('| field | what differs |');
  assert.ok(start >= 0, 'the table of merge\'s fields is there');
  const rows = doc.slice(start, doc.indexOf('\n\n', start)).split('\n').slice(2);
  const listed = rows.map((r) => /^\| `(\w+)` \| (.+?) \|$/.exec(r)).map((m, i) => {
    assert.ok(m, `row ${i + 1} reads | \`field\` | name |: ${rows[i]}`);
    return [m[1], m[2]];
  });
  assert.deepEqual(listed, Object.entries(IDENTITY_FIELDS));
});

test('docs/explore.md gives the split depths the code accepts', () => {
  assert.match(doc, new RegExp(`from 1 to \`FULL_LEVELS\` in src/explore/dpor.ts, which is ${FULL_LEVELS} \\(the default\\)`));
});
