/**
 * TLB management as Linux 6.12 does it on x86-64 (arch/x86/mm/tlb.c, asm/tlbflush.h):
 * switch_mm_irqs_off with the per-CPU dynamic ASIDs, lazy TLB mode, flush_tlb_mm_range with
 * its single-page ceiling and its IPIs, and flush_tlb_func on each CPU. The kernel touches
 * the TLB only through the processor's instructions (MOV to CR3, INVLPG).
 */
import { CR3_HI_NOFLUSH, CR4_PGE } from '../hw/regs.js';
import type { Kernel, PerCpu } from './kernel.js';
import type { MmStruct } from './mm.js';
import { flush_ldt, switch_ldt } from './ldt.js';
import { mmdrop } from './mmput.js';
import { invalidate_user_asid, user_pcid } from './pti.js';
import { STEP_FLUSH, STEP_IPI, STEP_READ, STEP_WAIT, STEP_WRITE, type KPath, type KSteps } from './steps.js';
import { __this_cpu_preempt_check, smp_processor_id } from './debug.js';
import { raw_cpu } from './this_cpu.js';
import { track } from '../track.js';

/** TLB_NR_DYN_ASIDS: ASIDs each CPU hands out to the mms it runs. */
export const TLB_NR_DYN_ASIDS = 6;
/** TLB_FLUSH_ALL as an end address. */
export const TLB_FLUSH_ALL = -1;

/**
 * struct flush_tlb_info: one flush request, shared by the CPUs it is sent to. The same record
 * carries install_ldt's flush_ldt call (`func`), the other function the model sends by IPI.
 */
export interface FlushTlbInfo {
  func: 'flush_tlb_func' | 'flush_ldt' | 'do_kernel_range_flush' | 'do_flush_tlb_all';
  mm: MmStruct | null;
  start: number;
  end: number;
  stride_shift: number;
  freed_tables: boolean;
  new_tlb_gen: number;
  initiating_cpu: number;
  /** CPUs that have not yet run flush_tlb_func for it (the csd lock the sender waits on). */
  pending: number;
}

/** kern_pcid: the PCID of a dynamic ASID (ASID + 1; PCID 0 is left to PCID-unaware code). */
export function kern_pcid(asid: number): number {
  return asid + 1;
}

/**
 * load_new_mm_cr3: CR3 = the mm's PGD with the ASID's PCID; bit 63 (NOFLUSH) unless
 * `need_flush`. Without PCIDs the PCID field is 0 and every write flushes.
 */
export function load_new_mm_cr3(k: Kernel, pc: PerCpu, mm: MmStruct, asid: number, need_flush: boolean): void {
  const pa = mm.pgd * 4096;
  // The kernel PCID is flushed by this write; the user PCID at the next return to user.
  if (need_flush) invalidate_user_asid(k, pc, asid);
  if (!k.pcid) {
    pc.cpu.movToCr3(Math.floor(pa / 2 ** 32), pa >>> 0);
    return;
  }
  const lo = ((pa >>> 0) | kern_pcid(asid)) >>> 0;
  const hi = Math.floor(pa / 2 ** 32) | (need_flush ? 0 : CR3_HI_NOFLUSH);
  pc.cpu.movToCr3(hi >>> 0, lo);
}

/**
 * choose_new_asid: the ASID slot this CPU uses for `next`. A slot that still holds the mm's
 * ctx_id is reused, flushed only if its tlb_gen is behind; otherwise the next slot round-robin,
 * always flushed. Without PCID: ASID 0, always flushed. Linux returns the ASID and need_flush
 * through two pointers; here they come back packed as `asid * 2 + need_flush`.
 */
function choose_new_asid(k: Kernel, pc: PerCpu, next: MmStruct, next_tlb_gen: number): number {
  if (!k.pcid) return 1; // ASID 0, flushed
  if (pc.invalidate_other) clear_asid_other(k, pc);
  for (let asid = 0; asid < TLB_NR_DYN_ASIDS; asid++) {
    if (pc.ctx_id[asid] !== next.ctx_id) continue;
    return asid * 2 + (pc.ctx_tlb_gen[asid] < next_tlb_gen ? 1 : 0);
  }
  let asid = pc.next_asid++;
  if (asid >= TLB_NR_DYN_ASIDS) {
    asid = 0;
    pc.next_asid = 1;
  }
  return asid * 2 + 1;
}

