/**
 * The timeline's geometry and drawing on a canvas: one lane per CPU, steps along x. The events of a window of
 * steps are binned into buckets (a step when a step is at least a pixel wide, else a pixel
 * column); each bucket shows the steps its CPU took as a grey band and every kind of event in
 * it as a coloured stripe. The cost is linear in the events in the window, never one node each.
 * The cursor is not drawn here: it is an element over the canvas, so moving it redraws nothing.
 */
import type { Recording } from '../../src/see/types.js';
import { KIND_COLORS, KINDS } from './kinds.js';
import type { StepIndex } from './steps.js';

/** A bucket's bit for "its lane's CPU took a step in it" (kinds use bits 0 .. KINDS.length - 1). */
const RAN = 1 << 15;

/** Sizes in CSS pixels. */
export const GUTTER = 52;
export const AXIS = 18;
const LANE = 16;
const LANE_GAP = 4;

/** The steps shown: the window [start, start + span), in steps (step s is the cell [s, s + 1)). */
export interface View {
  start: number;
  span: number;
}

/** The fewest steps a window shows. */
const MIN_SPAN = 8;

/** `v` kept inside a run of `total` step cells, its span between MIN_SPAN and the whole run. */
export function clampView(v: View, total: number): View {
  const span = Math.min(total, Math.max(Math.min(MIN_SPAN, total), v.span));
  return { start: Math.min(total - span, Math.max(0, v.start)), span };
}

/** `v` zoomed by `factor` (below 1: in) about step position `at`, which stays in place. */
export function zoomView(v: View, factor: number, at: number, total: number): View {
  return clampView({ span: v.span * factor, start: at - (at - v.start) * factor }, total);
}

/** `v` moved by `px` pixels of a `width`-pixel canvas (positive: later steps). */
export function panView(v: View, px: number, width: number, total: number): View {
  return clampView({ ...v, start: v.start + (px * v.span) / (width - GUTTER) }, total);
}

/** The canvas height for `lanes` lanes. */
export function timelineHeight(lanes: number): number {
  return AXIS + lanes * (LANE + LANE_GAP);
}

/** Pixels per step. */
function scale(view: View, width: number): number {
  return (width - GUTTER) / view.span;
}

/** The x of step position `step` (fractional). */
export function xOf(step: number, view: View, width: number): number {
  return GUTTER + (step - view.start) * scale(view, width);
}

/** The step position (fractional) at x. */
export function stepAt(x: number, view: View, width: number): number {
  return view.start + (x - GUTTER) / scale(view, width);
}

/** The lane at y, or null. */
export function laneAt(y: number, lanes: number): number | null {
  const lane = Math.floor((y - AXIS) / (LANE + LANE_GAP));
  return lane >= 0 && lane < lanes ? lane : null;
}

/** The steps drawn in the same bucket as the step at x: [first, last]. */
export function bucketAt(x: number, view: View, width: number, steps: number): [number, number] {
  const px = scale(view, width);
  let first: number;
  let last: number;
  if (px >= 1) {
    first = last = Math.floor(stepAt(x, view, width));
  } else {
    const col = Math.floor(x - GUTTER);
    first = Math.ceil(view.start + col / px);
    last = Math.ceil(view.start + (col + 1) / px) - 1;
  }
  return [Math.max(0, first), Math.min(steps, last)];
}

/** Sizes `canvas` to width × height CSS pixels at the screen's pixel ratio; its context, scaled to CSS pixels. */
export function fitCanvas(canvas: HTMLCanvasElement, width: number, height: number): CanvasRenderingContext2D {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.round(width * dpr);
  const h = Math.round(height * dpr);
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  const ctx = canvas.getContext('2d')!;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return ctx;
}

