/* SPDX-License-Identifier: BSD-2-Clause
 *
 * chronyd_double.h - a double of chronyd's command socket for the unit
 * tests, on the test's own event loop.
 *
 * It binds a datagram socket where chronyd's would be, takes the requests a
 * client sends by chronyd's rules (protocol version 6, a request at least as
 * long as its reply), counts them by command, keeps the value of the last
 * dfreq and doffset, and answers each at once: a tracking request with the
 * report the test sets, encoded at the byte offsets of chrony's protocol with
 * chrony's Float (chrony_proto.h's encoder: its own tests check it), the
 * others with a bare header; or every request "failed" while it refuses.  A
 * dfreq it takes moves the frequency it reports, as chronyd's; nothing else
 * changes the report.  A test's callback runs as a request arrives, before
 * it is answered.
 */
#ifndef VMCLOCKD_TESTS_CHRONYD_DOUBLE_H
#define VMCLOCKD_TESTS_CHRONYD_DOUBLE_H

#include <event2/event.h>

#include "../daemon/chrony_proto.h"

typedef enum { CHD_ANSWER, CHD_REFUSE } CHD_Mode;

typedef struct {
	char path[108];
	int fd;
	struct event *ev;  /* NULL: not running */
	CHD_Mode mode;
	CPR_Tracking t;    /* what it reports (a dfreq moves freq_ppm) */
	int requests;      /* requests received, and of them: */
	int tracking, resets, dfreqs, doffsets, makesteps, bursts;
	double dfreq_ppm;  /* the last dfreq's value, as chronyd decodes it */
	double doffset_s;  /* the last doffset's */
	char client[108];  /* the socket the last request came from */
	void (*on_request)(void); /* run once as the next request arrives */
} CHD_Chronyd;

/* Binds PATH (the test fails if it cannot) and answers from BASE's loop;
 * the rest of C is left as the test set it. */
void CHD_Start(CHD_Chronyd *c, struct event_base *base, const char *path);
/* Closes and removes the socket, if running. */
void CHD_Stop(CHD_Chronyd *c);

#endif /* VMCLOCKD_TESTS_CHRONYD_DOUBLE_H */
