/* SPDX-License-Identifier: BSD-2-Clause
 *
 * check_handover.c - the handover module (daemon/handover.c) against a test
 * double of chronyd's command socket, driven through every interleaving of
 * faults and events over short sequences.
 *
 * The double speaks the real protocol (requests decoded, replies encoded
 * with chrony_proto's numbers and Float) and keeps a model of chronyd: its
 * frequency (a dfreq d scales the rate, (1 - f') = (1 - f)(1 - d), as chrony
 * does), its correction (doffset2 moves it; reset sources leaves it, as
 * chrony's only resets the source instances; it slews away while time
 * passes: halved whenever the module waits, in hold-off, backoff or settle,
 * so that a doffset computed from a correction read before a wait is
 * off), its clock (what the slew and makestep moved it by: the page's
 * offset the module reads is the migration's minus that), and a log of
 * what it applied.  makestep moves the whole correction into the clock
 * (less step_loss of it, what a kernel had not applied of the slew yet);
 * a chronyd that cannot step answers "failed", as 4.9 with -x does (the
 * correction kept), or as 4.3 does (the correction dropped, the clock not
 * moved).  Each request it receives gets the next fault of
 * the script; events in the script fire at the next point where the module
 * waits: when a request arrives (in flight) or when it enters hold-off,
 * backoff or settle.
 *
 *   OK       process, answer
 *   DELAY    process, answer after DELAY_MS (longer than the client waits)
 *   LOST     process, never answer
 *   REFUSE   answer "failed" without processing
 *   DROP     neither process nor answer
 *   REORDER  hold it until the next request arrives, process that one first
 *   RESTART  chronyd restarts on receipt: this request, held ones and
 *            answers not yet sent are lost, the sockets are bound anew, the
 *            correction is gone, the frequency survives (its drift file)
 *   RELOAD   SIGHUP with the same command socket path
 *   NEWPATH  SIGHUP naming another path to the same chronyd (the module's
 *            client is closed with whatever it has in flight)
 *   MARKER   a new disruption: the next counter period and offset
 *   CRASH    vmclockd dies (SIGKILL: no callback, no teardown) and starts
 *            again: a new module initialised from what was persisted (the
 *            record callback's last successful write, as storage.c keeps
 *            it in the marker record), against the same chronyd, whose frequency
 *            carries on.  Requests the dead one sent still land.
 *   LEARN    chronyd learns from samples: its frequency moves half of the
 *            way to the one right for the newest period, with no dfreq of
 *            the module's.  Samples are fed only while the module says so
 *            (HND_RetryWaiting, between failed rounds): until then the
 *            learning waits.
 *
 * Checked after each sequence, once everything has landed: the module says
 * it succeeded for the newest marker, chronyd's frequency is exactly the one
 * for the newest period, (1 - f) = (1 - f0) * P_newest / P0 (each
 * migration's change reached it once, composed onto the frequency it had
 * then; without LEARN the product of the (1 - dfreq) it applied equals the
 * ratio of periods: no dfreq twice, none missing, none against the wrong
 * period), the module's own belief is P_newest, and, unless chronyd
 * restarted after the last doffset, the migration's time change reached
 * chronyd exactly once: its clock plus the correction it has yet to apply is
 * the newest offset (each doffset was computed from the correction as it was
 * then, not from one read before a wait; a makestep that failed or was lost
 * is made good).  When the module was asked to step and chronyd can:
 * nothing is left to slew (the clock is right at once, within
 * HND_MIN_STEP_S of the page even when the kernel lost part of a step), and
 * no more makesteps of more than HND_MIN_STEP_S than HND_MAX_STEPS per
 * migration.
 *
 * The "crash" suite puts a CRASH at every point of a handover (each request
 * as it arrives, before chronyd processes it, with each fault on it: the
 * tracking, reset, tracking, dfreq, tracking, doffset, tracking, makestep,
 * and the tracking read that checks what the step left) and
 * checks the same truth: the dfreqs chronyd applied over both lives compose
 * to the true change, once.  The write-ahead failing (a full disk) must
 * delay the dfreq, never send one unrecorded.  Checked too after every
 * sequence: no dfreq reached chronyd without a record of it on the disk,
 * and the disk ends with the newest period and nothing in doubt.
 *
 * Suites: "exhaustive" runs every sequence of SEQ_LEN events (12^3) from
 * the first request (check_machine.c runs the machine alone, deeper and
 * with the faults on every later request, a lossy step's too); "walk"
 * runs WALK_RUNS random sequences of 4 to 8 events from a printed seed
 * (HND_TEST_SEED=<n> repeats it), "walk-rounds" as many with rounds of two
 * tries and two refusals then LEARN somewhere, so that a round fails,
 * samples are fed and LEARN moves chronyd's frequency; plus flapping
 * markers and a page without time.  A failure prints its sequence; HND_TEST_SCRIPT="OK DELAY ..." runs
 * just that one (HND_TEST_VERBOSE=1 shows the module's log).
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <event2/event.h>

#include "../daemon/chrony_proto.h"
#include "../daemon/evbase.h"
#include "../daemon/hnd_driver.h"
#include "../daemon/log.h"
#include "checkrun.h"

enum {
	OK, DELAY, LOST, REFUSE, DROP, REORDER, RESTART, RELOAD, NEWPATH, MARKER, CRASH, LEARN,
	N_EVENTS
};
static const char *const event_names[N_EVENTS] = {
	"OK", "DELAY", "LOST", "REFUSE", "DROP", "REORDER", "RESTART", "RELOAD", "NEWPATH", "MARKER",
	"CRASH", "LEARN",
};
#define N_EXHAUSTIVE (N_EVENTS * N_EVENTS * N_EVENTS) /* N_EVENTS^SEQ_LEN */
/* The crash suite: a CRASH as one of the first CRASH_REQUESTS requests
 * arrives (the handover's tracking, reset, tracking again, dfreq, tracking,
 * doffset, tracking, makestep, tracking; or after it is done), times a
 * fault on that request (OK..RESTART), times any event after. */
#define CRASH_REQUESTS 10
#define CRASH_FAULTS (RESTART + 1)
#define N_CRASH_POINTS (CRASH_REQUESTS * CRASH_FAULTS * N_EVENTS)

#define SEQ_LEN 3
#define MAX_SEQ 8
#define WALK_RUNS 200
#define DELAY_MS 30
#define MAX_MARKERS 12
#define F0_PPM 12.5

static const HND_Timing fast = {
	.timeout_ms = 4,
	.tries = 3,
	.max_failures = 2 * MAX_SEQ + 2,
	.first_backoff_ms = 2,
	.settle_ms = 40, /* > DELAY_MS: a delayed request has landed by then */
	.holdoff_ms = 10,
	.max_holdoff_ms = 80,
};

static unsigned int seed;

/* ---- the double ---------------------------------------------------------- */

typedef struct {
	int sock; /* which of the two paths */
	uint8_t data[CPR_MAX_REQUEST_LEN];
	size_t len;
	struct sockaddr_un from;
	socklen_t fromlen;
} Req;

typedef struct Reply {
	struct event *ev;
	int sock;
	uint8_t data[CPR_MAX_REPLY_LEN];
	size_t len;
	struct sockaddr_un from;
	socklen_t fromlen;
	unsigned incarnation;
} Reply;

