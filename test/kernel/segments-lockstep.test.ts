/**
 * A segment-descriptor read against modify_ldt in lockstep (lockstep.ts): CPU 0 runs LSL of
 * LDT selector 0x07 while a thread on CPU 1 rewrites LDT entry 0 with modify_ldt. write_ldt
 * (arch/x86/kernel/ldt.c, 6.12) never edits the live table: it fills a new ldt_struct, maps
 * it (under PTI) at the other slot, installs it and IPIs every CPU running the mm to reload
 * LDTR (flush_ldt), and only then unmaps and frees the old one. The processor reads a
 * descriptor as one 8-byte access (SDM Vol. 3A §9.1.1: descriptor-table reads are locked).
 * So every interleaving's LSL sees the old entry or the new one, whole: limit 0xfff (old: lo
 * word 0x0fff, limit 19:16 = 0) or 0x12fff (new: lo 0x2fff, limit 19:16 = 1), never 0x2fff or
 * 0x10fff (the two mixes of one entry's words with the other's). Both outcomes must occur.
 * With PTI on (the LDT read through its read-only remap slot) and off (through the direct map).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { describeFindings, lockstep, type LockstepCase } from './lockstep.js';
import { sc } from './helpers.js';

const THREAD_FLAGS = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000; // CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD
const PREEMPTIONS = 2;
const T = 'main.6.child';
const OLD = 0xfff;
const NEW = 0x12fff;

const store = (addr: string, value: number | bigint): Op => ({ op: 'store', addr, value });
/** struct user_desc words: entry | base << 32, limit | flags << 32 (seg_32bit 1, contents 0 data, writable, present, useable 1). */
const desc = (limit: number): [bigint, bigint] => [0n, BigInt(limit) | (0x41n << 32n)];

const seen = new Map<string, Set<bigint>>();

function against(pti: 'on' | 'off'): LockstepCase {
  const name = `LSL of an LDT selector against modify_ldt rewriting it (pti ${pti})`;
  const [o0, o1] = desc(OLD);
  const [n0, n1] = desc(NEW);
  const main: Op[] = [
    sc('buf', 'mmap', 0, 4096, 3, 0x22, -1, 0), // 0
    store('$buf', o0), // 1
    store('$buf+8', o1), // 2
    sc('w0', 'modify_ldt', 0x11, '$buf', 16), // 3
    store('$buf+16', n0), // 4
    store('$buf+24', n1), // 5
    { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], into: 'tid', child: [sc('w1', 'modify_ldt', 0x11, '$buf+16', 16)], cpu: 1 }, // 6
    { op: 'lsl', value: 0x07, into: 'lim' }, // 7
    ...Array.from({ length: 3 }, (): Op => sc('g', 'getpid')),
  ];
  return {
    name,
    processes: [{ cpu: 0, program: { main } }],
    racers: [{ cpu: 0, fn: 'main', from: 7 }, { cpu: 1, fn: T, from: 0 }],
    watch: [],
    kernel: { pti },
    preemptions: PREEMPTIONS,
    check: (r) => {
      const rec = (fn: string, i: number) => r.k.log.find((x) => x.fn === fn && x.index === i);
      for (const [fn, i] of [['main', 3], [T, 0]] as [string, number][]) {
        if (rec(fn, i)?.value !== 0n) return `${fn}[${i}] (modify_ldt) gave ${rec(fn, i)?.value}`;
      }
      const v = rec('main', 7)?.value;
      if (v === undefined) return 'LSL never ran';
      (seen.get(name) ?? seen.set(name, new Set()).get(name)!).add(v);
      if (v !== BigInt(OLD) && v !== BigInt(NEW)) return `LSL gave 0x${v.toString(16)}: neither the old entry (0x${OLD.toString(16)}) nor the new (0x${NEW.toString(16)})`;
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
    for (const v of [OLD, NEW]) assert.ok(seen.get(c.name)?.has(BigInt(v)), `no interleaving's LSL saw 0x${v.toString(16)}`);
  });
}
