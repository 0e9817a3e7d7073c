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
import { readFileSync } from 'node:fs';
import fc from 'fast-check';

/** The arena's base and size, as native/oracle.c fixes them. */
export const ARENA = 0x200000000000n;
export const ARENA_SIZE = 0x4000000n;
/**
 * The write buffer both sides map in every image (native/oracle.c map_safe_buffer): at
 * A+SAFE_OFF, SAFE_LEN bytes, the first SAFE_PATTERN of them byte i = i * 7 + 1. No generated
 * operation unmaps or protects it (it is far above the arena pages they aim at).
 */
export const SAFE_OFF = 0x3000000n;
export const SAFE_LEN = 0x4000n;
export const SAFE_PATTERN = 256;

/** An address: in the arena, in a handle's region, absolute, null, or relative to the image's first program break (`B`, `off` may be negative). */
export type Addr = { kind: 'A'; off: bigint } | { kind: 'H'; handle: number; off: bigint } | { kind: 'X'; addr: bigint } | { kind: 'null' } | { kind: 'B'; off: bigint };

/**
 * An argument of a `call`: a descriptor handle (`F<k>`, bound by an earlier call), an address,
 * an integer, a path, a pointer to a 64-bit cell holding `value` (printed after the call), a
 * pointer to an int[2] (pipe's and pipe2's, printed after the call), a pointer to an array
 * of iovecs, a pointer to 64-bit words (integers or addresses; printed after the call, each
 * ANDed with its mask), or a pointer to a zeroed text buffer of `len` bytes (after the call, its
 * lines that begin with an arena address are printed: the arena's lines of /proc/self/maps).
 */
export type CallArg =
  | { kind: 'fd'; handle: number }
  | { kind: 'addr'; addr: Addr }
  | { kind: 'int'; value: bigint }
  | { kind: 'str'; text: string }
  | { kind: 'cell'; value: bigint }
  | { kind: 'pair' }
  | { kind: 'iov'; segs: { addr: Addr; len: bigint }[] }
  | { kind: 'words'; words: (bigint | Addr)[]; mask?: bigint[] }
  | { kind: 'text'; len: bigint };

/** The syscalls a `call` makes (native/oracle.c's table). */
export type CallName =
  | 'read' | 'write' | 'open' | 'close' | 'lseek' | 'pread64' | 'pwrite64' | 'pipe' | 'dup' | 'dup2' | 'fcntl'
  | 'ftruncate' | 'openat' | 'splice' | 'vmsplice' | 'dup3' | 'pipe2' | 'memfd_create'
  | 'mlock' | 'munlock' | 'mlock2' | 'madvise' | 'mincore' | 'msync' | 'mremap'
  | 'brk' | 'getrlimit' | 'setrlimit' | 'prlimit64' | 'capset' | 'userfaultfd' | 'ioctl';

export type SeqOp =
  | { op: 'mmap'; handle: number; addr: Addr; len: bigint; prot: number; flags: number; fd?: CallArg; off?: bigint }
  /** A syscall; on success, `bind` names the descriptor handles it binds (its result, or pipe's two descriptors). */
  | { op: 'call'; name: CallName; bind: number[]; args: CallArg[] }
  | { op: 'munmap'; addr: Addr; len: bigint }
  | { op: 'mprotect'; addr: Addr; len: bigint; prot: number }
  | { op: 'load'; addr: Addr; size: 1 | 2 | 4 | 8 }
  | { op: 'store'; addr: Addr; size: 1 | 2 | 4 | 8; value: bigint }
  | { op: 'getpid' }
  | { op: 'fork'; child: SeqOp[] }
  | { op: 'wait' }
  | { op: 'exit'; code: number }
  | { op: 'execve'; rest: SeqOp[] }
  /** An operation of the signal family (SigOp): signals, sigaltstack, segments, arch_prctl. */
  | { op: 'sig'; s: SigOp }
  /** A story of the ptrace family (PtrOp): a parent tracing a child it forks. */
  | { op: 'ptr'; p: PtrOp }
  /** INT 0x80 (native/oracle.c parse_i80): EAX, then EBX, ECX, EDX; `desc` a struct user_desc at I80 `D` operands point to. */
  | { op: 'i80'; nr: bigint; args: I80Arg[]; desc?: [number, number, number, number] };

/**
 * The handlers `sig action` installs (native/oracle.c's handlers, model.ts's functions): `rec`
 * records what it sees and returns (SA_SIGINFO); `plain` records without SA_SIGINFO (signo and
 * the ucontext only); `alt` records, then tries sigaltstack(SS_DISABLE) and records its result;
 * `jmp` records and siglongjmps past the operation, the mask set from the frame's uc_sigmask;
 * `fix` records, then for SEGV_ACCERR makes the page read-write and returns (the access is made
 * again), else jumps as `jmp`.
 */
export type SigHandler = 'dfl' | 'ign' | 'rec' | 'plain' | 'alt' | 'jmp' | 'fix';

/** A signal-family operation (`sig <what> ...` in the oracle's text). */
export type SigOp =
  /** sigaltstack(SS_DISABLE), SIGSEGV and SIGBUS to SIG_DFL: the family's starting state. */
  | { what: 'reset' }
  /** rt_sigaction(sig, {handler, flags | SA_RESTORER, __restore_rt, mask}, &old, 8). */
  | { what: 'action'; sig: number; handler: SigHandler; flags: bigint; mask: bigint }
  /** kill(getpid(), sig), tgkill(getpid(), gettid(), sig). */
  | { what: 'kill' | 'tgkill'; sig: number }
  /** rt_sigprocmask(how, &set, &old, 8). */
  | { what: 'mask'; how: number; set: bigint }
  /** An 8-byte load, or a store of 0x5a. */
  | { what: 'load' | 'store'; addr: Addr }
  /** sigaltstack(&{sp, flags, size}, &old), or (no `sp`) sigaltstack(NULL, &old). */
  | { what: 'altstack'; sp?: Addr; size: bigint; flags: bigint }
  /** modify_ldt(func, &user_desc, 16): a write of entry's descriptor; func 0 reads 16 bytes. */
  | { what: 'ldt'; func: number; entry: number; base: bigint; limit: bigint; bits: number }
  /** MOV Sreg of `sel`, the selector (and FS's or GS's base) read back, the old ones put back. */
  | { what: 'sreg'; sreg: 'ds' | 'es' | 'fs' | 'gs' | 'ss'; sel: number }
  /** LAR, LSL, VERR and VERW of `sel`. */
  | { what: 'lar'; sel: number }
  /** arch_prctl(code, arg); the SET codes read the base back and put the old one back. */
  | { what: 'prctl'; code: number; arg: Addr }
  /** WRFSBASE or WRGSBASE, the base read back, the old one put back. */
  | { what: 'wrbase'; reg: 'fs' | 'gs'; value: Addr };

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
    case 'B':
      return a.off < 0n ? `B-${hex(-a.off)}` : `B+${hex(a.off)}`;
  }
}

const intText = (v: bigint): string => (v < 0n ? `-${hex(-v)}` : hex(v));

function argText(a: CallArg): string {
  switch (a.kind) {
    case 'fd':
      return `F${a.handle}`;
    case 'addr':
      return addrText(a.addr);
    case 'int':
      return intText(a.value);
    case 'str':
      return `s:${a.text}`;
    case 'cell':
      return `o:${intText(a.value)}`;
    case 'pair':
      return 'p';
    case 'iov':
      return `v:${a.segs.map((g) => `${addrText(g.addr)}:${hex(g.len)}`).join(',')}`;
    case 'words':
      return `m:${a.words.map((w) => (typeof w === 'bigint' ? intText(w) : addrText(w))).join(',')}${a.mask ? '/' + a.mask.map(hex).join(',') : ''}`;
    case 'text':
      return `t:${hex(a.len)}`;
  }
}

/** The text of a sequence: one op per line, fork blocks closed by `end`, execve followed by the new image's ops. */
export function serialize(ops: SeqOp[]): string {
  const lines: string[] = [];
  const emit = (list: SeqOp[]): void => {
    for (const o of list) {
      switch (o.op) {
        case 'mmap':
          lines.push(
            `mmap ${o.handle} ${addrText(o.addr)} ${hex(o.len)} ${o.prot.toString(16)} ${o.flags.toString(16)}` +
              (o.fd ? ` ${argText(o.fd)} ${hex(o.off ?? 0n)}` : ''),
          );
          break;
        case 'call':
          lines.push(['call', o.name, o.bind.length ? o.bind.map((b) => `F${b}`).join('/') : '-', ...o.args.map(argText)].join(' '));
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
        case 'sig':
          lines.push(sigText(o.s));
          break;
        case 'i80':
          lines.push(['i80', hex(o.nr), ...o.args.map((a) => (a.kind === 'D' ? 'D' : a.kind === 'P' ? `P${hex(a.hi)}` : hex(a.value))), ...(o.desc ?? []).map((w) => w.toString(16))].join(' '));
          break;
        case 'ptr':
          lines.push(`ptr ${o.p.mode} ${hex(BigInt(o.p.inj))} ${o.p.fin} ${hex(BigInt(o.p.off))} ${hex(BigInt(o.p.sel))} ${hex(o.p.v1)} ${hex(o.p.v2)} ${hex(o.p.pv)}`);
          break;
      }
    }
  };
  emit(ops);
  return lines.join('\n') + '\n';
}

