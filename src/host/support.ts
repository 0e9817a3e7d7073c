/**
 * What of a scenario the host can run, and why not the rest. Three kinds of item, each named
 * with the place in the scenario file it comes from (file:line:col):
 * - blocking: the scenario's configuration differs from the host's by design (a kernel option
 *   that is not the upstream default, a CPU behaviour the host does not have, a pti setting
 *   that is not the host's): its results would differ for that reason, so nothing is run;
 * - skipped operations: an operation the host cannot run (a CPU feature it lacks, a model-only
 *   operation, a syscall whose meaning is isolab's layout or file system), and every operation
 *   that reads a variable one of them set: not run, their records not compared;
 * - notes: what is run but not reproduced exactly (more CPUs than the host has).
 * Decided from the compiled scenario alone, before anything runs.
 */
import { DEFAULT_CPU_MODEL } from '../hw/features.js';
import { DEFAULT_KERNEL_OPTIONS, type KernelOptions } from '../kernel/options.js';
import { IA32_SYSCALLS, ia32SyscallEntry } from '../kernel/syscall_32.js';
import type { SyscallEntry } from '../kernel/syscalls.js';
import { SA_SIGINFO } from '../kernel/uapi.js';
import { syscallByName, SYSCALLS } from '../kernel/syscalls.js';
import type { CompiledScenario } from '../scenario/compile.js';
import { issueAt, type Path } from '../scenario/load.js';
import { ProgramImage, type CFunction, type CValue, type Op } from '../user/program.js';
import { rtRefs, parseRtExpr } from '../user/rtexpr.js';
import type { HostFacts } from './facts.js';

/** One thing the host does not run (or not exactly), and where the scenario asks for it. */
export interface HostItem {
  /** file:line:col, or the path when the scenario did not come from a file. */
  where: string;
  /** The operation's label, or the configuration key. */
  what: string;
  reason: string;
}

export interface Support {
  blocking: HostItem[];
  notes: HostItem[];
  /** Skipped operations by opKey, with the reason. */
  skipped: Map<string, string>;
  /**
   * Operations whose result comes from the stack or the signal frame, or from values read
   * there (by opKey): the saved registers and addresses there are the host program's own, so a
   * difference in them is no divergence.
   */
  stackDerived: Set<string>;
  /** Stores of such a value into memory (by opKey): a later load of it may differ by nature. */
  stackStores: Set<string>;
  /** The images of the scenario's processes, laid out as isolab lays them out. */
  images: ProgramImage[];
}

/** The key of operation `index` of function `fn` of image `image`. */
export function opKey(image: string, fn: string, index: number): string {
  return `${image}\u0000${fn}\u0000${index}`;
}

/**
 * Kernel options that change only how the model schedules, checks or records, never what a
 * program sees; the others must keep their upstream default (mmap_min_addr: the host's value).
 */
export const NEUTRAL_OPTIONS: ReadonlySet<string> = new Set(['timeslice', 'preempt', 'tlb_single_page_flush_ceiling', 'nopcid', 'debug_vm', 'log', 'threads_max', 'entry_stack']);

/** Syscalls the host runs as they are: their meaning is the program's own (its memory, descriptors, signals, children). */
const HOST_SYSCALLS: ReadonlySet<string> = new Set([
  'read', 'write', 'close', 'fstat', 'lseek', 'mmap', 'mprotect', 'munmap', 'madvise', 'msync', 'mincore', 'rt_sigprocmask', 'ioctl', 'pread64', 'pwrite64',
  'pipe', 'pipe2', 'sched_yield', 'dup', 'dup2', 'dup3', 'getpid', 'gettid', 'fork', 'vfork', 'clone', 'wait4', 'waitid', 'kill', 'tgkill', 'futex',
  'set_tid_address', 'exit', 'exit_group', 'fcntl', 'ftruncate', 'getrlimit', 'setrlimit', 'prlimit64', 'capget', 'sigaltstack', 'mlock', 'munlock',
  'mlock2', 'mlockall', 'munlockall', 'modify_ldt', 'splice', 'tee', 'vmsplice', 'memfd_create', 'process_vm_readv', 'process_vm_writev', 'userfaultfd',
  'open', 'openat', 'pkey_alloc', 'pkey_free', 'pkey_mprotect',
]);

