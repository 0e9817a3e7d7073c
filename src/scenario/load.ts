/**
 * Reading scenario files: YAML with source positions. `loadScenarioText` parses a file and
 * returns the data with a `Locator` that turns a path in the data into a line and column, so
 * every later check can point at the exact key or value it rejects.
 */
import { Composer, isAlias, isCollection, isMap, isPair, isScalar, isSeq, LineCounter, Parser, visit, YAMLParseError, type Alias, type CST, type Document, type Node } from 'yaml';
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
 * How deep lists and mappings may nest in a file. The deepest real scenario nests about 20
 * levels (each fork or repeat adds 3); 256 leaves room for any honest file (84 nested forks)
 * while keeping the YAML composer, the schema validator and the compiler, all recursive,
 * far from the end of Node's stack.
 */
export const MAX_NESTING = 256;
/** Aliases (`*name`) one file may hold: the YAML library's guard against alias bombs. */
export const MAX_ALIASES = 1000;
/**
 * The size of the largest scenario file, in bytes. A file at the operation limit written out
 * one operation a line takes about 3 MiB; the YAML library reads roughly 1 MiB a second, so a
 * larger file is refused before it is parsed rather than after.
 */
export const MAX_FILE_BYTES = 4 * 1024 * 1024;

/** The refusal of a file of `bytes` bytes (or more) beyond MAX_FILE_BYTES, at 1:1. */
export function tooLarge(file: string, bytes: number, atLeast: boolean): ScenarioIssue {
  const mib = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`;
  return {
    file, line: 1, col: 1, path: '',
    message: `the file holds ${atLeast ? 'more than ' : ''}${mib(bytes)}; a scenario file may hold at most ${mib(MAX_FILE_BYTES)} (${MAX_FILE_BYTES} bytes): for long runs use repeat or functions`,
  };
}

/**
 * Parses YAML text. Syntax errors (bad indentation, duplicate keys, tabs, unclosed quotes)
 * come back as issues with their position; nothing is thrown. Integers too large for a
 * JavaScript number are kept as their source text, which values parse exactly. A file that
 * holds nothing, is larger than MAX_FILE_BYTES, nests deeper than MAX_NESTING, holds more than MAX_ALIASES aliases or an alias
 * with no anchor, or a number no double can hold (`1e309`, `.inf`, `.nan`) is refused at its
 * position as well.
 */
export function loadScenarioText(text: string, file: string): Loaded {
  if (text.length > MAX_FILE_BYTES / 4 && Buffer.byteLength(text, 'utf8') > MAX_FILE_BYTES) {
    return { data: undefined, locator: { file, locate: () => undefined }, issues: [tooLarge(file, Buffer.byteLength(text, 'utf8'), false)] };
  }
  const lineCounter = new LineCounter();
  const at = (offset: number, message: string): ScenarioIssue => {
    const pos = lineCounter.linePos(offset);
    return { file, line: pos.line, col: pos.col, path: '', message };
  };
  // The file is tokenized once (without recursion); the nesting is measured on the tokens before the recursive composer sees them.
  const tokens = [...new Parser(lineCounter.addNewLine).parse(text)];
  const tooDeep = nestingBeyond(tokens, MAX_NESTING);
  if (tooDeep !== undefined) {
    const message = `lists and mappings nest more than ${MAX_NESTING} deep here; the limit is ${MAX_NESTING} levels (about 80 nested forks or repeats)`;
    return { data: undefined, locator: { file, locate: () => undefined }, issues: [at(tooDeep, message)] };
  }
  const doc = compose(tokens, text.length);
  const locator = yamlLocator(doc, lineCounter, file);
  const problems = [...doc.errors, ...doc.warnings.filter((w) => w.code !== 'BAD_DIRECTIVE')];
  if (problems.length > 0) {
    const issues = problems.map((e): ScenarioIssue => at(e.pos[0], `YAML: ${e.message.replace(/ at line \d+, column \d+:?[\s\S]*$/, '')}`));
    return { data: undefined, locator, issues };
  }
  if (doc.contents === null) {
    return { data: undefined, locator, issues: [at(0, 'the file holds no scenario (it is empty, or only comments or white space); a scenario is a mapping with at least processes')] };
  }
  const issues: ScenarioIssue[] = [];
  const aliases: Alias[] = [];
  const unanchored = new Set<string>();
  visit(doc, {
    Alias(_, node) {
      aliases.push(node);
      const off = node.range?.[0] ?? 0;
      if (!node.resolve(doc) && !unanchored.has(node.source)) unanchored.add(node.source), issues.push(at(off, `the alias *${node.source} has no anchor: define &${node.source} before it`));
      if (aliases.length === MAX_ALIASES + 1) issues.push(at(off, `more than ${MAX_ALIASES} aliases: the limit is ${MAX_ALIASES} aliases (*name) in a file, a guard against alias bombs; use repeat, or write the values out`));
    },
    Scalar(_, node) {
      if (typeof node.value !== 'number') return;
      const src = node.source ?? String(node.value);
      if (Number.isNaN(node.value)) issues.push(at(node.range?.[0] ?? 0, `${src} is not a number (NaN); expected an integer or an expression`));
      else if (!Number.isFinite(node.value)) issues.push(at(node.range?.[0] ?? 0, `${src} is ${/inf/i.test(src) ? 'infinite' : 'too large for a number (beyond 1.8e308)'}; expected an integer or an expression`));
      else if (Number.isInteger(node.value) && !Number.isSafeInteger(node.value) && node.source) {
        // Kept as text, a large integer is read exactly; an exponent such as 1e20 has no exact digits to keep.
        if (/^[-+]?(\d+\.?\d*|\.\d+)e/i.test(node.source)) issues.push(at(node.range?.[0] ?? 0, `${node.source} is outside ±2^53 in exponent form, which holds no exact integer; write the integer's digits (decimal, or hexadecimal with 0x)`));
        else node.value = node.source;
      }
    },
  });
  if (issues.length > 0) return { data: undefined, locator, issues };
  try {
    return { data: doc.toJS({ maxAliasCount: MAX_ALIASES + 1 }) /* the library counts the anchor as well */, locator, issues: [] };
  } catch (e) {
    if (!(e instanceof ReferenceError)) throw e;
    // Aliases of collections that themselves hold aliases: each expansion counts.
    const nested = aliases.find((a) => {
      const target = a.resolve(doc);
      let inner = false;
      if (isCollection(target)) visit(target, { Alias: () => ((inner = true), visit.BREAK) });
      return inner;
    });
    return { data: undefined, locator, issues: [at(nested?.range?.[0] ?? aliases[0]?.range?.[0] ?? 0, `aliases expand past the limit of ${MAX_ALIASES} aliases (an alias of a list or mapping that holds aliases counts each of them every time); use repeat, or write the values out`)] };
  }
}

