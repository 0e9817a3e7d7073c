#!/usr/bin/env node
/**
 * Drives the dev pages in headless Chromium and checks what the page promises (web/README.md):
 * the read-outs, keys, hash links, page-table rows and bits, TLB rows, timeline clicks, the
 * comparison, server mode and the refusal of an unknown format. Builds its own pages in
 * dist/dev from fixture.mjs and dist/web (run `npm run build` first).
 *
 *   node web/dev/smoke.mjs
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const out = join(repo, 'dist', 'dev', 'smoke');
mkdirSync(out, { recursive: true });
const node = (script, args, file) => {
  const text = execFileSync('node', [join(repo, 'web', 'dev', script), ...args], { maxBuffer: 1 << 30 });
  if (file) writeFileSync(join(out, file), text);
};
node('fixture.mjs', [], 'rec.json');
node('fixture.mjs', ['--compare', '--steps', '600', '--events', '1500'], 'cmp.json');
writeFileSync(join(out, 'bad.json'), JSON.stringify({ format: 'isolab-see/99' }));
node('page.mjs', [join(out, 'rec.json'), join(out, 'rec.html')]);
node('page.mjs', [join(out, 'cmp.json'), join(out, 'cmp.html')]);
node('page.mjs', [join(out, 'bad.json'), join(out, 'bad.html')]);
node('page.mjs', [join(out, 'rec.json'), join(out, 'src.html'), '--src']);
const rec = JSON.parse(readFileSync(join(out, 'rec.json'), 'utf8'));

const server = createServer((req, res) => {
  try {
    const body = readFileSync(join(out, new URL(req.url, 'http://x').pathname));
    res.writeHead(200, { 'content-type': extname(req.url) === '.json' ? 'application/json' : 'text/html' }).end(body);
  } catch {
    res.writeHead(404).end();
  }
}).listen(0);
const base = `http://127.0.0.1:${server.address().port}`;
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
const errors = [];
page.on('pageerror', (e) => errors.push(e.message));

const text = (sel) => page.locator(sel).first().textContent();
const step = async () => Number(await text('[data-testid="step"]'));
/** The URL hash once the view has rested (it follows after 200 ms). */
const hash = async () => {
  await page.waitForTimeout(300);
  return page.evaluate(() => location.hash);
};
/** The texts of the events of step `s`, as the page joins them. */
const eventsOf = (s) => rec.events.filter((e) => e.step === s).map((e) => e.text).join('; ') || 'no event';
const check = async (name, fn) => {
  await fn();
  console.log(`ok  ${name}`);
};

await check('opens at the violation, with its banner', async () => {
  await page.goto(`${base}/rec.html`);
  assert.equal(await step(), rec.violation.step);
  assert.match(await text('[data-testid="violation"]'), new RegExp(rec.violation.invariant));
  assert.equal(await text('[data-testid="event"]'), eventsOf(rec.violation.step));
  assert.equal(await hash(), `#step=${rec.violation.step}`);
});

await check('stale TLB entry', async () => {
  const row = page.locator('[data-testid="tlb-1"] tr[data-stale="true"]');
  assert.equal(await row.count(), 1);
  assert.equal(await row.getAttribute('data-va'), '0x14000');
  assert.match(await row.getAttribute('class'), /stale/);
  assert.equal(await row.getAttribute('title'), 'the PTE is read-only');
});

await check('keys: arrows, shift, home, end, n, p, v', async () => {
  await page.keyboard.press('Home');
  assert.equal(await step(), 0);
  await page.keyboard.press('ArrowRight');
  assert.equal(await step(), 1);
  await page.keyboard.press('Shift+ArrowRight');
  assert.equal(await step(), 11);
  await page.keyboard.press('ArrowLeft');
  assert.equal(await step(), 10);
  await page.keyboard.press('End');
  assert.equal(await step(), rec.steps);
  await page.keyboard.press('Home');
  await page.keyboard.press('n');
  const notable = new Set(['fault', 'syscall', 'ipi', 'flush']);
  const first = rec.events.find((e) => e.step > 0 && notable.has(e.kind)).step;
  assert.equal(await step(), first);
  await page.keyboard.press('n');
  await page.keyboard.press('p');
  assert.equal(await step(), first);
  await page.keyboard.press('v');
  assert.equal(await step(), rec.violation.step);
  assert.equal(await text('[data-testid="event"]'), eventsOf(rec.violation.step));
});

