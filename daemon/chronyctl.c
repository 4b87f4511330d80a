/* SPDX-License-Identifier: BSD-2-Clause
 *
 * chronyctl.c - chrony command protocol (version 6) over chronyd's Unix
 * command socket: packet encoding and checked decoding, a blocking exchange
 * and libevent-driven sequences (the disruption handover, reset, burst).
 *
 * Facts this relies on (chronyd 4.3 .. 4.8, see NOTES.md):
 *  - chronyd drops any request shorter than the reply it would send, so every
 *    request is zero-padded to the length of its reply;
 *  - a refused request is answered with a bare 28-byte header whose status
 *    field says why; the reply format field then reads RPY_NULL;
 *  - replies echo the command and the sequence number, not the attempt, so a
 *    late answer to an earlier attempt is indistinguishable from the answer to
 *    the latest one, and the round trip measured from the last send is a lower
 *    bound after a resend;
 *  - chronyd keeps no record of requests it has served: a resent DFREQ or
 *    DOFFSET2 that it had already received is applied twice.  Unix datagrams
 *    are not lost in transit, so those two are resent only when the previous
 *    send provably did not reach chronyd (EAGAIN); otherwise we wait longer
 *    once and report the outcome as unknown.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "chronyctl.h"

/* Float layout: 7-bit exponent above a 25-bit coefficient. */
#define FLOAT_EXP_BITS 7
#define FLOAT_COEF_BITS 25
#define FLOAT_EXP_LOW (-(1 << (FLOAT_EXP_BITS - 1)))           /* -64 */
#define FLOAT_EXP_HIGH ((1 << (FLOAT_EXP_BITS - 1)) - 1)       /* 63 */
#define FLOAT_COEF_LIMIT (INT32_C(1) << (FLOAT_COEF_BITS - 1)) /* 2^24 */

/* Byte offsets in the request. */
#define RQ_VERSION 0
#define RQ_PKT_TYPE 1
#define RQ_COMMAND 4
#define RQ_ATTEMPT 6
#define RQ_SEQUENCE 8
#define RQ_DATA 20
#define IPADDR_LEN 20 /* 16 address bytes, u16 family, u16 pad */
#define IPADDR_FAMILY 16

/* Byte offsets in the reply. */
#define RP_VERSION 0
#define RP_PKT_TYPE 1
#define RP_COMMAND 4
#define RP_REPLY 6
#define RP_STATUS 8
#define RP_SEQUENCE 16
#define RP_DATA 28

/* Lengths of each request without padding; see CCL_Make*. */
#define NULL_REQUEST_LEN RQ_DATA
#define FLOAT_REQUEST_LEN (RQ_DATA + 4)
#define BURST_REQUEST_LEN (RQ_DATA + 2 * IPADDR_LEN + 8)
#define MAKESTEP_REQUEST_LEN (RQ_DATA + 8)

#define TV_NOHIGHSEC 0x7fffffffu

/* ================================================== */
/* Byte order helpers */

static void put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint16_t get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ================================================== */
/* chrony's Float */

static uint32_t pack_float(int exponent, int32_t coef)
{
	return ((uint32_t)exponent & ((1u << FLOAT_EXP_BITS) - 1)) << FLOAT_COEF_BITS |
	       ((uint32_t)coef & ((1u << FLOAT_COEF_BITS) - 1));
}

uint32_t CCL_FloatEncode(double x)
{
	double magnitude, mantissa;
	int negative, binexp, exponent;
	int32_t coef, largest;

	if (isnan(x) || x == 0.0)
		return 0;

	negative = x < 0.0;
	magnitude = fabs(x);
	/* Two's complement allows one more step on the negative side. */
	largest = negative ? FLOAT_COEF_LIMIT : FLOAT_COEF_LIMIT - 1;

	if (isinf(magnitude)) {
		exponent = FLOAT_EXP_HIGH;
		coef = largest;
	} else {
		/* magnitude = mantissa * 2^binexp with mantissa in [0.5, 1); a coefficient
       of mantissa * 2^24 then goes with exponent binexp + 1. */
		mantissa = frexp(magnitude, &binexp);
		exponent = binexp + 1;
		coef = (int32_t)lround(ldexp(mantissa, FLOAT_COEF_BITS - 1));
		if (coef > largest) {
			/* Rounding reached 2^24, which is exactly 2^23 one exponent up. */
			coef >>= 1;
			exponent++;
		}

		if (exponent > FLOAT_EXP_HIGH) {
			exponent = FLOAT_EXP_HIGH;
			coef = largest;
		} else if (exponent < FLOAT_EXP_LOW) {
			/* Below the normal range: fewer significant bits at the lowest
         exponent, rounded from the original value. */
			exponent = FLOAT_EXP_LOW;
			coef = (int32_t)lround(ldexp(magnitude, FLOAT_COEF_BITS - FLOAT_EXP_LOW));
			if (coef == 0)
				return 0;
		}
	}

	return pack_float(exponent, negative ? -coef : coef);
}

