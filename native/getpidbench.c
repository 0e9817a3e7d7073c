/*
 * isolab native null-syscall benchmark: the raw getpid loop the simulated getpid is measured
 * against (bench/kernel.ts --getpid-native).
 *
 * Calls syscall(SYS_getpid) N times (argv[1], default 2,000,000) in a loop, R rounds
 * (argv[2], default 5), each timed with CLOCK_MONOTONIC. syscall() and not getpid(): glibc
 * does not cache getpid since 2.25, but the raw call makes sure each iteration enters the
 * kernel, as each simulated getpid does.
 *
 * Prints one JSON object on stdout: the calls per second of each round and their median.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 2000000;
	int rounds = argc > 2 ? atoi(argv[2]) : 5;
	if (n <= 0 || rounds <= 0 || rounds > 100) {
		fprintf(stderr, "usage: getpidbench [calls] [rounds (1..100)]\n");
		return 1;
	}
	double rates[100], sorted[100];
	long sink = 0;
	for (int r = 0; r < rounds; r++) {
		double t0 = now_ns();
		for (long i = 0; i < n; i++)
			sink += syscall(SYS_getpid);
		rates[r] = (double)n / ((now_ns() - t0) / 1e9);
	}
	for (int r = 0; r < rounds; r++)
		sorted[r] = rates[r];
	qsort(sorted, rounds, sizeof(double), cmp_double);
	printf("{\"calls\":%ld,\"perSecond\":%.0f,\"runs\":[", n, sorted[rounds / 2]);
	for (int r = 0; r < rounds; r++)
		printf("%s%.0f", r ? "," : "", rates[r]);
	printf("],\"sink\":%d}\n", sink == 0 ? 1 : 0);
	return 0;
}
