/* SPDX-License-Identifier: BSD-2-Clause
 *
 * bound.h - the error bound vmclockd publishes, from chronyd's figures, the
 * page's own error and the sampler's measurement.
 *
 * chronyd's root distance (chronysync.c) bounds how far the system clock is
 * from the reference it follows.  When that reference is the vmclock page
 * (the SOCK refclock vmclockd feeds), it knows nothing of how far the page
 * is from true time: a SOCK sample has no error field.  So
 *   |system - true| <= |system - page| + |page - true|
 * and the published bound is chronyd's plus the largest error of the
 * samples chronyd may still hold (each sample's page maximum error plus its
 * measurement's uncertainty), growing at chronyd's drift plus the page's
 * maximum error rate.  vmclockd cannot tell which source chronyd follows, so
 * the page's error is always added while chronyd's bound is: an
 * over-estimate when chronyd follows another source, never an under-estimate.
 * Samples stay held after the page stops vouching (nothing new is fed, so
 * chronyd still has the old ones); while samples are fed, an error leaves
 * the held figure between BND_HOLD_S and twice that after the sample.
 *
 * Every tick that feeds a sample also measures device minus system time, o,
 * with an uncertainty u, independently of chronyd.  If |o| - u exceeds the
 * bound above at that instant, the page and chronyd's figures cannot both
 * hold (the realtime clock was stepped behind chronyd's back, or the page
 * was): chronyd's figures are not published.  The bound is then the
 * measurement's, |o| + u + the page's maximum error, which holds if the page
 * does and exceeds chronyd's figure if chronyd does, and a SYNCHRONIZED
 * state is published as UNSYNCHRONIZED until a measurement agrees again.
 *
 * Pure: no clock, no I/O.  publish.c owns the held state and calls this at
 * every tick and every tracking reply; tests/check_bound.c drives it.
 */
#ifndef VMCLOCKD_BOUND_H
#define VMCLOCKD_BOUND_H

#include <stdbool.h>
#include <stdint.h>

/* How long a fed sample's error stays in the held figure at least (twice
 * this at most).  chronyd keeps at most 64 samples per source, one per
 * refclock poll: this covers refclock polls up to 2^5 s. */
#define BND_HOLD_S 3600u

/* chronyd's figures as chronysync.c publishes them. */
typedef struct {
	uint8_t sync_state;         /* VMCLOCKD_SYNC_* */
	uint64_t bound_ns;          /* VMCLOCKD_BOUND_UNKNOWN: none */
	uint64_t bound_realtime_ns; /* CLOCK_REALTIME it holds at */
	uint32_t drift_ppb;         /* its growth after that */
} BND_Chrony;

/* A sample vmclockd fed: the page vouched for it. */
typedef struct {
	uint64_t realtime_ns;    /* CLOCK_REALTIME of the measurement */
	int64_t offset_ns;       /* device minus system */
	uint64_t uncertainty_ns; /* the measurement's half bracket */
	uint64_t error_ns;       /* page max error there + uncertainty (UINT64_MAX: none) */
	uint32_t error_ppb;      /* how fast the page's max error grows */
} BND_Sample;

/* The largest error of the samples chronyd may hold, over two windows. */
typedef struct {
	bool any;               /* a sample was fed */
	uint64_t cur_ns, prev_ns;
	uint32_t cur_ppb, prev_ppb;
	uint64_t cur_start_ns;  /* CLOCK_MONOTONIC start of the current window */
} BND_Held;

typedef struct {
	uint8_t sync_state;
	uint64_t bound_ns;
	uint64_t bound_realtime_ns;
	uint32_t drift_ppb;
	bool contradicted;      /* the measurement disproved chronyd's figures */
} BND_Published;

/* A sample was fed at monotonic_ns. */
void BND_Fed(BND_Held *held, const BND_Sample *sample, uint64_t monotonic_ns);
/* What to publish from chronyd's figures, the held page error and the
 * newest fed sample (NULL if the last tick fed none). */
BND_Published BND_Combine(const BND_Chrony *chrony, const BND_Held *held, const BND_Sample *last);

#endif /* VMCLOCKD_BOUND_H */
