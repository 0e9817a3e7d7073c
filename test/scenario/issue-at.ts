/**
 * Checks a compile error's place: the scenario text must be refused with an issue at the line
 * and column where `needle` starts (plus `shift` characters) whose message contains
 * `fragment`.
 */
import assert from 'node:assert/strict';
import { ScenarioError } from '../../src/errors.js';
import { compileScenarioText } from '../../src/scenario/index.js';

export function issueAt(text: string, needle: string, fragment: string, shift = 0): void {
  const found = text.indexOf(needle);
  assert.ok(found >= 0, `${JSON.stringify(needle)} is not in the text`);
  const before = text.slice(0, found + shift).split('\n');
  const line = before.length;
  const col = before[before.length - 1].length + 1;
  try {
    compileScenarioText(text, 'bad.yaml');
  } catch (e) {
    assert.ok(e instanceof ScenarioError);
    const m = e.issues.find((i) => i.line === line && i.col === col);
    assert.ok(m, `no issue at ${line}:${col}; got ${e.issues.map((i) => `${i.line}:${i.col} ${i.message}`).join(' | ')}`);
    assert.ok(m.message.includes(fragment), m.message);
    return;
  }
  assert.fail('accepted');
}
