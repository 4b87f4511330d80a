/* SPDX-License-Identifier: BSD-2-Clause
 *
 * bench_read.c - cost of reading the time from a vmclock page (make bench).
 *
 * Writes a page file anchored at the live counter, then measures in the same
 * run, interleaved round by round: vmclock_gettime() (on that page, whose
 * period has shift 0, and on the same page with the period's shift chosen
 * as vmclock-sim chooses it, the period in [2^62, 2^63)), clock_gettime
 * (CLOCK_REALTIME), vmclock_timestamp(), vmclock_offset() and "the floor":
 * the least any reader of the page must do (an acquire load of seq_count,
 * the ordered counter read, the 128-bit product of the time, the seq_count
 * check), written here in a few lines, and the floor with the nanoseconds
 * and one exact bound added (the library's own bound helper): the least a
 * reading that carries a bound must do.  Each figure is the median over the
 * rounds of the mean ns per call within a round; each ratio is the median
 * over the rounds of that round's ratio, so that a neighbour's load that
 * slows one round slows both sides of its ratio.  The goals (issue 17) are
 * vmclock_gettime() within 1.2x of clock_gettime() on either page, and
 * vmclock_timestamp() within 1.15x.  A missed goal makes the exit status 1.
 *
 * vmclock_timestamp() runs its full path: beside the page, a vmclockd state
 * file (include/vmclockd-state.h) says chrony is synchronised, with the
 * page's marker handled and a heartbeat refreshed before every round, and
 * every call must return SYNCHRONIZED with a finite bound.
 *
 * Usage: bench_read [ROUNDS [CALLS]] | bench_read --smoke
 * Exit status: 0 goals met, 1 a goal missed or a call failed, 2 usage.
 * --smoke (CI's one-trial run on a shared machine): 3 short rounds, every
 * call must succeed with the verdict expected (SYNCHRONIZED, and UNKNOWN on
 * the odd state), the ratios are printed but not judged.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "vmclock.h"
#include "vmclockd-state.h"
#include "../refclock/convert.h"
#include "../refclock/counter.h"

#define DEFAULT_ROUNDS 41
#define DEFAULT_CALLS 500000
#define OFFSET_CALL_DIVISOR 10 /* vmclock_offset() is several times dearer */
#define GOAL_RATIO 1.20
#define TIMESTAMP_GOAL_RATIO 1.15
/* A state held odd answers UNKNOWN at about the cost of a good one (it
 * spun for ~25 ms per call before). */
#define ODD_GOAL_RATIO 1.50
#define BENCH_MARKER 7 /* the page's disruption marker, handled by "vmclockd" */
#define MAX_ROUNDS 101
#define SMOKE_ROUNDS 3
#define SMOKE_CALLS 100000

static int64_t now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
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

/* The shift vmclock-sim would give a period: the one that puts it in
 * [2^62, 2^63). */
static unsigned sim_shift(uint64_t period)
{
	unsigned shift = 0;

	while (shift < 63 && period < (1ull << 62)) {
		period <<= 1;
		shift++;
	}
	return shift;
}

/* A page anchored at the live counter; with shifted, its period (and
 * error rates) scaled by the shift sim_shift() gives. */
static char *write_page(uint8_t id, char *dir, const char *name, bool shifted)
{
	struct vmclock_abi p;
	uint64_t anchor, period;
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
	period = calibrate(id);
	if (shifted) {
		p.counter_period_shift = (uint8_t)sim_shift(period);
		period <<= p.counter_period_shift;
	}
	p.counter_period_frac_sec = vmclock_le64(period);
	p.counter_period_esterror_rate_frac_sec = vmclock_le64(period / 10000000);
	p.counter_period_maxerror_rate_frac_sec = vmclock_le64(period / 1000000);
	p.time_esterror_nanosec = vmclock_le64(100);
	p.time_maxerror_nanosec = vmclock_le64(1000);
	p.disruption_marker = vmclock_le64(BENCH_MARKER);
	bracket(id, CLOCK_REALTIME, &anchor, &now);
	p.counter_value = vmclock_le64(anchor);
	p.time_sec = vmclock_le64((uint64_t)(now / 1000000000));
	p.time_frac_sec = vmclock_le64((uint64_t)((((unsigned __int128)(now % 1000000000) << 64) +
						   999999999u) / 1000000000u));

	if (asprintf(&path, "%s/%s", dir, name) < 0)
		return NULL;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, &p, sizeof(p)) != (ssize_t)sizeof(p) || close(fd) < 0) {
		perror(path);
		free(path);
		return NULL;
	}
	return path;
}