typedef struct {
	struct event_base *base;
	char dir[64];
	char path[2][96];
	int fd[2];
	struct event *ev[2];
	unsigned incarnation;
	int use_path; /* which path the module was last given */

	const int *script;
	int len, pos;
	struct event *fire_ev;

	/* chronyd's state */
	double freq;       /* ppm */
	double correction; /* s, > 0: the clock is behind */
	double moved;      /* s: what slews and steps moved the clock by */
	int step_mode;     /* STEP_OK, STEP_KEEPS (4.9 -x), STEP_DROPS (4.3 -x) */
	bool no_step;      /* targets say step = false */
	double step_loss;  /* the part of each makestep the clock does not move */
	int steps, big_steps, step_refusals;
	int retry_waits, done_at_retry_wait; /* waits after a failed round */
	int resets, dfreqs, doffsets, restarts, received;
	double product;    /* of (1 - dfreq) applied */
	double learn_keep; /* LEARN keeps this part of the frequency's error */
	int learn_pending; /* LEARN events waiting for samples to be fed */
	int learned;       /* LEARN events that moved the frequency */
	bool restart_after_doffset;
	bool have_held;
	Req held;
	Reply *delayed[64];
	int n_delayed;

	/* the disruption the test plays */
	int markers;
	HND_Period period[MAX_MARKERS + 1];
	double offset[MAX_MARKERS + 1];
	/* the page's answers to the doffset's offset read: first `retries`
	 * RETRY, then SKIP if skip, else OK (SKIP too for another marker than
	 * the newest, as the sampler answers) */
	int retries;
	bool skip;
	uint64_t page_marker; /* the marker the page shows */
	int offset_reads;
	int done_calls;
	HND_Report last;
	char trace[512];

	/* vmclockd's marker record, as disrupt.c keeps it: the handled marker,
	 * the period chronyd is right for, a dfreq in doubt. */
	uint64_t disk_marker;
	HND_Period disk_period;
	HND_Dfreq disk_doubt;
	HND_Anchor disk_anchor;
	int disk_full;       /* the next n writes fail (ENOSPC); < 0: all */
	int records, record_failures, crashes;
	int dfreqs_while_unrecorded; /* dfreqs received with no record on disk */
} Double;

static Double D;

enum { STEP_OK, STEP_KEEPS, STEP_DROPS };

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void trace(const char *s, const char *end)
{
	size_t n = strlen(D.trace);

	if (n + 40 < sizeof(D.trace))
		snprintf(D.trace + n, sizeof(D.trace) - n, "%s%s", s, end);
}

static void send_reply(int sock, const Req *q, const uint8_t *buf, size_t len)
{
	sendto(D.fd[sock], buf, len, 0, (const struct sockaddr *)&q->from, q->fromlen);
}

static void delayed_cb(evutil_socket_t fd, short what, void *arg)
{
	Reply *r = arg;

	if (r->incarnation == D.incarnation)
		sendto(D.fd[r->sock], r->data, r->len, 0, (struct sockaddr *)&r->from, r->fromlen);
	r->len = 0; /* sent or lost */
}

/* chronyd's answer: header (and tracking) per the protocol. */
static size_t make_answer(const Req *q, uint16_t status, uint8_t *out)
{
	uint16_t cmd = rd16(q->data + 4);
	size_t len = CPR_REPLY_HEADER_LEN;

	memset(out, 0, CPR_MAX_REPLY_LEN);
	out[0] = CPR_PROTO_VERSION;
	out[1] = CPR_PKT_REPLY;
	wr16(out + 4, cmd);
	wr16(out + 6, CPR_RPY_NULL);
	wr16(out + 8, status);
	memcpy(out + 16, q->data + 8, 4); /* sequence */
	if (status == CPR_STT_SUCCESS && cmd == CPR_REQ_TRACKING) {
		wr16(out + 6, CPR_RPY_TRACKING);
		wr32(out + 28, 0x564d4300);
		wr16(out + 54, CPR_LEAP_UNSYNCHRONISED);
		wr32(out + 56, 0x7fffffffu);
		wr32(out + 68, CPR_FloatEncode(D.correction));
		wr32(out + 80, CPR_FloatEncode(D.freq));
		len = CPR_TRACKING_REPLY_LEN;
	}
	return len;
}

/* Apply a request to chronyd's state; the answer goes to *out. */
static size_t process(const Req *q, uint8_t *out)
{
	uint16_t cmd = rd16(q->data + 4);
	double v = CPR_FloatDecode(rd32(q->data + 20));
	uint16_t status = CPR_STT_SUCCESS;

	switch (cmd) {
	case CPR_REQ_RESET_SOURCES:
		D.resets++;
		break;
	case CPR_REQ_DFREQ:
		if (!D.disk_doubt.valid || D.disk_doubt.dfreq_ppm != v)
			D.dfreqs_while_unrecorded++;
		D.freq += v * (1.0 - D.freq * 1e-6);
		D.product *= 1.0 - v * 1e-6;
		D.dfreqs++;
		break;
	case CPR_REQ_DOFFSET2:
		D.correction -= v;
		D.doffsets++;
		D.restart_after_doffset = false;
		break;
	case CPR_REQ_BURST:
		status = CPR_STT_NOSUCHSOURCE;
		break;
	case CPR_REQ_MAKESTEP:
		if (D.step_mode != STEP_OK) {
			D.step_refusals++;
			if (D.step_mode == STEP_DROPS)
				D.correction = 0.0;
			status = CPR_STT_FAILED;
			break;
		}
		D.steps++;
		D.big_steps += fabs(D.correction) > HND_MIN_STEP_S;
		D.moved += D.correction * (1.0 - D.step_loss);
		D.correction = 0.0;
		break;
	default:
		break;
	}
	return make_answer(q, status, out);
}

static void answer_now(const Req *q)
{
	uint8_t out[CPR_MAX_REPLY_LEN];
	size_t len = process(q, out);

	send_reply(q->sock, q, out, len);
}

static void bind_sockets(void);
static void close_sockets(void);
static void crash(void);

static void restart(void)
{
	D.incarnation++; /* answers not yet sent are lost */
	D.have_held = false;
	D.correction = 0.0;
	D.restarts++;
	D.restart_after_doffset = true;
	close_sockets(); /* with whatever is queued in them */
	bind_sockets();
}

static void new_marker(void)
{
	HND_Target t;

	if (D.markers >= MAX_MARKERS)
		return;
	D.markers++;
	memset(&t, 0, sizeof(t));
	t.marker = (uint64_t)D.markers;
	D.page_marker = t.marker;
	t.old_period = D.period[D.markers - 1]; /* what an idle daemon knows */
	t.new_period = D.period[D.markers];
	t.has_time = true;
	t.step = !D.no_step;
	HDR_Start(&t);
}

/* chronyd's frequency when right for the newest period. */
static double true_freq(void)
{
	HND_Period newest = D.period[D.markers];
	double ratio = ldexp((double)newest.frac, D.period[0].shift - newest.shift) /
		       (double)D.period[0].frac;

	return 1e6 - (1e6 - F0_PPM) * ratio;
}

