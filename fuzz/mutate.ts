/**
 * Mutations of scenario files for the mutation fuzzer: the edits a careless hand, a broken
 * editor or a hostile file make. Each takes the text and a seeded Rng and returns new text;
 * `mutate` applies one to four of them. They work on the text, not on the parsed data, so the
 * YAML parser, the position tracking and every check after them are exercised too.
 */
import type { Rng } from './rng.js';

/** Scalars no field expects: huge and special numbers, YAML oddities, wrong types, long and strange strings. */
export const HOSTILE_SCALARS: readonly string[] = [
  '1e309', '-1e309', '.inf', '-.inf', '.nan', '.NaN', '-0', '-0.0', '0.5', '1e3', '1_000', '0x', '0x_', '0x_1', '0b2', '0o8', '08', '+1',
  '18446744073709551616', '18446744073709551615', '-9223372036854775809', '9007199254740993', '0xffffffffffffffff', '0x10000000000000000',
  '-1', '0', '4294967296', '2147483648', '99999999999999999999999999999', '1e-400',
  '~', 'null', 'true', 'false', 'yes', '[]', '{}', '[1, 2]', '{ a: 1 }', '""', "''", '" "', '"\\0"', '"\\u0000"', '"\\x00abc"',
  '"\u202etxt"', '"💥"', '"\uFEFF"', 'é', '"$"', '"@"', '"$x+"', '"$$"', '"@@"', '"-$x"', '"1<<64"', '"1<<63"', '"-(1<<63)"', '"~0"',
  '"((((((((((1))))))))))"', `"${'('.repeat(300)}1${')'.repeat(300)}"`, `"${'-'.repeat(500)}1"`, `"${'1+'.repeat(2000)}1"`,
  '"PAGE_SIZE*PAGE_SIZE*PAGE_SIZE*PAGE_SIZE*PAGE_SIZE"', '"0xffffffffffffffff+1"', '"-0x8000000000000000-1"', '"1>>64"', '"1<<-1"',
  '!!binary aGVsbG8=', '!!str 1', '!!int "1"', '!!float 1', '!!map {}', '!!seq []', '!!set {a}', '!!omap [a: 1]', '!!timestamp 2001-12-14', '!foo bar',
  '*nope', '&a 1', '? complex', '|\n  block', '>-\n  folded', '"unterminated', "'unterminated",
  'x'.repeat(10000), `"${'é'.repeat(3000)}"`, 'SIGSEGV', 'PROT_READ', '@main', '$rsp', '/bin/nothing', '/', 'NSIG',
];

const UNKNOWN_KEYS = ['bogus', 'opz', 'proccesses', 'expct', 'nme', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'prototype', '$schema', '<<', '""', '1', 'null'];

type Mutator = (text: string, r: Rng) => string;

function lines(text: string): string[] {
  return text.split('\n');
}

/** Lines that look like `key: value` (not comments, not list dashes alone). */
function keyLines(ls: string[]): number[] {
  return ls.map((l, i) => (/^\s*(-\s+)?[A-Za-z_$][\w$]*:(\s|$)/.test(l) ? i : -1)).filter((i) => i >= 0);
}

const byteFlip: Mutator = (text, r) => {
  const b = Buffer.from(text, 'utf8');
  if (b.length === 0) return text;
  const n = 1 + r.below(3);
  for (let i = 0; i < n; i++) b[r.below(b.length)] ^= 1 << r.below(8);
  return b.toString('utf8');
};

const deleteLines: Mutator = (text, r) => {
  const ls = lines(text);
  const at = r.below(ls.length);
  ls.splice(at, 1 + (r.chance(0.3) ? r.below(4) : 0));
  return ls.join('\n');
};

const duplicateLines: Mutator = (text, r) => {
  const ls = lines(text);
  const at = r.below(ls.length);
  const n = 1 + (r.chance(0.3) ? r.below(5) : 0);
  ls.splice(at, 0, ...ls.slice(at, at + n));
  return ls.join('\n');
};

const swapLines: Mutator = (text, r) => {
  const ls = lines(text);
  const a = r.below(ls.length);
  const b = r.below(ls.length);
  [ls[a], ls[b]] = [ls[b], ls[a]];
  return ls.join('\n');
};

/** Swaps the key names of two `key:` lines (same or different indentation). */
const swapKeys: Mutator = (text, r) => {
  const ls = lines(text);
  const ks = keyLines(ls);
  if (ks.length < 2) return text;
  const a = r.pick(ks);
  const b = r.pick(ks);
  const key = (l: string): string => /^\s*(?:-\s+)?([^:\s]+):/.exec(l)![1];
  const ka = key(ls[a]);
  const kb = key(ls[b]);
  ls[a] = ls[a].replace(`${ka}:`, `${kb}:`);
  ls[b] = ls[b].replace(`${kb}:`, `${ka}:`);
  return ls.join('\n');
};