/* The page mapped read-only, for the floor. */
static const struct vmclock_abi *map_page(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	void *map;

	if (fd < 0) {
		perror(path);
		return NULL;
	}
	map = mmap(NULL, sizeof(struct vmclock_abi), PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (map == MAP_FAILED) {
		perror("mmap");
		return NULL;
	}
	return map;
}

/* A vmclockd state file as a running daemon keeps it, mapped writable so
 * the heartbeat can be refreshed between rounds. */
static struct vmclockd_state *write_state(const char *dir, const char *name, char **path)
{
	struct vmclockd_state *s;
	int fd;

	if (asprintf(path, "%s/%s", dir, name) < 0)
		return NULL;
	fd = open(*path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, sizeof(*s)) < 0) {
		perror(*path);
		return NULL;
	}
	s = mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (s == MAP_FAILED) {
		perror("mmap");
		return NULL;
	}
	s->magic = vmclock_le32(VMCLOCKD_STATE_MAGIC);
	s->version = vmclock_le16(VMCLOCKD_STATE_VERSION);
	s->size = vmclock_le16(sizeof(*s));
	s->sync_state = VMCLOCKD_SYNC_SYNCHRONIZED;
	s->heartbeat_timeout_ms = vmclock_le16(60000);
	s->disruption_marker = vmclock_le64(BENCH_MARKER);
	s->vm_generation_counter = vmclock_le64(1);
	s->error_bound_ns = vmclock_le64(25000);
	s->drift_ppb = vmclock_le32(1000);
	s->samples_fed = vmclock_le64(1);
	return s;
}

