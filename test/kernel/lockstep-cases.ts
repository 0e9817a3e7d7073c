/**
 * The cases of the basic lockstep tests (lockstep.ts): fault against fault, a COW page written
 * by two threads, fork against a write fault, fork against fork, munmap against a fault. Each
 * is a row: the programs, the racers (a CPU, and the stretch of its program that races), the
 * pages watched, and what the program itself says about the values it reads. The expected
 * outcomes are not listed per interleaving: the judge derives them from the PTE changes each
 * CPU made (mm/memory.c's meanings), so an interleaving the kernel handles in a new way (a fault
 * that backs out, say) is judged the same way. The tests run them in three files
 * (lockstep.test.ts, lockstep-cow.test.ts, lockstep-fork.test.ts), each well inside the test
 * runner's per-file time limit.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op, Program } from '../../src/user/program.js';
import { describeFindings, describePte, lockstep, ptePfn, ptePresent, type Finding, type LockstepCase, type LockstepResult, type Run } from './lockstep.js';

const CLONE_VM = 0x100, CLONE_SIGHAND = 0x800, CLONE_THREAD = 0x10000;
const THREAD_FLAGS = CLONE_VM | CLONE_SIGHAND | CLONE_THREAD;
const SIGSEGV = 11, SEGV_MAPERR = 1;
const PAGE = 4096;
/**
 * Preemptions per interleaving (lockstep.ts): every interleaving with at most this many is run.
 * Without a bound the traces run to tens of thousands per case (read against read has 51,564),
 * out of reach at a few milliseconds each. Two let one racer stop anywhere, the other run up to
 * anywhere, and the first go on: a racer's stretch can fall between any two steps of the
 * other's, or split around one of them.
 */
const PREEMPTIONS = preemptionBound(process.env.ISOLAB_LOCKSTEP_PREEMPTIONS);

/** The bound: 2 by default; ISOLAB_LOCKSTEP_PREEMPTIONS=N for another, or `all` for every interleaving (minutes per case). */
function preemptionBound(env: string | undefined): number {
  if (env === undefined || env === '') return 2;
  if (env === 'all') return Infinity;
  const n = Number(env);
  if (!Number.isInteger(n) || n < 0) throw new Error(`ISOLAB_LOCKSTEP_PREEMPTIONS: expected a non-negative integer or 'all', got ${JSON.stringify(env)}`);
  return n;
}

const mmap = (into: string, pages = 1): Op => ({ op: 'syscall', name: 'mmap', args: [0, pages * PAGE, 3, 0x22, -1, 0], into });
const load = (into: string, addr = '$buf'): Op => ({ op: 'load', addr, into });
const store = (value: number, addr = '$buf'): Op => ({ op: 'store', addr, value });
/** Work for the main thread after its stretch, so that its exit_group comes after the other thread's last load. */
const linger: Op[] = Array.from({ length: 3 }, (): Op => ({ op: 'syscall', name: 'getpid' }));

/** The single process of the thread cases. */
const only = (main: Op[]): LockstepCase['processes'] => [{ cpu: 0, program: { main } }];

// ---------------------------------------------------------------------------------------------
// Reading what the threads did.

/** The value op `index` of `fn` loaded (any task), or a message. */
function loaded(r: Run, fn: string, index: number): bigint | string {
  const rec = r.k.log.find((x) => x.fn === fn && x.index === index);
  if (!rec) return `${fn}[${index}] never ran`;
  if (rec.value === undefined) return `${fn}[${index}] got ${rec.signal ? `signal ${rec.signal.signo}` : 'no value'}`;
  return rec.value;
}

/** Position in the log of op `index` of `fn` (the order operations completed in), or -1. */
function completed(r: Run, fn: string, index: number): number {
  return r.k.log.findIndex((x) => x.fn === fn && x.index === index);
}

