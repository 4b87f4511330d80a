/* SPDX-License-Identifier: BSD-2-Clause
 *
 * vmclock.h - libvmclock: read a vmclock page, get time with error bounds.
 *
 * Every function that can fail returns 0 on success or -1 with errno set:
 *   ENOENT, EACCES, ... from open(2)/mmap(2) for the device path itself;
 *   EBADMSG   the page's magic is wrong;
 *   EMSGSIZE  the page (or its size field) is smaller than struct vmclock_abi,
 *             or its size field claims more than the file holds;
 *   EPROTO    unknown layout version;
 *   ETIMEDOUT the seq_count never settled (odd or changing) for ~100 ms;
 *   ENODATA   the page carries no time (counter INVALID, status unreliable,
 *             or TAI without a valid offset when UTC is asked for);
  *   ENODEV    the path is neither a character device nor a regular file;
 *   EOPNOTSUPP the page's counter is not one this CPU can read;
 *   ERANGE    the conversion parameters are absurd (counter_period_shift > 63,
 *             or seconds that do not fit).
 * A handle is safe to use from several threads at once: reads modify nothing
 * but what vmclock_gettime() keeps of the page's current version, with atomics.
 */
#ifndef VMCLOCK_H
#define VMCLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "vmclock-abi.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VMCLOCK_DEFAULT_DEVICE "/dev/vmclock0"

/* How long a reader waits for a stable seq_count before ETIMEDOUT. */
#define VMCLOCK_MAX_WAIT_NS 100000000ll

/* An error bound that the page does not provide. */
#define VMCLOCK_ERROR_UNKNOWN UINT64_MAX

/* Opaque handle on one mapped page. */
typedef struct vmclock vmclock_t;

/* Open and validate a page: a vmclock character device or a page file.
 * path NULL means VMCLOCK_DEFAULT_DEVICE.  Returns NULL with errno set. */
vmclock_t *vmclock_open(const char *path);
void vmclock_close(vmclock_t *vc);

/* The descriptor the page was opened with (for poll(2) on a device). */
int vmclock_fd(const vmclock_t *vc);
/* True if the path is a character device (poll() and read() re-arm work). */
bool vmclock_is_device(const vmclock_t *vc);

/* True if the path no longer names the open page (removed, replaced by
 * rename, or a page file truncated below what is mapped): reading on would
 * show a stale page or fault.  Close and open again.  Costs two syscalls. */
bool vmclock_needs_reopen(const vmclock_t *vc);

/* A consistent copy of the whole page, taken under the seq_count protocol.
 * Returns the copy as published (little-endian fields). */
int vmclock_snapshot(const vmclock_t *vc, struct vmclock_abi *out);
/* One attempt at vmclock_snapshot(), never retrying nor waiting: -1 with
 * errno EAGAIN if a writer was mid-update (seq_count odd, or changed during
 * the copy).  For polling, at the cost of one copy, a page whose writer
 * seems to have died mid-update (vmclock_snapshot() failed with ETIMEDOUT)
 * until it is consistent again. */
int vmclock_snapshot_once(const vmclock_t *vc, struct vmclock_abi *out);

/* Whether a page copy carries time this CPU can read: 0, or -1 with errno
 * ENODATA (no time: counter INVALID, status UNRELIABLE, or a zero counter
 * period, i.e. a frozen clock), ERANGE (a counter_period_shift above 63) or
 * EOPNOTSUPP (a counter this CPU cannot read).  The one "page carries time"
 * predicate: vmclock_gettime() and vmclock_offset() fail exactly when it
 * does. */
int vmclock_has_time(const struct vmclock_abi *page);

/* Time read from the page at one counter reading. */
struct vmclock_time {
	/* Time in the page's own timescale (time_type). */
	int64_t sec;
	uint32_t nsec;
	uint8_t time_type;
	/* UTC: equal to sec/nsec on a UTC page, converted with the TAI offset on
	 * a TAI page whose offset is valid and plausible (UTC - TAI between -99
	 * and -10 s: -37 since 2017); utc_valid false otherwise. */
	bool utc_valid;
	int64_t utc_sec;
	uint32_t utc_nsec;
	/* Error at this instant: the page's time error plus its period error
	 * rate times the counter ticks since counter_value, rounded up.
	 * VMCLOCK_ERROR_UNKNOWN where the page does not vouch for it. */
	uint64_t esterror_ns;
	uint64_t maxerror_ns;
	uint8_t clock_status;
	uint8_t leap_indicator;
	uint8_t leap_second_smearing_hint;
	uint64_t flags;
	uint64_t disruption_marker;
	uint64_t vm_generation_counter;
	uint32_t seq_count;
	uint64_t counter;       /* the counter reading converted */
	uint64_t counter_period_frac_sec; /* with shift: the period used */
	uint8_t counter_period_shift;
};