/** A signal-family operation's line (native/oracle.c parse_sig). */
function sigText(s: SigOp): string {
  switch (s.what) {
    case 'reset':
      return 'sig reset';
    case 'action':
      return `sig action ${hex(BigInt(s.sig))} ${s.handler} ${hex(s.flags)} ${hex(s.mask)}`;
    case 'kill':
    case 'tgkill':
      return `sig ${s.what} ${hex(BigInt(s.sig))}`;
    case 'mask':
      return `sig mask ${hex(BigInt(s.how))} ${hex(s.set)}`;
    case 'load':
    case 'store':
      return `sig ${s.what} ${addrText(s.addr)}`;
    case 'altstack':
      return s.sp ? `sig altstack ${addrText(s.sp)} ${hex(s.size)} ${hex(s.flags)}` : 'sig altstack -';
    case 'ldt':
      return `sig ldt ${hex(BigInt(s.func))} ${hex(BigInt(s.entry))} ${hex(s.base)} ${hex(s.limit)} ${hex(BigInt(s.bits))}`;
    case 'sreg':
      return `sig sreg ${s.sreg} ${hex(BigInt(s.sel))}`;
    case 'lar':
      return `sig lar ${hex(BigInt(s.sel))}`;
    case 'prctl':
      return `sig prctl ${hex(BigInt(s.code))} ${addrText(s.arg)}`;
    case 'wrbase':
      return `sig wrbase ${s.reg} ${addrText(s.value)}`;
  }
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

/** What a descriptor handle was bound to: the calls that use descriptors pick them by kind. */
type FdKind = 'file' | 'memfd' | 'pipe-r' | 'pipe-w' | 'dev' | 'dir' | 'mem' | 'pagemap' | 'maps' | 'clear_refs' | 'uffd';

interface Scope {
  /** Handles bound by mmaps that cannot fail, usable in this process. */
  handles: number[];
  /** Descriptor handles bound by calls that cannot fail, usable in this process. */
  fds: { handle: number; kind: FdKind }[];
  depth: number;
  /** The proc family's userfaultfd regions: private anonymous mappings far from the other steps' addresses. */
  regions?: Region[];
}

/** A step of a process's generator: `weight` out of the total, and what it makes (binding handles in `scope` as it goes). */
interface Step {
  weight: number;
  build(scope: Scope, ops: Ops): fc.Arbitrary<SeqOp[]>;
}

/** The generators a step builds from, for one process. */
interface Ops {
  addr(): fc.Arbitrary<Addr>;
  leaf: fc.Arbitrary<SeqOp>;
  files: boolean;
  memory: boolean;
  proc: boolean;
}

const one = (o: fc.Arbitrary<SeqOp>): fc.Arbitrary<SeqOp[]> => o.map((x) => [x]);

// ---- memory steps ----

const goodMmap = fc.tuple(arenaPage, fc.integer({ min: 1, max: 8 }), fc.constantFrom(0, 1, 3, 5, 7), fc.constantFrom(0x32, 0x31)).map(([off, pages, p, f]) => ({ off, pages, p, f }));

/** A good mmap: binds a new handle for the rest of this process (and its children). */
const mmapStep: Step = {
  weight: 3,
  build(scope) {
    const h = scope.handles.length;
    scope.handles.push(h);
    return goodMmap.map(({ off, pages, p, f }) => [{ op: 'mmap' as const, handle: h, addr: { kind: 'A' as const, off }, len: BigInt(pages) * PAGE, prot: p, flags: f }]);
  },
};

/** A fork block (its own process's ops, perhaps an exit), a few ops in the parent, and the wait. */
const forkStep: Step = {
  weight: 1,
  build(scope, ops) {
    if (scope.depth >= 2) return one(ops.leaf);
    const child = processOps({ handles: [...scope.handles], fds: [...scope.fds], depth: scope.depth + 1, regions: scope.regions && [...scope.regions] }, 4, ops.files, ops.memory, ops.proc);
    const exitCode = fc.integer({ min: 0, max: 255 });
    return fc.tuple(child, exitCode, fc.integer({ min: 0, max: 4 }), fc.array(ops.leaf, { maxLength: 3 })).map(([c, code, mode, between]) => {
      const body = mode === 0 ? [...c, { op: 'exit' as const, code }] : c;
      return [{ op: 'fork' as const, child: body }, ...between, { op: 'wait' as const }];
    });
  },
};

const leafStep: Step = { weight: 16, build: (_scope, ops) => one(ops.leaf) };

// ---- file, pipe and splice steps ----
//
// Every pipe is non-blocking (pipe2 with O_NONBLOCK, pipe followed by F_SETFL O_NONBLOCK, and
// every F_SETFL keeps O_NONBLOCK), and every vmsplice passes SPLICE_F_NONBLOCK: the oracle's
// children run only when their parent waits, so an operation that blocked would hang it.
// Paths are relative (the oracle's fresh tmpfs directory, the model's /tmp) or /dev/null and
// /dev/zero. Descriptor numbers the generator names directly stay below 1000 (the oracle's
// own descriptors are above).

const O_RDWR = 0x2n;
const O_CREAT = 0x40n;
const O_NONBLOCK = 0x800n;
const AT_FDCWD = -100n;
const int = (v: bigint | number): CallArg => ({ kind: 'int', value: BigInt(v) });
const fdh = (handle: number): CallArg => ({ kind: 'fd', handle });
const str = (text: string): CallArg => ({ kind: 'str', text });
const call = (name: CallName, args: CallArg[], bind: number[] = []): SeqOp => ({ op: 'call', name, bind, args });

/** Binds the next descriptor handle of `kind` in `scope`. */
function bindFd(scope: Scope, kind: FdKind): number {
  const h = scope.fds.length === 0 ? 0 : Math.max(...scope.fds.map((f) => f.handle)) + 1;
  scope.fds.push({ handle: h, kind });
  return h;
}

const FILE_NAMES = ['f0', 'f1', 'f2'];
/** Paths open may be given: the files, the directory, devices, and ones that cannot be opened. */
const anyPath = fc.constantFrom(...FILE_NAMES, '.', '', 'f0/x', 'nofile/x', '/dev/null', '/dev/zero');
/** open's flags, without O_TMPFILE (the model has none). */
const OPEN_BITS = [0x40, 0x80, 0x200, 0x400, 0x800, 0x4000, 0x10000, 0x20000, 0x80000, 0x200000];
const openFlags = fc.tuple(fc.constantFrom(0, 1, 2, 3), fc.subarray(OPEN_BITS, { maxLength: 3 })).map(([acc, bits]) => BigInt(bits.reduce((a, b) => a | b, acc)));

/** A descriptor argument: a bound handle (of `kinds` when there is one), or a literal one, some never open. */
function fdArg(scope: Scope, kinds?: FdKind[]): fc.Arbitrary<CallArg> {
  const pool = scope.fds.filter((f) => !kinds || kinds.includes(f.kind));
  const lit = fc.constantFrom(0n, 1n, 3n, 4n, 5n, 6n, 7n, 8n, 9n).map(int);
  const bad = fc.constantFrom(-1n, 100n, 1024n).map(int);
  if (pool.length === 0) return fc.oneof({ weight: 4, arbitrary: lit }, { weight: 1, arbitrary: bad });
  return fc.oneof({ weight: 10, arbitrary: fc.constantFrom(...pool).map((f) => fdh(f.handle)) }, { weight: 2, arbitrary: lit }, { weight: 1, arbitrary: bad });
}

/** A buffer address: mostly in a bound region, or anywhere the memory steps aim. */
function bufArg(scope: Scope, ops: Ops): fc.Arbitrary<CallArg> {
  const inRegion = scope.handles.length
    ? fc.tuple(fc.constantFrom(...scope.handles), fc.integer({ min: 0, max: 0x2fff })).map(([handle, off]): Addr => ({ kind: 'H', handle, off: BigInt(off) }))
    : ops.addr();
  return fc.oneof({ weight: 4, arbitrary: inRegion }, { weight: 1, arbitrary: ops.addr() }).map((addr) => ({ kind: 'addr' as const, addr }));
}

const count = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(1n, 8n, 0x10n, 0xffn, 0x1000n, 0x1001n, 0x2000n, 0x3000n) },
  { weight: 1, arbitrary: fc.constantFrom(0n, 0xffffffffffffffffn) },
);
const filePos = fc.constantFrom(0n, 0x10n, 0xfffn, 0x1000n, 0x1ff8n, 0x2ffcn, 0x5000n, -1n);
const fileLen = fc.constantFrom(0n, 1n, 0xfffn, 0x1000n, 0x1800n, 0x3000n, 0x8000n, -1n);

/** The calls that use descriptors, one generator each (arguments good and bad). */
function fileCall(scope: Scope, ops: Ops): fc.Arbitrary<SeqOp> {
  const fd = (kinds?: FdKind[]): fc.Arbitrary<CallArg> => fdArg(scope, kinds);
  const buf = bufArg(scope, ops);
  const dst = fc.constantFrom(0n, 1n, 2n, 5n, 9n, 100n, 1024n, -1n).map(int);
  const offPtr = fc.oneof(fc.constant(int(0)), filePos.map((value): CallArg => ({ kind: 'cell', value })));
  const iov = fc.array(fc.tuple(bufArg(scope, ops), fc.constantFrom(0n, 1n, 8n, 0xfffn, 0x1000n, 0x2000n)), { minLength: 1, maxLength: 3 }).map(
    (segs): CallArg => ({ kind: 'iov', segs: segs.map(([b, len]) => ({ addr: (b as { addr: Addr }).addr, len })) }),
  );
  const fcntlArgs = fc.oneof(
    fc.tuple(fc.constantFrom(0n, 0x406n), fc.constantFrom(0n, 3n, 10n, 50n, 1024n)),
    fc.tuple(fc.constantFrom(1n, 3n, 0x40an, 0x408n, 0x7fffn), fc.constant(0n)),
    fc.tuple(fc.constant(2n), fc.constantFrom(0n, 1n, 3n)),
    fc.tuple(fc.constant(4n), fc.subarray([0x400n, 0x4000n, 0x40000n, 0x2n, 0x40n]).map((b) => b.reduce((a, x) => a | x, O_NONBLOCK))),
    fc.tuple(fc.constant(0x409n), fc.subarray([1n, 2n, 4n, 8n, 0x10n, 0x20n, 0x40n], { maxLength: 3 }).map((b) => b.reduce((a, x) => a | x, 0n))),
    fc.tuple(fc.constant(0x407n), fc.constantFrom(0n, 1n, 0x1000n, 0x2000n, 0x3000n, 0x10000n, 0x100000n)),
  );
  // write and pwrite64 take their bytes from the write buffer only: Linux 6.18's
  // generic_perform_write no longer faults the source in before shmem_write_begin, so a write
  // to a tmpfs file from a buffer that faults allocates the page and moves i_size to the
  // position (6.12, which the model follows, fails with -EFAULT first and changes nothing).
  const safe = fc.tuple(fc.integer({ min: 0, max: 0x1000 }), fc.constantFrom(0n, 1n, 8n, 0x10n, 0xffn, 0x1000n, 0x1001n, 0x2000n, 0x3000n, 0xffffffffffffffffn)).map(
    ([o, n]): [CallArg, bigint] => [{ kind: 'addr', addr: { kind: 'A', off: SAFE_OFF + BigInt(o) } }, n],
  );
  const choices: [number, fc.Arbitrary<SeqOp>][] = [
    [4, fc.tuple(fd(), buf, count).map(([f, b, n]) => call('read', [f, b, int(n)]))],
    [4, fc.tuple(fd(), safe).map(([f, [b, n]]) => call('write', [f, b, int(n)]))],
    [2, fc.tuple(fd(), buf, count, filePos).map(([f, b, n, p]) => call('pread64', [f, b, int(n), int(p)]))],
    [2, fc.tuple(fd(), safe, filePos).map(([f, [b, n], p]) => call('pwrite64', [f, b, int(n), int(p)]))],
    [2, fc.tuple(fd(), fc.constantFrom(0n, 1n, 0xfffn, 0x1000n, 0x2000n, -1n, -0x10n), fc.constantFrom(0n, 1n, 2n, 3n, 4n, 5n)).map(([f, o, w]) => call('lseek', [f, int(o), int(w)]))],
    [2, fc.tuple(fd(), fileLen).map(([f, n]) => call('ftruncate', [f, int(n)]))],
    [3, fc.tuple(fd(), fcntlArgs).map(([f, [c, a]]) => call('fcntl', [f, int(c), int(a)]))],
    [1, fd().map((f) => call('close', [f]))],
    [1, fd().map((f) => call('dup', [f]))],
    [1, fc.tuple(fd(), dst).map(([f, d]) => call('dup2', [f, d]))],
    [1, fc.tuple(fd(), dst, fc.constantFrom(0n, 0x80000n, 1n)).map(([f, d, fl]) => call('dup3', [f, d, int(fl)]))],
    [
      4,
      fc
        .tuple(fd(['pipe-r', 'file', 'memfd', 'dev']), offPtr, fd(['pipe-w', 'file', 'memfd', 'dev']), offPtr, fc.constantFrom(0n, 1n, 8n, 0x1000n, 0x1001n, 0x3000n, 0x10000n), fc.constantFrom(0n, 1n, 2n, 4n, 8n, 0x10n))
        .map(([i, oi, o, oo, n, fl]) => call('splice', [i, oi, o, oo, int(n), int(fl)])),
    ],
    [3, fc.tuple(fd(['pipe-w', 'pipe-r']), iov, fc.subarray([1n, 4n, 8n])).map(([f, v, fl]) => call('vmsplice', [f, v, int((v as { segs: unknown[] }).segs.length), int(fl.reduce((a, x) => a | x, 2n))]))],
    [
      2,
      fc
        .tuple(fc.oneof(fc.constant(int(AT_FDCWD)), fd(['dir']), fd()), anyPath, openFlags, fc.constantFrom(0o644n, 0o600n, 0o4777n))
        .map(([d, p, fl, m]) => call('openat', [d, str(p), int(fl), int(m)])),
    ],
  ];
  return fc.oneof(...choices.map(([weight, arbitrary]) => ({ weight, arbitrary })));
}

