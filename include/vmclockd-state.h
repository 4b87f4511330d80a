/* SPDX-License-Identifier: BSD-2-Clause
 *
 * vmclockd-state.h - the state vmclockd publishes for applications.
 *
 * A small file in vmclockd's runtime directory (/run/vmclockd/state),
 * world-readable, written in place under the same seq_count protocol as the
 * vmclock page (odd while being written).  It survives daemon restarts: a
 * new daemon reopens it and goes on.  All fields little-endian, whatever
 * the host.  Readers check magic and version and ignore bytes beyond the
 * size they know.
 *
 * Read it with pread(2) (the count, the structure, the count again; retry
 * while the count was odd or moved), or through libvmclock
 * (vmclock_timestamp, vmclock_daemon_state), never through a mapping: a
 * file truncated under a mapping raises SIGBUS on the next load.
 */
#ifndef VMCLOCKD_STATE_H
#define VMCLOCKD_STATE_H

#include <stddef.h>
#include <stdint.h>

#define VMCLOCKD_STATE_MAGIC 0x53444356u /* "VCDS" */
#define VMCLOCKD_STATE_VERSION 1u
#define VMCLOCKD_STATE_DEFAULT_PATH "/run/vmclockd/state"

/* chrony's synchronisation as vmclockd last saw it (vmclockd_sync_state_name()). */
/* Synchronised means following a real source: chronyd serving only its own
 * clock (the `local` directive, reference id 127.127.1.1) or naming no
 * reference (id 0) is UNSYNCHRONIZED whatever its leap status says. */
#define VMCLOCKD_SYNC_UNKNOWN 0u        /* chronyd not reachable, or not asked */
#define VMCLOCKD_SYNC_SYNCHRONIZED 1u   /* chronyd follows a real source, resynced since the marker */
#define VMCLOCKD_SYNC_UNSYNCHRONIZED 2u /* chronyd follows no real source, no disruption */
#define VMCLOCKD_SYNC_DISRUPTED 3u      /* a disruption not yet followed by a resync */

/* error_bound_ns when there is no bound (readers treat any value from
 * INT64_MAX / 2 up as unbounded). */
#define VMCLOCKD_BOUND_UNKNOWN UINT64_MAX
/* drift_ppb when the rate the bound grows at is not known (no bound). */
#define VMCLOCKD_DRIFT_UNKNOWN UINT32_MAX

/* Why the daemon's last sample was withheld (withhold_reason), and the
 * index of withheld[] that counts each.  Names: vmclockd_reason_name(). */
#define VMCLOCKD_REASON_FED 0u              /* not withheld */
#define VMCLOCKD_REASON_NO_DEVICE 1u        /* the page cannot be opened */
#define VMCLOCKD_REASON_BAD_PAGE 2u         /* magic, size, version or shift wrong */
#define VMCLOCKD_REASON_UNSTABLE 3u         /* seq_count never settled */
#define VMCLOCKD_REASON_NO_TIME 4u          /* marker-only, unreliable, zero period */
#define VMCLOCKD_REASON_NO_UTC 5u           /* monotonic, or TAI without a valid offset */
#define VMCLOCKD_REASON_NOT_SYNCHRONIZED 6u /* the host does not vouch for its time */
#define VMCLOCKD_REASON_NO_BOUND 7u         /* the page gives no maximum error */
#define VMCLOCKD_REASON_ERROR_BOUND 8u      /* the bound exceeds max-error-ns */
#define VMCLOCKD_REASON_SMEARED 9u          /* a leap second near on a smearing host */
#define VMCLOCKD_REASON_UNSUPPORTED 10u     /* a counter this CPU cannot read */
#define VMCLOCKD_REASON_DISRUPTION 11u      /* a disruption is being handled */
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
	uint64_t error_bound_ns;     /* |system - true|: chrony's root delay/2 + root
				      * dispersion + |correction| while it follows a real
				      * source (then left to grow), plus the page's max
				      * error of the samples chrony may hold; or, when
				      * vmclockd's measurement contradicts that, |offset| +
				      * uncertainty + the page's max error.
				      * VMCLOCKD_BOUND_UNKNOWN: none */
	uint64_t error_bound_realtime_ns; /* the instant it holds at */
	uint32_t drift_ppb;          /* how fast it grows after that: chrony's drift
				      * plus the page's max error rate;
				      * VMCLOCKD_DRIFT_UNKNOWN: not known */
	int32_t reserved0;
	int64_t last_offset_ns;      /* of the last sample fed */
	uint64_t last_disruption_realtime_ns; /* 0: none seen by this daemon */
	uint64_t disruptions;        /* handled since this file was created */
	uint64_t samples_fed;
	uint64_t withheld[VMCLOCKD_STATE_REASONS];
};

_Static_assert(offsetof(struct vmclockd_state, heartbeat_realtime_ns) == 16, "state layout");
_Static_assert(offsetof(struct vmclockd_state, withheld) == 104, "state layout");
_Static_assert(sizeof(struct vmclockd_state) == 200, "state size");

#endif /* VMCLOCKD_STATE_H */
