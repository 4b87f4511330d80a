/* SPDX-License-Identifier: BSD-2-Clause
 *
 * check_log.c - unit tests of the logging module's flood limiter
 * (LOG_LimitedEvent): the first alerts at once, a flood cut, the next one
 * logged counting what was suppressed, a full burst again after a quiet
 * spell; a state limiter's larger burst; the count said by a timer when the
 * window closes (with the last message suppressed, its origin and
 * SUPPRESSED=N), and at LOG_DetachLoop whatever is still owed.  Time is moved
 * by rewinding the limiter's refill stamp (its fields are public), never by
 * sleeping: a window rewound to close in a millisecond is run by the event
 * loop.  Messages go to stderr, which the tests capture.
 *
 * Then the journal: with $JOURNAL_STREAM naming stderr and the journal's
 * socket there, each message is one entry of fields (MESSAGE, PRIORITY as
 * syslog's, MESSAGE_ID, the caller's fields, CODE_FILE/CODE_LINE/CODE_FUNC
 * of the caller, SUPPRESSED=N on a count); stderr otherwise, or when the
 * journal refuses the entry.  The link wraps sd_journal_sendv_with_location
 * (the entry is kept, not sent) and access() (whether the journal's socket
 * is there is the test's say).  And LOG_Repeat's start and end.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <syslog.h>
#include <unistd.h>

#include <check.h>
#include <event2/event.h>

#include "../daemon/log.h"
#include "testutil.h"
#include "checkrun.h"

static TU_Capture err;

int __real_access(const char *path, int mode);
int __wrap_access(const char *path, int mode);
int __wrap_sd_journal_sendv_with_location(const char *file, const char *line, const char *func,
					   const struct iovec *iov, int n);

#define JOURNAL_SOCKET "/run/systemd/journal/socket"
#define MAX_ENTRY_FIELDS 40

static bool journal_socket = true; /* access() finds it */
static int journal_result;         /* what sending an entry returns */
/* The last entry sent: its fields, then CODE_FILE=, CODE_LINE=, and the
 * function. */
static struct {
	unsigned sent;
	int n;
	char field[MAX_ENTRY_FIELDS][LOG_LINE_MAX + 64];
	char file[256], line[32], func[64];
} entry;

int __wrap_access(const char *path, int mode)
{
	if (strcmp(path, JOURNAL_SOCKET) == 0)
		return journal_socket ? 0 : -1;
	return __real_access(path, mode);
}

int __wrap_sd_journal_sendv_with_location(const char *file, const char *line, const char *func,
					   const struct iovec *iov, int n)
{
	ck_assert_int_le(n, MAX_ENTRY_FIELDS);
	entry.sent++;
	entry.n = n;
	for (int i = 0; i < n; i++) {
		ck_assert_uint_lt(iov[i].iov_len, sizeof(entry.field[i]));
		memcpy(entry.field[i], iov[i].iov_base, iov[i].iov_len);
		entry.field[i][iov[i].iov_len] = '\0';
	}
	snprintf(entry.file, sizeof(entry.file), "%s", file);
	snprintf(entry.line, sizeof(entry.line), "%s", line);
	snprintf(entry.func, sizeof(entry.func), "%s", func);
	return journal_result;
}

static void capture_begin(void)
{
	tu_capture_begin(&err, &stderr);
}

static void capture_end(void)
{
	tu_capture_end(&err);
}

static unsigned count_lines(const char *needle)
{
	return tu_count(err.text, needle);
}

static void flood(LOG_Limit *l, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		LOG_LimitedEvent(l, LOGS_WARN, NULL, NULL, "alert %u", i);
}

/* As if `seconds` had passed since the limiter last refilled. */
static void age(LOG_Limit *l, long seconds)
{
	l->refilled.tv_sec -= seconds;
}