double CCL_FloatDecode(uint32_t f)
{
	int exponent;
	int32_t coef;

	exponent = (int)(f >> FLOAT_COEF_BITS);
	if (exponent > FLOAT_EXP_HIGH)
		exponent -= 1 << FLOAT_EXP_BITS;

	coef = (int32_t)(f & ((1u << FLOAT_COEF_BITS) - 1));
	if (coef >= FLOAT_COEF_LIMIT)
		coef -= 2 * FLOAT_COEF_LIMIT;

	return ldexp((double)coef, exponent - FLOAT_COEF_BITS);
}

/* ================================================== */
/* Requests */

static void make_request(CCL_Packet *p, uint16_t command, size_t data_end)
{
	size_t reply_len;

	memset(p, 0, sizeof(*p));
	p->command = command;
	p->data[RQ_VERSION] = CCL_PROTO_VERSION;
	p->data[RQ_PKT_TYPE] = CCL_PKT_REQUEST;
	put_u16(p->data + RQ_COMMAND, command);

	/* Padding: as long as the successful reply, which is never shorter than
     an error reply. */
	reply_len = CCL_ExpectedReplyType(command) == CCL_RPY_TRACKING ? CCL_TRACKING_REPLY_LEN
								       : CCL_REPLY_HEADER_LEN;
	p->length = data_end > reply_len ? data_end : reply_len;
}

void CCL_MakeResetSources(CCL_Packet *p)
{
	make_request(p, CCL_REQ_RESET_SOURCES, NULL_REQUEST_LEN);
}

void CCL_MakeTracking(CCL_Packet *p)
{
	make_request(p, CCL_REQ_TRACKING, NULL_REQUEST_LEN);
}

void CCL_MakeMakestep(CCL_Packet *p)
{
	make_request(p, CCL_REQ_MAKESTEP, NULL_REQUEST_LEN);
}

void CCL_MakeDfreq(CCL_Packet *p, double dfreq_ppm)
{
	make_request(p, CCL_REQ_DFREQ, FLOAT_REQUEST_LEN);
	put_u32(p->data + RQ_DATA, CCL_FloatEncode(dfreq_ppm));
}

void CCL_MakeDoffset(CCL_Packet *p, double doffset_s)
{
	make_request(p, CCL_REQ_DOFFSET2, FLOAT_REQUEST_LEN);
	put_u32(p->data + RQ_DATA, CCL_FloatEncode(doffset_s));
}

void CCL_MakeBurst(CCL_Packet *p, int n_good_samples, int n_total_samples)
{
	uint8_t *d;

	make_request(p, CCL_REQ_BURST, BURST_REQUEST_LEN);
	d = p->data + RQ_DATA;
	/* Mask and address stay all zero: family unspecified selects every NTP
     source. */
	put_u32(d + 2 * IPADDR_LEN, (uint32_t)n_good_samples);
	put_u32(d + 2 * IPADDR_LEN + 4, (uint32_t)n_total_samples);
}

void CCL_MakeModifyMakestep(CCL_Packet *p, int limit, double threshold_s)
{
	make_request(p, CCL_REQ_MODIFY_MAKESTEP, MAKESTEP_REQUEST_LEN);
	put_u32(p->data + RQ_DATA, (uint32_t)limit);
	put_u32(p->data + RQ_DATA + 4, CCL_FloatEncode(threshold_s));
}

void CCL_SetSequence(CCL_Packet *p, uint32_t sequence, uint16_t attempt)
{
	p->sequence = sequence;
	p->attempt = attempt;
	put_u16(p->data + RQ_ATTEMPT, attempt);
	put_u32(p->data + RQ_SEQUENCE, sequence);
}

uint16_t CCL_ExpectedReplyType(uint16_t command)
{
	return command == CCL_REQ_TRACKING ? CCL_RPY_TRACKING : CCL_RPY_NULL;
}

/* ================================================== */
/* Replies */

