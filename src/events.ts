/**
 * The one event stream (DESIGN.md rule 7). The trace, the cost model, the invariant checks,
 * the web view and the tests all read it; nothing recomputes what it says.
 *
 * Emitting costs nothing when nobody listens: every emission site tests `bus.on` (a plain
 * field) before it builds the event object.
 */

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

  /** Adds a listener; returns the function that removes it. */
  subscribe(listener: Listener<E>): () => void {
    this.listeners = [...this.listeners, listener];
    this.on = true;
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
      this.on = this.listeners.length > 0;
    };
  }

  /** Delivers `event` to every listener, in subscription order. Call only when `on`. */
  emit(event: E): void {
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
