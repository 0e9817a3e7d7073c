/**
 * `isolab host` on small scenarios, run on this machine's kernel (host-checked: x86-64 Linux,
 * 6.18 where written). Each test reads the host program's own lines and checks them against what
 * Linux's code says (the expected values below come from the kernel sources named, not from
 * isolab's run), then that the comparison with isolab's run agrees.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hostRun, hostTestSkipReason } from './helpers.js';

const SKIP = hostTestSkipReason();
const opts = SKIP ? { skip: `isolab host cannot run here: ${SKIP}` } : {};

const EINVAL = 22;
const SIGSEGV = 11;
const SEGV_MAPERR = 1;
const SEGV_ACCERR = 2;

/** A negative errno as the 64-bit register value a syscall leaves. */
const neg = (errno: number): bigint => BigInt.asUintN(64, BigInt(-errno));

test('a value and an errno: the load sees the store; munmap of an unaligned address gives EINVAL', opts, async () => {
  const r = await hostRun(`
name: value-errno
processes:
  - name: p
    ops:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }
        as: buf
      - store: { addr: $buf, value: 0x1234 }
      - load: $buf
      - munmap: { addr: $buf+1, len: PAGE_SIZE }
`);
  assert.deepEqual(r.at('p', 'load'), { kind: 'V', value: 0x1234n });
  // mm/vma.c do_vmi_munmap: offset_in_page(start) -> -EINVAL.
  assert.deepEqual(r.at('p', 'munmap'), { kind: 'V', value: neg(EINVAL) });
  // The mapping is where isolab's mmap put it (MAP_FIXED_NOREPLACE).
  const mmap = r.plan.records[0];
  assert.deepEqual(r.host.records.get(0), { kind: 'V', value: BigInt.asUintN(64, mmap.record.value!) });
  assert.equal(r.host.exits.get(0), 'exit 0');
  assert.deepEqual(r.comparison.divergences, []);
  assert.equal(r.comparison.agreed, 5, 'four records and the exit status');
});

test('a signal: SEGV_ACCERR at a read-only page, SEGV_MAPERR at a hole, si_addr the address; the handler longjmps past each', opts, async () => {
  const r = await hostRun(`
name: signals
processes:
  - name: p
    handlers:
      SIGSEGV: { handler: on_segv, flags: SA_SIGINFO }
    functions:
      on_segv:
        - longjmp
    ops:
      - mmap: { len: 2*PAGE_SIZE, prot: PROT_READ, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }
        as: ro
      - store: { addr: $ro, value: 1 }
      - munmap: { addr: $ro+PAGE_SIZE, len: PAGE_SIZE }
      - load: $ro+PAGE_SIZE+8
      - load: $ro
`);
  const ro = BigInt.asUintN(64, r.plan.records[0].record.value!);
  // arch/x86/mm/fault.c: access_error() for the VMA without VM_WRITE -> bad_area_access_error (SEGV_ACCERR); no VMA -> bad_area (SEGV_MAPERR); si_addr the faulting address.
  assert.deepEqual(r.at('p', 'store'), { kind: 'S', signo: SIGSEGV, code: SEGV_ACCERR, addr: ro, known: 3 });
  assert.deepEqual(r.at('p', 'load [$ro+PAGE_SIZE'), { kind: 'S', signo: SIGSEGV, code: SEGV_MAPERR, addr: ro + 0x1008n, known: 3 });
  // Execution went on after each fault (siglongjmp): the last load ran and read the zero page.
  assert.deepEqual(r.at('p', 'load [$ro]'), { kind: 'V', value: 0n });
  assert.deepEqual(r.comparison.divergences, []);
  assert.equal(r.comparison.agreed, 6);
});

test('fork and wait4: the parent gets the child pid and the status word W_EXITCODE(3, 0); the child sees the parent memory', opts, async () => {
  const r = await hostRun(`
name: fork-wait
processes:
  - name: parent
    ops:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }
        as: buf
      - store: { addr: $buf, value: 5 }
      - fork:
          name: child
          ops:
            - load: $buf
            - exit: { error_code: 3 }
        as: pid
      - wait4: { upid: $pid, stat_addr: $buf+8 }
      - load: { addr: $buf+8, size: 4 }
`);
  const child = r.tid('child');
  assert.ok(child !== undefined && child > 0);
  assert.deepEqual(r.at('parent', 'fork'), { kind: 'V', value: BigInt(child) });
  assert.deepEqual(r.at('child', 'load'), { kind: 'V', value: 5n });
  // kernel/exit.c wait_task_zombie: status = (exit_code << 8) for an exit: 3 << 8.
  assert.deepEqual(r.at('parent', 'wait4'), { kind: 'V', value: BigInt(child) });
  assert.deepEqual(r.at('parent', 'load 4 [$buf+8]'), { kind: 'V', value: 0x300n });
  assert.equal(r.host.exits.get(r.plan.tasks.find((t) => t.name === 'child')!.idx), 'exit 3');
  assert.deepEqual(r.comparison.divergences, []);
});

