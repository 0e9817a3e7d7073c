/** `isolab schema [--result]`: prints the JSON Schema of scenario files (or of `run --json` output). */
import { runResultSchema } from '../scenario/result-schema.js';
import { scenarioSchema } from '../scenario/schema.js';
import { writeOutput } from './output.js';

export function schemaCommand(opts: { result?: boolean; output?: string }): number {
  writeOutput(opts.output, JSON.stringify(opts.result ? runResultSchema() : scenarioSchema(), null, 2) + '\n');
  return 0;
}
