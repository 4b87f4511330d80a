/* SPDX-License-Identifier: BSD-2-Clause
 *
 * fuzz_state.c - libFuzzer target: the input is vmclockd's published state
 * (include/vmclockd-state.h), read with vmclock_truth_open().
 *
 * The device is a page file this target writes: a valid x86 TSC page whose
 * disruption marker is the state's, plus one in the first pass.  Each input
 * is read twice:
 *   1. as it is (heartbeats in the input are nearly always stale: UNKNOWN);
 *   2. with heartbeat_realtime_ns and error_bound_realtime_ns rewritten as
 *      "now" minus the input's values taken modulo 2^33 ns (about 8.6 s) and
 *      the same marker in page and state, so that every verdict is reached.
 * The state's seq_count is made even, so that the fields behind it are
 * what gets read: an odd one only makes each read of the state retry for
 * its time budget (microseconds, not a count of tries) and give up with
 * ETIMEDOUT, the same UNKNOWN for every input.
 *
 * Checked: vmclock_daemon_state succeeds exactly when the file is at least
 * the structure's size with the right magic and version, and then returns
 * the file's bytes; ENOENT below that size (not mapped), EBADMSG otherwise.
 * vmclock_timestamp returns 0 with a verdict of the enum; nanoseconds are
 * normalised; earliest <= time <= latest; an UNKNOWN or DISRUPTED verdict
 * is unbounded; a bounded verdict never claims a smaller bound than the
 * daemon published.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "vmclock.h"
#include "vmclockd-state.h"
#include "fuzz.h"

/* State layout, written out independently of struct vmclockd_state. */
enum {
	ST_MAGIC = 0,
	ST_VERSION = 4,
	ST_SEQ = 8,
	ST_SYNC = 12,
	ST_TIMEOUT_MS = 14,
	ST_HEARTBEAT = 16,
	ST_MARKER = 32,
	ST_BOUND = 48,
	ST_BOUND_TIME = 56,
	ST_BYTES = 200,
};

/* Page layout (include/vmclock-abi.h). */
enum { PG_MAGIC = 0, PG_SIZE = 4, PG_VERSION = 8, PG_COUNTER_ID = 10, PG_MARKER = 16, PAGE_BYTES = 112 };

static struct fuzz_file state_file, page_file;

static void write_page(uint64_t marker)
{
	uint8_t page[PAGE_BYTES] = { 0 };

	page[PG_MAGIC] = 0x56; /* "VCLK" */
	page[PG_MAGIC + 1] = 0x43;
	page[PG_MAGIC + 2] = 0x4c;
	page[PG_MAGIC + 3] = 0x4b;
	page[PG_SIZE] = PAGE_BYTES;
	page[PG_VERSION] = 1;
	page[PG_COUNTER_ID] = VMCLOCK_COUNTER_X86_TSC;
	fuzz_put_le64(page + PG_MARKER, marker);
	fuzz_file_set(&page_file, page, sizeof(page));
}

static bool ts_le(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec <= b->tv_nsec);
}

static bool ts_normal(const struct timespec *t)
{
	return t->tv_nsec >= 0 && t->tv_nsec < 1000000000;
}

static void read_state(const uint8_t *st, size_t len, uint64_t page_marker)
{
	bool known = len >= ST_BYTES && (uint32_t)fuzz_le64(st + ST_MAGIC) == VMCLOCKD_STATE_MAGIC &&
		     (st[ST_VERSION] | st[ST_VERSION + 1] << 8) == VMCLOCKD_STATE_VERSION;
	uint64_t bound = len >= ST_BYTES ? fuzz_le64(st + ST_BOUND) : 0;
	struct vmclockd_state copy;
	struct vmclock_timestamp ts;
	vmclock_truth_t *t;
	int r;

	fuzz_file_set(&state_file, st, len);
	write_page(page_marker);
	t = vmclock_truth_open(page_file.path, state_file.path);
	FUZZ_CHECK(t);

	errno = 0;
	r = vmclock_daemon_state(t, &copy);
	if (len < ST_BYTES) {
		FUZZ_CHECK(r == -1 && errno == ENOENT);
	} else if (!known) {
		FUZZ_CHECK(r == -1 && errno == EBADMSG);
	} else {
		FUZZ_CHECK(r == 0);
		FUZZ_CHECK(memcmp(&copy, st, sizeof(copy)) == 0);
	}

	memset(&ts, 0xa5, sizeof(ts));
	FUZZ_CHECK(vmclock_timestamp(t, &ts) == 0);
	FUZZ_CHECK(vmclock_verdict_name(ts.verdict) != NULL);
	FUZZ_CHECK(ts_normal(&ts.time) && ts_normal(&ts.earliest) && ts_normal(&ts.latest));
	FUZZ_CHECK(ts_le(&ts.earliest, &ts.time) && ts_le(&ts.time, &ts.latest));
	/* Without a state the early return leaves the marker 0, although
	 * vmclock.h says "the device's, 0 without a device" (reported). */
	if (len >= ST_BYTES)
		FUZZ_CHECK(ts.disruption_marker == page_marker);
	else
		FUZZ_CHECK(ts.disruption_marker == page_marker || ts.disruption_marker == 0);
	if (ts.verdict == VMCLOCK_VERDICT_UNKNOWN || ts.verdict == VMCLOCK_VERDICT_DISRUPTED) {
		FUZZ_CHECK(ts.bound_ns == VMCLOCK_ERROR_UNKNOWN);
	} else {
		FUZZ_CHECK(known);
		FUZZ_CHECK(page_marker == fuzz_le64(st + ST_MARKER));
		if (ts.bound_ns != VMCLOCK_ERROR_UNKNOWN) {
			/* Growth never wraps a huge bound into a small one. */
			FUZZ_CHECK(ts.bound_ns >= bound);
			FUZZ_CHECK(ts.bound_ns < (uint64_t)INT64_MAX / 2);
		}
	}
	vmclock_truth_close(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	uint8_t *st = malloc(len > ST_BYTES ? len : ST_BYTES);
	uint64_t marker = len >= ST_MARKER + 8 ? fuzz_le64(data + ST_MARKER) : 0;
	struct timespec now;
	uint64_t now_ns;

	FUZZ_CHECK(st);
	fuzz_file_init(&state_file, "fuzz_state");
	fuzz_file_init(&page_file, "fuzz_state_page");

	memcpy(st, data, len);
	if (len > ST_SEQ)
		st[ST_SEQ] &= (uint8_t)~1u;
	read_state(st, len, marker + 1);

	if (len >= ST_BYTES) {
		clock_gettime(CLOCK_REALTIME, &now);
		now_ns = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
		fuzz_put_le64(st + ST_HEARTBEAT, now_ns - (fuzz_le64(st + ST_HEARTBEAT) & ((UINT64_C(1) << 33) - 1)));
		fuzz_put_le64(st + ST_BOUND_TIME,
			      now_ns - (fuzz_le64(st + ST_BOUND_TIME) & ((UINT64_C(1) << 33) - 1)));
		read_state(st, len, marker);
	}
	free(st);
	return 0;
}
