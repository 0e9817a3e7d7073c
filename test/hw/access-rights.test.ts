/**
 * Page-level access rights and #PF error codes under 4-level paging, checked against an oracle
 * transcribed from the processor rules in shared/spec/x86-access-rules.md (§1-§7) and the SDM
 * notes in research/sdm-facts.md. Nothing here is derived from the model's own rights code.
 *
 * Part 1 is a table-driven test over the full cross product of
 *   U/S, R/W and XD at each of the 4 levels (8^4 = 4096 leaves, all present at once),
 *   leaf D (0/1), CPL (0/3), the 8 access kinds, CR0.WP, CR4.SMEP, CR4.SMAP, RFLAGS.AC,
 *   EFER.NXE, CR4.PKE and the PKRU AD/WD bits of the leaf's key
 * = 4096 * 2 * 2 * 8 * 2^6 * 4 = 33,554,432 cases, each translated twice (the second time may hit
 * the TLB) with the same outcome required both times.
 *
 * Part 2 is a dozen literal cases from the spec's "points a naive model tends to get wrong", §5,
 * §6, §7 and §9.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Machine, PageTableBuilder, entryValue, pteFrame, hi32, lo32,
  CR0_WP, CR4_SMEP, CR4_SMAP, CR4_PKE, EFER_NXE, RFLAGS_AC, MSR_EFER,
} from '../../src/index.js';

// ---- Constants, from the spec (not imported from the implementation under test) -------------

/** Access kinds, numbered as the Cpu API numbers them. */
const READ = 0;
const WRITE = 1;
const FETCH = 2;
const SS_READ = 3;
const SS_WRITE = 4;
const IMPLICIT_READ = 5;
const IMPLICIT_WRITE = 6;
const WRUSS = 7;
const KIND_NAMES = ['Read', 'Write', 'Fetch', 'ShadowStackRead', 'ShadowStackWrite', 'ImplicitRead', 'ImplicitWrite', 'Wruss'];

/** #PF error-code bits, spec §7. */
const EC_P = 1 << 0;
const EC_W = 1 << 1;
const EC_U = 1 << 2;
const EC_RSVD = 1 << 3;
const EC_I = 1 << 4;
const EC_PK = 1 << 5;
const EC_SS = 1 << 6;

const PF = 14;

/** Entry bits (SDM Table 4-19/4-20). */
const PTE_A = 1 << 5;
const PTE_D = 1 << 6;

/** The leaf's protection key, and the key written into the (ignored) bits 62:59 of non-leaf entries. */
const LEAF_KEY = 5;
const TABLE_KEY = 10;

// ---- The oracle -------------------------------------------------------------------------------

/** Oracle result: ALLOW, or a #PF error code in bits 15:0 plus at most one of the flags below. */
const ALLOW = -1;
/**
 * Both a normal rights rule and the key rule deny. Spec §7 "Order of evaluation", item 2: PK
 * combined with another violation is ambiguous between implementations (QEMU sets PK, Bochs does
 * not), so only "it faults" and the error code with PK masked out are asserted.
 */
const AMBIGUOUS_PK = 1 << 16;
/**
 * Only the key rule for a *shadow-stack* access denies. Spec §5 last bullet / §6 table: keys on
 * shadow-stack accesses are [EMU] (Bochs only), "don't make these hard checks". Accepted: either
 * the access is allowed, or it faults with exactly the Bochs error code (PK=1).
 */
const EMU_PK = 1 << 17;

/** Rights summary of one leaf's walk. */
const A_US = 1; // U/S = 1 in every entry: a user-mode address
const A_RW = 2; // R/W = 1 in every entry
const A_XD = 4; // XD = 1 in some entry
const A_UPPER_RW = 8; // R/W = 1 in every non-leaf entry
const A_LEAF_RW = 16; // R/W = 1 in the leaf

/**
 * Expected outcome of an access of `kind` at `cpl` to a page whose walk has rights `attr`
 * (A_* bits) and leaf dirty bit `dirty`, with the given control bits. `ad`/`wd` are PKRU's
 * AD/WD bits for the leaf's key.
 */
