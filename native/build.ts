// Builds and runs isolab's native helpers: the host-kernel oracle (native/oracle.c), which
// executes a sequence on the real kernel for comparison with the model, the fork and getpid
// benchmarks (native/forkbench.c, getpidbench.c), and the MADV_FREE finding's stress
// reproducer (native/madvfree.c).
//
// Binaries are compiled on demand into node_modules/.cache/isolab-native/, named by a hash
// of the compiler, flags and source, so an edited source gets a fresh binary and an
// unchanged one is compiled once. Each binary is compiled under a temporary name and
// renamed into place, so concurrent builds never see a half-written file.

import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CFLAGS = ['-O2', '-std=gnu11', '-Wall', '-Werror', '-pthread'];

/** What a finished child process left behind. */
interface ProcessResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** A native helper that exited unsuccessfully; `message` is its stderr text. */
export class NativeRunError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly signal: NodeJS.Signals | null,
    readonly stdout: string,
  ) {
    super(message);
    this.name = 'NativeRunError';
  }
}

/** One run of native/forkbench.c. */
export interface ForkBenchResult {
  touchedBytes: number;
  touchStrideBytes: number;
  hugePagesAllowed: boolean;
  /** VmPTE of the benchmark process after touching the region, or -1. */
  pageTableBytes: number;
  forks: number;
  /** Duration of each fork() call in the parent. */
  forkNs: number[];
  medianNs: number;
  /** Duration of each fork() plus the wait for the child's exit. */
  forkWaitNs: number[];
  forkWaitMedianNs: number;
}

/** Finds the repository's native/ directory (holding oracle.c) by walking up from this
 *  module, which is native/build.ts in the source tree or dist/native/build.js once built. */
function findNativeDir(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    for (const candidate of [dir, join(dir, 'native')]) {
      if (existsSync(join(candidate, 'oracle.c'))) return candidate;
    }
    const parent = dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}

/** True if path names an executable regular file. */
function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Returns the full path of the C compiler to use: $CC if it names one, else the first of
 *  cc, gcc, clang on PATH; null if none is found. */
function findCompiler(): string | null {
  const names = [process.env.CC, 'cc', 'gcc', 'clang'].filter(
    (n): n is string => n !== undefined && n !== '' && !/\s/.test(n),
  );
  const dirs = (process.env.PATH ?? '').split(delimiter).filter((d) => d !== '');
  for (const name of names) {
    if (isAbsolute(name)) {
      if (isExecutable(name)) return name;
      continue;
    }
    for (const dir of dirs) {
      const path = join(dir, name);
      if (isExecutable(path)) return path;
    }
  }
  return null;
}

/** Why the native helpers cannot be built on this host, or null if they can. */
export function oracleUnavailableReason(): string | null {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    return `the host is ${process.platform}/${process.arch}, not Linux x86-64`;
  }
  if (findNativeDir() === null) return 'native/oracle.c was not found';
  if (findCompiler() === null) return 'no C compiler (cc, gcc or clang) on PATH';
  return null;
}

/**
 * Kills, with SIGKILL, every process of the session `sid` (a program spawned detached leads its
 * own session): its process group, and the groups its processes made with setpgid, which a
 * kill of the leader's group would miss and which would keep its output pipes open.
 */
