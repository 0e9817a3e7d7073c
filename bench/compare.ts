/**
 * `npm run bench:compare [-- --ref REF] [--pairs N]`: the kernel benchmarks of this tree against
 * a baseline build of isolab on the same machine, in the same run, as ratios.
 *
 * The baseline is a git commit: `--ref`, or else the `ref` in bench/baseline.json (the last
 * release's commit; move it forward when a release is cut). It is checked out once into a
 * worktree under the system's temporary directory (reused while the commit is the same), given
 * this tree's node_modules and built with this tree's TypeScript. Each benchmark then runs in
 * fresh processes, baseline and current alternating, `pairs` times (default 3): the machine's
 * noise hits both sides alike, and the median of the per-pair ratios is the figure. A ratio
 * above 1 means this tree is faster for rates (syscalls/s), slower for times (fork ms).
 *
 * `npm run bench` runs this at its end; without git, or without the commit, it prints why and
 * the rest of the benchmarks stand.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (dist/bench/compare.js is two levels below it). */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** One compared figure: how to get it from a tree's dist/bench/kernel.js output, and whether higher is better. */
interface Figure {
  name: string;
  flag: string;
  unit: string;
  higherIsBetter: boolean;
  read: (out: Record<string, unknown>) => number;
}

const FIGURES: readonly Figure[] = [
  { name: 'getpid, one CPU', flag: '--getpid', unit: 'M/s', higherIsBetter: true, read: (o) => (o.perSecond as number) / 1e6 },
  { name: 'getpid, PTI with PCID', flag: '--getpid-pti', unit: 'M/s', higherIsBetter: true, read: (o) => (o.perSecond as number) / 1e6 },
  { name: 'null syscall, PTI with PCID', flag: '--pti-syscall', unit: 'M/s', higherIsBetter: true, read: (o) => (o['pti-pcid'] as { perSecond: number }).perSecond / 1e6 },
  { name: 'null syscall, PTI off', flag: '--pti-syscall', unit: 'M/s', higherIsBetter: true, read: (o) => (o['pti-off'] as { perSecond: number }).perSecond / 1e6 },
  { name: 'fork, 1 GiB touched', flag: '--fork-sim', unit: 'ms', higherIsBetter: false, read: (o) => (o.medianNs as number) / 1e6 },
  { name: 'write fault, new anonymous page', flag: '--faults', unit: 'M/s', higherIsBetter: true, read: (o) => (o.anonWrite as { perSecond: number }).perSecond / 1e6 },
];

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** The baseline's commit: `--ref`, else bench/baseline.json's. */
function baselineRef(args: string[]): string {
  const at = args.indexOf('--ref');
  if (at >= 0) {
    if (!args[at + 1]) throw new Error('--ref needs a git commit or branch');
    return args[at + 1];
  }
  const file = join(ROOT, 'bench', 'baseline.json');
  const { ref } = JSON.parse(readFileSync(file, 'utf8')) as { ref?: unknown };
  if (typeof ref !== 'string' || ref === '') throw new Error(`${file}: expected a "ref" string`);
  return ref;
}

/**
 * A built checkout of `ref`: its root directory, or the reason there is none. Built once per
 * commit; a failed build leaves no directory that looks built.
 */
