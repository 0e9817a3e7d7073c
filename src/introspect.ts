/**
 * Reading the simulated kernel's state from outside, as plain read-only records: the tasks,
 * a process's PTEs, memory and mappings, the page allocator's counts, each CPU's current task
 * and TLB bookkeeping. What a debugger (or /proc) would show; the System (system.ts) offers
 * it, and the scenario runner, the explorer, the CLI and the trace read the kernel only
 * through it.
 *
 * Nothing here changes the model: no A/D bits, no TLB fills, no faults, no allocation of page
 * tables. Reads of physical memory go through PhysMem, so while the explorer records a step's
 * footprint (hw/footprint.ts) a read made inside that step counts as that step's read, which
 * is what an observation made at that moment depends on. Every function is O(1) or linear in
 * what it returns, except where its contract says otherwise.
 */
import { ArgumentError } from './errors.js';
import { PTE_A, PTE_D, PTE_P, PTE_RW, PTE_US, PTEH_SAVED_DIRTY, PTEH_XD, ptePkey } from './hw/pte.js';
import { R_GLOBAL, R_USER, R_WRITE, R_XD } from './hw/rights.js';
import type { TlbEntry } from './hw/tlb.js';
import { TASK_SIZE } from './kernel/layout.js';
import { check_page_counts } from './kernel/debug.js';
import type { Kernel, PerCpu } from './kernel/kernel.js';
import type { MmStruct } from './kernel/mm.js';
import { PG_anon, PG_dirty } from './kernel/page.js';
import { pte_pfn, pte_present } from './kernel/pgtable.js';
import { check_pti_user_pgd } from './kernel/pti.js';
import { SYSCALLS } from './kernel/syscalls.js';
import type { Task, TaskState } from './kernel/task.js';
import { FnEnd, OP_BYTES, ProgramImage, type CFunction } from './user/program.js';

/** A task as `ps` would list it. */
export interface TaskInfo {
  readonly tid: number;
  /** The thread group id (getpid). */
  readonly pid: number;
  readonly state: TaskState;
  /** The CPU it runs on, or last ran on. */
  readonly cpu: number;
  /** The name of the image it runs (execve's path), or null. */
  readonly image: string | null;
  /** Its address space's id (mm ctx_id; threads share one), or null once it has none (after exit). */
  readonly mm: number | null;
  /** The kernel path it is on (a syscall, a fault, a signal delivery, its exit, the way back to user mode, or a kernel thread's work), or null in user mode or asleep outside one. */
  readonly kernel: 'syscall' | 'fault' | 'signal' | 'exit' | 'return' | 'kthread' | null;
}

/**
 * A page-table entry, as its 64-bit value (`lo` bits 31:0, `hi` bits 63:32, both uint32) and
 * its fields. `rw` ... `nx` are the hardware bits (SDM Table 4-20); `saved_dirty` is Linux's
 * software bit 58 (_PAGE_SAVED_DIRTY); `pfn` is the frame a present or PROT_NONE entry maps
 * (pte_pfn, which undoes PROT_NONE's inversion), 0 for any other entry.
 */
export interface Pte {
  readonly lo: number;
  readonly hi: number;
  readonly present: boolean;
  readonly rw: boolean;
  readonly user: boolean;
  readonly accessed: boolean;
  readonly dirty: boolean;
  readonly saved_dirty: boolean;
  readonly nx: boolean;
  readonly pkey: number;
  readonly pfn: number;
}

/** A mapping of an address space, as a line of /proc/pid/maps: [start, end), `perms` such as "rw-p". */
export interface VmaInfo {
  readonly start: number;
  readonly end: number;
  /** r, w, x or -, then p (private) or s (shared). */
  readonly perms: string;
  readonly pkey: number;
  /** A shadow-stack mapping (VM_SHADOW_STACK). */
  readonly shadowStack: boolean;
  /** '[stack]', '[text]', ... or ''. */
  readonly name: string;
}

/**
 * A live address space: its id (ctx_id), the live tasks that use it, its TLB generation
 * (mm->context.tlb_gen), and the roots of its page tables: the PGD frame (mm->pgd) and, under
 * PTI, the user copy's (kernel_to_user_pgdp), or -1 when it has none.
 */
export interface MmInfo {
  readonly id: number;
  readonly tids: readonly number[];
  readonly tlbGen: number;
  readonly pgd: number;
  readonly userPgd: number;
}

