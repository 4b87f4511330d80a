/* SPDX-License-Identifier: BSD-2-Clause
 *
 * ratelimit.h - "at most once every N seconds" on the monotonic clock.
 *
 * For the slow checks and retries around the tick: whether the page, the
 * published state or ClockBound's segment was replaced, or ntpd's SHM
 * segment removed; retrying a missing device, an unusable published state,
 * ClockBound or SHM segment, or a marker record that could not be written;
 * rewriting a drifting counter period.  The first call is always due.  Not
 * the log's flood limit, which is log.h's LOG_Limit.
 */
#ifndef VMCLOCKD_RATELIMIT_H
#define VMCLOCKD_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "../common/timeutil.h"

typedef struct {
	bool started;
	int64_t last_ns; /* CLOCK_MONOTONIC of the last due call */
} RLM_Limit;

/* True at most once every interval_s seconds, measured to the nanosecond:
 * two due calls are never closer than the interval. */
static inline bool RLM_Due(RLM_Limit *l, unsigned interval_s)
{
	struct timespec now;
	int64_t now_ns;

	clock_gettime(CLOCK_MONOTONIC, &now);
	now_ns = TIM_TimespecToSignedNs(&now);
	if (l->started && now_ns - l->last_ns < (int64_t)interval_s * NSEC_PER_SEC)
		return false;
	l->started = true;
	l->last_ns = now_ns;
	return true;
}

/* The thing limited was just done another way: the next call starts a new
 * interval instead of being due at once. */
static inline void RLM_Restart(RLM_Limit *l)
{
	(void)RLM_Due(l, 0);
}

#endif /* VMCLOCKD_RATELIMIT_H */
