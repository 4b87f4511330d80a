/* SPDX-License-Identifier: BSD-2-Clause
 *
 * hnd_driver.c - the handover's I/O: takes each action of the state machine
 * (handover.c) and hands its result back as the machine's next event.
 *
 * Results that come at once (a record kept, a request that could not be
 * sent) are handed back before the rest of the actions of the same event are
 * taken, so the machine sees them in the order it asked for them; chronyd's
 * answers, the timer and the offset (HDR_Offset, from the caller's next
 * tick) come later, from the loop.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "../common/timeutil.h"

#include "chrony_client.h"
#include "hnd_driver.h"

static struct event_base *ev_base;
static char *cmd_path;
static HDR_Callbacks cb;
static CCL_Client client;
static struct event *timer_ev;
static HND_Machine *machine;
/* Bumped by HDR_Finalise: the actions of a machine a callback finalised
 * (and maybe replaced) are not taken. */
static unsigned incarnation;

static void on_reply(const CCL_Result *r, void *arg)
{
	HND_Event ev = { .type = HND_EV_REPLY, .u.reply = *r };

	HDR_Handle(&ev);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	HND_Event ev = { .type = HND_EV_TIMER };

	HDR_Handle(&ev);
}

/* A request that could not be sent: failed, as chronyd never had it. */
static void not_sent(int error)
{
	HND_Event ev = { .type = HND_EV_REPLY };

	ev.u.reply.outcome = CCL_FAILED;
	ev.u.reply.error = error;
	ev.u.reply.status = -1;
	ev.u.reply.reason = strerror(error);
	HDR_Handle(&ev);
}

static void send_request(const HND_Action *a)
{
	int r;

	if (!client && (r = CCL_Open(cmd_path, ev_base, &client)) < 0) {
		client = NULL;
		not_sent(-r);
		return;
	}
	r = CCL_Start(client, &a->u.send.request, a->u.send.timeout_ms, a->u.send.tries, on_reply,
		      NULL);
	if (r < 0)
		not_sent(-r);
}

static void take(const HND_Action *a)
{
	struct timeval tv;
	HND_Event ev = { 0 };

	switch (a->type) {
	case HND_ACT_SEND:
		send_request(a);
		break;
	case HND_ACT_CLOSE:
		CCL_Close(client);
		client = NULL;
		break;
	case HND_ACT_ARM:
		tv.tv_sec = (time_t)(a->u.arm.ms / 1000);
		tv.tv_usec = (suseconds_t)(a->u.arm.ms % 1000 * 1000);
		if (cb.waiting)
			cb.waiting(a->u.arm.state, cb.arg);
		evtimer_add(timer_ev, &tv);
		break;
	case HND_ACT_DISARM:
		evtimer_del(timer_ev);
		break;
	case HND_ACT_MEASURE:
		if (cb.measure)
			cb.measure(a->u.measure_marker, cb.arg);
		break;
	case HND_ACT_RECORD:
		ev.type = HND_EV_RECORDED;
		ev.u.recorded.record = a->u.record;
		ev.u.recorded.result = cb.record ? cb.record(&a->u.record, cb.arg) : 0;
		HDR_Handle(&ev);
		break;
	case HND_ACT_DONE:
		if (cb.done)
			cb.done(&a->u.done, cb.arg);
		break;
	case HND_ACT_DISRUPTION:
	case HND_ACT_RESTORE:
		if (cb.seen)
			cb.seen(a, cb.arg);
		break;
	}
}

void HDR_Handle(HND_Event *ev)
{
	HND_Actions acts;
	unsigned mine = incarnation;

	if (!machine)
		return;
	ev->now_ns = (int64_t)TIM_NowNs(CLOCK_MONOTONIC);
	HND_Handle(machine, ev, &acts);
	for (int i = 0; i < acts.n && incarnation == mine; i++)
		take(&acts.a[i]);
}

void HDR_Start(const HND_Target *t)
{
	HND_Event ev = { .type = HND_EV_START, .u.start = *t };

	HDR_Handle(&ev);
}

int HDR_Reconfigure(const char *chrony_cmd)
{
	HND_Event ev = { .type = HND_EV_CHRONYD };
	char *fresh = NULL;

	if (chrony_cmd && *chrony_cmd && !(fresh = strdup(chrony_cmd)))
		return -ENOMEM;
	ev.u.chronyd.configured = fresh != NULL;
	ev.u.chronyd.changed = !((!fresh && !cmd_path) ||
				 (fresh && cmd_path && !strcmp(fresh, cmd_path)));
	free(cmd_path);
	cmd_path = fresh;
	HDR_Handle(&ev);
	return 0;
}

int HDR_Initialise(struct event_base *base, const char *chrony_cmd, const HND_Timing *timing,
		   const HDR_Callbacks *callbacks)
{
	ev_base = base;
	cb = *callbacks;
	client = NULL;
	cmd_path = NULL;
	if (chrony_cmd && *chrony_cmd && !(cmd_path = strdup(chrony_cmd)))
		return -ENOMEM;
	timer_ev = evtimer_new(base, timer_cb, NULL);
	machine = HND_New(timing, cmd_path != NULL);
	if (!timer_ev || !machine) {
		HDR_Finalise();
		return -ENOMEM;
	}
	return 0;
}

void HDR_Finalise(void)
{
	if (timer_ev)
		event_free(timer_ev);
	timer_ev = NULL;
	CCL_Close(client);
	client = NULL;
	free(cmd_path);
	cmd_path = NULL;
	HND_Free(machine);
	machine = NULL;
	incarnation++;
}

const HND_Machine *HDR_Machine(void)
{
	return machine;
}

bool HDR_Busy(void)
{
	return machine && HND_Busy(machine);
}

void HDR_Offset(HND_OffsetAnswer answer, double offset_s, int skip_reason)
{
	HND_Event ev = { .type = HND_EV_OFFSET };

	ev.u.offset.answer = answer;
	ev.u.offset.offset_s = offset_s;
	ev.u.offset.skip_reason = skip_reason;
	HDR_Handle(&ev);
}

bool HDR_RetryWaiting(void)
{
	return machine && HND_RetryWaiting(machine);
}
