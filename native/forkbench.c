/*
 * isolab native fork benchmark.
 *
 * Maps 1 GiB of anonymous private memory, writes one byte in every 4 KiB page (so every
 * page is present and has its own page-table entry), then forks N times (argv[1],
 * default 5). Each child calls _exit(0) at once; the parent waits for it.
 *
 * For each fork it measures, with CLOCK_MONOTONIC in the parent:
 *   forkNs      the fork() call alone (mostly the copy of the page tables), and
 *   forkWaitNs  fork() plus the wait4() that reaps the child (adds the child's exit,
 *               which tears those page tables down again).
 *
 * Usage:  forkbench [N] [--thp]
 * Without --thp the region is marked MADV_NOHUGEPAGE so that it is mapped with 4 KiB
 * pages; with --thp it is marked MADV_HUGEPAGE instead.
 *
 * Prints one JSON object on stdout; exits 1 with a message on stderr on failure.
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REGION_SIZE ((size_t)1 << 30)
#define PAGE_SIZE_4K 4096
#define MAX_FORKS 1000

/* Returns CLOCK_MONOTONIC in nanoseconds. */
static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Orders int64_t values for qsort. */
static int compare_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Returns the median of v[0..n) (mean of the middle two when n is even); v is unchanged. */
static int64_t median(const int64_t *v, int n)
{
    int64_t sorted[MAX_FORKS];
    memcpy(sorted, v, sizeof *v * (size_t)n);
    qsort(sorted, (size_t)n, sizeof *sorted, compare_i64);
    return n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

/* Returns this process's page-table size in bytes from VmPTE in /proc/self/status,
 * or -1 if it cannot be read. */
static long long page_table_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long long kib = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmPTE: %lld kB", &kib) == 1)
            break;
    fclose(f);
    return kib < 0 ? -1 : kib * 1024;
}

/* Prints `"name":[v0,v1,...]` for an array of nanosecond figures. */
static void print_array(const char *name, const int64_t *v, int n)
{
    printf("\"%s\":[", name);
    for (int i = 0; i < n; i++)
        printf(i ? ",%lld" : "%lld", (long long)v[i]);
    printf("]");
}

int main(int argc, char **argv)
{
    int forks = argc > 1 ? atoi(argv[1]) : 5;
    bool thp = argc > 2 && strcmp(argv[2], "--thp") == 0;
    if (forks < 1 || forks > MAX_FORKS || (argc > 2 && !thp) || argc > 3) {
        fprintf(stderr, "usage: %s [N (1..%d)] [--thp]\n", argv[0], MAX_FORKS);
        return 1;
    }

    char *region = mmap(NULL, REGION_SIZE, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED) {
        perror("forkbench: mmap");
        return 1;
    }
    madvise(region, REGION_SIZE, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    for (size_t off = 0; off < REGION_SIZE; off += PAGE_SIZE_4K)
        ((volatile char *)region)[off] = 1;

    int64_t fork_ns[MAX_FORKS], fork_wait_ns[MAX_FORKS];
    for (int i = 0; i < forks; i++) {
        int64_t start = now_ns();
        pid_t pid = fork();
        if (pid == 0)
            _exit(0);
        int64_t forked = now_ns();
        if (pid < 0) {
            perror("forkbench: fork");
            return 1;
        }
        int status;
        if (waitpid(pid, &status, 0) != pid) {
            perror("forkbench: waitpid");
            return 1;
        }
        int64_t reaped = now_ns();
        fork_ns[i] = forked - start;
        fork_wait_ns[i] = reaped - start;
    }

    printf("{\"touchedBytes\":%zu,\"touchStrideBytes\":%d,\"hugePagesAllowed\":%s,"
           "\"pageTableBytes\":%lld,\"forks\":%d,",
           REGION_SIZE, PAGE_SIZE_4K, thp ? "true" : "false", page_table_bytes(), forks);
    print_array("forkNs", fork_ns, forks);
    printf(",\"medianNs\":%lld,", (long long)median(fork_ns, forks));
    print_array("forkWaitNs", fork_wait_ns, forks);
    printf(",\"forkWaitMedianNs\":%lld}\n", (long long)median(fork_wait_ns, forks));
    return 0;
}
