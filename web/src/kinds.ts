/**
 * The timeline's event kinds (SeeEvent.kind): their order (the top stripe first), colours, and
 * the ones `n` / `p` stop at. A kind the page does not know counts as 'other'.
 */

export const KINDS = ['fault', 'ipi', 'flush', 'syscall', 'cr3', 'tlb', 'switch', 'entry', 'fork', 'exec', 'exit', 'signal', 'op', 'other'] as const;
export type Kind = (typeof KINDS)[number];

export const KIND_COLORS: Record<Kind, string> = {
  fault: '#dc2626',
  ipi: '#9333ea',
  flush: '#ea580c',
  syscall: '#2563eb',
  cr3: '#0d9488',
  tlb: '#ca8a04',
  switch: '#0891b2',
  entry: '#64748b',
  fork: '#16a34a',
  exec: '#65a30d',
  exit: '#78716c',
  signal: '#db2777',
  op: '#94a3b8',
  other: '#cbd5e1',
};

/** The kinds whose steps `n` and `p` stop at. */
export const NOTABLE: readonly Kind[] = ['fault', 'syscall', 'ipi', 'flush'];

const INDEX = new Map<string, number>(KINDS.map((k, i) => [k, i]));

/** The index in KINDS of kind `kind`. */
export function kindIndex(kind: string): number {
  return INDEX.get(kind) ?? KINDS.length - 1;
}