function killSession(sid: number): void {
  const victims = [sid];
  try {
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      try {
        // /proc/PID/stat: "pid (comm) state ppid pgrp session ...", comm may hold spaces and parentheses.
        const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        if (Number(fields[3]) === sid) victims.push(Number(name));
      } catch {
        // gone meanwhile
      }
    }
  } catch {
    // no /proc: the leader's group is all that can be named
  }
  for (const pid of victims) {
    try {
      process.kill(pid === sid ? -pid : pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** The sessions of the programs runProcess started and that have not ended. */
const liveSessions = new Set<number>();
let reapOnExit = false;

/**
 * Makes sure a program runProcess started does not outlive isolab: when isolab exits, or is
 * stopped by SIGINT, SIGTERM or SIGHUP (Ctrl-C), every live session is killed first; the signal
 * then takes its default course. Installed once, at the first program started.
 */
function killSessionsOnExit(): void {
  if (reapOnExit) return;
  reapOnExit = true;
  const killAll = (): void => {
    for (const sid of liveSessions) killSession(sid);
    liveSessions.clear();
  };
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      killAll();
      // Only isolab's own handler was there: take the signal's default action, as without it.
      if (process.listenerCount(sig) === 1) {
        process.removeListener(sig, onSignal);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, onSignal);
  }
}

/** Runs a program to completion, collecting its output. With a timeout, the program's
 *  whole session is killed when it runs out, and it is killed if isolab exits or is
 *  interrupted first. */
function runProcess(file: string, args: string[], timeoutMs?: number, cwd?: string): Promise<ProcessResult> {
  return new Promise((resolvePromise, reject) => {
    killSessionsOnExit();
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, cwd });
    if (child.pid !== undefined) liveSessions.add(child.pid);
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let timedOut = false;
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            if (child.pid !== undefined) killSession(child.pid);
          }, timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', (err) => {
      clearTimeout(timer);
      if (child.pid !== undefined) liveSessions.delete(child.pid);
      reject(err);
    });
    // 'close' comes once every process holding the pipes (forked children too) is gone.
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (child.pid !== undefined) liveSessions.delete(child.pid);
      resolvePromise({
        code,
        signal,
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
        timedOut,
      });
    });
  });
}

/** Returns the directory for compiled binaries, creating it: node_modules/.cache under the
 *  repository root, or the system temporary directory if that cannot be created. */
async function cacheDir(repoRoot: string): Promise<string> {
  for (const dir of [
    join(repoRoot, 'node_modules', '.cache', 'isolab-native'),
    join(tmpdir(), 'isolab-native'),
  ]) {
    try {
      await mkdir(dir, { recursive: true });
      return dir;
    } catch {
      // try the next one
    }
  }
  throw new Error('isolab-native: no writable cache directory');
}

/** Compiles native/<name>.c unless a binary for the same compiler, flags and source is
 *  already cached; resolves to the binary's path, or null if the host cannot build it.
 *  Rejects with the compiler's messages if compilation fails. */
