/* SPDX-License-Identifier: BSD-2-Clause
 *
 * monoskip.c - CLOCK_MONOTONIC moved forward (or stopped) under
 * -Wl,--wrap=clock_gettime.
 */
#include <stdbool.h>
#include <time.h>

#include "monoskip.h"

int __real_clock_gettime(clockid_t id, struct timespec *ts);
int __wrap_clock_gettime(clockid_t id, struct timespec *ts);

static int64_t skipped_ns;
static bool frozen;
static int64_t frozen_ns;

void MSK_Advance(int64_t ns)
{
	skipped_ns += ns;
}

static int64_t real_ns(void)
{
	struct timespec ts;

	__real_clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void MSK_Freeze(void)
{
	frozen_ns = real_ns() + skipped_ns;
	skipped_ns = 0;
	frozen = true;
}

int64_t MSK_Now(void)
{
	return (frozen ? frozen_ns : real_ns()) + skipped_ns;
}

int __wrap_clock_gettime(clockid_t id, struct timespec *ts)
{
	int64_t ns;

	if (id != CLOCK_MONOTONIC)
		return __real_clock_gettime(id, ts);
	ns = MSK_Now();
	ts->tv_sec = (time_t)(ns / 1000000000);
	ts->tv_nsec = (long)(ns % 1000000000);
	return 0;
}