/** The steps that open descriptors that cannot fail (binding handles), the calls on them, mappings of files, and vmsplice's reference semantics. */
const fileSteps: Step[] = [
  {
    weight: 3,
    build(scope) {
      const h = bindFd(scope, 'file');
      return fc.tuple(fc.constantFrom(...FILE_NAMES), fc.subarray([0x200n, 0x400n, 0x80000n], { maxLength: 1 })).map(([name, bits]) => [
        call('openat', [int(AT_FDCWD), str(name), int(bits.reduce((a, b) => a | b, O_RDWR | O_CREAT)), int(0o644)], [h]),
      ]);
    },
  },
  {
    weight: 2,
    build(scope) {
      const h = bindFd(scope, 'memfd');
      return fc.constantFrom(0n, 1n, 2n, 3n, 8n, 0x10n, 0x12n).map((flags) => [call('memfd_create', [str('m'), int(flags)], [h])]);
    },
  },
  {
    weight: 3,
    build(scope) {
      const r = bindFd(scope, 'pipe-r');
      const w = bindFd(scope, 'pipe-w');
      return fc.tuple(fc.subarray([0x80000n, 0x4000n]), fc.boolean()).map(([bits, plain]) =>
        plain
          ? [call('pipe', [{ kind: 'pair' }], [r, w]), call('fcntl', [fdh(r), int(4), int(O_NONBLOCK)]), call('fcntl', [fdh(w), int(4), int(O_NONBLOCK)])]
          : [call('pipe2', [{ kind: 'pair' }, int(bits.reduce((a, b) => a | b, O_NONBLOCK))], [r, w])],
      );
    },
  },
  {
    weight: 1,
    build(scope) {
      const h = bindFd(scope, 'dev');
      return fc.constantFrom('/dev/null', '/dev/zero').map((p) => [call('openat', [int(AT_FDCWD), str(p), int(O_RDWR), int(0)], [h])]);
    },
  },
  {
    weight: 1,
    build(scope) {
      const h = bindFd(scope, 'dir');
      return fc.constant([call('openat', [int(AT_FDCWD), str('.'), int(0x10000), int(0)], [h])]);
    },
  },
  { weight: 14, build: (scope, ops) => one(fileCall(scope, ops)) },
  {
    // A mapping of a file at a fixed place in the arena, then accesses in it (and past the file's end).
    weight: 3,
    build(scope) {
      const files = scope.fds.filter((f) => f.kind !== 'pipe-r' && f.kind !== 'pipe-w');
      const fd = files.length ? fc.constantFrom(...files).map((f) => fdh(f.handle)) : fc.constant(int(3));
      return fc
        .tuple(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 1, max: 4 }), fc.constantFrom(1, 3, 0), fc.constantFrom(0x11, 0x12, 0x13, 0x3), fd, fc.constantFrom(0n, 0x1000n, 0x800n))
        .chain(([page, pages, prot, flags, f, off]) => {
          const base = BigInt(page) * PAGE;
          const touch = fc.tuple(fc.integer({ min: 0, max: pages * 0x1000 - 8 }), size, fc.boolean()).chain(([o, sz, st]) =>
            st
              ? valueOf(sz).map((value): SeqOp => ({ op: 'store', addr: { kind: 'A', off: base + BigInt(o) }, size: sz, value }))
              : fc.constant<SeqOp>({ op: 'load', addr: { kind: 'A', off: base + BigInt(o) }, size: sz }),
          );
          return fc.array(touch, { minLength: 1, maxLength: 3 }).map((touches) => [
            { op: 'mmap' as const, handle: 255, addr: { kind: 'A' as const, off: base }, len: BigInt(pages) * PAGE, prot, flags, fd: f, off },
            ...touches,
          ]);
        });
    },
  },
  {
    // vmsplice's reference: a store after the vmsplice shows in what the pipe gives, unless a fork made the page copy-on-write first.
    weight: 2,
    build(scope) {
      const r = scope.fds.filter((f) => f.kind === 'pipe-r').at(-1);
      const w = scope.fds.filter((f) => f.kind === 'pipe-w').at(-1);
      const h = scope.handles.at(-1);
      if (!r || !w || h === undefined) return fc.constant([]);
      const at = (off: number): Addr => ({ kind: 'H', handle: h, off: BigInt(off) });
      return fc.tuple(fc.integer({ min: 0, max: 0x1ff }), fc.bigInt({ min: 1n, max: 0xffffn }), fc.bigInt({ min: 1n, max: 0xffffn }), fc.integer({ min: 0, max: 2 })).map(([o8, v1, v2, forkMode]) => {
        const off = o8 * 8;
        const seq: SeqOp[] = [
          { op: 'store', addr: at(off), size: 8, value: v1 },
          call('vmsplice', [fdh(w.handle), { kind: 'iov', segs: [{ addr: at(off), len: 8n }] }, int(1), int(2)]),
        ];
        if (forkMode > 0) seq.push({ op: 'fork', child: forkMode === 1 ? [{ op: 'store', addr: at(off), size: 8, value: v2 + 1n }] : [] }, { op: 'wait' });
        seq.push(
          { op: 'store', addr: at(off), size: 8, value: v2 },
          call('read', [fdh(r.handle), { kind: 'addr', addr: at((off + 0x800) % 0x1000) }, int(8)]),
          { op: 'load', addr: at((off + 0x800) % 0x1000), size: 8 },
        );
        return seq;
      });
    },
  },
];

/**
 * The memory syscalls on arena addresses, good and bad: mlock, munlock, mlock2, madvise (the
 * advice the model has, and some it refuses alike), mincore (its vector in a bound region,
 * read back by a load), msync, and mremap in place or to a fixed arena address (where both
 * sides put it; never MREMAP_MAYMOVE alone, whose destination depends on each side's layout).
 */
function memoryCall(scope: Scope, ops: Ops): fc.Arbitrary<SeqOp> {
  // Mostly page-aligned places in bound regions, so that the calls find mappings.
  const mapped: fc.Arbitrary<Addr> = scope.handles.length
    ? fc.tuple(fc.constantFrom(...scope.handles), fc.integer({ min: 0, max: 3 })).map(([handle, p]): Addr => ({ kind: 'H', handle, off: BigInt(p) * PAGE }))
    : ops.addr();
  const a = (): fc.Arbitrary<CallArg> => fc.oneof({ weight: 3, arbitrary: mapped }, { weight: 1, arbitrary: ops.addr() }).map((addr) => ({ kind: 'addr' as const, addr }));
  const len = fc.constantFrom(0n, 1n, 0x1000n, 0x1fffn, 0x2000n, 0x5000n, 0xffffffffffffffffn);
  // KSM's and THP's advice (12..15) as both kernels have them configured; not MADV_COLLAPSE (the
  // model has no huge page to collapse into) nor MADV_HWPOISON and SOFT_OFFLINE (100, 101: the
  // host is built without CONFIG_MEMORY_FAILURE, Debian's 6.12 with it); 1024 is refused alike.
  const advice = fc.constantFrom(0n, 1n, 2n, 3n, 4n, 8n, 9n, 10n, 11n, 12n, 13n, 14n, 15n, 16n, 17n, 18n, 19n, 22n, 23n, 1024n);
  // mremap's destinations: above every address the other steps aim at (the arena's first 65 pages and
  // lengths), so a destination never overlaps the old range: for an unmapped old address 6.12 answers
  // -EFAULT before the overlap check, 6.17 -EINVAL after it.
  const arenaAddr = fc.integer({ min: 0, max: 15 }).map((p): CallArg => ({ kind: 'addr', addr: { kind: 'A', off: 0x100000n + BigInt(p) * PAGE } }));
  const choices: [number, fc.Arbitrary<SeqOp>][] = [
    [2, fc.tuple(a(), len).map(([x, n]) => call('mlock', [x, int(n)]))],
    [2, fc.tuple(a(), len).map(([x, n]) => call('munlock', [x, int(n)]))],
    [1, fc.tuple(a(), len, fc.constantFrom(0n, 1n, 2n)).map(([x, n, f]) => call('mlock2', [x, int(n), int(f)]))],
    [4, fc.tuple(a(), len, advice).map(([x, n, adv]) => call('madvise', [x, int(n), int(adv)]))],
    [2, fc.tuple(a(), len, fc.constantFrom(0n, 1n, 2n, 3n, 4n, 6n, 8n)).map(([x, n, f]) => call('msync', [x, int(n), int(f)]))],
    [
      3,
      fc
        // No MREMAP_MAYMOVE without MREMAP_FIXED: where a move would go depends on each side's
        // layout. The old range is one page (or none): 6.17 lets a move span several VMAs and the
        // gaps between them, where 6.12 (the model) refuses with -EFAULT.
        .tuple(a(), fc.constantFrom(0x1000n, 0x1000n, 0n), fc.constantFrom(0x1000n, 0x2000n, 0x4000n, 0n), fc.constantFrom(0n, 0n, 3n, 3n, 7n, 2n, 4n, 8n), arenaAddr)
        .map(([x, o, n, f, to]) => call('mremap', [x, int(o), int(n), int(f), (f & 2n) !== 0n ? to : int(0)])),
    ],
  ];
  return fc.oneof(...choices.map(([weight, arbitrary]) => ({ weight, arbitrary })));
}

/** mincore of a range into a bound region's page, then a load of the first bytes of the vector. */
const mincoreStep: Step = {
  weight: 1,
  build(scope, ops) {
    const h = scope.handles.at(-1);
    if (h === undefined) return fc.constant([]);
    const vec: Addr = { kind: 'H', handle: h, off: 0xf00n };
    return fc.tuple(ops.addr(), fc.constantFrom(0x1000n, 0x3000n, 0x8000n, 0n)).map(([x, n]) => [
      call('mincore', [{ kind: 'addr', addr: x }, int(n), { kind: 'addr', addr: vec }]),
      { op: 'load' as const, addr: vec, size: 8 as const },
    ]);
  },
};

/** The memory-call steps. */
const memorySteps: Step[] = [{ weight: 6, build: (scope, ops) => one(memoryCall(scope, ops)) }, mincoreStep];

// ---- brk, resource limits, /proc/self and userfaultfd steps ----
//
// Where the host cannot be matched these steps stay away: the host kernel is built without
// CONFIG_MEM_SOFT_DIRTY (so pagemap's soft-dirty bit is masked out, and clear_refs 4 is only
// checked for its result), pagemap's frame numbers are masked out, and UFFDIO_API's and
// UFFDIO_REGISTER's answers are masked to the features and ioctls the model offers (6.12 offers
// more: see userfaultfd.ts). Every UFFDIO_API that can succeed asks for UFFD_FEATURE_SIGBUS, so
// a fault in a registered range raises SIGBUS instead of waiting for a handler the sequence does
// not have. UFFDIO_UNREGISTER is made only while the process has one userfaultfd: 6.12 lets
// one context unregister a VMA another registered, a later kernel (the host's 6.18) refuses it
// with -EINVAL. Only private anonymous regions are registered (the model registers no shmem VMA), in
// the arena from A+200000 on, which the other steps never reach; only the first process uses
// the userfaultfd (a child's would act on its parent's mm). The limits never go so low that the
// oracle itself could not run (its stack is never grown), and nothing below the first program
// break is touched (the oracle's own data is there).

/** A userfaultfd region: a private anonymous mapping of REGION_PAGES pages at A+`off`, bound to `handle`. */
interface Region {
  handle: number;
  off: bigint;
}
const REGION_BASE = 0x200000n;
const REGION_PAGES = 4;
const REGION_HANDLE = 200;

/** RLIM_INFINITY. */
const INF = 0xffffffffffffffffn;
const ALL = 0xffffffffffffffffn;
/** pagemap bits compared: present, swap, file/shared, uffd-wp, exclusive (not soft-dirty, not the frame). */
const PAGEMAP_MASK = 0xff00000000000000n;
/** UFFDIO_API: the answer's features masked to those the model offers (PAGEFAULT_FLAG_WP, SIGBUS, THREAD_ID, EXACT_ADDRESS). */
const UFFD_MODEL_FEATURES = 0x981n;
/** UFFDIO_REGISTER's ioctls masked: not MOVE and POISON, which the model does not offer. */
const UFFD_RANGE_MASK = ~((1n << 5n) | (1n << 8n)) & ALL;

