/* SPDX-License-Identifier: BSD-2-Clause
 *
 * check_convert.c - vmclock_convert() against a reference written here.
 *
 * The reference works on 256-bit numbers held as eight 32-bit limbs, with
 * schoolbook multiplication and explicit shifts, and reads the page through
 * testpage.h's byte offsets: it shares neither arithmetic nor layout code
 * with the library.  It states the policy the library promises:
 *   - delta = counter - counter_value modulo 2^64; a delta of 2^63 or more
 *     is a counter behind the anchor by 2^64 - delta ticks;
 *   - the step is (ticks * period) >> shift, truncated, added to or taken from
 *     time_sec.time_frac_sec as one 128-bit fixed-point number; a result
 *     outside [0, 2^128) or seconds above INT64_MAX - 32768 (no room left
 *     for a TAI offset) is ERANGE, as is a shift above 63;
 *   - nsec = (frac * 10^9) >> 64, truncated, exactly as ptp_vmclock;
 *   - UTC: the time itself on a UTC page; time + tai_offset_sec on a TAI page
 *     with TAI_OFFSET_VALID and an offset in -99..-10 s; not valid otherwise;
 *   - error = time error + ceil(ticks * rate * 10^9 / 2^(64 + shift)) ns,
 *     UNKNOWN without the time error's flag or when the time error is
 *     UNKNOWN, the time error alone at zero ticks, UNKNOWN without the rate's
 *     flag otherwise; saturated at UNKNOWN - 1 once the growth alone reaches
 *     18446744073 s or the sum reaches 2^64 - 1;
 *   - counter INVALID or status unreliable: ENODATA.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmclock.h"
#include "../refclock/phc.h"
#include "suites.h"
#include "testpage.h"

#define RANDOM_ROUNDS 200000

/* Check records every passing ck_assert (a write to its log each time), far
 * too slow for the random loops: test plainly, report through Check. */
#define EXPECT(cond, ...)                          \
	do {                                       \
		if (!(cond))                       \
			ck_abort_msg(__VA_ARGS__); \
	} while (0)

/* ---- 256-bit unsigned numbers, eight 32-bit limbs, least significant first */

#define LIMBS 8

struct big {
	uint32_t l[LIMBS];
};

static struct big big_u64(uint64_t v)
{
	struct big r;

	memset(&r, 0, sizeof(r));
	r.l[0] = (uint32_t)v;
	r.l[1] = (uint32_t)(v >> 32);
	return r;
}

/* hi * 2^64 + lo */
static struct big big_u128(uint64_t hi, uint64_t lo)
{
	struct big r = big_u64(lo);

	r.l[2] = (uint32_t)hi;
	r.l[3] = (uint32_t)(hi >> 32);
	return r;
}

static int big_cmp(const struct big *a, const struct big *b)
{
	for (int i = LIMBS - 1; i >= 0; i--)
		if (a->l[i] != b->l[i])
			return a->l[i] < b->l[i] ? -1 : 1;
	return 0;
}

static struct big big_add(const struct big *a, const struct big *b)
{
	struct big r;
	uint64_t carry = 0;

	for (int i = 0; i < LIMBS; i++) {
		carry += (uint64_t)a->l[i] + b->l[i];
		r.l[i] = (uint32_t)carry;
		carry >>= 32;
	}
	EXPECT(carry == 0, "bignum overflow");
	return r;
}

/* a - b, a >= b. */
static struct big big_sub(const struct big *a, const struct big *b)
{
	struct big r;
	uint32_t borrow = 0;

	for (int i = 0; i < LIMBS; i++) {
		uint64_t d = (uint64_t)a->l[i] - b->l[i] - borrow;

		r.l[i] = (uint32_t)d;
		borrow = (d >> 32) != 0;
	}
	EXPECT(borrow == 0, "bignum overflow");
	return r;
}

static struct big big_mul(const struct big *a, const struct big *b)
{
	uint32_t w[2 * LIMBS];
	struct big r;

	memset(w, 0, sizeof(w));
	for (int i = 0; i < LIMBS; i++) {
		uint64_t carry = 0;

		for (int j = 0; j < LIMBS; j++) {
			uint64_t t = (uint64_t)a->l[i] * b->l[j] + w[i + j] + carry;

			w[i + j] = (uint32_t)t;
			carry = t >> 32;
		}
		w[i + LIMBS] = (uint32_t)carry;
	}
	for (int i = LIMBS; i < 2 * LIMBS; i++)
		EXPECT(w[i] == 0, "bignum overflow");
	memcpy(r.l, w, sizeof(r.l));
	return r;
}

static struct big big_shr(const struct big *a, unsigned n)
{
	struct big r;
	unsigned limbs = n / 32, bits = n % 32;

	for (unsigned i = 0; i < LIMBS; i++) {
		uint64_t lo = i + limbs < LIMBS ? a->l[i + limbs] : 0;
		uint64_t hi = i + limbs + 1 < LIMBS ? a->l[i + limbs + 1] : 0;

		r.l[i] = (uint32_t)(((hi << 32) | lo) >> bits);
	}
	return r;
}

/* True if any of the n lowest bits is set. */
static bool big_low_bits(const struct big *a, unsigned n)
{
	for (unsigned i = 0; i < LIMBS && n > 0; i++) {
		uint32_t mask = n >= 32 ? UINT32_MAX : ((uint32_t)1 << n) - 1;

		if (a->l[i] & mask)
			return true;
		n = n >= 32 ? n - 32 : 0;
	}
	return false;
}

/* Bits 64k .. 64k+63. */
static uint64_t big_word(const struct big *a, unsigned k)
{
	return (uint64_t)a->l[2 * k] | (uint64_t)a->l[2 * k + 1] << 32;
}

/* ---- the reference ------------------------------------------------------ */

struct expect {
	int err; /* 0, ENODATA or ERANGE */
	int64_t sec;
	uint32_t nsec;
	bool utc_valid;
	int64_t utc_sec;
	uint32_t utc_nsec;
	uint64_t esterror, maxerror;
};

#define UNKNOWN UINT64_MAX
/* 18446744073 s in ns: the growth at which a bound stops being counted. */
#define GROWTH_SATURATION 18446744073000000000ull

