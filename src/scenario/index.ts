/**
 * Scenarios: experiments described in YAML files (or as plain objects) and run on a System.
 * `compileScenarioFile` reads and checks a file, reporting every mistake with its line and
 * column before anything runs; `runScenario` runs the result and judges its expectations.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { ScenarioError } from '../errors.js';
import { compileScenario, type CompiledScenario } from './compile.js';
import { loadScenarioText } from './load.js';

/** Parses and checks scenario text; `file` names it in messages. Throws ScenarioError. */
export function compileScenarioText(text: string, file: string): CompiledScenario {
  const loaded = loadScenarioText(text, file);
  if (loaded.issues.length > 0) throw new ScenarioError(loaded.issues);
  return compileScenario(loaded.data, loaded.locator, basename(file).replace(/\.ya?ml$/, ''));
}

/** Reads, parses and checks a scenario file. Throws ScenarioError (an unreadable file included). */
export function compileScenarioFile(file: string): CompiledScenario {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : code === 'EACCES' ? 'permission denied' : String((e as Error).message);
    throw new ScenarioError([{ file, path: '', message: `cannot read the scenario: ${why}` }]);
  }
  return compileScenarioText(text, file);
}

export { compileScenario, opKey, type CompiledScenario, type OpInfo } from './compile.js';
export { runScenario, type RunOptions, type RunReport, type Verdict, type TimelineEntry, type Counts } from './run.js';
export { scenarioSchema } from './schema.js';
export { INVARIANTS } from './invariants.js';
export type * from './types.js';
