/**
 * The JSON Schema of scenario files (draft-07, for editors and for validation). It is built from
 * the tables the model already has (the syscall table's parameter names, the CPU model's
 * options, KERNEL_OPTION_SPECS, the UAPI names, the invariants), so it cannot drift from them;
 * `npm run schema` writes it to schema/scenario.schema.json and a test keeps that file current.
 */
import { DEFAULT_CPU_MODEL } from '../hw/features.js';
import { KERNEL_OPTION_SPECS, type OptionSpec } from '../kernel/options.js';
import { syscallEntries } from '../kernel/syscalls.js';
import { ia32SyscallEntries } from '../kernel/syscall_32.js';
import { ERRNO_NAMES, SIGNAL_NAMES } from '../kernel/uapi.js';
import { EVENT_KINDS, EVENT_TYPES, type FilterKind } from './events.js';
import { INVARIANTS } from './invariants.js';

type Json = Record<string, unknown>;

/** The user operations that are not syscalls, and the bare-word ones. */
export const USER_OPS = ['load', 'store', 'fetch', 'set', 'repeat', 'while', 'until', 'join', 'work', 'syscall', 'call', 'wrpkru', 'rdpkru', 'wrss', 'rdssp', 'incssp', 'rstorssp', 'saveprevssp', 'cpuid', 'xgetbv', 'xsave', 'xsavec', 'xrstor', 'transient_load', 'mov_sreg', 'read_sreg', 'lar', 'lsl', 'verr', 'verw', 'rdfsbase', 'rdgsbase', 'wrfsbase', 'wrgsbase', 'int80', 'ljmp', 'lcall', 'lret'] as const;
export const WORD_OPS = ['return', 'longjmp', 'lret'] as const;
/** Keys an operation object may have besides its one operation key. */
export const OP_MODIFIERS = ['as', 'expect', 'note'] as const;
/** Syscalls whose operation also says what the child runs. */
export const FORKING_SYSCALLS = ['fork', 'vfork', 'clone'];

const CPU_DOCS: Record<string, string> = {
  la57: '5-level paging (CR4.LA57).',
  pcid: 'Process-context identifiers (CR4.PCIDE).',
  invpcid: 'The INVPCID instruction (needs pcid).',
  pge: 'Global pages (CR4.PGE).',
  nx: 'The execute-disable bit (EFER.NXE).',
  pdpe1gb: '1 GiB pages.',
  smep: 'Supervisor-mode execution prevention.',
  smap: 'Supervisor-mode access prevention (STAC/CLAC).',
  pku: 'Protection keys for user pages (PKRU).',
  pks: 'Protection keys for supervisor pages (needs pku).',
  fsgsbase: 'RDFSBASE, WRFSBASE, RDGSBASE, WRGSBASE (CR4.FSGSBASE), which Linux switches on when the CPU has them.',
  shstk: 'CET shadow stacks (a CPU with them cannot have dirty_on_readonly: legacy).',
  meltdown: 'The Meltdown bug: transient user loads ignore U/S.',
  maxphyaddr: 'Physical-address width in bits, 36 to 52.',
  dirty_on_readonly: 'strict: a write through a clean cached entry re-checks the entry in memory, so D is never set through a stale writable entry; legacy: such a write may set D in an entry made read-only meanwhile (seed 003).',
  tlb: 'TLB geometry: entries and ways for 4 KiB, 2 MiB and 1 GiB pages.',
};

const expr = { $ref: '#/definitions/expr' };
const ops = { $ref: '#/definitions/ops' };

function optionSchema(spec: OptionSpec): Json {
  switch (spec.kind) {
    case 'integer':
      return { type: 'integer', minimum: spec.min, ...(spec.max !== undefined ? { maximum: spec.max } : {}), default: spec.default, description: spec.doc };
    case 'boolean':
      return { type: 'boolean', default: spec.default, description: spec.doc };
    case 'enum':
      return { enum: [...spec.values], default: spec.default, description: spec.doc };
  }
}

