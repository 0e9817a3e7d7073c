/**
 * Writing command output (DESIGN.md rule 8) so that a failed command leaves nothing
 * half-written and replaces nothing but a regular file. Every `-o FILE` of every command goes
 * through writeOutput: the destination must be a new path or a regular file (never a symlink,
 * FIFO, device, socket or directory, which are refused, not followed or replaced); the text is
 * written to a new temporary file beside it and renamed into place only when complete. A
 * command that computes for long checks its destination first with checkOutputPath.
 */
import { closeSync, constants, lstatSync, openSync, renameSync, rmSync, writeSync, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { IsolabError } from '../errors.js';

/** An output file that cannot be written. */
export class OutputError extends IsolabError {
  constructor(message: string) {
    super('EOUTPUT', message);
  }
}

/** What a non-regular file is, for the message. */
function kindOf(st: Stats): string {
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** A system error as `CODE (what it means)`. */
function reason(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (!err.code) return err instanceof Error ? err.message : String(e);
  const why: Record<string, string> = {
    ENOENT: 'no such directory',
    ENOTDIR: 'a component of the path is not a directory',
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    ENOSPC: 'no space left on device',
    EROFS: 'read-only file system',
    EDQUOT: 'disk quota exceeded',
    EISDIR: 'is a directory',
    EIO: 'input/output error',
  };
  return why[err.code] ? `${err.code} (${why[err.code]})` : err.code;
}

/**
 * Throws OutputError unless `file` could be written: it is a regular file or does not exist,
 * and its directory exists. '-' (standard output) always can.
 */
export function checkOutputPath(file: string): void {
  if (file === '-') return;
  if (file === '') throw new OutputError('cannot write an output file with an empty name');
  let st: Stats | undefined;
  try {
    st = lstatSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new OutputError(`cannot write ${file}: ${reason(e)}`);
  }
  if (st && !st.isFile()) throw new OutputError(`cannot write ${file}: it is ${kindOf(st)}; give a new path or a regular file to replace`);
  const dir = dirname(file);
  let d: Stats;
  try {
    d = lstatSync(dir);
    if (d.isSymbolicLink()) d = lstatSync(join(dir, '.'));
  } catch (e) {
    throw new OutputError(`cannot write ${file}: its directory ${dir}: ${reason(e)}`);
  }
  if (!d.isDirectory()) throw new OutputError(`cannot write ${file}: ${dir} is not a directory`);
}

/** Writes `text` (or bytes) to `file` atomically, or to stdout when `file` is undefined or '-'. */
export function writeOutput(file: string | undefined, text: string | Uint8Array): void {
  if (file === undefined || file === '-') {
    process.stdout.write(text);
    return;
  }
  checkOutputPath(file);
  const tmp = join(dirname(file), `.${basename(file)}.isolab-${process.pid}-${Date.now().toString(36)}.tmp`);
  let fd: number | undefined;
  try {
    // O_EXCL|O_NOFOLLOW: a new file of our own, never something already there.
    fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
  } catch (e) {
    throw new OutputError(`cannot write ${file}: ${reason(e)}`);
  }
  try {
    const buf = typeof text === 'string' ? Buffer.from(text, 'utf8') : Buffer.from(text.buffer, text.byteOffset, text.byteLength);
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    closeSync(fd);
    fd = undefined;
    // The destination may have changed since the check: refuse again rather than replace a non-regular file.
    checkOutputPath(file);
    renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    rmSync(tmp, { force: true });
    if (e instanceof OutputError) throw e;
    throw new OutputError(`cannot write ${file}: ${reason(e)}`);
  }
}
