/* SPDX-License-Identifier: BSD-2-Clause
 *
 * check_sampler.c - the tick (daemon/sampler.c) on a real event loop, a page
 * file the test writes and a SOCK output the test listens on.
 *
 * The page is built byte by byte (tests/testpage.c), anchored at this CPU's
 * counter and CLOCK_REALTIME + PAGE_AHEAD_NS, and rewritten in place (the
 * sampler's mapping sees it), replaced by rename, truncated under the
 * mapping or written only after the sampler started, between runs of the
 * loop: the loop and the test share one thread, so no read ever races a
 * write.  The test's end of the
 * chrony-sock output is a datagram socket drained from the same loop (a
 * chronyd double); its datagrams are decoded at the byte offsets chronyd
 * reads.  What the sampler shows its hooks is recorded and asserted on, as
 * are its reports: never its log lines.
 *
 * The realtime-clock step watch is not exercised: it wakes only when the
 * clock is set, and no test may set this machine's clock.  The device
 * notifications need a vmclock character device, which a unit test cannot
 * make.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <check.h>

#include "vmclock.h"

#include "../daemon/evbase.h"
#include "../daemon/feed.h"
#include "../daemon/log.h"
#include "../daemon/sampler.h"
#include "testpage.h"

/* The page's time is this far ahead of CLOCK_REALTIME. */
#define PAGE_AHEAD_NS 5000000
/* How far a measured offset may be from it: the calibrated period's error
 * over the test's few seconds is microseconds. */
#define OFFSET_SLACK_NS 1000000
#define PAGE_MAXERR_NS 1000u
#define MARKER 1u

/* The datagram chronyd's SOCK refclock reads (native byte order, LP64),
 * written out independently of daemon/chrony_sock.h. */
#define DGRAM_BYTES 40
#define DGRAM_SEC_OFF 0
#define DGRAM_USEC_OFF 8
#define DGRAM_OFFSET_OFF 16
#define DGRAM_PULSE_OFF 24
#define DGRAM_LEAP_OFF 28
#define DGRAM_MAGIC_OFF 36
#define DGRAM_MAGIC 0x534f434bu

/* ntpd's SHM key for a unit, and a size no shmTime has. */
#define SHM_KEY_BASE 0x4e545030
#define SHM_FOREIGN_BYTES 16

/* Computed once in main(), inherited by every test's child. */
static uint8_t counter_id = VMCLOCK_COUNTER_INVALID;
static uint64_t period;
static unsigned shift;

typedef struct {
	int64_t sec, usec;
	double offset;
	int pulse, leap;
	uint32_t magic;
} Datagram;

static struct {
	struct event_base *base;
	struct event *deadline_ev, *sock_ev;
	bool timed_out;
	char *dir, *page_path, *sock_path;
	int sock_fd; /* the test's end of the chrony-sock output, or -1 */
	CNF_Settings cfg; /* what the sampler reads (main.c's settings) */
	struct testpage page;
	bool started;

	/* What the hooks were shown. */
	unsigned ticks;
	SMP_Report last;
	unsigned observed;
	uint64_t observed_marker;
	bool observed_offset;
	int64_t observed_offset_ns;
	POL_Reason observed_judged;
	double observed_offset_s;
	/* The observer's answer: a disruption while the page's marker is
	 * not this one; the next tick within verdict_ms (0: the interval). */
	uint64_t accepted_marker;
	unsigned verdict_ms;

	/* What the chronyd double received. */
	unsigned datagrams;
	Datagram dgram;
} T;

/* ---- the sampler's interface ---------------------------------------------
 *
 * Everything the tests ask of the sampler and every hook it calls back is
 * here: the observer (the disruption module's place: its verdict on each
 * page copy and the sample judged from it), the tick's report, start and
 * reload.  The tests use these alone. */

static SMP_Verdict observe_cb(const struct vmclock_abi *page, const struct vmclock_offset *offset,
			      POL_Reason judged, double offset_s, void *arg)
{
	uint64_t marker = vmclock_le64(page->disruption_marker);

	T.observed++;
	T.observed_marker = marker;
	T.observed_offset = offset != NULL;
	if (offset)
		T.observed_offset_ns = offset->offset_ns;
	T.observed_judged = judged;
	T.observed_offset_s = offset_s;
	return (SMP_Verdict){ .withhold = marker != T.accepted_marker, .tick_ms = T.verdict_ms };
}

static void tick_done_cb(const SMP_Report *report, void *arg)
{
	T.ticks++;
	T.last = *report;
}

static int start_sampler(void)
{
	static const SMP_Hooks hooks = { .observe = observe_cb, .tick_done = tick_done_cb };
	int r = SMP_Initialise(T.base, &T.cfg, &hooks);

	T.started = r == 0;
	return r;
}


