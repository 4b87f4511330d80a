/* SPDX-License-Identifier: BSD-2-Clause
 *
 * check_publish.c - the state vmclockd publishes (daemon/publish.c), read
 * back the way applications read it: through libvmclock's own reader
 * (vmclock_daemon_state for the fields, vmclock_timestamp for the verdict
 * and bound) against a page file whose marker the test chooses.
 *
 * Fields are taken from the reader's copy little-endian one byte at a time
 * at the offsets of include/vmclockd-state.h, not through the host's view
 * of the structure.  Covered: every field of a tick (the verdict's inputs,
 * the bound as chronyd's plus the page's error, the heartbeat and its
 * timeout, counters), the bound published at once on a tracking reply, a
 * measurement that contradicts chronyd, the seq_count protocol (each write
 * even and larger, a failed write leaving the count odd: UNKNOWN until the
 * next), a file a previous daemon left (kept, its count and disruption
 * total carried on), files that are not ours to write in place (a hard
 * link, a symlink), the file removed, replaced or truncated under the
 * daemon, an unusable path retried once a second, a reload to the same or
 * another path, UNKNOWN on exit, and STATUS= said at once on a change.
 *
 * The module keeps its state in statics, as the daemon runs it once: every
 * test runs in its own process.  The once-a-second checks are reached by
 * moving the modules' monotonic clock (tests/monoskip.h), not by sleeping.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <check.h>

#include "vmclock.h"
#include "vmclockd-state.h"
#include "../daemon/evbase.h"
#include "../daemon/notify.h"
#include "../daemon/publish.h"
#include "monoskip.h"
#include "testpage.h"
#include "checkrun.h"

#define MARKER 0x1122334455667788ull
#define GENERATION 7u
#define CHRONY_BOUND_NS 20000u
#define CHRONY_PPB 15000u
#define PAGE_ERROR_NS 5000u /* the fed sample's page max error + uncertainty */
#define PAGE_PPB 50u
#define TICK_MS 1000u
#define ONE_S_AND_A_BIT 1100000000ll

static char *dir, *page_path, *state_path;
static CNF_Settings cfg;

static uint64_t now_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void setup(void)
{
	struct testpage p;

	dir = tp_tmpdir();
	page_path = tp_path(dir, "page");
	state_path = tp_path(dir, "state");
	tp_init(&p);
	tp_put64(&p, TP_MARKER, MARKER);
	free(tp_write_file(dir, "page", &p));
	cfg = (CNF_Settings){ .device = page_path, .publish_file = state_path, .clockbound_shm = "" };
}

static void teardown(void)
{
	tp_rmdir(dir);
	free(dir);
	free(page_path);
	free(state_path);
}

/* ---- the reports a tick hands over ------------------------------------------ */

/* A tick that fed a sample of offset_ns. */
static SMP_Report fed(int64_t offset_ns)
{
	SMP_Report s = { .reason = POL_FED,
			 .last_offset_ns = offset_ns,
			 .last_system_ns = now_ns(CLOCK_REALTIME),
			 .last_uncertainty_ns = 100,
			 .last_bound_ns = PAGE_ERROR_NS,
			 .last_bound_ppb = PAGE_PPB,
			 .marker = MARKER,
			 .fed = 9,
			 .outputs = 1,
			 .longest_tick_ms = TICK_MS };

	s.withheld[POL_NO_TIME] = 3;
	s.withheld[POL_DISRUPTION] = 2;
	return s;
}

static DSR_Report handled(uint64_t marker)
{
	return (DSR_Report){ .handled_marker = marker, .handled_gen = GENERATION };
}

static CSY_Report chrony(uint8_t sync_state)
{
	return (CSY_Report){ .sync_state = sync_state,
			     .have_bound = true,
			     .bound_ns = CHRONY_BOUND_NS,
			     .bound_realtime_ns = now_ns(CLOCK_REALTIME),
			     .drift_ppb = CHRONY_PPB };
}

/* The usual tick: a sample fed, the marker handled, chronyd synchronised. */
static void tick(void)
{
	SMP_Report s = fed(1000);
	DSR_Report d = handled(MARKER);
	CSY_Report c = chrony(VMCLOCKD_SYNC_SYNCHRONIZED);

	PUB_Tick(&s, &d, &c);
}

/* ---- reading it back ---------------------------------------------------------- */

/* The reader's copy of the state file, or -1 with errno. */
static int try_read_state(struct vmclockd_state *out)
{
	vmclock_truth_t *t = vmclock_truth_open(page_path, state_path);
	int r, err;

	ck_assert_ptr_nonnull(t);
	r = vmclock_daemon_state(t, out);
	err = errno;
	vmclock_truth_close(t);
	errno = err;
	return r;
}