START_TEST(first_alerts_at_once_then_cut)
{
	LOG_Limit l = { 0 };

	LOG_Initialise(false, true);
	capture_begin();
	flood(&l, 1000);
	capture_end();
	ck_assert_uint_eq(count_lines("vmclockd: warning: alert "), 3);
	ck_assert_ptr_nonnull(strstr(err.text, "alert 0\n"));
	ck_assert_ptr_nonnull(strstr(err.text, "alert 2\n"));
	ck_assert_uint_eq(l.suppressed, 997);
}
END_TEST

START_TEST(next_one_counts_the_suppressed)
{
	LOG_Limit l = { 0 };

	LOG_Initialise(false, true);
	capture_begin();
	flood(&l, 50);
	age(&l, 9);
	flood(&l, 1); /* 9 s: still cut */
	age(&l, 1);
	flood(&l, 1); /* 10 s: one more, saying what it suppressed */
	flood(&l, 5);
	capture_end();
	ck_assert_uint_eq(count_lines("vmclockd: warning: alert "), 4);
	ck_assert_ptr_nonnull(strstr(err.text, "alert 0 (48 similar suppressed) SUPPRESSED=48\n"));
	ck_assert_uint_eq(l.suppressed, 5);
}
END_TEST

START_TEST(quiet_spell_gives_the_burst_back)
{
	LOG_Limit l = { 0 };

	LOG_Initialise(false, true);
	capture_begin();
	flood(&l, 10);
	age(&l, 30);
	flood(&l, 10);
	capture_end();
	/* 3, then 3 again after 30 s (a full bucket), the first of them
	 * saying what the first flood lost. */
	ck_assert_uint_eq(count_lines("vmclockd: warning: alert "), 6);
	ck_assert_uint_eq(count_lines("(7 similar suppressed)"), 1);
	ck_assert_uint_eq(count_lines("suppressed"), 1);
}
END_TEST

START_TEST(kinds_are_limited_apart)
{
	LOG_Limit a = { 0 }, b = { 0 };

	LOG_Initialise(false, true);
	capture_begin();
	flood(&a, 100);
	flood(&b, 1);
	capture_end();
	ck_assert_uint_eq(count_lines("vmclockd: warning: alert "), 4);
	ck_assert_uint_eq(b.suppressed, 0);
}
END_TEST

START_TEST(state_changes_have_a_larger_burst)
{
	LOG_Limit l = { .states = true };

	LOG_Initialise(false, true);
	capture_begin();
	flood(&l, 100);
	capture_end();
	/* Changes that come slowly are each logged: eight at once. */
	ck_assert_uint_eq(count_lines("vmclockd: warning: alert "), 8);
	ck_assert_uint_eq(l.suppressed, 92);
}
END_TEST

/* As if the limiter's window had been open for all but `ms` milliseconds. */
static void close_in_ms(LOG_Limit *l, long ms)
{
	struct timespec now;
	long ns = (10000 - ms) * 1000000;

	clock_gettime(CLOCK_MONOTONIC, &now);
	l->refilled.tv_sec = now.tv_sec - ns / 1000000000;
	l->refilled.tv_nsec = now.tv_nsec - ns % 1000000000;
	if (l->refilled.tv_nsec < 0) {
		l->refilled.tv_nsec += 1000000000;
		l->refilled.tv_sec--;
	}
}

/* A flood that stops: its count is said when the window closes, by the
 * loop's timer, without another message; with the last message suppressed
 * and where it was logged from. */
START_TEST(window_close_says_the_count)
{
	struct event_base *base = event_base_new();
	LOG_Limit l = { 0 };

	ck_assert_ptr_nonnull(base);
	LOG_Initialise(false, true);
	LOG_AttachLoop(base);
	capture_begin();
	flood(&l, 3);        /* the burst: all logged */
	close_in_ms(&l, 20); /* the window closes 20 ms from now */
	flood(&l, 12);       /* suppressed: the timer is armed */
	ck_assert_uint_eq(l.suppressed, 12);
	fflush(stderr);
	ck_assert_uint_eq(count_lines("suppressed"), 0);
	event_base_dispatch(base); /* returns once the one timer ran */
	capture_end();
	ck_assert_uint_eq(l.suppressed, 0);
	ck_assert_ptr_nonnull(strstr(err.text, "vmclockd: warning: alert 11 (12 similar suppressed) "
				     "SUPPRESSED=12\n"));
	ck_assert_uint_eq(count_lines("vmclockd: warning: alert "), 4);
	LOG_DetachLoop();
	event_base_free(base);
}
END_TEST