/** Replaces the value of a `key: value` line, an item of a flow mapping, or a list item with a hostile scalar. */
const replaceScalar: Mutator = (text, r) => {
  const ls = lines(text);
  const ks = keyLines(ls);
  if (ks.length === 0) return text;
  const i = r.pick(ks);
  const v = r.pick(HOSTILE_SCALARS);
  const flow = [...ls[i].matchAll(/([\w$]+):\s*([^,{}\[\]\n]+)/g)];
  if (flow.length > 1 && r.chance(0.6)) {
    const m = r.pick(flow);
    ls[i] = ls[i].replace(m[0], `${m[1]}: ${v}`);
  } else {
    ls[i] = ls[i].replace(/^(\s*(?:-\s+)?[^:\s]+:)(.*)$/, `$1 ${v}`);
  }
  return ls.join('\n');
};

/** Nudges a number: ±1, 0, -1, doubled, shifted far up. */
const tweakNumber: Mutator = (text, r) => {
  const nums = [...text.matchAll(/(?<![\w$])(0x[0-9a-fA-F_]+|\d+)(?![\w])/g)];
  if (nums.length === 0) return text;
  const m = r.pick(nums);
  let n: bigint;
  try {
    n = BigInt(m[1].replace(/_/g, ''));
  } catch {
    return text;
  }
  const choices = [n + 1n, n - 1n, 0n, -1n, n * 2n, n << 32n, n << 64n, -n, 1n << 63n, (1n << 64n) - 1n];
  const v = r.pick(choices);
  return text.slice(0, m.index) + (v < 0n ? `-${(-v).toString()}` : v.toString()) + text.slice(m.index! + m[0].length);
};

/** Puts a deeply nested value on a line: a flow list or mapping nested hundreds deep, or block nesting. */
const deepNesting: Mutator = (text, r) => {
  const ls = lines(text);
  const ks = keyLines(ls);
  if (ks.length === 0) return text;
  const i = r.pick(ks);
  const depth = r.pick([50, 255, 257, 300, 2000, 20000]);
  const kind = r.below(3);
  const v = kind === 0 ? '['.repeat(depth) + ']'.repeat(depth) : kind === 1 ? '{a: '.repeat(depth) + '1' + '}'.repeat(depth) : '';
  if (kind === 2) {
    const indent = /^\s*/.exec(ls[i])![0];
    const nested = Array.from({ length: Math.min(depth, 400) }, (_, d) => `${indent}${'  '.repeat(d + 1)}- `).map((l, d) => (d === Math.min(depth, 400) - 1 ? l + '1' : l.replace(/- $/, '-')));
    ls.splice(i + 1, 0, ...nested);
    return ls.join('\n');
  }
  ls[i] = ls[i].replace(/^(\s*(?:-\s+)?[^:\s]+:)(.*)$/, `$1 ${v}`);
  return ls.join('\n');
};

/** Adds an unknown (or prototype-polluting) key next to an existing one. */
const unknownKey: Mutator = (text, r) => {
  const ls = lines(text);
  const ks = keyLines(ls);
  if (ks.length === 0) return text;
  const i = r.pick(ks);
  const indent = /^\s*/.exec(ls[i])![0] + (/^\s*-\s/.test(ls[i]) ? '  ' : '');
  ls.splice(i + 1, 0, `${indent}${r.pick(UNKNOWN_KEYS)}: ${r.pick(HOSTILE_SCALARS.slice(0, 40))}`);
  return ls.join('\n');
};

/** Replaces a value with the other kind of collection, or a collection with a scalar. */
const wrongType: Mutator = (text, r) => {
  const ls = lines(text);
  const ks = keyLines(ls);
  if (ks.length === 0) return text;
  const i = r.pick(ks);
  ls[i] = ls[i].replace(/^(\s*(?:-\s+)?[^:\s]+:)(.*)$/, `$1 ${r.pick(['[]', '{}', '[[]]', '[{}]', '{a: []}', '- 1', '1', '"1"', 'true', '~'])}`);
  return ls.join('\n');
};

