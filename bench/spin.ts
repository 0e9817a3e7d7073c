/**
 * The explorer against SPIN (a child process of `npm run bench`, or `node dist/bench/spin.js
 * [--limit S] [--spin-memlim MB]`): seed 003's race searched exhaustively by both, in the same
 * run, one after the other.
 *
 * - SPIN: ../shared/perf/spin-dirtybit.pml (beside the repository) copied to a temporary
 *   directory, `spin -a -DNCPU=2 -DNPAGES=2 spin-dirtybit.pml && gcc -O2 -DSAFETY -o pan pan.c
 *   && ./pan -m100000`, the compile (spin -a and gcc) and the search timed apart; then the 3×2
 *   variant, its search interrupted at the limit (SIGINT: pan prints its statistics and says
 *   "Search not completed"), built with -DMEMLIM so that it cannot take the machine's memory.
 *   `spin` is taken from PATH, or installed from Debian's package (apt-get) when running as
 *   root; if neither works, SPIN is reported unavailable with the reason.
 * - isolab: scenarios/fork-dirty-race.yaml (2 CPUs) and bench/fork-dirty-race-3cpu.yaml (a
 *   second writer on CPU 2), `--until ops`, fork_wrprotect=cmpxchg, DPOR with no preemption
 *   bound, each in its own process (`--isolab FILE`) that stops itself at the limit and prints a
 *   progress line (executions, steps, new steps, DPOR stack depth, RSS) about every second; the
 *   parent kills it if it overruns.
 *
 * Prints one JSON line: each run's figures, the ratio isolab / SPIN (compile + search) for 2×2,
 * and a few (executions, steps, depth, RSS) points of each isolab run.
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileScenarioFile } from '../src/scenario/index.js';
import { explore, withKernelOptions } from '../src/explore/explore.js';
import { DporSearch } from '../src/explore/dpor.js';

const INVARIANTS = ['stale_tlb', 'lost_dirty', 'rw0_dirty', 'debug_checks'];
const KERNEL = ['fork_wrprotect=cmpxchg'];

/** One progress point of an isolab run. */
export interface Progress {
  seconds: number;
  executions: number;
  /** Steps, replays included. */
  steps: number;
  /** Steps not replayed (each execution's steps after its backtrack point). */
  newSteps: number | null;
  /** Length of the DPOR stack (states on the current path) at the last execution's end. */
  depth: number | null;
  maxDepth: number | null;
  rssMB: number;
  heapMB: number;
}

export interface IsolabRun {
  scenario: string;
  cpus: number;
  finished: boolean;
  /** Why it stopped, when it did not finish: 'limit', 'killed', or an error. */
  stoppedBy: string | null;
  exhaustive: boolean | null;
  violations: number | null;
  executions: number;
  steps: number;
  newSteps: number | null;
  seconds: number;
  stepsPerSecond: number;
  newStepsPerSecond: number | null;
  peakRssMB: number | null;
  samples: Progress[];
}

export interface PanRun {
  ncpu: number;
  npages: number;
  spinSeconds: number;
  gccSeconds: number;
  compileSeconds: number;
  searchSeconds: number | null;
  /** pan's own "elapsed time". */
  panSeconds: number | null;
  finished: boolean;
  stoppedBy: string | null;
  statesStored: number | null;
  transitions: number | null;
  depthReached: number | null;
  errors: number | null;
  memoryMB: number | null;
  command: string;
  notes: string[];
}

const round2 = (x: number): number => Math.round(x * 100) / 100;
const mb = (bytes: number): number => Math.round(bytes / 1048576);

// ---- the isolab side: one search in this process -------------------------------------------

class Stop extends Error {}

