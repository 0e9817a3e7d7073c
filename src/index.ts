/**
 * isolab's TypeScript API.
 *
 * The machine layer (hw/): a multi-CPU x86-64 processor model with 4/5-level paging, PCID-tagged
 * TLBs, A/D bits, NX, SMEP, SMAP, protection keys and CET shadow-stack access rules.
 * The kernel (kernel/) and the System that boots it: address spaces, faults and COW, fork,
 * vfork, clone, execve, exit, wait4, signals, scheduling and TLB shootdown, as Linux 6.12 does them.
 * Scenarios (scenario/): experiments as YAML files or plain objects, checked, run and judged;
 * their event streams as JSONL or Perfetto traces (trace/).
 */
export { IsolabError, ArgumentError, ConfigError, ModelError } from './errors.js';
export { EventBus, type BaseEvent, type Listener } from './events.js';
export { hi32, lo32, join64, joinNumber, hex64, isCanonical, type U64 } from './hw/addr.js';
export * from './hw/pte.js';
export * from './hw/regs.js';
export {
  Access, ACCESS_NAMES, accessKind, accessFault, accessErrorCode, isWriteAccess, isShadowStackAccess,
  PF_P, PF_W, PF_U, PF_RSVD, PF_I, PF_PK, PF_SS, R_USER, R_WRITE, R_XD, R_DIRTY, R_SHSTK, R_GLOBAL,
  type AccessKind, type AccessName, type AccessRegs,
} from './hw/rights.js';
export { Tlb, DEFAULT_TLB_GEOMETRY, type TlbGeometry, type TlbEntry } from './hw/tlb.js';
export { PhysMem } from './hw/physmem.js';
export { PageWalker, WalkMode, FAULT, PENDING, tableIndex } from './hw/mmu.js';
export { Cpu, type Fault, type Probe } from './hw/cpu.js';
export { DEFAULT_CPU_MODEL, resolveCpuModel, type CpuModel, type DirtyOnReadonly } from './hw/features.js';
export { Machine, type MachineConfig } from './hw/machine.js';
export { PageTableBuilder, FrameAllocator, entryValue, makeCr3, SIZE_4K, SIZE_2M, SIZE_1G, type EntryFlags, type MapOptions } from './hw/ptbuild.js';
export type { HwEvent, FlushCause } from './hw/events.js';
export {
  System, type SystemConfig, type RunResult, type IsolabEvent,
  type TaskInfo, type Pte, type VmaInfo, type MmInfo, type PageInfo, type CpuInfo, type AsidInfo,
} from './system.js';
export { Kernel } from './kernel/kernel.js';
export { DEFAULT_KERNEL_OPTIONS, KERNEL_OPTION_SPECS, type KernelOptions } from './kernel/options.js';
export type { KernelEvent } from './kernel/events.js';
export type { OpRecord, SigInfo } from './kernel/task.js';
export { SYSCALLS, syscallByName } from './kernel/syscalls.js';
export type { Op, Program, Value } from './user/program.js';
export * as uapi from './kernel/uapi.js';
export {
  compileScenario, compileScenarioText, compileScenarioFile, runScenario, scenarioSchema, INVARIANTS,
  type CompiledScenario, type RunOptions, type RunReport, type Verdict, type TimelineEntry, type Counts,
  type Scenario, type ProcessSpec, type ThreadSpec, type ProgramSpec, type OpSpec, type OpExpect, type EndExpect, type HandlerSpec, type Expr,
} from './scenario/index.js';
export { runResultSchema } from './scenario/result-schema.js';
export { toJsonl, toPerfetto, type TraceRecord, type TraceMeta } from './trace/index.js';
export { ScenarioError, formatIssue, type ScenarioIssue } from './errors.js';
