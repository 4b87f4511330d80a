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
 * An error rate (units of 2^-(64 + shift) s per tick) times 10^9, exact:
 * below 2^94, as two words.  What a bound multiplies the ticks by.
 */
struct convert_rate {
	uint64_t lo, hi;
};

static inline struct convert_rate convert_rate_ns(uint64_t rate)
{
	u128 r = (u128)rate * NSEC_PER_SEC;

	return (struct convert_rate){ (uint64_t)r, (uint64_t)(r >> 64) };
}

/*
 * ceil(ticks * rate_ns / 2^(64 + shift)), rate_ns a convert_rate_ns(), or
 * UINT64_MAX where it does not fit.  The product is formed exactly
 * (w2:w1:w0, 192 bits) before the division, so that no remainder is lost
 * and a bound is never rounded down.  A rate_ns below 2^64 (a page with a
 * small shift) needs one multiplication, with the same result.  shift is
 * at most 63.
 */
static inline __attribute__((always_inline)) uint64_t convert_growth_ceil(uint64_t ticks,
									struct convert_rate rate_ns,
									unsigned shift)
{
	uint64_t mask = (1ull << shift) - 1, w0, w1, q, growth;

	if (__builtin_expect(rate_ns.hi == 0, 1)) {
		u128 x = (u128)ticks * rate_ns.lo;

		w0 = (uint64_t)x;
		w1 = (uint64_t)(x >> 64);
		q = w1 >> shift;
	} else {
		u128 lo = (u128)ticks * rate_ns.lo;
		u128 hi = (u128)ticks * rate_ns.hi;
		u128 mid = (lo >> 64) + (uint64_t)hi;
		uint64_t w2 = (uint64_t)(hi >> 64) + (uint64_t)(mid >> 64);

		w0 = (uint64_t)lo;
		w1 = (uint64_t)mid;
		if (w2 >> shift)
			return UINT64_MAX;
		q = (uint64_t)((((u128)w2 << 64) | w1) >> shift);
	}
	if (__builtin_add_overflow(q, (w0 | (w1 & mask)) != 0, &growth))
		return UINT64_MAX;
	return growth;
}

/* ceil(ticks * rate * 10^9 / 2^(64 + shift)): a rate in the page's units
 * in nanoseconds, rounded up, saturating just below VMCLOCK_ERROR_UNKNOWN. */
static inline __attribute__((always_inline)) uint64_t convert_ticks_to_ns_ceil(uint64_t ticks, uint64_t rate, unsigned shift)
{
	uint64_t growth = convert_growth_ceil(ticks, convert_rate_ns(rate), shift);

	return growth < VMCLOCK_ERROR_UNKNOWN - 1 ? growth : VMCLOCK_ERROR_UNKNOWN - 1;
}

/*
 * One of a page's two error bounds, as its flags leave it: the error at
 * the anchor and its rate times 10^9, or an error that cannot grow (no
 * period error: it holds at the anchor alone), or none (err UNKNOWN, rate
 * 0).  Worked out once per page version; convert_bound_at() grows it.
 * The powers of two that the rate times 10^9 shares with 2^shift cancel
 * (at least the 2^9 of 10^9): the same quotient, exactly, and a rate that
 * fits in 64 bits, one product of the ticks, even on a page whose large
 * shift makes the rate itself large (vmclock-sim keeps its period in
 * [2^62, 2^63), a shift of about 30).
 */
struct convert_bound {
	struct convert_rate rate_ns; /* rate * 10^9 / 2^(page's shift - shift) */
	uint64_t err;
	uint8_t shift;               /* what is left of the page's shift */
	bool fixed;                  /* no period error */
};

static inline __attribute__((always_inline)) struct convert_bound
convert_bound_of(uint64_t flags, uint64_t time_flag, uint64_t rate_flag, uint64_t time_err,
		 uint64_t rate, unsigned shift)
{
	struct convert_rate r = convert_rate_ns(rate);
	unsigned k;

	/* UNKNOWN now and at any later tick. */
	if (!(flags & time_flag) || time_err == VMCLOCK_ERROR_UNKNOWN)
		return (struct convert_bound){ { 0, 0 }, VMCLOCK_ERROR_UNKNOWN, 0, true };
	if (!(flags & rate_flag))
		return (struct convert_bound){ { 0, 0 }, time_err, 0, true };
	k = r.lo ? (unsigned)__builtin_ctzll(r.lo) : r.hi ? 64 + (unsigned)__builtin_ctzll(r.hi) : 64;
	shift &= 63; /* at most MAX_PERIOD_SHIFT: checked before any conversion */
	if (k > shift)
		k = shift;
	if (k) {
		r.lo = r.lo >> k | r.hi << (64 - k);
		r.hi >>= k;
	}
	return (struct convert_bound){ r, time_err, (uint8_t)(shift - k), false };
}

/* The bound ticks after the anchor: err plus its growth, a known bound
 * that stays known (TIM_AddKnownBound: a sum that wrapped would be a tight
 * bound from a huge one); an UNKNOWN err is fixed, and stays UNKNOWN. */
static inline __attribute__((always_inline)) uint64_t
convert_bound_at(const struct convert_bound *b, uint64_t ticks)
{
	uint64_t growth;

	/* Without a period error the bound cannot be carried forward. */
	if (__builtin_expect(b->fixed, 0))
		return ticks == 0 ? b->err : VMCLOCK_ERROR_UNKNOWN;
	growth = convert_growth_ceil(ticks, b->rate_ns, b->shift);
	return TIM_AddKnownBound(b->err, growth);
}

