/**
 * A far JMP through an LDT selector against modify_ldt rewriting that entry, in lockstep
 * (lockstep.ts). CPU 0 runs LJMP 0x07 (LDT entry 0: a present 32-bit code segment, L=0, as
 * fill_ldt always makes) while a thread on CPU 1 rewrites entry 0 as not present. write_ldt
 * (arch/x86/kernel/ldt.c, 6.12) installs a new table and IPIs every CPU running the mm to
 * reload LDTR (flush_ldt); the processor reads a descriptor once, 8 bytes at a time (SDM
 * Vol. 3A §9.1.1). Two outcomes, both SIGBUS with SI_KERNEL from #NP(0x04), and both must
 * occur: the LJMP reads the new entry and is refused; or it reads the old one and loads CS
 * 0x07, and the IRET that ends the flush IPI on CPU 0 (or any later entry) returns to CS 0x07
 * through the CPU's checks, which now find it not present: the bad-IRET path (desc.ts
 * iret_segments) delivers the #NP as one from user mode. With PTI on (the LDT read through
 * its read-only remap slot) and off.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { describeFindings, lockstep, type LockstepCase } from './lockstep.js';
import { sc } from './helpers.js';

const THREAD_FLAGS = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000;
const PREEMPTIONS = 2;
const T = 'main.6.child';
const SIGBUS = 7;
const SI_KERNEL = 0x80;

/** struct user_desc words for entry 0: 32-bit code, limit 0xfffff in pages, useable; `np` not present. */
const desc = (np: boolean): [bigint, bigint] => [0n, 0xfffffn | (BigInt(0x1 | (2 << 1) | 0x10 | 0x40 | (np ? 0x20 : 0)) << 32n)];

const seen = new Map<string, Set<string>>();

function against(pti: 'on' | 'off'): LockstepCase {
  const name = `LJMP through an LDT selector against modify_ldt making it not present (pti ${pti})`;
  const [o0, o1] = desc(false);
  const [n0, n1] = desc(true);
  const main: Op[] = [
    sc('buf', 'mmap', 0, 4096, 3, 0x22, -1, 0), // 0
    { op: 'store', addr: '$buf', value: o0 }, // 1
    { op: 'store', addr: '$buf+8', value: o1 }, // 2
    sc('w0', 'modify_ldt', 0x11, '$buf', 16), // 3
    { op: 'store', addr: '$buf+16', value: n0 }, // 4
    { op: 'store', addr: '$buf+24', value: n1 }, // 5
    { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], into: 'tid', child: [sc('w1', 'modify_ldt', 0x11, '$buf+16', 16)], cpu: 1 }, // 6
    { op: 'ljmp', sel: 0x07, addr: '@landing' }, // 7
  ];
  // Where the jump lands (in compatibility mode: the entry's L=0).
  const landing: Op[] = [sc('g', 'getpid')];
  return {
    name,
    processes: [{ cpu: 0, program: { main, functions: { landing } } }],
    racers: [{ cpu: 0, fn: 'main', from: 7 }, { cpu: 1, fn: T, from: 0 }],
    watch: [],
    kernel: { pti },
    preemptions: PREEMPTIONS,
    check: (r) => {
      const rec = (fn: string, i: number) => r.k.log.find((x) => x.fn === fn && x.index === i);
      for (const [fn, i] of [['main', 3], [T, 0]] as [string, number][]) {
        if (rec(fn, i)?.value !== 0n) return `${fn}[${i}] (modify_ldt) gave ${rec(fn, i)?.value}`;
      }
      const events = r.events.map((x) => x.e);
      const sig = events.find((e) => e.type === 'signal') as { signo: number; code: number } | undefined;
      if (!sig) return 'no signal after the jump';
      if (sig.signo !== SIGBUS || sig.code !== SI_KERNEL) return `signal ${sig.signo} (si_code ${sig.code}): expected SIGBUS with SI_KERNEL from #NP(0x04)`;
      const jumped = events.some((e) => e.type === 'op' && e.record.fn === 'main' && e.record.index === 7 && !e.record.signal);
      (seen.get(name) ?? seen.set(name, new Set()).get(name)!).add(jumped ? 'iret' : 'ljmp');
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
    for (const o of ['ljmp', 'iret']) assert.ok(seen.get(c.name)?.has(o), `no interleaving took #NP at the ${o === 'ljmp' ? 'LJMP' : 'IRET after the jump'}`);
  });
}
