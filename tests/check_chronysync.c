/* SPDX-License-Identifier: BSD-2-Clause
 *
 * check_chronysync.c - chronyd's sync state and error bound as vmclockd
 * derives them (daemon/chronysync.c), against a double of chronyd's command
 * socket on the module's own event loop.
 *
 * The double (chronyd_double.h) answers each tracking request the module's
 * client sends with the report the test sets, in chrony's protocol and
 * Float.  It can refuse instead, and runs a test's callback as a request
 * arrives, before answering it: a disruption handled while the request is
 * in flight.
 *
 * Covered: the sync state from the leap status and reference id (no source,
 * chronyd's local reference), the bound and its drift (the frequency while
 * no growth of the correction has been seen, the growth once it has, chrony's
 * figures out of range), DISRUPTED from a handled disruption until a report
 * requested after it names a real source, the last bound kept while chronyd
 * follows no source (not across a disruption, nor across chronyd's absence),
 * UNKNOWN while chronyd cannot be asked (refusing, its directory missing)
 * and a fresh client after, the poll hurried by a disruption, and reloads.
 *
 * The module keeps its state in statics, as the daemon runs it once: every
 * test runs in its own process.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>
#include <event2/event.h>

#include "vmclockd-state.h"
#include "../daemon/chrony_proto.h"
#include "../daemon/chronysync.h"
#include "../daemon/evbase.h"
#include "chronyd_double.h"
#include "testpage.h"
#include "checkrun.h"

/* A test waits this long for what should come at once (a loaded machine). */
#define PATIENCE_MS 5000u
/* A poll interval no test waits for. */
#define SLOW_MS 3600000u

#define REFID_REAL 0xc0a80001u  /* a server's address */
#define REFID_LOCAL 0x7f7f0101u /* 127.127.1.1: chronyd's `local` */

/* ---- the double -------------------------------------------------------------- */

static struct event_base *base;
static char *dir;
static CHD_Chronyd chronyd, chronyd2;
static CNF_Settings cfg;
static DSR_Report dsr;
static int updates;
static CSY_Report last;

/* The double's socket NAME in the test's directory. */
static void chronyd_start(CHD_Chronyd *c, const char *name)
{
	char path[sizeof(c->path)];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	CHD_Start(c, base, path);
}

/* chronyd following a server: synchronised, figures exact in chrony's
 * Float. */
static const CPR_Tracking following = {
	.ref_id = REFID_REAL,
	.stratum = 2,
	.leap_status = CPR_LEAP_NORMAL,
	.current_correction = -0x1p-11,
	.freq_ppm = -12.5,
	.resid_freq_ppm = -0.25,
	.skew_ppm = 0.5,
	.root_delay = 0x1p-9,
	.root_dispersion = 0x1p-10,
	.last_update_interval = 16,
};
/* Its bound: root delay / 2 + root dispersion + |correction|, rounded up
 * to the nanosecond (2441406.25 ns). */
#define FOLLOWING_BOUND_NS 2441407u
/* Its drift: chrony's 1 ppm of clock error, skew and residual frequency,
 * and the whole frequency while no growth of the correction was seen. */
#define FOLLOWING_DRIFT_PPB (1000u + 500u + 250u + 12500u)

/* ---- the module on the loop ---------------------------------------------------- */

static void updated(const CSY_Report *r, void *arg)
{
	ck_assert_ptr_eq(arg, &updates);
	ck_assert_ptr_eq(r, CSY_GetReport());
	last = *r;
	updates++;
	event_base_loopbreak(base);
}

static const CSY_Hooks hooks = { .updated = updated, .arg = &updates };

static void setup(void)
{
	dir = tp_tmpdir();
	base = EVB_New();
	ck_assert_ptr_nonnull(base);
	memset(&chronyd, 0, sizeof(chronyd));
	memset(&chronyd2, 0, sizeof(chronyd2));
	chronyd.t = following;
	chronyd2.t = following;
	chronyd_start(&chronyd, "chronyd.sock");
	cfg = (CNF_Settings){ .chrony_cmd = chronyd.path, .chrony_poll_ms = 1,
			      .burst_interval_ms = 1 };
	memset(&dsr, 0, sizeof(dsr));
	updates = 0;
}

