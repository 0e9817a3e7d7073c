#!/usr/bin/env node
/**
 * A dev page the way html.ts assembles the real one: #app, the data element, the inline style
 * and script from dist/web (run `npm run build` first).
 *
 *   node web/dev/page.mjs DATA.json OUT.html            the JSON inline (self-contained)
 *   node web/dev/page.mjs DATA.json OUT.html --src      data-src="recording.json", the JSON copied beside OUT.html
 */
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const [data, out, mode] = process.argv.slice(2);
if (!data || !out) {
  console.error('usage: node web/dev/page.mjs DATA.json OUT.html [--src]');
  process.exit(2);
}
const dist = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'web');
const js = readFileSync(join(dist, 'see.js'), 'utf8');
const css = readFileSync(join(dist, 'see.css'), 'utf8');
let element;
if (mode === '--src') {
  copyFileSync(data, join(dirname(out), 'recording.json'));
  element = '<script type="application/json" id="isolab-data" data-src="recording.json"></script>';
} else {
  const json = readFileSync(data, 'utf8').replace(/</g, '\\u003c');
  element = `<script type="application/json" id="isolab-data">${json}</script>`;
}
writeFileSync(out, `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>isolab see (dev)</title><style>${css}</style></head>
<body><div id="app"></div>
${element}
<script>${js}</script>
</body></html>
`);