/** The one document of a token stream, as `parseDocument` composes it (a second document is an error). */
function compose(tokens: CST.Token[], length: number): Document.Parsed {
  let doc: Document.Parsed | undefined;
  for (const d of new Composer({ uniqueKeys: true, strict: true }).compose(tokens, true, length)) {
    if (!doc) doc = d;
    else {
      doc.errors.push(new YAMLParseError([d.range[0], d.range[1]], 'MULTIPLE_DOCS', 'Source contains multiple documents; a scenario file holds one'));
      break;
    }
  }
  return doc!;
}

/** The offset of the first list or mapping nested deeper than `limit`, measured without recursion; undefined when none is. */
function nestingBeyond(tokens: CST.Token[], limit: number): number | undefined {
  const stack: { token: CST.Token; depth: number }[] = tokens.map((token) => ({ token, depth: 0 }));
  while (stack.length > 0) {
    const { token, depth } = stack.pop()!;
    if (token.type === 'document') {
      if (token.value) stack.push({ token: token.value, depth });
    } else if (token.type === 'block-map' || token.type === 'block-seq' || token.type === 'flow-collection') {
      if (depth + 1 > limit) return token.offset;
      for (const item of token.items as { key?: CST.Token | null; value?: CST.Token }[]) {
        if (item.value) stack.push({ token: item.value, depth: depth + 1 });
        if (item.key) stack.push({ token: item.key, depth: depth + 1 });
      }
    }
  }
  return undefined;
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