/* A message allowed before the timer ran says the count itself; the timer
 * then has nothing to say. */
START_TEST(count_said_once)
{
	struct event_base *base = event_base_new();
	LOG_Limit l = { 0 };

	ck_assert_ptr_nonnull(base);
	LOG_Initialise(false, true);
	LOG_AttachLoop(base);
	capture_begin();
	flood(&l, 3);
	flood(&l, 5);
	age(&l, 10); /* closed already: the next alert goes out with the count */
	LOG_LimitedEvent(&l, LOGS_WARN, NULL, NULL, "next");
	/* The timer, run now rather than in 10 s (a margin of milliseconds
	 * would not survive a slow run, e.g. under valgrind), with a token to
	 * spend: it has nothing to say all the same. */
	age(&l, 10);
	ck_assert_ptr_nonnull(l.window);
	event_active(l.window, EV_TIMEOUT, 1);
	ck_assert_int_eq(event_base_loop(base, EVLOOP_ONCE), 0);
	capture_end();
	ck_assert_uint_eq(count_lines("vmclockd: "), 4);
	ck_assert_uint_eq(count_lines("suppressed"), 1);
	ck_assert_ptr_nonnull(strstr(err.text, "next (5 similar suppressed) SUPPRESSED=5\n"));
	LOG_DetachLoop();
	event_base_free(base);
}
END_TEST

/* The count is said with the fields of the last message suppressed, as the
 * state a flood leaves is said: its fields too, not only its text. */
START_TEST(count_said_with_the_fields)
{
	struct event_base *base = event_base_new();
	LOG_Limit l = { 0 };
	char f[32];
	const char *fields[] = { f, "FIXED=x", NULL };

	ck_assert_ptr_nonnull(base);
	LOG_Initialise(false, true);
	LOG_AttachLoop(base);
	capture_begin();
	for (int i = 0; i < 7; i++) {
		snprintf(f, sizeof(f), "STATE=%d", i);
		LOG_LimitedEvent(&l, LOGS_WARN, "0123456789abcdef0123456789abcdef", fields,
				 "state %d", i);
	}
	LOG_DetachLoop();
	capture_end();
	ck_assert_ptr_nonnull(strstr(err.text, "vmclockd: warning: state 2 "
				     "MESSAGE_ID=0123456789abcdef0123456789abcdef STATE=2 FIXED=x\n"));
	ck_assert_ptr_nonnull(strstr(err.text, "vmclockd: warning: state 6 (4 similar suppressed) "
				     "STATE=6 FIXED=x "
				     "SUPPRESSED_MESSAGE_ID=0123456789abcdef0123456789abcdef "
				     "SUPPRESSED=4\n"));
	event_base_free(base);
}
END_TEST

/* On stderr an event carries what the journal gets: MESSAGE_ID first, then
 * its fields, after the text; a plain message has none.  The system tests
 * match on these, never on the text. */
START_TEST(stderr_has_the_fields)
{
	const char *fields[] = { "A=1", "B=two words", NULL };

	LOG_Initialise(false, true);
	capture_begin();
	LOG_Event(LOGS_WARN, "0123456789abcdef0123456789abcdef", fields, "event %d", 1);
	LOG_Event(LOGS_INFO, NULL, fields, "no id");
	LOG(LOGS_INFO, "plain");
	capture_end();
	ck_assert_str_eq(err.text, "vmclockd: warning: event 1 "
			       "MESSAGE_ID=0123456789abcdef0123456789abcdef A=1 B=two words\n"
			       "vmclockd: no id A=1 B=two words\n"
			       "vmclockd: plain\n");
}
END_TEST

