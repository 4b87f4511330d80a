/* SPDX-License-Identifier: BSD-2-Clause
 *
 * check_disrupt.c - the driver of the disruption path (daemon/disrupt.c)
 * with the handover machine and its driver under it, as main.c runs them:
 * pages the test builds shown to DSR_Observe() on a real event loop, the
 * marker record kept in a state directory of the test's (read back with
 * STO_Load), the journal's records captured field by field
 * (journal_double.h), the sampler's ticks (the verdict's interval, the
 * offset the handover wants) played by
 * the test, and chronyd either absent (no command socket: every handover
 * completes at once) or a double of its command socket (chronyd_double.h).
 * The once-a-second and hold-off checks are reached by moving the modules'
 * CLOCK_MONOTONIC (monoskip.h), never by sleeping; what the loop waits for
 * of libevent's own timers is at most the handover's settling delay (half a
 * second) or a backoff.
 *
 * Covered: the first page adopted when nothing is kept (and kept); a
 * disruption while vmclockd was down, handed over with and without chronyd
 * (its one DISRUPTION record and its fields, RECOVERED with STATE_SAVED, the
 * dfreq recorded before it is sent); a dfreq in doubt carried across a
 * restart through the record, whichever way chronyd had taken it, and the
 * anchor of a handover that waited (what chronyd learned meanwhile not
 * doubled); the step between the offsets measured under two markers; marker
 * changes coalesced into one record; restores (RESTORE, the generation kept
 * a second later); the SOON and IMMINENT alerts; a page without time (no
 * burst, no frequency fields); a new device (no DISRUPTION record, one
 * reset); reloads; a state directory not ours (STATE_SAVED=0, unsaved until
 * the write retried a second later succeeds); DSR_Finalise keeping what is
 * dirty; samples withheld during a handover and a marker arriving in its
 * middle; the offset answers for the doffset (fed, tried again, skipped);
 * the per-change debug records.
 *
 * The modules keep their state in statics, as the daemon runs them once:
 * every test runs in its own process.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <check.h>
#include <event2/event.h>

#include "vmclock.h"
#include "../daemon/disrupt.h"
#include "../daemon/evbase.h"
#include "../daemon/hnd_driver.h"
#include "../daemon/log.h"
#include "../daemon/storage.h"
#include "chronyd_double.h"
#include "journal_double.h"
#include "monoskip.h"
#include "testpage.h"
#include "checkrun.h"

/* A test waits this long for what should come at once (a loaded machine). */
#define PATIENCE_MS 5000

/* Two counter periods (frac / 2^64 s a tick, shift 0): B is A made longer
 * by 2^-17, a counter frequency change of +1e6 * 2^-17 ppm (exact in a
 * double, in chrony's Float and in "%.6f": 7.629395), which chronyd gets as
 * a dfreq of the opposite sign. */
#define PERIOD_A ((uint64_t)1 << 34)
#define PERIOD_B (PERIOD_A + (PERIOD_A >> 17))
#define FREQ_CHANGE_PPM 7.62939453125

#define BURST_MS 1234u
#define BURST_INTERVAL_MS 31u
#define F0_PPM 12.5           /* chronyd's frequency */
#define OFFSET_S 0.25         /* device minus system time, as measured */
#define SECOND_NS 1000000000

#define GEN_PRESENT VMCLOCK_FLAG_VM_GEN_COUNTER_PRESENT

static struct event_base *base;
static char *dir, *state_dir;
static CNF_Settings cfg;
static CHD_Chronyd chronyd;

/* ---- the sampler ------------------------------------------------------------ */

/* How the sampler judges the samples of the ticks at which the module wants
 * the doffset's offset, in turn (the last one from then on); the others are
 * fed.  measures counts the module's answers to the handover (HDR_Offset,
 * wrapped). */
static POL_Reason answers[4] = { POL_FED };
static int n_answers = 1;
static int measures;

void __real_HDR_Offset(HND_OffsetAnswer answer, double offset_s, int skip_reason);
void __wrap_HDR_Offset(HND_OffsetAnswer answer, double offset_s, int skip_reason);

void __wrap_HDR_Offset(HND_OffsetAnswer answer, double offset_s, int skip_reason)
{
	measures++;
	__real_HDR_Offset(answer, offset_s, skip_reason);
}

/* ---- pages ------------------------------------------------------------------ */

typedef struct {
	uint64_t marker;
	uint64_t period; /* 0: the page carries no time */
	uint64_t gen;
	uint64_t flags;  /* besides GEN_PRESENT */
	bool offset;     /* an offset was measured on it ... */
	int64_t offset_ns;
	uint64_t offset_marker; /* ... under this marker (0: the page's) */
} Page;

static struct vmclock_abi page_of(const Page *pg)
{
	struct testpage p;
	struct vmclock_abi abi;

	if (pg->period)
		tp_init_time(&p, vmclock_native_counter(), 1000, pg->period, 0, 1700000000, 0);
	else
		tp_init(&p);
	tp_put64(&p, TP_MARKER, pg->marker);
	tp_put64(&p, TP_GENERATION, pg->gen);
	tp_put64(&p, TP_FLAGS, tp_get64(&p, TP_FLAGS) | pg->flags | GEN_PRESENT);
	tp_to_abi(&p, &abi);
	return abi;
}

/* The page last shown, and the module's last verdict. */
static Page shown;
static DSR_Verdict verdict;

