/* SPDX-License-Identifier: BSD-2-Clause
 *
 * evbase.h - the one way vmclockd makes its libevent loop, so that the
 * tests of its modules run on the same timers as the daemon.
 */
#ifndef VMCLOCKD_EVBASE_H
#define VMCLOCKD_EVBASE_H

#include <event2/event.h>

/* A new event base, or NULL (out of memory, no usable backend). */
struct event_base *EVB_New(void);

#endif /* VMCLOCKD_EVBASE_H */