/** In a child process: searches `file` until done or `limitS` seconds, printing progress lines, then the result. */
function runIsolab(file: string, limitS: number, sampleMs: number): void {
  // New steps: SearchStats counts the steps replayed from boot. The stack depth is not in it:
  // read where each execution starts (the search's path); a bench-only hook, reported as
  // unavailable rather than wrong if the search's shape changes.
  const proto = DporSearch.prototype as unknown as { fresh?: (...a: unknown[]) => unknown };
  let replayed = 0;
  let search: { nodes?: unknown[] } | undefined;
  let hooked = false;
  if (typeof proto.fresh === 'function') {
    const fresh = proto.fresh;
    proto.fresh = function (this: { nodes?: unknown[] }, ...a: unknown[]) {
      search = this;
      return fresh.apply(this, a);
    };
    hooked = true;
  }
  const c = withKernelOptions(compileScenarioFile(file), KERNEL);
  const t0 = performance.now();
  let last = { executions: 0, steps: 0 };
  let maxDepth = 0;
  let nextSample = sampleMs;
  const point = (now: number): Progress => {
    const depth = hooked && Array.isArray(search?.nodes) ? search.nodes.length : null;
    if (depth !== null && depth > maxDepth) maxDepth = depth;
    return {
      seconds: round2((now - t0) / 1000),
      executions: last.executions,
      steps: last.steps,
      newSteps: last.steps - replayed,
      depth,
      maxDepth: hooked ? maxDepth : null,
      rssMB: mb(process.memoryUsage.rss()),
      heapMB: mb(process.memoryUsage().heapUsed),
    };
  };
  let finished = false;
  let stoppedBy: string | null = null;
  let exhaustive: boolean | null = null;
  let violations: number | null = null;
  try {
    const r = explore(c, {
      mode: 'dpor', invariants: INVARIANTS, evictions: 0, preemptions: Infinity, maxDepth: Infinity, executions: Infinity,
      seed: 1, pctDepth: 2, until: 'ops', stopAtFirst: false, fingerprints: false, minimise: false,
      onExecution: (s) => {
        last = { executions: s.executions, steps: s.steps };
        replayed = s.replayed ?? 0;
        if (hooked && Array.isArray(search?.nodes) && search.nodes.length > maxDepth) maxDepth = search.nodes.length;
        const now = performance.now();
        if (now - t0 >= nextSample) {
          nextSample += sampleMs;
          process.stdout.write(JSON.stringify({ progress: point(now) }) + '\n');
        }
        if (now - t0 >= limitS * 1000) throw new Stop();
      },
    });
    last = { executions: r.executions, steps: r.steps };
    replayed = r.replayed ?? 0;
    finished = true;
    exhaustive = r.exhaustive;
    violations = r.violations.length;
  } catch (e) {
    if (!(e instanceof Stop)) stoppedBy = e instanceof Error ? e.message : String(e);
    else stoppedBy = 'limit';
  }
  const end = point(performance.now());
  const secs = Math.max(end.seconds, 1e-3);
  const run: IsolabRun = {
    scenario: c.name, cpus: c.system.cpus ?? 0, finished, stoppedBy, exhaustive, violations,
    executions: end.executions, steps: end.steps, newSteps: end.newSteps, seconds: end.seconds,
    stepsPerSecond: Math.round(end.steps / secs), newStepsPerSecond: end.newSteps === null ? null : Math.round(end.newSteps / secs),
    peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024), samples: [end],
  };
  process.stdout.write(JSON.stringify({ result: run }) + '\n');
}

/** Runs runIsolab in a child process; kills it 30 s after the limit; keeps its progress lines. */
function isolabChild(file: string, limitS: number): Promise<IsolabRun> {
  return new Promise((done) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, ['--max-old-space-size=8192', fileURLToPath(import.meta.url), '--isolab', file, '--limit', String(limitS)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const samples: Progress[] = [];
    let result: IsolabRun | undefined;
    let buf = '';
    let err = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const o = JSON.parse(line) as { progress?: Progress; result?: IsolabRun };
          if (o.progress) samples.push(o.progress);
          if (o.result) result = o.result;
        } catch {
          // not one of ours
        }
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      err = (err + d).slice(-2000);
    });
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, (limitS + 30) * 1000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (result) {
        result.samples = [...samples, ...result.samples];
        return done(result);
      }
      const p = samples[samples.length - 1];
      const secs = p?.seconds ?? (performance.now() - t0) / 1000;
      const why = killed ? `killed at ${limitS + 30} s` : `exited (${signal ?? code}): ${err.trim().split('\n').pop() ?? ''}`;
      done({
        scenario: file, cpus: 0, finished: false, stoppedBy: why, exhaustive: null, violations: null,
        executions: p?.executions ?? 0, steps: p?.steps ?? 0, newSteps: p?.newSteps ?? null, seconds: round2(secs),
        stepsPerSecond: p ? Math.round(p.steps / Math.max(secs, 1e-3)) : 0,
        newStepsPerSecond: p?.newSteps != null ? Math.round(p.newSteps / Math.max(secs, 1e-3)) : null,
        peakRssMB: samples.length ? Math.max(...samples.map((s) => s.rssMB)) : null, samples,
      });
    });
  });
}

// ---- the SPIN side ---------------------------------------------------------------------------

