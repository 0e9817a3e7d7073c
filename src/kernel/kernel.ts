/**
 * The kernel: boots on a machine, owns the tasks, the page allocator and the per-CPU state.
 * In each step a CPU is either executing its current task's user operations (user/interp.ts),
 * advancing that task's kernel path (a generator, one atomic step per call; entry.ts),
 * handling a flush IPI, or idle; sim/step.ts chooses which.
 *
 * Boot follows what matters of arch/x86/kernel/head64.c and setup.c for isolation: the first
 * MiB and the kernel image are reserved, init_top_pgt maps the kernel text and data at
 * __START_KERNEL_map and all of RAM at the direct map (PAGE_OFFSET), global when the CPU has
 * PGE, and each CPU gets CR4 features switched on the way cr4_init and the feature setup code
 * do (PGE, PCIDE, SMEP, SMAP, PKE).
 */
import type { FutexHashBucket } from './futex.js';
import { Vfs } from './vfs.js';
import { proc_root_init } from './proc_base.js';
import { ConfigError } from '../errors.js';
import type { Cpu } from '../hw/cpu.js';
import type { Machine } from '../hw/machine.js';
import { PTE_G } from '../hw/pte.js';
import { CR4_CET, CR4_FSGSBASE, CR4_OSXSAVE, CR4_PCIDE, CR4_PGE, CR4_PKE, CR4_SMAP, CR4_SMEP, MSR_IA32_XSS, MSR_MISC_FEATURES_ENABLES, MSR_PLATFORM_INFO, PLATFORM_INFO_CPUID_FAULTING, XFEATURE_MASK_CET_U, XFEATURE_MASK_PKRU, XFEATURE_MASK_SSE, XFEATURE_MASK_X87 } from '../hw/regs.js';
import type { EventBus } from '../events.js';
import type { HwEvent } from '../hw/events.js';
import type { DebugCheck, KernelEvent } from './events.js';
import type { KernelOptions } from './options.js';
import { MmStruct } from './mm.js';
import { PageAllocator } from './page.js';
import { swap_info_struct } from './swap.js';
import type { ProgramImage } from '../user/program.js';
import type { SigInfo } from './task.js';
import { PageTables } from './pgtable.js';
import {
  __PAGE_KERNEL, __PAGE_KERNEL_RO, ceaGlobal, CPU_ENTRY_AREA_BASE, type CpuEntryArea, ESPFIX_BASE_ADDR, EXCEPTION_STACK_PAGES, get_cpu_entry_area,
  IST_STACKS, KERNEL_DATA, KERNEL_DATA_PAGES, LINUX_BANNER_TEXT, KERNEL_PHYS, KERNEL_TEXT, KERNEL_TEXT_PAGES, kernel_layout, type KernelLayout, KernelMapper, TASK_SIZE, TSS_PAGES,
} from './layout.js';
import { map_vsyscall } from './vsyscall.js';
import { pti_init } from './pti.js';
import type { Reach } from './reach.js';

/** A process's reach, taken as its address space ended. */
export interface ReachRecord {
  pid: number;
  image: string;
  reach: Reach;
}
import { TLB_NR_DYN_ASIDS, type FlushTlbInfo } from './tlbflush.js';
import { setup_cpu_gdt } from './desc.js';
import { idt_setup_ia32, load_idt } from './idt.js';
import type { OpRecord, Task } from './task.js';
import { opaque, track } from '../track.js';

export { KERNEL_PHYS, KERNEL_TEXT, TASK_SIZE } from './layout.js';

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
  /** Interrupts are disabled (the entry and exit code): call-function IPIs wait. */
  irqs_disabled = false;
  /** preempt_count: > 0 while the CPU may not be switched away from its task. */
  preempt_count = 0;
  /** Steps this CPU has run. */
  steps = 0;
  /** cpu_tlbstate.user_pcid_flush_mask: kernel PCIDs whose user PCID is flushed at the next return to user (PTI with PCID). */
  user_pcid_flush_mask = 0;
  /** msr_misc_features_shadow: what this CPU's MSR_MISC_FEATURES_ENABLES holds (process.c set_cpuid_faulting). */
  msr_misc_features_shadow = 0;
  /** This CPU's cpu_entry_area and per-CPU entry pages. */
  cea: CpuEntryArea | null = null;
  /** The task whose pt_regs sit on this CPU's entry stack (entry_stack per_cpu_c), 0 if none. */
  entryStackOwner = 0;
  /** LDTR: the LDT's linear address and entry count (0 entries: no LDT loaded). */
  ldtBase = 0n;
  ldtEntries = 0;

  constructor(id: number, cpu: Cpu, initMm: MmStruct) {
    this.id = id;
    this.cpu = cpu;
    this.loaded_mm = initMm;
    return track(this);
  }
}

