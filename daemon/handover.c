/* SPDX-License-Identifier: BSD-2-Clause
 *
 * handover.c - the disruption handover to chronyd as a pure state machine:
 * events in, actions out (handover.h), no I/O but log lines.
 *
 * Steps, each one request: tracking (chronyd's frequency f0 while it is
 * right for the period it was handed over with: the anchor, read before
 * samples can move it), reset sources (no measurement from the old host
 * survives), tracking again (what chronyd's own estimate for the old
 * period made of the samples it had, at its next poll, is in the anchor
 * and in the frequency the dfreq is verified against: until a sample is fed
 * or a dfreq of ours lands, each reading re-anchors), dfreq (the counter's
 * frequency change from the period chronyd
 * is right for to the target's), tracking (chronyd's correction c), doffset
 * (-(o - c), o the device-minus-system offset read just before it is sent),
 * makestep (chronyd steps its clock by the correction it has not applied
 * yet, read from tracking right before: after the doffset that is o, so the
 * clock is right at once instead of after chronyd's slew; only when the
 * target asks for it and more than HND_MIN_STEP_S is left).  The kernel
 * applies chronyd's slew at its ticks, later than chronyd counts it, and a
 * step clears what it had not applied yet: o is measured again after a
 * step, and what is left beyond HND_MIN_STEP_S is handed over and stepped
 * the same way, up to HND_MAX_STEPS makesteps.  chronyd slews c away as
 * time passes, so tracking is read right before the doffset and the
 * makestep whenever a request or a wait came after the last read: a stale c
 * would count what was slewed since twice.
 *
 * A makestep chronyd answers "failed" (-x, or its clock refused the step)
 * may still have cancelled the correction it was slewing (chrony 4.3 does
 * not restore it): the doffset is redone from a fresh tracking read, which
 * composes with whatever chronyd kept, and this handover sends no other
 * makestep, so the time change reaches chronyd once, slewed.
 *
 * chronyd's frequency f and the period P it is right for keep (1 - f) / P
 * constant, so the anchor gives the period of any frequency chronyd is seen
 * at.  Samples fed while a failed round waits let chronyd learn the new
 * frequency on its own: after such a wait its frequency is read again before
 * a dfreq, and one off the anchor's frequency for chrony_period moves
 * chrony_period to the period it is right for now (the target's when it
 * has learned that already: no dfreq), so the dfreq takes chronyd from
 * where it is to the target, never the whole change onto what it learned.
 * Samples are fed between rounds (HND_RetryWaiting) only once the anchor is
 * read and recorded (a restart during the wait takes it from the record),
 * or when no dfreq is due: what chronyd learns could not be told otherwise.
 *
 * A handover never gives up: a round of max_failures failed tries ends in a
 * wait at the hold-off cadence (HOLDOFF, HND_RetryWaiting) and the handover
 * starts over from its facts, until it completes; done is reported only
 * then, so the disruption is not taken for handled meanwhile.  chronyd not
 * running when a round begins makes the period it is right for unknown (it
 * will start from its drift file): it gets the reset and the step, no
 * dfreq.  A target without time gets reset sources and an NTP burst.  An offset the page does not vouch
 * for (the measurement answers SKIP: its status, timescale or bounds refuse it,
 * or its marker is not the target's) gets no doffset: the step counts as done
 * with nothing sent, and chronyd learns it from the samples later.
 *
 * The next step is always derived from facts, never from a saved position:
 * a reset confirmed for the newest target, a tracking report read after it,
 * the period chronyd's frequency is right for (chrony_period), a doffset
 * confirmed for the newest target, a dfreq in doubt.  A new target clears
 * the facts tied to the old one and keeps chrony_period, so the dfreq that
 * follows composes the whole change exactly; a reply that arrives after its
 * target was replaced still updates chrony_period when it was a dfreq.
 *
 * Exactly once: a dfreq or doffset sent and never answered (lost reply,
 * chronyd stopped, the client closed by a reload) may have been applied.
 * Nothing is sent until a settling delay has passed, by which time a
 * request still on its way has landed or never will.  A doffset in doubt is
 * then simply redone: reset, then tracking, whose c includes whatever the
 * stale doffset did (it has landed by then), so the new doffset corrects it.
 * (chrony's reset sources resets the source instances only; it does not
 * cancel a correction being slewed.)  A makestep in doubt is redone the same
 * way: if it landed, the new doffset and step are what is left, nothing.
 * A dfreq in doubt is verified: tracking is read until two reads in a row
 * agree that chronyd's frequency is the one before it (not applied:
 * send it again) or the one after it (applied).  A frequency that is neither
 * (chronyd learned from samples, restarted without a drift file, or steered
 * on its own) is followed from the anchor as above: whatever it applied,
 * the next dfreq composes from where it is.
 *
 * Across a restart of vmclockd (a crash, SIGKILL, the OOM killer) the same
 * holds through a write-ahead record: before a dfreq is sent, what resolves
 * it (its target marker, the periods it composes from and to, the change,
 * chronyd's frequency before it, read right before it: with from, the
 * anchor a restart resolves it from) is put in the record and handed out
 * to be kept (HND_ACT_RECORD), and the dfreq goes out only once that
 * succeeded.  Once the dfreq is known to be applied (its answer, or the
 * verification) the new period is recorded without it.  A restarted
 * vmclockd hands the record back (HND_EV_LOADED) before its first page; the
 * first handover then begins with the dfreq in doubt and verifies it as
 * above (before: sent again; after: the new period; neither: followed from
 * the record's anchor).  A record that cannot be written is a dfreq not
 * sent: the step is retried with backoff, and at the last try the handover
 * goes on without it (reset and doffset, as for a refused dfreq), leaving
 * chronyd's frequency to its samples, never doubled; a new target tries to
 * record its dfreq again.
 *
 * The record: the machine holds the one record of what chronyd has been
 * handed (HND_Record) and hands it out whenever it changes: the write-ahead
 * and its resolution above, the handled marker when a handover completes
 * (chronyd is then taken to be right for the target's period: its samples
 * teach it what a refused or unsent dfreq did not), and, between
 * handovers, the generation and the period as the pages refine them (at
 * most once a second, the period when it drifted, at most once a minute).
 * A write that failed is made again at the first page a second later.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handover.h"
#include "log.h"

const HND_Timing HND_DEFAULT_TIMING = {
	.timeout_ms = CCL_DEFAULT_TIMEOUT_MS,
	.tries = CCL_DEFAULT_TRIES,
	.max_failures = 6,
	.first_backoff_ms = 50,
	.settle_ms = 500,
	.holdoff_ms = 1000,
	.max_holdoff_ms = 8000,
	.max_rounds = 0,
};

/* Agreeing tracking reads that resolve a dfreq in doubt, and the most reads
 * made before a frequency that keeps moving counts as neither. */
#define VERIFY_VOTES 2
#define VERIFY_MAX_READS 8
/* chrony's Float keeps 24 significant bits: frequencies read back from
 * tracking are within this many units of 2^-23 of the true one. */
#define FREQ_READ_ULPS 4.0

