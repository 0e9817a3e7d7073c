/**
 * `isolab schema [--result | --replay]`: prints the JSON Schema of scenario files, of `run --json`
 * output, or of `replay --json` output.
 */
import { ArgumentError } from '../errors.js';
import { runResultSchema } from '../scenario/result-schema.js';
import { scenarioSchema } from '../scenario/schema.js';
import { writeOutput } from './output.js';
import { replayResultSchema } from './replay.js';

export function schemaCommand(opts: { result?: boolean; replay?: boolean; output?: string }): number {
  if (opts.result && opts.replay) throw new ArgumentError('schema', '--result and --replay name two schemas: give one');
  const schema = opts.result ? runResultSchema() : opts.replay ? replayResultSchema() : scenarioSchema();
  writeOutput(opts.output, JSON.stringify(schema, null, 2) + '\n');
  return 0;
}
