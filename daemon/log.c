/* SPDX-License-Identifier: BSD-2-Clause
 *
 * log.c - journal or stderr, chosen once at start.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>
#include <systemd/sd-journal.h>

#include "log.h"

#define MAX_FIELDS 16
#define LINE_MAX_LEN 1024

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

static void emit(LOG_Severity severity, const char *message_id, const char *const *fields,
		 const char *text)
{
	if (to_journal) {
		struct iovec iov[MAX_FIELDS + 3];
		char msg[LINE_MAX_LEN + 16], prio[32], id[64];
		int n = 0;

		snprintf(msg, sizeof(msg), "MESSAGE=%s", text);
		snprintf(prio, sizeof(prio), "PRIORITY=%d", priority(severity));
		iov[n++] = (struct iovec){ msg, strlen(msg) };
		iov[n++] = (struct iovec){ prio, strlen(prio) };
		if (message_id) {
			snprintf(id, sizeof(id), "MESSAGE_ID=%s", message_id);
			iov[n++] = (struct iovec){ id, strlen(id) };
		}
		for (int i = 0; fields && fields[i] && i < MAX_FIELDS; i++)
			iov[n++] = (struct iovec){ (void *)(uintptr_t)fields[i], strlen(fields[i]) };
		if (sd_journal_sendv(iov, n) >= 0)
			return;
		/* No journal after all: fall through to stderr. */
	}
	fprintf(stderr, "vmclockd: %s%s", prefix(severity), text);
	for (int i = 0; fields && fields[i] && i < MAX_FIELDS; i++)
		fprintf(stderr, " %s", fields[i]);
	fputc('\n', stderr);
}

static void vemit(LOG_Severity severity, const char *message_id, const char *const *fields,
		  const char *format, va_list ap) __attribute__((format(printf, 4, 0)));

static void vemit(LOG_Severity severity, const char *message_id, const char *const *fields,
		  const char *format, va_list ap)
{
	char text[LINE_MAX_LEN];

	vsnprintf(text, sizeof(text), format, ap);
	emit(severity, message_id, fields, text);
}

void LOG_Message(LOG_Severity severity, const char *format, ...)
{
	va_list ap;

	va_start(ap, format);
	vemit(severity, NULL, NULL, format, ap);
	va_end(ap);
}

void LOG_Event(LOG_Severity severity, const char *message_id, const char *const *fields,
	       const char *format, ...)
{
	va_list ap;

	va_start(ap, format);
	vemit(severity, message_id, fields, format, ap);
	va_end(ap);
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
