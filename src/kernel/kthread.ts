/**
 * Kernel threads (kernel/kthread.c): a task with no mm of its own (PF_KTHREAD), which borrows
 * the mm loaded on its CPU (lazy TLB) while it runs, never enters user mode, and sleeps when
 * the work it was woken for is done.
 *
 * XXX: the model's kernel threads are made on first use and not listed among the tasks a
 * scenario sees (System.tasks, wait4, the end invariants); their tids lie above PID_MAX_LIMIT
 * so they never take a pid a process would get.
 */
import type { Kernel } from './kernel.js';
import { SigHand, Task, ThreadGroup } from './task.js';

/** PID_MAX_LIMIT on 64-bit (include/linux/threads.h: 4 M): no process's pid reaches it. */
export const PID_MAX_LIMIT = 4 * 1024 * 1024;

/** kthread_create: a sleeping kernel thread with tid `tid` (no mm, no image, every CPU allowed). */
export function kthread_create(_k: Kernel, tid: number): Task {
  const t = new Task(tid, new ThreadGroup(tid), null, null, new SigHand(), null);
  t.kthread = true;
  t.state = 'sleeping';
  t.exit_signal = -1;
  t.group.threads.push(t);
  t.group.live = 1;
  return t;
}
