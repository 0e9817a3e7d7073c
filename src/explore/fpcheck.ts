/**
 * The footprint check (`isolab explore --check-footprints`, ExecutionOptions.checkFootprints):
 * before and after each step the explorer records, the whole state is taken apart by footprint
 * key, and every part that changed must be covered by a key the step recorded as written. A
 * change nobody recorded is a write the reduction cannot see (an object changed through a
 * reference that was never tracked, a memory access that bypassed PhysMem's hooks, a CPU's
 * state changed by another CPU's step): the check throws a ModelError naming the step, the
 * key, and the object and field.
 *
 * The parts:
 *  - each field of each kernel object reachable from the Kernel, under its key
 *    (src/track.ts); an object not named yet under the id it will get when first read
 *    through the field that holds it; array and typed-array elements under their index's key,
 *    a Map's or Set's contents under the whole-object key;
 *  - each 8-byte word of each frame of physical memory, under its word key;
 *  - each CPU's registers, TLB and user-mode step state, under fp_cpu(c).
 *
 * What a step reads cannot be seen this way; `test/explore/footprint-runs.ts` checks reads by
 * their effect: steps the footprints call independent are swapped, and the two executions
 * must end in the same state.
 */
import { ModelError } from '../errors.js';
import { FIELD_INDEX, FIELD_SPAN, FP_FRAME, FP_OBJ, fp_cpu, fp_overlap } from '../hw/footprint.js';
import type { System } from '../system.js';
import { fieldName, fieldOf, isOpaque, mixId, rawOf, trackedId, type TrackContext } from '../track.js';

/** The state by key: a string per key (the values it holds, references written as the referent's id), and a copy of each frame. */
export interface StateParts {
  parts: Map<number, string>;
  frames: Map<number, Uint32Array>;
  /** Each object's id, and which object (a serial number of this check's) bore it. */
  ids: Map<number, number>;
}

/**
 * Takes the whole state of `sys` apart by footprint key. References name the object behind
 * them by its id and, unless `serials` is false (to compare two executions' states), by which
 * object of this process it is.
 */
export function stateParts(sys: System, c: TrackContext, serials = true): StateParts {
  const parts = new Map<number, string>();
  const ids = new Map<number, number>();
  const k = rawOf(sys.kernel);
  objectParts(k, c, parts, ids, serials);
  const frames = new Map<number, Uint32Array>();
  const mem = sys.machine.mem;
  for (let pfn = 0; pfn < mem.frameCount; pfn++) {
    const w = mem.frame(pfn);
    if (w) frames.set(pfn, w.slice());
  }
  rawOf(k.percpu).forEach((pc, i) => parts.set(fp_cpu(i), cpuPart(rawOf(rawOf(pc).cpu), sys.user[i])));
  return { parts, frames, ids };
}

const SERIALS = new WeakMap<object, number>();
let nextSerial = 1;

/** A number for object `o`, the same in every take of the state: which object a reference names. */
function serialOf(o: object): number {
  let n = SERIALS.get(o);
  if (n === undefined) SERIALS.set(o, (n = nextSerial++));
  return n;
}

/**
 * Every object reachable from `root` (the raw kernel), by field. An object the context has not
 * named yet is taken apart under the id it will get when first read through that field
 * (src/track.ts mixId), so that naming it in a step changes nothing here.
 */