static struct vmclockd_state read_state(void)
{
	struct vmclockd_state s;

	ck_assert_msg(try_read_state(&s) == 0, "state not readable: %s", strerror(errno));
	return s;
}

/* A field of the reader's copy, little-endian at its documented offset. */
static uint64_t le_field(struct vmclockd_state s, size_t off, size_t width)
{
	const uint8_t *b = (const uint8_t *)&s;
	uint64_t v = 0;

	for (size_t i = 0; i < width; i++)
		v |= (uint64_t)b[off + i] << (8 * i);
	return v;
}

#define FIELD(s, name)                                       \
	le_field((s), offsetof(struct vmclockd_state, name), \
		 sizeof(((struct vmclockd_state *)0)->name))
#define WITHHELD(s, i) le_field((s), offsetof(struct vmclockd_state, withheld) + 8 * (i), 8)

/* What an application is told now, by a fresh handle. */
static struct vmclock_timestamp stamp(void)
{
	vmclock_truth_t *t = vmclock_truth_open(page_path, state_path);
	struct vmclock_timestamp ts;

	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(vmclock_timestamp(t, &ts), 0);
	vmclock_truth_close(t);
	return ts;
}

/* Bytes of a file as they are, read by no library. */
static uint64_t file_le(const char *path, size_t off, size_t width)
{
	uint8_t b[8];
	uint64_t v = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, b, width, (off_t)off), (ssize_t)width);
	close(fd);
	for (size_t i = 0; i < width; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static ino_t inode(const char *path)
{
	struct stat st;

	ck_assert_int_eq(lstat(path, &st), 0);
	return st.st_ino;
}

/* ---- a tick's fields ---------------------------------------------------------- */

START_TEST(tick_fields)
{
	uint64_t rt0 = now_ns(CLOCK_REALTIME), mono0 = now_ns(CLOCK_MONOTONIC), rt1, mono1;
	struct vmclock_timestamp ts;
	struct vmclockd_state s;
	struct stat st;

	PUB_Initialise(&cfg);
	tick();
	rt1 = now_ns(CLOCK_REALTIME);
	mono1 = now_ns(CLOCK_MONOTONIC);
	s = read_state();
	ck_assert_uint_eq(FIELD(s, magic), VMCLOCKD_STATE_MAGIC);
	ck_assert_uint_eq(FIELD(s, version), 1);
	ck_assert_uint_eq(FIELD(s, size), 200);
	ck_assert_uint_ne(FIELD(s, seq_count), 0);
	ck_assert_uint_eq(FIELD(s, seq_count) % 2, 0);
	ck_assert_uint_eq(FIELD(s, sync_state), VMCLOCKD_SYNC_SYNCHRONIZED);
	ck_assert_uint_eq(FIELD(s, withhold_reason), VMCLOCKD_REASON_FED);
	/* Two of the longest waits for a tick, and a second's slack. */
	ck_assert_uint_eq(FIELD(s, heartbeat_timeout_ms), 2 * TICK_MS + 1000);
	ck_assert_uint_ge(FIELD(s, heartbeat_realtime_ns), rt0);
	ck_assert_uint_le(FIELD(s, heartbeat_realtime_ns), rt1);
	ck_assert_uint_ge(FIELD(s, heartbeat_monotonic_ns), mono0);
	ck_assert_uint_le(FIELD(s, heartbeat_monotonic_ns), mono1);
	ck_assert_uint_eq(FIELD(s, disruption_marker), MARKER);
	ck_assert_uint_eq(FIELD(s, vm_generation_counter), GENERATION);
	/* chronyd's bound and drift plus the page's error and rate. */
	ck_assert_uint_eq(FIELD(s, error_bound_ns), CHRONY_BOUND_NS + PAGE_ERROR_NS);
	ck_assert_uint_ge(FIELD(s, error_bound_realtime_ns), rt0);
	ck_assert_uint_le(FIELD(s, error_bound_realtime_ns), rt1);
	ck_assert_uint_eq(FIELD(s, drift_ppb), CHRONY_PPB + PAGE_PPB);
	ck_assert_uint_eq(FIELD(s, last_offset_ns), 1000);
	ck_assert_uint_eq(FIELD(s, last_disruption_realtime_ns), 0);
	ck_assert_uint_eq(FIELD(s, disruptions), 0);
	ck_assert_uint_eq(FIELD(s, samples_fed), 9);
	for (unsigned i = 0; i < VMCLOCKD_STATE_REASONS; i++)
		ck_assert_uint_eq(WITHHELD(s, i), i == VMCLOCKD_REASON_NO_TIME      ? 3
						  : i == VMCLOCKD_REASON_DISRUPTION ? 2
										    : 0);

	/* World-readable, a regular file of ours. */
	ck_assert_int_eq(stat(state_path, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 0777, 0644);
	ck_assert_uint_eq(st.st_size, 200);

	ts = stamp();
	ck_assert_int_eq(ts.verdict, VMCLOCK_VERDICT_SYNCHRONIZED);
	ck_assert_uint_eq(ts.disruption_marker, MARKER);
	/* The published bound, grown since at its rate (15050 ppb: well under a
	 * millisecond over any run). */
	ck_assert_uint_ge(ts.bound_ns, CHRONY_BOUND_NS + PAGE_ERROR_NS);
	ck_assert_uint_lt(ts.bound_ns, CHRONY_BOUND_NS + PAGE_ERROR_NS + 1000000);
	PUB_Finalise();
}
END_TEST

/* What applications are told, from chronyd's sync state and the marker the
 * daemon has handled against the device's. */
static const struct {
	uint8_t sync_state;
	uint64_t handled_marker;
	vmclock_verdict_t verdict;
} verdicts[] = {
	{ VMCLOCKD_SYNC_SYNCHRONIZED, MARKER, VMCLOCK_VERDICT_SYNCHRONIZED },
	{ VMCLOCKD_SYNC_UNSYNCHRONIZED, MARKER, VMCLOCK_VERDICT_FREERUNNING },
	{ VMCLOCKD_SYNC_DISRUPTED, MARKER, VMCLOCK_VERDICT_DISRUPTED },
	{ VMCLOCKD_SYNC_SYNCHRONIZED, MARKER - 1, VMCLOCK_VERDICT_DISRUPTED },
	{ VMCLOCKD_SYNC_UNKNOWN, MARKER, VMCLOCK_VERDICT_UNKNOWN },
};

START_TEST(verdict)
{
	SMP_Report s = fed(1000);
	DSR_Report d = handled(verdicts[_i].handled_marker);
	CSY_Report c = chrony(verdicts[_i].sync_state);
	struct vmclockd_state st;

	PUB_Initialise(&cfg);
	PUB_Tick(&s, &d, &c);
	st = read_state();
	ck_assert_uint_eq(FIELD(st, sync_state), verdicts[_i].sync_state);
	ck_assert_uint_eq(FIELD(st, disruption_marker), verdicts[_i].handled_marker);
	ck_assert_int_eq(stamp().verdict, verdicts[_i].verdict);
	PUB_Finalise();
}
END_TEST

/* Before chronyd's tracking was read there is no bound; a tracking reply
 * publishes its bound at once, without waiting for the next tick, and one
 * without a bound writes nothing. */
START_TEST(bound_from_tracking_at_once)
{
	SMP_Report s = fed(1000);
	DSR_Report d = handled(MARKER);
	CSY_Report none = { .sync_state = VMCLOCKD_SYNC_UNKNOWN }, c;
	struct vmclockd_state before, after;

	PUB_Initialise(&cfg);
	PUB_Tick(&s, &d, &none);
	before = read_state();
	ck_assert_uint_eq(FIELD(before, sync_state), VMCLOCKD_SYNC_UNKNOWN);
	ck_assert_uint_eq(FIELD(before, error_bound_ns), VMCLOCKD_BOUND_UNKNOWN);
	ck_assert_uint_eq(FIELD(before, drift_ppb), VMCLOCKD_DRIFT_UNKNOWN);
	ck_assert_int_eq(stamp().verdict, VMCLOCK_VERDICT_UNKNOWN);

	PUB_ChronyUpdated(&none);
	after = read_state();
	ck_assert_uint_eq(FIELD(after, seq_count), FIELD(before, seq_count));

	c = chrony(VMCLOCKD_SYNC_SYNCHRONIZED);
	PUB_ChronyUpdated(&c);
	after = read_state();
	ck_assert_uint_eq(FIELD(after, seq_count), FIELD(before, seq_count) + 2);
	ck_assert_uint_eq(FIELD(after, heartbeat_realtime_ns),
			  FIELD(before, heartbeat_realtime_ns));
	ck_assert_uint_eq(FIELD(after, sync_state), VMCLOCKD_SYNC_SYNCHRONIZED);
	ck_assert_uint_eq(FIELD(after, error_bound_ns), CHRONY_BOUND_NS + PAGE_ERROR_NS);
	ck_assert_uint_eq(FIELD(after, error_bound_realtime_ns), c.bound_realtime_ns);
	ck_assert_uint_eq(FIELD(after, drift_ppb), CHRONY_PPB + PAGE_PPB);
	ck_assert_int_eq(stamp().verdict, VMCLOCK_VERDICT_SYNCHRONIZED);
	PUB_Finalise();
}
END_TEST

/* The measurement disproves chronyd's bound (the page and the system clock
 * differ by a second): published as unsynchronised, with the measurement's
 * bound, until a measurement agrees again. */
START_TEST(contradicted_by_measurement)
{
	SMP_Report s = fed(1000000000);
	DSR_Report d = handled(MARKER);
	CSY_Report c = chrony(VMCLOCKD_SYNC_SYNCHRONIZED);
	struct vmclockd_state st;

	PUB_Initialise(&cfg);
	PUB_Tick(&s, &d, &c);
	st = read_state();
	ck_assert_uint_eq(FIELD(st, sync_state), VMCLOCKD_SYNC_UNSYNCHRONIZED);
	ck_assert_uint_eq(FIELD(st, error_bound_ns), 1000000000 + PAGE_ERROR_NS);
	ck_assert_uint_eq(FIELD(st, error_bound_realtime_ns), s.last_system_ns);
	ck_assert_int_eq(stamp().verdict, VMCLOCK_VERDICT_FREERUNNING);

	s = fed(0);
	PUB_Tick(&s, &d, &c);
	st = read_state();
	ck_assert_uint_eq(FIELD(st, sync_state), VMCLOCKD_SYNC_SYNCHRONIZED);
	ck_assert_uint_eq(FIELD(st, error_bound_ns), CHRONY_BOUND_NS + PAGE_ERROR_NS);
	ck_assert_int_eq(stamp().verdict, VMCLOCK_VERDICT_SYNCHRONIZED);
	PUB_Finalise();
}
END_TEST

/* A withholding tick: its reason, the counters, the disruptions added up
 * and when the last was seen; the heartbeat's timeout follows the longest
 * wait for a tick, up to the sampler's limit. */
START_TEST(counters_and_reasons)
{
	SMP_Report s = fed(1000);
	DSR_Report d = handled(MARKER);
	CSY_Report c = chrony(VMCLOCKD_SYNC_SYNCHRONIZED);
	struct vmclockd_state st;

	PUB_Initialise(&cfg);
	s.reason = POL_NO_TIME;
	s.last_offset_ns = -4321;
	s.fed = 11;
	s.longest_tick_ms = 60000;
	d.disruptions = 2;
	d.last_disruption = (struct timespec){ 1700000000, 5 };
	PUB_Tick(&s, &d, &c);
	st = read_state();
	ck_assert_uint_eq(FIELD(st, withhold_reason), VMCLOCKD_REASON_NO_TIME);
	ck_assert_int_eq((int64_t)FIELD(st, last_offset_ns), -4321);
	ck_assert_uint_eq(FIELD(st, samples_fed), 11);
	ck_assert_uint_eq(WITHHELD(st, VMCLOCKD_REASON_NO_TIME), 3);
	ck_assert_uint_eq(FIELD(st, disruptions), 2);
	ck_assert_uint_eq(FIELD(st, last_disruption_realtime_ns), 1700000000000000005ull);
	ck_assert_uint_eq(FIELD(st, heartbeat_timeout_ms), 2 * SMP_MAX_TICK_MS + 1000);
	/* Nothing fed this tick: no page error added to chronyd's bound. */
	ck_assert_uint_eq(FIELD(st, error_bound_ns), CHRONY_BOUND_NS);

	d.disruptions = 3;
	s.longest_tick_ms = 62;
	PUB_Tick(&s, &d, &c);
	st = read_state();
	ck_assert_uint_eq(FIELD(st, disruptions), 3);
	ck_assert_uint_eq(FIELD(st, heartbeat_timeout_ms), 2 * 62 + 1000);
	PUB_Finalise();
}
END_TEST

/* ---- the seq_count protocol ---------------------------------------------------- */

START_TEST(count_even_and_growing)
{
	uint64_t last = 0;

	PUB_Initialise(&cfg);
	for (int i = 0; i < 5; i++) {
		struct vmclockd_state st;

		tick();
		st = read_state();
		ck_assert_uint_eq(FIELD(st, seq_count) % 2, 0);
		if (i > 0)
			ck_assert_uint_eq(FIELD(st, seq_count), last + 2);
		last = FIELD(st, seq_count);
	}
	PUB_Finalise();
}
END_TEST

/* A write that fails half-way (the file cannot grow past its count: the
 * process's file size limit) leaves the count odd: readers say UNKNOWN,
 * never half a state, until the next write, which starts from a larger
 * count. */
START_TEST(failed_write_leaves_count_odd)
{
	struct rlimit unlimited, count_only;
	struct vmclockd_state st;
	uint64_t good, odd;

	PUB_Initialise(&cfg);
	tick();
	good = FIELD(read_state(), seq_count);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &unlimited), 0);
	count_only = unlimited;
	count_only.rlim_cur = offsetof(struct vmclockd_state, seq_count) + 4;
	signal(SIGXFSZ, SIG_IGN);
	/* No assertion under the limit: Check writes its own records to a
	 * file. */
	setrlimit(RLIMIT_FSIZE, &count_only);
	tick();
	setrlimit(RLIMIT_FSIZE, &unlimited);

	ck_assert_int_eq(try_read_state(&st), -1);
	ck_assert_int_eq(errno, ETIMEDOUT);
	ck_assert_int_eq(stamp().verdict, VMCLOCK_VERDICT_UNKNOWN);
	odd = file_le(state_path, offsetof(struct vmclockd_state, seq_count), 4);
	ck_assert_uint_eq(odd % 2, 1);
	ck_assert_uint_gt(odd, good);

	tick();
	st = read_state();
	ck_assert_uint_gt(FIELD(st, seq_count), odd);
	ck_assert_uint_eq(FIELD(st, seq_count) % 2, 0);
	ck_assert_int_eq(stamp().verdict, VMCLOCK_VERDICT_SYNCHRONIZED);
	PUB_Finalise();
}
END_TEST

