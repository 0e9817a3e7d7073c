/**
 * An event in words, for the page's cursor ("#PF W U at 0x7f0000001000: wp_page_copy copied the
 * page") and the kind its timeline draws it as. The words name the Linux function or the SDM
 * mechanism behind each event; they say nothing the event does not carry.
 */
import { formatWaitStatus, pfBits, signalName, siCodeName } from '../scenario/format.js';
import type { IsolabEvent } from '../system.js';

/** The timeline's kinds, in the order its legend lists them. */
export const EVENT_KINDS = ['op', 'syscall', 'fault', 'ipi', 'cr3', 'flush', 'tlb', 'fork', 'exec', 'exit', 'switch', 'signal', 'entry', 'other'] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

/** What each page-fault outcome means, by the kernel path that ends with it (mm/memory.c). */
const FAULT_OUTCOME: Record<string, string> = {
  mapped: 'mapped a new page (do_anonymous_page or do_fault)',
  'zero-page': 'do_anonymous_page mapped the shared zero page read-only',
  reused: 'wp_page_reuse made the PTE writable (the page had no other user)',
  copied: 'wp_page_copy copied the page and mapped the copy writable',
  spurious: 'handle_pte_fault found the PTE already allows it: a spurious fault (the TLB entry was stale)',
  backout: 'the PTE changed under the fault: backed out, the access retries',
  swapin: 'do_swap_page read the page back from swap',
  userfault: 'handle_userfault queued it for the userfaultfd handler and waited; the fault is retried',
  signal: 'no VMA allows it: bad_area sends a signal',
  efault: 'a kernel access to user memory: fixed up to -EFAULT',
  oom: 'out of memory',
};

/** `0x` and lower-case hex. */
export function hex(v: number | bigint): string {
  return '0x' + v.toString(16);
}

/** A linear address from its two halves. */
function va(hi: number, lo: number): string {
  return hex((BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0));
}

/** The control register written, as its name and value; CR3 with its PCID and NOFLUSH. */
function crWrite(reg: string, hi: number, lo: number, noflush: boolean | undefined): string {
  if (reg !== 'cr3') return `MOV to ${reg.toUpperCase()} ← ${va(hi, lo)}`;
  const pcid = lo & 0xfff;
  const pgd = (hi & 0xfffff) * 1048576 + (lo >>> 12);
  return `MOV to CR3: PGD frame ${pgd}, PCID ${pcid}${pcid & 0x800 ? ' (user copy)' : ''}${noflush ? ', NOFLUSH' : ', flushes the PCID'}`;
}

/** Why a TLB flush happened, in words. */
const FLUSH_CAUSE: Record<string, string> = {
  invlpg: 'INVLPG',
  invpcid_addr: 'INVPCID type 0 (one address)',
  invpcid_ctx: 'INVPCID type 1 (one PCID)',
  invpcid_all: 'INVPCID type 2 (everything, globals too)',
  invpcid_nonglobal: 'INVPCID type 3 (everything but globals)',
  cr3: 'MOV to CR3 (the new PCID)',
  cr4: 'MOV to CR4',
  page_fault: '#PF (the faulting address)',
  dirty_assist: 'a write to a clean cached entry (re-walk)',
  evict: 'eviction',
};

/**
 * The kind and words of event `e`, or null for an event the page does not list (TLB hits and
 * misses: the walk or the fill says it). `name` gives a task's display name.
 */
