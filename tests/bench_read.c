/* SPDX-License-Identifier: BSD-2-Clause
 *
 * bench_read.c - cost of reading the time from a vmclock page (make bench).
 *
 * Writes a page file anchored at the live counter, then measures in the same
 * run, interleaved round by round: vmclock_gettime(), clock_gettime
 * (CLOCK_REALTIME) and vmclock_offset().  Each figure is the median over the
 * rounds of the mean ns per call within a round.  The goal is
 * vmclock_gettime() within 1.1x of clock_gettime().
 *
 * Usage: bench_read [ROUNDS [CALLS]]
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vmclock.h"

#define DEFAULT_ROUNDS 11
#define DEFAULT_CALLS 2000000
#define OFFSET_CALL_DIVISOR 10 /* vmclock_offset() is several times dearer */
#define GOAL_RATIO 1.10
#define MAX_ROUNDS 101

static int64_t now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint8_t native_counter(void)
{
	uint64_t v;

	if (vmclock_read_counter(VMCLOCK_COUNTER_X86_TSC, &v))
		return VMCLOCK_COUNTER_X86_TSC;
	if (vmclock_read_counter(VMCLOCK_COUNTER_ARM_VCNT, &v))
		return VMCLOCK_COUNTER_ARM_VCNT;
	return VMCLOCK_COUNTER_INVALID;
}

/* The narrowest of a few (counter, clock, counter) brackets. */
static void bracket(uint8_t id, clockid_t clk, uint64_t *counter, int64_t *ns)
{
	uint64_t best = UINT64_MAX;

	for (int i = 0; i < 16; i++) {
		uint64_t a, b;
		int64_t t;

		vmclock_read_counter(id, &a);
		t = now_ns(clk);
		vmclock_read_counter(id, &b);
		if (b - a < best) {
			best = b - a;
			*counter = a + (b - a) / 2;
			*ns = t;
		}
	}
}

/* Seconds per tick in units of 2^-64, against CLOCK_MONOTONIC_RAW. */
static uint64_t calibrate(uint8_t id)
{
	uint64_t c0, c1;
	int64_t t0, t1;

	bracket(id, CLOCK_MONOTONIC_RAW, &c0, &t0);
	while (now_ns(CLOCK_MONOTONIC_RAW) - t0 < 200000000)
		;
	bracket(id, CLOCK_MONOTONIC_RAW, &c1, &t1);
	return (uint64_t)((((unsigned __int128)(uint64_t)(t1 - t0) << 64) / (c1 - c0)) /
			  1000000000u);
}

static char *write_page(uint8_t id, char *dir)
{
	struct vmclock_abi p;
	uint64_t anchor;
	int64_t now;
	char *path;
	int fd;

	memset(&p, 0, sizeof(p));
	p.magic = vmclock_le32(VMCLOCK_MAGIC);
	p.size = vmclock_le32(VMCLOCK_ABI_SIZE);
	p.version = vmclock_le16(VMCLOCK_VERSION);
	p.counter_id = id;
	p.time_type = VMCLOCK_TIME_UTC;
	p.clock_status = VMCLOCK_STATUS_SYNCHRONIZED;
	p.flags = vmclock_le64(VMCLOCK_FLAG_PERIOD_ESTERROR_VALID |
			       VMCLOCK_FLAG_PERIOD_MAXERROR_VALID |
			       VMCLOCK_FLAG_TIME_ESTERROR_VALID | VMCLOCK_FLAG_TIME_MAXERROR_VALID);
	p.counter_period_frac_sec = vmclock_le64(calibrate(id));
	p.counter_period_esterror_rate_frac_sec = vmclock_le64(p.counter_period_frac_sec / 10000000);
	p.counter_period_maxerror_rate_frac_sec = vmclock_le64(p.counter_period_frac_sec / 1000000);
	p.time_esterror_nanosec = vmclock_le64(100);
	p.time_maxerror_nanosec = vmclock_le64(1000);
	bracket(id, CLOCK_REALTIME, &anchor, &now);
	p.counter_value = vmclock_le64(anchor);
	p.time_sec = vmclock_le64((uint64_t)(now / 1000000000));
	p.time_frac_sec = vmclock_le64((uint64_t)((((unsigned __int128)(now % 1000000000) << 64) +
						   999999999u) / 1000000000u));

	if (asprintf(&path, "%s/page", dir) < 0)
		return NULL;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, &p, sizeof(p)) != (ssize_t)sizeof(p) || close(fd) < 0) {
		perror(path);
		free(path);
		return NULL;
	}
	return path;
}

