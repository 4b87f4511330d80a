/* SPDX-License-Identifier: BSD-2-Clause
 *
 * log.c - journal or stderr, chosen once at start.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>
/* Our callers' locations are passed explicitly, never log.c's own. */
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

#include <event2/event.h>

#include "../common/timeutil.h"

#include "log.h"

#define MAX_FIELDS 16

#define JOURNAL_SOCKET "/run/systemd/journal/socket"

static bool debug_enabled;
static bool to_journal;

/* systemd sets JOURNAL_STREAM=dev:ino for a stderr connected to the journal;
 * if stderr was redirected since, the numbers no longer match. */
static bool stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!env || sscanf(env, "%llu:%llu", &dev, &ino) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	if ((unsigned long long)st.st_dev != dev || (unsigned long long)st.st_ino != ino)
		return false;
	/* sd_journal_sendv() reports success when the socket is missing
	 * (a container with its own /run): messages would vanish. */
	return access(JOURNAL_SOCKET, W_OK) == 0;
}

void LOG_Initialise(bool debug, bool force_stderr)
{
	debug_enabled = debug;
	to_journal = !force_stderr && stderr_is_journal();
}

void LOG_Finalise(void)
{
	fflush(stderr);
}

bool LOG_DebugEnabled(void)
{
	return debug_enabled;
}

static int priority(LOG_Severity severity)
{
	switch (severity) {
	case LOGS_DEBUG:
		return LOG_DEBUG;
	case LOGS_INFO:
		return LOG_INFO;
	case LOGS_NOTICE:
		return LOG_NOTICE;
	case LOGS_WARN:
		return LOG_WARNING;
	case LOGS_ERR:
		return LOG_ERR;
	case LOGS_FATAL:
	default:
		return LOG_CRIT;
	}
}

static const char *prefix(LOG_Severity severity)
{
	switch (severity) {
	case LOGS_DEBUG:
		return "debug: ";
	case LOGS_WARN:
		return "warning: ";
	case LOGS_ERR:
		return "error: ";
	case LOGS_FATAL:
		return "fatal: ";
	case LOGS_NOTICE:
		return "notice: ";
	case LOGS_INFO:
	default:
		return "";
	}
}

static void emit(LOG_Origin at, LOG_Severity severity, const char *message_id,
		 const char *const *fields, const char *text)
{
	if (to_journal) {
		struct iovec iov[MAX_FIELDS + 3];
		char msg[LOG_LINE_MAX + 64], prio[32], id[64], file[256], line[32];
		int n = 0;

		snprintf(msg, sizeof(msg), "MESSAGE=%s", text);
		snprintf(prio, sizeof(prio), "PRIORITY=%d", priority(severity));
		iov[n++] = (struct iovec){ msg, strlen(msg) };
		iov[n++] = (struct iovec){ prio, strlen(prio) };
		if (message_id) {
			snprintf(id, sizeof(id), "MESSAGE_ID=%s", message_id);
			iov[n++] = (struct iovec){ id, strlen(id) };
		}
		for (int i = 0; fields && i < MAX_FIELDS && fields[i]; i++)
			iov[n++] = (struct iovec){ (void *)(uintptr_t)fields[i], strlen(fields[i]) };
		snprintf(file, sizeof(file), "CODE_FILE=%s", at.file);
		snprintf(line, sizeof(line), "CODE_LINE=%d", at.line);
		if (sd_journal_sendv_with_location(file, line, at.func, iov, n) >= 0)
			return;
		/* No journal after all: fall through to stderr. */
	}
	fprintf(stderr, "vmclockd: %s%s", prefix(severity), text);
	if (message_id)
		fprintf(stderr, " MESSAGE_ID=%s", message_id);
	for (int i = 0; fields && i < MAX_FIELDS && fields[i]; i++)
		fprintf(stderr, " %s", fields[i]);
	fputc('\n', stderr);
}

/* Emits TEXT, with " (N similar suppressed)" and the field SUPPRESSED=N
 * added when N is not 0. */
