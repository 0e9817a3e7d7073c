/**
 * SA_RESETHAND against a frame that may not be writable, in lockstep (lockstep.ts). Thread 1
 * (CPU 0) has an 8 KiB alternate stack, both pages written, a SIGUSR1 handler with
 * SA_ONSTACK|SA_RESETHAND that returns, and a SIGSEGV handler (on the thread's own stack) that
 * queries SIGUSR1's action; it sends itself SIGUSR1 while thread 2 (CPU 1) makes the alternate
 * stack read-only.
 *
 * kernel/signal.c get_signal (6.12) copies the action for the handler (ksig->ka = *ka) and,
 * for SA_ONESHOT, resets it to SIG_DFL there, under siglock, before handle_signal writes the
 * frame; a frame that cannot be written is force_sigsegv (SIGSEGV, SI_KERNEL). So every
 * interleaving ends one of two ways, both of which must come up, and in both SIGUSR1's action
 * is SIG_DFL afterwards:
 *  - the frame written: the SIGUSR1 handler runs and returns;
 *  - a write of the frame faulted: the SIGSEGV handler runs and already sees SIG_DFL
 *    (host-checked on Linux 6.18 with a C program: an unmapped alternate stack, the same query
 *    in the SIGSEGV handler, SIG_DFL).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Op } from '../../src/user/program.js';
import { describeFindings, lockstep, type LockstepCase, type Run } from './lockstep.js';
import { linger, sc, store } from './helpers.js';

const CLONE_VM = 0x100, CLONE_FS = 0x200, CLONE_FILES = 0x400, CLONE_SIGHAND = 0x800, CLONE_THREAD = 0x10000;
const THREAD_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
const SA_ONSTACK = 0x08000000, SA_RESTORER = 0x04000000, SA_RESETHAND = 0x80000000;
const SIGUSR1 = 10, SIGSEGV = 11;
const PROT_READ = 1;
const SIGSTKSZ = 8192;
const PREEMPTIONS = 1;
const T = 'main.20.child';


function resetAgainstMprotect(seen: Set<string>): LockstepCase {
  const main: Op[] = [
    sc('ss', 'mmap', 0, 4096, 3, 0x22, -1, 0), // 0
    sc('alt', 'mmap', 0, SIGSTKSZ, 3, 0x22, -1, 0), // 1
    store('$alt', 1), // 2
    store('$alt+4096', 1), // 3
    store('$ss', '$alt'), // 4: stack_t {ss_sp, ss_flags 0, ss_size}
    store('$ss+8', 0), // 5
    store('$ss+16', SIGSTKSZ), // 6
    sc('sas', 'sigaltstack', '$ss', 0), // 7
    store('$ss+64', '@h'), // 8: struct sigaction for SIGUSR1
    store('$ss+72', SA_ONSTACK | SA_RESETHAND | SA_RESTORER), // 9
    store('$ss+80', '@__restore_rt'), // 10
    store('$ss+88', 0), // 11
    sc('sa', 'rt_sigaction', SIGUSR1, '$ss+64', 0, 8), // 12
    store('$ss+64', '@seg'), // 13: for SIGSEGV, on the thread's stack
    store('$ss+72', SA_RESTORER), // 14
    sc('sa2', 'rt_sigaction', SIGSEGV, '$ss+64', 0, 8), // 15
    store('$ss+160', 1), // 16: the old handlers' cells, not SIG_DFL until a query writes them
    store('$ss+192', 1), // 17
    sc('tgid', 'getpid'), // 18
    sc('tid', 'gettid'), // 19
    { op: 'syscall', name: 'clone', args: [THREAD_FLAGS, 0, 0, 0, 0], into: 'ctid', child: [sc('mp', 'mprotect', '$alt', SIGSTKSZ, PROT_READ)], cpu: 1 }, // 20
    sc('k', 'tgkill', '$tgid', '$tid', SIGUSR1), // 21
    sc('q', 'rt_sigaction', SIGUSR1, 0, '$ss+160', 8), // 22
    { op: 'load', addr: '$ss+160', into: 'after' }, // 23
    { op: 'load', addr: '$ss+192', into: 'inseg' }, // 24
    ...linger,
  ];
  const seg: Op[] = [sc('sq', 'rt_sigaction', SIGUSR1, 0, '$ss+192', 8), { op: 'return' }];
  return {
    name: 'SA_RESETHAND|SA_ONSTACK delivery against mprotect(PROT_READ) of the alternate stack',
    processes: [{ cpu: 0, program: { main, functions: { h: [{ op: 'return' }], seg } } }],
    racers: [{ cpu: 0, fn: 'main', from: 21, to: 22 }, { cpu: 1, fn: T, from: 0 }],
    watch: ['alt'],
    preemptions: PREEMPTIONS,
    check: (r: Run) => {
      const rec = (fn: string, i: number) => r.k.log.find((x) => x.fn === fn && x.index === i && !x.signal);
      for (const [fn, i] of [['main', 7], ['main', 12], ['main', 15], ['main', 21], ['main', 22], [T, 0]] as [string, number][]) {
        if (rec(fn, i)?.value !== 0n) return `${fn}[${i}] gave ${rec(fn, i)?.value}, expected 0`;
      }
      const tid = Number(rec('main', 19)!.value);
      const at = (pred: (e: Run['events'][number]['e']) => boolean): number => r.events.find((x) => pred(x.e))?.step ?? -1;
      const handled = at((e) => e.type === 'signal' && e.tid === tid && e.signo === SIGUSR1 && e.action === 'handler');
      const segv = at((e) => e.type === 'signal' && e.tid === tid && e.signo === SIGSEGV && e.action === 'handler');
      if (rec('main', 23)?.value !== 0n) return `SIGUSR1's action after the delivery is ${rec('main', 23)?.value}, expected SIG_DFL (0)`;
      if (handled >= 0) {
        seen.add('handler ran');
        if (segv >= 0) return 'the handler ran and the thread also got SIGSEGV';
        if (rec('main', 24)?.value !== 1n) return 'the SIGSEGV handler wrote its query, yet no SIGSEGV was delivered';
        return null;
      }
      if (segv < 0) return 'neither the SIGUSR1 handler nor the SIGSEGV one';
      seen.add('SIGSEGV');
      if (rec('main', 24)?.value !== 0n) return `the SIGSEGV handler saw SIGUSR1's action ${rec('main', 24)?.value}, expected SIG_DFL (0): SA_RESETHAND resets it before the frame`;
      return null;
    },
  };
}

test('lockstep, every interleaving: SA_RESETHAND resets the action before the frame, whether or not mprotect makes the frame fail', (t) => {
  const seen = new Set<string>();
  const c = resetAgainstMprotect(seen);
  const r = lockstep(c);
  t.diagnostic(`${r.interleavings} interleavings (every one with at most ${c.preemptions} preemptions), window up to ${r.longest} steps, ${r.ms.toFixed(0)} ms`);
  assert.ok(r.failed === 0, describeFindings(c, r));
  assert.ok(r.interleavings >= 2, `${r.interleavings} interleaving(s): the racers never raced`);
  assert.deepEqual([...seen].sort(), ['SIGSEGV', 'handler ran'], 'both outcomes came up');
});
