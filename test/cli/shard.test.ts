/**
 * Scale-out as a batch scheduler runs it: `isolab explore FILE --shard auto -o result-ID.json`
 * in each task of a Slurm job array (one not starting at 0) or each pod of a Kubernetes Indexed
 * Job, then `isolab merge`, gives the search in one process: the same executions and the same
 * counterexamples with the same schedules; each task's report names its shard; `--workers 2`
 * gives the same as one worker. Missing variables stop `--shard auto` before the search, with
 * the variable named and nothing written.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const cli = join(root, 'dist/src/cli/main.js');
const tmp = mkdtempSync(join(tmpdir(), 'isolab-cli-shard-'));

/** This process's environment without any shard a scheduler might have set, plus `extra`. */
function environment(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { NO_COLOR: '1' };
  for (const [k, v] of Object.entries(process.env)) if (!/^(SLURM_|ISOLAB_SHARD_|JOB_COMPLETION_INDEX$)/.test(k)) env[k] = v;
  return { ...env, ...extra };
}

interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

function isolab(args: string[], extra: Record<string, string> = {}): Run {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8', env: environment(extra) });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** The same, as a task of a batch job running beside the others. */
function task(args: string[], extra: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], { cwd: root, env: environment(extra) });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('close', (code) => resolve({ status: code ?? -1, stdout, stderr }));
  });
}

function dir(name: string): string {
  const d = join(tmp, name);
  mkdirSync(d);
  return d;
}

interface Result {
  executions: number;
  complete: number;
  sleepBlocked: number;
  exhaustive: boolean;
  boundedBy: string[];
  shard?: { index: number; count: number };
  violations: { invariant: string; text: string; message: string; found: number[] }[];
}

/** What a search explored and found: what scale-out must not change (steps and times may). */
function outcome(r: Result): unknown {
  return {
    executions: r.executions,
    complete: r.complete,
    sleepBlocked: r.sleepBlocked,
    exhaustive: r.exhaustive,
    boundedBy: [...r.boundedBy].sort(),
    violations: r.violations.map((v) => [v.invariant, v.found.join(','), v.text, v.message]).sort(),
  };
}

// wp_page_copy without its flush (the scenario's kernel option): a stale TLB entry to find.
const STALE = 'scenarios/cow-stale-tlb.yaml';
const STALE_SEARCH = ['--until', 'ops', '--preemptions', '1', '--invariants', 'stale_tlb,debug_checks'];
// fork and copy-on-write: nothing to find.
const COW = 'scenarios/fork-cow.yaml';
const COW_SEARCH = ['--until', 'ops', '--preemptions', '1'];

/** A search in one process, run once for the tests that compare with it. */
function once(args: string[]): () => Run {
  let r: Run | undefined;
  return () => (r ??= isolab(['explore', ...args, '--json']));
}
const staleWhole = once([STALE, ...STALE_SEARCH]);
const cowWhole = once([COW, ...COW_SEARCH]);