/* A reload as main.c does it: the settings are replaced unless refused. */
static int reconfigure(const CNF_Settings *fresh)
{
	int r = SMP_Reconfigure(fresh);

	if (r >= 0)
		T.cfg = *fresh;
	return r;
}

/* ---- the chronyd double ------------------------------------------------- */

static void drain(void)
{
	uint8_t b[DGRAM_BYTES + 8];
	ssize_t n;

	if (T.sock_fd < 0)
		return;
	while ((n = recv(T.sock_fd, b, sizeof(b), MSG_DONTWAIT)) >= 0) {
		ck_assert_int_eq(n, DGRAM_BYTES);
		T.datagrams++;
		T.dgram.sec = tp_native_i64(b, DGRAM_SEC_OFF);
		T.dgram.usec = tp_native_i64(b, DGRAM_USEC_OFF);
		memcpy(&T.dgram.offset, b + DGRAM_OFFSET_OFF, sizeof(double));
		T.dgram.pulse = tp_native_i32(b, DGRAM_PULSE_OFF);
		T.dgram.leap = tp_native_i32(b, DGRAM_LEAP_OFF);
		T.dgram.magic = (uint32_t)tp_native_i32(b, DGRAM_MAGIC_OFF);
	}
	ck_assert_int_eq(errno, EAGAIN);
}

static void sock_cb(evutil_socket_t fd, short what, void *arg)
{
	drain();
}

/* Binds path as chronyd binds its SOCK refclock's socket. */
static int bind_sock(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_uint_lt(strlen(path), sizeof(a.sun_path));
	strcpy(a.sun_path, path);
	unlink(path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

static void listen_on(const char *path)
{
	if (T.sock_ev)
		event_free(T.sock_ev);
	if (T.sock_fd >= 0)
		close(T.sock_fd);
	T.sock_fd = bind_sock(path);
	T.sock_ev = event_new(T.base, T.sock_fd, EV_READ | EV_PERSIST, sock_cb, NULL);
	ck_assert_ptr_nonnull(T.sock_ev);
	ck_assert_int_eq(event_add(T.sock_ev, NULL), 0);
}

/* ---- the loop ----------------------------------------------------------- */

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	T.timed_out = true;
}

/* Runs the loop until done() holds, or for at most ms; whether it held. */
static bool run_until(bool (*done)(void), unsigned ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	T.timed_out = false;
	evtimer_add(T.deadline_ev, &tv);
	while (!done() && !T.timed_out)
		event_base_loop(T.base, EVLOOP_ONCE);
	evtimer_del(T.deadline_ev);
	return done();
}

static bool never(void)
{
	return false;
}

/* Runs the loop for ms; the ticks that ran. */
static unsigned run_for(unsigned ms)
{
	unsigned before = T.ticks;

	run_until(never, ms);
	return T.ticks - before;
}

static unsigned ticks_before;
static POL_Reason awaited;
static uint64_t awaited_marker;

static bool ticked(void)
{
	return T.ticks > ticks_before;
}

static bool reason_seen(void)
{
	return ticked() && T.last.reason == awaited;
}

static bool marker_seen(void)
{
	return ticked() && T.last.marker == awaited_marker && T.last.reason == POL_FED;
}

/* Runs ticks until one reports r (a tick after the call: the page as it is
 * now), for at most ms. */
static void wait_reason(POL_Reason r, unsigned ms)
{
	ticks_before = T.ticks;
	awaited = r;
	ck_assert_msg(run_until(reason_seen, ms), "no tick said %s within %u ms (last: %s, %u ticks)",
		      SMP_ReasonName(r), ms, SMP_ReasonName(T.last.reason), T.ticks - ticks_before);
}

static unsigned ticks_wanted;

static bool enough_ticks(void)
{
	return T.ticks - ticks_before >= ticks_wanted;
}

/* The next n ticks, within ms. */
static void wait_ticks(unsigned n, unsigned ms)
{
	ticks_before = T.ticks;
	ticks_wanted = n;
	ck_assert_msg(run_until(enough_ticks, ms), "%u of %u ticks within %u ms",
		      T.ticks - ticks_before, n, ms);
}

/* A fed tick on the page with marker m. */
static void wait_fed_marker(uint64_t m, unsigned ms)
{
	ticks_before = T.ticks;
	awaited_marker = m;
	ck_assert_msg(run_until(marker_seen, ms), "marker %llu not fed within %u ms (last: %s, %llu)",
		      (unsigned long long)m, ms, SMP_ReasonName(T.last.reason),
		      (unsigned long long)T.last.marker);
}

/* ---- the page ----------------------------------------------------------- */

/* A page that vouches for its time: UTC, synchronized, PAGE_AHEAD_NS ahead of
 * CLOCK_REALTIME now, a maximum error of PAGE_MAXERR_NS growing at
 * period >> 20 per tick (about 1 ppm). */
static void page_build(uint64_t marker)
{
	tp_init_live(&T.page, counter_id, period, (uint8_t)shift, PAGE_AHEAD_NS);
	tp_put64(&T.page, TP_TIME_MAXERR, PAGE_MAXERR_NS);
	tp_put64(&T.page, TP_TIME_ESTERR, PAGE_MAXERR_NS / 10);
	tp_put64(&T.page, TP_PERIOD_MAXERR, period >> 20);
	tp_put64(&T.page, TP_MARKER, marker);
}

/* Writes T.page over the page file's bytes: the same file, so the sampler's
 * mapping shows the new page at its next read. */
static void page_write(void)
{
	int fd = open(T.page_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, T.page.b, T.page.len, 0), (ssize_t)T.page.len);
	close(fd);
}