/* Pure conversion of one counter reading with the parameters of a page copy
 * (no device access; the arithmetic of ptp_vmclock, 128-bit, no floating
 * point).  Fails with ENODATA when the page carries no time, ERANGE when the
 * parameters are absurd. */
int vmclock_convert(const struct vmclock_abi *page, uint64_t counter, struct vmclock_time *out);

/* Read the counter the page names and convert it, all inside one
 * seq_count-consistent section.  What a page version allows (its checks,
 * its bounds' rates) is worked out by the first call that meets the version
 * and kept in the handle for the calls after it, keyed by the version's
 * seq_count, disruption marker and generation counter: a writer must move
 * seq_count (as the protocol requires) for a change to be seen. */
int vmclock_gettime(const vmclock_t *vc, struct vmclock_time *out);

/* Device time (UTC) against CLOCK_REALTIME at one instant. */
struct vmclock_offset {
	struct timespec system;  /* CLOCK_REALTIME of the narrowest bracket */
	int64_t offset_ns;       /* device UTC minus system, nanoseconds */
	uint64_t uncertainty_ns; /* half the narrowest bracket, rounded up;
				  * 1 from a cross-timestamp */
	struct vmclock_time time;/* the device reading at the bracket's middle */
};

/* Takes several (counter, clock_gettime, counter) brackets inside one
 * seq_count section and keeps the narrowest.  Where the handle has the
 * driver's PTP clock for the device open (vmclock_phc_open()), its precise
 * cross-timestamp (the device's time and CLOCK_REALTIME at one counter
 * reading) is taken in the same section and gives offset_ns to the
 * nanosecond, if it agrees with the bracket.  Fails like vmclock_gettime,
 * and with ENODATA when the page has no UTC. */
int vmclock_offset(const vmclock_t *vc, struct vmclock_offset *out);
/* Opens the PTP clock the driver registered for the device, for
 * vmclock_offset()'s cross-timestamps (readers of time alone need none):
 * its N of /dev/ptpN, or -1 with errno: none (a page file, a driver before
 * Linux 7.0, a page without unambiguous time, a clocksource the kernel
 * cannot cross-timestamp).  The clock is closed with the handle. */
int vmclock_phc_open(vmclock_t *vc);
/* N of the /dev/ptpN whose cross-timestamps vmclock_offset() uses, or -1. */
int vmclock_phc_index(const vmclock_t *vc);

/* Read the CPU counter of the given kind (VMCLOCK_COUNTER_*), ordered after
 * earlier loads.  Returns false if this CPU cannot read it. */
bool vmclock_read_counter(uint8_t counter_id, uint64_t *value);
/* The counter this CPU reads (VMCLOCK_COUNTER_X86_TSC or _ARM_VCNT), or
 * VMCLOCK_COUNTER_INVALID: what a simulated page should name. */
uint8_t vmclock_native_counter(void);

/*
 * Truthful timestamps.  A vmclock_truth_t joins the device (whose marker
 * tells at once that a disruption happened) and vmclockd's published state
 * (include/vmclockd-state.h: the marker it has handled, chrony's sync state
 * and error bound, a heartbeat).  vmclock_timestamp() reads CLOCK_REALTIME
 * from the vDSO and says whether that reading can be trusted:
 *   SYNCHRONIZED  chrony is synchronised and no disruption is pending;
 *   FREERUNNING   chrony is not synchronised, or vmclockd's measurement
 *                 contradicts its bound, but no disruption is pending;
 *   DISRUPTED     the device's marker differs from the one the daemon has
 *                 handled, or chrony has not re-synchronised since;
 *   UNKNOWN       no daemon state, a stale heartbeat (daemon stopped), or no
 *                 device.
 * earliest/latest bound the true time: the bound vmclockd publishes
 * (chrony's error bound plus the page's own max error, or vmclockd's
 * measurement where it contradicts chrony) grown by its drift rate since
 * the instant it holds at (+-infinity, i.e. 0 and INT64_MAX, unless
 * SYNCHRONIZED or FREERUNNING).  No allocation; safe from any number of
 * threads.  The daemon's state is read (pread, never mapped: a truncated
 * file must not fault) into the handle at most once a millisecond, by the
 * caller that finds it due; other calls make no system call beyond the vDSO
 * clock read.  A state that cannot be read consistently is UNKNOWN at once
 * for a fresh handle, and after 20 ms of failed reads for one that had read
 * it.  A handle whose device or daemon state is missing, or whose state
 * file went stale, looks for them again at most once a second.
 */