/**
 * clear_asid_other: forget every ASID but the loaded one, so each is flushed on next use
 * (called by choose_new_asid with interrupts off). With `percpu_ops: __this_cpu` each access
 * goes through __this_cpu_read / __this_cpu_write's DEBUG_PREEMPT check.
 */
function clear_asid_other(k: Kernel, pc: PerCpu): void {
  const checked = k.options.percpu_ops === '__this_cpu';
  for (let asid = 0; asid < TLB_NR_DYN_ASIDS; asid++) {
    if (checked) __this_cpu_preempt_check(k, pc, 'read', 'clear_asid_other');
    if (asid === pc.loaded_mm_asid) continue;
    if (checked) __this_cpu_preempt_check(k, pc, 'write', 'clear_asid_other');
    pc.ctx_id[asid] = 0;
  }
  if (checked) __this_cpu_preempt_check(k, pc, 'write', 'clear_asid_other');
  pc.invalidate_other = false;
}

/**
 * clear_asid_other run from a kernel path with preemption on (kernel option `clear_asid_other:
 * preemptible`, not upstream: the other side of seed 001's question). The same accesses as
 * clear_asid_other, this_cpu_read(cpu_tlbstate.invalidate_other) first, each one its own step
 * on `pc`, the view of the task's current CPU (this_cpu.ts): a task preempted and migrated
 * between two of them does the rest on its new CPU. With `percpu_ops: __this_cpu` every access
 * is checked by DEBUG_PREEMPT; this_cpu_read / this_cpu_write are not.
 */
export function* clear_asid_other_preemptible(k: Kernel, pc: PerCpu): KSteps<void> {
  const checked = k.options.percpu_ops === '__this_cpu';
  const where = 'clear_asid_other';
  pc.touch = pc.id;
  yield STEP_READ;
  if (checked) __this_cpu_preempt_check(k, pc, 'read', where);
  if (!pc.invalidate_other) return;
  for (let asid = 0; asid < TLB_NR_DYN_ASIDS; asid++) {
    pc.touch = pc.id;
    yield STEP_READ;
    if (checked) __this_cpu_preempt_check(k, pc, 'read', where);
    if (asid === pc.loaded_mm_asid) continue;
    pc.touch = pc.id;
    yield STEP_WRITE;
    if (checked) __this_cpu_preempt_check(k, pc, 'write', where);
    pc.ctx_id[asid] = 0;
  }
  pc.touch = pc.id;
  yield STEP_WRITE;
  if (checked) __this_cpu_preempt_check(k, pc, 'write', where);
  pc.invalidate_other = false;
}

/**
 * switch_mm_irqs_off: makes `next` the loaded mm on this CPU (one step: interrupts are off).
 * Leaving lazy mode for the same mm flushes only if the mm's tlb_gen moved on. Switching to
 * another mm moves this CPU from the old mm's cpumask to the new one's, picks an ASID and
 * writes CR3 (with NOFLUSH when the ASID's entries are current).
 */
