/**
 * `isolab see` as a user meets it: the server started, its URL printed, the page and the
 * recording served, a clean exit on SIGINT; `--out` writing a file only when complete and
 * replacing nothing but a regular file; mistakes answered with one line and status 2.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/main.js');
const see = (...args: string[]) => spawnSync(process.execPath, [CLI, 'see', ...args], { encoding: 'utf8', cwd: ROOT });

test('isolab see serves on 127.0.0.1, prints the URL, and stops cleanly on SIGINT', async () => {
  const child = spawn(process.execPath, [CLI, 'see', 'scenarios/fork-cow.yaml'], { cwd: ROOT });
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      const m = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.on('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
  });
  const page = await fetch(url);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /data-src="recording.json"/);
  const rec = (await (await fetch(new URL('recording.json', url))).json()) as { format: string; scenario: { name: string } };
  assert.equal(rec.format, 'isolab-see/1');
  assert.equal(rec.scenario.name, 'fork-cow');
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  child.kill('SIGINT');
  assert.equal(await exited, 0);
});

test('isolab see: mistakes get one line and status 2, and no file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'isolab-see-cli-'));
  try {
    let r = see('scenarios/fork-cow.yaml', '--replay');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^isolab: .*--schedule/);
    r = see('scenarios/fork-cow.yaml', '--compare');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /declares no sides/);
    r = see('scenarios/fork-cow.yaml', '--schedule', '7*3');
    assert.equal(r.status, 2, r.stderr);
    const sub = join(dir, 'a-directory');
    mkdirSync(sub);
    r = see('scenarios/fork-cow.yaml', '--out', sub);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /directory/);
    assert.ok(statSync(sub).isDirectory(), 'the directory is left alone');
    r = see('no-such.yaml', '--out', join(dir, 'x.html'));
    assert.equal(r.status, 2);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    assert.throws(() => statSync(join(dir, 'x.html')), 'nothing written');
    r = see('scenarios/fork-cow.yaml', '--out', join(dir, 'ok.html'));
    assert.equal(r.status, 0, r.stderr);
    assert.match(readFileSync(join(dir, 'ok.html'), 'utf8'), /^<!doctype html>/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the see line isolab explore prints under a counterexample opens it at the violation", () => {
  const r = spawnSync(process.execPath, [CLI, 'explore', 'scenarios/cow-stale-tlb.yaml', '--invariants', 'stale_tlb', '--until', 'ops', '--preemptions', '2'], { encoding: 'utf8', cwd: ROOT });
  const line = /^ {2}see: +isolab see (.*)$/m.exec(r.stdout);
  assert.ok(line, r.stdout);
  const dir = mkdtempSync(join(tmpdir(), 'isolab-see-cli-'));
  try {
    const out = join(dir, 'v.html');
    const s = see(...line[1].split(' '), '--out', out);
    assert.equal(s.status, 0, s.stderr);
    assert.match(s.stdout, /stale_tlb broken at step \d+/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
