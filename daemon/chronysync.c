/* SPDX-License-Identifier: BSD-2-Clause
 *
 * chronysync.c - chronyd's view of the clock: its sync state and error bound.
 *
 * "chronyd has re-synchronised since the marker" is only believed from a
 * tracking report requested after the disruption was handled (a report in
 * flight during the reset could describe the old state) that names a real
 * reference.  chronyd 4.3 right after `reset sources` (measured under -x,
 * docs/internals.md): with no other source, reference id 0, stratum 0, leap
 * unsynchronised, reference time 0; with `local` configured, reference id
 * 127.127.1.1 (LOCAL), its stratum and leap NORMAL, the old reference time.
 * Neither is a reselection, so the leap status alone is not evidence.  The
 * reference time is not either: the first sample chronyd takes after the
 * reset may be one its refclock driver held from before it, whose time is
 * earlier than the reset.
 *
 * The same predicate decides whether chronyd is synchronised at all.  A
 * chronyd serving only its own clock through the `local` directive reports
 * leap NORMAL, its configured stratum and a root dispersion near zero while
 * its clock runs free; a reference id of 0 with leap NORMAL names no source
 * either.  Both are published as UNSYNCHRONIZED, and chronyd's figures are
 * not published as a bound then: they describe its local reference, not the
 * clock's error.  The last bound read while chronyd followed a real source
 * (since the last disruption, and with chronyd answering throughout) is left
 * as it is, so that readers grow it at its drift rate from the time it was
 * read; without one the bound is unknown.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmclockd-state.h"
#include "../common/timeutil.h"

#include "chrony_client.h"
#include "chronysync.h"
#include "log.h"

#define PPB_PER_PPM 1000.0
/* chrony's default maxclockerror, 1 ppm: how fast its dispersion grows. */
#define CHRONY_CLOCK_ERROR_PPB (1.0 * PPB_PER_PPM)
/* chronyd's bounds beyond this (seconds) are published as unknown. */
#define MAX_BOUND_S 4.6e9
/* A drift the 32-bit field cannot hold is published as its largest value. */
#define MAX_DRIFT_PPB 4e9
/* The reference id chronyd reports while it has no source selected: none
 * (0), or its own local reference (127.127.1.1, the `local` directive). */
#define CHRONY_REFID_NONE 0u
#define CHRONY_REFID_LOCAL 0x7f7f0101u

static const CNF_Settings *cfg;
static struct event_base *ev_base;
static const DSR_Report *dsr;
static CSY_Hooks hooks;
static CCL_Client chrony;
static struct event *poll_ev;
static LOG_Repeat chrony_failing;
static CSY_Report report = { .sync_state = VMCLOCKD_SYNC_UNKNOWN };

/* chrony's view, as last read. */
static uint64_t synced_marker;   /* handled marker chrony has resynced after */
static bool have_synced_marker;
static struct timespec request_sent; /* CLOCK_MONOTONIC of the request in flight */
static bool polling_fast;        /* the poll timer runs at the burst interval */
static double last_correction;   /* current correction of the last report, s */
static uint64_t last_bound_time; /* CLOCK_REALTIME ns its request was sent (0: none) */
static struct timespec last_ref_time; /* chronyd's last clock update then */
/* Two reports of one epoch with no clock update between them last said
 * chronyd does not steer the clock (-x); see away_ppb(). */
static bool unsteered;
/* Whether that report's correction means anything: chrony synchronised, or
 * handed its correction by a handover.  A cold chronyd's jump from 0 to its
 * first correction is acquisition, not drift. */
static bool last_meaningful;
static unsigned long last_disruptions; /* DSR's count at that report */
/* The published bound was read while chronyd followed a real source, in
 * the epoch counted by bound_disruptions. */
static bool bound_from_source;
static unsigned long bound_disruptions;
static bool without_source_logged; /* said once per spell without a source */

const CSY_Report *CSY_GetReport(void)
{
	return &report;
}

static bool polling(const CNF_Settings *s)
{
	return s->chrony_cmd && *s->chrony_cmd;
}

/* Waiting for chrony to resync after a disruption: ask more often. */
static bool awaiting_resync(void)
{
	return dsr->handling || !have_synced_marker || synced_marker != dsr->handled_marker;
}