export function switch_mm_irqs_off(k: Kernel, pc: PerCpu, next: MmStruct): void {
  const prev = pc.loaded_mm;
  const prev_asid = pc.loaded_mm_asid;
  const was_lazy = pc.is_lazy;
  pc.is_lazy = false;
  let new_asid: number;
  let need_flush: boolean;
  let next_tlb_gen: number;
  if (prev === next) {
    if (!was_lazy) return;
    next_tlb_gen = next.tlb_gen;
    if (pc.ctx_tlb_gen[prev_asid] === next_tlb_gen) {
      k.emitSwitch(pc, prev, next, prev_asid, false, 'unlazy');
      return;
    }
    new_asid = prev_asid;
    need_flush = true;
  } else {
    if (prev !== k.init_mm) prev.cpumask[pc.id] = 0;
    if (next !== k.init_mm) next.cpumask[pc.id] = 1;
    next_tlb_gen = next.tlb_gen;
    const chosen = choose_new_asid(k, pc, next, next_tlb_gen);
    new_asid = chosen >> 1;
    need_flush = (chosen & 1) !== 0;
  }
  if (need_flush) {
    pc.ctx_id[new_asid] = next.ctx_id;
    pc.ctx_tlb_gen[new_asid] = next_tlb_gen;
  }
  load_new_mm_cr3(k, pc, next, new_asid, need_flush);
  if (prev !== next) {
    // The loaded mm is pinned by a reference (mmgrab / mmdrop of the lazy-TLB mm).
    if (next !== k.init_mm) next.mm_count++;
    if (prev !== k.init_mm) mmdrop(k, prev);
  }
  pc.loaded_mm = next;
  pc.loaded_mm_asid = new_asid;
  if (prev !== next) switch_ldt(k, pc, prev, next);
  k.emitSwitch(pc, prev, next, new_asid, need_flush, prev === next ? 'unlazy' : 'switch');
}

/**
 * enter_lazy_tlb: the CPU runs a kernel thread (here: goes idle) and keeps the user mm's page
 * tables loaded. It stays in the mm's cpumask; flushes that free page tables still reach it.
 */
export function enter_lazy_tlb(k: Kernel, pc: PerCpu): void {
  if (pc.loaded_mm === k.init_mm) return;
  pc.is_lazy = true;
}

/**
 * flush_tlb_func: runs on each CPU a flush request reaches (from an IPI, or locally). A CPU
 * not running the mm ignores it; a lazy one switches to init_mm instead of flushing. A CPU
 * already at the mm's generation does nothing. A range is flushed page by page only when
 * this request is the next generation and nothing newer is pending; else a full flush.
 */
export function flush_tlb_func(k: Kernel, pc: PerCpu, f: FlushTlbInfo): void {
  const loaded_mm = pc.loaded_mm;
  if (f.mm !== null && f.mm !== loaded_mm) return;
  if (loaded_mm === k.init_mm) return;
  if (pc.is_lazy) {
    // switch_mm_irqs_off(NULL, &init_mm, NULL): stop speculating through freed tables.
    switch_mm_irqs_off(k, pc, k.init_mm);
    return;
  }
  const asid = pc.loaded_mm_asid;
  const mm_tlb_gen = loaded_mm.tlb_gen;
  const local_tlb_gen = pc.ctx_tlb_gen[asid];
  if (local_tlb_gen === mm_tlb_gen) return;
  if (f.new_tlb_gen <= local_tlb_gen) return;
  const partial = f.end !== TLB_FLUSH_ALL && f.new_tlb_gen === local_tlb_gen + 1 && f.new_tlb_gen === mm_tlb_gen;
  let pages = 0;
  if (partial) {
    const stride = 2 ** f.stride_shift;
    for (let addr = f.start; addr < f.end; addr += stride) {
      flush_tlb_one_user(k, pc, addr);
      pages++;
    }
  } else {
    flush_tlb_local(k, pc);
  }
  pc.ctx_tlb_gen[asid] = mm_tlb_gen;
  k.emitFlushFunc(pc, f, partial ? pages : -1);
}

/**
 * flush_tlb_one_user (native_flush_tlb_one_user): INVLPG of one address in the current (kernel)
 * PCID; with PTI also the user PCID: INVPCID type 0 when the CPU has it, else the deferred flush.
 */
export function flush_tlb_one_user(k: Kernel, pc: PerCpu, addr: number): void {
  const hi = Math.floor(addr / 2 ** 32) >>> 0;
  const lo = addr >>> 0;
  pc.cpu.invlpg(hi, lo);
  if (!k.pti) return;
  if (k.invpcid) pc.cpu.invpcid(0, user_pcid(pc.loaded_mm_asid), hi, lo);
  else invalidate_user_asid(k, pc, pc.loaded_mm_asid);
}

