/* SPDX-License-Identifier: BSD-2-Clause
 *
 * disrupt.c - disruption markers, generation counters, and chrony's reset.
 *
 * On a new disruption_marker the handover to chronyd is, in order: reset
 * sources (no measurement from the old host survives), tracking (chrony's
 * correction c after the reset), dfreq (the counter's frequency change,
 * -(P1/P0 - 1) ppm, exact from the two pages) and doffset (-(o - c), o the
 * device-minus-system offset measured just before it is sent).  chrony's
 * clock is then right before it has reselected the refclock, and the sampler
 * bursts so that reselection is quick.  On a marker-only page there is no
 * time: reset sources, then an NTP burst.
 *
 * Failures: a step that fails is retried with doubling backoff, samples
 * withheld; a round of tries that fails (chronyd refusing, silent or not
 * running) leaves the disruption unhandled: the handled marker, its period
 * and handled_at stay as they were (in memory and in the state file, so a
 * restart hands it over again), chronysync keeps saying DISRUPTED, samples
 * are fed while the handover waits, and it is tried again at the hold-off
 * cadence until chronyd takes it (handover.c says it once).  A chronyd that
 * was not running gets the reset and the step when it is, but no dfreq: its
 * frequency comes from its drift file, right for a period not known.
 * Sampling itself never waits.
 */
#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disrupt.h"
#include "hnd_driver.h"
#include "log.h"
#include "ratelimit.h"

#define STATE_FILE "marker"
/* A saved counter period further than this from the page's is rewritten. */
#define PERIOD_RESAVE_PPM 0.001
/* One journal field, "NAME=value": the longest name here is 23 characters,
 * a value at most 20 digits or a %f of a double we bound. */
#define FIELD_LEN 64

/* The most journal fields of a disruption record: OLD_MARKER, NEW_MARKER,
 * FIRST_MARKER, MARKER_CHANGES, VM_GENERATION_COUNTER, STEP_NS,
 * COUNTER_PERIOD_FRAC_SEC, COUNTER_PERIOD_SHIFT, FREQ_CHANGE_PPM. */
#define DISRUPTION_FIELDS 9

typedef HND_Period Period;

static const CNF_Settings *cfg;
static DSR_SamplerOps sampler;
static DSR_Report report;
static bool state_known;     /* handled marker loaded or adopted */
static uint64_t last_flags;
static uint64_t target_marker, target_gen; /* being handled */
static Period period_handled; /* the counter period under handled_marker */
static Period period_target;
static Period period_saved;   /* as last written to the state file */
static bool target_has_time;
static LOG_Repeat save_failing;
/* During a handover, what it asked to be kept (have_record): the period
 * chronyd is right for and a dfreq in doubt.  loaded_doubt: the dfreq in
 * doubt the state file held at start, for the first handover. */
static bool have_record;
static HND_Record hnd_record;
static HND_Dfreq loaded_doubt;
/* The disruption being handled, for its one journal record, logged when
 * it is handled: the marker chronyd was right for, the first marker seen
 * after it, how many marker changes the ticks saw (a marker that changes
 * faster than a handover completes is one handover), and whether it began
 * while vmclockd was down. */
static struct {
	uint64_t old_marker, first_marker;
	unsigned long changes;
	bool while_down;
} episode;
static HND_Anchor loaded_anchor;
/* The offset last measured under the handled marker: the step is measured
 * from it when the marker changes. */
static bool have_offset;
static int64_t last_offset_ns;
/* The sampler reads another device: the next page starts a new epoch,
 * whose handover heads for epoch_period (see DSR_SourceChanged). */
static bool source_changed;
static Period epoch_period;

const DSR_Report *DSR_GetReport(void)
{
	return &report;
}

/* The counter period of a page that carries time, by the library's
 * predicate (the one the sample policy applies too); !valid otherwise.  A
 * period from anywhere else (the state file) is judged by putting it on a
 * page copy: one owner for "a period dfreq may use". */
static Period period_of(const struct vmclock_abi *page)
{
	Period p = { false, 0, 0 };

	if (vmclock_has_time(page) == 0) {
		p.valid = true;
		p.frac = vmclock_le64(page->counter_period_frac_sec);
		p.shift = page->counter_period_shift;
	}
	return p;
}

/* ---- the state file -------------------------------------------------- */