/** A physical frame, as /proc/kpageflags and /proc/kpagecount show it. */
export interface PageInfo {
  /** An anonymous page (PageAnon). */
  readonly anon: boolean;
  /** References held (page_count). */
  readonly refcount: number;
  /** Page-table entries mapping it (page_mapcount). */
  readonly mapcount: number;
  /** The folio's own dirty flag (PG_dirty, KPF_DIRTY): reclaim writes it back or keeps it. */
  readonly dirty: boolean;
}

/**
 * A CPU as the kernel sees it: its current task (0 for the idle task) and the kernel path that
 * task is on (as TaskInfo.kernel), the flush IPIs queued for it, and from its cpu_tlbstate the
 * mm loaded (its id, 0 for init_mm) and whether it is in lazy TLB mode. `pcid`: whether the
 * kernel uses PCIDs (ASID n then runs with kernel PCID n+1, and user PCID n+1 | 0x800 under
 * PTI).
 */
export interface CpuInfo {
  readonly current: number;
  readonly kernel: TaskInfo['kernel'];
  readonly ipis: number;
  readonly loadedMm: number;
  readonly lazy: boolean;
  readonly pcid: boolean;
}

/** One dynamic ASID of a CPU's cpu_tlbstate: the mm it was last used for (ctx_id) and the tlb_gen that CPU has caught up with in it. */
export interface AsidInfo {
  readonly mm: number;
  readonly tlbGen: number;
}

/** What the kernel says of task `t`. */
export function taskInfo(t: Task): TaskInfo {
  return {
    tid: t.tid,
    pid: t.tgid,
    state: t.state,
    cpu: t.cpu,
    image: t.image ? t.image.name : null,
    mm: t.mm ? t.mm.ctx_id : null,
    kernel: t.kpath ? t.kpathKind : null,
  };
}

/**
 * Where a task is in its program: the operation at its ip (`fn`, `index`, `op`: its kind, a
 * syscall's name for a syscall; at a function's end `index` is the function's length and `op`
 * is `exit` or `return`), and the
 * operation it fetched last (`fetched*`), which a syscall in progress belongs to: SYSCALL moves
 * the ip past it. Filled in place by System.position, so that a caller asking at every event
 * allocates nothing.
 */
export interface ProgramPosition {
  image: string;
  fn: string;
  index: number;
  op: string;
  fetchedFn: string;
  fetchedIndex: number;
  fetchedOp: string;
}

/** The name of operation `index` of `f`: its `op` (a syscall's name for a syscall), or at the function's end `exit` or `return`. */
function opNameAt(f: CFunction, index: number): string {
  if (index >= f.ops.length) return f.end === FnEnd.Exit ? 'exit' : 'return';
  const op = f.ops[index];
  if (op.op !== 'syscall') return op.op;
  if (typeof op.name === 'string') return op.name;
  return SYSCALLS[op.name]?.name ?? `syscall_${op.name}`;
}

/**
 * The address of the operation task `tid` is at (its ip), or with `fetched` of the one it
 * fetched last (a syscall in progress belongs to it); -1 for no such task or one without a
 * program. A cheap key for "has the task moved to another operation" (ProgramPosition has the
 * names).
 */
export function taskOpAddress(k: Kernel, tid: number, fetched: boolean): number {
  const t = k.tasks.get(tid);
  const image = t?.image;
  if (!t || !image) return -1;
  return !fetched || t.opFn === '' ? t.pc : t.opIp;
}

/**
 * A task's program image, as an opaque handle: the same object while the task runs the same
 * image (until execve), so that addresses can be named later (operationAt) after the task moved
 * on or exited.
 */
export interface ImageHandle {
  readonly name: string;
}

/** Where a task is in its program, by address (taskOpCursor); filled in place. */
export interface OpCursor {
  image: ImageHandle | null;
  /** The address of the operation at its ip. */
  here: number;
  /** The address of the operation it fetched last (taskOpAddress with `fetched`). */
  fetched: number;
}

/** Fills `out` with task `tid`'s image and operation addresses (one look-up for both); false (out untouched) for no such task or one without a program. */
export function taskOpCursor(k: Kernel, tid: number, out: OpCursor): boolean {
  const t = k.tasks.get(tid);
  const image = t?.image;
  if (!t || !image) return false;
  out.image = image;
  out.here = t.pc;
  out.fetched = t.opFn === '' ? t.pc : t.opIp;
  return true;
}

/** Fills `out` with the names of the operation at `addr` of `image` (the fetched names the same); false (out untouched) when no function holds `addr` or the handle is not an image. */
export function operationAt(image: ImageHandle, addr: number, out: ProgramPosition): boolean {
  if (!(image instanceof ProgramImage)) return false;
  const f = image.functionAt(addr);
  if (!f) return false;
  out.image = image.name;
  out.fn = out.fetchedFn = f.name;
  out.index = out.fetchedIndex = Math.floor((addr - f.base) / OP_BYTES);
  out.op = out.fetchedOp = opNameAt(f, out.index);
  return true;
}