test('a fault without a handler kills the process: SIGSEGV recorded, then the wait status says killed by SIGSEGV', opts, async () => {
  const r = await hostRun(`
name: die
processes:
  - name: p
    ops:
      - load: 0x10
      - getpid
`);
  // No VMA below mmap_min_addr: SEGV_MAPERR at 0x10; the default action of SIGSEGV ends the process (the getpid never runs).
  assert.deepEqual(r.at('p', 'load'), { kind: 'S', signo: SIGSEGV, code: SEGV_MAPERR, addr: 0x10n, known: 3 });
  assert.equal(r.host.exits.get(0), 'killed by SIGSEGV');
  assert.deepEqual(r.comparison.divergences, []);
  assert.equal(r.comparison.agreed, 2);
});

test('threads: a clone(CLONE_VM|CLONE_THREAD...) thread sees the store before it and faults after munmap, in isolab order', opts, async () => {
  const r = await hostRun(`
name: threads
machine:
  cpus: 2
processes:
  - name: w
    cpu: 0
    handlers:
      SIGSEGV: { handler: on_segv }
    functions:
      on_segv:
        - longjmp
    setup:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }
        as: buf
      - store: { addr: $buf, value: 42 }
    threads:
      - name: t
        cpu: 1
        ops:
          - load: $buf
          - repeat: { count: 30, ops: [ getpid ] }
          - load: $buf
    ops:
      - repeat: { count: 10, ops: [ getpid ] }
      - munmap: { addr: $buf, len: PAGE_SIZE }
      - repeat: { count: 40, ops: [ getpid ] }
`);
  const buf = BigInt.asUintN(64, r.plan.records[0].record.value!);
  assert.deepEqual(r.at('t', 'load'), { kind: 'V', value: 42n });
  // After munmap returned (its TLB shootdown done), the thread's load finds no VMA: SEGV_MAPERR.
  // The handler has no SA_SIGINFO: the kernel copies no siginfo, so the host knows the signal and the page fault's address (the frame's cr2), not si_code.
  assert.deepEqual(r.at('t', 'load', 1), { kind: 'S', signo: SIGSEGV, code: 0, addr: buf, known: 2 });
  // getpid in a thread gives the group's pid: the leader's tid on the host.
  assert.deepEqual(r.at('t', 'getpid'), { kind: 'V', value: BigInt(r.tid('w')!) });
  assert.deepEqual(r.comparison.divergences, []);
});

