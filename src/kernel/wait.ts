/**
 * Wait queues (kernel/sched/wait.c, include/linux/wait.h): a task that must wait for a
 * condition another task will make true (a pipe's data, a userfault's resolution) puts
 * itself on the condition's queue and sleeps; whoever makes the condition true wakes the
 * queue. The test of the condition and the sleep are one step, so no wake-up is lost between
 * them (Linux gets this from set_current_state before the test); a woken task tests again.
 *
 * Exclusive waiters (wait_event_interruptible_exclusive) are woken one per wake_up, so that a
 * pipe's data wakes one reader rather than a herd; the others stay queued. A woken entry
 * leaves the queue at once (autoremove_wake_function).
 */
import { track } from '../track.js';
import type { Kernel } from './kernel.js';
import { wake_up_process } from './sched.js';
import { ERESTARTSYS, signal_pending } from './signal.js';
import { STEP_SLEEP, type KSteps } from './steps.js';
import type { Task } from './task.js';

/** A wait_queue_head: the tasks asleep on it, the non-exclusive ones and, in the order they came, the exclusive ones. */
export class WaitQueueHead {
  readonly shared: Task[] = [];
  readonly exclusive: Task[] = [];

  constructor() {
    return track(this);
  }
}

/** Takes `t` off `wq` if it is still there (finish_wait). */
function finish_wait(wq: WaitQueueHead, t: Task): void {
  for (const l of [wq.shared, wq.exclusive]) {
    const i = l.indexOf(t);
    if (i >= 0) l.splice(i, 1);
  }
}

/**
 * wait_event_interruptible(wq, cond) (and _exclusive): 0 once `cond()` holds (at once if it
 * already does), or -ERESTARTSYS when a signal is pending first. The task is on `wq` only
 * while asleep.
 */
export function* wait_event_interruptible(t: Task, wq: WaitQueueHead, cond: () => boolean, exclusive = false): KSteps<number> {
  for (;;) {
    if (cond()) return 0;
    if (signal_pending(t)) return -ERESTARTSYS;
    (exclusive ? wq.exclusive : wq.shared).push(t);
    t.state = 'sleeping';
    yield STEP_SLEEP;
    finish_wait(wq, t);
  }
}

/**
 * wake_up (__wake_up with nr_exclusive 1): every non-exclusive sleeper and the first
 * exclusive one still asleep become runnable and leave the queue. An exclusive entry whose
 * task is already awake (a signal woke it) is passed over and stays until it runs.
 */
export function wake_up(k: Kernel, wq: WaitQueueHead): void {
  for (const t of wq.shared.splice(0)) wake_up_process(k, t);
  const i = wq.exclusive.findIndex((t) => t.state === 'sleeping');
  if (i >= 0) wake_up_process(k, wq.exclusive.splice(i, 1)[0]);
}

/** wake_up_all: every task asleep on `wq`. */
export function wake_up_all(k: Kernel, wq: WaitQueueHead): void {
  for (const t of wq.shared.splice(0)) wake_up_process(k, t);
  for (const t of wq.exclusive.splice(0)) wake_up_process(k, t);
}
