/**
 * docs/measure.md's tables of profiles and costs, made from the model's own tables (keys.ts and
 * the built-in costs.yaml), so that the document cannot drift: test/cost/docs.test.ts fails when
 * the document's copy differs, and `npm run docs:costs` writes it anew.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type * as vl from 'vega-lite';
import { calibrateV1, calibrateV2, withinTolerance, type CalibrationPoint } from './calibration.js';
import { answerSeedQuestions, type Answer } from './questions.js';
import { renderChart } from './chart.js';
import { COST_KEYS, COST_NAMES } from './keys.js';
import { builtinCostTable, type CostTable } from './table.js';
import { between } from '../docregion.js';

const DOC = 'docs/measure.md';

export const BEGIN = '<!-- cost tables: made by npm run docs:costs from src/cost/keys.ts and src/cost/costs.yaml -->';
export const END = '<!-- end of cost tables -->';

export const CAL_BEGIN = '<!-- calibration: made by npm run docs:calibration from src/cost/calibration.ts -->';
export const CAL_END = '<!-- end of calibration -->';

/** The calibration table: each target's published figure, the model's, the error and the tolerance. */
export function calibrationMarkdown(points: CalibrationPoint[]): string {
  let s = '| target | experiment | published | model | error | tolerance | within |\n|---|---|---|---|---|---|---|\n';
  for (const p of points) {
    const err = p.absolute !== undefined ? `${(p.model - p.published).toFixed(2)} ${p.unit === '%' ? 'pp' : p.unit}` : `${(((p.model - p.published) / p.published) * 100).toFixed(1)} %`;
    const tol = p.absolute !== undefined ? `±${p.absolute} ${p.unit === '%' ? 'pp' : p.unit}` : `±${Math.round(p.tolerance * 100)} %`;
    s += `| ${p.target} | ${p.label} | ${p.published} ${p.unit} | ${p.model.toFixed(3)} ${p.unit} | ${err} | ${tol} | ${withinTolerance(p) ? 'yes' : 'no'} |\n`;
  }
  return s;
}

/** The chart of one target: the published figure and the model's, side by side for each experiment. */
export function calibrationChartSpec(points: CalibrationPoint[], title: string): vl.TopLevelSpec {
  const values = points.flatMap((p) => [
    { experiment: p.label, source: 'published', value: p.published },
    { experiment: p.label, source: 'isolab', value: p.model },
  ]);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: 520,
    height: 260,
    background: 'white',
    data: { values },
    mark: 'bar',
    encoding: {
      x: { field: 'experiment', type: 'nominal', title: null, sort: null, axis: { labelAngle: -20, labelLimit: 260 } },
      xOffset: { field: 'source' },
      y: { field: 'value', type: 'quantitative', title: points[0].unit === '%' ? 'overhead (%)' : `round trip (${points[0].unit})` },
      color: { field: 'source', type: 'nominal', title: null },
    },
  } as vl.TopLevelSpec;
}

export const Q_BEGIN = '<!-- questions: made by npm run docs:calibration from src/cost/questions.ts -->';
export const Q_END = '<!-- end of questions -->';

/** The seeds' cost questions and the model's answers, each with its command. */
export function questionsMarkdown(answers: Answer[]): string {
  let s = '';
  for (const a of answers) {
    s += `**Seed ${a.seed}: ${a.question}** \`${a.command}\`\n\n| | |\n|---|---|\n`;
    for (const f of a.figures) s += `| ${f.label} | ${Number.isInteger(f.value) ? f.value.toLocaleString('en-US') : f.value.toFixed(2)} ${f.unit} |\n`;
    s += '\n';
  }
  return s.trimEnd() + '\n';
}

/** A table cell: pipes escaped, line breaks folded. */
const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\s+/g, ' ');

/** The profiles table and the costs table (every figure of every profile, the default's source). */
export function costTablesMarkdown(table: CostTable = builtinCostTable()): string {
  const profiles = [...table.profiles.values()];
  let s = '| profile | clock | PCID | INVPCID | XSAVE components | description |\n|---|---|---|---|---|---|\n';
  for (const p of profiles) {
    s += `| \`${p.name}\`${p.name === table.defaultProfile ? ' (default)' : ''} | ${p.clockGhz} GHz | ${p.features.pcid ? 'yes' : 'no'} | ${p.features.invpcid ? 'yes' : 'no'} | ${p.xstateComponents} | ${cell(p.description)} |\n`;
  }
  const def = table.profiles.get(table.defaultProfile)!;
  s += `\n| cost | category | charged on | ${profiles.map((p) => `\`${p.name}\``).join(' | ')} | grade | source (\`${def.name}\`) |\n`;
  s += `|---|---|---|${profiles.map(() => '---|').join('')}---|---|\n`;
  for (const name of COST_NAMES) {
    const k = COST_KEYS[name];
    const fig = def.costs[name];
    s += `| \`${name}\` | ${k.category} | ${cell(k.charged)} | ${profiles.map((p) => String(p.costs[name].cycles)).join(' | ')} | ${fig.grade} | ${cell(fig.source)} |\n`;
  }
  return s;
}

/**
 * Run as a script: rewrites docs/measure.md's cost tables; with --calibration, its calibration
 * table, the charts docs/img/calibration-v1.{svg,png} and calibration-v2.{svg,png}, and the
 * answers to the seeds' cost questions.
 */
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = fileURLToPath(new URL('../../../docs/measure.md', import.meta.url));
  let text = between(readFileSync(file, 'utf8'), BEGIN, END, costTablesMarkdown(), DOC);
  if (process.argv.includes('--calibration')) {
    const v1 = calibrateV1();
    const v2 = calibrateV2();
    text = between(text, CAL_BEGIN, CAL_END, calibrationMarkdown([...v1, ...v2]), DOC);
    text = between(text, Q_BEGIN, Q_END, questionsMarkdown(answerSeedQuestions()), DOC);
    const img = fileURLToPath(new URL('../../../docs/img/', import.meta.url));
    mkdirSync(img, { recursive: true });
    for (const [name, pts, title] of [
      ['calibration-v1', v1, "V1: PTI's overhead against the syscall rate (Gregg 2018)"],
      ['calibration-v2', v2, "V2: PCID ping-pong round trips (Lutomirski's commit 10af6235e0d3)"],
    ] as const) {
      const { svg, png } = await renderChart(calibrationChartSpec(pts, title));
      writeFileSync(`${img}${name}.svg`, svg);
      writeFileSync(`${img}${name}.png`, png);
    }
  }
  writeFileSync(file, text);
}
