/**
 * Kernel benchmarks, each run in its own process by bench/main.ts:
 * - `getpid`: simulated null syscalls per second (a program of GETPID_OPS getpid calls, the
 *   runner driving one CPU; the whole run is timed, so it includes fetching every operation);
 *   `getpid-pti` the same under PTI with PCIDs; `getpid-native` a raw getpid loop on the host
 *   (native/getpidbench.c), the figure the simulated one is held against.
 * - `fork`: one fork of a process with 1 GiB of touched anonymous memory (262,144 PTEs), on
 *   isolab and natively (native/forkbench.c) in the same process tree, as a ratio. The
 *   simulated figure is the median of FORKS forks after WARMUP forks (so the JIT has compiled
 *   the copy loop, as the native figure has its page-table code in cache); each fork is timed
 *   from the start of the fork syscall to its return in the parent (page-table copy and TLB
 *   flush), as forkbench times fork() in the parent.
 * - `faults`: page faults per second on one CPU, by kind: a read of untouched anonymous memory
 *   (do_anonymous_page maps the zero page), a write to such a zero-page mapping (do_wp_page →
 *   wp_page_copy: a zeroed copy, the page-table lock dropped and re-taken), and a write to
 *   untouched memory (do_anonymous_page with a new page). FAULT_PAGES faults of each kind, each
 *   timed from its first operation to its last, the median of five runs in this process.
 * - `pkey-switch`: opening and closing access to a page by WRPKRU against mprotect, side by
 *   side (benchPkeySwitch).
 * - `pti-syscall`: the null-syscall rate with PTI off, PTI with PCIDs and PTI without, side by
 *   side, with CR3 writes and TLB misses per syscall (benchPtiSyscall).
 */
import { buildForkBench, buildGetpidBench, runForkBench, runGetpidBench } from '../native/build.js';
import { System } from '../src/system.js';
import type { Op } from '../src/user/program.js';

const GETPID_OPS = 200_000;
const GIB = 2 ** 30;
export const WARMUP = 2;
export const FORKS = 5;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * Simulated getpid calls per second: the median of five runs in this process (the first ones
 * warm the JIT up). With `pti`, on a CPU with the Meltdown bug and PTI on (PCIDs on, as the
 * CPU model has them): each call writes CR3 twice.
 */
export function benchGetpid(pti = false): { perSecond: number; runs: number[] } {
  const main: Op[] = Array.from({ length: GETPID_OPS }, () => ({ op: 'syscall' as const, name: 'getpid' }));
  const runs: number[] = [];
  for (let rep = 0; rep < 5; rep++) {
    const sys = pti
      ? new System({ cpus: 1, cpu: { meltdown: true }, kernel: { log: false, timeslice: 0, pti: 'on' } })
      : new System({ cpus: 1, kernel: { log: false, timeslice: 0 } });
    sys.spawn({ main });
    const t0 = performance.now();
    const r = sys.run();
    const dt = performance.now() - t0;
    if (!r.finished) throw new Error('getpid benchmark did not finish');
    runs.push(Math.round((GETPID_OPS / dt) * 1000));
  }
  return { perSecond: median(runs), runs };
}

/** Median simulated fork time (ns) of a process with 1 GiB of touched anonymous memory. */
export function benchSimulatedFork(): { medianNs: number; forksNs: number[] } {
  const sys = new System({ cpus: 1, memory: 2 * GIB + 256 * 2 ** 20, kernel: { log: false, timeslice: 0 } });
  const pages = GIB / 4096;
  const main: Op[] = [{ op: 'syscall', name: 'mmap', args: [0, GIB, 3, 0x22, -1, 0], into: 'buf' }];
  for (let i = 0; i < pages; i++) main.push({ op: 'store', addr: `$buf+${i * 4096}`, value: 1, size: 1 });
  const first = main.length;
  for (let j = 0; j < WARMUP + FORKS; j++) {
    main.push({ op: 'syscall', name: 'fork', child: [{ op: 'syscall', name: 'exit_group', args: [0] }] });
    main.push({ op: 'syscall', name: 'wait4', args: [-1, 0, 0, 0] });
  }
  const pid = sys.spawn({ main });
  const t = sys.task(pid)!;
  const forksNs: number[] = [];
  for (let j = 0; j < WARMUP + FORKS; j++) {
    while (!(t.opFn === 'main' && t.opIndex === first + 2 * j && t.kpath)) if (!sys.step()) throw new Error('fork benchmark stalled');
    const t0 = process.hrtime.bigint();
    while (t.kpath) sys.step();
    const dt = Number(process.hrtime.bigint() - t0);
    if (j >= WARMUP) forksNs.push(dt);
  }
  sys.run();
  if (sys.kernel.exited.size !== WARMUP + FORKS + 1) throw new Error('fork benchmark: children did not all exit');
  return { medianNs: median(forksNs), forksNs };
}

