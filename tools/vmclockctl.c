/* SPDX-License-Identifier: BSD-2-Clause
 *
 * vmclockctl.c - inspect a vmclock device or page file.
 *
 *   vmclockctl [-d PATH] status [--json]    every field of the page, decoded
 *   vmclockctl [-d PATH] time [--json]      device time against CLOCK_REALTIME
 *   vmclockctl [-d PATH] watch [--json] [--interval-ms N]
 *                                           one line per disruption or change
 *
 * Exit status: 0 success, 1 the device is unusable (one line on stderr names
 * the cause), 2 usage error, 3 the page carries no time.
 *
 * Subcommands live in one table (commands[] below), each with its own option
 * parsing, so that later ones (daemon, metrics, waitsync) slot in beside
 * these.  Everything the page says is read through libvmclock; the few raw
 * bytes read here serve only to name what was wrong with a rejected page.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vmclock.h"

#define PROG "vmclockctl"

enum exit_status {
	EXIT_OK = 0,
	EXIT_UNUSABLE = 1,
	EXIT_USAGE = 2,
	EXIT_NO_TIME = 3,
};

#define NSEC_PER_SEC INT64_C(1000000000)
#define DEFAULT_WATCH_INTERVAL_MS 100

typedef unsigned __int128 u128;

/* ---- messages -------------------------------------------------------------- */

static void msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line on stderr, prefixed with the program's name. */
static void msg(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Raw little-endian fields of a page file, to name why it was rejected. */
static bool peek(const char *path, off_t offset, void *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool ok;

	if (fd < 0)
		return false;
	ok = pread(fd, buf, len, offset) == (ssize_t)len;
	close(fd);
	return ok;
}

/* The one line for a device that libvmclock refused (errno err). */
static void report_unusable(const char *path, int err)
{
	uint32_t u32;
	uint16_t u16;
	struct stat st;

	switch (err) {
	case ENOENT:
		msg("%s: no such file", path);
		break;
	case EACCES:
	case EPERM:
		msg("%s: permission denied", path);
		break;
	case ENODEV:
		msg("%s: not a vmclock device or page file", path);
		break;
	case EBADMSG:
		if (peek(path, offsetof(struct vmclock_abi, magic), &u32, sizeof(u32)))
			msg("%s: bad magic 0x%08" PRIx32, path, vmclock_le32(u32));
		else
			msg("%s: bad magic", path);
		break;
	case EMSGSIZE:
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size < VMCLOCK_ABI_SIZE)
			msg("%s: page too small (%jd bytes)", path, (intmax_t)st.st_size);
		else if (peek(path, offsetof(struct vmclock_abi, size), &u32, sizeof(u32)))
			msg("%s: page too small or size field wrong (size %" PRIu32 ")", path,
			    vmclock_le32(u32));
		else
			msg("%s: page too small", path);
		break;
	case EPROTO:
		if (peek(path, offsetof(struct vmclock_abi, version), &u16, sizeof(u16)))
			msg("%s: unknown version %u", path, (unsigned)vmclock_le16(u16));
		else
			msg("%s: unknown version", path);
		break;
	case ETIMEDOUT:
		msg("%s: page never stable (seq_count odd or changing)", path);
		break;
	case EOPNOTSUPP:
		msg("%s: the page's counter cannot be read on this CPU", path);
		break;
	case ERANGE:
		msg("%s: conversion parameters out of range", path);
		break;
	default:
		msg("%s: %s", path, strerror(err));
		break;
	}
}

/* ---- signals --------------------------------------------------------------- */

static volatile sig_atomic_t got_stop;

static void on_stop(int sig)
{
	(void)sig;
	got_stop = 1;
}

/* Block SIGINT/SIGTERM except inside ppoll() (mask returned in wait_mask). */
static void catch_stop_signals(sigset_t *wait_mask)
{
	struct sigaction sa;
	sigset_t block;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, wait_mask);
	sigdelset(wait_mask, SIGINT);
	sigdelset(wait_mask, SIGTERM);
}

/* ---- JSON output ----------------------------------------------------------- */

struct json {
	bool first;
};

static void json_begin(struct json *j)
{
	j->first = true;
	putchar('{');
}

static void json_end(struct json *j)
{
	(void)j;
	puts("}");
}