/* What LEARN events are due, once samples are fed. */
static void learn(void)
{
	for (; D.learn_pending > 0 && HDR_RetryWaiting(); D.learn_pending--) {
		D.learned++;
		D.freq = true_freq() + (D.freq - true_freq()) * D.learn_keep;
	}
}

/* Fire the events due at this point of the script. */
static void fire_events(void)
{
	while (D.pos < D.len && D.script[D.pos] >= RELOAD) {
		int e = D.script[D.pos++];

		trace(event_names[e], " ");
		if (e == RELOAD) {
			ck_assert_int_eq(HDR_Reconfigure(D.path[D.use_path]), 0);
		} else if (e == NEWPATH) {
			D.use_path ^= 1;
			ck_assert_int_eq(HDR_Reconfigure(D.path[D.use_path]), 0);
		} else if (e == CRASH) {
			crash();
		} else if (e == MARKER) {
			new_marker();
		} else {
			D.learn_pending++;
			learn();
		}
	}
}

static void fire_cb(evutil_socket_t fd, short what, void *arg)
{
	fire_events();
}

static void handle(const Req *q)
{
	int fault = OK;
	bool release = false;
	Req held;

	D.received++;
	fire_events();
	if (D.pos < D.len)
		fault = D.script[D.pos++];
	trace(event_names[fault], "");
	trace(rd16(q->data + 4) == CPR_REQ_DFREQ      ? "dfreq"
		       : rd16(q->data + 4) == CPR_REQ_DOFFSET2 ? "doffset"
		       : rd16(q->data + 4) == CPR_REQ_TRACKING ? "tracking"
		       : rd16(q->data + 4) == CPR_REQ_BURST    ? "burst"
		       : rd16(q->data + 4) == CPR_REQ_MAKESTEP ? "makestep"
							       : "reset", " ");

	if (D.have_held && fault != RESTART) {
		/* The request that overtook the held one goes first. */
		held = D.held;
		D.have_held = false;
		release = true;
		if (fault == REORDER)
			fault = OK;
	}

	switch (fault) {
	case OK:
		answer_now(q);
		break;
	case DELAY: {
		Reply *r = calloc(1, sizeof(*r));
		struct timeval tv = { 0, DELAY_MS * 1000 };

		r->len = process(q, r->data);
		r->sock = q->sock;
		r->from = q->from;
		r->fromlen = q->fromlen;
		r->incarnation = D.incarnation;
		r->ev = evtimer_new(D.base, delayed_cb, r);
		evtimer_add(r->ev, &tv);
		ck_assert_int_lt(D.n_delayed, 64);
		D.delayed[D.n_delayed++] = r;
		break;
	}
	case LOST: {
		uint8_t out[CPR_MAX_REPLY_LEN];

		(void)process(q, out);
		break;
	}
	case REFUSE: {
		uint8_t out[CPR_MAX_REPLY_LEN];

		D.step_refusals += rd16(q->data + 4) == CPR_REQ_MAKESTEP;
		send_reply(q->sock, q, out, make_answer(q, CPR_STT_FAILED, out));
		break;
	}
	case DROP:
		break;
	case REORDER:
		D.held = *q;
		D.have_held = true;
		break;
	case RESTART:
		restart();
		break;
	}
	if (release)
		answer_now(&held);
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
	Req q;
	ssize_t n;

	memset(&q, 0, sizeof(q));
	q.sock = (int)(intptr_t)arg;
	q.fromlen = sizeof(q.from);
	n = recvfrom(fd, q.data, sizeof(q.data), 0, (struct sockaddr *)&q.from, &q.fromlen);
	if (n < CPR_REQUEST_HEADER_LEN || q.data[1] != CPR_PKT_REQUEST)
		return;
	q.len = (size_t)n;
	handle(&q);
}

