/* SPDX-License-Identifier: BSD-2-Clause
 *
 * chrony-observe - read chronyd's tracking report over its command socket,
 * timed to the round trip, for tests and benchmarks; plus the few control
 * commands the tests need (reset, dfreq, doffset, burst, makestep, a whole
 * handover).
 *
 *   chrony-observe -s SOCK [-i interval_ms] [-n count | -t seconds] [-H] [-k]
 *   chrony-observe -s SOCK --once [--json]
 *   chrony-observe -s SOCK --reset | --dfreq PPM | --doffset S | --burst | --makestep
 *   chrony-observe -s SOCK --handover DFREQ_PPM,O_S [-n repeats]
 *
 * A reading line holds, space separated: the CLOCK_REALTIME midpoint of the
 * request and the reply (s.ns), the round trip (ns), then current_correction
 * (s, > 0: system clock slow), freq_ppm, leap_status, ref_id (hex),
 * root_dispersion, stratum, last_offset, rms_offset, skew_ppm, root_delay,
 * resid_freq_ppm, last_update_interval.  -H prints a '#' header first.
 * -k keeps going after a failed reading (an "error=..." line; one client
 * throughout, so this shows it re-connecting to a restarted chronyd).
 *
 * Commands print "ok rtt_ns=N" or "error=NAME status=N (text)" and exit 0,
 * 1 (no chronyd, timeout, bad reply) or 3 (chronyd refused: status).
 * --handover runs the daemon's handover module (daemon/handover.c) with o
 * fixed and the counter period changed by DFREQ_PPM, and prints each
 * step's round trip.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "../daemon/evbase.h"
#include "../daemon/hnd_driver.h"
#include "../daemon/log.h"
#include "chrony_blocking.h"

enum {
	OPT_ONCE = 256,
	OPT_JSON,
	OPT_RESET,
	OPT_DFREQ,
	OPT_DOFFSET,
	OPT_BURST,
	OPT_MAKESTEP,
	OPT_HANDOVER,
	OPT_TIMEOUT,
};

static const char *errno_name(int e)
{
	switch (e) {
	case 0:
		return "0";
	case ENOENT:
		return "ENOENT";
	case ECONNREFUSED:
		return "ECONNREFUSED";
	case ETIMEDOUT:
		return "ETIMEDOUT";
	case EPROTO:
		return "EPROTO";
	case EPROTONOSUPPORT:
		return "EPROTONOSUPPORT";
	case EACCES:
		return "EACCES";
	case EINVAL:
		return "EINVAL";
	case ESRCH:
		return "ESRCH";
	case EIO:
		return "EIO";
	case EMSGSIZE:
		return "EMSGSIZE";
	case ENODATA:
		return "ENODATA";
	case EBUSY:
		return "EBUSY";
	default:
		return "EOTHER";
	}
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: chrony-observe -s SOCK [-i interval_ms] [-n count | -t seconds] [-H] [-k]\n"
		"       chrony-observe -s SOCK --once [--json]\n"
		"       chrony-observe -s SOCK --reset | --dfreq PPM | --doffset S | --burst | --makestep\n"
		"       chrony-observe -s SOCK --handover DFREQ_PPM,O_S [-n repeats]\n"
		"       common: [--timeout ms] (per request, default 100)\n");
}

static void midpoint(const CCL_Result *r, struct timespec *mid)
{
	int64_t a = (int64_t)r->tx_real.tv_sec * 1000000000 + r->tx_real.tv_nsec;
	int64_t b = (int64_t)r->rx_real.tv_sec * 1000000000 + r->rx_real.tv_nsec;
	int64_t m = a + (b - a) / 2;

	mid->tv_sec = (time_t)(m / 1000000000);
	mid->tv_nsec = (long)(m % 1000000000);
}

static void print_line(const CCL_Result *r)
{
	const CPR_Tracking *t = &r->reply.tracking;
	struct timespec mid;

	midpoint(r, &mid);
	printf("%lld.%09ld %" PRId64 " %+.9e %+.6f %u %08" PRIx32
	       " %.9e %u %+.9e %.9e %.6f %.9e %+.6f %.3f\n",
	       (long long)mid.tv_sec, mid.tv_nsec, r->rtt_ns, t->current_correction, t->freq_ppm,
	       t->leap_status, t->ref_id, t->root_dispersion, t->stratum, t->last_offset,
	       t->rms_offset, t->skew_ppm, t->root_delay, t->resid_freq_ppm,
	       t->last_update_interval);
}

static void print_json(const CCL_Result *r)
{
	const CPR_Tracking *t = &r->reply.tracking;
	struct timespec mid;

	midpoint(r, &mid);
	printf("{\"time\": %lld.%09ld, \"rtt_ns\": %" PRId64 ", \"ref_id\": \"%08" PRIx32 "\", "
	       "\"stratum\": %u, \"leap_status\": %u, \"ref_time\": %lld.%09ld, "
	       "\"current_correction\": %.9e, \"last_offset\": %.9e, \"rms_offset\": %.9e, "
	       "\"freq_ppm\": %.6f, \"resid_freq_ppm\": %.6f, \"skew_ppm\": %.6f, "
	       "\"root_delay\": %.9e, \"root_dispersion\": %.9e, \"last_update_interval\": %.3f}\n",
	       (long long)mid.tv_sec, mid.tv_nsec, r->rtt_ns, t->ref_id, t->stratum, t->leap_status,
	       (long long)t->ref_time.tv_sec, t->ref_time.tv_nsec, t->current_correction,
	       t->last_offset, t->rms_offset, t->freq_ppm, t->resid_freq_ppm, t->skew_ppm,
	       t->root_delay, t->root_dispersion, t->last_update_interval);
}

static int report_error(const char *what, int err, const CCL_Result *r)
{
	if (r && r->status > 0) {
		printf("error=%s status=%u (%s)\n", errno_name(-err), r->status,
		       CPR_StatusName(r->status));
		return 3;
	}
	printf("error=%s status=- (%s: %s)\n", errno_name(-err), what, strerror(-err));
	return 1;
}

static int run_command(CBK_Client c, CPR_Packet *p, int timeout_ms)
{
	CCL_Result r;
	int err;

	err = CBK_Request(c, p, &r, timeout_ms);
	if (err < 0)
		return report_error("request", err, &r);
	printf("ok rtt_ns=%" PRId64 "\n", r.rtt_ns);
	return 0;
}

static int observe(CBK_Client c, int interval_ms, long count, double seconds, int once, int json,
		   int header, int keep_going, int timeout_ms)
{
	struct timespec next, start;
	CPR_Packet p;
	CCL_Result r;
	long n;
	int err, rc;

	if (header && !json)
		printf("# midpoint rtt_ns correction_s freq_ppm leap ref_id root_dispersion "
		       "stratum "
		       "last_offset rms_offset skew_ppm root_delay resid_freq_ppm "
		       "update_interval\n");

	clock_gettime(CLOCK_MONOTONIC, &start);
	next = start;
	for (n = 0;; n++) {
		CPR_MakeTracking(&p);
		err = CBK_Request(c, &p, &r, timeout_ms);
		if (err < 0) {
			rc = report_error("tracking", err, &r);
			fflush(stdout);
			if (!keep_going)
				return rc;
		} else if (json)
			print_json(&r);
		else
			print_line(&r);
		fflush(stdout);

		if (once || (count > 0 && n + 1 >= count))
			break;
		next.tv_nsec += (long)interval_ms * 1000000;
		while (next.tv_nsec >= 1000000000) {
			next.tv_nsec -= 1000000000;
			next.tv_sec++;
		}
		if (seconds > 0.0) {
			double left = (double)(next.tv_sec - start.tv_sec) +
				      (double)(next.tv_nsec - start.tv_nsec) * 1e-9;
			if (left > seconds)
				break;
		}
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
			;
	}
	return 0;
}

/* ---- handover through the daemon's module ---- */

