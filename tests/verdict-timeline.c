/* SPDX-License-Identifier: BSD-2-Clause
 *
 * verdict-timeline.c - watch vmclock_timestamp() the way an application
 * would, every millisecond (-i: another interval), and print a line whenever the verdict changes.
 * With the device carrying time it also checks, at every call, that a
 * SYNCHRONIZED or FREERUNNING timestamp's bounds contain the device's time
 * (the truth), and counts the calls where they did not (a timestamp without
 * a bound is not checked).
 *
 * usage: verdict-timeline -d PAGE -s STATE -t SECONDS [-i INTERVAL_MS]
 * output: "<realtime> <verdict> bound_ns=<n> marker=<m>" per change, then
 *         "checks=<n> violations=<n> max_excess_ns=<n> min_bound_ns=<n>
 *         first_violation=<realtime> last_violation=<realtime>" (the smallest
 *         bound of a checked call; 0 for a time when there was none).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "vmclock.h"

static int64_t ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

int main(int argc, char **argv)
{
	const char *device = NULL, *state = NULL;
	double seconds = 5;
	long interval_ms = 1;
	vmclock_truth_t *truth;
	vmclock_t *page;
	int c, last = -1;
	uint64_t checks = 0, violations = 0;
	int64_t max_excess = 0, first_violation = 0, last_violation = 0;
	uint64_t min_bound = UINT64_MAX;
	struct timespec start, now;

	while ((c = getopt(argc, argv, "d:s:t:i:")) != -1) {
		switch (c) {
		case 'd':
			device = optarg;
			break;
		case 's':
			state = optarg;
			break;
		case 't':
			seconds = atof(optarg);
			break;
		case 'i':
			interval_ms = atol(optarg);
			break;
		default:
			fprintf(stderr, "usage: verdict-timeline -d PAGE -s STATE -t SECONDS "
				"[-i INTERVAL_MS]\n");
			return 2;
		}
	}
	truth = vmclock_truth_open(device, state);
	page = vmclock_open(device);
	if (!truth) {
		perror("vmclock_truth_open");
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &start);
	do {
		struct vmclock_timestamp ts;
		struct vmclock_offset o;

		vmclock_timestamp(truth, &ts);
		if ((int)ts.verdict != last) {
			printf("%lld.%09ld %s bound_ns=%" PRIu64 " marker=%" PRIu64 "\n",
			       (long long)ts.time.tv_sec, ts.time.tv_nsec, vmclock_verdict_name(ts.verdict),
			       ts.bound_ns, ts.disruption_marker);
			fflush(stdout);
			last = (int)ts.verdict;
		}
		/* The truth at the timestamp: system time plus the device offset. */
		/* An unbounded timestamp claims nothing to check. */
		if ((ts.verdict == VMCLOCK_VERDICT_SYNCHRONIZED ||
		     ts.verdict == VMCLOCK_VERDICT_FREERUNNING) && ts.bound_ns != VMCLOCK_ERROR_UNKNOWN &&
		    page && vmclock_offset(page, &o) == 0 &&
		    o.time.disruption_marker == ts.disruption_marker) {
			int64_t t = ts_ns(&ts.time) + o.offset_ns;
			int64_t excess = 0;

			if (t < ts_ns(&ts.earliest))
				excess = ts_ns(&ts.earliest) - t;
			else if (t > ts_ns(&ts.latest))
				excess = t - ts_ns(&ts.latest);
			checks++;
			if (ts.bound_ns < min_bound)
				min_bound = ts.bound_ns;
			if (excess > (int64_t)o.uncertainty_ns) {
				violations++;
				if (!first_violation)
					first_violation = ts_ns(&ts.time);
				last_violation = ts_ns(&ts.time);
				if (excess > max_excess)
					max_excess = excess;
			}
		}
		nanosleep(&(struct timespec){ interval_ms / 1000, interval_ms % 1000 * 1000000 }, NULL);
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while ((double)(ts_ns(&now) - ts_ns(&start)) < seconds * 1e9);
	printf("checks=%" PRIu64 " violations=%" PRIu64 " max_excess_ns=%" PRId64
	       " min_bound_ns=%" PRIu64 " first_violation=%" PRId64 ".%09" PRId64
	       " last_violation=%" PRId64 ".%09" PRId64 "\n",
	       checks, violations, max_excess, min_bound, first_violation / 1000000000,
	       first_violation % 1000000000, last_violation / 1000000000,
	       last_violation % 1000000000);
	vmclock_truth_close(truth);
	vmclock_close(page);
	return 0;
}