static void bind_sockets(void)
{
	for (int i = 0; i < 2; i++) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		strcpy(sa.sun_path, D.path[i]);
		unlink(D.path[i]);
		D.fd[i] = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		ck_assert_int_ge(D.fd[i], 0);
		ck_assert_int_eq(bind(D.fd[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
		D.ev[i] = event_new(D.base, D.fd[i], EV_READ | EV_PERSIST, read_cb, (void *)(intptr_t)i);
		event_add(D.ev[i], NULL);
	}
}

static void close_sockets(void)
{
	for (int i = 0; i < 2; i++) {
		event_free(D.ev[i]);
		close(D.fd[i]);
		unlink(D.path[i]);
	}
}

/* ---- the module's side --------------------------------------------------- */

static HND_OffsetAnswer offset_now(uint64_t marker, double *o)
{
	D.offset_reads++;
	if (D.retries > 0) {
		D.retries--;
		return HND_OFFSET_RETRY;
	}
	if (D.skip || marker != D.page_marker)
		return HND_OFFSET_SKIP;
	*o = D.offset[D.markers] - D.moved;
	return HND_OFFSET_OK;
}

/* The caller's code for a skipped doffset, handed back in the report. */
#define SKIP_REASON 42

/* The next tick's sample, at once. */
static void measure_cb(uint64_t marker, void *arg)
{
	double o = 0.0;
	HND_OffsetAnswer a = offset_now(marker, &o);

	HDR_Offset(a, o, a == HND_OFFSET_SKIP ? SKIP_REASON : 0);
}

static int record_cb(const HND_Record *rec, void *arg)
{
	if (D.disk_full != 0) {
		if (D.disk_full > 0)
			D.disk_full--;
		D.record_failures++;
		return -ENOSPC;
	}
	D.records++;
	D.disk_period = rec->chrony_period;
	D.disk_doubt = rec->in_doubt;
	D.disk_anchor = rec->anchor;
	return 0;
}

static void done_cb(const HND_Report *r, void *arg)
{
	D.done_calls++;
	D.last = *r;
	/* disrupt.c's finish(): the marker handled, the target's period, the
	 * record superseded. */
	if (r->marker <= MAX_MARKERS) {
		D.disk_marker = r->marker;
		D.disk_period = D.period[r->marker];
		D.disk_doubt.valid = false;
		D.disk_anchor.valid = false;
	}
	/* Faults that found no request of this handover are dropped; the
	 * events after them happen after it. */
	while (D.pos < D.len && D.script[D.pos] < RELOAD)
		D.pos++;
	event_active(D.fire_ev, EV_TIMEOUT, 0);
}

static void waiting_cb(HND_State s, void *arg)
{
	if (s == HND_HOLDOFF || s == HND_BACKOFF || s == HND_SETTLE) {
		/* Time passes: chronyd slews half of its correction away. */
		D.moved += D.correction * 0.5;
		D.correction *= 0.5;
		event_active(D.fire_ev, EV_TIMEOUT, 0);
	}
	if (HDR_RetryWaiting()) {
		D.retry_waits++;
		D.done_at_retry_wait += D.done_calls;
		learn();
	}
}

static HND_Period scaled(HND_Period p, double ppm)
{
	p.frac = (uint64_t)((double)p.frac * (1.0 + ppm * 1e-6));
	return p;
}

static const HDR_Callbacks module_cbs = {
	.measure = measure_cb, .done = done_cb, .record = record_cb, .waiting = waiting_cb,
};

/* vmclockd killed and started again: what it had in memory is gone (its
 * timers, its client, replies on their way to it); it starts from the state
 * file, and hands the newest marker over if that is not the handled one or
 * a dfreq is in doubt (disrupt.c's first page). */
static void crash(void)
{
	D.crashes++;
	HDR_Finalise();
	ck_assert_int_eq(HDR_Initialise(D.base, D.path[D.use_path], &fast, &module_cbs), 0);
	if (D.disk_marker != (uint64_t)D.markers || D.disk_doubt.valid) {
		HND_Target t = {
			.marker = (uint64_t)D.markers, .old_period = D.disk_period,
			.new_period = D.period[D.markers], .has_time = true,
			.step = !D.no_step, .in_doubt = D.disk_doubt, .anchor = D.disk_anchor,
		};

		HDR_Start(&t);
	} else {
		/* Nothing to hand over: faults left find no request, the
		 * events after them happen now. */
		while (D.pos < D.len && D.script[D.pos] < RELOAD)
			D.pos++;
		event_active(D.fire_ev, EV_TIMEOUT, 0);
	}
}

static void setup(const int *script, int len)
{
	static const double change_ppm[MAX_MARKERS] = { 30.0, -17.25, 4.5, -60.0, 11.0, -3.0,
							 25.0, -8.0, 2.0, -1.0, 50.0, -40.0 };
	memset(&D, 0, sizeof(D));
	D.script = script;
	D.len = len;
	D.base = EVB_New();
	strcpy(D.dir, "/tmp/check_handover.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(D.dir));
	snprintf(D.path[0], sizeof(D.path[0]), "%s/chronyd.sock", D.dir);
	snprintf(D.path[1], sizeof(D.path[1]), "%s/chronyd-2.sock", D.dir);
	bind_sockets();
	D.fire_ev = event_new(D.base, -1, 0, fire_cb, NULL);
	D.freq = F0_PPM;
	D.correction = 0.0123;
	D.product = 1.0;
	D.learn_keep = 0.5;
	D.period[0] = (HND_Period){ true, UINT64_C(0x4000000000000000), 2 };
	D.offset[0] = 0.0;
	for (int i = 1; i <= MAX_MARKERS; i++) {
		D.period[i] = scaled(D.period[i - 1], change_ppm[i - 1]);
		D.offset[i] = 0.001 * i * (i & 1 ? 1 : -1);
	}
	D.disk_marker = 0;
	D.disk_period = D.period[0];
	ck_assert_int_eq(HDR_Initialise(D.base, D.path[0], &fast, &module_cbs), 0);
}

/* setup() with rounds of MAX_FAILURES tries (0: fast's). */
static void setup_rounds(const int *script, int len, int max_failures)
{
	HND_Timing few = fast;

	setup(script, len);
	if (max_failures > 0) {
		few.max_failures = max_failures;
		HDR_Finalise();
		ck_assert_int_eq(HDR_Initialise(D.base, D.path[0], &few, &module_cbs), 0);
	}
}

static bool landed(void)
{
	if (D.have_held)
		return false;
	for (int i = 0; i < D.n_delayed; i++)
		if (D.delayed[i]->len)
			return false;
	return true;
}

static int externals_left(void)
{
	int n = 0;

	for (int i = D.pos; i < D.len; i++)
		n += D.script[i] >= RELOAD;
	return n;
}

static void run(void)
{
	struct timespec t0, now;

	new_marker();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		/* Faults left over found no request to apply to. */
		if (!HDR_Busy() && !externals_left() && landed() && D.done_calls > 0)
			break;
		/* A request held back with nothing after it lands at last, late:
		 * the module must have allowed for that too. */
		if (!HDR_Busy() && !externals_left() && D.done_calls > 0 && D.have_held) {
			Req late = D.held;

			D.have_held = false;
			trace("late", " ");
			answer_now(&late);
			continue;
		}
		event_base_loop(D.base, EVLOOP_ONCE);
		clock_gettime(CLOCK_MONOTONIC, &now);
		ck_assert_msg(now.tv_sec - t0.tv_sec < 20, "no end after 20 s: %s", D.trace);
	}
}

static void teardown(void)
{
	HDR_Finalise();
	for (int i = 0; i < D.n_delayed; i++) {
		event_free(D.delayed[i]->ev);
		free(D.delayed[i]);
	}
	event_free(D.fire_ev);
	close_sockets();
	rmdir(D.dir);
	event_base_free(D.base);
}

/* The newest migration's time change reached chronyd once: its clock
 * plus what it has yet to slew is the page's offset; stepped when asked
 * and chronyd could, at most one large step per migration. */
static void check_time_once(void)
{
	if (D.restart_after_doffset)
		return; /* the correction is gone with chronyd's restart */
	ck_assert_msg(fabs(D.moved + D.correction - D.offset[D.markers]) <=
			      (D.step_loss > 0 ? HND_MIN_STEP_S : 1e-9),
		      "%s: chronyd's clock moved %.12f s and will slew %.12f s, the migration "
		      "was %.12f s", D.trace, D.moved, D.correction, D.offset[D.markers]);
	ck_assert_msg(D.big_steps <= D.markers * HND_MAX_STEPS, "%s: %d makesteps for %d "
		      "migrations", D.trace, D.big_steps, D.markers);
	if (!D.no_step && D.step_refusals == 0)
		ck_assert_msg(fabs(D.correction) <= HND_MIN_STEP_S,
			      "%s: %.12f s left to slew, not stepped", D.trace, D.correction);
	if (D.no_step)
		ck_assert_int_eq(D.steps, 0);
}

static void check_truth(void)
{
	HND_Period newest = D.period[D.markers];
	double ratio = ldexp((double)newest.frac, D.period[0].shift - newest.shift) /
		       (double)D.period[0].frac;
	double want = true_freq();
	/* chrony's Float carries each dfreq, and each frequency read back, to
	 * 24 bits. */
	double tol = 1e-7 * (D.dfreqs + 1) * 60.0;

	ck_assert_msg(D.last.ok, "%s: handover failed (%s at %s)", D.trace, D.last.reason,
		      HND_StepName(D.last.failed_step));
	ck_assert_msg(D.last.marker == (uint64_t)D.markers, "%s: reported marker %llu, newest %d",
		      D.trace, (unsigned long long)D.last.marker, D.markers);
	ck_assert_msg(fabs(D.freq - want) <= tol,
		      "%s: chronyd's frequency %.9f ppm, want %.9f (%d dfreq applied, product %.12f, "
		      "ratio %.12f)", D.trace, D.freq, want, D.dfreqs, D.product, ratio);
	if (!D.learned)
		ck_assert_msg(fabs(D.product - ratio) <= tol * 1e-6, "%s: product %.12f, ratio %.12f",
			      D.trace, D.product, ratio);
	ck_assert_msg(D.last.chrony_period.valid && D.last.chrony_period.frac == newest.frac,
		      "%s: the module believes another period", D.trace);
	ck_assert_msg(D.dfreqs_while_unrecorded == 0, "%s: %d dfreq reached chronyd unrecorded",
		      D.trace, D.dfreqs_while_unrecorded);
	/* What a restart now would start from: the newest period, nothing in
	 * doubt. */
	ck_assert_msg(D.disk_period.valid && D.disk_period.frac == newest.frac && !D.disk_doubt.valid,
		      "%s: the marker record holds another period, or a dfreq in doubt", D.trace);
	check_time_once();
}

static void run_script(const int *script, int len)
{
	setup(script, len);
	run();
	check_truth();
	teardown();
}

START_TEST(exhaustive)
{
	int script[SEQ_LEN], n = _i;

	for (int k = 0; k < SEQ_LEN; k++) {
		script[k] = n % N_EVENTS;
		n /= N_EVENTS;
	}
	run_script(script, SEQ_LEN);
}
END_TEST

/* Random sequences; with rounds of MAX_FAILURES tries (0: fast's), two
 * refusals and a LEARN somewhere among them: a round fails there, and
 * chronyd learns while the handover waits. */
static void walk_with(unsigned int s, int max_failures)
{
	int script[MAX_SEQ], len, at;

	len = 4 + (int)(rand_r(&s) % (MAX_SEQ - 3));
	for (int k = 0; k < len; k++)
		script[k] = (int)(rand_r(&s) % N_EVENTS);
	if (max_failures > 0) {
		at = (int)(rand_r(&s) % (unsigned int)(len - 2));
		script[at] = REFUSE;
		script[at + 1] = REFUSE;
		script[at + 2] = LEARN;
	}
	setup_rounds(script, len, max_failures);
	run();
	check_truth();
	teardown();
}

START_TEST(walk)
{
	walk_with(seed + (unsigned int)_i, 0);
}
END_TEST

/* The same with rounds of two tries and a round that fails: samples are
 * fed between rounds, and LEARN moves chronyd's frequency. */
START_TEST(walk_rounds)
{
	walk_with(seed + WALK_RUNS + (unsigned int)_i, 2);
}
END_TEST

/* vmclockd dies at every point of the handover and starts again. */
START_TEST(crash_points)
{
	int script[CRASH_REQUESTS + 3], len = 0, n = _i;
	int p = n % CRASH_REQUESTS, f = n / CRASH_REQUESTS % CRASH_FAULTS;
	int g = n / (CRASH_REQUESTS * CRASH_FAULTS);

	for (int k = 0; k < p; k++)
		script[len++] = OK;
	script[len++] = CRASH;
	script[len++] = f;
	script[len++] = g;
	run_script(script, len);
}
END_TEST

/* The hole: chronyd applied the dfreq (the fourth request: tracking, reset,
 * tracking, dfreq), vmclockd died before its answer. */
START_TEST(crash_dfreq_applied_unanswered)
{
	static const int script[] = { OK, OK, OK, CRASH, LOST };

	run_script(script, 5);
	ck_assert_int_eq(D.crashes, 1);
	ck_assert_int_eq(D.dfreqs, 1);
	ck_assert_int_eq(D.done_calls, 1);
	ck_assert_int_eq(D.last.doubt, HND_DOUBT_APPLIED);
}
END_TEST

/* The other window: recorded, then vmclockd died before it was sent. */
START_TEST(crash_dfreq_recorded_not_sent)
{
	static const int script[] = { OK, OK, OK, CRASH, DROP };

	run_script(script, 5);
	ck_assert_int_eq(D.crashes, 1);
	ck_assert_int_eq(D.dfreqs, 1);
	ck_assert_int_eq(D.last.doubt, HND_DOUBT_NOT_APPLIED);
}
END_TEST

/* Twice: the restarted one dies too while the first dfreq is in doubt. */
START_TEST(crash_twice_while_in_doubt)
{
	static const int script[] = { OK, OK, OK, CRASH, LOST, OK, CRASH, LOST };

	run_script(script, 8);
	ck_assert_int_eq(D.crashes, 2);
	ck_assert_int_eq(D.dfreqs, 1);
	ck_assert_int_eq(D.last.doubt, HND_DOUBT_APPLIED);
}
END_TEST

/* The write-ahead fails twice (a full disk): no dfreq goes out unrecorded,
 * the third try sends it. */
START_TEST(record_failing_delays_dfreq)
{
	int script[1] = { OK };

	setup(script, 0);
	D.disk_full = 2;
	run();
	check_truth();
	ck_assert_int_eq(D.record_failures, 2);
	ck_assert_int_eq(D.dfreqs, 1);
	ck_assert_int_ge(D.last.failures, 2);
	teardown();
}
END_TEST

/* The write-ahead never succeeds: at the last try the handover goes on
 * without the dfreq (chronyd reset and stepped), and chronyd never got one. */
START_TEST(record_failing_never_sends)
{
	int script[1] = { OK };

	setup_rounds(script, 0, 4);
	D.disk_full = -1;
	run();
	ck_assert(D.last.ok);
	ck_assert(D.last.dfreq_unrecorded);
	/* Each write-ahead of the round, and the handled marker's record. */
	ck_assert_int_eq(D.record_failures, 5);
	ck_assert_int_eq(D.dfreqs, 0);
	ck_assert_int_eq(D.last.dfreqs, 0);
	ck_assert_int_eq(D.resets, 1);
	ck_assert_int_eq(D.doffsets, 1);
	/* chronyd's frequency is still right for the old period. */
	ck_assert(D.last.chrony_period.valid && D.last.chrony_period.frac == D.period[0].frac);
	teardown();
}
END_TEST

/* chronyd refuses every reset of a round (chrony < 4.0 has no reset
 * sources; or it is wedged): the handover is not done and not reported, it
 * waits at the hold-off cadence and tries again; once chronyd answers it
 * completes, with exactly one dfreq. */
START_TEST(round_failed_then_success)
{
	static const int script[] = { OK, REFUSE, REFUSE, REFUSE, REFUSE, REFUSE, REFUSE };

	setup_rounds(script, 7, 3);
	run();
	check_truth();
	ck_assert_int_eq(D.done_calls, 1);
	ck_assert_int_eq(D.last.failed_rounds, 2);
	ck_assert_int_ge(D.retry_waits, 2);
	ck_assert_int_eq(D.done_at_retry_wait, 0); /* not reported while failing */
	ck_assert_int_eq(D.resets, 1);
	ck_assert_int_eq(D.dfreqs, 1);
	ck_assert_int_eq(D.doffsets, 1);
	ck_assert_int_eq(D.disk_marker, 1);
	teardown();
}
END_TEST

/* A dfreq refused for a whole round, then applied: once, and the period
 * chronyd is right for moves only then. */
START_TEST(dfreq_refused_round_then_applied)
{
	static const int script[] = { OK, OK, OK, REFUSE, REFUSE, REFUSE };

	setup_rounds(script, 6, 3);
	run();
	check_truth();
	ck_assert_int_eq(D.last.failed_rounds, 1);
	ck_assert_int_ge(D.retry_waits, 1);
	ck_assert_int_eq(D.done_at_retry_wait, 0);
	ck_assert_int_eq(D.dfreqs, 1);
	teardown();
}
END_TEST

/* Rounds that fail before chronyd's frequency could be read (every
 * tracking request refused): no samples are fed while the handover waits
 * (what chronyd learned could not be told from what it had), and once
 * chronyd answers the handover completes with the whole change. */
START_TEST(round_failed_before_frequency_read)
{
	static const int script[] = { REFUSE, REFUSE, REFUSE, REFUSE, REFUSE, REFUSE, LEARN };

	setup_rounds(script, 7, 3);
	run();
	check_truth();
	ck_assert_int_eq(D.last.failed_rounds, 2);
	ck_assert_int_eq(D.retry_waits, 0);
	ck_assert_int_eq(D.learned, 0);
	ck_assert_int_eq(D.dfreqs, 1);
	teardown();
}
END_TEST

/* The dfreq refused for a whole round; while the handover waits, samples
 * are fed and chronyd learns the new frequency from them (all of it: LEARN
 * with nothing kept).  The round that succeeds reads chronyd's frequency
 * again and sends no dfreq: the change is there already. */
static void refused_round_then_learned(double keep, int script_len)
{
	static const int script[] = { OK, OK, OK, REFUSE, REFUSE, REFUSE, LEARN, LEARN };

	setup_rounds(script, script_len, 3);
	D.learn_keep = keep;
	run();
	check_truth();
	ck_assert_int_eq(D.last.failed_rounds, 1);
	ck_assert_int_ge(D.learned, 1);
}

START_TEST(dfreq_refused_round_then_learned)
{
	refused_round_then_learned(0.0, 7);
	ck_assert_int_eq(D.dfreqs, 0);
	ck_assert_int_eq(D.doffsets, 1);
	teardown();
}
END_TEST

/* The same with chronyd three quarters of the way there: one dfreq, the
 * rest of the change, composed onto the frequency chronyd has now. */
START_TEST(dfreq_refused_round_then_half_learned)
{
	refused_round_then_learned(0.5, 8);
	ck_assert_int_eq(D.learned, 2);
	ck_assert_int_eq(D.dfreqs, 1);
	teardown();
}
END_TEST

/* chronyd not running when the disruption comes, started later: the
 * handover waits for it (not reported as done meanwhile), then resets and
 * steps it without a dfreq (its frequency is its drift file's, right for a
 * period not known), and says the period is unknown. */
START_TEST(chronyd_absent_then_present)
{
	int script[1] = { OK };

	setup(script, 0);
	close_sockets();
	new_marker();
	while (D.retry_waits < 3 && D.done_calls == 0)
		event_base_loop(D.base, EVLOOP_ONCE);
	ck_assert_int_eq(D.done_calls, 0);
	ck_assert(HDR_Busy());
	ck_assert(!D.disk_period.valid); /* a restart now composes no dfreq */
	bind_sockets();
	while (D.done_calls == 0)
		event_base_loop(D.base, EVLOOP_ONCE);
	ck_assert(D.last.ok);
	ck_assert(D.last.chronyd_absent);
	ck_assert(!D.last.chrony_period.valid);
	ck_assert_int_eq(D.resets, 1);
	ck_assert_int_eq(D.dfreqs, 0);
	ck_assert_int_eq(D.doffsets, 1);
	check_time_once();
	teardown();
}
END_TEST

/* A dfreq refused once: the backoff before it is sent again lets chronyd
 * slew; the doffset must use the correction read after that, not before. */
START_TEST(stale_correction)
{
	static const int script[] = { OK, OK, OK, REFUSE };

	run_script(script, 4);
	ck_assert_int_eq(D.dfreqs, 1);
	ck_assert_int_eq(D.doffsets, 1);
}
END_TEST

/* The three cases, named. */
START_TEST(reload_while_dfreq_reply_delayed)
{
	static const int script[] = { OK, OK, OK, NEWPATH, DELAY };

	run_script(script, 5);
	ck_assert_int_eq(D.dfreqs, 1);
}
END_TEST

START_TEST(reload_during_backoff)
{
	static const int script[] = { REFUSE, REFUSE, RELOAD, REFUSE, OK };

	run_script(script, 5);
	ck_assert_int_eq(D.dfreqs, 1);
	ck_assert_int_eq(D.done_calls, 1);
}
END_TEST

START_TEST(marker_during_backoff)
{
	/* tracking, reset, tracking, dfreq refused; a second migration in the
	 * backoff. */
	static const int script[] = { OK, OK, OK, REFUSE, MARKER };

	run_script(script, 5);
	ck_assert_int_eq(D.dfreqs, 1); /* P0 -> P2 at once */
}
END_TEST

START_TEST(flapping_markers)
{
	int script[1] = { OK };
	struct timespec t0, now;
	int changes = 0;

	setup(script, 0);
	new_marker();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* 50 marker changes in 200 ms, the period flapping between two. */
	while (changes < 50) {
		struct timeval tv = { 0, 4000 };
		HND_Target t = { .has_time = true };

		event_base_loopexit(D.base, &tv);
		event_base_dispatch(D.base);
		t.old_period = D.period[D.markers];
		D.markers = D.markers == 1 ? 2 : 1;
		t.marker = 100 + (uint64_t)changes;
		D.page_marker = t.marker;
		t.new_period = D.period[D.markers];
		HDR_Start(&t);
		changes++;
	}
	for (;;) {
		event_base_loop(D.base, EVLOOP_ONCE);
		if (!HDR_Busy() && landed())
			break;
		clock_gettime(CLOCK_MONOTONIC, &now);
		ck_assert(now.tv_sec - t0.tv_sec < 20);
	}
	printf("flapping: 50 marker changes, %d resets, %d dfreq, %d handovers reported\n",
	       D.resets, D.dfreqs, D.done_calls);
	ck_assert_msg(D.resets <= 10, "%d resets for 50 marker changes", D.resets);
	ck_assert(D.last.ok);
	ck_assert(D.last.marker == 149);
	{
		HND_Period newest = D.period[D.markers];
		double ratio = ldexp((double)newest.frac, D.period[0].shift - newest.shift) /
			       (double)D.period[0].frac;

		ck_assert_msg(fabs(D.product - ratio) <= 1e-12 * (D.dfreqs + 1) * 60,
			      "product %.12f ratio %.12f", D.product, ratio);
	}
	teardown();
}
END_TEST

START_TEST(page_without_time)
{
	int script[1] = { OK };
	HND_Target t = { .marker = 7, .old_period = { true, 1, 0 }, .new_period = { false, 0, 0 },
			 .has_time = false };

	setup(script, 0);
	D.page_marker = t.marker;
	HDR_Start(&t);
	while (D.done_calls == 0)
		event_base_loop(D.base, EVLOOP_ONCE);
	ck_assert(D.last.ok);
	ck_assert_int_eq(D.resets, 1);
	ck_assert_int_eq(D.dfreqs, 0);
	ck_assert_int_eq(D.doffsets, 0);
	ck_assert(!D.last.chrony_period.valid || D.last.chrony_period.frac == 1);
	teardown();
}
END_TEST

/* A host that doubles the counter period (-500000 ppm): chronyd is reset and
 * stepped, its frequency left alone. */
START_TEST(absurd_dfreq_not_sent)
{
	int script[1] = { OK };
	HND_Period p0 = { true, UINT64_C(0x4000000000000000), 2 };
	HND_Period doubled = { true, p0.frac, 1 };
	HND_Target t = { .marker = 7, .old_period = p0, .new_period = doubled, .has_time = true };

	ck_assert(HND_DfreqPpm(p0, doubled) < -HND_MAX_DFREQ_PPM);
	setup(script, 0);
	D.page_marker = t.marker;
	HDR_Start(&t);
	while (D.done_calls == 0)
		event_base_loop(D.base, EVLOOP_ONCE);
	ck_assert(D.last.ok);
	ck_assert(D.last.dfreq_refused);
	ck_assert_int_eq(D.resets, 1);
	ck_assert_int_eq(D.dfreqs, 0);
	ck_assert_int_eq(D.doffsets, 1);
	ck_assert_int_eq(D.last.dfreqs, 0);
	ck_assert(D.last.chrony_period.valid && D.last.chrony_period.shift == 2);
	teardown();
}
END_TEST

/* Just within the limit, the change is handed over. */
START_TEST(large_dfreq_within_limit_sent)
{
	int script[1] = { OK };
	HND_Period p0 = { true, UINT64_C(0x4000000000000000), 2 };
	HND_Target t = { .marker = 7, .old_period = p0, .new_period = scaled(p0, 999.0),
			 .has_time = true };

	setup(script, 0);
	D.page_marker = t.marker;
	HDR_Start(&t);
	while (D.done_calls == 0)
		event_base_loop(D.base, EVLOOP_ONCE);
	ck_assert(D.last.ok);
	ck_assert(!D.last.dfreq_refused);
	ck_assert_int_eq(D.dfreqs, 1);
	ck_assert_int_eq(D.doffsets, 1);
	teardown();
}
END_TEST

/* The page does not vouch for its time when the doffset would be sent:
 * chronyd is reset and given the frequency change, no step; the handover
 * succeeds and says the doffset was skipped. */
START_TEST(doffset_skipped_page_does_not_vouch)
{
	int script[1] = { OK };

	setup(script, 0);
	D.skip = true;
	run();
	ck_assert_int_eq(D.done_calls, 1);
	ck_assert(D.last.ok);
	ck_assert(D.last.doffset_skipped);
	ck_assert_int_eq(D.last.skip_reason, SKIP_REASON);
	ck_assert(!D.last.have_offset);
	ck_assert_int_eq(D.offset_reads, 1);
	ck_assert_int_eq(D.resets, 1);
	ck_assert_int_eq(D.dfreqs, 1);
	ck_assert_int_eq(D.doffsets, 0);
	/* No doffset moved the correction: it only slewed away. */
	ck_assert(D.correction > 0.0 && D.correction <= 0.0123);
	/* The frequency change is still whole: P0 -> P1 exactly once. */
	ck_assert_msg(fabs(D.product - ldexp((double)D.period[1].frac,
					     D.period[0].shift - D.period[1].shift) /
					       (double)D.period[0].frac) <= 1e-12 * 60,
		      "product %.12f", D.product);
	teardown();
}
END_TEST

/* The page moved on to another marker before the doffset (the tick has
 * not shown it yet): no step for the old one. */
START_TEST(doffset_skipped_marker_moved_on)
{
	int script[1] = { OK };
	HND_Target t = { .marker = 7, .has_time = true };

	setup(script, 0);
	t.old_period = D.period[0];
	t.new_period = D.period[1];
	D.page_marker = 8;
	HDR_Start(&t);
	while (D.done_calls == 0)
		event_base_loop(D.base, EVLOOP_ONCE);
	ck_assert(D.last.ok);
	ck_assert(D.last.doffset_skipped);
	ck_assert_int_eq(D.last.skip_reason, SKIP_REASON);
	ck_assert_int_eq(D.offset_reads, 1);
	ck_assert_int_eq(D.resets, 1);
	ck_assert_int_eq(D.dfreqs, 1);
	ck_assert_int_eq(D.doffsets, 0);
	teardown();
}
END_TEST

/* No reading now (no device, a bad page, mid-update): the doffset is
 * retried, and sent once a reading comes. */
START_TEST(doffset_retried_without_reading)
{
	int script[1] = { OK };

	setup(script, 0);
	D.retries = 2;
	run();
	check_truth();
	ck_assert(!D.last.doffset_skipped);
	ck_assert(D.last.have_offset);
	ck_assert_int_eq(D.offset_reads, 4); /* and what the step left */
	ck_assert_int_eq(D.last.failures, 2);
	ck_assert_int_eq(D.doffsets, 1);
	ck_assert_int_eq(D.dfreqs, 1);
	teardown();
}
END_TEST

START_TEST(dfreq_composes_exactly)
{
	HND_Period p0 = { true, UINT64_C(0x8000000000000000), 1 };
	HND_Period p1 = scaled(p0, 30.0), p2 = scaled(p1, -17.25);
	double d01 = HND_DfreqPpm(p0, p1) * 1e-6, d12 = HND_DfreqPpm(p1, p2) * 1e-6;
	double d02 = HND_DfreqPpm(p0, p2) * 1e-6;

	/* (1 - d02) = (1 - d01)(1 - d12), not d01 + d12. */
	ck_assert(fabs((1 - d02) - (1 - d01) * (1 - d12)) < 1e-15);
	ck_assert(fabs(d02 - (d01 + d12)) > 1e-10);
}
END_TEST

/* One good handover against a chronyd whose makestep behaves as MODE, the
 * targets asking for a step unless NO_STEP; checked for the truth. */
static void run_stepping(int mode, bool no_step)
{
	int script[1] = { OK };

	setup(script, 0);
	D.step_mode = mode;
	D.no_step = no_step;
	run();
	check_truth();
}

/* The clock right at once: after the doffset, tracking is read and chronyd
 * steps by the correction it reports (the migration's whole offset), once. */
START_TEST(step_after_doffset)
{
	run_stepping(STEP_OK, false);
	ck_assert_int_eq(D.steps, 1);
	ck_assert_int_eq(D.big_steps, 1);
	ck_assert(D.last.steps == 1 && !D.last.step_refused);
	/* By o, the offset the doffset was made from: all of it. */
	ck_assert_msg(fabs(D.last.step - D.last.offset) <= 1e-9, "stepped %.12f, o %.12f",
		      D.last.step, D.last.offset);
	ck_assert(fabs(D.correction) <= 1e-12);
	teardown();
}
END_TEST

/* A kernel that loses a hundredth of each step (the slew it had not
 * applied): what the step left is measured and stepped too, once, and the
 * clock ends within HND_MIN_STEP_S (the truth's tolerance then). */
START_TEST(step_residual_stepped)
{
	int script[1] = { OK };

	setup(script, 0);
	D.step_loss = 0.01;
	run();
	check_truth();
	ck_assert_int_eq(D.steps, 2);
	ck_assert_int_eq(D.last.steps, 2);
	ck_assert_int_eq(D.doffsets, 2);
	ck_assert_msg(fabs(D.last.residual) <= HND_MIN_STEP_S, "residual %.12f", D.last.residual);
	teardown();
}
END_TEST

/* A deployment that forbids steps: no makestep, the doffset is slewed. */
START_TEST(step_disabled)
{
	run_stepping(STEP_OK, true);
	ck_assert_int_eq(D.steps, 0);
	ck_assert_int_eq(D.last.steps, 0);
	ck_assert_msg(fabs(D.correction - (D.offset[1] - D.moved)) <= 1e-9, "correction %.12f",
		      D.correction);
	teardown();
}
END_TEST

/* chronyd -x (4.9): makestep "failed", its correction kept; or (4.3) the
 * correction dropped.  Either way the doffset is made again against what
 * chronyd kept (nothing to add, or the whole offset again), no other
 * makestep, slewed: the truth holds. */
START_TEST(step_refused)
{
	run_stepping(_i ? STEP_DROPS : STEP_KEEPS, false);
	ck_assert_int_eq(D.step_refusals, 1);
	ck_assert(D.last.step_refused && D.last.steps == 0);
	ck_assert_int_eq(D.doffsets, 2);
	ck_assert(fabs(D.correction) > HND_MIN_STEP_S);
	teardown();
}
END_TEST

/* The makestep's answer lost: redone from fresh readings.  After chronyd
 * stepped (_i 0) they find nothing left: no second step.  From a chronyd
 * whose step failed and dropped the correction (_i 1, 4.3): a fresh
 * tracking read alone would find nothing left and the clock unmoved; the
 * doffset is made again from the page. */
START_TEST(makestep_answer_lost)
{
	static const int script[] = { OK, OK, OK, OK, OK, OK, OK, LOST };

	setup(script, 8);
	D.step_mode = _i ? STEP_DROPS : STEP_OK;
	run();
	check_truth();
	ck_assert_int_eq(D.steps, _i ? 0 : 1);
	ck_assert_int_eq(D.big_steps, _i ? 0 : 1);
	ck_assert_int_ge(D.doffsets, 2);
	teardown();
}
END_TEST

/* HND_TEST_SCRIPT="OK REORDER DELAY ...": one sequence, to reproduce. */
static const char *script_env;

START_TEST(one_script)
{
	int script[MAX_SEQ], len = 0;
	char buf[256], *tok, *save = NULL;

	snprintf(buf, sizeof(buf), "%s", script_env);
	for (tok = strtok_r(buf, " ,", &save); tok && len < MAX_SEQ; tok = strtok_r(NULL, " ,", &save))
		for (int e = 0; e < N_EVENTS; e++)
			if (!strcmp(tok, event_names[e]))
				script[len++] = e;
	run_script(script, len);
	printf("%s: %d dfreq, %d doffset, %d resets applied\n", D.trace, D.dfreqs, D.doffsets,
	       D.resets);
}
END_TEST

/* The test cases, each run in a process of its own at once (main): they
 * wait on timers far more than they compute, so together they take about
 * as long as the longest.  CK_RUN_CASE=NAME runs one; HND_TEST_SERIAL=1
 * runs them one after another, for a CPU too slow to keep five processes'
 * millisecond timers (an emulated one: .ci/arm64). */
static const char *const tcase_names[] = {
	"cases", "crash", "exhaustive", "walk", "walk-rounds",
};
#define N_TCASES (sizeof(tcase_names) / sizeof(tcase_names[0]))

static Suite *handover_suite(void)
{
	Suite *s = suite_create("handover");
	TCase *tc;

	if (script_env) {
		tc = tcase_create("script");
		tcase_add_test(tc, one_script);
		suite_add_tcase(s, tc);
		return s;
	}

	tc = tcase_create(tcase_names[0]);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, dfreq_composes_exactly);
	tcase_add_test(tc, reload_while_dfreq_reply_delayed);
	tcase_add_test(tc, reload_during_backoff);
	tcase_add_test(tc, marker_during_backoff);
	tcase_add_test(tc, flapping_markers);
	tcase_add_test(tc, page_without_time);
	tcase_add_test(tc, absurd_dfreq_not_sent);
	tcase_add_test(tc, large_dfreq_within_limit_sent);
	tcase_add_test(tc, doffset_skipped_page_does_not_vouch);
	tcase_add_test(tc, doffset_retried_without_reading);
	tcase_add_test(tc, doffset_skipped_marker_moved_on);
	tcase_add_test(tc, crash_dfreq_applied_unanswered);
	tcase_add_test(tc, crash_dfreq_recorded_not_sent);
	tcase_add_test(tc, crash_twice_while_in_doubt);
	tcase_add_test(tc, record_failing_delays_dfreq);
	tcase_add_test(tc, record_failing_never_sends);
	tcase_add_test(tc, round_failed_then_success);
	tcase_add_test(tc, dfreq_refused_round_then_applied);
	tcase_add_test(tc, dfreq_refused_round_then_learned);
	tcase_add_test(tc, round_failed_before_frequency_read);
	tcase_add_test(tc, dfreq_refused_round_then_half_learned);
	tcase_add_test(tc, chronyd_absent_then_present);
	tcase_add_test(tc, stale_correction);
	tcase_add_test(tc, step_after_doffset);
	tcase_add_test(tc, step_disabled);
	tcase_add_test(tc, step_residual_stepped);
	tcase_add_loop_test(tc, step_refused, 0, 2);
	tcase_add_loop_test(tc, makestep_answer_lost, 0, 2);
	suite_add_tcase(s, tc);

	tc = tcase_create(tcase_names[1]);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, crash_points, 0, N_CRASH_POINTS);
	suite_add_tcase(s, tc);

	tc = tcase_create(tcase_names[2]);
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, exhaustive, 0, N_EXHAUSTIVE);
	suite_add_tcase(s, tc);

	tc = tcase_create(tcase_names[3]);
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, walk, 0, WALK_RUNS);
	suite_add_tcase(s, tc);

	tc = tcase_create(tcase_names[4]);
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, walk_rounds, 0, WALK_RUNS);
	suite_add_tcase(s, tc);
	return s;
}