static void decode_tracking(const uint8_t *d, CCL_Tracking *t)
{
	uint32_t sec_high;

	memset(t, 0, sizeof(*t));
	t->ref_id = get_u32(d + 0);
	memcpy(t->ip_addr, d + 4, sizeof(t->ip_addr));
	t->ip_family = get_u16(d + 4 + IPADDR_FAMILY);
	t->stratum = get_u16(d + 24);
	t->leap_status = get_u16(d + 26);
	sec_high = get_u32(d + 28);
	if (sec_high == TV_NOHIGHSEC)
		sec_high = 0;
	t->ref_time.tv_sec = (time_t)((uint64_t)sec_high << 32 | get_u32(d + 32));
	t->ref_time.tv_nsec = get_u32(d + 36);
	if (t->ref_time.tv_nsec > 999999999)
		t->ref_time.tv_nsec = 999999999;
	t->current_correction = CCL_FloatDecode(get_u32(d + 40));
	t->last_offset = CCL_FloatDecode(get_u32(d + 44));
	t->rms_offset = CCL_FloatDecode(get_u32(d + 48));
	t->freq_ppm = CCL_FloatDecode(get_u32(d + 52));
	t->resid_freq_ppm = CCL_FloatDecode(get_u32(d + 56));
	t->skew_ppm = CCL_FloatDecode(get_u32(d + 60));
	t->root_delay = CCL_FloatDecode(get_u32(d + 64));
	t->root_dispersion = CCL_FloatDecode(get_u32(d + 68));
	t->last_update_interval = CCL_FloatDecode(get_u32(d + 72));
}

CCL_DecodeResult CCL_DecodeReply(const CCL_Packet *request, const void *buf, size_t len,
				 CCL_Reply *reply)
{
	const uint8_t *b = buf;
	uint16_t expected_type;

	memset(reply, 0, sizeof(*reply));

	if (len < CCL_REPLY_HEADER_LEN)
		return CCL_DEC_SHORT;
	if (b[RP_PKT_TYPE] != CCL_PKT_REPLY)
		return CCL_DEC_PKT_TYPE;

	reply->command = get_u16(b + RP_COMMAND);
	reply->reply_type = get_u16(b + RP_REPLY);
	reply->status = get_u16(b + RP_STATUS);
	reply->sequence = get_u32(b + RP_SEQUENCE);

	if (reply->command != request->command)
		return CCL_DEC_COMMAND;
	if (reply->sequence != request->sequence)
		return CCL_DEC_SEQUENCE;
	/* Checked after the echo so that an unrelated packet stays just stale; a
     chronyd speaking another version answers STT_BADPKTVERSION in its own. */
	if (b[RP_VERSION] != CCL_PROTO_VERSION)
		return CCL_DEC_VERSION;
	if (reply->status != CCL_STT_SUCCESS)
		return CCL_DEC_STATUS;

	expected_type = CCL_ExpectedReplyType(request->command);
	if (reply->reply_type != expected_type)
		return CCL_DEC_REPLY_TYPE;

	if (expected_type == CCL_RPY_TRACKING) {
		if (len < CCL_TRACKING_REPLY_LEN)
			return CCL_DEC_SHORT;
		decode_tracking(b + RP_DATA, &reply->tracking);
		reply->have_tracking = 1;
	}

	return CCL_DEC_OK;
}

const char *CCL_DecodeResultName(CCL_DecodeResult r)
{
	switch (r) {
	case CCL_DEC_OK:
		return "ok";
	case CCL_DEC_SHORT:
		return "reply too short";
	case CCL_DEC_PKT_TYPE:
		return "not a reply";
	case CCL_DEC_VERSION:
		return "protocol version mismatch";
	case CCL_DEC_COMMAND:
		return "reply to another command";
	case CCL_DEC_SEQUENCE:
		return "stale sequence number";
	case CCL_DEC_STATUS:
		return "chronyd refused the command";
	case CCL_DEC_REPLY_TYPE:
		return "unexpected reply format";
	}
	return "unknown decode result";
}

int CCL_StatusToErrno(uint16_t status)
{
	switch (status) {
	case CCL_STT_SUCCESS:
		return 0;
	case CCL_STT_UNAUTH:
		return EACCES;
	case CCL_STT_INVALID:
		return EINVAL;
	case CCL_STT_NOSUCHSOURCE:
		return ESRCH;
	case CCL_STT_INVALIDTS:
		return ERANGE;
	case CCL_STT_NOTENABLED:
		return ENOTSUP;
	case CCL_STT_INACTIVE:
		return EAGAIN;
	case CCL_STT_INVALIDAF:
		return EAFNOSUPPORT;
	case CCL_STT_BADPKTVERSION:
		return EPROTONOSUPPORT;
	case CCL_STT_BADPKTLENGTH:
		return EMSGSIZE;
	case CCL_STT_FAILED:
		return EIO;
	default:
		return EPROTO;
	}
}

