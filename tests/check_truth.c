/* SPDX-License-Identifier: BSD-2-Clause
 *
 * check_truth.c - truthful timestamps (vmclock_timestamp, vmclock_daemon_state)
 * against state files and pages built byte by byte.
 *
 * The state file's layout is written out here from include/vmclockd-state.h's
 * documentation, little-endian one byte at a time, not through struct
 * vmclockd_state: a host-endian or misplaced field in the library shows.
 * Covered: the verdict rules (device marker against the handled marker and
 * the daemon's sync state), the bound grown at the drift rate (to the
 * nanosecond at every call of a busy loop, which runs mostly in the fast
 * window a view prepares; a marker that moves and a heartbeat that goes
 * stale inside that window), a stale or future heartbeat, a state file
 * recreated or replaced by rename under a long-lived handle, a count held
 * odd (UNKNOWN and fast), a file truncated under a reading handle (no
 * SIGBUS), and a big-endian-looking file.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vmclock.h"
#include "vmclockd-state.h"
#include "suites.h"
#include "testpage.h"

/* Byte offsets of the state file's fields. */
enum {
	ST_MAGIC = 0,          /* u32 */
	ST_VERSION = 4,        /* u16 */
	ST_SIZE = 6,           /* u16 */
	ST_SEQ = 8,            /* u32 */
	ST_SYNC = 12,          /* u8 */
	ST_REASON = 13,        /* u8 */
	ST_TIMEOUT_MS = 14,    /* u16 */
	ST_HEARTBEAT = 16,     /* u64 realtime ns */
	ST_HEARTBEAT_MONO = 24,/* u64 */
	ST_MARKER = 32,        /* u64 */
	ST_GENERATION = 40,    /* u64 */
	ST_BOUND = 48,         /* u64 ns */
	ST_BOUND_TIME = 56,    /* u64 realtime ns */
	ST_DRIFT = 64,         /* u32 ppb */
	ST_WITHHELD = 104,     /* u64[12] */
	ST_BYTES = 200,
};

#define ST_MAGIC_VALUE 0x53444356u /* "VCDS" */
#define MARKER 0x1122334455667788ull
#define TIMEOUT_MS 1000
/* How long the library may take to see a change of the file: its view is
 * refreshed every millisecond; generous for a loaded machine. */
#define SEE_CHANGE_NS 2000000000ll
/* A handle looks for a replaced or recreated state once a second. */
#define SEE_REPLACEMENT_NS 4000000000ll

static char *dir, *page_path, *state_path;

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t ts_ns(const struct timespec *t)
{
	return (uint64_t)t->tv_sec * 1000000000u + (uint64_t)t->tv_nsec;
}

/* A state as a running daemon writes it: synchronized, fresh heartbeat. */
static void state_init(struct testpage *s, uint8_t sync_state, uint64_t marker)
{
	uint64_t now = realtime_ns();

	memset(s, 0, sizeof(*s));
	s->len = ST_BYTES;
	tp_put32(s, ST_MAGIC, ST_MAGIC_VALUE);
	tp_put16(s, ST_VERSION, 1);
	tp_put16(s, ST_SIZE, ST_BYTES);
	tp_put32(s, ST_SEQ, 2);
	tp_put8(s, ST_SYNC, sync_state);
	tp_put16(s, ST_TIMEOUT_MS, TIMEOUT_MS);
	tp_put64(s, ST_HEARTBEAT, now);
	tp_put64(s, ST_MARKER, marker);
	tp_put64(s, ST_GENERATION, 1);
	tp_put64(s, ST_BOUND, 1000);
	tp_put64(s, ST_BOUND_TIME, now);
	tp_put32(s, ST_DRIFT, 1000);
}

static void write_page(uint64_t marker)
{
	struct testpage p;

	tp_init(&p);
	tp_put64(&p, TP_MARKER, marker);
	free(tp_write_file(dir, "page", &p));
}

static void write_state(const struct testpage *s)
{
	free(tp_write_file(dir, "state", s));
}

/* Rewrites the state in place, as the daemon does (no truncation). */
static void update_state(const struct testpage *s)
{
	int fd = open(state_path, O_WRONLY | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, s->b, ST_BYTES, 0), ST_BYTES);
	close(fd);
}

/* What the daemon does every tick: the whole state with a fresh heartbeat
 * (a slow run, under valgrind, must not age it past its timeout). */
static void rewrite_state(struct testpage *s)
{
	tp_put64(s, ST_HEARTBEAT, realtime_ns());
	update_state(s);
}

static void setup(void)
{
	dir = tp_tmpdir();
	page_path = tp_path(dir, "page");
	state_path = tp_path(dir, "state");
}

static void teardown(void)
{
	tp_rmdir(dir);
	free(dir);
	free(page_path);
	free(state_path);
}

static struct vmclock_timestamp stamp(const vmclock_truth_t *t)
{
	struct vmclock_timestamp ts;