/** Pages each fault-rate run touches in each phase. */
const FAULT_PAGES = 32_768;

/** Page faults per second by kind (see the header): the median of five runs, each phase timed alone. */
export function benchFaults(): Record<'zeroPageRead' | 'zeroPageCow' | 'anonWrite', { perSecond: number; runs: number[] }> {
  const phases = ['zeroPageRead', 'zeroPageCow', 'anonWrite'] as const;
  const runs: Record<(typeof phases)[number], number[]> = { zeroPageRead: [], zeroPageCow: [], anonWrite: [] };
  const len = FAULT_PAGES * 4096;
  for (let rep = 0; rep < 5; rep++) {
    const sys = new System({ cpus: 1, memory: 2 * len + 64 * 2 ** 20, kernel: { log: false, timeslice: 0 } });
    const main: Op[] = [
      { op: 'syscall', name: 'mmap', args: [0, len, 3, 0x22, -1, 0], into: 'a' },
      { op: 'syscall', name: 'mmap', args: [0, len, 3, 0x22, -1, 0], into: 'b' },
    ];
    const starts: number[] = [];
    starts.push(main.length);
    for (let i = 0; i < FAULT_PAGES; i++) main.push({ op: 'load', addr: `$a+${i * 4096}`, size: 1 });
    starts.push(main.length);
    for (let i = 0; i < FAULT_PAGES; i++) main.push({ op: 'store', addr: `$a+${i * 4096}`, value: 1, size: 1 });
    starts.push(main.length);
    for (let i = 0; i < FAULT_PAGES; i++) main.push({ op: 'store', addr: `$b+${i * 4096}`, value: 1, size: 1 });
    starts.push(main.length);
    const pid = sys.spawn({ main });
    const t = sys.task(pid)!;
    for (let p = 0; p < phases.length; p++) {
      while (!(t.opFn === 'main' && t.opIndex >= starts[p])) if (!sys.step()) throw new Error('fault benchmark stalled');
      const t0 = process.hrtime.bigint();
      while (t.state !== 'dead' && t.state !== 'zombie' && !(t.opFn === 'main' && t.opIndex >= starts[p + 1])) if (!sys.step()) break;
      const dt = Number(process.hrtime.bigint() - t0);
      runs[phases[p]].push(Math.round((FAULT_PAGES / dt) * 1e9));
    }
    sys.run();
  }
  const out = {} as Record<(typeof phases)[number], { perSecond: number; runs: number[] }>;
  for (const p of phases) out[p] = { perSecond: median(runs[p]), runs: runs[p] };
  return out;
}

/** Access switches each pkey-switch run makes (half opening the region, half closing it). */
const SWITCHES = 20_000;

/**
 * Switching a thread's access to one page on and off SWITCHES times, with a load while it is
 * open: by WRPKRU (protection keys; no syscall, no flush) and by mprotect (a syscall, a PTE
 * rewrite and a TLB flush each time), in the same process, alternating, five runs each.
 * Reports simulated switches per second of wall-clock time and what one switch costs in the
 * model (syscalls and TLB flushes counted from the event stream).
 */
