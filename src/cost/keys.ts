/**
 * The cost model's vocabulary: each figure of the cost table (costs.yaml), the category it is
 * reported under, and the events it is charged on (account.ts). This table is the one list:
 * the table loader requires every name in every profile, and docs/measure.md's table of costs
 * is checked against it.
 */

/** What a cost is reported under in a breakdown. */
export const CATEGORIES = ['user', 'syscall', 'entry', 'cr3', 'tlb', 'flush', 'ipi', 'atomic', 'memory', 'fork', 'fault', 'signal', 'sched', 'pkru'] as const;
export type Category = (typeof CATEGORIES)[number];

export interface CostKey {
  category: Category;
  /** When it is charged, in words (docs/measure.md). */
  charged: string;
}

/** Every figure a profile gives, by name, in the order reports and docs list them. */
export const COST_KEYS = {
  user_op: { category: 'user', charged: 'each user operation that completes, syscalls excepted (a load, a store, a fetch, WRPKRU...); a `work` operation of N instructions N times' },
  syscall: { category: 'syscall', charged: 'each syscall (`syscall_enter`): SYSCALL, SYSRET and the C dispatch, the entry steps billed apart' },
  swapgs: { category: 'entry', charged: 'each SWAPGS of the entry and exit code (`entry` what=swapgs)' },
  stack_switch: { category: 'entry', charged: 'each stack switch of the entry and exit code (`entry` what=stack_switch)' },
  stack_copy_8: { category: 'entry', charged: 'each 8 bytes the entry and exit code push, pop or copy (`entry` events with bytes: pt_regs, the hardware frame, sync_regs, the return frame)' },
  iret: { category: 'entry', charged: 'each return to user mode by IRET instead of SYSRET (`entry` what=iret)' },
  exception: { category: 'fault', charged: 'each exception delivered (`page_fault`, `control_protection`)' },
  page_fault: { category: 'fault', charged: 'each page fault handled (`page_fault`)' },
  page_zero: { category: 'memory', charged: 'each page fault that maps a new zeroed page (`page_fault` outcome mapped)' },
  page_copy: { category: 'memory', charged: 'each page copied (`page_copy`: COW, swap-in)' },
  cr3_write_noflush: { category: 'cr3', charged: 'each CR3 write that keeps the PCID\'s entries (`cr_write` cr3 with NOFLUSH, PCIDs on)' },
  cr3_write_flush: { category: 'cr3', charged: 'each CR3 write that flushes (without NOFLUSH, or without PCIDs)' },
  cr_write: { category: 'cr3', charged: 'each write of another control register or MSR (`cr_write`: CR0, CR4, EFER, PKRS, the CET MSRs, XCR0, IA32_XSS)' },
  walk_leaf: { category: 'tlb', charged: 'each page walk (`walk`): its last level' },
  walk_level: { category: 'tlb', charged: "each upper-level entry a walk reads that the paging-structure caches (the cost model's approximation) do not hold" },
  walk_restart: { category: 'tlb', charged: 'each restart of a walk (`walk` restarts)' },
  ad_update: { category: 'tlb', charged: "each locked A/D update of the processor's walker (`ad_set`)" },
  invlpg: { category: 'flush', charged: 'each INVLPG (`tlb_flush` cause invlpg)' },
  invpcid_addr: { category: 'flush', charged: 'each INVPCID type 0 (`tlb_flush` cause invpcid_addr)' },
  invpcid_ctx: { category: 'flush', charged: 'each INVPCID type 1 (`tlb_flush` cause invpcid_ctx)' },
  invpcid_all: { category: 'flush', charged: 'each INVPCID type 2 or 3 (`tlb_flush` cause invpcid_all, invpcid_nonglobal)' },
  cr4_flush: { category: 'flush', charged: 'each flush by a CR4 write (`tlb_flush` cause cr4)' },
  ipi_send: { category: 'ipi', charged: 'each IPI sent, on the sender (`ipi`)' },
  ipi_receive: { category: 'ipi', charged: 'each IPI taken, on the target (`ipi`)' },
  ipi_wait: { category: 'ipi', charged: 'each TLB shootdown that sends an IPI, on the initiator: waiting for the acknowledgements (`tlb_shootdown` then `ipi`)' },
  lock_rmw: { category: 'atomic', charged: 'each PTE write-protected by a locked AND in fork (fork_wrprotect=atomic_clear)' },
  cmpxchg: { category: 'atomic', charged: 'each PTE write-protected by the read and try_cmpxchg loop in fork (fork_wrprotect=cmpxchg), one try' },
  cmpxchg_retry: { category: 'atomic', charged: 'each failed try_cmpxchg (`pte_retry`)' },
  pte_store: { category: 'atomic', charged: 'each PTE write-protected by a plain store in fork (fork_wrprotect=read_modify_write)' },
  fork: { category: 'fork', charged: 'each fork, vfork or clone (`fork`), the page-table copy billed apart' },
  fork_pte: { category: 'fork', charged: 'each entry copied to the child (`fork` ptes), the write-protect billed apart' },
  wrpkru: { category: 'pkru', charged: 'each WRPKRU (`pkru_write`)' },
  rdpkru: { category: 'pkru', charged: 'each RDPKRU (`op` rdpkru)' },
  xsave: { category: 'sched', charged: 'each context switch away from a user task: saving its extended state, base' },
  xrstor: { category: 'sched', charged: 'each context switch to a user task: restoring its extended state, base' },
  xstate_component: { category: 'sched', charged: "each state component saved or restored (the profile's xstate_components per XSAVE and per XRSTOR)" },
  context_switch: { category: 'sched', charged: 'each context switch (`context_switch`)' },
  switch_mm: { category: 'sched', charged: 'each switch of address space (`switch_mm`), the CR3 write billed apart' },
  signal_deliver: { category: 'signal', charged: 'each signal delivered to a handler (`signal` action handler)' },
  lldt: { category: 'sched', charged: 'each LDT load (`ldt_load`)' },
  reclaim_page: { category: 'memory', charged: 'each folio reclaim looks at (`reclaim`)' },
} as const satisfies Record<string, CostKey>;

export type CostName = keyof typeof COST_KEYS;
export const COST_NAMES = Object.keys(COST_KEYS) as CostName[];
