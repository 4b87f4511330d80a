/* SPDX-License-Identifier: BSD-2-Clause
 *
 * check_sdnotify.c - vmclockd's messages to the service manager
 * (daemon/notify.c, sd_notify; not libvmclock's notification re-arm, which
 * tests/check_notify.c tests).
 *
 * The test binds the datagram socket $NOTIFY_SOCKET names, as systemd
 * does, and reads each message's "KEY=value" lines: READY=1 once, with the
 * last status; STATUS= on a change, urgent or at most once a second;
 * RELOADING=1, then READY=1 again (neither before the first READY=1);
 * STOPPING=1; WATCHDOG=1 at half of $WATCHDOG_USEC, and only when a sampler
 * tick completed since the last one; nothing without $NOTIFY_SOCKET.  CLOCK_MONOTONIC, which paces the
 * status, is the test's (the link wraps clock_gettime); the watchdog's
 * timer runs on a real event loop (libevent reads its own clock) with a
 * 20 ms watchdog.  Each test runs in its own process (Check's fork mode):
 * the module's state starts afresh.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <event2/event.h>

#include "../daemon/log.h"
#include "../daemon/notify.h"
#include "monoskip.h"
#include "testpage.h"
#include "checkrun.h"

/* The test's CLOCK_MONOTONIC (monoskip.h): stopped at the start of the
 * second after the real one's at setup, moved only by the test. */
#define SECOND_NS 1000000000

/* To the start of the next second. */
static void next_second(void)
{
	MSK_Advance(SECOND_NS - MSK_Now() % SECOND_NS);
}

static char *dir, *sock_path;
static int sock = -1;
static struct event_base *base;

