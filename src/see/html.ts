/**
 * The page of `isolab see`: one HTML document with the bundled viewer (web/, built by
 * bundle.ts into dist/web/) and its style inline, and the recording either inline (a
 * self-contained file: opens from disk with no network access) or fetched from the server
 * beside it (`data-src`).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { IsolabError } from '../errors.js';
import { COMPARISON_FORMAT, type Comparison, type Recording } from './types.js';
import { toWire } from './wire.js';

/** The viewer's script and style are missing (the package was not built). */
export class SeeAssetsError extends IsolabError {
  constructor(message: string) {
    super('ESEEASSETS', message);
  }
}

/** The bundled viewer: its script and its style, read once from dist/web/. */
export interface SeeAssets {
  js: string;
  css: string;
}

let cached: SeeAssets | null = null;

/** The viewer as built by `npm run build` (dist/web/see.js and see.css). Throws SeeAssetsError when it is not there. */
export function seeAssets(): SeeAssets {
  if (cached) return cached;
  const dir = new URL('../../web/', import.meta.url);
  try {
    cached = { js: readFileSync(new URL('see.js', dir), 'utf8'), css: readFileSync(new URL('see.css', dir), 'utf8') };
  } catch {
    throw new SeeAssetsError(`the viewer is not built: ${fileURLToPath(dir)}see.js is missing; run npm run build`);
  }
  return cached;
}

/** `text` safe inside a <`tag`> element: no `</tag` that could close it (`<\/` means the same in a script's strings and regular expressions; the style has none). */
function inElement(text: string, tag: 'script' | 'style'): string {
  return text.replace(tag === 'script' ? /<\/(script)/gi : /<\/(style)/gi, '<\\/$1');
}

/** JSON safe inside a <script type="application/json"> element: every `<` escaped, so no `</script>` or `<!--` can occur. */
export function jsonInScript(data: unknown): string {
  return JSON.stringify(data).replace(/</g, '\\u003c');
}

/** HTML text: &, <, >, " escaped. */
function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** The title of a recording or comparison. */
function titleOf(data: Recording | Comparison): string {
  return data.format === COMPARISON_FORMAT ? `${data.sides[0]?.recording.scenario.name ?? 'compare'}: ${data.sides.map((s) => s.name).join(' against ')}` : data.scenario.name;
}

/**
 * The page: with `src`, the recording is fetched from that relative URL (the server's page);
 * without, it is inline (a self-contained file).
 */
export function renderPage(data: Recording | Comparison, assets: SeeAssets, src?: string): string {
  const payload = src === undefined ? `<script type="application/json" id="isolab-data">${jsonInScript(toWire(data))}</script>` : `<script type="application/json" id="isolab-data" data-src="${escapeHtml(src)}"></script>`;
  return [
    '<!doctype html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    // Nothing is fetched but the recording from the page's own origin (server mode).
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'">`,
    `<title>isolab see: ${escapeHtml(titleOf(data))}</title>`,
    `<style>${inElement(assets.css, 'style')}</style>`,
    '</head>',
    '<body>',
    '<div id="app"></div>',
    payload,
    `<script>${inElement(assets.js, 'script')}</script>`,
    '</body>',
    '</html>',
    '',
  ].join('\n');
}
