/* SPDX-License-Identifier: BSD-2-Clause
 *
 * naive-feeder - the baseline vmclockd is measured against: a bare loop
 * that reads the vmclock page and sends chronyd's SOCK refclock a sample,
 * nothing else.  No event loop, no withholding, no handover: on a live
 * migration chrony keeps its old samples and goes on claiming it is
 * synchronised while it is milliseconds off.
 *
 *   naive-feeder --device PAGE --sock CHRONY_SOCK [--interval-ms N]
 *                [--reset-only CHRONY_CMD_SOCK]
 *
 * --reset-only makes it the "reset-only feeder": on a change of the
 * disruption_marker it sends chronyd `reset sources` (blocking, over the
 * command socket) and nothing more: no dfreq, no doffset, no burst.  It then
 * prints one line on stdout: the CLOCK_REALTIME at which the change was
 * seen, the markers, and the reset's round trip or error.
 *
 * Sampling: every interval-ms (default 62, vmclockd's default) on an
 * absolute CLOCK_MONOTONIC schedule, one vmclock_offset() (the narrowest
 * of several counter/clock_gettime brackets) and one 40-byte datagram.
 * It is also the footprint baseline of tests/bench-footprint.sh.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vmclock.h"

#include "../daemon/chrony_sock.h"
#include "chrony_blocking.h"


static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void usage(FILE *f)
{
	fputs("usage: naive-feeder --device PAGE --sock CHRONY_SOCK [--interval-ms N]\n"
	      "                    [--reset-only CHRONY_CMD_SOCK]\n", f);
}

static void reset_chrony(CBK_Client c, uint64_t from, uint64_t to)
{
	struct timespec seen;
	CPR_Packet p;
	CCL_Result r;
	int err;

	clock_gettime(CLOCK_REALTIME, &seen);
	CPR_MakeResetSources(&p);
	err = CBK_Request(c, &p, &r, 100);
	if (err == 0)
		printf("%lld.%09ld reset marker %" PRIu64 " -> %" PRIu64 " ok rtt_ns=%" PRId64 "\n",
		       (long long)seen.tv_sec, seen.tv_nsec, from, to, r.rtt_ns);
	else
		printf("%lld.%09ld reset marker %" PRIu64 " -> %" PRIu64 " error=%s\n",
		       (long long)seen.tv_sec, seen.tv_nsec, from, to, strerror(-err));
	fflush(stdout);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "sock", required_argument, NULL, 's' },
		{ "interval-ms", required_argument, NULL, 'i' },
		{ "reset-only", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *device = NULL, *sock_path = NULL, *cmd_path = NULL;
	long interval_ms = 62;
	struct sockaddr_un addr;
	struct sigaction sa;
	struct timespec next;
	CBK_Client chrony = NULL;
	vmclock_t *vc;
	uint64_t marker = 0;
	int opt, fd, have_marker = 0;

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd': device = optarg; break;
		case 's': sock_path = optarg; break;
		case 'i': interval_ms = atol(optarg); break;
		case 'r': cmd_path = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!device || !sock_path || optind != argc || interval_ms < 1 || interval_ms > 60000 ||
	    strlen(sock_path) >= sizeof(addr.sun_path)) {
		usage(stderr);
		return 2;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	vc = vmclock_open(device);
	if (!vc) {
		fprintf(stderr, "naive-feeder: %s: %s\n", device, strerror(errno));
		return 1;
	}
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "naive-feeder: socket: %s\n", strerror(errno));
		return 1;
	}
	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	strcpy(addr.sun_path, sock_path);
	if (cmd_path && (opt = CBK_Open(cmd_path, &chrony)) < 0) {
		fprintf(stderr, "naive-feeder: cannot open a socket next to %s: %s\n", cmd_path,
			strerror(-opt));
		return 1;
	}

	clock_gettime(CLOCK_MONOTONIC, &next);
	while (!stop) {
		struct vmclock_offset o;
		struct chrony_sock_sample msg;

		if (vmclock_offset(vc, &o) == 0) {
			if (chrony && have_marker && o.time.disruption_marker != marker)
				reset_chrony(chrony, marker, o.time.disruption_marker);
			marker = o.time.disruption_marker;
			have_marker = 1;

			memset(&msg, 0, sizeof(msg));
			msg.tv.tv_sec = o.system.tv_sec;
			msg.tv.tv_usec = o.system.tv_nsec / 1000;
			msg.offset = (double)o.offset_ns * 1e-9;
			msg.magic = CHRONY_SOCK_MAGIC;
			/* A chronyd that is not there (yet) costs one failed call. */
			(void)sendto(fd, &msg, sizeof(msg), MSG_DONTWAIT, (struct sockaddr *)&addr,
				     sizeof(addr));
		}

		next.tv_nsec += interval_ms * 1000000;
		while (next.tv_nsec >= 1000000000) {
			next.tv_nsec -= 1000000000;
			next.tv_sec++;
		}
		while (!stop && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
			;
	}

	if (chrony)
		CBK_Close(chrony);
	close(fd);
	vmclock_close(vc);
	return 0;
}