/* Every test case in a child of its own (CK_RUN_CASE), all at once; each
 * prints its own summary.  Fails if any child failed. */
static int run_cases_at_once(void)
{
	pid_t pids[N_TCASES];
	int failed = 0;

	fflush(stdout);
	for (size_t i = 0; i < N_TCASES; i++) {
		pids[i] = fork();
		if (pids[i] < 0) {
			perror("fork");
			return EXIT_FAILURE;
		}
		if (pids[i] == 0) {
			SRunner *sr;
			int n;

			setenv("CK_RUN_CASE", tcase_names[i], 1);
			sr = srunner_create(handover_suite());
			srunner_run_all(sr, CK_NORMAL);
			n = srunner_ntests_failed(sr);
			srunner_free(sr);
			fflush(stdout);
			_exit(n ? EXIT_FAILURE : EXIT_SUCCESS);
		}
	}
	for (size_t i = 0; i < N_TCASES; i++) {
		int st;

		if (waitpid(pids[i], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			printf("check_handover: test case %s failed\n", tcase_names[i]);
			failed = 1;
		}
	}
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

int main(void)
{
	const char *env = getenv("HND_TEST_SEED");

	seed = env ? (unsigned int)strtoul(env, NULL, 0) : (unsigned int)time(NULL);
	script_env = getenv("HND_TEST_SCRIPT");
	printf("check_handover: random seed %u (HND_TEST_SEED=%u repeats it)\n", seed, seed);
	printf("check_handover: %d exhaustive sequences of %d events over %d kinds, 2 x %d random "
	       "walks of 4-%d, %d crash points\n", N_EXHAUSTIVE, SEQ_LEN, N_EVENTS, WALK_RUNS,
	       MAX_SEQ, N_CRASH_POINTS);
	LOG_Initialise(false, true);
	if (!getenv("HND_TEST_VERBOSE"))
		if (!freopen("/dev/null", "w", stderr))
			return EXIT_FAILURE;
	if (!script_env && !getenv("CK_RUN_CASE") && !getenv("HND_TEST_SERIAL"))
		return run_cases_at_once();
	return CR_Run(handover_suite(), CK_FORK_GETENV);
}
