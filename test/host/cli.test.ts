/**
 * `isolab host` as a user meets it: a missing file, a compiler that is not there, a --keep that
 * is not a directory are one-line typed errors with status 2, never a stack trace; --keep
 * writes the generated program, which builds and reruns on its own.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { hostTestSkipReason } from './helpers.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const cli = join(root, 'dist/src/cli/main.js');
const SKIP = hostTestSkipReason();

function isolab(...args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8' });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

test('isolab host: a missing scenario file is a typed error', () => {
  const r = isolab('host', 'no/such/file.yaml');
  assert.equal(r.status, 2);
  assert.equal(r.stderr, 'no/such/file.yaml: cannot read the scenario: no such file\n');
});

test('isolab host --cc /nonexistent: no compiler is a typed error', () => {
  const r = isolab('host', 'scenarios/efault.yaml', '--cc', '/nonexistent');
  assert.equal(r.status, 2);
  assert.equal(r.stderr, SKIP && !SKIP.startsWith('no C compiler') ? `isolab: host: ${SKIP}\n` : 'isolab: --cc: no C compiler at /nonexistent\n');
});

test('isolab host --keep onto a file that is not a directory is refused before anything runs', () => {
  const r = isolab('host', 'scenarios/efault.yaml', '--keep', 'scenarios/efault.yaml');
  assert.equal(r.status, 2);
  assert.equal(r.stderr, 'isolab: --keep scenarios/efault.yaml: not a directory\n');
});

test('isolab host --keep DIR: the report, and the generated C program that builds and runs by itself', SKIP ? { skip: SKIP } : {}, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'isolab-host-keep-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const r = isolab('host', 'scenarios/segv-codes.yaml', '--keep', dir);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^agreed: 7$/m);
  assert.match(r.stdout, /verdict: the host agrees with isolab on everything compared/);
  const source = readFileSync(join(dir, 'segv-codes.c'), 'utf8');
  assert.match(source, /store \[\$ro\] = 1/, 'each operation is labelled as the timeline shows it');
  const bin = join(dir, 'prog');
  const cc = spawnSync('cc', ['-O1', '-o', bin, join(dir, 'segv-codes.c')], { encoding: 'utf8' });
  assert.equal(cc.status, 0, cc.stderr);
  const run = spawnSync('/bin/sh', ['-c', `${bin} 1023>&1`], { encoding: 'utf8' });
  assert.equal(run.status, 0);
  // The store to the read-only page: SIGSEGV (11), SEGV_ACCERR (2).
  assert.match(run.stdout, /^R 2 S 11 2 [0-9a-f]+ 3$/m);
  assert.match(run.stdout, /^W 0 0$/m);
});
