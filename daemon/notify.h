/* SPDX-License-Identifier: BSD-2-Clause
 *
 * notify.h - the service manager's view of vmclockd (sd_notify).
 *
 * READY=1 after the first tick, whether the page was read or found missing,
 * STATUS= a one-line summary whenever it changes, WATCHDOG=1 from a timer at
 * half of WatchdogSec when a sampler tick completed since the last one (a
 * loop that runs without ticking is not healthy), STOPPING=1 on the way out.
 * Without $NOTIFY_SOCKET every call is a no-op.
 */
#ifndef VMCLOCKD_NOTIFY_H
#define VMCLOCKD_NOTIFY_H

#include <stdbool.h>

#include <event2/event.h>

void NTF_Initialise(struct event_base *base);
void NTF_Finalise(void);
void NTF_Ready(void);
/* A sampler tick completed: the next WATCHDOG=1 may go (none goes without). */
void NTF_Ticked(void);
/* Sent when it differs from the last one sent, at once if urgent (a change
 * of state rather than of figures), else only in another second of the
 * monotonic clock than the last: figures that change every tick go out at
 * most once a second, the newest at the next call after that. */
void NTF_Status(bool urgent, const char *format, ...) __attribute__((format(printf, 2, 3)));
void NTF_Stopping(void);
/* RELOADING=1, and after the reload, successful or not, READY=1 again, as
 * systemd waits for it; neither before NTF_Ready (a SIGHUP early in the
 * start), whose READY=1 is the one that ends the start. */
void NTF_Reloading(void);
void NTF_Reloaded(void);

#endif /* VMCLOCKD_NOTIFY_H */
