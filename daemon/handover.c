/* SPDX-License-Identifier: BSD-2-Clause
 *
 * handover.c - the disruption handover to chronyd as a state machine.
 *
 * Steps, each one request: tracking (chronyd's frequency f0 while it is
 * right for the period it was handed over with: the anchor, read before
 * samples can move it), reset sources (no measurement from the old host
 * survives), dfreq (the counter's frequency change from the period chronyd
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
 * will start from its drift file): it gets the reset and the step, no dfreq.  A target without
 * time gets reset sources and an NTP burst.  An offset the page does not vouch
 * for (the callback answers SKIP: its status, timescale or bounds refuse it,
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
 * way: if it landed, the new doffset and step are what is left, nothing.  A dfreq in doubt is verified: tracking is read until two reads
 * in a row agree that chronyd's frequency is the one before it (not applied:
 * send it again) or the one after it (applied).  A frequency that is neither
 * (chronyd learned from samples, restarted without a drift file, or steered
 * on its own) is followed from the anchor as above: whatever it applied,
 * the next dfreq composes from where it is.
 *
 * Across a restart of vmclockd (a crash, SIGKILL, the OOM killer) the same
 * holds through a write-ahead record: before a dfreq is sent, what resolves
 * it (its target marker, the periods it composes from and to, the change,
 * chronyd's frequency before it, read right before it: with from, the
 * anchor a restart resolves it from) is handed to the record callback, which
 * keeps it durably, and the dfreq goes out only if that succeeded.  Once
 * the dfreq is known to be applied (its answer, or the verification) the
 * new period is recorded without it.  A restarted vmclockd hands the record
 * back in its first target: that handover begins with the dfreq in doubt
 * and verifies it as above (before: sent again; after: the new period;
 * neither: followed from the record's anchor).  A record that cannot be written is a dfreq
 * not sent: the step is retried with backoff, and at the last try the
 * handover goes on without it (reset and doffset, as for a refused dfreq),
 * leaving chronyd's frequency to its samples, never doubled; a new target
 * tries to record its dfreq again.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "chrony_client.h"
#include "chrony_proto.h"
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

static struct event_base *ev_base;
static char *cmd_path;
static HND_Timing timing;
static HND_Callbacks cb;
static CCL_Client client;
static struct event *timer_ev;
static HND_State state;
static HND_Step step; /* of the request out */

/* The handover under way. */
static bool busy;
static HND_Target target;
static unsigned gen;      /* bumped by every new target */
static unsigned sent_gen; /* gen of the request out */
static unsigned refused_gen; /* gen whose dfreq was refused (logged) */
static unsigned unrecorded_gen; /* gen whose dfreq could not be recorded */
static HND_Period chrony_period; /* chronyd's frequency is right for this */
/* chronyd's frequency (ppm) when it was right for anchor_period: its first
 * tracking read of the handover, or a recorded dfreq's frequency before it.
 * (1 - f) is proportional to the period f is right for, so this one pair
 * tells the period of any frequency chronyd is seen at (samples fed between
 * rounds move it), and the frequency of any period. */
static bool anchor_known;
static HND_Period anchor_period;
static double anchor_freq;
static bool anchor_recorded; /* by the record callback (or none is set) */
static bool reset_done, doffset_done, burst_done;
/* The makestep confirmed (and what it left checked), or refused (no other
 * one for this target); refining: a step was made, the residual is next. */
static bool step_done, step_refused, refining;
static CPR_Tracking track;
/* track was the last thing read from chronyd: no request and no wait since
 * (chronyd keeps slewing its correction away while we wait). */
static bool track_fresh;
/* chronyd's frequency, ppm, read since samples could last have moved it
 * (the handover began, or it waited between rounds) and since our last
 * dfreq: what the next dfreq composes onto. */
static bool freq_fresh;
static double freq_now;
/* A round of tries failed: waiting in the hold-off to try again (samples
 * flow meanwhile); failing_said: the failure was logged for this handover. */