/* A page error plus its growth since the anchor, or UNKNOWN. */
static inline __attribute__((always_inline)) uint64_t grown_error(uint64_t flags, uint64_t time_flag, uint64_t rate_flag,
			    uint64_t time_err, uint64_t rate, uint64_t ticks, unsigned shift)
{
	struct convert_bound b = convert_bound_of(flags, time_flag, rate_flag, time_err, rate, shift);

	return convert_bound_at(&b, ticks);
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

/*
 * What one version of a page allows beyond its fields, worked out once for
 * every conversion with it (vmclock_gettime() keeps it per page version):
 * its two error bounds as its flags leave them, and whether and how its
 * time becomes UTC.
 */
struct convert_prep {
	struct convert_bound est, max;
	int16_t utc_offset_sec; /* added to the page's seconds for UTC */
	bool utc_valid;
};

static inline __attribute__((always_inline)) void convert_prepare(const struct vmclock_abi *page,
								   struct convert_prep *p)
{
	uint64_t flags = vmclock_le64(page->flags);
	int16_t tai_offset = (int16_t)vmclock_le16((uint16_t)page->tai_offset_sec);

	p->est = convert_bound_of(flags, VMCLOCK_FLAG_TIME_ESTERROR_VALID,
				  VMCLOCK_FLAG_PERIOD_ESTERROR_VALID,
				  vmclock_le64(page->time_esterror_nanosec),
				  vmclock_le64(page->counter_period_esterror_rate_frac_sec),
				  page->counter_period_shift);
	p->max = convert_bound_of(flags, VMCLOCK_FLAG_TIME_MAXERROR_VALID,
				  VMCLOCK_FLAG_PERIOD_MAXERROR_VALID,
				  vmclock_le64(page->time_maxerror_nanosec),
				  vmclock_le64(page->counter_period_maxerror_rate_frac_sec),
				  page->counter_period_shift);
	p->utc_valid = page->time_type == VMCLOCK_TIME_UTC ||
		       (page->time_type == VMCLOCK_TIME_TAI &&
			(flags & VMCLOCK_FLAG_TAI_OFFSET_VALID) &&
			tai_offset >= TAI_OFFSET_MIN_SEC && tai_offset <= TAI_OFFSET_MAX_SEC);
	p->utc_offset_sec = page->time_type == VMCLOCK_TIME_TAI && p->utc_valid ? tai_offset : 0;
}

/* The fields of a page a conversion reads, beside what convert_prepare()
 * works out, as native integers. */
struct convert_in {
	uint64_t flags, anchor, period, time_sec, time_frac, marker, generation;
	uint32_t seq_count;
	uint8_t shift, time_type, clock_status, leap_indicator, smearing_hint;
};

static inline __attribute__((always_inline)) void convert_in_of(const struct vmclock_abi *page,
								 struct convert_in *in)
{
	in->flags = vmclock_le64(page->flags);
	in->anchor = vmclock_le64(page->counter_value);
	in->period = vmclock_le64(page->counter_period_frac_sec);
	in->time_sec = vmclock_le64(page->time_sec);
	in->time_frac = vmclock_le64(page->time_frac_sec);
	in->marker = vmclock_le64(page->disruption_marker);
	in->generation = vmclock_le64(page->vm_generation_counter);
	in->seq_count = vmclock_le32(page->seq_count);
	in->shift = page->counter_period_shift;
	in->time_type = page->time_type;
	in->clock_status = page->clock_status;
	in->leap_indicator = page->leap_indicator;
	in->smearing_hint = page->leap_second_smearing_hint;
}

/* The conversion of a page version that has time and a sane shift: its
 * fields and what convert_prepare() worked out for it. */
static inline __attribute__((always_inline)) int convert_prepared(const struct convert_in *in,
								   const struct convert_prep *p,
								   uint64_t counter,
								   struct vmclock_time *out)
{
	unsigned shift = in->shift;
	int64_t delta = (int64_t)(counter - in->anchor);
	uint64_t ticks = delta < 0 ? 0 - (uint64_t)delta : (uint64_t)delta;
	u128 t0, step, t;
	uint64_t sec, frac;

	t0 = ((u128)in->time_sec << 64) | in->time_frac;
	step = ((u128)ticks * in->period) >> shift;
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
	out->time_type = in->time_type;
	out->utc_valid = p->utc_valid;
	out->utc_sec = p->utc_valid ? out->sec + p->utc_offset_sec : 0;
	out->utc_nsec = p->utc_valid ? out->nsec : 0;
	out->esterror_ns = convert_bound_at(&p->est, ticks);
	out->maxerror_ns = convert_bound_at(&p->max, ticks);
	out->clock_status = in->clock_status;
	out->leap_indicator = in->leap_indicator;
	out->leap_second_smearing_hint = in->smearing_hint;
	out->flags = in->flags;
	out->disruption_marker = in->marker;
	out->vm_generation_counter = in->generation;
	out->seq_count = in->seq_count;
	out->counter = counter;
	out->counter_period_frac_sec = in->period;
	out->counter_period_shift = (uint8_t)shift;
	return 0;
}

/* convert_page() of a page copy that has time and a sane shift. */
static inline __attribute__((always_inline)) int convert_usable_page(const struct vmclock_abi *page,
								      uint64_t counter,
								      struct vmclock_time *out)
{
	struct convert_prep p;
	struct convert_in in;

	convert_prepare(page, &p);
	convert_in_of(page, &in);
	return convert_prepared(&in, &p, counter, out);
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