function baselineTree(ref: string): { dir: string } | { unavailable: string } {
  let sha: string;
  try {
    sha = execFileSync('git', ['-C', ROOT, 'rev-parse', '--verify', `${ref}^{commit}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch {
    return { unavailable: `no git, or no commit ${JSON.stringify(ref)} in ${ROOT}` };
  }
  const dir = join(tmpdir(), `isolab-baseline-${sha.slice(0, 12)}`);
  const built = join(dir, 'dist', 'bench', 'kernel.js');
  if (existsSync(built)) return { dir };
  try {
    if (!existsSync(dir)) execFileSync('git', ['-C', ROOT, 'worktree', 'add', '--detach', dir, sha], { stdio: 'ignore' });
    if (!existsSync(join(dir, 'node_modules'))) symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
    execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(dir, 'tsconfig.json')], { stdio: 'ignore' });
  } catch (e) {
    return { unavailable: `building ${sha.slice(0, 12)} in ${dir} failed: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}` };
  }
  return existsSync(built) ? { dir } : { unavailable: `${sha.slice(0, 12)} has no dist/bench/kernel.js after its build` };
}

/** Runs `flag` of `root`'s kernel benchmarks in a fresh process; its JSON result. `quiet`: its error output is not shown (a baseline without that benchmark). */
function runKernel(root: string, flag: string, quiet = false): Record<string, unknown> {
  const out = execFileSync(process.execPath, ['--max-old-space-size=8192', join(root, 'dist', 'bench', 'kernel.js'), flag], { encoding: 'utf8', stdio: ['ignore', 'pipe', quiet ? 'pipe' : 'inherit'] });
  return JSON.parse(out.trim().split('\n').pop()!) as Record<string, unknown>;
}

export interface ComparisonRow {
  figure: string;
  unit: string;
  baseline: number[];
  current: number[];
  /** Per pair: current against baseline, oriented so that above 1 is better. */
  gains: number[];
  gain: number;
}

/** Compares this tree with the baseline `ref`, `pairs` alternating runs per benchmark. */
export function compareWithBaseline(ref: string, pairs: number): { ref: string; dir: string; rows: ComparisonRow[]; missing: string[] } | { ref: string; unavailable: string } {
  const tree = baselineTree(ref);
  if ('unavailable' in tree) return { ref, unavailable: tree.unavailable };
  const rows = new Map<string, ComparisonRow>(FIGURES.map((f) => [f.name, { figure: f.name, unit: f.unit, baseline: [], current: [], gains: [], gain: 0 }]));
  const missing: string[] = [];
  for (const flag of [...new Set(FIGURES.map((f) => f.flag))]) {
    const figures = FIGURES.filter((f) => f.flag === flag);
    for (let i = 0; i < pairs; i++) {
      let a: Record<string, unknown>;
      try {
        a = runKernel(tree.dir, flag, true);
      } catch {
        // A benchmark newer than the baseline: nothing to compare it with.
        for (const f of figures) rows.delete(f.name);
        missing.push(...figures.map((f) => f.name));
        break;
      }
      const b = runKernel(ROOT, flag);
      for (const f of figures) {
        const row = rows.get(f.name)!;
        const x = f.read(a);
        const y = f.read(b);
        row.baseline.push(x);
        row.current.push(y);
        row.gains.push(f.higherIsBetter ? y / x : x / y);
      }
    }
  }
  for (const row of rows.values()) row.gain = median(row.gains);
  return { ref, dir: tree.dir, rows: [...rows.values()], missing };
}

/** Prints a comparison as a table. */
export function printComparison(c: ReturnType<typeof compareWithBaseline>): void {
  if ('unavailable' in c) {
    console.log(`against the baseline ${c.ref}: unavailable (${c.unavailable})`);
    return;
  }
  const fmt = (xs: number[]): string => xs.map((x) => x.toFixed(2)).join(' / ');
  console.log(`against the baseline ${c.ref} (built in ${c.dir}), alternating, ${c.rows[0]?.gains.length ?? 0} pairs; gain > 1 is better:`);
  console.table(c.rows.map((r) => ({ figure: r.figure, unit: r.unit, baseline: fmt(r.baseline), current: fmt(r.current), 'gain per pair': fmt(r.gains), gain: +r.gain.toFixed(2) })));
  if (c.missing.length > 0) console.log(`not in the baseline (newer benchmarks): ${c.missing.join(', ')}`);
}

function main(): void {
  const args = process.argv.slice(2);
  const pairsAt = args.indexOf('--pairs');
  const pairs = pairsAt >= 0 ? Number(args[pairsAt + 1]) : 3;
  if (!Number.isInteger(pairs) || pairs < 1) throw new Error('--pairs needs a positive integer');
  printComparison(compareWithBaseline(baselineRef(args), pairs));
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  try {
    main();
  } catch (e) {
    console.error(`isolab bench:compare: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  }
}
