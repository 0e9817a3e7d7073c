/**
 * Operation sequences for the host-kernel oracle (native/oracle.c; the format is described at
 * the top of that file and in docs/kernel.md): their structure, their text form, and a
 * fast-check generator of sequences that mix good and bad arguments.
 *
 * The generator keeps to what both the host and the model define identically:
 * - handles are referenced only after mmaps that cannot fail (page-aligned MAP_FIXED in the
 *   arena, a non-zero length within it, private or shared anonymous);
 * - lengths are within the arena or beyond TASK_SIZE, never between (the overcommit limit
 *   depends on the machine's RAM);
 * - no address below 64 KiB is mapped (mmap_min_addr and the caller's privileges differ);
 * - MAP_HUGETLB is not used (it depends on the host's huge-page pool);
 * - every fork block is followed by a wait, so output order is fixed.
 */
import fc from 'fast-check';

/** The arena's base and size, as native/oracle.c fixes them. */
export const ARENA = 0x200000000000n;
export const ARENA_SIZE = 0x4000000n;

export type Addr = { kind: 'A'; off: bigint } | { kind: 'H'; handle: number; off: bigint } | { kind: 'X'; addr: bigint } | { kind: 'null' };

export type SeqOp =
  | { op: 'mmap'; handle: number; addr: Addr; len: bigint; prot: number; flags: number }
  | { op: 'munmap'; addr: Addr; len: bigint }
  | { op: 'mprotect'; addr: Addr; len: bigint; prot: number }
  | { op: 'load'; addr: Addr; size: 1 | 2 | 4 | 8 }
  | { op: 'store'; addr: Addr; size: 1 | 2 | 4 | 8; value: bigint }
  | { op: 'getpid' }
  | { op: 'fork'; child: SeqOp[] }
  | { op: 'wait' }
  | { op: 'exit'; code: number }
  | { op: 'execve'; rest: SeqOp[] };

const hex = (v: bigint): string => v.toString(16);

function addrText(a: Addr): string {
  switch (a.kind) {
    case 'A':
      return `A+${hex(a.off)}`;
    case 'H':
      return `H${a.handle}+${hex(a.off)}`;
    case 'X':
      return `X${hex(a.addr)}`;
    case 'null':
      return '0';
  }
}

/** The text of a sequence: one op per line, fork blocks closed by `end`, execve followed by the new image's ops. */
export function serialize(ops: SeqOp[]): string {
  const lines: string[] = [];
  const emit = (list: SeqOp[]): void => {
    for (const o of list) {
      switch (o.op) {
        case 'mmap':
          lines.push(`mmap ${o.handle} ${addrText(o.addr)} ${hex(o.len)} ${o.prot.toString(16)} ${o.flags.toString(16)}`);
          break;
        case 'munmap':
          lines.push(`munmap ${addrText(o.addr)} ${hex(o.len)}`);
          break;
        case 'mprotect':
          lines.push(`mprotect ${addrText(o.addr)} ${hex(o.len)} ${o.prot.toString(16)}`);
          break;
        case 'load':
          lines.push(`load ${addrText(o.addr)} ${o.size}`);
          break;
        case 'store':
          lines.push(`store ${addrText(o.addr)} ${o.size} ${hex(o.value)}`);
          break;
        case 'getpid':
        case 'wait':
          lines.push(o.op);
          break;
        case 'exit':
          lines.push(`exit ${o.code}`);
          break;
        case 'fork':
          lines.push('fork');
          emit(o.child);
          lines.push('end');
          break;
        case 'execve':
          lines.push('execve');
          emit(o.rest);
          break;
      }
    }
  };
  emit(ops);
  return lines.join('\n') + '\n';
}

const PAGE = 0x1000n;
/** Offsets in the arena: page-aligned, or anywhere (unaligned, page-crossing). */
const arenaPage = fc.integer({ min: 0, max: 63 }).map((p) => BigInt(p) * PAGE);
const arenaOff = fc.oneof(arenaPage, arenaPage.chain((p) => fc.integer({ min: 0, max: 0xfff }).map((d) => p + BigInt(d))));
/** Lengths: small page counts, odd byte counts, 0, and sizes no kernel can map. */
const length = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 1, max: 16 }).map((n) => BigInt(n) * PAGE) },
  { weight: 2, arbitrary: fc.integer({ min: 1, max: 0x9000 }).map(BigInt) },
  { weight: 1, arbitrary: fc.constantFrom(0n, 0xfffffffffffff000n, 0xffffffffffffffffn, 0x800000000000n, 0x7ffffffff001n) },
);
const PROT_OK = fc.constantFrom(0, 1, 2, 3, 4, 5, 7, 8);
const prot = fc.oneof({ weight: 8, arbitrary: PROT_OK }, { weight: 1, arbitrary: fc.constantFrom(0x10, 0x1000003, 0x3000000, 0x2000001, 0x80000001) });
/** mmap flags the host and model define alike (no MAP_HUGETLB). */
const MAP_BITS = [0x10, 0x20, 0x40, 0x100, 0x2000, 0x4000, 0x8000, 0x10000, 0x20000, 0x100000];
const flags = fc.tuple(fc.constantFrom(0, 1, 2, 3, 8, 0xf), fc.subarray(MAP_BITS)).map(([type, bits]) => bits.reduce((a, b) => a | b, type));
/** Addresses outside user space: kernel text, the direct map, a non-canonical one, the top of user space. */
const farAddr = fc.constantFrom(0xffffffff81000000n, 0xffff888000000000n, 0x800000000000n, 0x7ffffffff000n, 0xffffffffff600000n);

