/**
 * Populating memory in lockstep (lockstep.ts): mlock and mmap(MAP_POPULATE) fault their range
 * in after dropping mmap_lock (mm/mlock.c do_mlock, mm/util.c vm_mmap_pgoff → mm_populate,
 * mm/gup.c __mm_populate), so another thread's munmap of the range can come between the VMA
 * change and the populate, or after it, but never inside the populate (which holds mmap_lock
 * for reading throughout). Every interleaving with at most PREEMPTIONS preemptions is run and
 * judged by what the threads see afterwards:
 *  - mlock against munmap: mlock returns 0, or -ENOMEM when munmap came first (no VMA at the
 *    start); munmap returns 0; the range is unmapped at the end (mincore -ENOMEM); and locked_vm
 *    is back at 0 (munmap took off what mlock added: a 2-page mlock under a 2-page
 *    RLIMIT_MEMLOCK, without CAP_IPC_LOCK, succeeds afterwards);
 *  - mmap(MAP_FIXED | MAP_POPULATE) against munmap: mmap returns the address; at the end the
 *    range is either unmapped or mapped with every page resident (a populate never stops half way).
 * The page counts (debug_vm) are checked after each interleaving by the harness.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { describeFindings, lockstep, type LockstepCase, type Run } from './lockstep.js';
import { linger, sc } from './helpers.js';

const CLONE_VM = 0x100, CLONE_FS = 0x200, CLONE_FILES = 0x400, CLONE_SIGHAND = 0x800, CLONE_THREAD = 0x10000;
const THREAD_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
const PAGE = 4096;
const ENOMEM = 12;
const RLIMIT_MEMLOCK = 8;
const _LINUX_CAPABILITY_VERSION_3 = 0x20080522, CAP_IPC_LOCK = 14;
const MAP_PRIVATE_ANON = 0x22, MAP_FIXED = 0x10, MAP_POPULATE = 0x8000;
const PREEMPTIONS = 2;
const T = 'main.13.child';

const store = (addr: string, value: number | bigint, size: 4 | 8 = 8): Op => ({ op: 'store', addr, value, size });

/**
 * main: two pages `buf`, two pages `aux`; CAP_IPC_LOCK dropped and RLIMIT_MEMLOCK two pages
 * (ops 2..12); a thread on CPU 1 that unmaps `buf` (op 13); then `race` on CPU 0, then
 * mincore of `buf` into `aux` and the first two bytes loaded, then `after`.
 */
function againstMunmap(name: string, race: Op, after: Op[], check: (r: Run, v: (fn: string, i: number) => bigint | string) => string | null): LockstepCase {
  const main: Op[] = [
    sc('buf', 'mmap', 0, 2 * PAGE, 3, MAP_PRIVATE_ANON, -1, 0), // 0
    sc('aux', 'mmap', 0, 2 * PAGE, 3, MAP_PRIVATE_ANON, -1, 0), // 1
    store('$aux', _LINUX_CAPABILITY_VERSION_3, 4), // 2
    store('$aux+4', 0, 4), // 3
    sc('cg', 'capget', '$aux', '$aux+16'), // 4
    store('$aux+16', (0xffffffff & ~(1 << CAP_IPC_LOCK)) >>> 0, 4), // 5
    store('$aux+20', (0xffffffff & ~(1 << CAP_IPC_LOCK)) >>> 0, 4), // 6
    sc('cs', 'capset', '$aux', '$aux+16'), // 7
    store('$aux', 2 * PAGE), // 8
    store('$aux+8', 2 * PAGE), // 9
    sc('sr', 'setrlimit', RLIMIT_MEMLOCK, '$aux'), // 10
    store('$aux', 0), // 11
    store('$aux+8', 0), // 12
    { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], into: 'tid', child: [sc('u', 'munmap', '$buf', 2 * PAGE)], cpu: 1 }, // 13
    race, // 14
    sc('mc', 'mincore', '$buf', 2 * PAGE, '$aux'), // 15
    { op: 'load', addr: '$aux', size: 2, into: 'vec' }, // 16
    ...after, // 17..
    ...linger,
  ];
  return {
    name,
    processes: [{ cpu: 0, program: { main } }],
    racers: [{ cpu: 0, fn: 'main', from: 14 }, { cpu: 1, fn: T, from: 0 }],
    watch: ['buf'],
    preemptions: PREEMPTIONS,
    check: (r) => {
      const v = (fn: string, i: number): bigint | string => {
        const rec = r.k.log.find((x) => x.fn === fn && x.index === i);
        if (!rec) return `${fn}[${i}] never ran`;
        if (rec.value === undefined) return `${fn}[${i}] gave no value${rec.signal ? ` (signal ${rec.signal.signo})` : ''}`;
        return BigInt.asIntN(64, rec.value);
      };
      for (const [fn, i, want] of [['main', 7, 0n], ['main', 10, 0n], [T, 0, 0n]] as [string, number, bigint][]) {
        if (v(fn, i) !== want) return `${fn}[${i}] gave ${v(fn, i)}, expected ${want}`;
      }
      return check(r, v);
    },
  };
}

