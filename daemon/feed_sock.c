/* SPDX-License-Identifier: BSD-2-Clause
 *
 * feed_sock.c - samples for chronyd's SOCK refclock.
 *
 * chronyd creates and binds the socket named in its `refclock SOCK PATH`
 * line; we send it one 40-byte datagram per sample.  The socket here is not
 * connected: every sample is a sendto() on the path, so a chronyd that was
 * restarted (and re-created its socket) is picked up by the next sample with
 * no reconnect logic, and a chronyd that is down costs one failed syscall.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "chrony_sock.h"
#include "feed.h"
#include "log.h"


typedef struct {
	struct FED_Output_Record base; /* first: the generic handle points here */
	int fd;
	struct sockaddr_un addr;
	socklen_t addr_len;
	LOG_Repeat failing;
} SockOutput;

static int sock_send(FED_Output out, const FED_Sample *s)
{
	SockOutput *so = (SockOutput *)out;
	struct chrony_sock_sample msg;
	/* Its failures (with the journal's ERRNO) and its recovery name the
	 * output in a field, told apart from the other outputs' without the
	 * text. */
	char output_field[32], errno_field[32];
	const char *fields[] = { output_field, errno_field, NULL };
	ssize_t n;
	int err;

	memset(&msg, 0, sizeof(msg));
	/* The timeval drops the system time's nanoseconds.  The offset stays as
	 * measured: it is a difference of two clocks, and moves by the frequency
	 * error times at most a microsecond (1e-15 s at 1 ppb) over the cut. */
	msg.tv.tv_sec = s->system.tv_sec;
	msg.tv.tv_usec = s->system.tv_nsec / 1000;
	msg.offset = (double)s->offset_ns * 1e-9;
	msg.pulse = 0;
	msg.leap = (int)s->leap;
	msg.magic = CHRONY_SOCK_MAGIC;

	n = sendto(so->fd, &msg, sizeof(msg), MSG_DONTWAIT, (struct sockaddr *)&so->addr,
		   so->addr_len);
	/* A short datagram (never seen: it is one write) is no sample. */
	err = n < 0 ? errno : n == (ssize_t)sizeof(msg) ? 0 : EMSGSIZE;
	snprintf(output_field, sizeof(output_field), "OUTPUT=%s", FED_Name(out));
	if (!err) {
		if (LOG_RepeatRecovered(&so->failing)) {
			fields[1] = NULL;
			LOG_Event(LOGS_INFO, NULL, fields, "chronyd is taking samples on %s again",
				  so->addr.sun_path);
		}
		out->problem = NULL;
		return 0;
	}
	out->problem = err == ENOENT || err == ECONNREFUSED ? "chronyd not listening"
							    : "cannot send";
	if (LOG_RepeatFailing(&so->failing, err)) {
		snprintf(errno_field, sizeof(errno_field), "ERRNO=%d", err);
		if (err == ENOENT || err == ECONNREFUSED)
			LOG_Event(LOGS_WARN, NULL, fields,
				  "chronyd is not listening on %s (%s); will keep trying",
				  so->addr.sun_path, strerror(err));
		else
			LOG_Event(LOGS_WARN, NULL, fields, "cannot send samples to %s: %s; will keep trying",
				  so->addr.sun_path, strerror(err));
	}
	return -err;
}

static void sock_destroy(FED_Output out)
{
	SockOutput *so = (SockOutput *)out;

	close(so->fd);
	free(so);
}

static const struct FED_Driver sock_driver = {
	.name = "chrony-sock",
	.send = sock_send,
	.destroy = sock_destroy,
};

FED_Output FED_CreateSock(const char *path)
{
	SockOutput *so;

	if (strlen(path) >= sizeof(so->addr.sun_path)) {
		LOG(LOGS_ERR, "chrony socket path too long: %s", path);
		return NULL;
	}
	so = calloc(1, sizeof(*so));
	if (!so) {
		LOG(LOGS_ERR, "chrony socket %s: %s", path, strerror(errno));
		return NULL;
	}
	so->base.driver = &sock_driver;
	so->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (so->fd < 0) {
		LOG(LOGS_ERR, "socket: %s", strerror(errno));
		free(so);
		return NULL;
	}
	so->addr.sun_family = AF_UNIX;
	strcpy(so->addr.sun_path, path);
	so->addr_len = (socklen_t)sizeof(so->addr);
	return &so->base;
}
