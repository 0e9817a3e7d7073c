/**
 * Reading scenario files: YAML with source positions. `loadScenarioText` parses a file and
 * returns the data with a `Locator` that turns a path in the data into a line and column, so
 * every later check can point at the exact key or value it rejects.
 */
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Node } from 'yaml';
import { type ScenarioIssue } from '../errors.js';

/** A path into the scenario data: keys and list indices. */
export type Path = (string | number)[];

/** Where a path is: `key` points at a map key instead of its value, `offset` into a scalar's text. */
export interface Locator {
  file?: string;
  locate(path: Path, opts?: { key?: boolean; offset?: number }): { line: number; col: number } | undefined;
}

/** `processes[0].ops[2].mmap`. */
export function pathString(path: Path): string {
  let s = '';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s === '' ? p : `.${p}`;
  return s;
}

/** Builds an issue at `path`, located when a locator knows the position. */
export function issueAt(loc: Locator | undefined, path: Path, message: string, opts?: { key?: boolean; offset?: number }): ScenarioIssue {
  const pos = loc?.locate(path, opts);
  return { file: loc?.file, line: pos?.line, col: pos?.col, path: pathString(path), message };
}

/** The parsed data of a scenario file, or the YAML syntax errors in it. */
export type Loaded = { data: unknown; locator: Locator; issues: [] } | { data: undefined; locator: Locator; issues: ScenarioIssue[] };

/**
 * Parses YAML text. Syntax errors (bad indentation, duplicate keys, tabs, unclosed quotes)
 * come back as issues with their position; nothing is thrown. Integers too large for a
 * JavaScript number are kept as their source text, which values parse exactly.
 */
export function loadScenarioText(text: string, file: string): Loaded {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, strict: true });
  const locator = yamlLocator(doc, lineCounter, file);
  const problems = [...doc.errors, ...doc.warnings.filter((w) => w.code !== 'BAD_DIRECTIVE')];
  if (problems.length > 0) {
    const issues = problems.map((e): ScenarioIssue => {
      const pos = lineCounter.linePos(e.pos[0]);
      return { file, line: pos.line, col: pos.col, path: '', message: `YAML: ${e.message.replace(/ at line \d+, column \d+:?[\s\S]*$/, '')}` };
    });
    return { data: undefined, locator, issues };
  }
  visit(doc, {
    Scalar(_, node) {
      if (typeof node.value === 'number' && Number.isInteger(node.value) && !Number.isSafeInteger(node.value) && node.source) node.value = node.source;
    },
  });
  return { data: doc.toJS({ maxAliasCount: 1000 }), locator, issues: [] };
}

function yamlLocator(doc: Document, lc: LineCounter, file: string): Locator {
  const find = (path: Path, key: boolean): { node: Node; depth: number; isKey: boolean } | undefined => {
    let node: unknown = doc.contents;
    let last: Node | undefined = (doc.contents as Node) ?? undefined;
    for (let i = 0; i < path.length; i++) {
      if (isAlias(node)) node = node.resolve(doc);
      const seg = path[i];
      if (isMap(node)) {
        const pair = node.items.find((p) => isPair(p) && (isScalar(p.key) ? String(p.key.value) === String(seg) : false));
        if (!pair) return last ? { node: last, depth: i, isKey: false } : undefined;
        if (key && i === path.length - 1) return { node: pair.key as Node, depth: i + 1, isKey: true };
        node = pair.value ?? pair.key;
      } else if (isSeq(node) && typeof seg === 'number' && node.items[seg] !== undefined) {
        node = node.items[seg];
      } else {
        return last ? { node: last, depth: i, isKey: false } : undefined;
      }
      last = node as Node;
    }
    return last ? { node: last, depth: path.length, isKey: false } : undefined;
  };
  return {
    file,
    locate(path, opts) {
      const found = find(path, opts?.key ?? false);
      if (!found || !found.node.range) return undefined;
      let at = found.node.range[0];
      if (opts?.offset !== undefined && isScalar(found.node) && found.depth === path.length) {
        const quoted = found.node.type === 'QUOTE_DOUBLE' || found.node.type === 'QUOTE_SINGLE';
        at += opts.offset + (quoted ? 1 : 0);
      }
      return lc.linePos(at);
    },
  };
}
