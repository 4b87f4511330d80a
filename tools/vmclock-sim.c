/* SPDX-License-Identifier: BSD-2-Clause
 *
 * vmclock-sim.c - play the hypervisor: publish a vmclock page in a file.
 *
 * The simulator is an independent writer.  It computes every
 * field of the page from its own model and its own arithmetic (long double
 * and 128-bit integers) and never calls libvmclock's conversion, so a test
 * that reads its pages checks the reader instead of agreeing with it.  It
 * links nothing of libvmclock: its counter read and its name tables are its
 * own, and only the ABI header (layout and numbers) is shared
 * (tests/test-sim-independent.sh checks the link).
 *
 * Model.  With R the host's CLOCK_REALTIME, the device clock is
 *   D(R) = R + off + f * (R - R_f0)
 * where off is the current offset in ns, f the current frequency error
 * (ppb * 1e-9) and R_f0 the realtime at which f last changed.  A migration
 * folds the drift accumulated so far into off, adds the step, sets the new
 * f and R_f0 = now, so D only jumps by the step.
 *
 * Each update anchors the page on the narrowest of several
 * (counter, CLOCK_REALTIME, counter) brackets: counter_value is the
 * bracket's middle, time is D at the realtime read inside it.  The period
 * is P_real * (1 + f), where P_real (realtime seconds per tick) is measured
 * over the longest baseline available: from the first anchor (taken before
 * a ~50 ms start-up calibration) to the current one.  counter_period_shift
 * is chosen at every update so that counter_period_frac_sec lies in
 * [2^62, 2^63): 63 significant bits, with a factor of two of headroom.
 *
 * Writes follow the hypervisor's protocol: seq_count becomes odd, a release
 * fence, the fields, a release fence, seq_count becomes even.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vmclock-abi.h"

#define PAGE_BYTES 4096u
#define NSEC_PER_SEC INT64_C(1000000000)
#define BRACKETS 7
#define CALIBRATION_NS 50000000ll
/* TAI - UTC since 2017. */
#define TAI_MINUS_UTC 37

typedef unsigned __int128 u128;

/* Everything the command line sets. */
struct options {
	const char *path;
	int64_t offset_ns;
	long double freq_ppb;
	int status;
	uint64_t esterror_ns;
	uint64_t maxerror_ns;
	long double period_esterror_ppb;
	long double period_maxerror_ppb;
	int64_t interval_ns;
	bool tai;
	bool marker_only;
	int leap;
	double duration_s;      /* < 0: forever */
	double migrate_at_s;    /* < 0: never */
	int64_t migrate_step_ns;
	int64_t step_ns;        /* what SIGWINCH steps the time by, marker unchanged */
	long double migrate_freq_ppb;
	double restore_at_s;    /* < 0: never */
	bool notify;
	const char *pidfile;
	int64_t file_offset;    /* < 0: PATH is the page itself */
	int64_t stall_ns;       /* how long SIGHUP holds seq_count odd */
	int64_t counter_offset; /* the reader's counter minus ours, in ticks */
	int counter_id;         /* --counter's, or -1: this CPU's own counter */
	uint64_t counter_hz;    /* --counter's frequency */
	const char *page_log;   /* a line per page published, or NULL */
};

/* The model and the calibration. */
struct sim {
	uint8_t counter_id;
	int64_t off_ns;          /* off */
	long double freq;        /* f, dimensionless */
	long double freq_ppb;    /* f as given, for the event lines */
	int64_t r_f0_ns;         /* R_f0 */
	uint64_t c_first;        /* first anchor, the calibration baseline */
	int64_t r_first_ns;
	uint64_t marker;
	uint64_t generation;
	struct vmclock_abi *page;
	FILE *page_log;          /* --page-log, or NULL */
};

/* A counter reading paired with the realtime read between two of them. */
struct anchor {
	uint64_t counter;
	int64_t realtime_ns;
};

static volatile sig_atomic_t got_migrate, got_restore, got_stall, got_step, got_stop;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		got_migrate = 1;
	else if (sig == SIGUSR2)
		got_restore = 1;
	else if (sig == SIGHUP)
		got_stall = 1;
	else if (sig == SIGWINCH)
		got_step = 1;
	else
		got_stop = 1;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("vmclock-sim: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static int64_t timespec_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * NSEC_PER_SEC + ts->tv_nsec;
}

static int64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return timespec_ns(&ts);
}

