/**
 * isolab see in Chromium (playwright-core; Debian's chromium, installed when missing): three
 * built-in scenarios opened, stepped, and their DOM read back at given steps against what Linux
 * does there:
 *  - fork-cow (opened from disk, a file `isolab see --out` wrote): after fork both PTEs of the
 *    private page are read-only (copy_present_pte), after the child's write fault its PTE is
 *    writable on a new frame (wp_page_copy) and the bits that changed are marked;
 *  - percpu-migrate (served by the see server): under PTI a CPU in user mode shows CPL 3, the
 *    user copy in CR3 and a PCID with bit 11 (SWITCH_TO_USER_CR3), in the kernel CPL 0 and the
 *    kernel copy;
 *  - cow-stale-tlb, a replayed counterexample: the page opens at the violation, shows the
 *    broken invariant and marks the stale TLB entry it names.
 * And the keyboard, links that restore the view, and the page's screenshots.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { seeData, seeFiles } from '../../src/cli/see.js';
import { serveFiles } from '../../src/see/server.js';
import type { CpuView, Recording, TaskView } from '../../src/see/types.js';
import { launch } from './browser.js';
import { mmsOf, stateAt, stepOf } from './state.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/main.js');
let browser: Browser;
let dir: string;

before(async () => {
  browser = await launch();
  dir = mkdtempSync(join(tmpdir(), 'isolab-see-test-'));
});

after(async () => {
  await browser?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The step the page shows. */
async function stepShown(page: Page): Promise<number> {
  return Number((await page.locator('[data-testid="step"]').innerText()).trim());
}

/** Goes to step `s` by the URL (the page restores the view from its hash). */
async function goto(page: Page, url: string, hash: string): Promise<void> {
  await page.goto(`${url}#${hash}`);
  await page.locator('[data-testid="step"]').waitFor();
}

/** The leaf row of `va` in the page-table panel `testid`. */
function leaf(page: Page, testid: string, va: number) {
  return page.locator(`[data-testid="${testid}"] [data-pt][data-level="1"][data-va="0x${va.toString(16).padStart(16, '0')}"]`);
}

test('fork-cow from a self-contained file: PTE bits after fork and after the child\'s write fault', async () => {
  const file = join(dir, 'fork-cow.html');
  execFileSync(process.execPath, [CLI, 'see', join(ROOT, 'scenarios/fork-cow.yaml'), '--out', file], { encoding: 'utf8' });
  const rec = seeData(join(ROOT, 'scenarios/fork-cow.yaml'), {}) as Recording;
  const fork = stepOf(rec, 'fork');
  const [parent, child] = mmsOf(stateAt(rec, fork));
  const buf = parent.vmas.find((v) => v.perms === 'rw-p' && v.name === '' && BigInt(v.end) - BigInt(v.start) === 4096n)!;
  const va = Number(BigInt(buf.start));
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  const requests: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  const url = pathToFileURL(file).href;
  await goto(page, url, `step=${fork}&mm=${parent.id}`);
  assert.equal(await stepShown(page), fork);
  for (const mm of [parent, child]) {
    const row = leaf(page, `pt-${mm.id}-kernel`, va);
    assert.match((await row.locator('[data-bit="P"]').getAttribute('class'))!, /\bon\b/, `mm ${mm.id}: present`);
    assert.match((await row.locator('[data-bit="RW"]').getAttribute('class'))!, /\boff\b/, `mm ${mm.id}: R/W cleared by copy_present_pte`);
  }
  // The step the child's PTE became writable: the RW bit is on there, and marked as changed.
  const key = (pfn: number, index: number) => `pt:${pfn}:${index}`;
  const childLeafKeys = new Set<string>();
  {
    // The child's leaf entry key, from the recording's own tables at the end of the fault.
    const faultStep = rec.events.find((e) => e.type === 'page_fault' && e.cpu === 1 && e.text.includes('#PF P W U'))!.step;
    const st = stateAt(rec, faultStep);
    let table = child.pgd;
    for (let level = 4; level > 1; level--) table = Number((BigInt('0x' + (st[key(table, Math.floor(va / 2 ** (12 + 9 * (level - 1))) % 512)] as string)) >> 12n) & 0xffffffffffn);
    childLeafKeys.add(key(table, Math.floor(va / 4096) % 512));
  }
  const changedAt = rec.deltas.findIndex((d, i) => i + 1 > fork && d.some(([k, v]) => childLeafKeys.has(k) && v !== null && (BigInt('0x' + v) & 2n) !== 0n)) + 1;
  assert.ok(changedAt > fork, 'the child\'s PTE became writable after the fork');
  await goto(page, url, `step=${changedAt}&mm=${child.id}`);
  const row = leaf(page, `pt-${child.id}-kernel`, va);
  assert.match((await row.locator('[data-bit="RW"]').getAttribute('class'))!, /\bon\b.*\bchanged\b|\bchanged\b.*\bon\b/, 'R/W set by wp_page_copy, marked as changed');
  const parentRow = leaf(page, `pt-${parent.id}-kernel`, va);
  assert.match((await parentRow.locator('[data-bit="RW"]').getAttribute('class'))!, /\boff\b/, "the parent's PTE stays read-only");
  assert.notEqual(await row.getAttribute('data-pt'), null);
  await page.screenshot({ path: join(dir, 'fork-cow.png'), fullPage: true });
  assert.deepEqual(requests.filter((r) => !r.startsWith('file:')), [], 'the file fetches nothing');
  await page.close();
});