/** Draws the lanes, axis and event marks of `view`; `selected` is the highlighted CPU. */
export function drawMarks(ctx: CanvasRenderingContext2D, rec: Recording, index: StepIndex, view: View, width: number, selected: number | null): void {
  const lanes = rec.machine.cpus;
  const height = timelineHeight(lanes);
  const px = scale(view, width);
  ctx.clearRect(0, 0, width, height);
  drawAxis(ctx, view, width, height, px);

  ctx.font = '11px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace';
  ctx.textBaseline = 'middle';
  for (let lane = 0; lane < lanes; lane++) {
    const y = AXIS + lane * (LANE + LANE_GAP);
    ctx.fillStyle = lane === selected ? '#111827' : '#6b7280';
    ctx.fillText(`cpu ${lane}`, 6, y + LANE / 2);
    ctx.fillStyle = lane === selected ? '#eef2ff' : '#f8fafc';
    ctx.fillRect(GUTTER, y, width - GUTTER, LANE);
  }

  // Bin the window's steps and events.
  const perStep = px >= 1;
  const first = Math.max(0, Math.floor(view.start));
  const last = Math.min(rec.steps, Math.ceil(view.start + view.span));
  const buckets = perStep ? last - first + 1 : Math.ceil(width - GUTTER);
  const masks = new Uint16Array(lanes * buckets);
  for (let s = first; s <= last; s++) {
    const b = perStep ? s - first : Math.max(0, Math.floor((s - view.start) * px));
    if (b >= buckets) break;
    if (s > 0) {
      const ran = rec.stepViews[s - 1].cpu;
      if (ran >= 0 && ran < lanes) masks[ran * buckets + b] |= RAN;
    }
    const [from, to] = index.range(s);
    for (let i = from; i < to; i++) {
      const lane = rec.events[i].cpu;
      if (lane >= 0 && lane < lanes) masks[lane * buckets + b] |= 1 << index.kinds[i];
    }
  }

  // One path per colour: the grey bands, then each kind's stripes.
  const gap = perStep && px >= 4 ? 1 : 0;
  const bucketX = (b: number): number => (perStep ? xOf(first + b, view, width) : GUTTER + b);
  const bucketW = perStep ? Math.max(1, px - gap) : 1;
  const fillBuckets = (color: string, rect: (lane: number, b: number, m: number) => void, bit: number): void => {
    ctx.beginPath();
    for (let lane = 0; lane < lanes; lane++) {
      for (let b = 0; b < buckets; b++) {
        const m = masks[lane * buckets + b];
        if (m & bit) rect(lane, b, m);
      }
    }
    ctx.fillStyle = color;
    ctx.fill();
  };
  fillBuckets('#e2e8f0', (lane, b) => ctx.rect(bucketX(b), AXIS + lane * (LANE + LANE_GAP), bucketW, LANE), RAN);
  KINDS.forEach((kind, k) => {
    fillBuckets(KIND_COLORS[kind], (lane, b, m) => {
      const kindsIn = m & (RAN - 1);
      const h = LANE / popcount(kindsIn);
      const y = AXIS + lane * (LANE + LANE_GAP) + popcount(kindsIn & ((1 << k) - 1)) * h;
      ctx.rect(bucketX(b), y, bucketW, h);
    }, 1 << k);
  });
}

/** Draws the step axis: ticks at a round interval at least 70 px apart, with faint grid lines. */
function drawAxis(ctx: CanvasRenderingContext2D, view: View, width: number, height: number, px: number): void {
  const every = roundStep(70 / px);
  ctx.font = '10px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace';
  ctx.textBaseline = 'alphabetic';
  ctx.strokeStyle = '#e5e7eb';
  ctx.fillStyle = '#6b7280';
  ctx.beginPath();
  for (let s = Math.ceil(view.start / every) * every; s <= view.start + view.span; s += every) {
    const x = Math.round(xOf(s, view, width)) + 0.5;
    ctx.moveTo(x, AXIS - 4);
    ctx.lineTo(x, height);
    ctx.fillText(String(s), x + 2, AXIS - 6);
  }
  ctx.stroke();
}

/** The smallest of 1, 2, 5, 10, 20, 50, ... at least `min`. */
function roundStep(min: number): number {
  for (let p = 1; ; p *= 10) {
    for (const m of [1, 2, 5]) if (m * p >= min) return m * p;
  }
}

/** The number of bits set in `m`. */
function popcount(m: number): number {
  let n = 0;
  for (; m; m &= m - 1) n++;
  return n;
}
