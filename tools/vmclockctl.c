/* SPDX-License-Identifier: BSD-2-Clause
 *
 * vmclockctl.c - inspect a vmclock device or page file, and vmclockd's state.
 *
 *   vmclockctl [-d PATH] status [--json]    every field of the page, decoded
 *   vmclockctl [-d PATH] time [--json]      device time against CLOCK_REALTIME
 *   vmclockctl [-d PATH] watch [--json] [--interval-ms N]
 *                                           one line per disruption or change
 *   vmclockctl [-d PATH] [-s STATE] waitsync [--timeout S] [--max-error-ns N]
 *                                           wait for a SYNCHRONIZED verdict
 *   vmclockctl [-s STATE] daemon [--json]   vmclockd's published state, decoded
 *   vmclockctl [-d PATH] [-s STATE] metrics Prometheus text exposition
 *
 * Exit status: 0 success, 1 the device or state is unusable (one line on
 * stderr names the cause; for waitsync: not synchronized in time), 2 usage
 * error, 3 the page carries no time.
 *
 * Subcommands live in one table (commands[] below); the options a subcommand
 * accepts are named in its row.  Everything the page and the state say is
 * read through libvmclock; the few raw bytes read here serve only to name
 * what was wrong with a rejected page or published state.
 */
#include "autoconfig.h"

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
#include "vmclockd-state.h"
#include "../common/metrics.h"
#include "../common/timeutil.h"

#define PROG "vmclockctl"

enum exit_status {
	EXIT_OK = 0,
	EXIT_UNUSABLE = 1,
	EXIT_USAGE = 2,
	EXIT_NO_TIME = 3,
};

#define DEFAULT_WATCH_INTERVAL_MS 100

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
	default:
		/* The library's words for the rest (never stable, not a page,
		 * counter, range), as vmclockd logs them. */
		msg("%s: %s", path, vmclock_strerror(err));
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

/* Seconds since the epoch of a timescale as an ISO 8601 date and time
 * followed by zone ("Z" for UTC, " TAI" for TAI: TAI seconds read as a date
 * are not a UTC date), or "" if out of range. */
static const char *iso_date(int64_t sec, const char *zone, char *buf, size_t len)
{
	struct tm tm;
	time_t t = (time_t)sec;
	char date[32];

	buf[0] = '\0';
	if ((int64_t)t == sec && gmtime_r(&t, &tm) && strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm))
		snprintf(buf, len, "%s%s", date, zone);
	return buf;
}

/* The page's time_sec as a date in its own timescale; "" for a timescale
 * without a calendar (monotonic, unknown). */
static const char *page_date(uint8_t time_type, uint64_t sec, char *buf, size_t len)
{
	buf[0] = '\0';
	if (sec > INT64_MAX)
		return buf;
	if (time_type == VMCLOCK_TIME_UTC)
		return iso_date((int64_t)sec, "Z", buf, len);
	if (time_type == VMCLOCK_TIME_TAI)
		return iso_date((int64_t)sec, " TAI", buf, len);
	return buf;
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
	page_date(p->time_type, tsec, date, sizeof(date));
	field("Time", "%" PRIu64 ".%09" PRIu32 " (frac 0x%016" PRIx64 ")%s%s", tsec,
	      TIM_FracToNs(vmclock_le64(p->time_frac_sec)), vmclock_le64(p->time_frac_sec),
	      *date ? " " : "", date);
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

/* o: the offset, if the page has UTC; phc: vmclock_phc_index(). */
static void print_time(const struct vmclock_time *t, const struct vmclock_offset *o, int phc,
		       bool json)
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
		if (o) {
			json_i64(&j, "offset_ns", o->offset_ns);
			json_u64(&j, "offset_uncertainty_ns", o->uncertainty_ns);
		} else {
			json_null(&j, "offset_ns");
			json_null(&j, "offset_uncertainty_ns");
		}
		if (phc >= 0)
			json_i64(&j, "phc_index", phc);
		else
			json_null(&j, "phc_index");
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
		      iso_date(t->utc_sec, "Z", date, sizeof(date)));
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
	if (phc >= 0)
		field("Cross-timestamps", "/dev/ptp%d (PTP_SYS_OFFSET_PRECISE)", phc);
	else
		field("Cross-timestamps", "none (brackets of counter reads)");
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