	memset(&ts, 0xa5, sizeof(ts));
	ck_assert_int_eq(vmclock_timestamp(t, &ts), 0);
	return ts;
}

/* Calls vmclock_timestamp until it says want (true) or within_ns pass. */
static bool wait_verdict(const vmclock_truth_t *t, vmclock_verdict_t want, int64_t within_ns)
{
	int64_t end = tp_now_ns() + within_ns;

	do {
		if (stamp(t).verdict == want)
			return true;
		usleep(1000);
	} while (tp_now_ns() < end);
	return false;
}

/* ---- the verdict rules ------------------------------------------------------ */

struct rule {
	const char *what;
	uint64_t device_marker, state_marker;
	uint8_t sync_state;
	int64_t heartbeat_age_ms; /* negative: in the future */
	vmclock_verdict_t verdict;
};

static const struct rule rules[] = {
	{ "synchronized", MARKER, MARKER, VMCLOCKD_SYNC_SYNCHRONIZED, 0, VMCLOCK_VERDICT_SYNCHRONIZED },
	{ "unsynchronized: freerunning", MARKER, MARKER, VMCLOCKD_SYNC_UNSYNCHRONIZED, 0,
	  VMCLOCK_VERDICT_FREERUNNING },
	{ "daemon says disrupted", MARKER, MARKER, VMCLOCKD_SYNC_DISRUPTED, 0,
	  VMCLOCK_VERDICT_DISRUPTED },
	{ "device marker moved on", MARKER + 1, MARKER, VMCLOCKD_SYNC_SYNCHRONIZED, 0,
	  VMCLOCK_VERDICT_DISRUPTED },
	{ "marker differs in its top byte only", MARKER ^ (1ull << 63), MARKER,
	  VMCLOCKD_SYNC_SYNCHRONIZED, 0, VMCLOCK_VERDICT_DISRUPTED },
	{ "chrony not reachable", MARKER, MARKER, VMCLOCKD_SYNC_UNKNOWN, 0, VMCLOCK_VERDICT_UNKNOWN },
	{ "sync state not one the library knows", MARKER, MARKER, 77, 0, VMCLOCK_VERDICT_UNKNOWN },
	{ "stale heartbeat", MARKER, MARKER, VMCLOCKD_SYNC_SYNCHRONIZED, TIMEOUT_MS + 500,
	  VMCLOCK_VERDICT_UNKNOWN },
	{ "stale heartbeat beats a moved marker", MARKER + 1, MARKER, VMCLOCKD_SYNC_SYNCHRONIZED,
	  TIMEOUT_MS + 500, VMCLOCK_VERDICT_UNKNOWN },
	{ "heartbeat in the future", MARKER, MARKER, VMCLOCKD_SYNC_SYNCHRONIZED, -60000,
	  VMCLOCK_VERDICT_UNKNOWN },
	{ "heartbeat written just after the caller read its clock", MARKER, MARKER,
	  VMCLOCKD_SYNC_SYNCHRONIZED, -3, VMCLOCK_VERDICT_SYNCHRONIZED },
	{ "heartbeat within its timeout", MARKER, MARKER, VMCLOCKD_SYNC_SYNCHRONIZED,
	  TIMEOUT_MS - 300, VMCLOCK_VERDICT_SYNCHRONIZED },
};

START_TEST(test_verdict_rules)
{
	const struct rule *r = &rules[_i];
	struct vmclock_timestamp ts;
	struct testpage s;
	vmclock_truth_t *t;
	bool bounded = r->verdict == VMCLOCK_VERDICT_SYNCHRONIZED ||
		       r->verdict == VMCLOCK_VERDICT_FREERUNNING;

	write_page(r->device_marker);
	state_init(&s, r->sync_state, r->state_marker);
	tp_put64(&s, ST_HEARTBEAT, realtime_ns() - (uint64_t)(r->heartbeat_age_ms * 1000000));
	write_state(&s);
	t = vmclock_truth_open(page_path, state_path);
	ck_assert_ptr_nonnull(t);
	ts = stamp(t);
	ck_assert_msg(ts.verdict == r->verdict, "%s: verdict %s, expected %s", r->what,
		      vmclock_verdict_name(ts.verdict), vmclock_verdict_name(r->verdict));
	ck_assert_msg(ts.disruption_marker == r->device_marker, "%s: marker %llx", r->what,
		      (unsigned long long)ts.disruption_marker);
	if (bounded) {
		ck_assert_msg(ts.bound_ns >= 1000 && ts.bound_ns < 1000000, "%s: bound %llu", r->what,
			      (unsigned long long)ts.bound_ns);
	} else {
		ck_assert_msg(ts.bound_ns == VMCLOCK_ERROR_UNKNOWN, "%s: bounded", r->what);
		ck_assert_int_eq(ts.earliest.tv_sec, 0);
		ck_assert_int_eq(ts.latest.tv_sec, INT64_MAX);
	}
	vmclock_truth_close(t);
}
END_TEST