/* A file's state: FILE and FILE_STATE, ERRNO only for a failed call, then
 * the caller's fields. */
START_TEST(file_state_fields)
{
	const char *more[] = { "CAUSE=directory_not_ours", "OWNER_UID=0", NULL };

	LOG_Initialise(false, true);
	capture_begin();
	LOG_FileState(LOGS_WARN, "/run/x", "unwritable", 28, NULL, "cannot write %s", "/run/x");
	LOG_FileState(LOGS_INFO, "/run/x", "written", 0, NULL, "written again");
	LOG_FileState(LOGS_WARN, "/var/lib/d/marker", "unsaved", 0, more, "not ours");
	capture_end();
	ck_assert_str_eq(err.text, "vmclockd: warning: cannot write /run/x "
			       "FILE=/run/x FILE_STATE=unwritable ERRNO=28\n"
			       "vmclockd: written again FILE=/run/x FILE_STATE=written\n"
			       "vmclockd: warning: not ours FILE=/var/lib/d/marker "
			       "FILE_STATE=unsaved CAUSE=directory_not_ours OWNER_UID=0\n");
}
END_TEST

/* What a window still open owes is said when the loop goes (at exit), with
 * the alert's MESSAGE_ID as SUPPRESSED_MESSAGE_ID: a count is no event. */
START_TEST(detach_says_what_is_owed)
{
	struct event_base *base = event_base_new();
	LOG_Limit l = { 0 };

	ck_assert_ptr_nonnull(base);
	LOG_Initialise(false, true);
	LOG_AttachLoop(base);
	capture_begin();
	for (int i = 0; i < 7; i++)
		LOG_LimitedEvent(&l, LOGS_NOTICE, "0123456789abcdef0123456789abcdef", NULL, "event %d",
				 i);
	LOG_DetachLoop();
	capture_end();
	ck_assert_ptr_nonnull(strstr(err.text, "vmclockd: notice: event 6 (4 similar suppressed) "
				     "SUPPRESSED_MESSAGE_ID=0123456789abcdef0123456789abcdef "
				     "SUPPRESSED=4\n"));
	ck_assert_ptr_null(l.window);
	event_base_free(base);
}
END_TEST

/* A window whose timer runs before the bucket has its token again (early
 * by a rounding) says nothing yet and waits again: the count is still
 * owed, and said at LOG_DetachLoop. */
START_TEST(window_early_waits_again)
{
	struct event_base *base = event_base_new();
	LOG_Limit l = { 0 };

	ck_assert_ptr_nonnull(base);
	LOG_Initialise(false, true);
	LOG_AttachLoop(base);
	capture_begin();
	flood(&l, 3);
	flood(&l, 4);
	ck_assert_uint_eq(l.suppressed, 4);
	/* The timer runs now, 10 s before the bucket has a token. */
	ck_assert_ptr_nonnull(l.window);
	event_active(l.window, EV_TIMEOUT, 1);
	ck_assert_int_eq(event_base_loop(base, EVLOOP_ONCE), 0);
	fflush(stderr);
	ck_assert_uint_eq(count_lines("suppressed"), 0);
	ck_assert_uint_eq(l.suppressed, 4);
	ck_assert(evtimer_pending(l.window, NULL));
	LOG_DetachLoop();
	capture_end();
	ck_assert_ptr_nonnull(strstr(err.text, "alert 3 (4 similar suppressed) SUPPRESSED=4\n"));
	event_base_free(base);
}
END_TEST

/* A failure is said when it starts and when its cause changes, its end
 * once. */
START_TEST(repeat_start_and_end)
{
	LOG_Repeat r = { 0 };

	ck_assert(!LOG_RepeatRecovered(&r));
	ck_assert(LOG_RepeatFailing(&r, 5));
	ck_assert(!LOG_RepeatFailing(&r, 5));
	ck_assert(LOG_RepeatFailing(&r, 6));
	ck_assert(!LOG_RepeatFailing(&r, 6));
	ck_assert(LOG_RepeatRecovered(&r));
	ck_assert(!LOG_RepeatRecovered(&r));
	ck_assert(LOG_RepeatFailing(&r, 5));
}
END_TEST

