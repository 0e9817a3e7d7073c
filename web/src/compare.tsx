/**
 * Two (or more) recordings side by side on one cursor over their aligned rows: at row r each
 * side shows its state after the step at which r's operation completed there (a side where it
 * did not run shows the nearest earlier row's step). The cursor and selection live in the hash.
 */
import { useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { Comparison, Recording } from '../../src/see/types.js';
import { Controls, StepEvents } from './controls.js';
import { ScenarioHeader, ViolationBanner } from './header.js';
import { useKeys } from './keys.js';
import { useSelection, type Selection, type SelectionActions } from './selection.js';
import { Snapshot } from './snapshot.js';
import { StateWalker } from './state.js';
import { StepIndex } from './steps.js';
import { Timeline } from './timeline.js';
import { formatHash, parseHash, useHash, type Link } from './url.js';

/** A side, indexed once. */
interface Side {
  name: string;
  rec: Recording;
  index: StepIndex;
  walker: StateWalker;
  /** Per row, the step this side shows there. */
  steps: Int32Array;
}

/** The rows the rows table shows around the cursor. */
const ROWS_WINDOW = 200;

/** The page for a comparison. */
export function CompareView({ cmp }: { cmp: Comparison }) {
  const last = Math.max(0, cmp.rows.length - 1);
  const sides = useMemo(
    () =>
      cmp.sides.map((s, i): Side => ({
        name: s.name,
        rec: s.recording,
        index: new StepIndex(s.recording),
        walker: new StateWalker(s.recording),
        steps: rowSteps(cmp, i),
      })),
    [cmp],
  );
  const initial = useMemo(() => parseHash(location.hash), []);
  const clamp = (r: number): number => Math.min(last, Math.max(0, r));
  const [row, setRow] = useState(() => clamp(initial.row ?? 0));
  const { selection, actions, restore } = useSelection(initial);

  const link = (at: number): Link => ({ step: null, row: at, cpu: selection.cpu, mm: selection.mm, ...selection.expansion });
  useHash(link(row), (l) => {
    if (l.row !== null) setRow(clamp(l.row));
    restore(l);
  });
  useKeys({
    move: (by) => setRow((r) => clamp(r + by)),
    first: () => setRow(0),
    last: () => setRow(last),
  });

  return (
    <div class="page compare">
      <header class="top">
        <h1>
          {cmp.sides.map((s) => s.name).join(' vs ')}
          <span class="dim"> · {cmp.sides[0]?.recording.scenario.name}</span>
        </h1>
      </header>
      <div class="bar">
        <Controls at={row} last={last} unit="row" onSeek={setRow} />
        <div class="event" data-testid="op">{cmp.rows[row]?.op ?? 'no aligned operation'}</div>
      </div>
      <RowsTable cmp={cmp} row={row} onSeek={setRow} />
      <div class="sides" style={{ gridTemplateColumns: `repeat(${sides.length}, minmax(0, 1fr))` }}>
        {sides.map((side, i) => (
          <SideView
            key={i}
            side={side}
            i={i}
            step={side.steps[row] ?? 0}
            selection={selection}
            actions={actions}
            onSeek={(s) => setRow(rowAt(side, s))}
            violationHref={side.rec.violation ? formatHash(link(rowAt(side, side.rec.violation.step))) : ''}
          />
        ))}
      </div>
    </div>
  );
}

/** Per row, the step side `i` shows there: its own, else the nearest earlier row's, else 0. */
function rowSteps(cmp: Comparison, i: number): Int32Array {
  const steps = new Int32Array(cmp.rows.length);
  let at = 0;
  cmp.rows.forEach((r, k) => {
    at = r.steps[i] ?? at;
    steps[k] = at;
  });
  return steps;
}

/** The last row at which `side` shows step `step` or an earlier one (0 when none). */
function rowAt(side: Side, step: number): number {
  let row = 0;
  side.steps.forEach((s, k) => {
    if (s <= step) row = k;
  });
  return row;
}

interface SideProps {
  side: Side;
  i: number;
  step: number;
  selection: Selection;
  actions: SelectionActions;
  /** Moves the shared cursor to show step `step` of this side. */
  onSeek(step: number): void;
  /** The link to the row of its violation. */
  violationHref: string;
}

/** One side: its header, step, events, timeline and machine. */
function SideView({ side, i, step, selection, actions, onSeek, violationHref }: SideProps) {
  const { rec, index, walker } = side;
  walker.seek(step);
  return (
    <section class="side" data-testid={`side-${i}`}>
      <ScenarioHeader rec={rec} side={side.name} />
      {rec.violation && <ViolationBanner violation={rec.violation} href={violationHref} onGo={() => onSeek(rec.violation!.step)} />}
      <div class="side-step">
        step <b data-testid="step">{step}</b> / {rec.steps}
      </div>
      <StepEvents rec={rec} index={index} step={step} />
      <Timeline rec={rec} index={index} step={step} cpu={selection.cpu} onSeek={onSeek} />
      <Snapshot rec={rec} walker={walker} selection={selection} actions={actions} />
    </section>
  );
}

/** The aligned rows around the cursor: each row's operation and step per side; click moves the cursor. */
function RowsTable({ cmp, row, onSeek }: { cmp: Comparison; row: number; onSeek(row: number): void }) {
  const box = useRef<HTMLDivElement>(null);
  const from = Math.max(0, Math.min(row - ROWS_WINDOW / 2, cmp.rows.length - ROWS_WINDOW));
  const shown = cmp.rows.slice(from, from + ROWS_WINDOW);
  // Keep the cursor's row in the middle of the box.
  useLayoutEffect(() => {
    const el = box.current!;
    const current = el.querySelector<HTMLElement>('tr.current');
    if (current) el.scrollTop = current.offsetTop - el.clientHeight / 2;
  }, [row]);
  return (
    <div class="scroll rows-scroll" ref={box}>
      <table class="rows" data-testid="rows">
        <thead>
          <tr>
            <th>row</th>
            <th>operation</th>
            {cmp.sides.map((s) => (
              <th key={s.name}>{s.name}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {shown.map((r, k) => (
            <tr key={from + k} data-row={from + k} class={from + k === row ? 'current' : undefined} onClick={() => onSeek(from + k)}>
              <td>{from + k}</td>
              <td>{r.op}</td>
              {r.steps.map((s, i) => (
                <td key={i} data-side={i}>{s ?? '—'}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
