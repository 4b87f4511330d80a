/* SPDX-License-Identifier: BSD-2-Clause
 *
 * check_bound.c - the bound vmclockd publishes (daemon/bound.c): chronyd's
 * figures plus the page's own error, held while chronyd may hold the
 * samples; a measurement that contradicts them replaces them; saturation at
 * the extremes, and the time helpers' two saturating sums; the page's error
 * rate in ppb (refclock/convert.h); and a bound's growth prepared once per
 * second (TIM_PrepareGrowth), as readers of the published bound grow it.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>

#include <check.h>

#include "vmclock.h"
#include "vmclockd-state.h"
#include "../common/timeutil.h"
#include "../refclock/convert.h"
#include "../daemon/bound.h"
#include "testpage.h"
#include "checkrun.h"

#define T0 1800000000000000000ull /* realtime ns */
#define M0 1000000000000ull       /* monotonic ns */
#define HOLD_NS ((uint64_t)BND_HOLD_S * NSEC_PER_SEC)

static BND_Chrony synced(uint64_t bound_ns)
{
	return (BND_Chrony){ .sync_state = VMCLOCKD_SYNC_SYNCHRONIZED, .bound_ns = bound_ns,
			     .bound_realtime_ns = T0, .drift_ppb = 1000 };
}

static BND_Sample sample(int64_t offset_ns, uint64_t error_ns)
{
	return (BND_Sample){ .realtime_ns = T0 + 50000000, .offset_ns = offset_ns,
			     .uncertainty_ns = 100, .error_ns = error_ns, .error_ppb = 50 };
}

START_TEST(page_error_is_added)
{
	BND_Held h = { 0 };
	BND_Chrony c = synced(3000);
	BND_Sample s = sample(20000, 80100);
	BND_Published p;

	BND_Fed(&h, &s, M0);
	p = BND_Combine(&c, &h, &s);
	ck_assert(!p.contradicted);
	ck_assert_uint_eq(p.sync_state, VMCLOCKD_SYNC_SYNCHRONIZED);
	ck_assert_uint_eq(p.bound_ns, 3000 + 80100);
	ck_assert_uint_eq(p.bound_realtime_ns, T0);
	ck_assert_uint_eq(p.drift_ppb, 1000 + 50);
}
END_TEST

START_TEST(nothing_fed_nothing_added)
{
	BND_Held h = { 0 };
	BND_Chrony c = synced(3000);
	BND_Published p = BND_Combine(&c, &h, NULL);

	ck_assert_uint_eq(p.bound_ns, 3000);
	ck_assert_uint_eq(p.drift_ppb, 1000);
	ck_assert_uint_eq(p.sync_state, VMCLOCKD_SYNC_SYNCHRONIZED);
}
END_TEST

/* The page stops vouching: nothing more is fed, chronyd still holds the
 * samples, and their error stays in the bound however long that lasts. */
START_TEST(held_after_the_page_stops_vouching)
{
	BND_Held h = { 0 };
	BND_Chrony c = synced(3000);
	BND_Sample s = sample(0, 90000);
	BND_Published p;

	BND_Fed(&h, &s, M0);
	p = BND_Combine(&c, &h, NULL);
	ck_assert_uint_eq(p.bound_ns, 93000);
	/* chronyd lost the source: its last bound left to grow, unsynchronised. */
	c.sync_state = VMCLOCKD_SYNC_UNSYNCHRONIZED;
	p = BND_Combine(&c, &h, NULL);
	ck_assert_uint_eq(p.bound_ns, 93000);
	ck_assert_uint_eq(p.drift_ppb, 1050);
}
END_TEST

/* A large error leaves the held figure no sooner than BND_HOLD_S of feeding
 * after it, and no later than twice that. */
START_TEST(held_for_a_window_while_fed)
{
	BND_Held h = { 0 };
	BND_Chrony c = synced(0);
	BND_Sample big = sample(0, 100000), small = sample(0, 1000);

	BND_Fed(&h, &big, M0);
	BND_Fed(&h, &small, M0 + HOLD_NS - 1);
	ck_assert_uint_eq(BND_Combine(&c, &h, &small).bound_ns, 100000);
	BND_Fed(&h, &small, M0 + HOLD_NS); /* a new window: the big one is the last one's */
	ck_assert_uint_eq(BND_Combine(&c, &h, &small).bound_ns, 100000);
	BND_Fed(&h, &small, M0 + 2 * HOLD_NS - 1);
	ck_assert_uint_eq(BND_Combine(&c, &h, &small).bound_ns, 100000);
	BND_Fed(&h, &small, M0 + 2 * HOLD_NS);
	ck_assert_uint_eq(BND_Combine(&c, &h, &small).bound_ns, 1000);
}
END_TEST