static void json_key(struct json *j, const char *key)
{
	printf("%s\"%s\":", j->first ? "" : ",", key);
	j->first = false;
}

static void json_u64(struct json *j, const char *key, uint64_t v)
{
	json_key(j, key);
	printf("%" PRIu64, v);
}

static void json_i64(struct json *j, const char *key, int64_t v)
{
	json_key(j, key);
	printf("%" PRId64, v);
}

/* A string we produced ourselves (names, digits): nothing to escape. */
static void json_str(struct json *j, const char *key, const char *v)
{
	json_key(j, key);
	printf("\"%s\"", v);
}

static void json_null(struct json *j, const char *key)
{
	json_key(j, key);
	fputs("null", stdout);
}

/* An enum as its name, or its number when outside the ABI. */
static void json_enum(struct json *j, const char *key, const char *name, unsigned v)
{
	if (name)
		json_str(j, key, name);
	else
		json_u64(j, key, v);
}

/* Flags as an array of names; bits outside the ABI as "bitN". */
static void json_flags(struct json *j, const char *key, uint64_t flags)
{
	bool first = true;

	json_key(j, key);
	putchar('[');
	for (unsigned bit = 0; bit < 64; bit++) {
		const char *name;

		if (!(flags & (UINT64_C(1) << bit)))
			continue;
		name = vmclock_flag_name(bit);
		if (name)
			printf("%s\"%s\"", first ? "" : ",", name);
		else
			printf("%s\"bit%u\"", first ? "" : ",", bit);
		first = false;
	}
	putchar(']');
}

/* ---- human output ---------------------------------------------------------- */

#define LABEL_WIDTH 21