static void teardown(void)
{
	CSY_Finalise();
	/* The module asks chronyd nothing but tracking. */
	ck_assert_int_eq(chronyd.requests, chronyd.tracking);
	ck_assert_int_eq(chronyd2.requests, chronyd2.tracking);
	CHD_Stop(&chronyd);
	CHD_Stop(&chronyd2);
	event_base_free(base);
	tp_rmdir(dir);
	free(dir);
}

static void start(void)
{
	ck_assert_int_eq(CSY_Initialise(base, &cfg, &dsr, &hooks), 0);
}

static bool out_of_time;

static void out_of_time_cb(evutil_socket_t fd, short what, void *arg)
{
	out_of_time = true;
}

/* Runs the loop until done() or PATIENCE_MS; whether done() came. */
static bool run_until(bool (*done)(void))
{
	struct timeval tv = { PATIENCE_MS / 1000, 0 };
	struct event *guard = evtimer_new(base, out_of_time_cb, NULL);

	out_of_time = false;
	evtimer_add(guard, &tv);
	while (!done() && !out_of_time)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(guard);
	return done();
}

static int want_updates, want_requests;

static bool have_updates(void)
{
	return updates >= want_updates;
}

static bool have_requests(void)
{
	return chronyd.requests >= want_requests;
}

static bool unknown(void)
{
	return CSY_GetReport()->sync_state == VMCLOCKD_SYNC_UNKNOWN;
}

/* The report after the next tracking reply. */
static CSY_Report next_report(void)
{
	want_updates = updates + 1;
	ck_assert_msg(run_until(have_updates), "no tracking reply in %u ms", PATIENCE_MS);
	return last;
}

static uint64_t now_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void synchronised(CSY_Report r)
{
	ck_assert_uint_eq(r.sync_state, VMCLOCKD_SYNC_SYNCHRONIZED);
	ck_assert(r.have_bound);
}

/* ---- the report ---------------------------------------------------------------- */

static uint64_t arrived_ns; /* CLOCK_REALTIME as the last request arrived */

static void note_arrival(void)
{
	arrived_ns = now_ns(CLOCK_REALTIME);
}

/* The bound is dated no later than chronyd read it: the request's arrival
 * at the double, not the reply's at the module. */
START_TEST(following_a_source)
{
	uint64_t t0 = now_ns(CLOCK_REALTIME), t1;
	CSY_Report r;

	ck_assert_uint_eq(CSY_GetReport()->sync_state, VMCLOCKD_SYNC_UNKNOWN);
	ck_assert(!CSY_GetReport()->have_bound);
	chronyd.on_request = note_arrival;
	start();
	r = next_report();
	t1 = now_ns(CLOCK_REALTIME);
	synchronised(r);
	ck_assert_uint_eq(r.bound_ns, FOLLOWING_BOUND_NS);
	ck_assert_uint_ge(r.bound_realtime_ns, t0);
	ck_assert_uint_le(r.bound_realtime_ns, arrived_ns);
	ck_assert_uint_le(arrived_ns, t1);
	ck_assert_uint_eq(r.drift_ppb, FOLLOWING_DRIFT_PPB);
	ck_assert_int_eq(chronyd.requests, 1);
}
END_TEST

/* chronyd following no real source: unsynchronised, whatever its leap
 * status says, and no bound without one read from a source. */
static const struct {
	uint16_t leap;
	uint32_t ref_id;
} no_source[] = {
	{ CPR_LEAP_UNSYNCHRONISED, REFID_REAL }, /* after `reset sources` */
	{ CPR_LEAP_NORMAL, 0 },                  /* no reference named */
	{ CPR_LEAP_NORMAL, REFID_LOCAL },        /* serving its own clock */
	{ CPR_LEAP_INSERT, REFID_LOCAL },
};

