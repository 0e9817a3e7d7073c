/**
 * `--shard auto` (src/cli/shard.ts shardFromEnvironment) with fake environments: the shard
 * from isolab's own variables, a Slurm job array or a Kubernetes Indexed Job, in that order;
 * every task of an array gets a different shard and together they are all of 0..n-1; missing,
 * malformed or inconsistent variables are refused, naming the variable; the examples in
 * docs/explore.md work as they say.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { parseShard, shardFromEnvironment, type ShardEnvironment } from '../../src/cli/shard.js';
import { ArgumentError } from '../../src/errors.js';

/** The environment Slurm gives task `id` of `sbatch --array=min-max[:step]`. */
function slurm(id: number, min: number, max: number, step = 1): ShardEnvironment {
  const count = Math.floor((max - min) / step) + 1;
  return {
    SLURM_JOB_ID: '4242', SLURM_ARRAY_JOB_ID: '4200', SLURM_ARRAY_TASK_ID: String(id),
    SLURM_ARRAY_TASK_MIN: String(min), SLURM_ARRAY_TASK_MAX: String(max), SLURM_ARRAY_TASK_STEP: String(step), SLURM_ARRAY_TASK_COUNT: String(count),
  };
}

/** The environment of the pod with completion index `index` of an Indexed Job whose template sets ISOLAB_SHARD_COUNT. */
function indexedJob(index: number, count: number | undefined): ShardEnvironment {
  return { JOB_COMPLETION_INDEX: String(index), HOSTNAME: `isolab-explore-${index}-x7k2p`, ...(count !== undefined ? { ISOLAB_SHARD_COUNT: String(count) } : {}) };
}

/** Asserts that `env` is refused with an ArgumentError for `shard` whose message matches `message`. */
function refused(env: ShardEnvironment, message: RegExp): void {
  assert.throws(
    () => shardFromEnvironment(env),
    (e: unknown) => {
      assert.ok(e instanceof ArgumentError, String(e));
      assert.equal(e.argument, 'shard');
      assert.match(e.message, /^shard: auto: /);
      assert.match(e.message, message);
      return true;
    },
  );
}

test('shard auto: every task of a contiguous Slurm array gets its own shard, together 0..n-1, whatever the first index', () => {
  for (const [min, max] of [[0, 7], [1, 8], [5, 5], [100, 131]]) {
    const count = max - min + 1;
    const seen: number[] = [];
    for (let id = min; id <= max; id++) {
      const s = shardFromEnvironment(slurm(id, min, max));
      assert.equal(s.count, count, `--array=${min}-${max}`);
      seen.push(s.index);
    }
    assert.deepEqual(seen, Array.from({ length: count }, (_, i) => i), `--array=${min}-${max}: task ids in order give shards 0..${count - 1} in order`);
  }
});

test('shard auto: a throttled Slurm array (%k) is still contiguous; one without SLURM_ARRAY_TASK_STEP or _MAX is taken from ID, MIN and COUNT', () => {
  // `--array=0-7%2` changes only how many run at once: the variables are those of 0-7.
  assert.deepEqual(shardFromEnvironment(slurm(6, 0, 7)), { index: 6, count: 8 });
  const { SLURM_ARRAY_TASK_STEP: _s, SLURM_ARRAY_TASK_MAX: _m, ...bare } = slurm(4, 2, 9);
  assert.deepEqual(shardFromEnvironment(bare), { index: 2, count: 8 });
});

test('shard auto: a stepped Slurm array or one with gaps is refused, saying why', () => {
  refused(slurm(4, 0, 8, 2), /steps by 2 \(SLURM_ARRAY_TASK_STEP\).*contiguous array such as --array=0-4\b/);
  // `--array=1,3,8`: three tasks from 1 to 8.
  refused({ SLURM_ARRAY_TASK_ID: '3', SLURM_ARRAY_TASK_MIN: '1', SLURM_ARRAY_TASK_MAX: '8', SLURM_ARRAY_TASK_COUNT: '3' }, /3 tasks from 1 to 8 .*not one contiguous range/);
});