/* The page steps 5 ms (or the realtime clock does) while chronyd's figures
 * say a few microseconds: they are not published. */
START_TEST(measurement_disproves_chrony)
{
	BND_Held h = { 0 };
	BND_Chrony c = synced(3000);
	BND_Sample s = sample(-5000000, 80100);
	BND_Published p;

	BND_Fed(&h, &s, M0);
	p = BND_Combine(&c, &h, &s);
	ck_assert(p.contradicted);
	ck_assert_uint_eq(p.sync_state, VMCLOCKD_SYNC_UNSYNCHRONIZED);
	ck_assert_uint_eq(p.bound_ns, 5000000 + 80100);
	ck_assert_uint_eq(p.bound_realtime_ns, s.realtime_ns);
	ck_assert_uint_eq(p.drift_ppb, 1050);
	/* Unsynchronised already (chronyd's last real bound): the same. */
	c.sync_state = VMCLOCKD_SYNC_UNSYNCHRONIZED;
	p = BND_Combine(&c, &h, &s);
	ck_assert(p.contradicted);
	ck_assert_uint_eq(p.sync_state, VMCLOCKD_SYNC_UNSYNCHRONIZED);
	ck_assert_uint_eq(p.bound_ns, 5080100);
}
END_TEST

/* Exactly at the edge: |o| - u equal to the bound at the measurement's
 * instant agrees; a nanosecond more does not. */
START_TEST(measurement_edge)
{
	BND_Held h = { 0 };
	BND_Chrony c = synced(3000);
	BND_Sample s = sample(0, 80100);
	/* 50 ms after chronyd's reading at 1050 ppb: 52.5 ns of growth. */
	uint64_t at = TIM_GrowBound(3000 + 80100, 50000000, 1050);
	BND_Published p;

	ck_assert_uint_eq(at, 83100 + 53); /* 52.5 rounded up */
	BND_Fed(&h, &s, M0);
	s.offset_ns = (int64_t)(at + s.uncertainty_ns);
	p = BND_Combine(&c, &h, &s);
	ck_assert(!p.contradicted);
	ck_assert_uint_eq(p.bound_ns, 83100);
	s.offset_ns++;
	p = BND_Combine(&c, &h, &s);
	ck_assert(p.contradicted);
	ck_assert_uint_eq(p.sync_state, VMCLOCKD_SYNC_UNSYNCHRONIZED);
	s.offset_ns = -s.offset_ns;
	ck_assert(BND_Combine(&c, &h, &s).contradicted);
	/* Within the uncertainty of zero: never a contradiction. */
	s.offset_ns = 100;
	ck_assert(!BND_Combine(&c, &h, &s).contradicted);
}
END_TEST

/* No bound from chronyd, or a disruption: nothing to add or to disprove. */
START_TEST(unknown_and_disrupted_untouched)
{
	BND_Held h = { 0 };
	BND_Chrony c = synced(VMCLOCKD_BOUND_UNKNOWN);
	BND_Sample s = sample(-5000000, 80100);
	BND_Published p;

	c.sync_state = VMCLOCKD_SYNC_UNSYNCHRONIZED;
	c.drift_ppb = UINT32_MAX;
	BND_Fed(&h, &s, M0);
	p = BND_Combine(&c, &h, &s);
	ck_assert(!p.contradicted);
	ck_assert_uint_eq(p.bound_ns, VMCLOCKD_BOUND_UNKNOWN);
	ck_assert_uint_eq(p.drift_ppb, UINT32_MAX);
	c = synced(3000);
	c.sync_state = VMCLOCKD_SYNC_DISRUPTED;
	p = BND_Combine(&c, &h, &s);
	ck_assert(!p.contradicted);
	ck_assert_uint_eq(p.sync_state, VMCLOCKD_SYNC_DISRUPTED);
}
END_TEST

/* A page error near 2^64 saturates to no bound, never wraps to a small one;
 * so do drifts. */
START_TEST(saturation)
{
	BND_Held h = { 0 };
	BND_Chrony c = synced(3000);
	BND_Sample s = sample(0, UINT64_MAX - 1000);
	BND_Published p;

	s.error_ppb = UINT32_MAX - 10;
	BND_Fed(&h, &s, M0);
	p = BND_Combine(&c, &h, &s);
	ck_assert_uint_eq(p.bound_ns, UINT64_MAX);
	ck_assert_uint_eq(p.drift_ppb, UINT32_MAX);
	ck_assert(!p.contradicted);
	s.error_ns = UINT64_MAX;
	s.offset_ns = INT64_MIN;
	h = (BND_Held){ 0 };
	BND_Fed(&h, &s, M0);
	ck_assert_uint_eq(BND_Combine(&c, &h, &s).bound_ns, UINT64_MAX);
	ck_assert_uint_eq(TIM_GrowBound(UINT64_MAX - 5, 1000000000, 1000), UINT64_MAX);
	ck_assert_uint_eq(TIM_GrowBound(7, (uint64_t)1 << 40, UINT32_MAX),
			  7 + (uint64_t)(((u128)((uint64_t)1 << 40) * UINT32_MAX + 999999999) /
					 1000000000));
}
END_TEST

