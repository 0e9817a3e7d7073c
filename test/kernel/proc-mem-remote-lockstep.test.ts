/**
 * /proc/self/mem growing the stack, in lockstep (lockstep.ts): a write below a grows-down VMA
 * (mm/memory.c __access_remote_vm calling expand_stack, mm/mmap.c: mmap_lock dropped, taken
 * for writing, the VMA grown, the lock downgraded) against a thread's munmap of that VMA on a
 * second CPU, under every interleaving with at most PREEMPTIONS preemptions.
 *
 * What Linux promises: the munmap (mmap_lock for writing) comes wholly before the lookup, and
 * the write finds nothing to grow (-EIO), or wholly after the write (which grew the VMA and
 * wrote 8 bytes; the munmap, over the grown range too, then takes it all); the downgrade lets no
 * writer in between the growth and the transfer. Either way the page counts balance.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { describeFindings, lockstep, type LockstepCase, type Run } from './lockstep.js';

const CLONE_VM = 0x100, CLONE_FS = 0x200, CLONE_FILES = 0x400, CLONE_SIGHAND = 0x800, CLONE_THREAD = 0x10000;
const THREAD_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
const O_RDWR = 2, EIO = 5;
const MAP_GROWSDOWN_FIXED = 0x2 | 0x10 | 0x20 | 0x100;
const AT = 0x300000000000n;
const PREEMPTIONS = 2;
const sc = (name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args });
const linger: Op[] = Array.from({ length: 3 }, (): Op => ({ op: 'syscall', name: 'getpid' }));

/** The value a racer's operation produced, or a message. */
function value(r: Run, fn: string, index: number): bigint | string {
  const rec = r.k.log.find((x) => x.fn === fn && x.index === index);
  if (!rec) return `${fn}[${index}] never ran`;
  if (rec.value === undefined) return `${fn}[${index}] gave no value`;
  return BigInt.asIntN(64, rec.value);
}

const outcomes = new Set<string>();

const MEM_GROW_MUNMAP: LockstepCase = {
  name: 'a /proc/self/mem write that grows a grows-down VMA against a munmap of it',
  processes: [{
    cpu: 0,
    program: {
      main: [
        { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'buf' }, // 0
        { op: 'store', addr: '$buf', value: 0x5555n }, // 1: the bytes to write
        sc('mmap', AT + 0x10000n, 0x4000, 3, MAP_GROWSDOWN_FIXED, -1, 0), // 2
        sc('open', '&mem', O_RDWR, 0), // 3: 3
        { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], into: 'tid', child: [sc('munmap', AT, 0x14000)], cpu: 1 }, // 4
        sc('pwrite64', 3, '$buf', 8, AT + 0xc000n), // 5: 16 KiB below the VMA
        ...linger,
      ],
      strings: { mem: '/proc/self/mem' },
    },
  }],
  racers: [{ cpu: 0, fn: 'main', from: 5 }, { cpu: 1, fn: 'main.4.child', from: 0 }],
  watch: [],
  preemptions: PREEMPTIONS,
  check: (r) => {
    const w = value(r, 'main', 5);
    const u = value(r, 'main.4.child', 0);
    if (u !== 0n) return `munmap returned ${String(u)}`;
    if (w !== 8n && w !== BigInt(-EIO)) return `the write returned ${String(w)}`;
    outcomes.add(String(w));
    return null;
  },
};

test(`lockstep, every interleaving: ${MEM_GROW_MUNMAP.name}`, (t) => {
  const r = lockstep(MEM_GROW_MUNMAP);
  t.diagnostic(`${r.interleavings} interleavings (every one with at most ${MEM_GROW_MUNMAP.preemptions} preemptions), window up to ${r.longest} steps, ${r.ms.toFixed(0)} ms`);
  assert.ok(r.failed === 0, describeFindings(MEM_GROW_MUNMAP, r));
  assert.ok(r.interleavings >= 2, `${r.interleavings} interleaving(s): the racers never raced`);
  // Both orders happen: the write grows and lands (8), or the VMA is gone first (-EIO).
  assert.deepEqual([...outcomes].sort(), ['-5', '8']);
});