/** Text-level noise: a BOM, CRLF or lone CR line ends, tabs for indentation, a NUL, trailing garbage. */
const encoding: Mutator = (text, r) => {
  switch (r.below(7)) {
    case 0: return '\uFEFF' + text;
    case 1: return text.replace(/\n/g, '\r\n');
    case 2: return text.replace(/\n/g, '\r');
    case 3: {
      const ls = lines(text);
      const i = r.below(ls.length);
      ls[i] = ls[i].replace(/^( +)/, (s) => '\t'.repeat(Math.max(1, s.length >> 1)));
      return ls.join('\n');
    }
    case 4: {
      const at = r.below(text.length + 1);
      return text.slice(0, at) + r.pick(['\0', '\u0085', '\u2028', '\uFFFD', '\uD800', '---\n', '...\n', '%YAML 1.1\n---\n', '%TAG ! tag:x,2000:\n']) + text.slice(at);
    }
    case 5: return text + r.pick(['\n---\nprocesses: []\n', '\n---\n', '\n...\n', '\nprocesses: []\n', '\0']);
    default: return '%YAML 1.1\n---\n' + text;
  }
};

/** Cuts the file short at a random point. */
const truncate: Mutator = (text, r) => text.slice(0, r.below(text.length + 1));

/** Anchors and aliases: a value anchored and aliased elsewhere, an alias to a missing anchor, a merge key, an alias bomb. */
const aliases: Mutator = (text, r) => {
  const ls = lines(text);
  const ks = keyLines(ls);
  if (ks.length < 2) return text;
  const a = r.pick(ks);
  const b = r.pick(ks);
  switch (r.below(4)) {
    case 0:
      ls[a] = ls[a].replace(/^(\s*(?:-\s+)?[^:\s]+:)(\s*)(.*)$/, (_m, k, _s, v) => `${k} &anc ${v}`);
      ls[b] = ls[b].replace(/^(\s*(?:-\s+)?[^:\s]+:)(.*)$/, '$1 *anc');
      return ls.join('\n');
    case 1:
      ls[b] = ls[b].replace(/^(\s*(?:-\s+)?[^:\s]+:)(.*)$/, '$1 *missing');
      return ls.join('\n');
    case 2: {
      const indent = /^\s*/.exec(ls[b])![0];
      ls.splice(b, 0, `${indent}<<: *anc`);
      ls[a] = ls[a].replace(/^(\s*(?:-\s+)?[^:\s]+:)(\s*)(.*)$/, (_m, k, _s, v) => `${k} &anc ${v}`);
      return ls.join('\n');
    }
    default: {
      const bomb = ['x0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]', ...Array.from({ length: 9 }, (_, i) => `x${i + 1}: &a${i + 1} [${Array(10).fill(`*a${i}`).join(', ')}]`)];
      return bomb.join('\n') + '\n' + text;
    }
  }
};

/** A line taken from another place of the file, or a list item with a huge repeat. */
const splice: Mutator = (text, r) => {
  const ls = lines(text);
  const i = r.below(ls.length);
  if (r.chance(0.5)) {
    const from = ls[r.below(ls.length)];
    ls.splice(i, 0, from);
  } else {
    const indent = /^\s*/.exec(ls[i])![0];
    ls.splice(i, 0, `${indent}- repeat: { count: ${r.pick([100000, 100001, 99999, 1e9, -1])}, ops: [ { repeat: { count: ${r.pick([2, 100000])}, ops: [ getpid ] } } ] }`);
  }
  return ls.join('\n');
};

export const MUTATORS: readonly { name: string; fn: Mutator }[] = [
  { name: 'byte-flip', fn: byteFlip }, { name: 'delete-lines', fn: deleteLines }, { name: 'duplicate-lines', fn: duplicateLines },
  { name: 'swap-lines', fn: swapLines }, { name: 'swap-keys', fn: swapKeys }, { name: 'replace-scalar', fn: replaceScalar },
  { name: 'replace-scalar', fn: replaceScalar }, { name: 'tweak-number', fn: tweakNumber }, { name: 'tweak-number', fn: tweakNumber },
  { name: 'deep-nesting', fn: deepNesting }, { name: 'unknown-key', fn: unknownKey }, { name: 'wrong-type', fn: wrongType },
  { name: 'encoding', fn: encoding }, { name: 'truncate', fn: truncate }, { name: 'aliases', fn: aliases }, { name: 'splice', fn: splice },
];

/** Applies one to four mutations; returns the text and the names of the mutations applied. */
export function mutate(text: string, r: Rng): { text: string; applied: string[] } {
  const n = 1 + (r.chance(0.5) ? 0 : r.below(4));
  const applied: string[] = [];
  for (let i = 0; i < n; i++) {
    const m = r.pick(MUTATORS);
    text = m.fn(text, r);
    applied.push(m.name);
  }
  return { text, applied };
}