/* Debug messages only when asked for. */
START_TEST(debug_only_when_enabled)
{
	LOG_Initialise(false, true);
	ck_assert(!LOG_DebugEnabled());
	capture_begin();
	DEBUG_LOG("hidden %d", 1);
	LOG_Initialise(true, true);
	ck_assert(LOG_DebugEnabled());
	DEBUG_LOG("shown %d", 2);
	LOG_Finalise();
	capture_end();
	ck_assert_str_eq(err.text, "vmclockd: debug: shown 2\n");
}
END_TEST

/* stderr's line: the severity's prefix, the text, the fields. */
START_TEST(stderr_lines)
{
	static const char *const fields[] = { "A=1", "B=two", NULL };

	LOG_Initialise(false, true);
	capture_begin();
	LOG(LOGS_INFO, "info");
	LOG(LOGS_NOTICE, "notice");
	LOG(LOGS_WARN, "warn");
	LOG(LOGS_ERR, "err");
	LOG(LOGS_FATAL, "fatal");
	LOG_Event(LOGS_NOTICE, LOG_MSGID_RECOVERED, fields, "event %s", "x");
	capture_end();
	ck_assert_str_eq(err.text, "vmclockd: info\n"
				   "vmclockd: notice: notice\n"
				   "vmclockd: warning: warn\n"
				   "vmclockd: error: err\n"
				   "vmclockd: fatal: fatal\n"
				   "vmclockd: notice: event x MESSAGE_ID=" LOG_MSGID_RECOVERED
				   " A=1 B=two\n");
}
END_TEST

/* $JOURNAL_STREAM as systemd sets it for a stderr that is the journal,
 * its device and inode numbers moved by these (another file unless 0). */
static void journal_stream_moved(unsigned long long dev, unsigned long long ino)
{
	struct stat st;
	char value[64];

	ck_assert_int_eq(fstat(STDERR_FILENO, &st), 0);
	snprintf(value, sizeof(value), "%llu:%llu", (unsigned long long)st.st_dev + dev,
		 (unsigned long long)st.st_ino + ino);
	ck_assert_int_eq(setenv("JOURNAL_STREAM", value, 1), 0);
}

static void stderr_is_the_journal(void)
{
	journal_stream_moved(0, 0);
}

/* The value of the entry's field KEY, NULL if it has none (or twice). */
static const char *entry_field(const char *key)
{
	size_t len = strlen(key);
	const char *found = NULL;

	for (int i = 0; i < entry.n; i++)
		if (strncmp(entry.field[i], key, len) == 0 && entry.field[i][len] == '=') {
			ck_assert_msg(!found, "%s twice", key);
			found = entry.field[i] + len + 1;
		}
	return found;
}

static void assert_field(const char *key, const char *value)
{
	const char *v = entry_field(key);

	ck_assert_msg(v, "no field %s", key);
	ck_assert_str_eq(v, value);
}

/* An event is one journal entry: its text, its priority, its MESSAGE_ID
 * and fields, where it was logged from; nothing on stderr. */