static uint64_t ref_error(uint64_t flags, unsigned time_bit, unsigned rate_bit, uint64_t time_err,
			  uint64_t rate, uint64_t ticks, unsigned shift)
{
	struct big t, r, n, num, q, limit, sum, top;

	if (!(flags & TP_FLAG(time_bit)) || time_err == UNKNOWN)
		return UNKNOWN;
	if (ticks == 0)
		return time_err;
	if (!(flags & TP_FLAG(rate_bit)))
		return UNKNOWN;
	t = big_u64(ticks);
	r = big_u64(rate);
	n = big_u64(1000000000);
	num = big_mul(&t, &r);
	num = big_mul(&num, &n);
	q = big_shr(&num, 64 + shift); /* floor of the growth in ns */
	limit = big_u64(GROWTH_SATURATION);
	if (big_cmp(&q, &limit) >= 0)
		return UNKNOWN - 1;
	if (big_low_bits(&num, 64 + shift)) {
		struct big one = big_u64(1);

		q = big_add(&q, &one);
	}
	t = big_u64(time_err);
	sum = big_add(&q, &t);
	top = big_u64(UNKNOWN);
	if (big_cmp(&sum, &top) >= 0)
		return UNKNOWN - 1;
	return big_word(&sum, 0);
}

static void reference(const struct testpage *p, uint64_t counter, struct expect *e)
{
	uint64_t anchor = tp_get64(p, TP_COUNTER);
	uint64_t delta = counter - anchor;
	bool behind = delta >= (uint64_t)1 << 63;
	uint64_t ticks = behind ? 0 - delta : delta;
	unsigned shift = tp_get8(p, TP_SHIFT);
	uint64_t flags = tp_get64(p, TP_FLAGS);
	struct big t0, step, t, a, b, frac, ns;

	memset(e, 0, sizeof(*e));
	/* A zero period is a frozen clock: no time, not time_sec forever. */
	if (tp_get8(p, TP_COUNTER_ID) == 0xff || tp_get8(p, TP_STATUS) == 4 ||
	    tp_get64(p, TP_PERIOD) == 0) {
		e->err = ENODATA;
		return;
	}
	if (shift > 63) {
		e->err = ERANGE;
		return;
	}
	t0 = big_u128(tp_get64(p, TP_TIME_SEC), tp_get64(p, TP_TIME_FRAC));
	a = big_u64(ticks);
	b = big_u64(tp_get64(p, TP_PERIOD));
	step = big_mul(&a, &b);
	step = big_shr(&step, shift);
	if (!behind) {
		t = big_add(&t0, &step);
	} else {
		if (big_cmp(&step, &t0) > 0) {
			e->err = ERANGE;
			return;
		}
		t = big_sub(&t0, &step);
	}
	if (big_word(&t, 2) || big_word(&t, 3) || big_word(&t, 1) > (uint64_t)INT64_MAX - 32768) {
		e->err = ERANGE;
		return;
	}
	e->sec = (int64_t)big_word(&t, 1);
	frac = big_u64(big_word(&t, 0));
	a = big_u64(1000000000);
	ns = big_mul(&frac, &a);
	ns = big_shr(&ns, 64);
	e->nsec = (uint32_t)big_word(&ns, 0);

	switch (tp_get8(p, TP_TIME_TYPE)) {
	case 0:
		e->utc_valid = true;
		e->utc_sec = e->sec;
		break;
	case 1:
		/* UTC - TAI has been -10 s or less since 1972: a host that
		 * says otherwise has the sign wrong. */
		if ((flags & TP_FLAG(0)) && (int16_t)tp_get16(p, TP_TAI_OFFSET) <= -10 &&
		    (int16_t)tp_get16(p, TP_TAI_OFFSET) >= -99) {
			e->utc_valid = true;
			e->utc_sec = e->sec + (int16_t)tp_get16(p, TP_TAI_OFFSET);
		}
		break;
	default:
		break;
	}
	e->utc_nsec = e->utc_valid ? e->nsec : 0;
	e->esterror = ref_error(flags, 5, 3, tp_get64(p, TP_TIME_ESTERR),
				tp_get64(p, TP_PERIOD_ESTERR), ticks, shift);
	e->maxerror = ref_error(flags, 6, 4, tp_get64(p, TP_TIME_MAXERR),
				tp_get64(p, TP_PERIOD_MAXERR), ticks, shift);
}

/* Convert with the library and compare everything with the reference. */
static int check_one(const struct testpage *p, uint64_t counter, const char *what)
{
	struct vmclock_abi a;
	struct vmclock_time t;
	struct expect e;
	int rc;

	reference(p, counter, &e);
	tp_to_abi(p, &a);
	memset(&t, 0xa5, sizeof(t));
	errno = 0;
	rc = vmclock_convert(&a, counter, &t);
	if (e.err) {
		EXPECT(rc == -1 && errno == e.err, "%s: expected errno %d, got rc %d errno %d",
	        what, e.err, rc, errno);
		return e.err;
	}
	EXPECT(rc == 0, "%s: failed with errno %d", what, errno);
	EXPECT(t.sec == e.sec && t.nsec == e.nsec,
	       "%s: time %" PRId64 ".%09u, reference %" PRId64 ".%09u", what, t.sec, t.nsec,
	       e.sec, e.nsec);
	EXPECT(t.utc_valid == e.utc_valid, "%s: utc_valid %d", what, t.utc_valid);
	if (e.utc_valid)
		EXPECT(t.utc_sec == e.utc_sec && t.utc_nsec == e.utc_nsec,
	        "%s: utc %" PRId64 ".%09u, reference %" PRId64 ".%09u", what,
	        t.utc_sec, t.utc_nsec, e.utc_sec, e.utc_nsec);
	EXPECT(t.esterror_ns == e.esterror, "%s: esterror %" PRIu64 ", reference %" PRIu64,
	       what, t.esterror_ns, e.esterror);
	EXPECT(t.maxerror_ns == e.maxerror, "%s: maxerror %" PRIu64 ", reference %" PRIu64,
	       what, t.maxerror_ns, e.maxerror);
	/* Copied fields. */
	EXPECT(t.time_type == tp_get8(p, TP_TIME_TYPE), "%s: t.time_type", what);
	EXPECT(t.clock_status == tp_get8(p, TP_STATUS), "%s: t.clock_status", what);
	EXPECT(t.leap_indicator == tp_get8(p, TP_LEAP), "%s: t.leap_indicator", what);
	EXPECT(t.leap_second_smearing_hint == tp_get8(p, TP_SMEARING),
	       "%s: t.leap_second_smearing_hint", what);
	EXPECT(t.flags == tp_get64(p, TP_FLAGS), "%s: t.flags", what);
	EXPECT(t.disruption_marker == tp_get64(p, TP_MARKER), "%s: t.disruption_marker", what);
	EXPECT(t.vm_generation_counter == tp_get64(p, TP_GENERATION),
	       "%s: t.vm_generation_counter", what);
	EXPECT(t.seq_count == tp_get32(p, TP_SEQ_COUNT), "%s: t.seq_count", what);
	EXPECT(t.counter == counter, "%s: t.counter", what);
	EXPECT(t.counter_period_frac_sec == tp_get64(p, TP_PERIOD),
	       "%s: t.counter_period_frac_sec", what);
	EXPECT(t.counter_period_shift == tp_get8(p, TP_SHIFT), "%s: t.counter_period_shift", what);
	return 0;
}