typedef enum { FREQ_BEFORE, FREQ_AFTER, FREQ_NEITHER } FreqClass;

struct HND_Machine {
	HND_Timing timing;
	bool chronyd;    /* a command socket is configured */
	int64_t now;     /* ns, CLOCK_MONOTONIC, of the event being handled */
	HND_Actions *out; /* of the event being handled */
	HND_State state;
	HND_Step step;   /* of the request out */

	/* The handover under way. */
	bool busy;
	HND_Target target;
	unsigned gen;      /* bumped by every new target */
	unsigned sent_gen; /* gen of the request out (or of the measure or
			    * record asked for) */
	unsigned refused_gen; /* gen whose dfreq was refused (logged) */
	unsigned unrecorded_gen; /* gen whose dfreq could not be recorded */
	HND_Period chrony_period; /* chronyd's frequency is right for this */
	/* chronyd's frequency (ppm) when it was right for anchor_period: its
	 * first tracking read of the handover, or a recorded dfreq's
	 * frequency before it.  (1 - f) is proportional to the period f is
	 * right for, so this one pair tells the period of any frequency
	 * chronyd is seen at (samples fed between rounds move it), and the
	 * frequency of any period. */
	bool anchor_known;
	HND_Period anchor_period;
	double anchor_freq;
	bool anchor_recorded; /* a record with it was kept */
	/* No sample fed and no dfreq of ours since the handover began (and it
	 * did not start from a record): chronyd's frequency moves only by its
	 * own estimate for the old period, and each reading re-anchors. */
	bool own_estimate;
	bool reset_done, doffset_done, burst_done;
	/* The makestep confirmed (and what it left checked), or refused (no
	 * other one for this target); refining: a step was made, the residual
	 * is next. */
	bool step_done, step_refused, refining;
	CPR_Tracking track;
	/* track was the last thing read from chronyd: no request and no wait
	 * since (chronyd keeps slewing its correction away while we wait). */
	bool track_fresh;
	/* chronyd's frequency, ppm, read since samples could last have moved
	 * it (the handover began, or it waited between rounds) and since our
	 * last dfreq: what the next dfreq composes onto. */
	bool freq_fresh;
	double freq_now;
	/* A round of tries failed: waiting in the hold-off to try again
	 * (samples flow meanwhile); failing_said: the failure was logged for
	 * this handover. */
	bool retry_wait, failing_said;
	bool settle_needed;
	int failures;
	bool delivered; /* a request of this handover reached chronyd */
	bool record_failing; /* the write-ahead failed (said once) */
	bool restart_pending; /* a new target arrived during this handover */
	HND_Report report;
	int64_t start_ns;

	/* A dfreq in doubt. */
	bool dfreq_pending;
	HND_Period dfreq_to;
	double dfreq_sent; /* ppm, as chronyd decodes it */
	double f_before, f_after;
	FreqClass last_class;
	int votes, verify_reads;

	/* The pending request's own data. */
	HND_Period sending_to;
	double sending_dfreq;

	/* Hold-off between handovers. */
	int64_t last_begin_ns;
	bool have_begun;
	int holdoff_ms;

	/* What chronyd has been handed (HND_Record), as it stands: kept by
	 * the driver at each HND_ACT_RECORD.  dirty: changed since (a
	 * generation, a period), kept at the next page a second after the
	 * last write; unsaved: the last write failed, tried again the same
	 * way.  period_kept: the period last kept when idle. */
	HND_Record rec;
	bool started; /* the first page was seen */
	HND_Record kept; /* at start, for the first page */
	bool dirty, unsaved;
	int64_t last_write_ns, last_period_write_ns;
	HND_Period period_kept;
	/* The page's generation while a handover is under way. */
	uint64_t target_gen;
	/* The next page is another device's; the epoch's handover heads for
	 * epoch_period. */
	bool source_changed;
	HND_Period epoch_period;
	/* The offset last measured under the handled marker: the step is
	 * measured from it when the marker changes. */
	bool have_offset;
	int64_t last_offset_ns;
};

static void next_action(HND_Machine *m);
static void write_record(HND_Machine *m);
static void record_resolved(HND_Machine *m);

static void bump_holdoff(HND_Machine *m)
{
	m->holdoff_ms = m->holdoff_ms * 2 > m->timing.max_holdoff_ms ? m->timing.max_holdoff_ms : m->holdoff_ms * 2;
}

/* The next action of the event being handled. */
static HND_Action *act(HND_Machine *m, HND_ActionType type)
{
	HND_Action *a;

	/* An event returns a few actions at most: more is a bug here. */
	if (m->out->n >= HND_MAX_ACTIONS)
		abort();
	a = &m->out->a[m->out->n++];
	memset(a, 0, sizeof(*a));
	a->type = type;
	return a;
}

double HND_DfreqPpm(HND_Period p0, HND_Period p1)
{
	/* P1/P0 from the two fractions and shifts; one rounding. */
	double ratio = ldexp((double)p1.frac, p0.shift - p1.shift) / (double)p0.frac;

	return -(ratio - 1.0) * 1e6;
}

static bool usable(HND_Period p)
{
	return p.valid && p.frac != 0 && p.shift < 64;
}

static bool same_period(HND_Period a, HND_Period b)
{
	return a.frac == b.frac && a.shift == b.shift;
}

const char *HND_StepName(HND_Step s)
{
	switch (s) {
	case HND_STEP_NONE:
		return "none";
	case HND_STEP_RESET:
		return "reset sources";
	case HND_STEP_TRACKING:
		return "tracking";
	case HND_STEP_DFREQ:
		return "dfreq";
	case HND_STEP_DOFFSET:
		return "doffset";
	case HND_STEP_BURST:
		return "burst";
	case HND_STEP_VERIFY:
		return "verify";
	case HND_STEP_MAKESTEP:
		return "makestep";
	case HND_STEP_COUNT:
		break;
	}
	return "?";
}

static void set_state(HND_Machine *m, HND_State s, HND_Step st)
{
	m->state = s;
	m->step = st;
}

static void arm(HND_Machine *m, HND_State s, int64_t ms)
{
	HND_Action *a = act(m, HND_ACT_ARM);

	a->u.arm.ms = ms;
	a->u.arm.state = s;
	set_state(m, s, HND_STEP_NONE);
	m->track_fresh = false; /* time passes: chronyd slews on */
}

static void close_client(HND_Machine *m)
{
	act(m, HND_ACT_CLOSE);
}

/* chronyd's frequency after it applied dfreq d (ppm) to f (ppm): it scales
 * the rate, (1 - f') = (1 - f)(1 - d), in units of 1e-6. */
static double apply_dfreq(double f, double d)
{
	return f + d * (1.0 - f * 1e-6);
}

/* How far a frequency chronyd reports may be from F_TO, reached from F_FROM
 * by a dfreq: read-back rounding, and the difference between scaling the
 * rate and adding ppm, which chrony versions could make. */