typedef struct {
	struct event_base *base;
	double o;
	HND_Report report;
	int done;
} HandoverRun;

/* The offset wanted: the fixed one, at once. */
static void fixed_offset(uint64_t marker, void *arg)
{
	HDR_Offset(HND_OFFSET_OK, ((HandoverRun *)arg)->o, 0);
}

static void handover_done(const HND_Report *r, void *arg)
{
	HandoverRun *h = arg;

	h->report = *r;
	h->done = 1;
	event_base_loopbreak(h->base);
}

/* Periods whose ratio is -(DFREQ_PPM) * 1e-6 + 1: frac / 2^64 seconds. */
static HND_Period period_for(double dfreq_ppm)
{
	HND_Period p = { true, UINT64_C(1) << 62, 0 };

	p.frac = (uint64_t)((double)p.frac * (1.0 - dfreq_ppm * 1e-6));
	return p;
}

static int handover(const char *sock, const char *spec, long repeats, int timeout_ms)
{
	HND_Timing timing = HND_DEFAULT_TIMING;
	HDR_Callbacks cbs;
	HND_Target t;
	HandoverRun h;
	char *end;
	double dfreq;
	long i;
	int s, rc = 0, r;

	memset(&h, 0, sizeof(h));
	dfreq = strtod(spec, &end);
	if (*end != ',' || !isfinite(dfreq)) {
		fprintf(stderr, "chrony-observe: --handover wants DFREQ_PPM,O_S\n");
		return 2;
	}
	h.o = strtod(end + 1, &end);
	if (*end || !isfinite(h.o)) {
		fprintf(stderr, "chrony-observe: --handover wants DFREQ_PPM,O_S\n");
		return 2;
	}
	LOG_Initialise(false, true);
	h.base = EVB_New();
	timing.timeout_ms = timeout_ms > 0 ? timeout_ms : timing.timeout_ms;
	timing.holdoff_ms = 0; /* back to back on purpose */
	timing.max_holdoff_ms = 0;
	timing.max_failures = 1;
	timing.max_rounds = 1; /* one try, its failure reported */
	cbs = (HDR_Callbacks){ .measure = fixed_offset, .done = handover_done, .arg = &h };
	r = HDR_Initialise(h.base, sock, &timing, &cbs);
	if (r < 0) {
		fprintf(stderr, "chrony-observe: %s: %s\n", sock, strerror(-r));
		return 1;
	}

	for (i = 0; i < (repeats > 0 ? repeats : 1); i++) {
		memset(&t, 0, sizeof(t));
		t.marker = (uint64_t)i + 1;
		t.old_period = period_for(0.0);
		t.new_period = period_for(dfreq);
		t.has_time = true;
		h.done = 0;
		HDR_Start(&t);
		event_base_dispatch(h.base);
		if (!h.done) {
			rc = 1;
			break;
		}
		if (!h.report.ok) {
			printf("error=%s status=- (%s at %s)\n", errno_name(h.report.error),
			       h.report.reason, HND_StepName(h.report.failed_step));
			rc = 1;
			break;
		}
		printf("ok total_ns=%" PRId64, h.report.duration_ns);
		for (s = HND_STEP_RESET; s <= HND_STEP_DOFFSET; s++)
			printf(" %s_ns=%" PRId64,
			       s == HND_STEP_RESET ? "reset" : HND_StepName((HND_Step)s),
			       h.report.rtt_ns[s]);
		printf(" c=%+.9e o=%+.9e doffset=%+.9e dfreq=%+.9f datagrams=%d\n",
		       h.report.correction, h.report.offset, h.report.doffset, h.report.dfreq_ppm,
		       h.report.datagrams);
	}

	HDR_Finalise();
	event_base_free(h.base);
	LOG_Finalise();
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"once", no_argument, NULL, OPT_ONCE},
		{"json", no_argument, NULL, OPT_JSON},
		{"reset", no_argument, NULL, OPT_RESET},
		{"dfreq", required_argument, NULL, OPT_DFREQ},
		{"doffset", required_argument, NULL, OPT_DOFFSET},
		{"burst", no_argument, NULL, OPT_BURST},
		{"makestep", no_argument, NULL, OPT_MAKESTEP},
		{"handover", required_argument, NULL, OPT_HANDOVER},
		{"timeout", required_argument, NULL, OPT_TIMEOUT},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *sock = NULL, *handover_spec = NULL;
	int opt, interval_ms = 100, once = 0, json = 0, header = 0, keep_going = 0;
	int timeout_ms = 100;
	int command = 0, rc;
	double value = 0.0, seconds = 0.0;
	long count = 0;
	CBK_Client c;
	CPR_Packet p;

	while ((opt = getopt_long(argc, argv, "s:i:n:t:Hkh", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			sock = optarg;
			break;
		case 'i':
			interval_ms = atoi(optarg);
			break;
		case 'n':
			count = atol(optarg);
			break;
		case 't':
			seconds = atof(optarg);
			break;
		case 'H':
			header = 1;
			break;
		case 'k':
			keep_going = 1;
			break;
		case OPT_ONCE:
			once = 1;
			break;
		case OPT_JSON:
			json = 1;
			break;
		case OPT_TIMEOUT:
			timeout_ms = atoi(optarg);
			break;
		case OPT_HANDOVER:
			handover_spec = optarg;
			break;
		case OPT_DFREQ:
		case OPT_DOFFSET:
			value = atof(optarg);
			command = opt;
			break;
		case OPT_RESET:
		case OPT_BURST:
		case OPT_MAKESTEP:
			command = opt;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!sock || optind != argc || interval_ms <= 0 || timeout_ms <= 0) {
		usage(stderr);
		return 2;
	}
	if (json && !once) {
		fprintf(stderr, "chrony-observe: --json goes with --once\n");
		return 2;
	}

	if (handover_spec)
		return handover(sock, handover_spec, count, timeout_ms);

	rc = CBK_Open(sock, &c);
	if (rc < 0) {
		fprintf(stderr, "chrony-observe: cannot open a socket next to %s: %s\n", sock,
			strerror(-rc));
		return 1;
	}

	switch (command) {
	case OPT_RESET:
		CPR_MakeResetSources(&p);
		rc = run_command(c, &p, timeout_ms);
		break;
	case OPT_DFREQ:
		CPR_MakeDfreq(&p, value);
		rc = run_command(c, &p, timeout_ms);
		break;
	case OPT_DOFFSET:
		CPR_MakeDoffset(&p, value);
		rc = run_command(c, &p, timeout_ms);
		break;
	case OPT_BURST:
		CPR_MakeBurst(&p, 4, 8);
		rc = run_command(c, &p, timeout_ms);
		break;
	case OPT_MAKESTEP:
		CPR_MakeMakestep(&p);
		rc = run_command(c, &p, timeout_ms);
		break;
	default:
		rc = observe(c, interval_ms, count, seconds, once, json, header, keep_going,
			     timeout_ms);
		break;
	}

	CBK_Close(c);
	return rc;
}
