/* SPDX-License-Identifier: BSD-2-Clause
 *
 * truthful.c - take a timestamp that says whether it can be trusted.
 *
 * An application that records when something happened (a transaction, a
 * log entry that auditors will compare across machines) asks libvmclock for
 * the time together with a verdict and bounds, and refuses to record the
 * timestamp unless the verdict is SYNCHRONIZED: right after a live
 * migration, or while vmclockd is not running, CLOCK_REALTIME may be off by
 * far more than it claims.
 *
 * usage: truthful [DEVICE [STATE]]   (defaults /dev/vmclock0 and
 *                                     /run/vmclockd/state)
 * Build: cc truthful.c $(pkg-config --cflags --libs vmclock)
 * Exit status: 0 the timestamp was recorded, 1 it was refused.
 */
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include <vmclock.h>

/* Refuse timestamps whose error bound exceeds this. */
#define MAX_BOUND_NS 1000000u /* 1 ms */

static void print_ts(const char *label, const struct timespec *t)
{
	printf("%-9s %lld.%09ld\n", label, (long long)t->tv_sec, t->tv_nsec);
}

int main(int argc, char **argv)
{
	const char *device = argc > 1 ? argv[1] : NULL;
	const char *state = argc > 2 ? argv[2] : NULL;
	struct vmclock_timestamp ts;
	vmclock_truth_t *truth;
	int rc = 1;

	/* Open once, at start-up: the handle succeeds even without a device or
	 * a running vmclockd (the verdict is then UNKNOWN) and picks them up
	 * when they appear. */
	truth = vmclock_truth_open(device, state);
	if (!truth) {
		perror("vmclock_truth_open");
		return 1;
	}

	/* Per timestamp: no system call, no allocation, safe from any thread. */
	vmclock_timestamp(truth, &ts);

	printf("verdict   %s\n", vmclock_verdict_name(ts.verdict));
	print_ts("time", &ts.time);
	if (ts.bound_ns == VMCLOCK_ERROR_UNKNOWN) {
		printf("bound     unknown\n");
	} else {
		printf("bound     +/- %" PRIu64 " ns\n", ts.bound_ns);
		print_ts("earliest", &ts.earliest);
		print_ts("latest", &ts.latest);
	}
	printf("marker    %" PRIu64 "\n", ts.disruption_marker);

	if (ts.verdict != VMCLOCK_VERDICT_SYNCHRONIZED)
		fprintf(stderr, "truthful: refusing the transaction: time is %s\n",
			vmclock_verdict_name(ts.verdict));
	else if (ts.bound_ns > MAX_BOUND_NS)
		fprintf(stderr, "truthful: refusing the transaction: bound %" PRIu64 " ns > %u ns\n",
			ts.bound_ns, MAX_BOUND_NS);
	else {
		/* The record keeps the interval, not just the point. */
		printf("transaction recorded at %lld.%09ld (in [%lld.%09ld, %lld.%09ld])\n",
		       (long long)ts.time.tv_sec, ts.time.tv_nsec, (long long)ts.earliest.tv_sec,
		       ts.earliest.tv_nsec, (long long)ts.latest.tv_sec, ts.latest.tv_nsec);
		rc = 0;
	}
	vmclock_truth_close(truth);
	return rc;
}