START_TEST(following_no_source)
{
	CSY_Report r;

	chronyd.t.leap_status = no_source[_i].leap;
	chronyd.t.ref_id = no_source[_i].ref_id;
	start();
	r = next_report();
	ck_assert_uint_eq(r.sync_state, VMCLOCKD_SYNC_UNSYNCHRONIZED);
	ck_assert(r.have_bound);
	ck_assert_uint_eq(r.bound_ns, VMCLOCKD_BOUND_UNKNOWN);
	ck_assert_uint_eq(r.drift_ppb, VMCLOCKD_DRIFT_UNKNOWN);
	/* Said again at every reply. */
	r = next_report();
	ck_assert_uint_eq(r.sync_state, VMCLOCKD_SYNC_UNSYNCHRONIZED);
}
END_TEST

/* The source lost: the last bound read from it stays, at the time it was
 * read (readers grow it); a source again: fresh figures. */
START_TEST(source_lost_bound_kept)
{
	CSY_Report first, r;

	start();
	first = next_report();
	synchronised(first);
	chronyd.t.leap_status = CPR_LEAP_UNSYNCHRONISED;
	chronyd.t.root_dispersion = 1.0;
	r = next_report();
	ck_assert_uint_eq(r.sync_state, VMCLOCKD_SYNC_UNSYNCHRONIZED);
	ck_assert_uint_eq(r.bound_ns, first.bound_ns);
	ck_assert_uint_eq(r.bound_realtime_ns, first.bound_realtime_ns);
	ck_assert_uint_eq(r.drift_ppb, first.drift_ppb);
	chronyd.t = following;
	r = next_report();
	synchronised(r);
	ck_assert_uint_gt(r.bound_realtime_ns, first.bound_realtime_ns);
}
END_TEST

/* chronyd's figures are external input: a bound beyond any sane number of
 * seconds, or below zero, is unknown; a drift beyond the field, its
 * largest value. */
START_TEST(figures_out_of_range)
{
	CSY_Report r;

	chronyd.t.root_dispersion = 5e9;
	start();
	r = next_report();
	synchronised(r);
	ck_assert_uint_eq(r.bound_ns, VMCLOCKD_BOUND_UNKNOWN);
	ck_assert_uint_eq(r.drift_ppb, FOLLOWING_DRIFT_PPB);

	chronyd.t.root_dispersion = -1.0;
	r = next_report();
	ck_assert_uint_eq(r.bound_ns, VMCLOCKD_BOUND_UNKNOWN);

	chronyd.t.root_dispersion = following.root_dispersion;
	chronyd.t.skew_ppm = 5e6;
	r = next_report();
	ck_assert_uint_eq(r.bound_ns, FOLLOWING_BOUND_NS);
	ck_assert_uint_eq(r.drift_ppb, UINT32_MAX);
}
END_TEST

/* The module started on a chronyd at 50 ppm with CORRECTION, no skew or
 * residual frequency: its first report drifts at the whole frequency. */
static void start_at_50ppm(double correction)
{
	chronyd.t.freq_ppm = 50;
	chronyd.t.skew_ppm = 0;
	chronyd.t.resid_freq_ppm = 0;
	chronyd.t.current_correction = correction;
	start();
	ck_assert_uint_eq(next_report().drift_ppb, 1000u + 50000u);
}

/* The drift: the whole frequency until the correction was seen between
 * two reports of one epoch; then its growth rate if it grew, nothing if it
 * shrank; the frequency again after a disruption. */
START_TEST(drift_from_the_correction)
{
	CSY_Report r;

	start_at_50ppm(0x1p-11);

	/* A second more to correct within (much less than) ten seconds: a
	 * growth of over 0.1 s/s. */
	chronyd.t.current_correction = 1 + 0x1p-11;
	r = next_report();
	ck_assert_uint_ge(r.drift_ppb, 100000000u);

	chronyd.t.current_correction = 0x1p-11;
	r = next_report();
	ck_assert_uint_eq(r.drift_ppb, 1000u);

	dsr.disruptions = 1;
	dsr.handled_marker = 5;
	clock_gettime(CLOCK_MONOTONIC, &dsr.handled_at);
	r = next_report();
	synchronised(r);
	ck_assert_uint_eq(r.drift_ppb, 1000u + 50000u);
}
END_TEST

