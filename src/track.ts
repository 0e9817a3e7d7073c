/**
 * Tracked kernel objects: how the explorer learns which fields of the kernel's JavaScript
 * objects a step reads and writes (explore/execution.ts), at the granularity of one field.
 *
 * While an Execution boots and steps, a tracking context is current (`tracked`). Kernel
 * classes whose instances are shared between CPUs pass `this` through `track` at the end of
 * their constructors; while a context is current that returns a Proxy, so every later access,
 * a local variable's included, goes through it. An object reached through a tracked object's
 * field (an array, a Map, a plain record, an instance of an untracked class) is wrapped when
 * it is read, with an identity of its own, and the same Proxy is returned each time.
 *
 * With a sink installed (`TrackContext.fp`) every read and write of a field is reported as a
 * key (footprint.ts):
 *  - FP_OBJ + id * FIELD_SPAN + field, where `field` numbers the property (named ones from a
 *    process-wide table, an array or typed array index i as FIELD_INDEX + i) and `id` names
 *    the object (below);
 *  - field 0 is the whole object: a Map's or Set's contents, a typed array's bulk operations,
 *    an enumeration of the keys. It overlaps every field of the object (fp_overlap).
 * Methods are not reported (reading them is not reading state); a getter reports what it reads.
 *
 * An object's id must be the same in every interleaving where it is the same object, because
 * the explorer compares a step's footprint recorded in one execution with steps of another
 * (sleep sets, replays). A counter in the order objects are met would not be: who meets an
 * object first depends on the interleaving. So an id is a hash of how the object came to be:
 *  - made by a tracked constructor, or stored into a tracked object while not yet named: the
 *    explorer's thread whose step it was (`TrackContext.item`: a CPU, or an eviction,
 *    preemption or reclaim choice; boot and the unexplored tail have their own) and how many
 *    objects that thread has named before. A thread's steps are the same, in the same order,
 *    in every interleaving of a trace, so are the objects it names;
 *  - met first as a field of a named object (an array, a Map, a record it owns): the owner's id
 *    and the field.
 * Two objects whose hashes collide share their keys (ids are 29 bits): their accesses conflict
 * more than they need, never less.
 *
 * Objects that are not the kernel's state are never wrapped (`opaque`): the machine, its
 * physical memory and CPUs (footprint.ts reports their accesses itself), the event bus,
 * compiled programs, and generators (a kernel path's frames).
 *
 * This module is the simulator's instrumentation, not the kernel model, and keeps what the
 * model may not (test/kernel/module-state.test.ts): the context current during a step, set and
 * restored synchronously around it (no kernel value crosses a yield in it), and process-wide
 * identity tables (which objects are Proxies, which are opaque, the field-name numbering).
 *
 * No context is current in a plain run: `track` returns the object itself and costs one test.
 * The context is set only for the synchronous length of a boot or a step (`tracked`), so a
 * plain run in the same process between two steps of an exploration sees no Proxy made for it.
 *
 * The rule for kernel code this asks for: a class whose instances CPUs share ends its
 * constructor with `return track(this)`, and an object literal a path keeps in a local variable
 * across a yield while other CPUs can reach it (a flush request) is made with `track({...})`.
 * What slips past (a write through a reference never tracked, a table written through its raw
 * words without telling the sink) is what explore/fpcheck.ts finds.
 */
import { FP_OBJ, FIELD_INDEX, FIELD_SPAN, type FootprintSink } from './hw/footprint.js';

/** One Execution's tracking: its sink and its object numbering. */
export class TrackContext {
  /** Where accesses go while a step is recorded; null while the explorer itself looks at the state or replays. */
  fp: FootprintSink | null = null;
  /** The explorer's thread the current step belongs to (an Execution item; BOOT_ITEM and TAIL_ITEM outside the search). */
  item = BOOT_ITEM;
  /** Objects each thread has named so far. */
  private readonly named = new Map<number, number>();
  /** Each raw object's Proxy. */
  readonly proxies = new WeakMap<object, object>();

  /** A fresh id for an object the current thread names (made or first stored by its step). */
  nameByThread(): number {
    const n = this.named.get(this.item) ?? 0;
    this.named.set(this.item, n + 1);
    // Items reach past 32 bits (eviction, preemption and reclaim items are below -2^32).
    return mixId(mixId(this.item % 2 ** 32 | 0, Math.floor(this.item / 2 ** 32) | 0), n);
  }
}

/** The thread of the boot and of the setup before the search. */
export const BOOT_ITEM = 2 ** 30;
/** The thread of the unexplored tail (until 'ops') and the end of an execution. */
export const TAIL_ITEM = 2 ** 30 + 1;

/** An id below 2^29 from two numbers (bit mixing; a collision only merges two objects' keys): for an object first met as field `b` of the object with id `a`. */
export function mixId(a: number, b: number): number {
  let h = Math.imul((a | 0) ^ 0x85ebca6b, 0xcc9e2d51) ^ Math.imul(b | 0, 0x1b873593);
  h ^= h >>> 15;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return ((h >>> 0) % (2 ** 29 - 1)) + 1;
}

