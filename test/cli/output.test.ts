/**
 * The isolab command's output, as a user meets it (DESIGN.md rule 8): `-o` replaces only a
 * regular file (never a symlink, FIFO, device or directory), refuses a bad destination before
 * any work and leaves nothing behind; a standard output that is full or closed is a one-line
 * error or a quiet end, never a stack trace; a scenario whose first process cannot start says
 * why and where.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { searching } from './searching.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const cli = join(root, 'dist/src/cli/main.js');
const tmp = mkdtempSync(join(tmpdir(), 'isolab-cli-output-'));

function isolab(...args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A shell command's result (for pipes and redirections). */
function sh(cmd: string): { status: number; stdout: string; stderr: string } {
  const r = spawnSync('/bin/sh', ['-c', cmd], { cwd: root, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A fresh directory for one test. */
function dir(name: string): string {
  const d = join(tmp, name);
  mkdirSync(d);
  return d;
}

const QUICK = ['scenarios/fork-cow.yaml', '--mode', 'uniform', '--executions', '2'];

test('cli -o: a symlink, a FIFO, a device or a directory is refused and left as it was; nothing is left behind', () => {
  const d = dir('kinds');
  writeFileSync(join(d, 'target'), 'keep\n');
  symlinkSync('target', join(d, 'link'));
  mkdirSync(join(d, 'sub'));
  const fifo = join(d, 'fifo');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
  const cases: [string, RegExp][] = [
    [join(d, 'link'), /symbolic link/],
    [fifo, /FIFO/],
    [join(d, 'sub'), /directory/],
    ['/dev/null', /device/],
  ];
  for (const [out, kind] of cases) {
    for (const args of [['schema', '-o', out], ['trace', 'scenarios/fork-cow.yaml', '-o', out], ['explore', ...QUICK, '-o', out]]) {
      const r = isolab(...args);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^isolab: cannot write ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: it is `));
      assert.match(r.stderr, kind);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
  }
  assert.ok(lstatSync(join(d, 'link')).isSymbolicLink(), 'the symlink is still a symlink');
  assert.equal(readFileSync(join(d, 'target'), 'utf8'), 'keep\n', 'its target is untouched');
  assert.ok(lstatSync(fifo).isFIFO(), 'the FIFO is still a FIFO');
  assert.ok(lstatSync('/dev/null').isCharacterDevice());
  assert.deepEqual(readdirSync(d).sort(), ['fifo', 'link', 'sub', 'target']);
  assert.deepEqual(readdirSync(join(d, 'sub')), []);
});

test('cli -o: a regular file is replaced whole, a new path created, and no temporary file remains', () => {
  const d = dir('regular');
  const file = join(d, 'schema.json');
  writeFileSync(file, 'old\n');
  let r = isolab('schema', '-o', file);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(JSON.parse(readFileSync(file, 'utf8')).$schema, 'http://json-schema.org/draft-07/schema#');
  r = isolab('explore', ...QUICK, '--json', '-o', join(d, 'r.json'));
  assert.equal(r.status, 0, r.stderr);
  assert.ok(lstatSync(join(d, 'r.json')).isFile());
  assert.deepEqual(readdirSync(d).sort(), ['r.json', 'schema.json']);
});

test('cli -o: explore refuses a missing directory before it searches; merge refuses a directory and leaves nothing', () => {
  const d = dir('early');
  // An unbounded systematic search of fork-dirty-race takes minutes: the refusal must come first.
  const t0 = Date.now();
  let r = spawnSync(process.execPath, [cli, 'explore', 'scenarios/fork-dirty-race.yaml', '-o', join(d, 'missing', 'x.json')], { cwd: root, encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 2, `exit 2 at once, not after the search (${Date.now() - t0} ms): ${r.stderr}`);
  assert.match(r.stderr, /^isolab: cannot write .*missing\/x\.json: its directory .*missing: ENOENT/);
  assert.equal(r.stdout, '', 'nothing was searched');
  const part = join(d, 'part.json');
  let q = isolab('explore', ...QUICK, '--json', '-o', part);
  assert.equal(q.status, 0, q.stderr);
  const sub = join(d, 'sub');
  mkdirSync(sub);
  q = isolab('merge', part, '-o', sub);
  assert.equal(q.status, 2, q.stderr);
  assert.match(q.stderr, /^isolab: cannot write .*sub: it is a directory/);
  assert.deepEqual(readdirSync(d).sort(), ['part.json', 'sub']);
  assert.deepEqual(readdirSync(sub), []);
  r = spawnSync(process.execPath, [cli, 'merge', part, '-o', join(d, 'merged.json')], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(readdirSync(d).sort(), ['merged.json', 'part.json', 'sub']);
});

test('cli stdout: a full disk is a one-line error; a closed pipe ends quietly with status 0', { skip: !existsSync('/dev/full') && 'no /dev/full' }, () => {
  let r = sh(`"${process.execPath}" "${cli}" run scenarios/fork-cow.yaml > /dev/full`);
  assert.equal(r.status, 2, r.stderr);
  assert.equal(r.stderr, 'isolab: cannot write standard output: ENOSPC (no space left on device)\n');
  r = sh(`"${process.execPath}" "${cli}" schema > /dev/full`);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /^isolab: cannot write standard output: ENOSPC[^\n]*\n$/);
  // The reader leaves after one line; isolab's status is the pipeline's first.
  r = sh(`( "${process.execPath}" "${cli}" run scenarios/fork-cow.yaml --json; echo "status=$?" >&2 ) | head -c 1 >/dev/null`);
  assert.match(r.stderr, /status=0\n$/, r.stderr);
  assert.doesNotMatch(r.stderr, /EPIPE|\n\s+at /, 'no message, no stack trace');
});

test('cli: a process that cannot start names the fail_alloc option and where it is', () => {
  const file = join(tmp, 'fail-pgd.yaml');
  writeFileSync(file, `kernel:
  fail_alloc: pgd
processes:
  - name: p
    ops:
      - getpid: {}
`);
  assert.equal(isolab('check', file).status, 0);
  const want = new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:4:5: process p cannot start: the kernel option fail_alloc=pgd:1 \\(.*fail-pgd\\.yaml:2:15\\) fails the 1st pgd allocation`);
  for (const args of [['run', file], ['trace', file], ['reach', file], ['replay', file, '--schedule', '0'], ['explore', file], ['explore', file, '--workers', '2']]) {
    const r = isolab(...args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, want, args.join(' '));
  }
  const other = join(tmp, 'fail-later.yaml');
  writeFileSync(other, `kernel:
  fail_alloc: pgd
  fail_alloc_nth: 2
processes:
  - name: first
    ops:
      - getpid: {}
  - name: second
    ops:
      - getpid: {}
`);
  const r = isolab('run', other);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /fail-later\.yaml:8:5: process second cannot start: the kernel option fail_alloc=pgd:2 \(.*:2:15\) fails the 2nd pgd allocation/);
  const cmdline = isolab('explore', 'scenarios/fork-cow.yaml', '--kernel', 'fail_alloc=pgd');
  assert.equal(cmdline.status, 2, cmdline.stderr);
  assert.match(cmdline.stderr, /fork-cow\.yaml:\d+:\d+: process \w+ cannot start: the kernel option fail_alloc=pgd:1 \(set by --kernel\)/);
});

test('cli explore --workers: SIGINT and SIGTERM print the progress so far, write nothing, exit 130 and 143', async () => {
  const d = dir('signals');
  for (const [signal, status] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    const out = join(d, `${signal}.json`);
    const child = spawn(process.execPath, [cli, 'explore', 'scenarios/fork-dirty-race.yaml', '--workers', '2', '-o', out], { cwd: root });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const done = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await searching(child.pid!);
    child.kill(signal);
    assert.equal(await done, status, stderr);
    assert.match(stderr, new RegExp(`^isolab: explore interrupted by ${signal} after \\d+ executions, \\d+ steps, [\\d.]+ s; no result written`));
    assert.doesNotMatch(stderr, /\n\s+at /);
  }
  assert.deepEqual(readdirSync(d), []);
});