/* The reader's counter differs from ours by this many ticks (a guest whose
 * TSC started at zero): every counter value is taken in the reader's terms. */
static int64_t counter_offset;

/* This CPU's counter as a vmclock page names it, read here and not by the
 * library the readers use. */
#if defined(__x86_64__)
#define SIM_COUNTER_ID VMCLOCK_COUNTER_X86_TSC
static uint64_t native_counter(void)
{
	uint32_t lo, hi;

	/* lfence: the read is not hoisted above what precedes it. */
	__asm__ __volatile__("lfence\n\trdtsc" : "=a"(lo), "=d"(hi)::"memory");
	return ((uint64_t)hi << 32) | lo;
}
#elif defined(__aarch64__)
#define SIM_COUNTER_ID VMCLOCK_COUNTER_ARM_VCNT
static uint64_t native_counter(void)
{
	uint64_t v;

	__asm__ __volatile__("isb\n\tmrs %0, cntvct_el0" : "=r"(v)::"memory");
	return v;
}
#else
#define SIM_COUNTER_ID VMCLOCK_COUNTER_INVALID
static uint64_t native_counter(void)
{
	return 0;
}
#endif

/* With --counter NAME:HZ the counter is not this CPU's but this host's
 * CLOCK_MONOTONIC counted at HZ ticks per second: what a guest of another
 * architecture under QEMU's TCG reads (its virtual clock, which runs with the
 * host's CLOCK_MONOTONIC, scaled to the emulated timer's frequency).  0: the
 * CPU's own. */
static uint64_t counter_hz;

static uint64_t read_counter(uint8_t id)
{
	uint64_t c = counter_hz ? (uint64_t)((u128)monotonic_ns() * counter_hz /
					     (uint64_t)NSEC_PER_SEC) : native_counter();

	(void)id;
	return c + (uint64_t)counter_offset;
}

/* The names --counter takes, in the ABI's numbering. */
static const char *const counter_names[] = {
	[VMCLOCK_COUNTER_ARM_VCNT] = "arm_vcnt",
	[VMCLOCK_COUNTER_X86_TSC] = "x86_tsc",
};

/* The names --status and --leap take, in the ABI's numbering. */
static const char *const status_names[] = {
	[VMCLOCK_STATUS_UNKNOWN] = "unknown",
	[VMCLOCK_STATUS_INITIALIZING] = "initializing",
	[VMCLOCK_STATUS_SYNCHRONIZED] = "synchronized",
	[VMCLOCK_STATUS_FREERUNNING] = "freerunning",
	[VMCLOCK_STATUS_UNRELIABLE] = "unreliable",
};
static const char *const leap_names[] = {
	[VMCLOCK_LEAP_NONE] = "none",
	[VMCLOCK_LEAP_PRE_POS] = "pre_pos",
	[VMCLOCK_LEAP_PRE_NEG] = "pre_neg",
	[VMCLOCK_LEAP_POS] = "pos",
	[VMCLOCK_LEAP_POST_POS] = "post_pos",
	[VMCLOCK_LEAP_POST_NEG] = "post_neg",
};

static int index_of(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (names[i] && strcmp(names[i], name) == 0)
			return (int)i;
	return -1;
}

/* The narrowest of BRACKETS (counter, CLOCK_REALTIME, counter) triples. */
static struct anchor take_anchor(uint8_t id)
{
	struct anchor best = { 0, 0 };
	uint64_t best_width = UINT64_MAX;

	for (int i = 0; i < BRACKETS; i++) {
		struct timespec ts;
		uint64_t before = read_counter(id), after;

		clock_gettime(CLOCK_REALTIME, &ts);
		after = read_counter(id);
		if (after - before < best_width) {
			best_width = after - before;
			best.counter = before + (after - before) / 2;
			best.realtime_ns = timespec_ns(&ts);
		}
	}
	return best;
}

/* D(R) - R in ns, as an integer part and a fraction in [0, 1). */
static void model_offset(const struct sim *s, int64_t r_ns, int64_t *whole, long double *frac)
{
	long double drift = s->freq * (long double)(r_ns - s->r_f0_ns);
	long double fl = floorl(drift);

	*whole = s->off_ns + (int64_t)fl;
	*frac = drift - fl;
}

/* Realtime seconds per tick over the longest baseline. */
static long double real_period(const struct sim *s, const struct anchor *a)
{
	return (long double)(a->realtime_ns - s->r_first_ns) / 1e9L /
	       (long double)(a->counter - s->c_first);
}

