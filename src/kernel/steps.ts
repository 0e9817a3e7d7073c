/**
 * The kinds of atomic step a kernel path yields (DESIGN.md rule 2). Each `yield` in a kernel
 * generator is one of these; before yielding, the path stores what the step will touch in its
 * CPU's `touch` field (a physical address for memory steps, a lock's id for lock steps, a CPU
 * number for an IPI), so the explorer can tell which steps commute.
 */

/** Reads a page-table entry or other shared word. */
export const STEP_READ = 1;
/** Writes a page-table entry or other shared word. */
export const STEP_WRITE = 2;
/** A locked read-modify-write (LOCK CMPXCHG, atomic bit operation). */
export const STEP_ATOMIC = 3;
/** Takes a lock (the step succeeds). */
export const STEP_LOCK = 4;
/** Releases a lock. */
export const STEP_UNLOCK = 5;
/** Waits: a lock was busy or an acknowledgement has not come; the same step is retried. */
export const STEP_WAIT = 6;
/** Sends an IPI to CPU `touch`. */
export const STEP_IPI = 7;
/** A local TLB operation (CR3 write, INVLPG, INVPCID). */
export const STEP_FLUSH = 8;
/** Copies or zeroes a page. */
export const STEP_COPY = 9;
/** The task goes to sleep; the CPU schedules another. The path resumes when woken. */
export const STEP_SLEEP = 10;
/** Reads or writes user memory from the kernel (copy_to_user / copy_from_user). */
export const STEP_UACCESS = 11;

/** One step of the entry or exit code (a CR3 switch, a stack switch, a register copy): touches only this CPU. */
export const STEP_ENTRY = 12;

/**
 * cond_resched() with preempt=none or voluntary: a point where the task gives its CPU up if
 * TIF_NEED_RESCHED is set (the CPU's next step schedules, sim/step.ts), and where the explorer
 * may preempt it (System.canPreempt).
 */
export const STEP_RESCHED = 13;

export const STEP_NAMES: readonly string[] = ['', 'read', 'write', 'atomic', 'lock', 'unlock', 'wait', 'ipi', 'flush', 'copy', 'sleep', 'uaccess', 'entry', 'resched'];

/**
 * A kernel path: yields step kinds, returns the syscall's result (or 0). It may also yield
 * another kernel path (through `kcall`), which the driver (kernel/entry.ts kernel_step) then
 * steps directly until it returns, as `yield*` would but without resuming every caller in
 * between at each of its steps; a path with a long loop of steps under several callers (fork's
 * copy_pte_range) costs one generator resume a step instead of one a caller.
 */
export interface KPath extends Generator<number | KPath, number, undefined> {}

/** A part of a kernel path with its own steps and another result (a lock taken, a flag, bytes read). */
export type KSteps<R = void> = Generator<number | KPath, R, undefined>;

/**
 * Runs `sub` to its end as one of the calling path's steps would run a `yield*` callee, and
 * returns its result: `const r = yield* kcall(t, sub)`. The driver keeps `sub` on the task's
 * kernel stack (`Task.kstack`) and leaves its result in `Task.kret`, which this reads at once.
 * The steps and their order are those of `yield* sub`. Only for paths that kernel_step drives
 * (a path run to its end in one go, such as irq_from_user's entry and exit steps, must not
 * use it).
 */
export function* kcall(t: { kret: number }, sub: KPath): Generator<KPath, number, undefined> {
  yield sub;
  return t.kret;
}