/* Shows the page to the module as the sampler does, its sample judged as
 * answers[] says while the module wants an offset: whether samples are
 * withheld. */
static bool observe(Page pg)
{
	struct vmclock_abi abi = page_of(&pg);
	struct vmclock_offset o = { .offset_ns = pg.offset_ns };
	POL_Reason judged = answers[measures < n_answers ? measures : n_answers - 1];

	shown = pg;
	o.time.disruption_marker = pg.offset_marker ? pg.offset_marker : pg.marker;
	verdict = DSR_Observe(&abi, pg.offset ? &o : NULL, judged,
			      judged == POL_FED ? OFFSET_S : 0.0);
	return verdict.withhold;
}

/* The next tick, when the verdict asks for it: the page shown last. */
static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct event *ev = arg;
	struct timeval tv = { 0, 1000 };

	observe(shown);
	if (verdict.tick_ms)
		evtimer_add(ev, &tv);
}

/* ---- the loop --------------------------------------------------------------- */

static bool out_of_time;

static void out_of_time_cb(evutil_socket_t fd, short what, void *arg)
{
	out_of_time = true;
}

/* CLOCK_MONOTONIC (MSK_Now) when the last handover() began and returned:
 * when it found one under way, its completion, and so the start of the
 * burst, lies between. */
static int64_t handover_began_ns, handover_returned_ns;
static bool handover_was_running;

/* Runs the loop until no handover is under way (asserted). */
static void handover(void)
{
	struct timeval tv = { PATIENCE_MS / 1000, 0 }, soon = { 0, 1000 };
	struct event *guard = evtimer_new(base, out_of_time_cb, NULL);
	struct event *tick = event_new(base, -1, 0, tick_cb, event_self_cbarg());

	handover_began_ns = MSK_Now();
	handover_was_running = DSR_GetReport()->handling;
	out_of_time = false;
	evtimer_add(guard, &tv);
	evtimer_add(tick, &soon);
	while (DSR_GetReport()->handling && !out_of_time)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(tick);
	event_free(guard);
	handover_returned_ns = MSK_Now();
	ck_assert(!DSR_GetReport()->handling);
}

/* After a handover of a page with time the verdict asks for the burst
 * interval for MS, then for nothing: the sampler's own interval.  The
 * clock is moved to 2 ms before the earliest end the burst can have (MS
 * after the handover began) and to 2 ms after its latest (MS after it
 * returned), wherever the real clock is by then (under emulation,
 * milliseconds after it). */
static void assert_burst(unsigned ms)
{
	const int64_t ms_ns = (int64_t)ms * 1000000, margin_ns = 2000000;

	ck_assert(handover_was_running);
	observe(shown);
	ck_assert_uint_eq(verdict.tick_ms, BURST_INTERVAL_MS);
	ck_assert_int_lt(MSK_Now(), handover_began_ns + ms_ns - margin_ns);
	MSK_Advance(handover_began_ns + ms_ns - margin_ns - MSK_Now());
	observe(shown);
	ck_assert_uint_eq(verdict.tick_ms, BURST_INTERVAL_MS);
	MSK_Advance(handover_returned_ns + ms_ns + margin_ns - MSK_Now());
	observe(shown);
	ck_assert_uint_eq(verdict.tick_ms, 0);
}

/* Past the hold-off between two handovers (and any once-a-second check). */
static void later(void)
{
	MSK_Advance(10LL * SECOND_NS);
}

/* ---- the marker record ------------------------------------------------------ */

static bool any_period(const STO_Period *p, void *arg)
{
	return true;
}

static STO_Record load(void)
{
	STO_Record rec;

	ck_assert_int_eq(STO_Load(&rec, any_period, NULL), STO_FOUND);
	return rec;
}

static STO_Period period(uint64_t frac)
{
	return (STO_Period){ .valid = true, .frac = frac, .shift = 0 };
}

/* ---- the journal ------------------------------------------------------------ */

/* The one record with that MESSAGE_ID (asserted: exactly one). */
static int the_one(const char *message_id)
{
	ck_assert_int_eq(JRD_Count(message_id), 1);
	return JRD_Find(message_id, 0);
}

static double field_double(int i, const char *field)
{
	const char *v = JRD_Field(i, field);

	ck_assert_msg(v != NULL, "no %s", field);
	return strtod(v, NULL);
}

/* The DISRUPTION record (the only one) says OLD -> NEW over CHANGES marker
 * changes, from a page with period P_NEW (0: none), the frequency change
 * known when P_OLD is. */
static int disruption_record(uint64_t old, uint64_t first, uint64_t new, unsigned long changes,
			     uint64_t p_old, uint64_t p_new)
{
	int i = the_one(LOG_MSGID_DISRUPTION);

	ck_assert_uint_eq(JRD_FieldU64(i, "OLD_MARKER"), old);
	ck_assert_uint_eq(JRD_FieldU64(i, "FIRST_MARKER"), first);
	ck_assert_uint_eq(JRD_FieldU64(i, "NEW_MARKER"), new);
	ck_assert_uint_eq(JRD_FieldU64(i, "MARKER_CHANGES"), changes);
	if (p_new) {
		ck_assert_uint_eq(JRD_FieldU64(i, "COUNTER_PERIOD_FRAC_SEC"), p_new);
		ck_assert_uint_eq(JRD_FieldU64(i, "COUNTER_PERIOD_SHIFT"), 0);
	} else {
		ck_assert_ptr_null(JRD_Field(i, "COUNTER_PERIOD_FRAC_SEC"));
		ck_assert_ptr_null(JRD_Field(i, "COUNTER_PERIOD_SHIFT"));
	}
	if (p_old && p_new)
		ck_assert_double_eq_tol(field_double(i, "FREQ_CHANGE_PPM"),
					p_new == p_old ? 0.0 : FREQ_CHANGE_PPM, 1e-6);
	else
		ck_assert_ptr_null(JRD_Field(i, "FREQ_CHANGE_PPM"));
	return i;
}

