/**
 * Files that used to end in an internal error, a stack overflow or minutes of work: each is
 * refused before anything runs as a ScenarioError at file:line:col naming the limit, and a fork
 * bomb in a valid scenario gets EAGAIN once the system holds kernel.threads-max tasks, as
 * copy_process gives it (kernel/fork.c: `retval = -EAGAIN; if (nr_threads >= max_threads)`).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ScenarioError, type ScenarioIssue } from '../../src/errors.js';
import { compileScenario, compileScenarioFile, compileScenarioText, runScenario } from '../../src/scenario/index.js';
import { MAX_OPS } from '../../src/scenario/compile.js';
import { MAX_ALIASES, MAX_FILE_BYTES, MAX_NESTING } from '../../src/scenario/load.js';

function position(text: string, needle: string): { line: number; col: number } {
  const at = text.indexOf(needle);
  assert.ok(at >= 0, `fixture lacks ${JSON.stringify(needle)}`);
  const before = text.slice(0, at).split('\n');
  return { line: before.length, col: before[before.length - 1].length + 1 };
}

function issues(text: string): ScenarioIssue[] {
  try {
    compileScenarioText(text, 'bad.yaml');
  } catch (e) {
    assert.ok(e instanceof ScenarioError, `expected a ScenarioError, got ${(e as Error)?.stack ?? String(e)}`);
    return e.issues;
  }
  assert.fail('the scenario was accepted');
}

/** One issue at `want` (the position of a needle, or line and column) whose message holds every fragment. */
function expectIssue(text: string, want: string | { line: number; col: number }, fragments: string[]): void {
  const found = issues(text);
  const pos = typeof want === 'string' ? position(text, want) : want;
  const match = found.find((i) => i.line === pos.line && i.col === pos.col);
  assert.ok(match, `no issue at ${pos.line}:${pos.col}; got ${found.map((i) => `${i.line}:${i.col} ${i.message}`).join(' | ')}`);
  for (const f of fragments) assert.ok(match.message.includes(f), `message ${JSON.stringify(match.message)} lacks ${JSON.stringify(f)}`);
  assert.equal(match.file, 'bad.yaml');
}

const OPS = (ops: string): string => `processes:\n  - name: p\n    ops:\n${ops}`;
/** A file whose forks nest `n` deep, each in the one before's ops. */
const nestedForks = (n: number): string => {
  let s = '';
  for (let i = 0; i < n; i++) s += `${' '.repeat(6 + 6 * i)}- fork:\n${' '.repeat(10 + 6 * i)}ops:\n`;
  return OPS(`${s}${' '.repeat(6 + 6 * n)}- getpid\n`);
};
/** Line and column of the key of the `nth` fork (1-based). */
const forkAt = (nth: number): { line: number; col: number } => ({ line: 4 + 2 * (nth - 1), col: 6 + 6 * (nth - 1) + 3 });

