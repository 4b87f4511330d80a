/* SPDX-License-Identifier: BSD-2-Clause
 *
 * phc.c - find the PTP clock of a vmclock device and read its precise
 * cross-timestamp.
 *
 * The clock is found through sysfs: the misc device's name (the last part
 * of /sys/dev/char/MAJ:MIN's target) equals the PTP clock's clock_name, and
 * the node opened must be the character device sysfs names for it: /dev/ptpN,
 * or /dev/ptp_vmclockN, the name 60-vmclock.rules gives it (the one a
 * sandbox such as vmclockd's unit binds in, ptpN numbers being in the order
 * the clocks registered).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <linux/ptp_clock.h>

#include "phc.h"

/* A small sysfs attribute's first line, without its newline. */
static int read_attr(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

int phc_read(int fd, struct phc_reading *r)
{
	struct ptp_sys_offset_precise p;

	memset(&p, 0, sizeof(p));
	if (ioctl(fd, PTP_SYS_OFFSET_PRECISE, &p) < 0)
		return -1;
	r->device_sec = p.device.sec;
	r->device_nsec = p.device.nsec;
	r->system_sec = p.sys_realtime.sec;
	r->system_nsec = p.sys_realtime.nsec;
	return 0;
}

/* path, if it is the character device rdev: an open fd, or -1. */
static int open_node(const char *path, dev_t rdev)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISCHR(st.st_mode) || st.st_rdev != rdev) {
		close(fd);
		errno = ENODEV;
		return -1;
	}
	return fd;
}

/* The node of the clock whose sysfs directory is name (ptpN), clock_name
 * misc: an open fd, or -1. */
static int open_clock(const char *name, const char *misc)
{
	char path[PATH_MAX], dev[32];
	unsigned maj, min;
	int fd;

	snprintf(path, sizeof(path), "/sys/class/ptp/%s/dev", name);
	if (read_attr(path, dev, sizeof(dev)) < 0 || sscanf(dev, "%u:%u", &maj, &min) != 2)
		return -1;
	snprintf(path, sizeof(path), "/dev/%s", name);
	fd = open_node(path, makedev(maj, min));
	if (fd < 0) {
		snprintf(path, sizeof(path), "/dev/ptp_%.32s", misc);
		fd = open_node(path, makedev(maj, min));
	}
	return fd;
}

int phc_open(dev_t rdev, int *index)
{
	char path[64], target[PATH_MAX], clock_name[64], attr[PATH_MAX];
	const char *misc;
	struct phc_reading probe;
	struct dirent *e;
	ssize_t n;
	DIR *d;
	int fd = -1;

	snprintf(path, sizeof(path), "/sys/dev/char/%u:%u", major(rdev), minor(rdev));
	n = readlink(path, target, sizeof(target) - 1);
	if (n <= 0)
		return -1;
	target[n] = '\0';
	misc = strrchr(target, '/');
	misc = misc ? misc + 1 : target;
	if (strlen(misc) > 32) /* not a vmclockN */
		return -1;
	d = opendir("/sys/class/ptp");
	if (!d)
		return -1;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "ptp", 3) || strlen(e->d_name) > 16)
			continue;
		snprintf(attr, sizeof(attr), "/sys/class/ptp/%s/clock_name", e->d_name);
		if (read_attr(attr, clock_name, sizeof(clock_name)) < 0 || strcmp(clock_name, misc))
			continue;
		fd = open_clock(e->d_name, misc);
		if (fd >= 0) {
			*index = atoi(e->d_name + 3);
			break;
		}
	}
	closedir(d);
	if (fd < 0) {
		errno = ENOENT;
		return -1;
	}
	/* A clocksource the kernel cannot cross-timestamp (EOPNOTSUPP) or a
	 * driver without the ioctl: the brackets stay. */
	if (phc_read(fd, &probe) < 0) {
		int err = errno;

		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}