/* The RECOVERED record (the only one) for MARKER; its index. */
static int recovered(uint64_t marker, bool saved)
{
	int i = the_one(LOG_MSGID_RECOVERED);

	ck_assert_uint_eq(JRD_FieldU64(i, "DISRUPTION_MARKER"), marker);
	ck_assert_uint_eq(JRD_FieldU64(i, "STATE_SAVED"), saved);
	return i;
}

/* Its field NAME is VALUE; NULL: absent. */
static void field_is(int i, const char *name, const char *value)
{
	if (value)
		ck_assert_str_eq(JRD_Field(i, name) ? JRD_Field(i, name) : "(absent)", value);
	else
		ck_assert_ptr_null(JRD_Field(i, name));
}

/* ---- set-up ------------------------------------------------------------------ */

static void setup(void)
{
	dir = tp_tmpdir();
	state_dir = tp_path(dir, "state");
	base = EVB_New();
	ck_assert_ptr_nonnull(base);
	JRD_Start(false);
	ck_assert_int_eq(STO_Initialise(state_dir), 0);
	cfg = (CNF_Settings){ .device = "/dev/vmclock0", .chrony_cmd = "", .state_dir = state_dir,
			      .burst_ms = BURST_MS, .burst_interval_ms = BURST_INTERVAL_MS,
			      .handover_step = true };
	measures = 0;
	memset(&chronyd, 0, sizeof(chronyd));
	chronyd.t.freq_ppm = F0_PPM;
}

static void teardown(void)
{
	DSR_Finalise();
	STO_Finalise();
	CHD_Stop(&chronyd);
	event_base_free(base);
	tp_rmdir(state_dir);
	tp_rmdir(dir);
	free(state_dir);
	free(dir);
	JRD_Clear();
}

static void start(void)
{
	ck_assert_int_eq(DSR_Initialise(base, &cfg), 0);
}

/* chronyd there, its command socket the module's. */
static void start_with_chronyd(void)
{
	char *path = tp_path(dir, "chronyd.sock");

	CHD_Start(&chronyd, base, path);
	cfg.chrony_cmd = chronyd.path;
	free(path);
	start();
}

/* The marker record as chronyd gets the dfreq: it was kept before, with what
 * resolves the dfreq after a crash (the anchor, chronyd's frequency read
 * first, and the dfreq itself). */
static int write_aheads;

static void dfreq_recorded_first(void)
{
	STO_Record rec;

	if (!chronyd.dfreqs) {
		chronyd.on_request = dfreq_recorded_first;
		return;
	}
	rec = load();
	ck_assert(rec.anchor.valid);
	ck_assert_uint_eq(rec.anchor.period.frac, PERIOD_A);
	ck_assert_double_eq_tol(rec.anchor.freq_ppm, F0_PPM, 1e-6);
	ck_assert(rec.dfreq.valid);
	ck_assert_uint_eq(rec.dfreq.marker, 5);
	ck_assert_uint_eq(rec.dfreq.from.frac, PERIOD_A);
	ck_assert_uint_eq(rec.dfreq.to.frac, PERIOD_B);
	ck_assert_double_eq(rec.dfreq.dfreq_ppm, chronyd.dfreq_ppm);
	ck_assert_double_eq_tol(rec.dfreq.freq_before_ppm, F0_PPM, 1e-6);
	write_aheads++;
}

/* ---- first pages -------------------------------------------------------------- */

/* Nothing kept: the first page is the handled one, kept at once; no
 * disruption, no handover, nothing withheld. */
START_TEST(first_page_adopted)
{
	STO_Record rec;

	ck_assert_int_eq(STO_Load(&rec, any_period, NULL), STO_NOT_FOUND);
	start();
	ck_assert(!observe((Page){ .marker = 5, .period = PERIOD_A, .gen = 3 }));
	ck_assert_uint_eq(DSR_GetReport()->handled_marker, 5);
	ck_assert_uint_eq(DSR_GetReport()->handled_gen, 3);
	ck_assert_uint_eq(DSR_GetReport()->disruptions, 0);
	ck_assert(!DSR_GetReport()->handling);
	ck_assert(!DSR_GetReport()->unsaved);
	rec = load();
	ck_assert_uint_eq(rec.marker, 5);
	ck_assert_uint_eq(rec.generation, 3);
	ck_assert(rec.period.valid);
	ck_assert_uint_eq(rec.period.frac, PERIOD_A);
	ck_assert(!rec.dfreq.valid);
	ck_assert_int_eq(JRD_Count(LOG_MSGID_DISRUPTION), 0);
	ck_assert(!observe((Page){ .marker = 5, .period = PERIOD_A, .gen = 3 }));
	ck_assert_uint_eq(verdict.tick_ms, 0); /* no burst */
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(JRD_Count(NULL), 0);
}
END_TEST

