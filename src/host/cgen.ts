/**
 * The scenario as a C program for the host kernel. Each function of a process's program
 * (main, a fork or clone child's code, a signal handler) becomes a C function whose operations
 * are straight-line C, one block per operation, labelled `op_<fn>_<index>`: a load or store is
 * a volatile access, a syscall the SYSCALL instruction with the same six registers, a `while`
 * or `jump` a goto. Variables are the task's registers (`t->v[]`), copied by fork and clone.
 *
 * Before each operation that isolab recorded, the task waits for its turn: every record isolab
 * completed before it (before the syscall entered the kernel, for a syscall) must be done on
 * the host (a flag per record in a MAP_SHARED page), so the processes and threads act in the
 * order isolab's run gave. It then writes one line, with write(2), to descriptor REPORT_FD:
 *   T task hosttid            a task started
 *   R pos V value | R pos N   a record: a value (hex), or none (a store)
 *   R pos S signo code addr k a record: the operation raised a signal (k: what is known,
 *                             1 si_code, 2 si_addr: a handler without SA_SIGINFO gets no siginfo)
 *   R pos P                   a syscall after which isolab's task died: started (its value
 *                             follows if the host task lives to write it)
 *   R pos K                   a record the host skipped (not run)
 *                             (pos -(task + 2): an operation isolab's run never completed)
 *   R pos X why value         the host refused to run it (1 a pid not the program's,
 *                             2 the report descriptor, 3 the mmap address was taken)
 *   D task fn index image     the task reached an operation isolab's run did not: from here
 *                             on nothing waits for its turn
 *   M id V value | M id U     an end expectation's value (U: the address is not mapped)
 *   E task code | K task sig  the task exits; the task's process dies of signal sig
 *   e task code               a thread that does not lead its group exits
 *   W task status             the wait status of a top-level process
 * An operation that faults is left with siglongjmp (the scenario's `longjmp`, or nothing when
 * the handler returns and the instruction runs again); a fault signal the scenario has no
 * handler for is recorded by a handler that resets itself and returns, so the instruction
 * faults again and the process dies of it as it would.
 */
import { CLONE_THREAD, SA_SIGINFO } from '../kernel/uapi.js';
import { syscallByName } from '../kernel/syscalls.js';
import type { CompiledProcess, CompiledScenario } from '../scenario/compile.js';
import { FnEnd, HANDLER_NAMES, type CFunction, type CValue, type ProgramImage } from '../user/program.js';
import { parseRtExpr, type RtNode } from '../user/rtexpr.js';
import type { Plan } from './plan.js';
import { ia32Entry, opKey, operands, setsVar, syscallName, type Support } from './support.js';
import { RANGE_SYSCALLS, type WideGen } from './widen.js';

/** The descriptor the host program reports on (high, so a scenario's descriptors are numbered as in isolab). */
export const REPORT_FD = 1023;
/** Seconds a task waits for its turn before giving the order up. */
const TURN_TIMEOUT_S = 5;

/** The fault signals a handler records as the interrupted operation's result. */
const FAULT_SIGNALS: readonly number[] = Object.freeze([4, 5, 7, 8, 11]); // SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGSEGV

/** Syscalls whose first argument is a pid the host checks is the program's own. */
const PID_ARG0: ReadonlySet<string> = new Set(['kill', 'tgkill', 'process_vm_readv', 'process_vm_writev', 'prlimit64']);
/** Syscalls whose descriptor arguments the host checks are not REPORT_FD: the argument indices. */
const FD_ARGS: Readonly<Record<string, readonly number[]>> = Object.freeze({
  read: [0], write: [0], close: [0], fstat: [0], lseek: [0], pread64: [0], pwrite64: [0], dup: [0], dup2: [0, 1], dup3: [0, 1], fcntl: [0], ftruncate: [0],
  ioctl: [0], splice: [0, 2], tee: [0, 1], vmsplice: [0], mmap: [4],
});