/** The outcomes each case saw, by case name: every one the header names must come up. */
const seen = new Map<string, Set<string>>();
const saw = (c: string, o: string): void => void (seen.get(c) ?? seen.set(c, new Set()).get(c)!).add(o);
const MLOCK = 'mlock populating against munmap of its range';
const POPULATE = 'mmap(MAP_FIXED | MAP_POPULATE) against munmap of its range';

const CASES: [LockstepCase, string[]][] = [[
  againstMunmap(MLOCK, sc('ml', 'mlock', '$buf', 2 * PAGE), [sc('ml2', 'mlock', '$aux', 2 * PAGE)], (_r, v) => {
    const ml = v('main', 14);
    if (ml !== 0n && ml !== BigInt(-ENOMEM)) return `mlock gave ${ml}`;
    saw(MLOCK, `mlock ${ml}`);
    if (v('main', 15) !== BigInt(-ENOMEM)) return `mincore after munmap gave ${v('main', 15)}, expected -ENOMEM`;
    if (v('main', 17) !== 0n) return `a 2-page mlock after the race gave ${v('main', 17)}: locked_vm was not back at 0`;
    return null;
  }),
  ['mlock 0', `mlock ${-ENOMEM}`],
], [
  againstMunmap(POPULATE, sc('mp', 'mmap', '$buf', 2 * PAGE, 3, MAP_PRIVATE_ANON | MAP_FIXED | MAP_POPULATE, -1, 0), [], (r, v) => {
    const buf = BigInt(r.vas[0]);
    if (v('main', 14) !== buf) return `mmap gave ${v('main', 14)}, expected 0x${buf.toString(16)}`;
    const mc = v('main', 15);
    saw(POPULATE, `mincore ${mc}`);
    if (mc === BigInt(-ENOMEM)) return null;
    if (mc !== 0n) return `mincore gave ${mc}`;
    // Both pages resident: mincore's vector holds 1, 1.
    if (v('main', 16) !== 0x0101n) return `the mapping survived but its pages were ${v('main', 16)} (mincore vector), expected both resident`;
    return null;
  }),
  ['mincore 0', `mincore ${-ENOMEM}`],
]];

for (const [c, outcomes] of CASES) {
  test(`lockstep, every interleaving: ${c.name}`, (t) => {
    const r = lockstep(c);
    t.diagnostic(`${r.interleavings} interleavings (every one with at most ${c.preemptions} preemptions), window up to ${r.longest} steps, ${r.ms.toFixed(0)} ms`);
    assert.ok(r.failed === 0, describeFindings(c, r));
    assert.ok(r.interleavings >= 2, `${r.interleavings} interleaving(s): the racers never raced`);
    for (const o of outcomes) assert.ok(seen.get(c.name)?.has(o), `no interleaving ended with ${o} (saw ${[...(seen.get(c.name) ?? [])].join(', ')})`);
  });
}