static void setup(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	MSK_Freeze();
	next_second();
	dir = tp_tmpdir();
	sock_path = tp_path(dir, "notify");
	ck_assert_uint_lt(strlen(sock_path), sizeof(sa.sun_path));
	strcpy(sa.sun_path, sock_path);
	sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(sock, 0);
	ck_assert_int_eq(bind(sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", sock_path, 1), 0);
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	LOG_Initialise(false, true);
}

static void teardown(void)
{
	NTF_Finalise();
	event_base_free(base);
	close(sock);
	tp_rmdir(dir);
	free(sock_path);
	free(dir);
}

/* The next message, NULL if none is queued (sd_notify has sent it by the
 * time it returns). */
static const char *next_message(void)
{
	static char buf[4096];
	ssize_t n = recv(sock, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	if (n < 0) {
		ck_assert_msg(errno == EAGAIN || errno == EWOULDBLOCK, "recv: %s", strerror(errno));
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

/* The next message is exactly these "KEY=value" lines (NULL-terminated),
 * in any order. */
static void expect(const char *line, ...)
{
	const char *msg = next_message(), *p;
	unsigned want = 0, have = 1;
	va_list ap;

	ck_assert_msg(msg, "no message; expected %s", line);
	for (p = msg; (p = strchr(p, '\n')) != NULL; p++)
		have++;
	va_start(ap, line);
	for (; line; line = va_arg(ap, const char *)) {
		size_t len = strlen(line);
		bool found = false;

		for (p = msg; p && !found;) {
			found = strncmp(p, line, len) == 0 && (p[len] == '\n' || p[len] == '\0');
			p = strchr(p, '\n');
			p = p ? p + 1 : NULL;
		}
		ck_assert_msg(found, "'%s' not in the message '%s'", line, msg);
		want++;
	}
	va_end(ap);
	ck_assert_msg(have == want, "the message '%s' has %u lines, not %u", msg, have, want);
}

static void expect_none(void)
{
	const char *msg = next_message();

	ck_assert_msg(!msg, "unexpected message '%s'", msg ? msg : "");
}

/* READY=1 once, with the status set before it; later calls say nothing. */
START_TEST(ready_once_with_the_status)
{
	NTF_Initialise(base);
	NTF_Status(true, "waiting for %s", "the page");
	expect("STATUS=waiting for the page", NULL);
	NTF_Ready();
	expect("READY=1", "STATUS=waiting for the page", NULL);
	expect_none();
	NTF_Ready();
	expect_none();
}
END_TEST

/* Before any status, READY=1 carries an empty one. */
START_TEST(ready_before_any_status)
{
	NTF_Initialise(base);
	NTF_Ready();
	expect("READY=1", "STATUS=", NULL);
	expect_none();
}
END_TEST

/* A status goes when it changes: at once if urgent, otherwise not twice in
 * a second of CLOCK_MONOTONIC; an unchanged one never again. */
START_TEST(status_rate_limited)
{
	NTF_Initialise(base);
	NTF_Status(false, "offset %d ns", 12);
	expect("STATUS=offset 12 ns", NULL);
	MSK_Advance(SECOND_NS - 1); /* the last nanosecond of the second */
	NTF_Status(false, "offset %d ns", 13);
	expect_none();
	NTF_Status(true, "disrupted");
	expect("STATUS=disrupted", NULL);
	NTF_Status(true, "disrupted");
	expect_none();
	next_second();
	NTF_Status(false, "disrupted");
	expect_none();
	NTF_Status(false, "offset %d ns", 14);
	expect("STATUS=offset 14 ns", NULL);
	/* READY=1 says the last status sent. */
	NTF_Ready();
	expect("READY=1", "STATUS=offset 14 ns", NULL);
}
END_TEST

/* A status longer than the module keeps is cut, not overrun. */
START_TEST(long_status_cut)
{
	char long_text[400], want[300];

	memset(long_text, 'x', sizeof(long_text) - 1);
	long_text[sizeof(long_text) - 1] = '\0';
	snprintf(want, sizeof(want), "STATUS=%.255s", long_text);
	NTF_Initialise(base);
	NTF_Status(true, "%s", long_text);
	expect(want, NULL);
}
END_TEST

/* A reload: RELOADING=1, then READY=1 with the status again (systemd waits
 * for it, whether the reload worked or not); STOPPING=1 on the way out. */
START_TEST(reload_and_stop)
{
	NTF_Initialise(base);
	NTF_Status(true, "synchronized");
	expect("STATUS=synchronized", NULL);
	NTF_Ready();
	expect("READY=1", "STATUS=synchronized", NULL);
	NTF_Reloading();
	expect("RELOADING=1", NULL);
	NTF_Reloaded();
	expect("READY=1", "STATUS=synchronized", NULL);
	NTF_Stopping();
	expect("STOPPING=1", NULL);
	expect_none();
}
END_TEST

/* A reload before the first tick (SIGHUP early in the start): the service
 * manager still waits for the start, and READY=1 must not end it before
 * the page has been read: neither RELOADING=1 nor READY=1 until NTF_Ready
 * sends it. */
START_TEST(reload_before_ready)
{
	NTF_Initialise(base);
	NTF_Status(true, "waiting");
	expect("STATUS=waiting", NULL);
	NTF_Reloading();
	NTF_Reloaded();
	expect_none();
	NTF_Ready();
	expect("READY=1", "STATUS=waiting", NULL);
	expect_none();
}
END_TEST

/* Without $NOTIFY_SOCKET nothing is sent (the socket is there all the
 * same). */
START_TEST(no_notify_socket)
{
	unsetenv("NOTIFY_SOCKET");
	setenv("WATCHDOG_USEC", "20000", 1);
	NTF_Initialise(base);
	NTF_Status(true, "synchronized");
	NTF_Ready();
	NTF_Ticked();
	NTF_Reloading();
	NTF_Reloaded();
	NTF_Stopping();
	expect_none();
}
END_TEST

/* The timer's period: half of $WATCHDOG_USEC. */
static int find_timer(const struct event_base *b, const struct event *ev, void *arg)
{
	*(const struct event **)arg = ev;
	return 1;
}

START_TEST(watchdog_at_half_the_period)
{
	const struct event *ev = NULL;
	struct timeval expiry, now;
	long long ms;

	setenv("WATCHDOG_USEC", "60000000", 1);
	NTF_Initialise(base);
	ck_assert_int_eq(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED), 1);
	event_base_foreach_event(base, find_timer, &ev);
	ck_assert_ptr_nonnull(ev);
	ck_assert(event_get_events(ev) & EV_PERSIST);
	ck_assert(event_pending(ev, EV_TIMEOUT, &expiry));
	gettimeofday(&now, NULL);
	ms = (expiry.tv_sec - now.tv_sec) * 1000LL + (expiry.tv_usec - now.tv_usec) / 1000;
	/* libevent keeps the timer on the monotonic clock and converts it to
	 * the wall clock with an offset it read earlier: under qemu-user that
	 * conversion was seen a millisecond late.  30 s, not 20 or 60. */
	ck_assert_msg(ms > 29000 && ms <= 30050, "first ping in %lld ms", ms);
	NTF_Finalise();
	ck_assert_int_eq(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED), 0);
}
END_TEST

/* WATCHDOG=1 at READY=1, then from the timer only after a tick: a loop
 * that runs while the sampler has stopped is not healthy. */
START_TEST(watchdog_vouches_for_ticks)
{
	setenv("WATCHDOG_USEC", "20000", 1);
	NTF_Initialise(base);
	NTF_Ready();
	expect("READY=1", "STATUS=", NULL);
	expect("WATCHDOG=1", NULL);
	ck_assert_int_eq(event_base_loop(base, EVLOOP_ONCE), 0); /* the timer, 10 ms on */
	expect_none();
	NTF_Ticked();
	ck_assert_int_eq(event_base_loop(base, EVLOOP_ONCE), 0);
	expect("WATCHDOG=1", NULL);
	expect_none();
	ck_assert_int_eq(event_base_loop(base, EVLOOP_ONCE), 0);
	expect_none();
	/* Many ticks: one ping. */
	NTF_Ticked();
	NTF_Ticked();
	ck_assert_int_eq(event_base_loop(base, EVLOOP_ONCE), 0);
	expect("WATCHDOG=1", NULL);
	expect_none();
	NTF_Finalise();
	/* Nothing left on the loop. */
	ck_assert_int_eq(event_base_loop(base, EVLOOP_NONBLOCK), 1);
}
END_TEST

/* A watchdog meant for another process (WATCHDOG_PID) is not ours. */
START_TEST(watchdog_of_another_process)
{
	char pid[32];

	snprintf(pid, sizeof(pid), "%ld", (long)getpid() + 1);
	setenv("WATCHDOG_USEC", "20000", 1);
	setenv("WATCHDOG_PID", pid, 1);
	NTF_Initialise(base);
	ck_assert_int_eq(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED), 0);
	NTF_Ready();
	expect("READY=1", "STATUS=", NULL);
	expect_none();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sdnotify");
	TCase *tc = tcase_create("notify");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, ready_once_with_the_status);
	tcase_add_test(tc, ready_before_any_status);
	tcase_add_test(tc, status_rate_limited);
	tcase_add_test(tc, long_status_cut);
	tcase_add_test(tc, reload_and_stop);
	tcase_add_test(tc, reload_before_ready);
	tcase_add_test(tc, no_notify_socket);
	tcase_add_test(tc, watchdog_at_half_the_period);
	tcase_add_test(tc, watchdog_vouches_for_ticks);
	tcase_add_test(tc, watchdog_of_another_process);
	suite_add_tcase(s, tc);
	return CR_Run(s, CK_FORK_GETENV);
}