/** Fills `out` with where task `tid` is in its program; false (out untouched) for no such task, one without a program, or an ip in no function. */
export function taskPosition(k: Kernel, tid: number, out: ProgramPosition): boolean {
  const t = k.tasks.get(tid);
  const image = t?.image;
  if (!t || !image) return false;
  const f = image.functionAt(t.pc);
  if (!f) return false;
  out.image = image.name;
  out.fn = f.name;
  out.index = Math.floor((t.pc - f.base) / OP_BYTES);
  out.op = opNameAt(f, out.index);
  const g = t.opFn === '' ? undefined : t.opFn === f.name ? f : image.byName.get(t.opFn);
  if (g) {
    out.fetchedFn = g.name;
    out.fetchedIndex = t.opIndex;
    out.fetchedOp = opNameAt(g, t.opIndex);
  } else {
    out.fetchedFn = out.fn;
    out.fetchedIndex = out.index;
    out.fetchedOp = out.op;
  }
  return true;
}

/** Every task not yet reaped (zombies included), in creation order (by tid). */
export function taskList(k: Kernel): TaskInfo[] {
  return [...k.tasks.values()].map(taskInfo);
}

/** The task `tid`, or ArgumentError (naming `argument`) when there is none. */
function taskOf(k: Kernel, tid: number, argument: string): Task {
  const t = Number.isSafeInteger(tid) ? k.tasks.get(tid) : undefined;
  if (!t) throw new ArgumentError(argument, `no task ${JSON.stringify(tid)} (it exited and was reaped, or never existed)`);
  return t;
}

/** The per-CPU state of `cpu`, or ArgumentError for a CPU the machine does not have. */
function percpuOf(k: Kernel, cpu: number): PerCpu {
  if (!Number.isInteger(cpu) || cpu < 0 || cpu >= k.percpu.length) throw new ArgumentError('cpu', `expected a CPU number from 0 to ${k.percpu.length - 1}, got ${JSON.stringify(cpu)}`);
  return k.percpu[cpu];
}

/** The tid of the task current on `cpu`, 0 for the idle task. Throws ArgumentError for a bad CPU. */
export function currentTid(k: Kernel, cpu: number): number {
  const t = percpuOf(k, cpu).current;
  return t ? t.tid : 0;
}

/** CPU `cpu` as the kernel sees it (CpuInfo). Throws ArgumentError for a bad CPU. */
export function cpuInfo(k: Kernel, cpu: number): CpuInfo {
  const pc = percpuOf(k, cpu);
  const t = pc.current;
  return { current: t ? t.tid : 0, kernel: t && t.kpath ? t.kpathKind : null, ipis: pc.ipis.length, loadedMm: pc.loaded_mm.ctx_id, lazy: pc.is_lazy, pcid: k.pcid };
}

/** CPU `cpu`'s dynamic ASIDs (TLB_NR_DYN_ASIDS of them), by ASID. Throws ArgumentError for a bad CPU. */
export function cpuAsids(k: Kernel, cpu: number): AsidInfo[] {
  const pc = percpuOf(k, cpu);
  const asids: AsidInfo[] = [];
  for (let i = 0; i < pc.ctx_id.length; i++) asids.push({ mm: pc.ctx_id[i], tlbGen: pc.ctx_tlb_gen[i] });
  return asids;
}

/** A user address as a number below `mm`'s TASK_SIZE, or -1 when it is not one. */
function userVa(mm: MmStruct, va: number | bigint): number {
  if (typeof va === 'bigint') return va >= 0n && va < BigInt(mm.task_size) ? Number(va) : -1;
  return Number.isSafeInteger(va) && va >= 0 && va < mm.task_size ? va : -1;
}

/**
 * The PTE that maps user address `va` in `mm`: the leaf entry of the PTE table covering it, as
 * found by the kernel's own table walk (PageTables.pteTable, allocating nothing). Null when no
 * PTE table covers `va` or `va` is not a user address; an empty entry (pte_none) is a record
 * with every field 0. XXX: 4 KiB pages only (the model maps no huge user pages).
 */
export function mmPte(k: Kernel, mm: MmStruct, va: number | bigint): Pte | null {
  const a = userVa(mm, va);
  if (a < 0) return null;
  const table = mm.pgtables.pteTable(a, false);
  if (table < 0) return null;
  const i = Math.floor(a / 4096) % 512;
  const mem = k.machine.mem;
  return decodePte(mem.readLo(table, i) >>> 0, mem.readHi(table, i) >>> 0);
}