const char *CCL_StatusName(uint16_t status)
{
	switch (status) {
	case CCL_STT_SUCCESS:
		return "success";
	case CCL_STT_FAILED:
		return "failed";
	case CCL_STT_UNAUTH:
		return "unauthorised";
	case CCL_STT_INVALID:
		return "invalid command";
	case CCL_STT_NOSUCHSOURCE:
		return "no such source";
	case CCL_STT_INVALIDTS:
		return "invalid timestamp";
	case CCL_STT_NOTENABLED:
		return "not enabled";
	case CCL_STT_BADSUBNET:
		return "bad subnet";
	case CCL_STT_ACCESSALLOWED:
		return "access allowed";
	case CCL_STT_ACCESSDENIED:
		return "access denied";
	case CCL_STT_NOHOSTACCESS:
		return "no host access";
	case CCL_STT_SOURCEALREADYKNOWN:
		return "source already known";
	case CCL_STT_TOOMANYSOURCES:
		return "too many sources";
	case CCL_STT_NORTC:
		return "no RTC";
	case CCL_STT_BADRTCFILE:
		return "bad RTC file";
	case CCL_STT_INACTIVE:
		return "inactive";
	case CCL_STT_BADSAMPLE:
		return "bad sample";
	case CCL_STT_INVALIDAF:
		return "invalid address family";
	case CCL_STT_BADPKTVERSION:
		return "bad packet version";
	case CCL_STT_BADPKTLENGTH:
		return "bad packet length";
	case CCL_STT_INVALIDNAME:
		return "invalid name";
	}
	return "unknown status";
}

/* ================================================== */
/* Client */

struct CCL_Client_Record {
	int fd;
	int bound; /* local path is ours to unlink */
	int connected;
	struct sockaddr_un local;
	struct sockaddr_un remote;
	struct event_base *base;
	struct event *read_ev;
	struct event *timer_ev;
	uint32_t next_sequence;

	/* The running asynchronous operation. */
	int busy;
	int waiting; /* a request is out, timer is its timeout */
	CCL_Step steps[CCL_STEP_COUNT];
	int n_steps;
	int step_index;
	CCL_HandoverParams params;
	CCL_DoneFn done;
	void *done_arg;
	CCL_Result result;
	CCL_Packet request;
	int tries;
	int delivered; /* some attempt of this step reached chronyd */
	struct timespec start_mono;
	struct timespec tx_mono;
};

typedef enum {
	VERDICT_ACCEPT,
	VERDICT_DISCARD,
	VERDICT_FAIL,
} Verdict;

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t ts_diff_ns(const struct timespec *a, const struct timespec *b)
{
	return (int64_t)(a->tv_sec - b->tv_sec) * 1000000000 + (a->tv_nsec - b->tv_nsec);
}

static int is_idempotent(uint16_t command)
{
	return command != CCL_REQ_DFREQ && command != CCL_REQ_DOFFSET2;
}

static int connect_remote(CCL_Client c)
{
	c->connected = 0;
	if (connect(c->fd, (struct sockaddr *)&c->remote, sizeof(c->remote)) < 0)
		return -errno;
	c->connected = 1;
	return 0;
}

static int is_absent_error(int err)
{
	return err == ECONNREFUSED || err == ENOENT || err == ENOTCONN || err == ECONNRESET ||
	       err == EDESTADDRREQ;
}

/* Send the current datagram, re-connecting once when chronyd has gone away
   (restarted, or never was).  0 when sent, -EAGAIN when it provably did not
   reach chronyd but may later, other negative errno values for failure. */
static int send_packet(CCL_Client c, const CCL_Packet *p)
{
	ssize_t r;
	int err, pass;

	for (pass = 0; pass < 2; pass++) {
		if (!c->connected) {
			err = connect_remote(c);
			if (err < 0)
				return err == -EAGAIN ? -ECONNREFUSED : err;
		}

		r = send(c->fd, p->data, p->length, 0);
		if (r == (ssize_t)p->length)
			return 0;
		if (r >= 0)
			return -EMSGSIZE;

		err = errno;
		if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS || err == EINTR)
			return -EAGAIN;
		if (!is_absent_error(err))
			return -err;
		c->connected = 0;
	}

	return -ECONNREFUSED;
}

