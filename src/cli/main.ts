#!/usr/bin/env node
/**
 * The `isolab` command. One file per command under src/cli/; this one only parses arguments
 * and turns every error into a message and an exit status (DESIGN.md rule 8): a user never
 * sees a bare stack trace. Exit status: 0 success, 1 an expectation or check failed, 2 a
 * usage or input error (an output that cannot be written included: `-o` onto anything but a
 * regular file or a new path, a full disk), 70 an internal error (a bug in isolab), 130 or 143
 * an explore search ended by SIGINT or SIGTERM. A reader that closes the pipe early
 * (EPIPE) ends the command quietly with status 0.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { IsolabError, ModelError, ScenarioError } from '../errors.js';
import { FULL_LEVELS } from '../explore/dpor.js';
import { CostTableError } from '../cost/table.js';
import { checkCommand } from './check.js';
import { compareCommand } from './compare.js';
import { exploreCommand, mergeCommand, replayCommand } from './explore.js';
import { hostCommand } from './host.js';
import { measureCommand } from './measure.js';
import { reachCommand } from './reach.js';
import { runCommand } from './run.js';
import { schemaCommand } from './schema.js';
import { seeCommand } from './see.js';
import { sweepCommand } from './sweep.js';
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

/*
 * Standard output that cannot be written: a reader that went away (EPIPE, `isolab run x | head -1`)
 * ends the command quietly with status 0, as most CLIs do (the reader has what it wanted); any
 * other failure (ENOSPC on `> /dev/full`, EIO) is a one-line error and status 2.
 */
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    if (stream === process.stdout) {
      try {
        process.stderr.write(`isolab: cannot write standard output: ${e.code === 'ENOSPC' ? 'ENOSPC (no space left on device)' : e.code ?? e.message}\n`);
      } catch {
        // stderr is gone too: the status says it
      }
    }
    process.exit(2);
  });
}

const program = new Command()
  .name('isolab')
  .description('An executable model of x86-64 Linux address-space isolation: run, check, trace and explore scenarios.')
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
  .option('--schedule <steps>', 'replay this schedule first (as printed by isolab explore: 0*120,1*17,e1.5,p0>1), then the policy')
  .option('--kernel <key=value>', 'set a kernel option over the scenario\'s (repeatable), as explore takes it', collect)
  .option('--param <name=value>', "set one of the scenario's params (repeatable)", collect)
  .option('--json', 'print the result as JSON (schema: isolab schema --result)')
  .action((file: string, opts) => {
    status = runCommand(file, opts);
  });

/** Collects a repeatable option's values. */
function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}

