/* SPDX-License-Identifier: BSD-2-Clause
 *
 * metrics.h - the daemon's and the device's state at one instant, as
 * applications see it through libvmclock, and its Prometheus text.
 *
 * The one source of the metric names: `vmclockctl metrics` prints this text,
 * and vmclockd writes it to its metrics-file for node_exporter's textfile
 * collector.  Only libvmclock's public interface is used, so the daemon sees
 * exactly what an application reading its published state sees.
 */
#ifndef VMCLOCK_COMMON_METRICS_H
#define VMCLOCK_COMMON_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "vmclock.h"
#include "vmclockd-state.h"

/* withheld[0] counts nothing: "fed" is not a reason to withhold. */
#define MTR_FIRST_WITHHOLD_REASON (VMCLOCKD_REASON_FED + 1)

/* Everything the subcommands of the daemon's state look at, taken at one
 * instant: a timestamp from libvmclock, the state and the device's page. */
typedef struct {
	struct vmclock_timestamp ts;
	int state_err;            /* 0, or errno of vmclock_daemon_state */
	struct vmclockd_state st; /* native-endian copy when state_err == 0 */
	int64_t heartbeat_age_ns; /* realtime of ts minus the heartbeat */
	bool fresh;               /* heartbeat within its timeout */
	bool have_page;
	struct vmclock_abi page;
	bool have_offset;
	struct vmclock_offset off;
} MTR_View;

/* Fills v from truth's state and the device (its offset to CLOCK_REALTIME
 * too if want_offset); what cannot be read is marked so in v. */
void MTR_TakeView(const vmclock_truth_t *truth, const char *device, bool want_offset, MTR_View *v);

/* Text exposition format 0.0.4 of v on f; the caller checks f for errors. */
void MTR_Write(FILE *f, const MTR_View *v);

#endif /* VMCLOCK_COMMON_METRICS_H */