/** The fields of the 64-bit entry (`lo`, `hi`). */
export function decodePte(lo: number, hi: number): Pte {
  return {
    lo,
    hi,
    present: (lo & PTE_P) !== 0,
    rw: (lo & PTE_RW) !== 0,
    user: (lo & PTE_US) !== 0,
    accessed: (lo & PTE_A) !== 0,
    dirty: (lo & PTE_D) !== 0,
    saved_dirty: (hi & PTEH_SAVED_DIRTY) !== 0,
    nx: (hi & PTEH_XD) !== 0,
    pkey: ptePkey(hi),
    pfn: pte_present(lo) ? pte_pfn(lo, hi) : 0,
  };
}

/** The PTE mapping `va` in task `pid`'s address space (mmPte); null when it has none. Throws ArgumentError for an unknown task. */
export function taskPte(k: Kernel, pid: number, va: number | bigint): Pte | null {
  const t = taskOf(k, pid, 'pid');
  return t.mm ? mmPte(k, t.mm, va) : null;
}

/** The physical address `va` maps to in `mm`: through a present PTE, else null. */
export function mmPhys(k: Kernel, mm: MmStruct, va: number | bigint): number | null {
  const p = mmPte(k, mm, va);
  if (!p || !p.present) return null;
  return p.pfn * 4096 + (Number(va) % 4096);
}

/**
 * `size` bytes (1 to 8) little-endian at user address `va` of task `pid`'s address space, or
 * null if any of them is not mapped by a present PTE now (never faulted in, PROT_NONE, or the
 * task has no mm). Ignores R/W, U/S and protection keys. Throws ArgumentError for an unknown
 * task or a bad size.
 */
export function readUser(k: Kernel, pid: number, va: number | bigint, size: number): bigint | null {
  const t = taskOf(k, pid, 'pid');
  if (!Number.isInteger(size) || size < 1 || size > 8) throw new ArgumentError('size', `expected 1 to 8 bytes, got ${JSON.stringify(size)}`);
  if (!t.mm) return null;
  const base = BigInt(va);
  let v = 0n;
  for (let i = 0; i < size; i++) {
    const pa = mmPhys(k, t.mm, base + BigInt(i));
    if (pa === null) return null;
    v |= BigInt(k.machine.mem.readBytes(pa, 1)[0]) << BigInt(8 * i);
  }
  return v;
}

/** /proc/pid/maps permissions by VM_READ (1), VM_WRITE (2), VM_EXEC (4) and VM_SHARED (8). */
const PERMS = Array.from({ length: 16 }, (_, f) => `${f & 1 ? 'r' : '-'}${f & 2 ? 'w' : '-'}${f & 4 ? 'x' : '-'}${f & 8 ? 's' : 'p'}`);

/** Task `pid`'s mappings in address order (empty without an mm). Throws ArgumentError for an unknown task. */
export function taskMaps(k: Kernel, pid: number): VmaInfo[] {
  const t = taskOf(k, pid, 'pid');
  if (!t.mm) return [];
  return t.mm.vmas.list.map((v) => ({
    start: v.vm_start,
    end: v.vm_end,
    perms: PERMS[v.vm_flags & 15],
    pkey: v.vm_pkey,
    shadowStack: v.shadowStack,
    name: v.name,
  }));
}

/** Every address space some live (not zombie, not dead) task uses, in the order of their first task by tid. */
export function liveMms(k: Kernel): MmInfo[] {
  const byId = new Map<number, { mm: MmStruct; tids: number[] }>();
  for (const t of k.tasks.values()) {
    if (!t.mm || t.state === 'dead' || t.state === 'zombie') continue;
    const e = byId.get(t.mm.ctx_id);
    if (e) e.tids.push(t.tid);
    else byId.set(t.mm.ctx_id, { mm: t.mm, tids: [t.tid] });
  }
  return [...byId.values()].map(({ mm, tids }) => ({ id: mm.ctx_id, tids, tlbGen: mm.tlb_gen, pgd: mm.pgd, userPgd: mm.pgtables.userPgd }));
}

