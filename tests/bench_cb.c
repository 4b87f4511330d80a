/* SPDX-License-Identifier: BSD-2-Clause
 *
 * bench_cb.c - the cost of vmclock_timestamp() against AWS ClockBound's
 * clockbound_now() and clock_gettime(CLOCK_REALTIME), in one run
 * (tests/bench-clockbound.sh builds it against ClockBound's own library and
 * runs it against a live vmclockd: a page, its published state and its
 * ClockBound segment, all three readers SYNCHRONIZED).
 *
 * Rounds interleave the three, as bench_read does: each figure is the median
 * over the rounds of the mean ns per call within a round, each ratio the
 * median of the rounds' ratios, so that a neighbour's load that slows one
 * round slows both sides of its ratio.  Every call must succeed with a
 * SYNCHRONIZED verdict or status.  Goals: vmclock_timestamp() within
 * 0.25x of clockbound_now() and 1.15x of clock_gettime(); a miss makes the
 * exit status 1 (--smoke: printed, not judged).
 *
 * Usage: bench_cb [--smoke] PAGE STATE SEGMENT [ROUNDS [CALLS]]
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <clockbound.h>

#include "vmclock.h"

#define DEFAULT_ROUNDS 21
#define DEFAULT_CALLS 300000
#define MAX_ROUNDS 101
#define GOAL_VS_CLOCKBOUND 0.25
#define GOAL_VS_CLOCK_GETTIME 1.15

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return v[n / 2];
}

int main(int argc, char **argv)
{
	double t_cg[MAX_ROUNDS], t_ts[MAX_ROUNDS], t_cb[MAX_ROUNDS];
	double r_cb[MAX_ROUNDS], r_cg[MAX_ROUNDS];
	bool smoke = argc > 1 && !strcmp(argv[1], "--smoke");
	int rounds, calls, bad = 0, a = smoke ? 2 : 1;
	clockbound_err err;
	clockbound_ctx *cb;
	vmclock_truth_t *truth;
	double ratio_cb, ratio_cg;

	if (argc - a < 3 || argc - a > 5) {
		fprintf(stderr, "usage: bench_cb [--smoke] PAGE STATE SEGMENT [ROUNDS [CALLS]]\n");
		return 2;
	}
	rounds = argc - a > 3 ? atoi(argv[a + 3]) : smoke ? 3 : DEFAULT_ROUNDS;
	calls = argc - a > 4 ? atoi(argv[a + 4]) : smoke ? 100000 : DEFAULT_CALLS;
	if (rounds < 1 || rounds > MAX_ROUNDS || calls < 1) {
		fprintf(stderr, "bench_cb: ROUNDS 1 to %d, CALLS at least 1\n", MAX_ROUNDS);
		return 2;
	}
	truth = vmclock_truth_open(argv[a], argv[a + 1]);
	if (!truth) {
		perror("vmclock_truth_open");
		return 1;
	}
	cb = clockbound_vmclock_open(argv[a + 2], argv[a], &err);
	if (!cb) {
		fprintf(stderr, "clockbound_vmclock_open: error kind %d\n", (int)err.kind);
		return 1;
	}

	for (int r = 0; r < rounds; r++) {
		struct vmclock_timestamp ts;
		clockbound_now_result now;
		struct timespec t;
		int64_t t0;

		t0 = mono_ns();
		for (int i = 0; i < calls; i++)
			clock_gettime(CLOCK_REALTIME, &t);
		t_cg[r] = (double)(mono_ns() - t0) / calls;

		t0 = mono_ns();
		for (int i = 0; i < calls; i++)
			if (vmclock_timestamp(truth, &ts) < 0 || ts.verdict != VMCLOCK_VERDICT_SYNCHRONIZED)
				bad++;
		t_ts[r] = (double)(mono_ns() - t0) / calls;

		t0 = mono_ns();
		for (int i = 0; i < calls; i++)
			if (clockbound_now(cb, &now) || now.clock_status != CLOCKBOUND_STA_SYNCHRONIZED)
				bad++;
		t_cb[r] = (double)(mono_ns() - t0) / calls;

		r_cb[r] = t_ts[r] / t_cb[r];
		r_cg[r] = t_ts[r] / t_cg[r];
	}
	clockbound_close(cb);
	vmclock_truth_close(truth);

	ratio_cb = median(r_cb, rounds);
	ratio_cg = median(r_cg, rounds);
	printf("bench_cb: %d rounds x %d calls; ns/call (median of rounds):\n", rounds, calls);
	printf("  clock_gettime(CLOCK_REALTIME)  %7.1f\n", median(t_cg, rounds));
	printf("  vmclock_timestamp()            %7.1f\n", median(t_ts, rounds));
	printf("  clockbound_now()               %7.1f\n", median(t_cb, rounds));
	printf("  vmclock_timestamp/clockbound_now  %.3fx (goal <= %.2fx)\n", ratio_cb,
	       GOAL_VS_CLOCKBOUND);
	printf("  vmclock_timestamp/clock_gettime   %.3fx (goal <= %.2fx)\n", ratio_cg,
	       GOAL_VS_CLOCK_GETTIME);
	if (bad) {
		printf("FAIL: %d calls failed or were not SYNCHRONIZED\n", bad);
		return 1;
	}
	if (smoke)
		return 0;
	if (ratio_cb > GOAL_VS_CLOCKBOUND || ratio_cg > GOAL_VS_CLOCK_GETTIME) {
		printf("FAIL: a read-cost goal missed\n");
		return 1;
	}
	return 0;
}
