/**
 * One recording on one step cursor: the header and controls, the counterexample, the timeline,
 * and the machine at the cursor. The cursor and the selection live in the URL hash.
 */
import { useMemo, useState } from 'preact/hooks';
import type { Recording } from '../../src/see/types.js';
import { Controls, StepEvents } from './controls.js';
import { ScenarioHeader, ViolationBanner } from './header.js';
import { useKeys } from './keys.js';
import { useSelection } from './selection.js';
import { Snapshot } from './snapshot.js';
import { StateWalker } from './state.js';
import { StepIndex } from './steps.js';
import { Timeline } from './timeline.js';
import { formatHash, parseHash, useHash, type Link } from './url.js';

/** The page for one recording. */
export function RecordingView({ rec }: { rec: Recording }) {
  const index = useMemo(() => new StepIndex(rec), [rec]);
  const walker = useMemo(() => new StateWalker(rec), [rec]);
  const initial = useMemo(() => parseHash(location.hash), []);
  const clamp = (s: number): number => Math.min(rec.steps, Math.max(0, s));
  // The page opens at the violation unless the link names a step.
  const [step, setStep] = useState(() => clamp(initial.step ?? rec.violation?.step ?? 0));
  const { selection, actions, restore } = useSelection(initial);
  walker.seek(step);

  const link = (at: number): Link => ({ step: at, row: null, cpu: selection.cpu, mm: selection.mm, ...selection.expansion });
  useHash(link(step), (l) => {
    if (l.step !== null) setStep(clamp(l.step));
    restore(l);
  });
  const violation = rec.violation;
  useKeys({
    move: (by) => setStep((s) => clamp(s + by)),
    first: () => setStep(0),
    last: () => setStep(rec.steps),
    nextNotable: () => setStep((s) => index.nextNotable(s)),
    prevNotable: () => setStep((s) => index.prevNotable(s)),
    violation: violation ? () => setStep(clamp(violation.step)) : undefined,
  });

  return (
    <div class="page">
      <header class="top">
        <ScenarioHeader rec={rec} />
      </header>
      <div class="bar">
        <Controls at={step} last={rec.steps} unit="step" onSeek={setStep} />
        <StepEvents rec={rec} index={index} step={step} />
      </div>
      {violation && <ViolationBanner violation={violation} href={formatHash(link(violation.step))} onGo={() => setStep(clamp(violation.step))} />}
      <Timeline rec={rec} index={index} step={step} cpu={selection.cpu} onSeek={setStep} />
      <Snapshot rec={rec} walker={walker} selection={selection} actions={actions} />
    </div>
  );
}