test('shard auto: a Slurm array missing a variable, or with a task id out of it, is refused, naming the variable', () => {
  const { SLURM_ARRAY_TASK_COUNT: _c, ...noCount } = slurm(2, 0, 3);
  refused(noCount, /SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not/);
  const { SLURM_ARRAY_TASK_MIN: _m, ...noMin } = slurm(2, 0, 3);
  refused(noMin, /SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_MIN is not/);
  refused({ ...slurm(2, 1, 4), SLURM_ARRAY_TASK_ID: '0' }, /SLURM_ARRAY_TASK_ID=0 is below SLURM_ARRAY_TASK_MIN=1/);
  refused({ ...slurm(2, 0, 3), SLURM_ARRAY_TASK_ID: '9', SLURM_ARRAY_TASK_MAX: undefined }, /gives shard 9 of 4/);
  refused({ ...slurm(2, 0, 3), SLURM_ARRAY_TASK_COUNT: 'four' }, /SLURM_ARRAY_TASK_COUNT is "four", not a non-negative integer/);
});

test('shard auto: a Kubernetes Indexed Job takes the count from ISOLAB_SHARD_COUNT, and is refused without it', () => {
  for (let i = 0; i < 8; i++) assert.deepEqual(shardFromEnvironment(indexedJob(i, 8)), { index: i, count: 8 });
  refused(indexedJob(3, undefined), /^shard: auto: JOB_COMPLETION_INDEX is set but ISOLAB_SHARD_COUNT is not; set it to the Job's completions$/);
  refused(indexedJob(8, 8), /gives shard 8 of 8; the index must be below the count/);
  refused(indexedJob(0, 0), /gives 0 shards; at least 1 is needed/);
  refused({ JOB_COMPLETION_INDEX: '-1', ISOLAB_SHARD_COUNT: '8' }, /JOB_COMPLETION_INDEX is "-1", not a non-negative integer/);
});

test("shard auto: isolab's own variables, then Slurm, then Kubernetes", () => {
  const mine = { ISOLAB_SHARD_INDEX: '1', ISOLAB_SHARD_COUNT: '3' };
  assert.deepEqual(shardFromEnvironment(mine), { index: 1, count: 3 });
  // isolab's variables win over a scheduler's: a wrapper may re-split a task.
  assert.deepEqual(shardFromEnvironment({ ...slurm(5, 0, 7), ...indexedJob(6, 3), ...mine }), { index: 1, count: 3 });
  // Slurm before Kubernetes (a Kubernetes count that Slurm's agrees with).
  assert.deepEqual(shardFromEnvironment({ ...indexedJob(6, 8), ...slurm(5, 0, 7) }), { index: 5, count: 8 });
  // An ISOLAB_SHARD_COUNT that disagrees with the Slurm array's count is refused.
  refused({ ...slurm(5, 0, 7), ISOLAB_SHARD_COUNT: '4' }, /ISOLAB_SHARD_COUNT=4 but the Slurm job array has 8 tasks/);
});

test("shard auto: isolab's variables alone must come in pairs; an empty variable counts as unset; no variable at all names every way", () => {
  refused({ ISOLAB_SHARD_INDEX: '2' }, /ISOLAB_SHARD_INDEX is set but ISOLAB_SHARD_COUNT is not/);
  refused({ ISOLAB_SHARD_COUNT: '2' }, /ISOLAB_SHARD_COUNT is set but no shard index is/);
  refused({ ISOLAB_SHARD_INDEX: '4', ISOLAB_SHARD_COUNT: '4' }, /gives shard 4 of 4/);
  refused({ ISOLAB_SHARD_INDEX: '1.5', ISOLAB_SHARD_COUNT: '4' }, /ISOLAB_SHARD_INDEX is "1.5"/);
  assert.deepEqual(shardFromEnvironment({ ISOLAB_SHARD_INDEX: '', ...indexedJob(2, 4) }), { index: 2, count: 4 });
  for (const env of [{}, { PATH: '/usr/bin', SLURM_JOB_ID: '7' }, { SLURM_ARRAY_TASK_ID: '', JOB_COMPLETION_INDEX: '' }]) {
    refused(env, /no shard in the environment: .*ISOLAB_SHARD_INDEX and ISOLAB_SHARD_COUNT.*SLURM_ARRAY_TASK_ID.*JOB_COMPLETION_INDEX/);
  }
});

test('shard: i/n is read as before, auto reads the environment given, anything else is refused', () => {
  const env = indexedJob(2, 5);
  assert.deepEqual(parseShard('3/4', env), { index: 3, count: 4 }, 'an explicit shard ignores the environment');
  assert.deepEqual(parseShard('auto', env), { index: 2, count: 5 });
  for (const bad of ['4/4', '1/0', 'a/b', 'AUTO', '', '-1/2']) {
    assert.throws(() => parseShard(bad, env), /^.*shard: ".*": expected i\/n with 0 <= i < n \(e\.g\. 0\/4\), or auto$/, bad);
  }
});

test('shard auto: the Slurm script and the Indexed Job in docs/explore.md give every shard once, and the docs quote the code', () => {
  const doc = readFileSync(new URL('../../../docs/explore.md', import.meta.url), 'utf8');
  const start = doc.indexOf('### Batch schedulers (--shard auto)');
  assert.ok(start >= 0, 'the section is there');
  const section = doc.slice(start, doc.indexOf('\n### ', start + 1));
  const block = (lang: string): string => {
    const m = new RegExp('```' + lang + '\\n([\\s\\S]*?)```').exec(section);
    assert.ok(m, `a ${lang} block`);
    return m[1];
  };

  // Slurm: the array's tasks, in the environment Slurm gives them, are shards 0..n-1.
  const script = block('bash');
  const array = /^#SBATCH --array=(\d+)-(\d+)$/m.exec(script);
  assert.ok(array, 'a contiguous array');
  const [min, max] = [Number(array[1]), Number(array[2])];
  const shards = Array.from({ length: max - min + 1 }, (_, k) => shardFromEnvironment(slurm(min + k, min, max)));
  assert.deepEqual(shards.map((s) => `${s.index}/${s.count}`), shards.map((_, i) => `${i}/${max - min + 1}`));
  assert.match(script.replace(/\\\n\s*/g, ''), /isolab explore \S+ .*--shard auto --json -o result-\$SLURM_ARRAY_TASK_ID\.json/);

  // Kubernetes: ISOLAB_SHARD_COUNT is the completions, and every index is a shard.
  const job = parseYaml(block('yaml')) as {
    spec: { completionMode: string; completions: number; parallelism: number; template: { spec: { containers: { env: { name: string; value: string }[]; command: string[]; args: string[] }[] } } };
  };
  assert.equal(job.spec.completionMode, 'Indexed');
  const container = job.spec.template.spec.containers[0];
  const count = container.env.find((e) => e.name === 'ISOLAB_SHARD_COUNT')?.value;
  assert.equal(count, String(job.spec.completions), 'ISOLAB_SHARD_COUNT = completions');
  for (let i = 0; i < job.spec.completions; i++) assert.deepEqual(shardFromEnvironment(indexedJob(i, Number(count))), { index: i, count: job.spec.completions });
  assert.match([...container.command, ...container.args].join(' '), /isolab explore \S+ .*--shard auto --json -o \S*result-\$JOB_COMPLETION_INDEX\.json/);

  // The error the docs quote is the code's.
  const quoted = /`(isolab: shard: auto: JOB_COMPLETION_INDEX[^`]*)`/.exec(section);
  assert.ok(quoted, 'the docs quote the error');
  assert.throws(() => shardFromEnvironment(indexedJob(3, undefined)), (e: Error) => `isolab: ${e.message}` === quoted[1].replace(/\s+/g, ' '));
});
