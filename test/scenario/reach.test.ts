/**
 * `isolab reach` and System.reach: the kernel ranges a Meltdown load from user mode reaches.
 * Expected values follow spec §3.3 (what the PTI user copy maps) and the CPU model's meltdown
 * rule: everything mapped without PTI, the PTI-shared set with it, nothing without the bug.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { System } from '../../src/system.js';
import { CPU_ENTRY_AREA_BASE, LINUX_BANNER } from '../../src/kernel/layout.js';

/** The direct map's base on 4-level paging (Documentation/arch/x86/x86_64/mm.rst). */
const PAGE_OFFSET = 0xffff888000000000n;

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** A process that stays alive (sched_yield in a loop is not needed: reach is read before run). */
function reachOf(kernel: Record<string, unknown>, meltdown: boolean): ReturnType<System['reach']> {
  const sys = new System({ cpus: 1, cpu: { meltdown }, kernel: { timeslice: 0, ...kernel } });
  const pid = sys.spawn({ main: [{ op: 'syscall', name: 'getpid' }] });
  return sys.reach(pid);
}

const covers = (r: ReturnType<System['reach']>, va: bigint): boolean => r.ranges.some((x) => va >= x.start && va < x.end);

test('reach: with PTI off on a meltdown CPU the whole direct map and the kernel image are readable', () => {
  const r = reachOf({ pti: 'off' }, true);
  assert.equal(r.pageTable, 'kernel copy');
  assert.ok(covers(r, LINUX_BANNER), 'linux_banner');
  assert.ok(covers(r, PAGE_OFFSET), 'the direct map');
  assert.ok(r.bytes >= 64 * 2 ** 20, `all of RAM is mapped: ${r.bytes}`);
});

test('reach: with PTI on, only the PTI-shared set; no banner, no direct map beyond cpu_tss_rw', () => {
  const r = reachOf({ pti: 'on' }, true);
  assert.equal(r.pageTable, 'user copy');
  assert.ok(!covers(r, LINUX_BANNER));
  assert.ok(!covers(r, PAGE_OFFSET));
  assert.ok(covers(r, CPU_ENTRY_AREA_BASE), 'the read-only IDT page of the cpu_entry_area');
  const regions = new Set(r.ranges.map((x) => x.region.replace(/ \(cpu \d+\)$/, '')));
  for (const reg of regions) assert.ok(['cpu_entry_area', 'espfix', 'entry text', 'kernel text', 'cpu_tss_rw'].includes(reg), reg);
  assert.ok(r.bytes < 1 << 20, `a few pages, not the kernel: ${r.bytes}`);
});

test('reach: without the meltdown bug nothing of the kernel is readable, PTI or not', () => {
  for (const pti of ['on', 'off']) {
    const r = reachOf({ pti }, false);
    assert.equal(r.meltdown, false);
    assert.deepEqual(r.ranges, []);
    assert.equal(r.bytes, 0);
  }
});

test('isolab reach: the per-process PTI scenario shows the server on the kernel copy and its neighbour on the user copy', () => {
  const out = execFileSync(process.execPath, [CLI, 'reach', 'scenarios/pti-per-process.yaml', '--json'], { cwd: ROOT, encoding: 'utf8' });
  const rows = JSON.parse(out) as { name: string | null; page_table: string; bytes: number; ranges: { region: string }[] }[];
  const server = rows.find((x) => x.name === 'server');
  const neighbour = rows.find((x) => x.name === 'neighbour');
  assert.ok(server && neighbour, JSON.stringify(rows.map((x) => x.name)));
  assert.equal(server.page_table, 'kernel copy');
  assert.equal(neighbour.page_table, 'user copy');
  assert.ok(server.ranges.some((x) => x.region === 'direct map'));
  assert.ok(!neighbour.ranges.some((x) => x.region === 'direct map' || x.region === 'kernel data'));
  assert.ok(server.bytes > 100 * neighbour.bytes);
});