/**
 * flush_tlb_one_kernel: flushes kernel address `addr` on this CPU. Without PTI kernel mappings
 * are global and INVLPG drops them from every PCID. With PTI they are not global:
 * flush_tlb_one_user drops the address from the current kernel PCID and its user PCID, and
 * this_cpu_write(cpu_tlbstate.invalidate_other, true) makes the next choose_new_asid on this
 * CPU forget every other ASID (clear_asid_other).
 */
export function flush_tlb_one_kernel(k: Kernel, pc: PerCpu, addr: number): void {
  flush_tlb_one_user(k, pc, addr);
  if (!k.pti) return;
  pc.invalidate_other = true;
}

/** do_kernel_range_flush: on each CPU (an IPI, or locally), flush_tlb_one_kernel for each page of [f.start, f.end). */
export function do_kernel_range_flush(k: Kernel, pc: PerCpu, f: FlushTlbInfo): void {
  for (let addr = f.start; addr < f.end; addr += 4096) flush_tlb_one_kernel(k, pc, addr);
}

/**
 * __flush_tlb_all: every entry of this CPU's TLB, global ones and every PCID included. With
 * PGE, native_flush_tlb_global: INVPCID's all-contexts type where the CPU has INVPCID, else
 * CR4.PGE cleared and set again; without PGE, flush_tlb_local. Nothing is left for
 * invalidate_other to do.
 */
export function __flush_tlb_all(k: Kernel, pc: PerCpu): void {
  const cpu = pc.cpu;
  if (!cpu.model.pge) {
    flush_tlb_local(k, pc);
    return;
  }
  if (cpu.model.invpcid) {
    cpu.invpcid(2, 0);
    return;
  }
  const cr4 = cpu.cr4;
  cpu.movToCr4(cr4 ^ CR4_PGE);
  cpu.movToCr4(cr4);
}

/**
 * flush_tlb_kernel_range: after the caller cleared kernel PTEs in [start, end) (addresses as
 * numbers: page-aligned kernel addresses are exact doubles; `end` TLB_FLUSH_ALL for
 * everything), every CPU drops them before the caller goes on. On each CPU, on_each_cpu runs
 * do_flush_tlb_all (__flush_tlb_all) for TLB_FLUSH_ALL or a range above
 * tlb_single_page_flush_ceiling, else do_kernel_range_flush: under preempt_disable(), an IPI
 * (one step each) to every other CPU, the local call with interrupts off, then the wait for
 * every target. With the kernel option `clear_asid_other: preemptible` the caller then clears
 * its CPU's other ASIDs itself, preemptible (clear_asid_other_preemptible).
 */
export function* flush_tlb_kernel_range(k: Kernel, pc: PerCpu, start: number, end: number): KPath {
  const all = end === TLB_FLUSH_ALL || end - start > k.options.tlb_single_page_flush_ceiling * 4096;
  pc.preempt_count++; // preempt_disable()
  const cpu = smp_processor_id(k, pc, 'flush_tlb_kernel_range');
  const info: FlushTlbInfo = track({ func: all ? 'do_flush_tlb_all' : 'do_kernel_range_flush', mm: null, start, end, stride_shift: 0, freed_tables: false, new_tlb_gen: 0, initiating_cpu: cpu, pending: 0 });
  // on_each_cpu -> smp_call_function_many_cond: every other online CPU, then this one with interrupts off.
  for (let c = 0; c < k.percpu.length; c++) {
    if (c === cpu) continue;
    info.pending++;
    pc.touch = c;
    yield STEP_IPI;
    k.percpu[c].ipis.push(info);
    k.emitIpi(pc, c);
  }
  pc.touch = pc.id;
  yield STEP_FLUSH;
  // smp_call_function_many_cond runs the local call under local_irq_save.
  const here = raw_cpu(pc);
  const irqs = here.irqs_disabled;
  here.irqs_disabled = true;
  if (all) __flush_tlb_all(k, here);
  else do_kernel_range_flush(k, here, info);
  here.irqs_disabled = irqs;
  while (info.pending > 0) {
    pc.touch = -1;
    yield STEP_WAIT;
  }
  pc.preempt_count--; // preempt_enable()
  if (k.options.clear_asid_other === 'preemptible') yield* clear_asid_other_preemptible(k, pc);
  return 0;
}

