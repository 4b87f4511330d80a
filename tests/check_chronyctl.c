/* SPDX-License-Identifier: BSD-2-Clause
 *
 * check_chronyctl.c - unit tests of the chrony command protocol layer
 * (chrony_proto.c) and of the client (chrony_client.c) against an
 * in-process stand-in for chronyd; the handover has its own suite
 * (check_handover.c).
 *
 * Float vectors were worked out by hand from the format's definition
 * (value = coef * 2^(exp - 25)); random round trips print their seed, and
 * CCL_TEST_SEED=<n> repeats a run.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <event2/event.h>

#include "../daemon/chrony_client.h"
#include "../daemon/evbase.h"
#include "chrony_blocking.h"
#include "checkrun.h"

static unsigned int seed;

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
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

static double random_unit(void)
{
	return (double)rand() / ((double)RAND_MAX + 1.0);
}

/* ---- Float --------------------------------------------------------------- */

START_TEST(float_vectors)
{
	/* 1.0 = 2^23 * 2^(2 - 25) */
	ck_assert_uint_eq(CPR_FloatEncode(1.0), 0x04800000u);
	/* -1.0: coef -2^23 as 25-bit two's complement = 0x1800000 */
	ck_assert_uint_eq(CPR_FloatEncode(-1.0), 0x05800000u);
	/* 0.5 = 2^23 * 2^(1 - 25) */
	ck_assert_uint_eq(CPR_FloatEncode(0.5), 0x02800000u);
	/* 3.0 = 0xC00000 * 2^(3 - 25) */
	ck_assert_uint_eq(CPR_FloatEncode(3.0), 0x06c00000u);
	ck_assert_uint_eq(CPR_FloatEncode(0.0), 0);
	ck_assert_uint_eq(CPR_FloatEncode(-0.0), 0);
	ck_assert_uint_eq(CPR_FloatEncode(NAN), 0);

	ck_assert(CPR_FloatDecode(0x04800000u) == 1.0);
	ck_assert(CPR_FloatDecode(0x05800000u) == -1.0);
	ck_assert(CPR_FloatDecode(0) == 0.0);
	/* exp -64 (0x40 << 25), coef 1: the smallest positive value, 2^-89 */
	ck_assert(CPR_FloatDecode(0x80000001u) == ldexp(1.0, -89));
	ck_assert_uint_eq(CPR_FloatEncode(ldexp(1.0, -89)), 0x80000001u);
	/* exp 63, coef 2^24 - 1: the largest */
	ck_assert(CPR_FloatDecode(0x7effffffu) == ldexp(16777215.0, 38));
	/* exp 63, coef -2^24: the most negative */
	ck_assert(CPR_FloatDecode(0x7f000000u) == -ldexp(1.0, 62));
}
END_TEST

START_TEST(float_saturation_and_underflow)
{
	ck_assert(CPR_FloatDecode(CPR_FloatEncode(1e30)) == ldexp(16777215.0, 38));
	ck_assert(CPR_FloatDecode(CPR_FloatEncode(INFINITY)) == ldexp(16777215.0, 38));
	ck_assert(CPR_FloatDecode(CPR_FloatEncode(-1e30)) == -ldexp(1.0, 62));
	ck_assert(CPR_FloatDecode(CPR_FloatEncode(-INFINITY)) == -ldexp(1.0, 62));
	ck_assert(CPR_FloatDecode(CPR_FloatEncode(ldexp(1.0, 62))) == ldexp(16777215.0, 38));
	ck_assert(CPR_FloatDecode(CPR_FloatEncode(-ldexp(1.0, 62))) == -ldexp(1.0, 62));

	ck_assert_uint_eq(CPR_FloatEncode(1e-30), 0);
	ck_assert_uint_eq(CPR_FloatEncode(-1e-30), 0);
	ck_assert_uint_eq(CPR_FloatEncode(ldexp(1.0, -91)), 0);
	/* Below the normal range values keep fewer bits but stay exact when
     representable, and round to the nearest multiple of 2^-89. */
	ck_assert(CPR_FloatDecode(CPR_FloatEncode(ldexp(1.0, -80))) == ldexp(1.0, -80));
	ck_assert(CPR_FloatDecode(CPR_FloatEncode(-ldexp(5.0, -85))) == -ldexp(5.0, -85));
	ck_assert(CPR_FloatDecode(CPR_FloatEncode(ldexp(2.6, -89))) == ldexp(3.0, -89));
}
END_TEST

START_TEST(float_rounding_carry)
{
	/* Just below a power of two, rounding reaches 2^24 and must carry into
     the exponent instead of overflowing the coefficient. */
	double x = nextafter(2.0, 0.0);

	ck_assert(CPR_FloatDecode(CPR_FloatEncode(x)) == 2.0);
	ck_assert(CPR_FloatDecode(CPR_FloatEncode(-x)) == -2.0);
	ck_assert(CPR_FloatDecode(CPR_FloatEncode(ldexp(16777215.5, -30))) == ldexp(1.0, -6));
}
END_TEST

