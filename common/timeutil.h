/* SPDX-License-Identifier: BSD-2-Clause
 *
 * timeutil.h - the project's one set of time helpers (not installed).
 *
 * Nanoseconds, timespecs, timevals and milliseconds, converted in one place
 * for libvmclock, vmclockd and vmclockctl.  Static inline: libvmclock's read
 * path uses them and must not pay for a call.  Integer only, as the
 * page-time path requires.  vmclock-sim, an independent writer of pages,
 * keeps its own arithmetic on purpose.
 */
#ifndef VMCLOCK_TIMEUTIL_H
#define VMCLOCK_TIMEUTIL_H

#include <stdint.h>
#include <sys/time.h>
#include <time.h>

typedef unsigned __int128 u128;

#define NSEC_PER_SEC 1000000000u
#define NSEC_PER_MSEC 1000000u
#define NSEC_PER_USEC 1000u
#define USEC_PER_SEC 1000000u
#define MSEC_PER_SEC 1000u

/* A timespec at or after the epoch as nanoseconds (wraps in 2554). */
static inline uint64_t TIM_TimespecToNs(const struct timespec *t)
{
	return (uint64_t)t->tv_sec * NSEC_PER_SEC + (uint64_t)t->tv_nsec;
}

/* Signed nanoseconds of any timespec (a difference, or before the epoch). */
static inline int64_t TIM_TimespecToSignedNs(const struct timespec *t)
{
	return (int64_t)t->tv_sec * NSEC_PER_SEC + t->tv_nsec;
}

/* a - b in nanoseconds. */
static inline int64_t TIM_DiffNs(const struct timespec *a, const struct timespec *b)
{
	return (int64_t)(a->tv_sec - b->tv_sec) * NSEC_PER_SEC + (a->tv_nsec - b->tv_nsec);
}

/* The clock's reading in nanoseconds; 0 if it cannot be read. */
static inline uint64_t TIM_NowNs(clockid_t id)
{
	struct timespec ts;

	if (clock_gettime(id, &ts) < 0)
		return 0;
	return TIM_TimespecToNs(&ts);
}

/* t plus ns (either sign), normalised: 0 <= tv_nsec < NSEC_PER_SEC. */
static inline struct timespec TIM_AddNs(struct timespec t, int64_t ns)
{
	int64_t total = (int64_t)t.tv_nsec + ns % (int64_t)NSEC_PER_SEC;

	t.tv_sec += (time_t)(ns / (int64_t)NSEC_PER_SEC + total / (int64_t)NSEC_PER_SEC);
	t.tv_nsec = (long)(total % (int64_t)NSEC_PER_SEC);
	if (t.tv_nsec < 0) {
		t.tv_nsec += NSEC_PER_SEC;
		t.tv_sec--;
	}
	return t;
}

/* True if a is earlier than b. */
static inline int TIM_Before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static inline struct timespec TIM_MsToTimespec(unsigned ms)
{
	return (struct timespec){ .tv_sec = ms / MSEC_PER_SEC,
				  .tv_nsec = (long)(ms % MSEC_PER_SEC) * (long)NSEC_PER_MSEC };
}

static inline struct timeval TIM_MsToTimeval(unsigned ms)
{
	return (struct timeval){ .tv_sec = ms / MSEC_PER_SEC,
				 .tv_usec = (suseconds_t)(ms % MSEC_PER_SEC) * 1000 };
}

/* A binary fraction of a second (units of 2^-64 s) in nanoseconds, truncated. */
static inline uint32_t TIM_FracToNs(uint64_t frac)
{
	return (uint32_t)(((u128)frac * NSEC_PER_SEC) >> 64);
}

/*
 * Sums of error bounds in nanoseconds, UINT64_MAX meaning "no bound" (the
 * page's VMCLOCK_ERROR_UNKNOWN, the published VMCLOCKD_BOUND_UNKNOWN).  A
 * sum that wrapped would be a tight bound from a huge one, so each
 * saturates, at one of two limits for two meanings:
 */
/* a + b, or no bound (UINT64_MAX) if the sum does not fit: a bound may
 * become unknown.  No bound in, no bound out. */
static inline __attribute__((always_inline)) uint64_t TIM_AddBound(uint64_t a, uint64_t b)
{
	return b > UINT64_MAX - a ? UINT64_MAX : a + b;
}

/* a + b for bounds that are known, at most UINT64_MAX - 1: the largest
 * bound that is still a bound.  A known bound stays known however large it
 * grows (a page's error carried forward is never UNKNOWN because it is
 * old).  Either input at UINT64_MAX gives UINT64_MAX - 1 too. */