const cases: { name: string; text: string; at: string | { line: number; col: number }; says: string[] }[] = [
  { name: 'a number too large for a double', text: OPS('      - mmap: { len: 1e309 }\n'), at: '1e309', says: ['1e309', 'too large'] },
  { name: '.inf where a number goes', text: OPS('      - mmap: { len: .inf }\n'), at: '.inf', says: ['.inf', 'infinite'] },
  { name: '-.inf where a number goes', text: 'machine:\n  cpus: -.inf\n' + OPS('      - getpid\n'), at: '-.inf', says: ['-.inf', 'infinite'] },
  { name: '.nan where a number goes', text: OPS('      - repeat: { count: .nan, ops: [ getpid ] }\n'), at: '.nan', says: ['.nan', 'not a number'] },
  { name: 'a hexadecimal number with no digits', text: OPS('      - mmap: { len: 0x_ }\n'), at: '0x_', says: ['0x_ has no digits'] },
  { name: 'a binary number with no digits', text: OPS('      - mmap: { len: "PAGE_SIZE+0b_" }\n'), at: '0b_', says: ['0b_ has no digits'] },
  { name: 'an alias with no anchor', text: OPS('      - mmap: { len: *nope }\n'), at: '*nope', says: ['*nope has no anchor', '&nope'] },
  {
    name: 'more than 1,000 aliases',
    text: OPS(`      - repeat: { count: 1, ops: [ &g getpid, ${Array(1000).fill('*g').join(', ')}, *g ] }\n`),
    at: '*g ] }',
    says: ['more than 1000 aliases', 'the limit is 1000'],
  },
  {
    name: 'aliases of lists that hold aliases (an alias bomb)',
    text: OPS(`      - repeat: { count: 1, ops: [ &a [getpid, getpid], &b [${Array(10).fill('*a').join(', ')}], &c [${Array(10).fill('*b').join(', ')}], [${Array(20).fill('*c').join(', ')}] ] }\n`),
    at: '*b',
    says: ['limit of 1000 aliases'],
  },
  { name: 'parentheses nested 20,000 deep', text: OPS(`      - mmap: { len: "${'('.repeat(20000)}1${')'.repeat(20000)}" }\n`), at: { line: 4, col: 22 + 1 + 256 }, says: ['more than 256 deep', 'the limit is 256'] },
  { name: 'unary minus nested 20,000 deep', text: OPS(`      - mmap: { len: "${'-'.repeat(20000)}1" }\n`), at: { line: 4, col: 22 + 1 + 256 }, says: ['more than 256 deep'] },
  { name: 'a shift count that would need gigabytes', text: OPS('      - mmap: { len: "1<<99999999999" }\n'), at: '99999999999', says: ['shift count 99999999999', '0 to 63'] },
  { name: 'flow sequences nested 20,000 deep', text: OPS(`      - mmap: { len: ${'['.repeat(20000)}${']'.repeat(20000)} }\n`), at: { line: 4, col: 22 + 250 } /* six levels hold the value: the 251st [ is the 257th */, says: ['nest more than 256 deep', 'the limit is 256'] },
  { name: 'fork nested 250 deep', text: nestedForks(250), at: forkAt(85) /* four levels hold the first fork and each adds three: the 85th's item is the 257th */, says: ['nest more than 256 deep', 'the limit is 256'] },
  { name: 'an empty file', text: '', at: { line: 1, col: 1 }, says: ['holds no scenario'] },
  { name: 'a file holding only a byte-order mark', text: '\uFEFF', at: { line: 1, col: 1 }, says: ['holds no scenario'] },
  { name: 'a file holding only white space', text: '  \n\n', at: { line: 1, col: 1 }, says: ['holds no scenario'] },
  { name: 'a file holding only a carriage return', text: '\r', at: { line: 1, col: 1 }, says: ['expected a mapping'] },
];

for (const c of cases) {
  test(`limits: ${c.name} is a located ScenarioError`, () => expectIssue(c.text, c.at, c.says));
}

test('limits: 1,000 aliases are allowed', () => {
  const c = compileScenarioText(OPS(`      - repeat: { count: 1, ops: [ &g getpid, ${Array(1000).fill('*g').join(', ')} ] }\n`), 'ok.yaml');
  assert.equal(c.processes[0].program.main.length, 1001);
});

test('limits: parentheses 256 deep and forks 80 deep are allowed', () => {
  compileScenarioText(OPS(`      - mmap: { len: "${'('.repeat(256)}PAGE_SIZE${')'.repeat(256)}" }\n`), 'ok.yaml');
  compileScenarioText(nestedForks(80), 'ok.yaml');
});

test('limits: a scenario object nested 250 forks deep is a ScenarioError with its path', () => {
  let ops: unknown[] = ['getpid'];
  for (let i = 0; i < 250; i++) ops = [{ fork: { ops } }];
  assert.throws(
    () => compileScenario({ processes: [{ name: 'p', ops }] }),
    (e: unknown) => e instanceof ScenarioError && e.issues.length === 1 && e.issues[0].message.includes('the limit is 256') && e.issues[0].path.startsWith('processes[0].ops[0].fork.ops[0]'),
  );
});

test('limits: infinite numbers in a scenario object are refused by the schema', () => {
  assert.throws(
    () => compileScenario({ processes: [{ name: 'p', ops: [{ mmap: { len: Infinity } }] }] }),
    (e: unknown) => e instanceof ScenarioError && e.issues.some((i) => i.path === 'processes[0].ops[0].mmap.len'),
  );
});

test('limits: the operation limit is checked while repeats unroll, at the repeat that crosses it', () => {
  // 10^5 forks of 10^5 getpids each: 10^10 operations once unrolled.
  const text = OPS('      - repeat:\n          count: 100000\n          ops:\n            - fork:\n                ops:\n                  - repeat: { count: 100000, ops: [getpid] }\n');
  const t0 = Date.now();
  expectIssue(text, 'repeat: { count: 100000', ['past 200000 operations', 'the limit is 200000']);
  assert.ok(Date.now() - t0 < 20_000, `took ${Date.now() - t0} ms`);
});

test('limits: the operation limit counts every thread, child and function together', () => {
  const text = OPS('      - repeat: { count: 3, ops: [ { fork: { ops: [ { repeat: { count: 70000, ops: [getpid] } } ] } } ] }\n');
  expectIssue(text, '{ repeat: { count: 70000', ['past 200000 operations']);
});

