/**
 * Widening a race for `isolab host --stress` the way the MADV_FREE reproducer does
 * (native/madvfree.c): the private anonymous mapping the racing load or store touches is made
 * COPIES times as large on the host, and every load, store and range syscall of the scenario
 * that touches it is done on each copy. The copies lie one below the other, copy 0 at the top:
 * the kernel walks a range from the bottom up (fork's copy_pte_range, zap, change_protection,
 * madvise), while the racing load or store sweeps the copies from the top down, so the two
 * cross inside the region in every round and the window is met in some copy, not only when
 * the timing of one page allows. Each copy's loads give a per-copy outcome.
 *
 * The host places the widened mapping itself (isolab's address has isolab's other mappings
 * below it); the program reports addresses in copy 0 as isolab's (cgen.ts xlate), so values
 * and si_addr still compare. What widening cannot follow is refused with the reason, and the
 * race then runs on one copy: the mapping's address passed to anything but a load, a store or
 * a range syscall (madvise, mprotect, munmap, ...) as its start, or derived into another
 * variable.
 */
import { MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_PRIVATE, MAP_SHARED } from '../kernel/uapi.js';
import type { CompiledScenario } from '../scenario/compile.js';
import { recordOp, type Plan, type PlanRecord } from './plan.js';
import { syscallName, valueRefs, type Support } from './support.js';

/** Syscalls whose arguments 0 and 1 are a range of the caller's address space, done on every copy. */
export const RANGE_SYSCALLS: ReadonlySet<string> = new Set(['madvise', 'mprotect', 'pkey_mprotect', 'munmap', 'mlock', 'mlock2', 'munlock', 'msync']);

/** What the generated program widens: the mmap record, the mapping's length, isolab's address and the number of copies. */
export interface WideGen {
  pos: number;
  len: bigint;
  isolab: bigint;
  copies: number;
  /** The variable the mmap sets. */
  variable: string;
}

/** The mapping to widen for the racing pair, or why there is none. */
export function widening(c: CompiledScenario, support: Support, plan: Plan, pair: PlanRecord[], copies: number): { wide: WideGen } | { why: string } {
  const opOf = (r: PlanRecord) => recordOp(support, r);
  const mem = pair.find((r) => {
    const op = opOf(r);
    return (op?.op === 'load' || op?.op === 'store') && r.record.addr !== undefined && !r.record.signal;
  });
  if (!mem) return { why: 'neither racing operation is a load or store that completed' };
  const addr = BigInt.asUintN(64, mem.record.addr!);
  // The isolab-placed mmap whose mapping holds the address.
  const mmap = plan.records.find((r) => {
    if (r.mmap === 0n || r.pos > mem.pos) return false;
    const f = support.images[r.image].byName.get(r.fn);
    const len = f?.args[r.index]?.[1];
    return len?.kind === 0 && addr >= r.mmap && addr < r.mmap + len.constant;
  });
  if (!mmap) return { why: `the racing ${opOf(mem)!.op} is not in a mapping the scenario made with mmap` };
  const img = support.images[mmap.image];
  const f = img.byName.get(mmap.fn)!;
  const op = f.ops[mmap.index];
  const args = f.args[mmap.index];
  const len = args[1]!.constant;
  const flags = args[3]?.kind === 0 ? Number(BigInt.asUintN(32, args[3].constant)) : -1;
  if (flags < 0 || (flags & (MAP_PRIVATE | MAP_ANONYMOUS)) !== (MAP_PRIVATE | MAP_ANONYMOUS) || (flags & (MAP_SHARED | MAP_FIXED | MAP_FIXED_NOREPLACE)) !== 0) {
    return { why: 'the racing mapping is not a private anonymous mmap isolab placed' };
  }
  if (len <= 0n || len % 4096n !== 0n || len * BigInt(copies) > 1n << 32n) return { why: `the racing mapping's length (${len}) times ${copies} copies is not a whole number of pages under 4 GiB` };
  const variable = op.op === 'syscall' ? op.into : undefined;
  if (variable === undefined) return { why: "the racing mapping's address is not kept in a variable" };
  // Every use of the variable must be one widening follows.
  for (const fn of img.functions) {
    for (let i = 0; i < fn.ops.length; i++) {
      const o = fn.ops[i];
      const info = c.ops.get(img.name, fn.name, i);
      const at = info ? `${info.label}` : `${fn.name}[${i}]`;
      const uses = (v: (typeof fn.addrs)[number]): boolean => valueRefs(v).includes(variable);
      if (o.op === 'load' || o.op === 'store') {
        if (uses(fn.values[i])) return { why: `${at} uses $${variable} as a value` };
        continue;
      }
      if (o.op === 'syscall' && RANGE_SYSCALLS.has(syscallName(o.name) ?? '')) {
        if ((fn.args[i] ?? []).some((a, j) => j !== 0 && uses(a))) return { why: `${at} passes $${variable} other than as its start` };
        continue;
      }
      if (fn === f && i === mmap.index) continue;
      if (uses(fn.addrs[i]) || uses(fn.values[i]) || (fn.args[i] ?? []).some(uses)) return { why: `${at} uses $${variable}, which widening cannot follow` };
    }
  }
  return { wide: { pos: mmap.pos, len, isolab: mmap.mmap, copies, variable } };
}
