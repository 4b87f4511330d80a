/* SPDX-License-Identifier: BSD-2-Clause
 *
 * fileio.h - the files vmclockd writes in place for others to read (the
 * published state, publish.c; ClockBound's segment, cbshm.c).
 */
#ifndef VMCLOCKD_FILEIO_H
#define VMCLOCKD_FILEIO_H

#include <errno.h>
#include <sys/types.h>
#include <unistd.h>

/* All of buf at off: 0, or a negative errno value (a short write is
 * -ENOSPC: no room for the rest). */
static inline int FIO_PwriteAll(int fd, const void *buf, size_t len, off_t off)
{
	ssize_t n = pwrite(fd, buf, len, off);

	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -ENOSPC;
}

#endif /* VMCLOCKD_FILEIO_H */
