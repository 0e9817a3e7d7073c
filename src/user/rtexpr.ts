/**
 * Run-time expressions: a program's value with several run-time terms (`$pkru | 3 << 2*$k`,
 * `($x & 0xfff) == 0`), evaluated as C evaluates it on uint64_t: every operand and result is a
 * 64-bit unsigned integer, + - * wrap modulo 2^64, / and % are unsigned, comparisons are
 * unsigned and give 0 or 1, `!` gives 0 or 1, && and || short-circuit. Two points C leaves
 * undefined are given x86's answer, what the compiled code would do: a shift count is taken
 * modulo 64 (SHL/SHR mask it to six bits), and a division or remainder by 0 raises #DE
 * (the interpreter turns DIVIDE_ERROR into the exception; Linux sends SIGFPE, FPE_INTDIV).
 *
 * Operands are numbers (decimal, 0x hexadecimal), `$name` (a variable, or the register `$rsp`),
 * `@function` and `&string`; the program resolves them when it is laid out (program.ts). The
 * scenario compiler folds names and constant parts first (scenario/expr.ts) and hands over
 * the rest in this syntax.
 */

/** Binary operators by C precedence (higher binds tighter; all associate to the left). */
export const PRECEDENCE: Readonly<Record<string, number>> = Object.freeze({
  '||': 1,
  '&&': 2,
  '|': 3,
  '^': 4,
  '&': 5,
  '==': 6,
  '!=': 6,
  '<': 7,
  '<=': 7,
  '>': 7,
  '>=': 7,
  '<<': 8,
  '>>': 8,
  '+': 9,
  '-': 9,
  '*': 10,
  '/': 10,
  '%': 10,
});

/** An expression tree: a number, a run-time term, a unary or a binary operation. */
export type RtNode =
  | { k: 'num'; v: bigint }
  | { k: 'ref'; ref: string; at: number }
  | { k: 'un'; op: '-' | '~' | '!'; a: RtNode }
  | { k: 'bin'; op: string; a: RtNode; b: RtNode };

/** Thrown by an evaluation that divides by 0: the interpreter raises #DE for it. */
export const DIVIDE_ERROR: { readonly name: 'DIVIDE_ERROR' } = Object.freeze({ name: 'DIVIDE_ERROR' as const });

/** A mistake in an expression's text, `offset` characters in. */
export class RtExprError extends Error {
  constructor(readonly offset: number, message: string) {
    super(message);
  }
}

/** 2^64 - 1: what a uint64 keeps. */
export const M64 = (1n << 64n) - 1n;

/** `op` on two uint64 values, as C on uint64_t (shift counts modulo 64; DIVIDE_ERROR for / or % by 0). Not for && and ||. */
export function binop(op: string, x: bigint, y: bigint): bigint {
  switch (op) {
    case '|': return x | y;
    case '^': return x ^ y;
    case '&': return x & y;
    case '==': return x === y ? 1n : 0n;
    case '!=': return x !== y ? 1n : 0n;
    case '<': return x < y ? 1n : 0n;
    case '<=': return x <= y ? 1n : 0n;
    case '>': return x > y ? 1n : 0n;
    case '>=': return x >= y ? 1n : 0n;
    case '<<': return (x << (y & 63n)) & M64;
    case '>>': return x >> (y & 63n);
    case '+': return (x + y) & M64;
    case '-': return (x - y) & M64;
    case '*': return (x * y) & M64;
    case '/':
      if (y === 0n) throw DIVIDE_ERROR;
      return x / y;
    case '%':
      if (y === 0n) throw DIVIDE_ERROR;
      return x % y;
  }
  throw new RtExprError(0, `unknown operator ${op}`);
}

/** `op` on a uint64 value. */
export function unop(op: '-' | '~' | '!', x: bigint): bigint {
  return op === '-' ? (-x) & M64 : op === '~' ? ~x & M64 : x === 0n ? 1n : 0n;
}

const TOKEN = /\s*(?:(0[xX][0-9a-fA-F]+|\d+)|([$@&][A-Za-z_][\w.]*)|(<<|>>|<=|>=|==|!=|&&|\|\||[|&^+\-*/%~!<>()]))/y;

