/**
 * Debug checks in the spirit of CONFIG_DEBUG_VM and CONFIG_DEBUG_PREEMPT, on when the kernel
 * option `debug_vm` is set (the tests set it): page reference and map counts against the page
 * tables of every live mm, the swap area's counts against the swap PTEs and the swap cache, no
 * frame leaked once a process is gone, and per-CPU data used with
 * preemption enabled. A finding is recorded in `Kernel.debugReports` and emitted as a `debug`
 * event; `assertClean` turns findings into a ModelError.
 */
import { ModelError } from '../errors.js';
import { PTE_P } from '../hw/pte.js';
import type { Kernel, PerCpu } from './kernel.js';
import type { MmStruct } from './mm.js';
import { kindex } from './layout.js';
import { GUP_PIN_COUNTING_BIAS, PG_reserved, PG_swapcache } from './page.js';
import { __swap_count, SWAP_HAS_CACHE } from './swap.js';
import { readWhole } from '../track.js';
import { check_pti_user_pgd } from './pti.js';
import { _PAGE_SPECIAL, pte_pfn, pte_present, swp_offset } from './pgtable.js';

/**
 * Recounts, from the page tables of every live mm and every shmem object, the map count and
 * the references of each frame, and compares them with the page allocator's counters. Also
 * checks that every allocated frame is accounted for (nothing leaked).
 */
export function check_page_counts(k: Kernel, pc: PerCpu | null): void {
  const mem = k.machine.mem;
  const n = mem.frameCount;
  const maps = new Map<number, number>();
  const refs = new Map<number, number>();
  /** Swap PTEs by slot. */
  const swapRefs = new Map<number, number>();
  const bump = (m: Map<number, number>, pfn: number): void => {
    m.set(pfn, (m.get(pfn) ?? 0) + 1);
  };
  // Every mm alive (Kernel.mms: from mm_alloc to the last mmdrop, so attached to a task or not,
  // loaded lazily, being built by fork or execve, or being torn down), and the page references
  // kernel paths hold between their steps.
  const mms = k.mms;
  for (const h of k.pages.held) {
    for (const pfn of h.refs) bump(refs, pfn);
    for (const pfn of h.pins ?? []) refs.set(pfn, (refs.get(pfn) ?? 0) + GUP_PIN_COUNTING_BIAS);
    for (const pfn of h.unmapping ?? []) {
      bump(maps, pfn);
      bump(refs, pfn);
    }
  }
  const shmem = new Set<{ pages: Map<number, number> }>();
  for (const t of k.tasks.values()) if (t.ptiStack) for (const pfn of t.ptiStack.pfns) bump(refs, pfn);
  for (const mm of mms) {
    if (mm.mm_count > 0) {
      bump(refs, mm.pgd);
      if (mm.pgtables.userPgd >= 0) bump(refs, mm.pgtables.userPgd);
      if (mm.ldt) for (const pfn of mm.ldt.pfns) bump(refs, pfn);
    }
    const walk = (table: number, level: number, first: number, last: number): void => {
      for (let i = first; i < last; i++) {
        const lo = mem.readLo(table, i);
        const hi = mem.readHi(table, i);
        if (level > 1) {
          if (!(lo & PTE_P)) continue;
          const child = (hi & 0xfffff) * 1048576 + (lo >>> 12);
          bump(refs, child);
          walk(child, level - 1, 0, 512);
          continue;
        }
        if (!pte_present(lo)) {
          if (lo !== 0 || hi !== 0) bump(swapRefs, swp_offset(lo, hi));
          continue;
        }
        if (lo & _PAGE_SPECIAL) continue;
        const pfn = pte_pfn(lo, hi);
        bump(maps, pfn);
        bump(refs, pfn);
      }
    };
    if (!mm.dead) walk(mm.pgd, k.levels, 0, 256);
    // Kernel-half slots whose tables the mm owns (the LDT remap, PTI stacks): tables only,
    // their leaves are kernel mappings that take no page references.
    for (const va of [k.layout.ldt_base_addr, k.layout.vmalloc_base]) {
      const i = kindex(va, k.levels);
      const lo = mem.readLo(mm.pgd, i);
      if (!(lo & PTE_P) || lo === mem.readLo(k.init_mm.pgd, i)) continue;
      const countTables = (table: number, level: number): void => {
        bump(refs, table);
        if (level <= 1) return;
        for (let j = 0; j < 512; j++) {
          const e = mem.readLo(table, j);
          if (e & PTE_P) countTables((mem.readHi(table, j) & 0xfffff) * 1048576 + (e >>> 12), level - 1);
        }
      };
      countTables((mem.readHi(mm.pgd, i) & 0xfffff) * 1048576 + (lo >>> 12), k.levels - 1);
    }
    for (const v of mm.vmas.list) if (v.shmem) shmem.add(v.shmem);
  }
  // Files' page caches (vfs.ts), mapped or not.
  for (const obj of k.vfs.mappings()) shmem.add(obj);
  for (const obj of shmem) for (const pfn of obj.pages.values()) bump(refs, pfn);
  // The swap cache holds a reference to each folio in it.
  for (const pfn of k.swap.cache.values()) bump(refs, pfn);
  check_swap_map(k, pc, swapRefs);
  // Under PTI, no user page table maps a kernel page outside the PTI-shared set.
  for (const mm of mms) check_pti_user_pgd(k, pc, mm);
  let inUse = 0;
  const refcount = readWhole(k.pages.refcount);
  const mapcount = readWhole(k.pages.mapcount);
  const flags = readWhole(k.pages.flags);
  for (let pfn = 0; pfn < n; pfn++) {
    const rc = refcount[pfn];
    if (rc === 0) continue;
    inUse++;
    if (flags[pfn] & PG_reserved) continue;
    const wantMap = maps.get(pfn) ?? 0;
    const wantRef = refs.get(pfn) ?? 0;
    if (mapcount[pfn] !== wantMap) k.report(pc, 'page_mapcount', `frame 0x${pfn.toString(16)}: mapcount ${mapcount[pfn]}, but ${wantMap} PTEs map it`);
    if (rc !== wantRef) {
      k.report(pc, wantRef === 0 ? 'leak' : 'page_ref_count', `frame 0x${pfn.toString(16)}: refcount ${rc}, but ${wantRef} references were found (page tables, PGDs, shmem)`);
    }
  }
  if (inUse !== k.pages.inUse) k.report(pc, 'page_alloc', `${k.pages.inUse} frames counted in use, ${inUse} have references`);
}

