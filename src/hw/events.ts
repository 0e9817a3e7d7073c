/**
 * The events the processor emits. Linear addresses and 64-bit register values travel as `hi`
 * (bits 63:32) and `lo` (bits 31:0) uint32 halves; `hex64` in addr.ts formats them. Each names
 * its CPU only; a System adds `tid`, the task current on that CPU (system.ts IsolabEvent).
 */
import type { AccessName } from './rights.js';

/** What invalidated TLB entries. */
export type FlushCause =
  | 'invlpg' // INVLPG: one address, current PCID and globals
  | 'invpcid_addr' // INVPCID type 0
  | 'invpcid_ctx' // INVPCID type 1
  | 'invpcid_all' // INVPCID type 2 (globals too)
  | 'invpcid_nonglobal' // INVPCID type 3
  | 'cr3' // MOV to CR3 without NOFLUSH (the new PCID, non-global)
  | 'cr4' // a MOV to CR4 that flushes
  | 'page_fault' // a #PF drops the faulting address's entries
  | 'dirty_assist' // a write found a clean cached entry and re-walks (dirty_on_readonly=strict)
  | 'evict'; // the explorer dropped an entry

export type HwEvent =
  /** A TLB probe found a live entry. */
  | { type: 'tlb_hit'; cpu: number; hi: number; lo: number; access: AccessName; pageShift: number }
  /** A TLB probe found nothing; a walk follows. */
  | { type: 'tlb_miss'; cpu: number; hi: number; lo: number; access: AccessName }
  /**
   * A page walk ended. `reads`: paging-structure entries read; `restarts`: times a locked A/D
   * update found the entry changed and the walk began again; `outcome`: 'ok' or 'fault'
   * (with `errorCode`). Probes emit nothing.
   */
  | { type: 'walk'; cpu: number; hi: number; lo: number; access: AccessName; levels: number; reads: number; restarts: number; outcome: 'ok' | 'fault'; errorCode: number }
  /** A locked update set A and/or D in a paging-structure entry at physical address `pa`. */
  | { type: 'ad_set'; cpu: number; level: number; pa: number; accessed: boolean; dirty: boolean; entryHi: number; entryLo: number }
  /** A translation was cached. */
  | { type: 'tlb_fill'; cpu: number; hi: number; lo: number; pcid: number; pageShift: number; pfn: number; rights: number; pkey: number }
  /** TLB entries were invalidated. `pcid` is -1 when every PCID is concerned; `hi`/`lo` only for single-address causes. */
  | { type: 'tlb_flush'; cpu: number; cause: FlushCause; pcid: number; global: boolean; hi?: number; lo?: number }
  /** A control register or MSR was written (CR3: `hi`/`lo` as stored, plus the NOFLUSH bit of the source). */
  | { type: 'cr_write'; cpu: number; reg: 'cr0' | 'cr3' | 'cr4' | 'efer' | 'pkrs' | 'u_cet' | 's_cet' | 'pl0_ssp' | 'pl3_ssp' | 'xcr0' | 'xss'; hi: number; lo: number; noflush?: boolean }
  /** WRPKRU (or the kernel's write of PKRU). */
  | { type: 'pkru_write'; cpu: number; value: number }
  /** MOV Sreg loaded segment register `sreg` (0 ES .. 5 GS, the SDM's Sreg numbers) with `sel`; `base` is its hidden base. */
  | { type: 'segment_load'; cpu: number; sreg: number; sel: number; base: bigint }
  /** An exception was raised: #PF (with CR2 = hi:lo), #GP, #NP, #SS, #UD or #CP (hi = lo = 0). */
  | { type: 'fault'; cpu: number; vector: number; errorCode: number; hi: number; lo: number }
  /** A transient (speculative) load; `leaked` when it returned data the architectural access may not read. */
  | { type: 'transient_read'; cpu: number; hi: number; lo: number; length: number; returned: boolean; leaked: boolean };
