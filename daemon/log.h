/* SPDX-License-Identifier: BSD-2-Clause
 *
 * log.h - vmclockd's one logging module.
 *
 * Messages go to the journal (native protocol, with MESSAGE_ID and fields)
 * when stderr is the journal, as systemd announces with $JOURNAL_STREAM, and
 * to stderr otherwise.  Policy (the README's "Error policy"): configuration and
 * start-up errors are FATAL; bad external input is logged once and dropped;
 * conditions that repeat every tick are logged when they start and end.
 */
#ifndef VMCLOCKD_LOG_H
#define VMCLOCKD_LOG_H

#include <stdbool.h>
#include <time.h>

struct event;
struct event_base;

typedef enum {
	LOGS_DEBUG,
	LOGS_INFO,
	LOGS_NOTICE,
	LOGS_WARN,
	LOGS_ERR,
	LOGS_FATAL,
} LOG_Severity;

/* Journal message identifiers (stable: operators match on them). */
#define LOG_MSGID_DISRUPTION "c5c72b5b3f1f423f9cd5dfe164721191"
#define LOG_MSGID_RESTORE "80d3e2f184ce4860b4d961649f36ca73"
#define LOG_MSGID_DISRUPTION_SOON "57671498028242fb87575c6d36ae9ad9"
#define LOG_MSGID_DISRUPTION_IMMINENT "4bb3698e848e4b4684e449abc5d22b51"
#define LOG_MSGID_RECOVERED "ee29fd58be5f49c591a4d2f186aed00b"
/* A disruption chronyd has not taken yet (said once per disruption, until
 * its DISRUPTION record says it was handled). */
#define LOG_MSGID_HANDOVER_FAILED "1b4785eee24145f7b17d443c38b13af0"

void LOG_Initialise(bool debug, bool force_stderr);
void LOG_Finalise(void);
bool LOG_DebugEnabled(void);

/* Where a message was logged from: the journal's CODE_FILE, CODE_LINE and
 * CODE_FUNC fields.  The macros below fill it in at the caller. */
typedef struct {
	const char *file;
	int line;
	const char *func;
} LOG_Origin;
#define LOG_HERE ((LOG_Origin){ __FILE__, __LINE__, __func__ })

void LOG_MessageAt(LOG_Origin at, LOG_Severity severity, const char *format, ...)
	__attribute__((format(printf, 3, 4)));

/* A structured alert: the journal gets MESSAGE_ID and the NULL-terminated
 * "KEY=value" fields; stderr gets the message followed by the same fields,
 * MESSAGE_ID=... first (what the system tests match on, never the text). */
void LOG_EventAt(LOG_Origin at, LOG_Severity severity, const char *message_id,
		 const char *const *fields, const char *format, ...)
	__attribute__((format(printf, 5, 6)));
#define LOG_Event(severity, message_id, fields, ...) \
	LOG_EventAt(LOG_HERE, severity, message_id, fields, __VA_ARGS__)

/* A file vmclockd reads or writes changed state (the publish file, the
 * metrics file, the marker record, the device): an event with the fields
 * FILE=PATH, FILE_STATE=STATE (a word, vmclockd(8) lists them) and, when ERR
 * is not 0, ERRNO=ERR.  FIELDS, NULL-terminated, follow them (or NULL). */
void LOG_FileStateAt(LOG_Origin at, LOG_Severity severity, const char *path, const char *state,
		     int err, const char *const *fields, const char *format, ...)
	__attribute__((format(printf, 7, 8)));
#define LOG_FileState(severity, path, state, err, fields, ...) \
	LOG_FileStateAt(LOG_HERE, severity, path, state, err, fields, __VA_ARGS__)

/* The longest message text; longer ones are cut. */
#define LOG_LINE_MAX 1024

/* Alerts from inputs that can flap (flags, counters, states): the first ones
 * are logged at once, a flood is cut to one message every so often, and
 * what was suppressed is said when the window it fell in closes: a timer
 * (once LOG_AttachLoop gave log.c an event loop) logs the last message
 * suppressed, with its fields, "(N similar suppressed)" and the field
 * SUPPRESSED=N, or a
 * message allowed before the timer ran carries them.  A count is never left
 * unsaid: LOG_DetachLoop says what is still owed.  For changes of a state the
 * last message suppressed is the state now, so the state a flood leaves is
 * always logged.  One LOG_Limit per kind of alert, zero-initialised apart
 * from states; its fields are log.c's (the policy, how many and how often,
 * is log.c's alone). */
typedef struct LOG_Limit {
	/* Set (at initialisation) for changes of a state rather than alerts:
	 * a larger burst, so that changes that come slowly are each logged. */
	bool states;
	bool started;
	unsigned tokens;          /* messages that may go out now */
	struct timespec refilled; /* CLOCK_MONOTONIC of the last refill */
	unsigned long suppressed; /* since the last message logged */
	/* The last message suppressed, said with the count: its fields one
	 * after another, each ended by a NUL. */
	LOG_Origin last_at;
	LOG_Severity last_severity;
	char last_id[40];
	char last_text[LOG_LINE_MAX];
	char last_fields[LOG_LINE_MAX];
	struct event *window;     /* closes the window (NULL: none yet) */
	struct LOG_Limit *next;   /* the limits with a window timer */
} LOG_Limit;

void LOG_LimitedEventAt(LOG_Origin at, LOG_Limit *limit, LOG_Severity severity,
			const char *message_id, const char *const *fields, const char *format, ...)
	__attribute__((format(printf, 6, 7)));
#define LOG_LimitedEvent(limit, severity, message_id, fields, ...) \
	LOG_LimitedEventAt(LOG_HERE, limit, severity, message_id, fields, __VA_ARGS__)

/* From now on suppressed counts are said by timers on this loop, when their
 * window closes. */
void LOG_AttachLoop(struct event_base *base);
/* Before the loop is freed: every count still owed is said now, and the
 * timers are freed; counts are then said by the next message allowed. */
void LOG_DetachLoop(void);

/* Rate limiting for conditions that repeat every tick: a failure is logged
 * when its cause first appears or changes, recovery once when it ends. */
typedef struct {
	int cause; /* 0 while all is well */
} LOG_Repeat;

/* True if cause differs from the one already reported (log it now). */
bool LOG_RepeatFailing(LOG_Repeat *r, int cause);
/* True if a failure was being reported (log the recovery now). */
bool LOG_RepeatRecovered(LOG_Repeat *r);

#define LOG(severity, ...) LOG_MessageAt(LOG_HERE, severity, __VA_ARGS__)
#define DEBUG_LOG(...)                        \
	do {                                   \
		if (LOG_DebugEnabled())        \
			LOG(LOGS_DEBUG, __VA_ARGS__); \
	} while (0)
/* Logs and exits with status 1. */
#define LOG_FATAL(...)                        \
	do {                                   \
		LOG(LOGS_FATAL, __VA_ARGS__);  \
		exit(1);                       \
	} while (0)

#endif /* VMCLOCKD_LOG_H */
