/**
 * A System: a machine (hw/) with the kernel (kernel/) booted on it, and the user-level API to
 * start programs, run them, and read what happened. Everything is deterministic: the order in
 * which CPUs take steps comes from `schedule` and `seed` (DESIGN.md rule 3). Each step is
 * sim/step.ts's cpu_step on the chosen CPU: the kernel's, or the processor running user code
 * (user/interp.ts).
 *
 * Reading the kernel's state goes through the introspection methods (tasks, pte, readUser,
 * maps, mms, page, cpuInfo, framesInUse; introspect.ts), which return plain records; the
 * scenario runner, the explorer, the CLI and the trace use nothing else of the kernel's
 * objects for it.
 */
import { ArgumentError, ConfigError, ModelError } from './errors.js';
import type { EventBus } from './events.js';
import type { HwEvent } from './hw/events.js';
import { Machine, type MachineConfig } from './hw/machine.js';
import type { TlbEntry } from './hw/tlb.js';
import { check_page_counts } from './kernel/debug.js';
import { KERNEL_QUANTUM } from './kernel/entry.js';
import type { KernelEvent } from './kernel/events.js';
import { load_image, start_thread } from './kernel/exec.js';
import { newProcess } from './kernel/fork.js';
import { Kernel, type ReachRecord } from './kernel/kernel.js';
import { process_reach, type Reach } from './kernel/reach.js';
import { resolveKernelOptions, type KernelOptions } from './kernel/options.js';
import { at_cond_resched, cpu_allowed, migrate_task, wake_up_new_task } from './kernel/sched.js';
import { wakeup_kswapd } from './kernel/vmscan.js';
import { syscallByName } from './kernel/syscalls.js';
import type { OpRecord, Task } from './kernel/task.js';
import { ProgramImage, type Op, type Program } from './user/program.js';
import { UserCpu } from './user/interp.js';
import { any_held, release_held } from './sim/hold.js';
import { cpu_step, hasWork, takes_ipi } from './sim/step.js';
import {
  checkPageCounts, checkPtiUserPgd, cpuAsids, cpuInfo, currentTid, framesInUse, liveMms, operationAt, pageInfo, readUser, taskInfo, taskList, taskMaps, taskOpAddress, taskOpCursor, taskPosition, taskPte, tlbJudge,
  type AsidInfo, type CpuInfo, type ImageHandle, type MmInfo, type OpCursor, type PageInfo, type ProgramPosition, type Pte, type TaskInfo, type TlbJudgement, type VmaInfo,
} from './introspect.js';

export { hasWork } from './sim/step.js';
export { TASK_SIZE } from './kernel/layout.js';
export type { AsidInfo, CpuInfo, ImageHandle, MmInfo, OpCursor, PageInfo, ProgramPosition, Pte, TaskInfo, TlbJudgement, VmaInfo } from './introspect.js';

/**
 * An event of a System: the processor's (hw/events.ts) or the kernel's (kernel/events.ts), with
 * `tid`, the task the event belongs to. An event that names its task itself (syscall,
 * page_fault, signal, exit, entry ...) keeps it; every other one gets, as it is emitted, the
 * task current on its CPU (for `ipi` the sender's), 0 for the idle task or an event outside
 * any CPU (`debug` with cpu -1). So a walk, a TLB fill or a flush names the task whose access
 * or syscall caused it, and `context_switch` the task switched to.
 */
export type IsolabEvent = (HwEvent | KernelEvent) & { tid: number };

export interface SystemConfig extends MachineConfig {
  /** Kernel options (boot parameters and sysctls). */
  kernel?: Partial<KernelOptions>;
  /** How the runner picks the next CPU to step: every CPU in turn, or a seeded random choice. Default 'round-robin'. */
  schedule?: 'round-robin' | 'random';
  /** Seed for the 'random' schedule. Default 1. */
  seed?: number;
  /**
   * A scripted start: the CPU to step for each of the first steps, one kernel-path step or one
   * user step (a page-walk step included) at a time. The policy takes over after it. A negative
   * item is a TLB eviction (`evictionStep`) or a preemption (`preemptionStep`).
   */
  script?: number[];
  /** One kernel-path step per CPU step, always (the explorer's granularity; `stepCpu`). */
  stepwise?: boolean;
}

/** The script item that evicts TLB slot `slot` of CPU `cpu` (an explorer choice). */
export function evictionStep(cpu: number, slot: number): number {
  return -1 - (slot * 256 + cpu);
}

