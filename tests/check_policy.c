/* SPDX-License-Identifier: BSD-2-Clause
 *
 * check_policy.c - the sample policy (daemon/policy.c): every reason a
 * sample is withheld, the bound arithmetic at its extremes, and leap seconds
 * forwarded into chrony's SOCK datagram and ntpd's SHM segment.
 *
 * Pages are built byte by byte (tests/testpage.c) and the measured reading
 * is converted by libvmclock from that page, as the daemon's own
 * measurement would be: a bound the library saturates or a field it carries
 * over reaches the policy exactly as in the daemon.  The feeders are the
 * daemon's own (a real datagram socket, a real SHM segment), read back at
 * the byte offsets chrony and ntpd read.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <check.h>

#include "vmclock.h"
#include "vmclockd-state.h"

#include "../daemon/feed.h"
#include "../daemon/policy.h"
#include "testpage.h"
#include "checkrun.h"

#define PERIOD_1GHZ 18446744073ull /* 1 ns per tick, shift 0 (2^64 / 1e9) */
#define ANCHOR 1000000u
#define TIME_SEC 1800000000u
#define MAX_ERROR 100000u /* max-error-ns in these tests */
#define U64_MAX UINT64_MAX

/* Byte offsets read by the NTP daemons, written out independently of the
 * feeders' structures. */
#define SOCK_DGRAM_BYTES 40
#define SOCK_LEAP_OFF 28  /* chrony's sock_sample.leap: 0 none, 1 insert, 2 delete */
#define SOCK_MAGIC_OFF 36
#define SOCK_MAGIC 0x534f434b
#define SHM_KEY_BASE 0x4e545030
#define SHM_BYTES 96
#define SHM_LEAP_OFF 36      /* ntpd's shmTime.leap: 0 none, 1 add, 2 delete */
#define SHM_PRECISION_OFF 40 /* log2 seconds */
#define SHM_VALID_OFF 48

static CNF_Settings cfg;

static void setup(void)
{
	memset(&cfg, 0, sizeof(cfg));
	cfg.max_error_ns = MAX_ERROR;
	cfg.allow_freerunning = false;
}

/* The counter this CPU reads, and one it does not. */
static uint8_t native(void)
{
	uint8_t c = tp_native_counter();

	ck_assert_msg(c != 0xff, "this CPU reads no counter the policy can be tested with");
	return c;
}

static uint8_t foreign(void)
{
	return native() == VMCLOCK_COUNTER_X86_TSC ? VMCLOCK_COUNTER_ARM_VCNT
						   : VMCLOCK_COUNTER_X86_TSC;
}

/* A page that carries UTC, synchronized, a 1 GHz counter, every error flag
 * set, maximum error 1000 ns and a period error of 2^-64 s per tick. */
static void good_page(struct testpage *p)
{
	tp_init_time(p, native(), ANCHOR, PERIOD_1GHZ, 0, TIME_SEC, 0);
	tp_put64(p, TP_TIME_MAXERR, 1000);
	tp_put64(p, TP_TIME_ESTERR, 100);
	tp_put64(p, TP_PERIOD_MAXERR, 1);
	tp_put64(p, TP_MARKER, 7);
}

static POL_Reason judge_page(const struct testpage *p)
{
	struct vmclock_abi a;

	tp_to_abi(p, &a);
	return POL_JudgePage(&a, &cfg);
}

/* The offset the daemon would measure on p, ticks after the anchor, with a
 * bracket of the given half-width. */
static void measure(const struct testpage *p, uint64_t ticks, uint64_t uncertainty_ns,
		    struct vmclock_offset *o)
{
	struct vmclock_abi a;

	tp_to_abi(p, &a);
	memset(o, 0, sizeof(*o));
	ck_assert_msg(vmclock_convert(&a, ANCHOR + ticks, &o->time) == 0, "convert: %s",
		      strerror(errno));
	o->system.tv_sec = TIME_SEC;
	o->system.tv_nsec = 250;
	o->offset_ns = -1234;
	o->uncertainty_ns = uncertainty_ns;
}

