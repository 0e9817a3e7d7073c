/**
 * Regions of the Markdown docs made from the model's own tables: a region lies between two
 * HTML comments, a `docs:*` script writes it, and a test fails when the document's copy
 * differs from what the script would write.
 */

/** `text` (the document `file`) with the part between the markers `begin` and `end` replaced by `body`. Throws when a marker is missing. */
export function between(text: string, begin: string, end: string, body: string, file: string): string {
  const b = text.indexOf(begin);
  const e = text.indexOf(end);
  if (b < 0 || e < b) throw new Error(`${file} lacks the markers ${begin} and ${end}`);
  return text.slice(0, b + begin.length) + '\n\n' + body + '\n' + text.slice(e);
}

/** What `text` holds between the markers `begin` and `end` (trimmed), or null when a marker is missing. */
export function region(text: string, begin: string, end: string): string | null {
  const b = text.indexOf(begin);
  const e = text.indexOf(end);
  if (b < 0 || e < b) return null;
  return text.slice(b + begin.length, e).trim();
}