/** The host's permitted capabilities (the oracle's, and the model's once it has dropped what the host lacks), or null if unknown. */
function hostPermitted(): bigint | null {
  try {
    const m = /^CapPrm:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? BigInt('0x' + m[1]) & ((1n << 41n) - 1n) : null;
  } catch {
    return null;
  }
}
const HOST_PERMITTED = hostPermitted();
const CAP_IPC_LOCK = 14n;

/** A resource's limits to set: 0, a page, 8 MiB, 1 TiB, infinity; a soft one above the hard one now and then (-EINVAL). */
const limitValue = fc.constantFrom(0n, 0x1000n, 0x800000n, 0x10000000000n, INF);
const RESOURCES = [2n, 3n, 6n, 8n, 9n];
const resource = fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...RESOURCES) }, { weight: 1, arbitrary: fc.constantFrom(16n, 0xffffffffn, 0x100000003n) });
/** RLIMIT_AS's: never between a page and 1 TiB, where the host's address space (its libraries) and the model's differ in size. */
const asLimitValue = fc.constantFrom(0n, 0x1000n, 0x10000000000n, INF);
/** A resource and limits for it. */
const resourceLimits = resource.chain((r) => (r === 9n ? fc.tuple(asLimitValue, asLimitValue) : fc.tuple(limitValue, limitValue)).map(([cur, max]): [bigint, CallArg] => [r, { kind: 'words', words: [cur, max] }]));

/** An address in the heap: at or above the first program break. */
const heapOff = fc.constantFrom(0n, 0x8n, 0xff8n, 0x1000n, 0x1ffcn, 0x2000n, 0x4000n, 0x7ff8n, 0x10000n);
const brkArg = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(0n, 0x10n, 0x1000n, 0x1800n, 0x3000n, 0x8000n, 0x20000n, 0x100000n).map((off): Addr => ({ kind: 'B', off })) },
  { weight: 2, arbitrary: fc.constantFrom(-0x1000n, -0x10n, -0x200000n).map((off): Addr => ({ kind: 'B', off })) },
  { weight: 1, arbitrary: fc.constantFrom<Addr>({ kind: 'null' }, { kind: 'X', addr: 0x7ffffffff000n }, { kind: 'X', addr: 0xfffffffffffff000n }) },
);

/** Where /proc/self/mem and pagemap aim: regions, bound handles, the heap, the arena, far addresses. */
function procTarget(scope: Scope, ops: Ops): fc.Arbitrary<Addr> {
  const choices: { weight: number; arbitrary: fc.Arbitrary<Addr> }[] = [{ weight: 2, arbitrary: ops.addr() }, { weight: 2, arbitrary: heapOff.map((off): Addr => ({ kind: 'B', off })) }];
  if (scope.regions?.length) choices.push({ weight: 4, arbitrary: fc.tuple(fc.constantFrom(...scope.regions), fc.integer({ min: 0, max: REGION_PAGES * 0x1000 - 1 })).map(([r, o]): Addr => ({ kind: 'H', handle: r.handle, off: BigInt(o) })) });
  return fc.oneof(...choices);
}

/** An arena page whose absolute address is known (pagemap's position is computed from it): the bound regions' pages and the first 64 arena pages. */
function knownPage(scope: Scope): fc.Arbitrary<bigint> {
  const arena = fc.integer({ min: 0, max: 70 }).map((p) => BigInt(p) * PAGE);
  if (!scope.regions?.length) return arena;
  const region = fc.tuple(fc.constantFrom(...scope.regions), fc.integer({ min: 0, max: REGION_PAGES })).map(([r, p]) => r.off + BigInt(p) * PAGE);
  return fc.oneof(arena, region);
}

/** A userfaultfd range argument's words: a region's pages (aligned or not, some running past its end into the unmapped gap after it), or an unmapped range. */
function uffdRange(scope: Scope): fc.Arbitrary<[Addr, bigint]> {
  const regions = scope.regions ?? [];
  const inRegion = regions.length
    ? fc.tuple(fc.constantFrom(...regions), fc.integer({ min: 0, max: REGION_PAGES - 1 }), fc.constantFrom(0x1000n, 0x1000n, 0x2000n, 0x4000n, 0n, 0x800n, 0x5000n), fc.constantFrom(0n, 0n, 0n, 0x10n))
        .map(([r, p, len, mis]): [Addr, bigint] => [{ kind: 'H', handle: r.handle, off: BigInt(p) * PAGE + mis }, len])
    : fc.constant<[Addr, bigint]>([{ kind: 'A', off: REGION_BASE }, 0x1000n]);
  // Elsewhere: where nothing is mapped (the other steps' arena pages may hold a shared mapping,
  // which 6.12 registers as shmem and the model refuses).
  const elsewhere = fc.constantFrom(0x1000n, 0x2000n).map((len): [Addr, bigint] => [{ kind: 'A', off: REGION_BASE + 0x80000n }, len]);
  return fc.oneof({ weight: 6, arbitrary: inRegion }, { weight: 1, arbitrary: elsewhere });
}

const AT = (off: bigint): Addr => ({ kind: 'A', off });
const words = (ws: (bigint | Addr)[], mask?: bigint[]): CallArg => ({ kind: 'words', words: ws, mask });

/** A userfaultfd: the syscall, then UFFDIO_API with SIGBUS (or an API the kernel refuses); only in the first process. */
function uffdOps(scope: Scope): fc.Arbitrary<SeqOp[]> {
  if (scope.depth > 0) return fc.constant([]);
  const h = bindFd(scope, 'uffd');
  const flags = fc.constantFrom(0x80800n, 0x800n, 0n, 0x80000n, 1n);
  const api = fc.oneof(
    { weight: 6, arbitrary: fc.subarray([1n, 0x100n, 0x800n]).map((fs) => [0xaan, fs.reduce((a, b) => a | b, 0x80n)]) },
    { weight: 1, arbitrary: fc.constantFrom([0xabn, 0x80n], [0xaan, 0x80n | (1n << 30n)]) },
  );
  return fc.tuple(flags, api).map(([fl, [n, feat]]) => [
    call('userfaultfd', [int(fl)], [h]),
    call('ioctl', [fdh(h), int(0xc018aa3fn), words([n, feat, 0n], [ALL, UFFD_MODEL_FEATURES, ALL])]),
  ]);
}

/** A region for userfaultfd: a private anonymous mapping far from the other steps (at most six), with a store in it. */
function regionOps(scope: Scope): fc.Arbitrary<SeqOp[]> {
  if (!scope.regions) scope.regions = [];
  if (scope.regions.length >= 6) return fc.constant([]);
  const r: Region = { handle: REGION_HANDLE + scope.regions.length, off: REGION_BASE + BigInt(scope.regions.length) * 0x10000n };
  scope.regions.push(r);
  return fc.tuple(fc.integer({ min: 0, max: REGION_PAGES - 1 }), fc.bigInt({ min: 1n, max: 0xffffn })).map(([p, v]) => [
    { op: 'mmap' as const, handle: r.handle, addr: AT(r.off), len: BigInt(REGION_PAGES) * PAGE, prot: 3, flags: 0x32 },
    { op: 'store' as const, addr: { kind: 'H' as const, handle: r.handle, off: BigInt(p) * PAGE + 8n }, size: 8 as const, value: v },
  ]);
}

/**
 * A userfaultfd story on one region: a registration that can succeed (missing, write-protect or
 * both, on some of its pages), then accesses, UFFDIO_COPY, ZEROPAGE and WRITEPROTECT of its
 * pages, their pagemap entries and /proc/self/mem reads and writes of them, in any order.
 */
function uffdStoryOps(scope: Scope): fc.Arbitrary<SeqOp[]> {
  const regions = scope.regions ?? [];
  const uffds = scope.fds.filter((f) => f.kind === 'uffd');
  const pm = scope.fds.find((f) => f.kind === 'pagemap');
  const mem = scope.fds.find((f) => f.kind === 'mem');
  if (scope.depth > 0 || regions.length === 0 || uffds.length === 0) return fc.constant([]);
  return fc.tuple(fc.constantFrom(...regions), fc.constantFrom(...uffds), fc.integer({ min: 0, max: REGION_PAGES - 1 }), fc.integer({ min: 1, max: REGION_PAGES }), fc.constantFrom(1n, 2n, 3n)).chain(([r, u, p0, np, mode]) => {
    const pages = Math.min(np, REGION_PAGES - p0);
    const page = fc.integer({ min: p0, max: p0 + pages - 1 }).map((p) => BigInt(p) * PAGE);
    const at = (off: bigint): Addr => ({ kind: 'H', handle: r.handle, off });
    const f = fdh(u.handle);
    const src = fc.integer({ min: 0, max: 0x20 }).map((o): Addr => ({ kind: 'A', off: SAFE_OFF + BigInt(o) * 8n }));
    const next: fc.Arbitrary<SeqOp[]>[] = [
      fc.tuple(page, fc.integer({ min: 0, max: 0xff8 }), size, fc.boolean()).chain(([pg, o, sz, st]) =>
        st ? valueOf(sz).map((value): SeqOp[] => [{ op: 'store', addr: at(pg + BigInt(o)), size: sz, value }]) : fc.constant<SeqOp[]>([{ op: 'load', addr: at(pg + BigInt(o)), size: sz }]),
      ),
      fc.tuple(page, src, fc.constantFrom(0n, 0n, 2n, 1n), fc.constantFrom(0x1000n, 0x1000n, 0x2000n)).map(([pg, s, m, len]) => [call('ioctl', [f, int(0xc028aa03n), words([at(pg), s, len, m, 0n])])]),
      fc.tuple(page, fc.constantFrom(0n, 1n)).map(([pg, m]) => [call('ioctl', [f, int(0xc020aa04n), words([at(pg), 0x1000n, m, 0n])])]),
      fc.tuple(page, fc.constantFrom(1n, 1n, 0n)).map(([pg, m]) => [call('ioctl', [f, int(0xc018aa06n), words([at(pg), 0x1000n, m])])]),
      fc.tuple(page, fc.constantFrom(0, 1, 3)).map(([pg, prot]): SeqOp[] => [{ op: 'mprotect', addr: at(pg), len: PAGE, prot }]),
    ];
    if (uffds.length === 1) next.push(page.map((pg) => [call('ioctl', [f, int(0x8010aa01n), words([at(pg), 0x1000n])])]));
    if (pm) {
      next.push(fc.constant([call('pread64', [fdh(pm.handle), words(Array.from({ length: 4 }, () => 0n), Array.from({ length: 4 }, () => PAGEMAP_MASK)), int(32), int(((ARENA + r.off) >> 12n) * 8n)])]));
    }
    if (mem) {
      next.push(
        fc.tuple(page, fc.integer({ min: 0, max: 0x1f8 })).map(([pg, o]) => [call('pread64', [fdh(mem.handle), words([0n]), int(8), { kind: 'addr', addr: at(pg + BigInt(o) * 8n) }])]),
        fc.tuple(page, fc.integer({ min: 0, max: 0x1f8 }), fc.integer({ min: 0, max: 0x20 })).map(([pg, o, so]) => [
          call('pwrite64', [fdh(mem.handle), { kind: 'addr', addr: { kind: 'A', off: SAFE_OFF + BigInt(so) * 8n } }, int(8), { kind: 'addr', addr: at(pg + BigInt(o) * 8n) }]),
        ]),
      );
    }
    return fc.array(fc.oneof(...next), { minLength: 2, maxLength: 6 }).map((rest) => [
      call('ioctl', [f, int(0xc020aa00n), words([at(BigInt(p0) * PAGE), BigInt(pages) * PAGE, mode, 0n], [ALL, ALL, ALL, UFFD_RANGE_MASK])]),
      ...rest.flat(),
    ]);
  });
}

