/* SPDX-License-Identifier: BSD-2-Clause
 *
 * chrony_blocking.c - a blocking exchange with chronyd over the daemon's
 * client, for test programs and tools.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "../daemon/evbase.h"
#include "chrony_blocking.h"

struct CBK_Client_Record {
	struct event_base *base;
	CCL_Client client;
	CCL_Result result;
	int done;
};

int CBK_Open(const char *chronyd_sock, CBK_Client *out)
{
	CBK_Client b = calloc(1, sizeof(*b));
	int r;

	*out = NULL;
	if (!b)
		return -ENOMEM;
	b->base = EVB_New();
	if (!b->base) {
		free(b);
		return -ENOMEM;
	}
	r = CCL_Open(chronyd_sock, b->base, &b->client);
	if (r < 0) {
		event_base_free(b->base);
		free(b);
		return r;
	}
	*out = b;
	return 0;
}

void CBK_Close(CBK_Client b)
{
	if (!b)
		return;
	CCL_Close(b->client);
	event_base_free(b->base);
	free(b);
}

const char *CBK_GetLocalPath(CBK_Client b)
{
	return CCL_GetLocalPath(b->client);
}

static void on_done(const CCL_Result *result, void *arg)
{
	CBK_Client b = arg;

	b->result = *result;
	b->done = 1;
	event_base_loopbreak(b->base);
}

int CBK_Request(CBK_Client b, const CPR_Packet *request, CCL_Result *result, int timeout_ms)
{
	int r;

	memset(result, 0, sizeof(*result));
	b->done = 0;
	r = CCL_Start(b->client, request, timeout_ms, 0, on_done, b);
	if (r < 0)
		return r;
	while (!b->done)
		if (event_base_loop(b->base, EVLOOP_ONCE) < 0)
			return -EIO;
	*result = b->result;
	if (result->outcome == CCL_DONE)
		return 0;
	return result->error ? -result->error : -EIO;
}
