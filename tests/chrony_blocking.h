/* SPDX-License-Identifier: BSD-2-Clause
 *
 * chrony_blocking.h - a blocking exchange with chronyd, for test programs
 * and tools only: the daemon never blocks on chronyd.
 *
 * Built on the daemon's own client (daemon/chrony_client.h) and a private
 * event base, so the resend rules are the daemon's.  Same return
 * convention: 0 or a negative errno value.
 */
#ifndef VMCLOCKD_TESTS_CHRONY_BLOCKING_H
#define VMCLOCKD_TESTS_CHRONY_BLOCKING_H

#include "../daemon/chrony_client.h"

typedef struct CBK_Client_Record *CBK_Client;

int CBK_Open(const char *chronyd_sock, CBK_Client *out);
void CBK_Close(CBK_Client client);
const char *CBK_GetLocalPath(CBK_Client client);

/* Send *request and wait for its outcome (CCL_Start's rules, timeout_ms per
 * send).  Returns 0 when chronyd answered success, -CPR_StatusToErrno(status)
 * when it refused (result->status says which), or another negative errno
 * (-ENOENT, -ECONNREFUSED: no chronyd; -ETIMEDOUT; -EPROTO).  *result is
 * filled in every case. */
int CBK_Request(CBK_Client client, const CPR_Packet *request, CCL_Result *result,
		int timeout_ms);

#endif /* VMCLOCKD_TESTS_CHRONY_BLOCKING_H */
