/* SPDX-License-Identifier: BSD-2-Clause
 *
 * notify.c - sd_notify glue and the watchdog timer.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <systemd/sd-daemon.h>

#include "log.h"
#include "notify.h"

static struct event *watchdog_ev;
static char last_status[256];
static bool ready;
static bool notify_socket;             /* $NOTIFY_SOCKET was set at start */
static struct timespec last_status_time; /* CLOCK_MONOTONIC */
static bool ticked; /* a tick completed since the last WATCHDOG=1 */

/* The watchdog vouches for the work, not for the loop: a loop that runs
 * while the sampler has stopped ticking is not healthy, and systemd should
 * restart it. */
static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	if (!ticked) {
		DEBUG_LOG("no tick since the last watchdog ping: none sent");
		return;
	}
	ticked = false;
	sd_notify(0, "WATCHDOG=1");
}

void NTF_Ticked(void)
{
	ticked = true;
}

void NTF_Initialise(struct event_base *base)
{
	uint64_t usec = 0;

	notify_socket = getenv("NOTIFY_SOCKET") != NULL;
	if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
		struct timeval tv = { .tv_sec = (time_t)(usec / 2 / 1000000),
				      .tv_usec = (suseconds_t)(usec / 2 % 1000000) };

		watchdog_ev = event_new(base, -1, EV_PERSIST, watchdog_cb, NULL);
		if (!watchdog_ev || event_add(watchdog_ev, &tv) < 0)
			LOG_FATAL("cannot create the watchdog timer");
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

void NTF_Status(bool urgent, const char *format, ...)
{
	char status[sizeof(last_status)];
	struct timespec now;
	va_list ap;

	/* Nobody listens without a notify socket; with one, a status that
	 * changes every tick (the offset) is sent at most once a second. */
	if (!notify_socket)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!urgent && now.tv_sec == last_status_time.tv_sec)
		return;
	va_start(ap, format);
	vsnprintf(status, sizeof(status), format, ap);
	va_end(ap);
	if (strcmp(status, last_status) == 0)
		return;
	last_status_time = now;
	memcpy(last_status, status, sizeof(status));
	sd_notifyf(0, "STATUS=%s", status);
}

/* Before NTF_Ready the service manager still waits for the start: a
 * reload then is none to it, and a READY=1 would end the start before the
 * first tick. */
void NTF_Reloading(void)
{
	if (ready)
		sd_notify(0, "RELOADING=1");
}

void NTF_Reloaded(void)
{
	if (ready)
		sd_notifyf(0, "READY=1\nSTATUS=%s", last_status);
}

void NTF_Stopping(void)
{
	sd_notify(0, "STOPPING=1");
}
