/**
 * `isolab host --stress`: the race of a scenario's schedule repeated on this machine's kernel.
 * The expectations come from Linux's semantics, not from a run: a store made before fork is in
 * the child and is never lost (the child's PTE keeps its dirtiness, mm/memory.c
 * copy_present_pte); a store made after fork is not in the child, whose page MADV_FREE lets
 * the kernel discard (it reads 1 or 0); without MADV_FREE no page of the child is ever
 * discarded. Whether this host's kernel loses the write in the window is reported, not
 * assumed: the race is narrow and a short budget may not hit it.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runStress, type CopyOutcome, type StressOutcome, type StressReport } from '../../src/host/stress.js';
import { compileScenarioFile } from '../../src/scenario/index.js';
import { hostTestSkipReason } from './helpers.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const cli = join(root, 'dist/src/cli/main.js');
const SKIP = hostTestSkipReason();
const FILE = join(root, 'scenarios/fork-madvfree-lost.yaml');

function isolab(...args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8' });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** The values an outcome shows for the child's two loads of $buf: before and after MADV_PAGEOUT. */
function childLoads(o: StressOutcome | CopyOutcome): string[] {
  return o.values.filter((v) => v.startsWith('child: load [$buf]')).map((v) => /= (\S+)/.exec(v.slice(v.indexOf(') = ')))![1]);
}

/** The racing operations as `thread: label`. */
function racing(r: StressReport): string[] {
  return r.racing.map((op) => `${op.thread}: ${op.what}`).sort();
}

