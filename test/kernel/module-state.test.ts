/**
 * No state crosses a step outside its path's own context (DESIGN.md, "Concurrency in the
 * model"): a value kept in a module variable between two `yield`s is overwritten by any other
 * CPU's path that runs in between. So the kernel and the processor keep no module-level mutable
 * state at all, only true constants; this test reads every source file of src/kernel and
 * src/hw with the TypeScript parser and names each exception by file and line.
 *
 * Refused at the top level of a module: `let` and `var`; a `const` holding a fresh mutable
 * container (an array or object literal, `new Map`, `new Set`, `new Array`, a typed array)
 * unless its declared type is read-only or it is frozen (`Object.freeze`, `as const`); and a
 * static class property that is not `readonly`.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import ts from 'typescript';

const ROOT = new URL('../../../', import.meta.url);
const DIRS = ['src/kernel', 'src/hw'];
const CONTAINERS = /^(Map|Set|WeakMap|WeakSet|Array|(Ui|I)nt(8|16|32)Array|Uint8ClampedArray|Float(32|64)Array|Big(Ui|I)nt64Array)$/;

/** The problems in one file's source, as `file:line: what`. */
export function moduleStateProblems(file: string, text: string): string[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
  const out: string[] = [];
  const at = (n: ts.Node, what: string): void => {
    out.push(`${file}:${sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1}: ${what}`);
  };
  const frozen = (e: ts.Expression): boolean => {
    if (ts.isAsExpression(e)) return ts.isTypeReferenceNode(e.type) && e.type.typeName.getText(sf) === 'const';
    if (ts.isCallExpression(e)) return e.expression.getText(sf) === 'Object.freeze';
    return false;
  };
  const mutableContainer = (e: ts.Expression): boolean => {
    if (ts.isParenthesizedExpression(e)) return mutableContainer(e.expression);
    if (ts.isArrayLiteralExpression(e) || ts.isObjectLiteralExpression(e)) return true;
    if (ts.isNewExpression(e)) return CONTAINERS.test(e.expression.getText(sf));
    return false;
  };
  const readonlyType = (t: ts.TypeNode | undefined): boolean => {
    if (!t) return false;
    const s = t.getText(sf);
    return /^(readonly\s|Readonly(Map|Set|Array)?<|ReadonlyArray<)/.test(s);
  };
  for (const st of sf.statements) {
    if (ts.isVariableStatement(st)) {
      const kind = st.declarationList.flags & ts.NodeFlags.Const ? 'const' : st.declarationList.flags & ts.NodeFlags.Let ? 'let' : 'var';
      for (const d of st.declarationList.declarations) {
        const name = d.name.getText(sf);
        if (kind !== 'const') at(d, `module-level ${kind} ${name}`);
        else if (d.initializer && mutableContainer(d.initializer) && !frozen(d.initializer) && !readonlyType(d.type)) {
          at(d, `module-level const ${name} holds a mutable container (give it a read-only type or freeze it)`);
        }
      }
    }
    if (ts.isClassDeclaration(st)) {
      for (const m of st.members) {
        if (!ts.isPropertyDeclaration(m)) continue;
        const mods = ts.getModifiers(m) ?? [];
        const isStatic = mods.some((x) => x.kind === ts.SyntaxKind.StaticKeyword);
        const isReadonly = mods.some((x) => x.kind === ts.SyntaxKind.ReadonlyKeyword);
        if (isStatic && !isReadonly) at(m, `static property ${m.name.getText(sf)} of class ${st.name?.getText(sf) ?? '(anonymous)'} is not readonly`);
      }
    }
  }
  return out;
}

test('src/kernel and src/hw keep no module-level mutable state', () => {
  const problems: string[] = [];
  let files = 0;
  for (const dir of DIRS) {
    for (const name of readdirSync(new URL(dir, ROOT))) {
      if (!name.endsWith('.ts')) continue;
      files++;
      const file = `${dir}/${name}`;
      problems.push(...moduleStateProblems(file, readFileSync(new URL(file, ROOT), 'utf8')));
    }
  }
  assert.ok(files > 20, `expected the kernel and hardware sources, read ${files} files`);
  assert.deepEqual(problems, []);
});

test('the check catches each kind of module state it refuses, and passes constants', () => {
  const bad = [
    'let outcome = "";',
    'var n = 0;',
    'export let pteHi = 0;',
    'const cache = new Map<string, number>();',
    'const list: number[] = [];',
    'const seen = new Set();',
    'const box = { last: 0 };',
    'const words = new Uint32Array(8);',
    'class A { static count = 0; }',
  ];
  for (const src of bad) assert.equal(moduleStateProblems('x.ts', src).length, 1, src);
  const good = [
    'const PTE_P = 1;',
    "export const NAMES = ['a', 'b'] as const;",
    'const T: readonly number[] = [1, 2];',
    'const M: ReadonlyMap<string, number> = new Map([["a", 1]]);',
    'const F = Object.freeze({ a: 1 });',
    'class A { static readonly MAX = 4; count = 0; }',
    'function f() { let x = 0; const m = new Map(); return [x, m]; }',
  ];
  for (const src of good) assert.deepEqual(moduleStateProblems('x.ts', src), [], src);
});