test('percpu-migrate from the server: CPL, CR3 copy and PCID under PTI at user and kernel steps; the keyboard steps', async () => {
  const rec = seeData(join(ROOT, 'scenarios/percpu-migrate.yaml'), {}) as Recording;
  const server = await serveFiles(seeFiles(rec), 0);
  try {
    // A step where CPU 0 runs a user task in user mode, and one where it runs one in the kernel.
    const find = (cpl: number): number => {
      for (let s = 1; s <= rec.steps; s++) {
        const v = stateAt(rec, s)['cpu:0'] as CpuView;
        if (v.cpl === cpl && v.current !== 0 && v.mm !== null) return s;
      }
      throw new Error(`no step with CPL ${cpl}`);
    };
    const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    const user = find(3);
    await goto(page, server.url, `step=${user}&cpu=0`);
    const cpu0 = page.locator('[data-testid="cpu-0"]');
    const field = (f: string) => cpu0.locator(`[data-field="${f}"]`).innerText();
    assert.equal(await field('cpl'), '3');
    assert.equal(await field('copy'), 'user', 'SWITCH_TO_USER_CR3: the user copy');
    assert.equal(Number(await field('pcid')) & 0x800, 0x800, 'the user PCID (bit 11)');
    const task = stateAt(rec, user)[`task:${(stateAt(rec, user)['cpu:0'] as CpuView).current}`] as TaskView;
    assert.equal((await field('mm')).trim(), String(task.mm));
    const kernel = find(0);
    await goto(page, server.url, `step=${kernel}&cpu=0`);
    assert.equal(await field('cpl'), '0');
    const k = stateAt(rec, kernel)['cpu:0'] as CpuView;
    assert.equal(await field('copy'), k.copy ?? '—');
    // Keyboard: one step, ten steps, back, the ends.
    await page.locator('body').click({ position: { x: 5, y: 5 } });
    const at = await stepShown(page);
    await page.keyboard.press('ArrowRight');
    assert.equal(await stepShown(page), at + 1);
    await page.keyboard.press('Shift+ArrowRight');
    assert.equal(await stepShown(page), at + 11);
    await page.keyboard.press('ArrowLeft');
    assert.equal(await stepShown(page), at + 10);
    await page.keyboard.press('End');
    assert.equal(await stepShown(page), rec.steps);
    await page.keyboard.press('Home');
    assert.equal(await stepShown(page), 0);
    // The link holds the step: a new page at this URL shows the same step.
    await page.keyboard.press('ArrowRight');
    await page.waitForURL(/#.*step=1\b/);
    const link = page.url();
    const again = await browser.newPage();
    await again.goto(link);
    await again.locator('[data-testid="step"]').waitFor();
    assert.equal(await stepShown(again), 1);
    await again.close();
    await page.screenshot({ path: join(dir, 'percpu-migrate.png'), fullPage: true });
    await page.close();
  } finally {
    await server.close();
  }
});

test('cow-stale-tlb counterexample: opens at the violation with the invariant, the stale entry marked', async () => {
  // What `isolab explore scenarios/cow-stale-tlb.yaml --invariants stale_tlb --until ops --preemptions 2` finds.
  const file = join(dir, 'stale.html');
  execFileSync(process.execPath, [CLI, 'see', join(ROOT, 'scenarios/cow-stale-tlb.yaml'), '--schedule', '0*151,1*21,0*3', '--invariants', 'stale_tlb', '--until', 'ops', '--out', file], { encoding: 'utf8' });
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  await page.goto(pathToFileURL(file).href);
  await page.locator('[data-testid="step"]').waitFor();
  const banner = page.locator('[data-testid="violation"]');
  assert.match(await banner.innerText(), /stale_tlb/);
  const message = await page.locator('[data-testid="violation-message"]').innerText();
  const va = /TLB entry for (0x[0-9a-f]+)/.exec(message)![1];
  const step = await stepShown(page);
  assert.ok(step > 150, `opens at the violation's step (${step})`);
  const stale = page.locator('[data-testid="tlb-1"] tr[data-stale="true"]');
  assert.equal(await stale.count(), 1, 'one stale entry on CPU 1');
  assert.equal(BigInt((await stale.getAttribute('data-va'))!), BigInt(va), 'the entry the invariant names');
  assert.match((await stale.getAttribute('class'))!, /\bstale\b/);
  assert.match(await stale.innerText(), /the PTE maps frame \d+/);
  // Before the writer changed the PTE, nothing was stale.
  await page.goto(`${pathToFileURL(file).href}#step=150`);
  await page.locator('[data-testid="step"]').waitFor();
  assert.equal(await stepShown(page), 150);
  assert.equal(await page.locator('tr[data-stale="true"]').count(), 0);
  await page.keyboard.press('v');
  assert.equal(await stepShown(page), step, '`v` goes to the violation');
  await page.screenshot({ path: join(dir, 'cow-stale-tlb.png'), fullPage: true });
  await page.close();
});

test('compare: the two sides of seed 003 on one cursor, each at the step its operation completed', async () => {
  const file = join(dir, 'compare.html');
  execFileSync(process.execPath, [CLI, 'see', join(ROOT, 'scenarios/fork-wrprotect-atomic-clear.yaml'), '--compare', '--out', file], { encoding: 'utf8' });
  const cmp = seeData(join(ROOT, 'scenarios/fork-wrprotect-atomic-clear.yaml'), { compare: true });
  assert.equal(cmp.format, 'isolab-see-compare/1');
  if (cmp.format !== 'isolab-see-compare/1') return;
  assert.deepEqual(cmp.sides.map((s) => s.name), ['cmpxchg', 'atomic_clear'], "the scenario's sides, in order");
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  for (const row of [1, cmp.rows.length - 1]) {
    await page.goto(`${pathToFileURL(file).href}#row=${row}`);
    await page.locator('[data-testid="rows"]').waitFor();
    for (let i = 0; i < cmp.sides.length; i++) {
      const want: number | null = cmp.rows[row].steps[i];
      assert.notEqual(want, null);
      assert.equal(Number(await page.locator(`[data-testid="side-${i}"] [data-testid="step"]`).innerText()), want, `side ${i} at row ${row}`);
    }
  }
  await page.keyboard.press('Home');
  assert.equal(Number(await page.locator('[data-testid="side-0"] [data-testid="step"]').innerText()), cmp.rows[0].steps[0]);
  await page.close();
});
