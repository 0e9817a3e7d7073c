/**
 * docs/host.md's lists come from isolab host's own tables: the kernel options that do not keep
 * a scenario off the host, the operations and syscalls it does not run, and the range syscalls
 * widening repeats on every copy. A name added to a table and not to the page (or the other
 * way round) fails here.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { NEUTRAL_OPTIONS, OP_REASONS, SYSCALL_REASONS } from '../../src/host/support.js';
import { RANGE_SYSCALLS } from '../../src/host/widen.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const page = readFileSync(join(root, 'docs/host.md'), 'utf8');

/** The backticked names in the parenthesis that follows `after` on the page. */
function listAfter(after: string): string[] {
  const at = page.indexOf(after);
  assert.ok(at >= 0, `docs/host.md has "${after}"`);
  const open = at + after.length;
  const close = page.indexOf(')', open);
  return [...page.slice(open, close).matchAll(/`([^`]+)`/g)].map((m) => m[1]).sort();
}

test('docs/host.md: the kernel options that do not keep a scenario off the host are NEUTRAL_OPTIONS', () => {
  assert.deepEqual(listAfter('only change how\n  isolab schedules or checks ('), [...NEUTRAL_OPTIONS].sort());
});

test('docs/host.md: the range syscalls widening repeats are RANGE_SYSCALLS', () => {
  assert.deepEqual(listAfter('every load, store and range syscall ('), [...RANGE_SYSCALLS].sort());
});

test('docs/host.md names every operation and syscall isolab host does not run', () => {
  const named = new Set([...page.matchAll(/`([a-z_0-9]+)`/g)].map((m) => m[1]));
  const missing = [...Object.keys(OP_REASONS), ...Object.keys(SYSCALL_REASONS)].filter((n) => !named.has(n));
  assert.deepEqual(missing, []);
});