await check('buttons and slider', async () => {
  await page.click('[data-testid="next"]');
  assert.equal(await step(), rec.violation.step + 1);
  await page.click('[data-testid="prev"]');
  assert.equal(await step(), rec.violation.step);
  await page.locator('[data-testid="slider"]').fill('100');
  assert.equal(await step(), 100);
  await page.locator('[data-testid="slider"]').focus();
  await page.keyboard.press('ArrowRight');
  assert.equal(await step(), 101, 'the slider moves one step, not two');
});

await check('cpu fields', async () => {
  const cpu0 = page.locator('[data-testid="cpu-0"]');
  for (const f of ['cpl', 'cr3', 'pcid', 'copy', 'mm', 'pkru', 'current', 'mode']) assert.equal(await cpu0.locator(`[data-field="${f}"]`).count(), 1, f);
});

await check('page-table rows, ranges, bits, PTI copies', async () => {
  const mm = rec.keyframes[0]['mm:1'];
  const kernel = page.locator('[data-testid="pt-1-kernel"]');
  assert.equal(await page.locator('[data-testid="pt-1-user"]').count(), 1);
  const pgd0 = kernel.locator(`tr[data-pt="${mm.pgd}:0"]`);
  assert.equal(await pgd0.getAttribute('data-level'), '4');
  assert.equal(await pgd0.getAttribute('data-va'), '0x0000000000000000');
  assert.equal(await pgd0.getAttribute('data-end'), '0x0000007fffffffff');
  assert.match(await pgd0.locator('[data-bit="P"]').getAttribute('class'), /\bon\b/);
  assert.match(await pgd0.locator('[data-bit="XD"]').getAttribute('class'), /\boff\b/);
  assert.equal(await pgd0.locator('[data-bit="D"]').count(), 0, 'D is a leaf bit');
  const kernelHalf = kernel.locator(`tr[data-pt="${mm.pgd}:256"]`);
  assert.equal(await kernelHalf.getAttribute('data-va'), '0xffff800000000000');
  assert.equal(await kernelHalf.getAttribute('data-expanded'), 'false', 'the kernel half is collapsed');
  const pte = kernel.locator('tr[data-level="1"]').first();
  assert.equal(await pte.locator('[data-bit="PK"]').textContent(), 'PK=0');
});

await check('changed bits', async () => {
  // A step whose deltas change a PTE's bits.
  const s = rec.deltas.findIndex((d, i) => i > 200 && d.some(([k]) => k.startsWith('pt:'))) + 1;
  await page.evaluate((s) => { location.hash = `#step=${s}`; }, s);
  await page.waitForFunction((s) => document.querySelector('[data-testid="step"]').textContent === String(s), s);
  assert.ok((await page.locator('[data-testid="pt-1-kernel"] tr.changed, [data-testid="pt-2-kernel"] tr.changed').count()) > 0);
});