/* A daemon's tick: a fresh heartbeat and bound, under the seq_count. */
static void refresh_state(struct vmclockd_state *s)
{
	uint64_t now = (uint64_t)now_ns(CLOCK_REALTIME);

	__atomic_store_n(&s->seq_count, s->seq_count + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	s->heartbeat_realtime_ns = vmclock_le64(now);
	s->heartbeat_monotonic_ns = vmclock_le64((uint64_t)now_ns(CLOCK_MONOTONIC));
	s->error_bound_realtime_ns = vmclock_le64(now);
	__atomic_store_n(&s->seq_count, s->seq_count + 1, __ATOMIC_RELEASE);
}

enum {
	B_GETTIME, B_GETTIME_SHIFTED, B_CLOCK, B_TIMESTAMP, B_FLOOR, B_FLOOR_BOUND, B_ODD, B_OFFSET,
	B_COUNT
};

/* A second handle, on a state file whose count a dead writer left odd. */
static const vmclock_truth_t *odd_truth;
/* The page with its period's shift as vmclock-sim chooses it. */
static const vmclock_t *shifted_vc;

static volatile uint64_t sink;

/* The floor: a bare seq_count-consistent read of the time from the page,
 * no validation, no bounds. */
static inline uint64_t floor_read(const struct vmclock_abi *p)
{
	for (;;) {
		uint32_t seq = __atomic_load_n(&p->seq_count, __ATOMIC_ACQUIRE);
		uint64_t c, anchor, period, frac;
		unsigned __int128 t;

		c = counter_read_native();
		anchor = __atomic_load_n(&p->counter_value, __ATOMIC_RELAXED);
		period = __atomic_load_n(&p->counter_period_frac_sec, __ATOMIC_RELAXED);
		frac = __atomic_load_n(&p->time_frac_sec, __ATOMIC_RELAXED);
		t = ((unsigned __int128)(c - anchor) * period >> p->counter_period_shift) + frac;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (!(seq & 1) && seq == __atomic_load_n(&p->seq_count, __ATOMIC_RELAXED))
			return (uint64_t)(t >> 64) + __atomic_load_n(&p->time_sec, __ATOMIC_RELAXED);
	}
}

/* The floor and what no bounded reading can leave out: the nanoseconds,
 * and one exact bound (the page's maximum error grown since its anchor, by
 * the library's own helper).  How far this alone is above clock_gettime()
 * is what a reading with bounds cannot go below. */
static inline uint64_t floor_bound_read(const struct vmclock_abi *p)
{
	for (;;) {
		uint32_t seq = __atomic_load_n(&p->seq_count, __ATOMIC_ACQUIRE);
		uint64_t c, anchor, period, frac, rate, err, flags;
		unsigned shift;
		unsigned __int128 t;

		c = counter_read_native();
		anchor = __atomic_load_n(&p->counter_value, __ATOMIC_RELAXED);
		period = __atomic_load_n(&p->counter_period_frac_sec, __ATOMIC_RELAXED);
		frac = __atomic_load_n(&p->time_frac_sec, __ATOMIC_RELAXED);
		rate = __atomic_load_n(&p->counter_period_maxerror_rate_frac_sec, __ATOMIC_RELAXED);
		err = __atomic_load_n(&p->time_maxerror_nanosec, __ATOMIC_RELAXED);
		flags = __atomic_load_n(&p->flags, __ATOMIC_RELAXED);
		shift = p->counter_period_shift & 63;
		t = ((unsigned __int128)(c - anchor) * period >> shift) + frac;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (!(seq & 1) && seq == __atomic_load_n(&p->seq_count, __ATOMIC_RELAXED))
			return (uint64_t)(t >> 64) + __atomic_load_n(&p->time_sec, __ATOMIC_RELAXED) +
			       (uint64_t)(((unsigned __int128)(uint64_t)t * NSEC_PER_SEC) >> 64) +
			       grown_error(flags, VMCLOCK_FLAG_TIME_MAXERROR_VALID,
					   VMCLOCK_FLAG_PERIOD_MAXERROR_VALID, err, rate, c - anchor,
					   shift);
	}
}

static const struct vmclock_abi *floor_page;

/* Mean ns per call of one kind over calls calls; -1 on a failed call. */
static double measure(int kind, const vmclock_t *vc, const vmclock_truth_t *truth, long calls)
{
	struct vmclock_time t;
	struct vmclock_offset o;
	struct vmclock_timestamp vt;
	struct timespec ts;
	int64_t start = now_ns(CLOCK_MONOTONIC);

	for (long i = 0; i < calls; i++) {
		switch (kind) {
		case B_GETTIME:
			if (vmclock_gettime(vc, &t) < 0)
				return -1;
			sink += t.nsec;
			break;
		case B_GETTIME_SHIFTED:
			if (vmclock_gettime(shifted_vc, &t) < 0)
				return -1;
			sink += t.nsec;
			break;
		case B_CLOCK:
			clock_gettime(CLOCK_REALTIME, &ts);
			sink += (uint64_t)ts.tv_nsec;
			break;
		case B_FLOOR:
			sink += floor_read(floor_page);
			break;
		case B_FLOOR_BOUND:
			sink += floor_bound_read(floor_page);
			break;
		case B_TIMESTAMP:
			if (vmclock_timestamp(truth, &vt) < 0)
				return -1;
			if (vt.verdict != VMCLOCK_VERDICT_SYNCHRONIZED ||
			    vt.bound_ns == VMCLOCK_ERROR_UNKNOWN) {
				fprintf(stderr, "bench_read: vmclock_timestamp() says %s, not "
					"synchronized: the full path is not measured\n",
					vmclock_verdict_name(vt.verdict));
				errno = EPROTO;
				return -1;
			}
			sink += (uint64_t)vt.time.tv_nsec + vt.bound_ns;
			break;
		case B_ODD:
			if (vmclock_timestamp(odd_truth, &vt) < 0)
				return -1;
			if (vt.verdict != VMCLOCK_VERDICT_UNKNOWN) {
				fprintf(stderr, "bench_read: a state held odd reads as %s\n",
					vmclock_verdict_name(vt.verdict));
				errno = EPROTO;
				return -1;
			}
			sink += (uint64_t)vt.time.tv_nsec;
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

/* The median of n values (sorts them). */
static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(double), cmp_double);
	return v[n / 2];
}

/* Prints a ratio against its goal; true if met. */
static bool judge(const char *name, double ratio, double goal)
{
	printf("%-32s %12.2fx  (goal <= %.2fx: %s)\n", name, ratio, goal,
	       ratio <= goal ? "met" : "MISSED");
	return ratio <= goal;
}

int main(int argc, char **argv)
{
	static const char *const names[B_COUNT] = {
		"vmclock_gettime()", "vmclock_gettime(), shifted", "clock_gettime(CLOCK_REALTIME)",
		"vmclock_timestamp()",
		"floor: bare consistent read", "floor + nsec + one exact bound",
		"vmclock_timestamp(), odd state",
		"vmclock_offset()",
	};
	static const int timed[] = { B_GETTIME, B_GETTIME_SHIFTED, B_CLOCK, B_TIMESTAMP,
				     B_FLOOR, B_FLOOR_BOUND, B_ODD };
	enum { N_TIMED = sizeof(timed) / sizeof(timed[0]) };
	double res[B_COUNT][MAX_ROUNDS], sorted[MAX_ROUNDS];
	double r_get[MAX_ROUNDS], r_shifted[MAX_ROUNDS], r_ts[MAX_ROUNDS], r_floor[MAX_ROUNDS];
	double r_fbound[MAX_ROUNDS];
	double r_odd[MAX_ROUNDS];
	bool smoke = argc > 1 && strcmp(argv[1], "--smoke") == 0;
	int rounds = smoke ? SMOKE_ROUNDS : argc > 1 ? atoi(argv[1]) : DEFAULT_ROUNDS;
	long calls = smoke ? SMOKE_CALLS : argc > 2 ? atol(argv[2]) : DEFAULT_CALLS;
	char dir[] = "/tmp/vmclock-bench.XXXXXX";
	uint8_t id = vmclock_native_counter();
	char *path, *shifted_path, *state_path = NULL, *odd_path = NULL;
	vmclock_t *vc, *vc_shifted;
	vmclock_truth_t *truth, *odd;
	struct vmclockd_state *state, *odd_state;
	bool met = true;

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
	path = write_page(id, dir, "page", false);
	shifted_path = write_page(id, dir, "page-shifted", true);
	vc = path ? vmclock_open(path) : NULL;
	vc_shifted = shifted_path ? vmclock_open(shifted_path) : NULL;
	shifted_vc = vc_shifted;
	if (!vc || !vc_shifted) {
		fprintf(stderr, "bench_read: cannot open the page: %s\n", strerror(errno));
		return 1;
	}
	floor_page = map_page(path);
	state = write_state(dir, "state", &state_path);
	if (!state || !floor_page)
		return 1;
	refresh_state(state);
	odd_state = write_state(dir, "odd-state", &odd_path);
	if (!odd_state)
		return 1;
	refresh_state(odd_state);
	odd_state->seq_count = vmclock_le32(vmclock_le32(odd_state->seq_count) | 1);
	truth = vmclock_truth_open(path, state_path);
	odd = vmclock_truth_open(path, odd_path);
	odd_truth = odd;
	if (!truth || !odd) {
		perror("vmclock_truth_open");
		return 1;
	}
	/* Warm up caches and the CPU's clock before the first round. */
	for (int i = 0; i < N_TIMED; i++)
		measure(timed[i], vc, truth, calls / 10);

	for (int r = 0; r < rounds; r++) {
		refresh_state(state);
		/* Rotate the order so no call always runs first. */
		for (int i = 0; i < N_TIMED; i++) {
			int k = timed[(i + r) % N_TIMED];

			res[k][r] = measure(k, vc, truth, calls);
		}
		res[B_OFFSET][r] = measure(B_OFFSET, vc, truth, calls / OFFSET_CALL_DIVISOR);
		for (int k = 0; k < B_COUNT; k++)
			if (res[k][r] < 0) {
				fprintf(stderr, "bench_read: %s failed: %s\n", names[k],
					strerror(errno));
				return 1;
			}
		r_get[r] = res[B_GETTIME][r] / res[B_CLOCK][r];
		r_shifted[r] = res[B_GETTIME_SHIFTED][r] / res[B_CLOCK][r];
		r_ts[r] = res[B_TIMESTAMP][r] / res[B_CLOCK][r];
		r_floor[r] = res[B_FLOOR][r] / res[B_CLOCK][r];
		r_fbound[r] = res[B_FLOOR_BOUND][r] / res[B_CLOCK][r];
		r_odd[r] = res[B_ODD][r] / res[B_CLOCK][r];
	}
	printf("%-32s %12s %10s %10s\n", "call", "ns/call", "min", "max");
	for (int k = 0; k < B_COUNT; k++) {
		memcpy(sorted, res[k], sizeof(double) * (size_t)rounds);
		qsort(sorted, (size_t)rounds, sizeof(double), cmp_double);
		printf("%-32s %12.1f %10.1f %10.1f\n", names[k], sorted[rounds / 2], sorted[0],
		       sorted[rounds - 1]);
	}
	printf("%-32s %12.2fx  (for reference)\n", "floor/clock_gettime", median(r_floor, rounds));
	printf("%-32s %12.2fx  (for reference)\n", "floor+bound/clock_gettime", median(r_fbound, rounds));
	met &= judge("vmclock_gettime/clock_gettime", median(r_get, rounds), GOAL_RATIO);
	met &= judge("shifted: gettime/clock_gettime", median(r_shifted, rounds), GOAL_RATIO);
	met &= judge("vmclock_timestamp/clock_gettime", median(r_ts, rounds), TIMESTAMP_GOAL_RATIO);
	met &= judge("odd state: timestamp/clock_gettime", median(r_odd, rounds), ODD_GOAL_RATIO);
	if (smoke) {
		printf("(smoke: every call succeeded; the ratios are not judged)\n");
		met = true;
	}
	printf("(ratios: median over %d rounds of each round's ratio; %ld calls per round, %ld for "
	       "vmclock_offset)\n", rounds, calls, calls / OFFSET_CALL_DIVISOR);

	vmclock_truth_close(truth);
	vmclock_truth_close(odd);
	munmap(odd_state, sizeof(*odd_state));
	unlink(odd_path);
	free(odd_path);
	vmclock_close(vc);
	vmclock_close(vc_shifted);
	unlink(shifted_path);
	free(shifted_path);
	munmap(state, sizeof(*state));
	munmap((void *)(uintptr_t)floor_page, sizeof(*floor_page));
	unlink(state_path);
	unlink(path);
	rmdir(dir);
	free(state_path);
	free(path);
	return met ? 0 : 1;
}
