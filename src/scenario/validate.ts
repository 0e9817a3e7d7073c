/**
 * Checks scenario data against the JSON Schema (schema.ts) with Ajv and turns Ajv's findings
 * into messages a user can act on: the unknown key with the keys that are allowed (and the
 * closest one), the missing key, the expected type or value, each at its line and column.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { ScenarioIssue } from '../errors.js';
import { suggest } from './expr.js';
import { issueAt, MAX_NESTING, type Locator, type Path } from './load.js';
import { scenarioSchema } from './schema.js';

let validator: ValidateFunction | undefined;

/** The compiled validator (built once). */
function scenarioValidator(): ValidateFunction {
  validator ??= new Ajv({ allErrors: true, strict: false, strictNumbers: true, allowUnionTypes: true, verbose: true }).compile(scenarioSchema());
  return validator;
}

/** Validates `data`; returns every issue, located, in file order. */
export function validateShape(data: unknown, loc: Locator | undefined): ScenarioIssue[] {
  // The validator recurses once per level: a scenario object (a file is checked as it loads) is bounded first.
  const deep = pathBeyond(data, MAX_NESTING);
  if (deep) return [issueAt(loc, deep, `lists and mappings nest more than ${MAX_NESTING} deep here; the limit is ${MAX_NESTING} levels (about 80 nested forks or repeats)`)];
  const validate = scenarioValidator();
  if (validate(data)) return [];
  const issues: ScenarioIssue[] = [];
  const seen = new Set<string>();
  for (const e of validate.errors ?? []) {
    const issue = describe(e, data, loc);
    if (!issue) continue;
    const id = `${issue.path}\u0000${issue.message}`;
    if (seen.has(id)) continue;
    seen.add(id);
    issues.push(issue);
  }
  return sortIssues(issues);
}

/** The path of the first list or mapping nested deeper than `limit` (a cycle is too deep), found without recursion; undefined when none is. */
function pathBeyond(data: unknown, limit: number): Path | undefined {
  type Entry = { v: unknown; depth: number; key?: string | number; up?: Entry };
  const stack: Entry[] = [{ v: data, depth: 0 }];
  while (stack.length > 0) {
    const e = stack.pop()!;
    if (e.v === null || typeof e.v !== 'object') continue;
    if (e.depth + 1 > limit) {
      const path: Path = [];
      for (let x: Entry | undefined = e; x?.key !== undefined; x = x.up) path.unshift(x.key);
      return path;
    }
    if (Array.isArray(e.v)) e.v.forEach((x, i) => stack.push({ v: x, depth: e.depth + 1, key: i, up: e }));
    else for (const [k, x] of Object.entries(e.v)) stack.push({ v: x, depth: e.depth + 1, key: k, up: e });
  }
  return undefined;
}

/** Sorts issues by line and column (unlocated ones last, by path). */
export function sortIssues(issues: ScenarioIssue[]): ScenarioIssue[] {
  return issues.sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity) || (a.col ?? 0) - (b.col ?? 0) || a.path.localeCompare(b.path));
}