/** The CPU and slot of an eviction script item. */
export function evictionOf(item: number): { cpu: number; slot: number } {
  const v = -1 - item;
  return { cpu: v % 256, slot: Math.floor(v / 256) };
}

/** The first script item of a preemption choice (`preemptionStep`); eviction items are all above it. */
const PREEMPT_BASE = -(2 ** 30);

/**
 * The script item that preempts the task running on CPU `cpu` and, when `to` is another CPU,
 * moves it to CPU `to` as it goes (an explorer choice; `System.preempt`). `to` = `cpu`: preempted
 * in place.
 */
export function preemptionStep(cpu: number, to: number): number {
  return PREEMPT_BASE - (to * 256 + cpu);
}

/** Whether script item `item` is a preemption choice. */
export function isPreemption(item: number): boolean {
  return item <= PREEMPT_BASE && item > RECLAIM_BASE;
}

/** The first script item of a reclaim choice (`reclaimStep`); preemption items are all above it. */
const RECLAIM_BASE = -(2 ** 40);

/** The script item that wakes kswapd on CPU `cpu` for a reclaim pass (an explorer choice; `System.reclaim`). */
export function reclaimStep(cpu: number): number {
  return RECLAIM_BASE - cpu;
}

/** Whether script item `item` is a reclaim choice. */
export function isReclaim(item: number): boolean {
  return item <= RECLAIM_BASE;
}

/** The CPU of a reclaim script item. */
export function reclaimOf(item: number): { cpu: number } {
  return { cpu: RECLAIM_BASE - item };
}

/** Whether script item `item` is a TLB eviction. */
export function isEviction(item: number): boolean {
  return item < 0 && item > PREEMPT_BASE;
}

/** The CPU and destination of a preemption script item. */
export function preemptionOf(item: number): { cpu: number; to: number } {
  const v = PREEMPT_BASE - item;
  return { cpu: v % 256, to: Math.floor(v / 256) };
}

/** What `run` saw. */
export interface RunResult {
  /** Steps taken, over all CPUs. */
  steps: number;
  /** True when every task has exited. */
  finished: boolean;
  /** Tasks still alive when the run stopped (blocked, or out of steps), by tid. */
  alive: number[];
}

export class System {
  readonly machine: Machine;
  readonly kernel: Kernel;
  readonly events: EventBus<IsolabEvent>;
  private readonly order: 'round-robin' | 'random';
  private rng: number;
  private totalSteps = 0;
  private readonly script: number[];
  private scriptAt = 0;
  /** Each CPU's user-mode execution state (user/interp.ts), by CPU number. */
  /** Each CPU's user-mode step state (user/interp.ts). */
  readonly user: UserCpu[];

  /** Boots a machine and the kernel; throws ConfigError naming a bad option. */
  constructor(config: SystemConfig = {}) {
    if (config === null || typeof config !== 'object') throw new ConfigError('system', `expected an object of options, got ${String(config)}`);
    const { kernel, schedule, seed, script, stepwise, ...machine } = config;
    if (schedule !== undefined && schedule !== 'round-robin' && schedule !== 'random') {
      throw new ConfigError('schedule', `expected 'round-robin' or 'random', got ${JSON.stringify(schedule)}`);
    }
    if (seed !== undefined && (!Number.isSafeInteger(seed) || seed < 0 || seed > 0xffffffff)) throw new ConfigError('seed', `expected an integer from 0 to 4294967295, got ${JSON.stringify(seed)}`);
    this.machine = new Machine(machine);
    this.kernel = new Kernel(this.machine, resolveKernelOptions(kernel));
    this.events = this.kernel.events as unknown as EventBus<IsolabEvent>;
    this.user = this.kernel.percpu.map(() => new UserCpu());
    const percpu = this.kernel.percpu;
    this.events.setStamp((e) => {
      if (e.tid !== undefined) return;
      const cpu = e.type === 'ipi' ? e.from : e.cpu;
      const t = cpu >= 0 && cpu < percpu.length ? percpu[cpu].current : null;
      e.tid = t ? t.tid : 0;
    });
    this.order = schedule ?? 'round-robin';
    this.rng = (seed ?? 1) >>> 0;
    const cpus = this.kernel.percpu.length;
    if (script !== undefined && (!Array.isArray(script) || script.some((c) => !Number.isInteger(c) || c >= cpus || (c < 0 && !this.validEviction(c) && !this.validPreemption(c) && !this.validReclaim(c))))) {
      throw new ConfigError('script', `expected a list of CPU numbers from 0 to ${cpus - 1}, evictions of existing TLB slots, preemptions between existing CPUs, or reclaims on existing CPUs`);
    }
    this.script = script ?? [];
    this.stepwise = stepwise === true;
    if (this.script.length > 0 || this.stepwise) this.kernel.quantum = 1;
  }

