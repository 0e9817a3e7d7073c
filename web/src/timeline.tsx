/**
 * The per-CPU timeline: a canvas (timeline-draw.ts) under the cursor, a vertical line. Click
 * moves the cursor; drag or horizontal wheel pans; ctrl+wheel and the + / − buttons zoom;
 * hovering shows the events under the pointer. The canvas is redrawn only when the window
 * changes (after the page is painted); moving the cursor only moves the line.
 */
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import type { Recording } from '../../src/see/types.js';
import { KIND_COLORS, type Kind } from './kinds.js';
import type { StepIndex } from './steps.js';
import {
  AXIS, GUTTER, bucketAt, clampView, drawMarks, fitCanvas, laneAt, panView, stepAt, timelineHeight, xOf, zoomView, type View,
} from './timeline-draw.js';

interface Props {
  rec: Recording;
  index: StepIndex;
  step: number;
  /** The highlighted CPU. */
  cpu: number | null;
  onSeek(step: number): void;
}

/** The most events a hover lists. */
const HOVER_EVENTS = 8;

interface Hover {
  x: number;
  y: number;
  title: string;
  lines: { kind: string; text: string }[];
  more: number;
}

interface Drag {
  x: number;
  start: number;
  moved: boolean;
}

/** The timeline of `rec` with the cursor at `step`; clicking a step calls `onSeek`. */
export function Timeline({ rec, index, step, cpu, onSeek }: Props) {
  const wrap = useRef<HTMLDivElement>(null);
  const canvas = useRef<HTMLCanvasElement>(null);
  const total = rec.steps + 1;
  const lanes = rec.machine.cpus;
  const height = timelineHeight(lanes);
  const [width, setWidth] = useState(0);
  const [view, setView] = useState<View>({ start: 0, span: total });
  const [hover, setHover] = useState<Hover | null>(null);
  const drag = useRef<Drag | null>(null);


  // The observer reports the first size after the first layout, without forcing one.
  useLayoutEffect(() => {
    const el = wrap.current!;
    const observer = new ResizeObserver(() => setWidth(el.clientWidth));
    observer.observe(el);
    return () => observer.disconnect();
  }, []);

  // Ctrl+wheel zooms about the pointer, a horizontal wheel pans; the page keeps plain vertical wheels.
  useLayoutEffect(() => {
    const el = canvas.current!;
    const onWheel = (e: WheelEvent): void => {
      const w = el.clientWidth;
      if (e.ctrlKey) {
        e.preventDefault();
        setView((v) => zoomView(v, Math.exp(e.deltaY * 0.002), stepAt(e.offsetX, v, w), total));
      } else if (Math.abs(e.deltaX) > Math.abs(e.deltaY) || e.shiftKey) {
        e.preventDefault();
        setView((v) => panView(v, e.deltaX || e.deltaY, w, total));
      }
    };
    el.addEventListener('wheel', onWheel, { passive: false });
    return () => el.removeEventListener('wheel', onWheel);
  }, [total]);

  // Keep the cursor in the window when it moves out.
  useLayoutEffect(() => {
    setView((v) => (step >= v.start && step + 1 <= v.start + v.span ? v : clampView({ ...v, start: step + 0.5 - v.span / 2 }, total)));
  }, [step]);

  useEffect(() => {
    if (width > 0) drawMarks(fitCanvas(canvas.current!, width, height), rec, index, view, width, cpu);
  }, [width, view, cpu, rec, index]);

  const onPointerDown = (e: PointerEvent): void => {
    (e.currentTarget as HTMLElement).setPointerCapture(e.pointerId);
    drag.current = { x: e.offsetX, start: view.start, moved: false };
  };
  const onPointerMove = (e: PointerEvent): void => {
    const d = drag.current;
    if (!d) {
      setHover(hoverAt(e.offsetX, e.offsetY));
      return;
    }
    const dx = e.offsetX - d.x;
    if (Math.abs(dx) > 3) d.moved = true;
    if (d.moved) setView((v) => panView({ ...v, start: d.start }, -dx, width, total));
  };
  const onPointerUp = (e: PointerEvent): void => {
    const d = drag.current;
    drag.current = null;
    if (d && !d.moved && e.offsetX >= GUTTER) onSeek(Math.min(rec.steps, Math.max(0, Math.floor(stepAt(e.offsetX, view, width)))));
  };

  /** What the pointer at (x, y) is over, or null when it is over no lane. */
  const hoverAt = (x: number, y: number): Hover | null => {
    const lane = laneAt(y, lanes);
    if (lane === null || x < GUTTER) return null;
    const [first, last] = bucketAt(x, view, width, rec.steps);
    if (first > last) return null;
    const lines: Hover['lines'] = [];
    let count = 0;
    for (let s = first; s <= last; s++) {
      const [from, to] = index.range(s);
      for (let i = from; i < to; i++) {
        const e = rec.events[i];
        if (e.cpu !== lane) continue;
        if (count++ < HOVER_EVENTS) lines.push({ kind: e.kind, text: (first < last ? `${s}: ` : '') + e.text });
      }
    }
    const title = `cpu ${lane}, ${first === last ? `step ${first}` : `steps ${first}–${last}`}`;
    return { x, y, title, lines, more: count - lines.length };
  };

  /** Zooms by `factor` about the cursor, or the window's middle when the cursor is out of it. */
  const zoom = (factor: number): void => {
    const at = step >= view.start && step < view.start + view.span ? step + 0.5 : view.start + view.span / 2;
    setView((v) => zoomView(v, factor, at, total));
  };

  return (
    <section class="timeline" data-testid="timeline">
      <div class="timeline-bar">
        <span class="legend">
          {index.present.map((k) => (
            <span key={k} class="legend-kind">
              <i style={{ background: KIND_COLORS[k] }} />
              {k}
            </span>
          ))}
        </span>
        <span class="zoom">
          <button type="button" data-testid="zoom-in" title="zoom in (ctrl+wheel)" onClick={() => zoom(0.5)}>+</button>
          <button type="button" data-testid="zoom-out" title="zoom out (ctrl+wheel)" onClick={() => zoom(2)}>−</button>
          <button type="button" data-testid="zoom-all" title="the whole run" onClick={() => setView({ start: 0, span: total })}>all</button>
        </span>
      </div>
      <div class="timeline-canvas" ref={wrap}>
        <canvas
          ref={canvas}
          style={{ width: `${width}px`, height: `${height}px` }}
          onPointerDown={onPointerDown}
          onPointerMove={onPointerMove}
          onPointerUp={onPointerUp}
          onPointerLeave={() => setHover(null)}
        />
        <div class="cursor" data-testid="cursor" style={cursorStyle(xOf(step + 0.5, view, width), width, height)} />
        {hover && (
          <div class="tip" data-testid="timeline-tip" style={tipStyle(hover, width)}>
            <div class="tip-title">{hover.title}</div>
            {hover.lines.length === 0 && <div class="dim">no event</div>}
            {hover.lines.map((l, i) => (
              <div key={i}>
                <i class="chip" style={{ background: KIND_COLORS[l.kind as Kind] ?? KIND_COLORS.other }} />
                {l.text}
              </div>
            ))}
            {hover.more > 0 && <div class="dim">and {hover.more} more</div>}
          </div>
        )}
      </div>
    </section>
  );
}

/** The cursor line at x, hidden outside the plot. */
function cursorStyle(x: number, width: number, height: number): Record<string, string> {
  const shown = width > 0 && x >= GUTTER && x <= width;
  return { left: `${x - 1}px`, top: `${AXIS - 6}px`, height: `${height - AXIS + 6}px`, display: shown ? 'block' : 'none' };
}

/** Where the hover box goes: below right of the pointer, or below left near the right edge. */
function tipStyle(h: Hover, width: number): Record<string, string> {
  const top = `${h.y + 14}px`;
  return h.x > width - 360 ? { top, right: `${width - h.x + 8}px` } : { top, left: `${h.x + 12}px` };
}
