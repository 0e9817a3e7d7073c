/**
 * Cost accounting: the events of a run turned into cycles by a profile's figures (keys.ts says
 * which figure each event is charged), each charge added once to the whole run and to the CPU,
 * the task, the syscall and the user operation it belongs to, with the count behind it.
 *
 * Attribution: an event that names a task is the task's, another the task current on its CPU
 * (the System stamps it in the event's `tid`; an IPI's receipt is the interrupted task's). A task's syscall runs from its `syscall_enter`
 * to its return to user mode (the SYSRET or IRET step), so the exit path and signal delivery on
 * the way out are the syscall's. A task's operation is the one at its ip (Task.opFn, opIndex):
 * from the fetch to the next fetch, kernel work on the operation's behalf included.
 *
 * The paging-structure caches are approximated here, not in the processor model: per CPU, the
 * upper-level entries the last walks used, tagged by PCID, dropped as SDM §4.10.4 drops them
 * (INVLPG and INVPCID type 0: the PCID's; a CR3 write that flushes: the new PCID's; INVPCID
 * types 1–3 and CR4 flushes as their TLB entries). A walk pays `walk_leaf` and `walk_level` for
 * each upper level the caches did not hold.
 */
import type { ImageHandle, IsolabEvent, OpCursor, ProgramPosition, System } from '../system.js';
import { OP_BYTES, TEXT_BASE } from '../user/program.js';
import { CATEGORIES, COST_KEYS, COST_NAMES, type Category, type CostName } from './keys.js';
import type { Profile } from './table.js';

const N = COST_NAMES.length;
const ix = (n: CostName): number => COST_NAMES.indexOf(n);

const USER_OP = ix('user_op');
const SYSCALL = ix('syscall');
const SWAPGS = ix('swapgs');
const STACK_SWITCH = ix('stack_switch');
const STACK_COPY_8 = ix('stack_copy_8');
const IRET = ix('iret');
const EXCEPTION = ix('exception');
const PAGE_FAULT = ix('page_fault');
const PAGE_ZERO = ix('page_zero');
const PAGE_COPY = ix('page_copy');
const CR3_NOFLUSH = ix('cr3_write_noflush');
const CR3_FLUSH = ix('cr3_write_flush');
const CR_WRITE = ix('cr_write');
const WALK_LEAF = ix('walk_leaf');
const WALK_LEVEL = ix('walk_level');
const WALK_RESTART = ix('walk_restart');
const AD_UPDATE = ix('ad_update');
const INVLPG = ix('invlpg');
const INVPCID_ADDR = ix('invpcid_addr');
const INVPCID_CTX = ix('invpcid_ctx');
const INVPCID_ALL = ix('invpcid_all');
const CR4_FLUSH = ix('cr4_flush');
const IPI_SEND = ix('ipi_send');
const IPI_RECEIVE = ix('ipi_receive');
const IPI_WAIT = ix('ipi_wait');
const LOCK_RMW = ix('lock_rmw');
const CMPXCHG = ix('cmpxchg');
const CMPXCHG_RETRY = ix('cmpxchg_retry');
const PTE_STORE = ix('pte_store');
const FORK = ix('fork');
const FORK_PTE = ix('fork_pte');
const WRPKRU = ix('wrpkru');
const RDPKRU = ix('rdpkru');
const XSAVE = ix('xsave');
const XRSTOR = ix('xrstor');
const XSTATE_COMPONENT = ix('xstate_component');
const CONTEXT_SWITCH = ix('context_switch');
const SWITCH_MM = ix('switch_mm');
const SIGNAL_DELIVER = ix('signal_deliver');
const LLDT = ix('lldt');
const RECLAIM_PAGE = ix('reclaim_page');

/**
 * How many times each cost was charged, one slot per cost name: what the run, a CPU, a task or
 * a syscall was charged. Cycles are counts times the profile's figures (`breakdown`), so a
 * charge is one addition.
 */
export class Bucket {
  readonly counts = new Float64Array(N);