const RUNTIME = String.raw`#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef uint64_t u64;
#define REPORT_FD @REPORT_FD@
/* The descriptor of the shared page (a memfd), which a task that executes a program maps again. */
#define SHARED_FD (REPORT_FD - 1)
#define TURN_TIMEOUT_S @TURN_TIMEOUT_S@

/*
 * One record of isolab's run: the function and operation, its position, its gate, the task it
 * created, isolab's mmap address, flags (1 skipped, 2 raised a signal, 4 the task's last before
 * a signal killed it, 8 a syscall), and, under --stress, its place among the racing operations
 * (0 the one isolab's task started first, 1 the other; -1 not racing).
 */
struct rec { int fn, idx, pos, gate, child; u64 mmap; int flags, race; };
/* An end expectation: the task, its id, memory or a variable, the variable (-1: none), the size, the offset. */
struct endcheck { int task, id, memory, var, size; u64 add; };

struct task {
	int idx, image, leader, tid, next, off, scan, op_fn, op_idx, entry;
	const struct rec *recs;
	int nrec;
	const struct rec *volatile cur;
	sigjmp_buf *volatile jbp;
	/* Under --stress with widening: where a fault in a copy other than copy 0 returns to. */
	sigjmp_buf *volatile sweep;
	u64 v[NVARS > 0 ? NVARS : 1];
};

struct shared {
	volatile int off;
	volatile int pgid;
	volatile int tids[NTASKS + 1];
	volatile unsigned char done[NRECS + 1];
#if STRESS
	/* One round of the race: the racing operations at the barrier, its delay (spins; > 0 for
	 * the second, < 0 for the first), their start and end times, the round's report lines and
	 * the sum of their hashes with tids as task numbers (the round's outcome). */
	volatile int arrived, barrier_timeout, overflow;
	volatile long delay;
	volatile u64 t0[NRACE + 1], t1[NRACE + 1];
	volatile u64 key;
	volatile int blen;
	char buf[STRESS_BUF];
#if WIDE > 1
	/* The value each load of the widened mapping read in each copy (copy 0 is the record's), by record. */
	volatile u64 repv[WIDE][NRECS + 1];
	volatile unsigned char repset[NRECS + 1];
	volatile unsigned char repflt[WIDE][NRECS + 1];
#endif
#endif
};

static struct shared *S;
static struct task TASKS[NTASKS + 1];
/* Under --stress with widening: the host's address of copy 0 of the widened mapping (0 until it is made). */
static u64 wide_base0;
static const int FAULT_SIGNALS[] = { @FAULT_SIGNALS@ };

static long sys6(long n, long a, long b, long c, long d, long e, long f)
{
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9) : "rcx", "r11", "memory");
	return ret;
}

/* An address in copy 0 of the widened mapping is reported as isolab's address of the mapping. */
static int in_wide(u64 a)
{
	return WIDE > 1 && wide_base0 && a >= wide_base0 && a - wide_base0 < WIDE_LEN;
}

static u64 xlate(u64 v)
{
	return in_wide(v) ? v - wide_base0 + WIDE_ISOLAB : v;
}

/* Division as the DIV instruction does it: a divisor of 0 raises #DE (SIGFPE, FPE_INTDIV). */
static __attribute__((noinline)) u64 udiv(u64 a, u64 b, int rem)
{
	u64 q, r;
	__asm__ volatile("divq %4" : "=a"(q), "=d"(r) : "a"(a), "d"(0UL), "rm"(b));
	return rem ? r : q;
}

#if STRESS
/* A number that is the host tid of one of the round's tasks, as that task's number (+1), else 0. */
static int tid_task(long x)
{
	for (int i = 0; x > 0 && i < NTASKS; i++)
		if (S->tids[i] == x) return i + 1;
	return 0;
}
#endif

/*
 * Writes a line made of text and numbers: %x a u64 in hex, %d an int. Under --stress the line
 * goes to the round's buffer, and its hash, with every number that is a tid of the round's
 * tasks written as that task (tids differ from round to round), is added to the round's key.
 */
static void out(const char *fmt, ...)
{
	char buf[256];
	int n = 0;
#if STRESS
	char norm[256];
	int m = 0;
#endif
	__builtin_va_list ap;
	__builtin_va_start(ap, fmt);
	for (const char *p = fmt; *p && n < 200; p++) {
		if (*p != '%') {
#if STRESS
			norm[m++] = *p;
#endif
			buf[n++] = *p;
			continue;
		}
		p++;
		long task = 0;
		int n0 = n;
		if (*p == 'x') {
			u64 x = __builtin_va_arg(ap, u64);
#if STRESS
			task = tid_task((long)x);
#endif
			char d[17]; int k = 0;
			do { d[k++] = "0123456789abcdef"[x & 15]; x >>= 4; } while (x);
			while (k) buf[n++] = d[--k];
		} else if (*p == 'd') {
			long x = __builtin_va_arg(ap, int);
#if STRESS
			task = tid_task(x);
#endif
			char d[21]; int k = 0;
			if (x < 0) { buf[n++] = '-'; x = -x; }
			do { d[k++] = '0' + x % 10; x /= 10; } while (x);
			while (k) buf[n++] = d[--k];
		}
#if STRESS
		if (task) { norm[m++] = '#'; norm[m++] = (char)('0' + task / 100 % 10); norm[m++] = (char)('0' + task / 10 % 10); norm[m++] = (char)('0' + task % 10); }
		else { memcpy(norm + m, buf + n0, n - n0); m += n - n0; }
#else
		(void)task; (void)n0;
#endif
	}
	__builtin_va_end(ap);
	buf[n++] = '\n';
#if STRESS
	if (fmt[0] != 'T' && fmt[0] != 'e') {
		u64 h = 0xcbf29ce484222325ULL;
		for (int k = 0; k < m; k++) h = (h ^ (unsigned char)norm[k]) * 0x100000001b3ULL;
		__atomic_fetch_add(&S->key, h, __ATOMIC_RELAXED);
	}
	int at = __atomic_fetch_add(&S->blen, n, __ATOMIC_RELAXED);
	if (at + n <= STRESS_BUF) memcpy(S->buf + at, buf, n);
	else S->overflow = 1;
#else
	sys6(1, REPORT_FD, (long)buf, n, 0, 0, 0);
#endif
}

static struct task *self(void)
{
	int tid = (int)sys6(186, 0, 0, 0, 0, 0, 0);
	for (int i = 0; i < NTASKS + 1; i++)
		if (TASKS[i].tid == tid) return &TASKS[i];
	return &TASKS[NTASKS];
}

static int is_handler_fn(int image, int fn);
extern const int OWNER[];
extern const int ENDGATE[];
extern const int DIES[];
extern const int MODEL_TID[];
extern const struct endcheck ENDS[];

/* The task leaves isolab's order: from here on nobody waits for a turn. */
static void diverge(struct task *t, int fn, int idx)
{
	if (!t->off) out("D %d %d %d %d", t->idx, fn, idx, t->image);
	t->off = 1;
	S->off = 1;
}

static u64 now_s(void)
{
	struct timespec ts;
	sys6(228, CLOCK_MONOTONIC, (long)&ts, 0, 0, 0, 0);
	return ts.tv_sec;
}

/*
 * A task isolab's run killed (a fatal signal, its group's exit) that has done all isolab's did:
 * it waits to be killed, and leaves isolab's order if that does not come. A kill from another
 * task comes within microseconds when it comes; a --stress round, which may have raced it
 * away, waits 100 ms, a plain run the turn timeout.
 */
static void await_death(struct task *t, int fn, int idx)
{
	if (t->off || S->off || !DIES[t->idx < NTASKS ? t->idx : NTASKS]) return;
	struct timespec ms = { 0, 1000000 };
	for (int n = 0; n < (STRESS ? 100 : TURN_TIMEOUT_S * 1000); n++) sys6(35, (long)&ms, 0, 0, 0, 0, 0); /* nanosleep */
	diverge(t, fn, idx);
}

/* Waits until every record of another task before gate is done here; 0 when it gave up (the task leaves isolab's order). */
static int wait_gate(struct task *t, int gate, int fn, int idx)
{
	u64 start = 0;
	for (;;) {
		if (t->off || S->off) return 0;
		while (t->scan < gate && (OWNER[t->scan] == t->idx || S->done[t->scan])) t->scan++;
		if (t->scan >= gate) return 1;
		if (!start) start = now_s();
		else if (now_s() - start > TURN_TIMEOUT_S) { diverge(t, fn, idx); return 0; }
		sys6(24, 0, 0, 0, 0, 0, 0); /* sched_yield */
	}
}

#if STRESS
/* Positions of the racing records (RACE[k] has race k). */
extern const int RACE[];

static u64 now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (u64)ts.tv_sec * 1000000000ULL + (u64)ts.tv_nsec;
}

static void spin(long n)
{
	for (long i = 0; i < n; i++) __asm__ volatile("" ::: "memory");
}

/* As wait_gate for a racing record: the other racing records before its gate are not waited for. */
static int wait_race_gate(struct task *t, int gate, int fn, int idx)
{
	u64 start = 0;
	int scan = t->scan;
	for (;;) {
		if (t->off || S->off) return 0;
		for (;;) {
			int racing = 0;
			for (int k = 0; k < NRACE; k++) racing |= RACE[k] == scan;
			if (scan < gate && (OWNER[scan] == t->idx || S->done[scan] || racing)) scan++;
			else break;
		}
		if (scan >= gate) return 1;
		if (!start) start = now_s();
		else if (now_s() - start > TURN_TIMEOUT_S) { diverge(t, fn, idx); return 0; }
		sys6(24, 0, 0, 0, 0, 0, 0); /* sched_yield */
	}
}

/*
 * The racing operations start together: each waits at the barrier until all have come (a
 * second at most), then spins its side's share of the round's delay, and notes its start.
 */
static void race_start(const struct rec *e)
{
	__atomic_add_fetch(&S->arrived, 1, __ATOMIC_SEQ_CST);
	u64 start = 0;
	for (long k = 0; S->arrived < NRACE; k++) {
		__builtin_ia32_pause();
		if ((k & 4095) != 4095) continue;
		u64 n = now_ns();
		if (!start) start = n;
		else if (n - start > 1000000000ULL) { S->barrier_timeout = 1; break; }
	}
	long d = S->delay;
	if (e->race == 0 && d < 0) spin(-d);
	if (e->race == 1 && d > 0) spin(d);
	S->t0[e->race] = now_ns();
}
#endif

/*
 * The turn of operation idx of function fn: its record in isolab's run, once every record of
 * another task before its gate is done here; NULL when the task has left isolab's order. A
 * handler's record next means isolab delivered a signal here: wait for it. Under --stress a
 * racing record waits only for the records before its gate that are not racing, then meets
 * the others at the barrier.
 */
static const struct rec *turn(struct task *t, int fn, int idx)
{
	u64 start = 0;
	for (;;) {
		if (t->off || S->off) return 0;
		if (t->next >= t->nrec) { await_death(t, fn, idx); diverge(t, fn, idx); return 0; }
		const struct rec *e = &t->recs[t->next];
		if (e->fn == fn && e->idx == idx) {
#if STRESS
			if (e->race >= 0) {
				if (!wait_race_gate(t, e->gate, fn, idx)) return 0;
				t->next++;
				race_start(e);
				return e;
			}
#endif
			if (!wait_gate(t, e->gate, fn, idx)) return 0;
			t->next++;
			return e;
		}
		if (!is_handler_fn(t->image, e->fn) || is_handler_fn(t->image, fn)) { diverge(t, fn, idx); return 0; }
		if (!start) start = now_s();
		else if (now_s() - start > TURN_TIMEOUT_S) { diverge(t, fn, idx); return 0; }
		sys6(24, 0, 0, 0, 0, 0, 0); /* sched_yield */
	}
}

static void done(const struct rec *e)
{
#if STRESS
	if (e && e->race >= 0) S->t1[e->race] = now_ns();
#endif
	if (e && e->pos >= 0) S->done[e->pos] = 1;
}

static void rec_value(const struct rec *e, u64 v) { if (e) { out("R %d V %x", e->pos, xlate(v)); done(e); } }

#if WIDE > 1
/*
 * A load of copy 0 of the widened mapping, done on every other copy from the top down; the
 * values by copy. A copy whose access faults (the fault handlers return here) is marked so.
 */
static void wide_load(struct task *t, const struct rec *e, u64 a, u64 x, int size)
{
	if (!e || e->pos < 0) return;
	sigjmp_buf jb;
	S->repv[0][e->pos] = x;
	for (volatile int k = 1; k < WIDE; k++) {
		u64 b = a - (u64)k * WIDE_LEN;
		t->sweep = &jb;
		if (sigsetjmp(jb, 1)) { S->repflt[k][e->pos] = 1; continue; }
		S->repv[k][e->pos] = size == 1 ? *(volatile uint8_t *)(uintptr_t)b : size == 2 ? *(volatile uint16_t *)(uintptr_t)b : size == 4 ? *(volatile uint32_t *)(uintptr_t)b : *(volatile uint64_t *)(uintptr_t)b;
	}
	t->sweep = 0;
	S->repset[e->pos] = 1;
}

/* A store to copy 0 of the widened mapping, done on every other copy from the top down; a copy whose store faults is left as it is. */
static void wide_store(struct task *t, u64 a, u64 x, int size)
{
	sigjmp_buf jb;
	for (volatile int k = 1; k < WIDE; k++) {
		u64 b = a - (u64)k * WIDE_LEN;
		t->sweep = &jb;
		if (sigsetjmp(jb, 1)) continue;
		if (size == 1) *(volatile uint8_t *)(uintptr_t)b = (uint8_t)x;
		else if (size == 2) *(volatile uint16_t *)(uintptr_t)b = (uint16_t)x;
		else if (size == 4) *(volatile uint32_t *)(uintptr_t)b = (uint32_t)x;
		else *(volatile uint64_t *)(uintptr_t)b = x;
	}
	t->sweep = 0;
}

/* A range syscall starting in copy 0: over every copy at once when it covers the mapping, else copy by copy from the bottom. */
static void wide_range(long nr, u64 *a)
{
	if (a[0] == wide_base0 && a[1] == WIDE_LEN) {
		a[0] -= (u64)(WIDE - 1) * WIDE_LEN;
		a[1] *= WIDE;
		return;
	}
	for (int k = WIDE - 1; k >= 1; k--) sys6(nr, a[0] - (u64)k * WIDE_LEN, a[1], a[2], a[3], a[4], a[5]);
}
#else
#define wide_load(t, e, a, x, size) ((void)0)
#define wide_store(t, a, x, size) ((void)0)
#define wide_range(nr, a) ((void)0)
#endif
static void rec_none(const struct rec *e) { if (e) { out("R %d N", e->pos); done(e); } }


/* A skipped operation: its record, and those of the handler isolab ran for its signal. */
static void rec_skipped(struct task *t, const struct rec *e)
{
	if (!e) return;
	out("R %d K", e->pos);
	done(e);
	if (e->flags & 2)
		while (t->next < t->nrec && is_handler_fn(t->image, t->recs[t->next].fn)) {
			const struct rec *h = &t->recs[t->next++];
			out("R %d K", h->pos);
			done(h);
		}
}

/* A record the host refused to run: its line, and the records of the handler isolab ran for the signal it sent. */
static void rec_refused(struct task *t, const struct rec *e, int why, u64 v)
{
	if (!e) return;
	out("R %d X %d %x", e->pos, why, v);
	done(e);
	while (t->next < t->nrec && is_handler_fn(t->image, t->recs[t->next].fn)) {
		const struct rec *h = &t->recs[t->next++];
		out("R %d K", h->pos);
		done(h);
	}
}

/* A pid as the host knows it: a pid of the program's own stays; isolab's pid of one of its tasks becomes the host's. */
static long host_pid(long pid)
{
	for (int i = 0; i < NTASKS; i++)
		if (S->tids[i] == pid) return pid;
	for (int i = 0; i < NTASKS; i++)
		if (MODEL_TID[i] == pid && S->tids[i]) return S->tids[i];
	return pid;
}

/* A pid the host program may signal or look into: one of its own tasks. */
static int own_pid(long pid)
{
	if (pid <= 0) return 0;
	for (int i = 0; i < NTASKS; i++)
		if (S->tids[i] == pid) return 1;
	return 0;
}

/* Records the fault that interrupted the task's operation; 1 when there was one. */
/*
 * With SA_SIGINFO the siginfo says it all. Without it the kernel copies no siginfo, so a fault
 * is known by its signal during an instruction (not a syscall), and only a page fault's
 * address is known, from the frame's cr2 (trapno 14); the last field says what is known
 * (1 si_code, 2 si_addr).
 */
static int record_fault(struct task *t, int sig, siginfo_t *si, void *uc, int siginfo)
{
	int f = 0;
	for (unsigned i = 0; i < sizeof FAULT_SIGNALS / sizeof FAULT_SIGNALS[0]; i++) f |= FAULT_SIGNALS[i] == sig;
	if (!f || !t->cur) return 0;
	if (!siginfo) {
		if (t->cur->flags & 8) return 0;
		u64 trapno = *(u64 *)((char *)uc + 200), cr2 = *(u64 *)((char *)uc + 216);
		out("R %d S %d 0 %x %d", t->cur->pos, sig, trapno == 14 ? xlate(cr2) : 0, trapno == 14 ? 2 : 0);
		done(t->cur);
		t->cur = 0;
		return 1;
	}
	if (si->si_code <= 0) return 0;
	out("R %d S %d %d %x 3", t->cur->pos, sig, si->si_code, xlate((u64)si->si_addr));
	done(t->cur);
	t->cur = 0;
	return 1;
}

/* A fault in a widened copy's sweep (not copy 0's access, which is the operation's own): back to the sweep, which marks the copy. */
static void sweep_fault(struct task *t, int sig)
{
	int f = 0;
	for (unsigned i = 0; i < sizeof FAULT_SIGNALS / sizeof FAULT_SIGNALS[0]; i++) f |= FAULT_SIGNALS[i] == sig;
	if (!f || !t->sweep) return;
	sigjmp_buf *j = t->sweep;
	t->sweep = 0;
	siglongjmp(*j, 1);
}

/* The fault handler of a process the scenario gives none: records, resets to SIG_DFL (SA_RESETHAND) and returns, so the instruction faults again and the process dies of it. */
static void on_unhandled_fault(int sig, siginfo_t *si, void *uc)
{
	struct task *t = self();
	sweep_fault(t, sig);
	if (record_fault(t, sig, si, uc, 1)) out("K %d %d", t->idx, sig);
	else sys6(234, sys6(39, 0, 0, 0, 0, 0, 0), t->tid, sig, 0, 0, 0); /* not a fault: as the default action, now */
}

#if STRESS
/* The CPUs the program may use, and the scenario CPU of each task (isolab's CPU at its first racing or first record). */
static int HOSTCPUS[CPU_SETSIZE], NHOSTCPUS;
extern const int PIN[];
#endif

static void task_start(struct task *t)
{
	t->tid = (int)sys6(186, 0, 0, 0, 0, 0, 0);
	S->tids[t->idx] = t->tid;
#if STRESS
	/* Pinned: scenario CPU k is the k-th CPU the program may use (wrapping round on a smaller host). */
	if (t->idx < NTASKS && PIN[t->idx] >= 0 && NHOSTCPUS > 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(HOSTCPUS[PIN[t->idx] % NHOSTCPUS], &set);
		sched_setaffinity(0, sizeof set, &set);
	}
#endif
	out("T %d %d", t->idx, t->tid);
}

/* A fork or clone child's task: the parent's registers, its own records. */
static struct task *child_task(struct task *p, int idx)
{
	struct task *c = &TASKS[idx < 0 ? NTASKS : idx];
	memcpy(c->v, p->v, sizeof c->v);
	c->image = p->image;
	c->off = p->off || idx < 0;
	c->next = 0;
	c->scan = 0;
	c->cur = 0;
	c->jbp = 0;
	c->leader = 1;
	if (idx >= 0) { c->idx = idx; c->recs = RECS[idx]; c->nrec = NREC[idx]; }
	return c;
}

/* The end expectations of a task: memory (read with process_vm_readv, so an unmapped address is -EFAULT, not a fault) and variables. */
static void end_checks(struct task *t)
{
	for (int i = 0; i < NENDS; i++) {
		const struct endcheck *x = &ENDS[i];
		if (x->task != t->idx) continue;
		u64 v = x->var >= 0 ? t->v[x->var] : 0;
		if (!x->memory) { out("M %d V %x", x->id, xlate(v)); continue; }
		u64 got = 0;
		struct { u64 base, len; } local = { (u64)(uintptr_t)&got, (u64)x->size }, remote = { v + x->add, (u64)x->size };
		long r = sys6(310, sys6(39, 0, 0, 0, 0, 0, 0), (long)&local, 1, (long)&remote, 1, 0);
		if (r == x->size) out("M %d V %x", x->id, xlate(got));
		else out("M %d U", x->id);
	}
}

/* The task exits (exit_group for a group leader, exit for a thread) when isolab's did: after the records before its exit. */
/*
 * A syscall after which isolab's task died (its own fatal signal, on its way back to user
 * mode): reported as started first, since the host task may die before it can write the value.
 * Its end time is not taken: the operation has not ended.
 */
static void rec_pending(const struct rec *e)
{
	if (!e || !(e->flags & 4)) return;
	out("R %d P", e->pos);
	if (e->pos >= 0) S->done[e->pos] = 1;
}

/* The parent notes and reports the tid fork or clone gave its child: the child may not have done so yet, or ever (killed first). */
static void child_tid(const struct rec *e, long r)
{
	if (r <= 0 || !e || e->child < 0) return;
	S->tids[e->child] = (int)r;
	out("T %d %d", e->child, (int)r);
}

/* The task's exit line, once the records isolab completed before the task ended are done (and, for a task isolab's run killed, once it was not killed). */
static void exit_turn(struct task *t, int fn, int idx, long code)
{
	wait_gate(t, ENDGATE[t->idx < NTASKS ? t->idx : NTASKS], fn, idx);
	await_death(t, fn, idx);
	out(t->leader ? "E %d %d" : "e %d %d", t->idx, (int)code);
}

/*
 * The end of a task's operations: its end expectations, then, after the records isolab's run
 * completed before the task ended, its exit; a task isolab's run killed waits to be killed
 * (await_death).
 */
static __attribute__((noreturn)) void task_end(struct task *t, long code)
{
	end_checks(t);
	exit_turn(t, -1, -1, code);
	for (;;) sys6(t->leader ? 231 : 60, code, 0, 0, 0, 0, 0);
}

static int install(int sig, void (*h)(int, siginfo_t *, void *), unsigned long flags, u64 mask)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = h;
	sa.sa_flags = (int)flags;
	memcpy(&sa.sa_mask, &mask, sizeof mask);
	return sigaction(sig, &sa, 0);
}

/* The shared page: a memfd at SHARED_FD, so that a task that executes a program maps the same page again. */
static int map_shared(void)
{
	int fd = (int)sys6(319, (long)"isolab-host", 0, 0, 0, 0, 0); /* memfd_create */
	if (fd < 0 || ftruncate(fd, sizeof *S) < 0 || (fd != SHARED_FD && dup2(fd, SHARED_FD) < 0)) return -1;
	if (fd != SHARED_FD) close(fd);
	S = mmap(0, sizeof *S, PROT_READ | PROT_WRITE, MAP_SHARED, SHARED_FD, 0);
	return S == MAP_FAILED ? -1 : 0;
}

/*
 * execve of one of the scenario's programs: the host program executes itself (/proc/self/exe)
 * with the image, the task, its next record and whether it left isolab's order; main then
 * runs the image's main for the task (exec_entry). Returns only if the execve failed.
 */
static long exec_image(struct task *t, int image)
{
	char a[4][24];
	snprintf(a[0], sizeof a[0], "%d", image);
	snprintf(a[1], sizeof a[1], "%d", t->idx);
	snprintf(a[2], sizeof a[2], "%d", t->next);
	snprintf(a[3], sizeof a[3], "%d", t->off);
	char *argv[] = { "isolab-host", "--exec", a[0], a[1], a[2], a[3], 0 };
	return sys6(59, (long)"/proc/self/exe", (long)argv, (long)environ, 0, 0, 0);
}

static void install_image(int image);
static void image_main(int image, struct task *t);

/* A task that executed a program, in its new image: the shared page again, the task's records from where it was, the image's fault recorders (execve reset the handlers), then the image's main. */
static int exec_entry(char **argv)
{
	int image = atoi(argv[2]), idx = atoi(argv[3]), next = atoi(argv[4]), off = atoi(argv[5]);
	S = mmap(0, sizeof *S, PROT_READ | PROT_WRITE, MAP_SHARED, SHARED_FD, 0);
	if (S == MAP_FAILED) return 2;
	struct task *t = &TASKS[idx >= 0 && idx < NTASKS ? idx : NTASKS];
	t->idx = idx >= 0 && idx < NTASKS ? idx : NTASKS;
	t->image = image;
	t->leader = 1; /* execve made it its group's leader (de_thread) */
	t->off = off || t->idx == NTASKS;
	if (t->idx < NTASKS) { t->recs = RECS[t->idx]; t->nrec = NREC[t->idx]; }
	t->next = next;
	install_image(image);
	task_start(t);
	image_main(image, t);
	task_end(t, 0);
}

/* A top-level process's descriptors as isolab's: 0, 1 and 2 on /dev/null, nothing else but the report and the shared page. */
static void process_files(void)
{
	int fd = open("/dev/null", O_RDWR);
	for (int i = 0; i < 3; i++) if (fd != i) dup2(fd, i);
	if (fd > 2) close(fd);
	for (int i = 3; i < REPORT_FD; i++) if (i != SHARED_FD) close(i);
}
`;

