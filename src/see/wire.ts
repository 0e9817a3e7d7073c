/**
 * A recording as the page receives it: the same JSON, except that each recording's `events`
 * are packed into columns with one table of their distinct texts and types (most events of a
 * run repeat a text: the entry code's steps, the same flush, the same fault). The page's JSON
 * is about half as large, so the browser parses it in about half the time. Packing and
 * unpacking are exact inverses.
 */
import { COMPARISON_FORMAT, type Comparison, type Recording, type SeeEvent } from './types.js';

/** Events as columns: `strings[text[i]]` is event i's text, `strings[type[i]]` its type, `strings[kind[i]]` its kind. */
export interface PackedEvents {
  packed: 'columns/1';
  step: number[];
  cpu: number[];
  tid: number[];
  type: number[];
  kind: number[];
  text: number[];
  strings: string[];
}

/** The events as columns. */
export function packEvents(events: readonly SeeEvent[]): PackedEvents {
  const index = new Map<string, number>();
  const strings: string[] = [];
  const id = (s: string): number => {
    let i = index.get(s);
    if (i === undefined) {
      i = strings.length;
      strings.push(s);
      index.set(s, i);
    }
    return i;
  };
  const p: PackedEvents = { packed: 'columns/1', step: [], cpu: [], tid: [], type: [], kind: [], text: [], strings };
  for (const e of events) {
    p.step.push(e.step);
    p.cpu.push(e.cpu);
    p.tid.push(e.tid);
    p.type.push(id(e.type));
    p.kind.push(id(e.kind));
    p.text.push(id(e.text));
  }
  return p;
}

/** The events of columns `p`. */
export function unpackEvents(p: PackedEvents): SeeEvent[] {
  const s = p.strings;
  const out: SeeEvent[] = new Array(p.step.length);
  for (let i = 0; i < out.length; i++) out[i] = { step: p.step[i], cpu: p.cpu[i], tid: p.tid[i], type: s[p.type[i]], kind: s[p.kind[i]], text: s[p.text[i]] };
  return out;
}

type Wire<T> = T extends Recording ? Omit<Recording, 'events'> & { events: PackedEvents } : never;
/** A recording or comparison as sent to the page. */
export type WireData = Wire<Recording> | (Omit<Comparison, 'sides'> & { sides: { name: string; recording: Wire<Recording> }[] });

/** `data` with every recording's events packed. */
export function toWire(data: Recording | Comparison): WireData {
  const one = (r: Recording): Wire<Recording> => ({ ...r, events: packEvents(r.events) });
  return data.format === COMPARISON_FORMAT ? { ...data, sides: data.sides.map((s) => ({ name: s.name, recording: one(s.recording) })) } : one(data);
}

/** The data the page shows, from what it received: packed events unpacked (events already as objects are kept). */
export function fromWire(data: { format?: unknown }): Recording | Comparison {
  const one = (r: { events: unknown }): Recording => {
    const ev = r.events as PackedEvents | SeeEvent[];
    return { ...(r as Recording), events: Array.isArray(ev) ? ev : unpackEvents(ev) };
  };
  if (data.format === COMPARISON_FORMAT) {
    const c = data as Comparison;
    return { ...c, sides: c.sides.map((s) => ({ name: s.name, recording: one(s.recording) })) };
  }
  return one(data as Recording);
}