/* Judge the page, and if it passes, the sample measured on it. */
static POL_Reason judge(const struct testpage *p, uint64_t ticks, uint64_t uncertainty_ns,
			FED_Sample *s)
{
	struct vmclock_abi a;
	struct vmclock_offset o;
	POL_Reason r = judge_page(p);

	if (r != POL_FED)
		return r;
	tp_to_abi(p, &a);
	measure(p, ticks, uncertainty_ns, &o);
	return POL_JudgeSample(&a, &o, &cfg, s);
}

/* ---- the fed sample ---------------------------------------------------- */

START_TEST(test_fed)
{
	struct testpage p;
	FED_Sample s;

	good_page(&p);
	memset(&s, 0xa5, sizeof(s));
	ck_assert_int_eq(judge(&p, 0, 30, &s), POL_FED);
	ck_assert_int_eq(s.system.tv_sec, TIME_SEC);
	ck_assert_int_eq(s.system.tv_nsec, 250);
	ck_assert_int_eq(s.offset_ns, -1234);
	ck_assert_uint_eq(s.uncertainty_ns, 30);
	ck_assert_uint_eq(s.bound_ns, 1030);
	ck_assert_int_eq(s.leap, FED_LEAP_NONE);
	/* The bound grows with the period error: 10^9 ticks of 2^-64 s is
	 * 10^9 / 2^64 s, rounded up to 1 ns. */
	ck_assert_int_eq(judge(&p, 1000000000u, 30, &s), POL_FED);
	ck_assert_uint_eq(s.bound_ns, 1031);
}
END_TEST

/* ---- no time ----------------------------------------------------------- */

START_TEST(test_no_time_counter_invalid)
{
	struct testpage p;

	good_page(&p);
	tp_put8(&p, TP_COUNTER_ID, VMCLOCK_COUNTER_INVALID);
	ck_assert_int_eq(judge_page(&p), POL_NO_TIME);
}
END_TEST

START_TEST(test_no_time_unreliable)
{
	struct testpage p;

	good_page(&p);
	tp_put8(&p, TP_STATUS, VMCLOCK_STATUS_UNRELIABLE);
	ck_assert_int_eq(judge_page(&p), POL_NO_TIME);
	/* allow-freerunning does not make an unreliable clock usable. */
	cfg.allow_freerunning = true;
	ck_assert_int_eq(judge_page(&p), POL_NO_TIME);
}
END_TEST

/* A zero period is a frozen clock: its time_sec would be fed as now, with
 * the page's small maximum error. */
START_TEST(test_no_time_zero_period)
{
	struct testpage p;

	good_page(&p);
	tp_put64(&p, TP_PERIOD, 0);
	ck_assert_int_eq(judge_page(&p), POL_NO_TIME);
	cfg.allow_freerunning = true;
	cfg.max_error_ns = 0;
	ck_assert_int_eq(judge_page(&p), POL_NO_TIME);
}
END_TEST

/* The same frozen clock through the daemon's measurement: a live page file
 * with a zero period is not measured, and its errno maps to "no time". */
START_TEST(test_no_time_zero_period_measured)
{
	struct testpage p;
	struct vmclock_offset o;
	char *dir = tp_tmpdir(), *path;
	vmclock_t *vc;
	int r, err;

	tp_init_live(&p, native(), 0, 0, 0);
	tp_put64(&p, TP_TIME_MAXERR, 1000);
	path = tp_write_file(dir, "page", &p);
	vc = vmclock_open(path);
	ck_assert_ptr_nonnull(vc);
	r = vmclock_offset(vc, &o);
	err = errno;
	vmclock_close(vc);
	tp_rmdir(dir);
	free(path);
	free(dir);
	ck_assert_int_eq(r, -1);
	ck_assert_int_eq(POL_ReasonForErrno(err), POL_NO_TIME);
}
END_TEST

START_TEST(test_unsupported_counter)
{
	struct testpage p;

	good_page(&p);
	tp_put8(&p, TP_COUNTER_ID, foreign());
	ck_assert_int_eq(judge_page(&p), POL_UNSUPPORTED);
	/* An unknown counter id is no counter this CPU reads either. */
	tp_put8(&p, TP_COUNTER_ID, 7);
	ck_assert_int_eq(judge_page(&p), POL_UNSUPPORTED);
}
END_TEST

