/**
 * get_user_pages' FOLL_TOUCH (mm/gup.c follow_page_pte, 6.12): a write through a clean entry
 * dirties the page (set_page_dirty), as the write that follows goes through the kernel's
 * mapping and sets no D bit. Expected values are the host kernel's for the same calls (x86-64).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { mmapAnon, ret, runProgram } from './helpers.js';

const MADV_FREE = 8, MADV_PAGEOUT = 21, MADV_POPULATE_READ = 22, MADV_POPULATE_WRITE = 23;
const sc = (name: string, ...args: (number | bigint | string)[]): Op => ({ op: 'syscall', name, args });

test('MADV_POPULATE_WRITE of a MADV_FREE\'d page dirties it (FOLL_WRITE | FOLL_TOUCH), so reclaim keeps it; POPULATE_READ does not', () => {
  const { sys } = runProgram({
    main: [
      mmapAnon('f', 3 * 4096), // 0
      { op: 'store', addr: '$f', value: 0x61 }, // 1
      { op: 'store', addr: '$f+4096', value: 0x61 }, // 2
      { op: 'store', addr: '$f+8192', value: 0x61 }, // 3
      sc('madvise', '$f', 3 * 4096, MADV_FREE), // 4
      sc('madvise', '$f+4096', 4096, MADV_POPULATE_WRITE), // 5: the entry is present and writable: no fault, only the touch
      sc('madvise', '$f+8192', 4096, MADV_POPULATE_READ), // 6
      sc('madvise', '$f', 3 * 4096, MADV_PAGEOUT), // 7
      { op: 'load', addr: '$f', size: 1, into: 'p0' }, // 8: discarded
      { op: 'load', addr: '$f+4096', size: 1, into: 'p1' }, // 9: kept
      { op: 'load', addr: '$f+8192', size: 1, into: 'p2' }, // 10: discarded
    ],
  });
  assert.deepEqual([4, 5, 6, 7, 8, 9, 10].map((i) => ret(sys, i)), [0n, 0n, 0n, 0n, 0n, 0x61n, 0n]);
});
