/**
 * docs/scenario-format.md holds the scenario format's reference, and its YAML examples must be
 * what the code accepts. Every ```yaml block with a top-level `processes:` key compiles; a block
 * whose first line is `# error: FRAGMENT` is a broken example and must fail with a
 * ScenarioError whose message contains FRAGMENT. Fragments (snippets without `processes:`) are
 * skipped.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ScenarioError } from '../../src/errors.js';
import { compileScenarioText } from '../../src/scenario/index.js';
import { EVENT_KINDS } from '../../src/scenario/events.js';
import { KERNEL_OPTION_SPECS } from '../../src/kernel/options.js';
import { CONST_BEGIN, CONST_END, constantGroups, formatDoc, formatReadme, README_BEGIN, README_END, SYSCALL_BEGIN, SYSCALL_END, uapiSource } from '../../src/scenario/doc.js';
import { region } from '../../src/docregion.js';
import { CONSTANTS } from '../../src/scenario/expr.js';
import { ERRNO_NAMES } from '../../src/kernel/uapi.js';
import { syscallEntries } from '../../src/kernel/syscalls.js';

const FILE = 'docs/scenario-format.md';
const doc = readFileSync(new URL('../../../docs/scenario-format.md', import.meta.url), 'utf8');

interface Block {
  /** 1-based line of the block's first line of YAML in the document. */
  line: number;
  text: string;
}

/** Every ```yaml fenced block (the info string may carry more words after `yaml`). */
function yamlBlocks(markdown: string): Block[] {
  const blocks: Block[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (!/^```yaml(\s|$)/.test(lines[i])) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !/^```\s*$/.test(lines[end])) end++;
    assert.ok(end < lines.length, `the yaml block at line ${i + 1} of ${FILE} is not closed`);
    blocks.push({ line: start + 1, text: lines.slice(start, end).join('\n') + '\n' });
    i = end;
  }
  return blocks;
}

const blocks = yamlBlocks(doc);
const ERROR = /^#\s*error:\s*(.+?)\s*$/;

test(`${FILE} has complete examples and broken ones`, () => {
  assert.ok(blocks.length > 0, 'no ```yaml blocks');
  assert.ok(blocks.filter((b) => /^processes:/m.test(b.text) && !ERROR.test(b.text.split('\n')[0])).length >= 5, 'fewer than five complete scenarios');
  assert.ok(blocks.filter((b) => ERROR.test(b.text.split('\n')[0])).length >= 4, 'fewer than four broken examples');
});

for (const b of blocks) {
  const first = b.text.split('\n')[0];
  const broken = ERROR.exec(first);
  if (broken) {
    const fragment = broken[1];
    test(`${FILE}:${b.line}: the broken example fails with "${fragment}"`, () => {
      assert.throws(
        () => compileScenarioText(b.text, FILE),
        (e: unknown) => {
          assert.ok(e instanceof ScenarioError, `expected a ScenarioError, got ${String(e)}`);
          assert.ok(e.message.includes(fragment), `the message lacks ${JSON.stringify(fragment)}:\n${e.message}`);
          return true;
        },
      );
    });
  } else if (/^processes:/m.test(b.text)) {
    test(`${FILE}:${b.line}: the example compiles`, () => {
      try {
        compileScenarioText(b.text, FILE);
      } catch (e) {
        if (e instanceof ScenarioError) assert.fail(`the example at line ${b.line} does not compile:\n${e.message}`);
        throw e;
      }
    });
  }
}

test(`${FILE} lists every event kind an expectation may count, with its fields`, () => {
  const start = doc.indexOf('| kind | what it records | fields |');
  assert.ok(start >= 0, 'the event table is there');
  const table = doc.slice(start, doc.indexOf('\n\n', start)).split('\n');
  for (const [kind, spec] of Object.entries(EVENT_KINDS)) {
    const row = table.find((l) => l.startsWith(`| \`${kind}\` |`));
    assert.ok(row, `no row for ${kind} in the event table`);
    for (const [field, f] of Object.entries(spec.fields)) {
      assert.ok(row.includes(`\`${field}\``), `the ${kind} row lacks its field ${field}`);
      // A field with a list of values names them all.
      if (Array.isArray(f.kind)) for (const v of f.kind) assert.ok(new RegExp(`[:,] ${v}(,|;| \\|)`).test(row), `the ${kind} row lacks ${field} value ${v}`);
    }
  }
});

