/* SPDX-License-Identifier: BSD-2-Clause
 *
 * notify.c - sd_notify glue and the watchdog timer.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "log.h"
#include "notify.h"

static struct event *watchdog_ev;
static char last_status[256];
static bool ready;

static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	sd_notify(0, "WATCHDOG=1");
}

void NTF_Initialise(struct event_base *base)
{
	uint64_t usec = 0;

	if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
		struct timeval tv = { .tv_sec = (time_t)(usec / 2 / 1000000),
				      .tv_usec = (suseconds_t)(usec / 2 % 1000000) };

		watchdog_ev = event_new(base, -1, EV_PERSIST, watchdog_cb, NULL);
		event_add(watchdog_ev, &tv);
		DEBUG_LOG("watchdog every %llu us", (unsigned long long)usec / 2);
	}
}

void NTF_Finalise(void)
{
	if (watchdog_ev)
		event_free(watchdog_ev);
	watchdog_ev = NULL;
}

void NTF_Ready(void)
{
	if (ready)
		return;
	ready = true;
	sd_notifyf(0, "READY=1\nSTATUS=%s", last_status);
	/* The first kick right away: the timer fires only after half a period. */
	if (watchdog_ev)
		sd_notify(0, "WATCHDOG=1");
}

void NTF_Status(const char *format, ...)
{
	char status[sizeof(last_status)];
	va_list ap;

	va_start(ap, format);
	vsnprintf(status, sizeof(status), format, ap);
	va_end(ap);
	if (strcmp(status, last_status) == 0)
		return;
	memcpy(last_status, status, sizeof(status));
	sd_notifyf(0, "STATUS=%s", status);
}

void NTF_Reloading(void)
{
	sd_notify(0, "RELOADING=1");
}

void NTF_Reloaded(void)
{
	sd_notifyf(0, "READY=1\nSTATUS=%s", last_status);
}

void NTF_Stopping(void)
{
	sd_notify(0, "STOPPING=1");
}
