/**
 * Values in scenario files: C expressions over numbers, Linux's symbolic constants
 * (`PROT_READ|PROT_WRITE`, `PAGE_SIZE*4`, `SIGSEGV`) and run-time terms: a result named earlier
 * (`$buf`), a function's address (`@handler`) or a string's address (`&path`).
 *
 * Everything constant is folded when the file is loaded, so an unknown name is reported then,
 * with the column of the name inside the value. What is left is one run-time term plus a
 * constant offset (`$buf+PAGE_SIZE`: the interpreter's fast path), or an expression the
 * interpreter evaluates on uint64_t when the operation runs (src/user/rtexpr.ts), handed over
 * as text in rtexpr's syntax.
 */
import * as uapi from '../kernel/uapi.js';
import { binop, M64, PRECEDENCE, renderRtExpr, type RtNode } from '../user/rtexpr.js';

/** Every symbolic constant a value may name: the UAPI constants plus PAGE_SIZE. */
export const CONSTANTS: ReadonlyMap<string, bigint> = (() => {
  const m = new Map<string, bigint>();
  for (const [name, v] of Object.entries(uapi)) {
    if (typeof v === 'number' && /^_*[A-Z][A-Z0-9_]*$/.test(name)) m.set(name, BigInt(v));
  }
  m.set('PAGE_SIZE', 4096n);
  return m;
})();

/**
 * A folded value: `constant`, plus the run-time term `ref` (`$name`, `@fn` or `&string`) when
 * there is one; or, when run-time terms are combined otherwise, `expr` (the expression in
 * rtexpr.ts's syntax, constants folded) with `refs`, its terms and their offsets in the text
 * (`ref` is then the first of them and `constant` is 0).
 */
export interface Folded {
  ref?: string;
  constant: bigint;
  expr?: string;
  refs?: { ref: string; at: number }[];
}

/** A mistake in a value, at `offset` characters into its text. */
export class ExprError extends Error {
  constructor(readonly offset: number, message: string) {
    super(message);
  }
}

type Token = { kind: 'num' | 'name' | 'ref' | 'op'; text: string; at: number };

const TOKEN = /\s*(?:(0[xX][0-9a-fA-F_]+|0[bB][01_]+|\d[\d_]*)|([A-Za-z_][A-Za-z0-9_]*)|([$@&][A-Za-z_][A-Za-z0-9_]*)|(<<|>>|<=|>=|==|!=|&&|\|\||[|&^+\-*/%~!<>()]))/y;

function tokenize(text: string): Token[] {
  const out: Token[] = [];
  TOKEN.lastIndex = 0;
  let at = 0;
  while (at < text.length) {
    if (/^\s*$/.test(text.slice(at))) break;
    TOKEN.lastIndex = at;
    const m = TOKEN.exec(text);
    if (!m) {
      const start = at + (text.slice(at).length - text.slice(at).trimStart().length);
      throw new ExprError(start, `unexpected ${JSON.stringify(text[start])}; a value is a number, a constant such as PROT_READ, $name, @function or &string, joined by C's operators (| ^ & << >> + - * / % ~ ! == != < <= > >= && || and parentheses)`);
    }
    const start = m.index + m[0].length - (m[1] ?? m[2] ?? m[3] ?? m[4]).length;
    if (m[1]) out.push({ kind: 'num', text: m[1], at: start });
    else if (m[2]) out.push({ kind: 'name', text: m[2], at: start });
    else if (m[3] && m[3][0] === '&' && out.length > 0 && (out[out.length - 1].kind !== 'op' || out[out.length - 1].text === ')')) {
      // After a complete operand, '&' is the bitwise operator, not a string's address.
      out.push({ kind: 'op', text: '&', at: start });
      at = start + 1;
      continue;
    } else if (m[3]) out.push({ kind: 'ref', text: m[3], at: start });
    else out.push({ kind: 'op', text: m[4], at: start });
    at = TOKEN.lastIndex;
  }
  return out;
}

/** How deep parentheses and unary operators may nest in one value (the parser is recursive). */
export const MAX_EXPR_DEPTH = 256;


/**
 * Folds the text of a value, its names looked up in `names` (the scenario's params and repeat
 * indices) before the constants. Throws ExprError at the offending offset for an unknown name,
 * a syntax error, or a run-time term used other than as `ref ± constant`.
 */
