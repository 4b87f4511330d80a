/* SPDX-License-Identifier: BSD-2-Clause
 *
 * publish.c - the state file applications read, and STATUS=.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmclockd-state.h"

#include "log.h"
#include "notify.h"
#include "publish.h"
#include "ratelimit.h"

_Static_assert(SMP_REASON_COUNT == VMCLOCKD_STATE_REASONS, "withheld[] matches the reasons");

/* Readers take the daemon to be gone when its heartbeat is older than this
 * many ticks, within these limits (the field is 16 bits of milliseconds). */
#define HEARTBEAT_TIMEOUT_TICKS 4u
#define MIN_HEARTBEAT_TIMEOUT_MS 1000u
#define MAX_HEARTBEAT_TIMEOUT_MS 60000u
_Static_assert(MAX_HEARTBEAT_TIMEOUT_MS <= UINT16_MAX, "heartbeat_timeout_ms is 16 bits");

static const CNF_Settings *cfg;
static struct vmclockd_state *state; /* the mapping */
static LOG_Repeat file_failing;
static RLM_Limit open_retry;
static unsigned long disruptions_published; /* of DSR's count, added to the file's */
static SMP_Reason status_reason = SMP_REASON_COUNT; /* of the last STATUS= */

static uint64_t ts_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
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

/* STATUS=: a change of reason at once, figures at most once a second. */
static void update_status(const SMP_Report *s, const DSR_Report *d)
{
	bool urgent = s->reason != status_reason;

	status_reason = s->reason;
	if (s->reason == SMP_FED)
		NTF_Status(urgent, "feeding: offset %+.9f s, bound %llu ns, marker %llu, %lu fed",
			   (double)s->last_offset_ns * 1e-9, (unsigned long long)s->last_bound_ns,
			   (unsigned long long)d->handled_marker, s->fed);
	else if (s->reason == SMP_BAD_PAGE || s->reason == SMP_NO_DEVICE)
		NTF_Status(urgent, "withholding: %s (%s) at %s", SMP_ReasonName(s->reason),
			   vmclock_strerror(s->reason_errno), cfg->device);
	else
		NTF_Status(urgent, "withholding: %s, marker %llu", SMP_ReasonName(s->reason),
			   (unsigned long long)d->handled_marker);
}

void PUB_ChronyUpdated(const CSY_Report *c)
{
	if (!state || !c->have_bound)
		return;
	begin_write();
	state->error_bound_ns = c->bound_ns;
	state->error_bound_realtime_ns = c->bound_realtime_ns;
	state->drift_ppb = c->drift_ppb;
	state->sync_state = c->sync_state;
	end_write();
}

void PUB_Tick(const SMP_Report *s, const DSR_Report *d, const CSY_Report *c)
{
	unsigned timeout = HEARTBEAT_TIMEOUT_TICKS * cfg->interval_ms;

	update_status(s, d);

	/* An unusable state file is tried again once a second, not every tick. */
	if (!state && cfg->state_file && *cfg->state_file && RLM_Due(&open_retry, 1))
		open_state_file();
	if (!state)
		return;
	begin_write();
	state->sync_state = c->sync_state;
	state->withhold_reason = s->reason < SMP_REASON_COUNT ? (uint8_t)s->reason : 0;
	state->heartbeat_timeout_ms = (uint16_t)(timeout < MIN_HEARTBEAT_TIMEOUT_MS ? MIN_HEARTBEAT_TIMEOUT_MS
						 : timeout > MAX_HEARTBEAT_TIMEOUT_MS ? MAX_HEARTBEAT_TIMEOUT_MS
										      : timeout);
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

void PUB_Initialise(const CNF_Settings *settings)
{
	cfg = settings;
}

static void close_state_file(void)
{
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

void PUB_Reconfigure(const CNF_Settings *fresh)
{
	const char *old_path = cfg->state_file ? cfg->state_file : "";
	const char *new_path = fresh->state_file ? fresh->state_file : "";

	/* The same file stays mapped: its heartbeat never stops.  Another one
	 * is opened at the next tick, the old one told we are gone. */
	if (strcmp(old_path, new_path) != 0) {
		close_state_file();
		open_retry = (RLM_Limit){ 0 };
	}
}

void PUB_Finalise(void)
{
	close_state_file();
}
