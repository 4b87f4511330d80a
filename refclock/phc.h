/* SPDX-License-Identifier: BSD-2-Clause
 *
 * phc.h - the PTP clock ptp_vmclock registers beside a vmclock device, and
 * its precise cross-timestamp.
 *
 * The driver (Linux 7.0 and later) registers /dev/ptpN, clock name
 * "vmclockN" like the misc device, for a page whose time is on a counter and
 * unambiguous (a TAI page, or UTC with a valid TAI offset); the clock reads
 * TAI.  PTP_SYS_OFFSET_PRECISE gives the device's time and CLOCK_REALTIME at
 * one counter reading, converted by the kernel: no bracket of two counter
 * reads around clock_gettime(), so its only error is the two truncations to
 * the nanosecond.
 */
#ifndef VMCLOCK_PHC_H
#define VMCLOCK_PHC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "vmclock-abi.h"
#include "convert.h"
#include "internal.h"

/* Device time minus system time from a cross-timestamp, error below this. */
#define PHC_UNCERTAINTY_NS 1u

struct phc_reading {
	int64_t device_sec; /* TAI */
	uint32_t device_nsec;
	int64_t system_sec; /* CLOCK_REALTIME */
	uint32_t system_nsec;
};

/* Opens the PTP clock registered for the vmclock character device rdev,
 * once its cross-timestamp works; its index (N of /dev/ptpN) in *index.
 * -1 with errno (ENOENT: the driver registered none) otherwise. */
VMCLOCK_HIDDEN int phc_open(dev_t rdev, int *index);
/* One PTP_SYS_OFFSET_PRECISE: 0, or -1 with errno. */
VMCLOCK_HIDDEN int phc_read(int fd, struct phc_reading *r);

/* UTC minus system time, ns, from a reading of the clock: its TAI plus the
 * page's TAI offset (UTC - TAI), which must be valid and plausible, as for a
 * TAI page's time (convert.h).  false without one, or when the two are
 * absurdly far apart. */
static inline bool phc_offset_ns(const struct vmclock_abi *page, const struct phc_reading *r,
				 int64_t *offset_ns)
{
	int16_t tai_offset = (int16_t)vmclock_le16((uint16_t)page->tai_offset_sec);
	int64_t dsec;

	if (!(vmclock_le64(page->flags) & VMCLOCK_FLAG_TAI_OFFSET_VALID) ||
	    tai_offset < TAI_OFFSET_MIN_SEC || tai_offset > TAI_OFFSET_MAX_SEC ||
	    r->device_nsec >= NSEC_PER_SEC || r->system_nsec >= NSEC_PER_SEC ||
	    r->device_sec > INT64_MAX / 2 || r->device_sec < INT64_MIN / 2 ||
	    r->system_sec > INT64_MAX / 2 || r->system_sec < INT64_MIN / 2)
		return false;
	dsec = r->device_sec + tai_offset - r->system_sec;
	if (dsec > 9000000000ll || dsec < -9000000000ll)
		return false;
	*offset_ns = dsec * (int64_t)NSEC_PER_SEC + ((int64_t)r->device_nsec - (int64_t)r->system_nsec);
	return true;
}

#endif /* VMCLOCK_PHC_H */