test('a handler that fixes the page and returns: the store runs again and completes; a child that kills itself; pid -1 is refused', opts, async () => {
  const r = await hostRun(`
name: retry
processes:
  - name: p
    handlers:
      SIGSEGV: { handler: fix, flags: SA_SIGINFO }
    functions:
      fix:
        - mprotect: { start: $si_addr & ~0xfff, len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE }
        - return
    ops:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }
        as: buf
      - store: { addr: $buf+8, value: 9 }
      - load: $buf+8
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_SHARED|MAP_ANONYMOUS, fd: -1 }
        as: sh
      - fork:
          name: c
          ops:
            - store: { addr: $sh, value: 77 }
            - getpid:
              as: me
            - kill: { pid: $me, sig: SIGKILL }
        as: pid
      - wait4: { upid: $pid, stat_addr: $sh+8 }
      - load: $sh
      - load: { addr: $sh+8, size: 4 }
      - kill: { pid: -1, sig: 0 }
`);
  const buf = BigInt.asUintN(64, r.plan.records[0].record.value!);
  assert.deepEqual(r.at('p', 'store'), { kind: 'S', signo: SIGSEGV, code: SEGV_ACCERR, addr: buf + 8n, known: 3 });
  // The handler's mprotect, then the store again (a second record of the same operation), which completes.
  assert.deepEqual(r.at('p', 'mprotect'), { kind: 'V', value: 0n });
  assert.deepEqual(r.at('p', 'store', 1), { kind: 'N' });
  assert.deepEqual(r.at('p', 'load [$buf+8]'), { kind: 'V', value: 9n });
  // MAP_SHARED: the child's store reaches the parent; the child died of its own SIGKILL (status 9: WTERMSIG, no core).
  assert.deepEqual(r.at('p', 'load [$sh]'), { kind: 'V', value: 77n });
  assert.deepEqual(r.at('p', 'load 4 [$sh+8]'), { kind: 'V', value: 9n });
  assert.deepEqual(r.at('c', 'kill'), { kind: 'P' }, 'the child died before it could write kill\'s value');
  assert.equal(r.at('p', 'kill')?.kind, 'X', 'kill(-1) is not sent on the host');
  assert.deepEqual(r.comparison.divergences, []);
  assert.ok(r.comparison.notComparable.some((n) => /kill\(pid=-1, sig=0\).*/.test(n.what) && /pid -1 is not one of the host program's tasks/.test(n.reason)));
});

test("the signal frame at a handler's $rsp: uc_flags, cs, ss, err, trapno and cr2 compare exactly; the saved rsp is the host program's own", opts, async () => {
  const r = await hostRun(`
name: frame
processes:
  - name: p
    handlers:
      SIGSEGV: { handler: h, flags: SA_SIGINFO }
    functions:
      h:
        - load: $rsp+8
        - load: { addr: $rsp+192, size: 2 }
        - load: { addr: $rsp+198, size: 2 }
        - load: $rsp+200
        - load: $rsp+208
        - load: $rsp+224
        - load: $rsp+168
        - load: { addr: $siginfo+8, size: 4 }
        - longjmp
    ops:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }
        as: ro
      - store: { addr: $ro+16, value: 1 }
`);
  const ro = BigInt.asUintN(64, r.plan.records[0].record.value!);
  const v = (label: string): bigint | undefined => {
    const x = r.at('p', label);
    return x?.kind === 'V' ? x.value : undefined;
  };
  // arch/x86/kernel/signal_64.c frame_uc_flags: UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS on an XSAVE CPU.
  assert.equal(v('load [$rsp+8]'), 7n);
  assert.equal(v('load 2 [$rsp+192]'), 0x33n, 'cs: __USER_CS');
  assert.equal(v('load 2 [$rsp+198]'), 0x2bn, 'ss: __USER_DS');
  // arch/x86/mm/fault.c: the page was never touched, so its PTE is not present: error code WRITE | USER (no PROT), trap 14 (#PF), cr2 the address.
  assert.equal(v('load [$rsp+200]'), 6n);
  assert.equal(v('load [$rsp+208]'), 14n);
  assert.equal(v('load [$rsp+224]'), ro + 16n);
  assert.equal(v('load 4 [$siginfo+8]'), BigInt(SEGV_ACCERR));
  // The saved rsp is the host program's stack: named, not a divergence.
  assert.deepEqual(r.comparison.divergences, []);
  assert.deepEqual(r.comparison.notComparable.map((n) => n.what), ['load [$rsp+168]']);
});

test('end expectations: memory read at the end of a thread (an unmapped address as such) and its variables', opts, async () => {
  const r = await hostRun(`
name: ends
processes:
  - name: p
    ops:
      - mmap: { len: 2*PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }
        as: buf
      - store: { addr: $buf, value: 0x55 }
      - munmap: { addr: $buf+PAGE_SIZE, len: PAGE_SIZE }
      - load: { addr: $buf, size: 1 }
        as: seen
expect:
  memory:
    - { thread: p, addr: $buf, value: 0x55 }
    - { thread: p, addr: $buf+PAGE_SIZE, mapped: false }
  registers:
    - { thread: p, vars: { seen: 0x55 } }
`);
  // process_vm_readv of the program's own memory at the end of main: the byte stored, and -EFAULT for the unmapped page.
  assert.deepEqual([...r.host.ends.entries()].sort(([a], [b]) => a - b), [[0, 0x55n], [1, null], [2, 0x55n]]);
  assert.deepEqual(r.comparison.divergences, []);
  assert.equal(r.comparison.agreed, 4 + 3 + 1, 'four records, three end expectations, the exit');
});

test('segments: an LDT data descriptor from modify_ldt read back with LAR, LSL, VERR and VERW, loaded into DS; a selector past the LDT raises #GP (SI_KERNEL)', opts, async () => {
  const r = await hostRun(`
name: seg
processes:
  - name: p
    handlers:
      SIGSEGV: { handler: h, flags: SA_SIGINFO }
    functions:
      h:
        - longjmp
    ops:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }
        as: buf
      - store: { addr: $buf, value: 0 }
      - store: { addr: $buf+8, value: 0x11000fffff }
      - modify_ldt: { func: 0x11, ptr: $buf, bytecount: 16 }
      - lar: 7
      - lsl: 7
      - verr: 7
      - verw: 7
      - lar: 15
      - mov_sreg: { sreg: ds, value: 7 }
      - read_sreg: ds
      - mov_sreg: { sreg: es, value: 15 }
      - read_sreg: cs
`);
  const v = (label: string): bigint | undefined => {
    const x = r.at('p', label);
    return x?.kind === 'V' ? x.value : undefined;
  };
  // arch/x86/kernel/ldt.c fill_ldt: entry 0, base 0, limit 0xfffff, seg_32bit, limit_in_pages -> 0x00cff3000000ffff (type 3, S, DPL 3, P, D, G).
  // LAR: the second doubleword's bits 8-23 (host-checked: with limit 19:16); LSL: the limit scaled by G.
  assert.equal(v('lar 7'), 0x00cff300n);
  assert.equal(v('lsl 7'), 0xffffffffn);
  assert.equal(v('verr 7'), 1n);
  assert.equal(v('verw 7'), 1n);
  assert.equal(v('lar 15'), BigInt.asUintN(64, -1n), 'entry 1 is past the LDT: ZF=0');
  assert.equal(v('mov r16, ds'), 7n);
  // MOV ES with a selector past the LDT's limit: #GP(selector); exc_general_protection sends SIGSEGV with SI_KERNEL (0x80), si_addr 0.
  assert.deepEqual(r.at('p', 'mov es'), { kind: 'S', signo: SIGSEGV, code: 0x80, addr: 0n, known: 3 });
  assert.equal(v('mov r16, cs'), 0x33n);
  assert.deepEqual(r.comparison.divergences, []);
});

test('join, a while loop, and a division by zero: the thread is joined, the loop runs three times, #DE kills the process with SIGFPE', opts, async () => {
  const r = await hostRun(`
name: joiner
machine:
  cpus: 2
processes:
  - name: m
    setup:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }
        as: buf
    threads:
      - name: worker
        ops:
          - store: { addr: $buf, value: 5 }
          - repeat: { count: 5, ops: [ getpid ] }
    ops:
      - join: worker
      - load: $buf
      - set: { i: 0 }
      - while:
          cond: $i < 3
          ops:
            - set: { i: $i + 1 }
      - set: { z: 0 }
      - load: $buf + $i / $z
`);
  // After pthread_join's FUTEX_WAIT loop (CLONE_CHILD_CLEARTID woke it), the worker's store is seen.
  assert.deepEqual(r.at('m', 'load [$buf]'), { kind: 'V', value: 5n });
  assert.deepEqual(r.at('m', 'while'), { kind: 'V', value: 3n }, 'the loop records its iterations');
  // arch/x86/kernel/traps.c exc_divide_error: SIGFPE, FPE_INTDIV (1); no handler: the process dies of it.
  const de = r.at('m', 'load [$buf + $i / $z]');
  assert.equal(de?.kind === 'S' && de.signo === 8 && de.code === 1, true);
  assert.equal(r.host.exits.get(0), 'killed by SIGFPE');
  assert.deepEqual(r.comparison.divergences, []);
});

test('INT 0x80: the ia32 numbers, EAX cut to 32 bits, -ENOSYS past the table, pids translated; a number isolab lacks is not run', opts, async () => {
  const r = await hostRun(`
name: int80-host
processes:
  - name: p
    ops:
      - getpid:
        as: pid
      - int80: { nr: getpid }
      - int80: { nr: 0x100000014 }
      - int80: { nr: 9999 }
      - int80: { nr: kill, args: [0x100000000 + $pid, 0] }
      - int80: { nr: close, args: [99] }
      - int80: { nr: 2 }
      - int80: { nr: exit_group, args: [7] }
`);
  const pid = BigInt(r.tid('p')!);
  // arch/x86/entry/syscalls/syscall_32.tbl: 20 getpid; int80_emulation reads EAX (32 bits) and the arguments' low halves.
  assert.deepEqual(r.at('p', 'int 0x80: getpid'), { kind: 'V', value: pid });
  assert.deepEqual(r.at('p', 'int 0x80: nr 4294967316'), { kind: 'V', value: pid });
  // A number past the table: -ENOSYS (38), sign-extended in RAX.
  assert.deepEqual(r.at('p', 'int 0x80: nr 9999'), { kind: 'V', value: neg(38) });
  assert.deepEqual(r.at('p', 'int 0x80: kill'), { kind: 'V', value: 0n });
  assert.deepEqual(r.at('p', 'int 0x80: close'), { kind: 'V', value: neg(9) });
  // Number 2 is fork in the host's ia32 table and not in isolab's: not run.
  assert.deepEqual(r.at('p', 'int 0x80: nr 2('), { kind: 'K' });
  assert.match(r.comparison.skipped.map((s) => s.reason).join('\n'), /32-bit syscall 2 is not in isolab's ia32 table/);
  assert.equal(r.host.exits.get(r.plan.tasks.find((t) => t.name === 'p')!.idx), 'exit 7');
  assert.deepEqual(r.comparison.divergences, []);
});

test('a child killed before it runs: its parent reports its tid, and the child does nothing isolab did not before the kill reaches it', opts, async () => {
  const r = await hostRun(`
name: kill-before-run
processes:
  - name: p
    ops:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }
        as: buf
      - fork:
          name: child
          ops:
            - getpid
            - getpid
        as: pid
      - kill: { pid: $pid, sig: SIGKILL }
      - wait4: { upid: $pid, stat_addr: $buf }
      - load: { addr: $buf, size: 4 }
`);
  // isolab's one CPU runs p on after fork: the child is killed before its first operation.
  assert.equal(r.plan.tasks.find((t) => t.name === 'child')!.records.length, 0);
  const child = r.tid('child');
  assert.ok(child !== undefined && child > 0, 'the parent reported the tid of a child that may never run');
  assert.deepEqual(r.at('p', 'fork'), { kind: 'V', value: BigInt(child) });
  assert.deepEqual(r.at('p', 'wait4'), { kind: 'V', value: BigInt(child) });
  // kernel/exit.c wait_task_zombie: a death by SIGKILL is status 9 (the signal, no core dump).
  assert.deepEqual(r.at('p', 'load 4 [$buf]'), { kind: 'V', value: 9n });
  assert.equal(r.host.diverged, undefined);
  assert.deepEqual(r.comparison.divergences, []);
});

test('execve of one of the scenario\'s programs: the host program executes itself as that image; the pid stays, handlers and memory do not', opts, async () => {
  const r = await hostRun(`
name: vfork-exec
programs:
  /bin/child:
    ops:
      - getpid
      - load: 0x10000000
processes:
  - name: p
    handlers:
      SIGSEGV: { handler: on_segv }
    functions:
      on_segv: [ longjmp ]
    ops:
      - mmap: { addr: 0x10000000, len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, fd: -1 }
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }
        as: buf
      - vfork:
          name: child
          ops:
            - execve: { filename: /bin/child }
        as: pid
      - wait4: { upid: $pid, stat_addr: $buf }
      - load: { addr: $buf, size: 4 }
      - execve: { filename: /bin/nothere }
`);
  const child = BigInt(r.tid('child')!);
  assert.deepEqual(r.at('p', 'vfork'), { kind: 'V', value: child });
  // fs/exec.c: the pid is kept; the new mm has no mapping at 0x10000000 (SEGV_MAPERR), and flush_signal_handlers dropped p's handler, so the child dies.
  assert.deepEqual(r.at('child', 'getpid'), { kind: 'V', value: child });
  assert.deepEqual(r.at('child', 'load'), { kind: 'S', signo: 11, code: 1, addr: 0x10000000n, known: 3 });
  assert.deepEqual(r.at('p', 'load 4 [$buf]'), { kind: 'V', value: 11n });
  // A path that is not one of the scenario's programs is not run on the host.
  assert.match(r.comparison.skipped.map((s) => `${s.what}: ${s.reason}`).join('\n'), /execve\(filename=\/bin\/nothere\): execve of a path that is not one of the scenario's programs/);
  assert.deepEqual(r.comparison.divergences, []);
});
