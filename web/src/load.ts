/**
 * Where the page's data comes from: the `<script type="application/json" id="isolab-data">`
 * element holds the JSON, or is empty with `data-src` naming a URL (relative to the page) to
 * fetch it from. The data is a Recording or a Comparison; any other format is refused.
 */
import { COMPARISON_FORMAT, RECORDING_FORMAT, type Comparison, type Recording } from '../../src/see/types.js';
import { fromWire } from '../../src/see/wire.js';

export { COMPARISON_FORMAT };

/** The element's id. */
const DATA_ID = 'isolab-data';

/** The recording or comparison the page shows; rejects with a message for the page when there is none to show. */
export async function loadData(): Promise<Recording | Comparison> {
  const el = document.getElementById(DATA_ID);
  if (!el) throw new Error(`the page has no <script id="${DATA_ID}"> element`);
  const src = el.getAttribute('data-src');
  const text = src ? await fetchText(src) : (el.textContent ?? '');
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new Error(`the data is not JSON: ${(err as Error).message}`);
  }
  const format = (data as { format?: unknown } | null)?.format;
  if (format === RECORDING_FORMAT || format === COMPARISON_FORMAT) return fromWire(data as { format: string });
  throw new Error(`unknown data format ${JSON.stringify(format ?? null)}: this page shows ${RECORDING_FORMAT} and ${COMPARISON_FORMAT}`);
}

/** The text at `src`, relative to the page. */
async function fetchText(src: string): Promise<string> {
  const res = await fetch(src);
  if (!res.ok) throw new Error(`fetching ${src}: HTTP ${res.status}`);
  return res.text();
}
