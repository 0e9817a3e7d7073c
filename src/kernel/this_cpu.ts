/**
 * The CPU a kernel path runs on, looked up at each access (this_cpu_read / this_cpu_write with
 * the %gs prefix: the per-CPU base is the one of the CPU executing the instruction).
 *
 * A kernel path is a generator that keeps the `pc` it was started with. If its task can be
 * preempted and moved to another CPU between two of its steps, a `PerCpu` kept that way would
 * be a cached this_cpu_ptr(): the rest of the path would write the old CPU's TLB state and
 * flush the old CPU's TLB. Paths are therefore given a `ThisCpu`, which has the members of
 * `PerCpu` and forwards each access to the CPU the task is on now. A value read into a local
 * and used after a preemption point is still a cached read, as in C: that is the hazard the
 * DEBUG_PREEMPT checks (debug.ts smp_processor_id) exist to catch.
 */
import type { Cpu } from '../hw/cpu.js';
import type { Kernel, PerCpu } from './kernel.js';
import type { CpuEntryArea } from './layout.js';
import type { MmStruct } from './mm.js';
import type { Task } from './task.js';
import type { FlushTlbInfo } from './tlbflush.js';
import { track } from '../track.js';

/** PerCpu's members, each read or written on the CPU `t` is on at the time of the access. */
export class ThisCpu {
  constructor(
    private readonly k: Kernel,
    private readonly t: Task,
  ) {
    return track(this);
  }

  /** The CPU the task is on now. */
  get here(): PerCpu {
    return this.k.percpu[this.t.cpu];
  }

  get id(): number {
    return this.here.id;
  }
  get cpu(): Cpu {
    return this.here.cpu;
  }
  get current(): Task | null {
    return this.here.current;
  }
  set current(v: Task | null) {
    this.here.current = v;
  }
  get runqueue(): Task[] {
    return this.here.runqueue;
  }
  get loaded_mm(): MmStruct {
    return this.here.loaded_mm;
  }
  set loaded_mm(v: MmStruct) {
    this.here.loaded_mm = v;
  }
  get loaded_mm_asid(): number {
    return this.here.loaded_mm_asid;
  }
  set loaded_mm_asid(v: number) {
    this.here.loaded_mm_asid = v;
  }
  get next_asid(): number {
    return this.here.next_asid;
  }
  set next_asid(v: number) {
    this.here.next_asid = v;
  }
  get ctx_id(): PerCpu['ctx_id'] {
    return this.here.ctx_id;
  }
  get ctx_tlb_gen(): PerCpu['ctx_tlb_gen'] {
    return this.here.ctx_tlb_gen;
  }
  get is_lazy(): boolean {
    return this.here.is_lazy;
  }
  set is_lazy(v: boolean) {
    this.here.is_lazy = v;
  }
  get invalidate_other(): boolean {
    return this.here.invalidate_other;
  }
  set invalidate_other(v: boolean) {
    this.here.invalidate_other = v;
  }
  get ipis(): FlushTlbInfo[] {
    return this.here.ipis;
  }
  get touch(): number {
    return this.here.touch;
  }
  set touch(v: number) {
    this.here.touch = v;
  }
  get irqs_disabled(): boolean {
    return this.here.irqs_disabled;
  }
  set irqs_disabled(v: boolean) {
    this.here.irqs_disabled = v;
  }
  get preempt_count(): number {
    return this.here.preempt_count;
  }
  set preempt_count(v: number) {
    this.here.preempt_count = v;
  }
  get steps(): number {
    return this.here.steps;
  }
  set steps(v: number) {
    this.here.steps = v;
  }
  get user_pcid_flush_mask(): number {
    return this.here.user_pcid_flush_mask;
  }
  set user_pcid_flush_mask(v: number) {
    this.here.user_pcid_flush_mask = v;
  }
  get cea(): CpuEntryArea | null {
    return this.here.cea;
  }
  set cea(v: CpuEntryArea | null) {
    this.here.cea = v;
  }
  get entryStackOwner(): number {
    return this.here.entryStackOwner;
  }
  set entryStackOwner(v: number) {
    this.here.entryStackOwner = v;
  }
  get ldtBase(): bigint {
    return this.here.ldtBase;
  }
  set ldtBase(v: bigint) {
    this.here.ldtBase = v;
  }
  get ldtEntries(): number {
    return this.here.ldtEntries;
  }
  set ldtEntries(v: number) {
    this.here.ldtEntries = v;
  }
  get msr_misc_features_shadow(): number {
    return this.here.msr_misc_features_shadow;
  }
  set msr_misc_features_shadow(v: number) {
    this.here.msr_misc_features_shadow = v;
  }
}

/** The view of task `t`'s CPU its kernel paths are started with (made once per task). */
export function this_cpu(k: Kernel, t: Task): PerCpu {
  return (t.thisCpu ??= new ThisCpu(k, t));
}

/**
 * raw_cpu_ptr: the CPU itself behind `pc`, for a stretch of a path that runs with preemption
 * off (under a spinlock or get_cpu()), where the task cannot move; it saves the lookup on each
 * access in a hot loop. Not to be kept past the point where preemption is enabled again.
 */
export function raw_cpu(pc: PerCpu): PerCpu {
  return pc instanceof ThisCpu ? pc.here : pc;
}