  private readonly stepwise: boolean;

  private validEviction(item: number): boolean {
    if (!isEviction(item)) return false;
    const { cpu, slot } = evictionOf(item);
    return cpu < this.machine.cpus.length && slot < this.machine.cpus[cpu].tlb.size;
  }

  private validReclaim(item: number): boolean {
    return isReclaim(item) && reclaimOf(item).cpu < this.machine.cpus.length;
  }

  private validPreemption(item: number): boolean {
    if (!isPreemption(item)) return false;
    const { cpu, to } = preemptionOf(item);
    return cpu < this.machine.cpus.length && to < this.machine.cpus.length;
  }

  /** Registers a program that execve can load by name (the path string it is given). */
  addImage(name: string, program: Program): void {
    if (typeof name !== 'string' || name === '') throw new ArgumentError('name', 'expected a non-empty image name');
    this.kernel.images.set(name, compile(name, program, this.kernel.percpu.length));
  }

  /**
   * Starts a process running `program`, as if a parent had forked and exec'd it, on `cpu` (or
   * the least loaded CPU). Returns its pid. The program is also registered as an image under
   * `name` (default 'init' for the first process, then 'prog<pid>').
   */
  spawn(program: Program, options: { name?: string; cpu?: number } = {}): number {
    const k = this.kernel;
    if (options.cpu !== undefined && (!Number.isInteger(options.cpu) || options.cpu < 0 || options.cpu >= k.percpu.length)) {
      throw new ArgumentError('cpu', `expected a CPU number from 0 to ${k.percpu.length - 1}, got ${JSON.stringify(options.cpu)}`);
    }
    const name = options.name ?? (k.tasks.size === 0 && k.exited.size === 0 ? 'init' : `prog${k.tasks.size + k.exited.size + 1}`);
    const image = compile(name, program, k.percpu.length);
    k.images.set(name, image);
    const mm = load_image(k, image);
    if (!mm) throw new ConfigError('memory', 'not enough simulated memory to load the program');
    const t = newProcess(k, mm);
    if (!t) throw new ConfigError('memory', 'not enough simulated memory to start the process');
    start_thread(k, t, image);
    wake_up_new_task(k, t, options.cpu);
    return t.tid;
  }

