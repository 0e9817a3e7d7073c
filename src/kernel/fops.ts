/**
 * The file_operations of the model's own files: a tmpfs regular file (mm/shmem.c
 * shmem_file_operations), a tmpfs directory (fs/libfs.c simple_dir_operations), and the
 * memory devices /dev/null and /dev/zero (drivers/char/mem.c null_fops, zero_fops). Each
 * operation is the function of the file that models it (read_write.ts, splice.ts); a pipe's
 * are in pipe.ts.
 */
import type { File, FileOperations } from './file.js';
import { shmem_file_read, shmem_file_write, shmem_llseek } from './read_write.js';
import { copy_splice_read, iter_file_splice_write, shmem_file_splice_read, splice_write_null } from './splice.js';
import { copy_to_user_partial } from './uaccess.js';
import { EFAULT, EISDIR } from './uapi.js';

/** null_lseek and the zero device's: the position is always 0. */
function null_lseek(f: File): number {
  return (f.f_pos = 0);
}

/** The operations of a tmpfs regular file (shmem_file_operations). */
export const shmem_file_operations = Object.freeze<FileOperations>({
  read: shmem_file_read,
  write: shmem_file_write,
  llseek: shmem_llseek,
  splice_read: shmem_file_splice_read,
  splice_write: iter_file_splice_write,
});

/** A tmpfs directory's (simple_dir_operations): read is generic_read_dir's -EISDIR; no write. */
export const simple_dir_operations = Object.freeze<FileOperations>({
  *read() {
    return [-EISDIR, 0];
  },
  llseek: shmem_llseek,
});

/** /dev/null's (null_fops): reads see the end, writes take every byte unread, splices into it drop the pipe's bytes. */
export const null_fops = Object.freeze<FileOperations>({
  *read(_k, _pc, _t, _f, _buf, _count, pos) {
    return [0, pos];
  },
  *write(_k, _pc, _t, _f, _buf, count, pos) {
    return [count, pos + count];
  },
  llseek: null_lseek,
  splice_write: splice_write_null,
});

/** /dev/zero's (zero_fops): reads give zeroes copied out a page at a time (read_iter_zero), writes take every byte; a splice from it fills new pages with zeroes (copy_splice_read). */
export const zero_fops = Object.freeze<FileOperations>({
  *read(k, pc, t, _f, buf, count, pos) {
    const got = count - (yield* copy_to_user_partial(k, pc, t, buf, new Uint8Array(count)));
    return [got === 0 && count > 0 ? -EFAULT : got, pos + got];
  },
  write: null_fops.write,
  llseek: null_lseek,
  splice_read: copy_splice_read,
  splice_write: splice_write_null,
});