static void store64(uint64_t *field, uint64_t v)
{
	__atomic_store_n(field, vmclock_le64(v), __ATOMIC_RELAXED);
}

static void store8(uint8_t *field, uint8_t v)
{
	__atomic_store_n(field, v, __ATOMIC_RELAXED);
}

static void begin_write(struct vmclock_abi *p)
{
	uint32_t seq = vmclock_le32(__atomic_load_n(&p->seq_count, __ATOMIC_RELAXED));

	__atomic_store_n(&p->seq_count, vmclock_le32(seq + 1), __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

static void end_write(struct vmclock_abi *p)
{
	uint32_t seq = vmclock_le32(__atomic_load_n(&p->seq_count, __ATOMIC_RELAXED));

	__atomic_thread_fence(__ATOMIC_RELEASE);
	__atomic_store_n(&p->seq_count, vmclock_le32(seq + 1), __ATOMIC_RELAXED);
}

/* seconds per tick * 2^(64+shift), shift chosen for [2^62, 2^63). */
static uint64_t period_units(long double period_s, unsigned shift)
{
	return (uint64_t)llroundl(ldexpl(period_s, 64 + (int)shift));
}

static unsigned choose_shift(long double period_s)
{
	int e;

	/* period_s = m * 2^e with m in [0.5, 1): want 64 + shift + e = 63. */
	frexpl(period_s, &e);
	e = -1 - e;
	if (e < 0)
		e = 0;
	if (e > 63)
		e = 63;
	return (unsigned)e;
}

/* Publish the model at a fresh anchor; returns the anchor's realtime. */
static int64_t publish(struct sim *s, const struct options *o)
{
	struct vmclock_abi *p = s->page;
	struct anchor a;
	int64_t whole, dev_ns, sec, rem;
	long double frac, period, pe;
	unsigned shift;
	u128 frac_units;

	if (o->marker_only) {
		begin_write(p);
		store64(&p->disruption_marker, s->marker);
		store64(&p->vm_generation_counter, s->generation);
		end_write(p);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		return timespec_ns(&ts);
	}

	a = take_anchor(s->counter_id);
	model_offset(s, a.realtime_ns, &whole, &frac);
	dev_ns = a.realtime_ns + whole + (o->tai ? TAI_MINUS_UTC * NSEC_PER_SEC : 0);
	sec = dev_ns / NSEC_PER_SEC;
	rem = dev_ns % NSEC_PER_SEC;
	if (rem < 0) {
		rem += NSEC_PER_SEC;
		sec--;
	}
	/* (rem + frac) ns in units of 2^-64 s, exact for the integer part. */
	frac_units = ((u128)(uint64_t)rem << 64) / (u128)NSEC_PER_SEC;
	frac_units += (u128)(uint64_t)llroundl(ldexpl(frac, 64) / 1e9L);

	period = real_period(s, &a) * (1.0L + s->freq);
	shift = choose_shift(period);

	begin_write(p);
	store64(&p->disruption_marker, s->marker);
	store64(&p->vm_generation_counter, s->generation);
	store8(&p->counter_period_shift, (uint8_t)shift);
	store64(&p->counter_value, a.counter);
	store64(&p->counter_period_frac_sec, period_units(period, shift));
	pe = period * o->period_esterror_ppb * 1e-9L;
	store64(&p->counter_period_esterror_rate_frac_sec, period_units(pe, shift));
	pe = period * o->period_maxerror_ppb * 1e-9L;
	store64(&p->counter_period_maxerror_rate_frac_sec, period_units(pe, shift));
	store64(&p->time_sec, (uint64_t)sec + (uint64_t)(frac_units >> 64));
	store64(&p->time_frac_sec, (uint64_t)frac_units);
	end_write(p);
	/* Exactly what the page says, for a test that checks a reader's use
	 * of two pages' periods (seq_count identifies the page). */
	if (s->page_log) {
		fprintf(s->page_log, "%" PRId64 ".%09" PRId64 " page seq=%" PRIu32 " marker=%" PRIu64
			" period_frac=%" PRIu64 " period_shift=%u\n", a.realtime_ns / NSEC_PER_SEC,
			a.realtime_ns % NSEC_PER_SEC, vmclock_le32(p->seq_count), s->marker,
			period_units(period, shift), shift);
		fflush(s->page_log);
	}
	return a.realtime_ns;
}

/* The parts of the page that never change, written before anyone sees it. */
static void fill_static(struct vmclock_abi *p, const struct sim *s, const struct options *o)
{
	uint64_t flags = VMCLOCK_FLAG_VM_GEN_COUNTER_PRESENT;

	memset(p, 0, sizeof(*p));
	p->magic = vmclock_le32(VMCLOCK_MAGIC);
	p->size = vmclock_le32(PAGE_BYTES);
	p->version = vmclock_le16(VMCLOCK_VERSION);
	p->seq_count = 0;
	p->disruption_marker = vmclock_le64(s->marker);
	p->vm_generation_counter = vmclock_le64(s->generation);
	if (o->notify || o->marker_only)
		flags |= VMCLOCK_FLAG_NOTIFICATION_PRESENT;
	if (o->marker_only) {
		p->counter_id = VMCLOCK_COUNTER_INVALID;
		p->clock_status = VMCLOCK_STATUS_UNKNOWN;
		p->flags = vmclock_le64(flags);
		return;
	}
	flags |= VMCLOCK_FLAG_TIME_ESTERROR_VALID | VMCLOCK_FLAG_TIME_MAXERROR_VALID |
		 VMCLOCK_FLAG_PERIOD_ESTERROR_VALID | VMCLOCK_FLAG_PERIOD_MAXERROR_VALID;
	p->counter_id = s->counter_id;
	if (o->tai) {
		p->time_type = VMCLOCK_TIME_TAI;
		p->tai_offset_sec = (int16_t)vmclock_le16((uint16_t)-TAI_MINUS_UTC);
		flags |= VMCLOCK_FLAG_TAI_OFFSET_VALID;
	} else {
		p->time_type = VMCLOCK_TIME_UTC;
	}
	p->flags = vmclock_le64(flags);
	p->clock_status = (uint8_t)o->status;
	p->leap_indicator = (uint8_t)o->leap;
	p->time_esterror_nanosec = vmclock_le64(o->esterror_ns);
	p->time_maxerror_nanosec = vmclock_le64(o->maxerror_ns);
}

/* Create PATH atomically: a full page in a temporary file, then rename(). */
static struct vmclock_abi *create_page(const char *path, const struct vmclock_abi *image)
{
	static char buf[PAGE_BYTES];
	size_t len = strlen(path);
	char *tmp = malloc(len + 16);
	void *map;
	int fd;

	if (!tmp)
		die("%s", "out of memory");
	snprintf(tmp, len + 16, "%s.tmpXXXXXX", path);
	fd = mkstemp(tmp);
	if (fd < 0)
		die("cannot create a temporary file next to %s", path);
	memset(buf, 0, sizeof(buf));
	memcpy(buf, image, sizeof(*image));
	if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf) || fchmod(fd, 0644) < 0) {
		unlink(tmp);
		die("cannot write %s", tmp);
	}
	map = mmap(NULL, PAGE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		unlink(tmp);
		die("cannot map %s", tmp);
	}
	if (rename(tmp, path) < 0) {
		unlink(tmp);
		die("cannot rename onto %s", path);
	}
	close(fd);
	free(tmp);
	return map;
}

