/* SPDX-License-Identifier: BSD-2-Clause
 *
 * sampler.h - the tick: read the page, decide, feed or withhold.
 *
 * Every tick (and on every device notification) the sampler takes one
 * consistent copy of the page, lets the disruption module look at it first,
 * then either measures the offset and hands the sample to every output, or
 * withholds it with a reason.  The reason is part of STATUS= and is logged
 * once each time it changes.
 */
#ifndef VMCLOCKD_SAMPLER_H
#define VMCLOCKD_SAMPLER_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"

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
	unsigned long fed;
	unsigned long withheld[SMP_REASON_COUNT];
} SMP_Report;

const char *SMP_ReasonName(SMP_Reason reason);

void SMP_Initialise(struct event_base *base, const CNF_Settings *settings);
void SMP_Finalise(void);
/* Device time minus system time now, in seconds; false if unavailable. */
bool SMP_MeasureOffset(double *offset_s);
/* Sample at the burst interval for duration_ms from now, starting now. */
void SMP_Burst(unsigned duration_ms);
const SMP_Report *SMP_GetReport(void);

#endif /* VMCLOCKD_SAMPLER_H */
