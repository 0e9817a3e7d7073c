/**
 * `isolab see` in Chromium: a recording of about 100,000 events (the measure-overhead workload,
 * two CPUs under PTI) written as one self-contained page, opened from disk, then stepped with
 * the keyboard. Prints JSON: events and steps recorded, the seconds to record and to write the
 * page, the page's size, the milliseconds from navigation to the first drawn step (target
 * under 2,000), and the median milliseconds of a step forward, a step back and a jump to the
 * end (target under 50), each over 15 presses, from the key press to the step shown.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { compileScenarioText } from '../src/scenario/index.js';
import { renderPage, seeAssets } from '../src/see/html.js';
import { recordScenario } from '../src/see/record.js';
import { launch } from '../test/see/browser.js';
import { WORKLOAD } from './measure.js';

const PRESSES = 15;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function benchSee(): Promise<Record<string, number>> {
  const t0 = performance.now();
  const rec = recordScenario(compileScenarioText(WORKLOAD, 'measure-overhead.yaml'));
  const recordSeconds = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  const html = renderPage(rec, seeAssets());
  const dir = mkdtempSync(join(tmpdir(), 'isolab-see-bench-'));
  const file = join(dir, 'see.html');
  writeFileSync(file, html);
  const pageSeconds = (performance.now() - t1) / 1000;
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    const stepText = (): Promise<string> => page.locator('[data-testid="step"]').innerText();
    const start = Date.now();
    await page.goto(pathToFileURL(file).href);
    await page.locator('[data-testid="step"]').waitFor();
    const openMs = Date.now() - start;
    /** Presses `key` and waits for the step to become `want`; milliseconds. */
    const press = async (key: string, want: number): Promise<number> => {
      const before = Date.now();
      await page.keyboard.press(key);
      await page.waitForFunction((w) => document.querySelector('[data-testid="step"]')?.textContent?.trim() === String(w), want, { polling: 'raf' });
      return Date.now() - before;
    };
    let at = Number(await stepText());
    const forward: number[] = [];
    const back: number[] = [];
    const end: number[] = [];
    for (let i = 0; i < PRESSES; i++) forward.push(await press('ArrowRight', ++at));
    for (let i = 0; i < PRESSES; i++) back.push(await press('ArrowLeft', --at));
    for (let i = 0; i < PRESSES; i++) {
      end.push(await press('End', rec.steps));
      await press('Home', 0);
    }
    return {
      events: rec.events.length,
      steps: rec.steps,
      recordSeconds,
      pageSeconds,
      pageMegabytes: html.length / 2 ** 20,
      openMs,
      stepForwardMs: median(forward),
      stepBackMs: median(back),
      jumpToEndMs: median(end),
    };
  } finally {
    await browser.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  console.log(JSON.stringify(await benchSee()));
}