/**
 * A limit and what enforces it, as one story: RLIMIT_MEMLOCK of 0 or a page with CAP_IPC_LOCK
 * dropped, then mlock, mlock2 and a MAP_LOCKED mmap, the capability given back; RLIMIT_AS or
 * RLIMIT_DATA of 0 or a page, then mmap and brk growth, the limit lifted again; a mapping just
 * above the heap, then brk growing into it.
 */
function limitStoryOps(scope: Scope): fc.Arbitrary<SeqOp[]> {
  const where = scope.handles.length ? fc.constantFrom(...scope.handles).map((h): Addr => ({ kind: 'H', handle: h, off: 0n })) : arenaPage.map(AT);
  const grow = fc.tuple(arenaPage, fc.constantFrom(0x32, 0x31, 0x22, 0x2032), fc.constantFrom(1, 3), fc.constantFrom(0x1000n, 0x3000n, 0x8000n)).map(([off, flags, prot, brk]): SeqOp[] => [
    { op: 'mmap', handle: 255, addr: AT(off), len: 0x2000n, prot, flags },
    call('brk', [{ kind: 'addr', addr: { kind: 'B', off: brk } }]),
  ]);
  const stories: fc.Arbitrary<SeqOp[]>[] = [
    fc.tuple(fc.constantFrom(2n, 9n), fc.constantFrom(0n, 0x1000n), grow).map(([r, lim, g]) => [
      call('prlimit64', [int(0), int(r), words([lim, INF]), words([0n, 0n])]),
      ...g,
      call('setrlimit', [int(r), words([INF, INF])]),
    ]),
    fc.tuple(fc.constantFrom(0x2000n, 0x6000n, 0x10000n), fc.constantFrom(0x1000n, 0x2000n, 0x3000n, 0x8000n), fc.constantFrom(0x100022, 0x32)).map(([off, past, flags]): SeqOp[] => [
      call('brk', [{ kind: 'addr', addr: { kind: 'B', off: off - 0x1000n } }]),
      { op: 'mmap', handle: 255, addr: { kind: 'B', off }, len: 0x2000n, prot: 3, flags },
      call('brk', [{ kind: 'addr', addr: { kind: 'B', off: off + past } }]),
      { op: 'store', addr: { kind: 'B', off: off - 8n }, size: 8, value: 0x77n },
    ]),
  ];
  if (HOST_PERMITTED !== null) {
    const perm = HOST_PERMITTED;
    const capset = (eff: bigint): SeqOp => call('capset', [words([0x20080522n]), words([(eff & 0xffffffffn) | ((perm & 0xffffffffn) << 32n), (eff >> 32n) << 32n, perm >> 32n])]);
    stories.push(
      fc.tuple(fc.constantFrom(0n, 0x1000n, 0x2000n), where, fc.constantFrom(0x1000n, 0x2000n), arenaPage).map(([lim, a, n, off]) => [
        call('setrlimit', [int(8n), words([lim, 0x800000n])]),
        capset(perm & ~(1n << CAP_IPC_LOCK)),
        call('mlock', [{ kind: 'addr', addr: a }, int(n)]),
        call('mlock2', [{ kind: 'addr', addr: a }, int(n), int(1)]),
        { op: 'mmap' as const, handle: 255, addr: AT(off), len: 0x2000n, prot: 3, flags: 0x2032 },
        call('munlock', [{ kind: 'addr', addr: a }, int(n)]),
        capset(perm),
        call('setrlimit', [int(8n), words([0x800000n, 0x800000n])]),
      ]),
    );
  }
  return fc.oneof(...stories);
}

/** The proc family's steps. */
const procSteps: Step[] = [
  {
    // brk: grow, shrink, below the start, into a mapping; accesses in the heap.
    weight: 4,
    build() {
      const access = fc.tuple(heapOff, size, fc.boolean()).chain(([off, sz, st]) =>
        st ? valueOf(sz).map((value): SeqOp => ({ op: 'store', addr: { kind: 'B', off }, size: sz, value })) : fc.constant<SeqOp>({ op: 'load', addr: { kind: 'B', off }, size: sz }),
      );
      const mapInHeap = fc.tuple(fc.constantFrom(0x2000n, 0x6000n, 0x10000n, 0x21000n), fc.constantFrom(1, 3, 0), fc.constantFrom(0x100022, 0x100021, 0x32)).map(
        ([off, prot, flags]): SeqOp => ({ op: 'mmap', handle: 255, addr: { kind: 'B', off }, len: 0x2000n, prot, flags }),
      );
      const unmapInHeap = fc.constantFrom(0x2000n, 0x6000n, 0x10000n, 0x21000n).map((off): SeqOp => ({ op: 'munmap', addr: { kind: 'B', off }, len: 0x2000n }));
      return fc.oneof(
        { weight: 5, arbitrary: brkArg.map((a) => [call('brk', [{ kind: 'addr', addr: a }])]) },
        { weight: 4, arbitrary: fc.array(access, { minLength: 1, maxLength: 3 }) },
        { weight: 2, arbitrary: mapInHeap.map((o) => [o]) },
        { weight: 1, arbitrary: unmapInHeap.map((o) => [o]) },
      );
    },
  },
  {
    // getrlimit, setrlimit, prlimit64 of RLIMIT_DATA, STACK, NPROC, MEMLOCK and AS (and resources that do not exist).
    weight: 3,
    build() {
      const old = fc.constant(words([0n, 0n]));
      return fc.oneof(
        fc.tuple(resource, old).map(([r, o]) => [call('getrlimit', [int(r), o])]),
        resourceLimits.map(([r, n]) => [call('setrlimit', [int(r), n])]),
        fc
          .tuple(fc.constantFrom(0n, 0n, 0n, 0x7fffffffn), resourceLimits, fc.constantFrom<CallArg | null>(null, null, null, null, int(0), { kind: 'addr', addr: { kind: 'X', addr: 0xffff888000000000n } }), fc.oneof(old, fc.constant(int(0))))
          .map(([pid, [r, lim], n, o]) => [call('prlimit64', [int(pid), int(r), n ?? lim, o])]),
      );
    },
  },
  {
    // The limits' enforcement: mlock family and MAP_LOCKED (RLIMIT_MEMLOCK without CAP_IPC_LOCK), growing mappings (RLIMIT_AS, RLIMIT_DATA).
    weight: 2,
    build(scope) {
      const where = scope.handles.length ? fc.constantFrom(...scope.handles).map((h): Addr => ({ kind: 'H', handle: h, off: 0n })) : arenaPage.map(AT);
      const len = fc.constantFrom(0x1000n, 0x2000n, 0x3000n);
      const choices: fc.Arbitrary<SeqOp[]>[] = [
        fc.tuple(where, len).map(([a, n]) => [call('mlock', [{ kind: 'addr', addr: a }, int(n)])]),
        fc.tuple(where, len, fc.constantFrom(0n, 1n)).map(([a, n, f]) => [call('mlock2', [{ kind: 'addr', addr: a }, int(n), int(f)])]),
        fc.tuple(where, len).map(([a, n]) => [call('munlock', [{ kind: 'addr', addr: a }, int(n)])]),
        fc.tuple(arenaPage, fc.integer({ min: 1, max: 4 }), fc.constantFrom(1, 3), fc.constantFrom(0x2032, 0x2031, 0x32, 0x31, 0x22)).map(([off, pages, p, f]): SeqOp[] => [
          { op: 'mmap', handle: 255, addr: AT(off), len: BigInt(pages) * PAGE, prot: p, flags: f },
        ]),
      ];
      if (HOST_PERMITTED !== null) {
        // capset: CAP_IPC_LOCK out of the effective set, or back in.
        const perm = HOST_PERMITTED;
        choices.push(
          fc.boolean().map((drop) => {
            const eff = drop ? perm & ~(1n << CAP_IPC_LOCK) : perm;
            return [call('capset', [words([0x20080522n]), words([(eff & 0xffffffffn) | ((perm & 0xffffffffn) << 32n), (eff >> 32n) << 32n, perm >> 32n])])];
          }),
        );
      }
      return fc.oneof(...choices);
    },
  },
  {
    // Opening /proc/self files (descriptors that cannot fail).
    weight: 2,
    build(scope) {
      const which = fc.constantFrom<[FdKind, string, bigint]>(['mem', '/proc/self/mem', 2n], ['mem', '/proc/self/mem', 0n], ['pagemap', '/proc/self/pagemap', 0n], ['maps', '/proc/self/maps', 0n], ['clear_refs', '/proc/self/clear_refs', 1n]);
      return which.map(([kind, path, flags]) => {
        const h = bindFd(scope, kind);
        return [call('openat', [int(AT_FDCWD), str(path), int(flags), int(0)], [h])];
      });
    },
  },
  {
    // /proc/self/mem: pread64 into words, pwrite64 from the write buffer (FOLL_FORCE: read-only private mappings are written through a COW copy).
    weight: 4,
    build(scope, ops) {
      const mem = scope.fds.filter((f) => f.kind === 'mem');
      const fd = mem.length ? fc.constantFrom(...mem).map((f) => fdh(f.handle)) : fc.constant(int(-1));
      const pos = procTarget(scope, ops).map((addr): CallArg => ({ kind: 'addr', addr }));
      const n = fc.constantFrom(1n, 8n, 0x10n, 0x20n, 0x40n, 0n);
      const src = fc.tuple(fc.integer({ min: 0, max: 0x100 }), fc.constantFrom(1n, 8n, 0x10n, 0x1000n, 0x1001n, 0x2000n)).map(([o, c]): [CallArg, bigint] => [{ kind: 'addr', addr: { kind: 'A', off: SAFE_OFF + BigInt(o) } }, c]);
      return fc.oneof(
        fc.tuple(fd, n, pos).map(([f, c, p]) => [call('pread64', [f, words([0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n]), int(c), p])]),
        fc.tuple(fd, src, pos).map(([f, [b, c], p]) => [call('pwrite64', [f, b, int(c), p])]),
      );
    },
  },
  {
    // pagemap: entries of known pages, the frame masked out; and misaligned positions and counts.
    weight: 3,
    build(scope) {
      const pm = scope.fds.filter((f) => f.kind === 'pagemap');
      const fd = pm.length ? fc.constantFrom(...pm).map((f) => fdh(f.handle)) : fc.constant(int(-1));
      return fc.tuple(fd, knownPage(scope), fc.integer({ min: 1, max: 8 }), fc.constantFrom(0n, 0n, 0n, 0n, 4n), fc.constantFrom(0n, 0n, 0n, 4n)).map(([f, page, k, mispos, miscount]) => {
        const pos = ((ARENA + page) >> 12n) * 8n + mispos;
        return [call('pread64', [f, words(Array.from({ length: 8 }, () => 0n), Array.from({ length: 8 }, () => PAGEMAP_MASK)), int(BigInt(k) * 8n - miscount), int(pos)])];
      });
    },
  },
  {
    // clear_refs: each type, and ones it refuses; maps: the arena's lines.
    weight: 2,
    build(scope) {
      const cr = scope.fds.filter((f) => f.kind === 'clear_refs');
      const maps = scope.fds.filter((f) => f.kind === 'maps');
      const crFd = cr.length ? fc.constantFrom(...cr).map((f) => fdh(f.handle)) : fc.constant(int(-1));
      const mapsFd = maps.length ? fc.constantFrom(...maps).map((f) => fdh(f.handle)) : fc.constant(int(-1));
      return fc.oneof(
        fc.tuple(crFd, fc.constantFrom('1', '2', '3', '4', '4', '5', '6', '0', 'x', '04', '-1')).map(([f, v]) => [call('write', [f, str(v), int(v.length)])]),
        mapsFd.map((f) => [call('pread64', [f, { kind: 'text', len: 0x1000n }, int(0x1000), int(0)])]),
      );
    },
  },
  { weight: 2, build: (scope) => uffdOps(scope) },
  { weight: 2, build: (scope) => regionOps(scope) },
  { weight: 4, build: (scope) => uffdStoryOps(scope) },
  { weight: 2, build: (scope) => limitStoryOps(scope) },
  {
    // The userfaultfd ioctls on the regions, accesses and mprotect there.
    weight: 8,
    build(scope) {
      const regions = scope.regions ?? [];
      const uffds = scope.fds.filter((f) => f.kind === 'uffd');
      const access = regions.length
        ? fc.tuple(fc.constantFrom(...regions), fc.integer({ min: 0, max: REGION_PAGES * 0x1000 - 8 }), size, fc.boolean()).chain(([r, o, sz, st]) => {
            const addr: Addr = { kind: 'H', handle: r.handle, off: BigInt(o) };
            return st ? valueOf(sz).map((value): SeqOp[] => [{ op: 'store', addr, size: sz, value }]) : fc.constant<SeqOp[]>([{ op: 'load', addr, size: sz }]);
          })
        : fc.constant<SeqOp[]>([]);
      const protect = regions.length
        ? fc.tuple(fc.constantFrom(...regions), fc.integer({ min: 0, max: REGION_PAGES - 1 }), fc.constantFrom(0, 1, 3)).map(([r, p, prot]): SeqOp[] => [{ op: 'mprotect', addr: { kind: 'H', handle: r.handle, off: BigInt(p) * PAGE }, len: PAGE, prot }])
        : fc.constant<SeqOp[]>([]);
      if (scope.depth > 0 || uffds.length === 0) return fc.oneof(access, protect);
      const fd = fc.constantFrom(...uffds).map((f) => fdh(f.handle));
      const ioctl = (cmd: bigint, w: fc.Arbitrary<CallArg>): fc.Arbitrary<SeqOp[]> => fc.tuple(fd, w).map(([f, a]) => [call('ioctl', [f, int(cmd), a])]);
      const range = uffdRange(scope);
      const src = fc.integer({ min: 0, max: 0x20 }).map((o): Addr => ({ kind: 'A', off: SAFE_OFF + BigInt(o) * 8n }));
      return fc.oneof(
        { weight: 6, arbitrary: access },
        { weight: 1, arbitrary: protect },
        { weight: 4, arbitrary: ioctl(0xc020aa00n, fc.tuple(range, fc.constantFrom(1n, 2n, 3n, 3n, 1n, 2n, 4n, 0n, 8n)).map(([[a, n], mode]) => words([a, n, mode, 0n], [ALL, ALL, ALL, UFFD_RANGE_MASK]))) },
        ...(uffds.length === 1 ? [{ weight: 1, arbitrary: ioctl(0x8010aa01n, range.map(([a, n]) => words([a, n]))) }] : []),
        { weight: 3, arbitrary: ioctl(0xc028aa03n, fc.tuple(range, src, fc.constantFrom(0n, 0n, 1n, 2n, 4n)).map(([[a, n], s, mode]) => words([a, s, n, mode, 0n]))) },
        { weight: 2, arbitrary: ioctl(0xc020aa04n, fc.tuple(range, fc.constantFrom(0n, 1n, 2n)).map(([[a, n], mode]) => words([a, n, mode, 0n]))) },
        { weight: 3, arbitrary: ioctl(0xc018aa06n, fc.tuple(range, fc.constantFrom(1n, 1n, 0n, 2n, 3n, 4n)).map(([[a, n], mode]) => words([a, n, mode]))) },
        { weight: 1, arbitrary: ioctl(0x8010aa02n, range.map(([a, n]) => words([a, n]))) },
        { weight: 1, arbitrary: fd.map((f) => [call('close', [f])]) },
      );
    },
  },
];