/* ---- the file a previous daemon left ------------------------------------------- */

/* A state file as a daemon that died left it: count, disruption total. */
static void leave_state(uint32_t magic, uint32_t seq, uint64_t disruptions)
{
	struct testpage p;

	memset(&p, 0, sizeof(p));
	p.len = sizeof(struct vmclockd_state);
	tp_put32(&p, offsetof(struct vmclockd_state, magic), magic);
	tp_put16(&p, offsetof(struct vmclockd_state, version), 1);
	tp_put16(&p, offsetof(struct vmclockd_state, size), sizeof(struct vmclockd_state));
	tp_put32(&p, offsetof(struct vmclockd_state, seq_count), seq);
	tp_put8(&p, offsetof(struct vmclockd_state, sync_state), VMCLOCKD_SYNC_SYNCHRONIZED);
	tp_put64(&p, offsetof(struct vmclockd_state, disruptions), disruptions);
	free(tp_write_file(dir, "state", &p));
}

/* Written in place (readers holding it open go on), its count growing from
 * where it was, even one a crash left odd, its disruption total carried
 * on; a file that is not a state carries nothing over. */
static const struct {
	uint32_t magic, seq;
	uint64_t disruptions_after; /* 5 left, one seen by the new daemon */
} previous[] = {
	{ VMCLOCKD_STATE_MAGIC, 40, 6 },
	{ VMCLOCKD_STATE_MAGIC, 41, 6 },
	{ 0x12345678, 40, 1 },
};