/** Checks each [fn, index, expected] load; the first mismatch as a message. */
function expectLoads(r: Run, want: [string, number, bigint][]): string | null {
  for (const [fn, index, v] of want) {
    const got = loaded(r, fn, index);
    if (typeof got === 'string') return got;
    if (got !== v) return `${fn}[${index}] loaded ${got}, expected ${v}`;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Fault against fault: two threads of one process touch the same fresh anonymous page.

const T = 'main.1.child';

/** main: mmap; clone the thread onto CPU 1; `a`; load m. The thread: `b`; load t. */
function twoThreads(name: string, a: Op, b: Op, check: (r: Run) => string | null): LockstepCase {
  return {
    name,
    processes: only([mmap('buf'), { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], into: 'tid', child: [b, load('t')], cpu: 1 }, a, load('m'), ...linger]),
    racers: [{ cpu: 0, fn: 'main', from: 2 }, { cpu: 1, fn: T, from: 0 }],
    watch: ['buf'],
    preemptions: PREEMPTIONS,
    check,
  };
}

/** What a load that raced a store of `v` may read: 0 if it completed first, else `v`. */
function raced(r: Run, loadAt: [string, number], storeAt: [string, number], v: bigint): string | null {
  const got = loaded(r, ...loadAt);
  if (typeof got === 'string') return got;
  const want = completed(r, ...loadAt) < completed(r, ...storeAt) ? 0n : v;
  return got === want ? null : `${loadAt[0]}[${loadAt[1]}] loaded ${got}; it completed ${want === 0n ? 'before' : 'after'} the store of ${v}, so it should read ${want}`;
}

export const FAULT_CASES: LockstepCase[] = [
  twoThreads('read against read', load('a'), load('b'), (r) => expectLoads(r, [['main', 2, 0n], [T, 0, 0n], ['main', 3, 0n], [T, 1, 0n]])),
  twoThreads('read against write', load('a'), store(2), (r) => raced(r, ['main', 2], [T, 0], 2n) ?? expectLoads(r, [['main', 3, 2n], [T, 1, 2n]])),
  twoThreads('write against read', store(1), load('b'), (r) => raced(r, [T, 0], ['main', 2], 1n) ?? expectLoads(r, [['main', 3, 1n], [T, 1, 1n]])),
  twoThreads('write against write', store(1), store(2), (r) => {
    const last = completed(r, 'main', 2) > completed(r, T, 0) ? 1n : 2n;
    return expectLoads(r, [['main', 3, last], [T, 1, last]]);
  }),
];

/**
 * A COW page written by two threads: main stores 1, forks a child (which, on CPU 0, runs only
 * once main is gone, and loads the page), clones a thread onto CPU 1; then main stores 2 while
 * the thread stores 3. Both threads then read the last store; the child still reads 1.
 */
const COW_CHILD = 'main.2.child';
const COW_THREAD = 'main.3.child';
export const COW_TWO_WRITERS: LockstepCase = {
  name: 'COW page after fork, written by two threads',
  processes: only([
    mmap('buf'),
    store(1),
    { op: 'syscall', name: 'fork', into: 'pid', child: [load('c')], cpu: 0 },
    { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], into: 'tid', child: [store(3), load('t')], cpu: 1 },
    store(2),
    load('m'),
    ...linger,
  ]),
  racers: [{ cpu: 0, fn: 'main', from: 4 }, { cpu: 1, fn: COW_THREAD, from: 0 }],
  watch: ['buf'],
  preemptions: PREEMPTIONS,
  check: (r) => {
    const last = completed(r, 'main', 4) > completed(r, COW_THREAD, 0) ? 2n : 3n;
    return expectLoads(r, [['main', 5, last], [COW_THREAD, 1, last], [COW_CHILD, 0, 1n]]);
  },
};

// ---------------------------------------------------------------------------------------------
// Fork against fault: a thread writes the page while the main thread forks.

const FORK_CHILD = 'main.3.child';
const FORK_THREAD = 'main.2.child';
export const FORK_AGAINST_WRITE: LockstepCase = {
  name: 'fork against a write fault on the page it write-protects',
  processes: only([
    mmap('buf'),
    store(1),
    { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], into: 'tid', child: [store(2), load('t')], cpu: 1 },
    { op: 'syscall', name: 'fork', into: 'pid', child: [load('c')], cpu: 0 },
    load('m'),
    ...linger,
  ]),
  racers: [{ cpu: 0, fn: 'main', from: 3 }, { cpu: 1, fn: FORK_THREAD, from: 0 }],
  watch: ['buf'],
  preemptions: PREEMPTIONS,
  check: (r) => {
    // The child sees the thread's 2 if the store completed before fork began, never if it
    // completed after fork returned (fork flushed every TLB that could still write the page),
    // and either in between.
    const c = loaded(r, FORK_CHILD, 0);
    if (typeof c === 'string') return c;
    const at = (pred: (e: Run['events'][number]['e']) => boolean): number => r.events.find((x) => pred(x.e))?.step ?? -1;
    const stored = at((e) => e.type === 'op' && e.record.fn === FORK_THREAD && e.record.index === 0);
    const forkEnter = at((e) => e.type === 'syscall_enter' && e.name === 'fork');
    const forkRet = at((e) => e.type === 'syscall' && e.name === 'fork');
    if (stored < 0 || forkEnter < 0 || forkRet < 0) return `store at step ${stored}, fork from ${forkEnter} to ${forkRet}`;
    if (stored < forkEnter && c !== 2n) return `the child read ${c}, but the thread's store of 2 completed (step ${stored}) before fork began (step ${forkEnter})`;
    if (stored > forkRet && c !== 1n) return `the child read ${c}, but the thread's store of 2 completed (step ${stored}) after fork returned (step ${forkRet})`;
    if (c !== 1n && c !== 2n) return `the child read ${c}`;
    return expectLoads(r, [['main', 4, 2n], [FORK_THREAD, 1, 2n]]);
  },
};