/* Replaces the page file with another holding T.page. */
static void page_replace(void)
{
	char *tmp = tp_write_file(T.dir, "page.new", &T.page);

	ck_assert_int_eq(rename(tmp, T.page_path), 0);
	free(tmp);
}

/* ---- fixture ------------------------------------------------------------ */

/*
 * Made once in the parent process for every test's child, and removed there
 * even after a failed check (which ends its child without the teardown):
 * the directory the tests' own are made in, and somebody else's segment
 * (not an shmTime) at an NTP SHM unit's key.
 */
static char *base_dir;
static int foreign_unit;
static int foreign_shm = -1, foreign_errno;

static void make_shared(void)
{
	base_dir = tp_tmpdir();
	foreign_unit = 1000 + (int)(getpid() % 30000);
	foreign_shm = shmget(SHM_KEY_BASE + foreign_unit, SHM_FOREIGN_BYTES,
			     IPC_CREAT | IPC_EXCL | 0600);
	foreign_errno = errno;
}

static void remove_shared(void)
{
	DIR *d = opendir(base_dir);
	struct dirent *e;

	while (d && (e = readdir(d)) != NULL) {
		char *path;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		path = tp_path(base_dir, e->d_name);
		tp_rmdir(path);
		free(path);
	}
	if (d)
		closedir(d);
	rmdir(base_dir);
	free(base_dir);
	if (foreign_shm >= 0)
		shmctl(foreign_shm, IPC_RMID, NULL);
}

