/* SPDX-License-Identifier: BSD-2-Clause
 *
 * publish.h - what vmclockd tells others: the published state applications read
 * (include/vmclockd-state.h) and the service manager's STATUS= line.
 *
 * Written in place after every tick of the sampler (heartbeat, counters, the
 * handled marker, chrony's sync state) and whenever chronyd's tracking has
 * been read (the error bound).  This module is a pure consumer: the reports
 * it writes are handed to it per call by main.c.
 */
#ifndef VMCLOCKD_PUBLISH_H
#define VMCLOCKD_PUBLISH_H

#include "chronysync.h"
#include "config.h"
#include "disrupt.h"
#include "sampler.h"

/* settings stays valid (and is read) until PUB_Finalise. */
void PUB_Initialise(const CNF_Settings *settings);
void PUB_Finalise(void);
/* Before a reload replaces the settings with fresh: the published state
 * stays open (its heartbeat uninterrupted) unless fresh names another. */
void PUB_Reconfigure(const CNF_Settings *fresh);
/* After every tick of the sampler. */
void PUB_Tick(const SMP_Report *sampler, const DSR_Report *disruptions, const CSY_Report *chrony);
/* After every tracking reply from chronyd: the new bound, at once. */
void PUB_ChronyUpdated(const CSY_Report *chrony);

#endif /* VMCLOCKD_PUBLISH_H */