async function compile(name: string): Promise<string | null> {
  if (oracleUnavailableReason() !== null) return null;
  const nativeDir = findNativeDir() as string;
  const compiler = findCompiler() as string;
  const source = join(nativeDir, `${name}.c`);
  const text = await readFile(source);
  const hash = createHash('sha256')
    .update(compiler)
    .update('\0')
    .update(CFLAGS.join(' '))
    .update('\0')
    .update(text)
    .digest('hex')
    .slice(0, 16);
  const dir = await cacheDir(dirname(nativeDir));
  const binary = join(dir, `${name}-${hash}`);
  if (isExecutable(binary)) return binary;

  const temp = `${binary}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const result = await runProcess(compiler, [...CFLAGS, '-o', temp, source]);
  if (result.code !== 0) {
    await rm(temp, { force: true });
    throw new Error(`isolab-native: ${compiler} failed on ${source}:\n${result.stderr}`);
  }
  await rename(temp, binary);
  return binary;
}

const builds = new Map<string, Promise<string | null>>();

/** compile(name), once per process. */
function buildOnce(name: string): Promise<string | null> {
  let build = builds.get(name);
  if (build === undefined) {
    build = compile(name);
    builds.set(name, build);
    build.catch(() => builds.delete(name)); // let a later call retry after a failure
  }
  return build;
}

/** Builds the host-kernel oracle and resolves to its path, or to null when this host
 *  cannot (see oracleUnavailableReason()). Rejects if the compiler reports an error. */
export function buildOracle(): Promise<string | null> {
  return buildOnce('oracle');
}

/** Builds the native fork benchmark; resolves to its path or null, as buildOracle(). */
export function buildForkBench(): Promise<string | null> {
  return buildOnce('forkbench');
}

/** Builds the native null-syscall benchmark (getpidbench.c); resolves to its path or null, as buildOracle(). */
export function buildGetpidBench(): Promise<string | null> {
  return buildOnce('getpidbench');
}

/** Runs the native getpid loop: `calls` raw getpid syscalls per round, five rounds; calls per second. */
export async function runGetpidBench(binary: string, calls = 2_000_000): Promise<{ perSecond: number; runs: number[] }> {
  const stdout = await runChecked(binary, [String(calls), '5'], 120_000);
  const r = JSON.parse(stdout) as { perSecond: number; runs: number[] };
  return { perSecond: r.perSecond, runs: r.runs };
}

/** Runs a program and returns its stdout, rejecting with a NativeRunError carrying its
 *  stderr text if it does not exit with status 0. */
async function runChecked(binary: string, args: string[], timeoutMs: number, cwd?: string): Promise<string> {
  const result = await runProcess(binary, args, timeoutMs, cwd);
  if (result.code === 0 && !result.timedOut) return result.stdout;
  const status = result.timedOut
    ? `timed out after ${timeoutMs} ms`
    : result.signal !== null
      ? `killed by ${result.signal}`
      : `exited with status ${result.code}`;
  const message = result.stderr.trim() !== '' ? result.stderr.trim() : `${binary} ${status}`;
  throw new NativeRunError(message, result.code, result.signal, result.stdout);
}

/** A fresh empty directory for the oracle to run in: on /dev/shm, a tmpfs like the model's
 *  /tmp (so that holes, SEEK_DATA and page-granular sizes behave alike), else the system's
 *  temporary directory. */
async function freshWorkDir(): Promise<string> {
  try {
    return await mkdtemp('/dev/shm/isolab-oracle-cwd-');
  } catch {
    return mkdtemp(join(tmpdir(), 'isolab-oracle-cwd-'));
  }
}

/** Runs a sequence (the oracle's line format) on the host kernel with the oracle binary
 *  and resolves to its result lines. The oracle runs in a fresh empty directory, where the
 *  sequence's relative paths are (the model's /tmp). Rejects with the oracle's stderr text
 *  when it exits nonzero: 2 for a malformed sequence, 3 when the arena is busy, or the
 *  status of an `exit` run by the initial process. */
export async function runOracle(
  binary: string,
  sequence: string,
  options: { timeoutMs?: number } = {},
): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'isolab-oracle-'));
  const cwd = await freshWorkDir();
  try {
    const file = join(dir, 'sequence.txt');
    await writeFile(file, sequence);
    const stdout = await runChecked(binary, [file], options.timeoutMs ?? 30_000, cwd);
    const lines = stdout.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    return lines;
  } finally {
    await rm(dir, { recursive: true, force: true });
    await rm(cwd, { recursive: true, force: true });
  }
}

/** Runs the fork benchmark binary for `forks` forks (4 KiB pages unless hugePages). */
export async function runForkBench(
  binary: string,
  forks = 5,
  options: { hugePages?: boolean; timeoutMs?: number } = {},
): Promise<ForkBenchResult> {
  const args = [String(forks), ...(options.hugePages === true ? ['--thp'] : [])];
  const stdout = await runChecked(binary, args, options.timeoutMs ?? 300_000);
  return JSON.parse(stdout) as ForkBenchResult;
}

/** One run of native/madvfree.c (its JSON line; the field meanings are in its header comment). */
export interface MadvfreeResult {
  mode: 'free' | 'nofree' | 'rewrite';
  parent: 'cow' | 'unmap';
  pages: number;
  seconds: number;
  rounds: number;
  /** Rounds in which the writer and fork crossed inside the region (the child saw W in some pages but not all). */
  crossings: number;
  /** Pages the child saw holding W under a clean PTE (smaps), summed over the rounds. */
  windowHits: number;
  /** Pages whose W the child read and then lost to MADV_PAGEOUT, summed over the rounds. */
  lostPages: number;
  lostRounds: number;
  /** The parent's and the writer's CPUs (-1: not pinned, the host has one CPU). */
  cpus: [number, number];
  smaps: boolean;
  /** False when MADV_PAGEOUT failed (a kernel older than 5.4): the run stopped there. */
  pageout: boolean;
  finalDelay: number;
}

/** Builds the MADV_FREE reproducer; resolves to its path or null, as buildOracle(). */
export function buildMadvfree(): Promise<string | null> {
  return buildOnce('madvfree');
}

/** Runs the MADV_FREE reproducer for `seconds` (and at most `rounds` rounds when given). */
export async function runMadvfree(
  binary: string,
  options: { seconds: number; rounds?: number; pages?: number; mode?: MadvfreeResult['mode']; parent?: MadvfreeResult['parent'] },
): Promise<MadvfreeResult> {
  const args = ['--seconds', String(options.seconds), '--mode', options.mode ?? 'free', '--parent', options.parent ?? 'cow'];
  if (options.rounds !== undefined) args.push('--rounds', String(options.rounds));
  if (options.pages !== undefined) args.push('--pages', String(options.pages));
  const stdout = await runChecked(binary, args, options.seconds * 1000 + 60_000);
  return JSON.parse(stdout) as MadvfreeResult;
}

/** The C compiler `isolab host` uses: `cc` when it names an executable file (or a name on
 *  PATH), else the same discovery as the oracle's; null when there is none. */
export function findHostCompiler(cc?: string): string | null {
  if (cc === undefined) return findCompiler();
  if (isAbsolute(cc) || cc.includes('/')) return isExecutable(cc) ? cc : null;
  for (const dir of (process.env.PATH ?? '').split(delimiter).filter((d) => d !== '')) {
    const path = join(dir, cc);
    if (isExecutable(path)) return path;
  }
  return null;
}

/** What compiling generated C gave: the binary (in a directory of its own, for removeGenerated), or the compiler's messages. */
export type GeneratedBuild = { binary: string } | { error: string };

/** Compiles generated C `source` with `compiler` (static when the host can link statically)
 *  into a new temporary directory; the caller removes it with removeGenerated. Generated
 *  programs are not cached: each is built for one run (a build takes well under a second). */
export async function compileGenerated(source: string, compiler: string): Promise<GeneratedBuild> {
  const flags = ['-O1', '-std=gnu11', '-w'];
  const work = await mkdtemp(join(tmpdir(), 'isolab-host-'));
  const file = join(work, 'prog.c');
  const binary = join(work, 'prog');
  await writeFile(file, source);
  let result = await runProcess(compiler, [...flags, '-static', '-o', binary, file]);
  if (result.code !== 0) result = await runProcess(compiler, [...flags, '-o', binary, file]);
  const error = result.code !== 0 ? result.stderr.trim() || `${compiler} exited with status ${String(result.code)}` : !isExecutable(binary) ? `${compiler} exited with status 0 but wrote no program` : null;
  if (error !== null) {
    await rm(work, { recursive: true, force: true });
    return { error };
  }
  return { binary };
}

/** Removes a generated program and its directory. */
export async function removeGenerated(binary: string): Promise<void> {
  await rm(dirname(binary), { recursive: true, force: true });
}

/** What a run of a generated program left: its exit, its standard output and whether it ran out of time. */
export interface GeneratedRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Runs a generated program (with `args`) in its own session, killing the session after `timeoutMs`. */
export function runGenerated(binary: string, timeoutMs: number, args: string[] = []): Promise<GeneratedRun> {
  return runProcess(binary, args, timeoutMs);
}
