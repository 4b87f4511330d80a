/* SPDX-License-Identifier: BSD-2-Clause
 *
 * chrony_client.c - one request at a time over chronyd's Unix command
 * socket, driven by libevent.
 *
 * chronyd keeps no record of requests it has served: a resent DFREQ or
 * DOFFSET2 that it had already received is applied twice.  Unix datagrams
 * are not lost in transit, so those two are resent only when the previous
 * send provably did not reach chronyd (EAGAIN); otherwise we wait longer
 * once and report the outcome as unknown, for the caller to resolve.
 *
 * The reply socket lives in chronyd's run directory, which others (group
 * _chrony) can write.  Every path operation there is on a name we chose and
 * none follows a symbolic link: unlink (a stale socket of an earlier process
 * with our pid) removes whatever entry is there, bind fails on an existing
 * entry of any kind, and the socket's mode is set by the umask at bind time,
 * never by a chmod() of the path afterwards (which would follow a symlink
 * swapped in after the bind).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "../common/timeutil.h"

#include "chrony_client.h"

/* chronyd answers from its own, unprivileged uid: rw for everyone. */
#define REPLY_SOCKET_UMASK 0111

struct CCL_Client_Record {
	int fd;
	bool bound; /* local path is ours to unlink */
	bool connected;
	struct sockaddr_un local;
	struct sockaddr_un remote;
	struct event_base *base;
	struct event *read_ev;
	struct event *timer_ev;
	uint32_t next_sequence;

	/* The request in flight. */
	bool busy;
	bool waiting; /* a datagram is out, timer is its timeout */
	CPR_Packet request;
	int timeout_ms;
	int max_tries;
	int tries;
	bool delivered; /* some attempt reached chronyd */
	CCL_DoneFn done;
	void *done_arg;
	CCL_Result result;
	struct timespec tx_mono;
};

static int connect_remote(CCL_Client c)
{
	c->connected = false;
	if (connect(c->fd, (struct sockaddr *)&c->remote, sizeof(c->remote)) < 0)
		return -errno;
	c->connected = true;
	return 0;
}

static bool is_absent_error(int err)
{
	return err == ECONNREFUSED || err == ENOENT || err == ENOTCONN || err == ECONNRESET ||
	       err == EDESTADDRREQ;
}

/* Send the current datagram, re-connecting once when chronyd has gone away
   (restarted, or never was).  0 when sent, -EAGAIN when it provably did not
   reach chronyd but may later, other negative errno values for failure. */
static int send_packet(CCL_Client c, const CPR_Packet *p)
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
		c->connected = false;
	}

	return -ECONNREFUSED;
}

/* Clients bound by this process, which has one socket name per client. */
static unsigned int open_count;

static void read_cb(evutil_socket_t fd, short what, void *arg);
static void timer_cb(evutil_socket_t fd, short what, void *arg);

/* bind() with the socket's final mode: no path-based call comes after it. */
static int bind_reply_socket(CCL_Client c)
{
	mode_t old = umask(REPLY_SOCKET_UMASK);
	int r = bind(c->fd, (struct sockaddr *)&c->local, sizeof(c->local));
	int err = errno;

	umask(old);
	return r < 0 ? -err : 0;
}

int CCL_Open(const char *chronyd_sock, struct event_base *base, CCL_Client *out)
{
	CCL_Client c;
	const char *slash;
	size_t dir_len;
	int n, err;

	*out = NULL;
	if (!chronyd_sock || !*chronyd_sock || !base)
		return -EINVAL;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fd = -1;
	c->base = base;

	c->remote.sun_family = AF_UNIX;
	if (strlen(chronyd_sock) >= sizeof(c->remote.sun_path)) {
		err = -ENAMETOOLONG;
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
		err = -ENAMETOOLONG;
		goto fail;
	}

	c->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		err = -errno;
		goto fail;
	}

	/* A leftover from a previous process with our pid.  unlink() removes the
	   entry itself, whatever it is, and follows nothing. */
	if (unlink(c->local.sun_path) < 0 && errno != ENOENT) {
		err = -errno;
		goto fail;
	}
	err = bind_reply_socket(c);
	if (err < 0)
		goto fail;
	c->bound = true;
	open_count++;

	/* chronyd may not be running yet; requests connect again. */
	(void)connect_remote(c);

	if (getrandom(&c->next_sequence, sizeof(c->next_sequence), GRND_NONBLOCK) !=
	    sizeof(c->next_sequence))
		c->next_sequence = (uint32_t)TIM_NowNs(CLOCK_MONOTONIC) ^ (uint32_t)getpid() << 16;

	c->read_ev = event_new(base, c->fd, EV_READ | EV_PERSIST, read_cb, c);
	c->timer_ev = evtimer_new(base, timer_cb, c);
	if (!c->read_ev || !c->timer_ev || event_add(c->read_ev, NULL) < 0) {
		err = -ENOMEM;
		goto fail;
	}

	*out = c;
	return 0;

fail:
	CCL_Close(c);
	return err;
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
	/* Removes the name, whatever now stands there; follows nothing. */
	if (c->bound)
		unlink(c->local.sun_path);
	free(c);
}

const char *CCL_GetLocalPath(CCL_Client c)
{
	return c->local.sun_path;
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
	case EACCES:
	case EPERM:
		return "no permission to use chronyd's socket (group?)";
	default:
		return strerror(error);
	}
}