static Verdict judge_reply(CCL_DecodeResult r, int *error)
{
	switch (r) {
	case CCL_DEC_OK:
		*error = 0;
		return VERDICT_ACCEPT;
	case CCL_DEC_PKT_TYPE:
	case CCL_DEC_COMMAND:
	case CCL_DEC_SEQUENCE:
		return VERDICT_DISCARD;
	case CCL_DEC_VERSION:
		*error = EPROTONOSUPPORT;
		return VERDICT_FAIL;
	case CCL_DEC_STATUS:
		*error = -1; /* caller maps the status */
		return VERDICT_FAIL;
	case CCL_DEC_SHORT:
	case CCL_DEC_REPLY_TYPE:
		break;
	}
	*error = EPROTO;
	return VERDICT_FAIL;
}

/* Clients bound by this process, which has one socket name per client. */
static unsigned int open_count;

static void read_cb(evutil_socket_t fd, short what, void *arg);
static void timer_cb(evutil_socket_t fd, short what, void *arg);

CCL_Client CCL_Open(const char *chronyd_sock, struct event_base *base)
{
	CCL_Client c;
	const char *slash;
	size_t dir_len;
	int n, err;

	if (!chronyd_sock || !*chronyd_sock) {
		errno = EINVAL;
		return NULL;
	}

	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->fd = -1;
	c->base = base;

	c->remote.sun_family = AF_UNIX;
	if (strlen(chronyd_sock) >= sizeof(c->remote.sun_path)) {
		err = ENAMETOOLONG;
		goto fail;
	}
	strcpy(c->remote.sun_path, chronyd_sock);

	slash = strrchr(chronyd_sock, '/');
	dir_len = slash ? (size_t)(slash - chronyd_sock) : 1;
	c->local.sun_family = AF_UNIX;
	/* The daemon has one client; further ones in the same process (tests,
     tools) get a counter so they do not unlink each other's socket. */
	if (open_count == 0)
		n = snprintf(c->local.sun_path, sizeof(c->local.sun_path), "%.*s/vmclockd.%d.sock",
			     (int)dir_len, slash ? chronyd_sock : ".", (int)getpid());
	else
		n = snprintf(c->local.sun_path, sizeof(c->local.sun_path),
			     "%.*s/vmclockd.%d.%u.sock", (int)dir_len, slash ? chronyd_sock : ".",
			     (int)getpid(), open_count);
	if (n < 0 || (size_t)n >= sizeof(c->local.sun_path)) {
		err = ENAMETOOLONG;
		goto fail;
	}

	c->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		err = errno;
		goto fail;
	}

	/* A leftover from a previous process with our pid. */
	if (unlink(c->local.sun_path) < 0 && errno != ENOENT) {
		err = errno;
		goto fail;
	}
	if (bind(c->fd, (struct sockaddr *)&c->local, sizeof(c->local)) < 0) {
		err = errno;
		goto fail;
	}
	c->bound = 1;
	open_count++;
	/* chronyd answers from its own, unprivileged uid. */
	if (chmod(c->local.sun_path, 0666) < 0) {
		err = errno;
		goto fail;
	}

	/* chronyd may not be running yet; exchanges connect again. */
	(void)connect_remote(c);

	if (getrandom(&c->next_sequence, sizeof(c->next_sequence), GRND_NONBLOCK) !=
	    sizeof(c->next_sequence))
		c->next_sequence = (uint32_t)mono_ns() ^ (uint32_t)getpid() << 16;

	if (base) {
		c->read_ev = event_new(base, c->fd, EV_READ | EV_PERSIST, read_cb, c);
		c->timer_ev = evtimer_new(base, timer_cb, c);
		if (!c->read_ev || !c->timer_ev || event_add(c->read_ev, NULL) < 0) {
			err = ENOMEM;
			goto fail;
		}
	}

	return c;

fail:
	CCL_Close(c);
	errno = err;
	return NULL;
}

void CCL_Close(CCL_Client c)
{
	if (!c)
		return;
	CCL_Cancel(c);
	if (c->read_ev)
		event_free(c->read_ev);
	if (c->timer_ev)
		event_free(c->timer_ev);
	if (c->fd >= 0)
		close(c->fd);
	if (c->bound)
		unlink(c->local.sun_path);
	free(c);
}

