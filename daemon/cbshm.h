/* SPDX-License-Identifier: BSD-2-Clause
 *
 * cbshm.h - the ClockBound segment vmclockd writes when configured to
 * (clockbound-shm PATH; off by default, so that it never fights a running
 * ClockBound daemon for the path).  Contents: cbformat.h.
 *
 * publish.c hands it every state it publishes for libvmclock; nothing flows
 * back.  The segment is created by temp file + rename in a directory that
 * must be ours (created if missing; refused if another user owns it or
 * others may write it), then updated in place under ClockBound's
 * generation protocol with pwrite(2), never through a mapping (a
 * truncation would raise SIGBUS on our stores).  A segment a previous
 * vmclockd left is taken over in place (readers map it and never reopen);
 * one removed or replaced is made afresh, checked once a second.  On exit
 * the segment is left saying UNKNOWN.
 */
#ifndef VMCLOCKD_CBSHM_H
#define VMCLOCKD_CBSHM_H

#include "config.h"
#include "vmclockd-state.h"

/* settings stays valid (and is read) until CBS_Finalise. */
void CBS_Initialise(const CNF_Settings *settings);
void CBS_Finalise(void);
/* Before a reload replaces the settings with fresh: another path is
 * written from the next state on, the old segment left saying UNKNOWN. */
void CBS_Reconfigure(const CNF_Settings *fresh);
/* The state just published (host order): the segment rewritten from it. */
void CBS_Publish(const struct vmclockd_state *state);

#endif /* VMCLOCKD_CBSHM_H */