function cpuSchema(): Json {
  const props: Json = {};
  for (const [name, v] of Object.entries(DEFAULT_CPU_MODEL)) {
    if (name === 'tlb') {
      const tlb: Json = {};
      for (const [k, d] of Object.entries(v as Record<string, number>)) tlb[k] = { type: 'integer', minimum: 1, default: d };
      props.tlb = { type: 'object', additionalProperties: false, properties: tlb, description: CPU_DOCS.tlb };
    } else if (typeof v === 'boolean') props[name] = { type: 'boolean', default: v, description: CPU_DOCS[name] };
    else if (name === 'maxphyaddr') props[name] = { type: 'integer', minimum: 36, maximum: 52, default: v, description: CPU_DOCS[name] };
    else props[name] = { enum: ['strict', 'legacy'], default: v, description: CPU_DOCS[name] };
  }
  return { type: 'object', additionalProperties: false, properties: props, description: 'CPU features and bugs; the rest take the defaults of a recent CPU.' };
}

/** One syscall's operation: its arguments by their SYSCALL_DEFINE names, plus the child for fork, vfork and clone. */
function syscallOpSchema(name: string, args: readonly string[]): Json {
  const props: Json = {};
  for (const a of args) props[a] = expr;
  if (FORKING_SYSCALLS.includes(name)) {
    props.name = { $ref: '#/definitions/name', description: 'The name of the child (process or thread), for expectations and the timeline.' };
    props.cpu = { type: 'integer', minimum: 0, description: 'The CPU the child starts on (default: the least loaded).' };
    props.ops = { ...ops, description: 'What the child runs; at the end it calls exit_group(0) (exit(0) for a CLONE_THREAD child).' };
  }
  return { type: ['object', 'null'], additionalProperties: false, properties: props, description: `${name}(${args.join(', ')})` };
}

/** JSON types of a filter kind's values. */
function filterTypes(kind: FilterKind): string[] {
  if (kind === 'boolean') return ['boolean'];
  if (kind === 'bit') return ['integer'];
  if (kind === 'integer') return ['integer'];
  if (kind === 'signal') return ['string', 'integer'];
  return ['string'];
}

/** One `expect.events` item: the kind, the count, and every kind's filters (compile.ts checks which apply to the kind). */
function eventExpectSchema(): Json {
  const fields = new Map<string, { types: Set<string>; kinds: string[] }>();
  for (const [type, spec] of Object.entries(EVENT_KINDS) as [string, { fields: Record<string, { kind: FilterKind }> }][]) {
    for (const [name, f] of Object.entries(spec.fields)) {
      const entry = fields.get(name) ?? { types: new Set<string>(), kinds: [] };
      for (const t of filterTypes(f.kind)) entry.types.add(t);
      entry.kinds.push(type);
      fields.set(name, entry);
    }
  }
  const count = { type: 'integer', minimum: 0 };
  const props: Json = {
    type: { enum: EVENT_TYPES, description: 'The event kind (src/hw/events.ts, src/kernel/events.ts).' },
    cpu: { type: 'integer', minimum: 0, description: 'Only events on this CPU (an IPI: its sender).' },
    thread: { $ref: '#/definitions/name', description: "Only events of this thread, process or child (a processor event: the task running on its CPU)." },
    at_least: { ...count, description: 'At least this many.' },
    exactly: { ...count, description: 'Exactly this many.' },
    at_most: { ...count, description: 'At most this many.' },
    note: { type: 'string', description: 'What the events show; printed with the verdict.' },
  };
  for (const [name, f] of [...fields].sort(([a], [b]) => a.localeCompare(b))) {
    const types = [...f.types];
    props[name] = { type: types.length === 1 ? types[0] : types, description: `A filter of ${f.kinds.join(', ')} events.` };
  }
  return { type: 'object', additionalProperties: false, required: ['type'], properties: props };
}