static bool retry_wait, failing_said;
static bool settle_needed;
static int failures;
static bool delivered; /* a request of this handover reached chronyd */
static bool record_failing; /* the write-ahead failed (said once) */
static bool restart_pending; /* a new target arrived during this handover */
static HND_Report report;
static int64_t start_ns;

/* A dfreq in doubt. */
static bool dfreq_pending;
static HND_Period dfreq_to;
static double dfreq_sent; /* ppm, as chronyd decodes it */
static double f_before, f_after;
static FreqClass last_class;
static int votes, verify_reads;

/* The pending request's own data. */
static HND_Period sending_to;
static double sending_dfreq;

/* Hold-off between handovers. */
static int64_t last_begin_ns;
static bool have_begun;
static int holdoff_ms;

static void next_action(void);
static void record_resolved(void);

static void bump_holdoff(void)
{
	holdoff_ms = holdoff_ms * 2 > timing.max_holdoff_ms ? timing.max_holdoff_ms : holdoff_ms * 2;
}

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
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

const char *HND_StateName(HND_State s)
{
	switch (s) {
	case HND_IDLE:
		return "idle";
	case HND_HOLDOFF:
		return "hold-off";
	case HND_REQUEST:
		return "request";
	case HND_BACKOFF:
		return "backoff";
	case HND_SETTLE:
		return "settle";
	}
	return "?";
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

static void set_state(HND_State s, HND_Step st)
{
	state = s;
	step = st;
	if (cb.state_changed)
		cb.state_changed(s, st, cb.arg);
}

static void arm(HND_State s, int64_t ms)
{
	struct timeval tv = { .tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000 * 1000) };

	set_state(s, HND_STEP_NONE);
	track_fresh = false; /* time passes: chronyd slews on */
	evtimer_add(timer_ev, &tv);
}