/* A stalled page costs ~100 ms of spinning per read (the driver's and ours):
 * while it lasts, watch tries once a second. */
#define STALL_RETRY_MS 1000

/* Whether watch can sleep until the device's notification: says why not. */
static bool can_wait(const vmclock_t *vc, const char *path, int interval_ms)
{
	vmclock_notify_t r;

	if (!vmclock_is_device(vc))
		return false; /* a page file: polled, nothing to say */
	r = vmclock_notify_rearm(vc);
	if (r == VMCLOCK_NOTIFY_CHANGED || r == VMCLOCK_NOTIFY_IDLE)
		return true;
	msg("%s: %s; reading the page every %d ms", path, vmclock_notify_describe(r),
	    interval_ms);
	return false;
}

static int watch_loop(const char *path, bool json, int interval_ms)
{
	vmclock_t *vc = open_or_report(path);
	struct vmclock_abi page;
	struct watched cur, prev;
	sigset_t wait_mask;
	const struct timespec interval = TIM_MsToTimespec((unsigned)interval_ms);
	const struct timespec stall_pause = { STALL_RETRY_MS / 1000, 0 };
	bool notify, stalled = false;
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
	notify = can_wait(vc, path, interval_ms);

	while (!got_stop) {
		struct pollfd pfd = { .fd = vmclock_fd(vc), .events = POLLIN };
		int n;

		if (notify) {
			n = ppoll(&pfd, 1, NULL, &wait_mask);
			if (n > 0) {
				vmclock_notify_t r = vmclock_notify_rearm(vc);

				if (r == VMCLOCK_NOTIFY_IDLE)
					continue;
				if (r == VMCLOCK_NOTIFY_BUSY) {
					/* The read spun ~100 ms in the kernel:
					 * pause, never loop on it. */
					if (!stalled)
						msg("%s: %s; retrying every %d ms", path,
						    vmclock_notify_describe(r), STALL_RETRY_MS);
					stalled = true;
					ppoll(NULL, 0, &stall_pause, &wait_mask);
					continue;
				}
				if (r != VMCLOCK_NOTIFY_CHANGED) {
					msg("%s: %s; reading the page every %d ms", path,
					    vmclock_notify_describe(r), interval_ms);
					notify = false;
				}
			}
		} else {
			n = ppoll(NULL, 0, stalled ? &stall_pause : &interval, &wait_mask);
		}
		if (got_stop)
			break;
		if (n < 0 && errno != EINTR) {
			msg("%s: poll: %s", path, strerror(errno));
			rc = EXIT_UNUSABLE;
			break;
		}
		if (vmclock_needs_reopen(vc)) {
			vmclock_t *fresh = vmclock_open(path);

			if (fresh) {
				vmclock_close(vc);
				vc = fresh;
			}
		}
		if (vmclock_snapshot(vc, &page) < 0) {
			if (errno == ETIMEDOUT) {
				/* A host stalled mid-update (each try spun
				 * ~100 ms): wait it out. */
				if (!stalled)
					msg("%s: %s; retrying every %d ms", path,
					    vmclock_strerror(errno), STALL_RETRY_MS);
				stalled = true;
				if (notify)
					ppoll(NULL, 0, &stall_pause, &wait_mask);
				continue;
			}
			report_unusable(path, errno);
			rc = EXIT_UNUSABLE;
			break;
		}
		if (stalled)
			msg("%s: the page is stable again", path);
		stalled = false;
		cur = watched_of(&page);
		if (!same_watched(&cur, &prev)) {
			print_watched(&cur, &prev, json);
			prev = cur;
		}
	}
	vmclock_close(vc);
	return rc;
}

/* ---- daemon state ---------------------------------------------------------- */