/* Write the page at byte OFFSET of the existing regular file PATH (a
 * virtual machine's shared RAM file, the page at its guest-physical
 * address) and map it there.  The file is not created, truncated or
 * replaced: it belongs to the virtual machine monitor. */
static struct vmclock_abi *place_page(const char *path, int64_t offset,
				      const struct vmclock_abi *image)
{
	static char buf[PAGE_BYTES];
	struct stat st;
	void *map;
	int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		die("cannot open %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		die("%s is not a regular file", path);
	if (offset % (int64_t)sysconf(_SC_PAGESIZE) != 0)
		die("--file-offset %" PRId64 " is not a multiple of the page size", offset);
	if (st.st_size < offset || st.st_size - offset < (off_t)PAGE_BYTES)
		die("%s is too small for a page at offset %" PRId64, path, offset);
	memset(buf, 0, sizeof(buf));
	memcpy(buf, image, sizeof(*image));
	if (pwrite(fd, buf, sizeof(buf), (off_t)offset) != (ssize_t)sizeof(buf))
		die("cannot write %s at offset %" PRId64, path, offset);
	map = mmap(NULL, PAGE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)offset);
	if (map == MAP_FAILED)
		die("cannot map %s at offset %" PRId64, path, offset);
	close(fd);
	return map;
}