/* The two saturating sums of common/timeutil.h at their edges: a sum past
 * 64 bits (which would wrap to a small bound) is no bound for one, the
 * largest known bound for the other; neither moves a sum that fits. */
START_TEST(saturating_sums)
{
	const uint64_t half = (uint64_t)1 << 63, largest = UINT64_MAX - 1;

	ck_assert_uint_eq(TIM_AddBound(0, 0), 0);
	ck_assert_uint_eq(TIM_AddBound(5, 7), 12);
	ck_assert_uint_eq(TIM_AddBound(UINT64_MAX - 1, 1), UINT64_MAX);
	ck_assert_uint_eq(TIM_AddBound(1, UINT64_MAX - 1), UINT64_MAX);
	ck_assert_uint_eq(TIM_AddBound(UINT64_MAX - 2, 1), UINT64_MAX - 1);
	ck_assert_uint_eq(TIM_AddBound(UINT64_MAX - 1, 2), UINT64_MAX);
	ck_assert_uint_eq(TIM_AddBound(half, half), UINT64_MAX);
	ck_assert_uint_eq(TIM_AddBound(INT64_MAX, INT64_MAX), UINT64_MAX - 1);
	ck_assert_uint_eq(TIM_AddBound(UINT64_MAX, 0), UINT64_MAX);
	ck_assert_uint_eq(TIM_AddBound(0, UINT64_MAX), UINT64_MAX);
	ck_assert_uint_eq(TIM_AddBound(UINT64_MAX, UINT64_MAX), UINT64_MAX);

	ck_assert_uint_eq(TIM_AddKnownBound(0, 0), 0);
	ck_assert_uint_eq(TIM_AddKnownBound(5, 7), 12);
	ck_assert_uint_eq(TIM_AddKnownBound(UINT64_MAX - 3, 1), UINT64_MAX - 2);
	ck_assert_uint_eq(TIM_AddKnownBound(UINT64_MAX - 2, 1), largest);
	ck_assert_uint_eq(TIM_AddKnownBound(UINT64_MAX - 2, 2), largest);
	ck_assert_uint_eq(TIM_AddKnownBound(largest, 0), largest);
	ck_assert_uint_eq(TIM_AddKnownBound(0, largest), largest);
	ck_assert_uint_eq(TIM_AddKnownBound(half, half), largest);
	ck_assert_uint_eq(TIM_AddKnownBound(INT64_MAX, INT64_MAX), largest);
	ck_assert_uint_eq(TIM_AddKnownBound(INT64_MAX, INT64_MAX - 1), UINT64_MAX - 2);
	ck_assert_uint_eq(TIM_AddKnownBound(UINT64_MAX, 0), largest);
	ck_assert_uint_eq(TIM_AddKnownBound(0, UINT64_MAX), largest);
	ck_assert_uint_eq(TIM_AddKnownBound(UINT64_MAX, UINT64_MAX), largest);
	ck_assert_uint_eq(TIM_AddKnownBound(1, UINT64_MAX), largest);
}
END_TEST

/* The page's maximum error rate as ppb of elapsed time: exact, rounded up,
 * unknown without the valid flag. */
START_TEST(rate_in_ppb)
{
	const uint64_t f = VMCLOCK_FLAG_PERIOD_MAXERROR_VALID;
	const uint64_t period = 18446744073ull; /* ~1 ns per tick, shift 0 */

	ck_assert_uint_eq(convert_rate_ppb_ceil(f, f, period / 20000000, period), 50);
	ck_assert_uint_eq(convert_rate_ppb_ceil(f, f, period / 20000000 + 1, period), 51);
	ck_assert_uint_eq(convert_rate_ppb_ceil(f, f, 0, period), 0);
	ck_assert_uint_eq(convert_rate_ppb_ceil(0, f, period / 20000000, period), UINT32_MAX);
	ck_assert_uint_eq(convert_rate_ppb_ceil(f, f, 1, 0), UINT32_MAX);
	ck_assert_uint_eq(convert_rate_ppb_ceil(f, f, UINT64_MAX, 1), UINT32_MAX);
	ck_assert_uint_eq(convert_rate_ppb_ceil(f, f, period * 4, period), 4000000000u);
}
END_TEST