/* A shift that makes the period finer than any clock: a bad page. */
START_TEST(test_absurd_shift)
{
	struct testpage p;

	good_page(&p);
	tp_put8(&p, TP_SHIFT, 64);
	ck_assert_int_eq(judge_page(&p), POL_BAD_PAGE);
	tp_put8(&p, TP_SHIFT, 63);
	ck_assert_int_eq(judge_page(&p), POL_FED);
}
END_TEST

/* ---- synchronisation --------------------------------------------------- */

START_TEST(test_not_synchronized)
{
	static const uint8_t unsynced[] = { VMCLOCK_STATUS_UNKNOWN, VMCLOCK_STATUS_INITIALIZING,
					    VMCLOCK_STATUS_FREERUNNING, 5, 0xff };
	struct testpage p;

	good_page(&p);
	for (size_t i = 0; i < sizeof(unsynced); i++) {
		tp_put8(&p, TP_STATUS, unsynced[i]);
		ck_assert_msg(judge_page(&p) == POL_NOT_SYNCHRONIZED, "status %u", unsynced[i]);
	}
}
END_TEST

START_TEST(test_allow_freerunning)
{
	struct testpage p;
	FED_Sample s;

	good_page(&p);
	tp_put8(&p, TP_STATUS, VMCLOCK_STATUS_FREERUNNING);
	cfg.allow_freerunning = true;
	ck_assert_int_eq(judge(&p, 0, 0, &s), POL_FED);
	/* ...and only free-running: unknown and initialising stay withheld. */
	tp_put8(&p, TP_STATUS, VMCLOCK_STATUS_UNKNOWN);
	ck_assert_int_eq(judge_page(&p), POL_NOT_SYNCHRONIZED);
	tp_put8(&p, TP_STATUS, VMCLOCK_STATUS_INITIALIZING);
	ck_assert_int_eq(judge_page(&p), POL_NOT_SYNCHRONIZED);
}
END_TEST

/* ---- timescale --------------------------------------------------------- */

START_TEST(test_no_utc)
{
	struct testpage p;
	FED_Sample s;

	good_page(&p);
	tp_put8(&p, TP_TIME_TYPE, VMCLOCK_TIME_MONOTONIC);
	ck_assert_int_eq(judge_page(&p), POL_NO_UTC);
	/* A monotonic page with a "valid" TAI offset is still not UTC. */
	tp_put64(&p, TP_FLAGS, tp_get64(&p, TP_FLAGS) | VMCLOCK_FLAG_TAI_OFFSET_VALID);
	ck_assert_int_eq(judge_page(&p), POL_NO_UTC);
	tp_put8(&p, TP_TIME_TYPE, 3); /* a timescale this ABI does not define */
	ck_assert_int_eq(judge_page(&p), POL_NO_UTC);

	good_page(&p);
	tp_put8(&p, TP_TIME_TYPE, VMCLOCK_TIME_TAI);
	tp_put16(&p, TP_TAI_OFFSET, (uint16_t)-37);
	ck_assert_int_eq(judge_page(&p), POL_NO_UTC);
	tp_put64(&p, TP_FLAGS, tp_get64(&p, TP_FLAGS) | VMCLOCK_FLAG_TAI_OFFSET_VALID);
	ck_assert_int_eq(judge(&p, 0, 0, &s), POL_FED);
}
END_TEST

/* ---- bounds ------------------------------------------------------------ */

START_TEST(test_no_bound)
{
	struct testpage p;
	FED_Sample s;

	good_page(&p);
	tp_put64(&p, TP_FLAGS, tp_get64(&p, TP_FLAGS) & ~VMCLOCK_FLAG_TIME_MAXERROR_VALID);
	ck_assert_int_eq(judge(&p, 0, 0, &s), POL_NO_BOUND);
	/* A bound that cannot be carried forward from the anchor. */
	good_page(&p);
	tp_put64(&p, TP_FLAGS, tp_get64(&p, TP_FLAGS) & ~VMCLOCK_FLAG_PERIOD_MAXERROR_VALID);
	ck_assert_int_eq(judge(&p, 0, 0, &s), POL_FED);
	ck_assert_int_eq(judge(&p, 1, 0, &s), POL_NO_BOUND);
	/* The page's "unknown" (2^64-1) with the flag set. */
	good_page(&p);
	tp_put64(&p, TP_TIME_MAXERR, U64_MAX);
	ck_assert_int_eq(judge(&p, 0, 0, &s), POL_NO_BOUND);
}
END_TEST