await check('toggle, hash, reload restores', async () => {
  const mm = rec.keyframes[0]['mm:1'];
  const kernel = page.locator('[data-testid="pt-1-kernel"]');
  await kernel.locator(`tr[data-pt="${mm.pgd}:256"]`).click();
  assert.equal(await kernel.locator(`tr[data-pt="${mm.pgd}:256"]`).getAttribute('data-expanded'), 'true');
  await kernel.locator(`tr[data-pt="${mm.pgd}:0"]`).click();
  assert.equal(await kernel.locator(`tr[data-pt="${mm.pgd}:0"]`).getAttribute('data-expanded'), 'false');
  await page.click('[data-testid="cpu-1"] h3');
  const h = await hash();
  assert.match(h, new RegExp(`open=${mm.pgd}:256`));
  assert.match(h, new RegExp(`shut=${mm.pgd}:0`));
  assert.match(h, /cpu=1/);
  await page.goto(`${base}/rec.html#step=77&cpu=1&open=${mm.pgd}:256`);
  await page.reload();
  assert.equal(await step(), 77);
  assert.equal(await page.locator(`[data-testid="pt-1-kernel"] tr[data-pt="${mm.pgd}:256"]`).getAttribute('data-expanded'), 'true');
  assert.match(await page.locator('[data-testid="cpu-1"]').getAttribute('class'), /selected/);
  const fresh = await browser.newPage();
  await fresh.goto(`${base}/rec.html`);
  const before = await fresh.evaluate(() => history.length);
  for (const key of ['ArrowRight', 'ArrowRight', 'Home']) await fresh.keyboard.press(key);
  await fresh.waitForTimeout(300);
  assert.equal(await fresh.evaluate(() => [history.length, location.hash].join(' ')), `${before} #step=0`, 'moving the cursor adds no history');
  await fresh.close();
});

await check('timeline: click, zoom, hover', async () => {
  const canvas = page.locator('[data-testid="timeline"] canvas');
  const box = await canvas.boundingBox();
  await page.mouse.click(box.x + box.width - 2, box.y + 30);
  assert.ok((await step()) > rec.steps * 0.95);
  const cursorX = () => page.locator('[data-testid="cursor"]').evaluate((el) => el.style.left);
  await page.click('[data-testid="zoom-in"]');
  await page.click('[data-testid="zoom-out"]');
  // Ctrl+wheel zooms about the pointer: the cursor line moves; a drag pans it back.
  await page.keyboard.press('Home');
  await page.keyboard.press('Shift+ArrowRight');
  const before = await cursorX();
  await page.mouse.move(box.x + box.width / 3, box.y + 30);
  await page.keyboard.down('Control');
  await page.mouse.wheel(0, -400);
  await page.keyboard.up('Control');
  await page.waitForFunction((b) => document.querySelector('[data-testid="cursor"]').style.left !== b, before);
  const zoomed = await cursorX();
  await page.mouse.down();
  await page.mouse.move(box.x + box.width / 3 + 200, box.y + 30, { steps: 5 });
  await page.mouse.up();
  assert.notEqual(await cursorX(), zoomed, 'dragging pans');
  assert.equal(await step(), 10, 'a drag does not move the cursor');
  await page.mouse.move(box.x + box.width / 2, box.y + 30);
  assert.match(await text('[data-testid="timeline-tip"]'), /cpu 0, steps? \d+/);
});

await check('server mode (data-src)', async () => {
  await page.goto(`${base}/src.html#step=5`);
  assert.equal(await step(), 5);
});

await check('unknown format refused', async () => {
  await page.goto(`${base}/bad.html`);
  assert.match(await text('[data-testid="error"]'), /unknown data format "isolab-see\/99"/);
});

await check('comparison: one cursor over the rows', async () => {
  const cmp = JSON.parse(readFileSync(join(out, 'cmp.json'), 'utf8'));
  await page.goto(`${base}/cmp.html#row=6`);
  assert.equal(await text('[data-testid="row"]'), '6');
  const row = cmp.rows[6];
  assert.equal(await page.locator('[data-testid="side-0"] [data-testid="step"]').textContent(), String(row.steps[0]));
  assert.equal(await page.locator('[data-testid="rows"] tr.current').getAttribute('data-row'), '6');
  await page.keyboard.press('ArrowRight');
  assert.equal(await text('[data-testid="row"]'), '7');
  // Row 13 did not run on side 1: it shows the nearest earlier row's step.
  await page.locator('[data-testid="rows"] tr[data-row="13"]').click();
  assert.equal(await page.locator('[data-testid="side-1"] [data-testid="step"]').textContent(), String(cmp.rows[12].steps[1]));
  assert.equal(await page.locator('[data-testid="side-0"] [data-testid="cpu-0"]').count(), 1);
  assert.equal(await hash(), '#row=13');
});

assert.deepEqual(errors, []);
console.log('all ok');
await browser.close();
server.close();