/**
 * flush_tlb_local (native_flush_tlb_local): the user ASID is flushed at the next return to
 * user, and CR3 is rewritten without NOFLUSH, dropping the current PCID's non-global entries.
 */
export function flush_tlb_local(k: Kernel, pc: PerCpu): void {
  // load_new_mm_cr3 with need_flush marks the user ASID (invalidate_user_asid).
  load_new_mm_cr3(k, pc, pc.loaded_mm, pc.loaded_mm_asid, true);
}

/**
 * flush_tlb_mm_range: after the caller changed `mm`'s PTEs in [start, end) (end
 * TLB_FLUSH_ALL for everything), makes every CPU drop what it cached of them before the
 * caller goes on. More than tlb_single_page_flush_ceiling pages become a full flush. Bumps
 * the mm's tlb_gen; sends an IPI (one step each) to every other CPU in the mm's cpumask
 * (lazy ones only when page tables were freed), runs the flush locally if this CPU has the
 * mm loaded, then waits for every target to finish.
 */
export function* flush_tlb_mm_range(k: Kernel, pc: PerCpu, mm: MmStruct, start: number, end: number, stride_shift: number, freed_tables: boolean): KPath {
  // get_cpu(): preemption stays off until put_cpu(), IPIs and waiting included.
  pc.preempt_count++;
  const cpu = smp_processor_id(k, pc, 'flush_tlb_mm_range');
  if (end !== TLB_FLUSH_ALL && (end - start) / 2 ** stride_shift > k.options.tlb_single_page_flush_ceiling) {
    start = 0;
    end = TLB_FLUSH_ALL;
  }
  const new_tlb_gen = ++mm.tlb_gen;
  const info: FlushTlbInfo = track({ func: 'flush_tlb_func', mm, start, end, stride_shift, freed_tables, new_tlb_gen, initiating_cpu: cpu, pending: 0 });
  let others = false;
  for (let c = 0; c < k.percpu.length; c++) if (c !== cpu && mm.cpumask[c]) others = true;
  k.emitShootdown(pc, info);
  if (others) {
    // flush_tlb_multi -> native_flush_tlb_multi: IPIs to the other CPUs, then the local flush.
    for (let c = 0; c < k.percpu.length; c++) {
      if (c === cpu || !mm.cpumask[c]) continue;
      const target = k.percpu[c];
      if (!freed_tables && target.is_lazy) continue; // should_flush_tlb
      info.pending++;
      pc.touch = c;
      yield STEP_IPI;
      target.ipis.push(info);
      k.emitIpi(pc, c);
    }
    if (mm.cpumask[pc.id] && pc.loaded_mm === mm) {
      pc.touch = pc.id;
      yield STEP_FLUSH;
      flush_tlb_func(k, pc, info);
    }
    while (info.pending > 0) {
      pc.touch = -1;
      yield STEP_WAIT;
    }
  } else if (pc.loaded_mm === mm) {
    pc.touch = pc.id;
    yield STEP_FLUSH;
    flush_tlb_func(k, pc, info);
  }
  pc.preempt_count--; // put_cpu()
  return 0;
}

/** Handles one queued call-function IPI on this CPU (flush_tlb_func, flush_ldt or do_kernel_range_flush) and acknowledges it. */
export function handle_flush_ipi(k: Kernel, pc: PerCpu): void {
  const f = pc.ipis.shift()!;
  // A hard interrupt handler: interrupts are off while it runs.
  const irqs = pc.irqs_disabled;
  pc.irqs_disabled = true;
  if (f.func === 'flush_ldt') flush_ldt(k, pc, f.mm!);
  else if (f.func === 'do_kernel_range_flush') do_kernel_range_flush(k, pc, f);
  else if (f.func === 'do_flush_tlb_all') __flush_tlb_all(k, pc);
  else flush_tlb_func(k, pc, f);
  pc.irqs_disabled = irqs;
  f.pending--;
}