/* A writer stalled mid-update: seq_count odd for STALL_NS. */
static void stall(struct sim *s, int64_t stall_ns)
{
	struct timespec ts, pause = { stall_ns / NSEC_PER_SEC, stall_ns % NSEC_PER_SEC };

	begin_write(s->page);
	clock_gettime(CLOCK_REALTIME, &ts);
	printf("%lld.%09ld stall ms=%" PRId64 "\n", (long long)ts.tv_sec, ts.tv_nsec,
	       stall_ns / 1000000);
	fflush(stdout);
	while (nanosleep(&pause, &pause) < 0 && errno == EINTR)
		;
	end_write(s->page);
}

static void event(int64_t realtime_ns, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void event(int64_t realtime_ns, const char *fmt, ...)
{
	va_list ap;

	printf("%" PRId64 ".%09" PRId64 " ", realtime_ns / NSEC_PER_SEC, realtime_ns % NSEC_PER_SEC);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

/* The model's offset (D - R) at realtime r, whole ns. */
static int64_t offset_now(const struct sim *s, int64_t r_ns)
{
	int64_t whole;
	long double frac;

	model_offset(s, r_ns, &whole, &frac);
	return whole;
}

static void migrate(struct sim *s, const struct options *o)
{
	struct timespec ts;
	int64_t now, r;

	clock_gettime(CLOCK_REALTIME, &ts);
	now = timespec_ns(&ts);
	/* Fold the drift so far into off: D stays continuous but for the step. */
	s->off_ns = offset_now(s, now) + o->migrate_step_ns;
	s->freq_ppb = o->migrate_freq_ppb;
	s->freq = o->migrate_freq_ppb * 1e-9L;
	s->r_f0_ns = now;
	s->marker++;
	r = publish(s, o);
	event(r, "migrate marker=%" PRIu64 " step_ns=%" PRId64 " offset_ns=%" PRId64
		 " freq_ppb=%.0Lf", s->marker, o->migrate_step_ns, s->off_ns, s->freq_ppb);
}

/* The time steps by --step-ns and nothing else changes: no marker, no
 * frequency.  To a reader it is the same as a step of its own realtime clock
 * by -step (date -s): the two disagree by the step from now on. */
static void step(struct sim *s, const struct options *o)
{
	struct timespec ts;
	int64_t r;

	clock_gettime(CLOCK_REALTIME, &ts);
	s->off_ns = offset_now(s, timespec_ns(&ts)) + o->step_ns;
	s->r_f0_ns = timespec_ns(&ts);
	r = publish(s, o);
	event(r, "step marker=%" PRIu64 " step_ns=%" PRId64 " offset_ns=%" PRId64, s->marker,
	      o->step_ns, s->off_ns);
}

static void restore(struct sim *s, const struct options *o)
{
	int64_t r;

	s->generation++;
	s->marker++;
	r = publish(s, o);
	event(r, "restore gen=%" PRIu64 " marker=%" PRIu64, s->generation, s->marker);
}

static void usage(FILE *f)
{
	fputs("usage: vmclock-sim PATH [--offset-ns N] [--freq-ppb F] [--status NAME]\n"
	      "         [--esterror-ns N] [--maxerror-ns N] [--interval-ms N] [--tai]\n"
	      "         [--marker-only] [--leap NAME] [--duration S]\n"
	      "         [--migrate-at S] [--migrate-step-ns N] [--migrate-freq-ppb F]\n"
	      "         [--restore-at S] [--notify] [--pidfile FILE]\n"
	      "         [--file-offset BYTES] [--stall-ms N] [--counter-offset TICKS]\n"
	      "         [--page-log FILE] [--step-ns N] [--counter NAME:HZ]\n", f);
}

static long double parse_number(const char *opt, const char *arg)
{
	char *end;
	long double v;

	errno = 0;
	v = strtold(arg, &end);
	if (errno || end == arg || *end || !isfinite(v)) {
		fprintf(stderr, "vmclock-sim: --%s: not a number: %s\n", opt, arg);
		usage(stderr);
		exit(2);
	}
	return v;
}

static int64_t parse_int(const char *opt, const char *arg, int64_t min, int64_t max)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(arg, &end, 10);
	if (errno || end == arg || *end || v < min || v > max) {
		fprintf(stderr, "vmclock-sim: --%s: not an integer in range: %s\n", opt, arg);
		usage(stderr);
		exit(2);
	}
	return v;
}

enum {
	OPT_OFFSET = 256, OPT_FREQ, OPT_STATUS, OPT_ESTERR, OPT_MAXERR, OPT_INTERVAL, OPT_TAI,
	OPT_MARKER_ONLY, OPT_LEAP, OPT_DURATION, OPT_MIGRATE_AT, OPT_MIGRATE_STEP,
	OPT_MIGRATE_FREQ, OPT_RESTORE_AT, OPT_NOTIFY, OPT_PIDFILE, OPT_FILE_OFFSET, OPT_STALL,
	OPT_COUNTER_OFFSET, OPT_PAGE_LOG, OPT_STEP, OPT_COUNTER, OPT_HELP,
};

static const struct option long_options[] = {
	{ "offset-ns", required_argument, NULL, OPT_OFFSET },
	{ "freq-ppb", required_argument, NULL, OPT_FREQ },
	{ "status", required_argument, NULL, OPT_STATUS },
	{ "esterror-ns", required_argument, NULL, OPT_ESTERR },
	{ "maxerror-ns", required_argument, NULL, OPT_MAXERR },
	{ "interval-ms", required_argument, NULL, OPT_INTERVAL },
	{ "tai", no_argument, NULL, OPT_TAI },
	{ "marker-only", no_argument, NULL, OPT_MARKER_ONLY },
	{ "leap", required_argument, NULL, OPT_LEAP },
	{ "duration", required_argument, NULL, OPT_DURATION },
	{ "migrate-at", required_argument, NULL, OPT_MIGRATE_AT },
	{ "migrate-step-ns", required_argument, NULL, OPT_MIGRATE_STEP },
	{ "migrate-freq-ppb", required_argument, NULL, OPT_MIGRATE_FREQ },
	{ "restore-at", required_argument, NULL, OPT_RESTORE_AT },
	{ "notify", no_argument, NULL, OPT_NOTIFY },
	{ "pidfile", required_argument, NULL, OPT_PIDFILE },
	{ "file-offset", required_argument, NULL, OPT_FILE_OFFSET },
	{ "stall-ms", required_argument, NULL, OPT_STALL },
	{ "counter-offset", required_argument, NULL, OPT_COUNTER_OFFSET },
	{ "page-log", required_argument, NULL, OPT_PAGE_LOG },
	{ "step-ns", required_argument, NULL, OPT_STEP },
	{ "counter", required_argument, NULL, OPT_COUNTER },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

/* Frequencies beyond this (10%) are not a clock. */
#define MAX_FREQ_PPB 1e8L
#define MAX_SECONDS 1e9

static void parse_args(int argc, char **argv, struct options *o)
{
	int c;

	*o = (struct options){
		.status = VMCLOCK_STATUS_SYNCHRONIZED,
		.esterror_ns = 100,
		.maxerror_ns = 1000,
		.period_esterror_ppb = 10,
		.period_maxerror_ppb = 50,
		.interval_ns = 100 * 1000000ll,
		.leap = VMCLOCK_LEAP_NONE,
		.duration_s = -1,
		.migrate_at_s = -1,
		.migrate_step_ns = 2000000,
		.step_ns = 5000000,
		.migrate_freq_ppb = 30000,
		.restore_at_s = -1,
		.file_offset = -1,
		.stall_ns = 1000 * 1000000ll,
		.counter_id = -1,
	};
	while ((c = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
		switch (c) {
		case OPT_OFFSET:
			o->offset_ns = parse_int("offset-ns", optarg, -INT64_MAX / 4, INT64_MAX / 4);
			break;
		case OPT_FREQ:
			o->freq_ppb = parse_number("freq-ppb", optarg);
			if (fabsl(o->freq_ppb) > MAX_FREQ_PPB)
				die("--freq-ppb out of range: %s", optarg);
			break;
		case OPT_STATUS:
			o->status = index_of(status_names, sizeof(status_names) / sizeof(status_names[0]),
					     optarg);
			if (o->status < 0) {
				fprintf(stderr, "vmclock-sim: unknown status %s (unknown, initializing, "
					"synchronized, freerunning, unreliable)\n", optarg);
				exit(2);
			}
			break;
		case OPT_ESTERR:
			o->esterror_ns = (uint64_t)parse_int("esterror-ns", optarg, 0, INT64_MAX);
			break;
		case OPT_MAXERR:
			o->maxerror_ns = (uint64_t)parse_int("maxerror-ns", optarg, 0, INT64_MAX);
			break;
		case OPT_INTERVAL:
			o->interval_ns = parse_int("interval-ms", optarg, 1, 3600000) * 1000000;
			break;
		case OPT_TAI:
			o->tai = true;
			break;
		case OPT_MARKER_ONLY:
			o->marker_only = true;
			break;
		case OPT_LEAP:
			o->leap = index_of(leap_names, sizeof(leap_names) / sizeof(leap_names[0]), optarg);
			if (o->leap < 0) {
				fprintf(stderr, "vmclock-sim: unknown leap %s (none, pre_pos, pre_neg, "
					"pos, post_pos, post_neg)\n", optarg);
				exit(2);
			}
			break;
		case OPT_DURATION:
			o->duration_s = (double)parse_number("duration", optarg);
			break;
		case OPT_MIGRATE_AT:
			o->migrate_at_s = (double)parse_number("migrate-at", optarg);
			break;
		case OPT_MIGRATE_STEP:
			o->migrate_step_ns = parse_int("migrate-step-ns", optarg,
						       -INT64_MAX / 4, INT64_MAX / 4);
			break;
		case OPT_STEP:
			o->step_ns = parse_int("step-ns", optarg, -INT64_MAX / 4, INT64_MAX / 4);
			break;
		case OPT_MIGRATE_FREQ:
			o->migrate_freq_ppb = parse_number("migrate-freq-ppb", optarg);
			if (fabsl(o->migrate_freq_ppb) > MAX_FREQ_PPB)
				die("--migrate-freq-ppb out of range: %s", optarg);
			break;
		case OPT_RESTORE_AT:
			o->restore_at_s = (double)parse_number("restore-at", optarg);
			break;
		case OPT_NOTIFY:
			o->notify = true;
			break;
		case OPT_PIDFILE:
			o->pidfile = optarg;
			break;
		case OPT_FILE_OFFSET:
			o->file_offset = parse_int("file-offset", optarg, 0, INT64_MAX / 2);
			break;
		case OPT_COUNTER_OFFSET:
			o->counter_offset = parse_int("counter-offset", optarg, INT64_MIN, INT64_MAX);
			break;
		case OPT_PAGE_LOG:
			o->page_log = optarg;
			break;
		case OPT_COUNTER: {
			char *colon = strchr(optarg, ':');

			if (colon)
				*colon = '\0';
			o->counter_id = index_of(counter_names, sizeof(counter_names) /
						 sizeof(counter_names[0]), optarg);
			if (o->counter_id < 0 || !colon) {
				fprintf(stderr, "vmclock-sim: --counter: NAME:HZ with NAME arm_vcnt or "
					"x86_tsc: %s\n", optarg);
				exit(2);
			}
			/* Up to 10 GHz: a tick of at least 0.1 ns. */
			o->counter_hz = (uint64_t)parse_int("counter", colon + 1, 1, 10000000000ll);
			break;
		}
		case OPT_STALL:
			o->stall_ns = parse_int("stall-ms", optarg, 1, 60000) * 1000000;
			break;
		case 'h':
		case OPT_HELP:
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		exit(2);
	}
	if (o->duration_s > MAX_SECONDS || o->migrate_at_s > MAX_SECONDS ||
	    o->restore_at_s > MAX_SECONDS)
		die("%s", "a time in seconds is out of range");
	o->path = argv[optind];
}

/* The page log: appended to, never through a symbolic link. */
static FILE *open_log(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0644);
	struct stat st;
	FILE *f;

	if (fd < 0)
		die("cannot open %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		die("%s is not a regular file", path);
	f = fdopen(fd, "a");
	if (!f)
		die("cannot open %s: %s", path, strerror(errno));
	return f;
}

static void write_pidfile(const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0)
		die("cannot write pid file %s", path);
}

static void setup_signals(sigset_t *wait_mask)
{
	struct sigaction sa;
	sigset_t block;
	const int sigs[] = { SIGUSR1, SIGUSR2, SIGHUP, SIGWINCH, SIGTERM, SIGINT };

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigemptyset(&block);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		sigaction(sigs[i], &sa, NULL);
		sigaddset(&block, sigs[i]);
	}
	/* Signals are only delivered inside ppoll(): no lost wake-ups. */
	sigprocmask(SIG_BLOCK, &block, wait_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigdelset(wait_mask, sigs[i]);
}

static int64_t seconds_to_ns(double s)
{
	return s < 0 ? -1 : (int64_t)llround(s * 1e9);
}

int main(int argc, char **argv)
{
	struct options o;
	struct sim s;
	struct vmclock_abi image;
	struct anchor cal;
	sigset_t wait_mask;
	int64_t start, next, r, migrate_at, restore_at, end_at;
	FILE *page_log;

	parse_args(argc, argv, &o);
	counter_offset = o.counter_offset;
	counter_hz = o.counter_hz;
	setup_signals(&wait_mask);

	memset(&s, 0, sizeof(s));
	s.marker = 1;
	s.generation = 1;
	s.off_ns = o.offset_ns;
	s.freq_ppb = o.freq_ppb;
	s.freq = o.freq_ppb * 1e-9L;
	s.counter_id = o.counter_id < 0 ? SIM_COUNTER_ID : (uint8_t)o.counter_id;
	page_log = o.page_log ? open_log(o.page_log) : NULL;
	if (s.counter_id == VMCLOCK_COUNTER_INVALID && !o.marker_only)
		die("%s", "this CPU has no counter a vmclock page can name (try --marker-only)");

	if (!o.marker_only) {
		/* The first anchor starts the baseline; calibrate over ~50 ms. */
		struct timespec pause = { 0, CALIBRATION_NS };
		cal = take_anchor(s.counter_id);
		s.c_first = cal.counter;
		s.r_first_ns = cal.realtime_ns;
		s.r_f0_ns = cal.realtime_ns;
		while (nanosleep(&pause, &pause) < 0 && errno == EINTR)
			;
	}

	fill_static(&image, &s, &o);
	s.page = &image;
	if (!o.marker_only)
		(void)publish(&s, &o); /* fills the time fields of the image */
	image.seq_count = 0;
	s.page = o.file_offset < 0 ? create_page(o.path, &image)
				   : place_page(o.path, o.file_offset, &image);
	s.page_log = page_log; /* the pages from here on, as readers see them */
	if (o.pidfile)
		write_pidfile(o.pidfile);
	r = publish(&s, &o);
	event(r, "start marker=%" PRIu64 " gen=%" PRIu64 " offset_ns=%" PRId64 " freq_ppb=%.0Lf",
	      s.marker, s.generation, s.off_ns, s.freq_ppb);

	start = monotonic_ns();
	migrate_at = o.migrate_at_s < 0 ? -1 : start + seconds_to_ns(o.migrate_at_s);
	restore_at = o.restore_at_s < 0 ? -1 : start + seconds_to_ns(o.restore_at_s);
	end_at = o.duration_s < 0 ? -1 : start + seconds_to_ns(o.duration_s);
	next = start + o.interval_ns;

	for (;;) {
		int64_t now = monotonic_ns(), wake = next;
		struct timespec timeout;

		if (got_stop || (end_at >= 0 && now >= end_at))
			break;
		if (got_migrate || (migrate_at >= 0 && now >= migrate_at)) {
			if (!got_migrate)
				migrate_at = -1;
			got_migrate = 0;
			migrate(&s, &o);
			continue;
		}
		if (got_step) {
			got_step = 0;
			step(&s, &o);
			continue;
		}
		if (got_stall) {
			got_stall = 0;
			stall(&s, o.stall_ns);
			continue;
		}
		if (got_restore || (restore_at >= 0 && now >= restore_at)) {
			if (!got_restore)
				restore_at = -1;
			got_restore = 0;
			restore(&s, &o);
			continue;
		}
		if (now >= next) {
			/* A marker-only page changes only on events. */
			if (!o.marker_only)
				publish(&s, &o);
			next += o.interval_ns;
			if (next <= now) /* suspended or starved: do not catch up */
				next = now + o.interval_ns;
			continue;
		}
		if (migrate_at >= 0 && migrate_at < wake)
			wake = migrate_at;
		if (restore_at >= 0 && restore_at < wake)
			wake = restore_at;
		if (end_at >= 0 && end_at < wake)
			wake = end_at;
		timeout.tv_sec = (wake - now) / NSEC_PER_SEC;
		timeout.tv_nsec = (wake - now) % NSEC_PER_SEC;
		ppoll(NULL, 0, &timeout, &wait_mask);
	}

	{
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		event(timespec_ns(&ts), "exit marker=%" PRIu64 " gen=%" PRIu64, s.marker,
		      s.generation);
	}
	if (o.pidfile)
		unlink(o.pidfile);
	return 0;
}