/* chronyd under -x: its correction moves by -frequency x time, as chrony's
 * driver for a clock it does not steer computes it, read as each request
 * arrives; ACCRUED is what its clock updates added. */
static uint64_t unsteered_t0;
static double accrued;

static void unsteered_now(void)
{
	double elapsed = (double)(now_ns(CLOCK_REALTIME) - unsteered_t0) * 1e-9;

	chronyd.t.current_correction = 0x1p-11 - chronyd.t.freq_ppm * 1e-6 * elapsed + accrued;
}

static CSY_Report next_unsteered(void)
{
	chronyd.on_request = unsteered_now;
	return next_report();
}

/* A clock chronyd does not steer drifts at chronyd's whole frequency once
 * two reports with no clock update between them showed it, also when a
 * later update took back more than half of the correction's motion (the
 * first sample after a handover made it grow slower than the clock moved:
 * a bound 68 ns short under -x); a pair that shows the correction shrinking
 * as chronyd slews it (a steered clock) drifts by chrony's statistics
 * only. */
START_TEST(drift_of_an_unsteered_clock)
{
	const double freq_ppm = -30, poll_s = 0.1;
	CSY_Report r;

	chronyd.t.freq_ppm = freq_ppm;
	chronyd.t.skew_ppm = 0;
	chronyd.t.resid_freq_ppm = 0;
	cfg.chrony_poll_ms = (unsigned)(poll_s * 1000);
	unsteered_t0 = now_ns(CLOCK_REALTIME);
	accrued = 0;
	start();
	r = next_unsteered();
	ck_assert_uint_eq(r.drift_ppb, 1000u + 30000u);
	/* No update between the two: unsteered. */
	r = next_unsteered();
	ck_assert_uint_ge(r.drift_ppb, 1000u + 30000u);
	ck_assert_uint_le(r.drift_ppb, 1000u + 45000u);

	/* A clock update takes back 60 % of a poll's motion: the correction
	 * grows at about 12 ppm until the next report. */
	chronyd.t.ref_time.tv_sec++;
	accrued -= 0.6 * -freq_ppm * 1e-6 * poll_s;
	r = next_unsteered();
	ck_assert_uint_ge(r.drift_ppb, 1000u + 30000u);
	ck_assert_uint_le(r.drift_ppb, 1000u + 45000u);

	/* Steered: with no update between two reports, chronyd slewed the
	 * correction to half. */
	chronyd.t.current_correction /= 2;
	r = next_report();
	ck_assert_uint_eq(r.drift_ppb, 1000u);
}
END_TEST

/* A chronyd that was away (or another one) is not compared with the last
 * one's correction: its first report drifts at its whole frequency. */
START_TEST(drift_after_chronyd_was_away)
{
	CSY_Report r;

	start_at_50ppm(0x1p-8);
	chronyd.t.current_correction = 0x1p-9;
	r = next_report();
	ck_assert_uint_eq(r.drift_ppb, 1000u);

	chronyd.mode = CHD_REFUSE;
	ck_assert(run_until(unknown));
	chronyd.mode = CHD_ANSWER;
	chronyd.t.current_correction = 0x1p-10;
	r = next_report();
	ck_assert_uint_eq(r.drift_ppb, 1000u + 50000u);
}
END_TEST

/* ---- disruptions ------------------------------------------------------------------ */

static void handled_now(void)
{
	dsr.handling = false;
	dsr.handled_marker = 2;
	clock_gettime(CLOCK_MONOTONIC, &dsr.handled_at);
}

/* A disruption is DISRUPTED from the tick that sees it being handled, and
 * stays so until a report requested after it was handled names a real
 * source: not the reply to a request in flight as it was handled, not a
 * report without a source. */