/**
 * The swap area against the page tables: each slot's count is the number of swap PTEs that
 * name it, SWAP_HAS_CACHE is set exactly when the swap cache holds a folio for it (a folio
 * marked PG_swapcache whose folio->swap is that slot), and inuse_pages counts the used slots.
 */
function check_swap_map(k: Kernel, pc: PerCpu | null, swapRefs: Map<number, number>): void {
  const si = k.swap;
  let inuse = 0;
  for (const [offset, n] of swapRefs) {
    if (offset >= si.max) k.report(pc, 'swap_map', `${n} swap PTE(s) name slot ${offset}, beyond the ${si.max}-slot swap area`);
  }
  for (let offset = 0; offset < si.max; offset++) {
    const map = si.swap_map[offset];
    if (map !== 0) inuse++;
    const want = swapRefs.get(offset) ?? 0;
    if (__swap_count(si, offset) !== want) k.report(pc, 'swap_map', `swap slot ${offset}: count ${__swap_count(si, offset)}, but ${want} swap PTEs name it`);
    const pfn = si.cache.get(offset);
    if (((map & SWAP_HAS_CACHE) !== 0) !== (pfn !== undefined)) k.report(pc, 'swap_map', `swap slot ${offset}: SWAP_HAS_CACHE ${map & SWAP_HAS_CACHE ? 'set' : 'clear'}, but the swap cache ${pfn === undefined ? 'has no folio' : `has frame 0x${pfn.toString(16)}`} for it`);
    if (pfn !== undefined && (!(k.pages.flags[pfn] & PG_swapcache) || k.pages.swap[pfn] !== offset)) k.report(pc, 'swap_map', `swap slot ${offset}: the swap cache's frame 0x${pfn.toString(16)} is not marked as caching it`);
  }
  if (inuse !== si.inuse_pages) k.report(pc, 'swap_map', `${si.inuse_pages} swap slots counted in use, ${inuse} are`);
}