/** Runs `fn` on a variant of fork-madvfree-lost (its text with `replace` applied) written to a temporary file. */
async function onVariant<T>(name: string, replace: (text: string) => string, fn: (file: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'isolab-stress-'));
  try {
    const file = join(dir, name);
    writeFileSync(file, replace(readFileSync(FILE, 'utf8')));
    return await fn(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Checks what any stress report of the fork/store race must show, whatever the kernel did in the window. */
function checkForkStoreRace(r: StressReport, madvFree: boolean): void {
  assert.equal(r.ran, true);
  assert.equal(r.trouble, undefined);
  assert.deepEqual(racing(r), ['p: fork()', 'writer: store [$buf] = 2']);
  assert.ok(r.rounds >= 50, `only ${r.rounds} rounds`);
  assert.equal(r.outcomes.reduce((s, o) => s + o.rounds, 0), r.rounds, 'every round has an outcome');
  assert.equal(r.timeouts, 0);
  // The delay brought each order about by itself at least once.
  const storeIsFirst = r.racing[0].thread === 'writer';
  const storeFirst = (o: StressOutcome | CopyOutcome): number => (storeIsFirst ? o.firstFirst : o.secondFirst);
  const forkFirst = (o: StressOutcome | CopyOutcome): number => (storeIsFirst ? o.secondFirst : o.firstFirst);
  assert.ok(r.outcomes.some((o) => storeFirst(o) > 0), 'some round ran the store wholly before fork');
  assert.ok(r.outcomes.some((o) => forkFirst(o) > 0), 'some round ran fork wholly before the store');
  // Each copy of the widened mapping is a page of its own: the same holds copy by copy.
  for (const o of [...r.outcomes, ...r.copyOutcomes]) {
    const [seen, after] = childLoads(o);
    if (o.values.length > 0) assert.ok(seen !== undefined && after !== undefined, `outcome ${o.id} shows the child's loads`);
    // The store before fork: the child has it, and keeps it.
    if (storeFirst(o) > 0 && seen !== undefined) assert.deepEqual([seen, after], ['2', '2'], `outcome ${o.id}: ${o.values.join('; ')}`);
    // Fork before the store: the child has the old value; with MADV_FREE the kernel may discard it.
    if (forkFirst(o) > 0 && seen !== undefined) {
      assert.equal(seen, '1');
      assert.ok(madvFree ? after === '1' || after === '0' : after === '1', `outcome ${o.id}: ${o.values.join('; ')}`);
    }
    // A value the child read that it then lost: only ever in a round where the two overlapped, and only with MADV_FREE.
    if (seen === '2' && after === '0') {
      assert.ok(madvFree);
      assert.equal(storeFirst(o) + forkFirst(o), 0);
    }
  }
}

test('host --stress fork-madvfree-lost: the writer and fork cross on pinned CPUs; each order gives what Linux gives', { skip: SKIP ?? false, timeout: 120_000 }, async () => {
  const r = await runStress(compileScenarioFile(FILE), { seconds: 4 });
  checkForkStoreRace(r, true);
  assert.equal(r.widened.copies, 512);
  assert.equal(r.copyOutcomes.reduce((s, o) => s + o.copies, 0), r.rounds * 512, 'every copy of every round has an outcome');
  // The racing tasks sit on the host CPUs of their scenario CPUs (0 and 1), distinct when the host has two.
  assert.deepEqual(r.racing.map((op) => op.cpu).sort(), [0, 1]);
  if (readdirSync('/sys/devices/system/cpu').filter((d) => /^cpu\d+$/.test(d)).length >= 2) assert.notEqual(r.racing[0].hostCpu, r.racing[1].hostCpu);
  // isolab's outcome under the schedule is the loss: a violation exactly when the host gave it, from overlapping rounds only.
  const ce = r.outcomes.find((o) => o.counterexample);
  if (ce) assert.deepEqual(childLoads(ce), ['2', '0']);
  assert.equal(r.violations, ce && !ce.serial ? ce.rounds : 0);
  const copyCe = r.copyOutcomes.find((o) => o.counterexample);
  if (copyCe) assert.deepEqual(childLoads(copyCe), ['2', '0']);
  assert.equal(r.copyViolations, copyCe && !copyCe.serial ? copyCe.copies : 0);
  console.log(`# fork-madvfree-lost --stress: ${r.rounds} rounds of 512 pages, ${r.overlaps} overlapping, ${r.copyViolations} pages lost the writer's value (reported, not asserted)`);
});

test('host --stress control: without MADV_FREE the child never loses the write, whatever the order', { skip: SKIP ?? false, timeout: 120_000 }, async () => {
  // Without the MADV_FREE (and the expectations of the loss), the same story.
  const withoutFree = (text: string): string => {
    const free = '      - madvise: { start: $buf, len_in: PAGE_SIZE, behavior: MADV_FREE }\n        expect: 0\n';
    assert.ok(text.includes(free));
    const story = text.replace(free, '').replace(/        note: the page is now lazyfree[^\n]*\n/, '');
    return story.slice(0, story.indexOf('\nexpect:\n') + 1);
  };
  // A schedule with fork in flight while the writer stores (the race is checked below).
  const r = await onVariant('nofree.yaml', withoutFree, (file) => runStress(compileScenarioFile(file), { seconds: 3, schedule: '0*88,1*18' }));
  checkForkStoreRace(r, false);
  assert.equal(r.violations, 0);
  assert.equal(r.copyViolations, 0);
  assert.equal(r.widened.copies, 512);
  assert.ok(![...r.outcomes, ...r.copyOutcomes].some((o) => childLoads(o)[1] === '0'), 'no outcome has the child read 0');
});

test('host --stress --from: the schedule of an explore counterexample, with the invariant it broke', { skip: SKIP ?? false, timeout: 180_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'isolab-stress-'));
  try {
    const result = join(dir, 'explore.json');
    const e = isolab('explore', 'scenarios/fork-madvfree-lost.yaml', '--json', '--first', '--invariants', 'read_stability', '--preemptions', '2', '-o', result);
    assert.equal(e.status, 1, e.stderr);
    const found = JSON.parse(readFileSync(result, 'utf8')) as { violations: { text: string; invariant: string }[] };
    // The text report offers the same schedule to isolab host --stress.
    const text = isolab('explore', 'scenarios/fork-madvfree-lost.yaml', '--first', '--invariants', 'read_stability', '--preemptions', '2');
    assert.ok(text.stdout.includes(`  host:   isolab host scenarios/fork-madvfree-lost.yaml --stress --schedule ${found.violations[0].text}\n`), text.stdout);
    const r = isolab('host', 'scenarios/fork-madvfree-lost.yaml', '--stress', '--from', result, '--rounds', '200', '--json');
    assert.ok(r.status === 0 || r.status === 1, r.stderr);
    const report = JSON.parse(r.stdout) as StressReport;
    assert.equal(report.schedule, found.violations[0].text);
    assert.equal(report.property?.invariant, 'read_stability');
    assert.equal(report.rounds, 200);
    checkForkStoreRace(report, true);
    assert.equal(r.status, report.violations + report.copyViolations > 0 ? 1 : 0);
    // A counterexample number the result does not have.
    const bad = isolab('host', 'scenarios/fork-madvfree-lost.yaml', '--stress', '--from', result, '--violation', '2');
    assert.equal(bad.status, 2);
    assert.equal(bad.stderr, 'isolab: --violation: 2: the result has counterexamples 1 to 1\n');
    // A result for another scenario.
    const other = isolab('host', 'scenarios/fork-dirty-race.yaml', '--stress', '--from', result);
    assert.equal(other.status, 2);
    assert.equal(other.stderr, `isolab: --from: ${result}: a result for scenario "fork-madvfree-lost", not "fork-dirty-race"\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('host --stress: a run with no race, options without --stress and bad budgets are one-line errors', () => {
  const cases: [string[], string][] = [
    [['scenarios/segv-codes.yaml', '--stress'], 'isolab: --schedule: segv-codes has no schedule.steps: give --schedule S or --from RESULT.json\n'],
    [['scenarios/fork-madvfree-lost.yaml', '--schedule', '0*5'], 'isolab: --schedule: only with --stress\n'],
    [['scenarios/fork-madvfree-lost.yaml', '--seconds', '3'], 'isolab: --seconds: only with --stress\n'],
    [['scenarios/fork-madvfree-lost.yaml', '--stress', '--violation', '1'], 'isolab: --violation: only with --from\n'],
    [['scenarios/fork-madvfree-lost.yaml', '--stress', '--schedule', '0*5', '--from', 'x.json'], 'isolab: --schedule: give the schedule or --from, not both\n'],
    [['scenarios/fork-madvfree-lost.yaml', '--stress', '--from', 'no/such.json'], 'isolab: --from: no/such.json: no such file\n'],
    [['scenarios/fork-madvfree-lost.yaml', '--stress', '--from', 'package.json'], 'isolab: --from: package.json: not a result of isolab explore --json\n'],
    [['scenarios/fork-madvfree-lost.yaml', '--stress', '--seconds', '0'], 'isolab: --seconds: 0: from more than 0 to 86400\n'],
    [['scenarios/fork-madvfree-lost.yaml', '--stress', '--race', '9'], 'isolab: --race: 9: the run has races 1 to 3\n'],
    [['scenarios/fork-madvfree-lost.yaml', '--stress', '--pages', '0'], 'isolab: --pages: 0: from 1 to 4096\n'],
    [['scenarios/fork-madvfree-lost.yaml', '--pages', '8'], 'isolab: --pages: only with --stress\n'],
  ];
  if (SKIP) cases.splice(0, cases.length, ...cases.filter(([args]) => !args.includes('--stress') || args.includes('--violation')));
  for (const [args, stderr] of cases) {
    const r = isolab('host', ...args);
    assert.equal(r.stderr, stderr, args.join(' '));
    assert.equal(r.status, 2, args.join(' '));
    assert.equal(r.stdout, '');
  }
  if (SKIP) return;
  // Every task of a one-CPU story runs alone: nothing is in flight while another task completes.
  const one = isolab('host', 'scenarios/segv-codes.yaml', '--stress', '--schedule', '0*40');
  assert.equal(one.status, 2);
  assert.match(one.stderr, /^isolab: --schedule: under this schedule no operation of one task completes while another task's is in flight: there is no race to repeat\n$/);
});

test('interrupted: Ctrl-C of isolab host leaves no process of the generated program behind, a blocked one included', { skip: SKIP ?? false, timeout: 120_000 }, async () => {
  // p blocks for ever in read(2) on its own pipe (its write end is open): it writes nothing, so no SIGPIPE would end it.
  const dir = mkdtempSync(join(tmpdir(), 'isolab-stress-'));
  const file = join(dir, 'blocks.yaml');
  writeFileSync(file, `name: blocks
processes:
  - name: p
    ops:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }
        as: buf
      - pipe: { fildes: $buf }
      - load: { addr: $buf, size: 4 }
        as: rfd
      - read: { fd: $rfd, buf: $buf + 64, count: 8 }
`);
  const child = spawn(process.execPath, [cli, 'host', file], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    /** Processes whose parent is `ppid`. */
    const childrenOf = (ppid: number): number[] => procs().filter((p) => p.ppid === ppid).map((p) => p.pid);
    /** Processes of session `sid`. */
    const inSession = (sid: number): number[] => procs().filter((p) => p.sid === sid).map((p) => p.pid);
    // Wait for the generated program (isolab's child running .../prog, not the compiler) to have started the scenario's process.
    const isProgram = (pid: number): boolean => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0].endsWith('/prog');
      } catch {
        return false;
      }
    };
    let program = 0;
    for (let i = 0; i < 600 && !program; i++) {
      await new Promise((r) => setTimeout(r, 100));
      program = childrenOf(child.pid!).find((p) => isProgram(p) && inSession(p).length > 1) ?? 0;
    }
    assert.ok(program > 0, 'the generated program started');
    await new Promise((r) => setTimeout(r, 300));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    child.kill('SIGINT');
    const how = await exited;
    assert.equal(how.signal, 'SIGINT', 'isolab ends as a program does on Ctrl-C');
    for (let i = 0; i < 50 && inSession(program).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(inSession(program), [], 'nothing of the program is left');
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Every process: its pid, parent and session (/proc/PID/stat; comm may hold spaces and parentheses). */
function procs(): { pid: number; ppid: number; sid: number }[] {
  const out: { pid: number; ppid: number; sid: number }[] = [];
  for (const name of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.push({ pid: Number(name), ppid: Number(f[1]), sid: Number(f[3]) });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

test('host --stress: widening follows loads, stores and range syscalls only; anything else runs the race on one page, with the reason', { skip: SKIP ?? false, timeout: 120_000 }, async () => {
  // The child writes its page to /dev/null: write(2) reads the mapping, which widening cannot follow.
  const withWrite = (text: string): string => {
    const anchor = '            - repeat: { count: 12, ops: [getpid] }\n';
    assert.ok(text.includes(anchor));
    return text.replace(anchor, `${anchor}            - write: { fd: 1, buf: $buf, count: 8 }\n`);
  };
  const r = await onVariant('write.yaml', withWrite, (file) => runStress(compileScenarioFile(file), { seconds: 2 }));
  assert.equal(r.widened.copies, 1);
  assert.ok('why' in r.widened && /write\(.*\) uses \$buf, which widening cannot follow/.test(r.widened.why), JSON.stringify(r.widened));
  assert.deepEqual(r.copyOutcomes, []);
  checkForkStoreRace(r, true);
  // --pages 1: the scenario's page alone.
  const one = await runStress(compileScenarioFile(FILE), { rounds: 30, pages: 1 });
  assert.deepEqual(one.widened, { copies: 1, why: '--pages 1' });
  assert.equal(one.rounds, 30);
});

test('host --stress fork-dirty-race: the dirty bit the race moves is not visible in values; the parent reads its store whatever the order', { skip: SKIP ?? false, timeout: 120_000 }, async () => {
  const r = await runStress(compileScenarioFile(join(root, 'scenarios/fork-dirty-race.yaml')), { seconds: 2 });
  assert.equal(r.trouble, undefined);
  assert.deepEqual(racing(r), ['p: fork()', 'writer: store [$buf] = 2']);
  // The writer's store lands in the parent's page before or after fork's write-protect (then by a COW fault): the parent reads 2 either way.
  assert.ok(r.copyOutcomes.length > 0);
  for (const o of r.copyOutcomes) assert.deepEqual(o.values.map((v) => v.slice(v.indexOf(') = ') + 4)), ['2'], o.values.join('; '));
  assert.equal(r.violations, 0);
  assert.equal(r.copyViolations, 0);
  // isolab's outcome (the parent reads 2) came from rounds where one operation ran wholly before the other too.
  assert.equal(r.counterexampleSerial, true);
});
