/* SPDX-License-Identifier: BSD-2-Clause
 *
 * convert.h - counter reading to time and error bounds, integer only.
 *
 * The page gives time as a linear function of the counter:
 *   T = time_sec + (time_frac_sec + (delta * period >> shift)) / 2^64
 * with delta = counter - counter_value and period in units of
 * 2^-(64+shift) s.  As in ptp_vmclock the product is 128 bits wide and the
 * nanoseconds are the fraction times 10^9, truncated.  Unlike the kernel, a
 * counter slightly *behind* counter_value (delta negative as a signed 64-bit
 * number) converts backwards instead of to a date centuries ahead; the two
 * agree for every delta below 2^63 ticks, which covers counter wrap.
 *
 * No floating point anywhere here: the daemon's samples and the library's
 * bounds come from this file.  Static inline, because vmclock_gettime()
 * must cost about what clock_gettime() does: a call through the PLT and an
 * out-of-line bound computation were a third of it.
 */
#ifndef VMCLOCK_CONVERT_H
#define VMCLOCK_CONVERT_H

#include <errno.h>
#include <stdbool.h>

#include "vmclock.h"
#include "../common/timeutil.h"

_Static_assert(VMCLOCK_ERROR_UNKNOWN == UINT64_MAX, "TIM_AddBound's no bound");

/* Larger shifts would make the period finer than 2^-127 s: not a clock. */
#define MAX_PERIOD_SHIFT 63u

/* tai_offset_sec is UTC - TAI, as ptp_vmclock applies it: -37 since 2017.
 * TAI has led UTC by at least 10 s since 1972, so an offset outside this
 * window is a host's mistake (most likely +37, TAI - UTC, read from the
 * ABI's prose), which would put UTC 74 s ahead with a nanosecond bound: such
 * a page has no UTC. */
#define TAI_OFFSET_MIN_SEC (-99)
#define TAI_OFFSET_MAX_SEC (-10)

/*
 * ceil(ticks * rate * 10^9 / 2^(64 + shift)), saturating just below
 * VMCLOCK_ERROR_UNKNOWN.  The product times 10^9 is formed exactly in 192
 * bits (w2:w1:w0) before the division, so that no remainder is lost and a
 * bound is never rounded down.  A product ticks * rate below 2^64, the
 * usual case (an hour of a 3 GHz counter at 1 ppm is about 2^45), needs
 * only 128 bits and one more multiplication, with the same result.
 */
static inline __attribute__((always_inline)) uint64_t convert_ticks_to_ns_ceil(uint64_t ticks, uint64_t rate, unsigned shift)
{
	u128 p = (u128)ticks * rate;

	if (__builtin_expect(!(uint64_t)(p >> 64), 1)) {
		u128 x = (u128)(uint64_t)p * NSEC_PER_SEC; /* below 2^94 */

		/* ceil(ceil(x / 2^64) / 2^shift): the high word is below 2^30,
		 * so adding the remainder's carry and 2^shift - 1 cannot wrap. */
		return ((uint64_t)(x >> 64) + ((uint64_t)x != 0) + ((1ull << shift) - 1)) >> shift;
	}

	u128 lo = (u128)(uint64_t)p * NSEC_PER_SEC;
	u128 hi = (u128)(uint64_t)(p >> 64) * NSEC_PER_SEC;
	u128 mid = (lo >> 64) + (uint64_t)hi;
	uint64_t w0 = (uint64_t)lo, w1 = (uint64_t)mid;
	uint64_t w2 = (uint64_t)(hi >> 64) + (uint64_t)(mid >> 64);
	u128 q = (((u128)w2 << 64) | w1) >> shift;
	bool inexact = w0 || (shift && (w1 & ((1ull << shift) - 1)));

	if (q >= VMCLOCK_ERROR_UNKNOWN - 1)
		return VMCLOCK_ERROR_UNKNOWN - 1;
	return (uint64_t)q + inexact;
}

/* A page error plus its growth since the anchor, or UNKNOWN. */
static inline __attribute__((always_inline)) uint64_t grown_error(uint64_t flags, uint64_t time_flag, uint64_t rate_flag,
			    uint64_t time_err, uint64_t rate, uint64_t ticks, unsigned shift)
{
	uint64_t growth;

	if (!(flags & time_flag) || time_err == VMCLOCK_ERROR_UNKNOWN)
		return VMCLOCK_ERROR_UNKNOWN;
	if (ticks == 0)
		return time_err;
	/* Without a period error the bound cannot be carried forward. */
	if (!(flags & rate_flag))
		return VMCLOCK_ERROR_UNKNOWN;
	growth = convert_ticks_to_ns_ceil(ticks, rate, shift);
	return TIM_AddKnownBound(time_err, growth);
}

/*
 * How fast a page error grows with elapsed time, in parts per billion:
 * ceil(rate * 10^9 / period), the error rate and the counter period being in
 * the same units (2^-(64 + shift) s per tick), so that the shift cancels.
 * grown_error() adds this growth tick by tick; this is the same rate per
 * second, for whoever grows a bound without a counter (vmclockd's published
 * drift).  UINT32_MAX (no useful bound) when the rate is not valid, the
 * period zero, or the rate beyond 32 bits of ppb.
 */
