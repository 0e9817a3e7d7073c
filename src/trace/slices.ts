/**
 * Syscall intervals, rebuilt from the event stream for the Perfetto writer.
 *
 * A syscall starts at its `syscall_enter` event. Most end at the `syscall` event of the same
 * tid, but not all: exit and exit_group end in the task's `exit`; a successful execve ends in
 * `exec` (whose tid is the thread-group leader's, which differs from the caller's when a
 * non-leader thread exec'd); a syscall left at -ERESTARTSYS ends without a result when a
 * handler is set up (`signal` with action 'handler') and is entered again later;
 * rt_sigreturn emits no `syscall` event at all, so the task's next user operation (`op`),
 * `user_end` or syscall ends it; a killed task ends in `exit`; the trace may simply stop.
 */
import type { IsolabEvent } from '../system.js';
import type { TraceRecord } from './record.js';

/** Why a syscall interval ended. */
export type SyscallEnd =
  | 'returned' // its `syscall` event (ret is set)
  | 'exit' // the task exited (exit, exit_group, or killed)
  | 'exec' // execve succeeded
  | 'signal' // a handler was set up while the syscall stood at -ERESTARTSYS (no result yet)
  | 'next syscall' // the task entered a syscall again first (a restart, or a syscall right after rt_sigreturn)
  | 'user mode' // the task ran user code again without a result (rt_sigreturn)
  | 'trace end'; // the trace stopped first

/** One syscall as a closed interval on the CPU it was entered on. */
export interface SyscallSlice {
  cpu: number;
  tid: number;
  nr: number;
  name: string;
  args: readonly bigint[];
  /** Index of the `syscall_enter` record. */
  seq: number;
  /** Step of the `syscall_enter`. */
  start: number;
  /** Where the interval is drawn to (exclusive); always > start. */
  end: number;
  ended: SyscallEnd;
  /** Step of the event that ended it. */
  endStep: number;
  /** The return value, when `ended` is 'returned'. */
  ret?: number;
  /** Set when the task left the CPU inside the syscall and another task ran there before it returned: the step it left. The interval is drawn to that step only. */
  leftCpu?: number;
}

interface Open {
  s: SyscallSlice;
  /** Step the task was switched out at, while nothing else has run on its CPU since. */
  out?: number;
  /** True once `s.end` is fixed (another task ran on the CPU). */
  cut: boolean;
}

/**
 * Pairs every `syscall_enter` with the event that ends it (see the file comment) and returns
 * one interval per `syscall_enter`, in entry order. Intervals on one CPU never partially
 * overlap: a task switched out inside a syscall keeps its interval only until another task
 * runs on that CPU (an idle CPU keeps showing the sleeping syscall). Does not look at
 * `syscall` events without a matching enter (a trace that began mid-syscall).
 */
export function syscallSlices(records: readonly TraceRecord[]): SyscallSlice[] {
  const open = new Map<number, Open>();
  const done: SyscallSlice[] = [];
  const close = (o: Open | undefined, step: number, how: SyscallEnd): void => {
    if (!o) return;
    open.delete(o.s.tid);
    if (!o.cut) o.s.end = Math.max(o.s.start + 1, step);
    o.s.ended = how;
    o.s.endStep = step;
    done.push(o.s);
  };
  records.forEach((r, i) => {
    const e = r.event;
    const step = r.step;
    switch (e.type) {
      case 'syscall_enter':
        close(open.get(e.tid), step, 'next syscall');
        open.set(e.tid, { s: newSlice(e, i, step), cut: false });
        break;
      case 'syscall': {
        const o = open.get(e.tid);
        if (o) o.s.ret = e.ret;
        close(o, step, 'returned');
        break;
      }
      case 'exit':
        close(open.get(e.tid), step, 'exit');
        break;
      case 'exec':
        close(open.get(e.tid) ?? openExecveOn(open, e.cpu), step, 'exec');
        break;
      case 'signal':
        if (e.action === 'handler') close(open.get(e.tid), step, 'signal');
        break;
      case 'op':
        if (e.record.op !== 'syscall' && e.record.op !== 'return') close(open.get(e.record.tid), step, 'user mode');
        break;
      case 'user_end':
        close(open.get(e.tid), step, 'user mode');
        break;
      case 'context_switch':
        switched(open, e.cpu, e.from, e.to, step);
        break;
    }
  });
  const last = records.length > 0 ? records[records.length - 1].step : 0;
  for (const o of [...open.values()]) close(o, last, 'trace end');
  done.sort((a, b) => a.seq - b.seq);
  keepDisjoint(done);
  return done;
}

function newSlice(e: Extract<IsolabEvent, { type: 'syscall_enter' }>, seq: number, step: number): SyscallSlice {
  return { cpu: e.cpu, tid: e.tid, nr: e.nr, name: e.name, args: e.args, seq, start: step, end: step + 1, ended: 'trace end', endStep: step };
}

/** An open execve entered on `cpu` (the exec event names the leader's tid, not the caller's, after de_thread). */
function openExecveOn(open: Map<number, Open>, cpu: number): Open | undefined {
  for (const o of open.values()) if (o.s.cpu === cpu && o.s.name === 'execve') return o;
  return undefined;
}

/**
 * A context switch on `cpu`: notes when `from` left inside a syscall; when a task other than
 * the one that left starts running, fixes the end of every interval left on this CPU.
 */
function switched(open: Map<number, Open>, cpu: number, from: number, to: number, step: number): void {
  const left = from !== 0 ? open.get(from) : undefined;
  if (left && !left.cut && left.out === undefined) left.out = step;
  if (to === 0) return;
  const back = open.get(to);
  if (back && !back.cut) back.out = undefined;
  for (const o of open.values()) {
    if (o.s.cpu !== cpu || o.cut || o.out === undefined) continue;
    o.cut = true;
    o.s.end = Math.max(o.s.start + 1, o.out);
    o.s.leftCpu = o.out;
  }
}

/**
 * A last guard: on each CPU, an interval that reaches past the start of a later one is clipped
 * to end there, so the track shows disjoint syscalls whatever the stream did. `slices` is in
 * entry order; changes only `end`. (Two entries on one CPU in the same step cannot happen, as
 * a CPU takes at most one step per step count; if they did, both would keep `end` and nest.)
 */
function keepDisjoint(slices: SyscallSlice[]): void {
  const lastOn = new Map<number, SyscallSlice>();
  for (const s of slices) {
    const prev = lastOn.get(s.cpu);
    if (prev && prev.end > s.start && prev.start < s.start) prev.end = s.start;
    lastOn.set(s.cpu, s);
  }
}