START_TEST(float_round_trip_random)
{
	int i;

	for (i = 0; i < 200000; i++) {
		double x = ldexp(0.5 + 0.5 * random_unit(), (int)(random_unit() * 125.0) - 65);
		double y;

		if (rand() & 1)
			x = -x;
		y = CPR_FloatDecode(CPR_FloatEncode(x));
		/* 24 significant bits, rounded to nearest: half a unit in 2^-23 */
		ck_assert_msg(fabs(y - x) <= fabs(x) * ldexp(1.0, -24), "x=%.17g y=%.17g seed=%u",
			      x, y, seed);
		ck_assert_msg(signbit(x) == signbit(y), "x=%.17g y=%.17g seed=%u", x, y, seed);
	}
}
END_TEST

START_TEST(float_values_round_trip_exactly)
{
	uint32_t f;
	double v;
	int i;

	/* Every value of the format survives encoding, whatever its form. */
	for (i = 0; i < 200000; i++) {
		f = (uint32_t)rand() << 16 ^ (uint32_t)rand();
		v = CPR_FloatDecode(f);
		ck_assert_msg(CPR_FloatDecode(CPR_FloatEncode(v)) == v, "f=%08x seed=%u", f, seed);
	}
}
END_TEST

START_TEST(float_monotonic)
{
	double x, last = -INFINITY, y;
	int i;

	for (i = -2000; i <= 2000; i++) {
		x = i * 1.234567e-3;
		y = CPR_FloatDecode(CPR_FloatEncode(x));
		ck_assert(y >= last);
		last = y;
	}
}
END_TEST

START_TEST(float_typical_values)
{
	static const double v[] = {30.0, -30.0, 0.002, -0.002, 1e-9, 123.456, 500.0, 1e-6};
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		ck_assert(fabs(CPR_FloatDecode(CPR_FloatEncode(v[i])) - v[i]) <= fabs(v[i]) * 6e-8);
}
END_TEST

/* ---- requests ------------------------------------------------------------ */

static void check_header(const CPR_Packet *p, uint16_t command, size_t length)
{
	ck_assert_uint_eq(p->length, length);
	ck_assert_uint_eq(p->command, command);
	ck_assert_uint_eq(p->data[0], 6);
	ck_assert_uint_eq(p->data[1], 1);
	ck_assert_uint_eq(p->data[2], 0);
	ck_assert_uint_eq(p->data[3], 0);
	ck_assert_uint_eq(rd16(p->data + 4), command);
	ck_assert_uint_eq(rd32(p->data + 12), 0);
	ck_assert_uint_eq(rd32(p->data + 16), 0);
}

static int all_zero(const uint8_t *p, size_t from, size_t to)
{
	size_t i;

	for (i = from; i < to; i++)
		if (p[i])
			return 0;
	return 1;
}

START_TEST(request_sizes)
{
	CPR_Packet p;

	CPR_MakeResetSources(&p);
	check_header(&p, 66, 28);
	ck_assert(all_zero(p.data, 6, 28));

	CPR_MakeTracking(&p);
	check_header(&p, 33, 104);
	ck_assert(all_zero(p.data, 20, 104));

	CPR_MakeDfreq(&p, 30.0);
	check_header(&p, 31, 28);
	ck_assert_uint_eq(rd32(p.data + 20), CPR_FloatEncode(30.0));
	ck_assert(all_zero(p.data, 24, 28));

	CPR_MakeDoffset(&p, -0.002);
	check_header(&p, 71, 28);
	ck_assert_uint_eq(rd32(p.data + 20), CPR_FloatEncode(-0.002));
	ck_assert(all_zero(p.data, 24, 28));

	CPR_MakeBurst(&p, 4, 8);
	check_header(&p, 3, 68);
	/* mask and address: family 0 (unspecified), everything else zero */
	ck_assert(all_zero(p.data, 20, 60));
	ck_assert_uint_eq(rd32(p.data + 60), 4);
	ck_assert_uint_eq(rd32(p.data + 64), 8);

	/* chrony's REQ_MAKESTEP (candm.h), no data; answered with a bare
	 * header, so padded to 28 bytes. */
	CPR_MakeMakestep(&p);
	check_header(&p, 43, 28);
	ck_assert(all_zero(p.data, 6, 28));
	ck_assert_uint_eq(CPR_ExpectedReplyType(CPR_REQ_MAKESTEP), CPR_RPY_NULL);
	/* A repeat would step what chronyd learned in between. */
	ck_assert(!CPR_IsIdempotent(CPR_REQ_MAKESTEP));
}
END_TEST

START_TEST(request_sequence)
{
	CPR_Packet p;

	CPR_MakeDfreq(&p, -1.0);
	CPR_SetSequence(&p, 0xdeadbeefu, 0x0102);
	ck_assert_uint_eq(rd16(p.data + 6), 0x0102);
	ck_assert_uint_eq(rd32(p.data + 8), 0xdeadbeefu);
	ck_assert_uint_eq(p.sequence, 0xdeadbeefu);
	ck_assert_uint_eq(p.attempt, 0x0102);
	ck_assert_uint_eq(rd32(p.data + 20), 0x05800000u);
	ck_assert_uint_eq(p.length, 28);
}
END_TEST