test(`${FILE}: the kernel-option table has every option of KERNEL_OPTION_SPECS, with its type's values and its default`, () => {
  const section = doc.slice(doc.indexOf('### kernel'), doc.indexOf('### schedule'));
  const rows = new Map<string, { type: string; def: string }>();
  for (const m of section.matchAll(/^\| `(\w+)` \| ([^|]+) \| `([^`]*)` \|/gm)) rows.set(m[1], { type: m[2].trim(), def: m[3] });
  assert.deepEqual([...rows.keys()], Object.keys(KERNEL_OPTION_SPECS), 'the options, in the table\'s order');
  for (const [name, spec] of Object.entries(KERNEL_OPTION_SPECS)) {
    const row = rows.get(name)!;
    const def = typeof spec.default === 'number' && name === 'init_pkru' ? `0x${spec.default.toString(16)}` : String(spec.default);
    assert.equal(row.def, def, `${name}: default`);
    if (spec.kind === 'enum') assert.equal(row.type, spec.values.map((v) => `\`${v}\``).join(', '), `${name}: values`);
    else assert.ok(row.type.startsWith(spec.kind), `${name}: type ${row.type}, spec ${spec.kind}`);
  }
});

test(`${FILE}: the constants and the syscall table are the model's own (npm run docs:format writes them)`, () => {
  assert.equal(formatDoc(doc), doc, `${FILE} differs from what npm run docs:format writes: run it`);
  // What the regions must hold, from the tables themselves: every constant a value may name, and every syscall with each of its arguments.
  const constants = region(doc, CONST_BEGIN, CONST_END)!;
  for (const name of CONSTANTS.keys()) assert.ok(constants.includes(`\`${name}\``), `the list lacks ${name}`);
  const syscalls = region(doc, SYSCALL_BEGIN, SYSCALL_END)!;
  for (const e of syscallEntries()) {
    const row = syscalls.split('\n').find((l) => l.startsWith(`| ${e.nr} | \`${e.name}\` |`));
    assert.ok(row, `no row for ${e.name}`);
    for (const a of e.args) assert.ok(row.includes(`\`${a}\``), `${e.name}'s row lacks ${a}`);
  }
});

test('README.md lists every syscall of the model, and no other (npm run docs:format writes the list)', () => {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
  assert.equal(formatReadme(readme), readme, 'README.md differs from what npm run docs:format writes: run it');
  const list = region(readme, README_BEGIN, README_END)!;
  const named = [...list.matchAll(/`(\w+)`/g)].map((m) => m[1]);
  assert.deepEqual(named, syscallEntries().sort((a, b) => a.nr - b.nr).map((e) => e.name));
  assert.ok(list.includes(`The ${named.length} syscalls`), 'the count is stated');
});

test('every constant a value may name lies in one section of src/kernel/uapi.ts', () => {
  const groups = constantGroups(uapiSource());
  const named = groups.flatMap((g) => g.names);
  assert.equal(new Set(named).size, named.length);
  assert.deepEqual(new Set([...named, 'PAGE_SIZE']), new Set(CONSTANTS.keys()));
  // The errno section and the names traces print agree.
  const errnos = groups.find((g) => g.title === 'errno')!.names;
  assert.deepEqual(Object.fromEntries(errnos.map((n) => [String(CONSTANTS.get(n)), n])), { ...ERRNO_NAMES });
  assert.throws(() => constantGroups('export const EPERM = 1;\n'), /comes before the first section header/);
  assert.throws(() => constantGroups('// ---- errno (errno.h) ----\nexport const EPERM = 1;\n'), /not found in src\/kernel\/uapi.ts's sections: .*ENOENT/);
});