static void emit_counted(LOG_Origin at, LOG_Severity severity, const char *message_id,
			 const char *const *fields, unsigned long n, const char *text)
{
	char counted[LOG_LINE_MAX + 48], count[48];
	const char *all[MAX_FIELDS + 1];
	int k = 0;

	if (!n) {
		emit(at, severity, message_id, fields, text);
		return;
	}
	snprintf(counted, sizeof(counted), "%s (%lu similar suppressed)", text, n);
	snprintf(count, sizeof(count), "SUPPRESSED=%lu", n);
	for (; fields && k < MAX_FIELDS - 1 && fields[k]; k++)
		all[k] = fields[k];
	all[k++] = count;
	all[k] = NULL;
	emit(at, severity, message_id, all, counted);
}

static void vemit(LOG_Origin at, LOG_Severity severity, const char *message_id,
		  const char *const *fields, unsigned long suppressed, const char *format,
		  va_list ap) __attribute__((format(printf, 6, 0)));

static void vemit(LOG_Origin at, LOG_Severity severity, const char *message_id,
		  const char *const *fields, unsigned long suppressed, const char *format,
		  va_list ap)
{
	char text[LOG_LINE_MAX];

	vsnprintf(text, sizeof(text), format, ap);
	emit_counted(at, severity, message_id, fields, suppressed, text);
}

void LOG_MessageAt(LOG_Origin at, LOG_Severity severity, const char *format, ...)
{
	va_list ap;

	va_start(ap, format);
	vemit(at, severity, NULL, NULL, 0, format, ap);
	va_end(ap);
}

void LOG_EventAt(LOG_Origin at, LOG_Severity severity, const char *message_id,
		 const char *const *fields, const char *format, ...)
{
	va_list ap;

	va_start(ap, format);
	vemit(at, severity, message_id, fields, 0, format, ap);
	va_end(ap);
}

void LOG_FileStateAt(LOG_Origin at, LOG_Severity severity, const char *path, const char *state,
		     int err, const char *const *fields, const char *format, ...)
{
	char file[LOG_LINE_MAX], st[64], e[32];
	const char *all[MAX_FIELDS + 1] = { file, st };
	int k = 2;
	va_list ap;

	snprintf(file, sizeof(file), "FILE=%s", path);
	snprintf(st, sizeof(st), "FILE_STATE=%s", state);
	if (err) {
		snprintf(e, sizeof(e), "ERRNO=%d", err);
		all[k++] = e;
	}
	for (int i = 0; fields && k < MAX_FIELDS && fields[i]; i++)
		all[k++] = fields[i];
	all[k] = NULL;
	va_start(ap, format);
	vemit(at, severity, NULL, all, 0, format, ap);
	va_end(ap);
}

/* The flood policy: LIMIT_BURST alerts of a kind at once (STATE_BURST for
 * changes of a state), then one line every LIMIT_INTERVAL_S seconds for as
 * long as the flood lasts: the window's timer says the count of what it
 * suppressed when it ends, unless an alert allowed first carries it; a kind
 * that was quiet for a burst's worth of intervals has its whole burst
 * again. */
#define LIMIT_BURST 3
#define STATE_BURST 8
#define LIMIT_INTERVAL_S 10

static unsigned limit_burst(const LOG_Limit *l)
{
	return l->states ? STATE_BURST : LIMIT_BURST;
}

/* Adds the tokens earned since the last refill. */
static void limit_refill(LOG_Limit *l)
{
	struct timespec now;
	int64_t elapsed_s;
	unsigned burst = limit_burst(l);

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!l->started) {
		l->started = true;
		l->tokens = burst;
		l->refilled = now;
	}
	elapsed_s = (int64_t)now.tv_sec - (int64_t)l->refilled.tv_sec -
		    (now.tv_nsec < l->refilled.tv_nsec);
	if (elapsed_s >= LIMIT_INTERVAL_S) {
		int64_t add = elapsed_s / LIMIT_INTERVAL_S;

		l->tokens = add >= burst - l->tokens ? burst : l->tokens + (unsigned)add;
		l->refilled.tv_sec += (time_t)(add * LIMIT_INTERVAL_S);
	}
	/* A full bucket fills no further: its next refill is an interval after
	 * it is first drawn from. */
	if (l->tokens == burst)
		l->refilled = now;
}

static bool limit_take(LOG_Limit *l)
{
	limit_refill(l);
	if (!l->tokens)
		return false;
	l->tokens--;
	return true;
}

/* The loop whose timers close the windows, and the limits with a timer. */
static struct event_base *loop;
static LOG_Limit *timed;

