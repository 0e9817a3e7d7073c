/**
 * Wait queues (kernel/sched/wait.c, include/linux/wait.h): a task that must wait for a
 * condition another task will make true (a pipe's data, a userfault's resolution) puts
 * itself on the condition's queue and sleeps; whoever makes the condition true wakes the
 * queue. The test of the condition and the sleep are one step, so no wake-up is lost between
 * them (Linux gets this from set_current_state before the test); a woken task tests again.
 */
import { track } from '../track.js';
import type { Kernel } from './kernel.js';
import { wake_up_process } from './sched.js';
import { ERESTARTSYS, signal_pending } from './signal.js';
import { STEP_SLEEP, type KSteps } from './steps.js';
import type { Task } from './task.js';

/** A wait_queue_head: the tasks asleep on it, in the order they went to sleep. */
export class WaitQueueHead {
  readonly tasks: Task[] = [];

  constructor() {
    return track(this);
  }
}

/**
 * wait_event_interruptible(wq, cond): 0 once `cond()` holds (at once if it already does), or
 * -ERESTARTSYS when a signal is pending first. The task is on `wq` only while asleep
 * (prepare_to_wait, then finish_wait).
 */
export function* wait_event_interruptible(t: Task, wq: WaitQueueHead, cond: () => boolean): KSteps<number> {
  for (;;) {
    if (cond()) return 0;
    if (signal_pending(t)) return -ERESTARTSYS;
    wq.tasks.push(t);
    t.state = 'sleeping';
    yield STEP_SLEEP;
    const i = wq.tasks.indexOf(t);
    if (i >= 0) wq.tasks.splice(i, 1);
  }
}

/** wake_up: every task asleep on `wq` becomes runnable; each tests its condition again when it runs. */
export function wake_up(k: Kernel, wq: WaitQueueHead): void {
  for (const t of wq.tasks) wake_up_process(k, t);
}