  add(i: number, count: number): void {
    this.counts[i] += count;
  }

  /** Calls `f` for each cost charged, in the order of COST_NAMES. */
  forEach(f: (i: number, count: number) => void): void {
    for (let i = 0; i < N; i++) if (this.counts[i] !== 0) f(i, this.counts[i]);
  }
}

/**
 * What each user operation was charged, and how many times it completed. An operation is an
 * id for an address in a program image; its names are looked up only when it is reported
 * (key). Its charges are a short list (an operation is charged a handful of costs) in flat
 * arrays shared by all operations, because a long run has many operations (a `repeat` is
 * unrolled) and one object per operation would be most of the accounting's work.
 */
export class OpTable {
  private readonly image: ImageHandle[] = [];
  private readonly addr: number[] = [];
  /** Completions (`op` events). */
  readonly runs: number[] = [];
  /** Each operation's first charge entry, -1 for none. */
  private readonly head: number[] = [];
  /** Charge entries: the cost, its count, and the operation's next entry (-1 ends). */
  private readonly cost: number[] = [];
  private readonly counts: number[] = [];
  private readonly next: number[] = [];
  private readonly pos: ProgramPosition = { image: '', fn: '', index: -1, op: '', fetchedFn: '', fetchedIndex: -1, fetchedOp: '' };

  /** `names` fills in the names of the operation at an address of an image (System.operationAt). */
  constructor(private readonly names: (image: ImageHandle, addr: number, into: ProgramPosition) => boolean) {}

  get size(): number {
    return this.image.length;
  }

  /** A new operation's id: the one at `addr` of `image`. */
  add(image: ImageHandle, addr: number): number {
    this.image.push(image);
    this.addr.push(addr);
    this.runs.push(0);
    this.head.push(-1);
    return this.image.length - 1;
  }

  /** Charges operation `id` `count` of cost `i`. */
  charge(id: number, i: number, count: number): void {
    let e = this.head[id];
    let last = -1;
    while (e >= 0) {
      if (this.cost[e] === i) {
        this.counts[e] += count;
        return;
      }
      last = e;
      e = this.next[e];
    }
    const n = this.cost.length;
    this.cost.push(i);
    this.counts.push(count);
    this.next.push(-1);
    if (last < 0) this.head[id] = n;
    else this.next[last] = n;
  }

  /** Operation `id`'s charges as a bucket. */
  bucket(id: number): Bucket {
    const b = new Bucket();
    for (let e = this.head[id]; e >= 0; e = this.next[e]) b.add(this.cost[e], this.counts[e]);
    return b;
  }

  /** `image: fn[index] op` (an address in no function: `image: 0xaddr`). */
  key(id: number): string {
    const p = this.pos;
    const image = this.image[id];
    if (!this.names(image, this.addr[id], p)) return `${image.name}: 0x${this.addr[id].toString(16)}`;
    return opKey(p.image, p.fn, p.index, p.op);
  }
}

/** One figure of a breakdown: a cost name, how many times it was charged, and the cycles. */
export interface CostItem {
  name: CostName;
  category: Category;
  count: number;
  cycles: number;
}

/** A bucket as a report: total cycles and time, by category, and the items with a count. */
export interface CostBreakdown {
  cycles: number;
  /** cycles / clock. */
  ns: number;
  byCategory: Partial<Record<Category, number>>;
  items: CostItem[];
}

/** A bucket's report under `profile`: each count times the profile's figure, time at its clock. */
export function breakdown(b: Bucket, profile: Profile): CostBreakdown {
  const items: CostItem[] = [];
  const byCategory: Partial<Record<Category, number>> = {};
  let cycles = 0;
  b.forEach((i, count) => {
    const name = COST_NAMES[i];
    const category = COST_KEYS[name].category;
    const c = count * profile.costs[name].cycles;
    items.push({ name, category, count, cycles: c });
    cycles += c;
    byCategory[category] = (byCategory[category] ?? 0) + c;
  });
  const ordered: Partial<Record<Category, number>> = {};
  for (const c of CATEGORIES) if (byCategory[c] !== undefined) ordered[c] = byCategory[c];
  return { cycles, ns: cycles / profile.clockGhz, byCategory: ordered, items };
}