function objectParts(root: object, c: TrackContext, parts: Map<number, string>, ids: Map<number, number>, serials: boolean): void {
  const seen = new Set<object>();
  const todo: [object, number][] = [[root, trackedId(c, root) || mixId(0, 0)]];
  const name = (v: unknown, owner: number, field: number): string => {
    if (typeof v !== 'object' || v === null) return typeof v === 'function' ? 'fn' : typeof v === 'bigint' ? `${v}n` : String(v);
    const o = rawOf(v);
    if (isOpaque(o)) return 'opaque';
    if (typeof (o as { next?: unknown }).next === 'function' && typeof (o as { throw?: unknown }).throw === 'function') return 'generator';
    const id = trackedId(c, o) || mixId(owner, field);
    todo.push([o, id]);
    return serials ? `@${id}#${serialOf(o)}` : `@${id}`;
  };
  while (todo.length > 0) {
    const [o, id] = todo.pop()!;
    if (seen.has(o)) continue;
    seen.add(o);
    // Two objects under one id (a hash collision, src/track.ts): neither can be checked.
    const serial = serialOf(o);
    ids.set(id, ids.has(id) && ids.get(id) !== serial ? -1 : serial);
    const base = FP_OBJ + id * FIELD_SPAN;
    if (o instanceof Map) {
      parts.set(base, [...o].map(([key, v]) => `${name(key, id, 0)}=${name(v, id, 0)}`).join(';'));
      continue;
    }
    if (o instanceof Set) {
      parts.set(base, [...o].map((v) => name(v, id, 0)).join(';'));
      continue;
    }
    if (ArrayBuffer.isView(o)) {
      const a = o as unknown as ArrayLike<number | bigint>;
      for (let i = 0; i < a.length; i++) if (a[i] !== 0 && a[i] !== 0n) parts.set(base + FIELD_INDEX + i, String(a[i]));
      continue;
    }
    for (const prop of Object.keys(o)) {
      const f = fieldOf(prop);
      parts.set(base + f, name((o as Record<string, unknown>)[prop], id, f));
    }
    if (Array.isArray(o)) parts.set(base + fieldOf('length'), String(o.length));
  }
}

/** A CPU's architectural state, TLB and the user step under way. */
function cpuPart(cpu: System['machine']['cpus'][number], u: object): string {
  const regs: string[] = [];
  for (const [k, v] of Object.entries(cpu)) if (typeof v !== 'object' && typeof v !== 'function') regs.push(`${k}=${String(v)}`);
  const tlb = cpu.tlb.entries().map((e) => `${e.slot}:${e.pcid}:${e.laHi}.${e.laLo}>${e.pfn}/${e.rights}`);
  return `${regs.join(',')}|${tlb.join(' ')}|${JSON.stringify(u)}`;
}

/**
 * The keys whose parts differ between two takes of the state: object fields, CPUs, and the
 * words of each frame that changed. The fields of an object made in between are not changes:
 * nothing else could see it before.
 */
export function changedKeys(before: StateParts, after: StateParts): number[] {
  const out: number[] = [];
  // An object made in between, or another object under the same id (a field now holding
  // another untracked object): the change is in the field that refers to it.
  const same = (k: number): boolean => {
    if (k < FP_OBJ) return true;
    const id = Math.floor((k - FP_OBJ) / FIELD_SPAN);
    const serial = before.ids.get(id);
    return serial !== undefined && serial !== -1 && serial === after.ids.get(id);
  };
  for (const [k, v] of after.parts) if (before.parts.get(k) !== v && same(k)) out.push(k);
  for (const k of before.parts.keys()) if (!after.parts.has(k) && same(k)) out.push(k);
  for (const [pfn, w] of after.frames) {
    const b = before.frames.get(pfn);
    for (let i = 0; i < w.length; i += 2) if ((b ? b[i] : 0) !== w[i] || (b ? b[i + 1] : 0) !== w[i + 1]) out.push(pfn * 512 + i / 2);
  }
  return out;
}

/** A key for a report: a word, a CPU, or an object's field. */
export function describeKey(key: number): string {
  if (key >= 0 && key < FP_FRAME) return `physical word 0x${(key * 8).toString(16)}`;
  if (key >= FP_OBJ) {
    const id = Math.floor((key - FP_OBJ) / FIELD_SPAN);
    return `object ${id} field ${fieldName((key - FP_OBJ) % FIELD_SPAN)}`;
  }
  return `key ${key}`;
}

/**
 * Throws a ModelError if a key changed by step `index` (item `item`) is covered by none of the
 * keys it recorded as written.
 */
export function checkWrites(index: number, item: number, changed: number[], writes: number[]): void {
  const missed = changed.filter((k) => !writes.some((w) => fp_overlap(w, k)));
  if (missed.length === 0) return;
  const shown = missed.slice(0, 5).map(describeKey).join('; ');
  throw new ModelError('footprint', `step ${index} (item ${item}) changed ${missed.length} part(s) of the state it did not record as written: ${shown}`);
}