START_TEST(disrupted_until_resynchronised)
{
	CSY_Report r;

	start();
	synchronised(next_report());

	dsr.disruptions = 1;
	dsr.handling = true;
	CSY_Tick();
	ck_assert_uint_eq(CSY_GetReport()->sync_state, VMCLOCKD_SYNC_DISRUPTED);
	r = next_report();
	ck_assert_uint_eq(r.sync_state, VMCLOCKD_SYNC_DISRUPTED);

	/* Handled while the next request is on its way. */
	chronyd.on_request = handled_now;
	r = next_report();
	ck_assert(!dsr.handling);
	ck_assert_uint_eq(r.sync_state, VMCLOCKD_SYNC_DISRUPTED);

	chronyd.t.leap_status = CPR_LEAP_UNSYNCHRONISED;
	r = next_report();
	ck_assert_uint_eq(r.sync_state, VMCLOCKD_SYNC_DISRUPTED);

	chronyd.t = following;
	r = next_report();
	synchronised(r);
	ck_assert_uint_eq(r.bound_ns, FOLLOWING_BOUND_NS);
	/* The handled marker is the one chronyd resynchronised after. */
	r = next_report();
	synchronised(r);
}
END_TEST

/* The bound read before a disruption is not kept after it: chronyd without
 * a source then has no bound. */
START_TEST(bound_not_kept_across_disruption)
{
	CSY_Report r;

	start();
	synchronised(next_report());
	dsr.disruptions = 1;
	handled_now();
	chronyd.t.leap_status = CPR_LEAP_UNSYNCHRONISED;
	r = next_report();
	ck_assert_uint_eq(r.sync_state, VMCLOCKD_SYNC_DISRUPTED);
	ck_assert_uint_eq(r.bound_ns, VMCLOCKD_BOUND_UNKNOWN);
	ck_assert_uint_eq(r.drift_ppb, VMCLOCKD_DRIFT_UNKNOWN);
}
END_TEST

/* A disruption seen while the next poll is far off: chronyd is asked at the
 * burst interval from that tick on, not at the next slow poll. */
START_TEST(disruption_hurries_the_poll)
{
	cfg.chrony_poll_ms = SLOW_MS;
	start();
	synchronised(next_report());
	ck_assert_int_eq(chronyd.requests, 1);
	CSY_Tick(); /* nothing to hurry */
	dsr.disruptions = 1;
	dsr.handling = true;
	CSY_Tick();
	ck_assert_uint_eq(CSY_GetReport()->sync_state, VMCLOCKD_SYNC_DISRUPTED);
	want_requests = 2;
	ck_assert(run_until(have_requests));
}
END_TEST

/* ---- chronyd unavailable ------------------------------------------------------------ */

/* chronyd refusing: UNKNOWN until it answers again, from a fresh client
 * socket; the bound it gave before is not carried over its absence (it may
 * have set the clock as it came back). */
START_TEST(refused_then_back)
{
	char first_client[sizeof(chronyd.client)];
	CSY_Report r;

	start();
	synchronised(next_report());
	snprintf(first_client, sizeof(first_client), "%s", chronyd.client);
	chronyd.mode = CHD_REFUSE;
	ck_assert(run_until(unknown));
	ck_assert_int_eq(updates, 1);

	chronyd.mode = CHD_ANSWER;
	chronyd.t.leap_status = CPR_LEAP_UNSYNCHRONISED;
	r = next_report();
	ck_assert_uint_eq(r.sync_state, VMCLOCKD_SYNC_UNSYNCHRONIZED);
	ck_assert_uint_eq(r.bound_ns, VMCLOCKD_BOUND_UNKNOWN);
	ck_assert_str_ne(chronyd.client, first_client);
	ck_assert_int_ne(access(first_client, F_OK), 0);
}
END_TEST

/* chronyd's directory not there yet (no client can be bound next to its
 * socket): UNKNOWN, and asked once it is. */
START_TEST(directory_missing_then_made)
{
	char *sub = tp_path(dir, "run");

	CHD_Stop(&chronyd);
	snprintf(chronyd.path, sizeof(chronyd.path), "%s/run/chronyd.sock", dir);
	cfg.chrony_cmd = chronyd.path;
	start();
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_uint_eq(CSY_GetReport()->sync_state, VMCLOCKD_SYNC_UNKNOWN);
	ck_assert_int_eq(updates, 0);
	ck_assert_int_eq(mkdir(sub, 0755), 0);
	chronyd_start(&chronyd, "run/chronyd.sock");
	synchronised(next_report());
	free(sub);
}
END_TEST

