/* SPDX-License-Identifier: BSD-2-Clause
 *
 * evbase.c - vmclockd's event loop configuration.
 */
#include "autoconfig.h"

#include "evbase.h"

/*
 * Timers on CLOCK_MONOTONIC itself: the coarse clock libevent uses by
 * default ticks in jiffies, so a 62 ms timer woke up early and again 2 ms
 * later, and three 20 ms command timeouts added up to 56 ms.  poll(), not
 * epoll: with a precise clock epoll would add a timerfd_settime() per tick,
 * and vmclockd watches three descriptors.
 */
struct event_base *EVB_New(void)
{
	struct event_config *ecfg = event_config_new();
	struct event_base *base;

	if (!ecfg)
		return NULL;
	event_config_set_flag(ecfg, EVENT_BASE_FLAG_PRECISE_TIMER);
	event_config_avoid_method(ecfg, "epoll");
	base = event_base_new_with_config(ecfg);
	event_config_free(ecfg);
	return base;
}