/* The one line for a published state that cannot be read (errno err). */
static void report_state(const char *path, int err)
{
	struct stat st;
	uint32_t magic;
	uint16_t version;

	if (err == ENOENT && stat(path, &st) < 0)
		err = errno;
	else if (err == ENOENT && !S_ISREG(st.st_mode))
		err = ENODEV;
	else if (err == ENOENT && (size_t)st.st_size < sizeof(struct vmclockd_state))
		err = EMSGSIZE;
	else if (err == ENOENT && access(path, R_OK) < 0)
		err = errno;
	switch (err) {
	case ENOENT:
		msg("%s: no such file (is vmclockd running?)", path);
		break;
	case EACCES:
	case EPERM:
		msg("%s: permission denied", path);
		break;
	case ENODEV:
		msg("%s: not a regular file", path);
		break;
	case EMSGSIZE:
		msg("%s: not a vmclockd state file (%jd bytes)", path, (intmax_t)st.st_size);
		break;
	case EBADMSG:
		if (peek(path, offsetof(struct vmclockd_state, magic), &magic, sizeof(magic)) &&
		    vmclock_le32(magic) != VMCLOCKD_STATE_MAGIC)
			msg("%s: bad magic 0x%08" PRIx32, path, vmclock_le32(magic));
		else if (peek(path, offsetof(struct vmclockd_state, version), &version,
			      sizeof(version)))
			msg("%s: unknown state version %u", path, (unsigned)vmclock_le16(version));
		else
			msg("%s: not a vmclockd state file", path);
		break;
	case ETIMEDOUT:
		msg("%s: state never stable (seq_count odd or changing)", path);
		break;
	default:
		msg("%s: %s", path, strerror(err));
		break;
	}
}

/* Why a verdict is what it is, in a few words ("" when it explains itself). */
static const char *verdict_cause(const MTR_View *v, const char *state_path,
				 const char *device, char *buf, size_t len)
{
	buf[0] = '\0';
	if (v->ts.verdict == VMCLOCK_VERDICT_DISRUPTED) {
		if (v->state_err == 0 && v->have_page &&
		    vmclock_le64(v->page.disruption_marker) != v->st.disruption_marker)
			snprintf(buf, len, "marker %" PRIu64 " not yet handled by vmclockd",
				 vmclock_le64(v->page.disruption_marker));
		else
			snprintf(buf, len, "chronyd not yet resynchronised");
	} else if (v->ts.verdict != VMCLOCK_VERDICT_UNKNOWN) {
		return buf;
	} else if (v->state_err == ENOENT) {
		snprintf(buf, len, "no vmclockd state in %s", state_path);
	} else if (v->state_err) {
		snprintf(buf, len, "%s: %s", state_path, strerror(v->state_err));
	} else if (!v->fresh) {
		snprintf(buf, len, "vmclockd not running (heartbeat %.1f s old)",
			 (double)v->heartbeat_age_ns * 1e-9);
	} else if (!v->have_page) {
		snprintf(buf, len, "no usable vmclock device %s", device);
	} else if (v->st.sync_state == VMCLOCKD_SYNC_UNKNOWN) {
		snprintf(buf, len, "vmclockd cannot reach chronyd");
	}
	return buf;
}

static void json_bool(struct json *j, const char *key, bool v)
{
	json_key(j, key);
	fputs(v ? "true" : "false", stdout);
}

static void daemon_json(const MTR_View *v)
{
	const struct vmclockd_state *s = &v->st;
	struct json j;

	json_begin(&j);
	json_u64(&j, "magic", s->magic);
	json_u64(&j, "version", s->version);
	json_u64(&j, "size", s->size);
	json_u64(&j, "seq_count", s->seq_count);
	json_enum(&j, "sync_state", vmclockd_sync_state_name(s->sync_state), s->sync_state);
	json_enum(&j, "withhold_reason", vmclockd_reason_name(s->withhold_reason), s->withhold_reason);
	json_u64(&j, "heartbeat_timeout_ms", s->heartbeat_timeout_ms);
	json_u64(&j, "heartbeat_realtime_ns", s->heartbeat_realtime_ns);
	json_u64(&j, "heartbeat_monotonic_ns", s->heartbeat_monotonic_ns);
	json_i64(&j, "heartbeat_age_ns", v->heartbeat_age_ns);
	json_bool(&j, "heartbeat_fresh", v->fresh);
	json_u64(&j, "disruption_marker", s->disruption_marker);
	json_u64(&j, "vm_generation_counter", s->vm_generation_counter);
	/* VMCLOCKD_BOUND_UNKNOWN (all ones) is no bound: null, as bound_ns. */
	ns_or_null(&j, "error_bound_ns", s->error_bound_ns);
	json_u64(&j, "error_bound_realtime_ns", s->error_bound_realtime_ns);
	if (s->drift_ppb == VMCLOCKD_DRIFT_UNKNOWN)
		json_null(&j, "drift_ppb");
	else
		json_u64(&j, "drift_ppb", s->drift_ppb);
	json_i64(&j, "last_offset_ns", s->last_offset_ns);
	if (s->last_disruption_realtime_ns)
		json_u64(&j, "last_disruption_realtime_ns", s->last_disruption_realtime_ns);
	else
		json_null(&j, "last_disruption_realtime_ns");
	json_u64(&j, "disruptions", s->disruptions);
	json_u64(&j, "samples_fed", s->samples_fed);
	json_key(&j, "withheld");
	putchar('{');
	for (int i = MTR_FIRST_WITHHOLD_REASON; i < VMCLOCKD_STATE_REASONS; i++)
		printf("%s\"%s\":%" PRIu64, i == MTR_FIRST_WITHHOLD_REASON ? "" : ",",
		       vmclockd_reason_name(i), s->withheld[i]);
	putchar('}');
	/* What an application calling vmclock_timestamp() now is told. */
	json_str(&j, "verdict", vmclock_verdict_name(v->ts.verdict));
	ns_or_null(&j, "bound_ns", v->ts.bound_ns);
	if (v->have_page)
		json_u64(&j, "device_disruption_marker", vmclock_le64(v->page.disruption_marker));
	else
		json_null(&j, "device_disruption_marker");
	json_end(&j);
}

