/* SPDX-License-Identifier: BSD-2-Clause
 *
 * policy.c - which samples chrony and ntpd may see, and why not.
 */
#include <errno.h>

#include "policy.h"
#include "../refclock/convert.h"

/* The checks on what the host says about its time, on a page copy or on the
 * reading a measurement was taken from (the same fields). */
static POL_Reason judge_time(uint8_t status, uint8_t time_type, uint64_t flags, uint8_t smearing,
			     uint8_t leap, const CNF_Settings *cfg)
{
	if (status != VMCLOCK_STATUS_SYNCHRONIZED &&
	    !(status == VMCLOCK_STATUS_FREERUNNING && cfg->allow_freerunning))
		return POL_NOT_SYNCHRONIZED;
	if (time_type != VMCLOCK_TIME_UTC &&
	    !(time_type == VMCLOCK_TIME_TAI && (flags & VMCLOCK_FLAG_TAI_OFFSET_VALID)))
		return POL_NO_UTC;
	/* A smearing host bends its time around a leap second: never feed that
	 * to an NTP daemon, which handles the leap itself. */
	if (smearing != VMCLOCK_SMEARING_STRICT && leap != VMCLOCK_LEAP_NONE)
		return POL_SMEARED;
	return POL_FED;
}

POL_Reason POL_ReasonForErrno(int err)
{
	switch (err) {
	case ENOENT:
		return POL_NO_DEVICE;
	case ETIMEDOUT:
		return POL_UNSTABLE;
	case ENODATA:
		return POL_NO_TIME;
	case EOPNOTSUPP:
		return POL_UNSUPPORTED;
	default:
		return POL_BAD_PAGE;
	}
}

POL_Reason POL_JudgePage(const struct vmclock_abi *page, const CNF_Settings *cfg)
{
	if (vmclock_has_time(page) < 0)
		return POL_ReasonForErrno(errno);
	return judge_time(page->clock_status, page->time_type, vmclock_le64(page->flags),
			  page->leap_second_smearing_hint, page->leap_indicator, cfg);
}

FED_Leap POL_Leap(uint8_t leap_indicator)
{
	switch (leap_indicator) {
	case VMCLOCK_LEAP_PRE_POS:
	case VMCLOCK_LEAP_POS:
		return FED_LEAP_INSERT;
	case VMCLOCK_LEAP_PRE_NEG:
		return FED_LEAP_DELETE;
	default:
		/* NONE, and POST_*: the leap second is behind us.  Announcing
		 * it would have an NTP daemon insert or delete another one at
		 * the end of this month. */
		return FED_LEAP_NONE;
	}
}

POL_Reason POL_JudgeSample(const struct vmclock_abi *copy, const struct vmclock_offset *o,
			   const CNF_Settings *cfg, FED_Sample *out)
{
	const struct vmclock_time *t = &o->time;
	uint64_t bound;
	POL_Reason r;

	/* The page moved on between the copy and the measurement: the next
	 * copy shows the disruption module the new marker first. */
	if (t->disruption_marker != vmclock_le64(copy->disruption_marker))
		return POL_DISRUPTION;
	r = judge_time(t->clock_status, t->time_type, t->flags, t->leap_second_smearing_hint,
		       t->leap_indicator, cfg);
	if (r != POL_FED)
		return r;
	bound = t->maxerror_ns == VMCLOCK_ERROR_UNKNOWN ? VMCLOCK_ERROR_UNKNOWN
							 : TIM_AddKnownBound(t->maxerror_ns, o->uncertainty_ns);
	if (cfg->max_error_ns) {
		if (bound == VMCLOCK_ERROR_UNKNOWN)
			return POL_NO_BOUND;
		if (bound > cfg->max_error_ns)
			return POL_ERROR_BOUND;
	}
	out->system = o->system;
	out->offset_ns = o->offset_ns;
	out->uncertainty_ns = o->uncertainty_ns;
	out->bound_ns = bound;
	out->bound_ppb = convert_rate_ppb_ceil(
		vmclock_le64(copy->flags), VMCLOCK_FLAG_PERIOD_MAXERROR_VALID,
		vmclock_le64(copy->counter_period_maxerror_rate_frac_sec),
		vmclock_le64(copy->counter_period_frac_sec));
	out->leap = POL_Leap(t->leap_indicator);
	return POL_FED;
}
