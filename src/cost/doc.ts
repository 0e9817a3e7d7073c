/**
 * docs/measure.md's tables of profiles and costs, made from the model's own tables (keys.ts and
 * the built-in costs.yaml), so that the document cannot drift: test/cost/docs.test.ts fails when
 * the document's copy differs, and `npm run docs:costs` writes it anew.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { COST_KEYS, COST_NAMES } from './keys.js';
import { builtinCostTable, type CostTable } from './table.js';

export const BEGIN = '<!-- cost tables: made by npm run docs:costs from src/cost/keys.ts and src/cost/costs.yaml -->';
export const END = '<!-- end of cost tables -->';

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

/** `text` with the part between BEGIN and END replaced by `tables`. */
export function withTables(text: string, tables: string): string {
  const b = text.indexOf(BEGIN);
  const e = text.indexOf(END);
  if (b < 0 || e < b) throw new Error(`docs/measure.md lacks the markers ${BEGIN} and ${END}`);
  return text.slice(0, b + BEGIN.length) + '\n\n' + tables + '\n' + text.slice(e);
}

/** Run as a script: rewrites docs/measure.md's tables. */
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = fileURLToPath(new URL('../../../docs/measure.md', import.meta.url));
  writeFileSync(file, withTables(readFileSync(file, 'utf8'), costTablesMarkdown()));
}