/* A realtime in ns as seconds and an ISO date, or "none" for 0. */
static const char *realtime_text(uint64_t ns, char *buf, size_t len)
{
	char date[64];

	if (!ns)
		return "none";
	snprintf(buf, len, "%" PRIu64 ".%09" PRIu64 " %s", ns / NSEC_PER_SEC, ns % NSEC_PER_SEC,
		 iso_date((int64_t)(ns / NSEC_PER_SEC), "Z", date, sizeof(date)));
	return buf;
}

static void daemon_human(const MTR_View *v, const char *state_path, const char *device)
{
	const struct vmclockd_state *s = &v->st;
	uint64_t now = TIM_TimespecToNs(&v->ts.time);
	char buf[256], cause[256];
	uint64_t total, mag = s->last_offset_ns < 0 ? 0 - (uint64_t)s->last_offset_ns
					     : (uint64_t)s->last_offset_ns;

	field("State file", "%s (version %u, %u bytes, seq %" PRIu32 ")", state_path,
	      (unsigned)s->version, (unsigned)s->size, s->seq_count);
	verdict_cause(v, state_path, device, cause, sizeof(cause));
	if (v->ts.bound_ns != VMCLOCK_ERROR_UNKNOWN)
		field("Verdict", "%s (+/- %" PRIu64 " ns)", vmclock_verdict_name(v->ts.verdict),
		      v->ts.bound_ns);
	else
		field("Verdict", "%s%s%s%s", vmclock_verdict_name(v->ts.verdict),
		      *cause ? " (" : "", cause, *cause ? ")" : "");
	field("Sync state", "%s", name_or_number(vmclockd_sync_state_name(s->sync_state), s->sync_state,
						 buf, sizeof(buf)));
	field("Heartbeat", "%.3f s ago (timeout %.3f s): %s", (double)v->heartbeat_age_ns * 1e-9,
	      s->heartbeat_timeout_ms * 1e-3, v->fresh ? "fresh" : "stale");
	field("Heartbeat time", "%s", realtime_text(s->heartbeat_realtime_ns, buf, sizeof(buf)));
	field("Heartbeat monotonic", "%" PRIu64 " ns", s->heartbeat_monotonic_ns);
	if (v->have_page)
		field("Disruption marker", "%" PRIu64 " (device: %" PRIu64 ")", s->disruption_marker,
		      vmclock_le64(v->page.disruption_marker));
	else
		field("Disruption marker", "%" PRIu64 " (device: unusable)", s->disruption_marker);
	field("VM generation counter", "%" PRIu64, s->vm_generation_counter);
	if (s->error_bound_ns == VMCLOCKD_BOUND_UNKNOWN && s->error_bound_realtime_ns)
		field("Error bound", "unknown, since %.3f s ago",
		      (double)(int64_t)(now - s->error_bound_realtime_ns) * 1e-9);
	else if (s->error_bound_ns == VMCLOCKD_BOUND_UNKNOWN)
		field("Error bound", "unknown");
	else if (s->drift_ppb == VMCLOCKD_DRIFT_UNKNOWN)
		field("Error bound", "%" PRIu64 " ns, read %.3f s ago, grows at an unknown rate",
		      s->error_bound_ns, (double)(int64_t)(now - s->error_bound_realtime_ns) * 1e-9);
	else
		field("Error bound", "%" PRIu64 " ns, read %.3f s ago, grows %" PRIu32 " ppb",
		      s->error_bound_ns, (double)(int64_t)(now - s->error_bound_realtime_ns) * 1e-9,
		      s->drift_ppb);
	field("Last offset", "%c%" PRIu64 ".%09" PRIu64 " seconds (device - system)",
	      s->last_offset_ns < 0 ? '-' : '+', mag / NSEC_PER_SEC, mag % NSEC_PER_SEC);
	field("Last disruption", "%s", realtime_text(s->last_disruption_realtime_ns, buf, sizeof(buf)));
	field("Disruptions", "%" PRIu64, s->disruptions);
	field("Samples fed", "%" PRIu64, s->samples_fed);
	if (s->withhold_reason < VMCLOCKD_STATE_REASONS)
		field("Withhold reason", "%s (%s)", vmclockd_reason_name(s->withhold_reason),
		      vmclockd_reason_text(s->withhold_reason));
	else
		field("Withhold reason", "%u (unknown)", (unsigned)s->withhold_reason);
	total = 0;
	for (int i = MTR_FIRST_WITHHOLD_REASON; i < VMCLOCKD_STATE_REASONS; i++)
		total += s->withheld[i];
	field("Samples withheld", "%" PRIu64 ", by reason:", total);
	for (int i = MTR_FIRST_WITHHOLD_REASON; i < VMCLOCKD_STATE_REASONS; i++) {
		snprintf(buf, sizeof(buf), "  %s", vmclockd_reason_name(i));
		field(buf, "%" PRIu64, s->withheld[i]);
	}
}

