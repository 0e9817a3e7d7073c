/**
 * The `read_stability` invariant: a value a task read from private anonymous memory does not
 * change until a task of the same address space stores to it, or something that may discard or
 * rewrite it happens in that address space. It says nothing of how the kernel tracks
 * dirtiness (D, SavedDirty, PG_dirty, the swap cache), only what a program can see, so it
 * catches a write lost to reclaim however it was lost (docs/findings.md).
 *
 * What may change a value without a store, and so forgets what the address space has read:
 * mmap, munmap and madvise other than MADV_COLD and MADV_PAGEOUT (MADV_FREE and MADV_DONTNEED
 * may discard; a mapping may be replaced), execve, a signal delivered to one of its tasks (the
 * frame is written on its stack), and every syscall that may write user memory (any not listed
 * in PURE below). Only loads in private mappings are judged: a shared page may be stored to by
 * another process.
 *
 * MADV_FREE makes a page's contents volatile until the next store to it: the kernel may drop
 * the page and a later read give 0. Such a page's values are not remembered, unless the value
 * read is one a store put there after the MADV_FREE (then the program has rewritten the page
 * and it must stay). A child of fork inherits the pages that were volatile when fork began, and
 * the values stored since: a store racing with fork may or may not be in the child's copy of a
 * page, and the value the child reads says which.
 */
import type { IsolabEvent, System } from '../system.js';

/** Syscalls that write no user memory of their caller's address space (their arguments aside). */
const PURE: ReadonlySet<string> = new Set(['getpid', 'gettid', 'sched_yield', 'kill', 'tgkill', 'fork', 'vfork', 'exit', 'exit_group', 'mprotect', 'pkey_mprotect', 'pkey_alloc', 'pkey_free', 'sched_setaffinity']);
/** madvise advice values that must keep every value (mm/madvise.c: they only move pages). */
const MADV_COLD = 20;
const MADV_PAGEOUT = 21;
const MADV_FREE = 8;
const PAGE = 4096n;

/** One remembered read: its size and value, and when it was made. */
interface Seen {
  size: number;
  value: bigint;
  step: number;
  tid: number;
}

export class ReadStability {
  /** By address space: address → the last value a task of it read there. */
  private readonly seen = new Map<number, Map<bigint, Seen>>();
  /** By address space: pages (address / 4096) given to MADV_FREE and not stored to since. */
  private readonly volatile = new Map<number, Set<bigint>>();
  /** By address space: address → values stored there since its page's MADV_FREE. */
  private readonly storedSinceFree = new Map<number, Map<bigint, Set<bigint>>>();
  /** By forking task: its address space's volatile pages when fork began. */
  private readonly atForkStart = new Map<number, Set<bigint>>();
  /** The first violation, once found. */
  violation: string | null = null;

  constructor(private readonly sys: System) {}

  /** Follows one event of the run. */
  onEvent(e: IsolabEvent): void {
    if (e.type === 'op') this.onOp(e.record.tid, e.record.op, e.record.addr, e.record.value, e.record.signal !== undefined, this.sizeOf(e.record.tid, e.record.fn, e.record.index));
    else if (e.type === 'syscall_enter') {
      if (e.name === 'fork' || e.name === 'vfork' || e.name === 'clone') {
        const mm = this.mmOf(e.tid);
        if (mm !== null) this.atForkStart.set(e.tid, new Set(this.volatile.get(mm) ?? []));
      }
      if (e.name === 'madvise' && Number(e.args[2]) === MADV_FREE) this.madvFree(e.tid, e.args[0], e.args[1]);
      if (PURE.has(e.name)) return;
      if (e.name === 'madvise' && (Number(e.args[2]) === MADV_COLD || Number(e.args[2]) === MADV_PAGEOUT)) return;
      if (e.name === 'wait4' && e.args[1] === 0n) return;
      this.forget(e.tid);
    } else if (e.type === 'signal') this.forget(e.tid);
    else if (e.type === 'exec') this.forget(e.tid);
    else if (e.type === 'fork') this.onFork(e.parent, e.child);
  }