export function benchPkeySwitch(): Record<'wrpkru' | 'mprotect', { perSecond: number; runs: number[]; syscallsPerSwitch: number; flushesPerSwitch: number }> {
  const mmap: Op[] = [
    { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'buf' },
    { op: 'store', addr: '$buf', value: 1 },
  ];
  // The page gets key 1 (the first pkey_alloc), access-disabled; open is PKRU 0x55555550.
  const pkey: Op[] = [...mmap, { op: 'syscall', name: 'pkey_alloc', args: [0, 1], into: 'key' }, { op: 'syscall', name: 'pkey_mprotect', args: ['$buf', 4096, 3, '$key'] }];
  const loop = (setup: Op[], open: Op, close: Op): Op[] => [...setup, ...Array.from({ length: SWITCHES / 2 }, () => [open, { op: 'load' as const, addr: '$buf' }, close]).flat()];
  const programs = {
    wrpkru: loop(pkey, { op: 'wrpkru', value: 0x55555550 }, { op: 'wrpkru', value: 0x55555554 }),
    mprotect: loop(mmap, { op: 'syscall', name: 'mprotect', args: ['$buf', 4096, 3] }, { op: 'syscall', name: 'mprotect', args: ['$buf', 4096, 0] }),
  };
  const setupSyscalls = { wrpkru: 3, mprotect: 1 };
  const out = {} as Record<'wrpkru' | 'mprotect', { perSecond: number; runs: number[]; syscallsPerSwitch: number; flushesPerSwitch: number }>;
  const runs: Record<string, number[]> = { wrpkru: [], mprotect: [] };
  const counts: Record<string, { syscalls: number; flushes: number }> = {};
  for (let rep = 0; rep < 5; rep++) {
    for (const name of ['wrpkru', 'mprotect'] as const) {
      const sys = new System({ cpus: 1, kernel: { log: false, timeslice: 0 } });
      sys.spawn({ main: programs[name] });
      const t0 = performance.now();
      const r = sys.run();
      const dt = performance.now() - t0;
      if (!r.finished) throw new Error(`pkey-switch benchmark (${name}) did not finish`);
      runs[name].push(Math.round((SWITCHES / dt) * 1000));
      if (rep === 0) {
        // A second, counted run: events cost time, so they are off in the timed ones.
        const c = new System({ cpus: 1, kernel: { log: false, timeslice: 0 } });
        let syscalls = 0;
        let flushes = 0;
        c.events.subscribe((e) => {
          if (e.type === 'syscall') syscalls++;
          else if (e.type === 'tlb_flush') flushes++;
        });
        c.spawn({ main: programs[name] });
        if (!c.run().finished) throw new Error(`pkey-switch benchmark (${name}) did not finish`);
        counts[name] = { syscalls: syscalls - setupSyscalls[name], flushes };
      }
    }
  }
  for (const name of ['wrpkru', 'mprotect'] as const) {
    out[name] = { perSecond: median(runs[name]), runs: runs[name], syscallsPerSwitch: counts[name].syscalls / SWITCHES, flushesPerSwitch: counts[name].flushes / SWITCHES };
  }
  return out;
}

/** getpid calls per pti-syscall run. */
const PTI_SYSCALLS = 50_000;
/** The three configurations the PTI benchmark compares, on a CPU with the meltdown bug. */
const PTI_CONFIGS = {
  'pti-off': { pti: 'off' as const },
  'pti-pcid': { pti: 'on' as const },
  'pti-nopcid': { pti: 'on' as const, nopcid: true },
};
export type PtiConfig = keyof typeof PTI_CONFIGS;

/**
 * The simulated null-syscall rate under PTI: PTI_SYSCALLS getpid calls, each followed by a
 * load from a data page (so both the code and the data translation must survive the CR3
 * switches), with PTI off, PTI with PCIDs and PTI without PCIDs, alternating in one process,
 * five runs each. Reports syscalls per second of wall-clock time and, per syscall, the CR3
 * writes and TLB misses of a separate counted run (events cost time, so they are off in the
 * timed runs).
 */
