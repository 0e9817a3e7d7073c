/*
 * The MADV_FREE lost-write race, natively (docs/findings.md): a forked child loses a value it
 * read from a page its parent had given to madvise(MADV_FREE), when a thread of the parent
 * wrote the page while fork copied its PTE.
 *
 * Each round:
 *  1. the parent maps PAGES private anonymous pages (no THP), writes V into each and, in mode
 *     `free`, gives them to MADV_FREE: the folios are lazyfree and clean, and the PTEs' dirty
 *     bits are the only record of a later write;
 *  2. it releases the writer thread (pinned to a second CPU), which waits `delay` spins and then
 *     stores W into each page from the top down, and forks at once: fork's copy_pte_range
 *     walks the region from the bottom up, so the two cross inside it. A store that lands
 *     between fork's read of a PTE and its write-protect (ptep_set_wrprotect's cmpxchg) leaves
 *     W in the shared folio under the child's clean PTE: a window hit;
 *  3. the child reads every page (r1) and counts the pages holding W, and the region's dirty
 *     pages from /proc/self/smaps (Shared_Dirty + Private_Dirty: a dirty or SavedDirty PTE, or
 *     a dirty folio); pages holding W beyond the dirty ones are window hits;
 *  4. the parent waits for the writer, then breaks COW on every page (mode `cow`: a store to
 *     each) or unmaps the region (`unmap`); the dirty record of a hit page dies with its PTE;
 *  5. the child (in mode `rewrite` after storing its values back, which dirties its PTEs) runs
 *     MADV_PAGEOUT on the region and reads it again (r2): a page whose r1 was W and whose r2 is
 *     not is lost. A page that held V may legitimately read 0 (MADV_FREE allowed its discard).
 * A delay adapts round by round so that the writer and fork cross inside the region: positive,
 * the writer spins that long after its release; negative, the parent spins that long before
 * fork. It grows when the child saw W in more than half the pages and shrinks otherwise.
 *
 * Usage: madvfree [--seconds S] [--rounds N] [--pages P] [--mode free|nofree|rewrite]
 *                 [--parent cow|unmap]
 * Prints one JSON object: the options, rounds, crossings (rounds where the child saw W in some
 * but not all pages), windowHits, lostPages, lostRounds, the CPUs used, and whether smaps and
 * MADV_PAGEOUT were available. Exit status 0 after a completed run (a loss is reported, not an
 * error); 2 for a usage error; 3 when a system call the method needs fails.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

#define PAGE 4096UL
#define WORDS (PAGE / sizeof(uint64_t))
#define MAX_PAGES 4096

enum mode { MODE_FREE, MODE_NOFREE, MODE_REWRITE };
enum parent_act { PARENT_COW, PARENT_UNMAP };

/* What the child tells the parent: after its first read, then after reclaim. */
struct first_report {
	int w_pages;     /* pages holding W */
	int dirty_pages; /* the region's dirty pages per smaps, or -1 */
};
struct second_report {
	int lost;        /* pages whose W did not survive MADV_PAGEOUT */
	int pageout_err; /* errno of MADV_PAGEOUT, or 0 */
};

/* The round the writer is released for, and the one it has finished. */
static _Atomic unsigned long go_round;
static _Atomic unsigned long done_round;
static volatile uint64_t *_Atomic writer_region;
static _Atomic uint64_t writer_value;
static _Atomic long writer_delay;
static int npages = 512;