static double freq_tol(double f_from, double f_to)
{
	return FREQ_READ_ULPS * ldexp(fmax(fabs(f_from), fabs(f_to)), -23) +
	       fabs((f_to - f_from) * f_from) * 1e-6 + 1e-9;
}

static FreqClass classify(HND_Machine *m, double f)
{
	double tol = freq_tol(m->f_before, m->f_after);
	bool before = fabs(f - m->f_before) <= tol, after = fabs(f - m->f_after) <= tol;

	if (after)
		return FREQ_AFTER; /* both: too small to tell, and to matter */
	return before ? FREQ_BEFORE : FREQ_NEITHER;
}

static void complete(HND_Machine *m, bool ok, HND_Step failed, int error, const char *reason)
{
	act(m, HND_ACT_DISARM);
	m->report.ok = ok;
	m->report.marker = m->target.marker;
	m->report.has_time = m->target.has_time;
	m->report.failed_step = ok ? HND_STEP_NONE : failed;
	m->report.error = ok ? 0 : error;
	m->report.reason = ok ? "ok" : reason;
	if (m->dfreq_pending)
		m->chrony_period.valid = false; /* a dfreq unresolved */
	m->report.chrony_period = m->chrony_period;
	m->report.duration_ns = m->now - m->start_ns;
	m->report.generation = m->target_gen;
	m->report.period_after = m->target.new_period;
	if (m->failing_said)
		LOG(LOGS_INFO, "disruption %" PRIu64 " handed over to chronyd after %d failed "
		    "round%s", m->target.marker, m->report.failed_rounds,
		    m->report.failed_rounds == 1 ? "" : "s");
	m->busy = false;
	m->retry_wait = false;
	m->failing_said = false;
	m->dfreq_pending = false;
	m->settle_needed = false;
	set_state(m, HND_IDLE, HND_STEP_NONE);
	/* Handled: chronyd is taken to be right for the target's period from
	 * now on (its samples teach it what a refused or unsent dfreq did
	 * not), and nothing is in doubt. */
	m->rec.valid = true;
	m->rec.marker = m->target.marker;
	m->rec.generation = m->target_gen;
	m->rec.chrony_period = m->target.new_period;
	m->rec.anchor.valid = false;
	m->rec.in_doubt.valid = false;
	m->period_kept = m->rec.chrony_period;
	m->last_period_write_ns = m->now;
	m->have_offset = false;
	write_record(m);
	act(m, HND_ACT_DONE)->u.done = m->report;
}

/* A round of tries failed: the handover is not done.  It is tried again at
 * the hold-off cadence (doubling to max_holdoff_ms), from the facts it has,
 * until it completes or a newer target replaces it; said once. */
static void round_failed(HND_Machine *m, HND_Step s, int error, const char *reason)
{
	int64_t wait = m->holdoff_ms;

	m->report.failed_rounds++;
	if (m->timing.max_rounds > 0 && m->report.failed_rounds >= m->timing.max_rounds) {
		complete(m, false, s, error, reason);
		return;
	}
	if (!m->failing_said) {
		char f1[48], f2[48], f3[48];
		const char *fields[] = { f1, f2, f3, NULL };

		snprintf(f1, sizeof(f1), "DISRUPTION_MARKER=%" PRIu64, m->target.marker);
		snprintf(f2, sizeof(f2), "FAILED_STEP=%s", HND_StepName(s));
		snprintf(f3, sizeof(f3), "ERRNO=%d", error);
		LOG_Event(LOGS_ERR, LOG_MSGID_HANDOVER_FAILED, fields,
			  "could not hand disruption %" PRIu64 " over to chronyd (%s at %s); "
			  "feeding samples, the disruption stays unhandled and is tried again every "
			  "%d to %d s until chronyd takes it", m->target.marker, reason, HND_StepName(s),
			  m->timing.holdoff_ms / 1000, m->timing.max_holdoff_ms / 1000);
	}
	m->failing_said = true;
	/* Samples are fed while the round waits: the anchor first, so that a
	 * restart meanwhile tells what chronyd learns from what it had. */
	if (m->anchor_known && !m->anchor_recorded)
		record_resolved(m);
	m->failures = 0;
	bump_holdoff(m);
	if (m->settle_needed && wait < m->timing.settle_ms)
		wait = m->timing.settle_ms;
	if (wait < m->timing.first_backoff_ms)
		wait = m->timing.first_backoff_ms; /* never a busy loop */
	m->settle_needed = false;
	m->retry_wait = true;
	m->own_estimate = false; /* samples are fed from now on */
	arm(m, HND_HOLDOFF, wait);
}

/* QUIET: the caller said why. */
static void step_failed_said(HND_Machine *m, HND_Step s, int error, const char *reason, bool quiet)
{
	int64_t backoff;

	m->failures++;
	m->report.failures++;
	if (m->failures >= m->timing.max_failures) {
		round_failed(m, s, error, reason);
		return;
	}
	if (!quiet) {
		char f1[48], f2[32];

		snprintf(f1, sizeof(f1), "FAILED_STEP=%s", HND_StepName(s));
		snprintf(f2, sizeof(f2), "ERRNO=%d", error);
		LOG_Event(LOGS_WARN, NULL, (const char *[]){ f1, f2, NULL },
			  "chronyd handover: %s failed (%s); retrying", HND_StepName(s), reason);
	}
	backoff = (int64_t)m->timing.first_backoff_ms << (m->failures - 1);
	if (m->settle_needed && backoff < m->timing.settle_ms)
		backoff = m->timing.settle_ms;
	m->settle_needed = false;
	arm(m, HND_BACKOFF, backoff);
}

static void step_failed(HND_Machine *m, HND_Step s, int error, const char *reason)
{
	step_failed_said(m, s, error, reason, false);
}

static HND_Anchor anchor_now(HND_Machine *m)
{
	return (HND_Anchor){ .valid = m->anchor_known, .period = m->anchor_period,
			     .freq_ppm = m->anchor_freq };
}

/* The record as it stands, to be kept durably; the result comes back as
 * HND_EV_RECORDED. */
static void write_record(HND_Machine *m)
{
	m->dirty = false;
	m->last_write_ns = m->now;
	act(m, HND_ACT_RECORD)->u.record = m->rec;
}

/* The period chronyd is right for, with no dfreq in doubt, for a restart.
 * A failure leaves the record of the dfreq, which resolves to the same. */
static void record_resolved(HND_Machine *m)
{
	m->rec.chrony_period = m->chrony_period;
	m->rec.anchor = anchor_now(m);
	m->rec.in_doubt.valid = false;
	write_record(m);
}

/* chronyd's frequency when right for P, by the anchor. */
static double freq_for(HND_Machine *m, HND_Period p)
{
	return apply_dfreq(m->anchor_freq, HND_DfreqPpm(m->anchor_period, p));
}

/* The period chronyd's frequency F is right for, by the anchor: P/P_anchor =
 * (1 - F)/(1 - F_anchor), in units of 1e-6 (!valid: not representable). */