/**
 * Sequences of brk, the resource limits (RLIMIT_DATA, STACK, NPROC, MEMLOCK, AS: get, set and
 * enforced), /proc/self (mem, pagemap, clear_refs, maps) and userfaultfd without a handler
 * (UFFD_FEATURE_SIGBUS) mixed with mmap, munmap, mprotect, accesses and fork: 6 to 16 top-level
 * steps, no execve.
 */
export const procSequenceArb: fc.Arbitrary<SeqOp[]> = fc.tuple(fc.integer({ min: 6, max: 16 }), fc.integer({ min: 0, max: 3 })).chain(([n, kit]) => {
  // The /proc/self files first: descriptor handles 0 to 3; then, three times in four, a region
  // and a userfaultfd with UFFD_FEATURE_SIGBUS (the steps build more of both).
  const scope: Scope = { handles: [], fds: [], depth: 0, regions: [] };
  const open: SeqOp[] = ([['mem', '/proc/self/mem', 2n], ['pagemap', '/proc/self/pagemap', 0n], ['maps', '/proc/self/maps', 0n], ['clear_refs', '/proc/self/clear_refs', 1n]] as const).map(([kind, path, flags]) =>
    call('openat', [int(AT_FDCWD), str(path), int(flags), int(0)], [bindFd(scope, kind)]),
  );
  const prelude = kit === 0 ? fc.constant(open) : fc.tuple(regionOps(scope), uffdOps(scope)).map(([r, u]) => [...open, ...r, ...u]);
  return prelude.chain((first) => processOps(scope, n, false, false, true).map((ops) => [...first, ...ops]));
});

/** One process's ops: `n` steps, with fork blocks (each followed by a wait); with `files`, the file, pipe and splice steps too. */
function processOps(scope: Scope, n: number, files = false, memory = false, proc = false): fc.Arbitrary<SeqOp[]> {
  const addr = (): fc.Arbitrary<Addr> => {
    const choices: fc.Arbitrary<Addr>[] = [arenaOff.map((off) => ({ kind: 'A' as const, off }))];
    if (scope.handles.length > 0) {
      choices.push(fc.tuple(fc.constantFrom(...scope.handles), fc.integer({ min: 0, max: 0x3fff })).map(([handle, off]) => ({ kind: 'H' as const, handle, off: BigInt(off) })));
    }
    choices.push(farAddr.map((a) => ({ kind: 'X' as const, addr: a })));
    return fc.oneof({ weight: 6, arbitrary: choices[0] }, ...choices.slice(1).map((c) => ({ weight: 2, arbitrary: c })));
  };
  const leaf: fc.Arbitrary<SeqOp> = fc.oneof(
    { weight: 3, arbitrary: fc.tuple(addr(), length, prot, flags).map(([a, len, p, f]) => ({ op: 'mmap' as const, handle: 255, addr: a, len, prot: p, flags: f })) },
    { weight: 3, arbitrary: fc.tuple(addr(), length).map(([a, len]) => ({ op: 'munmap' as const, addr: a, len })) },
    { weight: 4, arbitrary: fc.tuple(addr(), length, prot).map(([a, len, p]) => ({ op: 'mprotect' as const, addr: a, len, prot: p })) },
    { weight: 6, arbitrary: fc.tuple(addr(), size).map(([a, s]) => ({ op: 'load' as const, addr: a, size: s })) },
    { weight: 6, arbitrary: fc.tuple(addr(), size).chain(([a, s]) => valueOf(s).map((v) => ({ op: 'store' as const, addr: a, size: s, value: v }))) },
    { weight: 1, arbitrary: fc.constant({ op: 'getpid' as const }) },
    { weight: 1, arbitrary: fc.constant({ op: 'wait' as const }) },
  );
  const steps = [mmapStep, forkStep, leafStep, ...(files ? fileSteps : []), ...(memory ? memorySteps : []), ...(proc ? procSteps : [])];
  const total = steps.reduce((a, st) => a + st.weight, 0);
  const pick = (x: number): Step => {
    for (const st of steps) {
      if (x < st.weight) return st;
      x -= st.weight;
    }
    return leafStep;
  };
  const ops: Ops = { addr, leaf, files, memory, proc };
  return fc.array(fc.integer({ min: 0, max: total - 1 }), { minLength: n, maxLength: n }).chain((kinds) => {
    const here: Scope = { handles: [...scope.handles], fds: [...scope.fds], depth: scope.depth, regions: scope.regions && [...scope.regions] };
    const parts = kinds.map((kind) => pick(kind).build(here, ops));
    return fc.tuple(...parts).map((ps) => ps.flat());
  });
}

/** A whole sequence: 8 to 24 top-level steps, sometimes ending in execve with a few arena ops in the new image. */
export const sequenceArb: fc.Arbitrary<SeqOp[]> = fc
  .tuple(fc.integer({ min: 8, max: 24 }), fc.integer({ min: 0, max: 9 }))
  .chain(([n, e]) =>
    processOps({ handles: [], fds: [], depth: 0 }, n).chain((ops) =>
      e === 0 ? processOps({ handles: [], fds: [], depth: 1 }, 3).map((rest) => [...ops, { op: 'execve' as const, rest }]) : fc.constant(ops),
    ),
  );

/**
 * Sequences of files, pipes and splices mixed with the memory operations, fork and execve:
 * 6 to 16 top-level steps; after an execve only literal descriptors (the handles are gone,
 * the descriptors without O_CLOEXEC are not).
 */
export const fileSequenceArb: fc.Arbitrary<SeqOp[]> = fc
  .tuple(fc.integer({ min: 6, max: 16 }), fc.integer({ min: 0, max: 9 }))
  .chain(([n, e]) =>
    processOps({ handles: [], fds: [], depth: 0 }, n, true).chain((ops) =>
      e === 0 ? processOps({ handles: [], fds: [], depth: 1 }, 3, true).map((rest) => [...ops, { op: 'execve' as const, rest }]) : fc.constant(ops),
    ),
  );

/** Sequences of the memory syscalls (mlock, munlock, mlock2, madvise, mincore, msync, mremap) mixed with mmap, mprotect, accesses, fork and execve: 6 to 16 top-level steps. */
export const memorySequenceArb: fc.Arbitrary<SeqOp[]> = fc
  .tuple(fc.integer({ min: 6, max: 16 }), fc.integer({ min: 0, max: 9 }))
  .chain(([n, e]) =>
    processOps({ handles: [], fds: [], depth: 0 }, n, false, true).chain((ops) =>
      e === 0 ? processOps({ handles: [], fds: [], depth: 1 }, 3, false, true).map((rest) => [...ops, { op: 'execve' as const, rest }]) : fc.constant(ops),
    ),
  );

// ---- the signal family ----

/** The host CPU's flags (/proc/cpuinfo), for what the signal family draws. */
function hostCpuFlags(): string[] {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags'));
    return line ? line.split(':')[1].trim().split(/\s+/) : [];
  } catch {
    return [];
  }
}
const CPU_FLAGS = hostCpuFlags();
/** RDFSBASE and friends: drawn, and FS's and GS's bases printed, only when the host has them (the model's CPU follows, model.ts). */
export const HOST_FSGSBASE = CPU_FLAGS.includes('fsgsbase');
/** CPUID faulting: the model's CPU has it when the host has it (model.ts), so ARCH_SET_CPUID answers alike (0 with it, -ENODEV without). */
export const HOST_CPUID_FAULT = CPU_FLAGS.includes('cpuid_fault');

const SA_SIGINFO = 0x4n;
const SA_ONSTACK = 0x08000000n;
const SA_RESTART = 0x10000000n;
const SA_NODEFER = 0x40000000n;
const SA_RESETHAND = 0x80000000n;
/** The signals sent and caught: SIGUSR1, SIGUSR2, SIGALRM, SIGCHLD, and three real-time ones (queued). */
const ASYNC_SIGS = [10, 12, 14, 17, 32, 34, 40];
const sigbit = (n: number): bigint => 1n << BigInt(n - 1);
/**
 * The one signal whose handler may be `plain` (no SA_SIGINFO, so the signal number is only in
 * RDI), and never with SA_NODEFER: the highest drawn, so its frame is never set up under
 * another one. XXX: the model's frame does not save the handler's registers (RDI, RSI, RDX:
 * its $signo, $siginfo, $ucontext) for rt_sigreturn to restore, so a handler whose frame was
 * set up before a nested one starts with the later frame's; the other handlers read the frame
 * at their stack pointer instead, as the oracle's do through their arguments, which point
 * there.
 */