static void field(const char *label, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One "Label : value" line, aligned like chronyc tracking. */
static void field(const char *label, const char *fmt, ...)
{
	va_list ap;

	printf("%-*s : ", LABEL_WIDTH, label);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static const char *name_or_number(const char *name, unsigned v, char *buf, size_t len)
{
	if (name)
		return name;
	snprintf(buf, len, "%u (unknown)", v);
	return buf;
}

/* Flag names separated by spaces into buf. */
static const char *flag_list(uint64_t flags, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (unsigned bit = 0; bit < 64 && used < len; bit++) {
		const char *name;
		int n;

		if (!(flags & (UINT64_C(1) << bit)))
			continue;
		name = vmclock_flag_name(bit);
		if (name)
			n = snprintf(buf + used, len - used, "%s%s", used ? " " : "", name);
		else
			n = snprintf(buf + used, len - used, "%sbit%u", used ? " " : "", bit);
		if (n < 0)
			break;
		used += (size_t)n;
	}
	return buf;
}

/* UTC seconds as an ISO 8601 date, or "" if out of range. */
static const char *iso_date(int64_t sec, char *buf, size_t len)
{
	struct tm tm;
	time_t t = (time_t)sec;

	buf[0] = '\0';
	if ((int64_t)t == sec && gmtime_r(&t, &tm))
		strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

/* 2^-64 fractions of a second to nanoseconds, truncated. */
static uint32_t frac_to_ns(uint64_t frac)
{
	return (uint32_t)(((u128)frac * (u128)NSEC_PER_SEC) >> 64);
}

/* A period field (units of 2^-(64+shift) s) in seconds, for display only. */
static long double period_seconds(uint64_t frac, unsigned shift)
{
	long double v = (long double)frac;

	for (unsigned i = 0; i < 64 + shift; i++)
		v /= 2;
	return v;
}

/* ---- opening --------------------------------------------------------------- */

static vmclock_t *open_or_report(const char *path)
{
	vmclock_t *vc = vmclock_open(path);

	if (!vc)
		report_unusable(path, errno);
	return vc;
}

/* ---- status ---------------------------------------------------------------- */

static void status_json(const struct vmclock_abi *p)
{
	struct json j;

	json_begin(&j);
	json_u64(&j, "magic", vmclock_le32(p->magic));
	json_u64(&j, "size", vmclock_le32(p->size));
	json_u64(&j, "version", vmclock_le16(p->version));
	json_enum(&j, "counter_id", vmclock_counter_name(p->counter_id), p->counter_id);
	json_enum(&j, "time_type", vmclock_time_type_name(p->time_type), p->time_type);
	json_u64(&j, "seq_count", vmclock_le32(p->seq_count));
	json_u64(&j, "disruption_marker", vmclock_le64(p->disruption_marker));
	json_flags(&j, "flags", vmclock_le64(p->flags));
	json_enum(&j, "clock_status", vmclock_status_name(p->clock_status), p->clock_status);
	json_enum(&j, "leap_second_smearing_hint",
		  vmclock_smearing_name(p->leap_second_smearing_hint),
		  p->leap_second_smearing_hint);
	json_i64(&j, "tai_offset_sec", (int16_t)vmclock_le16((uint16_t)p->tai_offset_sec));
	json_enum(&j, "leap_indicator", vmclock_leap_name(p->leap_indicator), p->leap_indicator);
	json_u64(&j, "counter_period_shift", p->counter_period_shift);
	json_u64(&j, "counter_value", vmclock_le64(p->counter_value));
	json_u64(&j, "counter_period_frac_sec", vmclock_le64(p->counter_period_frac_sec));
	json_u64(&j, "counter_period_esterror_rate_frac_sec",
		 vmclock_le64(p->counter_period_esterror_rate_frac_sec));
	json_u64(&j, "counter_period_maxerror_rate_frac_sec",
		 vmclock_le64(p->counter_period_maxerror_rate_frac_sec));
	json_u64(&j, "time_sec", vmclock_le64(p->time_sec));
	json_u64(&j, "time_frac_sec", vmclock_le64(p->time_frac_sec));
	json_u64(&j, "time_esterror_nanosec", vmclock_le64(p->time_esterror_nanosec));
	json_u64(&j, "time_maxerror_nanosec", vmclock_le64(p->time_maxerror_nanosec));
	json_u64(&j, "vm_generation_counter", vmclock_le64(p->vm_generation_counter));
	json_end(&j);
}

/* A period error rate as a fraction of the period, in ppb. */
static void rate_field(const char *label, uint64_t rate, uint64_t period, unsigned shift, bool valid)
{
	if (!valid) {
		field(label, "%" PRIu64 " (not valid)", rate);
		return;
	}
	if (period)
		field(label, "%" PRIu64 " (%.3Lf ppb)", rate,
		      (long double)rate / (long double)period * 1e9L);
	else
		field(label, "%" PRIu64, rate);
}

static void status_human(const struct vmclock_abi *p)
{
	uint64_t flags = vmclock_le64(p->flags);
	uint64_t period = vmclock_le64(p->counter_period_frac_sec);
	unsigned shift = p->counter_period_shift;
	uint64_t tsec = vmclock_le64(p->time_sec);
	char buf[512], date[64];

	field("Magic", "0x%08" PRIx32 "%s", vmclock_le32(p->magic),
	      vmclock_le32(p->magic) == VMCLOCK_MAGIC ? " (VCLK)" : "");
	field("Size", "%" PRIu32 " bytes", vmclock_le32(p->size));
	field("Version", "%u", (unsigned)vmclock_le16(p->version));
	field("Counter", "%s", name_or_number(vmclock_counter_name(p->counter_id),
					      p->counter_id, buf, sizeof(buf)));
	field("Time type", "%s", name_or_number(vmclock_time_type_name(p->time_type),
						p->time_type, buf, sizeof(buf)));
	field("Seq count", "%" PRIu32, vmclock_le32(p->seq_count));
	field("Disruption marker", "%" PRIu64, vmclock_le64(p->disruption_marker));
	field("Flags", "0x%" PRIx64 " (%s)", flags, flag_list(flags, buf, sizeof(buf)));
	field("Clock status", "%s", name_or_number(vmclock_status_name(p->clock_status),
						   p->clock_status, buf, sizeof(buf)));
	field("Leap smearing hint", "%s",
	      name_or_number(vmclock_smearing_name(p->leap_second_smearing_hint),
			     p->leap_second_smearing_hint, buf, sizeof(buf)));
	field("TAI offset", "%d seconds (UTC - TAI)%s",
	      (int)(int16_t)vmclock_le16((uint16_t)p->tai_offset_sec),
	      flags & VMCLOCK_FLAG_TAI_OFFSET_VALID ? "" : " (not valid)");
	field("Leap indicator", "%s", name_or_number(vmclock_leap_name(p->leap_indicator),
						     p->leap_indicator, buf, sizeof(buf)));
	field("Counter period shift", "%u", shift);
	field("Counter value", "%" PRIu64, vmclock_le64(p->counter_value));
	if (period && shift <= 63) {
		long double ps = period_seconds(period, shift);
		field("Counter period", "%" PRIu64 " (%.6Lf ns, %.6Lf MHz)", period, ps * 1e9L,
		      1e-6L / ps);
	} else {
		field("Counter period", "%" PRIu64, period);
	}
	rate_field("Period est. error", vmclock_le64(p->counter_period_esterror_rate_frac_sec),
		   period, shift, flags & VMCLOCK_FLAG_PERIOD_ESTERROR_VALID);
	rate_field("Period max. error", vmclock_le64(p->counter_period_maxerror_rate_frac_sec),
		   period, shift, flags & VMCLOCK_FLAG_PERIOD_MAXERROR_VALID);
	field("Time", "%" PRIu64 ".%09" PRIu32 " (frac 0x%016" PRIx64 ")%s%s", tsec,
	      frac_to_ns(vmclock_le64(p->time_frac_sec)), vmclock_le64(p->time_frac_sec),
	      tsec <= INT64_MAX && *iso_date((int64_t)tsec, date, sizeof(date)) ? " " : "",
	      tsec <= INT64_MAX ? date : "");
	field("Time est. error", "%" PRIu64 " ns%s", vmclock_le64(p->time_esterror_nanosec),
	      flags & VMCLOCK_FLAG_TIME_ESTERROR_VALID ? "" : " (not valid)");
	field("Time max. error", "%" PRIu64 " ns%s", vmclock_le64(p->time_maxerror_nanosec),
	      flags & VMCLOCK_FLAG_TIME_MAXERROR_VALID ? "" : " (not valid)");
	field("VM generation counter", "%" PRIu64 "%s", vmclock_le64(p->vm_generation_counter),
	      flags & VMCLOCK_FLAG_VM_GEN_COUNTER_PRESENT ? "" : " (not present)");
}

/* ---- time ------------------------------------------------------------------ */

/* Why a page carries no (UTC) time, for the exit-3 line. */
static const char *no_time_reason(const struct vmclock_abi *p)
{
	if (p->counter_id == VMCLOCK_COUNTER_INVALID)
		return "counter invalid";
	if (p->clock_status == VMCLOCK_STATUS_UNRELIABLE)
		return "clock status unreliable";
	if (p->time_type != VMCLOCK_TIME_UTC)
		return "no valid UTC offset";
	return "no time";
}

static void ns_or_null(struct json *j, const char *key, uint64_t v)
{
	if (v == VMCLOCK_ERROR_UNKNOWN)
		json_null(j, key);
	else
		json_u64(j, key, v);
}

static void print_time(const struct vmclock_time *t, const struct vmclock_offset *o, bool json)
{
	char buf[64], date[64];
	const char *scale = vmclock_time_type_name(t->time_type);

	if (json) {
		struct json j;

		json_begin(&j);
		json_i64(&j, "sec", t->sec);
		json_u64(&j, "nsec", t->nsec);
		json_enum(&j, "timescale", scale, t->time_type);
		if (t->utc_valid) {
			json_i64(&j, "utc_sec", t->utc_sec);
			json_u64(&j, "utc_nsec", t->utc_nsec);
		} else {
			json_null(&j, "utc_sec");
			json_null(&j, "utc_nsec");
		}
		if (o)
			json_i64(&j, "offset_ns", o->offset_ns);
		else
			json_null(&j, "offset_ns");
		ns_or_null(&j, "esterror_ns", t->esterror_ns);
		ns_or_null(&j, "maxerror_ns", t->maxerror_ns);
		json_enum(&j, "clock_status", vmclock_status_name(t->clock_status),
			  t->clock_status);
		json_u64(&j, "disruption_marker", t->disruption_marker);
		json_end(&j);
		return;
	}

	field("Device time", "%" PRId64 ".%09" PRIu32 " %s", t->sec, t->nsec,
	      name_or_number(scale, t->time_type, buf, sizeof(buf)));
	if (t->utc_valid)
		field("UTC", "%" PRId64 ".%09" PRIu32 " %s", t->utc_sec, t->utc_nsec,
		      iso_date(t->utc_sec, date, sizeof(date)));
	else
		field("UTC", "unknown");
	if (o) {
		uint64_t mag = o->offset_ns < 0 ? 0 - (uint64_t)o->offset_ns : (uint64_t)o->offset_ns;
		field("Offset", "%c%" PRIu64 ".%09" PRIu64 " seconds (device - system, +/- %"
		      PRIu64 " ns)", o->offset_ns < 0 ? '-' : '+', mag / NSEC_PER_SEC,
		      mag % NSEC_PER_SEC, o->uncertainty_ns);
	} else {
		field("Offset", "unknown");
	}
	if (t->esterror_ns == VMCLOCK_ERROR_UNKNOWN)
		field("Estimated error", "unknown");
	else
		field("Estimated error", "%" PRIu64 " ns", t->esterror_ns);
	if (t->maxerror_ns == VMCLOCK_ERROR_UNKNOWN)
		field("Maximum error", "unknown");
	else
		field("Maximum error", "%" PRIu64 " ns", t->maxerror_ns);
	field("Clock status", "%s", name_or_number(vmclock_status_name(t->clock_status),
						   t->clock_status, buf, sizeof(buf)));
	field("Disruption marker", "%" PRIu64, t->disruption_marker);
}

/* ---- watch ----------------------------------------------------------------- */

/* The part of the page whose changes watch reports. */
struct watched {
	uint64_t disruption_marker;
	uint64_t vm_generation_counter;
	uint8_t clock_status;
	uint64_t flags;
};

static struct watched watched_of(const struct vmclock_abi *p)
{
	return (struct watched){
		.disruption_marker = vmclock_le64(p->disruption_marker),
		.vm_generation_counter = vmclock_le64(p->vm_generation_counter),
		.clock_status = p->clock_status,
		.flags = vmclock_le64(p->flags),
	};
}

static bool same_watched(const struct watched *a, const struct watched *b)
{
	return a->disruption_marker == b->disruption_marker &&
	       a->vm_generation_counter == b->vm_generation_counter &&
	       a->clock_status == b->clock_status && a->flags == b->flags;
}

static void print_watched(const struct watched *w, const struct watched *prev, bool json)
{
	struct timespec now;
	char buf[512], sbuf[32];
	const char *event = prev ? "change" : "initial";

	clock_gettime(CLOCK_REALTIME, &now);
	if (json) {
		struct json j;
		bool first = true;

		json_begin(&j);
		json_key(&j, "time");
		printf("%jd.%09ld", (intmax_t)now.tv_sec, now.tv_nsec);
		json_str(&j, "event", event);
		json_u64(&j, "disruption_marker", w->disruption_marker);
		json_u64(&j, "vm_generation_counter", w->vm_generation_counter);
		json_enum(&j, "clock_status", vmclock_status_name(w->clock_status),
			  w->clock_status);
		json_flags(&j, "flags", w->flags);
		json_key(&j, "changed");
		putchar('[');
		if (prev) {
			const char *names[4];
			unsigned n = 0;

			if (w->disruption_marker != prev->disruption_marker)
				names[n++] = "disruption_marker";
			if (w->vm_generation_counter != prev->vm_generation_counter)
				names[n++] = "vm_generation_counter";
			if (w->clock_status != prev->clock_status)
				names[n++] = "clock_status";
			if (w->flags != prev->flags)
				names[n++] = "flags";
			for (unsigned i = 0; i < n; i++) {
				printf("%s\"%s\"", first ? "" : ",", names[i]);
				first = false;
			}
		}
		putchar(']');
		json_end(&j);
	} else {
		printf("%jd.%09ld %s marker=%" PRIu64 " gen=%" PRIu64 " status=%s flags=%s\n",
		       (intmax_t)now.tv_sec, now.tv_nsec, event, w->disruption_marker,
		       w->vm_generation_counter,
		       name_or_number(vmclock_status_name(w->clock_status), w->clock_status,
				      sbuf, sizeof(sbuf)),
		       w->flags ? flag_list(w->flags, buf, sizeof(buf)) : "none");
	}
	fflush(stdout);
}

/* True if PATH now names another file than the one open (a page file
 * replaced by rename, e.g. a restarted vmclock-sim). */
static bool replaced(const vmclock_t *vc, const char *path)
{
	struct stat a, b;

	if (vmclock_is_device(vc) || fstat(vmclock_fd(vc), &a) < 0 || stat(path, &b) < 0)
		return false;
	return a.st_dev != b.st_dev || a.st_ino != b.st_ino;
}

/* Re-arm a device's notification: read() a copy of the page. */
static void rearm(const vmclock_t *vc)
{
	char buf[4096];

	(void)lseek(vmclock_fd(vc), 0, SEEK_SET);
	if (read(vmclock_fd(vc), buf, sizeof(buf)) < 0 && errno != EINTR)
		msg("read: %s", strerror(errno));
}

static int watch_loop(const char *path, bool json, int interval_ms)
{
	vmclock_t *vc = open_or_report(path);
	struct vmclock_abi page;
	struct watched cur, prev;
	sigset_t wait_mask;
	bool hup = false;
	int rc = EXIT_OK;

	if (!vc)
		return EXIT_UNUSABLE;
	catch_stop_signals(&wait_mask);
	if (vmclock_snapshot(vc, &page) < 0) {
		report_unusable(path, errno);
		vmclock_close(vc);
		return EXIT_UNUSABLE;
	}
	prev = watched_of(&page);
	print_watched(&prev, NULL, json);

	while (!got_stop) {
		bool notify = vmclock_is_device(vc) && !hup &&
			      (prev.flags & VMCLOCK_FLAG_NOTIFICATION_PRESENT);
		struct pollfd pfd = { .fd = vmclock_fd(vc), .events = POLLIN };
		struct timespec timeout = {
			.tv_sec = interval_ms / 1000,
			.tv_nsec = (long)(interval_ms % 1000) * 1000000,
		};
		int n;

		if (notify) {
			n = ppoll(&pfd, 1, NULL, &wait_mask);
			if (n > 0 && (pfd.revents & (POLLHUP | POLLERR | POLLNVAL))) {
				hup = true; /* no notification after all: poll the page */
				continue;
			}
			if (n > 0)
				rearm(vc);
		} else {
			n = ppoll(NULL, 0, &timeout, &wait_mask);
		}
		if (got_stop)
			break;
		if (n < 0 && errno != EINTR) {
			msg("%s: poll: %s", path, strerror(errno));
			rc = EXIT_UNUSABLE;
			break;
		}
		if (replaced(vc, path)) {
			vmclock_t *fresh = vmclock_open(path);

			if (fresh) {
				vmclock_close(vc);
				vc = fresh;
			}
		}
		if (vmclock_snapshot(vc, &page) < 0) {
			report_unusable(path, errno);
			rc = EXIT_UNUSABLE;
			break;
		}
		cur = watched_of(&page);
		if (!same_watched(&cur, &prev)) {
			print_watched(&cur, &prev, json);
			prev = cur;
		}
	}
	vmclock_close(vc);
	return rc;
}

/* ---- subcommands ----------------------------------------------------------- */

struct command {
	const char *name;
	const char *args;      /* for the usage text */
	const char *summary;
	int (*run)(const char *path, int argc, char **argv);
};

static const struct command *current;

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (current)
		fprintf(stderr, "\nusage: " PROG " [-d PATH] %s %s\n", current->name, current->args);
	else
		fprintf(stderr, "\n(try " PROG " --help)\n");
	return EXIT_USAGE;
}

enum { OPT_JSON = 256, OPT_INTERVAL };

/* Options shared by the subcommands; each accepts the ones it names. */
struct cmd_opts {
	const char *path;
	bool json;
	int interval_ms;
};

/* Parse a subcommand's options; -d may also follow the subcommand.  Returns
 * -1 after a usage message. */
static int parse_cmd_opts(int argc, char **argv, bool want_interval, struct cmd_opts *o)
{
	static const struct option with_interval[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "interval-ms", required_argument, NULL, OPT_INTERVAL },
		{ "device", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct option plain[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "device", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	const struct option *longopts = want_interval ? with_interval : plain;
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":d:", longopts, NULL)) != -1) {
		char *end;
		long v;

		switch (c) {
		case 'd':
			o->path = optarg;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_INTERVAL:
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || v < 1 || v > 3600000) {
				usage_error("--interval-ms: expected 1 to 3600000, got %s", optarg);
				return -1;
			}
			o->interval_ms = (int)v;
			break;
		case ':':
			usage_error("option %s needs an argument", argv[optind - 1]);
			return -1;
		default:
			usage_error("unknown option %s", argv[optind - 1]);
			return -1;
		}
	}
	if (optind < argc) {
		usage_error("unexpected argument %s", argv[optind]);
		return -1;
	}
	return 0;
}

