/* SPDX-License-Identifier: BSD-2-Clause
 *
 * check_snapshot.c - readers against a writer that never stops.
 *
 * A writer thread updates a page file through its own shared mapping under
 * the seq_count protocol while readers take snapshots and times through the
 * library's mapping.  Every update derives all fields from one number v, so a
 * copy mixing two updates is caught: from any one field v is recovered and
 * the whole copy must equal the page built from v.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "vmclock.h"
#include "suites.h"
#include "testpage.h"

#define HAMMER_NS 1000000000ll
#define CHURN_NS 300000000ll
/* Past the planned time, keep going until every reader has seen this many
 * updates (slow under valgrind, which runs one thread at a time), but not
 * past the limit. */
#define MIN_CHANGES 10
#define LIMIT_NS 20000000000ll

/* The counter readings the pages are anchored near (set per test). */
static uint64_t base_counter;
static uint8_t counter_id;

/* The page of update v; seq_count 2v, as the writer leaves it. */
static void fill(struct testpage *p, uint64_t v)
{
	uint64_t flags = VMCLOCK_FLAG_TAI_OFFSET_VALID | VMCLOCK_FLAG_PERIOD_ESTERROR_VALID |
			 VMCLOCK_FLAG_PERIOD_MAXERROR_VALID | VMCLOCK_FLAG_TIME_ESTERROR_VALID |
			 VMCLOCK_FLAG_TIME_MAXERROR_VALID;

	if (v & 1)
		flags |= VMCLOCK_FLAG_DISRUPTION_SOON;
	tp_init(p);
	tp_put8(p, TP_COUNTER_ID, counter_id);
	tp_put8(p, TP_TIME_TYPE, VMCLOCK_TIME_UTC);
	tp_put32(p, TP_SEQ_COUNT, (uint32_t)(2 * v));
	tp_put64(p, TP_MARKER, v * 0x9e3779b97f4a7c15ull);
	tp_put64(p, TP_FLAGS, flags);
	tp_put8(p, TP_PAD, (uint8_t)v);
	tp_put8(p, TP_PAD + 1, (uint8_t)(v >> 8));
	tp_put8(p, TP_STATUS, VMCLOCK_STATUS_SYNCHRONIZED);
	tp_put8(p, TP_SMEARING, (uint8_t)(v % 3));
	tp_put16(p, TP_TAI_OFFSET, (uint16_t)-(int16_t)(v % 40));
	tp_put8(p, TP_LEAP, (uint8_t)(v % 5));
	tp_put8(p, TP_SHIFT, 8);
	tp_put64(p, TP_COUNTER, base_counter + v * 1000);
	tp_put64(p, TP_PERIOD, 1574122160000ull + v % 1024); /* ~1/3 ns at shift 8 */
	tp_put64(p, TP_PERIOD_ESTERR, v * 3);
	tp_put64(p, TP_PERIOD_MAXERR, v * 5);
	tp_put64(p, TP_TIME_SEC, 1700000000 + v);
	tp_put64(p, TP_TIME_FRAC, v * 0x0123456789abcdefull);
	tp_put64(p, TP_TIME_ESTERR, v + 1);
	tp_put64(p, TP_TIME_MAXERR, v + 2);
	tp_put64(p, TP_GENERATION, v * 7);
}

struct shared {
	volatile uint8_t *map;      /* the writer's read-write mapping */
	vmclock_t *vc;              /* the readers' handle */
	int stop;                   /* atomic */
	bool churn;                 /* seq_count only, never stable for long */
	uint64_t writes;
};

struct reader {
	struct shared *sh;
	bool gettime;
	uint64_t reads, changes, timeouts;
	int64_t longest_ns;
	char failure[256];
};

static void spin(unsigned n)
{
	for (volatile unsigned i = 0; i < n; i++)
		;
}

static uint32_t *seq_ptr(volatile uint8_t *map)
{
	return (uint32_t *)(uintptr_t)(map + TP_SEQ_COUNT);
}

static void *writer(void *arg)
{
	struct shared *sh = arg;
	struct testpage p;
	uint64_t v = 0;

	while (!__atomic_load_n(&sh->stop, __ATOMIC_RELAXED)) {
		uint32_t seq = __atomic_load_n(seq_ptr(sh->map), __ATOMIC_RELAXED);

		v++;
		fill(&p, v);
		/* Odd: the update begins; no data store may pass it. */
		__atomic_store_n(seq_ptr(sh->map), seq + 1, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_RELEASE);
		for (size_t off = TP_MARKER; off < TP_PAGE_BYTES; off += 8) {
			tp_store64(sh->map, off, tp_get64(&p, off));
			/* Sometimes linger half-written. */
			if (!sh->churn && v % 64 == 0)
				spin(50);
		}
		/* Even again: the update is complete. */
		__atomic_store_n(seq_ptr(sh->map), seq + 2, __ATOMIC_RELEASE);
		if (!sh->churn)
			spin(200);
		/* Let the readers in now and then where threads share a CPU
		 * (valgrind runs one thread at a time). */
		if (v % 256 == 0)
			sched_yield();
	}
	sh->writes = v;
	return NULL;
}

