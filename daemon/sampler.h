/* SPDX-License-Identifier: BSD-2-Clause
 *
 * sampler.h - the tick: read the page, decide, feed or withhold.
 *
 * Every tick (and on every device notification) the sampler takes one
 * consistent copy of the page and measures the offset from it, shows both to
 * its observer (the disruption module, through a hook main.c registers),
 * then either hands the sample to every output or withholds it with a
 * reason, logged once each time it changes.  At the end of every tick its
 * report goes to the tick hook (the state file, STATUS=).
 *
 * The sampler is the producer at the head of the daemon: it includes none of
 * its consumers' headers and calls them only through these hooks.
 */
#ifndef VMCLOCKD_SAMPLER_H
#define VMCLOCKD_SAMPLER_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "vmclock.h"

typedef enum {
	SMP_FED,              /* not withheld */
	SMP_NO_DEVICE,        /* the page cannot be opened */
	SMP_BAD_PAGE,         /* magic, size or version wrong */
	SMP_UNSTABLE,         /* seq_count never settled */
	SMP_NO_TIME,          /* marker-only page, or unreliable */
	SMP_NO_UTC,           /* monotonic, or TAI without a valid offset */
	SMP_NOT_SYNCHRONIZED, /* the host does not vouch for its time */
	SMP_NO_BOUND,         /* the page gives no maximum error */
	SMP_ERROR_BOUND,      /* the bound exceeds max-error-ns */
	SMP_SMEARED,          /* a leap second near on a smearing host */
	SMP_UNSUPPORTED,      /* a counter this CPU cannot read */
	SMP_DISRUPTION,       /* a disruption is being handled */
	SMP_REASON_COUNT
} SMP_Reason;

typedef struct {
	SMP_Reason reason;      /* of the last tick */
	bool have_offset;
	int64_t last_offset_ns; /* of the last sample fed */
	uint64_t last_bound_ns;
	uint64_t marker;        /* of the last page read */
	int reason_errno;       /* the errno behind a BAD_PAGE/NO_DEVICE reason */
	unsigned long fed;
	unsigned long withheld[SMP_REASON_COUNT];
} SMP_Report;

const char *SMP_ReasonName(SMP_Reason reason);

typedef struct {
	/* Shown each consistent page copy before it is judged, with the
	 * offset measured from it this tick (NULL if none could be); true
	 * while samples must be withheld (SMP_DISRUPTION). */
	bool (*observe)(const struct vmclock_abi *page, const struct vmclock_offset *offset,
			void *arg);
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
 * changed) if one cannot be created. */
int SMP_Reconfigure(const CNF_Settings *fresh);
/* Device time minus system time now, in seconds; false if unavailable. */
bool SMP_MeasureOffset(double *offset_s);
/* Sample at the burst interval for duration_ms from now, starting now (or,
 * when asked from within a tick, as soon as that tick returns). */
void SMP_Burst(unsigned duration_ms);

#endif /* VMCLOCKD_SAMPLER_H */