START_TEST(journal_entry)
{
	static const char *const fields[] = { "VMCLOCK_MARKER=7", "VMCLOCK_STEP_NS=-5", NULL };
	char file[256], line[32];
	int at;

	stderr_is_the_journal();
	LOG_Initialise(false, false);
	capture_begin();
	at = __LINE__ + 1;
	LOG_Event(LOGS_WARN, LOG_MSGID_DISRUPTION, fields, "disruption %d", 1);
	capture_end();
	ck_assert_uint_eq(err.len, 0);
	ck_assert_uint_eq(entry.sent, 1);
	ck_assert_int_eq(entry.n, 5);
	assert_field("MESSAGE", "disruption 1");
	assert_field("PRIORITY", "4");
	assert_field("MESSAGE_ID", LOG_MSGID_DISRUPTION);
	assert_field("VMCLOCK_MARKER", "7");
	assert_field("VMCLOCK_STEP_NS", "-5");
	snprintf(file, sizeof(file), "CODE_FILE=%s", __FILE__);
	ck_assert_str_eq(entry.file, file);
	snprintf(line, sizeof(line), "CODE_LINE=%d", at);
	ck_assert_str_eq(entry.line, line);
	ck_assert_str_eq(entry.func, __func__);

	/* A plain message: its text and priority only. */
	LOG(LOGS_ERR, "plain");
	ck_assert_uint_eq(entry.sent, 2);
	ck_assert_int_eq(entry.n, 2);
	assert_field("MESSAGE", "plain");
	assert_field("PRIORITY", "3");
}
END_TEST

/* Each severity as syslog's priority. */
START_TEST(journal_priorities)
{
	static const struct {
		LOG_Severity severity;
		int priority;
	} map[] = { { LOGS_DEBUG, LOG_DEBUG }, { LOGS_INFO, LOG_INFO },  { LOGS_NOTICE, LOG_NOTICE },
		    { LOGS_WARN, LOG_WARNING }, { LOGS_ERR, LOG_ERR },   { LOGS_FATAL, LOG_CRIT } };

	stderr_is_the_journal();
	LOG_Initialise(true, false);
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		char want[8];

		LOG(map[i].severity, "message %zu", i);
		snprintf(want, sizeof(want), "%d", map[i].priority);
		assert_field("PRIORITY", want);
	}
	ck_assert_uint_eq(entry.sent, 6);
}
END_TEST

/* A count of suppressed alerts: SUPPRESSED=N in the entry that says it;
 * said by LOG_DetachLoop, the alert's id as SUPPRESSED_MESSAGE_ID and no
 * MESSAGE_ID (a count is no occurrence of the event). */
START_TEST(journal_suppressed_counts)
{
	struct event_base *base = event_base_new();
	LOG_Limit l = { 0 };

	ck_assert_ptr_nonnull(base);
	stderr_is_the_journal();
	LOG_Initialise(false, false);
	LOG_AttachLoop(base);
	for (int i = 0; i < 5; i++)
		LOG_LimitedEvent(&l, LOGS_NOTICE, LOG_MSGID_DISRUPTION_SOON, NULL, "soon %d", i);
	ck_assert_uint_eq(entry.sent, 3);
	age(&l, 10);
	LOG_LimitedEvent(&l, LOGS_NOTICE, LOG_MSGID_DISRUPTION_SOON, NULL, "soon %d", 5);
	ck_assert_uint_eq(entry.sent, 4);
	assert_field("MESSAGE", "soon 5 (2 similar suppressed)");
	assert_field("MESSAGE_ID", LOG_MSGID_DISRUPTION_SOON);
	assert_field("SUPPRESSED", "2");
	LOG_LimitedEvent(&l, LOGS_NOTICE, LOG_MSGID_DISRUPTION_SOON, NULL, "soon %d", 6);
	ck_assert_uint_eq(entry.sent, 4);
	LOG_DetachLoop();
	ck_assert_uint_eq(entry.sent, 5);
	assert_field("MESSAGE", "soon 6 (1 similar suppressed)");
	ck_assert_ptr_null(entry_field("MESSAGE_ID"));
	assert_field("SUPPRESSED_MESSAGE_ID", LOG_MSGID_DISRUPTION_SOON);
	assert_field("SUPPRESSED", "1");
	event_base_free(base);
}
END_TEST

/* At most 16 fields of the caller's go into an entry, the count among
 * them. */