/** RAX for the results syscalls mostly give (errnos, small counts and ids), made once: a syscall then allocates no BigInt for its result. */
const SMALL_RESULTS = 4096;
const SMALL_RAX: readonly bigint[] = Object.freeze(Array.from({ length: 2 * SMALL_RESULTS }, (_, i) => BigInt.asUintN(64, BigInt(i - SMALL_RESULTS))));

export class Kernel {
  readonly machine: Machine;
  readonly options: KernelOptions;
  readonly events: EventBus<HwEvent | KernelEvent>;
  readonly pages: PageAllocator;
  /** The swap area (kernel option swap_pages; 0 slots: no swap) and its swap cache. */
  readonly swap: swap_info_struct;
  readonly percpu: PerCpu[];
  readonly init_mm: MmStruct;
  /** Whether the kernel uses PCIDs (X86_FEATURE_PCID and not `nopcid`). */
  readonly pcid: boolean;
  /** X86_FEATURE_PTI: page-table isolation (pti=on, or pti=auto on a CPU with the meltdown bug). */
  readonly pti: boolean;
  /** Whether INVPCID is used (X86_FEATURE_INVPCID with PCID on). */
  readonly invpcid: boolean;
  /** Whether NX is in __supported_pte_mask. */
  readonly nx: boolean;
  /** Whether user shadow stacks are supported (X86_FEATURE_USER_SHSTK: the CPU has them and not `nousershstk`). */
  readonly userShstk: boolean;
  /** Whether protection keys are on (X86_FEATURE_OSPKE: the CPU has PKU and not `nopku`). */
  readonly ospke: boolean;
  /** X86_FEATURE_CPUID_FAULT: MSR_PLATFORM_INFO said so at boot (init_cpuid_fault). */
  cpuid_fault = false;
  /** empty_zero_page's frame. */
  readonly zero_pfn: number;
  /** Paging levels (4, or 5 with LA57). */
  readonly levels: number;
  /** The kernel's layout for its paging mode (page_offset_base, vmalloc_base, LDT_BASE_ADDR). */
  readonly layout: KernelLayout;
  /** Every task ever created, by tid (reaped ones removed). Kernel threads are not in it. */
  readonly tasks = new Map<number, Task>();
  /** kswapd0 (vmscan.ts wakeup_kswapd), made when first woken. */
  kswapd: Task | null = null;
  /** Every mm from mm_alloc to its last mmdrop (init_mm aside): the debug checks count the references of one under construction or teardown too. */
  readonly mms = new Set<MmStruct>();
  /** The futex hash buckets (futex.ts), by key. */
  readonly futex_queues = new Map<string, FutexHashBucket>();
  /** Results of user operations, when `options.log`. */
  readonly log: OpRecord[] = [];
  /** When not null, each process's Meltdown reach is recorded here as its address space ends (exit, execve). */
  reachLog: ReachRecord[] | null = null;
  /** Debug-check findings (debug_vm). */
  readonly debugReports: string[] = [];
  /** The file namespace (vfs.ts). */
  readonly vfs: Vfs;
  /** Pipe buffers charged to the (one) user (user_struct.pipe_bufs), against fs.pipe-user-pages-soft. */
  pipe_user_bufs = 0;
  /** Program images execve can load, by name. */
  readonly images = new Map<string, ProgramImage>();
  /** Wait statuses of reaped or self-reaped tasks, by tid. */
  readonly exited = new Map<number, number>();
  /** totalram_pages: frames the page allocator manages (the overcommit heuristic's limit). */
  readonly totalram_pages: number;
  /** Kernel-path steps a CPU takes per turn (entry.ts KERNEL_QUANTUM; 1 while a scripted schedule runs). */
  quantum = 64;
  /**
   * The explorer's `--until ops` (sim/hold.ts): a thread that has run its last operation sleeps
   * there, before its exit, until the explorer releases it. Not Linux: the simulator's.
   */
  hold_at_end = false;
  private lastPid = 0;
  private lastCtxId = 0;
  private lastObjectId = 0;
  /** The next task-stack slot in vmalloc space (entry_stack per_task's PTI stacks). */
  nextStackSlot = 1;

