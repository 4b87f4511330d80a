/* SPDX-License-Identifier: BSD-2-Clause
 *
 * publish.c - the published state applications read, and STATUS=.
 *
 * The state is kept here in host order and written out whole, little-endian,
 * with pwrite(2) under its seq_count (the count made odd, the structure, the
 * count made even), never through a mapping: whoever truncates the file
 * would make a store to a mapping raise SIGBUS.  A truncated file is simply
 * written whole again at the next tick; a failed write (a full file system)
 * is logged once and retried at the next tick.  posix_fallocate() reserves
 * the blocks before the first write, so that a full file system is an error
 * at start-up, not a fault.  Once a second the path is checked to still name
 * the file written: if it was removed or replaced, a fresh file is made by
 * temp file + rename in the published state's directory, which is ours.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmclockd-state.h"
#include "../common/timeutil.h"

#include "bound.h"
#include "cbshm.h"
#include "fileio.h"
#include "log.h"
#include "notify.h"
#include "publish.h"
#include "ratelimit.h"

/* Readers take the daemon to be gone when its heartbeat is older than twice
 * the longest wait for the next tick (the sampler's report says how long
 * that is: on a notifying device the timer may be far slower than
 * interval-ms) plus this slack for a loaded machine.  The field is 16 bits
 * of milliseconds: the sampler never waits longer than SMP_MAX_TICK_MS. */
#define HEARTBEAT_TIMEOUT_TICKS 2u
#define HEARTBEAT_SLACK_MS 1000u
_Static_assert(HEARTBEAT_TIMEOUT_TICKS * SMP_MAX_TICK_MS + HEARTBEAT_SLACK_MS <= UINT16_MAX,
	       "heartbeat_timeout_ms is 16 bits");
/* How often the path is checked to still name the file written. */
#define REPLACED_CHECK_S 1

static const CNF_Settings *cfg;
static int state_fd = -1;
static struct stat state_id;          /* st_dev and st_ino of the file written */
static struct vmclockd_state state;   /* host order; written out little-endian */
static LOG_Repeat file_failing, write_failing;
static RLM_Limit open_retry, replaced_check;
static unsigned long disruptions_published; /* of DSR's count, added to the file's */
static POL_Reason status_reason = POL_REASON_COUNT; /* of the last STATUS= */
static unsigned status_failing; /* outputs not taking samples, at the last STATUS= */
/* The page's side of the published bound: the errors of the samples fed,
 * and the last tick's sample if it fed one. */
static BND_Held held;
static BND_Sample last_sample;
static bool last_fed;
static bool contradicted; /* as last published, to log its changes */
static LOG_Limit contradiction_log = { .states = true };

/* The state as the file holds it: every field little-endian. */
static void encode(const struct vmclockd_state *s, struct vmclockd_state *le)
{
	*le = *s;
	le->magic = vmclock_le32(s->magic);
	le->version = vmclock_le16(s->version);
	le->size = vmclock_le16(s->size);
	le->seq_count = vmclock_le32(s->seq_count);
	le->heartbeat_timeout_ms = vmclock_le16(s->heartbeat_timeout_ms);
	le->heartbeat_realtime_ns = vmclock_le64(s->heartbeat_realtime_ns);
	le->heartbeat_monotonic_ns = vmclock_le64(s->heartbeat_monotonic_ns);
	le->disruption_marker = vmclock_le64(s->disruption_marker);
	le->vm_generation_counter = vmclock_le64(s->vm_generation_counter);
	le->error_bound_ns = vmclock_le64(s->error_bound_ns);
	le->error_bound_realtime_ns = vmclock_le64(s->error_bound_realtime_ns);
	le->drift_ppb = vmclock_le32(s->drift_ppb);
	le->reserved0 = (int32_t)vmclock_le32((uint32_t)s->reserved0);
	le->last_offset_ns = (int64_t)vmclock_le64((uint64_t)s->last_offset_ns);
	le->last_disruption_realtime_ns = vmclock_le64(s->last_disruption_realtime_ns);
	le->disruptions = vmclock_le64(s->disruptions);
	le->samples_fed = vmclock_le64(s->samples_fed);
	for (int i = 0; i < VMCLOCKD_STATE_REASONS; i++)
		le->withheld[i] = vmclock_le64(s->withheld[i]);
}

/* The count alone, little-endian, at its offset: 0, or a negative errno
 * value. */
static int write_count(int fd, uint32_t seq)
{
	uint32_t le = vmclock_le32(seq);

	return FIO_PwriteAll(fd, &le, sizeof(le), offsetof(struct vmclockd_state, seq_count));
}