/* ---- self-test of the reference's arithmetic ---------------------------- */

START_TEST(test_reference_bignum)
{
	struct big a = big_u64(UINT64_MAX), b = big_u64(UINT64_MAX), p, s;

	/* (2^64 - 1)^2 = 2^128 - 2^65 + 1 */
	p = big_mul(&a, &b);
	ck_assert_uint_eq(big_word(&p, 0), 1);
	ck_assert_uint_eq(big_word(&p, 1), UINT64_MAX - 1);
	ck_assert_uint_eq(big_word(&p, 2), 0);
	s = big_shr(&p, 65);
	ck_assert_uint_eq(big_word(&s, 0), 0x7fffffffffffffffull);
	ck_assert_uint_eq(big_word(&s, 1), 0);
	s = big_shr(&p, 33);
	ck_assert_uint_eq(big_word(&s, 0), 0xffffffff00000000ull);
	ck_assert_uint_eq(big_word(&s, 1), 0x7fffffffull);
	ck_assert(big_low_bits(&p, 1));
	ck_assert(!big_low_bits(&s, 0));
	a = big_u128(1, 0);
	b = big_u64(1);
	s = big_sub(&a, &b);
	ck_assert_uint_eq(big_word(&s, 0), UINT64_MAX);
	ck_assert_uint_eq(big_word(&s, 1), 0);
	ck_assert_int_eq(big_cmp(&s, &a), -1);
	s = big_add(&s, &b);
	ck_assert_int_eq(big_cmp(&s, &a), 0);
	a = big_u64(1000000000);
	b = big_u64(1000000000);
	p = big_mul(&a, &b);
	ck_assert_uint_eq(big_word(&p, 0), 1000000000000000000ull);
	a = big_u128(0x8000000000000000ull, 0);
	s = big_shr(&a, 127);
	ck_assert_uint_eq(big_word(&s, 0), 1);
	ck_assert(!big_low_bits(&a, 127));
	ck_assert(big_low_bits(&a, 128));
}
END_TEST

/* ---- fixed cases --------------------------------------------------------- */

/* A UTC page: TSC, synchronized, all error flags, no errors. */
static void base_page(struct testpage *p, uint64_t anchor, uint64_t period, uint8_t shift,
		      uint64_t sec, uint64_t frac)
{
	tp_init_time(p, 1, anchor, period, shift, sec, frac);
	tp_put32(p, TP_SEQ_COUNT, 42);
	tp_put64(p, TP_MARKER, 0x1122334455667788ull);
	tp_put64(p, TP_GENERATION, 7);
}

static void expect_time(const struct testpage *p, uint64_t counter, int64_t sec, uint32_t nsec)
{
	struct vmclock_abi a;
	struct vmclock_time t;

	check_one(p, counter, "fixed case");
	tp_to_abi(p, &a);
	ck_assert_int_eq(vmclock_convert(&a, counter, &t), 0);
	ck_assert_int_eq(t.sec, sec);
	ck_assert_uint_eq(t.nsec, nsec);
}

static void expect_errno(const struct testpage *p, uint64_t counter, int err)
{
	struct vmclock_abi a;
	struct vmclock_time t;

	check_one(p, counter, "fixed error case");
	tp_to_abi(p, &a);
	errno = 0;
	ck_assert_int_eq(vmclock_convert(&a, counter, &t), -1);
	ck_assert_int_eq(errno, err);
}

/* A zero period is a frozen clock: the page says time_sec for ever.  It
 * carries no time, for the pure conversion and for the predicate alike. */
START_TEST(test_zero_period_no_time)
{
	struct testpage p;
	struct vmclock_abi a;

	base_page(&p, 0, 0, 0, 1700000000, 0);
	expect_errno(&p, 0, ENODATA);
	expect_errno(&p, 1000000, ENODATA);
	tp_to_abi(&p, &a);
	errno = 0;
	ck_assert_int_eq(vmclock_has_time(&a), -1);
	ck_assert_int_eq(errno, ENODATA);
	base_page(&p, 0, 1, 0, 1700000000, 0);
	tp_put8(&p, TP_COUNTER_ID, vmclock_native_counter());
	tp_to_abi(&p, &a);
	ck_assert_int_eq(vmclock_has_time(&a), 0);
}
END_TEST

START_TEST(test_shift0)
{
	struct testpage p;

	/* 2^-32 s per tick. */
	base_page(&p, 1000, (uint64_t)1 << 32, 0, 1700000000, 0);
	expect_time(&p, 1000, 1700000000, 0);
	expect_time(&p, 1000 + ((uint64_t)1 << 32), 1700000001, 0);
	expect_time(&p, 1000 + ((uint64_t)1 << 31), 1700000000, 500000000);
	expect_time(&p, 1000 + ((uint64_t)3 << 33), 1700000006, 0);
	/* One tick: 2^-32 s = 0.2328 ns, truncated to 0. */
	expect_time(&p, 1001, 1700000000, 0);
	expect_time(&p, 1005, 1700000000, 1);
}
END_TEST

