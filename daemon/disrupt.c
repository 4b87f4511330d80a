/* SPDX-License-Identifier: BSD-2-Clause
 *
 * disrupt.c - disruption markers and generation counters: the driver of the
 * disruption state machine (handover.c).
 *
 * Every page copy the sampler shows goes to the machine, which owns what
 * chronyd has been handed (the handled marker, the period chronyd's
 * frequency is right for, a dfreq in doubt) and decides: a new marker hands
 * chronyd the disruption (reset sources, dfreq, doffset, makestep; on a
 * marker-only page reset sources and an NTP burst), samples are withheld
 * meanwhile.  This module takes what the machine does not do itself: the
 * record is kept through storage.c (loaded at the first page, on which a
 * kept period is judged), the journal gets one record per handled
 * disruption and the alerts, the sampler bursts after a handover of a page
 * with time, and the report others read is kept current.
 *
 * Failures: a step that fails is retried with doubling backoff, samples
 * withheld; a round of tries that fails (chronyd refusing, silent or not
 * running) leaves the disruption unhandled (in memory and in the marker
 * record, so a restart hands it over again), chronysync keeps saying
 * DISRUPTED, samples are fed while the handover waits, and it is tried again
 * at the hold-off cadence until chronyd takes it (handover.c says it once).
 * A chronyd that was not running gets the reset and the step when it is, but
 * no dfreq: its frequency comes from its drift file, right for a period not
 * known.  Sampling itself never waits.
 */
#include <assert.h>
#include <endian.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "../common/timeutil.h"

#include "disrupt.h"
#include "hnd_driver.h"
#include "log.h"
#include "storage.h"

/* One journal field, "NAME=value": the longest name here is 23 characters,
 * a value at most 20 digits, or FREQ_CHANGE_PPM's %.6f of any ratio of two
 * periods (under 2^128 * 10^6 ppm: 45 digits, a sign, the point and six
 * decimals; 69 characters with its name). */
#define FIELD_LEN 80

/* The most journal fields of a record: a disruption's OLD_MARKER,
 * NEW_MARKER, FIRST_MARKER, MARKER_CHANGES, VM_GENERATION_COUNTER,
 * WHILE_DOWN, STEP_NS, COUNTER_PERIOD_FRAC_SEC, COUNTER_PERIOD_SHIFT,
 * FREQ_CHANGE_PPM (a handover's have seven at most). */
#define DISRUPTION_FIELDS 10

typedef HND_Period Period;

static const CNF_Settings *cfg;
static DSR_Report report;
/* The machine wants the next tick's offset, on a page of measure_marker. */
static bool measure_pending;
static uint64_t measure_marker;
/* After a handover of a page with time: ticks at the burst rate until then
 * (CLOCK_MONOTONIC), so that chronyd reselects the refclock quickly. */
static struct timespec burst_until;
static bool loaded;   /* the marker record was loaded (at the first page) */
static uint64_t last_flags;
/* Alerts a flapping page could repeat at every tick: rate-limited (the first
 * ones at once, the count of the others said when their window closes). */
static LOG_Limit imminent_alerts, soon_alerts, restore_alerts;

const DSR_Report *DSR_GetReport(void)
{
	return &report;
}

