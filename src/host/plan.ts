/**
 * What the host program must reproduce, learnt from isolab's run of the scenario: every user
 * operation's record in the order the run completed them (its position), for each the turn it
 * waits for on the host (its gate), the tasks in the order they were created, and the
 * addresses isolab's mmap gave, so the host places its mappings at the same ones.
 */
import { MAP_FIXED, MAP_FIXED_NOREPLACE, CLONE_THREAD } from '../kernel/uapi.js';
import type { OpRecord } from '../kernel/task.js';
import type { ProgramPosition } from '../introspect.js';
import type { CompiledScenario } from '../scenario/compile.js';
import { Runner, type RunReport } from '../scenario/run.js';
import type { ProgramImage } from '../user/program.js';
import { opKey, syscallName, type Support } from './support.js';

/** One record of isolab's run, as the host program expects it. */
export interface PlanRecord {
  /** Its position in the run's order of completed operations. */
  pos: number;
  /** The task (PlanTask.idx) that made it. */
  task: number;
  /** The image (Support.images) the operation is in: the task's, or the program it executed. */
  image: number;
  fn: string;
  index: number;
  /** The record as isolab's kernel made it. */
  record: OpRecord;
  /**
   * The records that must be complete before the host starts the operation: its own position
   * for an instruction that did not enter the kernel, else the records complete when isolab's
   * task first entered the kernel for it (a syscall or a fault that slept lets others complete
   * meanwhile).
   */
  gate: number;
  /** For fork, vfork and clone: the task it created, or -1. */
  child: number;
  /** The CPU isolab's task was on when the operation completed (-1 for an unfinished one). */
  cpu: number;
  /** For an mmap isolab placed itself: the address, to be asked for with MAP_FIXED_NOREPLACE; else 0. */
  mmap: bigint;
  /** The operation is skipped on the host (Support.skipped). */
  skipped: boolean;
  /**
   * isolab's task started the operation but never completed it (killed while it slept, or still
   * asleep when the run ended): the last of its task's records, at position -(task + 2), in no
   * position of the run's order. The host must not complete it either.
   */
  unfinished?: true;
}

export interface PlanTask {
  idx: number;
  /** isolab's tid, and the scenario's name of the task. */
  tid: number;
  name: string;
  /** Index of the image it starts in (its process's) in Support.images; its records name the image of each operation. */
  image: number;
  /** The function it starts in: main, or a fork/clone child's. */
  entry: string;
  /** The fork, vfork or clone operation that created it (function, index and image), or null for a top-level process. */
  creator: { fn: string; index: number; image: number } | null;
  /** It leads its thread group (its end is exit_group, not exit). */
  leader: boolean;
  /** A process of the scenario's `processes` list (the host program forks it itself). */
  top: boolean;
  records: PlanRecord[];
  /** The records complete when it entered exit or exit_group, or when it died without either: the host's task ends after them. */
  endGate: number;
  /** It died without calling exit or exit_group (a fatal signal, its group's exit): the host's task waits to be killed. */
  dies: boolean;
  /** How isolab's run left it: a wait status, or null while alive. */
  exit: string | null;
}

/**
 * A memory or register expectation at the end of a thread's operations, with the value
 * isolab's run had there (null: the address was not mapped, or the variable unset).
 */
export interface EndCheck {
  id: number;
  task: number;
  kind: 'memory' | 'register';
  /** Memory: the variable the address is relative to (or none) and the offset; register: the variable. */
  variable?: string;
  add: bigint;
  size: 1 | 2 | 4 | 8;
  path: (string | number)[];
  text: string;
  model: bigint | null;
}

export interface Plan {
  tasks: PlanTask[];
  /** The end expectations the host can read, with isolab's values; `unread` those it cannot, with why. */
  ends: EndCheck[];
  unread: { path: (string | number)[]; text: string; reason: string }[];
  /** Every record, by position. */
  records: PlanRecord[];
  report: RunReport;
}

/** The operation a record was made for, in its image. */
export function recordOp(support: Support, r: PlanRecord): ProgramImage['functions'][number]['ops'][number] | undefined {
  return support.images[r.image].byName.get(r.fn)?.ops[r.index];
}