const char *CCL_GetLocalPath(CCL_Client c)
{
	return c->local.sun_path;
}

/* ================================================== */
/* Blocking exchange */

static int wait_reply(CCL_Client c, CCL_Packet *request, CCL_Reply *reply, int64_t deadline_ns,
		      int *done)
{
	uint8_t buf[CCL_MAX_REPLY_LEN];
	struct pollfd pfd;
	struct timespec rx_mono, rx_real;
	CCL_DecodeResult dr;
	int64_t left;
	ssize_t len;
	int error;

	*done = 0;
	for (;;) {
		left = deadline_ns - mono_ns();
		if (left <= 0)
			return 0;

		pfd.fd = c->fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (poll(&pfd, 1, (int)((left + 999999) / 1000000)) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (!(pfd.revents & POLLIN))
			continue;

		for (;;) {
			len = recv(c->fd, buf, sizeof(buf), 0);
			if (len < 0)
				break;
			clock_gettime(CLOCK_MONOTONIC, &rx_mono);
			clock_gettime(CLOCK_REALTIME, &rx_real);

			dr = CCL_DecodeReply(request, buf, (size_t)len, reply);
			switch (judge_reply(dr, &error)) {
			case VERDICT_DISCARD:
				continue;
			case VERDICT_ACCEPT:
				reply->rtt_ns = ts_diff_ns(&rx_mono, &c->tx_mono);
				reply->rx_real = rx_real;
				*done = 1;
				return 0;
			case VERDICT_FAIL:
				*done = 1;
				return error < 0 ? -CCL_StatusToErrno(reply->status) : -error;
			}
		}
	}
}

int CCL_Request(CCL_Client c, CCL_Packet *request, CCL_Reply *reply, int timeout_ms)
{
	struct timespec tx_real;
	int attempt, err, done, delivered = 0, attempts = 0;
	int64_t wait_ns;

	memset(reply, 0, sizeof(*reply));
	if (c->busy)
		return -EBUSY;
	if (timeout_ms <= 0)
		timeout_ms = CCL_DEFAULT_TIMEOUT_MS;

	c->next_sequence++;
	for (attempt = 0; attempt < CCL_DEFAULT_TRIES; attempt++) {
		CCL_SetSequence(request, c->next_sequence, (uint16_t)attempt);
		clock_gettime(CLOCK_REALTIME, &tx_real);
		clock_gettime(CLOCK_MONOTONIC, &c->tx_mono);
		err = send_packet(c, request);
		if (err == 0) {
			attempts++;
			delivered = 1;
			wait_ns = (int64_t)timeout_ms * 1000000;
			if (!is_idempotent(request->command))
				wait_ns *= CCL_DEFAULT_TRIES - attempt;
		} else if (err == -EAGAIN) {
			wait_ns = (int64_t)timeout_ms * 1000000;
		} else {
			return err;
		}

		err = wait_reply(c, request, reply, mono_ns() + wait_ns, &done);
		reply->tx_real = tx_real;
		reply->attempts = attempts;
		if (done || err < 0)
			return err;
		if (delivered && !is_idempotent(request->command))
			break;
	}

	return -ETIMEDOUT;
}

/* ================================================== */
/* Asynchronous operations */

const char *CCL_StepName(CCL_Step step)
{
	switch (step) {
	case CCL_STEP_NONE:
		return "none";
	case CCL_STEP_RESET:
		return "reset sources";
	case CCL_STEP_TRACKING:
		return "tracking";
	case CCL_STEP_DFREQ:
		return "dfreq";
	case CCL_STEP_DOFFSET:
		return "doffset";
	case CCL_STEP_BURST:
		return "burst";
	case CCL_STEP_COUNT:
		break;
	}
	return "unknown step";
}

static const char *reason_for(int error)
{
	switch (error) {
	case 0:
		return "ok";
	case ENOENT:
		return "chronyd's socket does not exist (not running?)";
	case ECONNREFUSED:
		return "chronyd's socket refuses connections (not running?)";
	case ETIMEDOUT:
		return "no reply from chronyd";
	case EPROTO:
		return "malformed reply from chronyd";
	case EPROTONOSUPPORT:
		return "chronyd speaks another protocol version";
	case ENODATA:
		return "no offset sample for doffset";
	case EACCES:
	case EPERM:
		return "no permission to use chronyd's socket (group?)";
	default:
		return strerror(error);
	}
}

/* Report and forget the operation.  The callback may close the client, so
   callers return straight after. */
static void finish(CCL_Client c, int error, int status)
{
	CCL_Result result;
	CCL_DoneFn done;
	void *arg;
	CCL_Step step;

	step = c->step_index < c->n_steps ? c->steps[c->step_index] : CCL_STEP_NONE;
	result = c->result;
	result.ok = error == 0;
	result.error = error;
	result.status = status;
	result.failed_step = error ? step : CCL_STEP_NONE;
	result.reason = status > 0 ? CCL_StatusName((uint16_t)status) : reason_for(error);
	result.duration_ns =
		mono_ns() - ((int64_t)c->start_mono.tv_sec * 1000000000 + c->start_mono.tv_nsec);

	done = c->done;
	arg = c->done_arg;
	CCL_Cancel(c);
	if (done)
		done(&result, arg);
}

static int step_timeout_ms(CCL_Client c)
{
	return c->params.timeout_ms > 0 ? c->params.timeout_ms : CCL_DEFAULT_TIMEOUT_MS;
}

static int step_tries(CCL_Client c)
{
	return c->params.max_tries > 0 ? c->params.max_tries : CCL_DEFAULT_TRIES;
}

static void arm_timer(CCL_Client c, int64_t ms)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000 * 1000);
	evtimer_add(c->timer_ev, &tv);
}