static HND_Period period_for(HND_Machine *m, double f)
{
	HND_Period p = m->anchor_period;
	double delta = (double)p.frac * ((m->anchor_freq - f) * 1e-6 / (1.0 - m->anchor_freq * 1e-6));
	uint64_t d;

	if (!(fabs(delta) < ldexp(1.0, 63))) {
		p.valid = false;
		return p;
	}
	d = (uint64_t)llround(fabs(delta));
	if (delta < 0 && d >= p.frac) {
		p.valid = false;
	} else if (delta < 0) {
		p.frac -= d;
	} else if (p.frac <= UINT64_MAX - d) {
		p.frac += d;
	} else if (p.shift > 0) {
		/* Half the fraction, one shift less: the same period. */
		p.frac = p.frac / 2 + d / 2 + (p.frac & d & 1);
		p.shift--;
	} else {
		p.valid = false;
	}
	return p;
}

/* chronyd's frequency F, read from its tracking report.  The first read of
 * a handover is the anchor: chronyd is right for the period it was handed
 * over with.  A later one off what the anchor says for chrony_period means
 * chronyd's frequency moved without a dfreq of ours (samples fed between
 * rounds, its own sources, a restart of it): the period it is right for now
 * (the target's, when it has learned that already) is what the next dfreq
 * composes from, never the one it was right for before. */
static void follow_freq(HND_Machine *m, double f)
{
	double want, target_f;
	bool learned;

	if (!usable(m->chrony_period) || !isfinite(f))
		return;
	if (!m->anchor_known || m->own_estimate) {
		/* Until samples are fed or a dfreq of ours lands, what moves
		 * chronyd's frequency is its own estimate for the old period
		 * (the samples it had before the disruption, taken in at its
		 * next poll): the newest reading is the anchor. */
		if (m->anchor_known && m->anchor_freq != f)
			m->anchor_recorded = false;
		m->anchor_known = true;
		m->anchor_period = m->chrony_period;
		m->anchor_freq = f;
		return;
	}
	want = freq_for(m, m->chrony_period);
	if (fabs(f - want) <= freq_tol(m->anchor_freq, want))
		return;
	target_f = usable(m->target.new_period) ? freq_for(m, m->target.new_period) : NAN;
	learned = fabs(f - target_f) <= freq_tol(m->anchor_freq, target_f);
	LOG(LOGS_INFO, "chronyd's frequency moved to %+.6f ppm from %+.6f ppm without a dfreq "
	    "(samples, its own sources): %s", f, want,
	    learned ? "it is right for the new counter period already"
		    : "the frequency change composes from it");
	m->chrony_period = learned ? m->target.new_period : period_for(m, f);
	record_resolved(m);
}

/* What chronyd may have applied of a request that got no answer. */
static void in_doubt(HND_Machine *m, HND_Step s)
{
	m->settle_needed = true;
	if (s == HND_STEP_DFREQ) {
		m->dfreq_pending = true;
		m->dfreq_to = m->sending_to;
		m->dfreq_sent = m->sending_dfreq;
		m->votes = 0;
		m->verify_reads = 0;
	} else if (s == HND_STEP_DOFFSET || s == HND_STEP_MAKESTEP) {
		/* Redone: the tracking read before the new doffset sees
		 * whatever it did. */
		m->reset_done = false;
		m->doffset_done = false;
		m->step_done = false;
		m->refining = false;
	}
}

/* chronyd applied dfreq D (ppm), which made it right for TO. */
static void applied_dfreq(HND_Machine *m, HND_Period to, double d)
{
	m->chrony_period = to;
	m->freq_fresh = false; /* moved by it: read again before another */
	m->report.dfreqs++;
	/* Composed as chronyd applies them: (1 - D) = (1 - D')(1 - d). */
	m->report.dfreq_ppm = apply_dfreq(m->report.dfreq_ppm, d);
	record_resolved(m);
}

static void resolve_verify(HND_Machine *m, const CPR_Tracking *t)
{
	FreqClass c = classify(m, t->freq_ppm);

	if (++m->verify_reads >= VERIFY_MAX_READS && (m->votes == 0 || c != m->last_class)) {
		c = FREQ_NEITHER;
		m->votes = VERIFY_VOTES;
	} else if (m->votes == 0 || c != m->last_class) {
		m->last_class = c;
		m->votes = 1;
	} else {
		m->votes++;
	}
	if (m->votes < VERIFY_VOTES)
		return;

	m->dfreq_pending = false;
	switch (c) {
	case FREQ_AFTER:
		LOG(LOGS_INFO, "chronyd had applied the dfreq whose answer was lost (frequency "
		    "%+.6f -> %+.6f ppm)", m->f_before, t->freq_ppm);
		m->report.doubt = HND_DOUBT_APPLIED;
		applied_dfreq(m, m->dfreq_to, m->dfreq_sent);
		break;
	case FREQ_BEFORE:
		LOG(LOGS_INFO, "chronyd had not applied the dfreq whose answer was lost (frequency "
		    "still %+.6f ppm): sending it again", t->freq_ppm);
		m->report.doubt = HND_DOUBT_NOT_APPLIED;
		break;
	case FREQ_NEITHER:
		/* chronyd moved on its own meanwhile (samples fed between
		 * rounds, a restart of it without its drift file): whatever
		 * it applied, its frequency now is what the next dfreq
		 * composes from (a dfreq was sent after a tracking read, or
		 * came from a record: the anchor is known). */
		LOG(LOGS_WARN, "chronyd's frequency went from %+.6f to %+.6f ppm, not %+.6f: "
		    "whether it applied the dfreq of %+.6f ppm whose answer was lost does not "
		    "matter, the frequency change composes from where it is", m->f_before,
		    t->freq_ppm, m->f_after, m->dfreq_sent);
		m->report.doubt = HND_DOUBT_MOVED;
		follow_freq(m, t->freq_ppm);
		break;
	}
	/* As good as the tracking step's. */
	m->track = *t;
	m->track_fresh = true;
	m->freq_now = t->freq_ppm;
	m->freq_fresh = true;
}

/* chronyd could not step: it slews, from a doffset made again against what
 * it kept of its correction. */
static void step_refused_by_chronyd(HND_Machine *m, bool current)
{
	if (current) {
		if (!m->report.step_refused)
			LOG(LOGS_WARN, "chronyd did not step its clock (makestep failed: started "
			    "with -x, or the step was refused); disruption %" PRIu64 "'s step of "
			    "%+.9f s is slewed", m->target.marker, m->track.current_correction);
		m->step_refused = true;
		m->report.step_refused = true;
		m->refining = false;
		m->track_fresh = false;
		m->doffset_done = false;
	}
	next_action(m);
}