/* ---- replies ------------------------------------------------------------- */

static size_t make_reply(uint8_t *b, const CPR_Packet *req, uint16_t rtype, uint16_t status,
			 size_t len)
{
	memset(b, 0, CPR_MAX_REPLY_LEN);
	b[0] = 6;
	b[1] = 2;
	wr16(b + 4, req->command);
	wr16(b + 6, rtype);
	wr16(b + 8, status);
	wr32(b + 16, req->sequence);
	return len;
}

static size_t make_tracking_reply(uint8_t *b, const CPR_Packet *req)
{
	size_t len = make_reply(b, req, 5, 0, 104);

	wr32(b + 28, 0x564d4300);  /* "VMC" */
	wr16(b + 48, 0);           /* family unspecified */
	wr16(b + 52, 1);           /* stratum */
	wr16(b + 54, 3);           /* leap: unsynchronised */
	wr32(b + 56, 0x7fffffffu); /* no high seconds */
	wr32(b + 60, 1700000000u);
	wr32(b + 64, 123456789u);
	wr32(b + 68, CPR_FloatEncode(0.001953125));
	wr32(b + 72, CPR_FloatEncode(-0.25));
	wr32(b + 76, CPR_FloatEncode(0.0625));
	wr32(b + 80, CPR_FloatEncode(-30.0));
	wr32(b + 84, CPR_FloatEncode(0.5));
	wr32(b + 88, CPR_FloatEncode(2.0));
	wr32(b + 92, CPR_FloatEncode(0.125));
	wr32(b + 96, CPR_FloatEncode(4.0));
	wr32(b + 100, CPR_FloatEncode(16.0));
	return len;
}

START_TEST(reply_tracking)
{
	uint8_t b[CPR_MAX_REPLY_LEN];
	CPR_Packet req;
	CPR_Reply r;
	size_t len;

	CPR_MakeTracking(&req);
	CPR_SetSequence(&req, 77, 0);
	len = make_tracking_reply(b, &req);

	ck_assert_int_eq(CPR_DecodeReply(&req, b, len, &r), CPR_DEC_OK);
	ck_assert(r.have_tracking);
	ck_assert_uint_eq(r.tracking.ref_id, 0x564d4300);
	ck_assert_uint_eq(r.tracking.stratum, 1);
	ck_assert_uint_eq(r.tracking.leap_status, 3);
	ck_assert_int_eq(r.tracking.ref_time.tv_sec, 1700000000);
	ck_assert_int_eq(r.tracking.ref_time.tv_nsec, 123456789);
	ck_assert(r.tracking.current_correction == 0.001953125);
	ck_assert(r.tracking.last_offset == -0.25);
	ck_assert(r.tracking.rms_offset == 0.0625);
	ck_assert(r.tracking.freq_ppm == -30.0);
	ck_assert(r.tracking.resid_freq_ppm == 0.5);
	ck_assert(r.tracking.skew_ppm == 2.0);
	ck_assert(r.tracking.root_delay == 0.125);
	ck_assert(r.tracking.root_dispersion == 4.0);
	ck_assert(r.tracking.last_update_interval == 16.0);

	/* 64-bit seconds */
	wr32(b + 56, 1);
	ck_assert_int_eq(CPR_DecodeReply(&req, b, len, &r), CPR_DEC_OK);
	ck_assert(r.tracking.ref_time.tv_sec == (time_t)((1ull << 32) + 1700000000u));
}
END_TEST

START_TEST(reply_null)
{
	uint8_t b[CPR_MAX_REPLY_LEN];
	CPR_Packet req;
	CPR_Reply r;
	size_t len;

	CPR_MakeResetSources(&req);
	CPR_SetSequence(&req, 5, 1);
	len = make_reply(b, &req, 1, 0, 28);
	ck_assert_int_eq(CPR_DecodeReply(&req, b, len, &r), CPR_DEC_OK);
	ck_assert(!r.have_tracking);
	ck_assert_uint_eq(r.status, 0);
	ck_assert_uint_eq(r.sequence, 5);
}
END_TEST