START_TEST(test_large_shift)
{
	struct testpage p;

	/* shift 63, period 2^63: 2^-64 s per tick. */
	base_page(&p, 0, (uint64_t)1 << 63, 63, 10, 0);
	expect_time(&p, ((uint64_t)1 << 63) - 1, 10, 499999999);
	expect_time(&p, (uint64_t)1 << 62, 10, 250000000);
	/* shift 63, period all ones: just under 2^-63 s per tick. */
	base_page(&p, 0, UINT64_MAX, 63, 10, 0);
	expect_time(&p, (uint64_t)1 << 62, 10, 499999999);
	/* shift 2 with a 1 GHz period: 2^66/1e9 = 73786976294.84, truncated, so
	 * 10^9 ticks fall just short of a second. */
	base_page(&p, 0, 73786976294ull, 2, 100, 0);
	expect_time(&p, 1000000000, 100, 999999999);
	for (unsigned s = 0; s < 64; s++) {
		base_page(&p, 5, UINT64_MAX >> (s % 7), (uint8_t)s, 1000, UINT64_MAX / 3);
		check_one(&p, 5 + ((uint64_t)1 << 40), "shift sweep");
		check_one(&p, 5 - ((uint64_t)1 << 40), "shift sweep backwards");
	}
}
END_TEST

START_TEST(test_nsec_truncation)
{
	struct testpage p;

	/* frac = floor(2^64 / 1e9) is just under 1 ns: 0; one more is 1 ns. */
	base_page(&p, 0, 1, 0, 5, 18446744073ull);
	expect_time(&p, 0, 5, 0);
	base_page(&p, 0, 1, 0, 5, 18446744074ull);
	expect_time(&p, 0, 5, 1);
	/* The largest fraction never rounds up to the next second. */
	base_page(&p, 0, 1, 0, 5, UINT64_MAX);
	expect_time(&p, 0, 5, 999999999);
	/* Half a second. */
	base_page(&p, 0, 1, 0, 5, (uint64_t)1 << 63);
	expect_time(&p, 0, 5, 500000000);
	/* The step carries into the seconds. */
	base_page(&p, 0, 1, 0, 5, UINT64_MAX);
	expect_time(&p, 1, 6, 0);
}
END_TEST

START_TEST(test_counter_wrap)
{
	struct testpage p;

	/* Anchor just below 2^64, counter past the wrap: 1500 ticks ahead. */
	base_page(&p, UINT64_MAX - 999, (uint64_t)1 << 32, 0, 1000, 0);
	expect_time(&p, 500, 1000, 349);   /* 1500 * 2^-32 s = 349.24 ns */
	base_page(&p, UINT64_MAX - 999, (uint64_t)1 << 54, 0, 1000, 0);
	expect_time(&p, 500, 1001, 464843750); /* 1500 * 2^-10 s */
	/* And the other way: anchor small, counter just below 2^64 is behind. */
	base_page(&p, 500, (uint64_t)1 << 54, 0, 1000, 0);
	expect_time(&p, UINT64_MAX - 999, 998, 535156250);
}
END_TEST

START_TEST(test_counter_behind)
{
	struct testpage p;

	/* 0.5 s per tick. */
	base_page(&p, 10000, (uint64_t)1 << 63, 0, 100, 0);
	expect_time(&p, 9999, 99, 500000000);
	expect_time(&p, 9997, 98, 500000000);
	expect_time(&p, 9800, 0, 0);
	expect_errno(&p, 9799, ERANGE); /* before 1970 */
	/* A delta of exactly 2^63 counts as behind. */
	base_page(&p, 0, 1, 0, 1ull << 40, 0);
	check_one(&p, (uint64_t)1 << 63, "delta 2^63");
	{
		struct vmclock_abi a;
		struct vmclock_time t;

		tp_to_abi(&p, &a);
		ck_assert_int_eq(vmclock_convert(&a, (uint64_t)1 << 63, &t), 0);
		ck_assert_int_eq(t.sec, (1ll << 40) - 1);
		ck_assert_uint_eq(t.nsec, 500000000);
		ck_assert_int_eq(vmclock_convert(&a, ((uint64_t)1 << 63) - 1, &t), 0);
		ck_assert_int_eq(t.sec, 1ll << 40);
		ck_assert_uint_eq(t.nsec, 499999999);
	}
	/* Behind, truncation is towards the anchor: -1 tick of 2^-64 s. */
	base_page(&p, 10, 1, 0, 100, 0);
	expect_time(&p, 9, 99, 999999999);
}
END_TEST

START_TEST(test_error_bounds)
{
	struct testpage p;
	struct vmclock_abi a;
	struct vmclock_time t;

	/* 2^-10 s = 976562.5 ns of error growth per tick. */
	base_page(&p, 100, (uint64_t)1 << 32, 0, 1000, 0);
	tp_put64(&p, TP_PERIOD_ESTERR, (uint64_t)1 << 54);
	tp_put64(&p, TP_PERIOD_MAXERR, (uint64_t)1 << 55);
	tp_put64(&p, TP_TIME_ESTERR, 1000);
	tp_put64(&p, TP_TIME_MAXERR, 5000);
	tp_to_abi(&p, &a);
	ck_assert_int_eq(vmclock_convert(&a, 100, &t), 0);
	ck_assert_uint_eq(t.esterror_ns, 1000);
	ck_assert_uint_eq(t.maxerror_ns, 5000);
	ck_assert_int_eq(vmclock_convert(&a, 101, &t), 0);
	ck_assert_uint_eq(t.esterror_ns, 1000 + 976563);
	ck_assert_uint_eq(t.maxerror_ns, 5000 + 1953125);
	ck_assert_int_eq(vmclock_convert(&a, 102, &t), 0);
	ck_assert_uint_eq(t.esterror_ns, 1000 + 1953125);
	/* Behind the anchor the bound grows the same way. */
	ck_assert_int_eq(vmclock_convert(&a, 99, &t), 0);
	ck_assert_uint_eq(t.esterror_ns, 1000 + 976563);
	ck_assert_uint_eq(t.maxerror_ns, 5000 + 1953125);
	check_one(&p, 101, "bounds");
	check_one(&p, 99, "bounds behind");

	/* With a shift, rounded up: rate 3 at shift 20 over 10^6 ticks. */
	base_page(&p, 0, (uint64_t)1 << 40, 20, 1000, 0);
	tp_put64(&p, TP_PERIOD_MAXERR, 3);
	tp_put64(&p, TP_TIME_MAXERR, 0);
	tp_to_abi(&p, &a);
	ck_assert_int_eq(vmclock_convert(&a, 1000000, &t), 0);
	/* 1e6 * 3 * 1e9 / 2^84 = 0.000155 ns -> 1 ns */
	ck_assert_uint_eq(t.maxerror_ns, 1);
	ck_assert_int_eq(vmclock_convert(&a, 0, &t), 0);
	ck_assert_uint_eq(t.maxerror_ns, 0);
}
END_TEST

