/**
 * What a recording is: its scenario, question, machine, schedule and verdict; and the banner of
 * the invariant it broke, if any.
 */
import { memo } from 'preact/compat';
import type { Recording } from '../../src/see/types.js';

/** The scenario's name (with the side's, when comparing), question, machine, schedule and verdict; it never changes. */
export const ScenarioHeader = memo(function ScenarioHeader({ rec, side }: { rec: Recording; side?: string }) {
  const m = rec.machine;
  const s = rec.schedule;
  return (
    <div class="scenario">
      <h1>
        <span data-testid="scenario">{rec.scenario.name}</span>
        {side && <span class="side-name"> · {side}</span>}
        <span class={`verdict ${rec.passed ? 'passed' : 'failed'}`} data-testid="verdict">
          {rec.passed ? 'passed' : 'failed'}
          {rec.finished ? '' : ', unfinished'}
        </span>
      </h1>
      {rec.scenario.question && <p class="question" data-testid="question">{rec.scenario.question}</p>}
      <div class="meta">
        {m.cpus} CPUs · {m.levels}-level paging · PCID {m.pcid ? 'on' : 'off'} · PTI {m.pti ? 'on' : 'off'} · {rec.steps} steps ·{' '}
        {rec.events.length} events
      </div>
      <details class="schedule">
        <summary>
          schedule <span class="dim">({s.policy}, seed {s.seed})</span> <code class="schedule-line">{s.text}</code>
        </summary>
        <code class="schedule-text" data-testid="schedule">{s.text}</code>
      </details>
    </div>
  );
});

interface ViolationProps {
  violation: NonNullable<Recording['violation']>;
  /** The link to its step, and what following it does. */
  href: string;
  onGo(): void;
}

/** The counterexample: the invariant broken, how, and a link to the step that broke it. */
export function ViolationBanner({ violation, href, onGo }: ViolationProps) {
  return (
    <div class="violation" data-testid="violation">
      <strong data-testid="violation-invariant">{violation.invariant}</strong>
      <span data-testid="violation-message">{violation.message}</span>
      <a
        href={href}
        data-testid="violation-goto"
        onClick={(e) => {
          e.preventDefault();
          onGo();
        }}
      >
        go to step {violation.step}
      </a>
    </div>
  );
}