/** Parses the text of a run-time expression; throws RtExprError at the offending offset. */
export function parseRtExpr(text: string): RtNode {
  const tokens: { kind: 'num' | 'ref' | 'op'; text: string; at: number }[] = [];
  let at = 0;
  while (text.slice(at).trim() !== '') {
    TOKEN.lastIndex = at;
    const m = TOKEN.exec(text);
    if (!m) {
      const start = at + (text.length - at - text.slice(at).trimStart().length);
      throw new RtExprError(start, `unexpected ${JSON.stringify(text[start])}`);
    }
    const tok = m[1] ?? m[2] ?? m[3];
    const start = TOKEN.lastIndex - tok.length;
    const prev = tokens[tokens.length - 1];
    // After a complete operand, '&' is the operator, not a string's address.
    if (m[2] && tok[0] === '&' && prev && (prev.kind !== 'op' || prev.text === ')')) {
      tokens.push({ kind: 'op', text: '&', at: start });
      at = start + 1;
      continue;
    }
    tokens.push({ kind: m[1] ? 'num' : m[2] ? 'ref' : 'op', text: tok, at: start });
    at = TOKEN.lastIndex;
  }
  let i = 0;
  const primary = (depth: number): RtNode => {
    const t = tokens[i++];
    if (!t) throw new RtExprError(text.length, 'the expression ends too early');
    if (depth > 256) throw new RtExprError(t.at, 'the expression nests more than 256 deep');
    if (t.kind === 'num') return { k: 'num', v: BigInt(t.text) & M64 };
    if (t.kind === 'ref') return { k: 'ref', ref: t.text, at: t.at };
    if (t.text === '(') {
      const v = binary(0, depth + 1);
      const close = tokens[i++];
      if (!close || close.text !== ')') throw new RtExprError(close ? close.at : text.length, 'expected )');
      return v;
    }
    if (t.text === '-' || t.text === '~' || t.text === '!') return { k: 'un', op: t.text, a: primary(depth + 1) };
    throw new RtExprError(t.at, `unexpected ${JSON.stringify(t.text)}`);
  };
  const binary = (minPrec: number, depth: number): RtNode => {
    let left = primary(depth);
    for (;;) {
      const op = tokens[i];
      if (!op || op.kind !== 'op' || !(op.text in PRECEDENCE) || PRECEDENCE[op.text] < minPrec) return left;
      i++;
      left = { k: 'bin', op: op.text, a: left, b: binary(PRECEDENCE[op.text] + 1, depth) };
    }
  };
  if (tokens.length === 0) throw new RtExprError(0, 'expected a value, found nothing');
  const v = binary(0, 0);
  if (i < tokens.length) throw new RtExprError(tokens[i].at, `unexpected ${JSON.stringify(tokens[i].text)} after a complete value`);
  return v;
}

/** The expression as text this module parses back to the same tree (fully parenthesised). */
export function renderRtExpr(n: RtNode): string {
  if (n.k === 'num') return n.v < 10n ? String(n.v) : `0x${n.v.toString(16)}`;
  if (n.k === 'ref') return n.ref;
  if (n.k === 'un') return `${n.op}(${renderRtExpr(n.a)})`;
  return `(${renderRtExpr(n.a)} ${n.op} ${renderRtExpr(n.b)})`;
}

/** The run-time terms of a tree, in text order. */
export function rtRefs(n: RtNode, out: { ref: string; at: number }[] = []): { ref: string; at: number }[] {
  if (n.k === 'ref') out.push({ ref: n.ref, at: n.at });
  else if (n.k === 'un') rtRefs(n.a, out);
  else if (n.k === 'bin') {
    rtRefs(n.a, out);
    rtRefs(n.b, out);
  }
  return out;
}

/** A compiled expression: its value for a thread's variables and stack pointer. */
export type RtEval = (vars: ReadonlyMap<string, bigint>, sp: number) => bigint;

/**
 * Compiles a tree into a closure, once, when the program is laid out; `term` gives the closure
 * of each run-time term. The closure allocates nothing but its bigints.
 */
export function compileRtExpr(n: RtNode, term: (ref: string) => RtEval): RtEval {
  if (n.k === 'num') {
    const c = n.v;
    return () => c;
  }
  if (n.k === 'ref') return term(n.ref);
  if (n.k === 'un') {
    const a = compileRtExpr(n.a, term);
    const op = n.op;
    return (vars, sp) => unop(op, a(vars, sp));
  }
  const a = compileRtExpr(n.a, term);
  const b = compileRtExpr(n.b, term);
  const op = n.op;
  if (op === '&&') return (vars, sp) => (a(vars, sp) !== 0n && b(vars, sp) !== 0n ? 1n : 0n);
  if (op === '||') return (vars, sp) => (a(vars, sp) !== 0n || b(vars, sp) !== 0n ? 1n : 0n);
  return (vars, sp) => binop(op, a(vars, sp), b(vars, sp));
}
