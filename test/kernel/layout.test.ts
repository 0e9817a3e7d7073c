/**
 * The kernel layout of each paging mode against Documentation/arch/x86/x86_64/mm.rst (the
 * values below are copied from its two tables), and docs/kernel.md's layout table against the
 * model's.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { kernel_layout, kindex, type KernelLayout } from '../../src/kernel/layout.js';

/** mm.rst: "LDT remap for PTI", "direct mapping of all physical memory", "vmalloc/ioremap space". */
const MM_RST = {
  4: { ldt: 0xffff880000000000n, direct: 0xffff888000000000n, vmalloc: 0xffffc90000000000n, vmallocSize: 32n << 40n },
  5: { ldt: 0xff10000000000000n, direct: 0xff11000000000000n, vmalloc: 0xffa0000000000000n, vmallocSize: 12800n << 40n },
} as const;

for (const levels of [4, 5] as const) {
  test(`${levels}-level layout: the mm.rst bases, each region in a PGD slot of its own`, () => {
    const l = kernel_layout(levels);
    const want = MM_RST[levels];
    assert.equal(l.ldt_base_addr, want.ldt);
    assert.equal(l.page_offset_base, want.direct);
    assert.equal(l.vmalloc_base, want.vmalloc);
    assert.equal(l.vmalloc_size, want.vmallocSize);
    assert.equal(l.pgdir_shift, levels === 5 ? 48 : 39);
    const slots = [l.ldt_base_addr, l.page_offset_base, l.vmalloc_base, 0xfffffe0000000000n].map((va) => kindex(va, levels));
    assert.equal(new Set(slots).size, slots.length, `PGD slots ${slots.join(', ')}`);
  });
}

test('docs/kernel.md: the layout table is the model\'s', () => {
  const doc = readFileSync(new URL('../../../docs/kernel.md', import.meta.url), 'utf8');
  const rows = new Map<string, [bigint, bigint]>();
  for (const m of doc.matchAll(/^\| [^|]*\(`(\w+)`\) \| (0x[0-9a-f]+) \| (0x[0-9a-f]+) \|$/gm)) rows.set(m[1], [BigInt(m[2]), BigInt(m[3])]);
  const fields: (keyof KernelLayout)[] = ['ldt_base_addr', 'page_offset_base', 'vmalloc_base'];
  assert.deepEqual([...rows.keys()].sort(), [...fields].sort());
  for (const f of fields) assert.deepEqual(rows.get(f), [kernel_layout(4)[f], kernel_layout(5)[f]], f);
});
