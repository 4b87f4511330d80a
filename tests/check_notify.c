/* SPDX-License-Identifier: BSD-2-Clause
 *
 * check_notify.c - the notification re-arm (refclock/notify.c) against a
 * double of ptp_vmclock's file.
 *
 * The module's own code runs here (it is included, and its file-operation
 * table pointed at the double), so what passes here is what the daemon and
 * vmclockctl run.  An ops table rather than an LD_PRELOAD or CUSE double: it
 * needs no privileges, no /dev/cuse and no symbol interposition (which
 * _FORTIFY_SOURCE's __pread_chk would defeat), and the double sees every
 * call the helper makes, so a test can also say which calls it must NOT make.
 *
 * The double keeps what the driver keeps per open file (position, the last
 * seq_count seen, 0 after open) and answers as the driver does: read()
 * copies from the position and advances it, returns 0 at or past 4096
 * without re-arming; pread() copies from its offset and re-arms; lseek()
 * is ESPIPE; while seq_count is odd a read fails with ETIMEDOUT; poll()
 * reports POLLHUP without NOTIFICATION_PRESENT, POLLIN|POLLRDNORM while the
 * page's seq_count differs from the file's, the default mask
 * (POLLIN|POLLOUT|...) for a driver without poll.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The module's public names are renamed in this copy, so that it links
 * beside libvmclock's own (shared or static) without a clash. */
#define vmclock_notify_rearm copy_vmclock_notify_rearm
#define vmclock_notify_describe copy_vmclock_notify_describe
#include "../refclock/notify.c"
#include "checkrun.h"

#define DEV_PAGE 4096

static struct {
	unsigned char page[DEV_PAGE]; /* what the host wrote */
	bool has_poll;                /* a 7.0+ driver */
	off_t pos;                    /* the file position */
	uint32_t seen;                /* the file's last seq_count */
	int eintr;                    /* next N calls fail with EINTR (-1: all) */
	bool pread_returns_zero;      /* a broken driver */
	int n_pread, n_poll;
} dev;

static struct vmclock_abi *host(void)
{
	return (struct vmclock_abi *)(void *)dev.page;
}

static uint32_t seq(void)
{
	return vmclock_le32(host()->seq_count);
}

static void set_seq(uint32_t s)
{
	host()->seq_count = vmclock_le32(s);
}

/* The host publishes an update (seq_count += 2). */
static void host_update(void)
{
	set_seq(seq() + 2);
}

static bool take_eintr(void)
{
	if (dev.eintr == 0)
		return false;
	if (dev.eintr > 0)
		dev.eintr--;
	errno = EINTR;
	return true;
}

static ssize_t copy_at(void *buf, size_t n, off_t off)
{
	uint32_t s = seq();

	if (off >= DEV_PAGE)
		return 0; /* no re-arm */
	if (s & 1) {
		errno = ETIMEDOUT; /* the driver spun 100 ms first */
		return -1;
	}
	if (n > (size_t)(DEV_PAGE - off))
		n = (size_t)(DEV_PAGE - off);
	memcpy(buf, dev.page + off, n);
	dev.seen = s;
	return (ssize_t)n;
}

static ssize_t dev_read(void *buf, size_t n)
{
	ssize_t r = copy_at(buf, n, dev.pos);

	if (r > 0)
		dev.pos += r;
	return r;
}

static off_t dev_lseek(void)
{
	errno = ESPIPE;
	return -1;
}

static ssize_t dev_pread(int fd, void *buf, size_t n, off_t off)
{
	(void)fd;
	dev.n_pread++;
	if (take_eintr())
		return -1;
	if (dev.pread_returns_zero)
		return 0;
	return copy_at(buf, n, off);
}

static int dev_poll(struct pollfd *fds, nfds_t n, int timeout_ms)
{
	short mask;

	(void)timeout_ms;
	ck_assert_uint_eq(n, 1);
	dev.n_poll++;
	if (take_eintr())
		return -1;
	if (!dev.has_poll)
		mask = POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM;
	else if (!(vmclock_le64(host()->flags) & VMCLOCK_FLAG_NOTIFICATION_PRESENT))
		mask = POLLHUP;
	else if (seq() != dev.seen)
		mask = POLLIN | POLLRDNORM;
	else
		mask = 0;
	fds[0].revents = (short)(mask & (fds[0].events | POLLHUP | POLLERR | POLLNVAL));
	return fds[0].revents ? 1 : 0;
}

static const struct notify_ops double_ops = { dev_poll, dev_pread };

/* open(): a fresh file on a page that has notifications. */
static void dev_open(bool notifications)
{
	memset(&dev, 0, sizeof(dev));
	dev.has_poll = true;
	host()->magic = vmclock_le32(VMCLOCK_MAGIC);
	host()->size = vmclock_le32(DEV_PAGE);
	host()->flags = vmclock_le64(notifications ? VMCLOCK_FLAG_NOTIFICATION_PRESENT : 0);
	set_seq(10);
}