static int cmd_status(const char *path, int argc, char **argv)
{
	struct cmd_opts o = { .path = path };
	struct vmclock_abi page;
	vmclock_t *vc;

	if (parse_cmd_opts(argc, argv, false, &o) < 0)
		return EXIT_USAGE;
	vc = open_or_report(o.path);
	if (!vc)
		return EXIT_UNUSABLE;
	if (vmclock_snapshot(vc, &page) < 0) {
		report_unusable(o.path, errno);
		vmclock_close(vc);
		return EXIT_UNUSABLE;
	}
	vmclock_close(vc);
	if (o.json)
		status_json(&page);
	else
		status_human(&page);
	return EXIT_OK;
}

static int cmd_time(const char *path, int argc, char **argv)
{
	struct cmd_opts o = { .path = path };
	struct vmclock_offset off;
	struct vmclock_time t;
	struct vmclock_abi page;
	vmclock_t *vc;
	int rc = EXIT_OK;

	if (parse_cmd_opts(argc, argv, false, &o) < 0)
		return EXIT_USAGE;
	vc = open_or_report(o.path);
	if (!vc)
		return EXIT_UNUSABLE;
	if (vmclock_offset(vc, &off) == 0) {
		print_time(&off.time, &off, o.json);
	} else if (errno != ENODATA) {
		report_unusable(o.path, errno);
		rc = EXIT_UNUSABLE;
	} else if (vmclock_gettime(vc, &t) == 0) {
		/* Time, but no UTC (TAI without a valid offset, or monotonic). */
		print_time(&t, NULL, o.json);
	} else if (errno == ENODATA && vmclock_snapshot(vc, &page) == 0) {
		msg("%s: the page carries no time (%s)", o.path, no_time_reason(&page));
		rc = EXIT_NO_TIME;
	} else {
		report_unusable(o.path, errno);
		rc = EXIT_UNUSABLE;
	}
	vmclock_close(vc);
	return rc;
}

