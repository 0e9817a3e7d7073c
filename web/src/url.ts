/**
 * The view as a link: the URL hash holds the cursor and the selection, as
 * `#step=12&cpu=1&mm=2&open=PFN:INDEX,...&shut=PFN:INDEX,...` (`row=` instead of `step=` when
 * comparing). Keys left out take their defaults. See web/README.md.
 */
import { useEffect, useRef } from 'preact/hooks';

export interface Link {
  /** The step of a recording, or the row of a comparison; null: the default. */
  step: number | null;
  row: number | null;
  /** The selected CPU and mm. */
  cpu: number | null;
  mm: number | null;
  /** Kernel-half table entries expanded, and user-half ones collapsed (tree.ts Expansion). */
  open: ReadonlySet<string>;
  shut: ReadonlySet<string>;
}

/** The link a hash (with or without its '#') holds; unknown keys and malformed values are ignored. */
export function parseHash(hash: string): Link {
  const open = new Set<string>();
  const shut = new Set<string>();
  const link: Link = { step: null, row: null, cpu: null, mm: null, open, shut };
  for (const part of hash.replace(/^#/, '').split('&')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const key = part.slice(0, eq);
    const value = part.slice(eq + 1);
    if (key === 'step' || key === 'row' || key === 'cpu' || key === 'mm') {
      if (/^\d+$/.test(value)) link[key] = Number(value);
    } else if (key === 'open' || key === 'shut') {
      for (const pt of value.split(',')) if (/^\d+:\d+$/.test(pt)) (key === 'open' ? open : shut).add(pt);
    }
  }
  return link;
}

/** The hash of `link`, '#' included, or '' when every key has its default. */
export function formatHash(link: Link): string {
  const parts: string[] = [];
  for (const key of ['step', 'row', 'cpu', 'mm'] as const) if (link[key] !== null) parts.push(`${key}=${link[key]}`);
  for (const key of ['open', 'shut'] as const) if (link[key].size > 0) parts.push(`${key}=${[...link[key]].join(',')}`);
  return parts.length > 0 ? '#' + parts.join('&') : '';
}

/** How long the link must stay the same before it goes into the URL, in ms. */
const HASH_DELAY = 200;

/**
 * Keeps the URL hash showing `link`, and calls `restore` when the user changes the hash. The URL
 * follows the view once it rests for HASH_DELAY (updating the URL costs the browser more than a
 * step costs the page), with replaceState: moving the cursor adds no history entry.
 */
export function useHash(link: Link, restore: (link: Link) => void): void {
  const hash = formatHash(link);
  useEffect(() => {
    const timer = setTimeout(() => {
      if (hash !== location.hash) history.replaceState(history.state, '', hash || location.pathname + location.search);
    }, HASH_DELAY);
    return () => clearTimeout(timer);
  }, [hash]);
  const latest = useRef(restore);
  latest.current = restore;
  useEffect(() => {
    const onChange = (): void => latest.current(parseHash(location.hash));
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
}