// ---------------------------------------------------------------------------------------------
// Fork against fork: two processes with different numbers of touched pages fork at once.

/** A process that maps and touches `pages` pages, then forks (the child, on the same CPU, does nothing). */
function forker(cpu: number, pages: number): { program: Program; cpu: number } {
  const touch: Op[] = Array.from({ length: pages }, (_, i): Op => store(i + 1, `$buf+${i * PAGE}`));
  return { cpu, program: { main: [mmap('buf', pages), ...touch, { op: 'syscall', name: 'fork', into: 'pid', child: [], cpu }, ...linger] } };
}

export const FORK_AGAINST_FORK: LockstepCase = {
  name: 'fork against fork in another process',
  processes: [forker(0, 1), forker(1, 2)],
  racers: [{ cpu: 0, fn: 'main', from: 2 }, { cpu: 1, fn: 'main', from: 3 }],
  watch: ['buf'],
  preemptions: PREEMPTIONS,
  check: (r) => {
    // The judge compares each fork's count with its child's page tables; that comparison can
    // only tell a mixed-up count if the two children differ.
    const counts = r.forks.filter((f) => !f.clone).map((f) => f.counted);
    if (counts.length !== 2 || counts[0] === counts[1]) return `expected two forks whose children hold different numbers of PTEs, got ${JSON.stringify(counts)}`;
    return null;
  },
};

// ---------------------------------------------------------------------------------------------
// munmap against fault: one thread unmaps the page while the other touches it.

const UNMAP_THREAD = 'main.1.child';
/** main: mmap; clone the thread; munmap the page. The thread: `access` on the page. */
function unmapAgainst(name: string, access: Op): LockstepCase {
  return {
    name,
    processes: only([mmap('buf'), { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], into: 'tid', child: [access], cpu: 1 }, { op: 'syscall', name: 'munmap', args: ['$buf', PAGE], into: 'u' }, ...linger]),
    racers: [{ cpu: 0, fn: 'main', from: 2 }, { cpu: 1, fn: UNMAP_THREAD, from: 0 }],
    watch: ['buf'],
    preemptions: PREEMPTIONS,
    check: (r) => {
      const u = r.k.log.find((x) => x.fn === 'main' && x.index === 2);
      if (!u || u.value !== 0n) return `munmap returned ${u?.value}`;
      const rec = r.k.log.find((x) => x.fn === UNMAP_THREAD && x.index === 0);
      if (!rec) return 'the access never completed';
      const buf = BigInt(r.vas[0]);
      // The access may fault more than once (mapped, zapped before its retry, then no VMA): the last fault is the one it ended with.
      const faults = r.faults.filter((f) => f.event.tid === r.tids[1] && f.step >= r.windowStart);
      const fault = faults[faults.length - 1];
      for (const f of faults.slice(0, -1)) if (f.event.outcome !== 'mapped' && f.event.outcome !== 'zero-page') return `the access faulted again after a fault reporting '${f.event.outcome}'`;
      if (rec.signal) {
        // The VMA was gone: SIGSEGV with SEGV_MAPERR at the address, reported as such, and it kills the process.
        if (rec.signal.signo !== SIGSEGV || rec.signal.code !== SEGV_MAPERR || rec.signal.addr !== buf) return `the access got signal ${rec.signal.signo} code ${rec.signal.code} at 0x${rec.signal.addr.toString(16)}, expected SIGSEGV SEGV_MAPERR at 0x${buf.toString(16)}`;
        if (!fault || fault.event.outcome !== 'signal') return `the access got SIGSEGV but its last fault reported ${fault ? `'${fault.event.outcome}'` : 'nothing'}`;
        if (r.sys.exitStatus(r.tids[0]) !== SIGSEGV) return `the process ended with status ${r.sys.exitStatus(r.tids[0])}, expected death by SIGSEGV`;
      } else {
        // The access completed: a fault (if any) mapped the page, and munmap then zapped it.
        if (fault && fault.event.outcome !== 'mapped' && fault.event.outcome !== 'zero-page' && fault.event.outcome !== 'spurious') return `the access completed after a fault reporting '${fault.event.outcome}'`;
        if (access.op === 'load' && rec.value !== 0n) return `the load read ${rec.value}`;
        const left = [...r.endPtes].filter(([, p]) => ptePresent(p));
        if (left.length > 0) return `after munmap returned the PTE still held ${left.map(([key, p]) => `${key}: ${describePte(p)}`).join(', ')}`;
      }
      // Never a leak: whatever a fault allocated is free once munmap has returned.
      for (const f of faults) for (const c of f.copies) if (r.endRefcounts[c.dst] !== 0) return `frame ${c.dst}, allocated by the fault, still had ${r.endRefcounts[c.dst]} references after munmap`;
      return null;
    },
  };
}

