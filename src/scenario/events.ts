/**
 * The event kinds a scenario may count in `expect.events`, and the fields it may filter them
 * on. The table is typed against the model's event union (IsolabEvent: hw/events.ts and
 * kernel/events.ts), so a kind added to or removed from the model fails the build here until the
 * table follows, and every field read exists on its event. Besides these fields, every kind can
 * be filtered on `cpu` and `thread` (eventCpu, eventTid below).
 */
import { PTE_RW } from '../hw/pte.js';
import { ACCESS_NAMES } from '../hw/rights.js';
import type { FlushCause } from '../hw/events.js';
import type { IsolabEvent } from '../system.js';
import { DEBUG_CHECKS, JOBCTL_WHATS, PAGE_FAULT_OUTCOMES, RECLAIM_OUTCOMES } from '../kernel/events.js';

export type EventType = IsolabEvent['type'];
type EventOf<T extends EventType> = Extract<IsolabEvent, { type: T }>;

/** A value a filter compares (after folding: a signal name becomes its number). */
export type FilterValue = string | number | boolean;

/**
 * What a filter accepts: `boolean` (true or false), `bit` (0 or 1), `integer`, `signal` (a
 * name such as SIGSEGV, or a number), `syscall` (a syscall's name), `string` (any text), or a
 * list of the strings the event carries.
 */
export type FilterKind = 'boolean' | 'bit' | 'integer' | 'signal' | 'syscall' | 'string' | readonly string[];

export interface FieldSpec<E> {
  kind: FilterKind;
  doc: string;
  read(e: E): FilterValue;
}

export interface EventKindSpec<E> {
  doc: string;
  fields: Record<string, FieldSpec<E>>;
}

/** The list given, checked at compile time to name every member of T and nothing else. */
function allOf<T extends string>() {
  return <const A extends readonly T[]>(...values: A & ([Exclude<T, A[number]>] extends [never] ? unknown : { missing: Exclude<T, A[number]> })): readonly string[] => values;
}

function field<E, K extends keyof E & string>(key: K, kind: FilterKind, doc: string): FieldSpec<E> {
  return { kind, doc, read: (e) => e[key] as FilterValue };
}

/** page_fault `outcome`s (kernel/events.ts). */
const FAULT_OUTCOMES: readonly string[] = PAGE_FAULT_OUTCOMES;
/** entry `what` and `stack` (kernel/entry_64.ts). */
const ENTRY_WHATS = ['swapgs', 'sp2', 'hw_frame', 'regs_push', 'regs_pop', 'regs_copy', 'stack_switch', 'sysret', 'iret'];
const ENTRY_STACKS = ['entry', 'task', 'pti', 'user'];
const FLUSH_CAUSES = allOf<FlushCause>()('invlpg', 'invpcid_addr', 'invpcid_ctx', 'invpcid_all', 'invpcid_nonglobal', 'cr3', 'cr4', 'page_fault', 'dirty_assist', 'evict');
const CR_REGS = allOf<EventOf<'cr_write'>['reg']>()('cr0', 'cr3', 'cr4', 'efer', 'pkrs', 'u_cet', 's_cet', 'pl0_ssp', 'pl3_ssp', 'xcr0', 'xss');

