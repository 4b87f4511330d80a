/* SPDX-License-Identifier: BSD-2-Clause
 *
 * publish.c - the state file applications read, and chrony's sync state.
 *
 * "chronyd has re-synchronised since the marker" is only believed from a
 * tracking report requested after the disruption was handled: a report in
 * flight during the reset could describe the old state.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmclockd-state.h"

#include "chrony_client.h"
#include "disrupt.h"
#include "log.h"
#include "publish.h"
#include "ratelimit.h"
#include "sampler.h"

_Static_assert(SMP_REASON_COUNT == VMCLOCKD_STATE_REASONS, "withheld[] matches the reasons");

/* chrony's default maxclockerror, 1 ppm: how fast its dispersion grows. */
#define CHRONY_CLOCK_ERROR_PPB 1000.0
#define MIN_HEARTBEAT_TIMEOUT_MS 1000u
/* Bounds beyond this (seconds) mean "unknown" to readers (INT64_MAX / 2 ns). */
#define MAX_BOUND_S 4.6e9

static const CNF_Settings *cfg;
static struct event_base *ev_base;
static struct vmclockd_state *state; /* the mapping */
static CCL_Client chrony;
static struct event *poll_ev;
static LOG_Repeat file_failing, chrony_failing;
static RLM_Limit open_retry;

/* chrony's view, as last read. */
static uint8_t sync_state = VMCLOCKD_SYNC_UNKNOWN;
static uint64_t synced_marker;   /* handled marker chrony has resynced after */
static bool have_synced_marker;
static struct timespec request_sent; /* CLOCK_MONOTONIC of the request in flight */
static unsigned long disruptions_published; /* of DSR's count, added to the file's */
static double last_correction;   /* |current correction| of the last report, s */
static uint64_t last_bound_time; /* CLOCK_REALTIME ns of that report */
/* Whether that report's correction means anything: chrony synchronised, or
 * handed its correction by a handover.  A cold chronyd's jump from 0 to its
 * first correction is acquisition, not drift. */
static bool last_meaningful;
static unsigned long last_disruptions; /* DSR's count at that report */