/* Page maximum errors and uncertainties against max-error-ns, at the
 * edges of 64 bits; the expected verdicts assume no wrap anywhere. */
static const struct {
	uint64_t maxerror, uncertainty;
	POL_Reason want;
} bound_cases[] = {
	{ MAX_ERROR, 0, POL_FED },
	{ MAX_ERROR - 10, 10, POL_FED },
	{ MAX_ERROR - 10, 11, POL_ERROR_BOUND }, /* the uncertainty pushes it over */
	{ MAX_ERROR + 1, 0, POL_ERROR_BOUND },
	{ 0, MAX_ERROR + 1, POL_ERROR_BOUND },
	{ U64_MAX, 0, POL_NO_BOUND },
	{ U64_MAX, 5, POL_NO_BOUND },
	{ U64_MAX - 1, 0, POL_ERROR_BOUND },
	{ U64_MAX - 1, 3, POL_ERROR_BOUND }, /* wraps to 1 */
	{ U64_MAX - 1, MAX_ERROR, POL_ERROR_BOUND },
	{ U64_MAX - 100, 200, POL_ERROR_BOUND }, /* wraps to 99 */
	{ 1ull << 63, 0, POL_ERROR_BOUND },
	{ 1ull << 63, 1ull << 63, POL_ERROR_BOUND }, /* wraps to 0 */
	{ 1000, U64_MAX - 1, POL_ERROR_BOUND }, /* wraps to 998 */
	{ 1000, U64_MAX - 500, POL_ERROR_BOUND },
};

START_TEST(test_error_bound)
{
	struct testpage p;
	FED_Sample s;

	good_page(&p);
	tp_put64(&p, TP_TIME_MAXERR, bound_cases[_i].maxerror);
	ck_assert_msg(judge(&p, 0, bound_cases[_i].uncertainty, &s) == bound_cases[_i].want,
		      "maxerror %llu + uncertainty %llu: want reason %d",
		      (unsigned long long)bound_cases[_i].maxerror,
		      (unsigned long long)bound_cases[_i].uncertainty, bound_cases[_i].want);
	if (bound_cases[_i].want == POL_FED)
		ck_assert_uint_eq(s.bound_ns, bound_cases[_i].maxerror + bound_cases[_i].uncertainty);
}
END_TEST

/* The largest max-error-ns the configuration takes, and the largest at all:
 * still no wrapped bound gets under it. */
START_TEST(test_error_bound_large_limit)
{
	struct testpage p;
	FED_Sample s;

	good_page(&p);
	cfg.max_error_ns = 1000000000000ull;
	tp_put64(&p, TP_TIME_MAXERR, U64_MAX - 1);
	ck_assert_int_eq(judge(&p, 0, 3, &s), POL_ERROR_BOUND);
	tp_put64(&p, TP_TIME_MAXERR, 999999999990ull);
	ck_assert_int_eq(judge(&p, 0, 10, &s), POL_FED);
	ck_assert_uint_eq(s.bound_ns, 1000000000000ull);
	ck_assert_int_eq(judge(&p, 0, 11, &s), POL_ERROR_BOUND);
	cfg.max_error_ns = U64_MAX - 2;
	tp_put64(&p, TP_TIME_MAXERR, U64_MAX - 1);
	ck_assert_int_eq(judge(&p, 0, 3, &s), POL_ERROR_BOUND);
}
END_TEST

