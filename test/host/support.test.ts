/**
 * What `isolab host` names as not runnable, and where: decided from the scenario and the host's
 * facts alone (no compiler needed), so these run everywhere. The facts are given, not read.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { HostFacts } from '../../src/host/facts.js';
import { opKey, hostSupport } from '../../src/host/support.js';
import { compileScenarioText } from '../../src/scenario/index.js';

/** A host without protection keys or shadow stacks, without PTI, two CPUs. */
const PLAIN: HostFacts = { flags: new Set(['fsgsbase', 'pcid', 'smep', 'smap']), cpus: 2, mmapMinAddr: 65536, pti: false, root: false, unprivilegedUserfaultfd: false };

test('a CPU feature the host lacks: rdpkru and pkey_alloc are skipped with file:line:col, and so is what reads their results', () => {
  const c = compileScenarioText(`name: pk
processes:
  - name: p
    ops:
      - pkey_alloc: { flags: 0, init_val: 0 }
        as: key
      - rdpkru:
        as: before
      - store: { addr: $before, value: 1 }
      - getpid
`, 'pk.yaml');
  const s = hostSupport(c, PLAIN);
  assert.deepEqual(s.blocking, []);
  assert.match(s.skipped.get(opKey('p', 'main', 0))!, /no protection keys \(no pku\/ospke flags\)/);
  assert.match(s.skipped.get(opKey('p', 'main', 1))!, /no protection keys/);
  assert.match(s.skipped.get(opKey('p', 'main', 2))!, /reads \$before, set by rdpkru \(pk\.yaml:7:9\)/);
  assert.equal(s.skipped.has(opKey('p', 'main', 3)), false, 'getpid runs');
  // With protection keys on the host too, both sides have them: nothing is skipped.
  const pku = hostSupport(c, { ...PLAIN, flags: new Set([...PLAIN.flags, 'pku', 'ospke']) });
  assert.equal(pku.skipped.size, 0);
});

test('a kernel option that is not upstream makes the scenario not runnable, at its place; a pti setting that is not the host\'s is a note; execve of a path that is no program of the scenario is skipped', () => {
  const c = compileScenarioText(`name: opts
kernel:
  debug_vm: true
  fork_child_pte: installed
  pti: 'on'
processes:
  - name: p
    ops:
      - execve: { filename: /bin/x }
`, 'opts.yaml');
  const s = hostSupport(c, PLAIN);
  const items = s.blocking.map((b) => `${b.where} ${b.what}`);
  assert.deepEqual(items, ['opts.yaml:4:3 kernel.fork_child_pte: installed']);
  assert.match([...s.skipped.values()].join('\n'), /execve of a path that is not one of the scenario's programs/);
  // PTI is not visible to the program (the Meltdown probe, its one witness, is skipped on its own): noted, not blocking.
  const note = s.notes.find((n) => n.what === 'kernel.pti: on');
  assert.equal(note?.where, 'opts.yaml:5:3');
  assert.match(note!.reason, /isolab's kernel runs with page-table isolation on, the host's off: it changes the kernel's page tables and entry, not what the program sees/);
  // debug_vm only adds checks: not named.
  assert.equal(s.blocking.some((b) => b.what.includes('debug_vm')), false);
});

test("model-only operations and isolab's file system are skipped; a race schedule and more CPUs than the host has are noted", () => {
  const c = compileScenarioText(`name: misc
machine:
  cpus: 4
schedule:
  steps: [0, 1]
processes:
  - name: p
    ops:
      - transient_load: 0xffff888000000000
      - open: { filename: /tmp/data, flags: O_RDONLY }
        as: fd
      - open: { filename: /proc/self/mem, flags: O_RDWR }
`, 'misc.yaml');
  const s = hostSupport(c, PLAIN);
  assert.match(s.skipped.get(opKey('p', 'main', 0))!, /model-only/);
  assert.match(s.skipped.get(opKey('p', 'main', 1))!, /file system is not the host's/);
  assert.equal(s.skipped.has(opKey('p', 'main', 2)), false, '/proc/self/mem is the program\'s own');
  assert.deepEqual(s.notes.map((n) => n.what).sort(), ['machine.cpus: 4', 'schedule.steps']);
  assert.equal(s.notes.find((n) => n.what === 'machine.cpus: 4')!.where, 'misc.yaml:3:3');
});

test('nopku on a host without protection keys is both sides alike; a fixed mapping below one side\'s mmap_min_addr is named', () => {
  const c = compileScenarioText(`name: low
kernel:
  nopku: true
processes:
  - name: p
    ops:
      - mmap: { addr: 0x2000, len: PAGE_SIZE, prot: PROT_READ, flags: MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, fd: -1 }
      - pkey_alloc: { flags: 0, init_val: 0 }
`, 'low.yaml');
  const s = hostSupport(c, { ...PLAIN, mmapMinAddr: 4096 });
  assert.deepEqual(s.blocking.map((b) => `${b.where} ${b.reason}`), ["low.yaml:7:9 an address below vm.mmap_min_addr on one side only: isolab's is 65536, the host's 4096"]);
  assert.equal(s.skipped.size, 0, 'pkey_alloc runs: neither side has protection keys');
  assert.deepEqual(hostSupport(c, PLAIN).blocking, [], 'the same mmap_min_addr on both sides');
});
