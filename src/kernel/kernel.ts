/**
 * The kernel: boots on a machine, owns the tasks, the page allocator and the per-CPU state,
 * and runs one step at a time on a chosen CPU. Each CPU is either executing its current
 * task's user operations, advancing that task's kernel path (a generator, one atomic step per
 * call), handling a flush IPI, or idle.
 *
 * Boot follows what matters of arch/x86/kernel/head64.c and setup.c for isolation: the first
 * MiB and the kernel image are reserved, init_top_pgt maps the kernel text and data at
 * __START_KERNEL_map and all of RAM at the direct map (PAGE_OFFSET), global when the CPU has
 * PGE, and each CPU gets CR4 features switched on the way cr4_init and the feature setup code
 * do (PGE, PCIDE, SMEP, SMAP, PKE).
 */
import { ConfigError } from '../errors.js';
import type { Cpu } from '../hw/cpu.js';
import type { Machine } from '../hw/machine.js';
import { PTE_A, PTE_D, PTE_G, PTE_P, PTE_PS, PTE_RW, PTEH_XD } from '../hw/pte.js';
import { CR4_CET, CR4_PCIDE, CR4_PGE, CR4_PKE, CR4_SMAP, CR4_SMEP } from '../hw/regs.js';
import type { EventBus } from '../events.js';
import type { HwEvent } from '../hw/events.js';
import type { KernelEvent } from './events.js';
import type { KernelOptions } from './options.js';
import { MmStruct } from './mm.js';
import { PageAllocator } from './page.js';
import type { ProgramImage } from '../user/program.js';
import type { SigInfo } from './task.js';
import { _KERNPG_TABLE, mk_pte, PageTables, pgtableIndex, pteHi } from './pgtable.js';
import { TLB_NR_DYN_ASIDS, type FlushTlbInfo } from './tlbflush.js';
import type { OpRecord, Task } from './task.js';

/** Kernel options: Linux's boot parameters and sysctls the model honours. */
/** __START_KERNEL_map + the text offset: where the kernel image's text is mapped. */
export const KERNEL_TEXT = 0xffffffff81000000n;
/** PAGE_OFFSET without KASLR: the direct map of all RAM. */
export const PAGE_OFFSET = 0xffff888000000000n;
/** DEFAULT_MAP_WINDOW / TASK_SIZE with 4-level paging: the end of user space. */
export const TASK_SIZE = 0x7ffffffff000;
/** Physical address the kernel image is loaded at (frame 256, just above the first MiB). */
export const KERNEL_PHYS = 0x100000;
/** Kernel image size: 4 pages of text, 4 of data. */
const KERNEL_TEXT_PAGES = 4;
const KERNEL_DATA_PAGES = 4;

/** The per-CPU state the kernel keeps (current task, runqueue, cpu_tlbstate, pending IPIs). */
export class PerCpu {
  readonly id: number;
  readonly cpu: Cpu;
  /** The running task; null when the idle task runs. */
  current: Task | null = null;
  /** Runnable tasks waiting for this CPU, in order. */
  readonly runqueue: Task[] = [];
  // cpu_tlbstate
  loaded_mm: MmStruct;
  loaded_mm_asid = 0;
  next_asid = 1;
  readonly ctx_id = new Float64Array(TLB_NR_DYN_ASIDS);
  readonly ctx_tlb_gen = new Float64Array(TLB_NR_DYN_ASIDS);
  /** cpu_tlbstate_shared.is_lazy. */
  is_lazy = false;
  invalidate_other = false;
  /** Flush requests delivered by IPI and not yet handled. */
  readonly ipis: FlushTlbInfo[] = [];
  /** What the step about to run touches (see steps.ts). */
  touch = 0;
  /** preempt_count: > 0 while the CPU may not be switched away from its task. */
  preempt_count = 0;
  /** Steps this CPU has run. */
  steps = 0;
  // The user operation in progress: a page walk under way, which translation comes next, the physical addresses found.
  walkPending = false;
  uStage = 0;
  readonly uPa = [0, 0];

  constructor(id: number, cpu: Cpu, initMm: MmStruct) {
    this.id = id;
    this.cpu = cpu;
    this.loaded_mm = initMm;
  }
}