START_TEST(test_no_state_no_device)
{
	struct testpage s;
	vmclock_truth_t *t;
	struct vmclockd_state copy;

	/* Neither exists. */
	t = vmclock_truth_open(page_path, state_path);
	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(stamp(t).verdict, VMCLOCK_VERDICT_UNKNOWN);
	errno = 0;
	ck_assert_int_eq(vmclock_daemon_state(t, &copy), -1);
	ck_assert_int_eq(errno, ENOENT);
	vmclock_truth_close(t);

	/* A state but no device. */
	state_init(&s, VMCLOCKD_SYNC_SYNCHRONIZED, MARKER);
	write_state(&s);
	t = vmclock_truth_open(page_path, state_path);
	ck_assert_int_eq(stamp(t).verdict, VMCLOCK_VERDICT_UNKNOWN);
	ck_assert_int_eq(stamp(t).disruption_marker, 0);
	ck_assert_int_eq(vmclock_daemon_state(t, &copy), 0);
	vmclock_truth_close(t);
}
END_TEST

/* ---- bounds ------------------------------------------------------------------- */

START_TEST(test_bound_grows_with_drift)
{
	struct vmclock_timestamp ts;
	struct testpage s;
	vmclock_truth_t *t;
	uint64_t read_at = realtime_ns() - 500000000u, age, want;

	write_page(MARKER);
	state_init(&s, VMCLOCKD_SYNC_SYNCHRONIZED, MARKER);
	tp_put64(&s, ST_BOUND, 2500);
	tp_put64(&s, ST_BOUND_TIME, read_at);
	tp_put32(&s, ST_DRIFT, 3333); /* 3.333 ppm */
	write_state(&s);
	t = vmclock_truth_open(page_path, state_path);
	ts = stamp(t);
	ck_assert_int_eq(ts.verdict, VMCLOCK_VERDICT_SYNCHRONIZED);
	/* Exactly the bound plus ceil(age * ppb / 1e9) at the time returned. */
	age = ts_ns(&ts.time) - read_at;
	want = 2500 + (age * 3333 + 999999999u) / 1000000000u;
	ck_assert_uint_eq(ts.bound_ns, want);
	ck_assert_uint_ge(ts.bound_ns, 2500 + 1666);
	ck_assert_uint_eq(ts_ns(&ts.time) - ts_ns(&ts.earliest), ts.bound_ns);
	ck_assert_uint_eq(ts_ns(&ts.latest) - ts_ns(&ts.time), ts.bound_ns);

	/* A bound over a second takes the other path to the same rule. */
	tp_put64(&s, ST_BOUND, 1500000000u);
	tp_put32(&s, ST_SEQ, 4);
	update_state(&s);
	usleep(5000);
	ts = stamp(t);
	ck_assert_uint_ge(ts.bound_ns, 1500000000u + 1666);
	ck_assert_uint_eq(ts_ns(&ts.time) - ts_ns(&ts.earliest), ts.bound_ns);
	ck_assert_uint_eq(ts_ns(&ts.latest) - ts_ns(&ts.time), ts.bound_ns);

	/* A bound whose growth would wrap is unbounded, never small. */
	tp_put64(&s, ST_BOUND, UINT64_MAX - 2);
	tp_put32(&s, ST_SEQ, 6);
	update_state(&s);
	usleep(5000);
	ts = stamp(t);
	ck_assert_uint_eq(ts.bound_ns, VMCLOCK_ERROR_UNKNOWN);
	vmclock_truth_close(t);
}
END_TEST

/* ---- calls in a view's fast window ------------------------------------------ */

/* Every call of a busy loop (most of them in a view's fast window, a few
 * at each refresh) returns the verdict and, to the nanosecond, the bound
 * the rules give at the time it returns. */
struct window_case {
	const char *what;
	uint64_t bound_ns;
	int64_t bound_age_ns; /* negative: the bound's instant is ahead */
	uint32_t drift_ppb;
	uint8_t sync_state;
	bool near_second_end; /* start just before a second ends */
};

static const struct window_case window_cases[] = {
	{ "synchronized, grown for 0.5 s", 25000, 500000000, 3333, VMCLOCKD_SYNC_SYNCHRONIZED,
	  false },
	{ "unsynchronized, close under a second", 999000000, 1000000, 1000000,
	  VMCLOCKD_SYNC_UNSYNCHRONIZED, false },
	{ "bound's instant 300 us ahead", 1000, -300000, 100000, VMCLOCKD_SYNC_SYNCHRONIZED,
	  false },
	{ "no drift", 40000, 3000000000, 0, VMCLOCKD_SYNC_SYNCHRONIZED, false },
	{ "fast drift, over a second: the full path", 0, 7000000000, 999999999,
	  VMCLOCKD_SYNC_SYNCHRONIZED, false },
	{ "across the end of a second", 25000, 1000000000, 123457, VMCLOCKD_SYNC_SYNCHRONIZED,
	  true },
};

