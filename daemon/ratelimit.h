/* SPDX-License-Identifier: BSD-2-Clause
 *
 * ratelimit.h - "at most once every N seconds" on the monotonic clock.
 *
 * For the slow checks around the tick: whether the page was replaced,
 * retrying a missing device or an unusable state file, rewriting a drifting
 * counter period.  The first call is always due.
 */
#ifndef VMCLOCKD_RATELIMIT_H
#define VMCLOCKD_RATELIMIT_H

#include <stdbool.h>
#include <time.h>

typedef struct {
	bool started;
	time_t last; /* CLOCK_MONOTONIC second of the last due call */
} RLM_Limit;

static inline bool RLM_Due(RLM_Limit *l, unsigned interval_s)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (l->started && now.tv_sec - l->last < (time_t)interval_s)
		return false;
	l->started = true;
	l->last = now.tv_sec;
	return true;
}

/* The thing limited was just done another way: the next call starts a new
 * interval instead of being due at once. */
static inline void RLM_Restart(RLM_Limit *l)
{
	(void)RLM_Due(l, 0);
}

#endif /* VMCLOCKD_RATELIMIT_H */