export class Kernel {
  readonly machine: Machine;
  readonly options: KernelOptions;
  readonly events: EventBus<HwEvent | KernelEvent>;
  readonly pages: PageAllocator;
  readonly percpu: PerCpu[];
  readonly init_mm: MmStruct;
  /** Whether the kernel uses PCIDs (X86_FEATURE_PCID and not `nopcid`). */
  readonly pcid: boolean;
  /** Whether NX is in __supported_pte_mask. */
  readonly nx: boolean;
  /** Whether user shadow stacks are supported (X86_FEATURE_USER_SHSTK: the CPU has them and not `nousershstk`). */
  readonly userShstk: boolean;
  /** Whether protection keys are on (X86_FEATURE_OSPKE: the CPU has PKU and not `nopku`). */
  readonly ospke: boolean;
  /** empty_zero_page's frame. */
  readonly zero_pfn: number;
  /** Paging levels (4, or 5 with LA57). */
  readonly levels: number;
  /** Every task ever created, by tid (reaped ones removed). */
  readonly tasks = new Map<number, Task>();
  /** Results of user operations, when `options.log`. */
  readonly log: OpRecord[] = [];
  /** Debug-check findings (debug_vm). */
  readonly debugReports: string[] = [];
  /** Program images execve can load, by name. */
  readonly images = new Map<string, ProgramImage>();
  /** Wait statuses of reaped or self-reaped tasks, by tid. */
  readonly exited = new Map<number, number>();
  /** Threads sleeping in de_thread until the rest of their group is gone. */
  readonly deThreadWaiters = new Set<Task>();
  /** totalram_pages: frames the page allocator manages (the overcommit heuristic's limit). */
  readonly totalram_pages: number;
  /** Kernel-path steps a CPU takes per turn (entry.ts KERNEL_QUANTUM; 1 while a scripted schedule runs). */
  quantum = 64;
  private lastPid = 0;
  private lastCtxId = 0;
  private lastObjectId = 0;

  constructor(machine: Machine, options: KernelOptions) {
    this.machine = machine;
    this.options = options;
    this.events = machine.events as unknown as EventBus<HwEvent | KernelEvent>;
    const model = machine.model;
    if (machine.mem.frameCount * 4096 < 8 * 2 ** 20) throw new ConfigError('memory', 'the kernel needs at least 8 MiB of memory');
    this.pcid = model.pcid && !options.nopcid;
    this.nx = model.nx;
    this.userShstk = model.shstk && !options.nousershstk;
    this.ospke = model.pku && !options.nopku;
    this.levels = model.la57 ? 5 : 4;
    const mem = machine.mem;

    // Boot-time frames: the first MiB, the kernel image, the zero page, and boot page tables.
    const kernelFirst = KERNEL_PHYS / 4096;
    let next = kernelFirst + KERNEL_TEXT_PAGES + KERNEL_DATA_PAGES;
    const bootAlloc = (): number => {
      mem.zeroFrame(next);
      return next++;
    };
    this.zero_pfn = bootAlloc();
    const pgd = bootAlloc();
    // The kernel half is built into boot tables now; PageTables then allocates user tables only.
    this.buildKernelMappings(pgd, bootAlloc);
    this.pages = new PageAllocator(mem, next);
    this.totalram_pages = mem.frameCount - next;

    this.init_mm = new MmStruct(0, new PageTables(mem, this.pages, this.levels, pgd), machine.cpus.length, TASK_SIZE, 0);
    this.percpu = machine.cpus.map((cpu, i) => new PerCpu(i, cpu, this.init_mm));
    for (const pc of this.percpu) this.bootCpu(pc);
  }

  /** Maps the kernel image at KERNEL_TEXT and RAM at PAGE_OFFSET into the boot PGD. */
  private buildKernelMappings(pgd: number, alloc: () => number): void {
    const mem = this.machine.mem;
    const g = this.machine.model.pge ? PTE_G : 0;
    const xd = this.nx ? PTEH_XD : 0;
    const table = (parent: number, index: number): number => {
      const lo = mem.readLo(parent, index);
      if (lo & PTE_P) return (mem.readHi(parent, index) & 0xfffff) * 1048576 + (lo >>> 12);
      const t = alloc();
      mem.write64(parent, index, mk_pte(t, _KERNPG_TABLE, 0), pteHi);
      return t;
    };
    const descend = (va: bigint, toLevel: number): number => {
      let t = pgd;
      for (let level = this.levels; level > toLevel; level--) t = table(t, Number((va >> BigInt(3 + 9 * level)) & 511n));
      return t;
    };
    // Kernel text (read-only, executable) and data (writable, NX) in 4 KiB pages.
    const pte = descend(KERNEL_TEXT, 1);
    const first = Number((KERNEL_TEXT >> 12n) & 511n);
    for (let i = 0; i < KERNEL_TEXT_PAGES + KERNEL_DATA_PAGES; i++) {
      const data = i >= KERNEL_TEXT_PAGES;
      mem.write64(pte, first + i, mk_pte(KERNEL_PHYS / 4096 + i, PTE_P | PTE_A | g | (data ? PTE_RW | PTE_D : 0), data ? xd : 0), pteHi);
    }
    // The direct map, in 2 MiB pages: RW, NX, global.
    const bytes = mem.frameCount * 4096;
    for (let pa = 0; pa < bytes; pa += 2 ** 21) {
      const pd = descend(PAGE_OFFSET + BigInt(pa), 2);
      const i = pgtableIndex(pa, 2);
      mem.write64(pd, i, mk_pte(pa / 4096, PTE_P | PTE_RW | PTE_A | PTE_D | PTE_PS | g, xd), pteHi);
    }
  }

