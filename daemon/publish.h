/* SPDX-License-Identifier: BSD-2-Clause
 *
 * publish.h - the state file applications read (include/vmclockd-state.h).
 *
 * Written in place at every tick (heartbeat, counters, the handled marker)
 * and whenever chronyd's tracking report is read.  chronyd is asked for its
 * tracking every chrony-poll-ms, and every burst interval while a disruption
 * waits for chrony to re-synchronise, with a client of its own so that it
 * never competes with the disruption handover.
 */
#ifndef VMCLOCKD_PUBLISH_H
#define VMCLOCKD_PUBLISH_H

#include <event2/event.h>

#include "config.h"

void PUB_Initialise(struct event_base *base, const CNF_Settings *settings);
void PUB_Finalise(void);
/* After every tick of the sampler. */
void PUB_Tick(void);

#endif /* VMCLOCKD_PUBLISH_H */
