/* SPDX-License-Identifier: BSD-2-Clause
 *
 * check_log.c - unit tests of the logging module's flood limiter
 * (LOG_LimitedEvent): the first alerts at once, a flood cut, the next one
 * logged counting what was suppressed, a full burst again after a quiet
 * spell; a state limiter's larger burst, and the state owed after a flood
 * (LOG_LimitOwed).  Time is moved by rewinding the limiter's refill stamp (its
 * fields are public), never by sleeping.  Messages go to stderr, which the
 * tests capture.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

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
	ck_assert_ptr_nonnull(strstr(text, "alert 0 (48 similar suppressed)\n"));
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

START_TEST(owed_only_after_suppression_and_when_allowed)
{
	LOG_Limit l = { .states = true };

	LOG_Initialise(false, true);
	capture_begin();
	flood(&l, 3);
	ck_assert(!LOG_LimitOwed(&l)); /* nothing suppressed */
	flood(&l, 20);
	ck_assert(!LOG_LimitOwed(&l)); /* suppressed, but no line allowed yet */
	age(&l, 10);
	ck_assert(LOG_LimitOwed(&l));  /* an interval later: log the state now */
	LOG_LimitedEvent(&l, LOGS_WARN, NULL, NULL, "now: state");
	ck_assert(!LOG_LimitOwed(&l)); /* said: nothing owed any more */
	capture_end();
	ck_assert_ptr_nonnull(strstr(text, "now: state (15 similar suppressed)\n"));
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
	tcase_add_test(tc, owed_only_after_suppression_and_when_allowed);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	free(text);
	return failed ? 1 : 0;
}