test('limits: fork gives EAGAIN once the system holds threads_max tasks', () => {
  const text = 'kernel: { threads_max: 4 }\n' + OPS('      - repeat: { count: 3, ops: [ { fork: { ops: [ getpid ] }, expect: { success: true } } ] }\n      - fork: { ops: [ getpid ] }\n        expect: { errno: EAGAIN }\n      - vfork: { ops: [ getpid ] }\n        expect: { errno: EAGAIN }\n');
  const report = runScenario(compileScenarioText(text, 'nproc.yaml'));
  assert.equal(report.verdicts.length, 3);
  for (const v of report.verdicts) assert.equal(v.status, 'held', JSON.stringify(v));
});

test('limits: a fork bomb in a repeat ends quickly with EAGAIN (default threads_max: 2048 on 256 MiB)', () => {
  const text = OPS('      - repeat:\n          count: 3000\n          ops:\n            - fork: { ops: [ getpid ] }\n');
  const t0 = Date.now();
  const report = runScenario(compileScenarioText(text, 'bomb.yaml'));
  const forks = report.timeline.filter((e) => e.kind === 'syscall' && /^fork\(/.test(e.text.trim()));
  const eagain = forks.filter((e) => e.text.includes('-EAGAIN'));
  assert.equal(forks.length, 3000, forks.slice(0, 3).map((e) => e.text).join(' | '));
  // p and its 2047 children (zombies, never reaped) fill the 2048 slots.
  assert.equal(forks.length - eagain.length, 2047);
  assert.ok(Date.now() - t0 < 30_000, `took ${Date.now() - t0} ms`);
});

test('limits: a file beyond 4 MiB is refused at 1:1 before it is parsed, text, file or endless device alike', () => {
  const line = '      - getpid\n';
  const big = OPS(line.repeat(Math.ceil((4 * 1024 * 1024) / line.length) + 1));
  const t0 = performance.now();
  expectIssue(big, { line: 1, col: 1 }, ['4.0 MiB', 'at most', 'repeat']);
  // Refused by its size: parsing 4 MiB of YAML takes seconds, the size check microseconds.
  assert.ok(performance.now() - t0 < 1000, 'refused without parsing');
  const dir = mkdtempSync(join(tmpdir(), 'isolab-limits-'));
  try {
    const file = join(dir, 'big.yaml');
    writeFileSync(file, big);
    assert.throws(() => compileScenarioFile(file), (e: unknown) => e instanceof ScenarioError && e.issues[0].line === 1 && e.issues[0].col === 1 && e.issues[0].file === file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // /dev/zero never ends: read up to the limit and refused, not read until memory runs out.
  assert.throws(() => compileScenarioFile('/dev/zero'), (e: unknown) => e instanceof ScenarioError && /more than 4\.0 MiB/.test(e.issues[0].message));
  // Exactly at the limit the file is parsed: one long comment, quick to read, then refused for what it lacks, not for its size.
  const head = 'name: x\n#';
  const atLimit = head + 'x'.repeat(4 * 1024 * 1024 - head.length);
  assert.ok(!issues(atLimit).some((i) => /MiB/.test(i.message)));
  assert.ok(issues(atLimit + 'x').some((i) => /MiB/.test(i.message)));
});

test('limits: docs/scenario-format.md\'s table of limits is the loader\'s and the compiler\'s', () => {
  const doc = readFileSync(new URL('../../../docs/scenario-format.md', import.meta.url), 'utf8');
  const row = (name: string): number => {
    const m = new RegExp(`^\\| ${name}[^|]* \\| (\\d+)`, 'm').exec(doc);
    assert.ok(m, `no row for ${name}`);
    return Number(m[1]);
  };
  assert.equal(row('file size'), MAX_FILE_BYTES);
  assert.equal(row('lists and mappings nested'), MAX_NESTING);
  assert.equal(row('aliases'), MAX_ALIASES);
  assert.equal(row('operations'), MAX_OPS);
});

test('limits: an integer beyond ±2^53 in exponent form is refused at its position; small exponents and long digits are read', () => {
  const text = OPS('      - load: 1e20\n      - load: -1E300\n');
  expectIssue(text, '1e20', ['1e20', 'exponent form', 'digits']);
  expectIssue(text, '-1E300', ['-1E300', 'exponent form']);
  // 1e3 is 1000 exactly; 2^64-1 in digits is kept exactly.
  assert.doesNotThrow(() => compileScenarioText(OPS('      - load: 1e3\n      - load: 18446744073709551615\n'), 'ok.yaml'));
});