/*
 * "marker M\ngeneration G\nperiod F S\n" in STATE_FILE in the state
 * directory: the handled marker and generation, and the counter period
 * chronyd's frequency is right for (none: not known, no dfreq is composed).
 * During a handover that sends a dfreq, a fourth line is written ahead of
 * it, "dfreq M F0 S0 F1 S1 D FB": the target marker, the periods it goes
 * from and to, the change D (ppm, as chronyd decodes it) and chronyd's
 * frequency FB before it (ppm; both hexadecimal floating point, exact).
 * At start a dfreq line makes the first handover resolve it from chronyd's
 * frequency before anything else (handover.c); one that does not parse
 * leaves the period unknown.  During a handover that read chronyd's
 * frequency, "anchor F S FA" keeps it (FA, hexadecimal) with the period it
 * was right for, written before samples are fed between failed rounds: a
 * restart's handover takes it rather than a frequency chronyd may have
 * learned from the samples since (one that does not parse: period
 * unknown).  Writes are flushed to the disk (the file and the directory)
 * before they count: the dfreq line must outlive a crash.
 *
 * The directory must be ours (owner our uid, writable by nobody
 * else): whoever can write it could plant a marker and have a disruption
 * handed over twice.  Its path is configuration and is followed like the
 * configuration file's; inside it every call is relative to the open
 * directory, never to a path again, and the files are opened with
 * O_NOFOLLOW|O_NONBLOCK (a symbolic link or a FIFO put there is an error,
 * not a hang) and checked to be regular files of bounded size.  Writes go to
 * a fresh temporary file (unlinked first, created O_EXCL) renamed over the
 * file.
 *
 * A newly handled marker is written at once: a restart must know which
 * disruption chronyd was already handed.  A changed generation or period
 * (which can flap) is written at most once every STATE_WRITE_INTERVAL_S,
 * the latest values always, by a timer if nothing else comes, and at exit.
 * A write that failed (a full or failing disk, a directory not ours) is
 * retried by the same timer every STATE_RETRY_S, with the latest values,
 * until one succeeds: a handled marker that never reached the disk would
 * have a restart hand the same disruption over again, its dfreq onto a
 * frequency chronyd has learned from the samples since.  Until then the
 * report says so (DSR_Report.unsaved).
 */
#define STATE_TMP STATE_FILE ".tmp"
#define MAX_STATE_BYTES 4096
#define STATE_WRITE_INTERVAL_S 1
#define STATE_RETRY_S 1
/* A drifting period is rewritten at most this often (and at exit). */
#define PERIOD_RESAVE_INTERVAL_S 60
static RLM_Limit resave_limit;
static RLM_Limit write_limit;
static struct event *save_ev; /* a deferred write */
/* LOG_Repeat cause: the directory is not ours alone (errno values are > 0). */
#define DIR_NOT_OURS (-1)

static void state_path(char *buf, size_t len, const char *suffix)
{
	snprintf(buf, len, "%s/%s%s", cfg->state_dir, STATE_FILE, suffix);
}

/* The state directory, open, if it is ours alone; else -1 with why (and the
 * errno or DIR_NOT_OURS in *cause). */
static int open_state_dir(bool create, char *why, size_t why_len, int *cause)
{
	struct stat st;
	int fd;

	if (create && mkdir(cfg->state_dir, 0755) < 0 && errno != EEXIST)
		goto fail;
	fd = open(cfg->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		goto fail;
	if (fstat(fd, &st) < 0) {
		close(fd);
		goto fail;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 022)) {
		snprintf(why, why_len, "the directory is not vmclockd's alone (owner uid %u, mode %04o)",
			 (unsigned)st.st_uid, (unsigned)st.st_mode & 07777);
		*cause = DIR_NOT_OURS;
		close(fd);
		return -1;
	}
	return fd;
fail:
	*cause = errno;
	snprintf(why, why_len, "%s", strerror(errno));
	return -1;
}