START_TEST(previous_file_carried_on)
{
	SMP_Report s = fed(1000);
	DSR_Report d = handled(MARKER);
	CSY_Report c = chrony(VMCLOCKD_SYNC_SYNCHRONIZED);
	struct vmclockd_state st;
	ino_t ino;

	leave_state(previous[_i].magic, previous[_i].seq, 5);
	ino = inode(state_path);
	PUB_Initialise(&cfg);
	d.disruptions = 1;
	PUB_Tick(&s, &d, &c);
	ck_assert_uint_eq(inode(state_path), ino);
	st = read_state();
	if (previous[_i].magic == VMCLOCKD_STATE_MAGIC)
		ck_assert_uint_gt(FIELD(st, seq_count), previous[_i].seq);
	ck_assert_uint_eq(FIELD(st, seq_count) % 2, 0);
	ck_assert_uint_eq(FIELD(st, disruptions), previous[_i].disruptions_after);
	PUB_Finalise();
}
END_TEST

/* A state file with a second name (a hard link could make the daemon write
 * wherever it points): left alone, a fresh file takes the path. */
START_TEST(hard_link_left_alone)
{
	char *other = tp_path(dir, "other");
	struct vmclockd_state st;
	ino_t ino;

	leave_state(VMCLOCKD_STATE_MAGIC, 40, 5);
	ck_assert_int_eq(link(state_path, other), 0);
	ino = inode(other);
	PUB_Initialise(&cfg);
	tick();
	ck_assert_uint_ne(inode(state_path), ino);
	st = read_state();
	ck_assert_uint_eq(FIELD(st, disruptions), 0);
	ck_assert_uint_eq(FIELD(st, disruption_marker), MARKER);
	/* The other name still holds what was left. */
	ck_assert_uint_eq(file_le(other, offsetof(struct vmclockd_state, seq_count), 4), 40);
	ck_assert_uint_eq(file_le(other, offsetof(struct vmclockd_state, disruptions), 8), 5);
	PUB_Finalise();
	free(other);
}
END_TEST