/* Every combination of the four error flags, at zero and at 1000 ticks. */
START_TEST(test_error_flags)
{
	for (unsigned m = 0; m < 16; m++) {
		struct testpage p;
		struct vmclock_abi a;
		struct vmclock_time t;
		uint64_t flags = 0;
		bool pe = m & 1, pm = m & 2, te = m & 4, tm = m & 8;

		if (pe)
			flags |= VMCLOCK_FLAG_PERIOD_ESTERROR_VALID;
		if (pm)
			flags |= VMCLOCK_FLAG_PERIOD_MAXERROR_VALID;
		if (te)
			flags |= VMCLOCK_FLAG_TIME_ESTERROR_VALID;
		if (tm)
			flags |= VMCLOCK_FLAG_TIME_MAXERROR_VALID;
		base_page(&p, 0, (uint64_t)1 << 32, 0, 1000, 0);
		tp_put64(&p, TP_FLAGS, flags);
		tp_put64(&p, TP_PERIOD_ESTERR, (uint64_t)1 << 54); /* 976562.5 ns per tick */
		tp_put64(&p, TP_PERIOD_MAXERR, (uint64_t)1 << 54);
		tp_put64(&p, TP_TIME_ESTERR, 10);
		tp_put64(&p, TP_TIME_MAXERR, 20);
		tp_to_abi(&p, &a);

		ck_assert_int_eq(vmclock_convert(&a, 0, &t), 0);
		ck_assert_uint_eq(t.esterror_ns, te ? 10 : VMCLOCK_ERROR_UNKNOWN);
		ck_assert_uint_eq(t.maxerror_ns, tm ? 20 : VMCLOCK_ERROR_UNKNOWN);
		ck_assert_int_eq(vmclock_convert(&a, 2, &t), 0);
		ck_assert_uint_eq(t.esterror_ns, te && pe ? 10 + 1953125 : VMCLOCK_ERROR_UNKNOWN);
		ck_assert_uint_eq(t.maxerror_ns, tm && pm ? 20 + 1953125 : VMCLOCK_ERROR_UNKNOWN);
		check_one(&p, 0, "flags, anchor");
		check_one(&p, 1000, "flags, 1000 ticks");
	}
}
END_TEST

START_TEST(test_error_unknown_and_saturation)
{
	struct testpage p;
	struct vmclock_abi a;
	struct vmclock_time t;

	/* A time error of UNKNOWN stays UNKNOWN even with its flag. */
	base_page(&p, 0, 1, 0, 1000, 0);
	tp_put64(&p, TP_TIME_ESTERR, UINT64_MAX);
	tp_put64(&p, TP_TIME_MAXERR, UINT64_MAX);
	tp_to_abi(&p, &a);
	ck_assert_int_eq(vmclock_convert(&a, 0, &t), 0);
	ck_assert_uint_eq(t.esterror_ns, VMCLOCK_ERROR_UNKNOWN);
	ck_assert_uint_eq(t.maxerror_ns, VMCLOCK_ERROR_UNKNOWN);
	ck_assert_int_eq(vmclock_convert(&a, 5, &t), 0);
	ck_assert_uint_eq(t.maxerror_ns, VMCLOCK_ERROR_UNKNOWN);

	/* Huge growth saturates just below UNKNOWN, never wraps. */
	base_page(&p, 0, 1, 0, 1000, 0);
	tp_put64(&p, TP_PERIOD_MAXERR, UINT64_MAX);
	tp_put64(&p, TP_TIME_MAXERR, 5);
	tp_to_abi(&p, &a);
	ck_assert_int_eq(vmclock_convert(&a, (uint64_t)1 << 62, &t), 0);
	ck_assert_uint_eq(t.maxerror_ns, VMCLOCK_ERROR_UNKNOWN - 1);
	check_one(&p, (uint64_t)1 << 62, "saturation");

	/* A time error near the top plus a little growth. */
	base_page(&p, 0, 1, 0, 1000, 0);
	tp_put64(&p, TP_PERIOD_MAXERR, (uint64_t)1 << 54);
	tp_put64(&p, TP_TIME_MAXERR, UINT64_MAX - 2);
	tp_to_abi(&p, &a);
	ck_assert_int_eq(vmclock_convert(&a, 0, &t), 0);
	ck_assert_uint_eq(t.maxerror_ns, UINT64_MAX - 2);
	ck_assert_int_eq(vmclock_convert(&a, 1, &t), 0);
	ck_assert_uint_eq(t.maxerror_ns, VMCLOCK_ERROR_UNKNOWN - 1);
	check_one(&p, 1, "saturation of the sum");
}
END_TEST

/*
 * ceil(ticks * rate * 1e9 / 2^(64+shift)) where the bits shifted off by the
 * period shift are what pushes the exact value past a whole nanosecond:
 * ticks 2^40, shift 63, rate (q << 23) | (2^23 - 1) with q = 18446744073
 * gives 1.000000000016 ns exactly, so the bound must be 2 ns.
 */
START_TEST(test_error_ceil_carry)
{
	struct testpage p;
	struct vmclock_abi a;
	struct vmclock_time t;
	uint64_t q = 18446744073ull;

	base_page(&p, 0, 1, 63, 1000, 0);
	tp_put64(&p, TP_PERIOD_MAXERR, (q << 23) | ((1u << 23) - 1));
	tp_put64(&p, TP_TIME_MAXERR, 0);
	tp_to_abi(&p, &a);
	ck_assert_int_eq(vmclock_convert(&a, (uint64_t)1 << 40, &t), 0);
	ck_assert_uint_eq(t.maxerror_ns, 2);
	check_one(&p, (uint64_t)1 << 40, "ceil carry");
}
END_TEST