/** Every event kind, with what it records and the fields an expectation may filter it on. */
export const EVENT_KINDS: { [T in EventType]: EventKindSpec<EventOf<T>> } = {
  // The processor (hw/events.ts).
  tlb_hit: { doc: 'A TLB probe found a live entry.', fields: { access: field('access', ACCESS_NAMES, 'The access kind.'), pageShift: field('pageShift', 'integer', '12, 21 or 30.') } },
  tlb_miss: { doc: 'A TLB probe found nothing; a walk follows.', fields: { access: field('access', ACCESS_NAMES, 'The access kind.') } },
  walk: { doc: 'A page walk ended.', fields: { access: field('access', ACCESS_NAMES, 'The access kind.'), outcome: field('outcome', ['ok', 'fault'], 'ok, or fault (#PF).'), restarts: field('restarts', 'integer', 'Times a locked A/D update found the entry changed.') } },
  ad_set: {
    doc: 'A locked update set A and/or D in a paging-structure entry.',
    fields: {
      level: field('level', 'integer', '1 for a PTE ... 5 for a PML5E.'),
      accessed: field('accessed', 'boolean', 'It set A.'),
      dirty: field('dirty', 'boolean', 'It set D.'),
      rw: { kind: 'bit', doc: "R/W of the entry it wrote: D set with rw 0 is a legacy CPU's write through a stale writable TLB entry.", read: (e) => ((e.entryLo & PTE_RW) !== 0 ? 1 : 0) },
    },
  },
  tlb_fill: { doc: 'A translation was cached.', fields: { pageShift: field('pageShift', 'integer', '12, 21 or 30.'), pkey: field('pkey', 'integer', 'The protection key.') } },
  tlb_flush: { doc: 'TLB entries were invalidated.', fields: { cause: field('cause', FLUSH_CAUSES, 'The instruction or event that flushed.'), global: field('global', 'boolean', 'Global entries too.') } },
  cr_write: { doc: 'A control register or MSR was written.', fields: { reg: field('reg', CR_REGS, 'The register.') } },
  pkru_write: { doc: 'WRPKRU, or the kernel writing PKRU.', fields: { value: field('value', 'integer', 'The value written.') } },
  segment_load: { doc: 'MOV Sreg loaded a segment register.', fields: { sreg: field('sreg', 'integer', '0 ES, 2 SS, 3 DS, 4 FS, 5 GS (the SDM\'s Sreg numbers).'), sel: field('sel', 'integer', 'The selector.') } },
  fault: { doc: 'The processor raised an exception.', fields: { vector: field('vector', 'integer', '14 #PF, 13 #GP, 12 #SS, 11 #NP, 6 #UD, 21 #CP.') } },
  transient_read: { doc: 'A transient (speculative) load.', fields: { returned: field('returned', 'boolean', 'It returned data.'), leaked: field('leaked', 'boolean', 'It returned data the architectural access may not read.') } },
  // The kernel (kernel/events.ts).
  syscall_enter: { doc: 'A task entered the kernel through SYSCALL.', fields: { name: field('name', 'syscall', 'The syscall, by name.') } },
  user_end: { doc: 'A thread finished its operations.', fields: {} },
  syscall: { doc: 'A syscall returned.', fields: { name: field('name', 'syscall', 'The syscall, by name.'), ret: field('ret', 'integer', 'Its return value (-errno on failure).') } },
  page_fault: { doc: 'The kernel handled a page fault.', fields: { outcome: field('outcome', FAULT_OUTCOMES, 'How it ended: copied and reused are copy-on-write.'), user: field('user', 'boolean', 'From user mode.') } },
  signal: { doc: 'A signal was delivered (stop: the thread stops with its group).', fields: { signo: field('signo', 'signal', 'The signal.'), action: field('action', ['handler', 'terminate', 'core', 'ignore', 'stop'], 'What delivery did (stop: the thread stops with its group).') } },
  jobctl: {
    doc: 'Job control: a thread stopped (TASK_STOPPED) or entered a ptrace stop (TASK_TRACED) or ran again, or the parent or tracer was told that its child stopped, continued or trapped (do_notify_parent_cldstop).',
    fields: {
      what: field('what', JOBCTL_WHATS, 'stop, resume, notify (the event\'s thread is the child\'s leader, or the tracee for a tracer), or trace (a ptrace stop; code its exit_code).'),
      code: field('code', 'integer', 'For notify: CLD_STOPPED (5), CLD_CONTINUED (6) or CLD_TRAPPED (4); for trace the stop\'s exit_code, for a resume from it the tracer\'s signal; 0 otherwise.'),
    },
  },
  switch_mm: { doc: 'switch_mm_irqs_off loaded an mm.', fields: { flush: field('flush', 'boolean', 'The CR3 write flushed.'), how: field('how', ['switch', 'unlazy'], 'A switch, or leaving lazy mode.') } },
  context_switch: { doc: 'A context switch between tasks.', fields: {} },
  preempt: { doc: 'A task was preempted inside the kernel (preempt: full).', fields: {} },
  reclaim: { doc: "shrink_folio_list's verdict on one folio (MADV_PAGEOUT, or kswapd's pass).", fields: { outcome: field('outcome', RECLAIM_OUTCOMES, 'discarded: a clean lazyfree folio freed unwritten; swapped; redirtied: made swap-backed again; activated; kept.') } },
  migrate: { doc: 'A task moved to another CPU (its CPU is the one it left).', fields: { to: field('to', 'integer', 'The CPU it moved to.') } },
  tlb_shootdown: { doc: 'flush_tlb_mm_range was called.', fields: { freedTables: field('freedTables', 'boolean', 'Page tables were freed.') } },
  ipi: { doc: 'A flush IPI was sent (its CPU is the sender).', fields: { to: field('to', 'integer', 'The CPU it was sent to.') } },
  flush_tlb_func: { doc: 'flush_tlb_func ran on a CPU.', fields: { pages: field('pages', 'integer', 'INVLPGs done, or -1 for a full flush.') } },
  page_copy: { doc: 'A page was copied (COW) or zero-filled.', fields: {} },
  pte_retry: { doc: "fork's try_cmpxchg of a PTE failed (the hardware changed it since fork read it) and is retried.", fields: {} },
  pte_mkclean: { doc: "The kernel cleaned a PTE on purpose (MADV_FREE's pte_mkclean).", fields: {} },
  control_protection: { doc: 'A #CP from user mode.', fields: { code: field('code', 'integer', '1 near RET, 2 far RET, 3 ENDBRANCH ...') } },
  fork: { doc: 'fork, vfork or clone created a task.', fields: {} },
  exec: { doc: 'execve replaced a task’s image.', fields: { image: field('image', 'string', 'The image path.') } },
  exit: { doc: 'A task exited.', fields: { status: field('status', 'integer', 'Its wait status.') } },
  op: { doc: 'A user operation finished.', fields: {} },
  entry: { doc: 'One step of the entry or exit code.', fields: { what: field('what', ENTRY_WHATS, 'The step.'), stack: field('stack', ENTRY_STACKS, 'Where RSP points afterwards.') } },
  ldt_map: { doc: 'modify_ldt or fork mapped an LDT at a PTI remap slot.', fields: { slot: field('slot', 'integer', '0 or 1.') } },
  ldt_load: { doc: 'LDTR was loaded.', fields: { entries: field('entries', 'integer', 'Its entries (0: cleared).') } },
  pti_mode: { doc: 'Per-process PTI changed for an mm.', fields: { nopti: field('nopti', 'boolean', 'PTI is now off.'), how: field('how', ['now', 'exec'], 'NOPTI_NOW, or execve applying NEXT.') } },
  debug: { doc: 'A debug check found a problem (with kernel.debug_vm).', fields: { check: field('check', DEBUG_CHECKS, 'Which check: debug_preempt is DEBUG_PREEMPT, schedule scheduling while atomic, the others page counts, page tables and stacks.') } },
};

/** The event kinds, in table order. */
export const EVENT_TYPES = Object.keys(EVENT_KINDS) as EventType[];

/** The CPU an event happened on (an IPI's sender), or undefined. */
export function eventCpu(e: IsolabEvent): number | undefined {
  const r = e as { cpu?: unknown; from?: unknown };
  if (typeof r.cpu === 'number') return r.cpu;
  return e.type === 'ipi' ? e.from : undefined;
}

/**
 * The task an event belongs to: its `tid` (the System gives every event one: the task it names,
 * or the task current on its CPU as it is emitted; 0 for none).
 */
export function eventTid(e: IsolabEvent): number {
  const r = e as { tid?: unknown };
  return typeof r.tid === 'number' ? r.tid : 0;
}