/*
 * The whole state under the seq_count protocol, as readers expect it: the
 * count odd, then the fields, then the count even, each write ordered after
 * the previous one.  Every write starts from an odd count larger than any
 * the file held.  0, or a negative errno value.
 */
static int write_state(int fd)
{
	struct vmclockd_state le;
	int r;

	state.seq_count |= 1;
	encode(&state, &le);
	if ((r = write_count(fd, state.seq_count)) < 0)
		return r;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if ((r = FIO_PwriteAll(fd, &le, sizeof(le), 0)) < 0)
		return r;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	state.seq_count++;
	return write_count(fd, state.seq_count);
}

/* Writes the state; a failure is logged when it starts and when it ends. */
static void write_state_file(void)
{
	int r;

	if (state_fd < 0)
		return;
	if ((r = write_state(state_fd)) == 0) {
		if (LOG_RepeatRecovered(&write_failing))
			LOG_FileState(LOGS_INFO, cfg->publish_file, "written", 0, NULL,
				      "writing state in %s again", cfg->publish_file);
		return;
	}
	/* The count may be left odd in the file: readers say UNKNOWN until the
	 * next write, which starts from a larger odd count. */
	if (LOG_RepeatFailing(&write_failing, -r))
		LOG_FileState(LOGS_WARN, cfg->publish_file, "unwritable", -r, NULL,
			      "cannot write state in %s: %s", cfg->publish_file, strerror(-r));
}

/* The published state, then ClockBound's segment from the same state: a reader
 * of both never finds the segment ahead of the file. */
static void flush_state(void)
{
	write_state_file();
	CBS_Publish(&state);
}

/* A file at the path we may keep writing in place: a regular file of ours
 * with no other name (else a hard link could make us write elsewhere). */
static bool ours(const struct stat *st)
{
	return S_ISREG(st->st_mode) && st->st_uid == geteuid() && st->st_nlink == 1;
}

/* Carries on from a published state a previous daemon left: its count (readers
 * see it grow, never go back) and its disruption total. */
static void adopt(int fd)
{
	struct vmclockd_state old;

	if (pread(fd, &old, sizeof(old), 0) != (ssize_t)sizeof(old) ||
	    vmclock_le32(old.magic) != VMCLOCKD_STATE_MAGIC ||
	    vmclock_le16(old.version) != VMCLOCKD_STATE_VERSION)
		return;
	/* A write interrupted by a crash left the count odd: the next write
	 * starts from the even count after it. */
	state.seq_count = (vmclock_le32(old.seq_count) + 1) & ~1u;
	state.disruptions = vmclock_le64(old.disruptions);
}

/* A fresh published state by temp file + rename, reserved and written whole
 * before it takes the name.  Returns its descriptor, or a negative errno
 * value. */
static int create_state_file(void)
{
	char *tmp = NULL;
	struct stat st;
	int fd, err;

	if (asprintf(&tmp, "%s.tmp", cfg->publish_file) < 0)
		return -ENOMEM;
	(void)unlink(tmp); /* a leftover of a daemon that died here */
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		err = -errno;
		free(tmp);
		return err;
	}
	/* The blocks are reserved now: a full file system is this error, not
	 * a fault at the first store. */
	if ((err = posix_fallocate(fd, 0, sizeof(state))) != 0)
		err = -err;
	else if (fchmod(fd, 0644) < 0 || fstat(fd, &st) < 0)
		err = -errno;
	else if ((err = write_state(fd)) == 0 && rename(tmp, cfg->publish_file) < 0)
		err = -errno;
	if (err < 0) {
		close(fd);
		(void)unlink(tmp);
		free(tmp);
		return err;
	}
	state_id = st;
	free(tmp);
	return fd;
}

static void make_parent_dir(void)
{
	char *dir = strdup(cfg->publish_file), *slash = dir ? strrchr(dir, '/') : NULL;

	if (slash && slash != dir) {
		*slash = '\0';
		(void)mkdir(dir, 0755);
	}
	free(dir);
}

/* The published state: the one a previous daemon left if it is ours (its
 * readers go on without reopening), else a fresh one.  Its descriptor, or a
 * negative errno value. */
static int open_state_file(void)
{
	struct stat st;
	int fd, err;

	fd = open(cfg->publish_file, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd >= 0 && (fstat(fd, &st) < 0 || !ours(&st))) {
		close(fd);
		fd = -1;
	}
	if (fd < 0) {
		make_parent_dir();
		return create_state_file();
	}
	adopt(fd);
	if ((err = posix_fallocate(fd, 0, sizeof(state))) != 0)
		err = -err;
	else
		err = write_state(fd);
	if (err < 0) {
		close(fd);
		return err;
	}
	state_id = st;
	return fd;
}