static void on_reply(HND_Machine *m, const CCL_Result *r)
{
	HND_Step s = m->step;
	bool current = m->sent_gen == m->gen;

	m->report.datagrams += r->attempts;
	if (r->outcome == CCL_DONE)
		m->report.rtt_ns[s] = r->rtt_ns;
	if (r->attempts > 0)
		m->delivered = true; /* chronyd is there (restarts are retried) */

	switch (r->outcome) {
	case CCL_DONE:
		switch (s) {
		case HND_STEP_RESET:
			if (current) {
				/* chronyd took in no sample since: its frequency
				 * is read again right before the dfreq. */
				m->freq_fresh = false;
				m->reset_done = true;
				m->report.resets++;
			}
			break;
		case HND_STEP_TRACKING:
			m->track = r->reply.tracking;
			m->track_fresh = true;
			m->freq_now = m->track.freq_ppm;
			m->freq_fresh = true;
			follow_freq(m, m->freq_now);
			break;
		case HND_STEP_VERIFY:
			resolve_verify(m, &r->reply.tracking);
			break;
		case HND_STEP_DFREQ:
			applied_dfreq(m, m->sending_to, m->sending_dfreq);
			break;
		case HND_STEP_DOFFSET:
			if (current)
				m->doffset_done = true;
			break;
		case HND_STEP_BURST:
			if (current)
				m->burst_done = true;
			break;
		case HND_STEP_MAKESTEP:
			if (current) {
				m->report.steps++;
				m->report.step += m->track.current_correction;
				/* What the kernel had not applied of chronyd's
				 * slew since the doffset is lost in the step:
				 * measured again, and stepped if it matters. */
				m->refining = m->report.steps < HND_MAX_STEPS;
				m->step_done = !m->refining;
				m->doffset_done = !m->refining;
			}
			break;
		case HND_STEP_NONE:
		case HND_STEP_COUNT:
			break;
		}
		next_action(m);
		return;
	case CCL_FAILED:
		/* Without NTP sources chronyd refuses a burst: nothing to retry. */
		if (s == HND_STEP_BURST) {
			m->burst_done = true;
			next_action(m);
			return;
		}
		if (s == HND_STEP_MAKESTEP && r->status == CPR_STT_FAILED) {
			step_refused_by_chronyd(m, current);
			return;
		}
		close_client(m); /* a fresh socket next time (chronyd's directory
				   may have been recreated) */
		if ((r->error == ENOENT || r->error == ECONNREFUSED) && !m->delivered && !m->dfreq_pending) {
			/* A chronyd that starts later takes its frequency from
			 * its drift file, which may or may not hold a dfreq of
			 * ours: the period it is right for is not known, and
			 * it gets the reset and the step, no dfreq. */
			if (!m->report.chronyd_absent) {
				char e[32];

				snprintf(e, sizeof(e), "ERRNO=%d", r->error);
				LOG_Event(LOGS_WARN, NULL, (const char *[]){ "CHRONYD=unreachable", e, NULL },
					  "chronyd not reachable (%s): the disruption is handed over "
					  "when it is, without a frequency change", strerror(r->error));
			}
			m->report.chronyd_absent = true;
			if (m->chrony_period.valid) {
				m->chrony_period.valid = false;
				record_resolved(m);
			}
			round_failed(m, s, r->error, r->reason);
			return;
		}
		step_failed(m, s, r->error, r->reason);
		return;
	case CCL_UNKNOWN:
		close_client(m);
		in_doubt(m, s);
		step_failed(m, s, r->error, r->reason);
		return;
	}
}

static void send_request(HND_Machine *m, HND_Step s, const CPR_Packet *p)
{
	HND_Action *a = act(m, HND_ACT_SEND);

	a->u.send.step = s;
	a->u.send.request = *p;
	a->u.send.timeout_ms = m->timing.timeout_ms;
	a->u.send.tries = m->timing.tries;
	m->sent_gen = m->gen;
	m->track_fresh = false;
	set_state(m, HND_REQUEST, s);
}

/* Waits for what the driver does for step S (a measurement, a record). */
static void wait_for(HND_Machine *m, HND_State state, HND_Step s)
{
	m->sent_gen = m->gen;
	set_state(m, state, s);
}

/* The dfreq's write-ahead record was kept (R 0) or not: sent, or retried
 * like a failed step. */
static void dfreq_recorded(HND_Machine *m, int r)
{
	CPR_Packet p;

	if (m->sent_gen != m->gen) {
		/* A newer target: what follows is decided afresh (a record of
		 * a dfreq never sent resolves as not applied). */
		next_action(m);
		return;
	}
	if (r < 0 && m->failures + 1 >= m->timing.max_failures) {
		/* The dfreq is given up, not the handover: chronyd is reset
		 * and stepped, its samples steer its frequency. */
		LOG(LOGS_ERR, "not handing chronyd the dfreq of %+.6f ppm for disruption %" PRIu64
		    ": it could not be recorded first (%s); resetting chronyd without a frequency "
		    "change", m->sending_dfreq, m->target.marker, strerror(-r));
		m->report.dfreq_unrecorded = true;
		m->unrecorded_gen = m->gen;
		m->record_failing = false;
		m->failures = 0;
		next_action(m);
		return;
	}
	if (r < 0) {
		if (!m->record_failing) {
			char e[32];

			snprintf(e, sizeof(e), "ERRNO=%d", -r);
			LOG_Event(LOGS_WARN, NULL, (const char *[]){ "DFREQ_RECORD=failed", e, NULL },
				  "not sending chronyd the dfreq of %+.6f ppm: it could not be "
				  "recorded first (%s), and a restart would not know whether chronyd "
				  "applied it; retrying", m->sending_dfreq, strerror(-r));
		}
		m->record_failing = true;
		step_failed_said(m, HND_STEP_DFREQ, -r, "the dfreq could not be recorded first",
				 true);
		return;
	}
	if (m->record_failing)
		LOG(LOGS_INFO, "the dfreq is recorded: sending it");
	m->record_failing = false;
	/* sending_dfreq is what chronyd decodes: encoded again, the same. */
	CPR_MakeDfreq(&p, m->sending_dfreq);
	send_request(m, HND_STEP_DFREQ, &p);
}

/* The offset for the doffset, O, measured as late as possible: right
 * before sending. */
static void offset_measured(HND_Machine *m, HND_OffsetAnswer answer, double o, int skip_reason)
{
	CPR_Packet p;

	act(m, HND_ACT_DISARM);
	if (m->sent_gen != m->gen) {
		next_action(m);
		return;
	}
	switch (answer) {
	case HND_OFFSET_OK:
		if (isfinite(o))
			break;
		/* fall through */
	case HND_OFFSET_RETRY:
	default:
		step_failed(m, HND_STEP_DOFFSET, ENODATA, "no offset sample for doffset");
		return;
	case HND_OFFSET_SKIP:
		/* Nothing sent: nothing to count or to doubt.  After a step,
		 * the step stands. */
		m->report.doffset_skipped = !m->refining;
		m->report.skip_reason = skip_reason;
		m->doffset_done = true;
		m->step_done = m->refining;
		m->refining = false;
		next_action(m);
		return;
	}
	if (m->refining) {
		/* What the step left: sent only when it matters. */
		m->report.residual = o - m->track.current_correction;
		if (fabs(m->report.residual) <= HND_MIN_STEP_S) {
			m->refining = false;
			m->doffset_done = true;
			m->step_done = true;
			next_action(m);
			return;
		}
		CPR_MakeDoffset(&p, -m->report.residual);
	} else {
		m->report.have_offset = true;
		m->report.doffset_skipped = false;
		m->report.offset = o;
		m->report.correction = m->track.current_correction;
		m->report.doffset = -(o - m->track.current_correction);
		CPR_MakeDoffset(&p, m->report.doffset);
	}
	send_request(m, HND_STEP_DOFFSET, &p);
}

