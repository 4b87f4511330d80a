/* SPDX-License-Identifier: BSD-2-Clause
 *
 * chronyd_double.c - a double of chronyd's command socket (chronyd_double.h).
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <check.h>

#include "chronyd_double.h"

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)get16(p) << 16 | get16(p + 2);
}

/* The length of chronyd's reply to COMMAND when it succeeds. */
static size_t reply_len(uint16_t command)
{
	return command == CPR_REQ_TRACKING ? CPR_TRACKING_REPLY_LEN : CPR_REPLY_HEADER_LEN;
}

/* chronyd's reply to a request: its header, and for a tracking request
 * that succeeds the report (offsets of chrony's RPY_Tracking). */
static size_t encode_reply(const CHD_Chronyd *c, const uint8_t *req, uint8_t *out)
{
	const CPR_Tracking *t = &c->t;
	uint16_t command = get16(req + 4);
	bool tracking = command == CPR_REQ_TRACKING && c->mode == CHD_ANSWER;

	memset(out, 0, CPR_MAX_REPLY_LEN);
	out[0] = CPR_PROTO_VERSION;
	out[1] = CPR_PKT_REPLY;
	put16(out + 4, command);
	put16(out + 6, tracking ? CPR_RPY_TRACKING : CPR_RPY_NULL);
	put16(out + 8, c->mode == CHD_REFUSE ? CPR_STT_FAILED : CPR_STT_SUCCESS);
	memcpy(out + 16, req + 8, 4); /* the request's sequence */
	if (!tracking)
		return CPR_REPLY_HEADER_LEN;
	put32(out + 28, t->ref_id);
	put16(out + 48, 1); /* IPv4 */
	put16(out + 52, t->stratum);
	put16(out + 54, t->leap_status);
	put32(out + 56, 0);
	put32(out + 60, (uint32_t)t->ref_time.tv_sec);
	put32(out + 64, (uint32_t)t->ref_time.tv_nsec);
	put32(out + 68, CPR_FloatEncode(t->current_correction));
	put32(out + 72, CPR_FloatEncode(t->last_offset));
	put32(out + 76, CPR_FloatEncode(t->rms_offset));
	put32(out + 80, CPR_FloatEncode(t->freq_ppm));
	put32(out + 84, CPR_FloatEncode(t->resid_freq_ppm));
	put32(out + 88, CPR_FloatEncode(t->skew_ppm));
	put32(out + 92, CPR_FloatEncode(t->root_delay));
	put32(out + 96, CPR_FloatEncode(t->root_dispersion));
	put32(out + 100, CPR_FloatEncode(t->last_update_interval));
	return CPR_TRACKING_REPLY_LEN;
}

/* Counts what chronyd received (the request's data starts after its
 * header: a dfreq's or doffset's Float first) and applies a dfreq. */
static void count(CHD_Chronyd *c, uint16_t command, const uint8_t *req)
{
	double value = CPR_FloatDecode(get32(req + CPR_REQUEST_HEADER_LEN));

	c->requests++;
	switch (command) {
	case CPR_REQ_TRACKING:
		c->tracking++;
		break;
	case CPR_REQ_RESET_SOURCES:
		c->resets++;
		break;
	case CPR_REQ_DFREQ:
		c->dfreqs++;
		c->dfreq_ppm = value;
		/* chrony scales the rate: (1 - f') = (1 - f)(1 - d), in ppm. */
		c->t.freq_ppm += value * (1.0 - c->t.freq_ppm * 1e-6);
		break;
	case CPR_REQ_DOFFSET2:
		c->doffsets++;
		c->doffset_s = value;
		break;
	case CPR_REQ_MAKESTEP:
		c->makesteps++;
		break;
	case CPR_REQ_BURST:
		c->bursts++;
		break;
	default:
		ck_abort_msg("chronyd double: request %u not expected", command);
	}
}

static void chronyd_read(evutil_socket_t fd, short what, void *arg)
{
	CHD_Chronyd *c = arg;
	uint8_t req[CPR_MAX_REQUEST_LEN + 64], out[CPR_MAX_REPLY_LEN];
	struct sockaddr_un from;
	socklen_t fromlen = sizeof(from);
	ssize_t len = recvfrom(fd, req, sizeof(req), 0, (struct sockaddr *)&from, &fromlen);
	void (*on_request)(void) = c->on_request;
	uint16_t command;

	/* chronyd drops what is not a request of its version, or shorter than
	 * the reply it would get. */
	if (len < CPR_REQUEST_HEADER_LEN || req[0] != CPR_PROTO_VERSION ||
	    req[1] != CPR_PKT_REQUEST)
		return;
	command = get16(req + 4);
	if ((size_t)len < reply_len(command))
		return;
	count(c, command, req);
	snprintf(c->client, sizeof(c->client), "%s", from.sun_path);
	c->on_request = NULL;
	if (on_request)
		on_request();
	sendto(fd, out, encode_reply(c, req, out), 0, (struct sockaddr *)&from, fromlen);
}

void CHD_Start(CHD_Chronyd *c, struct event_base *base, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	ck_assert_uint_lt(strlen(path), sizeof(sa.sun_path));
	snprintf(c->path, sizeof(c->path), "%s", path);
	strcpy(sa.sun_path, c->path);
	c->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	ck_assert_int_ge(c->fd, 0);
	ck_assert_int_eq(bind(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	c->ev = event_new(base, c->fd, EV_READ | EV_PERSIST, chronyd_read, c);
	ck_assert_ptr_nonnull(c->ev);
	event_add(c->ev, NULL);
}

void CHD_Stop(CHD_Chronyd *c)
{
	if (!c->ev)
		return;
	event_free(c->ev);
	close(c->fd);
	unlink(c->path);
	c->ev = NULL;
}