  /** MADV_FREE over [start, start + len): its pages become volatile in the caller's address space. */
  private madvFree(tid: number, start: bigint, len: bigint): void {
    const mm = this.mmOf(tid);
    if (mm === null || len > 1n << 40n) return;
    let v = this.volatile.get(mm);
    if (!v) this.volatile.set(mm, (v = new Set()));
    const stored = this.storedSinceFree.get(mm);
    for (let p = start / PAGE; p < (start + len + PAGE - 1n) / PAGE; p++) {
      v.add(p);
      if (stored) for (const a of [...stored.keys()]) if (a / PAGE === p) stored.delete(a);
    }
  }

  /** A child with an address space of its own inherits what was volatile when fork began and what was stored since. */
  private onFork(parent: number, child: number): void {
    const from = this.mmOf(parent);
    const to = this.mmOf(child);
    const start = this.atForkStart.get(parent);
    this.atForkStart.delete(parent);
    if (from === null || to === null || from === to) return;
    this.volatile.set(to, new Set(start ?? []));
    const stored = this.storedSinceFree.get(from);
    if (stored) this.storedSinceFree.set(to, new Map([...stored].map(([a, vs]) => [a, new Set(vs)])));
  }

  private mmOf(tid: number): number | null {
    return this.sys.taskInfo(tid)?.mm ?? null;
  }

  private forget(tid: number): void {
    const mm = this.mmOf(tid);
    if (mm !== null) this.seen.delete(mm);
  }

  /** The access size of operation `index` of function `fn` in task `tid`'s image (8 unless the operation says). */
  private sizeOf(tid: number, fn: string, index: number): number {
    const op = this.sys.task(tid)?.image?.byName.get(fn)?.ops[index] as { size?: number } | undefined;
    return op?.size ?? 8;
  }

  private onOp(tid: number, op: string, addr: bigint | undefined, value: bigint | undefined, faulted: boolean, size: number): void {
    if (addr === undefined || faulted) return;
    const mm = this.mmOf(tid);
    if (mm === null) return;
    let byAddr = this.seen.get(mm);
    if (op === 'xsave' || op === 'xsavec' || op === 'rstorssp') {
      // Writes of up to 2696 bytes (or a shadow-stack token): forget every read, as a syscall that may write.
      this.forget(tid);
      return;
    }
    if (op === 'store' || op === 'wrss') {
      // A store of any size forgets every read it may overlap (at most 8 bytes either side).
      if (byAddr) for (const a of [...byAddr.keys()]) if (a > addr - 8n && a < addr + 8n) byAddr.delete(a);
      // ... and its page is the program's again; the value it left is remembered as rewritten.
      const v = this.volatile.get(mm);
      if (v) {
        v.delete(addr / PAGE);
        const now = this.sys.readUser(this.sys.taskInfo(tid)!.pid, addr, size);
        if (now !== null) {
          let stored = this.storedSinceFree.get(mm);
          if (!stored) this.storedSinceFree.set(mm, (stored = new Map()));
          let vs = stored.get(addr);
          if (!vs) stored.set(addr, (vs = new Set()));
          vs.add(now);
        }
      }
      return;
    }
    if (op !== 'load' || value === undefined) return;
    // A volatile page: a value stored since MADV_FREE makes it the program's again; any other may go.
    const vol = this.volatile.get(mm);
    if (vol?.has(addr / PAGE)) {
      if (!this.storedSinceFree.get(mm)?.get(addr)?.has(value)) return;
      vol.delete(addr / PAGE);
    }
    const vma = this.sys.maps(this.sys.taskInfo(tid)!.pid).find((v) => addr >= BigInt(v.start) && addr < BigInt(v.end));
    if (!vma || vma.perms[3] !== 'p') return;
    const before = byAddr?.get(addr);
    if (before && before.size === size && before.value !== value && this.violation === null) {
      this.violation = `task ${tid} read 0x${value.toString(16)} at 0x${addr.toString(16)}, where task ${before.tid} of the same address space read 0x${before.value.toString(16)} at step ${before.step}; no task of it stored there since and nothing discarded it: a write was lost`;
    }
    if (!byAddr) this.seen.set(mm, (byAddr = new Map()));
    byAddr.set(addr, { size, value, step: this.sys.now, tid });
  }
}