static void setup(void)
{
	ck_assert_msg(counter_id != VMCLOCK_COUNTER_INVALID,
		      "this CPU reads no counter a page can be anchored to");
	memset(&T, 0, sizeof(T));
	T.sock_fd = -1;
	T.base = EVB_New();
	ck_assert_ptr_nonnull(T.base);
	T.deadline_ev = evtimer_new(T.base, deadline_cb, NULL);
	T.dir = tp_path(base_dir, "test.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(T.dir));
	T.page_path = tp_path(T.dir, "page");
	T.sock_path = tp_path(T.dir, "chrony.sock");
	T.cfg.device = T.page_path;
	T.cfg.chrony_sock = T.sock_path;
	T.cfg.ntp_shm = -1;
	T.cfg.ntp_shm_mode = 0600;
	T.cfg.interval_ms = 10;
	T.cfg.burst_interval_ms = 2;
	T.accepted_marker = MARKER;
	T.last.reason = POL_REASON_COUNT;
	page_build(MARKER);
}

static void teardown(void)
{
	if (T.started)
		SMP_Finalise();
	if (T.sock_ev)
		event_free(T.sock_ev);
	if (T.sock_fd >= 0)
		close(T.sock_fd);
	event_free(T.deadline_ev);
	event_base_free(T.base);
	tp_rmdir(T.dir);
	free(T.page_path);
	free(T.sock_path);
	free(T.dir);
}

/* The good page written, the test listening, the sampler started and fed. */
static void start_fed(void)
{
	page_write();
	listen_on(T.sock_path);
	ck_assert_int_eq(start_sampler(), 0);
	wait_reason(POL_FED, 1000);
}

static void assert_offset_near_page(int64_t offset_ns)
{
	ck_assert_msg(offset_ns > PAGE_AHEAD_NS - OFFSET_SLACK_NS &&
			      offset_ns < PAGE_AHEAD_NS + OFFSET_SLACK_NS,
		      "offset %lld ns, the page is %d ns ahead", (long long)offset_ns, PAGE_AHEAD_NS);
}

/* ---- tests -------------------------------------------------------------- */

/* A good page is fed: the report's offset fields, what the observer was
 * shown, and one datagram per fed sample carrying the report's offset and
 * time. */
START_TEST(fed_good_page)
{
	uint64_t ppb = ((unsigned __int128)(period >> 20) * 1000000000u + period - 1) / period;
	const SMP_Report *r = &T.last;

	start_fed();
	wait_ticks(2, 1000);
	drain();

	ck_assert_int_eq(r->reason, POL_FED);
	ck_assert_uint_ge(r->fed, 2);
	ck_assert_uint_eq(r->fed, T.ticks);
	assert_offset_near_page(r->last_offset_ns);
	ck_assert_uint_lt(r->last_uncertainty_ns, 100000);
	/* The page's maximum error at the reading, grown by about 1 ppm since
	 * the anchor, plus the bracket. */
	ck_assert_uint_ge(r->last_bound_ns, PAGE_MAXERR_NS + r->last_uncertainty_ns);
	ck_assert_uint_le(r->last_bound_ns, PAGE_MAXERR_NS + r->last_uncertainty_ns + 10000);
	ck_assert_uint_eq(r->last_bound_ppb, ppb);
	ck_assert_uint_eq(r->marker, MARKER);
	ck_assert_uint_eq(r->outputs, 1);
	ck_assert_uint_eq(r->outputs_failing, 0);
	ck_assert_str_eq(r->output_problems, "");
	ck_assert_uint_eq(r->longest_tick_ms, T.cfg.interval_ms);
	for (int i = 0; i < POL_REASON_COUNT; i++)
		ck_assert_uint_eq(r->withheld[i], 0);

	ck_assert_uint_eq(T.observed, T.ticks);
	ck_assert_uint_eq(T.observed_marker, MARKER);
	ck_assert(T.observed_offset);
	assert_offset_near_page(T.observed_offset_ns);

	ck_assert_uint_eq(T.datagrams, r->fed);
	ck_assert_uint_eq(T.dgram.magic, DGRAM_MAGIC);
	ck_assert_int_eq(T.dgram.pulse, 0);
	ck_assert_int_eq(T.dgram.leap, 0);
	ck_assert(T.dgram.offset == (double)r->last_offset_ns * 1e-9);
	ck_assert_int_eq(T.dgram.sec, (int64_t)(r->last_system_ns / 1000000000u));
	ck_assert_int_eq(T.dgram.usec, (int64_t)(r->last_system_ns % 1000000000u / 1000));
}
END_TEST

/* What the page says, and the sampler's answer: each reason a page (and the
 * settings) can give for withholding. */
static const struct {
	const char *what;
	size_t off;
	unsigned bytes;
	uint64_t value;
	uint64_t max_error_ns;
	POL_Reason reason;
	int reason_errno; /* the report's, where the reason comes from one */
	bool offset;      /* whether the observer is shown an offset */
} withheld_cases[] = {
	{ "status unknown", TP_STATUS, 1, VMCLOCK_STATUS_UNKNOWN, 0, POL_NOT_SYNCHRONIZED, 0, true },
	{ "initializing", TP_STATUS, 1, VMCLOCK_STATUS_INITIALIZING, 0, POL_NOT_SYNCHRONIZED, 0,
	  true },
	{ "free-running", TP_STATUS, 1, VMCLOCK_STATUS_FREERUNNING, 0, POL_NOT_SYNCHRONIZED, 0,
	  true },
	{ "unreliable", TP_STATUS, 1, VMCLOCK_STATUS_UNRELIABLE, 0, POL_NO_TIME, 0, false },
	{ "no counter", TP_COUNTER_ID, 1, VMCLOCK_COUNTER_INVALID, 0, POL_NO_TIME, 0, false },
	{ "frozen", TP_PERIOD, 8, 0, 0, POL_NO_TIME, 0, false },
	{ "TAI without offset", TP_TIME_TYPE, 1, VMCLOCK_TIME_TAI, 0, POL_NO_UTC, 0, false },
	{ "monotonic", TP_TIME_TYPE, 1, VMCLOCK_TIME_MONOTONIC, 0, POL_NO_UTC, 0, false },
	{ "smeared leap", TP_SMEARING, 1, VMCLOCK_SMEARING_NOON_LINEAR, 0, POL_SMEARED, 0, true },
	{ "absurd shift", TP_SHIFT, 1, 64, 0, POL_BAD_PAGE, ERANGE, false },
	{ "no bound", TP_FLAGS, 8, TP_FLAG(3) | TP_FLAG(4) | TP_FLAG(5), 1000000, POL_NO_BOUND, 0,
	  true },
	{ "bound too large", TP_TIME_MAXERR, 8, 2000000, 1000000, POL_ERROR_BOUND, 0, true },
};

static void page_set(size_t off, unsigned bytes, uint64_t value)
{
	if (bytes == 1)
		tp_put8(&T.page, off, (uint8_t)value);
	else
		tp_put64(&T.page, off, value);
}

START_TEST(withheld_from_page)
{
	unsigned long fed, withheld;

	T.cfg.max_error_ns = withheld_cases[_i].max_error_ns;
	start_fed();
	drain();
	fed = T.last.fed;
	withheld = T.last.withheld[withheld_cases[_i].reason];

	page_build(MARKER);
	page_set(withheld_cases[_i].off, withheld_cases[_i].bytes, withheld_cases[_i].value);
	if (withheld_cases[_i].reason == POL_SMEARED)
		tp_put8(&T.page, TP_LEAP, VMCLOCK_LEAP_PRE_POS);
	page_write();
	wait_reason(withheld_cases[_i].reason, 1000);
	wait_ticks(2, 1000);
	drain();
	ck_assert_msg(T.last.reason == withheld_cases[_i].reason, "%s: %s", withheld_cases[_i].what,
		      SMP_ReasonName(T.last.reason));
	if (withheld_cases[_i].reason_errno)
		ck_assert_int_eq(T.last.reason_errno, withheld_cases[_i].reason_errno);
	ck_assert_uint_gt(T.last.withheld[withheld_cases[_i].reason], withheld + 1);
	ck_assert_uint_eq(T.last.fed, fed);
	ck_assert_uint_eq(T.datagrams, fed);
	ck_assert_int_eq(T.observed_offset, withheld_cases[_i].offset);

	/* And fed again once the page vouches again. */
	page_build(MARKER);
	page_write();
	wait_reason(POL_FED, 1000);
	drain();
	ck_assert_uint_eq(T.datagrams, T.last.fed);
	ck_assert_uint_gt(T.last.fed, fed);
}
END_TEST

/* A free-running host's time is fed with allow-freerunning. */
START_TEST(freerunning_allowed)
{
	T.cfg.allow_freerunning = true;
	tp_put8(&T.page, TP_STATUS, VMCLOCK_STATUS_FREERUNNING);
	start_fed();
	drain();
	ck_assert_uint_eq(T.datagrams, T.last.fed);
}
END_TEST

/* A counter this CPU cannot read: withheld with the library's errno. */
START_TEST(unsupported_counter)
{
	tp_put8(&T.page, TP_COUNTER_ID, counter_id == VMCLOCK_COUNTER_X86_TSC
						? VMCLOCK_COUNTER_ARM_VCNT
						: VMCLOCK_COUNTER_X86_TSC);
	page_write();
	listen_on(T.sock_path);
	ck_assert_int_eq(start_sampler(), 0);
	wait_reason(POL_UNSUPPORTED, 1000);
	ck_assert_int_eq(T.last.reason_errno, EOPNOTSUPP);
	ck_assert(!T.observed_offset);
}
END_TEST

/* A page that never carried time (a marker-only device): withheld, its
 * marker still shown to the observer; fed once it carries time. */
START_TEST(marker_only_page)
{
	tp_put8(&T.page, TP_COUNTER_ID, VMCLOCK_COUNTER_INVALID);
	tp_put64(&T.page, TP_MARKER, 42);
	T.accepted_marker = 42;
	page_write();
	listen_on(T.sock_path);
	ck_assert_int_eq(start_sampler(), 0);
	wait_reason(POL_NO_TIME, 1000);
	wait_ticks(2, 1000);
	ck_assert_int_eq(T.last.reason, POL_NO_TIME);
	ck_assert_uint_eq(T.last.withheld[POL_NO_TIME], T.ticks);
	ck_assert_uint_eq(T.last.marker, 42);
	ck_assert_uint_eq(T.observed_marker, 42);
	ck_assert(!T.observed_offset);

	page_build(42);
	page_write();
	wait_reason(POL_FED, 1000);
	assert_offset_near_page(T.last.last_offset_ns);
}
END_TEST

/* A page whose magic goes bad under the sampler: withheld as a bad page
 * (reopened: it may have been replaced), fed again once it is good. */
START_TEST(bad_page_while_open)
{
	start_fed();
	tp_put32(&T.page, TP_MAGIC, 0x12345678);
	page_write();
	wait_reason(POL_BAD_PAGE, 1000);
	ck_assert_int_eq(T.last.reason_errno, EBADMSG);
	page_build(MARKER);
	page_write();
	wait_reason(POL_FED, 2500);
}
END_TEST

/* A file that is no page at all, from the start: never shown to the
 * observer. */
START_TEST(bad_page_at_open)
{
	tp_put32(&T.page, TP_MAGIC, 0x12345678);
	page_write();
	ck_assert_int_eq(start_sampler(), 0);
	wait_reason(POL_BAD_PAGE, 1000);
	ck_assert_int_eq(T.last.reason_errno, EBADMSG);
	wait_ticks(2, 1000);
	ck_assert_int_eq(T.last.reason, POL_BAD_PAGE);
	ck_assert_uint_eq(T.last.withheld[POL_BAD_PAGE], T.ticks);
	ck_assert_uint_eq(T.observed, 0);
}
END_TEST

/* A writer that died mid-update (seq_count odd): unstable, each tick and
 * the offset measurement alike, until the page is consistent again. */
START_TEST(stuck_page)
{
	int64_t start_ns;

	start_fed();
	tp_put32(&T.page, TP_SEQ_COUNT, 1);
	page_write();
	wait_reason(POL_UNSTABLE, 1000);
	ck_assert_int_eq(T.last.reason_errno, ETIMEDOUT);
	/* Stuck: the next ticks try once each instead of waiting again
	 * (VMCLOCK_MAX_WAIT_NS, 100 ms, a tick): 5 ticks 10 ms apart. */
	start_ns = tp_now_ns();
	wait_ticks(5, 2000);
	ck_assert_int_lt(tp_now_ns() - start_ns, 400000000);
	ck_assert_int_eq(T.last.reason, POL_UNSTABLE);

	tp_put32(&T.page, TP_SEQ_COUNT, 2);
	page_write();
	wait_reason(POL_FED, 1000);
}
END_TEST

/* The page file truncated under the mapping: the read faults (SIGBUS),
 * which the sampler takes as a bad page, and it reopens the file once it
 * is whole again.  The offset measurement survives the fault too. */
START_TEST(truncated_under_mapping)
{
	start_fed();
	ck_assert_int_eq(truncate(T.page_path, 0), 0);
	wait_reason(POL_BAD_PAGE, 1000);
	ck_assert_int_eq(T.last.reason_errno, EFAULT);

	page_build(MARKER);
	page_write();
	wait_reason(POL_FED, 2500);
}
END_TEST

/* No page file yet: withheld (no device) at every tick until it appears;
 * then a page file replaced by another is reopened. */
START_TEST(page_missing_then_appearing)
{

	listen_on(T.sock_path);
	ck_assert_int_eq(start_sampler(), 0);
	wait_reason(POL_NO_DEVICE, 1000);
	ck_assert_int_eq(T.last.reason_errno, ENOENT);
	wait_ticks(2, 1000);
	ck_assert_int_eq(T.last.reason, POL_NO_DEVICE);
	ck_assert_uint_eq(T.last.withheld[POL_NO_DEVICE], T.ticks);

	page_write();
	wait_reason(POL_FED, 2500);
	ck_assert_uint_eq(T.last.marker, MARKER);

	T.accepted_marker = 2;
	page_build(2);
	page_replace();
	wait_fed_marker(2, 2500);
	drain();
	ck_assert_uint_eq(T.datagrams, T.last.fed);
}
END_TEST

/* A new marker the observer calls a disruption: withheld while it says so;
 * the observer is shown each sample judged as it would be fed (the
 * doffset's offset is the next tick's), a page that does not vouch too. */
START_TEST(disruption_withheld)
{
	unsigned long fed;

	LOG_Initialise(true, true); /* the ticks' debug line on a marker change */
	start_fed();
	ck_assert_int_eq(T.observed_judged, POL_FED);
	assert_offset_near_page((int64_t)(T.observed_offset_s * 1e9));

	drain();
	fed = T.last.fed;
	tp_put64(&T.page, TP_MARKER, 2);
	page_write();
	wait_reason(POL_DISRUPTION, 1000);
	wait_ticks(2, 1000);
	drain();
	ck_assert_int_eq(T.last.reason, POL_DISRUPTION);
	ck_assert_uint_eq(T.last.marker, 2);
	ck_assert_uint_eq(T.observed_marker, 2);
	ck_assert_uint_eq(T.last.fed, fed);
	ck_assert_uint_eq(T.datagrams, fed);
	ck_assert_uint_ge(T.last.withheld[POL_DISRUPTION], 3);
	/* Withheld, and still judged for the observer. */
	ck_assert_int_eq(T.observed_judged, POL_FED);
	assert_offset_near_page((int64_t)(T.observed_offset_s * 1e9));

	tp_put8(&T.page, TP_STATUS, VMCLOCK_STATUS_UNKNOWN);
	page_write();
	wait_ticks(2, 1000);
	ck_assert_int_eq(T.observed_judged, POL_NOT_SYNCHRONIZED);
	ck_assert_int_eq(T.last.reason, POL_DISRUPTION);
	tp_put8(&T.page, TP_STATUS, VMCLOCK_STATUS_SYNCHRONIZED);
	page_write();

	T.accepted_marker = 2;
	wait_reason(POL_FED, 1000);
}
END_TEST

/* An output that does not take the sample: the report says which and why
 * (as the output itself says), "; " between them; the sample is still fed
 * to the others. */
START_TEST(output_failures)
{
	char expected[sizeof(T.last.output_problems)];
	FED_Output sock_twin, shm_twin;
	FED_Sample s = { .offset_ns = 1 };
	int unit = foreign_unit;

	ck_assert_msg(foreign_shm >= 0, "shmget for unit %d: %s", unit, strerror(foreign_errno));
	T.cfg.ntp_shm = unit;

	/* What each output says of itself when it cannot send. */
	sock_twin = FED_CreateSock(T.sock_path);
	shm_twin = FED_CreateShm(unit, 0600);
	ck_assert_int_lt(FED_Send(sock_twin, &s), 0);
	ck_assert_int_lt(FED_Send(shm_twin, &s), 0);
	snprintf(expected, sizeof(expected), "%s: %s; %s: %s", FED_Name(sock_twin),
		 FED_Problem(sock_twin), FED_Name(shm_twin), FED_Problem(shm_twin));

	page_write();
	ck_assert_int_eq(start_sampler(), 0);
	wait_reason(POL_FED, 1000);
	ck_assert_uint_eq(T.last.outputs, 2);
	ck_assert_uint_eq(T.last.outputs_failing, 2);
	ck_assert_str_eq(T.last.output_problems, expected);

	/* chronyd comes: only the segment fails now. */
	listen_on(T.sock_path);
	snprintf(expected, sizeof(expected), "%s: %s", FED_Name(shm_twin), FED_Problem(shm_twin));
	wait_ticks(1, 1000);
	ck_assert_uint_eq(T.last.outputs, 2);
	ck_assert_uint_eq(T.last.outputs_failing, 1);
	ck_assert_str_eq(T.last.output_problems, expected);
	drain();
	ck_assert_uint_ge(T.datagrams, 1);

	FED_Destroy(sock_twin);
	FED_Destroy(shm_twin);
}
END_TEST

/* The observer's verdict sets the next tick: while it asks for 5 ms the
 * ticks come that close, from the tick after it asked; then at the interval
 * again. */
START_TEST(verdict_interval)
{
	T.cfg.interval_ms = 2000;
	T.cfg.burst_interval_ms = 5;
	start_fed();
	ck_assert_uint_eq(T.last.longest_tick_ms, 2000);
	ck_assert_uint_eq(run_for(100), 0);

	T.verdict_ms = 5;
	wait_ticks(1, 2500); /* the tick that hears it */
	wait_ticks(10, 250);
	T.verdict_ms = 0;
	wait_ticks(1, 100);
	/* Over: the next tick is an interval after the last. */
	ck_assert_uint_eq(run_for(200), 0);
	ck_assert_uint_eq(T.last.longest_tick_ms, 2000);
}
END_TEST

/* A reload: the same settings keep everything; a new interval re-arms the
 * tick; another device is read from the next tick on; another socket is fed
 * instead of the old. */
START_TEST(reconfigure_applied)
{
	CNF_Settings fresh;
	char *other_page, *other_sock;
	unsigned before;

	T.cfg.interval_ms = 4000;
	start_fed();

	fresh = T.cfg;
	ck_assert_int_eq(reconfigure(&fresh), 0);
	ck_assert_uint_eq(run_for(100), 0);
	fresh.interval_ms = 5;
	ck_assert_int_eq(reconfigure(&fresh), 0);
	wait_ticks(5, 1000);
	drain();
	ck_assert_uint_eq(T.datagrams, T.last.fed);

	/* Opened at once, not when a retry of the old device would be due. */
	page_build(9);
	other_page = tp_write_file(T.dir, "page-2", &T.page);
	T.accepted_marker = 9;
	fresh.device = other_page;
	ck_assert_int_eq(reconfigure(&fresh), 1);
	wait_fed_marker(9, 500);

	other_sock = tp_path(T.dir, "chrony-2.sock");
	fresh.chrony_sock = other_sock;
	ck_assert_int_eq(reconfigure(&fresh), 0);
	drain();
	before = T.datagrams;
	listen_on(other_sock);
	wait_ticks(3, 1000);
	drain();
	ck_assert_uint_ge(T.datagrams, before + 3);
	ck_assert_uint_eq(T.last.outputs, 1);
	ck_assert_uint_eq(T.last.outputs_failing, 0);
	free(other_page);
	free(other_sock);
}
END_TEST

/* Reloads that change no interval, however often, leave the tick's timer
 * alone: they never postpone the next sample. */
START_TEST(reconfigure_keeps_timer)
{
	CNF_Settings fresh;
	unsigned ticks = 0;

	T.cfg.interval_ms = 200;
	start_fed();
	fresh = T.cfg;
	for (int i = 0; i < 6; i++) {
		ticks += run_for(100);
		ck_assert_int_eq(reconfigure(&fresh), 0);
	}
	ck_assert_uint_ge(ticks, 1);
}
END_TEST

/* A reload naming an output that cannot be created is refused whole: the
 * device, the interval and the outputs stay as they were. */
START_TEST(reconfigure_refused)
{
	CNF_Settings fresh;
	char long_path[200];
	char *other_page;
	unsigned long fed;

	T.cfg.interval_ms = 400;
	start_fed();
	page_build(9);
	other_page = tp_write_file(T.dir, "page-2", &T.page);
	memset(long_path, 'x', sizeof(long_path) - 1);
	long_path[sizeof(long_path) - 1] = '\0';

	/* Refused right after a tick: the next is an interval away. */
	fresh = T.cfg;
	fresh.device = other_page;
	fresh.interval_ms = 5;
	fresh.chrony_sock = long_path;
	ck_assert_int_eq(reconfigure(&fresh), -1);
	ck_assert_uint_eq(run_for(150), 0);

	/* Still the old page, fed to the old socket. */
	drain();
	fed = T.last.fed;
	T.verdict_ms = 5;
	wait_ticks(1, 1000); /* the tick that hears it */
	wait_ticks(3, 1000);
	drain();
	ck_assert_uint_eq(T.last.marker, MARKER);
	ck_assert_uint_ge(T.last.fed, fed + 3);
	ck_assert_uint_eq(T.datagrams, T.last.fed);
	ck_assert_uint_eq(T.last.outputs, 1);
	ck_assert_uint_eq(T.last.outputs_failing, 0);
	free(other_page);
}
END_TEST

/* An output that cannot be created at start: a fatal start-up error. */
START_TEST(initialise_refused)
{
	char long_path[200];

	memset(long_path, 'x', sizeof(long_path) - 1);
	long_path[sizeof(long_path) - 1] = '\0';
	T.cfg.chrony_sock = long_path;
	page_write();
	ck_assert_int_eq(start_sampler(), -1);
}
END_TEST

START_TEST(reason_names)
{
	ck_assert_str_eq(SMP_ReasonName(POL_REASON_COUNT), "starting");
	for (unsigned r = 0; r < POL_REASON_COUNT; r++)
		ck_assert_str_eq(SMP_ReasonName(r), vmclockd_reason_text(r));
}
END_TEST

static Suite *sampler_suite(void)
{
	Suite *s = suite_create("sampler");
	TCase *tc = tcase_create("tick");

	tcase_add_unchecked_fixture(tc, make_shared, remove_shared);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, fed_good_page);
	tcase_add_loop_test(tc, withheld_from_page, 0,
			    sizeof(withheld_cases) / sizeof(withheld_cases[0]));
	tcase_add_test(tc, freerunning_allowed);
	tcase_add_test(tc, unsupported_counter);
	tcase_add_test(tc, marker_only_page);
	tcase_add_test(tc, bad_page_while_open);
	tcase_add_test(tc, bad_page_at_open);
	tcase_add_test(tc, stuck_page);
	tcase_add_test(tc, truncated_under_mapping);
	tcase_add_test(tc, page_missing_then_appearing);
	tcase_add_test(tc, disruption_withheld);
	tcase_add_test(tc, output_failures);
	tcase_add_test(tc, verdict_interval);
	tcase_add_test(tc, reconfigure_applied);
	tcase_add_test(tc, reconfigure_keeps_timer);
	tcase_add_test(tc, reconfigure_refused);
	tcase_add_test(tc, initialise_refused);
	tcase_add_test(tc, reason_names);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(sampler_suite());
	int failed;

	/* The counter's period, once for every test, with the largest shift
	 * that keeps it below 2^63. */
	counter_id = tp_native_counter();
	if (counter_id != VMCLOCK_COUNTER_INVALID) {
		period = tp_calibrate_period(counter_id, 0, 20);
		while (shift < 63 && period < (1ull << 62) >> shift)
			shift++;
		period = tp_calibrate_period(counter_id, shift, 50);
	}
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
