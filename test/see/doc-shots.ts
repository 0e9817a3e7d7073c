/**
 * `npm run docs:see`: the screenshots of docs/see.md, taken in Chromium from pages `isolab see`
 * makes: fork-cow at the child's copy-on-write fault, the cow-stale-tlb counterexample at its
 * violation, and seed 003's two sides compared.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { seeData } from '../../src/cli/see.js';
import { renderPage, seeAssets } from '../../src/see/html.js';
import type { Recording } from '../../src/see/types.js';
import { launch } from './browser.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

const SHOTS: { name: string; file: string; opts: Parameters<typeof seeData>[1]; hash: (data: ReturnType<typeof seeData>) => string; ready: string }[] = [
  {
    name: 'see-fork-cow',
    file: 'scenarios/fork-cow.yaml',
    opts: {},
    hash: (d) => `step=${(d as Recording).events.find((e) => e.type === 'page_fault' && e.cpu === 1 && e.text.includes('#PF P W U'))!.step}&mm=2`,
    ready: '[data-testid="step"]',
  },
  { name: 'see-cow-stale-tlb', file: 'scenarios/cow-stale-tlb.yaml', opts: { schedule: '0*151,1*21,0*3', invariants: 'stale_tlb', until: 'ops' }, hash: () => '', ready: '[data-testid="violation"]' },
  { name: 'see-compare', file: 'scenarios/fork-wrprotect-atomic-clear.yaml', opts: { compare: true }, hash: () => 'row=2', ready: '[data-testid="rows"]' },
];

const dir = mkdtempSync(join(tmpdir(), 'isolab-see-shots-'));
const browser = await launch();
try {
  for (const s of SHOTS) {
    const data = seeData(join(ROOT, s.file), s.opts);
    const file = join(dir, `${s.name}.html`);
    writeFileSync(file, renderPage(data, seeAssets()));
    const page = await browser.newPage({ viewport: { width: 1500, height: 950 } });
    await page.goto(`${pathToFileURL(file).href}#${s.hash(data)}`);
    await page.locator(s.ready).first().waitFor();
    await page.screenshot({ path: join(ROOT, 'docs/img', `${s.name}.png`) });
    await page.close();
    console.log(`docs/img/${s.name}.png`);
  }
} finally {
  await browser.close();
  rmSync(dir, { recursive: true, force: true });
}
