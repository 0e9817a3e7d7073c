#!/usr/bin/env node
/**
 * Opens a dev page (page.mjs) in headless Chromium, times opening it and moving the cursor, and
 * takes a screenshot.
 *
 *   node web/dev/check.mjs PAGE.html [SHOT.png] [--hash '#step=12']
 *
 * The page's directory is served over HTTP, so data-src pages load too.
 */
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { chromium } from 'playwright-core';

const args = process.argv.slice(2);
const hashAt = args.indexOf('--hash');
const hash = hashAt >= 0 ? args.splice(hashAt, 2)[1] : '';
const [pagePath, shot] = args;
const root = dirname(pagePath);
const types = { '.html': 'text/html', '.json': 'application/json' };
const server = createServer(async (req, res) => {
  try {
    const body = await readFile(join(root, decodeURIComponent(new URL(req.url, 'http://x').pathname)));
    res.writeHead(200, { 'content-type': types[extname(req.url)] ?? 'application/octet-stream' });
    res.end(body);
  } catch {
    res.writeHead(404).end();
  }
}).listen(0);
const url = `http://127.0.0.1:${server.address().port}/${basename(pagePath)}${hash}`;

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
page.on('pageerror', (e) => console.error('page error:', e.message));
page.on('console', (m) => m.type() === 'error' && console.error('console:', m.text()));

const t0 = Date.now();
await page.goto(url);
await page.waitForSelector('[data-testid="step"], [data-testid="error"]');
const open = Date.now() - t0;
const nav = await page.evaluate(() => performance.now());
console.log(`open: ${open} ms (page clock ${nav.toFixed(0)} ms)  url: ${await page.evaluate(() => location.hash)}`);

/**
 * Presses `key` in the page; the ms until the step read-out changed (the DOM updated) and until
 * the next frame after that was drawn.
 */
const press = (key, shiftKey = false) =>
  page.evaluate(({ key, shiftKey }) => new Promise((done) => {
    const el = document.querySelector('[data-testid="step"], [data-testid="row"]');
    const before = el.textContent;
    const t = performance.now();
    const observer = new MutationObserver(() => {
      if (el.textContent === before) return;
      observer.disconnect();
      const dom = performance.now() - t;
      requestAnimationFrame(() => setTimeout(() => done([dom, performance.now() - t]), 0));
    });
    observer.observe(el, { characterData: true, childList: true, subtree: true });
    document.body.dispatchEvent(new KeyboardEvent('keydown', { key, shiftKey, bubbles: true }));
  }), { key, shiftKey });

if (await page.$('[data-testid="step"], [data-testid="row"]')) {
  const times = { right: [], left: [], home: [] };
  for (let i = 0; i < 30; i++) times.right.push(await press('ArrowRight'));
  for (let i = 0; i < 30; i++) times.left.push(await press('ArrowLeft'));
  const stat = (xs) => {
    const sorted = [...xs].sort((a, b) => a - b);
    return `median ${sorted[sorted.length >> 1].toFixed(1)}, max ${sorted[sorted.length - 1].toFixed(1)}`;
  };
  const stats = (ts) => `DOM ${stat(ts.map((t) => t[0]))} ms; painted ${stat(ts.map((t) => t[1]))} ms`;
  console.log(`step →: ${stats(times.right)}`);
  console.log(`step ←: ${stats(times.left)}`);
  const jumps = { end: [], home: [] };
  for (let i = 0; i < 5; i++) {
    jumps.end.push(await press('End'));
    jumps.home.push(await press('Home'));
  }
  console.log(`End: ${stats(jumps.end)}`);
  console.log(`Home: ${stats(jumps.home)}`);
}
if (shot) {
  if (hash) await page.goto(url);
  await page.waitForTimeout(200);
  await page.screenshot({ path: shot, fullPage: true });
}
await browser.close();
server.close();