/* Send (or resend) the step's request and arm its timeout.  Returns 0, or
   nonzero after finish() was called. */
static int send_step(CCL_Client c)
{
	CCL_Step step = c->steps[c->step_index];
	int err;
	int64_t wait_ms;

	CCL_SetSequence(&c->request, c->request.sequence, (uint16_t)c->tries);
	c->tries++;
	clock_gettime(CLOCK_MONOTONIC, &c->tx_mono);
	err = send_packet(c, &c->request);
	if (err == 0) {
		c->result.attempts++;
		c->delivered = 1;
		wait_ms = step_timeout_ms(c);
		if (!is_idempotent(c->request.command))
			wait_ms *= step_tries(c) - c->tries + 1;
	} else if (err == -EAGAIN && c->tries < step_tries(c)) {
		wait_ms = step_timeout_ms(c);
	} else {
		if (err == -EAGAIN)
			err = -ETIMEDOUT;
		c->result.state[step] = c->delivered ? CCL_STATE_UNKNOWN : CCL_STATE_FAILED;
		finish(c, -err, -1);
		return 1;
	}

	c->waiting = 1;
	arm_timer(c, wait_ms);
	return 0;
}

/* Start the step at step_index, or report success after the last. */
static void begin_step(CCL_Client c)
{
	CCL_Step step;
	double o;

	if (c->step_index >= c->n_steps) {
		finish(c, 0, -1);
		return;
	}

	step = c->steps[c->step_index];
	switch (step) {
	case CCL_STEP_RESET:
		CCL_MakeResetSources(&c->request);
		break;
	case CCL_STEP_TRACKING:
		CCL_MakeTracking(&c->request);
		break;
	case CCL_STEP_DFREQ:
		CCL_MakeDfreq(&c->request, c->params.dfreq_ppm);
		break;
	case CCL_STEP_DOFFSET:
		/* The offset is read as late as possible: right before sending. */
		o = c->params.offset_fn(c->params.offset_arg);
		if (!isfinite(o)) {
			c->result.state[step] = CCL_STATE_FAILED;
			finish(c, ENODATA, -1);
			return;
		}
		c->result.have_offset = 1;
		c->result.offset = o;
		c->result.doffset = -(o - c->result.correction);
		CCL_MakeDoffset(&c->request, c->result.doffset);
		break;
	case CCL_STEP_BURST:
		CCL_MakeBurst(&c->request, 4, 8);
		break;
	case CCL_STEP_NONE:
	case CCL_STEP_COUNT:
		abort();
	}

	c->request.sequence = ++c->next_sequence;
	c->tries = 0;
	c->delivered = 0;
	(void)send_step(c);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	CCL_Client c = arg;
	CCL_Step step;

	if (!c->busy)
		return;
	if (!c->waiting) {
		begin_step(c);
		return;
	}

	step = c->steps[c->step_index];
	if ((c->delivered && !is_idempotent(c->request.command)) || c->tries >= step_tries(c)) {
		c->result.state[step] = c->delivered ? CCL_STATE_UNKNOWN : CCL_STATE_FAILED;
		finish(c, ETIMEDOUT, -1);
		return;
	}
	(void)send_step(c);
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
	uint8_t buf[CCL_MAX_REPLY_LEN];
	CCL_Client c = arg;
	CCL_Reply reply;
	CCL_DecodeResult dr;
	CCL_Step step;
	ssize_t len;
	int error;

	for (;;) {
		len = recv(c->fd, buf, sizeof(buf), 0);
		if (len < 0)
			return;
		if (!c->busy || !c->waiting) {
			/* Late answers to a finished or blocking exchange. */
			continue;
		}

		dr = CCL_DecodeReply(&c->request, buf, (size_t)len, &reply);
		step = c->steps[c->step_index];
		switch (judge_reply(dr, &error)) {
		case VERDICT_DISCARD:
			c->result.discarded++;
			continue;
		case VERDICT_FAIL:
			c->result.state[step] = CCL_STATE_FAILED;
			if (error < 0)
				finish(c, CCL_StatusToErrno(reply.status), reply.status);
			else
				finish(c, error, -1);
			return;
		case VERDICT_ACCEPT:
			break;
		}

		evtimer_del(c->timer_ev);
		c->waiting = 0;
		c->result.state[step] = CCL_STATE_DONE;
		c->result.rtt_ns[step] =
			mono_ns() - ((int64_t)c->tx_mono.tv_sec * 1000000000 + c->tx_mono.tv_nsec);
		if (step == CCL_STEP_TRACKING) {
			c->result.tracking = reply.tracking;
			c->result.correction = reply.tracking.current_correction;
			c->result.have_correction = 1;
		}
		c->step_index++;
		/* May finish and free the client: nothing after this. */
		begin_step(c);
		return;
	}
}