/* Report and forget the request.  The callback may close the client, so
   callers return straight after. */
static void finish(CCL_Client c, CCL_Outcome outcome, int error, int status)
{
	CCL_Result result = c->result;
	CCL_DoneFn done = c->done;
	void *arg = c->done_arg;

	result.outcome = outcome;
	result.error = error;
	result.status = status;
	result.reason = status > 0 ? CPR_StatusName((uint16_t)status) : reason_for(error);
	CCL_Cancel(c);
	if (done)
		done(&result, arg);
}

/* What a request that got no valid answer may have done. */
static CCL_Outcome unanswered(CCL_Client c)
{
	return c->delivered ? CCL_UNKNOWN : CCL_FAILED;
}

static void arm_timer(CCL_Client c, int64_t ms)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000 * 1000);
	evtimer_add(c->timer_ev, &tv);
}

/* Send (or resend) the request and arm its timeout. */
static void send_request(CCL_Client c)
{
	bool idempotent = CPR_IsIdempotent(c->request.command);
	int64_t wait_ms;
	int err;

	CPR_SetSequence(&c->request, c->request.sequence, (uint16_t)c->tries);
	c->tries++;
	clock_gettime(CLOCK_REALTIME, &c->result.tx_real);
	clock_gettime(CLOCK_MONOTONIC, &c->tx_mono);
	err = send_packet(c, &c->request);
	if (err == 0) {
		c->result.attempts++;
		c->delivered = true;
		wait_ms = c->timeout_ms;
		if (!idempotent)
			wait_ms *= c->max_tries - c->tries + 1;
	} else if (err == -EAGAIN && c->tries < c->max_tries) {
		wait_ms = c->timeout_ms;
	} else {
		finish(c, unanswered(c), err == -EAGAIN ? ETIMEDOUT : -err, -1);
		return;
	}

	c->waiting = true;
	arm_timer(c, wait_ms);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	CCL_Client c = arg;

	if (!c->busy)
		return;
	if (c->waiting && ((c->delivered && !CPR_IsIdempotent(c->request.command)) ||
			   c->tries >= c->max_tries)) {
		finish(c, unanswered(c), ETIMEDOUT, -1);
		return;
	}
	send_request(c);
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
	uint8_t buf[CPR_MAX_REPLY_LEN];
	CCL_Client c = arg;
	CPR_Reply reply;
	CPR_DecodeResult dr;
	struct timespec rx_mono;
	ssize_t len;

	for (;;) {
		len = recv(c->fd, buf, sizeof(buf), 0);
		if (len < 0)
			return;
		clock_gettime(CLOCK_MONOTONIC, &rx_mono);
		if (!c->busy || !c->waiting)
			continue; /* late answers to a finished request */

		dr = CPR_DecodeReply(&c->request, buf, (size_t)len, &reply);
		switch (dr) {
		case CPR_DEC_PKT_TYPE:
		case CPR_DEC_COMMAND:
		case CPR_DEC_SEQUENCE:
			c->result.discarded++;
			continue;
		case CPR_DEC_STATUS:
			/* chronyd refuses before it acts. */
			finish(c, CCL_FAILED, CPR_StatusToErrno(reply.status), reply.status);
			return;
		case CPR_DEC_VERSION:
			/* Another version: chronyd did not parse it as ours. */
			finish(c, CCL_FAILED, EPROTONOSUPPORT, -1);
			return;
		case CPR_DEC_SHORT:
		case CPR_DEC_REPLY_TYPE:
			/* Our command and sequence, but not what success looks like:
			   what chronyd did is not known. */
			finish(c, CCL_UNKNOWN, EPROTO, -1);
			return;
		case CPR_DEC_OK:
			break;
		}

		clock_gettime(CLOCK_REALTIME, &c->result.rx_real);
		c->result.rtt_ns = TIM_DiffNs(&rx_mono, &c->tx_mono);
		c->result.reply = reply;
		/* May free the client: nothing after this. */
		finish(c, CCL_DONE, 0, -1);
		return;
	}
}

int CCL_Start(CCL_Client c, const CPR_Packet *request, int timeout_ms, int tries,
	      CCL_DoneFn done, void *arg)
{
	struct timeval now = {0, 0};

	if (!c->base)
		return -EINVAL;
	if (c->busy)
		return -EBUSY;

	memset(&c->result, 0, sizeof(c->result));
	c->result.command = request->command;
	c->result.status = -1;
	c->request = *request;
	c->request.sequence = ++c->next_sequence;
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : CCL_DEFAULT_TIMEOUT_MS;
	c->max_tries = tries > 0 ? tries : CCL_DEFAULT_TRIES;
	c->tries = 0;
	c->delivered = false;
	c->done = done;
	c->done_arg = arg;
	c->busy = true;
	c->waiting = false;

	/* Sent from the loop, so that done() never runs inside Start. */
	evtimer_add(c->timer_ev, &now);
	return 0;
}

void CCL_Cancel(CCL_Client c)
{
	c->busy = false;
	c->waiting = false;
	c->done = NULL;
	if (c->timer_ev)
		evtimer_del(c->timer_ev);
}

bool CCL_IsBusy(CCL_Client c)
{
	return c->busy;
}
