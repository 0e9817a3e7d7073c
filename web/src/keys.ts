/**
 * The keyboard: ArrowRight / ArrowLeft one step (Shift: 10), Home / End, `n` / `p` the next /
 * previous notable step, `v` the violation. Keys typed into a text field are left alone; on the
 * step slider ours replace the slider's own.
 */
import { useEffect, useRef } from 'preact/hooks';

export interface KeyActions {
  /** Moves the cursor by `delta`. */
  move(delta: number): void;
  /** Moves the cursor to the first / last position. */
  first(): void;
  last(): void;
  /** `n`, `p` and `v`, where the view has them. */
  nextNotable?(): void;
  prevNotable?(): void;
  violation?(): void;
}

/** Calls `actions` on their keys while the component is mounted. */
export function useKeys(actions: KeyActions): void {
  const latest = useRef(actions);
  latest.current = actions;
  useEffect(() => {
    const onKey = (e: KeyboardEvent): void => {
      if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
      const action = actionOf(latest.current, e);
      if (!action) return;
      e.preventDefault();
      action();
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, []);
}

/** The keys and what each does (docs/see.md's table is checked against this one). */
export const KEYS: readonly { key: string; doc: string; action(a: KeyActions, shift: boolean): (() => void) | undefined }[] = [
  { key: 'ArrowRight', doc: 'one step forward (Shift: ten)', action: (a, shift) => () => a.move(shift ? 10 : 1) },
  { key: 'ArrowLeft', doc: 'one step back (Shift: ten)', action: (a, shift) => () => a.move(shift ? -10 : -1) },
  { key: 'Home', doc: 'the first step', action: (a) => a.first },
  { key: 'End', doc: 'the last step', action: (a) => a.last },
  { key: 'n', doc: 'the next step with a fault, syscall, IPI or flush', action: (a) => a.nextNotable },
  { key: 'p', doc: 'the previous such step', action: (a) => a.prevNotable },
  { key: 'v', doc: 'the step of the violation', action: (a) => a.violation },
];

/** What key event `e` does, if anything. */
function actionOf(a: KeyActions, e: KeyboardEvent): (() => void) | undefined {
  return KEYS.find((k) => k.key === e.key)?.action(a, e.shiftKey);
}

/** Whether `target` is a field the user types into (the range slider is not). */
function typing(target: EventTarget | null): boolean {
  if (target instanceof HTMLInputElement) return target.type !== 'range';
  return target instanceof HTMLTextAreaElement || target instanceof HTMLSelectElement || (target instanceof HTMLElement && target.isContentEditable);
}