/* The bound grown by the period error over many ticks, past max-error-ns. */
START_TEST(test_error_bound_growth)
{
	struct testpage p;
	FED_Sample s;

	good_page(&p);
	/* 18446745 units of 2^-64 s per tick: just over 1 ns per 10^3 ticks,
	 * rounded up. */
	tp_put64(&p, TP_PERIOD_MAXERR, 18446745);
	ck_assert_int_eq(judge(&p, 1000, 0, &s), POL_FED);
	ck_assert_uint_eq(s.bound_ns, 1002);
	ck_assert_int_eq(judge(&p, 98999000, 0, &s), POL_FED);
	ck_assert_uint_eq(s.bound_ns, MAX_ERROR);
	ck_assert_int_eq(judge(&p, 99000000, 0, &s), POL_ERROR_BOUND);
	/* A huge rate saturates in the library and stays withheld here. */
	tp_put64(&p, TP_PERIOD_MAXERR, U64_MAX);
	ck_assert_int_eq(judge(&p, 1ull << 62, U64_MAX - 1, &s), POL_ERROR_BOUND);
}
END_TEST

/* Without max-error-ns nothing is withheld for its bound, but the bound fed
 * (ntpd's precision) is saturated, never wrapped, and unknown stays unknown. */
START_TEST(test_bound_saturates_without_limit)
{
	struct testpage p;
	FED_Sample s;

	good_page(&p);
	cfg.max_error_ns = 0;
	tp_put64(&p, TP_TIME_MAXERR, U64_MAX - 1);
	ck_assert_int_eq(judge(&p, 0, 3, &s), POL_FED);
	ck_assert_uint_eq(s.bound_ns, U64_MAX - 1);
	tp_put64(&p, TP_TIME_MAXERR, 1ull << 63);
	ck_assert_int_eq(judge(&p, 0, 1ull << 63, &s), POL_FED);
	ck_assert_uint_eq(s.bound_ns, U64_MAX - 1);
	tp_put64(&p, TP_TIME_MAXERR, 1000);
	ck_assert_int_eq(judge(&p, 0, U64_MAX - 1, &s), POL_FED);
	ck_assert_uint_eq(s.bound_ns, U64_MAX - 1);
	tp_put64(&p, TP_TIME_MAXERR, U64_MAX);
	ck_assert_int_eq(judge(&p, 0, 3, &s), POL_FED);
	ck_assert_uint_eq(s.bound_ns, VMCLOCK_ERROR_UNKNOWN);
}
END_TEST

/* ---- leap seconds on a smearing host ------------------------------------ */

static const uint8_t leaps[] = { VMCLOCK_LEAP_PRE_POS, VMCLOCK_LEAP_PRE_NEG, VMCLOCK_LEAP_POS,
				 VMCLOCK_LEAP_POST_POS, VMCLOCK_LEAP_POST_NEG, 9 };

START_TEST(test_smeared)
{
	static const uint8_t smearing[] = { VMCLOCK_SMEARING_NOON_LINEAR, VMCLOCK_SMEARING_UTC_SLS, 7 };
	struct testpage p;
	FED_Sample s;

	good_page(&p);
	for (size_t i = 0; i < sizeof(smearing); i++) {
		tp_put8(&p, TP_SMEARING, smearing[i]);
		tp_put8(&p, TP_LEAP, VMCLOCK_LEAP_NONE);
		ck_assert_msg(judge(&p, 0, 0, &s) == POL_FED, "smearing %u, no leap", smearing[i]);
		for (size_t j = 0; j < sizeof(leaps); j++) {
			tp_put8(&p, TP_LEAP, leaps[j]);
			ck_assert_msg(judge_page(&p) == POL_SMEARED, "smearing %u, leap %u",
				      smearing[i], leaps[j]);
		}
	}
	/* A strict host's leap is fed (and forwarded, below). */
	tp_put8(&p, TP_SMEARING, VMCLOCK_SMEARING_STRICT);
	for (size_t j = 0; j < sizeof(leaps); j++) {
		tp_put8(&p, TP_LEAP, leaps[j]);
		ck_assert_msg(judge(&p, 0, 0, &s) == POL_FED, "strict, leap %u", leaps[j]);
	}
}
END_TEST

/* ---- what changed between the copy and the measurement ------------------ */