export function foldExpr(text: string, names?: ReadonlyMap<string, bigint>): Folded {
  const tokens = tokenize(text);
  if (tokens.length === 0) throw new ExprError(0, 'expected a value, found nothing');
  let i = 0;
  const peek = (): Token | undefined => tokens[i];
  const end = (): number => (tokens.length ? tokens[tokens.length - 1].at + tokens[tokens.length - 1].text.length : 0);

  let depth = 0;
  const primary = (): Part => {
    const t = tokens[i++];
    if (!t) throw new ExprError(end(), 'the value ends too early');
    if ((t.text === '(' || t.text === '-' || t.text === '~' || t.text === '!') && t.kind === 'op' && depth >= MAX_EXPR_DEPTH) {
      throw new ExprError(t.at, `the value nests parentheses and unary - ~ ! more than ${MAX_EXPR_DEPTH} deep; the limit is ${MAX_EXPR_DEPTH}`);
    }
    depth++;
    try {
      return primaryOf(t);
    } finally {
      depth--;
    }
  };

  const primaryOf = (t: Token): Part => {
    if (t.kind === 'num') {
      const digits = t.text.replace(/_/g, '');
      if (/^0[xXbB]$/.test(digits)) throw new ExprError(t.at, `${t.text} has no digits after ${t.text.slice(0, 2)}`);
      return { constant: BigInt(digits), at: t.at };
    }
    if (t.kind === 'name') {
      const v = names?.get(t.text) ?? CONSTANTS.get(t.text);
      if (v === undefined) throw new ExprError(t.at, `unknown constant ${t.text}${suggest(t.text, [...(names?.keys() ?? []), ...CONSTANTS.keys()])}`);
      return { constant: v, at: t.at };
    }
    if (t.kind === 'ref') return { ref: t.text, constant: 0n, at: t.at, refs: [{ ref: t.text, at: t.at }] };
    if (t.text === '(') {
      const v = binary(0);
      const close = tokens[i++];
      if (!close || close.text !== ')') throw new ExprError(close ? close.at : end(), 'expected )');
      return { ...v, at: t.at };
    }
    if (t.text === '-' || t.text === '~' || t.text === '!') {
      const v = primary();
      if (v.refs) return { ref: v.ref, constant: 0n, at: t.at, refs: v.refs, node: { k: 'un', op: t.text, a: nodeOf(v) } };
      if (t.text === '!') return { constant: v.constant === 0n ? 1n : 0n, at: t.at };
      return { constant: t.text === '-' ? -v.constant : ~v.constant, at: t.at };
    }
    throw new ExprError(t.at, `unexpected ${JSON.stringify(t.text)}`);
  };

  const binary = (minPrec: number): Part => {
    let left = primary();
    for (;;) {
      const op = peek();
      if (!op || op.kind !== 'op' || !(op.text in PRECEDENCE) || PRECEDENCE[op.text] < minPrec) return left;
      i++;
      const right = binary(PRECEDENCE[op.text] + 1);
      left = combine(left, op, right);
    }
  };

  const v = binary(0);
  if (i < tokens.length) throw new ExprError(tokens[i].at, `unexpected ${JSON.stringify(tokens[i].text)} after a complete value`);
  if (v.node) return { ref: v.ref, constant: 0n, expr: renderRtExpr(v.node), refs: v.refs };
  return v.ref ? { ref: v.ref, constant: v.constant, refs: v.refs } : { constant: v.constant };
}

/**
 * A value being folded: a constant; one run-time term `ref` plus `constant`; or, with `node`,
 * an expression over the terms `refs`.
 */
type Part = { ref?: string; constant: bigint; at: number; refs?: { ref: string; at: number }[]; node?: RtNode };

/** A part as an expression tree (constants as uint64). */
function nodeOf(p: Part): RtNode {
  if (p.node) return p.node;
  const c: RtNode = { k: 'num', v: p.constant & M64 };
  if (!p.ref) return c;
  const ref: RtNode = { k: 'ref', ref: p.ref, at: p.refs![0].at };
  return p.constant === 0n ? ref : { k: 'bin', op: '+', a: ref, b: c };
}

/**
 * `a op b`. Constants fold: | ^ & << + - * exactly, as the file's numbers (checked against 64
 * bits at the end); >> / % comparisons && || on their uint64 values, as C on uint64_t and as
 * the interpreter evaluates them. A run-time term plus or minus a constant stays a term with an
 * offset; anything else becomes an expression tree.
 */
function combine(a: Part, op: Token, b: Part): Part {
  const o = op.text;
  if ((o === '<<' || o === '>>') && !b.refs && (b.constant < 0n || b.constant > 63n)) {
    throw new ExprError(b.at, `shift count ${b.constant} is outside 0 to 63: a value has 64 bits, and C leaves other counts undefined`);
  }
  if ((o === '/' || o === '%') && !b.refs && (b.constant & M64) === 0n) throw new ExprError(b.at, `division by zero (${o} 0)`);
  if (a.refs || b.refs) {
    if (!a.node && !b.node && !(a.ref && b.ref) && (o === '+' || (o === '-' && a.ref))) {
      const ref = (a.ref ?? b.ref)!;
      return { ref, constant: o === '+' ? a.constant + b.constant : a.constant - b.constant, at: a.at, refs: a.refs ?? b.refs };
    }
    return { ref: a.ref ?? b.ref, constant: 0n, at: a.at, refs: [...(a.refs ?? []), ...(b.refs ?? [])], node: { k: 'bin', op: o, a: nodeOf(a), b: nodeOf(b) } };
  }
  const x = a.constant;
  const y = b.constant;
  let r: bigint;
  if (o === '|') r = x | y;
  else if (o === '^') r = x ^ y;
  else if (o === '&') r = x & y;
  else if (o === '<<') r = x << y;
  else if (o === '+') r = x + y;
  else if (o === '-') r = x - y;
  else if (o === '*') r = x * y;
  else if (o === '&&') r = (x & M64) !== 0n && (y & M64) !== 0n ? 1n : 0n;
  else if (o === '||') r = (x & M64) !== 0n || (y & M64) !== 0n ? 1n : 0n;
  else r = binop(o, x & M64, y & M64);
  return { constant: r, at: a.at };
}

/** ", did you mean X?" for the closest of `known` within an edit distance of 2, else "". */
export function suggest(word: string, known: Iterable<string>): string {
  let best = '';
  let bestD = 3;
  for (const k of known) {
    const d = editDistance(word.toUpperCase() === word ? word : word.toLowerCase(), k.toUpperCase() === k ? k : k.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best ? `; did you mean ${best}?` : '';
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

/** The program-level Value for a folded value (see src/user/program.ts). */
export function toValue(f: Folded): number | bigint | string {
  if (f.expr !== undefined) return f.expr;
  if (!f.ref) return f.constant;
  if (f.constant === 0n) return f.ref;
  return f.constant > 0n ? `${f.ref}+${f.constant}` : `${f.ref}-${-f.constant}`;
}
