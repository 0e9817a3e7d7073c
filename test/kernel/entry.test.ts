/**
 * The entry and exit code step by step (kernel/entry_64.ts's step lists), upstream
 * (entry_stack per_cpu, PTI on): each instruction group of entry_64.S is one step of its own,
 * in the order of ../shared/spec/linux-x86-isolation.md §5.2 (SYSCALL entry, SYSRET exit) and
 * §5.3 (IDT entry from user mode, IRET exit), with the CR3 switch a step between them.
 * Stepped one kernel step at a time (`stepwise`), as the explorer steps them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { IsolabEvent } from '../../src/system.js';
import { boot, mmapAnon } from './helpers.js';

/** `what@stack` per entry event, `cr3` per CR3 write, each with the step it happened in. */
function entrySteps(ops: Parameters<ReturnType<typeof boot>['spawn']>[0]['main']): { step: number; what: string }[] {
  const sys = boot({ cpus: 1, cpu: { meltdown: true }, kernel: { pti: 'on' }, stepwise: true });
  const out: { step: number; what: string }[] = [];
  sys.events.subscribe((e: IsolabEvent) => {
    if (e.type === 'entry') out.push({ step: sys.now, what: `${e.what}@${e.stack}${e.bytes ? `:${e.bytes}` : ''}` });
    else if (e.type === 'cr_write' && e.reg === 'cr3') out.push({ step: sys.now, what: 'cr3' });
    else if (e.type === 'syscall_enter') out.push({ step: sys.now, what: `syscall ${e.name}` });
    else if (e.type === 'fault') out.push({ step: sys.now, what: 'fault' });
  });
  sys.spawn({ main: ops });
  assert.equal(sys.run({ maxSteps: 100_000 }).finished, true);
  return out;
}

/** The events from the first `from` on, up to and including the first `to` after it. */
function between(evs: { step: number; what: string }[], from: string, to: string): { step: number; what: string }[] {
  const i = evs.findIndex((e) => e.what === from);
  assert.ok(i >= 0, `no ${from}`);
  const j = evs.findIndex((e, n) => n > i && e.what.startsWith(to));
  assert.ok(j > i, `no ${to} after ${from}`);
  return evs.slice(i, j + 1);
}

test('spec §5.2: SYSCALL entry is swapgs, tss.sp2, SWITCH_TO_KERNEL_CR3, the task stack, pt_regs there; each a step', () => {
  const evs = between(entrySteps([{ op: 'syscall', name: 'getpid' }]), 'syscall getpid', 'regs_push');
  const entry = evs.slice(1);
  assert.deepEqual(entry.map((e) => e.what), ['swapgs@user', 'sp2@user:8', 'cr3', 'stack_switch@task', 'regs_push@task:168']);
  // One step each: five distinct, increasing step numbers, after the SYSCALL instruction's.
  const steps = entry.map((e) => e.step);
  assert.deepEqual(steps, [...steps].sort((a, b) => a - b));
  assert.equal(new Set(steps).size, 5);
  assert.ok(steps[0] > evs[0].step);
});

test('spec §5.2: the SYSRET exit pops, moves to the entry stack, puts RSP and RDI there, SWITCH_TO_USER_CR3, swapgs, sysretq; each a step', () => {
  const evs = entrySteps([{ op: 'syscall', name: 'getpid' }]);
  // (The task's first return to user mode, and the fault of its first fetch, come before: IRET.)
  const exit = between(evs.slice(evs.findIndex((e) => e.what === 'syscall getpid')), 'regs_pop@task:160', 'sysret');
  assert.deepEqual(exit.map((e) => e.what), ['regs_pop@task:160', 'stack_switch@entry', 'regs_copy@entry:16', 'cr3', 'swapgs@entry', 'sysret@user']);
  assert.equal(new Set(exit.map((e) => e.step)).size, 6);
});

test('spec §5.3: a #PF from user mode: the CPU\'s frame and the rest of pt_regs on the entry stack, swapgs, CR3, sync_regs; IRET back the same way', () => {
  const all = entrySteps([mmapAnon('buf', 4096), { op: 'load', addr: '$buf' }]);
  // The load's fault: the last one (the first fetch and the mmap come before it).
  const evs = all.slice(all.map((e) => e.what).lastIndexOf('fault'));
  const entry = between(evs, 'hw_frame@entry:40', 'regs_copy@task');
  assert.deepEqual(entry.map((e) => e.what), ['hw_frame@entry:40', 'regs_push@entry:128', 'swapgs@entry', 'cr3', 'regs_copy@task:168']);
  assert.equal(new Set(entry.map((e) => e.step)).size, 5);
  // The fault is handled after the entry steps, then IRET (the frame plus RDI: 48 bytes).
  const rest = evs.slice(evs.indexOf(entry[entry.length - 1]) + 1);
  const exit = between(rest, 'regs_pop@task:160', 'iret');
  assert.deepEqual(exit.map((e) => e.what), ['regs_pop@task:160', 'stack_switch@entry', 'regs_copy@entry:48', 'cr3', 'swapgs@entry', 'iret@user']);
  assert.equal(new Set(exit.map((e) => e.step)).size, 6);
});
