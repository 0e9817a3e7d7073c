#!/usr/bin/env node
/**
 * The `isolab` command. One file per command under src/cli/; this one only parses arguments
 * and turns every error into a message and an exit status (DESIGN.md rule 8): a user never
 * sees a bare stack trace. Exit status: 0 success, 1 an expectation or check failed, 2 a
 * usage or input error, 70 an internal error (a bug in isolab).
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { IsolabError, ModelError, ScenarioError } from '../errors.js';
import { checkCommand } from './check.js';
import { reachCommand } from './reach.js';
import { runCommand } from './run.js';
import { schemaCommand } from './schema.js';
import { tourCommand } from './tour.js';
import { traceCommand } from './trace.js';

/** A non-negative integer option. */
function integer(name: string): (v: string) => number {
  return (v) => {
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) throw new InvalidArgumentError(`${name} must be a non-negative integer.`);
    if (name === '--seed' && Number(v) > 0xffffffff) throw new InvalidArgumentError('--seed must be at most 4294967295.');
    return Number(v);
  };
}

let status = 0;

const program = new Command()
  .name('isolab')
  .description('An executable model of x86-64 Linux address-space isolation: run, check and trace scenarios.')
  .version('0.1.0')
  .exitOverride()
  .showHelpAfterError('(run isolab --help for the commands)')
  .configureOutput({ writeErr: (s) => process.stderr.write(s) });

program
  .command('run')
  .description('run a scenario: a per-CPU timeline and a verdict per expectation (exit 1 if one failed)')
  .argument('<file>', 'scenario file (YAML)')
  .option('--seed <n>', 'seed of the random schedule (overrides the scenario)', integer('--seed'))
  .option('--max-steps <n>', 'stop after this many steps (overrides the scenario)', integer('--max-steps'))
  .option('--cpu <n>', 'show only this CPU in the timeline', integer('--cpu'))
  .option('--no-timeline', 'print the verdicts only')
  .option('--json', 'print the result as JSON (schema: isolab schema --result)')
  .action((file: string, opts) => {
    status = runCommand(file, opts);
  });

program
  .command('check')
  .description('check scenario files without running them; every mistake as file:line:col')
  .argument('<files...>', 'scenario files')
  .option('-q, --quiet', 'print only the mistakes')
  .action((files: string[], opts) => {
    status = checkCommand(files, opts);
  });

program
  .command('trace')
  .description('run a scenario and write its whole event stream')
  .argument('<file>', 'scenario file (YAML)')
  .addOption(new Option('-f, --format <format>', 'jsonl: one event per line; perfetto: Chrome trace JSON for ui.perfetto.dev').choices(['jsonl', 'perfetto']).default('jsonl'))
  .option('-o, --output <file>', 'write here instead of stdout (replaced only when complete)')
  .option('--seed <n>', 'seed of the random schedule (overrides the scenario)', integer('--seed'))
  .option('--max-steps <n>', 'stop after this many steps', integer('--max-steps'))
  .action((file: string, opts) => {
    status = traceCommand(file, opts);
  });

program
  .command('tour')
  .description('run the built-in scenarios and print each question with the answer the model finds')
  .option('--json', 'print the results as JSON')
  .action((opts: { json?: boolean }) => {
    status = tourCommand(opts);
  });

program
  .command('reach')
  .description('run a scenario and list, per process, the kernel memory a Meltdown load from its user mode could read')
  .argument('<file>', 'scenario file (YAML)')
  .option('--seed <n>', 'seed of the random schedule (overrides the scenario)', integer('--seed'))
  .option('--json', 'print the ranges as JSON')
  .action((file: string, opts) => {
    status = reachCommand(file, opts);
  });

program
  .command('schema')
  .description('print the JSON Schema of scenario files (for editors), or of run --json output')
  .option('--result', 'the schema of isolab run --json')
  .option('-o, --output <file>', 'write here instead of stdout')
  .action((opts) => {
    status = schemaCommand(opts);
  });

try {
  await program.parseAsync(process.argv);
  process.exitCode = status;
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.exitCode === 0 ? 0 : 2);
  if (e instanceof ScenarioError) {
    process.stderr.write(e.message + '\n');
    process.exit(2);
  }
  if (e instanceof ModelError) {
    process.stderr.write(`isolab: internal error (a broken model invariant, please report it): ${e.message}\n`);
    process.exit(70);
  }
  if (e instanceof IsolabError) {
    process.stderr.write(`isolab: ${e.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`isolab: internal error: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(70);
}
