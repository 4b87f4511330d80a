/* SPDX-License-Identifier: BSD-2-Clause
 *
 * chrony_client.h - one request at a time to chronyd's Unix command socket,
 * driven by a libevent base.
 *
 * The client owns a datagram socket bound next to chronyd's (chronyd
 * answers from its own uid, so the socket is made 0666 at bind time), sends
 * a request built by chrony_proto.h, resends it while that is safe, and
 * reports one outcome: done, failed (chronyd provably did not apply it), or
 * unknown (it reached chronyd and no answer came: it may have been applied).
 *
 * Return convention (the README's error policy): functions returning int
 * return 0 on success or a negative errno value; they never use errno to
 * report.  Errno values in CCL_Result are positive.
 */
#ifndef VMCLOCKD_CHRONY_CLIENT_H
#define VMCLOCKD_CHRONY_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "chrony_proto.h"

struct event_base;

typedef struct CCL_Client_Record *CCL_Client;

#define CCL_DEFAULT_TIMEOUT_MS 100
#define CCL_DEFAULT_TRIES 3

/* Bind <dir of chronyd_sock>/vmclockd.<pid>.sock (a process's later clients
 * use vmclockd.<pid>.<n>.sock), mode 0666 from the moment it exists, and try
 * to connect to chronyd_sock.  A chronyd that is not there yet is no error:
 * each request connects again when needed.  Returns 0 and the client in
 * *out, or -ENAMETOOLONG, -EACCES, ... */
int CCL_Open(const char *chronyd_sock, struct event_base *base, CCL_Client *out);
/* Cancels the request in flight without calling its callback, removes the
 * socket.  NULL is ignored. */
void CCL_Close(CCL_Client client);
const char *CCL_GetLocalPath(CCL_Client client);

typedef enum {
	CCL_DONE = 0,    /* chronyd answered success */
	CCL_FAILED,      /* chronyd refused it, or it never reached chronyd */
	CCL_UNKNOWN,     /* it reached chronyd and no valid answer came */
} CCL_Outcome;

typedef struct {
	uint16_t command;
	CCL_Outcome outcome;
	int error;          /* errno value, 0 when done */
	int status;         /* chronyd's CPR_STT_* when it refused, else -1 */
	const char *reason; /* static text for logs */
	CPR_Reply reply;    /* valid when done */
	int64_t rtt_ns;     /* CLOCK_MONOTONIC, last send to the reply */
	struct timespec tx_real; /* CLOCK_REALTIME at the last send */
	struct timespec rx_real; /* CLOCK_REALTIME at receipt */
	int attempts;       /* datagrams sent */
	int discarded;      /* stale or foreign replies dropped */
} CCL_Result;

typedef void (*CCL_DoneFn)(const CCL_Result *result, void *arg);

/* Send *request (the client stamps its sequence and attempt) and call done
 * from the event loop, exactly once, unless CCL_Cancel or CCL_Close comes
 * first; done may start the next request or close the client.  A request
 * that can safely arrive twice (CPR_IsIdempotent) is resent after each
 * timeout_ms up to tries sends; any other is resent only while it provably
 * did not reach chronyd, and is otherwise waited for (tries - sends + 1) *
 * timeout_ms and then reported CCL_UNKNOWN.  timeout_ms, tries: 0 for the
 * defaults.  Returns 0, -EBUSY (a request is in flight) or -EINVAL (no
 * event base). */
int CCL_Start(CCL_Client client, const CPR_Packet *request, int timeout_ms, int tries,
	      CCL_DoneFn done, void *arg);
/* Drop the request in flight, if any, without calling its callback.  What
 * chronyd made of it is then unknown to the client. */
void CCL_Cancel(CCL_Client client);
bool CCL_IsBusy(CCL_Client client);

#endif /* VMCLOCKD_CHRONY_CLIENT_H */
