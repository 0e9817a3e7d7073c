#!/usr/bin/env node
/**
 * The `isolab` command. One file per command under src/cli/; this one only parses arguments
 * and turns every error into a message and an exit status (DESIGN.md rule 8): a user never
 * sees a bare stack trace.
 */
import { Command, CommanderError } from 'commander';
import { IsolabError } from '../errors.js';
import { tourCommand } from './tour.js';

const program = new Command()
  .name('isolab')
  .description('An executable model of x86-64 Linux address-space isolation.')
  .version('0.1.0')
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) });

program
  .command('tour')
  .description('run the built-in demonstrations and print each question with the answer the model finds')
  .option('--json', 'print the stops as JSON')
  .action((opts: { json?: boolean }) => tourCommand(opts));

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.exitCode);
  if (e instanceof IsolabError) {
    process.stderr.write(`isolab: ${e.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`isolab: internal error: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(70);
}