static int start_operation(CCL_Client c, const CCL_Step *steps, int n_steps,
			   const CCL_HandoverParams *p, CCL_DoneFn done, void *arg)
{
	struct timeval now = {0, 0};
	int i;

	if (!c->base) {
		errno = EINVAL;
		return -1;
	}
	if (c->busy) {
		errno = EBUSY;
		return -1;
	}

	memset(&c->result, 0, sizeof(c->result));
	memset(&c->params, 0, sizeof(c->params));
	if (p)
		c->params = *p;
	for (i = 0; i < CCL_STEP_COUNT; i++)
		c->result.state[i] = CCL_STATE_SKIPPED;
	c->result.status = -1;
	for (i = 0; i < n_steps; i++) {
		c->steps[i] = steps[i];
		c->result.state[steps[i]] = CCL_STATE_NOT_RUN;
	}
	c->n_steps = n_steps;
	c->step_index = 0;
	c->done = done;
	c->done_arg = arg;
	c->busy = 1;
	c->waiting = 0;
	clock_gettime(CLOCK_MONOTONIC, &c->start_mono);

	/* Begin from the loop, so that done() never runs inside Start. */
	evtimer_add(c->timer_ev, &now);
	return 0;
}

int CCL_StartHandover(CCL_Client c, const CCL_HandoverParams *p, CCL_DoneFn done, void *arg)
{
	CCL_Step steps[CCL_STEP_COUNT];
	int n = 0;

	if (!p) {
		errno = EINVAL;
		return -1;
	}
	steps[n++] = CCL_STEP_RESET;
	steps[n++] = CCL_STEP_TRACKING;
	if (p->have_dfreq)
		steps[n++] = CCL_STEP_DFREQ;
	if (p->offset_fn)
		steps[n++] = CCL_STEP_DOFFSET;
	return start_operation(c, steps, n, p, done, arg);
}

int CCL_StartReset(CCL_Client c, CCL_DoneFn done, void *arg)
{
	static const CCL_Step steps[] = {CCL_STEP_RESET};

	return start_operation(c, steps, 1, NULL, done, arg);
}

int CCL_StartTracking(CCL_Client c, CCL_DoneFn done, void *arg)
{
	static const CCL_Step steps[] = {CCL_STEP_TRACKING};

	return start_operation(c, steps, 1, NULL, done, arg);
}

int CCL_StartBurst(CCL_Client c, CCL_DoneFn done, void *arg)
{
	static const CCL_Step steps[] = {CCL_STEP_BURST};

	return start_operation(c, steps, 1, NULL, done, arg);
}

void CCL_Cancel(CCL_Client c)
{
	c->busy = 0;
	c->waiting = 0;
	c->done = NULL;
	if (c->timer_ev)
		evtimer_del(c->timer_ev);
}

int CCL_IsBusy(CCL_Client c)
{
	return c->busy;
}
