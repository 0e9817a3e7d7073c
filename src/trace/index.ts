/**
 * Trace writers for `isolab trace FILE --format jsonl|perfetto`: both read the recorded event
 * stream (TraceRecord[]) and what it does not say (TraceMeta).
 */
export type { TraceRecord, TraceMeta } from './record.js';
export { toJsonl, TRACE_FORMAT, TRACE_VERSION } from './jsonl.js';
export { toPerfetto, type PerfettoTrace, type TraceEvent } from './perfetto.js';