let current: TrackContext | null = null;

/** Each Proxy's raw object, id and context. */
const RAW = new WeakMap<object, { target: object; id: number; c: TrackContext }>();

/** Runs `fn` with `c` current (an Execution's boot or step); restores what was current before. */
export function tracked<R>(c: TrackContext, fn: () => R): R {
  const saved = current;
  current = c;
  try {
    return fn();
  } finally {
    current = saved;
  }
}

/** For a kernel constructor's `return track(this)`: the object, or its Proxy while a context is current. */
export function track<T extends object>(o: T): T {
  return current ? (wrap(current, o, 0) as T) : o;
}

const OPAQUE = new WeakSet<object>();

/** Marks `o` as never tracked (hardware, the event bus, compiled programs), when a context is current (a plain run marks nothing). Returns it. */
export function opaque<T extends object>(o: T): T {
  if (current) OPAQUE.add(o);
  return o;
}

/**
 * Marks `o` as never tracked, context or not: for a table of code made once (a file's
 * operations) whose identity a kernel path compares, and which a run outside any context (a
 * prefix run plainly, then explored) may first reach. Returns it.
 */
export function opaqueCode<T extends object>(o: T): T {
  OPAQUE.add(o);
  return o;
}

/** Whether `o` was marked as never tracked. */
export function isOpaque(o: object): boolean {
  return OPAQUE.has(o);
}

/** The object behind a tracked Proxy, or `o` itself. Reads through it are not reported. */
export function rawOf<T extends object>(o: T): T {
  const r = RAW.get(o);
  return r ? (r.target as T) : o;
}

/** The id context `c` gave object `o` (raw, or its Proxy), or 0 if it has none (never wrapped). */
export function trackedId(c: TrackContext, o: object): number {
  const own = RAW.get(o);
  if (own) return own.id;
  const p = c.proxies.get(o);
  const r = p ? RAW.get(p) : undefined;
  return r ? r.id : 0;
}

/** Marks `o` and every object reachable from it as never tracked (a compiled program: read-only code), when a context is current. Returns it. */
export function opaqueTree<T extends object>(o: T): T {
  if (!current) return o;
  const todo: object[] = [o];
  while (todo.length > 0) {
    const x = todo.pop()!;
    if (OPAQUE.has(x)) continue;
    OPAQUE.add(x);
    const values = x instanceof Map || x instanceof Set ? [...x.values()] : ArrayBuffer.isView(x) ? [] : Object.values(x);
    for (const v of values) if (typeof v === 'object' && v !== null) todo.push(v);
  }
  return o;
}

/**
 * The object behind a tracked Proxy (itself if it is not one), after reporting a read of the
 * whole of it: for code that reads every element of a large array (the debug checks' scan of
 * every frame), one key instead of one trap per element.
 */
export function readWhole<T extends object>(o: T): T {
  const r = RAW.get(o);
  if (!r) return o;
  if (r.c.fp) r.c.fp.read(FP_OBJ + r.id * FIELD_SPAN);
  return r.target as T;
}

const FIELDS = new Map<string, number>();
const FIELD_NAMES: string[] = ['*'];

/** The number of property `prop` (process-wide; an array index i is FIELD_INDEX + i). */
export function fieldOf(prop: string): number {
  const c = prop.charCodeAt(0);
  if (c >= 48 && c <= 57) {
    const i = Number(prop);
    // Indices past the span share keys (modulo): more conflicts, never fewer.
    if (Number.isInteger(i) && i >= 0) return FIELD_INDEX + (i % (FIELD_SPAN - FIELD_INDEX));
  }
  let f = FIELDS.get(prop);
  if (f === undefined) {
    f = FIELD_NAMES.length;
    if (f >= FIELD_INDEX) throw new Error(`track: more than ${FIELD_INDEX - 1} field names`);
    FIELDS.set(prop, f);
    FIELD_NAMES.push(prop);
  }
  return f;
}

/** A field number's name, for reports. */
export function fieldName(f: number): string {
  return f >= FIELD_INDEX ? `[${f - FIELD_INDEX}]` : FIELD_NAMES[f] ?? `#${f}`;
}

/** Whether `v` is an object a tracked field may hand out wrapped. */
function wrappable(v: object): boolean {
  if (OPAQUE.has(v)) return false;
  // A generator (a kernel path) keeps its frames to itself; resuming one through a Proxy fails.
  return typeof (v as { next?: unknown }).next !== 'function' || typeof (v as { throw?: unknown }).throw !== 'function';
}

/**
 * The Proxy of `o`, made if need be: named by the current thread (`owner` 0) or as field
 * `field` of the object with id `owner`.
 */
function wrap(c: TrackContext, o: object, owner: number, field = 0): object {
  if (RAW.has(o)) return o;
  const p = c.proxies.get(o);
  if (p) return p;
  if (!wrappable(o)) return o;
  const id = owner === 0 ? c.nameByThread() : mixId(owner, field);
  const proxy = new Proxy(o, handlerFor(c, o, id));
  c.proxies.set(o, proxy);
  RAW.set(proxy, { target: o, id, c });
  return proxy;
}