function toPath(instancePath: string): Path {
  if (instancePath === '') return [];
  return instancePath
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

function at(data: unknown, path: Path): unknown {
  let v = data;
  for (const p of path) v = v !== null && typeof v === 'object' ? (v as Record<string | number, unknown>)[p] : undefined;
  return v;
}

/** What a value is, in words. */
export function kindOf(v: unknown): string {
  if (v === null) return 'nothing (null)';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  if (typeof v === 'number') return Number.isInteger(v) ? `the integer ${v}` : `the number ${v}`;
  return `${typeof v} ${String(v)}`;
}

const TYPE_WORDS: Record<string, string> = { integer: 'an integer', string: 'a string', object: 'a mapping', array: 'a list', boolean: 'true or false', null: 'nothing', number: 'a number' };

/** One Ajv error as an issue, or null for the bookkeeping errors (`if`) that another error explains. */
function describe(e: ErrorObject, data: unknown, loc: Locator | undefined): ScenarioIssue | null {
  const p = e.params as Record<string, unknown>;
  const named = (e as { propertyName?: string }).propertyName;
  const path = named !== undefined ? [...toPath(e.instancePath), named] : toPath(e.instancePath);
  const value = named !== undefined ? named : at(data, path);
  const isOp = (e.parentSchema as { title?: string } | undefined)?.title === 'operation';
  switch (e.keyword) {
    case 'if':
      return null;
    case 'additionalProperties': {
      const key = String(p.additionalProperty);
      const allowed = Object.keys(((e.parentSchema as { properties?: object }).properties ?? {}) as object);
      if (isOp) {
        return issueAt(loc, [...path, key], `unknown operation or key ${JSON.stringify(key)}${suggest(key, allowed)}; an operation is one of load, store, fetch, set, repeat, syscall or a syscall by name (${allowed.filter((k) => !['as', 'expect', 'note', 'load', 'store', 'fetch', 'set', 'repeat', 'syscall'].includes(k)).join(', ')}), with optional as, expect and note`, { key: true });
      }
      return issueAt(loc, [...path, key], `unknown key ${JSON.stringify(key)}${suggest(key, allowed)}; expected ${allowed.length ? `one of ${allowed.join(', ')}` : 'no keys here'}`, { key: true });
    }
    case 'required':
      return issueAt(loc, path, `missing key ${JSON.stringify(p.missingProperty)}${path.length ? ` in ${String(path[path.length - 1])}` : ''}`);
    case 'type': {
      const types = (Array.isArray(p.type) ? p.type : String(p.type).split(',')) as string[];
      const words = types.map((t) => (t === 'string' && types.includes('integer') ? 'an expression' : TYPE_WORDS[t] ?? t));
      return issueAt(loc, path, `expected ${words.join(' or ')}, got ${kindOf(value)}`);
    }
    case 'enum': {
      const allowed = (p.allowedValues as unknown[]).map(String);
      if (path.length === 4 && path[0] === 'expect' && path[1] === 'events' && path[3] === 'type') {
        return issueAt(loc, path, `${typeof value === 'string' ? `unknown event kind ${JSON.stringify(value)}` : `expected an event kind, got ${kindOf(value)}`}${typeof value === 'string' ? suggest(value, allowed) : ''}; the model's event kinds are ${allowed.join(', ')}`);
      }
      const shown = allowed.length > 12 ? `${allowed.slice(0, 12).join(', ')}, ...` : allowed.join(', ');
      return issueAt(loc, path, `${kindOf(value)} is not allowed here${typeof value === 'string' ? suggest(value, allowed) : ''}; expected one of ${shown}`, named !== undefined ? { key: true } : undefined);
    }
    case 'minimum':
    case 'maximum':
      return issueAt(loc, path, `${kindOf(value)} is ${e.keyword === 'minimum' ? 'too small' : 'too large'}; expected ${e.keyword === 'minimum' ? 'at least' : 'at most'} ${String(p.limit)}`);
    case 'minItems':
      return issueAt(loc, path, `expected at least ${String(p.limit)} item(s), got ${Array.isArray(value) ? value.length : 0}`);
    case 'maxItems':
      return issueAt(loc, path, `expected at most ${String(p.limit)} item(s), got ${Array.isArray(value) ? value.length : 0}`);
    case 'minProperties':
      if (isOp) return issueAt(loc, path, 'an empty operation: expected one operation key such as load, store or mmap');
      if (path.length === 1 && path[0] === 'sides') return issueAt(loc, path, `a debate has at least ${String(p.limit)} sides; got ${value !== null && typeof value === 'object' ? Object.keys(value).length : 0}`);
      return issueAt(loc, path, `expected at least ${String(p.limit)} key(s) here`);
    case 'pattern':
      return issueAt(loc, path, patternMessage(String(p.pattern), value), named !== undefined ? { key: true } : undefined);
    case 'propertyNames':
      return null; // explained by the pattern or enum error on the name itself
    default:
      return issueAt(loc, path, e.message ?? 'invalid value');
  }
}

function patternMessage(pattern: string, value: unknown): string {
  if (pattern.startsWith('^[A-Za-z]')) return `${kindOf(value)} is not a name: names start with a letter and hold letters, digits and _`;
  if (pattern.includes('KiB')) return `${kindOf(value)} is not a size; expected bytes or a number with KiB, MiB or GiB, such as "64 MiB"`;
  if (pattern === '^/') return `${kindOf(value)} is not a path; program paths start with /`;
  return `${kindOf(value)} does not match ${pattern}`;
}