#define WINDOW_RUN_NS 5000000

START_TEST(test_fast_window_exact)
{
	const struct window_case *c = &window_cases[_i];
	vmclock_verdict_t verdict = c->sync_state == VMCLOCKD_SYNC_SYNCHRONIZED
					    ? VMCLOCK_VERDICT_SYNCHRONIZED
					    : VMCLOCK_VERDICT_FREERUNNING;
	uint64_t now = realtime_ns(), at, end;
	struct testpage s;
	vmclock_truth_t *t;
	long calls = 0;

	if (c->near_second_end) {
		while (now % 1000000000u < 999000000u)
			now = realtime_ns();
	}
	at = now - (uint64_t)c->bound_age_ns;
	write_page(MARKER);
	state_init(&s, c->sync_state, MARKER);
	tp_put64(&s, ST_BOUND, c->bound_ns);
	tp_put64(&s, ST_BOUND_TIME, at);
	tp_put32(&s, ST_DRIFT, c->drift_ppb);
	write_state(&s);
	t = vmclock_truth_open(page_path, state_path);
	end = now + WINDOW_RUN_NS;
	for (uint64_t when = now; when < end; calls++) {
		struct vmclock_timestamp ts = stamp(t);
		uint64_t age, want;

		when = ts_ns(&ts.time);
		age = when > at ? when - at : 0;
		want = c->bound_ns +
		       (uint64_t)(((unsigned __int128)age * c->drift_ppb + 999999999u) / 1000000000u);
		ck_assert_msg(ts.verdict == verdict, "%s: call %ld says %s", c->what, calls,
			      vmclock_verdict_name(ts.verdict));
		ck_assert_msg(ts.bound_ns == want, "%s: call %ld at %" PRIu64 ": bound %" PRIu64
			      ", expected %" PRIu64, c->what, calls, when, ts.bound_ns, want);
		ck_assert_uint_eq(when - ts_ns(&ts.earliest), want);
		ck_assert_uint_eq(ts_ns(&ts.latest) - when, want);
		ck_assert_uint_eq(ts.disruption_marker, MARKER);
	}
	vmclock_truth_close(t);
}
END_TEST

/* The device's marker is read at every call: one that moves under a handle
 * busy in its fast window makes the very next call DISRUPTED, and the next
 * after it moves back SYNCHRONIZED. */