  /** mulberry32: the next 32-bit number of the seeded stream (every seed, 0 included, gives its own). */
  private nextRandom(): number {
    this.rng = (this.rng + 0x6d2b79f5) >>> 0;
    let t = this.rng;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /**
   * Runs one step on the next CPU the schedule picks. Returns false if no CPU had anything to
   * do. A ModelError raised in the step leaves with the step number and the CPU in it.
   */
  step(): boolean {
    try {
      return this.nextStep();
    } catch (e) {
      throw this.atStep(e, this.stepping);
    }
  }

  /** The CPU whose step is running (for a ModelError), -1 between steps. */
  private stepping = -1;

  /** Records the step and the CPU in a ModelError the first time it passes; returns `e`. */
  private atStep(e: unknown, cpu: number): unknown {
    if (e instanceof ModelError && e.step < 0) {
      e.step = this.totalSteps;
      e.cpu = cpu;
      e.message += ` (at step ${this.totalSteps}, CPU ${cpu})`;
    }
    return e;
  }

  private nextStep(): boolean {
    const pcs = this.kernel.percpu;
    if (this.scriptAt < this.script.length) {
      // A scripted step: that CPU, one step, whether or not it had anything to do.
      this.stepCpu(this.script[this.scriptAt++]);
      if (this.scriptAt === this.script.length && !this.stepwise) this.kernel.quantum = KERNEL_QUANTUM;
      return true;
    }
    if (this.order === 'round-robin') {
      let any = false;
      for (let i = 0; i < pcs.length; i++) {
        this.stepping = i;
        if (cpu_step(this.kernel, pcs[i], this.user[i])) any = true;
      }
      if (any) this.totalSteps++;
      return any;
    }
    const busy = pcs.filter(hasWork);
    if (busy.length === 0) return false;
    const pc = busy[this.nextRandom() % busy.length];
    this.stepping = pc.id;
    cpu_step(this.kernel, pc, this.user[pc.id]);
    this.totalSteps++;
    return true;
  }

  /**
   * One step chosen by the caller: CPU `item` runs one step (a kernel-path step, a user step or
   * one page-walk step, a context switch, an IPI), for an eviction item (`evictionStep`) the
   * processor drops a TLB entry, and for a preemption item (`preemptionStep`) the task on its
   * CPU is preempted now, and moved if the item says so (`canPreempt`; nothing happens, and the
   * result is false, where it cannot be). Returns whether the CPU had anything to do.
   */
  stepCpu(item: number): boolean {
    this.totalSteps++;
    if (isReclaim(item)) return this.reclaim(reclaimOf(item).cpu);
    if (isPreemption(item)) {
      const { cpu, to } = preemptionOf(item);
      if (!this.canPreempt(cpu, to)) return false;
      this.preempt(cpu, to);
      item = cpu;
    } else if (item < 0) {
      const { cpu, slot } = evictionOf(item);
      this.machine.cpus[cpu].evictTlbEntry(slot);
      return true;
    }
    try {
      return cpu_step(this.kernel, this.kernel.percpu[item], this.user[item]);
    } catch (e) {
      throw this.atStep(e, item);
    }
  }

  /**
   * Whether CPU `cpu`'s next step can be a preemption of its task, moved to CPU `to` (`to` =
   * `cpu`: staying): the CPU runs a task and takes no IPI next; the task is at a user instruction
   * boundary or, inside a kernel path, at a preemption point: with `preempt: full` any step
   * boundary where preempt_count is 0 and interrupts are on, with `none` and `voluntary` a
   * cond_resched() point (STEP_RESCHED); and it goes somewhere: `to` is another CPU it may
   * use, or another task waits on `cpu`. Changes nothing.
   */
  canPreempt(cpu: number, to: number): boolean {
    const k = this.kernel;
    const pc = k.percpu[cpu];
    if (!pc || to < 0 || to >= k.percpu.length) return false;
    const t = pc.current;
    if (!t || t.state !== 'running' || takes_ipi(pc)) return false;
    if (to === cpu ? pc.runqueue.length === 0 : !cpu_allowed(t, to)) return false;
    if (t.kpath) return k.options.preempt === 'full' ? pc.preempt_count === 0 && !pc.irqs_disabled : at_cond_resched(pc, t);
    return !pc.cpu.accessPending;
  }

  /**
   * Runs until nothing is left to do (every task exited, or every one blocked) or `maxSteps`
   * rounds have run. With the kernel's `debug_vm` option the page counts are checked at the end.
   */
  run(options: { maxSteps?: number } = {}): RunResult {
    const max = options.maxSteps ?? 10_000_000;
    if (!Number.isSafeInteger(max) || max < 0) throw new ArgumentError('maxSteps', `expected a non-negative integer, got ${JSON.stringify(max)}`);
    const start = this.totalSteps;
    for (let i = 0; i < max; i++) if (!this.step()) break;
    const k = this.kernel;
    if (k.options.debug_vm) check_page_counts(k, null);
    const alive = [...k.tasks.values()].filter((t) => t.state !== 'dead' && t.state !== 'zombie').map((t) => t.tid);
    return { steps: this.totalSteps - start, finished: alive.length === 0, alive };
  }

  /** Steps taken so far over the whole run (the time base of traces and timelines). */
  get now(): number {
    return this.totalSteps;
  }

  /** The wait status of an exited process (as wait4 reports it), or undefined while it lives or is an unreaped zombie. */
  exitStatus(pid: number): number | undefined {
    return this.kernel.exited.get(pid);
  }

  /** A live task (or zombie) by tid. */
  task(tid: number): Task | undefined {
    return this.kernel.tasks.get(tid);
  }

  /** A task's variables (its registers), live or not yet reaped. */
  vars(tid: number): Map<string, bigint> {
    const t = this.kernel.tasks.get(tid);
    if (!t) throw new ArgumentError('tid', `no task ${tid} (it exited and was reaped, or never existed)`);
    return t.vars;
  }

  /** The record of every user operation's result, in the order they completed. */
  get log(): OpRecord[] {
    return this.kernel.log;
  }

  /**
   * What process `pid` can reach with Meltdown now: the kernel ranges a transient load from
   * its user mode can read (kernel/reach.ts). Throws ArgumentError for a process without an mm.
   */
  reach(pid: number): Reach {
    const t = this.kernel.tasks.get(pid);
    if (!t || !t.mm) throw new ArgumentError('pid', `no live process ${pid} with an address space`);
    return process_reach(this.kernel, t.mm);
  }

  /** Starts recording each process's reach as its address space ends (exit or execve); returns the list that fills. */
  recordReach(): ReachRecord[] {
    if (!this.kernel.reachLog) this.kernel.reachLog = [];
    return this.kernel.reachLog;
  }

  /** Debug-check findings so far (with `kernel.debug_vm`). */
  get debugReports(): string[] {
    return this.kernel.debugReports;
  }

  // ---- Introspection (introspect.ts): plain records, nothing in the model changes ---------------

  /** Every task not yet reaped (zombies included), in creation order. */
  tasks(): TaskInfo[] {
    return taskList(this.kernel);
  }

  /** Task `tid` as a record, or undefined when there is none (never was, or reaped). */
  taskInfo(tid: number): TaskInfo | undefined {
    const t = this.kernel.tasks.get(tid);
    return t ? taskInfo(t) : undefined;
  }

  /** Fills `into` with where task `tid` is in its program (ProgramPosition); false when it has none (no such task, a kernel thread). */
  position(tid: number, into: ProgramPosition): boolean {
    return taskPosition(this.kernel, tid, into);
  }

  /** The address of the operation task `tid` is at, or with `fetched` of the one it fetched last (taskOpAddress); -1 when it has no program. */
  opAddress(tid: number, fetched = false): number {
    return taskOpAddress(this.kernel, tid, fetched);
  }

  /** Fills `into` with task `tid`'s image and the addresses of its operations (OpCursor), with one look-up; false when it has no program. */
  opCursor(tid: number, into: OpCursor): boolean {
    return taskOpCursor(this.kernel, tid, into);
  }

  /** Fills `into` with the names of the operation at `addr` of `image` (a handle from opCursor, valid after the task moved on or exited); false when no function holds `addr`. */
  operationAt(image: ImageHandle, addr: number, into: ProgramPosition): boolean {
    return operationAt(image, addr, into);
  }

  /** The kernel options the system booted with (resolved: every option has its value). */
  get kernelOptions(): Readonly<KernelOptions> {
    return this.kernel.options;
  }

  /** The tid of the task current on `cpu`, 0 for the idle task. Throws ArgumentError for a CPU the machine does not have. */
  current(cpu: number): number {
    return currentTid(this.kernel, cpu);
  }

  /** CPU `cpu` as the kernel sees it: current task, queued flush IPIs, loaded mm (CpuInfo). Throws ArgumentError for a bad CPU. */
  cpuInfo(cpu: number): CpuInfo {
    return cpuInfo(this.kernel, cpu);
  }

  /** CPU `cpu`'s dynamic ASIDs from its cpu_tlbstate: the mm each last held and the tlb_gen it caught up with. Throws ArgumentError for a bad CPU. */
  asids(cpu: number): AsidInfo[] {
    return cpuAsids(this.kernel, cpu);
  }

  /**
   * The PTE that maps user address `va` in the address space of task `pid` (any of a process's
   * threads), read from its page tables in physical memory: null when no PTE table covers `va`
   * (or the task has no address space any more), a record with every field 0 for an empty
   * entry. Throws ArgumentError for an unknown task.
   */
  pte(pid: number, va: number | bigint): Pte | null {
    return taskPte(this.kernel, pid, va);
  }

  /** `size` bytes (1 to 8) little-endian at `va` in task `pid`'s address space, or null if any is not mapped by a present PTE. Throws ArgumentError for an unknown task. */
  readUser(pid: number, va: number | bigint, size: number): bigint | null {
    return readUser(this.kernel, pid, va, size);
  }

  /** Task `pid`'s mappings in address order, as /proc/pid/maps lists them. Throws ArgumentError for an unknown task. */
  maps(pid: number): VmaInfo[] {
    return taskMaps(this.kernel, pid);
  }

  /**
   * The 512 entries of physical frame `pfn` as 1,024 uint32 words (entry i: words 2i and
   * 2i + 1), or null for a frame never written (all zeros). A view of the memory itself, for
   * views of page tables (isolab see): read it, never write it. Not a step: touches no footprint.
   */
  frameWords(pfn: number): Readonly<Uint32Array> | null {
    return this.machine.mem.frame(pfn) ?? null;
  }

  /** A judge of CPU `cpu`'s TLB entries against their page tables as they are now (TlbJudgement); call again after a step. */
  tlbJudge(cpu: number): (en: TlbEntry) => TlbJudgement | null {
    return tlbJudge(this.kernel, cpu);
  }

  /** Every address space a live task uses (MmInfo). */
  mms(): MmInfo[] {
    return liveMms(this.kernel);
  }

  /** Physical frame `pfn` as /proc/kpageflags and /proc/kpagecount show it. Throws ArgumentError for a frame past RAM. */
  page(pfn: number): PageInfo {
    return pageInfo(this.kernel, pfn);
  }

  /** Frames allocated since boot and not freed (the boot-time frames not included). */
  get framesInUse(): number {
    return framesInUse(this.kernel);
  }

  /** Runs the kernel's page-count debug check now; returns what it found (also kept in `debugReports`). */
  checkPageCounts(): string[] {
    return checkPageCounts(this.kernel);
  }

  /** Runs the PTI user-page-table check on every live address space now; returns what it found, kept in `debugReports` only with `keep`. */
  checkPtiUserPgd(keep = true): string[] {
    return checkPtiUserPgd(this.kernel, keep);
  }

  /**
   * The scheduler's choice on CPU `cpu`: its current task is to give the CPU up at its next
   * preemption point (TIF_NEED_RESCHED: at once in user mode or, with preempt=full, at the next
   * kernel step where preemption is on; at cond_resched() otherwise), and with `to` it moves to
   * CPU `to` as it does. Returns false when the CPU runs no task or `to` is not a CPU the task
   * may use.
   */
  preempt(cpu: number, to?: number): boolean {
    const k = this.kernel;
    const t = k.percpu[cpu]?.current;
    if (!t) return false;
    if (to !== undefined && (to < 0 || to >= k.percpu.length || !cpu_allowed(t, to))) return false;
    t.need_resched = true;
    if (to !== undefined && to !== cpu) t.migrate_to = to;
    return true;
  }

  /**
   * Memory runs short: kswapd wakes on CPU `cpu` and makes a reclaim pass over the anonymous
   * LRU (vmscan.ts wakeup_kswapd, kswapd_reclaim), its steps interleaving with the other
   * CPUs'; the task running on `cpu` gives the CPU up at its next preemption point. Returns
   * false, changing nothing, while kswapd is already awake or for a CPU the machine lacks.
   */
  reclaim(cpu: number): boolean {
    if (!this.canReclaim(cpu)) return false;
    return wakeup_kswapd(this.kernel, cpu);
  }

  /** Whether `reclaim(cpu)` would wake kswapd now (it sleeps, and the CPU exists). Changes nothing. */
  canReclaim(cpu: number): boolean {
    const k = this.kernel;
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= k.percpu.length) return false;
    return k.kswapd === null || k.kswapd.state === 'sleeping';
  }