/* What the machine holds, as the report says it. */
static void update_report(void)
{
	const HND_Machine *m = HDR_Machine();

	if (!m)
		return;
	report.handled_marker = HND_GetRecord(m)->marker;
	report.handled_gen = HND_GetRecord(m)->generation;
	report.handling = HND_Busy(m);
	report.unsaved = HND_Unsaved(m);
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

static STO_Period sto_period(Period p)
{
	return (STO_Period){ .valid = p.valid, .frac = p.frac, .shift = p.shift };
}

static Period hnd_period(STO_Period p)
{
	return (Period){ .valid = p.valid, .frac = p.frac, .shift = p.shift };
}

/* The machine's record, kept by storage.c: 0 or a negative errno value
 * (said once per cause there; the machine tries again). */
static int keep_record(const HND_Record *h, void *arg)
{
	const HND_Dfreq *d = &h->in_doubt;
	const HND_Anchor *a = &h->anchor;
	STO_Record rec = {
		.marker = h->marker,
		.generation = h->generation,
		.period = sto_period(h->chrony_period),
		.anchor = { .valid = a->valid, .period = sto_period(a->period),
			    .freq_ppm = a->freq_ppm },
		.dfreq = { .valid = d->valid, .marker = d->marker, .from = sto_period(d->from),
			   .to = sto_period(d->to), .dfreq_ppm = d->dfreq_ppm,
			   .freq_before_ppm = d->freq_before_ppm },
	};
	return STO_Save(&rec);
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

/* What the marker record held at start, handed to the machine before the
 * first page (PAGE: that page, on which a kept period is judged). */
static void load_record(const struct vmclock_abi *page)
{
	struct vmclock_abi with = *page;
	HND_Event ev = { .type = HND_EV_LOADED };
	HND_Record *h = &ev.u.loaded;
	STO_Record rec;

	if (STO_Load(&rec, period_on_page, &with) != STO_FOUND)
		return;
	*h = (HND_Record){
		.valid = true,
		.marker = rec.marker,
		.generation = rec.generation,
		.chrony_period = hnd_period(rec.period),
		.anchor = { .valid = rec.anchor.valid, .period = hnd_period(rec.anchor.period),
			    .freq_ppm = rec.anchor.freq_ppm },
		.in_doubt = { .valid = rec.dfreq.valid, .marker = rec.dfreq.marker,
			      .from = hnd_period(rec.dfreq.from), .to = hnd_period(rec.dfreq.to),
			      .dfreq_ppm = rec.dfreq.dfreq_ppm,
			      .freq_before_ppm = rec.dfreq.freq_before_ppm },
	};
	HDR_Handle(&ev);
}

/* ---- the handover ------------------------------------------------------ */

/* The doffset's offset is wanted: answered from the next tick's sample. */
static void measure(uint64_t marker, void *arg)
{
	measure_pending = true;
	measure_marker = marker;
}

/* The answer to it from this tick's sample, judged as a fed sample is
 * (JUDGED, OFFSET_S), on a page of MARKER.  One that cannot be read (none,
 * bad, mid-update) is tried again; one that does not vouch for its time, or
 * that moved on to another marker, gets no step: chronyd learns it from the
 * samples once the page vouches again. */
static void answer_measure(uint64_t marker, POL_Reason judged, double offset_s)
{
	HND_OffsetAnswer answer;

	measure_pending = false;
	if (marker != measure_marker)
		judged = POL_DISRUPTION;
	switch (judged) {
	case POL_FED:
		answer = HND_OFFSET_OK;
		break;
	case POL_NO_DEVICE:
	case POL_BAD_PAGE:
	case POL_UNSTABLE:
		answer = HND_OFFSET_RETRY;
		break;
	default:
		answer = HND_OFFSET_SKIP;
		break;
	}
	HDR_Offset(answer, offset_s, judged);
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
static void log_disruption(const HND_Report *h, bool handed)
{
	Fields r = { .n = 0 };
	char step_text[48], changes_text[48];
	bool freq_known = h->period_before.valid && h->period_after.valid;
	double freq_change = freq_known ? -HND_DfreqPpm(h->period_before, h->period_after) : 0.0;

	add_field(&r, "OLD_MARKER=%" PRIu64, h->old_marker);
	add_field(&r, "NEW_MARKER=%" PRIu64, h->marker);
	add_field(&r, "FIRST_MARKER=%" PRIu64, h->first_marker);
	add_field(&r, "MARKER_CHANGES=%lu", h->marker_changes);
	add_field(&r, "VM_GENERATION_COUNTER=%" PRIu64, h->generation);
	add_field(&r, "WHILE_DOWN=%d", h->while_down);
	if (h->step_known)
		add_field(&r, "STEP_NS=%" PRId64, h->step_ns);
	if (h->period_after.valid) {
		add_field(&r, "COUNTER_PERIOD_FRAC_SEC=%" PRIu64, h->period_after.frac);
		add_field(&r, "COUNTER_PERIOD_SHIFT=%u", h->period_after.shift);
	}
	if (freq_known)
		add_field(&r, "FREQ_CHANGE_PPM=%.6f", freq_change);
	if (h->step_known)
		snprintf(step_text, sizeof(step_text), "step %+.9f s", (double)h->step_ns * 1e-9);
	else
		snprintf(step_text, sizeof(step_text), "step unknown");
	if (h->marker_changes > 1)
		snprintf(changes_text, sizeof(changes_text), " (%lu marker changes)",
			 h->marker_changes);
	else
		changes_text[0] = '\0';
	if (h->has_time && freq_known)
		LOG_Event(LOGS_WARN, LOG_MSGID_DISRUPTION, r.fields,
			  "clock disruption%s: marker %" PRIu64 " -> %" PRIu64 "%s, %s, counter "
			  "frequency %+.6f ppm; %s", h->while_down ? " while vmclockd was down" : "",
			  h->old_marker, h->marker, changes_text, step_text, freq_change,
			  handed ? "chronyd reset" : "no chronyd to reset");
	else
		LOG_Event(LOGS_WARN, LOG_MSGID_DISRUPTION, r.fields,
			  "clock disruption%s: marker %" PRIu64 " -> %" PRIu64 "%s, %s; %s",
			  h->while_down ? " while vmclockd was down" : "", h->old_marker, h->marker,
			  changes_text, h->has_time ? "counter frequency change unknown"
						    : "no time on the page",
			  handed ? "chronyd reset" : "no chronyd to reset");
}

/* What chronyd was handed, as fields of the record of the handover's
 * completion (MESSAGE_ID LOG_MSGID_RECOVERED); those that do not apply are
 * left out. */
static void handover_fields(Fields *f, const HND_Report *r)
{
	static const char *const doubt[] = {
		[HND_DOUBT_APPLIED] = "applied",
		[HND_DOUBT_NOT_APPLIED] = "not_applied",
		[HND_DOUBT_MOVED] = "moved",
	};

	add_field(f, "DISRUPTION_MARKER=%" PRIu64, r->marker);
	/* 0: a restart would not know it was handled, until a retry of the
	 * write succeeds. */
	add_field(f, "STATE_SAVED=%d", !report.unsaved);
	if (r->doubt != HND_DOUBT_NONE)
		add_field(f, "DFREQ_IN_DOUBT=%s", doubt[r->doubt]);
	if (!r->has_time)
		return;
	if (r->dfreqs > 0)
		add_field(f, "DFREQ=applied");
	else if (r->dfreq_refused)
		add_field(f, "DFREQ=refused");
	else if (r->dfreq_unrecorded)
		add_field(f, "DFREQ=unrecorded");
	else
		add_field(f, "DFREQ=none");
	if (r->dfreqs > 0)
		add_field(f, "DFREQ_PPM=%.6f", r->dfreq_ppm);
	if (r->doffset_skipped)
		add_field(f, "STEP_WITHHELD=%s", vmclockd_reason_name((unsigned)r->skip_reason));
	else if (r->have_offset)
		add_field(f, "DOFFSET_NS=%.0f", r->doffset * 1e9);
	add_field(f, "MAKESTEPS=%d", r->steps);
}

/* Once per handover, for the newest marker, when it completed (its record
 * kept already); the machine logs its own retries and failed rounds.  No
 * reset: no chronyd is configured. */
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
			    r->skip_reason == POL_DISRUPTION
				    ? "the page moved on to another disruption"
				    : "the page does not vouch for its time (",
			    r->skip_reason == POL_DISRUPTION
				    ? "" : vmclockd_reason_text((unsigned)r->skip_reason),
			    r->skip_reason == POL_DISRUPTION ? "" : ")",
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
	if (r->marker_changes)
		log_disruption(r, handed);
	update_report();
	clock_gettime(CLOCK_MONOTONIC, &report.handled_at);
	/* Nothing to feed from a page without time: no burst. */
	if (r->has_time) {
		clock_gettime(CLOCK_MONOTONIC, &burst_until);
		burst_until = TIM_AddNs(burst_until, (int64_t)cfg->burst_ms * 1000000);
	}
	if (handed) {
		Fields f = { .n = 0 };

		handover_fields(&f, r);
		LOG_Event(LOGS_INFO, LOG_MSGID_RECOVERED, f.fields, "chronyd reset after disruption %"
			  PRIu64 "%s", r->marker, r->has_time ? "; sampling at the burst rate" : "");
	}
}

/* A marker change or a restore, as the machine saw it. */
static void seen(const HND_Action *a, void *arg)
{
	if (a->type == HND_ACT_RESTORE) {
		char f1[FIELD_LEN], f2[FIELD_LEN];
		const char *fields[] = { f1, f2, NULL };

		snprintf(f1, sizeof(f1), "VM_GENERATION_COUNTER=%" PRIu64,
			 a->u.restore.new_generation);
		snprintf(f2, sizeof(f2), "DISRUPTION_MARKER=%" PRIu64, a->u.restore.marker);
		LOG_LimitedEvent(&restore_alerts, LOGS_WARN, LOG_MSGID_RESTORE, fields,
				 "VM restored or cloned: generation %" PRIu64 " -> %" PRIu64,
				 a->u.restore.old_generation, a->u.restore.new_generation);
		return;
	}
	report.disruptions++;
	report.handling = true;
	clock_gettime(CLOCK_REALTIME, &report.last_disruption);
	if (a->u.disruption.source_changed) {
		char f[32];

		snprintf(f, sizeof(f), "NEW_MARKER=%" PRIu64, a->u.disruption.new_marker);
		LOG_FileState(LOGS_WARN, cfg->device, "new_source", 0, (const char *[]){ f, NULL },
			      "clock source changed to %s (marker %" PRIu64 "): resetting chronyd, "
			      "no frequency change or step carried over", cfg->device,
			      a->u.disruption.new_marker);
	}
	/* Every change, with its own frequency change (when both periods are
	 * known); the journal's record is one per handled disruption. */
	if (LOG_DebugEnabled()) {
		Fields r = { .n = 0 };
		const Period *p0 = &a->u.disruption.period_before, *p1 = &a->u.disruption.period_after;

		add_field(&r, "OLD_MARKER=%" PRIu64, a->u.disruption.old_marker);
		add_field(&r, "NEW_MARKER=%" PRIu64, a->u.disruption.new_marker);
		if (p0->valid && p1->valid)
			add_field(&r, "FREQ_CHANGE_PPM=%.6f", -HND_DfreqPpm(*p0, *p1));
		LOG_Event(LOGS_DEBUG, NULL, r.fields, "disruption: marker %" PRIu64 " -> %" PRIu64,
			  a->u.disruption.old_marker, a->u.disruption.new_marker);
	}
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

DSR_Verdict DSR_Observe(const struct vmclock_abi *page, const struct vmclock_offset *offset,
			POL_Reason judged, double offset_s)
{
	uint64_t marker = vmclock_le64(page->disruption_marker);
	HND_Event ev = { .type = HND_EV_PAGE };
	DSR_Verdict verdict = { false, 0 };
	struct timespec now;

	log_flag_changes(vmclock_le64(page->flags));
	if (!loaded) {
		loaded = true;
		load_record(page);
	}
	ev.u.page.marker = marker;
	ev.u.page.generation = vmclock_le64(page->vm_generation_counter);
	ev.u.page.generation_present =
		(vmclock_le64(page->flags) & VMCLOCK_FLAG_VM_GEN_COUNTER_PRESENT) != 0;
	ev.u.page.period = period_of(page);
	/* An offset measured on a page that moved on since the copy belongs to
	 * neither marker. */
	ev.u.page.have_offset = offset && offset->time.disruption_marker == marker;
	ev.u.page.offset_ns = ev.u.page.have_offset ? offset->offset_ns : 0;
	ev.u.page.step = cfg->handover_step;
	if (measure_pending)
		answer_measure(marker, judged, offset_s);
	HDR_Handle(&ev);
	update_report();
	verdict.withhold = HND_Withholding(HDR_Machine());
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (verdict.withhold)
		/* The handover may want the next tick's offset any moment. */
		verdict.tick_ms = DSR_HANDOVER_TICK_MS;
	else if (TIM_Before(&now, &burst_until))
		verdict.tick_ms = cfg->burst_interval_ms;
	return verdict;
}

int DSR_Initialise(struct event_base *base, const CNF_Settings *settings)
{
	HDR_Callbacks callbacks = { .measure = measure, .done = handover_done,
				    .record = keep_record, .seen = seen };

	cfg = settings;
	if (HDR_Initialise(base, cfg->chrony_cmd, NULL, &callbacks) < 0) {
		LOG(LOGS_ERR, "cannot initialise the chronyd handover");
		return -1;
	}
	return 0;
}

void DSR_SourceChanged(void)
{
	HND_Event ev = { .type = HND_EV_SOURCE_CHANGED };

	HDR_Handle(&ev);
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
	HND_Event ev = { .type = HND_EV_STOP };

	/* What is not kept yet (the freshest period, a generation) is kept
	 * now, for a disruption that happens while vmclockd is down. */
	if (loaded)
		HDR_Handle(&ev);
	HDR_Finalise();
}