static void close_client(void)
{
	CCL_Close(client);
	client = NULL;
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

static FreqClass classify(double f)
{
	double tol = freq_tol(f_before, f_after);
	bool before = fabs(f - f_before) <= tol, after = fabs(f - f_after) <= tol;

	if (after)
		return FREQ_AFTER; /* both: too small to tell, and to matter */
	return before ? FREQ_BEFORE : FREQ_NEITHER;
}

static void complete(bool ok, HND_Step failed, int error, const char *reason)
{
	HND_Report r;

	evtimer_del(timer_ev);
	report.ok = ok;
	report.marker = target.marker;
	report.has_time = target.has_time;
	report.failed_step = ok ? HND_STEP_NONE : failed;
	report.error = ok ? 0 : error;
	report.reason = ok ? "ok" : reason;
	if (dfreq_pending) {
		report.dfreq_unresolved = true;
		chrony_period.valid = false;
	}
	report.chrony_period = chrony_period;
	report.duration_ns = mono_ns() - start_ns;
	if (failing_said)
		LOG(LOGS_INFO, "disruption %" PRIu64 " handed over to chronyd after %d failed "
		    "round%s", target.marker, report.failed_rounds,
		    report.failed_rounds == 1 ? "" : "s");
	r = report;
	busy = false;
	retry_wait = false;
	failing_said = false;
	dfreq_pending = false;
	settle_needed = false;
	set_state(HND_IDLE, HND_STEP_NONE);
	if (cb.done)
		cb.done(&r, cb.arg);
}

/* A round of tries failed: the handover is not done.  It is tried again at
 * the hold-off cadence (doubling to max_holdoff_ms), from the facts it has,
 * until it completes or a newer target replaces it; said once. */
static void round_failed(HND_Step s, int error, const char *reason)
{
	int64_t wait = holdoff_ms;

	report.failed_rounds++;
	if (timing.max_rounds > 0 && report.failed_rounds >= timing.max_rounds) {
		complete(false, s, error, reason);
		return;
	}
	if (!failing_said) {
		char f1[48], f2[48];
		const char *fields[] = { f1, f2, NULL };

		snprintf(f1, sizeof(f1), "DISRUPTION_MARKER=%" PRIu64, target.marker);
		snprintf(f2, sizeof(f2), "FAILED_STEP=%s", HND_StepName(s));
		LOG_Event(LOGS_ERR, LOG_MSGID_HANDOVER_FAILED, fields,
			  "could not hand disruption %" PRIu64 " over to chronyd (%s at %s); "
			  "feeding samples, the disruption stays unhandled and is tried again every "
			  "%d to %d s until chronyd takes it", target.marker, reason, HND_StepName(s),
			  timing.holdoff_ms / 1000, timing.max_holdoff_ms / 1000);
	}
	failing_said = true;
	/* Samples are fed while the round waits: the anchor first, so that a
	 * restart meanwhile tells what chronyd learns from what it had. */
	if (anchor_known && !anchor_recorded)
		record_resolved();
	failures = 0;
	bump_holdoff();
	if (settle_needed && wait < timing.settle_ms)
		wait = timing.settle_ms;
	if (wait < timing.first_backoff_ms)
		wait = timing.first_backoff_ms; /* never a busy loop */
	settle_needed = false;
	retry_wait = true;
	arm(HND_HOLDOFF, wait);
}

/* QUIET: the caller said why. */
static void step_failed_said(HND_Step s, int error, const char *reason, bool quiet)
{
	int64_t backoff;

	failures++;
	report.failures++;
	if (failures >= timing.max_failures) {
		round_failed(s, error, reason);
		return;
	}
	if (!quiet)
		LOG(LOGS_WARN, "chronyd handover: %s failed (%s); retrying", HND_StepName(s), reason);
	backoff = (int64_t)timing.first_backoff_ms << (failures - 1);
	if (settle_needed && backoff < timing.settle_ms)
		backoff = timing.settle_ms;
	settle_needed = false;
	arm(HND_BACKOFF, backoff);
}

static void step_failed(HND_Step s, int error, const char *reason)
{
	step_failed_said(s, error, reason, false);
}

static HND_Anchor anchor_now(void)
{
	return (HND_Anchor){ .valid = anchor_known, .period = anchor_period,
			     .freq_ppm = anchor_freq };
}

/* REC handed to the record callback: 0 or a negative errno value. */
static int record(const HND_Record *rec)
{
	int r = cb.record ? cb.record(rec, cb.arg) : 0;

	if (r == 0 && rec->anchor.valid)
		anchor_recorded = true;
	return r;
}

/* The period chronyd is right for, with no dfreq in doubt, for a restart.
 * A failure leaves the record of the dfreq, which resolves to the same. */
static void record_resolved(void)
{
	HND_Record rec = { .chrony_period = chrony_period, .anchor = anchor_now() };

	(void)record(&rec);
}

/* chronyd's frequency when right for P, by the anchor. */
static double freq_for(HND_Period p)
{
	return apply_dfreq(anchor_freq, HND_DfreqPpm(anchor_period, p));
}

/* The period chronyd's frequency F is right for, by the anchor: P/P_anchor =
 * (1 - F)/(1 - F_anchor), in units of 1e-6 (!valid: not representable). */
static HND_Period period_for(double f)
{
	HND_Period p = anchor_period;
	double delta = (double)p.frac * ((anchor_freq - f) * 1e-6 / (1.0 - anchor_freq * 1e-6));
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
static void follow_freq(double f)
{
	double want, target_f;
	bool learned;

	if (!usable(chrony_period) || !isfinite(f))
		return;
	if (!anchor_known) {
		anchor_known = true;
		anchor_period = chrony_period;
		anchor_freq = f;
		return;
	}
	want = freq_for(chrony_period);
	if (fabs(f - want) <= freq_tol(anchor_freq, want))
		return;
	target_f = usable(target.new_period) ? freq_for(target.new_period) : NAN;
	learned = fabs(f - target_f) <= freq_tol(anchor_freq, target_f);
	LOG(LOGS_INFO, "chronyd's frequency moved to %+.6f ppm from %+.6f ppm without a dfreq "
	    "(samples, its own sources): %s", f, want,
	    learned ? "it is right for the new counter period already"
		    : "the frequency change composes from it");
	chrony_period = learned ? target.new_period : period_for(f);
	record_resolved();
}

/* What chronyd may have applied of a request that got no answer. */
static void in_doubt(HND_Step s)
{
	settle_needed = true;
	if (s == HND_STEP_DFREQ) {
		dfreq_pending = true;
		dfreq_to = sending_to;
		dfreq_sent = sending_dfreq;
		votes = 0;
		verify_reads = 0;
	} else if (s == HND_STEP_DOFFSET || s == HND_STEP_MAKESTEP) {
		/* Redone: the tracking read before the new doffset sees
		 * whatever it did. */
		reset_done = false;
		doffset_done = false;
		step_done = false;
		refining = false;
	}
}

/* chronyd applied dfreq D (ppm), which made it right for TO. */
static void applied_dfreq(HND_Period to, double d)
{
	chrony_period = to;
	freq_fresh = false; /* moved by it: read again before another */
	report.dfreqs++;
	/* Composed as chronyd applies them: (1 - D) = (1 - D')(1 - d). */
	report.dfreq_ppm = apply_dfreq(report.dfreq_ppm, d);
	record_resolved();
}

static void resolve_verify(const CPR_Tracking *t)
{
	FreqClass c = classify(t->freq_ppm);

	if (++verify_reads >= VERIFY_MAX_READS && (votes == 0 || c != last_class)) {
		c = FREQ_NEITHER;
		votes = VERIFY_VOTES;
	} else if (votes == 0 || c != last_class) {
		last_class = c;
		votes = 1;
	} else {
		votes++;
	}
	if (votes < VERIFY_VOTES)
		return;

	dfreq_pending = false;
	switch (c) {
	case FREQ_AFTER:
		LOG(LOGS_INFO, "chronyd had applied the dfreq whose answer was lost (frequency "
		    "%+.6f -> %+.6f ppm)", f_before, t->freq_ppm);
		applied_dfreq(dfreq_to, dfreq_sent);
		break;
	case FREQ_BEFORE:
		LOG(LOGS_INFO, "chronyd had not applied the dfreq whose answer was lost (frequency "
		    "still %+.6f ppm): sending it again", t->freq_ppm);
		break;
	case FREQ_NEITHER:
		/* chronyd moved on its own meanwhile (samples fed between
		 * rounds, a restart of it without its drift file): whatever
		 * it applied, its frequency now is what the next dfreq
		 * composes from (a dfreq was sent after a tracking read, or
		 * came from a record: the anchor is known). */
		LOG(LOGS_WARN, "chronyd's frequency went from %+.6f to %+.6f ppm, not %+.6f: "
		    "whether it applied the dfreq of %+.6f ppm whose answer was lost does not "
		    "matter, the frequency change composes from where it is", f_before,
		    t->freq_ppm, f_after, dfreq_sent);
		follow_freq(t->freq_ppm);
		break;
	}
	/* As good as the tracking step's. */
	track = *t;
	track_fresh = true;
	freq_now = t->freq_ppm;
	freq_fresh = true;
}

/* chronyd could not step: it slews, from a doffset made again against what
 * it kept of its correction. */
static void step_refused_by_chronyd(bool current)
{
	if (current) {
		if (!report.step_refused)
			LOG(LOGS_WARN, "chronyd did not step its clock (makestep failed: started "
			    "with -x, or the step was refused); disruption %" PRIu64 "'s step of "
			    "%+.9f s is slewed", target.marker, track.current_correction);
		step_refused = true;
		report.step_refused = true;
		refining = false;
		track_fresh = false;
		doffset_done = false;
	}
	next_action();
}

static void on_reply(const CCL_Result *r, void *arg)
{
	HND_Step s = step;
	bool current = sent_gen == gen;

	report.datagrams += r->attempts;
	if (r->outcome == CCL_DONE)
		report.rtt_ns[s] = r->rtt_ns;
	if (r->attempts > 0)
		delivered = true; /* chronyd is there (restarts are retried) */

	switch (r->outcome) {
	case CCL_DONE:
		switch (s) {
		case HND_STEP_RESET:
			if (current) {
				reset_done = true;
				report.resets++;
			}
			break;
		case HND_STEP_TRACKING:
			track = r->reply.tracking;
			track_fresh = true;
			freq_now = track.freq_ppm;
			freq_fresh = true;
			follow_freq(freq_now);
			break;
		case HND_STEP_VERIFY:
			resolve_verify(&r->reply.tracking);
			break;
		case HND_STEP_DFREQ:
			applied_dfreq(sending_to, sending_dfreq);
			break;
		case HND_STEP_DOFFSET:
			if (current)
				doffset_done = true;
			break;
		case HND_STEP_BURST:
			if (current)
				burst_done = true;
			break;
		case HND_STEP_MAKESTEP:
			if (current) {
				report.steps++;
				report.step += track.current_correction;
				/* What the kernel had not applied of chronyd's
				 * slew since the doffset is lost in the step:
				 * measured again, and stepped if it matters. */
				refining = report.steps < HND_MAX_STEPS;
				step_done = !refining;
				doffset_done = !refining;
			}
			break;
		case HND_STEP_NONE:
		case HND_STEP_COUNT:
			break;
		}
		next_action();
		return;
	case CCL_FAILED:
		/* Without NTP sources chronyd refuses a burst: nothing to retry. */
		if (s == HND_STEP_BURST) {
			burst_done = true;
			next_action();
			return;
		}
		if (s == HND_STEP_MAKESTEP && r->status == CPR_STT_FAILED) {
			step_refused_by_chronyd(current);
			return;
		}
		close_client(); /* a fresh socket next time (chronyd's directory
				   may have been recreated) */
		if ((r->error == ENOENT || r->error == ECONNREFUSED) && !delivered && !dfreq_pending) {
			/* A chronyd that starts later takes its frequency from
			 * its drift file, which may or may not hold a dfreq of
			 * ours: the period it is right for is not known, and
			 * it gets the reset and the step, no dfreq. */
			if (!report.chronyd_absent)
				LOG(LOGS_WARN, "chronyd not reachable at %s (%s): the disruption is "
				    "handed over when it is, without a frequency change",
				    cmd_path, strerror(r->error));
			report.chronyd_absent = true;
			if (chrony_period.valid) {
				chrony_period.valid = false;
				record_resolved();
			}
			round_failed(s, r->error, r->reason);
			return;
		}
		step_failed(s, r->error, r->reason);
		return;
	case CCL_UNKNOWN:
		close_client();
		in_doubt(s);
		step_failed(s, r->error, r->reason);
		return;
	}
}

static void send_step(HND_Step s)
{
	CPR_Packet p;
	double o;
	int r;

	switch (s) {
	case HND_STEP_RESET:
		CPR_MakeResetSources(&p);
		break;
	case HND_STEP_TRACKING:
	case HND_STEP_VERIFY:
		CPR_MakeTracking(&p);
		break;
	case HND_STEP_DFREQ:
		sending_to = target.new_period;
		sending_dfreq = HND_DfreqPpm(chrony_period, sending_to);
		CPR_MakeDfreq(&p, sending_dfreq);
		/* What chronyd will decode, to know its frequency afterwards. */
		sending_dfreq = CPR_FloatDecode(CPR_FloatEncode(sending_dfreq));
		f_before = freq_now;
		f_after = apply_dfreq(f_before, sending_dfreq);
		if (cb.record) {
			HND_Record rec = {
				.chrony_period = chrony_period,
				.anchor = anchor_now(),
				.in_doubt = { .valid = true, .marker = target.marker,
					      .from = chrony_period, .to = sending_to,
					      .dfreq_ppm = sending_dfreq,
					      .freq_before_ppm = f_before },
			};

			r = record(&rec);
			if (r < 0 && failures + 1 >= timing.max_failures) {
				/* The dfreq is given up, not the handover:
				 * chronyd is reset and stepped, its samples
				 * steer its frequency. */
				LOG(LOGS_ERR, "not handing chronyd the dfreq of %+.6f ppm for "
				    "disruption %" PRIu64 ": it could not be recorded first (%s); "
				    "resetting chronyd without a frequency change", sending_dfreq,
				    target.marker, strerror(-r));
				report.dfreq_unrecorded = true;
				unrecorded_gen = gen;
				record_failing = false;
				failures = 0;
				next_action();
				return;
			}
			if (r < 0) {
				if (!record_failing)
					LOG(LOGS_WARN, "not sending chronyd the dfreq of %+.6f ppm: it "
					    "could not be recorded first (%s), and a restart would not "
					    "know whether chronyd applied it; retrying",
					    sending_dfreq, strerror(-r));
				record_failing = true;
				step_failed_said(s, -r, "the dfreq could not be recorded first",
						 true);
				return;
			}
			if (record_failing)
				LOG(LOGS_INFO, "the dfreq is recorded: sending it");
			record_failing = false;
		}
		break;
	case HND_STEP_DOFFSET:
		/* The offset is read as late as possible: right before sending. */
		switch (cb.offset ? cb.offset(target.marker, &o, cb.arg) : HND_OFFSET_RETRY) {
		case HND_OFFSET_OK:
			if (isfinite(o))
				break;
			/* fall through */
		case HND_OFFSET_RETRY:
		default:
			step_failed(s, ENODATA, "no offset sample for doffset");
			return;
		case HND_OFFSET_SKIP:
			/* Nothing sent: nothing to count or to doubt.  After
			 * a step, the step stands. */
			report.doffset_skipped = !refining;
			doffset_done = true;
			step_done = refining;
			refining = false;
			next_action();
			return;
		}
		if (refining) {
			/* What the step left: sent only when it matters. */
			report.residual = o - track.current_correction;
			if (fabs(report.residual) <= HND_MIN_STEP_S) {
				refining = false;
				doffset_done = true;
				step_done = true;
				next_action();
				return;
			}
			CPR_MakeDoffset(&p, -report.residual);
			break;
		}
		report.have_offset = true;
		report.doffset_skipped = false;
		report.offset = o;
		report.correction = track.current_correction;
		report.doffset = -(o - track.current_correction);
		CPR_MakeDoffset(&p, report.doffset);
		break;
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

	sent_gen = gen;
	track_fresh = false;
	set_state(HND_REQUEST, s);
	r = CCL_Start(client, &p, timing.timeout_ms, timing.tries, on_reply, NULL);
	if (r < 0)
		step_failed(s, -r, strerror(-r));
}

/* A change of period chronyd's frequency needs (not yet believable). */
static bool period_changes(void)
{
	return target.has_time && usable(chrony_period) && usable(target.new_period) &&
	       !same_period(chrony_period, target.new_period);
}

static bool believable(double d)
{
	return fabs(d) <= HND_MAX_DFREQ_PPM;
}

static bool want_dfreq(void)
{
	double d;

	if (!period_changes())
		return false;
	if (report.dfreq_unrecorded && unrecorded_gen == gen)
		return false;
	d = HND_DfreqPpm(chrony_period, target.new_period);
	if (believable(d))
		return true;
	/* chronyd's frequency stays right for chrony_period. */
	if (refused_gen != gen || !report.dfreq_refused) {
		refused_gen = gen;
		report.dfreq_refused = true;
		LOG(LOGS_ERR, "not handing chronyd a counter frequency change of %+.6f ppm for "
		    "disruption %" PRIu64 ": larger than %.0f ppm, the page is not believable; "
		    "resetting chronyd without a frequency change", d, target.marker,
		    HND_MAX_DFREQ_PPM);
	}
	return false;
}

/* The doffset is in chronyd and the target wants the clock stepped. */
static bool want_step(void)
{
	return target.has_time && target.step && doffset_done && !report.doffset_skipped &&
	       !step_done && !step_refused;
}

static void next_action(void)
{
	int r;

	if (!busy) {
		set_state(HND_IDLE, HND_STEP_NONE);
		return;
	}
	if (settle_needed) {
		settle_needed = false;
		arm(HND_SETTLE, timing.settle_ms);
		return;
	}
	if (restart_pending) {
		/* Flapping markers: the hold-off applies to a restart too. */
		int64_t since = (mono_ns() - last_begin_ns) / 1000000;

		restart_pending = false;
		if (since < holdoff_ms) {
			arm(HND_HOLDOFF, holdoff_ms - since);
			bump_holdoff();
			return;
		}
		last_begin_ns = mono_ns();
	}
	if (!cmd_path) {
		report.chronyd_absent = true;
		chrony_period.valid = false;
		complete(true, HND_STEP_NONE, 0, NULL);
		return;
	}
	if (!client) {
		r = CCL_Open(cmd_path, ev_base, &client);
		if (r < 0) {
			step_failed(HND_STEP_RESET, -r, strerror(-r));
			return;
		}
	}

	if (!reset_done && !dfreq_pending && !freq_fresh && want_dfreq())
		/* chronyd's frequency before anything else: the anchor, read
		 * before samples can move it (a failed round feeds them). */
		send_step(HND_STEP_TRACKING);
	else if (!reset_done)
		send_step(HND_STEP_RESET);
	else if (dfreq_pending)
		send_step(HND_STEP_VERIFY);
	else if (want_dfreq())
		/* The dfreq composes onto chronyd's frequency as it is: read
		 * again after a wait in which samples were fed. */
		send_step(freq_fresh ? HND_STEP_DFREQ : HND_STEP_TRACKING);
	else if (target.has_time && !doffset_done)
		/* c read again right before the doffset: since the last read
		 * a request went out or time passed, and chronyd slewed. */
		send_step(track_fresh ? HND_STEP_DOFFSET : HND_STEP_TRACKING);
	else if (want_step() && !track_fresh)
		/* What chronyd has not applied yet, read right before the
		 * step: it steps by that. */
		send_step(HND_STEP_TRACKING);
	else if (want_step() && fabs(track.current_correction) > HND_MIN_STEP_S)
		send_step(HND_STEP_MAKESTEP);
	else if (!target.has_time && !burst_done)
		send_step(HND_STEP_BURST);
	else
		complete(true, HND_STEP_NONE, 0, NULL);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	if (state == HND_HOLDOFF) {
		/* Samples were fed while the round waited: chronyd may have
		 * learned from them. */
		if (retry_wait)
			freq_fresh = false;
		retry_wait = false;
		/* Targets that arrived while waiting are simply the newest. */
		last_begin_ns = mono_ns();
		have_begun = true;
		restart_pending = false;
	}
	next_action();
}

void HND_Start(const HND_Target *t)
{
	int64_t now = mono_ns(), since;

	if (!busy) {
		busy = true;
		memset(&report, 0, sizeof(report));
		chrony_period = t->old_period;
		/* Recorded before vmclockd restarted: chronyd may have learned
		 * from samples since, its first reading would not tell. */
		anchor_known = t->anchor.valid && usable(t->anchor.period) &&
			       isfinite(t->anchor.freq_ppm);
		anchor_period = t->anchor.period;
		anchor_freq = t->anchor.freq_ppm;
		anchor_recorded = anchor_known;
		freq_fresh = false;
		failures = 0;
		delivered = false;
		dfreq_pending = false;
		settle_needed = false;
		restart_pending = false;
		start_ns = now;
		if (t->in_doubt.valid && usable(t->in_doubt.from) && usable(t->in_doubt.to) &&
		    isfinite(t->in_doubt.dfreq_ppm) && isfinite(t->in_doubt.freq_before_ppm)) {
			/* Sent before a restart: resolved before anything else,
			 * once whatever was still on its way has landed. */
			const HND_Dfreq *d = &t->in_doubt;

			LOG(LOGS_INFO, "a dfreq of %+.6f ppm for disruption %" PRIu64 " was sent before "
			    "vmclockd restarted: reading chronyd's frequency (%+.6f ppm before it) "
			    "to tell whether it was applied", d->dfreq_ppm, d->marker,
			    d->freq_before_ppm);
			chrony_period = d->from;
			/* Recorded right before it was sent: chronyd was right
			 * for from at freq_before (an anchor of its own). */
			if (!anchor_known) {
				anchor_known = true;
				anchor_period = d->from;
				anchor_freq = d->freq_before_ppm;
				anchor_recorded = true;
			}
			dfreq_pending = true;
			dfreq_to = d->to;
			dfreq_sent = d->dfreq_ppm;
			f_before = d->freq_before_ppm;
			f_after = apply_dfreq(f_before, dfreq_sent);
			votes = 0;
			verify_reads = 0;
			settle_needed = true;
		}
	} else {
		restart_pending = true;
	}
	target = *t;
	gen++;
	reset_done = false;
	doffset_done = false;
	burst_done = false;
	step_done = false;
	step_refused = false;
	refining = false;
	report.have_offset = false;
	report.doffset_skipped = false;
	report.steps = 0;
	report.step = 0.0;
	report.residual = 0.0;
	report.step_refused = false;

	if (state != HND_IDLE)
		return; /* the request out, or the timer, leads to the next step */

	/* Rate limit: a handover that begins within the hold-off of the last
	 * one waits for it, and the hold-off doubles while markers flap. */
	since = have_begun ? (now - last_begin_ns) / 1000000 : INT64_MAX;
	if (since < holdoff_ms) {
		arm(HND_HOLDOFF, holdoff_ms - since);
		bump_holdoff();
		return;
	}
	if (since > timing.max_holdoff_ms)
		holdoff_ms = timing.holdoff_ms;
	/* From the loop, so that done() never runs inside HND_Start. */
	arm(HND_HOLDOFF, 0);
}

int HND_Reconfigure(const char *chrony_cmd)
{
	char *fresh = NULL;

	if (chrony_cmd && *chrony_cmd && !(fresh = strdup(chrony_cmd)))
		return -ENOMEM;
	if ((!fresh && !cmd_path) || (fresh && cmd_path && !strcmp(fresh, cmd_path))) {
		free(fresh);
		return 0; /* same socket: whatever is in flight stays valid */
	}
	free(cmd_path);
	cmd_path = fresh;
	if (state == HND_REQUEST) {
		/* Cancelled in flight: chronyd may have it. */
		in_doubt(step);
		close_client();
		arm(HND_SETTLE, timing.settle_ms);
		settle_needed = false;
		return 0;
	}
	close_client();
	return 0;
}

int HND_Initialise(struct event_base *base, const char *chrony_cmd, const HND_Timing *t,
		   const HND_Callbacks *callbacks)
{
	ev_base = base;
	timing = t ? *t : HND_DEFAULT_TIMING;
	cb = *callbacks;
	holdoff_ms = timing.holdoff_ms;
	have_begun = false;
	busy = false;
	record_failing = false;
	retry_wait = false;
	failing_said = false;
	state = HND_IDLE;
	step = HND_STEP_NONE;
	cmd_path = NULL;
	client = NULL;
	if (chrony_cmd && *chrony_cmd && !(cmd_path = strdup(chrony_cmd)))
		return -ENOMEM;
	timer_ev = evtimer_new(base, timer_cb, NULL);
	if (!timer_ev) {
		free(cmd_path);
		cmd_path = NULL;
		return -ENOMEM;
	}
	return 0;
}

void HND_Finalise(void)
{
	if (timer_ev)
		event_free(timer_ev);
	timer_ev = NULL;
	close_client();
	free(cmd_path);
	cmd_path = NULL;
	busy = false;
	state = HND_IDLE;
}

HND_State HND_GetState(void)
{
	return state;
}

bool HND_Busy(void)
{
	return busy;
}

bool HND_RetryWaiting(void)
{
	/* No anchor is needed when no dfreq will be composed. */
	return busy && retry_wait &&
	       (anchor_recorded || !period_changes() ||
		!believable(HND_DfreqPpm(chrony_period, target.new_period)));
}