static void die(const char *what)
{
	fprintf(stderr, "madvfree: %s: %s\n", what, strerror(errno));
	exit(3);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Pins the calling thread to `cpu` (a no-op when cpu < 0). */
static void pin(int cpu)
{
	if (cpu < 0)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		die("sched_setaffinity");
}

/* The writer: for each round, wait for the release, spin `delay`, store W from the top down. */
static void *writer(void *arg)
{
	pin(*(int *)arg);
	unsigned long last = 0;
	for (;;) {
		unsigned long r;
		while ((r = atomic_load_explicit(&go_round, memory_order_acquire)) == last)
			;
		if (r == ~0UL)
			return NULL;
		last = r;
		volatile uint64_t *region = atomic_load(&writer_region);
		uint64_t w = atomic_load(&writer_value);
		for (long d = atomic_load(&writer_delay); d > 0; d--)
			__asm__ volatile("pause");
		for (int i = npages - 1; i >= 0; i--)
			region[i * WORDS] = w;
		atomic_store_explicit(&done_round, r, memory_order_release);
	}
}

/* The region's dirty pages in /proc/self/smaps (Shared_Dirty + Private_Dirty), or -1. */
static int smaps_dirty_pages(unsigned long start)
{
	static char buf[1 << 20];
	int fd = open("/proc/self/smaps", O_RDONLY);
	if (fd < 0)
		return -1;
	size_t len = 0;
	ssize_t n;
	while (len < sizeof(buf) - 1 && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += n;
	close(fd);
	buf[len] = 0;
	char head[32];
	snprintf(head, sizeof(head), "%lx-", start);
	char *p = buf;
	for (;;) {
		if (strncmp(p, head, strlen(head)) == 0)
			break;
		p = strchr(p, '\n');
		if (!p)
			return -1;
		p++;
	}
	long kb = 0;
	int seen = 0;
	for (p = strchr(p, '\n'); p && p[1]; p = strchr(p + 1, '\n')) {
		const char *line = p + 1;
		/* The next VMA's header starts with a hex digit and has a '-' before the first space. */
		const char *dash = strchr(line, '-'), *space = strchr(line, ' ');
		if (dash && space && dash < space && strchr("0123456789abcdef", line[0]))
			break;
		long v;
		if (sscanf(line, "Shared_Dirty: %ld kB", &v) == 1 || sscanf(line, "Private_Dirty: %ld kB", &v) == 1) {
			kb += v;
			seen++;
		}
	}
	return seen == 2 ? (int)(kb * 1024 / PAGE) : -1;
}

static int write_all(int fd, const void *p, size_t n)
{
	return write(fd, p, n) == (ssize_t)n ? 0 : -1;
}

static int read_all(int fd, void *p, size_t n)
{
	return read(fd, p, n) == (ssize_t)n ? 0 : -1;
}

/* The child's side of a round (never returns). */
static void child(volatile uint64_t *region, uint64_t w, enum mode mode, int to_parent, int from_parent)
{
	static uint64_t r1[MAX_PAGES];
	struct first_report a = { 0, 0 };
	for (int i = 0; i < npages; i++) {
		r1[i] = region[i * WORDS];
		if (r1[i] == w)
			a.w_pages++;
	}
	a.dirty_pages = smaps_dirty_pages((unsigned long)region);
	if (write_all(to_parent, &a, sizeof(a)))
		_exit(3);
	char go;
	if (read_all(from_parent, &go, 1))
		_exit(3);
	if (mode == MODE_REWRITE)
		for (int i = 0; i < npages; i++)
			if (r1[i] == w)
				region[i * WORDS] = r1[i];
	struct second_report b = { 0, 0 };
	if (madvise((void *)region, npages * PAGE, MADV_PAGEOUT))
		b.pageout_err = errno;
	for (int i = 0; i < npages; i++)
		if (r1[i] == w && region[i * WORDS] != w)
			b.lost++;
	if (write_all(to_parent, &b, sizeof(b)))
		_exit(3);
	_exit(0);
}

static void usage(void)
{
	fprintf(stderr, "usage: madvfree [--seconds S] [--rounds N] [--pages P] [--mode free|nofree|rewrite] [--parent cow|unmap]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	double seconds = 10;
	long max_rounds = -1;
	enum mode mode = MODE_FREE;
	enum parent_act act = PARENT_COW;
	for (int i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			usage();
		if (!strcmp(argv[i], "--seconds"))
			seconds = atof(v);
		else if (!strcmp(argv[i], "--rounds"))
			max_rounds = atol(v);
		else if (!strcmp(argv[i], "--pages"))
			npages = atoi(v);
		else if (!strcmp(argv[i], "--mode"))
			mode = !strcmp(v, "free") ? MODE_FREE : !strcmp(v, "nofree") ? MODE_NOFREE : !strcmp(v, "rewrite") ? MODE_REWRITE : (usage(), 0);
		else if (!strcmp(argv[i], "--parent"))
			act = !strcmp(v, "cow") ? PARENT_COW : !strcmp(v, "unmap") ? PARENT_UNMAP : (usage(), 0);
		else
			usage();
		i++;
	}
	if (npages < 2 || npages > MAX_PAGES || !(seconds > 0))
		usage();

	/* The first two CPUs the process may use: the parent's (fork) and the writer's. */
	cpu_set_t allowed;
	int cpus[2] = { -1, -1 }, ncpus = 0;
	if (sched_getaffinity(0, sizeof(allowed), &allowed))
		die("sched_getaffinity");
	for (int c = 0; c < CPU_SETSIZE && ncpus < 2; c++)
		if (CPU_ISSET(c, &allowed))
			cpus[ncpus++] = c;
	if (ncpus < 2)
		cpus[1] = -1;
	pin(cpus[0]);
	pthread_t th;
	if (pthread_create(&th, NULL, writer, &cpus[1]))
		die("pthread_create");

	long rounds = 0, crossings = 0, hits = 0, lost = 0, lost_rounds = 0;
	int smaps_ok = 1, pageout_err = 0;
	long delay = 0;
	double start = now();
	while ((max_rounds < 0 || rounds < max_rounds) && now() - start < seconds) {
		unsigned long r = rounds + 1;
		uint64_t v = 0x5600000000000000ULL | r, w = 0x5700000000000000ULL | r;
		volatile uint64_t *region = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (region == MAP_FAILED)
			die("mmap");
		madvise((void *)region, npages * PAGE, MADV_NOHUGEPAGE);
		for (int i = 0; i < npages; i++)
			region[i * WORDS] = v;
		if (mode != MODE_NOFREE && madvise((void *)region, npages * PAGE, MADV_FREE))
			die("madvise(MADV_FREE)");
		int up[2], down[2];
		if (pipe(up) || pipe(down))
			die("pipe");
		atomic_store(&writer_region, region);
		atomic_store(&writer_value, w);
		atomic_store(&writer_delay, delay);
		atomic_store_explicit(&go_round, r, memory_order_release);
		for (long d = -delay; d > 0; d--)
			__asm__ volatile("pause");
		pid_t pid = fork();
		if (pid < 0)
			die("fork");
		if (pid == 0)
			child(region, w, mode, up[1], down[0]);
		while (atomic_load_explicit(&done_round, memory_order_acquire) != r)
			;
		struct first_report a;
		if (read_all(up[0], &a, sizeof(a)))
			die("the child's first report");
		if (act == PARENT_COW) {
			for (int i = 0; i < npages; i++)
				region[i * WORDS] = 0;
		} else if (munmap((void *)region, npages * PAGE)) {
			die("munmap");
		}
		if (write_all(down[1], "g", 1))
			die("write to the child");
		struct second_report b;
		if (read_all(up[0], &b, sizeof(b)))
			die("the child's second report");
		int status;
		if (waitpid(pid, &status, 0) != pid)
			die("waitpid");
		close(up[0]);
		close(up[1]);
		close(down[0]);
		close(down[1]);
		if (act == PARENT_COW && munmap((void *)region, npages * PAGE))
			die("munmap");
		if (b.pageout_err) {
			pageout_err = b.pageout_err;
			break;
		}
		rounds++;
		if (a.w_pages > 0 && a.w_pages < npages)
			crossings++;
		if (a.dirty_pages < 0)
			smaps_ok = 0;
		else if (a.w_pages > a.dirty_pages)
			hits += a.w_pages - a.dirty_pages;
		lost += b.lost;
		if (b.lost)
			lost_rounds++;
		/* Keep the crossing inside the region: a positive delay holds the writer back, a
		 * negative one holds fork back. */
		long step = (delay < 0 ? -delay : delay) / 32 + 8;
		delay += a.w_pages > npages / 2 ? step : -step;
	}
	atomic_store_explicit(&go_round, ~0UL, memory_order_release);
	pthread_join(th, NULL);
	printf("{\"mode\":\"%s\",\"parent\":\"%s\",\"pages\":%d,\"seconds\":%.3f,\"rounds\":%ld,\"crossings\":%ld,"
	       "\"windowHits\":%ld,\"lostPages\":%ld,\"lostRounds\":%ld,\"cpus\":[%d,%d],\"smaps\":%s,\"pageout\":%s,\"finalDelay\":%ld}\n",
	       mode == MODE_FREE ? "free" : mode == MODE_NOFREE ? "nofree" : "rewrite", act == PARENT_COW ? "cow" : "unmap", npages,
	       now() - start, rounds, crossings, hits, lost, lost_rounds, cpus[0], cpus[1], smaps_ok ? "true" : "false",
	       pageout_err ? "false" : "true", delay);
	return 0;
}
