/**
 * An address space's panel: its VMAs, then its page tables from the PGD; under PTI the kernel
 * copy and the user copy side by side. An entry's clear bits are hidden (but for the ones the
 * step cleared) unless the panel's "clear bits" button is on.
 */
import { useState } from 'preact/hooks';
import type { BitName, MmView } from '../../src/see/types.js';
import { PageTable } from './pagetable.js';
import type { StateWalker } from './state.js';
import type { Expansion } from './tree.js';

interface Props {
  mm: MmView;
  walker: StateWalker;
  levels: number;
  bits: readonly BitName[];
  expansion: Expansion;
  onToggle(pt: string, kernel: boolean): void;
  selected: boolean;
  onSelect(mm: number): void;
}

/** Address space `mm` at the walker's step; clicking its title selects it. */
export function MmPanel({ mm, walker, levels, bits, expansion, onToggle, selected, onSelect }: Props) {
  const table = { walker, levels, bits, expansion, onToggle };
  const [clearBits, setClearBits] = useState(false);
  return (
    <section class={`panel mm${selected ? ' selected' : ''}`} data-testid={`mm-${mm.id}`}>
      <div class="panel-head">
        <h3 onClick={() => onSelect(mm.id)} title="select this mm">
          mm {mm.id}
          <span class="dim"> · tasks {mm.tids.join(', ') || '—'} · tlb_gen {mm.tlbGen}</span>
        </h3>
        <button type="button" data-testid={`clear-bits-${mm.id}`} aria-pressed={clearBits} onClick={() => setClearBits(!clearBits)}>
          {clearBits ? 'hide clear bits' : 'show clear bits'}
        </button>
      </div>
      <table class="vmas" data-testid={`vmas-${mm.id}`}>
        <thead>
          <tr>
            <th>start</th><th>end</th><th>perms</th><th>name</th><th>pkey</th>
          </tr>
        </thead>
        <tbody>
          {mm.vmas.map((v) => (
            <tr key={v.start} data-vma={v.start}>
              <td>{v.start}</td>
              <td>{v.end}</td>
              <td>{v.perms}</td>
              <td>
                {v.name}
                {v.shadowStack && <span class="dim"> (shadow stack)</span>}
              </td>
              <td>{v.pkey}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <div class={`pt-copies${mm.userPgd === null ? '' : ' two'}${clearBits ? ' show-clear' : ''}`}>
        <PageTable {...table} root={mm.pgd} title={mm.userPgd === null ? 'page tables' : 'kernel copy'} testid={`pt-${mm.id}-kernel`} />
        {mm.userPgd !== null && <PageTable {...table} root={mm.userPgd} title="user copy (PTI)" testid={`pt-${mm.id}-user`} />}
      </div>
    </section>
  );
}