function oracle(
  cpl: number, kind: number, wp: boolean, smep: boolean, smap: boolean, ac: boolean, nxe: boolean, pke: boolean,
  ad: boolean, wd: boolean, attr: number, dirty: boolean,
): number {
  const implicit = kind === IMPLICIT_READ || kind === IMPLICIT_WRITE;
  // §1 kinds of access: user-mode access = CPL 3 except implicit ones; WRUSS counts as user-mode.
  const user = kind === WRUSS || (cpl === 3 && !implicit);
  const write = kind === WRITE || kind === SS_WRITE || kind === IMPLICIT_WRITE || kind === WRUSS;
  const ss = kind === SS_READ || kind === SS_WRITE || kind === WRUSS;
  const fetch = kind === FETCH;
  const us = (attr & A_US) !== 0;
  const rw = (attr & A_RW) !== 0;
  const xd = (attr & A_XD) !== 0;

  // §7: W/R, U/S, I/D and SS describe the access, whatever the cause of the fault.
  let base = 0;
  if (write) base |= EC_W;
  if (user) base |= EC_U; // 0 for implicit supervisor accesses even at CPL 3
  if (fetch && (smep || nxe)) base |= EC_I; // I/D: fetch and (SMEP or NXE)
  if (ss) base |= EC_SS;

  // §1 / §7 RSVD: with NXE = 0, bit 63 is reserved in present entries: P|RSVD, never PK.
  if (!nxe && xd) return base | EC_P | EC_RSVD;

  let deny = false; // a normal rights rule (U/S, R/W, XD, SMEP, SMAP, shadow-stack) denies
  let keyDeny = false; // PKRU denies a data access (hard rule, §5)
  let emuKeyDeny = false; // PKRU would deny a shadow-stack access by Bochs' rule ([EMU])

  if (fetch) {
    // §4 instruction fetches; keys, R/W, SMAP and AC play no part.
    if (user) deny = !us || (nxe && xd);
    else deny = (us && smep) || (nxe && xd);
  } else if (ss) {
    // §6: a shadow-stack page has leaf R/W = 0, D = 1, and R/W = 1 in every non-leaf entry.
    const ssPage = (attr & A_LEAF_RW) === 0 && dirty && (attr & A_UPPER_RW) !== 0;
    if (user) deny = !us || !ssPage; // user-mode shadow-stack access needs a user-mode SS page
    else deny = us || !ssPage; // supervisor SS access to a user page: never (SMAP/AC irrelevant)
    // §5 [EMU]: Bochs treats SS reads like data reads (AD) and SS writes like data writes (AD, WD
    // for user-mode accesses or when WP = 1). PKRU covers user-mode addresses only; PKS is off.
    emuKeyDeny = us && pke && (ad || (write && wd && (user || wp)));
  } else {
    // §2 data reads and §3 data writes.
    if (user) {
      deny = !us || (write && !rw); // CR0.WP plays no part for user-mode accesses
    } else if (us) {
      // Supervisor access to a user-mode address: SMAP (AC only helps explicit accesses), R/W if WP.
      const smapDeny = smap && (implicit || !ac);
      deny = smapDeny || (write && wp && !rw);
    } else {
      // Supervisor access to a supervisor-mode address: R/W only with WP = 1 (PKS is off).
      deny = write && wp && !rw;
    }
    // §5: AD forbids all data accesses; WD forbids user-mode writes, supervisor writes only if WP = 1.
    keyDeny = us && pke && (ad || (write && wd && (user || wp)));
  }

  if (deny) {
    if (keyDeny || emuKeyDeny) return AMBIGUOUS_PK | base | EC_P;
    return base | EC_P;
  }
  if (keyDeny) return base | EC_P | EC_PK; // only the key denies: P = 1 and PK = 1 everywhere
  if (emuKeyDeny) return EMU_PK | base | EC_P | EC_PK;
  return ALLOW;
}

// ---- The 4096-leaf tree -------------------------------------------------------------------------

/** Per-level rights code: bit 0 U/S, bit 1 R/W, bit 2 XD. */
const codeUs = (c: number): boolean => (c & 1) !== 0;
const codeRw = (c: number): boolean => (c & 2) !== 0;
const codeXd = (c: number): boolean => (c & 4) !== 0;
/** Table index used for a code: spread over the index bits so that level mix-ups show. */
const indexFor = (c: number): number => c * 33 + 7; // 7..238: bit 47 stays 0 at the PML4 level
const OFFSET = 0x5a8;
const FRAME_BASE = 0x20000; // leaf frames 0x20000..0x20fff, inside the default 1 GiB

interface Tree {
  m: Machine;
  cpu: Machine['cpus'][number];
  /** Per leaf (id = a*512 + b*64 + c*8 + d): linear address halves, leaf entry location, attr. */
  laHi: Uint32Array;
  laLo: Uint32Array;
  leafPfn: Float64Array;
  leafIdx: Uint16Array;
  attr: Uint8Array;
  /** Leaf entry values, index id*2 + D. A = 0. */
  leafLo: Uint32Array;
  leafHi: Uint32Array;
  pa: Float64Array;
}