START_TEST(test_disruption)
{
	struct testpage p, moved;
	struct vmclock_abi copy;
	struct vmclock_offset o;
	FED_Sample s;

	good_page(&p);
	tp_to_abi(&p, &copy);
	ck_assert_int_eq(POL_JudgePage(&copy, &cfg), POL_FED);
	moved = p;
	tp_put64(&moved, TP_MARKER, 8);
	measure(&moved, 0, 0, &o);
	ck_assert_int_eq(POL_JudgeSample(&copy, &o, &cfg, &s), POL_DISRUPTION);
	/* The new marker comes first, whatever else the new page says. */
	tp_put8(&moved, TP_STATUS, VMCLOCK_STATUS_FREERUNNING);
	tp_put64(&moved, TP_TIME_MAXERR, U64_MAX - 1);
	measure(&moved, 0, 0, &o);
	ck_assert_int_eq(POL_JudgeSample(&copy, &o, &cfg, &s), POL_DISRUPTION);
}
END_TEST

/* The host changed its mind under the same marker: the measured reading is
 * judged, not only the copy taken before it. */
START_TEST(test_changed_under_measurement)
{
	struct testpage p, changed;
	struct vmclock_abi copy;
	struct vmclock_offset o;
	FED_Sample s;

	good_page(&p);
	tp_to_abi(&p, &copy);
	changed = p;
	tp_put8(&changed, TP_STATUS, VMCLOCK_STATUS_UNKNOWN);
	measure(&changed, 0, 0, &o);
	ck_assert_int_eq(POL_JudgeSample(&copy, &o, &cfg, &s), POL_NOT_SYNCHRONIZED);
	changed = p;
	tp_put8(&changed, TP_SMEARING, VMCLOCK_SMEARING_UTC_SLS);
	tp_put8(&changed, TP_LEAP, VMCLOCK_LEAP_PRE_NEG);
	measure(&changed, 0, 0, &o);
	ck_assert_int_eq(POL_JudgeSample(&copy, &o, &cfg, &s), POL_SMEARED);
	changed = p;
	tp_put8(&changed, TP_TIME_TYPE, VMCLOCK_TIME_TAI);
	measure(&changed, 0, 0, &o);
	ck_assert_int_eq(POL_JudgeSample(&copy, &o, &cfg, &s), POL_NO_UTC);
	changed = p;
	tp_put64(&changed, TP_TIME_MAXERR, MAX_ERROR + 1);
	measure(&changed, 0, 0, &o);
	ck_assert_int_eq(POL_JudgeSample(&copy, &o, &cfg, &s), POL_ERROR_BOUND);
}
END_TEST

/* ---- errno, and the reasons' numbers ------------------------------------ */

START_TEST(test_reason_for_errno)
{
	static const int bad[] = { EBADMSG, EMSGSIZE, EPROTO, ENODEV, ERANGE, EACCES, EFAULT, EIO };

	ck_assert_int_eq(POL_ReasonForErrno(ENOENT), POL_NO_DEVICE);
	ck_assert_int_eq(POL_ReasonForErrno(ETIMEDOUT), POL_UNSTABLE);
	ck_assert_int_eq(POL_ReasonForErrno(ENODATA), POL_NO_TIME);
	ck_assert_int_eq(POL_ReasonForErrno(EOPNOTSUPP), POL_UNSUPPORTED);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(POL_ReasonForErrno(bad[i]) == POL_BAD_PAGE, "%s", strerror(bad[i]));
}
END_TEST

/* The reasons index the published state's withheld[]: their numbers are
 * part of the state file's format. */
START_TEST(test_reason_numbers)
{
	ck_assert_int_eq(POL_FED, 0);
	ck_assert_int_eq(POL_NO_DEVICE, 1);
	ck_assert_int_eq(POL_BAD_PAGE, 2);
	ck_assert_int_eq(POL_UNSTABLE, 3);
	ck_assert_int_eq(POL_NO_TIME, 4);
	ck_assert_int_eq(POL_NO_UTC, 5);
	ck_assert_int_eq(POL_NOT_SYNCHRONIZED, 6);
	ck_assert_int_eq(POL_NO_BOUND, 7);
	ck_assert_int_eq(POL_ERROR_BOUND, 8);
	ck_assert_int_eq(POL_SMEARED, 9);
	ck_assert_int_eq(POL_UNSUPPORTED, 10);
	ck_assert_int_eq(POL_DISRUPTION, 11);
	ck_assert_int_eq(POL_REASON_COUNT, VMCLOCKD_STATE_REASONS);
}
END_TEST