/* The state is published in fd from now on, or fd says why it cannot be
 * (said once per cause, and once when it can again). */
static void published_in(int fd)
{
	state_fd = fd < 0 ? -1 : fd;
	if (fd >= 0) {
		RLM_Restart(&replaced_check);
		if (LOG_RepeatRecovered(&file_failing))
			LOG_FileState(LOGS_INFO, cfg->publish_file, "published", 0, NULL,
				      "publishing state in %s again", cfg->publish_file);
	} else if (LOG_RepeatFailing(&file_failing, -fd)) {
		LOG_FileState(LOGS_WARN, cfg->publish_file, "unpublished", -fd, NULL,
			      "cannot publish state in %s: %s", cfg->publish_file, strerror(-fd));
	}
}

/* Once a second: the path still names the file written?  If it was
 * removed or replaced (by rename, or a restore from backup), make a fresh
 * one: readers look for it by path. */
static void check_replaced(void)
{
	struct stat st;

	if (state_fd < 0 || !RLM_Due(&replaced_check, REPLACED_CHECK_S))
		return;
	if (lstat(cfg->publish_file, &st) == 0 && st.st_dev == state_id.st_dev &&
	    st.st_ino == state_id.st_ino)
		return;
	LOG_FileState(LOGS_WARN, cfg->publish_file, "replaced", 0, NULL,
		      "published state %s was removed or replaced: writing a fresh one",
		      cfg->publish_file);
	close(state_fd);
	RLM_Restart(&open_retry);
	make_parent_dir();
	published_in(create_state_file());
}

/* STATUS=: a change of reason at once, figures at most once a second. */
static void update_status(const SMP_Report *s, const DSR_Report *d)
{
	bool urgent = s->reason != status_reason || s->outputs_failing != status_failing;

	status_reason = s->reason;
	status_failing = s->outputs_failing;
	/* "feeding" only while some output takes the samples; one that does
	 * not is named with why. */
	if (s->reason == POL_FED && s->outputs_failing && s->outputs_failing >= s->outputs)
		NTF_Status(urgent, "not feeding (%s): offset %+.9f s, bound %llu ns, marker %llu",
			   s->output_problems, (double)s->last_offset_ns * 1e-9,
			   (unsigned long long)s->last_bound_ns, (unsigned long long)d->handled_marker);
	else if (s->reason == POL_FED)
		NTF_Status(urgent, "feeding: offset %+.9f s, bound %llu ns, marker %llu, %lu fed%s%s",
			   (double)s->last_offset_ns * 1e-9, (unsigned long long)s->last_bound_ns,
			   (unsigned long long)d->handled_marker, s->fed,
			   s->outputs_failing ? "; not taken by " : "", s->output_problems);
	else if (s->reason == POL_BAD_PAGE || s->reason == POL_NO_DEVICE)
		NTF_Status(urgent, "withholding: %s (%s) at %s", SMP_ReasonName(s->reason),
			   vmclock_strerror(s->reason_errno), cfg->device);
	else
		NTF_Status(urgent, "withholding: %s, marker %llu", SMP_ReasonName(s->reason),
			   (unsigned long long)d->handled_marker);
}

/* The sync state and bound from chronyd's report, the page's error and the
 * last measurement (bound.h). */
static void set_bound(const CSY_Report *c)
{
	BND_Chrony chrony = { .sync_state = c->sync_state, .bound_ns = c->bound_ns,
			      .bound_realtime_ns = c->bound_realtime_ns, .drift_ppb = c->drift_ppb };
	BND_Published p;

	if (!c->have_bound) {
		state.sync_state = c->sync_state;
		return;
	}
	p = BND_Combine(&chrony, &held, last_fed ? &last_sample : NULL);
	/* Each change logged, a page flapping across the bound cut to a line
	 * every so often, and the state after such a flood said (log.h); the
	 * fields say which change, the offset and the bound published. */
	if (p.contradicted != contradicted) {
		char f[3][48];
		const char *fields[] = { f[0], f[1], f[2], NULL };

		snprintf(f[0], sizeof(f[0]), "CONTRADICTED=%d", p.contradicted);
		snprintf(f[1], sizeof(f[1]), "OFFSET_NS=%" PRId64, last_sample.offset_ns);
		snprintf(f[2], sizeof(f[2]), "BOUND_NS=%" PRIu64, p.bound_ns);
		if (p.contradicted)
			LOG_LimitedEvent(&contradiction_log, LOGS_WARN, NULL, fields,
					 "the page and the system clock differ by %+.9f s, beyond "
					 "chronyd's bound: published as unsynchronised, bound %.9f s "
					 "(was the realtime clock stepped?)",
					 (double)last_sample.offset_ns * 1e-9, (double)p.bound_ns * 1e-9);
		else
			LOG_LimitedEvent(&contradiction_log, LOGS_INFO, NULL, fields,
					 "the page and the system clock agree with chronyd's bound again");
		contradicted = p.contradicted;
	}
	state.sync_state = p.sync_state;
	state.error_bound_ns = p.bound_ns;
	state.error_bound_realtime_ns = p.bound_realtime_ns;
	state.drift_ppb = p.drift_ppb;
}