static bool readable(void)
{
	struct pollfd p = { .fd = 3, .events = POLLIN };

	return dev_poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* The double is the driver: a plain read() re-arms until the position
 * reaches the end of the page, then never again (what the daemon did). */
START_TEST(test_double_read_stops_rearming)
{
	char buf[sizeof(struct vmclock_abi)];
	int rearmed = 0;

	dev_open(true);
	ck_assert_int_eq(dev_lseek(), -1);
	ck_assert_int_eq(errno, ESPIPE);
	for (int i = 0; i < 100; i++) {
		host_update();
		ck_assert(readable());
		if (dev_read(buf, sizeof(buf)) > 0 && !readable())
			rearmed++;
	}
	/* 36 full copies and a 64-byte one, then EOF. */
	ck_assert_int_eq(rearmed, DEV_PAGE / (int)sizeof(buf) + 1);
	ck_assert(readable()); /* for ever: poll() no longer sleeps */
}
END_TEST

START_TEST(test_fresh_open_is_readable_and_rearms)
{
	dev_open(true);
	ck_assert_int_eq(rearm(&double_ops, 3), VMCLOCK_NOTIFY_CHANGED);
	ck_assert(!readable());
	ck_assert_int_eq(rearm(&double_ops, 3), VMCLOCK_NOTIFY_IDLE);
	ck_assert_int_eq(dev.n_pread, 1); /* nothing to re-arm: no read */
}
END_TEST

START_TEST(test_rearm_works_past_the_page)
{
	dev_open(true);
	for (int i = 0; i < 1000; i++) {
		host_update();
		ck_assert_int_eq(rearm(&double_ops, 3), VMCLOCK_NOTIFY_CHANGED);
		ck_assert(!readable());
		ck_assert_int_eq(rearm(&double_ops, 3), VMCLOCK_NOTIFY_IDLE);
	}
	ck_assert_int_eq(dev.pos, 0);
}
END_TEST

START_TEST(test_no_notification_present_is_none)
{
	dev_open(false);
	for (int i = 0; i < 3; i++) {
		host_update();
		ck_assert_int_eq(rearm(&double_ops, 3), VMCLOCK_NOTIFY_NONE);
	}
	ck_assert_int_eq(dev.n_pread, 0);
}
END_TEST

START_TEST(test_driver_without_poll_is_always)
{
	dev_open(true);
	dev.has_poll = false;
	ck_assert_int_eq(rearm(&double_ops, 3), VMCLOCK_NOTIFY_ALWAYS);
	ck_assert_int_eq(dev.n_pread, 0);
}
END_TEST

START_TEST(test_odd_seq_is_busy_then_changed)
{
	dev_open(true);
	ck_assert_int_eq(rearm(&double_ops, 3), VMCLOCK_NOTIFY_CHANGED);
	set_seq(seq() + 1); /* the host stalls mid-update */
	ck_assert(readable());
	ck_assert_int_eq(rearm(&double_ops, 3), VMCLOCK_NOTIFY_BUSY);
	ck_assert_int_eq(dev.n_pread, 2); /* one read per call: no retry loop */
	set_seq(seq() + 1);
	ck_assert_int_eq(rearm(&double_ops, 3), VMCLOCK_NOTIFY_CHANGED);
	ck_assert(!readable());
}
END_TEST

START_TEST(test_eintr_retried_then_error)
{
	dev_open(true);
	dev.eintr = 1;
	ck_assert_int_eq(rearm(&double_ops, 3), VMCLOCK_NOTIFY_CHANGED);
	host_update();
	dev.eintr = -1; /* a signal storm: bounded, then reported */
	ck_assert_int_eq(rearm(&double_ops, 3), VMCLOCK_NOTIFY_ERROR);
	ck_assert_int_eq(errno, EINTR);
	ck_assert_int_le(dev.n_poll, 1 + MAX_EINTR + 1);
}
END_TEST

START_TEST(test_zero_read_is_our_error)
{
	dev_open(true);
	dev.pread_returns_zero = true;
	ck_assert_int_eq(rearm(&double_ops, 3), VMCLOCK_NOTIFY_ERROR);
	ck_assert_int_eq(errno, EIO);
}
END_TEST

START_TEST(test_every_result_has_words)
{
	for (int r = VMCLOCK_NOTIFY_CHANGED; r <= VMCLOCK_NOTIFY_ERROR; r++)
		ck_assert_str_ne(vmclock_notify_describe((vmclock_notify_t)r), "?");
	ck_assert_ptr_nonnull(strstr(vmclock_notify_describe(VMCLOCK_NOTIFY_NONE), "POLLHUP"));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("notify");
	TCase *tc = tcase_create("rearm");

	tcase_add_test(tc, test_double_read_stops_rearming);
	tcase_add_test(tc, test_fresh_open_is_readable_and_rearms);
	tcase_add_test(tc, test_rearm_works_past_the_page);
	tcase_add_test(tc, test_no_notification_present_is_none);
	tcase_add_test(tc, test_driver_without_poll_is_always);
	tcase_add_test(tc, test_odd_seq_is_busy_then_changed);
	tcase_add_test(tc, test_eintr_retried_then_error);
	tcase_add_test(tc, test_zero_read_is_our_error);
	tcase_add_test(tc, test_every_result_has_words);
	suite_add_tcase(s, tc);
	return CR_Run(s, CK_FORK_GETENV);
}