START_TEST(journal_fields_bounded)
{
	const char *fields[24];
	char names[23][16];
	LOG_Limit l = { 0 };

	for (int i = 0; i < 23; i++) {
		snprintf(names[i], sizeof(names[i]), "F%d=%d", i, i);
		fields[i] = names[i];
	}
	fields[23] = NULL;
	stderr_is_the_journal();
	LOG_Initialise(false, false);
	LOG_Event(LOGS_INFO, LOG_MSGID_RESTORE, fields, "many");
	ck_assert_int_eq(entry.n, 3 + 16);
	assert_field("F15", "15");
	ck_assert_ptr_null(entry_field("F16"));
	for (int i = 0; i < 4; i++)
		LOG_LimitedEvent(&l, LOGS_INFO, NULL, fields, "limited");
	age(&l, 10);
	LOG_LimitedEvent(&l, LOGS_INFO, NULL, fields, "limited");
	ck_assert_int_eq(entry.n, 2 + 16);
	assert_field("SUPPRESSED", "1");
	assert_field("F14", "14");
	ck_assert_ptr_null(entry_field("F15"));
}
END_TEST

/* stderr when the journal is not really there: $JOURNAL_STREAM naming
 * another file (inode or device), malformed or absent, the socket missing, stderr forced, or
 * the entry refused. */
START_TEST(journal_not_there)
{
	stderr_is_the_journal();
	LOG_Initialise(false, true);
	capture_begin();
	LOG(LOGS_WARN, "forced");
	journal_stream_moved(0, 1);
	LOG_Initialise(false, false);
	LOG(LOGS_WARN, "another inode");
	journal_stream_moved(1, 0);
	LOG_Initialise(false, false);
	LOG(LOGS_WARN, "another device");
	setenv("JOURNAL_STREAM", "journal", 1);
	LOG_Initialise(false, false);
	LOG(LOGS_WARN, "malformed");
	unsetenv("JOURNAL_STREAM");
	LOG_Initialise(false, false);
	LOG(LOGS_WARN, "absent");
	stderr_is_the_journal();
	journal_socket = false;
	LOG_Initialise(false, false);
	LOG(LOGS_WARN, "no socket");
	journal_socket = true;
	journal_result = -ENOENT;
	LOG_Initialise(false, false);
	LOG(LOGS_WARN, "refused");
	capture_end();
	ck_assert_str_eq(err.text, "vmclockd: warning: forced\n"
				   "vmclockd: warning: another inode\n"
				   "vmclockd: warning: another device\n"
				   "vmclockd: warning: malformed\n"
				   "vmclockd: warning: absent\n"
				   "vmclockd: warning: no socket\n"
				   "vmclockd: warning: refused\n");
	ck_assert_uint_eq(entry.sent, 1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("limiter");
	TCase *journal = tcase_create("journal");
	int r;

	tcase_add_test(tc, first_alerts_at_once_then_cut);
	tcase_add_test(tc, next_one_counts_the_suppressed);
	tcase_add_test(tc, quiet_spell_gives_the_burst_back);
	tcase_add_test(tc, kinds_are_limited_apart);
	tcase_add_test(tc, state_changes_have_a_larger_burst);
	tcase_add_test(tc, window_close_says_the_count);
	tcase_add_test(tc, count_said_once);
	tcase_add_test(tc, detach_says_what_is_owed);
	tcase_add_test(tc, window_early_waits_again);
	tcase_add_test(tc, repeat_start_and_end);
	tcase_add_test(tc, stderr_has_the_fields);
	tcase_add_test(tc, file_state_fields);
	tcase_add_test(tc, count_said_with_the_fields);
	suite_add_tcase(s, tc);
	tcase_add_test(journal, debug_only_when_enabled);
	tcase_add_test(journal, stderr_lines);
	tcase_add_test(journal, journal_entry);
	tcase_add_test(journal, journal_priorities);
	tcase_add_test(journal, journal_suppressed_counts);
	tcase_add_test(journal, journal_fields_bounded);
	tcase_add_test(journal, journal_not_there);
	suite_add_tcase(s, journal);
	r = CR_Run(s, CK_FORK_GETENV);
	tu_capture_free(&err);
	return r;
}
