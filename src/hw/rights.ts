/**
 * Access kinds and the access-rights check of SDM Vol. 3A §4.6 (with §4.6.2 protection keys and
 * the CET shadow-stack rules), producing the #PF error code of §4.7.
 *
 * The rules, as the tables of ../shared/spec/x86-access-rules.md state them. "user access" is
 * an access at CPL 3 that is not implicit, or WRUSS; "user address" has U/S=1 in every entry.
 *
 *   kind \ address            user address                            supervisor address
 *   ------------------------- --------------------------------------- --------------------------
 *   user read                 yes                                     no
 *   user write                R/W                                     no
 *   user fetch                !XD                                     no
 *   user shadow-stack r/w     shadow-stack page                       no
 *   supv explicit read        !SMAP or AC                             yes
 *   supv explicit write       (!SMAP or AC) and (!WP or R/W)          !WP or R/W
 *   supv implicit read        !SMAP                                   yes
 *   supv implicit write       !SMAP and (!WP or R/W)                  !WP or R/W
 *   supv fetch                !SMEP and !XD                           !XD
 *   supv shadow-stack r/w     no                                      shadow-stack page
 *
 * XD counts only with EFER.NXE=1 (with NXE=0 a set XD is a reserved-bit fault, found by the
 * walk). A shadow-stack page is a leaf with R/W=0 and D=1 under non-leaf entries with R/W=1.
 * Then the keys, for data and shadow-stack accesses only, never fetches: a user address with
 * CR4.PKE=1 is checked against PKRU, a supervisor address with CR4.PKS=1 against IA32_PKRS.
 * AD[k]=1 denies every such access; WD[k]=1 denies writes that are user accesses or are made
 * with CR0.WP=1. Shadow-stack accesses are treated as data reads and writes for keys, as Bochs
 * does; the SDM text for that case was not found (spec: [EMU]).
 *
 * CR4.CET is not consulted here: whether an instruction makes a shadow-stack access at all
 * (CALL and RET push and pop the shadow stack only with shadow stacks enabled at that CPL;
 * WRUSS is #UD without CR4.CET) is the instruction's business, decided before it asks the MMU.
 *
 * When a key denies an access that the other rules also deny, the error code still carries PK,
 * as QEMU and KVM's permission_fault() do (Bochs checks the other rules first and omits PK);
 * the spec calls that case ambiguous between implementations.
 */
import { ArgumentError } from '../errors.js';
import { CR0_WP, CR4_PKE, CR4_PKS, CR4_SMAP, CR4_SMEP, EFER_NXE, RFLAGS_AC } from './regs.js';

/** Access kinds. The numbers index tables; never rely on their values outside hw/. */
export const Access = {
  /** A data read: at CPL 3 a user access, else an explicit supervisor access. */
  Read: 0,
  /** A data write (or the write of a read-modify-write). */
  Write: 1,
  /** An instruction fetch. */
  Fetch: 2,
  /** A shadow-stack read (RET, INCSSP, RSTORSSP ... with shadow stacks on at that CPL). */
  ShadowStackRead: 3,
  /** A shadow-stack write (CALL, WRSS, token writes ...). */
  ShadowStackWrite: 4,
  /** An implicit supervisor read (the CPU reading the GDT, LDT, IDT, TSS), even at CPL 3. */
  ImplicitRead: 5,
  /** An implicit supervisor write (e.g. a stack push during a privilege change). */
  ImplicitWrite: 6,
  /** The shadow-stack write WRUSS makes from CPL 0, which counts as a user access. */
  Wruss: 7,
} as const;
export type AccessKind = (typeof Access)[keyof typeof Access];

/** Names of the access kinds, by number, for messages and traces. */
export const ACCESS_NAMES = ['read', 'write', 'fetch', 'shstk_read', 'shstk_write', 'implicit_read', 'implicit_write', 'wruss'] as const;
export type AccessName = (typeof ACCESS_NAMES)[number];

/** Parses an access kind given by name or number; throws ArgumentError naming `kind`. */
export function accessKind(kind: AccessKind | AccessName | string | number): AccessKind {
  if (typeof kind === 'number') {
    if (Number.isInteger(kind) && kind >= 0 && kind < ACCESS_NAMES.length) return kind as AccessKind;
  } else {
    const i = (ACCESS_NAMES as readonly string[]).indexOf(kind);
    if (i >= 0) return i as AccessKind;
  }
  throw new ArgumentError('kind', `unknown access kind ${JSON.stringify(kind)}; expected one of ${ACCESS_NAMES.join(', ')}`);
}

// The kinds as plain constants for the checks below (module-level consts fold to immediates).
const WRITE = Access.Write;
const FETCH = Access.Fetch;
const SS_READ = Access.ShadowStackRead;
const SS_WRITE = Access.ShadowStackWrite;
const IMPLICIT_READ = Access.ImplicitRead;
const IMPLICIT_WRITE = Access.ImplicitWrite;
const WRUSS = Access.Wruss;

/** Whether the access writes (sets W/R in an error code, needs D in the leaf). */
export function isWriteAccess(kind: number): boolean {
  return kind === WRITE || kind === SS_WRITE || kind === IMPLICIT_WRITE || kind === WRUSS;
}

/** Whether the access is a shadow-stack access (sets SS in an error code). */
export function isShadowStackAccess(kind: number): boolean {
  return kind === SS_READ || kind === SS_WRITE || kind === WRUSS;
}