function buildTree(): Tree {
  const m = new Machine({ cpus: 1, cpu: { pks: false } });
  const cpu = m.cpus[0];
  const pt = new PageTableBuilder(m.mem);
  const n = 4096;
  const t: Tree = {
    m, cpu,
    laHi: new Uint32Array(n), laLo: new Uint32Array(n), leafPfn: new Float64Array(n), leafIdx: new Uint16Array(n),
    attr: new Uint8Array(n), leafLo: new Uint32Array(2 * n), leafHi: new Uint32Array(2 * n), pa: new Float64Array(n),
  };
  for (let id = 0; id < n; id++) {
    const a = (id >> 9) & 7, b = (id >> 6) & 7, c = (id >> 3) & 7, d = id & 7;
    const A = indexFor(a), B = indexFor(b), C = indexFor(c), D = indexFor(d);
    const hi = ((A << 7) | (B >>> 2)) >>> 0;
    const lo = (((B & 3) << 30) | (C << 21) | (D << 12) | OFFSET) >>> 0;
    const la = (BigInt(hi) << 32n) | BigInt(lo);
    const frame = FRAME_BASE + id;
    pt.map(la & ~0xfffn, frame * 4096, { leaf: {}, table: { rw: true, us: true } });
    t.laHi[id] = hi;
    t.laLo[id] = lo;
    t.pa[id] = frame * 4096 + OFFSET;
    const codes = [a, b, c, d];
    let attr = A_US | A_RW | A_UPPER_RW;
    for (let i = 0; i < 4; i++) {
      if (!codeUs(codes[i])) attr &= ~A_US;
      if (!codeRw(codes[i])) attr &= ~A_RW;
      if (codeXd(codes[i])) attr |= A_XD;
      if (i < 3 && !codeRw(codes[i])) attr &= ~A_UPPER_RW;
    }
    if (codeRw(d)) attr |= A_LEAF_RW;
    t.attr[id] = attr;
    const e = pt.entry(la, 1)!;
    t.leafPfn[id] = e.pfn;
    t.leafIdx[id] = e.index;
    for (let dirty = 0; dirty < 2; dirty++) {
      const v = entryValue(frame, { us: codeUs(d), rw: codeRw(d), xd: codeXd(d), d: dirty === 1, pk: LEAF_KEY });
      t.leafLo[id * 2 + dirty] = v.lo;
      t.leafHi[id * 2 + dirty] = v.hi;
    }
  }
  // Now give the non-leaf entries their per-index rights (each is shared by its subtree). Bits
  // 62:59 of a non-leaf entry are ignored (SDM Tables 4-15..4-18); a different key there catches
  // a model that takes the key from the wrong level.
  for (let id = 0; id < n; id++) {
    const a = (id >> 9) & 7, b = (id >> 6) & 7, c = (id >> 3) & 7;
    const la = (BigInt(t.laHi[id]) << 32n) | BigInt(t.laLo[id]);
    const codes = [a, b, c];
    for (let level = 4; level >= 2; level--) {
      const code = codes[4 - level];
      const old = pt.readEntry(la, level)!;
      const pfn = pteFrame(Number(old & 0xffffffffn), Number(old >> 32n));
      const v = entryValue(pfn, { us: codeUs(code), rw: codeRw(code), xd: codeXd(code), pk: TABLE_KEY });
      pt.writeEntry(la, level, (BigInt(v.hi) << 32n) | BigInt(v.lo));
    }
  }
  cpu.cpl = 0;
  assert.ok(cpu.setCr3(pt.cr3()));
  return t;
}

// ---- The cross product ---------------------------------------------------------------------------

function hex(x: number): string {
  return '0x' + (x >>> 0).toString(16);
}

function describeExpectation(exp: number): string {
  if (exp === ALLOW) return 'allow';
  const ec = hex(exp & 0xffff);
  if (exp & AMBIGUOUS_PK) return `#PF ${ec} (PK masked)`;
  if (exp & EMU_PK) return `allow or #PF ${ec}`;
  return `#PF ${ec}`;
}

interface Mismatches {
  count: number;
  /** Distinct reduced situations (the leaf's 4096 combinations reduced to its A_* summary). */
  groups: Map<string, number>;
}

/** Outcome of one translation as a string, for reports (mismatch path only). */
function outcome(r: number, pa: number, vector: number, ec: number): string {
  if (r >= 0) return r === pa ? 'allow' : `allow at wrong pa ${hex(r)}`;
  return vector === PF ? `#PF ${hex(ec)}` : `vector ${vector} ec ${hex(ec)}`;
}

/**
 * Runs every case for one CPL and one access kind. Returns the number of cases, and counts
 * tallies of the EMU cases (how the model resolved them).
 */
