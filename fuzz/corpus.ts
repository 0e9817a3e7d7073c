/**
 * The mutation fuzzer's seeds: every scenario in scenarios/, and every ```yaml block of the
 * documentation (docs/*.md and README.md) that holds a whole scenario (a `processes:` key),
 * broken examples included. Read from the repository the compiled file lives in.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Seed {
  /** Where it came from: a path, or `path:line` for a documentation block. */
  origin: string;
  text: string;
}

/** The repository root (this file is dist/fuzz/corpus.js once compiled). */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The ```yaml blocks of a Markdown text that hold a scenario, with the line each starts on. */
function yamlBlocks(markdown: string, origin: string): Seed[] {
  const seeds: Seed[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (!/^```yaml(\s|$)/.test(lines[i])) continue;
    let end = i + 1;
    while (end < lines.length && !/^```\s*$/.test(lines[end])) end++;
    const text = lines.slice(i + 1, end).join('\n') + '\n';
    if (/^processes:/m.test(text)) seeds.push({ origin: `${origin}:${i + 2}`, text });
    i = end;
  }
  return seeds;
}

/** Every seed, in a fixed order (file names sorted). */
export function loadCorpus(root = ROOT): Seed[] {
  const seeds: Seed[] = [];
  const dir = join(root, 'scenarios');
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort()) seeds.push({ origin: `scenarios/${f}`, text: readFileSync(join(dir, f), 'utf8') });
  const docs = readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`);
  for (const md of [...docs, 'README.md']) seeds.push(...yamlBlocks(readFileSync(join(root, md), 'utf8'), md));
  return seeds;
}