static void schedule_poll(void)
{
	unsigned ms;
	struct timeval tv;

	polling_fast = awaiting_resync() && report.sync_state != VMCLOCKD_SYNC_UNKNOWN;
	ms = polling_fast ? cfg->burst_interval_ms : cfg->chrony_poll_ms;
	tv = TIM_MsToTimeval(ms);
	evtimer_add(poll_ev, &tv);
}

/* chronyd follows a source it selected (its reference is not "none" or its
 * local clock): whether it is synchronised, and after a reset the evidence
 * that it reselected. */
static bool selected_real_source(const CPR_Tracking *t)
{
	return t->leap_status != CPR_LEAP_UNSYNCHRONISED && t->ref_id != CHRONY_REFID_NONE &&
	       t->ref_id != CHRONY_REFID_LOCAL;
}

/* When chronyd read its correction: between the request and its reply.
 * The request's time is taken, on the realtime clock as it reads now, so
 * that readers grow the bound from no later than the correction was read
 * (a reply held up by a busy machine would otherwise shrink the bound by
 * the drift over the delay). */
static uint64_t asked_at(void)
{
	uint64_t now = TIM_NowNs(CLOCK_REALTIME);
	struct timespec mono;
	int64_t in_flight;

	clock_gettime(CLOCK_MONOTONIC, &mono);
	in_flight = TIM_DiffNs(&mono, &request_sent);
	return in_flight > 0 && (uint64_t)in_flight < now ? now - (uint64_t)in_flight : now;
}

/* How fast, beyond chrony's statistics, the clock may move away from the
 * time chronyd reports, from how its correction moved over the SECONDS
 * since the last report of this epoch.
 *
 * Under chronyd's control the correction only shrinks as chronyd slews it
 * away (or jumps as a sample updates the clock).  A clock chronyd does not
 * steer (-x) keeps the rate chronyd measured: its correction moves by
 * exactly -frequency x time, plus what each update in between added.  Two
 * reports with no update between them (the same reference time) tell the
 * two apart, to within the timing of the requests: the correction moved by
 * -frequency x time (within a quarter), or it did not.  That verdict holds
 * until the next such pair, since the updates that come between most
 * reports hide it: the first sample after a handover, landing between two
 * burst reports, made |correction| grow at 28.3 ppm while the clock moved
 * at 30 ppm (chronyd -x), and a bound came out 68 ns too small.  An
 * unsteered clock drifts at chronyd's whole frequency, or faster where the
 * correction grew faster; otherwise only a correction that grew adds its
 * growth.  A steered clock misread as unsteered only widens the bound.
 * The pair is judged whether or not the correction means anything yet (a
 * cold chronyd's), the drift only once it does. */
static void note_steering(const CPR_Tracking *t, double seconds)
{
	double moved = t->current_correction - last_correction;
	double free_run = -t->freq_ppm * 1e-6 * seconds;

	if (t->ref_time.tv_sec == last_ref_time.tv_sec &&
	    t->ref_time.tv_nsec == last_ref_time.tv_nsec && free_run != 0)
		unsteered = fabs(moved - free_run) <= fabs(free_run) / 4;
}

/* The drift the correction's movement adds (note_steering()). */
static double away_ppb(const CPR_Tracking *t, double seconds)
{
	double growth = (fabs(t->current_correction) - fabs(last_correction)) / seconds;
	double rate = growth > 0 ? growth : 0;

	if (unsteered && fabs(t->freq_ppm) * 1e-6 > rate)
		rate = fabs(t->freq_ppm) * 1e-6;
	return rate * 1e9;
}

/* A chronyd that comes back, or another one, may have set the clock as it
 * started: the last bound is not carried over, nor its correction, nor
 * whether it steered the clock. */
static void forget_chronyd(void)
{
	bound_from_source = false;
	last_bound_time = 0;
	last_meaningful = false;
	unsteered = false;
}

