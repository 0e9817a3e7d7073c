/**
 * Scenarios: experiments described in YAML files (or as plain objects) and run on a System.
 * `compileScenarioFile` reads and checks a file, reporting every mistake with its line and
 * column before anything runs; `runScenario` runs the result and judges its expectations.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { basename } from 'node:path';
import { ScenarioError } from '../errors.js';
import { compileScenario, type CompiledScenario } from './compile.js';
import { loadScenarioText, MAX_FILE_BYTES, tooLarge } from './load.js';

/** Parses and checks scenario text; `file` names it in messages; `params` override the scenario's params. Throws ScenarioError (ArgumentError for a param it lacks). */
export function compileScenarioText(text: string, file: string, params?: Record<string, number>): CompiledScenario {
  const loaded = loadScenarioText(text, file);
  if (loaded.issues.length > 0) throw new ScenarioError(loaded.issues);
  return compileScenario(loaded.data, loaded.locator, basename(file).replace(/\.ya?ml$/, ''), params);
}

/**
 * Reads at most MAX_FILE_BYTES + 1 bytes of `file` (a regular file, or a pipe such as a shell's
 * process substitution; a device that never ends is cut off at the limit, not read forever).
 */
function readScenarioFile(file: string): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : String((e as Error).message);
    throw new ScenarioError([{ file, path: '', message: `cannot read the scenario: ${why}` }]);
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw new ScenarioError([{ file, path: '', message: 'cannot read the scenario: is a directory' }]);
    if (st.isFile() && st.size > MAX_FILE_BYTES) throw new ScenarioError([tooLarge(file, st.size, false)]);
    const buf = Buffer.alloc(MAX_FILE_BYTES + 1);
    let n = 0;
    for (;;) {
      const got = readSync(fd, buf, n, buf.length - n, null);
      if (got === 0) break;
      n += got;
      if (n > MAX_FILE_BYTES) throw new ScenarioError([tooLarge(file, MAX_FILE_BYTES, true)]);
    }
    return buf.toString('utf8', 0, n);
  } catch (e) {
    if (e instanceof ScenarioError) throw e;
    throw new ScenarioError([{ file, path: '', message: `cannot read the scenario: ${String((e as Error).message)}` }]);
  } finally {
    closeSync(fd);
  }
}

/** Reads, parses and checks a scenario file. Throws ScenarioError (an unreadable or oversized file included). */
export function compileScenarioFile(file: string, params?: Record<string, number>): CompiledScenario {
  return compileScenarioText(readScenarioFile(file), file, params);
}

export { compileScenario, OpTable, type CompiledScenario, type OpInfo } from './compile.js';
export { runScenario, type RunOptions, type RunReport, type Verdict, type TimelineEntry, type Counts } from './run.js';
export { scenarioSchema } from './schema.js';
export { INVARIANTS } from './invariants.js';
export type * from './types.js';