/* Threads other than the test's own must not call Check: keep the first
 * failure for the test to report after joining. */
__attribute__((format(printf, 2, 3)))
static void fail_once(struct reader *r, const char *fmt, ...)
{
	va_list ap;

	if (r->failure[0])
		return;
	va_start(ap, fmt);
	vsnprintf(r->failure, sizeof(r->failure), fmt, ap);
	va_end(ap);
}

/* The copy must be exactly the page of the v it carries. */
static uint64_t check_copy(struct reader *r, const struct vmclock_abi *a)
{
	struct testpage got, want;
	uint64_t v;

	memset(&got, 0, sizeof(got));
	memcpy(got.b, a, sizeof(*a));
	v = tp_get64(&got, TP_TIME_ESTERR) - 1;
	fill(&want, v);
	if (memcmp(got.b, want.b, TP_PAGE_BYTES) != 0) {
		for (size_t off = 0; off < TP_PAGE_BYTES; off++)
			if (got.b[off] != want.b[off]) {
				fail_once(r, "torn snapshot of update %" PRIu64 " at byte %" PRIu64,
					  v, (uint64_t)off);
				break;
			}
	}
	return v;
}

/* The time must be what the page of its v gives at its counter reading. */
static uint64_t check_time(struct reader *r, const struct vmclock_time *t)
{
	struct testpage p;
	struct vmclock_abi a;
	struct vmclock_time want;
	uint64_t v = t->vm_generation_counter / 7;

	fill(&p, v);
	tp_to_abi(&p, &a);
	if (t->vm_generation_counter % 7 != 0 || vmclock_convert(&a, t->counter, &want) < 0) {
		fail_once(r, "torn time: generation %" PRIu64 " (errno %" PRIu64 ")",
			  t->vm_generation_counter, (uint64_t)errno);
		return v;
	}
	if (t->sec != want.sec || t->nsec != want.nsec || t->utc_sec != want.utc_sec ||
	    t->utc_nsec != want.utc_nsec || t->utc_valid != want.utc_valid ||
	    t->esterror_ns != want.esterror_ns || t->maxerror_ns != want.maxerror_ns ||
	    t->flags != want.flags || t->disruption_marker != want.disruption_marker ||
	    t->seq_count != want.seq_count || t->leap_indicator != want.leap_indicator ||
	    t->leap_second_smearing_hint != want.leap_second_smearing_hint ||
	    t->counter_period_frac_sec != want.counter_period_frac_sec ||
	    t->clock_status != want.clock_status)
		fail_once(r, "torn time of update %" PRIu64 " at counter %" PRIu64, v, t->counter);
	return v;
}

static void *reader(void *arg)
{
	struct reader *r = arg;
	uint64_t last = UINT64_MAX;

	while (!__atomic_load_n(&r->sh->stop, __ATOMIC_RELAXED)) {
		struct vmclock_abi a;
		struct vmclock_time t;
		int64_t start = tp_now_ns(), took;
		uint64_t v;
		int rc;

		rc = r->gettime ? vmclock_gettime(r->sh->vc, &t) : vmclock_snapshot(r->sh->vc, &a);
		took = tp_now_ns() - start;
		if (took > r->longest_ns)
			r->longest_ns = took;
		r->reads++;
		if (rc < 0) {
			if (errno == ETIMEDOUT && r->sh->churn) {
				r->timeouts++;
				continue;
			}
			fail_once(r, "read failed: errno %" PRIu64 " after %" PRIu64 " ns",
				  (uint64_t)errno, (uint64_t)took);
			continue;
		}
		v = r->gettime ? check_time(r, &t) : check_copy(r, &a);
		if (v != last)
			__atomic_add_fetch(&r->changes, 1, __ATOMIC_RELAXED);
		last = v;
		if (r->reads % 256 == 0)
			sched_yield();
	}
	return NULL;
}

