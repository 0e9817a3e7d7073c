/**
 * Signal delivery onto the alternate stack racing another thread's mprotect of that stack, in
 * lockstep (lockstep.ts). Thread 1 (CPU 0) has an 8 KiB alternate stack, both pages written
 * (present, writable), and a SIGUSR1 handler with SA_ONSTACK that records its $rsp and
 * returns; it sends itself SIGUSR1 while thread 2 (CPU 1) makes the stack read-only.
 *
 * get_sigframe and x64_setup_rt_frame (arch/x86/kernel/signal.c, signal_64.c, 6.12) write the
 * XSAVE image and then the frame with copy_to_user, each faulting like any kernel write to
 * user memory; mprotect (mm/mprotect.c) changes the PTEs under mmap_lock and flushes the TLBs
 * before it returns. So every interleaving must end one of two ways, both of which must come
 * up:
 *  - the frame written in full before the PTE lost its write permission (or through CPU 0's TLB
 *    entry before the flush reached it): the handler runs on the alternate stack ($rsp at
 *    A + 4984, get_sigframe's arithmetic for an 8 KiB stack at A: sigaltstack.test.ts), returns
 *    (its RET and rt_sigreturn only read the stack) and the thread goes on; mprotect cannot have
 *    returned before delivery began;
 *  - a write of the frame faulted on the read-only page (a kernel-mode fault, -EFAULT, no
 *    handler run): delivery fails, force_sigsegv, and the default action kills the process
 *    with SIGSEGV; mprotect must have been entered before delivery ended.
 * mprotect returns 0 either way, and the harness checks the page counts after each
 * interleaving.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { describeFindings, lockstep, type LockstepCase, type Run } from './lockstep.js';
import { linger, sc, store } from './helpers.js';

const CLONE_VM = 0x100, CLONE_FS = 0x200, CLONE_FILES = 0x400, CLONE_SIGHAND = 0x800, CLONE_THREAD = 0x10000;
const THREAD_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
const SA_ONSTACK = 0x08000000, SA_RESTORER = 0x04000000;
const SIGUSR1 = 10, SIGSEGV = 11;
const PROT_READ = 1;
const SIGSTKSZ = 8192;
const PREEMPTIONS = 1;
const T = 'main.15.child';


function deliveryAgainstMprotect(seen: Set<string>): LockstepCase {
  const main: Op[] = [
    sc('ss', 'mmap', 0, 4096, 3, 0x22, -1, 0), // 0
    sc('alt', 'mmap', 0, SIGSTKSZ, 3, 0x22, -1, 0), // 1
    store('$alt', 1), // 2
    store('$alt+4096', 1), // 3
    store('$ss', '$alt'), // 4: stack_t {ss_sp, ss_flags 0, ss_size}
    store('$ss+8', 0), // 5
    store('$ss+16', SIGSTKSZ), // 6
    sc('sas', 'sigaltstack', '$ss', 0), // 7
    store('$ss+64', '@h'), // 8: struct sigaction
    store('$ss+72', SA_ONSTACK | SA_RESTORER), // 9
    store('$ss+80', '@__restore_rt'), // 10
    store('$ss+88', 0), // 11
    sc('sa', 'rt_sigaction', SIGUSR1, '$ss+64', 0, 8), // 12
    sc('tgid', 'getpid'), // 13
    sc('tid', 'gettid'), // 14
    { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], into: 'ctid', child: [sc('mp', 'mprotect', '$alt', SIGSTKSZ, PROT_READ)], cpu: 1 }, // 15
    sc('k', 'tgkill', '$tgid', '$tid', SIGUSR1), // 16
    { op: 'load', addr: '$ss+128', into: 'at' }, // 17
    ...linger,
  ];
  return {
    name: 'SA_ONSTACK delivery against mprotect(PROT_READ) of the alternate stack',
    processes: [{ cpu: 0, program: { main, functions: { h: [{ op: 'store', addr: '$ss+128', value: '$rsp' }] } } }],
    racers: [{ cpu: 0, fn: 'main', from: 16, to: 17 }, { cpu: 1, fn: T, from: 0 }],
    watch: ['alt'],
    preemptions: PREEMPTIONS,
    check: (r: Run) => {
      const rec = (fn: string, i: number) => r.k.log.find((x) => x.fn === fn && x.index === i);
      for (const [fn, i] of [['main', 7], ['main', 12], ['main', 16], [T, 0]] as [string, number][]) {
        if (rec(fn, i)?.value !== 0n) return `${fn}[${i}] gave ${rec(fn, i)?.value}, expected 0`;
      }
      const alt = r.k.log.find((x) => x.fn === 'main' && x.index === 1)!.value!;
      const tid = Number(rec('main', 14)!.value);
      const at = (pred: (e: Run['events'][number]['e']) => boolean): number => r.events.find((x) => pred(x.e))?.step ?? -1;
      const mpEnter = at((e) => e.type === 'syscall_enter' && e.name === 'mprotect');
      const mpDone = at((e) => e.type === 'syscall' && e.name === 'mprotect');
      const kDone = at((e) => e.type === 'syscall' && e.name === 'tgkill');
      const handled = at((e) => e.type === 'signal' && e.tid === tid && e.signo === SIGUSR1 && e.action === 'handler');
      const killed = at((e) => e.type === 'signal' && e.tid === tid && e.signo === SIGSEGV);
      if (mpEnter < 0 || mpDone < 0 || kDone < 0) return 'a racer\'s syscall left no event';
      if (handled >= 0) {
        seen.add('handler ran');
        if (killed >= 0) return 'the handler ran and the thread also got SIGSEGV';
        if (mpDone < kDone) return `mprotect returned (step ${mpDone}) before delivery began (step ${kDone}), yet the frame was written`;
        const v = rec('main', 17)?.value;
        if (v !== alt + 4984n) return `the handler's $rsp was ${v?.toString(16)}, expected the alternate stack's A + 4984 = ${(alt + 4984n).toString(16)}`;
        return null;
      }
      if (killed < 0) return 'neither a handler nor SIGSEGV';
      seen.add('SIGSEGV');
      if (mpEnter > killed) return `delivery failed (step ${killed}) before mprotect was entered (step ${mpEnter})`;
      if (rec('main', 17)) return 'the thread went on after a failed delivery';
      return null;
    },
  };
}

test('lockstep, every interleaving: SA_ONSTACK delivery against mprotect(PROT_READ) of the alternate stack', (t) => {
  const seen = new Set<string>();
  const c = deliveryAgainstMprotect(seen);
  const r = lockstep(c);
  t.diagnostic(`${r.interleavings} interleavings (every one with at most ${c.preemptions} preemptions), window up to ${r.longest} steps, ${r.ms.toFixed(0)} ms`);
  assert.ok(r.failed === 0, describeFindings(c, r));
  assert.ok(r.interleavings >= 2, `${r.interleavings} interleaving(s): the racers never raced`);
  assert.deepEqual([...seen].sort(), ['SIGSEGV', 'handler ran'], 'both outcomes came up');
});