void PUB_ChronyUpdated(const CSY_Report *c)
{
	if (!c->have_bound)
		return;
	set_bound(c);
	flush_state();
}

/* The page's side of the bound from a tick's report. */
static void sampled(const SMP_Report *s)
{
	last_fed = s->reason == POL_FED;
	if (!last_fed)
		return;
	last_sample = (BND_Sample){ .realtime_ns = s->last_system_ns,
				    .offset_ns = s->last_offset_ns,
				    .uncertainty_ns = s->last_uncertainty_ns,
				    .error_ns = s->last_bound_ns,
				    .error_ppb = s->last_bound_ppb };
	BND_Fed(&held, &last_sample, TIM_NowNs(CLOCK_MONOTONIC));
}

void PUB_Tick(const SMP_Report *s, const DSR_Report *d, const CSY_Report *c)
{
	unsigned tick_ms = s->longest_tick_ms < SMP_MAX_TICK_MS ? s->longest_tick_ms : SMP_MAX_TICK_MS;

	update_status(s, d);
	sampled(s);

	/* An unusable published state is tried again once a second, not every
	 * tick. */
	if (state_fd < 0 && cfg->publish_file && *cfg->publish_file && RLM_Due(&open_retry, 1))
		published_in(open_state_file());
	check_replaced();
	set_bound(c);
	state.withhold_reason = s->reason < POL_REASON_COUNT ? (uint8_t)s->reason : 0;
	state.heartbeat_timeout_ms = (uint16_t)(HEARTBEAT_TIMEOUT_TICKS * tick_ms + HEARTBEAT_SLACK_MS);
	state.heartbeat_realtime_ns = TIM_NowNs(CLOCK_REALTIME);
	state.heartbeat_monotonic_ns = TIM_NowNs(CLOCK_MONOTONIC);
	/* While a disruption is handled this is still the old marker, so
	 * readers comparing it with the device see DISRUPTED. */
	state.disruption_marker = d->handled_marker;
	state.vm_generation_counter = d->handled_gen;
	state.last_offset_ns = s->last_offset_ns;
	if (d->disruptions)
		state.last_disruption_realtime_ns = TIM_TimespecToNs(&d->last_disruption);
	state.disruptions += d->disruptions - disruptions_published;
	disruptions_published = d->disruptions;
	state.samples_fed = s->fed;
	for (int i = 0; i < POL_REASON_COUNT; i++)
		state.withheld[i] = s->withheld[i];
	flush_state();
}

void PUB_Initialise(const CNF_Settings *settings)
{
	cfg = settings;
	memset(&state, 0, sizeof(state));
	state.magic = VMCLOCKD_STATE_MAGIC;
	state.version = VMCLOCKD_STATE_VERSION;
	state.size = sizeof(state);
	state.sync_state = VMCLOCKD_SYNC_UNKNOWN;
	/* No bound until chronyd's tracking has been read. */
	state.error_bound_ns = VMCLOCKD_BOUND_UNKNOWN;
	state.drift_ppb = UINT32_MAX;
	CBS_Initialise(settings);
}

static void close_state_file(void)
{
	if (state_fd >= 0) {
		/* Gone on purpose: readers should say UNKNOWN now, not once the
		 * heartbeat has aged.  A restart writes it afresh. */
		state.sync_state = VMCLOCKD_SYNC_UNKNOWN;
		state.heartbeat_realtime_ns = 0;
		flush_state();
		close(state_fd);
	}
	state_fd = -1;
}

void PUB_Reconfigure(const CNF_Settings *fresh)
{
	const char *old_path = cfg->publish_file ? cfg->publish_file : "";
	const char *new_path = fresh->publish_file ? fresh->publish_file : "";

	/* The same file stays open: its heartbeat never stops.  Another one
	 * is opened at the next tick, the old one told we are gone. */
	if (strcmp(old_path, new_path) != 0) {
		close_state_file();
		open_retry = (RLM_Limit){ 0 };
	}
	CBS_Reconfigure(fresh);
}

void PUB_Finalise(void)
{
	close_state_file();
	CBS_Finalise();
}