const PLAIN_SIG = 40;
const sig = (s: SigOp): SeqOp => ({ op: 'sig', s });

/**
 * The family's memory (bound in the parent before the fork): H0, 16 pages read-write that no
 * step protects (alternate stacks at H0+4000 and H0+8000, arch_prctl's cells at H0+100); H1,
 * 8 pages whose protection the steps change: the first 4 one by one, for the faults; the last 4
 * all at once, an alternate stack that may not be writable (the frames' size is the machine's:
 * the host's XSAVE image is larger than the model's, so frames lie elsewhere, and only a stack
 * of one protection gives a frame the same fate on both); H2, 2 pages of a shared memfd
 * mapping whose file is 1 page long (SIGBUS past it).
 */
const SIG_PRELUDE: SeqOp[] = [
  { op: 'mmap', handle: 0, addr: { kind: 'A', off: 0n }, len: 0x10000n, prot: 3, flags: 0x32 },
  { op: 'mmap', handle: 1, addr: { kind: 'A', off: 0x20000n }, len: 0x8000n, prot: 3, flags: 0x32 },
  call('memfd_create', [str('s'), int(0)], [0]),
  call('ftruncate', [fdh(0), int(0x1000)]),
  { op: 'mmap', handle: 2, addr: { kind: 'A', off: 0x30000n }, len: 0x2000n, prot: 3, flags: 0x11, fd: fdh(0), off: 0n },
];
const H = (handle: number, off: bigint): Addr => ({ kind: 'H', handle, off });
const X = (addr: bigint): Addr => ({ kind: 'X', addr });

/** Selectors MOV Sreg, LAR and friends are given: null ones, Linux's GDT entries (not CPUNODE's, whose limit is the CPU number), past the GDT, and the LDT's first four entries at RPL 3 and 0. */
const selector = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(0, 3, 0x10, 0x18, 0x23, 0x28, 0x2b, 0x33, 0x40, 0x50, 0x63, 0xfffb) },
  { weight: 4, arbitrary: fc.tuple(fc.integer({ min: 0, max: 3 }), fc.constantFrom(3, 3, 3, 0, 1)).map(([i, rpl]) => (i << 3) | 4 | rpl) },
);

/** The fault addresses: H1's pages (whose protection varies), H2's page past the file's end and its first, an unmapped arena page, kernel text, 0. */
const faultAddr = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(fc.integer({ min: 0, max: 3 }), fc.constantFrom(0n, 8n, 0x7f8n)).map(([p, o]) => H(1, BigInt(p) * PAGE + o)) },
  { weight: 2, arbitrary: fc.constantFrom(H(2, 0x1000n), H(2, 0x1008n), H(2, 0n)) },
  { weight: 1, arbitrary: fc.constantFrom<Addr>({ kind: 'A', off: 0x3f000n }, X(0xffffffff81000000n), { kind: 'null' }) },
);

const actionBits = fc.subarray([SA_ONSTACK, SA_ONSTACK, SA_RESETHAND, SA_NODEFER, SA_RESTART]);
const actionMask = fc.oneof({ weight: 3, arbitrary: fc.constant(0n) }, { weight: 1, arbitrary: fc.constantFrom(...ASYNC_SIGS, 11).map(sigbit) });

/** rt_sigaction of `handler` with `bits`: SA_SIGINFO for the handlers that read the siginfo, never for `plain`, as `info` says for SIG_DFL and SIG_IGN. */
function action(s: number, handler: SigHandler, bits: bigint[], info: boolean, mask: bigint): SeqOp {
  if (handler === 'plain') bits = bits.filter((b) => b !== SA_NODEFER);
  const siginfo = handler === 'rec' || handler === 'alt' || handler === 'jmp' || handler === 'fix' || ((handler === 'dfl' || handler === 'ign') && info);
  return sig({ what: 'action', sig: s, handler, flags: bits.reduce((a, b) => a | b, siginfo ? SA_SIGINFO : 0n), mask });
}

/** The child's first handlers (so that most sequences run past their first signal): SIGSEGV's and SIGBUS's, and some of the caught signals'. */
const firstActions: fc.Arbitrary<SeqOp[]> = fc
  .tuple(
    fc.subarray(ASYNC_SIGS).map((sigs) => [11, 7, ...sigs]),
    fc.array(fc.tuple(fc.constantFrom<SigHandler>('jmp', 'jmp', 'fix'), fc.constantFrom<SigHandler>('rec', 'rec', 'alt'), actionBits, actionMask), { minLength: 9, maxLength: 9 }),
  )
  .map(([sigs, picks]) => sigs.map((s, i) => action(s, s === 11 ? picks[i][0] : s === 7 ? 'jmp' : s === PLAIN_SIG ? 'plain' : picks[i][1], picks[i][2], true, picks[i][3])));

/**
 * Stories: several signals made pending while blocked, then unblocked at once (each delivery
 * nests a frame on the last: the handlers run in the reverse of the order they were chosen);
 * a handler put on an alternate stack and its signal sent.
 */
const sigStory: fc.Arbitrary<SeqOp[]> = fc.oneof(
  fc
    .tuple(
      fc.subarray(ASYNC_SIGS, { minLength: 2, maxLength: 3 }),
      fc.array(fc.tuple(fc.constantFrom<SigHandler>('rec', 'alt'), actionBits, actionMask), { minLength: 3, maxLength: 3 }),
      fc.array(fc.constantFrom<'kill' | 'tgkill'>('kill', 'tgkill'), { minLength: 4, maxLength: 4 }),
      fc.boolean(),
    )
    .map(([sigs, hs, sends, twice]) => {
      const set = sigs.reduce((a, x) => a | sigbit(x), 0n);
      return [
        ...sigs.map((x, i) => action(x, hs[i][0], hs[i][1], true, hs[i][2])),
        sig({ what: 'mask', how: 0, set }),
        ...sigs.map((x, i) => sig({ what: sends[i], sig: x })),
        ...(twice ? [sig({ what: sends[3], sig: sigs[0] })] : []),
        sig({ what: 'mask', how: 1, set }),
      ];
    }),
  fc
    .tuple(
      fc.constantFrom(...ASYNC_SIGS),
      fc.constantFrom<SigHandler>('rec', 'alt'),
      actionBits,
      fc.constantFrom<Addr>(H(0, 0x4000n), H(0, 0x8000n), H(1, 0x4000n)),
      fc.constantFrom(0n, 0n, 0x80000000n),
      fc.constantFrom<'kill' | 'tgkill'>('kill', 'tgkill'),
    )
    .map(([x, h, bits, sp, flags, send]) => [
      action(x, h, [SA_ONSTACK, ...bits], true, 0n),
      sig({ what: 'altstack', sp, size: 0x4000n, flags }),
      sig({ what: send, sig: x }),
      sig({ what: 'altstack', size: 0n, flags: 0n }),
    ]),
);

/** One step of the signal family. */
const sigStep: fc.Arbitrary<SeqOp[]> = fc.oneof(
  { weight: 4, arbitrary: sigStory },
  {
    // rt_sigaction: the caught signals with each handler, the fault signals with dfl, ign, jmp and fix, and signals it refuses.
    weight: 5,
    arbitrary: fc
      .tuple(
        fc.oneof(
          { weight: 6, arbitrary: fc.constantFrom(...ASYNC_SIGS).chain((s) => fc.tuple(fc.constant(s), fc.constantFrom<SigHandler>(...(s === PLAIN_SIG ? ['plain', 'plain', 'rec', 'dfl'] as const : ['rec', 'rec', 'alt', 'dfl', 'ign'] as const)))) },
          { weight: 3, arbitrary: fc.tuple(fc.constantFrom(11, 7), fc.constantFrom<SigHandler>('jmp', 'jmp', 'fix', 'dfl', 'ign')) },
          { weight: 1, arbitrary: fc.tuple(fc.constantFrom(0, 9, 19, 65), fc.constantFrom<SigHandler>('rec', 'dfl', 'ign')) },
        ),
        actionBits,
        fc.boolean(),
        actionMask,
      )
      .map(([[s, handler], bits, info, mask]) => [action(s, handler, bits, info, mask)]),
  },
  {
    // kill and tgkill of the caught signals (never SIGSEGV or SIGBUS, whose handlers jump), SIGKILL, 0 and a bad number.
    weight: 5,
    arbitrary: fc
      .tuple(fc.constantFrom<'kill' | 'tgkill'>('kill', 'tgkill'), fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...ASYNC_SIGS) }, { weight: 1, arbitrary: fc.constantFrom(0, 9, 65, -1) }))
      .map(([what, s]) => [sig({ what, sig: s })]),
  },
  {
    // sigprocmask: block, unblock (delivering what is pending), set; a bad `how`.
    weight: 3,
    arbitrary: fc
      .tuple(fc.constantFrom(0, 1, 2, 2, 3), fc.subarray([10, 12, 14, 34, 40, 11, 9]))
      .map(([how, sigs]) => [sig({ what: 'mask', how, set: sigs.reduce((a, s) => a | sigbit(s), 0n) })]),
  },
  {
    // Loads and stores that may fault (SIGSEGV MAPERR and ACCERR, SIGBUS ADRERR), and H1's protection changed.
    weight: 5,
    arbitrary: fc.oneof(
      { weight: 3, arbitrary: fc.tuple(fc.constantFrom<'load' | 'store'>('load', 'store'), faultAddr).map(([what, addr]) => [sig({ what, addr })]) },
      { weight: 2, arbitrary: fc.tuple(fc.integer({ min: 0, max: 3 }), fc.constantFrom(0, 1, 3)).map(([p, prot]): SeqOp[] => [{ op: 'mprotect', addr: H(1, BigInt(p) * PAGE), len: PAGE, prot }]) },
      { weight: 1, arbitrary: fc.constantFrom(0, 1, 3).map((prot): SeqOp[] => [{ op: 'mprotect', addr: H(1, 0x4000n), len: 0x4000n, prot }]) },
      {
        // A page made inaccessible or read-only, then an access to it (SEGV_ACCERR).
        weight: 3,
        arbitrary: fc
          .tuple(fc.integer({ min: 0, max: 3 }), fc.constantFrom(0, 1), fc.constantFrom<'load' | 'store'>('load', 'store'))
          .map(([p, prot, what]): SeqOp[] => [{ op: 'mprotect', addr: H(1, BigInt(p) * PAGE), len: PAGE, prot }, sig({ what, addr: H(1, BigInt(p) * PAGE + 0x10n) })]),
      },
    ),
  },
  {
    // sigaltstack: good stacks (H0's, H1's that may be protected), too small, unmapped, bad flags; and a query.
    weight: 4,
    arbitrary: fc.oneof(
      { weight: 1, arbitrary: fc.constant<SeqOp[]>([sig({ what: 'altstack', size: 0n, flags: 0n })]) },
      {
        weight: 5,
        arbitrary: fc
          .tuple(
            fc.constantFrom<Addr>(H(0, 0x4000n), H(0, 0x4000n), H(0, 0x8000n), H(1, 0x4000n), { kind: 'A', off: 0x40000n }),
            fc.constantFrom(0x4000n, 0x4000n, 0x100n, 0x7ffn, 0n),
            fc.constantFrom(0n, 0n, 0n, 2n, 1n, 0x80000000n, 0x80000000n, 4n, 0x80000002n),
          )
          .map(([sp, size, flags]) => [sig({ what: 'altstack', sp, size, flags })]),
      },
    ),
  },
  {
    // modify_ldt: writes of data, expand-down and code descriptors (present or not, 32- or 16-bit, byte or page granular), empty ones, bad ones; reads.
    weight: 3,
    arbitrary: fc
      .tuple(
        fc.constantFrom(1, 1, 0x11, 0x11, 0, 3),
        fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 0, max: 3 }) }, { weight: 1, arbitrary: fc.constant(8192) }),
        fc.constantFrom(0n, 0x1000n, 0xfffff000n),
        fc.constantFrom(0n, 0xfffn, 0xfffffn),
        fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 3 }), fc.boolean(), fc.boolean(), fc.constantFrom(false, false, true), fc.boolean(), fc.constantFrom(false, false, false, true)),
      )
      .map(([func, entry, base, limit, [b32, contents, rxo, pages, np, useable, lm]]) => [
        sig({ what: 'ldt', func, entry, base, limit, bits: (+b32) | (contents << 1) | (+rxo << 3) | (+pages << 4) | (+np << 5) | (+useable << 6) | (+lm << 7) }),
      ]),
  },
  {
    // MOV to DS, ES, FS, GS, SS (FS and GS only where the base can be read back), and LAR, LSL, VERR, VERW.
    weight: 5,
    arbitrary: fc.oneof(
      {
        weight: 3,
        arbitrary: fc
          .tuple(fc.constantFrom<'ds' | 'es' | 'fs' | 'gs' | 'ss'>(...(HOST_FSGSBASE ? (['ds', 'es', 'fs', 'gs', 'ss'] as const) : (['ds', 'es', 'ss'] as const))), selector)
          .map(([sreg, sel]) => [sig({ what: 'sreg', sreg, sel })]),
      },
      { weight: 2, arbitrary: selector.map((sel) => [sig({ what: 'lar', sel })]) },
    ),
  },
  {
    // arch_prctl: SET and GET of FS and GS with good and bad addresses, GET_CPUID, SET_CPUID (the model's CPU follows HOST_CPUID_FAULT), invalid codes; WRFSBASE, WRGSBASE.
    weight: 4,
    arbitrary: fc.oneof(
      {
        weight: 3,
        arbitrary: fc
          .tuple(fc.constantFrom(0x1001, 0x1002), fc.constantFrom<Addr>({ kind: 'A', off: 0x1000n }, { kind: 'null' }, X(0x7fffffffe000n), X(0x7ffffffff000n), X(0x800000000000n), X(0xffff888000000000n)))
          .map(([code, arg]) => [sig({ what: 'prctl', code, arg })]),
      },
      {
        weight: 2,
        arbitrary: fc
          .tuple(fc.constantFrom(0x1003, 0x1004), fc.constantFrom<Addr>(H(0, 0x100n), H(0, 0x100n), { kind: 'null' }, { kind: 'A', off: 0x40000n }, X(0xffffffff81000000n)))
          .map(([code, arg]) => [sig({ what: 'prctl', code, arg })]),
      },
      {
        weight: 1,
        arbitrary: fc
          .constantFrom(0x1011, 0x1012, 0x1000, 0x1005, 0xdead)
          .chain((code) => fc.constantFrom<Addr>({ kind: 'null' }, X(1n)).map((arg) => [sig({ what: 'prctl', code, arg })])),
      },
      ...(HOST_FSGSBASE
        ? [
            {
              weight: 2,
              arbitrary: fc
                .tuple(fc.constantFrom<'fs' | 'gs'>('fs', 'gs'), fc.constantFrom<Addr>({ kind: 'A', off: 0x1000n }, { kind: 'null' }, X(0xffff888000000000n), X(0x800000000000n), X(0x7ffffffff000n)))
                .map(([reg, value]) => [sig({ what: 'wrbase', reg, value })]),
            },
          ]
        : []),
    ),
  },
);