  /** Switches on the CPU's paging features as Linux's early setup does, and loads init_mm. */
  private bootCpu(pc: PerCpu): void {
    const cpu = pc.cpu;
    const m = this.machine.model;
    const pa = this.init_mm.pgd * 4096;
    cpu.movToCr3(Math.floor(pa / 2 ** 32), pa >>> 0);
    let cr4 = cpu.cr4;
    if (m.pge) cr4 |= CR4_PGE;
    if (this.pcid) cr4 |= CR4_PCIDE;
    if (m.smep) cr4 |= CR4_SMEP;
    if (m.smap) cr4 |= CR4_SMAP;
    if (this.ospke) cr4 |= CR4_PKE;
    // setup_cet: CR4.CET whenever user shadow stacks (or IBT) are in use.
    if (this.userShstk) cr4 |= CR4_CET;
    cpu.movToCr4(cr4);
    pc.ctx_id[0] = 0;
    pc.ctx_tlb_gen[0] = this.init_mm.tlb_gen;
  }

  /** alloc_pid: the next pid (pids are not reused in a run). */
  alloc_pid(): number {
    return ++this.lastPid;
  }

  /** A fresh mm ctx_id (never reused). */
  nextCtxId(): number {
    return ++this.lastCtxId;
  }

  /** A fresh id for an anon_vma or shmem object. */
  nextObjectId(): number {
    return ++this.lastObjectId;
  }

  /** The task with thread id `tid`, alive or a zombie. */
  find_task_by_vpid(tid: number): Task | undefined {
    return this.tasks.get(tid);
  }

  // ---- Events ------------------------------------------------------------------------------
  emit(e: KernelEvent): void {
    this.events.emit(e);
  }
  emitSwitch(pc: PerCpu, from: MmStruct, to: MmStruct, asid: number, flush: boolean, how: 'switch' | 'unlazy'): void {
    if (this.events.on) this.emit({ type: 'switch_mm', cpu: pc.id, from: from.ctx_id, to: to.ctx_id, asid, flush, how });
  }
  emitFlushFunc(pc: PerCpu, f: FlushTlbInfo, pages: number): void {
    if (this.events.on) this.emit({ type: 'flush_tlb_func', cpu: pc.id, mm: f.mm ? f.mm.ctx_id : 0, pages });
  }
  emitShootdown(pc: PerCpu, f: FlushTlbInfo): void {
    if (this.events.on) this.emit({ type: 'tlb_shootdown', cpu: pc.id, mm: f.mm ? f.mm.ctx_id : 0, start: f.start, end: f.end, freedTables: f.freed_tables, gen: f.new_tlb_gen });
  }
  emitIpi(pc: PerCpu, to: number): void {
    if (this.events.on) this.emit({ type: 'ipi', from: pc.id, to });
  }
  /** Records the result of the task's current user operation: a value, or the signal that interrupted it. */
  recordOp(t: Task, value: bigint | undefined, signal: SigInfo | undefined): void {
    if (!this.options.log && !this.events.on) return;
    const record: OpRecord = { image: t.image ? t.image.name : '', tid: t.tid, pid: t.tgid, fn: t.opFn, index: t.opIndex, op: t.opName };
    if (t.opAddr !== undefined) record.addr = t.opAddr;
    if (value !== undefined) record.value = value;
    if (signal) record.signal = signal;
    if (this.options.log) this.log.push(record);
    if (this.events.on) this.emit({ type: 'op', cpu: t.cpu, record });
  }

  /** A syscall's result: into its variable and the log; -ERESTARTSYS is held for the restart decision. */
  completeSyscallResult(t: Task, ret: number): void {
    if (ret === -512) {
      t.restartPending = true;
      return;
    }
    if (t.intoVar) t.vars.set(t.intoVar, BigInt(ret));
    if (this.options.log || this.events.on) this.recordOp(t, BigInt(ret), undefined);
    if (this.events.on) this.emit({ type: 'syscall', cpu: t.cpu, tid: t.tid, nr: t.curNr, name: t.curName, args: t.curArgs, ret });
  }

  emitSignal(pc: PerCpu, t: Task, info: SigInfo, action: string): void {
    if (this.events.on) this.emit({ type: 'signal', cpu: pc.id, tid: t.tid, signo: info.signo, code: info.code, addr: info.addr, action });
  }

  /** Records a debug-check finding (and emits it). */
  report(pc: PerCpu | null, check: string, message: string): void {
    this.debugReports.push(`${check}: ${message}`);
    if (this.events.on) this.emit({ type: 'debug', cpu: pc ? pc.id : -1, check, message });
  }
}