/* A symlink at the path is never followed: it is replaced by a file. */
START_TEST(symlink_not_followed)
{
	char *target = tp_path(dir, "target");
	struct stat st;

	free(tp_write_bytes(dir, "target", "precious", 8));
	ck_assert_int_eq(symlink(target, state_path), 0);
	PUB_Initialise(&cfg);
	tick();
	ck_assert_int_eq(lstat(state_path, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_int_eq(stat(target, &st), 0);
	ck_assert_int_eq(st.st_size, 8);
	ck_assert_int_eq(stamp().verdict, VMCLOCK_VERDICT_SYNCHRONIZED);
	PUB_Finalise();
	free(target);
}
END_TEST

/* ---- the file under a running daemon ------------------------------------------- */

/* Removed, then replaced by rename: a fresh file within a second (checked
 * once a second, not at every tick), its count still growing. */
START_TEST(removed_or_replaced)
{
	uint64_t seq;

	PUB_Initialise(&cfg);
	tick();
	seq = FIELD(read_state(), seq_count);
	ck_assert_int_eq(unlink(state_path), 0);
	tick();
	ck_assert_int_ne(access(state_path, F_OK), 0);
	MSK_Advance(ONE_S_AND_A_BIT);
	tick();
	ck_assert_uint_gt(FIELD(read_state(), seq_count), seq);
	ck_assert_int_eq(stamp().verdict, VMCLOCK_VERDICT_SYNCHRONIZED);

	free(tp_write_bytes(dir, "restored", "old backup", 10));
	{
		char *restored = tp_path(dir, "restored");

		ck_assert_int_eq(rename(restored, state_path), 0);
		free(restored);
	}
	MSK_Advance(ONE_S_AND_A_BIT);
	tick();
	ck_assert_uint_eq(FIELD(read_state(), disruption_marker), MARKER);
	ck_assert_int_eq(stamp().verdict, VMCLOCK_VERDICT_SYNCHRONIZED);
	PUB_Finalise();
}
END_TEST

/* Truncated: written whole again at the next tick, in the same file. */
START_TEST(truncated_written_whole)
{
	struct vmclockd_state st;
	ino_t ino;

	PUB_Initialise(&cfg);
	tick();
	ino = inode(state_path);
	ck_assert_int_eq(truncate(state_path, 0), 0);
	ck_assert_int_eq(try_read_state(&st), -1);
	ck_assert_int_eq(errno, ENOENT);
	tick();
	ck_assert_uint_eq(inode(state_path), ino);
	st = read_state();
	ck_assert_uint_eq(FIELD(st, disruption_marker), MARKER);
	ck_assert_int_eq(stamp().verdict, VMCLOCK_VERDICT_SYNCHRONIZED);
	PUB_Finalise();
}
END_TEST

/* The state file's directory is made if missing. */
START_TEST(directory_made)
{
	char *run = tp_path(dir, "run");
	struct stat st;

	free(state_path);
	cfg.publish_file = state_path = tp_path(run, "state");
	PUB_Initialise(&cfg);
	tick();
	ck_assert_int_eq(stat(run, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 0777, 0755);
	ck_assert_int_eq(stamp().verdict, VMCLOCK_VERDICT_SYNCHRONIZED);
	PUB_Finalise();
	unlink(state_path);
	rmdir(run);
	free(run);
}
END_TEST

/* A path that cannot be used yet (its directory is a file): tried again
 * once a second, not at every tick, and used once it can be. */
START_TEST(unusable_path_retried)
{
	char *blocker = tp_path(dir, "blocker");

	free(tp_write_bytes(dir, "blocker", "", 0));
	free(state_path);
	cfg.publish_file = state_path = tp_path(blocker, "state");
	PUB_Initialise(&cfg);
	tick();
	ck_assert_int_ne(access(state_path, F_OK), 0);
	ck_assert_int_eq(unlink(blocker), 0);
	ck_assert_int_eq(mkdir(blocker, 0755), 0);
	tick();
	ck_assert_int_ne(access(state_path, F_OK), 0);
	MSK_Advance(ONE_S_AND_A_BIT);
	tick();
	ck_assert_int_eq(stamp().verdict, VMCLOCK_VERDICT_SYNCHRONIZED);
	PUB_Finalise();
	unlink(state_path);
	rmdir(blocker);
	free(blocker);
}
END_TEST

START_TEST(no_state_file)
{
	char *tmp = tp_path(dir, "state.tmp");

	cfg.publish_file = "";
	PUB_Initialise(&cfg);
	tick();
	PUB_Finalise();
	ck_assert_int_ne(access(state_path, F_OK), 0);
	ck_assert_int_ne(access(tmp, F_OK), 0);
	free(tmp);
}
END_TEST

/* ---- reload and exit ------------------------------------------------------------- */

/* A reload that keeps the path keeps the file and its heartbeat: nothing
 * says UNKNOWN in between. */
START_TEST(reload_same_path)
{
	CNF_Settings fresh = cfg;
	struct vmclockd_state st;
	uint64_t seq;
	ino_t ino;

	PUB_Initialise(&cfg);
	tick();
	ino = inode(state_path);
	seq = FIELD(read_state(), seq_count);
	fresh.publish_file = strdup(state_path);
	PUB_Reconfigure(&fresh);
	cfg = fresh; /* as main.c replaces its settings */
	st = read_state();
	ck_assert_uint_eq(FIELD(st, seq_count), seq);
	ck_assert_uint_eq(FIELD(st, sync_state), VMCLOCKD_SYNC_SYNCHRONIZED);
	ck_assert_int_eq(stamp().verdict, VMCLOCK_VERDICT_SYNCHRONIZED);
	tick();
	ck_assert_uint_eq(inode(state_path), ino);
	ck_assert_uint_eq(FIELD(read_state(), seq_count), seq + 2);
	PUB_Finalise();
	free(fresh.publish_file);
}
END_TEST

/* A reload to another path: the old file says UNKNOWN at once, the new one
 * is written at the next tick (not a second later); a reload to none leaves
 * the last one saying UNKNOWN. */
START_TEST(reload_other_path)
{
	CNF_Settings fresh = cfg;
	char *first = state_path, *second = tp_path(dir, "state2");
	struct vmclockd_state st;

	PUB_Initialise(&cfg);
	tick();
	fresh.publish_file = second;
	PUB_Reconfigure(&fresh);
	cfg = fresh; /* as main.c replaces its settings */
	st = read_state();
	ck_assert_uint_eq(FIELD(st, sync_state), VMCLOCKD_SYNC_UNKNOWN);
	ck_assert_uint_eq(FIELD(st, heartbeat_realtime_ns), 0);
	ck_assert_int_eq(stamp().verdict, VMCLOCK_VERDICT_UNKNOWN);
	ck_assert_int_ne(access(second, F_OK), 0);
	tick();
	ck_assert_int_eq(stamp().verdict, VMCLOCK_VERDICT_UNKNOWN);
	state_path = second;
	ck_assert_int_eq(stamp().verdict, VMCLOCK_VERDICT_SYNCHRONIZED);

	fresh.publish_file = "";
	PUB_Reconfigure(&fresh);
	cfg = fresh;
	tick();
	ck_assert_int_eq(stamp().verdict, VMCLOCK_VERDICT_UNKNOWN);
	PUB_Finalise();
	state_path = first;
	free(second);
}
END_TEST

/* On exit the file says UNKNOWN at once, not once its heartbeat aged; what
 * was handled stays. */
START_TEST(exit_says_unknown)
{
	struct vmclockd_state st;

	PUB_Initialise(&cfg);
	tick();
	PUB_Finalise();
	st = read_state();
	ck_assert_uint_eq(FIELD(st, sync_state), VMCLOCKD_SYNC_UNKNOWN);
	ck_assert_uint_eq(FIELD(st, heartbeat_realtime_ns), 0);
	ck_assert_uint_eq(FIELD(st, disruption_marker), MARKER);
	ck_assert_uint_eq(FIELD(st, seq_count) % 2, 0);
	ck_assert_int_eq(stamp().verdict, VMCLOCK_VERDICT_UNKNOWN);
}
END_TEST

/* ---- STATUS= ----------------------------------------------------------------- */

static int notify_fd = -1;

/* The service manager's socket, where sd_notify() sends. */
static void listen_notify(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char *path = tp_path(dir, "notify");

	ck_assert_uint_lt(strlen(path), sizeof(sa.sun_path));
	strcpy(sa.sun_path, path);
	notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(notify_fd, 0);
	ck_assert_int_eq(bind(notify_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setenv("NOTIFY_SOCKET", path, 1);
	unsetenv("WATCHDOG_USEC");
	free(path);
}

/* The STATUS= line the last tick sent; fails unless exactly one came. */
static void status_sent(char *out, size_t size)
{
	char buf[512];
	ssize_t n = recv(notify_fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	ck_assert_int_eq(strncmp(buf, "STATUS=", 7), 0);
	snprintf(out, size, "%s", buf + 7);
	ck_assert_int_eq(recv(notify_fd, buf, sizeof(buf), MSG_DONTWAIT), -1);
}

/* Each change of reason or of the outputs taking samples is said at once,
 * with what it is about: the handled marker, the outputs' problems, the
 * device and its error. */
START_TEST(status_on_change)
{
	struct event_base *base = EVB_New();
	SMP_Report s = fed(1000);
	DSR_Report d = handled(MARKER);
	CSY_Report c = chrony(VMCLOCKD_SYNC_SYNCHRONIZED);
	char status[512], marker[32];

	listen_notify();
	NTF_Initialise(base);
	snprintf(marker, sizeof(marker), "%llu", MARKER);
	PUB_Initialise(&cfg);
	PUB_Tick(&s, &d, &c);
	status_sent(status, sizeof(status));
	ck_assert_ptr_nonnull(strstr(status, marker));

	/* One of two outputs stopped taking samples, then the other too. */
	s.outputs = 2;
	s.outputs_failing = 1;
	snprintf(s.output_problems, sizeof(s.output_problems), "chrony-sock: xyzzy");
	PUB_Tick(&s, &d, &c);
	status_sent(status, sizeof(status));
	ck_assert_ptr_nonnull(strstr(status, s.output_problems));
	ck_assert_ptr_nonnull(strstr(status, marker));
	s.outputs_failing = 2;
	snprintf(s.output_problems, sizeof(s.output_problems),
		 "chrony-sock: xyzzy; ntp-shm: plugh");
	PUB_Tick(&s, &d, &c);
	status_sent(status, sizeof(status));
	ck_assert_ptr_nonnull(strstr(status, s.output_problems));
	ck_assert_ptr_nonnull(strstr(status, marker));

	s.reason = POL_NO_DEVICE;
	s.reason_errno = ENOENT;
	PUB_Tick(&s, &d, &c);
	status_sent(status, sizeof(status));
	ck_assert_ptr_nonnull(strstr(status, page_path));
	ck_assert_ptr_nonnull(strstr(status, vmclock_strerror(ENOENT)));

	s.reason = POL_DISRUPTION;
	PUB_Tick(&s, &d, &c);
	status_sent(status, sizeof(status));
	ck_assert_ptr_nonnull(strstr(status, marker));
	PUB_Finalise();
	NTF_Finalise();
	event_base_free(base);
	close(notify_fd);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("publish");
	TCase *tc;

	tc = tcase_create("state");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, tick_fields);
	tcase_add_loop_test(tc, verdict, 0, sizeof(verdicts) / sizeof(verdicts[0]));
	tcase_add_test(tc, bound_from_tracking_at_once);
	tcase_add_test(tc, contradicted_by_measurement);
	tcase_add_test(tc, counters_and_reasons);
	tcase_add_test(tc, count_even_and_growing);
	tcase_add_test(tc, failed_write_leaves_count_odd);
	suite_add_tcase(s, tc);

	tc = tcase_create("file");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, previous_file_carried_on, 0,
			    sizeof(previous) / sizeof(previous[0]));
	tcase_add_test(tc, hard_link_left_alone);
	tcase_add_test(tc, symlink_not_followed);
	tcase_add_test(tc, removed_or_replaced);
	tcase_add_test(tc, truncated_written_whole);
	tcase_add_test(tc, directory_made);
	tcase_add_test(tc, unusable_path_retried);
	tcase_add_test(tc, no_state_file);
	tcase_add_test(tc, reload_same_path);
	tcase_add_test(tc, reload_other_path);
	tcase_add_test(tc, exit_says_unknown);
	suite_add_tcase(s, tc);

	tc = tcase_create("status");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, status_on_change);
	suite_add_tcase(s, tc);

	/* The module's statics, and the monotonic clock each test moves on. */
	return CR_Run(s, CK_FORK);
}