static void send_step(HND_Machine *m, HND_Step s)
{
	CPR_Packet p;
	HND_Action *a;

	switch (s) {
	case HND_STEP_RESET:
		CPR_MakeResetSources(&p);
		break;
	case HND_STEP_TRACKING:
	case HND_STEP_VERIFY:
		CPR_MakeTracking(&p);
		break;
	case HND_STEP_DFREQ:
		m->own_estimate = false; /* a dfreq of ours is on its way */
		m->sending_to = m->target.new_period;
		/* What chronyd will decode, to know its frequency afterwards. */
		m->sending_dfreq = CPR_FloatDecode(
			CPR_FloatEncode(HND_DfreqPpm(m->chrony_period, m->sending_to)));
		m->f_before = m->freq_now;
		m->f_after = apply_dfreq(m->f_before, m->sending_dfreq);
		/* Written ahead: sent once it is kept (dfreq_recorded). */
		m->rec.chrony_period = m->chrony_period;
		m->rec.anchor = anchor_now(m);
		m->rec.in_doubt = (HND_Dfreq){ .valid = true, .marker = m->target.marker,
					       .from = m->chrony_period, .to = m->sending_to,
					       .dfreq_ppm = m->sending_dfreq,
					       .freq_before_ppm = m->f_before };
		write_record(m);
		wait_for(m, HND_RECORD, s);
		return;
	case HND_STEP_DOFFSET:
		/* Answered by the next tick's sample; a page that cannot be
		 * read by then is a reading to retry. */
		a = act(m, HND_ACT_ARM);
		a->u.arm.ms = m->timing.timeout_ms;
		a->u.arm.state = HND_MEASURE;
		act(m, HND_ACT_MEASURE)->u.measure_marker = m->target.marker;
		wait_for(m, HND_MEASURE, s);
		return;
	case HND_STEP_BURST:
		CPR_MakeBurst(&p, 4, 8);
		break;
	case HND_STEP_MAKESTEP:
		CPR_MakeMakestep(&p);
		break;
	case HND_STEP_NONE:
	case HND_STEP_COUNT:
	default:
		abort();
	}
	send_request(m, s, &p);
}

/* A change of period chronyd's frequency needs (not yet believable). */
static bool period_changes(const HND_Machine *m)
{
	return m->target.has_time && usable(m->chrony_period) && usable(m->target.new_period) &&
	       !same_period(m->chrony_period, m->target.new_period);
}

static bool believable(double d)
{
	return fabs(d) <= HND_MAX_DFREQ_PPM;
}

static bool want_dfreq(HND_Machine *m)
{
	double d;

	if (!period_changes(m))
		return false;
	if (m->report.dfreq_unrecorded && m->unrecorded_gen == m->gen)
		return false;
	d = HND_DfreqPpm(m->chrony_period, m->target.new_period);
	if (believable(d))
		return true;
	/* chronyd's frequency stays right for chrony_period. */
	if (m->refused_gen != m->gen || !m->report.dfreq_refused) {
		m->refused_gen = m->gen;
		m->report.dfreq_refused = true;
		LOG(LOGS_ERR, "not handing chronyd a counter frequency change of %+.6f ppm for "
		    "disruption %" PRIu64 ": larger than %.0f ppm, the page is not believable; "
		    "resetting chronyd without a frequency change", d, m->target.marker,
		    HND_MAX_DFREQ_PPM);
	}
	return false;
}

/* The doffset is in chronyd and the target wants the clock stepped. */
static bool want_step(HND_Machine *m)
{
	return m->target.has_time && m->target.step && m->doffset_done && !m->report.doffset_skipped &&
	       !m->step_done && !m->step_refused;
}

static void next_action(HND_Machine *m)
{
	if (!m->busy) {
		set_state(m, HND_IDLE, HND_STEP_NONE);
		return;
	}
	if (m->settle_needed) {
		m->settle_needed = false;
		arm(m, HND_SETTLE, m->timing.settle_ms);
		return;
	}
	if (m->restart_pending) {
		/* Flapping markers: the hold-off applies to a restart too. */
		int64_t since = (m->now - m->last_begin_ns) / 1000000;

		m->restart_pending = false;
		if (since < m->holdoff_ms) {
			arm(m, HND_HOLDOFF, m->holdoff_ms - since);
			bump_holdoff(m);
			return;
		}
		m->last_begin_ns = m->now;
	}
	if (!m->chronyd) {
		m->report.chronyd_absent = true;
		m->chrony_period.valid = false;
		complete(m, true, HND_STEP_NONE, 0, NULL);
		return;
	}

	if (!m->reset_done && !m->dfreq_pending && !m->freq_fresh && want_dfreq(m))
		/* chronyd's frequency before anything else: the anchor, read
		 * before samples can move it (a failed round feeds them). */
		send_step(m, HND_STEP_TRACKING);
	else if (!m->reset_done)
		send_step(m, HND_STEP_RESET);
	else if (m->dfreq_pending)
		send_step(m, HND_STEP_VERIFY);
	else if (want_dfreq(m))
		/* The dfreq composes onto chronyd's frequency as it is: read
		 * again after a wait in which samples were fed. */
		send_step(m, m->freq_fresh ? HND_STEP_DFREQ : HND_STEP_TRACKING);
	else if (m->target.has_time && !m->doffset_done)
		/* c read again right before the doffset: since the last read
		 * a request went out or time passed, and chronyd slewed. */
		send_step(m, m->track_fresh ? HND_STEP_DOFFSET : HND_STEP_TRACKING);
	else if (want_step(m) && !m->track_fresh)
		/* What chronyd has not applied yet, read right before the
		 * step: it steps by that. */
		send_step(m, HND_STEP_TRACKING);
	else if (want_step(m) && fabs(m->track.current_correction) > HND_MIN_STEP_S)
		send_step(m, HND_STEP_MAKESTEP);
	else if (!m->target.has_time && !m->burst_done)
		send_step(m, HND_STEP_BURST);
	else
		complete(m, true, HND_STEP_NONE, 0, NULL);
}

static void timer_expired(HND_Machine *m)
{
	if (m->state == HND_HOLDOFF) {
		/* Samples were fed while the round waited: chronyd may have
		 * learned from them. */
		if (m->retry_wait)
			m->freq_fresh = false;
		m->retry_wait = false;
		/* Targets that arrived while waiting are simply the newest. */
		m->last_begin_ns = m->now;
		m->have_begun = true;
		m->restart_pending = false;
	}
	next_action(m);
}