/* ---- subcommands ----------------------------------------------------------- */

/* Options shared by the subcommands; each accepts the ones it names. */
struct cmd_opts {
	const char *path;
	const char *state;
	bool json;
	int interval_ms;
	double timeout_s;      /* 0: wait forever */
	bool have_max_error;
	uint64_t max_error_ns;
};

struct command {
	const char *name;
	const char *args;      /* for the usage text */
	const char *summary;
	unsigned accepts;      /* ACCEPT_* */
	int (*run)(struct cmd_opts o);
};

enum {
	ACCEPT_JSON = 1u << 0,
	ACCEPT_INTERVAL = 1u << 1,
	ACCEPT_STATE = 1u << 2,
	ACCEPT_WAIT = 1u << 3,
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
		fprintf(stderr, "\nusage: " PROG " [-d PATH]%s %s %s\n",
			current->accepts & ACCEPT_STATE ? " [-s STATE]" : "", current->name,
			current->args);
	else
		fprintf(stderr, "\n(try " PROG " --help)\n");
	return EXIT_USAGE;
}

enum { OPT_JSON = 256, OPT_INTERVAL, OPT_TIMEOUT, OPT_MAX_ERROR };

#define MAX_TIMEOUT_S 31536000.0 /* a year */

/* Parse the options of the current subcommand; -d and -s may also follow
 * the subcommand.  Returns -1 after a usage message. */