function runCplKind(t: Tree, cpl: number, kind: number, mism: Mismatches, emuTally: { allow: number; pk: number }): number {
  const { cpu, m, laHi, laLo, leafPfn, leafIdx, attr, leafLo, leafHi, pa } = t;
  const mem = m.mem;
  const tlb = cpu.tlb;
  const write = kind === WRITE || kind === SS_WRITE || kind === IMPLICIT_WRITE || kind === WRUSS;
  const baseCr0 = cpu.cr0 & ~CR0_WP;
  const baseCr4 = cpu.cr4 & ~(CR4_SMEP | CR4_SMAP | CR4_PKE);
  const baseRflags = cpu.rflags & ~RFLAGS_AC;
  const baseEfer = cpu.efer & ~EFER_NXE;
  const adBit = 1 << (2 * LEAF_KEY);
  const wdBit = 1 << (2 * LEAF_KEY + 1);
  let cases = 0;

  for (let cfg = 0; cfg < 256; cfg++) {
    const wp = (cfg & 1) !== 0;
    const smep = (cfg & 2) !== 0;
    const smap = (cfg & 4) !== 0;
    const ac = (cfg & 8) !== 0;
    const nxe = (cfg & 16) !== 0;
    const pke = (cfg & 32) !== 0;
    const ad = (cfg & 64) !== 0;
    const wd = (cfg & 128) !== 0;
    // NXE through WRMSR (which recomputes the reserved-bit mask), at CPL 0.
    cpu.cpl = 0;
    assert.ok(cpu.wrmsr(MSR_EFER, BigInt((baseEfer | (nxe ? EFER_NXE : 0)) >>> 0)), 'WRMSR EFER');
    cpu.cr0 = baseCr0 | (wp ? CR0_WP : 0);
    cpu.cr4 = baseCr4 | (smep ? CR4_SMEP : 0) | (smap ? CR4_SMAP : 0) | (pke ? CR4_PKE : 0);
    cpu.rflags = baseRflags | (ac ? RFLAGS_AC : 0);
    // Every other key gets the opposite AD/WD bits, so a model reading the wrong key (0, the
    // non-leaf entries' key 10, ...) disagrees with the oracle.
    let pkru = 0;
    for (let k = 0; k < 16; k++) {
      const kAd = k === LEAF_KEY ? ad : !ad;
      const kWd = k === LEAF_KEY ? wd : !wd;
      if (kAd) pkru |= 1 << (2 * k);
      if (kWd) pkru |= 1 << (2 * k + 1);
    }
    cpu.pkru = pkru >>> 0;
    assert.equal((cpu.pkru & adBit) !== 0, ad);
    assert.equal((cpu.pkru & wdBit) !== 0, wd);
    cpu.cpl = cpl;

    // The oracle depends on the leaf only through (attr, D): 32 * 2 situations. Compute them once.
    const expected = new Int32Array(64);
    for (let s = 0; s < 64; s++) expected[s] = oracle(cpl, kind, wp, smep, smap, ac, nxe, pke, ad, wd, s >> 1, (s & 1) !== 0);

    for (let id = 0; id < 4096; id++) {
      const hi = laHi[id];
      const lo = laLo[id];
      const pfn = leafPfn[id];
      const idx = leafIdx[id];
      const wantPa = pa[id];
      const at = attr[id];
      for (let dirty = 0; dirty < 2; dirty++) {
        cases++;
        const vlo = leafLo[id * 2 + dirty];
        const vhi = leafHi[id * 2 + dirty];
        const exp = expected[(at << 1) | dirty];
        mem.write64(pfn, idx, vlo, vhi);
        tlb.flushAll();
        cpu.clearFault();

        const r1 = cpu.translate(hi, lo, kind);
        const v1 = cpu.faultVector;
        const ec1 = cpu.faultErrorCode;
        const cr2ok = r1 >= 0 || (cpu.cr2Hi === hi && cpu.cr2Lo === lo);
        const afterLo = mem.readLo(pfn, idx) >>> 0;
        const afterHi = mem.readHi(pfn, idx) >>> 0;
        cpu.clearFault();
        const r2 = cpu.translate(hi, lo, kind);
        const v2 = cpu.faultVector;
        const ec2 = cpu.faultErrorCode;

        let ok: boolean;
        // A successful access sets A, and D on writes (spec §7 item 3; SDM §4.8), whatever the
        // leaf's R/W: a supervisor write with CR0.WP=0 to an R/W=0 leaf sets D on the default
        // (CET-capable) CPU too, as kvm-unit-tests' x86/access.c expects of every processor. A
        // faulting access changes nothing in the leaf.
        const setsD = write;
        const okAllowed = r1 === wantPa && afterHi === vhi && afterLo === ((vlo | PTE_A | (setsD ? PTE_D : 0)) >>> 0);
        const faultMatches = (want: number, mask: number): boolean =>
          r1 < 0 && v1 === PF && (ec1 & mask) === (want & mask) && cr2ok && afterLo === vlo && afterHi === vhi;
        if (exp === ALLOW) {
          ok = okAllowed;
        } else if (exp & EMU_PK) {
          ok = r1 >= 0 ? okAllowed : faultMatches(exp & 0xffff, ~0);
          if (ok) {
            if (r1 >= 0) emuTally.allow++;
            else emuTally.pk++;
          }
        } else if (exp & AMBIGUOUS_PK) {
          ok = faultMatches(exp & 0xffff, ~EC_PK);
        } else {
          ok = faultMatches(exp, ~0);
        }
        // The second translation (possibly a TLB hit) must agree exactly with the first.
        const same = r2 === r1 && (r1 >= 0 || (v2 === v1 && ec2 === ec1));
        if (!ok || !same) {
          mism.count++;
          let why = `expected ${describeExpectation(exp)}, got ${outcome(r1, wantPa, v1, ec1)}`;
          if (r1 >= 0 && r1 === wantPa && !okAllowed) why += ` but leaf ${hex(afterLo)} from ${hex(vlo)}`;
          if (r1 < 0 && !cr2ok) why += ' with CR2 wrong';
          if (r1 < 0 && (afterLo !== vlo || afterHi !== vhi)) why += ` but leaf changed ${hex(vlo)} -> ${hex(afterLo)}`;
          if (!same) why += `; second try ${outcome(r2, wantPa, v2, ec2)}`;
          const key =
            `CPL${cpl} ${KIND_NAMES[kind]} WP=${+wp} SMEP=${+smep} SMAP=${+smap} AC=${+ac} NXE=${+nxe} PKE=${+pke} AD=${+ad} WD=${+wd} ` +
            `| US=${+((at & A_US) !== 0)} RW=${+((at & A_RW) !== 0)} XD=${+((at & A_XD) !== 0)} upperRW=${+((at & A_UPPER_RW) !== 0)} ` +
            `leafRW=${+((at & A_LEAF_RW) !== 0)} D=${dirty} : ${why}`;
          mism.groups.set(key, (mism.groups.get(key) ?? 0) + 1);
        }
      }
    }
  }
  return cases;
}