START_TEST(test_marker_moves_in_window)
{
	struct testpage s;
	vmclock_truth_t *t;
	uint64_t moved = MARKER + 1, back = MARKER;
	struct vmclock_timestamp ts;
	int fd;

	write_page(MARKER);
	state_init(&s, VMCLOCKD_SYNC_SYNCHRONIZED, MARKER);
	write_state(&s);
	t = vmclock_truth_open(page_path, state_path);
	fd = open(page_path, O_WRONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	for (int round = 0; round < 100; round++) {
		for (int i = 0; i < 20; i++)
			ck_assert_int_eq(stamp(t).verdict, VMCLOCK_VERDICT_SYNCHRONIZED);
		ck_assert_int_eq(pwrite(fd, &moved, sizeof(moved), TP_MARKER), sizeof(moved));
		ts = stamp(t);
		ck_assert_int_eq(ts.verdict, VMCLOCK_VERDICT_DISRUPTED);
		ck_assert_uint_eq(ts.disruption_marker, MARKER + 1);
		ck_assert_uint_eq(ts.bound_ns, VMCLOCK_ERROR_UNKNOWN);
		ck_assert_int_eq(pwrite(fd, &back, sizeof(back), TP_MARKER), sizeof(back));
		ts = stamp(t);
		ck_assert_int_eq(ts.verdict, VMCLOCK_VERDICT_SYNCHRONIZED);
		ck_assert_uint_eq(ts.disruption_marker, MARKER);
	}
	close(fd);
	vmclock_truth_close(t);
}
END_TEST

/* A heartbeat that goes stale while calls run in a fast window: every call
 * after heartbeat + timeout is UNKNOWN, each judged by the time it returns,
 * not at the next refresh.  The heartbeat goes stale a margin after the
 * state is written; where opening took longer than that (valgrind) no call
 * was made before, and the round is run again with ten times the margin,
 * up to 200 ms (a fifth of the timeout: the heartbeat stays in the past). */
static void heartbeat_round(uint64_t margin_ns, long *fresh, long *stale)
{
	const uint64_t timeout_ns = TIMEOUT_MS * 1000000ull;
	uint64_t heartbeat = realtime_ns() + margin_ns - timeout_ns, when = 0;
	struct testpage s;
	vmclock_truth_t *t;

	write_page(MARKER);
	state_init(&s, VMCLOCKD_SYNC_SYNCHRONIZED, MARKER);
	tp_put64(&s, ST_HEARTBEAT, heartbeat);
	write_state(&s);
	t = vmclock_truth_open(page_path, state_path);
	*fresh = *stale = 0;
	while (when < heartbeat + timeout_ns + 3000000) {
		struct vmclock_timestamp ts = stamp(t);

		when = ts_ns(&ts.time);
		if (when <= heartbeat + timeout_ns) {
			ck_assert_msg(ts.verdict == VMCLOCK_VERDICT_SYNCHRONIZED,
				      "%" PRIu64 " ns before the heartbeat goes stale: %s",
				      heartbeat + timeout_ns - when,
				      vmclock_verdict_name(ts.verdict));
			(*fresh)++;
		} else {
			ck_assert_msg(ts.verdict == VMCLOCK_VERDICT_UNKNOWN,
				      "%" PRIu64 " ns after the heartbeat went stale: %s",
				      when - heartbeat - timeout_ns,
				      vmclock_verdict_name(ts.verdict));
			(*stale)++;
		}
	}
	vmclock_truth_close(t);
}

START_TEST(test_heartbeat_stale_in_window)
{
	uint64_t margin_ns = 2000000;
	long fresh = 0, stale = 0;

	for (;;) {
		heartbeat_round(margin_ns, &fresh, &stale);
		if (fresh > 0 || margin_ns >= 200000000ull)
			break;
		margin_ns *= 10;
	}
	ck_assert_int_gt(fresh, 0);
	ck_assert_int_gt(stale, 0);
}
END_TEST

/* ---- a long-lived handle and a file that changes ---------------------------- */

START_TEST(test_heartbeat_goes_stale)
{
	struct testpage s;
	vmclock_truth_t *t;

	write_page(MARKER);
	state_init(&s, VMCLOCKD_SYNC_SYNCHRONIZED, MARKER);
	write_state(&s);
	t = vmclock_truth_open(page_path, state_path);
	ck_assert_int_eq(stamp(t).verdict, VMCLOCK_VERDICT_SYNCHRONIZED);
	/* The daemon stops: its last heartbeat ages past the timeout. */
	tp_put64(&s, ST_HEARTBEAT, realtime_ns() - (TIMEOUT_MS + 1) * 1000000ull);
	tp_put32(&s, ST_SEQ, 4);
	update_state(&s);
	ck_assert(wait_verdict(t, VMCLOCK_VERDICT_UNKNOWN, SEE_CHANGE_NS));
	/* It comes back. */
	tp_put64(&s, ST_HEARTBEAT, realtime_ns());
	tp_put32(&s, ST_SEQ, 6);
	update_state(&s);
	ck_assert(wait_verdict(t, VMCLOCK_VERDICT_SYNCHRONIZED, SEE_CHANGE_NS));
	vmclock_truth_close(t);
}
END_TEST

/* The daemon's old file goes stale; a new one takes its name, by removal
 * and creation (_i == 0) or by rename over it (_i == 1). */
START_TEST(test_state_recreated_or_replaced)
{
	struct testpage s;
	struct vmclockd_state copy;
	vmclock_truth_t *t;
	char *tmp;

	write_page(MARKER + 1);
	state_init(&s, VMCLOCKD_SYNC_SYNCHRONIZED, MARKER);
	write_state(&s);
	t = vmclock_truth_open(page_path, state_path);
	ck_assert_int_eq(stamp(t).verdict, VMCLOCK_VERDICT_DISRUPTED);
	tp_put64(&s, ST_HEARTBEAT, 1);
	tp_put32(&s, ST_SEQ, 4);
	update_state(&s);
	ck_assert(wait_verdict(t, VMCLOCK_VERDICT_UNKNOWN, SEE_CHANGE_NS));

	state_init(&s, VMCLOCKD_SYNC_SYNCHRONIZED, MARKER + 1);
	if (_i == 0) {
		ck_assert_int_eq(unlink(state_path), 0);
		write_state(&s);
	} else {
		tmp = tp_write_file(dir, "state.new", &s);
		ck_assert_int_eq(rename(tmp, state_path), 0);
		free(tmp);
	}
	/* The new file keeps its heartbeat fresh, as a daemon would. */
	for (int64_t end = tp_now_ns() + SEE_REPLACEMENT_NS; tp_now_ns() < end;) {
		if (stamp(t).verdict == VMCLOCK_VERDICT_SYNCHRONIZED)
			break;
		tp_put64(&s, ST_HEARTBEAT, realtime_ns());
		update_state(&s);
		usleep(10000);
	}
	ck_assert_int_eq(stamp(t).verdict, VMCLOCK_VERDICT_SYNCHRONIZED);
	ck_assert_int_eq(vmclock_daemon_state(t, &copy), 0);
	ck_assert_uint_eq(vmclock_le64(copy.disruption_marker), MARKER + 1);
	vmclock_truth_close(t);
}
END_TEST

/* ---- a count held odd ----------------------------------------------------------- */

#define ODD_CALLS 2000
/* Generous: the calls take microseconds; a reader that spun (a million
 * retries, ~25 ms a call) would take a minute. */
#define ODD_CALLS_MAX_NS 1000000000ll

START_TEST(test_odd_seq_is_unknown_and_fast)
{
	struct vmclockd_state copy;
	struct testpage s;
	vmclock_truth_t *t;
	int64_t start, took;

	write_page(MARKER);
	state_init(&s, VMCLOCKD_SYNC_SYNCHRONIZED, MARKER);
	tp_put32(&s, ST_SEQ, 7);
	write_state(&s);

	/* A handle that never saw a consistent copy: UNKNOWN from the start. */
	t = vmclock_truth_open(page_path, state_path);
	start = tp_now_ns();
	for (int i = 0; i < ODD_CALLS; i++)
		ck_assert_int_eq(stamp(t).verdict, VMCLOCK_VERDICT_UNKNOWN);
	took = tp_now_ns() - start;
	ck_assert_msg(took < ODD_CALLS_MAX_NS, "%d calls took %lld ns", ODD_CALLS, (long long)took);
	start = tp_now_ns();
	errno = 0;
	ck_assert_int_eq(vmclock_daemon_state(t, &copy), -1);
	ck_assert_int_eq(errno, ETIMEDOUT);
	took = tp_now_ns() - start;
	ck_assert_msg(took < ODD_CALLS_MAX_NS / 10, "vmclock_daemon_state took %lld ns", (long long)took);

	/* The writer finishes: synchronized again. */
	tp_put32(&s, ST_SEQ, 8);
	update_state(&s);
	ck_assert(wait_verdict(t, VMCLOCK_VERDICT_SYNCHRONIZED, SEE_CHANGE_NS));

	/* A writer dies mid-update under a running handle: UNKNOWN soon, and
	 * every call stays fast meanwhile. */
	tp_put32(&s, ST_SEQ, 9);
	update_state(&s);
	ck_assert(wait_verdict(t, VMCLOCK_VERDICT_UNKNOWN, SEE_CHANGE_NS));
	start = tp_now_ns();
	for (int i = 0; i < ODD_CALLS; i++)
		ck_assert_int_eq(stamp(t).verdict, VMCLOCK_VERDICT_UNKNOWN);
	took = tp_now_ns() - start;
	ck_assert_msg(took < ODD_CALLS_MAX_NS, "%d calls took %lld ns", ODD_CALLS, (long long)took);
	vmclock_truth_close(t);
}
END_TEST

/* ---- truncation ------------------------------------------------------------------ */

static volatile int stop_reading;
static volatile long reads_done, reads_bounded;

static void *reader(void *arg)
{
	const vmclock_truth_t *t = arg;

	while (!stop_reading) {
		struct vmclock_timestamp ts;

		vmclock_timestamp(t, &ts);
		reads_done++;
		if (ts.verdict == VMCLOCK_VERDICT_SYNCHRONIZED)
			reads_bounded++;
	}
	return NULL;
}

/* truncate -s 0 under a reading handle: a mapping would fault (SIGBUS
 * kills this forked test); the verdict is UNKNOWN while the file is short
 * and SYNCHRONIZED again once the daemon writes it whole. */
START_TEST(test_truncated_state)
{
	struct vmclockd_state copy;
	struct testpage s;
	vmclock_truth_t *t;
	pthread_t th;

	write_page(MARKER);
	state_init(&s, VMCLOCKD_SYNC_SYNCHRONIZED, MARKER);
	write_state(&s);
	t = vmclock_truth_open(page_path, state_path);
	ck_assert_int_eq(stamp(t).verdict, VMCLOCK_VERDICT_SYNCHRONIZED);

	ck_assert_int_eq(truncate(state_path, 0), 0);
	ck_assert(wait_verdict(t, VMCLOCK_VERDICT_UNKNOWN, SEE_CHANGE_NS));
	errno = 0;
	ck_assert_int_eq(vmclock_daemon_state(t, &copy), -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_int_eq(truncate(state_path, 100), 0); /* shorter than a state */
	ck_assert_int_eq(stamp(t).verdict, VMCLOCK_VERDICT_UNKNOWN);
	rewrite_state(&s);
	ck_assert(wait_verdict(t, VMCLOCK_VERDICT_SYNCHRONIZED, SEE_CHANGE_NS));

	/* Truncations and rewrites while another thread reads on. */
	stop_reading = 0;
	ck_assert_int_eq(pthread_create(&th, NULL, reader, t), 0);
	for (int i = 0; i < 200; i++) {
		ck_assert_int_eq(truncate(state_path, i % 2 ? 0 : 64), 0);
		usleep(500);
		rewrite_state(&s);
		usleep(500);
	}
	stop_reading = 1;
	pthread_join(th, NULL);
	ck_assert_int_gt(reads_done, 0);
	ck_assert(wait_verdict(t, VMCLOCK_VERDICT_SYNCHRONIZED, SEE_CHANGE_NS));
	ck_assert_int_eq(vmclock_daemon_state(t, &copy), 0);
	vmclock_truth_close(t);
}
END_TEST

/* ---- the cached view under refresh --------------------------------------------- */

#define VIEW_READERS 2
#define VIEW_RUN_NS 1500000000ll
#define BOUND_A 1000u /* SYNCHRONIZED */
#define BOUND_B 7000u /* UNSYNCHRONIZED: FREERUNNING */

static volatile int view_stop;
static long view_mixed, view_unknown, view_a, view_b;
static pthread_mutex_t view_lock = PTHREAD_MUTEX_INITIALIZER;

/* Reads on while the handle's view is refreshed under it: every reading
 * must come whole from one state or the other. */
static void *view_reader(void *arg)
{
	const vmclock_truth_t *t = arg;
	long mixed = 0, unknown = 0, a = 0, b = 0;

	while (!view_stop) {
		struct vmclock_timestamp ts;

		vmclock_timestamp(t, &ts);
		if (ts.verdict == VMCLOCK_VERDICT_SYNCHRONIZED && ts.bound_ns == BOUND_A)
			a++;
		else if (ts.verdict == VMCLOCK_VERDICT_FREERUNNING && ts.bound_ns == BOUND_B)
			b++;
		else if (ts.verdict == VMCLOCK_VERDICT_UNKNOWN)
			unknown++;
		else
			mixed++;
	}
	pthread_mutex_lock(&view_lock);
	view_mixed += mixed;
	view_unknown += unknown;
	view_a += a;
	view_b += b;
	pthread_mutex_unlock(&view_lock);
	return NULL;
}

/* One state written as the daemon writes it: the count odd, the fields,
 * the count even. */
static void write_state_protocol(int fd, struct testpage *s, uint32_t *seq)
{
	uint8_t le[4];

	*seq += 1;
	tp_put32(s, ST_SEQ, *seq);
	memcpy(le, s->b + ST_SEQ, sizeof(le));
	ck_assert_int_eq(pwrite(fd, le, sizeof(le), ST_SEQ), (ssize_t)sizeof(le));
	tp_put64(s, ST_HEARTBEAT, realtime_ns());
	ck_assert_int_eq(pwrite(fd, s->b, ST_BYTES, 0), ST_BYTES);
	*seq += 1;
	tp_put32(s, ST_SEQ, *seq);
	memcpy(le, s->b + ST_SEQ, sizeof(le));
	ck_assert_int_eq(pwrite(fd, le, sizeof(le), ST_SEQ), (ssize_t)sizeof(le));
}

/* Threads share one handle; whichever finds the view due refreshes it
 * while the others copy it.  The file alternates between two states that
 * differ in the verdict and the bound (no drift, so the bound is exact):
 * a view copied half from one and half from the other would show as a
 * verdict with the other state's bound. */
START_TEST(test_view_whole_under_refresh)
{
	struct testpage sa, sb;
	pthread_t th[VIEW_READERS];
	vmclock_truth_t *t;
	uint32_t seq = 2;
	int64_t end;
	int fd;

	write_page(MARKER);
	state_init(&sa, VMCLOCKD_SYNC_SYNCHRONIZED, MARKER);
	tp_put32(&sa, ST_DRIFT, 0);
	tp_put64(&sa, ST_BOUND, BOUND_A);
	sb = sa;
	tp_put8(&sb, ST_SYNC, VMCLOCKD_SYNC_UNSYNCHRONIZED);
	tp_put64(&sb, ST_BOUND, BOUND_B);
	write_state(&sa);
	t = vmclock_truth_open(page_path, state_path);
	fd = open(state_path, O_WRONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	view_stop = 0;
	view_mixed = view_unknown = view_a = view_b = 0;
	for (int i = 0; i < VIEW_READERS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, view_reader, t), 0);
	end = tp_now_ns() + VIEW_RUN_NS;
	for (long n = 0; tp_now_ns() < end; n++) {
		/* Both bounds' times now: neither grows (no drift anyway). */
		struct testpage *s = n % 2 ? &sb : &sa;

		tp_put64(s, ST_BOUND_TIME, realtime_ns());
		write_state_protocol(fd, s, &seq);
		usleep(300);
	}
	view_stop = 1;
	for (int i = 0; i < VIEW_READERS; i++)
		pthread_join(th[i], NULL);
	close(fd);
	vmclock_truth_close(t);
	ck_assert_msg(view_mixed == 0, "%ld readings mixed the two states (%ld A, %ld B, %ld unknown)",
		      view_mixed, view_a, view_b, view_unknown);
	/* Both states were seen: the view really was refreshed under the readers. */
	ck_assert_int_gt(view_a, 0);
	ck_assert_int_gt(view_b, 0);
}
END_TEST

/* ---- foreign bytes ------------------------------------------------------------- */

/* Every multi-byte field of a good state written big-endian (a writer
 * storing host-endian on a big-endian machine). */
START_TEST(test_big_endian_state)
{
	struct vmclockd_state copy;
	struct testpage s, be;
	static const struct {
		size_t off, len;
	} fields[] = { { ST_MAGIC, 4 },     { ST_VERSION, 2 },    { ST_SIZE, 2 },
		       { ST_SEQ, 4 },       { ST_TIMEOUT_MS, 2 }, { ST_HEARTBEAT, 8 },
		       { ST_MARKER, 8 },    { ST_BOUND, 8 },      { ST_BOUND_TIME, 8 },
		       { ST_DRIFT, 4 } };
	vmclock_truth_t *t;

	write_page(MARKER);
	state_init(&s, VMCLOCKD_SYNC_SYNCHRONIZED, MARKER);
	be = s;
	for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++)
		for (size_t i = 0; i < fields[f].len; i++)
			be.b[fields[f].off + i] = s.b[fields[f].off + fields[f].len - 1 - i];
	write_state(&be);
	t = vmclock_truth_open(page_path, state_path);
	ck_assert_int_eq(stamp(t).verdict, VMCLOCK_VERDICT_UNKNOWN);
	ck_assert_uint_eq(stamp(t).bound_ns, VMCLOCK_ERROR_UNKNOWN);
	errno = 0;
	ck_assert_int_eq(vmclock_daemon_state(t, &copy), -1);
	ck_assert_int_eq(errno, EBADMSG);

	/* The same state little-endian is read, field for field. */
	update_state(&s);
	ck_assert(wait_verdict(t, VMCLOCK_VERDICT_SYNCHRONIZED, SEE_CHANGE_NS));
	ck_assert_int_eq(vmclock_daemon_state(t, &copy), 0);
	ck_assert_int_eq(memcmp(&copy, s.b, sizeof(copy)), 0);
	ck_assert_uint_eq(vmclock_le64(copy.disruption_marker), MARKER);
	ck_assert_uint_eq(vmclock_le16(copy.heartbeat_timeout_ms), TIMEOUT_MS);
	vmclock_truth_close(t);
}
END_TEST

/* One name per withhold reason and sync state, distinct, and none beyond. */
START_TEST(test_state_names)
{
	for (unsigned r = 0; r < VMCLOCKD_STATE_REASONS; r++) {
		ck_assert_ptr_nonnull(vmclockd_reason_name(r));
		ck_assert_ptr_nonnull(vmclockd_reason_text(r));
		for (unsigned q = 0; q < r; q++)
			ck_assert_str_ne(vmclockd_reason_name(q), vmclockd_reason_name(r));
	}
	ck_assert_ptr_null(vmclockd_reason_name(VMCLOCKD_STATE_REASONS));
	ck_assert_ptr_null(vmclockd_reason_text(VMCLOCKD_STATE_REASONS));
	ck_assert_str_eq(vmclockd_reason_name(VMCLOCKD_REASON_DISRUPTION), "disruption");
	ck_assert_str_eq(vmclockd_reason_name(VMCLOCKD_REASON_NO_DEVICE), "no_device");
	ck_assert_str_eq(vmclockd_sync_state_name(VMCLOCKD_SYNC_UNKNOWN), "unknown");
	ck_assert_str_eq(vmclockd_sync_state_name(VMCLOCKD_SYNC_SYNCHRONIZED), "synchronized");
	ck_assert_str_eq(vmclockd_sync_state_name(VMCLOCKD_SYNC_UNSYNCHRONIZED), "unsynchronized");
	ck_assert_str_eq(vmclockd_sync_state_name(VMCLOCKD_SYNC_DISRUPTED), "disrupted");
	ck_assert_ptr_null(vmclockd_sync_state_name(VMCLOCKD_SYNC_DISRUPTED + 1));
}
END_TEST

Suite *truth_suite(void)
{
	Suite *s = suite_create("truth");
	TCase *tc = tcase_create("verdicts");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_verdict_rules, 0, (int)(sizeof(rules) / sizeof(rules[0])));
	tcase_add_test(tc, test_no_state_no_device);
	tcase_add_test(tc, test_bound_grows_with_drift);
	tcase_add_test(tc, test_state_names);
	tcase_add_loop_test(tc, test_fast_window_exact, 0,
			    (int)(sizeof(window_cases) / sizeof(window_cases[0])));
	tcase_add_test(tc, test_marker_moves_in_window);
	tcase_add_test(tc, test_heartbeat_stale_in_window);
	suite_add_tcase(s, tc);

	tc = tcase_create("changing state file");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_heartbeat_goes_stale);
	tcase_add_loop_test(tc, test_state_recreated_or_replaced, 0, 2);
	tcase_add_test(tc, test_odd_seq_is_unknown_and_fast);
	tcase_add_test(tc, test_truncated_state);
	tcase_add_test(tc, test_view_whole_under_refresh);
	tcase_add_test(tc, test_big_endian_state);
	suite_add_tcase(s, tc);
	return s;
}