static void tracking_done(const CCL_Result *r, void *arg)
{
	const DSR_Report *d = dsr;
	const CPR_Tracking *t = &r->reply.tracking;

	if (r->outcome != CCL_DONE) {
		report.sync_state = VMCLOCKD_SYNC_UNKNOWN;
		forget_chronyd();
		/* Logged once when it starts (its causes vary from one poll to
		 * the next while chronyd is down) and once when it ends. */
		if (LOG_RepeatFailing(&chrony_failing, 1)) {
			char e[32];

			snprintf(e, sizeof(e), "ERRNO=%d", r->error);
			LOG_Event(LOGS_WARN, NULL, (const char *[]){ "CHRONYD=unreadable", r->error ? e : NULL, NULL },
				  "chronyd's tracking cannot be read (%s): the published state says "
				  "unknown until it can", r->reason);
		} else
			DEBUG_LOG("chronyd tracking unavailable: %s", r->reason);
		/* chronyd's directory may have been recreated under our reply
		 * socket (a chrony restart under systemd): bind a fresh one. */
		CCL_Close(chrony);
		chrony = NULL;
		schedule_poll();
		return;
	}
	if (LOG_RepeatRecovered(&chrony_failing))
		LOG_Event(LOGS_INFO, NULL, (const char *[]){ "CHRONYD=readable", NULL },
			  "chronyd's tracking can be read again");
	bool synced = selected_real_source(t);

	if (synced && !d->handling && !TIM_Before(&request_sent, &d->handled_at)) {
		if (!have_synced_marker || synced_marker != d->handled_marker)
			DEBUG_LOG("chronyd synchronised after marker %llu",
				  (unsigned long long)d->handled_marker);
		have_synced_marker = true;
		synced_marker = d->handled_marker;
	}
	if (d->disruptions && awaiting_resync())
		report.sync_state = VMCLOCKD_SYNC_DISRUPTED;
	else if (!synced)
		report.sync_state = VMCLOCKD_SYNC_UNSYNCHRONIZED;
	else
		report.sync_state = VMCLOCKD_SYNC_SYNCHRONIZED;
	/* chronyd claiming a normal leap status without a source (not the
	 * usual reselection after a handover: that is DISRUPTED) is said once
	 * per spell. */
	if (synced)
		without_source_logged = false;
	else if (report.sync_state == VMCLOCKD_SYNC_UNSYNCHRONIZED &&
		 t->leap_status != CPR_LEAP_UNSYNCHRONISED && !without_source_logged) {
		char f[2][32];
		const char *fields[] = { f[0], f[1], NULL };

		without_source_logged = true;
		snprintf(f[0], sizeof(f[0]), "REFERENCE_ID=0x%08x", (unsigned)t->ref_id);
		snprintf(f[1], sizeof(f[1]), "STRATUM=%u", (unsigned)t->stratum);
		LOG_Event(LOGS_INFO, NULL, fields, "chronyd follows no real source (reference id "
			  "0x%08x, stratum %u): published as unsynchronised", (unsigned)t->ref_id,
			  (unsigned)t->stratum);
	}

	double bound = t->root_delay / 2 + t->root_dispersion + fabs(t->current_correction);
	uint64_t asked = asked_at();
	double drift = CHRONY_CLOCK_ERROR_PPB + (fabs(t->skew_ppm) + fabs(t->resid_freq_ppm)) * PPB_PER_PPM;
	/* Not across a handover: doffset moved the correction. */
	bool same_epoch = last_disruptions == d->disruptions && !d->handling;

	bool comparable = last_bound_time && asked > last_bound_time && same_epoch;
	double seconds = comparable ? (double)(asked - last_bound_time) * 1e-9 : 0;

	if (comparable)
		note_steering(t, seconds);
	if (comparable && last_meaningful)
		drift += away_ppb(t, seconds);
	else
		/* No movement seen yet (first report, or the first after a
		 * handover): assume the clock may drift by chrony's whole
		 * frequency, as it does when chrony's steering is not
		 * applied to it. */
		drift += fabs(t->freq_ppm) * PPB_PER_PPM;
	last_correction = t->current_correction;
	last_ref_time = t->ref_time;
	last_bound_time = asked;
	last_disruptions = d->disruptions;
	last_meaningful = synced || (d->disruptions && !TIM_Before(&request_sent, &d->handled_at));
	if (synced) {
		/* chronyd's figures are external input: a bound that is not
		 * a sane non-negative number of seconds is unknown. */
		report.bound_ns = bound >= 0 && bound < MAX_BOUND_S ? (uint64_t)ceil(bound * 1e9)
								    : VMCLOCKD_BOUND_UNKNOWN;
		report.bound_realtime_ns = asked;
		report.drift_ppb = drift < MAX_DRIFT_PPB ? (uint32_t)ceil(drift) : UINT32_MAX;
		bound_from_source = true;
		bound_disruptions = d->disruptions;
	} else if (!(bound_from_source && bound_disruptions == d->disruptions && !d->handling)) {
		/* No source, and no bound read from one since the last
		 * disruption: unknown (readers see VMCLOCK_ERROR_UNKNOWN). */
		report.bound_ns = VMCLOCKD_BOUND_UNKNOWN;
		report.bound_realtime_ns = asked;
		report.drift_ppb = UINT32_MAX;
		bound_from_source = false;
	}
	/* else: the last real source's bound stays, read at its time, and
	 * readers grow it at its drift rate: the clock runs free since. */
	report.have_bound = true;
	if (hooks.updated)
		hooks.updated(&report, hooks.arg);
	schedule_poll();
}