static int cmd_watch(const char *path, int argc, char **argv)
{
	struct cmd_opts o = { .path = path, .interval_ms = DEFAULT_WATCH_INTERVAL_MS };

	if (parse_cmd_opts(argc, argv, true, &o) < 0)
		return EXIT_USAGE;
	return watch_loop(o.path, o.json, o.interval_ms);
}

static const struct command commands[] = {
	{ "status", "[--json]", "decode every field of the page", cmd_status },
	{ "time", "[--json]", "device time and its offset from CLOCK_REALTIME", cmd_time },
	{ "watch", "[--json] [--interval-ms N]",
	  "print a line whenever the marker, generation, status or flags change", cmd_watch },
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
	fprintf(f, "usage: " PROG " [-d PATH] COMMAND [OPTIONS]\n\n"
		   "  -d, --device PATH  vmclock device or page file (default %s)\n\n"
		   "commands:\n", VMCLOCK_DEFAULT_DEVICE);
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  %-7s %-28s %s\n", commands[i].name, commands[i].args,
			commands[i].summary);
	fputs("\nexit status: 0 ok, 1 device unusable, 2 usage, 3 page carries no time\n", f);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = VMCLOCK_DEFAULT_DEVICE;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:d:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			path = optarg;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case ':':
			return usage_error("option %s needs an argument", argv[optind - 1]);
		default:
			return usage_error("unknown option %s", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return usage_error("no command given");
	for (size_t i = 0; i < N_COMMANDS; i++) {
		if (strcmp(argv[optind], commands[i].name) == 0) {
			current = &commands[i];
			/* The subcommand sees its own name as argv[0]. */
			return commands[i].run(path, argc - optind, argv + optind);
		}
	}
	return usage_error("unknown command %s", argv[optind]);
}