static void start(HND_Machine *m, const HND_Target *t)
{
	int64_t now = m->now, since;

	if (!m->busy) {
		m->busy = true;
		memset(&m->report, 0, sizeof(m->report));
		m->chrony_period = t->old_period;
		/* Recorded before vmclockd restarted: chronyd may have learned
		 * from samples since, its first reading would not tell. */
		m->anchor_known = t->anchor.valid && usable(t->anchor.period) &&
			       isfinite(t->anchor.freq_ppm);
		m->anchor_period = t->anchor.period;
		m->anchor_freq = t->anchor.freq_ppm;
		m->anchor_recorded = m->anchor_known;
		m->freq_fresh = false;
		m->failures = 0;
		m->delivered = false;
		m->dfreq_pending = false;
		m->settle_needed = false;
		m->restart_pending = false;
		m->start_ns = now;
		if (t->in_doubt.valid && usable(t->in_doubt.from) && usable(t->in_doubt.to) &&
		    isfinite(t->in_doubt.dfreq_ppm) && isfinite(t->in_doubt.freq_before_ppm)) {
			/* Sent before a restart: resolved before anything else,
			 * once whatever was still on its way has landed. */
			const HND_Dfreq *d = &t->in_doubt;

			LOG(LOGS_INFO, "a dfreq of %+.6f ppm for disruption %" PRIu64 " was sent before "
			    "vmclockd restarted: reading chronyd's frequency (%+.6f ppm before it) "
			    "to tell whether it was applied", d->dfreq_ppm, d->marker,
			    d->freq_before_ppm);
			m->chrony_period = d->from;
			/* Recorded right before it was sent: chronyd was right
			 * for from at freq_before (an anchor of its own). */
			if (!m->anchor_known) {
				m->anchor_known = true;
				m->anchor_period = d->from;
				m->anchor_freq = d->freq_before_ppm;
				m->anchor_recorded = true;
			}
			m->dfreq_pending = true;
			m->dfreq_to = d->to;
			m->dfreq_sent = d->dfreq_ppm;
			m->f_before = d->freq_before_ppm;
			m->f_after = apply_dfreq(m->f_before, m->dfreq_sent);
			m->votes = 0;
			m->verify_reads = 0;
			m->settle_needed = true;
		}
		/* From a record, samples may have been fed since: not its own. */
		m->own_estimate = !m->anchor_known;
	} else {
		m->restart_pending = true;
	}
	m->target = *t;
	m->gen++;
	m->reset_done = false;
	m->doffset_done = false;
	m->burst_done = false;
	m->step_done = false;
	m->step_refused = false;
	m->refining = false;
	m->report.have_offset = false;
	m->report.doffset_skipped = false;
	m->report.steps = 0;
	m->report.step = 0.0;
	m->report.residual = 0.0;
	m->report.step_refused = false;

	if (m->state != HND_IDLE)
		return; /* the request out, or the timer, leads to the next step */

	/* Rate limit: a handover that begins within the hold-off of the last
	 * one waits for it, and the hold-off doubles while markers flap. */
	since = m->have_begun ? (now - m->last_begin_ns) / 1000000 : INT64_MAX;
	if (since < m->holdoff_ms) {
		arm(m, HND_HOLDOFF, m->holdoff_ms - since);
		bump_holdoff(m);
		return;
	}
	if (since > m->timing.max_holdoff_ms)
		m->holdoff_ms = m->timing.holdoff_ms;
	/* From the loop, as one more event: nothing is sent from within
	 * the caller's own handling of the disruption. */
	arm(m, HND_HOLDOFF, 0);
}

static void chronyd_configured(HND_Machine *m, bool configured, bool changed)
{
	m->chronyd = configured;
	if (!changed)
		return; /* same socket: whatever is in flight stays valid */
	close_client(m);
	if (m->state == HND_REQUEST) {
		/* Cancelled in flight: chronyd may have it. */
		in_doubt(m, m->step);
		m->settle_needed = false;
		arm(m, HND_SETTLE, m->timing.settle_ms);
	}
}

/* A write of the record: the dfreq's write-ahead waited for, or any other.
 * One that failed is tried again (dirty); a failed write-ahead leaves the
 * dfreq unsent, so the record no longer holds it. */
static void recorded(HND_Machine *m, int r, const HND_Record *rec)
{
	m->unsaved = r < 0;
	if (r < 0)
		m->dirty = true;
	if (r == 0 && rec->anchor.valid)
		m->anchor_recorded = true;
	if (!rec->in_doubt.valid)
		return;
	if (r < 0 && m->rec.in_doubt.valid && m->rec.in_doubt.marker == rec->in_doubt.marker &&
	    m->rec.in_doubt.dfreq_ppm == rec->in_doubt.dfreq_ppm)
		m->rec.in_doubt.valid = false;
	if (m->state == HND_RECORD)
		dfreq_recorded(m, r);
}

/* A new marker on PAGE (or a new device's first page): a handover of it
 * begins, or the one under way heads for it.  WHILE_DOWN: found at start,
 * against the record kept. */
static void begin(HND_Machine *m, const HND_Event *page, bool while_down)
{
	uint64_t marker = page->u.page.marker;
	uint64_t old = m->busy ? m->target.marker : m->rec.marker;
	HND_Period before = m->busy ? m->target.new_period : m->rec.chrony_period;
	HND_Action *a;
	HND_Target t = {
		.marker = marker,
		.old_period = m->rec.chrony_period,
		.new_period = m->source_changed ? m->epoch_period : page->u.page.period,
		.has_time = page->u.page.period.valid,
		.step = page->u.page.step,
	};
	bool fresh = !m->busy || m->source_changed;
	bool step_known = page->u.page.period.valid && page->u.page.have_offset && m->have_offset &&
			  !while_down && !m->source_changed;

	if (!m->busy && while_down) {
		/* Kept before vmclockd stopped: the first handover starts from
		 * them (one under way knows better). */
		t.in_doubt = m->rec.in_doubt;
		t.anchor = m->rec.anchor;
	}
	a = act(m, HND_ACT_DISRUPTION);
	a->u.disruption.old_marker = old;
	a->u.disruption.new_marker = marker;
	a->u.disruption.period_before = m->source_changed ? (HND_Period){ .valid = false } : before;
	a->u.disruption.period_after = page->u.page.period;
	a->u.disruption.source_changed = m->source_changed;
	start(m, &t);
	m->target_gen = page->u.page.generation;
	if (fresh) {
		/* A new record of it; a new device starts one of its own (its
		 * markers are not compared with the old one's). */
		m->report.old_marker = m->source_changed ? marker : old;
		m->report.first_marker = marker;
		m->report.marker_changes = 0;
		m->report.while_down = while_down;
		m->report.period_before = m->source_changed ? (HND_Period){ .valid = false } : before;
	}
	if (!m->source_changed && marker != old)
		m->report.marker_changes++;
	m->report.step_known = step_known;
	m->report.step_ns = step_known ? page->u.page.offset_ns - m->last_offset_ns : 0;
	m->source_changed = false;
}

/* Keeps what changed, a second after the last write (or a failed one). */
static void keep_soon(HND_Machine *m)
{
	if (m->dirty && m->now - m->last_write_ns >= (int64_t)HND_SAVE_RETRY_S * 1000000000)
		write_record(m);
}