export function describe(e: IsolabEvent, name: (tid: number) => string): { kind: EventKind; text: string } | null {
  switch (e.type) {
    case 'tlb_hit':
    case 'tlb_miss':
    case 'user_end':
      return null;
    case 'walk':
      return { kind: 'tlb', text: `page walk for ${va(e.hi, e.lo)} (${e.access}): ${e.reads} entries read${e.restarts ? `, ${e.restarts} restarts` : ''}${e.outcome === 'fault' ? `, faults (${pfBits(e.errorCode)})` : ''}` };
    case 'tlb_fill':
      return { kind: 'tlb', text: `TLB fill: ${va(e.hi, e.lo)} → frame ${e.pfn}, PCID ${e.pcid}, ${e.pageShift === 12 ? '4 KiB' : e.pageShift === 21 ? '2 MiB' : '1 GiB'}` };
    case 'tlb_flush':
      return { kind: 'flush', text: `TLB flush by ${FLUSH_CAUSE[e.cause] ?? e.cause}${e.hi !== undefined && e.lo !== undefined ? ` at ${va(e.hi, e.lo)}` : ''}, PCID ${e.pcid}${e.global ? ', globals too' : ''}` };
    case 'ad_set':
      return { kind: 'tlb', text: `the walk set ${[e.accessed ? 'A' : '', e.dirty ? 'D' : ''].filter(Boolean).join(' and ')} in the level-${e.level} entry at pa ${hex(e.pa)} (LOCK CMPXCHG)` };
    case 'cr_write':
      return { kind: e.reg === 'cr3' ? 'cr3' : 'other', text: crWrite(e.reg, e.hi, e.lo, e.noflush) };
    case 'pkru_write':
      return { kind: 'other', text: `WRPKRU ← ${hex(e.value >>> 0)}` };
    case 'segment_load':
      return { kind: 'other', text: `MOV ${['ES', 'CS', 'SS', 'DS', 'FS', 'GS'][e.sreg]} ← ${hex(e.sel)}` };
    case 'fault':
      return { kind: 'fault', text: `exception ${e.vector}${e.vector === 14 ? ` (#PF ${pfBits(e.errorCode)})` : ''} at ${va(e.hi, e.lo)}` };
    case 'transient_read':
      return { kind: 'other', text: `transient read of ${va(e.hi, e.lo)} (${e.length} bytes)${e.leaked ? ': leaked' : ''}` };
    case 'syscall_enter':
      return { kind: 'syscall', text: `${name(e.tid)}: SYSCALL ${e.name}(${e.args.map(hex).join(', ')})` };
    case 'syscall':
      return { kind: 'syscall', text: `${name(e.tid)}: ${e.name} returns ${e.ret}` };
    case 'page_fault':
      return { kind: 'fault', text: `${name(e.tid)}: #PF ${pfBits(e.errorCode)} at ${hex(e.addr)}${e.user ? '' : ' (in the kernel)'}: ${FAULT_OUTCOME[e.outcome] ?? e.outcome}` };
    case 'signal':
      return { kind: 'signal', text: `${name(e.tid)}: ${signalName(e.signo)} (${siCodeName(e.signo, e.code)}${e.addr ? `, si_addr ${hex(e.addr)}` : ''}) → ${e.action}` };
    case 'switch_mm':
      return { kind: 'cr3', text: `switch_mm_irqs_off: mm ${e.from} → mm ${e.to}, ASID ${e.asid}, ${e.flush ? 'flush' : 'no flush'}${e.how === 'unlazy' ? ' (leaving lazy mode)' : ''}` };
    case 'context_switch':
      return { kind: 'switch', text: `context switch: ${e.from ? name(e.from) : 'idle'} → ${e.to ? name(e.to) : 'idle'}` };
    case 'preempt':
      return { kind: 'switch', text: `${name(e.tid)} preempted` };
    case 'migrate':
      return { kind: 'switch', text: `${name(e.tid)} migrated from CPU ${e.from} to CPU ${e.to}` };
    case 'reclaim':
      return { kind: 'other', text: `reclaim of frame ${e.pfn}: ${e.outcome}` };
    case 'tlb_shootdown':
      return { kind: 'flush', text: `flush_tlb_mm_range(mm ${e.mm}, ${e.end === -1 ? 'all' : `${hex(e.start)}-${hex(e.end)}`}), tlb_gen ${e.gen}${e.freedTables ? ', tables freed' : ''}` };
    case 'ipi':
      return { kind: 'ipi', text: `IPI from CPU ${e.from} to CPU ${e.to}` };
    case 'flush_tlb_func':
      return { kind: 'flush', text: `flush_tlb_func(mm ${e.mm}): ${e.pages < 0 ? 'full flush' : `${e.pages} INVLPG`}` };
    case 'page_copy':
      return { kind: 'other', text: `copy_page: frame ${e.src} → frame ${e.dst}` };
    case 'pte_retry':
      return { kind: 'fork', text: `ptep_set_wrprotect: the PTE at pa ${hex(e.pa)} changed since it was read; try_cmpxchg retries` };
    case 'pte_mkclean':
      return { kind: 'other', text: `pte_mkclean of the PTE at pa ${hex(e.pa)} (frame ${e.pfn})` };
    case 'control_protection':
      return { kind: 'fault', text: `${name(e.tid)}: #CP (code ${e.code}) at ${hex(e.ip)}` };
    case 'fork':
      return { kind: 'fork', text: `${name(e.parent)} forked ${name(e.child)} (tid ${e.child}): ${e.ptes} PTEs copied, ${e.wrprotected} write-protected` };
    case 'exec':
      return { kind: 'exec', text: `${name(e.tid)}: execve → ${e.image}` };
    case 'exit':
      return { kind: 'exit', text: `${name(e.tid)}: ${formatWaitStatus(e.status)}` };
    case 'op':
      return { kind: 'op', text: `${name(e.record.tid)}: ${e.record.op}` };
    case 'entry':
      return { kind: 'entry', text: `${name(e.tid)}: entry ${e.what} on the ${e.stack} stack${e.bytes ? `, ${e.bytes} bytes copied` : ''}` };
    case 'ldt_map':
      return { kind: 'other', text: `LDT of mm ${e.mm} mapped in slot ${e.slot} at ${hex(e.va)} (${e.pages} pages)` };
    case 'ldt_load':
      return { kind: 'other', text: `LLDT: mm ${e.mm}'s LDT at ${hex(e.base)}, ${e.entries} entries` };
    case 'pti_mode':
      return { kind: 'other', text: `${name(e.tid)}: PTI ${e.nopti ? 'off' : 'on'} for mm ${e.mm} (${e.how})` };
    case 'debug':
      return { kind: 'other', text: `debug check ${e.check}: ${e.message}` };
    default:
      return { kind: 'other', text: (e as { type: string }).type };
  }
}