/* A page without time first: adopted, no period kept. */
START_TEST(first_page_without_time)
{
	STO_Record rec;

	start();
	ck_assert(!observe((Page){ .marker = 5 }));
	rec = load();
	ck_assert_uint_eq(rec.marker, 5);
	ck_assert(!rec.period.valid);
}
END_TEST

/* A record of another marker: the disruption happened while vmclockd was
 * down, and is handed over (against a double of chronyd, or with no
 * chronyd at all): one DISRUPTION record with the frequency change from the
 * kept period, no step (no offset of the old marker to measure it from), and
 * with chronyd RECOVERED with STATE_SAVED=1 (its dfreq recorded before it is
 * sent); the record then says the new marker and period. */
START_TEST(disruption_while_down)
{
	bool with_chronyd = _i;
	STO_Record kept = { .marker = 4, .generation = 1, .period = period(PERIOD_A) }, rec;
	int i;

	ck_assert_int_eq(STO_Save(&kept), 0);
	if (with_chronyd)
		start_with_chronyd();
	else
		start();
	chronyd.on_request = dfreq_recorded_first;
	ck_assert(observe((Page){ .marker = 5, .period = PERIOD_B, .gen = 1, .offset = true,
				  .offset_ns = 777 }));
	ck_assert(DSR_GetReport()->handling);
	ck_assert_uint_eq(DSR_GetReport()->disruptions, 1);
	ck_assert_int_ne(DSR_GetReport()->last_disruption.tv_sec, 0);
	handover();

	i = disruption_record(4, 5, 5, 1, PERIOD_A, PERIOD_B);
	ck_assert_uint_eq(JRD_FieldU64(i, "VM_GENERATION_COUNTER"), 1);
	ck_assert_ptr_null(JRD_Field(i, "STEP_NS"));
	ck_assert_uint_eq(JRD_FieldU64(i, "PRIORITY"), 4);
	if (with_chronyd) {
		i = recovered(5, true);
		/* What chronyd was handed. */
		field_is(i, "DFREQ", "applied");
		ck_assert_double_eq_tol(field_double(i, "DFREQ_PPM"), -FREQ_CHANGE_PPM, 1e-6);
		field_is(i, "DFREQ_IN_DOUBT", NULL);
		ck_assert_double_eq_tol(field_double(i, "DOFFSET_NS"), -OFFSET_S * 1e9, 1.0);
		field_is(i, "STEP_WITHHELD", NULL);
		ck_assert_ptr_nonnull(JRD_Field(i, "MAKESTEPS"));
		ck_assert_int_eq(chronyd.resets, 1);
		ck_assert_int_eq(chronyd.dfreqs, 1);
		ck_assert_double_eq(chronyd.dfreq_ppm, -FREQ_CHANGE_PPM);
		ck_assert_int_eq(write_aheads, 1);
		ck_assert_int_eq(chronyd.doffsets, 1);
		ck_assert_double_eq_tol(chronyd.doffset_s, -OFFSET_S, 1e-9);
		ck_assert_int_eq(measures, 1);
	} else {
		ck_assert_int_eq(JRD_Count(LOG_MSGID_RECOVERED), 0);
		ck_assert_int_eq(measures, 0);
	}
	/* A page with time: the sampler bursts, for the configured time. */
	assert_burst(BURST_MS);
	ck_assert_uint_eq(DSR_GetReport()->handled_marker, 5);
	ck_assert_int_ne(DSR_GetReport()->handled_at.tv_sec, 0);
	rec = load();
	ck_assert_uint_eq(rec.marker, 5);
	ck_assert(rec.period.valid);
	ck_assert_uint_eq(rec.period.frac, PERIOD_B);
	ck_assert(!rec.dfreq.valid);
	ck_assert(!rec.anchor.valid);
	ck_assert(!observe((Page){ .marker = 5, .period = PERIOD_B, .gen = 1 }));
}
END_TEST

/* The record holds a dfreq in doubt: vmclockd died after recording it, for
 * marker 5, before its answer came.  The handover that follows resolves it
 * from chronyd's frequency: applied (the page at marker 5: no dfreq again;
 * the page back at marker 4: the way back, once) or not (sent now).  Either
 * way it is not in the record afterwards. */
static const struct {
	bool applied;     /* chronyd had taken the dfreq */
	uint64_t marker;  /* the page's */
	uint64_t period;
	uint64_t from;    /* the dfreq sent now (0: none), from this period */
} doubts[] = {
	{ true, 5, PERIOD_B, 0 },
	{ false, 5, PERIOD_B, PERIOD_A },
	{ true, 4, PERIOD_A, PERIOD_B },
	{ false, 4, PERIOD_A, 0 },
};