/** Per-CPU paging-structure caches: one set of upper-level entries per level, keyed by PCID and prefix. */
class PagingStructureCaches {
  /** Level 2 (PDE), 3 (PDPTE), 4 (PML4E), 5 (PML5E): keys `pcid * 2^40 + prefix`. */
  private readonly levels: Set<number>[] = [new Set(), new Set(), new Set(), new Set(), new Set(), new Set()];

  /** How many of a `levels`-level walk's upper entries (levels 2..levels) for hi:lo under `pcid` were not cached; the walk's entries are cached after it. */
  walk(pcid: number, hi: number, lo: number, levels: number, reads: number): number {
    // The walk read `reads` entries from the top; with the caches, the deepest cached level's
    // entry lets it skip every level above. Only levels it actually read are counted.
    let missing = 0;
    const vpnHi = hi & 0xffff;
    for (let level = 2; level <= levels; level++) {
      if (levels - level >= reads) continue;
      const shift = 12 + 9 * (level - 1);
      const prefix = shift >= 32 ? Math.floor(vpnHi / 2 ** (shift - 32)) : vpnHi * 2 ** (32 - shift) + (lo >>> shift);
      const key = pcid * 2 ** 40 + prefix;
      const set = this.levels[level];
      if (set.has(key)) break;
      missing++;
      if (set.size >= 64) set.clear();
      set.add(key);
    }
    return missing;
  }

  /** Drops the entries of `pcid` (every PCID when negative). */
  drop(pcid: number): void {
    for (const set of this.levels) {
      if (pcid < 0) set.clear();
      else for (const key of set) if (Math.floor(key / 2 ** 40) === pcid) set.delete(key);
    }
  }
}

/** What a task is doing, as far as attribution goes. */
interface TaskState {
  /** The bucket of the syscall it is in (from syscall_enter to its return to user mode), or null. */
  sysBucket: Bucket | null;
  /** The operation its charges of event `seq` go to (looked up once per event; -1: none), and its image and address. */
  seq: number;
  op: number;
  opImage: ImageHandle | null;
  opAddr: number;
  /** The operation ids of image `opImage` by (address - TEXT_BASE) / OP_BYTES, -1 for none yet. */
  ids: Int32Array | null;
  /** After a successful execve, until the return to user mode: the execve operation of the old image keeps the charges. */
  pinned: boolean;
}

/** The accounting of one run under one profile. */
export class CostAccountant {
  readonly cpus: Bucket[];
  /** Per task, by tid (0: what ran with no task). */
  readonly tasks: (Bucket | undefined)[] = [];
  readonly syscalls = new Map<string, Bucket>();
  /** Calls per syscall name (syscall_enter events). */
  readonly syscallCalls = new Map<string, number>();
  /** Per operation, in the order they were first charged or completed. */
  readonly ops: OpTable;
  /** Their ids by image, then by (address - TEXT_BASE) / OP_BYTES. */
  private readonly opIds = new Map<ImageHandle, Int32Array>();
  private readonly state: (TaskState | undefined)[] = [];
  /** Events seen: the key of TaskState.seq. */
  private seq = 0;
  /**
   * Whether the event being charged may find its task at another operation than at its last
   * charge. A task's ip moves only in user mode (or on kernel paths that emit events of their
   * own: a signal delivered, execve, a syscall's end); every way back into the kernel begins
   * with `syscall_enter` or the IDT entry's `hw_frame`. The entry code's other steps and the CR3
   * writes therefore keep the operation found last, which spares the look-up on most events.
   */
  private mayHaveMoved = true;
  private readonly psc: PagingStructureCaches[];
  /** Per CPU: a shootdown began and has sent no IPI yet (its wait is charged with the first). */
  private readonly shootdownWaiting: boolean[];
  /** How fork write-protects a PTE (the kernel option fork_wrprotect): the cost charged per entry. */
  private readonly wrprotectCost: number;
  /** Where a task is in its program (System.opCursor), filled in place. */
  private readonly cursor: OpCursor = { image: null, here: -1, fetched: -1 };