static int parse_cmd_opts(int argc, char **argv, struct cmd_opts *o)
{
	static const struct {
		struct option opt;
		unsigned accepts; /* 0: always */
	} all[] = {
		{ { "device", required_argument, NULL, 'd' }, 0 },
		{ { "state", required_argument, NULL, 's' }, ACCEPT_STATE },
		{ { "json", no_argument, NULL, OPT_JSON }, ACCEPT_JSON },
		{ { "interval-ms", required_argument, NULL, OPT_INTERVAL }, ACCEPT_INTERVAL },
		{ { "timeout", required_argument, NULL, OPT_TIMEOUT }, ACCEPT_WAIT },
		{ { "max-error-ns", required_argument, NULL, OPT_MAX_ERROR }, ACCEPT_WAIT },
	};
	struct option longopts[sizeof(all) / sizeof(all[0]) + 1];
	const char *shortopts = current->accepts & ACCEPT_STATE ? ":d:s:" : ":d:";
	size_t n = 0;
	int c;

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (!all[i].accepts || (current->accepts & all[i].accepts))
			longopts[n++] = all[i].opt;
	longopts[n] = (struct option){ NULL, 0, NULL, 0 };

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		char *end;
		long v;
		double d;
		unsigned long long u;

		switch (c) {
		case 'd':
			o->path = optarg;
			break;
		case 's':
			o->state = optarg;
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
		case OPT_TIMEOUT:
			errno = 0;
			d = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(d >= 0 && d <= MAX_TIMEOUT_S)) {
				usage_error("--timeout: expected seconds from 0 (forever) to %.0f, got %s",
					    MAX_TIMEOUT_S, optarg);
				return -1;
			}
			o->timeout_s = d;
			break;
		case OPT_MAX_ERROR:
			errno = 0;
			u = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end || *optarg == '-') {
				usage_error("--max-error-ns: expected nanoseconds, got %s", optarg);
				return -1;
			}
			o->have_max_error = true;
			o->max_error_ns = u;
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

static int cmd_status(struct cmd_opts o)
{
	struct vmclock_abi page;
	vmclock_t *vc;

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

static int cmd_time(struct cmd_opts o)
{
	struct vmclock_offset off;
	struct vmclock_time t;
	struct vmclock_abi page;
	vmclock_t *vc;
	int rc = EXIT_OK;

	vc = open_or_report(o.path);
	if (!vc)
		return EXIT_UNUSABLE;
	(void)vmclock_phc_open(vc); /* none: bracketed offsets */
	if (vmclock_offset(vc, &off) == 0) {
		print_time(&off.time, &off, vmclock_phc_index(vc), o.json);
	} else if (errno != ENODATA) {
		report_unusable(o.path, errno);
		rc = EXIT_UNUSABLE;
	} else if (vmclock_gettime(vc, &t) == 0) {
		/* Time, but no UTC (TAI without a valid offset, or monotonic). */
		print_time(&t, NULL, vmclock_phc_index(vc), o.json);
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

static int cmd_watch(struct cmd_opts o)
{
	return watch_loop(o.path, o.json, o.interval_ms);
}

static double elapsed_s(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - since->tv_sec) + (double)(now.tv_nsec - since->tv_nsec) * 1e-9;
}

#define WAITSYNC_POLL_MS 100

/* Poll vmclock_timestamp() until the verdict is SYNCHRONIZED (and the bound
 * small enough).  A handle whose verdict is UNKNOWN is opened afresh, so a
 * published state or device that appears, or is replaced, counts at once. */
static int cmd_waitsync(struct cmd_opts o)
{
	struct timespec start;
	sigset_t wait_mask;
	vmclock_truth_t *truth = NULL;
	MTR_View v;
	char cause[256];
	int rc;

	catch_stop_signals(&wait_mask);
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		double left;
		struct timespec pause;

		if (!truth && !(truth = vmclock_truth_open(o.path, o.state))) {
			msg("%s", strerror(errno));
			return EXIT_UNUSABLE;
		}
		vmclock_timestamp(truth, &v.ts);
		if (v.ts.verdict == VMCLOCK_VERDICT_SYNCHRONIZED &&
		    (!o.have_max_error || v.ts.bound_ns <= o.max_error_ns)) {
			printf("synchronized: +/- %" PRIu64 " ns, marker %" PRIu64 ", after %.3f s\n",
			       v.ts.bound_ns, v.ts.disruption_marker, elapsed_s(&start));
			rc = EXIT_OK;
			break;
		}
		left = o.timeout_s > 0 ? o.timeout_s - elapsed_s(&start) : WAITSYNC_POLL_MS * 1e-3;
		if (left <= 0 || got_stop) {
			MTR_TakeView(truth, o.path, false, &v);
			verdict_cause(&v, o.state, o.path, cause, sizeof(cause));
			if (v.ts.verdict == VMCLOCK_VERDICT_SYNCHRONIZED)
				snprintf(cause, sizeof(cause), "bound %" PRIu64 " ns > %" PRIu64 " ns",
					 v.ts.bound_ns, o.max_error_ns);
			msg("%s after %.3f s: verdict %s%s%s%s", got_stop ? "interrupted" : "timed out",
			    elapsed_s(&start), vmclock_verdict_name(v.ts.verdict),
			    *cause ? " (" : "", cause, *cause ? ")" : "");
			rc = EXIT_UNUSABLE;
			break;
		}
		if (v.ts.verdict == VMCLOCK_VERDICT_UNKNOWN) {
			vmclock_truth_close(truth);
			truth = NULL;
		}
		if (left > WAITSYNC_POLL_MS * 1e-3)
			left = WAITSYNC_POLL_MS * 1e-3;
		pause.tv_sec = 0;
		pause.tv_nsec = (long)(left * 1e9);
		ppoll(NULL, 0, &pause, &wait_mask);
	}
	vmclock_truth_close(truth);
	return rc;
}

/* One view of device and daemon through a handle opened for the purpose. */
static int view_once(struct cmd_opts o, bool with_device, MTR_View *v)
{
	vmclock_truth_t *truth = vmclock_truth_open(o.path, o.state);

	if (!truth) {
		msg("%s", strerror(errno));
		return -1;
	}
	MTR_TakeView(truth, o.path, with_device, v);
	vmclock_truth_close(truth);
	return 0;
}

static int cmd_daemon(struct cmd_opts o)
{
	MTR_View v;

	if (view_once(o, false, &v) < 0)
		return EXIT_UNUSABLE;
	if (v.state_err) {
		report_state(o.state, v.state_err);
		return EXIT_UNUSABLE;
	}
	if (o.json)
		daemon_json(&v);
	else
		daemon_human(&v, o.state, o.path);
	return EXIT_OK;
}

static int cmd_metrics(struct cmd_opts o)
{
	MTR_View v;

	if (view_once(o, true, &v) < 0)
		return EXIT_UNUSABLE;
	MTR_Write(stdout, &v);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		msg("write: %s", strerror(errno));
		return EXIT_UNUSABLE;
	}
	return EXIT_OK;
}

