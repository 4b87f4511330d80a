/* SPDX-License-Identifier: BSD-2-Clause
 *
 * chronysync.h - chronyd's view of the clock: its sync state and error bound.
 *
 * chronyd is asked for its tracking every chrony-poll-ms, and every burst
 * interval while a disruption waits for chrony to re-synchronise, with a
 * command client of its own so that it never competes with the disruption
 * handover.  From each report this module derives the sync state published
 * to applications (synchronised, unsynchronised, disrupted: not yet
 * re-synchronised since the last handled marker) and an error bound with the
 * rate at which it grows.
 *
 * It consumes the disruption module's report (handed at initialisation) and
 * hands its own to whoever main.c registers: after every tracking reply
 * through the update hook, and on request through CSY_GetReport().
 */
#ifndef VMCLOCKD_CHRONYSYNC_H
#define VMCLOCKD_CHRONYSYNC_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "disrupt.h"

typedef struct {
	uint8_t sync_state;          /* VMCLOCKD_SYNC_* (include/vmclockd-state.h) */
	bool have_bound;             /* the figures below come from a tracking reply */
	uint64_t bound_ns;           /* root delay/2 + root dispersion + |correction| */
	uint64_t bound_realtime_ns;  /* CLOCK_REALTIME when it was read */
	uint32_t drift_ppb;          /* how fast the bound grows after that */
} CSY_Report;

typedef struct {
	/* After every tracking reply read: a new bound and sync state. */
	void (*updated)(const CSY_Report *report, void *arg);
	void *arg;
} CSY_Hooks;

/* settings and disruptions stay valid (and are read) until CSY_Finalise;
 * the hooks are copied.  0, or -ENOMEM (logged) if its timer cannot be
 * created. */
int CSY_Initialise(struct event_base *base, const CNF_Settings *settings,
		   const DSR_Report *disruptions, const CSY_Hooks *hooks);
void CSY_Finalise(void);
/* Before a reload replaces the settings with fresh: the tracking client is
 * kept unless the command socket changes. */
void CSY_Reconfigure(const CNF_Settings *fresh);
/* After every tick of the sampler: a disruption being handled is DISRUPTED
 * at once, before chronyd is next asked. */
void CSY_Tick(void);
/* Valid from CSY_Initialise on, updated in place. */
const CSY_Report *CSY_GetReport(void);

#endif /* VMCLOCKD_CHRONYSYNC_H */