static inline uint32_t convert_rate_ppb_ceil(uint64_t flags, uint64_t rate_flag, uint64_t rate,
					     uint64_t period)
{
	u128 ppb;

	if (!(flags & rate_flag) || period == 0)
		return UINT32_MAX;
	ppb = ((u128)rate * NSEC_PER_SEC + period - 1) / period;
	return ppb >= UINT32_MAX ? UINT32_MAX : (uint32_t)ppb;
}

/*
 * Whether a page copy carries time at all, whatever the CPU: the one
 * predicate behind vmclock_has_time(), vmclock_convert() and the daemon's
 * policy.  No time: an invalid counter, an unreliable clock, or a zero
 * counter period (a frozen clock, whose time_sec would be fed as now).
 */
static inline bool convert_has_time(const struct vmclock_abi *page)
{
	return page->counter_id != VMCLOCK_COUNTER_INVALID &&
	       page->clock_status != VMCLOCK_STATUS_UNRELIABLE &&
	       vmclock_le64(page->counter_period_frac_sec) != 0;
}

/* convert_page() of a page copy that has time and a sane shift. */
static inline __attribute__((always_inline)) int convert_usable_page(const struct vmclock_abi *page,
								      uint64_t counter,
								      struct vmclock_time *out)
{
	uint64_t flags = vmclock_le64(page->flags);
	uint64_t anchor = vmclock_le64(page->counter_value);
	uint64_t period = vmclock_le64(page->counter_period_frac_sec);
	unsigned shift = page->counter_period_shift;
	int64_t delta = (int64_t)(counter - anchor);
	uint64_t ticks = delta < 0 ? 0 - (uint64_t)delta : (uint64_t)delta;
	u128 t0, step, t;
	uint64_t sec, frac;

	t0 = ((u128)vmclock_le64(page->time_sec) << 64) | vmclock_le64(page->time_frac_sec);
	step = ((u128)ticks * period) >> shift;
	if (delta >= 0) {
		t = t0 + step;
		if (t < t0) {
			errno = ERANGE;
			return -1;
		}
	} else {
		if (step > t0) {
			errno = ERANGE;
			return -1;
		}
		t = t0 - step;
	}
	sec = (uint64_t)(t >> 64);
	frac = (uint64_t)t;
	if (sec > (uint64_t)INT64_MAX - 0x8000u) { /* room for the TAI offset */
		errno = ERANGE;
		return -1;
	}

	out->sec = (int64_t)sec;
	out->nsec = (uint32_t)(((u128)frac * NSEC_PER_SEC) >> 64);
	out->time_type = page->time_type;
	out->utc_valid = false;
	out->utc_sec = 0;
	if (page->time_type == VMCLOCK_TIME_UTC) {
		out->utc_valid = true;
		out->utc_sec = out->sec;
	} else if (page->time_type == VMCLOCK_TIME_TAI && (flags & VMCLOCK_FLAG_TAI_OFFSET_VALID)) {
		int16_t tai_offset = (int16_t)vmclock_le16((uint16_t)page->tai_offset_sec);

		if (tai_offset >= TAI_OFFSET_MIN_SEC && tai_offset <= TAI_OFFSET_MAX_SEC) {
			out->utc_valid = true;
			out->utc_sec = out->sec + tai_offset;
		}
	}
	out->utc_nsec = out->utc_valid ? out->nsec : 0;

	out->esterror_ns = grown_error(flags, VMCLOCK_FLAG_TIME_ESTERROR_VALID,
				       VMCLOCK_FLAG_PERIOD_ESTERROR_VALID,
				       vmclock_le64(page->time_esterror_nanosec),
				       vmclock_le64(page->counter_period_esterror_rate_frac_sec),
				       ticks, shift);
	out->maxerror_ns = grown_error(flags, VMCLOCK_FLAG_TIME_MAXERROR_VALID,
				       VMCLOCK_FLAG_PERIOD_MAXERROR_VALID,
				       vmclock_le64(page->time_maxerror_nanosec),
				       vmclock_le64(page->counter_period_maxerror_rate_frac_sec),
				       ticks, shift);
	out->clock_status = page->clock_status;
	out->leap_indicator = page->leap_indicator;
	out->leap_second_smearing_hint = page->leap_second_smearing_hint;
	out->flags = flags;
	out->disruption_marker = vmclock_le64(page->disruption_marker);
	out->vm_generation_counter = vmclock_le64(page->vm_generation_counter);
	out->seq_count = vmclock_le32(page->seq_count);
	out->counter = counter;
	out->counter_period_frac_sec = period;
	out->counter_period_shift = (uint8_t)shift;
	return 0;
}

static inline __attribute__((always_inline)) int convert_page(const struct vmclock_abi *page, uint64_t counter,
			       struct vmclock_time *out)
{
	if (!convert_has_time(page)) {
		errno = ENODATA;
		return -1;
	}
	if (page->counter_period_shift > MAX_PERIOD_SHIFT) {
		errno = ERANGE;
		return -1;
	}
	return convert_usable_page(page, counter, out);
}

#endif /* VMCLOCK_CONVERT_H */