/* 0, or a negative errno value (said once per cause). */
static int save_state(void)
{
	char path[4096], why[128], text[512];
	struct timeval retry = { STATE_RETRY_S, 0 };
	int dir, fd = -1, len, cause = 0;
	ssize_t done = 0;

	state_path(path, sizeof(path), "");
	/* Whatever is pending is written now, with the latest values. */
	if (save_ev)
		evtimer_del(save_ev);
	RLM_Restart(&write_limit);
	/* Also on failure: an unwritable directory is not retried every tick. */
	period_saved = period_handled;
	len = snprintf(text, sizeof(text), "marker %" PRIu64 "\ngeneration %" PRIu64 "\n",
		       report.handled_marker, report.handled_gen);
	if (report.handling && have_record) {
		/* The handover's own record: chronyd's period may differ from
		 * the handled marker's already, and a dfreq may be in doubt. */
		const HND_Dfreq *d = &hnd_record.in_doubt;
		const HND_Anchor *a = &hnd_record.anchor;

		if (hnd_record.chrony_period.valid)
			len += snprintf(text + len, sizeof(text) - (size_t)len,
					"period %" PRIu64 " %u\n", hnd_record.chrony_period.frac,
					hnd_record.chrony_period.shift);
		if (a->valid)
			len += snprintf(text + len, sizeof(text) - (size_t)len,
					"anchor %" PRIu64 " %u %a\n", a->period.frac,
					a->period.shift, a->freq_ppm);
		if (d->valid)
			len += snprintf(text + len, sizeof(text) - (size_t)len,
					"dfreq %" PRIu64 " %" PRIu64 " %u %" PRIu64 " %u %a %a\n",
					d->marker, d->from.frac, d->from.shift, d->to.frac,
					d->to.shift, d->dfreq_ppm, d->freq_before_ppm);
	} else if (period_handled.valid) {
		len += snprintf(text + len, sizeof(text) - (size_t)len, "period %" PRIu64 " %u\n",
				period_handled.frac, period_handled.shift);
	}

	dir = open_state_dir(true, why, sizeof(why), &cause);
	if (dir < 0)
		goto fail;
	if (unlinkat(dir, STATE_TMP, 0) < 0 && errno != ENOENT)
		goto fail_errno;
	fd = openat(dir, STATE_TMP, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK,
		    0644);
	if (fd < 0)
		goto fail_errno;
	while (done < len) {
		ssize_t n = write(fd, text + done, (size_t)(len - done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto fail_errno;
		done += n;
	}
	if (fsync(fd) < 0)
		goto fail_errno;
	if (close(fd) < 0) {
		fd = -1;
		goto fail_errno;
	}
	fd = -1;
	if (renameat(dir, STATE_TMP, dir, STATE_FILE) < 0)
		goto fail_errno;
	/* The rename itself on the disk.  Not undone if this fails: the new
	 * file is the truth either way, it is the old one that may come back. */
	if (fsync(dir) < 0)
		goto fail_errno;
	close(dir);
	report.unsaved = false;
	if (LOG_RepeatRecovered(&save_failing))
		LOG(LOGS_INFO, "saved the handled marker in %s again", path);
	return 0;
fail_errno:
	cause = errno ? errno : EIO;
	snprintf(why, sizeof(why), "%s", strerror(cause));
fail:
	if (LOG_RepeatFailing(&save_failing, cause))
		LOG(LOGS_WARN, "cannot save the handled marker in %s: %s; a restart will not "
		    "know it until it is saved (tried again every %d s)", path, why,
		    STATE_RETRY_S);
	if (fd >= 0)
		close(fd);
	if (dir >= 0) {
		unlinkat(dir, STATE_TMP, 0);
		close(dir);
	}
	report.unsaved = true;
	if (save_ev)
		evtimer_add(save_ev, &retry);
	return cause > 0 ? -cause : -EACCES;
}

static void save_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)save_state();
}

/* A generation or period changed: written now if the last write was long
 * enough ago, else by the timer with whatever is latest then. */
static void save_soon(void)
{
	struct timeval tv = { STATE_WRITE_INTERVAL_S, 0 };

	if (RLM_Due(&write_limit, STATE_WRITE_INTERVAL_S))
		save_state();
	else if (save_ev && !evtimer_pending(save_ev, NULL))
		evtimer_add(save_ev, &tv);
}

/* The file's text, NUL-terminated, if it is a regular file of at most
 * MAX_STATE_BYTES in a directory of ours; false (said, unless there is
 * simply no file yet) otherwise. */
