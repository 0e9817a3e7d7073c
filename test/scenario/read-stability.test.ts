/**
 * The read_stability invariant (src/scenario/read_stability.ts): it breaks where a program sees
 * a value it read change without a store of its own address space (the MADV_FREE finding,
 * docs/findings.md), holds under each proposed fix, and holds in every built-in scenario whose
 * own expectations hold (no false alarm from COW, threads, signals, execve or syscalls that
 * write user memory).
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { replay } from '../../src/explore/explore.js';
import { compileScenarioFile, compileScenarioText, runScenario } from '../../src/scenario/index.js';
import type { CompiledScenario } from '../../src/scenario/compile.js';

const dir = fileURLToPath(new URL('../../../scenarios/', import.meta.url));

/** The scenario with read_stability added to its end invariants. */
function withReadStability(file: string): CompiledScenario {
  const c = compileScenarioFile(`${dir}${file}`);
  c.end.invariants = [...c.end.invariants, { name: 'read_stability', path: ['expect', 'invariants', 99] }];
  return c;
}

function readStability(c: CompiledScenario): { status: string; actual: string } {
  const v = runScenario(c).verdicts.find((x) => x.expected === 'read_stability');
  assert.ok(v, 'a read_stability verdict');
  return v;
}

test('read_stability: the child of fork-madvfree-lost reads 2, then 0, with no store of its own: broken, naming both reads', () => {
  const v = readStability(withReadStability('fork-madvfree-lost.yaml'));
  assert.equal(v.status, 'failed');
  assert.match(v.actual, /read 0x0 at 0x[0-9a-f]+, where task \d+ of the same address space read 0x2/);
});

test('read_stability: holds under each proposed fix of the finding', () => {
  for (const fix of [{ fork_child_pte: 'installed' }, { anon_dirty_drop: 'folio_mark_dirty' }] as const) {
    const c = withReadStability('fork-madvfree-lost.yaml');
    c.system.kernel = { ...c.system.kernel, ...fix };
    assert.equal(readStability(c).status, 'held', JSON.stringify(fix));
  }
});

test('read_stability: holds in every other built-in scenario', () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== 'fork-madvfree-lost.yaml');
  assert.ok(files.length >= 15);
  for (const f of files) {
    const v = readStability(withReadStability(f));
    assert.equal(v.status, 'held', `${f}: ${v.actual}`);
  }
});

test('read_stability in the explorer: a schedule it found under upstream replays to the lost write, and not under either fix', () => {
  // `isolab explore scenarios/fork-madvfree-lost.yaml --invariants read_stability --mode uniform`
  // printed this counterexample: the writer's store inside fork's copy, then the child's reads.
  const runs = [[0, 137], [1, 19], [0, 5], [1, 5], [0, 30], [1, 41], [0, 26], [1, 227]];
  const schedule = runs.flatMap(([cpu, n]) => Array<number>(n).fill(cpu));
  const upstream = replay(compileScenarioFile(`${dir}fork-madvfree-lost.yaml`), schedule, { invariants: ['read_stability'] });
  assert.equal(upstream.violation?.invariant, 'read_stability');
  assert.match(upstream.violation!.message, /read 0x0 .* read 0x2/);
  for (const fix of [{ fork_child_pte: 'installed' }, { anon_dirty_drop: 'folio_mark_dirty' }] as const) {
    const c = compileScenarioFile(`${dir}fork-madvfree-lost.yaml`);
    c.system.kernel = { ...c.system.kernel, ...fix };
    assert.equal(replay(c, schedule, { invariants: ['read_stability'] }).violation, null, JSON.stringify(fix));
  }
});

test('read_stability: XSAVE and XSAVEC write the program\'s memory, so a load they change is no false alarm', () => {
  for (const insn of ['xsave', 'xsavec']) {
    const c = compileScenarioText(`name: xsave-read-stability
processes:
  - name: p
    ops:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS }
        as: buf
      - load: $buf + 512
        expect: 0
      - wrpkru: 4
      - ${insn}: { addr: $buf }
      - load: $buf + 512
        expect: 0x200
expect:
  invariants: [read_stability]
`, 'xsave-read-stability.yaml');
    const v = runScenario(c).verdicts;
    assert.deepEqual(v.filter((x) => x.status !== 'held'), [], insn);
    assert.ok(v.some((x) => x.expected === 'read_stability'), insn);
  }
});
