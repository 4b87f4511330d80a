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
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <event2/event.h>

#include "../daemon/log.h"

static char *text;
static size_t text_len;
static FILE *saved_stderr;

static void capture_begin(void)
{
	free(text);
	text = NULL;
	saved_stderr = stderr;
	stderr = open_memstream(&text, &text_len);
	ck_assert_ptr_nonnull(stderr);
}

static void capture_end(void)
{
	fclose(stderr);
	stderr = saved_stderr;
}

static unsigned count_lines(const char *needle)
{
	unsigned n = 0;

	for (const char *p = text; p && (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
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
	ck_assert_ptr_nonnull(strstr(text, "alert 0\n"));
	ck_assert_ptr_nonnull(strstr(text, "alert 2\n"));
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
	ck_assert_ptr_nonnull(strstr(text, "alert 0 (48 similar suppressed) SUPPRESSED=48\n"));
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
	ck_assert_ptr_nonnull(strstr(text, "vmclockd: warning: alert 11 (12 similar suppressed) "
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
	close_in_ms(&l, 10);
	flood(&l, 5);
	age(&l, 1); /* closed already: the next alert goes out with the count */
	LOG_LimitedEvent(&l, LOGS_WARN, NULL, NULL, "next");
	event_base_dispatch(base);
	capture_end();
	ck_assert_uint_eq(count_lines("suppressed"), 1);
	ck_assert_ptr_nonnull(strstr(text, "next (5 similar suppressed) SUPPRESSED=5\n"));
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
	ck_assert_ptr_nonnull(strstr(text, "vmclockd: warning: state 2 "
				     "MESSAGE_ID=0123456789abcdef0123456789abcdef STATE=2 FIXED=x\n"));
	ck_assert_ptr_nonnull(strstr(text, "vmclockd: warning: state 6 (4 similar suppressed) "
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
	ck_assert_str_eq(text, "vmclockd: warning: event 1 "
			       "MESSAGE_ID=0123456789abcdef0123456789abcdef A=1 B=two words\n"
			       "vmclockd: no id A=1 B=two words\n"
			       "vmclockd: plain\n");
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
	ck_assert_ptr_nonnull(strstr(text, "vmclockd: notice: event 6 (4 similar suppressed) "
				     "SUPPRESSED_MESSAGE_ID=0123456789abcdef0123456789abcdef "
				     "SUPPRESSED=4\n"));
	ck_assert_ptr_null(l.window);
	event_base_free(base);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("limiter");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, first_alerts_at_once_then_cut);
	tcase_add_test(tc, next_one_counts_the_suppressed);
	tcase_add_test(tc, quiet_spell_gives_the_burst_back);
	tcase_add_test(tc, kinds_are_limited_apart);
	tcase_add_test(tc, state_changes_have_a_larger_burst);
	tcase_add_test(tc, window_close_says_the_count);
	tcase_add_test(tc, count_said_once);
	tcase_add_test(tc, detach_says_what_is_owed);
	tcase_add_test(tc, stderr_has_the_fields);
	tcase_add_test(tc, count_said_with_the_fields);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	free(text);
	return failed ? 1 : 0;
}
