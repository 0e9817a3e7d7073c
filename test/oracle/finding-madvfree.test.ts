/**
 * The MADV_FREE finding's native reproducer (native/madvfree.c, docs/findings.md) on this
 * machine's kernel, with a small budget. What is asserted holds on any kernel: the two controls
 * lose nothing (without MADV_FREE a written anonymous page is never discarded; a child that
 * stores its values back dirties its own PTEs, so reclaim keeps them), every run completes its
 * rounds, and the writer does cross fork inside the region (else the runs would show nothing).
 * Whether the race itself loses data on this kernel is reported (a diagnostic), not asserted:
 * it depends on the kernel and on timing. `npm run finding:madvfree -- --seconds N` runs longer.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildMadvfree, oracleUnavailableReason, runMadvfree, type MadvfreeResult } from '../../native/build.js';

const SECONDS = Number(process.env.ISOLAB_FINDING_SECONDS ?? 4);

/** Runs `mode` for SECONDS and checks what holds on every kernel. */
async function run(t: { skip(m: string): void; diagnostic(m: string): void }, mode: MadvfreeResult['mode'], parent: MadvfreeResult['parent'] = 'cow'): Promise<MadvfreeResult | null> {
  const why = oracleUnavailableReason();
  if (why) {
    t.skip(`no native run: ${why}`);
    return null;
  }
  const binary = await buildMadvfree();
  assert.ok(binary, 'the reproducer must build when a C compiler is present');
  const r = await runMadvfree(binary, { seconds: SECONDS, mode, parent });
  t.diagnostic(JSON.stringify(r));
  assert.equal(r.mode, mode);
  assert.ok(r.pageout, 'MADV_PAGEOUT (Linux 5.4) is available');
  assert.ok(r.rounds > 0, 'the run forked at least once');
  if (r.cpus[1] >= 0) assert.ok(r.crossings > 0, `the writer crossed fork inside the region in some round (${r.rounds} rounds)`);
  return r;
}

test('control: without MADV_FREE, no page a forked child read is lost to reclaim', async (t) => {
  const r = await run(t, 'nofree');
  if (r) assert.equal(r.lostPages, 0, `${r.lostPages} pages lost without MADV_FREE`);
});

test('control: a child that stores back what it read loses nothing to reclaim', async (t) => {
  const r = await run(t, 'rewrite');
  if (r) assert.equal(r.lostPages, 0, `${r.lostPages} pages lost although the child rewrote them`);
});

for (const parent of ['cow', 'unmap'] as const) {
  test(`the race (MADV_FREE, a writer thread, fork; the parent ${parent === 'cow' ? 'breaks COW' : 'unmaps'}): the stress run completes, and whether this kernel loses data is reported`, async (t) => {
    const r = await run(t, 'free', parent);
    if (!r) return;
    t.diagnostic(r.lostPages > 0
      ? `this kernel lost ${r.lostPages} pages in ${r.lostRounds} of ${r.rounds} forks (${r.windowHits} window hits seen in smaps)`
      : `no loss in ${r.rounds} forks (${r.windowHits} window hits seen in smaps): the window was ${r.windowHits > 0 ? 'hit, and the kernel kept the data' : 'not hit in this budget'}`);
  });
}
