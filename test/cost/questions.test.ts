/**
 * The seeds' cost questions (src/cost/questions.ts, questions/*.yaml): each answer the model
 * gives, computed by hand from the cost table and Linux's code paths, and docs/measure.md's
 * answers are the model's.
 *
 * - seed 000: a process under PTI with PCIDs pays SWITCH_TO_KERNEL_CR3 and SWITCH_TO_USER_CR3 on
 *   every syscall, each a NOFLUSH CR3 write; after ARCH_SET_NOPTI (NOPTI_NOW) neither.
 * - seed 003: copy_present_ptes per writable private PTE: the copy (fork_pte) and one
 *   ptep_set_wrprotect, a read and try_cmpxchg (cmpxchg) since 6.6, a locked AND (lock_rmw)
 *   before.
 * - seed 004: entry_64.S per exception from user mode moves 40 + 128 + 168 (sync_regs) bytes in
 *   and 160 + 48 out upstream, 40 + 128 in and 128 out with per-task stacks, and switches stack
 *   once upstream (to the entry stack on exit) against twice (to the task stack, and back).
 * - seed 002: WRPKRU twice and one read; mprotect twice (two null syscalls) with one INVLPG for
 *   the close (change_protection flushes when rights are taken away, not when they are given)
 *   and the read's walk that refills what it dropped, and with a second thread of the mm on another CPU, a shootdown: an IPI sent and waited for
 *   on this CPU, taken on the other.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { Q_BEGIN, Q_END, questionsMarkdown } from '../../src/cost/doc.js';
import { answerSeedQuestions } from '../../src/cost/questions.js';
import { builtinCostTable, profileOf } from '../../src/cost/table.js';

const table = builtinCostTable();
const p = profileOf(table);
const c = (n: keyof typeof p.costs): number => p.costs[n].cycles;
const answers = answerSeedQuestions(table, p);
const fig = (seed: string, label: string): number => {
  const f = answers.find((a) => a.seed === seed)!.figures.find((x) => x.label === label);
  assert.ok(f, `${seed}: ${label}`);
  return f.value;
};
const near = (a: number, b: number, what: string): void => assert.ok(Math.abs(a - b) < 1e-6, `${what}: ${a} against ${b}`);

test('seed 000: ARCH_SET_NOPTI saves the two NOFLUSH CR3 writes of each syscall', () => {
  near(fig('000', 'getpid under PTI (PCID)') - fig('000', 'getpid after ARCH_SET_NOPTI'), 2 * c('cr3_write_noflush'), 'saved cycles');
  near(fig('000', 'saved per syscall'), (2 * c('cr3_write_noflush')) / p.clockGhz, 'saved ns');
  near(fig('000', 'saved at 100,000 syscalls a second on one CPU'), ((2 * c('cr3_write_noflush') * 1e5) / (p.clockGhz * 1e9)) * 100, 'per cent');
});

test('seed 003: per PTE, the copy and a cmpxchg against the copy and a locked AND', () => {
  near(fig('003', 'per PTE, cmpxchg'), c('fork_pte') + c('cmpxchg'), 'cmpxchg');
  near(fig('003', 'per PTE, locked AND'), c('fork_pte') + c('lock_rmw'), 'locked AND');
  near(fig('003', 'difference per GiB of written memory'), (((c('cmpxchg') - c('lock_rmw')) * 262144) / (p.clockGhz * 1e9)) * 1e6, 'per GiB');
});

test('seed 004: per-task stacks save the sync_regs copy and part of the IRET frame of each fault', () => {
  const perCpuBytes = 40 + 128 + 168 + 160 + 48;
  const perTaskBytes = 40 + 128 + 128;
  near(fig('004', 'a page fault, per_cpu') - fig('004', 'a page fault, per_task'), ((perCpuBytes - perTaskBytes) / 8) * c('stack_copy_8') + (1 - 2) * c('stack_switch'), 'per fault');
  // A syscall: 8 + 168 in and 160 + 16 out, two stack switches, upstream; 168 in and 168 out, three switches, per task.
  near(fig('004', 'a syscall, per_cpu') - fig('004', 'a syscall, per_task'), ((8 + 168 + 160 + 16 - 168 - 168) / 8) * c('stack_copy_8') + (2 - 3) * c('stack_switch'), 'per syscall');
});

test('seed 002: a switch pair by WRPKRU, by mprotect, and by mprotect with a shootdown', () => {
  near(fig('002', 'WRPKRU'), 2 * (c('wrpkru') + c('user_op')) + c('user_op'), 'WRPKRU');
  near(fig('002', 'WRPKRU, a second thread on another CPU'), fig('002', 'WRPKRU'), 'no shootdown for WRPKRU');
  const syscall = c('syscall') + 2 * c('swapgs') + 2 * c('stack_switch') + ((8 + 168 + 160 + 16) / 8) * c('stack_copy_8');
  // The read after opening walks again: the close's INVLPG dropped the page's entry and, SDM §4.10.4.1, every paging-structure-cache entry of the PCID, so all four levels are read.
  near(fig('002', 'mprotect'), 2 * syscall + c('invlpg') + c('user_op') + c('walk_leaf') + 3 * c('walk_level'), 'mprotect');
  near(fig('002', 'mprotect, a second thread on another CPU') - fig('002', 'mprotect'), c('ipi_send') + c('ipi_wait') + c('ipi_receive'), 'the shootdown');
});

test("docs/measure.md: the answers are the model's (npm run docs:calibration)", () => {
  const doc = readFileSync(new URL('../../../docs/measure.md', import.meta.url), 'utf8');
  const b = doc.indexOf(Q_BEGIN);
  const e = doc.indexOf(Q_END);
  assert.ok(b >= 0 && e > b);
  assert.equal(doc.slice(b + Q_BEGIN.length, e).trim(), questionsMarkdown(answers).trim());
});
