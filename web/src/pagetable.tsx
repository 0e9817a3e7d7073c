/**
 * A page-table tree from its root (PGD) frame: a row per present or non-zero entry with the
 * linear range it covers, its raw value, the frame it points to and its named bits; the bits
 * the current step changed marked. Table entries expand and collapse on click. The row list is
 * rebuilt only when the page tables or the expansion change; rows re-render only when theirs do.
 */
import { memo } from 'preact/compat';
import { useMemo } from 'preact/hooks';
import type { BitName } from '../../src/see/types.js';
import { bitsOf, bitValue, decodeEntry, ZERO_ENTRY } from './entry.js';
import type { StateWalker } from './state.js';
import { visibleRows, type EntryRow, type Expansion } from './tree.js';

interface Props {
  walker: StateWalker;
  /** The root frame and what it is ("kernel copy", "user copy"). */
  root: number;
  title: string;
  testid: string;
  levels: number;
  bits: readonly BitName[];
  expansion: Expansion;
  onToggle(pt: string, kernel: boolean): void;
}

/** The tree under frame `root` at the walker's step. */
export function PageTable({ walker, root, title, testid, levels, bits, expansion, onToggle }: Props) {
  const version = walker.tablesVersion;
  const rows = useMemo(() => visibleRows(walker.tables, root, levels, expansion), [walker, version, root, levels, expansion]);
  return (
    <div class="pt" data-testid={testid}>
      <div class="pt-title">
        {title} <span class="dim">· root frame {root}</span>
      </div>
      <div class="scroll">
        <table class="pt-table">
          <thead>
            <tr>
              <th>entry</th><th>linear range</th><th>value</th><th>frame</th><th>bits</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) =>
              r.type === 'empty' ? (
                <tr key={r.path} class="empty">
                  <td colSpan={5} style={{ paddingLeft: indent(r.depth) }}>no entries</td>
                </tr>
              ) : (
                <PtRow key={r.path} row={r} levels={levels} bits={bits} before={before(walker, r.pt)} onToggle={onToggle} />
              ),
            )}
          </tbody>
        </table>
      </div>
    </div>
  );
}

/** Entry `pt`'s value before the current step, when the step changed it; else null. */
function before(walker: StateWalker, pt: string): string | null {
  const key = `pt:${pt}`;
  return walker.changed.has(key) ? ((walker.changed.get(key) as string | undefined) ?? ZERO_ENTRY) : null;
}

/** The left padding of a row `depth` tables below the root. */
function indent(depth: number): string {
  return `${0.4 + depth * 1.1}em`;
}

/** The tables' names, 1 = PTE up. */
const LEVEL_NAMES = ['', 'PTE', 'PMD', 'PUD', 'P4D', 'PGD'];

/** The name of a level-`level` table in a `levels`-level tree. */
function levelName(level: number, levels: number): string {
  return level === levels ? 'PGD' : LEVEL_NAMES[level];
}

interface RowProps {
  row: EntryRow;
  levels: number;
  bits: readonly BitName[];
  /** The value before the current step when the step changed it, else null. */
  before: string | null;
  onToggle(pt: string, kernel: boolean): void;
}

/** One entry; re-rendered only when its place, value, expansion or change mark change. */
const PtRow = memo(function PtRow({ row: r, levels, bits, before, onToggle }: RowProps) {
  const old = before === null ? null : decodeEntry(before, r.level);
  const cls = ['pt-row', r.expandable ? 'table' : '', r.kernel ? 'kernel' : '', old ? 'changed' : ''].filter(Boolean).join(' ');
  return (
    <tr
      class={cls}
      data-pt={r.pt}
      data-level={r.level}
      data-va={`0x${hex16(r.start)}`}
      data-end={`0x${hex16(r.end)}`}
      data-expanded={r.expandable ? String(r.expanded) : undefined}
      onClick={r.expandable ? () => onToggle(r.pt, r.kernel) : undefined}
    >
      <td class="pt-name" style={{ paddingLeft: indent(r.depth) }}>
        <span class="twisty">{r.expandable ? (r.expanded ? '▾' : '▸') : ''}</span>
        {`${levelName(r.level, levels)}[${r.index}]`}
      </td>
      <td class="pt-range">{`${hex16(r.start)}–${hex16(r.end)}`}</td>
      <td class="pt-value">{r.value}</td>
      <td class="pt-frame">{r.entry.frame === null ? '' : `→ ${r.entry.frame}`}</td>
      <td class="pt-bits">
        {bitsOf(bits, r.entry).map((b) => {
          const v = bitValue(r.entry, b);
          const changed = old !== null && bitValue(old, b) !== v;
          return (
            <span key={b.name} data-bit={b.name} class={`bit ${v ? 'on' : 'off'}${changed ? ' changed' : ''}`} title={`bit ${b.bit}: ${b.doc}`}>
              {b.width > 1 ? `${b.name}=${v}` : b.name}
            </span>
          );
        })}
      </td>
    </tr>
  );
}, samePtRow);

/** Whether two rows' props draw the same: the path fixes the range, the value (at its level) the rest. */
function samePtRow(a: RowProps, b: RowProps): boolean {
  return (
    a.row.path === b.row.path && a.row.pt === b.row.pt && a.row.value === b.row.value && a.row.expanded === b.row.expanded && a.row.level === b.row.level &&
    a.before === b.before && a.levels === b.levels && a.bits === b.bits && a.onToggle === b.onToggle
  );
}

/** 16 hex digits. */
function hex16(v: bigint): string {
  return v.toString(16).padStart(16, '0');
}