const size = fc.constantFrom(1 as const, 2 as const, 4 as const, 8 as const);

/** Bounds on a value of `size` bytes. */
function valueOf(sizeBytes: number): fc.Arbitrary<bigint> {
  return fc.bigInt({ min: 0n, max: (1n << BigInt(8 * sizeBytes)) - 1n });
}

interface Scope {
  /** Handles bound by mmaps that cannot fail, usable in this process. */
  handles: number[];
  depth: number;
}

/** One process's ops: `n` of them, with fork blocks (each followed by a wait) and perhaps an execve at the end. */
function processOps(scope: Scope, n: number): fc.Arbitrary<SeqOp[]> {
  const addr = (): fc.Arbitrary<Addr> => {
    const choices: fc.Arbitrary<Addr>[] = [arenaOff.map((off) => ({ kind: 'A' as const, off }))];
    if (scope.handles.length > 0) {
      choices.push(fc.tuple(fc.constantFrom(...scope.handles), fc.integer({ min: 0, max: 0x3fff })).map(([handle, off]) => ({ kind: 'H' as const, handle, off: BigInt(off) })));
    }
    choices.push(farAddr.map((a) => ({ kind: 'X' as const, addr: a })));
    return fc.oneof({ weight: 6, arbitrary: choices[0] }, ...choices.slice(1).map((c) => ({ weight: 2, arbitrary: c })));
  };
  const goodMmap = fc.tuple(arenaPage, fc.integer({ min: 1, max: 8 }), fc.constantFrom(0, 1, 3, 5, 7), fc.constantFrom(0x32, 0x31)).map(([off, pages, p, f]) => ({ off, pages, p, f }));
  const leaf: fc.Arbitrary<SeqOp> = fc.oneof(
    { weight: 3, arbitrary: fc.tuple(addr(), length, prot, flags).map(([a, len, p, f]) => ({ op: 'mmap' as const, handle: 255, addr: a, len, prot: p, flags: f })) },
    { weight: 3, arbitrary: fc.tuple(addr(), length).map(([a, len]) => ({ op: 'munmap' as const, addr: a, len })) },
    { weight: 4, arbitrary: fc.tuple(addr(), length, prot).map(([a, len, p]) => ({ op: 'mprotect' as const, addr: a, len, prot: p })) },
    { weight: 6, arbitrary: fc.tuple(addr(), size).map(([a, s]) => ({ op: 'load' as const, addr: a, size: s })) },
    { weight: 6, arbitrary: fc.tuple(addr(), size).chain(([a, s]) => valueOf(s).map((v) => ({ op: 'store' as const, addr: a, size: s, value: v }))) },
    { weight: 1, arbitrary: fc.constant({ op: 'getpid' as const }) },
    { weight: 1, arbitrary: fc.constant({ op: 'wait' as const }) },
  );
  return fc.array(fc.integer({ min: 0, max: 19 }), { minLength: n, maxLength: n }).chain((kinds) => {
    const parts: fc.Arbitrary<SeqOp[]>[] = [];
    const handles = [...scope.handles];
    for (const kind of kinds) {
      if (kind < 3) {
        // A good mmap: binds a new handle for the rest of this process (and its children).
        const h = handles.length;
        handles.push(h);
        parts.push(goodMmap.map(({ off, pages, p, f }) => [{ op: 'mmap' as const, handle: h, addr: { kind: 'A' as const, off }, len: BigInt(pages) * PAGE, prot: p, flags: f }]));
      } else if (kind === 3 && scope.depth < 2) {
        const child = processOps({ handles: [...handles], depth: scope.depth + 1 }, 4);
        const exitCode = fc.integer({ min: 0, max: 255 });
        parts.push(fc.tuple(child, exitCode, fc.integer({ min: 0, max: 4 }), fc.array(leaf, { maxLength: 3 })).map(([c, code, mode, between]) => {
          const body = mode === 0 ? [...c, { op: 'exit' as const, code }] : c;
          return [{ op: 'fork' as const, child: body }, ...between, { op: 'wait' as const }];
        }));
      } else {
        parts.push(fc.tuple(leaf).map(([o]) => [o]));
      }
    }
    return fc.tuple(...parts).map((ps) => ps.flat());
  });
}

/** A whole sequence: 8 to 24 top-level steps, sometimes ending in execve with a few arena ops in the new image. */
export const sequenceArb: fc.Arbitrary<SeqOp[]> = fc
  .tuple(fc.integer({ min: 8, max: 24 }), fc.integer({ min: 0, max: 9 }))
  .chain(([n, e]) =>
    processOps({ handles: [], depth: 0 }, n).chain((ops) =>
      e === 0 ? processOps({ handles: [], depth: 1 }, 3).map((rest) => [...ops, { op: 'execve' as const, rest }]) : fc.constant(ops),
    ),
  );