  constructor(machine: Machine, options: KernelOptions) {
    // The hardware reports its own accesses (hw/footprint.ts); the options and the event bus are not state.
    opaque(machine);
    opaque(machine.mem);
    for (const cpu of machine.cpus) opaque(cpu);
    opaque(machine.events);
    opaque(options);
    this.machine = machine;
    this.options = options;
    this.events = machine.events as unknown as EventBus<HwEvent | KernelEvent>;
    const model = machine.model;
    if (machine.mem.frameCount * 4096 < 8 * 2 ** 20) throw new ConfigError('memory', 'the kernel needs at least 8 MiB of memory');
    this.pcid = model.pcid && !options.nopcid;
    this.invpcid = this.pcid && model.invpcid;
    this.pti = options.pti === 'on' || (options.pti === 'auto' && model.meltdown);
    this.nx = model.nx;
    this.userShstk = model.shstk && !options.nousershstk;
    this.ospke = model.pku && !options.nopku;
    this.levels = model.la57 ? 5 : 4;
    this.layout = opaque(kernel_layout(this.levels));
    const mem = machine.mem;

    // Boot-time frames: the first MiB, the kernel image, the zero page, and boot page tables.
    const kernelFirst = KERNEL_PHYS / 4096;
    let next = kernelFirst + KERNEL_TEXT_PAGES + KERNEL_DATA_PAGES;
    const bootAlloc = (): number => {
      mem.zeroFrame(next);
      return next++;
    };
    this.zero_pfn = bootAlloc();
    // init_top_pgt: with PTI an 8 KiB-aligned pair, the kernel copy then the user copy.
    if (this.pti && next % 2 === 1) bootAlloc();
    const pgd = bootAlloc();
    const userPgd = this.pti ? bootAlloc() : -1;
    // The kernel half is built into boot tables now; PageTables then allocates user tables only.
    const mapper = new KernelMapper(mem, this.levels, bootAlloc);
    const ceas = this.buildKernelMappings(mapper, pgd, bootAlloc, machine.cpus.length);
    // map_vsyscall (setup_arch), before pti_init: __vsyscall_page is a page of the kernel image's data.
    if (options.vsyscall === 'emulate') map_vsyscall(this, mapper, pgd, bootAlloc(), model.pge && !this.pti ? PTE_G : 0);
    if (this.pti) pti_init(this, mapper, pgd, userPgd, ceas);
    this.pages = new PageAllocator(mem, next);
    this.pages.failKind = options.fail_alloc;
    this.pages.failNth = options.fail_alloc_nth;
    this.totalram_pages = mem.frameCount - next;
    this.swap = new swap_info_struct(options.swap_pages);
    this.vfs = new Vfs(this.pages);
    this.vfs.populate();
    proc_root_init(this);

    this.init_mm = new MmStruct(0, new PageTables(mem, this.pages, this.levels, pgd, userPgd, false), machine.cpus.length, TASK_SIZE, 0);
    this.percpu = machine.cpus.map((cpu, i) => new PerCpu(i, cpu, this.init_mm));
    this.percpu.forEach((pc, i) => (pc.cea = ceas[i]));
    idt_setup_ia32(this);
    for (const pc of this.percpu) this.bootCpu(pc);
    return track(this);
  }