static void page(HND_Machine *m, const HND_Event *ev)
{
	uint64_t marker = ev->u.page.marker, gen = ev->u.page.generation;
	HND_Period period = ev->u.page.period;
	bool same;

	if (!m->started) {
		m->started = true;
		if (!m->kept.valid) {
			/* Nothing kept: this page is the handled one. */
			m->rec = (HND_Record){ .valid = true, .marker = marker, .generation = gen,
					       .chrony_period = period };
			m->period_kept = period;
			m->last_period_write_ns = m->now;
			write_record(m);
			return;
		}
		m->rec = m->kept;
		m->period_kept = m->rec.chrony_period;
		m->last_period_write_ns = m->now;
		if (marker != m->rec.marker) {
			begin(m, ev, true);
			return;
		}
		if (m->rec.in_doubt.valid) {
			/* The page went back to the handled marker, yet a dfreq
			 * sent for another may be in chronyd: resolved by a
			 * handover of this one. */
			LOG(LOGS_WARN, "a dfreq for disruption %" PRIu64 " may have been applied "
			    "before vmclockd stopped, and the page shows marker %" PRIu64 " again",
			    m->rec.in_doubt.marker, marker);
			begin(m, ev, true);
			return;
		}
		/* Back at the handled marker: the handover the anchor was read
		 * for is moot. */
		m->rec.anchor.valid = false;
	}
	if (m->source_changed) {
		/* Neither its marker, generation nor period is compared with
		 * the old device's. */
		begin(m, ev, false);
		return;
	}
	same = marker == (m->busy ? m->target.marker : m->rec.marker);
	if (ev->u.page.generation_present && gen != HND_CurrentGeneration(m)) {
		HND_Action *a = act(m, HND_ACT_RESTORE);

		a->u.restore.old_generation = HND_CurrentGeneration(m);
		a->u.restore.new_generation = gen;
		a->u.restore.marker = marker;
		if (m->busy) {
			m->target_gen = gen;
		} else if (same) {
			m->rec.generation = gen;
			m->dirty = true;
		}
	}
	if (!same) {
		begin(m, ev, false);
		return;
	}
	if (!m->busy && period.valid) {
		/* The host refines the period: kept current, so that a
		 * disruption while vmclockd is down still gets an exact dfreq. */
		m->rec.chrony_period = period;
		if (!usable(m->period_kept) ||
		    (fabs(HND_DfreqPpm(m->period_kept, period)) > HND_PERIOD_RESAVE_PPM &&
		     m->now - m->last_period_write_ns >= (int64_t)HND_PERIOD_RESAVE_S * 1000000000)) {
			m->period_kept = period;
			m->last_period_write_ns = m->now;
			m->dirty = true;
		}
	}
	if (!m->busy && ev->u.page.have_offset) {
		m->have_offset = true;
		m->last_offset_ns = ev->u.page.offset_ns;
	}
	keep_soon(m);
}

/* The next page is another device's: its periods and offsets are unrelated
 * to the old one's, so no dfreq and no step is computed across them.  A
 * handover under way for the old device still owes chronyd that device's
 * frequency change: the new epoch's handover heads for the same period, so
 * that change is delivered once and nothing is added for the device change;
 * with none under way, no period and so no dfreq at all. */
static void source_changed(HND_Machine *m)
{
	if (!m->started)
		return; /* nothing to forget */
	m->source_changed = true;
	m->epoch_period = m->busy ? m->target.new_period : (HND_Period){ .valid = false };
	m->rec.chrony_period.valid = false;
	m->have_offset = false;
}

static void stop(HND_Machine *m)
{
	if (m->dirty || m->unsaved || (!m->busy && m->started &&
				       !same_period(m->period_kept, m->rec.chrony_period)))
		write_record(m);
}

/* The record kept before vmclockd started, for the first page. */
static void loaded(HND_Machine *m, const HND_Record *kept)
{
	if (m->started || !kept->valid)
		return;
	m->kept = *kept;
	/* What cannot be composed from is not known. */
	m->kept.chrony_period.valid = usable(kept->chrony_period);
	m->kept.anchor.valid = kept->anchor.valid && usable(kept->anchor.period) &&
			       isfinite(kept->anchor.freq_ppm);
}

HND_Machine *HND_New(const HND_Timing *timing, bool chronyd)
{
	HND_Machine *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->timing = timing ? *timing : HND_DEFAULT_TIMING;
	m->chronyd = chronyd;
	m->holdoff_ms = m->timing.holdoff_ms;
	m->state = HND_IDLE;
	m->step = HND_STEP_NONE;
	return m;
}

void HND_Free(HND_Machine *m)
{
	free(m);
}

void HND_Handle(HND_Machine *m, const HND_Event *ev, HND_Actions *out)
{
	out->n = 0;
	m->out = out;
	m->now = ev->now_ns;
	switch (ev->type) {
	case HND_EV_START:
		start(m, &ev->u.start);
		break;
	case HND_EV_REPLY:
		if (m->state == HND_REQUEST)
			on_reply(m, &ev->u.reply);
		break;
	case HND_EV_TIMER:
		if (m->state == HND_HOLDOFF || m->state == HND_BACKOFF || m->state == HND_SETTLE)
			timer_expired(m);
		else if (m->state == HND_MEASURE)
			offset_measured(m, HND_OFFSET_RETRY, 0.0, 0);
		break;
	case HND_EV_OFFSET:
		if (m->state == HND_MEASURE)
			offset_measured(m, ev->u.offset.answer, ev->u.offset.offset_s,
					ev->u.offset.skip_reason);
		break;
	case HND_EV_RECORDED:
		recorded(m, ev->u.recorded.result, &ev->u.recorded.record);
		break;
	case HND_EV_CHRONYD:
		chronyd_configured(m, ev->u.chronyd.configured, ev->u.chronyd.changed);
		break;
	case HND_EV_LOADED:
		loaded(m, &ev->u.loaded);
		break;
	case HND_EV_PAGE:
		page(m, ev);
		break;
	case HND_EV_SOURCE_CHANGED:
		source_changed(m);
		break;
	case HND_EV_STOP:
		stop(m);
		break;
	}
	m->out = NULL;
}

bool HND_Busy(const HND_Machine *m)
{
	return m->busy;
}

const HND_Record *HND_GetRecord(const HND_Machine *m)
{
	return &m->rec;
}

bool HND_Unsaved(const HND_Machine *m)
{
	return m->unsaved;
}

bool HND_Withholding(const HND_Machine *m)
{
	return m->busy && !HND_RetryWaiting(m);
}

uint64_t HND_CurrentGeneration(const HND_Machine *m)
{
	return m->busy ? m->target_gen : m->rec.generation;
}

bool HND_RetryWaiting(const HND_Machine *m)
{
	/* No anchor is needed when no dfreq will be composed. */
	return m->busy && m->retry_wait &&
	       (m->anchor_recorded || !period_changes(m) ||
		!believable(HND_DfreqPpm(m->chrony_period, m->target.new_period)));
}