  constructor(
    private readonly sys: System,
    readonly profile: Profile,
  ) {
    const how = sys.kernelOptions.fork_wrprotect;
    this.wrprotectCost = how === 'cmpxchg' ? CMPXCHG : how === 'atomic_clear' ? LOCK_RMW : PTE_STORE;
    const cpus = sys.machine.cpus.length;
    this.cpus = Array.from({ length: cpus }, () => new Bucket());
    this.psc = Array.from({ length: cpus }, () => new PagingStructureCaches());
    this.shootdownWaiting = Array.from({ length: cpus }, () => false);
    this.ops = new OpTable((image, addr, into) => sys.operationAt(image, addr, into));
  }

  /** The whole run: every CPU's charges added up. */
  get total(): Bucket {
    const t = new Bucket();
    for (const b of this.cpus) b.forEach((i, count) => t.add(i, count));
    return t;
  }

  /** Starts listening to the run's events; returns the function that stops. */
  attach(): () => void {
    return this.sys.events.subscribe((e) => this.onEvent(e));
  }

  /** Charges `count` of cost `i` on CPU `cpu` to task `tid` (0: none), its syscall and operation. */
  private charge(cpu: number, tid: number, i: number, count: number): void {
    if (count === 0) return;
    this.cpus[cpu].add(i, count);
    const tb = (this.tasks[tid] ??= new Bucket());
    tb.add(i, count);
    if (tid === 0) return;
    const s = this.taskState(tid);
    if (s.sysBucket !== null) s.sysBucket.add(i, count);
    if (s.seq !== this.seq) {
      s.seq = this.seq;
      if (this.mayHaveMoved || s.op < 0) s.op = this.opOfTask(tid, s);
    }
    if (s.op >= 0) this.ops.charge(s.op, i, count);
  }

  private taskState(tid: number): TaskState {
    return (this.state[tid] ??= { sysBucket: null, seq: -1, op: -1, opImage: null, opAddr: -1, ids: null, pinned: false });
  }

  /**
   * The operation task `tid` is at, or -1 for a task without a program (a kernel thread). In
   * a syscall, the operation that made it (the ip has moved past it); otherwise the one at the
   * ip: a fault of a fetch or data access is the operation's.
   */
  private opOfTask(tid: number, s: TaskState): number {
    return this.opAt(tid, s, s.sysBucket !== null);
  }

  /**
   * The id of the operation at task `tid`'s ip, or with `fetched` of the one it fetched last;
   * -1 when it has no program. By image and address: its names are looked up only when it is
   * reported (OpTable.key).
   */
  private opAt(tid: number, s: TaskState, fetched: boolean): number {
    if (s.pinned) return s.op;
    const c = this.cursor;
    if (!this.sys.opCursor(tid, c)) return -1;
    const image = c.image!;
    const addr = fetched ? c.fetched : c.here;
    if (addr === s.opAddr && image === s.opImage && s.op >= 0) return s.op;
    let ids = image === s.opImage ? s.ids : null;
    if (ids === null) {
      ids = this.opIds.get(image) ?? null;
      if (ids === null) this.opIds.set(image, (ids = new Int32Array(256).fill(-1)));
    }
    const at = ((addr - TEXT_BASE) / OP_BYTES) | 0;
    if (at >= ids.length) {
      const grown = new Int32Array(Math.max(ids.length * 2, at + 1)).fill(-1);
      grown.set(ids);
      this.opIds.set(image, (ids = grown));
    }
    s.ids = ids;
    let id = ids[at];
    if (id < 0) ids[at] = id = this.ops.add(image, addr);
    s.opImage = image;
    s.opAddr = addr;
    s.op = id;
    return id;
  }