/* A page file of update 0, its read-write mapping, and a library handle. */
static char *setup(struct shared *sh, char **dir)
{
	struct testpage p;
	char *path;
	int fd;

	counter_id = tp_native_counter();
	if (!vmclock_read_counter(counter_id, &base_counter))
		base_counter = 1ull << 40;
	*dir = tp_tmpdir();
	fill(&p, 0);
	path = tp_write_file(*dir, "page", &p);
	fd = open(path, O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	sh->map = mmap(NULL, TP_PAGE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert(sh->map != MAP_FAILED);
	close(fd);
	sh->vc = vmclock_open(path);
	ck_assert_ptr_nonnull(sh->vc);
	return path;
}

static void teardown(struct shared *sh, char *path, char *dir)
{
	vmclock_close(sh->vc);
	munmap((void *)(uintptr_t)sh->map, TP_PAGE_BYTES);
	tp_rmdir(dir);
	free(path);
	free(dir);
}

static void sleep_ns(int64_t ns)
{
	struct timespec ts = { .tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void run(bool churn, int64_t ns, struct reader *rs, int nreaders, struct shared *sh)
{
	pthread_t w, t[4];

	sh->churn = churn;
	sh->stop = 0;
	ck_assert_int_eq(pthread_create(&w, NULL, writer, sh), 0);
	for (int i = 0; i < nreaders; i++) {
		rs[i].sh = sh;
		ck_assert_int_eq(pthread_create(&t[i], NULL, reader, &rs[i]), 0);
	}
	sleep_ns(ns);
	for (int64_t waited = ns; waited < LIMIT_NS; waited += 50000000) {
		bool enough = true;

		for (int i = 0; i < nreaders; i++)
			if (__atomic_load_n(&rs[i].changes, __ATOMIC_RELAXED) < MIN_CHANGES)
				enough = false;
		if (enough || churn)
			break;
		sleep_ns(50000000);
	}
	__atomic_store_n(&sh->stop, 1, __ATOMIC_RELAXED);
	pthread_join(w, NULL);
	for (int i = 0; i < nreaders; i++)
		pthread_join(t[i], NULL);
}

/* Readers: 0 two snapshots, 1 a snapshot and a gettime, 2 two gettimes
 * (both keeping the handle's prep of each version under the writer). */
START_TEST(test_hammer)
{
	static const char *const kinds[] = { "snapshot", "snapshot+gettime", "gettime+gettime" };
	struct shared sh = { 0 };
	struct reader rs[2] = { { .gettime = false }, { .gettime = false } };
	char *dir, *path = setup(&sh, &dir);

	rs[0].gettime = (_i == 2);
	rs[1].gettime = (_i >= 1);
	run(false, HAMMER_NS, rs, 2, &sh);
	fprintf(stderr, "hammer (%s): %" PRIu64 " updates; reads %" PRIu64 "/%" PRIu64
		", %" PRIu64 "/%" PRIu64 " changes seen; longest read %" PRId64 " us\n",
		kinds[_i], sh.writes, rs[0].reads, rs[1].reads,
		rs[0].changes, rs[1].changes, (rs[0].longest_ns > rs[1].longest_ns ?
		rs[0].longest_ns : rs[1].longest_ns) / 1000);
	for (int i = 0; i < 2; i++) {
		ck_assert_msg(!rs[i].failure[0], "reader %d: %s", i, rs[i].failure);
		/* The readers really raced the writer. */
		ck_assert_uint_ge(rs[i].reads, 100);
		ck_assert_uint_ge(rs[i].changes, MIN_CHANGES);
	}
	ck_assert_uint_ge(sh.writes, 1000);
	teardown(&sh, path, dir);
}
END_TEST

/* seq_count moving all the time, with the data: every read either succeeds
 * with a whole update or gives ETIMEDOUT, and none takes long. */
START_TEST(test_churn)
{
	struct shared sh = { 0 };
	struct reader rs[2] = { { .gettime = false }, { .gettime = true } };
	char *dir, *path = setup(&sh, &dir);

	run(true, CHURN_NS, rs, 2, &sh);
	fprintf(stderr, "churn: %" PRIu64 " updates; reads %" PRIu64 "/%" PRIu64
		", timeouts %" PRIu64 "/%" PRIu64 "\n", sh.writes, rs[0].reads, rs[1].reads,
		rs[0].timeouts, rs[1].timeouts);
	for (int i = 0; i < 2; i++) {
		ck_assert_msg(!rs[i].failure[0], "reader %d: %s", i, rs[i].failure);
		ck_assert_uint_ge(rs[i].reads, 1);
		ck_assert_msg(rs[i].longest_ns < 1000000000, "a read took %" PRId64 " ns",
			      rs[i].longest_ns);
	}
	teardown(&sh, path, dir);
}
END_TEST

/* Writes a whole page through the writer's mapping, without the protocol. */
static void rewrite(struct shared *sh, const struct testpage *p)
{
	for (size_t off = 0; off < TP_PAGE_BYTES; off += 8)
		tp_store64(sh->map, off, tp_get64(p, off));
}

/*
 * vmclock_gettime() keeps what a page version allows (its bounds' rates
 * and errors) under the version's seq_count, marker and generation
 * counter.  A page built afresh at the same seq_count (a restored
 * snapshot) is converted with its own fields once the marker (_i == 0) or
 * the generation counter (_i == 1) differs, and a page whose seq_count
 * moved on (_i == 2) as well: update 2's bounds, never update 1's.
 */
START_TEST(test_version_rewritten)
{
	struct shared sh = { 0 };
	char *dir, *path = setup(&sh, &dir);
	struct testpage before, after;
	struct vmclock_abi a;
	struct vmclock_time t, want;

	fill(&before, 1);
	rewrite(&sh, &before);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(vmclock_gettime(sh.vc, &t), 0);
	ck_assert_uint_eq(t.vm_generation_counter, 7);
	fill(&after, 2);
	tp_put32(&after, TP_SEQ_COUNT, _i == 2 ? 4 : 2);
	if (_i != 0)
		tp_put64(&after, TP_MARKER, tp_get64(&before, TP_MARKER));
	if (_i != 1)
		tp_put64(&after, TP_GENERATION, tp_get64(&before, TP_GENERATION));
	rewrite(&sh, &after);
	tp_to_abi(&after, &a);
	ck_assert_int_eq(vmclock_gettime(sh.vc, &t), 0);
	ck_assert_int_eq(vmclock_convert(&a, t.counter, &want), 0);
	ck_assert_msg(t.esterror_ns == want.esterror_ns && t.maxerror_ns == want.maxerror_ns,
		      "errors %" PRIu64 "/%" PRIu64 ", the page gives %" PRIu64 "/%" PRIu64,
		      t.esterror_ns, t.maxerror_ns, want.esterror_ns, want.maxerror_ns);
	ck_assert(t.sec == want.sec && t.nsec == want.nsec);
	teardown(&sh, path, dir);
}
END_TEST

/* Time one call that must fail with ETIMEDOUT after about 100 ms. */
#define EXPECT_TIMEOUT(call)                                                          \
	do {                                                                          \
		int64_t t0_ = tp_now_ns(), took_;                                     \
		errno = 0;                                                            \
		ck_assert_int_eq((call), -1);                                         \
		took_ = tp_now_ns() - t0_;                                            \
		ck_assert_int_eq(errno, ETIMEDOUT);                                   \
		ck_assert_msg(took_ >= VMCLOCK_MAX_WAIT_NS * 9 / 10,                  \
			      #call " gave up after %" PRId64 " ns", took_);          \
		ck_assert_msg(took_ < 1000000000, #call " took %" PRId64 " ns", took_); \
	} while (0)

START_TEST(test_stuck_odd)
{
	struct shared sh = { 0 };
	char *dir, *path = setup(&sh, &dir);
	struct vmclock_abi a;
	struct vmclock_time t;
	struct vmclock_offset o;
	vmclock_t *vc2;
	int64_t t0, took;

	__atomic_store_n(seq_ptr(sh.map), 7u, __ATOMIC_RELEASE);
	EXPECT_TIMEOUT(vmclock_snapshot(sh.vc, &a));
	EXPECT_TIMEOUT(vmclock_gettime(sh.vc, &t));
	EXPECT_TIMEOUT(vmclock_offset(sh.vc, &o));
	t0 = tp_now_ns();
	errno = 0;
	vc2 = vmclock_open(path);
	took = tp_now_ns() - t0;
	ck_assert_ptr_null(vc2);
	ck_assert_int_eq(errno, ETIMEDOUT);
	ck_assert_int_lt(took, 1000000000);
	/* The writer finishes: reads work again on the same handle. */
	__atomic_store_n(seq_ptr(sh.map), 8u, __ATOMIC_RELEASE);
	ck_assert_int_eq(vmclock_snapshot(sh.vc, &a), 0);
	ck_assert_uint_eq(vmclock_le32(a.seq_count), 8);
	teardown(&sh, path, dir);
}
END_TEST

Suite *snapshot_suite(void)
{
	Suite *s = suite_create("snapshot");
	TCase *tc = tcase_create("concurrent");

	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_hammer, 0, 3);
	tcase_add_loop_test(tc, test_version_rewritten, 0, 3);
	tcase_add_test(tc, test_churn);
	tcase_add_test(tc, test_stuck_odd);
	suite_add_tcase(s, tc);
	return s;
}