START_TEST(test_tai)
{
	struct testpage p;
	struct vmclock_abi a;
	struct vmclock_time t;

	base_page(&p, 0, 1, 0, 1700000037, (uint64_t)1 << 63);
	tp_put8(&p, TP_TIME_TYPE, 1);
	tp_put16(&p, TP_TAI_OFFSET, (uint16_t)-37);
	tp_put64(&p, TP_FLAGS, tp_get64(&p, TP_FLAGS) | VMCLOCK_FLAG_TAI_OFFSET_VALID);
	tp_to_abi(&p, &a);
	ck_assert_int_eq(vmclock_convert(&a, 0, &t), 0);
	ck_assert_uint_eq(t.time_type, VMCLOCK_TIME_TAI);
	ck_assert_int_eq(t.sec, 1700000037);
	ck_assert(t.utc_valid);
	ck_assert_int_eq(t.utc_sec, 1700000000); /* UTC = TAI + (-37) */
	ck_assert_uint_eq(t.utc_nsec, 500000000);
	check_one(&p, 12345, "tai -37");

	/* The ends of the plausible window, and just outside them. */
	tp_put16(&p, TP_TAI_OFFSET, (uint16_t)-10);
	tp_to_abi(&p, &a);
	ck_assert_int_eq(vmclock_convert(&a, 0, &t), 0);
	ck_assert(t.utc_valid);
	ck_assert_int_eq(t.utc_sec, 1700000027);
	tp_put16(&p, TP_TAI_OFFSET, (uint16_t)-99);
	tp_to_abi(&p, &a);
	ck_assert_int_eq(vmclock_convert(&a, 0, &t), 0);
	ck_assert(t.utc_valid);
	ck_assert_int_eq(t.utc_sec, 1699999938);
	/* +37 (TAI - UTC: the sign taken the other way), 0 and the other
	 * implausible offsets give no UTC: applied, +37 would put UTC 74 s
	 * ahead. */
	static const int16_t wrong[] = { 37, 5, 0, -9, -100, INT16_MIN, INT16_MAX };
	for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
		tp_put16(&p, TP_TAI_OFFSET, (uint16_t)wrong[i]);
		tp_to_abi(&p, &a);
		ck_assert_int_eq(vmclock_convert(&a, 0, &t), 0);
		ck_assert_msg(!t.utc_valid, "tai offset %d gave UTC", wrong[i]);
		ck_assert_int_eq(t.sec, 1700000037);
	}
	tp_put16(&p, TP_TAI_OFFSET, 0x8000);
	check_one(&p, 0, "tai -32768");

	/* Without the flag: no UTC. */
	tp_put16(&p, TP_TAI_OFFSET, (uint16_t)-37);
	tp_put64(&p, TP_FLAGS, tp_get64(&p, TP_FLAGS) & ~VMCLOCK_FLAG_TAI_OFFSET_VALID);
	tp_to_abi(&p, &a);
	ck_assert_int_eq(vmclock_convert(&a, 0, &t), 0);
	ck_assert(!t.utc_valid);
	ck_assert_int_eq(t.sec, 1700000037);
	check_one(&p, 0, "tai without offset");
}
END_TEST

START_TEST(test_utc_ignores_tai_offset)
{
	struct testpage p;
	struct vmclock_abi a;
	struct vmclock_time t;

	base_page(&p, 0, 1, 0, 1700000000, 0);
	tp_put16(&p, TP_TAI_OFFSET, (uint16_t)-37);
	tp_put64(&p, TP_FLAGS, tp_get64(&p, TP_FLAGS) | VMCLOCK_FLAG_TAI_OFFSET_VALID);
	tp_to_abi(&p, &a);
	ck_assert_int_eq(vmclock_convert(&a, 0, &t), 0);
	ck_assert(t.utc_valid);
	ck_assert_int_eq(t.utc_sec, 1700000000);
	ck_assert_int_eq(t.sec, 1700000000);
}
END_TEST

/* The driver's PTP clock reads TAI for every page it registers one for:
 * UTC minus system time is its reading plus the page's TAI offset, which
 * must be valid and plausible, whatever the page's own timescale. */
START_TEST(test_phc_offset)
{
	struct testpage p;
	struct vmclock_abi a;
	struct phc_reading r = { .device_sec = 1700000037, .device_nsec = 250,
				 .system_sec = 1700000000, .system_nsec = 1000 };
	int64_t ns;

	for (uint8_t type = VMCLOCK_TIME_UTC; type <= VMCLOCK_TIME_TAI; type++) {
		base_page(&p, 0, 1, 0, 1700000000, 0);
		tp_put8(&p, TP_TIME_TYPE, type);
		tp_put16(&p, TP_TAI_OFFSET, (uint16_t)-37);
		tp_put64(&p, TP_FLAGS, tp_get64(&p, TP_FLAGS) | VMCLOCK_FLAG_TAI_OFFSET_VALID);
		tp_to_abi(&p, &a);
		ck_assert(phc_offset_ns(&a, &r, &ns));
		ck_assert_int_eq(ns, -750);
		/* Not valid, or not plausible (+37: the sign the other way). */
		tp_put16(&p, TP_TAI_OFFSET, 37);
		tp_to_abi(&p, &a);
		ck_assert(!phc_offset_ns(&a, &r, &ns));
		tp_put16(&p, TP_TAI_OFFSET, (uint16_t)-37);
		tp_put64(&p, TP_FLAGS, tp_get64(&p, TP_FLAGS) & ~VMCLOCK_FLAG_TAI_OFFSET_VALID);
		tp_to_abi(&p, &a);
		ck_assert(!phc_offset_ns(&a, &r, &ns));
	}
	/* Nonsense from the ioctl is no offset. */
	tp_put64(&p, TP_FLAGS, tp_get64(&p, TP_FLAGS) | VMCLOCK_FLAG_TAI_OFFSET_VALID);
	tp_to_abi(&p, &a);
	r.device_nsec = NSEC_PER_SEC;
	ck_assert(!phc_offset_ns(&a, &r, &ns));
	r.device_nsec = 0;
	r.system_sec = INT64_MIN;
	ck_assert(!phc_offset_ns(&a, &r, &ns));
	r.system_sec = -8000000000ll;
	ck_assert(!phc_offset_ns(&a, &r, &ns));
}
END_TEST