/* Says the count of what L suppressed, with the last message suppressed
 * (its origin, severity, text and fields; its MESSAGE_ID as
 * SUPPRESSED_MESSAGE_ID: a count is no occurrence of the event). */
static void say_suppressed(LOG_Limit *l)
{
	char id[64];
	const char *fields[MAX_FIELDS];
	int n = 0;

	for (const char *f = l->last_fields; *f && n < MAX_FIELDS - 2; f += strlen(f) + 1)
		fields[n++] = f;
	snprintf(id, sizeof(id), "SUPPRESSED_MESSAGE_ID=%s", l->last_id);
	if (l->last_id[0])
		fields[n++] = id;
	fields[n] = NULL;
	emit_counted(l->last_at, l->last_severity, NULL, n ? fields : NULL, l->suppressed,
		     l->last_text);
	l->suppressed = 0;
}

/* Keeps FIELDS in L for say_suppressed, as many as fit whole. */
static void keep_fields(LOG_Limit *l, const char *const *fields)
{
	size_t used = 0;

	for (int i = 0; fields && i < MAX_FIELDS - 2 && fields[i]; i++) {
		size_t len = strlen(fields[i]) + 1;

		if (used + len >= sizeof(l->last_fields))
			break;
		memcpy(l->last_fields + used, fields[i], len);
		used += len;
	}
	l->last_fields[used] = '\0';
}

static void window_cb(evutil_socket_t fd, short what, void *arg);

/* Arms L's timer for the end of its window: when its next message is
 * allowed. */
static void arm_window(LOG_Limit *l)
{
	struct timespec now, end = l->refilled;
	struct timeval tv;
	int64_t ns;

	if (!loop)
		return;
	if (!l->window) {
		l->window = evtimer_new(loop, window_cb, l);
		if (!l->window)
			return; /* said by the next message allowed instead */
		l->next = timed;
		timed = l;
	}
	if (evtimer_pending(l->window, NULL))
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	end.tv_sec += LIMIT_INTERVAL_S;
	ns = TIM_DiffNs(&end, &now);
	if (ns < 0)
		ns = 0;
	/* A microsecond late rather than early (the timeval's truncation). */
	tv.tv_sec = (time_t)(ns / NSEC_PER_SEC);
	tv.tv_usec = (suseconds_t)(ns % NSEC_PER_SEC / NSEC_PER_USEC) + 1;
	evtimer_add(l->window, &tv);
}

/* The window closed: its count is said now, unless a message allowed in
 * the meantime said it. */
static void window_cb(evutil_socket_t fd, short what, void *arg)
{
	LOG_Limit *l = arg;

	if (!l->suppressed)
		return;
	if (!limit_take(l)) {
		arm_window(l); /* early by a rounding */
		return;
	}
	say_suppressed(l);
}

void LOG_AttachLoop(struct event_base *base)
{
	loop = base;
}

void LOG_DetachLoop(void)
{
	while (timed) {
		LOG_Limit *l = timed;

		timed = l->next;
		if (l->suppressed)
			say_suppressed(l);
		event_free(l->window);
		l->window = NULL;
		l->next = NULL;
	}
	loop = NULL;
}

void LOG_LimitedEventAt(LOG_Origin at, LOG_Limit *limit, LOG_Severity severity,
			const char *message_id, const char *const *fields, const char *format, ...)
{
	va_list ap;

	if (!limit_take(limit)) {
		limit->suppressed++;
		limit->last_at = at;
		limit->last_severity = severity;
		snprintf(limit->last_id, sizeof(limit->last_id), "%s", message_id ? message_id : "");
		keep_fields(limit, fields);
		va_start(ap, format);
		vsnprintf(limit->last_text, sizeof(limit->last_text), format, ap);
		va_end(ap);
		arm_window(limit);
		return;
	}
	va_start(ap, format);
	vemit(at, severity, message_id, fields, limit->suppressed, format, ap);
	va_end(ap);
	limit->suppressed = 0;
}

bool LOG_RepeatFailing(LOG_Repeat *r, int cause)
{
	if (r->cause == cause)
		return false;
	r->cause = cause;
	return true;
}

bool LOG_RepeatRecovered(LOG_Repeat *r)
{
	bool was = r->cause != 0;

	r->cause = 0;
	return was;
}