  /** The task current on `cpu` (0: idle). */
  private currentOn(cpu: number): number {
    return this.sys.current(cpu);
  }

  /** Charges one event (keys.ts says what for which). */
  onEvent(e: IsolabEvent): void {
    this.seq++;
    // The kind read once: events come in many shapes, so each read of it is a slow, megamorphic one.
    const type = e.type;
    if (type === 'tlb_hit') return;
    this.mayHaveMoved = type === 'entry' ? e.what === 'hw_frame' : type !== 'cr_write';
    // The most frequent kinds first: the entry code's steps, operations, CR3 writes.
    switch (type) {
      case 'entry':
        switch (e.what) {
          case 'swapgs':
            this.charge(e.cpu, e.tid, SWAPGS, 1);
            break;
          case 'stack_switch':
            this.charge(e.cpu, e.tid, STACK_SWITCH, 1);
            break;
          case 'iret':
            this.charge(e.cpu, e.tid, IRET, 1);
            break;
        }
        if (e.bytes > 0) this.charge(e.cpu, e.tid, STACK_COPY_8, e.bytes / 8);
        // The return to user mode ends the syscall the task was in.
        if (e.what === 'sysret' || e.what === 'iret') {
          const st = this.taskState(e.tid);
          st.sysBucket = null;
          st.pinned = false;
        }
        return;
      case 'op': {
        const r = e.record;
        const st = this.taskState(r.tid);
        const ops = this.ops;
        // The operation that completed is the one the task fetched last; its charges below go to it too.
        const id = this.opAt(r.tid, st, true);
        st.seq = this.seq;
        if (id < 0) return;
        ops.runs[id]++;
        if (r.op === 'syscall' || r.signal) return;
        // A work operation stands for `value` instructions.
        this.charge(e.cpu, r.tid, USER_OP, r.op === 'work' ? Number(r.value ?? 0n) : 1);
        if (r.op === 'rdpkru') this.charge(e.cpu, r.tid, RDPKRU, 1);
        return;
      }
      case 'cr_write':
        if (e.reg === 'cr3') this.charge(e.cpu, e.tid, e.noflush ? CR3_NOFLUSH : CR3_FLUSH, 1);
        else this.charge(e.cpu, e.tid, CR_WRITE, 1);
        return;
      case 'syscall_enter': {
        const st = this.taskState(e.tid);
        let sb = this.syscalls.get(e.name);
        if (!sb) this.syscalls.set(e.name, (sb = new Bucket()));
        st.sysBucket = sb;
        this.syscallCalls.set(e.name, (this.syscallCalls.get(e.name) ?? 0) + 1);
        this.charge(e.cpu, e.tid, SYSCALL, 1);
        return;
      }
      case 'page_fault':
        this.charge(e.cpu, e.tid, EXCEPTION, 1);
        this.charge(e.cpu, e.tid, PAGE_FAULT, 1);
        if (e.outcome === 'mapped') this.charge(e.cpu, e.tid, PAGE_ZERO, 1);
        return;
      case 'control_protection':
        this.charge(e.cpu, e.tid, EXCEPTION, 1);
        return;
      case 'page_copy':
        this.charge(e.cpu, e.tid, PAGE_COPY, 1);
        return;
      case 'walk': {
        const cpu = this.sys.machine.cpus[e.cpu];
        const tid = e.tid;
        this.charge(e.cpu, tid, WALK_LEAF, 1);
        this.charge(e.cpu, tid, WALK_LEVEL, this.psc[e.cpu].walk(cpu.pcid, e.hi, e.lo, e.levels, e.reads));
        this.charge(e.cpu, tid, WALK_RESTART, e.restarts);
        return;
      }
      case 'ad_set':
        this.charge(e.cpu, e.tid, AD_UPDATE, 1);
        return;
      case 'tlb_flush':
        this.flush(e.cpu, e.tid, e.cause, e.pcid);
        return;
      case 'tlb_shootdown':
        this.shootdownWaiting[e.cpu] = true;
        return;
      case 'ipi': {
        const from = e.tid;
        this.charge(e.from, from, IPI_SEND, 1);
        if (this.shootdownWaiting[e.from]) {
          this.shootdownWaiting[e.from] = false;
          this.charge(e.from, from, IPI_WAIT, 1);
        }
        this.charge(e.to, this.currentOn(e.to), IPI_RECEIVE, 1);
        return;
      }
      case 'fork': {
        this.charge(e.cpu, e.parent, FORK, 1);
        this.charge(e.cpu, e.parent, FORK_PTE, e.ptes);
        this.charge(e.cpu, e.parent, this.wrprotectCost, e.wrprotected);
        return;
      }
      case 'pte_retry':
        this.charge(e.cpu, e.tid, CMPXCHG_RETRY, 1);
        return;
      case 'pkru_write':
        this.charge(e.cpu, e.tid, WRPKRU, 1);
        return;
      case 'context_switch': {
        this.charge(e.cpu, e.from, CONTEXT_SWITCH, 1);
        const comps = this.profile.xstateComponents;
        if (this.isUser(e.from)) {
          this.charge(e.cpu, e.from, XSAVE, 1);
          this.charge(e.cpu, e.from, XSTATE_COMPONENT, comps);
        }
        if (this.isUser(e.to)) {
          this.charge(e.cpu, e.to, XRSTOR, 1);
          this.charge(e.cpu, e.to, XSTATE_COMPONENT, comps);
        }
        return;
      }
      case 'switch_mm':
        this.charge(e.cpu, e.tid, SWITCH_MM, 1);
        return;
      case 'signal':
        if (e.action === 'handler') this.charge(e.cpu, e.tid, SIGNAL_DELIVER, 1);
        return;
      case 'ldt_load':
        this.charge(e.cpu, e.tid, LLDT, 1);
        return;
      case 'reclaim':
        this.charge(e.cpu, e.tid, RECLAIM_PAGE, 1);
        return;
      case 'exit':
        this.taskState(e.tid).sysBucket = null;
        return;
      case 'exec': {
        // A new image: an address no longer names the same operation. The rest of execve is its operation's, in the old image.
        const st = this.taskState(e.tid);
        st.opImage = null;
        st.opAddr = -1;
        st.ids = null;
        st.pinned = st.op >= 0;
        return;
      }
      default:
        return;
    }
  }

