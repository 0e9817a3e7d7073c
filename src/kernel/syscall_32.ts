/**
 * The ia32 syscall table (arch/x86/entry/syscalls/syscall_32.tbl, 6.12) that INT 0x80 uses
 * (entry.ts do_int80_emulation): the model's 32-bit syscalls, each the same sys_* function as
 * its 64-bit twin (their __ia32_sys_* wrappers pass the six argument registers truncated to
 * 32 bits) or, for set_thread_area and get_thread_area, the functions of tls.ts the 64-bit
 * table lacks. A number the table lacks is -ENOSYS (sys_ni_syscall).
 */
import { ArgumentError } from '../errors.js';
import { syscallEntry, type SyscallEntry, type SyscallHandler } from './syscalls.js';
import { sys_get_thread_area, sys_set_thread_area } from './tls.js';

/**
 * An entry whose handler is the 64-bit table's entry named `name` (the same sys_* function),
 * looked up when called (the two tables' modules load in either order).
 */
function same(nr: number, name: string, args: readonly string[], noreturn = false): SyscallEntry {
  const handler: SyscallHandler = (k, pc, t, a) => syscallEntry(name)!.handler(k, pc, t, a);
  return Object.freeze({ nr, name, args, handler, ...(noreturn ? { noreturn } : {}) });
}

const table: readonly SyscallEntry[] = [
  same(1, 'exit', ['error_code'], true),
  same(3, 'read', ['fd', 'buf', 'count']),
  same(4, 'write', ['fd', 'buf', 'count']),
  same(6, 'close', ['fd']),
  same(20, 'getpid', []),
  same(37, 'kill', ['pid', 'sig']),
  same(123, 'modify_ldt', ['func', 'ptr', 'bytecount']),
  same(158, 'sched_yield', []),
  same(224, 'gettid', []),
  { nr: 243, name: 'set_thread_area', args: ['u_info'], handler: sys_set_thread_area },
  { nr: 244, name: 'get_thread_area', args: ['u_info'], handler: sys_get_thread_area },
  same(252, 'exit_group', ['error_code'], true),
];

/** The ia32 table indexed by number (holes are undefined: -ENOSYS). Built once, never changed. */
export const IA32_SYSCALLS: readonly (SyscallEntry | undefined)[] = Object.freeze(Array.from({ length: Math.max(...table.map((e) => e.nr)) + 1 }, (_, nr) => table.find((e) => e.nr === nr)));
const BY_NAME: ReadonlyMap<string, number> = new Map(table.map((e) => [e.name, e.nr]));

/** The number of a 32-bit syscall the model implements, by name; ArgumentError for an unknown name. */
export function ia32SyscallByName(name: string): number {
  const nr = BY_NAME.get(name);
  if (nr === undefined) throw new ArgumentError('syscall', `unknown 32-bit syscall ${JSON.stringify(name)}; the model's ia32 table has ${[...BY_NAME.keys()].join(', ')}`);
  return nr;
}

/** The ia32 entry of a 32-bit syscall the model implements, by name, or undefined. */
export function ia32SyscallEntry(name: string): SyscallEntry | undefined {
  const nr = BY_NAME.get(name);
  return nr === undefined ? undefined : IA32_SYSCALLS[nr];
}

/** Every 32-bit syscall the model implements, in number order. */
export function ia32SyscallEntries(): SyscallEntry[] {
  return IA32_SYSCALLS.filter((e): e is SyscallEntry => e !== undefined);
}