/** Bytes of report lines one --stress round may write (a round that writes more is marked, not cut short). */
const STRESS_BUF = 1 << 16;

/** The plain program's main: one run of the scenario, reported as it goes. */
const PLAIN_MAIN = `int main(int argc, char **argv)
{
	if (argc > 5 && !strcmp(argv[1], "--exec")) return exec_entry(argv);
	if (map_shared() < 0) return 2;
	if (fcntl(REPORT_FD, F_GETFD) < 0 && dup2(1, REPORT_FD) < 0) return 2;
	run_scenario();
	return 0;
}`;

/**
 * The --stress program's main: rounds of the scenario until the time budget (argv[1], seconds)
 * or the round limit (argv[2]; 0, none) is spent. Each round runs the scenario afresh under a
 * supervisor of its own; the two racing operations meet at a barrier and one of them is held
 * back by the round's delay (spins: > 0 the second, < 0 the first). The delay adapts so that
 * the two cross where the outcome changes: it first probes 1, -1, 2, -2, 4, ... spins until
 * each order has been seen whole (one operation ended before the other started), learning the
 * outcomes each order gives; it then moves against the order a round shows (by its times, or
 * inside an overlap by its outcome: one only the first going first gives, or only the
 * second), the step doubling while it keeps its way and halving when it turns. Once both
 * orders have been seen, an outcome neither gave leaves the delay where it is. It prints on
 * REPORT_FD:
 *   O id round class   a new outcome, its first round's report lines, then "."
 *                      (class: 0 the racing operations overlapped in time, 1 the first ended
 *                      before the second started, 2 the second ended before the first started,
 *                      3 not known: one of them did not run)
 *   C id n0 n1 n2 n3   the rounds of outcome id in each class
 *   I rounds ns timeouts barrier-timeouts overflows delay min-delay max-delay cpu0 cpu1 probes
 *     serial1 serial2 dropped (rounds of each order whole; rounds or copies past MAX_OUTCOMES)
 * Every CONTROL_EVERY-th round after probing runs one order whole on purpose (each in turn, at
 * twice the smallest delay that gave it), so that what each order gives keeps being sampled.
 * With a widened mapping (WIDE copies, widen.ts) each copy's loads make a copy outcome, and
 * the delay moves against the order more copies show (as many of each: they crossed inside
 * the region; stay):
 *   Q id round class k a new copy outcome (first seen in copy k), then "q pos value" for each
 *                      load of the mapping, then "."
 *   U id n0 n1 n2 n3   the copies of copy outcome id in rounds of each class
 */