static uint64_t ts_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static void open_state_file(void)
{
	int fd;
	struct stat st;
	void *map;

	fd = open(cfg->state_file, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0 && errno == ENOENT) {
		char *dir = strdup(cfg->state_file), *slash = dir ? strrchr(dir, '/') : NULL;

		if (slash && slash != dir) {
			*slash = '\0';
			mkdir(dir, 0755);
		}
		free(dir);
		fd = open(cfg->state_file, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	}
	if (fd < 0)
		goto fail;
	/* Readers rely on the file's size never shrinking under them. */
	if (fstat(fd, &st) < 0 ||
	    ((uint64_t)st.st_size < sizeof(*state) && ftruncate(fd, sizeof(*state)) < 0)) {
		close(fd);
		goto fail;
	}
	fchmod(fd, 0644);
	map = mmap(NULL, sizeof(*state), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		goto fail;
	state = map;
	if (vmclock_le32(state->magic) != VMCLOCKD_STATE_MAGIC ||
	    vmclock_le16(state->version) != VMCLOCKD_STATE_VERSION) {
		memset(state, 0, sizeof(*state));
		state->magic = VMCLOCKD_STATE_MAGIC;
		state->version = VMCLOCKD_STATE_VERSION;
	}
	/* A write interrupted by a crash left the count odd: close it. */
	if (state->seq_count & 1)
		state->seq_count++;
	state->size = sizeof(*state);
	if (LOG_RepeatRecovered(&file_failing))
		LOG(LOGS_INFO, "publishing state in %s again", cfg->state_file);
	return;
fail:
	if (LOG_RepeatFailing(&file_failing, errno))
		LOG(LOGS_WARN, "cannot publish state in %s: %s", cfg->state_file, strerror(errno));
}

/* The state's own seq_count protocol: odd while fields change. */
static void begin_write(void)
{
	__atomic_store_n(&state->seq_count, state->seq_count + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

static void end_write(void)
{
	__atomic_store_n(&state->seq_count, state->seq_count + 1, __ATOMIC_RELEASE);
}

/* Waiting for chrony to resync after a disruption: ask more often. */
static bool awaiting_resync(void)
{
	const DSR_Report *d = DSR_GetReport();

	return d->handling || !have_synced_marker || synced_marker != d->handled_marker;
}

static void schedule_poll(void)
{
	unsigned ms = awaiting_resync() && sync_state != VMCLOCKD_SYNC_UNKNOWN
			      ? cfg->burst_interval_ms : cfg->chrony_poll_ms;
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	evtimer_add(poll_ev, &tv);
}

static void tracking_done(const CCL_Result *r, void *arg)
{
	const DSR_Report *d = DSR_GetReport();
	const CPR_Tracking *t = &r->reply.tracking;

	if (r->outcome != CCL_DONE) {
		sync_state = VMCLOCKD_SYNC_UNKNOWN;
		if (LOG_RepeatFailing(&chrony_failing, r->error ? r->error : -1))
			DEBUG_LOG("chronyd tracking unavailable: %s", r->reason);
		/* chronyd's directory may have been recreated under our reply
		 * socket (a chrony restart under systemd): bind a fresh one. */
		CCL_Close(chrony);
		chrony = NULL;
		schedule_poll();
		return;
	}
	LOG_RepeatRecovered(&chrony_failing);
	if (t->leap_status != CPR_LEAP_UNSYNCHRONISED && !d->handling &&
	    !before(&request_sent, &d->handled_at)) {
		if (!have_synced_marker || synced_marker != d->handled_marker)
			DEBUG_LOG("chronyd synchronised after marker %llu",
				  (unsigned long long)d->handled_marker);
		have_synced_marker = true;
		synced_marker = d->handled_marker;
	}
	if (d->disruptions && awaiting_resync())
		sync_state = VMCLOCKD_SYNC_DISRUPTED;
	else if (t->leap_status == CPR_LEAP_UNSYNCHRONISED)
		sync_state = VMCLOCKD_SYNC_UNSYNCHRONIZED;
	else
		sync_state = VMCLOCKD_SYNC_SYNCHRONIZED;

	if (state) {
		double bound = t->root_delay / 2 + t->root_dispersion + fabs(t->current_correction);
		uint64_t now = ts_ns(CLOCK_REALTIME);
		double drift = CHRONY_CLOCK_ERROR_PPB + (fabs(t->skew_ppm) + fabs(t->resid_freq_ppm)) * 1000.0;

		/* A correction growing between two reports means the clock drifts
		 * away faster than chrony's statistics say (a frequency change not
		 * yet applied, or a clock chrony does not steer, as under -x):
		 * that growth rate bounds the drift too. */
		/* Not across a handover either: doffset moved the correction. */
		bool same_epoch = last_disruptions == d->disruptions && !d->handling;

		if (last_bound_time && now > last_bound_time && last_meaningful && same_epoch) {
			double growth = (fabs(t->current_correction) - last_correction) /
					((double)(now - last_bound_time) * 1e-9);

			if (growth > 0)
				drift += growth * 1e9;
		} else {
			/* No growth observed yet (first report, or the first after
			 * a handover): assume the clock may drift by chrony's whole
			 * frequency, as it does when chrony's steering is not
			 * applied to it. */
			drift += fabs(t->freq_ppm) * 1000.0;
		}
		last_correction = fabs(t->current_correction);
		last_bound_time = now;
		last_disruptions = d->disruptions;
		last_meaningful = t->leap_status != CPR_LEAP_UNSYNCHRONISED ||
				  (d->disruptions && !before(&request_sent, &d->handled_at));
		/* chronyd's figures are external input: a bound that is not a
		 * sane non-negative number of seconds is published as unknown. */
		if (!(bound >= 0 && bound < MAX_BOUND_S))
			bound = MAX_BOUND_S;
		begin_write();
		state->error_bound_ns = (uint64_t)ceil(bound * 1e9);
		state->error_bound_realtime_ns = now;
		state->drift_ppb = drift < 4e9 ? (uint32_t)ceil(drift) : UINT32_MAX;
		state->sync_state = sync_state;
		end_write();
	}
	schedule_poll();
}

static void poll_cb(evutil_socket_t fd, short what, void *arg)
{
	CPR_Packet p;

	if (!chrony && CCL_Open(cfg->chrony_cmd, ev_base, &chrony) < 0) {
		sync_state = VMCLOCKD_SYNC_UNKNOWN;
		schedule_poll();
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &request_sent);
	CPR_MakeTracking(&p);
	if (CCL_Start(chrony, &p, 0, 0, tracking_done, NULL) < 0)
		schedule_poll();
}

void PUB_Tick(void)
{
	const SMP_Report *s = SMP_GetReport();
	const DSR_Report *d = DSR_GetReport();
	unsigned timeout = 4 * cfg->interval_ms;

	/* An unusable state file is tried again once a second, not every tick. */
	if (!state && cfg->state_file && *cfg->state_file && RLM_Due(&open_retry, 1))
		open_state_file();
	if (!state)
		return;
	/* Seen before chrony is next asked: a disruption is at once DISRUPTED. */
	if (d->handling && sync_state != VMCLOCKD_SYNC_UNKNOWN)
		sync_state = VMCLOCKD_SYNC_DISRUPTED;

	begin_write();
	state->sync_state = sync_state;
	state->withhold_reason = s->reason < SMP_REASON_COUNT ? (uint8_t)s->reason : 0;
	state->heartbeat_timeout_ms = (uint16_t)(timeout < MIN_HEARTBEAT_TIMEOUT_MS
						 ? MIN_HEARTBEAT_TIMEOUT_MS : timeout > 60000 ? 60000 : timeout);
	state->heartbeat_realtime_ns = ts_ns(CLOCK_REALTIME);
	state->heartbeat_monotonic_ns = ts_ns(CLOCK_MONOTONIC);
	/* While a disruption is handled this is still the old marker, so
	 * readers comparing it with the device see DISRUPTED. */
	state->disruption_marker = d->handled_marker;
	state->vm_generation_counter = d->handled_gen;
	state->last_offset_ns = s->last_offset_ns;
	if (d->disruptions)
		state->last_disruption_realtime_ns = (uint64_t)d->last_disruption.tv_sec * 1000000000u +
						     (uint64_t)d->last_disruption.tv_nsec;
	state->disruptions += d->disruptions - disruptions_published;
	disruptions_published = d->disruptions;
	state->samples_fed = s->fed;
	for (int i = 0; i < SMP_REASON_COUNT; i++)
		state->withheld[i] = s->withheld[i];
	end_write();
}

void PUB_Initialise(struct event_base *base, const CNF_Settings *settings)
{
	cfg = settings;
	ev_base = base;
	if (cfg->chrony_cmd && *cfg->chrony_cmd) {
		poll_ev = evtimer_new(base, poll_cb, NULL);
		event_active(poll_ev, EV_TIMEOUT, 0);
	}
}

void PUB_Finalise(void)
{
	if (poll_ev)
		event_free(poll_ev);
	poll_ev = NULL;
	if (chrony)
		CCL_Close(chrony);
	chrony = NULL;
	if (state) {
		/* Gone on purpose: readers should say UNKNOWN now, not once the
		 * heartbeat has aged.  A restart writes it afresh. */
		begin_write();
		state->sync_state = VMCLOCKD_SYNC_UNKNOWN;
		state->heartbeat_realtime_ns = 0;
		end_write();
		munmap(state, sizeof(*state));
	}
	state = NULL;
}