enum { B_GETTIME, B_CLOCK, B_OFFSET, B_COUNT };

static volatile uint64_t sink;

/* Mean ns per call of one kind over calls calls; -1 on a failed call. */
static double measure(int kind, const vmclock_t *vc, long calls)
{
	struct vmclock_time t;
	struct vmclock_offset o;
	struct timespec ts;
	int64_t start = now_ns(CLOCK_MONOTONIC);

	for (long i = 0; i < calls; i++) {
		switch (kind) {
		case B_GETTIME:
			if (vmclock_gettime(vc, &t) < 0)
				return -1;
			sink += t.nsec;
			break;
		case B_CLOCK:
			clock_gettime(CLOCK_REALTIME, &ts);
			sink += (uint64_t)ts.tv_nsec;
			break;
		default:
			if (vmclock_offset(vc, &o) < 0)
				return -1;
			sink += (uint64_t)o.offset_ns;
			break;
		}
	}
	return (double)(now_ns(CLOCK_MONOTONIC) - start) / (double)calls;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	static const char *const names[B_COUNT] = {
		"vmclock_gettime()", "clock_gettime(CLOCK_REALTIME)", "vmclock_offset()",
	};
	double res[B_COUNT][MAX_ROUNDS], med[B_COUNT];
	int rounds = argc > 1 ? atoi(argv[1]) : DEFAULT_ROUNDS;
	long calls = argc > 2 ? atol(argv[2]) : DEFAULT_CALLS;
	char dir[] = "/tmp/vmclock-bench.XXXXXX";
	uint8_t id = native_counter();
	char *path;
	vmclock_t *vc;
	double ratio;

	if (rounds < 1 || rounds > MAX_ROUNDS || calls < OFFSET_CALL_DIVISOR) {
		fprintf(stderr, "usage: %s [ROUNDS (1-%d) [CALLS]]\n", argv[0], MAX_ROUNDS);
		return 2;
	}
	if (id == VMCLOCK_COUNTER_INVALID) {
		fprintf(stderr, "bench_read: this CPU has no counter libvmclock can read\n");
		return 1;
	}
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	path = write_page(id, dir);
	vc = path ? vmclock_open(path) : NULL;
	if (!vc) {
		fprintf(stderr, "bench_read: cannot open the page: %s\n", strerror(errno));
		return 1;
	}
	/* Warm up caches and the CPU's clock before the first round. */
	measure(B_GETTIME, vc, calls / 10);
	measure(B_CLOCK, vc, calls / 10);

	for (int r = 0; r < rounds; r++) {
		/* Alternate the order so neither call always runs first. */
		int first = r & 1 ? B_CLOCK : B_GETTIME, second = B_GETTIME + B_CLOCK - first;

		res[first][r] = measure(first, vc, calls);
		res[second][r] = measure(second, vc, calls);
		res[B_OFFSET][r] = measure(B_OFFSET, vc, calls / OFFSET_CALL_DIVISOR);
		for (int k = 0; k < B_COUNT; k++)
			if (res[k][r] < 0) {
				fprintf(stderr, "bench_read: %s failed: %s\n", names[k],
					strerror(errno));
				return 1;
			}
	}
	printf("%-32s %12s %10s %10s\n", "call", "ns/call", "min", "max");
	for (int k = 0; k < B_COUNT; k++) {
		qsort(res[k], (size_t)rounds, sizeof(double), cmp_double);
		med[k] = res[k][rounds / 2];
		printf("%-32s %12.1f %10.1f %10.1f\n", names[k], med[k], res[k][0],
		       res[k][rounds - 1]);
	}
	ratio = med[B_GETTIME] / med[B_CLOCK];
	printf("%-32s %12.2fx  (goal <= %.2fx: %s)\n", "vmclock_gettime/clock_gettime", ratio,
	       GOAL_RATIO, ratio <= GOAL_RATIO ? "met" : "MISSED");
	printf("(median of %d rounds of %ld calls, %ld for vmclock_offset)\n", rounds, calls,
	       calls / OFFSET_CALL_DIVISOR);

	vmclock_close(vc);
	unlink(path);
	rmdir(dir);
	free(path);
	return 0;
}