  /**
   * Maps into the boot PGD: the kernel text (read-only, executable) and data (RW, NX) in 4 KiB
   * pages, RAM at page_offset_base in 2 MiB pages, each CPU's cpu_entry_area (setup_cpu_entry_area:
   * GDT and TSS read-only, entry stack and IST stacks RW, the read-only IDT at its base), and
   * the ESPFIX page. Ordinary kernel mappings are global only without PTI; the text is global
   * whenever the CPU has PGE (under PTI the entry text's large page is cloned into the user
   * copy and kept global, and in this model the text is one such page), and so are the
   * cpu_entry_area and ESPFIX. Returns each CPU's entry-area description.
   */
  private buildKernelMappings(m: KernelMapper, pgd: number, alloc: () => number, ncpus: number): CpuEntryArea[] {
    const pge = this.machine.model.pge;
    const g = pge && !this.pti ? PTE_G : 0;
    const cg = ceaGlobal(pge);
    const nx = this.nx;
    for (let i = 0; i < KERNEL_TEXT_PAGES; i++) m.map4k(pgd, KERNEL_TEXT + BigInt(i * 4096), KERNEL_PHYS / 4096 + i, __PAGE_KERNEL_RO | cg, false);
    for (let i = 0; i < KERNEL_DATA_PAGES; i++) m.map4k(pgd, KERNEL_DATA + BigInt(i * 4096), KERNEL_PHYS / 4096 + KERNEL_TEXT_PAGES + i, __PAGE_KERNEL | g, nx);
    this.machine.mem.writeBytes(KERNEL_PHYS + (KERNEL_TEXT_PAGES + 1) * 4096, new TextEncoder().encode(LINUX_BANNER_TEXT));
    m.mapDirect(pgd, this.layout.page_offset_base, this.machine.mem.frameCount * 4096, g, nx);
    // CPU_ENTRY_AREA_RO_IDT: idt_table (the first data page), read-only.
    m.map4k(pgd, CPU_ENTRY_AREA_BASE, KERNEL_PHYS / 4096 + KERNEL_TEXT_PAGES, __PAGE_KERNEL_RO | cg, nx);
    const ceas: CpuEntryArea[] = [];
    for (let cpu = 0; cpu < ncpus; cpu++) {
      // The per-CPU variables gdt_page, entry_stack_storage and cpu_tss_rw, aliased in the cea.
      const gdtPfn = alloc();
      const entryStackPfn = alloc();
      const tssPfn = alloc();
      for (let i = 1; i < TSS_PAGES; i++) alloc();
      const base = get_cpu_entry_area(cpu);
      let va = base;
      m.map4k(pgd, va, gdtPfn, __PAGE_KERNEL_RO | cg, nx);
      const gdt = va;
      va += 0x1000n;
      m.map4k(pgd, va, entryStackPfn, __PAGE_KERNEL | cg, nx);
      const entryStack = va;
      va += 0x1000n;
      const tss = va;
      for (let i = 0; i < TSS_PAGES; i++, va += 0x1000n) m.map4k(pgd, va, tssPfn + i, __PAGE_KERNEL_RO | cg, nx);
      for (let s = 0; s < IST_STACKS.length; s++) {
        va += 0x1000n; // guard page, left unmapped
        for (let i = 0; i < EXCEPTION_STACK_PAGES; i++, va += 0x1000n) m.map4k(pgd, va, alloc(), __PAGE_KERNEL | cg, nx);
      }
      ceas.push({ base, gdt, entryStack, tss, gdtPfn, entryStackPfn, tssPfn, tssRw: this.layout.page_offset_base + BigInt(tssPfn * 4096) });
    }
    // ESPFIX64: one read-only stack page (init_espfix_bsp/ap; XXX: its 64-bit aliases are not modelled).
    m.map4k(pgd, ESPFIX_BASE_ADDR, alloc(), __PAGE_KERNEL_RO | cg, nx);
    return ceas;
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
    if (m.xsave) cr4 |= CR4_OSXSAVE;
    // cpu_init_fsgsbase: CR4.FSGSBASE when the CPU has it (and not `nofsgsbase`, which the model lacks).
    if (m.fsgsbase) cr4 |= CR4_FSGSBASE;
    cpu.movToCr4(cr4);
    if (m.xsave) this.fpu__init_cpu_xstate(cpu);
    // init_intel_misc_features: the features of MSR_MISC_FEATURES_ENABLES all off, and
    // init_cpuid_fault's X86_FEATURE_CPUID_FAULT from MSR_PLATFORM_INFO bit 31.
    pc.msr_misc_features_shadow = 0;
    if ((cpu.rdmsr(MSR_PLATFORM_INFO) ?? 0n) & BigInt(PLATFORM_INFO_CPUID_FAULTING)) this.cpuid_fault = true;
    cpu.wrmsr(MSR_MISC_FEATURES_ENABLES, 0n);
    pc.ctx_id[0] = 0;
    pc.ctx_tlb_gen[0] = this.init_mm.tlb_gen;
    setup_cpu_gdt(this, pc);
    load_idt(pc);
  }

  /**
   * fpu__init_cpu_xstate (arch/x86/kernel/fpu/xstate.c), after CR4.OSXSAVE is set: XCR0 gets
   * the user features, x87 and SSE, and PKRU when OSPKE is on (6.12's xsave_cpuid_features maps
   * XFEATURE_PKRU to X86_FEATURE_OSPKE, so `nopku` leaves it out); IA32_XSS the supervisor ones,
   * CET_USER when the CPU has shadow stacks (XFEATURE_CET_USER to X86_FEATURE_SHSTK, whatever
   * `nousershstk` says). The model's kernel enables no AVX: no CPU option has it.
   */
  private fpu__init_cpu_xstate(cpu: Cpu): void {
    const xcr0 = XFEATURE_MASK_X87 | XFEATURE_MASK_SSE | (this.ospke ? XFEATURE_MASK_PKRU : 0);
    cpu.xsetbv(0, BigInt(xcr0));
    cpu.wrmsr(MSR_IA32_XSS, this.machine.model.shstk ? BigInt(XFEATURE_MASK_CET_U) : 0n);
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

  /**
   * A syscall's result: into RAX (do_syscall_x64 and do_int80_emulation's regs->ax = result, a
   * negative errno sign-extended: what a signal frame and ptrace see), its variable and the log;
   * -ERESTARTSYS is held for the restart decision (RAX holds it meanwhile, as pt_regs does until
   * arch_do_signal_or_restart decides, after any ptrace stop in get_signal).
   */
  completeSyscallResult(t: Task, ret: number): void {
    t.vars.set('rax', ret >= -SMALL_RESULTS && ret < SMALL_RESULTS ? SMALL_RAX[ret + SMALL_RESULTS] : BigInt.asUintN(64, BigInt(ret)));
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
  report(pc: PerCpu | null, check: DebugCheck, message: string): void {
    this.debugReports.push(`${check}: ${message}`);
    if (this.events.on) this.emit({ type: 'debug', cpu: pc ? pc.id : -1, check, message });
  }
}
