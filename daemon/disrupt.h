/* SPDX-License-Identifier: BSD-2-Clause
 *
 * disrupt.h - disruption markers and generation counters: the driver of
 * the disruption state machine (handover.h).
 *
 * The sampler shows every consistent page copy, the offset it measured from
 * it and its judgement of the sample to DSR_Observe() before it feeds it
 * (main.c registers the hook); the verdict says whether to withhold it and
 * how soon to tick again (fast while a handover may want the next tick's
 * offset, at the burst rate after one).
 * The machine decides: a new disruption_marker means everything chronyd
 * learned about the counter is wrong, so samples stop at once, and chronyd
 * is told over its command socket to drop its measurements and is handed the
 * counter's exact frequency change and the step, after which the sampler
 * bursts (not on a page without time: nothing to feed).  Once handed over,
 * the journal gets one record of the disruption, covering every marker
 * change the handover coalesced.  What chronyd has been handed is kept in
 * the marker record (storage.c), so that a daemon restart is not a
 * disruption, a disruption while down is, and a dfreq on its way when
 * vmclockd died is neither repeated nor lost.
 */
#ifndef VMCLOCKD_DISRUPT_H
#define VMCLOCKD_DISRUPT_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "policy.h"
#include "vmclock.h"

typedef struct {
	uint64_t handled_marker;
	uint64_t handled_gen;
	unsigned long disruptions;   /* seen since start */
	bool handling;               /* a handover is under way, or waits to try
				      * again after a failed round: the marker is
				      * not handled */
	struct timespec last_disruption; /* CLOCK_REALTIME when last detected */
	struct timespec handled_at;  /* CLOCK_MONOTONIC when the last one was handled */
	bool unsaved;                /* the last write of the marker record
				      * failed: what it holds is older than the
				      * above (the write is retried) */
} DSR_Report;

/* The verdict on a tick's sample (sampler.h's SMP_Verdict). */
typedef struct {
	bool withhold;    /* a handover is under way: samples withheld */
	unsigned tick_ms; /* the next tick within this; 0: the configured interval */
} DSR_Verdict;

/* While samples are withheld for a handover, ticks are this close: the
 * doffset's offset is the next tick's, measured right before it is sent. */
#define DSR_HANDOVER_TICK_MS 2

/* -1 (logged) if the handover cannot be initialised. */
int DSR_Initialise(struct event_base *base, const CNF_Settings *settings);
void DSR_Finalise(void);
/* After SIGHUP: new paths, same handled marker. */
void DSR_Reconfigure(const CNF_Settings *settings);
/* The sampler reads another device from now on (a reload changed it): the
 * next page observed starts a new epoch, handled like a disruption with no
 * frequency change (the two pages' periods are unrelated) and no step. */
void DSR_SourceChanged(void);
/* Looks at a page copy, the offset measured from it (NULL if none) and the
 * sample as the policy judged it (POL_FED with its offset, s): the verdict. */
DSR_Verdict DSR_Observe(const struct vmclock_abi *page, const struct vmclock_offset *offset,
			POL_Reason judged, double offset_s);
/* Valid from DSR_Initialise on, updated in place. */
const DSR_Report *DSR_GetReport(void);

#endif /* VMCLOCKD_DISRUPT_H */
