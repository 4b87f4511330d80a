/* SPDX-License-Identifier: BSD-2-Clause
 *
 * cb-probe.c - an application of AWS ClockBound's client library
 * (libclockbound, clockbound.h) reading the segment vmclockd writes, as any
 * ClockBound application would, checked against the truth: the vmclock
 * page's time, read before and after every call.  Built by
 * tests/test-clockbound.sh against libclockbound built from ClockBound's
 * sources (tests/build-libclockbound.sh); libvmclock reads the page and
 * vmclockd's state (the marker it has handled).
 *
 * usage: cb-probe -c SEGMENT -d PAGE -s STATE -t SECONDS [-u]
 *   calls clockbound_now() in a tight loop for SECONDS (-u: until UNKNOWN
 *   has been read for a second, or SECONDS).
 * output: "<s> <realtime> <STATUS> page_marker=<m> handled=<h>" at each
 *   change of status (s: seconds since the start), then one line of key=value:
 *   calls, per status (synchronized free_running disrupted unknown), per
 *   error kind (err_syscall err_uninit err_malformed err_causality
 *   err_version), checked (calls whose bounds were checked: SYNCHRONIZED or
 *   FREE_RUNNING, the page's marker the same before and after), outside
 *   (checked calls whose [earliest, latest] missed the page's time between
 *   the two readings), max_excess_ns, unhandled (calls made while the page's
 *   marker was one vmclockd had not handled yet, read after the call),
 *   unhandled_sync (of those, SYNCHRONIZED), first_unhandled (the status of
 *   the first such call, or none), resync_s (from the first call after the
 *   handover to the first SYNCHRONIZED one; -1: none), first_unknown_s
 *   (-1: none), last (the last status).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clockbound.h"
#include "vmclock.h"
#include "vmclockd-state.h"

static const char *const names[] = { "UNKNOWN", "SYNCHRONIZED", "FREE_RUNNING", "DISRUPTED" };

static int64_t ns_of(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

static double since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(ns_of(&now) - ns_of(start)) * 1e-9;
}

/* The page's UTC in ns, or -1. */
static int64_t page_ns(const vmclock_t *page, uint64_t *marker)
{
	struct vmclock_time t;

	if (vmclock_gettime(page, &t) < 0 || !t.utc_valid)
		return -1;
	*marker = t.disruption_marker;
	return t.utc_sec * 1000000000 + t.utc_nsec;
}

