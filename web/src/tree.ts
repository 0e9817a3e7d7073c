/**
 * The page-table tree under a root frame, flattened into the rows the page shows: every entry
 * of a table, followed by its table's rows when it is an expanded table entry. Each row knows
 * the linear addresses it covers, computed from the indices down its path.
 */
import { decodeEntry, type Entry } from './entry.js';

/** Which table entries are expanded: the kernel half is collapsed unless in `open`, the rest expanded unless in `shut`. */
export interface Expansion {
  open: ReadonlySet<string>;
  shut: ReadonlySet<string>;
}

export interface EntryRow {
  type: 'entry';
  /** Unique within the tree: the indices down the path, joined by '/'. */
  path: string;
  /** `PFN:INDEX`: the table frame and the index of the entry in it. */
  pt: string;
  index: number;
  /** 1 = PTE up to `levels` = the root. */
  level: number;
  /** Its distance from the root table (0 for the root's entries). */
  depth: number;
  /** The first and last linear address it covers, canonical. */
  start: bigint;
  end: bigint;
  /** Whether it covers the kernel half (root index 256 and up). */
  kernel: boolean;
  value: string;
  entry: Entry;
  /** Present and not a leaf: it points to a table. */
  expandable: boolean;
  expanded: boolean;
}

/** The place of an expanded entry whose table has no entry at all. */
export interface EmptyRow {
  type: 'empty';
  path: string;
  depth: number;
}

export type TreeRow = EntryRow | EmptyRow;

const ALL_ONES = (1n << 64n) - 1n;

/** Whether table entry `pt` is expanded under `ex`. */
function isExpanded(ex: Expansion, pt: string, kernel: boolean): boolean {
  return kernel ? ex.open.has(pt) : !ex.shut.has(pt);
}

/** The visible rows of the `levels`-level tree rooted at frame `root`, with tables from `tables`. */
export function visibleRows(tables: Map<number, Map<number, string>>, root: number, levels: number, ex: Expansion): TreeRow[] {
  const rows: TreeRow[] = [];
  const addressBits = BigInt(12 + 9 * levels);
  const upper = ALL_ONES ^ ((1n << addressBits) - 1n);

  /** Adds the rows of table `pfn` at `level`, whose entries' addresses start at `base`. */
  function walk(pfn: number, level: number, base: bigint, kernel: boolean, path: string): void {
    const table = tables.get(pfn);
    const depth = levels - level;
    if (!table || table.size === 0) {
      rows.push({ type: 'empty', path: `${path}/-`, depth });
      return;
    }
    const shift = BigInt(12 + 9 * (level - 1));
    for (const index of [...table.keys()].sort((a, b) => a - b)) {
      const value = table.get(index)!;
      const entry = decodeEntry(value, level);
      const inKernel = level === levels ? index >= 256 : kernel;
      let start = base | (BigInt(index) << shift);
      if (level === levels && inKernel) start |= upper;
      const pt = `${pfn}:${index}`;
      const expandable = entry.present && !entry.leaf && level > 1;
      const expanded = expandable && isExpanded(ex, pt, inKernel);
      const rowPath = `${path}/${index}`;
      rows.push({
        type: 'entry', path: rowPath, pt, index, level, depth,
        start, end: start + (1n << shift) - 1n, kernel: inKernel, value, entry, expandable, expanded,
      });
      if (expanded) walk(entry.frame!, level - 1, start, inKernel, rowPath);
    }
  }

  walk(root, levels, 0n, false, '');
  return rows;
}
