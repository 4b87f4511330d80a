/* SPDX-License-Identifier: BSD-2-Clause
 *
 * monoskip.c - CLOCK_MONOTONIC moved forward under -Wl,--wrap=clock_gettime.
 */
#include <time.h>

#include "monoskip.h"

int __real_clock_gettime(clockid_t id, struct timespec *ts);
int __wrap_clock_gettime(clockid_t id, struct timespec *ts);

static int64_t skipped_ns;

void MSK_Advance(int64_t ns)
{
	skipped_ns += ns;
}

int __wrap_clock_gettime(clockid_t id, struct timespec *ts)
{
	int r = __real_clock_gettime(id, ts);
	int64_t ns;

	if (r < 0 || id != CLOCK_MONOTONIC)
		return r;
	ns = (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec + skipped_ns;
	ts->tv_sec = (time_t)(ns / 1000000000);
	ts->tv_nsec = (long)(ns % 1000000000);
	return r;
}
