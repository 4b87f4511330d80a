/* SPDX-License-Identifier: BSD-2-Clause
 *
 * fileio.h - the files vmclockd writes in place for others to read (the
 * published state, publish.c; ClockBound's segment, cbshm.c).
 */
#ifndef VMCLOCKD_FILEIO_H
#define VMCLOCKD_FILEIO_H

#include <errno.h>
#include <stdbool.h>
#include <sys/types.h>
#include <unistd.h>

/* All of buf at off, or false with errno set: a short write is ENOSPC (no
 * room for the rest). */
static inline bool FIO_PwriteAll(int fd, const void *buf, size_t len, off_t off)
{
	ssize_t n = pwrite(fd, buf, len, off);

	if (n >= 0 && (size_t)n != len)
		errno = ENOSPC;
	return n >= 0 && (size_t)n == len;
}

#endif /* VMCLOCKD_FILEIO_H */