/** The scenario schema. */
/** A while or until loop: a condition, a body and a bound on its iterations. */
function loopSchema(description: string): Json {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['cond', 'ops'],
    properties: {
      cond: { $ref: '#/definitions/expr' },
      max: { type: ['integer', 'string'], minimum: 1, maximum: MAX_LOOP, description: `1 to ${MAX_LOOP} iterations (default ${DEFAULT_LOOP}), or a constant expression; more makes the loop give up, and its verdict fail` },
      ops,
    },
    description,
  };
}

/** The most iterations a while or until loop may be given, and its default bound. */
export const MAX_LOOP = 1_000_000;
export const DEFAULT_LOOP = 1000;

export function scenarioSchema(): Json {
  const opProps: Json = {
    as: { $ref: '#/definitions/name', description: 'Names the result: $name in later values.' },
    expect: { $ref: '#/definitions/opExpect' },
    note: { type: 'string', description: 'Shown in the timeline.' },
    load: { type: ['integer', 'string', 'object'], additionalProperties: false, required: ['addr'], properties: { addr: expr, size: { $ref: '#/definitions/size' } }, description: 'Load 1, 2, 4 or 8 bytes (default 8) from addr: an address, or {addr, size}.' },
    store: { type: 'object', additionalProperties: false, required: ['addr', 'value'], properties: { addr: expr, value: expr, size: { $ref: '#/definitions/size' } }, description: 'Store the low size bytes of value at addr.' },
    fetch: { type: ['integer', 'string', 'object'], additionalProperties: false, required: ['addr'], properties: { addr: expr }, description: 'Call the code at addr (an instruction fetch): an address, or {addr}.' },
    set: { type: 'object', minProperties: 1, propertyNames: { $ref: '#/definitions/name' }, additionalProperties: expr, description: 'Set variables.' },
    repeat: {
      type: 'object',
      additionalProperties: false,
      required: ['count', 'ops'],
      properties: { count: { type: ['integer', 'string'], minimum: 0, maximum: 100000, description: '0 to 100000, or a constant expression (params included)' }, index: { $ref: '#/definitions/name', description: 'A name for the iteration number (0, 1, ...) in the values of ops.' }, ops },
      description: 'Run ops count times.',
    },
    while: loopSchema('Run ops while cond is not 0, checked before each iteration, at most max times (default 1000): a loop in the program, each check an instruction.'),
    until: loopSchema('Run ops until cond is not 0, checked before each iteration, at most max times (default 1000): a loop in the program, each check an instruction.'),
    join: { $ref: '#/definitions/name', description: 'Wait, as pthread_join does, for a thread of the process\'s threads to exit: loop { t = its tid word; if t == 0 break; futex(word, FUTEX_WAIT, t) }; the word is zeroed and woken by the thread\'s exit (CLONE_CHILD_CLEARTID).' },
    work: { $ref: '#/definitions/expr', description: 'That many instructions of user work touching no memory (register arithmetic), as one operation: the work between a workload\'s syscalls and accesses.' },
    call: { $ref: '#/definitions/expr', description: 'CALL the function at an address (@name): pushes the return address on the stack, and on the shadow stack when it is on.' },
    wrpkru: { $ref: '#/definitions/expr', description: 'WRPKRU: PKRU = the value. No syscall and no TLB flush; #UD (SIGILL) without protection keys.' },
    rdpkru: { type: 'null', description: 'RDPKRU: PKRU is the result (name it with as).' },
    wrss: { type: 'object', additionalProperties: false, required: ['addr', 'value'], properties: { addr: expr, value: expr }, description: 'WRSSQ: an 8-byte shadow-stack write; #UD (SIGILL) unless ARCH_SHSTK_WRSS is on.' },
    rdssp: { type: 'null', description: 'RDSSPQ: the shadow-stack pointer is the result (name it with as); a no-op with shadow stacks off.' },
    incssp: { $ref: '#/definitions/expr', description: 'INCSSPQ: pops (value AND 0xff) entries off the shadow stack, reading the first and the last; #UD (SIGILL) with shadow stacks off.' },
    rstorssp: { $ref: '#/definitions/expr', description: 'RSTORSSP: SSP = the address, which must hold a restore token for it (it becomes a previous-ssp token); a bad token is #CP (SIGSEGV, SEGV_CPERR), an address not 8-aligned #GP.' },
    saveprevssp: { type: 'null', description: 'SAVEPREVSSP: pops the previous-ssp token RSTORSSP left and pushes a restore token for that SSP on the previous shadow stack; #GP (SIGSEGV) without one.' },
    cpuid: {
      type: ['integer', 'string', 'object'],
      additionalProperties: false,
      required: ['leaf'],
      properties: { leaf: expr, subleaf: expr },
      description: 'CPUID: a leaf (EAX), or {leaf, subleaf} (ECX, default 0). With as: NAME, the four registers are $NAME_eax, $NAME_ebx, $NAME_ecx and $NAME_edx.',
    },
    xgetbv: { $ref: '#/definitions/expr', description: 'XGETBV: the XCR numbered by the value (0: XCR0; 1: XCR0 AND XINUSE) is the result; #UD (SIGILL) without CR4.OSXSAVE, #GP (SIGSEGV) for another number.' },
    xsave: { $ref: '#/definitions/xsaveArea', description: 'XSAVE: the components in mask AND XCR0 to the area at addr, in the standard form.' },
    xsavec: { $ref: '#/definitions/xsaveArea', description: 'XSAVEC: the components in mask AND XCR0 that are in use to the area at addr, in the compacted form.' },
    xrstor: { $ref: '#/definitions/xsaveArea', description: 'XRSTOR: the components in mask AND XCR0 from the area at addr (PKRU too, as WRPKRU would); #GP (SIGSEGV) for a bad header.' },
    transient_load: { $ref: '#/definitions/expr', description: 'A Meltdown probe: a transient 8-byte load at the address with its fault suppressed; the result is what it read, or -1 when it read nothing.' },
    mov_sreg: { type: 'object', additionalProperties: false, required: ['sreg', 'value'], properties: { sreg: { enum: ['ds', 'es', 'fs', 'gs', 'ss'] }, value: expr }, description: 'MOV Sreg: load the selector value into DS, ES, FS, GS or SS with the processor\'s checks: #GP (SIGSEGV), #NP or #SS (SIGBUS).' },
    read_sreg: { enum: ['cs', 'ss', 'ds', 'es', 'fs', 'gs'], description: 'MOV r16, Sreg: the segment register\'s selector is the result (name it with as).' },
    lar: { $ref: '#/definitions/expr', description: 'LAR of a selector: the access rights (descriptor high word AND 0x00FFFF00) when ZF=1, -1 when ZF=0.' },
    lsl: { $ref: '#/definitions/expr', description: 'LSL of a selector: the segment limit in bytes when ZF=1, -1 when ZF=0.' },
    verr: { $ref: '#/definitions/expr', description: 'VERR of a selector: 1 if readable at this privilege (ZF=1), else 0.' },
    verw: { $ref: '#/definitions/expr', description: 'VERW of a selector: 1 if writable at this privilege (ZF=1), else 0.' },
    rdfsbase: { type: 'null', description: 'RDFSBASE: the FS base is the result (name it with as); #UD (SIGILL) without FSGSBASE.' },
    rdgsbase: { type: 'null', description: 'RDGSBASE: the GS base is the result (name it with as); #UD (SIGILL) without FSGSBASE.' },
    wrfsbase: { $ref: '#/definitions/expr', description: 'WRFSBASE: the FS base = the value; #UD (SIGILL) without FSGSBASE, #GP (SIGSEGV) for a non-canonical value.' },
    wrgsbase: { $ref: '#/definitions/expr', description: 'WRGSBASE: the GS base = the value; #UD (SIGILL) without FSGSBASE, #GP (SIGSEGV) for a non-canonical value.' },
    ljmp: { type: 'object', additionalProperties: false, required: ['sel', 'addr'], properties: { sel: expr, addr: expr, size: { enum: [4, 8], description: 'The operand size (default: 8 in 64-bit mode, 4 in compatibility mode).' } }, description: 'Far JMP: CS = sel (a code segment: 0x33 64-bit, 0x23 32-bit, or an LDT code entry), the ip = addr (@name). A CS with L=0 runs what follows in compatibility mode. Refused: #GP (SIGSEGV) or #NP (SIGBUS), err the selector.' },
    lcall: { type: 'object', additionalProperties: false, required: ['sel', 'addr'], properties: { sel: expr, addr: expr, size: { enum: [4, 8], description: 'The operand size (default: 8 in 64-bit mode, 4 in compatibility mode): the bytes of each push.' } }, description: 'Far CALL: pushes CS and the return address (8 bytes each in 64-bit mode, 4 in compatibility mode), then as ljmp.' },
    lret: { enum: [null, 4, 8], description: 'Far RET: pops the ip and CS (8 bytes each in 64-bit mode, 4 in compatibility mode, or the size given), with the checks of the CS it loads.' },
    int80: {
      type: 'object', additionalProperties: false, required: ['nr'],
      properties: { nr: { type: ['integer', 'string'], description: `EAX: a number (its low 32 bits count) or a 32-bit syscall name: ${ia32SyscallEntries().map((e) => e.name).join(', ')}.` }, args: { type: 'array', maxItems: 6, items: expr, description: 'EBX, ECX, EDX, ESI, EDI, EBP: each truncated to 32 bits.' } },
      description: 'INT 0x80: a 32-bit syscall through the IDT gate (the ia32 table; -ENOSYS for a number it lacks), returning by IRET; the result is sign-extended. With ia32_emulation off the gate is DPL 0: #GP (SIGSEGV, error code 0x402).',
    },
    syscall: { type: 'object', additionalProperties: false, required: ['nr'], properties: { nr: { type: ['integer', 'string'] }, args: { type: 'array', maxItems: 6, items: expr } }, description: 'A syscall by number or name with positional arguments.' },
  };
  for (const e of syscallEntries()) opProps[e.name] = syscallOpSchema(e.name, e.args);

  const signalNames = Object.values(SIGNAL_NAMES);
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: 'https://isolab.invalid/schema/scenario.schema.json',
    title: 'isolab scenario',
    description: 'An experiment for isolab: a machine, kernel options, processes and their operations, and what must happen. See docs/scenario-format.md.',
    type: 'object',
    additionalProperties: false,
    required: ['processes'],
    properties: {
      $schema: { type: 'string' },
      name: { type: 'string' },
      question: { type: 'string', description: 'The question the scenario answers.' },
      answer: { type: 'string', description: 'The answer, with {thread.var} and {thread.exit} filled in from the run.' },
      description: { type: 'string' },
      machine: {
        type: 'object',
        additionalProperties: false,
        properties: {
          cpus: { type: 'integer', minimum: 1, maximum: 64, default: 1 },
          memory: { type: ['integer', 'string'], minimum: 8388608, pattern: '^\\s*\\d+\\s*(KiB|MiB|GiB)\\s*$', description: 'Installed memory: bytes, or "64 MiB". Default 256 MiB.' },
          cpu: cpuSchema(),
        },
      },
      kernel: { type: 'object', additionalProperties: false, properties: Object.fromEntries(Object.entries(KERNEL_OPTION_SPECS).map(([k, s]) => [k, optionSchema(s)])) },
      schedule: {
        type: 'object',
        additionalProperties: false,
        properties: {
          policy: { enum: ['random', 'round-robin'], default: 'random' },
          seed: { type: 'integer', minimum: 0, maximum: 4294967295, default: 1 },
          max_steps: { type: 'integer', minimum: 1, default: 1000000 },
          steps: {
            type: 'array',
            // Only "not blank" here: the compiler reads each string with the explorer's parser
            // (parseSchedule), which names a bad token and knows every kind of item.
            items: { type: ['integer', 'string'], minimum: 0, pattern: '\\S' },
            description: 'A scripted start, in the schedule syntax `isolab explore` prints: each item is a CPU number (that CPU takes one step: one kernel-path or user step), "e<cpu>.<slot>" (the TLB entry in that slot of that CPU is evicted), "p<cpu>" (the task on that CPU is preempted), "p<cpu>><cpu>" (preempted and moved to the second CPU) or any other token of that syntax (docs/explore.md), each optionally followed by "*count"; a string may hold several, separated by commas ("0*120,1*17,p0>1"). The policy takes over after it.',
          },
        },
      },
      params: {
        type: 'object',
        propertyNames: { pattern: '^[A-Za-z_][A-Za-z0-9_]*$' },
        additionalProperties: { type: 'integer' },
        description: 'Parameters and their default values: names a value may use like a constant, set with --param name=value and swept by isolab sweep.',
      },
      sides: {
        type: 'object',
        minProperties: 2,
        propertyNames: { pattern: '^[A-Za-z][A-Za-z0-9_.-]*$' },
        additionalProperties: {
          type: 'object',
          additionalProperties: false,
          properties: {
            description: { type: 'string' },
            kernel: { type: 'object', additionalProperties: false, properties: Object.fromEntries(Object.entries(KERNEL_OPTION_SPECS).map(([k, s]) => [k, optionSchema(s)])) },
            profile: { type: 'string', pattern: '\\S', description: 'The cost profile to measure this side on (isolab compare; docs/measure.md).' },
          },
        },
        description: 'The sides of the debate the scenario is about, by name: kernel options over the scenario\'s, and a cost profile; isolab compare runs each and sets their counts and costs side by side.',
      },
      programs: { type: 'object', propertyNames: { pattern: '^/' }, additionalProperties: { $ref: '#/definitions/program' }, description: 'Images execve can load, by path.' },
      processes: { type: 'array', minItems: 1, items: { $ref: '#/definitions/process' } },
      expect: { $ref: '#/definitions/endExpect' },
    },
    definitions: {
      name: { type: 'string', pattern: '^[A-Za-z][A-Za-z0-9_]*$' },
      expr: { type: ['integer', 'string'], description: 'A number or an expression: PROT_READ|PROT_WRITE, 0x1000, $buf+8, @handler.' },
      size: { enum: [1, 2, 4, 8] },
      xsaveArea: {
        type: 'object',
        additionalProperties: false,
        required: ['addr'],
        properties: { addr: expr, mask: expr },
        description: 'The area at addr (64-byte aligned, or #GP: SIGSEGV) and mask, EDX:EAX, the components asked for (default all).',
      },
      signal: { enum: signalNames },
      ops: { type: 'array', items: { $ref: '#/definitions/op' } },
      op: {
        if: { type: 'string' },
        then: { enum: [...WORD_OPS, 'rdpkru', 'rdssp', 'saveprevssp', 'rdfsbase', 'rdgsbase', ...syscallEntries().map((e) => e.name)] },
        else: { title: 'operation', type: 'object', minProperties: 1, additionalProperties: false, properties: opProps },
      },
      opExpect: {
        type: ['integer', 'string', 'object'],
        additionalProperties: false,
        minProperties: 1,
        properties: {
          value: expr,
          errno: { enum: Object.values(ERRNO_NAMES) },
          signal: { $ref: '#/definitions/signal' },
          si_code: expr,
          si_addr: expr,
          si_pkey: expr,
          success: { type: 'boolean', description: 'true: no signal and no errno; false: a signal or an errno.' },
          not: expr,
          min: expr,
          max: expr,
          faulted: {
            type: 'object',
            additionalProperties: false,
            required: ['signal'],
            properties: { signal: { $ref: '#/definitions/signal' }, si_code: expr, si_addr: expr, si_pkey: expr },
            description: 'The operation first faulted with this signal (one or more times), and its handler returned to run it again: with then.',
          },
          then: { $ref: '#/definitions/opExpect' },
        },
        description: 'A value, or {value | not, min, max | errno | signal with si_code, si_addr, si_pkey | success | faulted, then}.',
      },
      functions: { type: 'object', propertyNames: { $ref: '#/definitions/name' }, additionalProperties: ops },
      program: { type: 'object', additionalProperties: false, required: ['ops'], properties: { ops, functions: { $ref: '#/definitions/functions' } } },
      process: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'ops'],
        properties: {
          name: { $ref: '#/definitions/name' },
          cpu: { type: 'integer', minimum: 0 },
          setup: { ...ops, description: 'Run by the main thread before it creates the threads; names defined here are every thread\'s.' },
          ops,
          functions: { $ref: '#/definitions/functions' },
          threads: {
            type: 'array',
            items: { type: 'object', additionalProperties: false, required: ['name', 'ops'], properties: { name: { $ref: '#/definitions/name' }, cpu: { type: 'integer', minimum: 0 }, ops } },
          },
          handlers: {
            type: 'object',
            propertyNames: { $ref: '#/definitions/signal' },
            additionalProperties: {
              type: 'object',
              additionalProperties: false,
              required: ['handler'],
              properties: { handler: { type: 'string' }, flags: expr, mask: { type: 'array', items: { $ref: '#/definitions/signal' } } },
            },
          },
        },
      },
      endExpect: {
        type: 'object',
        additionalProperties: false,
        properties: {
          exit: { type: 'object', additionalProperties: { anyOf: [{ type: 'integer', minimum: 0, maximum: 255 }, { $ref: '#/definitions/signal' }] }, description: 'Exit code or killing signal, by process name.' },
          memory: {
            type: 'array',
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['thread', 'addr'],
              properties: { thread: { $ref: '#/definitions/name' }, addr: expr, size: { $ref: '#/definitions/size' }, value: expr, mapped: { type: 'boolean' } },
            },
          },
          ptes: {
            type: 'array',
            description: "The page-table entry mapping addr in a thread's address space when it has finished its operations: each flag given must match (0 or 1).",
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['thread', 'addr'],
              properties: {
                thread: { $ref: '#/definitions/name' },
                addr: expr,
                present: { enum: [0, 1], description: 'P (0 also when no PTE exists).' },
                rw: { enum: [0, 1], description: 'R/W, bit 1.' },
                accessed: { enum: [0, 1], description: 'A, bit 5.' },
                dirty: { enum: [0, 1], description: 'D, bit 6.' },
                saved_dirty: { enum: [0, 1], description: "Linux's _PAGE_SAVED_DIRTY, bit 58." },
                pkey: { type: 'integer', minimum: 0, maximum: 15, description: 'The protection key, bits 62:59.' },
              },
            },
          },
          registers: {
            type: 'array',
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['thread'],
              properties: { thread: { $ref: '#/definitions/name' }, pkru: expr, vars: { type: 'object', additionalProperties: expr } },
            },
          },
          invariants: { type: 'array', items: { enum: Object.keys(INVARIANTS) } },
          events: { type: 'array', items: { $ref: '#/definitions/eventExpect' }, description: 'How many events of a kind the run emits (at least, exactly or at most), filtered by CPU, thread and the kind\'s own fields.' },
        },
      },
      eventExpect: eventExpectSchema(),
    },
  };
}