/** `spin` on PATH, or installed from Debian's package; a reason when neither. */
function findSpin(): { ok: true; version: string; installed: boolean } | { ok: false; reason: string } {
  const probe = (): string | null => {
    const r = spawnSync('spin', ['-V'], { encoding: 'utf8' });
    return r.status === 0 ? r.stdout.trim() : null;
  };
  let v = probe();
  if (v) return { ok: true, version: v, installed: false };
  if (process.platform !== 'linux' || process.getuid?.() !== 0 || !existsSync('/usr/bin/apt-get')) {
    return { ok: false, reason: 'spin is not on PATH, and installing it needs root and apt-get (Debian package "spin")' };
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const up = spawnSync('apt-get', ['update'], { encoding: 'utf8', env, timeout: 300_000 });
  if (up.status !== 0) return { ok: false, reason: `apt-get update failed: ${(up.stderr || up.error?.message || '').trim().split('\n').pop()}` };
  const inst = spawnSync('apt-get', ['install', '-y', 'spin'], { encoding: 'utf8', env, timeout: 600_000 });
  if (inst.status !== 0) return { ok: false, reason: `apt-get install -y spin failed: ${(inst.stderr || inst.error?.message || '').trim().split('\n').pop()}` };
  v = probe();
  return v ? { ok: true, version: v, installed: true } : { ok: false, reason: 'spin installed by apt-get but `spin -V` fails' };
}

const num = (re: RegExp, text: string): number | null => {
  const m = re.exec(text);
  return m ? Number(m[1]) : null;
};

/** Parses pan's report (or, when it never printed one, its last progress line). */
function parsePan(out: string): Pick<PanRun, 'statesStored' | 'transitions' | 'depthReached' | 'errors' | 'memoryMB' | 'panSeconds'> & { completed: boolean } {
  const progress = [...out.matchAll(/Depth=\s*(\d+)\s+States=\s*([\d.e+]+)\s+Transitions=\s*([\d.e+]+)\s+Memory=\s*([\d.]+)\s+t=\s*([\d.]+)/g)].pop();
  return {
    statesStored: num(/([\d.]+(?:e[+-]?\d+)?) states, stored/, out) ?? (progress ? Number(progress[2]) : null),
    transitions: num(/([\d.]+(?:e[+-]?\d+)?) transitions \(= stored\+matched\)/, out) ?? (progress ? Number(progress[3]) : null),
    depthReached: num(/depth reached (\d+)/, out) ?? (progress ? Number(progress[1]) : null),
    errors: num(/errors: (\d+)/, out),
    memoryMB: num(/([\d.]+)\s+total actual memory usage/, out) ?? (progress ? Number(progress[4]) : null),
    panSeconds: num(/pan: elapsed time ([\d.e+]+) seconds/, out) ?? (progress ? Number(progress[5]) : null),
    completed: /State-vector/.test(out) && !/Search not completed/.test(out),
  };
}

/** Compiles and runs pan for NCPU × NPAGES, interrupting the search at `limitS` seconds. */
async function runPan(pml: string, ncpu: number, npages: number, limitS: number, memlimMB: number | null): Promise<PanRun> {
  const dir = mkdtempSync(join(tmpdir(), 'isolab-spin-'));
  const notes: string[] = [];
  const gccArgs = ['-O2', '-DSAFETY', ...(memlimMB ? [`-DMEMLIM=${memlimMB}`] : []), '-o', 'pan', 'pan.c'];
  const command = `spin -a -DNCPU=${ncpu} -DNPAGES=${npages} spin-dirtybit.pml && gcc ${gccArgs.join(' ')} && ./pan -m100000`;
  const base: PanRun = {
    ncpu, npages, spinSeconds: 0, gccSeconds: 0, compileSeconds: 0, searchSeconds: null, panSeconds: null, finished: false, stoppedBy: null,
    statesStored: null, transitions: null, depthReached: null, errors: null, memoryMB: null, command, notes,
  };
  try {
    copyFileSync(pml, join(dir, 'spin-dirtybit.pml'));
    let t = performance.now();
    const sp = spawnSync('spin', ['-a', `-DNCPU=${ncpu}`, `-DNPAGES=${npages}`, 'spin-dirtybit.pml'], { cwd: dir, encoding: 'utf8' });
    base.spinSeconds = round2((performance.now() - t) / 1000);
    if (sp.status !== 0) return { ...base, stoppedBy: `spin -a failed: ${(sp.stderr || sp.stdout || sp.error?.message || '').trim().split('\n').pop()}` };
    t = performance.now();
    const cc = spawnSync('gcc', gccArgs, { cwd: dir, encoding: 'utf8' });
    base.gccSeconds = round2((performance.now() - t) / 1000);
    base.compileSeconds = round2(base.spinSeconds + base.gccSeconds);
    if (cc.status !== 0) return { ...base, stoppedBy: `gcc failed: ${(cc.stderr || cc.error?.message || '').trim().split('\n').pop()}` };
    const { out, seconds, interrupted } = await new Promise<{ out: string; seconds: number; interrupted: boolean }>((done) => {
      const t1 = performance.now();
      const pan = spawn('./pan', ['-m100000'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      pan.stdout.setEncoding('utf8');
      pan.stdout.on('data', (d: string) => (out += d));
      pan.stderr.setEncoding('utf8');
      pan.stderr.on('data', (d: string) => (out += d));
      let interrupted = false;
      const soft = setTimeout(() => {
        interrupted = true;
        pan.kill('SIGINT');
      }, limitS * 1000);
      const hard = setTimeout(() => pan.kill('SIGKILL'), (limitS + 30) * 1000);
      pan.on('close', () => {
        clearTimeout(soft);
        clearTimeout(hard);
        done({ out, seconds: (performance.now() - t1) / 1000, interrupted });
      });
    });
    const { completed, ...p } = parsePan(out);
    if (/max search depth too small/.test(out)) notes.push('pan: max search depth too small (-m100000)');
    if (/out of memory|memory limit/i.test(out)) notes.push('pan ran out of memory (MEMLIM)');
    const finished = completed && !interrupted;
    return {
      ...base, ...p, searchSeconds: round2(seconds), finished,
      stoppedBy: finished ? null : interrupted ? `time limit ${limitS} s (SIGINT)` : completed ? null : `pan stopped: ${out.trim().split('\n').pop()}`,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- both, and the comparison ----------------------------------------------------------------

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (name: string, def: number): number => {
    const i = args.indexOf(name);
    if (i < 0) return def;
    const v = Number(args[i + 1]);
    if (!(v > 0)) throw new Error(`${name} needs a positive number, got ${JSON.stringify(args[i + 1])}`);
    return v;
  };
  const limitS = opt('--limit', 300);
  const at = args.indexOf('--isolab');
  if (at >= 0) return runIsolab(args[at + 1], limitS, opt('--sample-ms', 1000));
  const memlim = opt('--spin-memlim', 16384);

  const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
  const pml = resolve(root, '../shared/perf/spin-dirtybit.pml');
  let spin: { available: boolean; reason?: string; version?: string; installed?: boolean; pml: string; runs: PanRun[] } = { available: false, pml, runs: [] };
  if (!existsSync(pml)) spin.reason = `${pml} is missing (expected at ../shared/perf beside the repository)`;
  else {
    const s = findSpin();
    if (!s.ok) spin.reason = s.reason;
    else if (spawnSync('gcc', ['--version']).status !== 0) spin.reason = 'gcc is not on PATH';
    else {
      spin = { available: true, version: s.version, installed: s.installed, pml, runs: [] };
      spin.runs.push(await runPan(pml, 2, 2, limitS, null));
      spin.runs.push(await runPan(pml, 3, 2, limitS, memlim));
    }
  }
  const isolab = {
    cpus2: await isolabChild(resolve(root, 'scenarios/fork-dirty-race.yaml'), limitS),
    cpus3: await isolabChild(resolve(root, 'bench/fork-dirty-race-3cpu.yaml'), limitS),
  };
  const s22 = spin.runs.find((r) => r.ncpu === 2);
  const s32 = spin.runs.find((r) => r.ncpu === 3);
  const spinTotal = s22?.finished && s22.searchSeconds !== null ? s22.compileSeconds + s22.searchSeconds : null;
  // When isolab did not finish, its time is a lower bound and so is the ratio.
  const ratio = spinTotal ? round2(isolab.cpus2.seconds / spinTotal) : null;
  const ratioSearchOnly = s22?.finished && s22.searchSeconds ? round2(isolab.cpus2.seconds / s22.searchSeconds) : null;
  const out = {
    limitSeconds: limitS,
    spin,
    isolab,
    comparison: {
      spinSeconds: spinTotal === null ? null : round2(spinTotal),
      isolabSeconds: isolab.cpus2.seconds,
      isolabFinished: isolab.cpus2.finished,
      ratio,
      ratioIsLowerBound: !isolab.cpus2.finished,
      ratioSearchOnly,
      meets1x: ratio === null ? null : isolab.cpus2.finished && ratio <= 1,
      meetsStretch: ratio === null ? null : isolab.cpus2.finished && ratio <= 0.25,
      newStepsPerSecond: isolab.cpus2.newStepsPerSecond,
      meetsNewSteps: isolab.cpus2.newStepsPerSecond === null ? null : isolab.cpus2.newStepsPerSecond >= 100_000,
      threeCpuFinishes: isolab.cpus3.finished,
      spin3x2Finishes: s32 ? s32.finished : null,
    },
  };
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(`isolab bench (spin): ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
