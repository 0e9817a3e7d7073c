/**
 * The cursor's controls and read-out: ◀ ▶, the slider, `step s / N`, and what the step did.
 */
import type { Recording, StepView } from '../../src/see/types.js';
import type { StepIndex } from './steps.js';

interface ControlsProps {
  /** The cursor and its last position (the first is 0). */
  at: number;
  last: number;
  /** What the cursor counts, for the read-out ("step", "row"). */
  unit: string;
  onSeek(at: number): void;
}

/** ◀ ▶ and a slider over 0 .. last, and `unit at / last`. */
export function Controls({ at, last, unit, onSeek }: ControlsProps) {
  const go = (to: number): void => onSeek(Math.min(last, Math.max(0, to)));
  return (
    <div class="controls">
      <button type="button" data-testid="prev" title="previous (←, shift: 10)" disabled={at <= 0} onClick={() => go(at - 1)}>◀</button>
      <button type="button" data-testid="next" title="next (→, shift: 10)" disabled={at >= last} onClick={() => go(at + 1)}>▶</button>
      <input
        type="range"
        data-testid="slider"
        min={0}
        max={last}
        value={at}
        onInput={(e) => go(Number((e.currentTarget as HTMLInputElement).value))}
      />
      <span class="position">
        {unit} <b data-testid={unit}>{at}</b> / {last}
      </span>
    </div>
  );
}

interface StepProps {
  rec: Recording;
  index: StepIndex;
  step: number;
}

/** Which CPU took step `step` and what it ran, then the step's events in words. */
export function StepEvents({ rec, index, step }: StepProps) {
  const view = step > 0 ? rec.stepViews[step - 1] : null;
  return (
    <div class="step-events">
      <div class="step-what" data-testid="step-what">
        {view ? stepWords(view) : 'start: the processes started, before the first step'}
      </div>
      <div class="event" data-testid="event">{index.text(step)}</div>
    </div>
  );
}

/** "cpu 1 · tid 3 · user op", leaving out the CPU and task when the step had none. */
function stepWords(v: StepView): string {
  return [v.cpu >= 0 ? `cpu ${v.cpu}` : '', v.tid > 0 ? `tid ${v.tid}` : '', v.what].filter(Boolean).join(' · ');
}