static inline __attribute__((always_inline)) uint64_t TIM_AddKnownBound(uint64_t a, uint64_t b)
{
	const uint64_t largest = UINT64_MAX - 1;

	return a >= largest || b >= largest - a ? largest : a + b;
}

/*
 * A bound of bound_ns grown at ppb (parts per billion) for age_ns:
 * bound + ceil(age * ppb / 10^9), saturating at UINT64_MAX (TIM_AddBound:
 * no bound).  How every reader of vmclockd's state grows its error bound,
 * and how vmclockd itself moves a bound from one instant to another.  In
 * 64 bits (a multiply, no division call) while the product fits, which
 * covers any age under 4 s.
 */
static inline __attribute__((always_inline)) uint64_t TIM_GrowBound(uint64_t bound_ns,
								    uint64_t age_ns, uint32_t ppb)
{
	uint64_t growth;

	if (__builtin_expect(age_ns < (1ull << 32), 1))
		growth = (age_ns * ppb + NSEC_PER_SEC - 1) / NSEC_PER_SEC;
	else
		growth = (uint64_t)(((u128)age_ns * ppb + NSEC_PER_SEC - 1) / NSEC_PER_SEC);
	return TIM_AddBound(bound_ns, growth);
}

/*
 * TIM_GrowBound() over one second, prepared once for a reader that grows the
 * same bound at many instants: at the instant sec * 10^9 + nsec (at or after
 * bound_time_ns, nsec below 10^9), TIM_GrowBound(bound_ns, instant -
 * bound_time_ns, ppb) is the high word of nsec * m + c (TIM_GrownAt), one
 * multiplication and one 128-bit addition, the same number to the
 * nanosecond wherever that bound does not saturate.
 *
 * Why it is exact: with (instant - bound_time) * ppb = nsec * ppb + K and
 * K = q * 10^9 + r (|r| < 10^9), the growth is q + ceil((nsec * ppb + r) /
 * 10^9) = q + floor(v), v = (nsec * ppb + r + 10^9 - 1) / 10^9 >= 0.  m and
 * the low part of c are ppb * 2^64 / 10^9 and (r + 10^9 - 1) * 2^64 / 10^9
 * rounded up, so (nsec * m + c_low) / 2^64 exceeds v by less than
 * (nsec + 1) / 2^64 < 10^-9, while v, a multiple of 10^-9, is at least 10^-9
 * below the next integer: the floors agree.  The high part of c adds
 * bound_ns + q.  Integer only.
 *
 * False (nothing prepared) for a rate of 10^9 ppb or more (m would not fit)
 * or a second that ends before bound_time_ns.
 */
struct TIM_Growth {
	uint64_t m, c_lo, c_hi;
};

static inline int TIM_PrepareGrowth(uint64_t bound_ns, uint64_t bound_time_ns, uint32_t ppb,
				    uint64_t sec, struct TIM_Growth *out)
{
	__int128 k, q, r;
	u128 c;

	if (ppb >= NSEC_PER_SEC || sec >= UINT64_MAX / NSEC_PER_SEC ||
	    bound_time_ns >= (sec + 1) * NSEC_PER_SEC)
		return 0;
	/* |k| < 2^64 * 10^9 < 2^94: no overflow. */
	k = ((__int128)sec * NSEC_PER_SEC - (__int128)bound_time_ns) * ppb;
	q = k / NSEC_PER_SEC;
	r = k % NSEC_PER_SEC; /* either sign, |r| < 10^9 */
	out->m = (uint64_t)((((u128)ppb << 64) + NSEC_PER_SEC - 1) / NSEC_PER_SEC);
	c = (((u128)(r + NSEC_PER_SEC - 1) << 64) + NSEC_PER_SEC - 1) / NSEC_PER_SEC;
	/* Modulo 2^64: q may be negative, the sum at an instant is not. */
	c += (u128)(uint64_t)((__int128)bound_ns + q) << 64;
	out->c_lo = (uint64_t)c;
	out->c_hi = (uint64_t)(c >> 64);
	return 1;
}

/* The bound a TIM_Growth prepared for second sec holds at sec + nsec. */
static inline __attribute__((always_inline)) uint64_t TIM_GrownAt(uint64_t m, uint64_t c_lo,
								  uint64_t c_hi, uint64_t nsec)
{
	return (uint64_t)(((u128)nsec * m + (((u128)c_hi << 64) | c_lo)) >> 64);
}

#endif /* VMCLOCK_TIMEUTIL_H */