START_TEST(reply_malformed)
{
	uint8_t b[CPR_MAX_REPLY_LEN];
	CPR_Packet req, treq;
	CPR_Reply r;
	size_t len;

	CPR_MakeDfreq(&req, 1.0);
	CPR_SetSequence(&req, 1000, 0);

	len = make_reply(b, &req, 1, 0, 28);
	ck_assert_int_eq(CPR_DecodeReply(&req, b, 27, &r), CPR_DEC_SHORT);
	ck_assert_int_eq(CPR_DecodeReply(&req, b, 0, &r), CPR_DEC_SHORT);

	b[0] = 5;
	ck_assert_int_eq(CPR_DecodeReply(&req, b, len, &r), CPR_DEC_VERSION);
	b[0] = 7;
	ck_assert_int_eq(CPR_DecodeReply(&req, b, len, &r), CPR_DEC_VERSION);
	b[0] = 6;

	b[1] = 1;
	ck_assert_int_eq(CPR_DecodeReply(&req, b, len, &r), CPR_DEC_PKT_TYPE);
	b[1] = 2;

	wr16(b + 4, 33);
	ck_assert_int_eq(CPR_DecodeReply(&req, b, len, &r), CPR_DEC_COMMAND);
	wr16(b + 4, 31);

	wr32(b + 16, 999);
	ck_assert_int_eq(CPR_DecodeReply(&req, b, len, &r), CPR_DEC_SEQUENCE);
	wr32(b + 16, 1000);

	wr16(b + 8, 2);
	ck_assert_int_eq(CPR_DecodeReply(&req, b, len, &r), CPR_DEC_STATUS);
	ck_assert_uint_eq(r.status, 2);
	ck_assert_int_eq(CPR_StatusToErrno(r.status), EACCES);
	ck_assert_str_eq(CPR_StatusName(r.status), "unauthorised");
	wr16(b + 8, 19);
	ck_assert_int_eq(CPR_DecodeReply(&req, b, len, &r), CPR_DEC_STATUS);
	ck_assert_int_eq(CPR_StatusToErrno(r.status), EMSGSIZE);
	wr16(b + 8, 0);

	wr16(b + 6, 5);
	ck_assert_int_eq(CPR_DecodeReply(&req, b, len, &r), CPR_DEC_REPLY_TYPE);
	wr16(b + 6, 1);
	ck_assert_int_eq(CPR_DecodeReply(&req, b, len, &r), CPR_DEC_OK);

	/* Tracking: truncated, wrong format, and a refusal (which is short). */
	CPR_MakeTracking(&treq);
	CPR_SetSequence(&treq, 8, 0);
	len = make_tracking_reply(b, &treq);
	ck_assert_int_eq(CPR_DecodeReply(&treq, b, 103, &r), CPR_DEC_SHORT);
	ck_assert_int_eq(CPR_DecodeReply(&treq, b, 28, &r), CPR_DEC_SHORT);
	wr16(b + 6, 1);
	ck_assert_int_eq(CPR_DecodeReply(&treq, b, len, &r), CPR_DEC_REPLY_TYPE);
	len = make_reply(b, &treq, 1, 18, 28);
	ck_assert_int_eq(CPR_DecodeReply(&treq, b, len, &r), CPR_DEC_STATUS);
	ck_assert_int_eq(CPR_StatusToErrno(r.status), EPROTONOSUPPORT);
}
END_TEST

START_TEST(status_names)
{
	uint16_t s;

	ck_assert_int_eq(CPR_StatusToErrno(0), 0);
	ck_assert_int_eq(CPR_StatusToErrno(4), ESRCH);
	for (s = 1; s < 40; s++) {
		ck_assert_int_ne(CPR_StatusToErrno(s), 0);
		ck_assert_ptr_nonnull(CPR_StatusName(s));
	}
	for (s = 0; s <= CPR_DEC_REPLY_TYPE; s++)
		ck_assert_ptr_nonnull(CPR_DecodeResultName((CPR_DecodeResult)s));
}
END_TEST

/* ---- the client against a stand-in chronyd --------------------------------- */

typedef enum { ACT_REPLY, ACT_IGNORE, ACT_STATUS, ACT_STALE_FIRST } Action;

typedef struct {
	int fd;
	struct event *ev;
	Action action[80];
	uint16_t status[80];
	double correction;
	/* What arrived, in order. */
	int n;
	uint16_t commands[32];
	uint16_t attempts[32];
	size_t lengths[32];
	double values[32];
} FakeChronyd;

typedef struct {
	char dir[64];
	char sock[96];
	struct event_base *base;
	FakeChronyd fake;
	CCL_Client client;
	int done_calls;
	CCL_Result result;
} Fixture;