START_TEST(test_monotonic)
{
	struct testpage p;
	struct vmclock_abi a;
	struct vmclock_time t;

	base_page(&p, 0, (uint64_t)1 << 32, 0, 12345, 0);
	tp_put8(&p, TP_TIME_TYPE, 2);
	tp_put64(&p, TP_FLAGS, tp_get64(&p, TP_FLAGS) | VMCLOCK_FLAG_TAI_OFFSET_VALID |
		 VMCLOCK_FLAG_TIME_MONOTONIC);
	tp_to_abi(&p, &a);
	ck_assert_int_eq(vmclock_convert(&a, (uint64_t)1 << 32, &t), 0);
	ck_assert_uint_eq(t.time_type, VMCLOCK_TIME_MONOTONIC);
	ck_assert_int_eq(t.sec, 12346);
	ck_assert(!t.utc_valid);
	/* A time type outside the ABI carries no UTC either. */
	tp_put8(&p, TP_TIME_TYPE, 3);
	check_one(&p, 0, "time type 3");
	tp_to_abi(&p, &a);
	ck_assert_int_eq(vmclock_convert(&a, 0, &t), 0);
	ck_assert(!t.utc_valid);
}
END_TEST

START_TEST(test_enodata)
{
	struct testpage p;

	base_page(&p, 0, (uint64_t)1 << 32, 0, 1000, 0);
	tp_put8(&p, TP_COUNTER_ID, 0xff);
	expect_errno(&p, 0, ENODATA);
	base_page(&p, 0, (uint64_t)1 << 32, 0, 1000, 0);
	tp_put8(&p, TP_STATUS, 4);
	expect_errno(&p, 0, ENODATA);
	/* Unreliable wins over a bad shift too. */
	tp_put8(&p, TP_SHIFT, 200);
	expect_errno(&p, 0, ENODATA);
	/* Every other status converts. */
	for (uint8_t s = 0; s < 4; s++) {
		base_page(&p, 0, (uint64_t)1 << 32, 0, 1000, 0);
		tp_put8(&p, TP_STATUS, s);
		expect_time(&p, (uint64_t)1 << 32, 1001, 0);
	}
	/* The counter kind does not matter to the arithmetic. */
	base_page(&p, 0, (uint64_t)1 << 32, 0, 1000, 0);
	tp_put8(&p, TP_COUNTER_ID, 0);
	expect_time(&p, (uint64_t)1 << 32, 1001, 0);
}
END_TEST

START_TEST(test_erange_shift)
{
	struct testpage p;

	for (unsigned s = 64; s < 256; s++) {
		base_page(&p, 0, 1, (uint8_t)s, 1000, 0);
		expect_errno(&p, 0, ERANGE);
		expect_errno(&p, 1, ERANGE);
	}
	base_page(&p, 0, 1, 63, 1000, 0);
	expect_time(&p, 0, 1000, 0);
}
END_TEST

START_TEST(test_erange_seconds)
{
	struct testpage p;
	const uint64_t top = (uint64_t)INT64_MAX - 32768;

	base_page(&p, 0, (uint64_t)1 << 32, 0, top, UINT64_MAX);
	expect_time(&p, 0, (int64_t)top, 999999999);
	expect_errno(&p, 1, ERANGE); /* carries into top + 1 */
	base_page(&p, 0, 1, 0, top + 1, 0);
	expect_errno(&p, 0, ERANGE);
	base_page(&p, 0, 1, 0, UINT64_MAX, 0);
	expect_errno(&p, 0, ERANGE);
	/* Past 2^128 in the 128-bit sum. */
	base_page(&p, 0, UINT64_MAX, 0, UINT64_MAX, UINT64_MAX);
	expect_errno(&p, (uint64_t)1 << 62, ERANGE);
	/* Backwards from a little above: fits again. */
	base_page(&p, 100, (uint64_t)1 << 32, 0, top + 1, 0);
	expect_time(&p, 99, (int64_t)top, 999999999);
	/* A TAI page at the top with an offset still fits. */
	base_page(&p, 0, 1, 0, top, 0);
	tp_put8(&p, TP_TIME_TYPE, 1);
	tp_put16(&p, TP_TAI_OFFSET, (uint16_t)-37);
	tp_put64(&p, TP_FLAGS, VMCLOCK_FLAG_TAI_OFFSET_VALID);
	check_one(&p, 0, "tai at the top");
}
END_TEST

/* ---- random pages ---------------------------------------------------------- */

static uint64_t pick(uint64_t *st, uint64_t n)
{
	return tp_rand64(st) % n;
}

/* A value of random magnitude: uniform bits shifted right by 0..63. */
static uint64_t scaled(uint64_t *st)
{
	return tp_rand64(st) >> pick(st, 64);
}