/* ---- leap seconds forwarded --------------------------------------------- */

static const struct {
	uint8_t indicator;
	FED_Leap leap;
	int wire; /* chrony's and ntpd's leap field */
} leap_cases[] = {
	{ VMCLOCK_LEAP_NONE, FED_LEAP_NONE, 0 },
	{ VMCLOCK_LEAP_PRE_POS, FED_LEAP_INSERT, 1 },
	{ VMCLOCK_LEAP_POS, FED_LEAP_INSERT, 1 },
	{ VMCLOCK_LEAP_PRE_NEG, FED_LEAP_DELETE, 2 },
	/* A leap second of last month announces nothing: told "delete",
	 * an NTP daemon without a leap file would drop a second at the end
	 * of this month. */
	{ VMCLOCK_LEAP_POST_POS, FED_LEAP_NONE, 0 },
	{ VMCLOCK_LEAP_POST_NEG, FED_LEAP_NONE, 0 },
	{ 6, FED_LEAP_NONE, 0 },    /* not an indicator the ABI defines */
	{ 0xff, FED_LEAP_NONE, 0 },
};

/* The sample fed for a strict host's page with this leap indicator. */
static void leap_sample(uint8_t indicator, FED_Sample *s)
{
	struct testpage p;

	good_page(&p);
	tp_put8(&p, TP_LEAP, indicator);
	ck_assert_int_eq(judge(&p, 0, 0, s), POL_FED);
}

START_TEST(test_leap)
{
	FED_Sample s;

	ck_assert_int_eq(POL_Leap(leap_cases[_i].indicator), leap_cases[_i].leap);
	leap_sample(leap_cases[_i].indicator, &s);
	ck_assert_int_eq(s.leap, leap_cases[_i].leap);
}
END_TEST

static int read_int(const uint8_t *b, size_t off)
{
	int v;

	memcpy(&v, b + off, sizeof(v));
	return v;
}