export const UNMAP_CASES: LockstepCase[] = [unmapAgainst('munmap against a write fault', store(5)), unmapAgainst('munmap against a read fault', load('x'))];

/** What the search of the COW case saw of backing out: the first complete interleaving where one fault copied and the other backed out of its copy. */
export let backout: string | null = null;

/**
 * 6.12's wp_page_copy drops the PTL to allocate and copy, re-takes it and, when pte_same fails
 * (another thread's copy got there first), backs out: frees its copy and changes nothing. So
 * some interleaving of two threads writing the same COW page must end with one fault 'copied'
 * and the other 'backout' after making its copy, the PTE on the winner's new frame, and the
 * loser's copy freed. (A COW path that holds the PTL throughout has no such interleaving: the
 * second fault then finds the new PTE and is spurious.)
 */
function lookForBackout(run: Run, findings: Finding[]): void {
  if (backout || findings.length > 0) return;
  const faults = run.faults.filter((f) => f.step >= run.windowStart && f.step < run.windowEnd && run.tids.includes(f.event.tid));
  const winner = faults.find((f) => f.event.outcome === 'copied');
  const loser = faults.find((f) => f.event.outcome === 'backout' && f.event.tid !== winner?.event.tid);
  if (!winner || !loser) return;
  const y = winner.changes[winner.changes.length - 1].now;
  const now = run.endPtes.get(`${winner.ctx}:${run.vas[0]}`);
  if (!now || !ptePresent(now) || ptePfn(now) !== ptePfn(y)) return;
  const theirs = loser.copies.map((c) => c.dst);
  if (theirs.length === 0 || theirs.includes(ptePfn(y)) || theirs.some((pfn) => run.endRefcounts[pfn] !== 0)) return;
  backout = `window schedule ${run.schedule}: tid ${winner.event.tid} copied to frame ${ptePfn(y)}; tid ${loser.event.tid} copied to frame ${theirs.join(', ')}, found the PTE changed, backed out and freed its copy`;
}

const results = new Map<LockstepCase, LockstepResult>();
/** The search of case `c` (run once, then remembered). */
export function searched(c: LockstepCase): LockstepResult {
  let r = results.get(c);
  if (!r) {
    r = lockstep(c, c === COW_TWO_WRITERS ? lookForBackout : undefined);
    results.set(c, r);
  }
  return r;
}

export const outcomeList = (r: LockstepResult): string => [...r.outcomes].map(([k, n]) => `${k} ×${n}`).join('; ');

/** Registers the test of each case: every interleaving passes the judge and the case's own check, and the racers raced. */
export function lockstepTests(cases: LockstepCase[]): void {
  for (const c of cases) {
    test(`lockstep, every interleaving: ${c.name}`, (t) => {
      const r = searched(c);
      t.diagnostic(`${r.interleavings} interleavings (every one with at most ${c.preemptions} preemptions), window up to ${r.longest} steps, ${r.steps} steps run, ${r.ms.toFixed(0)} ms`);
      t.diagnostic(`fault outcomes (racer 1 | racer 2): ${outcomeList(r)}`);
      assert.ok(r.failed === 0, describeFindings(c, r));
      assert.ok(r.interleavings >= 2, `${r.interleavings} interleaving(s): the racers never raced`);
    });
  }
}