static const struct command commands[] = {
	{ "status", "[--json]", "decode every field of the page", ACCEPT_JSON, cmd_status },
	{ "time", "[--json]", "device time and its offset from CLOCK_REALTIME", ACCEPT_JSON,
	  cmd_time },
	{ "watch", "[--json] [--interval-ms N]",
	  "print a line whenever the marker, generation, status or flags change",
	  ACCEPT_JSON | ACCEPT_INTERVAL, cmd_watch },
	{ "waitsync", "[--timeout S] [--max-error-ns N]",
	  "wait until timestamps are synchronized (0: yes, 1: timed out)",
	  ACCEPT_STATE | ACCEPT_WAIT, cmd_waitsync },
	{ "daemon", "[--json]", "decode the state vmclockd publishes", ACCEPT_JSON | ACCEPT_STATE,
	  cmd_daemon },
	{ "metrics", "", "daemon and device state as Prometheus text", ACCEPT_STATE, cmd_metrics },
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
	fprintf(f, "usage: " PROG " [-d PATH] [-s STATE] COMMAND [OPTIONS]\n\n"
		   "  -d, --device PATH  vmclock device or page file (default %s)\n"
		   "  -s, --state STATE  vmclockd's state file (default %s)\n\n"
		   "commands:\n", VMCLOCK_DEFAULT_DEVICE, VMCLOCKD_STATE_DEFAULT_PATH);
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  %-8s %-33s %s\n", commands[i].name, commands[i].args,
			commands[i].summary);
	fputs("\nexit status: 0 ok, 1 device or state unusable (waitsync: not synchronized in\n"
	      "time), 2 usage, 3 page carries no time\n", f);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "state", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct cmd_opts o = {
		.path = VMCLOCK_DEFAULT_DEVICE,
		.state = VMCLOCKD_STATE_DEFAULT_PATH,
		.interval_ms = DEFAULT_WATCH_INTERVAL_MS,
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:d:s:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			o.path = optarg;
			break;
		case 's':
			o.state = optarg;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'V':
			printf(PROG " %s\n", PACKAGE_VERSION);
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
			if (parse_cmd_opts(argc - optind, argv + optind, &o) < 0)
				return EXIT_USAGE;
			return commands[i].run(o);
		}
	}
	return usage_error("unknown command %s", argv[optind]);
}
