/**
 * Writing command output so that a failed command leaves nothing half-written: a file is
 * written beside its destination and renamed into place only when complete.
 */
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { IsolabError } from '../errors.js';

/** An output file that cannot be written. */
export class OutputError extends IsolabError {
  constructor(message: string) {
    super('EOUTPUT', message);
  }
}

/** Writes `text` to `file` atomically, or to stdout when `file` is undefined or '-'. */
export function writeOutput(file: string | undefined, text: string): void {
  if (file === undefined || file === '-') {
    process.stdout.write(text);
    return;
  }
  const tmp = `${file}.isolab-${process.pid}.tmp`;
  try {
    writeFileSync(tmp, text);
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new OutputError(`cannot write ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}