/**
 * Sequences of signals, sigaltstack, segments and arch_prctl: the family's memory, then a fork
 * whose child starts from `sig reset`, installs some handlers and takes 6 to 20 steps (a default action, or a fault
 * with SIGSEGV blocked or ignored, may end it: the parent's wait reports how), and the wait.
 */
export const signalSequenceArb: fc.Arbitrary<SeqOp[]> = fc
  .tuple(firstActions, fc.array(sigStep, { minLength: 6, maxLength: 20 }))
  .map(([first, steps]): SeqOp[] => [...SIG_PRELUDE, { op: 'fork', child: [sig({ what: 'reset' }), ...first, ...steps.flat()] }, { op: 'wait' }]);

// ---- the ptrace family ----

/**
 * A story of the ptrace family (native/oracle.c parse_ptr and do_ptr; model.ts compilePtr): the
 * parent forks a child that installs a SIGUSR2 handler, tells the parent it is ready, puts v1 in
 * R12, v2 in R13 and their XOR in RBX and makes its stopping syscall: with `traceme`,
 * PTRACE_TRACEME then kill(getpid(), SIGUSR1) (a signal-delivery stop); with `attach` or
 * `seize`, a pipe read the tracer attaches to (SIGSTOP's stop, or PTRACE_INTERRUPT's event
 * stop). The tracer then reads and writes its user area, registers and memory (POKEDATA of pv
 * into a read-only private page), gives DS the selector `sel` and PEEKUSERs `off`, and ends with
 * PTRACE_CONT or PTRACE_DETACH injecting `inj`, or PTRACE_KILL; the child records what it saw.
 */
export interface PtrOp {
  mode: 'traceme' | 'attach' | 'seize';
  inj: number;
  fin: 'cont' | 'detach' | 'kill';
  off: number;
  sel: number;
  v1: bigint;
  v2: bigint;
  pv: bigint;
}

/**
 * User-area offsets PEEKUSER draws: the registers the child set (R13, R12, RBX: the others hold
 * what the oracle's compiled code or the model's program left there, which differ by nature),
 * misaligned ones, u_fpvalid and u_fpstate (zero), the last word and sizeof(struct user)
 * (asm/user_64.h: 928), and DR6 and DR7 (u_debugreg at 848).
 */
const PTR_OFFSETS = [16, 24, 40, 3, 17, 215, 216, 800, 920, 928, 0xff8, 848 + 48, 848 + 56];
/** Selectors POKEUSER gives DS: null, kernel (RPL 0, -EIO), user data, an LDT one, one above 16 bits (cut to 16). */
const PTR_SELECTORS = [0, 0x10, 0x2b, 0x7, 0x1002b, 0x1ffff, 0x33];
const word64 = fc.oneof(fc.bigInt({ min: 0n, max: 0xffffffffffffffffn }), fc.constantFrom(0n, 1n, 0x7fffffffffffffffn, 0x8000000000000000n));

const ptrOp: fc.Arbitrary<PtrOp> = fc.record({
  mode: fc.constantFrom('traceme' as const, 'attach' as const, 'seize' as const),
  inj: fc.constantFrom(0, 0, 12, 15),
  fin: fc.constantFrom('cont' as const, 'cont' as const, 'detach' as const, 'kill' as const),
  off: fc.constantFrom(...PTR_OFFSETS),
  sel: fc.constantFrom(...PTR_SELECTORS),
  v1: word64,
  v2: word64,
  pv: word64,
});

/** An INT 0x80 operand: a number, the user_desc's address (below 4 GiB), or the pid with `hi` in the high half. */
export type I80Arg = { kind: 'int'; value: bigint } | { kind: 'D' } | { kind: 'P'; hi: bigint };
const i80int = (value: bigint): I80Arg => ({ kind: 'int', value });
/** struct user_desc's flag bits (asm/ldt.h): seg_32bit (bit 0), contents (bits 1-2), read_exec_only, limit_in_pages, seg_not_present (bit 5), useable, lm. */
const UD_32BIT = 1, UD_NOT_PRESENT = 32;

/**
 * A story of INT 0x80 and the thread area: getpid with EAX's high half set (only EAX counts),
 * an unknown number (-ENOSYS), kill of the pid with a high half in EBX (cut to 32 bits),
 * set_thread_area of a drawn user_desc (entry -1, a TLS entry 12..14, or a bad one), then
 * get_thread_area of its entry, modify_ldt's read (func 0) and an unknown func (-ENOSYS, RAX's
 * (unsigned int)), LAR/LSL/VERR/VERW of the entry's selector (`sig lar`; not of entry 15's),
 * and, when the entry
 * was set with a loadable descriptor (a 32-bit present data segment: what tls_desc_okay lets
 * through), its selector loaded into DS, ES, FS or GS (`sig sreg`: an unloadable one would fault,
 * which the oracle's sreg does not survive).
 */
const tlsStory: fc.Arbitrary<SeqOp[]> = fc
  .record({
    hi: fc.constantFrom(1n, 0xffffffffn, 0x80000000n),
    // EAX's high half: the model's int80 operation takes EAX as a JavaScript number (exact below 2^53).
    nrHi: fc.constantFrom(1n, 0x10000n, 0x1fffffn),
    unknown: fc.constantFrom(9999n, 0xffffffffn, 0x80000000n),
    entry: fc.constantFrom(0xffffffff, 12, 13, 14, 14, 5, 15),
    base: fc.oneof(fc.constantFrom(0, 0x1000, 0xfffff000), fc.integer({ min: 0, max: 0xffffffff })),
    limit: fc.oneof(fc.constantFrom(0, 0xfff, 0xfffff), fc.integer({ min: 0, max: 0xfffff })),
    flags: fc.oneof(fc.constantFrom(0x51, 0x41, 0x53, 0x01, 0x28, 0x00), fc.integer({ min: 0, max: 0xff })),
    sreg: fc.constantFrom('ds' as const, 'es' as const, 'fs' as const, 'gs' as const),
  })
  .map(({ hi, nrHi, unknown, entry, base, limit, flags, sreg }): SeqOp[] => {
    const ops: SeqOp[] = [
      { op: 'i80', nr: (nrHi << 32n) | 20n, args: [i80int(0n), i80int(0n), i80int(0n)] },
      { op: 'i80', nr: unknown, args: [i80int(0n), i80int(0n), i80int(0n)] },
      { op: 'i80', nr: 37n, args: [{ kind: 'P', hi }, i80int(0n), i80int(0n)] },
      { op: 'i80', nr: 243n, args: [{ kind: 'D' }, i80int(0n), i80int(0n)], desc: [entry, base, limit, flags] },
      { op: 'i80', nr: 244n, args: [{ kind: 'D' }, i80int(0n), i80int(0n)], desc: [entry === 0xffffffff ? 12 : entry, 0, 0, 0] },
      { op: 'i80', nr: 123n, args: [i80int(0n), { kind: 'D' }, i80int(16n)], desc: [0, 0, 0, 0] },
      { op: 'i80', nr: 123n, args: [i80int(5n), i80int(0n), i80int(0n)] },
    ];
    const sel = (entry === 0xffffffff ? 12 : entry) * 8 + 3;
    // Entry 15 is the GDT's CPUNODE entry, whose limit is the CPU the oracle happens to run on.
    if (sel !== 15 * 8 + 3) ops.push(sig({ what: 'lar', sel }));
    const loadable = entry >= 12 && entry <= 14 && (flags & UD_32BIT) !== 0 && ((flags >> 1) & 3) <= 1 && (flags & UD_NOT_PRESENT) === 0;
    if (loadable) ops.push(sig({ what: 'sreg', sreg, sel }));
    return ops;
  });

/** Sequences of the ptrace family: one to three ptrace stories or INT 0x80 and thread-area stories, one after another in the same process. */
export const ptraceSequenceArb: fc.Arbitrary<SeqOp[]> = fc
  .array(fc.oneof({ weight: 2, arbitrary: ptrOp.map((p): SeqOp[] => [{ op: 'ptr', p }]) }, { weight: 1, arbitrary: tlsStory }), { minLength: 1, maxLength: 3 })
  .map((stories) => stories.flat());
