/* SPDX-License-Identifier: BSD-2-Clause
 *
 * vmclockd-state.h - the state vmclockd publishes for applications.
 *
 * A small file in vmclockd's runtime directory (/run/vmclockd/state),
 * world-readable, written in place under the same seq_count protocol as the
 * vmclock page (odd while being written), so readers can mmap it and copy it
 * consistently without a system call.  It survives daemon restarts: a new
 * daemon reopens it and goes on.  All fields little-endian.  Readers check
 * magic and version and ignore bytes beyond the size they know.
 */
#ifndef VMCLOCKD_STATE_H
#define VMCLOCKD_STATE_H

#include <stddef.h>
#include <stdint.h>

#define VMCLOCKD_STATE_MAGIC 0x53444356u /* "VCDS" */
#define VMCLOCKD_STATE_VERSION 1u
#define VMCLOCKD_STATE_DEFAULT_PATH "/run/vmclockd/state"

/* chrony's synchronisation as vmclockd last saw it. */
#define VMCLOCKD_SYNC_UNKNOWN 0u        /* chronyd not reachable, or not asked */
#define VMCLOCKD_SYNC_SYNCHRONIZED 1u   /* chronyd synchronised since the marker */
#define VMCLOCKD_SYNC_UNSYNCHRONIZED 2u /* chronyd not synchronised, no disruption */
#define VMCLOCKD_SYNC_DISRUPTED 3u      /* a disruption not yet followed by a resync */

/* Withhold reasons counted in withheld[] (daemon/sampler.h order). */
#define VMCLOCKD_STATE_REASONS 12

struct vmclockd_state {
	uint32_t magic;
	uint16_t version;
	uint16_t size;               /* bytes of this structure */
	uint32_t seq_count;          /* odd while being written */
	uint8_t sync_state;          /* VMCLOCKD_SYNC_* */
	uint8_t withhold_reason;     /* of the last tick: index into withheld[] */
	uint16_t heartbeat_timeout_ms; /* older heartbeats mean the daemon is gone */
	uint64_t heartbeat_realtime_ns; /* CLOCK_REALTIME of the last tick */
	uint64_t heartbeat_monotonic_ns; /* CLOCK_MONOTONIC of the last tick */
	uint64_t disruption_marker;  /* the last marker the daemon has handled */
	uint64_t vm_generation_counter; /* likewise */
	uint64_t error_bound_ns;     /* chrony: root delay/2 + root dispersion + |correction| */
	uint64_t error_bound_realtime_ns; /* when that bound was read */
	uint32_t drift_ppb;          /* how fast the bound grows after that */
	int32_t reserved0;
	int64_t last_offset_ns;      /* of the last sample fed */
	uint64_t last_disruption_realtime_ns; /* 0: none seen by this daemon */
	uint64_t disruptions;        /* handled since the state file was created */
	uint64_t samples_fed;
	uint64_t withheld[VMCLOCKD_STATE_REASONS];
};

_Static_assert(offsetof(struct vmclockd_state, heartbeat_realtime_ns) == 16, "state layout");
_Static_assert(offsetof(struct vmclockd_state, withheld) == 104, "state layout");
_Static_assert(sizeof(struct vmclockd_state) == 200, "state size");

#endif /* VMCLOCKD_STATE_H */
