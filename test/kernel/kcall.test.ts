/**
 * kcall (kernel/steps.ts) runs a callee's steps without resuming its callers at each one, and
 * must be invisible otherwise: under kernel_step, a path that calls through `yield* kcall(t,
 * sub)` takes exactly the steps, in the same order, with the same work between them, and
 * returns the same values as one that calls through `yield* sub`, at any quantum.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { kernel_step } from '../../src/kernel/entry.js';
import type { Kernel, PerCpu } from '../../src/kernel/kernel.js';
import { kcall, STEP_ATOMIC, STEP_LOCK, STEP_READ, STEP_UNLOCK, STEP_WRITE, type KPath } from '../../src/kernel/steps.js';
import type { Task } from '../../src/kernel/task.js';

/** A task as kernel_step needs it for a path whose end returns to user mode by itself. */
function task(path: KPath): Task {
  return { kpath: path, kstack: [], kstackRoot: null, kret: 0, kpathKind: 'return', nextStep: 0, nextStepPath: null } as unknown as Task;
}

/**
 * A path shaped like fork: a lock, then per table a callee with a loop of steps (and a nested
 * callee of its own), each callee's result used by the caller. `via` chooses how callees run.
 */
function makePath(via: 'yield*' | 'kcall', log: string[], t: { kret: number }): KPath {
  function* inner(n: number): KPath {
    log.push(`inner ${n} start`);
    yield STEP_READ;
    log.push(`inner ${n} read`);
    return n * 10;
  }
  function* table(i: number): KPath {
    log.push(`table ${i} start`);
    let sum = 0;
    for (let j = 0; j < 3; j++) {
      yield STEP_READ;
      log.push(`table ${i} entry ${j}`);
      sum += via === 'kcall' ? yield* kcall(t, inner(j)) : yield* inner(j);
      yield STEP_ATOMIC;
    }
    log.push(`table ${i} end`);
    return sum + i;
  }
  function* empty(): KPath {
    log.push('empty');
    return 7;
  }
  function* top(): KPath {
    yield STEP_LOCK;
    let total = 0;
    for (let i = 0; i < 2; i++) {
      total += via === 'kcall' ? yield* kcall(t, table(i)) : yield* table(i);
      log.push(`after table ${i}: ${total}`);
    }
    // A callee with no step: it runs within the caller's step.
    total += via === 'kcall' ? yield* kcall(t, empty()) : yield* empty();
    yield STEP_WRITE;
    log.push(`total ${total}`);
    yield STEP_UNLOCK;
    return total;
  }
  return top();
}

/** Drives a path with kernel_step at `quantum` to its end; returns each call's step kind and the log at that point. */
function drive(via: 'yield*' | 'kcall', quantum: number): { steps: string[]; log: string[] } {
  const log: string[] = [];
  const holder = { kret: 0 };
  const path = makePath(via, log, holder);
  const t = task(path);
  // kcall reads the result where kernel_step leaves it: the task's kret.
  Object.defineProperty(holder, 'kret', { get: () => t.kret });
  const k = { quantum, options: { preempt: 'none' } } as unknown as Kernel;
  const steps: string[] = [];
  for (let n = 0; t.kpath && n < 1000; n++) {
    kernel_step(k, {} as PerCpu, t);
    steps.push(`${t.kpath ? t.nextStep : 'done'} @${log.length}`);
  }
  assert.equal(t.kpath, null, 'the path ended');
  assert.equal(t.kstack.length, 0, 'no sub-path is left on the kernel stack');
  return { steps, log };
}

test('kcall takes the same steps in the same order as yield*, with the same results, at quantum 1 and 64', () => {
  for (const quantum of [1, 2, 64]) {
    const a = drive('yield*', quantum);
    const b = drive('kcall', quantum);
    assert.deepEqual(b.steps, a.steps, `steps at quantum ${quantum}`);
    assert.deepEqual(b.log, a.log, `work at quantum ${quantum}`);
  }
  // The expected total from the path's own arithmetic: tables 0 and 1 each sum 0+10+20 plus i, and 7.
  assert.ok(drive('kcall', 1).log.includes(`total ${30 + 31 + 7}`));
  // One kernel_step per step at quantum 1: LOCK, 2 tables x 3 entries x (READ, inner READ, ATOMIC), WRITE, UNLOCK, and the end.
  assert.equal(drive('kcall', 1).steps.length, 1 + 2 * 3 * 3 + 2 + 1);
});