typedef enum {
	VMCLOCK_VERDICT_UNKNOWN = 0,
	VMCLOCK_VERDICT_SYNCHRONIZED,
	VMCLOCK_VERDICT_FREERUNNING,
	VMCLOCK_VERDICT_DISRUPTED,
} vmclock_verdict_t;

struct vmclock_timestamp {
	struct timespec time;     /* CLOCK_REALTIME */
	struct timespec earliest; /* time - bound */
	struct timespec latest;   /* time + bound */
	uint64_t bound_ns;        /* VMCLOCK_ERROR_UNKNOWN when not bounded */
	vmclock_verdict_t verdict;
	uint64_t disruption_marker; /* the device's, 0 without a device */
};

typedef struct vmclock_truth vmclock_truth_t;

struct vmclockd_state;

/* NULL paths mean VMCLOCK_DEFAULT_DEVICE and VMCLOCKD_STATE_DEFAULT_PATH.
 * Succeeds even if neither can be opened (verdicts are then UNKNOWN);
 * NULL only on ENOMEM. */
vmclock_truth_t *vmclock_truth_open(const char *device, const char *state_path);
void vmclock_truth_close(vmclock_truth_t *t);
int vmclock_timestamp(const vmclock_truth_t *t, struct vmclock_timestamp *out);
const char *vmclock_verdict_name(vmclock_verdict_t v);
/* A consistent copy of the daemon's state, as published (little-endian
 * fields), read from the file the state path names now; ENOENT if there is
 * none or it is shorter than a state (e.g. truncated), EBADMSG if it is not
 * a published state this library knows, ETIMEDOUT if its count stayed odd or
 * kept moving for some microseconds (a writer that died mid-update). */
int vmclock_daemon_state(const vmclock_truth_t *t, struct vmclockd_state *out);

/* vmclockd's withhold reasons (VMCLOCKD_REASON_*, include/vmclockd-state.h):
 * a key as JSON and metrics use it ("no_device") and the daemon's words
 * ("no vmclock device"); and its sync states (VMCLOCKD_SYNC_*:
 * "synchronized", ...).  NULL outside the tables. */
const char *vmclockd_reason_name(unsigned reason);
const char *vmclockd_reason_text(unsigned reason);
const char *vmclockd_sync_state_name(unsigned sync_state);

/* Waiting for the device's notifications.  Wait with poll(2) (or an event
 * loop) for the descriptor vmclock_fd() to become readable, then call
 * vmclock_notify_rearm(): it asks the device (a zero-timeout poll) and, if
 * the page changed, re-arms the notification (pread() at offset 0; the
 * driver has no lseek, and read() stops re-arming at the end of its page).
 * Call it once right after vmclock_open() too: it tells whether waiting
 * works at all.  Never loop on a result other than CHANGED or IDLE: NONE and
 * ALWAYS mean "sample the page on a timer instead", BUSY means "wait a while
 * (the read already spun ~100 ms in the kernel), then try again", ERROR sets
 * errno. */
typedef enum {
	VMCLOCK_NOTIFY_CHANGED, /* the page changed since the last re-arm; re-armed */
	VMCLOCK_NOTIFY_IDLE,    /* nothing new: a wake-up for another reason */
	VMCLOCK_NOTIFY_NONE,    /* POLLHUP: the page lacks NOTIFICATION_PRESENT */
	VMCLOCK_NOTIFY_ALWAYS,  /* always readable: a driver without poll, or a page file */
	VMCLOCK_NOTIFY_BUSY,    /* read() timed out: the host holds seq_count odd */
	VMCLOCK_NOTIFY_ERROR,   /* poll or read failed (errno) */
} vmclock_notify_t;
vmclock_notify_t vmclock_notify_rearm(const vmclock_t *vc);
/* The result in words, for a log line that says which case it is. */
const char *vmclock_notify_describe(vmclock_notify_t r);

/* A page reader's errno in words: "bad magic", "page too small", "unknown
 * version", "page never stable", ...; strerror() for the others. */
const char *vmclock_strerror(int err);

/* Names for enums and flags (lowercase, as vmclockctl's JSON uses them);
 * NULL for values outside the ABI. */
const char *vmclock_counter_name(uint8_t counter_id);
const char *vmclock_time_type_name(uint8_t time_type);
const char *vmclock_status_name(uint8_t clock_status);
const char *vmclock_leap_name(uint8_t leap_indicator);
const char *vmclock_smearing_name(uint8_t hint);
const char *vmclock_flag_name(unsigned bit);
/* Reverse of vmclock_status_name/vmclock_leap_name; -1 if unknown. */
int vmclock_status_from_name(const char *name);
int vmclock_leap_from_name(const char *name);

#ifdef __cplusplus
}
#endif

#endif /* VMCLOCK_H */