/* Not asked at all without a command socket: nothing runs on the loop
 * (libevent says no event is pending or active), not even after a tick
 * during a disruption. */
START_TEST(not_asked)
{
	CHD_Stop(&chronyd);
	cfg.chrony_cmd = "";
	start();
	ck_assert_int_eq(event_base_loop(base, EVLOOP_NONBLOCK), 1);
	dsr.disruptions = 1;
	dsr.handling = true;
	CSY_Tick();
	ck_assert_int_eq(event_base_loop(base, EVLOOP_NONBLOCK), 1);
	ck_assert_uint_eq(CSY_GetReport()->sync_state, VMCLOCKD_SYNC_UNKNOWN);
	ck_assert(!CSY_GetReport()->have_bound);
}
END_TEST

/* ---- reloads ------------------------------------------------------------------------ */

START_TEST(reload)
{
	CNF_Settings fresh;

	cfg.chrony_poll_ms = SLOW_MS;
	start();
	synchronised(next_report());

	/* Nothing changed: nothing said. */
	fresh = cfg;
	CSY_Reconfigure(&fresh);
	cfg = fresh; /* as main.c replaces its settings */
	ck_assert_uint_eq(CSY_GetReport()->sync_state, VMCLOCKD_SYNC_SYNCHRONIZED);

	/* Another rate: asked now, not at the old rate's next poll. */
	fresh.chrony_poll_ms = SLOW_MS + 1;
	CSY_Reconfigure(&fresh);
	cfg = fresh;
	synchronised(next_report());
	ck_assert_int_eq(chronyd.requests, 2);

	/* Another socket: UNKNOWN at once, the other chronyd asked now. */
	chronyd_start(&chronyd2, "chronyd2.sock");
	fresh.chrony_cmd = chronyd2.path;
	CSY_Reconfigure(&fresh);
	cfg = fresh;
	ck_assert_uint_eq(CSY_GetReport()->sync_state, VMCLOCKD_SYNC_UNKNOWN);
	synchronised(next_report());
	ck_assert_int_eq(chronyd2.requests, 1);
	ck_assert_int_eq(chronyd.requests, 2);

	/* None: UNKNOWN; then the first again, asked now. */
	fresh.chrony_cmd = "";
	CSY_Reconfigure(&fresh);
	cfg = fresh;
	ck_assert_uint_eq(CSY_GetReport()->sync_state, VMCLOCKD_SYNC_UNKNOWN);
	fresh.chrony_cmd = chronyd.path;
	CSY_Reconfigure(&fresh);
	cfg = fresh;
	synchronised(next_report());
	ck_assert_int_eq(chronyd.requests, 3);
	ck_assert_int_eq(chronyd2.requests, 1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("chronysync");
	TCase *tc;

	tc = tcase_create("report");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, following_a_source);
	tcase_add_loop_test(tc, following_no_source, 0, sizeof(no_source) / sizeof(no_source[0]));
	tcase_add_test(tc, source_lost_bound_kept);
	tcase_add_test(tc, figures_out_of_range);
	tcase_add_test(tc, drift_from_the_correction);
	tcase_add_test(tc, drift_of_an_unsteered_clock);
	tcase_add_test(tc, drift_after_chronyd_was_away);
	tcase_add_test(tc, disrupted_until_resynchronised);
	tcase_add_test(tc, bound_not_kept_across_disruption);
	tcase_add_test(tc, disruption_hurries_the_poll);
	tcase_add_test(tc, refused_then_back);
	tcase_add_test(tc, directory_missing_then_made);
	tcase_add_test(tc, not_asked);
	tcase_add_test(tc, reload);
	suite_add_tcase(s, tc);

	/* The module's statics: a fresh process per test. */
	return CR_Run(s, CK_FORK);
}
