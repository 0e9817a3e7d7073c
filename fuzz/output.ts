/**
 * What the long-running fuzzer leaves behind: for each distinct finding (by signature), a
 * minimised reproducer `<fuzzer>-<kind>-<hash>.yaml`, the case as generated or mutated
 * `<...>.orig.yaml`, and `<...>.txt` saying what failed and how to reproduce it.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { FuzzCase } from './cases.js';
import type { Outcome } from './verdict.js';

export interface Finding {
  fuzzerCase: FuzzCase;
  outcome: Outcome;
  signature: string;
  /** The minimised text (the original for a hang). */
  minimised: string;
}

/** The `isolab run` command that reproduces a case written at `file`. */
export function reproduceCommand(c: FuzzCase, file: string): string {
  const steps = c.opts.maxSteps !== undefined ? ` --max-steps ${c.opts.maxSteps}` : '';
  return `node dist/src/cli/main.js run ${file}${steps} --no-timeline`;
}

/** Writes a finding's files into `dir`; returns the reproducer's path. */
export function writeFinding(dir: string, f: Finding): string {
  mkdirSync(dir, { recursive: true });
  const c = f.fuzzerCase;
  const base = `${c.fuzzer}-${f.outcome.kind}-${createHash('sha1').update(f.signature).digest('hex').slice(0, 8)}`;
  const repro = join(dir, `${base}.yaml`);
  const shown = relative(process.cwd(), repro) || repro;
  writeFileSync(repro, f.minimised);
  writeFileSync(join(dir, `${base}.orig.yaml`), c.text);
  const txt = [
    `finding: ${f.outcome.kind}`,
    `signature: ${f.signature}`,
    `fuzzer: ${c.fuzzer}, seed ${c.seed}, case ${c.index} (npm run fuzz -- --seed ${c.seed} replays it)`,
    `made from: ${c.origin}`,
    `reproducer: ${shown} (${f.minimised.length} bytes, minimised from ${c.text.length})`,
    `reproduce: ${reproduceCommand(c, shown)}`,
    '',
    'what failed:',
    f.outcome.message,
    '',
  ].join('\n');
  writeFileSync(join(dir, `${base}.txt`), txt);
  return repro;
}
