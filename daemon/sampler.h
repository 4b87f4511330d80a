/* SPDX-License-Identifier: BSD-2-Clause
 *
 * sampler.h - the tick: read the page, decide, feed or withhold.
 *
 * Every tick (and on every device notification) the sampler takes one
 * consistent copy of the page, measures the offset from it and judges the
 * sample as the policy does, shows all three to its observer (the
 * disruption module, through a hook main.c registers), whose verdict says
 * whether to withhold it and how soon to tick again, then either hands the
 * sample to every output or withholds it with a reason, logged once each
 * time it changes.  At the end of every tick its report goes to the tick
 * hook (the published state, STATUS=).
 *
 * The sampler is the producer at the head of the daemon: it includes none of
 * its consumers' headers, calls them only through these hooks, and nothing
 * calls back into it: what a consumer needs of the page (the doffset's
 * offset, a faster tick) it has from the next tick's sample, or asks for in
 * its verdict.
 */
#ifndef VMCLOCKD_SAMPLER_H
#define VMCLOCKD_SAMPLER_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "policy.h"
#include "vmclock.h"

typedef struct {
	POL_Reason reason;      /* of the last tick */
	/* Of the last sample fed (reason POL_FED: fed this tick): device minus
	 * system time, measured at last_system_ns (CLOCK_REALTIME) with half a
	 * bracket of uncertainty; its bound (the page's max error there plus
	 * the uncertainty) and how fast the page's max error grows. */
	int64_t last_offset_ns;
	uint64_t last_system_ns;
	uint64_t last_uncertainty_ns;
	uint64_t last_bound_ns;
	uint32_t last_bound_ppb;
	uint64_t marker;        /* of the last page read */
	int reason_errno;       /* the errno behind a BAD_PAGE/NO_DEVICE reason */
	unsigned long fed;
	unsigned long withheld[POL_REASON_COUNT];
	/* Of the last sample fed: how many outputs did not take it, of how
	 * many, and "name: why" of each ("; " between them). */
	unsigned outputs, outputs_failing;
	char output_problems[160];
	/* The longest the tick timer may now wait before the next tick (with
	 * the settings, the device's notifications and any burst): the next
	 * report comes within this, or the daemon is stuck. */
	unsigned longest_tick_ms;
} SMP_Report;

/* Ticks are never further apart than this, whatever the intervals: the
 * heartbeat published from each tick must outlive the wait for the next, and
 * the watchdog (WATCHDOG=1 only after a tick) hears of one in every period. */
#define SMP_MAX_TICK_MS 10000u

const char *SMP_ReasonName(POL_Reason reason);

/* The observer's verdict on a tick's sample. */
typedef struct {
	bool withhold;    /* samples must be withheld (POL_DISRUPTION) */
	unsigned tick_ms; /* the next tick within this (a burst, a handover
			   * waiting for an offset); 0: the configured interval */
} SMP_Verdict;

typedef struct {
	/* Shown each consistent page copy before it is fed, with the offset
	 * measured from it this tick (NULL if none could be), and the sample
	 * judged as it would be fed: POL_FED with its offset (device minus
	 * system time, s), or why not. */
	SMP_Verdict (*observe)(const struct vmclock_abi *page, const struct vmclock_offset *offset,
			       POL_Reason judged, double offset_s, void *arg);
	/* After every tick, with its report. */
	void (*tick_done)(const SMP_Report *report, void *arg);
	void *arg;
} SMP_Hooks;

/* The hooks are copied; either may be NULL.  settings stays valid (and is
 * read) until SMP_Finalise.  -1, with an error naming the setting, if an
 * output cannot be created: a fatal start-up error. */
int SMP_Initialise(struct event_base *base, const CNF_Settings *settings, const SMP_Hooks *hooks);
void SMP_Finalise(void);
/* Before a reload replaces the settings with fresh: keeps the page open if
 * the device is the same and every output whose settings are unchanged;
 * creates the changed outputs.  -1 (logged, naming the setting, nothing
 * changed) if one cannot be created; 1 if the device changed (the pages
 * sampled from now on are another clock's), else 0. */
int SMP_Reconfigure(const CNF_Settings *fresh);

#endif /* VMCLOCKD_SAMPLER_H */
