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
 * and handled_at stay as they were (in memory and in the marker record, so a
 * restart hands it over again), chronysync keeps saying DISRUPTED, samples
 * are fed while the handover waits, and it is tried again at the hold-off
 * cadence until chronyd takes it (handover.c says it once).  A chronyd that
 * was not running gets the reset and the step when it is, but no dfreq: its
 * frequency comes from its drift file, right for a period not known.
 * Sampling itself never waits.
 */
#include <assert.h>
#include <endian.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include "disrupt.h"
#include "hnd_driver.h"
#include "log.h"
#include "ratelimit.h"
#include "storage.h"

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
static Period period_saved;   /* as last written to the marker record */
static bool target_has_time;
/* During a handover, what it asked to be kept (have_record): the period
 * chronyd is right for and a dfreq in doubt.  loaded_doubt: the dfreq in
 * doubt the marker record held at start, for the first handover. */
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
 * period from anywhere else (the marker record) is judged by putting it on a
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

/* ---- the marker record ------------------------------------------------ */

/*
 * The marker record (storage.c) keeps the handled marker and generation and
 * the counter period chronyd's frequency is right for; during a handover,
 * what it asked to be kept (record_handover): the period chronyd is right
 * for then, the anchor it read and a dfreq in doubt.  At start a dfreq in
 * doubt makes the first handover resolve it from chronyd's frequency before
 * anything else, and an anchor has it start from that frequency rather than
 * one chronyd may have learned from the samples since (handover.c).
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
#define STATE_WRITE_INTERVAL_S 1
#define STATE_RETRY_S 1
/* A drifting period is rewritten at most this often (and at exit). */
#define PERIOD_RESAVE_INTERVAL_S 60
static RLM_Limit resave_limit;
static RLM_Limit write_limit;
static struct event *save_ev; /* a deferred write */

static STO_Period sto_period(Period p)
{
	return (STO_Period){ .valid = p.valid, .frac = p.frac, .shift = p.shift };
}

static Period hnd_period(STO_Period p)
{
	return (Period){ .valid = p.valid, .frac = p.frac, .shift = p.shift };
}

/* 0, or a negative errno value (said once per cause, by storage.c). */
static int save_state(void)
{
	struct timeval retry = { STATE_RETRY_S, 0 };
	STO_Record rec = { .marker = report.handled_marker, .generation = report.handled_gen };
	int r;

	/* Whatever is pending is written now, with the latest values. */
	if (save_ev)
		evtimer_del(save_ev);
	RLM_Restart(&write_limit);
	/* Also on failure: an unwritable directory is not retried every tick. */
	period_saved = period_handled;
	if (report.handling && have_record) {
		/* The handover's own record: chronyd's period may differ from
		 * the handled marker's already, and a dfreq may be in doubt. */
		const HND_Dfreq *d = &hnd_record.in_doubt;
		const HND_Anchor *a = &hnd_record.anchor;

		rec.period = sto_period(hnd_record.chrony_period);
		rec.anchor = (STO_Anchor){ .valid = a->valid, .period = sto_period(a->period),
					   .freq_ppm = a->freq_ppm };
		rec.dfreq = (STO_Dfreq){ .valid = d->valid, .marker = d->marker,
					 .from = sto_period(d->from), .to = sto_period(d->to),
					 .dfreq_ppm = d->dfreq_ppm,
					 .freq_before_ppm = d->freq_before_ppm };
	} else {
		rec.period = sto_period(period_handled);
	}
	r = STO_Save(&rec);
	report.unsaved = r < 0;
	if (r < 0 && save_ev)
		evtimer_add(save_ev, &retry);
	return r;
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

/* The check of a period read back: would the page now (ARG, a copy of it)
 * carry time with it? */
static bool period_on_page(const STO_Period *p, void *arg)
{
	struct vmclock_abi *with = arg;

	with->counter_period_frac_sec = htole64(p->frac);
	with->counter_period_shift = p->shift;
	return period_of(with).valid;
}

/* PAGE: the page now, on which a saved period is judged. */
static bool load_state(const struct vmclock_abi *page)
{
	struct vmclock_abi with = *page;
	STO_Record rec;
	const STO_Anchor *a = &rec.anchor;
	const STO_Dfreq *d = &rec.dfreq;

	if (STO_Load(&rec, period_on_page, &with) != STO_FOUND)
		return false;
	report.handled_marker = rec.marker;
	report.handled_gen = rec.generation;
	period_handled = hnd_period(rec.period);
	loaded_anchor = (HND_Anchor){ .valid = a->valid, .period = hnd_period(a->period),
				      .freq_ppm = a->freq_ppm };
	loaded_doubt = (HND_Dfreq){ .valid = d->valid, .marker = d->marker,
				    .from = hnd_period(d->from), .to = hnd_period(d->to),
				    .dfreq_ppm = d->dfreq_ppm, .freq_before_ppm = d->freq_before_ppm };
	return true;
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
		LOG(LOGS_ERR, "cannot create the marker record's timer");
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