START_TEST(dfreq_in_doubt)
{
	STO_Record kept = {
		.marker = 4, .generation = 1, .period = period(PERIOD_A),
		.dfreq = { .valid = true, .marker = 5, .from = period(PERIOD_A),
			   .to = period(PERIOD_B), .dfreq_ppm = -FREQ_CHANGE_PPM,
			   .freq_before_ppm = F0_PPM },
	}, rec;
	int i;

	ck_assert_int_eq(STO_Save(&kept), 0);
	if (doubts[_i].applied)
		chronyd.t.freq_ppm = F0_PPM - FREQ_CHANGE_PPM * (1.0 - F0_PPM * 1e-6);
	start_with_chronyd();
	ck_assert(observe((Page){ .marker = doubts[_i].marker, .period = doubts[_i].period,
				  .gen = 1 }));
	handover();
	ck_assert_int_eq(chronyd.dfreqs, doubts[_i].from != 0);
	if (doubts[_i].from)
		ck_assert_double_eq_tol(chronyd.dfreq_ppm,
					-((double)doubts[_i].period / (double)doubts[_i].from - 1.0) * 1e6,
					1e-5);
	ck_assert_int_eq(chronyd.resets, 1);
	i = recovered(doubts[_i].marker, true);
	field_is(i, "DFREQ_IN_DOUBT", doubts[_i].applied ? "applied" : "not_applied");
	/* The one in doubt counts when chronyd had applied it. */
	field_is(i, "DFREQ", doubts[_i].applied || doubts[_i].from ? "applied" : "none");
	/* A record of the disruption only for a marker change. */
	ck_assert_int_eq(JRD_Count(LOG_MSGID_DISRUPTION), doubts[_i].marker != 4);
	rec = load();
	ck_assert_uint_eq(rec.marker, doubts[_i].marker);
	ck_assert_uint_eq(rec.period.frac, doubts[_i].period);
	ck_assert(!rec.dfreq.valid);
}
END_TEST

/* The record holds the anchor of a handover that waited between failed
 * rounds, feeding samples, when vmclockd died (chronyd's frequency F0 while
 * it was right for period A); chronyd has learned period B from the samples
 * since.  The handover after the restart tells that from the anchor: no
 * dfreq on top of what chronyd learned. */
START_TEST(anchor_kept_across_restart)
{
	STO_Record kept = {
		.marker = 4, .generation = 1, .period = period(PERIOD_A),
		.anchor = { .valid = true, .period = period(PERIOD_A), .freq_ppm = F0_PPM },
	};

	ck_assert_int_eq(STO_Save(&kept), 0);
	chronyd.t.freq_ppm = F0_PPM - FREQ_CHANGE_PPM * (1.0 - F0_PPM * 1e-6);
	start_with_chronyd();
	ck_assert(observe((Page){ .marker = 5, .period = PERIOD_B, .gen = 1 }));
	handover();
	recovered(5, true);
	ck_assert_int_eq(chronyd.dfreqs, 0);
	ck_assert_uint_eq(load().period.frac, PERIOD_B);
}
END_TEST

/* ---- disruptions ---------------------------------------------------------------- */

/* The step: the offset measured under the new marker minus the last one
 * measured under the handled marker (an offset measured on a page that had
 * moved on belongs to neither). */
START_TEST(step_between_offsets)
{
	int i;

	start();
	ck_assert(!observe((Page){ .marker = 1, .period = PERIOD_A, .offset = true,
				   .offset_ns = 1000 }));
	ck_assert(!observe((Page){ .marker = 1, .period = PERIOD_A, .offset = true,
				   .offset_ns = 2000 }));
	ck_assert(!observe((Page){ .marker = 1, .period = PERIOD_A, .offset = true,
				   .offset_ns = 99999, .offset_marker = 9 }));
	later();
	ck_assert(observe((Page){ .marker = 2, .period = PERIOD_B, .offset = true,
				  .offset_ns = -3000500 }));
	handover();
	i = disruption_record(1, 2, 2, 1, PERIOD_A, PERIOD_B);
	ck_assert_int_eq(JRD_FieldI64(i, "STEP_NS"), -3002500);
	ck_assert_uint_eq(DSR_GetReport()->disruptions, 1);
}
END_TEST

/* Marker changes faster than a handover completes: one handover, one
 * record covering them all; each change counted in the report (and, with
 * debug on, a debug record of its own). */
START_TEST(changes_coalesced)
{
	int debug_records = 0;

	JRD_Start(true);
	start();
	ck_assert(!observe((Page){ .marker = 1, .period = PERIOD_A }));
	later();
	ck_assert(observe((Page){ .marker = 2, .period = PERIOD_A }));
	ck_assert(observe((Page){ .marker = 3, .period = PERIOD_A }));
	ck_assert(observe((Page){ .marker = 4, .period = PERIOD_B }));
	handover();
	disruption_record(1, 2, 4, 3, PERIOD_A, PERIOD_B);
	ck_assert_uint_eq(DSR_GetReport()->disruptions, 3);
	ck_assert_uint_eq(DSR_GetReport()->handled_marker, 4);
	ck_assert_uint_eq(load().marker, 4);
	for (int i = 0; i < JRD_Count(NULL); i++) {
		if (JRD_FieldU64(i, "PRIORITY") != 7 || !JRD_Field(i, "NEW_MARKER"))
			continue;
		ck_assert_ptr_null(JRD_Field(i, "MESSAGE_ID"));
		ck_assert_uint_eq(JRD_FieldU64(i, "NEW_MARKER"), JRD_FieldU64(i, "OLD_MARKER") + 1);
		/* Only the change to marker 4 changes the period. */
		ck_assert_double_eq_tol(field_double(i, "FREQ_CHANGE_PPM"),
					JRD_FieldU64(i, "NEW_MARKER") == 4 ? FREQ_CHANGE_PPM : 0.0,
					1e-6);
		debug_records++;
	}
	ck_assert_int_eq(debug_records, 3);
	/* The next disruption is a record of its own. */
	later();
	JRD_Clear();
	ck_assert(observe((Page){ .marker = 5, .period = PERIOD_B }));
	handover();
	disruption_record(4, 5, 5, 1, PERIOD_B, PERIOD_B);
}
END_TEST

