/* SPDX-License-Identifier: BSD-2-Clause
 *
 * monoskip.h - CLOCK_MONOTONIC moved forward for the daemon's modules, so
 * that a test reaches their once-a-second checks (ratelimit.h) without
 * sleeping through them.
 *
 * A program using it links with -Wl,--wrap=clock_gettime: every
 * clock_gettime() linked statically into it (the test, the modules of
 * daemon/libvmclockd.la, libvmclock too in a --disable-shared build) comes
 * here, and CLOCK_MONOTONIC reads as far ahead as the test skipped; shared
 * libraries (libevent's timers among them) read the real clocks.  The clock
 * only jumps when a test asks, between two calls into the modules, so a
 * deadline measured within one call is not disturbed.
 */
#ifndef VMCLOCKD_TESTS_MONOSKIP_H
#define VMCLOCKD_TESTS_MONOSKIP_H

#include <stdint.h>

/* CLOCK_MONOTONIC reads ns later from now on. */
void MSK_Advance(int64_t ns);
/* CLOCK_MONOTONIC stands still from now on, but for MSK_Advance (a test
 * that paces a module's once-a-second checks to the nanosecond). */
void MSK_Freeze(void);
/* CLOCK_MONOTONIC as the modules read it, ns. */
int64_t MSK_Now(void);

#endif /* VMCLOCKD_TESTS_MONOSKIP_H */