export function benchPtiSyscall(): Record<PtiConfig, { perSecond: number; runs: number[]; cr3PerSyscall: number; tlbMissesPerSyscall: number }> {
  const main: Op[] = [
    { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'buf' },
    { op: 'store', addr: '$buf', value: 1 },
    ...Array.from({ length: PTI_SYSCALLS }, () => [{ op: 'syscall' as const, name: 'getpid' }, { op: 'load' as const, addr: '$buf' }]).flat(),
  ];
  const names = Object.keys(PTI_CONFIGS) as PtiConfig[];
  const boot = (name: PtiConfig): System => new System({ cpus: 1, cpu: { meltdown: true }, kernel: { log: false, timeslice: 0, ...PTI_CONFIGS[name] } });
  const runs: Record<string, number[]> = {};
  const out = {} as Record<PtiConfig, { perSecond: number; runs: number[]; cr3PerSyscall: number; tlbMissesPerSyscall: number }>;
  for (const name of names) runs[name] = [];
  for (let rep = 0; rep < 5; rep++) {
    for (const name of names) {
      const sys = boot(name);
      sys.spawn({ main });
      const t0 = performance.now();
      if (!sys.run().finished) throw new Error(`pti-syscall benchmark (${name}) did not finish`);
      runs[name].push(Math.round((PTI_SYSCALLS / (performance.now() - t0)) * 1000));
    }
  }
  for (const name of names) {
    const c = boot(name);
    let cr3 = 0;
    let misses = 0;
    let counting = false;
    c.events.subscribe((e) => {
      // Count from the first getpid on: the mmap and the first store are set-up.
      if (e.type === 'syscall_enter' && e.name === 'getpid') counting = true;
      if (!counting) return;
      if (e.type === 'cr_write' && e.reg === 'cr3') cr3++;
      else if (e.type === 'tlb_miss') misses++;
    });
    c.spawn({ main });
    if (!c.run().finished) throw new Error(`pti-syscall benchmark (${name}) did not finish`);
    out[name] = { perSecond: median(runs[name]), runs: runs[name], cr3PerSyscall: cr3 / PTI_SYSCALLS, tlbMissesPerSyscall: misses / PTI_SYSCALLS };
  }
  return out;
}

/** The native raw getpid loop (native/getpidbench.c), calls per second, or why there is none. */
export async function benchNativeGetpid(): Promise<{ perSecond: number; runs: number[] } | { unavailable: string }> {
  const bin = await buildGetpidBench();
  if (!bin) return { unavailable: 'no C compiler, or not Linux x86-64' };
  return runGetpidBench(bin);
}

/** The native fork figure from native/forkbench.c, or null with the reason. */
export async function benchNativeFork(): Promise<{ medianNs: number; forksNs: number[] } | { unavailable: string }> {
  const bin = await buildForkBench();
  if (!bin) return { unavailable: 'no C compiler, or not Linux x86-64' };
  const r = await runForkBench(bin, FORKS);
  return { medianNs: r.medianNs, forksNs: r.forkNs };
}

async function main(): Promise<void> {
  const which = process.argv[2];
  if (which === '--getpid') console.log(JSON.stringify(benchGetpid()));
  else if (which === '--getpid-pti') console.log(JSON.stringify(benchGetpid(true)));
  else if (which === '--getpid-native') console.log(JSON.stringify(await benchNativeGetpid()));
  else if (which === '--fork-sim') console.log(JSON.stringify(benchSimulatedFork()));
  else if (which === '--fork-native') console.log(JSON.stringify(await benchNativeFork()));
  else if (which === '--faults') console.log(JSON.stringify(benchFaults()));
  else if (which === '--pkey-switch') console.log(JSON.stringify(benchPkeySwitch()));
  else if (which === '--pti-syscall') console.log(JSON.stringify(benchPtiSyscall()));
  else throw new Error('expected --getpid, --getpid-pti, --getpid-native, --fork-sim, --fork-native, --faults, --pkey-switch or --pti-syscall');
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  main().catch((e) => {
    console.error(`isolab bench: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  });
}