static void fake_read(evutil_socket_t fd, short what, void *arg)
{
	FakeChronyd *f = arg;
	uint8_t in[512], out[CPR_MAX_REPLY_LEN];
	struct sockaddr_un from;
	socklen_t fromlen = sizeof(from);
	CPR_Packet req;
	ssize_t len;
	size_t olen;
	uint16_t cmd;
	uint32_t seq;

	len = recvfrom(fd, in, sizeof(in), 0, (struct sockaddr *)&from, &fromlen);
	if (len < 28)
		return;
	cmd = rd16(in + 4);
	seq = rd32(in + 8);
	if (f->n < 32) {
		f->commands[f->n] = cmd;
		f->attempts[f->n] = rd16(in + 6);
		f->lengths[f->n] = (size_t)len;
		f->values[f->n] = CPR_FloatDecode(rd32(in + 20));
		f->n++;
	}

	memset(&req, 0, sizeof(req));
	req.command = cmd;
	req.sequence = seq;
	switch (f->action[cmd]) {
	case ACT_IGNORE:
		return;
	case ACT_STATUS:
		olen = make_reply(out, &req, 1, f->status[cmd], 28);
		break;
	case ACT_STALE_FIRST:
		/* A stale answer, a foreign command, then the real one. */
		req.sequence = seq - 1;
		olen = make_reply(out, &req, 1, 0, 28);
		sendto(fd, out, olen, 0, (struct sockaddr *)&from, fromlen);
		req.sequence = seq;
		req.command = 1;
		olen = make_reply(out, &req, 1, 0, 28);
		sendto(fd, out, olen, 0, (struct sockaddr *)&from, fromlen);
		req.command = cmd;
		/* fall through */
	case ACT_REPLY:
	default:
		if (cmd == CPR_REQ_TRACKING) {
			olen = make_tracking_reply(out, &req);
			wr32(out + 68, CPR_FloatEncode(f->correction));
		} else {
			olen = make_reply(out, &req, 1, 0, 28);
		}
		break;
	}
	sendto(fd, out, olen, 0, (struct sockaddr *)&from, fromlen);
}

