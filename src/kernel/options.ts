/**
 * The kernel's options: boot parameters, sysctls and the design choices the seeds debate
 * (DESIGN.md rule 6). Each is described once, in KERNEL_OPTION_SPECS: the resolver, the
 * scenario schema and the documentation read that table. Upstream behaviour is the default.
 */
import { ConfigError } from '../errors.js';

export interface KernelOptions {
  /** User operations a task runs before the timer tick lets another runnable task on its CPU run; 0: never. */
  timeslice: number;
  /** The preemption model (preempt= with PREEMPT_DYNAMIC). */
  preempt: Preempt;
  /** debugfs x86/tlb_single_page_flush_ceiling: flushes of more pages become full flushes. */
  tlb_single_page_flush_ceiling: number;
  /** The `nopcid` boot parameter: do not use PCIDs even if the CPU has them. */
  nopcid: boolean;
  /** CONFIG_DEBUG_VM-style checks after each syscall and exit (page counts against page tables, leaks) and DEBUG_PREEMPT. */
  debug_vm: boolean;
  /** Keep a record of every user operation's result (`Kernel.log`). */
  log: boolean;
  /** vm.mmap_min_addr: the lowest address a mapping may have (Debian's CONFIG_DEFAULT_MMAP_MIN_ADDR). */
  mmap_min_addr: number;
  /** The `nopku` boot parameter: do not use protection keys even if the CPU has them (no OSPKE). */
  nopku: boolean;
  /** The `init_pkru=` boot parameter: init_pkru_value, the PKRU of a new image and of a signal handler. */
  init_pkru: number;
  /** What signal delivery does with PKRU (seed 002). */
  pkru_on_signal: PkruOnSignal;
  /** The `nousershstk` boot parameter: no user shadow stacks even if the CPU has them. */
  nousershstk: boolean;
  /** How fork write-protects a private writable PTE (seed 003). */
  fork_wrprotect: ForkWrprotect;
  /** How do_wp_page retires the old PTE when it breaks COW (the explorer's stale-TLB example). */
  wp_copy_flush: WpCopyFlush;
  /** Which value fork builds the child's PTE from after the parent's write-protect (the MADV_FREE finding's first fix). */
  fork_child_pte: ForkChildPte;
  /** What dropping a dirty PTE of a lazyfree or swap-cache anonymous folio does to the folio (the finding's second fix). */
  anon_dirty_drop: AnonDirtyDrop;
  /** The `pti=` boot parameter: page-table isolation on, off, or as the CPU's `meltdown` bug says. */
  pti: Pti;
  /** Which stack entry from user mode lands on, and where the PTI CR3 switch happens (seed 004). */
  entry_stack: EntryStack;
  /** Per-process PTI (seed 000): arch_prctl ARCH_GET_NOPTI / ARCH_SET_NOPTI exist. */
  pti_per_process: boolean;
  /** The `ia32_emulation=` boot parameter: the 32-bit syscall entry (INT 0x80) exists. */
  ia32_emulation: boolean;
  /** Where clear_asid_other runs after a kernel-range flush (seed 001). */
  clear_asid_other: ClearAsidOther;
  /** Which per-CPU accessors clear_asid_other uses (seed 001: tglx's proposed conversion). */
  percpu_ops: PercpuOps;
  /** Allocation-failure injection: the kind of allocation that fails, or `none`. */
  fail_alloc: FailAlloc;
  /** Which allocation of kind `fail_alloc` fails (1: the first since boot). */
  fail_alloc_nth: number;
  /** sysctl kernel.threads-max: tasks the system may hold before fork and clone give EAGAIN; 0: Linux's boot value (threadsMax). */
  threads_max: number;
  /** The swap area's size in pages (swapon of one device); 0: no swap. */
  swap_pages: number;
  /** The `vsyscall=` boot parameter: how the legacy vsyscall page is provided. */
  vsyscall: VsyscallMode;
}