program
  .command('explore')
  .description('try the interleavings of a concurrent scenario and check invariants in each; a broken one comes with a shortest, minimised, replayable schedule (exit 1)')
  .argument('<file>', 'scenario file (YAML)')
  .addOption(new Option('--mode <mode>', 'dpor: every interleaving up to equivalence; uniform or pct: seeded random executions').choices(['dpor', 'uniform', 'pct']).default('dpor'))
  .option('--executions <n>', 'at most this many executions (random modes: default 1000)', integer('--executions'))
  .option('--depth <n>', 'at most this many steps per execution', integer('--depth'))
  .option('--preemptions <n>', 'at most this many preemptions per execution', integer('--preemptions'))
  .option('--evict <n>', 'TLB evictions the search may insert per execution (default 0)', integer('--evict'))
  .option('--reclaims <n>', 'reclaim passes the search may insert per execution (default 0): kswapd woken on a CPU (r0) reclaims every anonymous LRU folio it may take (lazyfree ones, and swap-backed ones while swap has room), its steps interleaved with the others', integer('--reclaims'))
  .option('--preempt-choices <n>', "preemptions the search may insert per execution (default 0): a CPU's task preempted at a user instruction boundary (or, with --kernel preempt=full, a kernel step where preemption is on), staying (p0) or moved to another CPU it may use (p0>1)", integer('--preempt-choices'))
  .option('--seed <n>', 'seed of the random modes (default 1)', integer('--seed'))
  .option('--pct-depth <d>', "PCT's bug depth d (default 2)", integer('--pct-depth'))
  .option('--invariants <list>', 'comma-separated: stale_tlb, lost_dirty, rw0_dirty, pti_user_pgd, debug_checks, read_stability, deadlock, scenario (default: all)')
  .option('--kernel <key=value>', 'set a kernel option (repeatable), e.g. --kernel fork_wrprotect=read_modify_write', collect)
  .addOption(new Option('--until <point>', 'end: explore until every task exits; ops: until every task has run its operations (exits then run unexplored)').choices(['end', 'ops']).default('end'))
  .option('--first', 'stop at the first violation')
  .option('--witness', "search for a schedule under which every expectation of the scenario holds (a race scenario's race), print it as schedule.steps and stop (exit 0 when found, 1 when not)")
  .option('--no-minimise', 'report counterexamples as found')
  .option('--check-footprints', "check each step's recorded footprint against the whole state before and after it; a change it did not record stops the search with an internal error (slow: for testing the model)")
  .option('--shard <i/n|auto>', 'search shard i of n (dpor: the subtrees where the search branches off its first path, dealt out in turn; the shards together run exactly the search without --shard; see isolab merge); auto: i and n from ISOLAB_SHARD_INDEX and ISOLAB_SHARD_COUNT, else a Slurm job array (SLURM_ARRAY_TASK_ID less SLURM_ARRAY_TASK_MIN, of SLURM_ARRAY_TASK_COUNT), else a Kubernetes Indexed Job (JOB_COMPLETION_INDEX, of ISOLAB_SHARD_COUNT)')
  .option('--split-depth <n>', `with --shard or --workers: split where paths have branched off n times (at most ${FULL_LEVELS}, the default); ignored without them: it never changes what is searched`, integer('--split-depth'))
  .option('--workers <n>', 'search with this many worker threads (shards, as --shard)', integer('--workers'))
  .option('--json', 'print the result as JSON')
  .option('-o, --output <file>', 'also write the result as JSON here (replaced only when complete)')
  .action(async (file: string, opts) => {
    status = await exploreCommand(file, opts);
  });

program
  .command('replay')
  .description('run one schedule of a scenario step by step, checking the invariants; print the per-CPU timeline')
  .argument('<file>', 'scenario file (YAML)')
  .requiredOption('--schedule <steps>', 'the schedule, as isolab explore prints it (0*120,1*17,e1.5,p0>1)')
  .option('--invariants <list>', 'comma-separated invariants to check (default: all)')
  .option('--kernel <key=value>', 'set a kernel option (repeatable)', collect)
  .option('--complete', 'after the schedule, run on until nothing can (lowest CPU first)')
  .addOption(new Option('--until <point>', 'as the search that found the schedule: ops holds each thread at the end of its operations until the others have run theirs (isolab explore --until ops)').choices(['end', 'ops']).default('end'))
  .option('--json', 'print the result as JSON (fields: docs/scenario-format.md, isolab replay)')
  .option('-o, --output <file>', 'also write the result as JSON here (replaced only when complete)')
  .action((file: string, opts) => {
    status = replayCommand(file, opts);
  });

