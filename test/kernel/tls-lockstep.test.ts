/**
 * set_thread_area against a segment-descriptor read of the same selector on another CPU, in
 * lockstep (lockstep.ts). A thread on CPU 1 sets TLS entry 12 (selector 0x63) through INT 0x80
 * (arch/x86/kernel/tls.c do_set_thread_area, 6.12) while its sibling on CPU 0 runs LAR of 0x63.
 * The TLS entries are per thread (thread.tls_array, copied at clone) and load_TLS writes them
 * into the GDT of the CPU the thread runs on only (asm/desc.h native_load_tls: get_cpu_gdt_rw),
 * so in every interleaving the sibling's LAR finds CPU 0's entry empty (ZF=0: -1), and the
 * setter's own LAR afterwards finds the new descriptor: 0x00cff300 (DPL 3 writable data, D,
 * G, limit 19:16 = 0xf, P; host-checked with the same user_desc). With PTI on and off.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { describeFindings, lockstep, type LockstepCase } from './lockstep.js';
import { sc } from './helpers.js';

const THREAD_FLAGS = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000; // CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD
const PREEMPTIONS = 2;
const T = 'main.3.child';
/** LAR of the new entry (host): type 3, S, DPL 3, P, limit 19:16 0xf, D, G. */
const NEW_RIGHTS = 0x00cff300n;


const seenOrder = new Map<string, Set<string>>();

function against(pti: 'on' | 'off'): LockstepCase {
  const name = `LAR of a TLS selector against set_thread_area in a sibling thread (pti ${pti})`;
  const main: Op[] = [
    sc('buf', 'mmap', 0x10000, 4096, 3, 0x32, -1, 0), // 0: below 4 GiB, for a 32-bit pointer
    { op: 'store', addr: '$buf', value: 12n }, // 1: entry_number 12, base 0
    { op: 'store', addr: '$buf+8', value: 0xfffffn | (0x11n << 32n) }, // 2: limit 0xfffff, seg_32bit | limit_in_pages
    { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], into: 'tid', cpu: 1, child: [
      { op: 'int80', name: 'set_thread_area', args: ['$buf'], into: 's' },
      { op: 'lar', value: 0x63, into: 'mine' },
    ] }, // 3
    { op: 'lar', value: 0x63, into: 'theirs' }, // 4
    ...Array.from({ length: 3 }, (): Op => sc('g', 'getpid')),
  ];
  return {
    name,
    processes: [{ cpu: 0, program: { main } }],
    racers: [{ cpu: 0, fn: 'main', from: 4 }, { cpu: 1, fn: T, from: 0 }],
    watch: [],
    kernel: { pti },
    preemptions: PREEMPTIONS,
    check: (r) => {
      const rec = (fn: string, i: number) => r.k.log.find((x) => x.fn === fn && x.index === i);
      const at = (fn: string, i: number) => r.k.log.findIndex((x) => x.fn === fn && x.index === i);
      if (rec(T, 0)?.value !== 0n) return `set_thread_area gave ${rec(T, 0)?.value}`;
      if (rec(T, 1)?.value !== NEW_RIGHTS) return `the setter's LAR gave ${rec(T, 1)?.value}`;
      const v = rec('main', 4)?.value;
      if (v === undefined) return 'the sibling\'s LAR never ran';
      if (BigInt.asIntN(64, v) !== -1n) return `the sibling's LAR of 0x63 gave 0x${v.toString(16)}: another thread's TLS entry reached CPU 0's GDT`;
      (seenOrder.get(name) ?? seenOrder.set(name, new Set()).get(name)!).add(at('main', 4) < at(T, 0) ? 'before' : 'after');
      return null;
    },
  };
}

for (const pti of ['off', 'on'] as const) {
  const c = against(pti);
  test(`lockstep, every interleaving: ${c.name}`, (t) => {
    const r = lockstep(c);
    t.diagnostic(`${r.interleavings} interleavings (every one with at most ${c.preemptions} preemptions), window up to ${r.longest} steps, ${r.ms.toFixed(0)} ms`);
    assert.ok(r.failed === 0, describeFindings(c, r));
    assert.ok(r.interleavings >= 2, `${r.interleavings} interleaving(s): the racers never raced`);
    for (const o of ['before', 'after']) assert.ok(seenOrder.get(c.name)?.has(o), `no interleaving ran the sibling's LAR ${o} set_thread_area returned`);
  });
}