  /** Moves task `tid`, runnable and not running, to CPU `cpu` (a load balancer's move). Returns whether it moved. */
  migrate(tid: number, cpu: number): boolean {
    const t = this.kernel.tasks.get(tid);
    return t !== undefined && migrate_task(this.kernel, t, cpu);
  }

  /**
   * The explorer's `--until ops` (sim/hold.ts): with `on`, a thread that runs its last
   * operation from now on sleeps there, before its exit, until `releaseHeld`.
   */
  holdAtEnd(on: boolean): void {
    this.kernel.hold_at_end = on;
  }

  /** Wakes every thread held at the end of its operations (holdAtEnd), lowest tid first; returns how many. */
  releaseHeld(): number {
    return release_held(this.kernel);
  }

  /** Whether some thread sleeps held at the end of its operations. */
  anyHeld(): boolean {
    return any_held(this.kernel);
  }

  /** Whether CPU `cpu`'s next step takes a flush IPI (one is queued, interrupts are on, no user page walk is under way). */
  takesIpi(cpu: number): boolean {
    return takes_ipi(this.kernel.percpu[cpu]);
  }
}

/** Compiles a program and checks every syscall name against the table and every child CPU against the machine. */
function compile(name: string, program: Program, cpus: number): ProgramImage {
  const image = new ProgramImage(name, program);
  for (const f of image.functions) {
    f.ops.forEach((op: Op, i) => {
      if (op.op !== 'syscall') return;
      if (typeof op.name === 'string') syscallByName(op.name);
      if (op.cpu !== undefined && op.cpu >= cpus) throw new ArgumentError('program', `${name}: ${f.name}[${i}].cpu: the machine has CPUs 0 to ${cpus - 1}, not ${op.cpu}`);
    });
  }
  return image;
}