/** The choices of `pkru_on_signal`, upstream first. */
export const PREEMPT = ['none', 'voluntary', 'full'] as const;
export type Preempt = (typeof PREEMPT)[number];
export const PKRU_ON_SIGNAL = ['upstream', 'clear', 'lockdown', 'preserve'] as const;
export type PkruOnSignal = (typeof PKRU_ON_SIGNAL)[number];
/** The choices of `fork_wrprotect`, upstream first. */
export const FORK_WRPROTECT = ['cmpxchg', 'atomic_clear', 'read_modify_write'] as const;
export type ForkWrprotect = (typeof FORK_WRPROTECT)[number];

/** The choices of `fork_child_pte`, upstream first. */
export const FORK_CHILD_PTE = ['read', 'installed'] as const;
export type ForkChildPte = (typeof FORK_CHILD_PTE)[number];

/** The choices of `anon_dirty_drop`, upstream first. */
export const ANON_DIRTY_DROP = ['forget', 'folio_mark_dirty'] as const;
export type AnonDirtyDrop = (typeof ANON_DIRTY_DROP)[number];

/** The choices of `wp_copy_flush`, upstream first. */
export const WP_COPY_FLUSH = ['ptep_clear_flush', 'none'] as const;
export type WpCopyFlush = (typeof WP_COPY_FLUSH)[number];

/** The choices of `pti`, upstream's default first. */
export const PTI_MODES = ['auto', 'on', 'off'] as const;
export type Pti = (typeof PTI_MODES)[number];
/** The choices of `entry_stack`, upstream first. */
export const ENTRY_STACKS = ['per_cpu', 'per_task', 'per_cpu_c'] as const;
export type EntryStack = (typeof ENTRY_STACKS)[number];
/** The choices of `clear_asid_other`, upstream first. */
export const CLEAR_ASID_OTHER = ['irqs_off', 'preemptible'] as const;
export type ClearAsidOther = (typeof CLEAR_ASID_OTHER)[number];
/** The choices of `percpu_ops`, upstream first. */
export const PERCPU_OPS = ['this_cpu', '__this_cpu'] as const;
export type PercpuOps = (typeof PERCPU_OPS)[number];
/** Allocation kinds `fail_alloc` can fail. */
export const FAIL_ALLOC_KINDS = ['none', 'pgd', 'pgtable', 'ldt', 'page'] as const;
export type FailAlloc = (typeof FAIL_ALLOC_KINDS)[number];

/** The choices of `vsyscall`, upstream's default (CONFIG_LEGACY_VSYSCALL_XONLY) first. */
export const VSYSCALL_MODES = ['xonly', 'emulate', 'none'] as const;
export type VsyscallMode = (typeof VSYSCALL_MODES)[number];

/** MAX_THREADS (kernel/fork.c): FUTEX_TID_MASK, the most tasks threads-max can allow. */
export const MAX_THREADS = 0x3fffffff;
/** x86-64's THREAD_SIZE: 16 KiB kernel stacks (PAGE_SIZE << THREAD_SIZE_ORDER 2). */
const THREAD_SIZE = 16384;

/** How one option is checked and described. */
export type OptionSpec =
  | { kind: 'integer'; min: number; max?: number; default: number; doc: string }
  | { kind: 'boolean'; default: boolean; doc: string }
  | { kind: 'enum'; values: readonly string[]; default: string; doc: string };

