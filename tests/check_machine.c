/* SPDX-License-Identifier: BSD-2-Clause
 *
 * check_machine.c - the handover's pure state machine (daemon/handover.c),
 * driven directly: no socket, no timer, no sleep.  Time is virtual; chronyd
 * is a model; every sequence of events up to DEPTH is tried.
 *
 * The harness takes the machine's actions as hnd_driver.c does (a
 * measurement or a record answered at once, before the event's other
 * actions; chronyd's answer and the timer afterwards), shows it a page at
 * every wait (a tick), and plays, at each request, the next symbol of the
 * script:
 *
 *   OK       chronyd applies it and answers
 *   REFUSE   chronyd answers "failed" without applying it
 *   LOST     chronyd applies it, the answer never comes (unknown)
 *   DROP     it never reaches chronyd (unknown)
 *   LATE     unknown now, applied LATE_MS later (a datagram still on its
 *            way: less than the settling delay, more than a backoff)
 *   RESTART  chronyd restarts as it arrives: not applied, unknown, the
 *            correction it was slewing gone (the frequency survives)
 * and, before a request or at a wait, the events:
 *   RELOAD   SIGHUP naming another command socket: the client is closed
 *            with the request in flight, which chronyd applies unanswered
 *   MARKER   a new disruption (the next period and offset)
 *   CRASH    vmclockd dies and starts again: a new machine from the record
 *            (the last write that succeeded) and the page; what the dead
 *            one sent still lands
 *   LEARN    chronyd learns from samples: halfway to the frequency right
 *            for the newest period, once samples are fed (HND_RetryWaiting)
 *   FULL     the next two writes of the record fail (ENOSPC): a dfreq's
 *            write-ahead, the handled marker (retried at the next page a
 *            second later)
 *   NOPAGE   the next offset wanted finds no page to read (the tick fails):
 *            the machine's timer gives up on it
 *
 * Checked after every sequence, once everything has landed (the invariants):
 * - the machine is idle and reported the newest marker handed over, within
 *   a bound of steps (no state is stuck);
 * - each migration's frequency change reached chronyd exactly once,
 *   composed onto what it had: (1 - f) = (1 - f0) P_newest / P_0, and
 *   without LEARN the product of the (1 - dfreq) it applied is P_newest / P_0;
 * - the migration's time change reached it exactly once: its clock plus the
 *   correction it has yet to slew is the newest offset (unless chronyd
 *   restarted after the last doffset), stepped when it could be;
 * - the record never claims more than chronyd has: no dfreq reached chronyd
 *   without its write-ahead on the disk, and the disk ends with the newest
 *   period and nothing in doubt.
 *
 * Suites: "depth" runs every sequence of DEPTH symbols (12^5), and of DEPTH
 * - 1 after 1 to SKIP_MAX good requests (so that faults land on every
 * request of a handover, the makestep's too); "rounds" those of DEPTH - 1
 * after 0 to SKIP_MAX with rounds of two tries, so that rounds fail, samples
 * are fed and LEARN acts; "residual" those of DEPTH - 1 after 5 to 8 good
 * requests against a kernel that loses a hundredth of each step.
 * CHECK_MACHINE_DEPTH=N (2 to 5) runs shallower; CHECK_MACHINE_SCRIPT="OK
 * LOST ..." runs one sequence, verbosely (CHECK_MACHINE_ROUNDS=1,
 * CHECK_MACHINE_LOSS=1: with rounds of two tries, a lossy step).
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "../daemon/handover.h"
#include "../daemon/log.h"
#include "checkrun.h"

enum {
	OK, REFUSE, LOST, DROP, LATE, RESTART, RELOAD, MARKER, CRASH, LEARN, FULL, NOPAGE, N_SYMBOLS
};
static const char *const names[N_SYMBOLS] = {
	"OK",     "REFUSE", "LOST",  "DROP",  "LATE", "RESTART",
	"RELOAD", "MARKER", "CRASH", "LEARN", "FULL", "NOPAGE",
};
#define FIRST_EVENT RELOAD

#define DEPTH 5
#define SKIP_MAX 8
#define MAX_SCRIPT (SKIP_MAX + DEPTH)
#define MAX_MARKERS 8
#define MAX_STEPS 4000
#define F0_PPM 12.5
#define LATE_MS 30

static const HND_Timing timing = {
	.timeout_ms = 4, .tries = 3, .max_failures = 2 * MAX_SCRIPT + 2, .first_backoff_ms = 2,
	.settle_ms = 40, .holdoff_ms = 10, .max_holdoff_ms = 80,
};

typedef struct {
	const int *script;
	int len, pos;
	HND_Machine *m;
	int64_t now;
	bool armed;
	int64_t deadline;
	bool reply_due;
	CCL_Result reply;

	/* chronyd */
	double freq, correction, moved, product;
	double step_loss; /* the part of each makestep the clock does not move */
	bool restart_after_doffset;
	int dfreqs, steps, big_steps, step_refusals;
	CPR_Packet late[4];
	int64_t late_at[4];
	int n_late;
	int learn_pending, learned;

	/* the disruptions played */
	int markers;
	HND_Period period[MAX_MARKERS + 1];
	double offset[MAX_MARKERS + 1];

	/* the disk: the last record kept */
	HND_Record disk;
	int disk_full;
	int dfreqs_unrecorded;
	bool nopage;

	int done_calls, steps_taken;
	bool gave_up; /* a handover went on without its dfreq (unrecorded) */
	bool claim_pending; /* a record was kept: checked after its event */
	int depth;          /* of handle(): results are handled within */
	HND_Report last;
	char trace[1024];
	bool verbose;
} World;