static void fake_start(Fixture *fx)
{
	struct sockaddr_un sa;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, fx->sock);
	fx->fake.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	ck_assert_int_ge(fx->fake.fd, 0);
	unlink(fx->sock);
	ck_assert_int_eq(bind(fx->fake.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	fx->fake.ev = event_new(fx->base, fx->fake.fd, EV_READ | EV_PERSIST, fake_read, &fx->fake);
	event_add(fx->fake.ev, NULL);
}

static void fake_stop(Fixture *fx)
{
	if (fx->fake.ev) {
		event_free(fx->fake.ev);
		fx->fake.ev = NULL;
		close(fx->fake.fd);
		unlink(fx->sock);
	}
}

static Fixture *fixture_new(int with_fake)
{
	Fixture *fx = calloc(1, sizeof(*fx));

	strcpy(fx->dir, "/tmp/check_chronyctl.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(fx->dir));
	snprintf(fx->sock, sizeof(fx->sock), "%s/chronyd.sock", fx->dir);
	fx->base = EVB_New();
	if (with_fake)
		fake_start(fx);
	ck_assert_int_eq(CCL_Open(fx->sock, fx->base, &fx->client), 0);
	ck_assert_ptr_nonnull(fx->client);
	return fx;
}

static void fixture_free(Fixture *fx)
{
	char path[128];

	snprintf(path, sizeof(path), "%s", CCL_GetLocalPath(fx->client));
	CCL_Close(fx->client);
	ck_assert_int_ne(access(path, F_OK), 0);
	fake_stop(fx);
	event_base_free(fx->base);
	rmdir(fx->dir);
	free(fx);
}

static void on_done(const CCL_Result *r, void *arg)
{
	Fixture *fx = arg;

	fx->done_calls++;
	fx->result = *r;
	event_base_loopbreak(fx->base);
}

static void run_loop(Fixture *fx)
{
	struct timeval limit = {3, 0};

	event_base_loopexit(fx->base, &limit);
	event_base_dispatch(fx->base);
}

/* Start one request of the given command (value: dfreq or doffset). */
static int start(Fixture *fx, CCL_Client c, uint16_t command, double value, int timeout_ms)
{
	CPR_Packet p;

	switch (command) {
	case CPR_REQ_RESET_SOURCES:
		CPR_MakeResetSources(&p);
		break;
	case CPR_REQ_TRACKING:
		CPR_MakeTracking(&p);
		break;
	case CPR_REQ_DFREQ:
		CPR_MakeDfreq(&p, value);
		break;
	case CPR_REQ_DOFFSET2:
		CPR_MakeDoffset(&p, value);
		break;
	default:
		CPR_MakeBurst(&p, 4, 8);
		break;
	}
	return CCL_Start(c, &p, timeout_ms, 3, on_done, fx);
}

START_TEST(client_socket_path)
{
	Fixture *fx;
	char want[128];
	struct stat st;

	/* The daemon's umask: the socket's mode must not depend on it. */
	umask(022);
	fx = fixture_new(0);
	/* The first client of a process (Check forks one per test). */
	snprintf(want, sizeof(want), "%s/vmclockd.%d.sock", fx->dir, (int)getpid());
	ck_assert_str_eq(CCL_GetLocalPath(fx->client), want);
	ck_assert_int_eq(lstat(want, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 0777, 0666);
	ck_assert_uint_eq(umask(022), 022); /* restored */
	fixture_free(fx);
}
END_TEST

/* The race double: whoever can write chronyd's directory swaps our socket
 * for a symlink to a file of theirs choosing the moment bind() returns.
 * Linked with -Wl,--wrap=bind. */
int __real_bind(int fd, const struct sockaddr *sa, socklen_t len);
int __wrap_bind(int fd, const struct sockaddr *sa, socklen_t len);
static const char *swap_victim;

int __wrap_bind(int fd, const struct sockaddr *sa, socklen_t len)
{
	int r = __real_bind(fd, sa, len);
	const struct sockaddr_un *un = (const struct sockaddr_un *)sa;

	if (r == 0 && swap_victim && sa->sa_family == AF_UNIX) {
		ck_assert_int_eq(unlink(un->sun_path), 0);
		ck_assert_int_eq(symlink(swap_victim, un->sun_path), 0);
	}
	return r;
}

START_TEST(client_socket_symlink_race)
{
	char dir[] = "/tmp/check_chronyctl.XXXXXX", sock[96], victim[96], link[128];
	struct event_base *base = EVB_New();
	CCL_Client c = NULL;
	struct stat st;
	int fd;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/chronyd.sock", dir);
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	fd = open(victim, O_CREAT | O_WRONLY | O_EXCL, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	/* A stale entry at our name is a symlink too: unlink must not follow. */
	snprintf(link, sizeof(link), "%s/vmclockd.%d.sock", dir, (int)getpid());
	ck_assert_int_eq(symlink(victim, link), 0);

	swap_victim = victim;
	ck_assert_int_eq(CCL_Open(sock, base, &c), 0);
	swap_victim = NULL;
	ck_assert_int_eq(stat(victim, &st), 0);
	ck_assert_msg((st.st_mode & 0777) == 0600, "the victim's mode became %o through the symlink",
		      st.st_mode & 0777);
	CCL_Close(c);
	/* Close removed the name, not what it points to. */
	ck_assert_int_eq(stat(victim, &st), 0);
	ck_assert_int_ne(lstat(link, &st), 0);
	unlink(victim);
	rmdir(dir);
	event_base_free(base);
}
END_TEST

START_TEST(client_two_in_one_process)
{
	Fixture *fx = fixture_new(1);
	CCL_Client second;

	ck_assert_int_eq(CCL_Open(fx->sock, fx->base, &second), 0);
	ck_assert_str_ne(CCL_GetLocalPath(second), CCL_GetLocalPath(fx->client));
	ck_assert_int_eq(start(fx, second, CPR_REQ_RESET_SOURCES, 0, 0), 0);
	run_loop(fx);
	ck_assert_int_eq(fx->result.outcome, CCL_DONE);
	ck_assert_int_eq(start(fx, fx->client, CPR_REQ_RESET_SOURCES, 0, 0), 0);
	run_loop(fx);
	ck_assert_int_eq(fx->result.outcome, CCL_DONE);
	CCL_Close(second);
	fixture_free(fx);
}
END_TEST

START_TEST(client_requests)
{
	Fixture *fx = fixture_new(1);

	fx->fake.correction = 0.000244140625; /* c = 2^-12 */
	ck_assert_int_eq(start(fx, fx->client, CPR_REQ_TRACKING, 0, 0), 0);
	ck_assert_int_eq(fx->done_calls, 0); /* never from inside Start */
	ck_assert_int_eq(start(fx, fx->client, CPR_REQ_RESET_SOURCES, 0, 0), -EBUSY);
	run_loop(fx);
	ck_assert_int_eq(fx->done_calls, 1);
	ck_assert_int_eq(fx->result.outcome, CCL_DONE);
	ck_assert_uint_eq(fx->result.command, CPR_REQ_TRACKING);
	ck_assert(fx->result.reply.have_tracking);
	ck_assert(fx->result.reply.tracking.current_correction == 0.000244140625);
	ck_assert_int_gt(fx->result.rtt_ns, 0);
	ck_assert_int_eq(fx->result.attempts, 1);

	ck_assert_int_eq(start(fx, fx->client, CPR_REQ_DFREQ, -30.0, 0), 0);
	run_loop(fx);
	ck_assert_int_eq(start(fx, fx->client, CPR_REQ_DOFFSET2, -0.002, 0), 0);
	run_loop(fx);
	ck_assert_int_eq(fx->done_calls, 3);
	ck_assert_int_eq(fx->fake.n, 3);
	ck_assert_uint_eq(fx->fake.commands[0], 33);
	ck_assert_uint_eq(fx->fake.commands[1], 31);
	ck_assert_uint_eq(fx->fake.commands[2], 71);
	ck_assert_uint_eq(fx->fake.lengths[0], 104);
	ck_assert_uint_eq(fx->fake.lengths[1], 28);
	ck_assert(fabs(fx->fake.values[1] - -30.0) < 1e-5);
	ck_assert(fabs(fx->fake.values[2] - -0.002) < 1e-10);
	fixture_free(fx);
}
END_TEST

START_TEST(client_stale_replies_discarded)
{
	Fixture *fx = fixture_new(1);

	fx->fake.action[CPR_REQ_RESET_SOURCES] = ACT_STALE_FIRST;
	ck_assert_int_eq(start(fx, fx->client, CPR_REQ_RESET_SOURCES, 0, 0), 0);
	run_loop(fx);
	ck_assert_int_eq(fx->result.outcome, CCL_DONE);
	ck_assert_int_eq(fx->result.discarded, 2);
	fixture_free(fx);
}
END_TEST

START_TEST(client_resend_idempotent)
{
	Fixture *fx = fixture_new(1);
	int64_t t0 = 0;
	struct timespec ts;

	fx->fake.action[CPR_REQ_TRACKING] = ACT_IGNORE;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	t0 = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	ck_assert_int_eq(start(fx, fx->client, CPR_REQ_TRACKING, 0, 20), 0);
	run_loop(fx);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ck_assert_int_eq(fx->result.outcome, CCL_UNKNOWN);
	ck_assert_int_eq(fx->result.error, ETIMEDOUT);
	ck_assert_int_eq(fx->fake.n, 3);
	ck_assert_uint_eq(fx->fake.attempts[0], 0);
	ck_assert_uint_eq(fx->fake.attempts[1], 1);
	ck_assert_uint_eq(fx->fake.attempts[2], 2);
	ck_assert_int_ge((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - t0, 60000000);
	fixture_free(fx);
}
END_TEST

START_TEST(client_no_resend_dfreq)
{
	Fixture *fx = fixture_new(1);
	int64_t t0;
	struct timespec ts;

	fx->fake.action[CPR_REQ_DFREQ] = ACT_IGNORE;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	t0 = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	ck_assert_int_eq(start(fx, fx->client, CPR_REQ_DFREQ, 5.0, 20), 0);
	run_loop(fx);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ck_assert_int_eq(fx->result.outcome, CCL_UNKNOWN);
	ck_assert_int_eq(fx->result.error, ETIMEDOUT);
	ck_assert_int_eq(fx->fake.n, 1); /* sent exactly once */
	ck_assert_int_ge((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - t0, 60000000);
	fixture_free(fx);
}
END_TEST

START_TEST(client_status_failure)
{
	Fixture *fx = fixture_new(1);

	fx->fake.action[CPR_REQ_BURST] = ACT_STATUS;
	fx->fake.status[CPR_REQ_BURST] = CPR_STT_NOSUCHSOURCE;
	ck_assert_int_eq(start(fx, fx->client, CPR_REQ_BURST, 0, 0), 0);
	run_loop(fx);
	ck_assert_int_eq(fx->result.outcome, CCL_FAILED);
	ck_assert_int_eq(fx->result.error, ESRCH);
	ck_assert_int_eq(fx->result.status, CPR_STT_NOSUCHSOURCE);
	ck_assert_uint_eq(fx->fake.lengths[0], 68);
	fixture_free(fx);
}
END_TEST

START_TEST(client_chronyd_absent)
{
	Fixture *fx = fixture_new(0);
	CBK_Client b;
	CPR_Packet p;
	CCL_Result r;

	ck_assert_int_eq(start(fx, fx->client, CPR_REQ_RESET_SOURCES, 0, 0), 0);
	run_loop(fx);
	ck_assert_int_eq(fx->result.outcome, CCL_FAILED);
	ck_assert_int_eq(fx->result.error, ENOENT);

	ck_assert_int_eq(CBK_Open(fx->sock, &b), 0);
	CPR_MakeTracking(&p);
	ck_assert_int_eq(CBK_Request(b, &p, &r, 50), -ENOENT);

	/* A socket file nobody listens on. */
	{
		int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
		struct sockaddr_un sa = {.sun_family = AF_UNIX};

		strcpy(sa.sun_path, fx->sock);
		ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		close(fd);
	}
	ck_assert_int_eq(CBK_Request(b, &p, &r, 50), -ECONNREFUSED);
	CBK_Close(b);
	unlink(fx->sock);
	fixture_free(fx);
}
END_TEST

START_TEST(client_reconnects)
{
	Fixture *fx = fixture_new(1);

	ck_assert_int_eq(start(fx, fx->client, CPR_REQ_RESET_SOURCES, 0, 0), 0);
	run_loop(fx);
	ck_assert_int_eq(fx->result.outcome, CCL_DONE);

	/* chronyd restarts: a new socket at the same path */
	fake_stop(fx);
	fake_start(fx);
	ck_assert_int_eq(start(fx, fx->client, CPR_REQ_RESET_SOURCES, 0, 0), 0);
	run_loop(fx);
	ck_assert_msg(fx->result.outcome == CCL_DONE, "%s", fx->result.reason);
	ck_assert_int_eq(fx->done_calls, 2);
	fixture_free(fx);
}
END_TEST

static void close_in_done(const CCL_Result *r, void *arg)
{
	Fixture *fx = arg;

	fx->done_calls++;
	CCL_Close(fx->client);
	fx->client = NULL;
	event_base_loopbreak(fx->base);
}

START_TEST(client_close_from_callback)
{
	Fixture *fx = fixture_new(1);
	CPR_Packet p;

	CPR_MakeResetSources(&p);
	ck_assert_int_eq(CCL_Start(fx->client, &p, 0, 0, close_in_done, fx), 0);
	run_loop(fx);
	ck_assert_int_eq(fx->done_calls, 1);
	ck_assert_int_eq(CCL_Open(fx->sock, fx->base, &fx->client), 0);
	fixture_free(fx);
}
END_TEST

START_TEST(client_cancel)
{
	Fixture *fx = fixture_new(1);
	struct timeval t = {0, 100000};

	fx->fake.action[CPR_REQ_RESET_SOURCES] = ACT_IGNORE;
	ck_assert_int_eq(start(fx, fx->client, CPR_REQ_RESET_SOURCES, 0, 0), 0);
	event_base_loopexit(fx->base, &t);
	event_base_dispatch(fx->base);
	ck_assert(CCL_IsBusy(fx->client));
	CCL_Cancel(fx->client);
	ck_assert(!CCL_IsBusy(fx->client));
	event_base_loopexit(fx->base, &t);
	event_base_dispatch(fx->base);
	ck_assert_int_eq(fx->done_calls, 0);
	fixture_free(fx);
}
END_TEST

START_TEST(client_blocking)
{
	Fixture *fx = fixture_new(1);
	CBK_Client b;
	CPR_Packet p;
	CCL_Result r;

	/* Blocking use needs chronyd answering while we wait: give the stand-in
     its own thread of control by answering from a forked child. */
	pid_t pid;

	fake_stop(fx);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct event_base *base = EVB_New();

		fx->base = base;
		fake_start(fx);
		fx->fake.correction = -0.5;
		fx->fake.action[CPR_REQ_DFREQ] = ACT_STATUS;
		fx->fake.status[CPR_REQ_DFREQ] = CPR_STT_UNAUTH;
		event_base_dispatch(base);
		_exit(0);
	}
	for (int i = 0; i < 200 && access(fx->sock, F_OK) != 0; i++)
		usleep(5000);

	ck_assert_int_eq(CBK_Open(fx->sock, &b), 0);
	CPR_MakeTracking(&p);
	ck_assert_int_eq(CBK_Request(b, &p, &r, 200), 0);
	ck_assert(r.reply.have_tracking);
	ck_assert(r.reply.tracking.current_correction == -0.5);
	ck_assert_int_gt(r.rtt_ns, 0);
	ck_assert_int_eq(r.attempts, 1);
	ck_assert(r.rx_real.tv_sec >= r.tx_real.tv_sec);

	CPR_MakeDfreq(&p, 1.0);
	ck_assert_int_eq(CBK_Request(b, &p, &r, 200), -EACCES);
	ck_assert_int_eq(r.status, CPR_STT_UNAUTH);
	CBK_Close(b);

	kill(pid, SIGKILL); /* Check handles SIGTERM by killing the group */
	waitpid(pid, NULL, 0);
	unlink(fx->sock);
	fixture_free(fx);
}
END_TEST

static Suite *chronyctl_suite(void)
{
	Suite *s = suite_create("chronyctl");
	TCase *tc;

	tc = tcase_create("float");
	tcase_add_test(tc, float_vectors);
	tcase_add_test(tc, float_saturation_and_underflow);
	tcase_add_test(tc, float_rounding_carry);
	tcase_add_test(tc, float_round_trip_random);
	tcase_add_test(tc, float_values_round_trip_exactly);
	tcase_add_test(tc, float_monotonic);
	tcase_add_test(tc, float_typical_values);
	suite_add_tcase(s, tc);

	tc = tcase_create("packets");
	tcase_add_test(tc, request_sizes);
	tcase_add_test(tc, request_sequence);
	tcase_add_test(tc, reply_tracking);
	tcase_add_test(tc, reply_null);
	tcase_add_test(tc, reply_malformed);
	tcase_add_test(tc, status_names);
	suite_add_tcase(s, tc);

	tc = tcase_create("client");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, client_socket_path);
	tcase_add_test(tc, client_socket_symlink_race);
	tcase_add_test(tc, client_two_in_one_process);
	tcase_add_test(tc, client_requests);
	tcase_add_test(tc, client_stale_replies_discarded);
	tcase_add_test(tc, client_resend_idempotent);
	tcase_add_test(tc, client_no_resend_dfreq);
	tcase_add_test(tc, client_status_failure);
	tcase_add_test(tc, client_chronyd_absent);
	tcase_add_test(tc, client_reconnects);
	tcase_add_test(tc, client_close_from_callback);
	tcase_add_test(tc, client_cancel);
	tcase_add_test(tc, client_blocking);
	suite_add_tcase(s, tc);

	return s;
}

int main(void)
{
	const char *env = getenv("CCL_TEST_SEED");

	seed = env ? (unsigned int)strtoul(env, NULL, 0) : (unsigned int)time(NULL);
	printf("check_chronyctl: random seed %u (CCL_TEST_SEED=%u repeats it)\n", seed, seed);
	srand(seed);

	return CR_Run(chronyctl_suite(), CK_FORK_GETENV);
}