/** Every kernel option, its type, default and meaning. Later layers add theirs here. */
export const KERNEL_OPTION_SPECS: Readonly<Record<keyof KernelOptions, OptionSpec>> = {
  timeslice: { kind: 'integer', min: 0, default: 1000, doc: 'User operations a task runs before the timer tick lets another runnable task on its CPU run; 0: never.' },
  preempt: {
    kind: 'enum', values: PREEMPT, default: 'none',
    doc: 'The preempt= boot parameter of a PREEMPT_DYNAMIC kernel. none: a task in the kernel gives the CPU up only when it sleeps, at cond_resched() in long loops (after each PTE table of copy_pte_range, zap_pmd_range, change_pmd_range) and on its way to user mode; voluntary: also at might_sleep() points (down_read and down_write of mmap_lock); full: at any step where preempt_count is 0 and interrupts are on (cond_resched() is then a no-op). The tick asks for the CPU once a task has run timeslice operations (kernel steps count with voluntary and full) and another task waits.',
  },
  tlb_single_page_flush_ceiling: { kind: 'integer', min: 0, default: 33, doc: 'debugfs x86/tlb_single_page_flush_ceiling: a flush of more pages becomes a full flush.' },
  nopcid: { kind: 'boolean', default: false, doc: 'The nopcid boot parameter: do not use PCIDs even if the CPU has them.' },
  debug_vm: { kind: 'boolean', default: false, doc: 'CONFIG_DEBUG_VM-style checks: page counts against the page tables after each syscall, leaks at exit, DEBUG_PREEMPT.' },
  log: { kind: 'boolean', default: true, doc: "Keep a record of every user operation's result." },
  mmap_min_addr: { kind: 'integer', min: 0, default: 65536, doc: 'vm.mmap_min_addr: the lowest address a mapping may have.' },
  nopku: { kind: 'boolean', default: false, doc: 'The nopku boot parameter: no protection keys (the first pkey_alloc gives EINVAL, later ones ENOSPC; pkey_mprotect and pkey_free EINVAL).' },
  init_pkru: {
    kind: 'integer', min: 0, max: 0xffffffff, default: 0x55555554,
    doc: 'The init_pkru= boot parameter: the PKRU a new image starts with (and, upstream, a signal handler). Default 0x55555554: every key but 0 access-disabled.',
  },
  pkru_on_signal: {
    kind: 'enum', values: PKRU_ON_SIGNAL, default: 'upstream',
    doc: 'PKRU at signal delivery (seed 002). upstream (6.12): the frame is written with PKRU 0, the handler starts at init_pkru, the interrupted PKRU is saved in the XSAVE frame and restored by rt_sigreturn. '
      + 'clear: the handler runs with PKRU 0, every key open (the 2016 patches). lockdown: the handler runs with every key access- and write-disabled except the execute-only key, which keeps access-disable (proposed in seed 002). '
      + 'preserve: the handler keeps the interrupted PKRU. The alternatives write the frame with the interrupted PKRU, as Linux did before 6.12, so an alternate stack (SA_ONSTACK) under a key that PKRU denies cannot take the frame: SIGSEGV.',
  },
  nousershstk: { kind: 'boolean', default: false, doc: 'The nousershstk boot parameter: no user shadow stacks (arch_prctl ARCH_SHSTK_ENABLE and map_shadow_stack give EOPNOTSUPP).' },
  fork_wrprotect: {
    kind: 'enum', values: FORK_WRPROTECT, default: 'cmpxchg',
    doc: "How fork's ptep_set_wrprotect clears R/W in the parent's PTE (seed 003). cmpxchg (6.6 and later): read the PTE, then try_cmpxchg the write-protected value, moving D to SavedDirty, retried until it succeeds. "
      + 'atomic_clear (up to 6.5): one locked clear of R/W that leaves D where it is (no SavedDirty). read_modify_write: read, compute, plain store; a deliberate bug that can lose a D bit set between the read and the store.',
  },
  wp_copy_flush: {
    kind: 'enum', values: WP_COPY_FLUSH, default: 'ptep_clear_flush',
    doc: "How wp_page_copy retires the old PTE when a write breaks COW (mm/memory.c). ptep_clear_flush (upstream): clear it and flush it on every CPU of the mm before the new PTE is set. none: a deliberate bug: set the new PTE over the old with no flush, so another CPU may keep writing the old page through a stale TLB entry.",
  },
  fork_child_pte: {
    kind: 'enum', values: FORK_CHILD_PTE, default: 'read',
    doc: "The value copy_present_ptes builds the child's PTE from (docs/findings.md). read (upstream): the parent's PTE as ptep_get read it before ptep_set_wrprotect, so a D bit a writer set in between reaches only the parent's PTE (as SavedDirty). "
      + 'installed (a proposed fix): the value the successful try_cmpxchg installed, SavedDirty included, so the child keeps the dirtiness too.',
  },
  anon_dirty_drop: {
    kind: 'enum', values: ANON_DIRTY_DROP, default: 'forget',
    doc: "What wp_page_copy (a COW break) and zap_pte_range do with a dirty PTE (D or SavedDirty) of an anonymous folio they unmap (docs/findings.md). forget (upstream): nothing, as for every anonymous folio. "
      + 'folio_mark_dirty (a proposed fix): when the folio is lazyfree (MADV_FREE) or in the swap cache, it is marked dirty, so reclaim keeps it for the mappings left.',
  },
  pti: {
    kind: 'enum', values: PTI_MODES, default: 'auto',
    doc: 'The pti= boot parameter (arch/x86/mm/pti.c). auto: page-table isolation iff the CPU has the meltdown bug; on: always; off: never (also nopti, mitigations=off).',
  },
  entry_stack: {
    kind: 'enum', values: ENTRY_STACKS, default: 'per_cpu',
    doc: 'Entry from user mode (seed 004). per_cpu (upstream): interrupts land on the per-CPU entry stack, the CR3 switch is in the assembly entry code, pt_regs is copied to the task stack (sync_regs) and the return frame back. '
      + "per_task (the 2020 RFC): each task has a PTI stack, mapped in its mm's user page table, that entry lands on and pt_regs stays on; the CR3 switch is in the C handler, with no copies. "
      + 'per_cpu_c (the RFC\'s proposed first step): the CR3 switch in the C handler, pt_regs left on the per-CPU entry stack while the handler runs; a handler that sleeps leaves it there, which the entry_stack check reports.',
  },
  pti_per_process: {
    kind: 'boolean', default: false,
    doc: 'Per-process PTI (seed 000, the 2018 RFC, not upstream): arch_prctl ARCH_GET_NOPTI (0x6001) and ARCH_SET_NOPTI (0x6002) read and set NOPTI_NOW (this mm, from its next return to user) and NOPTI_NEXT (the image the next execve starts).',
  },
  ia32_emulation: {
    kind: 'boolean', default: true,
    doc: 'The ia32_emulation= boot parameter (CONFIG_IA32_EMULATION, not CONFIG_IA32_EMULATION_DEFAULT_DISABLED): with true, vector 0x80 is a DPL 3 gate to int80_emulation and INT 0x80 makes a 32-bit syscall (the ia32 table, 32-bit arguments); with false the gate is an external interrupt\'s, DPL 0, and INT 0x80 from user mode is #GP(0x402): SIGSEGV.',
  },
  clear_asid_other: {
    kind: 'enum', values: CLEAR_ASID_OTHER, default: 'irqs_off',
    doc: 'Where the CPU that flushed a kernel range under PTI forgets its other ASIDs (seed 001). irqs_off (upstream): flush_tlb_one_kernel only sets cpu_tlbstate.invalidate_other, and choose_new_asid calls clear_asid_other inside switch_mm_irqs_off, interrupts off. '
      + 'preemptible (not upstream; the question Mathieu Desnoyers asked): flush_tlb_kernel_range\'s caller also runs clear_asid_other itself after preempt_enable(), one step per per-CPU access, so with preempt: full it can be preempted and migrated between its reads and writes, each access landing on the CPU the task is on at that moment.',
  },
  percpu_ops: {
    kind: 'enum', values: PERCPU_OPS, default: 'this_cpu',
    doc: 'The per-CPU accessors clear_asid_other uses (seed 001). this_cpu (upstream): this_cpu_read / this_cpu_write, which DEBUG_PREEMPT does not check. __this_cpu (tglx\'s proposed conversion): __this_cpu_read / __this_cpu_write, which check_preemption_disabled checks at every access, so with debug_vm a preemptible use is reported at the first one.',
  },
  fail_alloc: {
    kind: 'enum', values: FAIL_ALLOC_KINDS, default: 'none',
    doc: 'Allocation-failure injection: the fail_alloc_nth-th allocation of this kind fails. pgd: pgd_alloc; pgtable: a page-table page (user or LDT remap); ldt: alloc_ldt_struct; page: a user data page.',
  },
  fail_alloc_nth: { kind: 'integer', min: 1, default: 1, doc: 'Which allocation of kind fail_alloc fails, counting from 1 at boot.' },
  threads_max: {
    kind: 'integer', min: 0, max: MAX_THREADS, default: 0,
    doc: 'sysctl kernel.threads-max: once the system holds this many tasks (zombies included, until reaped), fork, vfork and clone give EAGAIN (copy_process: nr_threads >= max_threads). '
      + '0: the value Linux sets at boot (set_max_threads): memory / (8 x THREAD_SIZE of 16 KiB), at least 20; 2048 on the default 256 MiB machine, which bounds a fork bomb in a scenario.',
  },
  swap_pages: {
    kind: 'integer', min: 0, max: 1048576, default: 0,
    doc: 'Pages of swap space (one swap device, swapon at boot); 0: no swap. Reclaim (MADV_PAGEOUT) writes dirty anonymous pages to it, replacing their PTEs with swap entries, and do_swap_page reads them back through the swap cache.',
  },
  vsyscall: {
    kind: 'enum', values: VSYSCALL_MODES, default: 'xonly',
    doc: 'The vsyscall= boot parameter (arch/x86/entry/vsyscall/vsyscall_64.c): the legacy entry points at 0xffffffffff600000 (gettimeofday), +0x400 (time) and +0x800 (getcpu). '
      + 'xonly (upstream\'s and Debian\'s default): the page is not mapped; a call there faults and the kernel emulates the syscall and the return (emulate_vsyscall), a read is SIGSEGV (SEGV_MAPERR); /proc/PID/maps shows [vsyscall] as --xp. '
      + 'emulate: the page is mapped user-readable and not executable (also in the PTI user copy), so reads see its syscall stubs and calls are emulated as with xonly; maps shows r-xp. '
      + 'none: no page and no [vsyscall] line; a call there is SIGSEGV (SEGV_MAPERR).',
  },
};

