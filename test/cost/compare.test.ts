/**
 * `compare` (src/cost/compare.ts, src/cli/compare.ts): the sides of a seed's debate run side by
 * side, checked against figures computed by hand from the cost table and from Linux's code:
 *
 * - seed 003, fork_wrprotect: the scenario's parent has one writable private present PTE at fork
 *   (the page it stored to; its text is a file mapping fork does not copy, vma_needs_copy), so
 *   the write-protect costs one `cmpxchg` (22 cycles, uops.info LOCK CMPXCHG plus the load) on
 *   the 6.6 side and one `lock_rmw` (18, LOCK-prefixed RMW) on the 6.5 side, and nothing else
 *   differs.
 * - seed 004, entry_stack: arch/x86/entry/entry_64.S moves these bytes, per_cpu (upstream):
 *   SYSCALL entry 8 (RSP to TSS sp2) + 168 (PUSH_AND_CLEAR_REGS, 21 words); SYSRET exit 160
 *   (POP_REGS but one word) + 16 (RSP and RDI on the entry stack); IDT entry 40 (the CPU's
 *   frame) + 128 (the rest of pt_regs) + 168 (sync_regs); IRET exit 160 + 48 (the IRET frame
 *   and RDI). per_task (the 2020 RFC): SYSCALL entry 168, SYSRET exit 168, IDT entry 40 + 128,
 *   IRET exit 128 (pt_regs stay where they landed). Each 8 bytes is one `stack_copy_8`.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { compareSides, parseSide, type CompareReport } from '../../src/cost/compare.js';
import { builtinCostTable, profileOf } from '../../src/cost/table.js';
import { ArgumentError, ConfigError, ScenarioError } from '../../src/errors.js';
import { compileScenarioFile, compileScenarioText } from '../../src/scenario/index.js';
import { runScenario } from '../../src/scenario/run.js';

const table = builtinCostTable();
const skylake = profileOf(table);
const root = fileURLToPath(new URL('../../../', import.meta.url));

const count = (r: CompareReport['sides'][number], name: string): number => r.report.total.items.find((i) => i.name === name)?.count ?? 0;

test('seed 003: the two write-protects differ by one cmpxchg against one locked AND, and nothing else', () => {
  const r = compareSides(compileScenarioFile('scenarios/fork-wrprotect-atomic-clear.yaml'), table, skylake);
  assert.deepEqual(r.sides.map((s) => s.name), ['cmpxchg', 'atomic_clear']);
  const [cmp, clr] = r.sides;
  assert.equal(cmp.report.total.byCategory.atomic, 22);
  assert.equal(clr.report.total.byCategory.atomic, 18);
  assert.equal(cmp.report.total.cycles - clr.report.total.cycles, 22 - 18);
  // The 6.5 side leaves D set with R/W clear (the scenario's expectations); the 6.6 side moves D to SavedDirty, so they fail there.
  assert.equal(clr.report.passed, true);
  assert.equal(cmp.report.passed, false);
});

test('seed 004: the entry code\'s register copies, per side, as entry_64.S and the RFC move them', () => {
  const c = compileScenarioFile('scenarios/entry-stack-per-task.yaml');
  const r = compareSides(c, table, skylake);
  assert.deepEqual(r.sides.map((s) => s.name), ['per_cpu', 'per_task']);
  // How many of each way in and out the run took (the same on both sides: the schedule is the same).
  const kinds = (entry_stack: string): Record<string, number> => {
    const rec = runScenario({ ...c, system: { ...c.system, kernel: { ...c.system.kernel, entry_stack: entry_stack as 'per_cpu' } } }, { record: true });
    const n = { syscall: 0, sysret: 0, iret: 0, idt: 0 };
    for (const { event: e } of rec.trace!) {
      if (e.type === 'syscall_enter') n.syscall++;
      if (e.type === 'entry' && e.what === 'sysret') n.sysret++;
      if (e.type === 'entry' && e.what === 'iret') n.iret++;
      if (e.type === 'entry' && e.what === 'hw_frame') n.idt++;
    }
    return n;
  };
  const n = kinds('per_cpu');
  assert.deepEqual(kinds('per_task'), n);
  assert.ok(n.syscall > 0 && n.idt > 0 && n.iret > 0, JSON.stringify(n));
  const [cpu, task] = r.sides;
  assert.equal(count(cpu, 'stack_copy_8'), ((8 + 168) * n.syscall + (160 + 16) * n.sysret + (40 + 128 + 168) * n.idt + (160 + 48) * n.iret) / 8);
  assert.equal(count(task, 'stack_copy_8'), (168 * n.syscall + 168 * n.sysret + (40 + 128) * n.idt + 128 * n.iret) / 8);
  assert.equal(cpu.report.total.byCategory.entry! - task.report.total.byCategory.entry!, (count(cpu, 'stack_copy_8') - count(task, 'stack_copy_8')) * 0.75 + (count(cpu, 'stack_switch') - count(task, 'stack_switch')) * 1);
});

test('sides from the command line replace the scenario\'s; a profile per side', () => {
  const c = compileScenarioFile('scenarios/pcid-switch.yaml');
  const r = compareSides(c, table, skylake, [parseSide('pcid'), parseSide('nopcid:profile=skylake-nopcid'), parseSide('bootnopcid:nopcid=true')]);
  const [pcid, none, boot] = r.sides;
  assert.equal(none.profile, 'skylake-nopcid');
  assert.equal(count(pcid, 'cr3_write_flush') < count(none, 'cr3_write_flush'), true);
  // nopcid on the command line (the boot parameter) on a PCID CPU: the kernel does not use them either.
  assert.equal(count(boot, 'cr3_write_noflush'), 0);
  assert.equal(boot.profile, 'skylake');
});

test('bad sides: too few, a duplicate, an unknown option or profile, each a clear error', () => {
  const c = compileScenarioFile('scenarios/pcid-switch.yaml');
  assert.throws(() => compareSides(c, table, skylake), (e: unknown) => e instanceof ArgumentError && /declares no sides; give at least two/.test(e.message));
  assert.throws(() => compareSides(c, table, skylake, [parseSide('a'), parseSide('a')]), /two sides are named a/);
  assert.throws(() => parseSide('x:fork_wrprotec=cmpxchg'), (e: unknown) => e instanceof ArgumentError && /did you mean fork_wrprotect\?/.test(e.message));
  assert.throws(() => parseSide('x:fork_wrprotect=nope'), ConfigError);
  assert.throws(() => parseSide('1x'), ArgumentError);
  const text = `sides:
  a: { kernel: { pti: 'on' } }
  b: { profile: skylak }
processes:
  - name: p
    ops: [ getpid ]
`;
  assert.throws(
    () => compareSides(compileScenarioText(text, 's.yaml'), table, skylake),
    (e: unknown) => e instanceof ScenarioError && /^s\.yaml:3:17: no profile "skylak"/.test(e.message) && /did you mean skylake\?/.test(e.message),
  );
  assert.throws(
    () => compileScenarioText(text.replace("pti: 'on'", 'fork_wrprotect: nope'), 's.yaml'),
    (e: unknown) => e instanceof ScenarioError && /s\.yaml:2:/.test(e.message),
  );
  assert.throws(() => compileScenarioText(text.replace(/ {2}b: .*\n/, ''), 's.yaml'), (e: unknown) => e instanceof ScenarioError && /sides/.test(e.message));
});

test('every seed scenario declares the sides of its debate', () => {
  for (const f of ['pti-per-process', 'percpu-migrate', 'pkey-signal-lockdown', 'fork-wrprotect-atomic-clear', 'fork-dirty-lost', 'entry-stack-per-task']) {
    const c = compileScenarioFile(`scenarios/${f}.yaml`);
    assert.ok(c.sides.length >= 2, f);
    assert.ok(c.sides.every((s) => Object.keys(s.kernel).length > 0 && s.description), f);
  }
});

test('isolab compare: the text table with ratios, JSON, and exit 2 on a scenario without sides', () => {
  const run = (...args: string[]) => spawnSync(process.execPath, [join(root, 'dist/src/cli/main.js'), ...args], { cwd: root, encoding: 'utf8' });
  const t = run('compare', 'scenarios/fork-wrprotect-atomic-clear.yaml');
  assert.equal(t.status, 0, t.stderr);
  assert.match(t.stdout, /^fork-wrprotect-atomic-clear: 2 sides, costs from src\/cost\/costs\.yaml$/m);
  assert.match(t.stdout, /^ {4}atomic +22 +18 +0\.82$/m);
  const j = run('compare', 'scenarios/fork-wrprotect-atomic-clear.yaml', '--json');
  assert.equal(j.status, 0, j.stderr);
  assert.deepEqual((JSON.parse(j.stdout) as CompareReport).sides.map((s) => s.kernel), [{ fork_wrprotect: 'cmpxchg' }, { fork_wrprotect: 'atomic_clear' }]);
  const none = run('compare', 'scenarios/pcid-switch.yaml');
  assert.equal(none.status, 2);
  assert.match(none.stderr, /pcid-switch declares no sides/);
});
