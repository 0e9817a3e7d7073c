/** `isolab check FILE...`: checks scenario files without running them; prints every mistake as file:line:col. Exit 1 if any file has one. */
import pc from 'picocolors';
import { ScenarioError } from '../errors.js';
import { compileScenarioFile } from '../scenario/index.js';

export function checkCommand(files: string[], opts: { quiet?: boolean }): number {
  let bad = 0;
  for (const file of files) {
    try {
      compileScenarioFile(file);
      if (!opts.quiet) process.stdout.write(`${pc.green('ok')}  ${file}\n`);
    } catch (e) {
      if (!(e instanceof ScenarioError)) throw e;
      bad++;
      process.stderr.write(e.message + '\n');
    }
  }
  if (files.length > 1 && !opts.quiet) process.stdout.write(`${files.length - bad} of ${files.length} files are valid\n`);
  return bad > 0 ? 1 : 0;
}