/** A value read out of field `field` of the object with id `owner`: objects come back tracked. */
function out(c: TrackContext, v: unknown, owner: number, field: number): unknown {
  return typeof v === 'object' && v !== null ? wrap(c, v, owner, field) : v;
}

/** A value stored into a tracked object: an object not yet named is named by the storing thread. */
function stored(c: TrackContext, v: unknown): void {
  if (typeof v === 'object' && v !== null) wrap(c, v, 0);
}

/** Whether a prototype chain defines an accessor (a getter or setter), by prototype. */
const GETTERS = new WeakMap<object, boolean>();

function hasGetters(proto: object | null): boolean {
  if (proto === null || proto === Object.prototype || proto === Array.prototype) return false;
  let known = GETTERS.get(proto);
  if (known === undefined) {
    known = Object.values(Object.getOwnPropertyDescriptors(proto)).some((d) => d.get !== undefined || d.set !== undefined) || hasGetters(Object.getPrototypeOf(proto) as object | null);
    GETTERS.set(proto, known);
  }
  return known;
}

/** Map and Set methods that change the contents. */
const COLLECTION_WRITES: ReadonlySet<string> = new Set(['set', 'add', 'delete', 'clear']);
/** Typed-array methods that change the contents. */
const TYPED_WRITES: ReadonlySet<string> = new Set(['fill', 'set', 'copyWithin', 'sort', 'reverse']);

function handlerFor(c: TrackContext, target: object, id: number): ProxyHandler<object> {
  const base = FP_OBJ + id * FIELD_SPAN;
  if (target instanceof Map || target instanceof Set) {
    // The contents are one field (0); every method runs on the raw collection.
    return {
      get(t, prop) {
        const v = Reflect.get(t, prop, t);
        if (typeof v === 'function') {
          const fn = v as (...a: unknown[]) => unknown;
          const write = typeof prop === 'string' && COLLECTION_WRITES.has(prop);
          return (...args: unknown[]) => {
            if (c.fp) (write ? c.fp.write(base) : c.fp.read(base));
            if (write) for (const a of args) stored(c, a);
            const r = fn.apply(t, args);
            if (r === t) return c.proxies.get(t);
            // Values come back tracked; iterators of contents yield the stored values as they are.
            return prop === 'get' ? out(c, r, id, 0) : r;
          };
        }
        if (c.fp) c.fp.read(base);
        return v;
      },
    };
  }
  if (ArrayBuffer.isView(target)) {
    return {
      get(t, prop) {
        const v = (t as unknown as Record<string | symbol, unknown>)[prop];
        if (typeof v === 'function') {
          const fn = v as (...a: unknown[]) => unknown;
          const write = typeof prop === 'string' && TYPED_WRITES.has(prop);
          return (...args: unknown[]) => {
            if (c.fp) (write ? c.fp.write(base) : c.fp.read(base));
            return fn.apply(t, args);
          };
        }
        if (c.fp && typeof prop === 'string') c.fp.read(base + fieldOf(prop));
        return v;
      },
      set(t, prop, value) {
        if (c.fp && typeof prop === 'string') c.fp.write(base + fieldOf(prop));
        (t as unknown as Record<string | symbol, unknown>)[prop] = value;
        return true;
      },
    };
  }
  // A getter must run on the Proxy (so what it reads is reported); a plain field is read directly.
  const viaReceiver = hasGetters(Object.getPrototypeOf(target) as object | null);
  return {
    get(t, prop, receiver) {
      const v = viaReceiver ? Reflect.get(t, prop, receiver) : (t as Record<string | symbol, unknown>)[prop];
      if (typeof prop !== 'string') return v;
      if (typeof v !== 'object') {
        if (c.fp !== null && typeof v !== 'function') c.fp.read(base + fieldOf(prop));
        return v;
      }
      if (v === null || RAW.has(v)) {
        if (c.fp !== null) c.fp.read(base + fieldOf(prop));
        return v;
      }
      const f = fieldOf(prop);
      if (c.fp !== null) c.fp.read(base + f);
      return wrap(c, v, id, f);
    },
    set(t, prop, value) {
      if (typeof prop === 'string') {
        if (c.fp !== null) {
          c.fp.write(base + fieldOf(prop));
          // An array cut short loses its last elements without a write to each: the whole array is written.
          if (prop === 'length' && Array.isArray(t) && (value as number) < t.length) c.fp.write(base);
        }
        if (typeof value === 'object' && value !== null && !RAW.has(value)) stored(c, value);
      }
      (t as Record<string | symbol, unknown>)[prop] = value;
      return true;
    },
    deleteProperty(t, prop) {
      if (c.fp && typeof prop === 'string') c.fp.write(base + fieldOf(prop));
      return Reflect.deleteProperty(t, prop);
    },
    has(t, prop) {
      if (c.fp && typeof prop === 'string') c.fp.read(base + fieldOf(prop));
      return Reflect.has(t, prop);
    },
    ownKeys(t) {
      if (c.fp) c.fp.read(base);
      return Reflect.ownKeys(t);
    },
  };
}