/**
 * max_threads for a machine with `memoryBytes` of RAM: the option, or when it is 0 what
 * set_max_threads computes at boot (kernel/fork.c): at most an eighth of memory in kernel
 * stacks, clamped to MIN_THREADS (20) .. MAX_THREADS.
 */
export function threadsMax(o: KernelOptions, memoryBytes: number): number {
  if (o.threads_max > 0) return o.threads_max;
  return Math.min(MAX_THREADS, Math.max(20, Math.floor(memoryBytes / (THREAD_SIZE * 8))));
}

export const DEFAULT_KERNEL_OPTIONS: KernelOptions = Object.fromEntries(
  Object.entries(KERNEL_OPTION_SPECS).map(([k, spec]) => [k, spec.default]),
) as unknown as KernelOptions;

/** Checks one option's value against its spec; returns a message, or null when it is good. */
export function checkOption(spec: OptionSpec, v: unknown): string | null {
  switch (spec.kind) {
    case 'integer':
      if (!Number.isSafeInteger(v) || (v as number) < spec.min || (spec.max !== undefined && (v as number) > spec.max)) {
        return `expected an integer ${spec.max === undefined ? `of at least ${spec.min}` : `from ${spec.min} to ${spec.max}`}, got ${JSON.stringify(v)}`;
      }
      return null;
    case 'boolean':
      return typeof v === 'boolean' ? null : `expected true or false, got ${JSON.stringify(v)}`;
    case 'enum':
      return spec.values.includes(v as string) ? null : `expected one of ${spec.values.map((x) => JSON.stringify(x)).join(', ')}, got ${JSON.stringify(v)}`;
  }
}

/** Validates kernel options and fills in the defaults; throws ConfigError naming the bad one (`kernel.<name>`). */
export function resolveKernelOptions(o: Partial<KernelOptions> | undefined): KernelOptions {
  if (o === undefined) return { ...DEFAULT_KERNEL_OPTIONS };
  if (o === null || typeof o !== 'object') throw new ConfigError('kernel', `expected an object of kernel options, got ${String(o)}`);
  const r: Record<string, unknown> = { ...DEFAULT_KERNEL_OPTIONS };
  const specs = KERNEL_OPTION_SPECS as Record<string, OptionSpec>;
  for (const [key, v] of Object.entries(o)) {
    const spec = specs[key];
    if (!spec) throw new ConfigError(`kernel.${key}`, `unknown kernel option; expected one of ${Object.keys(specs).join(', ')}`);
    const bad = checkOption(spec, v);
    if (bad) throw new ConfigError(`kernel.${key}`, bad);
    r[key] = v;
  }
  return r as unknown as KernelOptions;
}