static void poll_cb(evutil_socket_t fd, short what, void *arg)
{
	CPR_Packet p;

	if (!chrony && CCL_Open(cfg->chrony_cmd, ev_base, &chrony) < 0) {
		report.sync_state = VMCLOCKD_SYNC_UNKNOWN;
		schedule_poll();
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &request_sent);
	CPR_MakeTracking(&p);
	if (CCL_Start(chrony, &p, 0, 0, tracking_done, NULL) < 0)
		schedule_poll();
}

void CSY_Tick(void)
{
	if (dsr->handling && report.sync_state != VMCLOCKD_SYNC_UNKNOWN)
		report.sync_state = VMCLOCKD_SYNC_DISRUPTED;
	/* A disruption since the poll was armed at the slow cadence: follow
	 * chrony's recovery at the burst interval from now, not from the next
	 * slow poll (up to chrony-poll-ms later: the verdict lagged chrony's
	 * resync by 0.5 s on average).  A request in flight is left alone:
	 * its reply schedules the next at the burst interval. */
	if (polling(cfg) && !polling_fast && evtimer_pending(poll_ev, NULL) && awaiting_resync() &&
	    report.sync_state != VMCLOCKD_SYNC_UNKNOWN) {
		evtimer_del(poll_ev);
		schedule_poll();
	}
}

int CSY_Initialise(struct event_base *base, const CNF_Settings *settings,
		   const DSR_Report *disruptions, const CSY_Hooks *h)
{
	cfg = settings;
	ev_base = base;
	dsr = disruptions;
	hooks = h ? *h : (CSY_Hooks){ 0 };
	/* The timer exists whether or not chronyd is asked, so that a reload
	 * can start asking without anything that could fail. */
	poll_ev = evtimer_new(base, poll_cb, NULL);
	if (!poll_ev) {
		LOG(LOGS_ERR, "cannot create the chronyd tracking timer");
		return -ENOMEM;
	}
	if (polling(cfg))
		event_active(poll_ev, EV_TIMEOUT, 0);
	return 0;
}

void CSY_Reconfigure(const CNF_Settings *fresh)
{
	bool same_socket = polling(cfg) == polling(fresh) &&
			   (!polling(cfg) || strcmp(cfg->chrony_cmd, fresh->chrony_cmd) == 0);

	if (same_socket && cfg->chrony_poll_ms == fresh->chrony_poll_ms &&
	    cfg->burst_interval_ms == fresh->burst_interval_ms)
		return;
	if (!same_socket) {
		/* A request in flight to the old socket is dropped with it. */
		CCL_Close(chrony);
		chrony = NULL;
		report.sync_state = VMCLOCKD_SYNC_UNKNOWN;
		forget_chronyd();
		evtimer_del(poll_ev);
	}
	/* Ask now (the new socket, or at the new rate), unless a request is in
	 * flight: its reply schedules the next one with the fresh settings. */
	if (polling(fresh) && (!same_socket || evtimer_pending(poll_ev, NULL))) {
		evtimer_del(poll_ev);
		event_active(poll_ev, EV_TIMEOUT, 0);
	}
}

void CSY_Finalise(void)
{
	if (poll_ev)
		event_free(poll_ev);
	poll_ev = NULL;
	if (chrony)
		CCL_Close(chrony);
	chrony = NULL;
}