program
  .command('merge')
  .description('combine the JSON results of isolab explore --shard i/n (or --shard auto) runs into one; refuses results of different searches (another scenario file, --kernel, --mode, --invariants, bound, shard count or --split-depth), naming what differs')
  .argument('<files...>', 'results written by isolab explore --json -o')
  .option('--json', 'print the merged result as JSON')
  .option('-o, --output <file>', 'write the merged result as JSON here')
  .action((files: string[], opts) => {
    status = mergeCommand(files, opts);
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
  .option('--schedule <steps>', 'replay this schedule first (as printed by isolab explore: 0*120,1*17,e1.5,p0>1), then the policy, as run does')
  .option('--kernel <key=value>', 'set a kernel option over the scenario\'s (repeatable), as explore takes it', collect)
  .action((file: string, opts) => {
    status = traceCommand(file, opts);
  });

program
  .command('measure')
  .description('run a scenario on a CPU profile and print what it cost: cycles and time per CPU, task, syscall and operation, by category, with the counts behind each figure')
  .argument('<file>', 'scenario file (YAML)')
  .option('--profile <name>', 'the CPU profile of the cost table (default: the table\'s default; docs/measure.md lists them)')
  .option('--cost <file>', 'a cost table of your own, in the shape of src/cost/costs.yaml')
  .option('--seed <n>', 'seed of the random schedule (overrides the scenario)', integer('--seed'))
  .option('--max-steps <n>', 'stop after this many steps (overrides the scenario)', integer('--max-steps'))
  .option('--schedule <steps>', 'replay this schedule first (as printed by isolab explore), then the policy, as run does')
  .option('--kernel <key=value>', 'set a kernel option over the scenario\'s (repeatable)', collect)
  .option('--param <name=value>', "set one of the scenario's params (repeatable)", collect)
  .option('--json', 'print the report as JSON')
  .option('-o, --output <file>', 'write here instead of stdout (replaced only when complete)')
  .action((file: string, opts) => {
    status = measureCommand(file, opts);
  });

program
  .command('compare')
  .description("run the sides of a debate (the scenario's sides: block, or --side) and set their counts and costs side by side, with each side's ratio to the first")
  .argument('<file>', 'scenario file (YAML)')
  .option('--side <name:settings>', 'a side instead of the scenario\'s: NAME:key=value,... with kernel options and profile=P (repeatable; at least two)', collect)
  .option('--profile <name>', 'the cost profile of a side that names none (default: the table\'s default)')
  .option('--cost <file>', 'a cost table of your own, in the shape of src/cost/costs.yaml')
  .option('--kernel <key=value>', 'set a kernel option under every side\'s (repeatable)', collect)
  .option('--param <name=value>', "set one of the scenario's params (repeatable)", collect)
  .option('--seed <n>', 'seed of the random schedule (overrides the scenario)', integer('--seed'))
  .option('--max-steps <n>', 'stop each run after this many steps', integer('--max-steps'))
  .option('--json', 'print the comparison as JSON')
  .option('-o, --output <file>', 'write here instead of stdout (replaced only when complete)')
  .action((file: string, opts) => {
    status = compareCommand(file, opts);
  });

program
  .command('sweep')
  .description("run a parameterised scenario (its params:) over a grid, each point on each side of its debate, and write PREFIX.csv and a chart, PREFIX.svg and PREFIX.png")
  .argument('<file>', 'scenario file (YAML)')
  .option('--param <name=range>', 'a param to sweep: name=from..to (every integer), name=from..to:steps (evenly spaced), name=from..to:steps:log, or name=a,b,c (repeatable: a grid)', collect)
  .option('--set <name=value>', 'fix a param for the whole sweep (repeatable)', collect)
  .option('--side <name:settings>', "a side instead of the scenario's: NAME:key=value,... with kernel options and profile=P (repeatable)", collect)
  .option('--profile <name>', 'the cost profile of a side that names none')
  .option('--cost <file>', 'a cost table of your own')
  .option('--kernel <key=value>', 'set a kernel option under every side (repeatable)', collect)
  .option('--metric <name>', 'what the chart plots: cycles (default), ns, cycles_<category>, count_<cost>, events_<count>')
  .option('--relative-to <side>', "plot each other side's metric as its excess over this side's, in per cent")
  .option('--out <prefix>', 'where to write: PREFIX.csv, PREFIX.svg, PREFIX.png (default sweep-<scenario>)')
  .option('--json', 'print the rows and the plotted points as JSON')
  .action(async (file: string, opts) => {
    status = await sweepCommand(file, opts);
  });

program
  .command('tour')
  .description('run the built-in scenarios and print each question with the answer the model finds')
  .option('--json', 'print the results as JSON')
  .action((opts: { json?: boolean }) => {
    status = tourCommand(opts);
  });

program
  .command('host')
  .description("run a scenario on this machine's kernel as a generated C program and compare every value, errno, signal and exit status with isolab's run (exit 1 if one differs, or if the scenario cannot run here); what the host cannot run is named")
  .argument('<file>', 'scenario file (YAML)')
  .option('--keep <dir>', 'write the generated C program into this directory (DIR/NAME.c)')
  .option('--cc <path>', 'the C compiler (default: $CC, then cc, gcc or clang on PATH)')
  .option('--json', 'print the report as JSON')
  .option('--stress', "repeat the scenario's race natively until the time is spent, with pinned threads and an adaptive delay, and check each outcome against isolab's run (docs/host.md)")
  .option('--schedule <s>', "with --stress: the race's schedule, as isolab run --schedule reads it (default: the scenario's schedule.steps)")
  .option('--from <result>', 'with --stress: take the schedule from a counterexample in this isolab explore --json result')
  .option('--violation <n>', 'with --from: which counterexample, from 1 (default 1)', integer('--violation'))
  .option('--race <n>', "with --stress: which race of isolab's run to repeat, from 1 in the order they began (default 1)", integer('--race'))
  .option('--seconds <n>', 'with --stress: the time budget in seconds (default 10)', integer('--seconds'))
  .option('--rounds <n>', 'with --stress: stop after this many rounds', integer('--rounds'))
  .option('--pages <n>', 'with --stress: copies of the racing mapping, swept against the kernel walking them (default 512; 1: the scenario\'s pages alone)', integer('--pages'))
  .action(async (file: string, opts) => {
    status = await hostCommand(file, opts);
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
  .command('see')
  .description('show a run in a browser, step by step: per-CPU timeline, registers, TLBs, page tables, tasks (served on 127.0.0.1, or --out one self-contained HTML file)')
  .argument('<file>', 'scenario file (YAML)')
  .option('--schedule <steps>', 'take these steps first (as printed by isolab explore: 0*120,1*17,e1.5,p0>1), then the policy, as run does')
  .option('--replay', 'replay --schedule as isolab replay does, checking the invariants after each step: the page opens at the first violation')
  .option('--invariants <list>', 'with --replay (implies it): comma-separated invariants to check (default: all)')
  .option('--complete', 'with --replay: after the schedule, run on until nothing can (lowest CPU first)')
  .addOption(new Option('--until <point>', 'with --replay: as the search that found the schedule (isolab explore --until)').choices(['end', 'ops']))
  .option('--kernel <key=value>', "set a kernel option over the scenario's (repeatable)", collect)
  .option('--param <name=value>', "set one of the scenario's params (repeatable)", collect)
  .option('--seed <n>', 'seed of the random schedule (overrides the scenario)', integer('--seed'))
  .option('--max-steps <n>', 'stop after this many steps (overrides the scenario)', integer('--max-steps'))
  .option('--compare', "record the scenario's sides (its sides: block) and show them side by side, aligned on their operations")
  .option('--side <NAME:key=value,...>', 'a side to compare (repeatable; implies --compare): kernel options, or profile=P for its CPU features', collect)
  .option('--port <n>', 'serve on this port of 127.0.0.1 (default: a free one)', integer('--port'))
  .option('--out <file>', 'write one self-contained HTML file instead of serving (replaced only when complete)')
  .action(async (file: string, opts) => {
    status = await seeCommand(file, opts);
  });

program
  .command('schema')
  .description('print the JSON Schema of scenario files (for editors), or of run --json or replay --json output')
  .option('--result', 'the schema of isolab run --json')
  .option('--replay', 'the schema of isolab replay --json')
  .option('-o, --output <file>', 'write here instead of stdout')
  .action((opts) => {
    status = schemaCommand(opts);
  });

try {
  await program.parseAsync(process.argv);
  process.exitCode = status;
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.exitCode === 0 ? 0 : 2);
  if (e instanceof ScenarioError || e instanceof CostTableError) {
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
