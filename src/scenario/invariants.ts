/**
 * Invariants a scenario can ask for at the end of a run (`expect.invariants`). Each reads the
 * System's state and returns null when it holds, or what is wrong. Later layers (PTI's user
 * page tables, the explorer's TLB checks) add theirs to this table.
 */
import type { IsolabEvent, System } from '../system.js';
import { ReadStability } from './read_stability.js';

export interface InvariantContext {
  sys: System;
  /** Frames in use right after boot, before the first process. */
  bootFrames: number;
  /** What the invariant's watcher (`watch`) saw during the run. */
  watched?: string | null;
}

export interface Invariant {
  doc: string;
  check: (ctx: InvariantContext) => string | null;
  /** For an invariant judged on the run, not only its end: follows every event; returns the first problem seen, or null. */
  watch?: (sys: System) => { onEvent: (e: IsolabEvent) => void; result: () => string | null };
}

/** Tasks not yet exited, as "tid (state)". */
function alive(sys: System): string[] {
  return sys.tasks().filter((t) => t.state !== 'dead' && t.state !== 'zombie').map((t) => `${t.tid} (${t.state})`);
}

export const INVARIANTS: Record<string, Invariant> = {
  debug_checks: {
    doc: "The kernel's debug checks (page and map counts against every page table, page tables left after exit_mmap, DEBUG_PREEMPT) found nothing, during the run (with kernel.debug_vm) and at its end.",
    check: ({ sys }) => {
      const extra = sys.checkPageCounts().length;
      const reports = sys.debugReports;
      if (reports.length === 0) return null;
      return `${reports.length} finding(s)${extra ? `, ${extra} at the end` : ''}: ${reports.slice(0, 3).join('; ')}${reports.length > 3 ? '; ...' : ''}`;
    },
  },
  pti_user_pgd: {
    doc: 'Under PTI, no user page table maps a kernel page outside the PTI-shared set (cpu_entry_area, ESPFIX, entry text, cpu_tss_rw, LDT slots, PTI stacks): checked after every syscall with kernel.debug_vm, and at the end for every live mm.',
    check: ({ sys }) => {
      sys.checkPtiUserPgd();
      const found = sys.debugReports.filter((r) => r.startsWith('pti_user_pgd:'));
      return found.length === 0 ? null : `${found.length} finding(s): ${found.slice(0, 3).join('; ')}`;
    },
  },
  all_exited: {
    doc: 'Every task has exited: nothing is left blocked or unfinished when the run stops.',
    check: ({ sys }) => {
      const a = alive(sys);
      return a.length === 0 ? null : `task(s) still alive: ${a.join(', ')}`;
    },
  },
  read_stability: {
    doc: 'A value a task read from private anonymous memory does not change until a task of the same address space stores there, or something that may discard or rewrite it happens in that address space (mmap, munmap, a discarding madvise, execve, a signal frame, a syscall that writes user memory): a write lost to reclaim breaks it, however the kernel lost track of it.',
    watch: (sys) => {
      const r = new ReadStability(sys);
      return { onEvent: (e) => r.onEvent(e), result: () => r.violation };
    },
    check: ({ watched }) => watched ?? null,
  },
  no_leaks: {
    doc: 'Once every task has exited, every frame allocated since boot has been freed.',
    check: ({ sys, bootFrames }) => {
      const a = alive(sys);
      if (a.length > 0) return `cannot hold while task(s) ${a.join(', ')} are alive`;
      const inUse = sys.framesInUse;
      return inUse === bootFrames ? null : `${inUse - bootFrames} frame(s) still allocated after every task exited`;
    },
  },
};