/** Runs `c` in isolab with the kernel log on and returns what the host program must reproduce. */
export function planFromModel(c: CompiledScenario, support: Support): Plan {
  const runner = new Runner({ ...c, system: { ...c.system, kernel: { ...c.system.kernel, log: true } } }, {});
  const sys = runner.sys;
  const tasks: PlanTask[] = [];
  const byTid = new Map<number, PlanTask>();
  const records: PlanRecord[] = [];
  const ends: EndCheck[] = [];
  const unread: Plan['unread'] = [];
  /** At the end of a thread's operations (user_end), isolab's values for its end expectations, as the runner snapshots them. */
  const atEnd = (t: PlanTask): void => {
    if (ends.some((x) => x.task === t.idx)) return;
    const vars = sys.vars(t.tid);
    const pid = sys.taskInfo(t.tid)?.pid ?? t.tid;
    for (const m of c.end.memory.filter((x) => x.thread === t.name)) {
      if (m.addr.expr !== undefined) {
        unread.push({ path: m.path, text: m.text, reason: 'its address is an expression: not read on the host yet' });
        continue;
      }
      const variable = m.addr.ref?.[0] === '$' ? m.addr.ref.slice(1) : undefined;
      if (m.addr.ref !== undefined && variable === undefined) {
        unread.push({ path: m.path, text: m.text, reason: "its address is in isolab's program layout" });
        continue;
      }
      const addr = BigInt.asUintN(64, (variable !== undefined ? vars.get(variable) ?? 0n : 0n) + m.addr.constant);
      ends.push({ id: ends.length, task: t.idx, kind: 'memory', variable, add: m.addr.constant, size: m.size, path: m.path, text: m.text, model: sys.readUser(pid, addr, m.size) });
    }
    for (const r of c.end.registers.filter((x) => x.thread === t.name)) {
      if (r.pkru) unread.push({ path: r.path, text: r.text, reason: 'PKRU is not read on the host' });
      for (const [name] of r.vars) ends.push({ id: ends.length, task: t.idx, kind: 'register', variable: name, add: 0n, size: 8, path: r.path, text: `$${name} at the end of ${t.name}`, model: vars.get(name) ?? null });
    }
  };
  const entered = new Map<number, number>();
  /** Tasks that entered exit or exit_group. */
  const exiting = new Set<number>();
  /** The operation each task entered the kernel for and has not completed. */
  const started = new Map<number, { fn: string; index: number }>();
  const position: ProgramPosition = { image: '', fn: '', index: 0, op: '', fetchedFn: '', fetchedIndex: 0, fetchedOp: '' };
  /** The task's operation starts: at a fault, the one at its ip; at a syscall, the one it fetched (the ip is past it). */
  const start = (tid: number, how: 'fault' | 'syscall' | 'exit'): void => {
    if (entered.has(tid)) return;
    entered.set(tid, records.length);
    const t = byTid.get(tid);
    if (!t || how === 'exit' || !sys.position(tid, position)) return;
    const fn = how === 'fault' ? position.fn : position.fetchedFn;
    const index = how === 'fault' ? position.index : position.fetchedIndex;
    const f = support.images[imageOf(t)].byName.get(fn);
    if (f && index < f.ops.length) started.set(tid, { fn, index });
  };
  const imageIndex = new Map(support.images.map((img, i) => [img.name, i]));
  /** Each task's image now: its own, until it executes a program. */
  const current = new Map<number, number>();
  const imageOf = (t: PlanTask): number => current.get(t.tid) ?? t.image;
  const addTask = (tid: number, name: string, image: string, entry: string, leader: boolean, top: boolean): PlanTask => {
    const t: PlanTask = { idx: tasks.length, tid, name, image: imageIndex.get(image) ?? 0, entry, creator: null, leader, top, records: [], endGate: 0, dies: false, exit: null };
    tasks.push(t);
    byTid.set(tid, t);
    return t;
  };
  const off = sys.events.subscribe((e) => {
    if (e.type === 'fault') {
      // An exception in user mode: the operation's start, if it is the first of it (a fault may sleep, as a userfaultfd one does).
      const cur = sys.current(e.cpu);
      if (cur > 0) start(cur, 'fault');
      return;
    }
    if (e.type === 'syscall_enter') {
      start(e.tid, e.name === 'exit' || e.name === 'exit_group' ? 'exit' : 'syscall');
      const t = byTid.get(e.tid);
      if (t && (e.name === 'exit' || e.name === 'exit_group')) {
        t.endGate = records.length;
        exiting.add(e.tid);
      }
    }
    if (e.type === 'exit') {
      // A task that dies without calling exit: its host task must not end before this point, nor by itself.
      const t = byTid.get(e.tid);
      if (t && !exiting.has(e.tid)) {
        t.endGate = records.length;
        t.dies = true;
      }
      return;
    }
    if (e.type === 'user_end') {
      const t = byTid.get(e.tid);
      if (t) atEnd(t);
      return;
    }
    if (e.type === 'exec') {
      const t = byTid.get(e.tid);
      const i = imageIndex.get(e.image);
      if (t && i !== undefined) current.set(t.tid, i);
      return;
    }
    if (e.type === 'fork') {
      // The child's task, named as the scenario names it; a vfork child's records come before its parent's vfork returns.
      const parent = byTid.get(e.parent);
      const pt = sys.task(e.parent);
      if (parent && pt) {
        const img = support.images[imageOf(parent)];
        const child = addTask(e.child, c.children.get(img.name, pt.opFn, pt.opIndex) ?? `task${e.child}`, img.name, `${pt.opFn}.${pt.opIndex}.child`, (e.flags & CLONE_THREAD) === 0, false);
        child.creator = { fn: pt.opFn, index: pt.opIndex, image: imageOf(parent) };
      }
      return;
    }
    if (e.type !== 'op') return;
    const r = e.record;
    const t = byTid.get(r.tid);
    if (!t || r.fn === '__restore_rt') return;
    const image = imageIndex.get(r.image) ?? imageOf(t);
    const img = support.images[image];
    const fn = img.byName.get(r.fn);
    const op = fn?.ops[r.index];
    const pos = records.length;
    const rec: PlanRecord = { pos, task: t.idx, image, fn: r.fn, index: r.index, record: r, gate: entered.get(r.tid) ?? pos, child: -1, cpu: e.cpu, mmap: 0n, skipped: support.skipped.has(opKey(img.name, r.fn, r.index)) };
    if (op?.op === 'syscall' && !r.signal && r.value !== undefined) {
      const name = syscallName(op.name);
      const v = BigInt.asIntN(64, r.value);
      if ((name === 'fork' || name === 'vfork' || name === 'clone') && v > 0n) rec.child = byTid.get(Number(v))?.idx ?? -1;
      if (name === 'mmap' && v > 0n) {
        const flags = fn!.args[r.index][3];
        const fixed = flags && flags.kind === 0 ? (Number(BigInt.asUintN(32, flags.constant)) & (MAP_FIXED | MAP_FIXED_NOREPLACE)) !== 0 : false;
        if (!fixed) rec.mmap = BigInt.asUintN(64, r.value);
      }
    }
    entered.delete(r.tid);
    started.delete(r.tid);
    records.push(rec);
    t.records.push(rec);
  });
  let report: RunReport;
  try {
    const before = new Set(sys.tasks().map((t) => t.tid));
    runner.begin();
    let i = 0;
    for (const { tid } of sys.tasks()) {
      if (before.has(tid)) continue;
      const p = c.processes[i++];
      if (p) addTask(tid, p.name, p.name, 'main', true, true);
    }
    const max = c.maxSteps;
    for (let n = 0; n < max && sys.step(); n++);
    report = runner.finish();
  } finally {
    off();
  }
  for (const [tid, op] of started) {
    const t = byTid.get(tid);
    const image = t ? imageOf(t) : 0;
    if (!t || support.skipped.has(opKey(support.images[image].name, op.fn, op.index))) continue;
    const record: OpRecord = { image: support.images[image].name, tid, pid: tid, fn: op.fn, index: op.index, op: 'unfinished' };
    t.records.push({ pos: -(t.idx + 2), task: t.idx, image, fn: op.fn, index: op.index, record, gate: entered.get(tid) ?? records.length, child: -1, cpu: -1, mmap: 0n, skipped: false, unfinished: true });
  }
  for (const s of report.tasks) {
    const t = byTid.get(s.tid);
    if (t) t.exit = s.exit;
  }
  return { tasks, records, ends, unread, report };
}

export type { ProgramImage };
