/**
 * A CPU's panel: its registers as the processor holds them, then its live TLB entries, with the
 * values the current step changed marked and stale entries (more rights than the page tables
 * now grant) listed first, highlighted, with their reason.
 */
import { memo } from 'preact/compat';
import { useState } from 'preact/hooks';
import type { CpuView, TlbView } from '../../src/see/types.js';
import { sameFields } from './same.js';
import type { StateWalker } from './state.js';

interface Props {
  cpu: CpuView;
  walker: StateWalker;
  selected: boolean;
  onSelect(cpu: number): void;
}

/** A register shown in the panel: its data-field name, label and value in words. */
const FIELDS: { field: keyof CpuView & string; label: string; show(c: CpuView): string }[] = [
  { field: 'cpl', label: 'CPL', show: (c) => String(c.cpl) },
  { field: 'cr3', label: 'CR3', show: (c) => c.cr3 },
  { field: 'pcid', label: 'PCID', show: (c) => String(c.pcid) },
  { field: 'copy', label: 'copy', show: (c) => c.copy ?? '—' },
  { field: 'mm', label: 'mm', show: (c) => (c.mm === null ? '—' : String(c.mm)) },
  { field: 'pkru', label: 'PKRU', show: (c) => c.pkru },
  { field: 'current', label: 'current', show: (c) => String(c.current) },
  { field: 'mode', label: 'mode', show: (c) => c.mode },
  { field: 'ipis', label: 'IPIs', show: (c) => String(c.ipis) },
  { field: 'lazy', label: 'lazy TLB', show: (c) => (c.lazy ? 'yes' : 'no') },
];

/** CPU `cpu` at the walker's step; clicking its title selects it. */
export function CpuPanel({ cpu, walker, selected, onSelect }: Props) {
  const key = `cpu:${cpu.cpu}`;
  const before = walker.changed.has(key) ? (walker.changed.get(key) as CpuView | undefined) : cpu;
  const task = walker.tasks.get(cpu.current);
  const entries = [...(walker.tlbs.get(cpu.cpu)?.values() ?? [])].sort(tlbOrder);
  return (
    <section class={`panel cpu${selected ? ' selected' : ''}`} data-testid={`cpu-${cpu.cpu}`}>
      <h3 onClick={() => onSelect(cpu.cpu)} title="select this CPU">
        CPU {cpu.cpu}
        <span class="dim"> · PGD frame {cpu.pgd}</span>
      </h3>
      <dl class="regs">
        {FIELDS.map(({ field, label, show }) => (
          <div key={field}>
            <dt>{label}</dt>
            <dd>
              <span data-field={field} class={before?.[field] !== cpu[field] ? 'changed' : undefined}>{show(cpu)}</span>
              {field === 'current' && <span class="dim"> {cpu.current === 0 ? 'idle' : (task?.name ?? '')}</span>}
            </dd>
          </div>
        ))}
      </dl>
      <TlbTable cpu={cpu.cpu} entries={entries} walker={walker} />
    </section>
  );
}

/** Rows are this tall (see.css), so the scroll position says which rows are in view. */
const ROW_PX = 18;
/** Rows drawn in full from the first one in view (a screenful of the box); the others are drawn empty. */
const FULL_ROWS = 12;
/** Rows drawn in full above the first one in view. */
const ABOVE = 1;

/**
 * The live TLB entries of CPU `cpu`, stale ones first, then by slot. Every entry has its row and
 * its data attributes; only the rows near the scroll position get their cells, so a TLB of a
 * thousand entries costs what a screenful does.
 */
function TlbTable({ cpu, entries, walker }: { cpu: number; entries: TlbView[]; walker: StateWalker }) {
  const [first, setFirst] = useState(0);
  const onScroll = (e: Event): void => setFirst(Math.max(0, Math.floor((e.currentTarget as HTMLElement).scrollTop / ROW_PX) - ABOVE));
  return (
    <div class="scroll tlb-scroll" onScroll={onScroll}>
      <table class="tlb" data-testid={`tlb-${cpu}`}>
        <caption>TLB · {entries.length === 1 ? '1 entry' : `${entries.length} entries`}</caption>
        <thead>
          <tr>
            <th>slot</th><th>va</th><th>size</th><th>pfn</th><th>pcid</th>
            <th>G</th><th>W</th><th>U</th><th>NX</th><th>D</th><th>pkey</th><th>stale</th>
          </tr>
        </thead>
        <tbody>
          {entries.map((e, i) => (
            <TlbRow key={e.slot} entry={e} changed={walker.changed.has(`tlb:${cpu}:${e.slot}`)} full={i >= first && i < first + FULL_ROWS} />
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** Stale entries first, then by slot. */
function tlbOrder(a: TlbView, b: TlbView): number {
  return Number(b.stale !== null) - Number(a.stale !== null) || a.slot - b.slot;
}

/** Page sizes by their shift. */
const SIZES: Record<number, string> = { 12: '4K', 21: '2M', 30: '1G' };

interface RowProps {
  entry: TlbView;
  /** The current step changed it. */
  changed: boolean;
  /** With its cells (else an empty row of the same height: its data attributes only). */
  full: boolean;
}

/** One TLB entry; re-rendered only when a field, its mark or its fullness changes. */
const TlbRow = memo(
  function TlbRow({ entry: e, changed, full }: RowProps) {
    const va = e.va.startsWith('0x') ? e.va : `0x${e.va}`;
    const cls = [e.stale ? 'stale' : '', changed ? 'changed' : ''].filter(Boolean).join(' ');
    return (
      <tr data-slot={e.slot} data-va={va} data-pfn={e.pfn} data-stale={String(e.stale !== null)} class={cls || undefined} title={e.stale ?? undefined}>
        {full ? (
          <>
            <td>{e.slot}</td>
            <td>{va}</td>
            <td>{SIZES[e.pageShift] ?? `2^${e.pageShift}`}</td>
            <td>{e.pfn}</td>
            <td>{e.pcid}</td>
            {flag(e.global)}
            {flag(e.write)}
            {flag(e.user)}
            {flag(e.nx)}
            {flag(e.dirty)}
            <td>{e.pkey}</td>
            <td class="reason">{e.stale ?? ''}</td>
          </>
        ) : null}
      </tr>
    );
  },
  (a, b) => a.changed === b.changed && a.full === b.full && sameFields(a.entry, b.entry),
);

/** A one-bit cell: 1 or a faint 0. */
function flag(on: boolean) {
  return <td class={on ? 'flag on' : 'flag off'}>{on ? '1' : '0'}</td>;
}