static void random_page(uint64_t *st, struct testpage *p, uint64_t *counter)
{
	static const uint8_t ids[] = { 0, 1, 1, 1, 0xff };
	uint64_t anchor = tp_rand64(st), delta;
	uint8_t shift;

	tp_init(p);
	tp_put8(p, TP_COUNTER_ID, ids[pick(st, sizeof(ids))]);
	tp_put8(p, TP_TIME_TYPE, (uint8_t)pick(st, 4));
	tp_put32(p, TP_SEQ_COUNT, (uint32_t)tp_rand64(st) & ~1u);
	tp_put64(p, TP_MARKER, tp_rand64(st));
	tp_put64(p, TP_FLAGS, tp_rand64(st) & 0x3ff);
	tp_put8(p, TP_STATUS, (uint8_t)pick(st, 6));
	tp_put8(p, TP_SMEARING, (uint8_t)pick(st, 4));
	tp_put16(p, TP_TAI_OFFSET, (uint16_t)tp_rand64(st));
	tp_put8(p, TP_LEAP, (uint8_t)pick(st, 6));
	switch (pick(st, 6)) {
	case 0: shift = 0; break;
	case 1: shift = 63; break;
	case 2: shift = (uint8_t)pick(st, 33); break;
	case 3: shift = (uint8_t)(64 + pick(st, 192)); break;
	default: shift = (uint8_t)pick(st, 64); break;
	}
	tp_put8(p, TP_SHIFT, shift);
	tp_put64(p, TP_COUNTER, anchor);
	switch (pick(st, 3)) {
	case 0: tp_put64(p, TP_PERIOD, tp_rand64(st)); break;
	case 1: tp_put64(p, TP_PERIOD, scaled(st)); break;
	default: /* about 1/3 ns per tick at this shift, where that fits */
		tp_put64(p, TP_PERIOD, shift < 31 ? (uint64_t)6148914691ull << shift : scaled(st));
		break;
	}
	tp_put64(p, TP_PERIOD_ESTERR, pick(st, 8) ? scaled(st) : 0);
	tp_put64(p, TP_PERIOD_MAXERR, pick(st, 8) ? scaled(st) : UINT64_MAX);
	switch (pick(st, 4)) {
	case 0: tp_put64(p, TP_TIME_SEC, tp_rand64(st)); break;
	case 1: tp_put64(p, TP_TIME_SEC, (uint64_t)INT64_MAX - 32768 - pick(st, 3) + 1); break;
	default: tp_put64(p, TP_TIME_SEC, scaled(st) >> 1); break;
	}
	tp_put64(p, TP_TIME_FRAC, tp_rand64(st));
	tp_put64(p, TP_TIME_ESTERR, pick(st, 10) ? scaled(st) : UINT64_MAX);
	tp_put64(p, TP_TIME_MAXERR, pick(st, 10) ? scaled(st) : UINT64_MAX - pick(st, 3));
	tp_put64(p, TP_GENERATION, tp_rand64(st));

	switch (pick(st, 5)) {
	case 0: delta = pick(st, 1u << 20) - (1u << 19); break;
	case 1: delta = scaled(st); break;
	case 2: delta = 0 - scaled(st); break;
	case 3: delta = tp_rand64(st); break;
	default: delta = pick(st, 3) - 1; break;
	}
	/* Sometimes make the counter wrap past 2^64 on its way. */
	if (pick(st, 8) == 0) {
		anchor = UINT64_MAX - pick(st, 1u << 16);
		tp_put64(p, TP_COUNTER, anchor);
		delta = pick(st, 1u << 20) + (1u << 16);
	}
	*counter = anchor + delta;
}

START_TEST(test_random)
{
	uint64_t seed = tp_seed() + (uint64_t)_i * 0x9e3779b97f4a7c15ull, st = seed;
	unsigned ok = 0, nodata = 0, range = 0;
	char what[96];

	for (int i = 0; i < RANDOM_ROUNDS; i++) {
		struct testpage p;
		uint64_t counter;
		int r;

		random_page(&st, &p, &counter);
		snprintf(what, sizeof(what), "VMCLOCK_TEST_SEED=%" PRIu64 " loop %d round %d",
			 tp_seed(), _i, i);
		r = check_one(&p, counter, what);
		ok += r == 0;
		nodata += r == ENODATA;
		range += r == ERANGE;
	}
	/* Each outcome was exercised, so the comparison was not vacuous. */
	ck_assert_uint_gt(ok, RANDOM_ROUNDS / 4);
	ck_assert_uint_gt(nodata, RANDOM_ROUNDS / 20);
	ck_assert_uint_gt(range, RANDOM_ROUNDS / 20);
}
END_TEST

/* Realistic pages (1-4 GHz counters, shifts that keep full precision, errors
 * of ns and ppb) over deltas of up to days, both ways. */
START_TEST(test_random_realistic)
{
	uint64_t st = tp_seed() ^ 0x5eed5eed5eed5eedull;
	char what[96];

	for (int i = 0; i < RANDOM_ROUNDS / 2; i++) {
		struct testpage p;
		uint8_t shift = (uint8_t)(pick(&st, 30));
		/* 1/f s per tick with f in [1, 4] GHz. */
		uint64_t hz = 1000000000u + pick(&st, 3000000000u);
		uint64_t period = (uint64_t)((((unsigned __int128)1 << (64 + shift)) / hz));
		uint64_t anchor = tp_rand64(&st);
		uint64_t ticks = pick(&st, hz * 86400 * 3);
		uint64_t counter = pick(&st, 2) ? anchor + ticks : anchor - ticks;

		tp_init_time(&p, 1, anchor, period, shift, 1700000000 + pick(&st, 1u << 30),
			     tp_rand64(&st));
		tp_put64(&p, TP_PERIOD_ESTERR, period / 1000000000 * pick(&st, 100));
		tp_put64(&p, TP_PERIOD_MAXERR, period / 1000000 * pick(&st, 100));
		tp_put64(&p, TP_TIME_ESTERR, pick(&st, 100000));
		tp_put64(&p, TP_TIME_MAXERR, pick(&st, 1000000));
		snprintf(what, sizeof(what), "VMCLOCK_TEST_SEED=%" PRIu64 " realistic round %d",
			 tp_seed(), i);
		ck_assert_int_eq(check_one(&p, counter, what), 0);
	}
}
END_TEST

Suite *convert_suite(void)
{
	Suite *s = suite_create("convert");
	TCase *tc = tcase_create("fixed");

	tcase_add_test(tc, test_reference_bignum);
	tcase_add_test(tc, test_zero_period_no_time);
	tcase_add_test(tc, test_shift0);
	tcase_add_test(tc, test_large_shift);
	tcase_add_test(tc, test_nsec_truncation);
	tcase_add_test(tc, test_counter_wrap);
	tcase_add_test(tc, test_counter_behind);
	tcase_add_test(tc, test_error_bounds);
	tcase_add_test(tc, test_error_flags);
	tcase_add_test(tc, test_error_unknown_and_saturation);
	tcase_add_test(tc, test_error_ceil_carry);
	tcase_add_test(tc, test_tai);
	tcase_add_test(tc, test_utc_ignores_tai_offset);
	tcase_add_test(tc, test_phc_offset);
	tcase_add_test(tc, test_monotonic);
	tcase_add_test(tc, test_enodata);
	tcase_add_test(tc, test_erange_shift);
	tcase_add_test(tc, test_erange_seconds);
	suite_add_tcase(s, tc);

	tc = tcase_create("random");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_random, 0, 4);
	tcase_add_test(tc, test_random_realistic);
	suite_add_tcase(s, tc);
	return s;
}