/* Into chrony: the SOCK datagram's leap field, through the daemon's feeder. */
START_TEST(test_leap_into_chrony_sock)
{
	char *dir = tp_tmpdir(), *path = tp_path(dir, "refclock.sock");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint8_t dgram[SOCK_DGRAM_BYTES + 8];
	FED_Output out;
	FED_Sample s;
	ssize_t n;
	int fd;

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_uint_lt(strlen(path), sizeof(sa.sun_path));
	strcpy(sa.sun_path, path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	out = FED_CreateSock(path);
	ck_assert_ptr_nonnull(out);
	for (size_t i = 0; i < sizeof(leap_cases) / sizeof(leap_cases[0]); i++) {
		leap_sample(leap_cases[i].indicator, &s);
		ck_assert_int_eq(FED_Send(out, &s), 0);
		n = recv(fd, dgram, sizeof(dgram), 0);
		ck_assert_int_eq(n, SOCK_DGRAM_BYTES);
		ck_assert_int_eq(read_int(dgram, SOCK_MAGIC_OFF), SOCK_MAGIC);
		ck_assert_msg(read_int(dgram, SOCK_LEAP_OFF) == leap_cases[i].wire,
			      "indicator %u: chrony leap %d, want %d", leap_cases[i].indicator,
			      read_int(dgram, SOCK_LEAP_OFF), leap_cases[i].wire);
	}
	FED_Destroy(out);
	close(fd);
	tp_rmdir(dir);
	free(path);
	free(dir);
}
END_TEST

/* A unit no ntpd of this machine uses, and its segment removed after. */
static int test_shm_unit(void)
{
	return 1000 + (int)(getpid() % 30000);
}

/* The feeder's segment, read-only, and already marked for removal: it goes
 * when the feeder and the test detach, even from a test that failed. */
static const uint8_t *attach_shm(int unit)
{
	void *p;
	int id;

	id = shmget(SHM_KEY_BASE + unit, SHM_BYTES, 0);
	ck_assert_int_ge(id, 0);
	p = shmat(id, NULL, SHM_RDONLY);
	ck_assert_ptr_ne(p, (void *)-1);
	shmctl(id, IPC_RMID, NULL);
	return p;
}

/* Into ntpd: the SHM segment's leap field, through the daemon's feeder. */
START_TEST(test_leap_into_ntpd_shm)
{
	int unit = test_shm_unit();
	const uint8_t *shm;
	FED_Output out;
	FED_Sample s;

	out = FED_CreateShm(unit, 0600);
	ck_assert_ptr_nonnull(out);
	shm = attach_shm(unit);
	for (size_t i = 0; i < sizeof(leap_cases) / sizeof(leap_cases[0]); i++) {
		leap_sample(leap_cases[i].indicator, &s);
		ck_assert_int_eq(FED_Send(out, &s), 0);
		ck_assert_int_eq(read_int(shm, SHM_VALID_OFF), 1);
		ck_assert_msg(read_int(shm, SHM_LEAP_OFF) == leap_cases[i].wire,
			      "indicator %u: ntpd leap %d, want %d", leap_cases[i].indicator,
			      read_int(shm, SHM_LEAP_OFF), leap_cases[i].wire);
	}
	FED_Destroy(out);
	shmdt(shm);
}
END_TEST

/* The saturated bound as ntpd sees it: a precision of a second (the coarsest
 * the field takes), not the nanoseconds a wrapped sum would claim. */
START_TEST(test_saturated_bound_into_ntpd_shm)
{
	int unit = test_shm_unit();
	const uint8_t *shm;
	struct testpage p;
	FED_Output out;
	FED_Sample s;

	cfg.max_error_ns = 0;
	good_page(&p);
	tp_put64(&p, TP_TIME_MAXERR, U64_MAX - 1);
	ck_assert_int_eq(judge(&p, 0, 3, &s), POL_FED);
	out = FED_CreateShm(unit, 0600);
	ck_assert_ptr_nonnull(out);
	shm = attach_shm(unit);
	ck_assert_int_eq(FED_Send(out, &s), 0);
	ck_assert_int_eq(read_int(shm, SHM_PRECISION_OFF), 0);
	/* And a bound of 1030 ns: 2^-19 s (1907 ns) is the first power above. */
	good_page(&p);
	ck_assert_int_eq(judge(&p, 0, 30, &s), POL_FED);
	ck_assert_int_eq(FED_Send(out, &s), 0);
	ck_assert_int_eq(read_int(shm, SHM_PRECISION_OFF), -19);
	FED_Destroy(out);
	shmdt(shm);
}
END_TEST

static Suite *policy_suite(void)
{
	Suite *s = suite_create("policy");
	TCase *tc;

	tc = tcase_create("verdicts");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_fed);
	tcase_add_test(tc, test_no_time_counter_invalid);
	tcase_add_test(tc, test_no_time_unreliable);
	tcase_add_test(tc, test_no_time_zero_period);
	tcase_add_test(tc, test_no_time_zero_period_measured);
	tcase_add_test(tc, test_unsupported_counter);
	tcase_add_test(tc, test_absurd_shift);
	tcase_add_test(tc, test_not_synchronized);
	tcase_add_test(tc, test_allow_freerunning);
	tcase_add_test(tc, test_no_utc);
	tcase_add_test(tc, test_smeared);
	tcase_add_test(tc, test_disruption);
	tcase_add_test(tc, test_changed_under_measurement);
	tcase_add_test(tc, test_reason_for_errno);
	tcase_add_test(tc, test_reason_numbers);
	suite_add_tcase(s, tc);

	tc = tcase_create("bounds");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_no_bound);
	tcase_add_loop_test(tc, test_error_bound, 0, sizeof(bound_cases) / sizeof(bound_cases[0]));
	tcase_add_test(tc, test_error_bound_large_limit);
	tcase_add_test(tc, test_error_bound_growth);
	tcase_add_test(tc, test_bound_saturates_without_limit);
	suite_add_tcase(s, tc);

	tc = tcase_create("leap");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_loop_test(tc, test_leap, 0, sizeof(leap_cases) / sizeof(leap_cases[0]));
	tcase_add_test(tc, test_leap_into_chrony_sock);
	tcase_add_test(tc, test_leap_into_ntpd_shm);
	tcase_add_test(tc, test_saturated_bound_into_ntpd_shm);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return CR_Run(policy_suite(), CK_FORK_GETENV);
}