const STRESS_MAIN = String.raw`#define MAX_OUTCOMES 512
#define CONTROL_EVERY 16
#define ROUND_TIMEOUT_S 20
#define MAX_DELAY (1L << 26)

static volatile sig_atomic_t alarmed;
static void on_alarm(int sig) { (void)sig; alarmed = 1; }

static struct { u64 key; long n[4]; } OUTCOMES[MAX_OUTCOMES], COPIES[MAX_OUTCOMES];
static int NOUTCOMES, NCOPIES;

static void put(const char *p, long n)
{
	while (n > 0) {
		long w = write(REPORT_FD, p, n);
		if (w <= 0) return;
		p += w; n -= w;
	}
}

/* The outcome with this key, printed with its round's lines when new; -1 when the table is full. */
static int outcome_id(u64 key, long round, int cls)
{
	for (int i = 0; i < NOUTCOMES; i++)
		if (OUTCOMES[i].key == key) return i;
	if (NOUTCOMES == MAX_OUTCOMES) return -1;
	OUTCOMES[NOUTCOMES].key = key;
	char head[64];
	put(head, snprintf(head, sizeof head, "O %d %ld %d\n", NOUTCOMES, round, cls));
	put(S->buf, S->blen < STRESS_BUF ? S->blen : STRESS_BUF);
	put(".\n", 2);
	return NOUTCOMES++;
}

/* The round was killed after ROUND_TIMEOUT_S. */
static int round_killed;

#if WIDE > 1
/* The outcome of copy k of the widened mapping as a key: each load's value (or its fault), and whether the round left isolab's order or was killed. */
static u64 copy_key(int k)
{
	u64 h = 0xcbf29ce484222325ULL;
	for (int p = 0; p < NRECS; p++) {
		if (!S->repset[p]) continue;
		h = (h ^ (u64)p) * 0x100000001b3ULL;
		h = (h ^ (S->repflt[k][p] ? 0x5a17ULL : S->repv[k][p])) * 0x100000001b3ULL;
		h = (h ^ S->repflt[k][p]) * 0x100000001b3ULL;
	}
	return h ^ ((u64)S->off << 62) ^ ((u64)round_killed << 61);
}

/* The copy outcome with this key, printed with its values when new; -1 when the table is full. */
static int copy_id(u64 key, int k, long round, int cls)
{
	for (int i = 0; i < NCOPIES; i++)
		if (COPIES[i].key == key) return i;
	if (NCOPIES == MAX_OUTCOMES) return -1;
	COPIES[NCOPIES].key = key;
	char line[96];
	put(line, snprintf(line, sizeof line, "Q %d %ld %d %d %d %d\n", NCOPIES, round, cls, k, S->off, round_killed));
	for (int p = 0; p < NRECS; p++) {
		if (!S->repset[p]) continue;
		if (S->repflt[k][p]) put(line, snprintf(line, sizeof line, "q %d F\n", p));
		else put(line, snprintf(line, sizeof line, "q %d %llx\n", p, (unsigned long long)S->repv[k][p]));
	}
	put(".\n", 2);
	return NCOPIES++;
}
#endif

/* The outcomes rounds of each order gave (1: the first went first, 2: the second), up to MAX_SEEN each. */
#define MAX_SEEN 64
static u64 SEEN[3][MAX_SEEN];
static int NSEEN[3];

static int seen_in(int cls, u64 key)
{
	for (int i = 0; i < NSEEN[cls]; i++)
		if (SEEN[cls][i] == key) return 1;
	return 0;
}

static void remember(int cls, u64 key)
{
	if (!seen_in(cls, key) && NSEEN[cls] < MAX_SEEN) SEEN[cls][NSEEN[cls]++] = key;
}

/* One round with delay d: its class (above), or -1 when it could not start; its outcome's key in *key. */
static int round_once(long d, u64 *key, long *timeouts)
{
	memset((void *)S, 0, sizeof *S);
	S->delay = d;
	pid_t r = fork();
	if (r < 0) return -1;
	if (r == 0) { signal(SIGALRM, SIG_DFL); run_scenario(); _exit(0); }
	alarmed = 0;
	alarm(ROUND_TIMEOUT_S);
	int st, killed = 0;
	while (waitpid(r, &st, 0) < 0) {
		if (errno != EINTR) break;
		if (alarmed && !killed) { killed = 1; if (S->pgid) kill(-S->pgid, SIGKILL); kill(r, SIGKILL); }
	}
	alarm(0);
	if (killed) {
		/* What the killed supervisor left comes to the driver (a subreaper too): killed and reaped. */
		++*timeouts;
		if (S->pgid) kill(-S->pgid, SIGKILL);
		while (waitpid(-1, 0, __WALL) > 0 || errno == EINTR);
	}
	round_killed = killed;
	*key = S->key ^ ((u64)S->overflow << 63) ^ ((u64)killed << 62);
	if (!S->t0[0] || !S->t1[0] || !S->t0[1] || !S->t1[1]) return 3;
	if (S->t1[0] < S->t0[1]) return 1;
	if (S->t1[1] < S->t0[0]) return 2;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 5 && !strcmp(argv[1], "--exec")) return exec_entry(argv);
	double seconds = argc > 1 ? strtod(argv[1], 0) : 10;
	long max_rounds = argc > 2 ? strtol(argv[2], 0, 10) : 0;
	if (map_shared() < 0) return 2;
	if (fcntl(REPORT_FD, F_GETFD) < 0 && dup2(1, REPORT_FD) < 0) return 2;
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) == 0)
		for (int c = 0; c < CPU_SETSIZE; c++)
			if (CPU_ISSET(c, &set)) HOSTCPUS[NHOSTCPUS++] = c;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm; /* no SA_RESTART: the wait for a round is interrupted */
	sigaction(SIGALRM, &sa, 0);
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	u64 begin = now_ns(), end = begin + (u64)(seconds * 1e9);
	long d = 0, step = 1, mind = 0, maxd = 0, rounds = 0, timeouts = 0, barrier = 0, overflow = 0, dropped = 0;
	/* Rounds of each order (1, 2); the delay of the smallest magnitude that gave each order whole. */
	long serial[3] = { 0, 0, 0 }, dserial[3] = { 0, 0, 0 };
	int lastdir = 0, probing = 1, probes = 0, control = 0;
	while ((max_rounds == 0 || rounds < max_rounds) && now_ns() < end) {
		if (probing) {
			long mag = 1L << (probes / 2);
			if (mag > MAX_DELAY) { probing = 0; d = 0; }
			else { d = probes % 2 == 0 ? mag : -mag; probes++; }
		}
		/*
		 * Every CONTROL_EVERY-th round after probing is a control: each order in turn, at twice
		 * the smallest delay that gave it whole, so that what each order gives by itself keeps
		 * being sampled while the search stays where they cross. Controls do not move the search.
		 */
		int is_control = !probing && ++control % CONTROL_EVERY == 0;
		int want = control / CONTROL_EVERY % 2 ? 1 : 2;
		long rd = d;
		if (is_control) {
			rd = 2 * dserial[want];
			if (!rd) is_control = 0, rd = d;
			if (rd > MAX_DELAY) rd = MAX_DELAY;
			if (rd < -MAX_DELAY) rd = -MAX_DELAY;
		}
		u64 key;
		int cls = round_once(rd, &key, &timeouts);
		if (cls < 0) break;
		rounds++;
		barrier += S->barrier_timeout;
		overflow += S->overflow;
		int id = outcome_id(key, rounds - 1, cls);
		if (id >= 0) OUTCOMES[id].n[cls]++;
		else dropped++;
		if (rd < mind) mind = rd;
		if (rd > maxd) maxd = rd;
		if (cls == 1 || cls == 2) {
			serial[cls]++;
			if (rd && (!dserial[cls] || labs(rd) <= labs(dserial[cls]))) dserial[cls] = rd;
		}
		/*
		 * What each order gives by itself: every outcome (with widening, every copy's) of a round
		 * whose racing operations did not overlap is remembered for its order. A round is then
		 * told by how many of its copies (one without widening) gave an outcome of one order only.
		 */
		int a = 0, b = 0, both = 0;
#if WIDE > 1
		static u64 keys[WIDE];
		for (int k = 0; k < WIDE; k++) {
			u64 ck = keys[k] = copy_key(k);
			int c = copy_id(ck, k, rounds - 1, cls);
			if (c >= 0) COPIES[c].n[cls]++;
			else dropped++;
			if (cls == 1 || cls == 2) remember(cls, ck);
		}
		for (int k = 0; k < WIDE; k++) {
			u64 ck = keys[k];
			int in1 = seen_in(1, ck), in2 = seen_in(2, ck);
			a += in1 && !in2; b += in2 && !in1; both += in1 && in2;
		}
#else
		if (cls == 1 || cls == 2) remember(cls, key);
		{
			int in1 = seen_in(1, key), in2 = seen_in(2, key);
			a = in1 && !in2; b = in2 && !in1; both = in1 && in2;
		}
#endif
		int informative = NSEEN[1] > 0 && NSEEN[2] > 0;
		if (probing) {
			if (informative) { probing = 0; d = 0; step = 1; lastdir = 0; }
			continue;
		}
		if (is_control) continue;
		int dir = 0;
		if (cls == 1) dir = -1; /* the first ended before the second started: hold the first back more */
		else if (cls == 2) dir = 1; /* the other way round */
		else if (cls == 3) {
			/* One of them never ran (its task was killed while held back, or left isolab's order): hold it back less. */
			if (!S->t0[1] && S->t0[0]) dir = -1;
			else if (!S->t0[0] && S->t0[1]) dir = 1;
		}
		else if (cls == 0) {
			if (a > b) dir = -1; /* more of the first going first */
			else if (b > a) dir = 1;
			else if (!informative || (a == 0 && both > 0)) {
				/* The outcome does not tell the order: the second's start to the middle of the first. */
				u64 mid = S->t0[0] + (S->t1[0] - S->t0[0]) / 2;
				dir = S->t0[1] < mid ? 1 : -1;
			}
			/* else: as many of each, or neither: they crossed where the outcome changes; stay */
		}
		if (dir != 0) {
			if (dir == lastdir) { if (step < MAX_DELAY / 2) step *= 2; }
			else if (lastdir != 0 && step > 1) step /= 2;
			lastdir = dir;
			d += dir * step;
			if (d > MAX_DELAY) d = MAX_DELAY;
			if (d < -MAX_DELAY) d = -MAX_DELAY;
		}
	}
	char line[256];
	for (int i = 0; i < NOUTCOMES; i++)
		put(line, snprintf(line, sizeof line, "C %d %ld %ld %ld %ld\n", i, OUTCOMES[i].n[0], OUTCOMES[i].n[1], OUTCOMES[i].n[2], OUTCOMES[i].n[3]));
	for (int i = 0; i < NCOPIES; i++)
		put(line, snprintf(line, sizeof line, "U %d %ld %ld %ld %ld\n", i, COPIES[i].n[0], COPIES[i].n[1], COPIES[i].n[2], COPIES[i].n[3]));
	int cpu[2];
	for (int k = 0; k < 2; k++) {
		int p = NRACE > k ? PIN[OWNER[RACE[k]]] : -1;
		cpu[k] = p >= 0 && NHOSTCPUS > 0 ? HOSTCPUS[p % NHOSTCPUS] : -1;
	}
	put(line, snprintf(line, sizeof line, "I %ld %llu %ld %ld %ld %ld %ld %ld %d %d %d %ld %ld %ld\n", rounds, (unsigned long long)(now_ns() - begin), timeouts, barrier, overflow, d, mind, maxd, cpu[0], cpu[1], probes, serial[1], serial[2], dropped));
	return 0;
}`;

