/**
 * The user's selection as component state: the highlighted CPU and mm and the expanded
 * page-table entries, started from a link and restorable from one.
 */
import { useMemo, useState } from 'preact/hooks';
import type { Expansion } from './tree.js';
import type { Link } from './url.js';

/** What the user picked: the highlighted CPU and mm, and the expanded table entries. */
export interface Selection {
  cpu: number | null;
  mm: number | null;
  expansion: Expansion;
}

/** What changes the selection: selecting a CPU or mm, expanding or collapsing table entry `pt`. */
export interface SelectionActions {
  selectCpu(cpu: number): void;
  selectMm(mm: number): void;
  toggle(pt: string, kernel: boolean): void;
}

/** The selection, started from `link`; `restore` sets it from another link. */
export function useSelection(link: Link): { selection: Selection; actions: SelectionActions; restore(link: Link): void } {
  const [cpu, setCpu] = useState(link.cpu);
  const [mm, setMm] = useState(link.mm);
  const [expansion, setExpansion] = useState({ open: link.open, shut: link.shut });
  const actions = useMemo<SelectionActions>(() => ({
    selectCpu: setCpu,
    selectMm: setMm,
    // A kernel-half entry is collapsed unless opened, any other expanded unless shut.
    toggle: (pt, kernel) =>
      setExpansion((ex) => (kernel ? { ...ex, open: toggled(ex.open, pt) } : { ...ex, shut: toggled(ex.shut, pt) })),
  }), []);
  const restore = (l: Link): void => {
    setCpu(l.cpu);
    setMm(l.mm);
    setExpansion({ open: l.open, shut: l.shut });
  };
  const selection = useMemo(() => ({ cpu, mm, expansion }), [cpu, mm, expansion]);
  return { selection, actions, restore };
}

/** `set` with `item` added, or removed when it was in. */
function toggled(set: ReadonlySet<string>, item: string): Set<string> {
  const next = new Set(set);
  if (!next.delete(item)) next.add(item);
  return next;
}