int main(int argc, char **argv)
{
	const char *segment = NULL, *device = NULL, *state_path = NULL;
	double seconds = 5, unknown_since = -1, handled_at = -1;
	bool until_unknown = false, changed = false, started = false;
	uint64_t calls = 0, per_status[4] = { 0 }, errors[6] = { 0 }, checked = 0, outside = 0;
	uint64_t unhandled = 0, unhandled_sync = 0, handled, first_marker = 0;
	int64_t max_excess = 0;
	double resync = -1, first_unknown = -1;
	const char *first_unhandled = "none";
	int c, last = -1;
	struct vmclockd_state st;
	struct timespec start;
	clockbound_err open_err;
	clockbound_ctx *ctx;
	vmclock_truth_t *truth;
	vmclock_t *page;

	while ((c = getopt(argc, argv, "c:d:s:t:u")) != -1) {
		switch (c) {
		case 'c': segment = optarg; break;
		case 'd': device = optarg; break;
		case 's': state_path = optarg; break;
		case 't': seconds = atof(optarg); break;
		case 'u': until_unknown = true; break;
		default:
			fprintf(stderr, "usage: cb-probe -c SEGMENT -d PAGE -s STATE -t SECONDS [-u]\n");
			return 2;
		}
	}
	page = vmclock_open(device);
	truth = vmclock_truth_open(device, state_path);
	if (!page || !truth || vmclock_daemon_state(truth, &st) < 0) {
		fprintf(stderr, "cb-probe: cannot read %s and %s: %s\n", device, state_path,
			strerror(errno));
		return 1;
	}
	handled = st.disruption_marker;
	ctx = clockbound_vmclock_open(segment, device, &open_err);
	if (!ctx) {
		fprintf(stderr, "cb-probe: clockbound_vmclock_open: error kind %d errno %d\n",
			open_err.kind, open_err.sys_errno);
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &start);
	do {
		clockbound_now_result r;
		const clockbound_err *err;
		uint64_t m1 = 0, m2 = 0;
		int64_t t1 = page_ns(page, &m1), t2;

		err = clockbound_now(ctx, &r);
		t2 = page_ns(page, &m2);
		calls++;
		if (!started)
			first_marker = m1;
		started = true;
		if (err) {
			errors[(unsigned)err->kind < 6 ? err->kind : 0]++;
			continue;
		}
		if ((unsigned)r.clock_status > 3)
			return fprintf(stderr, "cb-probe: status %d\n", r.clock_status), 1;
		per_status[r.clock_status]++;
		/* vmclockd writes its state before the segment: a marker the
		 * state does not hold yet after the call was not in the segment
		 * during it. */
		if (m1 != handled && vmclock_daemon_state(truth, &st) == 0) {
			handled = st.disruption_marker;
			if (handled == m1 && m1 != first_marker && handled_at < 0)
				handled_at = since(&start);
		}
		if (m1 == m2 && m1 != handled) {
			changed = true;
			if (!unhandled++)
				first_unhandled = names[r.clock_status];
			unhandled_sync += r.clock_status == CLOCKBOUND_STA_SYNCHRONIZED;
		}
		if (changed && handled_at >= 0 && resync < 0 &&
		    r.clock_status == CLOCKBOUND_STA_SYNCHRONIZED)
			resync = since(&start) - handled_at;
		if ((r.clock_status == CLOCKBOUND_STA_SYNCHRONIZED ||
		     r.clock_status == CLOCKBOUND_STA_FREE_RUNNING) && m1 == m2 && t1 >= 0 && t2 >= 0) {
			int64_t excess = 0;

			checked++;
			if (ns_of(&r.latest) < t1)
				excess = t1 - ns_of(&r.latest);
			else if (ns_of(&r.earliest) > t2)
				excess = ns_of(&r.earliest) - t2;
			if (excess > 0) {
				outside++;
				if (excess > max_excess)
					max_excess = excess;
			}
		}
		if ((int)r.clock_status != last) {
			double s = since(&start);

			struct timespec rt;

			clock_gettime(CLOCK_REALTIME, &rt);
			printf("%.6f %lld.%09ld %s page_marker=%" PRIu64 " handled=%" PRIu64 "\n", s,
			       (long long)rt.tv_sec, rt.tv_nsec, names[r.clock_status], m1, handled);
			fflush(stdout);
			last = (int)r.clock_status;
			if (last == CLOCKBOUND_STA_UNKNOWN) {
				unknown_since = s;
				if (first_unknown < 0)
					first_unknown = s;
			}
		}
		if (until_unknown && last == CLOCKBOUND_STA_UNKNOWN && since(&start) - unknown_since > 1)
			break;
	} while (since(&start) < seconds);
	printf("calls=%" PRIu64 " synchronized=%" PRIu64 " free_running=%" PRIu64
	       " disrupted=%" PRIu64 " unknown=%" PRIu64 " err_syscall=%" PRIu64
	       " err_uninit=%" PRIu64 " err_malformed=%" PRIu64 " err_causality=%" PRIu64
	       " err_version=%" PRIu64 " checked=%" PRIu64 " outside=%" PRIu64
	       " max_excess_ns=%" PRId64 " unhandled=%" PRIu64 " unhandled_sync=%" PRIu64
	       " first_unhandled=%s resync_s=%.6f first_unknown_s=%.6f last=%s\n",
	       calls, per_status[1], per_status[2], per_status[3], per_status[0],
	       errors[CLOCKBOUND_ERR_SYSCALL], errors[CLOCKBOUND_ERR_SEGMENT_NOT_INITIALIZED],
	       errors[CLOCKBOUND_ERR_SEGMENT_MALFORMED], errors[CLOCKBOUND_ERR_CAUSALITY_BREACH],
	       errors[CLOCKBOUND_ERR_SEGMENT_VERSION_NOT_SUPPORTED], checked, outside, max_excess,
	       unhandled, unhandled_sync, first_unhandled, resync, first_unknown,
	       last >= 0 ? names[last] : "none");
	clockbound_close(ctx);
	vmclock_truth_close(truth);
	vmclock_close(page);
	return 0;
}
