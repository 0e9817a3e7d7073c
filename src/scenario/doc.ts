/**
 * docs/scenario-format.md's list of constants and table of syscalls, made from the model's own
 * tables (kernel/uapi.ts, in its sections, and kernel/syscalls.ts), so that the reference cannot
 * drift: test/scenario/docs.test.ts fails when the document's copy differs, and
 * `npm run docs:format` writes it anew.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { syscallEntries } from '../kernel/syscalls.js';
import { between } from '../docregion.js';
import { CONSTANTS } from './expr.js';
import { FORKING_SYSCALLS } from './schema.js';

export const DOC = 'docs/scenario-format.md';
export const CONST_BEGIN = '<!-- constants: made by npm run docs:format from src/kernel/uapi.ts -->';
export const CONST_END = '<!-- end of constants -->';
export const SYSCALL_BEGIN = '<!-- syscalls: made by npm run docs:format from src/kernel/syscalls.ts -->';
export const SYSCALL_END = '<!-- end of syscalls -->';
export const README = 'README.md';
export const README_BEGIN = '<!-- syscall list: made by npm run docs:format from src/kernel/syscalls.ts -->';
export const README_END = '<!-- end of syscall list -->';

/** The keys a forking syscall takes besides its arguments (section 5, "fork, vfork, clone"). */
const CHILD_KEYS = ['name', 'cpu', 'ops'];

/** One section of kernel/uapi.ts: its title, the headers it cites, and the constants a value may name, in the file's order. */
export interface ConstantGroup {
  title: string;
  source: string;
  names: string[];
}

/**
 * The constants a value may name, grouped by the sections of kernel/uapi.ts (`// ---- title
 * (headers) ----`), read from its text (`uapiText`). Throws when a constant lies in no section,
 * or a section names one twice.
 */
export function constantGroups(uapiText: string): ConstantGroup[] {
  const groups: ConstantGroup[] = [];
  const seen = new Set<string>();
  for (const line of uapiText.split('\n')) {
    const h = /^\/\/ ---- (.+?) \((.+)\) -+$/.exec(line);
    if (h) {
      groups.push({ title: h[1], source: h[2], names: [] });
      continue;
    }
    const c = /^export const (\w+) = /.exec(line);
    if (!c || !CONSTANTS.has(c[1])) continue;
    if (groups.length === 0) throw new Error(`src/kernel/uapi.ts: ${c[1]} comes before the first section header`);
    if (seen.has(c[1])) throw new Error(`src/kernel/uapi.ts: ${c[1]} is defined twice`);
    seen.add(c[1]);
    groups[groups.length - 1].names.push(c[1]);
  }
  const missing = [...CONSTANTS.keys()].filter((n) => n !== 'PAGE_SIZE' && !seen.has(n));
  if (missing.length > 0) throw new Error(`constants not found in src/kernel/uapi.ts's sections: ${missing.join(' ')}`);
  return groups.filter((g) => g.names.length > 0);
}

/** `words` as backquoted names joined by spaces after `first`, wrapped at `width` columns, continued with two spaces. */
function wrapped(first: string, words: string[], width = 100): string {
  const lines: string[] = [];
  let line = first;
  for (const w of words) {
    const item = `\`${w}\``;
    const sep = line.endsWith(' ') ? '' : ' ';
    if (line.length + sep.length + item.length <= width) line += sep + item;
    else {
      lines.push(line.trimEnd());
      line = `  ${item}`;
    }
  }
  lines.push(line);
  return lines.join('\n');
}

/** The list of constants: one item per section, and PAGE_SIZE. */
export function constantsMarkdown(groups: ConstantGroup[]): string {
  const items = groups.map((g) => wrapped(`- ${g.title} (${g.source}): `, g.names));
  items.push('- `PAGE_SIZE` (4096)');
  return items.join('\n') + '\n';
}

/** The table of syscalls: number, name, the arguments by their SYSCALL_DEFINE names, and the keys a forking syscall takes besides. */
export function syscallTableMarkdown(): string {
  let s = '| nr | name | arguments | extra keys |\n|---|---|---|---|\n';
  for (const e of [...syscallEntries()].sort((a, b) => a.nr - b.nr)) {
    const args = e.args.length > 0 ? e.args.map((a) => `\`${a}\``).join(', ') : '(none)';
    const extra = FORKING_SYSCALLS.includes(e.name) ? CHILD_KEYS.map((k) => `\`${k}\``).join(', ') : '';
    s += `| ${e.nr} | \`${e.name}\` | ${args} |${extra ? ` ${extra} ` : ' '}|\n`;
  }
  return s;
}

/** The README's one-paragraph list of the syscalls, by number, pointing at the full table. */
export function syscallListMarkdown(): string {
  const names = [...syscallEntries()].sort((a, b) => a.nr - b.nr).map((e) => e.name);
  return wrapped(`The ${names.length} syscalls, by number (arguments in [docs/scenario-format.md](docs/scenario-format.md#syscall-by-number-or-name-positional-arguments)):`, names) + '\n';
}

/** README.md as `npm run docs:format` writes it, from its current text. */
export function formatReadme(text: string): string {
  return between(text, README_BEGIN, README_END, syscallListMarkdown(), README);
}

/** The kernel's UAPI source, read from the repository (the constants' sections are its comments). */
export function uapiSource(): string {
  return readFileSync(fileURLToPath(new URL('../../../src/kernel/uapi.ts', import.meta.url)), 'utf8');
}

/** docs/scenario-format.md as `npm run docs:format` writes it, from its current text. */
export function formatDoc(text: string): string {
  const withConstants = between(text, CONST_BEGIN, CONST_END, constantsMarkdown(constantGroups(uapiSource())), DOC);
  return between(withConstants, SYSCALL_BEGIN, SYSCALL_END, syscallTableMarkdown(), DOC);
}

/** Run as a script: rewrites docs/scenario-format.md's constants and syscall table, and the README's syscall list. */
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = fileURLToPath(new URL('../../../docs/scenario-format.md', import.meta.url));
  writeFileSync(file, formatDoc(readFileSync(file, 'utf8')));
  const readme = fileURLToPath(new URL('../../../README.md', import.meta.url));
  writeFileSync(readme, formatReadme(readFileSync(readme, 'utf8')));
}