/** Why the host does not run these syscalls. */
export const SYSCALL_REASONS: Readonly<Record<string, string>> = Object.freeze({
  rt_sigaction: "its handler is an address in isolab's program layout, not the host program's",
  rt_sigreturn: 'it is made only by the signal trampoline',
  brk: "the program break is where the host binary's data ends, not isolab's",
  mremap: 'not generated yet',
  arch_prctl: "the FS and GS bases and the CET state are the host C library's",
  sched_setaffinity: "the CPU numbers are isolab's machine's, not the host's",
  sched_getaffinity: "the CPU numbers are isolab's machine's, not the host's",
  capset: 'it would change the capabilities of the host program',
  gettimeofday: "isolab's clock is its own (a microsecond per user operation), not the host's",
  time: "isolab's clock is its own (a microsecond per user operation), not the host's",
  clock_gettime: "isolab's clock is its own (a microsecond per user operation), not the host's",
  getcpu: "the CPU numbers are isolab's machine's, not the host's",
  map_shadow_stack: 'user shadow stacks are not generated yet',
});

/** Operations that are isolab's alone, or that the generator does not make yet, and why. */
export const OP_REASONS: Readonly<Record<string, string>> = Object.freeze({
  transient_load: 'a Meltdown probe with its fault suppressed is a model-only operation',
  fetch: 'on the host an instruction fetch would run the bytes at the address as code',
  call: "it calls an address in isolab's program layout",
  cpuid: "CPUID describes isolab's CPU model, not the host's processor",
  xgetbv: "XCR0 is isolab's CPU model's, not the host's",
  xsave: "the XSAVE layout is isolab's CPU model's, not the host's",
  xsavec: "the XSAVE layout is isolab's CPU model's, not the host's",
  xrstor: "the XSAVE layout is isolab's CPU model's, not the host's",
  rdfsbase: "the FS and GS bases are the host C library's",
  rdgsbase: "the FS and GS bases are the host C library's",
  wrfsbase: "the FS and GS bases are the host C library's",
  wrgsbase: "the FS and GS bases are the host C library's",
  ljmp: "a far transfer goes to an address in isolab's program layout",
  lcall: "a far transfer goes to an address in isolab's program layout",
  lret: "a far return goes to an address in isolab's program layout",
});

/** INT 0x80 numbers from here up (EAX's low 32 bits) are -ENOSYS on every kernel: past any ia32 table. */
const IA32_NONE = 0x1000;

/** The ia32 syscall an `int80` operation makes (by name, or by EAX's low 32 bits), if isolab's table has it. */
export function ia32Entry(name: string | number): SyscallEntry | undefined {
  return typeof name === 'string' ? ia32SyscallEntry(name) : IA32_SYSCALLS[Number(BigInt.asUintN(32, BigInt(name)))];
}

/** Shadow-stack instructions: they need ARCH_SHSTK_ENABLE, which arch_prctl gives, and user_shstk. */
const SHSTK_OPS: ReadonlySet<string> = new Set(['wrss', 'rdssp', 'incssp', 'rstorssp', 'saveprevssp']);

/** Paths a scenario may open on the host: the program's own /proc files and the harmless devices. */
export function hostPathAllowed(path: string): boolean {
  return path.startsWith('/proc/self/') || path === '/dev/null' || path === '/dev/zero';
}

/** The syscall name of a syscall operation. */
export function syscallName(name: string | number): string | undefined {
  if (typeof name === 'string') return SYSCALLS[syscallByName(name)]?.name ?? name;
  return SYSCALLS[name]?.name;
}

