/* SPDX-License-Identifier: BSD-2-Clause
 *
 * chrony_sock.h - the datagram chronyd's SOCK refclock reads.
 *
 * The layout of chrony's refclock_sock.c (unchanged from 4.3 to 4.8), in
 * native byte order: the system time of the sample, the reference minus
 * system offset in seconds, pulse and leap flags, and a magic number.
 * There is no per-sample error field in any version.
 */
#ifndef VMCLOCKD_CHRONY_SOCK_H
#define VMCLOCKD_CHRONY_SOCK_H

#include <sys/time.h>

#define CHRONY_SOCK_MAGIC 0x534f434b

struct chrony_sock_sample {
	struct timeval tv;
	double offset;
	int pulse;
	int leap; /* 0 normal, 1 insert, 2 delete */
	int _pad;
	int magic;
};
_Static_assert(sizeof(struct chrony_sock_sample) == 40, "chrony sock_sample is 40 bytes");

#endif /* VMCLOCKD_CHRONY_SOCK_H */
