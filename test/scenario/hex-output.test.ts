/**
 * Addresses, registers and si_addr read in hex in a run's timeline and verdicts, whatever their
 * size; a load's data stays decimal below 0x10000 (docs/scenario-format.md, "The timeline
 * shows the arguments that were written").
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileScenarioText } from '../../src/scenario/index.js';
import { runScenario } from '../../src/scenario/run.js';

test('a numeric address, an address touched, a small register value and an expected si_addr are shown in hex', () => {
  const r = runScenario(
    compileScenarioText(
      `name: hex
processes:
  - name: p
    ops:
      - mmap: { addr: 0x10000000, len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED }
      - store: { addr: 268435456, value: 7 }
      - load: 268435456
        expect: 7
      - wrpkru: 0xc
      - rdpkru
      - load: 4096
        expect: { signal: SIGSEGV, si_code: SEGV_MAPERR, si_addr: 8192 }
`,
      'hex.yaml',
    ),
  );
  const text = r.timeline.map((e) => e.text);
  // The operand written as 268435456 and the address the access touched.
  assert.ok(text.some((t) => t.startsWith('store [0x10000000] = 7 @0x10000000')), text.join('\n'));
  assert.ok(text.some((t) => t.startsWith('load [0x10000000] @0x10000000 → 7')), 'the data stays decimal');
  // RDPKRU's value 0xc is a register: hex even below 0x10000.
  assert.ok(text.some((t) => t.startsWith('rdpkru → 0xc')), text.join('\n'));
  const bad = r.verdicts.find((v) => v.status === 'failed');
  assert.ok(bad, 'the si_addr expectation fails (the fault is at 0x1000)');
  assert.match(bad.actual, /expected si_addr 0x2000/);
  assert.match(bad.actual, /si_addr 0x1000/);
});