/** Whether the access is an implicit supervisor access. */
function isImplicitAccess(kind: number): boolean {
  return kind === IMPLICIT_READ || kind === IMPLICIT_WRITE;
}

// ---- Page-fault error code bits (SDM §4.7; Linux enum x86_pf_error_code) --------------------
/** Bit 0: 0 = a non-present entry, 1 = a protection violation (rights, reserved bit, key). */
export const PF_P = 1 << 0;
/** Bit 1: the access was a write. */
export const PF_W = 1 << 1;
/** Bit 2: the access was a user access. */
export const PF_U = 1 << 2;
/** Bit 3: a reserved bit was set in a present entry. */
export const PF_RSVD = 1 << 3;
/** Bit 4: the access was an instruction fetch and SMEP or NXE is on. */
export const PF_I = 1 << 4;
/** Bit 5: a protection key denied a data access. */
export const PF_PK = 1 << 5;
/** Bit 6: the access was a shadow-stack access. */
export const PF_SS = 1 << 6;

/** Every named #PF error-code bit. */
export const PF_BIT_NAMES: readonly (readonly [number, string])[] = [[PF_P, 'P'], [PF_W, 'W'], [PF_U, 'U'], [PF_RSVD, 'RSVD'], [PF_I, 'I'], [PF_PK, 'PK'], [PF_SS, 'SS']];

/** The set bits of a #PF error code by their SDM names, in bit order ("P", "W", "U", "RSVD", "I", "PK", "SS"). */
export function pfErrorBitNames(ec: number): string[] {
  return PF_BIT_NAMES.filter(([bit]) => ec & bit).map(([, n]) => n);
}

// ---- Cached rights of a translation (what a TLB entry holds) --------------------------------
/** U/S=1 at every level: a user-mode address. */
export const R_USER = 1 << 0;
/** R/W=1 at every level. */
export const R_WRITE = 1 << 1;
/** XD=1 at some level. */
export const R_XD = 1 << 2;
/** The leaf's D bit, as cached. */
export const R_DIRTY = 1 << 3;
/** A shadow-stack page: leaf R/W=0 and D=1, every non-leaf R/W=1. */
export const R_SHSTK = 1 << 4;
/** A global translation: leaf G=1 with CR4.PGE=1. */
export const R_GLOBAL = 1 << 5;

/** The registers the access check reads. */
export interface AccessRegs {
  cpl: number;
  cr0: number;
  cr4: number;
  efer: number;
  rflags: number;
  pkru: number;
  pkrs: number;
}

/**
 * The #PF error code the access would raise on a present translation with cached `rights` and
 * protection key `pkey`, or 0 when it is allowed. Pure: reads `regs`, changes nothing.
 * Does not check reserved bits or presence (the walk does).
 */
export function accessFault(regs: AccessRegs, kind: number, rights: number, pkey: number): number {
  const write = isWriteAccess(kind);
  const fetch = kind === FETCH;
  const shstk = isShadowStackAccess(kind);
  const implicit = isImplicitAccess(kind);
  const userAccess = (regs.cpl === 3 && !implicit) || kind === WRUSS;
  const userAddr = (rights & R_USER) !== 0;
  const wp = (regs.cr0 & CR0_WP) !== 0;
  const cr4 = regs.cr4;

  let denied: boolean;
  if (fetch) {
    const xd = (regs.efer & EFER_NXE) !== 0 && (rights & R_XD) !== 0;
    denied = xd || (userAccess ? !userAddr : userAddr && (cr4 & CR4_SMEP) !== 0);
  } else if (shstk) {
    denied = userAccess !== userAddr || (rights & R_SHSTK) === 0;
  } else if (userAccess) {
    denied = !userAddr || (write && (rights & R_WRITE) === 0);
  } else {
    const smapDenies = userAddr && (cr4 & CR4_SMAP) !== 0 && (implicit || (regs.rflags & RFLAGS_AC) === 0);
    denied = smapDenies || (write && wp && (rights & R_WRITE) === 0);
  }

  let keyDenied = false;
  if (!fetch && (userAddr ? cr4 & CR4_PKE : cr4 & CR4_PKS)) {
    const bits = (userAddr ? regs.pkru : regs.pkrs) >>> (pkey << 1);
    keyDenied = (bits & 1) !== 0 || (write && (bits & 2) !== 0 && (userAccess || wp));
  }

  if (!denied && !keyDenied) return 0;
  return accessErrorCode(regs, kind, PF_P) | (keyDenied ? PF_PK : 0);
}

/**
 * The error-code bits that describe the access itself (W/R, U/S, I/D, SS), or'd into `base`
 * (PF_P for a protection fault, PF_P|PF_RSVD for a reserved bit, 0 for a non-present entry).
 */
export function accessErrorCode(regs: AccessRegs, kind: number, base: number): number {
  let ec = base;
  if (isWriteAccess(kind)) ec |= PF_W;
  if ((regs.cpl === 3 && !isImplicitAccess(kind)) || kind === WRUSS) ec |= PF_U;
  if (kind === FETCH && (regs.cr4 & CR4_SMEP || regs.efer & EFER_NXE)) ec |= PF_I;
  if (isShadowStackAccess(kind)) ec |= PF_SS;
  return ec;
}
