/**
 * `--shard`: which shard of a search this process runs, given as `i/n` or, with `auto`, taken
 * from the environment a batch scheduler gives the process (a Slurm job array, a Kubernetes
 * Indexed Job, or isolab's own variables).
 */
import { ArgumentError } from '../errors.js';

/** The environment `--shard auto` reads: `process.env`, or a fake one in a test. */
export type ShardEnvironment = Readonly<Record<string, string | undefined>>;

/** A shard of a search: number `index` of `count`, 0 <= index < count. */
export interface ShardChoice {
  index: number;
  count: number;
}

/**
 * `--shard`: `i/n` with 0 <= i < n, or `auto`, the shard a batch scheduler gave this process
 * (shardFromEnvironment, reading `env`). Throws ArgumentError saying what is wrong.
 */
export function parseShard(text: string, env: ShardEnvironment = process.env): ShardChoice {
  if (text === 'auto') return shardFromEnvironment(env);
  const m = /^(\d+)\/(\d+)$/.exec(text);
  if (!m || Number(m[2]) < 1 || Number(m[1]) >= Number(m[2])) throw new ArgumentError('shard', `"${text}": expected i/n with 0 <= i < n (e.g. 0/4), or auto`);
  return { index: Number(m[1]), count: Number(m[2]) };
}

/** A variable of `env` that is set to something (an empty value counts as unset). */
function isSet(env: ShardEnvironment, name: string): boolean {
  return env[name] !== undefined && env[name] !== '';
}

/** The non-negative integer in variable `name` of `env`; throws `missing` (or that `name` is not set) when it is unset, and names it when it is not such an integer. */
function envInteger(env: ShardEnvironment, name: string, missing = `${name} is not set`): number {
  const v = env[name];
  if (v === undefined || v === '') throw new ArgumentError('shard', `auto: ${missing}`);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) throw new ArgumentError('shard', `auto: ${name} is "${v}", not a non-negative integer`);
  return Number(v);
}

/** `{index, count}` once it is checked: 1 <= count and index < count, else ArgumentError naming where they came from. */
function checkedShard(index: number, count: number, from: string): ShardChoice {
  if (count < 1) throw new ArgumentError('shard', `auto: ${from} gives ${count} shards; at least 1 is needed`);
  if (index >= count) throw new ArgumentError('shard', `auto: ${from} gives shard ${index} of ${count}; the index must be below the count`);
  return { index, count };
}

/**
 * `--shard auto`: the shard a batch scheduler gave this process, from its environment, the
 * first of these that is there:
 *
 * 1. isolab's own ISOLAB_SHARD_INDEX and ISOLAB_SHARD_COUNT (both needed);
 * 2. a Slurm job array: SLURM_ARRAY_TASK_ID, less SLURM_ARRAY_TASK_MIN (an array need not start
 *    at 0), of SLURM_ARRAY_TASK_COUNT. The array must be one contiguous range: a stepped one
 *    (`--array=0-9:2`, SLURM_ARRAY_TASK_STEP above 1) or one with gaps (`--array=1,3,8`,
 *    SLURM_ARRAY_TASK_MAX - SLURM_ARRAY_TASK_MIN + 1 above the count) is refused, since its
 *    task ids are not the shard numbers 0..n-1 shifted;
 * 3. a Kubernetes Indexed Job: JOB_COMPLETION_INDEX, of ISOLAB_SHARD_COUNT, which the Job's pod
 *    template sets equal to the Job's `completions` (Kubernetes does not put it in the
 *    environment).
 *
 * An ISOLAB_SHARD_COUNT that disagrees with a Slurm array's count is refused. Throws
 * ArgumentError naming the variable that is missing or wrong. Reads nothing but `env`.
 */
export function shardFromEnvironment(env: ShardEnvironment): ShardChoice {
  if (isSet(env, 'ISOLAB_SHARD_INDEX')) {
    const index = envInteger(env, 'ISOLAB_SHARD_INDEX');
    const count = envInteger(env, 'ISOLAB_SHARD_COUNT', 'ISOLAB_SHARD_INDEX is set but ISOLAB_SHARD_COUNT is not; set it to the number of shards');
    return checkedShard(index, count, `ISOLAB_SHARD_INDEX=${index} ISOLAB_SHARD_COUNT=${count}`);
  }
  if (isSet(env, 'SLURM_ARRAY_TASK_ID')) {
    const id = envInteger(env, 'SLURM_ARRAY_TASK_ID');
    const count = envInteger(env, 'SLURM_ARRAY_TASK_COUNT', 'SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not (a Slurm job array sets both)');
    const min = envInteger(env, 'SLURM_ARRAY_TASK_MIN', 'SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_MIN is not (a Slurm job array sets both)');
    if (isSet(env, 'SLURM_ARRAY_TASK_STEP')) {
      const step = envInteger(env, 'SLURM_ARRAY_TASK_STEP');
      if (step !== 1) throw new ArgumentError('shard', `auto: the Slurm job array steps by ${step} (SLURM_ARRAY_TASK_STEP); --shard auto needs a contiguous array such as --array=0-${count - 1}`);
    }
    if (isSet(env, 'SLURM_ARRAY_TASK_MAX')) {
      const max = envInteger(env, 'SLURM_ARRAY_TASK_MAX');
      if (max - min + 1 !== count) throw new ArgumentError('shard', `auto: the Slurm job array runs ${count} tasks from ${min} to ${max} (SLURM_ARRAY_TASK_COUNT, _MIN, _MAX), not one contiguous range; --shard auto needs one such as --array=0-${count - 1}`);
    }
    if (id < min) throw new ArgumentError('shard', `auto: SLURM_ARRAY_TASK_ID=${id} is below SLURM_ARRAY_TASK_MIN=${min}`);
    if (isSet(env, 'ISOLAB_SHARD_COUNT')) {
      const given = envInteger(env, 'ISOLAB_SHARD_COUNT');
      if (given !== count) throw new ArgumentError('shard', `auto: ISOLAB_SHARD_COUNT=${given} but the Slurm job array has ${count} tasks (SLURM_ARRAY_TASK_COUNT); unset one or make them agree`);
    }
    return checkedShard(id - min, count, `the Slurm job array (SLURM_ARRAY_TASK_ID=${id}, SLURM_ARRAY_TASK_MIN=${min}, SLURM_ARRAY_TASK_COUNT=${count})`);
  }
  if (isSet(env, 'JOB_COMPLETION_INDEX')) {
    const index = envInteger(env, 'JOB_COMPLETION_INDEX');
    const count = envInteger(env, 'ISOLAB_SHARD_COUNT', "JOB_COMPLETION_INDEX is set but ISOLAB_SHARD_COUNT is not; set it to the Job's completions");
    return checkedShard(index, count, `the Kubernetes Indexed Job (JOB_COMPLETION_INDEX=${index}, ISOLAB_SHARD_COUNT=${count})`);
  }
  if (isSet(env, 'ISOLAB_SHARD_COUNT')) throw new ArgumentError('shard', 'auto: ISOLAB_SHARD_COUNT is set but no shard index is: set ISOLAB_SHARD_INDEX, or run in a Slurm job array (SLURM_ARRAY_TASK_ID) or a Kubernetes Indexed Job (JOB_COMPLETION_INDEX)');
  throw new ArgumentError('shard', 'auto: no shard in the environment: set ISOLAB_SHARD_INDEX and ISOLAB_SHARD_COUNT, or run in a Slurm job array (SLURM_ARRAY_TASK_ID) or a Kubernetes Indexed Job (JOB_COMPLETION_INDEX, with ISOLAB_SHARD_COUNT set to its completions)');
}