/** Frame `pfn` (PageInfo). Throws ArgumentError for a frame the machine does not have. */
export function pageInfo(k: Kernel, pfn: number): PageInfo {
  const p = k.pages;
  if (!Number.isInteger(pfn) || pfn < 0 || pfn >= p.refcount.length) throw new ArgumentError('pfn', `expected a frame number from 0 to ${p.refcount.length - 1}, got ${JSON.stringify(pfn)}`);
  return { anon: (p.flags[pfn] & PG_anon) !== 0, refcount: p.refcount[pfn], mapcount: p.mapcount[pfn], dirty: (p.flags[pfn] & PG_dirty) !== 0 };
}

/** Frames the page allocator has handed out and not freed (boot frames not included). */
export function framesInUse(k: Kernel): number {
  return k.pages.inUse;
}

/**
 * Runs the kernel's page-count check now (debug.ts check_page_counts: map counts and
 * references against every page table, leaks) and returns its findings. They are also kept
 * in the kernel's debug reports and emitted as `debug` events, as during a run.
 */
export function checkPageCounts(k: Kernel): string[] {
  const before = k.debugReports.length;
  check_page_counts(k, null);
  return k.debugReports.slice(before);
}

/**
 * Runs the PTI check (pti.ts check_pti_user_pgd) on the address space of every live task now
 * and returns its findings (none without PTI). With `keep` false they are removed from the
 * kernel's debug reports afterwards (their `debug` events have been emitted).
 */
export function checkPtiUserPgd(k: Kernel, keep: boolean): string[] {
  const before = k.debugReports.length;
  const seen = new Set<MmStruct>();
  for (const t of k.tasks.values()) {
    if (!t.mm || t.state === 'dead' || t.state === 'zombie' || seen.has(t.mm)) continue;
    seen.add(t.mm);
    check_pti_user_pgd(k, null, t.mm);
  }
  const found = k.debugReports.slice(before);
  if (!keep) k.debugReports.length = before;
  return found;
}

/**
 * What a TLB entry is against the page tables it was filled from, now: `mm`, the address space
 * it belongs to; `why`, how it grants more than a fresh walk would ("the PTE is read-only"),
 * or null when it does not; `pending`, true when that mm is not loaded on the CPU and the ASID
 * has not caught up with the mm's tlb_gen, so switch_mm_irqs_off flushes the ASID before the
 * entry can be used again.
 */
export interface TlbJudgement {
  readonly mm: number;
  readonly why: string | null;
  readonly pending: boolean;
}

/**
 * A judge of CPU `cpu`'s TLB entries as they are now (call it again after a step). An entry is
 * judged when it is a non-global 4 KiB user entry whose address space is known: with PCIDs the
 * mm its PCID's ASID was last used for (ASID n runs with PCIDs n+1 and n+1|0x800), without
 * them the mm loaded there (not lazily). Returns null for the others. Compares the entry with
 * the mm's leaf PTE: present, same frame, and no R/W, U/S or execute right the PTE lacks.
 */
export function tlbJudge(k: Kernel, cpu: number): (en: TlbEntry) => TlbJudgement | null {
  const c = cpuInfo(k, cpu);
  const asids = cpuAsids(k, cpu);
  const mms = new Map<number, MmInfo>();
  for (const mm of liveMms(k)) mms.set(mm.id, mm);
  return (en) => {
    if (en.rights & R_GLOBAL || en.pageShift !== 12 || en.laHi >= 0x8000) return null;
    const va = en.laHi * 2 ** 32 + en.laLo;
    if (va >= TASK_SIZE) return null;
    let mm: MmInfo | undefined;
    let pending = false;
    if (c.pcid) {
      const asid = (en.pcid & 0x7ff) - 1;
      if (asid < 0 || asid >= asids.length) return null;
      mm = mms.get(asids[asid].mm);
      if (!mm) return null;
      pending = !(c.loadedMm === mm.id && !c.lazy) && asids[asid].tlbGen !== mm.tlbGen;
    } else {
      mm = mms.get(c.loadedMm);
      if (c.lazy || !mm) return null;
    }
    const pte = taskPte(k, mm.tids[0], va);
    return { mm: mm.id, why: tlbBeyondPte(en.rights, en.pfn, pte), pending };
  };
}

/** How a TLB entry with R_* `rights` for frame `pfn` grants more than leaf `pte` (null: no PTE), or null when it does not. */
function tlbBeyondPte(rights: number, pfn: number, pte: Pte | null): string | null {
  if (!pte || !pte.present) return 'the PTE is not present';
  if (pte.pfn !== pfn) return `the PTE maps frame ${pte.pfn}`;
  if (rights & R_WRITE && !pte.rw) return 'the PTE is read-only';
  if (rights & R_USER && !pte.user) return 'the PTE is supervisor-only';
  if (!(rights & R_XD) && pte.nx) return 'the PTE is not executable';
  return null;
}
