/* SPDX-License-Identifier: BSD-2-Clause
 *
 * hnd_driver.h - the handover's I/O around its pure state machine
 * (handover.h): chronyd's command client, the machine's timer, and the
 * caller's measurement and record, each action of the machine taken and its
 * result handed back as the next event.
 *
 * Return convention: 0 or a negative errno value.
 */
#ifndef VMCLOCKD_HND_DRIVER_H
#define VMCLOCKD_HND_DRIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "handover.h"

struct event_base;

typedef struct {
	/* Device time minus system time is wanted, measured on a page whose
	 * marker is marker (the target's): answered with HDR_Offset(), from
	 * the next tick's sample. */
	void (*measure)(uint64_t marker, void *arg);
	/* Exactly once per handover, from the event loop, when it completed
	 * (or gave up after HND_Timing.max_rounds, if not 0).  Else a handover
	 * never gives up: a round of max_failures failed tries (chronyd
	 * refusing, not answering, or not there) is logged once and tried
	 * again at the hold-off cadence until it completes or a newer target
	 * replaces it (see HDR_RetryWaiting). */
	void (*done)(const HND_Report *report, void *arg);
	/* Optional: HND_ACT_DISRUPTION and HND_ACT_RESTORE, as they come. */
	void (*seen)(const HND_Action *action, void *arg);
	/* Keep REC durably (it must survive a crash of vmclockd): 0 or a
	 * negative errno value (HND_ACT_RECORD says what rides on it).
	 * Optional: without it nothing is kept, and every record succeeds. */
	int (*record)(const HND_Record *rec, void *arg);
	/* Optional: each wait the machine enters (hold-off, backoff, settle),
	 * as it arms its timer (tests: time passes for chronyd). */
	void (*waiting)(HND_State state, void *arg);
	void *arg;
} HDR_Callbacks;

/* chrony_cmd: chronyd's command socket ("" or NULL: none, every handover
 * completes at once).  timing NULL: HND_DEFAULT_TIMING.  Copies all. */
int HDR_Initialise(struct event_base *base, const char *chrony_cmd, const HND_Timing *timing,
		   const HDR_Callbacks *callbacks);
/* Cancels everything without a callback. */
void HDR_Finalise(void);
/* A new command socket path (SIGHUP).  The same path keeps the client and
 * whatever it has in flight; another one closes it, and a dfreq or doffset
 * in flight then counts as unknown. */
int HDR_Reconfigure(const char *chrony_cmd);
/* A disruption to hand over (the newest wins). */
void HDR_Start(const HND_Target *target);
/* Another event of the caller's (a page, the source changed, stop); its
 * now_ns is set here. */
void HDR_Handle(HND_Event *event);
/* The machine, for its queries (HND_Withholding, HND_GetRecord, ...). */
const HND_Machine *HDR_Machine(void);
bool HDR_Busy(void);
/* The answer to the last measure callback (HND_EV_OFFSET); skip_reason:
 * with HND_OFFSET_SKIP, why, returned as HND_Report.skip_reason. */
void HDR_Offset(HND_OffsetAnswer answer, double offset_s, int skip_reason);
/* HND_RetryWaiting: samples may be fed while a failed round waits. */
bool HDR_RetryWaiting(void);

#endif /* VMCLOCKD_HND_DRIVER_H */
