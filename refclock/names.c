/* SPDX-License-Identifier: BSD-2-Clause
 *
 * names.c - lowercase names of the page's enums and flags.
 *
 * These are the words vmclockctl prints and its JSON carries, and the words
 * vmclock-sim and the configuration accept, so they live in one table each.
 */
#include <errno.h>
#include <string.h>

#include "vmclock.h"
#include "vmclockd-state.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const char *const time_type_names[] = { "utc", "tai", "monotonic" };
static const char *const status_names[] = {
	"unknown", "initializing", "synchronized", "freerunning", "unreliable",
};
static const char *const leap_names[] = { "none", "pre_pos", "pre_neg", "pos", "post_pos", "post_neg" };
static const char *const smearing_names[] = { "strict", "noon_linear", "utc_sls" };
static const char *const flag_names[VMCLOCK_FLAG_COUNT] = {
	"tai_offset_valid", "disruption_soon", "disruption_imminent",
	"period_esterror_valid", "period_maxerror_valid", "time_esterror_valid",
	"time_maxerror_valid", "time_monotonic", "vm_gen_counter_present",
	"notification_present",
};

/* vmclockd's withhold reasons: the one table the daemon, vmclockctl and
 * applications read. */
static const struct {
	const char *key, *text;
} reasons[VMCLOCKD_STATE_REASONS] = {
	[VMCLOCKD_REASON_FED] = { "fed", "not withheld" },
	[VMCLOCKD_REASON_NO_DEVICE] = { "no_device", "no vmclock device" },
	[VMCLOCKD_REASON_BAD_PAGE] = { "bad_page", "bad page" },
	[VMCLOCKD_REASON_UNSTABLE] = { "unstable", "page never stable" },
	[VMCLOCKD_REASON_NO_TIME] = { "no_time", "page carries no time" },
	[VMCLOCKD_REASON_NO_UTC] = { "no_utc", "no UTC on the page" },
	[VMCLOCKD_REASON_NOT_SYNCHRONIZED] = { "not_synchronized", "host clock not synchronized" },
	[VMCLOCKD_REASON_NO_BOUND] = { "no_bound", "no error bound on the page" },
	[VMCLOCKD_REASON_ERROR_BOUND] = { "error_bound", "error bound too large" },
	[VMCLOCKD_REASON_SMEARED] = { "smeared", "leap second smearing" },
	[VMCLOCKD_REASON_UNSUPPORTED] = { "unsupported", "counter not readable here" },
	[VMCLOCKD_REASON_DISRUPTION] = { "disruption", "handling a disruption" },
};
static const char *const sync_state_names[] = {
	[VMCLOCKD_SYNC_UNKNOWN] = "unknown",
	[VMCLOCKD_SYNC_SYNCHRONIZED] = "synchronized",
	[VMCLOCKD_SYNC_UNSYNCHRONIZED] = "unsynchronized",
	[VMCLOCKD_SYNC_DISRUPTED] = "disrupted",
};

const char *vmclockd_reason_name(unsigned reason)
{
	return reason < ARRAY_LEN(reasons) ? reasons[reason].key : NULL;
}

const char *vmclockd_reason_text(unsigned reason)
{
	return reason < ARRAY_LEN(reasons) ? reasons[reason].text : NULL;
}

const char *vmclockd_sync_state_name(unsigned sync_state)
{
	return sync_state < ARRAY_LEN(sync_state_names) ? sync_state_names[sync_state] : NULL;
}

static const char *lookup(const char *const *names, size_t n, unsigned v)
{
	return v < n ? names[v] : NULL;
}

static int reverse(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return (int)i;
	return -1;
}

const char *vmclock_counter_name(uint8_t counter_id)
{
	switch (counter_id) {
	case VMCLOCK_COUNTER_ARM_VCNT:
		return "arm_vcnt";
	case VMCLOCK_COUNTER_X86_TSC:
		return "x86_tsc";
	case VMCLOCK_COUNTER_INVALID:
		return "invalid";
	default:
		return NULL;
	}
}

const char *vmclock_time_type_name(uint8_t time_type)
{
	return lookup(time_type_names, ARRAY_LEN(time_type_names), time_type);
}

const char *vmclock_status_name(uint8_t clock_status)
{
	return lookup(status_names, ARRAY_LEN(status_names), clock_status);
}

const char *vmclock_leap_name(uint8_t leap_indicator)
{
	return lookup(leap_names, ARRAY_LEN(leap_names), leap_indicator);
}

const char *vmclock_smearing_name(uint8_t hint)
{
	return lookup(smearing_names, ARRAY_LEN(smearing_names), hint);
}

const char *vmclock_flag_name(unsigned bit)
{
	return lookup(flag_names, ARRAY_LEN(flag_names), bit);
}

int vmclock_status_from_name(const char *name)
{
	return reverse(status_names, ARRAY_LEN(status_names), name);
}

int vmclock_leap_from_name(const char *name)
{
	return reverse(leap_names, ARRAY_LEN(leap_names), name);
}

const char *vmclock_strerror(int err)
{
	switch (err) {
	case EBADMSG:
		return "bad magic (not a vmclock page)";
	case EMSGSIZE:
		return "page too small, or its size field wrong";
	case EPROTO:
		return "unknown page version";
	case ETIMEDOUT:
		return "page never stable (seq_count odd or changing)";
	case ENODATA:
		return "page carries no time";
	case ERANGE:
		return "page parameters out of range (absurd shift or time)";
	case ENODEV:
		return "not a vmclock device or page file";
	case EOPNOTSUPP:
		return "page names a counter this CPU cannot read";
	default:
		return strerror(err);
	}
}
