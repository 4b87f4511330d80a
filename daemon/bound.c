/* SPDX-License-Identifier: BSD-2-Clause
 *
 * bound.c - the error bound vmclockd publishes (see bound.h).
 */
#include "vmclockd-state.h"
#include "../common/timeutil.h"

#include "bound.h"

_Static_assert(VMCLOCKD_BOUND_UNKNOWN == UINT64_MAX, "TIM_AddBound's no bound");

#define HOLD_NS ((uint64_t)BND_HOLD_S * NSEC_PER_SEC)

/* Rates of growth: UINT32_MAX is no useful rate, as TIM_AddBound's
 * UINT64_MAX is no bound. */
static uint32_t add_ppb(uint32_t a, uint32_t b)
{
	return b > UINT32_MAX - a ? UINT32_MAX : a + b;
}

static uint64_t max_ns(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

void BND_Fed(BND_Held *h, const BND_Sample *s, uint64_t monotonic_ns)
{
	if (!h->any || monotonic_ns - h->cur_start_ns >= HOLD_NS) {
		/* A new window; the last one's samples may still be held.  The
		 * windows turn only as samples are fed: while none are, chronyd
		 * has nothing newer than the ones already held. */
		h->prev_ns = h->any ? h->cur_ns : 0;
		h->prev_ppb = h->any ? h->cur_ppb : 0;
		h->cur_ns = s->error_ns;
		h->cur_ppb = s->error_ppb;
		h->cur_start_ns = monotonic_ns;
		h->any = true;
		return;
	}
	h->cur_ns = max_ns(h->cur_ns, s->error_ns);
	if (s->error_ppb > h->cur_ppb)
		h->cur_ppb = s->error_ppb;
}

BND_Published BND_Combine(const BND_Chrony *c, const BND_Held *h, const BND_Sample *last)
{
	BND_Published out = { .sync_state = c->sync_state, .bound_ns = c->bound_ns,
			      .bound_realtime_ns = c->bound_realtime_ns, .drift_ppb = c->drift_ppb };
	uint64_t at_sample, magnitude;

	if (c->bound_ns == VMCLOCKD_BOUND_UNKNOWN)
		return out;
	if (h->any) {
		out.bound_ns = TIM_AddBound(out.bound_ns, max_ns(h->cur_ns, h->prev_ns));
		out.drift_ppb = add_ppb(out.drift_ppb, h->cur_ppb > h->prev_ppb ? h->cur_ppb : h->prev_ppb);
	}
	if (!last || out.bound_ns == VMCLOCKD_BOUND_UNKNOWN || last->error_ns == UINT64_MAX ||
	    (c->sync_state != VMCLOCKD_SYNC_SYNCHRONIZED &&
	     c->sync_state != VMCLOCKD_SYNC_UNSYNCHRONIZED))
		return out;
	/* The bound at the measurement's instant, against what was measured. */
	at_sample = TIM_GrowBound(out.bound_ns,
				  last->realtime_ns > out.bound_realtime_ns
					  ? last->realtime_ns - out.bound_realtime_ns : 0,
				  out.drift_ppb);
	magnitude = last->offset_ns < 0 ? 0 - (uint64_t)last->offset_ns : (uint64_t)last->offset_ns;
	if (magnitude <= last->uncertainty_ns || magnitude - last->uncertainty_ns <= at_sample)
		return out;
	out.contradicted = true;
	if (out.sync_state == VMCLOCKD_SYNC_SYNCHRONIZED)
		out.sync_state = VMCLOCKD_SYNC_UNSYNCHRONIZED;
	/* |o| + u + the page's max error (error_ns holds u already). */
	out.bound_ns = TIM_AddBound(magnitude, last->error_ns);
	out.bound_realtime_ns = last->realtime_ns;
	return out;
}