static World W;

static void trace(const char *s)
{
	size_t used = strlen(W.trace);

	snprintf(W.trace + used, sizeof(W.trace) - used, "%s ", s);
	if (W.verbose)
		fprintf(stderr, "%s ", s);
}

static HND_Period scaled(HND_Period p, double ppm)
{
	p.frac = (uint64_t)((double)p.frac * (1.0 + ppm * 1e-6));
	return p;
}

static double ratio(void)
{
	HND_Period n = W.period[W.markers];

	return ldexp((double)n.frac, W.period[0].shift - n.shift) / (double)W.period[0].frac;
}

/* chronyd's frequency when right for period P. */
static double freq_for(HND_Period p)
{
	return 1e6 - (1e6 - F0_PPM) * ldexp((double)p.frac, W.period[0].shift - p.shift) /
			     (double)W.period[0].frac;
}

/* chronyd's frequency when right for the newest period. */
static double true_freq(void)
{
	return freq_for(W.period[W.markers]);
}

static uint16_t command_of(const CPR_Packet *p)
{
	return (uint16_t)(p->data[4] << 8 | p->data[5]);
}

static double value_of(const CPR_Packet *p)
{
	const uint8_t *d = p->data + 20;

	return CPR_FloatDecode((uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 |
			       d[3]);
}

/* chronyd applies P; false if it refuses it (a makestep it cannot make). */
static bool apply(const CPR_Packet *p)
{
	double v = value_of(p);

	switch (command_of(p)) {
	case CPR_REQ_DFREQ:
		if (!W.disk.in_doubt.valid || W.disk.in_doubt.dfreq_ppm != v)
			W.dfreqs_unrecorded++;
		W.freq += v * (1.0 - W.freq * 1e-6);
		W.product *= 1.0 - v * 1e-6;
		W.dfreqs++;
		break;
	case CPR_REQ_DOFFSET2:
		W.correction -= v;
		W.restart_after_doffset = false;
		break;
	case CPR_REQ_MAKESTEP:
		W.steps++;
		W.big_steps += fabs(W.correction) > HND_MIN_STEP_S;
		W.moved += W.correction * (1.0 - W.step_loss);
		W.correction = 0.0;
		break;
	case CPR_REQ_BURST:
		return false;
	default:
		break;
	}
	return true;
}

static void handle(const HND_Event *ev);

static void event_now(HND_EventType type)
{
	HND_Event ev = { .type = type };

	handle(&ev);
}

/* A tick: the page as it is now. */
static void show_page(void)
{
	HND_Event ev = { .type = HND_EV_PAGE };

	ev.u.page.marker = (uint64_t)W.markers;
	ev.u.page.period = W.period[W.markers];
	ev.u.page.have_offset = true;
	ev.u.page.offset_ns = llround((W.offset[W.markers] - W.moved) * 1e9);
	ev.u.page.step = true;
	handle(&ev);
}

static void new_marker(void)
{
	if (W.markers >= MAX_MARKERS)
		return;
	W.markers++;
	show_page();
}

static void crash(void)
{
	HND_Event ev = { .type = HND_EV_LOADED, .u.loaded = W.disk };

	HND_Free(W.m);
	W.m = HND_New(&timing, true);
	ck_assert_ptr_nonnull(W.m);
	W.armed = false;
	W.reply_due = false; /* its answer finds nobody */
	handle(&ev);
	show_page();
}

static void learn(void)
{
	for (; W.learn_pending > 0 && HND_RetryWaiting(W.m); W.learn_pending--) {
		W.learned++;
		W.freq = true_freq() + (W.freq - true_freq()) * 0.5;
	}
}

/* The events at the head of the script; IN_FLIGHT: a request is out. */
static void fire_events(const CPR_Packet *in_flight)
{
	while (W.pos < W.len && W.script[W.pos] >= FIRST_EVENT) {
		int e = W.script[W.pos++];
		HND_Event ev = { .type = HND_EV_CHRONYD };

		trace(names[e]);
		switch (e) {
		case RELOAD:
			if (in_flight && W.reply_due) {
				/* Closed under it: chronyd has it, nobody hears. */
				(void)apply(in_flight);
				W.reply_due = false;
			}
			ev.u.chronyd.configured = true;
			ev.u.chronyd.changed = true;
			handle(&ev);
			break;
		case MARKER:
			new_marker();
			break;
		case CRASH:
			if (in_flight && W.reply_due)
				(void)apply(in_flight); /* it lands */
			crash();
			break;
		case LEARN:
			W.learn_pending++;
			learn();
			break;
		case FULL:
			W.disk_full = 2;
			break;
		case NOPAGE:
			W.nopage = true;
			break;
		}
	}
}

static void answer(const CPR_Packet *p, int fault)
{
	CCL_Result *r = &W.reply;

	memset(r, 0, sizeof(*r));
	r->command = command_of(p);
	r->attempts = 1;
	r->status = -1;
	switch (fault) {
	case OK:
		if (!apply(p)) {
			r->outcome = CCL_FAILED;
			r->status = CPR_STT_NOSUCHSOURCE;
			r->error = EINVAL;
			break;
		}
		r->outcome = CCL_DONE;
		r->reply.tracking.current_correction = W.correction;
		r->reply.tracking.freq_ppm = CPR_FloatDecode(CPR_FloatEncode(W.freq));
		break;
	case REFUSE:
		W.step_refusals += command_of(p) == CPR_REQ_MAKESTEP;
		r->outcome = CCL_FAILED;
		r->status = CPR_STT_FAILED;
		r->error = EPERM;
		break;
	case LOST:
		(void)apply(p);
		/* fall through */
	case DROP:
		r->outcome = CCL_UNKNOWN;
		r->error = ETIMEDOUT;
		break;
	case LATE:
		ck_assert_int_lt(W.n_late, 4);
		W.late_at[W.n_late] = W.now + LATE_MS * 1000000;
		W.late[W.n_late++] = *p;
		r->outcome = CCL_UNKNOWN;
		r->error = ETIMEDOUT;
		break;
	case RESTART:
		W.correction = 0.0;
		W.restart_after_doffset = true;
		r->outcome = CCL_UNKNOWN;
		r->error = ECONNREFUSED;
		break;
	}
	r->reason = "test";
	W.reply_due = true;
}

/* A record with nothing in doubt claims chronyd's frequency is right for
 * its period: it must be (unless chronyd learned on its own, or a dfreq
 * was given up, which the record may not know yet). */
static void check_claim(const HND_Record *rec)
{
	if (rec->in_doubt.valid || !rec->chrony_period.valid || W.learned || W.n_late || W.gave_up)
		return;
	ck_assert_msg(fabs(W.freq - freq_for(rec->chrony_period)) <= 1e-7 * (W.dfreqs + 1) * 60.0,
		      "%s: recorded a period chronyd's frequency %.9f ppm is not right for (%.9f)",
		      W.trace, W.freq, freq_for(rec->chrony_period));
}

static void take(const HND_Action *a)
{
	HND_Event ev = { 0 };
	int fault = OK;

	switch (a->type) {
	case HND_ACT_SEND:
		W.reply_due = true; /* in flight, for the events */
		fire_events(&a->u.send.request);
		if (!W.reply_due)
			return; /* closed under it, or vmclockd died */
		if (W.pos < W.len)
			fault = W.script[W.pos++];
		trace(names[fault]);
		trace(HND_StepName(a->u.send.step));
		answer(&a->u.send.request, fault);
		break;
	case HND_ACT_CLOSE:
		W.reply_due = false;
		break;
	case HND_ACT_ARM:
		W.armed = true;
		W.deadline = W.now + a->u.arm.ms * 1000000;
		break;
	case HND_ACT_DISARM:
		W.armed = false;
		break;
	case HND_ACT_MEASURE:
		if (W.nopage) {
			W.nopage = false;
			break; /* no tick reads a page: the timer expires */
		}
		ev.type = HND_EV_OFFSET;
		if (a->u.measure_marker != (uint64_t)W.markers) {
			ev.u.offset.answer = HND_OFFSET_SKIP;
		} else {
			ev.u.offset.answer = HND_OFFSET_OK;
			ev.u.offset.offset_s = W.offset[W.markers] - W.moved;
		}
		handle(&ev);
		break;
	case HND_ACT_RECORD:
		ev.type = HND_EV_RECORDED;
		ev.u.recorded.record = a->u.record;
		if (W.disk_full > 0) {
			W.disk_full--;
			ev.u.recorded.result = -ENOSPC;
		} else {
			W.disk = a->u.record;
			W.claim_pending = true;
		}
		handle(&ev);
		break;
	case HND_ACT_DONE:
		W.done_calls++;
		W.last = a->u.done;
		W.gave_up |= a->u.done.dfreq_unrecorded;
		break;
	case HND_ACT_DISRUPTION:
	case HND_ACT_RESTORE:
		break;
	}
}

static void handle(const HND_Event *ev)
{
	HND_Actions acts;
	HND_Event e = *ev;
	HND_Machine *m = W.m;

	e.now_ns = W.now;
	W.steps_taken++;
	HND_Handle(m, &e, &acts);
	W.depth++;
	for (int i = 0; i < acts.n && W.m == m; i++)
		take(&acts.a[i]);
	W.depth--;
	/* Once the whole event is taken (its done too). */
	if (W.claim_pending && W.depth == 0) {
		W.claim_pending = false;
		check_claim(&W.disk);
	}
}

/* Time passes to T: what was on its way by then lands. */
static void time_passes(int64_t t)
{
	int kept = 0;

	W.now = t > W.now ? t : W.now;
	for (int i = 0; i < W.n_late; i++) {
		if (W.late_at[i] <= W.now) {
			(void)apply(&W.late[i]);
		} else {
			W.late[kept] = W.late[i];
			W.late_at[kept++] = W.late_at[i];
		}
	}
	W.n_late = kept;
}

/* A wait ends at the deadline: chronyd slewed half its correction, samples
 * may be fed, the marker's save is retried. */
static void wait_ends(void)
{
	time_passes(W.deadline);
	W.armed = false;
	W.moved += W.correction * 0.5;
	W.correction *= 0.5;
	fire_events(NULL);
	learn();
	show_page();
}

static void run(const int *script, int len, int max_failures, double step_loss)
{
	static const double change_ppm[MAX_MARKERS] = { 30.0, -17.25, 4.5, -60.0,
							 11.0, -3.0, 25.0, -8.0 };
	HND_Timing t = timing;

	memset(&W, 0, sizeof(W));
	W.verbose = getenv("CHECK_MACHINE_SCRIPT") != NULL;
	W.script = script;
	W.len = len;
	W.step_loss = step_loss;
	W.now = 1000000000;
	W.freq = F0_PPM;
	W.correction = 0.0123;
	W.product = 1.0;
	W.period[0] = (HND_Period){ true, UINT64_C(0x4000000000000000), 2 };
	for (int i = 1; i <= MAX_MARKERS; i++) {
		W.period[i] = scaled(W.period[i - 1], change_ppm[i - 1]);
		W.offset[i] = 0.001 * i * (i & 1 ? 1 : -1);
	}
	if (max_failures)
		t.max_failures = max_failures;
	W.m = HND_New(&t, true);
	ck_assert_ptr_nonnull(W.m);
	show_page(); /* the first: marker 0 adopted */
	new_marker();
	while (W.steps_taken < MAX_STEPS) {
		if (W.reply_due) {
			HND_Event ev = { .type = HND_EV_REPLY, .u.reply = W.reply };

			W.reply_due = false;
			time_passes(W.now + 1000000);
			handle(&ev);
		} else if (W.armed) {
			wait_ends();
			if (W.armed) /* a crash at the wait armed anew */
				continue;
			event_now(HND_EV_TIMER);
		} else if (W.pos < W.len || W.n_late > 0 || HND_Unsaved(W.m)) {
			/* Idle: what is left of the script happens now. */
			while (W.pos < W.len && W.script[W.pos] < FIRST_EVENT)
				W.pos++; /* faults that found no request */
			W.deadline = W.now + (int64_t)HND_SAVE_RETRY_S * 1000000000;
			wait_ends();
		} else {
			break;
		}
	}
	if (W.verbose)
		fprintf(stderr, "\n");
}

static void check(void)
{
	HND_Period newest = W.period[W.markers];
	double tol = 1e-7 * (W.dfreqs + 1) * 60.0;

	ck_assert_msg(W.steps_taken < MAX_STEPS, "%s: stuck", W.trace);
	ck_assert_msg(!HND_Busy(W.m), "%s: still busy", W.trace);
	ck_assert_msg(W.done_calls > 0 && W.last.ok && W.last.marker == (uint64_t)W.markers,
		      "%s: not handed over", W.trace);
	/* A dfreq whose write-ahead kept failing to the last try of a round
	 * is not sent (handover.h): chronyd learns it from samples. */
	ck_assert_msg(W.gave_up || fabs(W.freq - true_freq()) <= tol,
		      "%s: chronyd's frequency %.9f ppm, want %.9f (%d dfreq)", W.trace, W.freq,
		      true_freq(), W.dfreqs);
	if (!W.learned && !W.gave_up)
		ck_assert_msg(fabs(W.product - ratio()) <= tol * 1e-6, "%s: product %.12f, ratio %.12f",
			      W.trace, W.product, ratio());
	ck_assert_msg(W.dfreqs_unrecorded == 0, "%s: %d dfreq reached chronyd unrecorded",
		      W.trace, W.dfreqs_unrecorded);
	ck_assert_msg(W.disk.valid && W.disk.marker == (uint64_t)W.markers &&
			      W.disk.chrony_period.valid && W.disk.chrony_period.frac == newest.frac &&
			      !W.disk.in_doubt.valid,
		      "%s: the record holds marker %llu, another period or a dfreq in doubt", W.trace,
		      (unsigned long long)W.disk.marker);
	if (!W.restart_after_doffset) {
		/* A kernel losing part of each step leaves what the last
		 * makestep lost, under HND_MIN_STEP_S. */
		ck_assert_msg(fabs(W.moved + W.correction - W.offset[W.markers]) <=
				      (W.step_loss > 0 ? HND_MIN_STEP_S : 1e-9),
			      "%s: clock moved %.12f s, %.12f s to slew, migration %.12f s", W.trace,
			      W.moved, W.correction, W.offset[W.markers]);
		if (!W.step_refusals)
			ck_assert_msg(fabs(W.correction) <= HND_MIN_STEP_S,
				      "%s: %.12f s left, not stepped", W.trace, W.correction);
	}
	ck_assert_msg(W.big_steps <= W.markers * HND_MAX_STEPS, "%s: %d makesteps", W.trace,
		      W.big_steps);
}

static long sequences;

/* Every script of DEPTH symbols after SKIP good requests. */
static void every_script(int depth, int skip, int max_failures, double step_loss)
{
	int script[MAX_SCRIPT];
	long n = 1;

	for (int k = 0; k < depth; k++)
		n *= N_SYMBOLS;
	for (long i = 0; i < n; i++) {
		long v = i;

		for (int k = 0; k < skip; k++)
			script[k] = OK;
		for (int k = 0; k < depth; k++) {
			script[skip + k] = (int)(v % N_SYMBOLS);
			v /= N_SYMBOLS;
		}
		run(script, skip + depth, max_failures, step_loss);
		check();
		HND_Free(W.m);
		sequences++;
	}
}

static int depth_;

START_TEST(depth)
{
	every_script(_i == 0 ? depth_ : depth_ - 1, _i, 0, 0.0);
}
END_TEST

START_TEST(rounds)
{
	every_script(depth_ - 1, _i, 2, 0.0);
}
END_TEST

/* Against a kernel that loses a hundredth of each step: faults from the
 * makestep on (its tracking read, the residual's doffset and makestep). */
START_TEST(residual)
{
	every_script(depth_ - 1, 5 + _i, 0, 0.01);
}
END_TEST

START_TEST(one_script)
{
	int script[64], len = 0;
	char *copy = strdup(getenv("CHECK_MACHINE_SCRIPT")), *save = NULL;

	for (char *w = strtok_r(copy, " ", &save); w && len < 64; w = strtok_r(NULL, " ", &save))
		for (int s = 0; s < N_SYMBOLS; s++)
			if (!strcmp(w, names[s]))
				script[len++] = s;
	free(copy);
	run(script, len, getenv("CHECK_MACHINE_ROUNDS") ? 2 : 0,
	    getenv("CHECK_MACHINE_LOSS") ? 0.01 : 0.0);
	check();
	HND_Free(W.m);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("machine");
	TCase *tc = tcase_create("machine");
	int r;
	const char *d = getenv("CHECK_MACHINE_DEPTH");

	/* Shallower where the CPU is emulated (.ci/arm64): the logic is the
	 * same, the full depth runs on the build machine. */
	depth_ = d ? atoi(d) : DEPTH;
	if (depth_ < 2 || depth_ > DEPTH)
		depth_ = DEPTH;

	LOG_Initialise(false, true);
	/* The machine's log lines, millions of them, only for one script. */
	if (!getenv("CHECK_MACHINE_SCRIPT") && !freopen("/dev/null", "w", stderr))
		return EXIT_FAILURE;
	tcase_set_timeout(tc, 600);
	if (getenv("CHECK_MACHINE_SCRIPT")) {
		tcase_add_test(tc, one_script);
	} else {
		tcase_add_loop_test(tc, depth, 0, SKIP_MAX + 1);
		tcase_add_loop_test(tc, rounds, 0, SKIP_MAX + 1);
		tcase_add_loop_test(tc, residual, 0, SKIP_MAX - 4);
	}
	suite_add_tcase(s, tc);
	r = CR_Run(s, CK_NOFORK);
	printf("%ld sequences\n", sequences);
	return r;
}