/** After exit_mmap of the last user: no page tables, no resident pages, no VMAs left. */
export function checkMmAfterExit(k: Kernel, pc: PerCpu, mm: MmStruct): void {
  if (mm.pgtables.tables !== 0) k.report(pc, 'free_pgtables', `mm ${mm.ctx_id}: ${mm.pgtables.tables} page tables left after exit_mmap`);
  if (mm.rss !== 0) k.report(pc, 'rss', `mm ${mm.ctx_id}: rss ${mm.rss} after exit_mmap`);
  if (mm.swapents !== 0) k.report(pc, 'rss', `mm ${mm.ctx_id}: MM_SWAPENTS ${mm.swapents} after exit_mmap`);
  if (mm.vmas.length !== 0) k.report(pc, 'exit_mmap', `mm ${mm.ctx_id}: ${mm.vmas.length} VMAs left`);
  check_page_counts(k, pc);
}

/**
 * check_preemption_disabled (lib/smp_processor_id.c, CONFIG_DEBUG_PREEMPT): with `debug_vm`,
 * reports "BUG: using <what1><what2>() in preemptible code" when the task running the path on
 * `pc` could be preempted and migrated there: preempt_count 0 and interrupts on. Returns the
 * CPU number. XXX: Linux also accepts a task bound to one CPU (is_percpu_thread) or with
 * migration disabled; the model has neither.
 */
export function check_preemption_disabled(k: Kernel, pc: PerCpu, what1: string, what2: string, where: string): number {
  if (k.options.debug_vm && pc.preempt_count === 0 && !pc.irqs_disabled && pc.current !== null) {
    k.report(pc, 'debug_preempt', `BUG: using ${what1}${what2}() in preemptible code: ${where} (task ${pc.current.tid})`);
  }
  return pc.id;
}

/**
 * smp_processor_id (debug_smp_processor_id): the CPU number, reporting (DEBUG_PREEMPT) a use
 * from a kernel path that could be preempted and migrated, so the answer could be stale.
 */
export function smp_processor_id(k: Kernel, pc: PerCpu, where: string): number {
  return check_preemption_disabled(k, pc, 'smp_processor_id', '', where);
}

/**
 * this_cpu_ptr with CONFIG_DEBUG_PREEMPT (include/linux/percpu-defs.h): the per-CPU base comes
 * from my_cpu_offset, per_cpu_offset(smp_processor_id()), so it is checked like
 * smp_processor_id. Returns the CPU's own state (raw: a pointer kept past a preemption point
 * still points there).
 */
export function this_cpu_ptr(k: Kernel, pc: PerCpu, where: string): PerCpu {
  check_preemption_disabled(k, pc, 'smp_processor_id', '', where);
  return k.percpu[pc.id];
}

/**
 * __this_cpu_preempt_check (percpu-defs.h __this_cpu_read / __this_cpu_write): the access is
 * checked with check_preemption_disabled("__this_cpu_", op). this_cpu_read / this_cpu_write
 * are not: they are safe against preemption by themselves (one %gs-prefixed instruction).
 */
export function __this_cpu_preempt_check(k: Kernel, pc: PerCpu, op: 'read' | 'write', where: string): void {
  check_preemption_disabled(k, pc, '__this_cpu_', op, where);
}

/** Throws a ModelError if any debug check has fired. */
export function assertClean(k: Kernel): void {
  if (k.debugReports.length > 0) throw new ModelError(k.debugReports[0].split(':')[0], k.debugReports.join('\n'));
}
