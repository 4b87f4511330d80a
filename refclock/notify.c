/* SPDX-License-Identifier: BSD-2-Clause
 *
 * notify.c - waiting for the vmclock device's notifications: the one place
 * that knows how the driver's file behaves.
 *
 * Linux's ptp_vmclock (7.0 and later) keeps, per open file, the last
 * seq_count that file has seen (0 after open).  poll() reports POLLHUP at
 * once when the page lacks NOTIFICATION_PRESENT, otherwise POLLIN|POLLRDNORM
 * while the page's seq_count differs from the file's; the host's
 * notification wakes the sleepers.  A successful read() records the
 * seq_count it copied: that is the re-arm.  read() copies from the file
 * position and advances it, and returns 0 without re-arming at or past 4096;
 * there is no llseek.  So the re-arm is pread() at offset 0, every time: a
 * plain read() stops re-arming after 36 copies of the 112-byte page and
 * poll() then stays readable for ever, and lseek() fails with ESPIPE.  The
 * read spins in the kernel for up to 100 ms while seq_count is odd and then
 * fails with ETIMEDOUT.  Drivers before 7.0 have no poll (the default mask,
 * POLLIN|POLLOUT, always) and no re-arm.
 *
 * The file operations go through a small table so that the unit test
 * (tests/check_notify.c) runs this very code against a double of the
 * driver's file.
 */
#include <errno.h>
#include <poll.h>
#include <unistd.h>

#include "vmclock.h"

struct notify_ops {
	int (*poll)(struct pollfd *fds, nfds_t n, int timeout_ms);
	ssize_t (*pread)(int fd, void *buf, size_t n, off_t offset);
};

static const struct notify_ops libc_ops = { poll, pread };

/* EINTR retries before giving up for this wake-up (signals, not the page). */
#define MAX_EINTR 3

static vmclock_notify_t rearm(const struct notify_ops *ops, int fd)
{
	struct vmclock_abi copy;
	struct pollfd pfd;
	ssize_t n;
	int r, tries = 0;

	do {
		pfd = (struct pollfd){ .fd = fd, .events = POLLIN | POLLOUT };
		r = ops->poll(&pfd, 1, 0);
	} while (r < 0 && errno == EINTR && ++tries < MAX_EINTR);
	if (r < 0)
		return VMCLOCK_NOTIFY_ERROR;
	if (pfd.revents & POLLHUP)
		return VMCLOCK_NOTIFY_NONE;
	if (pfd.revents & (POLLERR | POLLNVAL)) {
		errno = EIO;
		return VMCLOCK_NOTIFY_ERROR;
	}
	/* The new driver never reports writable: this is the default mask of
	 * a driver without poll. */
	if (pfd.revents & POLLOUT)
		return VMCLOCK_NOTIFY_ALWAYS;
	if (!(pfd.revents & POLLIN))
		return VMCLOCK_NOTIFY_IDLE;
	tries = 0;
	do
		n = ops->pread(fd, &copy, sizeof(copy), 0);
	while (n < 0 && errno == EINTR && ++tries < MAX_EINTR);
	if (n > 0)
		return VMCLOCK_NOTIFY_CHANGED;
	if (n == 0) {
		/* At offset 0 the driver always copies: this is not the host. */
		errno = EIO;
		return VMCLOCK_NOTIFY_ERROR;
	}
	return errno == ETIMEDOUT ? VMCLOCK_NOTIFY_BUSY : VMCLOCK_NOTIFY_ERROR;
}

vmclock_notify_t vmclock_notify_rearm(const vmclock_t *vc)
{
	if (!vmclock_is_device(vc))
		return VMCLOCK_NOTIFY_ALWAYS;
	return rearm(&libc_ops, vmclock_fd(vc));
}

const char *vmclock_notify_describe(vmclock_notify_t r)
{
	switch (r) {
	case VMCLOCK_NOTIFY_CHANGED:
		return "the page changed; notification re-armed";
	case VMCLOCK_NOTIFY_IDLE:
		return "nothing new since the last re-arm";
	case VMCLOCK_NOTIFY_NONE:
		return "the host sends no notifications (the page lacks NOTIFICATION_PRESENT; "
		       "poll reports POLLHUP)";
	case VMCLOCK_NOTIFY_ALWAYS:
		return "this driver cannot wait for notifications (no poll support: always "
		       "readable; a kernel before 7.0, or a page file)";
	case VMCLOCK_NOTIFY_BUSY:
		return "the device read timed out: the host held seq_count odd";
	case VMCLOCK_NOTIFY_ERROR:
		return "the device read or poll failed";
	}
	return "?";
}