/** A C identifier for a name. */
function cname(s: string): string {
  return s.replace(/[^A-Za-z0-9_]/g, '_');
}

/** A C comment's text (no comment terminator inside). */
function comment(s: string): string {
  return s.replace(/\*\//g, '* /').replace(/\n/g, ' ');
}

/** A uint64 constant. */
function u64(v: bigint): string {
  return `0x${BigInt.asUintN(64, v).toString(16)}ULL`;
}

/** One image's C: its variables' indices and its functions. */
class ImageGen {
  readonly vars = new Map<string, number>();
  readonly fnIds: Map<string, number>;
  constructor(readonly img: ProgramImage, readonly imageIdx: number, readonly proc: CompiledProcess, readonly support: Support, readonly c: CompiledScenario, readonly plan: Plan) {
    this.fnIds = new Map(img.functions.map((f, i) => [f.name, i]));
    for (const n of HANDLER_NAMES) this.varIndex(n);
    for (const f of img.functions) {
      f.ops.forEach((op, i) => {
        const v = setsVar(op);
        if (v) this.varIndex(v);
        if (op.op === 'cpuid' && op.into) for (const r of ['eax', 'ebx', 'ecx', 'edx']) this.varIndex(`${op.into}_${r}`);
        for (const o of operands(f, i)) if (o) this.refs(o).forEach((n) => this.varIndex(n));
      });
    }
  }

  varIndex(name: string): number {
    let i = this.vars.get(name);
    if (i === undefined) this.vars.set(name, (i = this.vars.size));
    return i;
  }

  private refs(v: CValue): string[] {
    if (v.kind === 1) return [v.name];
    if (v.kind === 5) {
      const out: string[] = [];
      const walk = (n: RtNode): void => {
        if (n.k === 'ref' && n.ref[0] === '$' && n.ref !== '$rsp') out.push(n.ref.slice(1));
        if (n.k === 'un') walk(n.a);
        if (n.k === 'bin') {
          walk(n.a);
          walk(n.b);
        }
      };
      walk(parseRtExpr(v.name));
      return out;
    }
    return [];
  }

  /** A variable as a C lvalue. */
  v(name: string): string {
    return `t->v[${this.varIndex(name)}] /* $${comment(name)} */`;
  }

  /** A compiled operand as a C expression of type u64. */
  value(x: CValue | null | undefined): string {
    if (!x) return '0ULL';
    switch (x.kind) {
      case 0:
        return u64(x.constant);
      case 1:
        return x.add === 0n ? `${this.v(x.name)}` : `(${this.v(x.name)} + ${u64(x.add)})`;
      case 3:
        return `((u64)(uintptr_t)${this.stringVar(x.name)} + ${u64(x.add)})`;
      case 4:
        return `(${this.rsp()} + ${u64(x.add)})`;
      case 5:
        return this.expr(parseRtExpr(x.name));
      default:
        return '0ULL'; // function addresses: such operations are skipped (support.ts)
    }
  }

  private expr(n: RtNode): string {
    switch (n.k) {
      case 'num':
        return u64(n.v);
      case 'ref':
        if (n.ref === '$rsp') return this.rsp();
        if (n.ref[0] === '$') return this.v(n.ref.slice(1));
        if (n.ref[0] === '&') return `((u64)(uintptr_t)${this.stringVar(n.ref.slice(1))})`;
        return '0ULL';
      case 'un':
        return n.op === '!' ? `((u64)!(${this.expr(n.a)}))` : `((u64)${n.op}(${this.expr(n.a)}))`;
      case 'bin': {
        const a = this.expr(n.a);
        const b = this.expr(n.b);
        if (n.op === '/' || n.op === '%') return `udiv(${a}, ${b}, ${n.op === '%' ? 1 : 0})`;
        if (n.op === '<<' || n.op === '>>') return `((${a}) ${n.op} ((${b}) & 63))`;
        return `((u64)((${a}) ${n.op} (${b})))`;
      }
    }
  }

  /** The function being generated is a signal handler. */
  private inHandler = false;

  /**
   * $rsp: in a signal handler, the frame the kernel built (the handler's entry rsp, where isolab
   * reads it too: handlers make no calls); elsewhere the C function's own frame, which is the
   * host program's and compares only by nature.
   */
  private rsp(): string {
    return this.inHandler ? `${this.v('frame')}` : '((u64)(uintptr_t)__builtin_frame_address(0))';
  }

  stringVar(name: string): string {
    return `STR_${this.imageIdx}_${cname(name)}`;
  }

  strings(): string {
    return Object.entries(this.proc.program.strings ?? {})
      .map(([n, s]) => `static const char ${this.stringVar(n)}[] = ${JSON.stringify(s)};`)
      .join('\n');
  }

  fnName(f: CFunction | string): string {
    return `fn_${this.imageIdx}_${this.fnIds.get(typeof f === 'string' ? f : f.name)}`;
  }

  /** Prototypes of the image's functions. */
  prototypes(): string {
    return [`static int THREAD_${this.imageIdx}(void *arg);`, ...this.img.functions.filter((f) => f.name !== '__restore_rt').map((f) => `static void ${this.fnName(f)}(struct task *volatile t, sigjmp_buf *ij);`)].join('\n');
  }

  /** The C function for `f`. */
  fn(f: CFunction): string {
    const lines: string[] = [];
    const fid = this.fnIds.get(f.name)!;
    this.inHandler = this.proc.handlers.some((h) => h.handler === f.name);
    lines.push(`/* ${comment(this.img.name)}: ${comment(f.name)} */`);
    lines.push(`static void ${this.fnName(f)}(struct task *volatile t, sigjmp_buf *ij)`, '{');
    lines.push('\tsigjmp_buf jb;', '\tsigjmp_buf *volatile saved = t->jbp;', '\tconst struct rec *volatile e;', '\t(void)ij; (void)e;', '\tt->jbp = &jb;');
    f.ops.forEach((op, i) => {
      const info = this.c.ops.get(this.img.name, f.name, i);
      lines.push(`op_${fid}_${i}: /* ${info ? `${comment(info.label)}` : comment(op.op)} */`);
      const body = this.op(f, fid, i);
      if (body === null) return;
      lines.push(`\tif (sigsetjmp(jb, 1)) {`, `\t\tt->jbp = &jb;`, `\t} else {`, ...body.map((l) => `\t\t${l}`), '\t}');
    });
    lines.push(`op_${fid}_${f.ops.length}:`, '\tt->jbp = saved;');
    if (f.end === FnEnd.Exit) lines.push('\ttask_end(t, 0);');
    lines.push('}');
    return lines.join('\n');
  }

  /** The statements of operation i of f (inside its sigsetjmp block), or null for an operation with none of its own (set, jump). */
  private op(f: CFunction, fid: number, i: number): string[] | null {
    const op = f.ops[i];
    const key = opKey(this.img.name, f.name, i);
    const gate = `e = turn(t, ${fid}, ${i}); t->cur = e; t->op_fn = ${fid}; t->op_idx = ${i};`;
    if (op.op === 'syscall' && (syscallName(op.name) === 'exit' || syscallName(op.name) === 'exit_group') && !this.support.skipped.has(key)) return this.syscall(f, i);
    if (this.support.skipped.has(key)) {
      // Not run: its record (if isolab made one) is written as skipped, in turn.
      if (op.op === 'set' || op.op === 'jump') return null;
      return [gate, 't->cur = 0;', 'if (e) rec_skipped(t, e);'];
    }
    const into = (v: string): string[] => {
      const name = setsVar(op);
      return name ? [`${this.v(name)} = ${v};`] : [];
    };
    switch (op.op) {
      case 'set':
        // A register move: no record, no turn.
        return [`${this.v(op.var)} = ${this.value(f.values[i])};`];
      case 'jump':
        return [`goto op_${fid}_${op.to};`];
      case 'load': {
        const size = op.size ?? 8;
        return [gate, `{ u64 a = ${this.value(f.addrs[i])}; u64 x = *(volatile uint${size * 8}_t *)(uintptr_t)a;`, `  e = t->cur; t->cur = 0;`, ...into('x').map((l) => `  ${l}`), `  if (in_wide(a)) wide_load(t, e, a, x, ${size});`, `  rec_value(e, x); }`];
      }
      case 'store': {
        const size = op.size ?? 8;
        return [gate, `{ u64 a = ${this.value(f.addrs[i])}; u64 x = ${this.value(f.values[i])};`, `  *(volatile uint${size * 8}_t *)(uintptr_t)a = (uint${size * 8}_t)x;`, `  e = t->cur; t->cur = 0; if (in_wide(a)) wide_store(t, a, x, ${size}); rec_none(e); }`];
      }
      case 'work':
        return [gate, 't->cur = 0;', `rec_value(e, ${op.count}ULL);`];
      case 'longjmp':
        return ['if (ij) siglongjmp(*ij, 1);'];
      case 'return':
        return ['t->jbp = saved;', f.end === FnEnd.Exit ? 'task_end(t, 0);' : 'return;'];
      case 'while': {
        const cond = `(${this.value(f.values[i])}) != 0`;
        const holds = op.until ? `!(${cond})` : `(${cond})`;
        return [
          `{ u64 n = ${this.v(op.counter)}; int h = ${holds};`,
          `  if (h && n < ${op.max}ULL) { ${this.v(op.counter)} = n + 1; }`,
          `  else { ${gate} t->cur = 0; rec_value(e, h ? ${op.max + 1}ULL : n); t->jbp = &jb; goto op_${fid}_${op.end}; } }`,
        ];
      }
      case 'wrpkru':
        return [gate, `{ unsigned x = (unsigned)${this.value(f.values[i])}; __asm__ volatile("wrpkru" :: "a"(x), "c"(0), "d"(0) : "memory"); e = t->cur; t->cur = 0; rec_none(e); }`];
      case 'rdpkru':
        return [gate, '{ unsigned x, d; __asm__ volatile("rdpkru" : "=a"(x), "=d"(d) : "c"(0)); e = t->cur; t->cur = 0;', ...into('x').map((l) => `  ${l}`), '  rec_value(e, x); }'];
      case 'syscall':
        if (syscallName(op.name) === 'execve') return this.execve(f, fid, i);
        return [gate, ...this.syscall(f, i)];
      case 'int80': {
        // exit and exit_group make no record: no turn, as for the 64-bit ones.
        const ends = ['exit', 'exit_group'].includes(ia32Entry(op.name)?.name ?? '');
        return ends ? this.int80(f, i) : [gate, ...this.int80(f, i)];
      }
      case 'mov_sreg':
        // MOV Sreg, r16 (DS, ES or SS: support.ts skips FS and GS): a bad selector raises #GP, #NP or #SS.
        return [gate, `{ unsigned short x = (unsigned short)${this.value(f.values[i])}; __asm__ volatile("mov %0, %%${op.sreg}" :: "r"(x) : "memory"); e = t->cur; t->cur = 0; rec_none(e); }`];
      case 'read_sreg':
        return [gate, `{ unsigned short s; __asm__ volatile("mov %%${op.sreg}, %0" : "=r"(s)); u64 x = s; e = t->cur; t->cur = 0;`, ...into('x').map((l) => `  ${l}`), '  rec_value(e, x); }'];
      case 'lar':
      case 'lsl': {
        // LAR, LSL with a 64-bit destination: the rights or limit when ZF=1, else the destination unchanged and isolab's -1.
        return [gate, `{ u64 d = 0; unsigned char z; unsigned sel = (unsigned short)${this.value(f.values[i])};`, `  __asm__ volatile("${op.op} %w2, %0; setz %1" : "+r"(d), "=qm"(z) : "r"(sel) : "cc");`, '  u64 x = z ? d : ~0ULL; e = t->cur; t->cur = 0;', ...into('x').map((l) => `  ${l}`), '  rec_value(e, x); }'];
      }
      case 'verr':
      case 'verw':
        return [gate, `{ unsigned char z; unsigned sel = (unsigned short)${this.value(f.values[i])};`, `  __asm__ volatile("${op.op} %w1; setz %0" : "=qm"(z) : "r"(sel) : "cc");`, '  u64 x = z; e = t->cur; t->cur = 0;', ...into('x').map((l) => `  ${l}`), '  rec_value(e, x); }'];
      default:
        // Not reached: support.ts skips every other operation.
        return [gate, 't->cur = 0;', 'if (e) rec_skipped(t, e);'];
    }
  }

  private syscall(f: CFunction, i: number): string[] {
    const op = f.ops[i] as { op: 'syscall'; name: string | number; into?: string; child?: unknown };
    const name = syscallName(op.name) ?? String(op.name);
    const nr = typeof op.name === 'number' ? op.name : syscallByName(op.name);
    const args = [0, 1, 2, 3, 4, 5].map((j) => (j < f.args[i].length ? this.value(f.args[i][j]) : '0ULL'));
    const out: string[] = [`{ u64 a[6] = { ${args.join(', ')} }; long r;`];
    const checks: string[] = [];
    if (PID_ARG0.has(name)) out.push(`  a[0] = (u64)host_pid((long)(int)a[0]);${name === 'tgkill' ? ' a[1] = (u64)host_pid((long)(int)a[1]);' : ''}`);
    // kill(0) and kill(< -1) name isolab's one process group: on the host, the group of the scenario's processes (S->pgid), without the supervisor.
    if (name === 'kill') out.push('  if ((int)a[0] < -1) a[0] = (u64)(long)-S->pgid;');
    if (PID_ARG0.has(name)) checks.push(`if (!(${name === 'prlimit64' || name === 'kill' ? '(int)a[0] == 0 || ' : ''}${name === 'kill' ? '(int)a[0] < -1 || ' : ''}own_pid((long)(int)a[0]))) { t->cur = 0; rec_refused(t, e, 1, a[0]); } else`);
    for (const j of FD_ARGS[name] ?? []) checks.push(`if ((int)a[${j}] == REPORT_FD || (int)a[${j}] == SHARED_FD) { t->cur = 0; rec_refused(t, e, 2, a[${j}]); } else`);
    // The widened mapping (--stress): COPIES times as large, where the host puts it.
    if (name === 'mmap') out.push('  int wide = WIDE > 1 && e && e->pos == WIDE_POS; if (wide) a[1] = (u64)WIDE_LEN * WIDE;', '  int forced = e && e->mmap && !wide; if (forced) { a[0] = e->mmap; a[3] |= MAP_FIXED_NOREPLACE; }');
    if (RANGE_SYSCALLS.has(name)) out.push(`  if (in_wide(a[0])) wide_range(${nr}, a);`);
    const into = op.into ? `${this.v(op.into)} = (u64)r; ` : '';
    if (name === 'exit' || name === 'exit_group') {
      out.push(`  exit_turn(t, ${this.fnIds.get(f.name)}, ${i}, (long)a[0]);`, `  for (;;) sys6(${nr}, a[0], 0, 0, 0, 0, 0); }`);
      return out;
    }
    if ((name === 'fork' || name === 'vfork' || (name === 'clone' && !(Number(f.args[i][0]?.constant ?? 0n) & CLONE_THREAD))) && op.child !== undefined) {
      const child = this.fnName(`${f.name}.${i}.child`);
      const call = name === 'clone' ? `sys6(${nr}, a[0], a[1], a[2], a[3], a[4], 0)` : `sys6(${nr}, 0, 0, 0, 0, 0, 0)`;
      // The parent reports its child's tid (child_tid) before recording the value.
      out.push(`  r = ${call};`, `  if (r == 0) { struct task *c = child_task(t, e ? e->child : -1); task_start(c); ${child}(c, 0); task_end(c, 0); }`, '  child_tid(e, r);');
    } else if (name === 'clone' && op.child !== undefined) {
      const child = this.fnName(`${f.name}.${i}.child`);
      // A thread: glibc's clone() runs the child's function on the new stack, then exit(0).
      out.push(
        `  struct task *c = child_task(t, e ? e->child : -1); c->leader = 0; c->entry = ${this.fnIds.get(`${f.name}.${i}.child`)};`,
        `  r = clone(THREAD_${this.imageIdx}, (void *)(uintptr_t)a[1], (int)a[0], c, (pid_t *)(uintptr_t)a[2], (void *)(uintptr_t)a[4], (pid_t *)(uintptr_t)a[3]);`,
        '  if (r < 0) r = -errno;',
        '  child_tid(e, r);',
      );
      this.threadFns.set(child, this.fnIds.get(`${f.name}.${i}.child`)!);
    } else {
      // A syscall after which isolab's task died is reported as started first (rec_pending).
      out.push(`  ${checks.join(' ')} {`, '    rec_pending(e);', `    r = sys6(${nr}, a[0], a[1], a[2], a[3], a[4], a[5]);`);
      if (name === 'mmap') out.push('    if (wide && r > 0) { wide_base0 = (u64)r + (u64)(WIDE - 1) * WIDE_LEN; r = (long)wide_base0; }', '    if (forced && r == -17) { t->cur = 0; rec_refused(t, e, 3, (u64)r); } else');
      out.push(`    { e = t->cur; t->cur = 0; ${into}rec_value(e, (u64)r); } } }`);
      return out;
    }
    out.push(`  e = t->cur; t->cur = 0; ${into}rec_value(e, (u64)r); }`);
    return out;
  }

  /**
   * execve of one of the scenario's programs (support.ts skips any other path). isolab's
   * execve that succeeded leaves no record: the host waits for the records before it (the gate
   * of the task's next record, which the new image makes) and executes itself as the program
   * (exec_image). One that failed on isolab has a record, which the host cannot reproduce by
   * executing itself: reported as not run.
   */
  private execve(f: CFunction, fid: number, i: number): string[] {
    const arg = f.args[i][0]!;
    const path = (this.proc.program.strings ?? {})[arg.name];
    const image = this.support.images.findIndex((img) => img.name === path);
    const failed = this.plan.records.some((r) => r.image === this.imageIdx && r.fn === f.name && r.index === i);
    if (failed) return ['e = turn(t, ' + fid + ', ' + i + '); t->cur = 0;', 'if (e) rec_skipped(t, e);'];
    return [
      `if (t->next < t->nrec && !t->off && !S->off) wait_gate(t, t->recs[t->next].gate, ${fid}, ${i});`,
      `exec_image(t, ${image});`,
      `diverge(t, ${fid}, ${i}); /* the host's execve failed */`,
    ];
  }

  /**
   * INT 0x80: the number in EAX, the arguments in EBX, ECX, EDX, ESI, EDI and EBP (saved around
   * the instruction, below the red zone); the result is RAX as the kernel left it. A pid is
   * translated and checked as for kill, a descriptor as for read, write and close; exit and
   * exit_group end the task as the 64-bit ones do. support.ts skips any number isolab's ia32
   * table does not have.
   */
  private int80(f: CFunction, i: number): string[] {
    const op = f.ops[i] as { op: 'int80'; name: string | number; into?: string };
    const entry = ia32Entry(op.name);
    // EAX as the scenario gives it (the kernel reads its low 32 bits); a number past every ia32 table is -ENOSYS on both.
    const nr = typeof op.name === 'number' ? u64(BigInt(op.name)) : String(entry!.nr);
    const name = entry?.name ?? '';
    const args = [0, 1, 2, 3, 4, 5].map((j) => (j < f.args[i].length ? this.value(f.args[i][j]) : '0ULL'));
    const out: string[] = [`{ u64 a[6] = { ${args.join(', ')} }; long r;`];
    const int80 = `__asm__ volatile("sub $128, %%rsp\\n\\tpush %%rbp\\n\\tmov %k7, %%ebp\\n\\tint $0x80\\n\\tpop %%rbp\\n\\tadd $128, %%rsp" : "=a"(r) : "0"((long)${nr}), "b"(a[0]), "c"(a[1]), "d"(a[2]), "S"(a[3]), "D"(a[4]), "r"(a[5]) : "memory", "cc", "r8", "r9", "r10", "r11");`;
    if (name === 'exit' || name === 'exit_group') {
      out.push(`  exit_turn(t, ${this.fnIds.get(f.name)}, ${i}, (long)a[0]);`, `  for (;;) ${int80} }`);
      return out;
    }
    const checks: string[] = [];
    if (name === 'kill') {
      out.push('  a[0] = (u64)(uint32_t)host_pid((long)(int)a[0]);', '  if ((int)a[0] < -1) a[0] = (u64)(uint32_t)-S->pgid;');
      checks.push('if (!((int)a[0] == 0 || (int)a[0] < -1 || own_pid((long)(int)a[0]))) { t->cur = 0; rec_refused(t, e, 1, a[0]); } else');
    }
    if (name === 'read' || name === 'write' || name === 'close') checks.push('if ((int)a[0] == REPORT_FD || (int)a[0] == SHARED_FD) { t->cur = 0; rec_refused(t, e, 2, a[0]); } else');
    const into = op.into ? `${this.v(op.into)} = (u64)r; ` : '';
    out.push(`  ${checks.join(' ')} {`, '    rec_pending(e);', `    ${int80}`, `    { e = t->cur; t->cur = 0; ${into}rec_value(e, (u64)r); } } }`);
    return out;
  }

  /** The child functions run as threads (glibc clone's entry points), with their function ids. */
  readonly threadFns = new Map<string, number>();

  /** The C signal handlers of the process, and the function installing them (and the fault recorder for the rest). */
  handlers(): string {
    const lines: string[] = [];
    const names = new Set(this.proc.handlers.map((h) => (typeof h.handler === 'string' ? h.handler : '')).filter((n) => n !== ''));
    for (const h of names) {
      const fn = this.fnName(h);
      lines.push(`static void H_${fn}(int sig, siginfo_t *si, void *uc)`, '{');
      const siginfo = this.proc.handlers.some((x) => x.handler === h && (x.flags & SA_SIGINFO) !== 0) ? 1 : 0;
      lines.push('\tstruct task *t = self();', '\tsweep_fault(t, sig);', `\tint faulted = record_fault(t, sig, si, uc, ${siginfo});`, '\tint ffn = t->op_fn, fidx = t->op_idx;', '\tconst struct rec *cur = t->cur;');
      lines.push(`\t${this.v('signo')} = (u64)sig; ${this.v('si_code')} = (u64)(int64_t)si->si_code; ${this.v('si_addr')} = (u64)(uintptr_t)si->si_addr;`);
      lines.push(`\t${this.v('si_pkey')} = si->si_code == 4 && sig == 11 ? *(uint32_t *)((char *)si + 0x20) : 0;`);
      lines.push(`\t${this.v('frame')} = (u64)(uintptr_t)uc - 8; ${this.v('siginfo')} = (u64)(uintptr_t)si; ${this.v('ucontext')} = (u64)(uintptr_t)uc;`);
      lines.push(`\t${fn}(t, t->jbp);`);
      lines.push('\t/* Returning: a faulting instruction runs again, as a new record of isolab\'s run. */', '\tif (faulted) t->cur = turn(t, ffn, fidx);', "\telse t->cur = cur; /* a signal at a syscall's return: the syscall's record is still to be written */", '\tt->op_fn = ffn; t->op_idx = fidx;', '}');
    }
    lines.push(`static void install_${this.imageIdx}(void)`, '{');
    const handled = new Set<number>();
    for (const h of this.proc.handlers) {
      handled.add(h.signo);
      if (typeof h.handler === 'string') lines.push(`\tinstall(${h.signo}, H_${this.fnName(h.handler)}, ${h.flags}UL, ${u64(h.mask)});`);
      else lines.push(`\t{ struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_handler = (void (*)(int))(uintptr_t)${u64(h.handler)}; sa.sa_flags = ${h.flags}; sigaction(${h.signo}, &sa, 0); }`);
    }
    for (const s of FAULT_SIGNALS) if (!handled.has(s)) lines.push(`\tinstall(${s}, on_unhandled_fault, SA_SIGINFO | SA_RESETHAND | SA_NODEFER, 0);`);
    lines.push('}');
    // A thread's start: its task (made by the clone), its function by id, then exit(0) as a thread returning from its start routine.
    lines.push(`static int THREAD_${this.imageIdx}(void *arg)`, '{', '\tstruct task *c = arg;', '\ttask_start(c);', '\tswitch (c->entry) {');
    for (const [child, id] of this.threadFns) lines.push(`\tcase ${id}: ${child}(c, 0); break;`);
    lines.push('\t}', '\ttask_end(c, 0);', '}');
    return lines.join('\n');
  }
}

/**
 * What the --stress program repeats: the positions of the racing records (the first is the one
 * isolab's task started first), and each task's scenario CPU (-1: not pinned).
 */
export interface StressGen {
  race: number[];
  pin: number[];
  /** The mapping widened into copies (widen.ts), if any. */
  wide?: WideGen;
}

/** The whole C program for `plan`; with `stress`, the program that repeats the race (STRESS_MAIN). */
export function generateC(c: CompiledScenario, support: Support, plan: Plan, stress?: StressGen): string {
  // A program execve starts (support.ts puts them after the processes) has no handlers: execve resets them.
  const gens = support.images.map((img, i) => new ImageGen(img, i, c.processes[i] ?? { name: img.name, program: c.images[i - c.processes.length].program, handlers: [] }, support, c, plan));
  // The end expectations' rows (their variables first get their indices, before NVARS is fixed).
  const endRows = plan.ends.map((x) => {
    const g = gens[plan.tasks[x.task].image];
    return `{ ${x.task}, ${x.id}, ${x.kind === 'memory' ? 1 : 0}, ${x.variable !== undefined ? g.varIndex(x.variable) : -1}, ${x.size}, ${u64(x.add)} }`;
  });
  const nvars = Math.max(1, ...gens.map((g) => g.vars.size));
  const parts: string[] = [];
  parts.push(`/*\n * ${comment(c.name)}: generated by isolab host from ${comment(c.locator?.file ?? c.name)}.\n * Build: cc -O1 -static -o prog prog.c; run: ./prog (the report on descriptor ${REPORT_FD} if it is open, else on standard output).\n */`);
  parts.push(`#define NVARS ${nvars}\n#define NTASKS ${plan.tasks.length}\n#define NRECS ${plan.records.length}\n#define NENDS ${plan.ends.length}`);
  parts.push(`#define STRESS ${stress ? 1 : 0}\n#define NRACE ${stress?.race.length ?? 0}\n#define STRESS_BUF ${STRESS_BUF}`);
  const wide = stress?.wide;
  parts.push(`#define WIDE ${wide?.copies ?? 1}\n#define WIDE_LEN ${u64(wide?.len ?? 0n)}\n#define WIDE_POS ${wide?.pos ?? -1}\n#define WIDE_ISOLAB ${u64(wide?.isolab ?? 0n)}`);
  const raceOf = new Map((stress?.race ?? []).map((pos, k) => [pos, k]));
  // Records per task (a C array may not be empty: a dummy entry where a task has none).
  const recDecls: string[] = [];
  for (const t of plan.tasks) {
    const killed = t.exit !== null && t.exit.startsWith('killed by');
    const rows = t.records.map((r, i) => {
      const g = gens[r.image];
      const kind = support.images[r.image].byName.get(r.fn)?.ops[r.index]?.op;
      const syscall = kind === 'syscall' || kind === 'int80';
      return `{ ${g.fnIds.get(r.fn)}, ${r.index}, ${r.pos}, ${r.gate}, ${r.child}, ${u64(r.mmap)}, ${(r.skipped ? 1 : 0) | (r.record.signal ? 2 : 0) | (killed && i === t.records.length - 1 ? 4 : 0) | (syscall ? 8 : 0)}, ${raceOf.get(r.pos) ?? -1} }`;
    });
    recDecls.push(`static const struct rec RECS_${t.idx}[] = { ${rows.length ? rows.join(',\n\t') : '{ -1, -1, -1, 0, -1, 0, 0, -1 }'} }; /* ${comment(t.name)} */`);
  }
  const runtime = RUNTIME.replace('@REPORT_FD@', String(REPORT_FD)).replace('@TURN_TIMEOUT_S@', String(TURN_TIMEOUT_S)).replace('@FAULT_SIGNALS@', FAULT_SIGNALS.join(', '));
  // The runtime refers to RECS and NREC: declare them first.
  parts.push(runtime.replace('static struct shared *S;', `static struct shared *S;\n${recDecls.join('\n')}\nstatic const struct rec *const RECS[NTASKS + 1] = { ${plan.tasks.map((t) => `RECS_${t.idx}`).join(', ')}${plan.tasks.length ? ', ' : ''}0 };\nstatic const int NREC[NTASKS + 1] = { ${plan.tasks.map((t) => t.records.length).join(', ')}${plan.tasks.length ? ', ' : ''}0 };`));
  parts.push(`const int OWNER[NRECS + 1] = { ${plan.records.map((r) => r.task).join(', ')}${plan.records.length ? ', ' : ''}-1 };`);
  parts.push(`const struct endcheck ENDS[${plan.ends.length} + 1] = { ${[...endRows, '{ -1, -1, 0, -1, 0, 0 }'].join(', ')} };`);
  parts.push(`const int MODEL_TID[NTASKS + 1] = { ${plan.tasks.map((t) => t.tid).join(', ')}${plan.tasks.length ? ', ' : ''}0 };`);
  parts.push(`const int ENDGATE[NTASKS + 1] = { ${plan.tasks.map((t) => t.endGate).join(', ')}${plan.tasks.length ? ', ' : ''}0 };`);
  parts.push(`const int DIES[NTASKS + 1] = { ${plan.tasks.map((t) => (t.dies ? 1 : 0)).join(', ')}${plan.tasks.length ? ', ' : ''}0 };`);
  if (stress) {
    parts.push(`const int RACE[NRACE + 1] = { ${[...stress.race, -1].join(', ')} };`);
    parts.push(`const int PIN[NTASKS + 1] = { ${[...plan.tasks.map((t) => stress.pin[t.idx] ?? -1), -1].join(', ')} };`);
  }
  // Handler functions, per image.
  const handlerFns = gens.map((g) => new Set(g.proc.handlers.filter((h) => typeof h.handler === 'string').map((h) => g.fnIds.get(h.handler as string)!)));
  parts.push(`static int is_handler_fn(int image, int fn)\n{\n\tswitch (image) {\n${handlerFns.map((s, i) => `\tcase ${i}: return ${[...s].map((f) => `fn == ${f}`).join(' || ') || '0'};`).join('\n')}\n\t}\n\treturn 0;\n}`);
  for (const g of gens) {
    parts.push(g.strings());
    parts.push(g.prototypes());
  }
  const bodies = gens.map((g) => g.img.functions.filter((f) => f.name !== '__restore_rt').map((f) => g.fn(f)).join('\n\n'));
  for (let i = 0; i < gens.length; i++) {
    parts.push(bodies[i]);
    parts.push(gens[i].handlers());
  }
  // What exec_entry runs for an image: its fault recorders, and its main.
  parts.push(`static void install_image(int image)\n{\n\tswitch (image) {\n${gens.map((_g, i) => `\tcase ${i}: install_${i}(); break;`).join('\n')}\n\t}\n}`);
  parts.push(`static void image_main(int image, struct task *t)\n{\n\tswitch (image) {\n${gens.map((g, i) => `\tcase ${i}: ${g.fnName('main')}(t, 0); break;`).join('\n')}\n\t}\n}`);
  // run_scenario: the supervisor forks the scenario's processes and reports their wait statuses.
  const top = plan.tasks.filter((t) => t.top);
  const main: string[] = ['static void run_scenario(void)', '{'];
  // Under --stress the round's supervisor reaps every process of the round, orphans included.
  main.push('#if STRESS', '\tprctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);', '#endif');
  main.push(`\tpid_t pids[${Math.max(1, top.length)}];`);
  for (const [n, t] of top.entries()) {
    // The scenario's processes share one process group, the first one's (isolab has one group holding every process), the supervisor not in it.
    main.push(`\tpids[${n}] = fork();`, `\tif (pids[${n}] > 0) { if (!S->pgid) S->pgid = pids[0]; setpgid(pids[${n}], S->pgid); }`, `\tif (pids[${n}] == 0) {`, `\t\tstruct task *t = &TASKS[${t.idx}];`, `\t\tsetpgid(0, ${n === 0 ? '0' : 'pids[0]'});`);
    main.push(`\t\tt->idx = ${t.idx}; t->image = ${t.image}; t->leader = 1; t->recs = RECS[${t.idx}]; t->nrec = NREC[${t.idx}];`);
    main.push(`\t\tprocess_files();`, `\t\tinstall_${t.image}();`, '\t\ttask_start(t);', `\t\t${gens[t.image].fnName('main')}(t, 0);`, '\t\ttask_end(t, 0);', '\t}');
  }
  main.push(`\tfor (int i = 0; i < ${top.length}; i++) {`, '\t\tint st = 0;', '\t\tif (pids[i] > 0 && waitpid(pids[i], &st, __WALL) == pids[i]) out("W %d %d", TOP[i], st);', '\t}');
  main.push('#if STRESS', '\twhile (waitpid(-1, 0, __WALL) > 0 || errno == EINTR);', '#endif', '}');
  parts.push(`static const int TOP[] = { ${top.map((t) => t.idx).join(', ') || '-1'} };`);
  parts.push(main.join('\n'));
  parts.push(stress ? STRESS_MAIN : PLAIN_MAIN);
  return parts.join('\n\n') + '\n';
}
