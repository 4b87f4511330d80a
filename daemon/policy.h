/* SPDX-License-Identifier: BSD-2-Clause
 *
 * policy.h - which samples chrony and ntpd may see, and why not.
 *
 * The daemon's core promise in one pure module: a page copy, the offset
 * measured on the page and the settings in; a verdict (fed, or the reason it
 * is withheld) and the sample to feed out.  No I/O, no state, no clock: the
 * same inputs always give the same verdict, which is what tests/check_policy.c
 * relies on.
 *
 * A sample is fed only if all of these hold, checked in this order:
 *   the page carries time this CPU can read (vmclock_has_time: a valid
 *     counter, a clock that is not unreliable, a non-zero period);
 *   the host vouches for it: synchronized, or free-running with
 *     allow-freerunning;
 *   it is UTC, or TAI with a valid offset;
 *   no leap second is announced or in progress on a smearing host;
 *   the page did not move to a new disruption marker under the measurement;
 *   with max-error-ns set, the page gives a bound, and that bound plus the
 *     measurement's uncertainty is within max-error-ns.
 * Bounds add with saturation: a page's error near 2^64 never wraps into a
 * small one.
 */
#ifndef VMCLOCKD_POLICY_H
#define VMCLOCKD_POLICY_H

#include <stdint.h>

#include "vmclock.h"
#include "vmclockd-state.h"

#include "config.h"
#include "feed.h"

/* The reasons are the published state's: include/vmclockd-state.h numbers and
 * describes them (withheld[] counts each), vmclockd_reason_text() names them. */
typedef enum {
	POL_FED = VMCLOCKD_REASON_FED,
	POL_NO_DEVICE = VMCLOCKD_REASON_NO_DEVICE,
	POL_BAD_PAGE = VMCLOCKD_REASON_BAD_PAGE,
	POL_UNSTABLE = VMCLOCKD_REASON_UNSTABLE,
	POL_NO_TIME = VMCLOCKD_REASON_NO_TIME,
	POL_NO_UTC = VMCLOCKD_REASON_NO_UTC,
	POL_NOT_SYNCHRONIZED = VMCLOCKD_REASON_NOT_SYNCHRONIZED,
	POL_NO_BOUND = VMCLOCKD_REASON_NO_BOUND,
	POL_ERROR_BOUND = VMCLOCKD_REASON_ERROR_BOUND,
	POL_SMEARED = VMCLOCKD_REASON_SMEARED,
	POL_UNSUPPORTED = VMCLOCKD_REASON_UNSUPPORTED,
	POL_DISRUPTION = VMCLOCKD_REASON_DISRUPTION,
	POL_REASON_COUNT = VMCLOCKD_STATE_REASONS
} POL_Reason;

/* Why a page copy's time may not be fed, or POL_FED: the checks that need no
 * measurement (usable time, status, timescale, smearing). */
POL_Reason POL_JudgePage(const struct vmclock_abi *page, const CNF_Settings *cfg);

/* The reason for a page reader's failure (vmclock_open, vmclock_snapshot,
 * vmclock_offset), from its errno. */
POL_Reason POL_ReasonForErrno(int err);

/* The sample for an offset measured on the page after POL_JudgePage(copy)
 * said POL_FED: POL_FED with *out filled in, or why it is withheld (the
 * measured reading is judged again, since the page may have changed between
 * the copy and the measurement).  *out is left alone unless fed. */
POL_Reason POL_JudgeSample(const struct vmclock_abi *copy, const struct vmclock_offset *o,
			   const CNF_Settings *cfg, FED_Sample *out);

/* The leap second to announce to an NTP daemon for a page's leap_indicator:
 * a leap announced for the end of the day and one in progress alike. */
FED_Leap POL_Leap(uint8_t leap_indicator);

#endif /* VMCLOCKD_POLICY_H */