static bool read_state(const char *path, char *buf)
{
	char why[128];
	struct stat st;
	size_t len = 0;
	int dir, fd, cause;

	dir = open_state_dir(false, why, sizeof(why), &cause);
	if (dir < 0) {
		if (cause != ENOENT)
			LOG(LOGS_WARN, "not reading the handled marker in %s: %s; starting afresh",
			    path, why);
		return false;
	}
	fd = openat(dir, STATE_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	close(dir);
	if (fd < 0) {
		if (errno != ENOENT)
			LOG(LOGS_WARN, "cannot read %s: %s; starting afresh", path, strerror(errno));
		return false;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		LOG(LOGS_WARN, "%s is not a regular file; starting afresh", path);
		close(fd);
		return false;
	}
	while (len <= MAX_STATE_BYTES) {
		ssize_t n = read(fd, buf + len, MAX_STATE_BYTES + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			LOG(LOGS_WARN, "cannot read %s: %s; starting afresh", path, strerror(errno));
			close(fd);
			return false;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (len > MAX_STATE_BYTES) {
		LOG(LOGS_WARN, "%s is larger than %d bytes; starting afresh", path, MAX_STATE_BYTES);
		return false;
	}
	buf[len] = '\0';
	return true;
}

/* PAGE: the page now, on which a saved period is judged. */
static bool load_state(const struct vmclock_abi *page)
{
	char path[4096], buf[MAX_STATE_BYTES + 1], key[32];
	unsigned long long a, b;
	bool have_marker = false, bad_doubt = false;
	char *line, *save = NULL;

	state_path(path, sizeof(path), "");
	if (!read_state(path, buf))
		return false;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		int n = sscanf(line, "%31s %llu %llu", key, &a, &b);

		if (n >= 2 && !strcmp(key, "marker")) {
			report.handled_marker = a;
			have_marker = true;
		} else if (n >= 2 && !strcmp(key, "generation")) {
			report.handled_gen = a;
		} else if (n == 3 && !strcmp(key, "period")) {
			struct vmclock_abi with = *page;

			with.counter_period_frac_sec = htole64(a);
			with.counter_period_shift = b > UINT8_MAX ? UINT8_MAX : (uint8_t)b;
			period_handled = period_of(&with);
			if (!period_handled.valid)
				LOG(LOGS_WARN, "%s: ignoring period %llu %llu (no counter period on "
				    "this page); no frequency change at the next disruption", path,
				    a, b);
		} else if (!strcmp(key, "dfreq")) {
			HND_Dfreq d = { .valid = true };
			unsigned s0, s1;

			if (sscanf(line, "dfreq %" SCNu64 " %" SCNu64 " %u %" SCNu64 " %u %la %la",
				   &d.marker, &d.from.frac, &s0, &d.to.frac, &s1, &d.dfreq_ppm,
				   &d.freq_before_ppm) == 7 && s0 < 64 && s1 < 64 && d.from.frac &&
			    d.to.frac && isfinite(d.dfreq_ppm) && isfinite(d.freq_before_ppm)) {
				d.from.valid = d.to.valid = true;
				d.from.shift = (uint8_t)s0;
				d.to.shift = (uint8_t)s1;
				loaded_doubt = d;
			} else {
				bad_doubt = true;
			}
		} else if (!strcmp(key, "anchor")) {
			HND_Anchor an = { .valid = true, .period.valid = true };
			unsigned sh;

			if (sscanf(line, "anchor %" SCNu64 " %u %la", &an.period.frac, &sh,
				   &an.freq_ppm) == 3 && sh < 64 && an.period.frac &&
			    isfinite(an.freq_ppm)) {
				an.period.shift = (uint8_t)sh;
				loaded_anchor = an;
			} else {
				bad_doubt = true;
			}
		}
	}
	if (bad_doubt) {
		/* A dfreq may be in chronyd and cannot be resolved, or a
		 * frequency it learned cannot be told from one it had. */
		LOG(LOGS_WARN, "%s: unreadable dfreq or anchor record; the period chronyd's "
		    "frequency is right for is not known, no frequency change at the next "
		    "disruption", path);
		loaded_doubt.valid = false;
		loaded_anchor.valid = false;
		period_handled.valid = false;
	}
	if (!have_marker)
		LOG(LOGS_WARN, "%s has no marker; starting afresh", path);
	return have_marker;
}

/* ---- the handover ------------------------------------------------------ */

/* Why the last doffset was not sent (the page's reading was refused). */
static POL_Reason doffset_skipped_for;

/* The doffset's offset, judged by the sampler as a fed sample is.  A page
 * that cannot be read now (none, bad, mid-update) is tried again; one that
 * does not vouch for its time, or that moved on to another marker, gets no
 * step: chronyd learns it from the samples once the page vouches again. */
static HND_OffsetAnswer offset_now(uint64_t marker, double *o, void *arg)
{
	POL_Reason r = sampler.measure_offset ? sampler.measure_offset(marker, o) : POL_NO_DEVICE;

	switch (r) {
	case POL_FED:
		return HND_OFFSET_OK;
	case POL_NO_DEVICE:
	case POL_BAD_PAGE:
	case POL_UNSTABLE:
		return HND_OFFSET_RETRY;
	default:
		doffset_skipped_for = r;
		return HND_OFFSET_SKIP;
	}
}

/* The handover's write-ahead record: saved at once, durably. */
static int record_handover(const HND_Record *rec, void *arg)
{
	HND_Record before = hnd_record;
	bool had = have_record;
	int r;

	hnd_record = *rec;
	have_record = true;
	r = save_state();
	if (r < 0 && rec->in_doubt.valid) {
		/* Not sent: the file keeps what was true before. */
		hnd_record = before;
		have_record = had;
	}
	return r;
}

static void finish(bool recovered)
{
	/* Superseded by the handled marker and its period. */
	have_record = false;
	report.handling = false;
	clock_gettime(CLOCK_MONOTONIC, &report.handled_at);
	report.handled_marker = target_marker;
	report.handled_gen = target_gen;
	period_handled = period_target;
	save_state();
	/* Nothing to feed from a page without time: no burst. */
	if (sampler.burst && target_has_time)
		sampler.burst(cfg->burst_ms);
	if (recovered) {
		char f1[FIELD_LEN], f2[FIELD_LEN];
		const char *fields[] = { f1, f2, NULL };

		snprintf(f1, sizeof(f1), "DISRUPTION_MARKER=%" PRIu64, target_marker);
		/* 0: a restart would not know it was handled, until a retry
		 * of the write succeeds. */
		snprintf(f2, sizeof(f2), "STATE_SAVED=%d", !report.unsaved);
		LOG_Event(LOGS_INFO, LOG_MSGID_RECOVERED, fields, "chronyd reset after disruption %"
			  PRIu64 "%s", target_marker,
			  target_has_time ? "; sampling at the burst rate" : "");
	}
}

/* A record's fields: one more "NAME=value" in f[*n], listed in fields. */
typedef struct {
	char f[DISRUPTION_FIELDS][FIELD_LEN];
	const char *fields[DISRUPTION_FIELDS + 1];
	int n;
} Fields;

static void add_field(Fields *r, const char *format, ...) __attribute__((format(printf, 2, 3)));

static void add_field(Fields *r, const char *format, ...)
{
	va_list ap;

	assert(r->n < DISRUPTION_FIELDS);
	va_start(ap, format);
	vsnprintf(r->f[r->n], FIELD_LEN, format, ap);
	va_end(ap);
	r->fields[r->n] = r->f[r->n];
	r->fields[++r->n] = NULL;
}

/* The one journal record of a handled disruption (MESSAGE_ID
 * LOG_MSGID_DISRUPTION), covering every marker change since the last one
 * handled; fields whose value is not known are left out (FREQ_CHANGE_PPM
 * last).  HANDED: chronyd took it. */
static void log_disruption(bool handed)
{
	Fields r = { .n = 0 };
	char step_text[48], changes_text[48];
	bool freq_known = period_handled.valid && period_target.valid;
	double step = report.last_step_s;
	double freq_change = freq_known ? -HND_DfreqPpm(period_handled, period_target) : 0.0;

	add_field(&r, "OLD_MARKER=%" PRIu64, episode.old_marker);
	add_field(&r, "NEW_MARKER=%" PRIu64, target_marker);
	add_field(&r, "FIRST_MARKER=%" PRIu64, episode.first_marker);
	add_field(&r, "MARKER_CHANGES=%lu", episode.changes);
	add_field(&r, "VM_GENERATION_COUNTER=%" PRIu64, target_gen);
	if (!isnan(step))
		add_field(&r, "STEP_NS=%.0f", step * 1e9);
	if (period_target.valid) {
		add_field(&r, "COUNTER_PERIOD_FRAC_SEC=%" PRIu64, period_target.frac);
		add_field(&r, "COUNTER_PERIOD_SHIFT=%u", period_target.shift);
	}
	if (freq_known)
		add_field(&r, "FREQ_CHANGE_PPM=%.6f", freq_change);
	if (isnan(step))
		snprintf(step_text, sizeof(step_text), "step unknown");
	else
		snprintf(step_text, sizeof(step_text), "step %+.9f s", step);
	if (episode.changes > 1)
		snprintf(changes_text, sizeof(changes_text), " (%lu marker changes)", episode.changes);
	else
		changes_text[0] = '\0';
	if (target_has_time && freq_known)
		LOG_Event(LOGS_WARN, LOG_MSGID_DISRUPTION, r.fields,
			  "clock disruption%s: marker %" PRIu64 " -> %" PRIu64 "%s, %s, counter "
			  "frequency %+.6f ppm; %s", episode.while_down ? " while vmclockd was down" : "",
			  episode.old_marker, target_marker, changes_text, step_text, freq_change,
			  handed ? "chronyd reset" : "no chronyd to reset");
	else
		LOG_Event(LOGS_WARN, LOG_MSGID_DISRUPTION, r.fields,
			  "clock disruption%s: marker %" PRIu64 " -> %" PRIu64 "%s, %s; %s",
			  episode.while_down ? " while vmclockd was down" : "", episode.old_marker,
			  target_marker, changes_text,
			  target_has_time ? "counter frequency change unknown" : "no time on the page",
			  handed ? "chronyd reset" : "no chronyd to reset");
}

/* The handover module reports once per handover, for the newest marker,
 * when it completed; it logs its own retries and failed rounds.  No reset:
 * no chronyd is configured. */
static void handover_done(const HND_Report *r, void *arg)
{
	bool handed = r->ok && r->resets > 0;

	if (handed) {
		struct timespec now;

		/* The monotonic time of the last reply, to set beside the
		 * sampler's wake-up time (docs/performance.md). */
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (r->has_time && r->doffset_skipped)
			LOG(LOGS_WARN, "chronyd reset: dfreq %+.6f ppm in %d request%s, no step sent: "
			    "%s%s%s; %.2f ms",
			    r->dfreq_ppm, r->dfreqs, r->dfreqs == 1 ? "" : "s",
			    doffset_skipped_for == POL_DISRUPTION
				    ? "the page moved on to another disruption"
				    : "the page does not vouch for its time (",
			    doffset_skipped_for == POL_DISRUPTION
				    ? "" : vmclockd_reason_text(doffset_skipped_for),
			    doffset_skipped_for == POL_DISRUPTION ? "" : ")",
			    (double)r->duration_ns * 1e-6);
		else if (r->has_time)
			LOG(LOGS_INFO, "chronyd reset: dfreq %+.6f ppm in %d request%s, doffset %+.9f s "
			    "(o %+.9f s, c %+.9f s), %d makestep%s (%+.9f s, residual %+.9f s), "
			    "%d datagrams, %.2f ms, done at monotonic %lld.%09ld",
			    r->dfreq_ppm, r->dfreqs, r->dfreqs == 1 ? "" : "s", r->doffset, r->offset,
			    r->correction, r->steps, r->steps == 1 ? "" : "s", r->step, r->residual,
			    r->datagrams, (double)r->duration_ns * 1e-6, (long long)now.tv_sec,
			    now.tv_nsec);
		else
			LOG(LOGS_INFO, "chronyd reset (marker-only page), %.2f ms; asked for an NTP burst",
			    (double)r->duration_ns * 1e-6);
	}
	/* Before finish(): the record compares the periods it replaces. */
	if (episode.changes)
		log_disruption(handed);
	finish(handed);
}

/* Alerts a flapping page could repeat at every tick: rate-limited (the first
 * ones at once, the count of the others said when their window closes). */
static LOG_Limit imminent_alerts, soon_alerts, restore_alerts;

static void begin_disruption(const struct vmclock_abi *page, const struct vmclock_offset *offset,
			     bool while_down)
{
	double step = NAN, freq_change = 0.0;
	HND_Target t;
	Period before = report.handling ? period_target : period_handled;
	uint64_t old = report.handling ? target_marker : report.handled_marker;

	target_marker = vmclock_le64(page->disruption_marker);
	target_gen = vmclock_le64(page->vm_generation_counter);
	period_target = period_of(page);
	target_has_time = period_target.valid;
	report.disruptions++;
	if (!report.handling || source_changed) {
		/* A new record; a new device starts one of its own (its
		 * markers are not compared with the old one's). */
		episode.old_marker = source_changed ? target_marker : old;
		episode.first_marker = target_marker;
		episode.changes = 0;
		episode.while_down = while_down;
	}
	if (!source_changed && target_marker != old)
		episode.changes++;
	report.handling = true;
	clock_gettime(CLOCK_REALTIME, &report.last_disruption);

	if (before.valid && period_target.valid)
		freq_change = -HND_DfreqPpm(before, period_target);
	if (target_has_time && offset && have_offset && !while_down)
		step = (double)offset->offset_ns * 1e-9 - (double)last_offset_ns * 1e-9;
	report.last_step_s = step;

	/* Every change, with its own frequency change (when both periods are
	 * known); the journal's record is logged once the disruption is
	 * handled (log_disruption). */
	if (LOG_DebugEnabled()) {
		Fields r = { .n = 0 };

		add_field(&r, "OLD_MARKER=%" PRIu64, old);
		add_field(&r, "NEW_MARKER=%" PRIu64, target_marker);
		if (before.valid && period_target.valid)
			add_field(&r, "FREQ_CHANGE_PPM=%.6f", freq_change);
		LOG_Event(LOGS_DEBUG, NULL, r.fields, "disruption: marker %" PRIu64 " -> %" PRIu64,
			  old, target_marker);
	}
	if (source_changed)
		LOG(LOGS_WARN, "clock source changed to %s (marker %" PRIu64 "): resetting chronyd, "
		    "no frequency change or step carried over", cfg->device, target_marker);
	t.marker = target_marker;
	t.old_period = period_handled;
	t.new_period = source_changed ? epoch_period : period_target;
	t.has_time = target_has_time;
	t.step = cfg->handover_step;
	/* A dfreq in doubt when vmclockd stopped: the first handover resolves
	 * it (a handover under way knows better). */
	t.in_doubt = loaded_doubt;
	t.anchor = loaded_anchor;
	if (loaded_doubt.valid || loaded_anchor.valid) {
		/* Kept in the file until the handover records anew. */
		hnd_record.chrony_period = loaded_doubt.valid ? loaded_doubt.from : period_handled;
		hnd_record.in_doubt = loaded_doubt;
		hnd_record.anchor = loaded_anchor;
		have_record = true;
	}
	loaded_doubt.valid = false;
	loaded_anchor.valid = false;
	HDR_Start(&t);
}

static void log_flag_changes(uint64_t flags)
{
	uint64_t appeared = flags & ~last_flags;

	if (appeared & VMCLOCK_FLAG_DISRUPTION_IMMINENT)
		LOG_LimitedEvent(&imminent_alerts, LOGS_WARN, LOG_MSGID_DISRUPTION_IMMINENT, NULL,
				 "host announces a clock disruption within about an hour");
	else if (appeared & VMCLOCK_FLAG_DISRUPTION_SOON)
		LOG_LimitedEvent(&soon_alerts, LOGS_NOTICE, LOG_MSGID_DISRUPTION_SOON, NULL,
				 "host announces a clock disruption within about a day");
	last_flags = flags;
}

bool DSR_Observe(const struct vmclock_abi *page, const struct vmclock_offset *offset)
{
	uint64_t marker = vmclock_le64(page->disruption_marker);
	uint64_t gen = vmclock_le64(page->vm_generation_counter);
	uint64_t current_gen = report.handling ? target_gen : report.handled_gen;
	uint64_t current_marker = report.handling ? target_marker : report.handled_marker;

	log_flag_changes(vmclock_le64(page->flags));
	if (!state_known) {
		state_known = true;
		if (!load_state(page)) {
			loaded_doubt.valid = false;
			loaded_anchor.valid = false;
			report.handled_marker = marker;
			report.handled_gen = gen;
			period_handled = period_of(page);
			save_state();
			return false;
		}
		if (marker != report.handled_marker) {
			begin_disruption(page, offset, true);
			return true;
		}
		if (loaded_doubt.valid) {
			/* The page went back to the handled marker, yet a dfreq
			 * sent for another may be in chronyd: resolved by a
			 * handover of this one. */
			LOG(LOGS_WARN, "a dfreq for disruption %" PRIu64 " may have been applied "
			    "before vmclockd stopped, and the page shows marker %" PRIu64 " again",
			    loaded_doubt.marker, marker);
			begin_disruption(page, offset, true);
			return true;
		}
		/* The page is back at the handled marker: the handover the
		 * anchor was read for is moot. */
		loaded_anchor.valid = false;
		current_gen = report.handled_gen;
		current_marker = report.handled_marker;
	}
	if (source_changed) {
		/* Neither its marker, generation nor period is compared with
		 * the old device's: one reset, one line. */
		begin_disruption(page, NULL, false);
		source_changed = false;
		return true;
	}
	if (gen != current_gen && (vmclock_le64(page->flags) & VMCLOCK_FLAG_VM_GEN_COUNTER_PRESENT)) {
		char f1[FIELD_LEN], f2[FIELD_LEN];
		const char *fields[] = { f1, f2, NULL };

		snprintf(f1, sizeof(f1), "VM_GENERATION_COUNTER=%" PRIu64, gen);
		snprintf(f2, sizeof(f2), "DISRUPTION_MARKER=%" PRIu64, marker);
		LOG_LimitedEvent(&restore_alerts, LOGS_WARN, LOG_MSGID_RESTORE, fields,
				 "VM restored or cloned: generation %" PRIu64 " -> %" PRIu64,
				 current_gen, gen);
		if (report.handling)
			target_gen = gen;
		else
			report.handled_gen = gen;
		if (marker == current_marker)
			save_soon();
	}
	/* An offset measured on a page that moved on since the copy belongs to
	 * neither marker. */
	if (offset && offset->time.disruption_marker != marker)
		offset = NULL;
	if (marker != current_marker)
		begin_disruption(page, offset, false);
	else if (!report.handling && period_of(page).valid) {
		period_handled = period_of(page);
		/* Keep the saved period current (the host refines it), so that a
		 * disruption while vmclockd is down still gets an exact dfreq. */
		if (!period_saved.valid ||
		    (fabs(HND_DfreqPpm(period_saved, period_handled)) > PERIOD_RESAVE_PPM &&
		     RLM_Due(&resave_limit, PERIOD_RESAVE_INTERVAL_S)))
			save_soon();
	}
	if (!report.handling && offset && marker == report.handled_marker) {
		have_offset = true;
		last_offset_ns = offset->offset_ns;
	}
	/* A handover that failed a round and waits to try again: samples are
	 * fed meanwhile (the disruption is still unhandled). */
	return report.handling && !HDR_RetryWaiting();
}

int DSR_Initialise(struct event_base *base, const CNF_Settings *settings,
		   const DSR_SamplerOps *ops)
{
	HDR_Callbacks callbacks = { .offset = offset_now, .done = handover_done,
				    .record = record_handover };

	cfg = settings;
	sampler = ops ? *ops : (DSR_SamplerOps){ 0 };
	save_ev = evtimer_new(base, save_cb, NULL);
	if (!save_ev) {
		LOG(LOGS_ERR, "cannot create the state-file timer");
		return -1;
	}
	if (HDR_Initialise(base, cfg->chrony_cmd, NULL, &callbacks) < 0) {
		LOG(LOGS_ERR, "cannot initialise the chronyd handover");
		return -1;
	}
	return 0;
}

void DSR_SourceChanged(void)
{
	/* Before the first page there is nothing to forget. */
	if (!state_known)
		return;
	source_changed = true;
	/* The two devices' periods and offsets are unrelated: no dfreq and no
	 * step is computed across them.  A handover under way for the old
	 * device still owes chronyd that device's frequency change: the new
	 * epoch's handover heads for the same period, so that change is
	 * delivered once and nothing is added for the device change; with none
	 * under way, no period and so no dfreq at all. */
	epoch_period = report.handling ? period_target : (Period){ .valid = false };
	period_handled.valid = false;
	have_offset = false;
}

void DSR_Reconfigure(const CNF_Settings *settings)
{
	cfg = settings;
	/* The handover under way, if any, carries on: a new command socket
	 * path is taken up by its next request. */
	if (HDR_Reconfigure(cfg->chrony_cmd) < 0)
		LOG(LOGS_ERR, "chrony-cmd not changed: out of memory");
}

void DSR_Finalise(void)
{
	/* The freshest period for a disruption that happens while we are down. */
	if (state_known && !report.handling && period_handled.valid &&
	    (!period_saved.valid || period_saved.frac != period_handled.frac))
		save_state();
	/* A deferred write (a generation that changed) is not lost. */
	else if (save_ev && evtimer_pending(save_ev, NULL))
		save_state();
	if (save_ev)
		event_free(save_ev);
	save_ev = NULL;
	HDR_Finalise();
}