/* A page without time: no frequency fields, no step, no burst; chronyd is
 * reset and asked for an NTP burst, nothing else. */
START_TEST(page_without_time)
{
	int i;

	start_with_chronyd();
	ck_assert(!observe((Page){ .marker = 1, .period = PERIOD_A, .offset = true }));
	later();
	ck_assert(observe((Page){ .marker = 2 }));
	handover();
	i = disruption_record(1, 2, 2, 1, PERIOD_A, 0);
	ck_assert_ptr_null(JRD_Field(i, "STEP_NS"));
	recovered(2, true);
	observe(shown);
	ck_assert_uint_eq(verdict.tick_ms, 0); /* no burst: nothing to feed */
	ck_assert_int_eq(chronyd.resets, 1);
	ck_assert_int_eq(chronyd.bursts, 1);
	ck_assert_int_eq(chronyd.dfreqs + chronyd.doffsets + chronyd.makesteps, 0);
	ck_assert_int_eq(measures, 0);
	ck_assert(!load().period.valid);
}
END_TEST

/* The VM restored or cloned: a RESTORE record, the generation reported at
 * once and kept a second later (not at every page); a flapping counter is
 * rate-limited. */
START_TEST(restore)
{
	int i;

	start();
	ck_assert(!observe((Page){ .marker = 3, .period = PERIOD_A, .gen = 1 }));
	ck_assert(!observe((Page){ .marker = 3, .period = PERIOD_A, .gen = 2 }));
	i = the_one(LOG_MSGID_RESTORE);
	ck_assert_uint_eq(JRD_FieldU64(i, "VM_GENERATION_COUNTER"), 2);
	ck_assert_uint_eq(JRD_FieldU64(i, "DISRUPTION_MARKER"), 3);
	ck_assert_int_eq(JRD_Count(LOG_MSGID_DISRUPTION), 0);
	ck_assert_uint_eq(DSR_GetReport()->handled_gen, 2);
	ck_assert_uint_eq(load().generation, 1);
	MSK_Advance(SECOND_NS);
	ck_assert(!observe((Page){ .marker = 3, .period = PERIOD_A, .gen = 2 }));
	ck_assert_uint_eq(load().generation, 2);
	ck_assert_int_eq(JRD_Count(LOG_MSGID_RESTORE), 1);

	for (uint64_t gen = 3; gen < 20; gen++)
		observe((Page){ .marker = 3, .period = PERIOD_A, .gen = gen });
	ck_assert_int_lt(JRD_Count(LOG_MSGID_RESTORE), 10);
	ck_assert_uint_eq(DSR_GetReport()->handled_gen, 19);
}
END_TEST

/* The host's announcements: one record each time a flag appears (IMMINENT
 * rather than SOON when both do), none while it stays. */
START_TEST(announcements)
{
	const uint64_t soon = VMCLOCK_FLAG_DISRUPTION_SOON, imminent = VMCLOCK_FLAG_DISRUPTION_IMMINENT;
	int i;

	start();
	observe((Page){ .marker = 1, .period = PERIOD_A, .flags = soon });
	observe((Page){ .marker = 1, .period = PERIOD_A, .flags = soon });
	i = the_one(LOG_MSGID_DISRUPTION_SOON);
	ck_assert_uint_eq(JRD_FieldU64(i, "PRIORITY"), 5);
	ck_assert_int_eq(JRD_Count(LOG_MSGID_DISRUPTION_IMMINENT), 0);
	observe((Page){ .marker = 1, .period = PERIOD_A, .flags = soon | imminent });
	i = the_one(LOG_MSGID_DISRUPTION_IMMINENT);
	ck_assert_uint_eq(JRD_FieldU64(i, "PRIORITY"), 4);
	observe((Page){ .marker = 1, .period = PERIOD_A, .flags = soon | imminent });
	observe((Page){ .marker = 1, .period = PERIOD_A });
	observe((Page){ .marker = 1, .period = PERIOD_A, .flags = soon | imminent });
	ck_assert_int_eq(JRD_Count(LOG_MSGID_DISRUPTION_SOON), 1);
	ck_assert_int_eq(JRD_Count(LOG_MSGID_DISRUPTION_IMMINENT), 2);
	ck_assert_int_eq(JRD_Count(LOG_MSGID_DISRUPTION), 0);
}
END_TEST

/* Another device: its first page starts an epoch, handed over with a reset
 * and no frequency change, and is not a disruption of the old device's
 * markers (no DISRUPTION record); the new device's period is kept from its
 * next pages on.  Before any page there is nothing to forget. */
START_TEST(source_changed)
{
	STO_Record rec;

	start_with_chronyd();
	DSR_SourceChanged();
	ck_assert(!observe((Page){ .marker = 1, .period = PERIOD_A }));
	later();
	DSR_SourceChanged();
	ck_assert(observe((Page){ .marker = 7, .period = PERIOD_B }));
	handover();
	ck_assert_int_eq(JRD_Count(LOG_MSGID_DISRUPTION), 0);
	recovered(7, true);
	ck_assert_int_eq(chronyd.resets, 1);
	ck_assert_int_eq(chronyd.dfreqs, 0);
	ck_assert_uint_eq(DSR_GetReport()->disruptions, 1);
	rec = load();
	ck_assert_uint_eq(rec.marker, 7);
	ck_assert(!rec.period.valid);
	MSK_Advance(SECOND_NS);
	ck_assert(!observe((Page){ .marker = 7, .period = PERIOD_B }));
	rec = load();
	ck_assert(rec.period.valid);
	ck_assert_uint_eq(rec.period.frac, PERIOD_B);
}
END_TEST

