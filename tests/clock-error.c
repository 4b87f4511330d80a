/* SPDX-License-Identifier: BSD-2-Clause
 *
 * clock-error - the system clock's true error, read from the vmclock page
 * through the kernel's PTP clock (/dev/ptp0 of ptp_vmclock, which the
 * driver registers for a page keeping TAI), for the guest's clock benchmark.
 * An independent reader: it links nothing of libvmclock or vmclockd.
 *
 *   clock-error [-d /dev/ptp0] [-i interval_ms] [-t seconds]
 *
 * Every interval: PTP_SYS_OFFSET_EXTENDED with 5 samples, each a
 * (CLOCK_REALTIME, device, CLOCK_REALTIME) bracket; the narrowest bracket's
 * middle minus the device time, less the whole seconds of TAI - UTC (taken
 * once, at the first reading), is the error.  One line per reading:
 *
 *   <CLOCK_REALTIME middle, s.ns> <error, ns (> 0: the clock is ahead)> <bracket, ns>
 *
 * A reading more than a second from the clock (TCG's emulated device now
 * and then returns one) is no measurement: it is left out, and counted in a
 * last line on stderr, "absurd=N".
 * Exit status 0, or 1 (no device, the ioctl refused) with one line saying why.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <linux/ptp_clock.h>

#define SAMPLES 5
#define NS INT64_C(1000000000)

static int64_t pct_ns(const struct ptp_clock_time *t)
{
	return (int64_t)t->sec * NS + t->nsec;
}

int main(int argc, char **argv)
{
	const char *dev = "/dev/ptp0";
	long interval_ms = 50;
	double seconds = 10.0;
	struct timespec next;
	int64_t tai_s = 0, end_ns, absurd = 0;
	int fd, opt;
	bool first = true;

	while ((opt = getopt(argc, argv, "d:i:t:")) != -1) {
		switch (opt) {
		case 'd':
			dev = optarg;
			break;
		case 'i':
			interval_ms = strtol(optarg, NULL, 10);
			break;
		case 't':
			seconds = strtod(optarg, NULL);
			break;
		default:
			fprintf(stderr, "usage: clock-error [-d /dev/ptp0] [-i interval_ms] [-t seconds]\n");
			return 2;
		}
	}
	if (interval_ms <= 0 || seconds <= 0) {
		fprintf(stderr, "clock-error: interval and duration must be positive\n");
		return 2;
	}
	fd = open(dev, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "clock-error: %s: %s\n", dev, strerror(errno));
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &next);
	end_ns = (int64_t)next.tv_sec * NS + next.tv_nsec + (int64_t)(seconds * 1e9);
	for (;;) {
		struct ptp_sys_offset_extended x;
		int64_t best_width = INT64_MAX, mid = 0, phc = 0;

		memset(&x, 0, sizeof(x));
		x.n_samples = SAMPLES;
		if (ioctl(fd, PTP_SYS_OFFSET_EXTENDED, &x) < 0) {
			fprintf(stderr, "clock-error: PTP_SYS_OFFSET_EXTENDED on %s: %s\n", dev,
				strerror(errno));
			return 1;
		}
		for (int i = 0; i < SAMPLES; i++) {
			int64_t a = pct_ns(&x.ts[i][0]), b = pct_ns(&x.ts[i][2]);

			if (b - a < best_width) {
				best_width = b - a;
				mid = a + (b - a) / 2;
				phc = pct_ns(&x.ts[i][1]);
			}
		}
		if (first && phc - mid > 0 && phc - mid < 100 * NS) {
			/* TAI - UTC, whole seconds: the clock is far closer than
			 * half a second. */
			tai_s = (phc - mid + NS / 2) / NS;
			first = false;
		}
		if (first || mid - (phc - tai_s * NS) > NS || mid - (phc - tai_s * NS) < -NS)
			absurd++;
		else
				printf("%" PRId64 ".%09" PRId64 " %" PRId64 " %" PRId64 "\n", mid / NS,
			       mid % NS, mid - (phc - tai_s * NS), best_width);
		fflush(stdout);

		next.tv_nsec += interval_ms * 1000000L;
		while (next.tv_nsec >= NS) {
			next.tv_nsec -= NS;
			next.tv_sec++;
		}
		if ((int64_t)next.tv_sec * NS + next.tv_nsec > end_ns)
			break;
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
			;
	}
	if (absurd)
		fprintf(stderr, "absurd=%" PRId64 "\n", absurd);
	close(fd);
	return 0;
}