/* One instant's bound from a TIM_Growth, against TIM_GrowBound. */
static void growth_at(uint64_t bound, uint64_t at, uint32_t ppb, uint64_t sec, uint64_t nsec)
{
	uint64_t now = sec * NSEC_PER_SEC + nsec, want;
	struct TIM_Growth g;

	ck_assert(TIM_PrepareGrowth(bound, at, ppb, sec, &g));
	want = TIM_GrowBound(bound, now - at, ppb);
	if (want == UINT64_MAX)
		return; /* saturated: outside what a TIM_Growth promises */
	ck_assert_msg(TIM_GrownAt(g.m, g.c_lo, g.c_hi, nsec) == want,
		      "bound %" PRIu64 " at %" PRIu64 " ppb %" PRIu32 " sec %" PRIu64
		      " nsec %" PRIu64 ": %" PRIu64 ", TIM_GrowBound %" PRIu64, bound, at, ppb, sec,
		      nsec, TIM_GrownAt(g.m, g.c_lo, g.c_hi, nsec), want);
}

/* A bound prepared once per second (what vmclock_timestamp() does once per
 * view) equals TIM_GrowBound at every instant of that second after its
 * instant: at growths that are whole nanoseconds (where a rounding error
 * would show), at the ends of the second and of the rates, and at random. */
START_TEST(growth_prepared_once)
{
	static const uint32_t rates[] = { 0, 1, 2, 8, 1000, 3333, 125000000, 500000000, 999999999 };
	const uint64_t sec = T0 / NSEC_PER_SEC;
	uint64_t st = tp_seed();
	struct TIM_Growth g;

	for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
		uint32_t ppb = rates[i];

		for (uint64_t nsec = 0; nsec < 3000; nsec++) {
			growth_at(25000, T0, ppb, sec, nsec);
			growth_at(0, T0 - 7 * NSEC_PER_SEC, ppb, sec, nsec);
			growth_at(999999999, T0 + 1500, ppb, sec, nsec + 1500);
		}
		/* Growths of exactly k ns: age k * 10^9 / ppb. */
		for (uint64_t k = 1; ppb && k < 2000; k++)
			if (k * NSEC_PER_SEC % ppb == 0 && k * NSEC_PER_SEC / ppb < NSEC_PER_SEC)
				growth_at(12345, T0, ppb, sec, k * NSEC_PER_SEC / ppb);
		growth_at(7, 0, ppb, sec, 999999999);
		growth_at(7, T0 + 999999999, ppb, sec, 999999999);
		growth_at(7, 0, ppb, 0, 999999999);
	}
	for (int i = 0; i < 200000; i++) {
		uint32_t ppb = (uint32_t)(tp_rand64(&st) % NSEC_PER_SEC) >> (tp_rand64(&st) % 31);
		uint64_t bound = tp_rand64(&st) >> (tp_rand64(&st) % 64);
		uint64_t back = tp_rand64(&st) >> (tp_rand64(&st) % 63 + 1);
		uint64_t s = T0 / NSEC_PER_SEC + tp_rand64(&st) % 100000000;
		uint64_t nsec = tp_rand64(&st) % NSEC_PER_SEC, now = s * NSEC_PER_SEC + nsec;

		growth_at(bound, back < now ? now - back : 0, ppb, s, nsec);
	}
	/* Nothing prepared for a rate that does not fit, or a second that
	 * ends before the bound's instant. */
	ck_assert(!TIM_PrepareGrowth(1, T0, NSEC_PER_SEC, sec, &g));
	ck_assert(!TIM_PrepareGrowth(1, T0 + NSEC_PER_SEC, 1000, sec, &g));
	ck_assert(TIM_PrepareGrowth(1, T0 + NSEC_PER_SEC - 1, 1000, sec, &g));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("bound");
	TCase *tc = tcase_create("published bound");

	tcase_add_test(tc, page_error_is_added);
	tcase_add_test(tc, nothing_fed_nothing_added);
	tcase_add_test(tc, held_after_the_page_stops_vouching);
	tcase_add_test(tc, held_for_a_window_while_fed);
	tcase_add_test(tc, measurement_disproves_chrony);
	tcase_add_test(tc, measurement_edge);
	tcase_add_test(tc, unknown_and_disrupted_untouched);
	tcase_add_test(tc, saturation);
	tcase_add_test(tc, saturating_sums);
	tcase_add_test(tc, rate_in_ppb);
	tcase_add_test(tc, growth_prepared_once);
	suite_add_tcase(s, tc);
	return CR_Run(s, CK_FORK_GETENV);
}