/* A reload: the new settings from then on (chronyd's command socket, the
 * burst's length); the same socket keeps its client. */
START_TEST(reconfigure)
{
	CNF_Settings fresh;
	char *path = tp_path(dir, "chronyd.sock");
	char client[sizeof(chronyd.client)];
	int requests;

	start();
	observe((Page){ .marker = 1, .period = PERIOD_A });
	CHD_Start(&chronyd, base, path);
	fresh = cfg;
	fresh.chrony_cmd = chronyd.path;
	fresh.burst_ms = 777;
	DSR_Reconfigure(&fresh);
	later();
	ck_assert(observe((Page){ .marker = 2, .period = PERIOD_A }));
	handover();
	recovered(2, true);
	ck_assert_int_eq(chronyd.resets, 1);
	assert_burst(777);
	snprintf(client, sizeof(client), "%s", chronyd.client);

	/* The same again: the same client, on to the next handover. */
	DSR_Reconfigure(&fresh);
	later();
	ck_assert(observe((Page){ .marker = 3, .period = PERIOD_A }));
	handover();
	ck_assert_int_eq(chronyd.resets, 2);
	ck_assert_str_eq(chronyd.client, client);
	requests = chronyd.requests;

	/* None: no chronyd to hand the next one to. */
	cfg = fresh;
	cfg.chrony_cmd = "";
	DSR_Reconfigure(&cfg);
	later();
	ck_assert(observe((Page){ .marker = 4, .period = PERIOD_A }));
	handover();
	ck_assert_int_eq(JRD_Count(LOG_MSGID_DISRUPTION), 3);
	ck_assert_int_eq(JRD_Count(LOG_MSGID_RECOVERED), 2);
	ck_assert_int_eq(chronyd.requests, requests);
	ck_assert_uint_eq(load().marker, 4);
	free(path);
}
END_TEST

/* ---- the state directory --------------------------------------------------------- */

/* A state directory not ours alone (writable by its group): nothing is
 * kept, the report says so, RECOVERED says STATE_SAVED=0.  Once it is ours
 * again, the write is retried at the first page a second after the last
 * try, not before. */
START_TEST(state_dir_not_ours)
{
	STO_Record rec;

	ck_assert_int_eq(mkdir(state_dir, 0700), 0);
	ck_assert_int_eq(chmod(state_dir, 0770), 0);
	start_with_chronyd();
	ck_assert(!observe((Page){ .marker = 1, .period = PERIOD_A }));
	ck_assert(DSR_GetReport()->unsaved);
	later();
	ck_assert(observe((Page){ .marker = 2, .period = PERIOD_A }));
	handover();
	recovered(2, false);
	ck_assert(DSR_GetReport()->unsaved);
	ck_assert_uint_eq(DSR_GetReport()->handled_marker, 2);

	ck_assert_int_eq(chmod(state_dir, 0700), 0);
	ck_assert_int_eq(STO_Load(&rec, any_period, NULL), STO_NOT_FOUND);
	ck_assert(!observe((Page){ .marker = 2, .period = PERIOD_A }));
	ck_assert_int_eq(STO_Load(&rec, any_period, NULL), STO_NOT_FOUND);
	ck_assert(DSR_GetReport()->unsaved);
	MSK_Advance(SECOND_NS);
	ck_assert(!observe((Page){ .marker = 2, .period = PERIOD_A }));
	ck_assert(!DSR_GetReport()->unsaved);
	ck_assert_uint_eq(load().marker, 2);
}
END_TEST

/* At the end what has not been kept yet is: a new generation (kept a second
 * after the last write otherwise), the period as the host refined it (kept
 * at most every minute otherwise), either or both. */
START_TEST(finalise_keeps_what_is_dirty)
{
	uint64_t gen = _i & 1 ? 2 : 1, frac = _i & 2 ? PERIOD_A + 1 : PERIOD_A;
	STO_Record rec;

	start();
	observe((Page){ .marker = 1, .period = PERIOD_A, .gen = 1 });
	observe((Page){ .marker = 1, .period = frac, .gen = gen });
	rec = load();
	ck_assert_uint_eq(rec.generation, 1);
	ck_assert_uint_eq(rec.period.frac, PERIOD_A);
	DSR_Finalise();
	rec = load();
	ck_assert_uint_eq(rec.generation, gen);
	ck_assert_uint_eq(rec.period.frac, frac);
}
END_TEST

/* Nothing seen, nothing kept. */
START_TEST(finalise_before_any_page)
{
	STO_Record rec;

	start();
	DSR_Finalise();
	ck_assert_int_eq(STO_Load(&rec, any_period, NULL), STO_NOT_FOUND);
}
END_TEST

/* ---- handovers against chronyd ------------------------------------------------- */

static bool verdict_mid_handover;
static int verdicts;

/* A page of the marker being handed over, while a request is in flight. */
static void page_mid_handover(void)
{
	verdict_mid_handover = observe((Page){ .marker = 2, .period = PERIOD_B });
	verdicts++;
}