/** The `$names` an operand reads (`$rsp` and the handler's names included). */
export function valueRefs(v: CValue | null | undefined): string[] {
  if (!v) return [];
  if (v.kind === 1) return [v.name];
  if (v.kind === 4) return ['rsp'];
  if (v.kind === 5) return rtRefs(parseRtExpr(v.name)).filter((r) => r.ref[0] === '$').map((r) => r.ref.slice(1));
  return [];
}

/** True when an operand is, or reads, a function's address in isolab's text. */
function readsCode(v: CValue | null | undefined): boolean {
  if (!v) return false;
  if (v.kind === 2) return true;
  return v.kind === 5 && rtRefs(parseRtExpr(v.name)).some((r) => r.ref[0] === '@');
}

/** Every operand of operation `i` of `f`. */
export function operands(f: CFunction, i: number): (CValue | null)[] {
  return [f.addrs[i], f.values[i], ...(f.args[i] ?? [])];
}

/** The variable an operation sets, if any. */
export function setsVar(op: Op): string | undefined {
  switch (op.op) {
    case 'set':
      return op.var;
    case 'while':
      return op.counter;
    case 'load':
    case 'syscall':
    case 'rdpkru':
    case 'rdssp':
    case 'transient_load':
    case 'xgetbv':
    case 'read_sreg':
    case 'lar':
    case 'lsl':
    case 'verr':
    case 'verw':
    case 'rdfsbase':
    case 'rdgsbase':
      return op.into;
    default:
      return undefined;
  }
}

/** Offsets of the x86-64 struct rt_sigframe at a handler's entry rsp (arch/x86/include/asm/sigframe.h, uapi asm/sigcontext.h): the ucontext at 8, the siginfo at 312, 440 bytes in all. */
const UC_OFFSET = 8;
const SIGINFO_OFFSET = 312;
const RT_SIGFRAME_SIZE = 440;
/**
 * The parts of the frame that are the interrupted program's own, not the kernel's answer:
 * pretcode (the restorer's address), the general registers, rip and eflags in the sigcontext
 * (48 to 192), its fpstate pointer (232), and the FPU/XSAVE state beyond the frame.
 */
function programsOwn(offset: bigint): boolean {
  return offset < 8n || (offset >= 48n && offset < 192n) || (offset >= 232n && offset < 240n) || offset >= BigInt(RT_SIGFRAME_SIZE);
}

/**
 * True when a handler's load address is a frame field the kernel filled: $rsp, $frame,
 * $ucontext or $siginfo plus a constant, not the program's own part; the siginfo only for a
 * handler with SA_SIGINFO (without it the kernel copies none: the slot holds what the stack held).
 */
function frameFieldIsKernels(addr: CValue | null | undefined, siginfo: boolean): boolean {
  if (!addr) return false;
  const bases: Record<string, number> = { frame: 0, ucontext: UC_OFFSET, siginfo: SIGINFO_OFFSET };
  const base = addr.kind === 4 ? 0 : addr.kind === 1 ? bases[addr.name] : undefined;
  if (base === undefined) return false;
  const offset = BigInt(base) + addr.add;
  if (offset >= BigInt(SIGINFO_OFFSET) && offset < BigInt(RT_SIGFRAME_SIZE) && !siginfo) return false;
  return !programsOwn(offset);
}

/** The model's effective protection-key support: its CPU has PKU and the kernel does not say nopku. */
function modelPku(c: CompiledScenario): boolean {
  return (c.system.cpu?.pku ?? DEFAULT_CPU_MODEL.pku) && !(c.system.kernel?.nopku ?? DEFAULT_KERNEL_OPTIONS.nopku);
}