  /** A TLB flush: its cost, and what it drops from the paging-structure caches. */
  private flush(cpu: number, tid: number, cause: string, pcid: number): void {
    const psc = this.psc[cpu];
    switch (cause) {
      case 'invlpg':
        this.charge(cpu, tid, INVLPG, 1);
        psc.drop(pcid);
        return;
      case 'invpcid_addr':
        this.charge(cpu, tid, INVPCID_ADDR, 1);
        psc.drop(pcid);
        return;
      case 'invpcid_ctx':
        this.charge(cpu, tid, INVPCID_CTX, 1);
        psc.drop(pcid);
        return;
      case 'invpcid_all':
      case 'invpcid_nonglobal':
        this.charge(cpu, tid, INVPCID_ALL, 1);
        psc.drop(-1);
        return;
      case 'cr4':
        this.charge(cpu, tid, CR4_FLUSH, 1);
        psc.drop(-1);
        return;
      case 'cr3':
        // The CR3 write is charged as such; its flush drops the new PCID's cached entries.
        psc.drop(pcid);
        return;
      default:
        // page_fault, dirty_assist, evict: the processor's own, no instruction to charge.
        return;
    }
  }

  /** Whether `tid` is a user task (it has extended state to save and restore). */
  private isUser(tid: number): boolean {
    if (tid === 0) return false;
    const t = this.sys.taskInfo(tid);
    return t !== undefined && t.image !== null;
  }
}

/** The key of an operation in the report: `image: fn[index] op`. */
export function opKey(image: string, fn: string, index: number, op: string): string {
  return `${image}: ${fn}[${index}] ${op}`;
}