/* A new marker while a request of the handover is in flight (after the
 * hold-off). */
static void marker_mid_handover(void)
{
	later();
	ck_assert(observe((Page){ .marker = 3, .period = PERIOD_B }));
}

/* Samples are withheld from the new marker until chronyd has it all, fed
 * again after. */
START_TEST(withheld_during_handover)
{
	start_with_chronyd();
	ck_assert(!observe((Page){ .marker = 1, .period = PERIOD_A }));
	later();
	ck_assert(observe((Page){ .marker = 2, .period = PERIOD_B }));
	chronyd.on_request = page_mid_handover;
	handover();
	ck_assert_int_eq(verdicts, 1);
	ck_assert(verdict_mid_handover);
	ck_assert(!observe((Page){ .marker = 2, .period = PERIOD_B }));
	recovered(2, true);
}
END_TEST

/* A marker that changes while its handover is under way: the handover
 * heads for the newest, one record of both changes. */
START_TEST(marker_during_handover)
{
	int i;

	start_with_chronyd();
	observe((Page){ .marker = 1, .period = PERIOD_A });
	later();
	ck_assert(observe((Page){ .marker = 2, .period = PERIOD_B }));
	chronyd.on_request = marker_mid_handover;
	handover();
	i = disruption_record(1, 2, 3, 2, PERIOD_A, PERIOD_B);
	ck_assert_uint_eq(JRD_FieldU64(i, "NEW_MARKER"), 3);
	recovered(3, true);
	ck_assert_int_eq(chronyd.dfreqs, 1);
	ck_assert_int_ge(chronyd.doffsets, 1);
	ck_assert_uint_eq(load().marker, 3);
}
END_TEST

/* The offset for the doffset, as the sampler answers: measured (sent), no
 * reading now (asked again), or one the page does not vouch for or of
 * another marker (no doffset; the handover completes, and says it at a
 * warning's priority). */
static const struct {
	POL_Reason answers[2];
	int measures;
	int doffsets;
} offsets[] = {
	{ { POL_FED, POL_FED }, 1, 1 },
	{ { POL_UNSTABLE, POL_FED }, 2, 1 },
	{ { POL_NO_DEVICE, POL_FED }, 2, 1 },
	{ { POL_BAD_PAGE, POL_FED }, 2, 1 },
	{ { POL_DISRUPTION, POL_FED }, 1, 0 },
	{ { POL_NOT_SYNCHRONIZED, POL_FED }, 1, 0 },
};

START_TEST(offset_answers)
{
	int said = -1, rec;

	memcpy(answers, offsets[_i].answers, sizeof(offsets[_i].answers));
	n_answers = 2;
	start_with_chronyd();
	observe((Page){ .marker = 1, .period = PERIOD_A });
	later();
	ck_assert(observe((Page){ .marker = 2, .period = PERIOD_A }));
	handover();
	rec = recovered(2, true);
	ck_assert_int_eq(measures, offsets[_i].measures);
	ck_assert_int_eq(chronyd.doffsets, offsets[_i].doffsets);
	/* Why no step, named as the metrics name the reasons. */
	if (offsets[_i].doffsets) {
		field_is(rec, "STEP_WITHHELD", NULL);
		ck_assert_ptr_nonnull(JRD_Field(rec, "DOFFSET_NS"));
	} else {
		field_is(rec, "STEP_WITHHELD", vmclockd_reason_name(offsets[_i].answers[0]));
		field_is(rec, "DOFFSET_NS", NULL);
	}
	if (offsets[_i].doffsets)
		ck_assert_double_eq_tol(chronyd.doffset_s, -OFFSET_S, 1e-9);
	/* The handover's own line, before its records. */
	for (int i = 0; i < JRD_Count(NULL); i++)
		if (!strcmp(JRD_Field(i, "CODE_FUNC"), "handover_done") &&
		    !JRD_Field(i, "MESSAGE_ID"))
			said = (int)JRD_FieldU64(i, "PRIORITY");
	ck_assert_int_eq(said, offsets[_i].doffsets ? 6 : 4);
	assert_burst(BURST_MS);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("disrupt");
	TCase *tc;

	tc = tcase_create("disrupt");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, first_page_adopted);
	tcase_add_test(tc, first_page_without_time);
	tcase_add_loop_test(tc, disruption_while_down, 0, 2);
	tcase_add_loop_test(tc, dfreq_in_doubt, 0, sizeof(doubts) / sizeof(doubts[0]));
	tcase_add_test(tc, anchor_kept_across_restart);
	tcase_add_test(tc, step_between_offsets);
	tcase_add_test(tc, changes_coalesced);
	tcase_add_test(tc, page_without_time);
	tcase_add_test(tc, restore);
	tcase_add_test(tc, announcements);
	tcase_add_test(tc, source_changed);
	tcase_add_test(tc, reconfigure);
	tcase_add_test(tc, state_dir_not_ours);
	tcase_add_loop_test(tc, finalise_keeps_what_is_dirty, 1, 4);
	tcase_add_test(tc, finalise_before_any_page);
	tcase_add_test(tc, withheld_during_handover);
	tcase_add_test(tc, marker_during_handover);
	tcase_add_loop_test(tc, offset_answers, 0, sizeof(offsets) / sizeof(offsets[0]));
	suite_add_tcase(s, tc);

	/* The modules' statics: a fresh process per test. */
	return CR_Run(s, CK_FORK);
}
