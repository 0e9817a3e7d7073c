/**
 * The one event stream (DESIGN.md rule 7). The trace, the cost model, the invariant checks,
 * the web view and the tests all read it; nothing recomputes what it says.
 *
 * Emitting costs nothing when nobody listens: every emission site tests `bus.on` (a plain
 * field) before it builds the event object.
 *
 * A bus may have one `stamp` function, run on each event before the listeners see it: the
 * System uses it to add the `tid` of the task current on the event's CPU (system.ts
 * IsolabEvent), so that no producer has to know about tasks. It runs only on emitted events,
 * so it too costs nothing when nobody listens.
 */
import { ArgumentError } from './errors.js';

/** Any event: a `type` tag and the fields its producer documents. */
export interface BaseEvent {
  type: string;
}

/** A listener. It must not throw; it may not change the model. */
export type Listener<E extends BaseEvent> = (event: E) => void;

export class EventBus<E extends BaseEvent> {
  /** True while at least one listener is subscribed. Emission sites test this first. */
  on = false;
  private listeners: Listener<E>[] = [];
  private stamper: ((event: E) => void) | null = null;
  private guard: ((deliver: () => void) => void) | null = null;

  /** Adds a listener; returns the function that removes it. */
  subscribe(listener: Listener<E>): () => void {
    this.listeners = [...this.listeners, listener];
    this.on = true;
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
      this.on = this.listeners.length > 0;
    };
  }

  /**
   * Sets the function that completes each event before delivery (it may add fields, not change
   * the producer's); null removes it. Throws if one is already set and `stamp` is not null.
   */
  setStamp(stamp: ((event: E) => void) | null): void {
    if (stamp !== null && this.stamper !== null) throw new ArgumentError('stamp', 'this event bus already has a stamp function');
    this.stamper = stamp;
  }

  /**
   * Sets the function each delivery (stamp and listeners) runs inside, or null: the explorer
   * uses it to keep what listeners read out of the footprint of the step that emitted the
   * event (explore/execution.ts). Listeners observe; they are not part of the step.
   */
  setGuard(guard: ((deliver: () => void) => void) | null): void {
    this.guard = guard;
  }

  /** Delivers `event` to every listener, in subscription order, after the stamp function. Call only when `on`. */
  emit(event: E): void {
    if (this.guard !== null) this.guard(() => this.deliver(event));
    else this.deliver(event);
  }

  private deliver(event: E): void {
    if (this.stamper !== null) this.stamper(event);
    const ls = this.listeners;
    for (let i = 0; i < ls.length; i++) ls[i](event);
  }

  /** Subscribes a collector and returns the array it fills (for tests and traces). */
  record(): { events: E[]; stop: () => void } {
    const events: E[] = [];
    const stop = this.subscribe((e) => events.push(e));
    return { events, stop };
  }
}