/** Decides what of `c` the host described by `facts` runs. */
export function hostSupport(c: CompiledScenario, facts: HostFacts): Support {
  const where = (path: Path, key = false): string => {
    const i = issueAt(c.locator, path, '', { key });
    return i.line !== undefined ? `${i.file}:${i.line}:${i.col}` : i.path;
  };
  const blocking: HostItem[] = [];
  const notes: HostItem[] = [];
  const kernel: Partial<KernelOptions> = c.system.kernel ?? {};
  for (const [key, value] of Object.entries(kernel)) {
    if (NEUTRAL_OPTIONS.has(key)) continue;
    const dflt = (DEFAULT_KERNEL_OPTIONS as unknown as Record<string, unknown>)[key];
    if (key === 'mmap_min_addr') {
      if (facts.mmapMinAddr !== null && value !== facts.mmapMinAddr) blocking.push({ where: where(['kernel', key], true), what: `kernel.${key}: ${String(value)}`, reason: `the host's vm.mmap_min_addr is ${facts.mmapMinAddr}` });
      continue;
    }
    if (key === 'pti') continue; // judged below, with the CPU's meltdown bug
    // nopku and nousershstk on a host whose CPU lacks the feature: both sides are without it.
    if (key === 'nopku' && value === true && !(facts.flags.has('pku') && facts.flags.has('ospke'))) continue;
    if (key === 'nousershstk' && value === true && !facts.flags.has('user_shstk')) continue;
    if (value !== dflt) blocking.push({ where: where(['kernel', key], true), what: `kernel.${key}: ${String(value)}`, reason: `not the upstream default (${String(dflt)}): the host kernel behaves as the default` });
  }
  const meltdown = c.system.cpu?.meltdown ?? DEFAULT_CPU_MODEL.meltdown;
  const pti = kernel.pti ?? 'auto';
  const modelPti = pti === 'on' || (pti === 'auto' && meltdown);
  if (facts.pti !== null && modelPti !== facts.pti) {
    // PTI changes the kernel's page tables, entry and exit, not what a program sees (a Meltdown probe, the one exception, is skipped): the records compare.
    const path: Path = kernel.pti !== undefined ? ['kernel', 'pti'] : ['machine', 'cpu', 'meltdown'];
    notes.push({ where: where(path, true), what: kernel.pti !== undefined ? `kernel.pti: ${pti}` : `machine.cpu.meltdown: ${String(meltdown)}`, reason: `isolab's kernel runs with page-table isolation ${modelPti ? 'on' : 'off'}, the host's ${facts.pti ? 'on' : 'off'}: it changes the kernel's page tables and entry, not what the program sees, so the records compare` });
  }

  const dirty = c.system.cpu?.dirty_on_readonly;
  if (dirty !== undefined && dirty !== DEFAULT_CPU_MODEL.dirty_on_readonly) {
    blocking.push({ where: where(['machine', 'cpu', 'dirty_on_readonly'], true), what: `machine.cpu.dirty_on_readonly: ${dirty}`, reason: "a CPU behaviour the host's processor does not have (its D-bit updates are strict)" });
  }
  if (c.system.script !== undefined) {
    notes.push({ where: where(['schedule', 'steps'], true), what: 'schedule.steps', reason: "the host cannot preempt inside its kernel where isolab's schedule does: the operations run in the order isolab's run completed them, and values that differ are reported as schedule-dependent" });
  }
  if ((c.system.cpus ?? 1) > facts.cpus) {
    notes.push({ where: where(['machine', 'cpus'], true), what: `machine.cpus: ${c.system.cpus}`, reason: `the host has ${facts.cpus} CPUs: the operations run in isolab's order, not on the CPUs the scenario places them on` });
  }

  // The processes' images, then the programs execve starts (`programs:`), each as isolab lays it out.
  const sources = [...c.processes.map((p) => ({ name: p.name, program: p.program })), ...c.images.map((x) => ({ name: x.path, program: x.program }))];
  const images = sources.map((x) => new ProgramImage(x.name, x.program));
  const stringOf = (img: ProgramImage, name: string): string | undefined => (sources.find((x) => x.name === img.name)?.program.strings ?? {})[name];
  const skipped = new Map<string, string>();
  const stackDerived = new Set<string>();
  const stackStores = new Set<string>();
  const hostPku = facts.flags.has('pku') && facts.flags.has('ospke');
  const pkuDiffers = hostPku !== modelPku(c);
  // Operations whose effect reaches everything after them: the host cannot run the rest without them.
  for (const img of images) {
    for (const f of img.functions) {
      f.ops.forEach((op, i) => {
        const info = c.ops.get(img.name, f.name, i);
        const at = info ? where(info.path) : `${img.name}: ${f.name}[${i}]`;
        const what = info?.label ?? `${f.name}[${i}]`;
        if (op.op === 'call') blocking.push({ where: at, what, reason: "it calls a function at its address in isolab's program layout (and returns through isolab's stack): what follows depends on it" });
        if (op.op !== 'syscall') return;
        const name = syscallName(op.name);
        const minAddr = kernel.mmap_min_addr ?? DEFAULT_KERNEL_OPTIONS.mmap_min_addr;
        const hint = name === 'mmap' ? f.args[i][0] : undefined;
        if (hint && hint.kind === 0 && facts.mmapMinAddr !== null && facts.mmapMinAddr !== minAddr && hint.constant !== 0n && hint.constant < BigInt(Math.max(minAddr, facts.mmapMinAddr))) {
          blocking.push({ where: at, what, reason: `an address below vm.mmap_min_addr on one side only: isolab's is ${minAddr}, the host's ${facts.mmapMinAddr}` });
        }
        if (name === 'ptrace') blocking.push({ where: at, what, reason: "its stops take the tracee out of the order of operations the host program keeps (ptrace is not generated yet)" });
        const prot = name === 'mmap' || name === 'mprotect' || name === 'pkey_mprotect' ? f.args[i][2] : undefined;
        if (pkuDiffers && prot && prot.kind === 0 && (prot.constant & 4n) !== 0n && (prot.constant & 1n) === 0n) {
          blocking.push({ where: at, what, reason: `PROT_EXEC without PROT_READ is execute-only memory on ${hostPku ? 'the host (protection keys) but not on isolab\'s CPU' : "isolab's CPU (protection keys) but readable on the host, whose CPU has no pku/ospke flags"}` });
        }
      });
    }
  }
  for (const img of images) {
    // Which operations the host cannot run in themselves, then, to a fixed point, those that read what they set.
    const tainted = new Map<string, string>();
    const own = (f: CFunction, i: number): string | undefined => {
      const op = f.ops[i];
      if (op.op in OP_REASONS) return OP_REASONS[op.op];
      if (SHSTK_OPS.has(op.op)) return facts.flags.has('user_shstk') ? 'user shadow stacks are not generated yet' : 'the host CPU has no user shadow stacks (no user_shstk flag)';
      if ((op.op === 'wrpkru' || op.op === 'rdpkru') && pkuDiffers) return hostPku ? "isolab's CPU has no protection keys and the host's has" : 'the host CPU has no protection keys (no pku/ospke flags)';
      if (op.op === 'mov_sreg' && (op.sreg === 'fs' || op.sreg === 'gs')) return "loading FS or GS replaces its base, which is the host C library's (FS: its thread pointer)";
      if (op.op === 'set' && op.var === 'rsp') return "the stack pointer is the C program's own";
      if ((op.op === 'mov_sreg' || op.op === 'read_sreg') && op.sreg === 'ss') return "the host program makes syscalls between operations (to report them), and each SYSRET puts __USER_DS back in SS";
      if (operands(f, i).some(readsCode)) return "it uses a function's address in isolab's program layout";
      if (op.op === 'int80') {
        // Only what isolab's ia32 table has: any other number is -ENOSYS on isolab and a real syscall on the host.
        if (ia32Entry(op.name) === undefined && (typeof op.name === 'string' || Number(BigInt.asUintN(32, BigInt(op.name))) < IA32_NONE)) {
          return `32-bit syscall ${String(op.name)} is not in isolab's ia32 table (-ENOSYS there), and the host's kernel may run it`;
        }
      }
      if (op.op === 'syscall') {
        const name = syscallName(op.name);
        if (name === undefined) return `syscall ${String(op.name)} is not one isolab models`;
        if (name.startsWith('pkey_') && pkuDiffers) return hostPku ? "isolab's CPU has no protection keys and the host's has" : 'the host CPU has no protection keys (no pku/ospke flags)';
        if (name === 'userfaultfd' && !facts.root && facts.unprivilegedUserfaultfd === false) return 'vm.unprivileged_userfaultfd is 0 and isolab host does not run as root';
        if (name === 'clone') {
          const flags = f.args[i][0];
          if (!flags || flags.kind !== 0) return 'clone with flags known only when it runs is not generated yet';
          if (op.child === undefined) return 'clone without a child to run is not generated';
        }
        if (name === 'open' || name === 'openat') {
          const arg = f.args[i][name === 'open' ? 0 : 1];
          const path = arg && arg.kind === 3 && img.stringAddr.has(arg.name) ? stringOf(img, arg.name) : undefined;
          if (path === undefined || !hostPathAllowed(path)) return `isolab's file system is not the host's (the host opens only /proc/self/..., /dev/null and /dev/zero)`;
        }
        if (name === 'execve') {
          // One of the scenario's programs: the host program executes itself into that image (cgen.ts exec_image).
          const arg = f.args[i][0];
          const path = arg && arg.kind === 3 && img.stringAddr.has(arg.name) ? stringOf(img, arg.name) : undefined;
          return path !== undefined && c.images.some((x) => x.path === path) ? undefined : "execve of a path that is not one of the scenario's programs: isolab's file system is not the host's";
        }
        if (!HOST_SYSCALLS.has(name)) return SYSCALL_REASONS[name] ?? `${name} is not run on the host`;
      }
      return undefined;
    };
    // __restore_rt is isolab's signal trampoline: the host's C library has its own.
    for (const f of img.functions.filter((x) => x.name !== '__restore_rt')) f.ops.forEach((_, i) => {
      const why = own(f, i);
      if (why !== undefined) skipped.set(opKey(img.name, f.name, i), why);
    });
    // What depends on the stack pointer or the frame the kernel built: $rsp, $frame, $siginfo, $ucontext, and what is set or loaded from them.
    // A handler's load of a frame field that is not the program's own (frameFieldIsOwn) compares exactly, and taints nothing.
    const installs = c.processes.find((p) => p.name === img.name)?.handlers ?? [];
    const handlers = new Map(installs.map((h) => [h.handler, (h.flags & SA_SIGINFO) !== 0]));
    const stack = new Set(['rsp', 'frame', 'siginfo', 'ucontext']);
    for (let changed = true; changed; ) {
      changed = false;
      for (const f of img.functions) {
        f.ops.forEach((op, i) => {
          if (op.op === 'load' && handlers.has(f.name) && frameFieldIsKernels(f.addrs[i], handlers.get(f.name)!)) return;
          if (!operands(f, i).flatMap(valueRefs).some((n) => stack.has(n))) return;
          stackDerived.add(opKey(img.name, f.name, i));
          if (op.op === 'store' && valueRefs(f.values[i]).some((n) => stack.has(n))) stackStores.add(opKey(img.name, f.name, i));
          const v = setsVar(op);
          if (v !== undefined && !stack.has(v)) {
            stack.add(v);
            changed = true;
          }
        });
      }
    }
    for (let changed = true; changed; ) {
      changed = false;
      for (const f of img.functions) {
        f.ops.forEach((op, i) => {
          const key = opKey(img.name, f.name, i);
          if (!skipped.has(key)) {
            const dep = operands(f, i).flatMap(valueRefs).find((n) => tainted.has(n));
            if (dep !== undefined) {
              skipped.set(key, `it reads $${dep}, ${tainted.get(dep)}`);
              changed = true;
            }
          }
          const v = skipped.has(key) ? setsVar(op) : undefined;
          if (v !== undefined && !tainted.has(v)) {
            const info = c.ops.get(img.name, f.name, i);
            tainted.set(v, `set by ${info ? `${info.label} (${where(info.path)})` : `${f.name}[${i}]`}, which the host does not run`);
            changed = true;
          }
        });
      }
    }
  }
  return { blocking, notes, skipped, stackDerived, stackStores, images };
}