test('access rights: full cross product of levels x CPL x kind x WP x SMEP x SMAP x AC x NXE x PKE x AD/WD x D', async (t) => {
  const tree = buildTree();
  // Sanity of the tree itself: a supervisor read (NXE = 1, SMAP off) of every leaf is allowed and
  // lands on that leaf's own frame, so the 4096 walks really are distinct.
  {
    const { cpu } = tree;
    cpu.cpl = 0;
    cpu.cr4 &= ~(CR4_SMAP | CR4_PKE);
    assert.equal(cpu.efer & EFER_NXE, EFER_NXE);
    cpu.tlb.flushAll();
    for (let id = 0; id < 4096; id++) {
      tree.m.mem.write64(tree.leafPfn[id], tree.leafIdx[id], tree.leafLo[id * 2], tree.leafHi[id * 2]);
      assert.equal(cpu.translate(tree.laHi[id], tree.laLo[id], READ), tree.pa[id], `leaf ${id}`);
    }
  }
  const emuTally = { allow: 0, pk: 0 };
  let total = 0;
  const started = Date.now();
  for (const cpl of [0, 3]) {
    for (let kind = 0; kind < 8; kind++) {
      await t.test(`CPL${cpl} ${KIND_NAMES[kind]}`, () => {
        const mism: Mismatches = { count: 0, groups: new Map() };
        total += runCplKind(tree, cpl, kind, mism, emuTally);
        if (mism.count > 0) {
          const lines = [...mism.groups].slice(0, 40).map(([k, n]) => `  ${n} x ${k}`);
          assert.fail(`${mism.count} mismatching cases in ${mism.groups.size} distinct situations (first 40):\n${lines.join('\n')}`);
        }
      });
    }
  }
  t.diagnostic(`${total} cases (x2 translations) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  t.diagnostic(`[EMU] shadow-stack key-only cases: model allowed ${emuTally.allow}, raised #PF with PK ${emuTally.pk}`);
  assert.equal(total, 4096 * 2 * 2 * 8 * 256);
});

// ---- Literal cases ---------------------------------------------------------------------------------

interface One {
  m: Machine;
  cpu: Machine['cpus'][number];
  pt: PageTableBuilder;
}

/** A machine with one CPU on fresh 4-level tables, CPL 0, no SMEP/SMAP/PKE, WP = 1, NXE = 1. */
function one(): One {
  const m = new Machine({ cpus: 1, cpu: { pks: false } });
  const cpu = m.cpus[0];
  const pt = new PageTableBuilder(m.mem);
  cpu.cpl = 0;
  assert.ok(cpu.setCr3(pt.cr3()));
  assert.ok((cpu.cr0 & CR0_WP) !== 0 && (cpu.efer & EFER_NXE) !== 0);
  return { m, cpu, pt };
}

const UVA = 0x0000_7f12_3456_7000n; // a user-half page
const KVA = 0xffff_ffff_8123_4000n; // a kernel-half page
const PA = 0x0123_4000; // its frame's physical address

/** Translates `addr` as `kind`; returns the physical address or, on #PF, the object {ec}. */
function access(cpu: One['cpu'], addr: bigint, kind: number): number | { ec: number } {
  cpu.clearFault();
  const r = cpu.translate(hi32(addr), lo32(addr), kind);
  if (r >= 0) return r;
  assert.equal(cpu.faultVector, PF, 'expected #PF');
  assert.equal(cpu.cr2Hi, hi32(addr), 'CR2 bits 63:32');
  assert.equal(cpu.cr2Lo, lo32(addr), 'CR2 bits 31:0');
  return { ec: cpu.faultErrorCode };
}

test('literal: WP=0 supervisor write ignores R/W and PKRU.WD but not PKRU.AD (spec §3 points, §5)', () => {
  const { cpu, pt } = one();
  pt.map(UVA, PA, { leaf: { us: true, rw: false, pk: 3 } });
  cpu.cr0 &= ~CR0_WP;
  cpu.cr4 |= CR4_PKE;
  cpu.pkru = 2 << 6; // WD3
  assert.equal(access(cpu, UVA + 8n, WRITE), PA + 8);
  // The write is permitted, so it sets D although the leaf's R/W is 0, on the default
  // (CET-capable) CPU as on any (spec §7 item 3, SDM §4.8; kvm-unit-tests x86/access.c).
  assert.equal(pt.readEntry(UVA, 1)! & 0x40n, 0x40n, 'D set in the R/W=0 leaf');
  cpu.tlb.flushAll();
  cpu.pkru = 1 << 6; // AD3
  assert.deepEqual(access(cpu, UVA, WRITE), { ec: EC_P | EC_W | EC_PK });
  assert.deepEqual(access(cpu, UVA, READ), { ec: EC_P | EC_PK });
  // The same write with WP = 1 is stopped by R/W (and WD): not a key-only case, so no PK check.
  cpu.pkru = 2 << 6;
  cpu.cr0 |= CR0_WP;
  const r = access(cpu, UVA, WRITE);
  assert.ok(typeof r === 'object' && (r.ec & ~EC_PK) === (EC_P | EC_W));
});

test('literal: PKRU applies to kernel accesses to user pages with SMAP on and AC=1 (copy_to_user, spec §3, §9)', () => {
  const { cpu, pt } = one();
  pt.map(UVA, PA, { leaf: { us: true, rw: true, pk: 7 } });
  cpu.cr4 |= CR4_SMEP | CR4_SMAP | CR4_PKE;
  cpu.rflags |= RFLAGS_AC;
  cpu.pkru = 2 << 14; // WD7
  assert.equal(access(cpu, UVA, READ), PA);
  assert.deepEqual(access(cpu, UVA, WRITE), { ec: EC_P | EC_W | EC_PK });
  cpu.pkru = 0;
  assert.equal(access(cpu, UVA, WRITE), PA);
  // A read-only user page: R/W denies (WP = 1), and the key allows: P|W, no PK.
  pt.writeEntry(UVA, 1, pt.readEntry(UVA, 1)! & ~0x62n);
  cpu.tlb.flushAll();
  assert.deepEqual(access(cpu, UVA, WRITE), { ec: EC_P | EC_W });
});

test('literal: implicit supervisor access at CPL3 is supervisor; its error code has U/S=0 (spec §1, §7)', () => {
  const { cpu, pt } = one();
  pt.map(KVA, PA, { leaf: { us: false, rw: false } });
  pt.map(UVA, PA + 4096, { leaf: { us: true, rw: true } });
  cpu.cpl = 3;
  assert.deepEqual(access(cpu, KVA, READ), { ec: EC_P | EC_U });
  assert.equal(access(cpu, KVA, IMPLICIT_READ), PA, 'the CPU reads the GDT/IDT at CPL 3');
  // WP = 1 and a read-only supervisor page: an implicit write faults with P|W and U/S = 0.
  assert.deepEqual(access(cpu, KVA, IMPLICIT_WRITE), { ec: EC_P | EC_W });
  // SMAP blocks implicit supervisor accesses to user pages, even with AC = 1 (spec §2, §3).
  cpu.cr4 |= CR4_SMAP;
  cpu.rflags |= RFLAGS_AC;
  assert.deepEqual(access(cpu, UVA, IMPLICIT_READ), { ec: EC_P });
  assert.deepEqual(access(cpu, UVA, IMPLICIT_WRITE), { ec: EC_P | EC_W });
  assert.equal(access(cpu, UVA, READ), PA + 4096, 'the user access itself is fine');
  cpu.cpl = 0;
  assert.equal(access(cpu, UVA, READ), PA + 4096, 'explicit supervisor read with AC = 1 passes SMAP');
  assert.deepEqual(access(cpu, UVA, IMPLICIT_READ), { ec: EC_P }, 'implicit at CPL 0: SMAP ignores AC');
  cpu.rflags &= ~RFLAGS_AC;
  assert.deepEqual(access(cpu, UVA, READ), { ec: EC_P }, 'explicit with AC = 0');
});

test('literal: instruction fetches ignore PKRU, R/W, SMAP and AC (spec §4, §5)', () => {
  const { cpu, pt } = one();
  pt.map(UVA, PA, { leaf: { us: true, rw: false, pk: 1 } });
  cpu.cr4 |= CR4_PKE | CR4_SMAP;
  cpu.pkru = 0xffffffff; // every key: AD and WD
  cpu.cpl = 3;
  assert.equal(access(cpu, UVA, FETCH), PA);
  assert.deepEqual(access(cpu, UVA, READ), { ec: EC_P | EC_U | EC_PK });
  cpu.cpl = 0;
  assert.equal(access(cpu, UVA, FETCH), PA, 'supervisor fetch from a user page without SMEP');
  cpu.cr4 |= CR4_SMEP;
  cpu.tlb.flushAll();
  assert.deepEqual(access(cpu, UVA, FETCH), { ec: EC_P | EC_I }, 'SMEP: P|I/D, no PK');
});

test('literal: WRUSS is a user-mode shadow-stack access: U/S=1, SS=1, SMAP does not apply (spec §1, §6, §8)', () => {
  const { cpu, pt } = one();
  pt.map(UVA, PA, { leaf: { us: true, rw: false, d: true } }); // user shadow-stack page
  pt.map(UVA + 0x1000n, PA + 0x1000, { leaf: { us: true, rw: true, d: true } }); // ordinary writable page
  pt.map(KVA, PA + 0x2000, { leaf: { us: false, rw: false, d: true } }); // supervisor shadow-stack page
  cpu.cr4 |= CR4_SMAP | CR4_SMEP;
  cpu.cpl = 0;
  assert.equal(access(cpu, UVA, WRUSS), PA, 'WRUSS to a user shadow-stack page, SMAP on, AC = 0');
  assert.deepEqual(access(cpu, UVA + 0x1000n, WRUSS), { ec: EC_P | EC_W | EC_U | EC_SS });
  assert.deepEqual(access(cpu, KVA, WRUSS), { ec: EC_P | EC_W | EC_U | EC_SS });
  // A supervisor shadow-stack access to a user page: never, whatever SMAP and AC say.
  cpu.cr4 &= ~CR4_SMAP;
  assert.deepEqual(access(cpu, UVA, SS_WRITE), { ec: EC_P | EC_W | EC_SS });
  assert.deepEqual(access(cpu, UVA, SS_READ), { ec: EC_P | EC_SS });
  assert.equal(access(cpu, KVA, SS_WRITE), PA + 0x2000);
});

test('literal: shadow-stack pages vs ordinary accesses (spec §6)', () => {
  const { cpu, pt } = one();
  pt.map(UVA, PA, { leaf: { us: true, rw: false, d: true } });
  pt.map(UVA + 0x1000n, PA + 0x1000, { leaf: { us: true, rw: false, d: false } });
  cpu.cpl = 3;
  assert.equal(access(cpu, UVA, READ), PA, 'plain reads of shadow-stack memory are allowed');
  assert.deepEqual(access(cpu, UVA, WRITE), { ec: EC_P | EC_W | EC_U }, 'plain writes fail: R/W = 0');
  assert.equal(access(cpu, UVA, SS_READ), PA);
  assert.equal(access(cpu, UVA, SS_WRITE), PA);
  assert.deepEqual(access(cpu, UVA + 0x1000n, SS_READ), { ec: EC_P | EC_U | EC_SS }, 'read-only with D = 0 is not SS');
  assert.deepEqual(access(cpu, UVA + 0x1000n, SS_WRITE), { ec: EC_P | EC_W | EC_U | EC_SS });
  // A non-leaf R/W = 0 disqualifies the page even though the leaf is R/W = 0, D = 1.
  const pde = pt.readEntry(UVA, 2)!;
  pt.writeEntry(UVA, 2, pde & ~2n);
  cpu.tlb.flushAll();
  assert.deepEqual(access(cpu, UVA, SS_READ), { ec: EC_P | EC_U | EC_SS });
});

test('literal: not-present fault under a supervisor-only PDE reports P=0 with U/S=1 (spec §7 order item 1)', () => {
  const { cpu, pt } = one();
  pt.map(UVA, PA, { leaf: { us: true, rw: true } });
  pt.writeEntry(UVA, 2, pt.readEntry(UVA, 2)! & ~4n); // PDE: U/S = 0
  pt.writeEntry(UVA, 1, 0n); // PTE not present
  cpu.tlb.flushAll();
  cpu.cpl = 3;
  assert.deepEqual(access(cpu, UVA, READ), { ec: EC_U });
  assert.deepEqual(access(cpu, UVA, WRITE), { ec: EC_W | EC_U });
  assert.deepEqual(access(cpu, UVA, SS_READ), { ec: EC_U | EC_SS }, 'SS is set on not-present faults too');
  cpu.cpl = 0;
  assert.deepEqual(access(cpu, UVA, WRUSS), { ec: EC_W | EC_U | EC_SS });
});

test('literal: I/D is set only for fetches with SMEP or NXE (spec §7)', () => {
  const { cpu, pt } = one();
  pt.map(UVA, PA, { leaf: { us: true, rw: true, xd: true } });
  cpu.cpl = 3;
  assert.deepEqual(access(cpu, UVA, FETCH), { ec: EC_P | EC_U | EC_I }, 'NXE = 1, XD = 1');
  assert.deepEqual(access(cpu, UVA + 0x1000n, FETCH), { ec: EC_U | EC_I }, 'not present, NXE = 1');
  cpu.cpl = 0;
  assert.ok(cpu.wrmsr(MSR_EFER, BigInt(cpu.efer & ~EFER_NXE)));
  cpu.tlb.flushAll();
  cpu.cpl = 3;
  assert.deepEqual(access(cpu, UVA + 0x1000n, FETCH), { ec: EC_U }, 'not present, NXE = 0, SMEP = 0: I/D = 0');
  assert.deepEqual(access(cpu, UVA, FETCH), { ec: EC_P | EC_U | EC_RSVD }, 'XD with NXE = 0 is reserved');
  assert.deepEqual(access(cpu, UVA, READ), { ec: EC_P | EC_U | EC_RSVD }, 'for every access, not just fetches');
  cpu.cr4 |= CR4_SMEP;
  assert.deepEqual(access(cpu, UVA + 0x1000n, FETCH), { ec: EC_U | EC_I }, 'not present, SMEP = 1: I/D = 1');
  assert.deepEqual(access(cpu, UVA, FETCH), { ec: EC_P | EC_U | EC_RSVD | EC_I });
});

test('literal: WRPKRU takes effect on the next access without TLB invalidation (spec §5)', () => {
  const { cpu, pt } = one();
  pt.map(UVA, PA, { leaf: { us: true, rw: true, pk: 2 } });
  cpu.cr4 |= CR4_PKE;
  cpu.cpl = 3;
  assert.equal(access(cpu, UVA, WRITE), PA); // fills the TLB
  assert.ok(cpu.wrpkru(1 << 5)); // WD2
  assert.deepEqual(access(cpu, UVA, WRITE), { ec: EC_P | EC_W | EC_U | EC_PK });
  assert.equal(access(cpu, UVA, READ), PA);
  assert.ok(cpu.wrpkru(1 << 4)); // AD2
  assert.deepEqual(access(cpu, UVA, READ), { ec: EC_P | EC_U | EC_PK });
  assert.ok(cpu.wrpkru(0));
  assert.equal(access(cpu, UVA, READ), PA);
});

test('literal: PKRU does not apply to supervisor-mode addresses, nor with PKE = 0 (spec §1, §5)', () => {
  const { cpu, pt } = one();
  pt.map(KVA, PA, { leaf: { us: false, rw: true, pk: 4 } });
  pt.map(UVA, PA + 0x1000, { leaf: { us: true, rw: true, pk: 4 } });
  cpu.pkru = 0xffffffff;
  assert.equal(access(cpu, KVA, WRITE), PA, 'PKE = 0: keys are ignored');
  assert.equal(access(cpu, UVA, WRITE), PA + 0x1000);
  cpu.cr4 |= CR4_PKE;
  cpu.tlb.flushAll();
  assert.equal(access(cpu, KVA, WRITE), PA, 'a supervisor-mode address is not subject to PKRU');
  assert.deepEqual(access(cpu, UVA, READ), { ec: EC_P | EC_PK });
  // A supervisor-only upper level makes the address supervisor-mode even though the leaf has U/S = 1.
  pt.writeEntry(UVA, 3, pt.readEntry(UVA, 3)! & ~4n);
  cpu.tlb.flushAll();
  assert.equal(access(cpu, UVA, READ), PA + 0x1000);
});

test('literal: Linux configuration (WP, NXE, SMEP, SMAP, PKE on; STAC window) (spec §9)', () => {
  const { cpu, pt } = one();
  pt.map(UVA, PA, { leaf: { us: true, rw: false, pk: 0 } });
  pt.map(KVA, PA + 0x1000, { leaf: { us: false, rw: true, xd: true, g: true } });
  cpu.cr4 |= CR4_SMEP | CR4_SMAP | CR4_PKE;
  cpu.pkru = 0x55555554; // Linux's default: every key but 0 access-disabled
  assert.deepEqual(access(cpu, UVA, READ), { ec: EC_P }, 'kernel touch of user memory outside STAC');
  assert.ok(cpu.stac());
  assert.equal(access(cpu, UVA, READ), PA, 'inside the STAC window');
  assert.deepEqual(access(cpu, UVA, WRITE), { ec: EC_P | EC_W }, 'R/W still applies because WP = 1');
  assert.ok(cpu.clac());
  assert.deepEqual(access(cpu, KVA, FETCH), { ec: EC_P | EC_I }, 'kernel data is NX');
  cpu.cpl = 3;
  assert.deepEqual(access(cpu, KVA, READ), { ec: EC_P | EC_U }, 'user read of kernel memory');
  assert.deepEqual(access(cpu, UVA, WRITE), { ec: EC_P | EC_W | EC_U });
});

test('literal: a successful access sets A, and D only on writes (spec §7 item 3, SDM §4.8)', () => {
  const { cpu, pt } = one();
  pt.map(UVA, PA, { leaf: { us: true, rw: true } });
  cpu.cpl = 3;
  assert.equal(access(cpu, UVA, READ), PA);
  assert.equal(pt.readEntry(UVA, 1)! & 0x60n, 0x20n, 'read: A set, D clear');
  assert.equal(access(cpu, UVA, FETCH), PA);
  assert.equal(pt.readEntry(UVA, 1)! & 0x60n, 0x20n, 'fetch: D still clear');
  assert.equal(access(cpu, UVA, WRITE), PA);
  assert.equal(pt.readEntry(UVA, 1)! & 0x60n, 0x60n, 'write: D set');
  // A faulting access leaves A and D alone.
  pt.writeEntry(UVA, 1, pt.readEntry(UVA, 1)! & ~0x62n);
  cpu.tlb.flushAll();
  assert.deepEqual(access(cpu, UVA, WRITE), { ec: EC_P | EC_W | EC_U });
  assert.equal(pt.readEntry(UVA, 1)! & 0x60n, 0n);
});

test('literal: a supervisor write with WP=0 to an R/W=0 leaf sets D on a strict and a legacy CPU alike (SDM §4.8)', () => {
  // spec §7 item 3: a permitted write sets D whatever the leaf's R/W; what a shadow-stack CPU
  // (strict) no longer does is set D through a stale writable TLB entry (tlb.test.ts).
  for (const model of [{ shstk: true, dirty_on_readonly: 'strict' as const }, { shstk: false, dirty_on_readonly: 'legacy' as const }]) {
    const m = new Machine({ cpu: model });
    const pt = new PageTableBuilder(m.mem);
    const cpu = m.cpus[0];
    cpu.setCr3(pt.cr3());
    pt.map(UVA, PA, { leaf: { us: true, rw: false } });
    cpu.cr0 &= ~CR0_WP;
    assert.equal(access(cpu, UVA, WRITE), PA);
    assert.equal(pt.readEntry(UVA, 1)! & 0x60n, 0x60n, `${model.dirty_on_readonly}: A and D set: R/W=0, D=1`);
  }
});