test('cli shard auto: the tasks of a Slurm job array (--array=1-3) merge into the search in one process, each naming its shard', async () => {
  const whole = staleWhole();
  assert.equal(whole.status, 1, `a stale TLB entry is found: ${whole.stderr}`);
  const w = JSON.parse(whole.stdout) as Result;
  assert.ok(w.violations.some((v) => v.invariant === 'stale_tlb'));

  const d = dir('slurm');
  const ids = [1, 2, 3];
  const slurm = (id: number): Record<string, string> => ({
    SLURM_ARRAY_JOB_ID: '900', SLURM_ARRAY_TASK_ID: String(id), SLURM_ARRAY_TASK_MIN: '1', SLURM_ARRAY_TASK_MAX: '3', SLURM_ARRAY_TASK_STEP: '1', SLURM_ARRAY_TASK_COUNT: '3',
  });
  // Without --json the report goes to stdout and the JSON to the file.
  const runs = await Promise.all(ids.map((id) => task(['explore', STALE, ...STALE_SEARCH, '--shard', 'auto', '-o', join(d, `result-${id}.json`)], slurm(id))));
  const parts: Result[] = [];
  for (const [k, r] of runs.entries()) {
    const id = ids[k];
    assert.ok(r.status === 0 || r.status === 1, `task ${id}: ${r.stderr}`);
    assert.equal(r.stdout.split('\n')[0], `cow-stale-tlb: systematic search (source-set DPOR, sleep sets), shard ${id - 1}/3`, `task ${id} names its shard`);
    const p = JSON.parse(readFileSync(join(d, `result-${id}.json`), 'utf8')) as Result;
    assert.deepEqual({ index: p.shard?.index, count: p.shard?.count }, { index: id - 1, count: 3 });
    assert.ok(p.executions < w.executions, `task ${id} runs a share: ${p.executions} of ${w.executions} executions`);
    parts.push(p);
  }
  assert.equal(parts.reduce((a, p) => a + p.executions, 0), w.executions, 'each execution in one task');

  const merged = isolab(['merge', ...ids.map((id) => join(d, `result-${id}.json`)), '--json']);
  assert.equal(merged.status, whole.status, merged.stderr);
  assert.deepEqual(outcome(JSON.parse(merged.stdout) as Result), outcome(w));
});

test('cli shard auto: the pods of a Kubernetes Indexed Job merge into the search in one process; --workers 2 finds what one worker does', async () => {
  const whole = cowWhole();
  assert.equal(whole.status, 0, whole.stderr);
  const w = JSON.parse(whole.stdout) as Result;

  const d = dir('kubernetes');
  const pods = await Promise.all([0, 1].map((i) => task(['explore', COW, ...COW_SEARCH, '--shard', 'auto', '--json', '-o', join(d, `result-${i}.json`)], { JOB_COMPLETION_INDEX: String(i), ISOLAB_SHARD_COUNT: '2' })));
  for (const [i, r] of pods.entries()) {
    assert.equal(r.status, 0, `pod ${i}: ${r.stderr}`);
    assert.equal(r.stdout, '', 'with --json and -o the result goes to the file only');
  }
  const merged = isolab(['merge', join(d, 'result-1.json'), join(d, 'result-0.json'), '--json']);
  assert.equal(merged.status, 0, merged.stderr);
  assert.deepEqual(outcome(JSON.parse(merged.stdout) as Result), outcome(w));

  // test/explore/shard-union.test.ts compares more searches with workers through the library.
  const one = staleWhole();
  const two = isolab(['explore', STALE, ...STALE_SEARCH, '--json', '--workers', '2']);
  assert.equal(two.status, one.status, two.stderr);
  assert.deepEqual(outcome(JSON.parse(two.stdout) as Result), outcome(JSON.parse(one.stdout) as Result), '--workers 2');
});

test('cli shard auto: missing variables are refused before the search, naming them, with nothing written', () => {
  const d = dir('refused');
  const out = join(d, 'result.json');
  const cases: [Record<string, string>, string[], RegExp][] = [
    [{ JOB_COMPLETION_INDEX: '3' }, [], /^isolab: shard: auto: JOB_COMPLETION_INDEX is set but ISOLAB_SHARD_COUNT is not; set it to the Job's completions\n$/],
    [{}, [], /^isolab: shard: auto: no shard in the environment: .*\n$/],
    [{ ISOLAB_SHARD_INDEX: '0', ISOLAB_SHARD_COUNT: '2' }, ['--workers', '2'], /^isolab: workers: --workers and --shard do not mix/],
  ];
  for (const [env, extra, message] of cases) {
    const r = isolab(['explore', COW, ...COW_SEARCH, '--shard', 'auto', '--json', '-o', out, ...extra], env);
    assert.equal(r.status, 2, `${JSON.stringify(env)}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    assert.ok(!existsSync(out), 'nothing written');
  }
});
